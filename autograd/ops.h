/*
 * ops.h - every op of ti: the argument structs that backends implement, and the front-end
 * functions that models call.
 *
 * Two layers:
 *  1. Front end, `ti_<op>(ctx, &out, inputs..., params)`: checks shapes and dtypes once,
 *     allocates `out` from ctx's activation arena (the caller owns one reference; drop it with
 *     ti_tensor_release), dispatches to the backend kernel and, when an input needs a
 *     gradient and ctx records a tape, records the op for ti_tape_backward (tape.h).
 *  2. Kernels, `be->k[dtype].<op>_forward(kctx, &args)` / `<op>_backward`: plain functions
 *     over a `struct ti_<op>_args` (below). Contract for every kernel:
 *       - all tensors live on the backend's device; float tensors share the op's dtype unless
 *         a field says otherwise ("stat" = f64 when the op dtype is f64, else f32; indices i32);
 *       - forward overwrites `out` (and the saved statistics it documents);
 *       - backward ADDS (+=) into each gradient whose data is non-NULL and skips the others
 *         (a NULL gradient means "not needed": frozen weights never get one, so no
 *         weight-gradient GEMM runs);
 *       - shapes were validated by the front end; the kernel may assume them;
 *       - workspace comes from kctx->scratch (reset by the front end after the call), never
 *         from malloc.
 *
 * Example (a ResBlock fragment):
 *   struct ti_tensor h, h2;
 *   TI_TRY(ti_groupnorm(ctx, &h, &x, &gn_w, &gn_b, 32, 1e-5, 1));   // GN + SiLU
 *   TI_TRY(ti_conv2d(ctx, &h2, &h, &conv_w, &conv_b, 1, pad1));     // (B, Cout, H, W)
 *   ti_tensor_release(&h);
 *
 * Not here: the tape (tape.h), contexts and allocation (context.h), backends (backend.h).
 */
#ifndef TI_OPS_H
#define TI_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_ctx; /* context.h */

/* Op ids from ops.def: TI_OP_COPY, TI_OP_ADD, ... */
enum ti_op {
#define TI_KOP(NAME, name, BWD) TI_OP_##NAME,
#define TI_FOP(NAME, name)      TI_OP_##NAME,
#include "ops.def"
#undef TI_KOP
#undef TI_FOP
    TI_OP_COUNT
};
const char *ti_op_name(enum ti_op op); /* "groupnorm" */

/* ===========================================================================================
 * Kernel argument structs (one per TI_KOP). Shapes in comments; "any strides" means the
 * kernel must honour arbitrary element strides (including 0 for broadcast) on that tensor.
 * =========================================================================================== */

/* COPY: out = cast(inp). Same shape; any strides on both; dtypes may differ (the kernel table
 * of out's dtype is used and must accept every float dtype as input, plus i32/i64 -> i32/i64).
 * backward: dinp += cast(dout) (dinp any strides, dtype of inp). */
struct ti_copy_args {
    struct ti_tensor out, inp;
    struct ti_tensor dout, dinp;
};

/* ADD: out = alpha*a + beta*b. a, b are views with out's exact shape (the front end turns
 * broadcasting into zero strides). Any strides on a, b and out; out may be the very same view as
 * a (in-place accumulate). b may be absent (data NULL): out = alpha*a.
 * No backward kernel: the front end reduces dout with SUM and accumulates with ADD. */
struct ti_add_args {
    struct ti_tensor out, a, b;
    double alpha, beta;
};

/* MUL: out = alpha * a * b, same view rules as ADD (no in-place). No backward kernel. */
struct ti_mul_args {
    struct ti_tensor out, a, b;
    double alpha;
};

/* SUM: out = scale * (sum of inp over every dim i where out.shape[i] == 1 < inp.shape[i]).
 * out has inp's ndim (keepdim layout) and is contiguous; inp any strides. Reductions accumulate
 * in f64 on the CPU and f32 or better on CUDA. No backward kernel (front end: ADD). */
struct ti_sum_args {
    struct ti_tensor out, inp;
    double scale;
};

/* LINEAR: out (M, N) = inp (M, K) . weight (N, K)^T + bias (N); bias optional.
 * All contiguous 2-D (the front end flattens leading dims).
 * backward: dinp (M, K) += dout . weight; dweight (N, K) += dout^T . inp; dbias (N) += sum_m dout.
 */
