/*
 * test_text_image.c - data/text_image.c: captions drawn as the peer's log_txt_as_img lays them
 * out (ldm/util.py, ti-peer.md §5.4): white W x H canvas, black text, a line break every
 * int(40 * W / 256) code points and at each '\n', 6-pixel character cells on a 15-pixel line
 * pitch (PIL 9.4's default font: getbbox("A") = (0, 0, 6, 11), multiline spacing 4), and a
 * blank canvas for text beyond Latin-1 (PIL's UnicodeEncodeError). The expected layouts below
 * follow from those rules, written out by hand.
 */
#include <stdint.h>
#include <string.h>

#include "test_common.h"
#include "text_image.h"

/* any black pixel in the character cell (line, col)? */
static int cell_ink(const struct ti_image *im, int line, int col) {
    for (int y = line * 15; y < line * 15 + 15 && y < im->h; y++)
        for (int x = col * 6; x < col * 6 + 6 && x < im->w; x++)
            if (im->px[((size_t)y * im->w + x) * 3] != 255) return 1;
    return 0;
}

/* every pixel is pure black or pure white, and grey channels agree */
static int only_black_white(const struct ti_image *im) {
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) {
        const uint8_t *p = im->px + i * 3;
        if ((p[0] != 0 && p[0] != 255) || p[1] != p[0] || p[2] != p[0]) return 0;
    }
    return 1;
}

static long ink_count(const struct ti_image *im) {
    long n = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h; i++)
        n += im->px[i * 3] == 0;
    return n;
}

/* layout: one string per text line, '#' = a cell with ink, '.' = none; lines beyond the given
 * ones and columns beyond each string must be empty */
static int layout_is(const struct ti_image *im, const char *const *lines, int nlines) {
    int ok = 1;
    for (int l = 0; l * 15 < im->h; l++)
        for (int c = 0; c * 6 < im->w; c++) {
            int want = l < nlines && c < (int)strlen(lines[l]) && lines[l][c] == '#';
            if (cell_ink(im, l, c) != want) {
                fprintf(stderr, "  cell line %d col %d: ink %d, want %d\n", l, c, !want, want);
                ok = 0;
            }
        }
    return ok;
}

TEST(caption_one_line) {
    struct ti_image im = {0};
    struct ti_data_err e;
    int blank = -1;
    CHECK(ti_image_text(&im, 256, 256, "a photo of a *", &blank, &e) == 0);
    CHECK(im.w == 256 && im.h == 256 && blank == 0);
    const char *want[] = {"#.#####.##.#.#"};
    CHECK(layout_is(&im, want, 1));
    CHECK(only_black_white(&im));
    ti_image_free(&im);
}

TEST(wraps_every_40_chars_at_256) {
    char s[46];
    memset(s, 'A', 45);
    s[45] = 0;
    struct ti_image im = {0};
    CHECK(ti_image_text(&im, 256, 256, s, NULL, NULL) == 0);
    const char *want[] = {"########################################", "#####"};
    CHECK(layout_is(&im, want, 2));
    ti_image_free(&im);
}

TEST(wrap_width_scales_with_canvas) {
    /* W = 64: int(40 * 0.25) = 10; W = 100: int(15.625) = 15; W = 512: 80 (SD) */
    struct ti_image im = {0};
    CHECK(ti_image_text(&im, 64, 64, "0123456789abcdefghijklm", NULL, NULL) == 0);
    const char *w64[] = {"##########", "##########", "###"};
    CHECK(layout_is(&im, w64, 3));
    ti_image_free(&im);
    CHECK(ti_image_text(&im, 100, 40, "xxxxxxxxxxxxxxxxxxxx", NULL, NULL) == 0);
    const char *w100[] = {"###############", "#####"};
    CHECK(layout_is(&im, w100, 2));
    ti_image_free(&im);
    char s[101];
    memset(s, 'm', 100);
    s[100] = 0;
    CHECK(ti_image_text(&im, 512, 512, s, NULL, NULL) == 0);
    char l0[81];
    memset(l0, '#', 80);
    l0[80] = 0;
    const char *w512[] = {l0, "####################"};
    CHECK(layout_is(&im, w512, 2));
    ti_image_free(&im);
}

