/*
 * cpu/conv2d.c - CPU kernels of CONV2D (NCHW cross-correlation, one stride for both axes,
 * asymmetric zero padding, no dilation, one group), forward and backward, compiled for f32 and
 * f64 (cpu_common.h). Everything heavy is CPU_GEMM (OpenBLAS); workspace comes from
 * cpu_scratch. Not here: shape checks (ops_gemm.c).
 *
 * Stride 1 (every 3x3 and 1x1 conv of the SD UNet and VAE except the downsamples): "shifted
 * GEMM" over the padded width, no im2col. Pad one image once to xp (Cin, Hp, Wp) and flatten
 * each channel (row pitch Wp). For a tap (u, v) of the kernel,
 *     y[o, i*Wp + j] += sum_c w[o, c, u, v] * xp[c, i*Wp + j + u*Wp + v],
 * i.e. one GEMM  Y (Cout, Ho*Wp) += W_uv (Cout, Cin) . Xp_shifted (Cin, Ho*Wp), whose B operand
 * is xp itself offset by u*Wp + v with leading dimension = the channel pitch. The Wp - Wo
 * columns j >= Wo of each output row are garbage (they wrap into the next row) and are cropped.
 * The KH*KW GEMMs accumulate into one output; the weight is repacked once per call to
 * (KH*KW, Cout, Cin) so each W_uv is a plain matrix. A 1x1 conv without padding is a single
 * GEMM on the input in place, written straight into the output.
 *   backward-data:   the transpose, dXp (Cin, ...) at offset u*Wp+v  += W_uv^T . dYp, where dYp is
 *                    dout laid out over the padded width with zeros in the garbage columns (so
 *                    nothing leaks into neighbouring rows); then the interior of dXp is added to
 *                    dinp (the padding's gradient is dropped).
 *   backward-filter: dW_uv (Cout, Cin) += dYp (Cout, Ho*Wp) . Xp_shifted^T.
 * Stride > 1 (downsamples): im2col (Cin*KH*KW, Ho*Wo) and one GEMM per image; backward-data is
 * col = W^T . dout then col2im; backward-filter dW += dout . col^T.
 *
 * Timing (2-core AVX2 EPYC VM, OpenBLAS 0.3.21 pthreads, OPENBLAS_CORETYPE unset): SD's 3x3
 * 320->320 conv at 64x64 is one GEMM-bound pass of 7.55 GFLOP: see the gemm family's report.
 * The copies (pad, crop, repack) are memory-bound and run on one thread: an OpenMP team that
 * spins after its loop steals a core from the OpenBLAS threads of the GEMM that follows.
 * OpenBLAS threads itself: CPU_GEMM is never called inside an OpenMP region.
 */
#include "cpu_common.h"

#include <string.h> /* defines: memset, memcpy */

/* Geometry of one call. */
struct geom {
    int64_t B, Cin, H, W, Cout, KH, KW, Ho, Wo, s;
    int64_t pt, pb, pl, pr;
    /* stride-1 path */
    int64_t Hp, Wp; /* padded input */
    int64_t cs;     /* channel pitch of the padded input: Hp*Wp + KW-1 (the last taps of the
                       garbage columns read up to KW-1 elements past the padded image) */
    int in_place;   /* no padding and KW == 1: the input itself is the padded input */
    int crop;       /* KW > 1: outputs are computed over the padded width, then cropped */
};

static void geom_of(struct geom *g, const struct ti_conv2d_args *a) {
    g->B = a->inp.shape[0];
    g->Cin = a->inp.shape[1];
    g->H = a->inp.shape[2];
    g->W = a->inp.shape[3];
    g->Cout = a->weight.shape[0];
    g->KH = a->weight.shape[2];
    g->KW = a->weight.shape[3];
    g->s = a->stride[0];
    g->pt = a->pad[0];
    g->pb = a->pad[1];
    g->pl = a->pad[2];
    g->pr = a->pad[3];
    g->Ho = (g->H + g->pt + g->pb - g->KH) / g->s + 1;
    g->Wo = (g->W + g->pl + g->pr - g->KW) / g->s + 1;
    g->Hp = g->H + g->pt + g->pb;
    g->Wp = g->W + g->pl + g->pr;
    g->in_place = g->pt == 0 && g->pb == 0 && g->pl == 0 && g->pr == 0 && g->KW == 1;
    /* (the tail also covers the first row's left padding when the image has no rows) */
    g->cs = g->in_place ? g->H * g->W : g->Hp * g->Wp + (g->KW - 1 > g->pl ? g->KW - 1 : g->pl);
    g->crop = g->KW > 1;
}

