"""``edgeseg export``: convert a trained Keras model to edge artifacts and check each against Keras."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg.contract import (
    CLASS_NAMES,
    FORMATS,
    TRIMAP_MASK_WEIGHTS,
    ArtifactMetadata,
    Format,
    artifact_name,
    is_trimap,
)
from edgeseg.export import onnx as onnx_export
from edgeseg.export import tflite as tflite_export
from edgeseg.export.base import (
    ArtifactReport,
    ExportError,
    ExportReport,
    Gates,
    Precision,
    get_format,
)
from edgeseg.export.calibration import RECOMMENDED_IMAGES, load_calibration
from edgeseg.export.validate import compare, keras_reference
from edgeseg.errors import NotFound, UsageError
from edgeseg.io import (
    atomic_write_bytes,
    atomic_write_text,
    check_writable_dir,
    folder_lock,
    remove_stale,
    temporary_directory,
)
from edgeseg.runs import EXPORT_REPORT, RunFolder, tfds_dir, training_sources
from edgeseg.runtime.packaged import shipped_formats
from edgeseg.data import DataError, concatenate, load_split, source_here
from edgeseg.evaluation.evaluate import mask_quality_by_source, subject_of
from edgeseg.trainer.macs import keras_macs

log = logging.getLogger("edgeseg")


@dataclass
class ExportOptions:
    """What to export and how to check it."""

    formats: list[str] = field(default_factory=lambda: ["tflite", "onnx"])
    precisions: list[Precision] = field(default_factory=lambda: [Precision.FP32])
    out: str | None = None  # default: <run>/export
    calib_data: list[str] | None = None  # default: the training sources named in run.json
    calib_size: int = RECOMMENDED_IMAGES
    eval_data: list[str] | None = None  # default: the training sources' test splits
    eval_size: int | None = None  # default: the whole split
    batch_size: int = 1  # static batch of the exported input; 0 = dynamic
    uint8_output: bool = False
    force: bool = False
    gates: Gates = field(default_factory=Gates)
    onnx_reduce_range: tuple[bool, ...] = (False, True)  # candidates, tried in order until one passes


def resolve_source(source: str | Path) -> tuple[Path, dict]:
    """The Keras model of a run folder or .keras file, and its run's record; an ExportError naming what
    ``source`` lacks (it needs no TensorFlow: the command line checks it first)."""
    path = Path(source)
    run = RunFolder.at(path)
    path = run.path if run else path  # RUN/export stands for RUN
    model_path = path / "model.keras" if path.is_dir() else path
    if path.is_dir() and not model_path.is_file():
        raise NotFound(f"{path} is not an edgeseg run: it has no model.keras; expected a training run folder "
                       "(edgeseg train --out) or a .keras file")
    if not model_path.is_file():
        shipped = [] if path.exists() else shipped_formats(str(source))
        if shipped:
            raise NotFound(f"{source} is a shipped model: it ships already exported "
                           f"({', '.join(p.name for p in shipped)}), without its Keras model; run it with "
                           f"--model {source}, or export a run of your own (edgeseg train)")
        raise NotFound(f"model {model_path} not found; expected a run folder or a .keras file")
    if model_path.suffix.lower() != FORMATS["keras"].suffix:  # Keras's own message is about SavedModels
        raise NotFound(f"{model_path} is not a Keras model file ({model_path.suffix or 'no suffix'}); export reads a "
                       "training run folder or a .keras file")
    try:
        return model_path, RunFolder(model_path.parent).info()
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def _check_run_data(model_path: Path, train_data: list[str], options: ExportOptions, int8: bool) -> None:
    """Before the model loads: the run's training data, where the checks (and int8's calibration) default to it,
    is on this machine; else what to pass instead (a run folder copied from the machine that trained it)."""
    options_for = [name for name, given, used in (("--eval-data", options.eval_data, True),
                                                  ("--calib-data", options.calib_data, int8)) if used and not given]
    missing = [s for s in train_data if not source_here(s)]
    if options_for and missing:
        raise ExportError(f"{model_path.parent} was trained on {', '.join(missing)}, which is not on this machine "
                          f"(a run folder copied from another?): pass {' and '.join(options_for)} with a copy of "
                          "its data")


STAGING_PREFIX = ".unchecked."  # OUT/.unchecked.PID.d holds the artifacts being written and checked


def _check_writable(out: Path) -> None:
    """Before any work; the folder itself is made only when its first artifact is staged, so that an export that
    fails before (a file that is no model, data not found) leaves no empty export/ behind, which would make the
    folder it sits in look like a run."""
    try:
        check_writable_dir(out)
    except OSError as exc:
        raise ExportError(f"output folder: {exc}") from exc


def _load_model(path: Path):
    """The Keras model at ``path``, computing in float32 (a mixed-precision one converted: its artifacts are
    float32 graphs, checked against it)."""
    from edgeseg.evaluation.evaluate import load_keras_model
    from edgeseg.trainer.models import float32_copy

    try:
        return float32_copy(load_keras_model(path))
    except (FileNotFoundError, ValueError) as exc:
        raise ExportError(str(exc)) from exc


def plan(options: ExportOptions) -> tuple[list[tuple[Format, Precision]], list[str]]:
    """(format, precision) pairs to write, and notes on requested pairs a format does not support."""
    pairs, notes = [], []
    for name in options.formats:
        fmt = get_format(name)
        for precision in options.precisions:
            if precision in fmt.precisions:
                pairs.append((fmt, precision))
            else:
                notes.append(f"{fmt.name} has no {precision.value} export (supported: "
                             f"{', '.join(p.value for p in fmt.precisions)}); skipped")
    if not pairs:  # formats and precisions that never meet: a bad command line
        raise UsageError("nothing to export: " + "; ".join(notes))
    return pairs, notes


def export_model(source: str | Path, options: ExportOptions | None = None, progress: bool = True) -> ExportReport:
    """Export ``source`` (run folder or .keras) to every requested format x precision and check each one.

    Returns the report. Each artifact is written to a staging folder inside OUT and moved into OUT only
    once it has passed its check, so an export that is killed or fails midway never leaves an unchecked
    file where the runtime or a script would pick it up. An artifact that fails its gate goes to
    ``OUT/failed/`` instead; the report keeps its numbers. Call ``report.raise_for_failures()`` to turn
    failures into a :class:`ToleranceError`.
    """
    options = options or ExportOptions()
    pairs, notes = plan(options)
    model_path, run_info = resolve_source(source)
    out = Path(options.out) if options.out else model_path.parent / "export"
    _check_writable(out)
    int8 = any(p is Precision.INT8 for _, p in pairs)  # dynamic-range quantization needs no calibration
    train_data = training_sources(run_info)
    _check_run_data(model_path, train_data, options, int8)
    with folder_lock(out, "export"):  # a second one at once would write its report without the first's artifacts
        return _export(model_path, run_info, train_data, out, pairs, int8, notes, options, progress)


def _export(model_path: Path, run_info: dict, train_data: list[str], out: Path, pairs: list[tuple[Format, Precision]],
            int8: bool, notes: list[str], options: ExportOptions, progress: bool) -> ExportReport:
    """:func:`export_model` once its settings are checked and ``out`` is held."""
    data_dir = tfds_dir(run_info)  # where training found tfds's datasets
    model = _load_model(model_path)
    size = (int(model.input_shape[1]), int(model.input_shape[2]))  # (height, width)
    eval_sources = options.eval_data or train_data
    if not eval_sources:
        raise ExportError(f"{model_path} has no run.json naming its data: pass --eval-data for the accuracy checks")
    try:
        evaluation = concatenate([load_split(s, "test", size, limit=options.eval_size, progress=progress,
                                             data_dir=data_dir) for s in eval_sources])
    except DataError as exc:
        raise ExportError(f"evaluation data: {exc}") from exc

    calibration = None
    if int8:
        calib_source = options.calib_data or train_data
        if not calib_source:
            raise ExportError(f"{model_path} has no run.json naming its training data: pass --calib-data for int8")
        calibration = load_calibration(calib_source, size, options.calib_size, options.force, progress, data_dir)

    reference = keras_reference(model, evaluation.images, evaluation.masks)
    report = ExportReport(str(model_path), str(out), len(evaluation), 0 if calibration is None else len(calibration),
                          reference.metrics.mean_iou, reference.metrics.foreground_iou, notes=notes,
                          subject=subject_of(model_path))
    remove_stale(out, STAGING_PREFIX)  # what an export killed by a signal left unchecked
    job = _Job(model, model_path, run_info, options, calibration, reference, eval_sources, out,
               out / f"{STAGING_PREFIX}{os.getpid()}.d")
    report.keras_mask = job.user_view(model_path)
    made = not out.exists()
    try:
        job.stage.mkdir(parents=True, exist_ok=True)
        steps = (job.finish(artifact) for artifact in _steps(job, pairs))
        if progress:
            from edgeseg.progress import track

            steps = track(steps, total=len(pairs), description="Exporting and checking")
        report.artifacts.extend(steps)
    finally:
        shutil.rmtree(job.stage, ignore_errors=True)
        if made and out.is_dir() and not any(out.iterdir()):  # stopped before its first artifact
            out.rmdir()
    document = report.to_dict()
    document["artifacts"] = _still_there(out, report) + document["artifacts"]
    document["passed"] = all(a.get("passed") for a in document["artifacts"])
    atomic_write_text(out / EXPORT_REPORT, json.dumps(document, indent=2))
    return report


def _still_there(out: Path, report: ExportReport) -> list[dict]:
    """The entries of OUT's earlier report whose artifact this export did not write again and which are still in
    OUT (or OUT/failed/): exporting one more precision keeps the checks of the others on record."""
    try:
        earlier = json.loads((out / EXPORT_REPORT).read_text()).get("artifacts", [])
    except (OSError, ValueError, AttributeError):  # none, or damaged: this export's entries alone
        return []
    written = {Path(a.path).name for a in report.artifacts}
    return [a for a in earlier if isinstance(a, dict) and isinstance(a.get("path"), str)
            and (name := Path(a["path"]).name) not in written
            and ((out / name).is_file() or (out / "failed" / name).is_file())]


@dataclass
class _Job:
    """One export: the model, its settings and checks, and where its artifacts are staged (``stage``) until
    they have passed (then ``out``)."""

    model: object  # keras.Model
    model_path: Path
    run_info: dict
    options: ExportOptions
    calibration: object
    reference: object  # edgeseg.export.validate.Reference
    eval_sources: list[str]
    out: Path
    stage: Path

    def __post_init__(self):
        classes = tuple(self.run_info.get("classes", CLASS_NAMES))
        self.trimap = is_trimap(classes) and self.model.output_shape[-1] == len(CLASS_NAMES)
        self.classes = classes if self.trimap else CLASS_NAMES
        self.size = (int(self.model.input_shape[1]), int(self.model.input_shape[2]))  # (height, width)
        self.macs = keras_macs(self.model)["total"]
        self.source_metrics = _source_metrics(self.model_path.parent)

    def metadata(self, fmt: Format, precision: Precision, input_dtype: str) -> ArtifactMetadata:
        return ArtifactMetadata(
            self.model.name, fmt.name, precision.value, self.size, input_dtype, classes=self.classes,
            mask_weights=TRIMAP_MASK_WEIGHTS if self.trimap else None, source_model=str(self.model_path),
            source_metrics=self.source_metrics, macs=self.macs)

    def path(self, fmt: Format, precision: Precision) -> Path:
        return self.stage / artifact_name(self.model.name, fmt, precision)

    def user_view(self, path: str | Path) -> dict:
        """What the user sees: the runtime's mask at each test image's own resolution (the mean over sources)."""
        return mask_quality_by_source(path, self.eval_sources, "test", self.options.eval_size,
                                      progress=False)[0].to_dict()

    def check(self, artifact: ArtifactReport) -> ArtifactReport:
        if artifact.path:
            artifact.size_mb = round(Path(artifact.path).stat().st_size / 2**20, 3)
            compare(artifact, self.reference, self.options.gates)
        return artifact

    def finish(self, artifact: ArtifactReport) -> ArtifactReport:
        """Once per written artifact (not per rejected int8 candidate): move it aside if it failed, then
        measure the mask it gives users."""
        artifact = _settle(artifact, self.out)
        if artifact.path:
            artifact.mask = self.user_view(artifact.path)
        return artifact


def _source_metrics(run_dir: Path) -> dict:
    """The run's test scores that an artifact carries: pet IoU of the runtime mask, overall and per source."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        return {}
    recorded = json.loads(metrics.read_text())
    by_source = recorded.get("test_mask_by_source") or {}
    return {"pet_iou": recorded.get("test_mask", {}).get("pet_iou"),
            "pet_iou_by_source": {name: q.get("pet_iou") for name, q in by_source.items()}}


