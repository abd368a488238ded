/*
 * cpu_gemm.c - row-major GEMM for the CPU kernels: OpenBLAS (cblas) when ti was built with it,
 * else a plain OpenMP loop (correct, slower; used on machines without OpenBLAS, e.g. a GPU box
 * where the CPU is only the reference for backend-consistency tests).
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <stdatomic.h> /* defines: atomic_fetch_add_explicit, atomic_load */

#ifdef TI_HAVE_OPENBLAS
#include <cblas.h> /* defines: cblas_sgemm, cblas_dgemm */
#endif

/* Every GEMM call and its multiply-adds (M*N*K), from any thread: tests check with them that a
 * frozen weight's gradient GEMM never runs (backend.h). Relaxed atomics: a counter only. */
static _Atomic uint64_t gemm_calls, gemm_macs;

static void gemm_count(int64_t M, int64_t N, int64_t K) {
    atomic_fetch_add_explicit(&gemm_calls, 1, memory_order_relaxed);
    if (M > 0 && N > 0 && K > 0)
        atomic_fetch_add_explicit(&gemm_macs, (uint64_t)M * (uint64_t)N * (uint64_t)K,
                                  memory_order_relaxed);
}

void ti_cpu_gemm_counters(uint64_t *calls, uint64_t *macs) {
    if (calls) *calls = atomic_load(&gemm_calls);
    if (macs) *macs = atomic_load(&gemm_macs);
}

int ti_cpu_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* C = alpha * op(A) op(B) + beta * C, row-major; beta == 0 ignores C's old contents. */
#define GEMM_SIGNATURE(name, T)                                                                    \
    void name(int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda,   \
              const T *B, int64_t ldb, T beta, T *C, int64_t ldc)

#ifdef TI_HAVE_OPENBLAS
/* K == 0 must still scale C by beta, which BLAS skips for some sizes. */
#define DEFINE_GEMM(name, T, cblas)                                                                \
    GEMM_SIGNATURE(name, T) {                                                                      \
        gemm_count(M, N, K);                                                                       \
        if (M <= 0 || N <= 0) return;                                                              \
        if (K <= 0) {                                                                              \
            for (int64_t i = 0; i < M; i++)                                                        \
                for (int64_t j = 0; j < N; j++)                                                    \
                    C[i * ldc + j] = beta == (T)0 ? (T)0 : beta * C[i * ldc + j];                  \
            return;                                                                                \
        }                                                                                          \
        cblas(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,       \
              (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta,   \
              C, (blasint)ldc);                                                                    \
    }
DEFINE_GEMM(ti_cpu_sgemm, float, cblas_sgemm)
DEFINE_GEMM(ti_cpu_dgemm, double, cblas_dgemm)
#else
/* One output row per iteration, in column chunks of GEMM_NB with double accumulators: f32 sums
 * over the long K of a conv's weight gradient (B*Ho*Wo terms) would otherwise drift from a
 * blocked BLAS by ~1e-3 relative. M, N or K of 0 need no special case. */
#define GEMM_NB 256
/* the _Pragma must stay on its own line, before its loop */
// clang-format off
#define DEFINE_GEMM(name, T)                                                                       \
    GEMM_SIGNATURE(name, T) {                                                                      \
        gemm_count(M, N, K);                                                                       \
        _Pragma("omp parallel for schedule(static) if (M * N * K > 65536)")                        \
        for (int64_t i = 0; i < M; i++) {                                                          \
            T *c = C + i * ldc;                                                                    \
            double acc[GEMM_NB];                                                                   \
            for (int64_t j0 = 0; j0 < N; j0 += GEMM_NB) {                                          \
                int64_t nb = N - j0 < GEMM_NB ? N - j0 : GEMM_NB;                                  \
                for (int64_t j = 0; j < nb; j++)                                                   \
                    acc[j] = 0;                                                                    \
                if (!tb) {                                                                         \
                    for (int64_t k = 0; k < K; k++) {                                              \
                        double a = ta ? A[k * lda + i] : A[i * lda + k];                           \
                        const T *b = B + k * ldb + j0;                                             \
                        for (int64_t j = 0; j < nb; j++)                                           \
                            acc[j] += a * b[j];                                                    \
                    }                                                                              \
                } else {                                                                           \
                    for (int64_t j = 0; j < nb; j++) {                                             \
                        const T *b = B + (j0 + j) * ldb;                                           \
                        double s = 0;                                                              \
                        if (!ta)                                                                   \
                            for (int64_t k = 0; k < K; k++) s += (double)A[i * lda + k] * b[k];    \
                        else                                                                       \
                            for (int64_t k = 0; k < K; k++) s += (double)A[k * lda + i] * b[k];    \
                        acc[j] = s;                                                                \
                    }                                                                              \
                }                                                                                  \
                for (int64_t j = 0; j < nb; j++) {                                                 \
                    double prev = beta == (T)0 ? 0.0 : (double)beta * c[j0 + j];                   \
                    c[j0 + j] = (T)(prev + (double)alpha * acc[j]);                                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
// clang-format on
DEFINE_GEMM(ti_cpu_sgemm, float)
DEFINE_GEMM(ti_cpu_dgemm, double)
#endif
