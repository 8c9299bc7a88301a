"""Frame sources: files, folders, live sources that reconnect or are lost."""

import time

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.errors import NotFound
from edgeseg.runtime.sources import LiveSource, SourceError, open_source
from tests.helpers import one_line

runner = CliRunner()


def test_bad_sources_and_models(tmp_path):
    with pytest.raises(NotFound, match="not found"):
        open_source(str(tmp_path / "nothing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "model.txt").write_text("x")
    result = CliRunner().invoke(app, ["predict", str(tmp_path), "--model", str(tmp_path / "model.txt")])
    assert result.exit_code == 2 and "unknown model type '.txt'" in result.output


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


def test_files_loop_and_play_in_real_time_when_asked(video):
    with open_source(str(video), loop=True) as source:
        frames = [f for _, f in zip(range(30), source)]
    assert len(frames) == 30 and [f.index for f in frames] == list(range(30))  # past the clip's 12 frames
    np.testing.assert_array_equal(frames[12].image, frames[0].image)
    start = time.monotonic()
    with open_source(str(video), realtime=True) as source:
        count = sum(1 for _ in source)
    assert count == 12 and time.monotonic() - start >= 11 / 10.0 - 0.05  # the clip is 10 fps


def test_a_file_played_in_real_time_stamps_each_frame_when_it_is_due_not_when_it_was_read_ahead(video):
    # glass-to-glass latency counted the wait for a frame's due time: a 10 fps clip showed ~100 ms of it
    with open_source(str(video), realtime=True) as source:
        waits = [time.perf_counter() - frame.captured_at for _, frame in zip(range(4), source)]
    assert max(waits) < 0.05, waits  # stamped when read ahead, a frame waited 100 ms for its turn


class _FakeCamera:
    """A cv2.VideoCapture stand-in for a camera that offers only 640x480 at 30 FPS."""

    def __init__(self, *args):
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0, cv2.CAP_PROP_FPS: 30.0}
        self.asked = {}

    def isOpened(self):
        return True

    def set(self, prop, value):
        self.asked[prop] = value
        if prop == cv2.CAP_PROP_FRAME_WIDTH and value == 1280:  # it has a 1280x720 mode, at 30 FPS only
            self.props.update({cv2.CAP_PROP_FRAME_WIDTH: 1280.0, cv2.CAP_PROP_FRAME_HEIGHT: 720.0})
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        import time

        time.sleep(0.01)
        w, h = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        return True, np.zeros((h, w, 3), np.uint8)

    def release(self):
        pass


def test_the_camera_is_asked_for_a_size_and_rate_and_says_what_it_delivers(monkeypatch, caplog):
    from edgeseg.runtime import sources

    monkeypatch.setattr(sources.cv2, "VideoCapture", _FakeCamera)
    with caplog.at_level("WARNING", logger="edgeseg"):
        src = sources.open_source("0", camera=sources.CameraMode((1280, 720), 30.0))
        frame = next(iter(src))
        src.close()
    assert frame.image.shape == (720, 1280, 3) and "delivers" not in caplog.text  # what was asked
    with caplog.at_level("WARNING", logger="edgeseg"):
        src = sources.open_source("0", camera=sources.CameraMode((1920, 1080), 60.0))
        src.close()
    assert "0 delivers 640x480 at 30 FPS, not the 1920x1080 at 60 FPS asked for" in caplog.text


class _UsbCamera(_FakeCamera):
    """A USB 2 webcam: uncompressed (its default) 1280x720 at 10 FPS only, MJPG 1280x720 at 30 FPS."""

    def __init__(self, *args):
        super().__init__(*args)
        self.props[cv2.CAP_PROP_FOURCC] = float(cv2.VideoWriter_fourcc(*"YUYV"))
        self.order = []

    def set(self, prop, value):
        self.order.append(prop)
        if prop == cv2.CAP_PROP_FOURCC:
            self.props[prop] = float(value)
        super().set(prop, value)
        mjpg = self.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
        self.props[cv2.CAP_PROP_FPS] = 30.0 if mjpg or self.props[cv2.CAP_PROP_FRAME_WIDTH] == 640 else 10.0
        return True


def test_a_camera_asked_for_a_webcam_resolution_is_asked_for_mjpg_first(monkeypatch, caplog):
    # USB 2 webcams send 720p and 1080p at full rate only as MJPG; uncompressed, 1280x720 came at 10 FPS
    from edgeseg.runtime import sources

    cameras = []
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda *a: cameras.append(_UsbCamera()) or cameras[-1])
    with caplog.at_level("WARNING", logger="edgeseg"):
        src = sources.open_source("0", camera=sources.CameraMode((1280, 720), 30.0))
        src.close()
    assert "delivers" not in caplog.text, caplog.text
    order = cameras[-1].order
    assert order.index(cv2.CAP_PROP_FOURCC) < order.index(cv2.CAP_PROP_FRAME_WIDTH)  # V4L2 picks modes per format
    for camera in (None, sources.CameraMode((640, 480), 15.0)):  # nothing asked, or a size it sends uncompressed
        src = sources.open_source("0", camera=camera)
        src.close()
        assert cv2.CAP_PROP_FOURCC not in cameras[-1].order  # the camera's own format is left alone


