/* cpu/linear.c - PLACEHOLDER kernels, replaced by the gemm op family. */
#include "cpu_common.h"

ti_status CPU_FN(linear_forward)(struct ti_kctx *k, const struct ti_linear_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "linear_forward: not yet built"); }
ti_status CPU_FN(linear_backward)(struct ti_kctx *k, const struct ti_linear_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "linear_backward: not yet built"); }
ti_status CPU_FN(matmul_forward)(struct ti_kctx *k, const struct ti_matmul_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "matmul_forward: not yet built"); }
ti_status CPU_FN(matmul_backward)(struct ti_kctx *k, const struct ti_matmul_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "matmul_backward: not yet built"); }
