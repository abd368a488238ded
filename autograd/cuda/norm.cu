/*
 * cuda/norm.cu - CUDA kernels for GROUPNORM (with the fused SiLU) and LAYERNORM, forward and
 * backward. f32 / f16 / bf16 storage; statistics (mean, rstd: f32) and all arithmetic in f32.
 * Layouts (ops.h), all contiguous:
 *   groupnorm inp/out/dout/dinp (B, C, S), weight/bias (C), mean/rstd (B, G); a (b, g) set is
 *             the contiguous span of C/G channel rows of S;
 *   layernorm inp/out/dout/dinp (M, D), weight/bias (D), mean/rstd (M).
 * No atomics anywhere: the weight/bias gradients are reduced through per-row (groupnorm) or
 * per-row-block (layernorm) partials in scratch, summed in a fixed order by a second kernel, so
 * every result is deterministic. Backward formulas: see ops_norm.c.
 *
 * Kernels (launch shapes):
 *   groupnorm_stats_kernel        one block per (b, g) set: two-pass mean / biased variance
 *   groupnorm_forward_kernel      grid-stride over B*C*S: normalise, affine, optional SiLU
 *   groupnorm_bwd_rows_kernel     one block per (b, c) row: sums of g and g*xh over S
 *   groupnorm_bwd_coef_kernel     one thread per set: c1 = mean(g w), c2 = mean(g w xh)
 *   groupnorm_bwd_dx_kernel       grid-stride over B*C*S: dinp += rstd (g w - c1 - xh c2)
 *   groupnorm_bwd_params_kernel   one thread per channel: dweight, dbias summed over b
 *   layernorm_forward_kernel      one block per row
 *   layernorm_bwd_dx_kernel       one block per row
 *   layernorm_bwd_partial_kernel  blocks of 32 columns x LN_ROWS rows (32 x 8 threads)
 *   layernorm_bwd_params_kernel   one thread per column: sum of the row-block partials
 */
#include "cuda_common.h"
#include "launchers.h"
#include "block_reduce.cuh"

#define LN_ROWS 64 /* rows per layernorm weight-gradient partial (more when M > 65535 * 64) */

static __device__ __forceinline__ float sigmoid_f(float v) {
    return 1.f / (1.f + expf(-v));
}

/* ---- GROUPNORM forward ----------------------------------------------------------------------- */

/* blockIdx.x = set (b * G + g); the set is x[set * n, (set + 1) * n) */
template <typename T>
__global__ void groupnorm_stats_kernel(const T *__restrict__ x, float *__restrict__ mean,
                                       float *__restrict__ rstd, int64_t n, float eps) {
    __shared__ float sh[33];
    const T *xs = x + (int64_t)blockIdx.x * n;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        s += ldf(xs + i);
    const float mu = block_sum(s, sh) / (float)n;
    float q = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float d = ldf(xs + i) - mu;
        q += d * d;
    }
    const float var = block_sum(q, sh) / (float)n;
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = 1.f / sqrtf(var + eps);
    }
}

/* element i = (row * S + s), row = b * C + c, its set = row / Cg (C = G * Cg) */
template <typename T>
__global__ void groupnorm_forward_kernel(const T *__restrict__ x, T *__restrict__ y,
                                         const T *__restrict__ w, const T *__restrict__ bias,
                                         const float *__restrict__ mean,
                                         const float *__restrict__ rstd, int64_t C, int64_t S,
                                         int64_t Cg, int silu, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = i / S, c = row % C, set = row / Cg;
        const float sc = w ? rstd[set] * ldf(w + c) : rstd[set];
        const float sh = bias ? ldf(bias + c) : 0.f;
        float p = (ldf(x + i) - mean[set]) * sc + sh;
        if (silu) p = p * sigmoid_f(p);
        stf(y + i, p);
    }
}

