#!/usr/bin/env bash
# scripts/bench.sh - `make bench`: CPU op benchmarks of ti beside PyTorch, as Markdown tables.
#
#   scripts/bench.sh <builddir>        (make bench builds <builddir>/bench/bench_ops first)
#
# Runs <builddir>/bench/bench_ops (ti) and scripts/bench_torch_ops.py (Debian python3-torch,
# /usr/bin/python3) on the same ops and sizes in the same run, twice:
#   1. with the environment as set (this workplace sets OPENBLAS_CORETYPE=Haswell and
#      OPENBLAS_L2_SIZE, which halves OpenBLAS SGEMM on its Zen CPUs), and
#   2. with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in the benchmark commands only
#      (as on users' machines).
#   3. with OPENBLAS_CORETYPE=Prescott (a wrong, older core: ti's kernel choice must not depend
#      on it; its start-up line, under "ti stderr", says which kernels it uses).
# PyTorch also runs the conv under CPU autocast to bf16 (rows "... bf16-autocast").
# Both programs print `RESULT op pass median_ms gflop min_ms max_ms` lines (median of
# BENCH_REPS timed runs after BENCH_WARMUP untimed ones); an op one side cannot run is printed
# as "<op>: unavailable (<reason>)" and the rest still runs.
# PyTorch runs with jemalloc preloaded when libjemalloc.so.2 is installed (as the project's CPU
# anchors were measured: with glibc malloc its fresh-page faults make it several times slower),
# with page decay off (MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1: freed pages are kept,
# not returned to the kernel; on this VM the default decay alone made attention 3.7x slower);
# the header says which allocator it had. ti reuses its arenas (no fresh memory after warm-up).
#
# Each side runs BENCH_ROUNDS times, alternating ti and PyTorch; a row shows the median of the
# rounds' medians and, in parentheses, the fastest single run (the machine may be shared: the
# fastest run is the least disturbed one).
# Environment: BENCH_REPS (5), BENCH_WARMUP (2), BENCH_ROUNDS (3), BENCH_THREADS (nproc),
# BENCH_PYTHON (/usr/bin/python3), BENCH_ONLY (conv | attention: one op only), BENCH_OPS (1; 0
# skips the op tables).
#
# Then the full-size SD v1 sections (random weights, minutes each, 4-9 GiB; BENCH_FULL=0 skips
# them all), each ti beside PyTorch in the same run:
#   - the UNet forward + input-grad (bench_unet / bench_torch_unet.py): BENCH_UNET_SIZES, _STEPS;
#   - one textual-inversion training step at 64x64 latents (bench_train_step /
#     bench_torch_train.py): BENCH_TRAIN_LATENT, _STEPS, _RECOMPUTE;
#   - the bf16 step's embedding gradient against f32's (bench_train_step --grad-check; ti only):
#     BENCH_GRAD_DRAWS;
#   - one DDIM sampling step with guidance, batch 1, on the CPU and on the GPU where there is one
#     (bench_sample / bench_torch_sample.py): BENCH_SAMPLE_SIZES, _STEPS, _RUNS, BENCH_CUDA.
# Each is documented where it runs, below.
set -euo pipefail

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$BUILD/bench/bench_ops"
PY=${BENCH_PYTHON:-/usr/bin/python3}
REPS=${BENCH_REPS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2}
THREADS=${BENCH_THREADS:-$(nproc)}
ONLY_ARGS=()
if [ -n "${BENCH_ONLY:-}" ]; then ONLY_ARGS=(--only "$BENCH_ONLY"); fi

if [ "${BENCH_OPS:-1}" != 0 ] && [ ! -x "$BIN" ]; then
    echo "bench.sh: $BIN not found; build it with: cmake --build $BUILD --target ti_benchmarks" >&2
    exit 2
fi

