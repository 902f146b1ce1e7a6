#!/bin/bash
# cli_onnx_export.sh: `mlpviz export MODEL --onnx FILE` as a user runs it. Each exported
# graph goes through tests/onnx_export_check.py: onnx.checker (full check), the header, the
# mlpviz.* metadata against `mlpviz info --json` of the model, the initializers against the
# model's --npy export bit for bit (first layer's columns moved from HWC to CHW), and the
# graph run by the script's own NumPy float64 interpreter on seeded images against what
# mlpviz computes for them ($TOOLS/tool_model_outputs). Models: the committed
# fashion-mnist.mlp, the committed PyTorch ONNX model exported again (its outputs against
# PyTorch's), and small 3-channel ones from $TOOLS/tool_make_model with every hidden
# activation and every head. Also: mlpviz reading each exported file back gives its outputs
# bit for bit (no Python needed), the check fails on a graph whose first layer kept the HWC
# column order, command-line errors, failed writes that name the file and leave nothing,
# and the same bytes from the same model.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh
make_model=$tools/tool_make_model
model_outputs=$tools/tool_model_outputs

for t in "$make_model" "$model_outputs"; do
    if [ ! -x "$t" ]; then
        not_ok "test tool is built ($t)"
        exit 1
    fi
done

# The first Python with onnx and numpy (a pyenv python3 may lack Debian's packages; make
# test installs python3-onnx and python3-numpy, make check alone skips what needs them).
py=
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import onnx, numpy' 2>/dev/null; then py=$p; break; fi
done
skip_reason="no python3 with onnx and numpy (make test installs python3-onnx python3-numpy)"

# onnx_check NAME ONNX MLP [CHECK-OPTIONS...]: mlpviz's outputs for 16 seeded images of
# MLP (the model exported as ONNX), `info --json` of MLP, then the independent check.
onnx_check() {
    local name=$1 onnx=$2 mlp=$3
    shift 3
    if [ -z "$py" ]; then
        ok "$name # skipped: $skip_reason"
        return
    fi
    if ! "$model_outputs" "$mlp" 16 11 "$onnx.px.npy" "$onnx.out.npy" 2>"$tmp/check" ||
        ! "$bin" info --json "$mlp" >"$onnx.info.json" 2>>"$tmp/check"; then
        not_ok "$name (mlpviz's outputs)" "$tmp/check"
        return
    fi
    check "$name" "$py" tests/onnx_export_check.py "$onnx" "$onnx.px.npy" "$onnx.out.npy" \
        --info "$onnx.info.json" "$@"
}

# ---------------------------------------------------------------- help and command lines
expect 0 "export --help" -- export --help
stdout_has "export help shows --onnx" "--onnx FILE"
stdout_has "export help names the metadata" "mlpviz.mean"

"$make_model" "$tmp/m.mlp" --layers 48,16,6 --channels 3 --seed 4 >/dev/null 2>"$tmp/err" \
    && ok "tool_make_model writes a model" || not_ok "tool_make_model" "$tmp/err"
expect 2 "export without --npy or --onnx" -- export "$tmp/m.mlp"
stderr_has "the message names --onnx" "--onnx FILE"
expect 2 "export --onnx without a value" -- export "$tmp/m.mlp" --onnx
stderr_has "the option is named" "--onnx"
expect 2 "export --onnx with an empty name" -- export "$tmp/m.mlp" --onnx ""
stderr_has "the empty name is refused" "--onnx needs a file name"
expect 1 "export --onnx of a missing model" -- export "$tmp/missing.mlp" --onnx "$tmp/missing.onnx"
stderr_has "the missing model is named" "$tmp/missing.mlp"
[ ! -e "$tmp/missing.onnx" ] && ok "a failed load writes no ONNX file" \
    || not_ok "a failed load wrote $tmp/missing.onnx"

# ---------------------------------------------------------------- the committed model
if [ -f models/fashion-mnist.mlp ]; then
    expect 0 "export fashion-mnist.mlp --onnx (and --npy)" -- export models/fashion-mnist.mlp \
        --onnx "$tmp/fashion.onnx" --npy "$tmp/fashion-npy"
    stdout_has "export says what it wrote" "wrote $tmp/fashion.onnx (ONNX, opset 17"
    onnx_check "fashion-mnist: checked graph, metadata, weights; outputs agree" \
        "$tmp/fashion.onnx" models/fashion-mnist.mlp --npy "$tmp/fashion-npy" --head ce \
        --meta mlpviz.input_shape=1x28x28
else
    ok "export of models/fashion-mnist.mlp # skipped: no models/fashion-mnist.mlp here"
fi

