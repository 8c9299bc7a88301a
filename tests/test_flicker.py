"""The flicker measure of a video mask (edgeseg.evaluation.flicker) and `evaluate --flicker`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.evaluation.flicker import flicker, measure_flicker, shaken_clip, shift
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from helpers import synthetic_sample, write_mask_folder


def _photo(seed=0, size=96):
    image, _ = synthetic_sample(np.random.default_rng(seed), size)
    return np.ascontiguousarray(image[..., ::-1])


def test_a_static_clip_through_a_real_model_does_not_flicker(shipped):
    with Segmenter(SegmenterOptions(shipped("tflite"), RunningMode.VIDEO, smoothing=1.0)) as seg:
        report = measure_flicker(lambda frame, first: seg.segment(frame), [_photo()], frames=5, shake_px=0, noise=0)
    assert report.flicker == 0.0


def test_a_mask_that_moves_with_the_camera_does_not_flicker():
    base = np.zeros((60, 80), np.float32)
    base[20:45, 25:60] = 1.0
    clip = shaken_clip(np.zeros((60, 80, 3), np.uint8), frames=8, shake_px=3, noise=0, seed=1)
    assert len(set(clip.shifts)) > 1  # the camera did move
    alphas = [shift(base, dx, dy) for dx, dy in clip.shifts]
    assert flicker(alphas, clip.shifts) == 0.0
    assert flicker([base] * len(clip.shifts), clip.shifts) > 0  # a mask that stays put while the scene moves does


def test_flicker_grows_with_mask_noise():
    rng = np.random.default_rng(0)
    base = np.full((40, 40), 0.5, np.float32)
    shifts = [(0, 0)] * 10

    def noisy(std):
        return flicker([np.clip(base + rng.normal(0, std, base.shape), 0, 1).astype(np.float32) for _ in shifts], shifts)

    low, high = noisy(0.02), noisy(0.1)
    assert 0 < low < high
    assert high == pytest.approx(0.1 * 2 / np.sqrt(np.pi), rel=0.1)  # E|X - Y| for two N(0, s^2): 2s / sqrt(pi)


def test_uint8_masks_count_in_units_of_full_opacity():
    shifts = [(0, 0), (0, 0)]
    a, b = np.zeros((10, 10), np.uint8), np.full((10, 10), 255, np.uint8)
    assert flicker([a, b], shifts) == 1.0


def test_smoothing_lowers_flicker(shipped):
    photo = _photo(3)

    def measured(smoothing):
        with Segmenter(SegmenterOptions(shipped("tflite"), RunningMode.VIDEO, smoothing=smoothing)) as seg:
            return measure_flicker(lambda f, first: (seg.reset() if first else None, seg.segment(f))[1], [photo],
                                   frames=12, noise=12).flicker

    assert measured(0.3) < measured(1.0)


def test_bad_clips_are_refused():
    with pytest.raises(ValueError, match="at least 2 frames"):
        shaken_clip(np.zeros((8, 8, 3), np.uint8), frames=1)
    with pytest.raises(ValueError, match="margin"):
        flicker([np.zeros((4, 4))] * 2, [(2, 0), (0, 0)])


def test_evaluate_reports_flicker_per_source(shipped, tmp_path):
    data = write_mask_folder(tmp_path / "people", n=30, size=64)  # 3 test images
    result = CliRunner().invoke(app, ["evaluate", shipped("tflite"), "--data", str(data), "--flicker", "2",
                                      "--smoothing", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["subject"] == "pet"
    assert report["settings"]["smoothing"] == 0.5
    people = report["flicker"]["people"]
    assert people["clips"] == 2 and people["frames"] == 30 and people["flicker"] >= 0
