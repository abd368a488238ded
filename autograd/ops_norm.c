/* ops_norm.c - PLACEHOLDER front ends, replaced by the norm op family. */
#include "ops_internal.h"

ti_status ti_groupnorm_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "groupnorm: not yet built");
}
ti_status ti_layernorm_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "layernorm: not yet built");
}
ti_status ti_geglu_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "geglu: not yet built");
}
ti_status ti_softmax_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "softmax: not yet built");
}
