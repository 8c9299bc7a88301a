"""``edgeseg evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgeseg.cli.app import app, console, need_train_extra, plural, writable
from edgeseg.cli.options import (MASK_PANEL, EdgesOpt, ForegroundOpt, InputRangeOpt, MinBlobOpt, OutputKindOpt,
                                 SoftnessOpt, ThresholdOpt, bounds, choices, foreground_option)
from edgeseg.cli.tables import by_source, mask_table, metrics_table, table
from edgeseg.io import atomic_write_text
from edgeseg.data import Split
from edgeseg.runtime.segmenter import SegmenterOptions

S = SegmenterOptions  # the mask options' defaults are the runtime's: one home


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="A .keras model, run folder, .tflite/.onnx file or shipped model name."),
    data: list[str] = typer.Option(..., help="'oxford_iiit_pet' or a dataset folder; repeat for several (each "
                                   "scored on its own, and their mean)."),
    split: Split = typer.Option(Split.TEST, metavar="SPLIT", help=f"{choices(Split)}."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many images."),
    out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here."),
    threshold: ThresholdOpt = S.threshold,
    softness: SoftnessOpt = S.softness,
    edges: EdgesOpt = S.edges,
    min_blob: MinBlobOpt = S.min_blob,
    foreground: ForegroundOpt = None,
    input_range: InputRangeOpt = None,
    output_kind: OutputKindOpt = None,
    flicker: int = typer.Option(0, min=0, max=10000, help="Also measure the video mask's flicker on shaken, noisy "
                                "clips made from the first N photos of each dataset (0: off)."),
    smoothing: Optional[float] = typer.Option(None, **bounds("smoothing"), help="With --flicker: weight of the "
                                              f"newest mask in the video mask's running average (default {S.smoothing}).",
                                              rich_help_panel=MASK_PANEL),
    sweep: list[str] = typer.Option([], help="Score every combination of settings, one row each: NAME=V1,V2 with NAME "
                                    "threshold, softness, edges, min_blob or smoothing (repeatable)."),
    data_dir: Optional[str] = typer.Option(None, help="Where tfds keeps its datasets (as train --data-dir)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Score the mask a user sees against a dataset's labels, at each image's own resolution.

    The subject's IoU with border pixels ignored (the headline), fg IoU, boundary F, background leak,
    semi-transparent share; with --flicker, the video mask's mean change per frame where nothing moves.
    """
    from edgeseg.data import DataError, parse_sources
    from edgeseg.evaluation.evaluate import evaluate as run_eval
    from edgeseg.evaluation.evaluate import needs_tensorflow
    from edgeseg.evaluation.sweep import parse_sweep

    if out:
        writable(out, "--out", suffix=".json")
    if needs_tensorflow(model, data):
        need_train_extra()
    try:
        data = [s.location for s in parse_sources(data)]
    except DataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None

    settings = {"threshold": threshold, "softness": softness, "edges": edges.value, "min_blob": min_blob}
    overrides = {"foreground": foreground_option(foreground), "input_range": input_range and input_range.value,
                 "output_kind": output_kind and output_kind.value}  # a third-party model's, as predict takes them
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if smoothing is not None and not flicker:  # single photos have no earlier mask: it would change nothing
        raise typer.BadParameter("it smooths the video mask, whose flicker --flicker N measures; add --flicker",
                                 param_hint="--smoothing")
    if flicker:
        settings["smoothing"] = smoothing = S.smoothing if smoothing is None else smoothing
    if sweep:
        return _sweep(model, data, split.value, limit, settings, parse_sweep(sweep), flicker, out, as_json, data_dir)
    report = run_eval(model, data, split.value, limit, progress=not as_json, options=settings, flicker_clips=flicker,
                      data_dir=data_dir)
    result = report.to_dict()
    if out:
        atomic_write_text(out, json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console.print(mask_table(f"{model} ({split} split, {plural(report.images, 'image')}, runtime mask)",
                             by_source(report.mask_by_source, report.mask), report.subject))
    if report.flicker:
        first = next(iter(report.flicker.values()))
        console.print(table(f"Flicker: mean |alpha_t - alpha_t-1| where nothing moves ({first.frames}-frame clips, "
                            f"{first.shake_px} px shake, noise {first.noise:g} levels, smoothing {smoothing:g})",
                            ["", "clips", "flicker"], [[name, str(f.clips), f"{f.flicker:.5f}"]
                                                       for name, f in report.flicker.items()]))
    for name, metrics in result["metrics"].items():
        console.print(metrics_table(f"{name}: class argmax at the model's input size", {model.name: metrics}))


def _sweep(model, data, split, limit, settings, grid, flicker, out, as_json, data_dir) -> None:
    from edgeseg.evaluation.sweep import sweep

    rows = sweep(model, data, split, limit, settings, grid, flicker, progress=not as_json, data_dir=data_dir)
    result = {"model": str(model), "data": data, "split": split, "settings": settings,
              "sweep": [row.to_dict() for row in rows]}
    if out:
        atomic_write_text(out, json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    subject = rows[0].report.subject
    columns = [*grid, f"{subject} IoU", "boundary F", "bg leak", "semi-transparent", *(["flicker"] if flicker else [])]
    lines = []
    for row in rows:
        mask, report = row.report.mask, row.report
        cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in row.swept.values()]
        cells += [f"{mask.pet_iou:.4f}", f"{mask.boundary_f:.4f}", f"{mask.background_leak:.4f}",
                  f"{mask.semi_transparent:.4f}"]
        if flicker:
            cells.append(f"{sum(f.flicker for f in report.flicker.values()) / len(report.flicker):.5f}")
        lines.append(cells)
    title = f"{model} ({split} split, {plural(rows[0].report.images, 'image')}, mean of {plural(len(data), 'dataset')})"
    console.print(table(title, columns, lines, left=len(grid)))
