"""A webcam-framed test set from the portraits test split: each person pasted, smaller and off-centre, onto a
16:9 photo the person models never saw, standing on the bottom edge as a seated caller does.

Portraits are 3:4 and fill their frame; a webcam delivers 16:9 with the person in part of it. This set shows
how a person model trained on portraits alone fares on such frames, against one trained with
``--augment webcam``. The backgrounds come from pets-pseudo (never used as training backgrounds), so a pet may
be in the room: it is background. Labels: the portrait's mask as drawn (255 person, 0 background).

    python experiments/webcam_framed.py --portraits ../shared/data/portraits --backgrounds ../shared/data/pets-pseudo \\
        --out runs/portraits-webcam
    edgeseg evaluate MODEL --data runs/portraits-webcam
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edgeseg.data.readers import oxford_list
from edgeseg.runtime.image_io import image_files, read_image, read_label, write_image

FRAME = (512, 288)  # width, height: 16:9


def compose(person: np.ndarray, mask: np.ndarray, background: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """``person`` (BGR) with its 0/255 ``mask`` scaled to 55-90% of the frame's height, at a random place along its
    bottom edge, over ``background`` cropped to 16:9."""
    w, h = FRAME
    bh, bw = background.shape[:2]
    crop_h = min(bh, int(bw * h / w))
    top = int(rng.integers(0, bh - crop_h + 1))
    frame = cv2.resize(background[top:top + crop_h, :int(crop_h * w / h)], FRAME, interpolation=cv2.INTER_AREA)
    scale = rng.uniform(0.55, 0.9) * h / person.shape[0]
    size = (max(1, round(person.shape[1] * scale)), max(1, round(person.shape[0] * scale)))
    small = cv2.resize(person, size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
    x = int(rng.integers(0, w - size[0] + 1))
    y = h - size[1]
    alpha = small_mask[..., None].astype(np.float32) / 255
    region = frame[y:, x:x + size[0]]
    frame[y:, x:x + size[0]] = np.round(alpha * small + (1 - alpha) * region).astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[y:, x:x + size[0]] = np.where(small_mask >= 128, 255, 0)
    return frame, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", type=Path, required=True)
    parser.add_argument("--backgrounds", type=Path, required=True, help="a dataset folder whose images/ are rooms")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    names = oxford_list(args.portraits / "test.txt")
    rooms = image_files(args.backgrounds / "images")
    picks = rng.choice(len(rooms), size=len(names), replace=False)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    for name, pick in zip(names, picks):
        person = read_image(args.portraits / "images" / f"{name}.jpg")
        mask = read_label(args.portraits / "masks" / f"{name}.png")
        frame, labels = compose(person, mask, read_image(rooms[pick]), rng)
        write_image(args.out / "images" / f"{name}.jpg", frame)
        write_image(args.out / "masks" / f"{name}.png", labels)
    (args.out / "test.txt").write_text("\n".join(names) + "\n")
    (args.out / "trainval.txt").write_text("")
    print(f"{len(names)} webcam-framed test images in {args.out}")


if __name__ == "__main__":
    main()
