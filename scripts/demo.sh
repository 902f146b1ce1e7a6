#!/bin/bash
# demo.sh: what `make demo` shows. Fashion-MNIST becomes image folders, the default recipe
# trains on them with a progress bar, the model is evaluated on the test images (confusion
# matrix in out/confusion.png) and compared with the committed models/fashion-mnist.mlp;
# 8 samples per class from the class prior go to out/samples/, the accurate model's own
# drawings to out/accurate-model/, and every class of the committed robust model is drawn by
# gradient ascent from gray and judged by the model just trained (out/<class>.png and .gif,
# out/grid.png and .gif, out/report.*, out/frames/); then the gradient checks of the core run
# on the same network shape (out/gradcheck.txt). Last it prints the path of out/index.html,
# the page that shows the drawings and links the other pages (train's out/fashion-mnist.html,
# eval's out/confusion.html, the samples', the accurate model's).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out

echo "== training the default recipe (scripts/train-fashion-mnist.sh) into out/"
scripts/train-fashion-mnist.sh out/fashion-mnist.mlp

echo
echo "== evaluating on the 10000 test images"
bin/mlpviz eval out/fashion-mnist.mlp --data data/fashion-mnist/test \
    --confusion out/confusion.png

echo
if cmp -s out/fashion-mnist.mlp models/fashion-mnist.mlp; then
    echo "out/fashion-mnist.mlp is identical, byte for byte, to the committed model."
else
    echo "out/fashion-mnist.mlp differs from the committed models/fashion-mnist.mlp"
    echo "(another compiler or CPU can round differently; the accuracy above is what counts)."
fi

echo
echo "== 8 samples per class: the climb of --preset prior from the class's k-means components"
bin/mlpviz visualize models/fashion-mnist-robust.mlp --preset prior --seeds 8 \
    --judge out/fashion-mnist.mlp --out out/samples

echo
echo "== the default ascent on the accurate, non-robust model: it finds what fools it"
bin/mlpviz visualize out/fashion-mnist.mlp --judge models/fashion-mnist-robust.mlp \
    --out out/accurate-model

# Last, so that its page (out/index.html) links the pages written before it.
echo
echo "== what each class looks like to the robust model: gradient ascent on the pixels from a"
echo "   gray start, judged by the accurate model just trained (another recipe and seed);"
echo "   every 10th step saved, and the ascent as GIFs"
bin/mlpviz visualize models/fashion-mnist-robust.mlp --judge out/fashion-mnist.mlp --out out \
    --frames 10 --gif

echo
echo "== gradient checks of the core (float64 finite differences)"
report=out/gradcheck.txt
tmp=$(mktemp "out/.gradcheck.XXXXXX")
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
echo
echo "== open the report in a browser: $(pwd)/out/index.html"
exit $status
