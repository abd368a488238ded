/*
 * sampler.c - DDIM / PLMS sampling loops with classifier-free guidance, img2img start and the
 * VAE decode to 8-bit images (see sampler.h for the reference arithmetic reproduced here).
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "sampler.h"

#include <math.h>
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h>

#include "ops.h" /* defines: ti_concat */

/* Copies ctx's error (an op failed) into err and returns its status. */
static ti_status ctx_fail(struct ti_ctx *ctx, ti_status st, struct ti_err *err) {
    if (err && err != &ctx->err) {
        err->code = ctx->err.code ? ctx->err.code : st;
        snprintf(err->msg, sizeof err->msg, "%s", ctx->err.msg);
    }
    return st;
}

/* host f32 -> a new tensor of dtype dt on ctx's device */
static ti_status upload_as(struct ti_ctx *ctx, struct ti_tensor *out, const float *host,
                           enum ti_dtype dt, int ndim, const int64_t *shape) {
    if (dt == TI_DTYPE_F32) return ti_ctx_upload(ctx, out, host, TI_DTYPE_F32, ndim, shape);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return TI_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        h[i] = dt == TI_DTYPE_F16 ? ti_f32_to_f16(host[i]) : ti_f32_to_bf16(host[i]);
    ti_status st = ti_ctx_upload(ctx, out, h, dt, ndim, shape);
    free(h);
    return st;
}

/* tensor (f32 / f16 / bf16, any device) -> host f32 (n elements) */
static ti_status download_f32(struct ti_ctx *ctx, float *host, size_t n,
                              const struct ti_tensor *t) {
    if (t->dtype == TI_DTYPE_F32) return ti_ctx_download(ctx, host, n * sizeof(float), t);
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return TI_ERR_NOMEM;
    ti_status st = ti_ctx_download(ctx, h, n * sizeof *h, t);
    for (size_t i = 0; st == TI_OK && i < n; i++)
        host[i] = t->dtype == TI_DTYPE_F16 ? ti_f16_to_f32(h[i]) : ti_bf16_to_f32(h[i]);
    free(h);
    return st;
}

struct run {
    struct ti_ctx *ctx;
    const struct ti_ldm *m;
    struct ti_tensor context; /* (B or 2B, T, D) */
    int cfg;
    float scale;
    int B, C, h, w;
    size_t n; /* B*C*h*w */
    float *xin, *eps2;
    enum ti_dtype dt;
};

/* e (host, n) = the guided noise prediction at timestep t for latent x (host, n). */
static ti_status model_eps(struct run *r, const float *x, int t, float *e, struct ti_err *err) {
    int nb = r->cfg ? 2 * r->B : r->B;
    size_t n = r->n;
    memcpy(r->xin, x, n * sizeof *x);
    if (r->cfg) memcpy(r->xin + n, x, n * sizeof *x);
    float tv[2 * 256];
    for (int i = 0; i < nb; i++)
        tv[i] = (float)t;
    int64_t xs[4] = {nb, r->C, r->h, r->w}, ts[1] = {nb};
    struct ti_tensor xt = ti_tensor_none(), tt = ti_tensor_none(), out = ti_tensor_none();
    ti_status st = upload_as(r->ctx, &xt, r->xin, r->dt, 4, xs);
    if (st == TI_OK) st = ti_ctx_upload(r->ctx, &tt, tv, TI_DTYPE_F32, 1, ts);
    if (st == TI_OK) st = ti_unet_forward(r->ctx, &out, &r->m->unet, &xt, &tt, &r->context);
    if (st == TI_OK) st = download_f32(r->ctx, r->eps2, (size_t)nb * n / (size_t)r->B, &out);
    ti_tensor_release(&xt);
    ti_tensor_release(&tt);
    ti_tensor_release(&out);
    if (st != TI_OK) return ctx_fail(r->ctx, st, err);
    if (!r->cfg) {
        memcpy(e, r->eps2, n * sizeof *e);
    } else {
        const float *eu = r->eps2, *ec = r->eps2 + n;
        for (size_t i = 0; i < n; i++)
            e[i] = eu[i] + r->scale * (ec[i] - eu[i]);
    }
    return TI_OK;
}

