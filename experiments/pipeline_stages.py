"""Per-stage cost of the live pipeline on 640x480 frames, per exported model, backend and effect.

Stages: preprocess (resize, colour, cast), inference, postprocess (softmax, smoothing, mask resize to
the frame) and effect, timed inside the same ``FrameProcessor`` step ``edgeseg webcam`` runs. Target:
everything except inference costs < 25% of inference for the int8 128 px model. Frames cycle through
the --image photos (resized to 640x480); every (model, effect) row gets --frames frames, measured in
turns of --block frames so that load from elsewhere on the machine hits every row alike; medians.

    python experiments/pipeline_stages.py src/edgeseg/models/unet_mobilenetv2_{int8.tflite,int8.onnx} \
        --image ../shared/data/pets-pseudo/images/Abyssinian_1*.jpg --effect grayscale-bg,blur-bg --out stages.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from edgeseg.benchmarks.device import device_info
from edgeseg.io import atomic_write_text
from edgeseg.runtime.effects import Effect
from edgeseg.runtime.pipeline import STEP_STAGES, FrameProcessor
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions


def stage_times(models: list[str], effects: list[str], images: list[np.ndarray], threads: int, warmup: int,
                frames: int, block: int) -> list[dict]:
    """Median stage times per (model, effect), measured in turns of ``block`` frames each.

    Taking turns spreads a noisy neighbour over every row alike; the first frames of each turn (a cold
    interpreter, another effect's arrays in cache) are not counted.
    """
    with ExitStack() as stack:
        processors = {m: FrameProcessor(stack.enter_context(Segmenter(SegmenterOptions(
            m, RunningMode.VIDEO, threads=threads))), effects[0]) for m in models}  # the step `edgeseg webcam` runs
        samples = {(m, e): {k: [] for k in (*STEP_STAGES, "total")} for m in models for e in effects}
        n = 0
        while any(len(s["total"]) < frames for s in samples.values()):
            for (model, effect), s in samples.items():
                process = processors[model]
                process.effect = Effect(effect)
                for i in range(warmup + block):
                    t0 = time.perf_counter()
                    _, stage_s = process(images[n % len(images)])
                    t1 = time.perf_counter()
                    n += 1
                    if i >= warmup and len(s["total"]) < frames:
                        for k in STEP_STAGES:
                            s[k].append(stage_s[k] * 1000)
                        s["total"].append((t1 - t0) * 1000)
        rows = []
        for (model, effect), s in samples.items():
            backend = processors[model].segmenter.backend
            med = {k: round(statistics.median(v), 3) for k, v in s.items()}
            total = med.pop("total")
            overhead = med["preprocess"] + med["postprocess"] + med["effect"]
            rows.append({"model": Path(model).name, "effect": effect, "backend": backend.name,
                         "delegate": backend.details.get("delegate"), "stage_ms": med, "total_ms_p50": total,
                         "fps": round(1000 / total, 1), "overhead_over_inference": round(overhead / med["inference"], 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--image", nargs="+", default=[], help="photos to cycle through as frames; default: noise")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=10, help="frames not counted at the start of each turn")
    parser.add_argument("--frames", type=int, default=1000, help="frames counted per model and effect")
    parser.add_argument("--block", type=int, default=50, help="frames counted per turn")
    parser.add_argument("--effect", default="grayscale-bg", help="one effect or a comma-separated list")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/pipeline_stages.json"))
    args = parser.parse_args()
    images = [cv2.imread(path) for path in args.image] or [np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)]
    if any(image is None for image in images):
        parser.error(f"cannot read {[p for p, i in zip(args.image, images) if i is None]}")
    images = [cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA) for image in images]
    rows = stage_times(args.models, args.effect.split(","), images, args.threads, args.warmup, args.frames, args.block)
    lines = ["| model | backend | effect | pre ms | inference ms | post ms | effect ms | overhead / inference | FPS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["stage_ms"]
        lines.append(f"| {r['model']} | {r['backend']} | {r['effect']} | {s['preprocess']:.2f} | {s['inference']:.2f} | "
                     f"{s['postprocess']:.2f} | {s['effect']:.2f} | {r['overhead_over_inference']:.0%} | {r['fps']:.1f} |")
    table = "\n".join(lines)
    print(table)
    atomic_write_text(args.out, json.dumps({"device": device_info(), "frame": [640, 480], "threads": args.threads,
                                            "images": [Path(p).name for p in args.image], "frames": args.frames, "block": args.block,
                                            "warmup": args.warmup, "rows": rows,
                                            "table": table}, indent=2))


if __name__ == "__main__":
    main()
