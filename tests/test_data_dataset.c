/*
 * test_data_dataset.c - data/templates.h and data/dataset.h: the peer's templates (counts and
 * entries typed from ti-peer.md §4.2), folder listing (sorted, hidden and folders skipped,
 * unusable files skipped with a warning), preparation against PIL (tests/fixtures/data/dataset),
 * captions (coarse class, per-image tokens, style), flips, lengths and the error cases.
 */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_common.h"
#include "test_util.h"
#include "dataset.h"
#include "image.h"
#include "templates.h"

#define FIX "tests/fixtures/data/"

static int count_unique(const char *const *list, int n) {
    int u = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(list[i], list[j]);
        u += !seen;
    }
    return u;
}

TEST(templates_verbatim) {
    CHECK(ti_n_templates_object == 81);
    CHECK(count_unique(ti_templates_object, ti_n_templates_object) == 57);
    CHECK(ti_n_templates_object_dual == 27);
    CHECK(ti_n_templates_style == 19);
    CHECK(count_unique(ti_templates_style, ti_n_templates_style) == 17);
    CHECK(ti_n_templates_style_dual == 17);
    CHECK(!strcmp(ti_templates_object[0], "a photo of a {}"));
    CHECK(!strcmp(ti_templates_object[26], "a photo of a small {}"));
    CHECK(!strcmp(ti_templates_object[27], "an illustration of a {}"));
    CHECK(!strcmp(ti_templates_object[28], "a rendering of a {}"));
    CHECK(!strcmp(ti_templates_object[54], "a depiction of a {}"));
    CHECK(!strcmp(ti_templates_object[80], "a depiction of a small {}"));
    CHECK(!strcmp(ti_templates_object_dual[0], "a photo of a {} with {}"));
    CHECK(!strcmp(ti_templates_object_dual[26], "a photo of a small {} with {}"));
    CHECK(!strcmp(ti_templates_style[0], "a painting in the style of {}"));
    CHECK(!strcmp(ti_templates_style[7], "a picture in the style of {}"));
    CHECK(!strcmp(ti_templates_style[18], "a large painting in the style of {}"));
    CHECK(!strcmp(ti_templates_style_dual[12], "a painting of one {} in the style of {}"));
    CHECK(!strcmp(ti_templates_style_dual[16], "a large painting in the style of {} with {}"));
    CHECK(!strcmp(ti_per_image_tokens[0], "\xd7\x90"));  /* alef */
    CHECK(!strcmp(ti_per_image_tokens[10], "\xd7\x9b")); /* kaf */
    CHECK(!strcmp(ti_per_image_tokens[21], "\xd7\xaa")); /* tav */
    for (int i = 0; i < 22; i++)
        CHECK(strlen(ti_per_image_tokens[i]) == 2);

    char buf[64];
    struct ti_data_err e = {{0}};
    DCHECK_OK(ti_template_format(buf, sizeof buf, "a {} with {}", "cat *", "x", &e), &e);
    CHECK(!strcmp(buf, "a cat * with x"));
    CHECK(ti_template_format(buf, 8, "a photo of a {}", "*", NULL, &e) == -1);
    CHECK(ti_template_format(buf, sizeof buf, "a {} with {}", "*", NULL, &e) == -1);
    DCHECK_OK(ti_template_format(buf, 16, "a photo of a {}", "*", NULL, &e), &e); /* 14 + NUL */
}

/* ---- a folder built for the test ------------------------------------------------------------ */

static char root[256];

static void copy_file(const char *from, const char *name) {
    char to[512];
    snprintf(to, sizeof to, "%s/%s", root, name);
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    CHECK(a && b);
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0)
        CHECK(fwrite(buf, 1, n, b) == n);
    if (a) fclose(a);
    if (b) fclose(b);
}

static void write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) fputs(text, f), fclose(f);
}

