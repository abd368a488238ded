/*
 * attention.cu - CUDA kernels for ATTENTION (multi-head scaled dot-product attention, optional
 * causal mask): a flash-attention-style forward and a deterministic recomputing backward.
 * f32 / f16 / bf16 storage, f32 arithmetic and f32 lse. Contract: ops.h, ti_attention_args.
 *
 * Shapes (head h owns features [h*D, (h+1)*D) of q, k and [h*Dv, (h+1)*Dv) of v, out):
 *   q (B, Tq, NH*D), k (B, Tk, NH*D), v (B, Tk, NH*Dv): innermost stride 1, any row/batch strides
 *   out (B, Tq, NH*Dv), lse (B, NH, Tq) f32; dq, dk, dv like q, k, v (+=, NULL = not wanted)
 *
 * Layout of the work: a thread block owns (b, h, a tile of queries) in forward and dQ, or
 * (b, h, a tile of keys) in dK/dV; each warp owns PER_WARP of the tile's rows. Key (or query)
 * tiles of 32 rows stream through shared memory (converted to f32), one row per lane:
 *   - scores: lane j computes s_j = scale * q_i . k_j for the warp's rows (q broadcast from
 *     shared memory, k_j from a row of odd stride so the 32 lanes hit 32 banks);
 *   - products with the tile (P V, dS K, P^T dO, dS^T Q): lanes own output features
 *     e = lane + 32c (c < NC, NC = ceil(width / 32)) in registers, and p_j / ds_j are broadcast
 *     from lane j with a shuffle.
 * NC is a template parameter (2, 5 or 16: head widths up to 64, 160 and 512 - SD's 40/80/160,
 * CLIP's and BERT's 64, the VAE's 512); wider heads return TI_ERR_UNSUPPORTED.
 *
 * Forward (one pass over the keys, online softmax; per query row i, running max m, sum l):
 *   m' = max(m, max_j s_j); alpha = exp(m - m'); p_j = exp(s_j - m'); l = alpha l + sum_j p_j;
 *   acc = alpha acc + sum_j p_j v_j;  finally out_i = acc / l, lse_i = m + log l.
 * Masked keys (causal j > i, and the padding past Tk of the last tile) have s = -inf, p = 0.
 *
 * Backward (dO = dout; P recomputed as exp(s - lse)):
 *   pre-kernel   D_i = dO_i . out_i                      (= sum_j P_ij dP_ij, see cpu/attention.c)
 *   dQ kernel    per query tile, over key tiles:  dP_ij = dO_i . v_j, dS_ij = P_ij (dP_ij - D_i),
 *                dq_i += scale sum_j dS_ij k_j
 *   dK/dV kernel per key tile, over query tiles:  dv_j += sum_i P_ij dO_i,
 *                dk_j += scale sum_i dS_ij q_i
 * Each gradient row is owned by exactly one block, so there are no atomics and the results are
 * deterministic; the kernels for unwanted gradients are not launched (only dk, dv wanted:
 * no dQ kernel). Causal tiles that are fully masked are skipped in all three kernels.
 * Aliased gradients (q = k = v passed as one tensor) are safe: the dQ and dK/dV kernels run one
 * after the other on the stream, and within dK/dV the same thread updates dk[j][e] and dv[j][e].
 *
 * Shared memory is dynamic (f32 tiles: e.g. 62 KB forward at D = 160); above 48 KB the kernel is
 * opted in with cudaFuncSetAttribute, and a size beyond the device's limit is an error naming it.
 */
#include <math.h>   /* defines: INFINITY */
#include <string.h> /* defines: memset */

#include "cuda_common.h"
#include "launchers.h"

#define FULL_MASK 0xffffffffu
#define TILE      32 /* keys (forward, dQ) or queries (dK/dV) per shared-memory tile: one per lane */

/* Warps per block and rows per warp for each NC (register budget: NC * PER_WARP accumulators,
 * twice that in dK/dV). */
template <int NC> struct attn_shape {
    static const int WARPS = NC <= 5 ? 8 : 4;
    static const int PER_WARP = NC <= 5 ? 4 : 2;
    static const int ROWS = WARPS * PER_WARP; /* rows of q (forward, dQ) or k (dK/dV) per block */
};

