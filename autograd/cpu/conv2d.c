/*
 * cpu/conv2d.c - CPU kernels of CONV2D (NCHW cross-correlation, one stride for both axes,
 * asymmetric zero padding, no dilation, one group), forward and backward, compiled for f32 and
 * f64 (cpu_common.h). Everything heavy is CPU_GEMM (OpenBLAS); workspace comes from
 * cpu_scratch. Not here: shape checks (ops_gemm.c).
 *
 * Paths (chosen per call from the geometry):
 *  - 3x3, stride 1 (nearly every conv of the SD UNet and VAE) with at least 128 output tiles of
 *    2x2 (e.g. 32x32 and larger at batch 1): Winograd F(2x2, 3x3) for forward and
 *    backward-data, 16 GEMMs over transformed tiles (2.25x fewer multiplications than a direct
 *    or im2col convolution); see "Winograd" below. Backward-filter: shifted GEMM.
 *  - other stride-1 convolutions (1x1, 5x5, 3x3 with few tiles, ...): "shifted GEMM" over the
 *    padded width, no im2col. Pad one image once to xp (Cin, Hp, Wp) and flatten each channel
 *    (row pitch Wp).
 *    For a tap (u, v) of the kernel,
 *        y[o, i*Wp + j] += sum_c w[o, c, u, v] * xp[c, i*Wp + j + u*Wp + v],
 *    i.e. one GEMM  Y (Cout, Ho*Wp) += W_uv (Cout, Cin) . Xp_shifted (Cin, Ho*Wp), whose B
 *    operand is xp itself offset by u*Wp + v with leading dimension = the channel pitch. The
 *    Wp - Wo columns j >= Wo of each output row are garbage (they wrap into the next row) and
 *    are cropped. The KH*KW GEMMs accumulate into one output; the weight is repacked once per
 *    call to (KH*KW, Cout, Cin) so each W_uv is a plain matrix. A 1x1 conv without padding is a
 *    single GEMM on the input in place, written straight into the output.
 *      backward-data:   the transpose, dXp (Cin, ...) at offset u*Wp+v += W_uv^T . dYp, where
 *                       dYp is dout laid out over the padded width with zeros in the garbage
 *                       columns (so nothing leaks into neighbouring rows); then the interior of
 *                       dXp is added to dinp (the padding's gradient is dropped).
 *      backward-filter: dW_uv (Cout, Cin) += dYp (Cout, Ho*Wp) . Xp_shifted^T.
 *  - stride > 1 (downsamples), and stride 1 on images small next to the filters (the UNet's
 *    8x8 and 16x16 layers, where repacking 59 MB of weights would cost more than the
 *    convolution): im2col (Cin*KH*KW, rows*Wo) over chunks of output rows and one GEMM per chunk
 *    on the weight in place; backward-data is col = W^T . dout then col2im; backward-filter
 *    dW += dout . col^T.
 * Winograd and im2col work in chunks so their workspace stays bounded (64 / 32 MiB) whatever
 * the image size (the VAE at 512 px); the SD UNet's layers fit in one chunk.
 *
 * Threads: OpenBLAS threads the GEMMs itself (CPU_GEMM is never called inside an OpenMP
 * region). The transforms and copies between GEMMs run on one thread: they are memory-bound,
 * and an OpenMP team that spin-waits after its loop (libgomp's default) takes a core from the
 * OpenBLAS threads of the GEMM that follows.
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
    int64_t th, tw;        /* tiles per image: th rows of tw tiles */
    int64_t rows;          /* tile rows per chunk (bounds V and M, see wino_conv) */
    int64_t cb;            /* output channels per block of U (bounds U, see wino_conv) */
};

/* Scratch for the transformed input and products of one chunk. */
#define WINO_CHUNK_BYTES ((int64_t)64 << 20)
/* Most scratch for the transformed weights U: larger ones (the SD UNet's 1280 -> 1280 layers,
 * 100 MiB) are made and used in blocks of output channels, which keeps the scratch arena, and
 * so the peak memory, ~100 MiB lower; each block's GEMMs still have >= 160 rows. */
