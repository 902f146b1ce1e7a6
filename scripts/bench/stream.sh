#!/bin/bash
# stream.sh [RUNS]: train --stream against training in memory (issue 15: throughput within
# 10% when the data is in the page cache; memory bounded by the batches, not the data), on
# Fashion-MNIST's 60,000 training images as the IDX file (uncompressed) and as the PNG folder
# of make model, for the default 784-256-128-10 and for 784-1024-1024-10, batch 128, one
# epoch, RUNS times each (default 3), interleaved. Prints each run's epoch seconds (from the
# metrics CSV: loading is left out) and peak resident size (GNU time's %M), then medians, and
# checks that both modes write the same model bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
folder=data/fashion-mnist/train
[ -d "$folder" ] || { echo "stream.sh: $folder is missing (run make model first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=/usr/share/datasets/fashion-mnist
gunzip -c "$src/train-images-idx3-ubyte.gz" >"$tmp/images.idx"
gunzip -c "$src/train-labels-idx1-ubyte.gz" >"$tmp/labels.idx"
common=(--epochs 1 --batch 128 --val-split 0 --class-stats 0 --class-mixture 0 --quiet)
one() { # one LABEL ARGS...: a run, its epoch seconds and peak RSS appended to $tmp/runs
    local label=$1
    shift
    /usr/bin/time -f "%M" -o "$tmp/rss" bin/mlpviz train "${common[@]}" "$@" --out "$tmp/m.mlp"
    local sec
    sec=$(awk -F, 'NR == 2 { print $7 }' "$tmp/m.csv")
    echo "$label $sec $(cat "$tmp/rss")" >>"$tmp/runs"
}
for net in 256,128 1024,1024; do
    for i in $(seq "$runs"); do
        for data in idx folder; do
            if [ $data = idx ]; then d=(--data "$tmp/images.idx" --labels "$tmp/labels.idx")
            else d=(--data "$folder"); fi
            one "$net/$data/memory" "${d[@]}" --layers "$net"
            mv "$tmp/m.mlp" "$tmp/memory.mlp"
            one "$net/$data/stream" "${d[@]}" --layers "$net" --stream
            cmp -s "$tmp/m.mlp" "$tmp/memory.mlp" \
                || { echo "stream.sh: --stream wrote other bytes ($net, $data)" >&2; exit 1; }
        done
    done
done
cat "$tmp/runs"
/usr/bin/python3 - "$tmp/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, sec, rss = line.split()
    runs.setdefault(label, []).append((float(sec), int(rss)))
for label in sorted(runs):
    if not label.endswith("/memory"):
        continue
    base = label[: -len("memory")]
    m, s = runs[label], runs[base + "stream"]
    ms, ss = statistics.median(x[0] for x in m), statistics.median(x[0] for x in s)
    print("%-22s epoch %.2f s in memory, %.2f s streamed (%+.1f%%); peak RSS %d MB, %d MB"
          % (base, ms, ss, 100 * (ss / ms - 1), max(x[1] for x in m) // 1024, max(x[1] for x in s) // 1024))
PY
