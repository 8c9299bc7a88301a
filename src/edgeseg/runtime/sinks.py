"""Where the live loop's composited frames go, and the thread that writes them while the next frame is made.

:class:`Sinks` are a video file, the MJPEG stream, a virtual camera and a window. :class:`SinkThread` takes the
writing (video encoding, JPEG for the stream, the virtual camera) off the processing thread, so that capture
(the source's own reader thread), segmentation and composition, and the outputs overlap across cores. Its
queue is bounded: a live run drops the oldest waiting frame rather than fall behind (a stale frame is worth
nothing to a viewer), a file run waits, so that every frame is written, in order. The window stays on the
main thread, which owns the GUI.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

class Sinks:
    """The outputs of one run, opened in order of risk (the virtual camera first: it may lack its package);
    :meth:`close` finalises every one of them, whatever ended the run."""

    def __init__(self, options, fps: float, announce: Callable[[str], None]):
        from edgeseg.runtime.outputs import VideoOutput, VirtualCamera, Window
        from edgeseg.runtime.server import MjpegServer, parse_address, redact

        self.camera = VirtualCamera(fps) if options.virtual_cam else None
        self.writer = VideoOutput(options.output, fps) if options.output else None
        self.window = Window() if options.window else None
        self.server, self.url = None, None
        if options.serve:
            host, port = parse_address(options.serve)
            self.server = MjpegServer(host, port, options.token, max_clients=options.max_clients,
                                      allow_open=options.open_stream, max_fps=options.stream_fps).start()
            self.url = redact(self.server.url)
            for url in self.server.urls:
                announce(url)

    @property
    def writes(self) -> bool:
        """Whether any output besides the window takes frames."""
        return bool(self.writer or self.camera or self.server)

    def write(self, out: np.ndarray, at: float | None = None) -> None:
        """The frame to the file, the virtual camera and the stream; an OSError is a failed write. ``at``: a live
        source's capture time, by which the file keeps real time (:meth:`VideoOutput.write`)."""
        if self.writer:
            self.writer.write(out, at)
        if self.camera:
            self.camera.write(out)
        if self.server:
            self.server.publish(out)

    def show(self, out: np.ndarray) -> int | None:
        """The frame in the window (main thread only); the key pressed, ``q`` once the window is closed."""
        if not self.window:
            return None
        key = self.window.show(out)
        return ord("q") if self.window.closed() else key

    def close(self, keep: bool = True) -> tuple[str | None, str | None]:
        """Finalise every output; the recording's path and codec (None without one). ``keep=False``: a failed
        recording leaves no file of half its frames."""
        from edgeseg.runtime.outputs import CODEC_NAMES

        written = None, None
        if self.writer:
            self.writer.close(keep=keep)
            if self.writer.frames:
                written = str(self.writer.path), CODEC_NAMES.get(self.writer.codec)
        for closable in (self.window, self.server, self.camera):
            if closable:
                closable.close()
        return written


class SinkThread:
    """Writes frames to ``sinks`` on its own thread, through a queue of ``depth`` frames.

    ``live``: drop the oldest waiting frame when the queue is full; else wait for room (every frame, in order).
    ``latency_ms`` holds the last ``window`` written frames' glass-to-glass latency: from capture to output written.
    """

    def __init__(self, sinks: Sinks, live: bool, window: int, depth: int = 2):
        self.sinks, self.live = sinks, live
        self._queue: queue.Queue = queue.Queue(depth)
        self.dropped = 0
        self.written = 0
        self.latency_ms: deque[float] = deque(maxlen=window)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="edgeseg-sinks", daemon=True)
        self._thread.start()

    def put(self, out: np.ndarray, captured_at: float) -> None:
        """Queue a copy of ``out`` (the processing thread reuses its array); raises the error a write met."""
        self._raise()
        item = (out.copy(), captured_at)
        while True:
            try:
                self._queue.put(item, block=not self.live, timeout=0.1)
                return
            except queue.Full:
                if self.live:  # the oldest waiting frame gives way
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass
                self._raise()

    def close(self) -> BaseException | None:
        """Write what is queued, stop the thread; the error a write met, if any."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        return self.error

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self.error is not None:  # after a failed write nothing more is written: drain until the end
                continue
            out, captured_at = item
            try:
                self.sinks.write(out, captured_at if self.live else None)
            except BaseException as exc:  # an OSError (a full disk) ends the run with the OS's reason
                self.error = exc
                continue
            self.written += 1
            self.latency_ms.append((time.perf_counter() - captured_at) * 1000)
