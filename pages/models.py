"""Models: one compact row per model (status, size, one action) and the current model in words."""
from __future__ import annotations

import streamlit as st

from explainers.text import escape_markdown
from ui import page, services, state
from ui.downloads import download_button, size_words

page.page_setup()
st.title("Models")
st.caption("The bundled EfficientNet-Lite0 works offline; Keras Applications models need their ImageNet "
           "weights once (downloaded on request, checked against their published checksum).")


def _sizes() -> dict[str, float | None]:
    from model_zoo.catalog import CATALOG

    return {e.id: e.size_mb for e in CATALOG}


# Streamlit's own icon font, not emoji: a server or kiosk without an emoji font drew empty boxes.
STATUS = {"bundled": ":green[:material/check_circle:] ready (bundled)", "ok": ":green[:material/check_circle:] ready",
          "missing": ":material/download: weights missing",
          "wrong file": ":orange[:material/warning:] wrong file in the way"}
sizes = _sizes()
head = st.columns([3, 1, 1, 2, 2])
for col, text in zip(head, ["Model", "Input", "ImageNet top-1", "Status", ""]):
    col.caption(text)
for choice in services.model_choices():
    row = st.columns([3, 1, 1, 2, 2], vertical_alignment="center")
    row[0].markdown(f"**{choice.name}**" + (" · default" if choice.default else ""))
    row[1].write(f"{choice.input_size[0]} px")
    row[2].write(f"{choice.top1:.1f} %" if choice.top1 else "–")
    row[3].write(STATUS.get(choice.weights, choice.weights))
    with row[4]:
        if choice.weights == "missing":
            download_button(choice.id, f"Download ({size_words(sizes.get(choice.id))})", key=f"dl_{choice.id}",
                            help=f"Saved to {choice.weights_path}; needs internet. Without it, download "
                                 f"{choice.weights_url} elsewhere and put it there.")
        elif choice.weights == "wrong file":
            with st.popover("Why?"):
                st.write(choice.message)
        elif choice.id == state.current_model_ref():
            st.write("in use")

st.subheader("Current model")


def _describe(summary: dict) -> str:
    size = summary.get("input_size")
    size_text = f"{size[0]}×{size[1]} pixels" if size else "any size"
    channels = "grayscale" if summary.get("channels") == 1 else "colour"
    cam = summary.get("cam_layer")
    return "\n".join([
        f"**{escape_markdown(summary['name'])}**",  # a custom model's name is its file name
        f"- Looks at {channels} images of {size_text}, scaled with the *{summary['preprocessing']}* preprocessing.",
        f"- Chooses among {summary['classes']:,} classes ({summary['output']} output); "
        f"{summary['parameters']:,} parameters.",
        f"- Grad-CAM and its relatives read the layer {escape_markdown(cam)}." if cam else
        "- No convolutional layer found: Grad-CAM and its relatives are not offered.",
    ])


ref = state.current_model_ref()
if ref == "custom" and state.current_custom_model() is None:
    problem = st.session_state.get(state.CUSTOM_ERROR_KEY)
    if problem:
        st.error(f"Your model file was rejected: {problem}")
    else:
        st.info("Upload a .keras or .h5 model file in the sidebar.")
else:
    try:
        st.markdown(_describe(state.current_classifier().summary()))
    except services.EXPECTED_ERRORS as exc:
        st.error(f"The selected model cannot be used: {services.user_message(exc)}")