#define WINO_U_BYTES ((int64_t)16 << 20)

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
    int64_t u = 16 * Co * Ci * (int64_t)sizeof(real), nb = (u + WINO_U_BYTES - 1) / WINO_U_BYTES;
    q->cb = nb > 1 ? ((Co + nb - 1) / nb + 15) / 16 * 16 : Co;
    if (q->cb > Co) q->cb = Co;
    int64_t per_row = 16 * (Ci + q->cb) * q->tw * (int64_t)sizeof(real);
    q->rows = per_row > 0 ? WINO_CHUNK_BYTES / per_row : 1;
    if (q->rows < 1) q->rows = 1;
    if (q->rows > B * q->th) q->rows = B * q->th;
}

/* U[t][o][c] (t = 4i + j, stride ps between positions) = (G g_c G^T)[i][j] for the filters
 * g_c of one output channel, given as 9 rows of Ci: gt[k*Ci + c] = g_c[k / 3][k % 3].
 * G g: rows g0, (g0 + g1 + g2)/2, (g0 - g1 + g2)/2, g2; then the same on the columns. */
static void wino_filters(real *restrict U, int64_t ps, const real *restrict gt, int64_t Ci) {
    const real h = R(0.5);
    for (int64_t c = 0; c < Ci; c++) { /* written out so the loop over c vectorizes */
        real g0 = gt[c], g1 = gt[Ci + c], g2 = gt[2 * Ci + c];
        real g3 = gt[3 * Ci + c], g4 = gt[4 * Ci + c], g5 = gt[5 * Ci + c];
        real g6 = gt[6 * Ci + c], g7 = gt[7 * Ci + c], g8 = gt[8 * Ci + c];
        /* t = G g (4 x 3) */
        real t00 = g0, t01 = g1, t02 = g2;
        real t10 = h * (g0 + g3 + g6), t11 = h * (g1 + g4 + g7), t12 = h * (g2 + g5 + g8);
        real t20 = h * (g0 - g3 + g6), t21 = h * (g1 - g4 + g7), t22 = h * (g2 - g5 + g8);
        real t30 = g6, t31 = g7, t32 = g8;
        /* U = t G^T (4 x 4) */
        U[c] = t00;
        U[ps + c] = h * (t00 + t01 + t02);
        U[2 * ps + c] = h * (t00 - t01 + t02);
        U[3 * ps + c] = t02;
        U[4 * ps + c] = t10;
        U[5 * ps + c] = h * (t10 + t11 + t12);
        U[6 * ps + c] = h * (t10 - t11 + t12);
        U[7 * ps + c] = t12;
        U[8 * ps + c] = t20;
        U[9 * ps + c] = h * (t20 + t21 + t22);
        U[10 * ps + c] = h * (t20 - t21 + t22);
        U[11 * ps + c] = t22;
        U[12 * ps + c] = t30;
        U[13 * ps + c] = h * (t30 + t31 + t32);
        U[14 * ps + c] = h * (t30 - t31 + t32);
        U[15 * ps + c] = t32;
    }
}

/* U (16, o1 - o0, Ci) = G g G^T of the filters of output channels [o0, o1). flip = 0:
 * g = w[o][c] of weight (Co, Ci, 3, 3); flip = 1 (backward-data): g[u][v] = w[c][o][2-u][2-v]
 * of weight (Ci, Co, 3, 3). gt: workspace of 9 * Ci reals (one output channel's filters,
 * tap-major). */
static void wino_weights(real *U, const real *w, int64_t o0, int64_t o1, int64_t Co, int64_t Ci,
                         int flip, real *gt) {
    for (int64_t o = o0; o < o1; o++) {
        for (int64_t c = 0; c < Ci; c++) {
            const real *s = flip ? w + (c * Co + o) * 9 : w + (o * Ci + c) * 9;
            for (int k = 0; k < 9; k++)
                gt[k * Ci + c] = s[flip ? 8 - k : k];
        }
        wino_filters(U + (o - o0) * Ci, (o1 - o0) * Ci, gt, Ci);
    }
}