def _settle(artifact: ArtifactReport, out: Path) -> ArtifactReport:
    """Move a checked artifact from the staging folder to OUT if it passed its gate, else to OUT/failed/,
    where no glob over OUT picks it up."""
    if artifact.path:
        target = (out if artifact.passed else out / "failed") / Path(artifact.path).name
        # an earlier export's file of that name, passed or failed, would now stand for this one
        (out / "failed" / target.name if artifact.passed else out / target.name).unlink(missing_ok=True)
        target.parent.mkdir(exist_ok=True)
        os.replace(artifact.path, target)
        artifact.path = str(target)
    return artifact


def _steps(job: _Job, pairs):
    """Write (into the staging folder) and check each artifact, format by format (each format's writer in
    :data:`WRITERS`)."""
    for name, writer in WRITERS.items():
        precisions = [p for f, p in pairs if f.name == name]
        if precisions:
            yield from writer(job, precisions)


def _tflite_artifacts(job: _Job, precisions):
    """Every TFLite precision from one SavedModel; a conversion error is recorded and leaves no file."""
    fmt = FORMATS["tflite"]

    def metadata(p: Precision) -> ArtifactMetadata:  # full-integer models take camera pixels as uint8
        return job.metadata(fmt, p, "uint8" if p is Precision.INT8 else "float32")

    try:
        blobs = tflite_export.export_tflite(job.model, precisions, metadata, job.calibration, job.options.batch_size,
                                            job.options.uint8_output)
    except Exception as exc:  # the converter raises many types; record it, keep going with other formats
        blobs = {p: exc for p in precisions}
    for precision in precisions:
        yield job.check(_write(job.path(fmt, precision), fmt, precision, blobs[precision]))


