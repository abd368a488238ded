/* cpu/misc.c - PLACEHOLDER kernels, replaced by the misc op family. */
#include "cpu_common.h"

ti_status CPU_FN(upsample_forward)(struct ti_kctx *k, const struct ti_upsample_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "upsample_forward: not yet built"); }
ti_status CPU_FN(upsample_backward)(struct ti_kctx *k, const struct ti_upsample_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "upsample_backward: not yet built"); }
ti_status CPU_FN(embedding_forward)(struct ti_kctx *k, const struct ti_embedding_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "embedding_forward: not yet built"); }
ti_status CPU_FN(embedding_backward)(struct ti_kctx *k, const struct ti_embedding_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "embedding_backward: not yet built"); }
ti_status CPU_FN(timestep_forward)(struct ti_kctx *k, const struct ti_timestep_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "timestep_forward: not yet built"); }
ti_status CPU_FN(timestep_backward)(struct ti_kctx *k, const struct ti_timestep_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "timestep_backward: not yet built"); }
ti_status CPU_FN(mse_forward)(struct ti_kctx *k, const struct ti_mse_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "mse_forward: not yet built"); }
ti_status CPU_FN(mse_backward)(struct ti_kctx *k, const struct ti_mse_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "mse_backward: not yet built"); }
