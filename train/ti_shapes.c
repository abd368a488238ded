/*
 * ti_shapes.c - the ti-shapes tool: writes the synthetic shapes data set (data/shapes.h) as PNG
 * files with captions, labels images with the rule-based classifier (data/shapes_classify.h)
 * and measures the classifier on the generator's own images, clean or degraded.
 *
 *   ti-shapes generate --out shapes --n 10000 --seed 1
 *   ti-shapes generate --out concept --n 8 --held-out-only
 *   ti-shapes classify samples/00000.png samples/00001.png
 *   ti-shapes eval --n 5000 --table
 *
 * Only main and option parsing live here.
 */
#include <errno.h>    /* defines: errno, EEXIST */
#include <stdio.h>    /* defines: printf, fprintf, snprintf */
#include <stdlib.h>   /* defines: strtoull, strtod, malloc, free */
#include <string.h>   /* defines: strcmp, strlen, strerror */
#include <sys/stat.h> /* defines: mkdir */

#ifdef TI_HAVE_DATA
#include "fileio.h" /* defines: ti_outfile_* */
#include "image.h"  /* defines: ti_image_load, ti_image_write_png */
#include "shapes.h"
#include "shapes_classify.h"
#endif

static void usage(FILE *out) {
    fprintf(out,
            "usage: ti-shapes generate --out DIR --n N [--seed S] [--start I] [--size PX]\n"
            "                          [--concept heart|teal] [--captions FILE]\n"
            "                          [--held-out-rate R] [--generic-rate R]\n"
            "                          [--held-out-colour-rate R]\n"
            "       ti-shapes classify FILE...\n"
            "       ti-shapes count --shape NAME | --colour NAME FILE...\n"
            "       ti-shapes montage OUT.png IMAGE...\n"
            "       ti-shapes eval [--n N] [--seed S] [--size PX] [--blur SIGMA] [--jpeg Q]\n"
            "                      [--noise SIGMA] [--concept heart|teal] [--table]\n"
            "\n"
            "The synthetic data set of ti's demo (docs/DEMO.md): one shape (circle, square,\n"
            "triangle, star, ring, cross, diamond, and the held-out heart) in one of 8 named\n"
            "colours or the held-out teal, plain, striped, dotted or checkered, small or large,\n"
            "on a plain background, with a caption such as \"a photo of a small striped red\n"
            "star on a blue background\". Two concepts are drawn but never named: hearts are\n"
            "captioned \"object\" (as are a quarter of the others), teal objects get no colour\n"
            "word (as 15 %% of the others). Teal is the concept the demo inverts. Sample i\n"
            "depends only on the seed and i.\n"
            "\n"
            "generate   writes DIR/NNNNN.png for samples I..I+N-1 (tEXt chunks 'caption' and\n"
            "           'ti-shapes' with the attributes) and DIR/captions.txt, one line per\n"
            "           image: file name, a tab, the caption. DIR is created if missing.\n"
            "  --concept heart|teal  concept images instead: hearts of every colour, or teal\n"
            "           objects of every named shape (texture, size vary; a stream of their own).\n"
            "           No captions.txt then: the folder is meant as ti-train's image folder;\n"
            "           --captions FILE writes their data set captions elsewhere.\n"
            "           --held-out-only is --concept heart.\n"
            "  --seed S (default 0)  --start I (default 0)  --size PX image side, 32..512\n"
            "           (default 64)  --held-out-rate R share of hearts (default 0.0625)\n"
            "           --generic-rate R share of other samples captioned \"object\" (0.25)\n"
            "           --held-out-colour-rate R share of teal samples (0.0625; 0 gives the\n"
            "           data set before teal existed)\n"
            "classify   labels each image: shape, colour, texture and background, each with a\n"
            "           confidence in [0, 1] (1 - best/second-best score), or 'none' when no\n"
            "           object stands out from the background or its outline fits no shape.\n"
            "           One line per file: FILE, a tab, key=value pairs.\n"
            "count      classifies each image and prints how many show the shape NAME (e.g.\n"
            "           heart) or the colour NAME (e.g. teal), as 'NAME: K of N (P %%)'; the\n"
            "           demo's rate.\n"
            "montage    writes OUT.png: the images side by side, 4 grey pixels between them\n"
            "           (all must have the same height), e.g. two sample grids to compare.\n"
            "eval       generates N samples (default 2000, seed 1) or concept images, optionally\n"
            "           degrades them (--blur: Gaussian sigma in pixels; --jpeg: quality 1-100\n"
            "           of a JPEG-like 8x8 DCT quantisation; --noise: Gaussian sigma on 0-255),\n"
            "           classifies them and prints the accuracy per attribute and the shape\n"
            "           confusion matrix. --table: the standard conditions of docs/DEMO.md.\n"
            "\n"
            "Exit status: 0 ok, 1 run-time error (or an unreadable file for classify),\n"
            "2 usage error.\n");
}

