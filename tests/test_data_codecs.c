/*
 * test_data_codecs.c - data/image.c's optional decoders: WebP (libwebp) and TIFF (libtiff).
 *
 *   test_data_codecs webp    ctest test_data_webp
 *   test_data_codecs tiff    ctest test_data_tiff
 *
 * Reference pixels come from PIL 9.4 (tests/fixtures/data/{webp,tiff}, written by
 * scripts/oracle/data_fixtures.py): PIL's decode of each file, alpha composited on white by
 * ti's rule, as <name>.expected.png. PIL reads WebP with the same libwebp (1.2.4, Debian) and
 * TIFF with the same libtiff, so every comparison is exact, lossy WebP included.
 *
 * A build without the library checks that the format is refused with a message naming the
 * file, the format and the missing library, then SKIPs (exit 77): the decoding cases never
 * PASS without the decoder.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "test_util.h"
#include "image.h"
#include "image_test_util.h"

#define FIX "tests/fixtures/data/"

/* FIX <dir>/<name> decoded must equal FIX <dir>/<name>.expected.png exactly. */
static int decodes_as_expected(const char *dir, const char *name) {
    char p[256], q[256];
    snprintf(p, sizeof p, FIX "%s/%s", dir, name);
    snprintf(q, sizeof q, FIX "%s/%s.expected.png", dir, name);
    struct ti_data_err e = {{0}};
    struct ti_image got = {0}, want = {0};
    int rc = ti_image_load(&got, p, &e);
    if (rc) fprintf(stderr, "  %s: %s\n", name, e.msg);
    int rc2 = ti_image_load(&want, q, &e);
    if (rc2) fprintf(stderr, "  %s: %s\n", q, e.msg);
    int d = rc || rc2 ? 999 : image_max_diff(&got, &want);
    if (d) fprintf(stderr, "  %s: %dx%d, max diff %d from PIL\n", name, got.w, got.h, d);
    ti_image_free(&got), ti_image_free(&want);
    return d == 0;
}

/* Every proper prefix of FIX <rel> is refused with a message naming the file (tail_ok: except
 * prefixes that decode to exactly the whole file's image: a TIFF whose last IFD lacks only its
 * next-IFD offset, which libtiff, and so PIL, reads as the end of the chain); every single-byte
 * change (x ^ 0xFF, x ^ 0x01) either decodes to a sane image or is refused likewise. Under ASan
 * (make test-asan) this also checks that no damaged file reads or writes out of bounds. */
static void damage_sweep(const char *rel, int tail_ok) {
    char p[256];
    snprintf(p, sizeof p, FIX "%s", rel);
    size_t n = 0;
    uint8_t *b = tu_read_file(p, &n);
    CHECK(b != NULL && n > 16);
    if (!b) return;
    static const char name[] = "damaged-copy";
    struct ti_data_err e = {{0}};
    struct ti_image whole = {0};
    DCHECK_OK(ti_image_load_memory(&whole, b, n, name, &e), &e);
    int bad = 0, loaded = 0, refused = 0, tails = 0;
    for (size_t k = 0; k < n && bad < 5; k++) {
        struct ti_image im = {0};
        e.msg[0] = 0;
        int rc = ti_image_load_memory(&im, b, k, name, &e);
        if (rc == 0 && tail_ok && whole.px && image_max_diff(&im, &whole) == 0) {
            tails++;
        } else if (rc != -1 || im.px || !strstr(e.msg, name)) {
            fprintf(stderr, "  %s cut to %zu bytes: rc %d: %s\n", rel, k, rc, e.msg);
            bad++;
        }
        ti_image_free(&im);
    }
    static const uint8_t flips[] = {0xFF, 0x01};
    for (size_t f = 0; f < sizeof flips; f++) {
        for (size_t k = 0; k < n && bad < 5; k++) {
            struct ti_image im = {0};
            e.msg[0] = 0;
            b[k] ^= flips[f];
            int rc = ti_image_load_memory(&im, b, n, name, &e);
            b[k] ^= flips[f];
            if (rc == 0 && im.px && im.w >= 1 && im.h >= 1) {
                loaded++;
            } else if (rc == -1 && !im.px && strstr(e.msg, name)) {
                refused++;
            } else {
                fprintf(stderr, "  %s byte %zu ^ 0x%02x: rc %d: %s\n", rel, k, flips[f], rc, e.msg);
                bad++;
            }
            ti_image_free(&im);
        }
    }
    printf("  %s: %zu of %zu prefixes refused; %d byte changes decoded, %d refused\n", rel,
           n - (size_t)tails, n, loaded, refused);
    CHECK(bad == 0);
    CHECK(refused > 0);
    CHECK(tails <= 4);
    ti_image_free(&whole);
    free(b);
}

/* ---- WebP ---------------------------------------------------------------------------------- */

/* Still (lossless RGB, lossless RGBA with alpha 0 / 255 / partial, lossy RGB, lossy + alpha)
 * and animated (first frame; a first frame smaller than the canvas, at an offset) against PIL.
 * Lossy files are exact too: PIL decodes with the same libwebp and the same default options
 * (fancy upsampling, no dithering), and the VP8 decoder is integer arithmetic. */
