/*
 * cpu_common.h - shared by the CPU kernels.
 *
 * Most files in cpu/ are compiled twice: with TI_REAL_F32 (`real` = float, functions named
 * cpu_f32_<op>_<dir>) and with TI_REAL_F64 (`real` = double, cpu_f64_<op>_<dir>), so one
 * plain-C source is both the fast f32 kernel and the f64 gradcheck reference. Write kernels as
 *
 *   ti_status CPU_FN(unary_forward)(struct ti_kctx *k, const struct ti_unary_args *a) { ... }
 *
 * using `real`, RSQRT/EXP/... math macros and CPU_GEMM. Files compiled once (cpu_backend.c,
 * cpu_gemm.c, copy.c) define TI_CPU_ONCE.
 */
#ifndef TI_CPU_COMMON_H
#define TI_CPU_COMMON_H

#include <math.h> /* defines: expf, exp, erff, erf, sqrtf, sqrt, tanh... */
#include <stdint.h>

#include "../arena.h"
#include "../backend.h"

#ifdef _OPENMP
#include <omp.h> /* defines: omp_get_max_threads, omp_get_thread_num */
#endif

/* ---- GEMM (row-major), cpu_gemm.c: OpenBLAS when available, else a blocked OpenMP loop ---- */
/* C (M x N) = alpha * op(A) . op(B) + beta * C; op = transpose when trans != 0;
 * lda/ldb/ldc are row strides of the stored (untransposed) matrices. */
void ti_cpu_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc);
void ti_cpu_dgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                  double *C, int64_t ldc);
/* Number of threads our own parallel loops use. */
int ti_cpu_threads(void);

/* Threads for an attention call of B x NH x Tq x Tk x DDv multiply-adds (DDv = D + Dv) split
 * into `items` independent pieces (items <= 0: no cap): 1 below 4e5, else ti_cpu_threads() up
 * to items. Shared by the attention kernels (attention.c, attention_f32.c, attention_bf16.c). */
static inline int ti_attn_threads(int64_t B, int64_t NH, int64_t Tq, int64_t Tk, int64_t DDv,
                                  int64_t items) {
    double work = (double)B * (double)NH * (double)Tq * (double)Tk * (double)DDv;
    int nt = ti_cpu_threads();
    if (work < 4e5 || nt < 1) nt = 1;
    if (items > 0 && nt > items) nt = (int)items;
    return nt;
}

/* This OpenMP thread's index in its team (0 without OpenMP). */
static inline int ti_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- oneDNN (dnnl_conv.c, built with TI_HAVE_DNNL) ------------------------------------------ */
struct ti_conv2d_args;
/* f32 or bf16 (the tensors' dtype) conv2d forward / backward-data (dinp += ...): *done = 1 when
 * oneDNN computed it, 0 when conv2d.c's own paths must run (oneDNN off or unable to take the
 * shape). */
ti_status ti_dnnl_conv2d_forward(struct ti_kctx *k, const struct ti_conv2d_args *a, int *done);
ti_status ti_dnnl_conv2d_backward_data(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                       int *done);
/* bf16 LINEAR forward (backward = 0) or backward-data (1) through oneDNN's matmul
 * (dnnl_matmul.c); *done = 0 when it did not run (no oneDNN, a dtype or shape it cannot take). */
struct ti_linear_args;
ti_status ti_dnnl_linear_bf16(struct ti_kctx *k, const struct ti_linear_args *a, int backward,
                              int *done);
/* bf16 ATTENTION forward (backward = 0) or backward (1) with AVX512-BF16 GEMMs and an f32
 * softmax (attention_bf16.c); *done = 0 when it did not run (no AVX512-BF16, TI_ATTN_BF16=0,
 * a dtype it does not take): the caller converts to f32 then. */
struct ti_attention_args;
ti_status ti_cpu_bf16_attention(struct ti_kctx *k, const struct ti_attention_args *a, int backward,
                                int *done);
/* f32 ATTENTION forward (backward = 0) or backward (1) with AVX-512 or AVX2 + FMA GEMM tiles
 * (attention_f32.c); *done = 0 when it did not run (neither instruction set, TI_ATTN_F32=0, a
 * shape it does not take): attention.c's SGEMM path runs then. */
ti_status ti_cpu_f32_attention(struct ti_kctx *k, const struct ti_attention_args *a, int backward,
                               int *done);
int ti_dnnl_conv_enabled(void);     /* oneDNN built in, engine up, TI_DNNL != 0 */
const char *ti_dnnl_isa_name(void); /* dnnl_get_effective_cpu_isa() in words */

/* ---- every kernel, declared from ops.def: cpu_f32_<op>_<dir> and cpu_f64_<op>_<dir> -------- */
#define TI_CPU_BWD_DECL_1(pfx, name)                                                               \
    ti_status pfx##name##_backward(struct ti_kctx *k, const struct ti_##name##_args *a);
#define TI_CPU_BWD_DECL_0(pfx, name)
#define TI_KOP(NAME, name, BWD)                                                                    \
    ti_status cpu_f32_##name##_forward(struct ti_kctx *k, const struct ti_##name##_args *a);       \
    ti_status cpu_f64_##name##_forward(struct ti_kctx *k, const struct ti_##name##_args *a);       \
    TI_CPU_BWD_DECL_##BWD(cpu_f32_, name) TI_CPU_BWD_DECL_##BWD(cpu_f64_, name)
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP
/* bf16.c: fills the bf16 table (bf16 storage, f32 arithmetic: oneDNN convolutions on bf16,
 * every other kernel the f32 one between conversions) */
