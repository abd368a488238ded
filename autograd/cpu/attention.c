/*
 * cpu/attention.c - CPU kernels for ATTENTION (multi-head scaled dot-product attention,
 * optional causal mask), forward and backward. Compiled for f32 (the fast path) and f64 (the
 * gradcheck reference) from this one source (cpu_common.h). Contract: ops.h, ti_attention_args.
 *
 * Shapes (heads along the feature dim; head n owns features [n*D, (n+1)*D)):
 *   q (B, Tq, NH*D), k (B, Tk, NH*D), v (B, Tk, NH*Dv)   innermost stride 1, rows strided
 *   out (B, Tq, NH*Dv) contiguous, lse (B, NH, Tq) stat dtype (= real here)
 *
 * Forward, flash-attention style, one work item per (b, h, block of BQ queries [i0, i0+m)):
 *   S = scale * Q_blk . K^T                (m x n, one GEMM; n = Tk, or i0+m when causal)
 *   causal: S[r][j] = -inf for key j > query i0+r (written as P = 0 directly)
 *   per row: mx = max_j S, P = exp(S - mx), l = sum_j P, lse = mx + log l
 *   O_blk = (P . V) / l                    (one GEMM, then a row scale)
 * The workspace is the m x n block of S (O(BQ x Tk) per thread), never the Tq x Tk matrix.
 *
 * Backward recomputes P from lse (no Tq x Tk matrix is kept between the passes). With
 * dO = d loss / d out and P = softmax(S), S = scale Q K^T:
 *   dV = P^T dO                               (out = P V)
 *   dP = dO V^T
 *   dS[i][j] = P[i][j] (dP[i][j] - D_i),  D_i = sum_j P[i][j] dP[i][j] = sum_d dO[i][d] O[i][d]
 *        (softmax Jacobian: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik); the row sum equals
 *         dO_i . (P V)_i = dO_i . O_i, so D needs only O, not the full P row)
 *   dQ = scale dS K,   dK = scale dS^T Q
 * Per (b, h, query block): S = scale Q K^T (recomputed) and dP = dO V^T, one pass making P and
 * dS from them, then dV += P^T dO, dQ += scale dS K, dK += scale dS^T Q: 2.5x the forward's
 * GEMM FLOPs when dq, dk and dv are
 * all wanted. Gradients that are not wanted (data NULL) are skipped with their GEMMs: only dv
 * wanted -> no dP; no dq -> no dQ GEMM (cross-attention over a frozen latent path).
 *
 * Threading, decided by measurement (SD self-attention 4096 x 4096 x 8 heads of 40, f32, on
 * this project's 2-core build VM while other jobs kept about one core busy, so CPU time is
 * the fair measure): A = OpenMP over work items with single-threaded GEMMs cost 552 / 1700 ms
 * CPU for forward / forward+backward; B = one item at a time with OpenBLAS-threaded GEMMs
 * cost 546-718 / 2093-2228 ms (one thread alone: 507-524 / 1698-1741). B pays a fork/join per
 * thin GEMM (K or N = D = 40; 2-5 GEMMs per 128-query block) and would still need its own
 * parallel loops for the exp; A has neither cost, so A it is. OpenBLAS is switched to one
 * thread for the duration of a call (and restored).
 *   forward:  items (b, h, block) flattened, dynamic schedule (causal blocks differ in cost).
 *   backward: dK/dV of a head collect contributions from every query block, so
 *     - B*NH large enough: one thread owns whole heads (no sharing, results independent of
 *       the thread count);
 *     - otherwise (VAE: 1 head): heads in turn, query blocks split round-robin across threads,
 *       each thread accumulating dK/dV of the head in its own buffer, summed in thread order
 *       afterwards (deterministic for a given thread count).
 *   dq, dk, dv may alias (self-attention with q = k = v passed as one tensor): every update
 *   of one element happens in one thread, in sequence.
 *
 * f32 calls go to attention_f32.c's kernel first (its own AVX-512 / AVX2 GEMM tiles and exp,
 * picked from the CPU's features); this file's SGEMM path runs where that one does not
 * (neither instruction set, TI_ATTN_F32=0, a backward whose heads do not keep the threads busy)
 * and for f64.
 *
 * Exp: f32 uses ti_fast_expf / ti_fast_expf_fma (fast_exp.h: vectorisable, <= 1 ulp), f64 uses
 * libm exp. The row loops (attention_rows.h) are compiled twice on x86-64, AVX2 + FMA and the
 * baseline, and picked at run time from the CPU's features, since the portable build targets
 * SSE2 only.
 */