def test_camera_options_are_for_cameras(tmp_path):
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from tests.helpers import one_line, write_video

    video = write_video(tmp_path / "v.avi", frames=2)
    result = CliRunner().invoke(app, ["webcam", "--source", str(video), "--camera-size", "1280x720", "--output",
                                      str(tmp_path / "o.mp4")])
    # a setting that does not fit the source is a bad command line: it exited 1
    assert result.exit_code == 2 and "--camera-size and --camera-fps are for cameras" in one_line(result.output)
    result = CliRunner().invoke(app, ["webcam", "--camera-size", "1280by720"])
    assert result.exit_code == 2 and "expected WIDTHxHEIGHT" in one_line(result.output)


@pytest.mark.parametrize("live", ["0", "/dev/video0", "rtsp://127.0.0.1:9/stream"])
def test_loop_is_for_files(tmp_path, live):
    # --loop on a camera or stream was ignored without a word
    from typer.testing import CliRunner

    from edgeseg.cli import app
    from tests.helpers import one_line

    result = CliRunner().invoke(app, ["webcam", "--source", live, "--loop", "--output", str(tmp_path / "o.mp4")])
    assert result.exit_code == 2 and "--loop is for video files and image folders" in one_line(result.output)


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


def test_a_pattern_source_takes_the_files_it_matches_not_the_folders(tmp_path):
    # `--source 'photos/**'` read the folders it matched as frames: "nest is not a regular file (a pipe...)"
    from edgeseg.runtime.sources import SourceError, open_source

    (tmp_path / "photos" / "sub").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos" / "sub" / "a.png"), np.full((20, 30, 3), 90, np.uint8))
    source = open_source(f"{tmp_path}/photos/**")
    try:
        assert [f.name for f in source.files] == ["a.png"]
    finally:
        source.close()
    with pytest.raises(SourceError, match="matches no image files"):
        open_source(f"{tmp_path}/photos/*")  # only a folder


def test_an_empty_source_is_no_folder(tmp_path, monkeypatch):
    # open_source("") played the working directory's images: Path("") is "."
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((30, 30, 3), 90, np.uint8))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="the source is empty"):
        open_source("")


@pytest.mark.parametrize("spec, says", [("1280by720", "expected WIDTHxHEIGHT, e.g. 1280x720"),
                                        ("20000x20000", "at most 16384 pixels a side"),  # said "expected WIDTHxHEIGHT"
                                        ("0x480", "at least 1 pixel a side")])
def test_a_frame_size_says_what_is_wrong_with_it(spec, says):
    from edgeseg.runtime.sources import CameraMode

    with pytest.raises(ValueError, match=f"'{spec}': {says}"):
        CameraMode.parse_size(spec)
