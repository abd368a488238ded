/*
 * shapes.c - the synthetic shapes data set (shapes.h): attribute sampling, captions, the
 * supersampled renderer and the degradations used to measure the classifier's robustness.
 *
 * Randomness: every sample has its own xoshiro256** stream seeded through splitmix64 from
 * (seed, stream tag, index), so sample i never depends on which samples were drawn before it.
 * The draws happen in a fixed order (attributes, then caption choices) whatever the caller asks
 * for, so asking for the caption alone gives the same caption as asking for everything.
 */
#include "shapes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- random numbers: splitmix64 seeds xoshiro256** (Blackman & Vigna) ------------------------ */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Stream tags keep the data set's samples and the concept images apart for one seed. */
enum {
    STREAM_SAMPLE = 1,
    STREAM_HELD_OUT = 2,
    STREAM_NOISE = 3,
    STREAM_COLOUR = 4,
    STREAM_HELD_OUT_COLOUR = 5
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = a ^ (stream * 0xD1B54A32D192ED03ULL);
    uint64_t b = splitmix64(&x);
    x = b ^ (index * 0x9E3779B97F4A7C15ULL) ^ 0x5851F42D4C957F2DULL;
    for (int k = 0; k < 4; k++)
        r->s[k] = splitmix64(&x);
}

/* Uniform in [0, 1) with 53 bits. */
static double rng_uniform(struct rng *r) {
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}
static double rng_range(struct rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform(r);
}
static int rng_below(struct rng *r, int n) {
    int k = (int)(rng_uniform(r) * n);
    return k < n ? k : n - 1;
}

/* ---- names and palette ----------------------------------------------------------------------- */

static const char *const shape_names[TI_SHAPE_COUNT] = {"circle", "square", "triangle", "star",
                                                        "ring",   "cross",  "diamond",  "heart"};
static const char *const colour_names[TI_COLOUR_COUNT] = {
    "red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey", "teal"};
static const char *const texture_names[TI_TEXTURE_COUNT] = {"plain", "striped", "dotted",
                                                            "checkered"};
static const char *const size_names[TI_SIZE_COUNT] = {"small", "large"};
static const uint8_t palette[TI_COLOUR_COUNT][3] = {
    {220, 40, 40},   /* red */
    {40, 170, 60},   /* green */
    {40, 80, 220},   /* blue */
    {240, 215, 40},  /* yellow */
    {140, 60, 190},  /* purple */
    {245, 140, 30},  /* orange */
    {250, 250, 250}, /* white */
    {15, 15, 15},    /* black */
    {128, 128, 128}, /* grey (backgrounds only) */
    {20, 160, 160},  /* teal (the held-out colour; objects only) */
};

const char *ti_shape_name(enum ti_shape s) {
    return (unsigned)s < TI_SHAPE_COUNT ? shape_names[s] : NULL;
}
const char *ti_colour_name(enum ti_colour c) {
    return (unsigned)c < TI_COLOUR_COUNT ? colour_names[c] : NULL;
}
const char *ti_texture_name(enum ti_texture t) {
    return (unsigned)t < TI_TEXTURE_COUNT ? texture_names[t] : NULL;
}
const char *ti_shape_size_name(enum ti_shape_size s) {
    return (unsigned)s < TI_SIZE_COUNT ? size_names[s] : NULL;
}

int ti_colour_is_object(enum ti_colour c) {
    return (unsigned)c < TI_COLOUR_NAMED_COUNT || c == TI_COLOUR_HELD_OUT;
}

void ti_colour_rgb(enum ti_colour c, uint8_t rgb[3]) {
    if ((unsigned)c >= TI_COLOUR_COUNT) c = TI_COLOUR_GREY;
    memcpy(rgb, palette[c], 3);
}

