/*
 * test_gradcheck.c - every op case (op_cases.h) on the CPU in f64: the tape's gradient of
 * L = sum(w * y) (w random) against central finite differences,
 *   dL/dx_j ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps),
 * judged like torch.autograd.gradcheck in double: |analytic - numeric| <= atol + rtol |numeric|
 * with eps 1e-6, atol 1e-5, rtol 1e-3 unless the case says otherwise.
 * Usage: test_gradcheck [case-name-substring]
 */
#include <stdlib.h>
#include <string.h>

#include "op_cases.h"
#include "rng.h"
#include "test_common.h"

static const char *filter;

static double loss_of(struct ti_ctx *ctx, const struct op_case *c, const struct oc_data *d,
                      const double *w, int *ok) {
    struct oc_result r;
    ti_status st = oc_run(ctx, c, d, TI_DTYPE_F64, NULL, &r);
    double s = 0;
    if (st != TI_OK) {
        *ok = 0;
        fprintf(stderr, "  %s: forward failed: %s\n", c->name, ctx->err.msg);
        ti_err_clear(&ctx->err);
    } else {
        for (long i = 0; i < r.out_numel; i++)
            s += w[i] * r.out[i];
    }
    oc_result_free(&r);
    return s;
}

static void check_case(struct ti_ctx *ctx, const struct op_case *c) {
    struct oc_data d;
    oc_data_random(&d, c, 1234);
    long nout = 0;
    if (oc_out_numel(c, &d, &nout) != TI_OK) {
        tc_failures++;
        fprintf(stderr, "  %s: forward failed\n", c->name);
        oc_data_free(&d);
        return;
    }
    double *w = malloc((size_t)(nout ? nout : 1) * sizeof *w);
    struct ti_rng r;
    ti_rng_seed(&r, 99);
    ti_rng_uniform_f64(&r, w, (size_t)nout, -1, 1);

    struct oc_result an;
    ti_status st = oc_run(ctx, c, &d, TI_DTYPE_F64, w, &an);
    CHECK_OK(st, &ctx->err);
    if (st != TI_OK) {
        ti_err_clear(&ctx->err);
        oc_result_free(&an);
        free(w);
        oc_data_free(&d);
        return;
    }
    double eps = c->gc_eps > 0 ? c->gc_eps : 1e-6;
    double atol = c->gc_atol > 0 ? c->gc_atol : 1e-5;
    double rtol = c->gc_rtol > 0 ? c->gc_rtol : 1e-3;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i].grad) continue;
        double *num = malloc((size_t)(d.numel[i] ? d.numel[i] : 1) * sizeof *num);
        int ok = 1;
        for (long j = 0; j < d.numel[i] && ok; j++) {
            double x0 = d.in[i][j];
            d.in[i][j] = x0 + eps;
            double lp = loss_of(ctx, c, &d, w, &ok);
            d.in[i][j] = x0 - eps;
            double lm = loss_of(ctx, c, &d, w, &ok);
            d.in[i][j] = x0;
            num[j] = (lp - lm) / (2 * eps);
        }
        CHECK(ok);
        if (ok &&
            !tc_check_close(an.grad[i], num, d.numel[i], atol, rtol, c->name, __FILE__, __LINE__))
            fprintf(stderr, "  (input %d of case %s)\n", i, c->name);
        free(num);
    }
    oc_result_free(&an);
    free(w);
    oc_data_free(&d);
}

TEST(gradcheck_all_cases) {
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (filter && !strstr(cases[i]->name, filter)) continue;
        int before = tc_failures;
        check_case(&ctx, cases[i]);
        printf("  %-28s %s\n", cases[i]->name, tc_failures == before ? "ok" : "FAIL");
        ran++;
    }
    CHECK(ran > 0);
    ti_ctx_free(&ctx);
}

/* Every op of ops.def (except front-end-only recomputation) must have a gradcheck case. */
TEST(every_op_has_a_case) {
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    for (int op = 0; op < TI_OP_COUNT; op++) {
        const char *name = ti_op_name((enum ti_op)op);
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = strcmp(cases[i]->op, name) == 0;
        if (!found) fprintf(stderr, "  op '%s' has no test case\n", name);
        CHECK(found);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    RUN(gradcheck_all_cases);
    if (!filter) RUN(every_op_has_a_case);
    return tc_finish();
}
