#!/bin/bash
# run.sh: runs every test suite of mlpviz and ends with one line "N passed, N failed".
# Called by `make check` / `make test` as: run.sh CMOCKA-BINARY...; every tests/cli_*.sh runs
# after them with MLPVIZ naming the binary under test.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
failures=()

# A cmocka binary: count its own PASSED/FAILED lines; a crash without a summary is a failure.
run_cmocka() {
    local bin=$1 log
    log=$(mktemp)
    "$bin" >"$log" 2>&1
    local status=$?
    cat "$log"
    local p f
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$log" | tail -n 1)
    rm -f "$log"
    p=${p:-0}
    f=${f:-0}
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        failures+=("$bin exited with status $status")
    fi
    [ "$f" -gt 0 ] && failures+=("$bin: $f failed")
    passed=$((passed + p))
    failed=$((failed + f))
}

# A shell suite printing "ok - NAME" / "not ok - NAME" lines.
run_tap() {
    local script=$1 log
    log=$(mktemp)
    MLPVIZ=${MLPVIZ:-bin/mlpviz} bash "$script" >"$log" 2>&1
    local status=$?
    cat "$log"
    local p f
    p=$(grep -c '^ok - ' "$log")
    f=$(grep -c '^not ok - ' "$log")
    rm -f "$log"
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        failures+=("$script exited with status $status")
    fi
    [ "$f" -gt 0 ] && failures+=("$script: $f failed")
    passed=$((passed + p))
    failed=$((failed + f))
}

# The closing summary; with MLPVIZ_FAIL_FAST=1 (make mutation: a mutant is caught by its
# first failing suite, the rest would only cost time) also after the first suite that fails.
summary() {
    echo
    for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}
stop_if_failing() {
    if [ -n "${MLPVIZ_FAIL_FAST:-}" ] && [ "$failed" -gt 0 ]; then
        echo "== stopping at the first failing suite (MLPVIZ_FAIL_FAST)"
        summary
        exit 1
    fi
}

for t in "$@"; do
    echo "== $t"
    run_cmocka "$t"
    stop_if_failing
done
for t in tests/cli_*.sh; do
    # MLPVIZ_QUICK=1 (make mutation, 29 runs of the suite) leaves out the slow suites that
    # test files, processes and models rather than the arithmetic the mutants break, and
    # the install, which tests the Makefile.
    case "$t" in
    tests/cli_legibility.sh | tests/cli_hostile.sh | tests/cli_crash_safety.sh | tests/cli_determinism.sh | \
        tests/cli_install.sh)
        if [ -n "${MLPVIZ_QUICK:-}" ]; then
            echo "== $t skipped (MLPVIZ_QUICK)"
            continue
        fi
        ;;
    esac
    # The legibility suite draws about 600 images of 400 smoothed steps on 784-512-256 nets:
    # a quality check of minutes at -O3, of an hour under ASan at -O1. Its code paths run
    # under the sanitizers in cli_visualize.sh and test_visualize; make test runs it.
    if [ "$t" = tests/cli_legibility.sh ] && [ -n "${MLPVIZ_SANITIZED:-}" ]; then
        echo "== $t skipped (sanitizer build: make test runs it)"
        continue
    fi
    echo "== $t"
    run_tap "$t"
    stop_if_failing
done
summary
