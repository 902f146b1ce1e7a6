#!/bin/bash
# run.sh [QUALITY.PY OPTIONS...]: what `make quality` scores, written in one place.
#
# Scores the committed robust model from gray, noise and its class prior (class-sample, with
# and without the ascent; class-mixture too when this mlpviz has it), and the committed
# accurate model from gray, with scripts/quality/quality.py (see docs/QUALITY.md). Options
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

robust_starts=(
    "gray:--init gray"
    "noise:--init noise"
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
# class-mixture starts only where this mlpviz lists them and the model stores a mixture
# (a model trained before `train --class-mixture` existed has none): one image, 0 steps, tells.
if "$mlpviz" visualize --help 2>&1 | grep -q 'class-mixture'; then
    probe=$(mktemp -d)
    if why=$("$mlpviz" visualize models/fashion-mnist-robust.mlp --class 0 --steps 0 --scale 1 \
        --quiet --init class-mixture --out "$probe" 2>&1 >/dev/null); then
        robust_starts+=(
            "class-mixture:--init class-mixture"
            "class-mixture 0 steps:--init class-mixture --steps 0"
        )
    else
        echo "quality: class-mixture starts skipped: ${why##*: }" >&2
    fi
    rm -rf "$probe"
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
