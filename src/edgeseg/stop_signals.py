"""The signals that ask a command to stop, and how handlers are put on them (one home for the three users:
the command line, the live pipeline and the video writer).

SIGTERM comes from ``timeout``, systemd and ``docker stop``; SIGHUP from a closed terminal. Both should stop a
command as Ctrl-C does, cleaning up after it. Handlers can only be set from the main thread (Python runs them
there); elsewhere these helpers change nothing.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def set_stop_handler(handler) -> dict:
    """Handle every stop signal with ``handler`` (a function or ``signal.SIG_IGN``); returns the previous handlers."""
    if not _in_main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in STOP_SIGNALS}


def restore(previous: dict) -> None:
    """Put back what :func:`set_stop_handler` returned (None, a handler set outside Python, as the default)."""
    for s, handler in previous.items():
        signal.signal(s, signal.SIG_DFL if handler is None else handler)


@contextmanager
def stop_handler(handler):
    """:func:`set_stop_handler` for the block, the previous handlers back after it."""
    previous = set_stop_handler(handler)
    try:
        yield previous
    finally:
        restore(previous)
