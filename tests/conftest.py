"""Test-wide settings: quiet TensorFlow (tests that need an isolated model cache set XAI_LENS_CACHE themselves)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XAI_LENS_TEST", "1")
