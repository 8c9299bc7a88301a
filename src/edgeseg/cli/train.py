"""``edgeseg train``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgeseg.cli.app import app, console, default, need_train_extra, option_error, plural, writable
from edgeseg.cli.options import JsonOpt, choices
from edgeseg.cli.tables import by_source, mask_table, metrics_table
from edgeseg.data import Outline
from edgeseg.errors import SettingError
from edgeseg.trainer import MODEL_NAMES, Augment, Loss, LrSchedule, Strategy, Upsampling
from edgeseg.trainer.train import TrainConfig, parse_img_size


C = TrainConfig  # every default below is the dataclass's: one home


@app.command()
def train(
    ctx: typer.Context,
    model: str = typer.Option(C.model, help=f"Architecture: {', '.join(MODEL_NAMES)}.", rich_help_panel="Model"),
    data: list[str] = typer.Option(default(C, "data"), help="'oxford_iiit_pet' (tfds download) or a dataset "
                                   "folder (Oxford layout, or images/ + masks/), with an optional weight: PATH:3 draws "
                                   "its images 3x as often. Repeat for several sources."),
    out: Path = typer.Option(Path(C.out), help="Run folder (rerun the same command to resume)."),
    epochs: int = typer.Option(C.epochs, min=1, help="Epochs (at most; see --early-stopping).",
                               rich_help_panel="Schedule"),
    batch_size: int = typer.Option(C.batch_size, min=1, help="Images per step (over all devices).",
                                   rich_help_panel="Schedule"),
    img_size: str = typer.Option(str(C.img_size), help="Input side, or WIDTHxHEIGHT for a non-square input "
                                 "(e.g. 256x160 for 16:9 webcam frames); multiples of 32.", rich_help_panel="Model"),
    encoder_weights: str = typer.Option(
        C.encoder_weights, help="'imagenet' (downloads), 'none', or a local .weights.h5 (offline).",
        rich_help_panel="Model"),
    alpha: float = typer.Option(C.alpha, help="Encoder width multiplier.", rich_help_panel="Model"),
    fine_tune: int = typer.Option(C.fine_tune, min=0, help="Unfreeze the top N encoder blocks.",
                                  rich_help_panel="Model"),
    dropout: float = typer.Option(C.dropout, min=0.0, max=0.9, help="Dropout inside each decoder block.",
                                  rich_help_panel="Model"),
    upsampling: Upsampling = typer.Option(C.upsampling, metavar="KIND", help="Decoder upsampling: transpose (the "
                                          "tutorial) or bilinear (resize + conv: no checkerboard).",
                                          rich_help_panel="Model"),
    loss: Loss = typer.Option(C.loss, metavar="LOSS", help="ce (cross-entropy) or ce+dice (adds Dice on the subject, "
                              "border ignored).", rich_help_panel="Schedule"),
    learning_rate: float = typer.Option(C.learning_rate, "--lr", help="Adam learning rate.", rich_help_panel="Schedule"),
    lr_schedule: LrSchedule = typer.Option(C.lr_schedule, metavar="SCHEDULE", help=f"{choices(LrSchedule)}.",
                                           rich_help_panel="Schedule"),
    class_weights: str = typer.Option(C.class_weights, help="none, balanced, or weights like 2,1,2 (subject, "
                                      "background, border).", rich_help_panel="Schedule"),
    augment: Augment = typer.Option(C.augment, metavar="AUGMENT", help="standard (random crops, flips, colour "
                                    "jitter), strong (wider crops and jitter, rotation, sensor noise), aspect "
                                    "(standard with crops up to 1.4x wider or taller: for photos stretched to "
                                    "squares), webcam (portraits made webcam-like: half pasted smaller and "
                                    "off-centre onto --backgrounds photos; motion blur, noise) or none.",
                                    rich_help_panel="Data"),
    backgrounds: list[Path] = typer.Option(default(C, "backgrounds"), help="A folder of photos (or a dataset "
                                           "folder's images/) that --augment webcam pastes subjects onto; repeat for "
                                           "several.", rich_help_panel="Data"),
    outline: Outline = typer.Option(C.outline, metavar="OUTLINE", help="A binary mask's outline in training: band (a "
                                    "border band as the trimaps have), ignore (left out of the loss) or none.",
                                    rich_help_panel="Data"),
    subject: str = typer.Option(C.subject, help="What the masks show, named in the model's metadata and reports: "
                                "pet, person, ...", rich_help_panel="Data"),
    early_stopping: int = typer.Option(C.early_stopping, min=0, help="Stop after this many epochs without a better "
                                       "validation IoU; 0 disables.", rich_help_panel="Schedule"),
    bn_refresh_batches: int = typer.Option(
        C.bn_refresh_batches, min=0, help="Re-estimate BatchNorm statistics from this many training batches at each "
        "epoch's end; 0 keeps Keras's moving averages (they lag in short runs).", rich_help_panel="Schedule"),
    mixed_precision: bool = typer.Option(C.mixed_precision, "--mixed-precision", help="float16 compute (GPUs).",
                                         rich_help_panel="Devices"),
    strategy: Strategy = typer.Option(C.strategy, metavar="STRATEGY", help=f"{choices(Strategy)} (multiworker: "
                                      "TF_CONFIG).", rich_help_panel="Devices"),
    val_fraction: float = typer.Option(C.val_fraction, min=0.0, max=0.5, help="Share of trainval held out for "
                                       "validation.", rich_help_panel="Data"),
    seed: int = typer.Option(C.seed, min=0, help="Seed of the split, the shuffling and the initial weights.",
                             rich_help_panel="Data"),
    limit: Optional[int] = typer.Option(C.limit, min=1, help="At most this many images per split (quick runs).",
                                        rich_help_panel="Data"),
    data_dir: Optional[str] = typer.Option(C.data_dir, help="Where tfds keeps its datasets.", rich_help_panel="Data"),
    init_from: Optional[Path] = typer.Option(C.init_from, help="Start from this .keras model's (or run folder's) "
                                             "weights, e.g. to fine-tune.", rich_help_panel="Model"),
    overwrite: bool = typer.Option(C.overwrite, "--overwrite", help="Replace a finished or damaged run in --out."),
    as_json: JsonOpt = False,
):
    """Train a segmentation model; run the same command again to resume an interrupted run.

    Example: edgeseg train --data oxford_iiit_pet --out runs/pets
    """
    writable(out, "--out", folder=True)
    need_train_extra()
    from edgeseg.trainer.train import train as run_training
    from edgeseg.trainer.train import validate

    try:
        size = parse_img_size(img_size)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--img-size") from None
    config = TrainConfig(
        model=model, data=data, out=str(out), epochs=epochs, batch_size=batch_size, img_size=size,
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
    except SettingError as exc:
        raise option_error(exc, ctx) from None
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    report = run_training(config, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(mask_table(f"{model}: test split, runtime mask (--edges bilinear)",
                             by_source(report.test_mask_by_source, report.test_mask), report.subject))
    for name, metrics in report.test_metrics.items():
        console.print(metrics_table(f"{name}: class argmax at the model's input size", {"best model": metrics.to_dict()}))
    if report.already_finished:  # the same command again: the run's own report, read back
        console.print(f"{report.run_dir} was trained with these settings already; nothing to do (--overwrite "
                      "trains it again)", soft_wrap=True)
        return
    skipped = sum(len(d["skipped"]) for d in report.data.values())
    console.print(f"{plural(report.epochs_run, 'epoch')} in {report.wall_time_s:.0f} s "
                  f"({report.train_images_per_s:.1f} images/s); "
                  + (f"{plural(skipped, 'unreadable image')} skipped; " if skipped else "")
                  + f"run folder: {report.run_dir}")
