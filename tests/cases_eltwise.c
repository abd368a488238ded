/*
 * cases_eltwise.c - op test cases for copy/cast, add/sub/axpby, mul, scale, sum/mean, the unary
 * activations, reshape, permute, slice, concat and checkpoint (see op_cases.h).
 * Shapes use odd sizes (5, 7, 11, 13) and broadcasting.
 */
#include "op_cases.h"

/* out = p0*a + p1*b (broadcast) */
static ti_status f_axpby(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         const double *p) {
    return ti_axpby(ctx, out, p[0], &in[0], p[1], &in[1]);
}

/* a^T (a permuted view, strided) + b */
static ti_status f_add_strided(struct ti_ctx *ctx, struct ti_tensor *out,
                               const struct ti_tensor *in, const double *p) {
    (void)p;
    int perm[2] = {1, 0};
    struct ti_tensor t;
    TI_TRY(ti_permute(ctx, &t, &in[0], perm));
    ti_status st = ti_add(ctx, out, &t, &in[1]);
    ti_tensor_release(&t);
    return st;
}

static ti_status f_mul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                       const double *p) {
    (void)p;
    return ti_mul(ctx, out, &in[0], &in[1]);
}

static ti_status f_scale(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         const double *p) {
    return ti_scale(ctx, out, &in[0], p[0]);
}

/* sum (p0 = 0) or mean (p0 = 1) over dims p[2..2+p1) with keepdim p[7] */
static ti_status f_reduce(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                          const double *p) {
    int dims[4], nd = (int)p[1];
    for (int i = 0; i < nd; i++)
        dims[i] = (int)p[2 + i];
    return p[0] != 0 ? ti_mean(ctx, out, &in[0], nd, dims, (int)p[7])
                     : ti_sum(ctx, out, &in[0], nd, dims, (int)p[7]);
}

static ti_status f_unary(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         const double *p) {
    return ti_unary(ctx, out, &in[0], (enum ti_unary_kind)(int)p[0], p[1], p[2]);
}

/* copy of a permuted (strided) view: exercises COPY's strided gather and its backward */
static ti_status f_copy_permuted(struct ti_ctx *ctx, struct ti_tensor *out,
                                 const struct ti_tensor *in, const double *p) {
    (void)p;
    int perm[3] = {2, 0, 1};
    struct ti_tensor t;
    TI_TRY(ti_permute(ctx, &t, &in[0], perm));
    ti_status st = ti_copy(ctx, out, &t, t.dtype);
    ti_tensor_release(&t);
    return st;
}

/* reshape (5, 7, 11) -> (35, 11), then scale by 2 so the view is consumed by a kernel */
static ti_status f_reshape(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                           const double *p) {
    (void)p;
    int64_t shape[2] = {35, 11};
    struct ti_tensor t;
    TI_TRY(ti_reshape(ctx, &t, &in[0], 2, shape));
    ti_status st = ti_scale(ctx, out, &t, 2.0);
    ti_tensor_release(&t);
    return st;
}

/* slice [p1, p1+p2) of dim p0, then a unary op so the strided view feeds a kernel */
static ti_status f_slice(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         const double *p) {
    struct ti_tensor t;
    TI_TRY(ti_slice(ctx, &t, &in[0], (int)p[0], (int64_t)p[1], (int64_t)p[2]));
    ti_status st = ti_silu(ctx, out, &t);
    ti_tensor_release(&t);
    return st;
}

static ti_status f_concat(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                          const double *p) {
    return ti_concat(ctx, out, &in[0], &in[1], (int)p[0]);
}

/* checkpointed block: silu(a * b) + a, recomputed in backward */
static ti_status ckpt_block(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                            int n_in, void *user) {
    (void)n_in;
    (void)user;
    struct ti_tensor m, s;
    TI_TRY(ti_mul(ctx, &m, &in[0], &in[1]));
    ti_status st = ti_silu(ctx, &s, &m);
    ti_tensor_release(&m);
    if (st != TI_OK) return st;
    st = ti_add(ctx, out, &s, &in[0]);
    ti_tensor_release(&s);
    return st;
}

static ti_status f_checkpoint(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                              const double *p) {
    (void)p;
    return ti_checkpoint(ctx, out, ckpt_block, NULL, 2, in);
}

/* one differentiable input of 2 or 3 dims, values in [-2, 2] */
#define ONE2(a, b)                                                                                 \
    1, {                                                                                           \
        { 2, {a, b}, 1, -2, 2, 0 }                                                                 \
    }
#define ONE3(a, b, c)                                                                              \
    1, {                                                                                           \
        { 3, {a, b, c}, 1, -2, 2, 0 }                                                              \
    }

