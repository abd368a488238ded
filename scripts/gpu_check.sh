#!/bin/sh
# gpu_check.sh - the checks to run first on a lent GPU machine (CUDA toolkit, CMake, no Debian
# -dev packages). Prepare here:  scripts/carry_deps.sh   (libyaml into .deps/), then run there
# from the repository root with .deps carried:
#
#   scripts/gpu_check.sh [OUTDIR]      (OUTDIR defaults to $OUT, else ./gpu-out)
#
# Fits the lent machine's limits (one command at most 10 minutes, 15 minutes of device time
# per session): the whole script ends within GPU_CHECK_SECONDS (default 530 s, under 9 minutes),
# each step under its own cap and never past that deadline, so a run with timeout_s=600 always
# returns its logs. Steps, in order of importance, each logged to OUTDIR:
#   nvidia-smi.txt      the GPU
#   build.log           configure build-gpu for sm_90 with warnings as errors, build everything
#                       and the benchmarks it runs (bench_norm is EXCLUDE_FROM_ALL)    cap 240 s
#   ctest-cuda.log      ctest -L cuda except test_model_full_cuda: every op CUDA vs CPU
#                       in f32, f16, bf16, the CUDA halves of the other tests           cap 90 s
#   sanitizer.log       compute-sanitizer memcheck on test_backends                     cap 90 s
#   bench-norm-{f32,f16,bf16}.txt  norm family timings on the GPU (5 reps)            cap 20 s each
#   ctest-cpu.log       the fast CPU tests (-L cpu -LE slow) on that machine             cap 90 s
#   ctest-model.log     test_model_full_cuda (full-size SD v1 UNet, CUDA vs CPU): the time left
# then prints one line per step and a summary. Exit status: 0 when every step passed (CUDA steps
# on a machine without a GPU are reported as skipped), 1 when any step failed or ran out of time
# (the summary names it), 2 on a usage error.
#
# Knobs (environment): GPU_CHECK_SECONDS (the deadline), GPU_CHECK_BUILD (build directory,
# default build-gpu), GPU_CHECK_CMAKE_ARGS (extra configure arguments), GPU_CHECK_CPU_TESTS
# (a ctest -R regex narrowing the CPU tests).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
O=${1:-${OUT:-$ROOT/gpu-out}}
B=${GPU_CHECK_BUILD:-$ROOT/build-gpu}
BUDGET=${GPU_CHECK_SECONDS:-530}
case $BUDGET in '' | *[!0-9]*) echo "gpu_check: GPU_CHECK_SECONDS must be seconds" >&2; exit 2 ;; esac
mkdir -p "$O" || exit 2
cd "$ROOT" || exit 2
START=$(date +%s)
JOBS=$(nproc)
FAILED=""
SUMMARY=""

# seconds a step may take: its cap, or what is left before the deadline if less (0: none left)
allot() {
    left=$((START + BUDGET - $(date +%s)))
    [ "$left" -lt 0 ] && left=0
    [ "$1" -lt "$left" ] && left=$1
    echo "$left"
}
# record NAME STATUS SECONDS [NOTE]: a step's result (STATUS: ok, skip, or an exit status)
record() {
    case $2 in
    ok) line="ok      $1 ($3 s)" ;;
    skip) line="skip    $1: $4" ;;
    124 | 137) line="FAIL    $1: out of time after $3 s ${4:-}"; FAILED="$FAILED $1" ;;
    *) line="FAIL    $1: exit $2 ($3 s) ${4:-}"; FAILED="$FAILED $1" ;;
    esac
    SUMMARY="$SUMMARY$line
"
    echo "gpu_check: $line"
}
# step NAME CAP LOG COMMAND...: runs COMMAND under its allotted time, output to LOG
step() {
    name=$1 cap=$2 log=$3
    shift 3
    t=$(allot "$cap")
    if [ "$t" -le 0 ]; then
        echo "not run: the ${BUDGET} s budget was spent" >"$log"
        record "$name" 124 0 "(not run: no time left)"
        return 1
    fi
    t0=$(date +%s)
    timeout -k 5 "$t" "$@" >"$log" 2>&1
    rc=$?
    dt=$(($(date +%s) - t0))
    if [ $rc -eq 0 ]; then record "$name" ok "$dt"; else record "$name" "$rc" "$dt" "(see $(basename "$log"))"; fi
    return $rc
}