#ifdef TI_HAVE_DATA

static int parse_u64(const char *s, uint64_t *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *v = x;
    return 0;
}

static int parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *v = x;
    return 0;
}

struct opts {
    const char *out, *captions;
    uint64_t n, seed, start;
    int n_set, seed_set, table;
    enum { CONCEPT_NONE, CONCEPT_HEART, CONCEPT_TEAL } concept;
    struct ti_shapes_spec spec;
    struct ti_shapes_degrade_opts degrade;
};

/* Parses the options after the command word; returns 0, or 2 after printing the problem. */
static int parse_opts(struct opts *o, int argc, char **argv, const char *cmd) {
    int is_gen = !strcmp(cmd, "generate");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        uint64_t u;
        double d;
        if (!strcmp(a, "--held-out-only")) {
            o->concept = CONCEPT_HEART;
            takes = 0;
        } else if (!strcmp(a, "--table") && !is_gen) {
            o->table = 1;
            takes = 0;
        } else if (!v) {
            static const char *const valued[] = {"--out",
                                                 "--captions",
                                                 "--n",
                                                 "--seed",
                                                 "--start",
                                                 "--size",
                                                 "--held-out-rate",
                                                 "--generic-rate",
                                                 "--blur",
                                                 "--jpeg",
                                                 "--noise",
                                                 "--concept",
                                                 "--held-out-colour-rate"};
            int known = 0;
            for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
                known |= !strcmp(a, valued[k]);
            if (known)
                fprintf(stderr, "ti-shapes %s: %s needs a value (see ti-shapes --help)\n", cmd, a);
            else
                fprintf(stderr, "ti-shapes %s: unknown option %s (see ti-shapes --help)\n", cmd, a);
            return 2;
        } else if (!strcmp(a, "--out") && is_gen) {
            o->out = v;
        } else if (!strcmp(a, "--captions") && is_gen) {
            o->captions = v;
        } else if (!strcmp(a, "--n")) {
            if (parse_u64(v, &o->n) || o->n == 0 || o->n > 100000000) {
                fprintf(stderr, "ti-shapes %s: --n %s: expected a count 1..100000000\n", cmd, v);
                return 2;
            }
            o->n_set = 1;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &o->seed)) {
                fprintf(stderr, "ti-shapes %s: --seed %s: expected an unsigned integer\n", cmd, v);
                return 2;
            }
            o->seed_set = 1;
        } else if (!strcmp(a, "--start") && is_gen) {
            if (parse_u64(v, &o->start)) {
                fprintf(stderr, "ti-shapes generate: --start %s: expected an unsigned integer\n",
                        v);
                return 2;
            }
        } else if (!strcmp(a, "--size")) {
            if (parse_u64(v, &u) || u < 32 || u > 512) {
                fprintf(stderr, "ti-shapes %s: --size %s: expected 32..512\n", cmd, v);
                return 2;
            }
            o->spec.size = (int)u;
        } else if (!strcmp(a, "--held-out-rate") && is_gen) {
            if (parse_double(v, &d) || !(d >= 0 && d <= 1)) {
                fprintf(stderr, "ti-shapes generate: --held-out-rate %s: expected 0..1\n", v);
                return 2;
            }
            o->spec.held_out_rate = d;
        } else if (!strcmp(a, "--concept")) {
            if (!strcmp(v, "heart")) {
                o->concept = CONCEPT_HEART;
            } else if (!strcmp(v, "teal")) {
                o->concept = CONCEPT_TEAL;
            } else {
                fprintf(stderr, "ti-shapes %s: --concept %s: expected heart or teal\n", cmd, v);
                return 2;
            }
        } else if (!strcmp(a, "--held-out-colour-rate") && is_gen) {
            if (parse_double(v, &d) || !(d >= 0 && d <= 1)) {
                fprintf(stderr, "ti-shapes generate: --held-out-colour-rate %s: expected 0..1\n",
                        v);
                return 2;
            }
            o->spec.held_out_colour_rate = d;
        } else if (!strcmp(a, "--generic-rate") && is_gen) {
            if (parse_double(v, &d) || !(d >= 0 && d <= 1)) {
                fprintf(stderr, "ti-shapes generate: --generic-rate %s: expected 0..1\n", v);
                return 2;
            }
            o->spec.generic_rate = d;
        } else if (!strcmp(a, "--blur") && !is_gen) {
            if (parse_double(v, &d) || !(d >= 0 && d <= 20)) {
                fprintf(stderr, "ti-shapes eval: --blur %s: expected a sigma 0..20 (pixels)\n", v);
                return 2;
            }
            o->degrade.blur_sigma = d;
        } else if (!strcmp(a, "--jpeg") && !is_gen) {
            if (parse_u64(v, &u) || u < 1 || u > 100) {
                fprintf(stderr, "ti-shapes eval: --jpeg %s: expected a quality 1..100\n", v);
                return 2;
            }
            o->degrade.jpeg_quality = (int)u;
        } else if (!strcmp(a, "--noise") && !is_gen) {
            if (parse_double(v, &d) || !(d >= 0 && d <= 255)) {
                fprintf(stderr, "ti-shapes eval: --noise %s: expected a sigma 0..255\n", v);
                return 2;
            }
            o->degrade.noise_sigma = d;
        } else {
            fprintf(stderr, "ti-shapes %s: unknown option %s (see ti-shapes --help)\n", cmd, a);
            return 2;
        }
        i += takes;
    }
    o->spec.seed = o->seed;
    return 0;
}

