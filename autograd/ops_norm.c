/*
 * ops_norm.c - front ends and tape backward rules of the normalisation family:
 *   ti_groupnorm  (B, C, ...) -> same shape, GroupNorm with optional affine and fused SiLU,
 *   ti_layernorm  (..., D)    -> same shape, LayerNorm over the last dim,
 *   ti_geglu      (..., 2F)   -> (..., F), a * gelu_erf(g) with [a | g] the two halves,
 *   ti_softmax    (..., N)    -> same shape, softmax(scale * x) over the last dim.
 * Each validates its arguments, makes the input contiguous, views it in the kernel layout of
 * ops.h ((B, C, S) for groupnorm, (M, D) / (M, 2F) / (M, N) for the others), runs the backend
 * kernel and records the op on the tape keeping only what the backward kernel reads.
 * Not here: the kernels (cpu/norm.c, cpu/softmax.c, cuda/norm.cu, cuda/softmax.cu).
 *
 * Backward rules (derivations; the kernels implement them):
 *
 * GroupNorm / LayerNorm. For one normalisation set of n elements (a (b, g) group of C/G
 * channels x S positions, or a row of D features): mu = mean(x), var = mean((x - mu)^2) (biased),
 * r = 1/sqrt(var + eps), xh = (x - mu) * r, p = xh * w + b (w, b per channel / feature),
 * y = p, or y = silu(p) = p * s(p) with s the sigmoid when SiLU is fused.
 *   g   := dL/dp = dy                              (plain)
 *        = dy * s(p) * (1 + p * (1 - s(p)))        (fused SiLU; p recomputed from x, mu, r, w, b)
 *   dL/dxh_i = g_i * w_i.
 *   dxh_i/dx_j = r (delta_ij - 1/n - xh_i xh_j / n)     (since dmu/dx_j = 1/n and
 *               dr/dx_j = -r^3 (x_j - mu) / n = -r^2 xh_j / n)
 *   => dx_j = r * (g_j w_j - mean_i(g_i w_i) - xh_j * mean_i(g_i w_i xh_i)),
 *   dw_c = sum over the positions of channel c (and over the batch / rows) of g * xh,
 *   db_c = sum of g over the same positions.
 * GEGLU: y = a * gelu(u), gelu(u) = u Phi(u), Phi the normal CDF, phi its density:
 *   da = dy * gelu(u);  du = dy * a * (Phi(u) + u phi(u)).
 * Softmax: y = softmax(s x) over the row; dy/dx_j: dx_j = s * y_j * (dy_j - sum_i dy_i y_i).
 */
#include <string.h> /* defines: memset */

#include "ops_internal.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static int present(const struct ti_tensor *t) {
    return t && t->data;
}

/* Contiguous copy (or new reference) of an optional 1-D parameter of `n` elements. */
static ti_status param_contiguous(struct ti_ctx *ctx, const char *op, const char *arg,
                                  const struct ti_tensor *t, enum ti_dtype dt, int64_t n,
                                  struct ti_tensor *out) {
    *out = ti_tensor_none();
    if (!present(t)) return TI_OK;
    TI_TRY(ti_check_dtype(ctx, op, arg, t, dt));
    int64_t shape[1] = {n};
    TI_TRY(ti_check_shape(ctx, op, arg, t, 1, shape));
    return ti_contiguous(ctx, out, t);
}

static void release3(struct ti_tensor *a, struct ti_tensor *b, struct ti_tensor *c) {
    ti_tensor_release(a);
    ti_tensor_release(b);
    ti_tensor_release(c);
}

/* Input with ndim >= min_ndim; message names op, argument, shape and what was expected. */
static ti_status check_ndim(struct ti_ctx *ctx, const char *op, const struct ti_tensor *t,
                            int min_ndim, const char *expected) {
    if (t->ndim >= min_ndim) return TI_OK;
    char s[128];
    return ti_error(&ctx->err, TI_ERR_SHAPE, "%s: argument 'inp' has shape %s, expected %s", op,
                    ti_shape_str(t->ndim, t->shape, s, sizeof s), expected);
}

/* ---- GROUPNORM ------------------------------------------------------------------------------- */

/* Which saved tensors the groupnorm backward kernel reads, from the gradient slots
 * (0 inp, 1 weight, 2 bias) and the SiLU flag. Shared by the front end (what to keep) and the
 * tape backward (what to hand over), so both agree:
 *   x     (inp, mean, rstd): for dinp, dweight, and to recompute the pre-activation with SiLU;
 *   w     (weight):          for dinp and the SiLU pre-activation;
 *   b     (bias):            for the SiLU pre-activation only. */
