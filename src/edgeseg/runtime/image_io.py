"""Reading still images safely: a pixel limit checked from the header before decoding, clear errors."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from edgeseg.quiet import opencv_silenced

MAX_PIXELS = 50_000_000  # 50 MP: larger images are refused before decoding (a 1 MB PNG can hold 400 MP)
MAX_PIXELS_OPTION = "--max-pixels"  # the commands that read photos (predict, webcam, label) raise the limit with it


class ImageError(ValueError):
    """An image that cannot be used: unreadable, truncated, or over the pixel limit (the message names it)."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP, WebP or TIFF header, without decoding; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
    if data[:4] in (b"II*\x00", b"MM\x00*") and len(data) >= 8:
        return _tiff_size(data, "<" if data[:2] == b"II" else ">")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 2 if marker != 0xFF else 1
                continue
            i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _tiff_size(data: bytes, order: str) -> tuple[int, int] | None:
    """ImageWidth and ImageLength (tags 256, 257; SHORT or LONG) from a TIFF's first directory."""
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return None
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    size = {}
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (256, 257) and kind in (3, 4):
            fmt, end = ("H", entry + 10) if kind == 3 else ("I", entry + 12)  # a SHORT is left-justified
            size[tag] = struct.unpack(order + fmt, data[entry + 8:end])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, option: str | None = None) -> np.ndarray:
    """A BGR image, or :class:`ImageError` saying why not (checked before any large allocation).

    ``option``: the command-line option that raises ``max_pixels``, named in the error where there is one.
    """
    def over_limit(width: int, height: int) -> ImageError:
        hint = f"; raise it with {option} if you trust the file" if option else ""
        return ImageError(f"{path} is {width}x{height} ({width * height / 1e6:.3g} MP), over the limit of "
                          f"{max_pixels / 1e6:.3g} MP{hint}")

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    size = header_size(data)
    if size and size[0] * size[1] > max_pixels:
        raise over_limit(*size)
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise ImageError(f"{path} is a truncated JPEG (no end-of-image marker): an interrupted download or copy?")
    with opencv_silenced():  # libpng and libtiff print their own complaint beside ours
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{path} is not a readable image (corrupt, or a format OpenCV cannot decode)")
    if size is None and image.shape[0] * image.shape[1] > max_pixels:  # no header we know: checked after
        raise over_limit(image.shape[1], image.shape[0])
    return image