struct ti_linear_args {
    struct ti_tensor out, inp, weight, bias;
    struct ti_tensor dout, dinp, dweight, dbias;
};

/* MATMUL: out (Bt, M, N) = alpha * a (Bt, M, K) . b (Bt, K, N) + beta * out.
 * a and b are 3-D views whose innermost or second-innermost stride is 1 (a transposed operand is
 * a permuted view); their batch stride may be 0 (shared across the batch). out contiguous.
 * backward: da += alpha * dout . b^T; db += alpha * a^T . dout (da/db follow the same view rules;
 * a batch stride of 0 in da/db means "sum over the batch"). */
struct ti_matmul_args {
    struct ti_tensor out, a, b;
    double alpha, beta;
    struct ti_tensor dout, da, db;
};

/* CONV2D: out (B, Cout, Ho, Wo) = cross-correlation of inp (B, Cin, H, W) with
 * weight (Cout, Cin, KH, KW) + bias (Cout, optional). stride[0] (rows), stride[1] (cols);
 * zero padding pad = {top, bottom, left, right}; no dilation, one group.
 * Ho = (H + top + bottom - KH) / stride[0] + 1, Wo likewise. All contiguous.
 * backward: dinp (backward-data), dweight, dbias. */
struct ti_conv2d_args {
    struct ti_tensor out, inp, weight, bias;
    int stride[2];
    int pad[4];
    struct ti_tensor dout, dinp, dweight, dbias;
};

/* GROUPNORM: inp/out (B, C, S) contiguous (S = product of spatial dims; the front end
 * reshapes). Per sample b and group g (C/groups channels x S): mean, biased variance,
 * y = (x - mean) * rstd * weight[c] + bias[c], rstd = 1/sqrt(var + eps); out = silu(y) when
 * silu != 0 (fused SiLU, the ResBlock pattern). weight/bias (C) optional (absent = 1 / 0).
 * mean, rstd (B, groups) stat dtype, written by forward. Statistics are computed in f32 (f64 for
 * f64) whatever the storage dtype.
 * backward: dinp, dweight, dbias (the SiLU part is recomputed from inp, mean and rstd). */
struct ti_groupnorm_args {
    struct ti_tensor out, inp, weight, bias, mean, rstd;
    int groups;
    int silu;
    double eps;
    struct ti_tensor dout, dinp, dweight, dbias;
};

/* LAYERNORM: inp/out (M, D) contiguous; normalised over D with biased variance;
 * y = (x - mean) * rstd * weight + bias; weight/bias (D) optional. mean, rstd (M) stat dtype.
 * backward: dinp, dweight, dbias; inp, mean and rstd may be absent when only dbias is wanted. */
struct ti_layernorm_args {
    struct ti_tensor out, inp, weight, bias, mean, rstd;
    double eps;
    struct ti_tensor dout, dinp, dweight, dbias;
};

/* UNARY: element-wise out = f(inp), same shape, both contiguous.
 * backward: dinp += dout * f'(inp) (uses inp, or out where cheaper: EXP uses out). */
enum ti_unary_kind {
    TI_UNARY_SILU = 0,   /* x * sigmoid(x) */
    TI_UNARY_GELU,       /* 0.5 x (1 + erf(x / sqrt 2)), exact erf form */
    TI_UNARY_QUICK_GELU, /* x * sigmoid(1.702 x) (CLIP) */
    TI_UNARY_EXP,        /* exp(p0 * x)   (VAE std = exp(0.5 logvar)) */
    TI_UNARY_CLAMP,      /* min(max(x, p0), p1); gradient 1 inside [p0, p1], 0 outside */
    TI_UNARY_COUNT
};
struct ti_unary_args {
    struct ti_tensor out, inp;
    int kind;
    double p0, p1;
    struct ti_tensor dout, dinp;
};

/* GEGLU: inp (M, 2F) = [a | g] split on the last dim, out (M, F) = a * gelu(g) (erf form).
 * Contiguous. backward: dinp[:, :F] += dout * gelu(g); dinp[:, F:] += dout * a * gelu'(g). */