struct gn_keep {
    int x, w, b;
};
static struct gn_keep gn_keep_of(const int32_t *slot, int silu) {
    struct gn_keep k;
    k.x = slot[0] >= 0 || slot[1] >= 0 || silu;
    k.w = slot[0] >= 0 || silu;
    k.b = silu;
    return k;
}

ti_status ti_groupnorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                       const struct ti_tensor *weight, const struct ti_tensor *bias, int groups,
                       double eps, int silu) {
    static const char op[] = "groupnorm";
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, op, "inp", inp));
    TI_TRY(check_ndim(ctx, op, inp, 2, "(B, C, ...)"));
    char s[128];
    int64_t B = inp->shape[0], C = inp->shape[1], S = 1;
    for (int i = 2; i < inp->ndim; i++)
        S *= inp->shape[i];
    if (groups < 1 || C % groups != 0)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "groupnorm: %d groups do not divide the %lld channels of inp %s", groups,
                        (long long)C, ti_shape_str(inp->ndim, inp->shape, s, sizeof s));
    if (C == 0 || S == 0)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "groupnorm: inp %s has empty groups (C and the spatial size must be > 0)",
                        ti_shape_str(inp->ndim, inp->shape, s, sizeof s));
    if (!(eps >= 0))
        return ti_error(&ctx->err, TI_ERR_INVALID, "groupnorm: eps %g must be >= 0", eps);

    struct ti_tensor x = ti_tensor_none(), w = ti_tensor_none(), b = ti_tensor_none();
    TI_TRY(param_contiguous(ctx, op, "weight", weight, inp->dtype, C, &w));
    ti_status st = param_contiguous(ctx, op, "bias", bias, inp->dtype, C, &b);
    if (st == TI_OK) st = ti_contiguous(ctx, &x, inp);
    if (st != TI_OK) {
        release3(&x, &w, &b);
        return st;
    }

    struct ti_groupnorm_args a;
    memset(&a, 0, sizeof a);
    struct ti_tensor o = ti_tensor_none();
    int64_t bcs[3] = {B, C, S}, bg[2] = {B, groups};
    enum ti_dtype sdt = ti_stat_dtype(x.dtype);
    st = ti_ctx_tensor(ctx, &o, x.dtype, x.ndim, x.shape);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.mean, sdt, 2, bg);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.rstd, sdt, 2, bg);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.inp, &x, 3, bcs, &ctx->err);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.out, &o, 3, bcs, &ctx->err);
    a.weight = w;
    a.bias = b;
    a.groups = groups;
    a.silu = silu != 0;
    a.eps = eps;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, x.dtype, groupnorm_forward, &a);

    const struct ti_tensor *ins[3] = {&x, &w, &b};
    if (st == TI_OK && ti_tape_wants(ctx, 3, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_GROUPNORM, &o, &n);
        if (st == TI_OK) {
            n->args.groupnorm = a;
            n->args.groupnorm.out = ti_tensor_none();
            n->in_slot[0] = x.grad;
            n->in_slot[1] = present(&w) ? w.grad : -1;
            n->in_slot[2] = present(&b) ? b.grad : -1;
            struct gn_keep k = gn_keep_of(n->in_slot, a.silu);
            struct ti_groupnorm_args *na = &n->args.groupnorm;
            if (k.x) {
                TI_NODE_KEEP(st, ctx, n, &na->inp);
                TI_NODE_KEEP(st, ctx, n, &na->mean);
                TI_NODE_KEEP(st, ctx, n, &na->rstd);
            }
            if (k.w && present(&w)) TI_NODE_KEEP(st, ctx, n, &na->weight);
            if (k.b && present(&b)) TI_NODE_KEEP(st, ctx, n, &na->bias);
        }
    }
    ti_tensor_release(&a.mean);
    ti_tensor_release(&a.rstd);
    release3(&x, &w, &b);
    return ti_op_result(st, &o, out);
}

ti_status ti_groupnorm_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                     const struct ti_tensor *dout) {
    const struct ti_groupnorm_args *na = &node->args.groupnorm;
    struct gn_keep k = gn_keep_of(node->in_slot, na->silu);
    struct ti_groupnorm_args a;
    memset(&a, 0, sizeof a);
    a.groups = na->groups;
    a.silu = na->silu;
    a.eps = na->eps;
    /* only kept tensors may be read: the others may have been freed */
    a.inp = k.x ? na->inp : ti_tensor_none();
    a.mean = k.x ? na->mean : ti_tensor_none();
    a.rstd = k.x ? na->rstd : ti_tensor_none();
    a.weight = k.w ? na->weight : ti_tensor_none();
    a.bias = k.b ? na->bias : ti_tensor_none();
    int64_t S = 1; /* dout has the output's (= the input's) shape (B, C, ...) */
    for (int i = 2; i < dout->ndim; i++)
        S *= dout->shape[i];
    int64_t bcs[3] = {dout->shape[0], dout->shape[1], S};
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 3, bcs, &ctx->err));
    struct ti_tensor dinp;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &dinp));
    if (dinp.data) TI_TRY(ti_tensor_reshape_view(&a.dinp, &dinp, 3, bcs, &ctx->err));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.dweight));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[2], &a.dbias));
    if (!a.dinp.data && !a.dweight.data && !a.dbias.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, groupnorm_backward, &a);
    return st;
}

