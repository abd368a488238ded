/*
 * attention_f32_simd.h - the f32 attention kernel of cpu/attention_f32.c for one instruction
 * set, included once per variant (AVX-512 and AVX2 + FMA) with
 *   AF(f)        the variant's name for f
 *   AF_TARGET    its function attribute (target("..."))
 *   AF_VW        floats per vector (16, 8);  AF_MR  rows of a GEMM tile (8, 4)
 *   AF_V         the vector type; AF_M the lane-mask type
 *   AF_ZERO(), AF_SET1(x), AF_LOAD(p), AF_STORE(p, v), AF_FMA(a, b, c) (a b + c), AF_MUL,
 *   AF_ADD, AF_SUB, AF_MAX, AF_MASK(j, lim) (lanes j + l < lim), AF_LOADZ(m, p) (masked lanes
 *   0, no access to them), AF_LOADF(m, p, f) (masked lanes f), AF_SELZ(m, v) (masked lanes 0),
 *   AF_HSUM(v), AF_HMAX(v), AF_EXP(v)
 * Everything here is static; the file comment of attention_f32.c gives the algorithm. The end
 * of this file undefines those parameters, so the next variant defines them afresh.
 */

#define AF_INLINE AF_TARGET static inline __attribute__((always_inline))

/* ---- GEMM ------------------------------------------------------------------------------------ */
/* One tile: C[i][VW v + l] for i < MR, v < NV:
 *   C = alpha * sum_{p < kk} A[i][p] B[p][VW v + l] (+ C when acc)
 * A rows lda floats (broadcast one element at a time), B rows ldb, C rows ldc (full vectors). */
AF_INLINE void AF(tile)(const int MR, const int NV, int64_t kk, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float *C, int64_t ldc, float alpha, int acc) {
    AF_V c[AF_MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            c[i][v] = AF_ZERO();
    for (int64_t p = 0; p < kk; p++) {
        AF_V b[3];
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            b[v] = AF_LOAD(B + p * ldb + AF_VW * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            AF_V a = AF_SET1(A[i * lda + p]);
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++)
                c[i][v] = AF_FMA(a, b[v], c[i][v]);
        }
    }
    const AF_V al = AF_SET1(alpha);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) {
            float *cp = C + i * ldc + AF_VW * v;
            AF_V r = AF_MUL(c[i][v], al);
            if (acc) r = AF_ADD(r, AF_LOAD(cp));
            AF_STORE(cp, r);
        }
}

typedef void (*AF(kfn))(int64_t kk, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc, float alpha, int acc);

#define AF_KERNEL(MR, NV)                                                                          \
    AF_TARGET static void AF(k##MR##x##NV)(int64_t kk, const float *A, int64_t lda,                \
                                           const float *B, int64_t ldb, float *C, int64_t ldc,     \
                                           float alpha, int acc) {                                 \
        AF(tile)(MR, NV, kk, A, lda, B, ldb, C, ldc, alpha, acc);                                  \
    }
#if AF_MR == 8
AF_KERNEL(8, 3)
AF_KERNEL(8, 2)
AF_KERNEL(8, 1)
#else
AF_KERNEL(4, 3)
AF_KERNEL(4, 2)
AF_KERNEL(4, 1)
#endif
AF_KERNEL(1, 3)
AF_KERNEL(1, 2)
AF_KERNEL(1, 1)
#undef AF_KERNEL

/* C (M x VW nv, ldc) = alpha A (M x kk, lda) B (kk x VW nv, ldb) (+ C). Column blocks of 3
 * vectors outside (the B block stays in L1), row tiles inside. */
AF_TARGET static void AF(gemm)(int64_t M, int64_t nv, int64_t kk, const float *A, int64_t lda,
                               const float *B, int64_t ldb, float *C, int64_t ldc, float alpha,
                               int acc) {
#if AF_MR == 8
    static const AF(kfn) kt[4] = {NULL, AF(k8x1), AF(k8x2), AF(k8x3)};
#else
    static const AF(kfn) kt[4] = {NULL, AF(k4x1), AF(k4x2), AF(k4x3)};
#endif
    static const AF(kfn) k1[4] = {NULL, AF(k1x1), AF(k1x2), AF(k1x3)};
    for (int64_t v0 = 0; v0 < nv; v0 += 3) {
        int w = nv - v0 < 3 ? (int)(nv - v0) : 3;
        const float *Bv = B + AF_VW * v0;
        float *Cv = C + AF_VW * v0;
        int64_t i = 0;
        for (; i + AF_MR <= M; i += AF_MR)
            kt[w](kk, A + i * lda, lda, Bv, ldb, Cv + i * ldc, ldc, alpha, acc);
        for (; i < M; i++)
            k1[w](kk, A + i * lda, lda, Bv, ldb, Cv + i * ldc, ldc, alpha, acc);
    }
}