extern "C" ti_status cuda_groupnorm_forward(struct ti_kctx *k, const struct ti_groupnorm_args *a) {
    const int64_t B = a->inp.shape[0], C = a->inp.shape[1], S = a->inp.shape[2];
    const int64_t G = a->groups, Cg = C / G, nsets = B * G, n = Cg * S, total = B * C * S;
    if (nsets == 0 || total == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    const int ts = ti_row_threads(n, 512);
    TI_CUDA_FLOAT_SWITCH(k, a->inp.dtype, T, {
        groupnorm_stats_kernel<T><<<(unsigned)nsets, ts, 0, st>>>(
            (const T *)a->inp.data, (float *)a->mean.data, (float *)a->rstd.data, n, (float)a->eps);
        CUDA_CHECK_LAUNCH(k, "groupnorm_stats_kernel");
        groupnorm_forward_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, st>>>(
            (const T *)a->inp.data, (T *)a->out.data, (const T *)a->weight.data,
            (const T *)a->bias.data, (const float *)a->mean.data, (const float *)a->rstd.data, C, S,
            Cg, a->silu, total);
        CUDA_CHECK_LAUNCH(k, "groupnorm_forward_kernel");
    });
    return TI_OK;
}

/* ---- GROUPNORM backward ---------------------------------------------------------------------- */

/* g = dL/d(pre-activation) and xh of element i of row (b, c), set `set`:
 * p = xh * w_c + b_c; with SiLU g = dy * s(p) (1 + p (1 - s(p))), else g = dy. */
template <typename T>
static __device__ __forceinline__ void gn_grad_at(const T *x, const T *dy, int64_t i, float mu,
                                                  float rs, float wc, float bc, int silu, float *g,
                                                  float *xh) {
    *xh = (ldf(x + i) - mu) * rs;
    float d = ldf(dy + i);
    if (silu) {
        float p = *xh * wc + bc, sp = sigmoid_f(p);
        d *= sp * (1.f + p * (1.f - sp));
    }
    *g = d;
}

/* blockIdx.x = row (b * C + c): sg[row] = sum_s g, sgx[row] = sum_s g * xh.
 * need_x == 0 (dbias only, no SiLU): x, mean, rstd may be NULL and only sg is computed. */
template <typename T>
__global__ void groupnorm_bwd_rows_kernel(const T *__restrict__ x, const T *__restrict__ dy,
                                          const T *__restrict__ w, const T *__restrict__ bias,
                                          const float *__restrict__ mean,
                                          const float *__restrict__ rstd, int64_t C, int64_t S,
                                          int64_t Cg, int silu, int need_x, float *__restrict__ sg,
                                          float *__restrict__ sgx) {
    __shared__ float sh[33];
    const int64_t row = blockIdx.x, c = row % C, set = row / Cg;
    const int64_t base = row * S;
    float s1 = 0.f, s2 = 0.f;
    if (need_x) {
        const float mu = mean[set], rs = rstd[set];
        const float wc = w ? ldf(w + c) : 1.f, bc = bias ? ldf(bias + c) : 0.f;
        for (int64_t s = threadIdx.x; s < S; s += blockDim.x) {
            float g, xh;
            gn_grad_at(x, dy, base + s, mu, rs, wc, bc, silu, &g, &xh);
            s1 += g;
            s2 += g * xh;
        }
    } else {
        for (int64_t s = threadIdx.x; s < S; s += blockDim.x)
            s1 += ldf(dy + base + s);
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
        sg[row] = s1;
        sgx[row] = s2;
    }
}

/* one thread per set: coef[2 set] = mean over the set of g w, coef[2 set + 1] = mean of g w xh */
template <typename T>
__global__ void groupnorm_bwd_coef_kernel(const T *__restrict__ w, const float *__restrict__ sg,
                                          const float *__restrict__ sgx, int64_t C, int64_t G,
                                          int64_t Cg, float inv_n, int64_t nsets,
                                          float *__restrict__ coef) {
    const int64_t set = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (set >= nsets) return;
    const int64_t b = set / G, c0 = (set % G) * Cg;
    float A = 0.f, Bx = 0.f;
    for (int64_t c = c0; c < c0 + Cg; c++) {
        const float wc = w ? ldf(w + c) : 1.f;
        A += wc * sg[b * C + c];
        Bx += wc * sgx[b * C + c];
    }
    coef[2 * set] = A * inv_n;
    coef[2 * set + 1] = Bx * inv_n;
}

template <typename T>
__global__ void
groupnorm_bwd_dx_kernel(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ w,
                        const T *__restrict__ bias, const float *__restrict__ mean,
                        const float *__restrict__ rstd, const float *__restrict__ coef, int64_t C,
                        int64_t S, int64_t Cg, int silu, int64_t total, T *__restrict__ dx) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t row = i / S, c = row % C, set = row / Cg;
        const float rs = rstd[set];
        const float wc = w ? ldf(w + c) : 1.f, bc = bias ? ldf(bias + c) : 0.f;
        float g, xh;
        gn_grad_at(x, dy, i, mean[set], rs, wc, bc, silu, &g, &xh);
        const float v = rs * (g * wc - coef[2 * set] - xh * coef[2 * set + 1]);
        stf(dx + i, ldf(dx + i) + v);
    }
}

