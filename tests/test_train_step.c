/*
 * test_train_step.c - train/trainer.h.
 *
 *   oracle_{sd,ldm}_{f32,f64}: one training step on the tiny SD and LDM models equals the peer's
 *     step in PyTorch (tests/fixtures/train_step_{sd,ldm}.h5, written by
 *     scripts/oracle/train_step.py with the reference repository's own modules: its
 *     EmbeddingManager, FrozenCLIPEmbedder / BERTEmbedder, UNetModel, the first stage's Encoder +
 *     quant_conv + DiagonalGaussianDistribution, the noise schedule and torch.optim.AdamW):
 *     the init vectors, the loss, the gradient of the placeholder rows and the rows after AdamW.
 *     The model weights are not in the fixture: they are ti_ldm_randomize(MODEL_SEED), written by
 *     `test_train_step --export DIR` for the script; the fixture holds their checksum.
 *   same_seed_bitwise: two runs with the same seed give the same rows, bit for bit.
 *   resume_bitwise: save_state in the middle of a gradient accumulation, load_state in a new
 *     trainer, and the run continues exactly as the uninterrupted one.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "h5util.h"
#include "io_test_util.h"
#include "safetensors.h"
#include "schedule.h"
#include "test_common.h"
#include "trainer.h"

#define MODEL_SEED 4242
#define PP         "model.params.personalization_config.params."

static const char *const CFG[2] = {"configs/tiny/ldm-tiny-finetune.yaml",
                                   "configs/tiny/sd-tiny-finetune.yaml"};
static const char *const MODEL_FILE[2] = {"train_step_ldm.safetensors",
                                          "train_step_sd.safetensors"};

static char g_dir[256] = "/tmp";

static void model_path(char *buf, size_t n, int clip) {
    snprintf(buf, n, "%s/%s", g_dir, MODEL_FILE[clip]);
}

/* The tiny model with ti_ldm_randomize(MODEL_SEED) weights, saved for the trainer (and for the
 * oracle script); *wsum gets the sum of every parameter (the fixture's checksum). */
static int export_model(int clip, double *wsum) {
    struct ti_err err = {0};
    struct ti_config cfg;
    struct ti_ldm m;
    if (ti_config_load(&cfg, &CFG[clip], 1, NULL, 0, &err) != TI_OK ||
        ti_ldm_init(&m, &cfg, &err) != TI_OK ||
        ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &err) != TI_OK ||
        ti_ldm_randomize(&m, MODEL_SEED, &err) != TI_OK) {
        fprintf(stderr, "export: %s\n", err.msg);
        return -1;
    }
    double s = 0;
    const struct ti_weights *tabs[3] = {&m.unet_w, &m.vae_w, &m.text_w};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < tabs[k]->n; i++) {
            const struct ti_tensor *x = tabs[k]->items[i].slot;
            const float *v = x->data;
            for (int64_t j = 0; j < ti_tensor_numel(x); j++)
                s += v[j];
        }
    if (wsum) *wsum = s;
    char path[512];
    model_path(path, sizeof path, clip);
    ti_status st = ti_ldm_save(&m, path, &err);
    if (st != TI_OK) fprintf(stderr, "export: %s\n", err.msg);
    ti_ldm_free(&m);
    return st == TI_OK ? 0 : -1;
}

struct run {
    struct ti_config cfg;
    struct ti_trainer *t;
};

static int open_run(struct run *r, int clip, const char *const *over, int n_over, enum ti_dtype dt,
                    uint64_t seed, double lr) {
    struct ti_err err = {0};
    memset(r, 0, sizeof *r);
    CHECK_OK(ti_config_load(&r->cfg, &CFG[clip], 1, over, n_over, &err), &err);
    char path[512];
    model_path(path, sizeof path, clip);
    struct ti_trainer_opts o = {.cfg = &r->cfg,
                                .ckpt_path = path,
                                .be = ti_backend_cpu(),
                                .dtype = dt,
                                .seed = seed,
                                .lr = lr,
                                .vocab_dir = "model/vocab"};
    CHECK_OK(ti_trainer_open(&r->t, &o, &err), &err);
    return r->t ? 0 : -1;
}

