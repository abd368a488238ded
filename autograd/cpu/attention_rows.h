/*
 * attention_rows.h - the row loops of the CPU attention kernels (max, exp + sum, exp, exp +
 * softmax backward), included by cpu/attention.c once per instruction-set variant with
 *   ROWS_NAME(f)  the variant's function name for f,
 *   ROWS_ATTR     function attributes (e.g. __attribute__((target("avx2,fma")))),
 *   ROWS_EXP(x)   the exp to use (ti_fast_expf, ti_fast_expf_fma, or exp for f64).
 * Plain loops over contiguous rows, written so GCC vectorises them (8 interleaved lanes for the
 * reductions, whose lane results are then combined in a fixed order: deterministic).
 */

/* max of s[0..n) (n >= 1) */
ROWS_ATTR static real ROWS_NAME(row_max)(const real *s, int64_t n) {
    real acc[8];
    for (int l = 0; l < 8; l++)
        acc[l] = s[0];
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] = s[j + l] > acc[l] ? s[j + l] : acc[l];
    for (; j < n; j++)
        acc[0] = s[j] > acc[0] ? s[j] : acc[0];
    real m = acc[0];
    for (int l = 1; l < 8; l++)
        m = acc[l] > m ? acc[l] : m;
    return m;
}

/* s[j] = exp(s[j] - m) for j < n in place; returns their sum */
ROWS_ATTR static real ROWS_NAME(row_exp_sum)(real *s, int64_t n, real m) {
    for (int64_t j = 0; j < n; j++)
        s[j] = ROWS_EXP(s[j] - m);
    real acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += s[j + l];
    for (; j < n; j++)
        acc[j & 7] += s[j];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* s[j] = exp(s[j] - m) for j < n in place (backward: m = lse, so this is P) */
ROWS_ATTR static void ROWS_NAME(row_exp)(real *s, int64_t n, real m) {
    for (int64_t j = 0; j < n; j++)
        s[j] = ROWS_EXP(s[j] - m);
}

/* backward, one pass: s[j] = p = exp(s[j] - m) (P, with m = lse) and dp[j] = p (dp[j] - d)
 * (dS from dP = dO V^T and d = D_i) for j < n */
ROWS_ATTR static void ROWS_NAME(row_exp_dsoftmax)(real *s, real *dp, int64_t n, real m, real d) {
    for (int64_t j = 0; j < n; j++) {
        real p = ROWS_EXP(s[j] - m);
        s[j] = p;
        dp[j] = p * (dp[j] - d);
    }
}
