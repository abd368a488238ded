/*
 * test_attention.c - checks of the attention op beyond the shared op cases (which are small
 * enough to fit in one query block):
 *   exp_matches_expf           the vectorisable f32 exps of cpu/fast_exp.h (plain and fused
 *                              multiply-add forms) against libm expf: <= 2 ulp over the whole
 *                              float range, exact specials;
 *   blocked_matches_naive      ti_attention forward + backward on the CPU at sizes that span
 *                              several query blocks (causal and not, cross-attention, one head
 *                              and several) with 1, 2 and 3 threads (both backward
 *                              parallelisations), in f64 against a naive full-matrix reference,
 *                              and in f32 with looser tolerances;
 *   gradients_only_where_needed  only dv, only dq, only dk wanted: each matches the reference;
 *   strided_inputs             an input with innermost stride != 1 (copied by the front end)
 *                              gives the same output and gradient as a contiguous one;
 *   rejects_bad_shapes         validation errors name the op;
 *   bf16_matches_naive         bf16 tensors (cpu/attention_bf16.c's AVX512-BF16 kernel where
 *                              the CPU has it, and the f32 kernel between conversions with
 *                              TI_ATTN_BF16=0) at the sizes above, at SD head widths (40,
 *                              80) and one wide head (130), against the naive reference on the
 * bf16-rounded inputs, normwise and per element within bf16 tolerances;
 *   bf16_causal_no_future      rows before t bitwise independent of keys from t on;
 *   f32_kernel_matches_naive   cpu/attention_f32.c's AVX-512 and AVX2 variants (where the CPU
 *                              has them) and the SGEMM path (TI_ATTN_F32=0) at those sizes,
 *                              1-3 threads, against the naive reference, plus the causal leak
 *                              check in f32.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "cpu_info.h"
#include "cpu/fast_exp.h"
#include "ops.h"
#include "rng.h"
#include "tape.h"
#include "test_common.h"

#ifdef _OPENMP
#include <omp.h> /* defines: omp_set_num_threads, omp_get_max_threads */
#endif

/* ---- exp ------------------------------------------------------------------------------------- */
static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* |a - b| in units of the spacing of floats at b (b finite and nonzero) */
static double ulp_diff(float a, float b) {
    double spacing = fabsf(b) < 1.17549435e-38f ? ldexp(1.0, -149) : ldexp(1.0, ilogbf(b) - 23);
    return fabs((double)a - (double)b) / spacing;
}

/* max ulp error of f against expf over a sweep; counts wrong specials */
static double exp_sweep(float (*f)(float), long *n_out, long *bad_special, float *worst_x) {
    double worst = 0;
    long n = 0;
    *bad_special = 0;
    *worst_x = 0;
    /* every 1021st bit pattern (a prime step: all exponents, many mantissas), then a dense
     * sweep of the softmax range [-110, 90] */
    const uint64_t n_bits = 0x100000000ull / 1021 + 1, n_dense = 2000000;
    for (uint64_t s = 0; s < n_bits + n_dense; s++) {
        float x = s < n_bits ? bits_float((uint32_t)(s * 1021))
                             : -110.0f + 200.0f * (float)(s - n_bits) / (float)n_dense;
        float got = f(x), want = expf(x);
        if (isnan(x)) {
            *bad_special += !isnan(got);
            continue;
        }
        if (isinf(want) || want == 0.0f) {
            *bad_special += got != want;
            continue;
        }
        double e = ulp_diff(got, want);
        if (e > worst) {
            worst = e;
            *worst_x = x;
        }
        n++;
    }
    *n_out = n;
    return worst;
}

static float exp_plain(float x) {
    return ti_fast_expf(x);
}
static float exp_fused(float x) {
    return ti_fast_expf_fma(x);
} /* libm fmaf here: same values */

