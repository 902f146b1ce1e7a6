#!/bin/bash
# cli_gradcheck.sh: the mlpviz binary as a user runs it: exit statuses, messages on stderr,
# help texts, and the gradient checks promised in the README.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

expect 0 "top-level help" -- --help
stdout_has "help lists gradcheck" "gradcheck"
expect 0 "version" -- version
stdout_has "version text" "mlpviz 0."
expect 2 "no command" --
expect 2 "unknown command" -- frobnicate
stderr_has "unknown command named" "unknown command 'frobnicate'"
expect 0 "gradcheck --help" -- gradcheck --help
stdout_has "gradcheck help shows --layers" "--layers"
expect 0 "help gradcheck" -- help gradcheck

# The checks the foundation promises: every hidden activation on the README's network.
for act in relu sigmoid tanh gelu softplus leaky_relu 5relu identity; do
    expect 0 "gradcheck 784,128,64,10 $act ce in double" -- \
        gradcheck --layers 784,128,64,10 --act "$act" --loss ce
    if grep -q "max relative error" "$tmp/out"; then
        err=$(sed -n 's/^max relative error \([^ ]*\) .*/\1/p' "$tmp/out")
        awk -v e="$err" 'BEGIN { exit !(e <= 1e-6 && e > 0) }' && ok "$act: max rel err $err <= 1e-6" \
            || not_ok "$act: max rel err $err"
    else
        not_ok "$act: no summary line" "$tmp/out"
    fi
done
expect 0 "gradcheck per-layer activations, bce, hidden objective" -- \
    gradcheck -l 20,16,12,8,3 -a tanh,gelu,leaky_relu:0.2 -L bce -o hidden:2 -n 0
expect 0 "gradcheck mse, output objective, float32" -- \
    gradcheck -l 20,16,3 -a softplus -L mse -o output -p float
stdout_has "float32 run says so" "float32"

# Failures: a tolerance no real check meets exits 1 and says why.
expect 1 "tolerance 0 fails" -- gradcheck --layers 10,5,3 --tol 0
stderr_has "failure message" "above tolerance"
# Bad command lines exit 2 and name the option.
expect 2 "missing --layers" -- gradcheck
stderr_has "missing --layers named" "--layers (a random network) or --model is required"
expect 2 "bad widths" -- gradcheck --layers 784,,10
stderr_has "bad widths named" "bad layer list"
expect 2 "zero batch" -- gradcheck --layers 4,3 --batch 0
stderr_has "zero batch named" "--batch"
expect 2 "NaN step" -- gradcheck --layers 4,3 --step nan
stderr_has "NaN step named" "--step"
expect 2 "unknown option" -- gradcheck --layers 4,3 --frob
stderr_has "unknown option named" "--frob"
expect 2 "missing value" -- gradcheck --layers
expect 2 "unknown activation" -- gradcheck --layers 4,3,2 --act swish
stderr_has "unknown activation named" "swish"
expect 2 "activation count mismatch" -- gradcheck --layers 4,3,3,2 --act relu,tanh,gelu
stderr_has "count mismatch explained" "2 hidden layers"
expect 2 "unknown loss" -- gradcheck --layers 4,3 --loss hinge
expect 2 "stray argument" -- gradcheck --layers 4,3 extra
expect 2 "logprob needs a probability head" -- gradcheck --layers 4,3 --loss mse --objective logprob
stderr_has "logprob message" "logprob"
expect 2 "hidden objective on a one-layer net" -- gradcheck --layers 4,3 --objective hidden:0
stderr_has "hidden message" "0 hidden layer"
expect 0 "gradcheck through dropout masks" -- gradcheck -l 30,20,10,5 -a tanh,relu --dropout 0.3 -n 0
expect 2 "dropout out of range" -- gradcheck -l 30,20,5 --dropout 1.5
stderr_has "dropout named" "--dropout"

# A given model (issue 13): the committed mlpviz model on synthetic 28x28 images, and the
# committed PyTorch-exported ONNX model on random pixels, each checked on its own weights.
tools=${TOOLS:-build/opt/tests}
"$tools/tool_make_dataset" "$tmp/data28" 12 28 1 >/dev/null || not_ok "synthetic 28x28 folder"
expect 0 "gradcheck --model (mlpviz) --data" -- gradcheck --model models/fashion-mnist.mlp \
    --data "$tmp/data28" --batch 3
stdout_has "model named in the report" "model models/fashion-mnist.mlp (mlpviz), images from"
stdout_has "the model's last layer checked" "W2 "
onnx_hints=(--mean 0.2860 --std 0.3530 --classes models/fashion-mnist.classes)
expect 0 "gradcheck --model (ONNX from PyTorch)" -- gradcheck \
    --model models/pytorch-fashion-mlp.onnx "${onnx_hints[@]}" --batch 2 --objective output
stdout_has "ONNX model named" "(ONNX), images from random pixels"
stdout_has "ONNX model's layers checked" "W2 "
# The check is of the model, not of a random network: a tolerance of 0 still fails.
expect 1 "gradcheck --model with tol 0 fails" -- gradcheck --model models/fashion-mnist.mlp --tol 0
expect 2 "--model with --layers" -- gradcheck --model models/fashion-mnist.mlp --layers 4,3
stderr_has "--model and --layers conflict named" "brings its own"
expect 2 "--data without --model" -- gradcheck --data "$tmp/data28"
stderr_has "--data needs --model" "--data needs --model"
expect 1 "--model of a missing file" -- gradcheck --model "$tmp/none.onnx"
stderr_has "missing model named" "$tmp/none.onnx"
expect 1 "ONNX model without its mean" -- gradcheck --model models/pytorch-fashion-mlp.onnx
stderr_has "missing mean explained" "does not say its mean"
