"""Readers of one dataset each: tfds ``oxford_iiit_pet`` and local folders in two layouts (no TensorFlow).

Every reader yields RGB uint8 images and 0-based masks (0 = pet, 1 = background, 2 = border). Local
folders are read once, validated (mask values, sizes), resized and held in memory. Binary masks can have
their outline marked (:mod:`edgeseg.data.outline`) for training, since they say nothing about it.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.data.outline import Outline, mark_outline
from edgeseg.runtime.image_io import ImageError, image_files, read_image, read_label
from edgeseg.errors import EdgesegError, NotFound

log = logging.getLogger("edgeseg")

TFDS_NAME = "oxford_iiit_pet"
TFDS_HOST = ("thor.robots.ox.ac.uk", 443)  # where tfds downloads oxford_iiit_pet 4.0.0 from
OXFORD_TRIMAP_VALUES = (1, 2, 3)  # pet, background, border; shifted to 0, 1, 2


class Split(Choice):
    TRAIN = "train"
    VAL = "val"  # a seeded share of trainval, held out from training
    TEST = "test"


SPLITS = tuple(s.value for s in Split)


class DataError(EdgesegError, ValueError):
    """A dataset that cannot be used: missing, empty, or with a bad mask (the message names the file)."""


class NotADataset(DataError, NotFound):
    """A dataset named that is not there, or a folder in neither layout (exit code 2)."""


@dataclass
class SegmentationData:
    """Images and masks of one split, resized to ``size`` and held in memory."""

    images: np.ndarray  # (N, height, width, 3) uint8 RGB
    masks: np.ndarray  # (N, height, width) uint8, 0-based classes
    names: list[str]
    source: str
    split: str
    skipped: list[str] = field(default_factory=list)
    binary: bool = False  # binary masks (no border class): metrics leave the border out
    name: str = ""  # the source's short name in reports (see edgeseg.data.sources.DataSource.name)

    def __len__(self) -> int:
        return len(self.names)

    def summary(self) -> dict:
        return {"source": self.source, "split": self.split, "images": len(self), "skipped": self.skipped}


DATASET_LAYOUTS = ("images/ with annotations/trimaps/ (Oxford-IIIT Pet layout) or images/ with masks/ (binary masks of "
                   "the same file names)")


def detect_layout(root: Path) -> str:
    """'oxford' (images/ + annotations/trimaps/) or 'masks' (images/ + masks/)."""
    if root.exists() and not root.is_dir():
        raise NotADataset(f"{root} is a file; expected a dataset folder: {DATASET_LAYOUTS}")
    if not root.is_dir():
        raise NotADataset(f"dataset folder {root} does not exist")
    if (root / "images").is_dir() and (root / "annotations" / "trimaps").is_dir():
        return "oxford"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "masks"
    raise NotADataset(f"{root} is not a dataset folder: expected {DATASET_LAYOUTS}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, received {split!r}")


TEST_FRACTION, TEST_SEED = 0.1, 0  # the test split of a folder without trainval.txt / test.txt


def _split_names(names: list[str], split: str, val_fraction: float, seed: int) -> list[str]:
    """Deterministic train/val split of a trainval list (val = the last ``val_fraction`` of a shuffle)."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = int(round(len(names) * val_fraction))
    keep = order[len(names) - n_val:] if split == "val" else order[: len(names) - n_val]
    return [names[i] for i in sorted(keep)]


def oxford_list(list_file: Path, known: Collection[str] = ()) -> list[str]:
    """The image names of a split list: "NAME CLASS_ID SPECIES BREED_ID" lines (Oxford-IIIT Pet's) or "NAME" lines.
    A NAME may hold spaces, as photos' own names do ("IMG 0001"): it is the line less its three numbers, or the whole
    line; where that is none of the ``known`` names but the line's first word is, the first word."""
    names = []
    for line in list_file.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        numbered = len(fields) >= 4 and all(f.isdigit() for f in fields[-3:])
        name = line.rsplit(maxsplit=3)[0].strip() if numbered else line.strip()
        names.append(fields[0] if name not in known and fields[0] in known else name)
    return names


def _oxford_pairs(root: Path, split: str, val_fraction: float, seed: int) -> list[tuple[str, Path, Path]]:
    list_file = root / "annotations" / ("test.txt" if split == "test" else "trainval.txt")
    if not list_file.is_file():
        raise DataError(f"{list_file} not found: the Oxford-IIIT Pet layout needs annotations/trainval.txt and test.txt")
    images = {p.stem: p for p in image_files(root / "images")}  # Oxford's are JPEGs; a folder made alike may not be
    names = _listed(list_file, images, root / "images")
    if split != "test":
        names = _split_names(names, split, val_fraction, seed)
    return [(n, images[n], root / "annotations" / "trimaps" / f"{n}.png") for n in names]


