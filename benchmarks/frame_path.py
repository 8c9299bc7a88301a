"""The live step's frame-sized work at webcam sizes: the OpenCV path against the fused one, and MediaPipe Tasks.

Every variant processes the same frame in turns (--block frames each, round after round), so load from other
processes falls on all alike, while each variant's arrays stay in cache within its block as in a live loop
(one frame each would time every variant with the others' data in cache); medians per stage. For the default
model and every effect, both frame paths; with --selfie, MediaPipe Tasks' ImageSegmenter + the numpy blend of
its samples against edgeseg's step on the same selfie model (grayscale-bg).

The blend's frame-sized numpy temporaries make MediaPipe's step depend on the C allocator's state: with glibc's
thresholds as a fresh process has them, each temporary is mapped and faulted in anew every frame (thousands of
page faults a frame); once large arrays freed earlier in the process have raised them, the memory is reused and
the step is much shorter. Which of the two a run measured depended on what ran before it in the process, so
glibc's thresholds are pinned high here: every variant runs with its memory reused, MediaPipe at its best.

    python benchmarks/frame_path.py --selfie ../shared/anchors/selfie_segmentation.tflite \
        --image photo.jpg --device my-laptop --out benchmarks/results/frame_path_my-laptop.json
    python benchmarks/frame_path.py --table benchmarks/results/frame_path_my-laptop_run*.json  # medians, markdown
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edgeseg.benchmarks.device import device_info
from edgeseg.runtime.composite import FramePath
from edgeseg.runtime.effects import Effect
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.pipeline import FrameProcessor
from edgeseg.runtime.segmenter import RunningMode, Segmenter, SegmenterOptions

SIZES = ((640, 480), (1280, 720), (1920, 1080))
# glibc's mallopt parameters M_TRIM_THRESHOLD and M_MMAP_THRESHOLD, pinned: frame-sized blocks stay with the process
_PINNED = {-1: 256 << 20, -3: 64 << 20}


def _pin_allocator() -> str:
    """Pin glibc's trim and mmap thresholds (see above); what was done, for the result file."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
    except (OSError, AttributeError, TypeError):  # not glibc: its own allocator, as it is
        return "not glibc: as it is"
    for parameter, value in _PINNED.items():
        libc.mallopt(parameter, value)
    return f"glibc {version}: trim threshold {_PINNED[-1] >> 20} MB, mmap threshold {_PINNED[-3] >> 20} MB"


