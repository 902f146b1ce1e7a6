#!/bin/bash
# cli_mpi_train.sh: mlpviz train as a job of several processes (Open MPI, the make MPI=1
# build named by MLPVIZ_MPI): the model's bytes for 1 to 4 processes against the default
# build's, a checkpoint resumed on another number of processes, a rank that cannot read its
# data, a rank that sees other data, a rank killed mid-run (the checkpoint stays loadable and
# resumes), and the settings a job refuses. Without an MPI build it says so and checks nothing.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

mpi_bin=${MLPVIZ_MPI:-}
if [ -z "$mpi_bin" ] || [ ! -x "$mpi_bin" ] || ! command -v mpirun >/dev/null; then
    echo "# skip: no MPI build (MLPVIZ_MPI) or no mpirun: nothing checked"
    exit 0
fi
# One thread a process, processes not pinned (Open MPI binds each to one core otherwise),
# more processes than cores allowed.
export OMP_NUM_THREADS=1
job() { # job N ARGS...: mpirun -np N of the MPI build; output in $tmp/out, $tmp/err
    local n=$1
    shift
    timeout 300 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$n" \
        "$mpi_bin" "$@" >"$tmp/out" 2>"$tmp/err"
}
expect_job() { # expect_job STATUS NAME N ARGS...
    local want=$1 name=$2
    shift 2
    job "$@"
    local got=$?
    if { [ "$want" = 0 ] && [ "$got" -eq 0 ]; } || { [ "$want" != 0 ] && [ "$got" -ne 0 ]; }
    then ok "$name"; else
        echo "    exit $got, want $want: mpirun -np $*"
        not_ok "$name" "$tmp/err"
    fi
}

"$tools/tool_make_dataset" "$tmp/data" 150 16 5 >/dev/null && ok "synthetic folder written" \
    || not_ok "synthetic folder written"
# 540 training images in batches of 50: the last batch has 40 rows, so 3 processes get
# uneven shares; every per-image random draw is in play.
common=(--data "$tmp/data" --layers 48,24 --batch 50 --shift 2 --flip --dropout 0.2
        --label-smoothing 0.1 --opt adamw --weight-decay 0.01 --quiet)

expect 0 "one process of the default build" -- train "${common[@]}" --epochs 3 --out "$tmp/m.mlp"
mv "$tmp/m.mlp" "$tmp/single.mlp"
for n in 1 2 3 4; do
    expect_job 0 "train as $n processes" "$n" train "${common[@]}" --epochs 3 --out "$tmp/m.mlp"
    same_file "$n processes write the default build's model, byte for byte" "$tmp/m.mlp" \
        "$tmp/single.mlp"
    [ -s "$tmp/m.csv" ] && [ -s "$tmp/m.ckpt" ] && [ -s "$tmp/m.html" ] \
        && ok "$n processes: metrics, checkpoint and page written" \
        || not_ok "$n processes: metrics, checkpoint and page written"
    rm -f "$tmp/m.mlp" "$tmp/m.csv" "$tmp/m.ckpt" "$tmp/m.html"
done
[ -z "$(find "$tmp" -maxdepth 1 -name '.*' ! -name .)" ] && ok "no temporary files left" \
    || not_ok "no temporary files left"

# Adversarial training and noise draw per image too; 16 chunks for 3 processes.
robust=(--data "$tmp/data" --layers 32 --batch 64 --adversarial pgd --adv-steps 2
        --noise-aug 0.05 --grad-chunks 16 --epochs 1 --quiet)
expect 0 "adversarial training, one process" -- train "${robust[@]}" --out "$tmp/a1.mlp"
expect_job 0 "adversarial training as 3 processes" 3 train "${robust[@]}" --out "$tmp/a3.mlp"
same_file "adversarial training: 3 processes give one process's bytes" "$tmp/a3.mlp" "$tmp/a1.mlp"
expect 0 "other gradient chunks" -- train "${robust[@]}" --grad-chunks 4 --out "$tmp/a4.mlp"
cmp -s "$tmp/a4.mlp" "$tmp/a1.mlp" && not_ok "the chunk count changes the bits" \
    || ok "the chunk count changes the bits"

# A checkpoint resumes on another number of processes.
expect_job 0 "2 epochs as 2 processes" 2 train "${common[@]}" --epochs 2 --out "$tmp/r.mlp"
expect_job 0 "resumed to 3 epochs as 3 processes" 3 train "${common[@]}" --epochs 3 \
    --out "$tmp/r.mlp" --resume "$tmp/r.ckpt"
same_file "resumed on another count: the uninterrupted model" "$tmp/r.mlp" "$tmp/single.mlp"
expect 0 "the same checkpoint resumed by the default build" -- train "${common[@]}" --epochs 3 \
    --out "$tmp/r1.mlp" --resume "$tmp/r.ckpt"
same_file "resumed by one process: the uninterrupted model" "$tmp/r1.mlp" "$tmp/single.mlp"

