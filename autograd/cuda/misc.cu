/*
 * cuda/misc.cu - CUDA kernels of the misc op family: UPSAMPLE (nearest), EMBEDDING (gather from a
 * frozen table and trainable rows), TIMESTEP (sinusoidal embedding) and MSE, forward and
 * backward. f32 / f16 / bf16 storage, f32 arithmetic; contracts in ops.h, CPU twins in
 * cpu/misc.c. No float atomics anywhere: every gradient element and every reduction is owned
 * by one thread, warp or block and summed in a fixed order, so results are deterministic.
 * Not here: validation of shapes and dtypes (ops_misc.c).
 */
#include "cuda_common.h"
#include "launchers.h"

#include <math.h> /* defines: log (host) */

#define MISC_THREADS 256

/* ---- UPSAMPLE -------------------------------------------------------------------------------- */

/* one thread per output element: out (P, Ho, Wo)[p][y][x] = inp (P, H, W)[p][y/f][x/f], P = B*C */
template <typename T>
__global__ void upsample_forward_kernel(T *out, const T *inp, int64_t H, int64_t W, int64_t f,
                                        int64_t n) {
    const int64_t Ho = H * f, Wo = W * f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t xo = i % Wo, r = i / Wo;
        int64_t yo = r % Ho, p = r / Ho;
        out[i] = inp[(p * H + yo / f) * W + xo / f]; /* a plain copy: no conversion needed */
    }
}

/* one thread per input element: dinp[p][y][x] += sum of dout's f x f block, row by row */
template <typename T>
__global__ void upsample_backward_kernel(T *dinp, const T *dout, int64_t H, int64_t W, int64_t f,
                                         int64_t n) {
    const int64_t Wo = W * f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t x = i % W, r = i / W;
        int64_t y = r % H, p = r / H;
        const T *g = dout + (p * H * f + y * f) * Wo + x * f;
        float s = 0.f;
        for (int64_t u = 0; u < f; u++)
            for (int64_t v = 0; v < f; v++)
                s += ldf(g + u * Wo + v);
        stf(dinp + i, ldf(dinp + i) + s);
    }
}

extern "C" ti_status cuda_upsample_forward(struct ti_kctx *k, const struct ti_upsample_args *a) {
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        upsample_forward_kernel<T><<<ti_cuda_blocks(n, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->out.data, (const T *)a->inp.data, a->inp.shape[2], a->inp.shape[3],
            (int64_t)a->factor, n);
    });
    CUDA_CHECK_LAUNCH(k, "upsample_forward");
    return TI_OK;
}

extern "C" ti_status cuda_upsample_backward(struct ti_kctx *k, const struct ti_upsample_args *a) {
    if (!a->dinp.data) return TI_OK;
    int64_t n = ti_tensor_numel(&a->dinp);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->dinp.dtype, T, {
        upsample_backward_kernel<T><<<ti_cuda_blocks(n, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->dinp.data, (const T *)a->dout.data, a->dinp.shape[2], a->dinp.shape[3],
            (int64_t)a->factor, n);
    });
    CUDA_CHECK_LAUNCH(k, "upsample_backward");
    return TI_OK;
}

/* ---- EMBEDDING ----------------------------------------------------------------------------------
 * Index validation on the device: a thread that meets an index outside [-K, V) writes NaN to
 * its output element (never reads out of bounds, never clamps) and lowers *bad_pos to its
 * position with an integer atomicMin; the launcher reads *bad_pos back (one small copy and a
 * stream synchronisation per call) and reports the first bad position and its value. */
#define EMB_NO_BAD 0xffffffffffffffffull