def _onnx_artifacts(job: _Job, precisions):
    """fp32 through tf2onnx, int8 by static quantization of that fp32 model."""
    fmt = FORMATS["onnx"]
    settings = {"opset": onnx_export.OPSET, "converter": "tf2onnx.convert.from_keras"}
    try:
        proto = onnx_export.convert_fp32(job.model, job.options.batch_size)
        onnx_export.set_metadata(proto, job.metadata(fmt, Precision.FP32, "float32"))
        fp32_blob = proto.SerializeToString()
    except Exception as exc:  # tf2onnx / onnx.checker failures
        fp32_blob = exc
    if Precision.FP32 in precisions:
        yield job.check(_write(job.path(fmt, Precision.FP32), fmt, Precision.FP32, fp32_blob, settings))
    if Precision.INT8 in precisions:
        yield _onnx_int8(job, fp32_blob, settings)


WRITERS = {"tflite": _tflite_artifacts, "onnx": _onnx_artifacts}  # keyed like edgeseg.contract.FORMATS
MESSAGE_CHARS = 300  # of a converter's error in the report and the table


def _write(path: Path, fmt: Format, precision: Precision, blob, settings: dict | None = None) -> ArtifactReport:
    report = ArtifactReport(fmt.name, precision.value, str(path), settings=dict(settings or {}))
    if isinstance(blob, Exception):  # its first line: the converters append their whole graph (--verbose shows it)
        first = next((line.strip() for line in str(blob).splitlines() if line.strip()), "")
        log.debug("%s %s conversion failed: %s", fmt.name, precision.value, blob)
        report.failures.append(f"conversion failed: {type(blob).__name__}: {first[:MESSAGE_CHARS]}")
        report.path = ""
        return report
    remove_stale(path.parent, f".{path.stem}.", path.suffix)  # temp files of an export that was killed
    atomic_write_bytes(path, blob)
    return report


