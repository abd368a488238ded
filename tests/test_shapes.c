/*
 * test_shapes.c - the synthetic shapes data set (data/shapes.h) and its classifier
 * (data/shapes_classify.h).
 *
 * Determinism (same seed, same bytes, in any order; other seeds differ), the caption grammar
 * (parsed here by an independent reader of the grammar in shapes.h; the held-out shape never
 * named; every other shape and colour named; the words agree with the attributes), the
 * classifier's accuracy on 500 generated images clean and degraded, the concept images labelled
 * as the held-out shape, and "none" where there is no object.
 *
 * The accuracy bars: on 2000 clean samples (seed 7) the classifier is right on every attribute of
 * every image, and above 98.5 % per attribute with blur 1 + JPEG q50 + noise 4 (docs/DEMO.md).
 * 500 samples put the binomial standard deviation near 0.3 % at those rates, so a bar of 98 %
 * (clean) and 95 % (degraded) has a wide margin against chance, while a real regression, say one
 * shape, colour or texture class of 8 (or 4) going wrong, costs 3-25 % and fails it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shapes.h"
#include "shapes_classify.h"
#include "test_common.h"

#define S 64

/* FNV-1a over a byte buffer: a compact fingerprint for comparing runs. */
static uint64_t fnv(const uint8_t *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001B3ULL;
    return h;
}

TEST(same_seed_same_bytes_any_order) {
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    s.seed = 42;
    enum { N = 40 };
    static uint8_t a[N][S * S * 3], b[S * S * 3];
    char ca[N][TI_SHAPES_CAPTION_MAX], cb[TI_SHAPES_CAPTION_MAX];
    struct ti_data_err e;
    for (int i = 0; i < N; i++)
        DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, NULL, a[i], ca[i], sizeof ca[i], &e), &e);
    /* again, backwards, with and without the other outputs */
    int same_px = 1, same_cap = 1;
    for (int i = N - 1; i >= 0; i--) {
        struct ti_shapes_attr at;
        DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, &at, b, NULL, 0, &e), &e);
        same_px &= !memcmp(a[i], b, sizeof b);
        DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, NULL, NULL, cb, sizeof cb, &e), &e);
        same_cap &= !strcmp(ca[i], cb);
    }
    CHECK(same_px);
    CHECK(same_cap);
    /* and the rendering from the attributes alone */
    struct ti_shapes_attr at;
    DCHECK_OK(ti_shapes_sample(&s, 7, &at, NULL, NULL, 0, &e), &e);
    DCHECK_OK(ti_shapes_render(&at, S, b, &e), &e);
    CHECK(!memcmp(a[7], b, sizeof b));
    /* the images are not all the same, and not blank */
    int distinct = 0;
    for (int i = 1; i < N; i++)
        distinct += memcmp(a[i], a[0], sizeof b) != 0;
    CHECK(distinct == N - 1);
}

TEST(other_seeds_and_streams_differ) {
    struct ti_shapes_spec s1, s2;
    ti_shapes_spec_default(&s1);
    ti_shapes_spec_default(&s2);
    s1.seed = 1;
    s2.seed = 2;
    static uint8_t a[S * S * 3], b[S * S * 3], h[S * S * 3];
    struct ti_data_err e;
    int differ = 0, differ_held = 0, n = 50;
    uint64_t f1 = 0xcbf29ce484222325ULL, f2 = f1;
    for (int i = 0; i < n; i++) {
        DCHECK_OK(ti_shapes_sample(&s1, (uint64_t)i, NULL, a, NULL, 0, &e), &e);
        DCHECK_OK(ti_shapes_sample(&s2, (uint64_t)i, NULL, b, NULL, 0, &e), &e);
        DCHECK_OK(ti_shapes_held_out(&s1, (uint64_t)i, NULL, h, &e), &e);
        differ += memcmp(a, b, sizeof a) != 0;
        differ_held += memcmp(a, h, sizeof a) != 0;
        f1 = fnv(a, sizeof a, f1);
        f2 = fnv(b, sizeof b, f2);
    }
    CHECK(differ == n);
    CHECK(differ_held == n);
    CHECK(f1 != f2);
}

/* ---- an independent reader of the caption grammar (shapes.h) ----------------------------------
 */

static const char *const shape_words[] = {"circle", "square", "triangle", "star",
                                          "ring",   "cross",  "diamond"};
