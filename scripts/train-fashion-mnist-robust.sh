#!/bin/bash
# train-fashion-mnist-robust.sh [OUT]: the robust recipe behind models/fashion-mnist-robust.mlp,
# the model whose classes `make demo` draws. Adversarial training (PGD, Madry et al. 2018)
# costs clean accuracy but aligns the input gradients with what people see, so gradient
# ascent on its class scores draws recognizable garments. A different architecture and seed
# from the default model, so that either can judge the other's drawings. About 7 minutes
# on 2 idle cores; the same command gives the same bytes on any thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/fashion-mnist-robust.mlp}
data=data/fashion-mnist
scripts/get-fashion-mnist.sh "$data"

# 784-400-200-10 relu, AdamW with a cosine schedule, every batch replaced by its worst case
# within 0.03 (L-inf, pixels in [0, 1]) found by 4 steps of PGD.
bin/mlpviz train --data "$data/train" --test "$data/test" --out "$out" \
    --layers 400,200 --epochs 25 --opt adamw --lr 1e-3 --weight-decay 0.02 \
    --lr-schedule cosine --warmup 1 --adversarial pgd --eps 0.03 --adv-steps 4 \
    --val-split 0.1 --seed 3
