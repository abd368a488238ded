/*
 * ops_gemm.c - front ends and tape backward rules of the GEMM family: LINEAR (inp . weight^T +
 * bias), MATMUL (batched, transposes as strided views, batch broadcast) and CONV2D (NCHW
 * cross-correlation with stride and asymmetric zero padding).
 * Not here: the kernels (cpu/linear.c, cpu/conv2d.c, cuda/linear.cu, cuda/conv2d.cu).
 *
 * Each front end validates shapes (messages name the op, the argument and both shapes), makes
 * its operands GEMM-friendly (ti_contiguous, which records a COPY on the tape when it copies),
 * runs the forward kernel and records on the tape only what backward reads:
 *   linear/conv2d: the weight when the input needs a gradient (backward-data), the input when
 *                  the weight needs one (backward-filter); nothing for the bias;
 *   matmul:        b when a needs a gradient, a when b needs one.
 * A frozen weight has no gradient slot, so its backward never runs a weight-gradient GEMM.
 */
#include <string.h> /* defines: memset */

#include "ops_internal.h"

/* Forgets a field of a recorded node that backward must not read (keeps the shape only). */
static void meta_only(struct ti_tensor *t) {
    t->data = NULL;
    t->blk = NULL;
}

/* Contiguous versions of up to three optional operands; releases all of them on failure. */
static ti_status contiguous3(struct ti_ctx *ctx, struct ti_tensor out[3],
                             const struct ti_tensor *const in[3]) {
    for (int i = 0; i < 3; i++)
        out[i] = ti_tensor_none();
    for (int i = 0; i < 3; i++) {
        if (!in[i] || !in[i]->data) continue;
        ti_status st = ti_contiguous(ctx, &out[i], in[i]);
        if (st != TI_OK) {
            for (int j = 0; j < i; j++)
                ti_tensor_release(&out[j]);
            return st;
        }
    }
    return TI_OK;
}

static void release3(struct ti_tensor t[3]) {
    for (int i = 0; i < 3; i++)
        ti_tensor_release(&t[i]);
}

/* A 1-D bias of n elements with the op's dtype (NULL or absent: no bias). */
static ti_status check_bias(struct ti_ctx *ctx, const char *op, const struct ti_tensor *bias,
                            enum ti_dtype dt, int64_t n, const struct ti_tensor *weight) {
    if (!bias || !bias->data) return TI_OK;
    TI_TRY(ti_check_dtype(ctx, op, "bias", bias, dt));
    if (bias->ndim != 1 || bias->shape[0] != n) {
        char x[128], y[128];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "%s: argument 'bias' has shape %s, expected [%lld] for weight %s", op,
                        ti_shape_str(bias->ndim, bias->shape, x, sizeof x), (long long)n,
                        ti_shape_str(weight->ndim, weight->shape, y, sizeof y));
    }
    return TI_OK;
}

/* ==== LINEAR ================================================================================
 * out (..., N) = inp (..., K) . weight (N, K)^T + bias (N). The kernel sees inp as (M, K) with
 * M the product of the leading dims. */
ti_status ti_linear(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                    const struct ti_tensor *weight, const struct ti_tensor *bias) {
    *out = ti_tensor_none();
    char x[128], y[128];
    TI_TRY(ti_check_float(ctx, "linear", "inp", inp));
    TI_TRY(ti_check_dtype(ctx, "linear", "weight", weight, inp->dtype));
    if (inp->ndim < 1)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "linear: argument 'inp' is a scalar, expected (..., K)");
    int64_t K = inp->shape[inp->ndim - 1];
    if (weight->ndim != 2 || weight->shape[1] != K)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "linear: argument 'weight' has shape %s, expected [N, %lld] for inp %s",
                        ti_shape_str(weight->ndim, weight->shape, x, sizeof x), (long long)K,
                        ti_shape_str(inp->ndim, inp->shape, y, sizeof y));
    int64_t N = weight->shape[0];
    TI_TRY(check_bias(ctx, "linear", bias, inp->dtype, N, weight));

    struct ti_tensor c[3]; /* contiguous inp, weight, bias */
    const struct ti_tensor *const src[3] = {inp, weight, bias};
    TI_TRY(contiguous3(ctx, c, src));
    int64_t M = 1, oshape[TI_MAX_DIMS];
    for (int i = 0; i < inp->ndim - 1; i++) {
        M *= inp->shape[i];
        oshape[i] = inp->shape[i];
    }
    oshape[inp->ndim - 1] = N;

    struct ti_linear_args k;
    memset(&k, 0, sizeof k);
    struct ti_tensor o = ti_tensor_none();
    const int64_t in2[2] = {M, K}, out2[2] = {M, N};
    ti_status st = ti_ctx_tensor(ctx, &o, inp->dtype, inp->ndim, oshape);
    if (st == TI_OK) st = ti_tensor_reshape_view(&k.out, &o, 2, out2, &ctx->err);
    if (st == TI_OK) st = ti_tensor_reshape_view(&k.inp, &c[0], 2, in2, &ctx->err);
    k.weight = c[1];
    k.bias = c[2]; /* none when absent */
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, inp->dtype, linear_forward, &k);

    const struct ti_tensor *ins[3] = {&c[0], &c[1], &c[2]};
    if (st == TI_OK && ti_tape_wants(ctx, 3, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_LINEAR, &o, &n);
        if (st == TI_OK) {
            n->args.linear = k;
            n->args.linear.out = ti_tensor_none();
            n->args.linear.bias = ti_tensor_none();
            n->in_slot[0] = c[0].grad;
            n->in_slot[1] = c[1].grad;
            n->in_slot[2] = c[2].data ? c[2].grad : -1;
            /* dinp = dout . weight needs the weight; dweight = dout^T . inp needs inp */
            if (c[0].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &n->args.linear.weight);
            else
                meta_only(&n->args.linear.weight);
            if (c[1].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &n->args.linear.inp);
            else
                meta_only(&n->args.linear.inp);
        }
    }
    release3(c);
    return ti_op_result(st, &o, out);
}