def _listed(list_file: Path, images: dict[str, Path], folder: Path) -> list[str]:
    """The names of a split list, each of which must have one of ``images`` (of ``folder``): a DataError says how
    many have none, and names one."""
    names = oxford_list(list_file, images)
    missing = [n for n in names if n not in images]
    if missing:
        raise DataError(f"{len(missing)} names in {list_file} have no image in {folder}, e.g. {missing[0]!r}")
    return names


def _mask_folder_pairs(root: Path, split: str, val_fraction: float, seed: int) -> list[tuple[str, Path, Path]]:
    masks = {p.stem: p for p in image_files(root / "masks")}
    images = {p.stem: p for p in image_files(root / "images")}
    lists = {name: root / f"{name}.txt" for name in ("trainval", "test")}
    if all(f.is_file() for f in lists.values()):  # the folder's own split
        names = _listed(lists["test" if split == "test" else "trainval"], images, root / "images")
        if split != "test":
            names = _split_names(names, split, val_fraction, seed)
    else:  # no split lists: test = a fixed tenth (every command and every run's --seed hold out the same), then
        # val = the run's seeded val_fraction of the rest
        test = set(_split_names(sorted(images), "val", TEST_FRACTION, TEST_SEED))
        names = sorted(test) if split == "test" else _split_names(sorted(set(images) - test), split, val_fraction, seed)
    pairs = []
    for name in names:
        if name not in masks:
            raise DataError(f"no mask for {images[name]}: expected {root / 'masks' / name}.png")
        pairs.append((name, images[name], masks[name]))
    return pairs


BINARY_MASK_TOPS = (1, 255, 65535)  # a binary mask's foreground value, with 0 for background


def _convert_mask(mask: np.ndarray, layout: str, path: Path) -> np.ndarray:
    if mask.ndim == 3 and np.all(mask == mask[..., :1]):
        mask = mask[..., 0]
    elif mask.ndim == 3:  # label tools export a binary mask as a colour on black (a class's colour)
        colour = mask[..., :3]  # an alpha channel aside
        colours = np.unique(colour.reshape(-1, colour.shape[2]), axis=0)
        if layout == "oxford" or len(colours) != 2 or colours[0].any():
            raise DataError(f"mask {path} has {len(colours)} colours; expected a single-channel label image"
                            + ("" if layout == "oxford" else ", or black and one colour"))
        mask = colour.any(axis=2).astype(np.uint8)
    values = np.unique(mask)
    if layout == "oxford":
        if not set(values.tolist()) <= set(OXFORD_TRIMAP_VALUES):
            raise DataError(f"trimap {path} has values {values.tolist()}; expected 1 (pet), 2 (background), 3 (border)")
        return (mask - 1).astype(np.uint8)
    for top in BINARY_MASK_TOPS:  # 0 and one of these: 16-bit label exports use their type's maximum
        if set(values.tolist()) <= {0, top}:
            fg = mask == top
            break
    else:
        lossy = " (JPEG's compression blurs the values at edges: save masks as PNG)" if path.suffix.lower() in (
            ".jpg", ".jpeg") else ""
        tops = ", ".join(f"0/{top}" for top in BINARY_MASK_TOPS[:-1]) + f" or 0/{BINARY_MASK_TOPS[-1]}"
        raise DataError(f"mask {path} has values {values[:8].tolist()}; expected a binary mask of {tops}{lossy}")
    return np.where(fg, 0, 1).astype(np.uint8)  # foreground -> pet, rest -> background


def as_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a size given as a square's side or as (height, width)."""
    return (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def _read_labelled(image_path: Path, mask_path: Path, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """A BGR image and its 0-based labels at the image's own size. An unreadable image raises ImageError (the
    callers skip it); a missing, unreadable or differently sized mask is a DataError naming it."""
    image = read_image(image_path)
    mask = read_label(mask_path)
    if mask is None:
        raise DataError(f"mask {mask_path} for image {image_path} is missing or unreadable")
    if mask.shape[:2] != image.shape[:2]:
        raise DataError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]}; they must match"
        )
    return image, _convert_mask(mask, layout, mask_path)