/* floor(a / 2) and ceil(a / 2) for any sign */
static int64_t floor2(int64_t a) {
    return a >= 0 ? a / 2 : -((1 - a) / 2);
}
static int64_t ceil2(int64_t a) {
    return -floor2(-a);
}

/* e[k] = P(2k), o[k] = P(2k+1) for k < n, P(m) = row[m - px] inside [0, W), else 0 (row NULL: a
 * row outside the input). Deinterleaving here makes every later loop unit-stride. */
static void wino_load_row(real *e, real *o, const real *row, int64_t W, int64_t px, int64_t n) {
    memset(e, 0, (size_t)n * sizeof(real));
    memset(o, 0, (size_t)n * sizeof(real));
    if (!row) return;
    int64_t lo = ceil2(px), hi = floor2(W - 1 + px) + 1; /* 0 <= 2k - px < W */
    lo = lo < 0 ? 0 : lo;
    hi = hi > n ? n : hi;
    for (int64_t k = lo; k < hi; k++)
        e[k] = row[2 * k - px];
    lo = ceil2(px - 1); /* 0 <= 2k + 1 - px < W */
    hi = floor2(W - 2 + px) + 1;
    lo = lo < 0 ? 0 : lo;
    hi = hi > n ? n : hi;
    for (int64_t k = lo; k < hi; k++)
        o[k] = row[2 * k + 1 - px];
}

/* (B^T .) over 4 consecutive rows a0..a3 (n entries each): d0 - d2, d1 + d2, d2 - d1, d1 - d3. */
static void wino_vert(real *restrict p0, real *restrict p1, real *restrict p2, real *restrict p3,
                      const real *restrict a0, const real *restrict a1, const real *restrict a2,
                      const real *restrict a3, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        p0[k] = a0[k] - a2[k];
        p1[k] = a1[k] + a2[k];
        p2[k] = a2[k] - a1[k];
        p3[k] = a1[k] - a3[k];
    }
}

/* (. B) of one input row for a whole tile row: with x0..x3 = e[tx], o[tx], e[tx+1], o[tx+1]
 * (the patch columns 2tx .. 2tx+3), x B = [x0 - x2, x1 + x2, x2 - x1, x1 - x3]. */
static void wino_horiz(real *restrict v0, real *restrict v1, real *restrict v2, real *restrict v3,
                       const real *restrict e, const real *restrict o, int64_t tw) {
    for (int64_t tx = 0; tx < tw; tx++) {
        v0[tx] = e[tx] - e[tx + 1];
        v1[tx] = o[tx] + e[tx + 1];
        v2[tx] = e[tx + 1] - o[tx];
        v3[tx] = o[tx] - o[tx + 1];
    }
}

/* V (16, Ci, n) = B^T d B of every 4x4 input patch of the tile rows [g0, g1) (global tile row
 * g = b*th + ty; tile column n = (g - g0)*tw + tx). ws: 18*tw + 2 reals.
 * Each input row is deinterleaved into even / odd columns and transformed horizontally once
 * (d B: 4 rows of tw); the 4 rows under a tile row then combine vertically (B^T .) straight
 * into the 16 positions of V. Consecutive tile rows share 2 input rows, kept in the slots.
 * Every loop is unit-stride. */