/* one thread per output element (p, d) of out (n = B*T positions, D) */
template <typename T>
__global__ void embedding_forward_kernel(T *out, const T *table, const T *rows, const int32_t *idx,
                                         int64_t V, int64_t K, int64_t D, int64_t n,
                                         unsigned long long *bad_pos) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = i / D, d = i % D;
        int64_t v = idx[p];
        if (v >= 0 && v < V) {
            out[i] = table[v * D + d];
        } else if (v < 0 && v >= -K) {
            out[i] = rows[(-1 - v) * D + d];
        } else {
            stf(out + i, __int_as_float(0x7fc00000)); /* NaN */
            atomicMin(bad_pos, (unsigned long long)p);
        }
    }
}

/* one thread per element (r, d) of drows (K, D): sums dout[p, d] over the positions p with
 * idx[p] == -1-r in position order (deterministic, no atomics). Consecutive threads take
 * consecutive d, so dout reads are coalesced and idx[p] is a broadcast. */
template <typename T>
__global__ void embedding_backward_kernel(T *drows, const T *dout, const int32_t *idx, int64_t K,
                                          int64_t D, int64_t npos) {
    const int64_t n = K * D;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < n;
         j += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = j / D, d = j % D;
        const int32_t want = (int32_t)(-1 - r);
        float acc = 0.f;
        int hit = 0;
        for (int64_t p = 0; p < npos; p++)
            if (idx[p] == want) {
                acc += ldf(dout + p * D + d);
                hit = 1;
            }
        if (hit) stf(drows + j, ldf(drows + j) + acc);
    }
}