TEST(exp_matches_expf) {
    float (*const fns[2])(float) = {exp_plain, exp_fused};
    const char *names[2] = {"ti_fast_expf", "ti_fast_expf_fma"};
    for (int v = 0; v < 2; v++) {
        long n, bad_special;
        float worst_x;
        double worst = exp_sweep(fns[v], &n, &bad_special, &worst_x);
        printf("  %s: %ld finite results, max error %.3f ulp against expf (at x = %.9g)\n",
               names[v], n, worst, worst_x);
        CHECK(n > 3000000);
        CHECK(worst <= 2.0);
        CHECK(bad_special == 0);
        /* specials and range edges exactly */
        float (*f)(float) = fns[v];
        CHECK(f(0.0f) == 1.0f);
        CHECK(f(-INFINITY) == 0.0f);
        CHECK(isinf(f(INFINITY)) && f(INFINITY) > 0);
        CHECK(isnan(f(NAN)));
        CHECK(f(-103.972084f) == 0.0f);             /* rounds to +0 */
        CHECK(f(-103.97207f) == expf(-103.97207f)); /* the smallest subnormal */
        CHECK(isinf(f(88.72284f)));
        CHECK(ulp_diff(f(88.7228317f), expf(88.7228317f)) <= 2.0); /* ~FLT_MAX */
    }
}

/* ---- attention against a naive reference ----------------------------------------------------- */
struct cfg {
    int B, Tq, Tk, NH, D, Dv, causal;
    double scale;
};

/* out, dq, dk, dv of attention in double with the full P matrix (the obvious algorithm) */
static void naive_attention(const struct cfg *c, const double *q, const double *k, const double *v,
                            const double *dout, double *out, double *dq, double *dk, double *dv) {
    const int B = c->B, Tq = c->Tq, Tk = c->Tk, NH = c->NH, D = c->D, Dv = c->Dv;
    const int Cq = NH * D, Cv = NH * Dv;
    double *P = malloc((size_t)Tk * sizeof *P), *dP = malloc((size_t)Tk * sizeof *dP);
    memset(dq, 0, (size_t)B * Tq * Cq * sizeof *dq);
    memset(dk, 0, (size_t)B * Tk * Cq * sizeof *dk);
    memset(dv, 0, (size_t)B * Tk * Cv * sizeof *dv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < Tq; i++) {
                const double *qi = q + ((size_t)b * Tq + i) * Cq + h * D;
                int nk = c->causal ? i + 1 : Tk;
                double mx = -INFINITY, l = 0;
                for (int j = 0; j < nk; j++) {
                    const double *kj = k + ((size_t)b * Tk + j) * Cq + h * D;
                    double s = 0;
                    for (int d = 0; d < D; d++)
                        s += qi[d] * kj[d];
                    P[j] = c->scale * s;
                    mx = P[j] > mx ? P[j] : mx;
                }
                for (int j = 0; j < nk; j++)
                    l += (P[j] = exp(P[j] - mx));
                for (int j = 0; j < nk; j++)
                    P[j] /= l;
                double *oi = out + ((size_t)b * Tq + i) * Cv + h * Dv;
                const double *doi = dout + ((size_t)b * Tq + i) * Cv + h * Dv;
                for (int e = 0; e < Dv; e++) {
                    double s = 0;
                    for (int j = 0; j < nk; j++)
                        s += P[j] * v[((size_t)b * Tk + j) * Cv + h * Dv + e];
                    oi[e] = s;
                }
                /* dP_j = dO_i . v_j; dS_j = P_j (dP_j - sum_k P_k dP_k) */
                double Di = 0;
                for (int j = 0; j < nk; j++) {
                    const double *vj = v + ((size_t)b * Tk + j) * Cv + h * Dv;
                    double s = 0;
                    for (int e = 0; e < Dv; e++)
                        s += doi[e] * vj[e];
                    dP[j] = s;
                    Di += P[j] * s;
                }
                double *dqi = dq + ((size_t)b * Tq + i) * Cq + h * D;
                for (int j = 0; j < nk; j++) {
                    double ds = P[j] * (dP[j] - Di) * c->scale;
                    const double *kj = k + ((size_t)b * Tk + j) * Cq + h * D;
                    double *dkj = dk + ((size_t)b * Tk + j) * Cq + h * D;
                    double *dvj = dv + ((size_t)b * Tk + j) * Cv + h * Dv;
                    for (int d = 0; d < D; d++) {
                        dqi[d] += ds * kj[d];
                        dkj[d] += ds * qi[d];
                    }
                    for (int e = 0; e < Dv; e++)
                        dvj[e] += P[j] * doi[e];
                }
            }
    free(P);
    free(dP);
}

