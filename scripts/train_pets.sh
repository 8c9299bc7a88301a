#!/usr/bin/env bash
# Train the tutorial model (and optionally its edge variant) on pets-pseudo with the offline encoder weights.
# Usage: scripts/train_pets.sh [MODEL] [OUT] [IMG_SIZE] [TRAIN OPTIONS...]   (from the repository root, with
# ../shared beside it; options after the third argument go to `edgeseg train`)
#   shipped tutorial model:  scripts/train_pets.sh unet_mobilenetv2 runs/unet_mobilenetv2_pets128 128
#   shipped edge variant:    scripts/train_pets.sh unet_mobilenetv2_edge runs/unet_mobilenetv2_edge_pets96 96
set -euo pipefail
MODEL=${1:-unet_mobilenetv2}
SIZE=${3:-128}
OUT=${2:-runs/${MODEL}_pets${SIZE}}
shift $(( $# < 3 ? $# : 3 ))
SHARED=${SHARED:-../shared}
edgeseg train --model "$MODEL" --data "$SHARED/data/pets-pseudo" \
  --encoder-weights "$SHARED/weights/mobilenet_v2_1.0_no_top_imagenet_from_quant.weights.h5" \
  --img-size "$SIZE" --batch-size 32 --epochs 20 --lr 1e-3 --lr-schedule cosine --early-stopping 6 \
  --out "$OUT" "$@"