TEST(newline_in_caption_breaks_and_counts) {
    /* W = 64, nc = 10: "ab\ncdefghijk" -> chunks "ab\ncdefghi" + "jk"; PIL then breaks at the
     * '\n' too: lines "ab", "cdefghi", "jk" */
    struct ti_image im = {0};
    CHECK(ti_image_text(&im, 64, 64, "ab\ncdefghijk", NULL, NULL) == 0);
    const char *want[] = {"##", "#######", "##"};
    CHECK(layout_is(&im, want, 3));
    ti_image_free(&im);
}

TEST(beyond_latin1_gives_blank_canvas) {
    struct ti_image im = {0};
    int blank = 0;
    /* Hebrew alef (the peer's per-image tokens) at the end: nothing is drawn at all */
    CHECK(ti_image_text(&im, 64, 64, "a photo of \xd7\x90", &blank, NULL) == 0);
    CHECK(blank == 1 && ink_count(&im) == 0);
    ti_image_free(&im);
    /* an ill-formed byte decodes as U+FFFD: blank as well */
    CHECK(ti_image_text(&im, 64, 64, "a \xff b", &blank, NULL) == 0);
    CHECK(blank == 1 && ink_count(&im) == 0);
    ti_image_free(&im);
    /* Latin-1 (e acute, 2 bytes, one code point) is drawn, in one cell */
    CHECK(ti_image_text(&im, 64, 64, "caf\xc3\xa9!", &blank, NULL) == 0);
    const char *want[] = {"#####"};
    CHECK(blank == 0 && layout_is(&im, want, 1));
    ti_image_free(&im);
}

TEST(control_chars_and_tiny_canvases) {
    struct ti_image im = {0};
    CHECK(ti_image_text(&im, 64, 20, "a\tb", NULL, NULL) == 0);
    const char *want[] = {"#.#"};
    CHECK(layout_is(&im, want, 1));
    ti_image_free(&im);
    /* W = 5: nc = int(0.78) = 0 (the peer's range() would raise); one char per line, clipped */
    CHECK(ti_image_text(&im, 5, 5, "abc", NULL, NULL) == 0);
    CHECK(im.w == 5 && im.h == 5);
    ti_image_free(&im);
    CHECK(ti_image_text(&im, 0, 5, "abc", NULL, NULL) == -1);
    CHECK(im.px == NULL);
    /* an empty or NULL caption: white */
    CHECK(ti_image_text(&im, 32, 32, NULL, NULL, NULL) == 0);
    CHECK(ink_count(&im) == 0);
    ti_image_free(&im);
}

TEST(glyphs_are_distinct) {
    /* every printable ASCII character but space draws something, and no two look the same */
    static uint8_t seen[95][6 * 15];
    for (int c = 0x21; c <= 0x7E; c++) {
        char s[2] = {(char)c, 0};
        struct ti_image im = {0};
        CHECK(ti_image_text(&im, 16, 16, s, NULL, NULL) == 0);
        CHECK(ink_count(&im) > 0);
        for (int y = 0; y < 15; y++)
            for (int x = 0; x < 6; x++)
                seen[c - 0x20][y * 6 + x] = y < im.h ? im.px[((size_t)y * im.w + x) * 3] : 255;
        for (int d = 0x21; d < c; d++)
            if (!memcmp(seen[d - 0x20], seen[c - 0x20], sizeof seen[0])) {
                fprintf(stderr, "  '%c' and '%c' look the same\n", d, c);
                CHECK(0);
            }
        ti_image_free(&im);
    }
}

int main(void) {
    RUN(caption_one_line);
    RUN(wraps_every_40_chars_at_256);
    RUN(wrap_width_scales_with_canvas);
    RUN(newline_in_caption_breaks_and_counts);
    RUN(beyond_latin1_gives_blank_canvas);
    RUN(control_chars_and_tiny_canvases);
    RUN(glyphs_are_distinct);
    return tc_finish();
}
