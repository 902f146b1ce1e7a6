#!/bin/bash
# cli_legibility.sh: the class-image targets of issue 11, checked on real models with judges
# of another architecture and seed (MLPs: the CNN judge of `make quality` needs PyTorch,
# which `make test` does not install). A model's confidence in its own image is not checked:
# an MLP can be fooled by noise at p = 0.9999.
#   - the default preset from a gray start: the judge names every class;
#   - from noise starts, several seeds per class: the judge names most images, and the seeds
#     of a class differ from each other;
#   - from the prior (class-mixture starts): the ascent adds what the judge sees, it does not
#     destroy it;
#   - contrast: plain ascent (no gradient smoothing) on the same model convinces the judge far
#     less.
# On the committed Fashion-MNIST models, and on a shapes dataset made and trained here with
# the same recipe, not retuned.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

# judged NAME MODEL JUDGE ARGS...: runs visualize ARGS on MODEL judged by JUDGE into
# $tmp/NAME; leaves the judge's "recognizes R of N, mean probability P" in $tmp/NAME.judge.
judged() {
    local name=$1 model=$2 judge=$3
    shift 3
    if "$bin" visualize "$model" --judge "$judge" --out "$tmp/$name" --scale 1 --quiet "$@" \
        >"$tmp/$name.out" 2>"$tmp/err"; then
        ok "$name: visualize ran"
    else
        not_ok "$name: visualize ran" "$tmp/err"
    fi
    sed -n 's/.*recognizes \([0-9]*\) of \([0-9]*\), mean probability \([0-9.]*\).*/\1 \2 \3/p' \
        "$tmp/$name.out" >"$tmp/$name.judge"
    echo "    # $name: the judge recognizes $(awk '{print $1 " of " $2 ", mean p " $3}' "$tmp/$name.judge")"
}

# at_least NAME FILE FIELD MIN: field FIELD of the judge line (1 recognized, 3 mean p; for
# field 1 MIN is a fraction of the images) is at least MIN.
at_least() {
    check "$1" awk -v f="$3" -v min="$4" \
        '{ v = (f == 1) ? $1 / $2 : $f; print "value " v ", at least " min; exit !(v >= min) }' "$2"
}

# legible NAME MODEL JUDGE: the targets above. The thresholds are for an MLP judge, which
# the CNN judge of `make quality` outdoes (it names all 10 classes from gray where an MLP
# judge confuses shirt with its neighbours): docs/QUALITY.md has both.
legible() {
    local name=$1 model=$2 judge=$3
    judged "$name-gray" "$model" "$judge" --init gray
    at_least "$name: from gray the judge names >= 9 of the 10 classes" "$tmp/$name-gray.judge" 1 0.9
    # 0.75, not 0.8: the MLP judge's mean probability moves with the judge's own training
    # noise. Across the committed models' retrains of issue 15 (same recipes, other bits)
    # the four (drawn, judge) pairs of old and new models gave 0.75 to 0.88, while the CNN
    # judge of `make quality` rose from 0.948 to 0.965 on the same images (docs/QUALITY.md).
    at_least "$name: from gray the judge's mean probability >= 0.75" "$tmp/$name-gray.judge" 3 0.75
    judged "$name-noise" "$model" "$judge" --init noise --seeds 5
    at_least "$name: from noise the judge names >= 85% of 50 images" "$tmp/$name-noise.judge" 1 0.85
    /usr/bin/env python3 tests/png_pixels.py diversity "$tmp/$name-noise" \
        $(ls "$tmp/$name-noise" | sed -n 's/-0\.png$//p') >"$tmp/$name-diversity"
    check "$name: the 5 seeds of every class differ (mean pairwise L2 > 1)" \
        awk '{ print; if ($3 <= 1) bad = 1 } END { exit bad }' "$tmp/$name-diversity"
    judged "$name-diverse" "$model" "$judge" --preset diverse --init noise --seeds 5
    at_least "$name: diverse preset: the judge names >= 75% of 50 images" "$tmp/$name-diverse.judge" 1 0.75
    /usr/bin/env python3 tests/png_pixels.py diversity "$tmp/$name-diverse" \
        $(ls "$tmp/$name-diverse" | sed -n 's/-0\.png$//p') >"$tmp/$name-diverse-spread"
    check "$name: the diverse preset spreads the seeds further than the default" \
        awk 'NR == FNR { d += $3; n++; next } { v += $3; m++ } END { print "default " d / n ", diverse " v / m; exit !(v / m > 1.2 * d / n) }' \
        "$tmp/$name-diversity" "$tmp/$name-diverse-spread"
    judged "$name-prior0" "$model" "$judge" --preset prior --seeds 5 --steps 0
    judged "$name-prior" "$model" "$judge" --preset prior --seeds 5
    check "$name: from the prior the ascent raises the judge's mean probability" \
        awk 'NR == FNR { before = $3; next } { print "0 steps " before ", after " $3; exit !($3 > before) }' \
        "$tmp/$name-prior0.judge" "$tmp/$name-prior.judge"
    judged "$name-plain" "$model" "$judge" --preset plain
    check "$name: plain ascent (no smoothing) convinces the judge far less" \
        awk 'NR == FNR { good = $3; next } { print "default " good ", plain " $3; exit !($3 < good - 0.3) }' \
        "$tmp/$name-gray.judge" "$tmp/$name-plain.judge"
}

# 1. The committed models: the robust one drawn, the accurate default one judging.
legible fashion models/fashion-mnist-robust.mlp models/fashion-mnist.mlp

# 2. Shapes drawn by tests/shapes.c: a model trained here with the committed robust model's
#    recipe (noise of sd 0.5 on every input), and a judge of another architecture and seed.
"$tools/tool_make_shapes" "$tmp/shapes" 300 1 >/dev/null && ok "shapes dataset written" \
    || not_ok "shapes dataset written"
"$bin" train --data "$tmp/shapes" --layers 256 --epochs 12 --noise-aug 0.5 --val-split 0 \
    --seed 1 --quiet --out "$tmp/shapes-robust.mlp" \
    && ok "robust shapes model trained" || not_ok "robust shapes model trained"
"$bin" train --data "$tmp/shapes" --layers 128,64 --epochs 10 --val-split 0 --seed 2 --quiet \
    --out "$tmp/shapes-judge.mlp" && ok "shapes judge trained" || not_ok "shapes judge trained"
legible shapes "$tmp/shapes-robust.mlp" "$tmp/shapes-judge.mlp"
