"""Runtime: segmenter, pipeline end to end on both backends, no TensorFlow, sources and CLI."""

import json
import subprocess
import sys
import textwrap
import time
import tracemalloc

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.contract import ArtifactMetadata
from edgeseg.runtime.backends.base import TensorSpec
from edgeseg.runtime.effects import Effect
from edgeseg.runtime.pipeline import FrameProcessor, PipelineOptions, run_pipeline
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import LiveSource, SourceError, open_source
from tests.helpers import write_video

BACKENDS = [("tflite", "int8"), ("onnx", "fp32")]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "pets.avi", frames=12)


@pytest.mark.parametrize("fmt,precision", BACKENDS + [("tflite", "fp32"), ("onnx", "int8")])
def test_segmenter_gives_frame_sized_probabilities(artifact, fmt, precision):
    frame = np.random.default_rng(0).integers(0, 255, (97, 131, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(artifact(fmt, precision))) as seg:
        alpha = seg.segment(frame)
        assert seg.info.source == "metadata" and seg.info.foreground_classes == (0, 2)
    assert alpha.shape == (97, 131) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_mask_belongs_to_its_frame_and_reuse_is_explicit(artifact, video):
    frames = [f.image for f in open_source(str(video))]
    with Segmenter(SegmenterOptions(artifact("tflite", "fp32"))) as still:
        expected = [still.segment(f) for f in frames]
    live = SegmenterOptions(artifact("tflite", "fp32"), RunningMode.VIDEO, smoothing=1.0)
    with Segmenter(live) as seg:
        for frame, want in zip(frames, expected):
            np.testing.assert_allclose(seg.segment(frame), want, atol=1e-6)  # never one frame behind
    reuse = SegmenterOptions(artifact("tflite", "fp32"), RunningMode.VIDEO, smoothing=1.0, mask_every=3)
    with Segmenter(reuse) as seg:
        masks, inferences = [], []
        for frame in frames[:6]:
            masks.append(seg.segment(frame))
            inferences.append(seg.timings["inference"])
    assert [t > 0 for t in inferences] == [True, False, False, True, False, False]
    np.testing.assert_array_equal(masks[1], masks[0])
    np.testing.assert_allclose(masks[3], expected[3], atol=1e-6)


def test_smoothing_is_an_exponential_moving_average(artifact, video):
    frames = [f.image for f in open_source(str(video))][:2]
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"), softness=0.5)) as still:  # raw probabilities
        m0, m1 = (still.segment(f) for f in frames)
    video_options = SegmenterOptions(artifact("onnx", "fp32"), RunningMode.VIDEO, smoothing=0.5, softness=0.5)
    with Segmenter(video_options) as seg:
        seg.segment(frames[0])
        smoothed = seg.segment(frames[1])
    # smoothing happens at model resolution, then resizing (linear) commutes with the average
    np.testing.assert_allclose(smoothed, 0.5 * m0 + 0.5 * m1, atol=1e-4)


def test_threshold_and_feather_shape_the_mask(artifact):
    frame = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"), softness=0.5)) as seg:  # the raw probability
        raw = seg.segment(frame)
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"))) as seg:  # the default ramp
        ramp = seg.segment(frame)
    np.testing.assert_allclose(ramp, np.clip((raw - 0.4) * 5.0, 0, 1), atol=1e-5)  # 0 below 0.4, 1 above 0.6
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"), threshold=0.3, softness=0.2)) as seg:
        np.testing.assert_allclose(seg.segment(frame), np.clip((raw - 0.1) * 2.5, 0, 1), atol=1e-5)
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"), threshold=0.5, feather=3)) as seg:
        out = np.empty((60, 80), np.float32)
        feathered = seg.segment(frame, out=out)
    assert feathered is out  # written into the caller's array
    np.testing.assert_allclose(feathered, cv2.GaussianBlur(ramp, (7, 7), 0), atol=1e-5)
    with Segmenter(SegmenterOptions(artifact("onnx", "fp32"))) as seg, pytest.raises(ValueError, match="out must"):
        seg.segment(frame, out=np.empty((80, 60), np.float32))


@pytest.mark.parametrize("softness,feather", [(0.5, 0), (0.1, 0), (0.1, 3)])
def test_an_8_bit_mask_is_the_probability_in_0_to_255(artifact, softness, feather):
    frame = np.random.default_rng(2).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    options = SegmenterOptions(artifact("onnx", "fp32"), softness=softness, feather=feather)
    with Segmenter(options) as seg:
        probability = seg.segment(frame)
        out = np.empty((60, 80), np.uint8)
        assert seg.segment(frame, out=out) is out
    assert np.ptp(probability) > 0.1  # a mask with something in it
    # rounded at model resolution, resized in 8-bit fixed point and rounded again: within 1.5 levels of the float
    # mask; a threshold's ramp (slope 5) multiplies that
    assert np.abs(out - probability * 255).max() <= (1.5 if softness == 0.5 else 5 * 1.5 + 0.5)


class _LogitsBackend:
    """A stand-in backend that returns fixed logits (metadata: 0-255 input, the given foreground classes and,
    optionally, mask weights)."""

    name, details, num_outputs = "fixed", {}, 1

    def __init__(self, logits: np.ndarray, foreground: list[int], mask_weights: tuple[float, ...] | None = None):
        self.logits = logits
        self.input = TensorSpec("image", (1, *logits.shape[:2], 3), np.dtype(np.uint8))
        self.output = TensorSpec("logits", (1, *logits.shape), np.dtype(np.float32))
        classes = tuple(f"c{i}" for i in range(logits.shape[-1]))
        self.metadata = ArtifactMetadata("fixed", "tflite", "int8", logits.shape[:2], "uint8", classes=classes,
                                         foreground_classes=tuple(foreground), mask_weights=mask_weights)

    def run(self, batch):
        self.batch = batch.copy()
        return self.logits[None].copy()

    def close(self):
        pass


@pytest.mark.parametrize("classes,foreground,weights", [
    (3, [0, 2], None), (2, [1], None), (4, [1, 2], None),  # one or two background classes
    (3, [0, 2], (1.0, 0.0, 0.5)), (4, [1, 2], (0.0, 0.25, 1.0, 0.0)),  # mask weights
])
def test_alpha_is_the_weighted_softmax_sum_even_for_extreme_logits(monkeypatch, classes, foreground, weights):
    logits = np.random.default_rng(classes).normal(0, 4, (8, 8, classes)).astype(np.float32)
    logits[0, :, 0], logits[1, :, -1], logits[2, :, :] = 200.0, -200.0, 0.0  # overflow territory, and a tie
    logits[3, :, :2] = 300.0  # two classes far above the rest
    backend = _LogitsBackend(logits, foreground, weights)
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    with Segmenter(SegmenterOptions("fixed.tflite", softness=0.5)) as seg:  # the probability, no ramp
        alpha = seg.segment(np.zeros((8, 8, 3), np.uint8))
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    w = np.array(weights if weights else [1.0 if c in foreground else 0.0 for c in range(classes)])
    expected = (p * w).sum(-1) / p.sum(-1)
    assert np.isfinite(alpha).all()
    np.testing.assert_allclose(alpha, expected, atol=1e-6)


@pytest.mark.parametrize("size,frame_size", [(128, (480, 640)), (128, (720, 1280)), (128, (1080, 1920)), (32, (480, 640))])
def test_model_input_is_the_frame_area_resized_in_rgb(monkeypatch, size, frame_size):
    backend = _LogitsBackend(np.zeros((size, size, 2), np.float32), [1])
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    noise = np.random.default_rng(3).integers(0, 256, (*frame_size, 3), dtype=np.uint8)
    frames = [cv2.GaussianBlur(noise, (9, 9), 0), cv2.GaussianBlur(noise[::-1], (9, 9), 0)]  # detail at 2-4 pixels
    with Segmenter(SegmenterOptions("fixed.tflite")) as seg:
        for frame in frames:  # the second frame's input must replace the first one's
            seg.segment(frame)
            area = cv2.cvtColor(cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
            # bilinear straight to 2x the input skips pixels of large frames: 2.3 and 3.2 levels off here
            assert np.abs(backend.batch[0].astype(np.float32) - area).mean() < 1.5


class _AllBackground:
    """A stand-in segmenter whose mask says 'background' everywhere."""

    timings = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    def segment(self, image, out):
        out[:] = 0.0
        return out


def test_background_image_is_fitted_to_each_frame_size():
    background = np.random.default_rng(3).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    process = FrameProcessor(_AllBackground(), Effect.REPLACE_BG, background)
    for h, w in [(48, 64), (60, 80), (48, 64)]:  # from the original each time, never a resize of a resize
        out, _ = process(np.zeros((h, w, 3), np.uint8))
        np.testing.assert_array_equal(out, cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA))
    keyed, _ = FrameProcessor(_AllBackground(), Effect.REMOVE_BG)(np.zeros((48, 64, 3), np.uint8))
    assert keyed.shape == (48, 64, 3) and (keyed == (0, 177, 64)).all()  # video outputs get a key colour


def test_live_step_allocates_no_frame_sized_arrays(artifact):
    """After the first frame the live loop reuses every frame-sized array (page faults cost more than the blend)."""
    frame = np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(artifact("tflite", "int8"), RunningMode.LIVE_STREAM)) as seg:
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
def test_video_end_to_end(artifact, video, tmp_path, effect, fmt, precision):
    out = tmp_path / "out.mp4"
    options = SegmenterOptions(artifact(fmt, precision), RunningMode.VIDEO)
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


