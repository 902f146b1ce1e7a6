# checks.sh: what every tests/cli_*.sh suite shares. Sourced from the repository root.
# Sets $bin (the mlpviz under test), $tools (the test tools) and $tmp (removed at exit), and
# defines the checks, each printing "ok - NAME" or "not ok - NAME" for tests/run.sh to count.
bin=${MLPVIZ:-bin/mlpviz}
tools=${TOOLS:-build/opt/tests}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok - $1"; }
# not_ok NAME [FILE]: a failure, with FILE's first lines as the evidence.
not_ok() { echo "not ok - $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2" | head -n 20; }

# expect STATUS NAME -- ARGS...: runs mlpviz ARGS, checks the exit status; stdout and stderr
# stay in $tmp/out and $tmp/err for the checks below.
expect() {
    local want=$1 name=$2
    shift 3
    "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok "$name"; else
        echo "    exit $got, want $want: mlpviz $*"
        not_ok "$name" "$tmp/err"
    fi
}

# stderr / stdout of the last expect must contain TEXT.
stderr_has() {
    if grep -qF -- "$2" "$tmp/err"; then ok "$1"; else not_ok "$1 (stderr lacks '$2')" "$tmp/err"; fi
}
stdout_has() {
    if grep -qF -- "$2" "$tmp/out"; then ok "$1"; else not_ok "$1 (stdout lacks '$2')" "$tmp/out"; fi
}

# check NAME COMMAND...: ok when the command succeeds; its output is shown when it does not.
check() {
    local name=$1
    shift
    if "$@" >"$tmp/check" 2>&1; then ok "$name"; else not_ok "$name" "$tmp/check"; fi
}

# same_file NAME A B: the two files are byte-identical.
same_file() {
    if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1 ($2 and $3 differ)"; fi
}
