"""Models and metadata that contradict themselves are refused by name; broken outputs are errors, not masks."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.contract import METADATA_KEY, ArtifactMetadata, MetadataError
from edgeseg.runtime.model_info import UnsupportedModelError
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions
from tests.helpers import damaged_copy_of_the_default_model, one_line

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

runner = CliRunner()


def _model(path, out_channels=3, metadata: dict | None = None, scale: float = 1.0):
    """A 32x32 ONNX model: a 1x1 convolution to ``out_channels`` outputs, optionally carrying edgeseg metadata."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [out_channels, 3, 1, 1],
                                np.full(out_channels * 3, scale / 3, np.float32).tolist())
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "w"], ["c"]),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 32, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 32, out_channels])],
                              initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if metadata is not None:
        helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.save(model, str(path))
    return path


def _meta(**changes) -> dict:
    d = ArtifactMetadata("m", "onnx", "fp32", (32, 32), input_range=(0.0, 1.0)).to_dict()
    for key, value in changes.items():
        section, _, field = key.partition("__")
        (d[section] if field else d)[field or section] = value
    return d


@pytest.mark.parametrize("bad", [[float("nan"), 1.0], [0.0, float("inf")], [1.0, 0.0]])
def test_non_finite_or_reversed_input_ranges_are_refused(bad):
    with pytest.raises(MetadataError, match="input range"):
        ArtifactMetadata.from_dict(_meta(input__range=bad))


def test_metadata_of_another_input_size_is_refused(tmp_path):
    path = _model(tmp_path / "m.onnx", metadata=_meta(input__size=[256, 256]))
    with pytest.raises(UnsupportedModelError, match="metadata says the input is 256x256, the model's input is 32x32"):
        Segmenter(SegmenterOptions(path))


def test_metadata_naming_two_classes_on_a_three_channel_output_is_refused(tmp_path):
    two = _meta(output__classes=["pet", "background"], output__foreground_classes=[0])
    path = _model(tmp_path / "m.onnx", metadata=two)
    with pytest.raises(UnsupportedModelError, match="names 2 classes, the model's output has 3 channels"):
        Segmenter(SegmenterOptions(path))


