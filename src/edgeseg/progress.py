"""Progress bars of long work: on stderr, so that stdout carries only the command's output, and only on a
terminal, where someone watches (a pipe or a log file gets no bar lines)."""

from __future__ import annotations

from typing import Iterable, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None, transient: bool = False) -> Iterable[T]:
    """``items``, with a progress bar on a terminal's stderr (rich's ``track``)."""
    from rich.console import Console
    from rich.progress import track as rich_track

    console = Console(stderr=True)
    if not console.is_terminal:
        return items
    return rich_track(items, description=description, total=total, transient=transient, console=console)
