"""The Segmenter on the shipped models: masks at frame size, temporal settings, the weighted softmax."""

import dataclasses
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from edgeseg.contract import ArtifactMetadata
from edgeseg.errors import SettingError
from edgeseg.runtime.backends.base import TensorSpec
from edgeseg.runtime.segmenter import Edges, RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import open_source

BACKENDS = [("tflite", "int8"), ("onnx", "int8")]


@pytest.mark.parametrize("fmt,precision", BACKENDS + [("tflite", "fp32"), ("onnx", "int8")])
def test_segmenter_gives_frame_sized_probabilities(shipped, fmt, precision):
    frame = np.random.default_rng(0).integers(0, 255, (97, 131, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(shipped(fmt, precision))) as seg:
        alpha = seg.segment(frame)
        assert seg.info.source == "metadata" and seg.info.foreground_classes == (0, 2)
    assert alpha.shape == (97, 131) and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_mask_belongs_to_its_frame_and_reuse_is_explicit(shipped, video):
    frames = [f.image for f in open_source(str(video))]
    with Segmenter(SegmenterOptions(shipped("tflite", "fp32"))) as still:
        expected = [still.segment(f) for f in frames]
    live = SegmenterOptions(shipped("tflite", "fp32"), RunningMode.VIDEO, smoothing=1.0)
    with Segmenter(live) as seg:
        for frame, want in zip(frames, expected):
            np.testing.assert_allclose(seg.segment(frame), want, atol=1e-6)  # never one frame behind
    for edges in Edges:
        reuse = SegmenterOptions(shipped("tflite", "fp32"), RunningMode.VIDEO, smoothing=1.0, mask_every=3,
                                 edges=edges)
        with Segmenter(reuse) as seg:
            masks, probs, inferences = [], [], []
            for frame in frames[:6]:
                masks.append(seg.segment(frame))
                probs.append(seg.low_res_mask.copy())
                inferences.append(seg.timings["inference"])
        assert [t is not None for t in inferences] == [True, False, False, True, False, False]
        np.testing.assert_array_equal(probs[1], probs[0])  # the model's probability is reused as it was...
        if edges is Edges.BILINEAR:
            np.testing.assert_array_equal(masks[1], masks[0])
        else:  # ...while guided edges follow the frame shown
            assert not np.array_equal(masks[1], masks[0]) or np.array_equal(frames[1], frames[0])
        with Segmenter(SegmenterOptions(shipped("tflite", "fp32"), edges=edges)) as still:
            np.testing.assert_allclose(masks[3], still.segment(frames[3]), atol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_frames_that_reuse_a_mask_reuse_its_guided_fit(shipped, video, monkeypatch, fused):
    # --mask-every N (for slow devices) refitted the guided coefficients of the same mask and guide every frame
    from edgeseg.runtime.guided import GuidedUpsampler

    fits = []
    real = GuidedUpsampler.fit
    monkeypatch.setattr(GuidedUpsampler, "fit", lambda self, *a, **kw: (fits.append(1), real(self, *a, **kw))[1])
    frames = [f.image for f in open_source(str(video))][:6]
    options = SegmenterOptions(shipped("tflite", "fp32"), RunningMode.VIDEO, smoothing=1.0, mask_every=3)
    with Segmenter(options) as seg:
        if fused:  # copied as they come: the field's planes are work arrays
            planes = [(field.a.copy(), field.b.copy()) for field in map(seg.field, frames)]
        else:
            masks = [seg.segment(f) for f in frames]
    assert len(fits) == 2  # frames 0 and 3 ran the model
    if fused:  # the reuse frames' field is the fit of frame 0's mask and guide
        for reused in planes[1:3]:
            np.testing.assert_array_equal(reused[0], planes[0][0])
            np.testing.assert_array_equal(reused[1], planes[0][1])
    else:  # rendered on each frame shown, as a fresh fit would be
        with Segmenter(dataclasses.replace(options, mask_every=1)) as fresh:
            np.testing.assert_allclose(masks[3], fresh.segment(frames[3]), atol=1e-6)
        assert not np.array_equal(masks[1], masks[0]) or np.array_equal(frames[1], frames[0])


def test_smoothing_is_an_exponential_moving_average(shipped, video):
    frames = [f.image for f in open_source(str(video))][:2]
    raw = {"softness": 0.5, "edges": Edges.BILINEAR}  # probabilities resized without a guide of their frame
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"), **raw)) as still:
        m0, m1 = (still.segment(f) for f in frames)
    video_options = SegmenterOptions(shipped("onnx", "fp32"), RunningMode.VIDEO, smoothing=0.5, **raw)
    with Segmenter(video_options) as seg:
        seg.segment(frames[0])
        smoothed = seg.segment(frames[1])
    # smoothing happens at model resolution, then resizing (linear) commutes with the average
    np.testing.assert_allclose(smoothed, 0.5 * m0 + 0.5 * m1, atol=1e-4)


def test_threshold_and_feather_shape_the_mask(shipped):
    frame = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"), softness=0.5)) as seg:  # the raw probability
        raw = seg.segment(frame)
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"))) as seg:  # the default ramp
        ramp = seg.segment(frame)
    np.testing.assert_allclose(ramp, np.clip((raw - 0.4) * 5.0, 0, 1), atol=1e-5)  # 0 below 0.4, 1 above 0.6
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"), threshold=0.3, softness=0.2)) as seg:
        np.testing.assert_allclose(seg.segment(frame), np.clip((raw - 0.1) * 2.5, 0, 1), atol=1e-5)
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"), threshold=0.5, feather=3)) as seg:
        out = np.empty((60, 80), np.float32)
        feathered = seg.segment(frame, out=out)
    assert feathered is out  # written into the caller's array
    np.testing.assert_allclose(feathered, cv2.GaussianBlur(ramp, (7, 7), 0), atol=1e-5)
    with Segmenter(SegmenterOptions(shipped("onnx", "fp32"))) as seg, pytest.raises(ValueError, match="out must"):
        seg.segment(frame, out=np.empty((80, 60), np.float32))


@pytest.mark.parametrize("edges", list(Edges))
@pytest.mark.parametrize("softness,feather", [(0.5, 0), (0.1, 0), (0.1, 3)])
def test_an_8_bit_mask_is_the_probability_in_0_to_255(shipped, video, softness, feather, edges):
    frame = cv2.resize(next(iter(open_source(str(video)))).image, (80, 60), interpolation=cv2.INTER_AREA)
    with Segmenter(SegmenterOptions(shipped("onnx"), softness=0.5, edges=edges)) as seg:
        centre = float(np.median(seg.segment(frame)))  # a ramp where this frame's probabilities are
    options = SegmenterOptions(shipped("onnx"), threshold=centre, softness=softness, feather=feather, edges=edges)
    with Segmenter(options) as seg:
        probability = seg.segment(frame)
        out = np.empty((60, 80), np.uint8)
        assert seg.segment(frame, out=out) is out
    assert np.ptp(probability) > 0.05  # a mask with something in it
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
    raw = {"softness": 0.5, "edges": Edges.BILINEAR}  # the probability: no ramp, no guided filter
    with Segmenter(SegmenterOptions("fixed.tflite", **raw)) as seg:
        alpha = seg.segment(np.zeros((8, 8, 3), np.uint8))
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(-1, keepdims=True))
    w = np.array(weights if weights else [1.0 if c in foreground else 0.0 for c in range(classes)])
    expected = (p * w).sum(-1) / p.sum(-1)
    assert np.isfinite(alpha).all()
    np.testing.assert_allclose(alpha, expected, atol=1e-6)


def test_by_default_the_mask_edge_follows_the_image_edge(monkeypatch):
    """A halo of 5 px in the model's mask: guided edges (the default) land on the image's edge, bilinear not."""
    frame = np.full((256, 256, 3), 200, np.uint8)
    frame[:, :171] = 40  # the pet's edge at column 171
    x = (np.arange(64) + 0.5) * 4
    logit = (176 - x) / 6.0  # p = 0.5 at column 176
    logits = np.zeros((64, 64, 2), np.float32)
    logits[..., 1] = logit
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: _LogitsBackend(logits, [1]))
    crossing = {}
    for edges in Edges:
        with Segmenter(SegmenterOptions("fixed.tflite", edges=edges)) as seg:
            crossing[edges] = int(np.argmax(seg.segment(frame).mean(0) < 0.5))
    assert abs(crossing[Edges.GUIDED] - 171) <= 1 and abs(crossing[Edges.BILINEAR] - 176) <= 1