# ---------------------------------------------------------------- an ONNX model exported again
# The PyTorch model (logits out, no metadata) read with the hint options and written again:
# the new file carries its settings in metadata_props and, run by the interpreter on
# PyTorch's own normalised test inputs, gives the softmax of PyTorch's float64 logits.
if [ -f models/pytorch-fashion-mlp.onnx ]; then
    expect 0 "export --onnx of the PyTorch ONNX model with the hint options" -- export \
        models/pytorch-fashion-mlp.onnx --mean 0.2860 --std 0.3530 \
        --classes models/fashion-mnist.classes --onnx "$tmp/pt.onnx"
    onnx_check "the re-exported PyTorch model: checked graph and metadata, outputs agree" \
        "$tmp/pt.onnx" "$tmp/pt.onnx" --head ce --meta mlpviz.mean=0.286000013 \
        --meta mlpviz.std=0.352999985 --meta mlpviz.meta.onnx.output=logits
    if [ -n "$py" ]; then
        check "the re-exported PyTorch model gives PyTorch's probabilities" "$py" - \
            "$tmp/pt.onnx" tests/fixtures/onnx/pytorch-fashion <<'EOF'
import sys
import numpy as np, onnx
sys.path.insert(0, "tests")
from onnx_export_check import run_graph
x = np.fromfile(sys.argv[2] + ".x.f32", "<f4").reshape(8, 1, 28, 28)
z = np.fromfile(sys.argv[2] + ".out.f64", "<f8").reshape(8, 10)
want = np.exp(z - z.max(1, keepdims=True))
want /= want.sum(1, keepdims=True)
err = np.abs(run_graph(onnx.load(sys.argv[1]).graph, x) - want).max()
assert err < 1e-9, err
print("largest difference from PyTorch: %.3g" % err)
EOF
    else
        ok "the re-exported PyTorch model gives PyTorch's probabilities # skipped: $skip_reason"
    fi
else
    ok "export of the PyTorch ONNX model # skipped: no models/pytorch-fashion-mlp.onnx here"
fi

# ---------------------------------------------------------------- every activation, 3 channels
# 3 x 5 x 5 images; one hidden layer per activation kind; awkward class names and metadata
# (quotes, backslash, tab, a control byte, a byte that is not UTF-8, an accent).
acts=relu,leaky_relu:0.2,scaled_relu:1.5,gelu,tanh,softplus,sigmoid,identity
"$make_model" "$tmp/rgb.mlp" --layers 75,16,14,12,10,9,8,7,6,5 --channels 3 --act "$acts" \
    --seed 3 --class-prefix 'a "q"\n'$'\t' --meta 'note=say "hi"\ '$'\x01\xff'' é' \
    >/dev/null 2>"$tmp/err" && ok "tool writes a 3-channel model with 8 activations" \
    || not_ok "3-channel model" "$tmp/err"
expect 0 "export the 3-channel model" -- export "$tmp/rgb.mlp" --onnx "$tmp/rgb.onnx" \
    --npy "$tmp/rgb-npy"
classes='["a \"q\"\\n\t0", "a \"q\"\\n\t1", "a \"q\"\\n\t2", "a \"q\"\\n\t3", "a \"q\"\\n\t4"]'
onnx_check "3 channels, relu leaky_relu scaled_relu gelu tanh softplus sigmoid identity, ce" \
    "$tmp/rgb.onnx" "$tmp/rgb.mlp" --npy "$tmp/rgb-npy" --head ce --classes "$classes" \
    --meta mlpviz.input_shape=3x5x5 --meta mlpviz.mean=0.5,0.375,0.25 \
    --meta mlpviz.std=0.25,0.3125,0.375 --meta 'mlpviz.meta.note=say "hi"\ '$'\x01''� é' \
    --meta mlpviz.meta.seed=3

# The check must see a wrong column order: the same file with W0 back in HWC order.
if [ -n "$py" ]; then
    "$py" - "$tmp/rgb.onnx" "$tmp/hwc.onnx" <<'EOF'
import sys, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
C, H, W = (int(v) for v in {p.key: p.value for p in m.metadata_props}["mlpviz.input_shape"].split("x"))
for t in m.graph.initializer:
    if t.name == "W0":
        a = numpy_helper.to_array(t)
        a = a.reshape(a.shape[0], C, H, W).transpose(0, 2, 3, 1).reshape(a.shape[0], -1)
        t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), "W0"))
onnx.save(m, sys.argv[2])
EOF
    if "$py" tests/onnx_export_check.py "$tmp/hwc.onnx" "$tmp/rgb.onnx.px.npy" \
        "$tmp/rgb.onnx.out.npy" >"$tmp/check" 2>&1; then
        not_ok "the check fails on HWC columns (it passed)" "$tmp/check"
    elif grep -q "from the graph" "$tmp/check"; then
        ok "the check fails on a graph whose first layer kept the HWC column order"
    else
        not_ok "the check fails on HWC columns, but for another reason" "$tmp/check"
    fi
else
    ok "the check fails on HWC columns # skipped: $skip_reason"
fi

