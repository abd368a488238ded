/*
 * bench_sample.c - seconds per sampling step of ti-sample's sampler (train/sampler.h) with the
 * full-size SD v1 UNet (random weights, f32): DDIM with classifier-free guidance (one UNet call on
 * the batch [uncond; cond] of 2), batch 1, 77x768 context, latent 64x64 (512 px) by default.
 * The text encoder and the VAE are not part of a step and are not built.
 * Prints one line
 *   RESULT sample_step ti <device> <latent> <median_s_per_step> <fastest_s> <peak_rss_gib> <note>
 * (each timed run of --steps steps, after a one-step warm-up run, gives run time / steps taken;
 * median and fastest over --runs runs; scripts/bench.sh builds the table beside PyTorch's
 * scripts/bench_torch_sample.py).
 *
 * Usage: bench_sample [--size 64] [--steps N] [--runs N] [--plms] [--cuda]
 *   --cuda  on the GPU; without one (or in a build without CUDA) prints "SKIP ..." and exits 77
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "ldm.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"

static int fail(const char *msg) {
    fprintf(stderr, "bench_sample: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    int size = 64, steps = 2, runs = 1, plms = 0, cuda = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--plms"))
            plms = 1;
        else if (!strcmp(argv[i], "--cuda"))
            cuda = 1;
        else {
            fprintf(stderr, "usage: bench_sample [--size 64] [--steps N] [--runs N] [--plms] "
                            "[--cuda]\n");
            return 2;
        }
    }
    if (size < 8 || size % 8 || steps < 1 || runs < 1) return fail("bad --size/--steps/--runs");
    struct ti_err err = {0};
    const struct ti_backend *be = ti_backend_cpu();
    if (cuda && ti_backend_cuda(&be, 0, &err) != TI_OK) {
        printf("SKIP sample_step ti cuda: %s\n", err.msg);
        return 77;
    }
    struct ti_ctx ctx;
    if (ti_ctx_init(&ctx, be, 0, 0) != TI_OK) return fail(ctx.err.msg);
    /* only the UNet of the model: the sampler reads m.unet and m.unet_hp */
    static struct ti_ldm m;
    ti_unet_hparams_sd_v1(&m.unet_hp);
    ti_weights_init(&m.unet_w);
    double t0 = bench_now();
    if (ti_unet_init(&m.unet, &m.unet_hp, TI_LDM_PREFIX_UNET, &m.unet_w, &err) != TI_OK ||
        ti_weights_alloc(&m.unet_w, be, TI_DTYPE_F32, &err) != TI_OK ||
        ti_weights_randomize(&m.unet_w, 1, 1.0, &err) != TI_OK)
        return fail(err.msg);
    double t_init = bench_now() - t0;
    struct ti_schedule s;
    if (ti_schedule_init_linear(&s, 0.00085, 0.0120, 1000, &err) != TI_OK) return fail(err.msg);
    struct ti_rng r;
    ti_rng_seed(&r, 3);
    size_t nc = (size_t)77 * 768, nx = (size_t)4 * size * size;
    float *buf = malloc((nc > nx ? nc : nx) * sizeof(float));
    int64_t cs[3] = {1, 77, 768}, xs[4] = {1, 4, size, size};
    struct ti_tensor cond, uncond, x;
    ti_rng_normal_f32(&r, buf, nc);
    if (ti_ctx_upload(&ctx, &cond, buf, TI_DTYPE_F32, 3, cs) != TI_OK) return fail(ctx.err.msg);
    ti_rng_normal_f32(&r, buf, nc);
    if (ti_ctx_upload(&ctx, &uncond, buf, TI_DTYPE_F32, 3, cs) != TI_OK) return fail(ctx.err.msg);
    struct ti_torch_gen g;
    double *per_step = calloc((size_t)runs + 1, sizeof *per_step);
    double cpu_sum = 0, warm = 0;
    int cpu_steps = 0;
    for (int k = 0; k <= runs; k++) { /* run 0 warms up (one step) */
        int n = k == 0 ? 1 : steps;
        ti_torch_gen_seed(&g, 42);
        ti_torch_randn(&g, buf, nx);
        if (ti_ctx_upload(&ctx, &x, buf, TI_DTYPE_F32, 4, xs) != TI_OK) return fail(ctx.err.msg);
        struct ti_sampler_opts o = {.steps = n, .eta = 0.0, .plms = plms, .scale = 7.5};
        int taken = ti_sampler_n_steps(&s, &o, &err);
        if (taken < 0) return fail(err.msg);
        double a = bench_now(), ca = bench_cpu_now();
        if (ti_sampler_run(&ctx, &m, &s, &o, &cond, &uncond, &x, &g, NULL, NULL, &err) != TI_OK)
            return fail(err.msg);
        if (ti_ctx_sync(&ctx) != TI_OK) return fail(ctx.err.msg);
        per_step[k] = (bench_now() - a) / taken;
        if (k > 0) {
            cpu_sum += bench_cpu_now() - ca;
            cpu_steps += taken;
        } else {
            warm = per_step[0];
        }
        ti_tensor_release(&x);
    }
    qsort(per_step + 1, (size_t)runs, sizeof *per_step, bench_cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT\tsample_step\tti\t%s\t%dx%d\t%.3f\t%.3f\t%.2f\t%s, CFG 7.5\n",
           cuda ? "cuda" : "cpu", size, size, per_step[1 + (runs - 1) / 2], per_step[1],
           (double)ru.ru_maxrss / (1 << 20), plms ? "PLMS" : "DDIM");
    fprintf(stderr,
            "(ti: init with random weights %.1f s, warm-up step %.1f s, %d timed runs of %d "
            "steps, process CPU time %.1f s/step)\n",
            t_init, warm, runs, steps, cpu_sum / cpu_steps);
    ti_tensor_release(&cond);
    ti_tensor_release(&uncond);
    ti_unet_free(&m.unet);
    ti_weights_free(&m.unet_w);
    ti_ctx_free(&ctx);
    free(buf);
    free(per_step);
    return 0;
}
