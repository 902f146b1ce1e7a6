#!/bin/bash
# cli_onnx_hostile.sh: damaged and hostile ONNX files (issue 13), end to end through the CLI.
# The files are committed in tests/fixtures/onnx/hostile/ (made by
# scripts/onnx/make_hostile.py, whose MANIFEST gives each file's expected reason); two that
# would be too big to commit (2,000,000 empty nodes against the unpacking budget; attribute
# subgraphs nested 2000 deep against the nesting walk; a sidecar object of 200,000 members)
# are made here by the same script with --big (standard library only), and external data
# that is a FIFO with mkfifo.
#
# Every hostile file must be refused by `mlpviz info FILE`: exit 1, never a signal or a hang;
# exactly one line on stderr, "mlpviz info: ...", naming the file and holding the reason
# words of its MANIFEST line. Files without mean, std and classes metadata get
# --mean 0 --std 1 --classes (3 names), so that the error reported is the graph's. Some are
# also refused by visualize and export, which must leave their output directory as it was:
# empty. The cases run under `ulimit -v` 1 GiB, so that allocating what a forged shape asks
# for fails the check instead of quietly succeeding.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh
h=tests/fixtures/onnx/hostile
classes=$tmp/classes3
printf 'a\nb\nc\n' >"$classes"
hints=(--mean 0 --std 1 --classes "$classes")
o=$tmp/o
mkdir -p "$o"

# run ARGS...: mlpviz ARGS, stdout and stderr in $tmp/out and $tmp/err, the exit status in
# $got (124: still running after 60 s).
run() {
    timeout 60 "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
}

# judge CMD FILE REASON: sets $why to what is wrong with the last run as a refusal (empty
# when nothing is), and empties $o again when the run wrote into it.
judge() {
    local cmd=$1 file=$2 reason=$3 err
    mapfile -t err <"$tmp/err"
    why=
    if [ "$got" -eq 124 ]; then why="hung: still running after 60 s"
    elif [ "$got" -ge 128 ]; then why="killed by signal $((got - 128)) (exit $got)"
    elif [ "$got" -ne 1 ]; then why="exit $got, want 1"
    elif [ "${#err[@]}" -ne 1 ]; then why="${#err[@]} lines on stderr, want 1"
    elif [[ ${err[0]} != "mlpviz $cmd: "* ]]; then why="stderr does not start 'mlpviz $cmd: '"
    elif [[ ${err[0]} != *"$file"* ]]; then why="stderr does not name $file"
    elif [[ ${err[0]} != *"$reason"* ]]; then why="stderr lacks the reason '$reason'"
    fi
    if [ -n "$(ls -A "$o")" ]; then
        why="${why:+$why; }wrote into the output directory: $(ls -A "$o" | head -n 3 | tr '\n' ' ')"
        rm -rf "${o:?}"/* "$o"/.[!.]* 2>/dev/null
    fi
}

# refused NAME CMD FILE REASON [ARGS...]: mlpviz CMD FILE ARGS is refused as described above.
refused() {
    local name=$1 cmd=$2 file=$3 reason=$4
    shift 4
    run "$cmd" "$file" "$@"
    judge "$cmd" "$file" "$reason"
    if [ -z "$why" ]; then ok "$name"; else
        echo "    $why: mlpviz $cmd $file $*"
        not_ok "$name" "$tmp/err"
    fi
}

if [ ! -s "$h/MANIFEST" ]; then
    not_ok "hostile ONNX files present ($h/MANIFEST)"
    exit 1
fi
if python3 scripts/onnx/make_hostile.py --big "$tmp/big"; then
    ok "big hostile files generated"
else
    not_ok "big hostile files generated"
fi

# Everything from here runs under a 1 GiB address-space limit, unless the binary cannot start
# under one (a sanitizer build reserves terabytes of shadow memory).
if (ulimit -v 1048576 && "$bin" info "$h/valid-base.onnx") >/dev/null 2>&1; then
    ulimit -v 1048576
    ok "hostile cases run under ulimit -v 1 GiB"
else
    ok "hostile cases run under ulimit -v 1 GiB # skipped: $bin does not start under it"
fi

# ---------------------------------------------------------------- every file through info
while IFS='|' read -r file reason hint; do
    case $file in '#'* | '') continue ;; esac
    args=()
    [ "$hint" = hints ] && args=("${hints[@]}")
    if [ "$reason" = LOADS ]; then
        # the unbroken model the cases start from: it loads, so their refusals are theirs
        run info "$h/$file" "${args[@]+"${args[@]}"}"
        if [ "$got" -eq 0 ] && grep -q '^Input: 1 x 4 x 4' "$tmp/out"; then ok "info loads $file"
        else
            echo "    exit $got, want 0: mlpviz info $h/$file ${args[*]+"${args[*]}"}"
            not_ok "info loads $file" "$tmp/err"
        fi
        continue
    fi
    refused "info refuses $file" info "$h/$file" "$reason" "${args[@]+"${args[@]}"}"
done <"$h/MANIFEST"

refused "info refuses many-empty-nodes.onnx (memory budget)" info \
    "$tmp/big/many-empty-nodes.onnx" "unpacks to more than"
refused "info refuses nested-deep.onnx (2000 levels)" info "$tmp/big/nested-deep.onnx" \
    "nested more than 24 deep"
refused "info refuses sidecar-many-members.onnx (200,000 members)" info \
    "$tmp/big/sidecar-many-members.onnx" "more than 4096 members"

# external data that is a FIFO (not committable): refused, not waited on
mkdir -p "$tmp/fifo"
cp "$h/ext-missing.onnx" "$tmp/fifo/m.onnx"
if mkfifo "$tmp/fifo/ext-missing.data"; then
    refused "info refuses external data that is a FIFO" info "$tmp/fifo/m.onnx" \
        "is not a regular file"
else
    not_ok "mkfifo for the FIFO case"
fi

# ---------------------------------------------------------------- hints that are wrong
refused "info: --mean of 2 values for 1 channel" info "$h/valid-base-nometa.onnx" \
    "2 mean and 1 std values for 1 channels" --mean 0.1,0.2 --std 1 --classes "$classes"
refused "info: --mean that disagrees with the metadata" info "$h/valid-base.onnx" \
    "mean disagrees" --mean 0.3
printf 'a\nb\n' >"$tmp/classes2"
refused "info: --classes of 2 names for 3 outputs" info "$h/valid-base-nometa.onnx" \
    "2 class names given for a network of 3 outputs" --mean 0 --std 1 --classes "$tmp/classes2"
refused "info: no mean anywhere" info "$h/valid-base-nometa.onnx" "does not say its mean"

# ---------------------------------------------------------------- other commands write nothing
V=(--steps 2 --quiet --out "$o/viz")
for file in truncated-812.onnx dims-2pow30-no-data.onnx cycle-pair.onnx ext-dotdot.onnx \
    op-conv.onnx meta-classes-count.onnx sidecar-badjson.onnx; do
    reason=$(grep "^$file|" "$h/MANIFEST" | cut -d'|' -f2)
    refused "visualize refuses $file, writes nothing" visualize "$h/$file" "$reason" "${V[@]}"
    refused "export refuses $file, writes nothing" export "$h/$file" "$reason" --npy "$o/npy"
done
refused "visualize refuses op-conv-nometa.onnx with hints, writes nothing" visualize \
    "$h/op-conv-nometa.onnx" "(Conv): is not supported" "${hints[@]}" "${V[@]}"
refused "export refuses many-empty-nodes.onnx, writes nothing" export \
    "$tmp/big/many-empty-nodes.onnx" "unpacks to more than" --npy "$o/npy"
