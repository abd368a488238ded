/*
 * resize.c - ti_image_resize: Pillow 9.4's Image.resize on 8-bit RGB, bit for bit.
 *
 * The algorithm (Pillow's libImaging/Resample.c, reimplemented from its documented behaviour):
 *  - For each axis, scale = in / out and filterscale = max(scale, 1): when shrinking, the
 *    filter is stretched by the shrink factor (an antialiasing low-pass); support = filter
 *    support * filterscale.
 *  - Output sample i is centred at (i + 0.5) * scale; it reads input samples
 *    xmin = (int)(center - support + 0.5) (clamped to 0) to xmax = (int)(center + support + 0.5)
 *    (clamped to in), with weights filter((x - center + 0.5) / filterscale), normalised to sum 1.
 *  - Weights become 22-bit fixed point (round half away from zero); each output is
 *    (2^21 + sum(px * weight)) >> 22, clipped to 0..255.
 *  - The horizontal pass runs first, into an intermediate of the output width and the rows the
 *    vertical pass needs, rounded to 8 bits; then the vertical pass. An axis whose size does not
 *    change is not filtered at all; an unchanged size overall is a copy.
 *  - NEAREST is not a convolution in Pillow: it is an affine map, source x = (int)(x0 + k*dx)
 *    with x0 = dx/2 and the position advanced by repeated addition of dx = in/out (doubles).
 */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double filter_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_bicubic(double x) {
    const double a = -0.5; /* Keys' cubic with a = -0.5, as Pillow */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double filter_lanczos(double x) {
    /* truncated sinc, three lobes */
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

struct filter {
    double (*fn)(double);
    double support;
};

/* Per output sample: bounds[2i] = first input index, bounds[2i+1] = count, and ksize fixed-point
 * weights at kk[i*ksize]. Returns ksize, or 0 when out of memory. */
static int precompute(int in_size, int out_size, const struct filter *f, int **bounds_out,
                      int32_t **kk_out) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)ksize * sizeof *k);
    int32_t *kk = malloc((size_t)out_size * ksize * sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k), free(kk), free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++) {
            if (ww != 0.0) k[x] /= ww;
        }
        for (; x < ksize; x++)
            k[x] = 0;
        for (x = 0; x < ksize; x++) {
            double v = k[x] * (1 << PRECISION_BITS);
            kk[xx * ksize + x] = (int32_t)(k[x] < 0 ? -0.5 + v : 0.5 + v);
        }
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's lookup by (in >> PRECISION_BITS) */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out (out_w x rows) from rows [row0, row0 + rows) of in (in_w wide) */
static void pass_horizontal(uint8_t *out, int out_w, const uint8_t *in, int in_w, int row0,
                            int rows, int ksize, const int *bounds, const int32_t *kk) {
    for (int yy = 0; yy < rows; yy++) {
        const uint8_t *src = in + (size_t)(yy + row0) * in_w * 3;
        uint8_t *dst = out + (size_t)yy * out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const uint8_t *p = src + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[xx * 3] = clip8(s0), dst[xx * 3 + 1] = clip8(s1), dst[xx * 3 + 2] = clip8(s2);
        }
    }
}

static void pass_vertical(uint8_t *out, int out_h, const uint8_t *in, int w, int ksize,
                          const int *bounds, const int32_t *kk) {
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const int32_t *k = kk + (size_t)yy * ksize;
        uint8_t *dst = out + (size_t)yy * w * 3;
        for (int xx = 0; xx < w; xx++) {
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int y = 0; y < ymax; y++) {
                const uint8_t *p = in + ((size_t)(y + ymin) * w + xx) * 3;
                s0 += p[0] * k[y];
                s1 += p[1] * k[y];
                s2 += p[2] * k[y];
            }
            dst[xx * 3] = clip8(s0), dst[xx * 3 + 1] = clip8(s1), dst[xx * 3 + 2] = clip8(s2);
        }
    }
}

