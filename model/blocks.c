/*
 * blocks.c - ResBlock / ResnetBlock, CrossAttention, SpatialTransformer, convolutions
 * (see blocks.h). Forward passes follow sd-arch.md §3-4 op by op; comments give shapes.
 */
#include "blocks.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tape.h" /* defines: ti_checkpoint */

const char *ti_key(char *buf, const char *prefix, const char *fmt, ...) {
    size_t n = (size_t)snprintf(buf, TI_KEY_MAX, "%s", prefix);
    if (n < TI_KEY_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf + n, TI_KEY_MAX - n, fmt, ap);
        va_end(ap);
    }
    return buf;
}

ti_status ti_block_gn(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x,
                      const struct ti_tensor *w, const struct ti_tensor *b, double eps, int silu) {
    return ti_groupnorm(ctx, out, x, w, b, 32, eps, silu);
}

ti_status ti_block_as_dtype(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x,
                            enum ti_dtype dt) {
    if (x->dtype != dt) return ti_copy(ctx, out, x, dt);
    *out = *x;
    ti_tensor_retain(out);
    return TI_OK;
}

/* ---- convolutions -------------------------------------------------------------------------- */

ti_status ti_conv_init(struct ti_conv *c, struct ti_weights *w, const char *prefix, int cin,
                       int cout, int k, int stride, int pad_t, int pad_b, int pad_l, int pad_r,
                       struct ti_err *err) {
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad[0] = pad_t;
    c->pad[1] = pad_b;
    c->pad[2] = pad_l;
    c->pad[3] = pad_r;
    TI_TRY(ti_weights_add4(w, &c->w, prefix, "weight", cout, cin, k, k, err));
    return ti_weights_add1(w, &c->b, prefix, "bias", cout, err);
}

ti_status ti_conv_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_conv *c,
                          const struct ti_tensor *x) {
    return ti_conv2d(ctx, out, x, &c->w, &c->b, c->stride, c->pad);
}

/* ---- layout changes ------------------------------------------------------------------------ */

ti_status ti_nchw_to_tokens(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x) {
    /* (B, C, H, W) -> view (B, H, W, C) -> contiguous -> (B, H*W, C) */
    const int perm[4] = {0, 2, 3, 1};
    struct ti_tensor p, c;
    TI_TRY(ti_permute(ctx, &p, x, perm));
    ti_status st = ti_contiguous(ctx, &c, &p);
    ti_tensor_release(&p);
    TI_TRY(st);
    int64_t shape[3] = {x->shape[0], x->shape[2] * x->shape[3], x->shape[1]};
    st = ti_reshape(ctx, out, &c, 3, shape);
    ti_tensor_release(&c);
    return st;
}

ti_status ti_tokens_to_nchw(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *t,
                            int64_t h, int64_t w) {
    /* (B, H*W, C) -> (B, H, W, C) -> view (B, C, H, W) -> contiguous */
    int64_t shape[4] = {t->shape[0], h, w, t->shape[2]};
    const int perm[4] = {0, 3, 1, 2};
    struct ti_tensor r, p;
    TI_TRY(ti_reshape(ctx, &r, t, 4, shape));
    ti_status st = ti_permute(ctx, &p, &r, perm);
    ti_tensor_release(&r);
    TI_TRY(st);
    st = ti_contiguous(ctx, out, &p);
    ti_tensor_release(&p);
    return st;
}

/* ---- ResBlock -------------------------------------------------------------------------------- */

