/*
 * shapes_classify.c - the rule-based classifier of shapes_classify.h: segmentation by distance
 * from the border colour, palette matching, texture by label changes, shape by radial profile
 * against templates.
 *
 * The templates come from this file's own geometric descriptions of the shapes (polygons, the
 * circle and the sextic heart), rasterised finely once; the generator's drawing code is not
 * used, so a drawing bug shows up as a misclassification.
 */
#include "shapes_classify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- templates ------------------------------------------------------------------------------- */

/* The shapes, in units of their outer scale, y down, upright:
 *   circle   radius 1                    ring     radii 0.55..1 (profile: the circle's)
 *   square   half side 0.8               diamond  |x| + |y| <= 1.1
 *   triangle equilateral, circumradius 1.15, a vertex up
 *   star     five points, radii 1.15 (tips, one up) and 0.5
 *   cross    two bars 2 x 0.64
 *   heart    (x^2 + y^2 - 1)^3 <= x^2 y^3 with x = 1.1 u, y = 0.12 - 1.1 v */
struct poly {
    int n;
    double v[12][2];
};

static int poly_inside(const struct poly *p, double x, double y) {
    int in = 0;
    for (int i = 0, j = p->n - 1; i < p->n; j = i++) {
        double xi = p->v[i][0], yi = p->v[i][1], xj = p->v[j][0], yj = p->v[j][1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) in = !in;
    }
    return in;
}

static void regular(struct poly *p, int n, double r_even, double r_odd, double start) {
    p->n = n;
    for (int k = 0; k < n; k++) {
        double t = start + k * 2 * M_PI / n, r = k % 2 ? r_odd : r_even;
        p->v[k][0] = r * cos(t);
        p->v[k][1] = r * sin(t);
    }
}

static int template_inside(int shape, const struct poly *p, double x, double y) {
    switch (shape) {
    case TI_SHAPE_CIRCLE:
    case TI_SHAPE_RING: return x * x + y * y <= 1.0; /* filled: holes are scored apart */
    case TI_SHAPE_HEART: {
        double hx = 1.1 * x, hy = 0.12 - 1.1 * y, q = hx * hx + hy * hy - 1.0;
        return q * q * q <= hx * hx * hy * hy * hy;
    }
    default: return poly_inside(p, x, y);
    }
}

/* Separable Gaussian blur of a g x g plane (zero outside), in place; tmp holds g*g floats. */
static void blur_grid(float *pl, float *tmp, int g, double sigma) {
    int rad = (int)ceil(3 * sigma);
    float k[256] = {0};
    double sum = 0;
    if (rad > 127) rad = 127;
    for (int d = -rad; d <= rad; d++)
        sum += k[d + rad] = (float)exp(-0.5 * d * d / (sigma * sigma));
    for (int d = 0; d <= 2 * rad; d++)
        k[d] = (float)(k[d] / sum);
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass ? tmp : pl;
        float *dst = pass ? pl : tmp;
        for (int y = 0; y < g; y++)
            for (int x = 0; x < g; x++) {
                float acc = 0;
                for (int d = -rad; d <= rad; d++) {
                    int xx = pass ? x : x + d, yy = pass ? y + d : y;
                    if (xx >= 0 && yy >= 0 && xx < g && yy < g)
                        acc += k[d + rad] * src[yy * g + xx];
                }
                dst[y * g + x] = acc;
            }
    }
}

