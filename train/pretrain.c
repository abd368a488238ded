/*
 * pretrain.c - the from-scratch training steps of ti-pretrain (pretrain.h): AdamW over weight
 * tables, the autoencoder step, the joint text-encoder + UNet step.
 */
#include "pretrain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "tape.h"

/* An op failed: its message is in ctx->err; hand it on with what we were doing. */
static ti_status ctx_fail(struct ti_ctx *ctx, ti_status st, const char *what, struct ti_err *err) {
    if (!err->msg[0] || strcmp(err->msg, ctx->err.msg) != 0)
        return ti_error(err, st, "pretrain: %s: %s", what, ctx->err.msg);
    return st;
}
#define CK(st, expr, what)                                                                         \
    do {                                                                                           \
        if ((st = (expr)) != TI_OK) {                                                              \
            st = ctx_fail(ctx, st, what, err);                                                     \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* ---- AdamW over a weight table --------------------------------------------------------------- */

ti_status ti_wopt_init(struct ti_wopt *o, struct ti_weights *w, const struct ti_adamw_hp *hp,
                       struct ti_err *err) {
    memset(o, 0, sizeof *o);
    o->w = w;
    o->hp = *hp;
    ti_weights_thaw(w); /* trained from here on (weights.h) */
    if (w->dtype != TI_DTYPE_F32 || !w->be || w->be->device != TI_DEVICE_CPU)
        return ti_error(err, TI_ERR_UNSUPPORTED,
                        "pretrain: AdamW needs the weights as f32 on the CPU backend");
    size_t n = 0;
    o->offset = calloc((size_t)w->n + 1, sizeof *o->offset);
    o->gview = calloc((size_t)w->n + 1, sizeof *o->gview);
    o->skip = calloc((size_t)w->n + 1, 1);
    if (!o->offset || !o->gview || !o->skip) goto nomem;
    for (int i = 0; i < w->n; i++) {
        o->offset[i] = n;
        n += (size_t)ti_tensor_numel(w->items[i].slot);
    }
    o->n = n;
    o->grad = calloc(n ? n : 1, sizeof *o->grad);
    o->m = calloc(n ? n : 1, sizeof *o->m);
    o->v = calloc(n ? n : 1, sizeof *o->v);
    if (!o->grad || !o->m || !o->v) goto nomem;
    for (int i = 0; i < w->n; i++) {
        const struct ti_tensor *p = w->items[i].slot;
        o->gview[i] =
            ti_tensor_view(o->grad + o->offset[i], TI_DTYPE_F32, TI_DEVICE_CPU, p->ndim, p->shape);
    }
    return TI_OK;
nomem:
    ti_wopt_free(o);
    return ti_error(err, TI_ERR_NOMEM, "pretrain: out of memory for the optimizer state");
}

void ti_wopt_free(struct ti_wopt *o) {
    free(o->offset);
    free(o->gview);
    free(o->skip);
    free(o->grad);
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

static int find_slot(const struct ti_wopt *o, const struct ti_tensor *slot) {
    for (int i = 0; i < o->w->n; i++)
        if (o->w->items[i].slot == slot) return i;
    return -1;
}

void ti_wopt_skip(struct ti_wopt *o, const struct ti_tensor *slot, int update) {
    int i = find_slot(o, slot);
    if (i >= 0) o->skip[i] = update ? 1 : 2;
}

struct ti_tensor ti_wopt_grad_view(const struct ti_wopt *o, const struct ti_tensor *slot) {
    int i = find_slot(o, slot);
    return i >= 0 ? o->gview[i] : ti_tensor_none();
}

ti_status ti_wopt_watch(struct ti_wopt *o, struct ti_ctx *ctx) {
    for (int i = 0; i < o->w->n; i++)
        if (!o->skip[i]) TI_TRY(ti_tape_watch(ctx, o->w->items[i].slot, &o->gview[i]));
    return TI_OK;
}

void ti_wopt_unwatch(struct ti_wopt *o) {
    for (int i = 0; i < o->w->n; i++)
        o->w->items[i].slot->grad = -1;
}

/* torch.optim.AdamW's single-tensor update in f32 (the scalars are doubles cast to float). */
void ti_wopt_step(struct ti_wopt *o, double lr) {
    /* the table is being trained: never served from the CPU backend's frozen-weight copies (a
     * load or randomize since ti_wopt_init froze it again) */
    ti_weights_thaw(o->w);
    o->step++;
    double s = (double)o->step;
    float decay = (float)(1.0 - lr * o->hp.weight_decay);
    float b1 = (float)o->hp.beta1, b2 = (float)o->hp.beta2;
    float omb1 = (float)(1.0 - o->hp.beta1), omb2 = (float)(1.0 - o->hp.beta2);
    double bc1 = 1.0 - pow(o->hp.beta1, s), bc2 = 1.0 - pow(o->hp.beta2, s);
    float step_size = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->hp.eps;
    for (int k = 0; k < o->w->n; k++) {
        size_t a = o->offset[k], b = a + (size_t)ti_tensor_numel(o->w->items[k].slot);
        if (o->skip[k] == 2) {
            memset(o->grad + a, 0, (b - a) * sizeof *o->grad);
            continue;
        }
        float *p = (float *)o->w->items[k].slot->data - a;
        for (size_t i = a; i < b; i++) {
            float g = o->grad[i];
            p[i] = p[i] * decay;
            o->m[i] = o->m[i] * b1 + omb1 * g;
            o->v[i] = o->v[i] * b2 + omb2 * g * g;
            float denom = sqrtf(o->v[i]) / bc2_sqrt + eps;
            p[i] = p[i] + step_size * (o->m[i] / denom);
            o->grad[i] = 0.0f;
        }
    }
}

/* ---- helpers ------------------------------------------------------------------------------- */

static ti_status scalar_of(struct ti_ctx *ctx, const struct ti_tensor *t, double *v) {
    struct ti_tensor t64 = ti_tensor_none();
    ti_ctx_no_grad_begin(ctx);
    ti_status st = ti_copy(ctx, &t64, t, TI_DTYPE_F64);
    ti_ctx_no_grad_end(ctx);
    if (st == TI_OK) st = ti_ctx_download(ctx, v, sizeof *v, &t64);
    ti_tensor_release(&t64);
    return st;
}

static void release_all(struct ti_tensor *const *ts, size_t n) {
    for (size_t i = 0; i < n; i++)
        ti_tensor_release(ts[i]);
}

/* q_sample under no_grad: *xt = sqrt(ab_t) z + sqrt(1 - ab_t) noise, with the noise as *nz and
 * the timesteps t (clamped to the schedule for ab_t) as *tt. */
static ti_status q_sample(struct ti_ctx *ctx, struct ti_tensor *xt, struct ti_tensor *nz,
                          struct ti_tensor *tt, const struct ti_schedule *s, const int *t,
                          const float *z, const float *noise, int B, int C, int h,
                          struct ti_err *err) {
    ti_status st = TI_OK;
    float *coef = malloc((size_t)B * 3 * sizeof *coef);
    if (!coef) return ti_error(err, TI_ERR_NOMEM, "pretrain: out of memory");
    for (int b = 0; b < B; b++) {
        double ab = (double)s->alphas_cumprod_f32[t[b] < 0 ? 0 : t[b] >= s->T ? s->T - 1 : t[b]];
        coef[b] = (float)sqrt(ab);
        coef[B + b] = (float)sqrt(1.0 - ab);
        coef[2 * B + b] = (float)t[b];
    }
    struct ti_tensor zt = ti_tensor_none(), ca = ti_tensor_none(), cb = ti_tensor_none(),
                     x1 = ti_tensor_none(), x2 = ti_tensor_none();
    int64_t lsh[4] = {B, C, h, h}, csh[4] = {B, 1, 1, 1}, tsh[1] = {B};
    CK(st, ti_ctx_upload(ctx, &zt, z, TI_DTYPE_F32, 4, lsh), "latents");
    CK(st, ti_ctx_upload(ctx, nz, noise, TI_DTYPE_F32, 4, lsh), "noise");
    CK(st, ti_ctx_upload(ctx, &ca, coef, TI_DTYPE_F32, 4, csh), "q_sample");
    CK(st, ti_ctx_upload(ctx, &cb, coef + B, TI_DTYPE_F32, 4, csh), "q_sample");
    CK(st, ti_mul(ctx, &x1, &zt, &ca), "q_sample");
    CK(st, ti_mul(ctx, &x2, nz, &cb), "q_sample");
    CK(st, ti_add(ctx, xt, &x1, &x2), "q_sample");
    CK(st, ti_ctx_upload(ctx, tt, coef + 2 * B, TI_DTYPE_F32, 1, tsh), "timesteps");
fail:
    ti_tensor_release(&zt);
    ti_tensor_release(&ca);
    ti_tensor_release(&cb);
    ti_tensor_release(&x1);
    ti_tensor_release(&x2);
    free(coef);
    return st;
}

/* ---- stage 1: the autoencoder -------------------------------------------------------------- */

ti_status ti_pretrain_vae_step(struct ti_ctx *ctx, struct ti_ldm *m, struct ti_wopt *o,
                               const float *images, const float *eps, int B, double kl_weight,
                               double lr, double *rec, double *kl, struct ti_err *err) {
    const struct ti_vae_hparams *hp = &m->vae_hp;
    int S = hp->resolution, f = 1 << (hp->n_levels - 1), C = hp->embed_dim, h = S / f;
    ti_status st = TI_OK;
    struct ti_tensor x = ti_tensor_none(), e = ti_tensor_none(), mom = ti_tensor_none(),
                     z = ti_tensor_none(), y = ti_tensor_none(), lrec = ti_tensor_none(),
                     mu = ti_tensor_none(), lv = ti_tensor_none(), muc = ti_tensor_none(),
                     lvc = ti_tensor_none(), zero = ti_tensor_none(), m2 = ti_tensor_none(),
                     ev = ti_tensor_none(), evm = ti_tensor_none(), lvm = ti_tensor_none(),
                     k1 = ti_tensor_none(), k2 = ti_tensor_none(), loss = ti_tensor_none();
    struct ti_tensor *const tmp[] = {&x,   &e,   &zero, &mom, &z,   &y,   &lrec, &mu, &lv,
                                     &muc, &lvc, &m2,   &ev,  &evm, &lvm, &k1,   &k2};
    if (!ctx->tape) return ti_error(err, TI_ERR_INVALID, "pretrain: the context has no tape");
    int64_t ish[4] = {B, 3, S, S}, lsh[4] = {B, C, h, h};
    CK(st, ti_ctx_upload(ctx, &x, images, TI_DTYPE_F32, 4, ish), "images");
    CK(st, ti_ctx_upload(ctx, &e, eps, TI_DTYPE_F32, 4, lsh), "posterior noise");
    CK(st, ti_ctx_zeros(ctx, &zero, TI_DTYPE_F32, 4, lsh), "zeros");
    CK(st, ti_wopt_watch(o, ctx), "watching the autoencoder");
    CK(st, ti_vae_encode(ctx, &mom, &m->vae, &x), "encoder");
    CK(st, ti_vae_sample(ctx, &z, &m->vae, &mom, &e), "posterior sample");
    CK(st, ti_vae_decode(ctx, &y, &m->vae, &z), "decoder");
    CK(st, ti_mse_loss(ctx, &lrec, &y, &x), "reconstruction loss");
    /* KL(N(mu, var) || N(0, 1)) per element = 0.5 (mu^2 + var - 1 - logvar) */
    CK(st, ti_slice(ctx, &mu, &mom, 1, 0, C), "mean");
    CK(st, ti_slice(ctx, &lv, &mom, 1, C, C), "logvar");
    CK(st, ti_contiguous(ctx, &muc, &mu), "mean");
    CK(st, ti_unary(ctx, &lvc, &lv, TI_UNARY_CLAMP, -30.0, 20.0), "logvar");
    CK(st, ti_mse_loss(ctx, &m2, &muc, &zero), "KL");
    CK(st, ti_unary(ctx, &ev, &lvc, TI_UNARY_EXP, 1.0, 0.0), "KL");
    CK(st, ti_mean(ctx, &evm, &ev, 0, NULL, 0), "KL");
    CK(st, ti_mean(ctx, &lvm, &lvc, 0, NULL, 0), "KL");
    CK(st, ti_add(ctx, &k1, &m2, &evm), "KL");
    CK(st, ti_axpby(ctx, &k2, 0.5, &k1, -0.5, &lvm), "KL"); /* + const -0.5 */
    CK(st, ti_axpby(ctx, &loss, 1.0, &lrec, kl_weight, &k2), "loss");
    double r = 0, k = 0;
    CK(st, scalar_of(ctx, &lrec, &r), "reading the loss");
    CK(st, scalar_of(ctx, &k2, &k), "reading the loss");
    if (rec) *rec = r;
    if (kl) *kl = k - 0.5;
    release_all(tmp, sizeof tmp / sizeof *tmp);
    CK(st, ti_tape_backward(ctx, &loss, NULL), "backward");
    ti_tensor_release(&loss);
    ti_wopt_unwatch(o);
    ti_wopt_step(o, lr);
    return TI_OK;
fail:
    ti_tape_clear(ctx);
    ti_wopt_unwatch(o);
    memset(o->grad, 0, o->n * sizeof *o->grad);
    release_all(tmp, sizeof tmp / sizeof *tmp);
    ti_tensor_release(&loss);
    return st;
}

ti_status ti_pretrain_latents(struct ti_ctx *ctx, const struct ti_ldm *m, const float *images,
                              const float *eps, int B, double scale, float *z, struct ti_err *err) {
    const struct ti_vae_hparams *hp = &m->vae_hp;
    int S = hp->resolution, f = 1 << (hp->n_levels - 1), C = hp->embed_dim, h = S / f;
    ti_status st = TI_OK;
    struct ti_tensor x = ti_tensor_none(), e = ti_tensor_none(), mom = ti_tensor_none(),
                     z0 = ti_tensor_none(), zs = ti_tensor_none();
    int64_t ish[4] = {B, 3, S, S}, lsh[4] = {B, C, h, h};
    ti_ctx_no_grad_begin(ctx);
    CK(st, ti_ctx_upload(ctx, &x, images, TI_DTYPE_F32, 4, ish), "images");
    if (eps) CK(st, ti_ctx_upload(ctx, &e, eps, TI_DTYPE_F32, 4, lsh), "posterior noise");
    CK(st, ti_vae_encode(ctx, &mom, &m->vae, &x), "encoder");
    CK(st, ti_vae_sample(ctx, &z0, &m->vae, &mom, eps ? &e : NULL), "posterior sample");
    CK(st, ti_scale(ctx, &zs, &z0, scale), "scale");
    CK(st, ti_ctx_download(ctx, z, (size_t)B * C * h * h * sizeof *z, &zs), "latents");
fail:
    ti_ctx_no_grad_end(ctx);
    ti_tensor_release(&x);
    ti_tensor_release(&e);
    ti_tensor_release(&mom);
    ti_tensor_release(&z0);
    ti_tensor_release(&zs);
    return st;
}

ti_status ti_pretrain_moments(struct ti_ctx *ctx, const struct ti_ldm *m, const float *images,
                              int B, float *mom, struct ti_err *err) {
    const struct ti_vae_hparams *hp = &m->vae_hp;
    int S = hp->resolution, f = 1 << (hp->n_levels - 1), C = hp->embed_dim, h = S / f;
    ti_status st = TI_OK;
    struct ti_tensor x = ti_tensor_none(), mo = ti_tensor_none();
    int64_t ish[4] = {B, 3, S, S};
    ti_ctx_no_grad_begin(ctx);
    CK(st, ti_ctx_upload(ctx, &x, images, TI_DTYPE_F32, 4, ish), "images");
    CK(st, ti_vae_encode(ctx, &mo, &m->vae, &x), "encoder");
    CK(st, ti_ctx_download(ctx, mom, (size_t)B * 2 * C * h * h * sizeof *mom, &mo), "moments");
fail:
    ti_ctx_no_grad_end(ctx);
    ti_tensor_release(&x);
    ti_tensor_release(&mo);
    return st;
}

/* ---- stage 2: text encoder + UNet ---------------------------------------------------------- */

ti_status ti_pretrain_ldm_step(struct ti_ctx *ctx, struct ti_ldm *m, struct ti_wopt *to,
                               struct ti_wopt *uo, const struct ti_schedule *s, const float *z,
                               const float *noise, const int *t, const int32_t *ids, int B,
                               double lr, double *loss, struct ti_err *err) {
    int C = m->unet_hp.in_channels, h = m->vae_hp.resolution >> (m->vae_hp.n_levels - 1);
    int T77 = TI_TOKENS_MAX;
    ti_status st = TI_OK;
    struct ti_tensor nz = ti_tensor_none(), xt = ti_tensor_none(), tt = ti_tensor_none(),
                     idx = ti_tensor_none(), cond = ti_tensor_none(), eps = ti_tensor_none(),
                     l = ti_tensor_none();
    struct ti_tensor *const tmp[] = {&nz, &xt, &tt, &idx, &cond, &eps};
    if (!ctx->tape) return ti_error(err, TI_ERR_INVALID, "pretrain: the context has no tape");
    for (int b = 0; b < B; b++)
        if (t[b] < 0 || t[b] >= s->T)
            return ti_error(err, TI_ERR_INVALID, "pretrain: timestep %d outside [0, %d)", t[b],
                            s->T);
    int32_t *neg = malloc((size_t)B * (size_t)T77 * sizeof *neg);
    if (!neg) return ti_error(err, TI_ERR_NOMEM, "pretrain: out of memory");
    for (size_t i = 0; i < (size_t)B * (size_t)T77; i++)
        neg[i] = -1 - ids[i];
    /* q_sample outside the tape (nothing trainable before the UNet) */
    int64_t ish[2] = {B, T77};
    ti_ctx_no_grad_begin(ctx);
    if ((st = q_sample(ctx, &xt, &nz, &tt, s, t, z, noise, B, C, h, err)) != TI_OK) goto fail;
    CK(st, ti_ctx_upload(ctx, &idx, neg, TI_DTYPE_I32, 2, ish), "token ids");
    ti_ctx_no_grad_end(ctx);
    {
        /* the token table enters as the trainable rows (a second handle on the same storage) */
        struct ti_tensor rows = m->text.tok_emb;
        struct ti_tensor grows = ti_wopt_grad_view(to, &m->text.tok_emb);
        rows.grad = -1;
        CK(st, ti_wopt_watch(to, ctx), "watching the text encoder");
        CK(st, ti_wopt_watch(uo, ctx), "watching the UNet");
        CK(st, ti_tape_watch(ctx, &rows, &grows), "watching the token table");
        CK(st, ti_text_encoder_forward(ctx, &cond, &m->text, &idx, &rows), "text encoder");
    }
    CK(st, ti_unet_forward(ctx, &eps, &m->unet, &xt, &tt, &cond), "UNet");
    CK(st, ti_mse_loss(ctx, &l, &eps, &nz), "loss");
    release_all(tmp, sizeof tmp / sizeof *tmp);
    CK(st, scalar_of(ctx, &l, loss), "reading the loss");
    CK(st, ti_tape_backward(ctx, &l, NULL), "backward");
    ti_tensor_release(&l);
    ti_wopt_unwatch(to);
    ti_wopt_unwatch(uo);
    ti_wopt_step(to, lr);
    ti_wopt_step(uo, lr);
    free(neg);
    return TI_OK;
fail:
    if (ctx->no_grad > 0) ti_ctx_no_grad_end(ctx);
    ti_tape_clear(ctx);
    ti_wopt_unwatch(to);
    ti_wopt_unwatch(uo);
    memset(to->grad, 0, to->n * sizeof *to->grad);
    memset(uo->grad, 0, uo->n * sizeof *uo->grad);
    release_all(tmp, sizeof tmp / sizeof *tmp);
    ti_tensor_release(&l);
    free(neg);
    return st;
}

ti_status ti_pretrain_eps_loss(struct ti_ctx *ctx, const struct ti_ldm *m,
                               const struct ti_schedule *s, const float *z, const float *noise,
                               const int *t, const int32_t *ids, int B, double *loss,
                               struct ti_err *err) {
    int C = m->unet_hp.in_channels, h = m->vae_hp.resolution >> (m->vae_hp.n_levels - 1);
    ti_status st = TI_OK;
    struct ti_tensor nz = ti_tensor_none(), xt = ti_tensor_none(), tt = ti_tensor_none(),
                     idx = ti_tensor_none(), cond = ti_tensor_none(), eps = ti_tensor_none(),
                     l = ti_tensor_none();
    struct ti_tensor *const tmp[] = {&nz, &xt, &tt, &idx, &cond, &eps};
    int64_t ish[2] = {B, TI_TOKENS_MAX};
    ti_ctx_no_grad_begin(ctx);
    if ((st = q_sample(ctx, &xt, &nz, &tt, s, t, z, noise, B, C, h, err)) != TI_OK) goto fail;
    CK(st, ti_ctx_upload(ctx, &idx, ids, TI_DTYPE_I32, 2, ish), "token ids");
    CK(st, ti_text_encoder_forward(ctx, &cond, &m->text, &idx, NULL), "text encoder");
    CK(st, ti_unet_forward(ctx, &eps, &m->unet, &xt, &tt, &cond), "UNet");
    CK(st, ti_mse_loss(ctx, &l, &eps, &nz), "loss");
    CK(st, scalar_of(ctx, &l, loss), "reading the loss");
fail:
    ti_ctx_no_grad_end(ctx);
    release_all(tmp, sizeof tmp / sizeof *tmp);
    ti_tensor_release(&l);
    return st;
}

ti_status ti_pretrain_encode(struct ti_ctx *ctx, const struct ti_ldm *m,
                             const struct ti_tokenizer *tok, const char *const *prompts, int B,
                             struct ti_tensor *out, struct ti_err *err) {
    *out = ti_tensor_none();
    int32_t *ids = malloc((size_t)B * TI_TOKENS_MAX * sizeof *ids);
    if (!ids) return ti_error(err, TI_ERR_NOMEM, "pretrain: out of memory");
    ti_status st = TI_OK;
    for (int b = 0; b < B && st == TI_OK; b++) {
        struct ti_token_ids ti;
        st = ti_tokenizer_encode(&ti, tok, prompts[b], strlen(prompts[b]), err);
        if (st == TI_OK) memcpy(ids + (size_t)b * TI_TOKENS_MAX, ti.ids, sizeof ti.ids);
    }
    struct ti_tensor idx = ti_tensor_none();
    int64_t ish[2] = {B, TI_TOKENS_MAX};
    if (st != TI_OK) goto done;
    ti_ctx_no_grad_begin(ctx);
    st = ti_ctx_upload(ctx, &idx, ids, TI_DTYPE_I32, 2, ish);
    if (st == TI_OK) st = ti_text_encoder_forward(ctx, out, &m->text, &idx, NULL);
    ti_ctx_no_grad_end(ctx);
    if (st != TI_OK) st = ctx_fail(ctx, st, "text encoder", err);
done:
    ti_tensor_release(&idx);
    free(ids);
    return st;
}
