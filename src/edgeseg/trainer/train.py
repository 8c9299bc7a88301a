"""Training: ``edgeseg train`` as a library call returning a :class:`TrainReport`.

A run folder holds everything a run produces: ``model.keras`` (the epoch with the best validation pet
IoU), ``metrics.json``, ``run.json`` (settings, versions, data summary), ``history.csv``, TensorBoard logs,
``curves.png`` and ``predictions.png``. Running the same command again after an interruption resumes from ``backup/``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from edgeseg import __version__
from edgeseg.contract import CLASS_NAMES, FOREGROUND_CLASSES, FORMATS, trimap_classes
from edgeseg.data import (
    DataError, DataSource, Outline, SegmentationData, as_hw, backgrounds_root, concatenate, iter_full_resolution,
    load_backgrounds, load_sources, parse_sources,
)
from edgeseg.errors import SettingError, setting
from edgeseg.io import atomic_write_text, folder_lock
from edgeseg.runtime.alpha import softmax
from edgeseg.runtime.image_io import image_files
from edgeseg.runs import RunFolder
from edgeseg.evaluation.mask_quality import MaskQuality, mean_quality
from edgeseg.evaluation.metrics import SegmentationMetrics, argmax_metrics
from edgeseg.trainer import Augment, Loss, LrSchedule, Strategy, Upsampling, choice
from edgeseg.trainer import data as data_mod

log = logging.getLogger("edgeseg")


@dataclass
class TrainConfig:
    """Settings of one training run (all recorded in run.json)."""

    model: str = "unet_mobilenetv2"
    data: list[str] = field(default_factory=lambda: ["oxford_iiit_pet"])  # sources, each "PATH[:WEIGHT]"
    out: str = "runs/unet_mobilenetv2"
    epochs: int = 20
    batch_size: int = 32
    img_size: int | tuple[int, int] = 128  # the input's side, or (height, width); "WIDTHxHEIGHT" is read too
    encoder_weights: str = "imagenet"
    alpha: float = 1.0
    fine_tune: int = 0
    dropout: float = 0.0
    upsampling: Upsampling = Upsampling.TRANSPOSE
    loss: Loss = Loss.CE
    learning_rate: float = 1e-3
    lr_schedule: LrSchedule = LrSchedule.CONSTANT
    class_weights: str = "none"  # "none", "balanced" or comma-separated weights per class
    augment: Augment = Augment.STANDARD  # see edgeseg.trainer.data.AUGMENTATIONS
    backgrounds: list[str] = field(default_factory=list)  # photo folders the "webcam" augmentation pastes onto
    outline: Outline = Outline.BAND  # what a binary mask's outline teaches
    subject: str = "pet"  # the foreground class's name in the artifact ("person" for portraits)
    early_stopping: int = 5  # patience in epochs, 0 disables
    bn_refresh_batches: int = 8  # training batches that re-estimate BatchNorm statistics each epoch; 0 disables
    mixed_precision: bool = False
    strategy: Strategy = Strategy.AUTO
    val_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None  # use at most this many images per split (quick runs)
    data_dir: str | None = None  # tfds data_dir
    init_from: str | None = None  # start from this .keras model's weights (same architecture), e.g. to fine-tune
    overwrite: bool = False

    def __post_init__(self):
        if isinstance(self.data, str):  # one source
            self.data = [self.data]
        for name, enum in _CHOICES.items():  # plain strings (a run.json, a script) become their Enum members
            setattr(self, name, choice(enum, getattr(self, name), name))
        self.img_size = parse_img_size(self.img_size)

    @property
    def input_hw(self) -> tuple[int, int]:
        """The model's input (height, width)."""
        return as_hw(self.img_size)


def parse_img_size(value) -> int | tuple[int, int]:
    """An input size as a side (128, "128") or (height, width) ((144, 256), [144, 256] from a run.json, or
    "256x144" as a frame is written, width first); a square pair becomes its side."""
    if isinstance(value, str):
        try:
            value = int(value) if "x" not in value else tuple(int(v) for v in value.lower().split("x"))[::-1]
        except ValueError:
            raise ValueError(f"input size {value!r}: expected a side such as 128, or WIDTHxHEIGHT such as 224x128") \
                from None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"input size {value!r}: expected (height, width)")
        value = (int(value[0]), int(value[1]))
        return value[0] if value[0] == value[1] else value
    return int(value)


