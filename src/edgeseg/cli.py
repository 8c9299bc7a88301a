"""The ``edgeseg`` command line: a thin Typer layer over the library."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from edgeseg.io import atomic_write_text
from edgeseg.contract import OutputKind
from edgeseg.runtime.effects import KEY_HEX, Effect
from edgeseg.runtime.model_info import InputRange
from edgeseg.runtime.image_io import MAX_PIXELS, MAX_PIXELS_OPTION
from edgeseg.runtime.segmenter import MAX_FEATHER, Edges, SegmenterOptions
from edgeseg.trainer import MODEL_NAMES

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
MAX_THREADS = 256
MAX_RUNS = 100_000_000  # bench's timed runs: hours at 0.1 ms each, not for ever
app = typer.Typer(help="Train, export, run and benchmark segmentation models for edge devices.",
                  no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP_OPTIONS)
console = Console()
if not console.is_terminal:  # piped output: tables not squeezed into 80 columns, lines never wrapped
    console = Console(width=160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # no hard wraps inside file names


def _version(value: bool) -> None:
    if value:
        from edgeseg import __version__

        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug details and the libraries' own logs."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
):
    from edgeseg.cli_numbers import finite_numbers
    from edgeseg.quiet import set_quiet

    finite_numbers(ctx.command)  # before the sub-command parses its options

    set_quiet(not verbose)
    # Our own logger speaks at INFO; the libraries' (onnxruntime's quantizer logs through the root logger) only
    # with --verbose, warnings included.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.ERROR, format="%(message)s",
                        handlers=[RichHandler(console=err, show_time=False, show_path=False)], force=True)
    logging.getLogger("edgeseg").setLevel(logging.DEBUG if verbose else logging.INFO)


def _need_train_extra() -> None:
    """Fail with what to install when TensorFlow is missing; else import it, quietly unless --verbose."""
    from edgeseg.quiet import native_stderr_silenced
    from edgeseg.trainer import require_train_extra

    try:
        require_train_extra()
    except ImportError as exc:
        raise fail(str(exc)) from None
    with native_stderr_silenced():  # TF's C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL since 2.16
        import tensorflow  # noqa: F401


def writable(path: Path, param: str, folder: bool = False) -> Path:
    """Refuse an output that cannot be written (exit 2) before any long work starts."""
    from edgeseg.io import check_writable_dir

    try:
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; expected a file name")
        check_writable_dir(path if folder else path.parent)
    except OSError as exc:
        raise typer.BadParameter(str(exc), param_hint=param) from None
    return path


def plural(n: int, noun: str) -> str:
    """``1 frame``, ``2 frames``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")  # messages hold paths and [extras], not markup
    return typer.Exit(code)


def table(title: str, columns: list[str], rows: list[list[str]], left: int = 1) -> Table:
    """The one table renderer: the first ``left`` columns are left-aligned (names), the rest right (numbers)."""
    t = Table(title=title)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i < left else "right")
    for row in rows:
        t.add_row(*row)
    return t


def metrics_table(title: str, rows: dict[str, dict]) -> Table:
    """Rows of {name: SegmentationMetrics.to_dict()} (columns follow the classes present)."""
    classes = next(iter(rows.values()))["class_names"] if rows else []
    return table(title, ["", "pixel acc", "mIoU", "fg IoU", *(f"IoU {c}" for c in classes)], [
        [name, *(f"{v:.4f}" for v in (m["pixel_accuracy"], m["mean_iou"], m["foreground_iou"],
                                      *(m["iou"][c] for c in classes)))] for name, m in rows.items()])


MASK_COLUMNS = {"pet_iou": "{} IoU (border ignored)", "fg_iou": "fg IoU ({}+border)", "boundary_f": "boundary F",
                "background_alpha": "bg alpha", "background_leak": "bg leak", "semi_transparent": "semi-transparent"}


def mask_table(title: str, rows: dict[str, dict], subject: str = "pet") -> Table:
    """Rows of {name: MaskQuality.to_dict()}; ``subject`` names what the mask shows (the pet IoU's subject)."""
    return table(title, ["", *(c.format(subject) for c in MASK_COLUMNS.values())],
                 [[name, *(f"{m[k]:.4f}" for k in MASK_COLUMNS)] for name, m in rows.items()])


def _by_source(by_source: dict, overall) -> dict[str, dict]:
    """Table rows: each source's scores, then their mean when there are several."""
    rows = {name: q.to_dict() for name, q in by_source.items()}
    if len(rows) > 1:
        rows["mean of sources"] = overall.to_dict()
    return rows


