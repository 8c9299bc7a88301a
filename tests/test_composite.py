"""The fused frame path: the same masks and effects as the OpenCV path, in one pass per effect."""

import numpy as np
import pytest

from edgeseg.runtime import composite
from edgeseg.runtime.composite import Compositor, FramePath, check_frame_path
from edgeseg.runtime.effects import KEY_COLOR, Effect
from edgeseg.runtime.pipeline import FrameProcessor
from edgeseg.runtime.segmenter import Edges, RunningMode, Segmenter, SegmenterOptions

pytest.importorskip("numba")  # the runtime's optional accelerator; the OpenCV path is tested everywhere


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colours with a bright disc: flat parts, gradients and a hard edge, as a camera sees."""
    import cv2

    rng = np.random.default_rng(seed)
    frame = cv2.resize(rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8), (w, h))
    cv2.circle(frame, (w // 2, h // 2), min(h, w) // 3, (230, 220, 200), -1)
    return frame


def _pair(model, effect, frame, edges=Edges.GUIDED, feather=0, background=None):
    outs = {}
    for path in (FramePath.OPENCV, FramePath.FUSED):
        options = SegmenterOptions(model, RunningMode.VIDEO, edges=edges, feather=feather, threads=2)
        with Segmenter(options) as seg:
            process = FrameProcessor(seg, effect, background, video=False, frame_path=path)
            outs[path] = process(frame)[0].astype(int)
            process.close()
    return outs[FramePath.OPENCV], outs[FramePath.FUSED]


@pytest.mark.parametrize("edges", list(Edges))
@pytest.mark.parametrize("effect", list(Effect))
def test_every_effect_matches_the_opencv_path(shipped, effect, edges):
    """Within 2 levels, but for the rare pixels where the two grey levels differ by one on a steep guided edge
    (OpenCV's vectorised BGR2GRAY rounds differently at ~0.3 % of pixels)."""
    frame = _photo(180, 240)
    background = _photo(90, 130, seed=1) if Effect(effect) is Effect.REPLACE_BG else None
    ours, fused = _pair(shipped("tflite", "int8"), effect, frame, edges, background=background)
    assert ours.shape == fused.shape
    diff = np.abs(ours - fused)
    # bilinear edges: the OpenCV path rounds the probability to 8 bits before the ramp (x 2.5): up to ~3 levels
    limit = 2 if edges is Edges.GUIDED else 4
    assert np.mean(diff > limit) < 1e-3 and diff.mean() < 0.3, (diff.max(), np.mean(diff > limit))


def test_the_fused_mask_matches_the_float_one(shipped):
    frame = _photo(333, 517)
    for edges in Edges:
        options = SegmenterOptions(shipped("tflite", "int8"), edges=edges)
        with Segmenter(options) as seg:
            exact = seg.segment(frame) * 255
        with Segmenter(options) as seg:
            fused = Compositor(1).mask(seg.field(frame), frame)
        diff = np.abs(fused - exact)
        assert np.mean(diff > 2) < 1e-3 and diff.mean() < 0.1, (edges, diff.max())


def test_a_feathered_mask_goes_through_the_fused_effects(shipped):
    ours, fused = _pair(shipped("tflite", "int8"), Effect.BLUR_BG, _photo(120, 160), feather=3)
    assert np.mean(np.abs(ours - fused) > 2) < 1e-3


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 9), (33, 17), (120, 161), (481, 833)])
def test_any_frame_size_and_strips_agree(shape):
    """Odd sizes, frames smaller than blur-bg's 4 x 4 blocks, and one thread against three (frames of
    MIN_SPLIT_PIXELS and more, as 481 x 833, are split into strips): the same result."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    field = composite.MaskField(rng.normal(0, 2, (6, 6)).astype(np.float32),
                                rng.normal(128, 200, (6, 6)).astype(np.float32))
    one, three = Compositor(1), Compositor(3)
    for effect in Effect:
        a = one(effect, frame, field, background=KEY_COLOR if effect is Effect.REMOVE_BG else None).copy()
        b = three(effect, frame, field, background=KEY_COLOR if effect is Effect.REMOVE_BG else None)
        np.testing.assert_array_equal(a, b, err_msg=effect.value)
    three.close()


@pytest.mark.parametrize("shape", [(4, 4), (9, 14), (13, 37), (64, 96), (103, 150)])
@pytest.mark.parametrize("strength", [5, 21, 61])
def test_blur_bg_background_is_the_blurred_block_means_widened_about_their_centres(shape, strength):
    """Where the field says background everywhere, blur-bg gives the frame's 4 x 4 block means blurred as the
    portable path blurs them (borders reflected, also with a Gaussian wider than the frame's blocks), widened
    bilinearly about the blocks' centres; past the last whole block the last value repeats."""
    import cv2

    from edgeseg.runtime.effects import quarter_blur

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    (h, w), (n, m) = shape, (shape[0] // 4, shape[1] // 4)
    background = composite.MaskField(np.zeros((3, 3), np.float32), np.full((3, 3), -1000, np.float32))
    out = Compositor(1)(Effect.BLUR_BG, frame, background, blur=strength)
    means = frame[:4 * n, :4 * m].reshape(n, 4, m, 4, 3).mean(axis=(1, 3)).astype(np.float32)
    expected = cv2.resize(quarter_blur(means, strength), (4 * m, 4 * n), interpolation=cv2.INTER_LINEAR)
    expected = np.pad(expected.reshape(4 * n, 4 * m, 3), ((0, h - 4 * n), (0, w - 4 * m), (0, 0)), mode="edge")
    assert np.abs(out - np.rint(expected)).max() <= 1  # rounding half up against half to even


def _rendered(field, frame):
    """``clip(a * gray + b)`` at every pixel: the field's planes resized by OpenCV, grey levels as the kernels
    round them (BT.601 in 14-bit fixed point)."""
    import cv2

    h, w = frame.shape[:2]
    b, g, r = np.moveaxis(frame.astype(np.int64), 2, 0)
    gray = (b * 1868 + g * 9617 + r * 4899 + 8192) >> 14
    a_, b_ = (cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR) for plane in (field.a, field.b))
    return np.rint(np.clip(a_ * gray + b_, 0, 255)).astype(np.uint8)


@pytest.mark.parametrize("shape", [(7, 9), (120, 160), (96, 204), (333, 517)])
def test_a_mask_with_edges_everywhere_is_the_field_rendered_by_opencv(shape):
    """Every cell an edge (slopes and offsets keep alpha between 0 and 255): the mask at every pixel, the frame's
    borders included, is ``clip(a * gray + b)`` with the planes resized by OpenCV."""
    rng = np.random.default_rng(11)
    frame = _photo(*shape)
    field = composite.MaskField(rng.uniform(-0.4, 0.4, (9, 12)).astype(np.float32),
                                rng.uniform(100, 150, (9, 12)).astype(np.float32))
    mask = Compositor(1).mask(field, frame).astype(int)
    assert np.abs(mask - _rendered(field, frame)).max() <= 1


@pytest.mark.parametrize("shape", [(120, 160), (96, 204)])
def test_pixels_taken_as_background_or_subject_are_what_computing_them_gives(shape):
    """Where the field's cells say alpha is 0 or 255 whatever the pixel, the kernels copy or fill instead of
    computing: a random field (steep and flat, inside and outside 0-255) gives what the same effects give with
    that field rendered first by numpy, every pixel computed."""
    rng = np.random.default_rng(7)
    frame = _photo(*shape)
    # background on the left, subject on the right, an edge between them of flat and sloped lines
    field = composite.MaskField((rng.normal(0, 0.3, (9, 12)) * (rng.random((9, 12)) < 0.5)).astype(np.float32),
                                (np.linspace(-500, 700, 12) + rng.normal(0, 100, (9, 12))).astype(np.float32))
    compositor = Compositor(1)
    mask = _rendered(field, frame)
    assert 0.2 < np.mean(mask == 0) < 0.8 and 0.1 < np.mean(mask == 255) < 0.8  # both kinds of cells are there
    cases = [(effect, None) for effect in Effect] + [(Effect.REPLACE_BG, _photo(*shape, seed=2)),
                                                      (Effect.REMOVE_BG, KEY_COLOR)]
    for effect, background in cases:
        fused = compositor(effect, frame, field, background=background).astype(int)
        given = compositor(effect, frame, mask=mask, background=background).astype(int)
        diff = np.abs(fused - given)  # the rendered mask is rounded; blur-bg's portable blur rounds more often
        assert (np.mean(diff > 2) < 1e-3 if effect is Effect.BLUR_BG else diff.max() <= 2), effect.value
    compositor.close()


def test_without_numba_the_opencv_path_is_used_and_asking_for_fused_says_why(monkeypatch):
    monkeypatch.setattr(composite, "fused_available", lambda: False)
    assert composite.default_frame_path() is FramePath.OPENCV
    with pytest.raises(ImportError, match="numba"):
        check_frame_path("fused")
