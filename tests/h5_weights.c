/* h5_weights.c - HDF5-backed weight source for the model tests (see h5_weights.h). */
#include "h5_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ti_status get(void *user, const char *key, struct ti_tensor *view, struct ti_err *err) {
    struct h5_weights *h = user;
    char path[512];
    snprintf(path, sizeof path, "weights/%s", key);
    double *d = NULL;
    int nd = 0;
    int64_t shape[6];
    if (h5u_read(h->file, path, &d, &nd, shape) != 0) return TI_ERR_NOT_FOUND;
    if (h->nbufs == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->bufs = realloc(h->bufs, (size_t)h->cap * sizeof *h->bufs);
    }
    h->bufs[h->nbufs++] = d;
    (void)err;
    *view = ti_tensor_view(d, TI_DTYPE_F64, TI_DEVICE_CPU, nd, shape);
    return TI_OK;
}

int h5_weights_open(struct h5_weights *h, struct ti_weight_source *src, const char *path) {
    memset(h, 0, sizeof *h);
    h->file = h5u_open(path);
    if (h->file < 0) return -1;
    snprintf(h->path, sizeof h->path, "%s", path);
    src->user = h;
    src->name = h->path;
    src->get = get;
    return 0;
}

void h5_weights_close(struct h5_weights *h) {
    for (int i = 0; i < h->nbufs; i++)
        free(h->bufs[i]);
    free(h->bufs);
    h5u_close(h->file);
    memset(h, 0, sizeof *h);
}
