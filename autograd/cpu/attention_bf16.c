/*
 * cpu/attention_bf16.c - ATTENTION forward and backward on bf16 tensors (the CPU backend's bf16
 * table, bf16.c), with bf16 GEMMs (AVX512-BF16 vdpbf16ps, f32 accumulation) and the softmax in
 * f32. Same contract as cpu/attention.c (ops.h, ti_attention_args): q, k, v, out, dout, dq, dk,
 * dv bf16, lse f32.
 *
 *   ti_status ti_cpu_bf16_attention(k, a, backward, &done);  done = 0: not taken (no
 *   AVX512-BF16, TI_ATTN_BF16=0, or a dtype it does not take); the caller then runs the f32
 *   kernel between conversions (bf16.c).
 *
 * Arithmetic, per (b, h, block of queries [i0, i0+m)):
 *   forward   S = scale Q K^T (bf16 x bf16 -> f32), per row mx = max S, e = exp(S - mx) in f32
 *             (AVX-512 exp), l = sum e (f32), lse = mx + log l; P = bf16(e) only as the GEMM
 *             operand; O = bf16((P V) / l).
 *   backward  S recomputed by the same GEMM, P = exp(S - lse) from the forward's lse (no second
 *             max/sum pass), dP = dO V^T, D_i = dO_i . O_i (f32), dS = P (dP - D_i) in f32;
 *             dV^T += dO^T P, dK^T += Q^T dS, dQ += dS K with bf16 operands (P, dS rounded once
 *             each) and f32 accumulation; keys in panels of 256 outside, query blocks inside, so
 *             a panel's sums stay in cache. dK, dV of a panel and dQ of a head are added into the
 *             bf16 gradients once (dq/dk/dv = bf16(old + scale * sum)).
 *
 * GEMM form: every product is C (f32, M x N) (+)= alpha A B with A bf16 row-major, pairs of
 * its K dimension adjacent (broadcast as one 32-bit word), and B packed "VNNI" style:
 * B32[p][j] = (B[2p][j], B[2p+1][j]), N padded to 16 (one zmm of f32 results). The packs:
 *   K^T [D/2][Tk][2] and V [Tk/2][Dv][2] per head (forward; packed once per head, not per block),
 *   V^T [Dv/2][Tk][2] and K [Tk/2][D][2] (backward); P and dS of a tile are written by the exp
 *   pass both row-major (A of P V, dS K) and as row pairs [m/2][n][2] (B of dO^T P, Q^T dS),
 *   so the transposed products need no transposes of the m x n matrices; dK and dV are kept
 *   transposed (D x 256 f32) per key panel and transposed once when added into dk / dv.
 * Odd D, Dv, m or n are zero-padded (the pads add zeros to the sums).
 *
 * Threads (OpenMP): forward over (b, h, block) items after a parallel packing pass; backward
 * over heads (one thread owns a head's dK, dV: no sharing, results independent of the thread
 * count; B * NH < threads leaves threads idle - the VAE's one head, which TI never
 * differentiates). dq, dk, dv may alias (fused qkv): each element is updated by one thread.
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <pthread.h> /* defines: pthread_once */
#include <stdlib.h>  /* defines: getenv */
#include <string.h>  /* defines: memcpy, memset, strcmp */

#include "../cpu_info.h"

/* AVX512-BF16 intrinsics: GCC 10+, Clang 9+ (older compilers build the conversion path only) */
#if defined(__x86_64__) &&                                                                         \
    ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 10))
#define AB_X86 1
#include <immintrin.h>

#include "exp_avx512.h"
#endif

/* Bytes of the per-thread f32 S block (BQ x Tk) the query block size aims for. */
#define AB_S_BYTES ((int64_t)1 << 20)
#define AB_BQ_MIN  32
#define AB_BQ_MAX  256
#define AB_MR      8 /* rows of a GEMM tile */

/* ---- availability ---------------------------------------------------------------------------- */
static pthread_once_t ab_once = PTHREAD_ONCE_INIT;
static int ab_cpu_ok;

static void ab_probe(void) {
#ifdef AB_X86
    struct ti_cpu_features f;
    ti_cpu_features(&f);
    ab_cpu_ok = f.avx512f && f.avx512bw && f.avx512vl && f.avx512_bf16 && f.fma;
#endif
}

