#!/bin/sh
# carry_deps.sh - unpacks the Debian packages ti's GPU tests need into .deps/ (git-ignored), for
# a machine that has the CUDA toolkit but no Debian -dev packages and no registry (the lent GPU
# machine). Run it here (it needs apt-get's package lists, not root), then carry .deps/ along:
# CMake looks in .deps/usr when a library is not installed system-wide.
#
#   scripts/carry_deps.sh [PACKAGE ...]     default: libyaml (the peer's configs, which
#                                           test_model_full needs; 0.3 MB)
# e.g. add OpenBLAS for a faster CPU reference (40 MB of the 64 MiB a run may carry):
#   scripts/carry_deps.sh libyaml-0-2 libyaml-dev libopenblas0-openmp libopenblas-openmp-dev libgfortran5
#
# Only headers and shared libraries are kept (dpkg -x, no maintainer scripts; static archives
# and usr/share are dropped). The build's RPATH points at .deps/usr/lib/..., so the test
# binaries find the libraries without LD_LIBRARY_PATH.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKGS=${*:-"libyaml-0-2 libyaml-dev"}
DL=$(mktemp -d)
trap 'rm -rf "$DL"' EXIT
mkdir -p "$ROOT/.deps"
# shellcheck disable=SC2086
(cd "$DL" && apt-get download $PKGS)
for deb in "$DL"/*.deb; do
    dpkg -x "$deb" "$ROOT/.deps"
    echo "carry_deps: unpacked $(basename "$deb")"
done
find "$ROOT/.deps" -name '*.a' -delete
rm -rf "$ROOT/.deps/usr/share"
du -sh "$ROOT/.deps"
