#!/usr/bin/env bash
# A short run (5 epochs at 96 px, 440 steps) with Keras's moving BatchNorm averages and with the per-epoch
# refresh (the default), each scored by `edgeseg evaluate` on the test split: the runtime's mask at each
# image's own resolution. Needs ../shared. Usage: experiments/bn_refresh.sh   (from the repository root)
set -euo pipefail
SHARED=${SHARED:-../shared}
RECIPE=(--upsampling bilinear --loss ce+dice --epochs 5 --early-stopping 0)
for arm in averaged:0 refreshed:8; do
  name=${arm%%:*} batches=${arm##*:}
  [ -f "runs/bn_$name/metrics.json" ] || scripts/train_pets.sh unet_mobilenetv2_edge "runs/bn_$name" 96 "${RECIPE[@]}" \
    --bn-refresh-batches "$batches"
  edgeseg evaluate "runs/bn_$name" --data "$SHARED/data/pets-pseudo" --json > "experiments/results/bn_refresh_$name.json"
done
