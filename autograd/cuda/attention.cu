/* cuda/attention.cu - PLACEHOLDER kernels, replaced by the attention op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_attention_forward(struct ti_kctx *k, const struct ti_attention_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "attention_forward: not yet built"); }
extern "C" ti_status cuda_attention_backward(struct ti_kctx *k, const struct ti_attention_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "attention_backward: not yet built"); }