/* ---- the oracle -------------------------------------------------------------------------------
 */

static double *need(hid_t f, const char *name, long *n) {
    double *v = NULL;
    int nd = 0;
    int64_t shape[6];
    CHECK(h5u_read(f, name, &v, &nd, shape) == 0);
    long c = 1;
    for (int i = 0; i < nd; i++)
        c *= (long)shape[i];
    if (n) *n = c;
    return v;
}

static double absmax(const double *v, long n) {
    double m = 0;
    for (long i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    return m;
}

static void run_oracle(int clip, enum ti_dtype dt) {
    const char *fx = clip ? "tests/fixtures/train_step_sd.h5" : "tests/fixtures/train_step_ldm.h5";
    hid_t f = h5u_open(fx);
    CHECK(f >= 0);
    if (f < 0) return;
    double a[4];
    CHECK(h5u_attr(f, "/", "num_vectors_per_token", a, 1) == 1);
    int nvec = (int)a[0];
    CHECK(h5u_attr(f, "/", "lr", a, 1) == 1);
    double lr = a[0];
    CHECK(h5u_attr(f, "/", "weights_sum", a, 1) == 1);
    double wsum_want = a[0];
    CHECK(h5u_attr(f, "/", "model_seed", a, 1) == 1 && (int)a[0] == MODEL_SEED);
    char cap[2][256];
    CHECK(h5u_attr_str(f, "/", "caption0", cap[0], sizeof cap[0]) == 0);
    CHECK(h5u_attr_str(f, "/", "caption1", cap[1], sizeof cap[1]) == 0);
    double wsum = 0;
    CHECK(export_model(clip, &wsum) == 0);
    if (fabs(wsum - wsum_want) > 1e-6 * fabs(wsum_want) + 1e-6) {
        fprintf(stderr,
                "the tiny model's random weights changed (sum %.9g, fixture %.9g): regenerate "
                "%s (tests/fixtures/README.md)\n",
                wsum, wsum_want, fx);
        CHECK(0);
        h5u_close(f);
        return;
    }
    char over[128];
    snprintf(over, sizeof over, PP "num_vectors_per_token=%d", nvec);
    const char *ov[] = {over};
    struct run r;
    if (open_run(&r, clip, ov, 1, dt, 1, lr)) {
        h5u_close(f);
        return;
    }
    long n_img, n_noise, n_eps, n_t, n_rows, n_grad, n_after;
    double *img = need(f, "images", &n_img), *noise = need(f, "noise", &n_noise),
           *eps = need(f, "posterior_eps", &n_eps), *ts = need(f, "t", &n_t),
           *rows0 = need(f, "rows_init", &n_rows), *grad = need(f, "grad", &n_grad),
           *after = need(f, "rows_after", &n_after), *loss = need(f, "loss", NULL);
    if (!img || !noise || !eps || !ts || !rows0 || !grad || !after || !loss) goto done;
    float *imgf = malloc((size_t)n_img * sizeof *imgf), *nf = malloc((size_t)n_noise * sizeof *nf),
          *ef = malloc((size_t)n_eps * sizeof *ef);
    int tsi[2];
    for (long i = 0; i < n_img; i++)
        imgf[i] = (float)img[i];
    for (long i = 0; i < n_noise; i++)
        nf[i] = (float)noise[i];
    for (long i = 0; i < n_eps; i++)
        ef[i] = (float)eps[i];
    CHECK(n_t == 2);
    tsi[0] = (int)ts[0];
    tsi[1] = (int)ts[1];
    struct ti_emb_manager *em = ti_trainer_embeddings(r.t);
    CHECK(em->n_rows * em->dim == n_rows);
    double *got = malloc((size_t)n_rows * sizeof *got);
    /* the init vectors: the peer's EmbeddingManager (CLIP: token + position 0) */
    for (long i = 0; i < n_rows; i++)
        got[i] = em->rows[i];
    CHECK(tc_check_close(got, rows0, n_rows, 1e-7, 1e-6, "rows_init", __FILE__, __LINE__));
    const char *caps[2] = {cap[0], cap[1]};
    struct ti_err err = {0};
    double l = 0, ls = 0;
    CHECK_OK(ti_trainer_step_explicit(r.t, imgf, caps, 2, tsi, nf, ef, &l, &ls, &err), &err);
    /* f32: twenty-odd layers in single precision. f64: both sides are double except the
     * timestep sinusoid, which openaimodel (and ti) compute in float32 from float32 arguments as
     * large as 999 rad: libm's sinf and torch's vectorised sin differ in the last bit there,
     * which reaches the loss at ~1e-9 and the small gradient elements at ~1e-10 absolute. */
    int f32 = dt == TI_DTYPE_F32;
    CHECK(tc_check_close(&l, loss, 1, 0, f32 ? 2e-5 : 1e-8, "loss", __FILE__, __LINE__));
    size_t ng;
    float *g = ti_trainer_grad(r.t, &ng);
    CHECK((long)ng == n_grad);
    for (long i = 0; i < n_grad; i++)
        got[i] = g[i];
    double gm = absmax(grad, n_grad);
    CHECK(gm > 0);
    CHECK(tc_check_close(got, grad, n_grad, (f32 ? 2e-4 : 1e-7) * gm, f32 ? 2e-3 : 1e-5, "grad",
                         __FILE__, __LINE__));
    float *g1 = malloc(ng * sizeof *g1);
    memcpy(g1, g, ng * sizeof *g1);
    /* nothing of the step stays alive in the activation pool */
    CHECK(ti_arena_stats(ti_trainer_ctx(r.t)->act).live_blocks == 0);
    CHECK_OK(ti_trainer_optimizer_step(r.t, &err), &err);
    CHECK(ti_trainer_step(r.t) == 1);
    for (long i = 0; i < n_after; i++)
        got[i] = em->rows[i];
    /* one AdamW step moves each row element by about lr: 1e-4 of it is far below */
    CHECK(tc_check_close(got, after, n_after, 1e-4 * lr, 1e-6, "rows_after", __FILE__, __LINE__));
    if (f32) {
        /* gradient accumulation: the same micro-batch twice sums to 2g exactly, and the step
         * divides by the count, so the rows are those of the single micro-batch, bit for bit */
        struct run r2;
        if (open_run(&r2, clip, ov, 1, dt, 1, lr) == 0) {
            for (int k = 0; k < 2; k++)
                CHECK_OK(
                    ti_trainer_step_explicit(r2.t, imgf, caps, 2, tsi, nf, ef, NULL, NULL, &err),
                    &err);
            float *g2 = ti_trainer_grad(r2.t, NULL);
            int same = 1;
            for (size_t i = 0; i < ng; i++)
                same &= g2[i] == 2 * g1[i];
            CHECK(same);
            CHECK_OK(ti_trainer_optimizer_step(r2.t, &err), &err);
            struct ti_emb_manager *em2 = ti_trainer_embeddings(r2.t);
            CHECK(memcmp(em2->rows, em->rows, ng * sizeof(float)) == 0);
            /* with nothing accumulated the step does nothing */
            CHECK_OK(ti_trainer_optimizer_step(r2.t, &err), &err);
            CHECK(ti_trainer_step(r2.t) == 1);
            ti_trainer_close(r2.t);
        }
    }
    free(g1);
    free(got);
    free(imgf);
    free(nf);
    free(ef);
done:
    free(img);
    free(noise);
    free(eps);
    free(ts);
    free(rows0);
    free(grad);
    free(after);
    free(loss);
    ti_trainer_close(r.t);
    h5u_close(f);
}

TEST(oracle_sd_f32) {
    run_oracle(1, TI_DTYPE_F32);
}
TEST(oracle_sd_f64) {
    run_oracle(1, TI_DTYPE_F64);
}
TEST(oracle_ldm_f32) {
    run_oracle(0, TI_DTYPE_F32);
}
TEST(oracle_ldm_f64) {
    run_oracle(0, TI_DTYPE_F64);
}

/* ---- unfreeze_model (pivotal tuning) ------------------------------------------------------- */

static const char *const PTI_KEYS[] = {
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
    "model.diffusion_model.output_blocks.1.1.proj_out.bias",
    "model.diffusion_model.out.0.weight",
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
    "cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.q_proj.bias",
    "cond_stage_model.transformer.text_model.final_layer_norm.bias",
};
static const char *const OV_PTI[] = {"model.params.unfreeze_model=true",
                                     "model.params.model_lr=0.001"};

static struct ti_tensor *find_weight(struct ti_trainer *t, const char *key) {
    struct ti_ldm *m = ti_trainer_model(t);
    struct ti_weights *tabs[3] = {&m->unet_w, &m->text_w, &m->vae_w};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < tabs[k]->n; i++)
            if (strcmp(tabs[k]->items[i].key, key) == 0) return tabs[k]->items[i].slot;
    return NULL;
}

