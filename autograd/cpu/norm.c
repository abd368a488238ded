/*
 * cpu/norm.c - CPU kernels for GROUPNORM (with the fused SiLU) and LAYERNORM, forward and
 * backward. Compiled for f32 and f64 (see cpu_common.h); statistics (mean, rstd) are stored in
 * `real` (= the stat dtype on the CPU) and accumulated in double.
 *
 * Layouts (ops.h): groupnorm inp/out/dout/dinp (B, C, S), weight/bias (C), mean/rstd (B, G);
 * layernorm inp/out/dout/dinp (M, D), weight/bias (D), mean/rstd (M). All contiguous.
 *
 * Statistics. A normalisation set (a (b, g) group: C/G channels x S positions, contiguous; or a
 * row of D) is cut into fixed chunks of NORM_CHUNK elements. Each chunk gets its mean and sum of
 * squared deviations by two passes in double (the second pass reads from L1), and the chunks
 * are merged in order with Chan et al.'s pairwise formula. This is as robust as a global
 * two-pass, costs one pass over memory, and the chunking does not depend on the thread count,
 * so the results are bitwise the same whichever loop runs them: one thread per set when there
 * are enough sets, else the chunks of all sets in parallel.
 *
 * Backward (derivation in ops_norm.c): per set, g = dL/d(pre-activation) (dy, or dy times the
 * SiLU derivative recomputed from x, mean, rstd, w, b; kept in per-thread scratch between the
 * two passes over a set), sums A = sum(g w) and Bx = sum(g w xh), then
 * dx = rstd (g w - A/n - xh Bx/n). The weight/bias gradients are reduced in a fixed order
 * (per-(b, c) partial sums summed over b; per-32-row-block partials summed over blocks), never
 * with atomics, so they are deterministic and independent of the thread count.
 *
 * Speed: the per-row loops are `omp simd` loops compiled per ISA level (TI_VCLONES) with a
 * vectorisable exp for the SiLU (vmath.h); a set of SD's GN32 (<= 160 KiB of f32 at 64x64)
 * stays in L2 between the statistics and the output pass.
 */
#include "cpu_common.h"
#include "vmath.h" /* defines: VEXP (vectorisable exp for f32), TI_VCLONES, TI_VINLINE */

#define NORM_CHUNK   1024 /* elements per statistics chunk (4 KiB of f32: stays in L1) */
#define LN_ROW_BLOCK 32   /* rows per layernorm weight-gradient partial */

/* ---- statistics ------------------------------------------------------------------------------ */

/* count, mean and sum of squared deviations of a set of values */
struct moments {
    double n, mean, m2;
};

static inline struct moments merge_moments(struct moments a, struct moments b) {
    if (a.n == 0) return b;
    if (b.n == 0) return a;
    struct moments r;
    double d = b.mean - a.mean;
    r.n = a.n + b.n;
    r.mean = a.mean + d * (b.n / r.n);
    r.m2 = a.m2 + b.m2 + d * d * (a.n * b.n / r.n);
    return r;
}

/* two passes over one chunk x[0..len), len >= 1 */
TI_VCLONES static struct moments chunk_moments(const real *x, int64_t len) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < len; i++)
        s += (double)x[i];
    double mu = s / (double)len, q = 0;
#pragma omp simd reduction(+ : q)
    for (int64_t i = 0; i < len; i++) {
        double d = (double)x[i] - mu;
        q += d * d;
    }
    struct moments m = {(double)len, mu, q};
    return m;
}

static inline int64_t nchunks_of(int64_t n) {
    return (n + NORM_CHUNK - 1) / NORM_CHUNK;
}

/* moments of chunk k of a set of n elements starting at x */
static inline struct moments set_chunk(const real *x, int64_t n, int64_t k) {
    int64_t lo = k * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
    return chunk_moments(x + lo, hi - lo);
}

