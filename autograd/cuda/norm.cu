/* cuda/norm.cu - PLACEHOLDER kernels, replaced by the norm op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_groupnorm_forward(struct ti_kctx *k, const struct ti_groupnorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "groupnorm_forward: not yet built"); }
extern "C" ti_status cuda_groupnorm_backward(struct ti_kctx *k, const struct ti_groupnorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "groupnorm_backward: not yet built"); }
extern "C" ti_status cuda_layernorm_forward(struct ti_kctx *k, const struct ti_layernorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "layernorm_forward: not yet built"); }
extern "C" ti_status cuda_layernorm_backward(struct ti_kctx *k, const struct ti_layernorm_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "layernorm_backward: not yet built"); }
