/*
 * h5util.h - reading the HDF5 fixtures that scripts/oracle/ writes (tests only).
 *   hid_t f = h5u_open("tests/fixtures/ops_eltwise.h5");      // < 0 if missing
 *   double *x; int nd; int64_t shape[6];
 *   if (h5u_read(f, "add_same/in0", &x, &nd, shape) == 0) ...  // malloc'd doubles
 */
#ifndef TI_H5UTIL_H
#define TI_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

hid_t h5u_open(const char *path);
void h5u_close(hid_t f);
/* 1 when the object (group or dataset) exists */
int h5u_exists(hid_t f, const char *path);
/* Reads a numeric dataset as doubles (caller frees *data). Returns 0, or -1 if missing. */
int h5u_read(hid_t f, const char *path, double **data, int *ndim, int64_t *shape);
/* Reads a numeric attribute of an object as up to max doubles; returns the count or -1. */
int h5u_attr(hid_t f, const char *obj, const char *name, double *out, int max);
/* Reads a string attribute into buf; returns 0 or -1. */
int h5u_attr_str(hid_t f, const char *obj, const char *name, char *buf, size_t n);

#endif
