"""Outputs: recordings finalised on every signal, leftovers of killed runs, outputs refused before any work."""

from __future__ import annotations
import numpy as np
import pytest
from typer.testing import CliRunner
from edgeseg.cli import app
from tests.helpers import one_line

runner = CliRunner()


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


def test_a_live_recording_keeps_real_time_when_fewer_frames_are_processed_than_the_camera_sends(tmp_path):
    # a 30 fps camera processed at 10 FPS was recorded as 30 fps of processed frames: played back 3x too fast
    import cv2

    from edgeseg.runtime.outputs import VideoOutput

    video = VideoOutput(tmp_path / "live.avi", fps=30.0)
    for i, at in enumerate([100.0, 100.1, 100.2, 100.21, 100.5]):  # 10 FPS, one early frame, a stall
        video.write(np.full((48, 64, 3), 40 * i, np.uint8), at=at)
    video.close()
    capture = cv2.VideoCapture(str(tmp_path / "live.avi"))
    shown = []
    while (ok := capture.read())[0]:
        shown.append(round(float(ok[1].mean()) / 40))
    capture.release()
    # a frame per 1/30 s, each shown from its own time until the next one's: the frame of a slot already shown
    # shows from the next slot on (a stall repeats it)
    assert shown == [0, 0, 0, 1, 1, 1, 2] + [3] * 8 + [4]
    files = VideoOutput(tmp_path / "file.avi", fps=30.0)  # a file's frames: every one, once, whatever their times
    for i in range(3):
        files.write(np.full((48, 64, 3), 40 * i, np.uint8))
    files.close()
    assert int(cv2.VideoCapture(str(tmp_path / "file.avi")).get(cv2.CAP_PROP_FRAME_COUNT)) == 3


@pytest.mark.parametrize("fps,kept", [(0.5, 0.5), (25.0, 25.0), (600.0, 30.0)])
def test_a_recording_keeps_the_videos_frame_rate_a_timelapses_too(tmp_path, fps, kept):
    # a timelapse of one frame every 2 s was recorded at 30 fps, 60x faster than it plays; a rate no camera has (a
    # stream's clock read as one) gives 30
    import cv2
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from tests.helpers import write_video

    clip = write_video(tmp_path / "clip.avi", frames=3, fps=fps)
    assert cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FPS) == pytest.approx(fps, rel=1e-3)
    result = CliRunner().invoke(app, ["webcam", "--source", str(clip), "--output", str(tmp_path / "out.avi")])
    assert result.exit_code == 0, result.output
    assert cv2.VideoCapture(str(tmp_path / "out.avi")).get(cv2.CAP_PROP_FPS) == pytest.approx(kept, rel=1e-3)


def test_frames_of_another_shape_are_letterboxed_into_the_video_not_stretched(tmp_path, caplog):
    # a folder of landscape and portrait photos as a video: the portrait ones were stretched to the first's shape
    import cv2

    from edgeseg.runtime.outputs import VideoOutput

    video = VideoOutput(tmp_path / "photos.avi", fps=5.0)
    video.write(np.full((120, 160, 3), 200, np.uint8))  # landscape: the video's size
    portrait = np.zeros((160, 120, 3), np.uint8)
    cv2.circle(portrait, (60, 80), 40, (255, 255, 255), -1)
    with caplog.at_level("WARNING", logger="edgeseg"):
        video.write(portrait)
    video.close()
    capture = cv2.VideoCapture(str(tmp_path / "photos.avi"))
    capture.read()
    ok, frame = capture.read()
    assert ok and frame.shape == (120, 160, 3)
    ys, xs = np.nonzero(frame[..., 0] > 127)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 3  # still round: scaled by 0.75 either way
    assert frame[:, :30].max() < 40 and frame[:, -30:].max() < 40  # black bars either side
    assert "letterboxed" in caplog.text
