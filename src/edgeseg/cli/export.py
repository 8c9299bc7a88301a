"""``edgeseg export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from edgeseg.cli.app import app, console, err, need_train_extra, split_list, writable
from edgeseg.cli.tables import export_table
from edgeseg.export.exporter import ExportOptions, resolve_source

E = ExportOptions  # the defaults: one home


@app.command("export")
def export_cmd(
    source: Path = typer.Argument(..., help="A run folder or a .keras model."),
    int8: bool = typer.Option(False, "--int8", help="Full-integer int8 artifacts (uint8 input)."),
    fp16: bool = typer.Option(False, "--fp16", help="float16-weight artifacts (TFLite)."),
    fp32: bool = typer.Option(False, "--fp32", help="fp32 artifacts (the default with no precision flag)."),
    dynamic: bool = typer.Option(False, "--dynamic", help="Dynamic-range TFLite (slow on x86; on request only)."),
    formats: str = typer.Option("tflite,onnx", help="Comma-separated formats: tflite, onnx."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: RUN/export)."),
    calib_data: list[str] = typer.Option([], help="Dataset, image folder or .npy for int8 calibration (repeatable; "
                                         "default: the training sources)."),
    calib_size: Optional[int] = typer.Option(None, min=1, help=f"Calibration images (default {E.calib_size})."),
    eval_data: list[str] = typer.Option([], help="Dataset for the accuracy checks (repeatable; default: the "
                                        "training sources)."),
    eval_size: Optional[int] = typer.Option(E.eval_size, min=1, help="Evaluation images (default: the whole test split)."),
    batch_size: int = typer.Option(E.batch_size, min=0, help="Static batch size of the exported input (0: dynamic)."),
    uint8_output: bool = typer.Option(E.uint8_output, "--uint8-output", help="int8 TFLite with uint8 output."),
    force: bool = typer.Option(E.force, "--force", help="Quantize even with fewer than 32 calibration images."),
    gate: list[str] = typer.Option([], help="Override a gate, e.g. --gate int8_min_agreement=0.95 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Export to TFLite / ONNX and check every artifact against the Keras model; exit 1 if a check fails."""
    from edgeseg.contract import EXPORT_FORMATS, get_format

    try:
        format_names = [get_format(name).name for name in split_list(formats)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--formats") from None
    if not format_names:
        raise typer.BadParameter(f"{formats!r} names no format; choose from {', '.join(EXPORT_FORMATS)}",
                                 param_hint="--formats")
    int8_only = {"--calib-data": bool(calib_data), "--calib-size": calib_size is not None, "--force": force,
                 "--uint8-output": uint8_output}
    given = next((option for option, used in int8_only.items() if used), None)
    if given and not int8:  # it would be ignored without a word
        raise typer.BadParameter("it is for int8 artifacts: add --int8", param_hint=given)
    if uint8_output and "tflite" not in format_names:
        raise typer.BadParameter("it is for int8 TFLite artifacts: add tflite to --formats", param_hint="--uint8-output")
    gates = _parse_gates(gate)
    if out:
        writable(out, "--out", folder=True)
    resolve_source(source)  # a shipped model or a folder that is no run: said before TensorFlow is asked for
    need_train_extra()
    from edgeseg.export.base import Precision
    from edgeseg.export.exporter import export_model

    chosen = [p for flag, p in ((fp32, Precision.FP32), (fp16, Precision.FP16), (int8, Precision.INT8),
                                (dynamic, Precision.DYNAMIC)) if flag] or [Precision.FP32]
    options = ExportOptions(formats=format_names, precisions=chosen, out=str(out) if out else None,
                            calib_data=calib_data or None,
                            calib_size=E.calib_size if calib_size is None else calib_size,
                            eval_data=eval_data or None, eval_size=eval_size,
                            batch_size=batch_size, uint8_output=uint8_output, force=force,
                            gates=gates)
    report = export_model(source, options, progress=not as_json)
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(export_table(report))
        console.print(f"report: {Path(report.out_dir) / 'export_report.json'}")
    report.raise_for_failures()


def _parse_gates(specs: list[str]):
    from dataclasses import fields

    from edgeseg.export.base import Gates

    names = [f.name for f in fields(Gates)]
    values = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in names:
            raise typer.BadParameter(f"unknown gate {name!r}; gates: {', '.join(names)}", param_hint="--gate")
        try:
            values[name] = float(value)
        except ValueError:
            raise typer.BadParameter(f"{spec!r}: expected NAME=NUMBER", param_hint="--gate") from None
        try:
            Gates.check_value(name, values[name])
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--gate") from None
    return Gates(**values)
