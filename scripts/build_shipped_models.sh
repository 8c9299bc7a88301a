#!/usr/bin/env bash
# Rebuild the models shipped in src/edgeseg/models from scratch: train, export (checked), benchmark, ship.
# Needs ../shared (pets-pseudo and the offline encoder weights); about 3.5 hours on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE1=runs/unet_mobilenetv2_pets128
TUTORIAL=runs/unet_mobilenetv2_pets128_ft
EDGE0=runs/edge128_bilinear_dice
EDGE=runs/edge128_bilinear_dice_ft4
EDGE160=runs/edge160_bilinear_dice_from128
# Stage 1: frozen encoder (the tutorial). Stage 2: fine-tune the top 4 encoder blocks at a 10x lower rate.
[ -f "$STAGE1/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2 "$STAGE1" 128
[ -f "$TUTORIAL/model.keras" ] || edgeseg train --model unet_mobilenetv2 --data ../shared/data/pets-pseudo \
  --encoder-weights none --init-from "$STAGE1/model.keras" --fine-tune 4 --img-size 128 --batch-size 32 \
  --epochs 8 --lr 1e-4 --lr-schedule cosine --early-stopping 4 --out "$TUTORIAL"
# The edge decoder: 20 epochs frozen, then 6 fine-tuning the top 4 encoder blocks (the default), or 6 more at
# 160 px from the same start (edge160).
[ -f "$EDGE0/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2_edge "$EDGE0" 128 --upsampling bilinear --loss ce+dice
[ -f "$EDGE/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2_edge "$EDGE" 128 --upsampling bilinear \
  --loss ce+dice --init-from "$EDGE0/model.keras" --fine-tune 4 --epochs 6 --lr 1e-4 --early-stopping 0
[ -f "$EDGE160/model.keras" ] || scripts/train_pets.sh unet_mobilenetv2_edge "$EDGE160" 160 --upsampling bilinear \
  --loss ce+dice --init-from "$EDGE0/model.keras" --epochs 6 --lr 3e-4 --early-stopping 0
for run in "$TUTORIAL" "$EDGE" "$EDGE160"; do
  edgeseg export "$run" --int8 --formats tflite,onnx
done
# ship_model.py refuses any artifact whose export check failed, and records each file's mask quality.
python scripts/ship_model.py --default "$EDGE/export/unet_mobilenetv2_edge_int8.tflite" \
  "$EDGE/export/unet_mobilenetv2_edge_int8.onnx" "$TUTORIAL/export/unet_mobilenetv2_int8.tflite" \
  "$EDGE160/export/unet_mobilenetv2_edge_int8.tflite=unet_mobilenetv2_edge160_int8.tflite" \
  --alias edge=unet_mobilenetv2_edge_int8.tflite --alias edge160=unet_mobilenetv2_edge160_int8.tflite \
  --alias tutorial=unet_mobilenetv2_int8.tflite \
  --data ../shared/data/pets-pseudo
