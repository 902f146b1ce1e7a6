#!/bin/bash
# demo.sh: what `make demo` shows until training lands: the gradient checks of the backprop
# core on the Fashion-MNIST-sized network, for every hidden activation and loss head.
# Writes the full report to out/gradcheck.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
report=out/gradcheck.txt
tmp=$(mktemp "$report.XXXXXX")
trap 'rm -f "$tmp"' EXIT
status=0
for loss in ce bce mse; do
    for act in relu sigmoid tanh gelu softplus leaky_relu 5relu; do
        echo "== mlpviz gradcheck --layers 784,128,64,10 --act $act --loss $loss" >>"$tmp"
        if bin/mlpviz gradcheck --layers 784,128,64,10 --act "$act" --loss "$loss" >>"$tmp" 2>&1; then
            result=ok
        else
            result=FAILED
            status=1
        fi
        err=$(sed -n 's/^max relative error \([^ ]*\) .*float64 \([^ ]*\) .*/\1 (float32 vs float64 \2)/p' "$tmp" | tail -n 1)
        printf '%-4s %-11s max relative error %s  %s\n' "$loss" "$act" "$err" "$result"
    done
done
mv "$tmp" "$report"
trap - EXIT
echo "full report: $report"
exit $status
