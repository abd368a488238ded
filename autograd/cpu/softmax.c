/*
 * cpu/softmax.c - CPU kernels for SOFTMAX (softmax(scale * x) over the last dim) and GEGLU
 * (a * gelu_erf(g), [a | g] the halves of the last dim), forward and backward.
 * Compiled for f32 and f64 (see cpu_common.h). Layouts (ops.h), all contiguous:
 *   softmax inp/out/dout/dinp (M, N);  geglu inp/dinp (M, 2F), out/dout (M, F).
 * Rows are independent and run in parallel (one row function per row, compiled per ISA level,
 * see vmath.h); row sums accumulate in double.
 * Not here: the attention op's fused softmax (cpu/attention.c).
 */
#include "cpu_common.h"
#include "vmath.h" /* defines: VEXP, VPHI (vectorisable exp and normal CDF for f32), TI_VCLONES */

/* ---- SOFTMAX --------------------------------------------------------------------------------- */

/* y = exp(s x - max(s x)) / sum(...): subtracting the row maximum keeps every exponent <= 0, so
 * large logits cannot overflow (the result is mathematically unchanged). */
TI_VCLONES static void softmax_fwd_row(const real *x, real *y, int64_t N, real sc) {
    real mx = sc * x[0];
    TI_SIMD_MAX(mx)
    for (int64_t n = 1; n < N; n++) {
        real v = sc * x[n];
        mx = v > mx ? v : mx;
    }
    double sum = 0;
    TI_SIMD_MATH_RED(+ : sum)
    for (int64_t n = 0; n < N; n++) {
        real e = VEXP(sc * x[n] - mx);
        y[n] = e;
        sum += (double)e;
    }
    const real inv = (real)(1.0 / sum); /* sum >= 1: the maximum contributes exp(0) */
#pragma omp simd
    for (int64_t n = 0; n < N; n++)
        y[n] *= inv;
}

ti_status CPU_FN(softmax_forward)(struct ti_kctx *k, const struct ti_softmax_args *a) {
    (void)k;
    int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    const real *x = a->inp.data;
    real *y = a->out.data;
    int nt = M * N >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++)
        softmax_fwd_row(x + m * N, y + m * N, N, (real)a->scale);
    return TI_OK;
}

/* dx_j += s * y_j * (dy_j - sum_i dy_i y_i) */
TI_VCLONES static void softmax_bwd_row(const real *y, const real *dy, real *dx, int64_t N,
                                       real sc) {
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t n = 0; n < N; n++)
        dot += (double)dy[n] * (double)y[n];
    const real d = (real)dot;
#pragma omp simd
    for (int64_t n = 0; n < N; n++)
        dx[n] += sc * y[n] * (dy[n] - d);
}

ti_status CPU_FN(softmax_backward)(struct ti_kctx *k, const struct ti_softmax_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    int64_t M = a->out.shape[0], N = a->out.shape[1];
    if (M == 0 || N == 0) return TI_OK;
    const real *y = a->out.data, *dy = a->dout.data;
    real *dx = a->dinp.data;
    int nt = M * N >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++)
        softmax_bwd_row(y + m * N, dy + m * N, dx + m * N, N, (real)a->scale);
    return TI_OK;
}

/* ---- GEGLU ----------------------------------------------------------------------------------- */
#define INV_SQRT2PI R(0.39894228040143267794)

/* one row: x (2F) = [a | g], y (F) = a * g * Phi(g) (= a * gelu(g)) */
TI_VCLONES static void geglu_fwd_row(const real *x, real *y, int64_t F) {
    const real *xa = x, *xg = x + F;
    TI_SIMD_MATH
    for (int64_t f = 0; f < F; f++)
        y[f] = xa[f] * xg[f] * VPHI(xg[f]);
}

ti_status CPU_FN(geglu_forward)(struct ti_kctx *k, const struct ti_geglu_args *a) {
    (void)k;
    int64_t M = a->out.shape[0], F = a->out.shape[1];
    const real *x = a->inp.data;
    real *y = a->out.data;
    int nt = M * F >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++)
        geglu_fwd_row(x + m * 2 * F, y + m * F, F);
    return TI_OK;
}

/* gelu(g) = g Phi(g), Phi the normal CDF, phi its density:
 * da += dy * gelu(g);  dg += dy * a * (Phi(g) + g phi(g)) */
TI_VCLONES static void geglu_bwd_row(const real *x, const real *dy, real *dx, int64_t F) {
    const real *xa = x, *xg = x + F;
    real *da = dx, *dg = dx + F;
    TI_SIMD_MATH
    for (int64_t f = 0; f < F; f++) {
        real g = xg[f];
        real cdf = VPHI(g);
        real pdf = INV_SQRT2PI * VEXP(R(-0.5) * g * g);
        da[f] += dy[f] * g * cdf;
        dg[f] += dy[f] * xa[f] * (cdf + g * pdf);
    }
}

ti_status CPU_FN(geglu_backward)(struct ti_kctx *k, const struct ti_geglu_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    int64_t M = a->dout.shape[0], F = a->dout.shape[1];
    const real *x = a->inp.data, *dy = a->dout.data;
    real *dx = a->dinp.data;
    int nt = M * F >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++)
        geglu_bwd_row(x + m * 2 * F, dy + m * F, dx + m * 2 * F, F);
    return TI_OK;
}
