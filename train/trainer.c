/*
 * trainer.c - the textual-inversion training step, AdamW and the resume state (trainer.h).
 */
#include "trainer.h"

#include <math.h>   /* defines: sqrt, sqrtf, pow */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: calloc, malloc, free */
#include <string.h> /* defines: memcpy, memset, strlen */

#include "fileio.h"   /* defines: ti_outfile, ti_fmap, ti_crc32 */
#include "ops.h"      /* defines: ti_copy, ti_scale, ti_mul, ti_add, ti_mse_loss, ti_reshape */
#include "rng.h"      /* defines: struct ti_rng */
#include "schedule.h" /* defines: ti_schedule_init, ti_schedule_q_sample_coefs */
#include "tape.h"     /* defines: ti_tape_watch, ti_tape_backward */

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS   1e-8
#define ADAM_WD    0.01

#define STATE_MAGIC   "TITRAINS"
#define STATE_VERSION 1u

/* the trainer's stream is seeded apart from the init vectors' (both come from opts.seed) */
#define RNG_SALT 0x9E3779B97F4A7C15ull

/* One trainable model weight (unfreeze_model): its slot in the network, a gradient buffer on the
 * backend and the AdamW moments on the host. */
struct mparam {
    struct ti_tensor *w;
    const char *key;
    struct ti_tensor g;
    float *m, *v;
    size_t n;
};

struct ti_trainer {
    struct ti_config cfg;
    const struct ti_backend *be;
    enum ti_dtype dtype; /* the UNet's */
    /* the first stage's, the text encoder's, the rows' and the loss's: f32 when dtype is bf16
     * or f16 (cheap next to the UNet; in bf16 their rounding was about a third of the rows
     * gradient's error against f32, docs/PERF.md "CPU bf16") */
    enum ti_dtype fdtype;
    double lr;
    double lr_factor; /* the LR schedule's multiplier of both groups (1 unless set) */
    struct ti_ldm model;
    int model_ready;
    struct ti_tokenizer *tok;
    struct ti_emb_manager em;
    struct ti_ctx ctx;
    int ctx_ready;
    struct ti_tape *tape;
    struct ti_rng rng;
    int T;
    float *sqrt_ab, *sqrt_1m_ab; /* (T): the peer's float32 buffers */
    size_t n_param;              /* n_rows * dim */
    float *grad, *m, *v;         /* (n_rows, dim) host f32 */
    float *gstep;                /* (n_rows, dim): one micro-batch's rows gradient */
    int64_t step, accum;
    /* unfreeze_model (pivotal tuning): every UNet and text-encoder weight but the token table */
    int n_mp;
    struct mparam *mp;
    double model_lr;
    float *hp_buf, *hg_buf; /* host scratch of the largest weight */
    /* host scratch for one micro-batch's random draws, grown on demand */
    float *noise, *eps;
    int *ts;
    size_t scratch_n;
    int scratch_b;
};

/* ---- small helpers ----------------------------------------------------------------------------
 */

/* An op's failure: the message is in ctx.err; copy it to err. */
static ti_status ctx_fail(struct ti_trainer *t, ti_status st, const char *what,
                          struct ti_err *err) {
    return ti_error(err, st, "trainer: %s: %s", what, t->ctx.err.msg);
}

