"""Fault injection: each test reproduces a broken promise from the fault report (issue 13) and keeps it fixed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from tests.helpers import http_get, interrupted_training, one_line

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


def _interrupted_run(data, out, monkeypatch):
    """A tiny run killed after its second epoch's backup was written."""
    pytest.importorskip("keras")
    from edgeseg.trainer.train import TrainConfig

    config = TrainConfig(model="conv_deconv", data=str(data), out=str(out), epochs=3, batch_size=8, img_size=32,
                         encoder_weights="none", val_fraction=0.2, early_stopping=0)
    interrupted_training(config, monkeypatch)
    return config


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # what a kill -9 in the middle of a write leaves


@pytest.mark.slow  # trains a model
def test_a_damaged_backup_falls_back_to_the_previous_one(oxford_session_dir, tmp_path, monkeypatch, caplog):
    from edgeseg.trainer.train import train

    config = _interrupted_run(oxford_session_dir, tmp_path / "run", monkeypatch)
    backup = tmp_path / "run" / "backup"
    assert (backup / "current" / "latest.weights.h5").is_file() and (backup / "previous").is_dir()
    _truncate(backup / "current" / "latest.weights.h5")
    report = train(config, progress=False)  # the same command again
    assert report.history["epoch"] == [0, 1, 2]
    assert "is damaged" in caplog.text and "resumed from the previous backup" in caplog.text


@pytest.mark.slow  # trains a model
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


# --- 2. Data that must not be lost -------------------------------------------------------------------------


def test_a_stop_signal_during_a_frame_write_still_counts_that_frame(tmp_path):
    """The race behind "43 frames written but the file holds 44": SIGTERM right after the encoder took a frame,
    in a process with other threads (capture, stream server, inference pools), as `webcam` is."""
    import os
    import signal
    import threading
    import time

    from edgeseg.runtime.outputs import VideoOutput

    class Stop(Exception):
        pass

    def stop(*_):
        raise Stop

    output = VideoOutput(tmp_path / "rec.mp4", fps=10)
    frame = np.zeros((48, 64, 3), np.uint8)
    output.write(frame)
    encoder = output.writer

    class SignalledWriter:  # the signal lands while the encoder is busy with the frame
        def write(self, f):
            encoder.write(f)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # whichever thread the kernel picked has flagged it by now

        def release(self):
            encoder.release()

    previous = signal.signal(signal.SIGTERM, stop)
    done = threading.Event()
    other = threading.Thread(target=done.wait)  # the kernel may hand a process-wide signal to this thread
    other.start()
    try:
        output.writer = SignalledWriter()
        with pytest.raises(Stop):
            output.write(frame)
    finally:
        signal.signal(signal.SIGTERM, previous)
        done.set()
        other.join()
    assert output.frames == 2
    output.close()  # checks the count against the file
    assert (tmp_path / "rec.mp4").is_file()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_finalise_the_recording(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    import cv2

    from tests.helpers import write_video

    video = write_video(tmp_path / "long.avi", frames=3000, size=(160, 120))
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "webcam", "--model", "edge", "--source", str(video),
                             "--output", str(out), "--no-window"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".rec.*.partial.mp4")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # some frames into the recording
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), stderr[-2000:]  # as every command stopped by it
    assert f"stopped by signal ({sig})" in " ".join(stdout.split())
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert 0 < frames < 3000  # playable, holding what was processed before the signal
    assert not list(tmp_path.glob(".rec.*"))  # no hidden partial file left


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the worker through /proc (Linux)")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGKILL"])
def test_a_stopped_bench_takes_its_worker_with_it(tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "results.json"
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "bench", "edge", "--threads", "1", "--runs", "10000000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def workers() -> list[int]:  # the timing processes this bench started
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and b"edgeseg.benchmarks.worker" in (entry / "cmdline").read_bytes() \
                        and f"PPid:\t{proc.pid}\n" in (entry / "status").read_text():
                    found.append(int(entry.name))
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 60
    while not (started := workers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started, "the worker never started"
    proc.send_signal(getattr(signal, sig))
    _, stderr = proc.communicate(timeout=60)
    try:
        if sig == "SIGKILL":  # no clean-up runs in the bench: the worker notices its parent is gone
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 128 + getattr(signal, sig) and f"stopped by {sig}" in stderr, stderr[-2000:]
        for pid in started:  # a worker left behind would time 10 million runs on a core nobody is watching
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes() \
                    and "State:\tZ" not in Path(f"/proc/{pid}/status").read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert time.monotonic() < deadline, f"worker {pid} outlived the bench"
        assert not out.exists()
    finally:
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


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


def test_unsupported_video_type_is_named(tmp_path):
    from tests.helpers import write_video

    video = write_video(tmp_path / "v.avi", frames=3)
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", str(video), "--output",
                                 str(tmp_path / "o.txt"), "--no-window"])
    assert result.exit_code == 1 and "unsupported video type '.txt'" in result.output


