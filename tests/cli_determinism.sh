#!/bin/bash
# cli_determinism.sh: the same command gives the same bytes on 1 thread, on 2 threads, and as
# two copies running at the same time (issue 6): train (model, metrics), eval, predict, grad
# (.npy), saliency, and visualize (PNGs, grid, frames, filmstrip, search, report.csv/json).
#
# visualize stamps its whole command line into every PNG (a tEXt chunk), and report.json names
# the model and judge as given. So each command runs with the same relative paths from four
# directories, t1 and t2 (OMP_NUM_THREADS=1 and 2, one after the other) and pa and pb (the
# default thread count, both at once), and everything it writes, stdout, stderr and the exit
# status included, must be byte-identical. visualize is also run with --threads 1 and
# --threads 2 into two absolute --out folders: there the PNGs must be identical chunk for
# chunk except the tEXt, which may differ only by those two options.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

# Absolute paths: the commands run from other directories.
mv_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
w=$tmp/w
mkdir -p "$w/shared"
"$tools/tool_make_dataset" "$w/shared/data" 60 12 1 && "$tools/tool_make_dataset" "$w/shared/test" 25 12 2 \
    && ok "synthetic folders written" || not_ok "synthetic folders written"
dirs=(t1 t2 pa pb)
for d in "${dirs[@]}"; do
    mkdir -p "$w/$d"
    for f in data test model.mlp judge.mlp; do ln -s "../shared/$f" "$w/$d/$f"; done
done

# one DIR THREADS NAME ARGS...: mlpviz ARGS from $w/DIR with OMP_NUM_THREADS=THREADS (unset
# when empty); stdout, stderr and the status in DIR/NAME/, the most threads seen in
# DIR/NAME.threads (polled from /proc, so short commands may show fewer than they used).
one() {
    local d=$1 threads=$2 name=$3
    shift 3
    (
        cd "$w/$d" || exit 1
        if [ -n "$threads" ]; then export OMP_NUM_THREADS=$threads; else unset OMP_NUM_THREADS; fi
        "$mv_bin" "$@" >"$name/stdout" 2>"$name/stderr" &
        pid=$!
        most=0
        while kill -0 "$pid" 2>/dev/null; do
            while read -r key value; do
                [ "$key" = Threads: ] && [ "$value" -gt "$most" ] && most=$value
            done 2>/dev/null <"/proc/$pid/status"
            sleep 0.005
        done
        wait "$pid"
        echo $? >"$name/status"
        echo "$most" >"$name.threads"
    )
}

# in_dirs NAME ARGS...: runs mlpviz ARGS in t1 (1 thread), t2 (2 threads), then in pa and pb
# at the same time (default thread count, 2 on 2 cores).
in_dirs() {
    local name=$1 d
    shift
    for d in "${dirs[@]}"; do rm -rf "$w/$d/$name" && mkdir -p "$w/$d/$name"; done
    one t1 1 "$name" "$@"
    one t2 2 "$name" "$@"
    one pa "" "$name" "$@" &
    one pb "" "$name" "$@" &
    wait
    echo "# $name: most threads seen t1 $(cat "$w/t1/$name.threads"), t2 $(cat "$w/t2/$name.threads")," \
         "pa $(cat "$w/pa/$name.threads"), pb $(cat "$w/pb/$name.threads")"
}

# ran NAME FILE...: t1's run exited 0 and wrote every FILE, non-empty (so that two runs that
# failed alike, or wrote nothing, do not pass as identical).
ran() {
    local name=$1 f missing=""
    shift
    for f in "$@"; do [ -s "$w/t1/$name/$f" ] || missing="$missing $f"; done
    if [ "$(cat "$w/t1/$name/status")" = 0 ] && [ -z "$missing" ]; then ok "$name runs"; else
        echo "    exit $(cat "$w/t1/$name/status"), missing:${missing:- none}"
        not_ok "$name runs" "$w/t1/$name/stderr"
    fi
}