#define CK(st_, expr, what)                                                                        \
    do {                                                                                           \
        (st_) = (expr);                                                                            \
        if ((st_) != TI_OK) {                                                                      \
            (st_) = ctx_fail(t, (st_), (what), err);                                               \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* TI_UNET_F32_STREAM=1: a reduced-precision UNet gets x_t in f32 and so keeps its residual
 * stream in f32 (unet.h). Off by default: on the tiny models it reduced the rows gradient's
 * error by about 8 %, within the noise of 36 draws (docs/PERF.md "CPU bf16"). */
static int unet_f32_stream(void) {
    const char *e = getenv("TI_UNET_F32_STREAM");
    return e && *e == '1';
}

/* host f32 -> a new tensor of dtype dt */
static ti_status upload_f32(struct ti_trainer *t, struct ti_tensor *out, const float *host, int nd,
                            const int64_t *shape, enum ti_dtype dt) {
    struct ti_tensor h;
    TI_TRY(ti_ctx_upload(&t->ctx, &h, host, TI_DTYPE_F32, nd, shape));
    if (dt == TI_DTYPE_F32) {
        *out = h;
        return TI_OK;
    }
    ti_status st = ti_copy(&t->ctx, out, &h, dt);
    ti_tensor_release(&h);
    return st;
}

/* tensor -> host f32 (n elements) */
static ti_status download_f32(struct ti_trainer *t, float *host, size_t n,
                              const struct ti_tensor *x) {
    if (x->dtype == TI_DTYPE_F32) return ti_ctx_download(&t->ctx, host, n * sizeof(float), x);
    struct ti_tensor c;
    TI_TRY(ti_copy(&t->ctx, &c, x, TI_DTYPE_F32));
    ti_status st = ti_ctx_download(&t->ctx, host, n * sizeof(float), &c);
    ti_tensor_release(&c);
    return st;
}

/* q_sample's float32 buffers from the config's schedule (schedule.h) */
static ti_status make_schedule(struct ti_trainer *t, struct ti_err *err) {
    struct ti_schedule *s = malloc(sizeof *s);
    if (!s) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
    ti_status st = ti_schedule_init(s, &t->cfg.model, err);
    if (st == TI_OK) {
        t->T = s->T;
        t->sqrt_ab = malloc((size_t)s->T * sizeof(float));
        t->sqrt_1m_ab = malloc((size_t)s->T * sizeof(float));
        if (!t->sqrt_ab || !t->sqrt_1m_ab)
            st = ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
        else
            ti_schedule_q_sample_coefs(s, t->sqrt_ab, t->sqrt_1m_ab);
    }
    free(s);
    return st;
}

/* ---- open / close -----------------------------------------------------------------------------
 */

void ti_trainer_close(struct ti_trainer *t) {
    if (!t) return;
    ti_tape_free(&t->tape);
    for (int i = 0; i < t->n_mp; i++) {
        ti_tensor_release(&t->mp[i].g);
        free(t->mp[i].m);
        free(t->mp[i].v);
    }
    free(t->mp);
    free(t->hp_buf);
    free(t->hg_buf);
    if (t->ctx_ready) ti_ctx_free(&t->ctx);
    if (t->model_ready) ti_ldm_free(&t->model);
    ti_emb_manager_free(&t->em);
    ti_tokenizer_free(&t->tok);
    free(t->sqrt_ab);
    free(t->sqrt_1m_ab);
    free(t->grad);
    free(t->gstep);
    free(t->m);
    free(t->v);
    free(t->noise);
    free(t->eps);
    free(t->ts);
    free(t);
}

/* unfreeze_model: the peer's second AdamW group (cond_stage_model + UNet at model_lr). The token
 * table stays frozen (ti's embedding op refuses a trainable table; the placeholder rows are its
 * trainable part); the first stage stays frozen as in the peer. */
static ti_status unfreeze(struct ti_trainer *t, const struct ti_trainer_opts *o,
                          struct ti_err *err) {
    if (o->dtype != TI_DTYPE_F32)
        return ti_error(err, TI_ERR_UNSUPPORTED,
                        "model.params.unfreeze_model: training the model weights needs f32 "
                        "weights (there is no f32 master copy for %s); use --dtype f32",
                        ti_dtype_name(o->dtype));
    if (o->checkpointing)
        return ti_error(err, TI_ERR_UNSUPPORTED,
                        "model.params.unfreeze_model: recomputation (checkpointing) supports "
                        "frozen weights only; turn it off");
    if (!(t->cfg.model.model_lr > 0))
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.model_lr: %g; unfreeze_model needs a learning rate > 0 for "
                        "the model weights (v1-finetune_unfrozen.yaml has 1e-7)",
                        t->cfg.model.model_lr);
    t->model_lr = t->cfg.model.model_lr;
    /* trained from here on: the CPU backend must not serve cached reordered copies of them */
    ti_weights_thaw(&t->model.unet_w);
    ti_weights_thaw(&t->model.text_w);
    const struct ti_weights *tabs[2] = {&t->model.unet_w, &t->model.text_w};
    int total = tabs[0]->n + tabs[1]->n;
    t->mp = calloc((size_t)total, sizeof *t->mp);
    if (!t->mp) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
    size_t maxn = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < tabs[k]->n; i++) {
            struct ti_tensor *w = tabs[k]->items[i].slot;
            if (w == &t->model.text.tok_emb || !w->data) continue;
            struct mparam *p = &t->mp[t->n_mp++];
            p->w = w;
            p->key = tabs[k]->items[i].key;
            p->n = (size_t)ti_tensor_numel(w);
            p->g = ti_tensor_none();
            p->m = calloc(p->n, sizeof(float));
            p->v = calloc(p->n, sizeof(float));
            if (!p->m || !p->v) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
            ti_status st = ti_ctx_zeros(&t->ctx, &p->g, w->dtype, w->ndim, w->shape);
            if (st != TI_OK) return ti_error(err, st, "trainer: %s", t->ctx.err.msg);
            if (p->n > maxn) maxn = p->n;
        }
    if (maxn == 0)
        return ti_error(err, TI_ERR_INTERNAL, "trainer: unfreeze_model found no model weights");
    t->hp_buf = malloc(maxn * sizeof(float));
    t->hg_buf = malloc(maxn * sizeof(float));
    if (!t->hp_buf || !t->hg_buf) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
    return TI_OK;
}

