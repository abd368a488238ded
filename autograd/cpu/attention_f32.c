/*
 * cpu/attention_f32.c - ATTENTION forward and backward on f32 tensors with its own GEMM
 * micro-kernels (AVX-512 or AVX2 + FMA, picked at run time from the CPU's features; the
 * variants are attention_f32_simd.h compiled twice). Same contract as cpu/attention.c (ops.h,
 * ti_attention_args), which calls it first:
 *
 *   ti_status ti_cpu_f32_attention(k, a, backward, &done);  done = 0: not taken (neither
 *   instruction set, TI_ATTN_F32=0, a shape it does not take): attention.c's SGEMM path runs.
 *   TI_ATTN_F32=avx2 forces the AVX2 variant on an AVX-512 CPU (tests, measurements).
 *
 * Arithmetic (f32 throughout; the algorithm of attention_bf16.c without the roundings):
 *   forward   per (b, h, block of queries [i0, i0+m)): S = scale Q K^T, per row mx = max S,
 *             e = exp(S - mx) (vector exp: Cody-Waite + Cephes' polynomial), l = sum e,
 *             lse = mx + log l, O = (e V) / l. K^T (D x Tk) and V (Tk x Dv rounded up to a
 *             vector) are packed once per head; Q is read in place.
 *   backward  per head, keys in panels of AF_NK outside and query blocks inside (a panel's
 *             dK^T, dV^T sums and the S, dP tiles stay in L2): S recomputed, P = exp(S - lse)
 *             (no second max/sum pass), dP = dO V^T, D_i = dO_i . O_i, dS = P (dP - D_i);
 *             dV^T += dO^T P, dK^T += Q^T dS (Q^T, dO^T transposed once per head, so P and dS
 *             are the row-major B operands as computed), dQ += dS K; dk, dv get a panel's sums
 *             once, dq the head's once at the end (dq/dk/dv += scale * ...).
 * GEMM form: every product is C (M x VW nv) (+)= alpha A B with A row-major (one element
 * broadcast per FMA row), B row-major with vector-padded rows; tiles of 8 x 3 vectors (AVX-512)
 * or 4 x 3 (AVX2), 1-row tiles for the rest. Odd D, Dv, m and key counts are zero-padded.
 *
 * Threads (OpenMP): forward over (b, h, block) items after a parallel packing pass; backward
 * one thread per head (no sharing: results independent of the thread count). When B * NH
 * does not keep the threads busy (the VAE's one head) the backward is not taken and
 * attention.c's split-head path runs. dq, dk, dv may alias (fused qkv): each element is
 * updated by one thread.
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <pthread.h> /* defines: pthread_once */
#include <stdlib.h>  /* defines: getenv */
#include <string.h>  /* defines: memcpy, memset, strcmp */

#include "../cpu_info.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define AF_X86 1
#include <immintrin.h>

#include "exp_avx512.h"
#endif

/* Bytes of the per-thread S block (BQ x Tk) the forward's query block size aims for (L2). */
#define AF_S_BYTES ((int64_t)1 << 20)
#define AF_BQ_MIN  32
#define AF_BQ_MAX  256
#define AF_NK      256 /* keys per backward panel */
#define AF_LDP     272 /* row stride of the panel tiles: 17 cache lines (see af_ld) */

static int64_t af_up(int64_t x, int64_t a) {
    return (x + a - 1) / a * a;
}

/* Row stride (floats) for rows of n: n rounded up to 16 floats (a 64-byte line), plus one line
 * when that is an even number of lines, so that rows 2^k lines apart (Tk = 4096: 16 KiB) do not
 * all fall into the same L1 sets: the GEMM tiles read 8 rows of A and kk rows of B at once.
 * Measured at 4096 x 4096, 8 x 40 heads, 1 thread: see docs/PERF.md. */
static int64_t af_ld(int64_t n) {
    int64_t x = af_up(n > 0 ? n : 1, 16);
    return x / 16 % 2 ? x : x + 16;
}

/* ---- geometry -------------------------------------------------------------------------------- */
struct af_geom {
    int64_t B, Tq, Tk, NH, D, Dv;
    int64_t ldK;     /* af_ld(Tk): S rows, K^T / V^T rows */
    int64_t bq, nqb; /* query block rows, number of blocks */
    const float *q, *k, *v, *dout;
    float *o, *lse;
    int64_t qs0, qs1, ks0, ks1, vs0, vs1, os0, os1, dos0, dos1, ls0, ls1, ls2;
    float scale;
    int causal;
};

struct af_bwd_dst {
    float *dq, *dk, *dv;
    int64_t dqs0, dqs1, dks0, dks1, dvs0, dvs1;
};

static int64_t row_ld(const struct ti_tensor *t) {
    return t->shape[1] > 1 ? t->stride[1] : t->shape[2];
}

