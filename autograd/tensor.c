/* tensor.c - tensor metadata helpers, dtype table, f16/bf16 conversion (see tensor.h). */
#include "tensor.h"

#include <math.h>   /* defines: sqrt */
#include <stdio.h>  /* defines: snprintf */
#include <string.h> /* defines: memcpy, memset */

#include "arena.h" /* defines: ti_block_retain, ti_block_release */

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtype_info[TI_DTYPE_COUNT] = {
    [TI_DTYPE_F32] = {"f32", 4, 1},   [TI_DTYPE_F16] = {"f16", 2, 1},
    [TI_DTYPE_BF16] = {"bf16", 2, 1}, [TI_DTYPE_F64] = {"f64", 8, 1},
    [TI_DTYPE_I64] = {"i64", 8, 0},   [TI_DTYPE_I32] = {"i32", 4, 0},
    [TI_DTYPE_I16] = {"i16", 2, 0},   [TI_DTYPE_I8] = {"i8", 1, 0},
    [TI_DTYPE_U8] = {"u8", 1, 0},     [TI_DTYPE_BOOL] = {"bool", 1, 0},
};

size_t ti_dtype_size(enum ti_dtype dt) {
    return (unsigned)dt < TI_DTYPE_COUNT ? dtype_info[dt].size : 0;
}
const char *ti_dtype_name(enum ti_dtype dt) {
    return (unsigned)dt < TI_DTYPE_COUNT ? dtype_info[dt].name : "?";
}
int ti_dtype_is_float(enum ti_dtype dt) {
    return (unsigned)dt < TI_DTYPE_COUNT ? dtype_info[dt].is_float : 0;
}

/* ---- f16 / bf16 ---------------------------------------------------------------------------- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ti_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal half: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t ti_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1f) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {
        /* subnormal or zero in half */
        if (e < -10) return sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half_man = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_man & 1))) half_man++;
        return (uint16_t)(sign | half_man);
    }
    uint32_t half = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++; /* may carry into exp: ok */
    return (uint16_t)(sign | half);
}

float ti_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t ti_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

float ti_dtype_load_f32(const void *p, enum ti_dtype dt) {
    switch (dt) {
    case TI_DTYPE_F32: {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    case TI_DTYPE_F64: {
        double d;
        memcpy(&d, p, sizeof d);
        return (float)d;
    }
    case TI_DTYPE_F16:
    case TI_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, p, sizeof h);
        return dt == TI_DTYPE_F16 ? ti_f16_to_f32(h) : ti_bf16_to_f32(h);
    }
    default: return 0.0f;
    }
}

double ti_f32_rel_diff(const float *a, const float *ref, size_t n, double *cosine,
                       double *ref_norm) {
    double dd = 0, nr = 0, na = 0, dot = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        dd += d * d;
        nr += (double)ref[i] * ref[i];
        na += (double)a[i] * a[i];
        dot += (double)a[i] * ref[i];
    }
    if (cosine) *cosine = dot / sqrt(na * nr);
    if (ref_norm) *ref_norm = sqrt(nr);
    return sqrt(dd / nr);
}

/* ---- construction and queries ------------------------------------------------------------- */

struct ti_tensor ti_tensor_none(void) {
    struct ti_tensor t;
    memset(&t, 0, sizeof t);
    t.grad = -1;
    return t;
}

