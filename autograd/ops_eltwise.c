/*
 * ops_eltwise.c - front ends of the element-wise, reduction and view ops: copy/cast, add,
 * mul, scale, sum/mean, unary activations, reshape, permute, slice, concat.
 * Their backward rules compose SUM and ADD kernels (ADD, MUL, SUM, views) or call the
 * op's backward kernel (COPY, UNARY).
 */
#include <string.h> /* defines: memset */

#include "ops_internal.h"

/* ---- small helpers --------------------------------------------------------------------------- */

static int dim_index(int d, int ndim) {
    return d < 0 ? d + ndim : d;
}

/* numpy broadcast of two shapes into out_shape; returns 0 when incompatible */
static int broadcast_shapes(const struct ti_tensor *a, const struct ti_tensor *b, int *ndim,
                            int64_t *shape) {
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) return 0;
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return 1;
}

static ti_status broadcast_error(struct ti_ctx *ctx, const char *op, const struct ti_tensor *a,
                                 const struct ti_tensor *b) {
    char x[128], y[128];
    return ti_error(&ctx->err, TI_ERR_SHAPE, "%s: shapes %s and %s do not broadcast", op,
                    ti_shape_str(a->ndim, a->shape, x, sizeof x),
                    ti_shape_str(b->ndim, b->shape, y, sizeof y));
}

/* Sum of g (contiguous, broadcast shape) down to the shape of `meta` (aligned right), as a new
 * tensor shaped like meta. */
static ti_status reduce_to(struct ti_ctx *ctx, struct ti_tensor *res, const struct ti_tensor *g,
                           const struct ti_tensor *meta) {
    int64_t keep[TI_MAX_DIMS];
    int off = g->ndim - meta->ndim;
    for (int i = 0; i < g->ndim; i++)
        keep[i] = i < off ? 1 : meta->shape[i - off];
    struct ti_sum_args a;
    memset(&a, 0, sizeof a);
    TI_TRY(ti_ctx_tensor(ctx, &a.out, g->dtype, g->ndim, keep));
    a.inp = *g;
    a.scale = 1.0;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, g->dtype, sum_forward, &a);
    if (st == TI_OK) st = ti_tensor_reshape_view(res, &a.out, meta->ndim, meta->shape, &ctx->err);
    if (st != TI_OK) {
        ti_tensor_release(&a.out);
        return st;
    }
    /* res shares a.out's block: hand the reference over */
    res->blk = a.out.blk;
    return TI_OK;
}

/* grad[slot] += alpha * (g summed down to the slot's shape) */
static ti_status accumulate_reduced(struct ti_ctx *ctx, int32_t slot, const struct ti_tensor *g,
                                    double alpha) {
    const struct ti_tensor *meta = ti_tape_slot_meta(ctx, slot);
    if (!meta) return TI_OK;
    if (ti_tensor_same_shape(meta, g)) return ti_tape_accumulate(ctx, slot, g, alpha);
    struct ti_tensor r;
    TI_TRY(reduce_to(ctx, &r, g, meta));
    ti_status st = ti_tape_accumulate(ctx, slot, &r, alpha);
    ti_tensor_release(&r);
    return st;
}

/* ---- COPY ------------------------------------------------------------------------------------ */

ti_status ti_copy(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                  enum ti_dtype dt) {
    *out = ti_tensor_none();
    if (!inp || !inp->data)
        return ti_error(&ctx->err, TI_ERR_INVALID, "copy: argument 'inp' is missing");
    if (inp->device != ctx->be->device)
        return ti_error(&ctx->err, TI_ERR_INVALID, "copy: input is on another device than %s",
                        ctx->be->name);
    struct ti_copy_args a;
    memset(&a, 0, sizeof a);
    TI_TRY(ti_ctx_tensor(ctx, &a.out, dt, inp->ndim, inp->shape));
    a.inp = *inp;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dt, copy_forward, &a);
    if (st != TI_OK) {
        ti_tensor_release(&a.out);
        return st;
    }
    const struct ti_tensor *ins[1] = {inp};
    if (ti_tape_wants(ctx, 1, ins) && ti_dtype_is_float(dt)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_COPY, &a.out, &n);
        if (st != TI_OK) {
            ti_tensor_release(&a.out);
            return st;
        }
        n->args.copy = a;
        n->in_slot[0] = inp->grad;
    }
    *out = a.out;
    return TI_OK;
}