/* p_sample_ddim's update at DDIM index `index` (noise NULL: sigma * noise omitted). */
static void ddim_update(const struct ti_ddim_schedule *d, int index, const float *x, const float *e,
                        const float *noise, float *x_prev, float *pred_x0, size_t n) {
    float a_t = d->alphas[index], a_prev = d->alphas_prev[index], sigma = d->sigmas[index];
    float sq1m = d->sqrt_one_minus_alphas[index];
    float sqrt_at = sqrtf(a_t), sqrt_aprev = sqrtf(a_prev);
    float dir_coef = sqrtf(1.0f - a_prev - sigma * sigma);
    for (size_t i = 0; i < n; i++) {
        float p = (x[i] - sq1m * e[i]) / sqrt_at;
        float dir = dir_coef * e[i];
        float v = sqrt_aprev * p + dir;
        if (noise) v = v + sigma * noise[i];
        pred_x0[i] = p;
        x_prev[i] = v;
    }
}

int ti_sampler_n_steps(const struct ti_schedule *s, const struct ti_sampler_opts *o,
                       struct ti_err *err) {
    struct ti_ddim_schedule *d = malloc(sizeof *d);
    if (!d) return ti_error(err, TI_ERR_NOMEM, "sampler: out of memory"), -1;
    int n = -1;
    if (ti_ddim_schedule_init(d, s, o->steps, o->eta, err) == TI_OK)
        n = o->t_start > 0 && o->t_start < d->n ? o->t_start : d->n;
    free(d);
    return n;
}

int ti_sampler_img2img_t_enc(double strength, int steps) {
    return (int)(strength * (double)steps);
}

int ti_sampler_img2img_start(const struct ti_ddim_schedule *d, int t_enc, const float *z0,
                             const float *noise, float *out, size_t n) {
    if (t_enc >= d->n) {
        memcpy(out, noise, n * sizeof *out);
        return d->n;
    }
    float sa = sqrtf(d->alphas[t_enc]), s1m = d->sqrt_one_minus_alphas[t_enc];
    for (size_t i = 0; i < n; i++)
        out[i] = sa * z0[i] + s1m * noise[i];
    return t_enc;
}

static int shape_is(const struct ti_tensor *t, int ndim) {
    return t && t->data && t->ndim == ndim;
}