@app.command()
def train(
    model: str = typer.Option("unet_mobilenetv2", help=f"Architecture: {', '.join(MODEL_NAMES)}.",
                              rich_help_panel="Model"),
    data: list[str] = typer.Option(["oxford_iiit_pet"], help="'oxford_iiit_pet' (tfds download) or a dataset "
                                   "folder (Oxford layout, or images/ + masks/), with an optional weight: PATH:3 draws "
                                   "its images 3x as often. Repeat for several sources."),
    out: Path = typer.Option(Path("runs/unet_mobilenetv2"), help="Run folder (rerun the same command to resume)."),
    epochs: int = typer.Option(20, min=1, help="Epochs (at most; see --early-stopping).", rich_help_panel="Schedule"),
    batch_size: int = typer.Option(32, min=1, help="Images per step (over all devices).", rich_help_panel="Schedule"),
    img_size: int = typer.Option(128, min=32, help="Square input side, a multiple of 32.", rich_help_panel="Model"),
    encoder_weights: str = typer.Option(
        "imagenet", help="'imagenet' (downloads), 'none', or a local .weights.h5 (offline).", rich_help_panel="Model"),
    alpha: float = typer.Option(1.0, help="Encoder width multiplier.", rich_help_panel="Model"),
    fine_tune: int = typer.Option(0, min=0, help="Unfreeze the top N encoder blocks.", rich_help_panel="Model"),
    dropout: float = typer.Option(0.0, min=0.0, max=0.9, help="Dropout inside each decoder block.",
                                  rich_help_panel="Model"),
    upsampling: str = typer.Option("transpose", help="Decoder upsampling: transpose (the tutorial) or bilinear "
                                   "(resize + conv: no checkerboard).", rich_help_panel="Model"),
    loss: str = typer.Option("ce", help="ce (cross-entropy) or ce+dice (adds Dice on the pet, border ignored).",
                             rich_help_panel="Schedule"),
    learning_rate: float = typer.Option(1e-3, "--lr", help="Adam learning rate.", rich_help_panel="Schedule"),
    lr_schedule: str = typer.Option("constant", help="constant or cosine.", rich_help_panel="Schedule"),
    class_weights: str = typer.Option("none", help="none, balanced, or weights like 2,1,2 (pet,bg,border).",
                                      rich_help_panel="Schedule"),
    augment: str = typer.Option("standard", help="standard (random crops, flips, colour jitter), strong (wider "
                                "crops and jitter, rotation, sensor noise), webcam (portraits made webcam-like: half "
                                "pasted smaller and off-centre onto --backgrounds photos; motion blur, noise) or none.",
                                rich_help_panel="Data"),
    backgrounds: list[Path] = typer.Option([], help="A folder of photos (or a dataset folder's images/) that "
                                           "--augment webcam pastes subjects onto; repeat for several.",
                                           rich_help_panel="Data"),
    outline: str = typer.Option("band", help="A binary mask's outline in training: band (a border band as the "
                                "trimaps have), ignore (left out of the loss) or none.", rich_help_panel="Data"),
    subject: str = typer.Option("pet", help="What the masks show, named in the model's metadata and reports: "
                                "pet, person, ...", rich_help_panel="Data"),
    early_stopping: int = typer.Option(5, min=0, help="Stop after this many epochs without a better val pet IoU; "
                                       "0 disables.", rich_help_panel="Schedule"),
    bn_refresh_batches: int = typer.Option(
        8, min=0, help="Re-estimate BatchNorm statistics from this many training batches at each epoch's end; "
        "0 keeps Keras's moving averages (they lag in short runs).", rich_help_panel="Schedule"),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="float16 compute (GPUs).",
                                         rich_help_panel="Devices"),
    strategy: str = typer.Option("auto", help="auto, default, mirrored or multiworker (TF_CONFIG).",
                                 rich_help_panel="Devices"),
    val_fraction: float = typer.Option(0.1, min=0.0, max=0.5, help="Share of trainval held out for validation.",
                                       rich_help_panel="Data"),
    seed: int = typer.Option(0, min=0, help="Seed of the split, the shuffling and the initial weights.",
                             rich_help_panel="Data"),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many images per split (quick runs).",
                                        rich_help_panel="Data"),
    data_dir: Optional[str] = typer.Option(None, help="Where tfds keeps its datasets.", rich_help_panel="Data"),
    init_from: Optional[Path] = typer.Option(None, help="Start from this .keras model's weights (e.g. to fine-tune).",
                                             rich_help_panel="Model"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished or damaged run in --out."),
    as_json: JsonOpt = False,
):
    """Train a segmentation model; run the same command again to resume an interrupted run.

    Example: edgeseg train --data oxford_iiit_pet --out runs/pets
    """
    writable(out, "--out", folder=True)
    _need_train_extra()
    from edgeseg.trainer.backup import BackupError
    from edgeseg.data import DataError
    from edgeseg.trainer.train import TrainConfig, validate
    from edgeseg.trainer.train import train as run_training

    config = TrainConfig(
        model=model, data=data, out=str(out), epochs=epochs, batch_size=batch_size, img_size=img_size,
        encoder_weights=encoder_weights, alpha=alpha, fine_tune=fine_tune, dropout=dropout,
        upsampling=upsampling, loss=loss, learning_rate=learning_rate, lr_schedule=lr_schedule,
        class_weights=class_weights, augment=augment, backgrounds=[str(b) for b in backgrounds], outline=outline,
        subject=subject,
        early_stopping=early_stopping, bn_refresh_batches=bn_refresh_batches, mixed_precision=mixed_precision,
        strategy=strategy,
        val_fraction=val_fraction, seed=seed, limit=limit, data_dir=data_dir, overwrite=overwrite,
        init_from=str(init_from) if init_from else None,
    )
    try:
        validate(config)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        report = run_training(config, progress=not as_json)
    except (DataError, FileNotFoundError, FileExistsError, ValueError, BackupError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(mask_table(f"{model}: test split, runtime mask (--edges bilinear)", _by_source(report.test_mask_by_source,
                                                                                             report.test_mask)))
    for name, metrics in report.test_metrics.items():
        console.print(metrics_table(f"{name}: class argmax at the model's input size", {"best model": metrics.to_dict()}))
    skipped = sum(len(d["skipped"]) for d in report.data.values())
    console.print(f"{plural(report.epochs_run, 'epoch')} in {report.wall_time_s:.0f} s "
                  f"({report.train_images_per_s:.1f} images/s); {skipped} unreadable images skipped; "
                  f"run folder: {report.run_dir}")


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="A .keras model, run folder, .tflite/.onnx file or shipped model name."),
    data: list[str] = typer.Option(..., help="'oxford_iiit_pet' or a dataset folder; repeat for several (each "
                                   "scored on its own, and their mean)."),
    split: str = typer.Option("test", help="train, val or test."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most this many images."),
    out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here."),
    threshold: ThresholdOpt = 0.5,
    softness: SoftnessOpt = 0.1,
    edges: EdgesOpt = Edges.GUIDED,
    min_blob: MinBlobOpt = 0.0,
    flicker: int = typer.Option(0, min=0, max=10000, help="Also measure the video mask's flicker on shaken, noisy "
                                "clips made from the first N photos of each dataset (0: off)."),
    smoothing: SmoothingOpt = SegmenterOptions.smoothing,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """Score the mask a user sees against a dataset's labels, at each image's own resolution.

    The subject's IoU with border pixels ignored (the headline), fg IoU, boundary F, background leak,
    semi-transparent share; with --flicker, the video mask's mean change per frame where nothing moves.
    """
    from edgeseg.data import SPLITS, DataError, parse_sources
    from edgeseg.runtime.backends import BackendError
    from edgeseg.evaluation.evaluate import evaluate as run_eval
    from edgeseg.evaluation.evaluate import needs_tensorflow

    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r}: expected {', '.join(SPLITS[:-1])} or {SPLITS[-1]}", param_hint="--split")
    if out:
        writable(out, "--out")
    if needs_tensorflow(model, data):
        _need_train_extra()
    try:
        data = [s.location for s in parse_sources(data)]
    except DataError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None

    settings = {"threshold": threshold, "softness": softness, "edges": edges.value, "min_blob": min_blob}
    if flicker:
        settings["smoothing"] = smoothing
    try:
        report = run_eval(model, data, split, limit, progress=not as_json, options=settings, flicker_clips=flicker)
    except (BackendError, DataError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    result = report.to_dict()
    if out:
        atomic_write_text(out, json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console.print(mask_table(f"{model} ({split}, {report.images} images, runtime mask)",
                             _by_source(report.mask_by_source, report.mask), report.subject))
    if report.flicker:
        first = next(iter(report.flicker.values()))
        console.print(table(f"Flicker: mean |alpha_t - alpha_t-1| where nothing moves ({first.frames}-frame clips, "
                            f"{first.shake_px} px shake, noise {first.noise:g} levels, smoothing {smoothing:g})",
                            ["", "clips", "flicker"], [[name, str(f.clips), f"{f.flicker:.5f}"]
                                                       for name, f in report.flicker.items()]))
    for name, metrics in result["metrics"].items():
        console.print(metrics_table(f"{name}: class argmax at the model's input size", {model.name: metrics}))


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


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
    calib_size: int = typer.Option(300, min=1, help="Calibration images."),
    eval_data: list[str] = typer.Option([], help="Dataset for the accuracy checks (repeatable; default: the "
                                        "training sources)."),
    eval_size: Optional[int] = typer.Option(None, min=1, help="Evaluation images (default: the whole test split)."),
    batch_size: int = typer.Option(1, min=0, help="Static batch size of the exported input (0: dynamic)."),
    uint8_output: bool = typer.Option(False, "--uint8-output", help="int8 TFLite with uint8 output."),
    force: bool = typer.Option(False, "--force", help="Quantize even with fewer than 32 calibration images."),
    gate: list[str] = typer.Option([], help="Override a gate, e.g. --gate int8_min_agreement=0.95 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Export to TFLite / ONNX and check every artifact against the Keras model; exit 1 if a check fails."""
    from edgeseg.contract import get_format

    try:
        format_names = [get_format(name).name for name in _split_list(formats)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--formats") from None
    _need_train_extra()
    from edgeseg.export.base import ExportError, Precision, ToleranceError
    from edgeseg.export.exporter import ExportOptions, export_model

    chosen = [p for flag, p in ((fp32, Precision.FP32), (fp16, Precision.FP16), (int8, Precision.INT8),
                                (dynamic, Precision.DYNAMIC)) if flag] or [Precision.FP32]
    options = ExportOptions(formats=format_names, precisions=chosen, out=str(out) if out else None,
                            calib_data=calib_data or None, calib_size=calib_size, eval_data=eval_data or None,
                            eval_size=eval_size,
                            batch_size=batch_size, uint8_output=uint8_output, force=force,
                            gates=_parse_gates(gate))
    try:
        report = export_model(source, options, progress=not as_json)
    except ExportError as exc:
        raise fail(str(exc)) from None
    for note in report.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(export_table(report))
        console.print(f"report: {Path(report.out_dir) / 'export_report.json'}")
    try:
        report.raise_for_failures()
    except ToleranceError as exc:
        raise fail(str(exc)) from None


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
    return Gates(**values)


def export_table(report) -> Table:
    title = (f"Export of {report.source} (Keras mIoU {report.keras_mean_iou:.4f}, pet IoU "
             f"{report.keras_mask.get('pet_iou', float('nan')):.4f}, {report.eval_images} images)")
    rows = []
    for a in report.artifacts:
        status = "[green]pass[/]" if a.passed else "[red]FAIL[/] " + escape("; ".join(a.failures))
        rows.append([Path(a.path).name or a.name, status, f"{a.size_mb:.2f}", f"{a.agreement:.4%}",
                     f"{a.max_abs_prob_diff:.1e}", f"{a.mean_abs_prob_diff:.1e}", f"{a.mean_iou:.4f}",
                     f"{a.delta_miou_points:+.2f}", f"{a.mask.get('pet_iou', float('nan')):.4f}",
                     f"{a.mask.get('boundary_f', float('nan')):.4f}"])
    return table(title, ["artifact", "check", "MB", "agreement", "max |dp|", "mean |dp|", "mIoU", "dmIoU pts",
                         "pet IoU", "boundary F"], rows, left=2)


def _background(effect: Effect, value: Optional[str]):
    from edgeseg.runtime.effects import check_background, parse_background

    try:
        check_background(effect, value)
        return parse_background(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--background") from None


def _foreground(spec: Optional[str]) -> Optional[dict[int, float]]:
    from edgeseg.contract import parse_foreground

    try:
        return parse_foreground(spec) if spec else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--foreground") from None


def _segmenter_options(model: Optional[str], mode, providers: Optional[list[str]], foreground: Optional[str],
                       **settings):
    """SegmenterOptions from the shared mask options; ``settings`` are SegmenterOptions fields."""
    from edgeseg.runtime.packaged import resolve_model
    from edgeseg.runtime.segmenter import SegmenterOptions

    try:
        path = resolve_model(model)
    except FileNotFoundError as exc:  # NoPackagedModel included
        raise fail(str(exc)) from None
    if providers and path.suffix.lower() != ".onnx":
        raise typer.BadParameter(f"execution providers are for .onnx models; {path.name} is not one",
                                 param_hint="--provider")
    return SegmenterOptions(model=path, running_mode=mode, foreground=_foreground(foreground),
                            backend_options={"providers": providers} if providers else {}, **settings)


# Options shared by webcam and predict, declared once.
MODEL_PANEL, MASK_PANEL, THIRD_PARTY_PANEL = "Model", "Mask", "Models without edgeseg metadata"
SERVE_PANEL = "Stream server"
ModelOpt = Annotated[Optional[str], typer.Option(
    help="A .tflite or .onnx file, or a shipped model's name or alias such as 'edge' (default: the shipped default).",
    rich_help_panel=MODEL_PANEL)]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    min=1, max=MAX_THREADS, help="Interpreter threads (default: all cores).", rich_help_panel=MODEL_PANEL)]
ProviderOpt = Annotated[Optional[list[str]], typer.Option(
    "--provider", help="ONNX Runtime execution provider to try first, e.g. CUDAExecutionProvider (repeatable; "
    "CPU is always the fallback).", rich_help_panel=MODEL_PANEL)]
def choices(enum: type) -> str:
    """An Enum's choices for help text, which wraps between words (Typer's own ``<a|b|c>`` metavar is one
    long word that a narrow terminal splits mid-choice)."""
    return ", ".join(e.value for e in enum)


EffectOpt = Annotated[Effect, typer.Option(metavar="EFFECT", help=f"Background effect: {choices(Effect)}.")]
BackgroundOpt = Annotated[Optional[str], typer.Option(
    help=f"replace-bg: image file or #RRGGBB (default: chroma green {KEY_HEX}). remove-bg: photos become PNGs with "
    f"transparency; video has none, so its background is keyed to this colour (default {KEY_HEX}).")]
ThresholdOpt = Annotated[float, typer.Option(
    min=0.0, max=1.0, help="Centre of the soft threshold that turns the mask probability into opacity.",
    rich_help_panel=MASK_PANEL)]
SoftnessOpt = Annotated[float, typer.Option(
    min=0.01, max=0.5, help="Half-width of that ramp: transparent below threshold - softness, opaque above "
    "threshold + softness (0.5: the raw probability).", rich_help_panel=MASK_PANEL)]
EdgesOpt = Annotated[Edges, typer.Option(
    metavar="EDGES", help="guided: the mask's edges follow the image's; bilinear: a plain resize (about 0.6 ms cheaper per "
    "640x480 frame on a 2-core x86 CPU).", rich_help_panel=MASK_PANEL)]
FeatherOpt = Annotated[int, typer.Option(min=0, max=MAX_FEATHER, help="Edge feathering radius in pixels (at most "
                                         "half the frame's shorter side is used).", rich_help_panel=MASK_PANEL)]
MinBlobOpt = Annotated[float, typer.Option(
    min=0.0, max=0.99, help="Drop visible parts of the mask smaller than this share of the frame, except the largest "
    "(patterned cushions, blobs beside the subject); 0 keeps every part.", rich_help_panel=MASK_PANEL)]
SmoothingOpt = Annotated[float, typer.Option(
    min=0.01, max=1.0, help="Video: weight of the newest mask in a running average (1 = no smoothing).",
    rich_help_panel=MASK_PANEL)]
ForegroundOpt = Annotated[Optional[str], typer.Option(
    help="Classes that make the mask, with optional weights: 8,12 (cat, dog in PASCAL VOC) or 0,2:0.5 (pet, half "
    "the border). Default: the model's own mask weights.", rich_help_panel=MASK_PANEL)]
InputRangeOpt = Annotated[Optional[InputRange], typer.Option(
    metavar="RANGE", help=f"Input range of a model without metadata: {choices(InputRange)}.",
    rich_help_panel=THIRD_PARTY_PANEL)]
OutputKindOpt = Annotated[Optional[OutputKind], typer.Option(
    metavar="KIND", help=f"Output of a model without metadata: {choices(OutputKind)}.", rich_help_panel=THIRD_PARTY_PANEL)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
MaxPixelsOpt = Annotated[int, typer.Option(MAX_PIXELS_OPTION, min=1, help="Refuse larger images before decoding them.")]


@app.command()
def webcam(
    model: ModelOpt = None,
    source: str = typer.Option("0", help="Camera index or device, video file, rtsp/http URL, image or folder."),
    camera_size: Optional[str] = typer.Option(None, help="Frame size to ask the camera for, e.g. 1280x720 (it says "
                                              "when it delivers another)."),
    camera_fps: Optional[float] = typer.Option(None, min=1.0, max=1000.0, help="Frame rate to ask the camera for."),
    effect: EffectOpt = Effect.GRAYSCALE_BG,
    background: BackgroundOpt = None,
    output: Optional[Path] = typer.Option(None, help="Write the result to a video file (.mp4 or .avi)."),
    serve: Optional[str] = typer.Option(
        None, help="Serve an MJPEG stream and page on HOST:PORT (loopback unless you name another address).",
        rich_help_panel=SERVE_PANEL),
    token: Optional[str] = typer.Option(
        None, help="Access token the stream requires (default: none on loopback, a generated one elsewhere).",
        rich_help_panel=SERVE_PANEL),
    no_token: bool = typer.Option(False, "--no-token", help="Serve a non-loopback address without a token.",
                                  rich_help_panel=SERVE_PANEL),
    max_clients: int = typer.Option(32, min=1, help="Viewers served at once; more get 503.",
                                    rich_help_panel=SERVE_PANEL),
    stream_fps: float = typer.Option(30.0, min=1.0, help="Frames per second the stream carries at most.",
                                     rich_help_panel=SERVE_PANEL),
    window: Optional[bool] = typer.Option(None, "--window/--no-window", help="Show a window (default: if a display exists)."),
    virtual_cam: bool = typer.Option(False, "--virtual-cam", help="Send frames to a virtual camera (pyvirtualcam)."),
    hud: Optional[bool] = typer.Option(None, "--hud/--no-hud",
                                       help="FPS and per-stage latency overlay (default: in the window only)."),
    threads: ThreadsOpt = None,
    smoothing: SmoothingOpt = SegmenterOptions.smoothing,
    threshold: ThresholdOpt = 0.5,
    softness: SoftnessOpt = 0.1,
    edges: EdgesOpt = Edges.GUIDED,
    feather: FeatherOpt = 0,
    min_blob: MinBlobOpt = 0.0,
    mask_every: int = typer.Option(1, min=1, help="Compute a new mask every N frames.", rich_help_panel=MASK_PANEL),
    max_frames: Optional[int] = typer.Option(None, min=1, help="Stop after N frames."),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    loop: bool = typer.Option(False, "--loop", help="Play a video file or image folder again and again."),
    input_range: InputRangeOpt = None,
    output_kind: OutputKindOpt = None,
    foreground: ForegroundOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
):
    """Live background effects on a camera or stream (q quits, e cycles effects, h toggles the HUD)."""
    from dataclasses import asdict

    from edgeseg.runtime.backends import BackendError
    from edgeseg.runtime.outputs import display_available
    from edgeseg.runtime.pipeline import EndReason, PipelineOptions, run_pipeline
    from edgeseg.runtime.segmenter import RunningMode, Segmenter
    from edgeseg.runtime.server import ServeError, check_token, parse_address
    from edgeseg.runtime.sources import CameraMode, SourceError, open_source

    if serve:
        try:
            parse_address(serve)
        except ServeError as exc:
            raise typer.BadParameter(str(exc), param_hint="--serve") from None
    try:
        check_token(token)
    except ServeError as exc:
        raise typer.BadParameter(str(exc), param_hint="--token") from None
    if token is not None and no_token:
        raise typer.BadParameter("--no-token serves without a token; give --token or --no-token, not both",
                                 param_hint="--token")
    background_value = _background(effect, background)
    if output:
        writable(output, "--output")
        if Path(source).exists() and output.resolve() == Path(source).resolve():
            raise typer.BadParameter(f"{output} is the source itself: writing it would replace the video being "
                                     "read; choose another file", param_hint="--output")
    options = _segmenter_options(
        model, RunningMode.VIDEO, provider, foreground, threads=threads, smoothing=smoothing,
        threshold=threshold, softness=softness, edges=edges, feather=feather, mask_every=mask_every,
        min_blob=min_blob, input_range=input_range,
        output_kind=output_kind)
    show = display_available() if window is None else window
    camera = None
    if camera_size or camera_fps:
        try:
            camera = CameraMode(CameraMode.parse_size(camera_size) if camera_size else None, camera_fps)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--camera-size") from None
    try:  # files play at their own frame rate where someone watches: a window, a stream, a virtual camera
        src = open_source(source, loop=loop, realtime=bool(show or serve or virtual_cam), max_pixels=max_pixels,
                          camera=camera)
    except SourceError as exc:
        raise fail(str(exc)) from None
    if not (show or output or serve or virtual_cam or as_json) or (show and not display_available()):
        src.close()
        raise fail("no display here (DISPLAY is not set): pass --output FILE.mp4, --serve 127.0.0.1:8080 or "
                   "--virtual-cam to see the result")
    try:
        with src, Segmenter(options) as segmenter:
            report = run_pipeline(src, segmenter, PipelineOptions(
                effect=effect, background=background_value, hud=show if hud is None else hud, window=show,
                output=str(output) if output else None, serve=serve, token=token, open_stream=no_token,
                max_clients=max_clients, stream_fps=stream_fps, virtual_cam=virtual_cam, max_frames=max_frames), name=source)
    except (BackendError, FileNotFoundError, ValueError, ImportError, OSError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    elif report.frames or not report.ended.failed:  # a run that saw no frame has only its error to say
        stages = ", ".join(f"{k} {v:.1f}" for k, v in report.stage_ms.items())
        ended = report.ended.value + (f" ({report.detail})" if report.detail else "")
        console.print(f"{plural(report.frames, 'frame')} in {report.seconds:.1f} s ({report.fps:.1f} FPS"
                      + (f"; median ms: {stages}" if stages else "") + f"); {ended}"
                      + (f"; wrote {report.output} ({report.codec})" if report.output else ""), soft_wrap=True)
    if report.ended.failed:
        raise fail(f"{report.ended.value}: {report.detail}")
    if report.ended is EndReason.SIGNAL:  # the recording is finalised; the code says how the run ended
        raise typer.Exit(128 + signal.Signals[report.detail])


@app.command()
def predict(
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    model: ModelOpt = None,
    effect: EffectOpt = Effect.GRAYSCALE_BG,
    background: BackgroundOpt = None,
    out: Path = typer.Option(Path("predictions"), help="Output folder."),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    threads: ThreadsOpt = None,
    threshold: ThresholdOpt = 0.5,
    softness: SoftnessOpt = 0.1,
    edges: EdgesOpt = Edges.GUIDED,
    feather: FeatherOpt = 0,
    min_blob: MinBlobOpt = 0.0,
    input_range: InputRangeOpt = None,
    output_kind: OutputKindOpt = None,
    foreground: ForegroundOpt = None,
    provider: ProviderOpt = None,
    as_json: JsonOpt = False,
):
    """Apply a background effect to still images (remove-bg writes PNGs with transparency)."""
    from dataclasses import asdict

    from edgeseg.runtime.backends import BackendError
    from edgeseg.runtime.pipeline import predict_images
    from edgeseg.runtime.segmenter import RunningMode

    background_value = _background(effect, background)
    if effect is Effect.REMOVE_BG and isinstance(background_value, tuple):
        logging.getLogger("edgeseg").warning(
            "remove-bg with --background %s keys the background to that colour: the PNGs have no transparency "
            "(leave --background out for transparent cutouts)", background)
    options = _segmenter_options(
        model, RunningMode.IMAGE, provider, foreground, threads=threads, smoothing=1.0, threshold=threshold,
        softness=softness, edges=edges, feather=feather, min_blob=min_blob, input_range=input_range,
        output_kind=output_kind)
    writable(out, "--out", folder=True)
    try:
        report = predict_images(images, options, effect, out, background_value, max_pixels, progress=not as_json)
    except (BackendError, FileNotFoundError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        for output in report.outputs.values():
            console.print(output, soft_wrap=True)
        if report.outputs:
            console.print(f"{plural(len(report.outputs), 'image')} written to {out}; median ms: "
                          + ", ".join(f"{k} {v:.1f}" for k, v in report.stage_ms.items()), soft_wrap=True)
        for name, why in report.failed.items():
            err.print(f"[yellow]skipped[/] {escape(why)}")
    if report.failed:
        raise fail(f"{len(report.failed)} of {len(report.failed) + len(report.outputs)} inputs failed")


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
    flip: bool = typer.Option(False, "--flip", help="Average with the mirrored image (test-time augmentation)."),
    scales: str = typer.Option("1", help="Image scales to average over, e.g. 0.75,1,1.25."),
    layout: str = typer.Option("oxford", help="oxford (trimaps with a border band) or masks (images/ + masks/)."),
    border_px: Optional[int] = typer.Option(None, min=1, max=255, help="Trimap band width in pixels (default: 3% of "
                                            "the longer side)."),
    min_fg: float = typer.Option(0.03, min=0.0, max=1.0, help="Reject masks covering less of the image.",
                                 rich_help_panel="Filters"),
    max_fg: float = typer.Option(0.97, min=0.0, max=1.0, help="Reject masks covering more of the image.",
                                 rich_help_panel="Filters"),
    min_largest: float = typer.Option(0.8, min=0.0, max=1.0, help="Reject masks whose largest part holds less of "
                                      "the foreground.", rich_help_panel="Filters"),
    min_agreement: float = typer.Option(0.6, min=0.0, max=1.0, help="With two teachers: reject below this mask "
                                        "IoU.", rich_help_panel="Filters"),
    max_pixels: MaxPixelsOpt = MAX_PIXELS,
    as_json: JsonOpt = False,
):
    """Label a folder of images with a teacher model, for training a smaller one (distillation).

    Example: edgeseg label photos/ --out data/my-pets --model big.tflite --foreground 8,12 --flip
    """
    from edgeseg.runtime.backends import BackendError
    from edgeseg.data.label import LabelOptions, label_folder

    teachers = [_segmenter_options(model, "image", None, foreground, threads=threads)]
    if teacher2:
        teachers.append(_segmenter_options(teacher2, "image", None, teacher2_foreground, threads=threads))
    try:
        scale_values = tuple(float(s) for s in _split_list(scales))
    except ValueError:
        raise typer.BadParameter(f"{scales!r}: expected numbers, e.g. 0.75,1,1.25", param_hint="--scales") from None
    writable(out, "--out", folder=True)
    try:
        options = LabelOptions(teachers, flip=flip, scales=scale_values, layout=layout,
                               border_px=border_px, min_fg=min_fg, max_fg=max_fg, min_largest=min_largest,
                               min_agreement=min_agreement, max_pixels=max_pixels)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        report = label_folder(images, out, options, progress=not as_json)
    except (BackendError, FileNotFoundError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    reasons = ", ".join(f"{n} {r}" for r, n in report.reasons().items()) or "none"
    console.print(f"kept {len(report.kept)}, rejected {len(report.rejected)} ({reasons}); "
                  f"{report.resumed} decided by an earlier run; dataset: {out}", soft_wrap=True)


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
    models: list[str] = typer.Argument(..., help="Run folders, model files or shipped model names (tutorial, edge, edge160)."),
    data: Optional[str] = typer.Option(None, help="Dataset for accuracy (default: a run folder's training data)."),
    threads: str = typer.Option("", help="Thread counts, e.g. 1,2,4 (default: 1 and all cores)."),
    warmup: int = typer.Option(10, min=0, max=MAX_RUNS, help="Untimed runs first."),
    runs: int = typer.Option(50, min=1, max=MAX_RUNS, help="Timed runs (at least)."),
    min_seconds: float = typer.Option(0.0, min=0.0, max=3600.0, help="Keep timing for at least this long."),
    eval_size: int = typer.Option(100, min=1, help="Test images for accuracy."),
    foreground: Optional[str] = typer.Option(
        None, help="Foreground classes of a third-party class model, with optional weights, e.g. 8,12."),
    device: Optional[str] = typer.Option(None, help="Device name recorded in the results."),
    out: Optional[Path] = typer.Option(None, help="Write the results JSON here."),
    as_json: JsonOpt = False,
):
    """Benchmark models: every backend, precision and thread count, each in its own process.

    Example: edgeseg bench tutorial edge --out results/my-laptop.json
    """
    from edgeseg.benchmarks.runner import BenchOptions, run_bench
    from edgeseg.data import DataError, check_source

    thread_counts = _split_list(threads)
    if not all(t.isdigit() and 0 < int(t) <= MAX_THREADS for t in thread_counts):
        raise typer.BadParameter(f"{threads!r}: expected thread counts from 1 to {MAX_THREADS}, e.g. 1,2,4",
                                 param_hint="--threads")
    if data is not None:
        try:
            check_source(data)
        except DataError as exc:
            raise typer.BadParameter(str(exc), param_hint="--data") from None
    if out:
        writable(out, "--out")
    if data is None:
        from edgeseg.runs import RunFolder

        found = [run for run in map(RunFolder.at, models) if run]
        data = next((d[0] for d in (run.training_data() for run in found) if d), None)  # its first source
    options = BenchOptions(warmup=warmup, runs=runs, min_seconds=min_seconds, data=data, eval_size=eval_size,
                           foreground=_foreground(foreground), device=device)
    if thread_counts:
        options.threads = [int(t) for t in thread_counts]
    try:
        result = run_bench(models, options, progress=not as_json)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if out:
        atomic_write_text(out, json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(bench_table(result))
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
    out: Path = typer.Option(..., help="Folder for the merged table (README.md) and charts."),
):
    """Merge result files from several devices into one table and charts.

    Example: edgeseg bench report results/*.json --out report/
    """
    from edgeseg.benchmarks.report import ResultsError, write_report

    writable(out, "--out", folder=True)
    try:
        written = write_report([str(r) for r in results], out)
    except ResultsError as exc:
        raise fail(str(exc)) from None
    for path in written:
        console.print(str(path), soft_wrap=True)


def bench_table(result: dict) -> Table:
    device = result["device"]
    rows = []
    for r in result["rows"]:
        lat = r.get("latency_ms", {})
        cells = [lat.get("p50"), lat.get("p99"), r.get("fps"), r.get("pipeline_fps"), r.get("x_floor"), r.get("pet_iou"),
                 r.get("miou"), r.get("fg_iou_256"), r.get("size_mb"), r.get("peak_rss_mb")]
        status = r["status"] if r["status"] == "ok" else f"[red]{r['status']}[/] {escape(r.get('error', '')[:60])}"
        rows.append([r["model"], status, str(r["threads"]), *("–" if c is None else f"{c:.3g}" for c in cells)])
    flags = ", ".join(device.get("cpu_flags") or [])
    t = table(f"{device['name']}: {device['cpu']} ({device['cores']} cores; {flags})",
              ["model", "status", "thr", "p50 ms", "p99 ms", "FPS", "pipe FPS", "x floor", "pet IoU", "mIoU",
               "fg IoU 256", "MB", "RSS MB"], rows, left=2)
    t.caption = ("x floor: p50 over the time the model's multiply-adds take at this CPU's measured fp32 peak; "
                 "below 1 is faster than that peak (int8 kernels do more per cycle). pipe FPS: the whole 640x480 "
                 "live step.")
    if not any(r.get("pet_iou") is not None or r.get("miou") is not None for r in result["rows"]):
        t.caption += " No accuracy was measured: pass --data DATASET (a run folder's training data is the default)."
    return t


_stopped_by: list[signal.Signals] = []


def _stop_signals_unwind_like_ctrl_c() -> None:
    """SIGTERM (timeout, systemd, docker stop) and SIGHUP (a closed terminal) unwind a command as Ctrl-C does, so
    it cleans up after itself: bench's worker processes are killed, temporary files removed. ``webcam`` installs
    its own handlers while it runs, to finalise its outputs and report the signal."""
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]

    def unwind(signum, _frame):
        _stopped_by.append(signal.Signals(signum))
        for n in names:  # a second signal must not cut the clean-up short
            signal.signal(getattr(signal, n), signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for n in names:
        signal.signal(getattr(signal, n), unwind)


VERBOSE_FLAGS = ("--verbose", "-v")


def verbose_first(args: list[str]) -> list[str]:
    """``edgeseg predict x --verbose`` as ``edgeseg --verbose predict x``: the flag is the top command's, and
    users put it at the end (no sub-command has options of those names; words after ``--`` are left alone)."""
    head = args[:args.index("--")] if "--" in args else args
    flags = [a for a in head if a in VERBOSE_FLAGS]
    if not flags:
        return args
    return [flags[0], *(a for a in head if a not in VERBOSE_FLAGS), *args[len(head):]]


def main() -> None:
    """The console script: usage errors exit 2, runtime errors 1, both as one ``error:`` line; a stop signal
    128 + its number."""
    try:  # typer vendors click from 0.26 on
        from typer._click.exceptions import UsageError
    except ImportError:
        from click.exceptions import UsageError

    _stop_signals_unwind_like_ctrl_c()
    try:
        code = app(args=verbose_first(sys.argv[1:]), standalone_mode=False)  # a typer.Exit comes back as its exit code (130 for Ctrl-C)
    except UsageError as exc:
        message = exc.format_message()
        if message:  # no sub-command: click printed the help and has nothing to add
            command = exc.ctx.command_path if exc.ctx else "edgeseg"
            err.print(f"[bold red]error:[/] {escape(message)} (see: {command} --help)")
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("[bold red]error:[/] aborted")
        raise SystemExit(1) from None
    if _stopped_by:
        err.print(f"[bold red]error:[/] stopped by {_stopped_by[0].name}")
        raise SystemExit(128 + _stopped_by[0])
    raise SystemExit(code if isinstance(code, int) else 0)