JEMALLOC=""
for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
           /usr/lib/libjemalloc.so.2; do
    if [ -e "$lib" ]; then JEMALLOC=$lib; break; fi
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
sockets=$(lscpu 2>/dev/null | sed -n 's/^Socket(s):[[:space:]]*//p' | head -1)
cores_per=$(lscpu 2>/dev/null | sed -n 's/^Core(s) per socket:[[:space:]]*//p' | head -1)
tpc=$(lscpu 2>/dev/null | sed -n 's/^Thread(s) per core:[[:space:]]*//p' | head -1)
echo "# ti benchmarks beside PyTorch (f32)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: ${model:-unknown CPU}, ${sockets:-?} socket(s) x ${cores_per:-?} core(s) x ${tpc:-?} thread(s), $(nproc) CPUs online, $(free -g 2>/dev/null | awk '/^Mem:/ {print $2}') GiB"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "- threads: ti OMP_NUM_THREADS=$THREADS, PyTorch torch.set_num_threads($THREADS)"
if [ -n "$JEMALLOC" ]; then alloc="jemalloc ($JEMALLOC preloaded, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1)"; else alloc="glibc malloc (libjemalloc2 not installed)"; fi
echo "- PyTorch: $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not importable'), allocator: $alloc; ti: its own arenas"
echo "- ratio = ti / PyTorch medians (< 1: ti faster)"
if [ "${BENCH_OPS:-1}" != 0 ]; then
    echo "- op tables: $ROUNDS rounds alternating ti and PyTorch, each the median of $REPS runs after $WARMUP warm-up runs;"
    echo "  a cell is the median of the round medians (fastest single run)"
    echo "- FLOP counted: conv 2*Cout*Cin*9*H*W per forward, input-grad backward 1x forward;"
    echo "  attention 4*B*NH*Tq*Tk*D per forward; backward 2x forward for PyTorch (keeps P),"
    echo "  2.5x for ti (recomputes P from the saved log-sum-exp): GFLOP/s is each side's own count"
fi

