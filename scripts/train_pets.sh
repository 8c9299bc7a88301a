#!/usr/bin/env bash
# Train the tutorial model (and optionally its edge variant) on pets-pseudo with the offline encoder weights.
# Usage: scripts/train_pets.sh [MODEL] [OUT]     (from the repository root, with ../shared beside it)
set -euo pipefail
MODEL=${1:-unet_mobilenetv2}
OUT=${2:-runs/${MODEL}_pets128}
SHARED=${SHARED:-../shared}
edgeseg train --model "$MODEL" --data "$SHARED/data/pets-pseudo" \
  --encoder-weights "$SHARED/weights/mobilenet_v2_1.0_no_top_imagenet_from_quant.weights.h5" \
  --img-size 128 --batch-size 32 --epochs 20 --lr 1e-3 --lr-schedule cosine --early-stopping 6 \
  --out "$OUT"
