"""The live loop: effects on video, outputs (file, server, window), finalising on Ctrl-C."""

import tracemalloc

import cv2
import numpy as np
import pytest

from edgeseg.runtime.effects import Effect, fit_background, replace_bg
from edgeseg.runtime.guided import MaskField
from edgeseg.runtime.pipeline import FrameProcessor, PipelineOptions, run_pipeline
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import open_source
from tests.helpers import FRAME_PATHS, write_video

BACKENDS = [("tflite", "int8"), ("onnx", "int8")]


class _AllBackground:
    """A stand-in segmenter whose mask says 'background' everywhere."""

    timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
    options = SegmenterOptions("none.tflite")

    def segment(self, image, out):
        out[:] = 0.0
        return out

    def field(self, image):
        return MaskField(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("path", FRAME_PATHS)
def test_background_image_is_fitted_to_each_frame_size(path):
    background = np.random.default_rng(3).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    process = FrameProcessor(_AllBackground(), Effect.REPLACE_BG, background, frame_path=path)
    for h, w in [(48, 64), (60, 80), (48, 64)]:  # from the original each time, never a resize of a resize
        out, _ = process(np.zeros((h, w, 3), np.uint8))
        np.testing.assert_array_equal(out, fit_background(background, h, w))


@pytest.mark.parametrize("path", FRAME_PATHS)
def test_a_background_of_another_shape_covers_the_frame_unstretched(path):
    # a portrait photo behind a landscape camera was stretched to the frame: a round object became an oval
    background = np.zeros((300, 200, 3), np.uint8)
    cv2.circle(background, (100, 150), 40, (255, 255, 255), -1)  # in the middle
    frame = np.zeros((120, 240, 3), np.uint8)
    for out in (FrameProcessor(_AllBackground(), Effect.REPLACE_BG, background, frame_path=path)(frame)[0],
                replace_bg(frame, np.zeros(frame.shape[:2], np.float32), background)):
        assert out.shape == frame.shape
        ys, xs = np.nonzero(out[..., 0] > 127)
        assert abs((xs.max() - xs.min()) - 96) <= 2 and abs((ys.max() - ys.min()) - 96) <= 2  # 1.2x: covers the width
        assert abs((xs.min() + xs.max()) / 2 - 119.5) <= 1 and abs((ys.min() + ys.max()) / 2 - 59.5) <= 1  # centred
    keyed, _ = FrameProcessor(_AllBackground(), Effect.REMOVE_BG, frame_path=path)(np.zeros((48, 64, 3), np.uint8))
    assert keyed.shape == (48, 64, 3) and (keyed == (0, 177, 64)).all()  # video outputs get a key colour


def test_live_step_allocates_no_frame_sized_arrays(shipped):
    """After the first frame the live loop reuses every frame-sized array (page faults cost more than the blend)."""
    frame = np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        for effect in Effect:
            process = FrameProcessor(seg, effect)
            process(frame)
            tracemalloc.start()
            for _ in range(3):
                process(frame)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < frame.size // 4, f"{effect.value}: {peak} bytes allocated per frame"  # frame: 230 kB


@pytest.mark.parametrize("effect", list(Effect))
@pytest.mark.parametrize("fmt,precision", BACKENDS)
def test_video_end_to_end(shipped, video, tmp_path, effect, fmt, precision):
    out = tmp_path / "out.mp4"
    options = SegmenterOptions(shipped(fmt, precision), RunningMode.VIDEO)
    with open_source(str(video)) as source, Segmenter(options) as seg:
        report = run_pipeline(source, seg, PipelineOptions(effect=effect, output=str(out)), name=str(video))
    assert report.frames == 12 and report.ended == "end of input"
    assert set(report.stage_ms) == {"capture", "preprocess", "inference", "postprocess", "effect"}
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 12
    assert not list(tmp_path.glob(".*partial*"))


def test_ctrl_c_finalises_a_playable_video(shipped, video, tmp_path):
    from edgeseg.runtime.sources import Frame, Source

    class InterruptedSource(Source):  # a user pressing Ctrl-C after five frames
        def __iter__(self):
            for frame in open_source(str(video)):
                if frame.index == 5:
                    raise KeyboardInterrupt
                yield Frame(frame.image, frame.index, 0.0)

    out = tmp_path / "out.mp4"
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(InterruptedSource(), seg, PipelineOptions(output=str(out)))
    assert report.ended == "stopped by user" and report.frames == 5 and report.output == str(out)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.read()[0]


def test_pipeline_serves_its_frames(shipped, video, monkeypatch):
    import urllib.request

    from edgeseg.runtime.server import MjpegServer

    urls, seen = [], {}
    real_start = MjpegServer.start

    def start(self):  # note the URL the pipeline's server gets
        urls.append(self.url)
        return real_start(self)

    monkeypatch.setattr(MjpegServer, "start", start)

    class Watched:  # a video source that fetches the served frame while the pipeline runs
        fps = 10.0

        def __iter__(self):
            for frame in open_source(str(video)):
                yield frame
                if frame.index == 3:
                    with urllib.request.urlopen(urls[0].replace("/?", "/frame.jpg?"), timeout=5) as resp:
                        seen["type"] = resp.headers["Content-Type"]

    announced = []
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(Watched(), seg, PipelineOptions(serve="127.0.0.1:0", token="t0k"),
                              announce=announced.append)
    assert report.frames == 12 and seen["type"] == "image/jpeg"
    # the URL with its token is shown once, to whoever started the server; the report keeps it redacted
    assert announced == urls and "token=t0k" in announced[0]
    assert report.url.startswith("http://127.0.0.1:") and "t0k" not in report.url


def test_window_keys_cycle_effects_toggle_the_hud_and_quit(shipped, video, monkeypatch):
    from edgeseg.runtime import outputs

    keys = [ord("e")] * 5 + [ord("h"), ord("q")]  # five effects on (to 'none'), HUD off, quit
    shown = []

    class ScriptedWindow:
        def __init__(self, title="edgeseg"):
            pass

        def show(self, frame):
            shown.append(frame.copy())
            return keys[len(shown) - 1]

        def closed(self):
            return False

        def close(self):
            pass

    monkeypatch.setattr(outputs, "Window", ScriptedWindow)
    frames = [f.image for f in open_source(str(video))]
    with open_source(str(video)) as source, Segmenter(SegmenterOptions(shipped("tflite", "int8"))) as seg:
        report = run_pipeline(source, seg, PipelineOptions(window=True))
    assert report.ended == "stopped by user" and report.frames == 7
    hud_white = [int((s[:140, :160] == 255).all(axis=2).sum()) for s in shown]
    assert hud_white[0] > 20 and hud_white[5] > 20 and hud_white[6] == 0  # the HUD, then not
    np.testing.assert_array_equal(shown[6], frames[6])  # effect 'none' without HUD: the frame itself
    assert not np.array_equal(shown[0][60:, :], frames[0][60:, :])  # grayscale-bg changed the frame


def test_mask_every_reports_the_inference_it_ran(shipped, video):
    options = SegmenterOptions(shipped("tflite"), RunningMode.VIDEO, mask_every=3)
    with open_source(str(video)) as source, Segmenter(options) as seg:
        report = run_pipeline(source, seg, PipelineOptions())
    assert report.frames == 12 and report.stage_ms["inference"] > 0  # medians over the frames that ran it


def test_the_hud_shows_the_masks_age_when_masks_are_reused(shipped, video, monkeypatch):
    # --mask-every: the report gave the mean age, the HUD only the last model run's timings
    from edgeseg.runtime import pipeline

    shown = []
    real = pipeline.draw_hud
    monkeypatch.setattr(pipeline, "draw_hud", lambda out, *a, **kw: (shown.append(kw.get("mask_age")),
                                                                    real(out, *a, **kw)))
    for every, ages in ((3, [0, 1, 2, 0, 1, 2]), (1, [None] * 6)):
        shown.clear()
        options = SegmenterOptions(shipped("tflite"), RunningMode.VIDEO, mask_every=every)
        with open_source(str(video)) as source, Segmenter(options) as seg:
            run_pipeline(source, seg, PipelineOptions(hud=True, max_frames=6))
        assert shown == ages  # frames since the model ran; no line when every frame runs it


def test_the_hud_shows_the_throughput_the_user_gets(shipped, video, tmp_path, monkeypatch):
    import time

    from edgeseg.runtime import outputs, pipeline

    shown = []
    monkeypatch.setattr(pipeline, "draw_hud", lambda out, fps, *a, **kw: shown.append(fps))
    real_write = outputs.VideoOutput.write
    monkeypatch.setattr(outputs.VideoOutput, "write", lambda self, f, at=None: (time.sleep(0.05), real_write(self, f, at)))
    clip = write_video(tmp_path / "long.avi", frames=40)
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(open_source(str(clip)), seg, PipelineOptions(hud=True, output=str(tmp_path / "o.mp4")))
    # encoding (here 50 ms a frame) paces the loop once the output queue is full: the HUD may not leave it out
    assert report.frames == 40 and shown[-1] < 22 and report.fps < 22
    assert shown[-1] == pytest.approx(report.fps, rel=0.35)


def test_a_long_run_keeps_a_bounded_window_of_timings(shipped, monkeypatch):
    from edgeseg.runtime import pipeline
    from edgeseg.runtime.sources import Frame

    monkeypatch.setattr(pipeline, "STATS_WINDOW", 5)
    kept = {}
    real = pipeline.deque
    monkeypatch.setattr(pipeline, "deque", lambda maxlen: kept.setdefault(len(kept), real(maxlen=maxlen)))

    class Frames:
        fps = 30.0

        def __iter__(self):
            for i in range(40):
                yield Frame(np.full((48, 64, 3), 90, np.uint8), i, 0.0)

    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(Frames(), seg, PipelineOptions())
    assert report.frames == 40 and kept and all(d.maxlen and len(d) <= d.maxlen for d in kept.values())
    assert sum(d.maxlen == 5 for d in kept.values()) >= len(pipeline.ALL_STAGES)  # every stage's window
    assert report.stage_ms["inference"] > 0


def _numbered_frames(n: int, live: bool):
    from edgeseg.runtime.sources import Frame

    class Frames:  # frame i is grey level i: what was written says which frames, in which order
        fps = 30.0

        def __iter__(self):
            for i in range(n):
                yield Frame(np.full((48, 64, 3), i, np.uint8), i, 0.0)

    Frames.live = live
    return Frames()


def _slow_sinks(monkeypatch, seconds: float) -> list[int]:
    import time

    from edgeseg.runtime.sinks import Sinks

    written = []

    def write(self, out, at=None):
        time.sleep(seconds)  # an encoder slower than the processing
        written.append(int(out[0, 0, 0]))

    monkeypatch.setattr(Sinks, "write", write)
    return written


def test_a_file_run_writes_every_frame_in_order_however_slow_its_outputs(shipped, tmp_path, monkeypatch):
    written = _slow_sinks(monkeypatch, 0.01)
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(_numbered_frames(30, live=False), seg, PipelineOptions(
            effect=Effect.NONE, hud=False, output=str(tmp_path / "o.avi")))
    assert written == list(range(30)) and report.dropped == 0
    assert report.latency_ms["p50"] > 0 and report.mask_age == 0


def test_a_live_run_drops_stale_frames_rather_than_queue_them(shipped, tmp_path, monkeypatch):
    from edgeseg.runtime import sinks

    depths = []
    real_put = sinks.SinkThread.put

    def put(self, out, captured_at):
        depths.append(self._queue.qsize())
        return real_put(self, out, captured_at)

    monkeypatch.setattr(sinks.SinkThread, "put", put)
    written = _slow_sinks(monkeypatch, 0.03)
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(_numbered_frames(40, live=True), seg, PipelineOptions(
            effect=Effect.NONE, hud=False, output=str(tmp_path / "o.avi")))
    assert report.frames == 40 and report.dropped > 0 and len(written) + report.dropped == 40
    assert written == sorted(written) and written[-1] == 39  # the newest frames, in order, the last one kept
    assert max(depths) <= 2  # bounded: never more than the queue's depth waiting


def test_mask_every_n_frames_reports_the_masks_age(shipped):
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO, mask_every=3)) as seg:
        report = run_pipeline(_numbered_frames(30, live=False), seg, PipelineOptions(hud=False))
    assert report.mask_age == pytest.approx(1.0)  # ages 0, 1, 2 in turn


def test_an_output_that_fails_on_the_last_frame_is_not_a_silent_success(shipped, monkeypatch):
    # a failure the output thread met while writing the last frames was dropped unless it was an OSError
    from edgeseg.runtime.sinks import Sinks

    def write(self, out, at=None):
        raise ValueError("the device refused the frame")

    monkeypatch.setattr(Sinks, "write", write)
    monkeypatch.setattr(Sinks, "writes", property(lambda self: True))
    with Segmenter(SegmenterOptions(shipped("tflite", "int8"), RunningMode.VIDEO)) as seg:
        with pytest.raises(ValueError, match="refused the frame"):
            run_pipeline(_numbered_frames(1, live=False), seg, PipelineOptions(effect=Effect.NONE, hud=False))
