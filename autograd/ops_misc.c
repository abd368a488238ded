/* ops_misc.c - PLACEHOLDER front ends, replaced by the misc op family. */
#include "ops_internal.h"

ti_status ti_upsample_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "upsample: not yet built");
}
ti_status ti_embedding_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "embedding: not yet built");
}
ti_status ti_timestep_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "timestep: not yet built");
}
ti_status ti_mse_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "mse: not yet built");
}