TEST(oracle_sd_unfrozen) {
    hid_t f = h5u_open("tests/fixtures/train_step_sd_unfrozen.h5");
    CHECK(f >= 0);
    if (f < 0) return;
    double a[1], lr = 0, model_lr = 0;
    CHECK(h5u_attr(f, "/", "lr", &lr, 1) == 1);
    CHECK(h5u_attr(f, "/", "model_lr", &model_lr, 1) == 1 && model_lr == 0.001);
    CHECK(h5u_attr(f, "/", "model_seed", a, 1) == 1 && (int)a[0] == MODEL_SEED);
    char cap[2][256];
    CHECK(h5u_attr_str(f, "/", "caption0", cap[0], sizeof cap[0]) == 0);
    CHECK(h5u_attr_str(f, "/", "caption1", cap[1], sizeof cap[1]) == 0);
    CHECK(export_model(1, NULL) == 0);
    struct run r;
    if (open_run(&r, 1, OV_PTI, 2, TI_DTYPE_F32, 1, lr)) {
        h5u_close(f);
        return;
    }
    CHECK(ti_trainer_n_model_params(r.t) > 50);
    long n_img, n_noise, n_eps;
    double *img = need(f, "images", &n_img), *noise = need(f, "noise", &n_noise),
           *eps = need(f, "posterior_eps", &n_eps), *ts = need(f, "t", NULL),
           *loss = need(f, "loss", NULL);
    float *imgf = malloc((size_t)n_img * sizeof *imgf), *nf = malloc((size_t)n_noise * sizeof *nf),
          *ef = malloc((size_t)n_eps * sizeof *ef);
    for (long i = 0; i < n_img; i++)
        imgf[i] = (float)img[i];
    for (long i = 0; i < n_noise; i++)
        nf[i] = (float)noise[i];
    for (long i = 0; i < n_eps; i++)
        ef[i] = (float)eps[i];
    int tsi[2] = {(int)ts[0], (int)ts[1]};
    const char *caps[2] = {cap[0], cap[1]};
    struct ti_err err = {0};
    double l = 0;
    /* the token table is not trained: a row of it stays as it was */
    struct ti_tensor *tok = &ti_trainer_model(r.t)->text.tok_emb;
    float row320[32];
    memcpy(row320, (const float *)tok->data + 320 * 32, sizeof row320);
    CHECK_OK(ti_trainer_step_explicit(r.t, imgf, caps, 2, tsi, nf, ef, &l, NULL, &err), &err);
    CHECK(tc_check_close(&l, loss, 1, 0, 2e-5, "loss", __FILE__, __LINE__));
    size_t nk = sizeof PTI_KEYS / sizeof PTI_KEYS[0];
    double **gref = calloc(nk, sizeof *gref);
    long *nref = calloc(nk, sizeof *nref);
    for (size_t k = 0; k < nk; k++) {
        char ds[256];
        snprintf(ds, sizeof ds, "params/%s/grad", PTI_KEYS[k]);
        gref[k] = need(f, ds, &nref[k]);
        if (!gref[k]) continue;
        float *g = malloc((size_t)nref[k] * sizeof *g);
        double *gd = malloc((size_t)nref[k] * sizeof *gd);
        CHECK_OK(ti_trainer_param_grad(r.t, PTI_KEYS[k], g, (size_t)nref[k], &err), &err);
        for (long i = 0; i < nref[k]; i++)
            gd[i] = g[i];
        double gm = absmax(gref[k], nref[k]);
        CHECK(gm > 0);
        if (!tc_check_close(gd, gref[k], nref[k], 2e-4 * gm, 2e-3, PTI_KEYS[k], __FILE__, __LINE__))
            fprintf(stderr, "  (gradient of %s)\n", PTI_KEYS[k]);
        free(g);
        free(gd);
    }
    CHECK_OK(ti_trainer_optimizer_step(r.t, &err), &err);
    for (size_t k = 0; k < nk; k++) {
        char ds[256];
        snprintf(ds, sizeof ds, "params/%s/after", PTI_KEYS[k]);
        long n;
        double *want = need(f, ds, &n);
        struct ti_tensor *w = find_weight(r.t, PTI_KEYS[k]);
        CHECK(w != NULL && want && gref[k] && n == nref[k]);
        if (w && want && gref[k]) {
            /* the first AdamW step moves an element by about model_lr * sign(g): exact where the
             * gradient is clearly non-zero, and within 2 model_lr where f32 rounding could flip
             * the sign of a near-zero gradient */
            double gm = absmax(gref[k], n);
            long bad = 0;
            for (long i = 0; i < n; i++) {
                double got = ((const float *)w->data)[i];
                double tol = fabs(gref[k][i]) > 1e-3 * gm ? 1e-4 * model_lr + 1e-6 * fabs(want[i])
                                                          : 2.1 * model_lr;
                bad += fabs(got - want[i]) > tol;
            }
            if (bad) fprintf(stderr, "  %ld elements of %s differ after AdamW\n", bad, PTI_KEYS[k]);
            CHECK(bad == 0);
        }
        free(want);
        free(gref[k]);
    }
    CHECK(memcmp(row320, (const float *)tok->data + 320 * 32, sizeof row320) == 0);
    free(gref);
    free(nref);
    free(imgf);
    free(nf);
    free(ef);
    free(img);
    free(noise);
    free(eps);
    free(ts);
    free(loss);
    ti_trainer_close(r.t);
    h5u_close(f);
}