struct ti_geglu_args {
    struct ti_tensor out, inp;
    struct ti_tensor dout, dinp;
};

/* SOFTMAX: out (M, N) = softmax(scale * inp) over N; contiguous.
 * backward: dinp += scale * out * (dout - sum_n(dout * out)). */
struct ti_softmax_args {
    struct ti_tensor out, inp;
    double scale;
    struct ti_tensor dout, dinp;
};

/* ATTENTION: multi-head scaled dot-product attention with the heads along the feature dim
 * (head n uses features [n*D, (n+1)*D)):
 *   q (B, Tq, NH*D), k (B, Tk, NH*D), v (B, Tk, NH*Dv)  -> out (B, Tq, NH*Dv)
 *   S = scale * q_n . k_n^T; causal: key j > query i is masked out (requires Tq == Tk);
 *   P = softmax(S) over keys; out_n = P . v_n.
 * lse (B, NH, Tq) stat dtype: the log-sum-exp of each (scaled, masked) row of S, written by
 * forward and read by backward (which recomputes P; flash-attention style).
 * q, k, v, dq, dk, dv: 3-D with innermost stride 1 and any other strides (slices of a fused QKV
 * projection work). out and dout contiguous.
 * backward: dq, dk, dv (+=). */
struct ti_attention_args {
    struct ti_tensor out, q, k, v, lse;
    int heads;
    int causal;
    double scale;
    struct ti_tensor dout, dq, dk, dv;
};

/* UPSAMPLE: nearest neighbour, out (B, C, f*H, f*W)[y][x] = inp[y/f][x/f]; contiguous.
 * backward: dinp[y][x] += sum of the f x f block of dout. */
struct ti_upsample_args {
    struct ti_tensor out, inp;
    int factor;
    struct ti_tensor dout, dinp;
};

/* EMBEDDING: out (B, T, D): out[b,t] = idx[b,t] >= 0 ? table[idx[b,t]] : rows[-1 - idx[b,t]].
 * idx (B, T) i32; table (V, D) frozen; rows (K, D) the trainable vectors (optional when no
 * index is negative). Contiguous. backward: drows[k] += sum of dout over the positions whose
 * index is -1-k, in position order (deterministic). The table never gets a gradient.
 * Index values are checked by the forward kernels (idx may live on the GPU): one outside [-K, V)
 * is TI_ERR_INVALID naming its position and value (CUDA: a device flag read back, one stream
 * synchronisation per call). */
struct ti_embedding_args {
    struct ti_tensor out, table, rows, idx;
    struct ti_tensor dout, drows;
};

/* TIMESTEP: out (B, dim) sinusoidal embedding of t (B) (same float dtype as out):
 *   half = dim / 2, freq_i = exp(-ln(max_period) * i / half) (computed as in the reference:
 *   (-ln(max_period) * i) / half, then exp, in the op's precision), arg_i = t * freq_i;
 *   cos_first: out = [cos(arg) | sin(arg)], else [sin(arg) | cos(arg)]; odd dim: last column 0.
 * backward: dt[b] += sum_i dout[b,i] * d out[b,i] / dt. */
struct ti_timestep_args {
    struct ti_tensor out, t;
    double max_period;
    int cos_first;
    struct ti_tensor dout, dt;
};

/* MSE: out (scalar, ndim 0) = scale * sum((a - b)^2); a, b contiguous, same shape.
 * The front end passes scale = 1/numel for the mean. backward: da += 2*scale*(a-b)*dout,
 * db -= 2*scale*(a-b)*dout (dout is the scalar). */
struct ti_mse_args {
    struct ti_tensor out, a, b;
    double scale;
    struct ti_tensor dout, da, db;
};

/* ===========================================================================================
 * Front end. Every function: output first, then inputs, then parameters. `out` receives a new
 * tensor (one reference, caller releases) on ctx's backend; on error *out is ti_tensor_none()
 * and ctx->err holds the message (naming the op and the offending shapes).
 * =========================================================================================== */

/* Copies into a new contiguous tensor of dtype dt (a cast when dt differs). */
ti_status ti_copy(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                  enum ti_dtype dt);
/* Returns inp itself (one more reference) when already contiguous, else a contiguous copy. */
ti_status ti_contiguous(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp);