# --- 4. Bad input: a clear error, never garbage or a hang ------------------------------------------------------


def _png_claiming(tmp_path, width, height):
    """A small PNG whose header claims width x height: what a decompression bomb looks like to a reader."""
    import struct

    import cv2

    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    from edgeseg.runtime.image_io import ImageError, read_image

    bomb = _png_claiming(tmp_path, 20000, 20000)
    with pytest.raises(ImageError, match=r"20000x20000 \(400,000,000 pixels\), over the limit of 50,000,000 pixels"):
        read_image(bomb)
    result = runner.invoke(app, ["predict", str(bomb), "--model", "edge", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "over the limit of 50,000,000 pixels; raise it with --max-pixels" in one_line(result.output)


def test_every_command_that_reads_photos_can_raise_the_pixel_limit_it_names(tmp_path, caplog):
    import json
    import logging

    import cv2

    from edgeseg.data import load_folder
    from tests.helpers import write_oxford

    data = write_oxford(tmp_path / "pets", n_trainval=4, n_test=2)  # train, evaluate, export: no such option
    _png_claiming(tmp_path, 20000, 20000).replace(data / "images" / "Pet_0.jpg")
    with caplog.at_level(logging.WARNING, logger="edgeseg"):
        load_folder(data, "train", 32, val_fraction=0.0, progress=False)
    assert "over the limit of 50,000,000 pixels" in caplog.text and "--max-pixels" not in caplog.text
    photo = tmp_path / "photos" / "pet.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), np.full((40, 50, 3), 200, np.uint8))  # 2000 pixels
    limit = ["--max-pixels", "1000"]
    webcam = runner.invoke(app, ["webcam", "--source", str(photo), "--output", str(tmp_path / "o.mp4"), *limit])
    assert webcam.exit_code == 1 and "over the limit of 1,000 pixels; raise it with --max-pixels" in one_line(webcam.output)
    label = runner.invoke(app, ["label", str(photo.parent), "--out", str(tmp_path / "set"), *limit, "--json"])
    assert "over the limit of 1,000 pixels" in json.loads(label.stdout)["rejected"]["pet"]


def _tiff_claiming(tmp_path, width, height):
    """A small TIFF (either byte order) whose first directory claims width x height."""
    import struct

    import cv2

    data = bytearray(cv2.imencode(".tif", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    offset = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[offset:offset + 2])[0]):
        entry = offset + 2 + 12 * i
        tag = struct.unpack("<H", data[entry:entry + 2])[0]
        if tag in (256, 257):  # ImageWidth, ImageLength: a LONG now, as large images store them
            data[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, width if tag == 256 else height)
    path = tmp_path / "bomb.tif"
    path.write_bytes(bytes(data))
    return path


def test_tiff_bombs_are_refused_before_decoding(tmp_path):
    import struct

    from edgeseg.runtime.image_io import ImageError, header_size, read_image

    with pytest.raises(ImageError, match=r"30000x20000 \(600,000,000 pixels\), over the limit of 50,000,000 pixels"):
        read_image(_tiff_claiming(tmp_path, 30000, 20000))
    for order, f in ((b"II", "<"), (b"MM", ">")):  # width as a SHORT (left-justified), height as a LONG
        entries = struct.pack(f + "HHIHH", 256, 3, 1, 900, 0) + struct.pack(f + "HHII", 257, 4, 1, 70000)
        assert header_size(order + struct.pack(f + "HIH", 42, 8, 2) + entries + bytes(4)) == (900, 70000)


def test_truncated_jpeg_is_named_as_such(tmp_path):
    import cv2

    from edgeseg.runtime.image_io import ImageError, read_image

    data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg is a truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_empty_and_corrupt_images_are_named_in_one_line_each(tmp_path, capfd):
    import cv2

    from edgeseg.runtime.image_io import ImageError, read_image

    (tmp_path / "empty.jpg").write_bytes(b"")  # a failed download or a full disk leaves these behind
    with pytest.raises(ImageError, match="empty.jpg is empty"):
        read_image(tmp_path / "empty.jpg")
    png = bytearray(cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes())
    png[60] ^= 0xFF  # inside the compressed pixels: libpng fails its checksum while decoding
    (tmp_path / "bad.png").write_bytes(bytes(png))
    tif = cv2.imencode(".tif", np.zeros((50, 50, 3), np.uint8))[1].tobytes()
    (tmp_path / "cut.tif").write_bytes(tif[:100])
    capfd.readouterr()
    inputs = [str(tmp_path / name) for name in ("empty.jpg", "bad.png", "cut.tif")]
    result = runner.invoke(app, ["predict", *inputs, "--model", "edge", "--out", str(tmp_path / "o")])
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "empty.jpg is empty" in output and "3 of 3 inputs failed" in output
    native = capfd.readouterr().err  # what libpng, libtiff and OpenCV write around Python's stderr
    assert "libpng" not in native and "TIFF" not in native  # our one line per file says what failed


def test_threads_silencing_native_output_at_once_leave_stderr_and_opencv_logs_as_they_were(monkeypatch):
    import os
    import threading

    import cv2

    from edgeseg import quiet

    monkeypatch.setattr(quiet, "_quiet", True)
    before = os.fstat(2).st_ino, cv2.utils.logging.getLogLevel()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a():  # enters first, leaves while b is still inside (the data loader's 4 readers do this)
        with quiet.opencv_silenced():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with quiet.opencv_silenced():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert (os.fstat(2).st_ino, cv2.utils.logging.getLogLevel()) == before


def test_a_calibration_folder_skips_images_that_cannot_be_used(tmp_path, caplog):
    import cv2

    from edgeseg.export.calibration import load_calibration

    rng = np.random.default_rng(0)
    for i in range(33):
        cv2.imwrite(str(tmp_path / f"{i:02d}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    jpeg = (tmp_path / "00.jpg").read_bytes()
    (tmp_path / "00.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # half a picture would calibrate int8 on grey
    images = load_calibration(tmp_path, 32, progress=False)
    assert images.shape == (32, 32, 32, 3) and "00.jpg is a truncated JPEG" in caplog.text


def test_a_damaged_video_is_named_in_one_line(tmp_path, capfd):
    from tests.helpers import write_video

    data = write_video(tmp_path / "clip.mp4", frames=5).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # an interrupted copy: MP4's index is at the end
    capfd.readouterr()
    result = runner.invoke(app, ["webcam", "--source", str(tmp_path / "cut.mp4"), "--output", str(tmp_path / "o.mp4")])
    assert result.exit_code == 1 and "cannot open video" in one_line(result.output)
    assert "moov atom" not in capfd.readouterr().err  # FFmpeg's own line beside ours


@pytest.mark.parametrize("source", ["/dev/video7", "rtsp://127.0.0.1:9/cam"])
def test_a_camera_or_stream_that_cannot_be_opened_is_named_in_one_line(tmp_path, capfd, source):
    result = runner.invoke(app, ["webcam", "--source", source, "--output", str(tmp_path / "o.mp4")])
    message = one_line(result.output)
    assert result.exit_code == 1 and ("no camera could be opened at --source /dev/video7" in message
                                      or "cannot open stream rtsp://127.0.0.1:9/cam" in message), message
    assert ", (" not in message  # no list glued to a parenthesis
    native = capfd.readouterr().err
    assert "video4linux2" not in native and "Connection refused" not in native  # FFmpeg's own lines


def _npy(path, array):
    np.save(path, array, allow_pickle=True)
    return path


@pytest.mark.parametrize("case, message", [
    ("garbage", "bad.npy is not a readable .npy array"),
    ("truncated", "bad.npy is not a readable .npy array (Failed to read all data"),
    ("objects", "bad.npy is not a readable .npy array (Object arrays cannot be loaded"),
    ("unit floats", "bad.npy holds values from 0 to 1; expected RGB pixel values from 0 to 255"),
])
def test_a_calibration_array_that_cannot_be_used_is_named(tmp_path, case, message):
    from edgeseg.export.base import ExportError
    from edgeseg.export.calibration import load_calibration

    path = tmp_path / "bad.npy"
    if case == "garbage":
        path.write_bytes(b"not an array")
    elif case == "truncated":
        data = _npy(path, np.zeros((40, 32, 32, 3), np.uint8)).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "objects":
        _npy(path, np.array([1, "a"], dtype=object))
    else:  # images scaled to 0-1: cast to uint8 they would calibrate int8 on black
        _npy(path, np.random.default_rng(0).random((40, 32, 32, 3), np.float32))
    with pytest.raises(ExportError, match=re.escape(message)):
        load_calibration(path, 32, progress=False)
    floats = _npy(tmp_path / "ok.npy", np.full((40, 32, 32, 3), 200.0, np.float32))  # 0-255 floats are pixels
    assert load_calibration(floats, 32, progress=False).max() == 200


@pytest.mark.parametrize("command", [["evaluate", "edge"], ["train"]])
def test_a_limit_below_one_is_refused_not_read_as_a_slice(oxford_dir, tmp_path, command):
    result = runner.invoke(app, [*command, "--data", str(oxford_dir), "--limit", "-1", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--limit" in result.output  # -1 scored all images but the last


@pytest.mark.parametrize("option, message", [
    (["--loss", "dice"], "Invalid value for '--loss': 'dice' is not one of 'ce', 'ce+dice'"),
    (["--model", "unet"], "unknown model 'unet'"),
    (["--lr", "0"], "learning rate must be positive"),
    (["--init-from", "{tmp}/missing.keras"], "--init-from model"),
])
def test_train_settings_that_cannot_work_are_command_line_errors(oxford_dir, tmp_path, option, message):
    pytest.importorskip("keras")  # train checks for the training stack first
    option = [o.replace("{tmp}", str(tmp_path)) for o in option]
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(tmp_path / "run"), *option])
    output = one_line(result.output)
    assert result.exit_code == 2 and message in output, output
    assert not (tmp_path / "run").exists()


def test_an_unknown_export_format_is_a_command_line_error(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--formats", "tflite,onxx"])
    output = one_line(result.output)
    assert result.exit_code == 2 and "unknown format 'onxx'; choose from tflite, onnx (did you mean 'onnx'?)" in output


def test_an_unknown_split_is_refused_not_read_as_the_training_split(oxford_dir):
    from edgeseg.data import DataError, iter_full_resolution

    result = runner.invoke(app, ["evaluate", "edge", "--data", str(oxford_dir), "--split", "all"])
    assert result.exit_code == 2 and "'--split': 'all' is not one of 'train', 'val', 'test'" in " ".join(
        result.output.split())
    with pytest.raises(DataError, match="split must be one of"):
        next(iter_full_resolution(str(oxford_dir), "all"))


def test_a_video_corrupt_mid_file_is_an_error_not_a_quiet_stop(tmp_path):
    from tests.helpers import write_video

    video = write_video(tmp_path / "v.avi", frames=300)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 3])
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", str(video), "--output",
                                 str(tmp_path / "o.mp4"), "--no-window"])
    assert result.exit_code == 1
    assert "of its 300 frames: the file is corrupt or truncated" in " ".join(result.output.split())


def test_a_stream_that_never_answers_times_out_and_says_so():
    import socket
    import threading
    import time

    from edgeseg.runtime.sources import SourceError, open_source

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    start = time.monotonic()
    with pytest.raises(SourceError, match="did not answer within 2 s \\(timed out\\)"):
        open_source(f"http://127.0.0.1:{listener.getsockname()[1]}/stream", timeout_s=2)
    assert time.monotonic() - start < 10
    listener.close()


# --- 5. Nothing half-made left behind ------------------------------------------------------------------------


def test_leftovers_of_killed_runs_are_cleared_and_live_ones_kept(tmp_path, monkeypatch):
    import os
    import tempfile

    from edgeseg.io import temporary_directory
    from edgeseg.runtime.outputs import VideoOutput

    dead = 2**22 + 12345  # beyond the default pid range: no such process
    (tmp_path / f".rec.{dead}.partial.mp4").write_bytes(b"half")
    (tmp_path / f".rec.{os.getppid()}.partial.mp4").write_bytes(b"live")  # a running process's work
    (tmp_path / ".rec.notes.mp4").write_bytes(b"user file")  # not ours
    VideoOutput(tmp_path / "rec.mp4", 30).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".rec.{os.getppid()}.partial.mp4", ".rec.notes.mp4"])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"edgeseg-savedmodel-{dead}-abcd1234"
    (stale / "variables").mkdir(parents=True)
    with temporary_directory("savedmodel") as scratch:
        assert scratch.is_dir() and not stale.exists()