static int resize_nearest(struct ti_image *dst, const struct ti_image *src, int w, int h,
                          struct ti_data_err *e) {
    if (ti_image_alloc(dst, w, h, e)) return -1;
    int *xin = malloc((size_t)w * sizeof *xin);
    if (!xin) {
        ti_image_free(dst);
        return TI_DATA_FAIL(e, "resize: out of memory");
    }
    double a0 = (double)src->w / w, a4 = (double)src->h / h;
    /* Pillow's ImagingScaleAffine: positions by repeated addition; a negative position would
     * be outside (never here: both start at half a step) */
    double xo = a0 * 0.5;
    for (int x = 0; x < w; x++) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        xin[x] = xi < src->w ? xi : src->w - 1;
        xo += a0;
    }
    double yo = a4 * 0.5;
    for (int y = 0; y < h; y++) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        if (yi >= src->h) yi = src->h - 1;
        const uint8_t *srow = src->px + (size_t)yi * src->w * 3;
        uint8_t *drow = dst->px + (size_t)y * w * 3;
        for (int x = 0; x < w; x++)
            memcpy(drow + x * 3, srow + xin[x] * 3, 3);
        yo += a4;
    }
    free(xin);
    return 0;
}

int ti_image_resize(struct ti_image *dst, const struct ti_image *src, int w, int h,
                    enum ti_resample r, struct ti_data_err *e) {
    memset(dst, 0, sizeof *dst);
    if (w < 1 || h < 1 || w > TI_IMAGE_MAX_SIDE || h > TI_IMAGE_MAX_SIDE ||
        (long)w * h > TI_IMAGE_MAX_PIXELS) {
        return TI_DATA_FAIL(e, "resize %dx%d -> %dx%d: expected 1..%d per side, at most %ld pixels",
                            src->w, src->h, w, h, TI_IMAGE_MAX_SIDE, (long)TI_IMAGE_MAX_PIXELS);
    }
    if (w == src->w && h == src->h) return ti_image_copy(dst, src, e);
    struct filter f;
    switch (r) {
    case TI_RESAMPLE_BILINEAR: f.fn = filter_bilinear, f.support = 1.0; break;
    case TI_RESAMPLE_BICUBIC: f.fn = filter_bicubic, f.support = 2.0; break;
    case TI_RESAMPLE_LANCZOS: f.fn = filter_lanczos, f.support = 3.0; break;
    case TI_RESAMPLE_NEAREST: return resize_nearest(dst, src, w, h, e);
    default: return TI_DATA_FAIL(e, "resize: unknown filter %d", (int)r);
    }
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *tmp = NULL;
    int ksh = precompute(src->w, w, &f, &bh, &kh);
    int ksv = precompute(src->h, h, &f, &bv, &kv);
    if (!ksh || !ksv) goto oom;
    int need_h = w != src->w, need_v = h != src->h;
    const uint8_t *cur = src->px;
    int cur_w = src->w;
    if (need_h) {
        /* only the input rows the vertical pass reads */
        int first = bv[0], last = bv[(h - 1) * 2] + bv[(h - 1) * 2 + 1];
        for (int i = 0; i < h; i++)
            bv[i * 2] -= first;
        if (!need_v) first = 0, last = src->h;
        tmp = malloc((size_t)w * (last - first) * 3);
        if (!tmp) goto oom;
        pass_horizontal(tmp, w, src->px, src->w, first, last - first, ksh, bh, kh);
        cur = tmp;
        cur_w = w;
    }
    if (ti_image_alloc(dst, w, h, e)) goto fail;
    if (need_v) {
        pass_vertical(dst->px, h, cur, cur_w, ksv, bv, kv);
    } else {
        memcpy(dst->px, cur, (size_t)w * h * 3);
    }
    free(bh), free(bv), free(kh), free(kv), free(tmp);
    return 0;
oom:
    ti_data_set_err(e, "resize %dx%d -> %dx%d: out of memory", src->w, src->h, w, h);
fail:
    free(bh), free(bv), free(kh), free(kv), free(tmp);
    return -1;
}
