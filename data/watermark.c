/*
 * watermark.c - the reference txt2img invisible watermark ('dwtDct'), encoder and decoder.
 *
 * The rules are in watermark.h and sd-arch.md section 8.6; this file is about exactness:
 * - Colour: OpenCV's 8-bit BGR<->YUV conversions are fixed point (14 fractional bits, round
 *   half up by adding 1 << 13, arithmetic shift, saturate to 0..255). Written with integer
 *   floor division so negative values shift the same way on every compiler.
 * - Haar DWT: PyWavelets computes each output as the sum of two rounded products, first along
 *   axis 0 (rows of a column), then along axis 1; the inverse goes axis 1 then axis 0. Every
 *   product is stored through a volatile double, so no compiler fuses a*b + c*d into an FMA
 *   (that changes the rounding: GCC's -ffp-contract=fast or clang's made hundreds of pixels
 *   and some decoded bits differ from the reference). Pragmas are not enough: GCC ignores
 *   STDC FP_CONTRACT and clang's -ffp-contract=fast overrides its own.
 * - The reference passes (cA, (cV, cH, cD)) to the inverse: the two detail bands are swapped,
 *   which transposes every 2x2 pixel block of the U plane apart from the LL edit.
 * - The float U values go back into uint8 the way numpy casts: truncation toward zero, then
 *   modulo 256.
 *
 * The transform is local to 2x2 pixel blocks and the LL band's 4x4 embedding blocks are 8x8
 * pixel tiles, so the work runs tile by tile with no plane of coefficients in memory; the only
 * allocation is the U plane (w*h bytes) for the encoder and the per-bit votes for the decoder.
 */
#include "watermark.h"

#include <math.h>   /* defines: fmod, floor, fabs, copysign */
#include <stdlib.h> /* defines: malloc, calloc, free */
#include <string.h> /* defines: memset */

#define WM_SCALE      36.0 /* imwatermark EmbedMaxDct scales[1] (U) */
#define WM_BLOCK      4    /* its block size, in LL coefficients */
#define WM_MIN_PIXELS (256 * 256)

/* pywt's Haar filter coefficient, 1/sqrt(2) as PyWavelets stores it */
static const double HAAR_S = 0.7071067811865476;

#define WM_FAIL(e, what, w, h, nbytes)                                                             \
    ti_data_fail(e, "watermark: %s (image %dx%d, payload %d bytes)", what, w, h, nbytes)

int ti_watermark_fits(int w, int h) {
    return w > 0 && h > 0 && (long long)w * h >= WM_MIN_PIXELS;
}

static int check_args(int w, int h, int nbytes, struct ti_data_err *e) {
    if (!ti_watermark_fits(w, h))
        return WM_FAIL(e, "image too small: the reference needs width*height >= 256*256", w, h,
                       nbytes);
    if (nbytes < 1) return WM_FAIL(e, "the payload must have at least one byte", w, h, nbytes);
    if (nbytes > (1 << 24)) return WM_FAIL(e, "payload too long", w, h, nbytes);
    return 0;
}

/* ---- OpenCV 8-bit YUV (imgproc color_yuv: RGB2YUV / YUV2RGB integer paths) ---------------- */

/* (v + 2^13) >> 14 with an arithmetic shift, as floor division (portable for v < 0) */
static int descale14(int v) {
    int t = v + (1 << 13);
    return t >= 0 ? t >> 14 : -((-t + (1 << 14) - 1) >> 14);
}

