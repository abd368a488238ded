/*
 * tensor.h - the tensor type: metadata over memory that someone else owns.
 *
 * A `struct ti_tensor` is a small value (pass and copy it freely): dtype, device, up to
 * TI_MAX_DIMS sizes and element strides, a data pointer, and
 *   - `blk`:  the arena block that holds the data, reference counted (see arena.h), or NULL
 *             when the memory is owned elsewhere (weights arena, a memory-mapped file, the
 *             caller's array). ti_tensor_retain/ti_tensor_release manage the count.
 *   - `grad`: the autodiff slot on the current tape (tape.h), or -1 when no gradient flows
 *             into this tensor (every frozen weight, every input that does not depend on a
 *             trainable tensor).
 *
 * Dimension letters used across ti: B batch, C channels, H, W spatial, T tokens, D hidden,
 * NH heads. Strides are in elements, not bytes. A tensor with ndim == 0 is a scalar.
 *
 *   struct ti_tensor t = ti_tensor_view(ptr, TI_DTYPE_F32, TI_DEVICE_CPU, 2, (int64_t[]){3, 4});
 *
 * Not here: allocation (arena.h, context.h), ops (ops.h).
 */
#ifndef TI_TENSOR_H
#define TI_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_MAX_DIMS 6

enum ti_dtype {
    TI_DTYPE_F32 = 0,
    TI_DTYPE_F16,
    TI_DTYPE_BF16,
    TI_DTYPE_F64,
    TI_DTYPE_I64,
    TI_DTYPE_I32,
    TI_DTYPE_I16,
    TI_DTYPE_I8,
    TI_DTYPE_U8,
    TI_DTYPE_BOOL,
    TI_DTYPE_COUNT
};

enum ti_device { TI_DEVICE_CPU = 0, TI_DEVICE_CUDA = 1 };

struct ti_block; /* arena.h */

struct ti_tensor {
    void *data;                  /* address of element [0,...,0] */
    struct ti_block *blk;        /* owning arena block (refcounted) or NULL */
    int64_t shape[TI_MAX_DIMS];  /* sizes, outermost first */
    int64_t stride[TI_MAX_DIMS]; /* element strides; 0 = broadcast */
    int32_t ndim;                /* 0..TI_MAX_DIMS */
    int32_t grad;                /* tape slot, -1 = no gradient */
    enum ti_dtype dtype;
    enum ti_device device;
    int32_t device_index; /* which GPU for TI_DEVICE_CUDA */
};

/* ---- dtypes ----------------------------------------------------------------------------- */
size_t ti_dtype_size(enum ti_dtype dt);      /* bytes per element */
const char *ti_dtype_name(enum ti_dtype dt); /* "f32", "bf16", ... */
int ti_dtype_is_float(enum ti_dtype dt);     /* f32, f16, bf16, f64 */

/* IEEE half and bfloat16 <-> f32, round to nearest even; NaN stays NaN. */
float ti_f16_to_f32(uint16_t h);
uint16_t ti_f32_to_f16(float f);
float ti_bf16_to_f32(uint16_t h);
uint16_t ti_f32_to_bf16(float f);
/* One element of a float dtype (f32, f64, f16, bf16) at host address p, as float32 (0 for
 * another dtype: callers check ti_dtype_is_float first). */
float ti_dtype_load_f32(const void *p, enum ti_dtype dt);
/* |a - ref| / |ref| over n host floats (in f64; NaN when ref is all zero); *cosine and *ref_norm
 * (either may be NULL) get the cosine between a and ref and |ref|. How far a bf16 result is
 * from f32's (test_train_bf16, bench_train_step --grad-check). */
double ti_f32_rel_diff(const float *a, const float *ref, size_t n, double *cosine,
                       double *ref_norm);

/* ---- construction ----------------------------------------------------------------------- */
/* An empty tensor: data NULL, ndim 0, grad -1. Used for "absent" optional arguments. */
struct ti_tensor ti_tensor_none(void);
/* A contiguous view of memory the caller owns (blk NULL, grad -1). */
struct ti_tensor ti_tensor_view(void *data, enum ti_dtype dt, enum ti_device dev, int ndim,
                                const int64_t *shape);
/* Fills contiguous (row-major) strides for t->shape. */
void ti_tensor_set_contiguous(struct ti_tensor *t);

/* ---- queries ---------------------------------------------------------------------------- */
static inline int ti_tensor_present(const struct ti_tensor *t) {
    return t && t->data != NULL;
}
int64_t ti_tensor_numel(const struct ti_tensor *t);
size_t ti_tensor_nbytes(const struct ti_tensor *t); /* numel * dtype size */
int ti_tensor_is_contiguous(const struct ti_tensor *t);
int ti_tensor_same_shape(const struct ti_tensor *a, const struct ti_tensor *b);
/* "f32[2, 77, 768]" into buf; returns buf. */
const char *ti_tensor_describe(const struct ti_tensor *t, char *buf, size_t n);
/* "[2, 77, 768]" into buf; returns buf. */
const char *ti_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* ---- views (no copy; share blk, keep grad = -1: use ops.h for views that need autodiff) -- */
/* Same data viewed with a new shape; the tensor must be contiguous. */
ti_status ti_tensor_reshape_view(struct ti_tensor *out, const struct ti_tensor *t, int ndim,
                                 const int64_t *shape, struct ti_err *err);
/* Reorders dimensions: out.shape[i] = t.shape[perm[i]]. */
ti_status ti_tensor_permute_view(struct ti_tensor *out, const struct ti_tensor *t, const int *perm,
                                 struct ti_err *err);
/* Sub-range [start, start+len) of dimension dim. */
ti_status ti_tensor_narrow_view(struct ti_tensor *out, const struct ti_tensor *t, int dim,
                                int64_t start, int64_t len, struct ti_err *err);
/* Broadcasts t to `ndim/shape` (numpy rules, aligned at the right) with zero strides. */
ti_status ti_tensor_broadcast_view(struct ti_tensor *out, const struct ti_tensor *t, int ndim,
                                   const int64_t *shape, struct ti_err *err);

/* ---- reference counting on arena blocks (no-ops when blk is NULL) ----------------------- */
void ti_tensor_retain(const struct ti_tensor *t);
/* Drops one reference; the block returns to its arena at zero. Resets *t to ti_tensor_none(). */
void ti_tensor_release(struct ti_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* TI_TENSOR_H */
