/*
 * test_ops_gemm.c - tests of the GEMM op family beyond the shared op-case table (cases_gemm.c):
 *   - the CPU conv2d fast paths (Winograd F(2x2,3x3), shifted GEMM, in-place 1x1, chunked
 *     im2col) at sizes the small op cases cannot reach (several Winograd / im2col chunks, a
 *     chunk that spans two images, 3x3 with too few tiles for Winograd through im2col or the
 *     shifted GEMM: the op cases, with few filters, always take Winograd for 3x3 stride 1), forward
 * and every gradient, against a direct loop in double;
 *   - argument validation: errors name the op, the argument and the shapes.
 * Usage: test_ops_gemm
 */
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"
#include "test_common.h"

struct conv_spec {
    const char *name;
    enum ti_dtype dt;
    int B, Ci, H, W, Co, KH, KW, stride;
    int pad[4]; /* top, bottom, left, right */
    int bias;
    double atol, rtol; /* against the double reference */
};

static const struct conv_spec specs[] = {
    /* Winograd, f64: V/M need 2 chunks (360 + 4 tile rows), the first spans both images; its
     * backward-data too; dweight through the shifted GEMM */
    {"winograd_chunks_f64", TI_DTYPE_F64, 2, 5, 363, 363, 3, 3, 3, 1, {1, 1, 1, 1}, 1, 1e-10, 1e-9},
    /* Winograd, f64, transformed weights over WINO_U_BYTES (16 * 392 * 400 doubles = 20 MB):
     * made and used in two blocks of output channels (208 + 184; backward-data 208 + 192) */
    {"winograd_weight_blocks_f64",
     TI_DTYPE_F64,
     1,
     400,
     24,
     22,
     392,
     3,
     3,
     1,
     {1, 1, 1, 1},
     1,
     1e-10,
     1e-9},
    /* Winograd, f32, a small UNet-like layer */
    {"winograd_f32", TI_DTYPE_F32, 1, 16, 64, 64, 16, 3, 3, 1, {1, 1, 1, 1}, 1, 1e-4, 1e-4},
    /* Winograd, odd sizes, no padding (negative offsets in backward-data) */
    {"winograd_nopad_f32", TI_DTYPE_F32, 2, 7, 13, 11, 5, 3, 3, 1, {0, 0, 0, 0}, 0, 1e-4, 1e-4},
    /* im2col, f32, stride 2 with the VAE padding: 3 chunks of output rows (228, 228, 55) */
    {"im2col_chunks_f32", TI_DTYPE_F32, 1, 8, 1023, 1023, 2, 3, 3, 2, {0, 1, 0, 1}, 1, 1e-4, 1e-4},
    /* shifted GEMM, 5x5 with padding (cropped garbage columns) */
    {"shifted_5x5_f32", TI_DTYPE_F32, 2, 7, 33, 31, 5, 5, 5, 1, {2, 2, 2, 2}, 1, 1e-4, 1e-4},
    /* 3x3 stride 1 on an 8x8 image with many filters: im2col (too few tiles for Winograd) */
    {"im2col_3x3_s1_f32", TI_DTYPE_F32, 1, 72, 8, 8, 72, 3, 3, 1, {1, 1, 1, 1}, 1, 1e-4, 1e-4},
    /* 3x3 stride 1, too few tiles for Winograd, images larger than 2*Cout: the shifted GEMM */
    {"shifted_3x3_f32", TI_DTYPE_F32, 2, 72, 10, 12, 72, 3, 3, 1, {1, 1, 1, 1}, 1, 1e-4, 1e-4},
    /* 1x1 in place: one GEMM per image straight into the output */
    {"inplace_1x1_f32", TI_DTYPE_F32, 2, 32, 20, 24, 16, 1, 1, 1, {0, 0, 0, 0}, 1, 1e-4, 1e-4},
};