nvidia-smi >"$O/nvidia-smi.txt" 2>&1
if nvidia-smi -L >/dev/null 2>&1; then GPU=1; else GPU=0; fi

# configure + build (all, plus the benchmarks this script runs)
# shellcheck disable=SC2086
if ! step build 240 "$O/build.log" sh -c "cmake -S . -B '$B' -DTI_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo ${GPU_CHECK_CMAKE_ARGS:-} &&
        cmake --build '$B' -j$JOBS && cmake --build '$B' -j$JOBS --target bench_norm"; then
    tail -40 "$O/build.log"
    printf '%s' "$SUMMARY"
    echo "gpu_check: build failed (build.log); nothing else was run"
    exit 1
fi

# CUDA tests (TI_CUDA_SYNC=1: a CUDA error is caught at the kernel that caused it and names
# its op). On a GPU machine a skipped CUDA test is a failure: it should have run.
t=$(allot 90)
step ctest-cuda 90 "$O/ctest-cuda.log" env TI_CUDA_SYNC=1 ctest --test-dir "$B" --no-tests=error -L cuda \
    -E '^test_model_full_cuda$' --output-on-failure --timeout "$t"
if [ "$GPU" = 1 ] && grep -q "(Skipped)" "$O/ctest-cuda.log"; then
    record ctest-cuda-skips 1 0 "(a GPU is present but CUDA tests were skipped: ctest-cuda.log)"
fi

if [ "$GPU" = 1 ]; then
    SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -n "$SAN" ]; then
        step sanitizer 90 "$O/sanitizer.log" "$SAN" --tool memcheck --error-exitcode 3 \
            "$B/tests/test_backends"
    else
        echo "compute-sanitizer not found" >"$O/sanitizer.log"
        record sanitizer 127 0 "(compute-sanitizer not found)"
    fi
    for dt in f32 f16 bf16; do
        step "bench-norm-$dt" 20 "$O/bench-norm-$dt.txt" "$B/bench/bench_norm" cuda "$dt" 5
    done
else
    record sanitizer skip 0 "no GPU"
    record bench-norm skip 0 "no GPU"
fi

t=$(allot 90)
if [ -n "${GPU_CHECK_CPU_TESTS:-}" ]; then
    step ctest-cpu 90 "$O/ctest-cpu.log" ctest --test-dir "$B" --no-tests=error -L cpu -LE slow -j"$JOBS" \
        --output-on-failure --timeout "$t" -R "$GPU_CHECK_CPU_TESTS"
else
    step ctest-cpu 90 "$O/ctest-cpu.log" ctest --test-dir "$B" --no-tests=error -L cpu -LE slow -j"$JOBS" \
        --output-on-failure --timeout "$t"
fi

# last: the full-size UNet comparison gets whatever time is left
if [ "$GPU" = 1 ]; then
    t=$(allot "$BUDGET")
    step ctest-model "$BUDGET" "$O/ctest-model.log" env TI_CUDA_SYNC=1 ctest --test-dir "$B" --no-tests=error \
        -R '^test_model_full_cuda$' --output-on-failure --timeout "$t"
else
    record ctest-model skip 0 "no GPU"
fi

grep -hE "tests passed|tests failed|\(Failed\)|\(Timeout\)" "$O"/ctest-*.log 2>/dev/null
tail -2 "$O/sanitizer.log" 2>/dev/null
echo "gpu_check: $(($(date +%s) - START)) s of ${BUDGET} s; results in $O"
printf '%s' "$SUMMARY"
if [ -n "$FAILED" ]; then
    echo "gpu_check: FAILED:$FAILED"
    exit 1
fi
echo "gpu_check: every step passed"
exit 0
