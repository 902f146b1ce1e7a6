#!/bin/bash
# mpi-train.sh [RUNS] [EPOCHS]: training throughput of a job of two processes of one thread
# each against one process of two threads (issue 15: at least 85%), on 784-1024-1024-10 and
# Fashion-MNIST's 60,000 training images (data/fashion-mnist, made by make demo or make
# model), batch 128. Interleaves, RUNS times each (default 3), one process of the default
# build with 2 threads, one of the MPI build with 2 threads, and mpirun -np 2 of the MPI build
# with 1 thread each (not pinned: --bind-to none), EPOCHS epochs each (default 1), and
# prints the images per second of each run (from the epoch seconds of the metrics CSV that
# rank 0 writes: the load of the images is left out) and the medians. Checks on the way that
# the three give the same model bytes. Needs make and make MPI=1 built.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
epochs=${2:-1}
data=data/fashion-mnist/train
[ -d "$data" ] || { echo "mpi-train.sh: $data is missing (run make model first)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(train --data "$data" --layers 1024,1024 --act relu --epochs "$epochs" --batch 128
      --val-split 0 --class-stats 0 --class-mixture 0 --quiet)
rate() { # rate LABEL: images per second of the run whose metrics are $tmp/m.csv
    /usr/bin/python3 - "$1" "$tmp/m.csv" >>"$tmp/rates" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[2])))
seconds = sum(float(r["seconds"]) for r in rows)
print("%s %.1f" % (sys.argv[1], 60000 * len(rows) / seconds))
PY
}
for i in $(seq "$runs"); do
    OMP_NUM_THREADS=2 bin/mlpviz "${args[@]}" --out "$tmp/m.mlp"
    rate "default-build,1x2-threads"
    mv "$tmp/m.mlp" "$tmp/one.mlp"
    OMP_NUM_THREADS=2 build/mpi/bin/mlpviz "${args[@]}" --out "$tmp/m.mlp"
    rate "mpi-build,1x2-threads"
    cmp -s "$tmp/m.mlp" "$tmp/one.mlp" || { echo "the MPI build's model differs" >&2; exit 1; }
    OMP_NUM_THREADS=1 mpirun --allow-run-as-root --bind-to none -np 2 build/mpi/bin/mlpviz \
        "${args[@]}" --out "$tmp/m.mlp"
    rate "mpirun,2x1-thread"
    cmp -s "$tmp/m.mlp" "$tmp/one.mlp" || { echo "the job's model differs" >&2; exit 1; }
done
cat "$tmp/rates"
/usr/bin/python3 - "$tmp/rates" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    label, value = line.split()
    rates.setdefault(label, []).append(float(value))
med = {k: statistics.median(v) for k, v in rates.items()}
for k, v in med.items():
    print("%-26s median %8.1f images/s" % (k, v))
base = med["default-build,1x2-threads"]
print("mpirun -np 2 x 1 thread / one process x 2 threads: %.1f%%" % (100 * med["mpirun,2x1-thread"] / base))
PY
