"""Dataset audit: explain a folder, a zip, a file list or a video — locally or on Ray — and
find where a model looks across whole classes (strategy clusters, flags). No Streamlit here.

    from explainers.audit import AuditConfig, open_source, run_audit
    summary = run_audit(open_source("data/"), "out/", model={"ref": "model.keras"})
"""
from explainers.audit.process import AuditConfig, AuditWorker, DEFAULT_METHODS, image_id, image_seed
from explainers.audit.run import AuditProgress, run_audit
from explainers.audit.sources import GroundTruth, Source, SourceError, open_source
from explainers.audit.store import ResultStore, read_results

__all__ = [
    "AuditConfig", "AuditWorker", "AuditProgress", "DEFAULT_METHODS", "GroundTruth", "ResultStore",
    "Source", "SourceError", "image_id", "image_seed", "open_source", "read_results", "run_audit",
]
