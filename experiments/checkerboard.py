"""Checkerboard in the probability map: the period-2 pattern stride-2 transposed convolutions leave.

For each model, the runtime's weighted probability at the model's own resolution is filtered with the 2x2
kernel [[1, -1], [-1, 1]] / 4, whose response is the pattern's amplitude (0 on any smooth map). Reported
as the mean absolute response over the labelled background away from the outline (where the map should be
flat and the pattern shows as grid-shaped leaks), and over the whole map.

    python experiments/checkerboard.py tutorial edge --data ../shared/data/pets-pseudo \\
        --out experiments/results/checkerboard.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from edgeseg.io import atomic_write_text
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.segmenter import Edges, Segmenter, SegmenterOptions
from edgeseg.data import iter_full_resolution
from edgeseg.contract import BACKGROUND

KERNEL = np.array([[1, -1], [-1, 1]], np.float32) / 4
RAW = {"threshold": 0.5, "softness": 0.5, "edges": Edges.BILINEAR}


def amplitude(prob: np.ndarray) -> np.ndarray:
    """|[[1, -1], [-1, 1]] / 4 * prob| at every 2x2 window."""
    return np.abs(cv2.filter2D(prob, -1, KERNEL, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE))[:-1, :-1]


def measure(model: str, data: str, split: str, limit: int | None) -> dict:
    background, everywhere, images = [], [], 0
    with Segmenter(SegmenterOptions(resolve_model(model), **RAW)) as seg:
        h, w = seg.info.input_size
        for _, image, labels in track(iter_full_resolution(data, split, limit=limit), description=model):
            seg.segment(image)
            a = amplitude(seg.low_res_mask)
            bg = cv2.resize((labels == BACKGROUND).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            far = cv2.erode(bg, np.ones((5, 5), np.uint8))[:-1, :-1] > 0  # 2+ model pixels from the outline
            background.append(a[far])
            everywhere.append(a.ravel())
            images += 1
    bg_all, all_ = np.concatenate(background), np.concatenate(everywhere)
    return {"model": model, "images": images, "background_mean": float(bg_all.mean()),
            "background_p99": float(np.percentile(bg_all, 99)), "all_mean": float(all_.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files or shipped names")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [measure(m, args.data, args.split, args.limit) for m in args.models]
    atomic_write_text(args.out, json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))
    print("| model | background mean | background p99 | whole map mean |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['background_mean']:.5f} | {r['background_p99']:.4f} | {r['all_mean']:.5f} |")


if __name__ == "__main__":
    main()