static void geom_init(struct af_geom *g, const struct ti_attention_args *a, int64_t bq_mult) {
    memset(g, 0, sizeof *g);
    g->B = a->q.shape[0];
    g->Tq = a->q.shape[1];
    g->Tk = a->k.shape[1];
    g->NH = a->heads;
    g->D = a->q.shape[2] / a->heads;
    g->Dv = a->v.shape[2] / a->heads;
    g->ldK = af_ld(g->Tk);
    int64_t bq = AF_S_BYTES / (4 * g->ldK);
    bq = bq < AF_BQ_MIN ? AF_BQ_MIN : (bq > AF_BQ_MAX ? AF_BQ_MAX : bq);
    bq = bq / bq_mult * bq_mult;
    if (bq > g->Tq) bq = g->Tq > 0 ? g->Tq : 1;
    g->bq = bq;
    g->nqb = (g->Tq + bq - 1) / bq;
    g->q = a->q.data;
    g->k = a->k.data;
    g->v = a->v.data;
    g->o = a->out.data;
    g->lse = a->lse.data;
    g->qs0 = a->q.stride[0];
    g->qs1 = row_ld(&a->q);
    g->ks0 = a->k.stride[0];
    g->ks1 = row_ld(&a->k);
    g->vs0 = a->v.stride[0];
    g->vs1 = row_ld(&a->v);
    g->os0 = a->out.stride[0];
    g->os1 = row_ld(&a->out);
    g->ls0 = a->lse.stride[0];
    g->ls1 = a->lse.stride[1];
    g->ls2 = a->lse.stride[2];
    g->scale = (float)a->scale;
    g->causal = a->causal;
}

#ifdef AF_X86
/* X rows (T x W, row stride xs) -> out (W x ldo), the transpose; columns T..ldo zero. */
static void af_transpose(const float *X, int64_t xs, int64_t T, int64_t W, float *out,
                         int64_t ldo) {
    for (int64_t d = 0; d < W; d++) {
        float *o = out + d * ldo;
        for (int64_t j = 0; j < T; j++)
            o[j] = X[j * xs + d];
        for (int64_t j = T; j < ldo; j++)
            o[j] = 0;
    }
}

/* X rows (T x W, stride xs) -> out (T x ldo), columns W..ldo zero. */
static void af_copy_pad(const float *X, int64_t xs, int64_t T, int64_t W, float *out, int64_t ldo) {
    for (int64_t j = 0; j < T; j++) {
        memcpy(out + j * ldo, X + j * xs, (size_t)W * sizeof *out);
        for (int64_t d = W; d < ldo; d++)
            out[j * ldo + d] = 0;
    }
}

/* ---- AVX-512 variant ------------------------------------------------------------------------- */
#define AF_TARGET __attribute__((target("avx512f,avx512dq,fma")))

AF_TARGET static inline __attribute__((always_inline)) __mmask16 af_mask16(int64_t j, int64_t lim) {
    int64_t k = lim - j;
    return k >= 16 ? (__mmask16)0xffff : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1u);
}

#define AF(f)             af512_##f
#define AF_VW             16
#define AF_MR             8
#define AF_V              __m512
#define AF_M              __mmask16
#define AF_ZERO()         _mm512_setzero_ps()
#define AF_SET1(x)        _mm512_set1_ps(x)
#define AF_LOAD(p)        _mm512_loadu_ps(p)
#define AF_STORE(p, v)    _mm512_storeu_ps((p), (v))
#define AF_FMA(a, b, c)   _mm512_fmadd_ps((a), (b), (c))
#define AF_MUL(a, b)      _mm512_mul_ps((a), (b))
#define AF_ADD(a, b)      _mm512_add_ps((a), (b))
#define AF_SUB(a, b)      _mm512_sub_ps((a), (b))
#define AF_MAX(a, b)      _mm512_max_ps((a), (b))
#define AF_MASK(j, lim)   af_mask16((j), (lim))
#define AF_LOADZ(m, p)    _mm512_maskz_loadu_ps((m), (p))
#define AF_LOADF(m, p, f) _mm512_mask_loadu_ps(_mm512_set1_ps(f), (m), (p))
#define AF_SELZ(m, v)     _mm512_maskz_mov_ps((m), (v))
#define AF_HSUM(v)        _mm512_reduce_add_ps(v)
#define AF_HMAX(v)        _mm512_reduce_max_ps(v)
#define AF_EXP(v)         ti_exp16_avx512(v)
#include "attention_f32_simd.h" /* undefines the AF_* parameters */

/* ---- AVX2 + FMA variant ---------------------------------------------------------------------- */
#define AF_TARGET __attribute__((target("avx2,fma")))

/* e^x for 8 floats: the same reduction and polynomial; 2^n = 2^n1 2^n2 with n1 = n >> 1 (both
 * normal floats for n in [-150, 128]), so underflow to 0 and overflow to inf are as expf's. */