void ti_colour_shade(enum ti_colour c, uint8_t rgb[3]) {
    uint8_t p[3];
    ti_colour_rgb(c, p);
    double luma = (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0;
    for (int k = 0; k < 3; k++) {
        double v = luma > 0.45 ? 0.45 * p[k] : p[k] + 0.55 * (255.0 - p[k]);
        rgb[k] = (uint8_t)lround(v);
    }
}

static double rgb_dist(const uint8_t a[3], const uint8_t b[3]) {
    double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
    return sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

double ti_shapes_contrast(enum ti_colour object, enum ti_texture t, enum ti_colour background) {
    uint8_t o[3], s[3], b[3];
    ti_colour_rgb(object, o);
    ti_colour_shade(object, s);
    ti_colour_rgb(background, b);
    double d = rgb_dist(o, b);
    if (t != TI_TEXTURE_PLAIN) {
        double ds = rgb_dist(s, b);
        if (ds < d) d = ds;
    }
    return d;
}

/* ---- specs and attribute sampling ------------------------------------------------------------ */

void ti_shapes_spec_default(struct ti_shapes_spec *s) {
    s->seed = 0;
    s->size = 64;
    s->held_out_rate = 1.0 / 16.0;
    s->generic_rate = 0.25;
    s->held_out_colour_rate = 1.0 / 16.0;
}

int ti_shapes_spec_check(const struct ti_shapes_spec *s, struct ti_data_err *e) {
    if (!s) return ti_data_fail(e, "shapes: no data set spec");
    if (s->size < 32 || s->size > 512)
        return ti_data_fail(e, "shapes: image size %d: expected 32..512", s->size);
    if (!(s->held_out_rate >= 0 && s->held_out_rate <= 1))
        return ti_data_fail(e, "shapes: held_out_rate %g: expected 0..1", s->held_out_rate);
    if (!(s->generic_rate >= 0 && s->generic_rate <= 1))
        return ti_data_fail(e, "shapes: generic_rate %g: expected 0..1", s->generic_rate);
    if (!(s->held_out_colour_rate >= 0 && s->held_out_colour_rate <= 1))
        return ti_data_fail(e, "shapes: held_out_colour_rate %g: expected 0..1",
                            s->held_out_colour_rate);
    return 0;
}

/* The farthest any shape reaches from its centre, in radii (square corners rotated by 10
 * degrees, the triangle's and star's tips at 1.15). */
#define SHAPE_EXTENT 1.2

/* Draws a background for a->colour and a->texture among those at TI_SHAPES_MIN_CONTRAST. */
static void draw_background(struct rng *r, struct ti_shapes_attr *a) {
    int allowed[TI_COLOUR_BACKGROUND_COUNT], n_allowed = 0;
    for (int c = 0; c < TI_COLOUR_BACKGROUND_COUNT; c++)
        if (ti_shapes_contrast(a->colour, a->texture, (enum ti_colour)c) >= TI_SHAPES_MIN_CONTRAST)
            allowed[n_allowed++] = c;
    /* every object colour has several backgrounds at this contrast (white or black at least);
     * should a palette change leave none, the farthest colour serves */
    if (n_allowed == 0) {
        double best = -1;
        for (int c = 0; c < TI_COLOUR_BACKGROUND_COUNT; c++) {
            double d = ti_shapes_contrast(a->colour, a->texture, (enum ti_colour)c);
            if (d > best) {
                best = d;
                allowed[0] = c;
            }
        }
        n_allowed = 1;
    }
    a->background = (enum ti_colour)allowed[rng_below(r, n_allowed)];
}

/* Recolours `a` with the held-out colour and draws its background again, from r. */
static void make_held_out_colour(struct rng *r, struct ti_shapes_attr *a) {
    a->colour = TI_COLOUR_HELD_OUT;
    draw_background(r, a);
}

/* Draws the attributes of one image; `shape` < 0 draws a named shape uniformly. */
static void sample_attr(struct rng *r, int size, int shape, struct ti_shapes_attr *a) {
    memset(a, 0, sizeof *a);
    a->shape = shape >= 0 ? (enum ti_shape)shape : (enum ti_shape)rng_below(r, TI_SHAPE_HEART);
    a->colour = (enum ti_colour)rng_below(r, TI_COLOUR_NAMED_COUNT);
    a->texture = (enum ti_texture)rng_below(r, TI_TEXTURE_COUNT);
    a->size_class = (enum ti_shape_size)rng_below(r, TI_SIZE_COUNT);
    draw_background(r, a);
    double scale = size / 64.0;
    a->radius =
        scale * (a->size_class == TI_SIZE_SMALL ? rng_range(r, 10, 13) : rng_range(r, 17, 23));
    a->angle = rng_range(r, -10, 10) * M_PI / 180.0;
    double margin = SHAPE_EXTENT * a->radius + 3 * scale; /* the 2-pixel border stays background */
    a->cx = rng_range(r, margin, size - margin);
    a->cy = rng_range(r, margin, size - margin);
    a->phase_x = rng_uniform(r);
    a->phase_y = rng_uniform(r);
    a->stripes_vertical = rng_below(r, 2);
}

/* ---- captions -------------------------------------------------------------------------------- */

static const char *const prefixes[] = {"a photo of ", "a picture of ", "an image of ",
                                       "a drawing of "};
#define N_PREFIXES 4

struct sbuf {
    char *p;
    size_t cap, len;
    int overflow;
};

static void sb_add(struct sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len + n + 1 > b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static int starts_with_vowel(const char *w) {
    return strchr("aeiou", w[0]) != NULL;
}

/* Appends "a WORDS..." / "an WORDS...", the article agreeing with the first word. */
static void sb_noun_phrase(struct sbuf *b, const char *const *words, int n) {
    sb_add(b, starts_with_vowel(words[0]) ? "an" : "a");
    for (int k = 0; k < n; k++) {
        sb_add(b, " ");
        sb_add(b, words[k]);
    }
}

int ti_shapes_caption(char *caption, size_t cap, const struct ti_shapes_attr *a, unsigned parts,
                      int prefix_index, int generic, struct ti_data_err *e) {
    if ((unsigned)a->shape >= TI_SHAPE_COUNT || !ti_colour_is_object(a->colour) ||
        (unsigned)a->background >= TI_COLOUR_BACKGROUND_COUNT ||
        (unsigned)a->texture >= TI_TEXTURE_COUNT || (unsigned)a->size_class >= TI_SIZE_COUNT)
        return ti_data_fail(e, "shapes caption: attribute out of range");
    struct sbuf b = {caption, cap, 0, 0};
    if (cap) caption[0] = 0;
    if (parts & 1u) sb_add(&b, prefixes[(unsigned)prefix_index % N_PREFIXES]);
    const char *words[5];
    int n = 0;
    if (parts & 2u) words[n++] = size_names[a->size_class];
    if ((parts & 4u) && a->texture != TI_TEXTURE_PLAIN) words[n++] = texture_names[a->texture];
    if ((parts & 8u) && a->colour != TI_COLOUR_HELD_OUT) words[n++] = colour_names[a->colour];
    words[n++] = generic || a->shape == TI_SHAPE_HELD_OUT ? "object" : shape_names[a->shape];
    sb_noun_phrase(&b, words, n);
    if (parts & 16u) {
        const char *bg[2] = {colour_names[a->background], "background"};
        sb_add(&b, " on ");
        sb_noun_phrase(&b, bg, 2);
    }
    if (b.overflow) {
        if (cap) caption[0] = 0;
        return ti_data_fail(e, "shapes caption: buffer of %zu bytes too small (%d suffice)", cap,
                            TI_SHAPES_CAPTION_MAX);
    }
    return 0;
}

/* Caption choices of a sample, drawn after its attributes. */
static void sample_caption_choices(struct rng *r, unsigned *parts, int *prefix) {
    static const double p_part[5] = {0.5, 0.5, 0.75, 0.85, 0.5}; /* prefix size texture colour bg */
    *parts = 0;
    for (int k = 0; k < 5; k++)
        if (rng_uniform(r) < p_part[k]) *parts |= 1u << k;
    *prefix = rng_below(r, N_PREFIXES);
}

/* ---- rendering ------------------------------------------------------------------------------- */

#define MAX_POLY 10
struct geom {
    double cx, cy, inv_r, ca, sa;
    enum ti_shape shape;
    int n_poly;
    double poly[MAX_POLY][2]; /* triangle and star vertices in shape units, y down */
};

static void geom_init(struct geom *g, const struct ti_shapes_attr *a) {
    g->cx = a->cx;
    g->cy = a->cy;
    g->inv_r = 1.0 / a->radius;
    g->ca = cos(a->angle);
    g->sa = sin(a->angle);
    g->shape = a->shape;
    g->n_poly = 0;
    if (a->shape == TI_SHAPE_TRIANGLE) {
        /* equilateral, pointing up, centroid at the centre, circumradius 1.15 */
        for (int k = 0; k < 3; k++) {
            double t = -M_PI / 2 + k * 2 * M_PI / 3;
            g->poly[k][0] = 1.15 * cos(t);
            g->poly[k][1] = 1.15 * sin(t);
        }
        g->n_poly = 3;
    } else if (a->shape == TI_SHAPE_STAR) {
        /* five points, one pointing up; outer radius 1.15, inner 0.5 */
        for (int k = 0; k < 10; k++) {
            double t = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? 0.5 : 1.15;
            g->poly[k][0] = rr * cos(t);
            g->poly[k][1] = rr * sin(t);
        }
        g->n_poly = 10;
    }
}

/* Even-odd crossing test. */
static int in_poly(const struct geom *g, double u, double v) {
    int in = 0;
    for (int i = 0, j = g->n_poly - 1; i < g->n_poly; j = i++) {
        double xi = g->poly[i][0], yi = g->poly[i][1], xj = g->poly[j][0], yj = g->poly[j][1];
        if ((yi > v) != (yj > v) && u < (xj - xi) * (v - yi) / (yj - yi) + xi) in = !in;
    }
    return in;
}

/* Is the image point (x, y) inside the shape? Shape units: the radius is 1, v points down. */
static int inside(const struct geom *g, double x, double y) {
    double dx = (x - g->cx) * g->inv_r, dy = (y - g->cy) * g->inv_r;
    double u = g->ca * dx + g->sa * dy, v = -g->sa * dx + g->ca * dy;
    double rr = u * u + v * v;
    switch (g->shape) {
    case TI_SHAPE_CIRCLE: return rr <= 1.0;
    case TI_SHAPE_SQUARE: return fabs(u) <= 0.8 && fabs(v) <= 0.8;
    case TI_SHAPE_RING: return rr <= 1.0 && rr >= 0.55 * 0.55;
    case TI_SHAPE_CROSS:
        return (fabs(u) <= 0.32 && fabs(v) <= 1.0) || (fabs(v) <= 0.32 && fabs(u) <= 1.0);
    case TI_SHAPE_DIAMOND: return fabs(u) + fabs(v) <= 1.1;
    case TI_SHAPE_HEART: {
        /* the classic sextic heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up; it spans x in
         * +-1.14, y in -1..1.24), scaled and shifted so it sits centred in the unit disc */
        double hx = 1.1 * u, hy = -1.1 * v + 0.12;
        double q = hx * hx + hy * hy - 1.0;
        return q * q * q - hx * hx * hy * hy * hy <= 0.0;
    }
    case TI_SHAPE_TRIANGLE:
    case TI_SHAPE_STAR: return in_poly(g, u, v);
    default: return 0;
    }
}

/* Is the image point (x, y) in the shade part of the texture? Periods are whole pixels
 * (6, 6 and 4 at 64x64, scaled with the image) and offsets are whole pixels, so stripe and check
 * edges fall on pixel edges: crisp at any phase (an edge through pixel centres would paint rows
 * of half-and-half pixels). */
static int in_shade(const struct ti_shapes_attr *a, int size, double x, double y) {
    double scale = size / 64.0;
    switch (a->texture) {
    case TI_TEXTURE_STRIPES: {
        long p = lround(6 * scale), off = (long)(a->phase_x * p);
        long t = (long)floor(a->stripes_vertical ? x : y) + off;
        return t % p < p / 2;
    }
    case TI_TEXTURE_DOTS: {
        long p = lround(6 * scale);
        double rd = 1.6 * scale, ox = floor(a->phase_x * p) + 0.5, oy = floor(a->phase_y * p) + 0.5;
        double fx = x - ox - p * floor((x - ox) / p + 0.5),
               fy = y - oy - p * floor((y - oy) / p + 0.5);
        return fx * fx + fy * fy <= rd * rd;
    }
    case TI_TEXTURE_CHECKS: {
        long c = lround(4 * scale), ox = (long)(a->phase_x * c), oy = (long)(a->phase_y * c);
        long i = ((long)floor(x) + ox) / c + ((long)floor(y) + oy) / c;
        return (int)(i & 1);
    }
    default: return 0;
    }
}

#define SS 4 /* supersampling: SS x SS samples per pixel */

int ti_shapes_render(const struct ti_shapes_attr *a, int size, uint8_t *px, struct ti_data_err *e) {
    if (size < 8 || size > 4096)
        return ti_data_fail(e, "shapes render: image size %d: expected 8..4096", size);
    if ((unsigned)a->shape >= TI_SHAPE_COUNT || !ti_colour_is_object(a->colour) ||
        (unsigned)a->background >= TI_COLOUR_BACKGROUND_COUNT ||
        (unsigned)a->texture >= TI_TEXTURE_COUNT || !(a->radius > 0))
        return ti_data_fail(
            e,
            "shapes render: attribute out of range (shape %d colour %d background %d "
            "texture %d radius %g)",
            (int)a->shape, (int)a->colour, (int)a->background, (int)a->texture, a->radius);
    struct geom g;
    geom_init(&g, a);
    uint8_t fg[3], sh[3], bg[3];
    ti_colour_rgb(a->colour, fg);
    ti_colour_shade(a->colour, sh);
    ti_colour_rgb(a->background, bg);
    double reach = (SHAPE_EXTENT + 0.1) * a->radius + 1.0;
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            uint8_t *p = px + ((size_t)y * size + x) * 3;
            if (fabs(x + 0.5 - a->cx) > reach || fabs(y + 0.5 - a->cy) > reach) {
                memcpy(p, bg, 3);
                continue;
            }
            int sum[3] = {0, 0, 0};
            for (int sy = 0; sy < SS; sy++) {
                for (int sx = 0; sx < SS; sx++) {
                    double xs = x + (sx + 0.5) / SS, ys = y + (sy + 0.5) / SS;
                    const uint8_t *c = bg;
                    if (inside(&g, xs, ys)) c = in_shade(a, size, xs, ys) ? sh : fg;
                    for (int k = 0; k < 3; k++)
                        sum[k] += c[k];
                }
            }
            for (int k = 0; k < 3; k++)
                p[k] = (uint8_t)((sum[k] + SS * SS / 2) / (SS * SS));
        }
    }
    return 0;
}

/* ---- samples --------------------------------------------------------------------------------- */

int ti_shapes_sample(const struct ti_shapes_spec *s, uint64_t i, struct ti_shapes_attr *attr,
                     uint8_t *px, char *caption, size_t cap, struct ti_data_err *e) {
    if (ti_shapes_spec_check(s, e)) return -1;
    struct rng r;
    rng_seed(&r, s->seed, STREAM_SAMPLE, i);
    int held_out = rng_uniform(&r) < s->held_out_rate;
    int generic = rng_uniform(&r) < s->generic_rate;
    struct ti_shapes_attr a;
    sample_attr(&r, s->size, held_out ? TI_SHAPE_HELD_OUT : -1, &a);
    unsigned parts;
    int prefix;
    sample_caption_choices(&r, &parts, &prefix);
    /* the held-out colour: a stream of its own, so a rate of 0 leaves every other draw as it was
     * (the data set of the stage-1 autoencoder) */
    if (s->held_out_colour_rate > 0) {
        struct rng rc;
        rng_seed(&rc, s->seed, STREAM_COLOUR, i);
        if (rng_uniform(&rc) < s->held_out_colour_rate) make_held_out_colour(&rc, &a);
    }
    if (caption && ti_shapes_caption(caption, cap, &a, parts, prefix, generic, e)) return -1;
    if (px && ti_shapes_render(&a, s->size, px, e)) return -1;
    if (attr) *attr = a;
    return 0;
}

int ti_shapes_held_out(const struct ti_shapes_spec *s, uint64_t i, struct ti_shapes_attr *attr,
                       uint8_t *px, struct ti_data_err *e) {
    if (ti_shapes_spec_check(s, e)) return -1;
    struct rng r;
    rng_seed(&r, s->seed, STREAM_HELD_OUT, i);
    struct ti_shapes_attr a;
    sample_attr(&r, s->size, TI_SHAPE_HELD_OUT, &a);
    if (px && ti_shapes_render(&a, s->size, px, e)) return -1;
    if (attr) *attr = a;
    return 0;
}

int ti_shapes_held_out_colour(const struct ti_shapes_spec *s, uint64_t i,
                              struct ti_shapes_attr *attr, uint8_t *px, struct ti_data_err *e) {
    if (ti_shapes_spec_check(s, e)) return -1;
    struct rng r;
    rng_seed(&r, s->seed, STREAM_HELD_OUT_COLOUR, i);
    struct ti_shapes_attr a;
    sample_attr(&r, s->size, -1, &a);
    make_held_out_colour(&r, &a);
    if (px && ti_shapes_render(&a, s->size, px, e)) return -1;
    if (attr) *attr = a;
    return 0;
}

/* ---- degradations ---------------------------------------------------------------------------- */

static float clamp255(float v) {
    return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* Separable Gaussian blur of one float plane (clamp-to-edge). */
static void blur_plane(float *pl, float *tmp, int w, int h, const float *k, int rad) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0;
            for (int d = -rad; d <= rad; d++) {
                int xx = x + d < 0 ? 0 : x + d >= w ? w - 1 : x + d;
                acc += k[d + rad] * pl[(size_t)y * w + xx];
            }
            tmp[(size_t)y * w + x] = acc;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0;
            for (int d = -rad; d <= rad; d++) {
                int yy = y + d < 0 ? 0 : y + d >= h ? h - 1 : y + d;
                acc += k[d + rad] * tmp[(size_t)yy * w + x];
            }
            pl[(size_t)y * w + x] = acc;
        }
}

