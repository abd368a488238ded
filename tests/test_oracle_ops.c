/*
 * test_oracle_ops.c - every op case against PyTorch: tests/fixtures/ops_<family>.h5 holds, per
 * case name, the inputs in0.., the seed gradient dout, torch's output `out` and input
 * gradients grad<i> (computed in float64 by scripts/oracle/ops.py), and the case parameters as
 * the attribute `params` (checked against op_cases so the two sides cannot drift).
 * ti runs each case on the CPU in f64 (tolerance 1e-9 abs / 1e-7 rel) and in f32 (the case's
 * oracle tolerances, default 1e-5 / 1e-4), forward and backward.
 * Usage: test_oracle_ops [case-name-substring]
 */
#include <string.h>

#include "h5util.h"
#include "op_cases.h"
#include "test_common.h"

static const char *filter;

/* Compares a result array of ti (got: ndim, shape) with a fixture dataset (want: its ndim and
 * shape as stored): the shapes, hence the element counts, must agree before any value is
 * compared, so a short result cannot pass on a prefix of the fixture and a long one never reads
 * past it. Returns 1 when everything matches; failures are counted and printed. */
static int compare_with_fixture(const char *what, const double *got, int got_nd,
                                const int64_t *got_shape, const double *want, int want_nd,
                                const int64_t *want_shape, double atol, double rtol) {
    int same = got_nd == want_nd;
    long n_got = 1, n_want = 1;
    for (int j = 0; j < got_nd; j++)
        n_got *= (long)got_shape[j];
    for (int j = 0; j < want_nd; j++)
        n_want *= (long)want_shape[j];
    for (int j = 0; same && j < got_nd; j++)
        same = got_shape[j] == want_shape[j];
    CHECK(same && n_got == n_want);
    if (!same || n_got != n_want) {
        fprintf(stderr, "  %s: ti's shape (", what);
        for (int j = 0; j < got_nd; j++)
            fprintf(stderr, "%s%lld", j ? ", " : "", (long long)got_shape[j]);
        fprintf(stderr, "; %ld elements) differs from the fixture's (", n_got);
        for (int j = 0; j < want_nd; j++)
            fprintf(stderr, "%s%lld", j ? ", " : "", (long long)want_shape[j]);
        fprintf(stderr, "; %ld elements)\n", n_want);
        return 0;
    }
    return tc_check_close(got, want, n_got, atol, rtol, what, __FILE__, __LINE__);
}

static void check_case(struct ti_ctx *ctx, hid_t f, const struct op_case *c) {
    char path[256];
    if (!h5u_exists(f, c->name)) {
        tc_failures++;
        fprintf(stderr, "  %s: no fixture group (regenerate with scripts/oracle/ops.py)\n",
                c->name);
        return;
    }
    double params[8] = {0};
    int np = h5u_attr(f, c->name, "params", params, 8);
    CHECK(np == 8);
    CHECK(memcmp(params, c->p, sizeof params) == 0);
    struct oc_data d;
    memset(&d, 0, sizeof d);
    int ok = 1;
    for (int i = 0; i < c->n_in; i++) {
        int nd;
        int64_t shape[6];
        snprintf(path, sizeof path, "%s/in%d", c->name, i);
        if (h5u_read(f, path, &d.in[i], &nd, shape) != 0) {
            ok = 0;
            fprintf(stderr, "  %s: missing %s\n", c->name, path);
            continue;
        }
        int same = nd == c->in[i].ndim;
        long n = 1;
        for (int j = 0; same && j < nd; j++) {
            same = shape[j] == c->in[i].shape[j];
            n *= (long)shape[j];
        }
        d.numel[i] = n;
        if (!same) {
            ok = 0;
            fprintf(stderr, "  %s: %s has another shape than the case\n", c->name, path);
        }
    }
    double *dout = NULL, *out = NULL;
    int out_nd = 0, dout_nd = 0;
    int64_t out_shape[6] = {0}, dout_shape[6] = {0};
    snprintf(path, sizeof path, "%s/dout", c->name);
    if (h5u_read(f, path, &dout, &dout_nd, dout_shape) != 0) ok = 0;
    snprintf(path, sizeof path, "%s/out", c->name);
    if (h5u_read(f, path, &out, &out_nd, out_shape) != 0) ok = 0;
    /* oc_run reads out_numel seed values from dout: the fixture's dout must be out's shape */
    if (ok && (dout_nd != out_nd || memcmp(dout_shape, out_shape, sizeof out_shape) != 0)) {
        ok = 0;
        fprintf(stderr, "  %s: the fixture's dout and out differ in shape\n", c->name);
    }
    /* ... and hold as many values as ti's output, or oc_run would read past it */
    long n_fix = 1, n_ti = 0;
    for (int j = 0; j < out_nd; j++)
        n_fix *= (long)out_shape[j];
    if (ok && (oc_out_numel(c, &d, &n_ti) != TI_OK || n_ti != n_fix)) {
        ok = 0;
        fprintf(stderr, "  %s: ti's output has %ld elements, the fixture's %ld\n", c->name, n_ti,
                n_fix);
    }
    CHECK(ok);
    const enum ti_dtype dts[2] = {TI_DTYPE_F64, TI_DTYPE_F32};
    for (int t = 0; ok && t < 2; t++) {
        double atol = t == 0 ? 1e-9 : (c->oracle_atol > 0 ? c->oracle_atol : 1e-5);
        double rtol = t == 0 ? 1e-7 : (c->oracle_rtol > 0 ? c->oracle_rtol : 1e-4);
        struct oc_result r;
        ti_status st = oc_run(ctx, c, &d, dts[t], dout, &r);
        CHECK_OK(st, &ctx->err);
        if (st == TI_OK) {
            if (!compare_with_fixture(c->name, r.out, r.out_ndim, r.out_shape, out, out_nd,
                                      out_shape, atol, rtol))
                fprintf(stderr, "  (output of %s in %s)\n", c->name, ti_dtype_name(dts[t]));
            for (int i = 0; i < c->n_in; i++) {
                if (!c->in[i].grad) continue;
                double *g = NULL;
                int g_nd = 0;
                int64_t g_shape[6] = {0};
                snprintf(path, sizeof path, "%s/grad%d", c->name, i);
                CHECK(h5u_read(f, path, &g, &g_nd, g_shape) == 0);
                CHECK(r.grad[i] != NULL);
                /* the gradient of input i has the input's (the case's) shape */
                if (g && r.grad[i] &&
                    !compare_with_fixture(c->name, r.grad[i], c->in[i].ndim, c->in[i].shape, g,
                                          g_nd, g_shape, atol, rtol))
                    fprintf(stderr, "  (gradient of input %d of %s in %s)\n", i, c->name,
                            ti_dtype_name(dts[t]));
                free(g);
            }
        }
        ti_err_clear(&ctx->err);
        oc_result_free(&r);
    }
    free(dout);
    free(out);
    oc_data_free(&d);
}

