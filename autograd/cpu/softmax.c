/*
 * cpu/softmax.c - CPU kernels for SOFTMAX (softmax(scale * x) over the last dim) and GEGLU
 * (a * gelu_erf(g), [a | g] the halves of the last dim), forward and backward.
 * Compiled for f32 and f64 (see cpu_common.h). Layouts (ops.h), all contiguous:
 *   softmax inp/out/dout/dinp (M, N);  geglu inp/dinp (M, 2F), out/dout (M, F).
 * Rows are independent and run in parallel; row sums accumulate in double in index order.
 * Not here: the attention op's fused softmax (cpu/attention.c).
 */
#include "cpu_common.h"

/* ---- SOFTMAX -------------------------------------------------------------------------------------- */

/* y = exp(s x - max(s x)) / sum(...): subtracting the row maximum keeps every exponent <= 0, so
 * large logits cannot overflow (the result is mathematically unchanged). */
ti_status CPU_FN(softmax_forward)(struct ti_kctx *k, const struct ti_softmax_args *a) {
    (void)k;
    int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    const real sc = (real)a->scale;
    int nt = M * N >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++) {
        const real *x = (const real *)a->inp.data + m * N;
        real *y = (real *)a->out.data + m * N;
        real mx = sc * x[0];
        for (int64_t n = 1; n < N; n++) {
            real v = sc * x[n];
            mx = v > mx ? v : mx;
        }
        double sum = 0;
        for (int64_t n = 0; n < N; n++) {
            real e = EXP(sc * x[n] - mx);
            y[n] = e;
            sum += (double)e;
        }
        const real inv = (real)(1.0 / sum); /* sum >= 1: the maximum contributes exp(0) */
#pragma omp simd
        for (int64_t n = 0; n < N; n++) y[n] *= inv;
    }
    return TI_OK;
}

/* dx_j += s * y_j * (dy_j - sum_i dy_i y_i) */
ti_status CPU_FN(softmax_backward)(struct ti_kctx *k, const struct ti_softmax_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    const real sc = (real)a->scale;
    int nt = M * N >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++) {
        const real *y = (const real *)a->out.data + m * N, *dy = (const real *)a->dout.data + m * N;
        real *dx = (real *)a->dinp.data + m * N;
        double dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t n = 0; n < N; n++) dot += (double)dy[n] * (double)y[n];
        const real d = (real)dot;
#pragma omp simd
        for (int64_t n = 0; n < N; n++) dx[n] += sc * y[n] * (dy[n] - d);
    }
    return TI_OK;
}

/* ---- GEGLU ---------------------------------------------------------------------------------------- */
#define INV_SQRT2 R(0.70710678118654752440)
#define INV_SQRT2PI R(0.39894228040143267794)

ti_status CPU_FN(geglu_forward)(struct ti_kctx *k, const struct ti_geglu_args *a) {
    (void)k;
    int64_t M = a->out.shape[0], F = a->out.shape[1];
    int nt = M * F >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++) {
        const real *xa = (const real *)a->inp.data + m * 2 * F, *xg = xa + F;
        real *y = (real *)a->out.data + m * F;
        for (int64_t f = 0; f < F; f++)
            y[f] = xa[f] * (R(0.5) * xg[f] * (R(1) + ERF(xg[f] * INV_SQRT2)));
    }
    return TI_OK;
}

/* da += dy * gelu(g);  dg += dy * a * (Phi(g) + g phi(g)) */
ti_status CPU_FN(geglu_backward)(struct ti_kctx *k, const struct ti_geglu_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    int64_t M = a->dout.shape[0], F = a->dout.shape[1];
    int nt = M * F >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++) {
        const real *xa = (const real *)a->inp.data + m * 2 * F, *xg = xa + F;
        const real *dy = (const real *)a->dout.data + m * F;
        real *da = (real *)a->dinp.data + m * 2 * F, *dg = da + F;
        for (int64_t f = 0; f < F; f++) {
            real g = xg[f];
            real cdf = R(0.5) * (R(1) + ERF(g * INV_SQRT2));
            real pdf = INV_SQRT2PI * EXP(R(-0.5) * g * g);
            da[f] += dy[f] * g * cdf;
            dg[f] += dy[f] * xa[f] * (cdf + g * pdf);
        }
    }
    return TI_OK;
}