/* Native bf16 attention usable here: AVX512-BF16 present and not turned off (TI_ATTN_BF16=0). */
static int ab_enabled(void) {
    pthread_once(&ab_once, ab_probe);
    const char *e = getenv("TI_ATTN_BF16");
    if (e && strcmp(e, "0") == 0) return 0;
    return ab_cpu_ok;
}

#ifdef AB_X86
#define AB_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define AB_INLINE AB_TARGET static inline __attribute__((always_inline))

static int64_t up(int64_t x, int64_t a) {
    return (x + a - 1) / a * a;
}

/* ---- GEMM ------------------------------------------------------------------------------------ */
/* One tile: C[i][16v..16v+15] for i < MR, v < NV:
 *   C = alpha * sum_{p < kp} A[i][2p..2p+1] . B32[p][16v..] (+ C when acc)
 * A bf16 rows lda elements; B32 pairs, rows ldb words; C f32 rows ldc (full vectors written). */
AB_INLINE void ab_tile(const int MR, const int NV, int64_t kp, const uint16_t *A, int64_t lda,
                       const uint32_t *B, int64_t ldb, float *C, int64_t ldc, float alpha,
                       int acc) {
    __m512 c[AB_MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            c[i][v] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; p++) {
        __m512i b[3];
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            b[v] = _mm512_loadu_si512((const void *)(B + p * ldb + 16 * v));
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            uint32_t w;
            memcpy(&w, A + i * lda + 2 * p, sizeof w);
            __m512i a = _mm512_set1_epi32((int)w);
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++)
                c[i][v] = _mm512_dpbf16_ps(c[i][v], (__m512bh)a, (__m512bh)b[v]);
        }
    }
    const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) {
            float *cp = C + i * ldc + 16 * v;
            __m512 r = _mm512_mul_ps(c[i][v], al);
            if (acc) r = _mm512_add_ps(r, _mm512_loadu_ps(cp));
            _mm512_storeu_ps(cp, r);
        }
}

typedef void (*ab_kfn)(int64_t kp, const uint16_t *A, int64_t lda, const uint32_t *B, int64_t ldb,
                       float *C, int64_t ldc, float alpha, int acc);

#define AB_KERNEL(MR, NV)                                                                          \
    AB_TARGET static void ab_k##MR##x##NV(int64_t kp, const uint16_t *A, int64_t lda,              \
                                          const uint32_t *B, int64_t ldb, float *C, int64_t ldc,   \
                                          float alpha, int acc) {                                  \
        ab_tile(MR, NV, kp, A, lda, B, ldb, C, ldc, alpha, acc);                                   \
    }
AB_KERNEL(8, 3)
AB_KERNEL(8, 2)
AB_KERNEL(8, 1)
AB_KERNEL(1, 3)
AB_KERNEL(1, 2)
AB_KERNEL(1, 1)

/* C (M x 16 nv, f32, ldc) = alpha A (M x 2 kp, bf16, lda) . B (kp pairs x 16 nv, ldb) (+ C).
 * Column blocks of 3 vectors outside (the B block stays in L1), row tiles of 8 inside. */
AB_TARGET static void ab_gemm(int64_t M, int64_t nv, int64_t kp, const uint16_t *A, int64_t lda,
                              const uint32_t *B, int64_t ldb, float *C, int64_t ldc, float alpha,
                              int acc) {
    static const ab_kfn k8[4] = {NULL, ab_k8x1, ab_k8x2, ab_k8x3};
    static const ab_kfn k1[4] = {NULL, ab_k1x1, ab_k1x2, ab_k1x3};
    for (int64_t v0 = 0; v0 < nv; v0 += 3) {
        int w = nv - v0 < 3 ? (int)(nv - v0) : 3;
        const uint32_t *Bv = B + 16 * v0;
        float *Cv = C + 16 * v0;
        int64_t i = 0;
        for (; i + AB_MR <= M; i += AB_MR)
            k8[w](kp, A + i * lda, lda, Bv, ldb, Cv + i * ldc, ldc, alpha, acc);
        for (; i < M; i++)
            k1[w](kp, A + i * lda, lda, Bv, ldb, Cv + i * ldc, ldc, alpha, acc);
    }
}

/* ---- f32 <-> bf16, exp ----------------------------------------------------------------------- */
static inline float ab_bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

AB_INLINE __m256i ab_f2bf16(__m512 x) { /* round to nearest even, NaN stays NaN */
    return (__m256i)_mm512_cvtneps_pbh(x);
}

