/*
 * test_train_bf16.c - one textual-inversion step on the CPU in bf16 against the same step in
 * f32. In bf16 the trainer runs the UNet in bf16 (bf16 frozen weights and activations, f32
 * arithmetic: autograd/cpu/bf16.c) and the first stage, the text encoder, the rows and the loss
 * in f32 (trainer.c). Models: the tiny LDM and SD configs with random weights, and the trained
 * tiny SD model of models/tiny-sd (a TI step proper: a pretrained model, frozen). Same images,
 * captions, timesteps, noise and posterior draw (ti_trainer_step_explicit); also f32 on the
 * weights rounded to bf16 (what bf16 costs through the weights alone). Relative differences
 * are of whole vectors, |a - b| / |b|.
 *
 * Bounds: loss within 2e-2 (the goal); rows gradient within 6e-2 with cosine >= 0.998
 * in every draw. Draw 0 is the default; TI_TRAIN_BF16_DRAWS=n runs draws 0 to n-1 (draw k: noise
 * phase + k, posterior-eps phase + 2k, timesteps 137 + 97k and 811 + 331k mod 1000) and prints
 * their rms. Measured 2026-12-05 (docs/PERF.md "CPU bf16"), draws 0-11: LDM 1.3e-2 to 5.0e-2
 * (rms 3.2e-2), SD random 1.1e-2 to 4.0e-2 (2.5e-2), SD trained (the teal-data-set model) 0.7e-2
 * to 5.3e-2 (2.9e-2); draw 0: 2.0e-2, 4.0e-2, 1.4e-2. PyTorch's own bf16 autocast on the same
 * models and measure (scripts/oracle/bf16_autocast_grad.py): 3.3e-2, 2.9e-2, 3.3e-2 rms. On these
 * narrow models the goal for the gradient, 2e-2 of f32, is not met (nor by that reference;
 * at full size it is: bench_train_step --grad-check, 1.0e-2 / 1.1e-2 rms for SD v1 / LDM, worst
 * 1.55e-2 in 24 draws, docs/PERF.md "The gradient goal at full size"): rounding only the
 * UNet's weights to bf16 moves the gradient by 1.2e-2 to 1.5e-2 rms over draws 0-3 (2.4e-2 in one),
 * the UNet's bf16 activations by about 2.2e-2 more, spread over every op; neither an f32 residual
 * stream (TI_UNET_F32_STREAM=1: rms 3.0e-2, 2.6e-2, 2.1e-2 over the same 12 draws, worst 5.8e-2)
 * nor f32 cross-attention to_k/to_v weights reduced it by more than about 10 %. The bounds catch a
 * wrong kernel (errors of order 1e-1 and more; each op is checked alone within bf16 tolerances by
 * test_backends_cpu_bf16), not that last factor; the dtypes of the stages are checked directly. A
 * second bf16 run must give the bit-identical gradient (the CPU bf16 path is deterministic).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_common.h"
#include "trainer.h"

enum { LDM_RANDOM, SD_RANDOM, SD_TRAINED };
static const char *const CFG[3] = {"configs/tiny/ldm-tiny-finetune.yaml",
                                   "configs/tiny/sd-tiny-finetune.yaml",
                                   "models/tiny-sd/config.yaml"};
static const char *const NAME[3] = {"LDM tiny, random weights", "SD tiny, random weights",
                                    "SD tiny, trained (models/tiny-sd)"};
#define TRAINED_CKPT "models/tiny-sd/model.safetensors"

static char g_dir[256];

/* bounds on the rows gradient, bf16 against f32 (see the header) */
#define GRAD_BOUND 6e-2
#define COS_BOUND  0.998
#define N_DRAWS    1

