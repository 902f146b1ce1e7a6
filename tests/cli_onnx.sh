#!/bin/bash
# cli_onnx.sh: ONNX models through the CLI (issue 13, docs/onnx.md): the committed PyTorch
# model with the hint options, the fixtures with metadata_props or a sidecar, and the hint
# options' own mistakes (exit 2) and conflicts (exit 1). Damaged files: cli_onnx_hostile.sh.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

model=models/pytorch-fashion-mlp.onnx
hints=(--mean 0.2860 --std 0.3530 --classes models/fashion-mnist.classes)
fx=tests/fixtures/onnx

# info: the format, the layers PyTorch wrote, the provenance.
expect 0 "info of a PyTorch ONNX model" -- info "$model" "${hints[@]}"
stdout_has "info: three dense layers" "dense_2 (Dense)      (None, 10)"
stdout_has "info: the softmax head over logits" "onnx.output = logits"
stdout_has "info: the producer" "onnx.producer = pytorch"
stdout_has "info: the mean from --mean" "mean 0.286, std 0.353"
expect 0 "info --json of an ONNX model" -- info "$model" "${hints[@]}" --json
stdout_has "info --json: the classes from --classes" '"ankle_boot"'

# The model's own verdicts: predict one image of each kind the tools make.
"$tools/tool_make_dataset" "$tmp/data" 10 28 1 >/dev/null || not_ok "synthetic folder"
img=$(find "$tmp/data" -name '*.png' | head -n 1)
expect 0 "predict with an ONNX model" -- predict "$model" "${hints[@]}" "$img" --top 3
grep -qE 'tshirt_top|trouser|pullover|dress|coat|sandal|shirt|sneaker|bag|ankle_boot' \
    "$tmp/out" && ok "predict prints class names from --classes" \
    || not_ok "predict prints class names from --classes" "$tmp/out"

# visualize in one command (few steps: this checks the plumbing, make quality the images).
expect 0 "visualize an ONNX model in one command" -- visualize "$model" "${hints[@]}" \
    --steps 12 --out "$tmp/viz" --class coat,bag
check "visualize wrote the class images and the grid" \
    test -s "$tmp/viz/coat.png" -a -s "$tmp/viz/bag.png" -a -s "$tmp/viz/grid.png"
expect 0 "saliency with an ONNX model" -- saliency "$model" "${hints[@]}" "$img" \
    --class coat --out "$tmp/sal.png"
expect 0 "grad with an ONNX model" -- grad "$model" "${hints[@]}" "$img" --class coat \
    --out "$tmp/grad.npy"
check "grad wrote its .npy" test -s "$tmp/grad.npy"
expect 0 "export --npy of an ONNX model" -- export "$model" "${hints[@]}" --npy "$tmp/npy"
check "export wrote W0.npy" test -s "$tmp/npy/W0.npy"

# The same hints as equals-forms, and a pixel scale: 255 with mean/std x 255 is the same model.
expect 0 "hint options as --opt=value" -- info "$model" --mean=0.2860 --std=0.3530 \
    --classes="models/fashion-mnist.classes"
expect 0 "pixel scale 255" -- info "$model" --pixel-scale 255 --mean 72.93 --std 90.015 \
    --classes models/fashion-mnist.classes
stdout_has "pixel scale divides mean and std" "mean 0.286, std 0.353"

# Fixtures that carry their settings: metadata_props, a sidecar JSON (pixel scale 255).
expect 0 "metadata_props give everything" -- info "$fx/gemm-relu-softmax.onnx"
stdout_has "classes from metadata_props" "T-shirt/top"
expect 0 "a sidecar gives everything" -- info "$fx/gemm-leakyrelu-logsoftmax.onnx"
stdout_has "sidecar classes (UTF-8, quotes)" 'quote "q"'
stdout_has "sidecar mean / pixel scale" "mean 0.5, std 0.25"
expect 0 "a hint equal to the metadata is fine" -- info "$fx/gemm-relu-softmax.onnx" \
    --input-shape 1x4x4
expect 1 "a hint that disagrees with the metadata" -- info "$fx/gemm-relu-softmax.onnx" \
    --mean 0.1
stderr_has "the conflict named" "the given mean disagrees"
cp "$fx/gemm-leakyrelu-logsoftmax.onnx" "$tmp/side.onnx"
printf '{"input_shape": "3x2x3", "mean": [1, 2], "std": 1, "classes": ["a"]}' >"$tmp/side.onnx.json"
expect 1 "a sidecar with 2 means for 3 channels" -- info "$tmp/side.onnx"
stderr_has "the mean count explained" "2 mean and 1 std values for 3 channels"
printf '{"mean": [0.5,' >"$tmp/side.onnx.json"
expect 1 "a broken sidecar" -- info "$tmp/side.onnx"
stderr_has "the broken sidecar named with its line" "$tmp/side.onnx.json: line 1"

