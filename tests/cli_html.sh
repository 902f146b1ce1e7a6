#!/bin/bash
# cli_html.sh: the reports of visualize, eval and saliency without a browser (tests/browser/
# opens them in one): every file the page names exists, one card and one table row per image,
# hostile class names escaped, the GIFs decode (giflib reads them back), a failed write
# leaves no page and no temporary file, and the terminal preview shows on a terminal only.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

hostile='<img src=x onerror=alert(1)>'
quoted="a\"b&c'd #1%?"
"$tools/tool_make_dataset" "$tmp/data" 30 12 1 >/dev/null && ok "synthetic folder" \
    || not_ok "synthetic folder"
# Class names are folder names: two of them hold markup, quotes, '&', '#', '%' and '?'.
mv "$tmp/data/rings" "$tmp/data/$hostile" && mv "$tmp/data/vertical" "$tmp/data/$quoted" \
    && ok "hostile class folders" || not_ok "hostile class folders"
"$bin" train --data "$tmp/data" --layers 16 --epochs 3 --batch 16 --quiet --out "$tmp/m.mlp" \
    && ok "model trained" || not_ok "model trained"
# train's page beside its metrics: a row per epoch, loss and accuracy charts, names escaped.
epochs=$(sed -n '/<table class="epochs">/,/<\/table>/p' "$tmp/m.html" 2>/dev/null | grep -c '^<tr><td>')
charts=$(grep -c '<svg' "$tmp/m.html" 2>/dev/null)
if [ "$epochs" -eq 3 ] && [ "$charts" -eq 2 ] && ! grep -qF -- "$hostile" "$tmp/m.html" \
    && grep -qF '&lt;img src=x onerror=alert(1)&gt;' "$tmp/m.html"; then
    ok "train page: 3 epochs, 2 charts, names escaped"
else not_ok "train page: 3 epochs, 2 charts, names escaped (epochs $epochs, charts $charts)"; fi
# A metrics file that is not one: one error line naming it, exit 1, no page.
mkdir -p "$tmp/t" && mkdir "$tmp/t/bad.csv"
expect 1 "train with an unreadable metrics path" -- train --data "$tmp/data" --layers 8 --epochs 1 \
    --quiet --out "$tmp/t/bad.mlp"
[ ! -e "$tmp/t/bad.html" ] && ok "no train page after a failure" || not_ok "no train page after a failure"

expect 0 "visualize with frames and GIFs" -- visualize "$tmp/m.mlp" --out "$tmp/v" --steps 20 \
    --frames 5 --gif --seeds 2 --scale 3
page="$tmp/v/index.html"
stdout_has "visualize names its page" "$tmp/v/index.html"
[ -s "$page" ] && ok "index.html written" || not_ok "index.html written"

# Every src and href of the page, URL-decoded, names a file of the folder.
missing=$(python3 - "$page" "$tmp/v" <<'EOF'
import html.parser, os, sys, urllib.parse
class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.files = []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") or (k == "data-prefix"):
                self.files.append((k, v))
p = Links()
p.feed(open(sys.argv[1], encoding="utf-8").read())
bad = []
for k, v in p.files:
    path = urllib.parse.unquote(v)
    if k == "data-prefix":
        path += "00000.png"
    if not os.path.isfile(os.path.join(sys.argv[2], path)):
        bad.append(v)
print(len(p.files), " ".join(bad))
EOF
)
[ -n "$missing" ] && [ "${missing#* }" = "" ] && [ "${missing%% *}" -gt 20 ] \
    && ok "every file the page names exists (${missing%% *} references)" \
    || not_ok "every file the page names exists: missing ${missing#* }"
cards=$(grep -c '<figure class="card"' "$page")
rows=$(sed -n '/<table class="report">/,/<\/table>/p' "$page" | grep -c '^<tr><td>')
[ "$cards" -eq 8 ] && [ "$rows" -eq 8 ] && ok "one card and one table row per image (8)" \
    || not_ok "one card and one table row per image (cards $cards, rows $rows)"
grep -q '<svg' "$page" && grep -q '<polyline' "$page" && ok "the objective's curve is inline SVG" \
    || not_ok "the objective's curve is inline SVG"
grep -q 'model CRC-32' "$page" && grep -qF -- "--frames 5 --gif" "$page" \
    && ok "the page shows the command and the model CRC" || not_ok "command and CRC on the page"

# Escaped everywhere: the raw markup never appears, its escaped form does.
if grep -qF -- "$hostile" "$page"; then not_ok "hostile class name escaped"; else
    grep -qF '&lt;img src=x onerror=alert(1)&gt;' "$page" && ok "hostile class name escaped" \
        || not_ok "hostile class name shown escaped"; fi
grep -qF 'a&quot;b&amp;c&#39;d #1%?' "$page" && grep -qF 'a%22b%26c%27d%20%231%25%3F-0.png' "$page" \
    && ok "quotes and '&' escaped in text, percent-encoded in paths" \
    || not_ok "quotes and '&' escaped in text, percent-encoded in paths"

