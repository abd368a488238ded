/*
 * test_core.c - the engine's foundations: f16/bf16 conversion, arenas (reuse, coalescing, no
 * system allocation in a steady state), the tape (gradients only from watched tensors,
 * activations released by backward, recomputation saving memory), error messages.
 */
#include <string.h>

#include "context.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"
#include "test_common.h"

TEST(half_conversions) {
    /* IEEE 754 binary16 / bfloat16 encodings (from the standards, not from this code) */
    CHECK(ti_f32_to_f16(1.0f) == 0x3c00);
    CHECK(ti_f32_to_f16(-2.0f) == 0xc000);
    CHECK(ti_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(ti_f32_to_f16(65520.0f) == 0x7c00);               /* rounds to +inf */
    CHECK(ti_f32_to_f16(5.9604644775390625e-8f) == 0x0001); /* smallest subnormal */
    CHECK(ti_f32_to_f16(0.1f) == 0x2e66);
    CHECK(ti_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie -> even */
    CHECK(ti_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie -> even (up) */
    CHECK(ti_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(ti_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(ti_f16_to_f32(0xfc00) == -INFINITY);
    CHECK(isnan(ti_f16_to_f32(ti_f32_to_f16(NAN))));
    CHECK(ti_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(ti_f32_to_bf16(-3.0f) == 0xc040);
    CHECK(ti_f32_to_bf16(1.00390625f) == 0x3f80); /* 1 + 2^-8: tie -> even */
    CHECK(ti_f32_to_bf16(1.01171875f) == 0x3f82); /* 1 + 3*2^-8: tie -> even (up) */
    CHECK(ti_bf16_to_f32(0x4049) == 3.140625f);
    /* every f16 value survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (ti_f32_to_f16(ti_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0);
}

TEST(pool_arena_reuse_and_coalesce) {
    struct ti_err err = {0};
    struct ti_arena *a;
    CHECK_OK(ti_arena_init(&a, ti_backend_cpu(), TI_ARENA_POOL, "t", 1 << 20, 0, &err), &err);
    void *p1, *p2, *p3;
    struct ti_block *b1, *b2, *b3;
    CHECK_OK(ti_arena_alloc(a, 1000, &p1, &b1, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 5000, &p2, &b2, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 300, &p3, &b3, &err), &err);
    CHECK(p1 != p2 && p2 != p3);
    CHECK(ti_arena_stats(a).live_blocks == 3);
    int64_t sys = ti_arena_stats(a).system_allocs;
    ti_block_release(b1);
    ti_block_release(b2);
    /* the two freed neighbours coalesce: 6000 bytes fit where they were */
    void *p4;
    struct ti_block *b4;
    CHECK_OK(ti_arena_alloc(a, 6000, &p4, &b4, &err), &err);
    CHECK(p4 == p1);
    ti_block_retain(b4);
    ti_block_release(b4);
    CHECK(ti_arena_stats(a).live_blocks == 2); /* still referenced once */
    ti_block_release(b4);
    ti_block_release(b3);
    CHECK(ti_arena_stats(a).in_use == 0);
    CHECK(ti_arena_stats(a).system_allocs == sys);
    /* a request larger than the chunk grows the arena by one chunk */
    void *big;
    struct ti_block *bb;
    CHECK_OK(ti_arena_alloc(a, 3 << 20, &big, &bb, &err), &err);
    CHECK(ti_arena_stats(a).system_allocs == sys + 1);
    ti_block_release(bb);
    ti_arena_free(&a);
    CHECK(a == NULL);
}

TEST(pool_arena_limit_names_arena) {
    struct ti_err err = {0};
    struct ti_arena *a;
    CHECK_OK(ti_arena_init(&a, ti_backend_cpu(), TI_ARENA_POOL, "acts", 4096, 8192, &err), &err);
    void *p;
    struct ti_block *b;
    CHECK(ti_arena_alloc(a, 100000, &p, &b, &err) == TI_ERR_NOMEM);
    CHECK(strstr(err.msg, "acts") != NULL);
    ti_arena_free(&a);
}

TEST(stack_arena_mark_rewind) {
    struct ti_err err = {0};
    struct ti_arena *a;
    CHECK_OK(ti_arena_init(&a, ti_backend_cpu(), TI_ARENA_STACK, "s", 4096, 0, &err), &err);
    void *p1, *p2, *p3;
    CHECK_OK(ti_arena_alloc(a, 100, &p1, NULL, &err), &err);
    size_t m = ti_arena_mark(a);
    CHECK_OK(ti_arena_alloc(a, 100, &p2, NULL, &err), &err);
    ti_arena_rewind(a, m);
    CHECK_OK(ti_arena_alloc(a, 100, &p3, NULL, &err), &err);
    CHECK(p2 == p3);
    CHECK_OK(ti_arena_alloc(a, 10000, &p3, NULL, &err), &err); /* grows into a second chunk */
    CHECK(ti_arena_stats(a).reserved == 4096 + 10240);
    /* emptied after growing, it trades its chunks for one holding the whole demand (3 pieces:
     * 256 + 256 + 10240 bytes, not the 4096 + 10240 reserved), taken on the next allocation */
    ti_arena_reset(a);
    CHECK(ti_arena_stats(a).reserved == 0);
    int64_t sys = ti_arena_stats(a).system_allocs;
    CHECK_OK(ti_arena_alloc(a, 100, &p1, NULL, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 100, &p2, NULL, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 10000, &p3, NULL, &err), &err);
    CHECK(ti_arena_stats(a).reserved == 256 + 256 + 10240);
    CHECK(ti_arena_stats(a).system_allocs == sys + 1);
    /* from then on the memory is kept for reuse: same addresses, nothing new from the system */
    ti_arena_rewind(a, 0);
    void *q1, *q2, *q3;
    CHECK_OK(ti_arena_alloc(a, 100, &q1, NULL, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 100, &q2, NULL, &err), &err);
    CHECK_OK(ti_arena_alloc(a, 10000, &q3, NULL, &err), &err);
    CHECK(q1 == p1 && q2 == p2 && q3 == p3);
    ti_arena_reset(a);
    CHECK_OK(ti_arena_alloc(a, 100, &q1, NULL, &err), &err);
    CHECK(q1 == p1);
    CHECK(ti_arena_stats(a).system_allocs == sys + 1);
    ti_arena_free(&a);
}

/* One "training step" on a toy model: loss = mean((silu(x * p) + x - t)^2), p watched. */
static ti_status toy_step(struct ti_ctx *ctx, struct ti_tape *tape, struct ti_tensor *p,
                          struct ti_tensor *gp, const struct ti_tensor *x,
                          const struct ti_tensor *t) {
    ctx->tape = tape;
    TI_TRY(ti_tape_watch(ctx, p, gp));
    struct ti_tensor m, s, h, d, sq, loss;
    TI_TRY(ti_mul(ctx, &m, x, p));
    TI_TRY(ti_silu(ctx, &s, &m));
    ti_tensor_release(&m);
    TI_TRY(ti_add(ctx, &h, &s, x));
    ti_tensor_release(&s);
    TI_TRY(ti_sub(ctx, &d, &h, t));
    ti_tensor_release(&h);
    TI_TRY(ti_mul(ctx, &sq, &d, &d));
    ti_tensor_release(&d);
    TI_TRY(ti_mean(ctx, &loss, &sq, 0, NULL, 0));
    ti_tensor_release(&sq);
    ti_status st = ti_tape_backward(ctx, &loss, NULL);
    ti_tensor_release(&loss);
    return st;
}

TEST(steady_state_step_allocates_nothing) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 1 << 16, 1 << 16), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    int64_t shape[2] = {64, 300};
    float *buf = malloc(64 * 300 * sizeof(float));
    struct ti_rng r;
    ti_rng_seed(&r, 1);
    ti_rng_normal_f32(&r, buf, 64 * 300);
    struct ti_tensor x, t, p, gp;
    CHECK_OK(ti_ctx_upload(&ctx, &x, buf, TI_DTYPE_F32, 2, shape), &ctx.err);
    ti_rng_normal_f32(&r, buf, 64 * 300);
    CHECK_OK(ti_ctx_upload(&ctx, &t, buf, TI_DTYPE_F32, 2, shape), &ctx.err);
    CHECK_OK(ti_ctx_upload(&ctx, &p, buf, TI_DTYPE_F32, 1, shape + 1), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &gp, TI_DTYPE_F32, 1, shape + 1), &ctx.err);
    struct ti_arena_stats base = ti_arena_stats(ctx.act);
    int64_t sys_after_warmup = 0;
    for (int step = 0; step < 6; step++) {
        CHECK_OK(toy_step(&ctx, tape, &p, &gp, &x, &t), &ctx.err);
        struct ti_arena_stats s = ti_arena_stats(ctx.act);
        /* everything the step allocated went back to the pool */
        CHECK(s.live_blocks == base.live_blocks);
        CHECK(s.in_use == base.in_use);
        if (step == 1)
            sys_after_warmup = s.system_allocs + ti_arena_stats(ctx.scratch).system_allocs;
        if (step > 1)
            CHECK(s.system_allocs + ti_arena_stats(ctx.scratch).system_allocs == sys_after_warmup);
    }
    CHECK(ti_tape_node_count(tape) == 0);
    ti_tensor_release(&x);
    ti_tensor_release(&t);
    ti_tensor_release(&p);
    ti_tensor_release(&gp);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
    free(buf);
}

/* A spy on the CPU backend's unary backward kernel: counts calls. */
static int unary_bwd_calls;
static ti_status (*real_unary_bwd)(struct ti_kctx *, const struct ti_unary_args *);
static ti_status spy_unary_bwd(struct ti_kctx *k, const struct ti_unary_args *a) {
    unary_bwd_calls++;
    return real_unary_bwd(k, a);
}

TEST(gradients_flow_only_from_watched_tensors) {
    static struct ti_backend spy;
    spy = *ti_backend_cpu();
    real_unary_bwd = spy.k[TI_DTYPE_F64].unary_backward;
    spy.k[TI_DTYPE_F64].unary_backward = spy_unary_bwd;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, &spy, 0, 0), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    double xv[6] = {1, -2, 3, 0.5, -0.25, 2}, pv[6] = {1, 1, 1, 1, 1, 1};
    int64_t shape[1] = {6};
    struct ti_tensor x, p, gp, s, y, loss;
    CHECK_OK(ti_ctx_upload(&ctx, &x, xv, TI_DTYPE_F64, 1, shape), &ctx.err);
    CHECK_OK(ti_ctx_upload(&ctx, &p, pv, TI_DTYPE_F64, 1, shape), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &gp, TI_DTYPE_F64, 1, shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &p, &gp), &ctx.err);
    /* silu of a frozen tensor is not recorded: its backward never runs */
    CHECK_OK(ti_silu(&ctx, &s, &x), &ctx.err);
    CHECK(s.grad < 0);
    CHECK(ti_tape_node_count(tape) == 0);
    CHECK_OK(ti_mul(&ctx, &y, &s, &p), &ctx.err);
    CHECK(y.grad >= 0);
    CHECK_OK(ti_sum(&ctx, &loss, &y, 0, NULL, 0), &ctx.err);
    CHECK(ti_tape_node_count(tape) == 2);
    CHECK_OK(ti_tape_backward(&ctx, &loss, NULL), &ctx.err);
    CHECK(unary_bwd_calls == 0);
    /* d loss / d p = silu(x) */
    double g[6], want[6];
    CHECK_OK(ti_ctx_download(&ctx, g, sizeof g, &gp), &ctx.err);
    for (int i = 0; i < 6; i++)
        want[i] = xv[i] / (1 + exp(-xv[i]));
    CHECK_CLOSE(g, want, 6, 1e-12, 1e-12);
    ti_tensor_release(&s);
    ti_tensor_release(&y);
    ti_tensor_release(&loss);
    /* with x watched too, the silu backward runs once */
    struct ti_tensor gx;
    CHECK_OK(ti_ctx_zeros(&ctx, &gx, TI_DTYPE_F64, 1, shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &p, &gp), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &x, &gx), &ctx.err);
    CHECK_OK(ti_silu(&ctx, &s, &x), &ctx.err);
    CHECK_OK(ti_mul(&ctx, &y, &s, &p), &ctx.err);
    CHECK_OK(ti_sum(&ctx, &loss, &y, 0, NULL, 0), &ctx.err);
    CHECK_OK(ti_tape_backward(&ctx, &loss, NULL), &ctx.err);
    CHECK(unary_bwd_calls == 1);
    ti_tensor_release(&s);
    ti_tensor_release(&y);
    ti_tensor_release(&loss);
    ti_tensor_release(&gx);
    ti_tensor_release(&x);
    ti_tensor_release(&p);
    ti_tensor_release(&gp);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
}

