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

#include "h5util.h"
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
    int f32 = dt == TI_DTYPE_F32;
    CHECK(tc_check_close(&l, loss, 1, 0, f32 ? 2e-5 : 1e-10, "loss", __FILE__, __LINE__));
    size_t ng;
    float *g = ti_trainer_grad(r.t, &ng);
    CHECK((long)ng == n_grad);
    for (long i = 0; i < n_grad; i++)
        got[i] = g[i];
    double gm = absmax(grad, n_grad);
    CHECK(gm > 0);
    CHECK(tc_check_close(got, grad, n_grad, (f32 ? 2e-4 : 1e-9) * gm, f32 ? 2e-3 : 1e-7, "grad",
                         __FILE__, __LINE__));
    CHECK_OK(ti_trainer_optimizer_step(r.t, &err), &err);
    CHECK(ti_trainer_step(r.t) == 1);
    for (long i = 0; i < n_after; i++)
        got[i] = em->rows[i];
    /* one AdamW step moves each row element by about lr: 1e-4 of it is far below */
    CHECK(tc_check_close(got, after, n_after, 1e-4 * lr, 1e-6, "rows_after", __FILE__, __LINE__));
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
    micro_batches(a.t, 4);
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
    RUN(same_seed_bitwise);
    RUN(resume_bitwise);
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    if (system(cmd) != 0) return 1;
    return tc_finish();
#endif
}