static inline void store_stats(struct moments m, double eps, real *mean, real *rstd) {
    double var = m.n > 0 ? m.m2 / m.n : 0;
    *mean = (real)m.mean;
    *rstd = (real)(1.0 / sqrt(var + eps));
}

/* Statistics of R contiguous sets of n elements (set r at x + r*n) into mean[r], rstd[r],
 * when there are fewer sets than threads: all chunks in parallel, then an ordered merge. */
static ti_status set_stats_chunked(struct ti_kctx *k, const real *x, int64_t R, int64_t n,
                                   double eps, real *mean, real *rstd) {
    int64_t nck = nchunks_of(n), total = R * nck;
    struct moments *part = cpu_scratch(k, (size_t)total * sizeof *part);
    if (!part) return TI_ERR_NOMEM;
    int nt = R * n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t i = 0; i < total; i++)
        part[i] = set_chunk(x + (i / nck) * n, n, i % nck);
    for (int64_t r = 0; r < R; r++) {
        struct moments m = {0, 0, 0};
        for (int64_t c = 0; c < nck; c++)
            m = merge_moments(m, part[r * nck + c]);
        store_stats(m, eps, &mean[r], &rstd[r]);
    }
    return TI_OK;
}

/* Statistics of one set, chunk by chunk (the same arithmetic as set_stats_chunked). */
static void set_stats_one(const real *x, int64_t n, double eps, real *mean, real *rstd) {
    struct moments m = {0, 0, 0};
    int64_t nck = nchunks_of(n);
    for (int64_t c = 0; c < nck; c++)
        m = merge_moments(m, set_chunk(x, n, c));
    store_stats(m, eps, mean, rstd);
}

static TI_VINLINE real sigmoid_r(real v) {
    return R(1) / (R(1) + VEXP(-v));
}

/* ---- GROUPNORM forward ----------------------------------------------------------------------- */

/* out of one (b, c) channel row (S positions) from its set's statistics */
TI_VCLONES static void gn_apply_row(const struct ti_groupnorm_args *a, int64_t row) {
    int64_t C = a->inp.shape[1], S = a->inp.shape[2], G = a->groups, Cg = C / G;
    int64_t c = row % C, set = (row / C) * G + c / Cg;
    const real *x = (const real *)a->inp.data + row * S;
    real *y = (real *)a->out.data + row * S;
    const real *w = a->weight.data, *bb = a->bias.data;
    const real mu = ((const real *)a->mean.data)[set], rs = ((const real *)a->rstd.data)[set];
    const real sc = w ? rs * w[c] : rs, sh = bb ? bb[c] : R(0);
    if (a->silu) {
        TI_SIMD_MATH
        for (int64_t s = 0; s < S; s++) {
            real p = (x[s] - mu) * sc + sh;
            y[s] = p * sigmoid_r(p);
        }
    } else {
#pragma omp simd
        for (int64_t s = 0; s < S; s++)
            y[s] = (x[s] - mu) * sc + sh;
    }
}

ti_status CPU_FN(groupnorm_forward)(struct ti_kctx *k, const struct ti_groupnorm_args *a) {
    int64_t B = a->inp.shape[0], C = a->inp.shape[1], S = a->inp.shape[2], G = a->groups;
    int64_t Cg = C / G, nsets = B * G, n = Cg * S;
    if (nsets == 0) return TI_OK;
    const real *x = a->inp.data;
    real *mean = a->mean.data, *rstd = a->rstd.data;
    /* the loop shape depends on the thread count only, never the results; small problems take
     * the same loops on one thread (so the tests run both shapes on any multi-core machine) */
    int nthreads = ti_cpu_threads();
    int nt = nsets * n >= TI_CPU_PAR_MIN ? nthreads : 1;
    if (nsets >= nthreads) {
        /* one (b, g) set per iteration: statistics, then the output while the set is cached
         * (a set of SD's GN32 at 64x64 x 320 channels is 160 KiB of f32) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t set = 0; set < nsets; set++) {
            set_stats_one(x + set * n, n, a->eps, &mean[set], &rstd[set]);
            int64_t row0 = (set / G) * C + (set % G) * Cg;
            for (int64_t r = row0; r < row0 + Cg; r++)
                gn_apply_row(a, r);
        }
        return TI_OK;
    }
    /* few big sets: chunks in parallel for the statistics, then channel rows in parallel */
    TI_TRY(set_stats_chunked(k, x, nsets, n, a->eps, mean, rstd));
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t r = 0; r < B * C; r++)
        gn_apply_row(a, r);
    return TI_OK;
}

