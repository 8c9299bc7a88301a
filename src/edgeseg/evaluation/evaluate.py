"""``edgeseg evaluate``: how good the mask a user sees is, for any model the runtime runs.

Every model (``.keras``, run folder, ``.tflite``, ``.onnx`` or a shipped name) is run through the
runtime's :class:`~edgeseg.runtime.segmenter.Segmenter` on each image at its own resolution, and scored
with :mod:`edgeseg.evaluation.mask_quality` (headline: pet IoU with border pixels ignored). Keras models
also get the class-argmax metrics at their input size, as during training.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from edgeseg.contract import CLASS_NAMES, is_trimap
from edgeseg.data import TFDS_NAME, DataSource, iter_full_resolution, load_split
from edgeseg.evaluation.flicker import FlickerReport, measure_flicker
from edgeseg.errors import NotFound
from edgeseg.runs import RunFolder
from edgeseg.evaluation.mask_quality import MaskQuality, MaskQualityMeter, mean_quality
from edgeseg.evaluation.metrics import SegmentationMetrics, argmax_metrics


@dataclass
class EvalReport:
    model: str
    data: list[str]
    split: str
    images: int
    mask: MaskQuality  # the runtime's mask at each image's own resolution; the mean over sources
    mask_by_source: dict[str, MaskQuality] = field(default_factory=dict)
    metrics: dict[str, SegmentationMetrics] = field(default_factory=dict)  # per source: class argmax (Keras only)
    settings: dict = field(default_factory=dict)  # the runtime settings the mask was made with
    subject: str = "pet"  # what the mask shows (the model's first foreground class): "pet IoU" is its IoU
    flicker: dict[str, FlickerReport] = field(default_factory=dict)  # per source, when asked for

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = {name: m.to_dict() for name, m in self.metrics.items()}
        return d


def load_keras_model(path: str | Path):
    """Load a ``.keras`` model, or a run folder's ``model.keras``, with a clear error for anything else."""
    import keras

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise NotFound(f"model {path} not found; expected a .keras file or a run folder holding model.keras")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras says "File not found" of it
        raise ValueError(f"{path} is not a Keras model: a .keras file is a zip archive and this one is not (damaged, "
                         "or another kind of file)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # keras raises ValueError, OSError, zipfile errors... for a bad file
        raise ValueError(f"{path} is not a Keras model ({type(exc).__name__}: {exc})") from exc


def is_keras_model(path: str | Path) -> bool:
    """A ``.keras`` file, or a run folder that the runtime runs as its model.keras (nothing exported passed):
    evaluated as Keras (argmax metrics too), which needs TensorFlow. A run folder with a passing artifact is
    scored by that artifact, the one ``webcam`` runs."""
    path = Path(path)
    if path.suffix == ".keras":
        return True
    run = RunFolder.at(path)
    if not run:
        return False
    try:
        return run.runtime_model() == run.model
    except FileNotFoundError:
        return True  # the Keras path then says what is missing


def needs_tensorflow(model: str | Path, data: str | list[str]) -> bool:
    """Whether evaluating ``model`` on ``data`` needs the training stack: a ``.tflite``/``.onnx`` artifact
    or a shipped model on local folders runs on the runtime alone."""
    return is_keras_model(model) or TFDS_NAME in ([data] if isinstance(data, str) else data)


def mask_quality(model: str | Path, data: str, split: str = "test", limit: int | None = None,
                 options: dict | None = None, progress: bool = True, data_dir: str | None = None,
                 draw: dict | None = None) -> MaskQuality:
    """Mask quality of ``model`` through the runtime (default settings unless ``options`` says otherwise);
    ``data_dir``: where tfds keeps its datasets (None: its default); ``draw``: how the validation split is drawn
    (:meth:`~edgeseg.runs.RunFolder.split_draw`)."""
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

    meter = MaskQualityMeter()
    items = iter_full_resolution(data, split, limit=limit, data_dir=data_dir, **(draw or {}))
    if progress:
        from edgeseg.progress import track

        items = track(items, description=f"Measuring masks ({split})", transient=True)
    with Segmenter(SegmenterOptions(model, **(options or {}))) as segmenter:
        for _, image, labels in items:
            meter.add(segmenter.segment(image), labels)
    if not meter.n:
        raise ValueError(f"{data} has no readable images in its {split} split")
    return meter.result()


def mask_quality_by_source(model: str | Path, data: list[str], split: str = "test", limit: int | None = None,
                           options: dict | None = None, progress: bool = True, data_dir: str | None = None,
                           draw: dict | None = None) -> tuple[MaskQuality, dict[str, MaskQuality]]:
    """:func:`mask_quality` on each source, and their mean (each source counting once)."""
    by_source = {DataSource(d).name: mask_quality(model, d, split, limit, options, progress, data_dir, draw)
                 for d in data}
    return mean_quality(list(by_source.values())), by_source


def subject_of(model: str | Path) -> str:
    """What ``model``'s masks show ("pet", "person"): its metadata's first foreground class, "foreground" for a
    model without metadata. A ``.keras`` model's comes from the run.json beside it, without loading it."""
    from edgeseg.runtime.backends import open_backend

    path = Path(model)
    if path.suffix == ".keras":
        classes = RunFolder(path.parent).classes()
        return classes[0] if is_trimap(classes) else CLASS_NAMES[0]
    with open_backend(path) as backend:
        return backend.metadata.subject if backend.metadata else "foreground"


def flicker_by_source(model: str | Path, data: list[str], split: str, clips: int, options: dict | None = None,
                      data_dir: str | None = None, draw: dict | None = None) -> dict[str, FlickerReport]:
    """The video mask's flicker (VIDEO mode, ``options`` such as smoothing) on shaken clips of the first
    ``clips`` photos of each source's ``split``."""
    from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions

    with Segmenter(SegmenterOptions(model, running_mode=RunningMode.VIDEO, **(options or {}))) as segmenter:
        def segment(frame, first):
            if first:
                segmenter.reset()
            return segmenter.segment(frame)

        return {DataSource(d).name: measure_flicker(
            segment, [image for _, image, _ in islice(iter_full_resolution(d, split, data_dir=data_dir,
                                                                            **(draw or {})), clips)])
            for d in data}


def evaluate(model_path: str | Path, data: str | list[str], split: str = "test", limit: int | None = None,
             batch_size: int = 32, progress: bool = True, options: dict | None = None,
             flicker_clips: int = 0, argmax: bool = True, data_dir: str | None = None) -> EvalReport:
    """Mask quality of any model on ``split`` of each source in ``data``; Keras models also get argmax metrics
    (unless ``argmax`` is False: they do not depend on the runtime settings, so a sweep leaves them out).

    ``flicker_clips``: also measure the video mask's flicker on that many shaken photos per source
    (:mod:`edgeseg.evaluation.flicker`); ``options`` may then hold ``smoothing``, which single images ignore.
    ``data_dir``: where tfds keeps its datasets (None: a run folder's, as its training kept them, else tfds's).
    A run folder's validation split is the one its training drew (its ``--val-fraction`` and ``--seed``).
    """
    from edgeseg.runtime.packaged import resolve_model

    data = [data] if isinstance(data, str) else list(data)
    path = Path(model_path)
    run = RunFolder.at(path)
    data_dir = data_dir or (run.tfds_dir() if run else None)
    draw = run.split_draw() if run else {}
    metrics = {}
    if is_keras_model(path):
        path = run.model if run else path
    else:
        path = resolve_model(str(model_path))
    if argmax and path.suffix == ".keras":
        model = load_keras_model(path)

        def logits_of(images):
            return model.predict(images.astype("float32"), batch_size=batch_size, verbose=0)

        for d in data:
            split_data = load_split(d, split, tuple(model.input_shape[1:3]), limit=limit, progress=progress,
                                    data_dir=data_dir, **draw)
            metrics[DataSource(d).name] = argmax_metrics(logits_of, split_data.images, split_data.masks,
                                                         split_data.binary)
    quality, by_source = mask_quality_by_source(path, data, split, limit, options, progress, data_dir, draw)
    flicker = flicker_by_source(path, data, split, flicker_clips, options, data_dir, draw) if flicker_clips else {}
    return EvalReport(str(model_path), data, split, quality.images, quality, by_source, metrics, dict(options or {}),
                      subject_of(path), flicker)
