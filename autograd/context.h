/*
 * context.h - the execution context: which backend runs ops, where their outputs live, the
 * tape that records them, and the error sink.
 *
 *   struct ti_ctx ctx;
 *   TI_TRY(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0));    // default arena sizes, grow on demand
 *   struct ti_tensor x;
 *   TI_TRY(ti_ctx_upload(&ctx, &x, host_ptr, TI_DTYPE_F32, 2, shape));
 *   ... ops from ops.h ...
 *   ti_ctx_free(&ctx);
 *
 * Every op output is allocated from ctx->act (a POOL arena: refcounted, reused step after
 * step); kernels take workspace from ctx->scratch (a STACK arena, rewound after each op).
 * Set ctx->tape (tape.h) to record ops for backward; ti_ctx_no_grad_begin/end suspend
 * recording (inference, recomputation).
 *
 * Environment: TI_CUDA_SYNC=1 synchronizes after every CUDA kernel so an error names its op.
 */
#ifndef TI_CONTEXT_H
#define TI_CONTEXT_H

#include "arena.h"
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_tape;

struct ti_ctx {
    struct ti_err err;
    const struct ti_backend *be;
    struct ti_kctx k;
    struct ti_arena *act;     /* op outputs and gradients (POOL) */
    struct ti_arena *scratch; /* kernel workspace (STACK) */
    struct ti_tape *tape;     /* NULL: nothing is recorded */
    int no_grad;              /* > 0: recording suspended */
};

/* act_bytes / scratch_bytes: first chunk sizes (0 = defaults: 64 MiB / 16 MiB); both grow. */
ti_status ti_ctx_init(struct ti_ctx *ctx, const struct ti_backend *be, size_t act_bytes,
                      size_t scratch_bytes);
/* Frees arenas and backend state (not the tape: the caller owns it). NULL-safe. */
void ti_ctx_free(struct ti_ctx *ctx);

static inline void ti_ctx_no_grad_begin(struct ti_ctx *ctx) {
    ctx->no_grad++;
}
static inline void ti_ctx_no_grad_end(struct ti_ctx *ctx) {
    ctx->no_grad--;
}

/* A new uninitialised contiguous tensor on ctx's device (one reference). */
ti_status ti_ctx_tensor(struct ti_ctx *ctx, struct ti_tensor *out, enum ti_dtype dt, int ndim,
                        const int64_t *shape);
/* Same, filled with zeros. */
ti_status ti_ctx_zeros(struct ti_ctx *ctx, struct ti_tensor *out, enum ti_dtype dt, int ndim,
                       const int64_t *shape);
/* A new tensor on ctx's device holding a copy of contiguous host data. */
ti_status ti_ctx_upload(struct ti_ctx *ctx, struct ti_tensor *out, const void *host,
                        enum ti_dtype dt, int ndim, const int64_t *shape);
/* Copies a tensor (any device, any strides) into contiguous host memory of `bytes` bytes;
 * the tensor's own dtype is kept. */
ti_status ti_ctx_download(struct ti_ctx *ctx, void *host, size_t bytes, const struct ti_tensor *t);
/* Copies src into dst (same shape and dtype; both contiguous; devices may differ). */
ti_status ti_ctx_copy_into(struct ti_ctx *ctx, struct ti_tensor *dst, const struct ti_tensor *src);
/* Fills a contiguous tensor with zeros. */
ti_status ti_ctx_zero(struct ti_ctx *ctx, struct ti_tensor *t);
/* Waits for queued device work. */
ti_status ti_ctx_sync(struct ti_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif /* TI_CONTEXT_H */
