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


def _interrupted_run(data, out, monkeypatch):
    """A tiny run killed (KeyboardInterrupt) after its second epoch's backup was written."""
    keras = pytest.importorskip("keras")
    from edgeseg.trainer import train as train_mod
    from edgeseg.trainer.train import TrainConfig, train

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated kill")

    real = train_mod._callbacks
    monkeypatch.setattr(train_mod, "_callbacks", lambda *a: real(*a) + [Interrupt()])
    config = TrainConfig(model="conv_deconv", data=str(data), out=str(out), epochs=3, batch_size=8, img_size=32,
                         encoder_weights="none", val_fraction=0.2, early_stopping=0)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(train_mod, "_callbacks", real)
    return config


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # what a kill -9 in the middle of a write leaves


def test_a_damaged_backup_falls_back_to_the_previous_one(oxford_session_dir, tmp_path, monkeypatch, caplog):
    from edgeseg.trainer.train import train

    config = _interrupted_run(oxford_session_dir, tmp_path / "run", monkeypatch)
    backup = tmp_path / "run" / "backup"
    assert (backup / "current" / "latest.weights.h5").is_file() and (backup / "previous").is_dir()
    _truncate(backup / "current" / "latest.weights.h5")
    report = train(config, progress=False)  # the same command again
    assert report.history["epoch"] == [0, 1, 2]
    assert "is damaged" in caplog.text and "resumed from the previous backup" in caplog.text


def test_every_backup_damaged_is_a_clear_error(oxford_session_dir, tmp_path, monkeypatch):
    _interrupted_run(oxford_session_dir, tmp_path / "run", monkeypatch)
    backup = tmp_path / "run" / "backup"
    _truncate(backup / "current" / "latest.weights.h5")
    (backup / "previous" / "training_metadata.json").write_text("garbage")
    result = runner.invoke(app, ["train", "--data", str(oxford_session_dir), "--out", str(tmp_path / "run"),
                                 "--model", "conv_deconv", "--epochs", "3", "--batch-size", "8", "--img-size", "32",
                                 "--encoder-weights", "none", "--val-fraction", "0.2", "--early-stopping", "0"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "every training backup is damaged" in message and "JSONDecodeError" in message
    assert str(backup / "current") in message and str(backup / "previous") in message
    assert "--overwrite" in message and "Traceback" not in result.output