/* round: every weight rounded to bf16 (stored as f32) */
static int export_model(int which, const char *path, int round) {
    struct ti_err err = {0};
    struct ti_config cfg;
    struct ti_ldm m;
    if (ti_config_load(&cfg, &CFG[which], 1, NULL, 0, &err) != TI_OK ||
        ti_ldm_init(&m, &cfg, &err) != TI_OK ||
        ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &err) != TI_OK ||
        (which == SD_TRAINED ? ti_ldm_load_file(&m, TRAINED_CKPT, NULL, NULL, &err)
                             : ti_ldm_randomize(&m, 4242, &err)) != TI_OK) {
        fprintf(stderr, "export: %s\n", err.msg);
        return -1;
    }
    const struct ti_weights *tabs[3] = {&m.unet_w, &m.vae_w, &m.text_w};
    for (int k = 0; k < 3 && round; k++)
        for (int i = 0; i < tabs[k]->n; i++) {
            const struct ti_tensor *x = tabs[k]->items[i].slot;
            float *v = x->data;
            for (int64_t j = 0; j < ti_tensor_numel(x); j++)
                v[j] = ti_bf16_to_f32(ti_f32_to_bf16(v[j]));
        }
    if (ti_ldm_save(&m, path, &err) != TI_OK) {
        fprintf(stderr, "export: %s\n", err.msg);
        return -1;
    }
    ti_ldm_free(&m);
    return 0;
}

/* One explicit step in dtype dt; *grad gets a malloc'd copy of the rows' gradient. */
static int step(int which, const char *path, enum ti_dtype dt, int draw, double *loss, float **grad,
                size_t *n) {
    struct ti_err err = {0};
    struct ti_config cfg;
    CHECK_OK(ti_config_load(&cfg, &CFG[which], 1, NULL, 0, &err), &err);
    struct ti_trainer_opts o = {.cfg = &cfg,
                                .ckpt_path = path,
                                .be = ti_backend_cpu(),
                                .dtype = dt,
                                .seed = 23,
                                .lr = 5e-3,
                                .vocab_dir = "model/vocab"};
    struct ti_trainer *t = NULL;
    CHECK_OK(ti_trainer_open(&t, &o, &err), &err);
    if (!t) return -1;
    const struct ti_ldm *m = ti_trainer_model(t); /* bf16: only the UNet */
    CHECK(m->unet.time0_w.dtype == dt && m->unet.out_conv.w.dtype == dt);
    CHECK(m->text.tok_emb.dtype == TI_DTYPE_F32 && m->text.final_w.dtype == TI_DTYPE_F32);
    CHECK(m->vae.enc_conv_in.w.dtype == TI_DTYPE_F32 && m->vae.quant_conv.w.dtype == TI_DTYPE_F32);
    enum { B = 2, S = 64 };
    static float img[B * 3 * S * S];
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    img[((b * 3 + c) * S + y) * S + x] =
                        (float)sin(0.11 * x * (c + 1) + 0.07 * y * (b + 1) + c);
    int ch, f;
    ti_trainer_latent_shape(t, &ch, &f);
    size_t nl = (size_t)B * ch * (S / f) * (S / f);
    float *noise = malloc(nl * sizeof *noise), *eps = malloc(nl * sizeof *eps);
    for (size_t i = 0; i < nl; i++) { /* fixed, roughly unit-variance values */
        noise[i] = (float)(1.7 * sin(0.37 * (double)i + 0.5 + draw));
        eps[i] = (float)(1.7 * cos(0.23 * (double)i + 0.1 + 2 * draw));
    }
    const int ts[B] = {(137 + 97 * draw) % 1000, (811 + 331 * draw) % 1000};
    const char *const caps[B] = {"a photo of *", "a rendition of the *"};
    double ls = 0;
    CHECK_OK(ti_trainer_step_explicit(t, img, caps, B, ts, noise, eps, loss, &ls, &err), &err);
    float *g = ti_trainer_grad(t, n);
    *grad = malloc(*n * sizeof **grad);
    memcpy(*grad, g, *n * sizeof **grad);
    free(noise);
    free(eps);
    ti_trainer_close(t);
    return 0;
}

/* draws of timesteps, noise and posterior draw checked per model (TI_TRAIN_BF16_DRAWS overrides) */
static int n_draws(void) {
    const char *e = getenv("TI_TRAIN_BF16_DRAWS");
    int n = e && *e ? atoi(e) : N_DRAWS;
    return n < 1 ? 1 : n;
}