ti_status ti_trainer_open(struct ti_trainer **out, const struct ti_trainer_opts *o,
                          struct ti_err *err) {
    *out = NULL;
    if (!o->cfg || (!o->ckpt_path && !o->random_weights) || !o->be)
        return ti_error(err, TI_ERR_INVALID,
                        "trainer: cfg, ckpt_path (or random_weights) and be are required");
    if (!(o->lr > 0) || !isfinite(o->lr))
        return ti_error(err, TI_ERR_INVALID, "trainer: learning rate %g; expected > 0", o->lr);
    struct ti_trainer *t = calloc(1, sizeof *t);
    if (!t) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
    ti_status st = TI_OK;
    t->cfg = *o->cfg;
    t->be = o->be;
    t->dtype = o->dtype;
    t->fdtype = o->dtype == TI_DTYPE_BF16 || o->dtype == TI_DTYPE_F16 ? TI_DTYPE_F32 : o->dtype;
    t->lr = o->lr;
    t->lr_factor = 1.0;
    if (!t->cfg.personalization.present) {
        st = ti_error(err, TI_ERR_CONFIG,
                      "model.params.personalization_config: the config has no EmbeddingManager, "
                      "so there is nothing to train (use a *-finetune.yaml config)");
        goto fail;
    }
    if (t->cfg.unet.in_channels != t->cfg.vae.embed_dim) {
        st = ti_error(err, TI_ERR_CONFIG,
                      "model.params.unet_config.params.in_channels is %d but the first stage's "
                      "embed_dim is %d",
                      t->cfg.unet.in_channels, t->cfg.vae.embed_dim);
        goto fail;
    }
    TI_TRY_GOTO(st, make_schedule(t, err));
    TI_TRY_GOTO(st, ti_ldm_init(&t->model, &t->cfg, err));
    t->model_ready = 1;
    t->model.unet.hp.use_checkpoint = o->checkpointing ? 1 : 0;
    TI_TRY_GOTO(st, ti_weights_alloc(&t->model.unet_w, o->be, t->dtype, err));
    TI_TRY_GOTO(st, ti_weights_alloc(&t->model.vae_w, o->be, t->fdtype, err));
    TI_TRY_GOTO(st, ti_weights_alloc(&t->model.text_w, o->be, t->fdtype, err));
    const char *name = o->model_name           ? o->model_name
                       : t->model.text_is_clip ? "SD v1"
                                               : "LDM text2img-large";
    if (o->random_weights)
        TI_TRY_GOTO(st, ti_ldm_randomize(&t->model, o->random_seed, err));
    else
        TI_TRY_GOTO(st, ti_ldm_load_file(&t->model, o->ckpt_path, NULL, name, err));
    {
        /* q_sample's buffers as the file stores them: the reference's load_state_dict
         * (strict=False) loads them over its config's (float16-rounded in a half-precision
         * export); ti-train says so (ti_schedule_use_file on the same file) */
        const struct ti_ldm_file_schedule *fs = &t->model.file_sched;
        if (fs->T == t->T) { /* random weights: no file, T 0 */
            if (fs->have & TI_LDM_BUF_SQRT_ALPHAS_CUMPROD)
                memcpy(t->sqrt_ab, fs->sqrt_alphas_cumprod, (size_t)t->T * sizeof(float));
            if (fs->have & TI_LDM_BUF_SQRT_ONE_MINUS_ALPHAS_CUMPROD)
                memcpy(t->sqrt_1m_ab, fs->sqrt_one_minus_alphas_cumprod,
                       (size_t)t->T * sizeof(float));
        }
    }
    {
        enum ti_tokenizer_kind kind =
            t->model.text_is_clip ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE;
        char path[TI_CFG_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", o->vocab_dir ? o->vocab_dir : ti_tokenizer_vocab_dir(),
                 ti_tokenizer_vocab_file(kind));
        TI_TRY_GOTO(st, ti_tokenizer_load(&t->tok, kind, path, err));
    }
    TI_TRY_GOTO(st,
                ti_emb_manager_from_config(&t->em, &t->cfg, t->tok, &t->model.text, o->seed, err));
    t->n_param = (size_t)t->em.n_rows * (size_t)t->em.dim;
    t->grad = calloc(t->n_param, sizeof(float));
    t->m = calloc(t->n_param, sizeof(float));
    t->v = calloc(t->n_param, sizeof(float));
    t->gstep = malloc(t->n_param * sizeof(float));
    if (!t->grad || !t->m || !t->v || !t->gstep) {
        st = ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
        goto fail;
    }
    st = ti_ctx_init(&t->ctx, o->be, 0, 0);
    if (st != TI_OK) {
        st = ti_error(err, st, "trainer: %s", t->ctx.err.msg);
        goto fail;
    }
    t->ctx_ready = 1;
    TI_TRY_GOTO(st, ti_tape_init(&t->tape, err));
    t->ctx.tape = t->tape;
    if (t->cfg.model.unfreeze_model) TI_TRY_GOTO(st, unfreeze(t, o, err));
    ti_rng_seed(&t->rng, o->seed ^ RNG_SALT);
    *out = t;
    return TI_OK;
fail:
    ti_trainer_close(t);
    return st;
}

/* ---- the training step ------------------------------------------------------------------------
 */

