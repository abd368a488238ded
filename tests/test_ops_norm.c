/*
 * test_ops_norm.c - what the op-case table (cases_norm.c) cannot express for the norm family:
 *   - accuracy of the vectorised f32 math the CPU kernels use (cpu/vmath.h) against libm in
 *     double, including the special values;
 *   - results independent of the thread count, bitwise: groupnorm and layernorm switch between
 *     "one set per thread" and "chunks / rows in parallel" loops depending on the number of
 *     threads, and must give the same bits either way;
 *   - argument validation and its messages;
 *   - memory: forward without a tape leaves nothing behind (the statistics are released).
 * Values and gradients against PyTorch are in test_oracle_ops, gradients in test_gradcheck.
 */
#include <math.h>
#include <string.h>

#include "context.h"
#include "cpu/vmath.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"
#include "test_common.h"

#ifdef _OPENMP
#include <omp.h> /* defines: omp_set_num_threads, omp_get_max_threads */
#endif

/* ---- cpu/vmath.h ----------------------------------------------------------------------------- */

/* largest relative error of f against the double reference over [lo, hi] in steps of `step` */
static double max_rel(float (*f)(float), double (*ref)(double), double lo, double hi, double step,
                      double *worst_x, double *max_abs) {
    double worst = 0;
    *max_abs = 0;
    for (double x = lo; x <= hi; x += step) {
        float xf = (float)x;
        double want = ref((double)xf), got = (double)f(xf);
        double abs_err = fabs(got - want), rel = want != 0 ? abs_err / fabs(want) : abs_err;
        if (rel > worst) {
            worst = rel;
            *worst_x = xf;
        }
        if (abs_err > *max_abs) *max_abs = abs_err;
    }
    return worst;
}

static float vexp(float x) {
    return ti_vexpf(x);
}
static float vphi(float x) {
    return ti_vphif(x);
}
static double phi_ref(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

TEST(vexpf_accuracy) {
    double at = 0, mabs;
    /* whole normal range: within 2e-7 relative (~2 ulp; measured 8e-8) */
    double rel = max_rel(vexp, exp, -87.33, 88.72, 1.1e-4, &at, &mabs);
    if (rel > 2e-7) fprintf(stderr, "  vexpf: relative error %.3g at %.9g\n", rel, at);
    CHECK(rel <= 2e-7);
    CHECK(ti_vexpf(0.f) == 1.f);
    CHECK(ti_vexpf(-88.f) == 0.f); /* below ln(FLT_MIN): flushed, no denormals */
    CHECK(ti_vexpf(-1e4f) == 0.f);
    CHECK(ti_vexpf(-INFINITY) == 0.f);
    CHECK(isinf(ti_vexpf(89.f)) && ti_vexpf(89.f) > 0);
    CHECK(isinf(ti_vexpf(INFINITY)));
    CHECK(isnan(ti_vexpf(NAN)));
    /* the top of the range (2^128 built as 2^127 * 2) stays finite and accurate */
    float top = ti_vexpf(88.72f);
    CHECK(isfinite(top) && fabs(top - exp(88.72f)) <= 2e-7 * exp(88.72f));
}

TEST(vphif_accuracy) {
    /* relative-error bounds per region (measured maxima: 1.1e-7, 1.1e-6, 3.5e-6, 6.4e-6); the
     * left tail loses digits to the rounding of t^2 in exp(-t^2), see vmath.h */
    static const struct {
        double lo, hi, rel;
    } reg[] = {{0, 14, 2e-7}, {-2.83, 0, 1.5e-6}, {-5.66, -2.83, 5e-6}, {-8, -5.66, 1e-5}};
    for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++) {
        double at = 0, mabs;
        double rel = max_rel(vphi, phi_ref, reg[i].lo, reg[i].hi, 2e-5, &at, &mabs);
        if (rel > reg[i].rel || mabs > 1e-7)
            fprintf(stderr, "  vphif on [%g, %g]: relative error %.3g at %.9g, absolute %.3g\n",
                    reg[i].lo, reg[i].hi, rel, at, mabs);
        CHECK(rel <= reg[i].rel);
        CHECK(mabs <= 1e-7); /* absolute error: at most ~1.5 ulp of 1 anywhere */
    }
    double at = 0, mabs;
    max_rel(vphi, phi_ref, -14, -8, 1e-4, &at, &mabs);
    CHECK(mabs < 1e-14);
    CHECK(ti_vphif(0.f) == 0.5f);
    CHECK(ti_vphif(-14.f) == 0.f && ti_vphif(-INFINITY) == 0.f);
    CHECK(ti_vphif(9.f) == 1.f && ti_vphif(INFINITY) == 1.f);
    CHECK(isnan(ti_vphif(NAN)));
}

/* ---- thread-count independence --------------------------------------------------------------- */

#define TN_MAX 24000