/* Scratch that cannot be had is an error naming the kernel. */
#define SCRATCH(ptr, k, count, what)                                                               \
    do {                                                                                           \
        (ptr) = cpu_scratch((k), (size_t)(count) * sizeof(real));                                  \
        if (!(ptr))                                                                                \
            return ti_error((k)->err, TI_ERR_NOMEM, "conv2d: no scratch for %s (%lld elements)",   \
                            (what), (long long)(count));                                           \
    } while (0)

/* ---- stride-1 helpers ------------------------------------------------------------------------ */

/* xp (Cin, cs) = image x (Cin, H, W) zero-padded; the KW-1 tail elements are zero too. */
static void pad_image(real *xp, const real *x, const struct geom *g) {
    for (int64_t c = 0; c < g->Cin; c++) {
        real *d = xp + c * g->cs;
        const real *s = x + c * g->H * g->W;
        /* top rows and the left padding of the first image row */
        memset(d, 0, (size_t)(g->pt * g->Wp + g->pl) * sizeof(real));
        for (int64_t i = 0; i < g->H; i++) {
            real *row = d + (g->pt + i) * g->Wp + g->pl;
            memcpy(row, s + i * g->W, (size_t)g->W * sizeof(real));
            /* right padding of this row and left padding of the next (the last row's next is
             * cleared with the bottom rows) */
            memset(row + g->W, 0, (size_t)(g->pr + (i + 1 < g->H ? g->pl : 0)) * sizeof(real));
        }
        /* bottom rows and the tail */
        int64_t bot = (g->pt + g->H) * g->Wp;
        memset(d + bot, 0, (size_t)(g->cs - bot) * sizeof(real));
    }
}

/* wr (KH*KW, Cout, Cin) = weight (Cout, Cin, KH, KW) with the tap index outermost. */
static void repack_weight(real *wr, const real *w, const struct geom *g) {
    int64_t kk = g->KH * g->KW;
    for (int64_t o = 0; o < g->Cout; o++)
        for (int64_t c = 0; c < g->Cin; c++) {
            const real *s = w + (o * g->Cin + c) * kk;
            for (int64_t t = 0; t < kk; t++)
                wr[(t * g->Cout + o) * g->Cin + c] = s[t];
        }
}

/* rows (n rows of pitch Wp) = bias of each output channel (the GEMMs then accumulate) */
static void fill_bias(real *y, const real *bias, int64_t Cout, int64_t plane) {
    for (int64_t o = 0; o < Cout; o++)
        for (int64_t j = 0; j < plane; j++)
            y[o * plane + j] = bias[o];
}

/* Forward of one image on the stride-1 path. xin: padded input (Cin, cs); yp: (Cout, Ho*Wp). */
static void shifted_forward(real *yp, const real *xin, const real *wr, const real *bias,
                            const struct geom *g) {
    int64_t n = g->Ho * g->Wp;
    real beta = R(0);
    if (bias) {
        fill_bias(yp, bias, g->Cout, n);
        beta = R(1);
    }
    for (int64_t u = 0; u < g->KH; u++)
        for (int64_t v = 0; v < g->KW; v++) {
            int64_t t = u * g->KW + v;
            CPU_GEMM(0, 0, g->Cout, n, g->Cin, R(1), wr + t * g->Cout * g->Cin, g->Cin,
                     xin + u * g->Wp + v, g->cs, beta, yp, n);
            beta = R(1);
        }
}

