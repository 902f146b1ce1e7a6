#!/bin/bash
# train-fashion-mnist.sh [OUT]: the default recipe, trained from the image folders that
# scripts/get-fashion-mnist.sh writes. `make model` runs it to make models/fashion-mnist.mlp;
# `make demo` runs it into out/. The command is the model's whole definition: the same
# command gives the same model file, bit for bit, on any thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/fashion-mnist.mlp}
data=data/fashion-mnist
scripts/get-fashion-mnist.sh "$data"

# 784-512-256-10 relu, AdamW with a cosine schedule, light dropout, label smoothing and
# mirror images; 10% of the training images held out to pick the best epoch.
bin/mlpviz train --data "$data/train" --test "$data/test" --out "$out" \
    --layers 512,256 --act relu --epochs 40 --batch 128 \
    --opt adamw --lr 1e-3 --weight-decay 0.02 --lr-schedule cosine --warmup 1 \
    --dropout 0.2 --label-smoothing 0.1 --flip --val-split 0.1 --keep-best --seed 1