static void check_model(int which) {
    char path[512], path_r[512];
    snprintf(path, sizeof path, "%s/m%d.safetensors", g_dir, which);
    snprintf(path_r, sizeof path_r, "%s/m%d_bf16w.safetensors", g_dir, which);
    CHECK(export_model(which, path, 0) == 0);
    CHECK(export_model(which, path_r, 1) == 0);
    double sum2 = 0, worst = 0;
    int nd = n_draws();
    for (int draw = 0; draw < nd; draw++) {
        double l32 = NAN, l32r = NAN, l16 = NAN, l16b = NAN;
        float *g32 = NULL, *g32r = NULL, *g16 = NULL, *g16b = NULL;
        size_t n32 = 0, n32r = 0, n16 = 0, n16b = 0;
        /* draw 0 also runs f32 on the rounded weights and bf16 twice (determinism) */
        if (step(which, path, TI_DTYPE_F32, draw, &l32, &g32, &n32) ||
            step(which, path, TI_DTYPE_BF16, draw, &l16, &g16, &n16) ||
            (draw == 0 && (step(which, path_r, TI_DTYPE_F32, draw, &l32r, &g32r, &n32r) ||
                           step(which, path, TI_DTYPE_BF16, draw, &l16b, &g16b, &n16b))))
            goto next;
        CHECK(n32 == n16 && n32 > 0);
        if (n32 != n16 || n32 == 0) goto next;
        double c_all, gn;
        double r_all = ti_f32_rel_diff(g16, g32, n32, &c_all, &gn);
        double lrel = fabs(l16 - l32) / fabs(l32);
        printf("  %s, draw %d: loss f32 %.6g, bf16 %.6g (rel %.2e); rows gradient |g| %.3g;\n"
               "    bf16 vs f32 rel diff %.2e (cosine %.6f)\n",
               NAME[which], draw, l32, l16, lrel, gn, r_all, c_all);
        sum2 += r_all * r_all;
        worst = r_all > worst ? r_all : worst;
        CHECK(isfinite(l32) && l32 > 0);
        CHECK(gn > 0); /* a zero gradient would make the comparison empty */
        CHECK(lrel <= 2e-2);
        CHECK(r_all <= GRAD_BOUND);
        CHECK(c_all >= COS_BOUND);
        if (draw == 0) {
            CHECK(n32r == n32);
            if (n32r == n32) {
                double c_act, c_w;
                double r_act = ti_f32_rel_diff(g16, g32r, n32, &c_act, NULL),
                       r_w = ti_f32_rel_diff(g32r, g32, n32, &c_w, NULL);
                printf("    f32 with bf16-rounded weights vs f32 %.2e (%.6f);\n"
                       "    bf16 vs f32 with the same bf16-rounded weights %.2e (%.6f)\n",
                       r_w, c_w, r_act, c_act);
            }
            CHECK(l16b == l16);
            CHECK(n16b == n16 && memcmp(g16b, g16, n16 * sizeof *g16) == 0);
        }
    next:
        free(g32);
        free(g32r);
        free(g16);
        free(g16b);
    }
    printf("  %s: rows gradient rel diff over %d draws: rms %.2e, worst %.2e\n", NAME[which], nd,
           sqrt(sum2 / nd), worst);
    unlink(path);
    unlink(path_r);
}

TEST(ti_step_bf16_vs_f32_ldm) {
    check_model(LDM_RANDOM);
}

TEST(ti_step_bf16_vs_f32_sd) {
    check_model(SD_RANDOM);
}

TEST(ti_step_bf16_vs_f32_sd_trained) {
    check_model(SD_TRAINED);
}

int main(void) {
#ifndef TI_HAVE_ZLIB
    printf("SKIP: built without zlib (the CLIP merges file is gzip'd)\n");
    return TC_SKIP;
#else
    snprintf(g_dir, sizeof g_dir, "/tmp/ti_test_train_bf16_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) return 1;
    RUN(ti_step_bf16_vs_f32_ldm);
    RUN(ti_step_bf16_vs_f32_sd);
    RUN(ti_step_bf16_vs_f32_sd_trained);
    rmdir(g_dir);
    return tc_finish();
#endif
}
