"""``edgeseg label``: training data made by a bigger model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgeseg.cli.app import app, console, split_list, writable
from edgeseg.cli.options import MODEL_PANEL, ForegroundOpt, JsonOpt, MaxPixelsOpt, ModelOpt, ThreadsOpt, segmenter_options
from edgeseg.data.label import LabelOptions, Layout
from edgeseg.runtime.image_io import MAX_PIXELS

L = LabelOptions  # the defaults: one home


@app.command()
def label(
    images: Path = typer.Argument(..., help="Folder of unlabelled images."),
    out: Path = typer.Option(..., help="Dataset folder to write (rerunning resumes it)."),
    model: ModelOpt = None,
    foreground: ForegroundOpt = None,
    teacher2: Optional[str] = typer.Option(
        None, help="A second teacher: keep only images where both agree (see --min-agreement).",
        rich_help_panel=MODEL_PANEL),
    teacher2_foreground: Optional[str] = typer.Option(
        None, help="--foreground for the second teacher.", rich_help_panel=MODEL_PANEL),
    threads: ThreadsOpt = None,
    flip: bool = typer.Option(L.flip, "--flip", help="Average with the mirrored image (test-time augmentation)."),
    scales: str = typer.Option("1", help="Image scales to average over, e.g. 0.75,1,1.25."),
    layout: Layout = typer.Option(L.layout, metavar="LAYOUT", help="oxford (trimaps with a border band) or masks "
                                  "(images/ + masks/)."),
    border_px: Optional[int] = typer.Option(L.border_px, min=1, max=255, help="Trimap band width in pixels (default: 3% of "
                                            "the longer side)."),
    min_fg: float = typer.Option(L.min_fg, min=0.0, max=1.0, help="Reject masks covering less of the image.",
                                 rich_help_panel="Filters"),
    max_fg: float = typer.Option(L.max_fg, min=0.0, max=1.0, help="Reject masks covering more of the image.",
                                 rich_help_panel="Filters"),
    min_largest: float = typer.Option(L.min_largest, min=0.0, max=1.0, help="Reject masks whose largest part holds less of "
                                      "the foreground.", rich_help_panel="Filters"),
    min_agreement: Optional[float] = typer.Option(
        None, min=0.0, max=1.0, help=f"With two teachers: reject below this mask IoU (default {L.min_agreement}).",
        rich_help_panel="Filters"),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    as_json: JsonOpt = False,
):
    """Label a folder of images with a teacher model, for training a smaller one (distillation).

    Example: edgeseg label photos/ --out data/my-pets --model big.tflite --foreground 8,12 --flip
    """
    from edgeseg.data.label import label_folder

    for given, option in ((teacher2_foreground, "--teacher2-foreground"), (min_agreement, "--min-agreement")):
        if given is not None and not teacher2:  # it would be ignored without a word
            raise typer.BadParameter("it is for a second teacher: give --teacher2 MODEL too", param_hint=option)
    teachers = [segmenter_options(model, "image", None, foreground, threads=threads)]
    if teacher2:
        teachers.append(segmenter_options(teacher2, "image", None, teacher2_foreground, threads=threads))
    try:
        scale_values = tuple(float(s) for s in split_list(scales))
    except ValueError:
        raise typer.BadParameter(f"{scales!r}: expected numbers, e.g. 0.75,1,1.25", param_hint="--scales") from None
    writable(out, "--out", folder=True)
    options = LabelOptions(teachers, flip=flip, scales=scale_values, layout=layout, border_px=border_px,
                           min_fg=min_fg, max_fg=max_fg, min_largest=min_largest,
                           min_agreement=L.min_agreement if min_agreement is None else min_agreement,
                           max_pixels=max_pixels)  # a SettingError names its option
    report = label_folder(images, out, options, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    reasons = ", ".join(f"{n} {r}" for r, n in report.reasons().items())
    rejected = f"rejected {len(report.rejected)} ({reasons})" if reasons else "rejected none"
    resumed = f"{report.resumed} decided by an earlier run; " if report.resumed else ""
    console.print(f"kept {len(report.kept)}, {rejected}; {resumed}dataset: {out}", soft_wrap=True)