/* ---- forward --------------------------------------------------------------------------------- */
/* Rows of S (m x n, ldK) in place: e = exp(S - mx) (0 past the causal limit and up to n rounded
 * to VW), lse, 1/l. */
AF_TARGET static void AF(fwd_rows)(const struct af_geom *g, float *S, int64_t m, int64_t n,
                                   int64_t i0, float *L, float *rinv) {
    const int64_t nv = af_up(n, AF_VW);
    for (int64_t r = 0; r < m; r++) {
        float *s = S + r * g->ldK;
        int64_t nr = g->causal ? i0 + r + 1 : n;
        AF_V mx = AF_SET1(-INFINITY);
        for (int64_t j = 0; j < nr; j += AF_VW)
            mx = AF_MAX(mx, AF_LOADF(AF_MASK(j, nr), s + j, -INFINITY));
        const float m1 = AF_HMAX(mx);
        const AF_V mv = AF_SET1(m1);
        AF_V sum = AF_ZERO();
        for (int64_t j = 0; j < nv; j += AF_VW) {
            AF_M k = AF_MASK(j, nr);
            AF_V e = AF_SELZ(k, AF_EXP(AF_SUB(AF_LOADZ(k, s + j), mv)));
            AF_STORE(s + j, e);
            sum = AF_ADD(sum, e);
        }
        float l = AF_HSUM(sum); /* >= 1: the max term is exp(0) */
        L[r * g->ls2] = m1 + logf(l);
        rinv[r] = 1.0f / l;
    }
}

/* One (b, h, block [i0, i0+m)). Kt: K^T of the head (D x ldK); Vn: V (Tk x Dvp). */
AF_TARGET static void AF(fwd_block)(const struct af_geom *g, int64_t b, int64_t h, int64_t i0,
                                    int64_t m, const float *Kt, const float *Vn, float *S, float *C,
                                    float *rinv) {
    const float *Q = g->q + b * g->qs0 + i0 * g->qs1 + h * g->D;
    float *O = g->o + b * g->os0 + i0 * g->os1 + h * g->Dv;
    float *L = g->lse + b * g->ls0 + h * g->ls1 + i0 * g->ls2;
    int64_t n = g->causal ? i0 + m : g->Tk;
    AF(gemm)(m, af_up(n, AF_VW) / AF_VW, g->D, Q, g->qs1, Kt, g->ldK, S, g->ldK, g->scale, 0);
    AF(fwd_rows)(g, S, m, n, i0, L, rinv);
    const int64_t Dvp = af_up(g->Dv, AF_VW);
    AF(gemm)(m, Dvp / AF_VW, n, S, g->ldK, Vn, Dvp, C, Dvp, 1.0f, 0);
    for (int64_t r = 0; r < m; r++) {
        const float *c = C + r * Dvp;
        float *o = O + r * g->os1;
        for (int64_t d = 0; d < g->Dv; d++)
            o[d] = c[d] * rinv[r];
    }
}

static ti_status AF(forward)(struct ti_kctx *k, const struct af_geom *gp) {
    const struct af_geom g = *gp;
    const int64_t BH = g.B * g.NH, nitems = BH * g.nqb, Dvp = af_up(g.Dv, AF_VW);
    const int64_t kt_n = g.D * g.ldK, head_n = af_up(kt_n + g.Tk * Dvp, 16);
    float *packs = cpu_scratch(k, (size_t)(BH * head_n) * sizeof(float));
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, nitems);
    const int64_t per = af_up(g.bq * g.ldK + g.bq * Dvp + g.bq, 16);
    float *ws = cpu_scratch(k, (size_t)(nt * per) * sizeof(float));
    if (!packs || !ws)
        return ti_error(k->err, TI_ERR_NOMEM, "attention f32: no scratch for the workspace");
    int pnt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, BH);
#pragma omp parallel for num_threads(pnt) schedule(static)
    for (int64_t bh = 0; bh < BH; bh++) {
        int64_t b = bh / g.NH, h = bh % g.NH;
        float *Kt = packs + bh * head_n;
        af_transpose(g.k + b * g.ks0 + h * g.D, g.ks1, g.Tk, g.D, Kt, g.ldK);
        af_copy_pad(g.v + b * g.vs0 + h * g.Dv, g.vs1, g.Tk, g.Dv, Kt + kt_n, Dvp);
    }
