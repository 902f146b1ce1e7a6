#!/bin/bash
# cli_convert.sh: `mlpviz convert` as a user runs it: small IDX files (made here with printf
# and gzip) become an image folder; exit statuses, messages, --force, and no folder (complete
# or partial) left behind by a failure.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

# bytes N...: writes each number as one byte.
bytes() {
    local b
    for b in "$@"; do printf "\\$(printf '%03o' "$b")"; done
}

# 3 images of 2x2 pixels and their labels 1, 0, 1.
images_header="0 0 8 3  0 0 0 3  0 0 0 2  0 0 0 2"
pixels="0 64 128 255  10 20 30 40  255 254 1 0"
bytes $images_header $pixels >"$tmp/images.idx"
bytes 0 0 8 1  0 0 0 3  1 0 1 >"$tmp/labels.idx"
gzip -c "$tmp/images.idx" >"$tmp/images.idx.gz"
gzip -c "$tmp/labels.idx" >"$tmp/labels.idx.gz"
in=(--images "$tmp/images.idx" --labels "$tmp/labels.idx")

png_count() { find "$1" -type f -name '*.png' | wc -l; }
is_png() { [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]; }
# No hidden temporary or old directory may stay next to the output folders.
no_leftovers() { [ -z "$(find "$tmp" -maxdepth 1 -name '.*')" ]; }

expect 0 "convert --help" -- convert --help
stdout_has "help shows --images" "--images"
stdout_has "help shows --force" "--force"
expect 0 "help convert" -- help convert

# ---- conversions
expect 0 "convert plain IDX" -- convert "${in[@]}" --out "$tmp/plain" --names cat,dog
stdout_has "summary line" "3 images of 2x2 in 2 classes"
check "label 1 image 0 in dog/" test -f "$tmp/plain/dog/00000.png"
check "label 0 image 1 in cat/" test -f "$tmp/plain/cat/00001.png"
check "label 1 image 2 in dog/" test -f "$tmp/plain/dog/00002.png"
check "exactly 3 files" test "$(png_count "$tmp/plain")" -eq 3
check "files are PNGs" is_png "$tmp/plain/cat/00001.png"
check "DIR has mkdir's permissions, not mkdtemp's 0700" \
    test "$(stat -c %a "$tmp/plain")" = "$(printf '%o' $((0777 & ~$(umask))))"

expect 0 "convert gzip IDX" -- convert --images "$tmp/images.idx.gz" \
    --labels "$tmp/labels.idx.gz" --out "$tmp/gz/" -n cat,dog
check "gzip gives the same PNGs" diff -r "$tmp/plain" "$tmp/gz"

expect 0 "convert without --names" -- convert "${in[@]}" -o "$tmp/numbered"
check "classes named by number" test -f "$tmp/numbered/0/00001.png" -a -f "$tmp/numbered/1/00002.png"
check "no class beyond the largest label" test "$(ls "$tmp/numbered" | wc -l)" -eq 2

# ---- an existing folder
touch "$tmp/plain/dog/marker"
expect 1 "existing DIR refused without --force" -- convert "${in[@]}" --out "$tmp/plain" -n x,y
stderr_has "refusal explains --force" "--force"
check "existing DIR untouched" test -f "$tmp/plain/dog/marker"
expect 0 "--force replaces DIR" -- convert "${in[@]}" --out "$tmp/plain" -n x,y --force
check "old contents gone" test ! -e "$tmp/plain/dog"
check "new contents there" test -f "$tmp/plain/y/00000.png" -a "$(png_count "$tmp/plain")" -eq 3
check "no temporary or old folder left" no_leftovers
mkdir -p "$tmp/deep/a/b/c"
expect 1 "--force refuses a tree that is not an image folder" -- \
    convert "${in[@]}" --out "$tmp/deep" --force
stderr_has "refusal names the folder" "$tmp/deep"
check "that tree untouched" test -d "$tmp/deep/a/b/c"
echo data >"$tmp/file"
expect 1 "--force refuses a plain file" -- convert "${in[@]}" --out "$tmp/file" --force
check "the file untouched" grep -q data "$tmp/file"