/* ---- LAYERNORM ------------------------------------------------------------------------------- */

/* Saved tensors the layernorm backward reads: x (inp, mean, rstd) for dinp and dweight, the
 * weight for dinp; dbias needs dout only. */
static int ln_keep_x(const int32_t *slot) {
    return slot[0] >= 0 || slot[1] >= 0;
}
static int ln_keep_w(const int32_t *slot) {
    return slot[0] >= 0;
}

ti_status ti_layernorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                       const struct ti_tensor *weight, const struct ti_tensor *bias, double eps) {
    static const char op[] = "layernorm";
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, op, "inp", inp));
    TI_TRY(check_ndim(ctx, op, inp, 1, "(..., D)"));
    int64_t D = inp->shape[inp->ndim - 1];
    int64_t M = D > 0 ? ti_tensor_numel(inp) / D : 0;
    if (D == 0) {
        char s[128];
        return ti_error(&ctx->err, TI_ERR_SHAPE, "layernorm: inp %s has an empty last dim",
                        ti_shape_str(inp->ndim, inp->shape, s, sizeof s));
    }
    if (!(eps >= 0))
        return ti_error(&ctx->err, TI_ERR_INVALID, "layernorm: eps %g must be >= 0", eps);

    struct ti_tensor x = ti_tensor_none(), w = ti_tensor_none(), b = ti_tensor_none();
    TI_TRY(param_contiguous(ctx, op, "weight", weight, inp->dtype, D, &w));
    ti_status st = param_contiguous(ctx, op, "bias", bias, inp->dtype, D, &b);
    if (st == TI_OK) st = ti_contiguous(ctx, &x, inp);
    if (st != TI_OK) {
        release3(&x, &w, &b);
        return st;
    }

    struct ti_layernorm_args a;
    memset(&a, 0, sizeof a);
    struct ti_tensor o = ti_tensor_none();
    int64_t md[2] = {M, D}, m1[1] = {M};
    enum ti_dtype sdt = ti_stat_dtype(x.dtype);
    st = ti_ctx_tensor(ctx, &o, x.dtype, x.ndim, x.shape);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.mean, sdt, 1, m1);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.rstd, sdt, 1, m1);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.inp, &x, 2, md, &ctx->err);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.out, &o, 2, md, &ctx->err);
    a.weight = w;
    a.bias = b;
    a.eps = eps;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, x.dtype, layernorm_forward, &a);

    const struct ti_tensor *ins[3] = {&x, &w, &b};
    if (st == TI_OK && ti_tape_wants(ctx, 3, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_LAYERNORM, &o, &n);
        if (st == TI_OK) {
            n->args.layernorm = a;
            n->args.layernorm.out = ti_tensor_none();
            n->args.layernorm.bias = ti_tensor_none(); /* never read by backward */
            n->in_slot[0] = x.grad;
            n->in_slot[1] = present(&w) ? w.grad : -1;
            n->in_slot[2] = present(&b) ? b.grad : -1;
            struct ti_layernorm_args *na = &n->args.layernorm;
            if (ln_keep_x(n->in_slot)) {
                TI_NODE_KEEP(st, ctx, n, &na->inp);
                TI_NODE_KEEP(st, ctx, n, &na->mean);
                TI_NODE_KEEP(st, ctx, n, &na->rstd);
            }
            if (ln_keep_w(n->in_slot) && present(&w)) TI_NODE_KEEP(st, ctx, n, &na->weight);
        }
    }
    ti_tensor_release(&a.mean);
    ti_tensor_release(&a.rstd);
    release3(&x, &w, &b);
    return ti_op_result(st, &o, out);
}

ti_status ti_layernorm_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                     const struct ti_tensor *dout) {
    const struct ti_layernorm_args *na = &node->args.layernorm;
    int kx = ln_keep_x(node->in_slot), kw = ln_keep_w(node->in_slot);
    struct ti_layernorm_args a;
    memset(&a, 0, sizeof a);
    a.eps = na->eps;
    a.inp = kx ? na->inp : ti_tensor_none();
    a.mean = kx ? na->mean : ti_tensor_none();
    a.rstd = kx ? na->rstd : ti_tensor_none();
    a.weight = kw ? na->weight : ti_tensor_none();
    int64_t D = dout->shape[dout->ndim - 1];
    int64_t md[2] = {ti_tensor_numel(dout) / D, D};
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 2, md, &ctx->err));
    struct ti_tensor dinp;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &dinp));
    if (dinp.data) TI_TRY(ti_tensor_reshape_view(&a.dinp, &dinp, 2, md, &ctx->err));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.dweight));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[2], &a.dbias));
    if (!a.dinp.data && !a.dweight.data && !a.dbias.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, layernorm_backward, &a);
    return st;
}

