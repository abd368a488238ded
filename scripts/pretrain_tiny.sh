#!/bin/sh
# pretrain_tiny.sh - trains ti's tiny demo model from scratch (the recipe of docs/DEMO.md,
# "Pretraining"): stage 1 the autoencoder (two runs: 500 steps, then 300 more with a warm
# restart), stage 2 the text encoder and UNet, then the classifier evaluation. Single-threaded by default (OMP_NUM_THREADS=1): the run is deterministic and its
# first logged losses are what tests/pretrain.cmake reproduces.
#
#   scripts/pretrain_tiny.sh [OUT_DIR]      (default models/tiny-sd; needs build/bin/ti-pretrain)
# Environment: BIN (tool folder, default build/bin), VAE_STEPS, LDM_STEPS (step counts).
set -eu
BIN=${BIN:-build/bin}
OUT=${1:-models/tiny-sd}
CFG1=configs/tiny/sd-tiny-finetune.yaml  # stage 1: its autoencoder
CFG2=configs/tiny/sd-tiny-pretrain.yaml  # stage 2 and the shipped model
VAE_STEPS=${VAE_STEPS:-500}
VAE2_STEPS=${VAE2_STEPS:-300}
LDM_STEPS=${LDM_STEPS:-3000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# stage 1: the kl-f8 autoencoder (MSE + 1e-4 KL per latent element); scale_factor measured
"$BIN/ti-pretrain" --config "$CFG1" --out "$WORK/vae" --stage vae --seed 0 \
    --steps "$VAE_STEPS" --batch 8 --lr 2e-3 --warmup 20 --kl_weight 1e-4 --log_every 20
# stage 1b: the same autoencoder further, on other images (data seed 1), warm restart at 1e-3
"$BIN/ti-pretrain" --config "$CFG1" --init "$WORK/vae/model.safetensors" --out "$WORK/vae2" \
    --stage vae --seed 1 --data_seed 1 --steps "$VAE2_STEPS" --batch 8 --lr 1e-3 --warmup 10 \
    --kl_weight 1e-4 --log_every 20
SF=$(sed -n 's/^ *scale_factor: *//p' "$WORK/vae2/config.yaml")
# stage 2: text encoder + UNet on the frozen autoencoder's latents, 10 % empty captions
"$BIN/ti-pretrain" --config "$CFG2" --scale_factor "$SF" --init "$WORK/vae2/model.safetensors" \
    --out "$WORK/ldm" --stage ldm --seed 0 --steps "$LDM_STEPS" --batch 32 --lr 1e-3 \
    --warmup 50 --p_uncond 0.1 --data_size 4096 --log_every 50
cp "$WORK/vae/log_vae.csv" "$WORK/ldm/"
cp "$WORK/vae2/log_vae.csv" "$WORK/ldm/log_vae2.csv"
# the classifier's verdict on "a photo of a <colour> <shape>" for every seen class
"$BIN/ti-pretrain" eval --config "$WORK/ldm/config.yaml" --ckpt "$WORK/ldm/model.safetensors" \
    --n 4 --steps 20 --scale 5 --recon 200 --cond_check 512 > "$WORK/ldm/eval.txt"
cat "$WORK/ldm/eval.txt"
for f in model.safetensors config.yaml log_vae.csv log_vae2.csv log_ldm.csv eval.txt; do
    cp "$WORK/ldm/$f" "$OUT/.$f.tmp" && mv "$OUT/.$f.tmp" "$OUT/$f"
done
echo "pretrain_tiny.sh: wrote $OUT"