static uint8_t sat8(int v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int yuv_y(int r, int g, int b) {
    return descale14(1868 * b + 9617 * g + 4899 * r);
}

static uint8_t yuv_u(int r, int g, int b) {
    int y = yuv_y(r, g, b);
    return sat8(descale14((b - y) * 8061 + (128 << 14)));
}

static uint8_t yuv_v(int r, int g, int b) {
    int y = yuv_y(r, g, b);
    return sat8(descale14((r - y) * 14369 + (128 << 14)));
}

/* Y, U, V -> R, G, B (YUV2BGR, channel order swapped back to RGB) */
static void yuv_to_rgb(int y, int u, int v, uint8_t *rgb) {
    int du = u - 128, dv = v - 128;
    rgb[0] = sat8(y + descale14(dv * 18678));
    rgb[1] = sat8(y + descale14(du * -6472 + dv * -9519));
    rgb[2] = sat8(y + descale14(du * 33292));
}

/* ---- Haar DWT of one 2x2 block, in PyWavelets' float order -------------------------------- */

/* lo = s*x1 + s*x0, hi = (-s)*x1 + s*x0: pywt's dec_lo/dec_hi applied to the pair (x0, x1) */
static void haar_pair(double x0, double x1, double *lo, double *hi) {
    volatile double p0 = HAAR_S * x0; /* volatile: see the file comment */
    volatile double p1 = HAAR_S * x1;
    volatile double n1 = -HAAR_S * x1;
    *lo = p1 + p0;
    *hi = n1 + p0;
}

/* out0 = s*lo + s*hi, out1 = s*lo + (-s)*hi: pywt's rec_lo/rec_hi for one coefficient pair */
static void ihaar_pair(double lo, double hi, double *out0, double *out1) {
    volatile double pl = HAAR_S * lo;
    volatile double ph = HAAR_S * hi;
    volatile double nh = -HAAR_S * hi;
    *out0 = pl + ph;
    *out1 = pl + nh;
}

/* The block [[a, b], [c, d]] of the U plane at (row y, col x) -> c[0..3] = cA, cH, cV, cD
 * (pywt dwt2 names: cH is detail along axis 0 / approximation along axis 1). */
static void dwt_block(const uint8_t *u, int stride, double c[4]) {
    double a = u[0], b = u[1], cc = u[stride], d = u[stride + 1];
    double l0, h0, l1, h1; /* axis 0: down column 0 and column 1 */
    haar_pair(a, cc, &l0, &h0);
    haar_pair(b, d, &l1, &h1);
    haar_pair(l0, l1, &c[0], &c[2]); /* axis 1 of L: aa, ad (= cV) */
    haar_pair(h0, h1, &c[1], &c[3]); /* axis 1 of H: da (= cH), dd */
}

/* numpy's float64 -> uint8 store: truncate toward zero, wrap modulo 256 */
static uint8_t to_u8(double v) {
    return (uint8_t)(unsigned)(int)v;
}

/* Inverse as the reference calls it, idwt2((cA, (cV, cH, cD))): the 'da' slot gets cV and the
 * 'ad' slot gets cH. Axis 1 first: (aa, ad) = (cA, cH) and (da, dd) = (cV, cD); then axis 0. */
static void idwt_block_swapped(const double c[4], uint8_t *u, int stride) {
    double r00, r01, r10, r11;
    ihaar_pair(c[0], c[1], &r00, &r01); /* row-lo: columns 0, 1 */
    ihaar_pair(c[2], c[3], &r10, &r11); /* row-hi */
    double o00, o10, o01, o11;
    ihaar_pair(r00, r10, &o00, &o10); /* column 0: rows 0, 1 */
    ihaar_pair(r01, r11, &o01, &o11);
    u[0] = to_u8(o00);
    u[1] = to_u8(o01);
    u[stride] = to_u8(o10);
    u[stride + 1] = to_u8(o11);
}

/* ---- the embedding rule on one 4x4 LL block ------------------------------------------------ */

/* Position 1..15 of the largest |value| in the row-major block (index 0 excluded; the first
 * one wins ties, as numpy.argmax). */
static int block_argmax(const double ll[16]) {
    int p = 1;
    double best = fabs(ll[1]);
    for (int i = 2; i < 16; i++) {
        if (fabs(ll[i]) > best) {
            best = fabs(ll[i]);
            p = i;
        }
    }
    return p;
}

/* numpy float64 floor_divide (npy_divmod): div = (a - fmod(a, b)) / b, floored, with the
 * "round to nearest when div is not yet integral" correction */
static double py_floordiv(double a, double b) {
    double mod = fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
    if (div == 0.0) return copysign(0.0, a / b);
    double fl = floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return fl;
}

static void embed_bit(double ll[16], int bit) {
    int p = block_argmax(ll);
    double v = ll[p];
    double q = py_floordiv(fabs(v), WM_SCALE);
    double t = q + 0.25;
    t = t + 0.5 * (double)bit;
    /* v >= 0: t*36; v < 0: (-1.0 * t) * 36, which is -(t*36) exactly */
    ll[p] = v >= 0.0 ? t * WM_SCALE : (-1.0 * t) * WM_SCALE;
}

static int read_bit(const double ll[16]) {
    double v = fabs(ll[block_argmax(ll)]);
    return fmod(v, WM_SCALE) > 0.5 * WM_SCALE;
}

/* ---- encoder / decoder --------------------------------------------------------------------- */

static int payload_bit(const uint8_t *bytes, long k) {
    return (bytes[k >> 3] >> (7 - (k & 7))) & 1;
}

int ti_watermark_encode(uint8_t *rgb, int w, int h, const uint8_t *bytes, int nbytes,
                        struct ti_data_err *e) {
    if (check_args(w, h, nbytes, e)) return -1;
    size_t n = (size_t)w * (size_t)h;
    uint8_t *u = calloc(n, 1); /* every byte is written below; calloc keeps analyzers sure */
    if (!u) return WM_FAIL(e, "out of memory for the U plane", w, h, nbytes);
    for (size_t i = 0; i < n; i++)
        u[i] = yuv_u(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);

    int r4 = h / 4 * 4, c4 = w / 4 * 4; /* the region the DWT covers */
    int tr = r4 / 8, tc = c4 / 8;       /* 8x8-pixel tiles = 4x4 LL blocks */
    long nbits = 8L * nbytes, num = 0;
    for (int ti = 0; ti < tr; ti++) {
        for (int tj = 0; tj < tc; tj++, num++) {
            double c[16][4], ll[16];
            uint8_t *t0 = u + (size_t)(8 * ti) * (size_t)w + (size_t)(8 * tj);
            for (int k = 0; k < 16; k++) {
                dwt_block(t0 + (size_t)(2 * (k / 4)) * (size_t)w + 2 * (k % 4), w, c[k]);
                ll[k] = c[k][0];
            }
            embed_bit(ll, payload_bit(bytes, num % nbits));
            for (int k = 0; k < 16; k++) {
                c[k][0] = ll[k];
                idwt_block_swapped(c[k], t0 + (size_t)(2 * (k / 4)) * (size_t)w + 2 * (k % 4), w);
            }
        }
    }
    /* The rest of the DWT region (LL rows/columns beyond the last whole block) only makes the
     * float round trip with the swapped details. */
    for (int y = 0; y < r4; y += 2) {
        for (int x = (y < 8 * tr) ? 8 * tc : 0; x < c4; x += 2) {
            double c[4];
            uint8_t *p = u + (size_t)y * (size_t)w + (size_t)x;
            dwt_block(p, w, c);
            idwt_block_swapped(c, p, w);
        }
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *px = rgb + 3 * i;
        int y = yuv_y(px[0], px[1], px[2]);
        int v = yuv_v(px[0], px[1], px[2]);
        yuv_to_rgb(y, u[i], v, px);
    }
    free(u);
    return 0;
}

int ti_watermark_decode(const uint8_t *rgb, int w, int h, uint8_t *bytes, int nbytes,
                        struct ti_data_err *e) {
    if (check_args(w, h, nbytes, e)) return -1;
    long nbits = 8L * nbytes;
    long *ones = calloc((size_t)nbits, sizeof *ones);
    long *count = calloc((size_t)nbits, sizeof *count);
    if (!ones || !count) {
        free(ones);
        free(count);
        return WM_FAIL(e, "out of memory for the bit votes", w, h, nbytes);
    }
    int tr = h / 4 * 4 / 8, tc = w / 4 * 4 / 8;
    long num = 0;
    for (int ti = 0; ti < tr; ti++) {
        for (int tj = 0; tj < tc; tj++, num++) {
            double ll[16];
            for (int k = 0; k < 16; k++) {
                uint8_t blk[4]; /* the 2x2 U block, converted from RGB on the fly */
                for (int q = 0; q < 4; q++) {
                    int py = 8 * ti + 2 * (k / 4) + q / 2;
                    int px = 8 * tj + 2 * (k % 4) + q % 2;
                    const uint8_t *s = rgb + 3 * ((size_t)py * (size_t)w + (size_t)px);
                    blk[q] = yuv_u(s[0], s[1], s[2]);
                }
                double c[4];
                dwt_block(blk, 2, c);
                ll[k] = c[0];
            }
            ones[num % nbits] += read_bit(ll);
            count[num % nbits]++;
        }
    }
    memset(bytes, 0, (size_t)nbytes);
    for (long k = 0; k < nbits; k++) {
        /* numpy: mean of the 0/1 votes (NaN for none, which compares false), * 255 > 127 */
        int bit = count[k] > 0 && ((double)ones[k] / (double)count[k]) * 255.0 > 127.0;
        if (bit) bytes[k >> 3] |= (uint8_t)(0x80 >> (k & 7));
    }
    free(ones);
    free(count);
    return 0;
}