/* y = x W^T + b, so with g = dL/dy (M, N):
 *   dL/dx = g . W          (M, N)(N, K)
 *   dL/dW = g^T . x        (N, M)(M, K)
 *   dL/db = sum_m g[m, :]  (the bias is broadcast over rows). */
ti_status ti_linear_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                  const struct ti_tensor *dout) {
    struct ti_linear_args a = node->args.linear;
    int64_t M = a.inp.shape[0], K = a.inp.shape[1], N = a.weight.shape[0];
    const int64_t in2[2] = {M, K}, out2[2] = {M, N};
    struct ti_tensor g;
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 2, out2, &ctx->err));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &g));
    if (g.data) TI_TRY(ti_tensor_reshape_view(&a.dinp, &g, 2, in2, &ctx->err));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.dweight));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[2], &a.dbias));
    if (!a.dinp.data && !a.dweight.data && !a.dbias.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, linear_backward, &a);
    return st;
}

/* ==== MATMUL ================================================================================ */

/* The (Bt, R, C) view of a 2-D or 3-D operand (2-D: Bt = 1, batch stride 0), transposed in its
 * last two dims when trans. */
static void mat_view(struct ti_tensor *v, const struct ti_tensor *t, int trans) {
    *v = *t;
    if (t->ndim == 2) {
        v->ndim = 3;
        v->shape[0] = 1;
        v->shape[1] = t->shape[0];
        v->shape[2] = t->shape[1];
        v->stride[0] = 0;
        v->stride[1] = t->stride[0];
        v->stride[2] = t->stride[1];
    }
    if (trans) {
        int64_t s = v->shape[1], st = v->stride[1];
        v->shape[1] = v->shape[2];
        v->stride[1] = v->stride[2];
        v->shape[2] = s;
        v->stride[2] = st;
    }
}

/* True when the matrix part of a 3-D view is a BLAS operand: row-major (unit column stride,
 * row stride >= columns) or column-major (unit row stride, column stride >= rows), where the
 * stride of a size-1 dim does not matter (the kernels apply the same rule). */
static int mat_gemm_ok(const struct ti_tensor *v) {
    int64_t r = v->shape[1], c = v->shape[2], sr = v->stride[1], sc = v->stride[2];
    if (c <= 1) sc = 1;
    if (r <= 1) sr = sc == 1 ? (c > 1 ? c : 1) : 1;
    return (sc == 1 && sr >= (c > 1 ? c : 1)) || (sr == 1 && sc >= (r > 1 ? r : 1));
}

/* Sets a view's batch to bt (a batch of 1 broadcasts with stride 0). */
static void mat_batch(struct ti_tensor *v, int64_t bt) {
    if (v->shape[0] == 1 && bt != 1) v->stride[0] = 0;
    v->shape[0] = bt;
}

