"""The mask a user sees: border-aware alpha, confident background, and the measures that judge it."""

import cv2
import numpy as np
import pytest

from edgeseg.contract import TRIMAP_MASK_WEIGHTS, ArtifactMetadata
from edgeseg.runtime.backends.base import TensorSpec
from edgeseg.runtime.effects import remove_bg
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions
from edgeseg.evaluation.mask_quality import MaskQualityMeter, boundary_f, outline_mask

MODEL, FRAME, RADIUS, HALF_BAND = 64, 256, 80.0, 12.0  # px; the disc's outline is at RADIUS in frame pixels


class _ProbabilityBackend:
    """A stand-in trimap model that outputs given class probabilities (as log-probabilities)."""

    name, details, num_outputs = "fixed", {}, 1

    def __init__(self, probs: np.ndarray, mask_weights=TRIMAP_MASK_WEIGHTS):
        self.logits = np.log(np.clip(probs, 1e-6, 1)).astype(np.float32)
        self.input = TensorSpec("image", (1, MODEL, MODEL, 3), np.dtype(np.uint8))
        self.output = TensorSpec("logits", (1, MODEL, MODEL, 3), np.dtype(np.float32))
        self.metadata = ArtifactMetadata("fixed", "tflite", "int8", (MODEL, MODEL), "uint8", mask_weights=mask_weights)

    def run(self, batch):
        return self.logits[None].copy()

    def close(self):
        pass


def _soft_trimap_probs() -> np.ndarray:
    """A model that has learnt a trimap whose border band is symmetric about a circle: p(pet) rises inside
    the band, p(background) outside it, p(border) peaks on the outline."""
    scale = FRAME / MODEL
    yy, xx = np.mgrid[0:MODEL, 0:MODEL].astype(np.float64)
    d = RADIUS - np.hypot((xx + 0.5) * scale - FRAME / 2, (yy + 0.5) * scale - FRAME / 2)  # signed, frame px
    pet = 1 / (1 + np.exp(-(d - HALF_BAND) / 3))
    background = 1 / (1 + np.exp(-(-d - HALF_BAND) / 3))
    return np.stack([pet, background, 1 - pet - background], -1)


def _crossing_radii(alpha: np.ndarray, angles: int = 360) -> np.ndarray:
    """Where alpha falls through 0.5 along rays from the centre, to a fraction of a pixel (bilinear samples)."""
    r = np.arange(RADIUS - 40, RADIUS + 40, 0.05)
    theta = np.linspace(0, 2 * np.pi, angles, endpoint=False)[:, None]
    # pixel j covers [j, j + 1): its centre is at j + 0.5
    xs = (FRAME / 2 + r * np.cos(theta) - 0.5).astype(np.float32)
    ys = (FRAME / 2 + r * np.sin(theta) - 0.5).astype(np.float32)
    ray = cv2.remap(alpha, xs, ys, cv2.INTER_LINEAR)
    first = np.argmax(ray < 0.5, axis=1)
    a0, a1 = ray[np.arange(angles), first - 1], ray[np.arange(angles), first]
    return r[first - 1] + 0.05 * (a0 - 0.5) / (a0 - a1)


def _signed_distance() -> np.ndarray:
    """Frame pixels' distance inside the true outline (negative outside)."""
    yy, xx = np.mgrid[0:FRAME, 0:FRAME] + 0.5
    return RADIUS - np.hypot(xx - FRAME / 2, yy - FRAME / 2)


@pytest.mark.parametrize("weights,offset", [(TRIMAP_MASK_WEIGHTS, 0.0), ((1.0, 0.0, 1.0), HALF_BAND)])
def test_the_half_weighted_border_puts_the_mask_edge_on_the_outline(monkeypatch, weights, offset):
    backend = _ProbabilityBackend(_soft_trimap_probs(), weights)
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    with Segmenter(SegmenterOptions("trimap.tflite")) as seg:
        alpha = seg.segment(np.zeros((FRAME, FRAME, 3), np.uint8))
    radii = _crossing_radii(alpha)
    # weight 0.5: within 1 px of the true outline; weight 1 (pet + border) grows the mask by half a band: a halo
    assert np.abs(radii - (RADIUS + offset)).max() <= 1.0, (radii.min(), radii.max())


