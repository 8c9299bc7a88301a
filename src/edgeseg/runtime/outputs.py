"""Where composited frames go: a video file, a window, a virtual camera."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("edgeseg")


class VideoOutput:
    """An MP4 (or AVI) file written to a temporary name and renamed on close, so a stopped run leaves a
    playable file and a crashed one leaves none under the requested name."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), self.fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path} (codec {self.fourcc!r} unavailable?)")
        self.writer.write(frame)
        self.frames += 1

    def close(self, keep: bool = True) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if keep and self.frames:
                os.replace(self.tmp, self.path)
        if self.tmp.exists():
            self.tmp.unlink()


def display_available() -> bool:
    """True where an OpenCV window can open (a display on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """An OpenCV window; ``show()`` returns the key pressed (or 255 when none)."""

    def __init__(self, title: str = "edgeseg"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, frame: np.ndarray) -> int:
        cv2.imshow(self.title, frame)
        return cv2.waitKey(1) & 0xFF

    def closed(self) -> bool:
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class VirtualCamera:
    """A virtual camera through pyvirtualcam (optional: pip install pyvirtualcam), opened at the first
    frame's size. Missing pyvirtualcam is an ImportError at construction, a missing device an OSError."""

    def __init__(self, fps: float):
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise ImportError("--virtual-cam needs pyvirtualcam: pip install pyvirtualcam") from exc
        self._pyvirtualcam = pyvirtualcam
        self.fps = fps if 1 <= fps <= 240 else 30.0
        self.cam = None

    def write(self, frame: np.ndarray) -> None:
        if self.cam is None:
            h, w = frame.shape[:2]
            try:
                self.cam = self._pyvirtualcam.Camera(w, h, self.fps, fmt=self._pyvirtualcam.PixelFormat.BGR)
            except RuntimeError as exc:  # pyvirtualcam's error when no virtual camera device exists
                raise OSError(f"no virtual camera to send to ({exc}); Linux: sudo modprobe v4l2loopback, "
                              "Windows and macOS: install OBS Studio") from exc
            log.info("virtual camera %s", self.cam.device)
        self.cam.send(frame)

    def close(self) -> None:
        if self.cam is not None:
            self.cam.close()
