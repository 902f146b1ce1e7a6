#!/bin/bash
# onnx_load.sh: the ONNX load target of issue 13. Makes a 50 MB model (784-4096-2304-10,
# 12.7 M float32 parameters) with random weights, writes it as mlpviz's format and, with
# `mlpviz export --onnx`, as ONNX, and times mv_model_load on both (scripts/bench/load.c).
# Usage: scripts/bench/onnx_load.sh BENCH_LOAD MLPVIZ TOOLS [RUNS]
set -eu
load=$1 mlpviz=$2 tools=$3 runs=${4:-9}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$tools/tool_make_model" "$dir/big.mlp" --layers 784,4096,2304,10 --seed 7 >/dev/null
"$mlpviz" export "$dir/big.mlp" --onnx "$dir/big.onnx" >/dev/null
ls -l "$dir/big.mlp" "$dir/big.onnx" | awk '{print $5, $9}'
"$load" --runs "$runs" "$dir/big.mlp" "$dir/big.onnx"