ti_status ti_resblock_init(struct ti_resblock *r, struct ti_weights *w, const char *prefix, int cin,
                           int cout, int emb_channels, int vae_names, double eps,
                           struct ti_err *err) {
    char k[TI_KEY_MAX];
    memset(r, 0, sizeof *r);
    r->cin = cin;
    r->cout = cout;
    r->emb_channels = emb_channels;
    r->vae_names = vae_names;
    r->eps = eps;
    const char *n1 = vae_names ? "norm1." : "in_layers.0.";
    const char *c1 = vae_names ? "conv1." : "in_layers.2.";
    const char *n2 = vae_names ? "norm2." : "out_layers.0.";
    const char *c2 = vae_names ? "conv2." : "out_layers.3.";
    const char *sk = vae_names ? "nin_shortcut." : "skip_connection.";
    TI_TRY(ti_weights_add1(w, &r->norm1_w, ti_key(k, prefix, "%s", n1), "weight", cin, err));
    TI_TRY(ti_weights_add1(w, &r->norm1_b, k, "bias", cin, err));
    TI_TRY(ti_weights_add4(w, &r->conv1_w, ti_key(k, prefix, "%s", c1), "weight", cout, cin, 3, 3,
                           err));
    TI_TRY(ti_weights_add1(w, &r->conv1_b, k, "bias", cout, err));
    if (emb_channels > 0) {
        TI_TRY(ti_weights_add2(w, &r->emb_w, ti_key(k, prefix, "emb_layers.1."), "weight", cout,
                               emb_channels, err));
        TI_TRY(ti_weights_add1(w, &r->emb_b, k, "bias", cout, err));
    }
    TI_TRY(ti_weights_add1(w, &r->norm2_w, ti_key(k, prefix, "%s", n2), "weight", cout, err));
    TI_TRY(ti_weights_add1(w, &r->norm2_b, k, "bias", cout, err));
    TI_TRY(ti_weights_add4(w, &r->conv2_w, ti_key(k, prefix, "%s", c2), "weight", cout, cout, 3, 3,
                           err));
    TI_TRY(ti_weights_add1(w, &r->conv2_b, k, "bias", cout, err));
    if (cin != cout) {
        TI_TRY(ti_weights_add4(w, &r->skip_w, ti_key(k, prefix, "%s", sk), "weight", cout, cin, 1,
                               1, err));
        TI_TRY(ti_weights_add1(w, &r->skip_b, k, "bias", cout, err));
    }
    return TI_OK;
}

ti_status ti_resblock_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                              const struct ti_resblock *r, const struct ti_tensor *x,
                              const struct ti_tensor *emb_silu) {
    static const int pad1[4] = {1, 1, 1, 1}, pad0[4] = {0, 0, 0, 0};
    struct ti_tensor h = ti_tensor_none(), t = ti_tensor_none(), e = ti_tensor_none(),
                     s = ti_tensor_none(), xw = ti_tensor_none();
    ti_status st;
    /* the branch in the weights' dtype, the sum in x's (blocks.h) */
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &xw, x, r->conv1_w.dtype));
    /* h = conv1(silu(gn(x)))                                   (B, cout, H, W) */
    TI_TRY_GOTO(st, ti_block_gn(ctx, &t, &xw, &r->norm1_w, &r->norm1_b, r->eps, 1));
    TI_TRY_GOTO(st, ti_conv2d(ctx, &h, &t, &r->conv1_w, &r->conv1_b, 1, pad1));
    ti_tensor_release(&t);
    if (r->emb_channels > 0) {
        /* h += emb_layers(silu(emb))[:, :, None, None]          (B, cout) broadcast */
        TI_TRY_GOTO(st, ti_linear(ctx, &e, emb_silu, &r->emb_w, &r->emb_b));
        int64_t es[4] = {e.shape[0], e.shape[1], 1, 1};
        TI_TRY_GOTO(st, ti_reshape(ctx, &s, &e, 4, es));
        ti_tensor_release(&e);
        TI_TRY_GOTO(st, ti_add(ctx, &t, &h, &s));
        ti_tensor_release(&s);
        ti_tensor_release(&h);
        h = t;
        t = ti_tensor_none();
    }
    /* h = conv2(silu(gn(h)))  (dropout p = 0) */
    TI_TRY_GOTO(st, ti_block_gn(ctx, &t, &h, &r->norm2_w, &r->norm2_b, r->eps, 1));
    ti_tensor_release(&h);
    TI_TRY_GOTO(st, ti_conv2d(ctx, &h, &t, &r->conv2_w, &r->conv2_b, 1, pad1));
    ti_tensor_release(&t);
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &t, &h, x->dtype));
    ti_tensor_release(&h);
    /* out = skip(x) + h */
    if (r->cin != r->cout) {
        TI_TRY_GOTO(st, ti_conv2d(ctx, &s, &xw, &r->skip_w, &r->skip_b, 1, pad0));
        ti_tensor_release(&xw);
        TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &xw, &s, x->dtype));
        st = ti_add(ctx, out, &xw, &t);
    } else {
        st = ti_add(ctx, out, x, &t);
    }
