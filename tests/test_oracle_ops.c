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
    snprintf(path, sizeof path, "%s/dout", c->name);
    if (h5u_read(f, path, &dout, NULL, NULL) != 0) ok = 0;
    snprintf(path, sizeof path, "%s/out", c->name);
    if (h5u_read(f, path, &out, NULL, NULL) != 0) ok = 0;
    CHECK(ok);
    const enum ti_dtype dts[2] = {TI_DTYPE_F64, TI_DTYPE_F32};
    for (int t = 0; ok && t < 2; t++) {
        double atol = t == 0 ? 1e-9 : (c->oracle_atol > 0 ? c->oracle_atol : 1e-5);
        double rtol = t == 0 ? 1e-7 : (c->oracle_rtol > 0 ? c->oracle_rtol : 1e-4);
        struct oc_result r;
        ti_status st = oc_run(ctx, c, &d, dts[t], dout, &r);
        CHECK_OK(st, &ctx->err);
        if (st == TI_OK) {
            if (!tc_check_close(r.out, out, r.out_numel, atol, rtol, c->name, __FILE__, __LINE__))
                fprintf(stderr, "  (output of %s in %s)\n", c->name, ti_dtype_name(dts[t]));
            for (int i = 0; i < c->n_in; i++) {
                if (!c->in[i].grad) continue;
                double *g = NULL;
                snprintf(path, sizeof path, "%s/grad%d", c->name, i);
                CHECK(h5u_read(f, path, &g, NULL, NULL) == 0);
                if (g && r.grad[i] &&
                    !tc_check_close(r.grad[i], g, d.numel[i], atol, rtol, c->name, __FILE__,
                                    __LINE__))
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

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    RUN(oracle_all_cases);
    return tc_finish();
}