# Faults. A rank that cannot read its data (MPMD: rank 1 gets another folder).
mpmd() { # mpmd ARGS0 -- ARGS1: rank 0 and rank 1 with their own arguments
    local a=() b=()
    while [ "$1" != "--" ]; do a+=("$1"); shift; done
    shift
    b=("$@")
    timeout 300 mpirun --allow-run-as-root --oversubscribe --bind-to none \
        -np 1 "$mpi_bin" "${a[@]}" : -np 1 "$mpi_bin" "${b[@]}" >"$tmp/out" 2>"$tmp/err"
}
mpmd train "${common[@]}" --epochs 1 --out "$tmp/f.mlp" -- \
    train "${common[@]/$tmp\/data/$tmp/missing}" --epochs 1 --out "$tmp/f.mlp"
[ $? -ne 0 ] && ok "a rank without its data fails the job" || not_ok "a rank without its data fails the job" "$tmp/err"
grep -q "rank 1: .*$tmp/missing" "$tmp/err" && ok "the message names the rank and the folder" \
    || not_ok "the message names the rank and the folder" "$tmp/err"
[ ! -e "$tmp/f.mlp" ] && ok "no model written after a rank's failure" \
    || not_ok "no model written after a rank's failure"

# A rank that sees other data (another seed of the same classes) is refused before any step.
"$tools/tool_make_dataset" "$tmp/other" 150 16 6 >/dev/null
mpmd train "${common[@]}" --epochs 1 --out "$tmp/g.mlp" -- \
    train "${common[@]/$tmp\/data/$tmp/other}" --epochs 1 --out "$tmp/g.mlp"
[ $? -ne 0 ] && ok "other data on one rank fails the job" \
    || not_ok "other data on one rank fails the job" "$tmp/err"
grep -q "rank 1 sees other data" "$tmp/err" && ok "the message names the rank that differs" \
    || not_ok "the message names the rank that differs" "$tmp/err"
[ ! -e "$tmp/g.mlp" ] && [ ! -e "$tmp/g.ckpt" ] && ok "nothing written when the data differ" \
    || not_ok "nothing written when the data differ"

# A rank killed mid-run: the job ends with mpirun naming the rank, the last checkpoint stays
# loadable, and resuming it (as 2 processes) gives the uninterrupted model.
long=("${common[@]}" --epochs 400)
job 2 train "${long[@]}" --out "$tmp/k.mlp" &
runner=$!
for _ in $(seq 600); do [ -s "$tmp/k.ckpt" ] && break; sleep 0.1; done
victim="" # rank 1: the process of our binary whose environment says so (no pgrep: procps
            # is not in a minimal Debian)
for d in /proc/[0-9]*; do
    tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF "$mpi_bin train" || continue
    tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=${d#/proc/}
done
[ -n "$victim" ] && kill -9 "$victim"
wait "$runner"
status=$?
[ -n "$victim" ] && [ "$status" -ne 0 ] && ok "a killed rank ends the job with a failure" \
    || not_ok "a killed rank ends the job with a failure (victim '${victim}', exit $status)" "$tmp/err"
grep -qiE "rank 1|\[\[[0-9]+,1\],1\]" "$tmp/err" && ok "mpirun names the killed rank" \
    || not_ok "mpirun names the killed rank" "$tmp/err"
[ ! -e "$tmp/k.mlp" ] && ok "no model after the kill" || not_ok "no model after the kill"
expect 0 "the last checkpoint loads" -- info "$tmp/k.ckpt"
epochs=$(sed -n 's/^ *train\.epoch = \([0-9]*\)$/\1/p' "$tmp/out" | head -n 1)
[ -n "$epochs" ] && ok "the checkpoint says how many epochs it holds ($epochs)" \
    || not_ok "the checkpoint says how many epochs it holds" "$tmp/out"
expect_job 0 "the killed run resumes as 2 processes" 2 train "${common[@]}" --epochs 400 \
    --out "$tmp/k.mlp" --resume "$tmp/k.ckpt" --epochs "$(( ${epochs:-1} + 1 ))"
expect 0 "the same epochs uninterrupted, one process" -- train "${common[@]}" --epochs 400 \
    --out "$tmp/k1.mlp" --epochs "$(( ${epochs:-1} + 1 ))"
same_file "the killed and resumed job writes the uninterrupted model" "$tmp/k.mlp" "$tmp/k1.mlp"

# Settings a job refuses, said once by rank 0.
expect_job 1 "more processes than gradient chunks" 3 train "${common[@]}" --grad-chunks 2 \
    --epochs 1 --out "$tmp/c.mlp"
grep -q "grad-chunks 4 or more" "$tmp/err" && ok "the refusal says which chunk count would do" \
    || not_ok "the refusal says which chunk count would do" "$tmp/err"
expect_job 2 "commands that do not split refuse a job" 2 info "$tmp/single.mlp"
[ "$(grep -c "runs in one process" "$tmp/err")" -eq 1 ] && ok "and say so once" \
    || not_ok "and say so once" "$tmp/err"
expect_job 2 "a bad option fails the job" 2 train "${common[@]}" --grad-chunks 3 --out "$tmp/c.mlp"