fail:
    ti_tensor_release(&h);
    ti_tensor_release(&t);
    ti_tensor_release(&e);
    ti_tensor_release(&s);
    ti_tensor_release(&xw);
    return st;
}

/* ---- CrossAttention -------------------------------------------------------------------------- */

ti_status ti_xattn_init(struct ti_xattn *a, struct ti_weights *w, const char *prefix, int dim,
                        int ctx_dim, int heads, int head_dim, struct ti_err *err) {
    char k[TI_KEY_MAX];
    int inner = heads * head_dim;
    a->dim = dim;
    a->ctx_dim = ctx_dim;
    a->heads = heads;
    a->head_dim = head_dim;
    TI_TRY(ti_weights_add2(w, &a->q_w, ti_key(k, prefix, "to_q."), "weight", inner, dim, err));
    TI_TRY(ti_weights_add2(w, &a->k_w, ti_key(k, prefix, "to_k."), "weight", inner, ctx_dim, err));
    TI_TRY(ti_weights_add2(w, &a->v_w, ti_key(k, prefix, "to_v."), "weight", inner, ctx_dim, err));
    TI_TRY(
        ti_weights_add2(w, &a->out_w, ti_key(k, prefix, "to_out.0."), "weight", dim, inner, err));
    return ti_weights_add1(w, &a->out_b, k, "bias", dim, err);
}

ti_status ti_xattn_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_xattn *a,
                           const struct ti_tensor *x, const struct ti_tensor *context) {
    const struct ti_tensor *c = context ? context : x;
    struct ti_tensor q = ti_tensor_none(), k = ti_tensor_none(), v = ti_tensor_none(),
                     o = ti_tensor_none();
    ti_status st;
    TI_TRY_GOTO(st, ti_linear(ctx, &q, x, &a->q_w, NULL)); /* (B, T, inner) */
    TI_TRY_GOTO(st, ti_linear(ctx, &k, c, &a->k_w, NULL)); /* (B, Tc, inner) */
    TI_TRY_GOTO(st, ti_linear(ctx, &v, c, &a->v_w, NULL));
    /* softmax(q k^T * d^-1/2) v per head; the scale is applied after the product */
    TI_TRY_GOTO(st,
                ti_attention(ctx, &o, &q, &k, &v, a->heads, 1.0 / sqrt((double)a->head_dim), 0));
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    st = ti_linear(ctx, out, &o, &a->out_w, &a->out_b);
fail:
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    ti_tensor_release(&o);
    return st;
}

/* ---- SpatialTransformer ---------------------------------------------------------------------- */

