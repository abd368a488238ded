/* cuda/conv2d.cu - PLACEHOLDER kernels, replaced by the gemm op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_conv2d_forward(struct ti_kctx *k, const struct ti_conv2d_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "conv2d_forward: not yet built"); }
extern "C" ti_status cuda_conv2d_backward(struct ti_kctx *k, const struct ti_conv2d_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "conv2d_backward: not yet built"); }