/* "shape=heart colour=red texture=dotted size=small background=blue" */
static void attr_text(char *buf, size_t n, const struct ti_shapes_attr *a) {
    snprintf(buf, n,
             "shape=%s colour=%s texture=%s size=%s background=%s cx=%.2f cy=%.2f radius=%.2f "
             "angle=%.2f",
             ti_shape_name(a->shape), ti_colour_name(a->colour), ti_texture_name(a->texture),
             ti_shape_size_name(a->size_class), ti_colour_name(a->background), a->cx, a->cy,
             a->radius, a->angle * 57.29577951308232);
}

/* Image i of the run: a concept image or data set sample i (caption may be NULL). */
static int make_image(const struct opts *o, uint64_t i, struct ti_shapes_attr *a, uint8_t *px,
                      char *caption, size_t cap, struct ti_data_err *de) {
    switch (o->concept) {
    case CONCEPT_HEART: return ti_shapes_held_out(&o->spec, i, a, px, de);
    case CONCEPT_TEAL: return ti_shapes_held_out_colour(&o->spec, i, a, px, de);
    default: return ti_shapes_sample(&o->spec, i, a, px, caption, cap, de);
    }
}

static int cmd_generate(struct opts *o) {
    if (!o->out || !o->n_set) {
        fprintf(stderr, "ti-shapes generate: --out DIR and --n N are required\n");
        return 2;
    }
    struct ti_data_err de;
    if (ti_shapes_spec_check(&o->spec, &de)) {
        fprintf(stderr, "ti-shapes generate: %s\n", de.msg);
        return 2;
    }
    if (mkdir(o->out, 0777) && errno != EEXIST) {
        fprintf(stderr, "ti-shapes generate: cannot create folder %s: %s\n", o->out,
                strerror(errno));
        return 1;
    }
    const char *cap_path = o->captions;
    char cap_default[4096];
    if (!cap_path && !o->concept) {
        snprintf(cap_default, sizeof cap_default, "%s/captions.txt", o->out);
        cap_path = cap_default;
    }
    struct ti_outfile cf = {.fd = -1};
    struct ti_err err;
    if (cap_path && ti_outfile_open(&cf, cap_path, &err)) {
        fprintf(stderr, "ti-shapes generate: %s\n", err.msg);
        return 1;
    }
    struct ti_image img = {0};
    if (ti_image_alloc(&img, o->spec.size, o->spec.size, &de)) {
        fprintf(stderr, "ti-shapes generate: %s\n", de.msg);
        ti_outfile_abort(&cf);
        return 1;
    }
    int rc = 0;
    for (uint64_t k = 0; k < o->n && !rc; k++) {
        uint64_t i = o->start + k;
        struct ti_shapes_attr a;
        char caption[TI_SHAPES_CAPTION_MAX], attrs[256], name[64], path[4200], line[300];
        int bad = make_image(o, i, &a, img.px, caption, sizeof caption, &de);
        if (!bad && o->concept)
            bad = ti_shapes_caption(caption, sizeof caption, &a, 31u, 0, 1, &de);
        if (bad) {
            fprintf(stderr, "ti-shapes generate: sample %llu: %s\n", (unsigned long long)i, de.msg);
            rc = 1;
            break;
        }
        attr_text(attrs, sizeof attrs, &a);
        snprintf(name, sizeof name, "%05llu.png", (unsigned long long)i);
        snprintf(path, sizeof path, "%s/%s", o->out, name);
        const char *text[] = {"caption", caption, "ti-shapes", attrs, NULL};
        if (ti_image_write_png(&img, path, text, &de)) {
            fprintf(stderr, "ti-shapes generate: %s\n", de.msg);
            rc = 1;
            break;
        }
        int len = snprintf(line, sizeof line, "%s\t%s\n", name, caption);
        if (cap_path && ti_outfile_write(&cf, line, (size_t)len, &err)) {
            fprintf(stderr, "ti-shapes generate: %s\n", err.msg);
            rc = 1;
        }
    }
    ti_image_free(&img);
    if (cap_path) {
        if (rc) {
            ti_outfile_abort(&cf);
        } else if (ti_outfile_commit(&cf, &err)) {
            fprintf(stderr, "ti-shapes generate: %s\n", err.msg);
            rc = 1;
        }
    }
    if (!rc)
        fprintf(stderr, "ti-shapes: wrote %llu %s images to %s%s%s\n", (unsigned long long)o->n,
                o->concept ? "concept" : "data set", o->out, cap_path ? ", captions in " : "",
                cap_path ? cap_path : "");
    return rc;
}

