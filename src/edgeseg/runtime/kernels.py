"""The frame-sized work of the live loop as compiled row loops (numba): one pass over the frame per effect.

Each OpenCV call of the portable path (:mod:`edgeseg.runtime.effects`) is a pass over frame memory; here the
mask's expansion to the frame, the grey level and the blend happen per row while the row is in cache. Rows
are flat (``width * 3`` bytes): numba vectorises the loops with the channels interleaved (blur-bg's sums at a
quarter of the size are planes: strides of 4 vectorise, of 12 do not). The pass (:func:`composite_rows`) takes
a row range, releases the GIL and leaves other rows alone, so the caller splits a frame into strips over
threads. :func:`guide_products` and :func:`guide_planes` are the guided filter's per-pixel arithmetic on the
fit's grid (:data:`~edgeseg.runtime.guided.GRID`).

The mask comes as a *field*: ``alpha = clip(a * gray + b, 0, 255)`` with ``a`` and ``b`` on the mask's grid,
resized to the frame bilinearly (the weights of ``cv2.resize(INTER_LINEAR)``) row pair by row pair, or as a
frame-sized 0-255 mask. Most of a frame is far from the subject's outline, where alpha is 0 or 255 whatever the
pixel's grey level: :func:`classify` finds those cells of the field, and there the passes
copy or fill instead of computing alpha.
Importing this module needs numba; :mod:`edgeseg.runtime.composite` falls back to OpenCV without it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from edgeseg.runtime.effects import QUARTER

F = np.float32
# error_model numpy: no zero-division check per division (none divides by zero), so divisions vectorise
JIT = dict(nogil=True, fastmath=True, cache=True, error_model="numpy")

# modes of :func:`composite_rows`
ALPHA, GRAY, IMAGE, SMALL, COLOR, BGRA = range(6)
# kinds of the field's cells (:func:`classify`): alpha 0 or 255 whatever the pixel (copied or filled), or computed
BACKGROUND, SUBJECT, EDGE = 0, 1, 2


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
def classify(field_a, field_b, kinds):
    """The kind of each cell of the field (``kinds``: (h, w) uint8; cell ``(i, j)`` spans field rows ``i, i + 1``
    and columns ``j, j + 1``): BACKGROUND where alpha is 0 whatever the grey level, SUBJECT where it is 255,
    EDGE elsewhere. A pixel's ``a * g + b`` is a convex combination of those at the cell's corners (bilinear
    weights), so the corners' bounds over g in 0-255 bound it."""
    h, w = field_a.shape
    lo0, hi0, lo1, hi1 = np.empty(w + 1, F), np.empty(w + 1, F), np.empty(w + 1, F), np.empty(w + 1, F)
    _bounds(field_a[0], field_b[0], lo1, hi1)
    for i in range(h):
        lo0, hi0, lo1, hi1 = lo1, hi1, lo0, hi0  # row i's bounds were row i + 1's
        _bounds(field_a[min(i + 1, h - 1)], field_b[min(i + 1, h - 1)], lo1, hi1)
        lo0[w], hi0[w], lo1[w], hi1[w] = lo0[w - 1], hi0[w - 1], lo1[w - 1], hi1[w - 1]  # the last cell: one column
        row = kinds[i]
        for j in range(w):
            top = max(max(hi0[j], hi0[j + 1]), max(hi1[j], hi1[j + 1]))
            bottom = min(min(lo0[j], lo0[j + 1]), min(lo1[j], lo1[j + 1]))
            # EDGE, less 2 for BACKGROUND or 1 for SUBJECT (top >= bottom: never both), without branches
            row[j] = EDGE - 2 * (top <= F(0)) - (bottom >= F(255))


@njit(**JIT)
def _bounds(a, b, lo, hi):
    """The least and greatest of ``a * g + b`` over grey levels 0-255."""
    for j in range(a.size):
        e = b[j] + F(255) * a[j]
        lo[j], hi[j] = min(b[j], e), max(b[j], e)


