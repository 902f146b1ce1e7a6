#!/bin/bash
# cli_crash_safety.sh: mlpviz train killed with SIGKILL at random points, over and over, each
# run resuming from the checkpoint the killed one left (issue 6). After every kill the model,
# the checkpoint and the metrics CSV on disk must each be absent or complete (the model: the
# very bytes of an uninterrupted run; the checkpoint: valid CRC, never older than before), no
# partial file may be left (a write's data has no name until it is complete), and --resume
# must always go on and end on the uninterrupted run's bytes.
#   CRASH_KILLS=N (default 20, or 4 under MLPVIZ_QUICK, which make mutation sets for each of
#   its mutants) kills to survive; CRASH_SEED=S seeds the kill delays.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

default_kills=20
[ -n "${MLPVIZ_QUICK:-}" ] && default_kills=4
kills=${CRASH_KILLS:-$default_kills}
seed=${CRASH_SEED:-6}
epochs=40

# 600 colour images of 16x16 and a 768-128-64-4 network: ~30 ms an epoch on 2 idle cores, a
# 2 MB checkpoint written (with fsync) after each of the 40 epochs, ~1.3 s a run. AdamW, cosine
# schedule with warm-up, dropout, shifts and flips, a validation split and a test set: every
# piece of state a checkpoint must carry for the resumed run to end on the same bytes.
"$tools/tool_make_dataset" "$tmp/data" 150 16 3 && "$tools/tool_make_dataset" "$tmp/test" 20 16 4 \
    && ok "synthetic folders written" || not_ok "synthetic folders written"
args=(--data "$tmp/data" --test "$tmp/test" --layers 128,64 --epochs $epochs --batch 8 --opt adamw
      --weight-decay 0.01 --lr 2e-3 --lr-schedule cosine --warmup 1 --dropout 0.1 --shift 1
      --flip --val-split 0.2 --seed 5 --quiet)
ref=$tmp/ref
run=$tmp/run
mkdir -p "$ref" "$run"

expect 0 "uninterrupted reference run" -- train "${args[@]}" --out "$ref/m.mlp"
[ "$(ls -A "$ref" | tr '\n' ' ')" = "m.ckpt m.csv m.html m.mlp " ] \
    && ok "an uninterrupted run leaves its four files (model, checkpoint, metrics, page) and nothing else" \
    || not_ok "an uninterrupted run leaves its four files and nothing else: $(ls -A "$ref")"

# The figures of a metrics CSV that do not depend on time: every column but `seconds`.
figures() { cut -d, -f1-6 "$1"; }
# The epoch a checkpoint holds, as `info` prints it; empty when info refuses the file.
ckpt_epoch() { "$bin" info "$1" 2>/dev/null | sed -n 's/^  train\.epoch = \([0-9]*\)$/\1/p'; }
# Everything in the run directory but the four outputs: temporary files of writes that a kill
# interrupted (hidden, checked below), or debris that should not be there at all.
others=(-mindepth 1 -maxdepth 1 ! -name m.mlp ! -name m.ckpt ! -name m.csv ! -name m.html)
temps() { find "$run" "${others[@]}" -printf '%f\n' | sort; }

# Problems found after the kills, one file per property, reported once at the end.
for p in model ckpt csv temps resume final; do : >"$tmp/bad.$p"; done
bad() { echo "$2" >>"$tmp/bad.$1"; }

