/* cuda/softmax.cu - PLACEHOLDER kernels, replaced by the norm op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_geglu_forward(struct ti_kctx *k, const struct ti_geglu_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "geglu_forward: not yet built"); }
extern "C" ti_status cuda_geglu_backward(struct ti_kctx *k, const struct ti_geglu_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "geglu_backward: not yet built"); }
extern "C" ti_status cuda_softmax_forward(struct ti_kctx *k, const struct ti_softmax_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "softmax_forward: not yet built"); }
extern "C" ti_status cuda_softmax_backward(struct ti_kctx *k, const struct ti_softmax_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "softmax_backward: not yet built"); }
