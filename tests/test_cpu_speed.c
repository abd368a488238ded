/*
 * test_cpu_speed.c - the CPU backend's kernel choice (cpu_info.h) and the oneDNN convolutions'
 * cache of blocked frozen weights (cpu/dnnl_conv.c): results always follow the weight's current
 * values (declared again after a change, or never declared), backward-data adds into dinp.
 * References: a direct convolution loop in double. Built without oneDNN the same checks run on
 * conv2d.c's own paths (the cache is then empty).
 */
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "cpu_info.h"
#include "ops.h"
#include "test_common.h"

TEST(describe_names_kernels) {
    char line[512];
    int n = ti_cpu_describe(line, sizeof line);
    printf("  %s\n", line);
    CHECK(n > 0 && (size_t)n < sizeof line);
    CHECK(strstr(line, "conv f32: ") != NULL);
    CHECK(strstr(line, "GEMM f32: ") != NULL);
    CHECK(ti_cpu_vector_level() >= 0 && ti_cpu_vector_level() <= 3);
}

/* A small UNet-like layer: batch 2 at 8x8 (oneDNN's direct kernels), batch 1 at 32x32 (1024
 * output pixels: Winograd once the weight is cached). */
enum { CI = 16, CO = 24, K = 3, HMAX = 32, BMAX = 2 };
static int B, H, W;

static void fill(float *p, int n, unsigned seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 9) % 2001) / 1000.0f - 1.0f;
    }
}

/* y = conv(x, w) + b, pad 1, stride 1 (double) */
static void ref_forward(double *y, const float *x, const float *w, const float *b) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double s = b[o];
                    for (int c = 0; c < CI; c++)
                        for (int u = 0; u < K; u++)
                            for (int v = 0; v < K; v++) {
                                int yy = i + u - 1, xx = j + v - 1;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                s += (double)w[((o * CI + c) * K + u) * K + v] *
                                     x[((n * CI + c) * H + yy) * W + xx];
                            }
                    y[((n * CO + o) * H + i) * W + j] = s;
                }
}

