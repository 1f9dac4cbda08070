"""AppTest: the Audit page runs an audit in the background and shows the results (real bundled model)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.explainers.audit_models import png
from ui import audit, explain_panel, services, state

pytestmark = pytest.mark.slow  # AppTest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def audit_app(tmp_path, monkeypatch) -> AppTest:
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "root" / "set" / cls).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "root" / "set" / cls / f"{i}.png").write_bytes(
                png(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)))
    (tmp_path / "root" / "set" / "cats" / "broken.png").write_bytes(b"nope")
    monkeypatch.setenv(audit.ROOT_ENV, str(tmp_path / "root"))
    monkeypatch.setenv(audit.OUT_ENV, str(tmp_path / "out"))
    st.cache_data.clear()
    services.store().clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    # the Explain page opens first: a Grad-CAM-only run keeps that first page fast (its default,
    # LIME + KernelSHAP "auto" on three labels, is the browser tests' business)
    at.session_state[state.RUN_KEY] = explain_panel.build_request(["gradcam"])
    at.run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception
    return at


def wait_for_job(at: AppTest, limit: float = 240) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        job = at.session_state[audit.JOB_KEY]
        if not job.running:
            at.run()
            return
        time.sleep(1)
        at.run()
    raise AssertionError("the audit did not finish")


@pytest.mark.slow
def test_audit_page_runs_in_the_background_and_shows_results(audit_app: AppTest, monkeypatch) -> None:
    at = audit_app
    monkeypatch.setattr(audit, "GALLERY_SIZE", 4)  # 6 images: two pages
    at.radio(key="xai_audit_kind").set_value("Folder on the server").run()
    at.text_input(key="xai_audit_folder").set_value("../").run()
    assert any("outside the allowed root" in e.value for e in at.error)
    at.text_input(key="xai_audit_folder").set_value("set").run()
    at.multiselect(key="xai_audit_methods").set_value(["gradcam"]).run()
    at.button(key="xai_audit_start").click().run()
    assert not at.exception
    wait_for_job(at)
    assert not at.exception
    job = at.session_state[audit.JOB_KEY]
    assert job.error is None and job.summary["images"] == 6 and job.summary["errors"] == 1
    subheaders = [s.value for s in at.subheader]
    assert "Gallery" in subheaders and any("per predicted class" in s for s in subheaders)
    # the bundled ImageNet model has no class "cats" or "dogs": no accuracy instead of 0 %
    found = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "What the audit found" in subheaders and "6 images explained" in found, found
    assert "Accuracy not measured: the folder names (cats, dogs) are not class names" in found, found
    done = [m.value for m in at.success if m.value.startswith("Complete")]
    assert done and "earlier run" not in done[0], done
    # the same audit again resumes: nothing recomputed, and the summary says why it took no time
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at)
    again = at.session_state[audit.JOB_KEY]
    assert again.summary["model_calls"] == 0 and again.summary["images"] == 6
    done = [m.value for m in at.success if m.value.startswith("Complete")]
    assert done and "6 of them done by an earlier run with the same settings" in done[0], done
    # every image is reachable: page 2 holds the last two
    opened = [b for b in at.button if b.key and b.key.startswith("xai_audit_open_")]
    assert len(opened) == 4 and any(c.value.startswith("6 images; 1–4 shown") for c in at.caption)
    at.number_input(key=audit.PAGE_KEY).set_value(2).run()
    second = [b.key for b in at.button if b.key and b.key.startswith("xai_audit_open_")]
    assert len(second) == 2 and not set(second) & {b.key for b in opened}
    assert any(c.value.startswith("6 images; 5–6 shown") for c in at.caption)
    # the gallery's colours: a legend of the thumbnails' own colour scale (Grad-CAM: never negative)
    legends = [e.proto.body for e in at.get("html") if "xai-legend" in e.proto.body]
    assert any("pushes towards its top label" in b and "no push" in b for b in legends), legends
    assert not any("viridis" in c.value for c in at.caption)
    # the report first: its download comes right after the findings, before the pictures
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:2] == ["Download the report (summary.html)", "Download every row (results.parquet)"], labels
    at.selectbox(key="xai_audit_g_flag").set_value("misclassified").run()
    assert not at.exception
    # open one audited image on the Explain page with the same model
    at.selectbox(key="xai_audit_g_flag").set_value("any").run()
    name = job.source and sorted(p.name for p in Path(job.source.location).rglob("*.png"))
    button = [b for b in at.button if b.key and b.key.startswith("xai_audit_open_")][0]
    button.click().run()
    assert not at.exception
    assert at.session_state["xai_image"].name in name
    request = at.session_state["xai_run_request"]
    assert [m for m, _ in request.methods] == ["gradcam"] and request.segmentation == "grid"
    # the form shows what the pictures were made with (Explain again = the same run), and the
    # sidebar names the image instead of still offering the sample it showed before
    assert at.multiselect(key="xai_form_methods").value == ["gradcam"]
    assert at.number_input(key="xai_form_seed").value == request.seed != 0
    assert at.selectbox(key="xai_seg_algorithm").value == "grid"
    assert (at.number_input(key="xai_seg_grid_rows").value, at.number_input(key="xai_seg_grid_cols").value) == (8, 8)
    assert at.radio(key="xai_image_source").value == "Upload"
    in_use = [c.value.replace("\\", "") for c in at.sidebar.caption if c.value.startswith("In use:")]
    assert in_use == [f"In use: **{at.session_state['xai_image'].name}**"], in_use


def test_class_cards_keep_a_class_together_and_name_it_on_every_picture():
    one = {"images": 4, "mean_image": "m.png", "mean_map": "mm.png", "where": "the centre",
           "cluster_list": [{"id": 0, "share": 1.0, "where": "the centre", "typical": ["a.png"], "mean_map": "c0.png"}]}
    assert [p for p, _ in audit.class_cards("cat", one)] == ["m.png", "mm.png"]  # one group: nothing more to show
    two = {**one, "cluster_list": [
        {"id": 0, "share": 0.75, "where": "the centre", "typical": ["a.png", "b.png", "c.png"], "mean_map": "c0.png"},
        {"id": 1, "share": 0.25, "where": "the upper left", "typical": ["d.png"], "mean_map": "c1.png"}]}
    cards = audit.class_cards("horse", two)
    assert [p for p, _ in cards] == ["m.png", "mm.png", "c0.png", "c1.png"]
    assert all(c.startswith("horse") for _, c in cards)  # several classes share a row: each picture says whose
    assert cards[3][1] == "horse, group 2: 25%, mostly the upper left · e.g. d.png"


def test_server_folders_are_off_by_default_and_confined_to_the_root(tmp_path, monkeypatch):
    monkeypatch.delenv(audit.ROOT_ENV, raising=False)
    assert audit.server_root() is None
    with pytest.raises(ValueError, match="off"):
        audit.resolve_server_folder("x")
    root = tmp_path / "root"
    (root / "ok").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    monkeypatch.setenv(audit.ROOT_ENV, str(root))
    assert audit.resolve_server_folder("ok") == (root / "ok").resolve()
    assert audit.resolve_server_folder("/ok") == (root / "ok").resolve()
    for bad in ("..", "../secret", "escape", "ok/../../secret"):
        with pytest.raises(ValueError, match="outside the allowed root"):
            audit.resolve_server_folder(bad)


def test_uploads_are_saved_under_their_hash(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.OUT_ENV, str(tmp_path))
    path = audit.save_upload(b"zip bytes", ".zip")
    assert path.parent == tmp_path / "uploads" and path.suffix == ".zip"
    assert path.read_bytes() == b"zip bytes" and len(path.stem) == 64


@pytest.mark.slow
def test_uploaded_video_is_audited_and_its_overlay_played(audit_app: AppTest, tmp_path) -> None:
    from tests.explainers.audit_models import write_video

    at = audit_app
    data = write_video(tmp_path / "clip.mp4").read_bytes()
    at.radio(key="xai_audit_kind").set_value("Upload a video").run()
    at.number_input(key="xai_audit_every").set_value(3).run()
    at.file_uploader(key="xai_audit_video").set_value(("my clip.mp4", data, "video/mp4")).run()
    at.multiselect(key="xai_audit_methods").set_value(["gradcam"]).run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at)
    assert not at.exception
    job = at.session_state[audit.JOB_KEY]
    assert job.error is None and job.summary["images"] == 4
    assert "my clip" not in job.source.location  # stored under its hash, not the user's name
    assert (Path(job.out_dir) / "overlay.mp4").exists()
    assert at.get("video"), "the overlay video is played on the page"
    # it says what its colours and its label strip mean, and counts frames, not images
    captions = " ".join(c.value for c in at.caption)
    assert "tinted by its Grad-CAM map" in captions and "a change of colour is a change of prediction" in captions
    assert "Complete: 4 frames" in " ".join(m.value for m in at.success)
    assert any(c.value.startswith("4 frames. Each thumbnail") for c in at.caption), captions  # the gallery
    assert "the class's frames averaged" in captions
    legends = " ".join(e.proto.body for e in at.get("html"))
    assert "pushes towards the label on the bar" in legends  # the video's own colour legend


def _zip(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.slow
def test_masks_zip_gives_pointing_hits_and_outside_mask_flags(audit_app: AppTest) -> None:
    at = audit_app
    rng = np.random.default_rng(3)
    images = {f"photos/{c}/{i}.png": png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
              for c in ("cats", "dogs") for i in range(2)}
    obj = np.zeros((64, 64, 3), np.uint8)
    obj[16:48, 16:48] = 255
    masks = {f"masks/{c}/{i}.png": png(obj) for c in ("cats", "dogs") for i in range(2)}
    masks["masks/dogs/1.png"] = b"broken mask"
    at.file_uploader(key="xai_audit_zip").set_value(("photos.zip", _zip(images), "application/zip")).run()
    at.radio(key="xai_audit_truth_kind").set_value("Object masks (.zip)").run()
    at.file_uploader(key="xai_audit_masks").set_value(("my masks.zip", _zip(masks), "application/zip")).run()
    assert not at.exception and not at.error
    assert any("4 masks found" in c.value for c in at.caption)
    at.multiselect(key="xai_audit_methods").set_value(["gradcam"]).run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at)
    assert not at.exception
    job = at.session_state[audit.JOB_KEY]
    assert job.error is None and job.summary["images"] == 3 and job.summary["errors"] == 1
    import pandas as pd

    frame = pd.read_parquet(Path(job.out_dir) / "results.parquet")
    assert frame["pointing_hit"].notna().all() and "outside_mask" in frame
    captions = " ".join(c.value for c in at.caption)
    assert "a pointing hit" in captions and ("peak on the object" in captions or "peak off the object" in captions)
    assert any(o.startswith("looks outside the mask (") for o in at.selectbox(key="xai_audit_g_flag").options)
    unusable = " ".join(m.value for m in at.markdown).replace("\\", "")
    assert "photos/dogs/1.png" in unusable and "its mask cannot be read" in unusable
    assert not any("my masks" in str(p) for p in Path(job.out_dir).parent.parent.rglob("*"))


@pytest.mark.slow
def test_ray_engine_with_a_bad_address_is_one_clear_message(audit_app: AppTest) -> None:
    at = audit_app
    at.radio(key="xai_audit_kind").set_value("Folder on the server").run()
    at.text_input(key="xai_audit_folder").set_value("set").run()
    at.multiselect(key="xai_audit_methods").set_value(["gradcam"]).run()
    at.radio(key="xai_audit_engine").set_value("Ray").run()
    at.text_input(key="xai_audit_ray_address").set_value("127.0.0.1:1").run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at, limit=60)
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "cannot reach Ray at 127.0.0.1:1" in errors[0]
    assert "Traceback" not in errors[0]


@pytest.mark.slow
def test_ray_engine_starts_a_local_ray_and_writes_the_same_rows(audit_app: AppTest) -> None:
    import pandas as pd

    at = audit_app
    at.radio(key="xai_audit_kind").set_value("Folder on the server").run()
    at.text_input(key="xai_audit_folder").set_value("set").run()
    at.multiselect(key="xai_audit_methods").set_value(["gradcam"]).run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at)
    local = at.session_state[audit.JOB_KEY]
    assert local.error is None
    at.number_input(key="xai_audit_seed").set_value(0).run()
    at.radio(key="xai_audit_engine").set_value("Ray").run()
    at.number_input(key="xai_audit_workers").set_value(1).run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at, limit=400)
    assert not at.exception
    job = at.session_state[audit.JOB_KEY]
    assert job is not local and job.engine == "ray"
    assert job.error is None and job.summary["images"] == 6 and job.summary["errors"] == 1
    cols = ["image", "label", "probability", "peak_row", "peak_col"]
    a = pd.read_parquet(Path(local.out_dir) / "results.parquet")[cols]
    b = pd.read_parquet(Path(job.out_dir) / "results.parquet")[cols]
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_stakeholder_mode_hides_the_knobs_and_reads_in_plain_words(audit_app: AppTest) -> None:
    """Stakeholder mode: images, optional ground truth, Start; the settings in a collapsed
    expander (still drawn, so their values are kept); the outcome and the findings without
    jargon (no model calls, seconds to a decimal, R², AUC, method ids)."""
    import re

    from tests.app.test_app import JARGON, visible_texts

    at = audit_app
    at.session_state["xai_stakeholder"] = True
    at.run()
    settings = [e for e in at.expander if e.label.startswith("Settings for specialists")]
    assert len(settings) == 1 and settings[0].proto.expanded is False
    assert [m.key for m in settings[0].multiselect] == ["xai_audit_methods"]
    assert [n.key for n in settings[0].number_input] == ["xai_audit_topk", "xai_audit_seed"]
    assert [r.key for r in settings[0].radio] == ["xai_audit_engine"]
    at.radio(key="xai_audit_kind").set_value("Folder on the server").run()
    at.text_input(key="xai_audit_folder").set_value("set").run()
    at.button(key="xai_audit_start").click().run()
    wait_for_job(at)
    assert not at.exception
    job = at.session_state[audit.JOB_KEY]
    assert job.error is None and job.config.methods == ("gradcam", "kernel_shap")  # the defaults
    done = [m.value for m in at.success]
    assert done == [f"Done: 6 images explained in {job.summary['seconds']:.0f} s; 1 file could not be used."], done
    assert "What the audit found" in [s.value for s in at.subheader]
    assert at.selectbox(key="xai_audit_g_sort").options == ["probability", "image name"]
    assert at.selectbox(key="xai_audit_g_flag").options[1:] == [
        "wrong answer (the top label is not the folder's label)",
        "picture may mislead (hiding its strongest regions first lowers the answer no faster than hiding "
        "random ones)",
        "looks away from the object (the map's strongest point lies outside the object's mask)"]
    texts = [t for t in visible_texts(at) if not t.startswith("Done: ")]  # its whole seconds are fine
    hidden = {"Samples (LIME/KernelSHAP)", "Top-k labels", "Seed", "Run on"}  # inside the collapsed expander
    audit_jargon = [(r"viridis|unfaithful|misclassified|parquet", "audit jargon")]
    for pattern, what in JARGON + audit_jargon:
        flags = 0 if what == "method ids" else re.IGNORECASE
        found = [t for t in texts if t not in hidden and re.search(pattern, t, flags=flags)]
        assert not found, f"{what} shown in stakeholder mode: {found}"
    at.session_state["xai_stakeholder"] = False
    at.run()
    normal = visible_texts(at)
    assert any(re.search(r"model calls?", t) for t in normal) and any("AUC" in t for t in normal)
