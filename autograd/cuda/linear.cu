/*
 * cuda/linear.cu - CUDA kernels of LINEAR and MATMUL (forward and backward) for f32, f16 and
 * bf16 storage with f32 accumulation: cuBLAS GemmEx / GemmStridedBatchedEx with
 * CUBLAS_COMPUTE_32F (the handle's default math mode: no TF32), plus two small kernels for the
 * bias (broadcast fill before the GEMM, column sums for its gradient). Also the strided GEMM
 * and bias helpers that conv2d.cu uses (linear.h).
 * Not here: shape checks (ops_gemm.c), the CPU reference (cpu/linear.c).
 *
 * Row-major on a column-major BLAS: a row-major (M x N) matrix with row stride ld is, read
 * column-major, its transpose (N x M) with leading dimension ld. So row-major C = A . B is
 * computed as column-major C^T = B^T . A^T: cuBLAS gets (B, A) in that order with m = N, n = M.
 */
#include <cublas_v2.h> /* defines: cublasGemmEx, cublasGemmStridedBatchedEx, CUBLAS_OP_N/T */

#include "cuda_common.h"
#include "launchers.h"
#include "../blas_layout.h" /* defines: ti_blas_layout */
#include "linear.h"

/* ---- the strided GEMM ------------------------------------------------------------------------ */

static int blas_type(enum ti_dtype dt, cudaDataType_t *t) {
    switch (dt) {
    case TI_DTYPE_F32: *t = CUDA_R_32F; return 1;
    case TI_DTYPE_F16: *t = CUDA_R_16F; return 1;
    case TI_DTYPE_BF16: *t = CUDA_R_16BF; return 1;
    default: return 0;
    }
}

static struct ti_cuda_mat mat_t(struct ti_cuda_mat m) {
    struct ti_cuda_mat t = m;
    t.r = m.c;
    t.c = m.r;
    t.sr = m.sc;
    t.sc = m.sr;
    return t;
}

/* BLAS layout of a view (blas_layout.h, shared with cpu/linear.c) */
static int mat_layout(struct ti_cuda_mat m, int *trans, int64_t *ld) {
    return ti_blas_layout(m.r, m.c, m.sr, m.sc, trans, ld);
}

static int fits_int(int64_t v) {
    return v >= 0 && v <= 2147483647;
}