/* one thread per channel c: dweight[c] += sum_b sgx[b, c], dbias[c] += sum_b sg[b, c] */
template <typename T>
__global__ void groupnorm_bwd_params_kernel(const float *__restrict__ sg,
                                            const float *__restrict__ sgx, int64_t B, int64_t C,
                                            T *__restrict__ dw, T *__restrict__ db) {
    const int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s1 = 0.f, s2 = 0.f;
    for (int64_t b = 0; b < B; b++) {
        s1 += sg[b * C + c];
        s2 += sgx[b * C + c];
    }
    if (db) stf(db + c, ldf(db + c) + s1);
    if (dw) stf(dw + c, ldf(dw + c) + s2);
}

extern "C" ti_status cuda_groupnorm_backward(struct ti_kctx *k, const struct ti_groupnorm_args *a) {
    const int has_dx = a->dinp.data != NULL, has_dw = a->dweight.data != NULL,
              has_db = a->dbias.data != NULL;
    if (!has_dx && !has_dw && !has_db) return TI_OK;
    const int64_t B = a->dout.shape[0], C = a->dout.shape[1], S = a->dout.shape[2];
    const int64_t G = a->groups, Cg = C / G, nsets = B * G, nrows = B * C, total = nrows * S;
    if (total == 0) return TI_OK;
    const int need_x = has_dx || has_dw || a->silu;
    cudaStream_t st = TI_CUDA_STREAM(k);
    float *sg = (float *)ti_cuda_scratch(k, (size_t)(2 * nrows + 2 * nsets) * sizeof(float));
    if (!sg) return TI_ERR_NOMEM;
    float *sgx = sg + nrows, *coef = sgx + nrows;
    const int tr = ti_row_threads(S, 256);
    TI_CUDA_FLOAT_SWITCH(k, a->dout.dtype, T, {
        const T *x = (const T *)a->inp.data, *dy = (const T *)a->dout.data;
        const T *w = (const T *)a->weight.data, *bias = (const T *)a->bias.data;
        const float *mean = (const float *)a->mean.data, *rstd = (const float *)a->rstd.data;
        groupnorm_bwd_rows_kernel<T><<<(unsigned)nrows, tr, 0, st>>>(
            x, dy, w, bias, mean, rstd, C, S, Cg, a->silu, need_x, sg, sgx);
        CUDA_CHECK_LAUNCH(k, "groupnorm_bwd_rows_kernel");
        if (has_dx) {
            groupnorm_bwd_coef_kernel<T><<<(unsigned)CEIL_DIV(nsets, 128), 128, 0, st>>>(
                w, sg, sgx, C, G, Cg, 1.f / (float)(Cg * S), nsets, coef);
            CUDA_CHECK_LAUNCH(k, "groupnorm_bwd_coef_kernel");
            groupnorm_bwd_dx_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, st>>>(
                x, dy, w, bias, mean, rstd, coef, C, S, Cg, a->silu, total, (T *)a->dinp.data);
            CUDA_CHECK_LAUNCH(k, "groupnorm_bwd_dx_kernel");
        }
        if (has_dw || has_db) {
            groupnorm_bwd_params_kernel<T><<<(unsigned)CEIL_DIV(C, 128), 128, 0, st>>>(
                sg, sgx, B, C, (T *)a->dweight.data, (T *)a->dbias.data);
            CUDA_CHECK_LAUNCH(k, "groupnorm_bwd_params_kernel");
        }
    });
    return TI_OK;
}

