/* cpu/attention.c - PLACEHOLDER kernels, replaced by the attention op family. */
#include "cpu_common.h"

ti_status CPU_FN(attention_forward)(struct ti_kctx *k, const struct ti_attention_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "attention_forward: not yet built"); }
ti_status CPU_FN(attention_backward)(struct ti_kctx *k, const struct ti_attention_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "attention_backward: not yet built"); }
