/* context.c - execution context: arenas, backend state, host/device transfers (see context.h). */
#include "context.h"

#include <stdlib.h> /* defines: getenv, atoi, malloc, free */
#include <string.h> /* defines: memset */

#include "tape.h"

ti_status ti_ctx_init(struct ti_ctx *ctx, const struct ti_backend *be, size_t act_bytes,
                      size_t scratch_bytes) {
    memset(ctx, 0, sizeof *ctx);
    ctx->be = be;
    ctx->k.err = &ctx->err;
    ctx->k.device_index = be->device_index;
    const char *sync = getenv("TI_CUDA_SYNC");
    ctx->k.sync_each_op = sync && atoi(sync) != 0;
    ti_status st;
    TI_TRY_GOTO(st, ti_arena_init(&ctx->act, be, TI_ARENA_POOL, "activations",
                                  act_bytes ? act_bytes : ((size_t)64 << 20), 0, &ctx->err));
    TI_TRY_GOTO(st,
                ti_arena_init(&ctx->scratch, be, TI_ARENA_STACK, "scratch",
                              scratch_bytes ? scratch_bytes : ((size_t)16 << 20), 0, &ctx->err));
    ctx->k.scratch = ctx->scratch;
    if (be->kctx_init) TI_TRY_GOTO(st, be->kctx_init(be, &ctx->k));
    return TI_OK;
fail:
    ti_arena_free(&ctx->scratch);
    ti_arena_free(&ctx->act);
    return st;
}

void ti_ctx_free(struct ti_ctx *ctx) {
    if (!ctx || !ctx->be) return;
    if (ctx->be->kctx_free) ctx->be->kctx_free(ctx->be, &ctx->k);
    ti_arena_free(&ctx->scratch);
    ti_arena_free(&ctx->act);
    ctx->be = NULL;
}

ti_status ti_ctx_tensor(struct ti_ctx *ctx, struct ti_tensor *out, enum ti_dtype dt, int ndim,
                        const int64_t *shape) {
    return ti_arena_tensor(out, ctx->act, dt, ndim, shape, &ctx->err);
}

ti_status ti_ctx_zero(struct ti_ctx *ctx, struct ti_tensor *t) {
    if (!ti_tensor_is_contiguous(t))
        return ti_error(&ctx->err, TI_ERR_INVALID, "zero: tensor is not contiguous");
    size_t n = ti_tensor_nbytes(t);
    if (n == 0) return TI_OK;
    return ctx->be->mem_zero(ctx->be, &ctx->k, t->data, n);
}

ti_status ti_ctx_zeros(struct ti_ctx *ctx, struct ti_tensor *out, enum ti_dtype dt, int ndim,
                       const int64_t *shape) {
    TI_TRY(ti_ctx_tensor(ctx, out, dt, ndim, shape));
    ti_status st = ti_ctx_zero(ctx, out);
    if (st != TI_OK) ti_tensor_release(out);
    return st;
}

ti_status ti_ctx_upload(struct ti_ctx *ctx, struct ti_tensor *out, const void *host,
                        enum ti_dtype dt, int ndim, const int64_t *shape) {
    TI_TRY(ti_ctx_tensor(ctx, out, dt, ndim, shape));
    size_t n = ti_tensor_nbytes(out);
    ti_status st =
        n ? ctx->be->mem_copy(ctx->be, &ctx->k, out->data, ctx->be->device, host, TI_DEVICE_CPU, n)
          : TI_OK;
    if (st != TI_OK) ti_tensor_release(out);
    return st;
}

ti_status ti_ctx_copy_into(struct ti_ctx *ctx, struct ti_tensor *dst, const struct ti_tensor *src) {
    char a[64], b[64];
    if (!ti_tensor_same_shape(dst, src) || dst->dtype != src->dtype ||
        !ti_tensor_is_contiguous(dst) || !ti_tensor_is_contiguous(src))
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "copy_into: %s and %s must be contiguous with equal shape and dtype",
                        ti_tensor_describe(dst, a, sizeof a), ti_tensor_describe(src, b, sizeof b));
    size_t n = ti_tensor_nbytes(src);
    if (n == 0) return TI_OK;
    /* the device-side backend does any host<->device transfer */
    const struct ti_backend *be = ctx->be;
    if (dst->device == TI_DEVICE_CPU && src->device == TI_DEVICE_CPU && be->device != TI_DEVICE_CPU)
        be = ti_backend_cpu();
    return be->mem_copy(be, &ctx->k, dst->data, dst->device, src->data, src->device, n);
}

ti_status ti_ctx_download(struct ti_ctx *ctx, void *host, size_t bytes, const struct ti_tensor *t) {
    if (bytes != ti_tensor_nbytes(t))
        return ti_error(&ctx->err, TI_ERR_INVALID, "download: %zu bytes given for %zu", bytes,
                        ti_tensor_nbytes(t));
    struct ti_tensor src = *t;
    int made = 0;
    if (!ti_tensor_is_contiguous(t)) {
        /* gather on the tensor's device first (no recording) */
        ctx->no_grad++;
        ti_status st = ti_copy(ctx, &src, t, t->dtype);
        ctx->no_grad--;
        TI_TRY(st);
        made = 1;
    }
    struct ti_tensor dst = ti_tensor_view(host, t->dtype, TI_DEVICE_CPU, t->ndim, t->shape);
    ti_status st = ti_ctx_copy_into(ctx, &dst, &src);
    if (made) ti_tensor_release(&src);
    return st;
}

ti_status ti_ctx_sync(struct ti_ctx *ctx) {
    return ctx->be->sync ? ctx->be->sync(ctx->be, &ctx->k) : TI_OK;
}
