"""Reusable work arrays for per-frame code.

Allocating a frame-sized array per frame is not just a malloc: large blocks come straight from the
kernel, so every frame pays page faults for them, which can cost more than the effect itself. Per-frame
code asks a ``Scratch`` instead.
"""

from __future__ import annotations

import numpy as np


class Scratch:
    """Named arrays, reused from call to call while the requested shape and dtype stay the same."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        """The array called ``name`` (uninitialised when new), reallocated only if shape or dtype change."""
        a = self._arrays.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = self._arrays[name] = np.empty(shape, dtype)
        return a

    def filled(self, shape: tuple[int, int, int], color: tuple[int, int, int]) -> np.ndarray:
        """A BGR image of one colour, filled once and reused while shape and colour stay the same (read-only)."""
        name = f"filled{tuple(color)}"
        old = self._arrays.get(name)
        image = self.array(name, shape)
        if image is not old:  # row-wise: numpy's broadcast of a 3-vector is ~40x slower
            image.reshape(shape[0], -1)[:] = np.tile(np.asarray(color, np.uint8), shape[1])
        return image
