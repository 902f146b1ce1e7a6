#!/bin/bash
# cli_model.sh: `mlpviz info` and `mlpviz export` as a user runs them: the summary and its
# parameter count, JSON that parses, .npy files that reproduce the network's outputs, and
# exit statuses and messages for bad command lines and missing or damaged models.
# Models come from $TOOLS/tool_make_model (random weights through the library's own writer).
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh
make_model=$tools/tool_make_model

# Recomputes a network's outputs from an export (model.json + .npy files, read with the
# standard library only) for the image the tool uses, and compares them with the outputs
# the tool printed. With --numpy the arrays are read with numpy.load instead.
cat >"$tmp/forward.py" <<'EOF'
import ast, json, math, os, struct, sys

def read_npy(path):
    raw = open(path, "rb").read()
    assert raw[:8] == b"\x93NUMPY\x01\x00", "bad magic/version in " + path
    header_len = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + header_len].decode("latin1")
    assert (10 + header_len) % 64 == 0 and header.endswith("\n"), "bad padding in " + path
    info = ast.literal_eval(header)
    assert info["descr"] == "<f4" and info["fortran_order"] is False, header
    count = 1
    for n in info["shape"]:
        count *= n
    body = raw[10 + header_len:]
    assert len(body) == 4 * count, "%s: %d bytes for %d values" % (path, len(body), count)
    return tuple(info["shape"]), list(struct.unpack("<%df" % count, body))

def read_numpy(path):
    import numpy
    a = numpy.load(path)
    assert a.dtype == numpy.float32, a.dtype
    return a.shape, [float(v) for v in a.reshape(-1)]

ACT = {
    "identity": lambda z, p: z, "sigmoid": lambda z, p: 1 / (1 + math.exp(-z)),
    "tanh": lambda z, p: math.tanh(z), "relu": lambda z, p: max(z, 0.0),
    "leaky_relu": lambda z, p: z if z > 0 else p * z,
    "scaled_relu": lambda z, p: p * max(z, 0.0),
    "softplus": lambda z, p: math.log1p(math.exp(z)),
    "gelu": lambda z, p: z * 0.5 * (1 + math.erf(z / math.sqrt(2))),
}

def main():
    out_dir, printed = sys.argv[1], sys.argv[2]
    read = read_numpy if "--numpy" in sys.argv else read_npy
    spec = json.load(open(os.path.join(out_dir, "model.json")))
    widths = spec["widths"]
    C, H, W = spec["input"]["shape"]
    assert spec["input"]["layout"] == "HWC" and C * H * W == widths[0]
    mean, std = spec["input"]["mean"], spec["input"]["std"]
    x = [((7 * k) % 13) / 12.0 for k in range(widths[0])]
    x = [(v - mean[k % C]) / std[k % C] for k, v in enumerate(x)]
    for l in range(len(widths) - 1):
        wshape, Wl = read(os.path.join(out_dir, "W%d.npy" % l))
        bshape, bl = read(os.path.join(out_dir, "b%d.npy" % l))
        assert wshape == (widths[l + 1], widths[l]), (l, wshape)
        assert bshape == (widths[l + 1],), (l, bshape)
        n_in = widths[l]
        z = [sum(Wl[j * n_in + k] * x[k] for k in range(n_in)) + bl[j]
             for j in range(widths[l + 1])]
        if l + 2 < len(widths):
            act = spec["hidden_activations"][l]
            x = [ACT[act["name"]](v, act["param"]) for v in z]
        elif spec["output_activation"] == "softmax":
            top = max(z)
            e = [math.exp(v - top) for v in z]
            x = [v / sum(e) for v in e]
        else:
            x = [ACT[spec["output_activation"]](v, 0) for v in z]
    want = [float(v) for v in open(printed).read().split()]
    assert len(want) == len(x), (len(want), len(x))
    for j, (a, b) in enumerate(zip(x, want)):
        assert abs(a - b) <= 1e-5 + 1e-4 * abs(b), "output %d: %r from the export, %r printed" % (j, a, b)
    print("outputs agree:", " ".join("%.6g" % v for v in x))

main()
EOF

if [ ! -x "$make_model" ]; then
    not_ok "tool_make_model is built ($make_model)"
    exit 1
fi

# ---------------------------------------------------------------- help and command lines
expect 0 "info --help" -- info --help
stdout_has "info help shows --json" "--json"
expect 0 "export --help" -- export --help
stdout_has "export help shows --npy" "--npy"
expect 0 "help info" -- help info
expect 0 "help export" -- help export