/* The JPEG standard's (Annex K) luminance and chrominance quantisation tables, row-major. */
static const int q_luma[64] = {16,  11,  10,  16,  24, 40, 51,  61,  12,  12,  14,  19,  26,
                               58,  60,  55,  14,  13, 16, 24,  40,  57,  69,  56,  14,  17,
                               22,  29,  51,  87,  80, 62, 18,  22,  37,  56,  68,  109, 103,
                               77,  24,  35,  55,  64, 81, 104, 113, 92,  49,  64,  78,  87,
                               103, 121, 120, 101, 72, 92, 95,  98,  112, 100, 103, 99};
static const int q_chroma[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                                 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                                 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                                 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

/* 8x8 DCT-II, quantise with `q` (64 steps), inverse: in place on a w x h plane (edge blocks
 * use clamped coordinates for input, so sizes need not be multiples of 8). */
static void jpeg_plane(float *pl, int w, int h, const float *q) {
    float cs[8][8]; /* orthonormal DCT-II basis: cs[u][x] */
    for (int u = 0; u < 8; u++)
        for (int x = 0; x < 8; x++)
            cs[u][x] =
                (float)((u ? sqrt(2.0 / 8) : sqrt(1.0 / 8)) * cos((2 * x + 1) * u * M_PI / 16));
    for (int by = 0; by < h; by += 8)
        for (int bx = 0; bx < w; bx += 8) {
            float blk[8][8], tmp[8][8], co[8][8];
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    int yy = by + y < h ? by + y : h - 1, xx = bx + x < w ? bx + x : w - 1;
                    blk[y][x] = pl[(size_t)yy * w + xx] - 128.0f;
                }
            for (int y = 0; y < 8; y++) /* rows */
                for (int u = 0; u < 8; u++) {
                    float acc = 0;
                    for (int x = 0; x < 8; x++)
                        acc += cs[u][x] * blk[y][x];
                    tmp[y][u] = acc;
                }
            for (int v = 0; v < 8; v++) /* columns, then quantise */
                for (int u = 0; u < 8; u++) {
                    float acc = 0;
                    for (int y = 0; y < 8; y++)
                        acc += cs[v][y] * tmp[y][u];
                    float step = q[v * 8 + u];
                    co[v][u] = roundf(acc / step) * step;
                }
            for (int v = 0; v < 8; v++) /* inverse: columns */
                for (int x = 0; x < 8; x++) {
                    float acc = 0;
                    for (int u = 0; u < 8; u++)
                        acc += cs[u][x] * co[v][u];
                    tmp[v][x] = acc;
                }
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    float acc = 0;
                    for (int v = 0; v < 8; v++)
                        acc += cs[v][y] * tmp[v][x];
                    if (by + y < h && bx + x < w) pl[(size_t)(by + y) * w + bx + x] = acc + 128.0f;
                }
        }
}