/* ---- GEGLU ----------------------------------------------------------------------------------- */

ti_status ti_geglu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp) {
    static const char op[] = "geglu";
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, op, "inp", inp));
    TI_TRY(check_ndim(ctx, op, inp, 1, "(..., 2F)"));
    int64_t F2 = inp->shape[inp->ndim - 1];
    if (F2 < 2 || F2 % 2 != 0) {
        char s[128];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "geglu: argument 'inp' has shape %s, expected (..., 2F) with an even, "
                        "non-zero last dim",
                        ti_shape_str(inp->ndim, inp->shape, s, sizeof s));
    }
    int64_t F = F2 / 2, M = ti_tensor_numel(inp) / F2;
    struct ti_tensor x;
    TI_TRY(ti_contiguous(ctx, &x, inp));
    struct ti_geglu_args a;
    memset(&a, 0, sizeof a);
    struct ti_tensor o = ti_tensor_none();
    int64_t oshape[TI_MAX_DIMS], m2f[2] = {M, F2}, mf[2] = {M, F};
    for (int i = 0; i < x.ndim; i++)
        oshape[i] = x.shape[i];
    oshape[x.ndim - 1] = F;
    ti_status st = ti_ctx_tensor(ctx, &o, x.dtype, x.ndim, oshape);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.inp, &x, 2, m2f, &ctx->err);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.out, &o, 2, mf, &ctx->err);
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, x.dtype, geglu_forward, &a);
    const struct ti_tensor *ins[1] = {&x};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_GEGLU, &o, &n);
        if (st == TI_OK) {
            n->args.geglu.inp = a.inp;
            n->in_slot[0] = x.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.geglu.inp);
        }
    }
    ti_tensor_release(&x);
    return ti_op_result(st, &o, out);
}

ti_status ti_geglu_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                 const struct ti_tensor *dout) {
    struct ti_geglu_args a;
    memset(&a, 0, sizeof a);
    a.inp = node->args.geglu.inp; /* (M, 2F) */
    struct ti_tensor dinp;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &dinp));
    if (!dinp.data) return TI_OK;
    int64_t mf[2] = {a.inp.shape[0], a.inp.shape[1] / 2};
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 2, mf, &ctx->err));
    TI_TRY(ti_tensor_reshape_view(&a.dinp, &dinp, 2, a.inp.shape, &ctx->err));
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, geglu_backward, &a);
    return st;
}

/* ---- SOFTMAX --------------------------------------------------------------------------------- */

ti_status ti_softmax(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     double scale) {
    static const char op[] = "softmax";
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, op, "inp", inp));
    TI_TRY(check_ndim(ctx, op, inp, 1, "(..., N)"));
    int64_t N = inp->shape[inp->ndim - 1];
    int64_t M = N > 0 ? ti_tensor_numel(inp) / N : 0;
    struct ti_tensor x;
    TI_TRY(ti_contiguous(ctx, &x, inp));
    struct ti_softmax_args a;
    memset(&a, 0, sizeof a);
    struct ti_tensor o = ti_tensor_none();
    int64_t mn[2] = {M, N};
    ti_status st = ti_ctx_tensor(ctx, &o, x.dtype, x.ndim, x.shape);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.inp, &x, 2, mn, &ctx->err);
    if (st == TI_OK) st = ti_tensor_reshape_view(&a.out, &o, 2, mn, &ctx->err);
    a.scale = scale;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, x.dtype, softmax_forward, &a);
    const struct ti_tensor *ins[1] = {&x};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_SOFTMAX, &o, &n);
        if (st == TI_OK) {
            n->args.softmax.out = a.out; /* backward reads the output, not the input */
            n->args.softmax.scale = scale;
            n->in_slot[0] = x.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.softmax.out);
        }
    }
    ti_tensor_release(&x);
    return ti_op_result(st, &o, out);
}

ti_status ti_softmax_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                   const struct ti_tensor *dout) {
    struct ti_softmax_args a;
    memset(&a, 0, sizeof a);
    a.out = node->args.softmax.out; /* (M, N) */
    a.scale = node->args.softmax.scale;
    struct ti_tensor dinp;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &dinp));
    if (!dinp.data) return TI_OK;
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 2, a.out.shape, &ctx->err));
    TI_TRY(ti_tensor_reshape_view(&a.dinp, &dinp, 2, a.out.shape, &ctx->err));
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, softmax_backward, &a);
    return st;
}
