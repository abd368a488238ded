/* ops_common.c - validation helpers and kernel-call bookkeeping shared by the op front ends. */
#include <stdio.h> /* defines: snprintf */

#include "ops_internal.h"

ti_status ti_op_result(ti_status st, struct ti_tensor *o, struct ti_tensor *out) {
    if (st != TI_OK) {
        ti_tensor_release(o);
        return st;
    }
    *out = *o;
    return TI_OK;
}

enum ti_dtype ti_stat_dtype(enum ti_dtype dt) {
    return dt == TI_DTYPE_F64 ? TI_DTYPE_F64 : TI_DTYPE_F32;
}

ti_status ti_kernel_finish(struct ti_ctx *ctx, size_t scratch_mark, ti_status st,
                           const char *slot) {
    ti_arena_rewind(ctx->scratch, scratch_mark);
    if (st == TI_OK && ctx->k.sync_each_op && ctx->be->sync) st = ctx->be->sync(ctx->be, &ctx->k);
    if (st != TI_OK) ti_error(&ctx->err, st, "in kernel %s on %s", slot, ctx->be->name);
    return st;
}

ti_status ti_kernel_missing(struct ti_ctx *ctx, const char *slot, enum ti_dtype dt) {
    return ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "backend %s has no %s kernel for %s",
                    ctx->be->name, slot, ti_dtype_name(dt));
}

static ti_status check_present(struct ti_ctx *ctx, const char *op, const char *arg,
                               const struct ti_tensor *t) {
    if (!t || !t->data)
        return ti_error(&ctx->err, TI_ERR_INVALID, "%s: argument '%s' is missing", op, arg);
    if (t->device != ctx->be->device || t->device_index != ctx->be->device_index)
        return ti_error(&ctx->err, TI_ERR_INVALID, "%s: argument '%s' is on %s:%d, ops run on %s",
                        op, arg, t->device == TI_DEVICE_CPU ? "cpu" : "cuda", t->device_index,
                        ctx->be->name);
    return TI_OK;
}

ti_status ti_check_float(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t) {
    TI_TRY(check_present(ctx, op, arg, t));
    if (!ti_dtype_is_float(t->dtype))
        return ti_error(&ctx->err, TI_ERR_DTYPE, "%s: argument '%s' has dtype %s, expected a float",
                        op, arg, ti_dtype_name(t->dtype));
    return TI_OK;
}

ti_status ti_check_dtype(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t, enum ti_dtype dt) {
    TI_TRY(check_present(ctx, op, arg, t));
    if (t->dtype != dt)
        return ti_error(&ctx->err, TI_ERR_DTYPE, "%s: argument '%s' has dtype %s, expected %s", op,
                        arg, ti_dtype_name(t->dtype), ti_dtype_name(dt));
    return TI_OK;
}

ti_status ti_check_shape(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t, int ndim, const int64_t *shape) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && t->shape[i] != shape[i]) ok = 0;
    if (ok) return TI_OK;
    char got[128], want[128];
    size_t used = 0;
    used += (size_t)snprintf(want, sizeof want, "[");
    for (int i = 0; i < ndim && used < sizeof want; i++) {
        if (shape[i] >= 0)
            used += (size_t)snprintf(want + used, sizeof want - used, i ? ", %lld" : "%lld",
                                     (long long)shape[i]);
        else
            used += (size_t)snprintf(want + used, sizeof want - used, i ? ", *" : "*");
    }
    if (used < sizeof want) snprintf(want + used, sizeof want - used, "]");
    return ti_error(&ctx->err, TI_ERR_SHAPE, "%s: argument '%s' has shape %s, expected %s", op, arg,
                    ti_shape_str(t->ndim, t->shape, got, sizeof got), want);
}
