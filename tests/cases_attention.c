/*
 * cases_attention.c - op test cases of the attention family (see op_cases.h), mirrored by
 * scripts/oracle/ops_attention.py (same names and params).
 *
 * Parameters: p[0] heads, p[1] scale, p[2] causal, p[3] C = NH*D of the fused QKV input.
 * Shapes are small and odd (B 1-2, T 5-13, head widths 3-7) and cover: self-attention, cross-
 * attention with Tq != Tk and Dv != D, the causal mask, one head of odd width (VAE-like),
 * q/k/v as strided column slices of one fused (B, T, 3C) projection, a scale other than
 * 1/sqrt(D), and cross-attention where only k and v need gradients (frozen latent path).
 * Values in [-1, 1] keep the softmax smooth for central differences.
 */
#include "op_cases.h"

static ti_status f_attention(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                             const double *p) {
    return ti_attention(ctx, out, &in[0], &in[1], &in[2], (int)p[0], p[1], (int)p[2]);
}

/* q, k, v = columns [0, C), [C, 2C), [2C, 3C) of one (B, T, 3C) input: strided views whose
 * row stride is 3C, as a fused QKV projection produces them */
static ti_status f_attention_fused(struct ti_ctx *ctx, struct ti_tensor *out,
                                   const struct ti_tensor *in, const double *p) {
    int64_t C = (int64_t)p[3];
    struct ti_tensor q, k, v;
    TI_TRY(ti_slice(ctx, &q, &in[0], 2, 0, C));
    ti_status st = ti_slice(ctx, &k, &in[0], 2, C, C);
    if (st != TI_OK) {
        ti_tensor_release(&q);
        return st;
    }
    st = ti_slice(ctx, &v, &in[0], 2, 2 * C, C);
    if (st == TI_OK) {
        st = ti_attention(ctx, out, &q, &k, &v, (int)p[0], p[1], (int)p[2]);
        ti_tensor_release(&v);
    }
    ti_tensor_release(&k);
    ti_tensor_release(&q);
    return st;
}

/* one case per entry reads better than one field per line */
/* clang-format off */
/* a differentiable (grad = 1) or frozen (grad = 0) 3-D input in [-1, 1] */
#define IN3(g, a, b, c) {3, {a, b, c}, g, -1, 1, 0}

const struct op_case oc_cases_attention[] = {
    /* B 2, T 13, 2 heads of 5, scale 1/sqrt(5) */
    {"attention_self", "attention", f_attention, {2, 0.4472135954999579, 0}, 3,
     {IN3(1, 2, 13, 10), IN3(1, 2, 13, 10), IN3(1, 2, 13, 10)}},
    /* Tq 11, Tk 7, 2 heads: D 6, Dv 4 */
    {"attention_cross", "attention", f_attention, {2, 0.4082482904638631, 0}, 3,
     {IN3(1, 2, 11, 12), IN3(1, 2, 7, 12), IN3(1, 2, 7, 8)}},
    /* CLIP-like causal self-attention, 3 heads of 4 */
    {"attention_causal", "attention", f_attention, {3, 0.5, 1}, 3,
     {IN3(1, 2, 11, 12), IN3(1, 2, 11, 12), IN3(1, 2, 11, 12)}},
    /* VAE-like: one head of odd width 7 over 13 tokens */
    {"attention_single_head_odd", "attention", f_attention, {1, 0.3779644730092272, 0}, 3,
     {IN3(1, 1, 13, 7), IN3(1, 1, 13, 7), IN3(1, 1, 13, 7)}},
    /* q, k, v as slices of one fused (2, 13, 30) tensor, 2 heads of 5 */
    {"attention_fused_qkv", "attention", f_attention_fused, {2, 0.4472135954999579, 0, 10}, 1,
     {IN3(1, 2, 13, 30)}},
    /* the fused layout under the causal mask */
    {"attention_fused_causal", "attention", f_attention_fused, {2, 0.4472135954999579, 1, 10}, 1,
     {IN3(1, 2, 7, 30)}},
    /* scale 0.9 (not 1/sqrt(3)), 2 heads: D 3, Dv 5 */
    {"attention_scale", "attention", f_attention, {2, 0.9, 0}, 3,
     {IN3(1, 1, 7, 6), IN3(1, 1, 5, 6), IN3(1, 1, 5, 10)}},
    /* cross-attention with a frozen query: only k and v get gradients */
    {"attention_kv_grad_only", "attention", f_attention, {2, 0.4082482904638631, 0}, 3,
     {IN3(0, 2, 11, 12), IN3(1, 2, 7, 12), IN3(1, 2, 7, 8)}},
    {NULL},
};
/* clang-format on */
