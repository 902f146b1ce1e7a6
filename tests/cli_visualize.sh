#!/bin/bash
# cli_visualize.sh: `mlpviz visualize` and `mlpviz saliency` as a user runs them on a model
# trained on synthetic stripes: one PNG per class of the right size, the grid, the report,
# the provenance chunk, reproducible bytes, saliency sheets, and the errors of bad options.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

# Width and height stored in a PNG's IHDR (bytes 16..23, big-endian).
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}'; }

"$tools/tool_make_dataset" "$tmp/data" 40 12 1 >/dev/null && ok "synthetic folder" || not_ok "synthetic folder"
"$bin" train --data "$tmp/data" --layers 32 --epochs 8 --batch 16 --lr 3e-3 --quiet \
    --out "$tmp/m.mlp" && ok "model trained" || not_ok "model trained"

expect 0 "visualize --help" -- visualize --help
expect 0 "visualize every class" -- visualize "$tmp/m.mlp" --out "$tmp/v" --steps 60 --scale 3
for class in diagonal horizontal rings vertical; do
    [ "$(png_size "$tmp/v/$class.png" 2>/dev/null)" = "36x36" ] && ok "$class.png is 36x36" \
        || not_ok "$class.png is 36x36 (got $(png_size "$tmp/v/$class.png" 2>/dev/null))"
done
[ -s "$tmp/v/grid.png" ] && ok "grid written" || not_ok "grid written"
[ "$(wc -l <"$tmp/v/report.csv")" -eq 5 ] && ok "report has 4 rows" || not_ok "report has 4 rows"
grep -qa "tEXtmlpviz" "$tmp/v/rings.png" && grep -qa "model_crc=" "$tmp/v/rings.png" \
    && ok "PNG carries the command, seed and model CRC" || not_ok "PNG provenance chunk"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["images"]) == 4' \
    "$tmp/v/report.json" && ok "report.json parses" || not_ok "report.json parses"
# The images are what the model takes for each class.
won=$(awk -F, 'NR > 1 && $6 > 0' "$tmp/v/report.csv" | wc -l)
[ "$won" -eq 4 ] && ok "every class image wins its class" || not_ok "every class image wins its class ($won of 4)"
for class in diagonal horizontal rings vertical; do
    "$bin" predict "$tmp/m.mlp" "$tmp/v/$class.png" --top 1 | grep -q "1. $class " \
        && ok "predict agrees on $class.png" || not_ok "predict agrees on $class.png"
done

expect 0 "two classes by name and index, 2 seeds" -- visualize "$tmp/m.mlp" --out "$tmp/w" \
    --class rings,0 --seeds 2 --steps 20 --init noise
[ -s "$tmp/w/rings-1.png" ] && [ -s "$tmp/w/diagonal-0.png" ] && ok "per-seed files" \
    || not_ok "per-seed files"
# The PNGs record the command line, so the same command must write the same directory.
mv "$tmp/w" "$tmp/w-first"
expect 0 "same command again" -- visualize "$tmp/m.mlp" --out "$tmp/w" --class rings,0 \
    --seeds 2 --steps 20 --init noise
same_file "same seed, same bytes" "$tmp/w-first/rings-1.png" "$tmp/w/rings-1.png"

expect 2 "unknown class" -- visualize "$tmp/m.mlp" --class zigzag --out "$tmp/x"
stderr_has "unknown class named" "zigzag"
expect 2 "bad objective" -- visualize "$tmp/m.mlp" --objective banana
stderr_has "bad objective named" "banana"
expect 2 "negative steps" -- visualize "$tmp/m.mlp" --steps -1
expect 1 "missing model" -- visualize "$tmp/none.mlp"
stderr_has "missing model named" "none.mlp"
expect 1 "missing init image" -- visualize "$tmp/m.mlp" --init "$tmp/none.png" --out "$tmp/x"
stderr_has "init image named" "none.png"

img0="$tmp/data/rings/img 002.tga"
# Presets, and flags on top of them; the settings land in the report.
expect 0 "yosinski3 preset, fewer steps" -- visualize "$tmp/m.mlp" --preset yosinski3 --steps 40 \
    --out "$tmp/y3" --quiet
grep -q -- "--decay 0.0001 --decay-to mean --blur-every 4 --blur-sigma 1 " "$tmp/y3/report.json" \
    && grep -q -- "--steps 40 " "$tmp/y3/report.json" && ok "preset and override in the report" \
    || not_ok "preset and override in the report" "$tmp/y3/report.json"
expect 0 "preset in combined short options" -- visualize "$tmp/m.mlp" -qp plain --steps 5 \
    --init noise --out "$tmp/qp"
