"""Do a run's BatchNormalization moving averages lag behind its weights?

Scores a run's ``model.keras`` on its validation split (class argmax at the input size: pet IoU with border
pixels ignored, pixel accuracy) twice: with the stored moving statistics, and after re-estimating them from
one pass over augmented training batches. A large gap means the checkpoint metric and the exported model
read statistics that lag behind the weights (short runs, few steps).

    python experiments/bn_statistics.py runs/self_training/baseline runs/edge128_bilinear_dice_strong \\
        --out experiments/results/bn_statistics.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgeseg.benchmarks.device import cpu_flags, cpu_model
from edgeseg.io import atomic_write_text

PET, BORDER = 0, 2  # 0-based training labels


def scores(model, x: np.ndarray, y: np.ndarray) -> dict:
    pred = np.asarray(model.predict(x, batch_size=32, verbose=0)).argmax(-1)
    valid = y != BORDER
    a, b = (pred == PET) & valid, (y == PET) & valid
    return {"pet_iou": round(float((a & b).sum() / max((a | b).sum(), 1)), 4),
            "pixel_accuracy": round(float((pred == y).mean()), 4)}


def measure(run: Path, n_train: int) -> dict:
    import keras

    from edgeseg.data import load_split
    from edgeseg.trainer.data import cache_size, make_dataset

    config = json.loads((run / "run.json").read_text())["config"]
    size = config["img_size"]
    model = keras.models.load_model(run / "model.keras", compile=False)
    val = load_split(config["data"], "val", size, seed=config["seed"], val_fraction=config["val_fraction"],
                     progress=False)
    x, y = val.images.astype(np.float32), val.masks
    stored = scores(model, x, y)
    train = load_split(config["data"], "train", cache_size(size), seed=config["seed"],
                       val_fraction=config["val_fraction"], limit=n_train, progress=False)
    for layer in model.layers:  # momentum 0: one pass sets the moving statistics to the pass's own
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            layer.momentum = 0.0
    batch = np.concatenate([b[0].numpy() for b in make_dataset(train, size, n_train, True, config["augment"])])
    model(batch, training=True)
    return {"config": {k: config[k] for k in ("model", "img_size", "epochs", "augment", "data")},
            "val_images": len(y), "stored_statistics": stored, "re_estimated": scores(model, x, y)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="Run folders (each holds model.keras and run.json).")
    ap.add_argument("--train-images", type=int, default=256, help="Augmented training images to re-estimate from.")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = {str(run): measure(run, args.train_images) for run in args.runs}
    for run, r in results.items():
        print(f"{run}: pet IoU {r['stored_statistics']['pet_iou']} stored -> {r['re_estimated']['pet_iou']} re-estimated")
    atomic_write_text(args.out, json.dumps({"cpu": cpu_model(), "cpu_flags": cpu_flags(), "runs": results}, indent=2))


if __name__ == "__main__":
    main()