ti_status ti_trainer_step_explicit(struct ti_trainer *t, const float *images,
                                   const char *const *captions, int batch, const int *timesteps,
                                   const float *noise, const float *post_eps, double *loss,
                                   double *loss_simple, struct ti_err *err) {
    const struct ti_config *c = &t->cfg;
    int B = batch, S = c->pixel_size, f = c->vae.downsample, C = c->vae.embed_dim;
    int h = S / f, T77 = c->seq_len;
    if (B < 1)
        return ti_error(err, TI_ERR_INVALID, "trainer: batch of %d images; expected >= 1", B);
    for (int b = 0; b < B; b++)
        if (timesteps[b] < 0 || timesteps[b] >= t->T)
            return ti_error(err, TI_ERR_INVALID, "trainer: timestep %d outside [0, %d)",
                            timesteps[b], t->T);
    ti_status st = TI_OK;
    struct ti_tensor img = ti_tensor_none(), mom = ti_tensor_none(), pe = ti_tensor_none(),
                     z0 = ti_tensor_none(), z = ti_tensor_none(), nz = ti_tensor_none(),
                     ca = ti_tensor_none(), cb = ti_tensor_none(), x1 = ti_tensor_none(),
                     x2 = ti_tensor_none(), xt = ti_tensor_none(), idx = ti_tensor_none(),
                     rows = ti_tensor_none(), grow = ti_tensor_none(), cond = ti_tensor_none(),
                     tt = ti_tensor_none(), eps_hat = ti_tensor_none(), l = ti_tensor_none();
    int32_t *ids = malloc((size_t)B * (size_t)T77 * sizeof *ids);
    float *coef = malloc((size_t)B * 3 * sizeof *coef);
    float *g = t->gstep;
    if (!ids || !coef) {
        st = ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
        goto fail;
    }
    /* 1. the first stage, frozen and outside the tape: z = scale_factor * posterior sample */
    ti_ctx_no_grad_begin(&t->ctx);
    {
        int64_t ish[4] = {B, 3, S, S}, lsh[4] = {B, C, h, h};
        st = upload_f32(t, &img, images, 4, ish, t->fdtype);
        if (st == TI_OK) st = ti_vae_encode(&t->ctx, &mom, &t->model.vae, &img);
        if (st == TI_OK) st = upload_f32(t, &pe, post_eps, 4, lsh, t->fdtype);
        if (st == TI_OK) st = ti_vae_sample(&t->ctx, &z0, &t->model.vae, &mom, &pe);
        if (st == TI_OK) st = ti_scale(&t->ctx, &z, &z0, c->model.scale_factor);
        /* 2. q_sample: x_t = sqrt(ab_t) z + sqrt(1 - ab_t) noise, coefficients per image */
        for (int b = 0; b < B; b++) {
            coef[b] = t->sqrt_ab[timesteps[b]];
            coef[B + b] = t->sqrt_1m_ab[timesteps[b]];
            coef[2 * B + b] = (float)timesteps[b];
        }
        int64_t csh[4] = {B, 1, 1, 1};
        if (st == TI_OK) st = upload_f32(t, &nz, noise, 4, lsh, t->fdtype);
        if (st == TI_OK) st = upload_f32(t, &ca, coef, 4, csh, t->fdtype);
        if (st == TI_OK) st = upload_f32(t, &cb, coef + B, 4, csh, t->fdtype);
        if (st == TI_OK) st = ti_mul(&t->ctx, &x1, &z, &ca);
        if (st == TI_OK) st = ti_mul(&t->ctx, &x2, &nz, &cb);
        if (st == TI_OK) st = ti_add(&t->ctx, &xt, &x1, &x2);
        /* x_t in the UNet's dtype (x1 is free by now), unless its residual stream is to be f32 */
        if (st == TI_OK && xt.dtype != t->dtype && !unet_f32_stream()) {
            ti_tensor_release(&x1);
            st = ti_copy(&t->ctx, &x1, &xt, t->dtype);
            ti_tensor_release(&xt);
            xt = x1;
            x1 = ti_tensor_none();
        }
        /* the UNet takes t as f32 whatever its dtype */
        int64_t tsh[1] = {B};
        if (st == TI_OK) st = ti_ctx_upload(&t->ctx, &tt, coef + 2 * B, TI_DTYPE_F32, 1, tsh);
    }
    ti_ctx_no_grad_end(&t->ctx);
    if (st != TI_OK) {
        st = ctx_fail(t, st, "encoding the images", err);
        goto fail;
    }
    ti_tensor_release(&img);
    ti_tensor_release(&mom);
    ti_tensor_release(&pe);
    ti_tensor_release(&z0);
    ti_tensor_release(&z);
    ti_tensor_release(&x1);
    ti_tensor_release(&x2);
    ti_tensor_release(&ca);
    ti_tensor_release(&cb);
    /* 3. the conditioning, with the rows watched */
    TI_TRY_GOTO(st, ti_emb_manager_batch_ids(&t->em, t->tok, captions, B, ids, T77, err));
    {
        int64_t ish[2] = {B, T77}, rsh[2] = {t->em.n_rows, t->em.dim};
        CK(st, ti_ctx_upload(&t->ctx, &idx, ids, TI_DTYPE_I32, 2, ish), "token ids");
        CK(st, upload_f32(t, &rows, t->em.rows, 2, rsh, t->fdtype), "rows");
        CK(st, ti_ctx_zeros(&t->ctx, &grow, t->fdtype, 2, rsh), "rows gradient");
        CK(st, ti_tape_watch(&t->ctx, &rows, &grow), "watching the rows");
        for (int i = 0; i < t->n_mp; i++)
            CK(st, ti_tape_watch(&t->ctx, t->mp[i].w, &t->mp[i].g), "watching the weights");
    }
    CK(st, ti_text_encoder_forward(&t->ctx, &cond, &t->model.text, &idx, &rows), "text encoder");
    CK(st, ti_unet_forward(&t->ctx, &eps_hat, &t->model.unet, &xt, &tt, &cond), "UNet");
    if (eps_hat.dtype != nz.dtype) { /* the loss in f32 against the f32 noise */
        struct ti_tensor e = ti_tensor_none();
        CK(st, ti_copy(&t->ctx, &e, &eps_hat, nz.dtype), "loss");
        ti_tensor_release(&eps_hat);
        eps_hat = e;
    }
    CK(st, ti_mse_loss(&t->ctx, &l, &eps_hat, &nz), "loss");
    ti_tensor_release(&cond);
    ti_tensor_release(&eps_hat);
    ti_tensor_release(&xt);
    double lv;
    {
        struct ti_tensor l64;
        CK(st, ti_copy(&t->ctx, &l64, &l, TI_DTYPE_F64), "loss");
        st = ti_ctx_download(&t->ctx, &lv, sizeof lv, &l64);
        ti_tensor_release(&l64);
        if (st != TI_OK) {
            st = ctx_fail(t, st, "loss", err);
            goto fail;
        }
    }
    /* 4. backward to the rows only */
    CK(st, ti_tape_backward(&t->ctx, &l, NULL), "backward");
    CK(st, download_f32(t, g, t->n_param, &grow), "rows gradient");
    for (size_t i = 0; i < t->n_param; i++)
        t->grad[i] += g[i];
    if (loss_simple) *loss_simple = lv;
    if (c->model.embedding_reg_weight > 0)
        lv += c->model.embedding_reg_weight *
              ti_emb_manager_reg_loss(&t->em, c->model.embedding_reg_weight, t->grad);
    if (loss) *loss = lv;
    t->accum++;
fail:
    if (st != TI_OK) ti_tape_clear(&t->ctx);
    for (int i = 0; i < t->n_mp; i++) /* the tape has forgotten the slots; so do the weights */
        t->mp[i].w->grad = -1;
    {
        struct ti_tensor *all[] = {&img, &mom, &pe,  &z0,   &z,    &nz,   &ca,      &cb, &x1,
                                   &x2,  &xt,  &idx, &rows, &grow, &cond, &eps_hat, &l,  &tt};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            ti_tensor_release(all[i]);
    }
    free(ids);
    free(coef);
    return st;
}