void ti_cpu_bf16_fill(struct ti_kernels *kt);
/* copy.c: one implementation for every dtype pair */
ti_status cpu_copy_forward(struct ti_kctx *k, const struct ti_copy_args *a);
ti_status cpu_copy_backward(struct ti_kctx *k, const struct ti_copy_args *a);

#if defined(TI_REAL_F32)
typedef float real;
#define CPU_FN(name)  cpu_f32_##name
#define CPU_GEMM      ti_cpu_sgemm
#define R(x)          ((float)(x))
#define EXP           expf
#define LOG           logf
#define SQRT          sqrtf
#define ERF           erff
#define TANH          tanhf
#define COS           cosf
#define SIN           sinf
#define FABS          fabsf
#define TI_REAL_DTYPE TI_DTYPE_F32
#elif defined(TI_REAL_F64)
typedef double real;
#define CPU_FN(name)  cpu_f64_##name
#define CPU_GEMM      ti_cpu_dgemm
#define R(x)          ((double)(x))
#define EXP           exp
#define LOG           log
#define SQRT          sqrt
#define ERF           erf
#define TANH          tanh
#define COS           cos
#define SIN           sin
#define FABS          fabs
#define TI_REAL_DTYPE TI_DTYPE_F64
#elif !defined(TI_CPU_ONCE)
#error "compile cpu kernels with -DTI_REAL_F32 or -DTI_REAL_F64"
#endif

/* Workspace from the kernel's scratch arena (rewound by the front end after the call); 64-byte
 * aligned (chunks from aligned_alloc(64), offsets in multiples of 256: arena.c). */
static inline void *cpu_scratch(struct ti_kctx *k, size_t bytes) {
    void *p = NULL;
    if (ti_arena_alloc(k->scratch, bytes, &p, NULL, k->err) != TI_OK) return NULL;
    return p;
}

/* ---- strided N-d iteration ------------------------------------------------------------------- */
/* Visits every index of `shape` (ndim <= TI_MAX_DIMS) in row-major order, keeping up to 3
 * element offsets (one per tensor) in sync. Usage:
 *   struct ti_iter it; ti_iter_init(&it, ndim, shape, 3, strides3);
 *   for (int64_t n = 0; n < total; n++, ti_iter_next(&it)) ... it.off[0], it.off[1] ...
 * Start at linear index `start` with ti_iter_seek. */
struct ti_iter {
    int ndim, nt;
    int64_t shape[TI_MAX_DIMS];
    int64_t stride[3][TI_MAX_DIMS];
    int64_t idx[TI_MAX_DIMS];
    int64_t off[3];
};

static inline void ti_iter_init(struct ti_iter *it, int ndim, const int64_t *shape, int nt,
                                const int64_t *const *strides) {
    it->ndim = ndim;
    it->nt = nt;
    for (int d = 0; d < ndim; d++) {
        it->shape[d] = shape[d];
        it->idx[d] = 0;
        for (int t = 0; t < nt; t++)
            it->stride[t][d] = strides[t][d];
    }
    for (int t = 0; t < 3; t++)
        it->off[t] = 0;
}

static inline void ti_iter_seek(struct ti_iter *it, int64_t lin) {
    for (int t = 0; t < it->nt; t++)
        it->off[t] = 0;
    for (int d = it->ndim - 1; d >= 0; d--) {
        int64_t i = it->shape[d] ? lin % it->shape[d] : 0;
        lin = it->shape[d] ? lin / it->shape[d] : 0;
        it->idx[d] = i;
        for (int t = 0; t < it->nt; t++)
            it->off[t] += i * it->stride[t][d];
    }
}

static inline void ti_iter_next(struct ti_iter *it) {
    for (int d = it->ndim - 1; d >= 0; d--) {
        it->idx[d]++;
        for (int t = 0; t < it->nt; t++)
            it->off[t] += it->stride[t][d];
        if (it->idx[d] < it->shape[d]) return;
        for (int t = 0; t < it->nt; t++)
            it->off[t] -= it->stride[t][d] * it->shape[d];
        it->idx[d] = 0;
    }
}

/* Splits [0, n) into `parts` contiguous ranges; range p is [*lo, *hi). */
static inline void ti_split_range(int64_t n, int parts, int p, int64_t *lo, int64_t *hi) {
    int64_t q = n / parts, r = n % parts;
    *lo = p * q + (p < r ? p : r);
    *hi = *lo + q + (p < r ? 1 : 0);
}

/* Parallel-for threshold: loops shorter than this run on one thread. */
#define TI_CPU_PAR_MIN 16384

/* fn(user, off, inner) for every row of the innermost dim of shape (ndim >= 1 dims), the rows
 * split between nt threads; off[k] is the element offset of the row's first element under
 * stride set k (nsets <= 3 sets of ndim strides; each set's innermost stride is the caller's to
 * apply within the row). */
typedef void (*ti_cpu_row_fn)(void *user, const int64_t *off, int64_t inner);
static inline void ti_cpu_for_rows(int ndim, const int64_t *shape, int nsets,
                                   const int64_t *const *strides, int nt, ti_cpu_row_fn fn,
                                   void *user) {
    const int nd = ndim - 1;
    const int64_t inner = shape[nd];
    int64_t rows = 1;
    for (int d = 0; d < nd; d++)
        rows *= shape[d];
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        ti_split_range(rows, nt, t, &lo, &hi);
        if (lo >= hi) continue;
        struct ti_iter it;
        ti_iter_init(&it, nd, shape, nsets, strides);
        ti_iter_seek(&it, lo);
        for (int64_t r = lo; r < hi; r++, ti_iter_next(&it))
            fn(user, it.off, inner);
    }
}

#endif /* TI_CPU_COMMON_H */
