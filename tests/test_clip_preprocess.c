/*
 * test_clip_preprocess.c - data/clip_preprocess.c, the safety checker's input preparation,
 * against the reference (tests/fixtures/clip_preprocess.h5, scripts/oracle/clip_preprocess.py):
 * txt2img's numpy_to_pil rounding, and transformers' CLIPImageProcessor with the checker's
 * configuration (resize shortest side to 224 bicubic, center crop, rescale, normalise), exact
 * to the float32 bit on three image shapes (down- and up-sampling, odd sizes).
 */
#include <string.h>

#include "clip_preprocess.h"
#include "h5util.h"
#include "test_common.h"

#define FIXTURE "tests/fixtures/clip_preprocess.h5"

static hid_t fx;

TEST(numpy_to_pil_rounding) {
    double *in = NULL, *out = NULL;
    int nd;
    int64_t si[6], so[6];
    CHECK(h5u_read(fx, "np2pil_in", &in, &nd, si) == 0);
    CHECK(h5u_read(fx, "np2pil_out", &out, &nd, so) == 0);
    if (!in || !out) return;
    int h = (int)si[1], w = (int)si[2];
    size_t n = (size_t)3 * w * h;
    float *chw = malloc(n * sizeof *chw);
    for (size_t i = 0; i < n; i++)
        chw[i] = (float)in[i]; /* float32 values stored as float64: exact */
    struct ti_image img = {0};
    struct ti_data_err e = {{0}};
    DCHECK_OK(ti_clip_image_from_chw(&img, chw, w, h, &e), &e);
    long bad = 0;
    for (size_t i = 0; img.px && i < n; i++)
        bad += img.px[i] != (uint8_t)out[i];
    printf("  numpy_to_pil: %ld of %zu bytes differ\n", bad, n);
    CHECK(img.px && bad == 0);
    ti_image_free(&img);
    free(chw);
    free(in);
    free(out);
}

static void run_case(const char *name, const double *table) {
    char ds[64];
    double *in = NULL, *crop = NULL;
    int nd;
    int64_t si[6], sc[6];
    snprintf(ds, sizeof ds, "%s_in", name);
    CHECK(h5u_read(fx, ds, &in, &nd, si) == 0);
    snprintf(ds, sizeof ds, "%s_crop", name);
    CHECK(h5u_read(fx, ds, &crop, &nd, sc) == 0);
    if (!in || !crop) return;
    struct ti_image img = {0};
    struct ti_data_err e = {{0}};
    DCHECK_OK(ti_image_alloc(&img, (int)si[1], (int)si[0], &e), &e);
    for (size_t i = 0; i < (size_t)(si[0] * si[1] * 3); i++)
        img.px[i] = (uint8_t)in[i];
    size_t plane = 224 * 224;
    float *chw = malloc(3 * plane * sizeof *chw);
    DCHECK_OK(ti_clip_preprocess(&img, 224, chw, &e), &e);
    /* want = the processor's output = norm_table[channel][its crop's byte] */
    long bad = 0;
    double maxd = 0;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < plane; i++) {
            float want = (float)table[c * 256 + (int)crop[i * 3 + c]];
            float got = chw[c * plane + i];
            if (got != want) bad++;
            if (fabs((double)got - want) > maxd) maxd = fabs((double)got - want);
        }
    }
    printf("  %-12s %4dx%-4d -> 224x224: %ld of %zu floats differ (max %.3g)\n", name, (int)si[1],
           (int)si[0], bad, 3 * plane, maxd);
    CHECK(bad == 0);
    free(chw);
    ti_image_free(&img);
    free(in);
    free(crop);
}

TEST(clip_image_processor) {
    double *table = NULL;
    int nd;
    int64_t st[6];
    CHECK(h5u_read(fx, "norm_table", &table, &nd, st) == 0);
    if (!table) return;
    CHECK(nd == 2 && st[0] == 3 && st[1] == 256);
    /* the script's cases: down-sampling, odd-sized up-sampling, a cropped long side */
    const char *cases[] = {"square256", "port75x111", "wide300x150"};
    for (int i = 0; i < 3; i++)
        run_case(cases[i], table);
    free(table);
}

TEST(bad_size) {
    struct ti_image img = {0};
    struct ti_data_err e = {{0}};
    float out[1];
    DCHECK_OK(ti_image_alloc(&img, 4, 4, &e), &e);
    CHECK(ti_clip_preprocess(&img, 0, out, &e) == -1);
    CHECK(strstr(e.msg, "size 0") != NULL);
    ti_image_free(&img);
}

int main(void) {
    fx = h5u_open(FIXTURE);
    if (fx < 0) {
        fprintf(stderr, "cannot open " FIXTURE " (run from the repository root)\n");
        return 1;
    }
    RUN(numpy_to_pil_rounding);
    RUN(clip_image_processor);
    RUN(bad_size);
    h5u_close(fx);
    return tc_finish();
}