#include "cpu_common.h"

#include <string.h> /* defines: memset */

#include "fast_exp.h"

#ifdef TI_HAVE_OPENBLAS
#include <cblas.h> /* defines: openblas_set_num_threads, openblas_get_num_threads */
#endif

/* Bytes of the per-thread S block (BQ x Tk) the query block size aims for. Each GEMM call
 * packs all of K (or V) of the head, so small blocks pay that packing over and over: at
 * Tk = 4096, D = 40 one thread measured fwd / fwd+bwd 621 / 2148 ms with BQ 32, 541 / 1801
 * with 64, 555 / 1652 with 128, 561 / 1659 with 256 (CPU time). 2 MiB gives BQ 128 there
 * (the block then lives in L3, which costs less than the repacking). */
#define S_BLOCK_BYTES ((int64_t)2 << 20)
#define BQ_MIN        32
#define BQ_MAX        256

/* ---- row loops (the exp is the hot spot after the GEMMs) ------------------------------------- */
/* Two variants on x86-64 GCC/Clang: AVX2 + FMA (with the fused-multiply-add exp, ~35% faster
 * than the portable one there) and the portable build's baseline, picked once per call from
 * the CPU's features. The portable build targets SSE2 only, hence the explicit variant. */
struct row_ops {
    real (*max)(const real *s, int64_t n);
    real (*exp_sum)(real *s, int64_t n, real m);
    void (*exp)(real *s, int64_t n, real m);
    void (*exp_dsoftmax)(real *s, real *dp, int64_t n, real m, real d);
};

#define ROWS_NAME(f) f##_base
#define ROWS_ATTR
#if defined(TI_REAL_F32)
#define ROWS_EXP(x) ti_fast_expf(x)
#else
#define ROWS_EXP(x) EXP(x)
#endif
#include "attention_rows.h"
#undef ROWS_NAME
#undef ROWS_ATTR
#undef ROWS_EXP

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_ROWS_AVX2 1
#define ROWS_NAME(f)   f##_avx2
#define ROWS_ATTR      __attribute__((target("avx2,fma")))
#if defined(TI_REAL_F32)
#define ROWS_EXP(x) ti_fast_expf_fma(x)
#else
#define ROWS_EXP(x) EXP(x)
#endif
#include "attention_rows.h"
#undef ROWS_NAME
#undef ROWS_ATTR
#undef ROWS_EXP
#endif

static struct row_ops row_ops_pick(void) {
    struct row_ops o = {row_max_base, row_exp_sum_base, row_exp_base, row_exp_dsoftmax_base};
#ifdef HAVE_ROWS_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        o.max = row_max_avx2;
        o.exp_sum = row_exp_sum_avx2;
        o.exp = row_exp_avx2;
        o.exp_dsoftmax = row_exp_dsoftmax_avx2;
    }
#endif
    return o;
}

/* ---- geometry -------------------------------------------------------------------------------- */
struct attn_geom {
    int64_t B, Tq, Tk, NH, D, Dv;
    int64_t bq, nqb, ldS; /* query block, number of blocks, row stride of the S workspace */
    const real *q, *k, *v;
    int64_t qs0, qs1, ks0, ks1, vs0, vs1; /* batch and row strides */
    real *o;
    int64_t os0, os1;
    real *lse;
    int64_t ls0, ls1, ls2;
    const real *dout;
    int64_t dos0, dos1;
    real scale;
    int causal;
    struct row_ops rows;
};

/* Row stride usable as a GEMM leading dimension: BLAS wants ld >= the row length even for a
 * single row, whose stride is arbitrary. */
static int64_t row_ld(const struct ti_tensor *t) {
    return t->shape[1] > 1 ? t->stride[1] : t->shape[2];
}

