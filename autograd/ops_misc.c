/*
 * ops_misc.c - front ends of the misc op family, each with its tape backward:
 *   ti_upsample_nearest    (B, C, H, W) -> (B, C, fH, fW), nearest neighbour (UNet/VAE Upsample)
 *   ti_embedding           token-embedding gather from a frozen table plus trainable rows
 *                          (the textual-inversion placeholder vectors)
 *   ti_timestep_embedding  (B) -> (B, dim) sinusoidal timestep embedding (UNet time input)
 *   ti_mse_loss            scalar mean((a - b)^2) (the training objective)
 * All four backward rules call the op's backward kernel (ops.h has the kernel contracts).
 * Not here: the kernels (cpu/misc.c, cuda/misc.cu), the model code that strings them together.
 *
 * Backward derivations (g = dL/dout, the seed each tape backward receives):
 *   upsample:  out[y][x] = inp[y/f][x/f], so dL/dinp[i][j] = sum of g over the f x f block
 *              {(y, x) : y/f == i, x/f == j}.
 *   embedding: out[p] = rows[k] at each position p with idx[p] == -1-k, so
 *              dL/drows[k] = sum over those p of g[p] (in position order). The table is frozen by
 *              contract: it never gets a gradient (front end refuses a table with a slot).
 *   timestep:  out[b, i] = cos(t_b f_i), out[b, half+i] = sin(t_b f_i) (cos_first; else swapped),
 *              so dL/dt_b = sum_i f_i (gs[i] cos(t_b f_i) - gc[i] sin(t_b f_i)) with gc, gs the
 *              gradient's cos and sin halves of row b; an odd dim's zero column adds nothing.
 *   mse:       out = s sum (a-b)^2 with s = 1/numel, so dL/da = 2 s (a-b) g and dL/db = -dL/da.
 */
#include <math.h>   /* defines: isfinite */
#include <string.h> /* defines: memset */

#include "ops_internal.h"

/* Wildcard shapes for ti_check_shape. */
static const int64_t ANY4[4] = {-1, -1, -1, -1};

/* ---- UPSAMPLE -------------------------------------------------------------------------------- */

ti_status ti_upsample_nearest(struct ti_ctx *ctx, struct ti_tensor *out,
                              const struct ti_tensor *inp, int factor) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "upsample", "inp", inp));
    TI_TRY(ti_check_shape(ctx, "upsample", "inp", inp, 4, ANY4)); /* (B, C, H, W) */
    if (factor < 1)
        return ti_error(&ctx->err, TI_ERR_INVALID, "upsample: factor %d, expected >= 1", factor);
    struct ti_upsample_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor x;
    TI_TRY(ti_contiguous(ctx, &x, inp));
    int64_t shape[4] = {x.shape[0], x.shape[1], x.shape[2] * factor, x.shape[3] * factor};
    ti_status st = ti_ctx_tensor(ctx, &k.out, x.dtype, 4, shape); /* (B, C, fH, fW) */
    if (st != TI_OK) {
        ti_tensor_release(&x);
        return st;
    }
    k.inp = x;
    k.factor = factor;
    TI_RUN_KERNEL(st, ctx, x.dtype, upsample_forward, &k);
    const struct ti_tensor *ins[1] = {&x};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_UPSAMPLE, &k.out, &n);
        if (st == TI_OK) {
            /* backward reads only dout and the gradient buffer: nothing is kept */
            n->args.upsample.factor = factor;
            n->in_slot[0] = x.grad;
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

ti_status ti_upsample_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                    const struct ti_tensor *dout) {
    struct ti_upsample_args a;
    memset(&a, 0, sizeof a);
    a.factor = node->args.upsample.factor;
    a.dout = *dout;                                       /* (B, C, fH, fW) */
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dinp)); /* (B, C, H, W) */
    if (!a.dinp.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.dinp.dtype, upsample_backward, &a);
    return st;
}

/* ---- EMBEDDING ------------------------------------------------------------------------------- */

/* Index validation: the front end checks dtypes and shapes; the index values are checked by
 * the kernels (the CPU kernel before it writes anything; the CUDA kernel flags the first bad
 * position in device memory and the launcher reports it), because idx may live on the GPU. */
