#!/bin/sh
# format.sh - clang-format every C and CUDA source in place (or --check: fail on differences).
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' '*.cu')
if [ "${1:-}" = "--check" ]; then
    exec clang-format --dry-run --Werror $files
fi
exec clang-format -i $files
