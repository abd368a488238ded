/*
 * cases_misc.c - op test cases of the misc family (see op_cases.h): nearest upsample, embedding
 * with trainable placeholder rows, sinusoidal timestep embedding, MSE loss. Mirrored exactly
 * (names, params, inputs) by scripts/oracle/ops_misc.py.
 */
#include <stdlib.h>

#include "op_cases.h"

/* nearest upsample by p[0] */
static ti_status f_upsample(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                            const double *p) {
    return ti_upsample_nearest(ctx, out, &in[0], (int)p[0]);
}

/* in = {table (V, D) frozen, rows (K, D) trainable, idx (B, T) random in [-K, V-1]}.
 * p[0] = number of placeholder occurrences to stamp (0, 1 or 2), p[1] = vectors per
 * placeholder (n <= K), then (row, col) of each occurrence in p[2..5]: the n consecutive
 * positions from (row, col) get indices -1, -2, ..., -n, the token sequence a multi-vector
 * placeholder expands into (rows 0..n-1 in order). The random indices around them keep mixing
 * table rows and single trainable rows (repeats included). */
static ti_status f_embedding(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                             const double *p) {
    const struct ti_tensor *idx = &in[2];
    const int nocc = (int)p[0], nvec = (int)p[1];
    if (nocc == 0) return ti_embedding(ctx, out, &in[0], &in[1], idx);
    /* stamp the placeholder pattern into a host copy of idx and upload it */
    const int64_t B = idx->shape[0], T = idx->shape[1];
    int32_t *h = malloc((size_t)(B * T) * sizeof *h);
    if (!h) return ti_error(&ctx->err, TI_ERR_NOMEM, "f_embedding: out of host memory");
    ti_status st = ti_ctx_download(ctx, h, (size_t)(B * T) * sizeof *h, idx);
    for (int o = 0; st == TI_OK && o < nocc; o++) {
        const int64_t r = (int64_t)p[2 + 2 * o], c = (int64_t)p[3 + 2 * o];
        for (int j = 0; j < nvec; j++)
            h[r * T + c + j] = -1 - j;
    }
    struct ti_tensor stamped = ti_tensor_none();
    if (st == TI_OK) st = ti_ctx_upload(ctx, &stamped, h, TI_DTYPE_I32, 2, idx->shape);
    free(h);
    if (st == TI_OK) st = ti_embedding(ctx, out, &in[0], &in[1], &stamped);
    ti_tensor_release(&stamped);
    return st;
}

/* t (B) -> (B, p[0]) with max_period p[1], cos_first p[2] */
static ti_status f_timestep(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                            const double *p) {
    return ti_timestep_embedding(ctx, out, &in[0], (int)p[0], p[1], (int)p[2]);
}

static ti_status f_mse(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                       const double *p) {
    (void)p;
    return ti_mse_loss(ctx, out, &in[0], &in[1]);
}

/* Embedding inputs: table (V = 11, D = 13) frozen (grad 0), rows (K, 13) trainable, idx (B, T)
 * integers in [-K, 10]. */
#define EMB_IN(K, B, T)                                                                            \
    3, {                                                                                           \
        {2, {11, 13}, 0, -1, 1, 0}, {2, {K, 13}, 1, -1, 1, 0}, {                                   \
            2, {B, T}, 0, -(K), 10, 1                                                              \
        }                                                                                          \
    }

/* Timestep cases. t in [0, 999] as in SD training (t ~ U{0..999}), max_period 10000.
 * Gradcheck (f64): d out / dt = -+f_i sin/cos(t f_i) with f_i <= 1 (f_0 = 1 is the highest
 * frequency for any dim), so the central difference's truncation error is ~ f^3 eps^2 / 6
 * (1.7e-11 at eps 1e-5) while its rounding error grows like ulp(t) / eps (t + eps is rounded
 * at ulp(999) = 1.1e-13, and so is t * f): eps = 1e-5 keeps both far below the default
 * atol 1e-5 (measured max |analytic - numeric|: 2.5e-9).
 * Oracle in f32: t, freq and t * freq are rounded to float32 as the reference does
 * (ulp(999) = 6.1e-5 in f32), so cos/sin at arguments near 999 differ from torch's float64
 * values by up to ~1e-4 in the worst case (measured 2.9e-5 on outputs, 9.4e-6 on dL/dt):
 * f32 oracle atol 3e-4. f64 agrees with the fixture within the f64 default (1e-9). */
#define TS_IN                                                                                      \
    1, {                                                                                           \
        { 1, {5}, 1, 0, 999, 0 }                                                                   \
    }
#define TS_TOL 0, 0, 1e-5, 0, 3e-4, 1e-4

const struct op_case oc_cases_misc[] = {
    {"upsample_x2_odd", "upsample", f_upsample, {2}, 1, {{4, {2, 3, 5, 7}, 1, -2, 2, 0}}},
    {"upsample_x3_odd", "upsample", f_upsample, {3}, 1, {{4, {1, 5, 3, 7}, 1, -2, 2, 0}}},
    /* random mix of table rows and 3 trainable rows (repeats likely: ~5 of 21 positions) */
    {"embedding_mixed", "embedding", f_embedding, {0}, EMB_IN(3, 3, 7)},
    /* a 3-vector placeholder stamped twice (rows 0, 1, 2 each used twice, plus random picks) */
    {"embedding_multivector", "embedding", f_embedding, {2, 3, 0, 1, 1, 6}, EMB_IN(3, 2, 11)},
    /* a single-vector placeholder (K = 1) stamped twice in one sequence, plus random -1s */
    {"embedding_single", "embedding", f_embedding, {2, 1, 1, 0, 1, 5}, EMB_IN(1, 2, 9)},
    {"timestep_d8_cos", "timestep", f_timestep, {8, 10000, 1}, TS_IN, TS_TOL},
    {"timestep_d8_sin", "timestep", f_timestep, {8, 10000, 0}, TS_IN, TS_TOL},
    {"timestep_d9_cos", "timestep", f_timestep, {9, 10000, 1}, TS_IN, TS_TOL},
    {"timestep_d9_sin", "timestep", f_timestep, {9, 10000, 0}, TS_IN, TS_TOL},
    {"mse", "mse", f_mse, {0}, 2, {{4, {2, 4, 5, 7}, 1, -2, 2, 0}, {4, {2, 4, 5, 7}, 1, -2, 2, 0}}},
    {NULL},
};