/* out, dinp, dweight, dbias (f32, host) of groupnorm (silu 1) or layernorm on fixed data */
struct run_result {
    float out[TN_MAX], dx[TN_MAX], dw[3000], db[3000];
};

static void upload_rand(struct ti_ctx *ctx, struct ti_tensor *t, int ndim, const int64_t *shape,
                        double lo, double hi, unsigned long long seed) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    static float buf[TN_MAX];
    struct ti_rng r;
    ti_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        buf[i] = (float)(lo + (hi - lo) * ti_rng_uniform(&r));
    CHECK_OK(ti_ctx_upload(ctx, t, buf, TI_DTYPE_F32, ndim, shape), &ctx->err);
}

/* op 0: groupnorm (1, 8, 3000), 2 groups, SiLU (2 big sets); op 1: layernorm (3, 3000) */
static void run_norm(int op, struct run_result *res) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    const int64_t gn_shape[3] = {1, 8, 3000}, ln_shape[2] = {3, 3000};
    const int64_t *xs = op == 0 ? gn_shape : ln_shape;
    int nd = op == 0 ? 3 : 2;
    int64_t P[1] = {op == 0 ? 8 : 3000};
    struct ti_tensor x, w, b, seed, gx, gw, gb, out;
    upload_rand(&ctx, &x, nd, xs, -2, 2, 1);
    upload_rand(&ctx, &w, 1, P, 0.5, 1.5, 2);
    upload_rand(&ctx, &b, 1, P, -0.5, 0.5, 3);
    upload_rand(&ctx, &seed, nd, xs, -1, 1, 4);
    CHECK_OK(ti_ctx_zeros(&ctx, &gx, TI_DTYPE_F32, nd, xs), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &gw, TI_DTYPE_F32, 1, P), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &gb, TI_DTYPE_F32, 1, P), &ctx.err);
    struct ti_tape *tape;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    CHECK_OK(ti_tape_watch(&ctx, &x, &gx), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &w, &gw), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &b, &gb), &ctx.err);
    ti_status st = op == 0 ? ti_groupnorm(&ctx, &out, &x, &w, &b, 2, 1e-5, 1)
                           : ti_layernorm(&ctx, &out, &x, &w, &b, 1e-5);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        size_t nb = ti_tensor_nbytes(&out);
        CHECK_OK(ti_ctx_download(&ctx, res->out, nb, &out), &ctx.err);
        CHECK_OK(ti_tape_backward(&ctx, &out, &seed), &ctx.err);
        CHECK_OK(ti_ctx_download(&ctx, res->dx, nb, &gx), &ctx.err);
        CHECK_OK(ti_ctx_download(&ctx, res->dw, ti_tensor_nbytes(&gw), &gw), &ctx.err);
        CHECK_OK(ti_ctx_download(&ctx, res->db, ti_tensor_nbytes(&gb), &gb), &ctx.err);
    }
    ti_tape_free(&tape);
    ctx.tape = NULL;
    ti_tensor_release(&out);
    ti_tensor_release(&x);
    ti_tensor_release(&w);
    ti_tensor_release(&b);
    ti_tensor_release(&seed);
    ti_tensor_release(&gx);
    ti_tensor_release(&gw);
    ti_tensor_release(&gb);
    ti_ctx_free(&ctx);
}

static struct run_result r1, r4;

TEST(results_independent_of_thread_count) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    for (int op = 0; op < 2; op++) {
        /* 1 thread: one set / row per iteration; 4 threads: 2 sets (3 rows) < 4 threads, so the
         * chunk-parallel statistics and row-parallel loops run instead */
        memset(&r1, 0, sizeof r1);
        memset(&r4, 0, sizeof r4);
        omp_set_num_threads(1);
        run_norm(op, &r1);
        omp_set_num_threads(4);
        run_norm(op, &r4);
        CHECK(memcmp(&r1, &r4, sizeof r1) == 0);
        if (memcmp(&r1, &r4, sizeof r1) != 0)
            fprintf(stderr, "  %s: 1-thread and 4-thread results differ\n",
                    op == 0 ? "groupnorm" : "layernorm");
        int nonzero = 0;
        for (int i = 0; i < 3000; i++)
            nonzero += r1.dw[i] != 0;
        CHECK(nonzero > 0); /* the runs really produced gradients */
    }
    omp_set_num_threads(saved);
#else
    TC_SKIP_TEST("built without OpenMP: the 1-thread and 4-thread loop shapes cannot be compared");
#endif
}

/* ---- validation ------------------------------------------------------------------------------ */

static void expect_error(struct ti_ctx *ctx, ti_status st, ti_status want, const char *needle) {
    CHECK(st == want);
    CHECK(strstr(ctx->err.msg, needle) != NULL);
    if (st != want || !strstr(ctx->err.msg, needle))
        fprintf(stderr, "  status %d, message: %s (wanted %d and '%s')\n", st, ctx->err.msg, want,
                needle);
    ti_err_clear(&ctx->err);
}

