/*
 * cpu/misc.c - CPU kernels of the misc op family: UPSAMPLE (nearest), EMBEDDING (gather from a
 * frozen table and trainable rows), TIMESTEP (sinusoidal embedding) and MSE, forward and
 * backward. Compiled for f32 and f64 (cpu_common.h); contracts in ops.h. Every reduction runs
 * in a fixed order, independent of the thread count (deterministic results).
 * Not here: validation of shapes and dtypes (ops_misc.c does it once).
 */
#include "cpu_common.h"

#include <string.h> /* defines: memcpy */

/* ---- UPSAMPLE -----------------------------------------------------------------------------------
 * inp (B, C, H, W) -> out (B, C, fH, fW), out[y][x] = inp[y/f][x/f]; one (b, c) plane per task. */
ti_status CPU_FN(upsample_forward)(struct ti_kctx *k, const struct ti_upsample_args *a) {
    (void)k;
    const int64_t f = a->factor;
    const int64_t planes = a->inp.shape[0] * a->inp.shape[1];
    const int64_t H = a->inp.shape[2], W = a->inp.shape[3], Ho = H * f, Wo = W * f;
    const real *x = a->inp.data;
    real *o = a->out.data;
    int nt = planes * Ho * Wo >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t p = 0; p < planes; p++) {
        const real *xp = x + p * H * W;
        real *op = o + p * Ho * Wo;
        for (int64_t y = 0; y < Ho; y++) {
            const real *xr = xp + (y / f) * W;
            real *orow = op + y * Wo;
            for (int64_t xo = 0; xo < Wo; xo++)
                orow[xo] = xr[xo / f];
        }
    }
    return TI_OK;
}

/* dinp (B, C, H, W) += sum of each f x f block of dout (B, C, fH, fW), the block summed row by
 * row (the same order as the CUDA kernel). */
ti_status CPU_FN(upsample_backward)(struct ti_kctx *k, const struct ti_upsample_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    const int64_t f = a->factor;
    const int64_t planes = a->dinp.shape[0] * a->dinp.shape[1];
    const int64_t H = a->dinp.shape[2], W = a->dinp.shape[3], Ho = H * f, Wo = W * f;
    const real *dy = a->dout.data;
    real *dx = a->dinp.data;
    int nt = planes * Ho * Wo >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t p = 0; p < planes; p++) {
        const real *gp = dy + p * Ho * Wo;
        real *dp = dx + p * H * W;
        for (int64_t y = 0; y < H; y++)
            for (int64_t xi = 0; xi < W; xi++) {
                real s = R(0);
                for (int64_t u = 0; u < f; u++) {
                    const real *g = gp + (y * f + u) * Wo + xi * f;
                    for (int64_t v = 0; v < f; v++)
                        s += g[v];
                }
                dp[y * W + xi] += s;
            }
    }
    return TI_OK;
}

/* ---- EMBEDDING ----------------------------------------------------------------------------------
 * out (B, T, D)[p] = idx[p] >= 0 ? table (V, D)[idx[p]] : rows (K, D)[-1 - idx[p]].
 * Every index is validated before anything is written: an index outside [-K, V) is reported
 * with its position and value (never clamped, never read out of bounds). */
ti_status CPU_FN(embedding_forward)(struct ti_kctx *k, const struct ti_embedding_args *a) {
    const int64_t B = a->idx.shape[0], T = a->idx.shape[1], n = B * T;
    const int64_t V = a->table.shape[0], D = a->table.shape[1];
    const int64_t K = a->rows.data ? a->rows.shape[0] : 0;
    const int32_t *ix = a->idx.data;
    for (int64_t p = 0; p < n; p++) {
        int64_t v = ix[p];
        if (v >= V || v < -K) {
            if (K == 0 && v < 0)
                return ti_error(k->err, TI_ERR_INVALID,
                                "embedding: idx[%lld, %lld] = %lld selects trainable row %lld, "
                                "but no trainable rows were given",
                                (long long)(p / T), (long long)(p % T), (long long)v,
                                (long long)(-1 - v));
            return ti_error(k->err, TI_ERR_INVALID,
                            "embedding: idx[%lld, %lld] = %lld is out of range: expected 0..%lld "
                            "(table rows) or -1..-%lld (trainable rows)",
                            (long long)(p / T), (long long)(p % T), (long long)v,
                            (long long)(V - 1), (long long)K);
        }
    }
    const real *tab = a->table.data, *rows = a->rows.data;
    real *o = a->out.data;
    int nt = n * D >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t p = 0; p < n; p++) {
        int64_t v = ix[p];
        const real *src = v >= 0 ? tab + v * D : rows + (-1 - v) * D;
        memcpy(o + p * D, src, (size_t)D * sizeof(real));
    }
    return TI_OK;
}

/* drows (K, D)[k] += dout (B, T, D)[p] for every position p with idx[p] == -1-k, visiting the
 * positions in order (deterministic). Table indices (>= 0) get nothing: the table is frozen. */
ti_status CPU_FN(embedding_backward)(struct ti_kctx *k, const struct ti_embedding_args *a) {
    (void)k;
    if (!a->drows.data) return TI_OK;
    const int64_t n = a->idx.shape[0] * a->idx.shape[1];
    const int64_t K = a->drows.shape[0], D = a->drows.shape[1];
    const int32_t *ix = a->idx.data;
    const real *dy = a->dout.data;
    real *dr = a->drows.data;
    for (int64_t p = 0; p < n; p++) {
        int64_t r = -1 - (int64_t)ix[p];
        if (r < 0 || r >= K) continue; /* a table row (forward rejected anything else) */
        real *g = dr + r * D;
        const real *s = dy + p * D;
        for (int64_t d = 0; d < D; d++)
            g[d] += s[d];
    }
    return TI_OK;
}

