"""Frame sources: cameras, video files, stream URLs, images and image folders.

Live sources (cameras, URLs) are read by a capture thread that keeps only the newest frame, so latency
does not build up when processing is slower than the camera. Files are read in order, every frame.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edgeseg.contract import IMAGE_SUFFIXES
from edgeseg.errors import EdgesegError, NotFound, UsageError
from edgeseg.quiet import opencv_silenced
from edgeseg.runtime.image_io import (
    ImageError, MAX_PIXELS, MAX_PIXELS_OPTION, image_files, no_images, pattern_files, read_image,
)
from edgeseg.runtime.outputs import DEFAULT_FPS, output_fps

log = logging.getLogger("edgeseg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class SourceError(EdgesegError, RuntimeError):
    """A source that cannot be opened, or a live source that was lost for good."""


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8
    index: int
    capture_s: float  # time spent waiting for / reading this frame
    name: str = ""
    captured_at: float = field(default_factory=time.perf_counter)  # when it was read (time.perf_counter)


def _is_live(spec: str) -> bool:
    return spec.isdigit() or spec.startswith("/dev/video") or "://" in spec


STREAM_TIMEOUT_S = 10.0  # a stream URL that does not answer within this is reported as timed out
MAX_SIDE = 16384  # the longest side of a frame size asked of a camera or the bench, in pixels
SOURCE_KINDS = "a camera index, a device, a video or image file, a folder of images or a stream URL"


def open_source(spec: str | int, reconnect_s: float = 10.0, max_pixels: int = MAX_PIXELS,
                timeout_s: float = STREAM_TIMEOUT_S, loop: bool = False, realtime: bool = False,
                camera: CameraMode | None = None) -> "Source":
    """Open ``spec``: camera index or device path, video file, rtsp/http URL, image file or folder.

    Files (videos, images) can ``loop`` until stopped (a UsageError for a camera or stream) and be paced in
    ``realtime`` at their frame rate (for live outputs: a window, a stream server); otherwise they are read as fast
    as they are processed.
    ``camera``: the frame size and rate to ask a camera for (a UsageError for any other source).
    """
    spec = str(spec)
    if not spec.strip():  # not Path(""), which is the working directory
        raise SourceError(f"the source is empty: give {SOURCE_KINDS}")
    if _is_live(spec):
        if loop:
            raise UsageError(f"--loop is for video files and image folders; {spec} is a camera or stream")
        return LiveSource(spec, reconnect_s, timeout_s, camera)
    if camera is not None:
        raise UsageError(f"--camera-size and --camera-fps are for cameras; {spec} is a file or folder")
    path = Path(spec)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise SourceError(no_images(path))
        return ImageSource(files, max_pixels, loop, realtime)
    if not path.exists():
        matches, files = pattern_files(spec)
        if files:
            return ImageSource(files, max_pixels, loop, realtime)
        if matches:
            raise SourceError(f"source {spec!r} matches no image files, only folders or special files")
        raise NotFound(f"source {spec!r} not found: give {SOURCE_KINDS}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource([path], max_pixels, loop, realtime)
    return VideoFileSource(path, loop, realtime, max_pixels)


class Source:
    live = False
    fps: float = DEFAULT_FPS

    def _paced(self, frames: Iterator[Frame], realtime: bool) -> Iterator[Frame]:
        """``frames`` at ``fps`` when ``realtime`` (sleeping to each frame's due time, when a camera would deliver
        it, and stamped captured then), else unchanged."""
        if not realtime:
            yield from frames
            return
        start = time.monotonic()
        for n, frame in enumerate(frames):
            delay = start + n / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
                frame.captured_at = time.perf_counter()  # the wait is the file's pace, not latency
            yield frame

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ImageSource(Source):
    """Image files in order; one that cannot be used is skipped with a warning and listed in ``failed`` (one file
    alone is the source: a SourceError with its reason)."""

    def __init__(self, files: list[Path], max_pixels: int = MAX_PIXELS, loop: bool = False, realtime: bool = False):
        self.files, self.max_pixels, self.loop, self.realtime = files, max_pixels, loop, realtime
        self.failed: list[tuple[str, str]] = []  # (path, why)

    def __iter__(self) -> Iterator[Frame]:
        return self._paced(self._frames(), self.realtime)

    def _frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            readable = False
            for path in self.files:
                t = time.perf_counter()
                try:
                    image = read_image(path, self.max_pixels, MAX_PIXELS_OPTION)
                except ImageError as exc:
                    if len(self.files) == 1:
                        raise SourceError(str(exc)) from None
                    if not self.loop or index < len(self.files):  # say it once
                        log.warning("skipping %s", exc)
                        self.failed.append((str(path), str(exc)))
                    continue
                readable = True
                yield Frame(image, index, time.perf_counter() - t, str(path))
                index += 1
            if not readable:
                raise SourceError(f"none of the {len(self.files)} images could be read")
            if not self.loop:
                return


# Containers whose frame count is an index, not an estimate from duration x rate (MPEG-TS, Matroska and
# variable-rate streams estimate): only theirs says that a video ending early is damaged.
INDEXED_CONTAINERS = (".mp4", ".m4v", ".mov", ".avi")


class VideoFileSource(Source):
    def __init__(self, path: Path, loop: bool = False, realtime: bool = False, max_pixels: int = MAX_PIXELS):
        self.path, self.loop, self.realtime = path, loop, realtime
        with opencv_silenced():  # FFmpeg names a damaged container in its own words beside ours
            self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise SourceError(f"cannot open video {path} (not a video, or a codec OpenCV lacks)")
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > max_pixels:  # from the container's header, before a frame is decoded
            self.cap.release()
            raise SourceError(f"video {path} has frames of {w}x{h} ({w * h:,} pixels), over the limit of "
                              f"{max_pixels:,} pixels; raise it with {MAX_PIXELS_OPTION} if you trust the file")
        self.fps = output_fps(self.cap.get(cv2.CAP_PROP_FPS))
        self.expected = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))  # from the container; 0 when unknown
        self.indexed = path.suffix.lower() in INDEXED_CONTAINERS

    def __iter__(self) -> Iterator[Frame]:
        return self._paced(self._frames(), self.realtime)

    def _frames(self) -> Iterator[Frame]:
        i = in_pass = 0
        while True:
            t = time.perf_counter()
            ok, image = self.cap.read()
            if not ok:
                # Containers estimate their length: a shortfall of a frame or two is not damage.
                if self.indexed and self.expected and in_pass < 0.98 * self.expected - 2:
                    raise SourceError(f"video {self.path} ends after {in_pass} of its {self.expected} frames: "
                                      "the file is corrupt or truncated")
                if not (self.loop and in_pass):
                    return
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                in_pass = 0
                continue
            yield Frame(image, i, time.perf_counter() - t, self.path.name)
            i += 1
            in_pass += 1

    def close(self) -> None:
        self.cap.release()


@dataclass(frozen=True)
class CameraMode:
    """What to ask a camera for: frame size (width, height) and frames per second, each optional."""

    size: tuple[int, int] | None = None
    fps: float | None = None

    @classmethod
    def parse_size(cls, spec: str) -> tuple[int, int]:
        """``1280x720`` as (1280, 720); a ValueError says what was expected."""
        w, sep, h = spec.lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit()):
            raise ValueError(f"{spec!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
        size = int(w), int(h)
        if min(size) < 1 or max(size) > MAX_SIDE:
            limit = "at least 1 pixel a side" if min(size) < 1 else f"at most {MAX_SIDE} pixels a side"
            raise ValueError(f"{spec!r}: {limit}")
        return size


# USB 2 webcams send frames larger than this (720p, 1080p) at full rate only compressed (MJPG); uncompressed,
# 1280x720 comes at about 10 FPS
UNCOMPRESSED_PIXELS = 640 * 480


class LiveSource(Source):
    """A camera or stream URL read by a background thread that keeps only the newest frame.

    A source that stops delivering is reopened with exponential back-off for up to ``reconnect_s``
    seconds; after that iteration raises :class:`SourceError`. ``camera`` is asked of the device at each
    opening; what it delivers instead is said once, in a warning.
    """

    live = True

    def __init__(self, spec: str, reconnect_s: float = 10.0, timeout_s: float = STREAM_TIMEOUT_S,
                 camera: CameraMode | None = None):
        self.spec = spec
        self.reconnect_s = reconnect_s
        self.timeout_s = timeout_s
        self.camera = camera
        self._camera_warned = False
        self.cap = self._open()
        if self.cap is None:
            raise SourceError(self._open_error())
        self.fps = output_fps(self.cap.get(cv2.CAP_PROP_FPS))
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._read_at = 0.0  # when the newest frame was read (time.perf_counter)
        self._error: str | None = None
        self._running = True
        self._thread = threading.Thread(target=self._reader, name="edgeseg-capture", daemon=True)
        self._thread.start()

    def _target(self):
        return int(self.spec) if self.spec.isdigit() else self.spec

    def _open(self):
        start = time.monotonic()
        try:
            with opencv_silenced():  # OpenCV and FFmpeg say it in their words; our error says what failed
                if "://" in self.spec:  # FFmpeg otherwise waits ~30 s on a server that never answers
                    ms = int(self.timeout_s * 1000)
                    cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG,
                                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
                else:
                    cap = cv2.VideoCapture(self._target())
        finally:
            self._open_seconds = time.monotonic() - start
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.camera:
                self._ask(cap, self.camera)
            return cap
        cap.release()
        return None

    def _ask(self, cap, camera: CameraMode) -> None:
        if camera.size and camera.size[0] * camera.size[1] > UNCOMPRESSED_PIXELS:
            # V4L2 offers each format its own modes: MJPG first (a camera without it keeps its own format)
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if camera.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, camera.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, camera.size[1])
        if camera.fps:
            cap.set(cv2.CAP_PROP_FPS, camera.fps)
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        got_fps = cap.get(cv2.CAP_PROP_FPS)
        off = (camera.size and got != tuple(camera.size)) or (camera.fps and abs(got_fps - camera.fps) > 0.5)
        if off and not self._camera_warned:  # cameras offer a fixed list of modes and pick the nearest
            asked = " at ".join(filter(None, [camera.size and "{}x{}".format(*camera.size),
                                              camera.fps and f"{camera.fps:g} FPS"]))
            log.warning("%s delivers %dx%d at %g FPS, not the %s asked for (it has no such mode)", self.spec,
                        *got, got_fps, asked)
            self._camera_warned = True

    def _open_error(self) -> str:
        if self.spec.isdigit() or self.spec.startswith("/dev/video"):
            others = [d for d in sorted(glob.glob("/dev/video*")) if d != self.spec]
            found = f"other devices here: {', '.join(others)}" if others else "no /dev/video* devices here"
            return (f"no camera could be opened at --source {self.spec} ({found}). This machine may have no camera, "
                    "or it is in use. Pick one with --source N or --source /dev/videoN, run on a video with --source "
                    "VIDEO.mp4, or segment still images with: edgeseg predict IMAGES... --effect grayscale-bg")
        if self._open_seconds >= 0.9 * self.timeout_s:
            return f"cannot open stream {self.spec}: it did not answer within {self.timeout_s:.0f} s (timed out)"
        return f"cannot open stream {self.spec} (unreachable, wrong URL, or a protocol OpenCV lacks)"

    def _reader(self) -> None:
        while self._running:
            ok, image = self.cap.read()
            if ok:
                with self._cond:
                    self._frame, self._seq, self._read_at = image, self._seq + 1, time.perf_counter()
                    self._cond.notify_all()
                continue
            if not self._reconnect():
                with self._cond:
                    self._error = (f"source {self.spec} stopped delivering frames and could not be reopened "
                                   f"within {self.reconnect_s:.0f} s")
                    self._cond.notify_all()
                return

    def _reconnect(self) -> bool:
        self.cap.release()
        deadline, delay = time.monotonic() + self.reconnect_s, 0.25
        while self._running and time.monotonic() < deadline:
            log.warning("lost %s; reconnecting in %.2f s", self.spec, delay)
            time.sleep(delay)
            cap = self._open()
            if cap is not None:
                self.cap = cap
                return True
            delay = min(delay * 2, 2.0)
        return False

    def __iter__(self) -> Iterator[Frame]:
        seen, i = 0, 0
        while True:
            t = time.perf_counter()
            with self._cond:
                self._cond.wait_for(lambda: self._seq != seen or self._error is not None, timeout=self.reconnect_s + 5)
                if self._seq == seen:
                    raise SourceError(self._error or f"no frame from {self.spec} in {self.reconnect_s + 5:.0f} s")
                image, seen, read_at = self._frame, self._seq, self._read_at
            yield Frame(image, i, time.perf_counter() - t, self.spec, read_at)
            i += 1

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=2)
        self.cap.release()