ti_status ti_copy_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                const struct ti_tensor *dout) {
    struct ti_copy_args a = node->args.copy;
    a.dout = *dout;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dinp));
    if (!a.dinp.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.dinp.dtype, copy_backward, &a);
    return st;
}

ti_status ti_contiguous(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp) {
    if (inp && inp->data && ti_tensor_is_contiguous(inp)) {
        *out = *inp;
        ti_tensor_retain(out);
        return TI_OK;
    }
    return ti_copy(ctx, out, inp, inp ? inp->dtype : TI_DTYPE_F32);
}

/* ---- ADD ------------------------------------------------------------------------------------- */

ti_status ti_axpby(struct ti_ctx *ctx, struct ti_tensor *out, double alpha,
                   const struct ti_tensor *a, double beta, const struct ti_tensor *b) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "add", "a", a));
    TI_TRY(ti_check_dtype(ctx, "add", "b", b, a->dtype));
    int nd;
    int64_t shape[TI_MAX_DIMS];
    if (!broadcast_shapes(a, b, &nd, shape)) return broadcast_error(ctx, "add", a, b);
    struct ti_add_args k;
    memset(&k, 0, sizeof k);
    TI_TRY(ti_tensor_broadcast_view(&k.a, a, nd, shape, &ctx->err));
    TI_TRY(ti_tensor_broadcast_view(&k.b, b, nd, shape, &ctx->err));
    TI_TRY(ti_ctx_tensor(ctx, &k.out, a->dtype, nd, shape));
    k.alpha = alpha;
    k.beta = beta;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a->dtype, add_forward, &k);
    const struct ti_tensor *ins[2] = {a, b};
    if (st == TI_OK && ti_tape_wants(ctx, 2, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_ADD, &k.out, &n);
        if (st == TI_OK) {
            n->args.add.alpha = alpha;
            n->args.add.beta = beta;
            n->in_slot[0] = a->grad;
            n->in_slot[1] = b->grad;
        }
    }
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

ti_status ti_add(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b) {
    return ti_axpby(ctx, out, 1.0, a, 1.0, b);
}

ti_status ti_sub(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b) {
    return ti_axpby(ctx, out, 1.0, a, -1.0, b);
}

ti_status ti_add_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                               const struct ti_tensor *dout) {
    TI_TRY(accumulate_reduced(ctx, node->in_slot[0], dout, node->args.add.alpha));
    return accumulate_reduced(ctx, node->in_slot[1], dout, node->args.add.beta);
}

/* ---- MUL ------------------------------------------------------------------------------------- */

ti_status ti_mul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "mul", "a", a));
    TI_TRY(ti_check_dtype(ctx, "mul", "b", b, a->dtype));
    int nd;
    int64_t shape[TI_MAX_DIMS];
    if (!broadcast_shapes(a, b, &nd, shape)) return broadcast_error(ctx, "mul", a, b);
    struct ti_mul_args k;
    memset(&k, 0, sizeof k);
    TI_TRY(ti_tensor_broadcast_view(&k.a, a, nd, shape, &ctx->err));
    TI_TRY(ti_tensor_broadcast_view(&k.b, b, nd, shape, &ctx->err));
    TI_TRY(ti_ctx_tensor(ctx, &k.out, a->dtype, nd, shape));
    k.alpha = 1.0;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a->dtype, mul_forward, &k);
    const struct ti_tensor *ins[2] = {a, b};
    if (st == TI_OK && ti_tape_wants(ctx, 2, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_MUL, &k.out, &n);
        if (st == TI_OK) {
            n->args.mul = k;
            n->in_slot[0] = a->grad;
            n->in_slot[1] = b->grad;
            /* da needs b, db needs a (broadcast views of the originals) */
            if (a->grad >= 0) TI_NODE_KEEP(st, ctx, n, &n->args.mul.b);
            if (b->grad >= 0) TI_NODE_KEEP(st, ctx, n, &n->args.mul.a);
        }
    }
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

/* d(a*b)/da = dout * b (then reduced over a's broadcast dims) */
static ti_status mul_grad_one(struct ti_ctx *ctx, int32_t slot, const struct ti_tensor *dout,
                              const struct ti_tensor *other) {
    if (slot < 0) return TI_OK;
    struct ti_mul_args k;
    memset(&k, 0, sizeof k);
    TI_TRY(ti_ctx_tensor(ctx, &k.out, dout->dtype, dout->ndim, dout->shape));
    k.a = *dout;
    k.b = *other;
    k.alpha = 1.0;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, mul_forward, &k);
    if (st == TI_OK) st = accumulate_reduced(ctx, slot, &k.out, 1.0);
    ti_tensor_release(&k.out);
    return st;
}

