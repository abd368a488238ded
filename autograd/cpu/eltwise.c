/*
 * eltwise.c - CPU kernels for ADD, MUL, SUM (forward only: their gradients are composed by the
 * front end) and UNARY (SiLU, GELU, quick-GELU, exp, clamp; forward and backward).
 * Compiled for f32 and f64 (see cpu_common.h). Element-wise loops are parallel over
 * contiguous index ranges; reductions accumulate in double in a fixed order (deterministic).
 */
#include "cpu_common.h"

#include <string.h> /* defines: memset */

/* ---- ADD: out = alpha*a + beta*b (b optional), any strides ----------------------------------- */
ti_status CPU_FN(add_forward)(struct ti_kctx *k, const struct ti_add_args *a) {
    (void)k;
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    const real alpha = (real)a->alpha, beta = (real)a->beta;
    real *o = a->out.data;
    const real *x = a->a.data, *y = a->b.data;
    int fast = ti_tensor_is_contiguous(&a->out) && ti_tensor_is_contiguous(&a->a) &&
               (!y || ti_tensor_is_contiguous(&a->b));
    int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
    if (fast) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = y ? alpha * x[i] + beta * y[i] : alpha * x[i];
        return TI_OK;
    }
    const int64_t *strides[3] = {a->out.stride, a->a.stride, y ? a->b.stride : a->a.stride};
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        ti_split_range(n, nt, t, &lo, &hi);
        struct ti_iter it;
        ti_iter_init(&it, a->out.ndim, a->out.shape, 3, strides);
        ti_iter_seek(&it, lo);
        for (int64_t i = lo; i < hi; i++, ti_iter_next(&it)) {
            real v = alpha * x[it.off[1]];
            if (y) v += beta * y[it.off[2]];
            o[it.off[0]] = v;
        }
    }
    return TI_OK;
}

/* ---- MUL: out = alpha*a*b, any strides ------------------------------------------------------- */
ti_status CPU_FN(mul_forward)(struct ti_kctx *k, const struct ti_mul_args *a) {
    (void)k;
    int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    const real alpha = (real)a->alpha;
    real *o = a->out.data;
    const real *x = a->a.data, *y = a->b.data;
    const int64_t *strides[3] = {a->out.stride, a->a.stride, a->b.stride};
    int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        ti_split_range(n, nt, t, &lo, &hi);
        struct ti_iter it;
        ti_iter_init(&it, a->out.ndim, a->out.shape, 3, strides);
        ti_iter_seek(&it, lo);
        for (int64_t i = lo; i < hi; i++, ti_iter_next(&it))
            o[it.off[0]] = alpha * x[it.off[1]] * y[it.off[2]];
    }
    return TI_OK;
}

/* ---- SUM: keepdim reduction ---------------------------------------------------------------------
 * Kept dims K (out.shape == inp.shape) and reduced dims R (out.shape == 1). Each output element
 * sums its R sub-space in row-major order in double. When there are fewer outputs than
 * threads, the R range is split into fixed per-thread parts summed in order. */
ti_status CPU_FN(sum_forward)(struct ti_kctx *k, const struct ti_sum_args *a) {
    int nd = a->inp.ndim;
    int64_t kshape[TI_MAX_DIMS], kstride_in[TI_MAX_DIMS], kstride_out[TI_MAX_DIMS];
    int64_t rshape[TI_MAX_DIMS], rstride[TI_MAX_DIMS];
    int nk = 0, nr = 0;
    int64_t nout = 1, nred = 1;
    for (int d = 0; d < nd; d++) {
        if (a->out.shape[d] == 1 && a->inp.shape[d] != 1) {
            rshape[nr] = a->inp.shape[d];
            rstride[nr] = a->inp.stride[d];
            nred *= rshape[nr];
            nr++;
        } else {
            kshape[nk] = a->inp.shape[d];
            kstride_in[nk] = a->inp.stride[d];
            kstride_out[nk] = a->out.stride[d];
            nout *= kshape[nk];
            nk++;
        }
    }
    real *o = a->out.data;
    const real *x = a->inp.data;
    if (nout == 0) return TI_OK;
    int nthreads = ti_cpu_threads();
    if (nout >= nthreads || nout * nred < TI_CPU_PAR_MIN) {
        int nt = nout * nred >= TI_CPU_PAR_MIN ? nthreads : 1;
        const int64_t *ks[2] = {kstride_out, kstride_in};
        const int64_t *rs[1] = {rstride};
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            int64_t lo, hi;
            ti_split_range(nout, nt, t, &lo, &hi);
            struct ti_iter it, jt;
            ti_iter_init(&it, nk, kshape, 2, ks);
            ti_iter_seek(&it, lo);
            for (int64_t i = lo; i < hi; i++, ti_iter_next(&it)) {
                double s = 0;
                ti_iter_init(&jt, nr, rshape, 1, rs);
                const real *base = x + it.off[1];
                for (int64_t j = 0; j < nred; j++, ti_iter_next(&jt))
                    s += (double)base[jt.off[0]];
                o[it.off[0]] = (real)(a->scale * s);
            }
        }
        return TI_OK;
    }
    /* few outputs, long reductions: split each reduction into nthreads fixed parts */
    double *part = cpu_scratch(k, (size_t)nthreads * sizeof(double));
    if (!part) return TI_ERR_NOMEM;
    const int64_t *ks[2] = {kstride_out, kstride_in};
    const int64_t *rs[1] = {rstride};
    struct ti_iter it;
    ti_iter_init(&it, nk, kshape, 2, ks);
    for (int64_t i = 0; i < nout; i++, ti_iter_next(&it)) {
        const real *base = x + it.off[1];
#pragma omp parallel for schedule(static) num_threads(nthreads)
        for (int t = 0; t < nthreads; t++) {
            int64_t lo, hi;
            ti_split_range(nred, nthreads, t, &lo, &hi);
            struct ti_iter jt;
            ti_iter_init(&jt, nr, rshape, 1, rs);
            ti_iter_seek(&jt, lo);
            double s = 0;
            for (int64_t j = lo; j < hi; j++, ti_iter_next(&jt))
                s += (double)base[jt.off[0]];
            part[t] = s;
        }
        double s = 0;
        for (int t = 0; t < nthreads; t++)
            s += part[t];
        o[it.off[0]] = (real)(a->scale * s);
    }
    return TI_OK;
}