def _read_pair(pair, layout: str, size: int | tuple[int, int], outline: Outline):
    """(name, image, labels, None) at ``size``, or (name, None, None, why the image cannot be used)."""
    name, image_path, mask_path = pair
    try:
        image, mask = _read_labelled(image_path, mask_path, layout)
    except ImageError as exc:
        return name, None, None, str(exc)
    if layout == "masks":
        mask = mark_outline(mask, outline)  # at the label's own size, where the band's width is defined
    h, w = as_hw(size)
    image = cv2.cvtColor(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return name, image, resize_mask(mask, size), None


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a label mask to ``size`` (a side or (height, width)) with nearest neighbour, so no label appears
    that was not there."""
    h, w = as_hw(size)
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def _split_pairs(root: Path, layout: str, split: str, val_fraction: float, seed: int) -> list[tuple[str, Path, Path]]:
    """The (name, image, mask) of each image of ``split``; a DataError says why a split is empty."""
    pairs = (_oxford_pairs if layout == "oxford" else _mask_folder_pairs)(root, split, val_fraction, seed)
    if not pairs:
        why = {"val": f": --val-fraction {val_fraction:g} of its training images rounds to none; raise it, or add "
                      "images",
               "test": ": its test list is empty, or the tenth held out of a small folder rounds to none; add images"}
        raise DataError(f"{root} has no images in its {split} split{why.get(split, '')}")
    return pairs


def load_folder(
    root: str | Path, split: str, size: int | tuple[int, int], val_fraction: float = 0.1, seed: int = 0,
    limit: int | None = None, progress: bool = True, outline: Outline = Outline.NONE,
) -> SegmentationData:
    """Read one split of a local dataset folder into memory, resized to ``size`` (a side, or (height, width)).

    Unreadable images are skipped with a warning (and listed in ``skipped``); a bad or missing mask is a
    :class:`DataError` naming the file. ``outline`` marks the outline of binary masks (for training).
    """
    _check_split(split)
    root = Path(root)
    layout = detect_layout(root)
    pairs = _split_pairs(root, layout, split, val_fraction, seed)
    if limit:
        pairs = pairs[:limit]
    images, masks, names, skipped = [], [], [], []
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda p: _read_pair(p, layout, size, outline), pairs)
        if progress:
            from edgeseg.progress import track

            results = track(results, total=len(pairs), description=f"Reading {split} ({len(pairs)} images)")
        for name, image, mask, why in results:
            if why:
                skipped.append((name, why))
                continue
            names.append(name)
            images.append(image)
            masks.append(mask)
    for _, why in skipped:  # after the readers, whose decoding silences native stderr (fd 2) while it runs
        log.warning("skipping %s", why)
    if not names:
        raise DataError(f"none of the {len(pairs)} images in {root} ({split}) could be read")
    return SegmentationData(np.stack(images), np.stack(masks), names, str(root.resolve()), split, [n for n, _ in skipped],
                            binary=layout == "masks")


def _tfds_split(split: str, val_fraction: float) -> str:
    cut = int(round(100 * (1 - val_fraction)))
    return {"train": f"train[:{cut}%]", "val": f"train[{cut}%:]", "test": "test"}[split]


def _can_reach(host: tuple[str, int], timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(host, timeout=timeout).close()
        return True
    except OSError:
        return False


@contextmanager
def _own_temp_folder():
    """Temporary files inside the block go to a folder removed after it: tfds leaves a ``tmp*tfds`` folder in
    /tmp each time it looks for its dataset's metadata (``DatasetInfo.initialize_from_bucket``)."""
    with tempfile.TemporaryDirectory(prefix="edgeseg-tfds-") as scratch:
        previous, tempfile.tempdir = tempfile.tempdir, scratch
        try:
            yield
        finally:
            tempfile.tempdir = previous


def _tfds_prepared(data_dir: str | None):
    """tfds's Oxford-IIIT Pet builder, downloaded and prepared on first use; fails within seconds, not minutes of
    retries, when it is not prepared and its host cannot be reached."""
    import tensorflow_datasets as tfds

    with _own_temp_folder():
        builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
        if not builder.is_prepared():
            if not _can_reach(TFDS_HOST):
                raise DataError(
                    f"tfds dataset {TFDS_NAME} is not downloaded and {TFDS_HOST[0]} cannot be reached (offline?). "
                    "Point --data at a local copy in the Oxford-IIIT Pet layout (images/, annotations/trimaps/, "
                    "annotations/trainval.txt, annotations/test.txt) or at a folder with images/ and masks/."
                )
            builder.download_and_prepare()
    return builder


def load_tfds(
    split: str, size: int | tuple[int, int], data_dir: str | None = None, val_fraction: float = 0.1,
    limit: int | None = None, progress: bool = True,
):
    """Oxford-IIIT Pet from tensorflow-datasets (downloads on first use: :func:`_tfds_prepared`), as
    :class:`SegmentationData`."""
    import tensorflow_datasets as tfds

    ds = _tfds_prepared(data_dir).as_dataset(split=_tfds_split(split, val_fraction))
    if limit:
        ds = ds.take(limit)
    images, masks, names = [], [], []
    items = tfds.as_numpy(ds)
    if progress:
        from edgeseg.progress import track

        items = track(items, description=f"Reading {TFDS_NAME} {split}")
    for item in items:
        name = item["file_name"].decode()
        mask = _convert_mask(item["segmentation_mask"], "oxford", Path(f"tfds:{TFDS_NAME}/{name}"))
        images.append(cv2.resize(item["image"], as_hw(size)[::-1], interpolation=cv2.INTER_AREA))
        masks.append(resize_mask(mask, size))
        names.append(name)
    if not names:
        raise DataError(f"tfds {TFDS_NAME} split {split} is empty")
    return SegmentationData(np.stack(images), np.stack(masks), names, f"tfds:{TFDS_NAME}", split)


def source_here(source: str) -> bool:
    """Whether a dataset can be read here: tfds's Oxford-IIIT Pet (downloaded on first use), or a folder that exists."""
    return source == TFDS_NAME or Path(source).exists()


def check_source(source: str) -> None:
    """Refuse a dataset that is neither tfds's Oxford-IIIT Pet nor an existing folder (:class:`NotADataset`)."""
    if not source_here(source):
        raise NotADataset(f"dataset {source!r} not found: give 'oxford_iiit_pet' (tfds) or an existing folder")


def load_split(
    source: str, split: str, size: int | tuple[int, int], *, val_fraction: float = 0.1, seed: int = 0,
    limit: int | None = None, progress: bool = True, data_dir: str | None = None, outline: Outline = Outline.NONE,
) -> SegmentationData:
    """Load ``split`` of ``source``: 'oxford_iiit_pet' (tfds, stored under ``data_dir``) or a local folder.

    tfds splits are fixed slices of its train split, so ``seed`` only shuffles a folder's split.
    """
    _check_split(split)
    if source == TFDS_NAME:
        return load_tfds(split, size, data_dir=data_dir, val_fraction=val_fraction, limit=limit, progress=progress)
    check_source(source)
    return load_folder(source, split, size, val_fraction=val_fraction, seed=seed, limit=limit, progress=progress,
                       outline=outline)


def iter_full_resolution(source: str, split: str, *, val_fraction: float = 0.1, seed: int = 0,
                         limit: int | None = None, data_dir: str | None = None):
    """Yield ``(name, BGR image, 0-based labels)`` of ``split`` at each image's own resolution.

    The same splits as :func:`load_split`; for measuring the mask a user sees (the runtime resizes its
    mask to the frame). Unreadable images are skipped with a warning; a bad mask is a DataError, as there.
    """
    _check_split(split)
    if source == TFDS_NAME:
        import tensorflow_datasets as tfds

        ds = _tfds_prepared(data_dir).as_dataset(split=_tfds_split(split, val_fraction))
        for item in tfds.as_numpy(ds.take(limit) if limit else ds):
            name = item["file_name"].decode()
            labels = _convert_mask(item["segmentation_mask"], "oxford", Path(f"tfds:{TFDS_NAME}/{name}"))
            yield name, cv2.cvtColor(item["image"], cv2.COLOR_RGB2BGR), labels
        return
    root = Path(source)
    layout = detect_layout(root)
    pairs = _split_pairs(root, layout, split, val_fraction, seed)
    for name, image_path, mask_path in pairs[:limit] if limit else pairs:
        try:
            image, labels = _read_labelled(image_path, mask_path, layout)
        except ImageError as exc:
            log.warning("skipping %s", exc)
            continue
        yield name, image, labels


def backgrounds_root(folder: str | Path) -> Path:
    """Where a backgrounds folder's photos are: its images/ subfolder (a dataset folder serves as it is), or itself."""
    folder = Path(folder)
    return folder / "images" if (folder / "images").is_dir() else folder


def load_backgrounds(folders: list[str | Path], size: int | tuple[int, int], limit: int | None = None) -> np.ndarray:
    """Photos to paste training subjects onto, as (N, height, width, 3) uint8 RGB: every image of each folder (or
    of its images/ subfolder, so a dataset folder serves as it is). Unreadable photos are skipped."""
    parts = []
    for folder in map(Path, folders):
        root = backgrounds_root(folder)
        if not root.is_dir():
            raise DataError(f"backgrounds folder {folder} does not exist")
        parts.append(read_photos(image_files(root)[:limit], size, "backgrounds"))
        if not len(parts[-1]):
            raise DataError(f"backgrounds folder {folder} holds no readable photos")
    return np.concatenate(parts)


def read_photos(files, size: int | tuple[int, int], purpose: str) -> np.ndarray:
    """Photos as (N, height, width, 3) uint8 RGB (INTER_AREA); an unreadable one is skipped with a warning that
    names it and what it was for."""
    photos = []
    for path in files:
        try:
            image = read_image(path)
        except ImageError as exc:
            log.warning("%s: skipping %s", purpose, exc)
            continue
        photos.append(cv2.cvtColor(cv2.resize(image, as_hw(size)[::-1], interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    return np.stack(photos) if photos else np.empty((0, *as_hw(size), 3), np.uint8)