/* ---- determinism and resume ------------------------------------------------------------------ */

static float g_images[2 * 3 * 64 * 64];
static const char *const g_caps[2] = {"a photo of *", "a rendition of the *"};

static void make_images(void) {
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                    g_images[((b * 3 + c) * 64 + y) * 64 + x] =
                        (float)sin(0.11 * x * (c + 1) + 0.07 * y * (b + 1) + c);
}

/* `micro` micro-batches (two per optimizer step) */
static void micro_batches(struct ti_trainer *t, int micro) {
    struct ti_err err = {0};
    for (int i = 0; i < micro; i++) {
        double l = NAN;
        CHECK_OK(ti_trainer_forward_backward(t, g_images, g_caps, 2, &l, &err), &err);
        CHECK(isfinite(l) && l > 0);
        size_t n;
        float *g = ti_trainer_grad(t, &n);
        (void)g;
        if (i % 2 == 1) CHECK_OK(ti_trainer_optimizer_step(t, &err), &err);
    }
}

static const char *const OV_2VEC[] = {PP "num_vectors_per_token=2"};

TEST(same_seed_bitwise) {
    struct run a, b, c;
    if (open_run(&a, 1, OV_2VEC, 1, TI_DTYPE_F32, 9, 0.01)) return;
    if (open_run(&b, 1, OV_2VEC, 1, TI_DTYPE_F32, 9, 0.01)) return;
    if (open_run(&c, 1, OV_2VEC, 1, TI_DTYPE_F32, 10, 0.01)) return;
    struct ti_emb_manager *ea = ti_trainer_embeddings(a.t), *eb = ti_trainer_embeddings(b.t),
                          *ec = ti_trainer_embeddings(c.t);
    size_t bytes = (size_t)ea->n_rows * (size_t)ea->dim * sizeof(float);
    float *init = malloc(bytes);
    memcpy(init, ea->rows, bytes);
    micro_batches(a.t, 2);
    struct ti_ctx *ctx = ti_trainer_ctx(a.t);
    int64_t act0 = ti_arena_stats(ctx->act).system_allocs,
            scr0 = ti_arena_stats(ctx->scratch).system_allocs;
    micro_batches(a.t, 2);
    /* the steady state takes no memory from the system */
    CHECK(ti_arena_stats(ctx->act).system_allocs == act0);
    CHECK(ti_arena_stats(ctx->scratch).system_allocs == scr0);
    micro_batches(b.t, 4);
    micro_batches(c.t, 4);
    CHECK(ti_trainer_step(a.t) == 2);
    CHECK(memcmp(ea->rows, eb->rows, bytes) == 0);
    CHECK(memcmp(ea->rows, init, bytes) != 0);     /* it trained */
    CHECK(memcmp(ea->rows, ec->rows, bytes) != 0); /* another seed, other draws */
    free(init);
    ti_trainer_close(a.t);
    ti_trainer_close(b.t);
    ti_trainer_close(c.t);
}