TEST(webp_decodes_as_pil) {
    static const char *const names[] = {"lossless_rgb.webp", "lossless_rgba.webp",
                                        "lossy_rgb.webp",    "lossy_rgba.webp",
                                        "anim.webp",         "anim_offset.webp"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK(decodes_as_expected("webp", names[i]));
    /* the 4x4 (1, 2, 3) lossy file that older builds refused */
    struct ti_data_err e = {{0}};
    struct ti_image im = {0};
    DCHECK_OK(ti_image_load(&im, FIX "hostile/photo.webp", &e), &e);
    CHECK(im.w == 4 && im.h == 4);
    ti_image_free(&im);
}

/* The EXIF chunk's orientation is applied as for JPEG/PNG: the stored pattern comes out as
 * exif/upright.png (PIL's exif_transpose agrees; lossless, so exact). orient_8_prefixed.webp's
 * chunk starts with "Exif\0\0", which some writers keep. */
TEST(webp_exif_orientation) {
    if (!ti_image_exif_supported()) {
        TC_SKIP_TEST("built without libexif: orientation is not applied");
        return;
    }
    struct ti_data_err e = {{0}};
    struct ti_image up = {0};
    DCHECK_OK(ti_image_load(&up, FIX "exif/upright.png", &e), &e);
    static const struct {
        const char *path;
        int o;
    } cases[] = {{FIX "webp/orient_6.webp", 6}, {FIX "webp/orient_8_prefixed.webp", 8}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = 0;
        uint8_t *b = tu_read_file(cases[i].path, &n);
        CHECK(b && ti_image_exif_orientation(b, n) == cases[i].o);
        free(b);
        struct ti_image im = {0};
        DCHECK_OK(ti_image_load(&im, cases[i].path, &e), &e);
        int d = im.px ? image_max_diff(&im, &up) : 999;
        if (d) fprintf(stderr, "  %s: %dx%d, max diff %d\n", cases[i].path, im.w, im.h, d);
        CHECK(d == 0);
        ti_image_free(&im);
    }
    ti_image_free(&up);
}

TEST(webp_damaged_refused) {
    CHECK(image_load_fails_with(FIX "webp/truncated.webp", "truncated WebP"));
    CHECK(image_load_fails_with(FIX "webp/bad_signature.webp", "damaged WebP"));
    /* a 16000 x 16000 canvas: refused from the header, before a canvas is allocated */
    CHECK(image_load_fails_with(FIX "webp/huge.webp", "claims 16000x16000"));
    damage_sweep("webp/lossy_rgba.webp", 0);
    damage_sweep("webp/lossless_rgba.webp", 0);
    damage_sweep("webp/anim_offset.webp", 0);
    damage_sweep("webp/orient_8_prefixed.webp", 0);
}

/* ---- TIFF ---------------------------------------------------------------------------------- */

/* RGB (uncompressed), RGBA with unassociated alpha (LZW), grey (deflate), the first of two pages,
 * and orientation 6 (PIL 9.4 applies the tag on load: expected is upright) against PIL. */
TEST(tiff_decodes_as_pil) {
    static const char *const names[] = {"rgb.tif", "rgba_lzw.tif", "grey_deflate.tif",
                                        "multipage.tif", "orient_6.tif"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        CHECK(decodes_as_expected("tiff", names[i]));
    struct ti_data_err e = {{0}};
    struct ti_image im = {0}, up = {0};
    DCHECK_OK(ti_image_load(&im, FIX "tiff/orient_6.tif", &e), &e);
    DCHECK_OK(ti_image_load(&up, FIX "exif/upright.png", &e), &e);
    CHECK(image_max_diff(&im, &up) == 0);
    ti_image_free(&im), ti_image_free(&up);
    /* the 4x4 (1, 2, 3) file that older builds refused */
    DCHECK_OK(ti_image_load(&im, FIX "hostile/scan.tif", &e), &e);
    CHECK(im.w == 4 && im.h == 4 && im.px[0] == 1 && im.px[1] == 2 && im.px[2] == 3);
    ti_image_free(&im);
}

TEST(tiff_damaged_refused) {
    CHECK(image_load_fails_with(FIX "tiff/grey16.tif", "a TIFF of 16-bit samples, 1 per pixel"));
    CHECK(image_load_fails_with(FIX "tiff/truncated.tif", "damaged or truncated"));
    damage_sweep("tiff/rgba_lzw.tif", 1);
    damage_sweep("tiff/orient_6.tif", 1);
    damage_sweep("tiff/grey_deflate.tif", 1);
}

/* ---- builds without the libraries ----------------------------------------------------------- */

/* The refusal names the file, the format and the missing library; the decoding cases cannot run
 * and are a counted skip. */
TEST(webp_refused_without_libwebp) {
    CHECK(image_load_fails_with(FIX "webp/lossless_rgb.webp", "a WebP image"));
    CHECK(image_load_fails_with(FIX "hostile/photo.webp", "lacks libwebp"));
    TC_SKIP_TEST("built without libwebp (Debian libwebp-dev): WebP is not decoded");
}

TEST(tiff_refused_without_libtiff) {
    CHECK(image_load_fails_with(FIX "tiff/rgb.tif", "a TIFF image"));
    CHECK(image_load_fails_with(FIX "hostile/scan.tif", "lacks libtiff"));
    TC_SKIP_TEST("built without libtiff >= 4.5 (Debian libtiff-dev): TIFF is not decoded");
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "";
    if (!strcmp(which, "webp") && !ti_image_webp_supported()) {
        RUN(webp_refused_without_libwebp);
    } else if (!strcmp(which, "webp")) {
        RUN(webp_decodes_as_pil);
        RUN(webp_exif_orientation);
        RUN(webp_damaged_refused);
    } else if (!strcmp(which, "tiff") && !ti_image_tiff_supported()) {
        RUN(tiff_refused_without_libtiff);
    } else if (!strcmp(which, "tiff")) {
        RUN(tiff_decodes_as_pil);
        RUN(tiff_damaged_refused);
    } else {
        fprintf(stderr, "usage: test_data_codecs webp|tiff\n");
        return 2;
    }
    return tc_finish();
}
