"""The Audit page's parts: choose a source, run ``explainers.audit.run_audit`` in a background
thread, and browse the results while they arrive.

The job lives in ``st.session_state`` (a thread + a cancel event + the latest progress), so the
page can rerun, switch pages and come back; a ``st.fragment(run_every=…)`` redraws only the
progress while the job runs and triggers one full rerun when it ends. Uploads are written
under server-chosen names (the upload's sha256) in a private temporary folder; a folder on the
server can only be audited under the root an operator sets in ``XAI_LENS_AUDIT_ROOT`` (off by
default).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from explainers.audit.aggregate import FLAGS
from explainers.text import count, escape_markdown

from ui import state

JOB_KEY = "xai_audit_job"
ROOT_ENV = "XAI_LENS_AUDIT_ROOT"
OUT_ENV = "XAI_LENS_AUDIT_OUT"
GALLERY_SIZE = 24
PAGE_KEY = "xai_audit_g_page"
PICTURE_WIDTH = 160  # every per-class picture the same size (their files differ)
CLASS_COLUMNS = 6
SORTS = {
    "probability": "probability", "deletion AUC (low = faithful)": "deletion_auc",
    "mass inside the mask": "mass_in_mask", "image name": "image",
}
PLAIN_SORTS = ("probability", "image name")  # stakeholder mode: no metric names


@dataclass
class AuditJob:
    """One background audit: its thread, cancel switch, latest progress and outcome."""

    out_dir: str
    source: Any
    model_id: str
    config: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Any = None
    summary: dict | None = None
    error: str | None = None
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.time)
    engine: str = "local"
    _store: Any = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def store(self) -> Any:
        """The job's ResultStore, kept so the live gallery reads only newly finished parts."""
        if self._store is None:
            from explainers.audit.store import ResultStore

            self._store = ResultStore(self.out_dir)
        return self._store


def server_root() -> Path | None:
    """The operator's root for server folders, or None (server folders off)."""
    root = os.environ.get(ROOT_ENV, "").strip()
    return Path(root).resolve() if root else None


def resolve_server_folder(relative: str) -> Path:
    """A folder under the configured root; refuses anything outside it (``..``, links, absolute)."""
    root = server_root()
    if root is None:
        raise ValueError("server folders are off; an operator can allow them with " + ROOT_ENV)
    target = (root / relative.strip().lstrip("/")).resolve()
    if target != root and root not in target.parents:
        raise ValueError("that folder is outside the allowed root")
    if not target.is_dir():
        raise ValueError(f"there is no folder {relative!r} under the allowed root")
    return target


def _work_dir() -> Path:
    base = Path(os.environ.get(OUT_ENV) or Path(tempfile.gettempdir()) / "xai-lens-audits")
    base.mkdir(parents=True, exist_ok=True)
    return base


def save_upload(data: bytes, suffix: str) -> Path:
    """Write an upload under a name we choose (its sha256), never the user's file name."""
    digest = hashlib.sha256(data).hexdigest()
    folder = _work_dir() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        from explainers.audit.store import atomic_write

        atomic_write(path, data)
    return path


@dataclass(frozen=True)
class EngineChoice:
    """Where the audit runs: ``local`` (this process) or ``ray`` (a local or joined Ray)."""

    engine: str = "local"
    address: str | None = None  # None: start a local Ray
    workers: int = 2