extern "C" ti_status cuda_embedding_forward(struct ti_kctx *k, const struct ti_embedding_args *a) {
    const int64_t npos = a->idx.shape[0] * a->idx.shape[1];
    const int64_t V = a->table.shape[0], D = a->table.shape[1];
    const int64_t K = a->rows.data ? a->rows.shape[0] : 0;
    const int64_t n = npos * D;
    if (n == 0) return TI_OK; /* nothing to gather, nothing read (the CPU still checks idx) */
    cudaStream_t s = TI_CUDA_STREAM(k);
    unsigned long long *bad = (unsigned long long *)ti_cuda_scratch(k, sizeof *bad);
    if (!bad) return TI_ERR_NOMEM;
    CUDA_CHECK(k, cudaMemsetAsync(bad, 0xff, sizeof *bad, s)); /* EMB_NO_BAD */
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        embedding_forward_kernel<T><<<ti_cuda_blocks(n, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->out.data, (const T *)a->table.data, (const T *)a->rows.data,
            (const int32_t *)a->idx.data, V, K, D, n, bad);
    });
    CUDA_CHECK_LAUNCH(k, "embedding_forward");
    unsigned long long pos = EMB_NO_BAD;
    CUDA_CHECK(k, cudaMemcpyAsync(&pos, bad, sizeof pos, cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(k, cudaStreamSynchronize(s));
    if (pos == EMB_NO_BAD) return TI_OK;
    int32_t v = 0;
    CUDA_CHECK(k, cudaMemcpyAsync(&v, (const int32_t *)a->idx.data + pos, sizeof v,
                                  cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(k, cudaStreamSynchronize(s));
    const int64_t T = a->idx.shape[1];
    if (K == 0 && v < 0)
        return ti_error(k->err, TI_ERR_INVALID,
                        "embedding: idx[%lld, %lld] = %d selects trainable row %lld, but no "
                        "trainable rows were given",
                        (long long)(pos / T), (long long)(pos % T), (int)v,
                        (long long)(-1 - (int64_t)v));
    return ti_error(k->err, TI_ERR_INVALID,
                    "embedding: idx[%lld, %lld] = %d is out of range: expected 0..%lld (table "
                    "rows) or -1..-%lld (trainable rows)",
                    (long long)(pos / T), (long long)(pos % T), (int)v, (long long)(V - 1),
                    (long long)K);
}

extern "C" ti_status cuda_embedding_backward(struct ti_kctx *k, const struct ti_embedding_args *a) {
    if (!a->drows.data) return TI_OK;
    const int64_t npos = a->idx.shape[0] * a->idx.shape[1];
    const int64_t K = a->drows.shape[0], D = a->drows.shape[1];
    if (K * D == 0 || npos == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->drows.dtype, T, {
        embedding_backward_kernel<T><<<ti_cuda_blocks(K * D, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->drows.data, (const T *)a->dout.data, (const int32_t *)a->idx.data, K, D, npos);
    });
    CUDA_CHECK_LAUNCH(k, "embedding_backward");
    return TI_OK;
}

/* ---- TIMESTEP -----------------------------------------------------------------------------------
 * freq_i = exp((-ln(max_period) * i) / half) in f32 in the reference's order (the float32
 * product, then the division, then exp; __fmul_rn / __fdiv_rn keep nvcc from fusing or
 * approximating), arg = t * freq_i (f32). */
__device__ __forceinline__ float timestep_freq(float neg_log_period, int64_t i, int64_t half) {
    float e = __fmul_rn(neg_log_period, (float)i);
    e = __fdiv_rn(e, (float)half);
    return expf(e);
}

/* one thread per output element of out (B, dim) */
template <typename T>
__global__ void timestep_forward_kernel(T *out, const T *t, float neg_log_period, int cos_first,
                                        int64_t dim, int64_t n) {
    const int64_t half = dim / 2;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / dim, j = i % dim;
        float v = 0.f; /* the padding column of an odd dim */
        if (j < 2 * half) {
            const int first = j < half;
            const int64_t fi = first ? j : j - half;
            const float arg = __fmul_rn(ldf(t + b), timestep_freq(neg_log_period, fi, half));
            v = (first == (cos_first != 0)) ? cosf(arg) : sinf(arg);
        }
        stf(out + i, v);
    }
}

/* one warp per batch element: dt[b] += sum_i f_i (g_sin[i] cos(arg_i) - g_cos[i] sin(arg_i));
 * lanes stride over i, then a fixed shuffle tree (deterministic). */
template <typename T>
__global__ void timestep_backward_kernel(T *dt, const T *dout, const T *t, float neg_log_period,
                                         int cos_first, int64_t dim, int64_t B) {
    const int64_t half = dim / 2;
    const int lane = threadIdx.x & 31;
    const int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t b = warp; b < B; b += nwarps) {
        const T *g = dout + b * dim;
        const T *gc = cos_first ? g : g + half;
        const T *gs = cos_first ? g + half : g;
        const float tb = ldf(t + b);
        float acc = 0.f;
        for (int64_t i = lane; i < half; i += 32) {
            const float f = timestep_freq(neg_log_period, i, half);
            const float arg = __fmul_rn(tb, f);
            float sn, cs;
            sincosf(arg, &sn, &cs);
            acc += f * (ldf(gs + i) * cs - ldf(gc + i) * sn);
        }
        for (int off = 16; off > 0; off >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) stf(dt + b, ldf(dt + b) + acc);
    }
}

extern "C" ti_status cuda_timestep_forward(struct ti_kctx *k, const struct ti_timestep_args *a) {
    const int64_t dim = a->out.shape[1];
    const int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    const float nl = (float)(-log(a->max_period)); /* ln in double, rounded once (as Python) */
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        timestep_forward_kernel<T><<<ti_cuda_blocks(n, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->out.data, (const T *)a->t.data, nl, a->cos_first, dim, n);
    });
    CUDA_CHECK_LAUNCH(k, "timestep_forward");
    return TI_OK;
}