static void wino_input(real *V, const real *in, const struct wino *q, int64_t g0, int64_t g1,
                       real *ws) {
    int64_t tw = q->tw, n = (g1 - g0) * tw, ps = q->Ci * n;
    real *e = ws + 16 * tw, *o = e + tw + 1;
    for (int64_t c = 0; c < q->Ci; c++) {
        real *slot[4] = {ws, ws + 4 * tw, ws + 8 * tw, ws + 12 * tw};
        for (int64_t g = g0; g < g1; g++) {
            int64_t b = g / q->th, ty = g % q->th;
            const real *src = in + (b * q->Ci + c) * q->Hi * q->Wi;
            int first = 0;
            if (g > g0 && ty > 0) { /* rows 0, 1 of this tile row are rows 2, 3 of the last */
                real *t0 = slot[0], *t1 = slot[1];
                slot[0] = slot[2];
                slot[1] = slot[3];
                slot[2] = t0;
                slot[3] = t1;
                first = 2;
            }
            for (int i = first; i < 4; i++) {
                int64_t y = 2 * ty + i - q->py;
                real *h = slot[i];
                wino_load_row(e, o, y >= 0 && y < q->Hi ? src + y * q->Wi : NULL, q->Wi, q->px,
                              tw + 1);
                wino_horiz(h, h + tw, h + 2 * tw, h + 3 * tw, e, o, tw);
            }
            real *vc = V + c * n + (g - g0) * tw;
            for (int j = 0; j < 4; j++)
                wino_vert(vc + j * ps, vc + (4 + j) * ps, vc + (8 + j) * ps, vc + (12 + j) * ps,
                          slot[0] + j * tw, slot[1] + j * tw, slot[2] + j * tw, slot[3] + j * tw,
                          tw);
        }
    }
}

/* The 2x2 results A^T m A of a whole tile row: m holds the 16 transform positions at stride
 * ps; s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 over rows, then the same over columns. */
static void wino_tiles(real *restrict t00, real *restrict t01, real *restrict t10,
                       real *restrict t11, const real *restrict m, int64_t ps, int64_t tw) {
    for (int64_t tx = 0; tx < tw; tx++) {
        const real *p = m + tx;
        real a0 = p[0] + p[4 * ps] + p[8 * ps], a1 = p[ps] + p[5 * ps] + p[9 * ps];
        real a2 = p[2 * ps] + p[6 * ps] + p[10 * ps], a3 = p[3 * ps] + p[7 * ps] + p[11 * ps];
        real b0 = p[4 * ps] - p[8 * ps] - p[12 * ps], b1 = p[5 * ps] - p[9 * ps] - p[13 * ps];
        real b2 = p[6 * ps] - p[10 * ps] - p[14 * ps], b3 = p[7 * ps] - p[11 * ps] - p[15 * ps];
        t00[tx] = a0 + a1 + a2;
        t01[tx] = a1 - a2 - a3;
        t10[tx] = b0 + b1 + b2;
        t11[tx] = b1 - b2 - b3;
    }
}

/* out (B, Co, Ho, Wo) (+)= A^T M A of every tile of the tile rows [g0, g1) for the output
 * channels [o0, o1), M (16, o1 - o0, n); accumulate = 0 writes bias (or 0) + the result.
 * ws: 4 * tw reals.
 * The 2x2 tiles of a tile row are computed at once (wino_tiles), then interleaved into the two
 * output rows. */
static void wino_output(real *out, const real *M, const struct wino *q, int64_t g0, int64_t g1,
                        int64_t o0, int64_t o1, const real *bias, int accumulate, real *ws) {
    int64_t n = (g1 - g0) * q->tw, ps = (o1 - o0) * n, tw = q->tw, full = q->Wo / 2;
    real *t00 = ws, *t01 = ws + tw, *t10 = ws + 2 * tw, *t11 = ws + 3 * tw;
    for (int64_t g = g0; g < g1; g++) {
        int64_t b = g / q->th, ty = g % q->th;
        for (int64_t o = o0; o < o1; o++) {
            wino_tiles(t00, t01, t10, t11, M + (o - o0) * n + (g - g0) * tw, ps, tw);
            real b0 = accumulate ? R(0) : bias ? bias[o] : R(0);
            for (int r = 0; r < 2 && 2 * ty + r < q->Ho; r++) {
                real *y = out + ((b * q->Co + o) * q->Ho + 2 * ty + r) * q->Wo;
                const real *a0 = r ? t10 : t00, *a1 = r ? t11 : t01;
                if (accumulate) {
                    for (int64_t tx = 0; tx < full; tx++) {
                        y[2 * tx] += a0[tx];
                        y[2 * tx + 1] += a1[tx];
                    }
                    if (q->Wo & 1) y[2 * full] += a0[full];
                } else {
                    for (int64_t tx = 0; tx < full; tx++) {
                        y[2 * tx] = b0 + a0[tx];
                        y[2 * tx + 1] = b0 + a1[tx];
                    }
                    if (q->Wo & 1) y[2 * full] = b0 + a0[full];
                }
            }
        }
    }
}