static inline uint16_t ab_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* lanes j0 + l < lim */
AB_INLINE __mmask16 ab_mask(int64_t j0, int64_t lim) {
    int64_t k = lim - j0;
    return k >= 16 ? (__mmask16)0xffff : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1u);
}

/* ---- packing --------------------------------------------------------------------------------- */
/* X rows (T x W, row stride xs, bf16) -> [ceil(W/2)][ldo] words, out[p][j] = (X[j][2p],
 * X[j][2p+1]); columns T..ldo and the odd W's second half zero. */
static void pack_t(const uint16_t *X, int64_t xs, int64_t T, int64_t W, uint32_t *out,
                   int64_t ldo) {
    for (int64_t p = 0; p < (W + 1) / 2; p++) {
        uint32_t *o = out + p * ldo;
        int two = 2 * p + 1 < W;
        for (int64_t j = 0; j < T; j++) {
            const uint16_t *x = X + j * xs + 2 * p;
            o[j] = (uint32_t)x[0] | (two ? (uint32_t)x[1] << 16 : 0u);
        }
        for (int64_t j = T; j < ldo; j++)
            o[j] = 0;
    }
}

/* X rows (T x W, row stride xs) -> [ceil(T/2)][ldo] words, out[p][d] = (X[2p][d], X[2p+1][d]);
 * columns W..ldo and an odd T's last second half zero. */
static void pack_n(const uint16_t *X, int64_t xs, int64_t T, int64_t W, uint32_t *out,
                   int64_t ldo) {
    for (int64_t p = 0; p < (T + 1) / 2; p++) {
        uint32_t *o = out + p * ldo;
        const uint16_t *x0 = X + 2 * p * xs, *x1 = x0 + xs;
        int two = 2 * p + 1 < T;
        for (int64_t d = 0; d < W; d++)
            o[d] = (uint32_t)x0[d] | (two ? (uint32_t)x1[d] << 16 : 0u);
        for (int64_t d = W; d < ldo; d++)
            o[d] = 0;
    }
}

/* X rows (T x W, stride xs) -> out (T x ldo) bf16, columns W..ldo zero. */
static void copy_pad(const uint16_t *X, int64_t xs, int64_t T, int64_t W, uint16_t *out,
                     int64_t ldo) {
    for (int64_t j = 0; j < T; j++) {
        memcpy(out + j * ldo, X + j * xs, (size_t)W * sizeof *out);
        for (int64_t d = W; d < ldo; d++)
            out[j * ldo + d] = 0;
    }
}

/* X rows (T x W, stride xs) -> out (W x ldo) bf16 (the transpose), columns T..ldo zero. */
static void transpose_pad(const uint16_t *X, int64_t xs, int64_t T, int64_t W, uint16_t *out,
                          int64_t ldo) {
    for (int64_t d = 0; d < W; d++) {
        uint16_t *o = out + d * ldo;
        for (int64_t j = 0; j < T; j++)
            o[j] = X[j * xs + d];
        for (int64_t j = T; j < ldo; j++)
            o[j] = 0;
    }
}

/* ---- geometry -------------------------------------------------------------------------------- */
struct ab_geom {
    int64_t B, Tq, Tk, NH, D, Dv;
    int64_t D2, Dv2; /* D, Dv rounded up to even (K dims of the GEMMs) */
    int64_t Dp, Dvp; /* D, Dv rounded up to 16 (N dims) */
    int64_t ldK;     /* Tk rounded up to 16: S rows, K^T / V^T pack rows */
    int64_t bq, nqb; /* query block rows, number of blocks */
    int64_t bq2;     /* bq rounded up to even */
    const uint16_t *q, *k, *v, *o, *dout;
    int64_t qs0, qs1, ks0, ks1, vs0, vs1, os0, os1, dos0, dos1;
    float *lse;
    int64_t ls0, ls1, ls2;
    float scale;
    int causal;
};

static int64_t row_ld(const struct ti_tensor *t) {
    return t->shape[1] > 1 ? t->stride[1] : t->shape[2];
}