# --- 3. The MJPEG server, as if it faced a network ----------------------------------------------------------


def _published(server, frames=1):
    for i in range(frames):
        server.publish(np.full((48, 64, 3), 10 * i, np.uint8))


def test_a_network_address_never_serves_without_a_token_by_accident():
    from edgeseg.runtime.server import MjpegServer, ServeError

    server = MjpegServer("0.0.0.0", 0)
    assert server.token and len(server.token) >= 16 and "?token=" in server.url  # generated, shown once
    server.close()
    open_server = MjpegServer("0.0.0.0", 0, allow_open=True)  # --no-token: asked for explicitly
    assert open_server.token is None
    open_server.close()
    with pytest.raises(ServeError, match="--token is empty"):
        MjpegServer("127.0.0.1", 0, token="")
    result = runner.invoke(app, ["webcam", "--serve", "0.0.0.0:0", "--token", ""])
    assert result.exit_code == 2 and "--token is empty" in one_line(result.output)


def test_only_the_bearer_scheme_is_accepted_case_insensitively():
    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, token="s3cret").start()
    try:
        _published(server)
        for header, status in (("s3cret", 403), ("Basic s3cret", 403), ("Bearer s3cret", 200),
                               ("bearer s3cret", 200), ("BEARER  s3cret", 200), ("Bearer wrong", 403)):
            conn, resp = http_get(server, "/frame.jpg", {"Authorization": header})
            assert resp.status == status, header
            conn.close()
    finally:
        server.close()


