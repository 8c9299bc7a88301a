"""``edgeseg bench``: latency, throughput, memory and accuracy of every artifact, one process each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgeseg.benchmarks.device import device_info
from edgeseg.benchmarks.flops import compute_peak_gflops
from edgeseg.contract import format_of
from edgeseg.data import source_here
from edgeseg.runs import RunFolder, keras_runnable
from edgeseg.runtime.composite import FramePath
from edgeseg.runtime.cores import usable_cores
from edgeseg.runtime.effects import Effect

SCHEMA_VERSION = 1
# The live step's frames and effect unless asked otherwise; also what result files from before these were
# recorded measured
FRAME_SIZE = (640, 480)  # (width, height)
EFFECT = Effect.GRAYSCALE_BG


@dataclass
class BenchOptions:
    threads: list[int] = field(default_factory=lambda: sorted({1, usable_cores()}))
    warmup: int = 10
    runs: int = 50
    min_seconds: float = 0.0
    data: str | None = None
    data_dir: str | None = None  # where tfds keeps its datasets (None: its default)
    eval_size: int = 100
    foreground: dict[int, float] | None = None  # for third-party class models (e.g. {8: 1, 12: 1}: cat, dog in VOC)
    device: str | None = None
    timeout_s: float = 900
    frame_size: tuple[int, int] = FRAME_SIZE  # (width, height) of the live step's frames
    effect: Effect = EFFECT  # the live step's effect
    frame_path: FramePath | None = None  # how the live step does its frame-sized work (None: fused with numba)


@dataclass
class ModelEntry:
    path: str
    label: str
    format: str
    precision: str
    export_passed: bool | None = None  # from export_report.json, when the artifact has one


def _metadata(path: Path):
    """The artifact's metadata; None when it has none or cannot be opened (its row then fails on its own)."""
    from edgeseg.runtime.backends import BackendError, open_backend

    try:
        with open_backend(path, threads=1) as backend:
            return backend.metadata
    except BackendError:
        return None


def _artifact_entry(path: Path, label_prefix: str = "", verdicts: dict | None = None) -> ModelEntry:
    """An entry for one model file; format from the table, precision from the artifact's own metadata."""
    fmt = format_of(path)
    meta = _metadata(path) if fmt.exported else None
    precision = meta.precision if meta else ("fp32" if fmt.name == "keras" else "as shipped")
    label = f"{label_prefix} {fmt.name} {precision}" if label_prefix else path.name
    return ModelEntry(str(path), label, fmt.name, precision, (verdicts or {}).get(path.name))


def collect_models(inputs: list[str], notes: list[str] | None = None) -> list[ModelEntry]:
    """Run folders expand to model.keras plus every artifact in RUN/export (labelled ``RUN/ format precision``);
    a shipped model's alias (``edge``) to each format it ships in; files are taken as given. Where TensorFlow is
    missing, a run's model.keras is left out and ``notes`` says so. A file named twice is measured once."""
    from edgeseg.runtime.packaged import resolve_model, shipped_formats

    entries: list[ModelEntry] = []
    for item in inputs:
        run = RunFolder.at(item)
        if run:
            keras = run.model.is_file() and keras_runnable()
            if run.model.is_file() and not keras and notes is not None:
                notes.append(f"{run.model} not measured: Keras models need TensorFlow (pip install \"edgeseg[train]\")")
            prefix = f"{run.path}/"  # never the same as a shipped alias: a run folder may be called "edge" too
            found = [_artifact_entry(run.model, prefix)] if keras else []
            verdicts = run.export_verdicts()
            found += [_artifact_entry(artifact, prefix, verdicts) for artifact in run.artifacts()]
            if not found:
                raise FileNotFoundError(f"{run.path} holds no export/ artifacts" + (
                    " (and its model.keras needs TensorFlow)" if run.model.is_file() else " and no model.keras"))
            entries += found
        elif shipped := shipped_formats(item):
            entries += [_artifact_entry(path, item) for path in shipped]
        else:
            entries.append(_artifact_entry(resolve_model(item)))
    seen: set[Path] = set()  # a file named twice (an alias and its file name) is measured once, as first named
    entries = [e for e in entries if not (Path(e.path).resolve() in seen or seen.add(Path(e.path).resolve()))]
    labels = [e.label for e in entries]
    for e in entries:  # files of the same name from different folders: name the folder too
        if labels.count(e.label) > 1:
            e.label = f"{_naming_folder(Path(e.path))}/{e.label}"
    if len({e.label for e in entries}) < len(entries):  # same folder names too: the paths as given
        for e in entries:
            if labels.count(Path(e.path).name) > 1:
                e.label = e.path
    return entries


def _naming_folder(path: Path) -> str:
    """The folder that tells a file apart: a run's name for the artifacts in its export/ (and export/failed/)."""
    folder = path.parent
    while folder.name in ("export", "failed") and folder.parent != folder:
        folder = folder.parent
    return folder.name


