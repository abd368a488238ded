/* ops_attention.c - PLACEHOLDER front ends, replaced by the attention op family. */
#include "ops_internal.h"

ti_status ti_attention_tape_backward(struct ti_ctx *ctx, struct ti_node *node, const struct ti_tensor *dout) {
    (void)node; (void)dout;
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "attention: not yet built");
}
