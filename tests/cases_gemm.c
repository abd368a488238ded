/*
 * cases_gemm.c - op test cases of the GEMM family: linear, matmul, conv2d (see op_cases.h),
 * mirrored exactly (names and params) by scripts/oracle/ops_gemm.py.
 * Odd sizes (3, 5, 7, 9, 11, 13); every weight is differentiable except in the *_frozen cases,
 * which check that a frozen weight (no gradient slot) still gives the input gradient.
 * Values in [-1, 1] keep the f32 sums well inside the default oracle tolerances.
 */
#include "op_cases.h"

/* linear(in0, in1, bias = p0 ? in2 : none) */
static ti_status f_linear(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                          const double *p) {
    return ti_linear(ctx, out, &in[0], &in[1], p[0] != 0 ? &in[2] : NULL);
}

/* linear of a transposed (strided) input: exercises the contiguous copy and its gradient */
static ti_status f_linear_transposed(struct ti_ctx *ctx, struct ti_tensor *out,
                                     const struct ti_tensor *in, const double *p) {
    int perm[2] = {1, 0};
    struct ti_tensor t;
    TI_TRY(ti_permute(ctx, &t, &in[0], perm));
    ti_status st = ti_linear(ctx, out, &t, &in[1], p[0] != 0 ? &in[2] : NULL);
    ti_tensor_release(&t);
    return st;
}

/* matmul(in0, in1, trans_a = p0, trans_b = p1, alpha = p2) */
static ti_status f_matmul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                          const double *p) {
    return ti_matmul(ctx, out, &in[0], &in[1], (int)p[0], (int)p[1], p[2]);
}

/* matmul of in0 permuted by (p3, p4, p5): a strided operand (p3..p5 = 1 0 2 keeps a unit
 * stride: used in place; 2 0 1 has none: copied first) */
static ti_status f_matmul_permuted(struct ti_ctx *ctx, struct ti_tensor *out,
                                   const struct ti_tensor *in, const double *p) {
    int perm[3] = {(int)p[3], (int)p[4], (int)p[5]};
    struct ti_tensor t;
    TI_TRY(ti_permute(ctx, &t, &in[0], perm));
    ti_status st = ti_matmul(ctx, out, &t, &in[1], (int)p[0], (int)p[1], p[2]);
    ti_tensor_release(&t);
    return st;
}

/* conv2d(in0, in1, bias = p5 ? in2 : none, stride p0, pad {p1, p2, p3, p4} = top, bottom, left,
 * right) */
static ti_status f_conv2d(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                          const double *p) {
    const int pad[4] = {(int)p[1], (int)p[2], (int)p[3], (int)p[4]};
    return ti_conv2d(ctx, out, &in[0], &in[1], p[5] != 0 ? &in[2] : NULL, (int)p[0], pad);
}

/* (one case per line or two: clang-format would put every field on its own line) */
/* clang-format off */
/* input specs: differentiable (G) or frozen (F), values in [-1, 1] */
#define G2(a, b) {2, {a, b}, 1, -1, 1, 0}
#define G3(a, b, c) {3, {a, b, c}, 1, -1, 1, 0}
#define G4(a, b, c, d) {4, {a, b, c, d}, 1, -1, 1, 0}
#define G1(a) {1, {a}, 1, -1, 1, 0}
#define F2(a, b) {2, {a, b}, 0, -1, 1, 0}
#define F3(a, b, c) {3, {a, b, c}, 0, -1, 1, 0}
#define F4(a, b, c, d) {4, {a, b, c, d}, 0, -1, 1, 0}
#define F1(a) {1, {a}, 0, -1, 1, 0}

