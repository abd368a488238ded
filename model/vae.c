/*
 * vae.c - AutoencoderKL construction (key names first_stage_model.encoder.*, decoder.*,
 * quant_conv, post_quant_conv) and forward passes, following sd-arch.md §4 op by op.
 */
#include "vae.h"

#include <math.h>
#include <string.h>

void ti_vae_hparams_kl_f8(struct ti_vae_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->in_channels = 3;
    hp->out_ch = 3;
    hp->ch = 128;
    hp->n_levels = 4;
    hp->ch_mult[0] = 1;
    hp->ch_mult[1] = 2;
    hp->ch_mult[2] = 4;
    hp->ch_mult[3] = 4;
    hp->num_res_blocks = 2;
    hp->z_channels = 4;
    hp->double_z = 1;
    hp->embed_dim = 4;
    hp->resolution = 256;
    hp->n_attn = 0;
}

static int attn_at(const struct ti_vae_hparams *hp, int res) {
    for (int i = 0; i < hp->n_attn; i++)
        if (hp->attn_resolutions[i] == res) return 1;
    return 0;
}

static ti_status attn_init(struct ti_vae_attn *a, struct ti_weights *w, const char *prefix, int c,
                           struct ti_err *err) {
    char k[TI_KEY_MAX];
    a->channels = c;
    TI_TRY(ti_weights_add1(w, &a->norm_w, ti_key(k, prefix, "norm."), "weight", c, err));
    TI_TRY(ti_weights_add1(w, &a->norm_b, k, "bias", c, err));
    TI_TRY(ti_conv_init(&a->q, w, ti_key(k, prefix, "q."), c, c, 1, 1, 0, 0, 0, 0, err));
    TI_TRY(ti_conv_init(&a->k, w, ti_key(k, prefix, "k."), c, c, 1, 1, 0, 0, 0, 0, err));
    TI_TRY(ti_conv_init(&a->v, w, ti_key(k, prefix, "v."), c, c, 1, 1, 0, 0, 0, 0, err));
    return ti_conv_init(&a->proj_out, w, ti_key(k, prefix, "proj_out."), c, c, 1, 1, 0, 0, 0, 0,
                        err);
}

