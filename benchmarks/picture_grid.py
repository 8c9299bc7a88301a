"""Before/after picture grid of the mask on hard photos: light backgrounds, dark pets, busy backgrounds.

Picks the test photos that are hardest in each of those ways (from their labels), and shows each with
grayscale-bg as it was (the former default model, foreground = pet + border, raw probability) and as it
is now (the shipped default: pet + half the border, soft threshold, guided edges), with the alpha = 0.5
outline.

    python benchmarks/picture_grid.py --data ../shared/data/pets-pseudo --out benchmarks/results/before_after.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgeseg.runtime.effects import grayscale_bg
from edgeseg.runtime.packaged import resolve_model
from edgeseg.data import iter_full_resolution
from edgeseg.runtime.segmenter import Segmenter, SegmenterOptions

SETTINGS = {"before": ("tutorial", {"foreground": {0: 1.0, 2: 1.0}, "softness": 0.5}),  # pet + border, raw
            "now": (None, {})}  # the default model, its mask weights, the default soft threshold
TILE = 300
CAPTION = 42  # two lines: setting and kind, then the photo's name
GAP = 6
FONT = cv2.FONT_HERSHEY_SIMPLEX


def pick(data: str, per_kind: int) -> list[tuple[str, str, np.ndarray]]:
    """(kind, name, image) of the hardest test photos of each kind."""
    scored = []
    for name, image, labels in iter_full_resolution(data, "test"):
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        pet, bg = labels == 0, labels == 1
        if pet.sum() < 0.05 * labels.size or bg.sum() < 0.2 * labels.size:
            continue
        texture = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
        scored.append((name, image, {"light background": gray[bg].mean(), "dark pet": -gray[pet].mean(),
                                     "busy background": texture[bg].mean()}))
    chosen, used = [], set()
    for kind in ("light background", "dark pet", "busy background"):
        for name, image, _ in sorted(scored, key=lambda s: -s[2][kind]):
            if name not in used and len([c for c in chosen if c[0] == kind]) < per_kind:
                chosen.append((kind, name, image))
                used.add(name)
    return chosen


def tile(image: np.ndarray, alpha: np.ndarray, caption: str) -> np.ndarray:
    out = grayscale_bg(image, alpha)
    edge = cv2.Canny((alpha >= 0.5).astype(np.uint8) * 255, 50, 150)
    out[cv2.dilate(edge, np.ones((2, 2), np.uint8)) > 0] = (0, 0, 255)  # where alpha crosses 0.5
    h, w = out.shape[:2]
    scale = TILE / max(h, w)
    out = cv2.resize(out, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.full((TILE + CAPTION, TILE + GAP, 3), 255, np.uint8)
    canvas[CAPTION:CAPTION + out.shape[0], :out.shape[1]] = out
    for i, line in enumerate(caption.split("\n")):
        cv2.putText(canvas, fit(line, TILE - 8), (4, 17 + 18 * i), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def fit(text: str, width: int) -> str:
    """``text``, cut short with "..." until it fits ``width`` pixels: captions never run into the next tile."""
    def size(t: str) -> int:
        return cv2.getTextSize(t, FONT, 0.45, 1)[0][0]

    if size(text) <= width:
        return text
    while len(text) > 4 and size(text + "...") > width:
        text = text[:-1]
    return text + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    photos = pick(args.data, args.per_kind)
    rows = []
    segmenters = {k: Segmenter(SegmenterOptions(resolve_model(m), **v)) for k, (m, v) in SETTINGS.items()}
    for kind, name, image in photos:
        rows.append(np.hstack([tile(image, segmenters[k].segment(image), f"{k}: {kind}\n{name}")
                               for k in SETTINGS]))
    for s in segmenters.values():
        s.close()
    grid = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(args.out, grid.shape, [n for _, n, _ in photos])


if __name__ == "__main__":
    main()
