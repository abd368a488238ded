/*
 * cpu_gemm.c - row-major GEMM for the CPU kernels: OpenBLAS (cblas) when ti was built with it,
 * else a plain OpenMP loop (correct, slower; used on machines without OpenBLAS, e.g. a GPU box
 * where the CPU is only the reference for backend-consistency tests).
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#ifdef TI_HAVE_OPENBLAS
#include <cblas.h> /* defines: cblas_sgemm, cblas_dgemm */
#endif

int ti_cpu_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

#ifndef TI_HAVE_OPENBLAS
/* C = alpha * op(A) op(B) + beta * C, one output row per iteration. */
#define FALLBACK_GEMM(T, NAME)                                                                     \
    static void NAME(int ta, int tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A,         \
                     int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc) {            \
        _Pragma("omp parallel for schedule(static) if (M * N * K > 65536)")                        \
        for (int64_t i = 0; i < M; i++) {                                                          \
            T *c = C + i * ldc;                                                                    \
            if (beta == (T)0)                                                                      \
                for (int64_t j = 0; j < N; j++) c[j] = 0;                                          \
            else if (beta != (T)1)                                                                 \
                for (int64_t j = 0; j < N; j++) c[j] *= beta;                                      \
            if (!tb) {                                                                             \
                for (int64_t k = 0; k < K; k++) {                                                  \
                    T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);                          \
                    const T *b = B + k * ldb;                                                      \
                    for (int64_t j = 0; j < N; j++) c[j] += a * b[j];                              \
                }                                                                                  \
            } else {                                                                               \
                for (int64_t j = 0; j < N; j++) {                                                  \
                    const T *b = B + j * ldb;                                                      \
                    T s = 0;                                                                       \
                    if (!ta)                                                                       \
                        for (int64_t k = 0; k < K; k++) s += A[i * lda + k] * b[k];                \
                    else                                                                           \
                        for (int64_t k = 0; k < K; k++) s += A[k * lda + i] * b[k];                \
                    c[j] += alpha * s;                                                             \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
FALLBACK_GEMM(float, gemm_f32)
FALLBACK_GEMM(double, gemm_f64)
#endif

void ti_cpu_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef TI_HAVE_OPENBLAS
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta,
                C, (blasint)ldc);
#else
    gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void ti_cpu_dgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                  int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef TI_HAVE_OPENBLAS
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0. ? 0. : beta * C[i * ldc + j];
        return;
    }
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta,
                C, (blasint)ldc);
#else
    gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}