ti_status ti_vae_init(struct ti_vae *v, const struct ti_vae_hparams *hp, const char *prefix,
                      struct ti_weights *w, struct ti_err *err) {
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    memset(v, 0, sizeof *v);
    v->hp = *hp;
    if (hp->n_levels < 1 || hp->n_levels > TI_VAE_MAX_LEVELS || hp->num_res_blocks < 1 ||
        hp->num_res_blocks > TI_VAE_MAX_RES || hp->ch <= 0)
        return ti_error(err, TI_ERR_CONFIG,
                        "vae: invalid hyperparameters (levels %d, res blocks %d)", hp->n_levels,
                        hp->num_res_blocks);
    int L = hp->n_levels, ch = hp->ch;
    /* ---- encoder ---- */
    TI_TRY(ti_conv_init(&v->enc_conv_in, w, ti_key(k, prefix, "encoder.conv_in."), hp->in_channels,
                        ch, 3, 1, 1, 1, 1, 1, err));
    int res = hp->resolution, block_in = ch;
    for (int i = 0; i < L; i++) {
        struct ti_vae_level *lv = &v->down[i];
        block_in = ch * (i == 0 ? 1 : hp->ch_mult[i - 1]);
        int block_out = ch * hp->ch_mult[i];
        for (int j = 0; j < hp->num_res_blocks; j++) {
            ti_key(p, prefix, "encoder.down.%d.block.%d.", i, j);
            TI_TRY(ti_resblock_init(&lv->res[j], w, p, block_in, block_out, 0, 1, 1e-6, err));
            block_in = block_out;
            if (attn_at(hp, res)) {
                ti_key(p, prefix, "encoder.down.%d.attn.%d.", i, j);
                TI_TRY(attn_init(&lv->attn[lv->n_attn++], w, p, block_in, err));
            }
        }
        lv->n_res = hp->num_res_blocks;
        if (i != L - 1) {
            /* pad (left 0, right 1, top 0, bottom 1), conv 3x3 stride 2 */
            lv->has_resample = 1;
            TI_TRY(ti_conv_init(&lv->resample, w,
                                ti_key(k, prefix, "encoder.down.%d.downsample.conv.", i), block_in,
                                block_in, 3, 2, 0, 1, 0, 1, err));
            res /= 2;
        }
    }
    TI_TRY(ti_resblock_init(&v->enc_mid1, w, ti_key(k, prefix, "encoder.mid.block_1."), block_in,
                            block_in, 0, 1, 1e-6, err));
    TI_TRY(attn_init(&v->enc_mid_attn, w, ti_key(k, prefix, "encoder.mid.attn_1."), block_in, err));
    TI_TRY(ti_resblock_init(&v->enc_mid2, w, ti_key(k, prefix, "encoder.mid.block_2."), block_in,
                            block_in, 0, 1, 1e-6, err));
    TI_TRY(ti_weights_add1(w, &v->enc_norm_w, ti_key(k, prefix, "encoder.norm_out."), "weight",
                           block_in, err));
    TI_TRY(ti_weights_add1(w, &v->enc_norm_b, k, "bias", block_in, err));
    int zc = hp->double_z ? 2 * hp->z_channels : hp->z_channels;
    TI_TRY(ti_conv_init(&v->enc_conv_out, w, ti_key(k, prefix, "encoder.conv_out."), block_in, zc,
                        3, 1, 1, 1, 1, 1, err));
    TI_TRY(ti_conv_init(&v->quant_conv, w, ti_key(k, prefix, "quant_conv."), 2 * hp->z_channels,
                        2 * hp->embed_dim, 1, 1, 0, 0, 0, 0, err));
    /* ---- decoder ---- */
    TI_TRY(ti_conv_init(&v->post_quant_conv, w, ti_key(k, prefix, "post_quant_conv."),
                        hp->embed_dim, hp->z_channels, 1, 1, 0, 0, 0, 0, err));
    block_in = ch * hp->ch_mult[L - 1];
    res = hp->resolution >> (L - 1);
    TI_TRY(ti_conv_init(&v->dec_conv_in, w, ti_key(k, prefix, "decoder.conv_in."), hp->z_channels,
                        block_in, 3, 1, 1, 1, 1, 1, err));
    TI_TRY(ti_resblock_init(&v->dec_mid1, w, ti_key(k, prefix, "decoder.mid.block_1."), block_in,
                            block_in, 0, 1, 1e-6, err));
    TI_TRY(attn_init(&v->dec_mid_attn, w, ti_key(k, prefix, "decoder.mid.attn_1."), block_in, err));
    TI_TRY(ti_resblock_init(&v->dec_mid2, w, ti_key(k, prefix, "decoder.mid.block_2."), block_in,
                            block_in, 0, 1, 1e-6, err));
    for (int i = L - 1; i >= 0; i--) {
        struct ti_vae_level *lv = &v->up[i];
        int block_out = ch * hp->ch_mult[i];
        for (int j = 0; j <= hp->num_res_blocks; j++) {
            ti_key(p, prefix, "decoder.up.%d.block.%d.", i, j);
            TI_TRY(ti_resblock_init(&lv->res[j], w, p, block_in, block_out, 0, 1, 1e-6, err));
            block_in = block_out;
            if (attn_at(hp, res)) {
                ti_key(p, prefix, "decoder.up.%d.attn.%d.", i, j);
                TI_TRY(attn_init(&lv->attn[lv->n_attn++], w, p, block_in, err));
            }
        }
        lv->n_res = hp->num_res_blocks + 1;
        if (i != 0) {
            lv->has_resample = 1;
            TI_TRY(ti_conv_init(&lv->resample, w,
                                ti_key(k, prefix, "decoder.up.%d.upsample.conv.", i), block_in,
                                block_in, 3, 1, 1, 1, 1, 1, err));
            res *= 2;
        }
    }
    TI_TRY(ti_weights_add1(w, &v->dec_norm_w, ti_key(k, prefix, "decoder.norm_out."), "weight",
                           block_in, err));
    TI_TRY(ti_weights_add1(w, &v->dec_norm_b, k, "bias", block_in, err));
    return ti_conv_init(&v->dec_conv_out, w, ti_key(k, prefix, "decoder.conv_out."), block_in,
                        hp->out_ch, 3, 1, 1, 1, 1, 1, err);
}

void ti_vae_free(struct ti_vae *v) {
    memset(v, 0, sizeof *v);
}

/* ---- forward --------------------------------------------------------------------------------- */

/* h <- f(h): helpers that replace *h with a new tensor */
static ti_status replace(struct ti_tensor *h, struct ti_tensor *o, ti_status st) {
    if (st != TI_OK) return st;
    ti_tensor_release(h);
    *h = *o;
    return TI_OK;
}