TEST(argument_validation) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    const int64_t xs[4] = {2, 12, 5, 7}, c12[1] = {12}, c11[1] = {11}, v7[1] = {7}, odd[2] = {3, 7};
    struct ti_tensor x, w12, w11, v, o, idx, out;
    CHECK_OK(ti_ctx_zeros(&ctx, &x, TI_DTYPE_F32, 4, xs), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &w12, TI_DTYPE_F32, 1, c12), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &w11, TI_DTYPE_F32, 1, c11), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &v, TI_DTYPE_F32, 1, v7), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &o, TI_DTYPE_F32, 2, odd), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &idx, TI_DTYPE_I32, 2, odd), &ctx.err);

    expect_error(&ctx, ti_groupnorm(&ctx, &out, &x, NULL, NULL, 5, 1e-5, 0), TI_ERR_SHAPE,
                 "groupnorm: 5 groups do not divide the 12 channels of inp [2, 12, 5, 7]");
    CHECK(out.data == NULL);
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &x, NULL, NULL, 0, 1e-5, 0), TI_ERR_SHAPE,
                 "0 groups do not divide");
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &x, &w11, NULL, 4, 1e-5, 0), TI_ERR_SHAPE,
                 "groupnorm: argument 'weight' has shape [11], expected [12]");
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &x, &w12, &w11, 4, 1e-5, 1), TI_ERR_SHAPE,
                 "groupnorm: argument 'bias' has shape [11], expected [12]");
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &v, NULL, NULL, 1, 1e-5, 0), TI_ERR_SHAPE,
                 "groupnorm: argument 'inp' has shape [7], expected (B, C, ...)");
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &x, NULL, NULL, 4, -1, 0), TI_ERR_INVALID,
                 "groupnorm: eps -1 must be >= 0");
    expect_error(&ctx, ti_groupnorm(&ctx, &out, &idx, NULL, NULL, 1, 1e-5, 0), TI_ERR_DTYPE,
                 "groupnorm: argument 'inp' has dtype i32, expected a float");
    expect_error(&ctx, ti_layernorm(&ctx, &out, &x, &w12, NULL, 1e-5), TI_ERR_SHAPE,
                 "layernorm: argument 'weight' has shape [12], expected [7]");
    expect_error(&ctx, ti_geglu(&ctx, &out, &o), TI_ERR_SHAPE,
                 "geglu: argument 'inp' has shape [3, 7], expected (..., 2F)");
    expect_error(&ctx, ti_softmax(&ctx, &out, &idx, 1.0), TI_ERR_DTYPE,
                 "softmax: argument 'inp' has dtype i32");
    /* the context still works afterwards */
    CHECK_OK(ti_groupnorm(&ctx, &out, &x, &w12, &w12, 4, 1e-5, 1), &ctx.err);
    CHECK(out.ndim == 4 && out.shape[1] == 12 && out.shape[3] == 7);
    ti_tensor_release(&out);
    ti_tensor_release(&x);
    ti_tensor_release(&w12);
    ti_tensor_release(&w11);
    ti_tensor_release(&v);
    ti_tensor_release(&o);
    ti_tensor_release(&idx);
    ti_ctx_free(&ctx);
}

/* Without a tape nothing but the output stays allocated (mean / rstd are released), and the
 * output has the input's shape (geglu: last dim halved). */
TEST(no_tape_keeps_only_the_output) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    const int64_t xs[3] = {3, 10, 13}, c10[1] = {10};
    struct ti_tensor x, w, out;
    upload_rand(&ctx, &x, 3, xs, -2, 2, 7);
    upload_rand(&ctx, &w, 1, c10, 0.5, 1.5, 8);
    int64_t live0 = ti_arena_stats(ctx.act).live_blocks;
    for (int op = 0; op < 4; op++) {
        ti_status st = op == 0   ? ti_groupnorm(&ctx, &out, &x, &w, &w, 5, 1e-6, 1)
                       : op == 1 ? ti_layernorm(&ctx, &out, &x, NULL, NULL, 1e-5)
                       : op == 2 ? ti_softmax(&ctx, &out, &x, 0.5)
                                 : ti_geglu(&ctx, &out, &w);
        CHECK_OK(st, &ctx.err);
        CHECK(ti_arena_stats(ctx.act).live_blocks == live0 + 1);
        CHECK(out.ndim == (op == 3 ? 1 : 3) && out.shape[out.ndim - 1] == (op == 3 ? 5 : 13));
        ti_tensor_release(&out);
        CHECK(ti_arena_stats(ctx.act).live_blocks == live0);
    }
    ti_tensor_release(&x);
    ti_tensor_release(&w);
    ti_ctx_free(&ctx);
}

int main(void) {
    RUN(vexpf_accuracy);
    RUN(vphif_accuracy);
    RUN(results_independent_of_thread_count);
    RUN(argument_validation);
    RUN(no_tape_keeps_only_the_output);
    return tc_finish();
}