static const char *const colour_words[] = {"red",    "green", "blue",  "yellow", "purple",
                                           "orange", "white", "black", "grey"};
static const char *const texture_words[] = {"striped", "dotted", "checkered"};

static int word_in(const char *w, const char *const *list, int n) {
    for (int k = 0; k < n; k++)
        if (!strcmp(w, list[k])) return k;
    return -1;
}

struct parsed {
    int ok;
    int size;                      /* -1 absent, 0 small, 1 large */
    int texture;                   /* -1 absent, else 0 striped 1 dotted 2 checkered */
    int colour, background, shape; /* -1 absent; shape -1 with generic = 1 for "object" */
    int generic;
};

static int article_ok(const char *art, const char *next) {
    int vowel = strchr("aeiou", next[0]) != NULL;
    return !strcmp(art, vowel ? "an" : "a");
}

static struct parsed parse_caption(const char *cap) {
    struct parsed p = {0, -1, -1, -1, -1, -1, 0};
    char buf[256], *w[32];
    int n = 0;
    if (strlen(cap) >= sizeof buf) return p;
    strcpy(buf, cap);
    for (char *t = strtok(buf, " "); t && n < 32; t = strtok(NULL, " "))
        w[n++] = t;
    int i = 0;
    if (n >= 3 && !strcmp(w[2], "of")) { /* prefix */
        const char *pre = w[1];
        if (!(!strcmp(pre, "photo") || !strcmp(pre, "picture") || !strcmp(pre, "image") ||
              !strcmp(pre, "drawing")))
            return p;
        if (!article_ok(w[0], w[1])) return p;
        i = 3;
    }
    if (i >= n) return p;
    const char *art = w[i++];
    if (i >= n || !article_ok(art, w[i])) return p;
    if (i < n && (!strcmp(w[i], "small") || !strcmp(w[i], "large")))
        p.size = !strcmp(w[i++], "large");
    if (i < n && word_in(w[i], texture_words, 3) >= 0)
        p.texture = word_in(w[i++], texture_words, 3);
    if (i < n && word_in(w[i], colour_words, 8) >= 0) p.colour = word_in(w[i++], colour_words, 8);
    if (i >= n) return p;
    if (!strcmp(w[i], "object")) {
        p.generic = 1;
    } else {
        p.shape = word_in(w[i], shape_words, 7);
        if (p.shape < 0) return p;
    }
    i++;
    if (i < n) { /* " on " article colour "background" */
        if (n - i != 4 || strcmp(w[i], "on") || strcmp(w[i + 3], "background")) return p;
        if (!article_ok(w[i + 1], w[i + 2])) return p;
        p.background = word_in(w[i + 2], colour_words, 9);
        if (p.background < 0) return p;
    }
    p.ok = 1;
    return p;
}