struct attn_params {
    const void *q, *k, *v, *o, *dout;
    void *out, *dq, *dk, *dv;
    float *lse;  /* forward: written; backward: read */
    float *drow; /* backward: D_i = dO_i . out_i, (B, NH, Tq) contiguous */
    int64_t qs0, qs1, ks0, ks1, vs0, vs1, os0, os1, dos0, dos1;
    int64_t dqs0, dqs1, dks0, dks1, dvs0, dvs1, ls0, ls1, ls2;
    int Tq, Tk, NH, D, Dv;
    int causal;
    int want_dk, want_dv;
    float scale;
};

__device__ __forceinline__ float warp_max(float x) {
    for (int off = 16; off > 0; off >>= 1)
        x = fmaxf(x, __shfl_xor_sync(FULL_MASK, x, off));
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int off = 16; off > 0; off >>= 1)
        x += __shfl_xor_sync(FULL_MASK, x, off);
    return x;
}

/* odd row stride for tiles read one row per lane (bank-conflict free) */
__host__ __device__ __forceinline__ int odd_stride(int w) {
    return w | 1;
}

/* rows [r0, r0 + nrows) x cols [0, w) of a strided (row stride rs) T matrix into f32 shared
 * memory with row stride ld; rows past `limit` are zero */
template <typename T>
__device__ __forceinline__ void load_tile(float *dst, int ld, const T *src, int64_t rs, int64_t r0,
                                          int nrows, int w, int64_t limit) {
    for (int idx = threadIdx.x; idx < nrows * w; idx += blockDim.x) {
        int r = idx / w, c = idx - r * w;
        int64_t row = r0 + r;
        dst[r * ld + c] = row < limit ? ldf(src + row * rs + c) : 0.f;
    }
}

/* ---- forward --------------------------------------------------------------------------------- */
/* grid (ceil(Tq / ROWS), NH, B), block WARPS * 32; shared: sQ (ROWS x D), sK (TILE x odd(D)),
 * sV (TILE x Dv) */
template <typename T, int NC> __global__ void attention_forward_kernel(struct attn_params p) {
    typedef attn_shape<NC> S;
    extern __shared__ float smem[];
    const int D = p.D, Dv = p.Dv, ldk = odd_stride(D);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * S::ROWS;
    float *sQ = smem, *sK = sQ + S::ROWS * D, *sV = sK + TILE * ldk;
    const T *q = (const T *)p.q + b * p.qs0 + h * D;
    const T *k = (const T *)p.k + b * p.ks0 + h * D;
    const T *v = (const T *)p.v + b * p.vs0 + h * Dv;
    load_tile(sQ, D, q, p.qs1, q0, S::ROWS, D, p.Tq);

    float m[S::PER_WARP], l[S::PER_WARP], acc[S::PER_WARP][NC];
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0.f;
#pragma unroll
        for (int c = 0; c < NC; c++)
            acc[r][c] = 0.f;
    }
    const int64_t row0 = q0 + warp * S::PER_WARP; /* the warp's first query */
    /* causal: no query of this block sees keys >= q0 + ROWS */
    const int64_t kend = p.causal ? min((int64_t)p.Tk, q0 + S::ROWS) : (int64_t)p.Tk;
    for (int64_t j0 = 0; j0 < kend; j0 += TILE) {
        __syncthreads(); /* the previous tile is consumed (and sQ is loaded) */
        load_tile(sK, ldk, k, p.ks1, j0, TILE, D, p.Tk);
        load_tile(sV, Dv, v, p.vs1, j0, TILE, Dv, p.Tk);
        __syncthreads();
        const int64_t j = j0 + lane;
        /* s_r = scale q_r . k_j, k_j read once per feature for all the warp's rows */
        float s[S::PER_WARP];
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++)
            s[r] = 0.f;
        const float *kr = sK + lane * ldk;
        const float *qw = sQ + warp * S::PER_WARP * D;
        for (int d = 0; d < D; d++) {
            float kd = kr[d];
#pragma unroll
            for (int r = 0; r < S::PER_WARP; r++)
                s[r] += qw[r * D + d] * kd;
        }
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++) {
            const int64_t i = row0 + r;
            const bool valid = j < p.Tk && (!p.causal || j <= i);
            float sr = valid ? s[r] * p.scale : -INFINITY;
            float mnew = fmaxf(m[r], warp_max(sr));
            /* mnew = -inf only while every key so far is masked: nothing to rescale */
            float alpha = mnew == -INFINITY ? 1.f : expf(m[r] - mnew);
            float pj = valid ? expf(sr - mnew) : 0.f;
            l[r] = l[r] * alpha + warp_sum(pj);
            m[r] = mnew;
#pragma unroll
            for (int c = 0; c < NC; c++)
                acc[r][c] *= alpha;
            for (int jj = 0; jj < TILE; jj++) {
                float pb = __shfl_sync(FULL_MASK, pj, jj);
                const float *vr = sV + jj * Dv;
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    int e = lane + 32 * c;
                    if (e < Dv) acc[r][c] += pb * vr[e];
                }
            }
        }
    }
    T *out = (T *)p.out + b * p.os0 + h * Dv;
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++) {
        const int64_t i = row0 + r;
        if (i >= p.Tq) continue;
        float inv = 1.f / l[r]; /* l >= 1: the row's max term is exp(0) */
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int e = lane + 32 * c;
            if (e < Dv) stf(out + i * p.os1 + e, acc[r][c] * inv);
        }
        if (lane == 0) p.lse[b * p.ls0 + h * p.ls1 + i * p.ls2] = m[r] + logf(l[r]);
    }
}