_CHOICES = {"upsampling": Upsampling, "loss": Loss, "lr_schedule": LrSchedule, "augment": Augment,
            "outline": Outline, "strategy": Strategy}


@dataclass
class TrainReport:
    """What a run produced and how well the best model does on the test split."""

    run_dir: str
    model_path: str
    epochs_run: int
    resumed_from_epoch: int
    wall_time_s: float
    train_images_per_s: float
    test_metrics: dict[str, SegmentationMetrics]  # per source: class argmax at the model's input size
    test_mask: MaskQuality  # the runtime mask (--edges bilinear) at each image's own resolution, mean over sources
    test_mask_by_source: dict[str, MaskQuality]  # the same per source: pet IoU is the headline
    data: dict
    history: dict = field(default_factory=dict)
    subject: str = "pet"  # what the masks show: "pet IoU" is this subject's IoU
    already_finished: bool = False  # the run was done with these settings: nothing trained, its report read back

    def to_dict(self) -> dict:
        d = asdict(self)
        d["test_metrics"] = {name: m.to_dict() for name, m in self.test_metrics.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainReport":
        """The report a run wrote (its metrics.json)."""
        metrics = {name: SegmentationMetrics(**{**m, "class_names": tuple(m["class_names"])})
                   for name, m in d["test_metrics"].items()}
        masks = {name: MaskQuality(**m) for name, m in d["test_mask_by_source"].items()}
        return cls(**{**d, "test_metrics": metrics, "test_mask": MaskQuality(**d["test_mask"]),
                      "test_mask_by_source": masks})


def choose_strategy(name: str):
    """``tf.distribute`` strategy: multi-worker when TF_CONFIG names several workers, mirrored over
    several GPUs, else the default (one device, the GPU when there is one)."""
    import tensorflow as tf

    if name == "auto":
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
        if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief() -> bool:
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and task.get("index", 0) == 0


def parse_class_weights(spec: str, train_masks: np.ndarray, num_classes: int = 3) -> np.ndarray | None:
    if spec == "none":
        return None
    if spec == "balanced":
        return data_mod.balanced_class_weights(train_masks, num_classes)
    try:
        weights = np.array([float(w) for w in spec.split(",")])
    except ValueError:
        weights = np.array([])
    if weights.shape != (num_classes,) or not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(
            f"class weights must be 'none', 'balanced' or {num_classes} non-negative numbers like 2,1,2; received {spec!r}"
        )
    if not weights.any():  # a loss of 0 at every pixel: the run would end as it began
        raise ValueError(f"class weights {spec!r}: every class weighs 0, so nothing would be learned")
    return weights


def validate(config: TrainConfig) -> None:
    """Reject settings that cannot train (a SettingError naming the setting, or FileNotFoundError for
    ``init_from``) before any data is read. Choices are checked as the config is made (``__post_init__``)."""
    from edgeseg.trainer.data import get_augmentation
    from edgeseg.trainer.models import check_model_name

    with setting("model"):
        check_model_name(config.model)
    with setting("subject"):
        trimap_classes(config.subject)
    with setting("data"):
        parse_sources(config.data)
    pastes = bool(get_augmentation(config.augment) and get_augmentation(config.augment).zoom_out)
    if pastes and not config.backgrounds:
        raise SettingError("augment", f"{config.augment} pastes the subjects onto other photos: give --backgrounds "
                           "FOLDER")
    if config.backgrounds and not pastes:  # they would be read and never used
        raise SettingError("backgrounds", f"they are the photos --augment webcam pastes subjects onto; --augment "
                           f"{config.augment} pastes none")
    for folder in config.backgrounds:
        if not Path(folder).is_dir():
            raise SettingError("backgrounds", f"{folder}: not a folder")
        if not image_files(backgrounds_root(folder)):  # found before the training data is read, not after
            raise SettingError("backgrounds", f"{folder} holds no photos (JPEG, PNG, ...) to paste subjects onto")
    if any(side < 32 or side % 32 for side in config.input_hw):
        raise SettingError("img_size", "input height and width must be multiples of 32 (the encoder halves them 5 "
                           "times), received {}x{} (width x height)".format(*config.input_hw[::-1]))
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise SettingError("learning_rate", f"the learning rate must be positive, received {config.learning_rate}")
    if not 0 < config.val_fraction <= 0.5:  # the best checkpoint is chosen on the validation split
        raise SettingError("val_fraction", "the share of training images held out for validation must be above 0 "
                           f"(the best checkpoint is chosen on them) and at most 0.5, received {config.val_fraction:g}")
    if not (math.isfinite(config.alpha) and config.alpha > 0):
        raise SettingError("alpha", f"alpha (the encoder's width multiplier) must be positive, received {config.alpha}")
    _check_model_options(config)
    if config.init_from:
        _check_init_from(config)
    if config.class_weights not in ("none", "balanced"):
        with setting("class_weights"):
            parse_class_weights(config.class_weights, np.zeros(1, np.uint8))
    if config.overwrite:
        _check_overwrite(config)
    _check_resume(config)


# The settings that shape a network's weights: --init-from takes a model built with the same ones
ARCHITECTURE = ("model", "alpha", "upsampling")


# What an option sets, for a model that has none: the message that refuses it
_HAS_NO = {"encoder_weights": "pretrained encoder", "fine_tune": "pretrained encoder to unfreeze",
           "alpha": "encoder width multiplier", "dropout": "decoder dropout", "upsampling": "choice of decoder upsampling"}


def _check_model_options(config: TrainConfig) -> None:
    """Refuse an architecture option the model would ignore (given a value other than its default)."""
    from edgeseg.trainer.models import MODEL_OPTIONS

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for name, what in _HAS_NO.items():
        value = getattr(config, name)
        unused = name not in MODEL_OPTIONS[config.model] and value != defaults[name]
        if unused and not (name == "encoder_weights" and str(value).lower() == "none"):  # none: what it has
            takes = [m for m, options in MODEL_OPTIONS.items() if name in options]
            raise SettingError(name, f"{config.model} has no {what}, so it would be ignored; it is for "
                                     f"{', '.join(takes)}")


def _init_from_model(config: TrainConfig) -> Path:
    """The .keras file ``--init-from`` names: itself, or a run folder's model.keras (as a run folder stands for its
    model wherever one is read)."""
    path = Path(config.init_from)
    run = RunFolder.at(path)
    if run:
        if not run.model.is_file():
            raise SettingError("init_from", f"run folder {run.path} holds no model.keras to start from")
        return run.model
    if not path.is_file():
        raise FileNotFoundError(f"--init-from model {config.init_from} not found")
    if path.suffix.lower() != FORMATS["keras"].suffix:  # Keras's own message is about SavedModels
        raise SettingError("init_from", f"{path} is not a Keras model ({path.suffix or 'no suffix'}): --init-from "
                                        "takes a .keras model or a training run folder")
    return path


def _check_init_from(config: TrainConfig) -> None:
    """The model to start from exists and, where its run.json says how it was built, is built as this run's is."""
    path = _init_from_model(config)
    built = (RunFolder(path.parent).info().get("config") or {}) if path.name == "model.keras" else {}
    differ = [k for k in ARCHITECTURE if k in built and built[k] != getattr(config, k)]
    if differ:
        given = ", ".join(f"--{k.replace('_', '-')} {built[k]}" for k in differ)
        wanted = ", ".join(f"--{k.replace('_', '-')} {getattr(config, k)}" for k in differ)
        raise SettingError("init_from", f"{path} was trained with {given}; this run builds {wanted}, which its "
                                        f"weights do not fit: train with {given}, or leave --init-from out")


def _load_init_from(model, config: TrainConfig) -> None:
    """``config.init_from``'s weights into ``model`` (matched by layer structure, whatever is trainable now)."""
    from edgeseg.trainer.models import load_fitting_weights

    load_fitting_weights(model, _init_from_model(config), "init_from",
                         f"a {config.model} model built with these settings")


def _check_overwrite(config: TrainConfig) -> None:
    """--overwrite removes the run folder: refuse any other folder, and one that holds a dataset to train on."""
    run = Path(config.out).resolve()
    found = RunFolder.at(run)  # the run itself: RUN/export stands for its run only where a model is read
    if run.is_dir() and any(run.iterdir()) and not (found and found.path.resolve() == run):
        raise SettingError("out", f"{config.out} holds files but is no edgeseg run (no run.json or model.keras): "
                           "--overwrite removes only run folders; choose another --out")
    inside = [s.location for s in parse_sources(config.data)
              if Path(s.location).exists() and Path(s.location).resolve().is_relative_to(run)]  # not a tfds name
    if inside:
        raise SettingError("out", f"{config.out} holds the training data ({', '.join(inside)}), which --overwrite "
                           "would remove; choose another --out")


# What a resumed run may change: when to stop (to extend a run; a cosine schedule stretches to the new length),
# where it is written from, how it is distributed, and --overwrite itself.
_FREE_ON_RESUME = ("epochs", "early_stopping", "out", "strategy", "overwrite")


def _check_resume(config: TrainConfig) -> None:
    """Refuse to resume an interrupted run with other settings: its backup would be continued under them,
    a model of mixed recipes recorded as the new one."""
    run = Path(config.out)
    if config.overwrite or not (run / "backup").is_dir():
        return
    changed = _changed_settings(config, _FREE_ON_RESUME)
    if changed:
        raise ValueError(f"{run} holds an interrupted run with other settings: {', '.join(changed)}; "
                         "rerun with its settings (run.json) to resume it, or pass --overwrite to start again")


def _changed_settings(config: TrainConfig, free: tuple[str, ...]) -> list[str] | None:
    """The settings of ``config`` other than ``free`` that differ from those the run folder recorded, as
    "NAME RECORDED (now VALUE)"; None when it has no readable record."""
    try:
        recorded = json.loads((Path(config.out) / "run.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(recorded, dict):
        return None
    if isinstance(recorded.get("data"), str):  # runs of one source recorded it as a string
        recorded["data"] = [recorded["data"]]
    return [f"{name} {recorded[name]} (now {value})" for name, value in asdict(config).items()
            if name not in free and name in recorded and not _same(recorded[name], value)]


def _finished(config: TrainConfig) -> TrainReport:
    """The report of the finished run in ``config.out`` when ``config`` is the command that made it (run again,
    a pipeline script finds it done); else an error that says how to train on."""
    run = Path(config.out)
    changed = _changed_settings(config, ("out", "strategy", "overwrite"))  # the same epochs and early stopping
    if changed == []:
        try:
            return TrainReport.from_dict({**json.loads((run / "metrics.json").read_text()), "already_finished": True})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no readable report: said as for other settings
    differ = f" with other settings ({', '.join(changed)})" if changed else ""
    raise FileExistsError(f"{run} already holds a finished run{differ}. To train it further, start a new run from its "
                          f"weights: --init-from {run / 'model.keras'} --out ANOTHER_FOLDER; or pass --overwrite "
                          "to start over")


def _same(recorded, value) -> bool:
    """Equal settings; a path counts as equal when both spellings name the same file, and so does a source
    spec ("PATH:WEIGHT") when its weight is equal too."""
    if recorded == value:
        return True
    if isinstance(recorded, list) and isinstance(value, list):
        return len(recorded) == len(value) and all(map(_same, recorded, value))
    if not (isinstance(recorded, str) and isinstance(value, str)):
        return False
    if os.path.exists(recorded) and os.path.exists(value):
        return os.path.samefile(recorded, value)
    try:
        a, b = DataSource.parse(recorded), DataSource.parse(value)
    except DataError:
        return False
    return a.weight == b.weight and a.location != recorded and _same(a.location, b.location)


def _callbacks(keras, work: Path, config: TrainConfig, best: float | None, mask_quality, train_ds):
    """The run's callbacks. BatchNormalization statistics are refreshed first, then the mask-quality
    callback adds ``val_pet_iou`` to the logs that the checkpoint, early stopping and CSV logger read."""
    from edgeseg.trainer.backup import SafeBackupAndRestore
    from edgeseg.trainer.callbacks import MONITOR, BatchNormRefresh

    cbs = [
        *([BatchNormRefresh(train_ds, config.bn_refresh_batches)] if config.bn_refresh_batches else []),
        mask_quality,
        SafeBackupAndRestore(str(work / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(work / "checkpoints" / "best.keras"), monitor=MONITOR, mode="max", save_best_only=True,
            initial_value_threshold=best,
        ),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(work / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(work / "logs")),
    ]
    if config.early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.early_stopping, restore_best_weights=False))
    return cbs


def read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch history from the CSV log (it spans interrupted and resumed attempts)."""
    if not path.is_file():
        return {}
    rows: dict[int, dict] = {}
    try:
        with path.open() as f:
            for row in csv.DictReader(f):
                rows[int(row["epoch"])] = row  # a resumed epoch overwrites its interrupted attempt
        keys = [k for k in (next(iter(rows.values())) if rows else {}) if k != "epoch"]
        return {"epoch": sorted(rows), **{k: [float(rows[e][k]) for e in sorted(rows)] for k in keys}}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is damaged ({exc}): pass --overwrite to start the run again") from None


def _compile(keras, model, config: TrainConfig, steps_per_epoch: int):
    from edgeseg.trainer.losses import make_loss

    lr = config.learning_rate
    if config.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, config.epochs * steps_per_epoch))
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=make_loss(config.loss),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.MeanIoU(num_classes=len(CLASS_NAMES), sparse_y_pred=False, name="miou"),
        ],
    )


def train(config: TrainConfig, progress: bool = True) -> TrainReport:
    """Train ``config.model`` on ``config.data`` and write the run folder ``config.out``."""
    import keras

    policy = keras.mixed_precision.dtype_policy()
    try:
        with folder_lock(config.out, "training") if _is_chief() else nullcontext():
            return _train(config, progress)
    finally:
        keras.mixed_precision.set_dtype_policy(policy)  # --mixed-precision must not outlive the run


@dataclass
class _Splits:
    """Each split of every source, in the order of ``config.data``."""

    sources: list[DataSource]
    train: list[SegmentationData]
    val: list[SegmentationData]
    test: list[SegmentationData]
    val_labels: list[list[np.ndarray]]  # validation labels at each image's own resolution, per source
    backgrounds: np.ndarray | None = None  # photos that training subjects are pasted onto

    def summary(self) -> dict:
        """Per split: the sources' summaries (with their weights) and the image count."""
        def split(parts):
            by_source = [{**p.summary(), "name": p.name, "weight": s.weight} for s, p in zip(self.sources, parts)]
            return {"images": sum(len(p) for p in parts), "sources": by_source, "skipped": sum(
                (p.skipped for p in parts), [])}

        return {"train": split(self.train), "val": split(self.val), "test": split(self.test)}

    @property
    def weights(self) -> list[float]:
        return [s.weight for s in self.sources]


def _train(config: TrainConfig, progress: bool) -> TrainReport:
    validate(config)
    run = Path(config.out)
    if (run / "model.keras").exists() and not (run / "backup").exists() and not config.overwrite:
        return _finished(config)
    if config.overwrite and _is_chief():
        shutil.rmtree(run, ignore_errors=True)
    splits = _load(config, progress)  # before TensorFlow starts: bad data fails fast, with the file named
    class_weights = parse_class_weights(config.class_weights, np.concatenate([p.masks for p in splits.train]))
    model, strategy, train_ds, val_ds, steps = _build(config, splits, class_weights)
    chief = _is_chief()
    # Non-chief workers of a multi-worker run write their copies to a scratch folder.
    work = run if chief else Path(tempfile.mkdtemp(prefix="edgeseg-worker-"))
    work.mkdir(parents=True, exist_ok=True)  # only once the model exists: a failed build leaves no folder
    if chief:
        _write_run_json(run, config, strategy, splits, class_weights)
    resumed_from, wall = _fit(model, config, work, splits, train_ds, val_ds, steps, progress and chief)
    return _finalise(model, config, run, work, splits, steps, resumed_from, wall, chief)


def _load(config: TrainConfig, progress: bool) -> _Splits:
    sources = parse_sources(config.data)
    load = dict(val_fraction=config.val_fraction, seed=config.seed, limit=config.limit, progress=progress,
                data_dir=config.data_dir)
    size = config.input_hw
    stored = data_mod.cache_size(size) if config.augment != "none" else size
    outline = Outline(config.outline)
    train_data = load_sources(sources, "train", stored, outline=outline, **load)
    total = sum(len(p) for p in train_data)
    if total < config.batch_size:
        raise DataError(f"{', '.join(config.data)}: {total} training images, fewer than one batch of "
                        f"{config.batch_size}: pass --batch-size {total} or less, or add images")
    val_data = load_sources(sources, "val", size, outline=outline, **load)
    test_data = load_sources(sources, "test", size, **load)  # scored against the labels as drawn
    backgrounds = load_backgrounds(config.backgrounds, stored) if config.backgrounds else None
    return _Splits(sources, train_data, val_data, test_data,
                   [_full_labels(config, s, v) for s, v in zip(sources, val_data)], backgrounds)


def _full_labels(config: TrainConfig, source: DataSource, data: SegmentationData) -> list[np.ndarray]:
    """The labels of ``data``'s images at each image's own resolution, in its order."""
    full = {name: labels for name, _, labels in iter_full_resolution(
        source.location, data.split, val_fraction=config.val_fraction, seed=config.seed, limit=config.limit,
        data_dir=config.data_dir)}
    return [full[name] for name in data.names]


def _build(config: TrainConfig, splits: _Splits, class_weights):
    """The compiled model inside its distribution strategy, the training and validation datasets, and the
    steps per epoch."""
    import keras
    import tensorflow as tf

    from edgeseg.trainer.models import build_model

    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = choose_strategy(config.strategy)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds, steps = data_mod.make_mixed_dataset(
        splits.train, splits.weights, config.input_hw, config.batch_size, config.augment, class_weights, config.seed,
        splits.backgrounds)
    train_ds = train_ds.with_options(options)
    val_ds = data_mod.make_dataset(concatenate(splits.val), config.input_hw, config.batch_size,
                                   False).with_options(options)
    with strategy.scope():
        model = build_model(
            config.model, config.input_hw, len(CLASS_NAMES), config.encoder_weights,
            config.fine_tune, config.alpha, config.dropout, config.upsampling,
        )
        if config.init_from:
            _load_init_from(model, config)
        _compile(keras, model, config, steps)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            _multiworker_workarounds(tf, model, next(iter(train_ds)), strategy.num_replicas_in_sync)
    return model, strategy, train_ds, val_ds, steps


def _fit(model, config: TrainConfig, work: Path, splits: _Splits, train_ds, val_ds, steps: int, verbose: bool):
    """Fit, resuming from the backup of an interrupted attempt; returns (epochs done before, wall seconds)."""
    import keras

    from edgeseg.trainer.callbacks import MONITOR, MaskQualityCallback

    previous = read_history(work / "history.csv")
    best = max(previous[MONITOR]) if previous.get(MONITOR) else None
    if previous.get("epoch"):
        log.info("resuming %s from its backup: %d of %d epochs done", work, len(previous["epoch"]), config.epochs)
    mask_quality = MaskQualityCallback({p.name: (p.images, labels) for p, labels in zip(splits.val, splits.val_labels)},
                                       config.batch_size)
    start = time.perf_counter()
    fitted = model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps, shuffle=False,  # it shuffles
        callbacks=_callbacks(keras, work, config, best, mask_quality, train_ds),
        verbose=(1 if sys.stdout.isatty() else 2) if verbose else 0,  # a log file gets a line per epoch, not a bar
    )
    diverged = [(e, x) for e, x in zip(fitted.epoch, fitted.history.get("loss", [])) if not math.isfinite(x)]
    if diverged:  # TerminateOnNaN stopped it: a model of non-finite weights must not be saved as the result
        epoch, loss = diverged[0]
        raise ValueError(f"training diverged: the loss became {loss} in epoch {epoch + 1}, and {work} holds no "
                         f"model.keras; lower --lr (it was {config.learning_rate:g}) or check --class-weights, and "
                         "pass --overwrite to start again")
    return len(previous.get("epoch", [])), time.perf_counter() - start


def _finalise(model, config: TrainConfig, run: Path, work: Path, splits: _Splits, steps: int, resumed_from: int,
              wall: float, chief: bool) -> TrainReport:
    """Test the best checkpoint per source and write model.keras, metrics.json and the plots."""
    import keras

    from edgeseg.trainer.callbacks import runtime_mask_quality

    history = read_history(work / "history.csv")
    epochs_now = len(history.get("epoch", [])) - resumed_from
    best = work / "checkpoints" / "best.keras"
    if best.exists():
        model = keras.models.load_model(best, compile=False)
    # the test labels at full size are read only now, not held through training (the tfds test split is 3,669)
    by_source = {test.name: runtime_mask_quality(model, test.images, _full_labels(config, source, test),
                                                 config.batch_size)
                 for source, test in zip(splits.sources, splits.test)}
    report = TrainReport(
        run_dir=str(run), model_path=str(run / "model.keras"),
        epochs_run=len(history.get("epoch", [])), resumed_from_epoch=resumed_from, wall_time_s=round(wall, 1),
        train_images_per_s=round(epochs_now * steps * config.batch_size / wall, 2) if wall and epochs_now else 0.0,
        test_metrics={test.name: evaluate_model(model, test, config.batch_size, trimap_classes(config.subject))
                      for test in splits.test},
        test_mask=mean_quality(list(by_source.values())), test_mask_by_source=by_source,
        data=splits.summary(), history=history, subject=config.subject,
    )
    if not chief:
        shutil.rmtree(work, ignore_errors=True)
        return report
    _save_model_atomic(model, run / "model.keras")
    atomic_write_text(run / "metrics.json", json.dumps(report.to_dict(), indent=2))
    from edgeseg.evaluation.plots import plot_curves, plot_predictions

    plot_curves(history, run / "curves.png")
    test = concatenate(splits.test)
    images, masks = test.images[:6], test.masks[:6]
    probs = predict_probs(model, images)
    plot_predictions(images, masks, probs.argmax(-1), probs, run / "predictions.png")
    return report


def _multiworker_workarounds(tf, model, batch, replicas: int) -> None:
    """Make Keras 3 fit() work under MultiWorkerMirroredStrategy (keras-team/keras#20585), on this instance.

    1. fit() builds the model by reducing a distributed batch, which fails ("Attempt to convert a value
       (PerReplica...)"): build model, loss and metrics from a local batch instead.
    2. fit() reduces each step's scalar logs with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
       rank-0 tensors: return the logs as rank-1 tensors of one element. One replica (no TF_CONFIG) is not
       reduced, and its logs must stay scalars (TensorBoard writes them).
    """
    model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if replicas == 1:
        return
    for step in ("train_step", "test_step"):
        original = getattr(model, step)
        setattr(model, step, lambda data, f=original: {k: tf.reshape(v, [1]) for k, v in f(data).items()})


def _save_model_atomic(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _write_run_json(run: Path, config: TrainConfig, strategy, splits: _Splits, class_weights) -> None:
    import keras
    import tensorflow as tf

    info = {
        "config": asdict(config),
        "edgeseg_version": __version__,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "device": {"platform": platform.platform(), "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                   "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync},
        "classes": list(trimap_classes(config.subject)),
        "foreground_classes": list(FOREGROUND_CLASSES),
        "class_weights": None if class_weights is None else [float(w) for w in class_weights],
        # absolute, so that export and evaluate find them from anywhere
        "sources": [{"location": s.resolved, "name": s.name, "weight": s.weight} for s in splits.sources],
        "data": splits.summary(),
    }
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "run.json", json.dumps(info, indent=2))


def predict_probs(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (N, H, W, C) of a Keras model on uint8 RGB images."""
    return softmax(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0))


def evaluate_model(model, data: SegmentationData, batch_size: int = 32,
                   classes: tuple[str, ...] = CLASS_NAMES) -> SegmentationMetrics:
    """Test metrics of a Keras model on in-memory data at the model's input size."""
    return argmax_metrics(lambda x: model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0),
                          data.images, data.masks, data.binary, classes)
