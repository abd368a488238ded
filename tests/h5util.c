/* h5util.c - HDF5 fixture reading (see h5util.h). */
#include "h5util.h"

#include <stdlib.h>
#include <string.h>

hid_t h5u_open(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* we report errors ourselves */
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

void h5u_close(hid_t f) {
    if (f >= 0) H5Fclose(f);
}

int h5u_exists(hid_t f, const char *path) {
    /* check each prefix: H5Lexists fails on a missing intermediate group */
    char buf[512];
    size_t n = strlen(path);
    if (n >= sizeof buf) return 0;
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            memcpy(buf, path, i);
            buf[i] = '\0';
            if (H5Lexists(f, buf, H5P_DEFAULT) <= 0) return 0;
        }
    }
    return 1;
}

int h5u_read(hid_t f, const char *path, double **data, int *ndim, int64_t *shape) {
    *data = NULL;
    if (!h5u_exists(f, path)) return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[8] = {0};
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > 8) {
        H5Sclose(sp);
        H5Dclose(d);
        return -1;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t n = 1;
    for (int i = 0; i < nd; i++) {
        n *= dims[i];
        if (shape && i < 6) shape[i] = (int64_t)dims[i];
    }
    if (ndim) *ndim = nd;
    double *buf = malloc((n ? n : 1) * sizeof(double));
    herr_t e = H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(d);
    if (e < 0) {
        free(buf);
        return -1;
    }
    *data = buf;
    return 0;
}

int h5u_attr(hid_t f, const char *obj, const char *name, double *out, int max) {
    if (!h5u_exists(f, obj) || H5Aexists_by_name(f, obj, name, H5P_DEFAULT) <= 0) return -1;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    double *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    herr_t e = H5Aread(a, H5T_NATIVE_DOUBLE, buf);
    H5Aclose(a);
    if (e < 0) {
        free(buf);
        return -1;
    }
    int cnt = (int)(n < max ? n : max);
    memcpy(out, buf, (size_t)cnt * sizeof(double));
    free(buf);
    return (int)n;
}

int h5u_attr_str(hid_t f, const char *obj, const char *name, char *buf, size_t n) {
    if (!h5u_exists(f, obj) || H5Aexists_by_name(f, obj, name, H5P_DEFAULT) <= 0) return -1;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    int rc = -1;
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a, mt, &s) >= 0 && s) {
            strncpy(buf, s, n - 1);
            buf[n - 1] = '\0';
            H5free_memory(s);
            rc = 0;
        }
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        char *tmp = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        /* one byte more than the file's type: a NULLTERM string of size sz holds only sz-1
         * characters, so a full-width NULLPAD string (numpy's S<n>) would lose its last one */
        H5Tset_size(mt, sz + 1);
        if (H5Aread(a, mt, tmp) >= 0) {
            strncpy(buf, tmp, n - 1);
            buf[n - 1] = '\0';
            rc = 0;
        }
        H5Tclose(mt);
        free(tmp);
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}