ti_status ti_trainer_forward_backward(struct ti_trainer *t, const float *images,
                                      const char *const *captions, int batch, double *loss,
                                      struct ti_err *err) {
    if (batch < 1)
        return ti_error(err, TI_ERR_INVALID, "trainer: batch of %d images; expected >= 1", batch);
    int h = t->cfg.pixel_size / t->cfg.vae.downsample;
    size_t n = (size_t)batch * (size_t)t->cfg.vae.embed_dim * (size_t)h * (size_t)h;
    if (n > t->scratch_n || batch > t->scratch_b) {
        free(t->noise);
        free(t->eps);
        free(t->ts);
        t->noise = malloc(n * sizeof(float));
        t->eps = malloc(n * sizeof(float));
        t->ts = malloc((size_t)batch * sizeof(int));
        t->scratch_n = t->noise && t->eps && t->ts ? n : 0;
        t->scratch_b = t->scratch_n ? batch : 0;
        if (!t->scratch_n) return ti_error(err, TI_ERR_NOMEM, "trainer: out of memory");
    }
    /* the peer's order: the posterior sample (in encode), then t, then the noise */
    ti_rng_normal_f32(&t->rng, t->eps, n);
    for (int b = 0; b < batch; b++)
        t->ts[b] = (int)ti_rng_below(&t->rng, (uint64_t)t->T);
    ti_rng_normal_f32(&t->rng, t->noise, n);
    return ti_trainer_step_explicit(t, images, captions, batch, t->ts, t->noise, t->eps, loss, NULL,
                                    err);
}

float *ti_trainer_grad(struct ti_trainer *t, size_t *n) {
    if (n) *n = t->n_param;
    return t->grad;
}

void ti_trainer_zero_grad(struct ti_trainer *t) {
    if (t->grad) memset(t->grad, 0, (size_t)t->n_param * sizeof *t->grad);
    for (int i = 0; i < t->n_mp; i++)
        (void)ti_ctx_zero(&t->ctx, &t->mp[i].g);
    t->accum = 0;
}