/* ---- backward: D_i = dO_i . out_i ------------------------------------------------------------ */
/* one warp per (b, h, i); drow (B, NH, Tq) contiguous */
template <typename T> __global__ void attention_drow_kernel(struct attn_params p, int64_t nrows) {
    const int lane = threadIdx.x & 31;
    int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    const int64_t nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (; w < nrows; w += nw) {
        int64_t i = w % p.Tq, bh = w / p.Tq, h = bh % p.NH, b = bh / p.NH;
        const T *o = (const T *)p.o + b * p.os0 + i * p.os1 + h * p.Dv;
        const T *g = (const T *)p.dout + b * p.dos0 + i * p.dos1 + h * p.Dv;
        float s = 0.f;
        for (int e = lane; e < p.Dv; e += 32)
            s += ldf(o + e) * ldf(g + e);
        s = warp_sum(s);
        if (lane == 0) p.drow[w] = s;
    }
}

/* ---- backward: dQ ---------------------------------------------------------------------------- */
/* grid (ceil(Tq / ROWS), NH, B); shared: sQ (ROWS x D), sdO (ROWS x Dv), sK (TILE x odd(D)),
 * sV (TILE x odd(Dv)) */
template <typename T, int NC> __global__ void attention_backward_dq_kernel(struct attn_params p) {
    typedef attn_shape<NC> S;
    extern __shared__ float smem[];
    const int D = p.D, Dv = p.Dv, ldk = odd_stride(D), ldv = odd_stride(Dv);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t b = blockIdx.z, h = blockIdx.y, q0 = (int64_t)blockIdx.x * S::ROWS;
    float *sQ = smem, *sdO = sQ + S::ROWS * D, *sK = sdO + S::ROWS * Dv, *sV = sK + TILE * ldk;
    const T *q = (const T *)p.q + b * p.qs0 + h * D;
    const T *k = (const T *)p.k + b * p.ks0 + h * D;
    const T *v = (const T *)p.v + b * p.vs0 + h * Dv;
    const T *dout = (const T *)p.dout + b * p.dos0 + h * Dv;
    load_tile(sQ, D, q, p.qs1, q0, S::ROWS, D, p.Tq);
    load_tile(sdO, Dv, dout, p.dos1, q0, S::ROWS, Dv, p.Tq);

    const int64_t row0 = q0 + warp * S::PER_WARP;
    float lse[S::PER_WARP], drow[S::PER_WARP], acc[S::PER_WARP][NC];
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++) {
        const int64_t i = row0 + r;
        lse[r] = i < p.Tq ? p.lse[b * p.ls0 + h * p.ls1 + i * p.ls2] : 0.f;
        drow[r] = i < p.Tq ? p.drow[(b * p.NH + h) * p.Tq + i] : 0.f;
#pragma unroll
        for (int c = 0; c < NC; c++)
            acc[r][c] = 0.f;
    }
    const int64_t kend = p.causal ? min((int64_t)p.Tk, q0 + S::ROWS) : (int64_t)p.Tk;
    for (int64_t j0 = 0; j0 < kend; j0 += TILE) {
        __syncthreads();
        load_tile(sK, ldk, k, p.ks1, j0, TILE, D, p.Tk);
        load_tile(sV, ldv, v, p.vs1, j0, TILE, Dv, p.Tk);
        __syncthreads();
        const int64_t j = j0 + lane;
        float s[S::PER_WARP], dp[S::PER_WARP];
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++)
            s[r] = dp[r] = 0.f;
        const float *kr = sK + lane * ldk, *vr = sV + lane * ldv;
        const float *qw = sQ + warp * S::PER_WARP * D, *gw = sdO + warp * S::PER_WARP * Dv;
        for (int d = 0; d < D; d++) {
            float kd = kr[d];
#pragma unroll
            for (int r = 0; r < S::PER_WARP; r++)
                s[r] += qw[r * D + d] * kd;
        }
        for (int e = 0; e < Dv; e++) {
            float ve = vr[e];
#pragma unroll
            for (int r = 0; r < S::PER_WARP; r++)
                dp[r] += gw[r * Dv + e] * ve;
        }
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++) {
            const int64_t i = row0 + r;
            const bool valid = i < p.Tq && j < p.Tk && (!p.causal || j <= i);
            float pij = valid ? expf(s[r] * p.scale - lse[r]) : 0.f;
            float ds = pij * (dp[r] - drow[r]);
            for (int jj = 0; jj < TILE; jj++) {
                float db = __shfl_sync(FULL_MASK, ds, jj);
                const float *kk = sK + jj * ldk;
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    int d = lane + 32 * c;
                    if (d < D) acc[r][c] += db * kk[d];
                }
            }
        }
    }
    T *dq = (T *)p.dq + b * p.dqs0 + h * D;
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++) {
        const int64_t i = row0 + r;
        if (i >= p.Tq) continue;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int d = lane + 32 * c;
            if (d < D) {
                T *x = dq + i * p.dqs1 + d;
                stf(x, ldf(x) + p.scale * acc[r][c]);
            }
        }
    }
}

