/*
 * image_test_util.h - comparisons of two decoded images (data/image.h) for the data tests.
 */
#ifndef TI_IMAGE_TEST_UTIL_H
#define TI_IMAGE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* largest |a - b| over two equal-size images, or 999 when the sizes differ */
static inline int image_max_diff(const struct ti_image *a, const struct ti_image *b) {
    if (a->w != b->w || a->h != b->h) return 999;
    int m = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * 3; i++) {
        int d = abs((int)a->px[i] - (int)b->px[i]);
        if (d > m) m = d;
    }
    return m;
}

/* Loading `path` fails, leaves the image empty, and the message names the file and says `what`
 * (NULL: anything). */
static inline int image_load_fails_with(const char *path, const char *what) {
    struct ti_data_err e = {{0}};
    struct ti_image im = {0};
    int rc = ti_image_load(&im, path, &e);
    int ok = rc == -1 && im.px == NULL && strstr(e.msg, path) && (!what || strstr(e.msg, what));
    if (!ok) fprintf(stderr, "  %s: rc %d, message '%s' (want '%s')\n", path, rc, e.msg, what);
    ti_image_free(&im);
    return ok;
}

#endif /* TI_IMAGE_TEST_UTIL_H */
