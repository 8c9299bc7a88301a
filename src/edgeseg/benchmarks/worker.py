"""Benchmark one model at one thread count, in its own process (``python -m edgeseg.benchmarks.worker``).

A process per measurement keeps peak memory per backend honest and lets a crashing backend fail alone.
Reads a JSON request from argv[1], prints a JSON row on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

import cv2
import numpy as np


PERCENTILES = (50, 90, 95, 99, 99.9)  # as TFLite's benchmark_model and onnxruntime_perf_test report them


def _stats(ms: list[float], cpu_percent: float | None = None) -> dict:
    """Mean, percentiles (keys p50 ... p99.9), count and the average CPU use of the timed runs (100 = one core)."""
    a = np.asarray(ms)
    stats = {"mean": round(float(a.mean()), 3),
             **{f"p{q:g}": round(float(np.percentile(a, q)), 3) for q in PERCENTILES}, "n": int(a.size)}
    if cpu_percent is not None:
        stats["cpu_percent"] = round(cpu_percent, 1)
    return stats


def _timed(fn, warmup: int, runs: int, min_seconds: float) -> tuple[list[float], float]:
    """Each run's milliseconds after ``warmup`` untimed ones, and the process's average CPU % over them."""
    for _ in range(warmup):
        fn()
    times, start, cpu = [], time.perf_counter(), time.process_time()
    while len(times) < runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return times, 100 * (time.process_time() - cpu) / max(time.perf_counter() - start, 1e-9)


def _accuracy(path: str, data: str, eval_size: int, threads, foreground, data_dir: str | None = None) -> dict:
    """Accuracy on the data's test split.

    ``fg_iou_256``: foreground IoU of the soft mask (> 0.5) through the segmenter, at 256 x 256 for every
    model: the like-for-like comparison across input sizes and third-party models. For edgeseg models also
    ``miou`` and ``fg_iou`` from the class argmax at the model's own input size, as the export checks.
    """
    from edgeseg.data import load_split
    from edgeseg.runtime.backends import open_backend
    from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions
    from edgeseg.evaluation.evaluate import mask_quality
    from edgeseg.evaluation.metrics import FOREGROUND_CLASSES, segmentation_metrics

    result = {"miou": None, "fg_iou": None}
    with open_backend(path, threads=threads) as backend:
        if backend.metadata:
            size = backend.input.shape[1]
            test = load_split(data, "test", size, limit=eval_size, progress=False, data_dir=data_dir)
            batch = test.images if backend.input.dtype == np.uint8 else test.images.astype(np.float32)
            m = segmentation_metrics(test.masks, backend.run(batch).argmax(-1))
            result = {"miou": round(m.mean_iou, 4), "fg_iou": round(m.foreground_iou, 4)}
    test = load_split(data, "test", 256, limit=eval_size, progress=False, data_dir=data_dir)
    truth = np.isin(test.masks, FOREGROUND_CLASSES)
    inter = union = 0
    with Segmenter(SegmenterOptions(path, threads=threads, foreground=foreground)) as seg:
        for image, t in zip(test.images, truth):
            pred = seg.segment(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)) > 0.5
            inter += int((pred & t).sum())
            union += int((pred | t).sum())
    result["fg_iou_256"] = round(inter / union, 4) if union else None  # its own column: never fg_iou's
    # The headline: the runtime's mask at each image's own resolution, border pixels ignored.
    quality = mask_quality(path, data, "test", limit=eval_size, progress=False,
                           options={"threads": threads, "foreground": foreground}, data_dir=data_dir)
    result.update(pet_iou=quality.pet_iou, boundary_f=quality.boundary_f)
    return result


def measure(req: dict) -> dict:
    from edgeseg.runtime.backends import open_backend

    path, threads = req["model"], req["threads"]
    row: dict = {}
    t = time.perf_counter()
    backend = open_backend(path, threads=threads)
    row["load_ms"] = round((time.perf_counter() - t) * 1000, 2)
    # --foreground is for third-party models; edgeseg artifacts say their own foreground classes.
    foreground = None if backend.metadata else req.get("foreground")
    if foreground:  # JSON keys are strings
        foreground = {int(c): w for c, w in foreground.items()}
    row["backend"] = backend.name
    row["details"] = {k: v for k, v in backend.details.items() if k != "fallback_errors"}
    spec = backend.input
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (spec.batch, *spec.shape[1:])).astype(np.uint8 if spec.dtype == np.uint8 else np.float32)
    if spec.dtype != np.uint8 and not backend.metadata:
        x = x.astype(np.float32) / 255.0  # models without metadata take [0, 1] floats by default
    t = time.perf_counter()
    backend.run(x)
    row["first_inference_ms"] = round((time.perf_counter() - t) * 1000, 2)
    row["latency_ms"] = _stats(*_timed(lambda: backend.run(x), req["warmup"], req["runs"], req["min_seconds"]))
    row["batch"] = spec.batch  # images per run: a model exported with --batch-size 4 segments 4 per latency
    row["fps"] = round(1000 * spec.batch / row["latency_ms"]["p50"], 2)
    if backend.name == "keras":
        from edgeseg.trainer.macs import keras_macs

        row["macs"] = keras_macs(backend.model)["total"]
    backend.close()

    row.update(_live_step(path, threads, foreground, req))
    # Peak memory of loading and running the model, before the evaluation data is read.
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if req.get("data"):
        row.update(_accuracy(path, req["data"], req["eval_size"], threads, foreground, req.get("data_dir")))
    return row


def _live_step(path: str, threads: int, foreground, req: dict) -> dict:
    """The live loop's step (``FrameProcessor``, buffers reused) on frames of ``req["frame_size"]`` with
    ``req["effect"]``: its latency and each stage's median."""
    from edgeseg.runtime.pipeline import STEP_STAGES, FrameProcessor
    from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions

    width, height = req["frame_size"]
    # a smooth random picture: edges and flat parts, as a camera sees, not white noise
    coarse = (max(1, height // 4), max(1, width // 4), 3)  # at least a pixel: frames from 1x1 up are measured
    frame = cv2.resize(np.random.default_rng(0).integers(0, 256, coarse, dtype=np.uint8), (width, height))
    stages: dict[str, list[float]] = {k: [] for k in STEP_STAGES}
    with Segmenter(SegmenterOptions(path, RunningMode.VIDEO, threads=threads, foreground=foreground)) as seg, \
            FrameProcessor(seg, req["effect"], frame_path=req["frame_path"]) as process:

        def step():
            for k, v in process(frame)[1].items():
                if v is not None:
                    stages[k].append(v * 1000)

        times, cpu = _timed(step, req["warmup"], req["runs"], req["min_seconds"])
        subject = seg.info.subject
    skip = req["warmup"]  # the warm-up runs' stages are not the steady state
    return {"subject": subject, "pipeline_ms": _stats(times, cpu), "pipeline_fps": round(1000 / float(np.median(times)), 2),
            "pipeline_stage_ms": {k: round(float(np.median(v[skip:] or v)), 3) for k, v in stages.items() if v},
            "frame_size": [width, height], "effect": req["effect"],
            "frame_path": process.frame_path.value}


def _exit_with_parent(parent: int, poll_s: float = 0.2) -> None:
    """End this process once ``parent``, the bench that started it, is gone, however it went (kill -9 included,
    or a stop signal landing while it was still starting this process): nobody would read what it measures."""
    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="edgeseg-parent-watch", daemon=True).start()


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    _exit_with_parent(request.pop("parent", os.getppid()))
    try:
        row = measure(request)
    except Exception as exc:  # the runner shows this one line in the row's status; a traceback says less
        sys.exit(f"{type(exc).__name__}: {exc}")
    print(json.dumps(row))