# ---- bad command lines
expect 2 "unknown option" -- convert "${in[@]}" --out "$tmp/x" --frob
stderr_has "unknown option named" "--frob"
expect 2 "missing --out" -- convert "${in[@]}"
stderr_has "missing --out named" "--out is required"
expect 2 "missing --labels" -- convert --images "$tmp/images.idx" --out "$tmp/x"
stderr_has "missing --labels named" "--labels"
expect 2 "missing option value" -- convert "${in[@]}" --out
expect 2 "stray argument" -- convert "${in[@]}" --out "$tmp/x" extra
stderr_has "stray argument named" "extra"
expect 2 "empty class name" -- convert "${in[@]}" --out "$tmp/x" --names a,,b
stderr_has "empty name explained" "--names"
expect 2 "duplicate class name" -- convert "${in[@]}" --out "$tmp/x" --names a,a
stderr_has "duplicate named" "'a' appears twice"
expect 2 "class name with a slash" -- convert "${in[@]}" --out "$tmp/x" --names a,b/c
expect 2 "hidden class name" -- convert "${in[@]}" --out "$tmp/x" --names a,.b

# ---- failures leave nothing behind
expect 1 "missing images file" -- convert --images "$tmp/nope.idx" --labels "$tmp/labels.idx" \
    --out "$tmp/x"
stderr_has "missing file named" "$tmp/nope.idx"
check "no DIR after a missing file" test ! -e "$tmp/x"
expect 1 "label without a name" -- convert "${in[@]}" --out "$tmp/x" --names only
stderr_has "label error names the label file" "$tmp/labels.idx"
check "no DIR after a bad label" test ! -e "$tmp/x"
head -c 25 "$tmp/images.idx" >"$tmp/short.idx"
expect 1 "truncated images file" -- convert --images "$tmp/short.idx" \
    --labels "$tmp/labels.idx" --out "$tmp/x"
stderr_has "truncation named" "truncated"
check "no DIR after a truncated file" test ! -e "$tmp/x"
head -c 30 "$tmp/images.idx.gz" >"$tmp/short.gz"
expect 1 "truncated gzip file" -- convert --images "$tmp/short.gz" --labels "$tmp/labels.idx" \
    --out "$tmp/x"
stderr_has "truncated gzip named" "$tmp/short.gz"
expect 1 "a named class without images" -- convert "${in[@]}" --out "$tmp/x" --names a,b,c
stderr_has "empty class named" "'c'"
check "no DIR after an empty class" test ! -e "$tmp/x"
expect 1 "parent of DIR missing" -- convert "${in[@]}" --out "$tmp/no/such/x"
stderr_has "missing parent named" "$tmp/no/such/x"
check "no temporary folder left after the failures" no_leftovers

# ---- what interrupted runs left: removed by the next run to the same DIR, and only that
# A half-written folder of a run that was killed (nobody holds its lock).
mkdir -p "$tmp/.left.tmp-AbC123/cat" && echo half >"$tmp/.left.tmp-AbC123/cat/00001.png"
# One that a live run is writing: its lock is held, here by a sleep that inherits the locked
# descriptor (exec: killing $holder ends the only holder, and leaves no orphan).
mkdir -p "$tmp/.left.tmp-Busy01/cat"
(exec 9<"$tmp/.left.tmp-Busy01" >/dev/null 2>&1 && flock 9 && exec sleep 60) &
holder=$!
for _ in $(seq 200); do flock -n "$tmp/.left.tmp-Busy01" true || break; sleep 0.05; done
check "the live run's folder is locked" bash -c "! flock -n '$tmp/.left.tmp-Busy01' true"
# One that is no image folder, and names that only look alike: never touched.
mkdir -p "$tmp/.left.tmp-Deep01/a/b" "$tmp/.left.tmp-abc" "$tmp/.leftover.tmp-AbC123"
expect 0 "convert next to an interrupted run's folder" -- convert "${in[@]}" --out "$tmp/left"
stderr_has "the removal is named" "removed $tmp/.left.tmp-AbC123, left by an interrupted run"
check "the killed run's folder is gone" test ! -e "$tmp/.left.tmp-AbC123"
check "a live run's locked folder stays" test -d "$tmp/.left.tmp-Busy01/cat"
check "a tree that is no image folder stays" test -d "$tmp/.left.tmp-Deep01/a/b"
check "names that only look alike stay" test -d "$tmp/.left.tmp-abc" -a -d "$tmp/.leftover.tmp-AbC123"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
rm -rf "$tmp"/.left*
# A replaced folder whose deletion was cut short goes once the new DIR is in place.
mkdir -p "$tmp/.plain.old-Qw12er/x" && echo old >"$tmp/.plain.old-Qw12er/x/00000.png"
expect 0 "--force next to a replaced folder left half-deleted" -- \
    convert "${in[@]}" --out "$tmp/plain" -n x,y --force
