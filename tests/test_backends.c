/*
 * test_backends.c - backend consistency: every op case (op_cases.h) runs forward and backward
 * on each CUDA device in f32, f16 and bf16 and is compared with the CPU (f64, on the same
 * dtype-rounded inputs), per output and per input gradient, by
 *   - normalised MSE, sum((x - ref)^2) / sum(ref^2): the case's nmse_tol (default 1e-7) for
 *     f32, x1e3 for f16 and x1e4 for bf16;
 *   - element by element, |x - ref| <= b * (|ref| + rms(ref)) with b = max(ELEM_ULPS * u,
 *     ELEM_SIGMAS * sqrt(nmse tolerance)), u the dtype's unit roundoff (f16 2^-11, bf16 2^-8,
 *     f32 0): a global MSE can hide a few wrong elements, this cannot. The GPU computes in f32
 *     from the same rounded inputs and rounds each stored result once, so a correct kernel stays
 *     within a few u; and noise that the MSE tolerance accepts (rms up to sqrt(tol) * rms(ref))
 *     stays below ELEM_SIGMAS times that in every element of these small cases, so the bound
 *     is never stricter than the MSE for honest rounding noise. (f16: b = 0.05, bf16: 0.158,
 *     f32: 1.6e-3 at the default tolerance.)
 * Every case ends as ok, FAIL, or a counted skip: a backend refusing a case
 * (TI_ERR_UNSUPPORTED, TI_ERR_DTYPE) fails unless the case says why it may be refused
 * (op_case.may_be_unsupported, a size the models never use); such skips make the binary exit 77
 * with the reasons. A case whose reference (CPU) run fails is a failure. Exits 77 (ctest SKIP)
 * when no GPU is present.
 * Usage: test_backends [case-name-substring]
 *        test_backends --cpu-bf16 [case-name-substring]   (the CPU's bf16 kernels, label cpu)
 */
#include <string.h>

#include "op_cases.h"
#include "rng.h"
#include "test_common.h"