/* dir/<name>: the SD test model plus q_sample's two schedule buffers, from the reference's
 * float64 schedule (schedule.h) rounded to dtype dt (f32, or f16 as a half-precision export). */
static void write_sched_model(const char *name, enum ti_dtype dt) {
    struct ti_err err = {0};
    struct ti_config cfg;
    CHECK_OK(ti_config_load(&cfg, &CFG[1], 1, NULL, 0, &err), &err);
    struct ti_schedule s;
    CHECK_OK(ti_schedule_init(&s, &cfg.model, &err), &err);
    static float v32[2][1000];
    static uint16_t v16[2][1000];
    for (int i = 0; i < s.T; i++) {
        v32[0][i] = (float)sqrt(s.alphas_cumprod[i]);
        v32[1][i] = (float)sqrt(1.0 - s.alphas_cumprod[i]);
        v16[0][i] = ti_f32_to_f16(v32[0][i]);
        v16[1][i] = ti_f32_to_f16(v32[1][i]);
    }
    char src[512], dst[512];
    model_path(src, sizeof src, 1);
    snprintf(dst, sizeof dst, "%s/%s", g_dir, name);
    struct ti_tensor b[2];
    static const char *const keys[2] = {"sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"};
    for (int k = 0; k < 2; k++)
        b[k] = ti_tensor_view(dt == TI_DTYPE_F16 ? (void *)v16[k] : (void *)v32[k], dt,
                              TI_DEVICE_CPU, 1, (int64_t[]){s.T});
    tio_safetensors_plus(src, dst, keys, b, 2);
}

