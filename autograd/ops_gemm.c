/* ops_gemm.c - PLACEHOLDER front ends, replaced by the gemm op family. */
#include "ops_internal.h"

ti_status ti_linear_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "linear: not yet built");
}
ti_status ti_matmul_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "matmul: not yet built");
}
ti_status ti_conv2d_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "conv2d: not yet built");
}
