"""Offering a catalog model's ImageNet weights for download, wherever they are missing.

Used by the Explain page (a catalog model chosen without its weights keeps the image on screen
and offers the download right there) and the Models page (one compact row per model). The bar
lives in a placeholder that is emptied whatever happens, so no stale "Downloading…" bar stays
above an error.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from ui import services


def weights_facts(model_id: str) -> dict[str, Any] | None:
    """Name, size, target path and URL of a catalog model's weights; None when present or not a catalog model."""
    from model_zoo.catalog import find_entry
    from model_zoo.weights import weights_status, weights_url

    entry = find_entry(model_id)
    if entry is None:
        return None
    status = weights_status(entry)
    if status.present:
        return None
    return {"name": entry.name, "size_mb": entry.size_mb, "path": str(status.path), "url": weights_url(entry),
            "wrong_file": status.found_hash is not None, "message": status.message}


def size_words(size_mb: float | None) -> str:
    return f"{size_mb:.0f} MB" if size_mb else "size unknown"


def download_button(model_id: str, label: str, key: str, **kwargs: Any) -> bool:
    """A Download button; on click, fetches with a bar in place and reruns on success.

    Returns False when the download failed (the error is shown, the bar is gone).
    """
    if not st.button(label, key=key, **kwargs):
        return True
    slot = st.empty()
    bar = slot.progress(0.0, text="Downloading…")

    def show(done: int, total: int | None) -> None:
        frac = done / total if total else 0.0
        bar.progress(min(1.0, frac), text=f"Downloading… {done / 2**20:.1f} MB"
                     + (f" of {total / 2**20:.1f} MB" if total else ""))

    try:
        services.download_weights(model_id, show)
    except services.EXPECTED_ERRORS as exc:
        slot.empty()
        st.error(f"The download failed: {services.user_message(exc)}")
        return False
    slot.empty()
    services.clear_classifier_cache()
    st.rerun()
    return True


def offer_download(model_id: str) -> None:
    """The missing-weights box of the Explain page: what is missing, the button, size and place."""
    facts = weights_facts(model_id)
    if facts is None:
        return
    with st.container(border=True):
        if facts["wrong_file"]:
            st.warning(facts["message"])
            return
        st.markdown(f"**{facts['name']} needs its ImageNet weights**, which are not on this machine yet.")
        st.caption(f"One file of {size_words(facts['size_mb'])}, saved to `{facts['path']}` and checked "
                   "against its published checksum before use. Without internet, download "
                   f"{facts['url']} on another machine and put it there.")
        download_button(model_id, f"Download the weights ({size_words(facts['size_mb'])})",
                        key=f"xai_offer_dl_{model_id}", type="primary")
