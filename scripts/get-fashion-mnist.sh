#!/bin/bash
# get-fashion-mnist.sh [DEST]: Fashion-MNIST as image folders DEST/train (60000 PNGs) and
# DEST/test (10000 PNGs), one directory per class, from the IDX files of Debian's
# dataset-fashion-mnist package (installed when missing). DEST defaults to the repository's
# data/fashion-mnist; a DEST given on the command line is relative to the current directory.
# Idempotent: a split that already holds all its images is left alone.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$repo/data/fashion-mnist}
src=/usr/share/datasets/fashion-mnist
mlpviz=$repo/bin/mlpviz
# Labels 0..9 in the order of the Fashion-MNIST documentation.
names=tshirt_top,trouser,pullover,dress,coat,sandal,shirt,sneaker,bag,ankle_boot

# PNG files directly inside the class directories of a split (0 when it does not exist).
count_images() {
    if [ -d "$1" ]; then
        find "$1" -mindepth 2 -maxdepth 2 -type f -name '*.png' | wc -l
    else
        echo 0
    fi
}

complete=1
for split in train:60000 test:10000; do
    [ "$(count_images "$dest/${split%%:*}")" -eq "${split#*:}" ] || complete=0
done
if [ "$complete" = 1 ]; then
    echo "get-fashion-mnist: $dest/train and $dest/test already hold 60000 and 10000 images;" \
        "nothing to do"
    exit 0
fi

"$repo/scripts/install-deps.sh" dataset-fashion-mnist
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
    t10k-labels-idx1-ubyte.gz; do
    if [ ! -f "$src/$f" ]; then
        echo "get-fashion-mnist: $src/$f is missing (is dataset-fashion-mnist installed?)" >&2
        exit 1
    fi
done
if [ ! -x "$mlpviz" ]; then
    make -C "$repo" --no-print-directory -s bin/mlpviz
fi

mkdir -p "$dest"
for split in train:train:60000 test:t10k:10000; do
    IFS=: read -r name prefix want <<<"$split"
    out=$dest/$name
    if [ "$(count_images "$out")" -eq "$want" ]; then
        echo "get-fashion-mnist: $out already holds $want images; kept"
        continue
    fi
    # convert writes a hidden sibling first and replaces $out only once that is complete.
    force=()
    [ -e "$out" ] && force=(--force)
    "$mlpviz" convert --images "$src/$prefix-images-idx3-ubyte.gz" \
        --labels "$src/$prefix-labels-idx1-ubyte.gz" --out "$out" --names "$names" "${force[@]}"
    got=$(count_images "$out")
    if [ "$got" -ne "$want" ]; then
        echo "get-fashion-mnist: $out holds $got images, expected $want" >&2
        exit 1
    fi
done
echo "get-fashion-mnist: done: $dest/train ($(count_images "$dest/train") images)," \
    "$dest/test ($(count_images "$dest/test") images)"
