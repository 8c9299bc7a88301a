"""The frame-sized work of the live loop as compiled row loops (numba): one pass over the frame per effect.

Each OpenCV call of the portable path (:mod:`edgeseg.runtime.effects`) is a pass over frame memory; here the
mask's expansion to the frame, the grey level and the blend happen per row while the row is in cache. Rows
are flat (``width * 3`` bytes): numba vectorises the loops with the channels interleaved. The two passes
(:func:`composite_rows`, :func:`backdrop_rows`) take a row range, release the GIL and leave other rows alone,
so the caller splits a frame into strips over threads. :func:`guide_products` and :func:`guide_planes` are the
guided filter's per-pixel arithmetic at the model's resolution.

The mask comes as a *field*: ``alpha = clip(a * gray + b, 0, 255)`` with ``a`` and ``b`` at the model's
height and the frame's width (resized along columns by the caller, along rows here, with the weights of
``cv2.resize(INTER_LINEAR)``), or as a frame-sized 0-255 mask.
Importing this module needs numba; :mod:`edgeseg.runtime.composite` falls back to OpenCV without it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

F = np.float32
JIT = dict(nogil=True, fastmath=True, cache=True)

# modes of :func:`composite_rows`
ALPHA, GRAY, IMAGE, SMALL, COLOR, BGRA = range(6)
QUARTER = 4  # blur-bg's background is blurred at a quarter of the frame's size


@njit(**JIT, inline="always")
def _gray(b, g, r):
    """BT.601 luma in 14-bit fixed point, rounded (OpenCV's scalar BGR2GRAY; its vectorised one rounds a level
    differently at ~0.3 % of pixels), exact in float32."""
    return np.floor((b * F(1868) + g * F(9617) + r * F(4899) + F(8192)) * F(1 / 16384))


@njit(**JIT, inline="always")
def _alpha(a0, a1, b0, b1, t, x, g):
    """The field at column ``x`` between two of its rows (``t``), applied to grey level ``g``: alpha 0-255."""
    a = a0[x] + t * (a1[x] - a0[x])
    b = b0[x] + t * (b1[x] - b0[x])
    return min(max(a * g + b, F(0)), F(255))


@njit(**JIT, inline="always")
def _mix(f, q, w):
    """``f * w + q * (1 - w)``, rounded to uint8."""
    return np.uint8(q + (f - q) * w + F(0.5))


@njit(**JIT)
def _alpha_row(f, a0, a1, b0, b1, t, o):
    for x in range(o.size):
        g = _gray(F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2]))
        o[x] = np.uint8(_alpha(a0, a1, b0, b1, t, x, g) + F(0.5))


@njit(**JIT)
def _gray_row(f, a0, a1, b0, b1, t, o):
    for x in range(o.size // 3):
        b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        y = _gray(b, g, r)
        w = _alpha(a0, a1, b0, b1, t, x, y) * F(1 / 255)
        o[3 * x], o[3 * x + 1], o[3 * x + 2] = _mix(b, y, w), _mix(g, y, w), _mix(r, y, w)


@njit(**JIT)
def _image_row(f, a0, a1, b0, b1, t, bg, o):
    for x in range(o.size // 3):
        b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        w = _alpha(a0, a1, b0, b1, t, x, _gray(b, g, r)) * F(1 / 255)
        o[3 * x] = _mix(b, F(bg[3 * x]), w)
        o[3 * x + 1] = _mix(g, F(bg[3 * x + 1]), w)
        o[3 * x + 2] = _mix(r, F(bg[3 * x + 2]), w)


@njit(**JIT)
def _color_row(f, a0, a1, b0, b1, t, color, w0, w1, o):
    """The frame's weight is ``w0 + w1 * alpha``: (0, 1/255) puts the colour behind the subject, (1, -opacity/255)
    lays it over the subject."""
    cb, cg, cr = color[0], color[1], color[2]
    for x in range(o.size // 3):
        b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        w = w0 + w1 * _alpha(a0, a1, b0, b1, t, x, _gray(b, g, r))
        o[3 * x], o[3 * x + 1], o[3 * x + 2] = _mix(b, cb, w), _mix(g, cg, w), _mix(r, cr, w)


@njit(**JIT)
def _bgra_row(f, a0, a1, b0, b1, t, o):
    for x in range(o.size // 4):
        b, g, r = f[3 * x], f[3 * x + 1], f[3 * x + 2]
        o[4 * x], o[4 * x + 1], o[4 * x + 2] = b, g, r
        o[4 * x + 3] = np.uint8(_alpha(a0, a1, b0, b1, t, x, _gray(F(b), F(g), F(r))) + F(0.5))


@njit(**JIT)
def composite_rows(mode, frame, field_a, field_b, y0, y1, wy, mask, background, bg_y0, bg_y1, bg_wy, color, tint,
                   out, start, stop):
    """Rows ``start:stop`` of one effect (``mode``), every image flat per row (``frame``: (H, 3W) uint8).

    The mask is the field ``field_a``/``field_b`` (h, W) float32 with its row tables ``y0``, ``y1``, ``wy``
    (H), or, if ``mask`` (H, W) uint8 is not empty, that mask (the field ``a = 0``, ``b = mask``).
    IMAGE: ``background`` (H, 3W) uint8; SMALL: ``background`` (h', 3W) with its row tables (H);
    COLOR: ``color`` (3 values), laid over the subject at opacity ``tint`` if that is > 0 (else behind it).
    ``out``: (H, 3W); (H, 4W) for BGRA; (H, W) for ALPHA.
    """
    row = np.empty(background.shape[1], np.float32)
    w0, w1 = (F(1), -tint * F(1 / 255)) if tint else (F(0), F(1 / 255))
    zeros, given = np.zeros(frame.shape[1] // 3, np.float32), np.empty(frame.shape[1] // 3, np.float32)
    for y in range(start, stop):
        f, o = frame[y], out[y]
        if mask.size:
            m = mask[y]
            for x in range(given.size):
                given[x] = F(m[x])
            a0, a1, b0, b1, t = zeros, zeros, given, given, F(0)
        else:
            a0, a1, b0, b1, t = field_a[y0[y]], field_a[y1[y]], field_b[y0[y]], field_b[y1[y]], wy[y]
        if mode == ALPHA:
            _alpha_row(f, a0, a1, b0, b1, t, o)
        elif mode == GRAY:
            _gray_row(f, a0, a1, b0, b1, t, o)
        elif mode == IMAGE:
            _image_row(f, a0, a1, b0, b1, t, background[y], o)
        elif mode == SMALL:  # the background's rows mixed first: a background of the frame's size, one row of it
            r0, r1, u = background[bg_y0[y]], background[bg_y1[y]], bg_wy[y]
            for i in range(row.size):
                row[i] = F(r0[i]) + u * (F(r1[i]) - F(r0[i]))
            _image_row(f, a0, a1, b0, b1, t, row, o)
        elif mode == COLOR:
            _color_row(f, a0, a1, b0, b1, t, color, w0, w1, o)
        else:
            _bgra_row(f, a0, a1, b0, b1, t, o)


@njit(**JIT)
def backdrop_rows(frame, field_a, field_b, y0, y1, wy, num, den, start, stop):
    """Blur-bg's first pass over rows ``start:stop`` (multiples of QUARTER): the 4 x 4 block means of the frame
    weighted by the background, ``f * (1 - alpha)``, into ``num`` (H/4, 3 W/4) and of the background's weight
    ``1 - alpha`` into ``den`` (H/4, W/4), float32. Rows and columns past the last whole block are left out.
    (Writing the mask here for the second pass to read costs more than that pass computing it again.)"""
    width = frame.shape[1] // 3
    sums, weights = np.zeros(3 * width, np.float32), np.zeros(width, np.float32)
    blocks = num.shape[1] // 3
    for y in range(start, stop):
        f, t = frame[y], wy[y]
        a0, a1, b0, b1 = field_a[y0[y]], field_a[y1[y]], field_b[y0[y]], field_b[y1[y]]
        for x in range(width):
            b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
            bg = F(1) - np.floor(_alpha(a0, a1, b0, b1, t, x, _gray(b, g, r)) + F(0.5)) * F(1 / 255)
            weights[x] += bg
            sums[3 * x] += b * bg
            sums[3 * x + 1] += g * bg
            sums[3 * x + 2] += r * bg
        if y % QUARTER == QUARTER - 1 and y // QUARTER < num.shape[0]:
            q = y // QUARTER
            for j in range(blocks):
                den[q, j] = (weights[4 * j] + weights[4 * j + 1] + weights[4 * j + 2] + weights[4 * j + 3]) * F(1 / 16)
                for c in range(3):
                    i = 12 * j + c
                    num[q, 3 * j + c] = (sums[i] + sums[i + 3] + sums[i + 6] + sums[i + 9]) * F(1 / 16)
            sums[:] = 0
            weights[:] = 0


@njit(**JIT)
def guide_products(small, prob, out):
    """The guided filter's inputs at the model's resolution, as the 4 channels of ``out`` (h, w, 4) for one
    window mean: grey level (0-1), probability, their product, the grey level squared."""
    h, w = prob.shape
    for i in range(h):
        s, p, o = small[i], prob[i], out[i]
        for j in range(w):
            g = _gray(F(s[j, 0]), F(s[j, 1]), F(s[j, 2])) * F(1 / 255)
            o[j, 0], o[j, 1], o[j, 2], o[j, 3] = g, p[j], g * p[j], g * g


@njit(**JIT)
def guide_planes(means, eps, low, scale, out):
    """From the window means of :func:`guide_products` to the field's planes before their own window mean, with
    the soft threshold folded in: ``a`` (per grey level 0-255) and ``b`` as the 2 channels of ``out`` (h, w, 2)."""
    h, w = out.shape[:2]
    for i in range(h):
        m, o = means[i], out[i]
        for j in range(w):
            mean_g, mean_p = m[j, 0], m[j, 1]
            a = (m[j, 2] - mean_g * mean_p) / (m[j, 3] - mean_g * mean_g + eps)
            o[j, 0] = a * (scale / F(255))
            o[j, 1] = (mean_p - a * mean_g - low) * scale
