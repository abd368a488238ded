/*
 * bench_train_step.c - one full-size textual-inversion training step of ti-train's trainer
 * (train/trainer.h) on SD v1 (configs/stable-diffusion/v1-finetune.yaml, random weights, f32),
 * batch 1, 512x512 image (64x64 latent): VAE encode + posterior sample (frozen, not recorded),
 * the CLIP text encoder with the placeholder row substituted, the UNet eps forward, the MSE, the
 * backward to the placeholder row through UNet and text encoder (every weight frozen), AdamW on
 * the row (ti_trainer_forward_backward + ti_trainer_optimizer_step).
 * The weights come from ti_ldm_randomize (trainer option random_weights): no checkpoint file.
 *
 * Prints one line
 *   RESULT train_step ti <latent> <median_s> <fastest_s> <peak_rss_gib> <act_peak_gib> <opts>
 * (median and fastest of the timed steps after one warm-up step; peak RSS = VmHWM of the whole
 * process, model initialisation included) and timings of the parts on stderr.
 *
 * With --grad-check N it times nothing: it measures how far the bf16 path's gradient is from
 * f32's at this size (issue 10's "embedding gradient within 2e-2 of f32", which
 * tests/test_train_bf16.c measures on the tiny models). N explicit steps (fixed image, caption,
 * timestep, noise and posterior draw per draw k: ti_trainer_step_explicit) in f32, then the same
 * N in bf16 on the same random weights (rounded to bf16 for the UNet), and per draw the rows
 * gradient's |g_bf16 - g_f32| / |g_f32| and cosine; then
 *   RESULT train_grad ti <latent> <rms over draws> <worst> <draws>
 *
 * Usage: bench_train_step [--config FILE] [--latent N] [--steps N] [--dtype f32|bf16]
 *                         [--checkpoint] [--cuda] [--grad-check N]
 *   --dtype D     the trainer's dtype (default f32; bf16: bf16 UNet, f32 text encoder and VAE)
 *   --latent N    latent side (the image is 8N pixels; default: the config's, 64 for SD v1)
 *   --checkpoint  recompute UNet blocks in the backward (trainer option checkpointing)
 *   --cuda        run on the GPU; without one (or without CUDA in this build) prints
 *                 "SKIP ..." and exits 77
 *   --grad-check N bf16 against f32, draws 0 to N-1 (above); --dtype and --steps are unused
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "config.h"
#include "rng.h"
#include "trainer.h"

static int fail(const char *msg) {
    fprintf(stderr, "bench_train_step: %s\n", msg);
    return 1;
}

static const char USAGE[] = "usage: bench_train_step [--config FILE] [--latent N] [--steps N] "
                            "[--dtype f32|bf16] [--checkpoint] [--cuda] [--grad-check N]\n";

/* Draw k of --grad-check: timestep and the latent noise / posterior draw, fixed functions of k
 * (as test_train_bf16's draws). */
static void grad_draw(int k, float *noise, float *eps, size_t nl, int *ts) {
    for (size_t i = 0; i < nl; i++) {
        noise[i] = (float)(1.7 * sin(0.37 * (double)i + 0.5 + k));
        eps[i] = (float)(1.7 * cos(0.23 * (double)i + 0.1 + 2 * k));
    }
    *ts = (137 + 331 * k) % 1000;
}

/* --grad-check: N draws in f32 then in bf16, compared draw by draw. */
static int grad_check(struct ti_trainer_opts *o, const float *img, int draws) {
    struct ti_err err = {0};
    const char *caption[1] = {"a photo of *"};
    float *g[2] = {NULL, NULL}, *noise = NULL, *eps = NULL;
    double *loss = calloc(2 * (size_t)draws, sizeof *loss);
    size_t n = 0;
    const enum ti_dtype dts[2] = {TI_DTYPE_F32, TI_DTYPE_BF16};
    for (int p = 0; p < 2; p++) {
        o->dtype = dts[p];
        struct ti_trainer *t;
        double a = bench_now();
        if (ti_trainer_open(&t, o, &err) != TI_OK) return fail(err.msg);
        int ch, f;
        ti_trainer_latent_shape(t, &ch, &f);
        size_t nl = (size_t)ch * (o->cfg->pixel_size / f) * (o->cfg->pixel_size / f);
        if (!noise) {
            noise = malloc(nl * sizeof *noise);
            eps = malloc(nl * sizeof *eps);
        }
        for (int k = 0; k < draws; k++) {
            int ts;
            double ls;
            grad_draw(k, noise, eps, nl, &ts);
            ti_trainer_zero_grad(t);
            if (ti_trainer_step_explicit(t, img, caption, 1, &ts, noise, eps, &loss[p * draws + k],
                                         &ls, &err) != TI_OK)
                return fail(err.msg);
            float *gr = ti_trainer_grad(t, &n);
            if (!g[p]) g[p] = malloc((size_t)draws * n * sizeof(float));
            memcpy(g[p] + (size_t)k * n, gr, n * sizeof(float));
        }
        fprintf(stderr, "(%s: %d draws in %.1f s, open included)\n", p ? "bf16" : "f32", draws,
                bench_now() - a);
        ti_trainer_close(t);
    }
    double sum2 = 0, worst = 0;
    for (int k = 0; k < draws; k++) {
        double cosv, norm;
        double r = ti_f32_rel_diff(g[1] + (size_t)k * n, g[0] + (size_t)k * n, n, &cosv, &norm);
        int ts;
        grad_draw(k, noise, eps, 0, &ts);
        printf("draw %d (t %d): loss f32 %.6g bf16 %.6g; |g| %.3g; rows gradient bf16 vs f32 %.2e "
               "(cosine %.6f)\n",
               k, ts, loss[k], loss[draws + k], norm, r, cosv);
        sum2 += r * r;
        worst = r > worst ? r : worst;
    }
    printf("RESULT\ttrain_grad\tti\t%dx%d\t%.3e\t%.3e\t%d\n", o->cfg->pixel_size / 8,
           o->cfg->pixel_size / 8, sqrt(sum2 / draws), worst, draws);
    free(g[0]);
    free(g[1]);
    free(noise);
    free(eps);
    free(loss);
    return 0;
}