static ti_status conv_forward_s1(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                 const struct geom *g) {
    int64_t kk = g->KH * g->KW;
    const real *w = a->weight.data, *bias = a->bias.data;
    real *wr = (real *)w, *xp = NULL, *yp = NULL;
    if (kk > 1) {
        SCRATCH(wr, k, kk * g->Cout * g->Cin, "the repacked weight");
        repack_weight(wr, w, g);
    }
    if (!g->in_place) SCRATCH(xp, k, g->Cin * g->cs, "the padded input");
    if (g->crop) SCRATCH(yp, k, g->Cout * g->Ho * g->Wp, "the uncropped output");
    for (int64_t b = 0; b < g->B; b++) {
        const real *x = (const real *)a->inp.data + b * g->Cin * g->H * g->W;
        real *y = (real *)a->out.data + b * g->Cout * g->Ho * g->Wo;
        if (!g->in_place) pad_image(xp, x, g);
        shifted_forward(g->crop ? yp : y, g->in_place ? x : xp, wr, bias, g);
        if (g->crop)
            for (int64_t r = 0; r < g->Cout * g->Ho; r++)
                memcpy(y + r * g->Wo, yp + r * g->Wp, (size_t)g->Wo * sizeof(real));
    }
    return TI_OK;
}

/* Backward of the stride-1 path: dinp when want_x, dweight when want_w. */
static ti_status conv_backward_s1(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                  const struct geom *g, int want_x, int want_w) {
    int64_t kk = g->KH * g->KW, n = g->Ho * g->Wp;
    real *wr = (real *)a->weight.data, *xp = NULL, *dyp = NULL, *dxp = NULL, *dwr = NULL;
    if (want_x && kk > 1) {
        SCRATCH(wr, k, kk * g->Cout * g->Cin, "the repacked weight");
        repack_weight(wr, a->weight.data, g);
    }
    if (g->crop) SCRATCH(dyp, k, g->Cout * n, "the padded output gradient");
    if (want_x && !g->in_place) SCRATCH(dxp, k, g->Cin * g->cs, "the padded input gradient");
    if (want_w && !g->in_place) SCRATCH(xp, k, g->Cin * g->cs, "the padded input");
    if (want_w && kk > 1) SCRATCH(dwr, k, kk * g->Cout * g->Cin, "the repacked weight gradient");
    for (int64_t b = 0; b < g->B; b++) {
        const real *dy = (const real *)a->dout.data + b * g->Cout * g->Ho * g->Wo;
        if (g->crop) { /* dout over the padded width; the garbage columns must be zero */
            for (int64_t r = 0; r < g->Cout * g->Ho; r++) {
                memcpy(dyp + r * g->Wp, dy + r * g->Wo, (size_t)g->Wo * sizeof(real));
                memset(dyp + r * g->Wp + g->Wo, 0, (size_t)(g->Wp - g->Wo) * sizeof(real));
            }
        }
        const real *gy = g->crop ? dyp : dy;
        if (want_x) {
            real *dx = (real *)a->dinp.data + b * g->Cin * g->H * g->W;
            real *dst = g->in_place ? dx : dxp;
            if (!g->in_place) memset(dxp, 0, (size_t)(g->Cin * g->cs) * sizeof(real));
            /* dXp[:, off_uv + j] += W_uv^T (Cin, Cout) . dYp (Cout, Ho*Wp) */
            for (int64_t t = 0; t < kk; t++)
                CPU_GEMM(1, 0, g->Cin, n, g->Cout, R(1), wr + t * g->Cout * g->Cin, g->Cin, gy, n,
                         R(1), dst + (t / g->KW) * g->Wp + t % g->KW, g->cs);
            if (!g->in_place) /* interior of dXp -> dinp */
                for (int64_t c = 0; c < g->Cin; c++)
                    for (int64_t i = 0; i < g->H; i++) {
                        const real *s = dxp + c * g->cs + (i + g->pt) * g->Wp + g->pl;
                        real *d = dx + (c * g->H + i) * g->W;
                        for (int64_t j = 0; j < g->W; j++)
                            d[j] += s[j];
                    }
        }
        if (want_w) {
            const real *x = (const real *)a->inp.data + b * g->Cin * g->H * g->W;
            if (!g->in_place) pad_image(xp, x, g);
            const real *xin = g->in_place ? x : xp;
            /* dW_uv (Cout, Cin) += dYp (Cout, Ho*Wp) . Xp_shifted^T (Ho*Wp, Cin) */
            for (int64_t t = 0; t < kk; t++) {
                real *dst = kk > 1 ? dwr + t * g->Cout * g->Cin : (real *)a->dweight.data;
                CPU_GEMM(0, 1, g->Cout, g->Cin, n, R(1), gy, n,
                         xin + (t / g->KW) * g->Wp + t % g->KW, g->cs,
                         kk > 1 && b == 0 ? R(0) : R(1), dst, g->Cin);
            }
        }
    }
    if (want_w && kk > 1) { /* dweight (Cout, Cin, KH, KW) += dwr (KH*KW, Cout, Cin) */
        real *dw = a->dweight.data;
        for (int64_t o = 0; o < g->Cout; o++)
            for (int64_t c = 0; c < g->Cin; c++)
                for (int64_t t = 0; t < kk; t++)
                    dw[(o * g->Cin + c) * kk + t] += dwr[(t * g->Cout + o) * g->Cin + c];
    }
    return TI_OK;
}

