/*
 * blocks.h - the building blocks shared by the UNet, the VAE and the text encoders, each a
 * struct of parameter tensors (registered under their checkpoint sub-keys) plus a forward
 * function built from autograd ops. Every forward releases its intermediates as soon as they
 * are consumed; the tape keeps what backward needs.
 *
 *   ResBlock (openaimodel, with time embedding) / ResnetBlock (VAE, without)
 *   CrossAttention (q/k/v without bias, to_out.0 with bias), BasicTransformerBlock (GEGLU FF),
 *   SpatialTransformer (GN, 1x1 proj_in, blocks, 1x1 proj_out, residual)
 *   Down/Upsample convs
 * Shapes: images (B, C, H, W); sequences (B, T, D).
 */
#ifndef TI_BLOCKS_H
#define TI_BLOCKS_H

#include "context.h"
#include "ops.h"
#include "weights.h"

/* out = x itself (a new reference) when it has dtype dt, else x cast to dt (recorded). */
ti_status ti_block_as_dtype(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x,
                            enum ti_dtype dt);

/* Dtypes: a block computes its branches in its weights' dtype (its input cast to it) and its
 * residual sums in its input's dtype, which is also its output's. A bf16 UNet fed an f32 x
 * thus keeps its residual stream (ResBlock and transformer sums, skip connections) in f32
 * and rounds to bf16 only at the inputs of the norms and convolutions; fed a bf16 x, it runs
 * all in bf16. */

/* GroupNorm with 32 groups (+ optional fused SiLU). */
ti_status ti_block_gn(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x,
                      const struct ti_tensor *w, const struct ti_tensor *b, double eps, int silu);

/* ---- ResBlock (UNet: emb_channels > 0) / ResnetBlock (VAE: emb_channels == 0) -------------- */
struct ti_resblock {
    int cin, cout, emb_channels;
    double eps;
    int vae_names; /* VAE key names: norm1/conv1/norm2/conv2/nin_shortcut */
    struct ti_tensor norm1_w, norm1_b, conv1_w, conv1_b;
    struct ti_tensor emb_w, emb_b;
    struct ti_tensor norm2_w, norm2_b, conv2_w, conv2_b;
    struct ti_tensor skip_w, skip_b; /* 1x1 when cin != cout */
};
ti_status ti_resblock_init(struct ti_resblock *r, struct ti_weights *w, const char *prefix, int cin,
                           int cout, int emb_channels, int vae_names, double eps,
                           struct ti_err *err);
/* x (B, cin, H, W), emb (B, emb_channels) SiLU not yet applied (NULL for the VAE). */
ti_status ti_resblock_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                              const struct ti_resblock *r, const struct ti_tensor *x,
                              const struct ti_tensor *emb_silu);

/* ---- CrossAttention -------------------------------------------------------------------------- */
struct ti_xattn {
    int dim, ctx_dim, heads, head_dim;
    struct ti_tensor q_w, k_w, v_w, out_w, out_b;
};
ti_status ti_xattn_init(struct ti_xattn *a, struct ti_weights *w, const char *prefix, int dim,
                        int ctx_dim, int heads, int head_dim, struct ti_err *err);
/* x (B, T, dim), context (B, Tc, ctx_dim) or NULL for self-attention -> (B, T, dim) */
ti_status ti_xattn_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_xattn *a,
                           const struct ti_tensor *x, const struct ti_tensor *context);

/* ---- SpatialTransformer ---------------------------------------------------------------------- */
struct ti_tblock {
    struct ti_tensor norm1_w, norm1_b, norm2_w, norm2_b, norm3_w, norm3_b;
    struct ti_xattn attn1, attn2;
    struct ti_tensor ff_in_w, ff_in_b, ff_out_w, ff_out_b;
};
struct ti_spatial_transformer {
    int channels, depth;
    struct ti_tensor norm_w, norm_b, proj_in_w, proj_in_b, proj_out_w, proj_out_b;
    struct ti_tblock *blocks;
    /* While recording with frozen feed-forward weights, norm3 + GEGLU feed-forward of a block
     * whose GEGLU input (B, T, 8C) takes at least this many bytes is recomputed in backward
     * (ti_checkpoint) instead of keeping that input: 8x the block's (B, T, C) residual, the
     * largest activation a frozen UNet keeps (0: never). Default 16 MiB (the SD UNet's 64x64
     * and 32x32 levels at 512 px), TI_FF_RECOMPUTE_MB overrides (0: always, -1: never). */
    size_t ff_recompute_min;
};
ti_status ti_spatial_transformer_init(struct ti_spatial_transformer *s, struct ti_weights *w,
                                      const char *prefix, int channels, int heads, int head_dim,
                                      int depth, int context_dim, struct ti_err *err);
void ti_spatial_transformer_free(struct ti_spatial_transformer *s);
/* x (B, C, H, W), context (B, Tc, context_dim) -> (B, C, H, W) */
ti_status ti_spatial_transformer_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                                         const struct ti_spatial_transformer *s,
                                         const struct ti_tensor *x,
                                         const struct ti_tensor *context);

/* ---- convolutions with their key names ------------------------------------------------------- */
struct ti_conv {
    int cin, cout, k, stride;
    int pad[4];
    struct ti_tensor w, b;
};
/* registers prefix+"weight" [cout, cin, k, k] and prefix+"bias" [cout] */
ti_status ti_conv_init(struct ti_conv *c, struct ti_weights *w, const char *prefix, int cin,
                       int cout, int k, int stride, int pad_t, int pad_b, int pad_l, int pad_r,
                       struct ti_err *err);
ti_status ti_conv_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_conv *c,
                          const struct ti_tensor *x);

/* (B, C, H, W) <-> (B, H*W, C) (contiguous copies, autodiff kept) */
ti_status ti_nchw_to_tokens(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *x);
ti_status ti_tokens_to_nchw(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *t,
                            int64_t h, int64_t w);

/* Joins prefix and a printf-style suffix into buf (size TI_KEY_MAX). */
#define TI_KEY_MAX 256
const char *ti_key(char *buf, const char *prefix, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* TI_BLOCKS_H */