grep -q -- "--step normalized --lr 0.02 " "$tmp/qp/report.json" \
    && grep -q -- "--init noise " "$tmp/qp/report.json" && ok "plain preset and the named start recorded" \
    || not_ok "plain preset and the named start recorded" "$tmp/qp/report.json"
expect 2 "unknown preset" -- visualize "$tmp/m.mlp" --preset yosinski9 --out "$tmp/x"
stderr_has "unknown preset named" "yosinski9"
printf -- "--steps 10 --banana 3\n" >"$tmp/bad-preset.txt"
expect 2 "preset file with a bad flag" -- visualize "$tmp/m.mlp" --preset "$tmp/bad-preset.txt"
stderr_has "bad preset file named" "bad-preset.txt"

# Every objective, step rule and start runs; class starts come from the stored statistics.
for args in "--objective margin" "--objective logprob --step progress --lr 1" \
            "--optimizer adam" "--optimizer momentum --step fixed --lr 0.001" \
            "--init class-mean" "--init class-sample --temperature 0.5" "--init mean" \
            "--octaves 3 --norm-pct 20" "--contrib-pct 50 --decay-to mean" \
            "--preset prior" "--init class-mixture --temperature 0" "--step l2 --tv 0.01" \
            "--smooth-samples 3 --smooth-sigma 0.3 --step-noise 0.05" \
            "--diversity 0.5 --seeds 2 --stop-prob 0.99" \
            "--init-noise 0.1 --decay 0.01 --decay-to prior"; do
    expect 0 "visualize $args" -- visualize "$tmp/m.mlp" $args --steps 30 --out "$tmp/o" --quiet
done

# The settings report.json records (of the loop's last run), and the bad values of the new ones.
grep -q -- "--decay 0.01 --decay-to prior .*--init-noise 0.10000000000000001" "$tmp/o/report.json" \
    && grep -q -- "--diversity 0 --stop-prob 0" "$tmp/o/report.json" \
    && ok "report.json records the new settings" \
    || not_ok "report.json records the new settings" "$tmp/o/report.json"
expect 2 "unknown decay reference" -- visualize "$tmp/m.mlp" --decay-to banana --out "$tmp/x"
stderr_has "decay reference named" "unknown decay reference 'banana' (start, mean, prior)"
expect 2 "unknown step rule" -- visualize "$tmp/m.mlp" --step l3 --out "$tmp/x"
stderr_has "step rules listed" "fixed, normalized, progress, l2"
expect 2 "too many smoothing samples" -- visualize "$tmp/m.mlp" --smooth-samples 300 --out "$tmp/x"
stderr_has "smoothing option named" "--smooth-samples"
expect 2 "start noise above 1" -- visualize "$tmp/m.mlp" --init-noise 2 --out "$tmp/x"
expect 2 "negative total variation" -- visualize "$tmp/m.mlp" --tv -1 --out "$tmp/x"
expect 2 "step noise above 1" -- visualize "$tmp/m.mlp" --step-noise 1.5 --out "$tmp/x"
expect 2 "negative diversity" -- visualize "$tmp/m.mlp" --diversity -1 --out "$tmp/x"
stderr_has "diversity option named" "--diversity"
expect 2 "stop probability above 1" -- visualize "$tmp/m.mlp" --stop-prob 1.5 --out "$tmp/x"
expect 1 "diversity of hidden units" -- visualize "$tmp/m.mlp" --unit 0:1 --diversity 1 --out "$tmp/x"
stderr_has "diversity needs classes" "need a class objective"
# A model without a class mixture (trained with --class-mixture 0) refuses mixture starts.
"$bin" train --data "$tmp/data" --layers 8 --epochs 1 --batch 16 --class-mixture 0 --quiet \
    --out "$tmp/nomix.mlp" && ok "model without a mixture" || not_ok "model without a mixture"
expect 1 "prior preset without a mixture" -- visualize "$tmp/nomix.mlp" --preset prior --out "$tmp/x"
stderr_has "missing mixture explained" "train it with --class-mixture"
[ ! -e "$tmp/x" ] && ok "nothing written for the refused start" || not_ok "nothing written for the refused start"

# Hidden units: one image per unit, named by layer and index.
expect 0 "two hidden units" -- visualize "$tmp/m.mlp" --unit 0:3,17 --steps 30 --out "$tmp/u"
[ -s "$tmp/u/unit-0-3.png" ] && [ -s "$tmp/u/unit-0-17.png" ] && ok "unit images" \
    || not_ok "unit images"
awk -F, 'NR > 1 && $3 <= 0 { bad = 1 } END { exit bad }' "$tmp/u/report.csv" \
    && ok "units end active" || not_ok "units end active" "$tmp/u/report.csv"