static void geom_init(struct attn_geom *g, const struct ti_attention_args *a) {
    memset(g, 0, sizeof *g);
    g->B = a->q.shape[0];
    g->Tq = a->q.shape[1];
    g->Tk = a->k.shape[1];
    g->NH = a->heads;
    g->D = a->q.shape[2] / a->heads;
    g->Dv = a->v.shape[2] / a->heads;
    int64_t bq = S_BLOCK_BYTES / ((int64_t)sizeof(real) * g->Tk);
    bq = bq < BQ_MIN ? BQ_MIN : (bq > BQ_MAX ? BQ_MAX : bq);
    bq = bq / 8 * 8;
    if (bq > g->Tq) bq = g->Tq > 0 ? g->Tq : 1;
    g->bq = bq;
    g->nqb = (g->Tq + bq - 1) / bq;
    g->ldS = (g->Tk + 15) / 16 * 16; /* 64-byte rows for f32 */
    g->q = a->q.data;
    g->k = a->k.data;
    g->v = a->v.data;
    g->qs0 = a->q.stride[0];
    g->qs1 = row_ld(&a->q);
    g->ks0 = a->k.stride[0];
    g->ks1 = row_ld(&a->k);
    g->vs0 = a->v.stride[0];
    g->vs1 = row_ld(&a->v);
    g->o = a->out.data;
    g->os0 = a->out.stride[0];
    g->os1 = row_ld(&a->out);
    g->lse = a->lse.data;
    g->ls0 = a->lse.stride[0];
    g->ls1 = a->lse.stride[1];
    g->ls2 = a->lse.stride[2];
    g->scale = (real)a->scale;
    g->causal = a->causal;
    g->rows = row_ops_pick();
    /* dout, dos0, dos1: the backward's own input, set by attention_backward */
}

/* Threads for a call: one for tiny problems (fork/join would dominate). */
/* OpenBLAS to one thread while our own threads run GEMMs; returns the count to restore. */
static int blas_single_begin(int nt) {
#ifdef TI_HAVE_OPENBLAS
    if (nt > 1) {
        int saved = openblas_get_num_threads();
        if (saved != 1) openblas_set_num_threads(1);
        return saved;
    }
#endif
    (void)nt;
    return 0;
}

static void blas_single_end(int saved) {
#ifdef TI_HAVE_OPENBLAS
    if (saved > 1) openblas_set_num_threads(saved);
#endif
    (void)saved;
}

/* OpenMP thread number (0 without OpenMP) */
/* C (m x n, row stride ldc) = alpha A B^T with A (m x kk), B (n x kk) rows strided. Zeroing C
 * ourselves and calling GEMM with beta = 1 is faster than beta = 0, whose separate scaling pass
 * in OpenBLAS cost ~10% of these thin GEMMs (m 128, n 4096, kk 40: 57 -> 63 GFLOP/s, one
 * thread). */
static void gemm_abt(int64_t m, int64_t n, int64_t kk, real alpha, const real *A, int64_t lda,
                     const real *B, int64_t ldb, real *C, int64_t ldc) {
    for (int64_t r = 0; r < m; r++)
        memset(C + r * ldc, 0, (size_t)n * sizeof(real));
    CPU_GEMM(0, 1, m, n, kk, alpha, A, lda, B, ldb, R(1), C, ldc);
}

