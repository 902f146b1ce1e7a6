#!/bin/bash
# cli_install.sh: `make install` and `make uninstall` as a packager runs them, into a DESTDIR
# under $tmp with PREFIX=/usr/local: every file in place with its mode and nothing else; the
# installed header, library and pkg-config file alone build tests/test_api.c (the cmocka
# suite of the public API) and a program that writes and reads a PNG through stb; every man
# page renders without a warning, mlpviz.1 lists every command and each command's page every
# option of its --help; then uninstall leaves no file of its own, and a file not its own.
# It installs the build of the binary under test: bin/mlpviz, or build/san/bin/mlpviz under
# `make test SAN=1` (make install SAN=1; the pkg-config file then links the sanitizer too).
# Both are built already, so make only writes the man pages and the pkg-config file.
set -u
cd "$(dirname "$0")/.."
. tests/checks.sh

case "$bin" in
bin/mlpviz | ./bin/mlpviz) variant="" ;;
build/san/bin/mlpviz | ./build/san/bin/mlpviz) variant="SAN=1" ;;
*)
    echo "== skipped: make install installs bin/mlpviz or build/san/bin/mlpviz, not $bin"
    exit 0
    ;;
esac

dest=$tmp/dest
p=$dest/usr/local
man1=$p/share/man/man1
# A make of its own, not a sub-make of the one running the suite: neither its flags and
# jobserver nor the variables given to it (make check SAN=1 puts SAN=1 in the environment).
unset MAKEFLAGS MFLAGS MAKELEVEL SAN FUZZ DESTDIR PREFIX EXEC_PREFIX BINDIR LIBDIR INCLUDEDIR \
    DATAROOTDIR MANDIR MAN1DIR PKGCONFIGDIR INSTALL
mk() { make --no-print-directory $variant PREFIX=/usr/local DESTDIR="$dest" "$@"; }

# The commands, as the binary lists them; help and version have no page of their own.
commands=$("$bin" --help | sed -n '/^commands:$/,/^$/s/^  \([a-z0-9][a-z0-9-]*\)  .*/\1/p')
pages=$(printf '%s\n' "$commands" | grep -vx -e help -e version)
if [ -n "$pages" ]; then ok "mlpviz --help lists commands (${commands//$'\n'/ })"; else
    not_ok "mlpviz --help lists no commands"
fi

check "make install DESTDIR=... PREFIX=/usr/local" mk install

# Exactly these files, with these modes.
{
    echo "755 bin/mlpviz"
    echo "644 include/mlpviz.h"
    echo "644 lib/libmlpviz.a"
    echo "644 lib/pkgconfig/mlpviz.pc"
    echo "644 share/man/man1/mlpviz.1"
    for c in $pages; do echo "644 share/man/man1/mlpviz-$c.1"; done
} | sort >"$tmp/want"
(cd "$p" 2>/dev/null && find . ! -type d -printf '%m %P\n' | sort) >"$tmp/got"
find "$dest" ! -type d ! -path "$p/*" -printf '%m %p\n' >>"$tmp/got"
if diff "$tmp/want" "$tmp/got" >"$tmp/diff"; then
    ok "installs bin, lib, header, pkg-config file, $(($(printf '%s\n' "$pages" | wc -l) + 1)) man pages; modes"
else
    not_ok "installed files and modes (- wanted, + installed)" "$tmp/diff"
fi
same_file "installed binary is the one under test" "$bin" "$p/bin/mlpviz"
same_file "installed header is src/mlpviz.h" src/mlpviz.h "$p/include/mlpviz.h"
check "installed binary runs" "$p/bin/mlpviz" --version

# The installed copy alone: its pkg-config file only, the sources copied away from src/.
export PKG_CONFIG_LIBDIR=$p/lib/pkgconfig PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR=$dest
want_version=$("$bin" --version | sed -n 's/^mlpviz //p')
got_version=$(pkg-config --modversion mlpviz 2>&1)
if [ -n "$want_version" ] && [ "$got_version" = "$want_version" ]; then
    ok "pkg-config --modversion mlpviz is $got_version"
else
    echo "    pkg-config: '$got_version', mlpviz --version: '$want_version'"
    not_ok "pkg-config --modversion mlpviz"