@njit(**JIT)
def _runs(cells, starts, bounds, kinds):
    """The frame columns of one row of cells as runs of one kind: run ``k`` is columns ``bounds[k]:bounds[k + 1]``
    of kind ``kinds[k]``; ``starts[j]``: the first frame column of cell ``j``. Returns the number of runs."""
    n = 0
    for j in range(cells.size):
        if starts[j] == starts[j + 1]:
            continue
        if n == 0 or kinds[n - 1] != cells[j]:
            kinds[n] = cells[j]
            bounds[n] = starts[j]
            n += 1
    bounds[n] = starts[cells.size]
    return n


@njit(**JIT)
def _copy(f, o):
    for i in range(o.size):
        o[i] = f[i]


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
def _gray_fill(f, o):
    for x in range(o.size // 3):
        y = np.uint8(_gray(F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])))
        o[3 * x], o[3 * x + 1], o[3 * x + 2] = y, y, y


@njit(**JIT)
def _image_row(f, a0, a1, b0, b1, t, bg, o):
    for x in range(o.size // 3):
        b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        w = _alpha(a0, a1, b0, b1, t, x, _gray(b, g, r)) * F(1 / 255)
        o[3 * x] = _mix(b, F(bg[3 * x]), w)
        o[3 * x + 1] = _mix(g, F(bg[3 * x + 1]), w)
        o[3 * x + 2] = _mix(r, F(bg[3 * x + 2]), w)


@njit(**JIT)
def _small_row(f, a0, a1, b0, b1, t, q0b, q0g, q0r, q1b, q1g, q1r, u, o):
    """``_image_row`` with blur-bg's background between two of its rows (planes ``q0*``, ``q1*``) at ``u``."""
    for x in range(o.size // 3):
        b, g, r = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        w = _alpha(a0, a1, b0, b1, t, x, _gray(b, g, r)) * F(1 / 255)
        o[3 * x] = _mix(b, q0b[x] + u * (q1b[x] - q0b[x]), w)
        o[3 * x + 1] = _mix(g, q0g[x] + u * (q1g[x] - q0g[x]), w)
        o[3 * x + 2] = _mix(r, q0r[x] + u * (q1r[x] - q0r[x]), w)


@njit(**JIT)
def _small_fill(q0b, q0g, q0r, q1b, q1g, q1r, u, o):
    """``_small_row`` where alpha is 0: the background, rounded (``_mix`` with weight 0)."""
    for x in range(o.size // 3):
        o[3 * x] = np.uint8(q0b[x] + u * (q1b[x] - q0b[x]) + F(0.5))
        o[3 * x + 1] = np.uint8(q0g[x] + u * (q1g[x] - q0g[x]) + F(0.5))
        o[3 * x + 2] = np.uint8(q0r[x] + u * (q1r[x] - q0r[x]) + F(0.5))


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
def _color_fill(f, color, w, o):
    """``_color_row`` where alpha is the same at every pixel (the frame's weight ``w``)."""
    if w == F(1):
        _copy(f, o)
        return
    cb, cg, cr = color[0], color[1], color[2]
    for x in range(o.size // 3):
        o[3 * x], o[3 * x + 1], o[3 * x + 2] = (_mix(F(f[3 * x]), cb, w), _mix(F(f[3 * x + 1]), cg, w),
                                                _mix(F(f[3 * x + 2]), cr, w))


@njit(**JIT)
def _bgra_row(f, a0, a1, b0, b1, t, o):
    for x in range(o.size // 4):
        b, g, r = f[3 * x], f[3 * x + 1], f[3 * x + 2]
        o[4 * x], o[4 * x + 1], o[4 * x + 2] = b, g, r
        o[4 * x + 3] = np.uint8(_alpha(a0, a1, b0, b1, t, x, _gray(F(b), F(g), F(r))) + F(0.5))


@njit(**JIT)
def _bgra_fill(f, alpha, o):
    for x in range(o.size // 4):
        o[4 * x], o[4 * x + 1], o[4 * x + 2], o[4 * x + 3] = f[3 * x], f[3 * x + 1], f[3 * x + 2], alpha


@njit(**JIT)
def _background_row(ring, rows, taps, least, acc, v, wide):
    """A row of blur-bg's background at the frame's width, ``wide`` (3, W: B, G, R), from block means blurred
    along their rows (:func:`_block_rows`; row ``g`` at ``g % len(ring)``): the Gaussian ``taps`` down the rows
    ``rows`` (the row's neighbours, borders reflected), ``sums / max(weight, least)``, then bilinear: pixel
    ``4 j + p`` lies at block ``j + (2 p - 3) / 8``, and beyond the first and last block centres the value
    repeats. ``acc``: a work row like the ring's; ``v``: (3, blocks + 2)."""
    size = ring.shape[0]
    source, w = ring[rows[0] % size], taps[0]
    for i in range(acc.size):
        acc[i] = w * source[i]
    for t in range(1, taps.size):
        source, w = ring[rows[t] % size], taps[t]
        for i in range(acc.size):
            acc[i] += w * source[i]
    blocks = v.shape[1] - 2
    weight = acc[3 * blocks:]
    for c in range(3):
        sums, vc = acc[c * blocks:(c + 1) * blocks], v[c, 1:blocks + 1]
        for j in range(blocks):
            vc[j] = min(sums[j] / max(weight[j], least), F(255))
        v[c, 0], v[c, blocks + 1] = v[c, 1], v[c, blocks]
    n = min(blocks, wide.shape[1] // QUARTER)  # whole blocks: a frame narrower than a block has none
    for c in range(3):
        # planes: the four pixels of a block are stores of stride 4, which vectorise (BGR's 12 do not)
        left, middle, right, o = v[c, :n], v[c, 1:n + 1], v[c, 2:n + 2], wide[c]
        for j in range(n):
            m = middle[j]
            dl, dr = left[j] - m, right[j] - m
            o[4 * j], o[4 * j + 1] = m + F(0.375) * dl, m + F(0.125) * dl
            o[4 * j + 2], o[4 * j + 3] = m + F(0.125) * dr, m + F(0.375) * dr
        for x in range(QUARTER * n, wide.shape[1]):  # the columns past the last whole block
            o[x] = v[c, blocks]


@njit(**JIT)
def _any_background(kinds, n):
    for k in range(n):
        if kinds[k] != SUBJECT:
            return True
    return False


@njit(**JIT, inline="always")
def _widen(v0, v1, wx, row):
    """A cell's columns of a row of the field at the frame's width: between its values at the cell's two field
    columns, ``v0`` and ``v1``, by the weights ``wx``."""
    d = v1 - v0
    for x in range(row.size):
        row[x] = v0 + wx[x] * d


@njit(**JIT)
def _field_rows(field_a, field_b, i, cols, starts, bounds, kinds, n, a0, a1, b0, b1):
    """The field's rows ``i`` and ``i + 1`` at the frame's width in the EDGE runs (bilinear; ``cols``: column
    tables, ``starts``: the first frame column of each cell), cell by cell: within a cell the two field columns
    are the same, so no column is looked up per pixel."""
    fa0, fa1 = field_a[i], field_a[min(i + 1, field_a.shape[0] - 1)]
    fb0, fb1 = field_b[i], field_b[min(i + 1, field_b.shape[0] - 1)]
    x0s, x1s, wx = cols
    for k in range(n):
        if kinds[k] == EDGE:
            x, stop = bounds[k], bounds[k + 1]
            cell = x0s[x]
            while x < stop:
                end = min(starts[cell + 1], stop)
                if end > x:  # a frame narrower than the field has cells without columns
                    j, w = x1s[end - 1], wx[x:end]  # the last column's: at the left border the first is clipped
                    _widen(fa0[cell], fa0[j], w, a0[x:end])
                    _widen(fa1[cell], fa1[j], w, a1[x:end])
                    _widen(fb0[cell], fb0[j], w, b0[x:end])
                    _widen(fb1[cell], fb1[j], w, b1[x:end])
                x, cell = end, cell + 1


@njit(**JIT)
def composite_rows(mode, frame, field_a, field_b, y0, wy, cols, cells, starts, mask, background, bg_rows, gauss,
                   least, color, tint, out, start, stop):
    """Rows ``start:stop`` of one effect (``mode``), every image flat per row (``frame``: (H, 3W) uint8).

    The mask is the field ``field_a``/``field_b`` (h, w) float32, resized bilinearly to the frame with the row
    tables ``y0``, ``wy`` (H) and the column tables ``cols`` (W: first, second, weight), or, if ``mask``
    (H, W) uint8 is not empty, that mask (the field ``a = 0``, ``b = mask``). With a field, only the pixels
    of EDGE cells compute alpha; the others are copied or filled: ``cells`` the kinds of the field's cells
    (:func:`classify`), ``starts`` the first frame column of each (w + 1).
    IMAGE: ``background`` (H, 3W) uint8; SMALL (blur-bg, with a field): its background's row tables ``bg_rows``
    (a row per QUARTER x QUARTER block), its Gaussian ``gauss`` (the taps, and the row and the column of blocks
    at each position of the rows and columns padded by their radius, reflected at the borders) and the least
    weight ``least`` (:func:`_background_row`); the block means (:func:`_block_rows`) are computed as the
    rows need them, a few rows of blocks ahead, in a ring of rows that stays in cache;
    COLOR: ``color`` (3 values), laid over the subject at opacity ``tint`` if that is > 0 (else behind it).
    ``out``: (H, 3W); (H, 4W) for BGRA; (H, W) for ALPHA.
    """
    width = frame.shape[1] // 3
    bounds, kinds = np.empty(cells.shape[1] + 2, np.int32), np.empty(cells.shape[1] + 2, np.uint8)
    bounds[0], bounds[1], kinds[0], n = 0, width, EDGE, 1  # a given mask: every pixel is an edge pixel
    taps, down, along = gauss
    r = taps.size // 2
    rows, blocks = down.size - 2 * r, along.size - 2 * r  # of blocks: at least 1, whole or not
    whole = frame.shape[0] >= QUARTER and width >= QUARTER  # else an empty background: the ring stays 0
    # the rows of blocks that the Gaussians of a frame row's two background rows read (taps + 1), and one more
    ring = np.zeros((taps.size + 2, 4 * blocks), F)
    wide = width if mode == SMALL else 0  # blur-bg's work rows: empty for the other effects
    work = (np.zeros((4, wide), F), np.empty((4, along.size), F), np.empty(cells.shape[1] + 2, np.int32),
            np.empty(cells.shape[1] + 2, np.uint8), np.zeros(wide, F), np.zeros(wide, F), np.zeros(wide, F),
            np.zeros(wide, F), np.full(2, -1, np.int64))
    field, done = (field_a, field_b, y0, wy, cols, cells, starts), 0  # rows of blocks before ``done`` are made
    acc, v = np.empty(4 * blocks, F), np.empty((3, blocks + 2), F)
    wide0, wide1, held0, held1 = np.empty((3, wide), F), np.empty((3, wide), F), -1, -1
    w0, w1 = (F(1), -tint * F(1 / 255)) if tint else (F(0), F(1 / 255))
    a0, a1, b0, b1 = np.zeros(width, F), np.zeros(width, F), np.zeros(width, F), np.zeros(width, F)
    t, last = F(0), -1
    for y in range(start, stop):
        f, o = frame[y], out[y]
        if mask.size:
            m = mask[y]
            for x in range(width):
                b0[x] = F(m[x])
            b1 = b0
        else:
            t = wy[y]
            if y0[y] != last:
                last = y0[y]
                n = _runs(cells[last], starts, bounds, kinds)
                _field_rows(field_a, field_b, last, cols, starts, bounds, kinds, n, a0, a1, b0, b1)
        if mode == SMALL and _any_background(kinds, n):  # its rows made once each, mixed where they are seen
            i0, i1, u = bg_rows[0][y], bg_rows[1][y], bg_rows[2][y]
            need = min(i1 + r, rows - 1) + 1  # the rows of blocks the Gaussian of rows i0 and i1 reads
            if whole and need > done:  # rows before i0 - r are not needed again
                _block_rows(frame, field, (taps, along), max(done, i0 - r), need, ring, work)
                done = need
            if i0 == held1 and i0 != held0:
                wide0, wide1, held0, held1 = wide1, wide0, held1, held0
            if i0 != held0:
                _background_row(ring, down[i0:i0 + taps.size], taps, least, acc, v, wide0)
                held0 = i0
            if i1 != held1:
                _background_row(ring, down[i1:i1 + taps.size], taps, least, acc, v, wide1)
                held1 = i1
        for k in range(n):
            # slices: loops from 0 over a view compile to vector code (from x0 they check for negative indices)
            x0, x1, kind = bounds[k], bounds[k + 1], kinds[k]
            fs, os = f[3 * x0:3 * x1], o[3 * x0:3 * x1] if mode != ALPHA else o[x0:x1]
            if mode == BGRA:
                os = o[4 * x0:4 * x1]
            if kind == EDGE:
                c0, c1, d0, d1 = a0[x0:x1], a1[x0:x1], b0[x0:x1], b1[x0:x1]
                if mode == ALPHA:
                    _alpha_row(fs, c0, c1, d0, d1, t, os)
                elif mode == GRAY:
                    _gray_row(fs, c0, c1, d0, d1, t, os)
                elif mode == IMAGE:
                    _image_row(fs, c0, c1, d0, d1, t, background[y][3 * x0:3 * x1], os)
                elif mode == SMALL:
                    _small_row(fs, c0, c1, d0, d1, t, wide0[0, x0:x1], wide0[1, x0:x1], wide0[2, x0:x1],
                               wide1[0, x0:x1], wide1[1, x0:x1], wide1[2, x0:x1], u, os)
                elif mode == COLOR:
                    _color_row(fs, c0, c1, d0, d1, t, color, w0, w1, os)
                else:
                    _bgra_row(fs, c0, c1, d0, d1, t, os)
            elif mode == ALPHA:
                os[:] = 0 if kind == BACKGROUND else 255
            elif mode == BGRA:
                _bgra_fill(fs, np.uint8(0 if kind == BACKGROUND else 255), os)
            elif mode == COLOR:
                _color_fill(fs, color, w0 if kind == BACKGROUND else w0 + F(255) * w1, os)
            elif kind == SUBJECT:
                _copy(fs, os)
            elif mode == GRAY:
                _gray_fill(fs, os)
            elif mode == IMAGE:
                _copy(background[y][3 * x0:3 * x1], os)
            else:
                _small_fill(wide0[0, x0:x1], wide0[1, x0:x1], wide0[2, x0:x1], wide1[0, x0:x1], wide1[1, x0:x1],
                            wide1[2, x0:x1], u, os)


@njit(**JIT)
def _add(f, b, g, r, weight, keep):
    """The pixels of ``f`` (BGR) into the planes ``b``, ``g``, ``r`` with weight 1: added to what they hold times
    ``keep`` (0 starts the sums: cheaper than zeroing them first)."""
    for x in range(weight.size):
        b[x] = b[x] * keep + F(f[3 * x])
        g[x] = g[x] * keep + F(f[3 * x + 1])
        r[x] = r[x] * keep + F(f[3 * x + 2])
        weight[x] = weight[x] * keep + F(1)


@njit(**JIT)
def _add_weighted(f, a0, a1, b0, b1, t, b, g, r, weight, keep):
    """``_add`` weighted by the background, ``1 - alpha``."""
    for x in range(weight.size):
        fb, fg, fr = F(f[3 * x]), F(f[3 * x + 1]), F(f[3 * x + 2])
        bg = F(1) - np.floor(_alpha(a0, a1, b0, b1, t, x, _gray(fb, fg, fr)) + F(0.5)) * F(1 / 255)
        b[x] = b[x] * keep + fb * bg
        g[x] = g[x] * keep + fg * bg
        r[x] = r[x] * keep + fr * bg
        weight[x] = weight[x] * keep + bg


@njit(**JIT)
def _block_means(sums, taps, reflected, padded, o):
    """The QUARTER x QUARTER block means of four rows' column ``sums`` (4 planes), blurred along the row by the
    Gaussian ``taps`` (``reflected``: the block at each position of the row padded by the Gaussian's radius), as
    the planes of ``o``. ``padded``: (4, blocks + taps - 1) work."""
    r = taps.size // 2
    blocks = o.size // 4
    for c in range(4):
        s, p = sums[c], padded[c]
        means = p[r:r + blocks]
        for j in range(blocks):
            means[j] = (s[4 * j] + s[4 * j + 1] + s[4 * j + 2] + s[4 * j + 3]) * F(1 / 16)
        for i in range(r):
            p[i], p[r + blocks + i] = means[reflected[i]], means[reflected[r + blocks + i]]
        oc, w = o[c * blocks:(c + 1) * blocks], taps[0]
        for j in range(blocks):
            oc[j] = w * p[j]
        for t in range(1, taps.size):
            w, pt = taps[t], p[t:t + blocks]
            for j in range(blocks):
                oc[j] += w * pt[j]


@njit(**JIT)
def _block_rows(frame, field, gauss, g0, g1, ring, work):
    """blur-bg's first pass for the rows of blocks ``g0:g1``: the QUARTER x QUARTER block means of the frame
    weighted by the background, ``f * (1 - alpha)``, and of the background's weight ``1 - alpha``, blurred along
    the row (``gauss``: the taps and the block at each position of a row padded by their radius), as the 4 planes
    (B, G, R, weight) of row ``g`` of ``ring`` at ``g % len(ring)``. ``field``: the field's arguments of
    :func:`composite_rows`; ``work``: this pass's work rows, runs and the field row they hold. Columns past the
    last whole block are left out."""
    field_a, field_b, y0, wy, cols, cells, starts = field
    taps, reflected = gauss
    sums, padded, bounds, kinds, a0, a1, b0, b1, held = work
    sb, sg, sr, sw = sums[0], sums[1], sums[2], sums[3]
    for block in range(g0, g1):
        seen = False  # any background in this row of blocks
        for y in range(QUARTER * block, QUARTER * block + QUARTER):
            f, t, keep = frame[y], wy[y], F(y % QUARTER != 0)  # the block row's first row starts the sums
            if y0[y] != held[0]:
                held[0] = y0[y]
                held[1] = _runs(cells[held[0]], starts, bounds, kinds)
                _field_rows(field_a, field_b, held[0], cols, starts, bounds, kinds, held[1], a0, a1, b0, b1)
            n = held[1]
            seen = seen or _any_background(kinds, n)
            for k in range(n):
                x0, x1 = bounds[k], bounds[k + 1]
                fs, b, g, r, weight = f[3 * x0:3 * x1], sb[x0:x1], sg[x0:x1], sr[x0:x1], sw[x0:x1]
                if kinds[k] == BACKGROUND:
                    _add(fs, b, g, r, weight, keep)
                elif kinds[k] == EDGE:
                    _add_weighted(fs, a0[x0:x1], a1[x0:x1], b0[x0:x1], b1[x0:x1], t, b, g, r, weight, keep)
                elif not keep:  # the subject adds nothing
                    b[:], g[:], r[:], weight[:] = 0, 0, 0, 0
        o = ring[block % ring.shape[0]]
        if seen:
            _block_means(sums, taps, reflected, padded, o)
        else:  # all subject: nothing was summed
            o[:] = 0


@njit(**JIT)
def guide_products(small, prob, out):
    """The guided filter's inputs at the model's resolution, as the 4 channels of ``out`` (h, w, 4) for one
    window mean: grey level (0-1), probability, their product, the grey level squared."""
    h, w = prob.shape
    small, out = small.reshape(h, -1), out.reshape(h, -1)  # flat rows: vector code
    for i in range(h):
        s, p, o = small[i], prob[i], out[i]
        for j in range(w):
            g = _gray(F(s[3 * j]), F(s[3 * j + 1]), F(s[3 * j + 2])) * F(1 / 255)
            o[4 * j], o[4 * j + 1], o[4 * j + 2], o[4 * j + 3] = g, p[j], g * p[j], g * g


@njit(**JIT)
def guide_planes(means, eps, low, scale, a, b):
    """From the window means of :func:`guide_products` to the field's planes ``a`` (per grey level 0-255) and
    ``b`` (h, w) before their own window mean, with the soft threshold folded in."""
    h, w = a.shape
    means = means.reshape(h, -1)
    for i in range(h):
        m, ai, bi = means[i], a[i], b[i]
        for j in range(w):
            mean_g, mean_p = m[4 * j], m[4 * j + 1]
            slope = (m[4 * j + 2] - mean_g * mean_p) / (m[4 * j + 3] - mean_g * mean_g + eps)
            ai[j] = slope * (scale / F(255))
            bi[j] = (mean_p - slope * mean_g - low) * scale