/* y, dx, dw, db of the convolution in double, by the definition (ops.h CONV2D). */
static void conv_reference(const struct conv_spec *s, const double *x, const double *w,
                           const double *b, const double *dy, int Ho, int Wo, double *y, double *dx,
                           double *dw, double *db) {
    long nx = (long)s->B * s->Ci * s->H * s->W, nw = (long)s->Co * s->Ci * s->KH * s->KW;
    memset(dx, 0, (size_t)nx * sizeof *dx);
    memset(dw, 0, (size_t)nw * sizeof *dw);
    memset(db, 0, (size_t)s->Co * sizeof *db);
    for (int n = 0; n < s->B; n++)
        for (int o = 0; o < s->Co; o++)
            for (int i = 0; i < Ho; i++)
                for (int j = 0; j < Wo; j++) {
                    long yi = (((long)n * s->Co + o) * Ho + i) * Wo + j;
                    double acc = s->bias ? b[o] : 0, g = dy[yi];
                    db[o] += g;
                    for (int c = 0; c < s->Ci; c++)
                        for (int u = 0; u < s->KH; u++) {
                            int h = i * s->stride + u - s->pad[0];
                            if (h < 0 || h >= s->H) continue;
                            for (int v = 0; v < s->KW; v++) {
                                int ww = j * s->stride + v - s->pad[2];
                                if (ww < 0 || ww >= s->W) continue;
                                long xi = (((long)n * s->Ci + c) * s->H + h) * s->W + ww;
                                long wi = (((long)o * s->Ci + c) * s->KH + u) * s->KW + v;
                                acc += w[wi] * x[xi];
                                dx[xi] += w[wi] * g;
                                dw[wi] += x[xi] * g;
                            }
                        }
                    y[yi] = acc;
                }
}

/* host doubles (rounded to f32 when dt is f32, in place) -> a tensor of dtype dt */
static ti_status upload(struct ti_ctx *ctx, struct ti_tensor *t, double *v, long n,
                        enum ti_dtype dt, int ndim, const int64_t *shape) {
    if (dt == TI_DTYPE_F64) return ti_ctx_upload(ctx, t, v, dt, ndim, shape);
    float *f = malloc((size_t)n * sizeof *f);
    for (long i = 0; i < n; i++) {
        f[i] = (float)v[i];
        v[i] = f[i];
    }
    ti_status st = ti_ctx_upload(ctx, t, f, dt, ndim, shape);
    free(f);
    return st;
}

static double *download(struct ti_ctx *ctx, const struct ti_tensor *t) {
    long n = (long)ti_tensor_numel(t);
    double *d = malloc((size_t)n * sizeof *d);
    if (t->dtype == TI_DTYPE_F64) {
        CHECK_OK(ti_ctx_download(ctx, d, (size_t)n * sizeof *d, t), &ctx->err);
        return d;
    }
    float *f = malloc((size_t)n * sizeof *f);
    CHECK_OK(ti_ctx_download(ctx, f, (size_t)n * sizeof *f, t), &ctx->err);
    for (long i = 0; i < n; i++)
        d[i] = f[i];
    free(f);
    return d;
}

static double *random_array(struct ti_rng *r, long n) {
    double *v = malloc((size_t)n * sizeof *v);
    ti_rng_uniform_f64(r, v, (size_t)n, -1, 1);
    return v;
}