check "the half-deleted folder is gone" test ! -e "$tmp/.plain.old-Qw12er"
check "no temporary or old folder left" no_leftovers

# --force onto a DIR that another process holds locked (a convert replacing it): refused,
# named, and DIR untouched.
(exec 9<"$tmp/plain" >/dev/null 2>&1 && flock 9 && exec sleep 60) &
holder=$!
for _ in $(seq 200); do flock -n "$tmp/plain" true || break; sleep 0.05; done
expect 1 "--force onto a locked DIR refused" -- convert "${in[@]}" --out "$tmp/plain" -n p,q --force
stderr_has "the lock is named" "$tmp/plain is locked by another process"
check "the locked DIR untouched" test -f "$tmp/plain/y/00000.png" -a ! -e "$tmp/plain/q"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
check "no temporary or old folder left after the refusal" no_leftovers

# The kill and the concurrent runs below test files and processes (and write 6000 images, each
# fsynced: seconds on a slow disk); make mutation (MLPVIZ_QUICK) leaves them out.
[ -n "${MLPVIZ_QUICK:-}" ] && exit 0

# A real kill: SIGKILL in the middle of writing 2000 images, then the same command again.
python3 - "$tmp/big" <<'PY'
import random, sys
n, r = 2000, random.Random(1)
with open(sys.argv[1] + "-images.idx", "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    f.write(bytes(r.randrange(256) for _ in range(n * 784)))
with open(sys.argv[1] + "-labels.idx", "wb") as f:
    f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(i % 3 for i in range(n)))
PY
big=(--images "$tmp/big-images.idx" --labels "$tmp/big-labels.idx" --out "$tmp/big")
"$bin" convert "${big[@]}" >/dev/null 2>&1 &
writer=$!
for _ in $(seq 200); do # until it has written some images (at most 10 s)
    [ "$(find "$tmp" -path "$tmp/.big.tmp-*" -name '*.png' 2>/dev/null | wc -l)" -ge 50 ] && break
    sleep 0.05
done
kill -KILL "$writer" 2>/dev/null
wait "$writer" 2>/dev/null
killed=$?
left=$(find "$tmp" -maxdepth 1 -name '.big.tmp-*')
check "convert killed mid-way (status 137) left its half-written hidden folder" \
    test "$killed" -eq 137 -a -n "$left" -a ! -e "$tmp/big"
expect 0 "the same convert again" -- convert "${big[@]}"
stderr_has "it removes the killed run's folder" "removed $left, left by an interrupted run"
check "all 2000 images there" test "$(png_count "$tmp/big")" -eq 2000
check "nothing hidden left after the kill" no_leftovers

# Two runs to the same new DIR at once: neither sweeps the other's folder while it writes.
# One installs its 2000 images; the other finds DIR there at the end and says so.
"$bin" convert "${big[@]/%"$tmp/big"/"$tmp/twice"}" >"$tmp/run1.out" 2>"$tmp/run1.err" &
first=$!
"$bin" convert "${big[@]/%"$tmp/big"/"$tmp/twice"}" >"$tmp/run2.out" 2>"$tmp/run2.err"
second_status=$?
wait "$first"
first_status=$?
check "two converts at once: one succeeds, the other fails cleanly" \
    test "$((first_status + second_status))" -eq 1 -a "$first_status" -le 1 -a "$second_status" -le 1
check "the winner's folder has all 2000 images" test "$(png_count "$tmp/twice")" -eq 2000
check "no sweep of a live run's folder" bash -c "! grep -h 'removed' '$tmp/run1.err' '$tmp/run2.err'"
check "nothing hidden left after the two runs" no_leftovers
