#!/bin/bash
# cli_mpi_visualize.sh: `mlpviz visualize` as one job of 1, 2, 3 and 4 processes (mpirun)
# writes the very bytes the default binary writes alone: every file of a run with several
# classes and seeds (frames, GIFs, page, judge), of one with --diversity (shared by target:
# with 4 processes one has no row) and of a --search run (one process without a trial); and
# a process that fails (an unreadable judge or start image on its own working directory, an
# unwritable output on rank 0) ends the job with one line naming its rank, status 1, and no
# file. Needs the MPI build: MLPVIZ_MPI=build/mpi/bin/mlpviz after `make MPI=1 all`.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

mpi=${MLPVIZ_MPI:-}
if [ -z "$mpi" ] || [ ! -x "$mpi" ]; then
    echo "# skip: no MPI build (make MPI=1 all, then MLPVIZ_MPI=build/mpi/bin/mlpviz)"
    exit 0
fi
if ! command -v mpirun >/dev/null; then
    echo "# skip: no mpirun (Debian's openmpi-bin)"
    exit 0
fi
bin=$(realpath "$bin")
mpi=$(realpath "$mpi")
# One thread per process: the results do not depend on it, and 4 processes share 2 cores.
export OMP_NUM_THREADS=1
mpirun_() { mpirun --allow-run-as-root --oversubscribe --bind-to none "$@"; }
model=$PWD/models/fashion-mnist-robust.mlp
judge=$PWD/models/fashion-mnist.mlp

# same_tree NAME A B: the same files under A and B, each byte-identical.
same_tree() {
    local name=$1 a=$2 b=$3 f differ=""
    if ! diff <(cd "$a" && find . -type f | sort) <(cd "$b" && find . -type f | sort) \
        >"$tmp/tree"; then
        not_ok "$name: not the same files" "$tmp/tree"
        return
    fi
    while read -r f; do
        cmp -s "$a/$f" "$b/$f" || differ="$differ $f"
    done < <(cd "$a" && find . -type f | sort)
    if [ -z "$differ" ]; then ok "$name"; else not_ok "$name: differ:$differ"; fi
}

# compare CASE ARGS...: the default binary alone in $tmp/CASE/ref, then the MPI binary with
# 1..4 processes in $tmp/CASE/npN; the same --out string, so that the command line each PNG
# records is the same. stdout (rank 0's report) must be the same too.
compare() {
    local case=$1 n
    shift
    mkdir -p "$tmp/$case/ref"
    (cd "$tmp/$case/ref" && "$bin" visualize "$model" --out o --quiet "$@" \
        >stdout 2>stderr) || { not_ok "$case: one process" "$tmp/$case/ref/stderr"; return; }
    [ "$(find "$tmp/$case/ref/o" -type f | wc -l)" -ge 8 ] && ok "$case: one process wrote" \
        || not_ok "$case: one process wrote"
    for n in 1 2 3 4; do
        mkdir -p "$tmp/$case/np$n"
        if (cd "$tmp/$case/np$n" && mpirun_ -np "$n" "$mpi" visualize "$model" --out o --quiet \
            "$@" >stdout 2>stderr); then
            same_tree "$case: $n processes write the same bytes" "$tmp/$case/ref/o" \
                "$tmp/$case/np$n/o"
            same_file "$case: $n processes print the same report once" \
                "$tmp/$case/ref/stdout" "$tmp/$case/np$n/stdout"
        else
            not_ok "$case: $n processes" "$tmp/$case/np$n/stderr"
        fi
    done
}

