"""int8 calibration data: folders and arrays that cannot be used are named, usable images are kept."""

import re

import numpy as np
import pytest



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