ti_status ti_cuda_gemm(struct ti_kctx *k, enum ti_dtype dt, int64_t bt, struct ti_cuda_mat C,
                       struct ti_cuda_mat A, struct ti_cuda_mat B, float alpha, float beta) {
    cudaDataType_t type;
    if (!blas_type(dt, &type))
        return ti_error(k->err, TI_ERR_DTYPE, "cuda gemm: dtype %s not supported",
                        ti_dtype_name(dt));
    int tc, ta, tb;
    int64_t ldc, lda, ldb;
    if (!mat_layout(C, &tc, &ldc) || !mat_layout(A, &ta, &lda) || !mat_layout(B, &tb, &ldb))
        return ti_error(k->err, TI_ERR_INTERNAL,
                        "cuda gemm: operand without a unit stride (C %lldx%lld, A %lldx%lld, "
                        "B %lldx%lld)",
                        (long long)C.r, (long long)C.c, (long long)A.r, (long long)A.c,
                        (long long)B.r, (long long)B.c);
    if (tc) /* C^T = B^T . A^T: with every view transposed, C^T has a unit column stride */
        return ti_cuda_gemm(k, dt, bt, mat_t(C), mat_t(B), mat_t(A), alpha, beta);
    int64_t M = C.r, N = C.c, K = A.c;
    if (M == 0 || N == 0 || bt == 0) return TI_OK;
    if (!fits_int(M) || !fits_int(N) || !fits_int(K) || !fits_int(lda) || !fits_int(ldb) ||
        !fits_int(ldc) || !fits_int(bt))
        return ti_error(k->err, TI_ERR_UNSUPPORTED,
                        "cuda gemm: %lldx%lldx%lld (batch %lld) exceeds cuBLAS int sizes",
                        (long long)M, (long long)N, (long long)K, (long long)bt);
    cublasHandle_t h = (cublasHandle_t)k->blas;
    /* f32 accumulation throughout: no TF32, and no split-K reduction in the 16-bit output type
     * (cuBLAS allows that by default for mixed-precision GemmEx) */
    const int mode = CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    CUBLAS_CHECK(k, cublasSetMathMode(h, (cublasMath_t)mode));
    /* column-major C^T (N x M) = op(B-memory) (N x K) . op(A-memory) (K x M):
     * B-memory untransposed (tb = 0) already reads as B^T; a stored transpose needs OP_T */
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    size_t es = ti_dtype_size(dt);
    const float one = 1.f;
    if (bt == 1 || C.sb == 0) {
        /* one matrix, or a shared destination: accumulate batch by batch in order */
        for (int64_t b = 0; b < bt; b++) {
            const char *pa = (const char *)A.p + (size_t)(b * A.sb) * es;
            const char *pb = (const char *)B.p + (size_t)(b * B.sb) * es;
            CUBLAS_CHECK(k, cublasGemmEx(h, opb, opa, (int)N, (int)M, (int)K, &alpha, pb, type,
                                         (int)ldb, pa, type, (int)lda, b == 0 ? &beta : &one, C.p,
                                         type, (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
        return TI_OK;
    }
    CUBLAS_CHECK(k, cublasGemmStridedBatchedEx(h, opb, opa, (int)N, (int)M, (int)K, &alpha, B.p,
                                               type, (int)ldb, (long long)B.sb, A.p, type, (int)lda,
                                               (long long)A.sb, &beta, C.p, type, (int)ldc,
                                               (long long)C.sb, (int)bt, CUBLAS_COMPUTE_32F,
                                               CUBLAS_GEMM_DEFAULT));
    return TI_OK;
}

/* ---- bias kernels ---------------------------------------------------------------------------- */

template <typename T>
__global__ void bias_fill_kernel(T *out, const T *bias, int64_t n, int64_t inner, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = bias[(i / inner) % n];
}

ti_status ti_cuda_bias_fill(struct ti_kctx *k, enum ti_dtype dt, void *out, const void *bias,
                            int64_t outer, int64_t n, int64_t inner) {
    int64_t total = outer * n * inner;
    if (total == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, dt, T, {
        bias_fill_kernel<T>
            <<<ti_cuda_blocks(total, 256), 256, 0, s>>>((T *)out, (const T *)bias, n, inner, total);
    });
    CUDA_CHECK_LAUNCH(k, "bias_fill");
    return TI_OK;
}

/* Column sums, g (rows, n): block = 32 columns x 8 row lanes; lane y sums rows y, y+8, ...;
 * the 8 partial sums are then added in lane order (fixed order: deterministic). */
template <typename T>
__global__ void bias_grad_cols_kernel(T *dbias, const T *g, int64_t rows, int64_t n) {
    __shared__ float part[8][33];
    int64_t col = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.f;
    if (col < n)
        for (int64_t r = threadIdx.y; r < rows; r += 8)
            acc += ldf(g + r * n + col);
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < n) {
        float s = 0.f;
        for (int y = 0; y < 8; y++)
            s += part[y][threadIdx.x];
        stf(dbias + col, ldf(dbias + col) + s);
    }
}

/* Channel sums, g (outer, n, inner) with inner > 1: one block per channel, each thread sums a
 * strided subset, then a fixed shared-memory tree (deterministic). */
template <typename T>
__global__ void bias_grad_chan_kernel(T *dbias, const T *g, int64_t outer, int64_t n,
                                      int64_t inner) {
    __shared__ float part[256];
    int64_t c = blockIdx.x, total = outer * inner;
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
        int64_t o = i / inner, j = i % inner;
        acc += ldf(g + (o * n + c) * inner + j);
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) stf(dbias + c, ldf(dbias + c) + part[0]);
}

ti_status ti_cuda_bias_grad(struct ti_kctx *k, enum ti_dtype dt, void *dbias, const void *g,
                            int64_t outer, int64_t n, int64_t inner) {
    if (n == 0) return TI_OK;
    if (n > 2147483647LL) /* grid size */
        return ti_error(k->err, TI_ERR_UNSUPPORTED, "bias_grad: %lld channels", (long long)n);
    cudaStream_t s = TI_CUDA_STREAM(k);
    if (inner == 1) {
        dim3 block(32, 8);
        TI_CUDA_FLOAT_SWITCH(k, dt, T, {
            bias_grad_cols_kernel<T><<<(unsigned)CEIL_DIV(n, (int64_t)32), block, 0, s>>>(
                (T *)dbias, (const T *)g, outer, n);
        });
    } else {
        TI_CUDA_FLOAT_SWITCH(k, dt, T, {
            bias_grad_chan_kernel<T>
                <<<(unsigned)n, 256, 0, s>>>((T *)dbias, (const T *)g, outer, n, inner);
        });
    }
    CUDA_CHECK_LAUNCH(k, "bias_grad");
    return TI_OK;
}

/* ---- LINEAR: out (M, N) = inp (M, K) . weight (N, K)^T + bias -------------------------------- */

extern "C" ti_status cuda_linear_forward(struct ti_kctx *k, const struct ti_linear_args *a) {
    enum ti_dtype dt = a->out.dtype;
    int64_t M = a->inp.shape[0], K = a->inp.shape[1], N = a->weight.shape[0];
    float beta = 0.f;
    if (a->bias.data) {
        TI_TRY(ti_cuda_bias_fill(k, dt, a->out.data, a->bias.data, M, N, 1));
        beta = 1.f;
    }
    /* weight^T is the (K, N) view of weight with strides (1, K) */
    return ti_cuda_gemm(k, dt, 1, mat2(a->out.data, M, N, N, 1), mat2(a->inp.data, M, K, K, 1),
                        mat2(a->weight.data, K, N, 1, K), 1.f, beta);
}

extern "C" ti_status cuda_linear_backward(struct ti_kctx *k, const struct ti_linear_args *a) {
    enum ti_dtype dt = a->dout.dtype;
    int64_t M = a->dout.shape[0], N = a->dout.shape[1];
    struct ti_cuda_mat g = mat2(a->dout.data, M, N, N, 1);
    if (a->dinp.data) { /* dinp (M, K) += dout (M, N) . weight (N, K) */
        int64_t K = a->dinp.shape[1];
        TI_TRY(ti_cuda_gemm(k, dt, 1, mat2(a->dinp.data, M, K, K, 1), g,
                            mat2(a->weight.data, N, K, K, 1), 1.f, 1.f));
    }
    if (a->dweight.data) { /* dweight (N, K) += dout^T (N, M) . inp (M, K) */
        int64_t K = a->dweight.shape[1];
        TI_TRY(ti_cuda_gemm(k, dt, 1, mat2(a->dweight.data, N, K, K, 1), mat_t(g),
                            mat2(a->inp.data, M, K, K, 1), 1.f, 1.f));
    }
    if (a->dbias.data) TI_TRY(ti_cuda_bias_grad(k, dt, a->dbias.data, a->dout.data, M, N, 1));
    return TI_OK;
}

/* ---- MATMUL: out_b = alpha a_b . b_b + beta out_b -------------------------------------------- */

static struct ti_cuda_mat mat3(const struct ti_tensor *t) {
    struct ti_cuda_mat m;
    m.p = t->data;
    m.r = t->shape[1];
    m.c = t->shape[2];
    m.sr = t->stride[1];
    m.sc = t->stride[2];
    m.sb = t->stride[0];
    return m;
}

extern "C" ti_status cuda_matmul_forward(struct ti_kctx *k, const struct ti_matmul_args *a) {
    return ti_cuda_gemm(k, a->out.dtype, a->out.shape[0], mat3(&a->out), mat3(&a->a), mat3(&a->b),
                        (float)a->alpha, (float)a->beta);
}

/* da_b += alpha dout_b . b_b^T, db_b += alpha a_b^T . dout_b; a gradient with batch stride 0 (a
 * broadcast operand) is summed over the batch by ti_cuda_gemm. */
extern "C" ti_status cuda_matmul_backward(struct ti_kctx *k, const struct ti_matmul_args *a) {
    enum ti_dtype dt = a->dout.dtype;
    int64_t bt = a->dout.shape[0];
    float alpha = (float)a->alpha;
    struct ti_cuda_mat g = mat3(&a->dout);
    if (a->da.data)
        TI_TRY(ti_cuda_gemm(k, dt, bt, mat3(&a->da), g, mat_t(mat3(&a->b)), alpha, 1.f));
    if (a->db.data)
        TI_TRY(ti_cuda_gemm(k, dt, bt, mat3(&a->db), mat_t(mat3(&a->a)), g, alpha, 1.f));
    return TI_OK;
}