static double *rand_array(long n, struct ti_rng *r) {
    double *x = malloc((size_t)n * sizeof *x);
    for (long i = 0; i < n; i++)
        x[i] = 2.0 * ti_rng_uniform(r) - 1.0;
    return x;
}

static ti_status upload_as(struct ti_ctx *ctx, struct ti_tensor *t, const double *x, int64_t d0,
                           int64_t d1, int64_t d2, enum ti_dtype dt) {
    const int64_t shape[3] = {d0, d1, d2};
    long n = (long)(d0 * d1 * d2);
    if (dt == TI_DTYPE_F64) return ti_ctx_upload(ctx, t, x, dt, 3, shape);
    if (dt == TI_DTYPE_BF16) {
        uint16_t *h = malloc((size_t)n * sizeof *h);
        for (long i = 0; i < n; i++)
            h[i] = ti_f32_to_bf16((float)x[i]);
        ti_status st = ti_ctx_upload(ctx, t, h, dt, 3, shape);
        free(h);
        return st;
    }
    float *f = malloc((size_t)n * sizeof *f);
    for (long i = 0; i < n; i++)
        f[i] = (float)x[i];
    ti_status st = ti_ctx_upload(ctx, t, f, dt, 3, shape);
    free(f);
    return st;
}

static void download_as(struct ti_ctx *ctx, const struct ti_tensor *t, double *x) {
    long n = (long)ti_tensor_numel(t);
    if (t->dtype == TI_DTYPE_F64) {
        CHECK_OK(ti_ctx_download(ctx, x, (size_t)n * sizeof *x, t), &ctx->err);
        return;
    }
    if (t->dtype == TI_DTYPE_BF16) {
        uint16_t *h = malloc((size_t)n * sizeof *h);
        CHECK_OK(ti_ctx_download(ctx, h, (size_t)n * sizeof *h, t), &ctx->err);
        for (long i = 0; i < n; i++)
            x[i] = ti_bf16_to_f32(h[i]);
        free(h);
        return;
    }
    float *f = malloc((size_t)n * sizeof *f);
    CHECK_OK(ti_ctx_download(ctx, f, (size_t)n * sizeof *f, t), &ctx->err);
    for (long i = 0; i < n; i++)
        x[i] = f[i];
    free(f);
}

/* bf16 results against the reference: normwise relative error ||got - want|| / ||want|| <=
 * nrel and every element within eabs * max |want| (bf16 keeps 8 bits: one rounding is 2^-9
 * relative; P, dS and the outputs are each rounded once). */