# same_everywhere NAME: DIR/NAME/ is byte-identical in t2, pa and pb to t1's, file by file.
same_everywhere() {
    local name=$1 d
    for d in t2 pa pb; do
        local how="2 threads"
        [ "$d" = t2 ] || how="a copy run alongside another ($d)"
        if diff -r "$w/t1/$name" "$w/$d/$name" >"$tmp/diff" 2>&1; then
            ok "$name: $how gives 1 thread's bytes ($(find "$w/t1/$name" -type f | wc -l) files)"
        else
            not_ok "$name: $how gives 1 thread's bytes" "$tmp/diff"
        fi
    done
}

# ---------------------------------------------------------------- train
# Batches of 32 x 432 inputs x 96 units: the products are shared between threads (the kernels
# split work above 65536 multiply-adds); dropout, shifts, flips, a validation split, a test set
# and class statistics (fitted on every thread) all go into the model.
train=(train --data data --test test --layers 96,48 --epochs 15 --batch 32 --opt adamw --lr 3e-3
       --weight-decay 0.01 --lr-schedule cosine --warmup 1 --dropout 0.1 --shift 1 --flip
       --val-split 0.2 --class-stats 8 --seed 3 --quiet)
in_dirs train "${train[@]}" --out train/m.mlp
ran train m.mlp m.csv m.ckpt
[ "$(cat "$w/t1/train.threads")" -eq 1 ] && [ "$(cat "$w/t2/train.threads")" -ge 2 ] \
    && ok "train: the 1-thread run used 1 thread, the 2-thread run 2" \
    || not_ok "train: the 1-thread run used 1 thread, the 2-thread run 2 (saw $(cat "$w/t1/train.threads") and $(cat "$w/t2/train.threads"))"
# The metrics CSV's last column is the epoch's wall time, and the checkpoint's history holds it
# too: those two are compared without it, and without the checkpoint.
for d in "${dirs[@]}"; do
    cut -d, -f1-6 "$w/$d/train/m.csv" >"$w/$d/train/m.csv.figures"
    rm -f "$w/$d/train/m.csv" "$w/$d/train/m.ckpt"
done
same_everywhere train
# The same with --threads (left out of the recorded command) into other absolute paths.
(cd "$w/t1" && "$mv_bin" "${train[@]}" --threads 2 --out "$w/threads2.mlp") >"$tmp/err" 2>&1 \
    && same_file "train --threads 2 to another --out gives 1 thread's model" "$w/threads2.mlp" \
        "$w/t1/train/m.mlp" \
    || not_ok "train --threads 2 to another --out gives 1 thread's model" "$tmp/err"

# The model the other commands read (the 1-thread run's), and a judge of another shape.
cp "$w/t1/train/m.mlp" "$w/shared/model.mlp"
(cd "$w/t1" && "$mv_bin" train --data data --layers 64 --epochs 4 --batch 16 --seed 7 --quiet \
    --out "$w/shared/judge.mlp") >"$tmp/err" 2>&1 && ok "judge trained" || not_ok "judge trained" "$tmp/err"

# ---------------------------------------------------------------- eval, predict, grad, saliency
in_dirs eval eval model.mlp --data test --confusion eval/confusion.png
ran eval stdout confusion.png
same_everywhere eval

