/*
 * test_watermark.c - data/watermark.c against the reference encoder and decoder (imwatermark
 * 'dwtDct' as CompVis txt2img applies it).
 *
 * Fixtures (tests/fixtures/watermark/, scripts/oracle/watermark_fixtures.py): input/output PNG
 * pairs of the reference encoder, the two reference test vectors among them, and cases.tsv with
 * the reference decoder's bytes on every input and output. Checks:
 * - encoder: ti's output equals the reference output within 1 level on every pixel (in fact
 *   on every byte: 0 pixels differ);
 * - decoder: the reference decoder's exact bytes on inputs (unmarked) and outputs, and on ti's
 *   outputs, also after a PNG write + read; "StableDiffusionV1" wherever the reference reads it;
 * - unmarked images never read as the message; argument errors.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "test_common.h"
#include "watermark.h"

#define DIR "tests/fixtures/watermark/"
#define MSG ((const uint8_t *)TI_WATERMARK_SD_TEXT)

struct wm_case {
    char name[64];
    int w, h;
    uint8_t dec_in[TI_WATERMARK_SD_LEN], dec_out[TI_WATERMARK_SD_LEN];
};

static int unhex(const char *s, uint8_t *out, int n) {
    if ((int)strlen(s) != 2 * n) return -1;
    for (int i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int read_cases(struct wm_case *c, int cap) {
    FILE *f = fopen(DIR "cases.tsv", "r");
    if (!f) return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (line[0] == '#') continue;
        char hin[128], hout[128];
        if (sscanf(line, "%63s %d %d %127s %127s", c[n].name, &c[n].w, &c[n].h, hin, hout) != 5 ||
            unhex(hin, c[n].dec_in, TI_WATERMARK_SD_LEN) ||
            unhex(hout, c[n].dec_out, TI_WATERMARK_SD_LEN)) {
            fprintf(stderr, "cases.tsv: bad line '%s'\n", line);
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    return n;
}

/* reads DIR/<name><suffix> with data/'s loader (the path ti-inspect takes); NULL on error */
static uint8_t *load_png(const char *name, const char *suffix, int w, int h) {
    char path[256];
    snprintf(path, sizeof path, DIR "%s%s", name, suffix);
    struct ti_image img = {0};
    struct ti_data_err e = {{0}};
    if (ti_image_load(&img, path, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    if (img.w != w || img.h != h) {
        fprintf(stderr, "%s: %dx%d, cases.tsv says %dx%d\n", path, img.w, img.h, w, h);
        ti_image_free(&img);
        return NULL;
    }
    return img.px; /* malloc'd: free() */
}

/* writes rgb as ti-sample does (ti_image_write_png, with the watermark tEXt entry), reads it
 * back: the pixels a user's decoder sees. NULL on error. */
static uint8_t *png_round_trip(uint8_t *rgb, int w, int h) {
    char dir[] = "/tmp/ti_test_watermark_XXXXXX", path[64];
    if (!mkdtemp(dir)) return NULL;
    snprintf(path, sizeof path, "%s/out.png", dir);
    const char *text[] = {TI_WATERMARK_PNG_KEY, TI_WATERMARK_SD_TEXT, NULL};
    struct ti_image img = {w, h, rgb}, back = {0};
    struct ti_data_err e = {{0}};
    if (ti_image_write_png(&img, path, text, &e) || ti_image_load(&back, path, &e)) {
        fprintf(stderr, "PNG round trip: %s\n", e.msg);
        back.px = NULL;
    } else if (back.w != w || back.h != h) {
        ti_image_free(&back);
    }
    remove(path);
    remove(dir);
    return back.px;
}

static void hexstr(const uint8_t *b, int n, char *out) {
    for (int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static struct wm_case cases[32];
static int n_cases;

TEST(encoder_matches_reference) {
    CHECK(n_cases >= 2);
    long total_px = 0, total_diff = 0;
    for (int i = 0; i < n_cases; i++) {
        const struct wm_case *c = &cases[i];
        uint8_t *in = load_png(c->name, "_in.png", c->w, c->h);
        uint8_t *ref = load_png(c->name, "_out.png", c->w, c->h);
        CHECK(in && ref);
        if (!in || !ref) continue;
        struct ti_data_err e = {{0}};
        DCHECK_OK(ti_watermark_encode(in, c->w, c->h, MSG, TI_WATERMARK_SD_LEN, &e), &e);
        long npx = (long)c->w * c->h, ndiff = 0;
        int maxd = 0;
        for (long p = 0; p < npx; p++) {
            int pd = 0;
            for (int k = 0; k < 3; k++) {
                int d = abs((int)in[3 * p + k] - (int)ref[3 * p + k]);
                if (d > pd) pd = d;
            }
            if (pd) ndiff++;
            if (pd > maxd) maxd = pd;
        }
        printf("  %-16s %4dx%-4d max |ti - reference| = %d, %ld of %ld pixels differ\n", c->name,
               c->w, c->h, maxd, ndiff, npx);
        /* The brief's bound is 1 level; the port is bit-exact by construction (float order,
         * no FMA, numpy's cast), so any differing pixel flags a regression in that order. */
        CHECK(maxd <= 1);
        CHECK(ndiff == 0);
        total_px += npx;
        total_diff += ndiff;
        free(in);
        free(ref);
    }
    printf("  all: %ld of %ld pixels differ\n", total_diff, total_px);
}

TEST(decoder_matches_reference) {
    for (int i = 0; i < n_cases; i++) {
        const struct wm_case *c = &cases[i];
        uint8_t *in = load_png(c->name, "_in.png", c->w, c->h);
        uint8_t *ref = load_png(c->name, "_out.png", c->w, c->h);
        CHECK(in && ref);
        if (!in || !ref) continue;
        struct ti_data_err e = {{0}};
        uint8_t got[TI_WATERMARK_SD_LEN];
        char hex[2 * TI_WATERMARK_SD_LEN + 1];

        /* unmarked input: the reference decoder's (meaningless) bytes, never the message */
        DCHECK_OK(ti_watermark_decode(in, c->w, c->h, got, TI_WATERMARK_SD_LEN, &e), &e);
        CHECK(memcmp(got, c->dec_in, sizeof got) == 0);
        CHECK(memcmp(got, MSG, sizeof got) != 0);

        /* the reference output */
        DCHECK_OK(ti_watermark_decode(ref, c->w, c->h, got, TI_WATERMARK_SD_LEN, &e), &e);
        CHECK(memcmp(got, c->dec_out, sizeof got) == 0);
        int marked = memcmp(c->dec_out, MSG, sizeof got) == 0;
        hexstr(got, TI_WATERMARK_SD_LEN, hex);
        printf("  %-16s reference output reads %s%s\n", c->name, hex,
               marked ? " = StableDiffusionV1" : " (mark lost, as in the reference)");

        /* ti's own output, directly and after a PNG round trip */
        DCHECK_OK(ti_watermark_encode(in, c->w, c->h, MSG, TI_WATERMARK_SD_LEN, &e), &e);
        DCHECK_OK(ti_watermark_decode(in, c->w, c->h, got, TI_WATERMARK_SD_LEN, &e), &e);
        CHECK(memcmp(got, c->dec_out, sizeof got) == 0);
        uint8_t *back = png_round_trip(in, c->w, c->h);
        CHECK(back != NULL);
        if (back) {
            DCHECK_OK(ti_watermark_decode(back, c->w, c->h, got, TI_WATERMARK_SD_LEN, &e), &e);
            CHECK(memcmp(got, c->dec_out, sizeof got) == 0);
            if (marked) CHECK(memcmp(got, MSG, sizeof got) == 0);
            free(back);
        }
        free(in);
        free(ref);
    }
}

/* The message is recovered from the reference's own output for the test vector where the
 * reference recovers it (pattern512) and for the flat image. */
TEST(message_recovered_where_reference_recovers) {
    int n_marked = 0;
    for (int i = 0; i < n_cases; i++) {
        if (memcmp(cases[i].dec_out, MSG, TI_WATERMARK_SD_LEN) != 0) continue;
        n_marked++;
        uint8_t *ref = load_png(cases[i].name, "_out.png", cases[i].w, cases[i].h);
        CHECK(ref != NULL);
        if (!ref) continue;
        struct ti_data_err e = {{0}};
        uint8_t got[TI_WATERMARK_SD_LEN + 1] = {0};
        DCHECK_OK(ti_watermark_decode(ref, cases[i].w, cases[i].h, got, TI_WATERMARK_SD_LEN, &e),
                  &e);
        CHECK(strcmp((const char *)got, TI_WATERMARK_SD_TEXT) == 0);
        free(ref);
    }
    CHECK(n_marked >= 2); /* pattern512 and flat128 at least */
}

/* Another payload length, and the reference's size limit. */
TEST(payload_lengths_and_errors) {
    int w = 512, h = 512;
    uint8_t *img = malloc((size_t)w * h * 3);
    CHECK(img != NULL);
    if (!img) return;
    /* flat grey: every block's argmax is position 1 and stays the largest after the edit */
    memset(img, 128, (size_t)w * h * 3);
    const uint8_t pay[4] = {0xde, 0xad, 0x01, 0x80};
    uint8_t got[4];
    struct ti_data_err e = {{0}};
    DCHECK_OK(ti_watermark_encode(img, w, h, pay, 4, &e), &e);
    DCHECK_OK(ti_watermark_decode(img, w, h, got, 4, &e), &e);
    CHECK(memcmp(got, pay, 4) == 0);

    /* 255x257 = 65535 pixels: refused, as the reference raises */
    CHECK(!ti_watermark_fits(255, 257));
    CHECK(ti_watermark_fits(256, 256));
    CHECK(ti_watermark_encode(img, 255, 257, pay, 4, &e) == -1);
    CHECK(strstr(e.msg, "255x257") != NULL && strstr(e.msg, "256*256") != NULL);
    CHECK(ti_watermark_decode(img, 255, 257, got, 4, &e) == -1);
    CHECK(ti_watermark_encode(img, w, h, pay, 0, &e) == -1);
    CHECK(strstr(e.msg, "at least one byte") != NULL);
    free(img);
}

int main(void) {
    n_cases = read_cases(cases, 32);
    if (n_cases < 0) {
        fprintf(stderr, "cannot read " DIR "cases.tsv (run from the repository root)\n");
        return 1;
    }
    RUN(encoder_matches_reference);
    RUN(decoder_matches_reference);
    RUN(message_recovered_where_reference_recovers);
    RUN(payload_lengths_and_errors);
    return tc_finish();
}