# What a model without settings needs, said by name.
expect 1 "no mean" -- info "$model"
stderr_has "missing mean: how to give it" "mlpviz.mean, as \"mean\" in a sidecar"
expect 1 "no classes" -- info "$model" --mean 0.286 --std 0.353
stderr_has "missing classes: how to give it" "--classes FILE"
printf 'a\nb\n' >"$tmp/two.classes"
expect 1 "2 class names for 10 outputs" -- info "$model" --mean 0.286 --std 0.353 \
    --classes "$tmp/two.classes"
stderr_has "class count explained" "2 class names given for a network of 10 outputs"
printf 'a\n\nb\n' >"$tmp/blank.classes"
expect 1 "a blank class line" -- info "$model" --mean 0.286 --std 0.353 \
    --classes "$tmp/blank.classes"
stderr_has "blank line named" "line 2 is empty"
expect 1 "a missing classes file" -- info "$model" --mean 0.286 --std 0.353 \
    --classes "$tmp/none"
stderr_has "missing classes file named" "$tmp/none"
expect 1 "hints on an mlpviz model" -- info models/fashion-mnist.mlp --mean 0.5
stderr_has "hints refused for mlpviz models" "those settings are for ONNX files"
expect 1 "input shape of the wrong size" -- info "$model" "${hints[@]}" --input-shape 3x28x28
stderr_has "wrong input size explained" "784 features per image"

# Bad option values: exit 2, the option named.
expect 2 "bad --input-shape" -- info "$model" --input-shape 28x28
stderr_has "bad --input-shape named" "--input-shape"
expect 2 "five means" -- info "$model" --mean 1,2,3,4,5
stderr_has "five means named" "--mean"
expect 2 "bad --channel-order" -- info "$model" --channel-order whc
stderr_has "bad --channel-order named" "--channel-order"
expect 2 "zero --pixel-scale" -- info "$model" --pixel-scale 0
stderr_has "zero --pixel-scale named" "--pixel-scale"
expect 2 "--mean without a value" -- info "$model" --mean
stderr_has "missing value named" "--mean needs a value"
expect 0 "--help of a model command lists the ONNX options" -- eval --help
stdout_has "eval --help: --input-shape" "--input-shape CxHxW"

# train --init: fine-tuning an imported model. Five classes named in reverse by --classes,
# data folders a..e (sorted): the outputs are reordered by name, so a run that cannot move
# the weights (SGD at lr 1e-12) gives the imported model's very predictions, name by name.
fm=$fx/gemm-sigmoid-logits-view.onnx
"$tools/tool_make_dataset" "$tmp/d4" 8 4 1 >/dev/null || not_ok "4x4 synthetic folder"
for c in a b c d e; do mkdir -p "$tmp/five/$c" && cp "$tmp/d4/rings/"* "$tmp/five/$c/"; done
printf 'e\nd\nc\nb\na\n' >"$tmp/rev.classes"
rev=(--mean 0 --std 1 --classes "$tmp/rev.classes")
expect 0 "train --init an ONNX model" -- train --init "$fm" "${rev[@]}" --data "$tmp/five" \
    --epochs 1 --lr 1e-12 --opt sgd --val-split 0 --out "$tmp/ft.mlp" --quiet
one=$(find "$tmp/five/a" -type f | head -n 1)
"$bin" predict "$fm" "${rev[@]}" "$one" --top 5 >"$tmp/p_onnx" 2>&1
"$bin" predict "$tmp/ft.mlp" "$one" --top 5 >"$tmp/p_ft" 2>&1
same_file "fine-tuned at lr 1e-12 predicts as the ONNX model, class by class" \
    "$tmp/p_onnx" "$tmp/p_ft"
expect 0 "info of the fine-tuned model" -- info "$tmp/ft.mlp"
stdout_has "the recorded command keeps the hint options" "--classes $tmp/rev.classes"
expect 2 "--init with --layers" -- train --init "$fm" "${rev[@]}" --data "$tmp/five" \
    --layers 8 --out "$tmp/x.mlp"
stderr_has "--init and --layers conflict named" "brings its network"
printf 'e\nd\nc\nb\nz\n' >"$tmp/other.classes"
expect 1 "--init whose classes are not the data's" -- train --init "$fm" --mean 0 --std 1 \
    --classes "$tmp/other.classes" --data "$tmp/five" --out "$tmp/x.mlp"
stderr_has "the foreign class named" "class 'a' is not one of the model's classes"
expect 1 "--init with data of another size" -- train --init "$fm" "${rev[@]}" \
    --data "$tmp/five" --size 5x5 --out "$tmp/x.mlp"
stderr_has "the size mismatch explained" "takes 1 x 4 x 4 images; the data is 1 x 5 x 5"
check "no model written by the refused runs" test ! -e "$tmp/x.mlp"

# info says which format it read.
expect 0 "info names the ONNX format" -- info "$fx/gemm-relu-softmax.onnx"
stdout_has "IR version and opset shown" "ONNX (IR version 8, opset 17)"
expect 0 "info --json names the format" -- info --json "$fx/gemm-relu-softmax.onnx"
stdout_has "info --json format onnx" '"format": "onnx"'
expect 0 "info --json of an mlpviz model" -- info --json models/fashion-mnist.mlp
stdout_has "info --json format mlpviz" '"format": "mlpviz"'
