"""What a binary mask's outline teaches (no TensorFlow).

A trimap marks a border band around the outline, where annotators were unsure; a binary mask (polygons,
a matting tool) draws a hard line whose exact place is as uncertain. Trained as given, its outline
would be taught as certain pet on one side and certain background on the other, against the trimap
sources of the same run. :class:`Outline` says what a training mask's outline becomes instead.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.contract import BORDER, PET

IGNORE = 3  # a label the loss and the training metrics leave out
# The band of the Oxford-IIIT Pet trimaps: its median width over the image's longer side (15 px at 500 px),
# as measured on real trimaps (the pets-pseudo recipe uses the same).
BAND_FRACTION = 0.0306
MIN_BAND_PX = 3


class Outline(Choice):
    """How the outline of a binary training mask is labelled."""

    BAND = "band"  # a border band as the trimaps have: the model learns the same border class from both
    IGNORE = "ignore"  # the band is left out of the loss: neither pet nor background is taught there
    NONE = "none"  # the hard line, as drawn (for scoring, never for training a trimap model)


def band_width(shape: tuple[int, ...]) -> int:
    """The border band's width in pixels for a label image of ``shape`` (its longer side sets it)."""
    return max(MIN_BAND_PX, int(round(BAND_FRACTION * max(shape[:2]))))


def mark_outline(labels: np.ndarray, outline: Outline) -> np.ndarray:
    """Binary 0-based labels (pet 0, background 1) with a band of ``band_width`` around the outline set to
    :data:`BORDER` (``Outline.BAND``) or :data:`IGNORE` (``Outline.IGNORE``); ``Outline.NONE`` returns them as given.

    The band straddles the line, half on each side, as the Oxford trimaps' does; the image's own edge gets none.
    """
    outline = Outline(outline)
    if outline is Outline.NONE:
        return labels
    fg = (labels == PET).astype(np.uint8)
    if not fg.any() or fg.all():
        return labels
    half = band_width(labels.shape) / 2
    inside = cv2.distanceTransform(fg, cv2.DIST_L2, 3)  # distance of a pet pixel to the background
    outside = cv2.distanceTransform(1 - fg, cv2.DIST_L2, 3)  # of a background pixel to the pet
    band = np.where(fg.astype(bool), inside <= half, outside <= half)
    marked = labels.copy()
    marked[band] = BORDER if outline is Outline.BAND else IGNORE
    return marked
