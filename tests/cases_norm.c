/*
 * cases_norm.c - op test cases of the norm family: groupnorm (with and without the fused
 * SiLU and affine parameters), layernorm, geglu and softmax (see op_cases.h). Mirrored exactly
 * (names, params, shapes) by scripts/oracle/ops_norm.py.
 * Shapes use odd sizes; every input is differentiable except in the *_frozen_* cases; values
 * stay in [-2, 2] (no kinks in these ops), weights in [0.5, 1.5], biases in [-0.5, 0.5].
 */
#include "op_cases.h"

/* groupnorm: p = {groups, eps, silu, has_weight, has_bias}; the present parameters follow inp
 * in the inputs, weight first. */
static ti_status f_groupnorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                             const double *p) {
    int i = 1;
    const struct ti_tensor *w = p[3] != 0 ? &in[i++] : NULL;
    const struct ti_tensor *b = p[4] != 0 ? &in[i++] : NULL;
    return ti_groupnorm(ctx, out, &in[0], w, b, (int)p[0], p[1], (int)p[2]);
}

/* layernorm: p = {eps, has_weight, has_bias} */
static ti_status f_layernorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                             const double *p) {
    int i = 1;
    const struct ti_tensor *w = p[1] != 0 ? &in[i++] : NULL;
    const struct ti_tensor *b = p[2] != 0 ? &in[i++] : NULL;
    return ti_layernorm(ctx, out, &in[0], w, b, p[0]);
}

/* layernorm of a permuted (strided) view: (5, 11, 7) -> (5, 7, 11), normalised over 11 */
static ti_status f_layernorm_strided(struct ti_ctx *ctx, struct ti_tensor *out,
                                     const struct ti_tensor *in, const double *p) {
    int perm[3] = {0, 2, 1};
    struct ti_tensor t;
    TI_TRY(ti_permute(ctx, &t, &in[0], perm));
    ti_status st = ti_layernorm(ctx, out, &t, &in[1], &in[2], p[0]);
    ti_tensor_release(&t);
    return st;
}

static ti_status f_geglu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         const double *p) {
    (void)p;
    return ti_geglu(ctx, out, &in[0]);
}

/* softmax: p = {scale} */
static ti_status f_softmax(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                           const double *p) {
    return ti_softmax(ctx, out, &in[0], p[0]);
}

/* The table keeps one case per entry on as few lines as fit (not clang-formatted).
 * Inputs: X = data, W = weight, BV = bias; g = 1 when the input is differentiable. */
/* clang-format off */
#define X(g, ...) {OC_NDIM(__VA_ARGS__), {__VA_ARGS__}, g, -2, 2, 0}
#define W(g, n) {1, {n}, g, 0.5, 1.5, 0}
#define BV(g, n) {1, {n}, g, -0.5, 0.5, 0}
#define OC_NDIM(...) OC_NDIM_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)
#define OC_NDIM_(a, b, c, d, e, f, n, ...) n

