#!/bin/sh
# man-pages.sh: the man pages of mlpviz, made by Debian's help2man from the --help texts:
# OUTDIR/mlpviz.1 from `mlpviz --help`, and OUTDIR/mlpviz-COMMAND.1 from `mlpviz COMMAND
# --help` for every command that `mlpviz --help` lists (help and version aside).
# Usage: scripts/man-pages.sh BIN OUTDIR COMMAND...
# The COMMANDs are the pages the Makefile installs; they must be the commands --help lists.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BIN OUTDIR COMMAND..." >&2; exit 2; }
bin=$1
out=$2
shift 2
case "$bin" in /*) ;; *) bin=$(pwd)/$bin ;; esac

# The commands and their one-line summaries, from the "commands:" list of mlpviz --help.
help=$("$bin" --help)
listed=$(printf '%s\n' "$help" |
    sed -n '/^commands:$/,/^$/s/^  \([a-z0-9][a-z0-9-]*\)  *\(.*\)/\1 \2/p' |
    grep -v -e '^help ' -e '^version ')
names=$(printf '%s\n' "$listed" | cut -d' ' -f1 | tr '\n' ' ')
if [ "$names" != "$* " ]; then
    echo "man-pages.sh: mlpviz --help lists: $names" >&2
    echo "man-pages.sh: the Makefile expects:  $* (src/cli/cli.c's command table)" >&2
    exit 1
fi
version=$("$bin" --version | sed -n 's/^mlpviz //p')
[ -n "$version" ] || { echo "man-pages.sh: $bin --version printed no version" >&2; exit 1; }

# help2man names the page after the program it runs and reads its synopsis from a line
# starting "Usage:": each page runs a small wrapper, named as the page, that runs the
# command with its arguments and capitalizes the first line.
tmp=$out.tmp
rm -rf "$tmp"
mkdir -p "$tmp/wrap"
wrapper() { # NAME ARGS...: the wrapper NAME runs mlpviz ARGS "$@"
    w=$tmp/wrap/$1
    shift
    cat >"$w" <<WRAPPER
#!/bin/sh
text=\$("$bin" $* "\$@") || exit
printf '%s\n' "\$text" | sed '1s/^usage:/Usage:/'
WRAPPER
    chmod +x "$w"
}
page() { # NAME SUMMARY SEE-ALSO: OUTDIR/NAME.1
    printf '[SEE ALSO]\n%s\n' "$3" >"$tmp/wrap/$1.see-also"
    help2man --no-info --name="$2" --version-string="$version" \
        --include="$tmp/wrap/$1.see-also" --output="$tmp/$1.1" "$tmp/wrap/$1"
}

see_also=""
for c in "$@"; do see_also="$see_also${see_also:+,
}.BR mlpviz-$c (1)"; done
wrapper mlpviz
page mlpviz "$(printf '%s\n' "$help" | sed -n '3{s/\.$//;s/^./\L&/;p}')" "$see_also"
printf '%s\n' "$listed" | while read -r name summary; do
    wrapper "mlpviz-$name" "$name"
    page "mlpviz-$name" "$summary" ".BR mlpviz (1)"
done
rm -rf "$tmp/wrap" "$out"
mv "$tmp" "$out"
