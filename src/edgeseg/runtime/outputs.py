"""Where composited frames go: a video file, a window, a virtual camera."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

import cv2
import numpy as np

from edgeseg.io import remove_stale, temp_prefix, valid_utf8
from edgeseg.quiet import opencv_silenced
from edgeseg.stop_signals import restore, set_stop_handler

log = logging.getLogger("edgeseg")


# Codecs to try per container, best first: H.264 where the OpenCV build has an encoder for it, then what
# every build can write.
VIDEO_CODECS = {".mp4": ("avc1", "mp4v"), ".avi": ("MJPG",), ".mkv": ("avc1", "MJPG")}
CODEC_NAMES = {"avc1": "H.264", "mp4v": "MPEG-4 Part 2", "MJPG": "Motion JPEG"}
# Frame rates a source may report and outputs keep: one frame a minute (a timelapse) to 240 a second; outside it a
# reading is no rate (0 for unknown, 90000 for a stream's clock) and outputs use DEFAULT_FPS.
FPS_RANGE, DEFAULT_FPS = (1 / 60, 240.0), 30.0
MIN_FREE_BYTES = 256 * 1024  # below this the next frames cannot be stored: stop, with the OS's reason
MAX_VIDEO_SIDE = 8192  # MPEG-4 Part 2 and H.264 levels, and OpenCV's MJPG writer, stop here


def output_fps(fps: float) -> float:
    """The frame rate an output keeps: the source's (:data:`FPS_RANGE`), else :data:`DEFAULT_FPS`."""
    return fps if FPS_RANGE[0] <= fps <= FPS_RANGE[1] else DEFAULT_FPS


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` scaled to fit inside ``size`` (width, height), centred on black: its proportions kept."""
    h, w = frame.shape[:2]
    width, height = size
    scale = min(width / w, height / h)
    fw, fh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    out = np.zeros((height, width, *frame.shape[2:]), frame.dtype)
    y, x = (height - fh) // 2, (width - fw) // 2
    out[y:y + fh, x:x + fw] = cv2.resize(frame, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out


def video_codecs(path: str | Path) -> tuple[str, ...]:
    """The codecs to try for a video file named ``path``; a ValueError naming it when no encoder here can write
    it, which the command line checks before any work starts."""
    path = Path(path)
    if not valid_utf8(path):  # OpenCV's video writer crashes the process on such a name
        raise ValueError(f"{path!s}: the name is not valid UTF-8, which the video encoder cannot open; choose "
                         "another name")
    codecs = VIDEO_CODECS.get(path.suffix.lower())
    if codecs is None and not path.suffix:
        raise ValueError(f"{path} has no file type; name it {', '.join(f'*{s}' for s in VIDEO_CODECS)}")
    if codecs is None:
        raise ValueError(f"{path}: unsupported video type {path.suffix!r}; use {', '.join(VIDEO_CODECS)}")
    return codecs


class VideoOutput:
    """A video file written under a hidden temporary name and renamed on close, so a stopped run (Ctrl-C,
    SIGTERM, SIGHUP, end of input) leaves a playable file and a crashed one none under the requested name.

    Frames of another size than the first are letterboxed into it (with one warning). Close checks that the
    file holds every frame written. After kill -9, which no program can catch, the recording is lost:
    OpenCV buffers frames and MP4 writes its index last. The next run to the same path removes the
    dead run's partial file.
    """

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        codecs = video_codecs(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale(self.path.parent, f".{self.path.stem}.", self.path.suffix):
            log.info("removed %s, left by a run that was killed", stale)
        self.tmp = self.path.with_name(f"{temp_prefix(self.path)}partial{self.path.suffix}")
        self.codecs = codecs
        self.codec: str | None = None  # the one that opened, at the first frame
        self.fps = output_fps(fps)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._resize_warned = False
        self._start: float | None = None  # a live recording's first capture time
        self._newest: np.ndarray | None = None  # its newest frame, shown until the next one's slot

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        """Append ``frame``. ``at`` (a live source's capture time, ``time.perf_counter``): the file keeps real time
        at its frame rate, each frame shown from its own slot until the next one's, as a camera sends frames
        that the loop may process only some of; without it (files) every frame is written once, in order."""
        if at is None:
            self._append(frame)
            return
        if self._start is None:
            self._start = at
        slot = round((at - self._start) * self.fps)
        while self.frames < slot:
            self._append(self._newest)
        if self.frames == slot:
            self._append(frame)
        self._newest = frame  # a frame whose slot is already shown shows from the next one on

    def _append(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self.writer is None:
            if min(w, h) < 2:  # cropped to even sizes they would be empty
                raise OSError(f"cannot write video {self.path}: frames of {w}x{h} are smaller than video encoders "
                              "take (2x2 at least)")
            self.size = (w - w % 2, h - h % 2)  # every encoder here takes even sizes (OpenCV would crop silently)
            if self.size != (w, h):
                dropped = " and ".join(name for name, odd in (("column", w % 2), ("row", h % 2)) if odd)
                log.warning("video encoders take even sizes: frames of %dx%d are stored as %dx%d, without their "
                            "last %s", w, h, *self.size, dropped)
            self.writer, self.codec = self._open()
        if (w - w % 2, h - h % 2) == self.size:
            frame = frame[:self.size[1], :self.size[0]]
        else:
            if not self._resize_warned:
                log.warning("frames of %dx%d letterboxed into the video's %dx%d", w, h, *self.size)
                self._resize_warned = True
            frame = letterbox(frame, self.size)
        if shutil.disk_usage(self.tmp.parent).free < MIN_FREE_BYTES:  # the encoder would only print warnings
            raise OSError(errno.ENOSPC, f"cannot write {self.path}: {os.strerror(errno.ENOSPC)}")
        with _stop_signals_deferred():  # a stop between the write and the count would fail the close's check
            self.writer.write(frame)
            self.frames += 1

    def _open(self) -> tuple[cv2.VideoWriter, str]:
        for codec in self.codecs:
            with opencv_silenced():  # OpenCV and FFmpeg complain about a missing encoder; we try the next codec
                writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), self.fps, self.size)
            if writer.isOpened():
                log.debug("writing %s as %s", self.path, CODEC_NAMES[codec])
                return writer, codec
            writer.release()
        if max(self.size) > MAX_VIDEO_SIDE:  # what the encoders refuse, before "no encoder" would mislead
            raise OSError(f"cannot write video {self.path}: frames of {self.size[0]}x{self.size[1]} are larger than "
                          f"video encoders take ({MAX_VIDEO_SIDE} px a side at most)")
        raise OSError(f"cannot write video {self.path}: no encoder for {', '.join(self.codecs)} in this OpenCV build")

    def close(self, keep: bool = True) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if keep and self.frames:
                stored = _count_frames(self.tmp)
                if stored != self.frames:
                    self.tmp.unlink(missing_ok=True)
                    raise OSError(f"{self.path}: {self.frames} frames written but the file holds {stored}")
                os.replace(self.tmp, self.path)
        self.tmp.unlink(missing_ok=True)


class _stop_signals_deferred:
    """Hold SIGTERM/SIGHUP's handlers until the block ends; a signal that arrived inside it is handled after it.

    Python runs signal handlers in the main thread, between bytecodes, so the handlers themselves are swapped
    for a recorder. (Masking the signal would not do: the kernel hands a process-wide signal to any thread
    that does not block it, and Python then runs the handler in the main thread all the same.) Elsewhere
    than in the main thread nothing needs holding: no handler runs there.
    """

    def __enter__(self) -> None:
        self._pending: list[tuple[int, object]] = []
        self._previous = set_stop_handler(self._record)

    def _record(self, signum, frame) -> None:
        self._pending.append((signum, frame))

    def __exit__(self, *exc) -> None:
        restore(self._previous)
        for signum, frame in self._pending:
            handler = self._previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:  # the default action: end the process, as it would have
                signal.raise_signal(signum)


def _count_frames(path: Path) -> int:
    with opencv_silenced():  # a partial recording makes FFmpeg complain about its missing index
        capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


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
    frame's size; frames of another size are letterboxed into it. Missing pyvirtualcam is an ImportError at
    construction, a missing device an OSError."""

    def __init__(self, fps: float):
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise ImportError("--virtual-cam needs pyvirtualcam: pip install pyvirtualcam") from exc
        self._pyvirtualcam = pyvirtualcam
        self.fps = output_fps(fps)
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
        elif (self.cam.height, self.cam.width) != frame.shape[:2]:  # a device has one size
            frame = letterbox(frame, (self.cam.width, self.cam.height))
        self.cam.send(frame)

    def close(self) -> None:
        if self.cam is not None:
            self.cam.close()
