"""The fused frame path: a mask field rendered and an effect applied in one pass over the frame.

The portable path renders the mask to the frame with OpenCV (:meth:`GuidedUpsampler.render`) and then blends
(:mod:`edgeseg.runtime.effects`): each call is a pass over frame memory, about ten per frame. Here the
compiled row loops of :mod:`edgeseg.runtime.kernels` read each frame row once, expand the mask where it is
neither 0 nor 255 for certain (elsewhere they copy or fill), and write the result, in strips of rows over
threads (blur-bg: its block means made a few rows ahead of the blend, in the same strip, and read again from
cache). Results match the portable path within 2 levels (tests).
It needs numba; :func:`default_frame_path` falls back to OpenCV.
"""

from __future__ import annotations

import functools
import importlib.util
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.progress import status
from edgeseg.runtime.cores import usable_cores
from edgeseg.runtime.effects import (
    BLUR, KEY_COLOR, MIN_WEIGHT, OVERLAY_COLOR, OVERLAY_OPACITY, QUARTER, Effect, blur_bg, quarter_taps,
)
from edgeseg.runtime.guided import MaskField
from edgeseg.runtime.scratch import Scratch


class FramePath(Choice):
    """How the frame-sized work (the mask's resize to the frame and the effect) is done."""

    FUSED = "fused"  # compiled row loops, one pass per effect (needs numba)
    OPENCV = "opencv"  # a sequence of OpenCV calls (portable)


@functools.cache
def fused_available() -> bool:
    """numba is installed (looked up once: a missing module is searched for on disk at every lookup)."""
    return importlib.util.find_spec("numba") is not None


def default_frame_path() -> FramePath:
    return FramePath.FUSED if fused_available() else FramePath.OPENCV


def check_frame_path(path: FramePath | str) -> FramePath:
    """``path`` as a FramePath, or a clear error when the fused one is asked for without numba."""
    path = FramePath(path)
    if path is FramePath.FUSED and not fused_available():
        raise ImportError("the fused frame path needs numba (pip install numba), or use --frame-path opencv")
    return path


# shown on a terminal while the kernels compile (Compositor)
COMPILING = "compiling the fused frame path (once: numba caches it)"
# Frames smaller than this run on one thread: waking another costs more than it saves (on the 2-core VM of
# benchmarks/README.md, grayscale-bg at 320x240 was slower on two threads, from 480x360 up faster)
MIN_SPLIT_PIXELS = 100_000
_EMPTY = np.empty((0, 0), np.uint8)  # no background, no mask
_NO_TABLE = np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32)
_NO_GAUSS = np.empty(0, np.float32), np.empty(0, np.int32), np.empty(0, np.int32)
_NO_FIELD = (np.empty((0, 0), np.float32), np.empty((0, 0), np.float32), _NO_TABLE[0], _NO_TABLE[2], _NO_TABLE, _EMPTY,
             np.zeros(1, np.int32))