static double nmse(const double *x, const double *ref, long n) {
    double num = 0, den = 0;
    for (long i = 0; i < n; i++) {
        double d = x[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY; /* NaN */
    return den > 0 ? num / den : num;
}

/* rounds values through dtype dt (so the CPU sees what the GPU sees) */
static void round_array(double *v, long n, enum ti_dtype dt) {
    for (long j = 0; j < n; j++) {
        float f = (float)v[j];
        if (dt == TI_DTYPE_F16)
            f = ti_f16_to_f32(ti_f32_to_f16(f));
        else if (dt == TI_DTYPE_BF16)
            f = ti_bf16_to_f32(ti_f32_to_bf16(f));
        v[j] = f;
    }
}

static void round_inputs(struct oc_data *d, const struct op_case *c, enum ti_dtype dt) {
    for (int i = 0; i < c->n_in; i++)
        if (!c->in[i].is_index) round_array(d->in[i], d->numel[i], dt);
}

static const char *filter;

#define ELEM_ULPS   32.0
#define ELEM_SIGMAS 5.0

/* unit roundoff of the storage dtype (0 for f32: its bound comes from the tolerance alone) */
static double unit_roundoff(enum ti_dtype dt) {
    return dt == TI_DTYPE_F16 ? ldexp(1.0, -11) : dt == TI_DTYPE_BF16 ? ldexp(1.0, -8) : 0.0;
}

/* Largest |x - ref| / (|ref| + rms(ref)) over the elements (NaN counts as infinite), so the
 * element-wise bound is worst <= elem_bound(). *at: the worst element. */
static double worst_element(const double *x, const double *ref, long n, long *at) {
    double ss = 0, worst = -1;
    for (long i = 0; i < n; i++)
        ss += ref[i] * ref[i];
    double rms = n > 0 ? sqrt(ss / (double)n) : 0;
    *at = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(x[i] - ref[i]), scale = fabs(ref[i]) + rms;
        double r = !(d == d) ? INFINITY : d == 0 ? 0 : scale > 0 ? d / scale : INFINITY;
        if (r > worst) {
            worst = r;
            *at = i;
        }
    }
    return worst;
}

/* the nmse tolerance of a dtype relative to f32 */
static double nmse_scale(enum ti_dtype dt) {
    return dt == TI_DTYPE_F16 ? 1e3 : dt == TI_DTYPE_BF16 ? 1e4 : 1;
}

static double elem_bound(enum ti_dtype dt, double tol) {
    double a = ELEM_ULPS * unit_roundoff(dt), b = ELEM_SIGMAS * sqrt(tol);
    return a > b ? a : b;
}

/* Compares one array; returns 1 when within both bounds, else prints the worst element. */
static int compare(const char *cname, const char *what, enum ti_dtype dt, const double *x,
                   const double *ref, long n, double tol, double *nmse_out) {
    double e = nmse(x, ref, n);
    if (e > *nmse_out || !(e == e)) *nmse_out = e;
    int ok = e <= tol;
    if (n > 0) {
        long at;
        double w = worst_element(x, ref, n, &at), bound = elem_bound(dt, tol);
        if (!(w <= bound)) {
            ok = 0;
            fprintf(stderr,
                    "  %s %s %s: element [%ld] is %.6g, the CPU's %.6g: error %.3g x (|ref| + "
                    "rms), bound %.3g\n",
                    cname, ti_dtype_name(dt), what, at, x[at], ref[at], w, bound);
        }
    }
    if (!(e <= tol))
        fprintf(stderr, "  %s %s %s: nmse %.3g above %.3g\n", cname, ti_dtype_name(dt), what, e,
                tol);
    return ok;
}

static void skip_case(const struct op_case *c, enum ti_dtype dt, const char *msg) {
    char why[1400];
    snprintf(why, sizeof why, "%s %s: %s (refused: %s)", c->name, ti_dtype_name(dt),
             c->may_be_unsupported, msg);
    TC_SKIP_TEST(why);
}

/* Runs cases[0..n) on backend `be` in the dtypes dts[0..ndt) against the CPU in f64. */
static void check_backend(const struct ti_backend *be, const struct op_case *const *cases, int n,
                          int ndt, const enum ti_dtype *dts) {
    struct ti_ctx cg, cc;
    CHECK_OK(ti_ctx_init(&cg, be, 0, 0), &cg.err);
    CHECK_OK(ti_ctx_init(&cc, ti_backend_cpu(), 0, 0), &cc.err);
    int ran = 0;
    printf("%-28s %-5s %12s %12s  %s\n", "case", "dtype", "nmse(out)", "nmse(grad)", "result");
    for (int i = 0; i < n; i++) {
        const struct op_case *c = cases[i];
        if (filter && !strstr(c->name, filter)) continue;
        tc_current = c->name;
        for (int t = 0; t < ndt; t++) {
            struct oc_data d;
            oc_data_random(&d, c, 4321);
            round_inputs(&d, c, dts[t]);
            long nout = 0;
            ti_status so = oc_out_numel(c, &d, &nout);
            CHECK(so == TI_OK); /* the CPU reference itself must run */
            if (so != TI_OK) {
                printf("%-28s %-5s %12s %12s  FAIL (the CPU cannot run the case: status %d)\n",
                       c->name, ti_dtype_name(dts[t]), "-", "-", (int)so);
                oc_data_free(&d);
                continue;
            }
            ran++;
            double *w = malloc((size_t)(nout ? nout : 1) * sizeof *w);
            struct ti_rng r;
            ti_rng_seed(&r, 7);
            ti_rng_uniform_f64(&r, w, (size_t)nout, -1, 1);
            round_array(w, nout, dts[t]);
            struct oc_result ref, got;
            ti_status sr = oc_run(&cc, c, &d, TI_DTYPE_F64, w, &ref);
            ti_status sg = oc_run(&cg, c, &d, dts[t], w, &got);
            CHECK_OK(sr, &cc.err);
            if ((sg == TI_ERR_UNSUPPORTED || sg == TI_ERR_DTYPE) && c->may_be_unsupported) {
                printf("%-28s %-5s %12s %12s  skip (%s)\n", c->name, ti_dtype_name(dts[t]), "-",
                       "-", cg.err.msg);
                skip_case(c, dts[t], cg.err.msg);
            } else {
                /* a refusal of a case the models need is a failure like any other error */
                CHECK_OK(sg, &cg.err);
                if (sg != TI_OK)
                    printf("%-28s %-5s %12s %12s  FAIL (%s)\n", c->name, ti_dtype_name(dts[t]), "-",
                           "-", cg.err.msg);
                if (sr == TI_OK && sg == TI_OK) {
                    double tol = (c->nmse_tol > 0 ? c->nmse_tol : 1e-7) * nmse_scale(dts[t]);
                    double eo = 0, eg = 0;
                    int ok = got.out_numel == ref.out_numel;
                    if (ok)
                        ok = compare(c->name, "output", dts[t], got.out, ref.out, ref.out_numel,
                                     tol, &eo);
                    for (int j = 0; j < c->n_in; j++) {
                        if (!c->in[j].grad) continue;
                        if (!ref.grad[j] || !got.grad[j]) {
                            ok = 0;
                            fprintf(stderr, "  %s: no gradient of input %d\n", c->name, j);
                            continue;
                        }
                        char what[32];
                        snprintf(what, sizeof what, "gradient %d", j);
                        if (!compare(c->name, what, dts[t], got.grad[j], ref.grad[j], d.numel[j],
                                     tol, &eg))
                            ok = 0;
                    }
                    CHECK(ok);
                    printf("%-28s %-5s %12.3g %12.3g  %s\n", c->name, ti_dtype_name(dts[t]), eo, eg,
                           ok ? "ok" : "FAIL");
                }
            }
            ti_err_clear(&cc.err);
            ti_err_clear(&cg.err);
            oc_result_free(&ref);
            oc_result_free(&got);
            free(w);
            oc_data_free(&d);
        }
    }
    tc_current = "";
    CHECK(ran > 0); /* a filter matching nothing is a usage error, not a pass */
    ti_ctx_free(&cg);
    ti_ctx_free(&cc);
}

static void check_device(int dev) {
    const struct ti_backend *gpu;
    struct ti_err err = {0};
    CHECK_OK(ti_backend_cuda(&gpu, dev, &err), &err);
    if (!gpu) return;
    const enum ti_dtype dts[3] = {TI_DTYPE_F32, TI_DTYPE_F16, TI_DTYPE_BF16};
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    check_backend(gpu, cases, n, 3, dts);
}

/* ---- self-tests of the harness (run everywhere, GPU or not) ---------------------------------- */

/* a few wrong elements that the normalised MSE lets through are caught element-wise */
TEST(elementwise_bound_catches_few_wrong_values) {
    enum { N = 2000 };
    static double ref[N], x[N];
    struct ti_rng r;
    ti_rng_seed(&r, 11);
    ti_rng_uniform_f64(&r, ref, N, -1, 1); /* rms 0.58 */
    ref[123] = 0.5;
    const enum ti_dtype dts[3] = {TI_DTYPE_F32, TI_DTYPE_F16, TI_DTYPE_BF16};
    /* one element off by 0.005 / 0.15 / 0.5: nmse 3.8e-8 / 3.4e-5 / 3.8e-4, below the
     * tolerances 1e-7 / 1e-4 / 1e-3, but 0.0046 / 0.14 / 0.46 x (|ref| + rms), above the bounds
     * 1.6e-3 / 0.05 / 0.16 */
    const double off[3] = {0.005, 0.15, 0.5};
    for (int t = 0; t < 3; t++) {
        double tol = 1e-7 * nmse_scale(dts[t]), e = 0;
        for (int i = 0; i < N; i++)
            x[i] = ref[i];
        round_array(x, N, dts[t]); /* the correct result, rounded once */
        int before = tc_failures;
        CHECK(compare("rounded", "output", dts[t], x, ref, N, tol, &e) == 1);
        CHECK(tc_failures == before);
        x[123] += off[t];
        e = 0;
        CHECK(nmse(x, ref, N) <= tol);
        CHECK(compare("one wrong element (expected to fail)", "output", dts[t], x, ref, N, tol,
                      &e) == 0);
        x[123] = NAN;
        CHECK(compare("a NaN (expected to fail)", "output", dts[t], x, ref, N, tol, &e) == 0);
    }
}

/* A backend without a kernel the models need fails the case; one the case allows may be
 * refused and is then a counted skip (the binary reports 77), never silently passed over. */
TEST(refused_cases_fail_or_count_as_skips) {
    int n;
    const struct op_case *const *all = oc_all_cases(&n);
    const struct op_case *soft = NULL;
    for (int i = 0; i < n && !soft; i++)
        if (strcmp(all[i]->op, "softmax") == 0) soft = all[i];
    CHECK(soft != NULL);
    if (!soft) return;
    /* the CPU backend without its f32 softmax: refuses with TI_ERR_UNSUPPORTED */
    static struct ti_backend fake;
    fake = *ti_backend_cpu();
    fake.name = "cpu-without-softmax";
    fake.k[TI_DTYPE_F32].softmax_forward = NULL;
    struct op_case allowed = *soft;
    allowed.may_be_unsupported = "test: a refusal this case allows";
    const struct op_case *cases[2] = {soft, &allowed};
    const enum ti_dtype f32 = TI_DTYPE_F32;
    int f0 = tc_failures, s0 = tc_skips;
    printf("  (the first case below is expected to FAIL, the second to skip)\n");
    check_backend(&fake, cases, 2, 1, &f32);
    int failed = tc_failures - f0, skipped = tc_skips - s0;
    tc_failures = f0;
    tc_skips = s0;
    CHECK(failed == 1);
    CHECK(skipped == 1);
    /* and the intact CPU backend passes the same case in f32 */
    check_backend(ti_backend_cpu(), cases, 1, 1, &f32);
    CHECK(tc_failures == f0);
}

/* --cpu-bf16: the CPU backend's bf16 table (cpu/bf16.c) against the CPU in f64, every case,
 * with the same bf16 tolerances as a GPU (the CPU also computes in f32 from the rounded inputs
 * and rounds each stored result once). */
static int check_cpu_bf16(void) {
    const enum ti_dtype bf16 = TI_DTYPE_BF16;
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    check_backend(ti_backend_cpu(), cases, n, 1, &bf16);
    return tc_finish();
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--cpu-bf16") == 0) {
        filter = argc > 2 ? argv[2] : NULL;
        return check_cpu_bf16();
    }
    if (argc > 1) filter = argv[1];
    const char *saved = filter;
    filter = NULL;
    RUN(elementwise_bound_catches_few_wrong_values);
    RUN(refused_cases_fail_or_count_as_skips);
    filter = saved;
    if (tc_failures) return tc_finish();
    int ndev = ti_cuda_device_count();
    if (ndev == 0) {
        printf("SKIP: no CUDA device (or ti built without CUDA); the harness self-tests passed\n");
        return TC_SKIP;
    }
    for (int dev = 0; dev < ndev; dev++)
        check_device(dev);
    return tc_finish();
}
