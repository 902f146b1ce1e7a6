#!/bin/bash
# cli_train.sh: mlpviz train / eval / predict as a user runs them, on a synthetic image folder
# of mixed formats made by tool_make_dataset: accuracy, files written, reproducibility,
# resume after Ctrl-C, and the errors of bad input.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

"$tools/tool_make_dataset" "$tmp/train" 60 12 1 && "$tools/tool_make_dataset" "$tmp/test" 25 12 2 \
    && ok "synthetic folders written" || not_ok "synthetic folders written"
common=(--data "$tmp/train" --layers 32 --epochs 10 --batch 16 --lr 3e-3 --quiet)

expect 0 "train --help" -- train --help
stdout_has "train help lists --resume" "--resume"
expect 0 "train on a folder of png/bmp/tga/jpg" -- train "${common[@]}" --test "$tmp/test" \
    --out "$tmp/m1.mlp"
[ -s "$tmp/m1.mlp" ] && [ -s "$tmp/m1.csv" ] && [ -s "$tmp/m1.ckpt" ] \
    && ok "model, metrics and checkpoint written" || not_ok "model, metrics and checkpoint written"
[ "$(wc -l <"$tmp/m1.csv")" -eq 11 ] && ok "metrics CSV has a header and 10 epochs" \
    || not_ok "metrics CSV has a header and 10 epochs"
[ -z "$(find "$tmp" -maxdepth 1 -name '.*' ! -name .)" ] && ok "no temporary files left" \
    || not_ok "no temporary files left"

expect 0 "eval" -- eval "$tmp/m1.mlp" --data "$tmp/test" --confusion "$tmp/confusion.png"
acc=$(sed -n 's/^accuracy \([0-9.]*\) .*/\1/p' "$tmp/out")
awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.98) }' && ok "test accuracy $acc >= 0.98" \
    || not_ok "test accuracy ${acc:-none} >= 0.98" "$tmp/out"
stdout_has "per-class table" "horizontal"
[ -s "$tmp/confusion.png" ] && ok "confusion PNG written" || not_ok "confusion PNG written"

expect 0 "predict" -- predict "$tmp/m1.mlp" "$tmp/test/rings/img 000.png" --top 2
stdout_has "predict names the class" "1. rings"

# The same command gives the same bytes, whatever the thread count. (--out, --threads,
# --resume and --quiet are left out of the recorded command; the runs below still write the
# same path, so that the comparison holds even if that rule changes.)
expect 0 "train with 1 thread" -- train "${common[@]}" --out "$tmp/t.mlp" --threads 1
mv "$tmp/t.mlp" "$tmp/t1.mlp"
expect 0 "train with 2 threads" -- train "${common[@]}" --out "$tmp/t.mlp" --threads 2
same_file "1 thread and 2 threads give identical models" "$tmp/t1.mlp" "$tmp/t.mlp"

# A run cut short and resumed ends where an uninterrupted one does.
short=(--data "$tmp/train" --layers 32 --epochs 5 --batch 16 --lr 3e-3 --quiet)
expect 0 "train 5 epochs" -- train "${short[@]}" --out "$tmp/r.mlp"
expect 0 "resume to 10 epochs" -- train "${common[@]}" --out "$tmp/r.mlp" --resume "$tmp/r.ckpt"
mv "$tmp/r.mlp" "$tmp/resumed.mlp"
expect 0 "uninterrupted 10 epochs" -- train "${common[@]}" --out "$tmp/r.mlp"
same_file "resumed run equals uninterrupted run" "$tmp/resumed.mlp" "$tmp/r.mlp"

