/* cpu/softmax.c - PLACEHOLDER kernels, replaced by the norm op family. */
#include "cpu_common.h"

ti_status CPU_FN(geglu_forward)(struct ti_kctx *k, const struct ti_geglu_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "geglu_forward: not yet built"); }
ti_status CPU_FN(geglu_backward)(struct ti_kctx *k, const struct ti_geglu_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "geglu_backward: not yet built"); }
ti_status CPU_FN(softmax_forward)(struct ti_kctx *k, const struct ti_softmax_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "softmax_forward: not yet built"); }
ti_status CPU_FN(softmax_backward)(struct ti_kctx *k, const struct ti_softmax_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "softmax_backward: not yet built"); }
