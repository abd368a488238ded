/*
 * blas_layout.h - how a strided 2-D matrix view maps onto a row-major BLAS operand; shared by
 * the CPU (cpu/linear.c, OpenBLAS) and CUDA (cuda/linear.cu, cuBLAS) GEMM wrappers.
 * C/C++ common subset (included from .c and .cu).
 */
#ifndef TI_BLAS_LAYOUT_H
#define TI_BLAS_LAYOUT_H

#include <stdint.h>

/* An (r x c) view with element (i, j) at i*sr + j*sc is a BLAS operand either untransposed
 * (trans = 0, ld = sr, unit column stride) or transposed (trans = 1, ld = sc, unit row stride:
 * the memory holds the transpose row-major). Strides of size-1 dims are free and take the value
 * that makes the view valid. Returns 0 when neither layout fits (the front end copies such
 * operands first). */
static inline int ti_blas_layout(int64_t r, int64_t c, int64_t sr, int64_t sc, int *trans,
                                 int64_t *ld) {
    int64_t r1 = r > 1 ? r : 1, c1 = c > 1 ? c : 1;
    if (c <= 1) sc = 1;
    if (r <= 1) sr = sc == 1 ? c1 : 1;
    if (sc == 1 && sr >= c1) {
        *trans = 0;
        *ld = sr;
        return 1;
    }
    if (sr == 1 && sc >= r1) {
        *trans = 1;
        *ld = sc;
        return 1;
    }
    return 0;
}

#endif /* TI_BLAS_LAYOUT_H */