int main(int argc, char **argv) {
    const char *cfg_path = "configs/stable-diffusion/v1-finetune.yaml";
    int latent = 0, steps = 3, ckpt = 0, cuda = 0, grad_draws = 0;
    enum ti_dtype dt = TI_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--latent") && i + 1 < argc)
            latent = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "f32"))
                dt = TI_DTYPE_F32;
            else if (!strcmp(argv[i], "bf16"))
                dt = TI_DTYPE_BF16;
            else {
                fprintf(stderr, "bench_train_step: --dtype %s; expected f32 or bf16\n%s", argv[i],
                        USAGE);
                return 2;
            }
        } else if (!strcmp(argv[i], "--checkpoint"))
            ckpt = 1;
        else if (!strcmp(argv[i], "--cuda"))
            cuda = 1;
        else if (!strcmp(argv[i], "--grad-check") && i + 1 < argc)
            grad_draws = atoi(argv[++i]);
        else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (steps < 1 || latent < 0 || latent % 8 || grad_draws < 0) {
        fprintf(stderr, "bench_train_step: --steps must be >= 1 and --latent a multiple of 8\n%s",
                USAGE);
        return 2;
    }
    struct ti_err err = {0};
    const struct ti_backend *be = ti_backend_cpu();
    if (cuda && ti_backend_cuda(&be, 0, &err) != TI_OK) {
        printf("SKIP train_step cuda: %s\n", err.msg);
        return 77;
    }
    char over[64];
    const char *overs[1] = {over};
    snprintf(over, sizeof over, "model.params.image_size=%d", latent);
    struct ti_config cfg;
    if (ti_config_load(&cfg, &cfg_path, 1, overs, latent ? 1 : 0, &err) != TI_OK)
        return fail(err.msg);
    struct ti_trainer_opts o = {.cfg = &cfg,
                                .be = be,
                                .dtype = dt,
                                .seed = 23,
                                .lr = ti_config_learning_rate(&cfg, 1),
                                .checkpointing = ckpt,
                                .random_weights = 1,
                                .random_seed = 1};
    int S = cfg.pixel_size;
    size_t n = (size_t)3 * S * S;
    float *img = malloc(n * sizeof *img);
    if (!img) return fail("out of memory");
    struct ti_rng r;
    ti_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++)
        img[i] = 2.0f * (float)ti_rng_uniform(&r) - 1.0f;
    if (grad_draws) {
        int rc = grad_check(&o, img, grad_draws);
        free(img);
        return rc;
    }

    double t0 = bench_now();
    struct ti_trainer *t;
    if (ti_trainer_open(&t, &o, &err) != TI_OK) return fail(err.msg);
    double t_open = bench_now() - t0;
    double rss_open = bench_peak_rss_gib();
    const char *caption[1] = {"a photo of *"};

    double *times = calloc((size_t)steps + 1, sizeof *times);
    double fb_sum = 0, opt_sum = 0, loss = 0, cpu0 = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up (arenas grow once) */
        if (s == 1) cpu0 = bench_cpu_now();
        double a = bench_now();
        if (ti_trainer_forward_backward(t, img, caption, 1, &loss, &err) != TI_OK)
            return fail(err.msg);
        double b = bench_now();
        if (ti_trainer_optimizer_step(t, &err) != TI_OK) return fail(err.msg);
        double c = bench_now();
        times[s] = c - a;
        if (s > 0) {
            fb_sum += b - a;
            opt_sum += c - b;
        }
    }
    double cpu_step = (bench_cpu_now() - cpu0) / steps;
    qsort(times + 1, (size_t)steps, sizeof *times, bench_cmp_double);
    struct ti_arena_stats as = ti_arena_stats(ti_trainer_ctx(t)->act);
    int lat = S / 8;
    printf("RESULT\ttrain_step\tti\t%dx%d\t%.3f\t%.3f\t%.2f\t%.2f\t%s%s\n", lat, lat,
           times[1 + (steps - 1) / 2], times[1], bench_peak_rss_gib(), (double)as.peak / (1 << 30),
           ckpt ? "recompute" : "-", dt == TI_DTYPE_BF16 ? ",bf16" : "");
    fprintf(
        stderr,
        "(ti: open with random weights %.1f s, peak RSS after open %.2f GiB; warm-up step "
        "%.1f s; mean forward+backward %.3f s, AdamW %.6f s over %d steps, process CPU time %.1f "
        "s/step; last loss %.4f)\n",
        t_open, rss_open, times[0], fb_sum / steps, opt_sum / steps, steps, cpu_step, loss);
    ti_trainer_close(t);
    free(img);
    free(times);
    return 0;
}