# ---------------------------------------------------------------- heads
"$make_model" "$tmp/bce.mlp" --layers 48,16,12,3 --channels 3 --act leaky_relu:0.1,gelu \
    --loss bce --seed 5 >/dev/null 2>"$tmp/err" || not_ok "tool bce model" "$tmp/err"
expect 0 "export a bce model" -- export "$tmp/bce.mlp" --onnx "$tmp/bce.onnx"
onnx_check "3 channels, bce head (Sigmoid)" "$tmp/bce.onnx" "$tmp/bce.mlp" --head bce

"$make_model" "$tmp/mse.mlp" --layers 27,8,4 --channels 3 --act scaled_relu:2 --loss mse \
    --seed 6 >/dev/null 2>"$tmp/err" || not_ok "tool mse model" "$tmp/err"
expect 0 "export an mse model" -- export "$tmp/mse.mlp" --onnx "$tmp/mse.onnx"
onnx_check "3 channels, mse head (no output op)" "$tmp/mse.onnx" "$tmp/mse.mlp" --head mse

"$make_model" "$tmp/lin.mlp" --layers 10,4 --loss mse --seed 7 >/dev/null 2>"$tmp/err" \
    || not_ok "tool one-layer model" "$tmp/err"
expect 0 "export a one-layer model" -- export "$tmp/lin.mlp" --onnx "$tmp/lin.onnx"
onnx_check "one layer, 1 x 10 x 1 input, mse head" "$tmp/lin.onnx" "$tmp/lin.mlp" --head mse \
    --meta mlpviz.input_shape=1x10x1

# ---------------------------------------------------------------- round trip through the reader
# mlpviz -> ONNX -> mlpviz: the exported file, loaded by mlpviz itself, computes the same
# float32 outputs bit for bit (tool_model_outputs writes them as .npy: same bytes).
pairs=("$tmp/rgb.mlp" "$tmp/bce.mlp" "$tmp/mse.mlp" "$tmp/lin.mlp")
[ -f models/fashion-mnist.mlp ] && pairs+=(models/fashion-mnist.mlp)
for mlp in "${pairs[@]}"; do
    name=$(basename "$mlp" .mlp)
    onnx=$tmp/$name.onnx
    [ "$name" = fashion-mnist ] && onnx=$tmp/fashion.onnx
    if "$model_outputs" "$mlp" 16 11 "$tmp/$name.a.px" "$tmp/$name.a.out" 2>"$tmp/err" &&
        "$model_outputs" "$onnx" 16 11 "$tmp/$name.b.px" "$tmp/$name.b.out" 2>>"$tmp/err"; then
        same_file "round trip ($name): mlpviz gives the same outputs from the ONNX file, bit for bit" \
            "$tmp/$name.a.out" "$tmp/$name.b.out"
    else
        not_ok "round trip ($name): both files load" "$tmp/err"
    fi
done
expect 0 "info reads the exported file" -- info "$tmp/rgb.onnx"
stdout_has "the activations come back" "scaled_relu(1.5)"
stdout_has "the model's metadata comes back" "seed = 3"

# ---------------------------------------------------------------- files
expect 0 "export the same model again" -- export "$tmp/rgb.mlp" --onnx "$tmp/rgb2.onnx"
same_file "the same model gives the same bytes" "$tmp/rgb.onnx" "$tmp/rgb2.onnx"

mkdir "$tmp/over"
cp "$tmp/m.mlp" "$tmp/over/m.onnx"
expect 0 "export over an existing file" -- export "$tmp/rgb.mlp" --onnx "$tmp/over/m.onnx"
same_file "the file is replaced" "$tmp/rgb.onnx" "$tmp/over/m.onnx"
files=$(cd "$tmp/over" && ls -A | tr '\n' ' ')
[ "$files" = "m.onnx " ] && ok "no temporary files left" || not_ok "files left: $files"

mkdir "$tmp/w"
expect 1 "export into a missing directory" -- export "$tmp/rgb.mlp" --onnx "$tmp/w/no/such/m.onnx"
stderr_has "the file is named" "$tmp/w/no/such/m.onnx"
files=$(cd "$tmp/w" && ls -A | tr '\n' ' ')
[ -z "$files" ] && ok "a failed write leaves nothing" || not_ok "a failed write left: $files"

mkdir -p "$tmp/w/dir.onnx"
expect 1 "export onto a directory" -- export "$tmp/rgb.mlp" --onnx "$tmp/w/dir.onnx"
stderr_has "the directory is named" "$tmp/w/dir.onnx"
files=$(cd "$tmp/w" && ls -A | tr '\n' ' ')
[ "$files" = "dir.onnx " ] && [ -z "$(ls -A "$tmp/w/dir.onnx")" ] \
    && ok "a refused write leaves nothing beside or inside the directory" \
    || not_ok "a refused write left: $files $(ls -A "$tmp/w/dir.onnx")"