int ti_shapes_classifier_init(struct ti_shapes_classifier *c, struct ti_data_err *e) {
    memset(c, 0, sizeof *c);
    /* a G x G grid over [-1.3, 1.3]^2 (61.5 cells per unit), 4 x 4 samples per cell */
    enum { G = 160 };
    const double lo = -1.3, cell = 2.6 / G;
    float *cov = malloc(sizeof(float) * 2 * G * G);
    if (!cov) return ti_data_fail(e, "shapes classifier: out of memory for the templates");
    float *tmp = cov + G * G;
    for (int s = 0; s < TI_SHAPE_COUNT; s++) {
        struct poly p = {0};
        switch (s) {
        case TI_SHAPE_SQUARE: regular(&p, 4, 0.8 * sqrt(2.0), 0.8 * sqrt(2.0), M_PI / 4); break;
        case TI_SHAPE_DIAMOND: regular(&p, 4, 1.1, 1.1, 0); break;
        case TI_SHAPE_TRIANGLE: regular(&p, 3, 1.15, 1.15, -M_PI / 2); break;
        case TI_SHAPE_STAR: regular(&p, 10, 1.15, 0.5, -M_PI / 2); break;
        case TI_SHAPE_CROSS: {
            static const double v[12][2] = {
                {-0.32, -1}, {0.32, -1}, {0.32, -0.32}, {1, -0.32}, {1, 0.32},   {0.32, 0.32},
                {0.32, 1},   {-0.32, 1}, {-0.32, 0.32}, {-1, 0.32}, {-1, -0.32}, {-0.32, -0.32}};
            p.n = 12;
            memcpy(p.v, v, sizeof v);
            break;
        }
        default: break;
        }
        c->hole[s] = s == TI_SHAPE_RING ? 0.55 * 0.55 : 0.0;
        for (int b = 0; b < TI_SHAPES_NBLUR; b++) {
            for (int iy = 0; iy < G; iy++)
                for (int ix = 0; ix < G; ix++) {
                    int in = 0;
                    for (int sy = 0; sy < 4; sy++)
                        for (int sx = 0; sx < 4; sx++)
                            in += template_inside(s, &p, lo + cell * (ix + (sx + 0.5) / 4),
                                                  lo + cell * (iy + (sy + 0.5) / 4));
                    cov[iy * G + ix] = in / 16.0f;
                }
            /* blur by a fraction of the radius, then cut at half coverage as the classifier
             * cuts an image at half contrast */
            double sigma = 0.07 * b / cell;
            if (b) blur_grid(cov, tmp, G, sigma);
            double sx = 0, sy = 0, cnt = 0;
            for (int iy = 0; iy < G; iy++)
                for (int ix = 0; ix < G; ix++) {
                    uint8_t m = cov[iy * G + ix] >= 0.5f;
                    tmp[iy * G + ix] = m;
                    sx += m * (ix + 0.5);
                    sy += m * (iy + 0.5);
                    cnt += m;
                }
            double cx = sx / cnt, cy = sy / cnt, r[TI_SHAPES_NDIR], mean = 0;
            for (int j = 0; j < TI_SHAPES_NDIR; j++) {
                double t = 2 * M_PI * j / TI_SHAPES_NDIR, dx = cos(t), dy = sin(t);
                r[j] = 0;
                for (int step = 1; step * 0.125 < G; step++) {
                    double d = step * 0.125, x = cx + d * dx - 0.5, y = cy + d * dy - 0.5;
                    int x0 = (int)floor(x), y0 = (int)floor(y);
                    double fx = x - x0, fy = y - y0, v = 0;
                    for (int k = 0; k < 4; k++) {
                        int xx = x0 + (k & 1), yy = y0 + (k >> 1);
                        if (xx < 0 || yy < 0 || xx >= G || yy >= G) continue;
                        v += ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy) * tmp[yy * G + xx];
                    }
                    if (v >= 0.5) r[j] = d;
                }
                mean += r[j];
            }
            mean /= TI_SHAPES_NDIR;
            for (int j = 0; j < TI_SHAPES_NDIR; j++)
                c->profile[s][b][j] = (float)(r[j] / mean);
        }
    }
    free(cov);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static double dist3(const double a[3], const uint8_t b[3]) {
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

static int cmp_u8(const void *a, const void *b) {
    return (int)*(const uint8_t *)a - (int)*(const uint8_t *)b;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Offers the distance d to a running best and second best; 1 when d is the new best. */
static int take_best(double d, double *best, double *second) {
    if (d < *best) {
        *second = *best;
        *best = d;
        return 1;
    }
    if (d < *second) *second = d;
    return 0;
}

/* 1 - best / second (0 when both are 0). */
static double margin_conf(double best, double second) {
    if (second <= 0) return 0;
    double c = 1.0 - best / second;
    return c < 0 ? 0 : c > 1 ? 1 : c;
}

/* Bilinear sample of a 0/1 mask, 0 outside. */
static double mask_at(const uint8_t *m, int w, int h, double x, double y) {
    x -= 0.5;
    y -= 0.5;
    int x0 = (int)floor(x), y0 = (int)floor(y);
    double fx = x - x0, fy = y - y0, acc = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx, yy = y0 + dy;
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            double wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
            acc += wgt * m[(size_t)yy * w + xx];
        }
    return acc;
}

/* ---- the classifier -------------------------------------------------------------------------- */

enum { M_BG = 0, M_FG = 1, M_OBJ = 2, M_OUT = 3 }; /* mask states during segmentation */

struct work {
    int w, h;
    size_t n;
    float *smooth;   /* 3n: the image filtered with [1 2 1] x [1 2 1] / 16 */
    float *dist;     /* n: distance of `smooth` from the background colour */
    uint8_t *mask;   /* n: M_* states; M_OBJ marks the object */
    uint8_t *filled; /* n: object + holes */
    int *stack;      /* n: flood fill stack, then pixel lists */
};

static int is_border(int x, int y, int w, int h) {
    return x < 2 || y < 2 || x >= w - 2 || y >= h - 2;
}

/* Relabels the 8-connected region of `from` pixels around seed (itself `from`) as `to`, with
 * stack (w * h ints) as the work list. Returns the region's area. */
static size_t flood(uint8_t *mask, int *stack, int w, int h, int seed, uint8_t from, uint8_t to) {
    size_t area = 0;
    int sp = 0;
    stack[sp++] = seed;
    mask[seed] = to;
    while (sp) {
        int p = stack[--sp], x = p % w, y = p / w;
        area++;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int xx = x + dx, yy = y + dy;
                if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                int q = yy * w + xx;
                if (mask[q] == from) {
                    mask[q] = to;
                    stack[sp++] = q;
                }
            }
    }
    return area;
}