static int check_close_bf16(const double *got, const double *want, long n, double nrel, double eabs,
                            const char *what, int line) {
    double num = 0, den = 0, mx = 0, worst = 0;
    for (long i = 0; i < n; i++) {
        double d = got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
        mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
        worst = fabs(d) > worst || d != d ? fabs(d) : worst;
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    tc_checks++;
    if (rel <= nrel && worst <= eabs * mx) return 1;
    tc_failures++;
    fprintf(stderr, "FAIL %s:%d %s: normwise %.3g (bound %.3g), worst element %.3g (bound %.3g)\n",
            __FILE__, line, what, rel, nrel, worst, eabs * mx);
    return 0;
}

/* bf16 bounds of check_close_bf16: measured at most 2.7e-3 normwise and 2e-3 of the largest
 * element (native kernel; 1.9e-3 and 2e-3 by conversion), so about 2x and 5x headroom */
#define BF16_NREL 6e-3
#define BF16_EABS 1e-2

/* Runs ti_attention + backward with gradients for the inputs flagged in want[3] (q, k, v) and
 * compares with the naive reference (bf16: on the rounded inputs, with check_close_bf16's
 * bounds; atol and rtol are not used then). */
static void check_against_naive(const struct cfg *c, enum ti_dtype dt, const int want[3],
                                double atol, double rtol, const char *what) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_rng r;
    ti_rng_seed(&r, 77);
    const long nq = (long)c->B * c->Tq * c->NH * c->D, nk = (long)c->B * c->Tk * c->NH * c->D;
    const long nv = (long)c->B * c->Tk * c->NH * c->Dv, no = (long)c->B * c->Tq * c->NH * c->Dv;
    double *q = rand_array(nq, &r), *k = rand_array(nk, &r), *v = rand_array(nv, &r);
    double *dout = rand_array(no, &r);
    if (dt == TI_DTYPE_BF16) {
        double *in[4] = {q, k, v, dout};
        const long ns[4] = {nq, nk, nv, no};
        for (int i = 0; i < 4; i++)
            for (long j = 0; j < ns[i]; j++)
                in[i][j] = ti_bf16_to_f32(ti_f32_to_bf16((float)in[i][j]));
    }
    double *out = malloc((size_t)no * sizeof *out), *dq = malloc((size_t)nq * sizeof *dq);
    double *dk = malloc((size_t)nk * sizeof *dk), *dv = malloc((size_t)nv * sizeof *dv);
    naive_attention(c, q, k, v, dout, out, dq, dk, dv);

    struct ti_tensor tq, tk, tv, tdo, g[3], y = ti_tensor_none();
    CHECK_OK(upload_as(&ctx, &tq, q, c->B, c->Tq, c->NH * c->D, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tk, k, c->B, c->Tk, c->NH * c->D, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tv, v, c->B, c->Tk, c->NH * c->Dv, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tdo, dout, c->B, c->Tq, c->NH * c->Dv, dt), &ctx.err);
    struct ti_tensor *in[3] = {&tq, &tk, &tv};
    struct ti_tape *tape = NULL;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    for (int i = 0; i < 3; i++) {
        g[i] = ti_tensor_none();
        if (!want[i]) continue;
        CHECK_OK(ti_ctx_zeros(&ctx, &g[i], dt, 3, in[i]->shape), &ctx.err);
        CHECK_OK(ti_tape_watch(&ctx, in[i], &g[i]), &ctx.err);
    }
    ti_status st = ti_attention(&ctx, &y, &tq, &tk, &tv, c->NH, c->scale, c->causal);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        double *got = malloc((size_t)no * sizeof *got);
        download_as(&ctx, &y, got);
        if (dt == TI_DTYPE_BF16
                ? !check_close_bf16(got, out, no, BF16_NREL, BF16_EABS, what, __LINE__)
                : !tc_check_close(got, out, no, atol, rtol, what, __FILE__, __LINE__))
            fprintf(stderr, "  (output)\n");
        free(got);
        CHECK_OK(ti_tape_backward(&ctx, &y, &tdo), &ctx.err);
        const double *ref[3] = {dq, dk, dv};
        const long ns[3] = {nq, nk, nv};
        for (int i = 0; i < 3; i++) {
            if (!want[i]) continue;
            double *gg = malloc((size_t)ns[i] * sizeof *gg);
            download_as(&ctx, &g[i], gg);
            if (dt == TI_DTYPE_BF16
                    ? !check_close_bf16(gg, ref[i], ns[i], BF16_NREL, BF16_EABS, what, __LINE__)
                    : !tc_check_close(gg, ref[i], ns[i], atol, rtol, what, __FILE__, __LINE__))
                fprintf(stderr, "  (gradient of input %d)\n", i);
            free(gg);
        }
    }
    ti_tape_free(&tape);
    ctx.tape = NULL;
    ti_tensor_release(&y);
    for (int i = 0; i < 3; i++)
        ti_tensor_release(&g[i]);
    ti_tensor_release(&tq);
    ti_tensor_release(&tk);
    ti_tensor_release(&tv);
    ti_tensor_release(&tdo);
    ti_ctx_free(&ctx);
    free(q);
    free(k);
    free(v);
    free(dout);
    free(out);
    free(dq);
    free(dk);
    free(dv);
}

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Sizes chosen so the query blocks (up to 256 rows, fewer for long key ranges) split the
 * queries into several blocks, with a partial last block. */
static const struct cfg big_cfgs[] = {
    /* one head (VAE-like), causal: with 2+ threads the backward splits the head's blocks */
    {1, 600, 600, 1, 7, 9, 1, 0.3779644730092272},
    /* cross-attention, 77 keys, 3 heads */
    {2, 300, 77, 3, 8, 6, 0, 0.35355339059327373},
    /* causal, 2 heads of 5 */
    {1, 520, 520, 2, 5, 5, 1, 0.4472135954999579},
};

TEST(blocked_matches_naive) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#else
    int saved = 1;