TEST(oracle_all_cases) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    const char *open_family = NULL;
    hid_t f = -1;
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (filter && !strstr(cases[i]->name, filter)) continue;
        const char *fam = oc_case_family(i);
        if (!open_family || strcmp(fam, open_family) != 0) {
            h5u_close(f);
            char path[256];
            snprintf(path, sizeof path, "tests/fixtures/ops_%s.h5", fam);
            f = h5u_open(path);
            open_family = fam;
            if (f < 0) fprintf(stderr, "  cannot open %s\n", path);
        }
        int before = tc_failures;
        if (f < 0)
            tc_failures++;
        else
            check_case(&ctx, f, cases[i]);
        printf("  %-28s %s\n", cases[i]->name, tc_failures == before ? "ok" : "FAIL");
        ran++;
    }
    h5u_close(f);
    CHECK(ran > 0);
    ti_ctx_free(&ctx);
}

/* The comparison itself: a result one element short of the fixture (which used to pass on the
 * fixture's prefix), one element long (which used to read past the fixture), or of another shape
 * with the same count must fail; the same arrays with equal shapes pass. */
TEST(shape_mismatch_fails) {
    const double want[6] = {1, 2, 3, 4, 5, 6}, got[7] = {1, 2, 3, 4, 5, 6, 7};
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s5[1] = {5}, s7[1] = {7}, s6[1] = {6};
    int before = tc_failures;
    CHECK(compare_with_fixture("exact", got, 2, s23, want, 2, s23, 0, 0) == 1);
    CHECK(compare_with_fixture("flat", got, 1, s6, want, 1, s6, 0, 0) == 1);
    CHECK(tc_failures == before);
    /* each mismatch below counts one failure in compare_with_fixture; take them back */
    printf("  (the four comparisons below are expected to fail)\n");
    int f0 = tc_failures;
    int short_ok = compare_with_fixture("short (expected to fail)", got, 1, s5, want, 1, s6, 0, 0);
    int long_ok = compare_with_fixture("long (expected to fail)", got, 1, s7, want, 1, s6, 0, 0);
    int perm_ok =
        compare_with_fixture("transposed (expected to fail)", got, 2, s32, want, 2, s23, 0, 0);
    int rank_ok = compare_with_fixture("rank (expected to fail)", got, 1, s6, want, 2, s23, 0, 0);
    int counted = tc_failures - f0;
    tc_failures = f0;
    CHECK(short_ok == 0);
    CHECK(long_ok == 0);
    CHECK(perm_ok == 0);
    CHECK(rank_ok == 0);
    CHECK(counted == 4);
}

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    RUN(shape_mismatch_fails);
    RUN(oracle_all_cases);
    return tc_finish();
}
