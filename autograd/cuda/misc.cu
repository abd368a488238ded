/* cuda/misc.cu - PLACEHOLDER kernels, replaced by the misc op family. */
#include "cuda_common.h"
#include "launchers.h"

extern "C" ti_status cuda_upsample_forward(struct ti_kctx *k, const struct ti_upsample_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "upsample_forward: not yet built"); }
extern "C" ti_status cuda_upsample_backward(struct ti_kctx *k, const struct ti_upsample_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "upsample_backward: not yet built"); }
extern "C" ti_status cuda_embedding_forward(struct ti_kctx *k, const struct ti_embedding_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "embedding_forward: not yet built"); }
extern "C" ti_status cuda_embedding_backward(struct ti_kctx *k, const struct ti_embedding_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "embedding_backward: not yet built"); }
extern "C" ti_status cuda_timestep_forward(struct ti_kctx *k, const struct ti_timestep_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "timestep_forward: not yet built"); }
extern "C" ti_status cuda_timestep_backward(struct ti_kctx *k, const struct ti_timestep_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "timestep_backward: not yet built"); }
extern "C" ti_status cuda_mse_forward(struct ti_kctx *k, const struct ti_mse_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "mse_forward: not yet built"); }
extern "C" ti_status cuda_mse_backward(struct ti_kctx *k, const struct ti_mse_args *a) { (void)a; return ti_error(k->err, TI_ERR_UNSUPPORTED, "mse_backward: not yet built"); }
