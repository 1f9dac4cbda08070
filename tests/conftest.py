"""Test-wide settings: quiet TensorFlow (tests that need an isolated model cache set XAI_LENS_CACHE themselves)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XAI_LENS_TEST", "1")

# streamlit-webrtc's SRTP library segfaults when loaded after TensorFlow (see ui/live.py): load it
# first, so that any test that runs app.py (which loads it) cannot crash the test process.
try:
    import pylibsrtp  # noqa: F401,E402
except ImportError:
    pass
