"""Quiet by default: the libraries' own C++ logs (TensorFlow, LiteRT) appear only with ``--verbose``."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence the libraries' own logging for this process (call before TensorFlow is imported)."""
    global _quiet
    _quiet = quiet
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ INFO/WARNING lines
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        import logging

        for name in ("absl", "tensorflow", "tf2onnx", "onnxruntime"):  # their INFO lines narrate internals
            logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Drop what native code writes to stderr inside the block (LiteRT prints an INFO line per interpreter),
    unless --verbose asked for it. Python's own stderr is flushed first and kept."""
    if not _quiet:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded hosts)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextmanager
def opencv_silenced() -> Iterator[None]:
    """Drop OpenCV's log lines and its codecs' own stderr output (libpng, libtiff, FFmpeg) inside the block,
    where the caller's error already says what failed."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        with native_stderr_silenced():
            yield
    finally:
        cv2.utils.logging.setLogLevel(level)