# run_mode <label> [env -u args...]: ROUNDS rounds, each running ti then PyTorch (alternating,
# so a change of machine load hits both sides alike), then one table: per row the median of the
# round medians and the fastest single run.
run_mode() {
    local label=$1
    shift
    local envargs=("$@")
    echo
    echo "## $label"
    echo
    : > "$TMP/ti.txt"
    : > "$TMP/torch.txt"
    : > "$TMP/ti.err"
    : > "$TMP/torch.err"
    for ((round = 1; round <= ROUNDS; round++)); do
        env "${envargs[@]}" OMP_NUM_THREADS="$THREADS" "$BIN" --reps "$REPS" --warmup "$WARMUP" \
            "${ONLY_ARGS[@]}" >> "$TMP/ti.txt" 2>> "$TMP/ti.err" || true
        env "${envargs[@]}" ${JEMALLOC:+LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1} "$PY" "$ROOT/scripts/bench_torch_ops.py" \
            --reps "$REPS" --warmup "$WARMUP" --threads "$THREADS" "${ONLY_ARGS[@]}" \
            >> "$TMP/torch.txt" 2>> "$TMP/torch.err" || true
    done
    awk -F'\t' '
        BEGIN {
            # rows in a fixed order (conv first), whichever side printed them
            n = split("conv2d\tforward|conv2d\tforward+input-grad|attention\tforward|attention\tforward+input-grad", pre, "|")
            for (i = 1; i <= n; i++) { order[i] = pre[i]; seen[pre[i]] = 1 }
        }
        { side = FILENAME == ARGV[1] ? 1 : 2 }
        $1 == "RESULT" {
            key = $2 "\t" $3
            if (!(key in seen)) { seen[key] = 1; order[++n] = key }
            c = ++cnt[side, key]
            med[side, key, c] = $4 + 0; gf[side, key] = $5
            if (!((side, key) in best) || $6 + 0 < best[side, key]) best[side, key] = $6 + 0
            next
        }
        /: unavailable \(/ { if (!(side SUBSEP $0 in noted)) { noted[side, $0] = 1; note[++nn] = (side == 1 ? "ti " : "PyTorch ") $0 } }
        function median(side, key,    c, i, j, t, a) {
            c = cnt[side, key]
            if (c == 0) return ""
            for (i = 1; i <= c; i++) a[i] = med[side, key, i]
            for (i = 2; i <= c; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return c % 2 ? a[(c + 1) / 2] : 0.5 * (a[c / 2] + a[c / 2 + 1])
        }
        END {
            print "| op | pass | ti ms (fastest) | ti GFLOP/s | PyTorch ms (fastest) | PyTorch GFLOP/s | ti / PyTorch |"
            print "|---|---|---:|---:|---:|---:|---:|"
            for (i = 1; i <= n; i++) {
                k = order[i]; split(k, f, "\t")
                t = median(1, k); p = median(2, k)
                if (t == "" && p == "") continue
                ts = t == "" ? "-" : sprintf("%.1f (%.1f)", t, best[1, k])
                ps = p == "" ? "-" : sprintf("%.1f (%.1f)", p, best[2, k])
                tg = t != "" && t > 0 ? sprintf("%.1f", gf[1, k] / t * 1e3) : "-"
                pg = p != "" && p > 0 ? sprintf("%.1f", gf[2, k] / p * 1e3) : "-"
                r = t != "" && p != "" && p > 0 ? sprintf("%.2f", t / p) : "-"
                printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], ts, tg, ps, pg, r
            }
            for (i = 1; i <= nn; i++) printf "\n%s\n", note[i]
        }' "$TMP/ti.txt" "$TMP/torch.txt"
    echo
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    if [ -s "$TMP/ti.err" ]; then echo; echo "ti stderr:"; sort -u "$TMP/ti.err" | sed 's/^/    /'; fi
    if [ -s "$TMP/torch.err" ]; then echo; echo "PyTorch stderr:"; sort -u "$TMP/torch.err" | sed 's/^/    /' | tail -5; fi
}

if [ "${BENCH_OPS:-1}" != 0 ]; then
    run_mode "Environment as set (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>})"
    run_mode "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (benchmark commands only)" \
        -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
    # a wrong, older core (what OpenBLAS 0.3.21 picks by itself on CPU models newer than its
    # table): ti must notice (its stderr line names the core and the GEMM it chose) and stay as fast
    run_mode "OPENBLAS_CORETYPE=Prescott (a wrong, older core; both sides)" \
        -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Prescott
fi

# The full-size sections below take minutes each (and 4-9 GiB of memory); BENCH_FULL=0 skips
# all three.
FULL=${BENCH_FULL:-1}
TORCH_ENV=(${JEMALLOC:+LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1} OMP_NUM_THREADS="$THREADS")

# ---- the full-size SD v1 UNet (one textual-inversion step's UNet work) -----------------------
# BENCH_UNET_SIZES (default "32"; "32 64" adds the 512-px latent, several minutes), BENCH_UNET_STEPS (2).
# Per size and pass (forward + input-grad, then forward only): ti f32, ti bf16 (bf16 weights and
# activations, f32 arithmetic), PyTorch f32 and PyTorch under CPU bf16 autocast, then the CPU-speed
# goals as ratios of step times (ti bf16 / PyTorch f32 <= 0.5 in both passes) and ti bf16's peak
# RSS (<= 3 GB). Each row also prints the process CPU time per step on stderr (collected below
# the table): on a shared machine that is the load-independent figure, and the ratios are
# given for both. BENCH_UNET_CKPT=1 adds ti's recompute-per-block rows.
UNET_BIN="$BUILD/bench/bench_unet"
if [ "$FULL" != 0 ] && [ -x "$UNET_BIN" ] && [ "${BENCH_UNET_SIZES-32}" != "" ]; then
    echo
    echo "## Full-size SD v1 UNet, batch 1, backward to the context (frozen weights)"
    echo
    echo "| who | latent | pass | step (median) | GFLOP/s | weights | activation peak | peak RSS | CPU s/step |"
    echo "|---|---|---|---:|---:|---|---|---|---:|"
    UT=$(mktemp -d)
    unet_row() { # tag, command...: prints the row with the CPU time appended, keeps both
        local tag=$1
        shift
        "$@" >"$UT/out" 2>"$UT/err" || true
        local cpu
        cpu=$(sed -n 's/.*CPU time per step \([0-9.]*\) s.*/\1/p' "$UT/err" | tail -n 1)
        if grep -q '^|' "$UT/out"; then
            sed "s/\$/ ${cpu:--} |/" "$UT/out" | grep '^|'
            local wall
            wall=$(grep '^|' "$UT/out" | awk -F'|' '{ gsub(/[ s]/, "", $5); print $5 }')
            local rss
            rss=$(grep '^|' "$UT/out" | sed -n 's/.*peak RSS \([0-9.]*\) GiB.*/\1/p')
            echo "$tag ${wall:-} ${cpu:-} ${rss:-}" >>"$UT/figs"
        else
            echo "| $tag: $(head -c 200 "$UT/out" "$UT/err" | tr '\n' ' ') | | | | | | | | |"
        fi
    }
    UNET_TORCH_ENV=(env ${JEMALLOC:+LD_PRELOAD=$JEMALLOC MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1} OMP_NUM_THREADS="$THREADS")
    STEPS=${BENCH_UNET_STEPS:-2}
    for size in ${BENCH_UNET_SIZES-32}; do
        for pass in full fwd; do
            PF=()
            if [ "$pass" = fwd ]; then PF=(--forward-only); fi
            unet_row "ti-f32-$size-$pass" env OMP_NUM_THREADS="$THREADS" "$UNET_BIN" --size "$size" --steps "$STEPS" --dtype f32 "${PF[@]}"
            unet_row "ti-bf16-$size-$pass" env OMP_NUM_THREADS="$THREADS" "$UNET_BIN" --size "$size" --steps "$STEPS" --dtype bf16 "${PF[@]}"
            if [ "${BENCH_UNET_CKPT:-0}" = 1 ] && [ "$pass" = full ]; then
                unet_row "ti-f32-ckpt-$size" env OMP_NUM_THREADS="$THREADS" "$UNET_BIN" --size "$size" --steps "$STEPS" --checkpoint
            fi
            unet_row "torch-f32-$size-$pass" "${UNET_TORCH_ENV[@]}" "$PY" "$ROOT/scripts/bench_torch_unet.py" --size "$size" --steps "$STEPS" "${PF[@]}"
            unet_row "torch-bf16-$size-$pass" "${UNET_TORCH_ENV[@]}" "$PY" "$ROOT/scripts/bench_torch_unet.py" --size "$size" --steps "$STEPS" --bf16-autocast "${PF[@]}"
        done
    done
    echo
    echo "CPU-speed goals (ratio of step times, wall clock / process CPU time; goal <= 0.5; RSS goal <= 3 GB):"
    echo
    echo "| latent | pass | ti f32 / PyTorch f32 | ti bf16 / PyTorch f32 | ti bf16 / PyTorch bf16 autocast | ti bf16 peak RSS |"
    echo "|---|---|---:|---:|---:|---:|"
    for size in ${BENCH_UNET_SIZES-32}; do
        for pass in full fwd; do
            awk -v s="$size" -v p="$pass" '
                { w[$1] = $2; c[$1] = $3; r[$1] = $4 }
                function ratio(a, b) {
                    if (!(a in w) || !(b in w) || w[b] + 0 <= 0 || c[b] + 0 <= 0) return "-"
                    return sprintf("%.2f / %.2f", w[a] / w[b], c[a] / c[b])
                }
                END {
                    tf = "ti-f32-" s "-" p; tb = "ti-bf16-" s "-" p
                    pf = "torch-f32-" s "-" p; pb = "torch-bf16-" s "-" p
                    rss = (tb in r) && r[tb] != "" ? sprintf("%.2f GiB = %.2f GB%s", r[tb], r[tb] * 1.073741824, r[tb] * 1.073741824 <= 3 ? "" : " (over)") : "-"
                    printf "| %sx%s | %s | %s | %s | %s | %s |\n", s, s, p == "full" ? "forward + input-grad" : "forward", ratio(tf, pf), ratio(tb, pf), ratio(tb, pb), rss
                }' "$UT/figs" 2>/dev/null || true
        done
    done
    rm -rf "$UT"
fi

# rc_note <status> <file>: a failed run (not a SKIP, 77) leaves a note for pair_table; 137 is a
# SIGKILL, usually the kernel's out-of-memory killer.
rc_note() {
    if [ "$1" != 77 ]; then echo "exited with status $1" >> "$2"; fi
}

# pair_table <ti file> <torch file> <first column name> <key field count>: one row per ti RESULT
# line, beside PyTorch's line with the same key (fields 4 .. 3+keys: latent, or device and
# latent); then seconds (fastest), peak RSS and the ratio of the medians. SKIP lines and errors
# become notes under the table.
pair_table() {
    awk -F'\t' -v keys="$4" -v head="$3" '
        { side = FILENAME == ARGV[1] ? 1 : 2 }
        $1 == "RESULT" {
            k = $4; for (i = 5; i < 4 + keys; i++) k = k " " $i
            j = 3 + keys
            if (side == 1) { n++; tk[n] = k; tmed[n] = $(j + 1); tfast[n] = $(j + 2); trss[n] = $(j + 3)
                             tvar[n] = (keys == 1 && $(j + 5) != "-") ? " (" $(j + 5) ")" : "" }
            else if (!(k in pmed)) { pmed[k] = $(j + 1); pfast[k] = $(j + 2); prss[k] = $(j + 3); pnote = $NF }
            next
        }
        /^SKIP|^bench_|^exited with status|Error|error/ { note[++nn] = (side == 1 ? "ti: " : "PyTorch: ") $0 }
        END {
            printf "| %s | ti s/step (fastest) | ti peak RSS | PyTorch s/step (fastest) | PyTorch peak RSS | ti / PyTorch |\n", head
            print "|---|---:|---:|---:|---:|---:|"
            for (i = 1; i <= n; i++) {
                k = tk[i]
                p = (k in pmed) ? sprintf("%.2f (%.2f) | %.2f GiB", pmed[k], pfast[k], prss[k]) : "- | -"
                r = (k in pmed) && pmed[k] > 0 ? sprintf("%.2f", tmed[i] / pmed[k]) : "-"
                printf "| %s%s | %.2f (%.2f) | %.2f GiB | %s | %s |\n", k, tvar[i], tmed[i], tfast[i], trss[i], p, r
            }
            for (k in pmed) { found = 0; for (i = 1; i <= n; i++) if (tk[i] == k) found = 1
                              if (!found) printf "| %s | - | - | %.2f (%.2f) | %.2f GiB | - |\n", k, pmed[k], pfast[k], prss[k] }
            if (pnote != "") printf "\nPyTorch: %s\n", pnote
            for (i = 1; i <= nn; i++) printf "\n%s\n", note[i]
        }' "$1" "$2"
}

# ---- one textual-inversion training step, full-size SD v1 (issue: training step vs the peer) ---
# BENCH_TRAIN_LATENT (64: the 512-px image; "" skips), BENCH_TRAIN_STEPS (3 timed steps after a
# warm-up), BENCH_TRAIN_RECOMPUTE (0; 1 adds ti with UNet recomputation).
TRAIN_BIN="$BUILD/bench/bench_train_step"
if [ "$FULL" != 0 ] && [ -x "$TRAIN_BIN" ] && [ -n "${BENCH_TRAIN_LATENT-64}" ]; then
    steps=${BENCH_TRAIN_STEPS:-3}
    echo
    echo "## Textual-inversion training step: full-size SD v1, CPU, batch 1, random weights"
    echo
    echo "One optimizer step of configs/stable-diffusion/v1-finetune.yaml: VAE encode of the 512x512"
    echo "image + posterior sample (frozen, no grad), CLIP text encoder with the placeholder row, UNet eps"
    echo "forward, MSE, backward to the row only, AdamW. ti: build/bench/bench_train_step (train/trainer.h);"
    echo "PyTorch: scripts/bench_torch_train.py (the peer's code path: in-place row substitution at the"
    echo "token embeddings, UNet without gradient checkpointing as the peer runs it). Median of $steps"
    echo "steps after a warm-up step (fastest in parentheses); peak RSS of the whole process."
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    echo
    : > "$TMP/train_ti.txt"
    : > "$TMP/train_torch.txt"
    for lat in ${BENCH_TRAIN_LATENT-64}; do
        OMP_NUM_THREADS="$THREADS" "$TRAIN_BIN" --config "$ROOT/configs/stable-diffusion/v1-finetune.yaml" \
            --latent "$lat" --steps "$steps" >> "$TMP/train_ti.txt" 2>&1 || rc_note $? "$TMP/train_ti.txt"
        if [ "${BENCH_TRAIN_RECOMPUTE:-0}" != 0 ]; then
            OMP_NUM_THREADS="$THREADS" "$TRAIN_BIN" --config "$ROOT/configs/stable-diffusion/v1-finetune.yaml" \
                --latent "$lat" --steps "$steps" --checkpoint >> "$TMP/train_ti.txt" 2>&1 || rc_note $? "$TMP/train_ti.txt"
        fi
        env "${TORCH_ENV[@]}" "$PY" "$ROOT/scripts/bench_torch_train.py" --latent "$lat" --steps "$steps" \
            >> "$TMP/train_torch.txt" 2>&1 || rc_note $? "$TMP/train_torch.txt"
    done
    pair_table "$TMP/train_ti.txt" "$TMP/train_torch.txt" latent 1
    echo
    grep -h '^(' "$TMP/train_ti.txt" "$TMP/train_torch.txt" || true
    echo
    echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
fi

# ---- the bf16 step's embedding gradient against f32's, full-size SD v1 (the CPU-speed issue's
# accuracy goal: within 2e-2 relative). BENCH_GRAD_DRAWS (4; 0 skips): draws of timestep, noise
# and posterior sample (bench_train_step --grad-check), each run in f32 and in bf16.
if [ "$FULL" != 0 ] && [ -x "$TRAIN_BIN" ] && [ "${BENCH_GRAD_DRAWS:-4}" != 0 ]; then
    echo
    echo "## bf16 against f32: the textual-inversion step's embedding gradient, full-size SD v1"
    echo
    echo "bench_train_step --grad-check ${BENCH_GRAD_DRAWS:-4} (random weights, 64x64 latents, batch 1): per"
    echo "draw the rows gradient's |g_bf16 - g_f32| / |g_f32|; goal <= 2e-2."
    echo
    OMP_NUM_THREADS="$THREADS" "$TRAIN_BIN" --config "$ROOT/configs/stable-diffusion/v1-finetune.yaml" \
        --grad-check "${BENCH_GRAD_DRAWS:-4}" > "$TMP/grad.txt" 2>&1 || rc_note $? "$TMP/grad.txt"
    echo '```'
    grep -v '^RESULT' "$TMP/grad.txt" || true
    echo '```'
    awk '$1 == "RESULT" && $2 == "train_grad" {
        printf "\nrms over %d draws %.2e, worst %.2e: goal <= 2e-2 %s\n", $7, $5, $6,
               $6 <= 2e-2 ? "met in every draw" : ($5 <= 2e-2 ? "met in rms, not in every draw" : "NOT met")
    }' "$TMP/grad.txt"
