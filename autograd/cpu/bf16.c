/*
 * cpu/bf16.c - the CPU backend's bf16 kernel table: bf16 storage, f32 arithmetic.
 *
 * Convolution forward and backward-data (dnnl_conv.c) and linear forward and backward-data
 * (dnnl_matmul.c) run through oneDNN on the bf16 tensors themselves
 * (bf16 inputs and weights, f32 accumulation; AVX512-BF16 / AMX kernels where the CPU has them,
 * oneDNN's own conversion kernels on AVX2/AVX-512 without them) when ti is built with oneDNN
 * and the weight has a cached blocked copy (dnnl_conv.c). Every other kernel (and those
 * convolutions oneDNN does not take) is the f32 kernel wrapped by widen-compute-narrow: each
 * bf16 tensor the kernel reads is converted into f32 scratch, the f32 kernel runs, and each
 * tensor it writes is rounded back to bf16 (round to nearest even). Statistics (mean, rstd, lse)
 * are f32 tensors already and are passed through. So every op is computed exactly as in f32
 * from the bf16-rounded inputs, and rounded once at the end; the conversion costs memory
 * traffic (about 6 bytes per element read, 6 per element written) on top of the f32 kernel.
 *
 * Built without oneDNN, bf16 still runs, all by conversion: correct, slower than f32.
 * Every slot of the f32 table has its bf16 counterpart here (COPY is dtype-generic, copy.c);
 * a slot left NULL would be reported by the front end as "no <op> kernel for bf16".
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <string.h> /* defines: memcpy */

/* ---- conversion ------------------------------------------------------------------------------ */
static inline float bf_to_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f_to_bf(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static void widen_run(float *dst, const uint16_t *src, int64_t n, int64_t ds, int64_t ss) {
    if (ds == 1 && ss == 1) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = bf_to_f(src[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i * ds] = bf_to_f(src[i * ss]);
    }
}

static void narrow_run(uint16_t *dst, const float *src, int64_t n, int64_t ds, int64_t ss) {
    if (ds == 1 && ss == 1) {
        for (int64_t i = 0; i < n; i++)
            dst[i] = f_to_bf(src[i]);
    } else {
        for (int64_t i = 0; i < n; i++)
            dst[i * ds] = f_to_bf(src[i * ss]);
    }
}

/* Elements of the view, and whether its strides are row-major contiguous. */
static int64_t view_numel(const struct ti_tensor *t, int *contig) {
    int64_t n = 1, s = 1;
    *contig = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) *contig = 0;
        s *= t->shape[d];
        n *= t->shape[d];
    }
    return n;
}

struct convert_job {
    uint16_t *bf;
    float *fl;
    int64_t is; /* the innermost stride (both buffers) */
    int to_f32;
};

static void convert_row(void *user, const int64_t *off, int64_t inner) {
    const struct convert_job *j = user;
    if (j->to_f32)
        widen_run(j->fl + off[0], j->bf + off[0], inner, j->is, j->is);
    else
        narrow_run(j->bf + off[0], j->fl + off[0], inner, j->is, j->is);
}

/* Copies every element of the view `t` between the bf16 buffer `bf` and the f32 buffer `fl`
 * (both with t's strides; to_f32 says which way), rows of the innermost dim in parallel. */
static void convert_view(const struct ti_tensor *t, uint16_t *bf, float *fl, int to_f32) {
    int contig;
    int64_t n = view_numel(t, &contig);
    if (n == 0) return;
    if (contig || t->ndim == 0) {
        int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
#pragma omp parallel for schedule(static) if (nt > 1)
        for (int p = 0; p < nt; p++) {
            int64_t lo, hi;
            ti_split_range(n, nt, p, &lo, &hi);
            if (to_f32)
                widen_run(fl + lo, bf + lo, hi - lo, 1, 1);
            else
                narrow_run(bf + lo, fl + lo, hi - lo, 1, 1);
        }
        return;
    }
    struct convert_job job = {bf, fl, t->stride[t->ndim - 1], to_f32};
    const int64_t *st[1] = {t->stride};
    ti_cpu_for_rows(t->ndim, t->shape, 1, st, n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1,
                    convert_row, &job);
}