/* ---- backward: dK and dV --------------------------------------------------------------------- */
/* grid (ceil(Tk / ROWS), NH, B); the block owns keys [k0, k0 + ROWS); shared: sK (ROWS x D),
 * sV (ROWS x Dv), per query tile sQ (TILE x odd(D)), sdO (TILE x odd(Dv)), sL (TILE), sDr (TILE) */
template <typename T, int NC> __global__ void attention_backward_dkdv_kernel(struct attn_params p) {
    typedef attn_shape<NC> S;
    extern __shared__ float smem[];
    const int D = p.D, Dv = p.Dv, ldq = odd_stride(D), ldo = odd_stride(Dv);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t b = blockIdx.z, h = blockIdx.y, k0 = (int64_t)blockIdx.x * S::ROWS;
    float *sK = smem, *sV = sK + S::ROWS * D, *sQ = sV + S::ROWS * Dv, *sdO = sQ + TILE * ldq;
    float *sL = sdO + TILE * ldo, *sDr = sL + TILE;
    const T *q = (const T *)p.q + b * p.qs0 + h * D;
    const T *k = (const T *)p.k + b * p.ks0 + h * D;
    const T *v = (const T *)p.v + b * p.vs0 + h * Dv;
    const T *dout = (const T *)p.dout + b * p.dos0 + h * Dv;
    const float *lse = p.lse + b * p.ls0 + h * p.ls1;
    const float *drow = p.drow ? p.drow + (b * p.NH + h) * p.Tq : NULL;
    load_tile(sK, D, k, p.ks1, k0, S::ROWS, D, p.Tk);
    load_tile(sV, Dv, v, p.vs1, k0, S::ROWS, Dv, p.Tk);
    const bool want_dk = p.want_dk != 0;

    const int64_t key0 = k0 + warp * S::PER_WARP; /* the warp's first key */
    float acck[S::PER_WARP][NC], accv[S::PER_WARP][NC];
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++)
#pragma unroll
        for (int c = 0; c < NC; c++)
            acck[r][c] = accv[r][c] = 0.f;
    /* causal: queries before the block's first key see none of its keys */
    const int64_t istart = p.causal ? k0 / TILE * TILE : 0;
    for (int64_t i0 = istart; i0 < p.Tq; i0 += TILE) {
        __syncthreads();
        load_tile(sQ, ldq, q, p.qs1, i0, TILE, D, p.Tq);
        load_tile(sdO, ldo, dout, p.dos1, i0, TILE, Dv, p.Tq);
        if (threadIdx.x < TILE) {
            int64_t i = i0 + threadIdx.x;
            sL[threadIdx.x] = i < p.Tq ? lse[i * p.ls2] : 0.f;
            sDr[threadIdx.x] = want_dk && i < p.Tq ? drow[i] : 0.f; /* drow: only with dk */
        }
        __syncthreads();
        const int64_t i = i0 + lane; /* this lane's query */
        float s[S::PER_WARP], dp[S::PER_WARP];
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++)
            s[r] = dp[r] = 0.f;
        const float *qr = sQ + lane * ldq, *gr = sdO + lane * ldo;
        const float *kw = sK + warp * S::PER_WARP * D, *vw = sV + warp * S::PER_WARP * Dv;
        for (int d = 0; d < D; d++) {
            float qd = qr[d];
#pragma unroll
            for (int r = 0; r < S::PER_WARP; r++)
                s[r] += kw[r * D + d] * qd;
        }
        if (want_dk)
            for (int e = 0; e < Dv; e++) {
                float ge = gr[e];
#pragma unroll
                for (int r = 0; r < S::PER_WARP; r++)
                    dp[r] += vw[r * Dv + e] * ge;
            }