/* ---- 3x3 stride 1: Winograd F(2x2, 3x3) ---------------------------------------------------- */

/* Each 2x2 output tile is computed from the 4x4 input patch d under it (Lavin & Gray 2015):
 *     Y = A^T [ sum_c (G g_oc G^T) .* (B^T d_c B) ] A
 * with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
 *      A^T = [1 1 1 0; 0 1 -1 -1].
 * The channel sum is, for each of the 16 positions t of the 4x4 transform, one GEMM
 *     M_t (Co, N) = U_t (Co, Ci) . V_t (Ci, N)     (N = tiles of all images),
 * 16 GEMMs of Co*Ci*N MACs instead of 9 of 4*Co*Ci*N: 2.25x fewer multiplications. The
 * transforms are additions (and halves for G), so rounding stays close to the direct sum.
 * The same routine computes backward-data: dinp is the 3x3 stride-1 convolution of dout with
 * the weight transposed in (Cout, Cin) and rotated by 180 degrees, "padded" by 2 - top and
 * 2 - left. The input transform reads with bounds (zeros outside), so any padding (or the
 * negative offsets of an unpadded backward) needs no padded copy. */
struct wino {
    int64_t B, Ci, Hi, Wi; /* input (B, Ci, Hi, Wi) */
    int64_t Co, Ho, Wo;    /* output (B, Co, Ho, Wo) */
    int64_t py, px;        /* out[y][x] reads in[y + u - py][x + v - px], u, v in 0..2 */
    int64_t th, tw, N;     /* tiles per image: th x tw; N = B * th * tw */
};

static void wino_init(struct wino *q, int64_t B, int64_t Ci, int64_t Hi, int64_t Wi, int64_t Co,
                      int64_t Ho, int64_t Wo, int64_t py, int64_t px) {
    q->B = B;
    q->Ci = Ci;
    q->Hi = Hi;
    q->Wi = Wi;
    q->Co = Co;
    q->Ho = Ho;
    q->Wo = Wo;
    q->py = py;
    q->px = px;
    q->th = (Ho + 1) / 2;
    q->tw = (Wo + 1) / 2;
    q->N = B * q->th * q->tw;
}

/* U (16, Co, Ci) = G g G^T of every filter. flip = 0: g = w[o][c] of weight (Co, Ci, 3, 3);
 * flip = 1 (backward-data): g[u][v] = w[c][o][2-u][2-v] of weight (Ci, Co, 3, 3). */
static void wino_weights(real *U, const real *w, int64_t Co, int64_t Ci, int flip) {
    for (int64_t o = 0; o < Co; o++)
        for (int64_t c = 0; c < Ci; c++) {
            real g[3][3], t[4][3];
            const real *s = flip ? w + (c * Co + o) * 9 : w + (o * Ci + c) * 9;
            for (int u = 0; u < 3; u++)
                for (int v = 0; v < 3; v++)
                    g[u][v] = flip ? s[(2 - u) * 3 + 2 - v] : s[u * 3 + v];
            for (int v = 0; v < 3; v++) { /* t = G g */
                t[0][v] = g[0][v];
                t[1][v] = R(0.5) * (g[0][v] + g[1][v] + g[2][v]);
                t[2][v] = R(0.5) * (g[0][v] - g[1][v] + g[2][v]);
                t[3][v] = g[2][v];
            }
            for (int i = 0; i < 4; i++) { /* U = t G^T */
                real r[4] = {t[i][0], R(0.5) * (t[i][0] + t[i][1] + t[i][2]),
                             R(0.5) * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int j = 0; j < 4; j++)
                    U[((i * 4 + j) * Co + o) * Ci + c] = r[j];
            }
        }
}

