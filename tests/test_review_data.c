/*
 * test_review_data.c - review findings on data/ (image.h):
 *   - ti_image_grid is torchvision's make_grid, which has no side limit: 33 tiles of 512 px in
 *     one row (ti-sample --n_samples 33, the reference's nrow = n_samples) make a 16964-pixel
 *     row; it was refused by the decoder's 16384 side limit, after all the sampling. The layout
 *     (tile k at x = k * (w + pad) + pad) and the padding are checked, and the PNG is written;
 *   - a grid over the memory bound (2^28 pixels) is still refused with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "test_common.h"

TEST(grid_wider_than_a_decoded_image) {
    enum { N = 33, TW = 512, TH = 3, PAD = 2 };
    struct ti_image t[N];
    struct ti_data_err e = {{0}};
    for (int k = 0; k < N; k++) {
        CHECK(ti_image_alloc(&t[k], TW, TH, &e) == 0);
        if (!t[k].px) return;
        for (int i = 0; i < TW * TH * 3; i++)
            t[k].px[i] = (unsigned char)(k * 7 + 1);
    }
    struct ti_image g = {0};
    int rc = ti_image_grid(&g, t, N, N, PAD, 0, &e);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  grid: %s\n", e.msg);
    long gw = (long)N * (TW + PAD) + PAD, gh = TH + 2 * PAD;
    CHECK(g.w == gw && g.h == gh);
    if (g.px && g.w == gw && g.h == gh) {
        int bad = 0;
        for (int k = 0; k < N; k++) {
            long x0 = (long)k * (TW + PAD) + PAD;
            for (int r = 0; r < TH; r++)
                for (int x = 0; x < TW; x++)
                    bad += g.px[((PAD + r) * gw + x0 + x) * 3] != (unsigned char)(k * 7 + 1);
            bad += g.px[(PAD * gw + x0 - 1) * 3] != 0; /* the pad column before tile k */
        }
        bad += g.px[0] != 0 || g.px[(gh * gw - 1) * 3] != 0; /* corners are padding */
        CHECK(bad == 0);
        char dir[] = "/tmp/ti_review_data_XXXXXX", p[256];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(p, sizeof p, "%s/grid.png", dir);
        CHECK(ti_image_write_png(&g, p, NULL, &e) == 0);
        struct stat st;
        CHECK(stat(p, &st) == 0 && st.st_size > 100);
        unlink(p);
        rmdir(dir);
    }
    ti_image_free(&g);
    /* 2^28 pixels is the bound: 1100 tiles of 512x512 in one row are refused */
    struct ti_image *many = calloc(1100, sizeof *many);
    struct ti_image big = {0};
    CHECK(ti_image_alloc(&big, 512, 512, &e) == 0);
    for (int k = 0; many && k < 1100; k++)
        many[k] = big;
    CHECK(many && ti_image_grid(&g, many, 1100, 1100, PAD, 0, &e) == -1 &&
          strstr(e.msg, "grid") != NULL);
    CHECK(g.px == NULL);
    ti_image_free(&big);
    free(many);
    for (int k = 0; k < N; k++)
        ti_image_free(&t[k]);
}

int main(void) {
    RUN(grid_wider_than_a_decoded_image);
    return tc_finish();
}
