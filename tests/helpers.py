"""Test helpers: tiny synthetic pet datasets and videos (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from edgeseg.runtime.composite import FramePath, fused_available

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ALL_PRECISIONS = ("fp32", "fp16", "int8")
FRAME_PATHS = [FramePath.OPENCV] + ([FramePath.FUSED] if fused_available() else [])  # where numba installs, both


def synthetic_sample(rng: np.random.Generator, size: int = 64):
    """An RGB noise image with one bright ellipse, and its trimap (1 pet, 2 background, 3 border)."""
    image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    fg = np.zeros((size, size), np.uint8)
    center = tuple(int(c) for c in rng.integers(size // 3, 2 * size // 3, 2))
    axes = tuple(int(a) for a in rng.integers(size // 6, size // 3, 2))
    cv2.ellipse(fg, center, axes, float(rng.integers(0, 180)), 0, 360, 1, -1)
    color = rng.integers(150, 256, 3)
    image[fg == 1] = color
    kernel = np.ones((3, 3), np.uint8)
    border = cv2.dilate(fg, kernel) - cv2.erode(fg, kernel)
    trimap = np.where(fg == 1, 1, 2).astype(np.uint8)
    trimap[border == 1] = 3
    return image, trimap


def write_oxford(root: Path, n_trainval: int = 24, n_test: int = 8, size: int = 64, seed: int = 0) -> Path:
    """Oxford-IIIT Pet layout: images/*.jpg, annotations/trimaps/*.png, trainval.txt, test.txt."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    names = []
    for i in range(n_trainval + n_test):
        image, trimap = synthetic_sample(rng, size)
        name = f"Pet_{i}"
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(root / "annotations" / "trimaps" / f"{name}.png"), trimap)
        names.append(name)
    for fname, part in (("trainval.txt", names[:n_trainval]), ("test.txt", names[n_trainval:])):
        (root / "annotations" / fname).write_text("".join(f"{n} 1 1 1\n" for n in part))
    return root


def write_mask_folder(root: Path, n: int = 20, size: int = 64, seed: int = 0, scale: int = 255) -> Path:
    """images/ + masks/ layout with binary masks (0/255 by default)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        image, trimap = synthetic_sample(rng, size)
        cv2.imwrite(str(root / "images" / f"cat_{i}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"cat_{i}.png"), ((trimap != 2) * scale).astype(np.uint8))
    return root


def write_video(path: Path, frames: int = 12, size=(160, 120), seed: int = 0, fps: float = 10.0) -> Path:
    """A synthetic MJPG video of a moving bright ellipse on noise."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        frame = rng.integers(0, 80, (size[1], size[0], 3), dtype=np.uint8)
        cv2.ellipse(frame, (40 + 5 * i, size[1] // 2), (30, 40), 0, 0, 360, (200, 220, 240), -1)
        writer.write(frame)
    writer.release()
    return path


def http_get(server, path: str, headers: dict | None = None):
    """(connection, response) of a GET to an MjpegServer; close the connection when done."""
    import http.client

    host, port = server.httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    return conn, conn.getresponse()


def interrupted_training(config, monkeypatch, after_epoch: int = 1) -> None:
    """Train ``config`` and stop it at the end of epoch ``after_epoch`` the way a kill would (its backup of that
    epoch written, no model.keras); the training callbacks are restored afterwards."""
    import keras
    import pytest

    from edgeseg.trainer import train as train_mod

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == after_epoch:
                raise KeyboardInterrupt("simulated kill")

    real = train_mod._callbacks
    monkeypatch.setattr(train_mod, "_callbacks", lambda *a: real(*a) + [Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(config, progress=False)
    monkeypatch.setattr(train_mod, "_callbacks", real)


def one_line(output: str) -> str:
    """A command's output on one line, unwrapped from rich's error and help boxes."""
    return " ".join(output.replace("│", " ").split())


def damaged_copy_of_the_default_model(folder: Path) -> Path:
    from edgeseg.runtime.packaged import packaged_model

    damaged = folder / "damaged.tflite"
    damaged.write_bytes(packaged_model("edge").read_bytes()[:5000])  # what an interrupted download leaves
    return damaged


def png_claiming(tmp_path, width, height):
    """A small PNG whose header claims width x height: what a decompression bomb looks like to a reader."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


def heic_header(width: int = 40, height: int = 30) -> bytes:
    """The start of an iPhone photo: a HEIF file type box and the spatial extent of its image (no pixels)."""
    return (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 12 + b"\x00\x00\x00\x14ispe\x00\x00\x00\x00"
            + struct.pack(">II", width, height))