/* chain of n silus on a large tensor */
static ti_status chain(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                       int n_in, void *user) {
    (void)n_in;
    int n = *(int *)user;
    struct ti_tensor h = in[0];
    ti_tensor_retain(&h);
    for (int i = 0; i < n; i++) {
        struct ti_tensor nh;
        ti_status st = ti_silu(ctx, &nh, &h);
        ti_tensor_release(&h);
        if (st != TI_OK) return st;
        h = nh;
    }
    *out = h;
    return TI_OK;
}

static size_t peak_of_step(int use_checkpoint, double *grad0) {
    struct ti_ctx ctx;
    ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0);
    struct ti_tape *tape;
    ti_tape_init(&tape, &ctx.err);
    ctx.tape = tape;
    int64_t shape[1] = {1 << 16};
    struct ti_tensor x, gx, y, loss;
    float *buf = calloc((size_t)shape[0], sizeof(float));
    for (int i = 0; i < shape[0]; i++)
        buf[i] = (float)(i % 7) * 0.1f;
    ti_ctx_upload(&ctx, &x, buf, TI_DTYPE_F32, 1, shape);
    ti_ctx_zeros(&ctx, &gx, TI_DTYPE_F32, 1, shape);
    ti_tape_watch(&ctx, &x, &gx);
    int n = 8;
    if (use_checkpoint)
        ti_checkpoint(&ctx, &y, chain, &n, 1, &x);
    else
        chain(&ctx, &y, &x, 1, &n);
    size_t after_forward = ti_arena_stats(ctx.act).in_use;
    ti_sum(&ctx, &loss, &y, 0, NULL, 0);
    ti_tensor_release(&y);
    ti_tape_backward(&ctx, &loss, NULL);
    ti_tensor_release(&loss);
    ti_ctx_download(&ctx, buf, (size_t)shape[0] * sizeof(float), &gx);
    *grad0 = buf[5];
    ti_tensor_release(&x);
    ti_tensor_release(&gx);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
    free(buf);
    return after_forward;
}

