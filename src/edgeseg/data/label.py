"""``edgeseg label``: auto-annotation, so a big model's masks can train a small one.

Runs one teacher (or two, with an agreement filter) over a folder of unlabelled images through the
runtime, with optional flip and multi-scale test-time augmentation, filters the masks a good
pseudo-labelled set should not contain, and writes a dataset ``edgeseg train --data`` reads: the Oxford
layout (trimaps with a border band) or ``images/`` + ``masks/``. Every file is written atomically; a
rerun skips the images already decided. Needs no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from edgeseg.choice import Choice
from edgeseg.errors import NotFound, SettingError
from edgeseg.io import atomic_path, atomic_write_text, folder_lock, valid_utf8
from edgeseg.runtime.image_io import (
    MAX_PIXELS, MAX_PIXELS_OPTION, ImageError, heic_error, heic_files, image_files, no_images, read_image, write_image,
)
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions


class Layout(Choice):
    """The dataset folder ``label`` writes."""

    OXFORD = "oxford"  # images/ + annotations/trimaps/ (trimaps with a border band)
    MASKS = "masks"  # images/ + masks/ (binary 0/255 masks)


SUMMARY = "label_summary.json"
UNREADABLE = "unreadable"  # the reason given for images that cannot be decoded; a rerun tries them again
MAX_SCALE = 4.0  # test-time scales: beyond this an upscaled photo costs memory, not accuracy
BAND_FRACTION = 0.0306  # border band / longer side: the median of real Oxford-IIIT Pet trimaps


@dataclass
class LabelOptions:
    """How to label and what to keep.

    Args:
        teachers: one or two teacher settings (model and, for third-party models, foreground classes).
        flip: average each teacher's probability with that of the mirrored image.
        scales: image scales to average over (1.0 alone: no multi-scale).
        layout: "oxford" (trimaps with a border band) or "masks" (binary 0/255 masks).
        border_px: the trimap band's width; None: 3.06% of the longer side, at least 3 px.
        min_fg, max_fg: the foreground's share of the image must lie in this range.
        min_largest: the largest connected component's share of the foreground.
        min_agreement: IoU of the two teachers' masks (with two teachers).
        test_fraction: share of kept images listed in the test split (by a hash of the name: stable).
        max_pixels: refuse larger images before decoding them.
    """

    teachers: list[SegmenterOptions]
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    layout: Layout = Layout.OXFORD
    border_px: int | None = None
    min_fg: float = 0.03
    max_fg: float = 0.97
    min_largest: float = 0.8
    min_agreement: float = 0.6
    test_fraction: float = 0.1
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        try:
            self.layout = Layout(self.layout)
        except ValueError:
            raise SettingError("layout", f"layout must be one of {', '.join(x.value for x in Layout)}, received "
                               f"{self.layout!r}") from None
        if not 1 <= len(self.teachers) <= 2:
            raise ValueError(f"label takes one or two teachers, received {len(self.teachers)}")
        if not self.scales or not all(0 < s <= MAX_SCALE for s in self.scales):
            raise SettingError("scales", f"scales must lie in (0, {MAX_SCALE}], received "
                               f"{', '.join(map(str, self.scales)) or 'none'}")
        if self.layout == Layout.MASKS and self.border_px is not None:
            raise SettingError("border_px", "it is the width of the Oxford layout's trimap band; the masks layout has "
                               "none (leave --border-px out, or use --layout oxford)")
        twice = next((s for i, s in enumerate(self.scales) if s in self.scales[:i]), None)
        if twice is not None:  # run twice, it would weigh twice in the average
            raise SettingError("scales", f"{twice} is named twice: give each scale once")
        if self.min_fg >= self.max_fg:
            raise SettingError("min_fg", f"the least foreground ({self.min_fg}) must be below the most (--max-fg "
                               f"{self.max_fg}): no mask could be kept")

    def decisive(self) -> dict:
        """The settings a kept or rejected image depends on, as its summary stores them."""
        names = ("flip", "scales", "layout", "border_px", "min_fg", "max_fg", "min_largest", "min_agreement")
        settings = {n: getattr(self, n) for n in names} | self.teacher_record()
        return json.loads(json.dumps(settings))  # tuples as lists, as read back

    def teacher_record(self) -> dict:
        """The teachers as the summary stores them: each one's model and foreground classes."""
        return {"teachers": [str(t.model) for t in self.teachers], "foreground": [t.foreground for t in self.teachers]}


@dataclass
class LabelReport:
    """What a labelling run kept and rejected, and why."""

    out: str
    images: str = ""  # the folder of photos labelled (resolved): a dataset folder holds the labels of one
    kept: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # image name -> reason
    resumed: int = 0  # images decided by an earlier run and skipped now

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for reason in self.rejected.values():
            key = reason.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        return counts

    def to_dict(self) -> dict:
        return {**asdict(self), "kept_count": len(self.kept), "rejected_count": len(self.rejected),
                "reasons": self.reasons()}


