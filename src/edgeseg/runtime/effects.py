"""Background effects: composite a BGR frame with a soft foreground mask.

All effects blend with the soft mask ``alpha`` (float32 in [0, 1] or uint8 in [0, 255], 1 or 255 =
subject), never a hard cut: ``out = alpha * frame + (1 - alpha) * background`` (in 8-bit fixed point,
see ``_blend``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.runtime.image_io import MAX_PIXELS, MAX_PIXELS_OPTION, ImageError, read_image
from edgeseg.runtime.scratch import Scratch
from edgeseg.runtime.shrink import halve


class Effect(Choice):
    GRAYSCALE_BG = "grayscale-bg"
    BLUR_BG = "blur-bg"
    REPLACE_BG = "replace-bg"
    REMOVE_BG = "remove-bg"
    OVERLAY = "overlay"
    NONE = "none"


def _alpha8(alpha: np.ndarray, s: Scratch) -> np.ndarray:
    """The mask as 0-255 uint8: as given if it is one, else the float mask rounded (once per frame)."""
    if alpha.dtype == np.uint8:
        return alpha
    return cv2.convertScaleAbs(alpha, alpha=255.0, dst=s.array("alpha8", alpha.shape))


def _blend(frame: np.ndarray, background: np.ndarray, a: np.ndarray, s: Scratch) -> np.ndarray:
    """a/255 * frame + (1 - a/255) * background for a uint8 mask ``a``; ``background`` BGR or one-channel grey.

    8-bit fixed point: exact where the mask is 0 or 255, within 1.5 grey levels of the float blend in
    between, and cheaper than ``cv2.blendLinear`` (which divides by the weight sum at every pixel). A grey
    background is weighted in one channel and expanded afterwards: a third of the work for that term.
    """
    a3 = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR, dst=s.array("alpha3", frame.shape))
    out = cv2.multiply(frame, a3, scale=1 / 255, dst=s.array("out", frame.shape))
    theirs = a3  # a3 is used up: the background term goes in its place (fewer arrays, more of them in cache)
    if background.ndim == 2:
        inverse = cv2.bitwise_not(a, dst=s.array("inverse8", a.shape))
        cv2.cvtColor(cv2.multiply(background, inverse, scale=1 / 255, dst=inverse), cv2.COLOR_GRAY2BGR, dst=theirs)
    else:
        cv2.multiply(background, cv2.bitwise_not(a3, dst=a3), scale=1 / 255, dst=theirs)
    return cv2.add(out, theirs, dst=out)


def grayscale_bg(frame: np.ndarray, alpha: np.ndarray, scratch: Scratch | None = None) -> np.ndarray:
    """Subject in colour, background in grey."""
    s = scratch or Scratch()
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=s.array("gray", frame.shape[:2]))
    return _blend(frame, gray, _alpha8(alpha, s), s)


QUARTER = 4  # blur-bg's background is blurred at a quarter of the frame's size, a pixel per 4 x 4 block
BLUR, MIN_BLUR, MAX_BLUR = 21, 3, 255  # blur-bg's strength: the Gaussian's width in pixels of the frame
# a frame pixel's position in the quarter-size image (its blocks' centres at 1.5, 5.5, ...): x / 4 - 0.375
_FROM_QUARTER = np.float32([[1 / QUARTER, 0, 0.5 / QUARTER - 0.5], [0, 1 / QUARTER, 0.5 / QUARTER - 0.5]])


def blur_bg(frame: np.ndarray, alpha: np.ndarray, strength: int = BLUR, scratch: Scratch | None = None) -> np.ndarray:
    """Blurred background without halo.

    A plain blur of the frame smears the subject's colours into the background around its outline.
    Here the background is blurred by normalised convolution, ``blur(frame * bg) / blur(bg)`` with
    ``bg = 1 - alpha``, so only background pixels contribute to it (:func:`blurred_background`). ``frame * bg``
    is formed at full size in uint8; no frame-sized work is in float.
    """
    s = scratch or Scratch()
    h, w = frame.shape[:2]
    a = _alpha8(alpha, s)
    bg3 = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR, dst=s.array("bg3", frame.shape))
    cv2.bitwise_not(bg3, dst=bg3)  # 255 * (1 - alpha) in each channel
    weighted = cv2.multiply(frame, bg3, scale=1 / 255, dst=s.array("out", frame.shape))  # frame * bg
    small = blurred_background(weighted, a, strength, s)
    # alpha * frame is frame - frame * bg: exact in 8 bits (a rounding tie would need 2 * frame * alpha8 = 255 * odd)
    out = cv2.subtract(frame, weighted, dst=weighted)
    # each quarter-size pixel at its block's centre (a stretch to the frame would shift them where w or h % 4 > 0)
    blurred = cv2.warpAffine(small, _FROM_QUARTER, (w, h), dst=s.array("background", frame.shape),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    theirs = cv2.multiply(blurred, bg3, scale=1 / 255, dst=bg3)
    return cv2.add(out, theirs, dst=out)


def blurred_background(weighted: np.ndarray, alpha: np.ndarray, strength: int, s: Scratch) -> np.ndarray:
    """The halo-free blurred background at a quarter of the frame's size (uint8): ``blur(frame * bg) / blur(bg)``
    from the frame weighted by the background (``frame * bg``, uint8) and the 0-255 mask, both box-downscaled 4x
    first (the same sums, so still halo-free: the wide blur costs little): a pixel per whole 4 x 4 block."""
    h, w = (max(QUARTER, n - n % QUARTER) for n in alpha.shape)  # a halving of an odd size would mix blocks
    weighted, alpha = weighted[:h, :w], alpha[:h, :w]
    for i in range(QUARTER.bit_length() - 1):  # log2(QUARTER) halvings
        weighted, alpha = halve(weighted, s, f"weighted{i}"), halve(alpha, s, f"alpha{i}")
    num = s.array("num", weighted.shape, np.float32)
    den = s.array("den", alpha.shape, np.float32)
    np.copyto(num, weighted)
    np.subtract(np.float32(1), np.multiply(alpha, np.float32(1 / 255), out=den), out=den)
    quarter_blur(num, strength)
    quarter_blur(den, strength)
    np.maximum(den, np.float32(MIN_WEIGHT), out=den)
    cv2.divide(num, cv2.cvtColor(den, cv2.COLOR_GRAY2BGR, dst=s.array("den3", num.shape, np.float32)), dst=num)
    return cv2.convertScaleAbs(num, dst=s.array("small", num.shape))  # saturating, rounding cast


MIN_WEIGHT = 1e-3  # of the background near a pixel: below it (deep inside the subject) alpha is ~1, the value unused


def quarter_taps(strength: int) -> np.ndarray:
    """The Gaussian of blur-bg at a quarter of the frame's size (float32 taps, an odd number, at least 3)."""
    return cv2.getGaussianKernel(max(3, (strength // 4) | 1), 0, ktype=cv2.CV_32F).ravel()


def quarter_blur(image: np.ndarray, strength: int) -> np.ndarray:
    """The blur of blur-bg at a quarter of the frame's size, in place (float32, any number of channels; borders
    reflected without repeating the edge, OpenCV's default)."""
    taps = quarter_taps(strength)
    return cv2.sepFilter2D(image, -1, taps, taps, dst=image)


def fit_background(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled to cover a ``height`` x ``width`` frame and cropped about its centre, as video calls place a
    virtual background: never stretched (a portrait photo behind a landscape camera keeps its proportions)."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    # the part of the image that covers the frame, then one resize of it
    ch, cw = min(h, max(1, round(height / scale))), min(w, max(1, round(width / scale)))
    y, x = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(image[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_AREA)


def replace_bg(frame: np.ndarray, alpha: np.ndarray, background: np.ndarray | tuple[int, int, int],
               scratch: Scratch | None = None) -> np.ndarray:
    """Replace the background with an image (:func:`fit_background`: covering the frame) or a BGR colour."""
    s = scratch or Scratch()
    if not isinstance(background, np.ndarray):  # ``cv2.multiply`` by a scalar colour is ~3x slower than by an image
        background = s.filled(frame.shape, background)
    else:
        background = fit_background(background, *frame.shape[:2])
    return _blend(frame, background, _alpha8(alpha, s), s)


def remove_bg(frame: np.ndarray, alpha: np.ndarray, key: tuple[int, int, int] | None = None,
              scratch: Scratch | None = None) -> np.ndarray:
    """RGBA-style BGRA image with the mask as alpha, or (``key`` given) the background set to a flat colour."""
    if key is not None:
        return replace_bg(frame, alpha, key, scratch)
    s = scratch or Scratch()
    out = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA, dst=s.array("out", (*frame.shape[:2], 4)))
    out[..., 3] = _alpha8(alpha, s)
    return out


OVERLAY_COLOR = (0, 200, 255)  # BGR: amber
OVERLAY_OPACITY = 0.5  # of the tint over the subject


def overlay(frame: np.ndarray, alpha: np.ndarray, color: tuple[int, int, int] = OVERLAY_COLOR,
            opacity: float = OVERLAY_OPACITY, scratch: Scratch | None = None) -> np.ndarray:
    """Tint the subject with ``color`` (BGR) at ``opacity``, weighted by the mask.

    ``frame + opacity * alpha * (color - frame)``: a blend of the frame with the colour, weighted by
    ``1 - opacity * alpha``.
    """
    s = scratch or Scratch()
    # 255 * (1 - opacity * alpha): the frame's weight (never negative, so the "Abs" changes nothing)
    keep = cv2.convertScaleAbs(_alpha8(alpha, s), alpha=-opacity, beta=255, dst=s.array("keep", frame.shape[:2]))
    return _blend(frame, s.filled(frame.shape, color), keep, s)


KEY_COLOR = (0, 177, 64)  # chroma green (BGR): the default background and remove-bg's key in video
KEY_HEX = "#{2:02X}{1:02X}{0:02X}".format(*KEY_COLOR)  # as users write it (RGB)


def parse_background(value: str | None, max_pixels: int = MAX_PIXELS) -> np.ndarray | tuple[int, int, int] | None:
    """``--background``: an image file (of at most ``max_pixels``, as the photos), or a colour as #RRGGBB
    (returned as BGR)."""
    if value is None:
        return None
    if value.startswith("#") and not Path(value).exists():
        try:
            r, g, b = bytes.fromhex(value[1:]) if len(value) == 7 else b""
        except ValueError:
            raise ValueError(f"{value!r} is not a #RRGGBB colour") from None
        return (b, g, r)
    try:
        return read_image(value, max_pixels, MAX_PIXELS_OPTION)
    except ImageError as exc:
        raise ValueError(f"{exc}; expected an image or a #RRGGBB colour") from None


def check_blur(effect: Effect | str, blur: int | None) -> None:
    """A blur strength only means something to blur-bg: refuse it elsewhere."""
    if blur is not None and Effect(effect) is not Effect.BLUR_BG:
        raise ValueError(f"--effect {Effect(effect).value} does not blur; --blur is for {Effect.BLUR_BG.value}")


def check_background(effect: Effect | str, background) -> None:
    """A background only means something to the effects whose table entry uses one: refuse it elsewhere."""
    effect = Effect(effect)
    if background is not None and not EFFECTS[effect].uses_background:
        users = " and ".join(e.value for e, spec in EFFECTS.items() if spec.uses_background)
        raise ValueError(f"--effect {effect.value} does not use a background; --background is for {users}")


def apply_effect(
    effect: Effect | str,
    frame: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray | tuple[int, int, int] | None = None,
    blur_strength: int = BLUR,
    scratch: Scratch | None = None,
) -> np.ndarray:
    """Apply ``effect`` to a BGR uint8 frame given a mask of the frame's size (float in [0, 1] or uint8).

    With a ``scratch``, every work array and the result are reused from call to call (the live loop);
    the returned image is then overwritten by the next call.
    """
    effect = Effect(effect)
    if alpha.shape != frame.shape[:2]:
        raise ValueError(f"mask shape {alpha.shape} does not match frame {frame.shape[:2]}")
    return EFFECTS[effect].apply(frame, alpha, background, blur_strength, scratch or Scratch())


def _none(frame: np.ndarray, s: Scratch) -> np.ndarray:
    out = s.array("out", frame.shape)
    np.copyto(out, frame)
    return out


@dataclass(frozen=True)
class EffectSpec:
    """What an effect needs and does: the one table the pipeline, predict and the CLI read.

    ``apply(frame, alpha, background, blur, scratch)``; ``uses_background``: takes ``--background``;
    ``keyed_in_video``: video has no transparency, so there the background is keyed to a flat colour.
    """

    apply: Callable[..., np.ndarray]
    uses_background: bool = False
    keyed_in_video: bool = False


EFFECTS: dict[Effect, EffectSpec] = {
    Effect.GRAYSCALE_BG: EffectSpec(lambda f, a, bg, blur, s: grayscale_bg(f, a, s)),
    Effect.BLUR_BG: EffectSpec(lambda f, a, bg, blur, s: blur_bg(f, a, blur, scratch=s)),
    Effect.REPLACE_BG: EffectSpec(lambda f, a, bg, blur, s: replace_bg(f, a, KEY_COLOR if bg is None else bg, s),
                                  uses_background=True),
    Effect.REMOVE_BG: EffectSpec(lambda f, a, bg, blur, s: remove_bg(
        f, a, None if bg is None or isinstance(bg, np.ndarray) else bg, s), uses_background=True, keyed_in_video=True),
    Effect.OVERLAY: EffectSpec(lambda f, a, bg, blur, s: overlay(f, a, scratch=s)),
    Effect.NONE: EffectSpec(lambda f, a, bg, blur, s: _none(f, s)),
}
