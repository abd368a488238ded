/*
 * emb_test_util.h - writing a one-placeholder embedding file in a test (header-only).
 *
 *   CHECK(etu_write_one(path, "*", 1, 32, v, TI_EMB_A1111) == 0);
 */
#ifndef TI_EMB_TEST_UTIL_H
#define TI_EMB_TEST_UTIL_H

#include <stdio.h> /* defines: fprintf */

#include "embedding_io.h" /* defines: ti_embedding_*, enum ti_embedding_format */

/* `placeholder` with n vectors of width dim (v: n * dim floats) into path; 0 ok, -1 (said). */
static inline int etu_write_one(const char *path, const char *placeholder, int n, int dim,
                                const float *v, enum ti_embedding_format fmt) {
    struct ti_err err = {0};
    struct ti_embedding e;
    ti_embedding_init(&e);
    int rc = ti_embedding_add_term(&e, placeholder, -1, n, dim, v, &err) == TI_OK &&
                     ti_embedding_write(&e, path, fmt, &err) == TI_OK
                 ? 0
                 : -1;
    if (rc) fprintf(stderr, "  writing %s: %s\n", path, err.msg);
    ti_embedding_free(&e);
    return rc;
}

#endif /* TI_EMB_TEST_UTIL_H */