static void geom_init(struct ab_geom *g, const struct ti_attention_args *a) {
    memset(g, 0, sizeof *g);
    g->B = a->q.shape[0];
    g->Tq = a->q.shape[1];
    g->Tk = a->k.shape[1];
    g->NH = a->heads;
    g->D = a->q.shape[2] / a->heads;
    g->Dv = a->v.shape[2] / a->heads;
    g->D2 = up(g->D, 2);
    g->Dv2 = up(g->Dv, 2);
    g->Dp = up(g->D, 16);
    g->Dvp = up(g->Dv, 16);
    g->ldK = up(g->Tk > 0 ? g->Tk : 1, 16);
    int64_t bq = AB_S_BYTES / (4 * g->ldK);
    bq = bq < AB_BQ_MIN ? AB_BQ_MIN : (bq > AB_BQ_MAX ? AB_BQ_MAX : bq);
    bq = bq / AB_MR * AB_MR;
    if (bq > g->Tq) bq = g->Tq > 0 ? g->Tq : 1;
    g->bq = bq;
    g->bq2 = up(bq, 2);
    g->nqb = (g->Tq + bq - 1) / bq;
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
    g->scale = (float)a->scale;
    g->causal = a->causal;
}

/* ---- forward --------------------------------------------------------------------------------- */
/* Rows of S (m x n, ldS): per row mx, e = exp(S - mx) (0 past the causal limit), P = bf16(e)
 * (row-major, ldP, zero up to ldP), lse, 1/l. */
AB_TARGET static void fwd_rows(const struct ab_geom *g, const float *S, int64_t m, int64_t n,
                               int64_t i0, uint16_t *P, int64_t ldP, float *L, float *rinv) {
    for (int64_t r = 0; r < m; r++) {
        const float *s = S + r * g->ldK;
        uint16_t *p = P + r * ldP;
        int64_t nr = g->causal ? i0 + r + 1 : n;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int64_t j = 0; j < nr; j += 16)
            mx = _mm512_max_ps(
                mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), ab_mask(j, nr), s + j));
        float m1 = _mm512_reduce_max_ps(mx);
        __m512 vm = _mm512_set1_ps(m1), sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < ldP; j += 16) {
            __mmask16 k = ab_mask(j, nr);
            __m512 e = _mm512_maskz_mov_ps(
                k, ti_exp16_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm)));
            sum = _mm512_add_ps(sum, e);
            _mm256_storeu_si256((__m256i *)(p + j), ab_f2bf16(e));
        }
        float l = _mm512_reduce_add_ps(sum); /* >= 1: the max term is exp(0) */
        L[r * g->ls2] = m1 + logf(l);
        rinv[r] = 1.0f / l;
    }
}

struct ab_fwd_ws {
    float *S, *C, *rinv;
    uint16_t *Qb, *P;
};

/* One (b, h, block [i0, i0+m)). Kt: K^T pack of the head; Vn: V pack of the head. */
AB_TARGET static void fwd_block(const struct ab_geom *g, int64_t b, int64_t h, int64_t i0,
                                int64_t m, const uint32_t *Kt, const uint32_t *Vn,
                                const struct ab_fwd_ws *w) {
    const uint16_t *Q = g->q + b * g->qs0 + i0 * g->qs1 + h * g->D;
    uint16_t *O = (uint16_t *)g->o + b * g->os0 + i0 * g->os1 + h * g->Dv;
    float *L = g->lse + b * g->ls0 + h * g->ls1 + i0 * g->ls2;
    int64_t n = g->causal ? i0 + m : g->Tk;
    int64_t ldP = up(n, 16);
    copy_pad(Q, g->qs1, m, g->D, w->Qb, g->D2);
    ab_gemm(m, ldP / 16, g->D2 / 2, w->Qb, g->D2, Kt, g->ldK, w->S, g->ldK, g->scale, 0);
    fwd_rows(g, w->S, m, n, i0, w->P, ldP, L, w->rinv);
    /* O = (P V) / l: K dim n (pairs; P zero-padded, V's odd last row zero) */
    ab_gemm(m, g->Dvp / 16, (n + 1) / 2, w->P, ldP, Vn, g->Dvp, w->C, g->Dvp, 1.0f, 0);
    for (int64_t r = 0; r < m; r++) {
        const float *c = w->C + r * g->Dvp;
        uint16_t *o = O + r * g->os1;
        for (int64_t d = 0; d < g->Dv; d++)
            o[d] = ab_f2bf(c[d] * w->rinv[r]);
    }
}