def test_viewers_are_capped_and_idle_connections_without_a_token_lock_nobody_out():
    import socket
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, token="t0k", max_clients=2, request_timeout=0.5, max_pending=8).start()
    try:
        assert server.httpd.request_queue_size >= 64
        _published(server)
        idle = [socket.create_connection(server.httpd.server_address[:2]) for _ in range(8)]  # silent, no token
        time.sleep(0.1)
        extra = socket.create_connection(server.httpd.server_address[:2])  # over the pending cap: refused at once
        extra.settimeout(3)
        assert extra.recv(100).startswith(b"HTTP/1.0 503")
        for s in idle:  # closed after the short request deadline, not the viewers' 10 s timeout
            s.settimeout(3)
            assert s.recv(100) == b""
        viewers = [http_get(server, "/stream.mjpg?token=t0k") for _ in range(2)]
        assert all(resp.status == 200 for _, resp in viewers)
        conn, resp = http_get(server, "/frame.jpg?token=t0k")  # a third viewer: over the cap of 2
        assert resp.status == 503
        conn.close()
        for c, r in viewers:
            r.close()
            c.close()
        for i in range(10):  # the next frames find the viewers gone
            server.publish(np.full((48, 64, 3), 20 + i, np.uint8))
            time.sleep(0.05)
        conn, resp = http_get(server, "/frame.jpg?token=t0k")  # their slots are free again
        assert resp.status == 200
        conn.close()
    finally:
        server.close()


