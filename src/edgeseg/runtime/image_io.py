"""Reading still images safely: a pixel limit checked from the header before decoding, clear errors."""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
import struct
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from edgeseg.contract import IMAGE_SUFFIXES
from edgeseg.quiet import opencv_silenced
from edgeseg.errors import EdgesegError

MAX_PIXELS = 50_000_000  # 50 MP: larger images are refused before decoding (a 1 MB PNG can hold 400 MP)
MAX_PIXELS_OPTION = "--max-pixels"  # the commands that read photos (predict, webcam, label) raise the limit with it
# Formats that keep a cutout's transparency: JPEG drops the alpha channel without a word, and most viewers
# ignore the fourth byte of a 32-bit BMP
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")


# HEIF file types of HEIC photos (mif1 starts some AVIF files too): OpenCV decodes AVIF where built with it, HEIC never
HEIC_BRANDS = (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc")
HEIC_SUFFIXES = (".heic", ".heif")
HEIC_ADVICE = ("(as iPhones take them), which OpenCV cannot decode: convert {} to JPEG (heif-convert, or on the "
               "iPhone: Settings > Camera > Formats > Most Compatible)")


class ImageError(EdgesegError, ValueError):
    """An image that cannot be used: unreadable, truncated, or over the pixel limit (the message names it)."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, WebP, TIFF, GIF, JPEG 2000, AVIF/HEIF or PNM
    image, without decoding; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            return struct.unpack("<HH", data[18:22])
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 24:  # a JPEG 2000 codestream: its SIZ segment first
        w, h, x0, y0 = struct.unpack(">IIII", data[8:24])
        return w - x0, h - y0
    if data[4:8] == b"jP  ":  # JP2: the image header box holds height, then width
        at = data.find(b"ihdr")
        if 0 <= at <= len(data) - 12:
            h, w = struct.unpack(">II", data[at + 4:at + 12])
            return w, h
        return None
    if data[4:12] in (b"ftypavif", b"ftypavis", *HEIC_BRANDS):  # HEIF: the spatial extent property
        at = data.find(b"ispe")
        return struct.unpack(">II", data[at + 8:at + 16]) if 0 <= at <= len(data) - 16 else None
    if data[:1] == b"P" and data[1:2] in b"123456" and len(data) >= 7:
        fields = data[2:64].split(maxsplit=3)  # PNM: "P6 <width> <height> ..." (comments are rare)
        if len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]), int(fields[1])
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
        for marker, i in _jpeg_segments(data):
            if marker in _JPEG_FRAME_STARTS and i + 9 <= len(data):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
    return None


# JPEG's start-of-frame markers (baseline, progressive, lossless...): the segment with the image's size
_JPEG_FRAME_STARTS = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset) of each segment of a JPEG's header, in order, up to its start of scan (0xDA, the last
    one): fill bytes and standalone markers are passed over, and stray bytes skipped to the next marker."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF or marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        yield marker, i
        if marker == 0xDA:
            return
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]


def _tiff_size(data: bytes, order: str) -> tuple[int, int] | None:
    """ImageWidth and ImageLength (tags 256, 257) from a TIFF's first directory."""
    size = _tiff_tags(data, order, (256, 257))
    return (size[256], size[257]) if len(size) == 2 else None


def _tiff_tags(data: bytes, order: str, tags: tuple[int, ...]) -> dict[int, int]:
    """The SHORT or LONG values of ``tags`` in the first directory of a TIFF structure (a TIFF file, an EXIF block)."""
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return {}
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    values = {}
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in tags and kind in (3, 4):
            fmt, end = ("H", entry + 10) if kind == 3 else ("I", entry + 12)  # a SHORT is left-justified
            values[tag] = struct.unpack(order + fmt, data[entry + 8:end])[0]
    return values


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8, 1: as stored) of a JPEG, PNG or WebP file: OpenCV turns the image so when it
    decodes it to BGR, but not when it decodes the file as it is (``IMREAD_UNCHANGED``, for its alpha channel).
    TIFF's decoder applies its own orientation either way."""
    exif = _exif_block(data)
    if not exif or exif[:4] not in (b"II*\x00", b"MM\x00*") or len(exif) < 8:
        return 1
    value = _tiff_tags(exif, "<" if exif[:2] == b"II" else ">", (274,)).get(274, 1)
    return value if 1 <= value <= 8 else 1


