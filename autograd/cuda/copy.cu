/*
 * copy.cu - COPY on CUDA: out = cast(inp) between any dtypes (f32, f16, bf16, f64, integers)
 * with arbitrary strides, and its backward dinp += cast(dout). Same-dtype contiguous copies
 * are a cudaMemcpyAsync.
 */
#include "cuda_common.h"
#include "launchers.h"

/* Element i of p (dtype dt) as T: double for copies that involve a float dtype, int64_t for
 * integer-to-integer copies, which stay exact (as cpu/copy.c). */
template <typename T> __device__ static T load_as(const void *p, int dt, int64_t i) {
    switch (dt) {
    case TI_DTYPE_F32: return (T)((const float *)p)[i];
    case TI_DTYPE_F16: return (T)__half2float(((const __half *)p)[i]);
    case TI_DTYPE_BF16: return (T)__bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case TI_DTYPE_F64: return (T)((const double *)p)[i];
    case TI_DTYPE_I64: return (T)((const int64_t *)p)[i];
    case TI_DTYPE_I32: return (T)((const int32_t *)p)[i];
    case TI_DTYPE_I16: return (T)((const int16_t *)p)[i];
    case TI_DTYPE_I8: return (T)((const int8_t *)p)[i];
    case TI_DTYPE_U8: return (T)((const uint8_t *)p)[i];
    case TI_DTYPE_BOOL: return (T)(((const uint8_t *)p)[i] != 0);
    default: return (T)0;
    }
}

template <typename T> __device__ static void store_as(void *p, int dt, int64_t i, T v) {
    switch (dt) {
    case TI_DTYPE_F32: ((float *)p)[i] = (float)v; break;
    case TI_DTYPE_F16: ((__half *)p)[i] = __float2half((float)v); break;
    case TI_DTYPE_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    case TI_DTYPE_F64: ((double *)p)[i] = (double)v; break;
    case TI_DTYPE_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case TI_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case TI_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case TI_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case TI_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case TI_DTYPE_BOOL: ((uint8_t *)p)[i] = v != (T)0; break;
    default: break;
    }
}

__device__ static int is_float_dt(int dt) {
    return dt == TI_DTYPE_F32 || dt == TI_DTYPE_F16 || dt == TI_DTYPE_BF16 || dt == TI_DTYPE_F64;
}

/* dst (op)= cast(src) at one element, computed in T */
template <typename T>
__device__ static void copy_one(void *dst, int ddt, int64_t od, const void *src, int sdt,
                                int64_t os, int accumulate) {
    T v = load_as<T>(src, sdt, os);
    if (accumulate) v += load_as<T>(dst, ddt, od);
    store_as<T>(dst, ddt, od, v);
}

/* dst (op)= cast(src) over dst's shape; both strided. */
__global__ void copy_forward_kernel(void *dst, int ddt, struct ti_cuda_shape ds, const void *src,
                                    int sdt, struct ti_cuda_shape ss, int64_t n, int accumulate) {
    const int ints = !is_float_dt(ddt) && !is_float_dt(sdt);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t od = ti_cuda_offset(i, ds, ds.stride);
        int64_t os = ti_cuda_offset(i, ds, ss.stride);
        if (ints)
            copy_one<int64_t>(dst, ddt, od, src, sdt, os, accumulate);
        else
            copy_one<double>(dst, ddt, od, src, sdt, os, accumulate);
    }
}

/* same-dtype f32 fast path for strided gathers (permute copies) */
__global__ void copy_f32_kernel(float *dst, struct ti_cuda_shape ds, const float *src,
                                struct ti_cuda_shape ss, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[ti_cuda_offset(i, ds, ds.stride)] = src[ti_cuda_offset(i, ds, ss.stride)];
}

static ti_status launch_copy(struct ti_kctx *k, const struct ti_tensor *dst,
                             const struct ti_tensor *src, int accumulate) {
    int64_t n = ti_tensor_numel(dst);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    if (!accumulate && dst->dtype == src->dtype && ti_tensor_is_contiguous(dst) &&
        ti_tensor_is_contiguous(src)) {
        CUDA_CHECK(k, cudaMemcpyAsync(dst->data, src->data, (size_t)n * ti_dtype_size(dst->dtype),
                                      cudaMemcpyDeviceToDevice, s));
        return TI_OK;
    }
    struct ti_cuda_shape ds = ti_cuda_shape_of(dst), ss = ti_cuda_shape_of(src);
    if (!accumulate && dst->dtype == TI_DTYPE_F32 && src->dtype == TI_DTYPE_F32) {
        copy_f32_kernel<<<ti_cuda_blocks(n, 256), 256, 0, s>>>((float *)dst->data, ds,
                                                               (const float *)src->data, ss, n);
    } else {
        copy_forward_kernel<<<ti_cuda_blocks(n, 256), 256, 0, s>>>(
            dst->data, dst->dtype, ds, src->data, src->dtype, ss, n, accumulate);
    }
    CUDA_CHECK_LAUNCH(k, "copy");
    return TI_OK;
}

extern "C" ti_status cuda_copy_forward(struct ti_kctx *k, const struct ti_copy_args *a) {
    return launch_copy(k, &a->out, &a->inp, 0);
}

extern "C" ti_status cuda_copy_backward(struct ti_kctx *k, const struct ti_copy_args *a) {
    if (!a->dinp.data) return TI_OK;
    return launch_copy(k, &a->dinp, &a->dout, 1);
}
