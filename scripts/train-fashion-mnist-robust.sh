#!/bin/bash
# train-fashion-mnist-robust.sh [OUT]: the recipe behind models/fashion-mnist-robust.mlp, the
# model whose classes `make demo` draws. Every training image gets Gaussian noise of sd 0.5
# (pixels in [0, 1]): the classifier must hold its answer in a wide shell around the data,
# which makes its noise-smoothed input gradients follow what people see (randomized
# smoothing, Kaur et al. 2019), so that the default preset draws nameable garments from a
# gray start. Chosen over L2 PGD training (radius 1, 1.25, 1.5, and 1 with the same noise) by
# the independent judge of `make quality` from gray and noise starts: docs/QUALITY.md.
# The same shape as the default model but another seed and recipe (no dropout, no label
# smoothing or flips, noise instead), so that either can judge the other's drawings. About 3 minutes on 2 idle cores; the same command gives the same bytes
# on any thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/fashion-mnist-robust.mlp}
data=data/fashion-mnist
scripts/get-fashion-mnist.sh "$data"

# 784-512-256-10 relu, AdamW with a cosine schedule, 20 epochs, noise of sd 0.5 on every
# input; class statistics (rank 16) and 8 k-means components per class for prior starts.
bin/mlpviz train --data "$data/train" --test "$data/test" --out "$out" \
    --layers 512,256 --epochs 20 --opt adamw --lr 1e-3 --weight-decay 0.02 \
    --lr-schedule cosine --warmup 1 --noise-aug 0.5 --val-split 0.1 --seed 3