# The GIFs decode: one per image and one of the grid, 5 frames (steps 0, 5, ..., 20), looping.
gifs=0
for f in "$tmp"/v/*.gif; do
    info=$("$tools/tool_gif_info" "$f") || { not_ok "$(basename "$f") decodes"; continue; }
    case "$(basename "$f")" in
    grid.gif) want="frames 5 size " ;;
    *) want="frames 5 size 24x24 loop 0 colors 256 delay 8" ;;
    esac
    case "$info" in "$want"*) gifs=$((gifs + 1)) ;; *) not_ok "$(basename "$f"): $info" ;; esac
done
[ "$gifs" -eq 9 ] && ok "9 GIFs decode with 5 frames, the right size, looping" \
    || not_ok "9 GIFs decode ($gifs)"
case "$("$tools/tool_gif_info" "$tmp/v/grid.gif")" in
*"loop 0 colors 256"*) ok "grid.gif loops forever" ;; *) not_ok "grid.gif loops forever" ;; esac
expect 0 "--gif-scale 3" -- visualize "$tmp/m.mlp" --out "$tmp/g3" --steps 10 --frames 5 --gif \
    --gif-scale 3 --class diagonal --quiet
case "$("$tools/tool_gif_info" "$tmp/g3/diagonal.gif")" in
"frames 3 size 36x36 "*) ok "--gif-scale 3: 36x36" ;;
*) not_ok "--gif-scale 3: 36x36 ($("$tools/tool_gif_info" "$tmp/g3/diagonal.gif"))" ;;
esac

# --gif alone saves frames every steps/40; --no-html writes no page.
expect 0 "--gif without --frames" -- visualize "$tmp/m.mlp" --out "$tmp/g" --steps 80 --gif \
    --class diagonal --no-html --quiet
[ ! -e "$tmp/g/index.html" ] && ok "--no-html: no page" || not_ok "--no-html: no page"
case "$("$tools/tool_gif_info" "$tmp/g/diagonal.gif")" in
"frames 41 "*) ok "--gif alone: 41 frames of 80 steps" ;;
*) not_ok "--gif alone: 41 frames ($("$tools/tool_gif_info" "$tmp/g/diagonal.gif"))" ;;
esac

# A page that cannot be written: one error line naming it, exit 1, no temporary file left.
mkdir -p "$tmp/f/index.html"
expect 1 "unwritable page" -- visualize "$tmp/m.mlp" --out "$tmp/f" --steps 5 --class 0
stderr_has "the error names the page" "index.html"
[ "$(wc -l <"$tmp/err")" -eq 1 ] && ok "one error line" || not_ok "one error line" "$tmp/err"
[ -z "$(find "$tmp/f" -name '.*')" ] && ok "no temporary file left" \
    || not_ok "no temporary file left: $(find "$tmp/f" -name '.*')"
mkdir -p "$tmp/f2/grid.gif"
expect 1 "unwritable GIF" -- visualize "$tmp/m.mlp" --out "$tmp/f2" --steps 5 --class 0 --gif
stderr_has "the error names the GIF" "grid.gif"
[ ! -e "$tmp/f2/index.html" ] && [ -z "$(find "$tmp/f2" -name '.*')" ] \
    && ok "a failed GIF: no page, no temporary file" || not_ok "a failed GIF: no page, no temporary file"

# eval and saliency: a page beside their PNG.
expect 0 "eval writes its page" -- eval "$tmp/m.mlp" --data "$tmp/data" --confusion "$tmp/e/c.png"
if [ -s "$tmp/e/c.html" ] && grep -q 'class="confusion"' "$tmp/e/c.html" \
    && grep -q 'class="per-class"' "$tmp/e/c.html" && ! grep -qF -- "$hostile" "$tmp/e/c.html"; then
    ok "eval page: matrix, per-class accuracy, names escaped"
else not_ok "eval page: matrix, per-class accuracy, names escaped"; fi
img=$(find "$tmp/data/diagonal" -type f | head -n 1)
expect 0 "saliency writes its page" -- saliency "$tmp/m.mlp" "$img" --out "$tmp/s/sal.png"
[ -s "$tmp/s/sal.html" ] && grep -q 'src="sal.png"' "$tmp/s/sal.html" && ok "saliency page" \
    || not_ok "saliency page"

# The preview: half-blocks on a terminal (script gives one), never in a pipe or with --quiet.
block=$'\xe2\x96\x80'
expect 0 "visualize into a pipe" -- visualize "$tmp/m.mlp" --out "$tmp/p" --steps 20 --class 0
if grep -qF "$block" "$tmp/err"; then not_ok "no preview in a pipe"; else ok "no preview in a pipe"; fi
# A machine without pseudo-terminals (a chroot without /dev/pts) cannot give one: say so.
pty_missing=""
command -v script >/dev/null || pty_missing="script (util-linux) missing"
[ -z "$pty_missing" ] && ! script -qec true /dev/null >/dev/null 2>&1 </dev/null \
    && pty_missing="no pseudo-terminal here ($(script -qec true /dev/null 2>&1 </dev/null | head -n 1))"
if [ -z "$pty_missing" ]; then
    script -qec "$bin visualize $tmp/m.mlp --out $tmp/p --steps 20 --class 0" /dev/null \
        >"$tmp/tty" 2>&1 </dev/null
    grep -qF "$block" "$tmp/tty" && ok "preview on a terminal" || not_ok "preview on a terminal" "$tmp/tty"
    # 12 rows of pixels are 6 lines of half-blocks, redrawn in place: the cursor goes 6 up.
    grep -qF $'\e[6A' "$tmp/tty" && ok "the preview is redrawn in place" \
        || not_ok "the preview is redrawn in place"
    script -qec "$bin visualize $tmp/m.mlp --out $tmp/p --steps 20 --class 0 --quiet" /dev/null \
        >"$tmp/tty" 2>&1 </dev/null
    if grep -qF "$block" "$tmp/tty"; then not_ok "no preview with --quiet"; else ok "no preview with --quiet"; fi
else
    ok "preview on a terminal # skipped: $pty_missing"
fi