def _frame(image: str | None, width: int, height: int) -> np.ndarray:
    if image:
        return cv2.resize(cv2.imread(image), (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)  # a smooth random picture: edges and flat parts, as a camera sees
    return cv2.resize(rng.integers(0, 256, (max(1, height // 4), max(1, width // 4), 3), dtype=np.uint8),
                      (width, height))


class _MediaPipeStep:
    """MediaPipe Tasks' ImageSegmenter (video mode; its Python API sets no thread count) and the blend of its
    samples: grey background."""

    def __init__(self, model: str):
        import mediapipe as mp
        from mediapipe.tasks import python as tasks
        from mediapipe.tasks.python import vision

        self._mp, self._t = mp, 0
        self._segmenter = vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(
            base_options=tasks.BaseOptions(model_asset_path=model), running_mode=vision.RunningMode.VIDEO,
            output_confidence_masks=True, output_category_mask=False))

    def __call__(self, frame: np.ndarray):
        mp = self._mp
        self._t += 33
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        mask = self._segmenter.segment_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), self._t)
        alpha = mask.confidence_masks[0].numpy_view()  # (H, W, 1) float32 at the frame's size
        gray = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return (frame * alpha + gray * (1 - alpha)).astype(np.uint8), {}

    def close(self):
        self._segmenter.close()


def _in_turns(steps: dict, frame: np.ndarray, frames: int, block: int, warmup: int = 3) -> dict:
    """Median step and stage times (ms) of each variant, measured ``block`` frames each in turns (the first
    ``warmup`` of each block not counted)."""
    times = {name: [] for name in steps}
    stages = {name: {} for name in steps}
    for _ in range(-(-frames // block)):
        for name, step in steps.items():
            for i in range(warmup + block):
                t = time.perf_counter()
                _, timing = step(frame)
                if i >= warmup:
                    times[name].append((time.perf_counter() - t) * 1000)
                    for k, v in timing.items():
                        stages[name].setdefault(k, []).append(v * 1000)
    out = {}
    for name in steps:
        row = {k: round(statistics.median(v), 3) for k, v in stages[name].items()}
        if row:
            row["around the model"] = round(sum(row[k] for k in ("preprocess", "postprocess", "effect")), 3)
        out[name] = {"step": round(statistics.median(times[name]), 3), **row}
    return out


def _median(runs: list[dict], *keys: str) -> float:
    values = []
    for run in runs:
        for key in keys:
            run = run[key]
        values.append(run)
    return statistics.median(values)


def table(paths: list[Path]) -> str:
    """Markdown tables of result files (runs on one device): per frame size and effect, each stage's median over
    the runs; the MediaPipe comparison with each run's ratio."""
    runs = [json.loads(p.read_text()) for p in paths]
    stages = ("preprocess", "postprocess", "effect")
    lines = ["| frame | effect | OpenCV path: pre / post / effect = around | fused: pre / post / effect = around "
             "| fused / OpenCV |", "| --- | --- | --- | --- | --- |"]
    for size, first in runs[0]["sizes"].items():
        for effect in first["effects"]:
            cells, around = [], {}
            for path in ("opencv", "fused"):
                parts = [_median([r["sizes"][size]["effects"][effect] for r in runs], path, k) for k in stages]
                around[path] = _median([r["sizes"][size]["effects"][effect] for r in runs], path, "around the model")
                cells.append(" / ".join(f"{v:.2f}" for v in parts) + f" = **{around[path]:.2f}**")
            lines.append(f"| {size} | {effect} | {cells[0]} | {cells[1]} | "
                         f"{around['fused'] / around['opencv']:.2f} |")
    if all("selfie" in size for size in runs[0]["sizes"].values()):
        lines += ["", "| frame | MediaPipe Tasks + blend | edgeseg, OpenCV path | edgeseg, fused | runs (fused) |",
                  "| --- | --- | --- | --- | --- |"]
        for size in runs[0]["sizes"]:
            selfie = [r["sizes"][size]["selfie"] for r in runs]
            mp = _median(selfie, "mediapipe tasks + blend", "step")
            row = [f"{_median(selfie, name, 'step'):.1f} ms (x{_median(selfie, name, 'x mediapipe'):.2f})"
                   for name in ("edgeseg opencv", "edgeseg fused")]
            each = ", ".join(f"x{s['edgeseg fused']['x mediapipe']:.2f}" for s in selfie)
            lines.append(f"| {size} | {mp:.1f} ms | {row[0]} | {row[1]} | {each} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="edgeseg model (default: the shipped default)")
    parser.add_argument("--selfie", help="MediaPipe's selfie_segmentation.tflite: compare with MediaPipe Tasks")
    parser.add_argument("--image", help="a photo to use as the frame (default: a smooth random picture)")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--block", type=int, default=20, help="frames each variant runs in its turn")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, nargs="+", help="print the tables of these result files instead")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    model = str(resolve_model(args.model))
    result = {"device": device_info(args.device), "model": Path(model).name, "threads": args.threads,
              "frames": args.frames, "block": args.block, "image": Path(args.image).name if args.image else None,
              "allocator": _pin_allocator(), "sizes": {}}
    for width, height in SIZES:
        frame = _frame(args.image, width, height)
        size = result["sizes"][f"{width}x{height}"] = {"effects": {}}
        with Segmenter(SegmenterOptions(model, RunningMode.VIDEO, threads=args.threads)) as seg:
            for effect in Effect:
                steps = {path.value: FrameProcessor(seg, effect, frame_path=path) for path in FramePath}
                size["effects"][effect.value] = _in_turns(steps, frame, args.frames, args.block)
                for step in steps.values():
                    step.close()
                print(width, height, effect.value, json.dumps(size["effects"][effect.value]), flush=True)
        if args.selfie:
            options = SegmenterOptions(args.selfie, RunningMode.VIDEO, threads=args.threads)
            with Segmenter(options) as a, Segmenter(options) as b:
                steps = {"mediapipe tasks + blend": _MediaPipeStep(args.selfie),
                         "edgeseg opencv": FrameProcessor(a, Effect.GRAYSCALE_BG, frame_path=FramePath.OPENCV),
                         "edgeseg fused": FrameProcessor(b, Effect.GRAYSCALE_BG, frame_path=FramePath.FUSED)}
                selfie = size["selfie"] = _in_turns(steps, frame, args.frames, args.block)
                for step in steps.values():
                    step.close()
            for name in ("edgeseg opencv", "edgeseg fused"):
                selfie[name]["x mediapipe"] = round(selfie["mediapipe tasks + blend"]["step"] / selfie[name]["step"], 2)
            print(width, height, "selfie", json.dumps(selfie), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