ti_status ti_mul_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                               const struct ti_tensor *dout) {
    TI_TRY(mul_grad_one(ctx, node->in_slot[0], dout, &node->args.mul.b));
    return mul_grad_one(ctx, node->in_slot[1], dout, &node->args.mul.a);
}

/* ---- SCALE ----------------------------------------------------------------------------------- */

ti_status ti_scale(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                   double alpha) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "scale", "inp", inp));
    struct ti_add_args k;
    memset(&k, 0, sizeof k);
    TI_TRY(ti_ctx_tensor(ctx, &k.out, inp->dtype, inp->ndim, inp->shape));
    k.a = *inp;
    k.alpha = alpha;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, inp->dtype, add_forward, &k);
    const struct ti_tensor *ins[1] = {inp};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_SCALE, &k.out, &n);
        if (st == TI_OK) {
            n->args.scale.alpha = alpha;
            n->in_slot[0] = inp->grad;
        }
    }
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

ti_status ti_scale_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                 const struct ti_tensor *dout) {
    return ti_tape_accumulate(ctx, node->in_slot[0], dout, node->args.scale.alpha);
}

/* ---- SUM / MEAN ------------------------------------------------------------------------------ */

static ti_status reduce(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                        int ndims, const int *dims, int keepdim, int mean) {
    *out = ti_tensor_none();
    const char *op = mean ? "mean" : "sum";
    TI_TRY(ti_check_float(ctx, op, "inp", inp));
    int red[TI_MAX_DIMS] = {0};
    if (ndims == 0) {
        for (int i = 0; i < inp->ndim; i++)
            red[i] = 1;
    } else {
        for (int i = 0; i < ndims; i++) {
            int d = dim_index(dims[i], inp->ndim);
            if (d < 0 || d >= inp->ndim)
                return ti_error(&ctx->err, TI_ERR_SHAPE, "%s: dim %d out of range for %d dims", op,
                                dims[i], inp->ndim);
            red[d] = 1;
        }
    }
    struct ti_sum_args k;
    memset(&k, 0, sizeof k);
    int64_t kshape[TI_MAX_DIMS], oshape[TI_MAX_DIMS];
    int ond = 0;
    double n = 1;
    for (int i = 0; i < inp->ndim; i++) {
        kshape[i] = red[i] ? 1 : inp->shape[i];
        if (red[i]) n *= (double)inp->shape[i];
        if (!red[i] || keepdim) oshape[ond++] = kshape[i];
    }
    TI_TRY(ti_ctx_tensor(ctx, &k.out, inp->dtype, inp->ndim, kshape));
    k.inp = *inp;
    k.scale = mean ? (n > 0 ? 1.0 / n : 0.0) : 1.0;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, inp->dtype, sum_forward, &k);
    struct ti_tensor res = k.out;
    if (st == TI_OK && !keepdim) {
        st = ti_tensor_reshape_view(&res, &k.out, ond, oshape, &ctx->err);
        res.blk = k.out.blk;
    }
    const struct ti_tensor *ins[1] = {inp};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n2;
        st = ti_tape_record(ctx, TI_OP_SUM, &res, &n2);
        if (st == TI_OK) {
            n2->args.sum.out = k.out; /* metadata only: the keepdim shape */
            n2->args.sum.scale = k.scale;
            n2->in_slot[0] = inp->grad;
        }
    }
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = res;
    return TI_OK;
}

ti_status ti_sum(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int ndims,
                 const int *dims, int keepdim) {
    return reduce(ctx, out, inp, ndims, dims, keepdim, 0);
}

ti_status ti_mean(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int ndims,
                  const int *dims, int keepdim) {
    return reduce(ctx, out, inp, ndims, dims, keepdim, 1);
}

ti_status ti_sum_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                               const struct ti_tensor *dout) {
    const struct ti_tensor *meta = ti_tape_slot_meta(ctx, node->in_slot[0]);
    if (!meta) return TI_OK;
    const struct ti_tensor *kd = &node->args.sum.out;
    /* dout (reduced shape) -> keepdim layout -> broadcast to the input's shape */
    struct ti_tensor g = *dout, b;
    TI_TRY(ti_tensor_reshape_view(&g, dout, kd->ndim, kd->shape, &ctx->err));
    TI_TRY(ti_tensor_broadcast_view(&b, &g, meta->ndim, meta->shape, &ctx->err));
    return ti_tape_accumulate(ctx, node->in_slot[0], &b, node->args.sum.scale);
}

