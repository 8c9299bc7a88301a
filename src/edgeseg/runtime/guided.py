"""Guided upsampling of a low-resolution mask to the frame: edges that follow the image.

The fast guided filter (He & Sun, 2015): on a grid at the model's resolution (a mask of twice ``GRID`` cells or
more on its longer side is halved first), fit the probability locally as ``a * gray + b`` (box windows of
``radius`` cells), smooth the coefficients, resize them to the frame and apply them to the frame's own gray
levels. Where the image has an edge near the mask's, the mask's edge moves onto it; where the image is flat,
``a`` is ~0 and the mask comes out smoothed over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.runtime.scratch import Scratch
from edgeseg.runtime.shrink import halve

RADIUS = 2  # box window half-width in cells of the fit's grid (about 10 px of a 640 x 480 frame at 128 cells)
EPS = 1e-3  # regularisation of a: larger keeps the mask nearer the bilinear one on weak image edges
# The fit's grid at most: RADIUS and EPS were chosen at 128 px. A mask of 256 px or more is halved first, so that the
# windows span the share of the image they were chosen for: better edges on the portraits' real labels, and a
# quarter of the work per halving (experiments/README.md, "The guided fit's grid").
GRID = 128


@dataclass(frozen=True)
class MaskField:
    """A mask as two low-resolution planes over the frame's grey levels: at each pixel,
    ``alpha = clip(a * gray + b)`` with ``a`` and ``b`` resized bilinearly to the frame (float32, same shape).

    Guided edges fit ``a`` and ``b`` to the image; bilinear edges are ``a = 0``. Rendering it is all the
    frame-sized work of a mask, so the fused frame path (:mod:`edgeseg.runtime.composite`) does it in the
    same pass as the effect.
    """

    a: np.ndarray
    b: np.ndarray


class GuidedUpsampler:
    """``alpha = ramp(a * gray + b)`` at frame size, from a probability and the frame it was computed from.

    ``ramp`` is the soft threshold (0 below ``low``, 1 above ``high``), folded into ``a`` and ``b`` on the fit's
    grid (:meth:`fit`) so that the frame-sized work (:meth:`render`) is two resizes, a multiply and
    an add.
    """

    def __init__(self, radius: int = RADIUS, eps: float = EPS, grid: int | None = GRID):
        """``grid``: a mask whose longer side is at least twice this is halved until it is not (None: fitted at
        its own resolution)."""
        if radius < 1 or eps <= 0 or (grid is not None and grid < 1):
            raise ValueError(f"radius and grid must be >= 1 and eps > 0, received {radius}, {grid} and {eps}")
        self._grid = grid
        self._kernel = np.full(2 * radius + 1, 1 / (2 * radius + 1), np.float32)
        self._eps = np.float32(eps)
        self._scratch = Scratch()

    def __call__(self, prob: np.ndarray, small_bgr: np.ndarray, frame: np.ndarray, low: float, high: float,
                 out: np.ndarray | None = None) -> np.ndarray:
        """Alpha at ``frame``'s size (float32 in [0, 1], or 0-255 into a uint8 ``out``).

        ``prob``: float32 probability at the model's resolution; ``small_bgr``: the BGR model input it came
        from (the guide at that resolution); ``frame``: the BGR frame (the guide at full size).
        """
        eight_bit = out is not None and out.dtype == np.uint8
        return self.render(self.fit(prob, small_bgr, low, high, 255.0 if eight_bit else 1.0), frame, out)

    def fit(self, prob: np.ndarray, small_bgr: np.ndarray, low: float, high: float, unit: float = 255.0,
            compiled: bool = False) -> MaskField:
        """The field on the fit's grid: the soft threshold between ``low`` and ``high`` folded in, alpha in
        ``unit`` (1 or 255) per grey level 0-255. Valid until the next call (work arrays).

        ``compiled`` (the fused path): the per-pixel arithmetic in two compiled loops (numba) around two
        multi-channel window means, instead of ~25 OpenCV calls on small arrays."""
        work = self._scratch
        box = self._box
        while self._grid and max(prob.shape) >= 2 * self._grid:
            prob = halve(prob, work, f"prob/{prob.shape[0]}")
        if small_bgr.shape[:2] != prob.shape:  # a halved mask, or a model's output smaller or larger than its input
            small_bgr = cv2.resize(small_bgr, prob.shape[::-1], dst=work.array("small", (*prob.shape, 3)),
                                   interpolation=cv2.INTER_AREA)
        shape = prob.shape
        scale = unit / max(high - low, 1e-6)  # the ramp, folded in: (a g + b - low) * scale, in output units
        if compiled:
            from edgeseg.runtime import kernels

            products = work.array("products", (*shape, 4), np.float32)
            kernels.guide_products(np.ascontiguousarray(small_bgr), np.ascontiguousarray(prob, np.float32), products)
            a, b = (work.array(f"planes/{n}", shape, np.float32) for n in "ab")
            kernels.guide_planes(box(products), self._eps, np.float32(low), np.float32(scale), a, b)
            return MaskField(box(a), box(b))
        g = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY, dst=work.array("g8", shape))
        g = np.multiply(g, np.float32(1 / 255), out=work.array("g", shape, np.float32))
        tmp = work.array("tmp", shape, np.float32)
        mean_g, mean_p = box(g, "mean_g"), box(prob, "mean_p")
        cov = box(cv2.multiply(g, prob, dst=tmp), "cov")
        var = box(cv2.multiply(g, g, dst=tmp), "var")
        cov -= cv2.multiply(mean_g, mean_p, dst=tmp)
        var -= cv2.multiply(mean_g, mean_g, dst=tmp)
        var += self._eps
        a = cv2.divide(cov, var, dst=cov)
        b = np.subtract(mean_p, cv2.multiply(a, mean_g, dst=tmp), out=mean_p)
        a *= np.float32(scale / 255)  # per gray level 0-255
        b -= np.float32(low)
        b *= np.float32(scale)
        return MaskField(box(a), box(b))

    def render(self, field: MaskField, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``clip(a * gray + b)`` at ``frame``'s size with OpenCV: float32 in [0, 1] (a field in units of 1), or
        0-255 into a uint8 ``out`` (a field in units of 255)."""
        work = self._scratch
        height, width = frame.shape[:2]
        size = (height, width)
        big_a = cv2.resize(field.a, (width, height), dst=work.array("A", size, np.float32),
                           interpolation=cv2.INTER_LINEAR)
        big_b = cv2.resize(field.b, (width, height), dst=work.array("B", size, np.float32),
                           interpolation=cv2.INTER_LINEAR)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=work.array("gray", size))
        q = cv2.multiply(gray, big_a, dst=big_a, dtype=cv2.CV_32F)
        if out is not None and out.dtype == np.uint8:  # the 8-bit sum saturates at 0 and 255: the clip for free
            return cv2.add(q, big_b, dst=out, dtype=cv2.CV_8U)
        q = cv2.min(cv2.max(cv2.add(q, big_b, dst=q), 0.0, dst=q), 1.0, dst=q if out is None else out)
        return q.copy() if out is None else q  # ``q`` is a work array the next frame overwrites

    def _box(self, x: np.ndarray, name: str | None = None) -> np.ndarray:
        """The mean over the window (separable: faster than ``cv2.boxFilter`` on float, the same sums) into the
        work array ``name``, or in place: fewer arrays, more of them in cache after the model ran."""
        dst = x if name is None else self._scratch.array(f"box/{name}", x.shape, np.float32)
        return cv2.sepFilter2D(x, -1, self._kernel, self._kernel, dst=dst, borderType=cv2.BORDER_REFLECT)
