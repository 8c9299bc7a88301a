"""Quiet by default: the libraries' own C++ logs (TensorFlow, LiteRT) appear only with ``--verbose``."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator

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


def _process_wide(apply: Callable[[], Callable[[], None]]) -> Callable[[], ContextManager[None]]:
    """A context manager for a process-wide setting that several threads may hold at once: the first to enter
    applies it, the last to leave undoes it (a save-and-restore per thread would restore another's state)."""
    lock, depth, undo = threading.Lock(), 0, None

    @contextmanager
    def held() -> Iterator[None]:
        nonlocal depth, undo
        with lock:
            if depth == 0:
                undo = apply()
            depth += 1
        try:
            yield
        finally:
            with lock:
                depth -= 1
                if depth == 0:
                    undo()

    return held


def _stderr_to_devnull() -> Callable[[], None]:
    sys.stderr.flush()  # Python's own buffered lines go out first
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded hosts)
        return lambda: None
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)

    return restore


def _opencv_logs_off() -> Callable[[], None]:
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    return lambda: cv2.utils.logging.setLogLevel(level)


_native_stderr_off = _process_wide(_stderr_to_devnull)
_opencv_off = _process_wide(_opencv_logs_off)


def native_stderr_silenced() -> ContextManager[None]:
    """Drop what native code writes to stderr inside the block (LiteRT prints an INFO line per interpreter),
    unless --verbose asked for it. Python's own stderr is flushed first and kept."""
    return _native_stderr_off() if _quiet else nullcontext()


@contextmanager
def opencv_silenced() -> Iterator[None]:
    """Drop OpenCV's log lines and its codecs' own stderr output (libpng, libtiff, FFmpeg) inside the block,
    where the caller's error already says what failed."""
    with _opencv_off(), native_stderr_silenced():
        yield