def _exif_block(data: bytes) -> bytes | None:
    """The EXIF block (a TIFF structure) of a JPEG (APP1), PNG (eXIf before the image data) or WebP (EXIF chunk)."""
    if data[:2] == b"\xff\xd8":
        for marker, i in _jpeg_segments(data):
            if marker == 0xE1 and data[i + 4:i + 10] == b"Exif\x00\x00":
                return data[i + 10:i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]]
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        i = 8
        while i + 8 <= len(data) and data[i + 4:i + 8] != b"IDAT":
            length = struct.unpack(">I", data[i:i + 4])[0]
            if data[i + 4:i + 8] == b"eXIf":
                return data[i + 8:i + 8 + length]
            i += 12 + length
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        i = 12
        while i + 8 <= len(data):
            length = int.from_bytes(data[i + 4:i + 8], "little")
            if data[i:i + 4] == b"EXIF":
                block = data[i + 8:i + 8 + length]
                return block[6:] if block[:6] == b"Exif\x00\x00" else block
            i += 8 + length + (length & 1)
    return None


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` turned and mirrored by an EXIF orientation, as OpenCV's decoders do it."""
    if orientation >= 5:
        image = cv2.transpose(image)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return image if flip is None else cv2.flip(image, flip)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS, option: str | None = None,
               alpha: bool = False) -> np.ndarray:
    """A BGR image (BGRA when ``alpha`` and the file has transparency), or :class:`ImageError` saying why not
    (checked before any large allocation).

    ``option``: the command-line option that raises ``max_pixels``, named in the error where there is one.
    """
    path = Path(path)
    regular_file(path, ImageError)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    size = header_size(data)
    if size is None:  # decoding it is the only way to learn its size, and a 35-byte file can claim 900 MP
        raise ImageError(f"{path} is not a readable image: no PNG, JPEG, BMP, WebP, TIFF, GIF, JPEG 2000, AVIF "
                         "or PNM header, whose size is checked before decoding (corrupt, or another format)")
    if size[0] * size[1] > max_pixels:
        hint = f"; raise it with {option} if you trust the file" if option else ""
        raise ImageError(f"{path} is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels), over the limit of "
                         f"{max_pixels:,} pixels{hint}")
    if data[:2] == b"\xff\xd8" and not _jpeg_complete(data):
        raise ImageError(f"{path} is a truncated JPEG (no end-of-image marker): an interrupted download or copy?")
    unchanged = alpha
    try:
        with opencv_silenced():  # libpng and libtiff print their own complaint beside ours
            buffer = np.frombuffer(data, np.uint8)
            image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED if alpha else cv2.IMREAD_COLOR)
            if image is None and not alpha:  # IMREAD_COLOR decodes no 32-bit float TIFF; IMREAD_UNCHANGED does
                image, unchanged = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED), True
    except (cv2.error, MemoryError) as exc:  # out of memory, say: this file fails, the next one is read
        raise ImageError(f"{path} could not be decoded ({type(exc).__name__}: {str(exc).strip()[:120]})") from None
    if image is None and data[4:12] in HEIC_BRANDS:
        raise ImageError(heic_error(path))
    if image is None:
        raise ImageError(f"{path} is not a readable image (corrupt, or a format OpenCV cannot decode)")
    if unchanged:  # IMREAD_UNCHANGED keeps the file's own depth and channels: 8-bit BGR, plus alpha where it has one
        image = _orient(_bgr_or_bgra(image), exif_orientation(data))  # and its orientation as stored
        if not alpha and image.shape[2] == 4:
            image = np.ascontiguousarray(image[..., :3])
    return image


def _bgr_or_bgra(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / 65535) if image.dtype == np.uint16 else \
            cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return image if (image[..., 3] < 255).any() else np.ascontiguousarray(image[..., :3])
    return image if image.shape[2] == 3 else cv2.cvtColor(image[..., :1], cv2.COLOR_GRAY2BGR)


def write_image(path: str | Path, image: np.ndarray, params: tuple[int, ...] = ()) -> None:
    """Encode ``image`` in the format of ``path``'s suffix and write it with Python's file I/O (OpenCV's own
    writer crashes the process on a file name that is not valid UTF-8)."""
    path = Path(path)
    ok, data = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise OSError(f"cannot encode {path} as {path.suffix}")
    path.write_bytes(data.tobytes())


def read_label(path: str | Path) -> np.ndarray | None:
    """A label image as stored (8-bit, one or more channels), or None if it cannot be read or decoded."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    with opencv_silenced():
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None


def image_files(folder: str | Path) -> list[Path]:
    """The image files of a folder, sorted: regular files with an image suffix only, so that a pipe, a device
    or a link to one (``ln -s /dev/zero x.png``) is left out, not read until it hangs or fills memory."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def pattern_files(pattern: str) -> tuple[list[str], list[Path]]:
    """What a glob pattern matches, sorted, and the regular files among the matches (folders left out).

    As a shell's globstar: ``**`` is any depth of folders, but not of links to folders (a link to a parent
    would repeat the tree until the path is too long: Python's own glob follows it), and names beginning with
    a dot match only a part that begins with one."""
    if "**" not in pattern:
        matches = sorted(glob.glob(pattern))
    else:
        head, parts = _split(pattern)
        matches = sorted(dict.fromkeys(_globstar(head, parts)))
    return matches, [Path(m) for m in matches if Path(m).is_file()]


def _split(pattern: str) -> tuple[str, list[str]]:
    """A pattern as its root ("/", a drive, or "" when relative) and its parts ("" last: folders only)."""
    root, rest = os.path.splitdrive(pattern)
    parts = rest.replace(os.sep, "/").split("/")
    absolute = parts[0] == ""
    parts = [part for part in parts[:-1] if part] + parts[-1:]  # "a//b" is "a/b"
    return (root + os.sep if absolute else root), parts


def _globstar(base: str, parts: list[str]) -> Iterator[str]:
    """The paths below ``base`` ("" for the working folder) that ``parts`` match."""
    if not parts:
        if base:
            yield base
        return
    part, rest = parts[0], parts[1:]
    if part == "":  # a trailing separator: folders only
        if base and os.path.isdir(base):
            yield os.path.join(base, "")
    elif part == "**":
        yield from _globstar(base, rest)  # no folder at all
        for entry in _entries(base, "*"):
            child = os.path.join(base, entry.name)
            if entry.is_dir(follow_symlinks=False):
                yield from _globstar(child, parts)
            elif not rest:  # a pattern ending in ** matches everything below
                yield child
    elif glob.has_magic(part):
        for entry in _entries(base, part):
            yield from _globstar(os.path.join(base, entry.name), rest)
    elif os.path.lexists(os.path.join(base, part)):
        yield from _globstar(os.path.join(base, part), rest)


def _entries(folder: str, pattern: str) -> list[os.DirEntry]:
    """The entries of ``folder`` whose names match ``pattern``, hidden ones only for a pattern that names them."""
    try:
        with os.scandir(folder or ".") as entries:
            return [e for e in entries if fnmatch.fnmatch(e.name, pattern)
                    and (not e.name.startswith(".") or pattern.startswith("."))]
    except OSError:  # not a folder, or not readable: nothing matches below it
        return []


def heic_files(folder: str | Path) -> list[Path]:
    """The HEIC photos of a folder, which :func:`image_files` leaves out (OpenCV cannot decode them), sorted."""
    return sorted(p for p in Path(folder).glob("*") if p.suffix.lower() in HEIC_SUFFIXES and p.is_file())


def heic_error(path: str | Path) -> str:
    """What to tell of a HEIC photo: what it is and how to convert it."""
    return f"{path} is a HEIC photo {HEIC_ADVICE.format('it')}"


def no_images(folder: str | Path) -> str:
    """Why ``folder`` gave no images: the suffixes read, and, where its subfolders hold them (folders are not
    searched below their own level), which one and the pattern that reaches them."""
    folder = Path(folder)
    message = f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
    heic = len(heic_files(folder))
    if heic:
        return f"{message}; it holds {heic} HEIC photo{'s' if heic > 1 else ''} {HEIC_ADVICE.format('them')}"
    for sub in folder.rglob("*"):  # to the first image only: a large tree without any is walked once
        if sub.suffix.lower() in IMAGE_SUFFIXES and sub.is_file():
            return (f"{message}; its subfolders do (e.g. {sub.parent}), which are not searched: name them, or "
                    f"give the pattern '{folder}/**/*{sub.suffix}'")
    return message


def regular_file(path: Path, error: type[Exception]) -> None:
    """Refuse a folder, a pipe, a device or a link to one (reading it hangs or never ends) with ``error``."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing: the read says so
    if stat.S_ISDIR(mode):
        raise error(f"{path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise error(f"{path} is not a regular file (a pipe, a device or a link to one)")


def _jpeg_complete(data: bytes) -> bool:
    """Whether the JPEG's main image ends with its end-of-image marker. The marker is looked for after the
    main image's start of scan, so that an EXIF thumbnail's end does not count, and anywhere after it, so
    that data appended after the image (a phone's motion photo) does not hide it."""
    for marker, i in _jpeg_segments(data):
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return data.find(b"\xff\xd9", i) >= 0
    return False
