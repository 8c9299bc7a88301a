"""Temporal stability of a video mask: flicker on a clip made from a still photo (no TensorFlow).

A video-call mask must not flicker where nothing moves. The clip is one photo shaken by whole pixels (a
hand-held or desk-vibrated camera) with fresh sensor noise in every frame. Undoing each frame's shift puts
every pixel of the scene back in one place, so within the margin that no shift uncovers nothing moves,
and any change of the mask there is flicker: the model's reaction to noise and to a shift of its input
grid, after the runtime's temporal smoothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

FRAMES = 30  # a second of video
SHAKE_PX = 2  # largest shift either way, in pixels of the photo
NOISE = 4.0  # standard deviation of the sensor noise, in 0-255 levels (an indoor webcam)


@dataclass(frozen=True)
class Clip:
    """Frames of a shaken photo, and each frame's (dx, dy) shift."""

    frames: list[np.ndarray]
    shifts: list[tuple[int, int]]

    @property
    def margin(self) -> int:
        """Pixels at each edge that some shift fills with reflected content."""
        return max((max(abs(dx), abs(dy)) for dx, dy in self.shifts), default=0)


def shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by whole pixels (``dx`` right, ``dy`` down), its edges reflected into the gap."""
    if not dx and not dy:
        return image.copy()
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)


def shaken_clip(image: np.ndarray, frames: int = FRAMES, shake_px: int = SHAKE_PX, noise: float = NOISE,
                seed: int = 0) -> Clip:
    """A clip of ``frames`` frames from one BGR photo: random whole-pixel shifts of at most ``shake_px`` and
    Gaussian sensor noise of ``noise`` levels. ``shake_px=0, noise=0`` gives a static clip."""
    if frames < 2 or shake_px < 0 or not noise >= 0:
        raise ValueError(f"a clip needs at least 2 frames, shake_px >= 0 and noise >= 0; received {frames}, "
                         f"{shake_px} and {noise}")
    rng = np.random.default_rng(seed)
    out, shifts = [], []
    for _ in range(frames):
        dx, dy = (int(v) for v in rng.integers(-shake_px, shake_px + 1, 2))
        frame = shift(image, dx, dy)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        out.append(frame)
        shifts.append((dx, dy))
    return Clip(out, shifts)


def flicker(alphas: list[np.ndarray], shifts: list[tuple[int, int]], margin: int | None = None) -> float:
    """Mean |alpha_t - alpha_(t-1)| over the pixels that do not move, in units of full opacity (0 to 1).

    ``alphas``: each frame's mask (float in [0, 1] or uint8 0-255), ``shifts``: the frame's shift, undone
    before comparing; ``margin`` (default: the largest shift) is left out at each edge.
    """
    if len(alphas) != len(shifts) or len(alphas) < 2:
        raise ValueError(f"flicker needs at least 2 masks and one shift per mask, received {len(alphas)} and "
                         f"{len(shifts)}")
    if margin is None:
        margin = max(max(abs(dx), abs(dy)) for dx, dy in shifts)
    scale = 1 / 255 if alphas[0].dtype == np.uint8 else 1.0
    h, w = alphas[0].shape[:2]
    if 2 * margin >= min(h, w):
        raise ValueError(f"a {margin} px margin leaves nothing of {w}x{h} masks")
    inner = (slice(margin, h - margin), slice(margin, w - margin))
    steady = [shift(a, -dx, -dy)[inner].astype(np.float32) for a, (dx, dy) in zip(alphas, shifts)]
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(steady, steady[1:])]) * scale)


@dataclass
class FlickerReport:
    """Flicker of a model's video mask on shaken clips of still photos."""

    clips: int
    frames: int
    shake_px: int
    noise: float
    flicker: float  # mean |alpha_t - alpha_(t-1)| where nothing moves, 0 to 1 (the mean over clips)

    def to_dict(self) -> dict:
        return asdict(self)


def measure_flicker(segment, images, frames: int = FRAMES, shake_px: int = SHAKE_PX, noise: float = NOISE,
                    seed: int = 0) -> FlickerReport:
    """Flicker of ``segment`` on a shaken clip of each BGR photo in ``images``.

    ``segment(frame, first)``: the mask of one video frame; ``first`` starts a new clip (reset the model's
    temporal state there).
    """
    scores = []
    for i, image in enumerate(images):
        clip = shaken_clip(image, frames, shake_px, noise, seed + i)
        alphas = [np.array(segment(frame, t == 0)) for t, frame in enumerate(clip.frames)]
        scores.append(flicker(alphas, clip.shifts, clip.margin))
    if not scores:
        raise ValueError("no images to make flicker clips from")
    return FlickerReport(len(scores), frames, shake_px, noise, round(float(np.mean(scores)), 5))
