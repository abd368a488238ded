/*
 * cuda_common.h - shared by the CUDA kernels (.cu, compiled as C++ by nvcc; may use templates).
 *
 *   CUDA_CHECK(k, call)      a cudaError_t call; on failure records TI_ERR_CUDA with the call
 *                            text, the CUDA error name and file:line into k->err and returns it.
 *   CUDA_CHECK_LAUNCH(k, op) after every kernel launch: checks cudaGetLastError, naming the op.
 *   CUBLAS_CHECK / CUDNN_CHECK likewise for cuBLAS / cuDNN status codes.
 *   TI_CUDA_FLOAT_SWITCH(dt, T, body)  runs `body` with T = float, __half or __nv_bfloat16;
 *                            other dtypes record TI_ERR_DTYPE.
 *   ldf(p) / stf(p, v)       load a T as float / store a float as T (f32 compute everywhere).
 */
#ifndef TI_CUDA_COMMON_H
#define TI_CUDA_COMMON_H

#include <cuda_bf16.h>    /* defines: __nv_bfloat16, __bfloat162float, __float2bfloat16 */
#include <cuda_fp16.h>    /* defines: __half, __half2float, __float2half */
#include <cuda_runtime.h> /* defines: cudaError_t, cudaStream_t, kernel launch */
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"

#define CEIL_DIV(a, b) (((a) + (b)-1) / (b))

#define CUDA_CHECK(k, call)                                                                        \
    do {                                                                                           \
        cudaError_t ti_e_ = (call);                                                                \
        if (ti_e_ != cudaSuccess)                                                                  \
            return ti_error((k)->err, TI_ERR_CUDA, "%s failed: %s (%s)", #call,                    \
                            cudaGetErrorString(ti_e_), cudaGetErrorName(ti_e_));                   \
    } while (0)

#define CUDA_CHECK_LAUNCH(k, opname)                                                               \
    do {                                                                                           \
        cudaError_t ti_e_ = cudaGetLastError();                                                    \
        if (ti_e_ != cudaSuccess)                                                                  \
            return ti_error((k)->err, TI_ERR_CUDA, "launch of %s failed: %s (%s)", opname,         \
                            cudaGetErrorString(ti_e_), cudaGetErrorName(ti_e_));                   \
    } while (0)

#define CUBLAS_CHECK(k, call)                                                                      \
    do {                                                                                           \
        int ti_s_ = (int)(call);                                                                   \
        if (ti_s_ != 0)                                                                            \
            return ti_error((k)->err, TI_ERR_CUDA, "%s failed: cuBLAS status %d", #call, ti_s_);   \
    } while (0)

#define CUDNN_CHECK(k, call)                                                                       \
    do {                                                                                           \
        int ti_s_ = (int)(call);                                                                   \
        if (ti_s_ != 0)                                                                            \
            return ti_error((k)->err, TI_ERR_CUDA, "%s failed: cuDNN status %d", #call, ti_s_);    \
    } while (0)

#define TI_CUDA_STREAM(k) ((cudaStream_t)(k)->stream)

#define TI_CUDA_FLOAT_SWITCH(kk, dt, T, ...)                                                       \
    switch (dt) {                                                                                  \
    case TI_DTYPE_F32: {                                                                           \
        typedef float T;                                                                           \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case TI_DTYPE_F16: {                                                                           \
        typedef __half T;                                                                          \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    case TI_DTYPE_BF16: {                                                                          \
        typedef __nv_bfloat16 T;                                                                   \
        __VA_ARGS__;                                                                               \
    } break;                                                                                       \
    default:                                                                                       \
        return ti_error((kk)->err, TI_ERR_DTYPE, "cuda: dtype %s not supported",                   \
                        ti_dtype_name(dt));                                                        \
    }

__device__ __forceinline__ float ldf(const float *p) {
    return *p;
}
__device__ __forceinline__ float ldf(const __half *p) {
    return __half2float(*p);
}
__device__ __forceinline__ float ldf(const __nv_bfloat16 *p) {
    return __bfloat162float(*p);
}
__device__ __forceinline__ void stf(float *p, float v) {
    *p = v;
}
__device__ __forceinline__ void stf(__half *p, float v) {
    *p = __float2half(v);
}
__device__ __forceinline__ void stf(__nv_bfloat16 *p, float v) {
    *p = __float2bfloat16(v);
}

/* Shape and strides of up to TI_MAX_DIMS dims, passed to kernels by value. */
struct ti_cuda_shape {
    int ndim;
    int64_t shape[TI_MAX_DIMS];
    int64_t stride[TI_MAX_DIMS];
};

static inline struct ti_cuda_shape ti_cuda_shape_of(const struct ti_tensor *t) {
    struct ti_cuda_shape s;
    s.ndim = t->ndim;
    for (int i = 0; i < TI_MAX_DIMS; i++) {
        s.shape[i] = i < t->ndim ? t->shape[i] : 1;
        s.stride[i] = i < t->ndim ? t->stride[i] : 0;
    }
    return s;
}

/* Element offset of linear index `lin` (row-major over `shape`) with strides `stride`. */
__device__ __forceinline__ int64_t ti_cuda_offset(int64_t lin, const struct ti_cuda_shape &sh,
                                                  const int64_t *stride) {
    int64_t off = 0;
    for (int d = sh.ndim - 1; d >= 0; d--) {
        int64_t i = lin % sh.shape[d];
        lin /= sh.shape[d];
        off += i * stride[d];
    }
    return off;
}

/* Workspace from the kernel's scratch arena (device memory; rewound after the op). */
static inline void *ti_cuda_scratch(struct ti_kctx *k, size_t bytes) {
    void *p = NULL;
    if (ti_arena_alloc(k->scratch, bytes, &p, NULL, k->err) != TI_OK) return NULL;
    return p;
}

/* Grid size for n elements with `threads` per block, capped for grid-stride loops. */
static inline unsigned ti_cuda_blocks(int64_t n, int threads) {
    int64_t b = CEIL_DIV(n, (int64_t)threads);
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)(b < 1 ? 1 : b);
}

#endif /* TI_CUDA_COMMON_H */
