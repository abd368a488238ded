/*
 * sample_test_util.h - what the end-to-end tests of ti-sample (test_ti_sample, test_review_sample,
 * test_ti_sample_safety) write before running it: tiny checkpoints with random weights and test
 * images. Header only (static inline); link ti_train (model/ and data/).
 */
#ifndef TI_SAMPLE_TEST_UTIL_H
#define TI_SAMPLE_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "image.h"
#include "ldm.h"

/* The model of `config` (e.g. configs/tiny/sd-tiny-inference.yaml) on the CPU in f32 with
 * ti_ldm_randomize(seed) weights. Returns 0, or -1 after printing "setup: <why>"; free with
 * ti_ldm_free. */
static inline int stu_tiny_ldm(struct ti_ldm *m, const char *config, uint64_t seed) {
    struct ti_err err = {0};
    struct ti_config cfg;
    if (ti_config_load(&cfg, &config, 1, NULL, 0, &err) || ti_ldm_init(m, &cfg, &err) ||
        ti_ldm_alloc(m, ti_backend_cpu(), TI_DTYPE_F32, &err) || ti_ldm_randomize(m, seed, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* stu_tiny_ldm saved as the checkpoint `path`. Returns 0, or -1 after printing why. */
static inline int stu_write_tiny_ckpt(const char *config, uint64_t seed, const char *path) {
    struct ti_ldm m;
    struct ti_err err = {0};
    if (stu_tiny_ldm(&m, config, seed) != 0) return -1;
    ti_status st = ti_ldm_save(&m, path, &err);
    ti_ldm_free(&m);
    if (st != TI_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* A w x h PNG whose bytes are (i * 7) % 251 (an init image with structure). 0 or -1. */
static inline int stu_write_png(const char *path, int w, int h) {
    struct ti_image img = {0};
    struct ti_data_err de = {{0}};
    if (ti_image_alloc(&img, w, h, &de) != 0) {
        fprintf(stderr, "setup: %s\n", de.msg);
        return -1;
    }
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img.px[i] = (unsigned char)((i * 7) % 251);
    int rc = ti_image_write_png(&img, path, NULL, &de);
    if (rc != 0) fprintf(stderr, "setup: %s\n", de.msg);
    ti_image_free(&img);
    return rc != 0 ? -1 : 0;
}

#endif /* TI_SAMPLE_TEST_UTIL_H */