ti_status ti_spatial_transformer_init(struct ti_spatial_transformer *s, struct ti_weights *w,
                                      const char *prefix, int channels, int heads, int head_dim,
                                      int depth, int context_dim, struct ti_err *err) {
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    int inner = heads * head_dim;
    memset(s, 0, sizeof *s);
    s->channels = channels;
    s->depth = depth;
    s->blocks = calloc((size_t)depth, sizeof *s->blocks);
    if (!s->blocks) return ti_error(err, TI_ERR_NOMEM, "out of host memory");
    const char *e = getenv("TI_FF_RECOMPUTE_MB");
    long mb = e && *e ? atol(e) : 16;
    s->ff_recompute_min = mb < 0 ? 0 : mb == 0 ? 1 : (size_t)mb << 20;
    TI_TRY(ti_weights_add1(w, &s->norm_w, ti_key(k, prefix, "norm."), "weight", channels, err));
    TI_TRY(ti_weights_add1(w, &s->norm_b, k, "bias", channels, err));
    TI_TRY(ti_weights_add4(w, &s->proj_in_w, ti_key(k, prefix, "proj_in."), "weight", inner,
                           channels, 1, 1, err));
    TI_TRY(ti_weights_add1(w, &s->proj_in_b, k, "bias", inner, err));
    for (int d = 0; d < depth; d++) {
        struct ti_tblock *b = &s->blocks[d];
        ti_key(p, prefix, "transformer_blocks.%d.", d);
        TI_TRY(ti_xattn_init(&b->attn1, w, ti_key(k, p, "attn1."), inner, inner, heads, head_dim,
                             err));
        TI_TRY(ti_xattn_init(&b->attn2, w, ti_key(k, p, "attn2."), inner, context_dim, heads,
                             head_dim, err));
        TI_TRY(ti_weights_add2(w, &b->ff_in_w, ti_key(k, p, "ff.net.0.proj."), "weight", 8 * inner,
                               inner, err));
        TI_TRY(ti_weights_add1(w, &b->ff_in_b, k, "bias", 8 * inner, err));
        TI_TRY(ti_weights_add2(w, &b->ff_out_w, ti_key(k, p, "ff.net.2."), "weight", inner,
                               4 * inner, err));
        TI_TRY(ti_weights_add1(w, &b->ff_out_b, k, "bias", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm1_w, ti_key(k, p, "norm1."), "weight", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm1_b, k, "bias", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm2_w, ti_key(k, p, "norm2."), "weight", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm2_b, k, "bias", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm3_w, ti_key(k, p, "norm3."), "weight", inner, err));
        TI_TRY(ti_weights_add1(w, &b->norm3_b, k, "bias", inner, err));
    }
    TI_TRY(ti_weights_add4(w, &s->proj_out_w, ti_key(k, prefix, "proj_out."), "weight", channels,
                           inner, 1, 1, err));
    return ti_weights_add1(w, &s->proj_out_b, k, "bias", channels, err);
}

void ti_spatial_transformer_free(struct ti_spatial_transformer *s) {
    free(s->blocks);
    s->blocks = NULL;
}

/* out = ff(norm3(in[0])): the GEGLU feed-forward of the block `user` (checkpoint adapter) */
static ti_status ff_fn(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                       int n_in, void *user) {
    (void)n_in;
    const struct ti_tblock *b = user;
    struct ti_tensor n = ti_tensor_none(), g = ti_tensor_none();
    ti_status st;
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &g, &in[0], b->norm3_w.dtype));
    TI_TRY_GOTO(st, ti_layernorm(ctx, &n, &g, &b->norm3_w, &b->norm3_b, 1e-5));
    ti_tensor_release(&g);
    /* GEGLU feed-forward: (B, T, C) -> (B, T, 8C) -> a * gelu(g) (B, T, 4C) -> (B, T, C) */
    TI_TRY_GOTO(st, ti_linear(ctx, &g, &n, &b->ff_in_w, &b->ff_in_b));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, ti_geglu(ctx, &n, &g));
    ti_tensor_release(&g);
    st = ti_linear(ctx, out, &n, &b->ff_out_w, &b->ff_out_b);
fail:
    ti_tensor_release(&n);
    ti_tensor_release(&g);
    return st;
}

/* Whether the feed-forward of b on h is recomputed in backward (ti_spatial_transformer's
 * ff_recompute_min): only while recording, and only with frozen weights (ti_checkpoint keeps
 * just its inputs; a watched weight would get no gradient). */
static int ff_recompute(const struct ti_ctx *ctx, const struct ti_tblock *b,
                        const struct ti_tensor *h, size_t min_bytes) {
    const struct ti_tensor *ws[6] = {&b->norm3_w, &b->norm3_b,  &b->ff_in_w,
                                     &b->ff_in_b, &b->ff_out_w, &b->ff_out_b};
    if (!min_bytes || !ctx->tape || ctx->no_grad || h->grad < 0) return 0;
    for (int i = 0; i < 6; i++)
        if (ws[i]->grad >= 0) return 0;
    return (size_t)ti_tensor_numel(h) * 8 * ti_dtype_size(h->dtype) >= min_bytes;
}