TEST(caption_grammar) {
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    s.seed = 3;
    enum { N = 4000 };
    int seen_shape[7] = {0}, seen_colour[9] = {0}, seen_bg[9] = {0}, seen_tex[3] = {0};
    int bad_parse = 0, bad_agree = 0, named_heart = 0, held_named = 0, n_held = 0;
    int n_object = 0, n_object_held = 0, n_prefix = 0;
    int named_teal = 0, n_teal = 0, teal_coloured = 0, n_colourless = 0, n_colourless_teal = 0;
    struct ti_data_err e;
    for (int i = 0; i < N; i++) {
        struct ti_shapes_attr a;
        char cap[TI_SHAPES_CAPTION_MAX];
        DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, &a, NULL, cap, sizeof cap, &e), &e);
        if (strstr(cap, "heart")) named_heart++;
        if (strstr(cap, "teal")) named_teal++;
        struct parsed p = parse_caption(cap);
        if (!p.ok) {
            if (bad_parse++ < 5) fprintf(stderr, "unparsed caption: '%s'\n", cap);
            continue;
        }
        n_prefix += strstr(cap, " of ") != NULL;
        int held = a.shape == TI_SHAPE_HELD_OUT;
        n_held += held;
        if (held && !p.generic) held_named++;
        if (p.generic) {
            n_object++;
            n_object_held += held;
        }
        int teal = a.colour == TI_COLOUR_HELD_OUT;
        n_teal += teal;
        if (teal && p.colour >= 0) teal_coloured++;
        if (p.colour < 0) {
            n_colourless++;
            n_colourless_teal += teal;
        }
        /* every word that is there agrees with the attributes */
        int agree = 1;
        if (!p.generic) agree &= p.shape == (int)a.shape;
        if (p.colour >= 0) agree &= p.colour == (int)a.colour;
        if (p.background >= 0) agree &= p.background == (int)a.background;
        if (p.size >= 0) agree &= p.size == (a.size_class == TI_SIZE_LARGE);
        if (p.texture >= 0) agree &= p.texture + 1 == (int)a.texture; /* plain is never said */
        if (!agree && bad_agree++ < 5) fprintf(stderr, "caption disagrees: '%s'\n", cap);
        if (p.shape >= 0) seen_shape[p.shape]++;
        if (p.colour >= 0) seen_colour[p.colour]++;
        if (p.background >= 0) seen_bg[p.background]++;
        if (p.texture >= 0) seen_tex[p.texture]++;
    }
    CHECK(bad_parse == 0);
    CHECK(bad_agree == 0);
    CHECK(named_heart == 0);
    CHECK(held_named == 0);
    /* the held-out shape is in the data (1/16 expected: 250 of 4000) */
    CHECK(n_held > 150 && n_held < 350);
    /* "object" does not select it: most "object" captions show other shapes */
    CHECK(n_object > 0 && n_object_held * 2 < n_object);
    /* the held-out colour: in the data (1/16), never named, and a caption without a colour word
     * shows another colour more often than teal */
    CHECK(named_teal == 0);
    CHECK(teal_coloured == 0);
    CHECK(n_teal > 150 && n_teal < 350);
    CHECK(n_colourless > 0 && n_colourless_teal * 2 < n_colourless);
    CHECK(n_prefix > N / 4 && n_prefix < 3 * N / 4);
    for (int k = 0; k < 7; k++)
        CHECK(seen_shape[k] > 50);
    for (int k = 0; k < 8; k++)
        CHECK(seen_colour[k] > 50);
    for (int k = 0; k < 9; k++)
        CHECK(seen_bg[k] > 20);
    for (int k = 0; k < 3; k++)
        CHECK(seen_tex[k] > 50);
}

/* A held-out colour rate of 0 is the data set from before the held-out colour (the stage-1
 * autoencoder's): the same bytes as the default data set wherever the default is not teal. */
TEST(held_out_colour_rate_zero_is_the_old_data_set) {
    struct ti_shapes_spec s0, s1;
    ti_shapes_spec_default(&s0);
    ti_shapes_spec_default(&s1);
    s0.held_out_colour_rate = 0;
    static uint8_t a[S * S * 3], b[S * S * 3];
    struct ti_data_err e;
    int n_teal = 0, same = 0, n = 400;
    for (int i = 0; i < n; i++) {
        struct ti_shapes_attr x, y;
        char c0[TI_SHAPES_CAPTION_MAX], c1[TI_SHAPES_CAPTION_MAX];
        DCHECK_OK(ti_shapes_sample(&s0, (uint64_t)i, &x, a, c0, sizeof c0, &e), &e);
        DCHECK_OK(ti_shapes_sample(&s1, (uint64_t)i, &y, b, c1, sizeof c1, &e), &e);
        CHECK(x.colour != TI_COLOUR_HELD_OUT);
        if (y.colour == TI_COLOUR_HELD_OUT) {
            n_teal++;
            CHECK(x.shape == y.shape && x.texture == y.texture && x.radius == y.radius);
        } else {
            same += !memcmp(a, b, sizeof a) && !strcmp(c0, c1);
        }
    }
    CHECK(n_teal > 5 && n_teal < 60);
    CHECK(same == n - n_teal);
}

