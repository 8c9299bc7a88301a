"""Fault injection: each test reproduces a broken promise from the fault report (issue 13) and keeps it fixed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgeseg.cli import app

runner = CliRunner()


def test_offline_imagenet_weights_fail_in_one_line_and_leave_no_run_folder(oxford_dir, tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from keras.src.applications import mobilenet_v2

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/x.h5: None -- "
                        "[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mobilenet_v2.file_utils, "get_file", offline)
    out = tmp_path / "runs" / "pets"
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(out), "--img-size", "32",
                                 "--batch-size", "4", "--epochs", "1"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "could not download the ImageNet weights" in message and "--encoder-weights none" in message
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if "error:" in line or "Error" in line]
    assert len(error_lines) == 1, result.output
    assert not out.exists()


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
    from onnx import helper

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
