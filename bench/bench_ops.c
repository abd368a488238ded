/*
 * bench_ops.c - CPU timings of single ops at Stable Diffusion sizes, for scripts/bench.sh (which
 * runs PyTorch on the same ops beside it and prints the comparison table). Not a test.
 *
 *   bench_ops [--reps N] [--warmup N] [--threads N] [--only conv|attention] [--dtype f32|bf16]
 *             [--cpu-time]
 *
 * Benchmarks (f32, or bf16 tensors with --dtype bf16; CPU backend, batch 1):
 *   conv       3x3 conv 320 -> 320 at 64x64, pad 1, frozen weight and bias (declared frozen to
 *              the CPU backend, as model/weights.c does with a model's parameters):
 *              forward, and forward + input-gradient backward (dx only).
 *              FLOP: 2*Cout*Cin*9*H*W per forward; the input-gradient backward counts 1x that.
 *   attention  q, k, v (1, 4096, 8*40), 8 heads of 40, scale 1/sqrt(40) (SD self-attention at a
 *              64x64 latent): forward, and forward + backward into dq, dk, dv.
 *              FLOP: 4*B*NH*Tq*Tk*D per forward; ti's backward recomputes P from the saved
 *              log-sum-exp, so it counts 2.5x the forward (PyTorch's keeps P: 2x).
 * --cpu-time reports process CPU time (all threads) instead of wall clock: the figure to compare
 * on a loaded machine.
 * Each measurement: `warmup` untimed runs, then `reps` timed runs; the median is reported.
 * Arenas are reused across runs (the steady state of a training step: no fresh memory).
 *
 * Output, one line per measurement, tab-separated, for scripts/bench.sh:
 *   RESULT <op> <pass> <median ms> <GFLOP counted> <min ms> <max ms>
 * An op whose front end fails or is not linked (e.g. not built yet on this branch) prints
 *   <op>: unavailable (<error message>)
 * and the other benchmarks still run. Exit status 0 unless nothing could run at all.
 */
#include <math.h>   /* defines: sqrt */
#include <stdio.h>  /* defines: printf, fprintf */
#include <stdlib.h> /* defines: malloc, free, qsort, atoi */
#include <string.h> /* defines: strcmp */
#include <time.h>   /* defines: clock_gettime, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID */

#include "context.h"
#include "cpu_info.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"

#ifdef _OPENMP
#include <omp.h> /* defines: omp_set_num_threads, omp_get_max_threads */
#endif

struct bench_opts {
    int reps, warmup;
    const char *only;
};

static enum ti_dtype bench_dtype = TI_DTYPE_F32; /* --dtype */

static int bench_cpu_time; /* --cpu-time: process CPU time instead of wall clock */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(bench_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

/* A random f32 tensor in [lo, hi] on ctx (uploaded from a host buffer). */
static ti_status rand_tensor(struct ti_ctx *ctx, struct ti_tensor *t, int ndim,
                             const int64_t *shape, float lo, float hi, uint64_t seed) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *buf = malloc((size_t)n * sizeof *buf);
    if (!buf)
        return ti_error(&ctx->err, TI_ERR_NOMEM, "bench: cannot allocate %lld floats",
                        (long long)n);
    struct ti_rng r;
    ti_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        buf[i] = lo + (hi - lo) * (float)ti_rng_uniform(&r);
    uint16_t *h = NULL;
    if (bench_dtype == TI_DTYPE_BF16) {
        h = malloc((size_t)n * sizeof *h);
        if (!h) {
            free(buf);
            return ti_error(&ctx->err, TI_ERR_NOMEM, "bench: cannot allocate %lld bf16s",
                            (long long)n);
        }
        for (int64_t i = 0; i < n; i++)
            h[i] = ti_f32_to_bf16(buf[i]);
    }
    ti_status st = ti_ctx_upload(ctx, t, h ? (const void *)h : buf, bench_dtype, ndim, shape);
    free(h);
    free(buf);
    return st;
}