static ti_status ab_forward(struct ti_kctx *k, const struct ti_attention_args *a) {
    struct ab_geom g;
    geom_init(&g, a);
    if (g.B == 0 || g.Tq == 0 || g.NH == 0 || g.Dv == 0) return TI_OK;
    const int64_t BH = g.B * g.NH, nitems = BH * g.nqb;
    /* packs of every head: K^T [D2/2][ldK], V [ceil(Tk/2)][Dvp] */
    const int64_t kt_words = g.D2 / 2 * g.ldK, vn_words = (g.Tk + 1) / 2 * g.Dvp + 16;
    const int64_t head_words = up(kt_words + vn_words, 16);
    uint32_t *packs = cpu_scratch(k, (size_t)(BH * head_words) * 4);
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, nitems);
    /* per thread: S (bq x ldK f32), C (bq x Dvp f32), rinv, Qb (bq x D2 bf16), P (bq x ldK) */
    int64_t per = g.bq * g.ldK * 4 + g.bq * g.Dvp * 4 + up(g.bq, 16) * 4 + up(g.bq * g.D2, 32) * 2 +
                  g.bq * g.ldK * 2;
    per = up(per, 64);
    char *ws = cpu_scratch(k, (size_t)(nt * per));
    if (!packs || !ws)
        return ti_error(k->err, TI_ERR_NOMEM, "attention bf16: no scratch for the workspace");
    int pnt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, BH);
#pragma omp parallel for num_threads(pnt) schedule(static)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / g.NH, h = bh % g.NH;
        uint32_t *Kt = packs + bh * head_words, *Vn = Kt + kt_words;
        pack_t(g.k + b * g.ks0 + h * g.D, g.ks1, g.Tk, g.D, Kt, g.ldK);
        pack_n(g.v + b * g.vs0 + h * g.Dv, g.vs1, g.Tk, g.Dv, Vn, g.Dvp);
    }
#pragma omp parallel num_threads(nt)
    {
        char *base = ws + (int64_t)ti_thread_id() * per;
        struct ab_fwd_ws w;
        w.S = (float *)base;
        w.C = w.S + g.bq * g.ldK;
        w.rinv = w.C + g.bq * g.Dvp;
        w.Qb = (uint16_t *)(w.rinv + up(g.bq, 16));
        w.P = w.Qb + up(g.bq * g.D2, 32);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitems; it++) {
            int64_t blk = it % g.nqb, bh = it / g.nqb;
            int64_t i0 = blk * g.bq;
            int64_t m = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
            const uint32_t *Kt = packs + bh * head_words;
            fwd_block(&g, bh / g.NH, bh % g.NH, i0, m, Kt, Kt + kt_words, &w);
        }
    }
    return TI_OK;
}

/* ---- backward -------------------------------------------------------------------------------- */
/* Keys in panels of AB_NK, query blocks inside (the order of FlashAttention-2's backward): a
 * panel's dK^T, dV^T (D x AB_NK f32) and its S, dP, P, dS blocks stay in L2 while every query
 * block passes, instead of sweeping D x Tk sums per block. dQ accumulates in f32 over the panels.
 */
#define AB_NK 256

struct ab_bwd_ws {
    uint32_t *Kt, *Vt, *Kn; /* K^T [D2/2][ldK], V^T [Dv2/2][ldK], K [ceil(Tk/2)][Dp] */
    uint16_t *Qb, *dOb;     /* the head's Q (Tq x D2), dO (Tq x Dv2) */
    uint16_t *Qt, *dOt;     /* their transposes (D x Tq2, Dv x Tq2) */
    float *dQ, *Di;         /* Tq x Dp f32 sums; D_i = dO_i . O_i (Tq) */
    float *dKt, *dVt;       /* a panel's D x AB_NK, Dv x AB_NK */
    float *S, *dP;          /* bq x AB_NK */
    uint16_t *dSr;          /* bq x AB_NK */
    uint32_t *Pi, *dSi;     /* bq2/2 x AB_NK */
};

/* The exp pass of a (query block, key panel), rows in pairs: P = exp(S - lse) (0 for keys a
 * row does not see: past the panel or the causal limit) and, with dP, dS = P (dP - D_i);
 * written as row pairs (Pi, dSi) and dS row-major (dSr), AB_NK per row, np rounded to 16. */
