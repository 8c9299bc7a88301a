"""Progress of long work: on stderr, so that stdout carries only the command's output, and only on a
terminal, where someone watches (a pipe or a log file gets no bar or spinner lines)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None, transient: bool = False) -> Iterable[T]:
    """``items``, with a progress bar on a terminal's stderr (rich's ``track``)."""
    from rich.console import Console
    from rich.progress import track as rich_track

    console = Console(stderr=True)
    if not console.is_terminal:
        return items
    return rich_track(items, description=description, total=total, transient=transient, console=console)


@contextmanager
def status(message: str, after: float = 1.0, console=None) -> Iterator[None]:
    """A spinner with ``message`` on a terminal's stderr while the block runs (as rich's ``Console.status``), shown
    only once it has lasted ``after`` seconds (work that is usually quick stays silent) and gone when it ends.
    ``console``: rich's Console to draw on (default: stderr)."""
    from rich.console import Console
    from rich.live import Live
    from rich.spinner import Spinner

    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    # stdout is left alone: what a command prints there (JSON, say) must not move to the spinner's stderr
    spinner = Live(Spinner("dots", text=message, style="status.spinner"), console=console, transient=True,
                   redirect_stdout=False)
    lock, state = threading.Lock(), {"done": False, "shown": False}

    def show() -> None:
        with lock:
            if not state["done"]:
                spinner.start()
                state["shown"] = True

    timer = threading.Timer(after, show)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
            if state["shown"]:
                spinner.stop()