/* ---- GROUPNORM backward ---------------------------------------------------------------------- */

/* Per-(b, c) row sums over the S positions: sg = sum g, sgx = sum g * xh, where g is dy or
 * (fused SiLU) dy * silu'(p), p = xh * w + bias. need_x = 0 (only dbias, no SiLU): sg only.
 * With SiLU and gout != NULL the row's g is also stored in gout[0..S) for gn_row_dx. */
TI_VCLONES static void gn_row_sums(const struct ti_groupnorm_args *a, int64_t row, int need_x,
                                   double *sg, double *sgx, real *gout) {
    int64_t C = a->dout.shape[1], S = a->dout.shape[2], G = a->groups, Cg = C / G;
    int64_t c = row % C, set = (row / C) * G + c / Cg;
    const real *dy = (const real *)a->dout.data + row * S;
    double s1 = 0, s2 = 0;
    if (!need_x) {
#pragma omp simd reduction(+ : s1)
        for (int64_t s = 0; s < S; s++)
            s1 += (double)dy[s];
        *sg = s1;
        *sgx = 0;
        return;
    }
    const real *x = (const real *)a->inp.data + row * S;
    const real *w = a->weight.data, *bb = a->bias.data;
    const real mu = ((const real *)a->mean.data)[set], rs = ((const real *)a->rstd.data)[set];
    if (a->silu) {
        const real wc = w ? w[c] : R(1), bc = bb ? bb[c] : R(0);
        if (gout) {
            TI_SIMD_MATH_RED(+ : s1, s2)
            for (int64_t s = 0; s < S; s++) {
                real xh = (x[s] - mu) * rs, p = xh * wc + bc, sp = sigmoid_r(p);
                real g = dy[s] * sp * (R(1) + p * (R(1) - sp));
                gout[s] = g;
                s1 += (double)g;
                s2 += (double)g * (double)xh;
            }
        } else {
            TI_SIMD_MATH_RED(+ : s1, s2)
            for (int64_t s = 0; s < S; s++) {
                real xh = (x[s] - mu) * rs, p = xh * wc + bc, sp = sigmoid_r(p);
                real g = dy[s] * sp * (R(1) + p * (R(1) - sp));
                s1 += (double)g;
                s2 += (double)g * (double)xh;
            }
        }
    } else {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t s = 0; s < S; s++) {
            real xh = (x[s] - mu) * rs;
            s1 += (double)dy[s];
            s2 += (double)dy[s] * (double)xh;
        }
    }
    *sg = s1;
    *sgx = s2;
}

/* dinp of one (b, c) row given its set's coefficients c1 = A/n, c2 = Bx/n; with SiLU, gin (if not
 * NULL) holds the row's g from gn_row_sums (bitwise what recomputing it gives, one exp less) */