def test_an_empty_background_comes_out_fully_transparent_with_default_settings(monkeypatch):
    probs = _soft_trimap_probs()
    far = np.hypot(*np.mgrid[-1:1:MODEL * 1j, -1:1:MODEL * 1j]) > 0.9  # corners: confident, not certain
    probs[far] = (0.04, 0.9, 0.06)
    backend = _ProbabilityBackend(probs)
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    frame = np.full((FRAME, FRAME, 3), 200, np.uint8)
    with Segmenter(SegmenterOptions("trimap.tflite")) as seg:
        cutout = remove_bg(frame, seg.segment(frame, out=np.empty((FRAME, FRAME), np.uint8)))
    a = cutout[..., 3]
    assert a[:16, :16].max() == 0 and a[-16:, -16:].max() == 0  # empty corners: fully transparent
    assert a[FRAME // 2 - 40:FRAME // 2 + 40, FRAME // 2 - 40:FRAME // 2 + 40].min() == 255  # subject: opaque
    semi = (a > 0) & (a < 255)
    assert semi.any() and np.abs(_signed_distance()[semi]).max() <= HALF_BAND  # soft only where the model is unsure
    with Segmenter(SegmenterOptions("trimap.tflite", softness=0.5)) as seg:  # the raw probability, as before
        raw = seg.segment(frame)
    assert raw[:16, :16].min() > 0.05  # would have left the corners semi-transparent


def test_mask_quality_ignores_the_border_band_and_sees_halos():
    labels = np.ones((100, 100), np.uint8)
    cv2.circle(labels, (50, 50), 30, 2, -1)  # border band r 20..30, outline at 25
    cv2.circle(labels, (50, 50), 20, 0, -1)
    truth = outline_mask(labels)
    assert abs(np.count_nonzero(truth) - np.pi * 25**2) < 0.05 * np.pi * 25**2
    exact, halo = (np.zeros((100, 100), np.float32) for _ in range(2))
    cv2.circle(exact, (50, 50), 25, 1.0, -1)
    cv2.circle(halo, (50, 50), 30, 1.0, -1)
    results = {}
    for name, alpha in (("exact", exact), ("halo", halo)):
        meter = MaskQualityMeter()
        meter.add(alpha, labels)
        results[name] = meter.result()
    assert results["exact"].pet_iou == 1.0 and results["halo"].pet_iou == 1.0  # the band itself is ignored...
    assert results["halo"].boundary_f < 0.2 < 0.9 < results["exact"].boundary_f  # ...the outline is not
    assert results["exact"].background_leak == 0 and results["exact"].semi_transparent == 0
    soft = np.full((100, 100), 0.3, np.float32)
    meter = MaskQualityMeter()
    meter.add(soft, labels)
    r = meter.result()
    assert r.background_alpha == pytest.approx(0.3) and r.background_leak == 1.0 and r.semi_transparent == 1.0
    assert boundary_f(np.zeros((4, 4), bool), np.zeros((4, 4), bool), 1) == 1.0
    with pytest.raises(ValueError, match="image's resolution"):
        meter.add(soft[:50], labels)


def test_small_parts_of_the_mask_are_dropped_but_never_the_largest():
    from edgeseg.runtime.segmenter import drop_small_parts

    mask = np.zeros((100, 100), np.float32)
    mask[10:60, 10:60] = 0.9  # the subject: 25% of the frame
    mask[80:83, 80:83] = 0.8  # a 9-pixel blob beside it (0.09%)
    mask[90:92, 10:12] = 0.45  # faint, but visible above threshold - softness (0.4)
    kept = drop_small_parts(mask.copy(), 0.01, 0.4)
    assert kept[30, 30] == pytest.approx(0.9) and kept[81, 81] == 0 and kept[91, 11] == 0
    assert np.array_equal(drop_small_parts(mask.copy(), 0.0001, 0.4), mask)  # nothing under 1 pixel
    alone = np.zeros((100, 100), np.float32)
    alone[5:7, 5:7] = 0.9  # a small pet far away: the only part stays
    assert np.array_equal(drop_small_parts(alone.copy(), 0.5, 0.4), alone)


def test_min_blob_is_a_share_of_the_frame(shipped):
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="min_blob must be 0 to 0.99"):
            Segmenter(SegmenterOptions(shipped("tflite"), min_blob=bad))


def test_the_run_folders_prediction_picture_shows_the_runtimes_mask(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from edgeseg.runtime.alpha import alpha_from_probabilities
    from edgeseg.evaluation import plots

    shown = []
    real = plots.grayscale_bg
    monkeypatch.setattr(plots, "grayscale_bg", lambda frame, alpha: (shown.append(alpha), real(frame, alpha))[1])
    probs = np.zeros((1, 8, 8, 3), np.float32)
    probs[..., 0], probs[..., 1], probs[..., 2] = 0.05, 0.15, 0.8  # the border band: mostly "border"
    plots.plot_predictions(np.zeros((1, 8, 8, 3), np.uint8), np.full((1, 8, 8), 2, np.uint8),
                           np.full((1, 8, 8), 2, np.uint8), probs, tmp_path / "p.png")
    # p(pet) + 0.5 p(border) = 0.45, soft-thresholded to 0.25: not p(pet) + p(border) = 0.85, the old halo
    assert np.allclose(shown[0], alpha_from_probabilities(probs[0], TRIMAP_MASK_WEIGHTS)) and shown[0].max() < 0.3


def test_the_per_frame_alpha_is_the_one_alpha_from_logits(shipped):
    """The segmenter's fast OpenCV path computes what edgeseg.runtime.alpha defines for everyone else."""
    from edgeseg.runtime.alpha import alpha_from_logits
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    logits = np.random.default_rng(0).normal(0, 8, (16, 16, 3)).astype(np.float32)
    with Segmenter(SegmenterOptions(shipped("tflite"))) as seg:
        fast = seg._weighted_softmax(logits).copy()
        np.testing.assert_allclose(fast, alpha_from_logits(logits, seg._weights), atol=1e-6)