static ti_status attn_forward(struct ti_ctx *ctx, struct ti_tensor *h,
                              const struct ti_vae_attn *a) {
    struct ti_tensor n = ti_tensor_none(), c = ti_tensor_none(), q = ti_tensor_none(),
                     k = ti_tensor_none(), v = ti_tensor_none(), o = ti_tensor_none();
    ti_status st;
    int64_t H = h->shape[2], W = h->shape[3];
    TI_TRY_GOTO(st, ti_block_gn(ctx, &n, h, &a->norm_w, &a->norm_b, 1e-6, 0));
    /* q, k, v: 1x1 convs -> tokens (B, H*W, C); one head of width C, scale C^-1/2 */
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &c, &a->q, &n));
    TI_TRY_GOTO(st, ti_nchw_to_tokens(ctx, &q, &c));
    ti_tensor_release(&c);
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &c, &a->k, &n));
    TI_TRY_GOTO(st, ti_nchw_to_tokens(ctx, &k, &c));
    ti_tensor_release(&c);
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &c, &a->v, &n));
    TI_TRY_GOTO(st, ti_nchw_to_tokens(ctx, &v, &c));
    ti_tensor_release(&c);
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, ti_attention(ctx, &o, &q, &k, &v, 1, 1.0 / sqrt((double)a->channels), 0));
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    TI_TRY_GOTO(st, ti_tokens_to_nchw(ctx, &c, &o, H, W));
    ti_tensor_release(&o);
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &n, &a->proj_out, &c));
    ti_tensor_release(&c);
    TI_TRY_GOTO(st, ti_add(ctx, &o, h, &n));
    ti_tensor_release(h);
    *h = o;
    o = ti_tensor_none();
fail:
    ti_tensor_release(&n);
    ti_tensor_release(&c);
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    ti_tensor_release(&o);
    return st;
}

static ti_status res_forward(struct ti_ctx *ctx, struct ti_tensor *h, const struct ti_resblock *r) {
    struct ti_tensor o;
    return replace(h, &o, ti_resblock_forward(ctx, &o, r, h, NULL));
}

static ti_status conv_forward(struct ti_ctx *ctx, struct ti_tensor *h, const struct ti_conv *c) {
    struct ti_tensor o;
    return replace(h, &o, ti_conv_forward(ctx, &o, c, h));
}

ti_status ti_vae_encode(struct ti_ctx *ctx, struct ti_tensor *moments, const struct ti_vae *v,
                        const struct ti_tensor *img) {
    *moments = ti_tensor_none();
    const struct ti_vae_hparams *hp = &v->hp;
    int64_t f = (int64_t)1 << (hp->n_levels - 1);
    if (img->ndim != 4 || img->shape[1] != hp->in_channels || img->shape[2] % f ||
        img->shape[3] % f) {
        char s[96];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "vae: image %s must be (B, %d, H, W) with H and W multiples of %lld",
                        ti_shape_str(img->ndim, img->shape, s, sizeof s), hp->in_channels,
                        (long long)f);
    }
    struct ti_tensor h = ti_tensor_none(), o, x = ti_tensor_none();
    ti_status st;
    if (img->dtype != v->enc_conv_in.w.dtype) { /* the encoder runs in its weights' dtype */
        TI_TRY_GOTO(st, ti_copy(ctx, &x, img, v->enc_conv_in.w.dtype));
        img = &x;
    }
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &h, &v->enc_conv_in, img));
    for (int i = 0; i < hp->n_levels; i++) {
        const struct ti_vae_level *lv = &v->down[i];
        for (int j = 0; j < lv->n_res; j++) {
            TI_TRY_GOTO(st, res_forward(ctx, &h, &lv->res[j]));
            if (j < lv->n_attn) TI_TRY_GOTO(st, attn_forward(ctx, &h, &lv->attn[j]));
        }
        if (lv->has_resample) TI_TRY_GOTO(st, conv_forward(ctx, &h, &lv->resample));
    }
    TI_TRY_GOTO(st, res_forward(ctx, &h, &v->enc_mid1));
    TI_TRY_GOTO(st, attn_forward(ctx, &h, &v->enc_mid_attn));
    TI_TRY_GOTO(st, res_forward(ctx, &h, &v->enc_mid2));
    TI_TRY_GOTO(st,
                replace(&h, &o, ti_block_gn(ctx, &o, &h, &v->enc_norm_w, &v->enc_norm_b, 1e-6, 1)));
    TI_TRY_GOTO(st, conv_forward(ctx, &h, &v->enc_conv_out));
    st = ti_conv_forward(ctx, moments, &v->quant_conv, &h);
