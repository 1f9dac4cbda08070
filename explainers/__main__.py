"""``python -m explainers`` entry point (see explainers.cli)."""
import os
import sys

# Before anything imports TensorFlow: its C++ start-up logs would break "one line on stderr".
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from explainers.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