const struct op_case oc_cases_eltwise[] = {
    {"add_same", "add", f_axpby, {1, 1}, 2, {{2, {5, 7}, 1, -2, 2, 0}, {2, {5, 7}, 1, -2, 2, 0}}},
    {"add_broadcast_row",
     "add",
     f_axpby,
     {1, 1},
     2,
     {{3, {5, 7, 11}, 1, -2, 2, 0}, {1, {11}, 1, -2, 2, 0}}},
    {"add_broadcast_both",
     "add",
     f_axpby,
     {1, 1},
     2,
     {{3, {5, 1, 11}, 1, -2, 2, 0}, {3, {1, 7, 1}, 1, -2, 2, 0}}},
    {"sub_broadcast_channel",
     "add",
     f_axpby,
     {1, -1},
     2,
     {{4, {2, 5, 7, 3}, 1, -2, 2, 0}, {4, {2, 5, 1, 1}, 1, -2, 2, 0}}},
    {"axpby",
     "add",
     f_axpby,
     {0.5, -2.5},
     2,
     {{2, {7, 13}, 1, -2, 2, 0}, {2, {7, 13}, 1, -2, 2, 0}}},
    {"add_strided",
     "add",
     f_add_strided,
     {0},
     2,
     {{2, {5, 7}, 1, -2, 2, 0}, {2, {7, 5}, 1, -2, 2, 0}}},
    {"mul_same", "mul", f_mul, {0}, 2, {{2, {5, 7}, 1, -2, 2, 0}, {2, {5, 7}, 1, -2, 2, 0}}},
    {"mul_broadcast",
     "mul",
     f_mul,
     {0},
     2,
     {{3, {5, 7, 11}, 1, -2, 2, 0}, {3, {5, 1, 11}, 1, -2, 2, 0}}},
    {"scale", "scale", f_scale, {-1.75}, ONE2(7, 11)},
    {"sum_all", "sum", f_reduce, {0, 0, 0, 0, 0, 0, 0, 0}, ONE3(5, 7, 11)},
    {"sum_dim1_keep", "sum", f_reduce, {0, 1, 1, 0, 0, 0, 0, 1}, ONE3(5, 7, 11)},
    {"sum_dims02", "sum", f_reduce, {0, 2, 0, 2, 0, 0, 0, 0}, ONE3(5, 7, 11)},
    {"mean_last", "sum", f_reduce, {1, 1, -1, 0, 0, 0, 0, 0}, ONE3(5, 7, 13)},
    {"mean_all", "sum", f_reduce, {1, 0, 0, 0, 0, 0, 0, 0}, ONE2(13, 11)},
    {"silu", "unary", f_unary, {TI_UNARY_SILU, 0, 0}, ONE3(5, 7, 11)},
    {"gelu", "unary", f_unary, {TI_UNARY_GELU, 0, 0}, ONE3(5, 7, 11)},
    {"quick_gelu", "unary", f_unary, {TI_UNARY_QUICK_GELU, 0, 0}, ONE3(5, 7, 11)},
    {"exp_half", "unary", f_unary, {TI_UNARY_EXP, 0.5, 0}, ONE2(7, 11)},
    {"clamp", "unary", f_unary, {TI_UNARY_CLAMP, -1, 1}, ONE2(13, 11)},
    {"copy_permuted", "copy", f_copy_permuted, {0}, ONE3(5, 7, 11)},
    {"reshape", "reshape", f_reshape, {0}, ONE3(5, 7, 11)},
    {"permute_add",
     "permute",
     f_add_strided,
     {0},
     2,
     {{2, {11, 13}, 1, -2, 2, 0}, {2, {13, 11}, 0, -2, 2, 0}}},
    {"slice_dim1", "slice", f_slice, {1, 2, 3}, ONE3(5, 7, 11)},
    {"slice_last", "slice", f_slice, {2, 4, 5}, ONE3(5, 7, 11)},
    {"concat_dim1",
     "concat",
     f_concat,
     {1},
     2,
     {{4, {2, 5, 3, 3}, 1, -2, 2, 0}, {4, {2, 7, 3, 3}, 1, -2, 2, 0}}},
    {"concat_last",
     "concat",
     f_concat,
     {-1},
     2,
     {{2, {5, 7}, 1, -2, 2, 0}, {2, {5, 11}, 1, -2, 2, 0}}},
    {"checkpoint",
     "checkpoint",
     f_checkpoint,
     {0},
     2,
     {{2, {5, 7}, 1, -2, 2, 0}, {2, {5, 7}, 1, -2, 2, 0}}},
    {NULL},
};
