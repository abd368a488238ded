/*
 * block_reduce.cuh - warp and block reductions for the row-wise CUDA kernels (norm.cu,
 * softmax.cu): a warp reduces with shuffles, the block combines the per-warp results through
 * 33 floats of shared memory. Deterministic (fixed order for a given block size).
 *
 * Contract of block_sum / block_max: every thread of the block calls it (no thread may have
 * returned early), blockDim.x is a multiple of 32 and at most 1024, blockDim.y == 1; the result
 * is returned to every thread. `sh` is a __shared__ float[33] that may be reused by the next
 * call right away (the leading __syncthreads protects it).
 *
 * Not here: the 2-D column reductions of the weight gradients (in norm.cu).
 */
#ifndef TI_CUDA_BLOCK_REDUCE_CUH
#define TI_CUDA_BLOCK_REDUCE_CUH

#define TI_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(TI_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(TI_FULL_MASK, v, o));
    return v;
}

static __device__ __forceinline__ float block_sum(float v, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* every thread has read sh[32] of a previous call */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < nw ? sh[lane] : 0.f;
        t = warp_sum(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    return sh[32];
}

static __device__ __forceinline__ float block_max(float v, float *sh) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < nw ? sh[lane] : -INFINITY;
        t = warp_max(t);
        if (lane == 0) sh[32] = t;
    }
    __syncthreads();
    return sh[32];
}

/* Threads per block for a row of n elements: about 4 elements per thread, a multiple of 32
 * in [32, cap] (cap <= 1024, a multiple of 32). */
static inline int ti_row_threads(int64_t n, int cap) {
    int64_t t = (n + 3) / 4;
    t = (t + 31) / 32 * 32;
    if (t < 32) t = 32;
    if (t > cap) t = cap;
    return (int)t;
}

#endif /* TI_CUDA_BLOCK_REDUCE_CUH */
