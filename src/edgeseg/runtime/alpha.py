"""From a model's class scores to the mask a user sees, in one place (numpy only).

logits -> class probabilities (softmax) -> alpha = the mask weights' sum of probabilities -> the soft threshold.
The runtime's per-frame path (:meth:`Segmenter._weighted_softmax`) computes the same with OpenCV into reused
arrays; export checks, training callbacks and plots use these functions.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities over the last axis, shifted by the peak logit so that no exp overflows (float32)."""
    z = np.asarray(logits, np.float32)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def alpha_from_logits(logits: np.ndarray, weights) -> np.ndarray:
    """The weighted probability of the subject: sum over classes of w_c * softmax_c (before the soft threshold)."""
    return softmax(logits) @ np.asarray(weights, np.float32)


def alpha_from_probabilities(probs: np.ndarray, weights, threshold: float = 0.5, softness: float = 0.1) -> np.ndarray:
    """The runtime's alpha at the model's resolution from class probabilities (..., C): the mask weights'
    sum of probabilities, soft-thresholded (what a user sees, before the resize to the frame)."""
    alpha = np.ascontiguousarray(probs, dtype=np.float32) @ np.asarray(weights, np.float32)
    return soft_threshold(alpha, threshold, softness)


def soft_threshold(alpha: np.ndarray, threshold: float = 0.5, softness: float = 0.1) -> np.ndarray:
    """Soft threshold in place: 0 below ``threshold - softness``, 1 above ``threshold + softness``, linear between.

    Applied to the probability after its bilinear resize to the frame, so edges stay smooth (no blocks
    from the model's grid) while the background is cleared and the subject made opaque.
    """
    np.subtract(alpha, threshold - softness, out=alpha)
    return np.clip(np.multiply(alpha, 0.5 / softness, out=alpha), 0.0, 1.0, out=alpha)