def teacher_probability(segmenter: Segmenter, image: np.ndarray, flip: bool, scales: Iterable[float]) -> np.ndarray:
    """The teacher's foreground probability at the image's size, averaged over flips and scales."""
    h, w = image.shape[:2]
    total = np.zeros((h, w), np.float32)
    count = 0
    for s in scales:
        scaled = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                                   interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        for mirrored in (False, True) if flip else (False,):
            p = segmenter.segment(scaled[:, ::-1].copy() if mirrored else scaled)
            p = p[:, ::-1] if mirrored else p
            total += p if s == 1.0 else cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)
            count += 1
    return total / count


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Drop foreground specks under 0.1% of the image and fill enclosed holes under 0.2%."""
    area = mask.size
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= 0.001 * area
    mask = keep[labels]
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    h, w = mask.shape
    for i in range(1, n):
        x, y, bw, bh, size = stats[i]
        touches_edge = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches_edge and size < 0.002 * area:
            mask[labels == i] = True
    return mask


def largest_share(mask: np.ndarray) -> float:
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return 0.0
    return float(stats[1:, cv2.CC_STAT_AREA].max() / stats[1:, cv2.CC_STAT_AREA].sum())


def trimap(mask: np.ndarray, band_px: int) -> np.ndarray:
    """Oxford trimap (1 pet, 2 background, 3 border) with a band of ``band_px`` centred on the outline."""
    half = band_px / 2
    m = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)  # to the nearest background pixel
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)  # to the nearest pet pixel
    out = np.full(mask.shape, 2, np.uint8)
    out[mask] = 1
    out[(mask & (inside <= half)) | (~mask & (outside <= half))] = 3
    return out


def _decide(probs: list[np.ndarray], options: LabelOptions) -> tuple[np.ndarray | None, str]:
    masks = [clean_mask(p >= 0.5) for p in probs]
    if len(masks) == 2:
        inter, union = np.count_nonzero(masks[0] & masks[1]), np.count_nonzero(masks[0] | masks[1])
        agreement = inter / union if union else 1.0
        if agreement < options.min_agreement:
            return None, f"teachers disagree: IoU {agreement:.2f} < {options.min_agreement}"
    mask = clean_mask(np.mean(probs, axis=0) >= 0.5)
    share = np.count_nonzero(mask) / mask.size
    if share < options.min_fg:
        return None, f"too little foreground: {share:.1%} < {options.min_fg:.0%}"
    if share > options.max_fg:
        return None, f"too much foreground: {share:.1%} > {options.max_fg:.0%}"
    largest = largest_share(mask)
    if largest < options.min_largest:
        return None, f"fragmented: largest component {largest:.0%} of the foreground < {options.min_largest:.0%}"
    return mask, ""


def _write(name: str, source: Path, image: np.ndarray, mask: np.ndarray, out: Path, options: LabelOptions) -> None:
    if options.layout == "oxford":  # its loader reads images/NAME.jpg
        image_path = out / "images" / f"{name}.jpg"
        label_path = out / "annotations" / "trimaps" / f"{name}.png"
        label = trimap(mask, options.border_px or max(3, round(BAND_FRACTION * max(mask.shape))))
    else:
        image_path = out / "images" / f"{name}{source.suffix.lower()}"
        label_path, label = out / "masks" / f"{name}.png", mask.astype(np.uint8) * 255
    with atomic_path(image_path) as tmp:
        if source.suffix.lower() == image_path.suffix:
            shutil.copyfile(source, tmp)  # the original bytes
        else:
            write_image(tmp, image, (cv2.IMWRITE_JPEG_QUALITY, 95))
    with atomic_path(label_path) as tmp:  # last: a label on disk means its image is there too
        write_image(tmp, label)


def _in_test(name: str, fraction: float) -> bool:
    return zlib.crc32(name.encode()) % 1000 < fraction * 1000


def _write_lists(report: LabelReport, out: Path, options: LabelOptions) -> None:
    """The split lists (by a hash of each name: labelling more photos never moves one between splits) where the
    layout's reader looks for them, and the summary."""
    kept = sorted(report.kept)
    lists = out / "annotations" if options.layout == "oxford" else out
    for split, names in (("test", [n for n in kept if _in_test(n, options.test_fraction)]),
                         ("trainval", [n for n in kept if not _in_test(n, options.test_fraction)])):
        atomic_write_text(lists / f"{split}.txt", "".join(f"{n} 0 0 0\n" for n in names))
    summary = {**report.to_dict(), "options": {k: v for k, v in asdict(options).items() if k != "teachers"},
               **options.teacher_record()}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=2))


