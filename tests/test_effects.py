"""Effects on synthetic frames with known masks (numpy + OpenCV only)."""

import cv2
import numpy as np
import pytest

from edgeseg.runtime.effects import (
    Effect,
    apply_effect,
    blur_bg,
    grayscale_bg,
    remove_bg,
    replace_bg,
)
from edgeseg.runtime.scratch import Scratch


@pytest.fixture
def scene():
    """A red disc (the subject, alpha 1) on a green/blue striped background (alpha 0), soft ramp between."""
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:, :, 1] = 160
    frame[::8, :, 0] = 200  # stripes so the background has structure to blur
    subject = np.zeros((120, 160), np.uint8)
    cv2.circle(subject, (80, 60), 30, 1, -1)
    frame[subject == 1] = (0, 0, 255)
    alpha = cv2.GaussianBlur(subject.astype(np.float32), (7, 7), 0)
    alpha[subject == 1] = np.maximum(alpha[subject == 1], 0)
    return frame, subject, alpha


def test_grayscale_keeps_subject_and_greys_background(scene):
    frame, subject, alpha = scene
    out = grayscale_bg(frame, alpha)
    ones, zeros = alpha == 1.0, alpha == 0.0
    assert ones.any() and zeros.any()
    np.testing.assert_array_equal(out[ones], frame[ones])
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(out[zeros], np.repeat(gray[zeros][:, None], 3, axis=1))
    mid = (alpha > 0.3) & (alpha < 0.7)
    expected = alpha[mid, None] * frame[mid] + (1 - alpha[mid, None]) * gray[mid, None]
    assert np.abs(out[mid] - expected).max() <= 1.0  # a blend, not a hard cut


def test_blur_has_no_halo(scene):
    frame, subject, alpha = scene
    hard = subject.astype(np.float32)
    out = blur_bg(frame, hard, strength=31)
    np.testing.assert_array_equal(out[subject == 1], frame[subject == 1])  # the subject is untouched
    ring = (cv2.dilate(subject, np.ones((15, 15), np.uint8)) == 1) & (subject == 0)
    # Background pixels just outside the outline carry none of the subject's red.
    assert out[ring][:, 2].max() <= 2
    # A naive blur of the whole frame would smear red there.
    naive = cv2.GaussianBlur(frame, (31, 31), 0)
    assert naive[ring][:, 2].max() > 50
    # And the background is actually blurred: the stripes are smoothed away.
    far = cv2.dilate(subject, np.ones((41, 41), np.uint8)) == 0
    assert out[far][:, 0].std() < frame[far][:, 0].std() / 3