def test_class_index_on_a_logits_output_is_a_clear_error(tmp_path):
    path = _model(tmp_path / "m.onnx")
    result = runner.invoke(app, ["predict", str(tmp_path / "x.png"), "--model", str(path), "--output-kind",
                                 "class-index", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "a class-index output has one channel, this one has 3" in one_line(result.output)
    assert "cv2.error" not in result.output


def test_non_finite_model_outputs_are_an_error_naming_the_model(tmp_path):
    path = _model(tmp_path / "nan.onnx", metadata=_meta(), scale=float("nan"))
    with Segmenter(SegmenterOptions(path)) as seg, pytest.raises(ValueError, match="nan.onnx produced non-finite"):
        seg.segment(np.full((40, 40, 3), 100, np.uint8))


def test_a_tflite_that_cannot_run_names_its_file(shipped, monkeypatch):
    from edgeseg.runtime.backends import BackendError, open_backend

    with open_backend(shipped("tflite")) as backend:
        def broken():
            raise RuntimeError("Tensor data is null. Run allocate_tensors() first")

        monkeypatch.setattr(backend._interp, "invoke", broken)
        with pytest.raises(BackendError, match=r"LiteRT cannot run .*\.tflite: Tensor data is null"):
            backend.run(np.zeros(backend.input.shape, backend.input.dtype))


def test_a_third_party_models_iou_at_256_px_stays_in_its_own_column(tmp_path):
    from edgeseg.benchmarks.worker import _accuracy
    from tests.helpers import write_oxford

    data = write_oxford(tmp_path / "pets", n_trainval=2, n_test=3, size=64)
    third_party = _model(tmp_path / "other.onnx", out_channels=2)  # no edgeseg metadata
    result = _accuracy(str(third_party), str(data), 3, 1, {1: 1.0})
    assert result["fg_iou"] is None and result["miou"] is None  # no class argmax at its own size was measured
    assert result["fg_iou_256"] is not None


def _onnx_model(path, inputs, outputs, nodes):
    """A tiny ONNX graph written with onnx.helper: no TensorFlow, built in milliseconds."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("case,message", [
    ("classifier", "not a per-pixel map"),
    ("dynamic", "no fixed height and width"),
    ("two_outputs", "has 2 outputs"),
])
def test_models_the_runtime_cannot_segment_with_are_refused(tmp_path, case, message):
    helper = pytest.importorskip("onnx.helper")

    from edgeseg.runtime.model_info import UnsupportedModelError
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    if case == "classifier":
        path = _onnx_model(tmp_path / "cls.onnx", [("x", [1, 32, 32, 3])], [("y", [1, 3])],
                           [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=0)])
    elif case == "dynamic":
        path = _onnx_model(tmp_path / "dyn.onnx", [("x", [1, "h", "w", 3])], [("y", [1, "h", "w", 3])],
                           [helper.make_node("Identity", ["x"], ["y"])])
    else:
        path = _onnx_model(tmp_path / "two.onnx", [("x", [1, 32, 32, 3])], [("y", [1, 32, 32, 3]), ("z", [1, 32, 32, 3])],
                           [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])])
    with pytest.raises(UnsupportedModelError, match=message):
        Segmenter(SegmenterOptions(path))
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--model", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and message in " ".join(result.output.split())


def test_empty_model_file_says_it_is_empty(tmp_path):
    from edgeseg.runtime.backends import BackendError, open_backend

    (tmp_path / "m.tflite").write_bytes(b"")
    with pytest.raises(BackendError, match="m.tflite is empty"):
        open_backend(tmp_path / "m.tflite")


def test_a_run_folder_is_a_model_and_other_folders_say_what_they_lack(tmp_path):
    import json
    import shutil

    from edgeseg.runtime.packaged import packaged_model, resolve_model

    run = tmp_path / "runs" / "pets"
    (run / "export").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    shutil.copy(packaged_model("edge"), run / "export" / "unet_mobilenetv2_edge_fp32.tflite")
    shutil.copy(packaged_model("edge"), run / "export" / "unet_mobilenetv2_edge_int8.tflite")
    (run / "export" / "export_report.json").write_text(json.dumps({"artifacts": [
        {"path": "unet_mobilenetv2_edge_int8.tflite", "passed": False},
        {"path": "unet_mobilenetv2_edge_fp32.tflite", "passed": True}]}))
    assert resolve_model(run).name == "unet_mobilenetv2_edge_fp32.tflite"  # the int8 one failed its check
    # the folder export reports (RUN/export) is the run: it was "a folder but not an edgeseg run"
    assert resolve_model(run / "export") == resolve_model(run)
    (run / "model.keras").write_bytes(b"")
    from edgeseg.export.exporter import resolve_source

    assert resolve_source(run / "export")[0] == run / "model.keras"  # exported again into the same export/
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--model", str(tmp_path / "runs")])
    assert result.exit_code == 2 and f"is a folder of runs, not a run: give one of them ({run})" in one_line(
        result.output)  # it said only "is a folder but not an edgeseg run"
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--model", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder but not an edgeseg run" in one_line(result.output)
    (run / "run.json").write_text("{garbage")
    from edgeseg.runs import RunFolder

    with pytest.raises(ValueError, match="run.json is not valid JSON"):
        RunFolder(run).training_data()


def test_evaluate_names_a_damaged_model_in_one_line(oxford_dir, tmp_path):
    damaged = damaged_copy_of_the_default_model(tmp_path)
    result = runner.invoke(app, ["evaluate", str(damaged), "--data", str(oxford_dir)])
    assert isinstance(result.exception, SystemExit), result.exception  # an error line, not a traceback
    assert result.exit_code == 1 and "cannot load" in result.output and "damaged.tflite" in result.output


def _fixed_batch_models(tmp_path, batch: int | None) -> list:
    """An ONNX and a TFLite model of a fixed batch of ``batch`` 8x8 images (None: any batch): each output pixel is
    its input pixel's mean over the channels, minus its image's mean (so a padded image cannot leak into another)."""
    helper = pytest.importorskip("onnx.helper")
    tmp_path.mkdir(exist_ok=True)
    onnx_path = _onnx_model(tmp_path / "b.onnx", [("x", [batch or "n", 8, 8, 3])], [("y", [batch or "n", 8, 8, 1])], [
        helper.make_node("ReduceMean", ["x"], ["p"], axes=[3], keepdims=1),
        helper.make_node("ReduceMean", ["p"], ["m"], axes=[1, 2], keepdims=1),
        helper.make_node("Sub", ["p", "m"], ["y"])])
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([batch, 8, 8, 3], tf.float32)])
    def centred(x):
        p = tf.reduce_mean(x, axis=3, keepdims=True)
        return p - tf.reduce_mean(p, axis=[1, 2], keepdims=True)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([centred.get_concrete_function()], centred)
    tflite_path = tmp_path / "b.tflite"
    tflite_path.write_bytes(converter.convert())
    return [onnx_path, tflite_path]


def test_a_model_of_a_fixed_batch_runs_any_number_of_images(tmp_path):
    # export --batch-size 4 --formats onnx ended in "RecursionError: maximum recursion depth exceeded" when the
    # check's images were not a multiple of 4 (and the runtime's one frame never ran); LiteRT refused the shape
    from edgeseg.runtime.backends import open_backend

    images = np.random.default_rng(0).random((6, 8, 8, 3), np.float32)
    p = images.mean(axis=3, keepdims=True)
    expected = p - p.mean(axis=(1, 2), keepdims=True)
    for path in [*_fixed_batch_models(tmp_path, 4), *_fixed_batch_models(tmp_path / "any", None)]:  # None: dynamic
        with open_backend(path) as backend:
            for n in (6, 4, 1):
                np.testing.assert_allclose(backend.run(images[:n]), expected[:n], atol=1e-5, err_msg=f"{path} {n}")


def test_bench_measures_a_model_of_any_batch_on_one_image(tmp_path):
    # a dynamic batch (export --batch-size 0) failed its bench row: "negative dimensions are not allowed"
    models = [str(p) for p in [*_fixed_batch_models(tmp_path, None), *_fixed_batch_models(tmp_path / "4", 4)]]
    result = runner.invoke(app, ["bench", *models, "--threads", "1", "--warmup", "0", "--runs", "2", "--json"])
    rows = json.loads(result.stdout)["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 4, [r.get("error") for r in rows]
    assert [r["batch"] for r in rows] == [1, 1, 4, 4]  # a batch of 4: 4 frames a run, in its FPS too
    assert all(r["fps"] == pytest.approx(1000 * r["batch"] / r["latency_ms"]["p50"], rel=0.01) for r in rows)
