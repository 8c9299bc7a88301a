"""Per-stage cost of the live pipeline on 640x480 frames, per exported model and backend.

Stages: preprocess (resize, colour, cast), inference, postprocess (softmax, smoothing, mask resize to
the frame) and effect, timed inside the same ``FrameProcessor`` step ``edgeseg webcam`` runs. Target:
everything except inference costs < 25% of inference for the int8 128 px model. Frames cycle through
the --image photos (resized to 640x480); medians over --frames frames after --warmup, one thread count.

    python benchmarks/pipeline_stages.py runs/unet_mobilenetv2_pets128_ft/export/*int8.tflite \\
        runs/unet_mobilenetv2_pets128_ft/export/*.onnx ... --image ../shared/data/pets-pseudo/images/Abyssinian_1*.jpg \\
        --out benchmarks/results/pipeline_stages.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.benchmarks.device import device_info
from edgeseg.io import atomic_write_text
from edgeseg.runtime.pipeline import FrameProcessor
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions

STAGES = ("preprocess", "inference", "postprocess", "effect")


def stage_times(model: str, images: list[np.ndarray], threads: int, warmup: int, frames: int, effect: str) -> dict:
    samples = {k: [] for k in STAGES}
    totals = []
    with Segmenter(SegmenterOptions(model, RunningMode.LIVE_STREAM, threads=threads)) as seg:
        process = FrameProcessor(seg, effect)  # exactly the step `edgeseg webcam` runs per frame
        for i in range(warmup + frames):
            t0 = time.perf_counter()
            _, stage_s = process(images[i % len(images)])
            t1 = time.perf_counter()
            if i >= warmup:
                for k in STAGES:
                    samples[k].append(stage_s[k] * 1000)
                totals.append((t1 - t0) * 1000)
        backend, details = seg.backend.name, seg.backend.details
    med = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    overhead = med["preprocess"] + med["postprocess"] + med["effect"]
    return {"model": Path(model).name, "effect": effect, "backend": backend, "delegate": details.get("delegate"), "stage_ms": med,
            "total_ms_p50": round(statistics.median(totals), 3), "fps": round(1000 / statistics.median(totals), 1),
            "overhead_over_inference": round(overhead / med["inference"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--image", nargs="+", default=[], help="photos to cycle through as frames; default: noise")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--effect", default="grayscale-bg", help="one effect or a comma-separated list")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline_stages.json"))
    args = parser.parse_args()
    images = [cv2.imread(path) for path in args.image] or [np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)]
    if any(image is None for image in images):
        parser.error(f"cannot read {[p for p, i in zip(args.image, images) if i is None]}")
    images = [cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA) for image in images]
    rows = [stage_times(m, images, args.threads, args.warmup, args.frames, e)
            for m in args.models for e in args.effect.split(",")]
    lines = ["| model | backend | effect | pre ms | inference ms | post ms | effect ms | overhead / inference | FPS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stage_ms"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['effect']} | {s['preprocess']:.2f} | {s['inference']:.2f} | "
                     f"{s['postprocess']:.2f} | {s['effect']:.2f} | {r['overhead_over_inference']:.0%} | {r['fps']:.1f} |")
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out, json.dumps({"device": device_info(), "frame": [640, 480], "threads": args.threads,
                                            "images": [Path(p).name for p in args.image], "frames": args.frames, "rows": rows,
                                            "table": table}, indent=2))


if __name__ == "__main__":
    main()