/* torch.optim.AdamW (torch 1.10-1.13 _single_tensor_adamw) at step s, in f32 as torch runs it on
 * f32 parameters: the scalars are Python doubles cast to float at each op. g is divided by the
 * micro-batch count first (accum > 1). */
static void adamw_f32(float *p, const float *grad, float *m, float *v, size_t n, double lr,
                      int64_t step, int64_t accum) {
    double s = (double)step;
    float decay = (float)(1.0 - lr * ADAM_WD);
    float b1 = (float)ADAM_BETA1, b2 = (float)ADAM_BETA2;
    float omb1 = (float)(1.0 - ADAM_BETA1), omb2 = (float)(1.0 - ADAM_BETA2);
    double bc1 = 1.0 - pow(ADAM_BETA1, s), bc2 = 1.0 - pow(ADAM_BETA2, s);
    float step_size = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)ADAM_EPS;
    float inv_accum = accum > 1 ? 1.0f / (float)accum : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float g = accum > 1 ? grad[i] * inv_accum : grad[i];
        p[i] = p[i] * decay;
        m[i] = m[i] * b1;
        m[i] = m[i] + omb1 * g;
        v[i] = v[i] * b2;
        v[i] = v[i] + omb2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + step_size * (m[i] / denom);
    }
}

/* host f32 (n elements) -> an existing tensor of the same shape (any dtype) */
static ti_status store_f32(struct ti_trainer *t, struct ti_tensor *dst, const float *host) {
    struct ti_tensor h;
    TI_TRY(upload_f32(t, &h, host, dst->ndim, dst->shape, dst->dtype));
    ti_status st = ti_ctx_copy_into(&t->ctx, dst, &h);
    ti_tensor_release(&h);
    return st;
}

ti_status ti_trainer_optimizer_step(struct ti_trainer *t, struct ti_err *err) {
    if (t->accum == 0) return TI_OK;
    t->step++;
    adamw_f32(t->em.rows, t->grad, t->m, t->v, t->n_param, t->lr * t->lr_factor, t->step, t->accum);
    memset(t->grad, 0, t->n_param * sizeof *t->grad);
    ti_status st = TI_OK;
    for (int i = 0; i < t->n_mp; i++) {
        struct mparam *p = &t->mp[i];
        st = download_f32(t, t->hp_buf, p->n, p->w);
        if (st == TI_OK) st = download_f32(t, t->hg_buf, p->n, &p->g);
        if (st != TI_OK) break;
        adamw_f32(t->hp_buf, t->hg_buf, p->m, p->v, p->n, t->model_lr * t->lr_factor, t->step,
                  t->accum);
        st = store_f32(t, p->w, t->hp_buf);
        if (st == TI_OK) st = ti_ctx_zero(&t->ctx, &p->g);
        if (st != TI_OK) break;
    }
    t->accum = 0;
    if (st != TI_OK) return ctx_fail(t, st, "updating the model weights", err);
    return TI_OK;
}

ti_status ti_trainer_param_grad(struct ti_trainer *t, const char *key, float *out, size_t n,
                                struct ti_err *err) {
    for (int i = 0; i < t->n_mp; i++) {
        struct mparam *p = &t->mp[i];
        if (strcmp(p->key, key) != 0) continue;
        if (n != p->n)
            return ti_error(err, TI_ERR_SHAPE, "trainer: '%s' has %zu elements, not %zu", key, p->n,
                            n);
        ti_status st = download_f32(t, out, n, &p->g);
        return st == TI_OK ? TI_OK : ctx_fail(t, st, key, err);
    }
    return ti_error(err, TI_ERR_NOT_FOUND,
                    "trainer: '%s' is not a trained weight (unfreeze_model is %s)", key,
                    t->n_mp ? "on" : "off");
}

int ti_trainer_n_model_params(const struct ti_trainer *t) {
    return t->n_mp;
}

struct ti_emb_manager *ti_trainer_embeddings(struct ti_trainer *t) {
    return &t->em;
}
struct ti_ldm *ti_trainer_model(struct ti_trainer *t) {
    return &t->model;
}
const struct ti_tokenizer *ti_trainer_tokenizer(const struct ti_trainer *t) {
    return t->tok;
}
int64_t ti_trainer_step(const struct ti_trainer *t) {
    return t->step;
}
double ti_trainer_lr(const struct ti_trainer *t) {
    return t->lr * t->lr_factor;
}

void ti_trainer_set_lr_factor(struct ti_trainer *t, double f) {
    t->lr_factor = f;
}
void ti_trainer_latent_shape(const struct ti_trainer *t, int *channels, int *factor) {
    if (channels) *channels = t->cfg.vae.embed_dim;
    if (factor) *factor = t->cfg.vae.downsample;
}
struct ti_ctx *ti_trainer_ctx(struct ti_trainer *t) {
    return &t->ctx;
}

/* ---- the resume state -------------------------------------------------------------------------
 */