/* V (16, Ci, N) = B^T d B of every 4x4 input patch; rows (4 x (2*tw + 2)) is workspace that
 * holds the patch rows of one tile row with zeros outside the input. */
static void wino_input(real *V, const real *in, const struct wino *q, real *rows) {
    int64_t lw = 2 * q->tw + 2, T = q->th * q->tw;
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t c = 0; c < q->Ci; c++) {
            const real *src = in + (b * q->Ci + c) * q->Hi * q->Wi;
            real *vc = V + c * q->N + b * T;
            /* the input columns x in [x0, x1) land at rows[x + px] */
            int64_t x0 = q->px < 0 ? -q->px : 0;
            int64_t x1 = q->Wi < lw - q->px ? q->Wi : lw - q->px;
            for (int64_t ty = 0; ty < q->th; ty++) {
                for (int i = 0; i < 4; i++) {
                    real *r = rows + i * lw;
                    int64_t y = 2 * ty + i - q->py;
                    memset(r, 0, (size_t)lw * sizeof(real));
                    if (y >= 0 && y < q->Hi && x1 > x0)
                        memcpy(r + x0 + q->px, src + y * q->Wi + x0,
                               (size_t)(x1 - x0) * sizeof(real));
                }
                const real *r0 = rows, *r1 = rows + lw, *r2 = rows + 2 * lw, *r3 = rows + 3 * lw;
                real *vt = vc + ty * q->tw;
                int64_t ps = q->Ci * q->N; /* stride between the 16 transform positions */
                for (int64_t tx = 0; tx < q->tw; tx++) {
                    real d[4][4], e[4][4];
                    for (int j = 0; j < 4; j++) { /* columns of B^T d */
                        real a0 = r0[2 * tx + j], a1 = r1[2 * tx + j], a2 = r2[2 * tx + j],
                             a3 = r3[2 * tx + j];
                        d[0][j] = a0 - a2;
                        d[1][j] = a1 + a2;
                        d[2][j] = a2 - a1;
                        d[3][j] = a1 - a3;
                    }
                    for (int i = 0; i < 4; i++) { /* rows of (B^T d) B */
                        e[i][0] = d[i][0] - d[i][2];
                        e[i][1] = d[i][1] + d[i][2];
                        e[i][2] = d[i][2] - d[i][1];
                        e[i][3] = d[i][1] - d[i][3];
                    }
                    for (int t = 0; t < 16; t++)
                        vt[t * ps + tx] = e[t / 4][t % 4];
                }
            }
        }
}

/* out (B, Co, Ho, Wo) = (accumulate ? out : bias or 0) + A^T M A of every tile, M (16, Co, N). */
static void wino_output(real *out, const real *M, const struct wino *q, const real *bias,
                        int accumulate) {
    int64_t T = q->th * q->tw, ps = q->Co * q->N;
    for (int64_t b = 0; b < q->B; b++)
        for (int64_t o = 0; o < q->Co; o++) {
            real *dst = out + (b * q->Co + o) * q->Ho * q->Wo;
            const real *mo = M + o * q->N + b * T;
            real b0 = bias ? bias[o] : R(0);
            for (int64_t ty = 0; ty < q->th; ty++) {
                const real *m = mo + ty * q->tw;
                real *y0 = dst + 2 * ty * q->Wo;
                real *y1 = 2 * ty + 1 < q->Ho ? y0 + q->Wo : NULL;
                for (int64_t tx = 0; tx < q->tw; tx++) {
                    real s0[4], s1[4];
                    for (int j = 0; j < 4; j++) { /* A^T M */
                        real m0 = m[j * ps + tx], m1 = m[(4 + j) * ps + tx],
                             m2 = m[(8 + j) * ps + tx], m3 = m[(12 + j) * ps + tx];
                        s0[j] = m0 + m1 + m2;
                        s1[j] = m1 - m2 - m3;
                    }
                    real v00 = s0[0] + s0[1] + s0[2], v01 = s0[1] - s0[2] - s0[3];
                    real v10 = s1[0] + s1[1] + s1[2], v11 = s1[1] - s1[2] - s1[3];
                    int64_t x = 2 * tx;
                    int two = x + 1 < q->Wo;
                    if (accumulate) {
                        y0[x] += v00;
                        if (two) y0[x + 1] += v01;
                        if (y1) {
                            y1[x] += v10;
                            if (two) y1[x + 1] += v11;
                        }
                    } else {
                        y0[x] = b0 + v00;
                        if (two) y0[x + 1] = b0 + v01;
                        if (y1) {
                            y1[x] = b0 + v10;
                            if (two) y1[x + 1] = b0 + v11;
                        }
                    }
                }
            }
        }
}