def _status(entry: ModelEntry, ok: bool) -> str:
    if not ok:
        return "failed"
    return "accuracy failed" if entry.export_passed is False else "ok"


def _macs(path: str) -> int | None:
    from edgeseg.benchmarks.flops import tflite_macs

    fmt = format_of(path)
    if fmt.name == "tflite":
        return tflite_macs(path)
    if fmt.name == "keras":
        return None  # measured by the worker, which loads the model anyway
    meta = _metadata(Path(path))
    return meta.macs if meta else None


def with_run_data(models: list[str], options: BenchOptions, notes: list[str] | None = None) -> BenchOptions:
    """``options`` with the first run folder's training data where no data was given: its first source, and where
    the run kept tfds's datasets. A source not on this machine (a run folder copied from another) leaves accuracy
    unmeasured, and ``notes`` says so."""
    if options.data is not None:
        return options
    for run in filter(None, map(RunFolder.at, models)):
        sources = run.training_data()
        if not sources:
            continue
        if not source_here(sources[0]):
            if notes is not None:
                notes.append(f"accuracy not measured: {run.path} was trained on {sources[0]}, which is not on this "
                             "machine; pass --data with a copy of it")
            return options
        return replace(options, data=sources[0], data_dir=options.data_dir or run.tfds_dir())
    return options


def bench_one(entry: ModelEntry, threads: int, options: BenchOptions, accuracy: bool = True) -> dict:
    """One row: run the worker in a subprocess; a crash or timeout becomes a 'failed' row."""
    request = {"model": entry.path, "threads": threads, "warmup": options.warmup, "runs": options.runs,
               "min_seconds": options.min_seconds, "data": options.data if accuracy else None,
               "data_dir": options.data_dir, "eval_size": options.eval_size,
               "foreground": options.foreground, "parent": os.getpid(), "frame_size": list(options.frame_size),
               "effect": options.effect, "frame_path": options.frame_path}
    row = {"model": entry.label, "path": entry.path, "format": entry.format, "precision": entry.precision,
           "threads": threads, "size_mb": round(Path(entry.path).stat().st_size / 2**20, 3)}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(threads)}
    try:
        proc = subprocess.run([sys.executable, "-m", "edgeseg.benchmarks.worker", json.dumps(request)],
                              capture_output=True, text=True, timeout=options.timeout_s, env=env)
        ok = proc.returncode == 0
        if ok:
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            row["error"] = (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1][:500]
    except subprocess.TimeoutExpired:
        ok, row["error"] = False, f"timed out after {options.timeout_s:.0f} s"
    row["status"] = _status(entry, ok)
    return row


def run_bench(inputs: list[str], options: BenchOptions | None = None, progress: bool = True) -> dict:
    """Benchmark every model of ``inputs`` at every thread count; returns the result document."""
    notes: list[str] = []
    options = with_run_data(inputs, options or BenchOptions(), notes)
    entries = collect_models(inputs, notes)
    peaks = {str(t): compute_peak_gflops(t) for t in options.threads}
    # Most threads first: accuracy (thread-independent) is measured there and copied to the other rows.
    threads_order = sorted(options.threads, reverse=True)
    jobs = [(e, t) for e in entries for t in threads_order]
    if progress:
        from edgeseg.progress import track

        jobs = track(jobs, description=f"Benchmarking {len(entries)} models")
    rows = []
    macs_cache: dict[str, int | None] = {}
    accuracy: dict[str, dict] = {}
    for entry, threads in jobs:
        row = bench_one(entry, threads, options, accuracy=entry.path not in accuracy)
        if row["status"] != "failed":
            accuracy.setdefault(entry.path, {k: row.get(k) for k in ("miou", "fg_iou", "fg_iou_256", "pet_iou",
                                                                     "boundary_f")})
            row.update({k: v for k, v in accuracy[entry.path].items() if k not in row})
        if row["status"] != "failed" and entry.path not in macs_cache:
            macs_cache[entry.path] = row.get("macs") or _macs(entry.path)
        row["macs"] = macs_cache.get(entry.path)
        if row["macs"] and "latency_ms" in row:
            floor = 2 * row["macs"] / (peaks[str(threads)] * 1e9) * 1000
            row["floor_ms"] = round(floor, 3)
            row["x_floor"] = round(row["latency_ms"]["p50"] / floor, 2)
        rows.append(row)
    rows.sort(key=lambda r: (next(i for i, e in enumerate(entries) if e.path == r["path"]), r["threads"]))
    return {"schema_version": SCHEMA_VERSION, "device": device_info(options.device),
            "options": asdict(options), "peak_gflops": peaks, "command": " ".join(sys.argv), "rows": rows,
            "notes": notes}