/* ---- widen-compute-narrow -------------------------------------------------------------------- */
enum { RD = 0, WR = 1, ACC = 2 }; /* read; overwritten; read and written (+=) */

struct cv {
    struct ti_tensor *t; /* in the kernel's argument copy */
    int role;
    struct ti_tensor orig;
};

/* Points every present bf16 tensor of v at an f32 copy in scratch (same strides, offset 0 at
 * the view's first element; read and accumulated ones filled). */
static ti_status widen(struct ti_kctx *k, struct cv *v, int n, const char *op) {
    for (int i = 0; i < n; i++) {
        struct ti_tensor *t = v[i].t;
        v[i].orig = *t;
        if (!t->data || t->dtype != TI_DTYPE_BF16) {
            v[i].t = NULL; /* left as it is */
            continue;
        }
        int64_t span = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] == 0) span = 0;
            if (t->stride[d] < 0)
                return ti_error(k->err, TI_ERR_INTERNAL, "%s bf16: negative stride", op);
        }
        if (span)
            for (int d = 0; d < t->ndim; d++)
                span += (t->shape[d] - 1) * t->stride[d];
        float *f = cpu_scratch(k, (size_t)(span ? span : 1) * sizeof(float));
        if (!f) return ti_error(k->err, TI_ERR_NOMEM, "%s bf16: no scratch for f32 copy", op);
        if (v[i].role != WR) convert_view(t, t->data, f, 1);
        t->data = f;
        t->dtype = TI_DTYPE_F32;
    }
    return TI_OK;
}

static void narrow(struct cv *v, int n) {
    for (int i = 0; i < n; i++)
        if (v[i].t && v[i].role != RD) convert_view(&v[i].orig, v[i].orig.data, v[i].t->data, 0);
}