AB_TARGET static void bwd_rows(const struct ab_geom *g, const struct ab_bwd_ws *w, int64_t m,
                               int64_t i0, int64_t j0, int64_t np, const float *L, int need_ds) {
    const int64_t ld = AB_NK, npp = up(np, 16);
    const __m512i ilv = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t r = 0; r < m; r += 2) {
        int two = r + 1 < m;
        int64_t v0 = np, v1 = two ? np : 0; /* keys of the panel rows r, r + 1 see */
        if (g->causal) {                    /* query i sees keys j <= i */
            v0 = i0 + r + 1 - j0;
            v0 = v0 < 0 ? 0 : (v0 > np ? np : v0);
            v1 = i0 + r + 2 - j0;
            v1 = !two || v1 < 0 ? 0 : (v1 > np ? np : v1);
        }
        __m512 l0 = _mm512_set1_ps(L[r * g->ls2]);
        __m512 l1 = _mm512_set1_ps(two ? L[(r + 1) * g->ls2] : 0.0f);
        __m512 d0 = _mm512_set1_ps(need_ds ? w->Di[i0 + r] : 0.0f);
        __m512 d1 = _mm512_set1_ps(need_ds && two ? w->Di[i0 + r + 1] : 0.0f);
        const float *s0 = w->S + r * ld, *s1 = s0 + ld;
        const float *q0 = need_ds ? w->dP + r * ld : NULL, *q1 = q0 ? q0 + ld : NULL;
        uint32_t *pi = w->Pi + r / 2 * ld, *si = w->dSi + r / 2 * ld;
        uint16_t *sr0 = w->dSr + r * ld, *sr1 = sr0 + ld;
        for (int64_t j = 0; j < npp; j += 16) {
            __mmask16 k0 = ab_mask(j, v0), k1 = ab_mask(j, v1);
            __m512 p0 = _mm512_maskz_mov_ps(
                k0, ti_exp16_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k0, s0 + j), l0)));
            __m512 p1 = _mm512_maskz_mov_ps(
                k1, ti_exp16_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k1, s1 + j), l1)));
            __m512i pp = _mm512_permutexvar_epi16(ilv, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
            _mm512_storeu_si512((void *)(pi + j), pp);
            if (!need_ds) continue;
            __m512 g0 = _mm512_mul_ps(p0, _mm512_sub_ps(_mm512_maskz_loadu_ps(k0, q0 + j), d0));
            __m512 g1 = _mm512_mul_ps(p1, _mm512_sub_ps(_mm512_maskz_loadu_ps(k1, q1 + j), d1));
            __m512i gg = (__m512i)_mm512_cvtne2ps_pbh(g1, g0);
            _mm256_storeu_si256((__m256i *)(sr0 + j), _mm512_castsi512_si256(gg));
            if (two) _mm256_storeu_si256((__m256i *)(sr1 + j), _mm512_extracti64x4_epi64(gg, 1));
            _mm512_storeu_si512((void *)(si + j), _mm512_permutexvar_epi16(ilv, gg));
        }
    }
}

struct ab_bwd_dst {
    uint16_t *dq, *dk, *dv;
    int64_t dqs0, dqs1, dks0, dks1, dvs0, dvs1;
};

/* One (query block [i0, i0+m), key panel [j0, j0+np)) of head h: dV^T, dK^T of the panel and
 * dQ of the block accumulated in w. */
AB_TARGET static void bwd_tile(const struct ab_geom *g, int64_t h, int64_t i0, int64_t m,
                               int64_t j0, int64_t np, const float *Lh, const struct ab_bwd_ws *w,
                               const struct ab_bwd_dst *t) {
    const int64_t nv = up(np, 16) / 16, m2 = up(m, 2);
    const int need_ds = t->dq || t->dk;
    ab_gemm(m, nv, g->D2 / 2, w->Qb + i0 * g->D2, g->D2, w->Kt + j0, g->ldK, w->S, AB_NK, g->scale,
            0);
    if (need_ds)
        ab_gemm(m, nv, g->Dv2 / 2, w->dOb + i0 * g->Dv2, g->Dv2, w->Vt + j0, g->ldK, w->dP, AB_NK,
                1.0f, 0);
    bwd_rows(g, w, m, i0, j0, np, Lh + i0 * g->ls2, need_ds);
    const int64_t tq2 = up(g->Tq, 2);
    /* dV^T (Dv x np) += dO^T P: K dim m (pairs of rows) */
    if (t->dv) ab_gemm(g->Dv, nv, m2 / 2, w->dOt + i0, tq2, w->Pi, AB_NK, w->dVt, AB_NK, 1.0f, 1);
    /* dK^T (D x np) += Q^T dS (scale applied when added into dk) */
    if (t->dk) ab_gemm(g->D, nv, m2 / 2, w->Qt + i0, tq2, w->dSi, AB_NK, w->dKt, AB_NK, 1.0f, 1);
    /* dQ (m x D) += dS K over the panel's keys (pairs; dS zero past the visible keys) */
    if (t->dq)
        ab_gemm(m, g->Dp / 16, (np + 1) / 2, w->dSr, AB_NK, w->Kn + j0 / 2 * g->Dp, g->Dp,
                w->dQ + i0 * g->Dp, g->Dp, 1.0f, 1);
}