/* ---- forward --------------------------------------------------------------------------------- */
/* One (b, h, query block [i0, i0+m)) of the forward. S: m x ldS workspace; rinv: m reals. */
static void fwd_block(const struct attn_geom *g, int64_t b, int64_t h, int64_t i0, int64_t m,
                      real *S, real *rinv) {
    const real *Q = g->q + b * g->qs0 + i0 * g->qs1 + h * g->D; /* (m, D) rows qs1 */
    const real *K = g->k + b * g->ks0 + h * g->D;               /* (Tk, D) rows ks1 */
    const real *V = g->v + b * g->vs0 + h * g->Dv;              /* (Tk, Dv) rows vs1 */
    real *O = g->o + b * g->os0 + i0 * g->os1 + h * g->Dv;      /* (m, Dv) rows os1 */
    real *L = g->lse + b * g->ls0 + h * g->ls1 + i0 * g->ls2;   /* (m) stride ls2 */
    /* causal: the block's last query sees keys [0, i0+m); later keys are masked for all rows */
    int64_t n = g->causal ? i0 + m : g->Tk;
    gemm_abt(m, n, g->D, g->scale, Q, g->qs1, K, g->ks1, S, g->ldS);
    for (int64_t r = 0; r < m; r++) {
        real *row = S + r * g->ldS;
        int64_t nr = g->causal ? i0 + r + 1 : n; /* keys visible to query i0+r (>= 1) */
        real mx = g->rows.max(row, nr);
        real l = g->rows.exp_sum(row, nr, mx); /* >= 1: the max term is exp(0) */
        for (int64_t j = nr; j < n; j++)
            row[j] = R(0); /* masked: P = 0 */
        L[r * g->ls2] = mx + LOG(l);
        rinv[r] = R(1) / l;
    }
    /* O = P V with the unnormalised P, then each row / l (Dv work per row instead of n) */
    CPU_GEMM(0, 0, m, g->Dv, n, R(1), S, g->ldS, V, g->vs1, R(0), O, g->os1);
    for (int64_t r = 0; r < m; r++) {
        real *orow = O + r * g->os1;
        for (int64_t d = 0; d < g->Dv; d++)
            orow[d] *= rinv[r];
    }
}

ti_status CPU_FN(attention_forward)(struct ti_kctx *k, const struct ti_attention_args *a) {
#if defined(TI_REAL_F32)
    int done = 0; /* the AVX-512 / AVX2 kernel first (attention_f32.c) */
    TI_TRY(ti_cpu_f32_attention(k, a, 0, &done));
    if (done) return TI_OK;
#endif
    struct attn_geom g;
    geom_init(&g, a);
    if (g.B == 0 || g.Tq == 0 || g.NH == 0 || g.Dv == 0) return TI_OK;
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, 0);
    int64_t per = g.bq * g.ldS + g.bq; /* S block + 1/l per row */
    per = (per + 15) / 16 * 16;
    real *ws = cpu_scratch(k, (size_t)nt * (size_t)per * sizeof(real));
    if (!ws) return TI_ERR_NOMEM;
    int64_t nitems = g.B * g.NH * g.nqb;
    int saved = blas_single_begin(nt);
#pragma omp parallel num_threads(nt)
    {
        real *S = ws + (int64_t)ti_thread_id() * per;
        real *rinv = S + g.bq * g.ldS;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitems; it++) {
            int64_t blk = it % g.nqb, bh = it / g.nqb;
            int64_t i0 = blk * g.bq;
            int64_t m = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
            fwd_block(&g, bh / g.NH, bh % g.NH, i0, m, S, rinv);
        }
    }
    blas_single_end(saved);
    return TI_OK;
}

/* ---- backward -------------------------------------------------------------------------------- */
/* Where one backward block adds its gradients: dQ rows of the block (or NULL), and the dK / dV
 * of its head (the real gradient or a thread's partial buffer; NULL when not wanted). */
struct bwd_dst {
    real *dq;
    int64_t dqs1;
    real *dk;
    int64_t dks1;
    real *dv;
    int64_t dvs1;
};

/* One (b, h, query block [i0, i0+m)) of the backward. P, dP: m x ldS workspace; Di: m reals.
 * dst->dq points at the block's first row; dst->dk / dst->dv at key 0 of the head. */