static void check_conv(const struct conv_spec *s) {
    int Ho = (s->H + s->pad[0] + s->pad[1] - s->KH) / s->stride + 1;
    int Wo = (s->W + s->pad[2] + s->pad[3] - s->KW) / s->stride + 1;
    long nx = (long)s->B * s->Ci * s->H * s->W, nw = (long)s->Co * s->Ci * s->KH * s->KW;
    long ny = (long)s->B * s->Co * Ho * Wo;
    const int64_t xs[4] = {s->B, s->Ci, s->H, s->W}, ws[4] = {s->Co, s->Ci, s->KH, s->KW};
    const int64_t bs[1] = {s->Co}, ys[4] = {s->B, s->Co, Ho, Wo};
    struct ti_rng r;
    ti_rng_seed(&r, 77);
    double *x = random_array(&r, nx), *w = random_array(&r, nw), *b = random_array(&r, s->Co);
    double *dy = random_array(&r, ny);
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_tensor tx, tw, tb = ti_tensor_none(), gx, gw, gb = ti_tensor_none(), y, tdy;
    struct ti_tape *tape;
    CHECK_OK(upload(&ctx, &tx, x, nx, s->dt, 4, xs), &ctx.err);
    CHECK_OK(upload(&ctx, &tw, w, nw, s->dt, 4, ws), &ctx.err);
    if (s->bias) CHECK_OK(upload(&ctx, &tb, b, s->Co, s->dt, 1, bs), &ctx.err);
    CHECK_OK(upload(&ctx, &tdy, dy, ny, s->dt, 4, ys), &ctx.err);
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    CHECK_OK(ti_ctx_zeros(&ctx, &gx, s->dt, 4, xs), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &gw, s->dt, 4, ws), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &tx, &gx), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &tw, &gw), &ctx.err);
    if (s->bias) {
        CHECK_OK(ti_ctx_zeros(&ctx, &gb, s->dt, 1, bs), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, &tb, &gb), &ctx.err);
    }
    ti_status st = ti_conv2d(&ctx, &y, &tx, &tw, s->bias ? &tb : NULL, s->stride, s->pad);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        CHECK(y.shape[2] == Ho && y.shape[3] == Wo);
        double *ry = malloc((size_t)ny * sizeof *ry), *rdx = malloc((size_t)nx * sizeof *rdx);
        double *rdw = malloc((size_t)nw * sizeof *rdw), *rdb = malloc((size_t)s->Co * sizeof *rdb);
        conv_reference(s, x, w, b, dy, Ho, Wo, ry, rdx, rdw, rdb);
        double *got = download(&ctx, &y);
        if (!CHECK_CLOSE(got, ry, ny, s->atol, s->rtol)) fprintf(stderr, "  (%s: out)\n", s->name);
        free(got);
        CHECK_OK(ti_tape_backward(&ctx, &y, &tdy), &ctx.err);
        got = download(&ctx, &gx);
        if (!CHECK_CLOSE(got, rdx, nx, s->atol, s->rtol))
            fprintf(stderr, "  (%s: dinp)\n", s->name);
        free(got);
        got = download(&ctx, &gw);
        /* dweight sums B*Ho*Wo products: scale the absolute tolerance with the count */
        double wa = s->atol * (s->dt == TI_DTYPE_F32 ? 10 : 1);
        if (!CHECK_CLOSE(got, rdw, nw, wa, s->rtol)) fprintf(stderr, "  (%s: dweight)\n", s->name);
        free(got);
        if (s->bias) {
            got = download(&ctx, &gb);
            if (!CHECK_CLOSE(got, rdb, s->Co, wa, s->rtol))
                fprintf(stderr, "  (%s: dbias)\n", s->name);
            free(got);
        }
        free(ry);
        free(rdx);
        free(rdw);
        free(rdb);
    }
    ti_tape_free(&tape);
    ctx.tape = NULL;
    ti_tensor_release(&y);
    ti_tensor_release(&tdy);
    ti_tensor_release(&tx);
    ti_tensor_release(&tw);
    ti_tensor_release(&tb);
    ti_tensor_release(&gx);
    ti_tensor_release(&gw);
    ti_tensor_release(&gb);
    ti_ctx_free(&ctx);
    free(x);
    free(w);
    free(b);
    free(dy);
}

TEST(conv2d_paths_match_direct_loop) {
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        int before = tc_failures;
        check_conv(&specs[i]);
        printf("  %-24s %s\n", specs[i].name, tc_failures == before ? "ok" : "FAIL");
    }
}

