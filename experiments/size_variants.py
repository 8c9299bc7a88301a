"""int8 TFLite stand-ins of each decoder at each input size, for latency only (no training).

Latency depends on the architecture and the input size, not on the weights, so an untrained decoder on the
ImageNet encoder, quantized with real photos, times like the trained model would. This tells which sizes
can meet a latency bound before spending hours training them. The files carry no edgeseg metadata, so
``edgeseg bench`` measures their latency only:

    python experiments/size_variants.py --encoder-weights ../shared/weights/mobilenet_v2_1.0_no_top_imagenet_from_quant.weights.h5 \\
        --calibration ../shared/data/pets-pseudo --out runs/size_variants
    edgeseg bench edge runs/size_variants/*.tflite ../shared/anchors/selfie_segmentation.tflite --threads 2 \\
        --runs 200 --device vm-2core-epyc-avx2 --out experiments/results/size_latency.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.progress import track

from edgeseg.contract import Precision
from edgeseg.export.calibration import load_calibration
from edgeseg.export.tflite import convert, export_saved_model
from edgeseg.io import atomic_path, temporary_directory
from edgeseg.quiet import set_quiet

VARIANTS = {  # (model, upsampling): input sizes the issue asks about
    ("unet_mobilenetv2_edge", "bilinear"): (96, 128, 160, 192),
    ("unet_mobilenetv2", "transpose"): (128, 160, 192, 224),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder-weights", default="imagenet", help="'imagenet', 'none' or a .weights.h5")
    parser.add_argument("--calibration", required=True, help="dataset or image folder for int8 calibration")
    parser.add_argument("--images", type=int, default=64, help="calibration images (ranges only: latency)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    set_quiet(True)  # before TensorFlow loads
    from edgeseg.trainer.models import build_model

    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, up, size) for (name, up), sizes in VARIANTS.items() for size in sizes]
    for name, upsampling, size in track(jobs, description="building int8 stand-ins"):
        target = args.out / f"{name}_{upsampling}_{size}px_int8.tflite"
        if target.exists():
            continue
        model = build_model(name, size, encoder_weights=args.encoder_weights, upsampling=upsampling)
        calibration = load_calibration(args.calibration, size, args.images, force=True, progress=False)
        with temporary_directory("savedmodel") as tmp:
            blob = convert(export_saved_model(model, tmp / "saved"), Precision.INT8, calibration)
        with atomic_path(target) as tmp_path:
            tmp_path.write_bytes(blob)
        print(target)


if __name__ == "__main__":
    main()