/* Layout (little-endian): "TITRAINS", u32 version, u32 n_terms, i32 n_rows, i32 dim, i64 step,
 * i64 accum, i64 progressive_counter, u64 rng[4], then per term u32 length + placeholder bytes +
 * i32 n_vectors, then f32 rows, m, v, grad (n_rows*dim each), then u32 n_model (0 unless
 * unfreeze_model) and per trained weight u32 length + key + u64 n + f32 weight, m, v, grad (n
 * each), then u32 CRC-32 of all before. */
struct wbuf {
    struct ti_outfile f;
    uint32_t crc;
};

static ti_status put(struct wbuf *w, const void *p, size_t n, struct ti_err *err) {
    w->crc = ti_crc32(w->crc, p, n);
    return ti_outfile_write(&w->f, p, n, err);
}

ti_status ti_trainer_save_state(const struct ti_trainer *t, const char *path, struct ti_err *err) {
    struct wbuf w = {.crc = 0};
    TI_TRY(ti_outfile_open(&w.f, path, err));
    ti_status st = TI_OK;
    uint32_t ver = STATE_VERSION, nt = (uint32_t)t->em.n_terms;
    int32_t nr = t->em.n_rows, dim = t->em.dim;
    TI_TRY_GOTO(st, put(&w, STATE_MAGIC, 8, err));
    TI_TRY_GOTO(st, put(&w, &ver, 4, err));
    TI_TRY_GOTO(st, put(&w, &nt, 4, err));
    TI_TRY_GOTO(st, put(&w, &nr, 4, err));
    TI_TRY_GOTO(st, put(&w, &dim, 4, err));
    TI_TRY_GOTO(st, put(&w, &t->step, 8, err));
    TI_TRY_GOTO(st, put(&w, &t->accum, 8, err));
    TI_TRY_GOTO(st, put(&w, &t->em.progressive_counter, 8, err));
    TI_TRY_GOTO(st, put(&w, t->rng.s, sizeof t->rng.s, err));
    for (int i = 0; i < t->em.n_terms; i++) {
        uint32_t len = (uint32_t)strlen(t->em.terms[i].placeholder);
        int32_t nv = t->em.terms[i].n_vectors;
        TI_TRY_GOTO(st, put(&w, &len, 4, err));
        TI_TRY_GOTO(st, put(&w, t->em.terms[i].placeholder, len, err));
        TI_TRY_GOTO(st, put(&w, &nv, 4, err));
    }
    const float *arrays[4] = {t->em.rows, t->m, t->v, t->grad};
    for (int a = 0; a < 4; a++)
        TI_TRY_GOTO(st, put(&w, arrays[a], t->n_param * sizeof(float), err));
    /* unfreeze_model: each trained weight with its moments and gradient (downloading goes
     * through the trainer's context, which is why the const is cast away) */
    struct ti_trainer *mt = (struct ti_trainer *)t;
    uint32_t nmp = (uint32_t)t->n_mp;
    TI_TRY_GOTO(st, put(&w, &nmp, 4, err));
    for (int i = 0; i < t->n_mp; i++) {
        const struct mparam *p = &t->mp[i];
        uint32_t len = (uint32_t)strlen(p->key);
        uint64_t n = p->n;
        TI_TRY_GOTO(st, put(&w, &len, 4, err));
        TI_TRY_GOTO(st, put(&w, p->key, len, err));
        TI_TRY_GOTO(st, put(&w, &n, 8, err));
        st = download_f32(mt, t->hp_buf, p->n, p->w);
        if (st == TI_OK) st = download_f32(mt, t->hg_buf, p->n, &p->g);
        if (st != TI_OK) {
            st = ctx_fail(mt, st, "saving the model weights", err);
            goto fail;
        }
        TI_TRY_GOTO(st, put(&w, t->hp_buf, p->n * sizeof(float), err));
        TI_TRY_GOTO(st, put(&w, p->m, p->n * sizeof(float), err));
        TI_TRY_GOTO(st, put(&w, p->v, p->n * sizeof(float), err));
        TI_TRY_GOTO(st, put(&w, t->hg_buf, p->n * sizeof(float), err));
    }
    uint32_t crc = w.crc;
    TI_TRY_GOTO(st, ti_outfile_write(&w.f, &crc, 4, err));
    return ti_outfile_commit(&w.f, err);
fail:
    ti_outfile_abort(&w.f);
    return st;
}

struct rbuf {
    const uint8_t *p;
    uint64_t left;
};