ti_status ti_sampler_run(struct ti_ctx *ctx, const struct ti_ldm *m, const struct ti_schedule *s,
                         const struct ti_sampler_opts *o, const struct ti_tensor *cond,
                         const struct ti_tensor *uncond, struct ti_tensor *x,
                         struct ti_torch_gen *gens, void (*cb)(void *user, int step, int steps),
                         void *user, struct ti_err *err) {
    if (!shape_is(x, 4) || x->dtype != TI_DTYPE_F32)
        return ti_error(err, TI_ERR_SHAPE, "sampler: x must be an f32 (B, C, h, w) tensor");
    int B = (int)x->shape[0], C = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    if (C != m->unet_hp.in_channels)
        return ti_error(err, TI_ERR_SHAPE, "sampler: latent has %d channels, the UNet takes %d", C,
                        m->unet_hp.in_channels);
    if (B < 1 || B > 256) return ti_error(err, TI_ERR_SHAPE, "sampler: batch %d (1..256)", B);
    if (!shape_is(cond, 3) || cond->shape[0] != B || cond->shape[2] != m->unet_hp.context_dim)
        return ti_error(err, TI_ERR_SHAPE, "sampler: cond must be (B=%d, T, D=%d) for this model",
                        B, m->unet_hp.context_dim);
    int cfg = uncond && uncond->data && o->scale != 1.0;
    if (cfg &&
        (!shape_is(uncond, 3) || uncond->shape[0] != B || uncond->shape[1] != cond->shape[1] ||
         uncond->shape[2] != cond->shape[2] || uncond->dtype != cond->dtype))
        return ti_error(err, TI_ERR_SHAPE, "sampler: uncond must have cond's shape and dtype");
    if (o->plms && o->eta != 0)
        return ti_error(err, TI_ERR_INVALID, "sampler: ddim_eta must be 0 for PLMS (got %g)",
                        o->eta);
    if (o->plms && o->t_start > 0)
        return ti_error(err, TI_ERR_INVALID, "sampler: img2img runs with DDIM, not PLMS");
    if (!o->plms && o->eta > 0 && !gens)
        return ti_error(err, TI_ERR_INVALID,
                        "sampler: eta > 0 needs each image's generator (gens is NULL)");
    if (o->t_start < 0) return ti_error(err, TI_ERR_INVALID, "sampler: t_start %d", o->t_start);

    struct ti_ddim_schedule *d = malloc(sizeof *d);
    if (!d) return ti_error(err, TI_ERR_NOMEM, "sampler: out of memory");
    ti_status st = ti_ddim_schedule_init(d, s, o->steps, o->eta, err);
    if (st != TI_OK) {
        free(d);
        return st;
    }
    size_t n = (size_t)B * (size_t)C * (size_t)h * (size_t)w, per = n / (size_t)B;
    struct run r = {.ctx = ctx,
                    .m = m,
                    .cfg = cfg,
                    .scale = (float)o->scale,
                    .B = B,
                    .C = C,
                    .h = h,
                    .w = w,
                    .n = n,
                    .dt = m->unet.time0_w.dtype};
    r.context = ti_tensor_none();
    float *buf = malloc(n * sizeof(float) * 16);
    if (!buf) {
        free(d);
        return ti_error(err, TI_ERR_NOMEM, "sampler: out of memory for %zu latents", n);
    }
    float *xh = buf, *e = buf + n, *xp = buf + 2 * n, *pred = buf + 3 * n, *noise = buf + 4 * n,
          *enext = buf + 5 * n, *old[3] = {buf + 6 * n, buf + 7 * n, buf + 8 * n};
    r.xin = buf + 9 * n;   /* 2n */
    r.eps2 = buf + 11 * n; /* 2n */
    int n_old = 0;

    ti_ctx_no_grad_begin(ctx);
    if (cfg) {
        st = ti_concat(ctx, &r.context, uncond, cond, 0);
        if (st != TI_OK) st = ctx_fail(ctx, st, err);
    } else {
        r.context = *cond;
        ti_tensor_retain(&r.context);
    }
    if (st == TI_OK) {
        st = download_f32(ctx, xh, n, x);
        if (st != TI_OK) st = ctx_fail(ctx, st, err);
    }
    int total = o->t_start > 0 && o->t_start < d->n ? o->t_start : d->n;
    for (int i = 0; st == TI_OK && i < total; i++) {
        if (o->cancel && *o->cancel) {
            st = ti_error(err, TI_ERR_CANCELLED, "sampling stopped at step %d of %d (interrupted)",
                          i, total);
            break;
        }
        int index = total - i - 1;
        int t = d->timesteps[index];
        st = model_eps(&r, xh, t, e, err);
        if (st != TI_OK) break;
        if (!o->plms) {
            int draw = o->eta > 0;
            if (draw)
                for (int b = 0; b < B; b++)
                    ti_torch_randn(&gens[b], noise + (size_t)b * per, per);
            ddim_update(d, index, xh, e, draw ? noise : NULL, xp, pred, n);
        } else {
            float *eprime = enext; /* reused after e_next is consumed */
            if (n_old == 0) {
                int t_next = d->timesteps[index > 0 ? index - 1 : 0];
                ddim_update(d, index, xh, e, NULL, xp, pred, n);
                st = model_eps(&r, xp, t_next, enext, err);
                if (st != TI_OK) break;
                for (size_t k = 0; k < n; k++)
                    eprime[k] = (e[k] + enext[k]) / 2.0f;
            } else if (n_old == 1) {
                for (size_t k = 0; k < n; k++)
                    eprime[k] = (3.0f * e[k] - old[0][k]) / 2.0f;
            } else if (n_old == 2) {
                for (size_t k = 0; k < n; k++)
                    eprime[k] = (23.0f * e[k] - 16.0f * old[1][k] + 5.0f * old[0][k]) / 12.0f;
            } else {
                for (size_t k = 0; k < n; k++)
                    eprime[k] =
                        (55.0f * e[k] - 59.0f * old[2][k] + 37.0f * old[1][k] - 9.0f * old[0][k]) /
                        24.0f;
            }
            ddim_update(d, index, xh, eprime, NULL, xp, pred, n);
            /* old_eps.append(e_t), keep the last three (old[n_old-1] is the newest) */
            if (n_old == 3) {
                float *oldest = old[0];
                old[0] = old[1];
                old[1] = old[2];
                old[2] = oldest;
                n_old = 2;
            }
            memcpy(old[n_old++], e, n * sizeof *e);
        }
        memcpy(xh, xp, n * sizeof *xh);
        if (o->on_latent) o->on_latent(o->latent_user, i, xh, pred);
        if (cb) cb(user, i + 1, total);
    }
    if (st == TI_OK) {
        int64_t xs[4] = {B, C, h, w};
        struct ti_tensor tmp = ti_tensor_none();
        st = ti_ctx_upload(ctx, &tmp, xh, TI_DTYPE_F32, 4, xs);
        if (st == TI_OK) st = ti_ctx_copy_into(ctx, x, &tmp);
        ti_tensor_release(&tmp);
        if (st != TI_OK) st = ctx_fail(ctx, st, err);
    }
    ti_ctx_no_grad_end(ctx);
    ti_tensor_release(&r.context);
    free(buf);
    free(d);
    return st;
}

