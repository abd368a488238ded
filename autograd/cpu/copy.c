/*
 * copy.c - COPY on the CPU for every dtype pair: out = cast(inp) with arbitrary strides on both
 * sides, and its backward dinp += cast(dout). Floats convert through f64 (f16/bf16 round to
 * nearest even), integers through i64. Compiled once (registered for every dtype).
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <string.h> /* defines: memcpy */

static double load_f(const void *p, enum ti_dtype dt, int64_t i) {
    switch (dt) {
    case TI_DTYPE_F32: return ((const float *)p)[i];
    case TI_DTYPE_F64: return ((const double *)p)[i];
    case TI_DTYPE_F16: return ti_f16_to_f32(((const uint16_t *)p)[i]);
    case TI_DTYPE_BF16: return ti_bf16_to_f32(((const uint16_t *)p)[i]);
    case TI_DTYPE_I64: return (double)((const int64_t *)p)[i];
    case TI_DTYPE_I32: return ((const int32_t *)p)[i];
    case TI_DTYPE_I16: return ((const int16_t *)p)[i];
    case TI_DTYPE_I8: return ((const int8_t *)p)[i];
    case TI_DTYPE_U8: return ((const uint8_t *)p)[i];
    case TI_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

static void store_f(void *p, enum ti_dtype dt, int64_t i, double v) {
    switch (dt) {
    case TI_DTYPE_F32: ((float *)p)[i] = (float)v; break;
    case TI_DTYPE_F64: ((double *)p)[i] = v; break;
    case TI_DTYPE_F16: ((uint16_t *)p)[i] = ti_f32_to_f16((float)v); break;
    case TI_DTYPE_BF16: ((uint16_t *)p)[i] = ti_f32_to_bf16((float)v); break;
    case TI_DTYPE_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    case TI_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case TI_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case TI_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case TI_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case TI_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

static int64_t load_i(const void *p, enum ti_dtype dt, int64_t i) {
    switch (dt) {
    case TI_DTYPE_I64: return ((const int64_t *)p)[i];
    case TI_DTYPE_I32: return ((const int32_t *)p)[i];
    case TI_DTYPE_I16: return ((const int16_t *)p)[i];
    case TI_DTYPE_I8: return ((const int8_t *)p)[i];
    case TI_DTYPE_U8: return ((const uint8_t *)p)[i];
    case TI_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return (int64_t)load_f(p, dt, i);
    }
}

static void store_i(void *p, enum ti_dtype dt, int64_t i, int64_t v) {
    switch (dt) {
    case TI_DTYPE_I64: ((int64_t *)p)[i] = v; break;
    case TI_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case TI_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case TI_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case TI_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case TI_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: store_f(p, dt, i, (double)v); break;
    }
}

static inline float bf_to_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f_to_bf(float f) { /* as ti_f32_to_bf16: nearest even, quiet NaN */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* One row of n elements between bf16 and/or f32 (not f32 -> f32): o[j * os] (+)= s[j * ss],
 * the sum in f32 rounded once. */
static void bf16_row(void *out, enum ti_dtype od, int64_t os, const void *src, enum ti_dtype sd,
                     int64_t ss, int64_t n, int accumulate) {
    if (od == TI_DTYPE_BF16 && sd == TI_DTYPE_BF16) {
        uint16_t *o = out;
        const uint16_t *s = src;
        if (!accumulate && os == 1 && ss == 1) {
            memcpy(o, s, (size_t)n * sizeof *o);
        } else if (!accumulate) {
            for (int64_t j = 0; j < n; j++)
                o[j * os] = s[j * ss];
        } else {
            for (int64_t j = 0; j < n; j++)
                o[j * os] = f_to_bf(bf_to_f(o[j * os]) + bf_to_f(s[j * ss]));
        }
    } else if (od == TI_DTYPE_BF16) { /* f32 -> bf16 */
        uint16_t *o = out;
        const float *s = src;
        if (!accumulate && os == 1 && ss == 1) {
            for (int64_t j = 0; j < n; j++)
                o[j] = f_to_bf(s[j]);
        } else {
            for (int64_t j = 0; j < n; j++)
                o[j * os] = f_to_bf((accumulate ? bf_to_f(o[j * os]) : 0.0f) + s[j * ss]);
        }
    } else { /* bf16 -> f32 */
        float *o = out;
        const uint16_t *s = src;
        if (os == 1 && ss == 1) {
            for (int64_t j = 0; j < n; j++)
                o[j] = accumulate ? o[j] + bf_to_f(s[j]) : bf_to_f(s[j]);
        } else {
            for (int64_t j = 0; j < n; j++)
                o[j * os] = (accumulate ? o[j * os] : 0.0f) + bf_to_f(s[j * ss]);
        }
    }
}

/* Between bf16 and f32 (activations of a bf16 model: permutes to and from tokens,
 * concatenations, the casts around an f32 residual stream, and their backward): rows of the
 * innermost dim, without the per-element f64 round trip of the generic loop below. Same
 * results: a bf16 -> f32 or bf16 -> bf16 copy is exact, an f32 -> bf16 one rounds once either
 * way, and a sum rounds in f32 instead of f64 (the same bf16 for two bf16s; for a bf16 and an
 * f32, the f32 sum can differ from the f64 one in its last bit before the rounding). */
struct bf16_cast_job {
    const struct ti_tensor *dst, *src;
    int accumulate;
};

static void bf16_cast_row(void *user, const int64_t *off, int64_t inner) {
    const struct bf16_cast_job *j = user;
    const enum ti_dtype od = j->dst->dtype, sd = j->src->dtype;
    const int nd = j->dst->ndim - 1;
    bf16_row((char *)j->dst->data + off[0] * (int64_t)ti_dtype_size(od), od, j->dst->stride[nd],
             (const char *)j->src->data + off[1] * (int64_t)ti_dtype_size(sd), sd,
             j->src->stride[nd], inner, j->accumulate);
}

static void bf16_cast(const struct ti_tensor *dst, const struct ti_tensor *src, int64_t n,
                      int accumulate) {
    if (dst->ndim == 0) {
        bf16_row(dst->data, dst->dtype, 1, src->data, src->dtype, 1, 1, accumulate);
        return;
    }
    struct bf16_cast_job job = {dst, src, accumulate};
    const int64_t *strides[2] = {dst->stride, src->stride};
    ti_cpu_for_rows(dst->ndim, dst->shape, 2, strides, n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1,
                    bf16_cast_row, &job);
}

/* dst[i] (op)= cast(src[i]) over a shape with two stride sets; accumulate: += instead of =. */
static void strided_cast(const struct ti_tensor *dst, const struct ti_tensor *src, int accumulate) {
    int64_t n = ti_tensor_numel(dst);
    if (n == 0) return;
    enum ti_dtype dd = dst->dtype, sd = src->dtype;
    int ints = !ti_dtype_is_float(dd) && !ti_dtype_is_float(sd);
    if (!accumulate && dd == sd && ti_tensor_is_contiguous(dst) && ti_tensor_is_contiguous(src)) {
        memcpy(dst->data, src->data, (size_t)n * ti_dtype_size(dd));
        return;
    }
    if ((dd == TI_DTYPE_BF16 && (sd == TI_DTYPE_BF16 || sd == TI_DTYPE_F32)) ||
        (dd == TI_DTYPE_F32 && sd == TI_DTYPE_BF16)) {
        bf16_cast(dst, src, n, accumulate);
        return;
    }
    const int64_t *strides[2] = {dst->stride, src->stride};
    int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        ti_split_range(n, nt, t, &lo, &hi);
        struct ti_iter it;
        ti_iter_init(&it, dst->ndim, dst->shape, 2, strides);
        ti_iter_seek(&it, lo);
        if (dd == TI_DTYPE_F32 && sd == TI_DTYPE_F32) {
            float *o = dst->data;
            const float *s = src->data;
            for (int64_t i = lo; i < hi; i++, ti_iter_next(&it)) {
                if (accumulate)
                    o[it.off[0]] += s[it.off[1]];
                else
                    o[it.off[0]] = s[it.off[1]];
            }
        } else if (ints) {
            for (int64_t i = lo; i < hi; i++, ti_iter_next(&it)) {
                int64_t v = load_i(src->data, sd, it.off[1]);
                if (accumulate) v += load_i(dst->data, dd, it.off[0]);
                store_i(dst->data, dd, it.off[0], v);
            }
        } else {
            for (int64_t i = lo; i < hi; i++, ti_iter_next(&it)) {
                double v = load_f(src->data, sd, it.off[1]);
                if (accumulate) v += load_f(dst->data, dd, it.off[0]);
                store_f(dst->data, dd, it.off[0], v);
            }
        }
    }
}

ti_status cpu_copy_forward(struct ti_kctx *k, const struct ti_copy_args *a) {
    (void)k;
    strided_cast(&a->out, &a->inp, 0);
    return TI_OK;
}

ti_status cpu_copy_backward(struct ti_kctx *k, const struct ti_copy_args *a) {
    (void)k;
    if (!a->dinp.data) return TI_OK;
    /* dout has the output's (contiguous) layout; view it with dinp's shape */
    struct ti_tensor d = a->dout;
    strided_cast(&a->dinp, &d, 1);
    return TI_OK;
}
