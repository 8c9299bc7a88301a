#!/usr/bin/env bash
# Rebuild the models shipped in src/edgeseg/models from scratch: train, export (checked), benchmark, ship.
# Needs ../shared (pets-pseudo and the offline encoder weights); about 2.5 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE1=runs/unet_mobilenetv2_pets128
TUTORIAL=runs/unet_mobilenetv2_pets128_ft
EDGE=runs/edge128_bilinear_dice
# Stage 1: frozen encoder (the tutorial). Stage 2: fine-tune the top 4 encoder blocks at a 10x lower rate.
[ -f "$STAGE1/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2 "$STAGE1" 128
[ -f "$TUTORIAL/model.keras" ] || edgeseg train --model unet_mobilenetv2 --data ../shared/data/pets-pseudo \
  --encoder-weights none --init-from "$STAGE1/model.keras" --fine-tune 4 --img-size 128 --batch-size 32 \
  --epochs 8 --lr 1e-4 --lr-schedule cosine --early-stopping 4 --out "$TUTORIAL"
[ -f "$EDGE/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2_edge "$EDGE" 128 --upsampling bilinear --loss ce+dice
for run in "$TUTORIAL" "$EDGE"; do
  edgeseg export "$run" --int8 --formats tflite,onnx
done
# ship_model.py refuses any artifact whose export check failed, and records each file's mask quality.
python scripts/ship_model.py --default "$EDGE/export/unet_mobilenetv2_edge_int8.tflite" \
  "$EDGE/export/unet_mobilenetv2_edge_int8.onnx" "$TUTORIAL/export/unet_mobilenetv2_int8.tflite" \
  --alias edge=unet_mobilenetv2_edge_int8.tflite --alias tutorial=unet_mobilenetv2_int8.tflite \
  --data ../shared/data/pets-pseudo