#pragma unroll
        for (int r = 0; r < S::PER_WARP; r++) {
            const int64_t j = key0 + r;
            const bool valid = i < p.Tq && j < p.Tk && (!p.causal || j <= i);
            float pij = valid ? expf(s[r] * p.scale - sL[lane]) : 0.f;
            float ds = pij * (dp[r] - sDr[lane]);
            for (int ii = 0; ii < TILE; ii++) {
                float pb = __shfl_sync(FULL_MASK, pij, ii);
                float db = __shfl_sync(FULL_MASK, ds, ii);
                const float *gg = sdO + ii * ldo, *qq = sQ + ii * ldq;
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    int e = lane + 32 * c;
                    if (e < Dv) accv[r][c] += pb * gg[e];
                    if (e < D) acck[r][c] += db * qq[e];
                }
            }
        }
    }
    T *dk = p.dk ? (T *)p.dk + b * p.dks0 + h * D : NULL;
    T *dv = p.dv ? (T *)p.dv + b * p.dvs0 + h * Dv : NULL;
#pragma unroll
    for (int r = 0; r < S::PER_WARP; r++) {
        const int64_t j = key0 + r;
        if (j >= p.Tk) continue;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            int e = lane + 32 * c;
            /* dk before dv, same thread: correct even when dk and dv alias (k = v) */
            if (dk && e < D) {
                T *x = dk + j * p.dks1 + e;
                stf(x, ldf(x) + p.scale * acck[r][c]);
            }
            if (dv && e < Dv) {
                T *x = dv + j * p.dvs1 + e;
                stf(x, ldf(x) + accv[r][c]);
            }
        }
    }
}

