#!/bin/bash
# page-overhead.sh [RUNS]: what the page and the GIFs add to `visualize --frames 10` (issue
# 14: under 10%). Runs the same command with --no-html and with --gif (the page is on by
# default) alternately, RUNS times each (default 5), and prints each run's wall and CPU
# (user + system) seconds and the medians. The host is shared: only the interleaved medians
# mean anything, and the CPU time more than the wall time. OpenMP threads sleep when they
# wait (OMP_WAIT_POLICY=passive), so that the CPU time counts work, not spinning.
set -euo pipefail
export OMP_WAIT_POLICY=passive
cd "$(dirname "$0")/../.."
runs=${1:-5}
model=models/fashion-mnist-robust.mlp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
measure() { # measure LABEL ARGS...: appends "LABEL wall user" to $tmp/times
    local label=$1
    shift
    /usr/bin/time -f "$label %e %U %S" -a -o "$tmp/times" \
        bin/mlpviz visualize "$model" --frames 10 --quiet "$@" >/dev/null
}
for i in $(seq "$runs"); do
    measure plain --out "$tmp/plain" --no-html
    measure page+gif --out "$tmp/page" --gif
done
cat "$tmp/times"
python3 - "$tmp/times" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, wall, user, system = line.split()
    runs.setdefault(label, []).append((float(wall), float(user) + float(system)))
med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in runs.items()}
for k, (w, u) in med.items():
    print("%-9s median wall %.2f s, CPU %.2f s" % (k, w, u))
print("overhead: wall %+.1f%%, CPU %+.1f%%" % tuple(
    100 * (med["page+gif"][i] / med["plain"][i] - 1) for i in (0, 1)))
PY
