"""Still images: files, folders and patterns in, one result image each out (``edgeseg predict``)."""

from __future__ import annotations

import glob
import mimetypes
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.contract import IMAGE_SUFFIXES
from edgeseg.errors import UsageError
from edgeseg.io import atomic_path
from edgeseg.runtime.effects import BLUR, EFFECTS, Effect
from edgeseg.runtime.image_io import (
    ALPHA_SUFFIXES, MAX_PIXELS, MAX_PIXELS_OPTION, ImageError, heic_error, heic_files, image_files, no_images,
    pattern_files, read_image, write_image,
)
from edgeseg.runtime.pipeline import STEP_STAGES, FrameProcessor
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions
from edgeseg.runtime.sources import VIDEO_SUFFIXES


@dataclass
class PredictReport:
    """What ``predict`` wrote, for which input, and what it could not do and why."""

    outputs: dict[str, str]  # input image -> output file
    failed: dict[str, str]  # input -> why it was skipped
    stage_ms: dict[str, float]
    delegate: dict


def expand_inputs(specs: list[str]) -> tuple[list[Path], dict[str, str]]:
    """Image files named by files, folders and glob patterns, in order; and the specs that name none."""
    files, failed = [], {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = image_files(path)
            files += found
            if not found:
                failed[spec] = no_images(path)
            else:  # beside the images: said one by one, as unreadable images are
                failed.update({str(p): heic_error(p) for p in heic_files(path)})
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            failed[spec] = (f"{spec} is a video: predict takes still images; use "
                            f"edgeseg webcam --source {spec} --output OUT.mp4")
        elif path.is_file():
            files.append(path)
        else:
            matches, found = pattern_files(spec)
            files += found
            if not matches:
                failed[spec] = f"{spec} matches no files" if glob.has_magic(spec) else f"{spec} not found"
            elif not found:  # a pipe, a symlink loop, or a pattern that matches only folders
                failed[spec] = (f"{spec} is not an image file or folder" if matches == [spec]
                                else f"{spec} matches no image files")
    return list(dict.fromkeys(files)), failed


def output_names(files: list[Path], suffix: str) -> list[str]:
    """One output file name per input, unique even where inputs share a stem (``a/x.jpg``, ``b/x.jpg``)."""
    names, seen = [], {}
    for path in files:
        base = f"{path.stem}_{suffix}"
        seen[base] = seen.get(base, 0) + 1
        names.append(f"{base}.png" if seen[base] == 1 else f"{base}-{seen[base]}.png")
    return names


def names_an_image(out: str | Path) -> bool:
    """``out`` is an image file's name (``cutout.png``), not a folder: predict writes its one image there."""
    out = Path(out)
    return out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir()


def output_paths(files: list[Path], effect: Effect, out: Path, transparent: bool,
                 folders: tuple[Path, ...] = ()) -> list[Path]:
    """Where each input's result goes: ``out`` itself when it names an image file (one input only), else a PNG
    per input in the folder ``out``. ``transparent``: the results have an alpha channel, which ``out``'s format
    must keep. Nothing may land on an input, nor in a folder of input images (``folders``), where the next run
    would read the results as photos."""
    if not names_an_image(out):
        if not out.is_dir() and (mimetypes.guess_type(out.name)[0] or "").startswith("image/"):  # x.gif: no folder
            raise UsageError(f"--out {out}: predict writes {', '.join(IMAGE_SUFFIXES)} images; name one of those, "
                             "or a folder")
        if out.resolve() in {f.resolve() for f in folders}:
            raise UsageError(f"--out {out} is the folder of input images: run again, predict would take its results "
                             "for photos; choose another folder")
        targets = [out / name for name in output_names(files, Effect(effect).value)]
    elif len(files) > 1:
        raise UsageError(f"--out {out} names one image file, but {len(files)} images were given: give a folder")
    elif transparent and out.suffix.lower() not in ALPHA_SUFFIXES:
        raise UsageError(f"--out {out}: {out.suffix} cannot keep remove-bg's transparency; use "
                         f"{', '.join(ALPHA_SUFFIXES)}, or --background #RRGGBB to key the background to a colour")
    else:
        targets = [out] * len(files)
    inputs = {f.resolve() for f in files}
    clash = next((t for t in targets if t.resolve() in inputs), None)
    if clash is not None:  # writing it would replace a photo of the user's, then read it back as an input
        raise UsageError(f"the output {clash} would replace an input of the same name; choose another --out")
    return targets


def predict_images(images: list[str], options: SegmenterOptions, effect: Effect, out: str | Path,
                   background=None, max_pixels: int = MAX_PIXELS, progress: bool = False,
                   blur: int = BLUR) -> PredictReport:
    """Apply ``effect`` to still images; write PNGs (remove-bg: with an alpha channel) into the folder ``out``,
    or one image to ``out`` when it names an image file (:func:`output_paths`).

    Every readable image is processed; the rest are listed in ``failed`` with the reason. ``progress``: a
    progress bar while it runs; ``blur``: blur-bg's strength.
    """
    from dataclasses import replace

    files, failed = expand_inputs(images)
    # an effect that video must key to a colour is transparent in a photo, unless given a colour
    transparent = EFFECTS[Effect(effect)].keyed_in_video and not isinstance(background, tuple)
    folders = tuple(Path(spec) for spec in images if Path(spec).is_dir())
    targets = output_paths(files, effect, Path(out), transparent, folders)
    outputs, history = {}, {k: [] for k in STEP_STAGES}
    with Segmenter(replace(options, running_mode=RunningMode.IMAGE)) as segmenter, \
            FrameProcessor(segmenter, effect, background, blur, video=False) as process:
        todo = jobs = list(zip(files, targets))
        if progress:
            from edgeseg.progress import track

            jobs = track(jobs, description=f"Segmenting {len(jobs)} images", transient=True)
        for index, (path, target) in enumerate(jobs):
            try:
                image = read_image(path, max_pixels, MAX_PIXELS_OPTION, alpha=True)
            except ImageError as exc:
                failed[str(path)] = str(exc)
                continue
            hidden = None
            if image.shape[2] == 4:  # a photo with transparency: what it hides stays hidden in the cutout
                image, hidden = np.ascontiguousarray(image[..., :3]), image[..., 3]
            result, timings = process(image)
            if hidden is not None and result.shape[2] == 4:
                result[..., 3] = (result[..., 3].astype(np.uint16) * hidden + 127) // 255
            for k in history:
                history[k].append(timings[k] * 1000)
            try:
                with atomic_path(target) as tmp:
                    write_image(tmp, result)
            except OSError as exc:  # a full disk: every later write would fail too
                failed[str(path)] = f"cannot write {target}: {exc.strerror or exc}"
                stopped = f"not tried: writing {target} failed ({exc.strerror or exc})"
                failed.update({str(p): stopped for p, _ in todo[index + 1:]})
                break
            outputs[str(path)] = str(target)
        delegate = segmenter.backend.details
    return PredictReport(outputs, failed, {k: round(statistics.median(v), 3) for k, v in history.items() if v}, delegate)