/* One forward/backward's loss (seed 9: the same timesteps and noise) on dir/<name>, or on the
 * plain test model when name is NULL. */
static double sched_loss(const char *name) {
    struct ti_err err = {0};
    struct ti_config cfg;
    CHECK_OK(ti_config_load(&cfg, &CFG[1], 1, NULL, 0, &err), &err);
    char path[512];
    if (name)
        snprintf(path, sizeof path, "%s/%s", g_dir, name);
    else
        model_path(path, sizeof path, 1);
    struct ti_trainer_opts o = {.cfg = &cfg,
                                .ckpt_path = path,
                                .be = ti_backend_cpu(),
                                .dtype = TI_DTYPE_F32,
                                .seed = 9,
                                .lr = 0.01,
                                .vocab_dir = "model/vocab"};
    struct ti_trainer *t = NULL;
    CHECK_OK(ti_trainer_open(&t, &o, &err), &err);
    double l = NAN;
    if (t) CHECK_OK(ti_trainer_forward_backward(t, g_images, g_caps, 2, &l, &err), &err);
    ti_trainer_close(t);
    return l;
}

/* q_sample takes the schedule buffers the checkpoint stores, as the reference's
 * load_state_dict(strict=False) loads them over its config's: float32 ones of the same
 * schedule give the config's loss (to float32 rounding), float16-rounded ones another. */