struct warnings {
    int n;
    char msg[8][640];
};
static void on_warn(void *user, const char *msg) {
    struct warnings *w = user;
    if (w->n < 8) snprintf(w->msg[w->n], sizeof w->msg[0], "%s", msg);
    w->n++;
}
static int warned_about(const struct warnings *w, const char *name) {
    for (int i = 0; i < w->n && i < 8; i++) {
        if (strstr(w->msg[i], name) && strstr(w->msg[i], root)) return 1;
    }
    return 0;
}

static int equal_images(const struct ti_image *a, const char *path) {
    struct ti_image b = {0};
    struct ti_data_err e = {{0}};
    if (ti_image_load(&b, path, &e)) return 0;
    int eq = a && a->w == b.w && a->h == b.h && !memcmp(a->px, b.px, (size_t)b.w * b.h * 3);
    ti_image_free(&b);
    return eq;
}

TEST(listing_skipping_and_preparation) {
    char p[512];
    copy_file(FIX "dataset/src.png", "b.png");
    copy_file(FIX "exif/orient_6.jpg", "a.jpg");
    copy_file(FIX "formats/rgb.bmp", "c.bmp");
    copy_file(FIX "hostile/truncated.jpg", "broken.jpg");
    write_text("notes.txt", "not an image\n");
    write_text(".DS_Store", "\x00\x00\x00\x01Bud1");
    snprintf(p, sizeof p, "%s/.ipynb_checkpoints", root);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/sub", root);
    CHECK(mkdir(p, 0755) == 0);

    struct ti_dataset_opts o;
    ti_dataset_opts_default(&o);
    o.root = root;
    o.size = 32;
    o.center_crop = 1; /* interp: bicubic (default) */
    struct warnings w = {0};
    struct ti_dataset *ds = NULL;
    struct ti_data_err e = {{0}};
    DCHECK_OK(ti_dataset_open(&ds, &o, on_warn, &w, &e), &e);
    if (!ds) return;
    CHECK(ti_dataset_n_images(ds) == 3);
    CHECK(ti_dataset_len(ds) == 300);
    snprintf(p, sizeof p, "%s/a.jpg", root);
    CHECK(!strcmp(ti_dataset_image_path(ds, 0), p));
    snprintf(p, sizeof p, "%s/b.png", root);
    CHECK(!strcmp(ti_dataset_image_path(ds, 1), p));
    snprintf(p, sizeof p, "%s/c.bmp", root);
    CHECK(!strcmp(ti_dataset_image_path(ds, 2), p));
    CHECK(ti_dataset_image_path(ds, 3) == NULL);
    CHECK(w.n == 3);
    CHECK(warned_about(&w, "broken.jpg") && warned_about(&w, "truncated"));
    CHECK(warned_about(&w, "notes.txt") && warned_about(&w, "not an image"));
    CHECK(warned_about(&w, "sub"));
    /* b.png: PIL's center crop + bicubic resize, exactly */
    CHECK(equal_images(ti_dataset_image(ds, 1), FIX "dataset/prep_crop_bicubic.png"));
    for (int i = 0; i < 3; i++) {
        CHECK(ti_dataset_image(ds, i)->w == 32 && ti_dataset_image(ds, i)->h == 32);
    }

    /* examples: image i % n, flip when u_flip < flip_p, px / 127.5 - 1 */
    struct ti_image want = {0};
    DCHECK_OK(ti_image_load(&want, FIX "dataset/prep_crop_bicubic.png", &e), &e);
    static float chw[3 * 32 * 32];
    char cap[128];
    for (int flip = 0; flip < 2 && want.px; flip++) {
        /* example 4 -> image 1; u_flip 0.49 < 0.5 flips, 0.5 does not */
        DCHECK_OK(ti_dataset_example(ds, 4, 0.9, 0.0, flip ? 0.49 : 0.5, chw, cap, sizeof cap, &e),
                  &e);
        int bad = 0;
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < 32; y++) {
                for (int x = 0; x < 32; x++) {
                    int sx = flip ? 31 - x : x;
                    float v = (float)(want.px[(y * 32 + sx) * 3 + c] / 127.5 - 1.0);
                    bad += chw[(c * 32 + y) * 32 + x] != v;
                }
            }
        }
        CHECK(bad == 0);
        CHECK(!strcmp(cap, "a photo of a *"));
    }
    ti_image_free(&want);
    ti_dataset_close(ds);

    /* without center crop: squashed, lanczos; validation length */
    o.center_crop = 0;
    o.interp = TI_RESAMPLE_LANCZOS;
    o.is_train = 0;
    w.n = 0;
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    if (!ds) return;
    CHECK(ti_dataset_len(ds) == 3);
    CHECK(equal_images(ti_dataset_image(ds, 1), FIX "dataset/prep_squash_lanczos.png"));
    ti_dataset_close(ds);

    /* size 0 keeps each image as decoded (EXIF applied: a.jpg is the upright 48x32) */
    o.size = 0;
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    if (!ds) return;
    CHECK(ti_dataset_image(ds, 1)->w == 50 && ti_dataset_image(ds, 1)->h == 37);
    if (ti_image_exif_supported()) {
        CHECK(ti_dataset_image(ds, 0)->w == 48 && ti_dataset_image(ds, 0)->h == 32);
    }
    CHECK(equal_images(ti_dataset_image(ds, 1), FIX "dataset/src.png"));
    ti_dataset_close(ds);
}