#endif
    const int all[3] = {1, 1, 1};
    char what[96];
    for (size_t i = 0; i < sizeof big_cfgs / sizeof big_cfgs[0]; i++) {
        for (int nt = 1; nt <= 3; nt++) {
            set_threads(nt);
            snprintf(what, sizeof what, "f64 cfg %zu threads %d", i, nt);
            check_against_naive(&big_cfgs[i], TI_DTYPE_F64, all, 1e-11, 1e-9, what);
        }
        /* f32: SGEMM, the fast exp and f32 sums over up to 600 keys */
        set_threads(2);
        snprintf(what, sizeof what, "f32 cfg %zu", i);
        check_against_naive(&big_cfgs[i], TI_DTYPE_F32, all, 2e-5, 1e-3, what);
    }
    set_threads(saved);
}

TEST(gradients_only_where_needed) {
    const int only_v[3] = {0, 0, 1}, only_q[3] = {1, 0, 0}, only_k[3] = {0, 1, 0};
    const int kv[3] = {0, 1, 1};
    for (size_t i = 0; i < sizeof big_cfgs / sizeof big_cfgs[0]; i++) {
        check_against_naive(&big_cfgs[i], TI_DTYPE_F64, only_v, 1e-11, 1e-9, "only dv");
        check_against_naive(&big_cfgs[i], TI_DTYPE_F64, only_q, 1e-11, 1e-9, "only dq");
        check_against_naive(&big_cfgs[i], TI_DTYPE_F64, only_k, 1e-11, 1e-9, "only dk");
        check_against_naive(&big_cfgs[i], TI_DTYPE_F64, kv, 1e-11, 1e-9, "dk and dv");
    }
}

/* q given as a permuted (B, C, T) buffer: innermost stride T, so the front end copies it; the
 * result and dq must equal those of the contiguous q */
TEST(strided_inputs) {
    const int B = 2, T = 9, NH = 2, D = 3;
    const int C = NH * D;
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_rng r;
    ti_rng_seed(&r, 3);
    double *q = rand_array(B * T * C, &r), *k = rand_array(B * T * C, &r);
    double *v = rand_array(B * T * C, &r), *dout = rand_array(B * T * C, &r);
    double *qt = malloc((size_t)(B * T * C) * sizeof *qt); /* (B, C, T) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int c = 0; c < C; c++)
                qt[(b * C + c) * T + t] = q[(b * T + t) * C + c];
    double res[2][2][B * T * C]; /* [run][out, dq] */
    for (int run = 0; run < 2; run++) {
        struct ti_tensor tq, tk, tv, tdo, dq, y = ti_tensor_none(), qin;
        const int64_t shape[3] = {B, T, C}, tshape[3] = {B, C, T};
        const int perm[3] = {0, 2, 1};
        CHECK_OK(ti_ctx_upload(&ctx, &tk, k, TI_DTYPE_F64, 3, shape), &ctx.err);
        CHECK_OK(ti_ctx_upload(&ctx, &tv, v, TI_DTYPE_F64, 3, shape), &ctx.err);
        CHECK_OK(ti_ctx_upload(&ctx, &tdo, dout, TI_DTYPE_F64, 3, shape), &ctx.err);
        if (run == 0)
            CHECK_OK(ti_ctx_upload(&ctx, &tq, q, TI_DTYPE_F64, 3, shape), &ctx.err);
        else
            CHECK_OK(ti_ctx_upload(&ctx, &tq, qt, TI_DTYPE_F64, 3, tshape), &ctx.err);
        CHECK_OK(ti_ctx_zeros(&ctx, &dq, TI_DTYPE_F64, 3, tq.shape), &ctx.err);
        struct ti_tape *tape = NULL;
        CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
        ctx.tape = tape;
        CHECK_OK(ti_tape_watch(&ctx, &tq, &dq), &ctx.err);
        if (run == 0) {
            qin = tq;
            ti_tensor_retain(&qin);
        } else {
            CHECK_OK(ti_permute(&ctx, &qin, &tq, perm), &ctx.err);
            CHECK(qin.stride[2] == T);
        }
        CHECK_OK(ti_attention(&ctx, &y, &qin, &tk, &tv, NH, 0.6, 0), &ctx.err);
        download_as(&ctx, &y, res[run][0]);
        CHECK_OK(ti_tape_backward(&ctx, &y, &tdo), &ctx.err);
        double *g = malloc((size_t)(B * T * C) * sizeof *g);
        download_as(&ctx, &dq, g);
        /* bring dq of the (B, C, T) input back to (B, T, C) order */
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++)
                    res[run][1][(b * T + t) * C + c] =
                        run == 0 ? g[(b * T + t) * C + c] : g[(b * C + c) * T + t];
        free(g);
        ti_tape_free(&tape);
        ctx.tape = NULL;
        ti_tensor_release(&y);
        ti_tensor_release(&qin);
        ti_tensor_release(&tq);
        ti_tensor_release(&tk);
        ti_tensor_release(&tv);
        ti_tensor_release(&tdo);
        ti_tensor_release(&dq);
    }
    CHECK_CLOSE(res[1][0], res[0][0], B * T * C, 1e-14, 1e-12);
    CHECK_CLOSE(res[1][1], res[0][1], B * T * C, 1e-14, 1e-12);
    ti_ctx_free(&ctx);
    free(q);
    free(k);
    free(v);
    free(dout);
    free(qt);
}