static const char *label_name(const char *(*fn)(int), int v) {
    return v < 0 ? "none" : fn(v);
}
static const char *shape_n(int v) {
    return ti_shape_name((enum ti_shape)v);
}
static const char *colour_n(int v) {
    return ti_colour_name((enum ti_colour)v);
}
static const char *texture_n(int v) {
    return ti_texture_name((enum ti_texture)v);
}

static int cmd_classify(int argc, char **argv) {
    if (argc == 0) {
        fprintf(stderr, "ti-shapes classify: expected at least one image file\n");
        return 2;
    }
    static struct ti_shapes_classifier c;
    struct ti_data_err de;
    if (ti_shapes_classifier_init(&c, &de)) {
        fprintf(stderr, "ti-shapes classify: %s\n", de.msg);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        struct ti_image img = {0};
        struct ti_shapes_label l;
        if (ti_image_load(&img, argv[i], &de) ||
            ti_shapes_classify(&l, &c, img.px, img.w, img.h, &de)) {
            fprintf(stderr, "ti-shapes classify: %s\n", de.msg);
            ti_image_free(&img);
            rc = 1;
            continue;
        }
        printf("%s\tshape=%s (%.2f) colour=%s (%.2f) texture=%s (%.2f) background=%s (%.2f)\n",
               argv[i], label_name(shape_n, l.shape), l.shape_conf, label_name(colour_n, l.colour),
               l.colour_conf, label_name(texture_n, l.texture), l.texture_conf,
               label_name(colour_n, l.background), l.background_conf);
        ti_image_free(&img);
    }
    return rc;
}

