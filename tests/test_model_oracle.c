/*
 * test_model_oracle.c - the networks against PyTorch on tiny configs of the real architectures
 * (tests/fixtures/model_*.h5, written by scripts/oracle/models.py from diffusers'
 * UNet2DConditionModel / AutoencoderKL, transformers' CLIPTextModel and our port of the LDM
 * x-transformers encoder, weights converted to the original key layout, float64); the LDM BERT
 * also against an independent implementation, diffusers' LDMBertModel (model_bert_diffusers.h5).
 * Checked: forward outputs and the gradients of <dout, out> with respect to the inputs
 * (UNet: latent and context; VAE: image (encoder) and latent (decoder); text encoders: the
 * trainable placeholder rows), in f64 and in f32 (tolerances per model below).
 */
#include <string.h>

#include "h5_weights.h"
#include "tape.h"
#include "tensor_test_util.h"
#include "test_common.h"
#include "text_encoder.h"
#include "unet.h"
#include "vae.h"

struct tol {
    double atol, rtol;
};
/* f64: everything is double on both sides; differences are summation order only */
static const struct tol TOL64 = {1e-9, 1e-7};

static void compare(struct ti_ctx *ctx, const char *what, const struct ti_tensor *got, hid_t f,
                    const char *ds, struct tol t) {
    int nd = 0;
    int64_t shape[6];
    double *want = NULL;
    CHECK(h5u_read(f, ds, &want, &nd, shape) == 0);
    if (!want) return;
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    CHECK(n == ti_tensor_numel(got));
    if (n == ti_tensor_numel(got)) {
        double *g = tt_download(ctx, got);
        if (!tc_check_close(g, want, (long)n, t.atol, t.rtol, what, __FILE__, __LINE__))
            fprintf(stderr, "  (%s vs fixture %s)\n", what, ds);
        free(g);
    }
    free(want);
}

/* reads a fixture dataset into a tensor of dtype dt */
static struct ti_tensor input(struct ti_ctx *ctx, hid_t f, const char *ds, enum ti_dtype dt) {
    int nd = 0;
    int64_t shape[6];
    double *v = NULL;
    CHECK(h5u_read(f, ds, &v, &nd, shape) == 0);
    if (!v) return ti_tensor_none();
    struct ti_tensor t = tt_upload(ctx, v, nd, shape, dt);
    free(v);
    return t;
}

struct fixture {
    struct h5_weights h;
    struct ti_weight_source src;
    hid_t f;
};

static int open_fixture(struct fixture *fx, const char *path) {
    if (h5_weights_open(&fx->h, &fx->src, path) != 0) {
        fprintf(stderr, "cannot open %s\n", path);
        tc_failures++;
        return -1;
    }
    fx->f = fx->h.file;
    return 0;
}

/* ---- UNet ------------------------------------------------------------------------------------ */

static void unet_hparams_tiny(struct ti_unet_hparams *hp) {
    ti_unet_hparams_sd_v1(hp);
    hp->model_channels = 32;
    hp->n_levels = 2;
    hp->channel_mult[0] = 1;
    hp->channel_mult[1] = 2;
    hp->n_attention = 1;
    hp->attention_resolutions[0] = 1;
    hp->num_heads = 2;
    hp->context_dim = 16;
}

/* Host copies of one step's results (out, d/dx, d/dcontext), for bitwise comparisons. */
struct unet_step {
    double *v[3];
    long n[3];
    int nodes; /* recorded on the tape by the forward */
};

static void unet_step_free(struct unet_step *r) {
    for (int i = 0; i < 3; i++)
        free(r->v[i]);
    memset(r, 0, sizeof *r);
}

/* 1 when both steps hold the same bits. */
static int unet_step_same(const struct unet_step *a, const struct unet_step *b) {
    for (int i = 0; i < 3; i++)
        if (!a->v[i] || !b->v[i] || a->n[i] != b->n[i] ||
            memcmp(a->v[i], b->v[i], (size_t)a->n[i] * sizeof(double)) != 0)
            return 0;
    return 1;
}