@pytest.mark.parametrize("size,frame_size", [(128, (480, 640)), (128, (720, 1280)), (128, (1080, 1920)), (32, (480, 640)),
                                             (256, (480, 640)), (128, (320, 240))])  # larger on one side only
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


@pytest.mark.parametrize("input_range", [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)])
def test_a_float_input_is_the_rgb_frame_scaled_to_the_model_range(monkeypatch, input_range):
    backend = _LogitsBackend(np.zeros((16, 16, 2), np.float32), [1])
    backend.input = TensorSpec("image", (1, 16, 16, 3), np.dtype(np.float32))
    backend.metadata = dataclasses.replace(backend.metadata, input_dtype="float32", input_range=input_range)
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    frame = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with Segmenter(SegmenterOptions("fixed.tflite")) as seg:
        seg.segment(frame)
    lo, hi = input_range
    np.testing.assert_allclose(backend.batch[0], lo + frame[..., ::-1] * (hi - lo) / 255, rtol=1e-6, atol=1e-6)


def test_runtime_never_imports_tensorflow(shipped, tmp_path):
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
        from edgeseg.runtime.predict import predict_images
        from edgeseg.cli import app
        frame = np.zeros((48, 64, 3), np.uint8)
        for path in ({shipped("tflite", "int8")!r}, {shipped("onnx", "int8")!r}):
            with Segmenter(SegmenterOptions(path)) as seg:
                apply_effect("blur-bg", frame, seg.segment(frame))
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_foreground_override_is_checked(shipped):
    with pytest.raises(SettingError, match=r"foreground classes \[8, 12\] do not exist in .*: it has classes 0 to 2"):
        Segmenter(SegmenterOptions(shipped("tflite", "int8"), foreground=[8, 12]))


