/*
 * bench_unet.c - full-size SD v1 UNet (859.5M parameters, random weights, f32) on the CPU:
 * one textual-inversion step's UNet work, forward + backward with the gradient flowing to the
 * context only (the weights are frozen: no weight gradients), batch 1, 77x768 context.
 * Prints the median step time, GFLOP/s (forward + input-grad = 0.369 TFLOP at 32x32 and 1.733 at
 * 64x64, cpu-anchors.md) and memory: weights, peak activation-arena bytes, peak RSS.
 *
 * --dtype bf16: bf16 weights and activations (f32 arithmetic; cpu/bf16.c), as GPU runs train;
 * with --f32-stream the latent is passed in f32, so the residual stream is f32 (unet.h; ti-train
 * with TI_UNET_F32_STREAM=1).
 *
 * Usage: bench_unet [--size 32|64] [--steps N] [--checkpoint] [--forward-only] [--dtype f32|bf16]
 *                   [--f32-stream]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h> /* defines: mallinfo2 */
#endif

#include "bench_util.h"
#include "cpu_info.h"
#include "rng.h"
#include "tape.h"
#include "unet.h"

static int fail(struct ti_err *err) {
    fprintf(stderr, "bench_unet: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv) {
    int size = 32, steps = 3, ckpt = 0, fwd_only = 0, f32_stream = 0;
    enum ti_dtype dt = TI_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--checkpoint"))
            ckpt = 1;
        else if (!strcmp(argv[i], "--forward-only"))
            fwd_only = 1;
        else if (!strcmp(argv[i], "--f32-stream"))
            f32_stream = 1;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc && !strcmp(argv[i + 1], "f32"))
            dt = TI_DTYPE_F32, i++;
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc && !strcmp(argv[i + 1], "bf16"))
            dt = TI_DTYPE_BF16, i++;
        else {
            fprintf(stderr,
                    "usage: bench_unet [--size 32|64] [--steps N] [--checkpoint] [--forward-only] "
                    "[--dtype f32|bf16] [--f32-stream]\n");
            return 2;
        }
    }
    struct ti_ctx ctx;
    if (ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0) != TI_OK) return fail(&ctx.err);
    char cpu[512];
    ti_cpu_describe(cpu, sizeof cpu);
    fprintf(stderr, "ti: %s\n", cpu);
    struct ti_unet_hparams hp;
    ti_unet_hparams_sd_v1(&hp);
    hp.use_checkpoint = ckpt;
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_unet u;
    double t0 = bench_now();
    if (ti_unet_init(&u, &hp, "model.diffusion_model.", &w, &ctx.err) != TI_OK ||
        ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err) != TI_OK ||
        ti_weights_randomize(&w, 1, 1.0, &ctx.err) != TI_OK)
        return fail(&ctx.err);
    double t_init = bench_now() - t0;
    struct ti_rng r;
    ti_rng_seed(&r, 2);
    int64_t xs[4] = {1, 4, size / 1, size / 1}, cs[3] = {1, 77, 768}, ts[1] = {1};
    float *buf = malloc((size_t)77 * 768 * sizeof(float) > (size_t)4 * size * size * sizeof(float)
                            ? (size_t)77 * 768 * sizeof(float)
                            : (size_t)4 * size * size * sizeof(float));
    struct ti_tensor x, c, t, gc;
    ti_rng_normal_f32(&r, buf, (size_t)4 * size * size);
    struct ti_tensor x32, c32;
    if (ti_ctx_upload(&ctx, &x32, buf, TI_DTYPE_F32, 4, xs) != TI_OK) return fail(&ctx.err);
    ti_rng_normal_f32(&r, buf, (size_t)77 * 768);
    if (ti_ctx_upload(&ctx, &c32, buf, TI_DTYPE_F32, 3, cs) != TI_OK) return fail(&ctx.err);
    enum ti_dtype xdt = f32_stream ? TI_DTYPE_F32 : dt;
    if (ti_copy(&ctx, &x, &x32, xdt) != TI_OK || ti_copy(&ctx, &c, &c32, dt) != TI_OK)
        return fail(&ctx.err);
    ti_tensor_release(&x32);
    ti_tensor_release(&c32);
    float tv = 500.0f;
    if (ti_ctx_upload(&ctx, &t, &tv, TI_DTYPE_F32, 1, ts) != TI_OK) return fail(&ctx.err);
    if (ti_ctx_zeros(&ctx, &gc, dt, 3, cs) != TI_OK) return fail(&ctx.err);
    struct ti_tape *tape;
    if (ti_tape_init(&tape, &ctx.err) != TI_OK) return fail(&ctx.err);
    double *times = calloc((size_t)steps + 1, sizeof *times);
    double *cpus = calloc((size_t)steps + 1, sizeof *cpus);
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        double a = bench_now(), ca = bench_cpu_now();
        struct ti_tensor out;
        if (!fwd_only) {
            ctx.tape = tape;
            if (ti_tape_watch(&ctx, &c, &gc) != TI_OK) return fail(&ctx.err);
        } else {
            ctx.tape = NULL;
        }
        if (ti_unet_forward(&ctx, &out, &u, &x, &t, &c) != TI_OK) return fail(&ctx.err);
        if (!fwd_only) {
            /* seed gradient: d loss / d out for loss = mean(out^2) is out * 2/n; any seed works */
            if (ti_tape_backward(&ctx, &out, &out) != TI_OK) return fail(&ctx.err);
        }
        ti_tensor_release(&out);
        times[s] = bench_now() - a;
        cpus[s] = bench_cpu_now() - ca;
    }
    qsort(times + 1, (size_t)steps, sizeof *times, bench_cmp_double);
    qsort(cpus + 1, (size_t)steps, sizeof *cpus, bench_cmp_double);
    double med = times[1 + steps / 2];
    double tflop = fwd_only ? (size == 64 ? 0.803 : 0.180) : (size == 64 ? 1.733 : 0.369);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("| ti %s | %dx%d | %s%s | %.3f s | %.0f GFLOP/s | weights %.2f GiB (+ %.2f GiB oneDNN "
           "copies) | activations peak %.2f "
           "GiB | "
           "peak RSS %.2f GiB |\n",
           ti_dtype_name(dt), size, size, fwd_only ? "forward" : "forward + input-grad",
           ckpt ? " (recompute)" : "", med, tflop * 1e3 / med,
           (double)ti_arena_stats(w.arena).reserved / (1 << 30),
           (double)ti_cpu_weight_cache_bytes() / (1 << 30),
           (double)ti_arena_stats(ctx.act).peak / (1 << 30), (double)ru.ru_maxrss / (1 << 20));
    fprintf(stderr, "(memory: activation arena %.2f GiB reserved, scratch arena %.2f GiB reserved",
            (double)ti_arena_stats(ctx.act).reserved / (1 << 30),
            (double)ti_arena_stats(ctx.scratch).reserved / (1 << 30));
#ifdef __GLIBC__
    struct mallinfo2 mi = mallinfo2();
    fprintf(stderr, "; malloc heap %.2f GiB, of it in use %.2f GiB, mapped %.2f GiB",
            (double)mi.arena / (1 << 30), (double)mi.uordblks / (1 << 30),
            (double)mi.hblkhd / (1 << 30));
#endif
    fprintf(stderr, ")\n");
    fprintf(stderr,
            "(init with random weights %.1f s, %d timed steps; process CPU time per step "
            "%.3f s, the load-independent figure on a shared machine)\n",
            t_init, steps, cpus[1 + steps / 2]);
    ti_tape_free(&tape);
    ti_tensor_release(&x);
    ti_tensor_release(&c);
    ti_tensor_release(&t);
    ti_tensor_release(&gc);
    ti_unet_free(&u);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    free(buf);
    free(times);
    free(cpus);
    return 0;
}