class Compositor:
    """Effects on frames, fused with the rendering of their mask field (or applied with a given 0-255 mask).

    Every frame-sized array is reused from call to call: the returned image is overwritten by the next call.
    """

    def __init__(self, threads: int | None = None):
        self._threads = max(1, threads or min(usable_cores(), 4))
        self._pool = ThreadPoolExecutor(self._threads - 1) if self._threads > 1 else None
        self._scratch = Scratch()
        self._tables: dict[tuple, np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # Every kernel of the fused path compiled (or loaded from numba's cache) now, not on the first frame.
        # Compiling takes about 13 s on a 2-core x86 CPU, once per install: a terminal is told why it waits.
        with status(COMPILING):
            from edgeseg.runtime import kernels  # numba: imported here, so the portable path never needs it

            self._kernels = kernels
            for effect in (Effect.BLUR_BG, Effect.GRAYSCALE_BG):
                self(effect, np.zeros((8, 8, 3), np.uint8), MaskField(*np.zeros((2, 2, 2), np.float32)))
            products = np.zeros((2, 2, 4), np.float32)
            kernels.guide_products(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.float32), products)
            kernels.guide_planes(products, np.float32(1e-3), np.float32(0), np.float32(1),
                                 *np.zeros((2, 2, 2), np.float32))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def mask(self, field: MaskField, frame: np.ndarray) -> np.ndarray:
        """The field rendered at the frame's size (uint8 0-255)."""
        return self._run(self._kernels.ALPHA, frame, field, None, self._scratch.array("mask", frame.shape[:2]))

    def __call__(self, effect: Effect, frame: np.ndarray, field: MaskField | None = None,
                 mask: np.ndarray | None = None, background: np.ndarray | tuple[int, int, int] | None = None,
                 blur: int = BLUR, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
        """``effect`` applied to a BGR uint8 frame with the mask ``field`` (or a frame-sized 0-255 ``mask``).

        ``background``: a frame-sized BGR image or a BGR colour (replace-bg; remove-bg keys to a colour),
        ``blur``: blur-bg's strength, ``opacity``: overlay's. The effects of :mod:`edgeseg.runtime.effects`.
        """
        k, s = self._kernels, self._scratch
        effect, shape = Effect(effect), frame.shape
        if effect is Effect.NONE:
            out = s.array("out", shape)
            np.copyto(out, frame)
            return out
        if effect is Effect.GRAYSCALE_BG:
            return self._run(k.GRAY, frame, field, mask, s.array("out", shape))
        if effect is Effect.BLUR_BG:
            return self._blur(frame, field, mask, blur)
        if effect is Effect.OVERLAY:
            return self._run(k.COLOR, frame, field, mask, s.array("out", shape), color=OVERLAY_COLOR, tint=opacity)
        if effect is Effect.REMOVE_BG and not isinstance(background, tuple):
            return self._run(k.BGRA, frame, field, mask, s.array("out", (*shape[:2], 4)))
        if background is None:  # replace-bg's default
            background = KEY_COLOR
        if isinstance(background, tuple):
            return self._run(k.COLOR, frame, field, mask, s.array("out", shape), color=background)
        return self._run(k.IMAGE, frame, field, mask, s.array("out", shape), background=background)

    def _blur(self, frame: np.ndarray, field: MaskField | None, mask: np.ndarray | None, strength: int) -> np.ndarray:
        """The portable effect's arithmetic (halo-free: ``blur(sums) / blur(weight)`` at a quarter of the size,
        :func:`quarter_taps`) in one pass: the background-weighted frame and the background's weight are summed
        in 4 x 4 blocks and blurred along the rows a few rows of blocks ahead of the blend, which blurs them down
        the columns, divides and widens each row of blocks once."""
        if field is None:  # a given (feathered) mask: the portable effect
            return blur_bg(frame, self._checked(mask, frame), strength, scratch=self._scratch)
        return self._run(self._kernels.SMALL, frame, field, None, self._scratch.array("out", frame.shape),
                         gauss=self._gauss(strength, frame))

    def _gauss(self, strength: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """blur-bg's Gaussian over the frame's 4 x 4 blocks (at least one row and column of them): its taps, and
        the row and the column of blocks at each position of the rows and columns padded by its radius,
        reflected at the borders as OpenCV's filters reflect them (:func:`quarter_blur`)."""
        blocks = [max(1, n // QUARTER) for n in frame.shape[:2]]
        key = ("gauss", strength, *blocks)
        if key not in self._tables:
            taps = quarter_taps(strength)
            r = taps.size // 2
            self._tables[key] = (taps, *(np.array([cv2.borderInterpolate(i, n, cv2.BORDER_REFLECT_101)
                                                   for i in range(-r, n + r)], np.int32) for n in blocks))
        return self._tables[key]

    def _rows(self, src: int, dst: int, scale: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tables of a bilinear resize from ``src`` to ``dst`` rows (or columns), as ``cv2.resize`` maps them
        (``scale``: source pixels per destination pixel, ``src / dst`` unless given)."""
        key = (src, dst, scale)
        if key not in self._tables:
            y = (np.arange(dst) + 0.5) * (scale or src / dst) - 0.5
            first = np.floor(y)
            weight = np.where(first < 0, 0.0, y - first).astype(np.float32)
            first = first.astype(np.int32)
            self._tables[key] = (np.clip(first, 0, src - 1), np.clip(first + 1, 0, src - 1), weight)
        return self._tables[key]

    def _field(self, frame: np.ndarray, field: MaskField) -> tuple:
        """The kernels' arguments for ``field``: its planes, their tables of a bilinear resize to the frame (rows:
        first and weight; columns), the kinds of its cells and the first frame column of each cell."""
        h, w = frame.shape[:2]
        n, m = field.a.shape
        a, b = (np.ascontiguousarray(plane, np.float32) for plane in (field.a, field.b))
        cells = self._scratch.array("cells", (n, m))
        self._kernels.classify(a, b, cells)
        cols = self._rows(m, w)
        key = ("starts", m, w)
        if key not in self._tables:
            self._tables[key] = np.searchsorted(cols[0], np.arange(m + 1)).astype(np.int32)
        rows = self._rows(n, h)
        return (a, b, rows[0], rows[2], cols, cells, self._tables[key])

    @staticmethod
    def _checked(mask: np.ndarray | None, frame: np.ndarray) -> np.ndarray:
        if mask is None or mask.shape != frame.shape[:2] or mask.dtype != np.uint8:
            raise ValueError(f"a mask field or a uint8 {frame.shape[0]}x{frame.shape[1]} mask is needed, received "
                             f"{None if mask is None else (mask.dtype, mask.shape)}")
        return mask

    def _run(self, mode: int, frame: np.ndarray, field: MaskField | None, mask: np.ndarray | None,
             out: np.ndarray, background: np.ndarray | None = None, color: tuple[int, int, int] = (0, 0, 0),
             tint: float = 0.0, gauss: tuple[np.ndarray, np.ndarray, np.ndarray] = _NO_GAUSS) -> np.ndarray:
        """:func:`kernels.composite_rows` over the frame, with the mask ``field`` or else ``mask``;
        ``background``: frame-sized (IMAGE); ``gauss``: blur-bg's Gaussian (SMALL, :meth:`_gauss`)."""
        h = frame.shape[0]
        if field is not None:
            field, mask = self._field(frame, field), _EMPTY
        else:
            field, mask = _NO_FIELD, self._checked(mask, frame)
        background = _EMPTY if background is None else _flat(background)
        bg_rows = _NO_TABLE
        if mode == self._kernels.SMALL:  # a pixel per block: the rows at the blocks' centres, as blur_bg places them
            bg_rows = self._rows(max(1, h // QUARTER), h, 1 / QUARTER)
        args = (mode, _flat(frame), *field, mask, background, bg_rows, gauss, np.float32(MIN_WEIGHT),
                np.asarray(color, np.float32), np.float32(tint), out.reshape(h, -1))
        self._strips(self._kernels.composite_rows, args, frame)
        return out

    def _strips(self, kernel, args: tuple, frame: np.ndarray) -> None:
        """``kernel(*args, start, stop)`` over strips of ``frame``'s rows, one per thread (the first on this one)
        for frames of at least MIN_SPLIT_PIXELS."""
        rows = frame.shape[0]
        big = rows * frame.shape[1] >= MIN_SPLIT_PIXELS and rows >= 2 * self._threads
        n = self._threads if self._pool is not None and big else 1
        cuts = [rows * i // n for i in range(n)] + [rows]
        futures = [self._pool.submit(kernel, *args, cuts[i], cuts[i + 1]) for i in range(1, n)]
        kernel(*args, cuts[0], cuts[1])
        for future in futures:
            future.result()


def _flat(image: np.ndarray) -> np.ndarray:
    """The image as rows of bytes (the kernels' layout): a view when it is contiguous."""
    return np.ascontiguousarray(image).reshape(image.shape[0], -1)
