#!/bin/sh
# gpu_check.sh - the checks to run first on a lent GPU machine (CUDA toolkit, CMake, no Debian
# -dev packages). Prepare here:  scripts/carry_deps.sh   (libyaml into .deps/), then run there
# from the repository root with .deps carried:
#
#   scripts/gpu_check.sh [OUTDIR]      (OUTDIR defaults to $OUT, else ./gpu-out)
#
# Configures build-gpu for sm_90 with warnings as errors, builds, and writes to OUTDIR:
#   nvidia-smi.txt, build.log, ctest-cuda.log   (ctest -L cuda: every op CUDA vs CPU in f32, f16,
#                                                bf16; the full-size SD v1 UNet CUDA vs CPU)
#   sanitizer.log                               (compute-sanitizer memcheck on test_backends)
#   bench-norm-{f32,f16,bf16}.txt               (norm family timings on the GPU)
#   ctest-cpu.log                               (the fast CPU tests on that machine)
# and prints a summary. Exit status: non-zero when the build or a CUDA test failed.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
O=${1:-${OUT:-$ROOT/gpu-out}}
B=$ROOT/build-gpu
mkdir -p "$O"
cd "$ROOT" || exit 1
nvidia-smi >"$O/nvidia-smi.txt" 2>&1
JOBS=$(nproc)
if ! { cmake -S . -B "$B" -DTI_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$B" -j"$JOBS"; } >"$O/build.log" 2>&1; then
    tail -40 "$O/build.log"
    echo "gpu_check: build failed (build.log)"
    exit 1
fi
# TI_CUDA_SYNC=1: a CUDA error is caught at the kernel that caused it and names its op
(cd "$B" && TI_CUDA_SYNC=1 ctest -L cuda --output-on-failure --timeout 1200) >"$O/ctest-cuda.log" 2>&1
cuda_rc=$?
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$SAN" ]; then
    timeout 900 "$SAN" --tool memcheck --error-exitcode 3 "$B/tests/test_backends" \
        >"$O/sanitizer.log" 2>&1
    echo "compute-sanitizer exit $?" >>"$O/sanitizer.log"
else
    echo "compute-sanitizer not found" >"$O/sanitizer.log"
fi
for dt in f32 f16 bf16; do
    timeout 300 "$B/bench/bench_norm" cuda "$dt" 20 >"$O/bench-norm-$dt.txt" 2>&1
done
(cd "$B" && ctest -L cpu -LE slow --timeout 900) >"$O/ctest-cpu.log" 2>&1
grep -E "tests passed|Failed|Skipped" "$O/ctest-cuda.log" "$O/ctest-cpu.log"
if nvidia-smi -L >/dev/null 2>&1 && grep -q "Skipped" "$O/ctest-cuda.log"; then
    echo "gpu_check: a GPU is present but CUDA tests were skipped (see ctest-cuda.log)"
    cuda_rc=1
fi
tail -2 "$O/sanitizer.log" 2>/dev/null
exit $cuda_rc