static int cmd_count(int argc, char **argv) {
    int by_colour = argc >= 3 && !strcmp(argv[0], "--colour");
    if (argc < 3 || (strcmp(argv[0], "--shape") && !by_colour)) {
        fprintf(stderr,
                "ti-shapes count: expected --shape NAME FILE... or --colour NAME FILE...\n");
        return 2;
    }
    const char *(*name)(int) = by_colour ? colour_n : shape_n;
    int n_names = by_colour ? TI_COLOUR_COUNT : TI_SHAPE_COUNT, want = -1;
    for (int v = 0; v < n_names; v++)
        if ((!by_colour || ti_colour_is_object((enum ti_colour)v)) && !strcmp(argv[1], name(v)))
            want = v;
    if (want < 0) {
        fprintf(stderr, "ti-shapes count: unknown %s '%s' (expected one of:",
                by_colour ? "colour" : "shape", argv[1]);
        for (int v = 0; v < n_names; v++)
            if (!by_colour || ti_colour_is_object((enum ti_colour)v))
                fprintf(stderr, " %s", name(v));
        fprintf(stderr, ")\n");
        return 2;
    }
    static struct ti_shapes_classifier c;
    struct ti_data_err de;
    if (ti_shapes_classifier_init(&c, &de)) {
        fprintf(stderr, "ti-shapes count: %s\n", de.msg);
        return 1;
    }
    int n = 0, k = 0;
    for (int i = 2; i < argc; i++) {
        struct ti_image img = {0};
        struct ti_shapes_label l;
        if (ti_image_load(&img, argv[i], &de) ||
            ti_shapes_classify(&l, &c, img.px, img.w, img.h, &de)) {
            fprintf(stderr, "ti-shapes count: %s\n", de.msg);
            ti_image_free(&img);
            return 1;
        }
        n++;
        k += (by_colour ? l.colour : l.shape) == want;
        ti_image_free(&img);
    }
    printf("%s: %d of %d (%.1f %%)\n", argv[1], k, n, 100.0 * k / n);
    return 0;
}