/* Thresholds dist at thr and keeps the largest 8-connected component as M_OBJ. Returns its
 * area. */
static size_t segment(struct work *wk, double thr) {
    int w = wk->w, h = wk->h;
    uint8_t *mask = wk->mask;
    int *stack = wk->stack;
    for (size_t i = 0; i < wk->n; i++)
        mask[i] = wk->dist[i] > thr ? M_FG : M_BG;
    size_t best_area = 0;
    int best_seed = -1;
    for (size_t i = 0; i < wk->n; i++) {
        if (mask[i] != M_FG) continue;
        size_t area = flood(mask, stack, w, h, (int)i, M_FG, M_OUT);
        if (area > best_area) {
            best_area = area;
            best_seed = (int)i;
        }
    }
    if (best_seed < 0) return 0;
    /* relabel the winner M_OBJ; every other pixel counts as background */
    flood(mask, stack, w, h, best_seed, M_OUT, M_OBJ);
    return best_area;
}

/* Object pixels at least `depth` pixels (4-neighbour steps) inside the object, into stack. */
static size_t interior(struct work *wk, int depth) {
    int w = wk->w, h = wk->h;
    size_t cnt = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (wk->mask[i] != M_OBJ) continue;
            int in = 1;
            for (int d = 1; d <= depth && in; d++)
                in = x >= d && y >= d && x < w - d && y < h - d && wk->mask[i - d] == M_OBJ &&
                     wk->mask[i + d] == M_OBJ && wk->mask[i - (size_t)d * w] == M_OBJ &&
                     wk->mask[i + (size_t)d * w] == M_OBJ;
            if (in) wk->stack[cnt++] = (int)i;
        }
    return cnt;
}

