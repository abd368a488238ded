/*
 * test_autograd_guards.c - guards of the autograd engine that no op case shows:
 *   - a node keeping more tensors than it has room for (or one field twice) is an error, not a
 *     silent drop that backward would turn into a use-after-free (ti_node_keep);
 *   - a checkpointed block whose re-run fails, or returns another shape, makes backward return
 *     that error, and the partial re-run is released (no activation left behind);
 *   - frozen weights skip their weight-gradient GEMM (linear, conv2d through both of its CPU
 *     paths), counted with ti_cpu_gemm_counters;
 *   - the backend tables are filled once when several threads make their first contexts at the
 *     same time (run it under TI_SANITIZE=thread to see a race; here: every thread gets the one
 *     complete table).
 * `test_autograd_guards cuda` (ctest test_autograd_guards_cuda, label cuda) runs the thread test
 * on the CUDA backend and reports SKIP (77) without a GPU.
 */
#include <pthread.h>
#include <string.h>

#include "context.h"
#include "ops.h"
#include "ops_internal.h" /* defines: ti_node_keep, ti_tape_record, struct ti_node */
#include "tape.h"
#include "test_common.h"

static struct ti_tensor up_f32(struct ti_ctx *ctx, int ndim, const int64_t *shape, float scale) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *h = malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++)
        h[i] = scale * (float)((i * 37 + 11) % 23 - 11) / 11.0f;
    struct ti_tensor t = ti_tensor_none();
    CHECK_OK(ti_ctx_upload(ctx, &t, h, TI_DTYPE_F32, ndim, shape), &ctx->err);
    free(h);
    return t;
}

/* ---- ti_node_keep ---------------------------------------------------------------------------- */

TEST(node_keep_overflow_is_an_error) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 1 << 20, 1 << 20), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    const int64_t shape[1] = {5};
    struct ti_tensor x = up_f32(&ctx, 1, shape, 1), out = up_f32(&ctx, 1, shape, 1);
    struct ti_node *n;
    CHECK_OK(ti_tape_record(&ctx, TI_OP_MUL, &out, &n), &ctx.err);
    n->args.mul.a = x;
    n->args.mul.b = x;
    CHECK_OK(ti_node_keep(&ctx, n, &n->args.mul.a), &ctx.err);
    CHECK_OK(ti_node_keep(&ctx, n, &n->args.mul.b), &ctx.err);
    /* the same field twice would be released once: an error */
    CHECK(ti_node_keep(&ctx, n, &n->args.mul.a) == TI_ERR_INTERNAL);
    CHECK(strstr(ctx.err.msg, "op 'mul' keeps the same tensor field twice") != NULL);
    ti_err_clear(&ctx.err);
    /* a node that has no room left (no op's args have more than TI_NODE_MAX_KEPT tensor
     * fields today, so the count is set by hand): an error naming the op, not a silent drop */
    int kept = n->nkept;
    n->nkept = TI_NODE_MAX_KEPT;
    CHECK(ti_node_keep(&ctx, n, &n->args.mul.out) == TI_ERR_INTERNAL);
    CHECK(strstr(ctx.err.msg, "op 'mul' keeps more than 10 tensors") != NULL);
    ti_err_clear(&ctx.err);
    /* the chained form stops at the first error and keeps it */
    ti_status st = TI_OK;
    TI_NODE_KEEP(st, &ctx, n, &n->args.mul.out);
    CHECK(st == TI_ERR_INTERNAL);
    ti_err_clear(&ctx.err);
    st = TI_ERR_SHAPE;
    n->nkept = kept;
    TI_NODE_KEEP(st, &ctx, n, &n->args.mul.out); /* not called after an earlier error */
    CHECK(st == TI_ERR_SHAPE && n->nkept == kept);
    /* a tensor outside the node's args is an error too */
    struct ti_tape *t2;
    CHECK_OK(ti_tape_init(&t2, &ctx.err), &ctx.err);
    ctx.tape = t2;
    struct ti_tensor out2 = up_f32(&ctx, 1, shape, 1);
    CHECK_OK(ti_tape_record(&ctx, TI_OP_MUL, &out2, &n), &ctx.err);
    CHECK(ti_node_keep(&ctx, n, &x) == TI_ERR_INTERNAL);
    CHECK(strstr(ctx.err.msg, "not a field of its node's args") != NULL);
    ti_err_clear(&ctx.err);
    ti_tape_free(&t2);
    ctx.tape = tape;
    /* the kept references go with the tape: nothing is left alive */
    ti_tape_clear(&ctx);
    ti_tensor_release(&x);
    ti_tensor_release(&out);
    ti_tensor_release(&out2);
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
}

/* ---- checkpoint backward errors -------------------------------------------------------------- */

struct block_state {
    int calls;
    int fail_on_rerun;  /* the re-run records one op, then fails */
    int shape_on_rerun; /* the re-run returns another shape */
};