TEST(caption_details) {
    struct ti_shapes_attr a;
    memset(&a, 0, sizeof a);
    a.shape = TI_SHAPE_RING;
    a.colour = TI_COLOUR_ORANGE;
    a.background = TI_COLOUR_ORANGE; /* the caption does not care */
    a.texture = TI_TEXTURE_PLAIN;
    a.size_class = TI_SIZE_LARGE;
    char cap[TI_SHAPES_CAPTION_MAX], tiny[8];
    struct ti_data_err e;
    DCHECK_OK(ti_shapes_caption(cap, sizeof cap, &a, 8u, 0, 0, &e), &e);
    CHECK(!strcmp(cap, "an orange ring"));
    DCHECK_OK(ti_shapes_caption(cap, sizeof cap, &a, 31u, 2, 0, &e), &e);
    CHECK(!strcmp(cap, "an image of a large orange ring on an orange background"));
    DCHECK_OK(ti_shapes_caption(cap, sizeof cap, &a, 1u, 0, 1, &e), &e);
    CHECK(!strcmp(cap, "a photo of an object"));
    a.shape = TI_SHAPE_HEART; /* generic or not, the held-out shape is an object */
    a.texture = TI_TEXTURE_DOTS;
    DCHECK_OK(ti_shapes_caption(cap, sizeof cap, &a, 4u, 0, 0, &e), &e);
    CHECK(!strcmp(cap, "a dotted object"));
    CHECK(ti_shapes_caption(tiny, sizeof tiny, &a, 31u, 0, 0, &e) == -1);
    CHECK(strstr(e.msg, "too small") != NULL);
    CHECK(tiny[0] == 0);
    a.colour = TI_COLOUR_GREY; /* a background colour only */
    CHECK(ti_shapes_caption(cap, sizeof cap, &a, 31u, 0, 0, &e) == -1);
    /* teal: an object colour no caption names, and never a background */
    a.colour = TI_COLOUR_TEAL;
    DCHECK_OK(ti_shapes_caption(cap, sizeof cap, &a, 31u, 0, 0, &e), &e);
    CHECK(!strcmp(cap, "a photo of a large dotted object on an orange background"));
    a.colour = TI_COLOUR_ORANGE;
    a.background = TI_COLOUR_TEAL;
    CHECK(ti_shapes_caption(cap, sizeof cap, &a, 31u, 0, 0, &e) == -1);
}

TEST(bad_specs_refused) {
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    struct ti_data_err e;
    static uint8_t px[S * S * 3];
    s.size = 16;
    CHECK(ti_shapes_sample(&s, 0, NULL, px, NULL, 0, &e) == -1);
    CHECK(strstr(e.msg, "size 16") != NULL);
    ti_shapes_spec_default(&s);
    s.held_out_rate = 1.5;
    CHECK(ti_shapes_held_out(&s, 0, NULL, px, &e) == -1);
    CHECK(strstr(e.msg, "held_out_rate") != NULL);
}

/* Every sampled object stays inside the image with a background border (the classifier reads
 * the background from the 2-pixel border): checked on the pixels, not the attributes. */
TEST(objects_inside_the_frame) {
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    s.seed = 11;
    static uint8_t px[S * S * 3];
    struct ti_data_err e;
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        struct ti_shapes_attr a;
        DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, &a, px, NULL, 0, &e), &e);
        uint8_t bg[3];
        ti_colour_rgb(a.background, bg);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++)
                if (x < 2 || y < 2 || x >= S - 2 || y >= S - 2)
                    bad += memcmp(px + (y * S + x) * 3, bg, 3) != 0;
        CHECK(ti_shapes_contrast(a.colour, a.texture, a.background) >= TI_SHAPES_MIN_CONTRAST);
    }
    CHECK(bad == 0);
}

/* ---- the classifier ----------------------------------------------------------------------- */

static struct ti_shapes_classifier clf;

struct acc {
    int n, shape, colour, texture, background, all;
};

/* concept: 0 data set samples, 1 heart concept images, 2 teal concept images */
static void measure(struct acc *r, uint64_t seed, int n, const struct ti_shapes_degrade_opts *d,
                    int concept) {
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    s.seed = seed;
    static uint8_t px[S * S * 3];
    struct ti_data_err e;
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        struct ti_shapes_attr a;
        struct ti_shapes_label l;
        if (concept == 1)
            DCHECK_OK(ti_shapes_held_out(&s, (uint64_t)i, &a, px, &e), &e);
        else if (concept == 2)
            DCHECK_OK(ti_shapes_held_out_colour(&s, (uint64_t)i, &a, px, &e), &e);
        else
            DCHECK_OK(ti_shapes_sample(&s, (uint64_t)i, &a, px, NULL, 0, &e), &e);
        if (d) {
            struct ti_shapes_degrade_opts dd = *d;
            dd.seed = (uint64_t)i;
            DCHECK_OK(ti_shapes_degrade(px, S, S, &dd, &e), &e);
        }
        DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
        int g[4] = {l.shape == (int)a.shape, l.colour == (int)a.colour, l.texture == (int)a.texture,
                    l.background == (int)a.background};
        r->n++;
        r->shape += g[0];
        r->colour += g[1];
        r->texture += g[2];
        r->background += g[3];
        r->all += g[0] && g[1] && g[2] && g[3];
    }
    printf("  %d images: shape %.1f %% colour %.1f %% texture %.1f %% background %.1f %% "
           "all %.1f %%\n",
           r->n, 100.0 * r->shape / r->n, 100.0 * r->colour / r->n, 100.0 * r->texture / r->n,
           100.0 * r->background / r->n, 100.0 * r->all / r->n);
}

