"""webcam and predict through the command line, on the shipped models."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from tests.helpers import one_line, png_claiming

runner = CliRunner()


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
    # a typo exited 1 as a provider this build lacks does: both said "not in this onnxruntime build"
    typo = runner.invoke(app, [*base, *onnx, "--provider", "CudaExecutionProvider"])
    assert typo.exit_code == 2 and "unknown execution provider 'CudaExecutionProvider' (did you mean " \
        "'CUDAExecutionProvider'?); this onnxruntime build has" in one_line(typo.output), typo.output
    import onnxruntime as ort

    lacking = next(p for p in ort.get_all_providers() if p not in ort.get_available_providers())
    missing = runner.invoke(app, [*base, *onnx, "--provider", lacking])
    assert missing.exit_code == 1 and "not in this onnxruntime build; available" in missing.output
    tflite = runner.invoke(app, [*base, "--model", shipped("tflite", "int8"), "--provider", "CUDAExecutionProvider"])
    assert tflite.exit_code == 2 and "execution providers are for .onnx models" in tflite.output


def test_bad_serve_address_is_a_usage_error(shipped, video):
    result = CliRunner().invoke(app, ["webcam", "--model", shipped("onnx", "int8"), "--source", str(video),
                                      "--serve", "localhost:http"])  # a host alone is served on 8080
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


def test_predict_keeps_every_output_and_reports_what_failed(tmp_path):
    import json

    import cv2

    from tests.helpers import write_video

    for folder, value in (("a", 60), ("b", 120)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "x.jpg"), np.full((40, 60, 3), value, np.uint8))
    cv2.imwrite(str(tmp_path / "x.png"), np.full((40, 60, 3), 200, np.uint8))
    video = write_video(tmp_path / "clip.avi", frames=5)
    inputs = [str(tmp_path / "a" / "x.jpg"), str(tmp_path / "missing.jpg"), str(tmp_path / "b" / "x.jpg"),
              str(tmp_path / "x.png"), str(video)]
    result = runner.invoke(app, ["predict", *inputs, "--model", "edge", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1  # something failed: not a success, yet everything readable was processed
    report = json.loads(result.stdout)
    outputs = report["outputs"]
    assert len(outputs) == 3 and len(set(outputs.values())) == 3  # same stem, three distinct files
    assert all(Path(o).is_file() for o in outputs.values())
    means = {cv2.imread(outputs[str(tmp_path / f)]).mean() for f in ("a/x.jpg", "b/x.jpg", "x.png")}
    assert len(means) == 3  # not one file written over by the others
    assert "not found" in report["failed"][str(tmp_path / "missing.jpg")]
    assert "edgeseg webcam --source" in report["failed"][str(video)]
    assert not list((tmp_path / "out").glob("*clip*"))


def test_predict_names_inputs_that_are_neither_images_nor_folders(tmp_path):
    import json
    import os

    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "sub" / "inner").mkdir(parents=True)
    specs = [str(tmp_path / "loop1"), str(tmp_path / "sub" / "*")]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.jpg")  # reading it would wait for a writer forever
        specs.append(str(tmp_path / "pipe.jpg"))
    result = runner.invoke(app, ["predict", *specs, "--model", "edge", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 1  # it was a silent success with nothing written
    failed = json.loads(result.stdout)["failed"]
    assert failed[specs[0]] == f"{specs[0]} is not an image file or folder"
    assert failed[specs[1]] == f"{specs[1]} matches no image files"
    if len(specs) == 3:
        assert failed[specs[2]] == f"{specs[2]} is not an image file or folder"


def test_predict_with_nothing_readable_fails(tmp_path):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope.jpg"), "--model", "edge", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "1 of 1 inputs failed" in result.output


def test_a_folder_of_differently_sized_images_keeps_every_frame(tmp_path):
    import json

    import cv2

    (tmp_path / "imgs").mkdir()
    for i, size in enumerate([(120, 160), (90, 200), (240, 320), (120, 160), (50, 50), (100, 100), (120, 161)]):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), np.full((*size, 3), 30 * i, np.uint8))
    out = tmp_path / "o.mp4"
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", str(tmp_path / "imgs"), "--output", str(out),
                                 "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 7
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 7


@pytest.mark.parametrize("loop", [False, True])
def test_webcam_on_images_none_of_which_can_be_read_fails(tmp_path, loop):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"")
    (tmp_path / "imgs" / "b.png").write_bytes(b"not a png")
    args = ["webcam", "--model", "edge", "--source", str(tmp_path / "imgs"), "--output", str(tmp_path / "o.mp4"),
            "--no-window"] + (["--loop"] if loop else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 1  # it reported "0 frames; end of input" and succeeded
    assert "none of the 2 images could be read" in " ".join(result.output.split())
    assert not (tmp_path / "o.mp4").exists()


def test_unsupported_video_type_is_a_command_line_error(tmp_path):
    # exit 1 once the model had loaded and the source opened; a bad command line exits 2, before any work
    missing = str(tmp_path / "no-such-clip.avi")
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", missing, "--output",
                                 str(tmp_path / "o.txt"), "--no-window"])
    assert result.exit_code == 2 and "--output" in result.output, result.output
    assert "unsupported video type '.txt'; use .mp4, .avi, .mkv" in one_line(result.output)
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", missing, "--output",
                                 str(tmp_path / "recording"), "--no-window"])  # said "unsupported video type ''"
    assert result.exit_code == 2 and "has no file type" in one_line(result.output), result.output
    assert not list(tmp_path.iterdir())


def test_a_background_image_is_read_as_safely_and_quietly_as_any_input(tmp_path, capfd):
    from edgeseg.runtime.effects import parse_background

    bomb = png_claiming(tmp_path, 20000, 20000)
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--effect", "replace-bg",
                                 "--background", str(bomb), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "over the limit of 50,000,000 pixels" in " ".join(result.output.split())
    # --max-pixels raised the limit for the photos but not for the background (a 54 MP phone photo was refused),
    # and the error did not say how to raise it
    assert "raise it with --max-pixels" in one_line(result.output), result.output
    for command in (["predict", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "o")],
                    ["webcam", "--source", str(tmp_path / "none.jpg"), "--output", str(tmp_path / "o.mp4")]):
        result = runner.invoke(app, [*command, "--effect", "replace-bg", "--background", str(bomb),
                                     "--max-pixels", "500000000"])
        assert "--background" in result.output and "over the limit" not in result.output, result.output
    with pytest.raises(ValueError, match="cannot read .*missing.png.*or a #RRGGBB colour"):
        parse_background(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="'#zz' is not a #RRGGBB colour"):
        parse_background("#zz")
    assert "imread" not in capfd.readouterr().err  # no OpenCV warning beside our error


def test_a_foreground_class_the_model_lacks_is_a_command_line_error(tmp_path):
    # found once the model had loaded: it exited 1 without naming the option
    image = tmp_path / "pet.jpg"
    cv2.imwrite(str(image), np.full((50, 70, 3), 100, np.uint8))
    result = runner.invoke(app, ["predict", str(image), "--model", "edge", "--foreground", "7",
                                 "--out", str(tmp_path / "out.png")])
    assert result.exit_code == 2, result.output
    assert "Invalid value for --foreground: foreground classes [7] do not exist in" in one_line(result.output)
    assert "it has classes 0 to 2" in one_line(result.output)
    assert not (tmp_path / "out.png").exists()
