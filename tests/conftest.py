"""Test-wide settings: quiet TensorFlow, an isolated cache folder, deterministic seeds."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XAI_LENS_TEST", "1")