/* ---- launchers ------------------------------------------------------------------------------- */
static void params_init(struct attn_params *p, const struct ti_attention_args *a) {
    memset(p, 0, sizeof *p);
    p->q = a->q.data;
    p->k = a->k.data;
    p->v = a->v.data;
    p->o = a->out.data;
    p->out = a->out.data;
    p->lse = (float *)a->lse.data;
    p->qs0 = a->q.stride[0];
    p->qs1 = a->q.stride[1];
    p->ks0 = a->k.stride[0];
    p->ks1 = a->k.stride[1];
    p->vs0 = a->v.stride[0];
    p->vs1 = a->v.stride[1];
    p->os0 = a->out.stride[0];
    p->os1 = a->out.stride[1];
    p->ls0 = a->lse.stride[0];
    p->ls1 = a->lse.stride[1];
    p->ls2 = a->lse.stride[2];
    p->Tq = (int)a->q.shape[1];
    p->Tk = (int)a->k.shape[1];
    p->NH = a->heads;
    p->D = (int)(a->q.shape[2] / a->heads);
    p->Dv = (int)(a->v.shape[2] / a->heads);
    p->causal = a->causal;
    p->scale = (float)a->scale;
}

/* NC bucket for the head widths, 0 when too wide */
static int attn_nc(int D, int Dv) {
    int w = D > Dv ? D : Dv;
    return w <= 64 ? 2 : (w <= 160 ? 5 : (w <= 512 ? 16 : 0));
}

/* Opts `kernel` in to `bytes` of dynamic shared memory when above the default 48 KB. */
template <typename K>
static ti_status smem_prepare(struct ti_kctx *k, K kernel, size_t bytes, const char *what) {
    if (bytes <= 48u * 1024u) return TI_OK;
    int dev = 0, max_optin = 0;
    CUDA_CHECK(k, cudaGetDevice(&dev));
    CUDA_CHECK(k, cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (bytes > (size_t)max_optin)
        return ti_error(k->err, TI_ERR_UNSUPPORTED,
                        "%s: needs %zu bytes of shared memory per block, the device allows %d",
                        what, bytes, max_optin);
    CUDA_CHECK(
        k, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return TI_OK;
}

template <typename T, int NC>
static ti_status launch_forward(struct ti_kctx *k, const struct attn_params &p, int B) {
    typedef attn_shape<NC> S;
    size_t smem = sizeof(float) *
                  ((size_t)S::ROWS * p.D + (size_t)TILE * odd_stride(p.D) + (size_t)TILE * p.Dv);
    TI_TRY(smem_prepare(k, attention_forward_kernel<T, NC>, smem, "attention_forward"));
    dim3 grid((unsigned)CEIL_DIV(p.Tq, S::ROWS), (unsigned)p.NH, (unsigned)B);
    attention_forward_kernel<T, NC><<<grid, S::WARPS * 32, smem, TI_CUDA_STREAM(k)>>>(p);
    CUDA_CHECK_LAUNCH(k, "attention_forward");
    return TI_OK;
}

template <typename T, int NC>
static ti_status launch_backward(struct ti_kctx *k, const struct attn_params &p, int B) {
    typedef attn_shape<NC> S;
    cudaStream_t s = TI_CUDA_STREAM(k);
    const int64_t nrows = (int64_t)B * p.NH * p.Tq;
    if (p.dq || p.dk) {
        attention_drow_kernel<T><<<ti_cuda_blocks(nrows * 32, 256), 256, 0, s>>>(p, nrows);
        CUDA_CHECK_LAUNCH(k, "attention_backward (rowsum)");
    }
    if (p.dq) {
        size_t smem = sizeof(float) * ((size_t)S::ROWS * (p.D + p.Dv) +
                                       (size_t)TILE * (odd_stride(p.D) + odd_stride(p.Dv)));
        TI_TRY(smem_prepare(k, attention_backward_dq_kernel<T, NC>, smem, "attention_backward"));
        dim3 grid((unsigned)CEIL_DIV(p.Tq, S::ROWS), (unsigned)p.NH, (unsigned)B);
        attention_backward_dq_kernel<T, NC><<<grid, S::WARPS * 32, smem, s>>>(p);
        CUDA_CHECK_LAUNCH(k, "attention_backward (dq)");
    }
    if (p.dk || p.dv) {
        size_t smem =
            sizeof(float) * ((size_t)S::ROWS * (p.D + p.Dv) +
                             (size_t)TILE * (odd_stride(p.D) + odd_stride(p.Dv)) + 2 * TILE);
        TI_TRY(smem_prepare(k, attention_backward_dkdv_kernel<T, NC>, smem, "attention_backward"));
        dim3 grid((unsigned)CEIL_DIV(p.Tk, S::ROWS), (unsigned)p.NH, (unsigned)B);
        attention_backward_dkdv_kernel<T, NC><<<grid, S::WARPS * 32, smem, s>>>(p);
        CUDA_CHECK_LAUNCH(k, "attention_backward (dk, dv)");
    }
    return TI_OK;
}

static ti_status check_grid(struct ti_kctx *k, const struct ti_attention_args *a) {
    if (a->q.shape[0] > 65535 || a->heads > 65535 || a->q.shape[1] > INT32_MAX ||
        a->k.shape[1] > INT32_MAX)
        return ti_error(k->err, TI_ERR_UNSUPPORTED,
                        "attention: batch %lld, heads %d or lengths exceed the CUDA grid",
                        (long long)a->q.shape[0], a->heads);
    return TI_OK;
}

extern "C" ti_status cuda_attention_forward(struct ti_kctx *k, const struct ti_attention_args *a) {
    if (ti_tensor_numel(&a->out) == 0) return TI_OK;
    TI_TRY(check_grid(k, a));
    struct attn_params p;
    params_init(&p, a);
    const int B = (int)a->q.shape[0];
    const int nc = attn_nc(p.D, p.Dv);
    if (nc == 0)
        return ti_error(k->err, TI_ERR_UNSUPPORTED,
                        "attention: head widths D %d, Dv %d; the CUDA kernels support up to 512",
                        p.D, p.Dv);
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        if (nc == 2)
            TI_TRY((launch_forward<T, 2>(k, p, B)));
        else if (nc == 5)
            TI_TRY((launch_forward<T, 5>(k, p, B)));
        else
            TI_TRY((launch_forward<T, 16>(k, p, B)));
    });
    return TI_OK;
}