TEST(rejects_bad_shapes) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_tensor q, k, v, k2, v2, q64, y;
    const int64_t s1[3] = {2, 5, 6}, s2[3] = {2, 4, 6}, s3[3] = {1, 5, 6};
    CHECK_OK(ti_ctx_zeros(&ctx, &q, TI_DTYPE_F32, 3, s1), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &k, TI_DTYPE_F32, 3, s1), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &v, TI_DTYPE_F32, 3, s1), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &k2, TI_DTYPE_F32, 3, s2), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &v2, TI_DTYPE_F32, 3, s3), &ctx.err);
    CHECK_OK(ti_ctx_zeros(&ctx, &q64, TI_DTYPE_F64, 3, s1), &ctx.err);
    struct {
        const struct ti_tensor *q, *k, *v;
        int heads, causal;
        ti_status want;
    } bad[] = {
        {&q, &k, &v, 4, 0, TI_ERR_SHAPE},   /* 6 features, 4 heads */
        {&q, &k, &v, 0, 0, TI_ERR_INVALID}, /* no heads */
        {&q, &k2, &v, 2, 0, TI_ERR_SHAPE},  /* k and v lengths differ */
        {&q, &k2, &k2, 2, 1, TI_ERR_SHAPE}, /* causal with Tq != Tk */
        {&q, &k, &v2, 2, 0, TI_ERR_SHAPE},  /* batch sizes differ */
        {&q64, &k, &v, 2, 0, TI_ERR_DTYPE}, /* dtypes differ */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ti_status st =
            ti_attention(&ctx, &y, bad[i].q, bad[i].k, bad[i].v, bad[i].heads, 0.5, bad[i].causal);
        CHECK(st == bad[i].want);
        CHECK(y.data == NULL);
        CHECK(strstr(ctx.err.msg, "attention") != NULL);
        ti_err_clear(&ctx.err);
    }
    /* the good call works: cross-attention with 4 keys */
    CHECK_OK(ti_attention(&ctx, &y, &q, &k2, &k2, 2, 0.5, 0), &ctx.err);
    CHECK(y.ndim == 3 && y.shape[0] == 2 && y.shape[1] == 5 && y.shape[2] == 6);
    ti_tensor_release(&y);
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    ti_tensor_release(&k2);
    ti_tensor_release(&v2);
    ti_tensor_release(&q64);
    ti_ctx_free(&ctx);
}

/* SD v1 head widths: 8 x 40 self-attention (here 2 heads, 300 tokens: two query blocks, the
 * second not a multiple of the 8-row GEMM tile), cross-attention over 77 keys, 80 wide causal */
static const struct cfg sd_cfgs[] = {
    {1, 300, 300, 2, 40, 40, 0, 0.15811388300841897},
    {2, 200, 77, 2, 40, 40, 0, 0.15811388300841897},
    {1, 150, 150, 2, 80, 80, 1, 0.11180339887498948},
    /* one wide head, odd Dv (VAE-like; 9 output vectors of 16 per row) */
    {1, 70, 90, 1, 130, 129, 0, 0.08770580193070293},
    /* causal over several key panels with query blocks (248 rows) that do not divide them */
    {1, 1040, 1040, 1, 8, 8, 1, 0.35355339059327373},
};

TEST(bf16_matches_naive) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#else
    int saved = 1;
