"""webcam and predict through the command line, on the shipped models."""

import json

import cv2
import numpy as np
from typer.testing import CliRunner

from edgeseg.cli import app


def test_predict_cli_writes_images(shipped, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"pet{i}.jpg"), np.full((50, 70, 3), 100 + i, np.uint8))
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(images), "--model", shipped("tflite", "int8"), "--effect", "remove-bg",
                                 "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["outputs"]
    assert sorted(outputs) == [str(images / "pet0.jpg"), str(images / "pet1.jpg")]
    assert cv2.imread(outputs[str(images / "pet0.jpg")], cv2.IMREAD_UNCHANGED).shape == (50, 70, 4)  # transparency kept


def test_webcam_cli_on_a_video_file(shipped, video, tmp_path):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, ["webcam", "--model", shipped("onnx", "int8"), "--source", str(video),
                                      "--effect", "blur-bg", "--output", str(out), "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frames"] == 12 and report["output"] == str(out) and out.is_file()


def test_missing_camera_says_what_was_tried_and_what_to_do(shipped):
    result = CliRunner().invoke(app, ["webcam", "--model", shipped("onnx", "int8"), "--source", "7"])
    assert result.exit_code == 1
    assert "no camera could be opened at --source 7" in result.output
    assert "edgeseg predict" in result.output and "--source VIDEO" in result.output
    assert "Traceback" not in result.output


def test_execution_providers_are_asked_for_by_name(shipped, tmp_path):
    image = tmp_path / "pet.jpg"
    cv2.imwrite(str(image), np.full((40, 60, 3), 90, np.uint8))
    base = ["predict", str(image), "--out", str(tmp_path / "out"), "--json"]
    onnx = ["--model", shipped("onnx", "fp32")]
    runner = CliRunner()
    ok = runner.invoke(app, [*base, *onnx, "--provider", "CPUExecutionProvider"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["delegate"]["providers"] == ["CPUExecutionProvider"]
    missing = runner.invoke(app, [*base, *onnx, "--provider", "NoSuchExecutionProvider"])
    assert missing.exit_code == 1 and "not in this onnxruntime build; available" in missing.output
    tflite = runner.invoke(app, [*base, "--model", shipped("tflite", "int8"), "--provider", "CUDAExecutionProvider"])
    assert tflite.exit_code == 2 and "execution providers are for .onnx models" in tflite.output


def test_bad_serve_address_is_a_usage_error(shipped, video):
    result = CliRunner().invoke(app, ["webcam", "--model", shipped("onnx", "int8"), "--source", str(video),
                                      "--serve", "localhost"])
    assert result.exit_code == 2 and "expected HOST:PORT" in result.output


def test_webcam_says_which_codec_it_wrote(shipped, video, tmp_path):
    result = CliRunner().invoke(app, ["webcam", "--model", shipped("tflite"), "--source", str(video), "--output",
                                      str(tmp_path / "o.mp4"), "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["codec"] in ("H.264", "MPEG-4 Part 2")


def test_a_background_the_effect_ignores_is_refused(shipped, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "x.jpg"), "--model", shipped("tflite"),
                                      "--effect", "blur-bg", "--background", "#ff0000"])
    assert result.exit_code == 2 and "does not use a background" in result.output