fi

# ---- ti-sample's sampling step: full-size SD v1 UNet, DDIM with guidance, batch 1 -------------
# BENCH_SAMPLE_SIZES (default "64": the 512-px latent; "" skips), BENCH_SAMPLE_STEPS (2 steps per
# timed run), BENCH_SAMPLE_RUNS (1 timed run after a one-step warm-up run), BENCH_CUDA (1: also
# the GPU, reported as SKIP where there is none; 0: CPU only).
SAMPLE_BIN="$BUILD/bench/bench_sample"
if [ "$FULL" != 0 ] && [ -x "$SAMPLE_BIN" ] && [ -n "${BENCH_SAMPLE_SIZES-64}" ]; then
    sargs=(--steps "${BENCH_SAMPLE_STEPS:-2}" --runs "${BENCH_SAMPLE_RUNS:-1}")
    echo
    echo "## Sampling step (ti-sample): full-size SD v1 UNet, DDIM + classifier-free guidance 7.5, batch 1"
    echo
    echo "One DDIM step = one UNet forward on the batch [uncond; cond] of 2 (77x768 contexts) + the"
    echo "guidance and DDIM update. ti: build/bench/bench_sample (train/sampler.h); PyTorch:"
    echo "scripts/bench_torch_sample.py (the reference p_sample_ddim arithmetic, no grad). Random weights."
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
    echo
    : > "$TMP/sample_ti.txt"
    : > "$TMP/sample_torch.txt"
    devs="cpu"
    if [ "${BENCH_CUDA:-1}" != 0 ]; then devs="cpu cuda"; fi
    for size in ${BENCH_SAMPLE_SIZES-64}; do
        for dev in $devs; do
            dflag=()
            if [ "$dev" = cuda ]; then dflag=(--cuda); fi
            OMP_NUM_THREADS="$THREADS" "$SAMPLE_BIN" --size "$size" "${sargs[@]}" "${dflag[@]}" \
                >> "$TMP/sample_ti.txt" 2>&1 || rc_note $? "$TMP/sample_ti.txt"
            env "${TORCH_ENV[@]}" "$PY" "$ROOT/scripts/bench_torch_sample.py" --size "$size" "${sargs[@]}" \
                "${dflag[@]}" >> "$TMP/sample_torch.txt" 2>&1 || rc_note $? "$TMP/sample_torch.txt"
        done
    done
    pair_table "$TMP/sample_ti.txt" "$TMP/sample_torch.txt" "device, latent" 2
    echo
    grep -h '^(' "$TMP/sample_ti.txt" "$TMP/sample_torch.txt" || true
    echo
    echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
fi