@pytest.mark.parametrize("shape", [(8, 8), (9, 14), (13, 37), (64, 96), (103, 150)])
def test_blur_bg_background_sits_on_the_block_centres_at_any_frame_size(shape):
    """All background: the frame's 4 x 4 block means blurred at a quarter of the size, widened bilinearly about
    the blocks' centres, the last value repeated past the last whole block, as the fused path places them (not
    stretched to the frame: at widths and heights that are not multiples of 4 that shifts the right and the
    bottom by up to a block)."""
    from edgeseg.runtime.effects import quarter_blur

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    (h, w), (n, m) = shape, (shape[0] // 4, shape[1] // 4)
    out = blur_bg(frame, np.zeros(shape, np.float32), strength=5).astype(int)
    means = frame[:4 * n, :4 * m].reshape(n, 4, m, 4, 3).mean(axis=(1, 3)).astype(np.float32)
    expected = cv2.resize(quarter_blur(means, 5), (4 * m, 4 * n), interpolation=cv2.INTER_LINEAR)
    expected = np.pad(expected.reshape(4 * n, 4 * m, 3), ((0, h - 4 * n), (0, w - 4 * m), (0, 0)), mode="edge")
    assert np.abs(out - expected).max() <= 2  # the 2 x 2 halvings and the quarter image round in 8 bits


def test_replace_and_remove(scene):
    frame, subject, alpha = scene
    out = replace_bg(frame, alpha, (255, 0, 0))
    assert (out[alpha == 0] == (255, 0, 0)).all() and (out[alpha == 1] == frame[alpha == 1]).all()
    image_bg = np.full((60, 80, 3), 77, np.uint8)  # resized to the frame
    assert (replace_bg(frame, alpha, image_bg)[alpha == 0] == 77).all()
    rgba = remove_bg(frame, alpha)
    assert rgba.shape == (120, 160, 4)
    assert (rgba[..., 3][alpha == 0] == 0).all() and (rgba[..., 3][alpha == 1] == 255).all()


@pytest.mark.parametrize("effect", list(Effect))
def test_every_effect_keeps_frame_size(scene, effect):
    frame, _, alpha = scene
    out = apply_effect(effect, frame, alpha)
    assert out.shape[:2] == frame.shape[:2] and out.dtype == np.uint8


def test_mask_of_wrong_size_is_rejected(scene):
    frame, _, alpha = scene
    with pytest.raises(ValueError, match="does not match frame"):
        apply_effect(Effect.BLUR_BG, frame, alpha[:10])


def test_scratch_reuses_arrays_without_changing_results(scene):
    frame, _, alpha = scene
    scratch = Scratch()
    for effect in [*Effect, *Effect]:  # twice round, switching effects as the window's e key does
        np.testing.assert_array_equal(apply_effect(effect, frame, alpha, scratch=scratch),
                                      apply_effect(effect, frame, alpha), err_msg=effect.value)
    first = apply_effect(Effect.BLUR_BG, frame, alpha, scratch=scratch)
    assert apply_effect(Effect.BLUR_BG, frame, alpha, scratch=scratch) is first  # no new result array
    half = np.ascontiguousarray(frame[:60]), np.ascontiguousarray(alpha[:60])  # a new frame size
    np.testing.assert_array_equal(apply_effect(Effect.BLUR_BG, *half, scratch=scratch),
                                  apply_effect(Effect.BLUR_BG, *half))


@pytest.mark.parametrize("effect", list(Effect))
def test_an_8_bit_mask_gives_what_its_float_mask_gives(scene, effect):
    frame, _, alpha = scene
    alpha8 = np.rint(alpha * 255).astype(np.uint8)
    np.testing.assert_array_equal(apply_effect(effect, frame, alpha8), apply_effect(effect, frame, alpha))


def test_scratch_fills_a_colour_once_per_shape_and_colour():
    scratch = Scratch()
    green = scratch.filled((4, 5, 3), (0, 177, 64))
    assert (green == (0, 177, 64)).all() and scratch.filled((4, 5, 3), (0, 177, 64)) is green
    assert (scratch.filled((4, 5, 3), (9, 8, 7)) == (9, 8, 7)).all() and (green == (0, 177, 64)).all()
    assert (scratch.filled((6, 2, 3), (0, 177, 64)) == (0, 177, 64)).all()


def test_overlay_tints_only_the_subject(scene):
    frame, _, alpha = scene
    out = apply_effect(Effect.OVERLAY, frame, alpha)
    ones, zeros = alpha == 1.0, alpha == 0.0
    np.testing.assert_array_equal(out[zeros], frame[zeros])
    tint = 0.5 * frame[ones].astype(np.float32) + 0.5 * np.array((0, 200, 255), np.float32)
    assert np.abs(out[ones] - tint).max() <= 1.0


def test_fixed_point_blend_is_exact_at_0_and_1_and_close_between():
    rng = np.random.default_rng(5)
    frame, background = (rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(2))
    alpha = rng.random((64, 96), dtype=np.float32)
    alpha[:8], alpha[-8:] = 0.0, 1.0
    out = replace_bg(frame, alpha, background)
    np.testing.assert_array_equal(out[:8], background[:8])
    np.testing.assert_array_equal(out[-8:], frame[-8:])
    expected = alpha[..., None] * frame + (1 - alpha[..., None]) * background
    assert np.abs(out - expected).max() <= 1.5


def test_the_hud_draws_each_line_exactly_as_plain_text():
    """Every HUD stroke is the single thickness-1 rendering of its line on the darkened box: no second,
    thicker pass, whose wider glyph advances in OpenCV 5 made the lines read "preprocesss 0.36 mss"."""
    from edgeseg.runtime.effects import Effect
    from edgeseg.runtime.pipeline import HUD_FONT, HUD_SCALE, draw_hud

    frame = np.full((200, 320, 3), 150, np.uint8)
    draw_hud(frame, 30.0, {"preprocess": 0.36, "inference": 4.2}, Effect.GRAYSCALE_BG, "person")
    lines = [" 30.0 FPS  grayscale-bg  person", "preprocess   0.36 ms", "inference    4.20 ms"]
    reference = np.full_like(frame, 150)
    width = max(cv2.getTextSize(line, HUD_FONT, HUD_SCALE, 1)[0][0] for line in lines)
    reference[:8 + 20 * len(lines), :width + 20] //= 3
    for i, line in enumerate(lines):
        cv2.putText(reference, line, (10, 22 + 20 * i), HUD_FONT, HUD_SCALE, (255, 255, 255), 1, cv2.LINE_AA)
    np.testing.assert_array_equal(frame, reference)
    assert frame[100:, 200:].min() == 150  # the rest of the frame untouched


def test_every_effect_has_one_table_entry():
    from edgeseg.runtime.effects import EFFECTS, Effect

    assert set(EFFECTS) == set(Effect)
    assert [e.value for e, spec in EFFECTS.items() if spec.uses_background] == ["replace-bg", "remove-bg"]


def test_the_hud_grows_with_the_frame_so_a_1080p_stream_seen_small_stays_readable():
    # at 1080p the HUD's 20 px lines were 1/54 of the frame: unreadable once a phone shows the stream
    from edgeseg.runtime.effects import Effect
    from edgeseg.runtime.pipeline import draw_hud

    heights = {}
    for h, w in ((480, 640), (1080, 1920)):
        frame = np.full((h, w, 3), 150, np.uint8)
        draw_hud(frame, 30.0, {"preprocess": 0.36, "inference": 4.2}, Effect.GRAYSCALE_BG, "person")
        dark = np.flatnonzero((frame[:, 2] < 150).all(axis=1))  # the darkened box's rows, at column 2
        heights[h] = dark.max() + 1
    assert heights[1080] / heights[480] == pytest.approx(1080 / 480, rel=0.05), heights
