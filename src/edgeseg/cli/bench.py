"""``edgeseg bench`` (MODELS... or ``run``) and ``edgeseg bench report``."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from edgeseg.benchmarks.runner import BenchOptions
from edgeseg.cli.app import HELP_OPTIONS, app, console, err, fail, split_list, writable
from edgeseg.cli.options import MAX_THREADS, EffectOpt, FramePathOpt, JsonOpt, foreground_option
from edgeseg.cli.tables import bench_table, stage_table
from edgeseg.io import atomic_write_text
from edgeseg.runtime.sources import CameraMode

B = BenchOptions  # the defaults: one home
MAX_RUNS = 100_000_000  # bench's timed runs: hours at 0.1 ms each, not for ever


class _DefaultRun(TyperGroup):
    """``edgeseg bench MODELS...`` runs; ``edgeseg bench report FILES...`` merges results."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in HELP_OPTIONS["help_option_names"]:
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(cls=_DefaultRun, context_settings=HELP_OPTIONS, no_args_is_help=True,
                        help="Latency, memory and accuracy of every backend: bench MODELS..., or bench report FILES...")
app.add_typer(bench_app, name="bench")


@bench_app.command("run")
def bench(
    models: list[str] = typer.Argument(..., help="Run folders, model files or shipped model names such as edge or "
                                       "person."),
    data: Optional[str] = typer.Option(None, help="Dataset for accuracy (default: a run folder's training data)."),
    data_dir: Optional[str] = typer.Option(None, help="Where tfds keeps its datasets (default: a run folder's, as "
                                           "train --data-dir, else tfds's)."),
    threads: str = typer.Option("", help="Thread counts, e.g. 1,2,4 (default: 1 and every core this process may use: "
                                "its CPU quota in a container)."),
    warmup: int = typer.Option(B.warmup, min=0, max=MAX_RUNS, help="Untimed runs first."),
    runs: int = typer.Option(B.runs, min=1, max=MAX_RUNS, help="Timed runs (at least)."),
    min_seconds: float = typer.Option(B.min_seconds, min=0.0, max=3600.0, help="Keep timing for at least this long."),
    eval_size: int = typer.Option(B.eval_size, min=1, help="Test images for accuracy."),
    foreground: Optional[str] = typer.Option(
        None, help="Foreground classes of a third-party class model, with optional weights, e.g. 8,12."),
    frame_size: str = typer.Option("{}x{}".format(*B.frame_size), help="Frame size of the live step measured "
                                   "beside inference, WIDTHxHEIGHT (webcams: 1280x720, 1920x1080)."),
    effect: EffectOpt = B.effect,
    frame_path: FramePathOpt = B.frame_path,
    device: Optional[str] = typer.Option(None, help="Device name recorded in the results."),
    out: Optional[Path] = typer.Option(None, help="Write the results JSON here."),
    as_json: JsonOpt = False,
):
    """Benchmark models: every backend, precision and thread count, each in its own process.

    Example: edgeseg bench tutorial edge --out results/my-laptop.json
    """
    from edgeseg.benchmarks.runner import run_bench
    from edgeseg.data import DataError, check_source

    try:
        size = CameraMode.parse_size(frame_size)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--frame-size") from None
    thread_counts = split_list(threads)
    if not all(t.isdigit() and 0 < int(t) <= MAX_THREADS for t in thread_counts):
        raise typer.BadParameter(f"{threads!r}: expected thread counts from 1 to {MAX_THREADS}, e.g. 1,2,4",
                                 param_hint="--threads")
    twice = next((t for i, t in enumerate(thread_counts) if int(t) in map(int, thread_counts[:i])), None)
    if twice is not None:
        raise typer.BadParameter(f"{threads!r} names {twice} twice", param_hint="--threads")
    if data is not None:
        try:
            check_source(data)
        except DataError as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from None
    if out:
        writable(out, "--out", suffix=".json")  # the Markdown report is bench report's
    options = BenchOptions(warmup=warmup, runs=runs, min_seconds=min_seconds, data=data, data_dir=data_dir,
                           eval_size=eval_size, foreground=foreground_option(foreground), device=device,
                           frame_size=size, effect=effect, frame_path=frame_path)
    if thread_counts:
        options.threads = [int(t) for t in thread_counts]
    result = run_bench(models, options, progress=not as_json)
    if out:
        atomic_write_text(out, json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(bench_table(result))
        console.print(stage_table(result))
        for note in result["notes"]:
            err.print(f"note: {escape(note)}")
    failed = [r for r in result["rows"] if r["status"] == "failed"]
    if failed:
        names = ", ".join(dict.fromkeys(r["model"] for r in failed))
        raise fail(f"{len(failed)} of {len(result['rows'])} rows failed: {names} (see the status column"
                   + (f" or {out})" if out else ")"))


@bench_app.command("report")
def bench_report(
    results: list[Path] = typer.Argument(..., help="Result files written by edgeseg bench --out."),
    out: Optional[Path] = typer.Option(None, help="Write the table (README.md) and charts into this folder, or "
                                       "the table into this .md file with the charts beside it."),
    as_json: JsonOpt = False,
):
    """Merge result files from several devices into one table (Markdown) and charts.

    Example: edgeseg bench report results/*.json --out report/
    """
    from edgeseg.benchmarks.report import is_markdown, merged_report, merged_table, write_report

    if out is None and as_json:
        typer.echo(json.dumps(merged_report(results), indent=2))
        return
    if out is None:
        typer.echo(merged_table(results), nl=False)
        return
    if not is_markdown(out) and not out.is_dir() and _a_document(out):  # report.html: not a folder's name
        raise typer.BadParameter(f"{out}: the report is Markdown with charts: name a folder or a .md file",
                                 param_hint="--out")
    writable(out, "--out", folder=not is_markdown(out))
    written = write_report([str(r) for r in results], out)
    if as_json:
        typer.echo(json.dumps({**merged_report(results), "written": [str(p) for p in written]}, indent=2))
        return
    for path in written:
        console.print(str(path), soft_wrap=True)


def _a_document(path: Path) -> bool:
    """``path`` is named as a document or picture would be (report.html, report.json, report.png)."""
    kind = mimetypes.guess_type(path.name)[0] or ""
    return kind.startswith("image/") or kind in ("text/html", "text/plain", "text/csv", "application/json",
                                                 "application/pdf")
