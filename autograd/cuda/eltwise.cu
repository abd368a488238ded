/*
 * eltwise.cu - CUDA kernels for ADD, MUL, SUM (forward; the front end composes their
 * gradients) and UNARY (forward and backward). f32 / f16 / bf16 storage, f32 arithmetic.
 */
#include "cuda_common.h"
#include "launchers.h"

/* ---- ADD / MUL ------------------------------------------------------------------------------- */
template <typename T>
__global__ void add_contig_kernel(T *out, const T *a, const T *b, float alpha, float beta,
                                  int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = alpha * ldf(a + i);
        if (b) v += beta * ldf(b + i);
        stf(out + i, v);
    }
}

template <typename T>
__global__ void add_strided_kernel(T *out, struct ti_cuda_shape os, const T *a,
                                   struct ti_cuda_shape as, const T *b, struct ti_cuda_shape bs,
                                   float alpha, float beta, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = alpha * ldf(a + ti_cuda_offset(i, os, as.stride));
        if (b) v += beta * ldf(b + ti_cuda_offset(i, os, bs.stride));
        stf(out + ti_cuda_offset(i, os, os.stride), v);
    }
}

template <typename T>
__global__ void mul_strided_kernel(T *out, struct ti_cuda_shape os, const T *a,
                                   struct ti_cuda_shape as, const T *b, struct ti_cuda_shape bs,
                                   float alpha, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = alpha * ldf(a + ti_cuda_offset(i, os, as.stride)) *
                  ldf(b + ti_cuda_offset(i, os, bs.stride));
        stf(out + ti_cuda_offset(i, os, os.stride), v);
    }
}

extern "C" ti_status cuda_add_forward(struct ti_kctx *k, const struct ti_add_args *a) {
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    int has_b = a->b.data != NULL;
    int contig = ti_tensor_is_contiguous(&a->out) && ti_tensor_is_contiguous(&a->a) &&
                 (!has_b || ti_tensor_is_contiguous(&a->b));
    struct ti_cuda_shape os = ti_cuda_shape_of(&a->out), as = ti_cuda_shape_of(&a->a),
                         bs = has_b ? ti_cuda_shape_of(&a->b) : as;
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        if (contig)
            add_contig_kernel<T><<<ti_cuda_blocks(n, 256), 256, 0, s>>>(
                (T *)a->out.data, (const T *)a->a.data, (const T *)a->b.data, (float)a->alpha,
                (float)a->beta, n);
        else
            add_strided_kernel<T><<<ti_cuda_blocks(n, 256), 256, 0, s>>>(
                (T *)a->out.data, os, (const T *)a->a.data, as, (const T *)a->b.data, bs,
                (float)a->alpha, (float)a->beta, n);
    });
    CUDA_CHECK_LAUNCH(k, "add");
    return TI_OK;
}

extern "C" ti_status cuda_mul_forward(struct ti_kctx *k, const struct ti_mul_args *a) {
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    struct ti_cuda_shape os = ti_cuda_shape_of(&a->out), as = ti_cuda_shape_of(&a->a),
                         bs = ti_cuda_shape_of(&a->b);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        mul_strided_kernel<T>
            <<<ti_cuda_blocks(n, 256), 256, 0, s>>>((T *)a->out.data, os, (const T *)a->a.data, as,
                                                    (const T *)a->b.data, bs, (float)a->alpha, n);
    });
    CUDA_CHECK_LAUNCH(k, "mul");
    return TI_OK;
}

/* ---- SUM: one warp per output element, reduced sub-space walked with a stride of 32 --------- */
template <typename T>
__global__ void sum_kernel(T *out, const T *inp, struct ti_cuda_shape ks, struct ti_cuda_shape kin,
                           struct ti_cuda_shape rs, int64_t nout, int64_t nred, float scale) {
    int lane = threadIdx.x & 31;
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t o = warp; o < nout; o += nwarps) {
        int64_t base = ti_cuda_offset(o, ks, kin.stride);
        float acc = 0.f;
        for (int64_t j = lane; j < nred; j += 32)
            acc += ldf(inp + base + ti_cuda_offset(j, rs, rs.stride));
        for (int off = 16; off > 0; off >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) stf(out + ti_cuda_offset(o, ks, ks.stride), scale * acc);
    }
}