ti_status ti_matmul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                    const struct ti_tensor *b, int trans_a, int trans_b, double alpha) {
    *out = ti_tensor_none();
    char x[128], y[128];
    TI_TRY(ti_check_float(ctx, "matmul", "a", a));
    TI_TRY(ti_check_dtype(ctx, "matmul", "b", b, a->dtype));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3)
        return ti_error(&ctx->err, TI_ERR_SHAPE, "matmul: operands %s and %s must have 2 or 3 dims",
                        ti_shape_str(a->ndim, a->shape, x, sizeof x),
                        ti_shape_str(b->ndim, b->shape, y, sizeof y));
    struct ti_matmul_args k;
    memset(&k, 0, sizeof k);
    mat_view(&k.a, a, trans_a);
    mat_view(&k.b, b, trans_b);
    int64_t M = k.a.shape[1], K = k.a.shape[2], N = k.b.shape[2];
    int64_t ba = k.a.shape[0], bb = k.b.shape[0], bt = ba > bb ? ba : bb;
    if (k.b.shape[1] != K || (ba != bb && ba != 1 && bb != 1))
        return ti_error(
            &ctx->err, TI_ERR_SHAPE,
            "matmul: a %s%s and b %s%s do not multiply (batch, M, K) . (batch, K, N)",
            ti_shape_str(a->ndim, a->shape, x, sizeof x), trans_a ? " (transposed)" : "",
            ti_shape_str(b->ndim, b->shape, y, sizeof y), trans_b ? " (transposed)" : "");

    /* operands whose matrices have no unit stride are copied (recorded, so gradients flow) */
    struct ti_tensor src[2];
    src[0] = *a;
    src[1] = *b;
    ti_tensor_retain(&src[0]);
    ti_tensor_retain(&src[1]);
    ti_status st = TI_OK;
    for (int i = 0; i < 2 && st == TI_OK; i++) {
        struct ti_tensor *v = i == 0 ? &k.a : &k.b;
        if (mat_gemm_ok(v)) continue;
        struct ti_tensor cpy;
        st = ti_contiguous(ctx, &cpy, &src[i]);
        if (st != TI_OK) break;
        ti_tensor_release(&src[i]);
        src[i] = cpy;
        mat_view(v, &src[i], i == 0 ? trans_a : trans_b);
    }
    mat_batch(&k.a, bt);
    mat_batch(&k.b, bt);

    struct ti_tensor o = ti_tensor_none();
    const int64_t out3[3] = {bt, M, N};
    int both2 = a->ndim == 2 && b->ndim == 2;
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &o, a->dtype, both2 ? 2 : 3, both2 ? out3 + 1 : out3);
    if (st == TI_OK) st = ti_tensor_reshape_view(&k.out, &o, 3, out3, &ctx->err);
    k.alpha = alpha;
    k.beta = 0.0;
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, a->dtype, matmul_forward, &k);

    const struct ti_tensor *ins[2] = {&src[0], &src[1]};
    if (st == TI_OK && ti_tape_wants(ctx, 2, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_MATMUL, &o, &n);
        if (st == TI_OK) {
            struct ti_matmul_args *r = &n->args.matmul;
            *r = k;
            r->out = ti_tensor_none();
            n->in_slot[0] = src[0].grad;
            n->in_slot[1] = src[1].grad;
            /* da/db are metadata templates: the same view of the (contiguous) gradient buffer
             * as a/b are of their operands; backward fills in the data pointer */
            for (int i = 0; i < 2; i++) {
                struct ti_tensor meta = src[i], *d = i == 0 ? &r->da : &r->db;
                if (src[i].grad < 0) continue;
                ti_tensor_set_contiguous(&meta);
                mat_view(d, &meta, i == 0 ? trans_a : trans_b);
                mat_batch(d, bt);
                meta_only(d);
            }
            /* da = alpha dout . b^T reads b; db = alpha a^T . dout reads a */
            if (src[0].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &r->b);
            else
                meta_only(&r->b);
            if (src[1].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &r->a);
            else
                meta_only(&r->a);
        }
    }
    ti_tensor_release(&src[0]);
    ti_tensor_release(&src[1]);
    return ti_op_result(st, &o, out);
}

/* Y_b = alpha A_b B_b, so with G_b = dL/dY_b:
 *   dL/dA_b = alpha G_b B_b^T,  dL/dB_b = alpha A_b^T G_b,
 * written through the same (transposed / broadcast) views as the operands: a transposed operand
 * gets the transposed gradient, a broadcast one (batch stride 0) the sum over the batch. */
ti_status ti_matmul_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                  const struct ti_tensor *dout) {
    struct ti_matmul_args a = node->args.matmul;
    const int64_t out3[3] = {a.a.shape[0], a.a.shape[1], a.b.shape[2]};
    TI_TRY(ti_tensor_reshape_view(&a.dout, dout, 3, out3, &ctx->err));
    struct ti_tensor g;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &g));
    if (g.data)
        a.da.data = g.data;
    else
        a.da = ti_tensor_none();
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &g));
    if (g.data)
        a.db.data = g.data;
    else
        a.db = ti_tensor_none();
    if (!a.da.data && !a.db.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, matmul_backward, &a);
    return st;
}

/* ==== CONV2D ================================================================================ */

