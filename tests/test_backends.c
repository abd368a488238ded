/*
 * test_backends.c - backend consistency: every op case (op_cases.h) runs forward and backward
 * on each CUDA device in f32, f16 and bf16 and is compared with the CPU (f64, on the same
 * dtype-rounded inputs) by normalised MSE, sum((x - ref)^2) / sum(ref^2), per output and per
 * input gradient. Tolerance: the case's nmse_tol (default 1e-7) for f32, x1e3 for f16 and
 * x1e4 for bf16. Exits 77 (ctest SKIP) when no GPU is present.
 * Usage: test_backends [case-name-substring]
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

static void check_device(int dev) {
    const struct ti_backend *gpu;
    struct ti_err err = {0};
    CHECK_OK(ti_backend_cuda(&gpu, dev, &err), &err);
    if (!gpu) return;
    struct ti_ctx cg, cc;
    CHECK_OK(ti_ctx_init(&cg, gpu, 0, 0), &cg.err);
    CHECK_OK(ti_ctx_init(&cc, ti_backend_cpu(), 0, 0), &cc.err);
    const enum ti_dtype dts[3] = {TI_DTYPE_F32, TI_DTYPE_F16, TI_DTYPE_BF16};
    const double scale[3] = {1, 1e3, 1e4};
    int n;
    const struct op_case *const *cases = oc_all_cases(&n);
    printf("%-28s %-5s %12s %12s  %s\n", "case", "dtype", "nmse(out)", "nmse(grad)", "result");
    for (int i = 0; i < n; i++) {
        const struct op_case *c = cases[i];
        if (filter && !strstr(c->name, filter)) continue;
        for (int t = 0; t < 3; t++) {
            struct oc_data d;
            oc_data_random(&d, c, 4321);
            round_inputs(&d, c, dts[t]);
            long nout = 0;
            if (oc_out_numel(c, &d, &nout) != TI_OK) {
                oc_data_free(&d);
                continue;
            }
            double *w = malloc((size_t)(nout ? nout : 1) * sizeof *w);
            struct ti_rng r;
            ti_rng_seed(&r, 7);
            ti_rng_uniform_f64(&r, w, (size_t)nout, -1, 1);
            round_array(w, nout, dts[t]);
            struct oc_result ref, got;
            ti_status sr = oc_run(&cc, c, &d, TI_DTYPE_F64, w, &ref);
            ti_status sg = oc_run(&cg, c, &d, dts[t], w, &got);
            if (sg == TI_ERR_UNSUPPORTED || sg == TI_ERR_DTYPE) {
                printf("%-28s %-5s %12s %12s  SKIP (%s)\n", c->name, ti_dtype_name(dts[t]), "-",
                       "-", cg.err.msg);
                ti_err_clear(&cg.err);
            } else {
                CHECK_OK(sr, &cc.err);
                CHECK_OK(sg, &cg.err);
                if (sr == TI_OK && sg == TI_OK) {
                    double tol = (c->nmse_tol > 0 ? c->nmse_tol : 1e-7) * scale[t];
                    double eo = nmse(got.out, ref.out, ref.out_numel), eg = 0;
                    for (int j = 0; j < c->n_in; j++)
                        if (ref.grad[j] && got.grad[j]) {
                            double e = nmse(got.grad[j], ref.grad[j], d.numel[j]);
                            if (e > eg) eg = e;
                        }
                    int ok = eo <= tol && eg <= tol;
                    CHECK(ok);
                    printf("%-28s %-5s %12.3g %12.3g  %s\n", c->name, ti_dtype_name(dts[t]), eo, eg,
                           ok ? "ok" : "FAIL");
                }
                ti_err_clear(&cc.err);
                ti_err_clear(&cg.err);
            }
            oc_result_free(&ref);
            oc_result_free(&got);
            free(w);
            oc_data_free(&d);
        }
    }
    ti_ctx_free(&cg);
    ti_ctx_free(&cc);
}

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    int ndev = ti_cuda_device_count();
    if (ndev == 0) {
        printf("SKIP: no CUDA device (or ti built without CUDA)\n");
        return TC_SKIP;
    }
    for (int dev = 0; dev < ndev; dev++)
        check_device(dev);
    return tc_finish();
}
