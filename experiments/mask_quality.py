"""Mask quality of models as the runtime shows it, for a grid of border weights and edge softness.

The runtime's alpha is soft_threshold(p(pet) + w * p(border)), resized to each image's own resolution.
This measures every (w, softness) pair from one pass per model (resizing is linear, so the class maps
are resized once and combined afterwards) and reports edgeseg's mask-quality measures for each.

    python experiments/mask_quality.py tutorial edge --data ../shared/data/pets-pseudo \\
        --out experiments/results/mask_quality.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
from rich.progress import track

from edgeseg.io import atomic_write_text
from edgeseg.runtime.packaged import resolve_model
from edgeseg.runtime.alpha import soft_threshold
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions
from edgeseg.data import iter_full_resolution
from edgeseg.evaluation.mask_quality import MaskQualityMeter

RAW = {"threshold": 0.5, "softness": 0.5}  # the probability itself


def class_maps(model: str, data: str, split: str, limit: int | None):
    """(labels, p(pet), p(border)) per image, each at the image's resolution."""
    options = [SegmenterOptions(resolve_model(model), foreground={c: 1.0}, **RAW) for c in (0, 2)]
    with Segmenter(options[0]) as pet, Segmenter(options[1]) as border:
        for _, image, labels in iter_full_resolution(data, split, limit=limit):
            yield labels, pet.segment(image), border.segment(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files or shipped names (tutorial, edge)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--weights", default="1,0.75,0.5,0.25", help="border weights")
    parser.add_argument("--softness", default="0.5,0.25,0.1,0.05", help="ramp half-widths (0.5: raw probability)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    softness = [float(s) for s in args.softness.split(",")]
    rows = []
    for model in args.models:
        meters = {(w, s): MaskQualityMeter() for w in weights for s in softness}
        for labels, p_pet, p_border in track(class_maps(model, args.data, args.split, args.limit),
                                             description=f"{model}: measuring"):
            for (w, s), meter in meters.items():
                meter.add(soft_threshold(p_pet + w * p_border, 0.5, s), labels)
        rows += [{"model": model, "border_weight": w, "softness": s, **m.result().to_dict()}
                 for (w, s), m in meters.items()]
    result = {"command": " ".join(sys.argv), "data": args.data, "split": args.split,
              "cpu": platform.processor() or platform.machine(), "rows": rows}
    atomic_write_text(args.out, json.dumps(result, indent=2))
    cols = ("pet_iou", "fg_iou", "boundary_f", "background_alpha", "background_leak", "semi_transparent")
    print("| model | border w | softness | " + " | ".join(cols) + " |")
    print("|---" * (3 + len(cols)) + "|")
    for r in rows:
        print(f"| {r['model']} | {r['border_weight']} | {r['softness']} | "
              + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