/* ---- UNARY ----------------------------------------------------------------------------------- */

ti_status ti_unary(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                   enum ti_unary_kind kind, double p0, double p1) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "unary", "inp", inp));
    if ((unsigned)kind >= TI_UNARY_COUNT)
        return ti_error(&ctx->err, TI_ERR_INVALID, "unary: unknown kind %d", (int)kind);
    struct ti_unary_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor x;
    TI_TRY(ti_contiguous(ctx, &x, inp));
    ti_status st = ti_ctx_tensor(ctx, &k.out, x.dtype, x.ndim, x.shape);
    if (st != TI_OK) {
        ti_tensor_release(&x);
        return st;
    }
    k.inp = x;
    k.kind = kind;
    k.p0 = p0;
    k.p1 = p1;
    TI_RUN_KERNEL(st, ctx, x.dtype, unary_forward, &k);
    const struct ti_tensor *ins[1] = {&x};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_UNARY, &k.out, &n);
        if (st == TI_OK) {
            n->args.unary = k;
            n->in_slot[0] = x.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.unary.inp);
            if (kind == TI_UNARY_EXP) TI_NODE_KEEP(st, ctx, n, &n->args.unary.out);
        }
    }
    ti_tensor_release(&x);
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

ti_status ti_unary_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                 const struct ti_tensor *dout) {
    struct ti_unary_args a = node->args.unary;
    if (a.kind != TI_UNARY_EXP) a.out = ti_tensor_none();
    a.dout = *dout;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dinp));
    if (!a.dinp.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.dinp.dtype, unary_backward, &a);
    return st;
}

ti_status ti_silu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp) {
    return ti_unary(ctx, out, inp, TI_UNARY_SILU, 0, 0);
}
ti_status ti_gelu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp) {
    return ti_unary(ctx, out, inp, TI_UNARY_GELU, 0, 0);
}
ti_status ti_quick_gelu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp) {
    return ti_unary(ctx, out, inp, TI_UNARY_QUICK_GELU, 0, 0);
}

/* ---- views: RESHAPE, PERMUTE, SLICE ---------------------------------------------------------- */

/* Records a view op whose output shares the input's block. */
static ti_status record_view(struct ti_ctx *ctx, enum ti_op op, struct ti_tensor *view,
                             const struct ti_tensor *inp, struct ti_node **node) {
    *node = NULL;
    const struct ti_tensor *ins[1] = {inp};
    if (!ti_tape_wants(ctx, 1, ins)) return TI_OK;
    TI_TRY(ti_tape_record(ctx, op, view, node));
    (*node)->in_slot[0] = inp->grad;
    return TI_OK;
}

ti_status ti_reshape(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     int ndim, const int64_t *shape) {
    *out = ti_tensor_none();
    struct ti_tensor v;
    TI_TRY(ti_tensor_reshape_view(&v, inp, ndim, shape, &ctx->err));
    struct ti_node *n;
    TI_TRY(record_view(ctx, TI_OP_RESHAPE, &v, inp, &n));
    ti_tensor_retain(&v);
    *out = v;
    return TI_OK;
}

ti_status ti_reshape_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                   const struct ti_tensor *dout) {
    const struct ti_tensor *meta = ti_tape_slot_meta(ctx, node->in_slot[0]);
    if (!meta) return TI_OK;
    struct ti_tensor g;
    TI_TRY(ti_tensor_reshape_view(&g, dout, meta->ndim, meta->shape, &ctx->err));
    return ti_tape_accumulate(ctx, node->in_slot[0], &g, 1.0);
}

ti_status ti_permute(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     const int *perm) {
    *out = ti_tensor_none();
    struct ti_tensor v;
    TI_TRY(ti_tensor_permute_view(&v, inp, perm, &ctx->err));
    struct ti_node *n;
    TI_TRY(record_view(ctx, TI_OP_PERMUTE, &v, inp, &n));
    if (n)
        for (int i = 0; i < inp->ndim; i++)
            n->args.permute.perm[i] = perm[i];
    ti_tensor_retain(&v);
    *out = v;
    return TI_OK;
}