static ti_status block(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                       int n_in, void *user) {
    struct block_state *s = user;
    int rerun = s->calls++ > 0;
    struct ti_tensor y;
    TI_TRY(ti_scale(ctx, &y, &in[0], 2.0)); /* recorded on the re-run */
    if (rerun && s->fail_on_rerun) {
        ti_tensor_release(&y);
        return ti_error(&ctx->err, TI_ERR_INVALID, "block: failing on purpose");
    }
    if (rerun && s->shape_on_rerun) {
        const int64_t two[2] = {1, 7};
        ti_status st = ti_reshape(ctx, out, &y, 2, two);
        ti_tensor_release(&y);
        return st;
    }
    ti_status st = ti_unary(ctx, out, &y, TI_UNARY_EXP, 0, 0);
    ti_tensor_release(&y);
    return st;
}

/* forward through the checkpointed block, backward; returns backward's status */
static ti_status checkpoint_step(struct block_state *s, struct ti_err *err_out) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 1 << 20, 1 << 20), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    const int64_t shape[1] = {7};
    struct ti_tensor x = up_f32(&ctx, 1, shape, 0.5f), gx;
    CHECK_OK(ti_ctx_zeros(&ctx, &gx, TI_DTYPE_F32, 1, shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &x, &gx), &ctx.err);
    struct ti_tensor y, loss;
    CHECK_OK(ti_checkpoint(&ctx, &y, block, s, 1, &x), &ctx.err);
    CHECK_OK(ti_sum(&ctx, &loss, &y, 0, NULL, 0), &ctx.err);
    ti_tensor_release(&y);
    ti_status st = ti_tape_backward(&ctx, &loss, NULL);
    *err_out = ctx.err;
    ti_tensor_release(&loss);
    CHECK(ti_tape_node_count(tape) == 0);
    ti_tensor_release(&x);
    ti_tensor_release(&gx);
    /* whatever backward did, the re-run's activations are gone */
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
    return st;
}

TEST(checkpoint_rerun_errors_are_returned) {
    struct ti_err e;
    struct block_state ok = {0, 0, 0};
    CHECK_OK(checkpoint_step(&ok, &e), &e);
    CHECK(ok.calls == 2);
    struct block_state fail = {0, 1, 0};
    CHECK(checkpoint_step(&fail, &e) == TI_ERR_INVALID);
    CHECK(strstr(e.msg, "failing on purpose") != NULL);
    CHECK(strstr(e.msg, "checkpoint") != NULL); /* the walk names the op whose backward failed */
    struct block_state shape = {0, 0, 1};
    CHECK(checkpoint_step(&shape, &e) == TI_ERR_INTERNAL);
    CHECK(strstr(e.msg, "does not fit") != NULL);
}

/* ---- frozen weights skip the weight-gradient GEMM -------------------------------------------- */

struct gemm_work {
    uint64_t calls, macs;
};

/* GEMM work of the backward of one linear (op 0) or conv2d (op 1, stride s, pad p) with the
 * input and/or the weight trainable */
static struct gemm_work backward_gemms(int op, int s, int p, int want_x, int want_w) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 1 << 20, 1 << 20), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    const int64_t xs_lin[2] = {13, 11}, ws_lin[2] = {7, 11}, bs[1] = {7};
    const int64_t xs_conv[4] = {2, 5, 9, 11}, ws_conv[4] = {7, 5, 3, 3};
    struct ti_tensor x = op ? up_f32(&ctx, 4, xs_conv, 1) : up_f32(&ctx, 2, xs_lin, 1);
    struct ti_tensor w = op ? up_f32(&ctx, 4, ws_conv, 1) : up_f32(&ctx, 2, ws_lin, 1);
    struct ti_tensor b = up_f32(&ctx, 1, bs, 1);
    struct ti_tensor gx = ti_tensor_none(), gw = ti_tensor_none(), y, loss;
    if (want_x) {
        CHECK_OK(ti_ctx_zeros(&ctx, &gx, TI_DTYPE_F32, x.ndim, x.shape), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, &x, &gx), &ctx.err);
    }
    if (want_w) {
        CHECK_OK(ti_ctx_zeros(&ctx, &gw, TI_DTYPE_F32, w.ndim, w.shape), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, &w, &gw), &ctx.err);
    }
    const int pad[4] = {p, p, p, p};
    if (op)
        CHECK_OK(ti_conv2d(&ctx, &y, &x, &w, &b, s, pad), &ctx.err);
    else
        CHECK_OK(ti_linear(&ctx, &y, &x, &w, &b), &ctx.err);
    CHECK_OK(ti_sum(&ctx, &loss, &y, 0, NULL, 0), &ctx.err);
    struct gemm_work before, after;
    ti_cpu_gemm_counters(&before.calls, &before.macs);
    CHECK_OK(ti_tape_backward(&ctx, &loss, NULL), &ctx.err);
    ti_cpu_gemm_counters(&after.calls, &after.macs);
    struct ti_tensor *all[7] = {&x, &w, &b, &gx, &gw, &y, &loss};
    for (int i = 0; i < 7; i++)
        ti_tensor_release(all[i]);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
    struct gemm_work d = {after.calls - before.calls, after.macs - before.macs};
    return d;
}

