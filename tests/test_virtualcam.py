"""--virtual-cam through the real pyvirtualcam, with a recording backend in place of a camera device."""

import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeseg.cli import app
from tests.helpers import write_video

pyvirtualcam = pytest.importorskip("pyvirtualcam")
from pyvirtualcam import camera as pvc_camera  # noqa: E402


class Recorder:
    """A pyvirtualcam backend (its documented Backend interface) that keeps what it is sent."""

    opened: list[dict] = []
    frames: list[np.ndarray] = []
    closed = 0

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        Recorder.opened.append({"width": width, "height": height, "fps": fps, "fourcc": fourcc})

    def send(self, frame):
        Recorder.frames.append(frame.copy())

    def close(self):
        Recorder.closed += 1

    def device(self):
        return "recorder"

    def native_fourcc(self):
        return None


class NoDevice(Recorder):
    def __init__(self, **kw):
        raise RuntimeError("No v4l2 loopback device found at /dev/video[0-99].")


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "clip.avi", frames=5)


def _webcam(shipped, video, *extra):
    return CliRunner().invoke(app, ["webcam", "--model", shipped("tflite"), "--source", str(video),
                                    "--virtual-cam", "--no-window", *extra])


@pytest.mark.parametrize("effect", ["grayscale-bg", "remove-bg"])
def test_frames_reach_the_virtual_camera(shipped, video, monkeypatch, effect):
    monkeypatch.setattr(pvc_camera, "BACKENDS", {"recorder": Recorder})
    monkeypatch.setattr(Recorder, "opened", [])
    monkeypatch.setattr(Recorder, "frames", [])
    monkeypatch.setattr(Recorder, "closed", 0)
    result = _webcam(shipped, video, "--effect", effect)
    assert result.exit_code == 0, result.output
    assert Recorder.opened == [{"width": 160, "height": 120, "fps": 10.0,
                                "fourcc": pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)}]
    assert len(Recorder.frames) == 5 and Recorder.closed == 1
    if effect == "grayscale-bg":  # the clip's ellipse moves: each frame its own, not one reused buffer
        assert len({f.tobytes() for f in Recorder.frames}) == 5
    else:  # no alpha channel on a camera: the background is keyed to a flat colour
        assert all(f.size == 160 * 120 * 3 for f in Recorder.frames)


def test_missing_device_is_a_clear_error(shipped, video, monkeypatch):
    monkeypatch.setattr(pvc_camera, "BACKENDS", {"v4l2loopback": NoDevice})
    result = _webcam(shipped, video)
    assert result.exit_code == 1
    assert "no virtual camera" in result.output and "modprobe v4l2loopback" in result.output
    assert "Traceback" not in result.output
    assert result.output.count("modprobe v4l2loopback") == 1  # the run's summary said the reason too


def test_missing_pyvirtualcam_is_a_clear_error(shipped, video, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails as if not installed
    result = _webcam(shipped, video)
    assert result.exit_code == 1 and "pip install pyvirtualcam" in result.output


def test_frames_of_another_size_reach_the_virtual_camera_letterboxed(shipped, tmp_path, monkeypatch):
    # a camera device has one size: a folder of photos of two sizes failed on the second ("mismatch in frame size")
    import cv2

    monkeypatch.setattr(pvc_camera, "BACKENDS", {"recorder": Recorder})
    monkeypatch.setattr(Recorder, "opened", [])
    monkeypatch.setattr(Recorder, "frames", [])
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), np.full((120, 160, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "photos" / "b.png"), np.full((160, 120, 3), 90, np.uint8))
    result = _webcam(shipped, tmp_path / "photos", "--effect", "none")
    assert result.exit_code == 0, result.output
    assert [f.size for f in Recorder.frames] == [120 * 160 * 3] * 2  # as the device was opened: the first size
    second = Recorder.frames[1].reshape(120, 160, 3)
    assert second[:, :20].max() == 0 and second[:, 70:90].min() > 0  # black bars beside the portrait photo