/* dx = base + conv^T(dy, w) */
static void ref_backward_data(double *dx, const float *base, const float *dy, const float *w) {
    for (int i = 0; i < B * CI * H * W; i++)
        dx[i] = base[i];
    for (int n = 0; n < B; n++)
        for (int o = 0; o < CO; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    for (int c = 0; c < CI; c++)
                        for (int u = 0; u < K; u++)
                            for (int v = 0; v < K; v++) {
                                int yy = i + u - 1, xx = j + v - 1;
                                if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                                dx[((n * CI + c) * H + yy) * W + xx] +=
                                    (double)w[((o * CI + c) * K + u) * K + v] *
                                    dy[((n * CO + o) * H + i) * W + j];
                            }
}

static void to_double(double *d, const float *f, int n) {
    for (int i = 0; i < n; i++)
        d[i] = f[i];
}

/* forward through the op front end, compared with the reference */
static void check_forward(struct ti_ctx *ctx, const float *x, float *w, const float *b) {
    const int64_t xs[4] = {B, CI, H, W}, ws[4] = {CO, CI, K, K}, bs[1] = {CO};
    struct ti_tensor tx = ti_tensor_view((void *)x, TI_DTYPE_F32, TI_DEVICE_CPU, 4, xs);
    struct ti_tensor tw = ti_tensor_view(w, TI_DTYPE_F32, TI_DEVICE_CPU, 4, ws);
    struct ti_tensor tb = ti_tensor_view((void *)b, TI_DTYPE_F32, TI_DEVICE_CPU, 1, bs);
    struct ti_tensor y;
    const int pad[4] = {1, 1, 1, 1};
    CHECK_OK(ti_conv2d(ctx, &y, &tx, &tw, &tb, 1, pad), &ctx->err);
    static float got[BMAX * CO * HMAX * HMAX];
    static double gd[BMAX * CO * HMAX * HMAX], want[BMAX * CO * HMAX * HMAX];
    CHECK_OK(ti_ctx_download(ctx, got, sizeof(float) * B * CO * H * W, &y), &ctx->err);
    ti_tensor_release(&y);
    to_double(gd, got, B * CO * H * W);
    ref_forward(want, x, w, b);
    CHECK_CLOSE(gd, want, B * CO * H * W, 1e-4, 1e-4);
}

/* backward-data through the kernel table (dinp starts at `base`: backward adds) */
static void check_backward_data(struct ti_ctx *ctx, const float *dy, float *w, const float *base) {
    static float dx[BMAX * CI * HMAX * HMAX], x0[BMAX * CI * HMAX * HMAX];
    static double got[BMAX * CI * HMAX * HMAX], want[BMAX * CI * HMAX * HMAX];
    memcpy(dx, base, sizeof(float) * B * CI * H * W);
    const int64_t xs[4] = {B, CI, H, W}, ws[4] = {CO, CI, K, K}, ys[4] = {B, CO, H, W};
    struct ti_conv2d_args a;
    memset(&a, 0, sizeof a);
    a.inp = ti_tensor_view(x0, TI_DTYPE_F32, TI_DEVICE_CPU, 4, xs);
    a.inp.data = NULL; /* only its shape is read by backward-data */
    a.weight = ti_tensor_view(w, TI_DTYPE_F32, TI_DEVICE_CPU, 4, ws);
    a.dout = ti_tensor_view((void *)dy, TI_DTYPE_F32, TI_DEVICE_CPU, 4, ys);
    a.dinp = ti_tensor_view(dx, TI_DTYPE_F32, TI_DEVICE_CPU, 4, xs);
    a.stride[0] = a.stride[1] = 1;
    for (int i = 0; i < 4; i++)
        a.pad[i] = 1;
    CHECK_OK(ctx->be->k[TI_DTYPE_F32].conv2d_backward(&ctx->k, &a), &ctx->err);
    to_double(got, dx, B * CI * H * W);
    ref_backward_data(want, base, dy, w);
    CHECK_CLOSE(got, want, B * CI * H * W, 1e-4, 1e-4);
}

static void cache_follows_values(int nb, int h) {
    B = nb;
    H = W = h;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    char line[512];
    ti_cpu_describe(line, sizeof line);
    int dnnl = strstr(line, "conv f32: oneDNN") != NULL;
    static float x[BMAX * CI * HMAX * HMAX], w[CO * CI * K * K], b[CO], dy[BMAX * CO * HMAX * HMAX],
        base[BMAX * CI * HMAX * HMAX];
    fill(x, B * CI * H * W, 1);
    fill(w, CO * CI * K * K, 2);
    fill(b, CO, 3);
    fill(dy, B * CO * H * W, 4);
    fill(base, B * CI * H * W, 5);

    /* not declared: never cached, a change in place is seen */
    size_t before = ti_cpu_weight_cache_bytes();
    check_forward(&ctx, x, w, b);
    CHECK(ti_cpu_weight_cache_bytes() == before);
    fill(w, CO * CI * K * K, 6);
    check_forward(&ctx, x, w, b);
    check_backward_data(&ctx, dy, w, base);

    /* declared frozen: cached (with oneDNN), and declaring new values drops the old copy */
    ti_cpu_weights_frozen(w, sizeof w);
    check_forward(&ctx, x, w, b);
    check_backward_data(&ctx, dy, w, base);
    if (dnnl) CHECK(ti_cpu_weight_cache_bytes() > before);
    fill(w, CO * CI * K * K, 7);
    ti_cpu_weights_frozen(w, sizeof w);
    check_forward(&ctx, x, w, b);
    check_backward_data(&ctx, dy, w, base);

    /* thawed: the copies are gone and changes are seen again */
    ti_cpu_weights_thawed(w, sizeof w);
    CHECK(ti_cpu_weight_cache_bytes() == before);
    fill(w, CO * CI * K * K, 8);
    check_forward(&ctx, x, w, b);
    check_backward_data(&ctx, dy, w, base);
    ti_ctx_free(&ctx);
}

TEST(frozen_weight_cache_direct) {
    cache_follows_values(2, 8);
}

TEST(frozen_weight_cache_winograd) {
    cache_follows_values(1, 32);
}

/* 2048 output pixels: the frozen weight's backward-data layout (no larger than the plain one) is
 * reordered per call and never cached; the forward's Winograd copy (4x) still is. */
TEST(frozen_weight_per_call) {
    cache_follows_values(2, 32);
    B = 2;
    H = W = 32;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    char line[512];
    ti_cpu_describe(line, sizeof line);
    int dnnl = strstr(line, "conv f32: oneDNN") != NULL;
    static float x[BMAX * CI * HMAX * HMAX], w[CO * CI * K * K], b[CO], dy[BMAX * CO * HMAX * HMAX],
        base[BMAX * CI * HMAX * HMAX];
    fill(x, B * CI * H * W, 11);
    fill(w, CO * CI * K * K, 12);
    fill(b, CO, 13);
    fill(dy, B * CO * H * W, 14);
    fill(base, B * CI * H * W, 15);
    size_t before = ti_cpu_weight_cache_bytes();
    ti_cpu_weights_frozen(w, sizeof w);
    check_backward_data(&ctx, dy, w, base);
    CHECK(ti_cpu_weight_cache_bytes() == before);
    check_forward(&ctx, x, w, b);
    if (dnnl) CHECK(ti_cpu_weight_cache_bytes() > before);
    /* new values declared: both directions follow them */
    fill(w, CO * CI * K * K, 16);
    ti_cpu_weights_frozen(w, sizeof w);
    check_backward_data(&ctx, dy, w, base);
    check_forward(&ctx, x, w, b);
    ti_cpu_weights_thawed(w, sizeof w);
    CHECK(ti_cpu_weight_cache_bytes() == before);
    ti_ctx_free(&ctx);
}

int main(void) {
    /* f32 copies are cached only when a budget is given (dnnl_conv.c wc_budget_f32); read once,
     * before the first convolution */
    setenv("TI_DNNL_WEIGHT_CACHE_MB", "512", 1);
    RUN(describe_names_kernels);
    RUN(frozen_weight_cache_direct);
    RUN(frozen_weight_cache_winograd);
    RUN(frozen_weight_per_call);
    return tc_finish();
}