# Ctrl-C: checkpoint, exit 130, and --resume finishes with the uninterrupted result.
# Long enough to be stopped mid-run: ~25 ms an epoch here, a checkpoint (fsync) each.
"$tools/tool_make_dataset" "$tmp/bigdata" 400 28 3 || not_ok "large synthetic folder written"
big=(--data "$tmp/bigdata" --layers 64 --epochs 40 --batch 8 --val-split 0 --seed 3 --quiet)
"$bin" train "${big[@]}" --out "$tmp/big.mlp" 2>"$tmp/err" &
pid=$!
for _ in $(seq 200); do [ -s "$tmp/big.ckpt" ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid"
status=$?
[ "$status" -eq 130 ] && ok "Ctrl-C exits 130" || not_ok "Ctrl-C exits 130 (got $status)" "$tmp/err"
stderr_has "Ctrl-C says how to resume" "--resume"
[ ! -e "$tmp/big.mlp" ] && ok "no model written by an interrupted run" \
    || not_ok "no model written by an interrupted run"
expect 0 "resume after Ctrl-C" -- train "${big[@]}" --out "$tmp/big.mlp" --resume "$tmp/big.ckpt"
mv "$tmp/big.mlp" "$tmp/big-resumed.mlp"
expect 0 "uninterrupted long run" -- train "${big[@]}" --out "$tmp/big.mlp"
same_file "Ctrl-C then resume equals uninterrupted" "$tmp/big-resumed.mlp" "$tmp/big.mlp"

# Bad input: clear message, non-zero exit, nothing written.
expect 2 "missing --out" -- train --data "$tmp/train"
stderr_has "missing --out named" "--out"
expect 2 "zero batch" -- train --data "$tmp/train" --out "$tmp/x.mlp" --batch 0
stderr_has "zero batch named" "--batch"
expect 2 "negative epochs" -- train --data "$tmp/train" --out "$tmp/x.mlp" --epochs -3
expect 2 "NaN learning rate" -- train --data "$tmp/train" --out "$tmp/x.mlp" --lr nan
stderr_has "NaN lr named" "--lr"
expect 2 "unknown optimizer" -- train --data "$tmp/train" --out "$tmp/x.mlp" --opt rmsprop
stderr_has "unknown optimizer named" "rmsprop"
expect 1 "missing data" -- train --data "$tmp/nowhere" --out "$tmp/x.mlp"
stderr_has "missing data named" "$tmp/nowhere"
mkdir -p "$tmp/one/only" && cp "$tmp/train/rings/img 000.png" "$tmp/one/only/"
expect 1 "one class is refused" -- train --data "$tmp/one" --out "$tmp/x.mlp"
[ ! -e "$tmp/x.mlp" ] && ok "no model after failures" || not_ok "no model after failures"
expect 1 "resume from a non-checkpoint" -- train "${common[@]}" --out "$tmp/x.mlp" \
    --resume "$tmp/m1.mlp"
stderr_has "non-checkpoint explained" "checkpoint"
expect 1 "resume with other settings" -- train "${common[@]}" --seed 9 --out "$tmp/x.mlp" \
    --resume "$tmp/m1.ckpt"
stderr_has "other settings explained" "same command"
mkdir -p "$tmp/extra/diagonal" "$tmp/extra/zigzag"
cp "$tmp/test/diagonal/img 000.png" "$tmp/extra/diagonal/"
cp "$tmp/test/diagonal/img 000.png" "$tmp/extra/zigzag/"
expect 1 "eval refuses an unknown class" -- eval "$tmp/m1.mlp" --data "$tmp/extra" --confusion none
stderr_has "unknown class named" "zigzag"
expect 1 "predict a missing image" -- predict "$tmp/m1.mlp" "$tmp/none.png"
stderr_has "missing image named" "none.png"
expect 1 "eval a corrupt model" -- eval "$tmp/m1.csv" --data "$tmp/test"
stderr_has "corrupt model named" "m1.csv"

# A diverging run stops with the reason, and writes no model when no epoch was good.
expect 1 "diverging run fails" -- train "${common[@]}" --opt sgd --lr 50 --out "$tmp/nan.mlp"
stderr_has "divergence explained" "diverged"
stderr_has "no model without a good epoch" "no model written"
[ ! -e "$tmp/nan.mlp" ] && ok "no model from a diverged first epoch" \
    || not_ok "no model from a diverged first epoch"

# grad: the input gradient as a NumPy file of the image's shape (or one per class); the
# folder holds one colour image per class, so the model takes 3 channels.
img="$tmp/test/rings/img 001.bmp"
expect 0 "grad of the predicted class" -- grad "$tmp/m1.mlp" "$img" --out "$tmp/g.npy"
stdout_has "grad names the class" "rings: logit"
head -c 128 "$tmp/g.npy" | grep -qa "'shape': (12, 12, 3)" && ok "grad .npy shape (12, 12, 3)" \
    || not_ok "grad .npy shape (12, 12, 3)"
[ "$(stat -c %s "$tmp/g.npy")" -eq $((128 + 4 * 432)) ] && ok "grad .npy size" \
    || not_ok "grad .npy size ($(stat -c %s "$tmp/g.npy"))"
expect 0 "grad of every class in one pass" -- grad "$tmp/m1.mlp" "$img" --class all \
    --objective logprob --out "$tmp/g4.npy"
head -c 128 "$tmp/g4.npy" | grep -qa "'shape': (4, 12, 12, 3)" && ok "grad --class all shape" \
    || not_ok "grad --class all shape"
expect 2 "grad of an unknown class" -- grad "$tmp/m1.mlp" "$img" --class zigzag
stderr_has "unknown class named" "zigzag"
expect 2 "grad with a bad objective" -- grad "$tmp/m1.mlp" "$img" --objective margin

# IDX data without --names: classes are named by their labels.
printf '\x00\x00\x08\x03\x00\x00\x00\x04\x00\x00\x00\x02\x00\x00\x00\x02' >"$tmp/i-images-idx3-ubyte"
printf '\x00\xff\x00\xff\xff\x00\xff\x00\x00\xff\x00\xff\xff\x00\xff\x00' >>"$tmp/i-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x04\x00\x01\x00\x01' >"$tmp/i-labels-idx1-ubyte"
expect 0 "train on IDX files without --names" -- train --data "$tmp/i-images-idx3-ubyte" \
    --layers 4 --epochs 2 --batch 2 --val-split 0 --quiet --out "$tmp/idx.mlp"
expect 0 "info of the IDX model" -- info "$tmp/idx.mlp"
stdout_has "IDX classes named by label" "0, 1"
expect 2 "an empty name in --names" -- train --data "$tmp/i-images-idx3-ubyte" --names a,,b \
    --out "$tmp/x.mlp"
stderr_has "empty name explained" "empty class name"

# Adversarial training and class statistics, as recorded in the model.
expect 0 "pgd training" -- train --data "$tmp/train" --layers 16 --epochs 2 --batch 16 --quiet \
    --adversarial pgd --eps 0.05 --adv-steps 3 --class-stats 4 --out "$tmp/adv.mlp"
expect 0 "info of the pgd model" -- info "$tmp/adv.mlp"
stdout_has "adversarial run recorded" "train.adversarial = pgd eps=0.05 steps=3"
stdout_has "class statistics stored" "class.basis"
stdout_has "class mixture stored" "class.mixture.mean"
expect 0 "fgsm training" -- train --data "$tmp/train" --layers 16 --epochs 1 --batch 16 --quiet \
    --adversarial fgsm --out "$tmp/fgsm.mlp"
expect 0 "info of the fgsm model" -- info "$tmp/fgsm.mlp"
stdout_has "fgsm recorded" "train.adversarial = fgsm eps=0.1 steps=1"
expect 2 "unknown attack" -- train --data "$tmp/train" --adversarial cw --out "$tmp/x.mlp"
stderr_has "unknown attack named" "'cw'"
expect 2 "adv-steps with fgsm" -- train --data "$tmp/train" --adversarial fgsm --adv-steps 3 --out "$tmp/x.mlp"
stderr_has "adv-steps explained" "--adv-steps is for --adversarial pgd"
expect 2 "zero radius" -- train --data "$tmp/train" --adversarial pgd --eps 0 --out "$tmp/x.mlp"
expect 2 "class-stats out of range" -- train --data "$tmp/train" --class-stats 65 --out "$tmp/x.mlp"
expect 2 "class-mixture out of range" -- train --data "$tmp/train" --class-mixture 65 --out "$tmp/x.mlp"
stderr_has "class-mixture named" "class-mixture"
# L2 PGD and Gaussian noise augmentation, as recorded in the model.
expect 0 "l2 pgd training with noise" -- train --data "$tmp/train" --layers 16 --epochs 1 \
    --batch 16 --quiet --adversarial pgd --norm l2 --eps 0.5 --adv-steps 2 --noise-aug 0.1 \
    --out "$tmp/l2.mlp"
expect 0 "info of the l2 model" -- info "$tmp/l2.mlp"
stdout_has "l2 run recorded" "train.adversarial = pgd l2 eps=0.5 steps=2"
stdout_has "noise recorded" "train.noise_aug = 0.1"
expect 0 "l2 radius defaults to 1" -- train --data "$tmp/train" --layers 8 --epochs 1 --batch 16 \
    --quiet --adversarial fgsm --norm l2 --out "$tmp/l2d.mlp"
expect 0 "info of the l2 fgsm model" -- info "$tmp/l2d.mlp"
stdout_has "l2 fgsm recorded" "train.adversarial = fgsm l2 eps=1 steps=1"
expect 2 "unknown norm" -- train --data "$tmp/train" --adversarial pgd --norm l1 --out "$tmp/x.mlp"
stderr_has "unknown norm named" "--norm must be linf or l2, got 'l1'"
expect 2 "an L-inf radius above 1" -- train --data "$tmp/train" --adversarial pgd --eps 2 \
    --out "$tmp/x.mlp"
stderr_has "L-inf radius explained" "at most 1"
expect 2 "norm without an attack" -- train --data "$tmp/train" --norm l2 --out "$tmp/x.mlp"
expect 2 "negative noise" -- train --data "$tmp/train" --noise-aug -1 --out "$tmp/x.mlp"
stderr_has "noise named" "noise-aug"
expect 2 "eps without an attack" -- train --data "$tmp/train" --eps 0.1 --out "$tmp/x.mlp"
stderr_has "eps explained" "need --adversarial pgd|fgsm"
# A class without training images: the model is still written, without class statistics.
expect 0 "a class without images" -- train --data "$tmp/i-images-idx3-ubyte" --names a,b,c \
    --layers 4 --epochs 2 --batch 2 --val-split 0 --quiet --out "$tmp/empty-class.mlp"
stderr_has "no statistics explained" "a class has no training image"
[ -s "$tmp/empty-class.mlp" ] && ok "model written anyway" || not_ok "model written anyway"