void ti_tensor_set_contiguous(struct ti_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

struct ti_tensor ti_tensor_view(void *data, enum ti_dtype dt, enum ti_device dev, int ndim,
                                const int64_t *shape) {
    struct ti_tensor t = ti_tensor_none();
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    ti_tensor_set_contiguous(&t);
    return t;
}

int64_t ti_tensor_numel(const struct ti_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t ti_tensor_nbytes(const struct ti_tensor *t) {
    return (size_t)ti_tensor_numel(t) * ti_dtype_size(t->dtype);
}

int ti_tensor_is_contiguous(const struct ti_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

int ti_tensor_same_shape(const struct ti_tensor *a, const struct ti_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *ti_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

const char *ti_tensor_describe(const struct ti_tensor *t, char *buf, size_t n) {
    char sh[128];
    snprintf(buf, n, "%s%s", ti_dtype_name(t->dtype),
             ti_shape_str(t->ndim, t->shape, sh, sizeof sh));
    return buf;
}

/* ---- views --------------------------------------------------------------------------------- */

ti_status ti_tensor_reshape_view(struct ti_tensor *out, const struct ti_tensor *t, int ndim,
                                 const int64_t *shape, struct ti_err *err) {
    char a[128], b[128];
    if (ndim < 0 || ndim > TI_MAX_DIMS)
        return ti_error(err, TI_ERR_SHAPE, "reshape: %d dims (at most %d)", ndim, TI_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ti_error(err, TI_ERR_SHAPE, "reshape: negative size");
        n *= shape[i];
    }
    if (n != ti_tensor_numel(t))
        return ti_error(err, TI_ERR_SHAPE, "reshape: %s has %lld elements, %s has %lld",
                        ti_shape_str(t->ndim, t->shape, a, sizeof a), (long long)ti_tensor_numel(t),
                        ti_shape_str(ndim, shape, b, sizeof b), (long long)n);
    if (!ti_tensor_is_contiguous(t))
        return ti_error(err, TI_ERR_SHAPE, "reshape: input %s is not contiguous",
                        ti_shape_str(t->ndim, t->shape, a, sizeof a));
    struct ti_tensor o = *t;
    o.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        o.shape[i] = shape[i];
    ti_tensor_set_contiguous(&o);
    o.grad = -1;
    *out = o;
    return TI_OK;
}

ti_status ti_tensor_permute_view(struct ti_tensor *out, const struct ti_tensor *t, const int *perm,
                                 struct ti_err *err) {
    int seen[TI_MAX_DIMS] = {0};
    struct ti_tensor o = *t;
    for (int i = 0; i < t->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= t->ndim || seen[p])
            return ti_error(err, TI_ERR_SHAPE, "permute: invalid permutation entry %d", p);
        seen[p] = 1;
        o.shape[i] = t->shape[p];
        o.stride[i] = t->stride[p];
    }
    o.grad = -1;
    *out = o;
    return TI_OK;
}

ti_status ti_tensor_narrow_view(struct ti_tensor *out, const struct ti_tensor *t, int dim,
                                int64_t start, int64_t len, struct ti_err *err) {
    if (dim < 0 || dim >= t->ndim)
        return ti_error(err, TI_ERR_SHAPE, "narrow: dim %d out of range for %d dims", dim, t->ndim);
    if (start < 0 || len < 0 || start + len > t->shape[dim])
        return ti_error(err, TI_ERR_SHAPE, "narrow: [%lld, %lld) outside size %lld of dim %d",
                        (long long)start, (long long)(start + len), (long long)t->shape[dim], dim);
    struct ti_tensor o = *t;
    o.shape[dim] = len;
    if (o.data)
        o.data = (char *)o.data + (size_t)(start * t->stride[dim]) * ti_dtype_size(t->dtype);
    o.grad = -1;
    *out = o;
    return TI_OK;
}

ti_status ti_tensor_broadcast_view(struct ti_tensor *out, const struct ti_tensor *t, int ndim,
                                   const int64_t *shape, struct ti_err *err) {
    char a[128], b[128];
    if (ndim < t->ndim || ndim > TI_MAX_DIMS)
        return ti_error(err, TI_ERR_SHAPE, "broadcast: cannot broadcast %s to %s",
                        ti_shape_str(t->ndim, t->shape, a, sizeof a),
                        ti_shape_str(ndim, shape, b, sizeof b));
    struct ti_tensor o = *t;
    int off = ndim - t->ndim;
    for (int i = ndim - 1; i >= 0; i--) {
        int j = i - off;
        if (j >= 0) {
            if (t->shape[j] == shape[i]) {
                o.shape[i] = shape[i];
                o.stride[i] = t->stride[j];
            } else if (t->shape[j] == 1) {
                o.shape[i] = shape[i];
                o.stride[i] = 0;
            } else {
                return ti_error(err, TI_ERR_SHAPE, "broadcast: cannot broadcast %s to %s",
                                ti_shape_str(t->ndim, t->shape, a, sizeof a),
                                ti_shape_str(ndim, shape, b, sizeof b));
            }
        } else {
            o.shape[i] = shape[i];
            o.stride[i] = 0;
        }
    }
    o.ndim = ndim;
    o.grad = -1;
    *out = o;
    return TI_OK;
}

/* ---- refcounts ----------------------------------------------------------------------------- */

void ti_tensor_retain(const struct ti_tensor *t) {
    if (t && t->blk) ti_block_retain(t->blk);
}

void ti_tensor_release(struct ti_tensor *t) {
    if (!t) return;
    if (t->blk) ti_block_release(t->blk);
    *t = ti_tensor_none();
}