TEST(checkpoint_keeps_less_and_matches) {
    double g_plain, g_ckpt;
    size_t plain = peak_of_step(0, &g_plain);
    size_t ckpt = peak_of_step(1, &g_ckpt);
    /* without recomputation the 8 intermediate activations stay alive after forward */
    CHECK(ckpt * 3 < plain);
    CHECK(g_plain == g_ckpt); /* identical recomputation: bitwise equal gradient */
    CHECK(g_plain != 0);
}

TEST(errors_name_op_and_shapes) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    int64_t s1[2] = {5, 7}, s2[1] = {3};
    struct ti_tensor a, b, c;
    CHECK_OK(ti_ctx_zeros(&ctx, &a, TI_DTYPE_F32, 2, s1), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &b, TI_DTYPE_F32, 1, s2), &ctx.err);
    CHECK(ti_add(&ctx, &c, &a, &b) == TI_ERR_SHAPE);
    CHECK(strstr(ctx.err.msg, "add") && strstr(ctx.err.msg, "[5, 7]") &&
          strstr(ctx.err.msg, "[3]"));
    CHECK(c.data == NULL);
    ti_err_clear(&ctx.err);
    struct ti_tensor d;
    CHECK_OK(ti_ctx_zeros(&ctx, &d, TI_DTYPE_F64, 2, s1), &ctx.err);
    CHECK(ti_add(&ctx, &c, &a, &d) == TI_ERR_DTYPE);
    CHECK(strstr(ctx.err.msg, "f64") && strstr(ctx.err.msg, "f32"));
    ti_tensor_release(&a);
    ti_tensor_release(&b);
    ti_tensor_release(&d);
    ti_ctx_free(&ctx);
}

TEST(rng_is_deterministic_and_normal) {
    struct ti_rng a, b;
    ti_rng_seed(&a, 42);
    ti_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 100; i++)
        same &= ti_rng_next(&a) == ti_rng_next(&b);
    CHECK(same);
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = ti_rng_normal(&a);
        s += v;
        s2 += v * v;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    CHECK(fabs(mean) < 0.01);
    CHECK(fabs(var - 1) < 0.02);
}

int main(void) {
    RUN(half_conversions);
    RUN(pool_arena_reuse_and_coalesce);
    RUN(pool_arena_limit_names_arena);
    RUN(stack_arena_mark_rewind);
    RUN(steady_state_step_allocates_nothing);
    RUN(gradients_flow_only_from_watched_tensors);
    RUN(checkpoint_keeps_less_and_matches);
    RUN(errors_name_op_and_shapes);
    RUN(rng_is_deterministic_and_normal);
    return tc_finish();
}