def test_a_client_trickling_its_request_is_dropped_after_the_timeout():
    import socket
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0, max_clients=1, timeout=0.5, request_timeout=0.5).start()
    try:
        slow = socket.create_connection(server.httpd.server_address[:2])
        slow.sendall(b"GET /frame.jpg HTTP/1.1\r\n")
        slow.settimeout(0.1)
        start, closed = time.monotonic(), False
        while not closed and time.monotonic() - start < 4:
            try:  # a header byte every 0.2 s: never idle for the 0.5 s timeout, never done either
                slow.sendall(b"X")
                closed = slow.recv(100) == b""
            except socket.timeout:
                time.sleep(0.1)
            except OSError:
                closed = True
        assert closed and time.monotonic() - start < 2, "the trickling client kept its slot"
        slow.close()
        time.sleep(0.2)
        _published(server)
        conn, resp = http_get(server, "/frame.jpg")  # the only slot is free again
        assert resp.status == 200
        conn.close()
    finally:
        server.close()


def test_a_client_leaving_mid_response_prints_no_traceback(capfd):
    import socket
    import struct
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0).start()
    try:
        gone = socket.create_connection(server.httpd.server_address[:2])
        gone.sendall(b"GET /frame.jpg HTTP/1.0\r\n\r\n")  # no frame yet: answered after a wait
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()  # reset: the answer's write fails
        time.sleep(2.5)
    finally:
        server.close()
    assert "Traceback" not in capfd.readouterr().err


