#!/bin/sh
# install-deps.sh: installs the Debian packages mlpviz needs, only those that are missing.
# Idempotent; uses apt-get as root, sudo otherwise. Usage: scripts/install-deps.sh [PACKAGE...]
# (default: the build and test packages).
set -eu

# protobuf-c and libonnx-dev build the ONNX reader (its C code is generated from onnx.proto);
# libonnx-testdata holds the conformance cases of the test suite; Open MPI (libopenmpi-dev,
# openmpi-bin) builds and runs the jobs of several processes (make MPI=1, tests/cli_mpi_*.sh);
# libgif-dev writes the animations of visualize --gif; help2man makes the man pages of make
# install, and groff renders them in the install test.
default="gcc make libc6-dev binutils libcmocka-dev libstb-dev pkg-config python3 \
    libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata libgif-dev \
    libopenmpi-dev openmpi-bin"
packages=${*:-"$default help2man groff-base"}

missing=""
for p in $packages; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo"
else
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run as root or install sudo, or install them yourself:" >&2
    echo "  apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once, then install.
$run apt-get update -qq >&2 || echo "install-deps: apt-get update failed; trying anyway" >&2
# shellcheck disable=SC2086
if ! $run apt-get install -y -qq --no-install-recommends $missing >&2; then
    echo "install-deps: apt-get could not install:$missing" >&2
    exit 1
fi