/* out (+)= conv3x3(in, w) through Winograd; flip selects backward-data (see wino_weights).
 * The tiles are processed in chunks of q->rows tile rows (one chunk for the SD UNet's 64x64
 * layers) so that V and M stay within WINO_CHUNK_BYTES whatever the image size, and the output
 * channels in blocks of q->cb so that U stays within WINO_U_BYTES (one block but for the
 * largest weights; a block's U is remade per chunk of rows). */
static ti_status wino_conv(struct ti_kctx *k, real *out, const real *in, const real *w,
                           const real *bias, const struct wino *q, int flip, int accumulate) {
    int64_t nmax = q->rows * q->tw, grows = q->B * q->th, cb = q->cb;
    real *U, *V, *M, *ws;
    SCRATCH(U, k, 16 * cb * q->Ci, "the Winograd weights");
    SCRATCH(V, k, 16 * q->Ci * nmax, "the Winograd input");
    SCRATCH(M, k, 16 * cb * nmax, "the Winograd products");
    SCRATCH(ws, k, 18 * q->tw + 2 > 9 * q->Ci ? 18 * q->tw + 2 : 9 * q->Ci, "the Winograd rows");
    if (cb == q->Co) wino_weights(U, w, 0, q->Co, q->Co, q->Ci, flip, ws);
    for (int64_t g0 = 0; g0 < grows; g0 += q->rows) {
        int64_t g1 = g0 + q->rows < grows ? g0 + q->rows : grows, n = (g1 - g0) * q->tw;
        wino_input(V, in, q, g0, g1, ws);
        for (int64_t o0 = 0; o0 < q->Co; o0 += cb) {
            int64_t o1 = o0 + cb < q->Co ? o0 + cb : q->Co, m = o1 - o0;
            if (cb < q->Co) wino_weights(U, w, o0, o1, q->Co, q->Ci, flip, ws);
            /* M_t (m, n) = U_t (m, Ci) . V_t (Ci, n) */
            for (int t = 0; t < 16; t++)
                CPU_GEMM(0, 0, m, n, q->Ci, R(1), U + t * m * q->Ci, q->Ci, V + t * q->Ci * n, n,
                         R(0), M + t * m * n, n);
            wino_output(out, M, q, g0, g1, o0, o1, bias, accumulate, ws);
        }
    }
    return TI_OK;
}

/* Whether a 3x3 stride-1 convolution producing (B, co, h, w) from ci channels takes the
 * Winograd path. Its weight transform costs about as much as the multiplications it saves on
 * ~35 tiles, and GEMMs over few tiles run slowly: below 128 tiles (the SD UNet's 8x8 and, at
 * batch 1, 16x16 layers) the shifted GEMM is faster. With few filters (co*ci <= 4096) either
 * path costs next to nothing; Winograd is kept there (small layers, the op test cases). */
