"""Plumbing shared by the two command-line tools (``python -m model_zoo``, ``python -m explainers``).

Both promise the same contract: every bad input ends with exit code 2 and one line on stderr
starting with ``error: `` (``--verbose`` shows the traceback), a bug ends with exit code 1 and
one line, and TensorFlow's C++ start-up chatter never reaches stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import Callable, Mapping, Sequence

EXIT_USAGE = 2
EXIT_INTERNAL = 1


class CLIError(ValueError):
    """A user error detected by a CLI itself."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one ``error: ...`` line (exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see: {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


DEFAULT_TOP_K = 5


def resolve_top_k(requested: int | None, num_classes: int) -> int:
    """``--top-k`` checked against the model; unset means 5, or every class of a smaller model.

    Why: a fixed default of 5 made every command fail on a 2-class model without ``--top-k``.
    """
    if requested is None:
        return min(DEFAULT_TOP_K, num_classes)
    if requested > num_classes:
        raise CLIError(f"--top-k must be between 1 and {num_classes} for this model, "
                       f"got {requested}")
    return requested


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras with file descriptor 2 pointed at /dev/null.

    TF 2.21 prints absl/oneDNN start-up lines from C++ that ``TF_CPP_MIN_LOG_LEVEL`` does not
    silence; they would break the "one line on stderr" contract.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def heavy_imports(args: argparse.Namespace) -> None:
    if not args.verbose:
        import_tensorflow_quietly()


def read_image_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CLIError(f"the image file {path} does not exist") from None
    except IsADirectoryError:
        raise CLIError(f"{path} is a folder, not an image file") from None
    except OSError as e:
        raise CLIError(f"cannot read the image file {path}: {e.strerror or e}") from None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def run_cli(
    parser: argparse.ArgumentParser,
    commands: Mapping[str, Callable[[argparse.Namespace], int]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, dispatch and turn errors into the exit-code contract above."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parser.parse_args(argv)
    if not args.verbose:
        warnings.filterwarnings("ignore")
    try:
        return commands[args.command](args)
    except (ValueError, OSError) as e:  # ModelError, ImageError, ExplainerError, CLIError, ...
        if args.verbose:
            traceback.print_exc()
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a bad input: still one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error ({type(e).__name__}: {one_line(e)}); rerun with "
              "--verbose for details", file=sys.stderr)
        return EXIT_INTERNAL