def _onnx_int8(job: _Job, fp32_blob, settings: dict):
    """Quantize with each ``reduce_range`` candidate until one passes its gate (the accuracy check, not an
    assumption about the CPU, picks the setting); keep the best one when none passes."""
    options, path = job.options, job.path(FORMATS["onnx"], Precision.INT8)
    metadata = job.metadata(FORMATS["onnx"], Precision.INT8, "float32")
    if isinstance(fp32_blob, Exception):
        return _write(path, FORMATS["onnx"], Precision.INT8, fp32_blob)
    best, best_blob = None, None
    with temporary_directory("onnx") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        fp32_path.write_bytes(fp32_blob)
        for reduce_range in options.onnx_reduce_range:
            candidate = {**settings, "quantization": "static QDQ, per-channel, MinMax", "reduce_range": reduce_range}
            try:
                blob = onnx_export.quantize_int8(fp32_path, job.calibration, reduce_range, metadata)
            except Exception as exc:  # onnxruntime.quantization raises many types
                blob = exc
            report = job.check(_write(path, FORMATS["onnx"], Precision.INT8, blob, candidate))
            if best is None or report.agreement > best.agreement:
                best, best_blob = report, blob
            if report.passed:
                return report
            log.info("onnx int8 with reduce_range=%s failed its gate: %s", reduce_range, "; ".join(report.failures))
    if best_blob is not None and not isinstance(best_blob, Exception):
        atomic_write_bytes(path, best_blob)
    best.settings["tried_reduce_range"] = list(options.onnx_reduce_range)
    return best