TEST(classifier_accuracy_clean) {
    struct acc r;
    measure(&r, 12345, 500, NULL, 0);
    CHECK(r.shape >= 490); /* 98 % */
    CHECK(r.colour >= 490);
    CHECK(r.texture >= 490);
    CHECK(r.background >= 490);
    CHECK(r.all >= 485); /* 97 % */
}

TEST(classifier_accuracy_degraded) {
    /* a soft, compressed, slightly noisy copy: what a small VAE's reconstruction looks like */
    struct ti_shapes_degrade_opts d = {1.0, 50, 4.0, 0};
    struct acc r;
    measure(&r, 12345, 500, &d, 0);
    CHECK(r.shape >= 475); /* 95 % */
    CHECK(r.colour >= 475);
    CHECK(r.texture >= 475);
    CHECK(r.background >= 475);
}

TEST(held_out_images_are_the_held_out_shape) {
    struct acc r;
    measure(&r, 5, 200, NULL, 1);
    CHECK(r.shape >= 196); /* 98 % */
    CHECK(r.all >= 196);
    struct ti_shapes_degrade_opts d = {1.0, 50, 4.0, 0};
    measure(&r, 5, 200, &d, 1);
    CHECK(r.shape >= 190);
}

TEST(held_out_colour_images_are_teal) {
    struct acc r;
    measure(&r, 7, 200, NULL, 2);
    CHECK(r.colour >= 196); /* 98 % */
    struct ti_shapes_degrade_opts d = {1.0, 50, 4.0, 0};
    measure(&r, 7, 200, &d, 2);
    CHECK(r.colour >= 190);
    /* teal named shapes of every kind, on backgrounds far enough from teal */
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    struct ti_data_err e;
    int shapes_seen[TI_SHAPE_COUNT] = {0};
    for (int i = 0; i < 200; i++) {
        struct ti_shapes_attr a;
        DCHECK_OK(ti_shapes_held_out_colour(&s, (uint64_t)i, &a, NULL, &e), &e);
        CHECK(a.colour == TI_COLOUR_HELD_OUT && a.shape != TI_SHAPE_HELD_OUT);
        CHECK(ti_shapes_contrast(a.colour, a.texture, a.background) >= TI_SHAPES_MIN_CONTRAST);
        shapes_seen[a.shape]++;
    }
    for (int k = 0; k < TI_SHAPE_HELD_OUT; k++)
        CHECK(shapes_seen[k] > 10);
}

TEST(classifier_says_none) {
    static uint8_t px[S * S * 3];
    struct ti_shapes_label l;
    struct ti_data_err e;
    /* a blank image */
    memset(px, 200, sizeof px);
    DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
    CHECK(!l.found && l.shape == -1 && l.colour == -1 && l.texture == -1);
    /* a speck far under 1 % of the image */
    px[(30 * S + 30) * 3] = 0;
    DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
    CHECK(!l.found && l.shape == -1);
    /* a long thin bar: an object, but no shape of the vocabulary */
    memset(px, 250, sizeof px);
    for (int y = 28; y < 34; y++)
        for (int x = 6; x < 58; x++)
            memset(px + (y * S + x) * 3, 20, 3);
    DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
    CHECK(l.found && l.shape == -1 && l.shape_conf == 0);
    CHECK(l.colour == TI_COLOUR_BLACK && l.background == TI_COLOUR_WHITE);
    /* bad arguments */
    CHECK(ti_shapes_classify(&l, &clf, px, 4, 4, &e) == -1);
    CHECK(strstr(e.msg, "4x4") != NULL);
}

