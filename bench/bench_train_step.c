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
 * Usage: bench_train_step [--config FILE] [--latent N] [--steps N] [--dtype f32|bf16]
 *                         [--checkpoint] [--cuda]
 *   --dtype D     the trainer's dtype (default f32; bf16: bf16 UNet, f32 text encoder and VAE)
 *   --latent N    latent side (the image is 8N pixels; default: the config's, 64 for SD v1)
 *   --checkpoint  recompute UNet blocks in the backward (trainer option checkpointing)
 *   --cuda        run on the GPU; without one (or without CUDA in this build) prints
 *                 "SKIP ..." and exits 77
 */
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
                            "[--dtype f32|bf16] [--checkpoint] [--cuda]\n";

int main(int argc, char **argv) {
    const char *cfg_path = "configs/stable-diffusion/v1-finetune.yaml";
    int latent = 0, steps = 3, ckpt = 0, cuda = 0;
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
        else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (steps < 1 || latent < 0 || latent % 8) {
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
    double t0 = bench_now();
    struct ti_trainer *t;
    if (ti_trainer_open(&t, &o, &err) != TI_OK) return fail(err.msg);
    double t_open = bench_now() - t0;
    double rss_open = bench_peak_rss_gib();

    int S = cfg.pixel_size;
    size_t n = (size_t)3 * S * S;
    float *img = malloc(n * sizeof *img);
    if (!img) return fail("out of memory");
    struct ti_rng r;
    ti_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++)
        img[i] = 2.0f * (float)ti_rng_uniform(&r) - 1.0f;
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