# Checks the files on disk after a kill. prev_epoch is the checkpoint's epoch after the
# previous kill of this chain (0 at the start of a chain).
check_state() {
    local what=$1 e=
    if [ -e "$run/m.mlp" ] && ! cmp -s "$run/m.mlp" "$ref/m.mlp"; then
        if "$bin" info "$run/m.mlp" >/dev/null 2>&1; then
            bad model "$what: m.mlp is a valid model but not the uninterrupted run's bytes"
        else
            bad model "$what: m.mlp is damaged: $("$bin" info "$run/m.mlp" 2>&1 | head -n 1)"
        fi
        cp "$run/m.mlp" "$tmp/evidence-$what.mlp"
    fi
    if [ -e "$run/m.ckpt" ]; then
        e=$(ckpt_epoch "$run/m.ckpt")
        if [ -z "$e" ]; then
            bad ckpt "$what: m.ckpt is damaged: $("$bin" info "$run/m.ckpt" 2>&1 | head -n 1)"
            cp "$run/m.ckpt" "$tmp/evidence-$what.ckpt"
        elif [ "$e" -lt "$prev_epoch" ]; then
            bad ckpt "$what: m.ckpt went back from epoch $prev_epoch to $e"
        else
            prev_epoch=$e
        fi
    elif [ "$prev_epoch" -gt 0 ]; then
        bad ckpt "$what: m.ckpt of epoch $prev_epoch disappeared"
    fi
    # The CSV is written after the checkpoint: the same epochs, or one fewer.
    if [ -e "$run/m.csv" ]; then
        local rows=$(($(wc -l <"$run/m.csv") - 1))
        if [ -n "$(tail -c 1 "$run/m.csv")" ] || ! awk -F, 'NF != 7 { exit 1 }' "$run/m.csv"; then
            bad csv "$what: m.csv has a cut line"
        elif [ -z "$e" ]; then
            bad csv "$what: m.csv of $rows epochs without a valid checkpoint"
        elif [ "$rows" -ne "$e" ] && [ "$rows" -ne $((e - 1)) ]; then
            bad csv "$what: m.csv has $rows epochs, the checkpoint $e"
        elif ! cmp -s <(figures "$run/m.csv") <(figures "$ref/m.csv" | head -n $((rows + 1))); then
            bad csv "$what: m.csv's figures differ from the uninterrupted run's"
        fi
    fi
    last_epoch=${e:-0}
}

# Temporary files. A write's data lives in an unnamed file (O_TMPFILE) until it is complete;
# it is named .m.X.mlpviz-tmp only between link and rename, so a kill leaves at most that one
# complete file, and the next write of the same output removes it: a finished run leaves none.
# Where the filesystem has no O_TMPFILE, the writer names its file .m.X.XXXXXX from the start,
# and a kill may leave that one, half-written, for good. at_most: how many may be there now.
temp_names='^\.m\.(mlp|ckpt|csv)\.mlpviz-tmp$' stay=0
if ! python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_TMPFILE | os.O_WRONLY))' \
    "$run" 2>/dev/null; then
    echo "# no O_TMPFILE in $run: named temporary files are allowed, one per kill"
    temp_names='^\.m\.(mlp|ckpt|csv)\.([A-Za-z0-9]{6}|mlpviz-tmp)$' stay=1
fi
check_temps() {
    local what=$1 at_most=$2 now
    now=$(temps | wc -l)
    temps | grep -vE "$temp_names" | sed "s/^/$what: unexpected file /" >>"$tmp/bad.temps"
    [ "$now" -le "$at_most" ] \
        || bad temps "$what: $now temporary files (at most $at_most): $(temps | tr '\n' ' ')"
    [ "$now" -gt "$temps_before" ] && temps_seen=$((temps_seen + now - temps_before))
    temps_before=$now
}

RANDOM=$seed
temps_seen=0 survived=0 runs=0 chains=0 killed_chains=0 chain_kills=0 resumed=0 prev_epoch=0 temps_before=0 last_epoch=0
before_ckpt=0 mid_run=0 after_last=0 delays=""
max_runs=$((3 * kills + 10))
while [ "$survived" -lt "$kills" ] && [ "$runs" -lt "$max_runs" ]; do
    runs=$((runs + 1))
    resume=()
    [ -e "$run/m.ckpt" ] && resume=(--resume "$run/m.ckpt") && resumed=$((resumed + 1))
    # The thread count alternates: it is not part of the command, and must not matter.
    threads=$((1 + runs % 2))
    ms=$((50 + RANDOM % 1451))
    delay=$((ms / 1000)).$(printf %03d $((ms % 1000)))
    "$bin" train "${args[@]}" --threads "$threads" --out "$run/m.mlp" "${resume[@]}" \
        >"$tmp/run.out" 2>"$tmp/run.err" &
    pid=$!
    sleep "$delay" &
    sleeper=$!
    wait -n -p first "$pid" "$sleeper"
    status=$?
    if [ "$first" = "$pid" ]; then # it finished before its kill
        kill "$sleeper" 2>/dev/null
        wait "$sleeper" 2>/dev/null
    else
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null # (no "Killed" line from bash)
        status=$?
    fi
    if [ "$status" -eq 137 ]; then
        survived=$((survived + 1))
        chain_kills=$((chain_kills + 1))
        delays="$delays $delay"
        check_state "kill $survived (run $runs, ${delay}s, ${#resume[@]} resume args)"
        check_temps "kill $survived" $((temps_before + 1))
        if [ ! -e "$run/m.ckpt" ]; then before_ckpt=$((before_ckpt + 1))
        elif [ "$last_epoch" -eq "$epochs" ]; then after_last=$((after_last + 1))
        else mid_run=$((mid_run + 1)); fi
    elif [ "$status" -eq 0 ]; then
        chains=$((chains + 1))
        [ "$chain_kills" -gt 0 ] && killed_chains=$((killed_chains + 1))
        chain_kills=0
        cmp -s "$run/m.mlp" "$ref/m.mlp" \
            || bad final "chain $chains (ended by run $runs): model differs from the uninterrupted run"
        cmp -s <(figures "$run/m.csv") <(figures "$ref/m.csv") \
            || bad final "chain $chains: metrics CSV figures differ from the uninterrupted run's"
        check_temps "completed run $runs" $((stay * temps_before))
        # A new chain: from scratch, over the finished model every other time.
        rm -f "$run/m.ckpt" "$run/m.csv"
        [ $((chains % 2)) -eq 1 ] && rm -f "$run/m.mlp"
        prev_epoch=0
    else
        bad resume "run $runs (threads $threads, ${resume[*]:-no resume}) exited $status:"
        sed 's/^/    /' "$tmp/run.err" | head -n 5 >>"$tmp/bad.resume"
        rm -f "$run/m.ckpt" "$run/m.csv"
        prev_epoch=0 chain_kills=0
    fi
