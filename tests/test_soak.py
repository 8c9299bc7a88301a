"""A soak of the live loop: thousands of frames served to MJPEG viewers, memory flat after warm-up.

The quick form of ``benchmarks/soak_serve.py`` (which records the curve over 20,000 frames and every effect):
a leak of even a few kilobytes a frame fails it.
"""

import http.client
import threading

import numpy as np
import psutil
import pytest

from edgeseg.runtime.effects import Effect
from edgeseg.runtime.pipeline import PipelineOptions, run_pipeline
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import Frame, Source

pytestmark = pytest.mark.slow  # about 20 s


class _Frames(Source):
    """Synthetic 640x480 camera frames; notes the process's memory at two points."""

    live = True

    def __init__(self, frames: int, marks: dict, on_start):
        self.frames, self.marks, self.on_start = frames, marks, on_start
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]

    def __iter__(self):
        process = psutil.Process()
        for i in range(self.frames):
            if i == 10:
                self.on_start()
            if i in (500, self.frames - 1):
                self.marks[i] = process.memory_info().rss
            yield Frame(self.images[i % 4], i, 0.0)


def _viewer(port: int, stop: threading.Event) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    while not stop.is_set():
        line = resp.readline()
        if not line:
            return
        if line.lower().startswith(b"content-length"):
            resp.read(int(line.split(b":")[1]) + 4)


@pytest.mark.parametrize("effect", [Effect.BLUR_BG, Effect.REMOVE_BG])
def test_memory_stays_flat_while_viewers_watch_thousands_of_frames(shipped, effect, tmp_path):
    from edgeseg.runtime.server import MjpegServer

    marks, stop, viewers = {}, threading.Event(), []
    started = {}
    real_start = MjpegServer.start

    def start(self):  # note the port the pipeline's server got
        started["port"] = self.httpd.server_address[1]
        return real_start(self)

    MjpegServer.start = start
    try:
        def watch():
            for _ in range(2):
                t = threading.Thread(target=_viewer, args=(started["port"], stop), daemon=True)
                t.start()
                viewers.append(t)

        source = _Frames(2000, marks, watch)
        with Segmenter(SegmenterOptions(shipped("tflite"), RunningMode.VIDEO)) as seg:
            report = run_pipeline(source, seg, PipelineOptions(effect=effect, hud=True, serve="127.0.0.1:0"),
                                  announce=lambda url: None)
    finally:
        MjpegServer.start = real_start
        stop.set()
    assert report.frames == 2000 and report.ended.value == "end of input"
    growth_mb = (marks[1999] - marks[500]) / 2**20
    assert growth_mb < 8, f"RSS grew {growth_mb:.1f} MB over 1,500 frames"