/* ---- UNARY ----------------------------------------------------------------------------------- */
#define INV_SQRT2   R(0.70710678118654752440)
#define INV_SQRT2PI R(0.39894228040143267794)

static inline real sigmoid_r(real x) {
    return R(1) / (R(1) + EXP(-x));
}

ti_status CPU_FN(unary_forward)(struct ti_kctx *k, const struct ti_unary_args *a) {
    (void)k;
    int64_t n = ti_tensor_numel(&a->out);
    real *o = a->out.data;
    const real *x = a->inp.data;
    const real p0 = (real)a->p0, p1 = (real)a->p1;
    int nt = n >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
    switch (a->kind) {
    case TI_UNARY_SILU:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] * sigmoid_r(x[i]);
        break;
    case TI_UNARY_GELU:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = R(0.5) * x[i] * (R(1) + ERF(x[i] * INV_SQRT2));
        break;
    case TI_UNARY_QUICK_GELU:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] * sigmoid_r(R(1.702) * x[i]);
        break;
    case TI_UNARY_EXP:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = EXP(p0 * x[i]);
        break;
    case TI_UNARY_CLAMP:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] < p0 ? p0 : (x[i] > p1 ? p1 : x[i]);
        break;
    default: return ti_error(k->err, TI_ERR_INVALID, "unary: unknown kind %d", a->kind);
    }
    return TI_OK;
}

ti_status CPU_FN(unary_backward)(struct ti_kctx *k, const struct ti_unary_args *a) {
    if (!a->dinp.data) return TI_OK;
    int64_t n = ti_tensor_numel(&a->dinp);
    real *dx = a->dinp.data;
    const real *dy = a->dout.data, *x = a->inp.data, *y = a->out.data;
    const real p0 = (real)a->p0, p1 = (real)a->p1;
    int nt = n >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
    switch (a->kind) {
    case TI_UNARY_SILU:
        /* d/dx x s(x) = s(x) (1 + x (1 - s(x))) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            real s = sigmoid_r(x[i]);
            dx[i] += dy[i] * s * (R(1) + x[i] * (R(1) - s));
        }
        break;
    case TI_UNARY_GELU:
        /* d/dx 0.5 x (1 + erf(x/sqrt2)) = Phi(x) + x phi(x) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            real cdf = R(0.5) * (R(1) + ERF(x[i] * INV_SQRT2));
            real pdf = INV_SQRT2PI * EXP(R(-0.5) * x[i] * x[i]);
            dx[i] += dy[i] * (cdf + x[i] * pdf);
        }
        break;
    case TI_UNARY_QUICK_GELU:
        /* d/dx x s(1.702 x) = s + 1.702 x s (1 - s) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++) {
            real s = sigmoid_r(R(1.702) * x[i]);
            dx[i] += dy[i] * (s + R(1.702) * x[i] * s * (R(1) - s));
        }
        break;
    case TI_UNARY_EXP:
        /* d/dx exp(p0 x) = p0 y */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            dx[i] += dy[i] * p0 * y[i];
        break;
    case TI_UNARY_CLAMP:
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            if (x[i] >= p0 && x[i] <= p1) dx[i] += dy[i];
        break;
    default: return ti_error(k->err, TI_ERR_INVALID, "unary: unknown kind %d", a->kind);
    }
    return TI_OK;
}
