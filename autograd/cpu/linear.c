/*
 * cpu/linear.c - CPU kernels of LINEAR and MATMUL (forward and backward), compiled for f32 and
 * f64 (cpu_common.h). Every product is one CPU_GEMM call (OpenBLAS sgemm/dgemm) per matrix;
 * the only own loops are the bias broadcast and the bias-gradient column sums.
 * Not here: the front ends and their shape checks (ops_gemm.c), convolutions (conv2d.c).
 *
 * Matrix operands are strided views (struct mat). BLAS takes a row-major matrix with a unit
 * column stride, or the transpose of one: a view with a unit row stride is passed as its
 * transpose (trans = 1, leading dimension = the column stride). A destination with a unit row
 * stride is handled by transposing the whole product, C^T = B^T A^T.
 */
#include "cpu_common.h"

#include <string.h> /* defines: memcpy */

#include "../blas_layout.h" /* defines: ti_blas_layout */

/* A (r x c) matrix view: element (i, j) at p[i*sr + j*sc]. */
struct mat {
    real *p;
    int64_t r, c, sr, sc;
};

static struct mat mat_t(struct mat m) {
    struct mat t = {m.p, m.c, m.r, m.sc, m.sr};
    return t;
}

/* BLAS layout of a view (blas_layout.h) */
static int mat_layout(struct mat m, int *trans, int64_t *ld) {
    return ti_blas_layout(m.r, m.c, m.sr, m.sc, trans, ld);
}

/* C (M x N) = alpha * A (M x K) . B (K x N) + beta * C, for views in either layout. */
static ti_status mat_gemm(struct ti_kctx *k, struct mat C, struct mat A, struct mat B, real alpha,
                          real beta) {
    int tc, ta, tb;
    int64_t ldc, lda, ldb;
    if (!mat_layout(C, &tc, &ldc) || !mat_layout(A, &ta, &lda) || !mat_layout(B, &tb, &ldb))
        return ti_error(k->err, TI_ERR_INTERNAL,
                        "gemm: operand without a unit stride (C %lldx%lld, A %lldx%lld, "
                        "B %lldx%lld)",
                        (long long)C.r, (long long)C.c, (long long)A.r, (long long)A.c,
                        (long long)B.r, (long long)B.c);
    if (tc) /* C^T = B^T . A^T: every view transposed, so C^T has a unit column stride */
        return mat_gemm(k, mat_t(C), mat_t(B), mat_t(A), alpha, beta);
    CPU_GEMM(ta, tb, C.r, C.c, A.c, alpha, A.p, lda, B.p, ldb, beta, C.p, ldc);
    return TI_OK;
}

/* out (M, N) rows = bias (N). One thread: this memory-bound copy runs right before a GEMM, and an
 * OpenMP team spin-waiting after its loop would take a core from OpenBLAS's threads. */
static void fill_rows(real *out, const real *bias, int64_t M, int64_t N) {
    for (int64_t m = 0; m < M; m++)
        memcpy(out + m * N, bias, (size_t)N * sizeof(real));
}

/* dbias (N) += sum over the M rows of g (M, N), in double, in row order (deterministic), in
 * blocks of 64 columns so the accumulators stay in registers / L1. One thread, as fill_rows. */
static void add_col_sums(real *dbias, const real *g, int64_t M, int64_t N) {
    for (int64_t n0 = 0; n0 < N; n0 += 64) {
        double acc[64];
        int64_t nn = N - n0 < 64 ? N - n0 : 64;
        for (int64_t j = 0; j < nn; j++)
            acc[j] = 0;
        for (int64_t m = 0; m < M; m++) {
            const real *row = g + m * N + n0;
            for (int64_t j = 0; j < nn; j++)
                acc[j] += row[j];
        }
        for (int64_t j = 0; j < nn; j++)
            dbias[n0 + j] += (real)acc[j];
    }
}

/* ---- LINEAR: out (M, N) = inp (M, K) . weight (N, K)^T + bias -------------------------------- */
ti_status CPU_FN(linear_forward)(struct ti_kctx *k, const struct ti_linear_args *a) {
    (void)k;
    int64_t M = a->inp.shape[0], K = a->inp.shape[1], N = a->weight.shape[0];
    real *out = a->out.data;
    const real *bias = a->bias.data;
    if (bias) fill_rows(out, bias, M, N);
    /* weight stored (N, K) row-major: its transpose is op(B) with trans_b = 1, ldb = K */
    CPU_GEMM(0, 1, M, N, K, R(1), a->inp.data, K, a->weight.data, K, bias ? R(1) : R(0), out, N);
    return TI_OK;
}

ti_status CPU_FN(linear_backward)(struct ti_kctx *k, const struct ti_linear_args *a) {
    (void)k;
    int64_t M = a->dout.shape[0], N = a->dout.shape[1];
    const real *g = a->dout.data;
    if (a->dinp.data) { /* dinp (M, K) += g (M, N) . W (N, K) */
        int64_t K = a->dinp.shape[1];
        CPU_GEMM(0, 0, M, K, N, R(1), g, N, a->weight.data, K, R(1), a->dinp.data, K);
    }
    if (a->dweight.data) { /* dW (N, K) += g^T (N, M) . inp (M, K) */
        int64_t K = a->dweight.shape[1];
        CPU_GEMM(1, 0, N, K, M, R(1), g, N, a->inp.data, K, R(1), a->dweight.data, K);
    }
    if (a->dbias.data) add_col_sums(a->dbias.data, g, M, N);
    return TI_OK;
}

/* ---- MATMUL: out_b = alpha a_b . b_b + beta out_b -------------------------------------------- */

/* Matrix b of a 3-D view. */
static struct mat mat_of(const struct ti_tensor *t, int64_t b) {
    struct mat m = {(real *)t->data + b * t->stride[0], t->shape[1], t->shape[2], t->stride[1],
                    t->stride[2]};
    return m;
}

ti_status CPU_FN(matmul_forward)(struct ti_kctx *k, const struct ti_matmul_args *a) {
    for (int64_t b = 0; b < a->out.shape[0]; b++)
        TI_TRY(mat_gemm(k, mat_of(&a->out, b), mat_of(&a->a, b), mat_of(&a->b, b), (real)a->alpha,
                        (real)a->beta));
    return TI_OK;
}

/* da_b += alpha dout_b . b_b^T and db_b += alpha a_b^T . dout_b, batch by batch in order, so a
 * gradient with batch stride 0 (a broadcast operand) sums over the batch deterministically. */
ti_status CPU_FN(matmul_backward)(struct ti_kctx *k, const struct ti_matmul_args *a) {
    real alpha = (real)a->alpha;
    for (int64_t b = 0; b < a->dout.shape[0]; b++) {
        struct mat g = mat_of(&a->dout, b);
        if (a->da.data)
            TI_TRY(mat_gemm(k, mat_of(&a->da, b), g, mat_t(mat_of(&a->b, b)), alpha, R(1)));
        if (a->db.data)
            TI_TRY(mat_gemm(k, mat_of(&a->db, b), mat_t(mat_of(&a->a, b)), g, alpha, R(1)));
    }
    return TI_OK;
}