static int take(struct rbuf *r, void *dst, uint64_t n) {
    if (r->left < n) return -1;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

ti_status ti_trainer_load_state(struct ti_trainer *t, const char *path, struct ti_err *err) {
    struct ti_fmap fm;
    TI_TRY(ti_fmap_open(&fm, path, err));
    ti_status st = TI_OK;
    struct rbuf r = {fm.data, fm.size};
    char magic[8];
    uint32_t ver, nt, crc;
    int32_t nr, dim;
    int64_t step, accum, counter;
    uint64_t s[4];
    if (fm.size < 12 || take(&r, magic, 8) || memcmp(magic, STATE_MAGIC, 8) || take(&r, &ver, 4)) {
        st = ti_error(err, TI_ERR_FORMAT, "'%s' is not a ti trainer state file", path);
        goto done;
    }
    if (ver != STATE_VERSION) {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s': trainer state version %u; this ti reads version %u (restart the run "
                      "from its last embedding file with embedding_manager_ckpt)",
                      path, ver, STATE_VERSION);
        goto done;
    }
    memcpy(&crc, fm.data + fm.size - 4, 4);
    if (ti_crc32(0, fm.data, fm.size - 4) != crc) {
        st = ti_error(err, TI_ERR_FORMAT, "'%s': trainer state is damaged (CRC mismatch)", path);
        goto done;
    }
    r.left -= 4; /* the CRC */
    if (take(&r, &nt, 4) || take(&r, &nr, 4) || take(&r, &dim, 4) || take(&r, &step, 8) ||
        take(&r, &accum, 8) || take(&r, &counter, 8) || take(&r, s, sizeof s))
        goto truncated;
    if ((int)nt != t->em.n_terms || nr != t->em.n_rows || dim != t->em.dim) {
        st = ti_error(err, TI_ERR_SHAPE,
                      "'%s': trainer state of %u placeholder(s), %d vectors of width %d; this run "
                      "has %d, %d of width %d (was it written with another config?)",
                      path, nt, nr, dim, t->em.n_terms, t->em.n_rows, t->em.dim);
        goto done;
    }
    for (uint32_t i = 0; i < nt; i++) {
        uint32_t len;
        int32_t nv;
        char ph[TI_CFG_WORD_MAX * 4];
        if (take(&r, &len, 4) || len >= sizeof ph || take(&r, ph, len)) goto truncated;
        ph[len] = 0;
        if (take(&r, &nv, 4)) goto truncated;
        if (strcmp(ph, t->em.terms[i].placeholder) || nv != t->em.terms[i].n_vectors) {
            st = ti_error(err, TI_ERR_SHAPE,
                          "'%s': placeholder %u is '%s' with %d vectors in the state file, '%s' "
                          "with %d in this run",
                          path, i, ph, nv, t->em.terms[i].placeholder, t->em.terms[i].n_vectors);
            goto done;
        }
    }
    /* check the model section's layout before anything is overwritten */
    {
        struct rbuf q = r;
        uint32_t nmp, len;
        uint64_t n;
        if (q.left < 4 * t->n_param * sizeof(float)) goto truncated;
        q.p += 4 * t->n_param * sizeof(float);
        q.left -= 4 * t->n_param * sizeof(float);
        if (take(&q, &nmp, 4)) goto truncated;
        if ((int)nmp != t->n_mp) {
            st = ti_error(err, TI_ERR_SHAPE,
                          "'%s': the state holds %u trained model weights, this run trains %d "
                          "(unfreeze_model differs?)",
                          path, nmp, t->n_mp);
            goto done;
        }
        for (int i = 0; i < t->n_mp; i++) {
            if (take(&q, &len, 4) || q.left < len) goto truncated;
            if (len != strlen(t->mp[i].key) || memcmp(q.p, t->mp[i].key, len) != 0) {
                st = ti_error(err, TI_ERR_SHAPE,
                              "'%s': model weight %d of the state is not '%s' of this run", path, i,
                              t->mp[i].key);
                goto done;
            }
            q.p += len;
            q.left -= len;
            if (take(&q, &n, 8) || n != t->mp[i].n || q.left < 4 * n * sizeof(float))
                goto truncated;
            q.p += 4 * n * sizeof(float);
            q.left -= 4 * n * sizeof(float);
        }
        if (q.left != 0) goto truncated;
    }
    float *arrays[4] = {t->em.rows, t->m, t->v, t->grad};
    for (int a = 0; a < 4; a++)
        if (take(&r, arrays[a], t->n_param * sizeof(float))) goto truncated;
    r.p += 4;
    r.left -= 4;
    for (int i = 0; i < t->n_mp; i++) {
        struct mparam *p = &t->mp[i];
        r.p += 4 + strlen(p->key) + 8;
        r.left -= 4 + strlen(p->key) + 8;
        if (take(&r, t->hp_buf, p->n * sizeof(float)) || take(&r, p->m, p->n * sizeof(float)) ||
            take(&r, p->v, p->n * sizeof(float)) || take(&r, t->hg_buf, p->n * sizeof(float)))
            goto truncated;
        st = store_f32(t, p->w, t->hp_buf);
        if (st == TI_OK) st = store_f32(t, &p->g, t->hg_buf);
        if (st != TI_OK) {
            st = ctx_fail(t, st, "loading the model weights", err);
            goto done;
        }
    }
    t->step = step;
    t->accum = accum;
    t->em.progressive_counter = counter;
    memcpy(t->rng.s, s, sizeof s);
    goto done;
truncated:
    st = ti_error(err, TI_ERR_FORMAT, "'%s': trainer state is truncated or malformed", path);
done:
    ti_fmap_close(&fm);
    return st;
}
