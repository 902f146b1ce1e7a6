#!/bin/bash
# cli_stream.sh: train --stream, the images read from disk a batch at a time while the
# previous batch trains: the model in memory and the streamed one are the same bytes, on an
# image folder and on IDX files; the peak memory of a streamed run is bounded by the batch,
# not the data; a file removed mid-run stops the run with its name and writes no model; bad
# data is refused cleanly.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

# peak NAME STATUS -- ARGS...: like expect, and $peak_kib gets the run's peak resident size
# (the kernel's maximum RSS of the child, as /proc's VmHWM reports it), in KiB.
peak() {
    local name=$1 want=$2
    shift 3
    python3 - "$tmp/rss" "$bin" "$@" >"$tmp/out" 2>"$tmp/err" <<'EOF'
import resource, subprocess, sys
status = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as f:
    f.write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(status)
EOF
    local got=$?
    peak_kib=$(cat "$tmp/rss" 2>/dev/null || echo 0)
    if [ "$got" -eq "$want" ]; then ok "$name"; else
        echo "    exit $got, want $want: mlpviz $*"
        not_ok "$name" "$tmp/err"
    fi
}

# ---- the same model, in memory and streamed

"$tools/tool_make_dataset" "$tmp/small" 40 12 1 && "$tools/tool_make_dataset" "$tmp/test" 10 12 2 \
    && ok "synthetic folders written" || not_ok "synthetic folders written"
small=(--data "$tmp/small" --layers 16 --epochs 3 --batch 16 --val-split 0.2 --test "$tmp/test"
       --class-stats 4 --class-mixture 2 --quiet)
expect 0 "train in memory" -- train "${small[@]}" --out "$tmp/memory.mlp"
expect 0 "train --stream" -- train "${small[@]}" --stream --out "$tmp/stream.mlp"
same_file "a streamed folder trains the in-memory model, byte for byte" "$tmp/memory.mlp" \
    "$tmp/stream.mlp"
expect 0 "train --stream on 1 thread" -- train "${small[@]}" --stream --threads 1 \
    --out "$tmp/stream1.mlp"
same_file "and on 1 thread" "$tmp/memory.mlp" "$tmp/stream1.mlp"