TEST(captions) {
    struct ti_dataset_opts o;
    ti_dataset_opts_default(&o);
    o.root = root;
    o.size = 8;
    struct ti_dataset *ds = NULL;
    struct ti_data_err e = {{0}};
    char cap[256];
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    if (!ds) return;
    /* u_template -> floor(u * 81) */
    DCHECK_OK(ti_dataset_caption(ds, 0, 0.0, 0.0, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a photo of a *"));
    DCHECK_OK(ti_dataset_caption(ds, 0, 0.0, 27.5 / 81, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "an illustration of a *"));
    DCHECK_OK(ti_dataset_caption(ds, 0, 0.0, 0.9999999, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a depiction of a small *"));
    /* per_image_tokens off: u_mix is ignored */
    DCHECK_OK(ti_dataset_caption(ds, 1, 0.0, 0.0, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a photo of a *"));
    CHECK(ti_dataset_caption(ds, 0, 0.0, 0.0, cap, 10, &e) == -1);
    ti_dataset_close(ds);

    o.placeholder = "<sks>";
    o.coarse_class_text = "cat";
    o.per_image_tokens = 1;
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    if (!ds) return;
    /* u_mix < 0.25: dual template with the image's letter (example 4 -> image 1 -> bet) */
    DCHECK_OK(ti_dataset_caption(ds, 4, 0.2, 0.0, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a photo of a cat <sks> with \xd7\x91"));
    DCHECK_OK(ti_dataset_caption(ds, 2, 0.2, 26.5 / 27, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a photo of a small cat <sks> with \xd7\x92"));
    DCHECK_OK(ti_dataset_caption(ds, 4, 0.25, 0.0, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a photo of a cat <sks>"));
    ti_dataset_close(ds);

    o.style = 1;
    o.coarse_class_text = "";
    o.placeholder = "*";
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    if (!ds) return;
    DCHECK_OK(ti_dataset_caption(ds, 0, 0.9, 18.5 / 19, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a large painting in the style of *"));
    DCHECK_OK(ti_dataset_caption(ds, 0, 0.1, 12.5 / 17, cap, sizeof cap, &e), &e);
    CHECK(!strcmp(cap, "a painting of one * in the style of \xd7\x90"));
    ti_dataset_close(ds);
}

/* ---- caption template files (ti-train --templates) ------------------------------------------ */

static char tdir[256];

/* writes n bytes of text to tdir/name; returns the path in a static buffer */
static const char *template_file(const char *name, const char *text, size_t n) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tdir, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(text, 1, n, f) == n);
        fclose(f);
    }
    return p;
}
#define TFILE(name, lit) template_file(name, lit, sizeof lit - 1)

/* loading a bad file fails with a message holding each of the words */
static void template_error(const char *path, const char *w1, const char *w2) {
    struct ti_template_list l = {0};
    struct ti_data_err e = {{0}};
    CHECK(ti_templates_load(&l, path, &e) == -1);
    CHECK(l.t == NULL && l.n == 0);
    CHECK(strstr(e.msg, path) != NULL);
    if (!strstr(e.msg, w1) || (w2 && !strstr(e.msg, w2)))
        fprintf(stderr, "  message without '%s' / '%s': %s\n", w1, w2 ? w2 : "", e.msg);
    CHECK(strstr(e.msg, w1) != NULL);
    CHECK(!w2 || strstr(e.msg, w2) != NULL);
}

/* example i's caption for the draws u_mix, u_template is want (ds NULL: a failed open, counted) */
static void caption_is(const struct ti_dataset *ds, size_t i, double u_mix, double u_template,
                       const char *want) {
    char cap[256];
    struct ti_data_err e = {{0}};
    CHECK(ds != NULL);
    if (!ds) return;
    DCHECK_OK(ti_dataset_caption(ds, i, u_mix, u_template, cap, sizeof cap, &e), &e);
    if (strcmp(cap, want)) fprintf(stderr, "  caption '%s', expected '%s'\n", cap, want);
    CHECK(!strcmp(cap, want));
}

TEST(template_files) {
    CHECK(tu_mkdtemp(tdir, sizeof tdir, "ti_test_templates") == 0);
    struct ti_template_list l = {0};
    struct ti_data_err e = {{0}};
    /* a byte order mark, a comment, blanks, CRLF, AUTOMATIC1111's [name], no final newline */
    const char *good = TFILE("good.txt", "\xef\xbb\xbf# frames of the data set\n\n"
                                         "  a photo of a {}  \r\n"
                                         "a [name] on a table\n"
                                         "   # indented comment\n"
                                         "an image of a {}");
    DCHECK_OK(ti_templates_load(&l, good, &e), &e);
    CHECK(l.n == 3);
    if (l.n == 3) {
        CHECK(!strcmp(l.t[0], "a photo of a {}"));
        CHECK(!strcmp(l.t[1], "a {} on a table"));
        CHECK(!strcmp(l.t[2], "an image of a {}"));
    }

    /* the dataset draws its captions from them: u_template -> floor(u * 3) */
    struct ti_dataset_opts o;
    ti_dataset_opts_default(&o);
    o.root = root;
    o.size = 8;
    o.templates = (const char *const *)l.t;
    o.n_templates = l.n;
    struct ti_dataset *ds = NULL;
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    caption_is(ds, 0, 0.0, 0.0, "a photo of a *");
    caption_is(ds, 0, 0.0, 0.5, "a * on a table");
    caption_is(ds, 1, 0.0, 0.9999999, "an image of a *");
    ti_dataset_close(ds);
    /* per-image tokens: the dual templates stay the original's */
    o.per_image_tokens = 1;
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    caption_is(ds, 0, 0.1, 0.0, "a photo of a * with \xd7\x90");
    caption_is(ds, 0, 0.9, 0.5, "a * on a table");
    ti_dataset_close(ds);
    ti_templates_free(&l);
    CHECK(l.t == NULL && l.n == 0);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.txt", tdir);
    template_error(missing, "No such file", NULL);
    template_error(TFILE("filewords.txt", "a photo of a {}\na [name], [filewords]\n"),
                   ":2:", "[filewords]");
    template_error(TFILE("two.txt", "a {} and a {}\n"), ":1:", "exactly one");
    template_error(TFILE("mixed.txt", "# c\na {} and a [name]\n"), ":2:", "found 2");
    template_error(TFILE("none.txt", "a photo of a {}\na photo\n"), ":2:", "found 0");
    template_error(TFILE("empty.txt", "# only a comment\n\n  \n"), "no templates", NULL);
    template_error(TFILE("nul.txt", "a photo of a {}\na \0{}\n"), ":2:", "NUL");
    char longline[TI_TEMPLATE_LEN_MAX + 8];
    memset(longline, 'x', sizeof longline - 1);
    memcpy(longline, "{} ", 3);
    longline[sizeof longline - 1] = '\0';
    template_error(template_file("long.txt", longline, strlen(longline)), ":1:", "longer than");
    template_error(tdir, "directory", NULL);

    const char *names[] = {"good.txt", "filewords.txt", "two.txt", "mixed.txt",
                           "none.txt", "empty.txt",     "nul.txt", "long.txt"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tdir, names[i]);
        CHECK(remove(p) == 0);
    }
    CHECK(rmdir(tdir) == 0);
}

TEST(errors) {
    struct ti_dataset_opts o;
    ti_dataset_opts_default(&o);
    struct ti_dataset *ds = NULL;
    struct ti_data_err e = {{0}};
    char p[512];

    o.root = "/nonexistent/ti-data-root";
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 && ds == NULL);
    CHECK(strstr(e.msg, "/nonexistent/ti-data-root") && strstr(e.msg, "No such file"));

    snprintf(p, sizeof p, "%s/empty", root);
    CHECK(mkdir(p, 0755) == 0);
    o.root = p;
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 && strstr(e.msg, p) &&
          strstr(e.msg, "no files"));

    /* only unusable files: the folder and the first reason are named */
    char q[600];
    snprintf(q, sizeof q, "%s/readme.txt", p);
    FILE *f = fopen(q, "w");
    if (f) fputs("hello\n", f), fclose(f);
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 && strstr(e.msg, p) &&
          strstr(e.msg, "none of its 1 files") && strstr(e.msg, "readme.txt"));

    /* per-image tokens: 21 images are fine, 22 are not (the peer's assertion) */
    struct ti_image im = {0};
    DCHECK_OK(ti_image_alloc(&im, 4, 4, &e), &e);
    memset(im.px, 200, 4 * 4 * 3);
    unlink(q);
    for (int i = 0; i < 22; i++) {
        snprintf(q, sizeof q, "%s/img%02d.png", p, i);
        DCHECK_OK(ti_image_write_png(&im, q, NULL, &e), &e);
    }
    ti_image_free(&im);
    o.per_image_tokens = 1;
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 &&
          strstr(e.msg, "Can't use per-image tokens when the training set contains more than 22 "
                        "tokens. To enable larger sets, add more tokens to 'per_img_token_list'."));
    snprintf(q, sizeof q, "%s/img21.png", p);
    unlink(q);
    DCHECK_OK(ti_dataset_open(&ds, &o, NULL, NULL, &e), &e);
    CHECK(ds && ti_dataset_n_images(ds) == 21 && ti_dataset_len(ds) == 2100);
    ti_dataset_close(ds);
    for (int i = 0; i < 21; i++) {
        snprintf(q, sizeof q, "%s/img%02d.png", p, i);
        unlink(q);
    }
    rmdir(p);

    o.root = root;
    o.size = -1;
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 && strstr(e.msg, "size -1"));
    o.size = 8;
    o.repeats = 0;
    CHECK(ti_dataset_open(&ds, &o, NULL, NULL, &e) == -1 && strstr(e.msg, "repeats 0"));
}

static void cleanup(void) {
    const char *names[] = {"a.jpg", "b.png", "c.bmp", "broken.jpg", "notes.txt", ".DS_Store"};
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", root, names[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/.ipynb_checkpoints", root);
    rmdir(p);
    snprintf(p, sizeof p, "%s/sub", root);
    rmdir(p);
    rmdir(root);
}

int main(void) {
    if (tu_mkdtemp(root, sizeof root, "ti_test_data_dataset") != 0) return 1;
    RUN(templates_verbatim);
    RUN(listing_skipping_and_preparation);
    RUN(captions);
    RUN(template_files);
    RUN(errors);
    cleanup();
    return tc_finish();
}