mapfile -t images < <(cd "$w/shared" && printf '%s\n' test/*/"img 00"[0-4].*)
in_dirs predict predict model.mlp "${images[@]}" --top 4
ran predict stdout
same_everywhere predict

img="test/rings/img 003.jpg"
in_dirs grad grad model.mlp "$img" --class all --objective logprob --out grad/all.npy
ran grad all.npy
same_everywhere grad
in_dirs grad1 grad model.mlp "$img" --class diagonal --out grad1/one.npy
ran grad1 one.npy
same_everywhere grad1

in_dirs saliency saliency model.mlp "$img" --class horizontal --out saliency/s.png
ran saliency s.png
same_everywhere saliency

# ---------------------------------------------------------------- visualize
# 4 classes x 4 seeds climbing as one batch of 16 from class-sample starts, judged, with frames
# and a filmstrip; hidden units from noise through two octaves with adam, image blur and
# Yosinski's clipping; and a search of 4 settings run side by side.
in_dirs viz visualize model.mlp --judge judge.mlp --seeds 4 --init class-sample --steps 60 \
    --frames 20 --gif --out viz --quiet
ran viz grid.png report.json report.csv filmstrip.png rings-3.png frames/vertical-2-00060.png \
    index.html grid.gif rings-3.gif
same_everywhere viz
in_dirs units visualize model.mlp --unit 0:1,5,9,40 --seeds 2 --init noise --octaves 2 \
    --optimizer adam --blur-every 3 --norm-pct 10 --contrib-pct 10 --steps 40 --out units --quiet
ran units grid.png report.json unit-0-40-1.png
same_everywhere units
in_dirs search visualize model.mlp --judge judge.mlp --search 4 --steps 40 --out search --quiet
ran search search.csv search.png preset.txt grid.png report.json
same_everywhere search

# --threads 1 and --threads 2 into two absolute folders: both options are in the tEXt chunk,
# so the PNGs are compared chunk by chunk, the tEXt after taking those options out of it, and
# index.html (which shows the command line) after taking them out of it; report.csv/json
# (which name the model, not --out), the GIFs and the rest byte for byte.
viz=(visualize model.mlp --judge judge.mlp --seeds 4 --init class-sample --steps 60 --frames 20 --gif
     --quiet)
(cd "$w/t1" && "$mv_bin" "${viz[@]}" --threads 1 --out "$w/abs-1" && "$mv_bin" "${viz[@]}" \
    --threads 2 --out "$w/abs-2") >"$tmp/err" 2>&1 && ok "visualize --threads 1 and 2" \
    || not_ok "visualize --threads 1 and 2" "$tmp/err"
cat >"$tmp/pngcmp.py" <<'EOF'
import os, struct, sys

def chunks(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(path + ": not a PNG")
    at, out = 8, []
    while at < len(data):
        n, = struct.unpack(">I", data[at:at + 4])
        out.append((data[at + 4:at + 8], data[at + 8:at + 8 + n]))
        at += 12 + n
    return out

a, b, drop_a, drop_b = sys.argv[1:5]
# stdout, stderr and status are what in_dirs keeps beside a run's outputs, not outputs.
files = lambda root: sorted(os.path.relpath(os.path.join(d, f), root)
                            for d, _, fs in os.walk(root) for f in fs
                            if d != root or f not in ("stdout", "stderr", "status"))
if files(a) != files(b):
    sys.exit("the two folders hold different files")
bad = pngs = 0
for f in files(a):
    pa, pb = os.path.join(a, f), os.path.join(b, f)
    if f.endswith(".html"):  # the page shows the command line, as the tEXt holds it
        same = (open(pa, "rb").read().replace(drop_a.encode(), b"") ==
                open(pb, "rb").read().replace(drop_b.encode(), b""))
    elif not f.endswith(".png"):
        same = open(pa, "rb").read() == open(pb, "rb").read()
    else:
        pngs += 1
        ca, cb = chunks(pa), chunks(pb)
        ta = [c for t, c in ca if t == b"tEXt"]
        tb = [c for t, c in cb if t == b"tEXt"]
        same = ([c for c in ca if c[0] != b"tEXt"] == [c for c in cb if c[0] != b"tEXt"]
                and len(ta) == len(tb) == 1
                and ta[0].replace(drop_a.encode(), b"") == tb[0].replace(drop_b.encode(), b""))
    if not same:
        bad += 1
        print("differs:", f)
print(f"{len(files(a))} files, {pngs} PNGs, {bad} differ")
sys.exit(bad > 0)
EOF
check "visualize --threads 1 and --threads 2: same pixels and reports, tEXt differs only by them" \
    python3 "$tmp/pngcmp.py" "$w/abs-1" "$w/abs-2" " --threads 1 --out $w/abs-1" \
    " --threads 2 --out $w/abs-2"
# And the relative runs above are the same images: t1's viz/ against abs-1, tEXt aside.
check "visualize into another folder draws the same images" \
    python3 "$tmp/pngcmp.py" "$w/abs-1" "$w/t1/viz" " --threads 1 --out $w/abs-1" " --out viz"