void ti_sampler_to_rgb(const float *chw, int H, int W, uint8_t *rgb) {
    size_t plane = (size_t)H * (size_t)W;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = (chw[(size_t)c * plane + p] + 1.0f) / 2.0f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v != v ? 0.0f : v;
            rgb[p * 3 + (size_t)c] = (uint8_t)(255.0f * v);
        }
}

ti_status ti_sampler_decode_f32(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                const struct ti_tensor *z, float *chw, struct ti_err *err) {
    if (!shape_is(z, 4) || z->dtype != TI_DTYPE_F32)
        return ti_error(err, TI_ERR_SHAPE, "sampler decode: z must be an f32 (B, C, h, w) tensor");
    if (!(scale_factor > 0)) return ti_error(err, TI_ERR_INVALID, "scale_factor %g", scale_factor);
    int B = (int)z->shape[0], C = (int)z->shape[1], h = (int)z->shape[2], w = (int)z->shape[3];
    size_t per = (size_t)C * (size_t)h * (size_t)w;
    float *zh = malloc((size_t)B * per * sizeof *zh);
    if (!zh) return ti_error(err, TI_ERR_NOMEM, "sampler decode: out of memory");
    ti_ctx_no_grad_begin(ctx);
    ti_status st = download_f32(ctx, zh, (size_t)B * per, z);
    float inv = (float)(1.0 / scale_factor);
    size_t img_n = 0;
    for (int b = 0; st == TI_OK && b < B; b++) {
        float *zb = zh + (size_t)b * per;
        for (size_t i = 0; i < per; i++)
            zb[i] = inv * zb[i];
        int64_t zs[4] = {1, C, h, w};
        struct ti_tensor zt = ti_tensor_none(), out = ti_tensor_none();
        st = upload_as(ctx, &zt, zb, m->vae.dec_conv_out.w.dtype, 4, zs);
        if (st == TI_OK) st = ti_vae_decode(ctx, &out, &m->vae, &zt);
        if (st == TI_OK && !img_n) {
            img_n = 3 * (size_t)out.shape[2] * (size_t)out.shape[3];
            int f = 1 << (m->vae_hp.n_levels - 1);
            if (out.shape[1] != 3 || out.shape[2] != (int64_t)h * f ||
                out.shape[3] != (int64_t)w * f)
                st = ti_error(&ctx->err, TI_ERR_SHAPE, "VAE output is not RGB of %dx%d", w * f,
                              h * f);
        }
        if (st == TI_OK) st = download_f32(ctx, chw + (size_t)b * img_n, img_n, &out);
        ti_tensor_release(&zt);
        ti_tensor_release(&out);
    }
    ti_ctx_no_grad_end(ctx);
    if (st != TI_OK) st = ctx_fail(ctx, st, err);
    free(zh);
    return st;
}

ti_status ti_sampler_decode_rgb(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                const struct ti_tensor *z, uint8_t *rgb, struct ti_err *err) {
    if (!shape_is(z, 4) || z->dtype != TI_DTYPE_F32)
        return ti_error(err, TI_ERR_SHAPE, "sampler decode: z must be an f32 (B, C, h, w) tensor");
    int f = 1 << (m->vae_hp.n_levels - 1);
    int B = (int)z->shape[0], H = (int)z->shape[2] * f, W = (int)z->shape[3] * f;
    size_t img_n = 3 * (size_t)H * (size_t)W;
    float *chw = malloc((size_t)B * img_n * sizeof *chw);
    if (!chw) return ti_error(err, TI_ERR_NOMEM, "sampler decode: out of memory");
    ti_status st = ti_sampler_decode_f32(ctx, m, scale_factor, z, chw, err);
    for (int b = 0; st == TI_OK && b < B; b++)
        ti_sampler_to_rgb(chw + (size_t)b * img_n, H, W, rgb + (size_t)b * img_n);
    free(chw);
    return st;
}