TEST(file_schedule_buffers) {
    write_sched_model("sched32.safetensors", TI_DTYPE_F32);
    write_sched_model("sched16.safetensors", TI_DTYPE_F16);
    double l0 = sched_loss(NULL), l32 = sched_loss("sched32.safetensors"),
           l16 = sched_loss("sched16.safetensors");
    printf("  loss: config schedule %.9g, float32 buffers %.9g, float16 buffers %.9g\n", l0, l32,
           l16);
    CHECK(isfinite(l0) && l0 > 0);
    CHECK(fabs(l32 - l0) <= 1e-6 * l0);
    CHECK(fabs(l16 - l0) > 1e-6 * l0);
}

TEST(resume_bitwise) {
    char state[512];
    snprintf(state, sizeof state, "%s/train_step_state.bin", g_dir);
    struct ti_err err = {0};
    struct run a, b, c;
    if (open_run(&a, 1, OV_2VEC, 1, TI_DTYPE_F32, 3, 0.01)) return;
    micro_batches(a.t, 6);
    /* b: step 1 and the first half of step 2, then saved */
    if (open_run(&b, 1, OV_2VEC, 1, TI_DTYPE_F32, 3, 0.01)) return;
    micro_batches(b.t, 3);
    CHECK_OK(ti_trainer_save_state(b.t, state, &err), &err);
    ti_trainer_close(b.t);
    /* c: another seed (its init and RNG are replaced by the state), loads and continues */
    if (open_run(&c, 1, OV_2VEC, 1, TI_DTYPE_F32, 99, 0.01)) return;
    CHECK_OK(ti_trainer_load_state(c.t, state, &err), &err);
    CHECK(ti_trainer_step(c.t) == 1);
    struct ti_err e2 = {0};
    double l;
    CHECK_OK(ti_trainer_forward_backward(c.t, g_images, g_caps, 2, &l, &e2), &e2);
    CHECK_OK(ti_trainer_optimizer_step(c.t, &e2), &e2);
    micro_batches(c.t, 2);
    CHECK(ti_trainer_step(c.t) == 3 && ti_trainer_step(a.t) == 3);
    struct ti_emb_manager *ea = ti_trainer_embeddings(a.t), *ec = ti_trainer_embeddings(c.t);
    CHECK(memcmp(ea->rows, ec->rows, (size_t)ea->n_rows * (size_t)ea->dim * sizeof(float)) == 0);
    ti_trainer_close(a.t);
    ti_trainer_close(c.t);

    /* a state of another shape is refused; so is a damaged file */
    struct run d;
    if (open_run(&d, 1, NULL, 0, TI_DTYPE_F32, 3, 0.01)) return;
    ti_err_clear(&err);
    CHECK(ti_trainer_load_state(d.t, state, &err) != TI_OK);
    CHECK(strstr(err.msg, state) != NULL && strstr(err.msg, "config") != NULL);
    fprintf(stderr, "(expected) %s\n", err.msg);
    FILE *fp = fopen(state, "r+b");
    CHECK(fp != NULL);
    if (fp) {
        fseek(fp, 100, SEEK_SET);
        fputc(0x5a, fp);
        fclose(fp);
    }
    ti_trainer_close(d.t);
    if (open_run(&d, 1, OV_2VEC, 1, TI_DTYPE_F32, 3, 0.01)) return;
    ti_err_clear(&err);
    CHECK(ti_trainer_load_state(d.t, state, &err) != TI_OK);
    CHECK(strstr(err.msg, "CRC") != NULL);
    ti_trainer_close(d.t);
    unlink(state);
}