/* Runs the tiny UNet fixture `steps` times in one context (the arenas are reused from the second
 * step on), comparing every step with PyTorch; with keep, the host results of each step. */
static void run_unet_steps(enum ti_dtype dt, struct tol tol, int checkpoint, int steps,
                           struct unet_step *keep) {
    struct fixture fx;
    if (open_fixture(&fx, "tests/fixtures/model_unet.h5")) return;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_unet_hparams hp;
    unet_hparams_tiny(&hp);
    hp.use_checkpoint = checkpoint;
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_unet u;
    CHECK_OK(ti_unet_init(&u, &hp, "model.diffusion_model.", &w, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_load(&w, &fx.src, &ctx.err), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    for (int s = 0; s < steps; s++) {
        struct ti_tensor x = input(&ctx, fx.f, "x", dt), t = input(&ctx, fx.f, "t", dt),
                         c = input(&ctx, fx.f, "context", dt), dout = input(&ctx, fx.f, "dout", dt);
        struct ti_tensor gx, gc, out;
        CHECK_OK(ti_ctx_zeros(&ctx, &gx, dt, x.ndim, x.shape), &ctx.err);
        CHECK_OK(ti_ctx_zeros(&ctx, &gc, dt, c.ndim, c.shape), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, &x, &gx), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, &c, &gc), &ctx.err);
        ti_status st = ti_unet_forward(&ctx, &out, &u, &x, &t, &c);
        CHECK_OK(st, &ctx.err);
        if (st == TI_OK) {
            compare(&ctx, "unet out", &out, fx.f, "out", tol);
            if (keep) keep[s].nodes = ti_tape_node_count(tape);
            CHECK_OK(ti_tape_backward(&ctx, &out, &dout), &ctx.err);
            compare(&ctx, "unet d/dx", &gx, fx.f, "grad_x", tol);
            compare(&ctx, "unet d/dcontext", &gc, fx.f, "grad_context", tol);
            if (keep) {
                const struct ti_tensor *r[3] = {&out, &gx, &gc};
                for (int i = 0; i < 3; i++) {
                    keep[s].v[i] = tt_download(&ctx, r[i]);
                    keep[s].n[i] = (long)ti_tensor_numel(r[i]);
                }
            }
        }
        ti_tape_clear(&ctx);
        ti_tensor_release(&out);
        ti_tensor_release(&x);
        ti_tensor_release(&t);
        ti_tensor_release(&c);
        ti_tensor_release(&dout);
        ti_tensor_release(&gx);
        ti_tensor_release(&gc);
        CHECK(ti_arena_stats(ctx.act).live_blocks == 0); /* nothing leaked in the pool */
    }
    ti_tape_free(&tape);
    ti_unet_free(&u);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    h5_weights_close(&fx.h);
}

static void run_unet(enum ti_dtype dt, struct tol tol, int checkpoint) {
    run_unet_steps(dt, tol, checkpoint, 1, NULL);
}

TEST(unet_f64) {
    run_unet(TI_DTYPE_F64, TOL64, 0);
}
TEST(unet_f64_checkpointed) {
    run_unet(TI_DTYPE_F64, TOL64, 1);
}
/* f32: 20+ layers of GroupNorm/attention on values of order 1-10 */
#define TOL_UNET_F32 ((struct tol){2e-4, 2e-3})
TEST(unet_f32) {
    run_unet(TI_DTYPE_F32, TOL_UNET_F32, 0);
}

/* Determinism on the CPU: a second step in the same context (reused arenas, scratch and tape)
 * gives the same bits as the first, and recomputation (checkpointing) changes no bit: the
 * recomputed forward runs the same kernels on the same inputs. A kernel that read uninitialised
 * scratch or reduced in a thread-dependent order would break this. */
