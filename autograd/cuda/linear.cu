/* cuda/linear.cu - PLACEHOLDER kernels, replaced by the gemm op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_linear_forward(struct ti_kctx *k, const struct ti_linear_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "linear_forward: not yet built"); }
extern "C" ti_status cuda_linear_backward(struct ti_kctx *k, const struct ti_linear_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "linear_backward: not yet built"); }
extern "C" ti_status cuda_matmul_forward(struct ti_kctx *k, const struct ti_matmul_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "matmul_forward: not yet built"); }
extern "C" ti_status cuda_matmul_backward(struct ti_kctx *k, const struct ti_matmul_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "matmul_backward: not yet built"); }
