/*
 * h5_weights.h - a weight source (model/weights.h) backed by an HDF5 fixture whose group
 * "weights" holds one dataset per checkpoint key (tests only).
 */
#ifndef TI_H5_WEIGHTS_H
#define TI_H5_WEIGHTS_H

#include "h5util.h"
#include "weights.h"

struct h5_weights {
    hid_t file;
    char path[256];
    void **bufs;
    int nbufs, cap;
};

/* Opens path; fills src. Returns 0 or -1. */
int h5_weights_open(struct h5_weights *h, struct ti_weight_source *src, const char *path);
void h5_weights_close(struct h5_weights *h);

#endif