fail:
    ti_tensor_release(&h);
    ti_tensor_release(&x);
    return st;
}

ti_status ti_vae_sample(struct ti_ctx *ctx, struct ti_tensor *z, const struct ti_vae *v,
                        const struct ti_tensor *moments, const struct ti_tensor *noise) {
    *z = ti_tensor_none();
    int64_t e = v->hp.embed_dim;
    struct ti_tensor mean = ti_tensor_none(), lv = ti_tensor_none(), c = ti_tensor_none(),
                     sd = ti_tensor_none(), m = ti_tensor_none(), nc = ti_tensor_none();
    ti_status st;
    if (noise && noise->dtype != moments->dtype) {
        TI_TRY_GOTO(st, ti_copy(ctx, &nc, noise, moments->dtype));
        noise = &nc;
    }
    TI_TRY_GOTO(st, ti_slice(ctx, &mean, moments, 1, 0, e));
    if (!noise) {
        st = ti_contiguous(ctx, z, &mean);
        goto fail;
    }
    TI_TRY_GOTO(st, ti_slice(ctx, &lv, moments, 1, e, e));
    TI_TRY_GOTO(st, ti_unary(ctx, &c, &lv, TI_UNARY_CLAMP, -30.0, 20.0));
    TI_TRY_GOTO(st, ti_unary(ctx, &sd, &c, TI_UNARY_EXP, 0.5, 0.0));
    TI_TRY_GOTO(st, ti_mul(ctx, &m, &sd, noise));
    st = ti_add(ctx, z, &mean, &m);
fail:
    ti_tensor_release(&mean);
    ti_tensor_release(&lv);
    ti_tensor_release(&c);
    ti_tensor_release(&sd);
    ti_tensor_release(&m);
    ti_tensor_release(&nc);
    return st;
}

ti_status ti_vae_decode(struct ti_ctx *ctx, struct ti_tensor *img, const struct ti_vae *v,
                        const struct ti_tensor *z) {
    *img = ti_tensor_none();
    const struct ti_vae_hparams *hp = &v->hp;
    if (z->ndim != 4 || z->shape[1] != hp->embed_dim) {
        char s[96];
        return ti_error(&ctx->err, TI_ERR_SHAPE, "vae: latent %s must be (B, %d, h, w)",
                        ti_shape_str(z->ndim, z->shape, s, sizeof s), hp->embed_dim);
    }
    struct ti_tensor h = ti_tensor_none(), o, x = ti_tensor_none();
    ti_status st;
    if (z->dtype != v->post_quant_conv.w.dtype) { /* the decoder runs in its weights' dtype */
        TI_TRY_GOTO(st, ti_copy(ctx, &x, z, v->post_quant_conv.w.dtype));
        z = &x;
    }
    TI_TRY_GOTO(st, ti_conv_forward(ctx, &h, &v->post_quant_conv, z));
    TI_TRY_GOTO(st, conv_forward(ctx, &h, &v->dec_conv_in));
    TI_TRY_GOTO(st, res_forward(ctx, &h, &v->dec_mid1));
    TI_TRY_GOTO(st, attn_forward(ctx, &h, &v->dec_mid_attn));
    TI_TRY_GOTO(st, res_forward(ctx, &h, &v->dec_mid2));
    for (int i = hp->n_levels - 1; i >= 0; i--) {
        const struct ti_vae_level *lv = &v->up[i];
        for (int j = 0; j < lv->n_res; j++) {
            TI_TRY_GOTO(st, res_forward(ctx, &h, &lv->res[j]));
            if (j < lv->n_attn) TI_TRY_GOTO(st, attn_forward(ctx, &h, &lv->attn[j]));
        }
        if (lv->has_resample) {
            TI_TRY_GOTO(st, replace(&h, &o, ti_upsample_nearest(ctx, &o, &h, 2)));
            TI_TRY_GOTO(st, conv_forward(ctx, &h, &lv->resample));
        }
    }
    TI_TRY_GOTO(st,
                replace(&h, &o, ti_block_gn(ctx, &o, &h, &v->dec_norm_w, &v->dec_norm_b, 1e-6, 1)));
    st = ti_conv_forward(ctx, img, &v->dec_conv_out, &h);
fail:
    ti_tensor_release(&h);
    ti_tensor_release(&x);
    return st;
}