const struct op_case oc_cases_gemm[] = {
    /* ---- linear: p0 = has bias ---- */
    {"linear_bias", "linear", f_linear, {1}, 3, {G2(5, 7), G2(11, 7), G1(11)}},
    {"linear_nobias", "linear", f_linear, {0}, 2, {G2(13, 5), G2(7, 5)}},
    {"linear_lead_dims", "linear", f_linear, {1}, 3, {G3(2, 5, 7), G2(11, 7), G1(11)}},
    {"linear_frozen", "linear", f_linear, {1}, 3, {G3(2, 5, 7), F2(11, 7), F1(11)}},
    {"linear_transposed_inp", "linear", f_linear_transposed, {1}, 3,
     {G2(7, 5), G2(11, 7), G1(11)}},
    /* ---- matmul: p0 = trans_a, p1 = trans_b, p2 = alpha ---- */
    {"matmul_plain", "matmul", f_matmul, {0, 0, 1}, 2, {G2(5, 7), G2(7, 11)}},
    {"matmul_trans_a", "matmul", f_matmul, {1, 0, 1}, 2, {G2(7, 5), G2(7, 11)}},
    {"matmul_trans_b", "matmul", f_matmul, {0, 1, 1}, 2, {G2(5, 7), G2(11, 7)}},
    {"matmul_trans_both", "matmul", f_matmul, {1, 1, 1}, 2, {G3(3, 7, 5), G3(3, 11, 7)}},
    {"matmul_batched_alpha", "matmul", f_matmul, {0, 0, -0.75}, 2, {G3(3, 5, 7), G3(3, 7, 11)}},
    {"matmul_bcast_b_2d", "matmul", f_matmul, {0, 0, 1}, 2, {G3(3, 5, 7), G2(7, 11)}},
    {"matmul_bcast_a_trans", "matmul", f_matmul, {1, 0, 0.5}, 2, {G3(1, 7, 5), G3(3, 7, 11)}},
    {"matmul_frozen_b", "matmul", f_matmul, {0, 1, 1}, 2, {G3(3, 5, 7), F3(3, 11, 7)}},
    {"matmul_strided_a", "matmul", f_matmul_permuted, {0, 0, 1, 1, 0, 2}, 2,
     {G3(5, 3, 7), G3(3, 7, 11)}},
    {"matmul_copied_a", "matmul", f_matmul_permuted, {0, 0, 1, 2, 0, 1}, 2,
     {G3(5, 7, 3), G3(3, 7, 11)}},
    /* ---- conv2d: p0 = stride, p1..p4 = pad top, bottom, left, right, p5 = has bias ---- */
    {"conv2d_3x3_s1_p1", "conv2d", f_conv2d, {1, 1, 1, 1, 1, 1}, 3,
     {G4(2, 3, 7, 9), G4(5, 3, 3, 3), G1(5)}},
    {"conv2d_3x3_s1_nopad", "conv2d", f_conv2d, {1, 0, 0, 0, 0, 1}, 3,
     {G4(1, 5, 9, 7), G4(3, 5, 3, 3), G1(3)}},
    {"conv2d_3x3_s1_asym", "conv2d", f_conv2d, {1, 2, 0, 0, 1, 1}, 3,
     {G4(2, 3, 6, 5), G4(5, 3, 3, 3), G1(5)}},
    {"conv2d_3x3_s2_p1", "conv2d", f_conv2d, {2, 1, 1, 1, 1, 1}, 3,
     {G4(2, 3, 9, 7), G4(5, 3, 3, 3), G1(5)}},
    {"conv2d_1x1", "conv2d", f_conv2d, {1, 0, 0, 0, 0, 1}, 3,
     {G4(2, 5, 7, 3), G4(7, 5, 1, 1), G1(7)}},
    {"conv2d_1x1_s2", "conv2d", f_conv2d, {2, 0, 0, 0, 0, 1}, 3,
     {G4(1, 5, 7, 9), G4(3, 5, 1, 1), G1(3)}},
    {"conv2d_1x1_pad", "conv2d", f_conv2d, {1, 1, 0, 0, 2, 1}, 3,
     {G4(1, 3, 5, 7), G4(5, 3, 1, 1), G1(5)}},
    {"conv2d_vae_down", "conv2d", f_conv2d, {2, 0, 1, 0, 1, 1}, 3,
     {G4(1, 3, 8, 10), G4(5, 3, 3, 3), G1(5)}},
    {"conv2d_5x5_nobias", "conv2d", f_conv2d, {1, 2, 2, 2, 2, 0}, 2,
     {G4(1, 3, 7, 9), G4(5, 3, 5, 5)}},
    {"conv2d_2x3_asym_s1", "conv2d", f_conv2d, {1, 1, 0, 2, 1, 1}, 3,
     {G4(2, 3, 5, 7), G4(5, 3, 2, 3), G1(5)}},
    {"conv2d_3x3_s3_asym", "conv2d", f_conv2d, {3, 2, 0, 1, 2, 0}, 2,
     {G4(1, 3, 11, 13), G4(5, 3, 3, 3)}},
    {"conv2d_frozen", "conv2d", f_conv2d, {1, 1, 1, 1, 1, 1}, 3,
     {G4(2, 3, 7, 9), F4(5, 3, 3, 3), F1(5)}},
    {"conv2d_frozen_s2", "conv2d", f_conv2d, {2, 1, 1, 1, 1, 1}, 3,
     {G4(1, 5, 9, 7), F4(3, 5, 3, 3), F1(3)}},
    {NULL},
};
/* clang-format on */