static ti_status ab_backward(struct ti_kctx *k, const struct ti_attention_args *a) {
    uint16_t *dq = a->dq.data, *dk = a->dk.data, *dv = a->dv.data;
    if (!dq && !dk && !dv) return TI_OK;
    struct ab_geom g;
    geom_init(&g, a);
    if (g.B == 0 || g.Tq == 0 || g.NH == 0) return TI_OK;
    g.dout = a->dout.data;
    g.dos0 = a->dout.stride[0];
    g.dos1 = row_ld(&a->dout);
    struct ab_bwd_dst t;
    memset(&t, 0, sizeof t);
    t.dq = dq;
    t.dk = dk;
    t.dv = dv;
    if (dq) t.dqs0 = a->dq.stride[0], t.dqs1 = row_ld(&a->dq);
    if (dk) t.dks0 = a->dk.stride[0], t.dks1 = row_ld(&a->dk);
    if (dv) t.dvs0 = a->dv.stride[0], t.dvs1 = row_ld(&a->dv);
    const int64_t BH = g.B * g.NH, ldK = g.ldK, bq = g.bq, bq2 = g.bq2, Tq = g.Tq;
    const int64_t tq2 = up(Tq, 2), TkP = (g.Tk + 1) / 2;
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, BH);
    /* per thread, in bytes, each piece rounded to 64 */
    const int64_t sz[] = {
        g.D2 / 2 * ldK * 4,  g.Dv2 / 2 * ldK * 4,
        TkP * g.Dp * 4 + 64,                      /* Kt, Vt, Kn */
        Tq * g.D2 * 2,       Tq * g.Dv2 * 2,      /* Qb, dOb */
        g.D * tq2 * 2,       g.Dv * tq2 * 2,      /* Qt, dOt */
        Tq * g.Dp * 4,       Tq * 4,              /* dQ, Di */
        g.D * AB_NK * 4,     g.Dv * AB_NK * 4,    /* dKt, dVt */
        bq * AB_NK * 4,      bq * AB_NK * 4,      /* S, dP */
        bq * AB_NK * 2,                           /* dSr */
        bq2 / 2 * AB_NK * 4, bq2 / 2 * AB_NK * 4, /* Pi, dSi */
    };
    const int npieces = (int)(sizeof sz / sizeof *sz);
    int64_t per = 0;
    for (int i = 0; i < npieces; i++)
        per += up(sz[i], 64);
    char *ws = cpu_scratch(k, (size_t)(nt * per));
    if (!ws) return ti_error(k->err, TI_ERR_NOMEM, "attention bf16: no scratch for the workspace");
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        char *base = ws + (int64_t)ti_thread_id() * per;
        void *pc[16];
        for (int i = 0; i < npieces; i++) {
            pc[i] = base;
            base += up(sz[i], 64);
        }
        struct ab_bwd_ws w;
        w.Kt = pc[0];
        w.Vt = pc[1];
        w.Kn = pc[2];
        w.Qb = pc[3];
        w.dOb = pc[4];
        w.Qt = pc[5];
        w.dOt = pc[6];
        w.dQ = pc[7];
        w.Di = pc[8];
        w.dKt = pc[9];
        w.dVt = pc[10];
        w.S = pc[11];
        w.dP = pc[12];
        w.dSr = pc[13];
        w.Pi = pc[14];
        w.dSi = pc[15];
        int64_t b = bh / g.NH, h = bh % g.NH;
        const uint16_t *K = g.k + b * g.ks0 + h * g.D, *V = g.v + b * g.vs0 + h * g.Dv;
        const uint16_t *Q = g.q + b * g.qs0 + h * g.D, *O = g.o + b * g.os0 + h * g.Dv;
        const uint16_t *dO = g.dout + b * g.dos0 + h * g.Dv;
        const float *Lh = g.lse + b * g.ls0 + h * g.ls1;
        const int need_ds = dq || dk;
        pack_t(K, g.ks1, g.Tk, g.D, w.Kt, ldK);
        copy_pad(Q, g.qs1, Tq, g.D, w.Qb, g.D2);
        if (need_ds) {
            pack_t(V, g.vs1, g.Tk, g.Dv, w.Vt, ldK);
            copy_pad(dO, g.dos1, Tq, g.Dv, w.dOb, g.Dv2);
            for (int64_t r = 0; r < Tq; r++) {
                const uint16_t *x = dO + r * g.dos1, *y = O + r * g.os1;
                float sum = 0;
                for (int64_t d = 0; d < g.Dv; d++)
                    sum += ab_bf2f(x[d]) * ab_bf2f(y[d]);
                w.Di[r] = sum;
            }
        }
        if (dq) {
            pack_n(K, g.ks1, g.Tk, g.D, w.Kn, g.Dp);
            memset(w.dQ, 0, (size_t)(Tq * g.Dp) * 4);
        }
        if (dk) transpose_pad(Q, g.qs1, Tq, g.D, w.Qt, tq2);
        if (dv) transpose_pad(dO, g.dos1, Tq, g.Dv, w.dOt, tq2);
        for (int64_t j0 = 0; j0 < g.Tk; j0 += AB_NK) {
            int64_t np = g.Tk - j0 < AB_NK ? g.Tk - j0 : AB_NK;
            if (dk) memset(w.dKt, 0, (size_t)(g.D * AB_NK) * 4);
            if (dv) memset(w.dVt, 0, (size_t)(g.Dv * AB_NK) * 4);
            /* causal: queries before j0 see none of the panel's keys */
            int64_t first = g.causal ? j0 / bq : 0;
            for (int64_t blk = first; blk < g.nqb; blk++) {
                int64_t i0 = blk * bq;
                int64_t m = Tq - i0 < bq ? Tq - i0 : bq;
                bwd_tile(&g, h, i0, m, j0, np, Lh, &w, &t);
            }
            /* dk += scale dK^T^T, dv += dV^T^T over the panel's keys, rounded once */
            for (int64_t j = 0; j < np; j++) {
                if (dk) {
                    uint16_t *r = dk + b * t.dks0 + (j0 + j) * t.dks1 + h * g.D;
                    for (int64_t d = 0; d < g.D; d++)
                        r[d] = ab_f2bf(ab_bf2f(r[d]) + g.scale * w.dKt[d * AB_NK + j]);
                }
                if (dv) {
                    uint16_t *r = dv + b * t.dvs0 + (j0 + j) * t.dvs1 + h * g.Dv;
                    for (int64_t d = 0; d < g.Dv; d++)
                        r[d] = ab_f2bf(ab_bf2f(r[d]) + w.dVt[d * AB_NK + j]);
                }
            }
        }
        if (dq) /* dq += scale dQ, rounded once */
            for (int64_t r = 0; r < Tq; r++) {
                uint16_t *o = dq + b * t.dqs0 + r * t.dqs1 + h * g.D;
                const float *c = w.dQ + r * g.Dp;
                for (int64_t d = 0; d < g.D; d++)
                    o[d] = ab_f2bf(ab_bf2f(o[d]) + g.scale * c[d]);
            }
    }
    return TI_OK;
}
#endif /* AB_X86 */

/* ---- entry ----------------------------------------------------------------------------------- */
static int is_bf16(const struct ti_tensor *t) {
    return !t->data || t->dtype == TI_DTYPE_BF16;
}

ti_status ti_cpu_bf16_attention(struct ti_kctx *k, const struct ti_attention_args *a, int backward,
                                int *done) {
    *done = 0;
    if (!ab_enabled()) return TI_OK;
    if (!is_bf16(&a->q) || !is_bf16(&a->k) || !is_bf16(&a->v) || !is_bf16(&a->out) ||
        !a->out.data || !a->lse.data || a->lse.dtype != TI_DTYPE_F32)
        return TI_OK;
    if (backward && (!is_bf16(&a->dout) || !a->dout.data || !is_bf16(&a->dq) || !is_bf16(&a->dk) ||
                     !is_bf16(&a->dv)))
        return TI_OK;
#ifdef AB_X86
    *done = 1;
    return backward ? ab_backward(k, a) : ab_forward(k, a);
#else
    (void)k;
    return TI_OK;
#endif
}