TEST(unet_f32_steps_and_checkpointing_bitwise) {
    struct unet_step plain[2] = {{{0}}}, ckpt[1] = {{{0}}};
    run_unet_steps(TI_DTYPE_F32, TOL_UNET_F32, 0, 2, plain);
    run_unet_steps(TI_DTYPE_F32, TOL_UNET_F32, 1, 1, ckpt);
    CHECK(unet_step_same(&plain[0], &plain[1]));
    CHECK(unet_step_same(&plain[0], &ckpt[0]));
    unet_step_free(&plain[0]);
    unet_step_free(&plain[1]);
    unet_step_free(&ckpt[0]);
}

/* The feed-forward recomputed in backward (TI_FF_RECOMPUTE_MB=0: every block, whatever its
 * size; the default takes only the large ones) keeps the result against PyTorch and every bit
 * of the plain step. */
TEST(unet_f32_ff_recompute_bitwise) {
    struct unet_step plain[1] = {{{0}}}, ff[1] = {{{0}}};
    setenv("TI_FF_RECOMPUTE_MB", "-1", 1);
    run_unet_steps(TI_DTYPE_F32, TOL_UNET_F32, 0, 1, plain);
    setenv("TI_FF_RECOMPUTE_MB", "0", 1);
    run_unet_steps(TI_DTYPE_F32, TOL_UNET_F32, 0, 1, ff);
    unsetenv("TI_FF_RECOMPUTE_MB");
    CHECK(unet_step_same(&plain[0], &ff[0]));
    /* recomputed: one checkpoint node instead of norm3, linear, GEGLU, linear per block */
    CHECK(ff[0].nodes > 0 && ff[0].nodes < plain[0].nodes);
    unet_step_free(&plain[0]);
    unet_step_free(&ff[0]);
}

/* ---- VAE ------------------------------------------------------------------------------------- */