# Default preset (smoothing noise, start noise, jitter), 4 classes x 3 seeds, frames, GIFs,
# the page and a judge: 12 rows in blocks of 12, 6, 4 and 3.
compare seeds --class 0,3,7,9 --seeds 3 --steps 12 --frames 4 --gif --judge "$judge"
# Diversity couples the seeds of a class: shared by class, 3 classes over up to 4 processes.
compare diverse --preset diverse --class 1,2,5 --seeds 3 --steps 10 --step-noise 0.05
# Three trials of random settings over up to 4 processes, then the winner's run, shared.
compare search --search 3 --class 0,1 --seeds 2 --steps 6 --judge "$judge"
grep -q "trial .* of 3 wins" "$tmp/search/np4/stderr" \
    && [ "$(grep -c 'wins' "$tmp/search/np4/stderr")" -eq 1 ] \
    && ok "search: the winner announced once" || not_ok "search: the winner announced once" \
    "$tmp/search/np4/stderr"

# fails NAME STDERR WANT...: the job's status was 1 (in $status), and its stderr holds one
# line of mlpviz, containing every WANT.
fails() {
    local name=$1 err=$2 w lines
    shift 2
    lines=$(grep -c '^mlpviz' "$err")
    if [ "$status" -ne 1 ] || [ "$lines" -ne 1 ]; then
        not_ok "$name (status $status, $lines lines of mlpviz)" "$err"
        return
    fi
    for w in "$@"; do
        grep '^mlpviz' "$err" | grep -qF -- "$w" || { not_ok "$name (lacks '$w')" "$err"; return; }
    done
    ok "$name"
}

# Each process reads the files itself, relative to its own working directory (mpirun's
# --wdir): rank 1 finds a truncated judge, as a node with a damaged copy would.
mkdir -p "$tmp/fail/a" "$tmp/fail/b"
cp "$judge" "$tmp/fail/a/judge.mlp"
head -c 5000 "$judge" >"$tmp/fail/b/judge.mlp"
mpirun_ -np 1 --wdir "$tmp/fail/a" "$mpi" visualize "$model" --judge judge.mlp \
    --out "$tmp/fail/out" --steps 4 : -np 1 --wdir "$tmp/fail/b" "$mpi" visualize "$model" \
    --judge judge.mlp --out "$tmp/fail/out" --steps 4 >"$tmp/fail/stdout" 2>"$tmp/fail/stderr"
status=$?
fails "a rank with a damaged judge ends the job, once" "$tmp/fail/stderr" "visualize: rank 1:" \
    "judge.mlp"
[ ! -e "$tmp/fail/out" ] && [ ! -s "$tmp/fail/stdout" ] && ok "and nothing is written" \
    || not_ok "and nothing is written"

# Later: every process has read the models; rank 2 cannot read its start image.
python3 -c 'import sys; open(sys.argv[1], "wb").write(b"not a PNG")' "$tmp/fail/b/start.png"
"$bin" visualize "$model" --class coat --steps 0 --out "$tmp/fail/a" --quiet >/dev/null
cp "$tmp/fail/a/coat.png" "$tmp/fail/a/start.png"
mpirun_ -np 2 --wdir "$tmp/fail/a" "$mpi" visualize "$model" --init start.png --steps 4 \
    --out "$tmp/fail/out" : -np 1 --wdir "$tmp/fail/b" "$mpi" visualize "$model" \
    --init start.png --steps 4 --out "$tmp/fail/out" >"$tmp/fail/stdout" 2>"$tmp/fail/stderr"
status=$?
fails "a rank without its start image ends the job, once" "$tmp/fail/stderr" \
    "visualize: rank 2:" "--init" "start.png"
[ ! -e "$tmp/fail/out" ] && ok "and nothing is written" || not_ok "and nothing is written"

# Rank 0 alone writes: when it cannot, the others must not end as if all went well.
: >"$tmp/fail/file"
mpirun_ -np 3 "$mpi" visualize "$model" --class 0,1 --steps 4 --out "$tmp/fail/file/out" \
    >"$tmp/fail/stdout" 2>"$tmp/fail/stderr"
status=$?
fails "rank 0 unable to write ends the job, once" "$tmp/fail/stderr" "visualize: rank 0:" \
    "$tmp/fail/file/out"