def test_each_frame_is_encoded_once_for_all_viewers():
    import threading
    import time

    from edgeseg.runtime.server import MjpegServer

    server = MjpegServer("127.0.0.1", 0).start()
    received = [0] * 6

    def view(i):
        conn, resp = http_get(server, "/stream.mjpg")
        while received[i] < 10:
            line = resp.readline()
            if line.lower().startswith(b"content-length"):
                resp.read(int(line.split(b":")[1]) + 4)
                received[i] += 1
        conn.close()

    viewers = [threading.Thread(target=view, args=(i,), daemon=True) for i in range(6)]
    for v in viewers:
        v.start()
    published = 0
    while min(received) < 10 and published < 2000:
        _published(server)
        published += 1
        time.sleep(0.005)
    for v in viewers:
        v.join(5)
    server.close()
    assert min(received) >= 10
    assert server.frames_encoded <= published and server.frames_sent >= 60
    assert server.frames_encoded < server.frames_sent  # shared bytes, not one encoding per viewer


def test_bad_ports_and_busy_ports_are_named():
    import socket

    from edgeseg.runtime.server import MjpegServer, ServeError, parse_address

    with pytest.raises(ServeError, match="port from 0 to 65535"):
        parse_address("127.0.0.1:99999")
    result = runner.invoke(app, ["webcam", "--serve", "127.0.0.1:99999"])
    assert result.exit_code == 2 and "0 to 65535" in result.output
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    with pytest.raises(ServeError, match=f"127.0.0.1:{busy.getsockname()[1]}: the port is in use"):
        MjpegServer("127.0.0.1", busy.getsockname()[1])
    busy.close()


