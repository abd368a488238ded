/*
 * test_copy_bf16.c - COPY between bf16 and f32 on the CPU (cpu/copy.c's row path, used by the
 * casts around a bf16 UNet: x_t, the context per cross-attention, an f32 residual stream) against
 * the element-wise definition: f32 -> bf16 rounds each element once to nearest even
 * (ti_f32_to_bf16), bf16 -> f32 is exact, and the backward adds the cast gradient into the
 * input's gradient (for a bf16 gradient: the f32 sum of old and new, rounded once). Contiguous
 * and permuted (strided) inputs, both directions, forward and backward.
 */
#include <stdint.h>
#include <string.h>

#include "context.h"
#include "ops.h"
#include "tape.h"
#include "test_common.h"

enum { B = 2, C = 5, H = 7, W = 9, N = B * C * H * W };

static float value(int i, int k) { /* values over many binades, with sign */
    return (float)(sin(0.7 * i + k) * exp(3.0 * cos(0.31 * i + 2 * k)));
}

/* index of element (b, c, h, w) of the (B, H, W, C) permuted view in its (B, C, H, W) source */
static int src_index(int i) {
    int c = i % C, w = (i / C) % W, h = (i / (C * W)) % H, b = i / (C * W * H);
    return ((b * C + c) * H + h) * W + w;
}

static void check_cast(enum ti_dtype from, enum ti_dtype to, int permuted) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_tape *tape = NULL;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    static float xf[N], gf[N], sf[N], got[N];
    static uint16_t xb[N], gb[N];
    for (int i = 0; i < N; i++) {
        xf[i] = value(i, 0);
        gf[i] = value(i, 1);
        sf[i] = value(i, 2);
        xb[i] = ti_f32_to_bf16(xf[i]);
        gb[i] = ti_f32_to_bf16(gf[i]);
    }
    const int64_t shape[4] = {B, C, H, W}, pshape[4] = {B, H, W, C};
    const int perm[4] = {0, 2, 3, 1};
    int bf_in = from == TI_DTYPE_BF16;
    struct ti_tensor x, g, v, y, seed, out;
    CHECK_OK(ti_ctx_upload(&ctx, &x, bf_in ? (void *)xb : (void *)xf, from, 4, shape), &ctx.err);
    CHECK_OK(ti_ctx_upload(&ctx, &g, bf_in ? (void *)gb : (void *)gf, from, 4, shape), &ctx.err);
    ctx.tape = tape;
    CHECK_OK(ti_tape_watch(&ctx, &x, &g), &ctx.err);
    if (permuted) {
        CHECK_OK(ti_permute(&ctx, &v, &x, perm), &ctx.err);
    } else {
        v = x;
        ti_tensor_retain(&v);
    }
    CHECK_OK(ti_copy(&ctx, &y, &v, to), &ctx.err);
    const int64_t *ys = permuted ? pshape : shape;
    /* forward: y[i] = cast(x at the view's element i) */
    CHECK_OK(ti_copy(&ctx, &out, &y, TI_DTYPE_F32), &ctx.err);
    CHECK_OK(ti_ctx_download(&ctx, got, sizeof got, &out), &ctx.err);
    int bad = 0;
    for (int i = 0; i < N && !bad; i++) {
        int j = permuted ? src_index(i) : i;
        float in = bf_in ? ti_bf16_to_f32(xb[j]) : xf[j];
        float want = to == TI_DTYPE_BF16 ? ti_bf16_to_f32(ti_f32_to_bf16(in)) : in;
        if (memcmp(&got[i], &want, sizeof want) != 0) {
            printf("  forward %s -> %s%s: element %d: %.9g, want %.9g\n", ti_dtype_name(from),
                   ti_dtype_name(to), permuted ? " (permuted)" : "", i, got[i], want);
            bad = 1;
        }
    }
    CHECK(!bad);
    ti_tensor_release(&out);
    /* backward: g += cast(seed), seed in y's dtype and layout */
    static uint16_t sb[N];
    for (int i = 0; i < N; i++)
        sb[i] = ti_f32_to_bf16(sf[i]);
    CHECK_OK(ti_ctx_upload(&ctx, &seed, to == TI_DTYPE_BF16 ? (void *)sb : (void *)sf, to, 4, ys),
             &ctx.err);
    CHECK_OK(ti_tape_backward(&ctx, &y, &seed), &ctx.err);
    ctx.tape = NULL;
    CHECK_OK(ti_copy(&ctx, &out, &g, TI_DTYPE_F32), &ctx.err);
    CHECK_OK(ti_ctx_download(&ctx, got, sizeof got, &out), &ctx.err);
    for (int i = 0; i < N && !bad; i++) {
        int j = permuted ? src_index(i) : i;
        float s = to == TI_DTYPE_BF16 ? ti_bf16_to_f32(sb[i]) : sf[i];
        float want = bf_in ? ti_bf16_to_f32(ti_f32_to_bf16(ti_bf16_to_f32(gb[j]) + s)) : gf[j] + s;
        /* through a view, the tape may first hold the view's gradient in x's dtype (a second
         * rounding of s before the sum) */
        float s2 = bf_in ? ti_bf16_to_f32(ti_f32_to_bf16(s)) : s;
        float want2 =
            bf_in ? ti_bf16_to_f32(ti_f32_to_bf16(ti_bf16_to_f32(gb[j]) + s2)) : gf[j] + s2;
        if (memcmp(&got[j], &want, sizeof want) != 0 &&
            !(permuted && memcmp(&got[j], &want2, sizeof want2) == 0)) {
            printf("  backward %s -> %s%s: element %d: %.9g, want %.9g\n", ti_dtype_name(from),
                   ti_dtype_name(to), permuted ? " (permuted)" : "", j, got[j], want);
            bad = 1;
        }
    }
    CHECK(!bad);
    ti_tensor_release(&out);
    ti_tensor_release(&seed);
    ti_tensor_release(&y);
    ti_tensor_release(&v);
    ti_tensor_release(&g);
    ti_tensor_release(&x);
    ti_tape_free(&tape);
    ti_ctx_free(&ctx);
}

TEST(copy_f32_to_bf16) {
    check_cast(TI_DTYPE_F32, TI_DTYPE_BF16, 0);
    check_cast(TI_DTYPE_F32, TI_DTYPE_BF16, 1);
}

TEST(copy_bf16_to_f32) {
    check_cast(TI_DTYPE_BF16, TI_DTYPE_F32, 0);
    check_cast(TI_DTYPE_BF16, TI_DTYPE_F32, 1);
}

TEST(copy_bf16_to_bf16) {
    check_cast(TI_DTYPE_BF16, TI_DTYPE_BF16, 1);
}

int main(void) {
    RUN(copy_f32_to_bf16);
    RUN(copy_bf16_to_f32);
    RUN(copy_bf16_to_bf16);
    return tc_finish();
}