#endif
    const int all[3] = {1, 1, 1}, only_v[3] = {0, 0, 1}, kv[3] = {0, 1, 1};
    const char *old = getenv("TI_ATTN_BF16");
    char what[96];
    for (int path = 0; path < 2; path++) {
        /* path 0: the native kernel where the CPU has AVX512-BF16; 1: f32 between conversions */
        if (path == 1) setenv("TI_ATTN_BF16", "0", 1);
        const size_t nb = sizeof big_cfgs / sizeof big_cfgs[0];
        for (size_t i = 0; i < nb + sizeof sd_cfgs / sizeof sd_cfgs[0]; i++) {
            const struct cfg *c = i < nb ? &big_cfgs[i] : &sd_cfgs[i - nb];
            set_threads(i % 2 ? 1 : 2);
            snprintf(what, sizeof what, "bf16 path %d cfg %zu", path, i);
            check_against_naive(c, TI_DTYPE_BF16, all, 0, 0, what);
            if (i == nb) {
                snprintf(what, sizeof what, "bf16 path %d cfg %zu only dv", path, i);
                check_against_naive(c, TI_DTYPE_BF16, only_v, 0, 0, what);
                snprintf(what, sizeof what, "bf16 path %d cfg %zu dk and dv", path, i);
                check_against_naive(c, TI_DTYPE_BF16, kv, 0, 0, what);
            }
        }
    }
    if (old)
        setenv("TI_ATTN_BF16", old, 1);
    else
        unsetenv("TI_ATTN_BF16");
    set_threads(saved);
}

/* out and dq of a causal attention of dtype dt (B 1, NH 1) into out / dq (T x D doubles each) */
static void causal_run(enum ti_dtype dt, int T, int D, const double *q, const double *k,
                       const double *v, const double *dout, double *out, double *dq) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_tensor tq, tk, tv, tdo, g = ti_tensor_none(), y = ti_tensor_none();
    CHECK_OK(upload_as(&ctx, &tq, q, 1, T, D, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tk, k, 1, T, D, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tv, v, 1, T, D, dt), &ctx.err);
    CHECK_OK(upload_as(&ctx, &tdo, dout, 1, T, D, dt), &ctx.err);
    struct ti_tape *tape = NULL;
    CHECK_OK(ti_tape_init(&tape, &ctx.err), &ctx.err);
    ctx.tape = tape;
    CHECK_OK(ti_ctx_zeros(&ctx, &g, dt, 3, tq.shape), &ctx.err);
    CHECK_OK(ti_tape_watch(&ctx, &tq, &g), &ctx.err);
    CHECK_OK(ti_attention(&ctx, &y, &tq, &tk, &tv, 1, 0.5, 1), &ctx.err);
    download_as(&ctx, &y, out);
    CHECK_OK(ti_tape_backward(&ctx, &y, &tdo), &ctx.err);
    download_as(&ctx, &g, dq);
    ti_tape_free(&tape);
    ctx.tape = NULL;
    ti_tensor_release(&y);
    ti_tensor_release(&g);
    ti_tensor_release(&tq);
    ti_tensor_release(&tk);
    ti_tensor_release(&tv);
    ti_tensor_release(&tdo);
    ti_ctx_free(&ctx);
}

/* Causal: the output and dq of query i must not depend on keys after i. Keys from t on are
 * replaced; rows before t must come out bitwise the same (masked keys contribute exact zeros).
 * t at key-panel and query-block edges, where a mask off by one would leak. */
