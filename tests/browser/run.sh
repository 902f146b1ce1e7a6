#!/bin/bash
# tests/browser/run.sh (make browser-test): the report pages in a real browser. Builds a small
# model on synthetic classes, two of them named with markup, quotes and '&'; writes the pages
# of train, visualize (frames, GIFs, two seeds), eval and saliency; and has check_pages.py open each
# in headless Chromium and check it through the DOM. Installs Debian's chromium and
# python3-websocket when missing; where that or Chromium itself cannot run, prints one
# "browser-test: skipped: WHY" line and succeeds. Screenshots go to build/browser-test/.
set -u
cd "$(dirname "$0")/../.."
bin=${MLPVIZ:-bin/mlpviz}
tools=${TOOLS:-build/opt/tests}
shots=build/browser-test

skip() {
    echo "browser-test: skipped: $*"
    exit 0
}

find_chromium() {
    command -v chromium-headless-shell || command -v chromium || command -v chromium-browser
}
if ! find_chromium >/dev/null || ! /usr/bin/python3 -c 'import websocket' 2>/dev/null; then
    scripts/install-deps.sh chromium python3-websocket ||
        skip "cannot install Debian's chromium and python3-websocket"
fi
chromium=$(find_chromium) || skip "no chromium after installing it"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
hostile='<img src=x onerror=alert(1)>'
quoted="a\"b&c'd #1%?"
out="$tmp/report"
mkdir -p "$out"
set -e
"$tools/tool_make_dataset" "$tmp/data" 30 12 1 >/dev/null
mv "$tmp/data/rings" "$tmp/data/$hostile"
mv "$tmp/data/vertical" "$tmp/data/$quoted"
"$bin" train --data "$tmp/data" --layers 16 --epochs 3 --batch 16 --quiet --out "$out/m.mlp"
cp "$out/m.mlp" "$tmp/m.mlp"
# eval first, into the folder visualize writes next: its index.html then links the eval page.
"$bin" eval "$tmp/m.mlp" --data "$tmp/data" --confusion "$out/eval.png" >/dev/null
"$bin" visualize "$tmp/m.mlp" --out "$out" --steps 20 --frames 5 --gif --seeds 2 --quiet \
    >/dev/null
"$bin" saliency "$tmp/m.mlp" "$(find "$tmp/data/diagonal" -type f | head -n 1)" \
    --out "$out/saliency.png" >/dev/null
set +e
grep -q 'href="eval.html"' "$out/index.html" && echo "ok - index.html links the eval page" \
    || { echo "not ok - index.html links the eval page"; exit 1; }

/usr/bin/python3 tests/browser/check_pages.py --chromium "$chromium" --shots "$shots" \
    --text "$hostile" --text "$quoted" "$out/index.html" "$out/eval.html" "$out/saliency.html" \
    "$out/m.html"
status=$?
[ "$status" -eq 3 ] && skip "Chromium ($chromium) does not start here"
[ "$status" -eq 0 ] && echo "browser-test: every check passed; screenshots in $shots/"
exit "$status"