ti_status ti_embedding(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *table,
                       const struct ti_tensor *rows, const struct ti_tensor *idx) {
    *out = ti_tensor_none();
    char sh[128];
    TI_TRY(ti_check_float(ctx, "embedding", "table", table));
    TI_TRY(ti_check_shape(ctx, "embedding", "table", table, 2, ANY4)); /* (V, D) */
    if (table->grad >= 0)
        return ti_error(&ctx->err, TI_ERR_INVALID,
                        "embedding: argument 'table' %s has a gradient slot, but the table is "
                        "frozen by contract and never gets a gradient; pass the trainable vectors "
                        "as 'rows' (K, D) and address them with negative indices -1-k",
                        ti_shape_str(table->ndim, table->shape, sh, sizeof sh));
    const int64_t D = table->shape[1];
    const int has_rows = rows && rows->data;
    if (has_rows) {
        const int64_t rs[2] = {-1, D};
        TI_TRY(ti_check_dtype(ctx, "embedding", "rows", rows, table->dtype));
        TI_TRY(ti_check_shape(ctx, "embedding", "rows", rows, 2, rs)); /* (K, D) */
        if (rows->shape[0] < 1)
            return ti_error(&ctx->err, TI_ERR_SHAPE,
                            "embedding: argument 'rows' has shape %s, expected K >= 1 trainable "
                            "rows (pass NULL when there are none)",
                            ti_shape_str(rows->ndim, rows->shape, sh, sizeof sh));
    }
    TI_TRY(ti_check_dtype(ctx, "embedding", "idx", idx, TI_DTYPE_I32));
    TI_TRY(ti_check_shape(ctx, "embedding", "idx", idx, 2, ANY4)); /* (B, T) */
    if (!ti_tensor_is_contiguous(idx))
        return ti_error(&ctx->err, TI_ERR_SHAPE, "embedding: argument 'idx' %s is not contiguous",
                        ti_shape_str(idx->ndim, idx->shape, sh, sizeof sh));

    struct ti_embedding_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor tab, r = ti_tensor_none();
    TI_TRY(ti_contiguous(ctx, &tab, table));
    ti_status st = has_rows ? ti_contiguous(ctx, &r, rows) : TI_OK;
    const int64_t shape[3] = {idx->shape[0], idx->shape[1], D};
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &k.out, tab.dtype, 3, shape); /* (B, T, D) */
    if (st == TI_OK) {
        k.table = tab;
        k.rows = r;
        k.idx = *idx;
        TI_RUN_KERNEL(st, ctx, tab.dtype, embedding_forward, &k);
    }
    const struct ti_tensor *ins[1] = {&r};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_EMBEDDING, &k.out, &n);
        if (st == TI_OK) {
            /* backward needs only the indices (drows comes from the slot, dout from the tape) */
            n->args.embedding.idx = *idx;
            n->in_slot[0] = r.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.embedding.idx);
        }
    }
    ti_tensor_release(&tab);
    ti_tensor_release(&r);
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

ti_status ti_embedding_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                     const struct ti_tensor *dout) {
    struct ti_embedding_args a;
    memset(&a, 0, sizeof a);
    a.idx = node->args.embedding.idx;                      /* (B, T) i32 */
    a.dout = *dout;                                        /* (B, T, D) */
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.drows)); /* (K, D) */
    if (!a.drows.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.drows.dtype, embedding_backward, &a);
    return st;
}

/* ---- TIMESTEP -------------------------------------------------------------------------------- */