/* ---- TIMESTEP -----------------------------------------------------------------------------------
 * freq_i = exp((-ln(max_period) * i) / half), i < half = dim / 2, evaluated in `real` in exactly
 * the reference's order (LDM openaimodel.timestep_embedding: the float32 product of the
 * rounded constant -ln(max_period) and i, then the division by half, then exp), so the f32
 * kernel reproduces the reference's float32 frequencies. arg = t * freq (in `real`). */
static inline real timestep_freq(real neg_log_period, int64_t i, int64_t half) {
    real e = neg_log_period * (real)i;
    e = e / (real)half;
    return EXP(e);
}

/* out (B, dim): [cos(arg) | sin(arg)] (cos_first) or [sin(arg) | cos(arg)]; odd dim: last col 0. */
ti_status CPU_FN(timestep_forward)(struct ti_kctx *k, const struct ti_timestep_args *a) {
    (void)k;
    const int64_t B = a->out.shape[0], dim = a->out.shape[1], half = dim / 2;
    const real nl = (real)(-log(a->max_period));
    const real *t = a->t.data;
    real *o = a->out.data;
    for (int64_t b = 0; b < B; b++) {
        real *row = o + b * dim;
        real *first = row, *second = row + half; /* cos_first: cos -> first */
        for (int64_t i = 0; i < half; i++) {
            real arg = t[b] * timestep_freq(nl, i, half);
            real c = COS(arg), s = SIN(arg);
            first[i] = a->cos_first ? c : s;
            second[i] = a->cos_first ? s : c;
        }
        if (dim % 2) row[dim - 1] = R(0);
    }
    return TI_OK;
}

/* dt (B) += sum_i f_i (-dout[b, cos col i] sin(t f_i) + dout[b, sin col i] cos(t f_i)),
 * summed over i in order in double. */
ti_status CPU_FN(timestep_backward)(struct ti_kctx *k, const struct ti_timestep_args *a) {
    (void)k;
    if (!a->dt.data) return TI_OK;
    const int64_t B = a->dout.shape[0], dim = a->dout.shape[1], half = dim / 2;
    const real nl = (real)(-log(a->max_period));
    const real *t = a->t.data, *dy = a->dout.data;
    real *dt = a->dt.data;
    for (int64_t b = 0; b < B; b++) {
        const real *g = dy + b * dim;
        const real *gc = a->cos_first ? g : g + half; /* gradient of the cos half */
        const real *gs = a->cos_first ? g + half : g; /* gradient of the sin half */
        double acc = 0;
        for (int64_t i = 0; i < half; i++) {
            real f = timestep_freq(nl, i, half);
            real arg = t[b] * f;
            double c = (double)COS(arg), s = (double)SIN(arg);
            acc += (double)f * ((double)gs[i] * c - (double)gc[i] * s);
        }
        dt[b] += (real)acc;
    }
    return TI_OK;
}

/* ---- MSE ----------------------------------------------------------------------------------------
 * out = scale * sum (a - b)^2 over contiguous a, b. Fixed chunks of MSE_CHUNK elements are
 * summed in double (in parallel), then the chunk sums in order: the result does not depend on
 * the thread count. */
#define MSE_CHUNK 4096

ti_status CPU_FN(mse_forward)(struct ti_kctx *k, const struct ti_mse_args *a) {
    const int64_t n = ti_tensor_numel(&a->a);
    const int64_t nchunks = (n + MSE_CHUNK - 1) / MSE_CHUNK;
    const real *x = a->a.data, *y = a->b.data;
    double total = 0;
    if (nchunks <= 1) {
        for (int64_t i = 0; i < n; i++) {
            double d = (double)x[i] - (double)y[i];
            total += d * d;
        }
    } else {
        double *part = cpu_scratch(k, (size_t)nchunks * sizeof(double));
        if (!part) return TI_ERR_NOMEM;
        int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t c = 0; c < nchunks; c++) {
            int64_t lo = c * MSE_CHUNK, hi = lo + MSE_CHUNK < n ? lo + MSE_CHUNK : n;
            double s = 0;
            for (int64_t i = lo; i < hi; i++) {
                double d = (double)x[i] - (double)y[i];
                s += d * d;
            }
            part[c] = s;
        }
        for (int64_t c = 0; c < nchunks; c++)
            total += part[c];
    }
    *(real *)a->out.data = (real)(a->scale * total);
    return TI_OK;
}

/* da += 2 scale dout (a - b); db -= 2 scale dout (a - b); dout is the scalar seed. */
ti_status CPU_FN(mse_backward)(struct ti_kctx *k, const struct ti_mse_args *a) {
    (void)k;
    real *da = a->da.data, *db = a->db.data;
    if (!da && !db) return TI_OK;
    const int64_t n = ti_tensor_numel(&a->a);
    const real g = (real)(2.0 * a->scale * (double)*(const real *)a->dout.data);
    const real *x = a->a.data, *y = a->b.data;
    int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < n; i++) {
        real d = g * (x[i] - y[i]);
        if (da) da[i] += d;
        if (db) db[i] -= d;
    }
    return TI_OK;
}
