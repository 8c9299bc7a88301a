"""Guided upsampling: the mask's edge moves onto the image's edge; flat regions stay clean."""

import cv2
import numpy as np
import pytest

from edgeseg.runtime.guided import GuidedUpsampler
from edgeseg.runtime.alpha import soft_threshold

EDGE = 171  # the image's true edge (column), off the model's grid on purpose


def _scene(size: int = 256, model: int = 64, offset: float = 5.0):
    """A dark pet left of EDGE on a light background, and a model's blurry probability whose 0.5 crossing is
    ``offset`` frame pixels to the right of the true edge (a halo)."""
    frame = np.full((size, size, 3), 200, np.uint8)
    frame[:, :EDGE] = 40
    x = (np.arange(model, dtype=np.float32) + 0.5) * size / model  # model pixel centres in frame pixels
    row = 1 / (1 + np.exp((x - (EDGE + offset)) / 6.0))  # ~0.5 at EDGE + offset, soft over ~20 frame px
    prob = np.repeat(row[None], model, 0).astype(np.float32)
    small = cv2.resize(frame, (model, model), interpolation=cv2.INTER_AREA)
    return frame, small, prob


def _crossing(alpha: np.ndarray) -> float:
    """Mean column where alpha falls through 0.5 (sub-pixel)."""
    row = alpha.astype(np.float32).mean(0) / (255 if alpha.dtype == np.uint8 else 1)
    i = int(np.argmax(row < 0.5))
    return i - 1 + (row[i - 1] - 0.5) / (row[i - 1] - row[i])


def test_the_guided_edge_lands_on_the_image_edge_where_the_bilinear_one_halos():
    frame, small, prob = _scene()
    h, w = frame.shape[:2]
    bilinear = soft_threshold(cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR), 0.5, 0.1)
    guided = GuidedUpsampler()(prob, small, frame, 0.4, 0.6)
    assert abs(_crossing(bilinear) - EDGE) > 3  # the halo the scene was built with
    assert abs(_crossing(guided) - EDGE) <= 1
    assert guided[:, :EDGE - 12].min() == 1.0 and guided[:, EDGE + 12:].max() == 0.0  # opaque, and clear


def test_outputs_agree_in_8_and_32_bits_and_flat_images_stay_smooth():
    frame, small, prob = _scene()
    upsampler = GuidedUpsampler()
    alpha = upsampler(prob, small, frame, 0.4, 0.6)
    out = np.empty(frame.shape[:2], np.uint8)
    assert upsampler(prob, small, frame, 0.4, 0.6, out=out) is out
    np.testing.assert_allclose(out / 255.0, alpha, atol=1 / 255 + 1e-6)
    out32 = np.empty(frame.shape[:2], np.float32)
    assert upsampler(prob, small, frame, 0.4, 0.6, out=out32) is out32
    np.testing.assert_array_equal(out32, alpha)
    flat = np.full_like(frame, 128)  # no image edge: the mask keeps its own, smoothly
    soft = upsampler(prob, cv2.resize(flat, prob.shape[::-1]), flat, 0.4, 0.6)
    assert abs(_crossing(soft) - (EDGE + 5)) <= 2
    h, w = flat.shape[:2]
    bilinear = soft_threshold(cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR), 0.5, 0.1)
    assert np.abs(np.diff(soft, axis=1)).max() <= np.abs(np.diff(bilinear, axis=1)).max()  # no sharper than it


def test_a_guide_of_another_size_than_the_mask_is_resized():
    frame, small, prob = _scene(model=64)
    alpha = GuidedUpsampler()(prob, cv2.resize(frame, (96, 96), interpolation=cv2.INTER_AREA), frame, 0.4, 0.6)
    assert alpha.shape == frame.shape[:2] and abs(_crossing(alpha) - EDGE) <= 1


@pytest.mark.parametrize("shape,fitted", [((256, 256), (128, 128)), ((144, 256), (72, 128)), ((512, 300), (128, 75)),
                                          ((128, 128), (128, 128)), ((255, 200), (255, 200))])
def test_a_mask_of_twice_the_grid_or_more_is_fitted_on_a_halved_grid(shape, fitted):
    """A fine mask (MediaPipe's selfie models: 256 px) is fitted where the window was chosen, at GRID = 128: halved
    with its guide until the longer side is under 256, the same fit as of the halved mask, in both fits."""
    from edgeseg.runtime.composite import fused_available

    rng = np.random.default_rng(5)
    prob = cv2.resize(rng.random((8, 8)).astype(np.float32), shape[::-1], interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), shape[::-1])
    p = prob
    while p.shape != fitted:  # 2 x 2 means
        p = cv2.resize(p, (p.shape[1] // 2, p.shape[0] // 2), interpolation=cv2.INTER_AREA)
    g = cv2.resize(small, fitted[::-1], interpolation=cv2.INTER_AREA)
    for compiled in {False, fused_available()}:
        field = GuidedUpsampler().fit(prob, small, 0.4, 0.6, compiled=compiled)
        assert field.a.shape == field.b.shape == fitted
        a, b = field.a.copy(), field.b.copy()
        expected = GuidedUpsampler(grid=None).fit(p, g, 0.4, 0.6, compiled=compiled)
        np.testing.assert_allclose(a, expected.a, atol=1e-4)
        np.testing.assert_allclose(b, expected.b, atol=0.05)


@pytest.mark.parametrize("radius,eps", [(0, 1e-3), (2, 0.0)])
def test_bad_settings_are_refused(radius, eps):
    with pytest.raises(ValueError, match="radius"):
        GuidedUpsampler(radius, eps)
    with pytest.raises(ValueError, match="grid"):
        GuidedUpsampler(grid=0)