ti_status ti_permute_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                   const struct ti_tensor *dout) {
    /* dout[i0..] is laid out in permuted order; view it back with the inverse permutation */
    int inv[TI_MAX_DIMS];
    for (int i = 0; i < dout->ndim; i++)
        inv[node->args.permute.perm[i]] = i;
    struct ti_tensor g;
    TI_TRY(ti_tensor_permute_view(&g, dout, inv, &ctx->err));
    return ti_tape_accumulate(ctx, node->in_slot[0], &g, 1.0);
}

ti_status ti_slice(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int dim,
                   int64_t start, int64_t len) {
    *out = ti_tensor_none();
    int d = dim_index(dim, inp->ndim);
    struct ti_tensor v;
    TI_TRY(ti_tensor_narrow_view(&v, inp, d, start, len, &ctx->err));
    struct ti_node *n;
    TI_TRY(record_view(ctx, TI_OP_SLICE, &v, inp, &n));
    if (n) {
        n->args.slice.dim = d;
        n->args.slice.start = start;
        n->args.slice.len = len;
    }
    ti_tensor_retain(&v);
    *out = v;
    return TI_OK;
}

ti_status ti_slice_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                 const struct ti_tensor *dout) {
    struct ti_tensor g, part;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &g));
    if (!g.data) return TI_OK;
    struct ti_slice_args *s = &node->args.slice;
    TI_TRY(ti_tensor_narrow_view(&part, &g, s->dim, s->start, s->len, &ctx->err));
    struct ti_add_args k;
    memset(&k, 0, sizeof k);
    k.out = part;
    k.a = part;
    k.b = *dout;
    k.alpha = 1.0;
    k.beta = 1.0;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, g.dtype, add_forward, &k);
    return st;
}

/* ---- CONCAT ---------------------------------------------------------------------------------- */

ti_status ti_concat(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                    const struct ti_tensor *b, int dim) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "concat", "a", a));
    TI_TRY(ti_check_dtype(ctx, "concat", "b", b, a->dtype));
    int d = dim_index(dim, a->ndim);
    int ok = a->ndim == b->ndim && d >= 0 && d < a->ndim;
    for (int i = 0; ok && i < a->ndim; i++)
        if (i != d && a->shape[i] != b->shape[i]) ok = 0;
    if (!ok) {
        char x[128], y[128];
        return ti_error(&ctx->err, TI_ERR_SHAPE, "concat: %s and %s differ outside dim %d",
                        ti_shape_str(a->ndim, a->shape, x, sizeof x),
                        ti_shape_str(b->ndim, b->shape, y, sizeof y), dim);
    }
    int64_t shape[TI_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++)
        shape[i] = a->shape[i];
    shape[d] = a->shape[d] + b->shape[d];
    struct ti_tensor o;
    TI_TRY(ti_ctx_tensor(ctx, &o, a->dtype, a->ndim, shape));
    struct ti_copy_args k;
    memset(&k, 0, sizeof k);
    ti_status st = ti_tensor_narrow_view(&k.out, &o, d, 0, a->shape[d], &ctx->err);
    k.inp = *a;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, a->dtype, copy_forward, &k);
    if (st == TI_OK) st = ti_tensor_narrow_view(&k.out, &o, d, a->shape[d], b->shape[d], &ctx->err);
    k.inp = *b;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, a->dtype, copy_forward, &k);
    const struct ti_tensor *ins[2] = {a, b};
    if (st == TI_OK && ti_tape_wants(ctx, 2, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_CONCAT, &o, &n);
        if (st == TI_OK) {
            n->args.concat.dim = d;
            n->args.concat.split = a->shape[d];
            n->in_slot[0] = a->grad;
            n->in_slot[1] = b->grad;
        }
    }
    return ti_op_result(st, &o, out);
}

ti_status ti_concat_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                  const struct ti_tensor *dout) {
    struct ti_concat_args *c = &node->args.concat;
    struct ti_tensor part;
    if (node->in_slot[0] >= 0) {
        TI_TRY(ti_tensor_narrow_view(&part, dout, c->dim, 0, c->split, &ctx->err));
        TI_TRY(ti_tape_accumulate(ctx, node->in_slot[0], &part, 1.0));
    }
    if (node->in_slot[1] >= 0) {
        TI_TRY(ti_tensor_narrow_view(&part, dout, c->dim, c->split, dout->shape[c->dim] - c->split,
                                     &ctx->err));
        TI_TRY(ti_tape_accumulate(ctx, node->in_slot[1], &part, 1.0));
    }
    return TI_OK;
}
