#!/bin/bash
# fuzz.sh: runs every libFuzzer harness for SECONDS each (make fuzz FUZZ_SECONDS=N);
# FUZZ_NAMES="onnx json" runs only those.
# Seeds come from scripts/fuzz-seeds.py; what the fuzzers find is kept in
# build/fuzz/corpus/<name> (so later runs start from it), crashes in build/fuzz/artifacts/.
# Prints executions and findings per harness; exits non-zero when any harness crashed.
set -u
cd "$(dirname "$0")/.."
seconds=${1:-60}
fuzz=build/fuzz
seeds=$fuzz/seeds
if [ ! -d "$seeds/json" ]; then
    python3 scripts/fuzz-seeds.py "$seeds" build/opt/tests || exit 1
fi
status=0
for name in ${FUZZ_NAMES:-model idx image png_info onnx json}; do
    corpus=$fuzz/corpus/$name artifacts=$fuzz/artifacts/$name/
    mkdir -p "$corpus" "$artifacts"
    log=$fuzz/$name.log
    echo "fuzz: $name for ${seconds}s"
    "$fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" "$seeds/$name" \
        >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    found=$(ls -A "$artifacts" | wc -l)
    echo "fuzz: $name: ${execs:-?} executions, $cov, corpus $(ls -A "$corpus" | wc -l) files," \
         "$found crash/leak/timeout files, exit $rc"
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        status=1
        grep -m 5 -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | sed 's/^/    /'
    fi
done
exit $status
