#!/bin/sh
# fuzz.sh - runs every libFuzzer harness of a TI_FUZZ build for a while and reports executions
# and crashes.
#
#   scripts/fuzz.sh <builddir> <seconds per harness>      (make fuzz calls it)
#
# Each harness starts from a copy of its committed seed corpus (tests/fuzz/corpus/<name>/) in
# fuzz-out/<name>/corpus (git-ignored), so new inputs never pollute the repository; crash, leak,
# timeout and out-of-memory reproducers land in fuzz-out/<name>/. Prints one line per harness:
#   fuzz_zip: 1234567 executions in 300 s, 0 crashes, corpus 85 -> 412 inputs
# and exits 1 if any harness found a crash.
set -eu

build=${1:?usage: scripts/fuzz.sh <builddir> <seconds>}
secs=${2:?usage: scripts/fuzz.sh <builddir> <seconds>}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/fuzz-out
status=0

for name in zip pickle safetensors; do
    bin=$build/tests/fuzz/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "fuzz.sh: $bin is missing (configure with CC=clang -DTI_FUZZ=ON)" >&2
        exit 2
    fi
    dir=$out/$name
    mkdir -p "$dir/corpus"
    cp -n "$root"/tests/fuzz/corpus/$name/* "$dir/corpus/" 2>/dev/null || true
    before=$(ls "$dir/corpus" | wc -l)
    log=$dir/log.txt
    # -rss_limit_mb: a reader that allocates without bounds is a finding, not a slow run
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="$dir/" "$dir/corpus" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    crashes=$(find "$dir" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
    after=$(ls "$dir/corpus" | wc -l)
    echo "fuzz_$name: ${execs:-0} executions in $secs s, $crashes crashes, corpus $before -> $after inputs"
    if [ "$crashes" -ne 0 ] || [ -z "$execs" ]; then
        status=1
        echo "  see $log and the reproducers in $dir/" >&2
    fi
done
exit $status