#pragma omp parallel num_threads(nt)
    {
        float *S = ws + (int64_t)ti_thread_id() * per;
        float *C = S + g.bq * g.ldK, *rinv = C + g.bq * Dvp;
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < nitems; it++) {
            int64_t blk = it % g.nqb, bh = it / g.nqb;
            int64_t i0 = blk * g.bq;
            int64_t m = g.Tq - i0 < g.bq ? g.Tq - i0 : g.bq;
            const float *Kt = packs + bh * head_n;
            AF(fwd_block)(&g, bh / g.NH, bh % g.NH, i0, m, Kt, Kt + kt_n, S, C, rinv);
        }
    }
    return TI_OK;
}

/* ---- backward -------------------------------------------------------------------------------- */
/* The exp pass of a (query block, key panel): P = exp(S - lse) in S and, with dP, dS = P (dP -
 * D_i) in dP; 0 for keys a row does not see (past the panel or the causal limit), up to np
 * rounded to VW. */
AF_TARGET static void AF(bwd_rows)(const struct af_geom *g, float *S, float *dP, const float *Di,
                                   int64_t m, int64_t i0, int64_t j0, int64_t np, const float *L) {
    const int64_t npv = af_up(np, AF_VW);
    for (int64_t r = 0; r < m; r++) {
        int64_t vis = np; /* keys of the panel row r sees */
        if (g->causal) {
            vis = i0 + r + 1 - j0;
            vis = vis < 0 ? 0 : (vis > np ? np : vis);
        }
        const AF_V lv = AF_SET1(L[r * g->ls2]);
        float *s = S + r * AF_LDP;
        if (dP) {
            const AF_V dv = AF_SET1(Di[r]);
            float *q = dP + r * AF_LDP;
            for (int64_t j = 0; j < npv; j += AF_VW) {
                AF_M k = AF_MASK(j, vis);
                AF_V p = AF_SELZ(k, AF_EXP(AF_SUB(AF_LOADZ(k, s + j), lv)));
                AF_STORE(s + j, p);
                AF_STORE(q + j, AF_MUL(p, AF_SUB(AF_LOADZ(k, q + j), dv)));
            }
        } else {
            for (int64_t j = 0; j < npv; j += AF_VW) {
                AF_M k = AF_MASK(j, vis);
                AF_STORE(s + j, AF_SELZ(k, AF_EXP(AF_SUB(AF_LOADZ(k, s + j), lv))));
            }
        }
    }
}