def _probability_backend(probabilities: np.ndarray) -> _LogitsBackend:
    """A model without metadata whose output holds probabilities (a sigmoid or a softmax in the graph)."""
    backend = _LogitsBackend(probabilities, [0])
    backend.metadata = None
    return backend


def test_class_probabilities_are_weighted_as_the_foreground_says(monkeypatch):
    # a softmax in the graph (--output-kind probability): the mask was channel 0, the background, whatever
    # --foreground said
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (8, 8, 4))
    probabilities = (np.exp(z) / np.exp(z).sum(-1, keepdims=True)).astype(np.float32)
    backend = _probability_backend(probabilities)
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    raw = {"softness": 0.5, "edges": Edges.BILINEAR}  # the probability: no ramp, no guided filter
    options = SegmenterOptions("fixed.onnx", output_kind="probability", foreground={1: 1.0, 3: 0.5}, **raw)
    with Segmenter(options) as seg:
        alpha = seg.segment(np.zeros((8, 8, 3), np.uint8))
    np.testing.assert_allclose(alpha, probabilities[..., 1] + 0.5 * probabilities[..., 3], atol=1e-6)


def test_a_one_channel_probability_has_no_other_foreground_class(monkeypatch):
    backend = _probability_backend(np.full((8, 8, 1), 0.8, np.float32))
    monkeypatch.setattr("edgeseg.runtime.segmenter.open_backend", lambda *a, **k: backend)
    with pytest.raises(SettingError, match=r"foreground classes \[1\] do not exist in .*: it has class 0, its one"):
        Segmenter(SegmenterOptions("fixed.tflite", foreground=[1]))  # the mask ignored it: channel 0 all the same
    with Segmenter(SegmenterOptions("fixed.tflite", foreground=[0], softness=0.5, edges=Edges.BILINEAR)) as seg:
        np.testing.assert_allclose(seg.segment(np.zeros((8, 8, 3), np.uint8)), 0.8, atol=1e-6)


def test_the_library_takes_models_as_the_command_line_does(tmp_path):
    # SegmenterOptions("edge") said "model edge not found"; a run folder, "is a folder; expected a .tflite"
    import shutil

    from edgeseg.runtime.packaged import packaged_model

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    shutil.copy(packaged_model("person"), run / "export" / "unet_mobilenetv2_person_int8.tflite")
    frame = np.zeros((48, 64, 3), np.uint8)
    for model, subject in (("edge", "pet"), (None, "pet"), (str(run), "person"), (run, "person")):
        with Segmenter(SegmenterOptions(model)) as seg:
            assert seg.info.subject == subject and seg.segment(frame).shape == (48, 64), model
    with pytest.raises(FileNotFoundError, match="model missing.tflite not found"):
        Segmenter(SegmenterOptions("missing.tflite"))


@pytest.mark.parametrize("frame", [np.zeros((0, 64, 3), np.uint8), np.zeros((48, 0, 3), np.uint8),
                                   np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32)])
def test_a_frame_that_is_no_image_is_refused_by_what_it_is(frame):
    # an empty frame (a crop of zero rows) reached OpenCV: "(-215:Assertion failed) !ssize.empty() in 'resize'"
    from edgeseg.runtime.pipeline import FrameProcessor

    with Segmenter(SegmenterOptions("edge")) as segmenter, FrameProcessor(segmenter, "grayscale-bg") as step:
        for run in (segmenter.segment, segmenter.field, step):
            with pytest.raises(ValueError, match=r"expected a BGR uint8 frame \(H, W, 3\) of at least 1 x 1 pixel"):
                run(frame)
