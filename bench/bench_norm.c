/*
 * bench_norm.c - timings of the norm family at Stable Diffusion sizes: groupnorm (+SiLU),
 * layernorm, geglu and softmax, forward alone (no tape) and forward + backward with the input
 * trainable and the weights frozen (the textual-inversion case). Median of the repetitions
 * after one warm-up. Not a test: numbers only.
 *
 * Usage: bench_norm [cpu|cuda] [f32|f16|bf16] [reps] [name-substring]   (defaults: cpu f32 20)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"

enum kind { GN, GN_SILU, LN, GEGLU, SOFTMAX };

struct bcase {
    const char *name;
    enum kind kind;
    int ndim;
    int64_t shape[4];
    int groups;
    double eps, scale;
};

static const struct bcase cases[] = {
    {"gn32 (1,320,64,64)", GN, 4, {1, 320, 64, 64}, 32, 1e-6, 0},
    {"gn32+silu (1,320,64,64)", GN_SILU, 4, {1, 320, 64, 64}, 32, 1e-5, 0},
    {"gn32+silu (2,1280,8,8)", GN_SILU, 4, {2, 1280, 8, 8}, 32, 1e-5, 0},
    {"gn32+silu (1,128,256,256)", GN_SILU, 4, {1, 128, 256, 256}, 32, 1e-6, 0},
    {"ln (4096,320)", LN, 2, {4096, 320}, 0, 1e-5, 0},
    {"ln (2,77,768)", LN, 3, {2, 77, 768}, 0, 1e-5, 0},
    {"geglu (4096,2560)", GEGLU, 2, {4096, 2560}, 0, 0, 0},
    {"softmax (8*4096,77)", SOFTMAX, 2, {8 * 4096, 77}, 0, 0, 0.158113883},
    {"softmax (1024,4096)", SOFTMAX, 2, {1024, 4096}, 0, 0, 0.044194174},
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static ti_status upload_random(struct ti_ctx *ctx, struct ti_tensor *t, enum ti_dtype dt, int ndim,
                               const int64_t *shape, double lo, double hi, struct ti_rng *r) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *f = malloc((size_t)n * sizeof *f);
    uint16_t *h = malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)(lo + (hi - lo) * ti_rng_uniform(r));
        h[i] = dt == TI_DTYPE_F16 ? ti_f32_to_f16(f[i]) : ti_f32_to_bf16(f[i]);
    }
    ti_status st =
        ti_ctx_upload(ctx, t, dt == TI_DTYPE_F32 ? (void *)f : (void *)h, dt, ndim, shape);
    free(f);
    free(h);
    return st;
}

static ti_status run_op(struct ti_ctx *ctx, const struct bcase *c, struct ti_tensor *out,
                        const struct ti_tensor *x, const struct ti_tensor *w,
                        const struct ti_tensor *b) {
    switch (c->kind) {
    case GN: return ti_groupnorm(ctx, out, x, w, b, c->groups, c->eps, 0);
    case GN_SILU: return ti_groupnorm(ctx, out, x, w, b, c->groups, c->eps, 1);
    case LN: return ti_layernorm(ctx, out, x, w, b, c->eps);
    case GEGLU: return ti_geglu(ctx, out, x);
    default: return ti_softmax(ctx, out, x, c->scale);
    }
}

/* one repetition: forward (bwd = 0) or forward + backward into dx; milliseconds */
static ti_status time_once(struct ti_ctx *ctx, const struct bcase *c, struct ti_tensor *x,
                           const struct ti_tensor *w, const struct ti_tensor *b,
                           const struct ti_tensor *dx, const struct ti_tensor *seed, int bwd,
                           double *ms) {
    struct ti_tape *tape = NULL;
    struct ti_tensor out = ti_tensor_none();
    TI_TRY(ti_ctx_sync(ctx));
    double t0 = now_ms();
    ti_status st = TI_OK;
    if (bwd) {
        st = ti_tape_init(&tape, &ctx->err);
        ctx->tape = tape;
        if (st == TI_OK) st = ti_tape_watch(ctx, x, dx);
    }
    if (st == TI_OK) st = run_op(ctx, c, &out, x, w, b);
    if (st == TI_OK && bwd) st = ti_tape_backward(ctx, &out, seed);
    if (st == TI_OK) st = ti_ctx_sync(ctx);
    *ms = now_ms() - t0;
    ti_tensor_release(&out);
    if (tape) {
        ti_tape_clear(ctx);
        ti_tape_free(&tape);
        ctx->tape = NULL;
    }
    x->grad = -1;
    return st;
}