/* ---- LAYERNORM forward ----------------------------------------------------------------------- */

/* blockIdx.x = row m */
template <typename T>
__global__ void layernorm_forward_kernel(const T *__restrict__ x, T *__restrict__ y,
                                         const T *__restrict__ w, const T *__restrict__ bias,
                                         float *__restrict__ mean, float *__restrict__ rstd,
                                         int64_t D, float eps) {
    __shared__ float sh[33];
    const int64_t base = (int64_t)blockIdx.x * D;
    float s = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
        s += ldf(x + base + d);
    const float mu = block_sum(s, sh) / (float)D;
    float q = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float v = ldf(x + base + d) - mu;
        q += v * v;
    }
    const float rs = 1.f / sqrtf(block_sum(q, sh) / (float)D + eps);
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float v = (ldf(x + base + d) - mu) * rs;
        if (w) v *= ldf(w + d);
        if (bias) v += ldf(bias + d);
        stf(y + base + d, v);
    }
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = mu;
        rstd[blockIdx.x] = rs;
    }
}

extern "C" ti_status cuda_layernorm_forward(struct ti_kctx *k, const struct ti_layernorm_args *a) {
    const int64_t M = a->inp.shape[0], D = a->inp.shape[1];
    if (M == 0 || D == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    const int tr = ti_row_threads(D, 256);
    TI_CUDA_FLOAT_SWITCH(k, a->inp.dtype, T, {
        layernorm_forward_kernel<T><<<(unsigned)M, tr, 0, st>>>(
            (const T *)a->inp.data, (T *)a->out.data, (const T *)a->weight.data,
            (const T *)a->bias.data, (float *)a->mean.data, (float *)a->rstd.data, D,
            (float)a->eps);
        CUDA_CHECK_LAUNCH(k, "layernorm_forward_kernel");
    });
    return TI_OK;
}

/* ---- LAYERNORM backward ---------------------------------------------------------------------- */

/* blockIdx.x = row m: dx += rstd (g w - mean(g w) - xh mean(g w xh)), g = dy */
template <typename T>
__global__ void layernorm_bwd_dx_kernel(const T *__restrict__ x, const T *__restrict__ dy,
                                        const T *__restrict__ w, const float *__restrict__ mean,
                                        const float *__restrict__ rstd, int64_t D,
                                        T *__restrict__ dx) {
    __shared__ float sh[33];
    const int64_t m = blockIdx.x, base = m * D;
    const float mu = mean[m], rs = rstd[m];
    float A = 0.f, Bx = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        const float gw = w ? ldf(dy + base + d) * ldf(w + d) : ldf(dy + base + d);
        A += gw;
        Bx += gw * (ldf(x + base + d) - mu) * rs;
    }
    const float c1 = block_sum(A, sh) / (float)D;
    const float c2 = block_sum(Bx, sh) / (float)D;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        const float gw = w ? ldf(dy + base + d) * ldf(w + d) : ldf(dy + base + d);
        const float xh = (ldf(x + base + d) - mu) * rs;
        stf(dx + base + d, ldf(dx + base + d) + rs * (gw - c1 - xh * c2));
    }
}

/* Block (32, LN_TY) covers columns [32 bx, 32 bx + 32) of rows [rows by, rows (by + 1)):
 * part[by][0][d] = sum g xh, part[by][1][d] = sum g over those rows (x NULL: the sum g only). */