/* out (+)= conv3x3(in, w) through Winograd; flip selects backward-data (see wino_weights). */
static ti_status wino_conv(struct ti_kctx *k, real *out, const real *in, const real *w,
                           const real *bias, const struct wino *q, int flip, int accumulate) {
    real *U, *V, *M, *rows;
    SCRATCH(U, k, 16 * q->Co * q->Ci, "the Winograd weights");
    SCRATCH(V, k, 16 * q->Ci * q->N, "the Winograd input");
    SCRATCH(M, k, 16 * q->Co * q->N, "the Winograd products");
    SCRATCH(rows, k, 4 * (2 * q->tw + 2), "the Winograd rows");
    wino_weights(U, w, q->Co, q->Ci, flip);
    wino_input(V, in, q, rows);
    for (int t = 0; t < 16; t++)
        CPU_GEMM(0, 0, q->Co, q->N, q->Ci, R(1), U + t * q->Co * q->Ci, q->Ci, V + t * q->Ci * q->N,
                 q->N, R(0), M + t * q->Co * q->N, q->N);
    wino_output(out, M, q, bias, accumulate);
    return TI_OK;
}

/* 3x3 stride-1 convolutions take the Winograd path (forward and backward-data). */
static int wino_applies(const struct geom *g) {
    return g->s == 1 && g->KH == 3 && g->KW == 3;
}

static ti_status wino_forward(struct ti_kctx *k, const struct ti_conv2d_args *a,
                              const struct geom *g) {
    struct wino q;
    wino_init(&q, g->B, g->Cin, g->H, g->W, g->Cout, g->Ho, g->Wo, g->pt, g->pl);
    return wino_conv(k, a->out.data, a->inp.data, a->weight.data, a->bias.data, &q, 0, 0);
}

static ti_status wino_backward_data(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                    const struct geom *g) {
    struct wino q;
    wino_init(&q, g->B, g->Cout, g->Ho, g->Wo, g->Cin, g->H, g->W, 2 - g->pt, 2 - g->pl);
    return wino_conv(k, a->dinp.data, a->dout.data, a->weight.data, NULL, &q, 1, 1);
}

/* ---- general path (stride > 1): im2col ------------------------------------------------------- */

/* col (Cin*KH*KW, Ho*Wo): col[(c,u,v), (i,j)] = x[c, i*s+u-pt, j*s+v-pl] or 0 in the padding. */
static void im2col(real *col, const real *x, const struct geom *g) {
    int64_t rows = g->Cin * g->KH * g->KW, plane = g->Ho * g->Wo;
    int nt = rows * plane >= 4 * TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = r / (g->KH * g->KW), u = (r / g->KW) % g->KH, v = r % g->KW;
        real *d = col + r * plane;
        const real *xc = x + c * g->H * g->W;
        for (int64_t i = 0; i < g->Ho; i++) {
            int64_t y = i * g->s + u - g->pt;
            real *di = d + i * g->Wo;
            if (y < 0 || y >= g->H) {
                for (int64_t j = 0; j < g->Wo; j++)
                    di[j] = R(0);
                continue;
            }
            const real *xr = xc + y * g->W;
            for (int64_t j = 0; j < g->Wo; j++) {
                int64_t xx = j * g->s + v - g->pl;
                di[j] = xx >= 0 && xx < g->W ? xr[xx] : R(0);
            }
        }
    }
}

/* dx (Cin, H, W) += col2im(col): each channel is owned by one thread and summed in a fixed
 * order (deterministic). */
static void col2im_add(real *dx, const real *col, const struct geom *g) {
    int64_t kk = g->KH * g->KW, plane = g->Ho * g->Wo;
    int nt = g->Cin * kk * plane >= 4 * TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t c = 0; c < g->Cin; c++) {
        real *dc = dx + c * g->H * g->W;
        for (int64_t t = 0; t < kk; t++) {
            int64_t u = t / g->KW, v = t % g->KW;
            const real *s = col + (c * kk + t) * plane;
            for (int64_t i = 0; i < g->Ho; i++) {
                int64_t y = i * g->s + u - g->pt;
                if (y < 0 || y >= g->H) continue;
                for (int64_t j = 0; j < g->Wo; j++) {
                    int64_t xx = j * g->s + v - g->pl;
                    if (xx >= 0 && xx < g->W) dc[y * g->W + xx] += s[i * g->Wo + j];
                }
            }
        }
    }
}

