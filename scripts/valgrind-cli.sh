#!/bin/bash
# valgrind-cli.sh: an end-to-end CLI session under valgrind memcheck (make valgrind): every
# command on a small synthetic dataset. Fails on any memory error or definite leak; the
# "possibly lost" blocks of libgomp's thread stacks are not ours and do not count.
set -u
cd "$(dirname "$0")/.."
bin=${MLPVIZ:-bin/mlpviz}
tools=${TOOLS:-build/opt/tests}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$tools/tool_make_dataset" "$tmp/data" 20 12 1 >/dev/null || exit 1
img=$(find "$tmp/data" -name '*.png' | sort | head -n 1)
failed=0
# vg NAME STATUS ARGS...: mlpviz ARGS under memcheck must exit with STATUS (99: memcheck
# found an error).
vg() {
    local name=$1 want=$2
    shift 2
    valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite \
        --log-file="$tmp/vg.log" "$bin" "$@" >"$tmp/out" 2>&1
    local got=$?
    if [ "$got" -eq "$want" ] && [ ! -s "$tmp/vg.log" ]; then
        echo "ok - valgrind: $name"
    else
        echo "not ok - valgrind: $name (exit $got, want $want)"
        sed 's/^/    /' "$tmp/vg.log" "$tmp/out" | head -n 40
        failed=1
    fi
}
vg train 0 train --data "$tmp/data" --layers 16 --epochs 2 --quiet --out "$tmp/m.mlp" --class-stats 4
vg info 0 info "$tmp/m.mlp"
vg eval 0 eval "$tmp/m.mlp" --data "$tmp/data" --confusion "$tmp/c.png"
vg predict 0 predict "$tmp/m.mlp" "$img"
vg grad 0 grad "$tmp/m.mlp" "$img" --class all --out "$tmp/g.npy"
vg saliency 0 saliency "$tmp/m.mlp" "$img" --out "$tmp/s.png"
vg visualize 0 visualize "$tmp/m.mlp" --steps 20 --out "$tmp/viz" --quiet
vg "visualize: frames, GIFs, page" 0 visualize "$tmp/m.mlp" --steps 20 --frames 5 --gif --seeds 2 \
    --out "$tmp/viz-gif" --quiet
mkdir -p "$tmp/viz-bad/grid.gif"
vg "visualize: a GIF that cannot be written" 1 visualize "$tmp/m.mlp" --steps 5 --gif \
    --out "$tmp/viz-bad" --quiet
vg export 0 export "$tmp/m.mlp" --npy "$tmp/npy"
vg "export --onnx" 0 export "$tmp/m.mlp" --onnx "$tmp/m.onnx"
vg gradcheck 0 gradcheck --layers 6,5,3
# ONNX in: the exported file read back, a PyTorch fixture with its sidecar, a hostile graph,
# gradcheck and train --init of an imported model.
vg "info of an ONNX model" 0 info "$tmp/m.onnx"
vg "info of a PyTorch ONNX model" 0 info tests/fixtures/onnx/gemm-leakyrelu-logsoftmax.onnx
vg "gradcheck --model ONNX" 0 gradcheck --model "$tmp/m.onnx" --batch 2 --samples 8
vg "train --init ONNX" 0 train --init "$tmp/m.onnx" --data "$tmp/data" --epochs 1 --quiet \
    --out "$tmp/ft.mlp" --class-stats 0 --class-mixture 0
vg "unsupported ONNX op" 1 info tests/fixtures/onnx/hostile/op-conv.onnx
vg "bad model" 1 info "$img"
exit $failed