ti_status ti_sampler_encode_init(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                 const uint8_t *rgb, int H, int W, int B, struct ti_torch_gen *gens,
                                 float *z0, struct ti_err *err) {
    if (H < 1 || W < 1 || B < 1 || !gens)
        return ti_error(err, TI_ERR_INVALID, "img2img: bad init image size %dx%d or batch %d", W, H,
                        B);
    size_t plane = (size_t)H * (size_t)W;
    float *img = malloc(3 * plane * sizeof *img);
    if (!img) return ti_error(err, TI_ERR_NOMEM, "img2img: out of memory for a %dx%d image", W, H);
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            float v = (float)rgb[p * 3 + (size_t)c] / 255.0f;
            img[(size_t)c * plane + p] = 2.0f * v - 1.0f;
        }
    enum ti_dtype dt = m->vae.enc_conv_in.w.dtype;
    int64_t is[4] = {1, 3, H, W};
    struct ti_tensor it = ti_tensor_none(), moments = ti_tensor_none();
    ti_ctx_no_grad_begin(ctx);
    ti_status st = upload_as(ctx, &it, img, dt, 4, is);
    if (st == TI_OK) st = ti_vae_encode(ctx, &moments, &m->vae, &it);
    float *noise = NULL, *z = NULL;
    size_t per = 0;
    if (st == TI_OK) {
        per = (size_t)(moments.shape[1] / 2) * (size_t)moments.shape[2] * (size_t)moments.shape[3];
        noise = malloc(per * sizeof *noise);
        z = malloc(per * sizeof *z);
        if (!noise || !z) st = ti_error(&ctx->err, TI_ERR_NOMEM, "img2img: out of memory");
    }
    float sf = (float)scale_factor;
    for (int b = 0; st == TI_OK && b < B; b++) {
        ti_torch_randn(&gens[b], noise, per);
        int64_t ns[4] = {1, moments.shape[1] / 2, moments.shape[2], moments.shape[3]};
        struct ti_tensor nt = ti_tensor_none(), zt = ti_tensor_none();
        st = upload_as(ctx, &nt, noise, moments.dtype, 4, ns);
        if (st == TI_OK) st = ti_vae_sample(ctx, &zt, &m->vae, &moments, &nt);
        if (st == TI_OK) st = download_f32(ctx, z, per, &zt);
        for (size_t i = 0; st == TI_OK && i < per; i++)
            z0[(size_t)b * per + i] = sf * z[i];
        ti_tensor_release(&nt);
        ti_tensor_release(&zt);
    }
    ti_ctx_no_grad_end(ctx);
    ti_tensor_release(&it);
    ti_tensor_release(&moments);
    free(noise);
    free(z);
    free(img);
    if (st != TI_OK) return ctx_fail(ctx, st, err);
    return TI_OK;
}

#ifdef TI_HAVE_DATA
ti_status ti_sampler_decode(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                            const struct ti_tensor *z, struct ti_image *out, struct ti_err *err) {
    if (!shape_is(z, 4))
        return ti_error(err, TI_ERR_SHAPE, "sampler decode: z must be (B, C, h, w)");
    int B = (int)z->shape[0];
    int f = 1 << (m->vae_hp.n_levels - 1);
    int H = (int)z->shape[2] * f, W = (int)z->shape[3] * f;
    size_t bytes = (size_t)H * (size_t)W * 3;
    uint8_t *rgb = malloc((size_t)B * bytes);
    if (!rgb) return ti_error(err, TI_ERR_NOMEM, "sampler decode: out of memory");
    ti_status st = ti_sampler_decode_rgb(ctx, m, scale_factor, z, rgb, err);
    struct ti_data_err de = {{0}};
    for (int b = 0; st == TI_OK && b < B; b++) {
        memset(&out[b], 0, sizeof out[b]);
        if (ti_image_alloc(&out[b], W, H, &de) != 0) {
            for (int k = 0; k < b; k++)
                ti_image_free(&out[k]);
            st = ti_error(err, TI_ERR_NOMEM, "sampler decode: %s", de.msg);
            break;
        }
        memcpy(out[b].px, rgb + (size_t)b * bytes, bytes);
    }
    free(rgb);
    return st;
}
#endif