/* unfreeze_model: the state carries the trained weights, their moments and gradients */
TEST(resume_unfrozen_bitwise) {
    char state[512];
    snprintf(state, sizeof state, "%s/train_step_state_pti.bin", g_dir);
    struct ti_err err = {0};
    struct run a, b, c;
    if (open_run(&a, 1, OV_PTI, 2, TI_DTYPE_F32, 5, 0.01)) return;
    micro_batches(a.t, 4);
    if (open_run(&b, 1, OV_PTI, 2, TI_DTYPE_F32, 5, 0.01)) return;
    micro_batches(b.t, 3);
    CHECK_OK(ti_trainer_save_state(b.t, state, &err), &err);
    ti_trainer_close(b.t);
    if (open_run(&c, 1, OV_PTI, 2, TI_DTYPE_F32, 6, 0.01)) return;
    CHECK_OK(ti_trainer_load_state(c.t, state, &err), &err);
    double l;
    CHECK_OK(ti_trainer_forward_backward(c.t, g_images, g_caps, 2, &l, &err), &err);
    CHECK_OK(ti_trainer_optimizer_step(c.t, &err), &err);
    struct ti_emb_manager *ea = ti_trainer_embeddings(a.t), *ec = ti_trainer_embeddings(c.t);
    CHECK(memcmp(ea->rows, ec->rows, (size_t)ea->n_rows * (size_t)ea->dim * sizeof(float)) == 0);
    for (size_t k = 0; k < sizeof PTI_KEYS / sizeof PTI_KEYS[0]; k++) {
        struct ti_tensor *wa = find_weight(a.t, PTI_KEYS[k]), *wc = find_weight(c.t, PTI_KEYS[k]);
        CHECK(wa && wc && memcmp(wa->data, wc->data, ti_tensor_nbytes(wa)) == 0);
    }
    /* a state without the model section does not load into an unfrozen run */
    ti_trainer_close(c.t);
    if (open_run(&c, 1, NULL, 0, TI_DTYPE_F32, 6, 0.01)) return;
    ti_err_clear(&err);
    CHECK(ti_trainer_load_state(c.t, state, &err) != TI_OK);
    CHECK(strstr(err.msg, "unfreeze_model") != NULL);
    ti_trainer_close(a.t);
    ti_trainer_close(c.t);
    unlink(state);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--export") == 0) {
        /* for scripts/oracle/train_step.py: the two tiny models and their checksums */
        snprintf(g_dir, sizeof g_dir, "%s", argv[2]);
        for (int clip = 0; clip < 2; clip++) {
            double s;
            if (export_model(clip, &s)) return 1;
            printf("%s %.17g\n", MODEL_FILE[clip], s);
        }
        return 0;
    }
#ifndef TI_HAVE_ZLIB
    printf("SKIP: built without zlib (the CLIP merges file is gzip'd)\n");
    return TC_SKIP;
#else
    snprintf(g_dir, sizeof g_dir, "/tmp/ti_test_train_step_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", g_dir);
    if (system(cmd) != 0) return 1;
    make_images();
    if (export_model(0, NULL) || export_model(1, NULL)) return 1;
    RUN(oracle_sd_f32);
    RUN(oracle_sd_f64);
    RUN(oracle_ldm_f32);
    RUN(oracle_ldm_f64);
    RUN(oracle_sd_unfrozen);
    RUN(same_seed_bitwise);
    RUN(file_schedule_buffers);
    RUN(resume_bitwise);
    RUN(resume_unfrozen_bitwise);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return 1;
    return tc_finish();
#endif
}
