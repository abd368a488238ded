#!/bin/sh
# deps.sh - makes sure the Debian packages ti needs to build and test are installed.
# As root it installs what is missing with apt-get; otherwise it prints the command to run.
# Usage: scripts/deps.sh [--fuzz | --bench | --tidy]
#   --fuzz   adds clang's libFuzzer runtime
#   --bench  adds jemalloc, which PyTorch gets preloaded with in the benchmarks (fair comparison)
#   --tidy   adds clang-tidy (make tidy)
# Optional packages (OPT_PKGS) are installed when missing as root; without root, or when the
# distribution lacks them, the build goes on without them (a note says what is slower).
#   libdnnl-dev  oneDNN: f32 CPU convolutions dispatched on the CPU's features (CMake TI_DNNL)
set -eu
OPT_PKGS="libdnnl-dev"

PKGS="cmake make gcc g++ pkg-config clang-format libopenblas-openmp-dev libhdf5-dev libyaml-dev libexif-dev libwebp-dev libtiff-dev libstb-dev zlib1g-dev libopenmpi-dev openmpi-bin python3 python3-torch python3-numpy python3-h5py python3-pil"
if [ "${1:-}" = "--fuzz" ]; then
    PKGS="$PKGS clang libclang-rt-dev"
fi
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS libjemalloc2"
fi
if [ "${1:-}" = "--tidy" ]; then
    PKGS="$PKGS clang-tidy"
fi

opt_missing=""
for p in $OPT_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        opt_missing="$opt_missing $p"
    fi
done
if [ -n "$opt_missing" ]; then
    if [ "$(id -u)" = "0" ]; then
        echo "deps: installing optional$opt_missing"
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $opt_missing ||
            { apt-get update -qq && apt-get install -y -qq --no-install-recommends $opt_missing; } ||
            echo "deps: optional$opt_missing not installed: CPU convolutions use the built-in paths" >&2
    else
        echo "deps: optional Debian packages missing (CPU convolutions slower without them):$opt_missing" >&2
        echo "deps: run as root:  apt-get install -y$opt_missing" >&2
    fi
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