static ti_status conv_forward_col(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                  const struct geom *g) {
    int64_t ckk = g->Cin * g->KH * g->KW, plane = g->Ho * g->Wo;
    real *col;
    SCRATCH(col, k, ckk * plane, "im2col");
    const real *bias = a->bias.data;
    for (int64_t b = 0; b < g->B; b++) {
        real *y = (real *)a->out.data + b * g->Cout * plane;
        im2col(col, (const real *)a->inp.data + b * g->Cin * g->H * g->W, g);
        if (bias) fill_bias(y, bias, g->Cout, plane);
        /* y (Cout, Ho*Wo) = W (Cout, Cin*KH*KW) . col */
        CPU_GEMM(0, 0, g->Cout, plane, ckk, R(1), a->weight.data, ckk, col, plane,
                 bias ? R(1) : R(0), y, plane);
    }
    return TI_OK;
}

static ti_status conv_backward_col(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                   const struct geom *g) {
    int64_t ckk = g->Cin * g->KH * g->KW, plane = g->Ho * g->Wo;
    real *col;
    SCRATCH(col, k, ckk * plane, "im2col");
    for (int64_t b = 0; b < g->B; b++) {
        const real *dy = (const real *)a->dout.data + b * g->Cout * plane;
        if (a->dweight.data) { /* dW (Cout, Cin*KH*KW) += dy (Cout, Ho*Wo) . col^T */
            im2col(col, (const real *)a->inp.data + b * g->Cin * g->H * g->W, g);
            CPU_GEMM(0, 1, g->Cout, ckk, plane, R(1), dy, plane, col, plane, R(1), a->dweight.data,
                     ckk);
        }
        if (a->dinp.data) { /* col = W^T (Cin*KH*KW, Cout) . dy, then scattered back */
            CPU_GEMM(1, 0, ckk, plane, g->Cout, R(1), a->weight.data, ckk, dy, plane, R(0), col,
                     plane);
            col2im_add((real *)a->dinp.data + b * g->Cin * g->H * g->W, col, g);
        }
    }
    return TI_OK;
}

/* ---- entry points ---------------------------------------------------------------------------- */

ti_status CPU_FN(conv2d_forward)(struct ti_kctx *k, const struct ti_conv2d_args *a) {
    struct geom g;
    geom_of(&g, a);
    if (g.B * g.Cout * g.Ho * g.Wo == 0) return TI_OK;
    if (wino_applies(&g)) return wino_forward(k, a, &g);
    return g.s == 1 ? conv_forward_s1(k, a, &g) : conv_forward_col(k, a, &g);
}

ti_status CPU_FN(conv2d_backward)(struct ti_kctx *k, const struct ti_conv2d_args *a) {
    struct geom g;
    geom_of(&g, a);
    if (g.B * g.Cout * g.Ho * g.Wo == 0) return TI_OK;
    if (a->dbias.data) { /* dbias[o] += sum over b, i, j of dout[b, o, i, j] (double, in order) */
        int64_t plane = g.Ho * g.Wo;
        real *db = a->dbias.data;
        for (int64_t o = 0; o < g.Cout; o++) {
            double acc = 0;
            for (int64_t b = 0; b < g.B; b++) {
                const real *s = (const real *)a->dout.data + (b * g.Cout + o) * plane;
                for (int64_t j = 0; j < plane; j++)
                    acc += s[j];
            }
            db[o] += (real)acc;
        }
    }
    int want_x = a->dinp.data != NULL, want_w = a->dweight.data != NULL;
    if (g.s != 1) return want_x || want_w ? conv_backward_col(k, a, &g) : TI_OK;
    if (want_x && wino_applies(&g)) {
        TI_TRY(wino_backward_data(k, a, &g));
        want_x = 0;
    }
    return want_x || want_w ? conv_backward_s1(k, a, &g, want_x, want_w) : TI_OK;
}
