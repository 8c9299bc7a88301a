"""One round of self-training with `edgeseg label`, measured: does labelling unlabelled photos with the model
itself (plus test-time augmentation) and training on them beat training on the labelled photos alone?

pets-pseudo has no pool of unlabelled photos beyond its labelled ones, so this hides the labels of part of
its trainval split and treats those photos as the unlabelled pool:

1. ``labelled/``: the kept share of trainval with its labels, and the test split (symlinks, nothing copied);
   ``pool/``: the other photos, without labels.
2. ``edgeseg train`` on ``labelled/`` -> ``baseline/``; ``edgeseg export`` (fp32 TFLite) for the runtime.
3. ``edgeseg label pool/`` with the baseline as teacher (flip and multi-scale TTA, the default filters).
4. ``edgeseg train`` on the labelled photos plus the kept pseudo-labelled ones -> ``student/``, same recipe.
5. ``edgeseg evaluate`` both on the test split, and ``--reference`` (the same recipe trained with every label of
   trainval: the ceiling the student would reach if its pseudo-labels were perfect); the pseudo-labels are also
   compared with the hidden labels. Results are written to ``--out`` as each step ends.

    scripts/train_pets.sh unet_mobilenetv2_edge runs/edge128_bilinear_dice 128 --upsampling bilinear --loss ce+dice
    python experiments/self_training.py --data ../shared/data/pets-pseudo --work runs/self_training \\
        --encoder-weights ../shared/weights/mobilenet_v2_1.0_no_top_imagenet_from_quant.weights.h5 \\
        --reference runs/edge128_bilinear_dice --out experiments/results/self_training.json

Each step resumes (training from its backup, labelling from what it wrote), so rerun the same command after an
interruption. pets-pseudo's test labels come from its own teacher: the comparison is agreement with that teacher.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from edgeseg.benchmarks.device import cpu_flags, cpu_model
from edgeseg.io import atomic_write_text
from edgeseg.data.readers import oxford_list

BACKGROUND = 2  # Oxford trimap value


def edgeseg(*args: str) -> str:
    """Run the CLI as a user would; its stdout (JSON where asked) is returned."""
    command = [sys.executable, "-m", "edgeseg", *args]
    print("$ edgeseg", " ".join(args), flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"edgeseg {args[0]} failed with exit code {done.returncode}")
    return done.stdout


def finished(run: Path) -> bool:
    """A run whose training ended: it holds model.keras and no backup to resume from."""
    return (run / "model.keras").is_file() and not (run / "backup").exists()


def train(data: Path, run: Path, recipe: list[str]) -> None:
    """Train, or resume; a finished run is kept as it is."""
    if not finished(run):
        edgeseg("train", "--data", str(data), "--out", str(run), *recipe)


def write_oxford(root: Path, trainval: dict[str, Path], test: dict[str, Path], trimaps: dict[str, Path]) -> Path:
    """An Oxford-layout folder of symlinks: ``name -> image`` for each split, and each name's trimap."""
    for sub in ("images", "annotations/trimaps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, image in {**trainval, **test}.items():
        for link, target in ((root / "images" / f"{name}{image.suffix}", image),
                             (root / "annotations" / "trimaps" / f"{name}.png", trimaps[name])):
            if not link.is_symlink():
                link.symlink_to(target.resolve())
    for split, members in (("trainval", trainval), ("test", test)):
        atomic_write_text(root / "annotations" / f"{split}.txt", "".join(f"{n} 0 0 0\n" for n in members))
    return root


class Split:
    """The labelled share of trainval, the hidden rest (the pool) and the test split of an Oxford folder."""

    def __init__(self, data: Path, labelled_share: float, seed: int):
        trainval = oxford_list(data / "annotations" / "trainval.txt")
        test = oxford_list(data / "annotations" / "test.txt")
        order = np.random.default_rng(seed).permutation(len(trainval))
        n_labelled = int(round(len(trainval) * labelled_share))
        self.labelled = [trainval[i] for i in order[:n_labelled]]
        self.hidden = [trainval[i] for i in order[n_labelled:]]
        self.test = test
        self.image = {n: next((data / "images").glob(f"{n}.*")) for n in trainval + test}
        self.trimap = {n: data / "annotations" / "trimaps" / f"{n}.png" for n in self.image}

    def write_pool(self, pool: Path) -> Path:
        """The hidden share's images, without labels."""
        pool.mkdir(parents=True, exist_ok=True)
        for n in self.hidden:
            if not (pool / self.image[n].name).is_symlink():
                (pool / self.image[n].name).symlink_to(self.image[n].resolve())
        return pool


def pseudo_label_agreement(pseudo: Path, data: Path, kept: list[str]) -> dict:
    """Pseudo trimaps against the hidden ones: foreground (pet + border) IoU and per-pixel trimap agreement."""
    ious, agreement = [], []
    for n in kept:
        mine = cv2.imread(str(pseudo / "annotations" / "trimaps" / f"{n}.png"), cv2.IMREAD_GRAYSCALE)
        truth = cv2.imread(str(data / "annotations" / "trimaps" / f"{n}.png"), cv2.IMREAD_GRAYSCALE)
        a, b = mine != BACKGROUND, truth != BACKGROUND
        ious.append((a & b).sum() / max((a | b).sum(), 1))
        agreement.append((mine == truth).mean())
    return {"images": len(kept), "fg_iou_mean": float(np.mean(ious)), "fg_iou_median": float(np.median(ious)),
            "trimap_agreement_mean": float(np.mean(agreement))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="An Oxford-layout dataset (pets-pseudo).")
    ap.add_argument("--work", type=Path, required=True, help="Folder for the data links and both runs.")
    ap.add_argument("--out", type=Path, required=True, help="Results JSON.")
    ap.add_argument("--encoder-weights", default="imagenet")
    ap.add_argument("--labelled-share", type=float, default=0.5, help="Share of trainval whose labels are kept.")
    ap.add_argument("--model", default="unet_mobilenetv2_edge")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--reference", type=Path, help="The same recipe's run on every trainval label, evaluated beside.")
    ap.add_argument("--scales", default="0.75,1,1.25", help="Test-time scales of the labelling.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    split = Split(args.data, args.labelled_share, args.seed)
    labelled_images = {n: split.image[n] for n in split.labelled}
    test_images = {n: split.image[n] for n in split.test}
    labelled = write_oxford(args.work / "labelled", labelled_images, test_images, split.trimap)
    pool = split.write_pool(args.work / "pool")
    recipe = ["--model", args.model, "--img-size", str(args.img_size), "--epochs", str(args.epochs),
              "--encoder-weights", args.encoder_weights, "--upsampling", "bilinear", "--loss", "ce+dice",
              "--batch-size", "32", "--lr", "1e-3", "--lr-schedule", "cosine", "--early-stopping", "6"]
    result = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "command": " ".join(sys.argv),
              "labelled": len(split.labelled), "pool": len(split.hidden)}

    def save(**values) -> None:  # after each step: an unfinished round still reports what it measured
        result.update(values)
        atomic_write_text(args.out, json.dumps(result, indent=2))

    def evaluate(name: str, run: Path) -> None:
        report = json.loads(edgeseg("evaluate", str(run), "--data", str(labelled), "--json"))
        save(**{name: {"mask": report["mask"], "mean_iou": (report.get("metrics") or {}).get("mean_iou")}})
        print(f"{name}: pet IoU {report['mask']['pet_iou']:.4f}")

    baseline = args.work / "baseline"
    train(labelled, baseline, recipe)
    evaluate("baseline", baseline)
    if not list((baseline / "export").glob("*.tflite")):
        edgeseg("export", str(baseline), "--formats", "tflite", "--json")
    pseudo = args.work / "pseudo"
    label_report = json.loads(edgeseg("label", str(pool), "--out", str(pseudo), "--model", str(baseline),
                                      "--flip", "--scales", args.scales, "--json"))
    kept = sorted(label_report["kept"])
    save(pseudo_labelled_kept=len(kept), label_rejections=label_report["reasons"])
    if not kept:
        sys.exit(f"the baseline's labels passed none of label's filters ({label_report['reasons']}): nothing to add")
    save(pseudo_label_agreement_with_hidden_labels=pseudo_label_agreement(pseudo, args.data, kept))
    pseudo_images = {n: next((pseudo / "images").glob(f"{n}.*")) for n in kept}
    pseudo_trimaps = {n: pseudo / "annotations" / "trimaps" / f"{n}.png" for n in kept}
    combined = write_oxford(args.work / "labelled+pseudo", {**labelled_images, **pseudo_images}, test_images,
                            {**split.trimap, **pseudo_trimaps})
    student = args.work / "student"
    train(combined, student, recipe)
    evaluate("student", student)
    if args.reference and not finished(args.reference):
        sys.exit(f"--reference {args.reference} has not finished training: rerun when it has")
    if args.reference:
        evaluate("reference_all_labels", args.reference)

if __name__ == "__main__":
    main()