static void bwd_block(const struct attn_geom *g, int64_t b, int64_t h, int64_t i0, int64_t m,
                      real *P, real *dP, real *Di, const struct bwd_dst *dst) {
    const real *Q = g->q + b * g->qs0 + i0 * g->qs1 + h * g->D;        /* (m, D) */
    const real *K = g->k + b * g->ks0 + h * g->D;                      /* (Tk, D) */
    const real *V = g->v + b * g->vs0 + h * g->Dv;                     /* (Tk, Dv) */
    const real *O = g->o + b * g->os0 + i0 * g->os1 + h * g->Dv;       /* (m, Dv) */
    const real *dO = g->dout + b * g->dos0 + i0 * g->dos1 + h * g->Dv; /* (m, Dv) */
    const real *L = g->lse + b * g->ls0 + h * g->ls1 + i0 * g->ls2;    /* (m) */
    int64_t n = g->causal ? i0 + m : g->Tk;
    const int need_ds = dst->dq || dst->dk;
    /* S = scale Q K^T into P; with dq or dk wanted also D_i = dO_i . O_i and dP = dO V^T */
    gemm_abt(m, n, g->D, g->scale, Q, g->qs1, K, g->ks1, P, g->ldS);
    if (need_ds) {
        for (int64_t r = 0; r < m; r++) {
            const real *x = dO + r * g->dos1, *y = O + r * g->os1;
            real s = 0;
            for (int64_t d = 0; d < g->Dv; d++)
                s += x[d] * y[d];
            Di[r] = s;
        }
        gemm_abt(m, n, g->Dv, R(1), dO, g->dos1, V, g->vs1, dP, g->ldS);
    }
    /* P = exp(S - lse) and dS = P (dP - D) in one pass over each row; masked entries 0 */
    for (int64_t r = 0; r < m; r++) {
        real *row = P + r * g->ldS;
        int64_t nr = g->causal ? i0 + r + 1 : n;
        if (need_ds) {
            real *drow = dP + r * g->ldS;
            g->rows.exp_dsoftmax(row, drow, nr, L[r * g->ls2], Di[r]);
            for (int64_t j = nr; j < n; j++)
                drow[j] = R(0);
        } else {
            g->rows.exp(row, nr, L[r * g->ls2]);
        }
        for (int64_t j = nr; j < n; j++)
            row[j] = R(0);
    }
    /* dV (n, Dv) += P^T dO */
    if (dst->dv)
        CPU_GEMM(1, 0, n, g->Dv, m, R(1), P, g->ldS, dO, g->dos1, R(1), dst->dv, dst->dvs1);
    if (!need_ds) return;
    /* dQ (m, D) += scale dS K;  dK (n, D) += scale dS^T Q */
    if (dst->dq)
        CPU_GEMM(0, 0, m, g->D, n, g->scale, dP, g->ldS, K, g->ks1, R(1), dst->dq, dst->dqs1);
    if (dst->dk)
        CPU_GEMM(1, 0, n, g->D, m, g->scale, dP, g->ldS, Q, g->qs1, R(1), dst->dk, dst->dks1);
}