TEST(frozen_weights_skip_weight_gradient_gemm) {
    /* linear: x (13, 11), W (7, 11): dx = g W and dW = g^T x are one GEMM of 13*7*11 each */
    struct gemm_work lx = backward_gemms(0, 1, 0, 1, 0), lxw = backward_gemms(0, 1, 0, 1, 1);
    CHECK(lx.calls == 1 && lx.macs == 13 * 7 * 11);
    CHECK(lxw.calls == 2 && lxw.macs == 2 * 13 * 7 * 11);
    /* conv2d x (2, 5, 9, 11), W (7, 5, 3, 3): stride 1 pad 1 (shifted-GEMM path) and stride 2
     * pad 1 (im2col path). The weight gradient needs at least B*Ho*Wo*Cout*Cin*KH*KW
     * multiply-adds; with the weight frozen none of them runs: the input-only and weight-only
     * work add up to the work with both, and the weight-only part is at least that count. */
    for (int s = 1; s <= 2; s++) {
        int64_t ho = (9 + 2 - 3) / s + 1, wo = (11 + 2 - 3) / s + 1;
        uint64_t dw_min = (uint64_t)(2 * ho * wo * 7 * 5 * 9);
        struct gemm_work x_only = backward_gemms(1, s, 1, 1, 0);
        struct gemm_work w_only = backward_gemms(1, s, 1, 0, 1);
        struct gemm_work both = backward_gemms(1, s, 1, 1, 1);
        CHECK(x_only.calls > 0 && w_only.calls > 0);
        CHECK(x_only.calls + w_only.calls == both.calls);
        CHECK(x_only.macs + w_only.macs == both.macs);
        CHECK(w_only.macs >= dw_min);
        CHECK(both.macs - x_only.macs >= dw_min);
        printf("  conv stride %d: GEMM calls/MACs input-only %llu/%llu, weight-only %llu/%llu, "
               "both %llu/%llu\n",
               s, (unsigned long long)x_only.calls, (unsigned long long)x_only.macs,
               (unsigned long long)w_only.calls, (unsigned long long)w_only.macs,
               (unsigned long long)both.calls, (unsigned long long)both.macs);
    }
}

/* ---- backend tables under concurrent first use ----------------------------------------------- */

#define NTHREADS 8

struct racer {
    pthread_barrier_t *go;
    int cuda;
    const struct ti_backend *be;
    int table_ok, ctx_ok;
};

static void *race(void *arg) {
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    const struct ti_backend *be = NULL;
    if (r->cuda) {
        struct ti_err err = {0};
        if (ti_backend_cuda(&be, 0, &err) != TI_OK) be = NULL;
    } else {
        be = ti_backend_cpu();
    }
    r->be = be;
    if (!be) return NULL;
    /* the table this thread sees is complete: every slot of f32 that the CPU fills */
    const struct ti_backend *cpu = ti_backend_cpu();
    int ok = be->kctx_init != NULL && be->mem_alloc != NULL;
    for (int i = 0; i < ti_kernels_count(); i++)
        if ((ti_kernels_slot(&cpu->k[TI_DTYPE_F32], i) != NULL) !=
            (ti_kernels_slot(&be->k[TI_DTYPE_F32], i) != NULL))
            ok = 0;
    r->table_ok = ok;
    struct ti_ctx ctx;
    r->ctx_ok = ti_ctx_init(&ctx, be, 1 << 16, 1 << 16) == TI_OK;
    ti_ctx_free(&ctx);
    return NULL;
}

static void first_use_from_threads(int cuda) {
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    struct racer r[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].go = &go;
        r[i].cuda = cuda;
        CHECK(pthread_create(&th[i], NULL, race, &r[i]) == 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < NTHREADS; i++) {
        CHECK(r[i].be != NULL && r[i].be == r[0].be);
        CHECK(r[i].table_ok);
        CHECK(r[i].ctx_ok);
    }
}

/* must run before anything else in the binary touches a backend */
TEST(backend_tables_filled_once_across_threads) {
    first_use_from_threads(0);
}

TEST(cuda_backend_tables_filled_once_across_threads) {
    if (ti_cuda_device_count() == 0) {
        TC_SKIP_TEST("no CUDA device (or built without CUDA)");
        return;
    }
    first_use_from_threads(1);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "cuda") == 0) {
        RUN(cuda_backend_tables_filled_once_across_threads);
        return tc_finish();
    }
    RUN(backend_tables_filled_once_across_threads);
    RUN(node_keep_overflow_is_an_error);
    RUN(checkpoint_rerun_errors_are_returned);
    RUN(frozen_weights_skip_weight_gradient_gemm);
    return tc_finish();
}