/* One timed case: run(ctx, user) does the work once (and releases what it made). */
typedef ti_status (*bench_fn)(struct ti_ctx *ctx, void *user);

static ti_status time_case(struct ti_ctx *ctx, const struct bench_opts *o, bench_fn fn, void *user,
                           const char *op, const char *pass, double gflop) {
    for (int i = 0; i < o->warmup; i++)
        TI_TRY(fn(ctx, user));
    double *t = malloc((size_t)o->reps * sizeof *t);
    if (!t) return ti_error(&ctx->err, TI_ERR_NOMEM, "bench: cannot allocate timings");
    for (int i = 0; i < o->reps; i++) {
        double t0 = now_ms();
        ti_status st = fn(ctx, user);
        t[i] = now_ms() - t0;
        if (st != TI_OK) {
            free(t);
            return st;
        }
    }
    qsort(t, (size_t)o->reps, sizeof *t, cmp_double);
    double med = o->reps % 2 ? t[o->reps / 2] : 0.5 * (t[o->reps / 2 - 1] + t[o->reps / 2]);
    printf("RESULT\t%s\t%s\t%.3f\t%.4f\t%.3f\t%.3f\n", op, pass, med, gflop, t[0], t[o->reps - 1]);
    fflush(stdout);
    free(t);
    return TI_OK;
}

/* ---- conv 3x3 320 -> 320 at 64x64 ------------------------------------------------------------ */
/* The conv front end belongs to the gemm op family, which may not be built on every branch:
 * referenced weakly, so this program links either way and reports the op as unavailable when
 * it is missing (NULL) or returns an error. Once ops_gemm.c defines it, the archive member is
 * linked anyway (the tape references its backward rule) and the weak reference binds to it. */
#if defined(__GNUC__) && defined(__ELF__)
#pragma weak ti_conv2d
#define CONV_LINKED() (ti_conv2d != NULL)
#else
#define CONV_LINKED() 1
#endif

struct conv_bench {
    struct ti_tensor x, w, b, dx, dout;
};

static ti_status conv_forward(struct ti_ctx *ctx, void *user) {
    struct conv_bench *c = user;
    const int pad[4] = {1, 1, 1, 1};
    struct ti_tensor y;
    TI_TRY(ti_conv2d(ctx, &y, &c->x, &c->w, &c->b, 1, pad));
    ti_status st = ti_ctx_sync(ctx);
    ti_tensor_release(&y);
    return st;
}

/* forward with the tape on, then backward into dx only (weight and bias are frozen) */
static ti_status conv_forward_backward(struct ti_ctx *ctx, void *user) {
    struct conv_bench *c = user;
    const int pad[4] = {1, 1, 1, 1};
    struct ti_tape *tape = NULL;
    TI_TRY(ti_tape_init(&tape, &ctx->err));
    ctx->tape = tape;
    struct ti_tensor y = ti_tensor_none();
    ti_status st = ti_tape_watch(ctx, &c->x, &c->dx);
    if (st == TI_OK) st = ti_conv2d(ctx, &y, &c->x, &c->w, &c->b, 1, pad);
    if (st == TI_OK) st = ti_tape_backward(ctx, &y, &c->dout);
    if (st == TI_OK) st = ti_ctx_sync(ctx);
    ti_tensor_release(&y);
    ti_tape_free(&tape);
    ctx->tape = NULL;
    c->x.grad = -1;
    return st;
}