TI_VCLONES static void gn_row_dx(const struct ti_groupnorm_args *a, int64_t row, double c1,
                                 double c2, const real *gin) {
    int64_t C = a->dout.shape[1], S = a->dout.shape[2], G = a->groups, Cg = C / G;
    int64_t c = row % C, set = (row / C) * G + c / Cg;
    const real *dy = (const real *)a->dout.data + row * S;
    const real *x = (const real *)a->inp.data + row * S;
    real *dx = (real *)a->dinp.data + row * S;
    const real *w = a->weight.data, *bb = a->bias.data;
    const real mu = ((const real *)a->mean.data)[set], rs = ((const real *)a->rstd.data)[set];
    const real wc = w ? w[c] : R(1), bc = bb ? bb[c] : R(0);
    const real k1 = (real)c1, k2 = (real)c2, rw = rs * wc;
    if (a->silu && gin) {
#pragma omp simd
        for (int64_t s = 0; s < S; s++) {
            real xh = (x[s] - mu) * rs;
            dx[s] += rw * gin[s] - rs * (k1 + xh * k2);
        }
    } else if (a->silu) {
        TI_SIMD_MATH
        for (int64_t s = 0; s < S; s++) {
            real xh = (x[s] - mu) * rs, p = xh * wc + bc, sp = sigmoid_r(p);
            real g = dy[s] * sp * (R(1) + p * (R(1) - sp));
            dx[s] += rw * g - rs * (k1 + xh * k2);
        }
    } else {
#pragma omp simd
        for (int64_t s = 0; s < S; s++) {
            real xh = (x[s] - mu) * rs;
            dx[s] += rw * dy[s] - rs * (k1 + xh * k2);
        }
    }
}

/* c1 = mean over the set of g w, c2 = mean of g w xh, from the rows' sums (in channel order) */
static void gn_set_coefs(const struct ti_groupnorm_args *a, int64_t set, const double *sg,
                         const double *sgx, double *c1, double *c2) {
    int64_t C = a->dout.shape[1], S = a->dout.shape[2], G = a->groups, Cg = C / G;
    int64_t b = set / G, c0 = (set % G) * Cg;
    const real *w = a->weight.data;
    double A = 0, Bx = 0;
    for (int64_t c = c0; c < c0 + Cg; c++) {
        double wc = w ? (double)w[c] : 1.0;
        A += wc * sg[b * C + c];
        Bx += wc * sgx[b * C + c];
    }
    double n = (double)(Cg * S);
    *c1 = A / n;
    *c2 = Bx / n;
}

ti_status CPU_FN(groupnorm_backward)(struct ti_kctx *k, const struct ti_groupnorm_args *a) {
    int64_t B = a->dout.shape[0], C = a->dout.shape[1], S = a->dout.shape[2], G = a->groups;
    int64_t Cg = C / G, nsets = B * G, nrows = B * C;
    int has_dx = a->dinp.data != NULL, has_dw = a->dweight.data != NULL,
        has_db = a->dbias.data != NULL;
    if (!has_dx && !has_dw && !has_db) return TI_OK;
    int need_x = has_dx || has_dw || a->silu;
    double *sg = cpu_scratch(k, (size_t)(nrows > 0 ? nrows : 1) * 2 * sizeof(double));
    if (!sg) return TI_ERR_NOMEM;
    double *sgx = sg + nrows;
    int nthreads = ti_cpu_threads();
    int nt = nrows * S >= TI_CPU_PAR_MIN ? nthreads : 1;
    if (nsets >= nthreads) {
        /* one (b, g) set per iteration: sums, coefficients and dinp while the set is cached;
         * with SiLU each thread keeps the set's g (C/G x S reals) for the dinp pass */
        real *gbuf = NULL;
        if (a->silu && has_dx) {
            gbuf = cpu_scratch(k, (size_t)nt * (size_t)(Cg * S) * sizeof(real));
            if (!gbuf) return TI_ERR_NOMEM;
        }
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t set = 0; set < nsets; set++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            real *g = gbuf ? gbuf + (int64_t)tid * Cg * S : NULL;
            int64_t row0 = (set / G) * C + (set % G) * Cg;
            for (int64_t r = row0; r < row0 + Cg; r++)
                gn_row_sums(a, r, need_x, &sg[r], &sgx[r], g ? g + (r - row0) * S : NULL);
            if (has_dx) {
                double c1, c2;
                gn_set_coefs(a, set, sg, sgx, &c1, &c2);
                for (int64_t r = row0; r < row0 + Cg; r++)
                    gn_row_dx(a, r, c1, c2, g ? g + (r - row0) * S : NULL);
            }
        }
    } else {
        /* few sets: rows in parallel for the sums, then for dinp (g recomputed) */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t r = 0; r < nrows; r++)
            gn_row_sums(a, r, need_x, &sg[r], &sgx[r], NULL);
        if (has_dx) {
            double *coef = cpu_scratch(k, (size_t)nsets * 2 * sizeof(double));
            if (!coef) return TI_ERR_NOMEM;
            for (int64_t set = 0; set < nsets; set++)
                gn_set_coefs(a, set, sg, sgx, &coef[2 * set], &coef[2 * set + 1]);
#pragma omp parallel for schedule(static) num_threads(nt)
            for (int64_t r = 0; r < nrows; r++) {
                int64_t set = (r / C) * G + (r % C) / Cg;
                gn_row_dx(a, r, coef[2 * set], coef[2 * set + 1], NULL);
            }
        }
    }
    /* dweight[c] += sum_b sum g xh, dbias[c] += sum_b sum g (b in order: deterministic) */
    real *dw = a->dweight.data, *db = a->dbias.data;
    for (int64_t c = 0; c < C; c++) {
        double s1 = 0, s2 = 0;
        for (int64_t b = 0; b < B; b++) {
            s1 += sg[b * C + c];
            s2 += sgx[b * C + c];
        }
        if (db) db[c] += (real)s1;
        if (dw) dw[c] += (real)s2;
    }
    return TI_OK;
}