ti_status ti_conv2d(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                    const struct ti_tensor *weight, const struct ti_tensor *bias, int stride,
                    const int pad[4]) {
    *out = ti_tensor_none();
    char x[128], y[128];
    TI_TRY(ti_check_float(ctx, "conv2d", "inp", inp));
    TI_TRY(ti_check_dtype(ctx, "conv2d", "weight", weight, inp->dtype));
    if (inp->ndim != 4)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "conv2d: argument 'inp' has shape %s, expected [B, Cin, H, W]",
                        ti_shape_str(inp->ndim, inp->shape, x, sizeof x));
    if (weight->ndim != 4 || weight->shape[1] != inp->shape[1] || weight->shape[2] < 1 ||
        weight->shape[3] < 1)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "conv2d: argument 'weight' has shape %s, expected [Cout, %lld, KH, KW] "
                        "for inp %s",
                        ti_shape_str(weight->ndim, weight->shape, x, sizeof x),
                        (long long)inp->shape[1], ti_shape_str(inp->ndim, inp->shape, y, sizeof y));
    TI_TRY(check_bias(ctx, "conv2d", bias, inp->dtype, weight->shape[0], weight));
    int p[4] = {0, 0, 0, 0};
    if (pad)
        for (int i = 0; i < 4; i++)
            p[i] = pad[i];
    if (stride < 1 || p[0] < 0 || p[1] < 0 || p[2] < 0 || p[3] < 0)
        return ti_error(&ctx->err, TI_ERR_INVALID,
                        "conv2d: stride %d and padding {%d, %d, %d, %d} (top, bottom, left, "
                        "right) must be >= 1 and >= 0",
                        stride, p[0], p[1], p[2], p[3]);
    int64_t hn = inp->shape[2] + p[0] + p[1] - weight->shape[2];
    int64_t wn = inp->shape[3] + p[2] + p[3] - weight->shape[3];
    if (hn < 0 || wn < 0)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "conv2d: weight %s does not fit inp %s padded by {%d, %d, %d, %d}: the "
                        "output would be empty",
                        ti_shape_str(weight->ndim, weight->shape, x, sizeof x),
                        ti_shape_str(inp->ndim, inp->shape, y, sizeof y), p[0], p[1], p[2], p[3]);
    const int64_t oshape[4] = {inp->shape[0], weight->shape[0], hn / stride + 1, wn / stride + 1};

    struct ti_tensor c[3]; /* contiguous inp, weight, bias */
    const struct ti_tensor *const src[3] = {inp, weight, bias};
    TI_TRY(contiguous3(ctx, c, src));
    struct ti_conv2d_args k;
    memset(&k, 0, sizeof k);
    ti_status st = ti_ctx_tensor(ctx, &k.out, inp->dtype, 4, oshape);
    k.inp = c[0];
    k.weight = c[1];
    k.bias = c[2];
    k.stride[0] = k.stride[1] = stride;
    for (int i = 0; i < 4; i++)
        k.pad[i] = p[i];
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, inp->dtype, conv2d_forward, &k);

    const struct ti_tensor *ins[3] = {&c[0], &c[1], &c[2]};
    if (st == TI_OK && ti_tape_wants(ctx, 3, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_CONV2D, &k.out, &n);
        if (st == TI_OK) {
            struct ti_conv2d_args *r = &n->args.conv2d;
            *r = k;
            r->out = ti_tensor_none();
            r->bias = ti_tensor_none();
            n->in_slot[0] = c[0].grad;
            n->in_slot[1] = c[1].grad;
            n->in_slot[2] = c[2].data ? c[2].grad : -1;
            /* backward-data reads the weight, backward-filter the input */
            if (c[0].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &r->weight);
            else
                meta_only(&r->weight);
            if (c[1].grad >= 0)
                TI_NODE_KEEP(st, ctx, n, &r->inp);
            else
                meta_only(&r->inp);
        }
    }
    release3(c);
    if (st != TI_OK) {
        ti_tensor_release(&k.out);
        return st;
    }
    *out = k.out;
    return TI_OK;
}

/* y[b,o,i,j] = bias[o] + sum_{c,u,v} w[o,c,u,v] x[b, c, i*s+u-top, j*s+v-left], so with
 * g = dL/dy:
 *   dL/dx[b,c,h,w] = sum over (o,u,v,i,j) with h = i*s+u-top, w = j*s+v-left of w[o,c,u,v]
 * g[b,o,i,j] (the transposed convolution; padded positions are dropped), dL/dw[o,c,u,v] =
 * sum_{b,i,j} g[b,o,i,j] x[b, c, i*s+u-top, j*s+v-left] (x = 0 in the padding), dL/dbias[o]    =
 * sum_{b,i,j} g[b,o,i,j]. */
ti_status ti_conv2d_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                  const struct ti_tensor *dout) {
    struct ti_conv2d_args a = node->args.conv2d;
    a.dout = *dout;
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dinp));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.dweight));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[2], &a.dbias));
    if (!a.dinp.data && !a.dweight.data && !a.dbias.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, dout->dtype, conv2d_backward, &a);
    return st;
}