AF_TARGET static inline __attribute__((always_inline)) __m256 af_exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.7f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(TI_FEXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TI_FEXP_C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TI_FEXP_C2), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(TI_FEXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TI_FEXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TI_FEXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TI_FEXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TI_FEXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TI_FEXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

AF_TARGET static inline __attribute__((always_inline)) __m256i af_mask8(int64_t j, int64_t lim) {
    int64_t k = lim - j;
    k = k > 8 ? 8 : (k < 0 ? 0 : k);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AF_TARGET static inline __attribute__((always_inline)) float af_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AF_TARGET static inline __attribute__((always_inline)) float af_hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define AF(f)           af256_##f
#define AF_VW           8
#define AF_MR           4
#define AF_V            __m256
#define AF_M            __m256i
#define AF_ZERO()       _mm256_setzero_ps()
#define AF_SET1(x)      _mm256_set1_ps(x)
#define AF_LOAD(p)      _mm256_loadu_ps(p)
#define AF_STORE(p, v)  _mm256_storeu_ps((p), (v))
#define AF_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define AF_MUL(a, b)    _mm256_mul_ps((a), (b))
#define AF_ADD(a, b)    _mm256_add_ps((a), (b))
#define AF_SUB(a, b)    _mm256_sub_ps((a), (b))
#define AF_MAX(a, b)    _mm256_max_ps((a), (b))
#define AF_MASK(j, lim) af_mask8((j), (lim))
#define AF_LOADZ(m, p)  _mm256_maskload_ps((p), (m))
#define AF_LOADF(m, p, f)                                                                          \
    _mm256_blendv_ps(_mm256_set1_ps(f), _mm256_maskload_ps((p), (m)), _mm256_castsi256_ps(m))
#define AF_SELZ(m, v) _mm256_and_ps(_mm256_castsi256_ps(m), (v))
#define AF_HSUM(v)    af_hsum8(v)
#define AF_HMAX(v)    af_hmax8(v)
#define AF_EXP(v)     af_exp8(v)
#include "attention_f32_simd.h" /* undefines the AF_* parameters */
#endif                          /* AF_X86 */

/* ---- dispatch -------------------------------------------------------------------------------- */
static pthread_once_t af_once = PTHREAD_ONCE_INIT;
static int af_level; /* 0 none, 2 AVX2 + FMA, 3 AVX-512 */

static void af_probe(void) {
#ifdef AF_X86
    struct ti_cpu_features f;
    ti_cpu_features(&f);
    af_level = f.avx512f && f.fma ? 3 : (f.avx2 && f.fma ? 2 : 0);
#endif
}

/* The variant to run: the CPU's best, lowered by TI_ATTN_F32=0|avx2. */
static int af_variant(void) {
    pthread_once(&af_once, af_probe);
    const char *e = getenv("TI_ATTN_F32");
    if (e && strcmp(e, "0") == 0) return 0;
    if (e && strcmp(e, "avx2") == 0 && af_level >= 2) return 2;
    return af_level;
}

static int is_f32(const struct ti_tensor *t) {
    return !t->data || t->dtype == TI_DTYPE_F32;
}

ti_status ti_cpu_f32_attention(struct ti_kctx *k, const struct ti_attention_args *a, int backward,
                               int *done) {
    *done = 0;
    int var = af_variant();
    if (!var) return TI_OK;
    if (!is_f32(&a->q) || !is_f32(&a->k) || !is_f32(&a->v) || !is_f32(&a->out) || !a->out.data ||
        !a->lse.data || a->lse.dtype != TI_DTYPE_F32 || a->heads < 1)
        return TI_OK;
    if (backward && (!is_f32(&a->dout) || !a->dout.data || !is_f32(&a->dq) || !is_f32(&a->dk) ||
                     !is_f32(&a->dv)))
        return TI_OK;
    struct af_geom g;
    geom_init(&g, a, var == 3 ? 8 : 4);
    if (g.B == 0 || g.Tq == 0 || g.NH == 0 || g.Dv == 0) {
        *done = 1; /* nothing to compute */
        return TI_OK;
    }
    if (g.Tk == 0 || g.D == 0) return TI_OK; /* attention.c's conventions for empty keys */
#ifdef AF_X86
    if (!backward) {
        *done = 1;
        return var == 3 ? af512_forward(k, &g) : af256_forward(k, &g);
    }
    struct af_bwd_dst t;
    memset(&t, 0, sizeof t);
    t.dq = a->dq.data;
    t.dk = a->dk.data;
    t.dv = a->dv.data;
    if (!t.dq && !t.dk && !t.dv) {
        *done = 1;
        return TI_OK;
    }
    /* whole heads per thread only when they keep the threads busy (else attention.c splits) */
    int nt = ti_cpu_threads();
    int64_t BH = g.B * g.NH;
    if (!(nt <= 1 || (BH >= nt && (BH % nt == 0 || BH >= 4 * nt)))) return TI_OK;
    g.dout = a->dout.data;
    g.dos0 = a->dout.stride[0];
    g.dos1 = row_ld(&a->dout);
    if (t.dq) t.dqs0 = a->dq.stride[0], t.dqs1 = row_ld(&a->dq);
    if (t.dk) t.dks0 = a->dk.stride[0], t.dks1 = row_ld(&a->dk);
    if (t.dv) t.dvs0 = a->dv.stride[0], t.dvs1 = row_ld(&a->dv);
    *done = 1;
    return var == 3 ? af512_backward(k, &g, &t) : af256_backward(k, &g, &t);
#else
    (void)k;
    return TI_OK;
#endif
}