static void causal_no_future(enum ti_dtype dt) {
    const int T = 1040, D = 8;
    struct ti_rng r;
    ti_rng_seed(&r, 5);
    double *q = rand_array(T * D, &r), *k = rand_array(T * D, &r), *v = rand_array(T * D, &r);
    double *dout = rand_array(T * D, &r);
    double *o0 = malloc((size_t)(T * D) * sizeof *o0), *g0 = malloc((size_t)(T * D) * sizeof *g0);
    double *o1 = malloc((size_t)(T * D) * sizeof *o1), *g1 = malloc((size_t)(T * D) * sizeof *g1);
    causal_run(dt, T, D, q, k, v, dout, o0, g0);
    const int ts[] = {248, 255, 256, 257, 496, 512, 1023};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) {
        double *k2 = malloc((size_t)(T * D) * sizeof *k2),
               *v2 = malloc((size_t)(T * D) * sizeof *v2);
        memcpy(k2, k, (size_t)(T * D) * sizeof *k2);
        memcpy(v2, v, (size_t)(T * D) * sizeof *v2);
        for (int j = ts[i] * D; j < T * D; j++) {
            k2[j] = 3.0 * k2[j] + 1.0; /* future keys score high if they leak */
            v2[j] = -v2[j] + 2.0;
        }
        causal_run(dt, T, D, q, k2, v2, dout, o1, g1);
        int same = memcmp(o0, o1, (size_t)(ts[i] * D) * sizeof *o0) == 0 &&
                   memcmp(g0, g1, (size_t)(ts[i] * D) * sizeof *g0) == 0;
        if (!same)
            fprintf(stderr, "  %s: rows before %d depend on later keys\n",
                    dt == TI_DTYPE_BF16 ? "bf16" : "f32", ts[i]);
        CHECK(same);
        free(k2);
        free(v2);
    }
    free(q);
    free(k);
    free(v);
    free(dout);
    free(o0);
    free(g0);
    free(o1);
    free(g1);
}

TEST(bf16_causal_no_future) {
    causal_no_future(TI_DTYPE_BF16);
}

/* cpu/attention_f32.c's kernel in each variant this CPU can run (its best: AVX-512 or AVX2;
 * TI_ATTN_F32=avx2; TI_ATTN_F32=0: attention.c's SGEMM path) against the naive reference at
 * the sizes above (several query blocks and key panels, partial GEMM tiles, head widths 5-130,
 * causal and cross), with 1, 2 and 3 threads (3 threads with 2 heads: the backward falls back
 * to the split-head path, the forward stays), and the causal mask leak check. */
TEST(f32_kernel_matches_naive) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
#else
    int saved = 1;
#endif
    const int all[3] = {1, 1, 1}, only_v[3] = {0, 0, 1}, only_q[3] = {1, 0, 0}, kv[3] = {0, 1, 1};
    const char *old = getenv("TI_ATTN_F32");
    const char *paths[3] = {NULL, "avx2", "0"};
    fprintf(stderr, "  f32 attention: CPU vector level %d (3 AVX-512, 2 AVX2)\n",
            ti_cpu_vector_level());
    char what[96];
    for (int path = 0; path < 3; path++) {
        if (paths[path])
            setenv("TI_ATTN_F32", paths[path], 1);
        else
            unsetenv("TI_ATTN_F32");
        const size_t nb = sizeof big_cfgs / sizeof big_cfgs[0];
        for (size_t i = 0; i < nb + sizeof sd_cfgs / sizeof sd_cfgs[0]; i++) {
            const struct cfg *c = i < nb ? &big_cfgs[i] : &sd_cfgs[i - nb];
            set_threads(1 + (int)(i % 3));
            snprintf(what, sizeof what, "f32 path %d cfg %zu", path, i);
            check_against_naive(c, TI_DTYPE_F32, all, 2e-5, 1e-3, what);
            if (i == nb) {
                snprintf(what, sizeof what, "f32 path %d cfg %zu only dv", path, i);
                check_against_naive(c, TI_DTYPE_F32, only_v, 2e-5, 1e-3, what);
                snprintf(what, sizeof what, "f32 path %d cfg %zu only dq", path, i);
                check_against_naive(c, TI_DTYPE_F32, only_q, 2e-5, 1e-3, what);
                snprintf(what, sizeof what, "f32 path %d cfg %zu dk and dv", path, i);
                check_against_naive(c, TI_DTYPE_F32, kv, 2e-5, 1e-3, what);
            }
        }
        set_threads(2);
        causal_no_future(TI_DTYPE_F32);
    }
    if (old)
        setenv("TI_ATTN_F32", old, 1);
    else
        unsetenv("TI_ATTN_F32");
    set_threads(saved);
}

int main(void) {
    RUN(exp_matches_expf);
    RUN(blocked_matches_naive);
    RUN(gradients_only_where_needed);
    RUN(strided_inputs);
    RUN(rejects_bad_shapes);
    RUN(bf16_matches_naive);
    RUN(bf16_causal_no_future);
    RUN(f32_kernel_matches_naive);
    return tc_finish();
}