ti_status CPU_FN(attention_backward)(struct ti_kctx *k, const struct ti_attention_args *a) {
    real *dq = a->dq.data, *dk = a->dk.data, *dv = a->dv.data;
    if (!dq && !dk && !dv) return TI_OK;
#if defined(TI_REAL_F32)
    int done = 0; /* the AVX-512 / AVX2 kernel first (attention_f32.c) */
    TI_TRY(ti_cpu_f32_attention(k, a, 1, &done));
    if (done) return TI_OK;
#endif
    struct attn_geom g;
    geom_init(&g, a);
    if (g.B == 0 || g.Tq == 0 || g.NH == 0) return TI_OK;
    g.dout = a->dout.data;
    g.dos0 = a->dout.stride[0];
    g.dos1 = row_ld(&a->dout);
    const int64_t dqs0 = dq ? a->dq.stride[0] : 0, dqs1 = dq ? row_ld(&a->dq) : 0;
    const int64_t dks0 = dk ? a->dk.stride[0] : 0, dks1 = dk ? row_ld(&a->dk) : 0;
    const int64_t dvs0 = dv ? a->dv.stride[0] : 0, dvs1 = dv ? row_ld(&a->dv) : 0;
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, 0);
    int64_t BH = g.B * g.NH;
    /* whole heads per thread when that balances; else split each head's query blocks */
    int by_head = nt == 1 || (BH >= nt && (BH % nt == 0 || BH >= 4 * nt));
    int need_dp = dq || dk;
    int64_t per = g.bq * g.ldS * (need_dp ? 2 : 1) + g.bq;
    if (!by_head) per += (dk ? g.Tk * g.D : 0) + (dv ? g.Tk * g.Dv : 0);
    per = (per + 15) / 16 * 16;
    real *ws = cpu_scratch(k, (size_t)nt * (size_t)per * sizeof(real));
    if (!ws) return TI_ERR_NOMEM;
    /* per thread: P [, dP], Di, then (split heads only) the partial dK, dV */
    const int64_t part_off = g.bq * g.ldS * (need_dp ? 2 : 1) + g.bq;
    int saved = blas_single_begin(nt);
    if (by_head) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t bh = 0; bh < BH; bh++) {
            real *P = ws + (int64_t)ti_thread_id() * per;
            real *dP = need_dp ? P + g.bq * g.ldS : NULL;
            real *Di = P + g.bq * g.ldS * (need_dp ? 2 : 1);
            int64_t b = bh / g.NH, h = bh % g.NH;
            for (int64_t blk = 0; blk < g.nqb; blk++) {
                int64_t i0 = blk * g.bq;
                int64_t m = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                struct bwd_dst dst;
                dst.dq = dq ? dq + b * dqs0 + i0 * dqs1 + h * g.D : NULL;
                dst.dqs1 = dqs1;
                dst.dk = dk ? dk + b * dks0 + h * g.D : NULL;
                dst.dks1 = dks1;
                dst.dv = dv ? dv + b * dvs0 + h * g.Dv : NULL;
                dst.dvs1 = dvs1;
                bwd_block(&g, b, h, i0, m, P, dP, Di, &dst);
            }
        }
    } else {
        for (int64_t bh = 0; bh < BH; bh++) {
            int64_t b = bh / g.NH, h = bh % g.NH;
#pragma omp parallel num_threads(nt)
            {
                int tid = ti_thread_id();
                real *P = ws + (int64_t)tid * per;
                real *dP = need_dp ? P + g.bq * g.ldS : NULL;
                real *Di = P + g.bq * g.ldS * (need_dp ? 2 : 1);
                real *pk = P + part_off;               /* (Tk, D) partial dK */
                real *pv = pk + (dk ? g.Tk * g.D : 0); /* (Tk, Dv) partial dV */
                if (dk) memset(pk, 0, (size_t)(g.Tk * g.D) * sizeof(real));
                if (dv) memset(pv, 0, (size_t)(g.Tk * g.Dv) * sizeof(real));
                /* round-robin blocks: balanced under the causal mask, fixed per thread */
                for (int64_t blk = tid; blk < g.nqb; blk += nt) {
                    int64_t i0 = blk * g.bq;
                    int64_t m = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
                    struct bwd_dst dst;
                    dst.dq = dq ? dq + b * dqs0 + i0 * dqs1 + h * g.D : NULL;
                    dst.dqs1 = dqs1;
                    dst.dk = dk ? pk : NULL;
                    dst.dks1 = g.D;
                    dst.dv = dv ? pv : NULL;
                    dst.dvs1 = g.Dv;
                    bwd_block(&g, b, h, i0, m, P, dP, Di, &dst);
                }
#pragma omp barrier
                /* sum the partials into dK / dV, rows split across threads, threads in order */
                int64_t lo, hi;
                ti_split_range(g.Tk, nt, tid, &lo, &hi);
                for (int64_t j = lo; j < hi; j++) {
                    for (int t = 0; t < nt; t++) {
                        const real *tp = ws + (int64_t)t * per + part_off;
                        if (dk) {
                            real *drow = dk + b * dks0 + j * dks1 + h * g.D;
                            const real *src = tp + j * g.D;
                            for (int64_t d = 0; d < g.D; d++)
                                drow[d] += src[d];
                        }
                        if (dv) {
                            real *drow = dv + b * dvs0 + j * dvs1 + h * g.Dv;
                            const real *src = tp + (dk ? g.Tk * g.D : 0) + j * g.Dv;
                            for (int64_t d = 0; d < g.Dv; d++)
                                drow[d] += src[d];
                        }
                    }
                }
            }
        }
    }
    blas_single_end(saved);
    return TI_OK;
}