static int bench_conv(struct ti_ctx *ctx, const struct bench_opts *o) {
    const int64_t C = 320, H = 64, W = 64;
    const int64_t xs[4] = {1, C, H, W}, ws[4] = {C, C, 3, 3}, bs[1] = {C};
    struct conv_bench c;
    c.x = c.w = c.b = c.dx = c.dout = ti_tensor_none();
    double gflop = 2.0 * (double)C * (double)C * 9.0 * (double)(H * W) * 1e-9;
    float wb = (float)(1.0 / sqrt((double)(C * 9)));
    ti_status st = rand_tensor(ctx, &c.x, 4, xs, -1.f, 1.f, 1);
    if (st == TI_OK) st = rand_tensor(ctx, &c.w, 4, ws, -wb, wb, 2);
    if (st == TI_OK) st = rand_tensor(ctx, &c.b, 1, bs, -wb, wb, 3);
    if (st == TI_OK) st = rand_tensor(ctx, &c.dout, 4, xs, -1.f, 1.f, 4);
    if (st == TI_OK) st = ti_ctx_zeros(ctx, &c.dx, bench_dtype, 4, xs);
    /* a model's weights are declared frozen when loaded (model/weights.c): the same here */
    if (st == TI_OK) ti_cpu_weights_frozen(c.w.data, ti_tensor_nbytes(&c.w));
    /* probe once: an op that is not built on this branch is reported, not fatal */
    if (st == TI_OK && !CONV_LINKED())
        st = ti_error(&ctx->err, TI_ERR_UNSUPPORTED, "ti_conv2d is not built in this tree");
    if (st == TI_OK) st = conv_forward(ctx, &c);
    int ok = 1;
    if (st != TI_OK) {
        printf("conv2d: unavailable (%s)\n", ctx->err.msg);
        ok = 0;
    } else {
        st = time_case(ctx, o, conv_forward, &c, "conv2d", "forward", gflop);
        if (st == TI_OK)
            st = time_case(ctx, o, conv_forward_backward, &c, "conv2d", "forward+input-grad",
                           2.0 * gflop);
        if (st != TI_OK) {
            printf("conv2d: unavailable (%s)\n", ctx->err.msg);
            ok = 0;
        }
    }
    ti_err_clear(&ctx->err);
    if (c.w.data) ti_cpu_weights_thawed(c.w.data, ti_tensor_nbytes(&c.w));
    ti_tensor_release(&c.x);
    ti_tensor_release(&c.w);
    ti_tensor_release(&c.b);
    ti_tensor_release(&c.dx);
    ti_tensor_release(&c.dout);
    return ok;
}

/* ---- attention 4096 x 4096, 8 heads of 40 ---------------------------------------------------- */
struct attn_bench {
    struct ti_tensor q, k, v, dq, dk, dv, dout;
    int heads;
    double scale;
};

static ti_status attn_forward(struct ti_ctx *ctx, void *user) {
    struct attn_bench *a = user;
    struct ti_tensor y;
    TI_TRY(ti_attention(ctx, &y, &a->q, &a->k, &a->v, a->heads, a->scale, 0));
    ti_status st = ti_ctx_sync(ctx);
    ti_tensor_release(&y);
    return st;
}

static ti_status attn_forward_backward(struct ti_ctx *ctx, void *user) {
    struct attn_bench *a = user;
    struct ti_tape *tape = NULL;
    TI_TRY(ti_tape_init(&tape, &ctx->err));
    ctx->tape = tape;
    struct ti_tensor y = ti_tensor_none();
    ti_status st = ti_tape_watch(ctx, &a->q, &a->dq);
    if (st == TI_OK) st = ti_tape_watch(ctx, &a->k, &a->dk);
    if (st == TI_OK) st = ti_tape_watch(ctx, &a->v, &a->dv);
    if (st == TI_OK) st = ti_attention(ctx, &y, &a->q, &a->k, &a->v, a->heads, a->scale, 0);
    if (st == TI_OK) st = ti_tape_backward(ctx, &y, &a->dout);
    if (st == TI_OK) st = ti_ctx_sync(ctx);
    ti_tensor_release(&y);
    ti_tape_free(&tape);
    ctx->tape = NULL;
    a->q.grad = a->k.grad = a->v.grad = -1;
    return st;
}