def start_job(classifier: Any, source: Any, config: Any, truth_args: dict | None = None,
              engine: EngineChoice | None = None, model_ref: dict | None = None) -> AuditJob:
    """Start ``run_audit`` in a daemon thread; results go to a fresh folder."""
    from explainers.audit.run import run_audit

    engine = engine or EngineChoice()
    truth_args = {k: v for k, v in (truth_args or {}).items() if v}
    key = hashlib.sha256(json.dumps([classifier.id, source.describe(), config.as_dict(), truth_args, engine.engine],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    out = _work_dir() / "runs" / key  # same model + source + parameters: resumes
    job = AuditJob(str(out), source, classifier.id, config, engine=engine.engine)

    def work() -> None:
        try:
            common = dict(config=config, truth_args=truth_args, cancel=job.cancel,
                          progress=lambda p: setattr(job, "progress", p))
            if engine.engine == "ray":
                job.summary = run_audit(source, str(out), model=model_ref, engine="ray",
                                        ray_address=engine.address, workers=engine.workers, **common)
            else:
                job.summary = run_audit(source, str(out), classifier=classifier, **common)
            if source.kind == "video" and job.summary["images"]:
                from explainers.audit.video import write_overlay_video

                write_overlay_video(out, source)
        except Exception as exc:  # shown on the page as one line; the session keeps working
            job.error = " ".join(str(exc).split()) or type(exc).__name__

    job.thread = threading.Thread(target=work, name="xai-audit", daemon=True)
    job.thread.start()
    st.session_state[JOB_KEY] = job
    return job


def current_job() -> AuditJob | None:
    return st.session_state.get(JOB_KEY)


# ---------------------------------------------------------------------- widgets
def source_form() -> Any | None:
    """Source widgets; returns an ``explainers.audit.Source`` or None."""
    from explainers.audit.sources import VIDEO_SUFFIXES, SourceError, open_source

    kinds = ["Upload a .zip of images", "Upload a video"]
    if server_root() is not None:
        kinds.append("Folder on the server")
    kind = st.radio("Source", kinds, horizontal=True, key="xai_audit_kind")
    try:
        if kind == kinds[0]:
            up = st.file_uploader("Images in a .zip (class sub-folders give the true labels)", type=["zip"],
                                  key="xai_audit_zip")
            return open_source(save_upload(up.getvalue(), ".zip")) if up is not None else None
        if kind == kinds[1]:
            up = st.file_uploader("Video", type=[s.lstrip(".") for s in VIDEO_SUFFIXES], key="xai_audit_video")
            every = st.number_input("Every k-th frame", 1, 1000, 10, key="xai_audit_every")
            if up is None:
                return None
            suffix = Path(up.name).suffix.lower()
            return open_source(save_upload(up.getvalue(), suffix if suffix in VIDEO_SUFFIXES else ".mp4"),
                               every=int(every))
        rel = st.text_input(f"Folder under {server_root()}", key="xai_audit_folder")
        return open_source(resolve_server_folder(rel)) if rel.strip() else None
    except (SourceError, ValueError) as exc:
        st.error(f"This source cannot be audited: {escape_markdown(exc)}")
        return None


TRUTH_KINDS = ("None", "Object masks (.zip)", "Object boxes (.csv)")


def truth_form() -> dict | None:
    """Optional ground truth → ``truth_args`` for ``run_audit`` ({} for none, None when the
    upload is unusable: the message is shown here)."""
    from explainers.audit.sources import GroundTruth, SourceError

    kind = st.radio("Ground truth (optional): where the object is", TRUTH_KINDS, horizontal=True,
                    key="xai_audit_truth_kind",
                    help="With it, each explanation is checked against the object: does its peak "
                         "fall inside (pointing hit; images whose peak falls outside are flagged), "
                         "how much of the map lies inside, and how well its top part overlaps it.")
    if kind == TRUTH_KINDS[0]:
        return {}
    if kind == TRUTH_KINDS[1]:
        up = st.file_uploader("Masks in a .zip, named like the images (e.g. cats/0.png for "
                              "cats/0.jpg); white = object", type=["zip"], key="xai_audit_masks")
        args = {"masks_dir": str(save_upload(up.getvalue(), ".zip"))} if up is not None else None
    else:
        up = st.file_uploader("Boxes as CSV with the columns image,x0,y0,x1,y1 (pixels of the image "
                              "file; several rows per image allowed)", type=["csv"], key="xai_audit_boxes")
        args = {"boxes_csv": str(save_upload(up.getvalue(), ".csv"))} if up is not None else None
    if args is None:
        return None
    try:
        truth = GroundTruth(args.get("masks_dir"), args.get("boxes_csv"))
    except SourceError as exc:
        st.error(f"This ground truth cannot be used: {escape_markdown(exc)}")
        return None
    st.caption(f"{truth.describe()['entries']} {'masks' if truth.kind == 'masks' else 'images with boxes'} "
               "found; an image whose mask cannot be read is listed as unusable and the run goes on.")
    return args


def engine_form() -> EngineChoice:
    """Local (this server) or Ray (a local Ray started for this run, or a cluster's address)."""
    c1, c2, c3 = st.columns([2, 3, 1])
    engine = c1.radio("Run on", ["This server", "Ray"], horizontal=True, key="xai_audit_engine",
                      help="Ray spreads the images over several workers, each with its own copy "
                           "of the model; without an address a local Ray is started.")
    if engine == "This server":
        return EngineChoice()
    address = c2.text_input("Ray address (empty: start a local Ray)", key="xai_audit_ray_address",
                            placeholder="e.g. 10.0.0.5:6379")
    workers = c3.number_input("Workers", 1, 256, 2, key="xai_audit_workers")
    return EngineChoice("ray", address.strip() or None, int(workers))


def model_reference(engine: EngineChoice) -> dict | None:
    """What Ray workers load: the sidebar's catalog or bundled model (None for uploaded models,
    which exist only in this server's memory)."""
    if engine.engine != "ray":
        return None
    ref = state.current_model_ref()
    return None if ref in ("custom", "sklearn") else {"ref": ref}


def settings_form(classifier: Any) -> Any:
    """Methods, samples, top-k and seed → an ``AuditConfig``."""
    from explainers.audit.process import DEFAULT_METHODS, AuditConfig
    from ui import services

    specs = services.method_specs(classifier)
    names = list(specs)
    default = [n for n in DEFAULT_METHODS if n in names]
    c1, c2, c3, c4 = st.columns(4)
    methods = c1.multiselect("Methods (the first drives the clusters)", names, default=default,
                             format_func=lambda n: specs[n].title, key="xai_audit_methods")
    # 300 by default, less when the app's default is lower (XAI_LENS_DEFAULT_SAMPLES, browser tests)
    app_default = state.DEFAULT_SAMPLES  # an int, or "auto" (the Explain page picks per image)
    default_samples = min(300, app_default) if isinstance(app_default, int) else 300
    samples = c2.select_slider("Samples (LIME/KernelSHAP)", sorted({50, 100, 200, 300, 500, 1000, default_samples}),
                               default_samples, key="xai_audit_samples")
    top_k = c3.number_input("Top-k labels", 1, min(5, classifier.num_classes), 1, key="xai_audit_topk")
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key="xai_audit_seed")
    return AuditConfig(methods=tuple(methods), samples=int(samples), top_k=int(top_k), seed=int(seed))


def progress_panel() -> None:
    """Progress, Cancel and the results so far, redrawn every ~1.5 s by a fragment while the
    job runs (the gallery grows image by image); one full rerun when it ends."""
    job = current_job()
    if job is None:
        return

    @st.fragment(run_every=1.5 if job.running else None)
    def panel() -> None:
        p = job.progress
        if job.running:
            if p is not None and p.total:
                eta = "?" if p.eta_seconds is None else f"{p.eta_seconds:.0f} s"
                st.progress(min(1.0, (p.done + p.skipped) / p.total),
                            text=f"{p.done + p.skipped} / {p.total} images · {p.errors} unusable · ETA {eta}")
            else:  # the counter moves per finished batch: say what the first one costs
                unit = "frames" if job.source.kind == "video" else "images"
                batch = getattr(job.config, "batch_size", None) or 16
                first = ("Starting Ray and loading the model on each worker" if job.engine == "ray"
                         else f"Explaining the first batch of up to {batch} {unit}")
                st.progress(0.0, text=f"{first}; the counter moves when it is done "
                                      f"({time.time() - job.started:.0f} s so far)…")
            if st.button("Cancel", key="xai_audit_cancel"):
                job.cancel.set()
            st.session_state["xai_audit_was_running"] = True
            results_panel(live=True)
        elif st.session_state.pop("xai_audit_was_running", False):
            st.rerun()  # the job just ended: redraw the whole page once with the final results

    panel()
    if job.error:
        st.error(f"The audit stopped: {escape_markdown(job.error)}")
    elif job.summary is not None:
        s = job.summary
        earlier = int(s["images"]) - int(s.get("new_images", s["images"]))
        resumed = (f" ({earlier} of them done by an earlier run with the same settings: kept, not "
                   "recomputed)") if earlier > 0 else ""
        unit = "frame" if job.source.kind == "video" else "image"
        if state.stakeholder_mode():
            unused = f"; {count(s['errors'], 'file')} could not be used" if s["errors"] else ""
            st.success(f"{'Done' if s['status'] == 'complete' else s['status'].capitalize()}: "
                       f"{count(s['images'], unit)} explained in {s['seconds']:.0f} s{unused}.")
        else:
            st.success(f"{s['status'].capitalize()}: {count(s['images'], unit)}{resumed}, "
                       f"{count(s['errors'], 'unusable file')}, {count(s['model_calls'], 'model call')} "
                       f"in {s['seconds']:.1f} s.")
        unusable_list(job)


def unusable_list(job: AuditJob) -> None:
    """Every unusable file (or unusable mask) with its reason, as the manifest lists them."""
    manifest = job.store.read_manifest() or {}
    errors = manifest.get("errors") or []
    if errors:
        with st.expander(f"{count(len(errors), 'unusable file')} and why", expanded=len(errors) <= 5):
            st.markdown("\n".join(f"- **{escape_markdown(e['image'])}**: {escape_markdown(e['reason'])}"
                                   for e in errors[:200]))


def _frame(job: AuditJob):
    store = job.store
    if not job.running and store.results_path.exists():
        import pandas as pd

        return store, pd.read_parquet(store.results_path)
    return store, store.rows_frame()  # the images finished so far


def results_panel(live: bool = False) -> None:
    """Per-class pictures, the filterable gallery and the downloads (``live``: the images
    finished so far, while the job runs)."""
    job = current_job()
    if job is None or (job.running and not live):
        return
    store, frame = _frame(job)
    if not len(frame):
        st.info("No results yet: the first images appear here as soon as they are explained.")
        return
    clusters_path = store.root / "clusters.json"
    if not job.running and clusters_path.exists():
        clusters = json.loads(clusters_path.read_text(encoding="utf-8"))
        findings_panel(store, clusters)
        downloads(store)
        class_pictures(store, clusters)
    elif not job.running:  # no aggregates (e.g. stopped before any): the files written so far
        downloads(store)
    gallery(store, frame, live=live)
    if not job.running:
        overlay_video(store, frame)


def findings_panel(store: Any, clusters: dict) -> None:
    """The audit's answer in sentences (the same as at the top of summary.html)."""
    from explainers.audit.findings import findings, unit_of

    manifest = store.read_manifest() or {}
    st.subheader("What the audit found")
    lines = findings(clusters, len(manifest.get("errors") or []), plain=state.stakeholder_mode(),
                     unit=unit_of(manifest))
    st.markdown("\n".join(f"- {escape_markdown(line)}" for line in lines))


def class_pictures(store: Any, clusters: dict) -> None:
    from explainers.legend import legend_html, relative_legend

    st.subheader("Where the model looks, per predicted class")
    if clusters.get("confusion"):
        confusions = ", ".join(f"{c['true']} → {c['predicted']}: {c['count']}" for c in clusters["confusion"][:5])
        st.caption(escape_markdown(f"Most confused: {confusions}."))
    from explainers.audit.findings import unit_of

    unit = unit_of(store.read_manifest())
    st.caption(f"Mean image = the class's {unit}s averaged. Mean map and groups: where the model looks (the "
               f"part of the first method's maps that pushes towards the class, each {unit} weighted equally, "
               f"each picture scaled to its own strongest point). A group is a set of {unit}s whose maps look "
               "alike; a small group that looks somewhere else can reveal a shortcut (a tag, a corner).")
    st.html(f"<div style='max-width:{2 * PICTURE_WIDTH + 40}px'>{legend_html(relative_legend('the class'))}</div>")
    rows: list[list[tuple[str, str]]] = [[]]
    for name, entry in clusters["classes"].items():
        cards = class_cards(name, entry)
        if rows[-1] and len(rows[-1]) + len(cards) > CLASS_COLUMNS:  # a class never splits across rows
            rows.append([])
        rows[-1].extend(cards)
    for row in rows:
        for col, (path, caption) in zip(st.columns(max(CLASS_COLUMNS, len(row))), row):
            col.image(str(store.root / path), caption=caption, width=PICTURE_WIDTH)


def class_cards(name: str, entry: dict) -> list[tuple[str, str]]:
    """One class's pictures as (file, caption): its mean image, its mean map, and each group's
    mean map when the class's images fall into more than one group."""
    groups = entry["cluster_list"] if len(entry["cluster_list"]) > 1 else []
    return [(entry["mean_image"], f"{name}: mean image ({entry['images']})"),
            (entry["mean_map"], f"{name}: mean map, mostly {entry.get('where', '')}"),
            *((c["mean_map"], f"{name}, group {c['id'] + 1}: {c['share']:.0%}, mostly {c.get('where', '')} "
                              f"· e.g. {', '.join(c['typical'][:2])}") for c in groups)]


def legends_html(legends: list) -> str:
    """Colour legends side by side, each as wide as a legend reads well."""
    from explainers.legend import legend_html

    return ("<div style='display:flex;flex-wrap:wrap;gap:24px'>"
            + "".join(f"<div style='width:300px'>{legend_html(lg)}</div>" for lg in legends) + "</div>")


def method_legends(frame, method: str, label_name: str = "its top label") -> list:
    """The legends of ``method``'s thumbnails in ``frame`` (from each row's ``map_signed``)."""
    from explainers.legend import thumbnail_legends

    return thumbnail_legends(frame.loc[frame["method"] == method, "map_signed"].tolist(), label_name)


def gallery(store: Any, frame, live: bool = False) -> None:
    st.subheader("Gallery" + (" (so far)" if live else ""))
    methods = list(dict.fromkeys(frame["method"]))
    c1, c2, c3, c4, c5 = st.columns(5)
    from explainers.base import get_method

    method = c1.selectbox("Method", methods, key="xai_audit_g_method", format_func=lambda m: get_method(m).title)
    classes = sorted(frame["label_name"].dropna().unique())
    chosen = c2.multiselect("Predicted class", classes, key="xai_audit_g_class")
    plain = state.stakeholder_mode()
    offered = [f for f in FLAGS if not plain or f != "low_fit"]  # R² is for specialists
    flag = c3.selectbox("Flag", ["any", *offered], key="xai_audit_g_flag",
                        format_func=lambda f: (FLAGS[f].plain_title if plain else FLAGS[f].title) if f in FLAGS else f,
                        help="Flags are computed when the run ends.")
    clusters = sorted(int(c) for c in frame["cluster"].dropna().unique()) if "cluster" in frame else []
    cluster = c4.selectbox("Group (similar maps)", ["any", *clusters], key="xai_audit_g_cluster",
                           format_func=lambda c: c if c == "any" else f"group {c + 1}")
    sorts = [k for k in SORTS if not state.stakeholder_mode() or k in PLAIN_SORTS]
    sort = c5.selectbox("Sort by", sorts, key="xai_audit_g_sort")
    descending = st.toggle("Descending", value=True, key="xai_audit_g_desc")
    view = frame[(frame["method"] == method) & (frame["rank"] == 0)]
    if chosen:
        view = view[view["label_name"].isin(chosen)]
    if flag != "any" and flag in view:
        view = view[view[flag].eq(True)]
    if cluster != "any":
        view = view[view["cluster"] == cluster]
    view = view.sort_values(SORTS[sort], ascending=not descending, na_position="last")
    frame_count = len(view)
    masks = view["pointing_hit"].notna().any()
    pages = max(1, -(-len(view) // GALLERY_SIZE))
    shown = ""
    if pages > 1:  # a big audit: every image reachable, GALLERY_SIZE at a time
        if int(st.session_state.get(PAGE_KEY, 1)) > pages:  # the filters left fewer pages
            st.session_state[PAGE_KEY] = 1
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=PAGE_KEY))
        view = view.iloc[(page - 1) * GALLERY_SIZE: page * GALLERY_SIZE]
        shown = f"; {(page - 1) * GALLERY_SIZE + 1}–{(page - 1) * GALLERY_SIZE + len(view)} shown"
    from explainers.audit.findings import unit_of

    st.caption(count(frame_count, unit_of(store.read_manifest())) + shown + ". "
               + ("\"peak on the object\" = the map's strongest point lies inside the mask (a pointing hit). "
                  if masks else "")
               + f"Each thumbnail is the image tinted by its {get_method(method).title} map for its top "
                 "label, scaled to its own strongest value:")
    st.html(legends_html(method_legends(frame[frame["rank"] == 0], method)))
    cols = st.columns(6)
    for i, row in enumerate(view.itertuples()):
        col = cols[i % 6]
        thumb = store.thumb_path(row.image_id, row.method, row.label)
        if thumb.exists():
            col.image(str(thumb))
        flags = [FLAGS[f].plain if plain else FLAGS[f].short for f in offered if getattr(row, f, None) is True]
        hit = getattr(row, "pointing_hit", None)
        hit_text = "" if hit is None or hit != hit else (" · peak on the object" if hit else " · peak off the object")
        col.caption(escape_markdown(f"{row.image} · {row.label_name}") + f" {row.probability:.0%}" + hit_text
                    + (f" · ⚠ {', '.join(flags)}" if flags else ""))
        if not live and col.button("Explain", key=f"xai_audit_open_{row.image_id}",
                                   on_click=prepare_open, args=(row.image,)):
            open_on_explain()


OPEN_ERROR_KEY = "xai_audit_open_error"


def prepare_open(name: str) -> None:
    """Button callback (it runs before the sidebar is drawn, so it may set the sidebar's
    image source): put one audited image in the image slot with the audit's methods and settings
    (its per-image seed, regions and fill, so the Explain page redraws the same maps), shown in
    the Explain form too; the sidebar's model is the one the audit used."""
    from explainers.audit.process import _png, image_seed
    from explainers.audit.sources import read_item
    from ui import explain_panel

    st.session_state[OPEN_ERROR_KEY] = None
    job = current_job()
    for item in job.source.items():
        if item.name == name:
            data = Path(item.path).read_bytes() if item.kind == "file" else _png(read_item(item))
            break
    else:
        st.session_state[OPEN_ERROR_KEY] = f"{name} is no longer in the source"
        return
    cfg = job.config
    if cfg is not None:
        req = explain_panel.build_request(
            list(cfg.methods), samples=int(cfg.samples), fill=cfg.fill, seed=image_seed(cfg.seed, name),
            segmentation=cfg.segmentation, segmentation_params=dict(cfg.segmentation_params),
            params={m: dict(p) for m, p in dict(cfg.method_params).items()},
        )
        st.session_state[state.RUN_KEY] = req
        explain_panel.show_in_form(req)
    state.remember_image(data, Path(name).name, "upload")
    st.session_state["xai_image_source"] = "Upload"  # the sidebar names it instead of offering a sample


def open_on_explain() -> None:
    """After ``prepare_open``: the Explain page, or why the image could not be opened."""
    problem = st.session_state.get(OPEN_ERROR_KEY)
    if problem:
        st.error(escape_markdown(problem))
    else:
        st.switch_page("pages/explain.py")


def downloads(store: Any) -> None:
    """The report first (for anyone), then the data (for analysis), then the video if any."""
    c1, c2, c3 = st.columns(3)
    summary = store.root / "summary.html"
    if summary.exists():
        c1.download_button("Download the report (summary.html)", summary.read_bytes(), "summary.html",
                           mime="text/html", key="xai_audit_dl_summary", icon=":material/download:",
                           help="One self-contained page: the findings, the pictures per class and the "
                                "flagged images. Opens in any browser; share it as it is.")
    if store.results_path.exists():
        c2.download_button("Download every row (results.parquet)", store.results_path.read_bytes(),
                           "results.parquet", key="xai_audit_dl_results", icon=":material/table:",
                           help="One row per image, label and method, for pandas, Excel (via Power "
                                "Query) or any Parquet reader.")
    video = store.root / "overlay.mp4"
    if video.exists():
        c3.download_button("Download the overlay video (overlay.mp4)", video.read_bytes(), "overlay.mp4",
                           key="xai_audit_dl_video", icon=":material/movie:")


def overlay_video(store: Any, frame) -> None:
    """A video audit's overlay video, with what its tint, bar and strip mean."""
    video = store.root / "overlay.mp4"
    if not video.exists():
        return
    from explainers.base import get_method

    st.subheader("Overlay video")
    params = (store.read_manifest() or {}).get("params") or {}
    method = params.get("methods", ["gradcam"])[0]
    cropped = params.get("resize", "crop") == "crop"
    st.caption(f"Every audited frame, tinted by its {get_method(method).title} map for the label named "
               "on the bar above it (with its probability), each frame scaled to its own strongest value "
               "(colours below). The thin strip along the bar's bottom shows the label of every frame so "
               "far, one colour per label: a change of colour is a change of prediction."
               + (" Outside the square the model saw (its centre crop), the frame is left as it is."
                  if cropped else ""))
    st.html(legends_html(method_legends(frame, method, "the label on the bar")))
    st.video(str(video), width=720)  # the frame's own size would fill the page


__all__ = ["AuditJob", "start_job", "current_job", "source_form", "settings_form", "progress_panel",
           "results_panel", "resolve_server_folder", "server_root", "save_upload"]