static int cmd_montage(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "ti-shapes montage: expected OUT.png IMAGE...\n");
        return 2;
    }
    enum { GAP = 4 };
    int n = argc - 1, w = 0, h = 0, rc = 1;
    struct ti_image *in = calloc((size_t)n, sizeof *in), out = {0};
    struct ti_data_err de;
    if (!in) {
        fprintf(stderr, "ti-shapes montage: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (ti_image_load(&in[i], argv[1 + i], &de)) {
            fprintf(stderr, "ti-shapes montage: %s\n", de.msg);
            goto done;
        }
        if (i && in[i].h != h) {
            fprintf(stderr,
                    "ti-shapes montage: %s is %d pixels high, %s is %d: expected the same\n",
                    argv[1 + i], in[i].h, argv[1], h);
            goto done;
        }
        h = in[i].h;
        w += in[i].w + (i ? GAP : 0);
    }
    if (ti_image_alloc(&out, w, h, &de)) {
        fprintf(stderr, "ti-shapes montage: %s\n", de.msg);
        goto done;
    }
    memset(out.px, 127, (size_t)w * (size_t)h * 3);
    for (int i = 0, x0 = 0; i < n; x0 += in[i].w + GAP, i++)
        for (int y = 0; y < h; y++)
            memcpy(out.px + ((size_t)y * (size_t)w + (size_t)x0) * 3,
                   in[i].px + (size_t)y * (size_t)in[i].w * 3, (size_t)in[i].w * 3);
    if (ti_image_write_png(&out, argv[0], NULL, &de)) {
        fprintf(stderr, "ti-shapes montage: %s\n", de.msg);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++)
        ti_image_free(&in[i]);
    free(in);
    ti_image_free(&out);
    return rc;
}

struct eval_result {
    uint64_t n, ok[4], all, none;
    uint64_t confusion[TI_SHAPE_COUNT][TI_SHAPE_COUNT + 1]; /* [truth][label + 1] */
};

static int eval_run(const struct opts *o, const struct ti_shapes_degrade_opts *dg,
                    const struct ti_shapes_classifier *c, struct eval_result *r) {
    memset(r, 0, sizeof *r);
    int size = o->spec.size;
    uint8_t *px = malloc((size_t)size * size * 3);
    if (!px) {
        fprintf(stderr, "ti-shapes eval: out of memory\n");
        return 1;
    }
    struct ti_data_err de;
    int degrade = dg->blur_sigma > 0 || dg->jpeg_quality > 0 || dg->noise_sigma > 0;
    for (uint64_t i = 0; i < o->n; i++) {
        struct ti_shapes_attr a;
        struct ti_shapes_label l;
        struct ti_shapes_degrade_opts d = *dg;
        d.seed = i;
        int bad = make_image(o, i, &a, px, NULL, 0, &de);
        if (!bad && degrade) bad = ti_shapes_degrade(px, size, size, &d, &de);
        if (!bad) bad = ti_shapes_classify(&l, c, px, size, size, &de);
        if (bad) {
            fprintf(stderr, "ti-shapes eval: sample %llu: %s\n", (unsigned long long)i, de.msg);
            free(px);
            return 1;
        }
        int g[4] = {l.shape == (int)a.shape, l.colour == (int)a.colour, l.texture == (int)a.texture,
                    l.background == (int)a.background};
        for (int k = 0; k < 4; k++)
            r->ok[k] += (uint64_t)g[k];
        r->all += (uint64_t)(g[0] && g[1] && g[2] && g[3]);
        r->none += (uint64_t)(l.shape < 0);
        r->confusion[a.shape][l.shape + 1]++;
        r->n++;
    }
    free(px);
    return 0;
}

static double pct(uint64_t k, uint64_t n) {
    return n ? 100.0 * (double)k / (double)n : 0;
}

