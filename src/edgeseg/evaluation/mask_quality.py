"""Quality of the mask a user sees: the runtime's alpha at each image's own resolution (no TensorFlow).

Labels are 0-based trimaps (0 = pet, 1 = background, 2 = border) or binary masks (no 2). The headline
is **pet IoU with border pixels ignored**: a trimap's border band straddles the true outline, so any
IoU that counts it as foreground rewards masks grown by half a band.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from edgeseg.contract import BACKGROUND, BORDER, PET

BOUNDARY_TOLERANCE = 0.005  # of the image diagonal: 3 px at 500 x 375
VISIBLE = 0.02  # alpha above this shows (5 of 255 levels); below 1 - VISIBLE the subject is not opaque


@dataclass
class MaskQuality:
    """Mask quality over a set of images (IoUs pooled over all pixels, boundary F averaged per image)."""

    images: int
    pet_iou: float  # alpha >= 0.5 against the pet, border pixels ignored: the headline
    fg_iou: float  # alpha >= 0.5 against pet + border (rewards halos; kept for comparison)
    boundary_f: float  # F-score of the mask's outline against the border band's centre line
    background_alpha: float  # mean alpha where the label says background (0: fully removed)
    background_leak: float  # share of background pixels whose alpha is visible (> VISIBLE)
    semi_transparent: float  # share of all pixels with VISIBLE < alpha < 1 - VISIBLE

    def to_dict(self) -> dict:
        return asdict(self)


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """The true foreground: the pet plus the half of the border band nearer to it (bool)."""
    pet = labels == PET
    border = labels == BORDER
    if not border.any():
        return pet
    to_pet = cv2.distanceTransform((~pet).astype(np.uint8), cv2.DIST_L2, 3)
    to_bg = cv2.distanceTransform((labels != BACKGROUND).astype(np.uint8), cv2.DIST_L2, 3)
    return pet | (border & (to_pet < to_bg))


def _edge(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)).astype(bool)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance_px: float) -> float:
    """F-score of two binary masks' outlines: an outline pixel matches within ``tolerance_px`` of the other."""
    pe, te = _edge(pred), _edge(truth)
    if not pe.any() and not te.any():
        return 1.0
    if not pe.any() or not te.any():
        return 0.0
    to_truth = cv2.distanceTransform((~te).astype(np.uint8), cv2.DIST_L2, 3)
    to_pred = cv2.distanceTransform((~pe).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float(np.mean(to_truth[pe] <= tolerance_px))
    recall = float(np.mean(to_pred[te] <= tolerance_px))
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def mean_quality(results: list[MaskQuality]) -> MaskQuality:
    """The mean of several sources' scores, each source counting once (``images`` is their total)."""
    if len(results) == 1:
        return results[0]
    fields = [k for k in MaskQuality.__dataclass_fields__ if k != "images"]
    return MaskQuality(images=sum(r.images for r in results),
                       **{k: round(float(np.mean([getattr(r, k) for r in results])), 4) for k in fields})


class MaskQualityMeter:
    """Accumulates :class:`MaskQuality` one image at a time.

    Example:
        >>> meter = MaskQualityMeter()
        >>> meter.add(alpha, labels)  # doctest: +SKIP
        >>> meter.result().pet_iou  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.n = 0
        self.pet_inter = self.pet_union = self.fg_inter = self.fg_union = 0
        self.bg_pixels = self.bg_visible = self.semi = self.pixels = 0
        self.bg_alpha = 0.0
        self.f_sum = 0.0

    def add(self, alpha: np.ndarray, labels: np.ndarray) -> None:
        """``alpha``: float in [0, 1] or uint8 in [0, 255], at the labels' (the image's) resolution."""
        if alpha.shape != labels.shape:
            raise ValueError(f"alpha {alpha.shape} and labels {labels.shape} differ: measure at the image's resolution")
        a = alpha.astype(np.float32) / 255 if alpha.dtype == np.uint8 else alpha
        pred = a >= 0.5
        care = labels != BORDER
        pet = labels == PET
        self.pet_inter += int(np.count_nonzero(pred & pet))
        self.pet_union += int(np.count_nonzero((pred | pet) & care))
        fg = labels != BACKGROUND
        self.fg_inter += int(np.count_nonzero(pred & fg))
        self.fg_union += int(np.count_nonzero(pred | fg))
        bg = labels == BACKGROUND
        self.bg_pixels += int(np.count_nonzero(bg))
        self.bg_alpha += float(a[bg].sum())
        self.bg_visible += int(np.count_nonzero(a[bg] > VISIBLE))
        self.semi += int(np.count_nonzero((a > VISIBLE) & (a < 1 - VISIBLE)))
        self.pixels += a.size
        tolerance = max(1.0, BOUNDARY_TOLERANCE * float(np.hypot(*labels.shape)))
        self.f_sum += boundary_f(pred, outline_mask(labels), tolerance)
        self.n += 1

    def result(self) -> MaskQuality:
        def ratio(a, b):
            return round(a / b, 4) if b else float("nan")

        return MaskQuality(
            images=self.n, pet_iou=ratio(self.pet_inter, self.pet_union), fg_iou=ratio(self.fg_inter, self.fg_union),
            boundary_f=ratio(self.f_sum, self.n), background_alpha=ratio(self.bg_alpha, self.bg_pixels),
            background_leak=ratio(self.bg_visible, self.bg_pixels), semi_transparent=ratio(self.semi, self.pixels))