/* st must be `code` and the message must contain every one of the strings. */
static void expect_error(struct ti_ctx *ctx, ti_status st, ti_status code, const char *a,
                         const char *b, const char *c) {
    CHECK(st == code);
    CHECK(strstr(ctx->err.msg, a) != NULL);
    CHECK(strstr(ctx->err.msg, b) != NULL);
    CHECK(c == NULL || strstr(ctx->err.msg, c) != NULL);
    if (st != code || !strstr(ctx->err.msg, a) || !strstr(ctx->err.msg, b))
        fprintf(stderr, "  message was: %s\n", ctx->err.msg);
    ti_err_clear(&ctx->err);
}

TEST(errors_name_op_argument_and_shapes) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_tensor x, w, w2, bias, x4, w4, out;
    const int64_t s_x[2] = {5, 7}, s_w[2] = {11, 6}, s_w2[2] = {11, 7}, s_b[1] = {10};
    const int64_t s_x4[4] = {1, 3, 4, 4}, s_w4[4] = {5, 2, 3, 3};
    CHECK_OK(ti_ctx_zeros(&ctx, &x, TI_DTYPE_F32, 2, s_x), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &w, TI_DTYPE_F32, 2, s_w), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &w2, TI_DTYPE_F32, 2, s_w2), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &bias, TI_DTYPE_F32, 1, s_b), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &x4, TI_DTYPE_F32, 4, s_x4), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &w4, TI_DTYPE_F32, 4, s_w4), &ctx.err);

    expect_error(&ctx, ti_linear(&ctx, &out, &x, &w, NULL), TI_ERR_SHAPE, "linear", "'weight'",
                 "[11, 6]");
    CHECK(out.data == NULL);
    expect_error(&ctx, ti_linear(&ctx, &out, &x, &w2, &bias), TI_ERR_SHAPE, "linear", "'bias'",
                 "[10]");
    expect_error(&ctx, ti_matmul(&ctx, &out, &x, &w2, 0, 0, 1.0), TI_ERR_SHAPE, "matmul", "[5, 7]",
                 "[11, 7]");
    expect_error(&ctx, ti_conv2d(&ctx, &out, &x4, &w4, NULL, 1, NULL), TI_ERR_SHAPE, "conv2d",
                 "'weight'", "[5, 2, 3, 3]");
    const int64_t s_w5[4] = {5, 3, 7, 3};
    struct ti_tensor w5;
    CHECK_OK(ti_ctx_zeros(&ctx, &w5, TI_DTYPE_F32, 4, s_w5), &ctx.err);
    const int pad1[4] = {1, 1, 1, 1};
    expect_error(&ctx, ti_conv2d(&ctx, &out, &x4, &w5, NULL, 1, pad1), TI_ERR_SHAPE, "conv2d",
                 "empty", "[1, 3, 4, 4]");
    expect_error(&ctx, ti_conv2d(&ctx, &out, &x4, &w5, NULL, 0, pad1), TI_ERR_INVALID, "conv2d",
                 "stride", NULL);
    /* the valid calls work: matmul with b transposed, conv with the weight fitting */
    CHECK_OK(ti_matmul(&ctx, &out, &x, &w2, 0, 1, 1.0), &ctx.err);
    CHECK(out.ndim == 2 && out.shape[0] == 5 && out.shape[1] == 11);
    ti_tensor_release(&out);
    const int pad2[4] = {2, 1, 0, 0};
    CHECK_OK(ti_conv2d(&ctx, &out, &x4, &w5, NULL, 1, pad2), &ctx.err);
    CHECK(out.ndim == 4 && out.shape[1] == 5 && out.shape[2] == 1 && out.shape[3] == 2);
    ti_tensor_release(&out);
    ti_tensor_release(&x);
    ti_tensor_release(&w);
    ti_tensor_release(&w2);
    ti_tensor_release(&w5);
    ti_tensor_release(&bias);
    ti_tensor_release(&x4);
    ti_tensor_release(&w4);
    ti_ctx_free(&ctx);
}

int main(void) {
    RUN(conv2d_paths_match_direct_loop);
    RUN(errors_name_op_argument_and_shapes);
    return tc_finish();
}
