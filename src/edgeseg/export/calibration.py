"""Calibration images for int8 quantization: one source feeding TFLite and ONNX Runtime alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from edgeseg.export.base import ExportError, ShapeMismatchError
from edgeseg.data import DataError, as_hw, load_split
from edgeseg.data.readers import read_photos
from edgeseg.runtime.backends.base import filled
from edgeseg.runtime.image_io import image_files

log = logging.getLogger("edgeseg")
MIN_IMAGES = 32
RECOMMENDED_IMAGES = 300


def load_calibration(sources: str | Path | list, size: int | tuple[int, int], count: int = RECOMMENDED_IMAGES,
                     force: bool = False, progress: bool = True, data_dir: str | None = None) -> np.ndarray:
    """Up to ``count`` RGB uint8 images (N, height, width, 3) at ``size`` (a side or (height, width)) from
    datasets (their train splits), folders of images, or ``.npy`` arrays; several sources give an equal share
    each. Fewer than 300 warns; fewer than 32 is refused unless ``force``: a tiny calibration set silently
    ruins int8 accuracy. ``data_dir``: where tfds keeps its datasets (None: its default)."""
    sources = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    share = -(-count // len(sources))
    images = np.concatenate([_load_one(source, size, share, progress, data_dir) for source in sources])[:count]
    n = len(images)
    named = ", ".join(str(s) for s in sources)
    if n < MIN_IMAGES and not force:
        raise ExportError(f"calibration data {named} has {n} images; int8 needs at least {MIN_IMAGES} "
                          f"({RECOMMENDED_IMAGES} recommended). Pass --force to quantize anyway.")
    if n < RECOMMENDED_IMAGES:
        log.warning("calibrating int8 on %d images (%d recommended): accuracy may suffer", n, RECOMMENDED_IMAGES)
    return images.astype(np.uint8)


def _load_one(source: str | Path, size: int | tuple[int, int], count: int, progress: bool,
              data_dir: str | None) -> np.ndarray:
    path = Path(str(source))
    if path.suffix == ".npy":
        if not path.is_file():
            raise ExportError(f"calibration array {path} not found")
        images = _load_array(path)
        h, w = as_hw(size)
        if images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise ShapeMismatchError(
                f"calibration array {path} has shape {images.shape}; expected (N, {h}, {w}, 3) RGB images")
        images = images[:count]
        if images.size and images.dtype != np.uint8:
            low, high = float(images.min()), float(images.max())
            if not (low >= 0 and 1 < high <= 255):  # 0-1 floats cast to uint8 would calibrate on black
                raise ExportError(f"{path} holds values from {low:.0f} to {high:.0f}; expected RGB pixel values "
                                  "from 0 to 255 (uint8)")
    elif path.is_dir() and not (path / "images").is_dir():
        images = read_photos(image_files(path)[:count], size, "calibration")
    else:
        try:
            images = load_split(str(source), "train", size, limit=count, progress=progress, data_dir=data_dir).images
        except DataError as exc:
            raise ExportError(f"calibration data: {exc}") from exc
    return images


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path)  # no pickles: an array file must not run code
    except (OSError, ValueError, EOFError) as exc:
        raise ExportError(f"calibration array {path} is not a readable .npy array ({exc})") from None


def calibration_batches(images: np.ndarray, size: int = 1) -> Iterator[np.ndarray]:
    """Float32 batches of ``size`` images (the model's fixed batch; the last filled up with copies of its last
    image, which leave the observed ranges as they are) in the model's input range [0, 255].

    The first batch has one pixel set to 0 and one to 255, pinning the observed input range to
    [0, 255]: the int8 model's uint8 input then has scale 1 and zero point 0, so camera pixels go in
    unchanged.
    """
    size = max(size, 1)
    for start in range(0, len(images), size):
        batch = filled(images[start:start + size].astype(np.float32), size)
        if start == 0:
            batch[0, 0, 0, :] = 0.0
            batch[0, -1, -1, :] = 255.0
        yield batch


def tflite_representative_dataset(images: np.ndarray, size: int = 1):
    """TFLiteConverter.representative_dataset over :func:`calibration_batches`."""
    def generator():
        for batch in calibration_batches(images, size):
            yield [batch]
    return generator


def ort_calibration_reader(images: np.ndarray, input_name: str, size: int = 1):
    """onnxruntime.quantization CalibrationDataReader over :func:`calibration_batches`."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = calibration_batches(images, size)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

        def rewind(self):
            self._it = calibration_batches(images, size)

    return Reader()
