/* cpu/norm.c - PLACEHOLDER kernels, replaced by the norm op family. */
#include "cpu_common.h"

ti_status CPU_FN(groupnorm_forward)(struct ti_kctx *k, const struct ti_groupnorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "groupnorm_forward: not yet built"); }
ti_status CPU_FN(groupnorm_backward)(struct ti_kctx *k, const struct ti_groupnorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "groupnorm_backward: not yet built"); }
ti_status CPU_FN(layernorm_forward)(struct ti_kctx *k, const struct ti_layernorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "layernorm_forward: not yet built"); }
ti_status CPU_FN(layernorm_backward)(struct ti_kctx *k, const struct ti_layernorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "layernorm_backward: not yet built"); }
