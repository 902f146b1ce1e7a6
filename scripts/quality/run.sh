#!/bin/bash
# run.sh [QUALITY.PY OPTIONS...]: what `make quality` scores, written in one place.
#
# Scores the committed robust model from gray, noise and its class prior (the prior preset and
# class-sample, each with and without the ascent), and the committed accurate model from
# gray, with scripts/quality/quality.py (see docs/QUALITY.md). Options
# are passed to every quality.py run after the ones below, so they override them, e.g.
# `scripts/quality/run.sh --seeds 10`. MLPVIZ names the binary (default bin/mlpviz), OUT the
# folder of the JSON records (default out/quality). Trains the judge first if its weights
# are missing (about 5 minutes).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
py=/usr/bin/python3
mlpviz=${MLPVIZ:-bin/mlpviz}
out=${OUT:-out/quality}

# The default preset from the neutral starts, and the diverse preset from noise; the prior preset from the class's k-means
# components, with and without its ascent (the ascent must add, not destroy); the old
# class-Gaussian start for comparison.
robust_starts=(
    "gray:--init gray"
    "noise:--init noise"
    "noise, diverse:--preset diverse --init noise"
    "prior:--preset prior"
    "prior 0 steps:--preset prior --steps 0"
    "class-sample:--init class-sample"
    "class-sample 0 steps:--init class-sample --steps 0"
)
accurate_starts=(
    "gray:--init gray"
)

if [ ! -x "$mlpviz" ]; then
    echo "quality: $mlpviz: no such executable (build it: make bin/mlpviz)" >&2
    exit 1
fi

if [ ! -f scripts/quality/judge.npz ]; then
    echo "quality: scripts/quality/judge.npz is missing; training the judge" >&2
    "$py" scripts/quality/judge.py train
fi

mkdir -p "$out"
"$py" scripts/quality/quality.py --mlpviz "$mlpviz" --model models/fashion-mnist-robust.mlp \
    --starts "${robust_starts[@]}" --json "$out/robust.json" \
    --title "models/fashion-mnist-robust.mlp (robust model)" "$@"
"$py" scripts/quality/quality.py --mlpviz "$mlpviz" --model models/fashion-mnist.mlp \
    --starts "${accurate_starts[@]}" --json "$out/accurate.json" \
    --title "models/fashion-mnist.mlp (accurate model)" "$@"
echo
echo "quality: every number is in $out/robust.json and $out/accurate.json"