done
echo "# kill delays (s):$delays"
echo "# $survived kills in $runs runs ($resumed resumed): $before_ckpt before the first" \
     "checkpoint, $mid_run mid-run, $after_last after the last epoch's; $chains chains" \
     "finished, $killed_chains of them after kills"

# The last chain, resumed once more without a kill, must end on the uninterrupted bytes too.
if [ -e "$run/m.ckpt" ]; then
    expect 0 "resume after the last kill runs to the end" -- train "${args[@]}" \
        --out "$run/m.mlp" --resume "$run/m.ckpt"
    chains=$((chains + 1)) killed_chains=$((killed_chains + 1))
    same_file "the last resumed chain ends byte-identical to the uninterrupted run" \
        "$run/m.mlp" "$ref/m.mlp"
    check_temps "final resume" $((stay * temps_before))
fi

[ "$survived" -ge "$kills" ] && ok "$survived kills survived" \
    || not_ok "$survived kills survived, $kills wanted ($runs runs)"
[ "$killed_chains" -gt 0 ] || bad final "no chain that was killed ran to its end"
report() { # report FILE NAME
    if [ -s "$tmp/bad.$1" ]; then not_ok "$2" "$tmp/bad.$1"; else ok "$2"; fi
}
report model "after every kill the model is absent or the uninterrupted run's bytes"
report ckpt "after every kill the checkpoint is absent or complete (CRC), never older"
report csv "after every kill the metrics CSV is whole, at most one epoch behind"
report resume "every run resumed after a kill went on (none failed)"
report final "all $chains chains ($killed_chains killed and resumed) end on the uninterrupted bytes"
report temps "debris: no partial file, at most a named complete one per kill, none after a finished run"
echo "# $temps_seen kills of $survived left a named temporary file; $(temps | wc -l) left at the end:" \
    $(temps | head -n 5)

# A temporary file that a killed writer of an older mlpviz (or one on a filesystem without
# O_TMPFILE) left, cut short, inside a class folder: the loader skips hidden files.
stray=$tmp/.m.ckpt.Ab12Cd && head -c 5000 "$ref/m.ckpt" >"$stray"
cp "$stray" "$tmp/test/rings/"
expect 0 "eval with a killed writer's temporary file in a class folder" -- eval "$ref/m.mlp" \
    --data "$tmp/test" --confusion none
stdout_has "the temporary file is not read as an image" "(80 images)"

# Killed after the last epoch's checkpoint, before its metrics row and the model: no epoch is
# left to train, yet the resume must write both (the random kills above hit this only by luck).
mkdir -p "$tmp/last" && cp "$ref/m.ckpt" "$tmp/last/m.ckpt"
head -n -1 "$ref/m.csv" >"$tmp/last/m.csv"
expect 0 "resume from the last epoch's checkpoint" -- train "${args[@]}" --out "$tmp/last/m.mlp" \
    --resume "$tmp/last/m.ckpt"
same_file "it writes the uninterrupted run's model" "$tmp/last/m.mlp" "$ref/m.mlp"
cmp -s <(figures "$tmp/last/m.csv") <(figures "$ref/m.csv") \
    && ok "it completes the metrics CSV the kill left an epoch behind" \
    || not_ok "it completes the metrics CSV the kill left an epoch behind: $(wc -l <"$tmp/last/m.csv") lines"