fi
cflags=$(pkg-config --cflags mlpviz)
libs=$(pkg-config --libs mlpviz)
echo "    pkg-config --cflags --libs mlpviz: $cflags $libs"
mkdir "$tmp/api"
cp tests/test_api.c "$tmp/api/"
cat >"$tmp/api/png.c" <<'EOF'
/* The image functions of the installed library: they need stb (pkg-config's Libs). */
#include <stdio.h>
#include "mlpviz.h"
int main(int argc, char **argv)
{
    const float px[6] = {0, 0.25f, 0.5f, 0.75f, 1, 0.5f};
    int w = 0, h = 0, c = 0;
    if (argc != 2) return 2;
    if (mv_png_write(argv[1], px, 3, 2, 1, NULL, NULL) != MV_OK ||
        mv_image_info(argv[1], &w, &h, &c) != MV_OK) {
        fprintf(stderr, "%s\n", mv_last_error());
        return 1;
    }
    printf("%dx%d, %d channel(s)\n", w, h, c);
    return !(w == 3 && h == 2 && c == 1);
}
EOF
cc=${CC:-cc}
# shellcheck disable=SC2086
check "test_api.c builds: cc \$(pkg-config --cflags) ... \$(pkg-config --libs) -lcmocka" \
    "$cc" $cflags -o "$tmp/api/test_api" "$tmp/api/test_api.c" $libs -lcmocka
# The header and the archive it used are the installed ones.
# shellcheck disable=SC2086
if "$cc" $cflags -M "$tmp/api/test_api.c" 2>&1 | grep -qF "$p/include/mlpviz.h"; then
    ok "test_api.c includes the installed mlpviz.h"
else
    not_ok "test_api.c does not include $p/include/mlpviz.h"
fi
# shellcheck disable=SC2086
"$cc" $cflags -o "$tmp/api/traced" "$tmp/api/test_api.c" $libs -lcmocka -Wl,--trace \
    >"$tmp/trace" 2>&1
if grep -qF "$p/lib/libmlpviz.a" "$tmp/trace"; then
    ok "test_api links the installed libmlpviz.a"
else
    not_ok "test_api does not link $p/lib/libmlpviz.a" "$tmp/trace"
fi
check "test_api built on the installed copy passes" "$tmp/api/test_api"
# shellcheck disable=SC2086
check "a program writing and reading a PNG builds with pkg-config's flags" \
    "$cc" $cflags -o "$tmp/api/png" "$tmp/api/png.c" $libs
check "it writes and reads the PNG through the installed library" "$tmp/api/png" "$tmp/api/x.png"

# Man pages: rendered as man does, with every warning; the text read wide, unhyphenated.
render() { groff -man -Tutf8 -ww -rLL=400n -rHY=0 -P-cbou "$1"; }
for f in "$man1/mlpviz.1" $(for c in $pages; do echo "$man1/mlpviz-$c.1"; done); do
    name=$(basename "$f" .1)
    if [ -f "$f" ] && render "$f" >"$tmp/page" 2>"$tmp/warn" && [ ! -s "$tmp/warn" ]; then
        ok "$name.1 renders without a warning"
    else
        not_ok "$name.1 does not render cleanly" "$tmp/warn"
        continue
    fi
    if grep -qE "^ +$name - [^ ]" "$tmp/page"; then ok "$name.1: NAME is '$name - ...'"; else
        not_ok "$name.1: no '$name - ...' line" "$tmp/page"
    fi
    if [ "$name" = mlpviz ]; then
        missing=""
        for c in $commands; do grep -qE -- "^ +$c( |\$)" "$tmp/page" || missing="$missing $c"; done
        if [ -z "$missing" ]; then ok "mlpviz.1 lists every command"; else
            not_ok "mlpviz.1 misses:$missing" "$tmp/page"
        fi
    else
        c=${name#mlpviz-}
        missing=""
        for o in $("$bin" "$c" --help | grep -oE -- '--[a-z0-9][a-z0-9-]*' | sort -u); do
            grep -qF -- "$o" "$tmp/page" || missing="$missing $o"
        done
        if [ -z "$missing" ]; then ok "$name.1 has every option of mlpviz $c --help"; else
            not_ok "$name.1 misses:$missing"
        fi
    fi
done

# Uninstall: the installed files go, a file of someone else's in the same folders stays.
echo keep >"$p/bin/not-mlpviz"
check "make uninstall with the same DESTDIR" mk uninstall
find "$dest" ! -type d >"$tmp/left"
if [ "$(cat "$tmp/left")" = "$p/bin/not-mlpviz" ]; then
    ok "uninstall removes every file it installed, and only those"
else
    not_ok "after uninstall (want only $p/bin/not-mlpviz)" "$tmp/left"
fi