expect 2 "unit of a missing layer" -- visualize "$tmp/m.mlp" --unit 1:0
stderr_has "unit error names the layers" "hidden layer 0..0"
expect 2 "unit out of range" -- visualize "$tmp/m.mlp" --unit 0:32
expect 2 "class and unit together" -- visualize "$tmp/m.mlp" --unit 0:1 --class rings

# Frames every 10 steps of 30: steps 0, 10, 20, 30 of 4 classes, and a filmstrip.
expect 0 "frames" -- visualize "$tmp/m.mlp" --steps 30 --frames 10 --out "$tmp/f" --quiet
[ "$(ls "$tmp/f/frames" | wc -l)" -eq 16 ] && ok "16 frames written" \
    || not_ok "16 frames written (got $(ls "$tmp/f/frames" | wc -l))"
[ -s "$tmp/f/frames/rings-0-00030.png" ] && [ -s "$tmp/f/filmstrip.png" ] && ok "filmstrip" \
    || not_ok "filmstrip"

# A judge: the model judging itself agrees with its own probabilities.
expect 0 "self-judged" -- visualize "$tmp/m.mlp" --judge "$tmp/m.mlp" --steps 200 --out "$tmp/j"
stdout_has "judge summary" "recognizes 4 of 4"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert all(abs(i["judge_prob"] - i["prob"]) < 1e-5 for i in d["images"]), d' "$tmp/j/report.json" \
    && ok "judge_prob equals own prob for the same model" || not_ok "judge_prob equals own prob"
"$tools/tool_make_dataset" "$tmp/data16" 10 16 1 >/dev/null
"$bin" train --data "$tmp/data16" --layers 8 --epochs 1 --quiet --out "$tmp/m16.mlp"
expect 1 "judge of another image size" -- visualize "$tmp/m.mlp" --judge "$tmp/m16.mlp"
stderr_has "judge size error" "m16.mlp: takes 16x16x3 images"

# Search: trial 0 is the given setting; the winner is written as a preset that reproduces it.
expect 0 "search 4 settings" -- visualize "$tmp/m.mlp" --judge "$tmp/m.mlp" --search 4 \
    --steps 20 --out "$tmp/s"
[ "$(wc -l <"$tmp/s/search.csv")" -eq 5 ] && [ -s "$tmp/s/search.png" ] && [ -s "$tmp/s/preset.txt" ] \
    && ok "search outputs" || not_ok "search outputs"
expect 0 "the winning preset again" -- visualize "$tmp/m.mlp" --judge "$tmp/m.mlp" \
    --preset "$tmp/s/preset.txt" --out "$tmp/s2"
cut -d, -f1-8 "$tmp/s/report.csv" >"$tmp/s-a.csv"
cut -d, -f1-8 "$tmp/s2/report.csv" >"$tmp/s-b.csv"
same_file "preset.txt reproduces the winner" "$tmp/s-a.csv" "$tmp/s-b.csv"
expect 2 "search with an image start" -- visualize "$tmp/m.mlp" --search 2 --init "$img0"

# The thread count changes nothing.
expect 0 "one thread" -- visualize "$tmp/m.mlp" --steps 30 --threads 1 --out "$tmp/t1" --quiet
expect 0 "two threads" -- visualize "$tmp/m.mlp" --steps 30 --threads 2 --out "$tmp/t2" --quiet
same_file "1 and 2 threads give the same report" "$tmp/t1/report.csv" "$tmp/t2/report.csv"

# saliency: the image, |gradient| and the signed gradient side by side.
img="$tmp/data/rings/img 002.tga"
expect 0 "saliency of the predicted class" -- saliency "$tmp/m.mlp" "$img" --out "$tmp/s.png"
stdout_has "saliency names the class" "rings: logit"
[ "$(png_size "$tmp/s.png" 2>/dev/null)" = "296x96" ] && ok "saliency sheet is 3 panels of 96" \
    || not_ok "saliency sheet is 3 panels of 96 (got $(png_size "$tmp/s.png" 2>/dev/null))"
expect 0 "saliency of a named class, scale 2" -- saliency "$tmp/m.mlp" "$img" --class vertical \
    --scale 2 --out "$tmp/s2.png"
[ "$(png_size "$tmp/s2.png" 2>/dev/null)" = "80x24" ] && ok "saliency scale 2 is 80x24" \
    || not_ok "saliency scale 2 is 80x24"
expect 2 "saliency of an unknown class" -- saliency "$tmp/m.mlp" "$img" --class zigzag
stderr_has "saliency unknown class named" "zigzag"
expect 2 "saliency of all classes" -- saliency "$tmp/m.mlp" "$img" --class all
expect 1 "saliency of a missing image" -- saliency "$tmp/m.mlp" "$tmp/none.png"
stderr_has "saliency missing image named" "none.png"