static int wino_applies(const struct geom *g, int64_t B, int64_t co, int64_t ci, int64_t h,
                        int64_t w) {
    if (g->s != 1 || g->KH != 3 || g->KW != 3) return 0;
    return B * ((h + 1) / 2) * ((w + 1) / 2) >= 128 || co * ci <= 4096;
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

/* Output rows per im2col chunk: col stays within COL_CHUNK_BYTES whatever the image size. */
#define COL_CHUNK_BYTES ((int64_t)32 << 20)

static int64_t col_rows(const struct geom *g) {
    int64_t per_row = g->Cin * g->KH * g->KW * g->Wo * (int64_t)sizeof(real);
    int64_t r = per_row > 0 ? COL_CHUNK_BYTES / per_row : 1;
    return r < 1 ? 1 : r > g->Ho ? g->Ho : r;
}

/* col (Cin*KH*KW, n) for the output rows [i0, i1), n = (i1 - i0)*Wo:
 * col[(c,u,v), (i - i0)*Wo + j] = x[c, i*s+u-pt, j*s+v-pl], 0 in the padding. */
static void im2col(real *col, const real *x, const struct geom *g, int64_t i0, int64_t i1) {
    int64_t rows = g->Cin * g->KH * g->KW, n = (i1 - i0) * g->Wo;
    for (int64_t r = 0; r < rows; r++) {
        int64_t c = r / (g->KH * g->KW), u = (r / g->KW) % g->KH, v = r % g->KW;
        const real *xc = x + c * g->H * g->W;
        for (int64_t i = i0; i < i1; i++) {
            int64_t y = i * g->s + u - g->pt;
            real *d = col + r * n + (i - i0) * g->Wo;
            if (y < 0 || y >= g->H) {
                memset(d, 0, (size_t)g->Wo * sizeof(real));
                continue;
            }
            const real *xr = xc + y * g->W;
            for (int64_t j = 0; j < g->Wo; j++) {
                int64_t xx = j * g->s + v - g->pl;
                d[j] = xx >= 0 && xx < g->W ? xr[xx] : R(0);
            }
        }
    }
}

/* dx (Cin, H, W) += col2im(col) for the output rows [i0, i1) (the transpose of im2col). */
static void col2im_add(real *dx, const real *col, const struct geom *g, int64_t i0, int64_t i1) {
    int64_t kk = g->KH * g->KW, n = (i1 - i0) * g->Wo;
    for (int64_t c = 0; c < g->Cin; c++) {
        real *dc = dx + c * g->H * g->W;
        for (int64_t t = 0; t < kk; t++) {
            int64_t u = t / g->KW, v = t % g->KW;
            const real *s = col + (c * kk + t) * n;
            for (int64_t i = i0; i < i1; i++) {
                int64_t y = i * g->s + u - g->pt;
                if (y < 0 || y >= g->H) continue;
                const real *si = s + (i - i0) * g->Wo;
                for (int64_t j = 0; j < g->Wo; j++) {
                    int64_t xx = j * g->s + v - g->pl;
                    if (xx >= 0 && xx < g->W) dc[y * g->W + xx] += si[j];
                }
            }
        }
    }
}

/* y_b[:, rows i0..i1) (Cout, n) = W (Cout, Cin*KH*KW) . col, chunk by chunk; the chunk of y is
 * the columns [i0*Wo, i1*Wo) of each channel plane (leading dimension Ho*Wo). */
static ti_status conv_forward_col(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                  const struct geom *g) {
    int64_t ckk = g->Cin * g->KH * g->KW, plane = g->Ho * g->Wo, rows = col_rows(g);
    real *col;
    SCRATCH(col, k, ckk * rows * g->Wo, "im2col");
    const real *bias = a->bias.data;
    for (int64_t b = 0; b < g->B; b++) {
        real *y = (real *)a->out.data + b * g->Cout * plane;
        const real *x = (const real *)a->inp.data + b * g->Cin * g->H * g->W;
        if (bias) fill_bias(y, bias, g->Cout, plane);
        for (int64_t i0 = 0; i0 < g->Ho; i0 += rows) {
            int64_t i1 = i0 + rows < g->Ho ? i0 + rows : g->Ho, n = (i1 - i0) * g->Wo;
            im2col(col, x, g, i0, i1);
            CPU_GEMM(0, 0, g->Cout, n, ckk, R(1), a->weight.data, ckk, col, n, bias ? R(1) : R(0),
                     y + i0 * g->Wo, plane);
        }
    }
    return TI_OK;
}

/* Per chunk: dW (Cout, Cin*KH*KW) += dy_chunk (Cout, n) . col^T; col = W^T . dy_chunk, then
 * col2im into dinp (chunks share input rows at their borders: += keeps that exact). */
static ti_status conv_backward_col(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                   const struct geom *g, int want_x, int want_w) {
    int64_t ckk = g->Cin * g->KH * g->KW, plane = g->Ho * g->Wo, rows = col_rows(g);
    real *col;
    SCRATCH(col, k, ckk * rows * g->Wo, "im2col");
    for (int64_t b = 0; b < g->B; b++) {
        const real *dy = (const real *)a->dout.data + b * g->Cout * plane;
        size_t xo = (size_t)(b * g->Cin * g->H * g->W);
        for (int64_t i0 = 0; i0 < g->Ho; i0 += rows) {
            int64_t i1 = i0 + rows < g->Ho ? i0 + rows : g->Ho, n = (i1 - i0) * g->Wo;
            const real *dyc = dy + i0 * g->Wo;
            if (want_w) {
                im2col(col, (const real *)a->inp.data + xo, g, i0, i1);
                CPU_GEMM(0, 1, g->Cout, ckk, n, R(1), dyc, plane, col, n, R(1), a->dweight.data,
                         ckk);
            }
            if (want_x) {
                CPU_GEMM(1, 0, ckk, n, g->Cout, R(1), a->weight.data, ckk, dyc, plane, R(0), col,
                         n);
                col2im_add((real *)a->dinp.data + xo, col, g, i0, i1);
            }
        }
    }
    return TI_OK;
}

/* ---- entry points ---------------------------------------------------------------------------- */

#if defined(TI_HAVE_DNNL) && defined(TI_REAL_F32)
#define DNNL_TRY(call)                                                                             \
    do {                                                                                           \
        int done_ = 0;                                                                             \
        TI_TRY(call(k, a, &done_));                                                                \
        if (done_) return TI_OK;                                                                   \
    } while (0)
#endif

/* im2col (rather than the shifted GEMM) for every stride > 1, and for stride 1 when the images
 * are small next to the filters (B*Ho*Wo <= 2*Cout: the UNet's 8x8 and 16x16 layers): its
 * col buffer then costs less than the shifted path's weight repacks, and its GEMMs read the
 * weight in place. A 1x1 conv without padding always runs in place (no copy at all). */
static int use_col(const struct geom *g) {
    return g->s != 1 || (!g->in_place && g->B * g->Ho * g->Wo <= 2 * g->Cout);
}

ti_status CPU_FN(conv2d_forward)(struct ti_kctx *k, const struct ti_conv2d_args *a) {
    struct geom g;
    geom_of(&g, a);
    if (g.B * g.Cout * g.Ho * g.Wo == 0) return TI_OK;
#if defined(TI_HAVE_DNNL) && defined(TI_REAL_F32)
    DNNL_TRY(ti_dnnl_conv2d_forward);
#endif
    if (wino_applies(&g, g.B, g.Cout, g.Cin, g.Ho, g.Wo)) return wino_forward(k, a, &g);
    return use_col(&g) ? conv_forward_col(k, a, &g) : conv_forward_s1(k, a, &g);
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
#if defined(TI_HAVE_DNNL) && defined(TI_REAL_F32)
    if (want_x) {
        int done = 0;
        TI_TRY(ti_dnnl_conv2d_backward_data(k, a, &done));
        if (done) want_x = 0;
    }
#endif
    if (want_x && wino_applies(&g, g.B, g.Cin, g.Cout, g.H, g.W)) {
        TI_TRY(wino_backward_data(k, a, &g));
        want_x = 0;
    }
    if (!want_x && !want_w) return TI_OK;
    return use_col(&g) ? conv_backward_col(k, a, &g, want_x, want_w)
                       : conv_backward_s1(k, a, &g, want_x, want_w);
}