/* ---- LAYERNORM forward ----------------------------------------------------------------------- */

TI_VCLONES static void ln_apply_row(const struct ti_layernorm_args *a, int64_t m) {
    int64_t D = a->inp.shape[1];
    const real *x = (const real *)a->inp.data + m * D;
    real *y = (real *)a->out.data + m * D;
    const real *w = a->weight.data, *bb = a->bias.data;
    const real mu = ((const real *)a->mean.data)[m], rs = ((const real *)a->rstd.data)[m];
    if (w && bb) {
#pragma omp simd
        for (int64_t d = 0; d < D; d++)
            y[d] = (x[d] - mu) * rs * w[d] + bb[d];
    } else if (w) {
#pragma omp simd
        for (int64_t d = 0; d < D; d++)
            y[d] = (x[d] - mu) * rs * w[d];
    } else if (bb) {
#pragma omp simd
        for (int64_t d = 0; d < D; d++)
            y[d] = (x[d] - mu) * rs + bb[d];
    } else {
#pragma omp simd
        for (int64_t d = 0; d < D; d++)
            y[d] = (x[d] - mu) * rs;
    }
}

ti_status CPU_FN(layernorm_forward)(struct ti_kctx *k, const struct ti_layernorm_args *a) {
    int64_t M = a->inp.shape[0], D = a->inp.shape[1];
    if (M == 0) return TI_OK;
    const real *x = a->inp.data;
    real *mean = a->mean.data, *rstd = a->rstd.data;
    int nthreads = ti_cpu_threads();
    int nt = M * D >= TI_CPU_PAR_MIN ? nthreads : 1;
    if (M >= nthreads) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t m = 0; m < M; m++) {
            set_stats_one(x + m * D, D, a->eps, &mean[m], &rstd[m]);
            ln_apply_row(a, m);
        }
        return TI_OK;
    }
    TI_TRY(set_stats_chunked(k, x, M, D, a->eps, mean, rstd));
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t m = 0; m < M; m++)
        ln_apply_row(a, m);
    return TI_OK;
}

/* ---- LAYERNORM backward ---------------------------------------------------------------------- */

