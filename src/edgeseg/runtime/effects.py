"""Background effects: composite a BGR frame with a soft foreground mask.

All effects blend with the soft mask ``alpha`` (float32 in [0, 1], 1 = subject), never a hard cut:
``out = alpha * frame + (1 - alpha) * background``.
"""

from __future__ import annotations

from enum import Enum

import cv2
import numpy as np


class Effect(str, Enum):
    GRAYSCALE_BG = "grayscale-bg"
    BLUR_BG = "blur-bg"
    REPLACE_BG = "replace-bg"
    REMOVE_BG = "remove-bg"
    OVERLAY = "overlay"
    NONE = "none"


def _blend(frame: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """alpha * frame + (1 - alpha) * background, in OpenCV's SIMD blend (both uint8)."""
    return cv2.blendLinear(frame, background, alpha, 1.0 - alpha)


def grayscale_bg(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Subject in colour, background in grey."""
    gray = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return _blend(frame, gray, alpha)


def blur_bg(frame: np.ndarray, alpha: np.ndarray, strength: int = 21, downscale: int = 4) -> np.ndarray:
    """Blurred background without halo.

    A plain blur of the frame smears the subject's colours into the background around its outline.
    Here the background is blurred by normalised convolution, ``blur(frame * bg) / blur(bg)`` with
    ``bg = 1 - alpha``, so only background pixels contribute to it. Both terms are area-downscaled
    first (an exact box prefilter of the same sums), which makes a wide blur cheap.
    """
    h, w = frame.shape[:2]
    small = (max(1, w // downscale), max(1, h // downscale))
    bg = 1.0 - alpha
    weighted = cv2.multiply(frame, cv2.merge([bg, bg, bg]), dtype=cv2.CV_32F)
    num = cv2.resize(weighted, small, interpolation=cv2.INTER_AREA)
    den = cv2.resize(bg, small, interpolation=cv2.INTER_AREA)
    k = max(3, (strength // downscale) | 1)
    num = cv2.GaussianBlur(num, (k, k), 0)
    den = cv2.GaussianBlur(den, (k, k), 0)
    # Where no background is near (deep inside the subject) alpha is ~1 and the value is not used.
    blurred = num / np.maximum(den, 1e-3)[..., None]
    blurred = cv2.resize(np.clip(blurred, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    return _blend(frame, blurred, alpha)


def replace_bg(frame: np.ndarray, alpha: np.ndarray, background: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    """Replace the background with an image (resized to the frame) or a BGR colour."""
    h, w = frame.shape[:2]
    if isinstance(background, np.ndarray):
        bg = background if background.shape[:2] == (h, w) else cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
    else:
        bg = np.empty_like(frame)
        bg[:] = background
    return _blend(frame, bg, alpha)


def remove_bg(frame: np.ndarray, alpha: np.ndarray, key: tuple[int, int, int] | None = None) -> np.ndarray:
    """RGBA-style BGRA image with the mask as alpha, or (``key`` given) the background set to a flat colour."""
    if key is not None:
        return replace_bg(frame, alpha, key)
    return cv2.merge([*cv2.split(frame), cv2.convertScaleAbs(alpha, alpha=255.0)])


def overlay(frame: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int] = (0, 200, 255), opacity: float = 0.5):
    """Tint the subject with ``color`` (BGR) at ``opacity``, weighted by the mask."""
    tinted = np.empty_like(frame)
    tinted[:] = color
    tinted = cv2.addWeighted(frame, 1 - opacity, tinted, opacity, 0)
    return _blend(tinted, frame, alpha)


def apply_effect(
    effect: Effect | str,
    frame: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray | tuple[int, int, int] | None = None,
    blur_strength: int = 21,
) -> np.ndarray:
    """Apply ``effect`` to a BGR uint8 frame given a float mask of the frame's size."""
    effect = Effect(effect)
    if alpha.shape != frame.shape[:2]:
        raise ValueError(f"mask shape {alpha.shape} does not match frame {frame.shape[:2]}")
    if effect is Effect.GRAYSCALE_BG:
        return grayscale_bg(frame, alpha)
    if effect is Effect.BLUR_BG:
        return blur_bg(frame, alpha, blur_strength)
    if effect is Effect.REPLACE_BG:
        return replace_bg(frame, alpha, (0, 177, 64) if background is None else background)
    if effect is Effect.REMOVE_BG:
        return remove_bg(frame, alpha, None if background is None or isinstance(background, np.ndarray) else background)
    if effect is Effect.OVERLAY:
        return overlay(frame, alpha)
    return frame.copy()
