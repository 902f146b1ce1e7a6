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
expect 2 "bad objective" -- visualize "$tmp/m.mlp" --objective margin
expect 2 "negative steps" -- visualize "$tmp/m.mlp" --steps -1
expect 1 "missing model" -- visualize "$tmp/none.mlp"
stderr_has "missing model named" "none.mlp"
expect 1 "missing init image" -- visualize "$tmp/m.mlp" --init "$tmp/none.png" --out "$tmp/x"
stderr_has "init image named" "none.png"

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
