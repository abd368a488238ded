#!/bin/sh
# deps.sh - makes sure the Debian packages ti needs to build and test are installed.
# As root it installs what is missing with apt-get; otherwise it prints the command to run.
# Usage: scripts/deps.sh [--fuzz | --bench | --tidy]
#   --fuzz   adds clang's libFuzzer runtime
#   --bench  adds jemalloc, which PyTorch gets preloaded with in the benchmarks (fair comparison)
#   --tidy   adds clang-tidy (make tidy)
set -eu

PKGS="cmake make gcc g++ pkg-config clang-format libopenblas-openmp-dev libhdf5-dev libyaml-dev libexif-dev libstb-dev zlib1g-dev libopenmpi-dev openmpi-bin python3 python3-torch python3-numpy python3-h5py python3-pil"
if [ "${1:-}" = "--fuzz" ]; then
    PKGS="$PKGS clang libclang-rt-dev"
fi
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS libjemalloc2"
fi
if [ "${1:-}" = "--tidy" ]; then
    PKGS="$PKGS clang-tidy"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" = "0" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root:  apt-get install -y$missing" >&2
    exit 1
fi