/* h = h + f(norm(h)) for one sub-layer; consumes nothing */
static ti_status pre_norm_residual(struct ti_ctx *ctx, struct ti_tensor *h,
                                   const struct ti_tensor *nw, const struct ti_tensor *nb,
                                   const struct ti_tblock *b, int which,
                                   const struct ti_tensor *context, size_t ff_recompute_min) {
    struct ti_tensor n = ti_tensor_none(), f = ti_tensor_none(), g = ti_tensor_none(),
                     r = ti_tensor_none();
    ti_status st;
    if (which == 3) { /* norm3 + feed-forward, kept or recomputed */
        st = ff_recompute(ctx, b, h, ff_recompute_min)
                 ? ti_checkpoint(ctx, &f, ff_fn, (void *)b, 1, h)
                 : ff_fn(ctx, &f, h, 1, (void *)b);
        if (st != TI_OK) goto fail;
        goto residual;
    }
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &g, h, nw->dtype));
    TI_TRY_GOTO(st, ti_layernorm(ctx, &n, &g, nw, nb, 1e-5));
    ti_tensor_release(&g);
    if (which == 1) {
        TI_TRY_GOTO(st, ti_xattn_forward(ctx, &f, &b->attn1, &n, NULL));
    } else if (which == 2) {
        TI_TRY_GOTO(st, ti_xattn_forward(ctx, &f, &b->attn2, &n, context));
    }
residual:
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &g, &f, h->dtype));
    TI_TRY_GOTO(st, ti_add(ctx, &r, &g, h));
    ti_tensor_release(h);
    *h = r;
    r = ti_tensor_none();
fail:
    ti_tensor_release(&n);
    ti_tensor_release(&f);
    ti_tensor_release(&g);
    ti_tensor_release(&r);
    return st;
}

ti_status ti_spatial_transformer_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                                         const struct ti_spatial_transformer *s,
                                         const struct ti_tensor *x,
                                         const struct ti_tensor *context) {
    static const int pad0[4] = {0, 0, 0, 0};
    struct ti_tensor n = ti_tensor_none(), p = ti_tensor_none(), h = ti_tensor_none();
    ti_status st;
    int64_t H = x->shape[2], W = x->shape[3];
    /* GN(32, eps 1e-6) -> 1x1 proj_in -> tokens (B, H*W, C); the branches in the weights'
     * dtype, the token stream and the sums in x's (blocks.h) */
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &p, x, s->norm_w.dtype));
    TI_TRY_GOTO(st, ti_block_gn(ctx, &n, &p, &s->norm_w, &s->norm_b, 1e-6, 0));
    ti_tensor_release(&p);
    TI_TRY_GOTO(st, ti_conv2d(ctx, &p, &n, &s->proj_in_w, &s->proj_in_b, 1, pad0));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, ti_nchw_to_tokens(ctx, &n, &p));
    ti_tensor_release(&p);
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &h, &n, x->dtype));
    ti_tensor_release(&n);
    for (int d = 0; d < s->depth; d++) {
        const struct ti_tblock *b = &s->blocks[d];
        TI_TRY_GOTO(st, pre_norm_residual(ctx, &h, &b->norm1_w, &b->norm1_b, b, 1, context, 0));
        TI_TRY_GOTO(st, pre_norm_residual(ctx, &h, &b->norm2_w, &b->norm2_b, b, 2, context, 0));
        TI_TRY_GOTO(st, pre_norm_residual(ctx, &h, &b->norm3_w, &b->norm3_b, b, 3, context,
                                          s->ff_recompute_min));
    }
    /* back to (B, C, H, W) -> 1x1 proj_out -> + x */
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &n, &h, s->proj_out_w.dtype));
    ti_tensor_release(&h);
    TI_TRY_GOTO(st, ti_tokens_to_nchw(ctx, &p, &n, H, W));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, ti_conv2d(ctx, &n, &p, &s->proj_out_w, &s->proj_out_b, 1, pad0));
    ti_tensor_release(&p);
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &p, &n, x->dtype));
    st = ti_add(ctx, out, &p, x);
fail:
    ti_tensor_release(&n);
    ti_tensor_release(&p);
    ti_tensor_release(&h);
    return st;
}