"$make_model" "$tmp/m.mlp" --layers 784,32,10 --act relu --seed 7 --extra adam_m=25450 \
    >/dev/null 2>"$tmp/err" && ok "tool_make_model writes a model" || not_ok "tool_make_model" "$tmp/err"

expect 2 "info without a model" -- info
stderr_has "info names what is missing" "model file is required"
expect 2 "info unknown option" -- info "$tmp/m.mlp" --frob
stderr_has "info unknown option named" "--frob"
expect 2 "info stray argument" -- info "$tmp/m.mlp" extra
stderr_has "info stray argument named" "'extra'"
expect 2 "export without --npy" -- export "$tmp/m.mlp"
stderr_has "export names --npy" "--npy"
expect 2 "export --npy without a value" -- export "$tmp/m.mlp" --npy
expect 2 "export unknown option" -- export "$tmp/m.mlp" --npy "$tmp/x" --bogus
stderr_has "export unknown option named" "--bogus"
expect 2 "export without a model" -- export --npy "$tmp/x"

# ---------------------------------------------------------------- info
expect 0 "info 784,32,10" -- info "$tmp/m.mlp"
stdout_has "info total parameters (784*32+32 + 32*10+10)" "Total params: 25450"
stdout_has "info row of the hidden layer" "dense_0 (Dense)      (None, 32)     relu                        25120"
stdout_has "info row of the output layer" "dense_1 (Dense)      (None, 10)     softmax (head ce)             330"
stdout_has "info input shape" "Input: 1 x 28 x 28"
stdout_has "info normalisation" "channel 0: mean 0.5, std 0.25"
stdout_has "info class names" "class0, class1"
stdout_has "info metadata" "seed = 7"
stdout_has "info extras and their size" "25450 floats (101800 bytes)"
size=$(stat -c %s "$tmp/m.mlp")
stdout_has "info file size" "File: $size bytes"
crc=$(python3 -c 'import sys,struct; print("0x%08x" % struct.unpack("<I", open(sys.argv[1],"rb").read()[-4:])[0])' "$tmp/m.mlp")
stdout_has "info stored CRC" "CRC-32 $crc"

expect 0 "info --json" -- info --json "$tmp/m.mlp"
check "info --json parses" python3 -c 'import json,sys; json.load(sys.stdin)' <"$tmp/out"
check "info --json content" python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["total_params"] == 25450, d["total_params"]
assert d["widths"] == [784, 32, 10] and d["head"] == "ce"
assert [l["params"] for l in d["layers"]] == [25120, 330]
assert d["layers"][0]["activation"] == "relu" and d["layers"][1]["activation"] == "softmax"
assert d["input"] == {"channels": 1, "height": 28, "width": 28, "layout": "HWC", "mean": [0.5], "std": [0.25]}, d["input"]
assert d["classes"] == ["class%d" % i for i in range(10)]
assert d["meta"] == {"tool": "tool_make_model", "seed": "7"}, d["meta"]
assert d["extras"] == [{"name": "adam_m", "count": 25450, "bytes": 101800}]
assert d["file_size"] == int(sys.argv[1]) and d["crc32"] == sys.argv[2]
' "$size" "$crc" <"$tmp/out"

# Strings that need escaping: quotes, backslashes, tabs, control bytes, invalid UTF-8.
"$make_model" "$tmp/odd.mlp" --layers 6,4,3 --class-prefix 'a "quoted"\name'$'\t' \
    --meta 'note=say "hi"\ '$'\x01\xff'' é' >/dev/null 2>"$tmp/err" \
    && ok "tool writes a model with awkward strings" || not_ok "awkward model" "$tmp/err"
expect 0 "info --json with awkward strings" -- info --json "$tmp/odd.mlp"
check "awkward strings are escaped into valid JSON" python3 -c '
import json, sys
d = json.loads(sys.stdin.buffer.read().decode("utf-8"))
assert d["classes"][2] == "a \"quoted\"\\name\t2", d["classes"]
assert d["meta"]["note"] == "say \"hi\"\\ \x01\ufffd \u00e9", repr(d["meta"]["note"])
' <"$tmp/out"
expect 0 "info with awkward strings" -- info "$tmp/odd.mlp"
if grep -q $'\x01' "$tmp/out"; then not_ok "control bytes are not printed raw" "$tmp/out"
else ok "control bytes are not printed raw"; fi

# ---------------------------------------------------------------- export
"$make_model" "$tmp/m.mlp" --layers 784,32,10 --act relu --seed 7 --print-outputs \
    >"$tmp/m.outputs" 2>"$tmp/err" || not_ok "tool --print-outputs" "$tmp/err"