ti_status ti_timestep_embedding(struct ti_ctx *ctx, struct ti_tensor *out,
                                const struct ti_tensor *t, int dim, double max_period,
                                int cos_first) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "timestep", "t", t));
    TI_TRY(ti_check_shape(ctx, "timestep", "t", t, 1, ANY4)); /* (B) */
    if (dim < 1) return ti_error(&ctx->err, TI_ERR_INVALID, "timestep: dim %d, expected >= 1", dim);
    if (!(max_period > 0.0) || !isfinite(max_period))
        return ti_error(&ctx->err, TI_ERR_INVALID,
                        "timestep: max_period %g, expected a finite value > 0 (SD: 10000)",
                        max_period);
    struct ti_timestep_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor x;
    TI_TRY(ti_contiguous(ctx, &x, t));
    const int64_t shape[2] = {x.shape[0], dim};
    ti_status st = ti_ctx_tensor(ctx, &k.out, x.dtype, 2, shape); /* (B, dim) */
    if (st == TI_OK) {
        k.t = x;
        k.max_period = max_period;
        k.cos_first = cos_first != 0;
        TI_RUN_KERNEL(st, ctx, x.dtype, timestep_forward, &k);
    }
    const struct ti_tensor *ins[1] = {&x};
    if (st == TI_OK && ti_tape_wants(ctx, 1, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_TIMESTEP, &k.out, &n);
        if (st == TI_OK) {
            n->args.timestep.t = x;
            n->args.timestep.max_period = k.max_period;
            n->args.timestep.cos_first = k.cos_first;
            n->in_slot[0] = x.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.timestep.t);
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

ti_status ti_timestep_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                    const struct ti_tensor *dout) {
    struct ti_timestep_args a = node->args.timestep; /* t kept; out is absent */
    a.out = ti_tensor_none();
    a.dout = *dout;                                     /* (B, dim) */
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dt)); /* (B) */
    if (!a.dt.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.dt.dtype, timestep_backward, &a);
    return st;
}

/* ---- MSE ------------------------------------------------------------------------------------- */

ti_status ti_mse_loss(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                      const struct ti_tensor *b) {
    *out = ti_tensor_none();
    char x1[128], x2[128];
    TI_TRY(ti_check_float(ctx, "mse", "a", a));
    TI_TRY(ti_check_dtype(ctx, "mse", "b", b, a->dtype));
    if (!ti_tensor_same_shape(a, b))
        return ti_error(&ctx->err, TI_ERR_SHAPE, "mse: 'a' %s and 'b' %s differ in shape",
                        ti_shape_str(a->ndim, a->shape, x1, sizeof x1),
                        ti_shape_str(b->ndim, b->shape, x2, sizeof x2));
    int64_t numel = ti_tensor_numel(a);
    if (numel < 1)
        return ti_error(&ctx->err, TI_ERR_SHAPE, "mse: inputs %s are empty (mean undefined)",
                        ti_shape_str(a->ndim, a->shape, x1, sizeof x1));
    struct ti_mse_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor ca, cb = ti_tensor_none();
    TI_TRY(ti_contiguous(ctx, &ca, a));
    ti_status st = ti_contiguous(ctx, &cb, b);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &k.out, ca.dtype, 0, NULL); /* scalar, ndim 0 */
    if (st == TI_OK) {
        k.a = ca;
        k.b = cb;
        k.scale = 1.0 / (double)numel;
        TI_RUN_KERNEL(st, ctx, ca.dtype, mse_forward, &k);
    }
    const struct ti_tensor *ins[2] = {&ca, &cb};
    if (st == TI_OK && ti_tape_wants(ctx, 2, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_MSE, &k.out, &n);
        if (st == TI_OK) {
            /* both gradients need a - b: keep both inputs whichever needs a gradient */
            n->args.mse.a = ca;
            n->args.mse.b = cb;
            n->args.mse.scale = k.scale;
            n->in_slot[0] = ca.grad;
            n->in_slot[1] = cb.grad;
            TI_NODE_KEEP(st, ctx, n, &n->args.mse.a);
            TI_NODE_KEEP(st, ctx, n, &n->args.mse.b);
        }
    }
    ti_tensor_release(&ca);
    ti_tensor_release(&cb);
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

ti_status ti_mse_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                               const struct ti_tensor *dout) {
    struct ti_mse_args a = node->args.mse; /* a, b kept; out absent */
    a.out = ti_tensor_none();
    a.dout = *dout; /* scalar */
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.da));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.db));
    if (!a.da.data && !a.db.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.a.dtype, mse_backward, &a);
    return st;
}
