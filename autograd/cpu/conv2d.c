/* cpu/conv2d.c - PLACEHOLDER kernels, replaced by the gemm op family. */
#include "cpu_common.h"

ti_status CPU_FN(conv2d_forward)(struct ti_kctx *k, const struct ti_conv2d_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "conv2d_forward: not yet built"); }
ti_status CPU_FN(conv2d_backward)(struct ti_kctx *k, const struct ti_conv2d_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "conv2d_backward: not yet built"); }