#define CV(field, role)                                                                            \
    {                                                                                              \
        &c.field, role, {                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* One wrapped kernel: copy the arguments, widen the listed tensors, run f32, narrow. */
#define TI_BF16_WRAP(name, dir, ...)                                                               \
    static ti_status wrap_##name##_##dir(struct ti_kctx *k, const struct ti_##name##_args *a) {    \
        struct ti_##name##_args c = *a;                                                            \
        struct cv v[] = {__VA_ARGS__};                                                             \
        int n = (int)(sizeof v / sizeof v[0]);                                                     \
        TI_TRY(widen(k, v, n, #name));                                                             \
        TI_TRY(cpu_f32_##name##_##dir(k, &c));                                                     \
        narrow(v, n);                                                                              \
        return TI_OK;                                                                              \
    }

TI_BF16_WRAP(add, forward, CV(out, WR), CV(a, RD), CV(b, RD))
TI_BF16_WRAP(mul, forward, CV(out, WR), CV(a, RD), CV(b, RD))
TI_BF16_WRAP(sum, forward, CV(out, WR), CV(inp, RD))
TI_BF16_WRAP(linear, forward, CV(out, WR), CV(inp, RD), CV(weight, RD), CV(bias, RD))
TI_BF16_WRAP(linear, backward, CV(dout, RD), CV(inp, RD), CV(weight, RD), CV(dinp, ACC),
             CV(dweight, ACC), CV(dbias, ACC))
/* MATMUL forward reads out when beta != 0 (out = alpha a.b + beta out). */
TI_BF16_WRAP(matmul, forward, CV(out, a->beta != 0 ? ACC : WR), CV(a, RD), CV(b, RD))
TI_BF16_WRAP(matmul, backward, CV(dout, RD), CV(a, RD), CV(b, RD), CV(da, ACC), CV(db, ACC))
TI_BF16_WRAP(conv2d, forward, CV(out, WR), CV(inp, RD), CV(weight, RD), CV(bias, RD))
TI_BF16_WRAP(conv2d, backward, CV(dout, RD), CV(inp, RD), CV(weight, RD), CV(dinp, ACC),
             CV(dweight, ACC), CV(dbias, ACC))
TI_BF16_WRAP(groupnorm, forward, CV(out, WR), CV(inp, RD), CV(weight, RD), CV(bias, RD))
TI_BF16_WRAP(groupnorm, backward, CV(dout, RD), CV(inp, RD), CV(weight, RD), CV(bias, RD),
             CV(dinp, ACC), CV(dweight, ACC), CV(dbias, ACC))
TI_BF16_WRAP(layernorm, forward, CV(out, WR), CV(inp, RD), CV(weight, RD), CV(bias, RD))
TI_BF16_WRAP(layernorm, backward, CV(dout, RD), CV(inp, RD), CV(weight, RD), CV(bias, RD),
             CV(dinp, ACC), CV(dweight, ACC), CV(dbias, ACC))
TI_BF16_WRAP(unary, forward, CV(out, WR), CV(inp, RD))
TI_BF16_WRAP(unary, backward, CV(dout, RD), CV(inp, RD), CV(out, RD), CV(dinp, ACC))
TI_BF16_WRAP(geglu, forward, CV(out, WR), CV(inp, RD))
TI_BF16_WRAP(geglu, backward, CV(dout, RD), CV(inp, RD), CV(dinp, ACC))
TI_BF16_WRAP(softmax, forward, CV(out, WR), CV(inp, RD))
TI_BF16_WRAP(softmax, backward, CV(dout, RD), CV(out, RD), CV(dinp, ACC))
TI_BF16_WRAP(attention, forward, CV(out, WR), CV(q, RD), CV(k, RD), CV(v, RD))
TI_BF16_WRAP(attention, backward, CV(dout, RD), CV(out, RD), CV(q, RD), CV(k, RD), CV(v, RD),
             CV(dq, ACC), CV(dk, ACC), CV(dv, ACC))
TI_BF16_WRAP(upsample, forward, CV(out, WR), CV(inp, RD))
TI_BF16_WRAP(upsample, backward, CV(dout, RD), CV(dinp, ACC))
TI_BF16_WRAP(embedding, forward, CV(out, WR), CV(table, RD), CV(rows, RD))
TI_BF16_WRAP(embedding, backward, CV(dout, RD), CV(drows, ACC))
TI_BF16_WRAP(timestep, forward, CV(out, WR), CV(t, RD))
TI_BF16_WRAP(timestep, backward, CV(dout, RD), CV(t, RD), CV(dt, ACC))
TI_BF16_WRAP(mse, forward, CV(out, WR), CV(a, RD), CV(b, RD))
TI_BF16_WRAP(mse, backward, CV(dout, RD), CV(a, RD), CV(b, RD), CV(da, ACC), CV(db, ACC))

/* ---- ADD and GEGLU: through small f32 buffers that stay in cache ----------------------------
 * The widen-compute-narrow of the wrapper above moves every element through an f32 copy of the
 * whole tensor in scratch, i.e. through memory. ADD (the residual sums and the backward's
 * gradient accumulation, the largest user of the wrapper in a UNet step) and GEGLU (the
 * transformers' widest activations) instead convert a piece at a time: a row chunk (ADD) or a
 * block of rows (GEGLU) is widened into a per-thread f32 buffer, computed by the same f32
 * arithmetic and rounded once into the output. Same results as the wrapper, element for
 * element. */
enum { CHUNK = 512 }; /* f32 elements per operand and per piece: 2 KiB */

/* dst[0..n) = the f32 values of t's elements at off + i * st (bf16 or f32) */
static void load_f32(float *dst, const struct ti_tensor *t, int64_t off, int64_t n, int64_t st) {
    if (t->dtype == TI_DTYPE_BF16) {
        widen_run(dst, (const uint16_t *)t->data + off, n, 1, st);
        return;
    }
    const float *s = (const float *)t->data + off;
    for (int64_t i = 0; i < n; i++)
        dst[i] = s[i * st];
}

static void store_f32(const struct ti_tensor *t, int64_t off, const float *src, int64_t n,
                      int64_t st) {
    if (t->dtype == TI_DTYPE_BF16) {
        narrow_run((uint16_t *)t->data + off, src, n, st, 1);
        return;
    }
    float *d = (float *)t->data + off;
    for (int64_t i = 0; i < n; i++)
        d[i * st] = src[i];
}

static int bf16_or_f32(const struct ti_tensor *t) {
    return !t->data || t->dtype == TI_DTYPE_BF16 || t->dtype == TI_DTYPE_F32;
}

/* out[o + i os] = alpha a[x + i xs] (+ beta b[y + i ys]) for i in [0, m), in pieces of CHUNK */
static void add_run(const struct ti_add_args *a, int64_t o, int64_t x, int64_t y, int64_t m,
                    int64_t os, int64_t xs, int64_t ys) {
    const float alpha = (float)a->alpha, beta = (float)a->beta;
    float fx[CHUNK], fy[CHUNK];
    for (int64_t j = 0; j < m; j += CHUNK) {
        const int64_t c = m - j < CHUNK ? m - j : CHUNK;
        load_f32(fx, &a->a, x + j * xs, c, xs);
        if (a->b.data) {
            load_f32(fy, &a->b, y + j * ys, c, ys);
            for (int64_t i = 0; i < c; i++)
                fx[i] = alpha * fx[i] + beta * fy[i];
        } else {
            for (int64_t i = 0; i < c; i++)
                fx[i] = alpha * fx[i];
        }
        store_f32(&a->out, o + j * os, fx, c, os);
    }
}

static void add_row(void *user, const int64_t *off, int64_t inner) {
    const struct ti_add_args *a = user;
    const int nd = a->out.ndim - 1;
    add_run(a, off[0], off[1], off[2], inner, a->out.stride[nd], a->a.stride[nd],
            a->b.data ? a->b.stride[nd] : 0);
}

static ti_status cpu_bf16_add_forward(struct ti_kctx *k, const struct ti_add_args *a) {
    if (a->out.ndim == 0 || !bf16_or_f32(&a->out) || !bf16_or_f32(&a->a) || !bf16_or_f32(&a->b))
        return wrap_add_forward(k, a);
    const int64_t n = ti_tensor_numel(&a->out);
    if (n == 0) return TI_OK;
    const int nt = n >= TI_CPU_PAR_MIN ? ti_cpu_threads() : 1;
    if (ti_tensor_is_contiguous(&a->out) && ti_tensor_is_contiguous(&a->a) &&
        (!a->b.data || ti_tensor_is_contiguous(&a->b))) { /* one run, split between threads */
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            int64_t lo, hi;
            ti_split_range(n, nt, t, &lo, &hi);
            if (lo < hi) add_run(a, lo, lo, lo, hi - lo, 1, 1, 1);
        }
        return TI_OK;
    }
    /* rows of the innermost dim, split between threads */
    const int64_t *strides[3] = {a->out.stride, a->a.stride, a->b.data ? a->b.stride : a->a.stride};
    ti_cpu_for_rows(a->out.ndim, a->out.shape, 3, strides, nt, add_row, (void *)a);
    return TI_OK;
}

/* Kernels whose rows are independent (GEGLU: every tensor (M, width), contiguous): blocks of
 * rows are widened into per-thread f32 buffers of about ROWS_BUF elements, the f32 kernel runs
 * on the block, and what it wrote is rounded back. Returns 0 (nothing done) when a tensor is not
 * contiguous, not bf16 / f32, or its first dim is not M: the caller then wraps the whole op. */
enum {
    ROWS_BUF = 16384, /* f32 elements of one thread's buffer */
    ROWS_ARGS = 1024  /* bytes of an argument struct (checked by _Static_assert) */
};

static int rows_wrap(struct ti_kctx *k, struct cv *v, int n, void *args, size_t args_size,
                     ti_status (*f32)(struct ti_kctx *, const void *), ti_status *st) {
    const int64_t M = v[0].t->ndim ? v[0].t->shape[0] : 0;
    size_t off[8];
    int64_t width[8], total = 0, elems = 0;
    if (n > 8 || M <= 0) return 0;
    for (int i = 0; i < n; i++) {
        const struct ti_tensor *t = v[i].t;
        off[i] = (size_t)((char *)v[i].t - (char *)args);
        width[i] = 0;
        if (!t->data) continue;
        if ((t->dtype != TI_DTYPE_BF16 && t->dtype != TI_DTYPE_F32) || t->ndim < 1 ||
            t->shape[0] != M || !ti_tensor_is_contiguous(t))
            return 0;
        width[i] = ti_tensor_numel(t) / M;
        elems += width[i] * M;
        if (t->dtype == TI_DTYPE_BF16) total += width[i];
    }
    const int64_t R = total >= ROWS_BUF ? 1 : ROWS_BUF / (total ? total : 1);
    const int nt = elems >= TI_CPU_PAR_MIN / 4 ? ti_cpu_threads() : 1;
    const int64_t per = R * total > 0 ? R * total : 1;
    float *buf = cpu_scratch(k, (size_t)nt * (size_t)per * sizeof(float));
    if (!buf) {
        *st = ti_error(k->err, TI_ERR_NOMEM, "bf16 rows: no scratch for f32 blocks");
        return 1;
    }
    const int64_t blocks = (M + R - 1) / R;
    ti_status res = TI_OK;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int th = 0; th < nt; th++) {
        int64_t lo, hi;
        ti_split_range(blocks, nt, th, &lo, &hi);
        _Alignas(64) unsigned char cc[ROWS_ARGS];
        float *mine = buf + (size_t)th * (size_t)per;
        for (int64_t b = lo; b < hi; b++) {
            const int64_t m0 = b * R, r = M - m0 < R ? M - m0 : R;
            memcpy(cc, args, args_size);
            float *p = mine;
            for (int i = 0; i < n; i++) {
                struct ti_tensor *t = (struct ti_tensor *)(cc + off[i]);
                if (!t->data) continue;
                t->shape[0] = r;
                if (t->dtype == TI_DTYPE_F32) {
                    t->data = (float *)t->data + m0 * width[i];
                    continue;
                }
                if (v[i].role != WR)
                    widen_run(p, (const uint16_t *)t->data + m0 * width[i], r * width[i], 1, 1);
                t->data = p;
                t->dtype = TI_DTYPE_F32;
                p += r * width[i];
            }
            ti_status s = f32(k, cc);
            if (s != TI_OK) {
#pragma omp atomic write
                res = s;
                break;
            }
            p = mine;
            for (int i = 0; i < n; i++) {
                const struct ti_tensor *t = v[i].t;
                if (!t->data || t->dtype != TI_DTYPE_BF16) continue;
                if (v[i].role != RD)
                    narrow_run((uint16_t *)t->data + m0 * width[i], p, r * width[i], 1, 1);
                p += r * width[i];
            }
        }
    }
    *st = res;
    return 1;
}

/* The row-blocked form of one kernel; the whole-op wrapper when rows_wrap declines. */
#define TI_BF16_ROWS(name, dir, ...)                                                               \
    static ti_status f32_##name##_##dir(struct ti_kctx *k, const void *c) {                        \
        return cpu_f32_##name##_##dir(k, c);                                                       \
    }                                                                                              \
    static ti_status rows_##name##_##dir(struct ti_kctx *k, const struct ti_##name##_args *a) {    \
        struct ti_##name##_args c = *a;                                                            \
        struct cv v[] = {__VA_ARGS__};                                                             \
        ti_status st = TI_OK;                                                                      \
        _Static_assert(sizeof c <= ROWS_ARGS, "rows_wrap's argument copy");                        \
        if (rows_wrap(k, v, (int)(sizeof v / sizeof v[0]), &c, sizeof c, f32_##name##_##dir, &st)) \
            return st;                                                                             \
        return wrap_##name##_##dir(k, a);                                                          \
    }

TI_BF16_ROWS(geglu, forward, CV(out, WR), CV(inp, RD))
TI_BF16_ROWS(geglu, backward, CV(dout, RD), CV(inp, RD), CV(dinp, ACC))

/* ---- convolutions: oneDNN on the bf16 tensors first ----------------------------------------- */
static ti_status cpu_bf16_conv2d_forward(struct ti_kctx *k, const struct ti_conv2d_args *a) {
#ifdef TI_HAVE_DNNL
    int done = 0;
    TI_TRY(ti_dnnl_conv2d_forward(k, a, &done));
    if (done) return TI_OK;
#endif
    return wrap_conv2d_forward(k, a);
}

static ti_status cpu_bf16_conv2d_backward(struct ti_kctx *k, const struct ti_conv2d_args *a) {
#ifdef TI_HAVE_DNNL
    if (a->dinp.data) {
        int done = 0;
        TI_TRY(ti_dnnl_conv2d_backward_data(k, a, &done));
        if (done) {
            if (!a->dweight.data && !a->dbias.data) return TI_OK;
            struct ti_conv2d_args rest = *a;
            rest.dinp = ti_tensor_none();
            return wrap_conv2d_backward(k, &rest);
        }
    }
#endif
    return wrap_conv2d_backward(k, a);
}

/* ---- linear: oneDNN's bf16 matmul first (dnnl_matmul.c) ------------------------------------ */
static ti_status cpu_bf16_linear_forward(struct ti_kctx *k, const struct ti_linear_args *a) {
#ifdef TI_HAVE_DNNL
    int done = 0;
    TI_TRY(ti_dnnl_linear_bf16(k, a, 0, &done));
    if (done) return TI_OK;
#endif
    return wrap_linear_forward(k, a);
}

static ti_status cpu_bf16_linear_backward(struct ti_kctx *k, const struct ti_linear_args *a) {
#ifdef TI_HAVE_DNNL
    if (a->dinp.data) {
        int done = 0;
        TI_TRY(ti_dnnl_linear_bf16(k, a, 1, &done));
        if (done) {
            if (!a->dweight.data && !a->dbias.data) return TI_OK;
            struct ti_linear_args rest = *a;
            rest.dinp = ti_tensor_none();
            return wrap_linear_backward(k, &rest);
        }
    }
#endif
    return wrap_linear_backward(k, a);
}

/* ---- attention: the AVX512-BF16 kernel first (attention_bf16.c) ----------------------------- */
static ti_status cpu_bf16_attention_forward(struct ti_kctx *k, const struct ti_attention_args *a) {
    int done = 0;
    TI_TRY(ti_cpu_bf16_attention(k, a, 0, &done));
    return done ? TI_OK : wrap_attention_forward(k, a);
}

static ti_status cpu_bf16_attention_backward(struct ti_kctx *k, const struct ti_attention_args *a) {
    int done = 0;
    TI_TRY(ti_cpu_bf16_attention(k, a, 1, &done));
    return done ? TI_OK : wrap_attention_backward(k, a);
}

/* ---- the table ------------------------------------------------------------------------------- */
#define TI_BWD_SET_1(name) kt->name##_backward = wrap_##name##_backward;
#define TI_BWD_SET_0(name)
#define wrap_copy_forward       cpu_copy_forward /* dtype-generic (copy.c) */
#define wrap_copy_backward      cpu_copy_backward
#define wrap_conv2d_forward     cpu_bf16_conv2d_forward
#define wrap_conv2d_backward    cpu_bf16_conv2d_backward
#define wrap_linear_forward     cpu_bf16_linear_forward
#define wrap_linear_backward    cpu_bf16_linear_backward
#define wrap_attention_forward  cpu_bf16_attention_forward
#define wrap_attention_backward cpu_bf16_attention_backward
#define wrap_add_forward        cpu_bf16_add_forward
#define wrap_geglu_forward      rows_geglu_forward
#define wrap_geglu_backward     rows_geglu_backward

void ti_cpu_bf16_fill(struct ti_kernels *kt) {
#define TI_KOP(NAME, name, BWD)                                                                    \
    kt->name##_forward = wrap_##name##_forward;                                                    \
    TI_BWD_SET_##BWD(name)
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP
}