/* A hand-drawn image (not the generator's code): a black plain square on white. */
TEST(classifier_on_a_hand_drawn_square) {
    static uint8_t px[S * S * 3];
    struct ti_shapes_label l;
    struct ti_data_err e;
    memset(px, 250, sizeof px);
    for (int y = 16; y < 48; y++)
        for (int x = 20; x < 52; x++)
            memset(px + (y * S + x) * 3, 15, 3);
    DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
    CHECK(l.shape == TI_SHAPE_SQUARE);
    CHECK(l.colour == TI_COLOUR_BLACK);
    CHECK(l.texture == TI_TEXTURE_PLAIN);
    CHECK(l.background == TI_COLOUR_WHITE);
    CHECK(l.cx > 35.9 && l.cx < 36.1 && l.cy > 31.9 && l.cy < 32.1);
    /* the same square at 45 degrees is a diamond */
    memset(px, 250, sizeof px);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (abs(x - 32) + abs(y - 32) <= 20) memset(px + (y * S + x) * 3, 15, 3);
    DCHECK_OK(ti_shapes_classify(&l, &clf, px, S, S, &e), &e);
    CHECK(l.shape == TI_SHAPE_DIAMOND);
}

TEST(degrade_basics) {
    static uint8_t px[S * S * 3], ref[S * S * 3];
    struct ti_data_err e;
    /* a constant image stays constant under blur and JPEG (a flat block has only DC) */
    memset(px, 77, sizeof px);
    struct ti_shapes_degrade_opts d = {2.0, 30, 0, 0};
    DCHECK_OK(ti_shapes_degrade(px, S, S, &d, &e), &e);
    int off = 0;
    for (size_t i = 0; i < sizeof px; i++)
        off += abs(px[i] - 77) > 1;
    CHECK(off == 0);
    /* noise: same seed same bytes, mean kept, spread near sigma */
    struct ti_shapes_degrade_opts nz = {0, 0, 10.0, 9};
    memset(px, 128, sizeof px);
    memset(ref, 128, sizeof ref);
    DCHECK_OK(ti_shapes_degrade(px, S, S, &nz, &e), &e);
    DCHECK_OK(ti_shapes_degrade(ref, S, S, &nz, &e), &e);
    CHECK(!memcmp(px, ref, sizeof px));
    double m = 0, v = 0;
    for (size_t i = 0; i < sizeof px; i++)
        m += px[i];
    m /= sizeof px;
    for (size_t i = 0; i < sizeof px; i++)
        v += (px[i] - m) * (px[i] - m);
    v /= sizeof px;
    CHECK(m > 127.0 && m < 129.0);
    CHECK(v > 90.0 && v < 110.0); /* 10^2 plus rounding's 1/12 */
    /* JPEG at quality 100 barely changes a generated image */
    struct ti_shapes_spec s;
    ti_shapes_spec_default(&s);
    DCHECK_OK(ti_shapes_sample(&s, 0, NULL, px, NULL, 0, &e), &e);
    memcpy(ref, px, sizeof px);
    struct ti_shapes_degrade_opts q = {0, 100, 0, 0};
    DCHECK_OK(ti_shapes_degrade(px, S, S, &q, &e), &e);
    double err = 0;
    for (size_t i = 0; i < sizeof px; i++)
        err += abs(px[i] - ref[i]);
    CHECK(err / sizeof px < 6.0); /* 4:2:0 chroma costs a little at the edges */
    q.jpeg_quality = 101;
    CHECK(ti_shapes_degrade(px, S, S, &q, &e) == -1);
}

int main(void) {
    struct ti_data_err e;
    if (ti_shapes_classifier_init(&clf, &e)) {
        fprintf(stderr, "classifier init: %s\n", e.msg);
        return 1;
    }
    RUN(same_seed_same_bytes_any_order);
    RUN(other_seeds_and_streams_differ);
    RUN(caption_grammar);
    RUN(held_out_colour_rate_zero_is_the_old_data_set);
    RUN(caption_details);
    RUN(bad_specs_refused);
    RUN(objects_inside_the_frame);
    RUN(classifier_accuracy_clean);
    RUN(classifier_accuracy_degraded);
    RUN(held_out_images_are_the_held_out_shape);
    RUN(held_out_colour_images_are_teal);
    RUN(classifier_says_none);
    RUN(classifier_on_a_hand_drawn_square);
    RUN(degrade_basics);
    return tc_finish();
}