extern "C" ti_status cuda_sum_forward(struct ti_kctx *k, const struct ti_sum_args *a) {
    struct ti_cuda_shape ks, kin, rs;
    ks.ndim = kin.ndim = rs.ndim = 0;
    int64_t nout = 1, nred = 1;
    for (int d = 0; d < TI_MAX_DIMS; d++) {
        ks.shape[d] = kin.shape[d] = rs.shape[d] = 1;
        ks.stride[d] = kin.stride[d] = rs.stride[d] = 0;
    }
    for (int d = 0; d < a->inp.ndim; d++) {
        if (a->out.shape[d] == 1 && a->inp.shape[d] != 1) {
            rs.shape[rs.ndim] = a->inp.shape[d];
            rs.stride[rs.ndim++] = a->inp.stride[d];
            nred *= a->inp.shape[d];
        } else {
            ks.shape[ks.ndim] = a->inp.shape[d];
            ks.stride[ks.ndim] = a->out.stride[d];
            kin.shape[kin.ndim] = a->inp.shape[d];
            kin.stride[kin.ndim] = a->inp.stride[d];
            ks.ndim++;
            kin.ndim++;
            nout *= a->inp.shape[d];
        }
    }
    if (nout == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        sum_kernel<T><<<ti_cuda_blocks(nout * 32, 256), 256, 0, s>>>(
            (T *)a->out.data, (const T *)a->inp.data, ks, kin, rs, nout, nred, (float)a->scale);
    });
    CUDA_CHECK_LAUNCH(k, "sum");
    return TI_OK;
}

/* ---- UNARY ----------------------------------------------------------------------------------- */
__device__ __forceinline__ float sigmoidf_(float x) {
    return 1.f / (1.f + expf(-x));
}

template <typename T>
__global__ void unary_forward_kernel(T *out, const T *inp, int kind, float p0, float p1,
                                     int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = ldf(inp + i), y;
        switch (kind) {
        case TI_UNARY_SILU: y = x * sigmoidf_(x); break;
        case TI_UNARY_GELU: y = 0.5f * x * (1.f + erff(x * 0.70710678118654752f)); break;
        case TI_UNARY_QUICK_GELU: y = x * sigmoidf_(1.702f * x); break;
        case TI_UNARY_EXP: y = expf(p0 * x); break;
        default: y = fminf(fmaxf(x, p0), p1); break;
        }
        stf(out + i, y);
    }
}

template <typename T>
__global__ void unary_backward_kernel(T *dinp, const T *dout, const T *inp, const T *out, int kind,
                                      float p0, float p1, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = ldf(inp + i), dy = ldf(dout + i), g;
        switch (kind) {
        case TI_UNARY_SILU: {
            float sg = sigmoidf_(x);
            g = sg * (1.f + x * (1.f - sg));
        } break;
        case TI_UNARY_GELU: {
            float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
            float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
            g = cdf + x * pdf;
        } break;
        case TI_UNARY_QUICK_GELU: {
            float sg = sigmoidf_(1.702f * x);
            g = sg + 1.702f * x * sg * (1.f - sg);
        } break;
        case TI_UNARY_EXP: g = p0 * ldf(out + i); break;
        default: g = (x >= p0 && x <= p1) ? 1.f : 0.f; break;
        }
        stf(dinp + i, ldf(dinp + i) + dy * g);
    }
}

extern "C" ti_status cuda_unary_forward(struct ti_kctx *k, const struct ti_unary_args *a) {
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        unary_forward_kernel<T><<<ti_cuda_blocks(n, 256), 256, 0, s>>>(
            (T *)a->out.data, (const T *)a->inp.data, a->kind, (float)a->p0, (float)a->p1, n);
    });
    CUDA_CHECK_LAUNCH(k, "unary_forward");
    return TI_OK;
}

extern "C" ti_status cuda_unary_backward(struct ti_kctx *k, const struct ti_unary_args *a) {
    if (!a->dinp.data) return TI_OK;
    int64_t n = ti_tensor_numel(&a->dinp);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->dinp.dtype, T, {
        unary_backward_kernel<T><<<ti_cuda_blocks(n, 256), 256, 0, s>>>(
            (T *)a->dinp.data, (const T *)a->dout.data, (const T *)a->inp.data,
            (const T *)a->out.data, a->kind, (float)a->p0, (float)a->p1, n);
    });
    CUDA_CHECK_LAUNCH(k, "unary_backward");
    return TI_OK;
}