def _previous(images: Path, out: Path, options: LabelOptions) -> dict[str, str]:
    """Images an earlier run rejected, and why; refuses to resume a run of other photos, or whose decisions used
    other settings."""
    path = out / SUMMARY
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text())
        rejected = dict(summary.get("rejected", {}))
        was = {**summary.get("options", {}), **{k: summary[k] for k in options.teacher_record() if k in summary}}
        labelled = summary.get("images")
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return {}  # damaged: decide those images again
    if labelled and labelled != str(images.resolve()):  # its lists and names are those photos': not to be mixed
        raise ValueError(f"{out} holds the labels of {labelled}: a rerun resumes that folder. Label {images} into "
                         f"a new folder and train on both: edgeseg train --data {out} --data NEW_FOLDER")
    # a setting an older edgeseg did not record is taken as it is now
    changed = [f"{k} {was[k]} -> {v}" for k, v in options.decisive().items() if k in was and was[k] != v]
    if changed:
        raise ValueError(f"{out} holds labels made with other settings ({', '.join(changed)}): a rerun resumes, "
                         "it does not redo. Label into a new folder, or delete this one to start again")
    return rejected


def label_folder(images: str | Path, out: str | Path, options: LabelOptions, progress: bool = True,
                 save_every: int = 50) -> LabelReport:
    """Label every image in ``images`` into the dataset folder ``out``; rerunning resumes."""
    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise NotFound(f"image folder {images} not found")
    files = image_files(images)
    if not files:
        raise FileNotFoundError(no_images(images))
    names = [p.stem for p in files]
    if len(set(names)) != len(names):  # a label is named by its photo's name
        twice = sorted(n for n, count in Counter(names).items() if count > 1)
        shared = [[p.name for p in files if p.stem == n] for n in twice[:3]]
        said = "; ".join(f"{', '.join(group[:-1])} and {group[-1]} share the name {Path(group[0]).stem}"
                         for group in shared)
        more = f" (and {len(twice) - 3} more names)" if len(twice) > 3 else ""
        raise ValueError(f"{images}: {said}{more}; a label is named by its photo's name: rename them first")
    with folder_lock(out, "labelling"):  # two at once would each write the lists of its own decisions
        return _label(images, files, names, out, options, progress, save_every)


def _label(images: Path, files: list[Path], names: list[str], out: Path, options: LabelOptions, progress: bool,
           save_every: int) -> LabelReport:
    report = LabelReport(str(out), str(images.resolve()))
    rejected = _previous(images, out, options)
    label_dir = out / ("annotations/trimaps" if options.layout == "oxford" else "masks")
    report.kept = [n for n in names if (label_dir / f"{n}.png").is_file()]  # written whole, or not at all
    # Images that could not be read are tried again: the file may have been replaced, or the read failed once.
    report.rejected = {n: r for n, r in rejected.items()
                       if n in names and n not in report.kept and not r.startswith(UNREADABLE)}
    done = set(report.kept) | set(report.rejected)
    report.resumed = len(done)
    todo = [p for p in files if p.stem not in done]
    for path in [p for p in todo if not valid_utf8(p.name)]:  # Linux allows any bytes; the split lists are UTF-8
        shown = os.fsencode(path.name).decode(errors="backslashreplace")
        report.rejected[path.stem] = f"{UNREADABLE}: {shown} is not a valid UTF-8 name, which the split lists need: rename it"
        todo.remove(path)
    # HEIC photos OpenCV cannot read, unless a converted copy of the same name is among the images
    report.rejected.update({p.stem: f"{UNREADABLE}: {heic_error(p)}" for p in heic_files(images) if p.stem not in names})
    out.mkdir(parents=True, exist_ok=True)
    _write_lists(report, out, options)  # the settings are on disk before the first label: a kill -9 keeps them
    # The raw probability (no soft threshold): the masks are cut at 0.5 after averaging.
    segmenters = [Segmenter(replace(t, running_mode=RunningMode.IMAGE, threshold=0.5, softness=0.5))
                  for t in options.teachers]
    try:
        items = todo
        if progress:
            from edgeseg.progress import track

            items = track(todo, description=f"Labelling {len(todo)} images")
        for i, path in enumerate(items, start=1):
            try:
                image = read_image(path, options.max_pixels, MAX_PIXELS_OPTION)
            except ImageError as exc:
                report.rejected[path.stem] = f"{UNREADABLE}: {exc}"
                continue
            probs = [teacher_probability(s, image, options.flip, options.scales) for s in segmenters]
            mask, why = _decide(probs, options)
            if mask is None:
                report.rejected[path.stem] = why
            else:
                _write(path.stem, path, image, mask, out, options)
                report.kept.append(path.stem)
            if i % save_every == 0:
                _write_lists(report, out, options)
    finally:
        for s in segmenters:
            s.close()
        if report.kept or report.rejected:
            _write_lists(report, out, options)
    return report