def test_runtime_never_imports_tensorflow(artifact, tmp_path):
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions
        from edgeseg.runtime.effects import apply_effect
        from edgeseg.runtime.pipeline import predict_images
        from edgeseg.cli import app
        frame = np.zeros((48, 64, 3), np.uint8)
        for path in ({artifact("tflite", "int8")!r}, {artifact("onnx", "int8")!r}):
            with Segmenter(SegmenterOptions(path)) as seg:
                apply_effect("blur-bg", frame, seg.segment(frame))
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_predict_cli_writes_images(artifact, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"pet{i}.jpg"), np.full((50, 70, 3), 100 + i, np.uint8))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(images), "--model", artifact("tflite", "int8"), "--effect", "remove-bg",
                                 "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["outputs"]
    assert sorted(outputs) == [str(images / "pet0.jpg"), str(images / "pet1.jpg")]
    assert cv2.imread(outputs[str(images / "pet0.jpg")], cv2.IMREAD_UNCHANGED).shape == (50, 70, 4)  # transparency kept


def test_webcam_cli_on_a_video_file(artifact, video, tmp_path):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["webcam", "--model", artifact("onnx", "int8"), "--source", str(video),
                                      "--effect", "blur-bg", "--output", str(out), "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frames"] == 12 and report["output"] == str(out) and out.is_file()


