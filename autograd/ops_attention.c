/*
 * ops_attention.c - front end of ATTENTION (multi-head scaled dot-product attention, optional
 * causal mask) and its tape backward. The kernels are cpu/attention.c and cuda/attention.cu;
 * the contract is struct ti_attention_args in ops.h.
 *
 *   q (B, Tq, NH*D), k (B, Tk, NH*D), v (B, Tk, NH*Dv) -> out (B, Tq, NH*Dv)
 *   head n: out_n = softmax(scale * q_n k_n^T [+ causal mask]) v_n, features [n*D, (n+1)*D)
 *
 * Used by the SD UNet (self-attention over H*W tokens and cross-attention to the 77 context
 * tokens, 8 heads of 40/80/160, scale 1/sqrt(d)), the VAE mid block (one head of 512 over H*W
 * tokens), CLIP (causal, 12 heads of 64) and the LDM BERT (8 heads of 64).
 *
 * q, k, v may be strided views (e.g. column slices of a fused QKV projection) as long as their
 * innermost stride is 1 and rows do not overlap; anything else is copied to contiguous first
 * (the copy is recorded, so gradients still reach the original).
 * Saved for backward, only when some input needs a gradient: q, k, v, out and lse (the
 * log-sum-exp per query row, B x NH x Tq in the stat dtype); backward recomputes P from them.
 * Backward asks the tape only for the gradients that flow somewhere: in SD cross-attention with
 * a frozen latent path only k and v (from the trainable text embedding) get one, and the
 * kernels then skip every dQ product.
 */
#include <string.h> /* defines: memset */

#include "ops_internal.h"

/* A view the kernels accept as is: innermost stride 1 and rows at least a row apart (BLAS
 * leading dimension); batch stride free (0 = shared across the batch). */
static int attention_view_ok(const struct ti_tensor *t) {
    if (t->shape[2] > 1 && t->stride[2] != 1) return 0;
    if (t->shape[1] > 1 && t->stride[1] < t->shape[2]) return 0;
    return 1;
}

/* *out = t (one more reference) when the kernels can read it, else a contiguous copy. */
static ti_status attention_prepare(struct ti_ctx *ctx, struct ti_tensor *out,
                                   const struct ti_tensor *t) {
    if (attention_view_ok(t)) {
        *out = *t;
        ti_tensor_retain(out);
        return TI_OK;
    }
    return ti_copy(ctx, out, t, t->dtype);
}

ti_status ti_attention(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *q,
                       const struct ti_tensor *k, const struct ti_tensor *v, int heads,
                       double scale, int causal) {
    *out = ti_tensor_none();
    TI_TRY(ti_check_float(ctx, "attention", "q", q));
    TI_TRY(ti_check_dtype(ctx, "attention", "k", k, q->dtype));
    TI_TRY(ti_check_dtype(ctx, "attention", "v", v, q->dtype));
    const int64_t any3[3] = {-1, -1, -1};
    TI_TRY(ti_check_shape(ctx, "attention", "q", q, 3, any3));
    TI_TRY(ti_check_shape(ctx, "attention", "k", k, 3, any3));
    TI_TRY(ti_check_shape(ctx, "attention", "v", v, 3, any3));
    char qs[96], ks[96], vs[96];
    ti_shape_str(q->ndim, q->shape, qs, sizeof qs);
    ti_shape_str(k->ndim, k->shape, ks, sizeof ks);
    ti_shape_str(v->ndim, v->shape, vs, sizeof vs);
    if (heads < 1)
        return ti_error(&ctx->err, TI_ERR_INVALID, "attention: heads is %d, expected >= 1", heads);
    if (q->shape[2] < heads || q->shape[2] % heads != 0)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "attention: q %s: feature size %lld is not a positive multiple of "
                        "heads %d",
                        qs, (long long)q->shape[2], heads);
    if (v->shape[2] < heads || v->shape[2] % heads != 0)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "attention: v %s: feature size %lld is not a positive multiple of "
                        "heads %d",
                        vs, (long long)v->shape[2], heads);
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return ti_error(&ctx->err, TI_ERR_SHAPE, "attention: batch sizes differ: q %s, k %s, v %s",
                        qs, ks, vs);
    if (k->shape[2] != q->shape[2])
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "attention: q %s and k %s must have the same feature size", qs, ks);
    if (k->shape[1] != v->shape[1])
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "attention: k %s and v %s must have the same length", ks, vs);
    if (k->shape[1] < 1)
        return ti_error(&ctx->err, TI_ERR_SHAPE, "attention: k %s has no keys", ks);
    if (causal && q->shape[1] != k->shape[1])
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "attention: causal mask needs Tq == Tk, got q %s and k %s", qs, ks);

    struct ti_attention_args a;
    memset(&a, 0, sizeof a);
    a.heads = heads;
    a.causal = causal ? 1 : 0;
    a.scale = scale;
    ti_status st = attention_prepare(ctx, &a.q, q);
    if (st == TI_OK) st = attention_prepare(ctx, &a.k, k);
    if (st == TI_OK) st = attention_prepare(ctx, &a.v, v);
    const int64_t B = q->shape[0], Tq = q->shape[1], NH = heads;
    const int64_t oshape[3] = {B, Tq, v->shape[2]};
    const int64_t lshape[3] = {B, NH, Tq};
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.out, q->dtype, 3, oshape);
    if (st == TI_OK) st = ti_ctx_tensor(ctx, &a.lse, ti_stat_dtype(q->dtype), 3, lshape);
    if (st == TI_OK) TI_RUN_KERNEL(st, ctx, q->dtype, attention_forward, &a);
    const struct ti_tensor *ins[3] = {&a.q, &a.k, &a.v};
    if (st == TI_OK && ti_tape_wants(ctx, 3, ins)) {
        struct ti_node *n;
        st = ti_tape_record(ctx, TI_OP_ATTENTION, &a.out, &n);
        if (st == TI_OK) {
            n->args.attention = a;
            n->in_slot[0] = a.q.grad;
            n->in_slot[1] = a.k.grad;
            n->in_slot[2] = a.v.grad;
            /* backward recomputes P from q, k and lse, and D = rowsum(dout * out) from out */
            TI_NODE_KEEP(st, ctx, n, &n->args.attention.q);
            TI_NODE_KEEP(st, ctx, n, &n->args.attention.k);
            TI_NODE_KEEP(st, ctx, n, &n->args.attention.v);
            TI_NODE_KEEP(st, ctx, n, &n->args.attention.out);
            TI_NODE_KEEP(st, ctx, n, &n->args.attention.lse);
        }
    }
    ti_tensor_release(&a.q);
    ti_tensor_release(&a.k);
    ti_tensor_release(&a.v);
    ti_tensor_release(&a.lse);
    if (st != TI_OK) {
        ti_tensor_release(&a.out);
        return st;
    }
    *out = a.out;
    return TI_OK;
}

ti_status ti_attention_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                     const struct ti_tensor *dout) {
    struct ti_attention_args a = node->args.attention;
    a.dout = *dout;
    /* gradient buffers only for inputs that need one (NULL data: the kernel skips it) */
    TI_TRY(ti_tape_grad(ctx, node->in_slot[0], &a.dq));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[1], &a.dk));
    TI_TRY(ti_tape_grad(ctx, node->in_slot[2], &a.dv));
    if (!a.dq.data && !a.dk.data && !a.dv.data) return TI_OK;
    ti_status st;
    TI_RUN_KERNEL(st, ctx, a.out.dtype, attention_backward, &a);
    return st;
}