expect 0 "export 784,32,10" -- export "$tmp/m.mlp" --npy "$tmp/npy"
files=$(cd "$tmp/npy" && ls -A | tr '\n' ' ')
[ "$files" = "W0.npy W1.npy b0.npy b1.npy model.json " ] && ok "export writes W0 b0 W1 b1 model.json and nothing else" \
    || not_ok "export file list: $files"
check "model.json parses" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/npy/model.json"
check "model.json says how to run it" grep -qF 'z = x @ W.T + b' "$tmp/npy/model.json"
check "npy files reproduce the outputs (784,32,10 relu ce)" \
    python3 "$tmp/forward.py" "$tmp/npy" "$tmp/m.outputs"

"$make_model" "$tmp/rgb.mlp" --layers 48,16,12,3 --act leaky_relu:0.2 --loss bce --channels 3 \
    --seed 3 --print-outputs >"$tmp/rgb.outputs" 2>"$tmp/err" || not_ok "tool rgb model" "$tmp/err"
expect 0 "export 3-channel leaky_relu bce" -- export "$tmp/rgb.mlp" --npy "$tmp/rgb"
check "npy files reproduce the outputs (3 channels, leaky_relu:0.2, bce)" \
    python3 "$tmp/forward.py" "$tmp/rgb" "$tmp/rgb.outputs"
"$make_model" "$tmp/lin.mlp" --layers 10,4 --loss mse --seed 5 --print-outputs \
    >"$tmp/lin.outputs" 2>"$tmp/err" || not_ok "tool linear model" "$tmp/err"
expect 0 "export one-layer mse" -- export "$tmp/lin.mlp" --npy "$tmp/lin"
check "npy files reproduce the outputs (one layer, mse)" \
    python3 "$tmp/forward.py" "$tmp/lin" "$tmp/lin.outputs"

# The first Python that has numpy (a pyenv python3 may lack Debian's python3-numpy).
numpy_python=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import numpy' 2>/dev/null; then numpy_python=$py; break; fi
done
if [ -n "$numpy_python" ]; then
    check "numpy.load reads the export with the right shapes and values" \
        "$numpy_python" "$tmp/forward.py" "$tmp/rgb" "$tmp/rgb.outputs" --numpy
else
    ok "numpy.load reads the export # skipped: numpy is not importable"
fi

expect 0 "export again over an existing export" -- export "$tmp/lin.mlp" --npy "$tmp/lin"
files=$(cd "$tmp/lin" && ls -A | tr '\n' ' ')
[ "$files" = "W0.npy b0.npy model.json " ] && ok "no temporary files left" \
    || not_ok "temporary files left: $files"
: >"$tmp/plain"
expect 1 "export into a file" -- export "$tmp/lin.mlp" --npy "$tmp/plain"
stderr_has "export names the non-directory" "$tmp/plain: not a directory"
expect 1 "export under a missing directory" -- export "$tmp/lin.mlp" --npy "$tmp/no/such/dir"
stderr_has "export names the directory it cannot create" "$tmp/no/such/dir"

# ---------------------------------------------------------------- missing and damaged models
expect 1 "info on a missing model" -- info "$tmp/missing.mlp"
stderr_has "missing model named" "$tmp/missing.mlp: cannot open: No such file or directory"
expect 1 "export of a missing model" -- export "$tmp/missing.mlp" --npy "$tmp/none"
stderr_has "export names the missing model" "$tmp/missing.mlp"
[ ! -e "$tmp/none" ] && ok "a failed export creates nothing" || not_ok "a failed export created $tmp/none"

cp "$tmp/m.mlp" "$tmp/flip.mlp"
printf '\x55' | dd of="$tmp/flip.mlp" bs=1 seek=5000 conv=notrunc status=none
expect 1 "info on a corrupted model" -- info "$tmp/flip.mlp"
stderr_has "corruption named with the file" "$tmp/flip.mlp: corrupted: CRC mismatch"
head -c 1000 "$tmp/m.mlp" >"$tmp/short.mlp"
expect 1 "info on a truncated model" -- info --json "$tmp/short.mlp"
stderr_has "truncation named with the file" "$tmp/short.mlp"
[ ! -s "$tmp/out" ] && ok "nothing on stdout for a damaged model" || not_ok "stdout for a damaged model" "$tmp/out"
echo "not a model" >"$tmp/text.mlp"
expect 1 "info on a text file" -- info "$tmp/text.mlp"
stderr_has "text file named" "$tmp/text.mlp: not an mlpviz model"
expect 1 "export of a corrupted model" -- export "$tmp/flip.mlp" --npy "$tmp/flipped"
stderr_has "export names the corrupted model" "CRC mismatch"
expect 1 "info on a directory" -- info "$tmp"
stderr_has "directory named" "not a regular file"