#define LN_TY 8
template <typename T>
__global__ void layernorm_bwd_partial_kernel(const T *__restrict__ x, const T *__restrict__ dy,
                                             const float *__restrict__ mean,
                                             const float *__restrict__ rstd, int64_t M, int64_t D,
                                             int64_t rows, float *__restrict__ part) {
    __shared__ float shw[LN_TY][33], shb[LN_TY][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t d = (int64_t)blockIdx.x * 32 + tx;
    const int64_t m0 = (int64_t)blockIdx.y * rows;
    const int64_t m1 = m0 + rows < M ? m0 + rows : M;
    float sw = 0.f, sb = 0.f;
    if (d < D) {
        for (int64_t m = m0 + ty; m < m1; m += LN_TY) {
            const float g = ldf(dy + m * D + d);
            sb += g;
            if (x) sw += g * (ldf(x + m * D + d) - mean[m]) * rstd[m];
        }
    }
    shw[ty][tx] = sw;
    shb[ty][tx] = sb;
    __syncthreads();
    if (ty == 0 && d < D) {
        float tw = 0.f, tb = 0.f;
        for (int j = 0; j < LN_TY; j++) {
            tw += shw[j][tx];
            tb += shb[j][tx];
        }
        part[(int64_t)blockIdx.y * 2 * D + d] = tw;
        part[(int64_t)blockIdx.y * 2 * D + D + d] = tb;
    }
}

/* one thread per column: dweight[d] += sum over row blocks of part[.][0][d], dbias likewise */
template <typename T>
__global__ void layernorm_bwd_params_kernel(const float *__restrict__ part, int64_t nrb, int64_t D,
                                            T *__restrict__ dw, T *__restrict__ db) {
    const int64_t d = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (d >= D) return;
    float sw = 0.f, sb = 0.f;
    for (int64_t r = 0; r < nrb; r++) {
        sw += part[r * 2 * D + d];
        sb += part[r * 2 * D + D + d];
    }
    if (dw) stf(dw + d, ldf(dw + d) + sw);
    if (db) stf(db + d, ldf(db + d) + sb);
}

extern "C" ti_status cuda_layernorm_backward(struct ti_kctx *k, const struct ti_layernorm_args *a) {
    const int has_dx = a->dinp.data != NULL, has_dw = a->dweight.data != NULL,
              has_db = a->dbias.data != NULL;
    if (!has_dx && !has_dw && !has_db) return TI_OK;
    const int64_t M = a->dout.shape[0], D = a->dout.shape[1];
    if (M == 0 || D == 0) return TI_OK;
    cudaStream_t st = TI_CUDA_STREAM(k);
    int64_t rows = LN_ROWS; /* gridDim.y is at most 65535 */
    while (CEIL_DIV(M, rows) > 65535)
        rows *= 2;
    const int64_t nrb = CEIL_DIV(M, rows);
    float *part = NULL;
    if (has_dw || has_db) {
        part = (float *)ti_cuda_scratch(k, (size_t)(nrb * 2 * D) * sizeof(float));
        if (!part) return TI_ERR_NOMEM;
    }
    const int tr = ti_row_threads(D, 256);
    TI_CUDA_FLOAT_SWITCH(k, a->dout.dtype, T, {
        const T *x = (const T *)a->inp.data, *dy = (const T *)a->dout.data;
        const float *mean = (const float *)a->mean.data, *rstd = (const float *)a->rstd.data;
        if (has_dx) {
            layernorm_bwd_dx_kernel<T><<<(unsigned)M, tr, 0, st>>>(
                x, dy, (const T *)a->weight.data, mean, rstd, D, (T *)a->dinp.data);
            CUDA_CHECK_LAUNCH(k, "layernorm_bwd_dx_kernel");
        }
        if (part) {
            /* x is NULL when only dbias is wanted (the front end did not keep it) */
            dim3 grid((unsigned)CEIL_DIV(D, (int64_t)32), (unsigned)nrb), block(32, LN_TY);
            layernorm_bwd_partial_kernel<T>
                <<<grid, block, 0, st>>>(has_dw ? x : NULL, dy, mean, rstd, M, D, rows, part);
            CUDA_CHECK_LAUNCH(k, "layernorm_bwd_partial_kernel");
            layernorm_bwd_params_kernel<T><<<(unsigned)CEIL_DIV(D, (int64_t)128), 128, 0, st>>>(
                part, nrb, D, (T *)a->dweight.data, (T *)a->dbias.data);
            CUDA_CHECK_LAUNCH(k, "layernorm_bwd_params_kernel");
        }
    });
    return TI_OK;
}