def test_the_token_is_shown_once_and_never_in_the_report(tmp_path):
    import json

    from tests.helpers import write_video

    video = write_video(tmp_path / "v.avi", frames=5)
    result = runner.invoke(app, ["webcam", "--model", "edge", "--source", str(video), "--serve", "127.0.0.1:0",
                                 "--token", "t0psecret", "--no-window", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "t0psecret" not in result.stdout and report["url"].endswith("?token=…")
    assert "t0psecret" not in result.stderr  # stderr here is no terminal: a log file, say


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
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--model", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "is a folder but not an edgeseg run" in " ".join(result.output.split())
    (run / "run.json").write_text("{garbage")
    from edgeseg.runs import RunFolder

    with pytest.raises(ValueError, match="run.json is not valid JSON"):
        RunFolder(run).training_data()


def _damaged_copy_of_the_default_model(folder: Path) -> Path:
    from edgeseg.runtime.packaged import packaged_model

    damaged = folder / "damaged.tflite"
    damaged.write_bytes(packaged_model("edge").read_bytes()[:5000])  # what an interrupted download leaves
    return damaged


def test_evaluate_names_a_damaged_model_in_one_line(oxford_dir, tmp_path):
    damaged = _damaged_copy_of_the_default_model(tmp_path)
    result = runner.invoke(app, ["evaluate", str(damaged), "--data", str(oxford_dir)])
    assert isinstance(result.exception, SystemExit), result.exception  # an error line, not a traceback
    assert result.exit_code == 1 and "cannot load" in result.output and "damaged.tflite" in result.output


def test_bench_finishes_every_row_then_exits_1_naming_the_models_that_failed(tmp_path):
    import json

    damaged = _damaged_copy_of_the_default_model(tmp_path)
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["bench", "edge", str(damaged), "--threads", "1", "--warmup", "0", "--runs", "2",
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    rows = json.loads(out.read_text())["rows"]  # written all the same, the good row measured
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]  # edge's .tflite and .onnx, the damaged file
    assert rows[2]["error"].startswith("BackendError: LiteRT cannot load")  # the message, not a traceback's path
    assert "1 of 3 rows failed: damaged.tflite" in " ".join(result.output.split())


@pytest.mark.parametrize("args, message", [
    (["--threads", "a"], "'a': expected thread counts from 1 to 256, e.g. 1,2,4"),
    (["--threads", "2,0"], "'2,0': expected thread counts from 1 to 256, e.g. 1,2,4"),
    (["--data", "{tmp}/nowhere"], "nowhere' not found: give 'oxford_iiit_pet' (tfds) or an existing folder"),
])
def test_bench_refuses_bad_options_before_measuring_anything(tmp_path, args, message):
    out = tmp_path / "results.json"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = runner.invoke(app, ["bench", "edge", *args, "--runs", "1", "--out", str(out)])
    assert result.exit_code == 2 and message in one_line(result.output), result.output
    assert not out.exists()


def test_a_background_image_is_read_as_safely_and_quietly_as_any_input(tmp_path, capfd):
    from edgeseg.runtime.effects import parse_background

    bomb = _png_claiming(tmp_path, 20000, 20000)
    result = runner.invoke(app, ["predict", str(tmp_path / "none.jpg"), "--effect", "replace-bg",
                                 "--background", str(bomb), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "over the limit of 50,000,000 pixels" in " ".join(result.output.split())
    with pytest.raises(ValueError, match="cannot read .*missing.png.*or a #RRGGBB colour"):
        parse_background(str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="'#zz' is not a #RRGGBB colour"):
        parse_background("#zz")
    assert "imread" not in capfd.readouterr().err  # no OpenCV warning beside our error


@pytest.mark.parametrize("command", [
    ["evaluate", "edge", "--data", "{data}", "--out", "{blocked}/result.json"],
    ["bench", "edge", "--threads", "1", "--runs", "1", "--out", "{blocked}/result.json"],
    ["predict", "{data}/images", "--out", "{blocked}"],
    ["label", "{data}/images", "--out", "{blocked}"],
    ["webcam", "--source", "{data}/images", "--output", "{blocked}/out.mp4"],
    ["bench", "report", "tests/data/bench_schema_v1.json", "--out", "{blocked}/report"],
    ["train", "--data", "{data}", "--out", "{blocked}/run"],
])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(oxford_dir, tmp_path, command, monkeypatch):
    import edgeseg.runtime.segmenter as segmenter

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")

    def no_work(*args, **kwargs):
        raise AssertionError("the model ran before the output was checked")

    monkeypatch.setattr(segmenter.Segmenter, "__init__", no_work)
    args = [a.format(data=oxford_dir, blocked=blocked) for a in command]
    result = runner.invoke(app, args)
    output = one_line(result.output)  # unwrapped from the help box
    assert result.exit_code == 2 and f"Invalid value for {args[-2]}" in output and "a-file" in output, result.output
    assert "is a file, not a folder" in output


def test_checking_an_output_folder_creates_nothing(tmp_path):
    from edgeseg.io import check_writable_dir

    check_writable_dir(tmp_path / "new" / "deeper")  # a run folder appears only once its model exists
    assert list(tmp_path.iterdir()) == []


def _interrupted_run_folder(run: Path, data, **settings) -> None:
    """What an interrupted ``train`` leaves: its settings in run.json and a backup to resume from."""
    import json
    from dataclasses import asdict

    from edgeseg.trainer.train import TrainConfig

    (run / "backup" / "current").mkdir(parents=True)
    config = TrainConfig(data=str(data), out=str(run), **settings)
    (run / "run.json").write_text(json.dumps({"config": asdict(config)}))


def test_resuming_with_other_settings_is_refused_not_mixed_into_the_run(oxford_dir, tmp_path):
    pytest.importorskip("keras")  # train checks for the training stack first
    run = tmp_path / "run"
    _interrupted_run_folder(run, oxford_dir, img_size=128, learning_rate=1e-3)
    result = runner.invoke(app, ["train", "--data", str(oxford_dir), "--out", str(run), "--img-size", "224",
                                 "--lr", "3e-4"])
    output = one_line(result.output)
    assert result.exit_code == 2, output
    assert f"{run} holds an interrupted run with other settings" in output
    assert "img_size 128 (now 224)" in output and "learning_rate 0.001 (now 0.0003)" in output
    assert "--overwrite" in output


def test_resuming_may_extend_the_run_and_name_the_same_data_another_way(oxford_dir, tmp_path, monkeypatch):
    pytest.importorskip("keras")  # train checks for the training stack first
    from edgeseg.trainer.train import TrainConfig, validate

    run = tmp_path / "run"
    _interrupted_run_folder(run, oxford_dir, epochs=20)
    monkeypatch.chdir(oxford_dir.parent)
    validate(TrainConfig(data=oxford_dir.name, out=str(run), strategy="default", epochs=30, early_stopping=0))