extern "C" ti_status cuda_timestep_backward(struct ti_kctx *k, const struct ti_timestep_args *a) {
    if (!a->dt.data) return TI_OK;
    const int64_t B = a->dout.shape[0], dim = a->dout.shape[1];
    if (B == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    const float nl = (float)(-log(a->max_period));
    /* whole warps: the block size is a multiple of 32, so the shuffle mask covers every lane */
    TI_CUDA_FLOAT_SWITCH(k, a->dt.dtype, T, {
        timestep_backward_kernel<T><<<ti_cuda_blocks(B * 32, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->dt.data, (const T *)a->dout.data, (const T *)a->t.data, nl, a->cos_first, dim,
            B);
    });
    CUDA_CHECK_LAUNCH(k, "timestep_backward");
    return TI_OK;
}

/* ---- MSE ----------------------------------------------------------------------------------------
 * Two deterministic passes (no float atomics): mse_partial_kernel gives each of nb blocks a
 * grid-stride share of the elements and reduces it with a fixed shared-memory tree into
 * partial[block]; mse_final_kernel (one block) sums the nb partials in double in a fixed order.
 * nb depends only on n, so the summation order is the same on every run. */
#define MSE_MAX_BLOCKS 1024

template <typename T>
__global__ void mse_partial_kernel(float *partial, const T *a, const T *b, int64_t n) {
    __shared__ float sh[MISC_THREADS];
    float acc = 0.f;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float d = ldf(a + i) - ldf(b + i);
        acc += d * d;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = MISC_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

template <typename T>
__global__ void mse_final_kernel(T *out, const float *partial, int nb, double scale) {
    __shared__ double sh[MISC_THREADS];
    double acc = 0;
    for (int j = threadIdx.x; j < nb; j += MISC_THREADS)
        acc += (double)partial[j];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = MISC_THREADS / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) stf(out, (float)(scale * sh[0]));
}

/* da += 2 scale dout (a - b); db -= the same; dout (the scalar seed) is read on the device */
template <typename T>
__global__ void mse_backward_kernel(T *da, T *db, const T *a, const T *b, const T *dout,
                                    float two_scale, int64_t n) {
    const float g = two_scale * ldf(dout);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float d = g * (ldf(a + i) - ldf(b + i));
        if (da) stf(da + i, ldf(da + i) + d);
        if (db) stf(db + i, ldf(db + i) - d);
    }
}

extern "C" ti_status cuda_mse_forward(struct ti_kctx *k, const struct ti_mse_args *a) {
    const int64_t n = ti_tensor_numel(&a->a);
    cudaStream_t s = TI_CUDA_STREAM(k);
    int64_t nb64 = CEIL_DIV(n, (int64_t)MISC_THREADS);
    const int nb = (int)(nb64 < 1 ? 1 : (nb64 > MSE_MAX_BLOCKS ? MSE_MAX_BLOCKS : nb64));
    float *partial = (float *)ti_cuda_scratch(k, (size_t)nb * sizeof(float));
    if (!partial) return TI_ERR_NOMEM;
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        mse_partial_kernel<T>
            <<<nb, MISC_THREADS, 0, s>>>(partial, (const T *)a->a.data, (const T *)a->b.data, n);
    });
    CUDA_CHECK_LAUNCH(k, "mse_forward (partial sums)");
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        mse_final_kernel<T><<<1, MISC_THREADS, 0, s>>>((T *)a->out.data, partial, nb, a->scale);
    });
    CUDA_CHECK_LAUNCH(k, "mse_forward (final sum)");
    return TI_OK;
}

extern "C" ti_status cuda_mse_backward(struct ti_kctx *k, const struct ti_mse_args *a) {
    if (!a->da.data && !a->db.data) return TI_OK;
    const int64_t n = ti_tensor_numel(&a->a);
    if (n == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, a->a.dtype, T, {
        mse_backward_kernel<T><<<ti_cuda_blocks(n, MISC_THREADS), MISC_THREADS, 0, s>>>(
            (T *)a->da.data, (T *)a->db.data, (const T *)a->a.data, (const T *)a->b.data,
            (const T *)a->dout.data, (float)(2.0 * a->scale), n);
    });
    CUDA_CHECK_LAUNCH(k, "mse_backward");
    return TI_OK;
}