extern "C" ti_status cuda_attention_backward(struct ti_kctx *k, const struct ti_attention_args *a) {
    if (!a->dq.data && !a->dk.data && !a->dv.data) return TI_OK;
    if (ti_tensor_numel(&a->out) == 0) return TI_OK;
    TI_TRY(check_grid(k, a));
    struct attn_params p;
    params_init(&p, a);
    const int B = (int)a->q.shape[0];
    p.dout = a->dout.data;
    p.dos0 = a->dout.stride[0];
    p.dos1 = a->dout.stride[1];
    p.dq = a->dq.data;
    p.dk = a->dk.data;
    p.dv = a->dv.data;
    if (p.dq) {
        p.dqs0 = a->dq.stride[0];
        p.dqs1 = a->dq.stride[1];
    }
    if (p.dk) {
        p.dks0 = a->dk.stride[0];
        p.dks1 = a->dk.stride[1];
    }
    if (p.dv) {
        p.dvs0 = a->dv.stride[0];
        p.dvs1 = a->dv.stride[1];
    }
    p.want_dk = p.dk != NULL;
    p.want_dv = p.dv != NULL;
    const int nc = attn_nc(p.D, p.Dv);
    if (nc == 0)
        return ti_error(k->err, TI_ERR_UNSUPPORTED,
                        "attention: head widths D %d, Dv %d; the CUDA kernels support up to 512",
                        p.D, p.Dv);
    if (p.dq || p.dk) {
        p.drow = (float *)ti_cuda_scratch(k, sizeof(float) * (size_t)B * p.NH * p.Tq);
        if (!p.drow) return TI_ERR_NOMEM;
    }
    TI_CUDA_FLOAT_SWITCH(k, a->out.dtype, T, {
        if (nc == 2)
            TI_TRY((launch_backward<T, 2>(k, p, B)));
        else if (nc == 5)
            TI_TRY((launch_backward<T, 5>(k, p, B)));
        else
            TI_TRY((launch_backward<T, 16>(k, p, B)));
    });
    return TI_OK;
}