/* Distance from p to the segment a-b, and the position t of the nearest point (0 at a). */
static double seg_dist(const double p[3], const double a[3], const double b[3], double *t_out) {
    double ab[3], ap[3], l2 = 0, dot = 0;
    for (int k = 0; k < 3; k++) {
        ab[k] = b[k] - a[k];
        ap[k] = p[k] - a[k];
        l2 += ab[k] * ab[k];
        dot += ab[k] * ap[k];
    }
    double t = l2 > 0 ? dot / l2 : 0;
    if (t_out) *t_out = t;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double d2 = 0;
    for (int k = 0; k < 3; k++) {
        double e = ap[k] - t * ab[k];
        d2 += e * e;
    }
    return sqrt(d2);
}

static void palette_f(int c, double col[3], double sh[3]) {
    uint8_t a[3], b[3];
    ti_colour_rgb((enum ti_colour)c, a);
    ti_colour_shade((enum ti_colour)c, b);
    for (int k = 0; k < 3; k++) {
        col[k] = a[k];
        sh[k] = b[k];
    }
}

/* Fraction of the variance of v (at pixels idx, mean removed) carried by the frequency pair
 * +-(fx, fy) cycles per pixel: 2 |sum v e^(-2 pi i f.x)|^2 / (n sum v^2); 1 for a pure
 * sinusoid, 8/pi^2 for a square wave's fundamental, ~2/n for white noise. */
static double periodic_fraction(const double *v, const int *idx, size_t n, int w, double fx,
                                double fy, double ss) {
    double re = 0, im = 0;
    for (size_t k = 0; k < n; k++) {
        int xi = idx[k] % w, yi = idx[k] / w;
        double x = xi, y = yi, ph = 2 * M_PI * (fx * x + fy * y);
        re += v[k] * cos(ph);
        im -= v[k] * sin(ph);
    }
    return ss > 0 ? 2 * (re * re + im * im) / ((double)n * ss) : 0;
}

