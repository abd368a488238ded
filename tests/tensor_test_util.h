/*
 * tensor_test_util.h - helpers for tests that compare tensors with reference values (header only,
 * static inline, test binaries only).
 *
 *   double *g = tt_download(&ctx, &out);   // every element as f64, malloc'ed; free it
 *   CHECK_CLOSE(g, want, ti_tensor_numel(&out), 1e-5, 1e-4);
 *   struct ti_tensor x = tt_upload(&ctx, values, 4, shape, TI_DTYPE_F32);
 */
#ifndef TI_TENSOR_TEST_UTIL_H
#define TI_TENSOR_TEST_UTIL_H

#include <stdlib.h>

#include "context.h"
#include "ops.h"
#include "test_common.h"

/* The tensor's elements converted to f64 (calloc'ed; zeros where the copy failed, which fails a
 * CHECK_OK). */
static inline double *tt_download(struct ti_ctx *ctx, const struct ti_tensor *t) {
    struct ti_tensor d;
    long n = (long)ti_tensor_numel(t);
    double *out = calloc((size_t)n, sizeof *out);
    CHECK_OK(ti_copy(ctx, &d, t, TI_DTYPE_F64), &ctx->err);
    CHECK_OK(ti_ctx_download(ctx, out, (size_t)n * sizeof *out, &d), &ctx->err);
    ti_tensor_release(&d);
    return out;
}

/* A host f64 array -> a tensor of dtype dt on ctx (cast with the COPY op). */
static inline struct ti_tensor tt_upload(struct ti_ctx *ctx, const double *v, int nd,
                                         const int64_t *shape, enum ti_dtype dt) {
    struct ti_tensor host, t = ti_tensor_none();
    CHECK_OK(ti_ctx_upload(ctx, &host, v, TI_DTYPE_F64, nd, shape), &ctx->err);
    CHECK_OK(ti_copy(ctx, &t, &host, dt), &ctx->err);
    ti_tensor_release(&host);
    return t;
}

#endif /* TI_TENSOR_TEST_UTIL_H */