const struct op_case oc_cases_norm[] = {
    /* ---- groupnorm: (2, 12, 5, 7), groups 3 / 4, eps 1e-5 / 1e-6, with and without SiLU */
    {"gn_g3", "groupnorm", f_groupnorm, {3, 1e-5, 0, 1, 1}, 3,
     {X(1, 2, 12, 5, 7), W(1, 12), BV(1, 12)}},
    {"gn_g3_silu", "groupnorm", f_groupnorm, {3, 1e-5, 1, 1, 1}, 3,
     {X(1, 2, 12, 5, 7), W(1, 12), BV(1, 12)}},
    {"gn_g4_eps6", "groupnorm", f_groupnorm, {4, 1e-6, 0, 1, 1}, 3,
     {X(1, 2, 12, 5, 7), W(1, 12), BV(1, 12)}},
    {"gn_g4_eps6_silu", "groupnorm", f_groupnorm, {4, 1e-6, 1, 1, 1}, 3,
     {X(1, 2, 12, 5, 7), W(1, 12), BV(1, 12)}},
    /* no affine parameters, plain and with SiLU */
    {"gn_noaffine", "groupnorm", f_groupnorm, {4, 1e-5, 0, 0, 0}, 1, {X(1, 2, 12, 5, 7)}},
    {"gn_noaffine_silu", "groupnorm", f_groupnorm, {3, 1e-6, 1, 0, 0}, 1, {X(1, 2, 12, 5, 7)}},
    /* weight without bias */
    {"gn_weight_only_silu", "groupnorm", f_groupnorm, {4, 1e-5, 1, 1, 0}, 2,
     {X(1, 2, 12, 5, 7), W(1, 12)}},
    /* one group (LayerNorm over C x H x W), and C = groups (instance norm) */
    {"gn_groups1", "groupnorm", f_groupnorm, {1, 1e-5, 0, 1, 1}, 3,
     {X(1, 3, 5, 7, 3), W(1, 5), BV(1, 5)}},
    {"gn_groups_eq_c_silu", "groupnorm", f_groupnorm, {5, 1e-5, 1, 1, 1}, 3,
     {X(1, 2, 5, 11), W(1, 5), BV(1, 5)}},
    /* 3-D input (B, C, L) */
    {"gn_3d", "groupnorm", f_groupnorm, {2, 1e-6, 0, 1, 1}, 3,
     {X(1, 3, 10, 13), W(1, 10), BV(1, 10)}},
    /* frozen weight (no gradient buffer), trainable bias and input */
    {"gn_frozen_weight_silu", "groupnorm", f_groupnorm, {3, 1e-5, 1, 1, 1}, 3,
     {X(1, 2, 12, 5, 7), W(0, 12), BV(1, 12)}},
    /* frozen input and weight: only dbias flows (the SiLU still needs the saved statistics) */
    {"gn_frozen_input_silu", "groupnorm", f_groupnorm, {3, 1e-5, 1, 1, 1}, 3,
     {X(0, 2, 12, 5, 7), W(0, 12), BV(1, 12)}},
    /* only dbias wanted, no SiLU: the input and statistics are not even kept */
    {"gn_bias_only", "groupnorm", f_groupnorm, {4, 1e-5, 0, 1, 1}, 3,
     {X(0, 2, 12, 5, 7), W(0, 12), BV(1, 12)}},
    /* a single big set (B * groups = 1 < threads): the chunked statistics and row-parallel
     * paths, rows of 1030 > one statistics chunk */
    {"gn_big_set", "groupnorm", f_groupnorm, {1, 1e-5, 1, 1, 1}, 3,
     {X(1, 1, 2, 1030), W(1, 2), BV(1, 2)}},

    /* ---- layernorm */
    {"ln_3d", "layernorm", f_layernorm, {1e-5, 1, 1}, 3, {X(1, 5, 7, 11), W(1, 11), BV(1, 11)}},
    {"ln_2d", "layernorm", f_layernorm, {1e-5, 1, 1}, 3, {X(1, 13, 7), W(1, 7), BV(1, 7)}},
    {"ln_noaffine", "layernorm", f_layernorm, {1e-5, 0, 0}, 1, {X(1, 5, 7, 11)}},
    {"ln_eps6_weight_only", "layernorm", f_layernorm, {1e-6, 1, 0}, 2,
     {X(1, 7, 13), W(1, 13)}},
    {"ln_frozen_weight", "layernorm", f_layernorm, {1e-5, 1, 1}, 3,
     {X(1, 5, 7, 11), W(0, 11), BV(1, 11)}},
    {"ln_frozen_input", "layernorm", f_layernorm, {1e-5, 1, 1}, 3,
     {X(0, 5, 7, 11), W(1, 11), BV(1, 11)}},
    {"ln_bias_only", "layernorm", f_layernorm, {1e-5, 1, 1}, 3,
     {X(0, 5, 7, 11), W(0, 11), BV(1, 11)}},
    /* rows longer than one statistics chunk, fewer rows than threads */
    {"ln_long_rows", "layernorm", f_layernorm, {1e-5, 1, 1}, 3,
     {X(1, 1, 1030), W(1, 1030), BV(1, 1030)}},
    {"ln_strided", "layernorm", f_layernorm_strided, {1e-5}, 3,
     {X(1, 5, 11, 7), W(1, 11), BV(1, 11)}},

    /* ---- geglu */
    {"geglu", "geglu", f_geglu, {0}, 1, {X(1, 5, 7, 22)}},
    {"geglu_2d", "geglu", f_geglu, {0}, 1, {X(1, 13, 6)}},

    /* ---- softmax */
    {"softmax", "softmax", f_softmax, {1}, 1, {X(1, 7, 13)}},
    {"softmax_scale", "softmax", f_softmax, {0.3}, 1, {X(1, 7, 13)}},
    {"softmax_large", "softmax", f_softmax, {1}, 1, {{2, {7, 13}, 1, -50, 50, 0}}},
    {"softmax_large_scaled", "softmax", f_softmax, {-0.7}, 1, {{3, {3, 5, 11}, 1, -50, 50, 0}}},
    {"softmax_rows77", "softmax", f_softmax, {0.125}, 1, {X(1, 5, 77)}},
    {NULL},
};
/* clang-format on */
