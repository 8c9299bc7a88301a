"""Frame sources: files, folders, live sources that reconnect or are lost."""

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from edgeseg.runtime.sources import LiveSource, SourceError, open_source


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