int main(int argc, char **argv) {
    const char *dev = argc > 1 ? argv[1] : "cpu";
    const char *dts = argc > 2 ? argv[2] : "f32";
    int reps = argc > 3 ? atoi(argv[3]) : 20;
    const char *filter = argc > 4 ? argv[4] : NULL;
    if (reps < 1) reps = 1;
    enum ti_dtype dt = strcmp(dts, "f16") == 0    ? TI_DTYPE_F16
                       : strcmp(dts, "bf16") == 0 ? TI_DTYPE_BF16
                                                  : TI_DTYPE_F32;
    const struct ti_backend *be = ti_backend_cpu();
    struct ti_err err = {0};
    if (strcmp(dev, "cuda") == 0 && ti_backend_cuda(&be, 0, &err) != TI_OK) {
        fprintf(stderr, "bench_norm: %s\n", err.msg);
        return 1;
    }
    if (be->device == TI_DEVICE_CPU && dt != TI_DTYPE_F32) {
        fprintf(stderr, "bench_norm: the CPU computes in f32 (or f64) only\n");
        return 2;
    }
    struct ti_ctx ctx;
    if (ti_ctx_init(&ctx, be, 0, 0) != TI_OK) {
        fprintf(stderr, "bench_norm: %s\n", ctx.err.msg);
        return 1;
    }
    printf("%-28s %10s %12s   (%s %s, median of %d)\n", "op", "fwd ms", "fwd+bwd ms", be->name,
           ti_dtype_name(dt), reps);
    struct ti_rng r;
    ti_rng_seed(&r, 7);
    double *tf = malloc((size_t)reps * sizeof *tf), *tb = malloc((size_t)reps * sizeof *tb);
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && rc == 0; i++) {
        const struct bcase *c = &cases[i];
        if (filter && !strstr(c->name, filter)) continue;
        struct ti_tensor x, w = ti_tensor_none(), b = ti_tensor_none(), dx, seed;
        int64_t pshape[1] = {c->kind == GN || c->kind == GN_SILU ? c->shape[1]
                                                                 : c->shape[c->ndim - 1]};
        int64_t oshape[4];
        memcpy(oshape, c->shape, sizeof oshape);
        if (c->kind == GEGLU) oshape[c->ndim - 1] /= 2;
        ti_status st = upload_random(&ctx, &x, dt, c->ndim, c->shape, -2, 2, &r);
        if (st == TI_OK && c->kind <= LN) {
            st = upload_random(&ctx, &w, dt, 1, pshape, 0.5, 1.5, &r);
            if (st == TI_OK) st = upload_random(&ctx, &b, dt, 1, pshape, -0.5, 0.5, &r);
        }
        if (st == TI_OK) st = ti_ctx_zeros(&ctx, &dx, dt, c->ndim, c->shape);
        if (st == TI_OK) st = upload_random(&ctx, &seed, dt, c->ndim, oshape, -1, 1, &r);
        for (int k = -1; k < reps && st == TI_OK; k++) {
            double f, fb;
            st = time_once(&ctx, c, &x, &w, &b, &dx, &seed, 0, &f);
            if (st == TI_OK) st = time_once(&ctx, c, &x, &w, &b, &dx, &seed, 1, &fb);
            if (k >= 0) {
                tf[k] = f;
                tb[k] = fb;
            }
        }
        if (st != TI_OK) {
            fprintf(stderr, "bench_norm: %s: %s\n", c->name, ctx.err.msg);
            rc = 1;
        } else {
            qsort(tf, (size_t)reps, sizeof *tf, cmp_double);
            qsort(tb, (size_t)reps, sizeof *tb, cmp_double);
            printf("%-28s %10.3f %12.3f\n", c->name, tf[reps / 2], tb[reps / 2]);
        }
        ti_tensor_release(&x);
        ti_tensor_release(&w);
        ti_tensor_release(&b);
        ti_tensor_release(&dx);
        ti_tensor_release(&seed);
    }
    free(tf);
    free(tb);
    ti_ctx_free(&ctx);
    return rc;
}
