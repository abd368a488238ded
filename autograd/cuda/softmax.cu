/*
 * cuda/softmax.cu - CUDA kernels for SOFTMAX (softmax(scale * x) over the last dim) and GEGLU
 * (a * gelu_erf(g), [a | g] the halves of the last dim), forward and backward.
 * f32 / f16 / bf16 storage, f32 arithmetic. Layouts (ops.h), all contiguous:
 *   softmax inp/out/dout/dinp (M, N);  geglu inp/dinp (M, 2F), out/dout (M, F).
 * Kernels:
 *   softmax_forward_kernel / softmax_backward_kernel  one block per row (block reductions)
 *   geglu_forward_kernel / geglu_backward_kernel      grid-stride over the M*F outputs
 * Not here: the attention op's fused softmax (attention.cu).
 */
#include "cuda_common.h"
#include "launchers.h"
#include "block_reduce.cuh"

/* ---- SOFTMAX --------------------------------------------------------------------------------- */

/* blockIdx.x = row: y = exp(s x - max(s x)) / sum (the maximum keeps exponents <= 0) */
template <typename T>
__global__ void softmax_forward_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t N,
                                       float scale) {
    __shared__ float sh[33];
    const int64_t base = (int64_t)blockIdx.x * N;
    float mx = -INFINITY;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
        mx = fmaxf(mx, scale * ldf(x + base + n));
    mx = block_max(mx, sh);
    float s = 0.f;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
        s += expf(scale * ldf(x + base + n) - mx);
    const float inv = 1.f / block_sum(s, sh);
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
        stf(y + base + n, expf(scale * ldf(x + base + n) - mx) * inv);
}

/* blockIdx.x = row: dx += s * y * (dy - sum(dy * y)) */
template <typename T>
__global__ void softmax_backward_kernel(const T *__restrict__ y, const T *__restrict__ dy,
                                        T *__restrict__ dx, int64_t N, float scale) {
    __shared__ float sh[33];
    const int64_t base = (int64_t)blockIdx.x * N;
    float dot = 0.f;
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x)
        dot += ldf(dy + base + n) * ldf(y + base + n);
    dot = block_sum(dot, sh);
    for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
        const float yn = ldf(y + base + n);
        stf(dx + base + n, ldf(dx + base + n) + scale * yn * (ldf(dy + base + n) - dot));
    }
}

extern "C" ti_status cuda_softmax_forward(struct ti_kctx *k, const struct ti_softmax_args *a) {
    const int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    const int tr = ti_row_threads(N, 256);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        softmax_forward_kernel<T><<<(unsigned)M, tr, 0, st>>>((const T *)a->inp.data,
                                                              (T *)a->out.data, N, (float)a->scale);
        CUDA_CHECK_LAUNCH(k, "softmax_forward_kernel");
    });
    return TI_OK;
}

extern "C" ti_status cuda_softmax_backward(struct ti_kctx *k, const struct ti_softmax_args *a) {
    if (!a->dinp.data) return TI_OK;
    const int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    const int tr = ti_row_threads(N, 256);
    TI_CUDA_FLOAT_SWITCH(k, a->dinp.dtype, T, {
        softmax_backward_kernel<T><<<(unsigned)M, tr, 0, st>>>(
            (const T *)a->out.data, (const T *)a->dout.data, (T *)a->dinp.data, N, (float)a->scale);
        CUDA_CHECK_LAUNCH(k, "softmax_backward_kernel");
    });
    return TI_OK;
}

/* ---- GEGLU ----------------------------------------------------------------------------------- */
#define INV_SQRT2_F   0.70710678118654752f
#define INV_SQRT2PI_F 0.39894228040143268f

/* element i = m * F + f: a = x[m, f], g = x[m, F + f] */
template <typename T>
__global__ void geglu_forward_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t F,
                                     int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / F, f = i - m * F;
        const float av = ldf(x + m * 2 * F + f), g = ldf(x + m * 2 * F + F + f);
        stf(y + i, av * 0.5f * g * (1.f + erff(g * INV_SQRT2_F)));
    }
}

/* da += dy gelu(g); dg += dy a (Phi(g) + g phi(g)) */
template <typename T>
__global__ void geglu_backward_kernel(const T *__restrict__ x, const T *__restrict__ dy,
                                      T *__restrict__ dx, int64_t F, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / F, f = i - m * F;
        const int64_t ia = m * 2 * F + f, ig = ia + F;
        const float av = ldf(x + ia), g = ldf(x + ig), d = ldf(dy + i);
        const float cdf = 0.5f * (1.f + erff(g * INV_SQRT2_F));
        const float pdf = INV_SQRT2PI_F * expf(-0.5f * g * g);
        stf(dx + ia, ldf(dx + ia) + d * g * cdf);
        stf(dx + ig, ldf(dx + ig) + d * av * (cdf + g * pdf));
    }
}

extern "C" ti_status cuda_geglu_forward(struct ti_kctx *k, const struct ti_geglu_args *a) {
    const int64_t F = a->out.shape[1], total = a->out.shape[0] * F;
    if (total == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        geglu_forward_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, st>>>(
            (const T *)a->inp.data, (T *)a->out.data, F, total);
        CUDA_CHECK_LAUNCH(k, "geglu_forward_kernel");
    });
    return TI_OK;
}

extern "C" ti_status cuda_geglu_backward(struct ti_kctx *k, const struct ti_geglu_args *a) {
    if (!a->dinp.data) return TI_OK;
    const int64_t F = a->dout.shape[1], total = a->dout.shape[0] * F;
    if (total == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->dinp.dtype, T, {
        geglu_backward_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, st>>>(
            (const T *)a->inp.data, (const T *)a->dout.data, (T *)a->dinp.data, F, total);
        CUDA_CHECK_LAUNCH(k, "geglu_backward_kernel");
    });
    return TI_OK;
}
