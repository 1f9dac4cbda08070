"""``python -m model_zoo`` entry point (see model_zoo.cli)."""
import os
import sys

# Before anything imports TensorFlow: its C++ start-up logs would break "one line on stderr".
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from model_zoo.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