/* Broadcasting element-wise ops (numpy rules). */
ti_status ti_add(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b);
ti_status ti_sub(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b);
ti_status ti_axpby(struct ti_ctx *ctx, struct ti_tensor *out, double alpha,
                   const struct ti_tensor *a, double beta, const struct ti_tensor *b);
ti_status ti_mul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                 const struct ti_tensor *b);
ti_status ti_scale(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                   double alpha);

/* Sum / mean over the listed dims (negative dims count from the end); keepdim keeps them as 1.
 * ndims == 0 reduces over every dim to a scalar (ndim 0, or all ones with keepdim). */
ti_status ti_sum(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int ndims,
                 const int *dims, int keepdim);
ti_status ti_mean(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int ndims,
                  const int *dims, int keepdim);

/* inp (..., K) . weight (N, K)^T + bias (N) -> (..., N). bias may be NULL. */
ti_status ti_linear(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                    const struct ti_tensor *weight, const struct ti_tensor *bias);
/* Batched matmul of (Bt, M, K) and (Bt, K, N) (2-D operands are treated as Bt = 1, and a
 * batch of 1 broadcasts); trans_a / trans_b use the operand transposed. */
ti_status ti_matmul(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                    const struct ti_tensor *b, int trans_a, int trans_b, double alpha);
/* pad = {top, bottom, left, right}; bias may be NULL. */
ti_status ti_conv2d(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                    const struct ti_tensor *weight, const struct ti_tensor *bias, int stride,
                    const int pad[4]);
/* inp (B, C, ...). weight/bias (C) may be NULL. silu != 0 fuses a SiLU after the affine. */
ti_status ti_groupnorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                       const struct ti_tensor *weight, const struct ti_tensor *bias, int groups,
                       double eps, int silu);
/* Over the last dim of inp (..., D). */
ti_status ti_layernorm(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                       const struct ti_tensor *weight, const struct ti_tensor *bias, double eps);
ti_status ti_unary(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                   enum ti_unary_kind kind, double p0, double p1);
ti_status ti_silu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp);
ti_status ti_gelu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp);
ti_status ti_quick_gelu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp);
/* inp (..., 2F) -> (..., F). */
ti_status ti_geglu(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp);
/* Softmax of scale*inp over the last dim. */
ti_status ti_softmax(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     double scale);
/* q (B, Tq, NH*D), k (B, Tk, NH*D), v (B, Tk, NH*Dv) -> (B, Tq, NH*Dv). */
ti_status ti_attention(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *q,
                       const struct ti_tensor *k, const struct ti_tensor *v, int heads,
                       double scale, int causal);
/* Concatenation of a and b along dim (all other sizes equal). */
ti_status ti_concat(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                    const struct ti_tensor *b, int dim);
/* View of inp[..., start:start+len, ...] along dim (no copy; gradients flow back). */
ti_status ti_slice(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp, int dim,
                   int64_t start, int64_t len);
/* Nearest-neighbour upsample of (B, C, H, W) by factor. */
ti_status ti_upsample_nearest(struct ti_ctx *ctx, struct ti_tensor *out,
                              const struct ti_tensor *inp, int factor);
/* table (V, D) frozen, rows (K, D) trainable or NULL, idx (B, T) i32 (negative = row -1-idx).
 * A table with a gradient slot is refused (TI_ERR_INVALID): it is frozen by contract. */
ti_status ti_embedding(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *table,
                       const struct ti_tensor *rows, const struct ti_tensor *idx);
/* t (B) float -> (B, dim). SD: max_period 10000, cos_first 1. */
ti_status ti_timestep_embedding(struct ti_ctx *ctx, struct ti_tensor *out,
                                const struct ti_tensor *t, int dim, double max_period,
                                int cos_first);
/* Scalar mean((a - b)^2). */
ti_status ti_mse_loss(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *a,
                      const struct ti_tensor *b);
/* Views that keep autodiff (reshape requires a contiguous input; use ti_contiguous first). */
ti_status ti_reshape(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     int ndim, const int64_t *shape);
ti_status ti_permute(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *inp,
                     const int *perm);

#ifdef __cplusplus
}
#endif
#endif /* TI_OPS_H */
