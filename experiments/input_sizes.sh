#!/usr/bin/env bash
# Input size, trained: each decoder's 20-epoch 128 px recipe run, then 6 more epochs at each input size the
# options compare (lr 3e-4 cosine, frozen encoder), with a 6-epoch 128 px control so that every row has had
# the same training; each exported to int8 TFLite (checked against Keras) and benchmarked in one run beside
# the shipped models and MediaPipe selfie. Every step is skipped when its output exists, so rerunning resumes.
# Needs ../shared. Usage (from the repository root):
#   experiments/input_sizes.sh DEVICE-NAME [edge|tutorial]...   (default: both decoders)
set -euo pipefail
DEVICE=${1:?usage: experiments/input_sizes.sh DEVICE-NAME [edge|tutorial]...}
shift
DECODERS=${*:-edge tutorial}
SHARED=${SHARED:-../shared}
T=runs/unet_mobilenetv2_pets128 E=runs/edge128_bilinear_dice
one() { # MODEL OUT SIZE INIT [train options]: 6 epochs at SIZE from INIT, then the int8 export
  local model=$1 out=$2 size=$3 init=$4; shift 4
  [ -f "$out/metrics.json" ] || scripts/train_pets.sh "$model" "$out" "$size" --init-from "$init/model.keras" \
    --epochs 6 --lr 3e-4 --early-stopping 0 "$@"
  ls "$out"/export/*int8.tflite >/dev/null 2>&1 || edgeseg export "$out" --int8 --formats tflite
  RUNS+=("$out")
}
RUNS=()
for decoder in $DECODERS; do
  case $decoder in
    edge)
      [ -f "$E/metrics.json" ] || scripts/train_pets.sh unet_mobilenetv2_edge "$E" 128 --upsampling bilinear --loss ce+dice
      for size in 96 128 160 192; do
        one unet_mobilenetv2_edge "runs/edge${size}_bilinear_dice_from128" "$size" "$E" --upsampling bilinear --loss ce+dice
      done ;;
    tutorial)
      [ -f "$T/metrics.json" ] || scripts/train_pets.sh unet_mobilenetv2 "$T" 128
      for size in 128 160 192 224; do
        one unet_mobilenetv2 "runs/tutorial${size}_from128" "$size" "$T"
      done ;;
    *) echo "unknown decoder '$decoder': expected edge or tutorial" >&2; exit 2 ;;
  esac
done
ARTIFACTS=$(for run in "${RUNS[@]}"; do ls "$run"/export/*int8.tflite; done)
# shellcheck disable=SC2086
edgeseg bench edge edge160 tutorial $ARTIFACTS "$SHARED/anchors/selfie_segmentation.tflite" --threads 2 --runs 200 \
  --data "$SHARED/data/pets-pseudo" --eval-size 319 --device "$DEVICE" --out "experiments/results/input_sizes_$DEVICE.json"
