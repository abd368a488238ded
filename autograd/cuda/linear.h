/*
 * cuda/linear.h - helpers that cuda/linear.cu exports to cuda/conv2d.cu (C++ only, not part
 * of the C API): a strided row-major GEMM over cuBLAS and the bias kernels.
 * Not here: the op launchers (launchers.h).
 */
#ifndef TI_CUDA_LINEAR_H
#define TI_CUDA_LINEAR_H

#include "../backend.h"

/* A batch of (r x c) matrices: element (i, j) of matrix b at p + (b*sb + i*sr + j*sc) elements.
 * One of sr, sc must be 1 (the stride of a size-1 dim does not matter). */
struct ti_cuda_mat {
    void *p;
    int64_t r, c, sr, sc, sb;
};

/* a single (r x c) matrix view */
static inline struct ti_cuda_mat mat2(void *p, int64_t r, int64_t c, int64_t sr, int64_t sc) {
    struct ti_cuda_mat m;
    m.p = p;
    m.r = r;
    m.c = c;
    m.sr = sr;
    m.sc = sc;
    m.sb = 0;
    return m;
}

/* C_b = alpha * A_b . B_b + beta * C_b for b < bt, dtype dt (f32, f16, bf16 storage; f32
 * compute, no TF32). A destination with sb == 0 and bt > 1 receives the sum over the batch
 * (one accumulating call per batch, in order). */
ti_status ti_cuda_gemm(struct ti_kctx *k, enum ti_dtype dt, int64_t bt, struct ti_cuda_mat C,
                       struct ti_cuda_mat A, struct ti_cuda_mat B, float alpha, float beta);

/* out (outer, n, inner)[o, c, i] = bias[c]: the bias broadcast, before a GEMM with beta = 1. */
ti_status ti_cuda_bias_fill(struct ti_kctx *k, enum ti_dtype dt, void *out, const void *bias,
                            int64_t outer, int64_t n, int64_t inner);

/* dbias[c] += sum over o, i of g (outer, n, inner)[o, c, i]; f32 accumulation, fixed order
 * (deterministic). */
ti_status ti_cuda_bias_grad(struct ti_kctx *k, enum ti_dtype dt, void *dbias, const void *g,
                            int64_t outer, int64_t n, int64_t inner);

#endif /* TI_CUDA_LINEAR_H */