# 60 images of 6 x 5 bytes and their labels (3 classes), plain and gzip-compressed
python3 - "$tmp" <<'EOF'
import struct, sys
n, rows, cols = 60, 6, 5
pixels = bytes((i * 37 + (i // 30) * 11) % 256 for i in range(n * rows * cols))
with open(sys.argv[1] + "/train-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, rows, cols) + pixels)
with open(sys.argv[1] + "/train-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + bytes(i % 3 for i in range(n)))
EOF
gzip -c "$tmp/train-images-idx3-ubyte" >"$tmp/gz-images-idx3-ubyte.gz"
idx=(--data "$tmp/train-images-idx3-ubyte" --layers 8 --epochs 2 --batch 8 --quiet)
expect 0 "train on IDX in memory" -- train "${idx[@]}" --out "$tmp/idx-memory.mlp"
expect 0 "train --stream on IDX" -- train "${idx[@]}" --stream --out "$tmp/idx-stream.mlp"
same_file "streamed IDX trains the in-memory model, byte for byte" "$tmp/idx-memory.mlp" \
    "$tmp/idx-stream.mlp"
expect 1 "--stream refuses gzip IDX" -- train --stream --data "$tmp/gz-images-idx3-ubyte.gz" \
    --labels "$tmp/train-labels-idx1-ubyte" --out "$tmp/gz.mlp" --quiet
stderr_has "the refusal names the file and says why" "gz-images-idx3-ubyte.gz: a gzip-compressed"
[ ! -e "$tmp/gz.mlp" ] && ok "no model from gzip IDX" || not_ok "no model from gzip IDX"

# ---- memory: bounded by the batch, not the data

# 2400 RGB images of 64 x 64: 29 MiB as bytes, 118 MiB as floats. The limit is 16 MiB above
# the process's own floor (its libraries and threads: train --help's peak), on 2 threads
# whatever the machine (4 classes: --class-mixture 0, since a mixture holds one class at a
# time as floats).
"$tools/tool_make_dataset" "$tmp/big" 600 64 3 && ok "large folder written" \
    || not_ok "large folder written"
big=(--data "$tmp/big" --layers 16 --epochs 1 --batch 32 --val-split 0.1 --class-mixture 0
     --threads 2 --quiet)
peak "train --help, for the floor" 0 -- train --help
limit_kib=$((peak_kib + 16 * 1024))
peak "train --stream on 118 MiB of floats" 0 -- train "${big[@]}" --stream --out "$tmp/big-s.mlp"
stream_kib=$peak_kib
peak "train in memory on the same folder" 0 -- train "${big[@]}" --out "$tmp/big-m.mlp"
memory_kib=$peak_kib
if [ -n "${MLPVIZ_SANITIZED:-}" ]; then
    ok "peak memory # skipped: the sanitizers' shadow memory hides it"
else
    [ "$stream_kib" -lt "$limit_kib" ] && ok "streamed peak $stream_kib KiB < $limit_kib KiB" \
        || not_ok "streamed peak $stream_kib KiB < $limit_kib KiB"
    [ "$memory_kib" -gt "$limit_kib" ] && ok "in-memory peak $memory_kib KiB > $limit_kib KiB" \
        || not_ok "in-memory peak $memory_kib KiB > $limit_kib KiB"
fi
same_file "the large folder's streamed model is the in-memory one" "$tmp/big-m.mlp" \
    "$tmp/big-s.mlp"

# ---- a file removed mid-run

"$tools/tool_make_dataset" "$tmp/vanish" 100 28 4 || not_ok "folder for the removal written"
"$bin" train --data "$tmp/vanish" --stream --layers 16 --epochs 400 --batch 16 --val-split 0 \
    --class-mixture 0 --quiet --out "$tmp/vanish.mlp" 2>"$tmp/err" &
pid=$!
for _ in $(seq 400); do [ -s "$tmp/vanish.ckpt" ] && break; sleep 0.05; done
rm "$tmp/vanish/rings/img 048.png" && kill -0 "$pid" 2>/dev/null \
    && ok "an image removed while train runs" || not_ok "an image removed while train runs"
wait "$pid"
status=$?
[ "$status" -eq 1 ] && ok "a file removed mid-run: exit 1" \
    || not_ok "a file removed mid-run: exit 1 (got $status)" "$tmp/err"
stderr_has "the error names the removed file" "vanish/rings/img 048.png"
[ ! -e "$tmp/vanish.mlp" ] && ok "no model written" || not_ok "no model written"
[ -s "$tmp/vanish.ckpt" ] && ok "the last epoch's checkpoint stays" \
    || not_ok "the last epoch's checkpoint stays"

# ---- bad data

expect 1 "--stream on a missing folder" -- train --stream --data "$tmp/none" --out "$tmp/n.mlp"
stderr_has "it is named" "$tmp/none"
mkdir -p "$tmp/bad/a" "$tmp/bad/b"
cp "$tmp/small/rings/img 000.png" "$tmp/bad/a/" && cp "$tmp/small/rings/img 004.png" "$tmp/bad/b/"
head -c 60 "$tmp/small/rings/img 008.png" >"$tmp/bad/b/cut.png"
expect 1 "--stream on a folder with a truncated image" -- train --stream --data "$tmp/bad" \
    --out "$tmp/bad.mlp" --quiet
stderr_has "the truncated image is named" "bad/b/cut.png"
[ ! -e "$tmp/bad.mlp" ] && [ ! -e "$tmp/bad.ckpt" ] && ok "nothing written for bad data" \
    || not_ok "nothing written for bad data"
expect 0 "--stream --skip-bad trains on the rest" -- train --stream --skip-bad --data "$tmp/bad" \
    --val-split 0 --class-stats 0 --class-mixture 0 --epochs 1 --out "$tmp/skip.mlp" --quiet
stderr_has "the skip is counted" "skipped 1 unreadable file(s)"