int ti_shapes_degrade(uint8_t *px, int w, int h, const struct ti_shapes_degrade_opts *o,
                      struct ti_data_err *e) {
    if (w < 1 || h < 1 || w > 4096 || h > 4096)
        return ti_data_fail(e, "shapes degrade: image size %dx%d: expected 1..4096 per side", w, h);
    if (!(o->blur_sigma >= 0 && o->blur_sigma <= 20))
        return ti_data_fail(e, "shapes degrade: blur sigma %g: expected 0..20", o->blur_sigma);
    if (o->jpeg_quality < 0 || o->jpeg_quality > 100)
        return ti_data_fail(e, "shapes degrade: jpeg quality %d: expected 1..100 (0: off)",
                            o->jpeg_quality);
    if (!(o->noise_sigma >= 0 && o->noise_sigma <= 255))
        return ti_data_fail(e, "shapes degrade: noise sigma %g: expected 0..255", o->noise_sigma);
    size_t n = (size_t)w * h;
    float *pl = malloc(sizeof(float) * n * 4);
    if (!pl) return ti_data_fail(e, "shapes degrade: out of memory for a %dx%d image", w, h);
    float *tmp = pl + 3 * n;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++)
            pl[c * n + i] = px[i * 3 + c];
    if (o->blur_sigma > 0) {
        int rad = (int)ceil(3 * o->blur_sigma);
        if (rad > 60) rad = 60;
        float k[121], sum = 0;
        for (int d = -rad; d <= rad; d++)
            sum += k[d + rad] = (float)exp(-0.5 * d * d / (o->blur_sigma * o->blur_sigma));
        for (int d = 0; d <= 2 * rad; d++)
            k[d] /= sum;
        for (int c = 0; c < 3; c++)
            blur_plane(pl + c * n, tmp, w, h, k, rad);
    }
    if (o->jpeg_quality > 0) {
        /* IJG's quality scaling of the tables */
        int qs = o->jpeg_quality < 50 ? 5000 / o->jpeg_quality : 200 - 2 * o->jpeg_quality;
        float ql[64], qc[64];
        for (int k = 0; k < 64; k++) {
            int a = (q_luma[k] * qs + 50) / 100, b = (q_chroma[k] * qs + 50) / 100;
            ql[k] = (float)(a < 1 ? 1 : a > 255 ? 255 : a);
            qc[k] = (float)(b < 1 ? 1 : b > 255 ? 255 : b);
        }
        float *r = pl, *g = pl + n, *b = pl + 2 * n;
        for (size_t i = 0; i < n; i++) { /* JFIF RGB -> YCbCr, in place */
            float Y = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
            float cb = -0.168736f * r[i] - 0.331264f * g[i] + 0.5f * b[i] + 128.0f;
            float cr = 0.5f * r[i] - 0.418688f * g[i] - 0.081312f * b[i] + 128.0f;
            r[i] = Y;
            g[i] = cb;
            b[i] = cr;
        }
        jpeg_plane(r, w, h, ql);
        /* chroma: 2x2 averages (4:2:0), quantised at half resolution, replicated back */
        int w2 = (w + 1) / 2, h2 = (h + 1) / 2;
        for (int c = 1; c < 3; c++) {
            float *pc = pl + c * n;
            for (int y = 0; y < h2; y++)
                for (int x = 0; x < w2; x++) {
                    float acc = 0;
                    int cnt = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++)
                            if (2 * y + dy < h && 2 * x + dx < w) {
                                acc += pc[(size_t)(2 * y + dy) * w + 2 * x + dx];
                                cnt++;
                            }
                    tmp[(size_t)y * w2 + x] = acc / cnt;
                }
            jpeg_plane(tmp, w2, h2, qc);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    pc[(size_t)y * w + x] = tmp[(size_t)(y / 2) * w2 + x / 2];
        }
        for (size_t i = 0; i < n; i++) { /* YCbCr -> RGB */
            float Y = r[i], cb = g[i] - 128.0f, cr = b[i] - 128.0f;
            r[i] = Y + 1.402f * cr;
            g[i] = Y - 0.344136f * cb - 0.714136f * cr;
            b[i] = Y + 1.772f * cb;
        }
    }
    if (o->noise_sigma > 0) {
        struct rng rg;
        rng_seed(&rg, o->seed, STREAM_NOISE, 0);
        for (size_t i = 0; i < 3 * n; i += 2) { /* Box-Muller, two normals per pair */
            double u1 = 1.0 - rng_uniform(&rg), u2 = rng_uniform(&rg);
            double m = sqrt(-2.0 * log(u1)) * o->noise_sigma;
            pl[i] += (float)(m * cos(2 * M_PI * u2));
            if (i + 1 < 3 * n) pl[i + 1] += (float)(m * sin(2 * M_PI * u2));
        }
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < n; i++)
            px[i * 3 + c] = (uint8_t)lroundf(clamp255(pl[c * n + i]));
    free(pl);
    return 0;
}