static ti_status AF(backward)(struct ti_kctx *k, const struct af_geom *gp,
                              const struct af_bwd_dst *t) {
    const struct af_geom g = *gp;
    float *dq = t->dq, *dk = t->dk, *dv = t->dv;
    const int64_t BH = g.B * g.NH, ldK = g.ldK, bq = g.bq, Tq = g.Tq, ldq = af_ld(Tq);
    const int64_t Dp = af_up(g.D, AF_VW);
    const int need_ds = dq || dk;
    int nt = ti_attn_threads(g.B, g.NH, g.Tq, g.Tk, g.D + g.Dv, BH);
    /* per thread, in floats, each piece rounded to 16 */
    const int64_t sz[] = {
        g.D * ldK,    g.Dv * ldK,
        g.Tk * Dp,                   /* Kt, Vt, Kn */
        g.D * ldq,    g.Dv * ldq,    /* Qt, dOt */
        Tq * Dp,      Tq,            /* dQ, Di */
        g.D * AF_LDP, g.Dv * AF_LDP, /* dKt, dVt */
        bq * AF_LDP,  bq * AF_LDP,   /* S (then P), dP (then dS) */
    };
    enum { npieces = (int)(sizeof sz / sizeof *sz) };
    int64_t per = 0;
    for (int i = 0; i < npieces; i++)
        per += af_up(sz[i], 16);
    float *ws = cpu_scratch(k, (size_t)(nt * per) * sizeof(float));
    if (!ws) return ti_error(k->err, TI_ERR_NOMEM, "attention f32: no scratch for the workspace");
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; bh++) {
        float *pc[npieces], *base = ws + (int64_t)ti_thread_id() * per;
        for (int i = 0; i < npieces; i++) {
            pc[i] = base;
            base += af_up(sz[i], 16);
        }
        float *Kt = pc[0], *Vt = pc[1], *Kn = pc[2], *Qt = pc[3], *dOt = pc[4], *dQ = pc[5];
        float *Di = pc[6], *dKt = pc[7], *dVt = pc[8], *S = pc[9], *dP = need_ds ? pc[10] : NULL;
        int64_t b = bh / g.NH, h = bh % g.NH;
        const float *K = g.k + b * g.ks0 + h * g.D, *V = g.v + b * g.vs0 + h * g.Dv;
        const float *Q = g.q + b * g.qs0 + h * g.D, *O = g.o + b * g.os0 + h * g.Dv;
        const float *dO = g.dout + b * g.dos0 + h * g.Dv;
        const float *Lh = g.lse + b * g.ls0 + h * g.ls1;
        af_transpose(K, g.ks1, g.Tk, g.D, Kt, ldK);
        if (need_ds) {
            af_transpose(V, g.vs1, g.Tk, g.Dv, Vt, ldK);
            for (int64_t r = 0; r < Tq; r++) {
                const float *x = dO + r * g.dos1, *y = O + r * g.os1;
                float sum = 0;
                for (int64_t d = 0; d < g.Dv; d++)
                    sum += x[d] * y[d];
                Di[r] = sum;
            }
        }
        if (dq) {
            af_copy_pad(K, g.ks1, g.Tk, g.D, Kn, Dp);
            memset(dQ, 0, (size_t)(Tq * Dp) * sizeof(float));
        }
        if (dk) af_transpose(Q, g.qs1, Tq, g.D, Qt, ldq);
        if (dv) af_transpose(dO, g.dos1, Tq, g.Dv, dOt, ldq);
        for (int64_t j0 = 0; j0 < g.Tk; j0 += AF_NK) {
            const int64_t np = g.Tk - j0 < AF_NK ? g.Tk - j0 : AF_NK;
            const int64_t nv = af_up(np, AF_VW) / AF_VW;
            if (dk) memset(dKt, 0, (size_t)(g.D * AF_LDP) * sizeof(float));
            if (dv) memset(dVt, 0, (size_t)(g.Dv * AF_LDP) * sizeof(float));
            /* causal: queries before j0 see none of the panel's keys */
            const int64_t first = g.causal ? j0 / bq : 0;
            for (int64_t blk = first; blk < g.nqb; blk++) {
                const int64_t i0 = blk * bq, m = Tq - i0 < bq ? Tq - i0 : bq;
                AF(gemm)(m, nv, g.D, Q + i0 * g.qs1, g.qs1, Kt + j0, ldK, S, AF_LDP, g.scale, 0);
                const float *dOi = dO + i0 * g.dos1;
                if (need_ds) AF(gemm)(m, nv, g.Dv, dOi, g.dos1, Vt + j0, ldK, dP, AF_LDP, 1.0f, 0);
                AF(bwd_rows)(&g, S, dP, Di + i0, m, i0, j0, np, Lh + i0 * g.ls2);
                /* dV^T (Dv x np) += dO^T P;  dK^T (D x np) += Q^T dS (scale added later) */
                if (dv) AF(gemm)(g.Dv, nv, m, dOt + i0, ldq, S, AF_LDP, dVt, AF_LDP, 1.0f, 1);
                if (dk) AF(gemm)(g.D, nv, m, Qt + i0, ldq, dP, AF_LDP, dKt, AF_LDP, 1.0f, 1);
                /* dQ (m x D) += dS K over the panel's keys (dS 0 past the visible keys) */
                float *dQi = dQ + i0 * Dp;
                if (dq) AF(gemm)(m, Dp / AF_VW, np, dP, AF_LDP, Kn + j0 * Dp, Dp, dQi, Dp, 1.0f, 1);
            }
            for (int64_t j = 0; j < np; j++) {
                if (dk) {
                    float *r = dk + b * t->dks0 + (j0 + j) * t->dks1 + h * g.D;
                    for (int64_t d = 0; d < g.D; d++)
                        r[d] += g.scale * dKt[d * AF_LDP + j];
                }
                if (dv) {
                    float *r = dv + b * t->dvs0 + (j0 + j) * t->dvs1 + h * g.Dv;
                    for (int64_t d = 0; d < g.Dv; d++)
                        r[d] += dVt[d * AF_LDP + j];
                }
            }
        }
        if (dq)
            for (int64_t r = 0; r < Tq; r++) {
                float *o = dq + b * t->dqs0 + r * t->dqs1 + h * g.D;
                const float *c = dQ + r * Dp;
                for (int64_t d = 0; d < g.D; d++)
                    o[d] += g.scale * c[d];
            }
    }
    return TI_OK;
}

#undef AF_INLINE

/* the template's parameters, undefined for the next instantiation */
#undef AF
#undef AF_TARGET
#undef AF_VW
#undef AF_MR
#undef AF_V
#undef AF_M
#undef AF_ZERO
#undef AF_SET1
#undef AF_LOAD
#undef AF_STORE
#undef AF_FMA
#undef AF_MUL
#undef AF_ADD
#undef AF_SUB
#undef AF_MAX
#undef AF_MASK
#undef AF_LOADZ
#undef AF_LOADF
#undef AF_SELZ
#undef AF_HSUM
#undef AF_HMAX
#undef AF_EXP