static int bench_attention(struct ti_ctx *ctx, const struct bench_opts *o) {
    const int64_t B = 1, T = 4096, NH = 8, D = 40;
    const int64_t shape[3] = {B, T, NH * D};
    struct attn_bench a;
    a.q = a.k = a.v = a.dq = a.dk = a.dv = a.dout = ti_tensor_none();
    a.heads = (int)NH;
    a.scale = 1.0 / sqrt((double)D);
    double gflop = 4.0 * (double)(B * NH) * (double)T * (double)T * (double)D * 1e-9;
    ti_status st = rand_tensor(ctx, &a.q, 3, shape, -1.f, 1.f, 11);
    if (st == TI_OK) st = rand_tensor(ctx, &a.k, 3, shape, -1.f, 1.f, 12);
    if (st == TI_OK) st = rand_tensor(ctx, &a.v, 3, shape, -1.f, 1.f, 13);
    if (st == TI_OK) st = rand_tensor(ctx, &a.dout, 3, shape, -1.f, 1.f, 14);
    if (st == TI_OK) st = ti_ctx_zeros(ctx, &a.dq, bench_dtype, 3, shape);
    if (st == TI_OK) st = ti_ctx_zeros(ctx, &a.dk, bench_dtype, 3, shape);
    if (st == TI_OK) st = ti_ctx_zeros(ctx, &a.dv, bench_dtype, 3, shape);
    if (st == TI_OK) st = time_case(ctx, o, attn_forward, &a, "attention", "forward", gflop);
    if (st == TI_OK)
        st = time_case(ctx, o, attn_forward_backward, &a, "attention", "forward+input-grad",
                       3.5 * gflop);
    int ok = st == TI_OK;
    if (!ok) printf("attention: unavailable (%s)\n", ctx->err.msg);
    ti_err_clear(&ctx->err);
    ti_tensor_release(&a.q);
    ti_tensor_release(&a.k);
    ti_tensor_release(&a.v);
    ti_tensor_release(&a.dq);
    ti_tensor_release(&a.dk);
    ti_tensor_release(&a.dv);
    ti_tensor_release(&a.dout);
    return ok;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_ops [--reps N] [--warmup N] [--threads N] "
                    "[--only conv|attention] [--dtype f32|bf16] [--cpu-time]\n");
}

int main(int argc, char **argv) {
    struct bench_opts o = {5, 2, NULL};
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--reps") == 0)
            o.reps = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--warmup") == 0)
            o.warmup = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--only") == 0)
            o.only = argv[++i];
        else if (strcmp(argv[i], "--cpu-time") == 0)
            bench_cpu_time = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--dtype") == 0) {
            const char *d = argv[++i];
            if (strcmp(d, "f32") == 0)
                bench_dtype = TI_DTYPE_F32;
            else if (strcmp(d, "bf16") == 0)
                bench_dtype = TI_DTYPE_BF16;
            else {
                fprintf(stderr, "bench_ops: --dtype '%s': expected f32 or bf16\n", d);
                return 2;
            }
        } else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) {
#ifdef _OPENMP
            omp_set_num_threads(atoi(argv[++i]));
#else
            ++i;
#endif
        } else {
            usage();
            return 2;
        }
    }
    if (o.reps < 1 || o.warmup < 0) {
        usage();
        return 2;
    }
    struct ti_ctx ctx;
    if (ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0) != TI_OK) {
        fprintf(stderr, "bench_ops: %s\n", ctx.err.msg);
        return 1;
    }
#ifdef _OPENMP
    printf("THREADS\t%d\n", omp_get_max_threads());
#else
    printf("THREADS\t1\n");
#endif
    char cpu[512];
    ti_cpu_describe(cpu, sizeof cpu);
    fprintf(stderr, "ti: %s\n", cpu);
    int ran = 0;
    if (!o.only || strcmp(o.only, "conv") == 0) ran += bench_conv(&ctx, &o);
    if (!o.only || strcmp(o.only, "attention") == 0) ran += bench_attention(&ctx, &o);
    ti_ctx_free(&ctx);
    return ran > 0 ? 0 : 1;
}
