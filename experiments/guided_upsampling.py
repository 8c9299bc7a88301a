"""Does a guided upsampling of the mask beat the runtime's bilinear resize? Accuracy, edges, cost, pictures.

The runtime resizes the model's low-resolution probability bilinearly to the frame, then soft-thresholds it.
A fast guided filter (He & Sun, 2015) instead fits the probability locally as a * gray + b at a few times
the model's resolution and applies the upsampled a, b to the frame's own gray levels, so the mask's edge
can follow the image's. This measures both on a labelled split (edgeseg's mask-quality measures at each
image's own resolution), times them on a 640x480 frame, and draws crops of the same photos side by side.

    python experiments/guided_upsampling.py --data ../shared/data/pets-pseudo \\
        --out experiments/results/guided_upsampling.json --picture experiments/results/guided_upsampling.jpg

pets-pseudo's labels are a teacher's bilinearly upsampled masks, so their outlines do not follow the image
either: read accuracy here as agreement with that teacher, and judge edges from the pictures too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from edgeseg.benchmarks.device import cpu_flags, cpu_model
from edgeseg.io import atomic_write_text
from edgeseg.runtime.effects import grayscale_bg
from edgeseg.runtime.guided import EPS, GRID, RADIUS, GuidedUpsampler
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.alpha import soft_threshold
from edgeseg.runtime.segmenter import Edges, Segmenter, SegmenterOptions
from edgeseg.data import iter_full_resolution
from edgeseg.evaluation.mask_quality import MaskQualityMeter, outline_mask

RAW = {"threshold": 0.5, "softness": 0.5, "edges": Edges.BILINEAR}  # the probability itself: thresholding comes after upsampling
LOW, HIGH = 0.4, 0.6  # the runtime's default soft threshold (0.5 +- 0.1), applied to every variant


def bilinear(p_low: np.ndarray, small: np.ndarray, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return soft_threshold(cv2.resize(p_low, (w, h), interpolation=cv2.INTER_LINEAR), 0.5, (HIGH - LOW) / 2)


def variants(radii, epsilons, grids) -> dict:
    """Name -> f(probability, small BGR input, frame) -> alpha: bilinear and the runtime's guided upsampler
    (grid 0: fitted at the mask's own resolution)."""
    table = {"bilinear": bilinear}
    for r in radii:
        for e in epsilons:
            for grid in grids:
                upsampler = GuidedUpsampler(r, e, grid or None)
                table[_name(r, e, grid)] = lambda p, small, im, g=upsampler: g(p, small, im, LOW, HIGH)
    return table


def _name(radius: int, eps: float, grid: int) -> str:
    return f"guided r{radius} eps{eps:g} " + (f"grid {grid}" if grid else "at the mask's resolution")


def low_res_masks(model: str, data: str, split: str, limit: int | None):
    """(image, labels, the model's weighted probability and its input, both at the model's resolution)."""
    with Segmenter(SegmenterOptions(resolve_model(model), **RAW)) as seg:
        for _, image, labels in iter_full_resolution(data, split, limit=limit):
            seg.segment(image)
            yield image, labels, seg.low_res_mask.copy(), seg.model_input.copy()


def postprocess_ms(model: str, frame: np.ndarray, guided: bool, repeats: int = 200) -> float:
    """Median of the Segmenter's post-processing stage on ``frame``, into an 8-bit mask as the live loop does."""
    out = np.empty(frame.shape[:2], np.uint8)
    times = []
    with Segmenter(SegmenterOptions(resolve_model(model), edges=Edges.GUIDED if guided else Edges.BILINEAR)) as seg:
        for _ in range(repeats):
            seg.segment(frame, out)
            times.append(seg.timings["postprocess"])
    return 1e3 * float(np.median(times))


def picture(samples, table: dict, names: list[str], out: Path, crop: int = 160) -> None:
    """Crops around a point of each photo's labelled outline, one column per variant: grayscale-bg with the
    alpha = 0.5 contour in red, 2x nearest-neighbour so that single pixels show."""
    rows = []
    for image, labels, p_low, small in samples:
        ys, xs = np.nonzero(cv2.Canny(outline_mask(labels).astype(np.uint8) * 255, 50, 150))
        i = len(ys) // 3  # a point on the outline, the same for every variant
        y0 = int(np.clip(ys[i] - crop // 2, 0, max(0, image.shape[0] - crop))) if len(ys) else 0
        x0 = int(np.clip(xs[i] - crop // 2, 0, max(0, image.shape[1] - crop))) if len(xs) else 0
        tiles = []
        for name in names:
            alpha = table[name](p_low, small, image)
            shown = grayscale_bg(image, alpha)
            edge = cv2.Canny((alpha >= 0.5).astype(np.uint8) * 255, 50, 150) > 0
            shown[edge] = (0, 0, 255)
            shown = cv2.resize(shown[y0:y0 + crop, x0:x0 + crop], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
            canvas = np.full((shown.shape[0] + 22, 2 * crop + 6, 3), 255, np.uint8)
            canvas[22:, :shown.shape[1]] = shown
            cv2.putText(canvas, name, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(canvas)
        rows.append(np.hstack(tiles))
    grid = np.vstack(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid, [cv2.IMWRITE_JPEG_QUALITY, 88])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edge", help="model file or shipped name (edge: the default)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--radii", default="1,2,3", help="guided filter windows, in cells of the fit's grid")
    parser.add_argument("--eps", default="0.0001,0.001,0.01")
    parser.add_argument("--grids", default=str(GRID), help="fit grids (0: the mask's own resolution)")
    parser.add_argument("--pictures", type=int, default=4, help="photos in the picture")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--picture", type=Path)
    args = parser.parse_args()
    table = variants([int(r) for r in args.radii.split(",")], [float(e) for e in args.eps.split(",")],
                     [int(g) for g in args.grids.split(",")])
    meters = {name: MaskQualityMeter() for name in table}
    samples = []
    for sample in track(low_res_masks(args.model, args.data, args.split, args.limit), description="measuring"):
        image, labels, p_low, small = sample
        for name, fn in table.items():
            meters[name].add(fn(p_low, small, image), labels)
        samples.append(sample)
    frame = cv2.resize(samples[0][0], (640, 480), interpolation=cv2.INTER_LINEAR)
    timing = {"bilinear": postprocess_ms(args.model, frame, guided=False),
              "guided (runtime default)": postprocess_ms(args.model, frame, guided=True)}
    rows = [{"variant": name, **m.result().to_dict()} for name, m in meters.items()]
    result = {"command": " ".join(sys.argv), "model": args.model, "data": args.data, "split": args.split,
              "cpu": cpu_model(), "cpu_flags": cpu_flags(), "threshold": [LOW, HIGH],
              "runtime_default": _name(RADIUS, EPS, GRID), "rows": rows,
              "postprocess_ms_640x480": timing}
    atomic_write_text(args.out, json.dumps(result, indent=2))
    cols = ("pet_iou", "fg_iou", "boundary_f", "background_leak", "semi_transparent")
    print("| variant | " + " | ".join(cols) + " |")
    print("|---" * (1 + len(cols)) + "|")
    for r in rows:
        print(f"| {r['variant']} | " + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    print("post-processing at 640x480, ms (median):", {k: round(v, 3) for k, v in timing.items()})
    if args.picture:
        step = max(1, len(samples) // args.pictures)
        picture(samples[::step][:args.pictures], table, ["bilinear", _name(RADIUS, EPS, GRID)], args.picture)
        print("picture:", args.picture)


if __name__ == "__main__":
    main()