int ti_shapes_classify(struct ti_shapes_label *out, const struct ti_shapes_classifier *c,
                       const uint8_t *px, int w, int h, struct ti_data_err *e) {
    if (!out || !c || !px) return ti_data_fail(e, "shapes classify: NULL argument");
    if (w < 8 || h < 8 || w > 4096 || h > 4096)
        return ti_data_fail(e, "shapes classify: image size %dx%d: expected 8..4096 per side", w,
                            h);
    memset(out, 0, sizeof *out);
    out->shape = out->colour = out->texture = out->background = -1;
    struct work wk = {w, h, (size_t)w * h, NULL, NULL, NULL, NULL, NULL};
    size_t n = wk.n;
    int nb = 0; /* border pixels */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            nb += is_border(x, y, w, h);
    wk.smooth = malloc(sizeof(float) * 4 * n);
    wk.mask = calloc(n, 1);
    wk.filled = calloc(n, 1);
    wk.stack = malloc(sizeof(int) * n);
    uint8_t *border = malloc((size_t)nb);
    double *tv = malloc(sizeof(double) * n);
    if (!wk.smooth || !wk.mask || !wk.filled || !wk.stack || !border || !tv) {
        free(wk.smooth);
        free(wk.mask);
        free(wk.filled);
        free(wk.stack);
        free(border);
        free(tv);
        return ti_data_fail(e, "shapes classify: out of memory for a %dx%d image", w, h);
    }
    wk.dist = wk.smooth + 3 * n;
    uint8_t *mask = wk.mask, *filled = wk.filled;
    int *stack = wk.stack;

    /* background: per-channel median of the 2-pixel border */
    double bg[3];
    for (int k = 0; k < 3; k++) {
        int m = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (is_border(x, y, w, h)) border[m++] = px[((size_t)y * w + x) * 3 + k];
        qsort(border, (size_t)m, 1, cmp_u8);
        int mid = m / 2;
        bg[k] = border[mid];
    }
    {
        double best = 1e9, second = 1e9;
        for (int k = 0; k < TI_COLOUR_BACKGROUND_COUNT; k++) {
            uint8_t rgb[3];
            ti_colour_rgb((enum ti_colour)k, rgb);
            double d = dist3(bg, rgb);
            if (take_best(d, &best, &second)) out->background = k;
        }
        out->background_conf = margin_conf(best, second);
    }

    /* distances of the lightly smoothed image from the background (noise robustness) */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) {
                double acc = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx < 0 ? 0 : x + dx >= w ? w - 1 : x + dx;
                        int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                        acc += (2 - abs(dx)) * (2 - abs(dy)) * px[((size_t)yy * w + xx) * 3 + k];
                    }
                wk.smooth[((size_t)y * w + x) * 3 + k] = (float)(acc / 16);
            }
    double spread = 0;
    for (size_t i = 0; i < n; i++) {
        double p[3] = {wk.smooth[i * 3], wk.smooth[i * 3 + 1], wk.smooth[i * 3 + 2]};
        double d0 = p[0] - bg[0], d1 = p[1] - bg[1], d2 = p[2] - bg[2];
        wk.dist[i] = (float)sqrt(d0 * d0 + d1 * d1 + d2 * d2);
        if (is_border((int)(i % (size_t)w), (int)(i / (size_t)w), w, h)) spread += wk.dist[i];
    }
    spread /= nb;

    /* object: a permissive threshold first, then half the object's own contrast (the 10th
     * percentile of its interior's distances: the weaker of a texture's two colours), so a
     * blurred edge is cut where a sharp one would be */
    double thr = 30.0 + 3.0 * spread;
    size_t area = segment(&wk, thr);
    if (area) {
        size_t ni = interior(&wk, 1);
        if (ni < 8) ni = interior(&wk, 0);
        for (size_t k = 0; k < ni; k++)
            tv[k] = wk.dist[stack[k]];
        qsort(tv, ni, sizeof(double), cmp_double);
        double contrast = tv[ni / 10];
        if (0.5 * contrast > thr) area = segment(&wk, 0.5 * contrast);
    }
    out->area_frac = (double)area / (double)n;
    if (area == 0 || out->area_frac < 0.01 || out->area_frac > 0.6) goto done;
    out->found = 1;

    /* holes: background not 4-connected to the border; filled = object + holes */
    {
        int sp = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t i = (size_t)y * w + x;
                filled[i] = mask[i] == M_OBJ;
                if ((x == 0 || y == 0 || x == w - 1 || y == h - 1) && mask[i] != M_OBJ) {
                    filled[i] = 2; /* reached from outside */
                    stack[sp++] = (int)i;
                }
            }
        while (sp) {
            int p = stack[--sp], x = p % w, y = p / w;
            static const int d4[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
            for (int k = 0; k < 4; k++) {
                int xx = x + d4[k][0], yy = y + d4[k][1];
                if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
                int q = yy * w + xx;
                if (filled[q] == 0) {
                    filled[q] = 2;
                    stack[sp++] = q;
                }
            }
        }
        size_t holes = 0, fill_area = 0;
        for (size_t i = 0; i < n; i++) {
            if (filled[i] == 0) holes++;
            filled[i] = filled[i] != 2; /* object or hole */
            fill_area += filled[i];
        }
        out->hole_frac = (double)holes / (double)fill_area;
    }

    /* colour: the palette colour whose segment colour..shade lies nearest the interior (a
     * texture paints both ends; blur and JPEG mix them along the segment) */
    size_t n_int = interior(&wk, 2);
    if (n_int < 30) n_int = interior(&wk, 1);
    if (n_int < 12) n_int = interior(&wk, 0);
    {
        double best = 1e18, second = 1e18;
        for (int k = 0; k < TI_COLOUR_COUNT; k++) {
            if (!ti_colour_is_object((enum ti_colour)k)) continue;
            double col[3], sh[3], acc = 0;
            palette_f(k, col, sh);
            for (size_t t = 0; t < n_int; t++) {
                const uint8_t *p = px + (size_t)stack[t] * 3;
                double pd[3] = {p[0], p[1], p[2]};
                acc += seg_dist(pd, col, sh, NULL);
            }
            acc /= (double)n_int;
            if (take_best(acc, &best, &second)) out->colour = k;
        }
        out->colour_conf = margin_conf(best, second);
    }

    /* texture: each object pixel's position t along colour -> shade. Where the colour, shade
     * and background are not collinear, p - bg = a (c - bg) + b (s - c) is solved per pixel:
     * t = b / a, over pixels with a >= 0.75, so edge pixels mixed with the background do not
     * pass for texture. Otherwise (white, black and grey combinations) t is the projection on
     * c -> s over the 2-deep interior. Then the share of t's variance at the textures'
     * frequencies (stripes and dots: period 6 along an axis, dots on both; checks: 4 px
     * cells, a diagonal period-8 pattern), searched over nearby periods. */
    {
        double col[3], sh[3], u[3], v[3], uu = 0, uv = 0, vv = 0, mean = 0, ss = 0;
        palette_f(out->colour, col, sh);
        for (int k = 0; k < 3; k++) {
            u[k] = col[k] - bg[k];
            v[k] = sh[k] - col[k];
            uu += u[k] * u[k];
            uv += u[k] * v[k];
            vv += v[k] * v[k];
        }
        double det = uu * vv - uv * uv;
        size_t nt = 0;
        if (det > 0.15 * uu * vv) {
            n_int = interior(&wk, 1);
            if (n_int < 12) n_int = interior(&wk, 0);
            for (size_t t = 0; t < n_int; t++) {
                const uint8_t *p = px + (size_t)stack[t] * 3;
                double uq = 0, vq = 0;
                for (int k = 0; k < 3; k++) {
                    uq += u[k] * (p[k] - bg[k]);
                    vq += v[k] * (p[k] - bg[k]);
                }
                double a = (vv * uq - uv * vq) / det, b = (uu * vq - uv * uq) / det;
                if (a < 0.75) continue;
                stack[nt] = stack[t];
                tv[nt++] = b / a;
            }
        }
        if (nt < 12) {
            n_int = interior(&wk, 2);
            if (n_int < 30) n_int = interior(&wk, 1);
            if (n_int < 12) n_int = interior(&wk, 0);
            for (size_t t = 0; t < n_int; t++) {
                const uint8_t *p = px + (size_t)stack[t] * 3;
                double pd[3] = {p[0], p[1], p[2]};
                seg_dist(pd, col, sh, &tv[t]);
            }
            nt = n_int;
        }
        n_int = nt;
        for (size_t t = 0; t < n_int; t++)
            mean += tv[t];
        mean /= (double)n_int;
        for (size_t t = 0; t < n_int; t++) {
            tv[t] -= mean;
            ss += tv[t] * tv[t];
        }
        double scale = (w < h ? w : h) / 64.0, eh = 0, ev = 0, ed = 0;
        for (int k = -2; k <= 2; k++) {
            double f = 1.0 / ((6.0 + 0.5 * k) * scale);
            eh = fmax(eh, periodic_fraction(tv, stack, n_int, w, f, 0, ss));
            ev = fmax(ev, periodic_fraction(tv, stack, n_int, w, 0, f, ss));
            double fd = 1.0 / ((8.0 + 0.5 * k) * scale);
            ed = fmax(ed, periodic_fraction(tv, stack, n_int, w, fd, fd, ss) +
                              periodic_fraction(tv, stack, n_int, w, fd, -fd, ss));
        }
        double std = sqrt(ss / (double)n_int);
        out->texture_std = std;
        out->texture_energy[0] = eh;
        out->texture_energy[1] = ev;
        out->texture_energy[2] = ed;
        /* the periodic part's RMS amplitude (in units of the colour -> shade distance): a
         * texture drawn at full contrast has ~0.3-0.5, blur and JPEG shrink it; plain objects
         * stay under ~0.07 (noise, compression blocks, edges) */
        double hi = fmax(eh, ev), lo = fmin(eh, ev), total = eh + ev + ed;
        double amp = std * sqrt(fmin(total, 1.0));
        out->texture_amp = amp;
        if (amp < TI_SHAPES_MIN_TEXTURE) {
            out->texture = TI_TEXTURE_PLAIN;
            out->texture_conf = 1.0 - amp / TI_SHAPES_MIN_TEXTURE;
        } else if (ed > hi) {
            out->texture = TI_TEXTURE_CHECKS;
            out->texture_conf = margin_conf(hi, ed);
        } else if (lo < 0.35 * hi) {
            out->texture = TI_TEXTURE_STRIPES;
            out->texture_conf = 1.0 - lo / (0.35 * hi);
        } else {
            out->texture = TI_TEXTURE_DOTS;
            out->texture_conf = fmin(1.0, (lo / hi - 0.35) / 0.3);
        }
    }

    /* shape: radial profile of the filled object from its centroid */
    {
        double sx = 0, sy = 0, cnt = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (filled[(size_t)y * w + x]) {
                    sx += x + 0.5;
                    sy += y + 0.5;
                    cnt++;
                }
        out->cx = sx / cnt;
        out->cy = sy / cnt;
        /* rays need not go past the farthest filled pixel (+2: the bilinear footprint) */
        double reach = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                if (filled[(size_t)y * w + x])
                    reach = fmax(reach, hypot(x + 0.5 - out->cx, y + 0.5 - out->cy));
        reach += 2;
        double r[TI_SHAPES_NDIR], mean = 0;
        for (int j = 0; j < TI_SHAPES_NDIR; j++) {
            double t = 2 * M_PI * j / TI_SHAPES_NDIR, dx = cos(t), dy = sin(t);
            r[j] = 0;
            for (int step = 1; step * 0.125 < reach; step++) {
                double d = step * 0.125,
                       v = mask_at(filled, w, h, out->cx + d * dx, out->cy + d * dy);
                if (v >= 0.5) r[j] = d;
            }
            mean += r[j];
        }
        mean /= TI_SHAPES_NDIR;
        out->radius = mean;
        if (mean <= 0) mean = 1;
        const int max_shift = 5; /* 15 degrees */
        double best = 1e9, second = 1e9;
        for (int s = 0; s < TI_SHAPE_COUNT; s++) {
            double bs = 1e9;
            for (int b = 0; b < TI_SHAPES_NBLUR; b++)
                for (int k = -max_shift; k <= max_shift; k++) {
                    double acc = 0;
                    for (int j = 0; j < TI_SHAPES_NDIR; j++) {
                        int jj = ((j - k) % TI_SHAPES_NDIR + TI_SHAPES_NDIR) % TI_SHAPES_NDIR;
                        double d = r[j] / mean - c->profile[s][b][jj];
                        acc += d * d;
                    }
                    acc = sqrt(acc / TI_SHAPES_NDIR);
                    if (acc < bs) bs = acc;
                }
            /* holes: any clear hole says ring (blur shrinks a ring's 0.30 to ~0.1) */
            bs += c->hole[s] > 0 ? fmax(0.0, 0.12 - out->hole_frac) : out->hole_frac;
            out->shape_dist[s] = bs;
            if (take_best(bs, &best, &second)) out->shape = s;
        }
        out->shape_conf = margin_conf(best, second);
        if (best > TI_SHAPES_MAX_SHAPE_DIST) {
            out->shape = -1;
            out->shape_conf = 0;
        }
    }

done:
    free(wk.smooth);
    free(wk.mask);
    free(wk.filled);
    free(wk.stack);
    free(border);
    free(tv);
    return 0;
}