static void run_vae(enum ti_dtype dt, struct tol tol) {
    struct fixture fx;
    if (open_fixture(&fx, "tests/fixtures/model_vae.h5")) return;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_vae_hparams hp;
    ti_vae_hparams_kl_f8(&hp);
    hp.ch = 32;
    hp.n_levels = 2;
    hp.ch_mult[0] = 1;
    hp.ch_mult[1] = 2;
    hp.num_res_blocks = 1;
    hp.resolution = 16;
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_vae v;
    CHECK_OK(ti_vae_init(&v, &hp, "first_stage_model.", &w, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_load(&w, &fx.src, &ctx.err), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    /* encoder */
    struct ti_tensor img = input(&ctx, fx.f, "img", dt), dm = input(&ctx, fx.f, "dmoments", dt);
    struct ti_tensor gi, m;
    CHECK_OK(ti_ctx_zeros(&ctx, &gi, dt, img.ndim, img.shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &img, &gi), &ctx.err);
    ti_status st = ti_vae_encode(&ctx, &m, &v, &img);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        compare(&ctx, "vae moments", &m, fx.f, "moments", tol);
        CHECK_OK(ti_tape_backward(&ctx, &m, &dm), &ctx.err);
        compare(&ctx, "vae d/dimg", &gi, fx.f, "grad_img", tol);
    }
    ti_tensor_release(&m);
    /* decoder */
    struct ti_tensor z = input(&ctx, fx.f, "z", dt), dd = input(&ctx, fx.f, "ddec", dt);
    struct ti_tensor gz, dec;
    CHECK_OK(ti_ctx_zeros(&ctx, &gz, dt, z.ndim, z.shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &z, &gz), &ctx.err);
    st = ti_vae_decode(&ctx, &dec, &v, &z);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        compare(&ctx, "vae decode", &dec, fx.f, "dec", tol);
        CHECK_OK(ti_tape_backward(&ctx, &dec, &dd), &ctx.err);
        compare(&ctx, "vae d/dz", &gz, fx.f, "grad_z", tol);
    }
    ti_tensor_release(&dec);
    struct ti_tensor *all[] = {&img, &dm, &gi, &z, &dd, &gz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ti_tensor_release(all[i]);
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_tape_free(&tape);
    ti_vae_free(&v);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    h5_weights_close(&fx.h);
}

TEST(vae_f64) {
    run_vae(TI_DTYPE_F64, TOL64);
}
TEST(vae_f32) {
    run_vae(TI_DTYPE_F32, (struct tol){2e-4, 2e-3});
}

/* ---- text encoders --------------------------------------------------------------------------- */

static void run_text(const char *path, int clip, enum ti_dtype dt, struct tol tol) {
    struct fixture fx;
    if (open_fixture(&fx, path)) return;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_text_hparams hp;
    if (clip) {
        hp = (struct ti_text_hparams){97, 16, 32, 2, 4, 8, 64};
    } else {
        hp = (struct ti_text_hparams){101, 16, 32, 2, 2, 8, 128};
    }
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_text_encoder e;
    ti_status st =
        clip ? ti_clip_text_init(&e, &hp, "cond_stage_model.transformer.text_model.", &w, &ctx.err)
             : ti_bert_embedder_init(&e, &hp, "cond_stage_model.transformer.", &w, &ctx.err);
    CHECK_OK(st, &ctx.err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_load(&w, &fx.src, &ctx.err), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    struct ti_tensor ids = input(&ctx, fx.f, "ids", TI_DTYPE_I32),
                     rows = input(&ctx, fx.f, "rows", dt), dout = input(&ctx, fx.f, "dout", dt);
    struct ti_tensor gr, out;
    CHECK_OK(ti_ctx_zeros(&ctx, &gr, dt, rows.ndim, rows.shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &rows, &gr), &ctx.err);
    st = ti_text_encoder_forward(&ctx, &out, &e, &ids, &rows);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        compare(&ctx, "text out", &out, fx.f, "out", tol);
        CHECK_OK(ti_tape_backward(&ctx, &out, &dout), &ctx.err);
        compare(&ctx, "text d/drows", &gr, fx.f, "grad_rows", tol);
    }
    ti_tensor_release(&out);
    ti_tensor_release(&ids);
    ti_tensor_release(&rows);
    ti_tensor_release(&dout);
    ti_tensor_release(&gr);
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_tape_free(&tape);
    ti_text_encoder_free(&e);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    h5_weights_close(&fx.h);
}

TEST(clip_f64) {
    run_text("tests/fixtures/model_clip.h5", 1, TI_DTYPE_F64, TOL64);
}
TEST(clip_f32) {
    run_text("tests/fixtures/model_clip.h5", 1, TI_DTYPE_F32, (struct tol){1e-4, 1e-3});
}
TEST(bert_f64) {
    run_text("tests/fixtures/model_bert.h5", 0, TI_DTYPE_F64, TOL64);
}
TEST(bert_f32) {
    run_text("tests/fixtures/model_bert.h5", 0, TI_DTYPE_F32, (struct tol){1e-4, 1e-3});
}

/* the same weights and inputs through an independent implementation: diffusers' LDMBertModel */
TEST(bert_diffusers_f64) {
    run_text("tests/fixtures/model_bert_diffusers.h5", 0, TI_DTYPE_F64, TOL64);
}
TEST(bert_diffusers_f32) {
    run_text("tests/fixtures/model_bert_diffusers.h5", 0, TI_DTYPE_F32, (struct tol){1e-4, 1e-3});
}

int main(void) {
    RUN(unet_f64);
    RUN(unet_f64_checkpointed);
    RUN(unet_f32);
    RUN(unet_f32_steps_and_checkpointing_bitwise);
    RUN(unet_f32_ff_recompute_bitwise);
    RUN(vae_f64);
    RUN(vae_f32);
    RUN(clip_f64);
    RUN(clip_f32);
    RUN(bert_f64);
    RUN(bert_f32);
    RUN(bert_diffusers_f64);
    RUN(bert_diffusers_f32);
    return tc_finish();
}