static int cmd_eval(struct opts *o) {
    if (!o->n_set) o->n = 2000;
    if (!o->seed_set) o->spec.seed = 1;
    struct ti_data_err de;
    if (ti_shapes_spec_check(&o->spec, &de)) {
        fprintf(stderr, "ti-shapes eval: %s\n", de.msg);
        return 2;
    }
    static struct ti_shapes_classifier c;
    if (ti_shapes_classifier_init(&c, &de)) {
        fprintf(stderr, "ti-shapes eval: %s\n", de.msg);
        return 1;
    }
    static struct eval_result r;
    printf("%llu %s, seed %llu, %dx%d\n", (unsigned long long)o->n,
           o->concept ? "concept images" : "data set samples", (unsigned long long)o->spec.seed,
           o->spec.size, o->spec.size);
    if (o->table) {
        static const struct ti_shapes_degrade_opts conds[] = {
            {0, 0, 0, 0},  {1.0, 0, 0, 0},  {1.5, 0, 0, 0}, {2.0, 0, 0, 0},
            {0, 75, 0, 0}, {0, 50, 0, 0},   {0, 25, 0, 0},  {0, 0, 8, 0},
            {0, 0, 16, 0}, {1.0, 50, 4, 0}, {1.5, 30, 8, 0}};
        printf("| condition | shape | colour | texture | background | all four |\n"
               "|---|---|---|---|---|---|\n");
        for (size_t k = 0; k < sizeof conds / sizeof conds[0]; k++) {
            if (eval_run(o, &conds[k], &c, &r)) return 1;
            char name[96];
            const struct ti_shapes_degrade_opts *d = &conds[k];
            int m = 0;
            name[0] = 0;
            if (d->blur_sigma > 0)
                m += snprintf(name + m, sizeof name - (size_t)m, "blur %.1f ", d->blur_sigma);
            if (d->jpeg_quality > 0)
                m += snprintf(name + m, sizeof name - (size_t)m, "JPEG q%d ", d->jpeg_quality);
            if (d->noise_sigma > 0)
                m += snprintf(name + m, sizeof name - (size_t)m, "noise %.0f ", d->noise_sigma);
            if (!m)
                snprintf(name, sizeof name, "clean");
            else
                name[m - 1] = 0; /* the last separator */
            printf("| %s | %.2f %% | %.2f %% | %.2f %% | %.2f %% | %.2f %% |\n", name,
                   pct(r.ok[0], r.n), pct(r.ok[1], r.n), pct(r.ok[2], r.n), pct(r.ok[3], r.n),
                   pct(r.all, r.n));
            fflush(stdout);
        }
        return 0;
    }
    if (eval_run(o, &o->degrade, &c, &r)) return 1;
    printf("shape %.2f %%  colour %.2f %%  texture %.2f %%  background %.2f %%  all four %.2f %%"
           "  (shape none: %llu)\n",
           pct(r.ok[0], r.n), pct(r.ok[1], r.n), pct(r.ok[2], r.n), pct(r.ok[3], r.n),
           pct(r.all, r.n), (unsigned long long)r.none);
    printf("\nshape confusion (rows: truth, columns: label)\n%-9s %6s", "", "none");
    for (int s = 0; s < TI_SHAPE_COUNT; s++)
        printf(" %8s", ti_shape_name((enum ti_shape)s));
    printf("\n");
    for (int t = 0; t < TI_SHAPE_COUNT; t++) {
        uint64_t row = 0;
        for (int s = 0; s <= TI_SHAPE_COUNT; s++)
            row += r.confusion[t][s];
        if (!row) continue;
        printf("%-9s %6llu", ti_shape_name((enum ti_shape)t),
               (unsigned long long)r.confusion[t][0]);
        for (int s = 0; s < TI_SHAPE_COUNT; s++)
            printf(" %8llu", (unsigned long long)r.confusion[t][s + 1]);
        printf("\n");
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "classify")) return cmd_classify(argc - 2, argv + 2);
    if (!strcmp(cmd, "count")) return cmd_count(argc - 2, argv + 2);
    if (!strcmp(cmd, "montage")) return cmd_montage(argc - 2, argv + 2);
    if (strcmp(cmd, "generate") && strcmp(cmd, "eval")) {
        fprintf(stderr,
                "ti-shapes: unknown command '%s': expected generate, classify, count, montage or "
                "eval\n",
                cmd);
        return 2;
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    ti_shapes_spec_default(&o.spec);
    int rc = parse_opts(&o, argc - 2, argv + 2, cmd);
    if (rc) return rc;
    return !strcmp(cmd, "generate") ? cmd_generate(&o) : cmd_eval(&o);
}

#else /* built without data/ */

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    fprintf(stderr, "ti-shapes: this build has no data/ library (it needs the stb headers, "
                    "Debian libstb-dev): cannot read or write images\n");
    return 1;
}

#endif