/* Row m: dinp (if wanted) and the row's contributions to the block partials pw (sum g xh) and
 * pb (sum g) (if not NULL). x is absent when only dbias is wanted. */
TI_VCLONES static void ln_bwd_row(const struct ti_layernorm_args *a, int64_t m, double *pw,
                                  double *pb) {
    int64_t D = a->dout.shape[1];
    const real *dyr = (const real *)a->dout.data + m * D, *w = a->weight.data;
    if (!a->inp.data) { /* dbias only */
#pragma omp simd
        for (int64_t d = 0; d < D; d++)
            pb[d] += (double)dyr[d];
        return;
    }
    const real *xr = (const real *)a->inp.data + m * D;
    const real mu = ((const real *)a->mean.data)[m], rs = ((const real *)a->rstd.data)[m];
    if (pw) {
#pragma omp simd
        for (int64_t d = 0; d < D; d++) {
            real xh = (xr[d] - mu) * rs;
            pw[d] += (double)dyr[d] * (double)xh;
            pb[d] += (double)dyr[d];
        }
    }
    if (a->dinp.data) {
        double A = 0, Bx = 0;
#pragma omp simd reduction(+ : A, Bx)
        for (int64_t d = 0; d < D; d++) {
            real xh = (xr[d] - mu) * rs, gw = w ? dyr[d] * w[d] : dyr[d];
            A += (double)gw;
            Bx += (double)gw * (double)xh;
        }
        const real k1 = (real)(A / (double)D), k2 = (real)(Bx / (double)D);
        real *dxr = (real *)a->dinp.data + m * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) {
            real xh = (xr[d] - mu) * rs, gw = w ? dyr[d] * w[d] : dyr[d];
            dxr[d] += rs * (gw - k1 - xh * k2);
        }
    }
}

ti_status CPU_FN(layernorm_backward)(struct ti_kctx *k, const struct ti_layernorm_args *a) {
    int64_t M = a->dout.shape[0], D = a->dout.shape[1];
    real *dx = a->dinp.data, *dw = a->dweight.data, *db = a->dbias.data;
    if ((!dx && !dw && !db) || M == 0) return TI_OK;
    /* inp, mean, rstd are saved only when dinp or dweight is wanted; ln_bwd_row relies on it */
    if (!a->inp.data && (dx || dw))
        return ti_error(k->err, TI_ERR_INTERNAL, "layernorm backward: dinp/dweight without inp");
    int64_t nblk = (M + LN_ROW_BLOCK - 1) / LN_ROW_BLOCK;
    int partials = dw || db;
    /* per row block: [0, D) sum g xh, [D, 2D) sum g (double, row order within the block) */
    double *part = NULL;
    if (partials) {
        part = cpu_scratch(k, (size_t)nblk * 2 * (size_t)D * sizeof(double));
        if (!part) return TI_ERR_NOMEM;
    }
    int nt = M * D >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t blk = 0; blk < nblk; blk++) {
        double *pw = partials ? part + blk * 2 * D : NULL, *pb = pw ? pw + D : NULL;
        if (partials)
            for (int64_t d = 0; d < 2 * D; d++)
                pw[d] = 0;
        int64_t m1 = (blk + 1) * LN_ROW_BLOCK < M ? (blk + 1) * LN_ROW_BLOCK : M;
        for (int64_t m = blk * LN_ROW_BLOCK; m < m1; m++)
            ln_bwd_row(a, m, pw, pb);
    }
    if (partials) {
        int ntd = nblk * D >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(ntd)
        for (int64_t d = 0; d < D; d++) {
            double s1 = 0, s2 = 0;
            for (int64_t blk = 0; blk < nblk; blk++) {
                s1 += part[blk * 2 * D + d];
                s2 += part[blk * 2 * D + D + d];
            }
            if (dw) dw[d] += (real)s1;
            if (db) db[d] += (real)s2;
        }
    }
    return TI_OK;
}