def test_missing_camera_says_what_was_tried_and_what_to_do(artifact):
    result = CliRunner().invoke(app, ["webcam", "--model", artifact("onnx", "int8"), "--source", "7"])
    assert result.exit_code == 1
    assert "no camera could be opened (tried --source 7" in result.output
    assert "edgeseg predict" in result.output and "--source VIDEO" in result.output
    assert "Traceback" not in result.output


def test_execution_providers_are_asked_for_by_name(artifact, tmp_path):
    image = tmp_path / "pet.jpg"
    cv2.imwrite(str(image), np.full((40, 60, 3), 90, np.uint8))
    base = ["predict", str(image), "--out", str(tmp_path / "out"), "--json"]
    onnx = ["--model", artifact("onnx", "fp32")]
    runner = CliRunner()
    ok = runner.invoke(app, [*base, *onnx, "--provider", "CPUExecutionProvider"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["delegate"]["providers"] == ["CPUExecutionProvider"]
    missing = runner.invoke(app, [*base, *onnx, "--provider", "NoSuchExecutionProvider"])
    assert missing.exit_code == 1 and "not in this onnxruntime build; available" in missing.output
    tflite = runner.invoke(app, [*base, "--model", artifact("tflite", "int8"), "--provider", "CUDAExecutionProvider"])
    assert tflite.exit_code == 2 and "execution providers are for .onnx models" in tflite.output


def test_foreground_override_is_checked(artifact):
    with pytest.raises(ValueError, match=r"foreground classes \[8, 12\] do not exist in a model with 3 classes"):
        Segmenter(SegmenterOptions(artifact("tflite", "int8"), foreground=[8, 12]))


def test_bad_serve_address_is_a_usage_error(artifact, video):
    result = CliRunner().invoke(app, ["webcam", "--model", artifact("onnx", "int8"), "--source", str(video),
                                      "--serve", "localhost"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output


def test_bad_sources_and_models(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "nothing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "model.txt").write_text("x")
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(tmp_path / "model.txt")])
    assert result.exit_code == 1 and "unknown model type '.txt'" in result.output


def test_lost_live_source_is_retried_then_reported(video, tmp_path):
    copy = tmp_path / "cam.avi"
    copy.write_bytes(video.read_bytes())
    source = LiveSource(str(copy), reconnect_s=1.0)
    copy.unlink()  # the "camera" goes away: reopening fails
    frames = 0
    with pytest.raises(SourceError, match="could not be reopened within 1 s"):
        for _ in source:
            frames += 1
    source.close()
    assert frames >= 1


def test_ctrl_c_finalises_a_playable_video(artifact, video, tmp_path):
    from edgeseg.runtime.sources import Frame, Source

    class InterruptedSource(Source):  # a user pressing Ctrl-C after five frames
        def __iter__(self):
            for frame in open_source(str(video)):
                if frame.index == 5:
                    raise KeyboardInterrupt
                yield Frame(frame.image, frame.index, 0.0)

    out = tmp_path / "out.mp4"
    with Segmenter(SegmenterOptions(artifact("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(InterruptedSource(), seg, PipelineOptions(output=str(out)))
    assert report.ended == "stopped by user" and report.frames == 5 and report.output == str(out)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and cap.read()[0]


def test_pipeline_serves_its_frames(artifact, video, monkeypatch):
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
    with Segmenter(SegmenterOptions(artifact("tflite", "int8"), RunningMode.VIDEO)) as seg:
        report = run_pipeline(Watched(), seg, PipelineOptions(serve="127.0.0.1:0", token="t0k"),
                              announce=announced.append)
    assert report.frames == 12 and seen["type"] == "image/jpeg"
    # the URL with its token is shown once, to whoever started the server; the report keeps it redacted
    assert announced == urls and "token=t0k" in announced[0]
    assert report.url.startswith("http://127.0.0.1:") and "t0k" not in report.url


def test_live_source_hands_over_the_newest_frame(monkeypatch):
    from edgeseg.runtime import sources

    class Camera:  # a camera delivering a numbered frame every 2 ms
        n = 0

        def isOpened(self):
            return True

        def set(self, *args):
            return True

        def get(self, prop):
            return 500.0

        def read(self):
            time.sleep(0.002)
            self.n += 1
            return True, np.full((4, 4, 3), (self.n // 256, self.n % 256, 0), np.uint8)

        def release(self):
            pass

    camera = Camera()
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda target: camera)
    source = LiveSource("0")
    got = []
    for frame in source:
        got.append(256 * int(frame.image[0, 0, 0]) + int(frame.image[0, 0, 1]))
        assert camera.n - got[-1] <= 3  # the newest frame at hand-over, not an old one from a queue
        if len(got) == 5:
            break
        time.sleep(0.05)  # a slow consumer: about 25 frames arrive meanwhile
    source.close()
    assert all(b - a > 3 for a, b in zip(got, got[1:])), got  # the backlog was dropped


def test_window_keys_cycle_effects_toggle_the_hud_and_quit(artifact, video, monkeypatch):
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
    with open_source(str(video)) as source, Segmenter(SegmenterOptions(artifact("tflite", "int8"))) as seg:
        report = run_pipeline(source, seg, PipelineOptions(window=True))
    assert report.ended == "stopped by user" and report.frames == 7
    hud_white = [int((s[:140, :160] == 255).all(axis=2).sum()) for s in shown]
    assert hud_white[0] > 20 and hud_white[5] > 20 and hud_white[6] == 0  # the HUD, then not
    np.testing.assert_array_equal(shown[6], frames[6])  # effect 'none' without HUD: the frame itself
    assert not np.array_equal(shown[0][60:, :], frames[0][60:, :])  # grayscale-bg changed the frame
