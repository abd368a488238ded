/*
 * weights.c - named parameter tables, one-slab allocation, loading with dtype/layout
 * conversion, deterministic random initialisation (see weights.h).
 */
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_info.h"
#include "rng.h"

/* The span of every parameter's memory (one slab), NULL when not allocated on the CPU. */
static const char *cpu_span(const struct ti_weights *w, size_t *bytes) {
    *bytes = 0;
    if (!w->be || w->be->device != TI_DEVICE_CPU) return NULL;
    const char *lo = NULL, *hi = NULL;
    for (int i = 0; i < w->n; i++) {
        const struct ti_tensor *t = w->items[i].slot;
        if (!t || !t->data) continue;
        const char *a = t->data, *b = a + ti_tensor_nbytes(t);
        if (!lo || a < lo) lo = a;
        if (!hi || b > hi) hi = b;
    }
    if (lo) *bytes = (size_t)(hi - lo);
    return lo;
}

/* Parameters are frozen once loaded: the CPU backend may keep reordered copies of them
 * (cpu_info.h); new values (a load, a randomize) drop those copies. */
static void declare_frozen(struct ti_weights *w) {
    size_t bytes;
    const char *p = cpu_span(w, &bytes);
    if (p) ti_cpu_weights_frozen(p, bytes);
    w->frozen = p;
    w->frozen_bytes = bytes;
}

void ti_weights_thaw(struct ti_weights *w) {
    if (!w->frozen) return;
    ti_cpu_weights_thawed(w->frozen, w->frozen_bytes);
    w->frozen = NULL;
    w->frozen_bytes = 0;
}

/* After new values were written: frozen again when complete, else not frozen at all. */
static void after_write(struct ti_weights *w, ti_status st) {
    if (st == TI_OK)
        declare_frozen(w);
    else
        ti_weights_thaw(w);
}

void ti_weights_init(struct ti_weights *w) {
    memset(w, 0, sizeof *w);
}

void ti_weights_free(struct ti_weights *w) {
    if (!w) return;
    if (w->frozen) ti_cpu_weights_thawed(w->frozen, w->frozen_bytes);
    /* slots are not touched: the modules that own them may already be freed */
    for (int i = 0; i < w->n; i++)
        free(w->items[i].key);
    free(w->items);
    ti_arena_free(&w->arena);
    memset(w, 0, sizeof *w);
}

ti_status ti_weights_add(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                         const char *name, int ndim, const int64_t *shape, struct ti_err *err) {
    if (ndim < 1 || ndim > TI_WEIGHT_MAX_DIMS)
        return ti_error(err, TI_ERR_INVALID, "weights: %s%s has %d dims", prefix, name, ndim);
    if (w->arena)
        return ti_error(err, TI_ERR_INVALID, "weights: %s%s added after allocation", prefix, name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 256;
        struct ti_weight *it = realloc(w->items, (size_t)cap * sizeof *it);
        if (!it) return ti_error(err, TI_ERR_NOMEM, "weights: out of host memory");
        w->items = it;
        w->cap = cap;
    }
    size_t lp = strlen(prefix), ln = strlen(name);
    char *key = malloc(lp + ln + 1);
    if (!key) return ti_error(err, TI_ERR_NOMEM, "weights: out of host memory");
    memcpy(key, prefix, lp);
    memcpy(key + lp, name, ln + 1);
    struct ti_weight *it = &w->items[w->n++];
    memset(it, 0, sizeof *it);
    it->key = key;
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
    it->slot = slot;
    *slot = ti_tensor_none();
    return TI_OK;
}

ti_status ti_weights_add1(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, struct ti_err *err) {
    int64_t s[1] = {d0};
    return ti_weights_add(w, slot, prefix, name, 1, s, err);
}

ti_status ti_weights_add2(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, int64_t d1, struct ti_err *err) {
    int64_t s[2] = {d0, d1};
    return ti_weights_add(w, slot, prefix, name, 2, s, err);
}

ti_status ti_weights_add4(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                          struct ti_err *err) {
    int64_t s[4] = {d0, d1, d2, d3};
    return ti_weights_add(w, slot, prefix, name, 4, s, err);
}

static int64_t item_numel(const struct ti_weight *it) {
    int64_t n = 1;
    for (int i = 0; i < it->ndim; i++)
        n *= it->shape[i];
    return n;
}

ti_status ti_weights_alloc(struct ti_weights *w, const struct ti_backend *be, enum ti_dtype dt,
                           struct ti_err *err) {
    /* every size first, then one slab (each tensor rounded up to the arena alignment) */
    size_t total = 0, es = ti_dtype_size(dt);
    w->numel = 0;
    for (int i = 0; i < w->n; i++) {
        int64_t n = item_numel(&w->items[i]);
        w->numel += n;
        total += ((size_t)n * es + 255) / 256 * 256;
    }
    TI_TRY(ti_arena_init(&w->arena, be, TI_ARENA_STACK, "weights", total ? total : 256, 0, err));
    w->be = be;
    w->dtype = dt;
    for (int i = 0; i < w->n; i++) {
        struct ti_weight *it = &w->items[i];
        TI_TRY(ti_arena_tensor(it->slot, w->arena, dt, it->ndim, it->shape, err));
    }
    return TI_OK;
}

const struct ti_weight *ti_weights_find(const struct ti_weights *w, const char *key) {
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->items[i].key, key) == 0) return &w->items[i];
    return NULL;
}

/* host buffer (dtype dt, contiguous) -> the parameter's device memory */
static ti_status put(struct ti_weights *w, struct ti_kctx *k, struct ti_weight *it,
                     const void *host) {
    size_t bytes = ti_tensor_nbytes(it->slot);
    return w->be->mem_copy(w->be, k, it->slot->data, w->be->device, host, TI_DEVICE_CPU, bytes);
}

static ti_status kctx_open(struct ti_weights *w, struct ti_kctx *k, struct ti_err *err) {
    memset(k, 0, sizeof *k);
    k->err = err;
    k->device_index = w->be->device_index;
    return w->be->kctx_init ? w->be->kctx_init(w->be, k) : TI_OK;
}

static void kctx_close(struct ti_weights *w, struct ti_kctx *k) {
    if (w->be->kctx_free) w->be->kctx_free(w->be, k);
}

ti_status ti_weights_load(struct ti_weights *w, const struct ti_weight_source *src,
                          struct ti_err *err) {
    if (!w->arena) return ti_error(err, TI_ERR_INVALID, "weights: load before alloc");
    size_t es = ti_dtype_size(w->dtype), maxb = 0;
    for (int i = 0; i < w->n; i++) {
        size_t b = (size_t)item_numel(&w->items[i]) * es;
        if (b > maxb) maxb = b;
    }
    void *stage = malloc(maxb ? maxb : 1);
    if (!stage) return ti_error(err, TI_ERR_NOMEM, "weights: no host memory for staging");
    struct ti_kctx k;
    ti_status st = kctx_open(w, &k, err);
    const struct ti_backend *cpu = ti_backend_cpu();
    for (int i = 0; st == TI_OK && i < w->n; i++) {
        struct ti_weight *it = &w->items[i];
        struct ti_tensor view;
        ti_status gs = src->get(src->user, it->key, &view, err);
        if (gs == TI_ERR_NOT_FOUND) {
            if (it->optional) {
                memset(stage, 0, (size_t)item_numel(it) * es);
                st = put(w, &k, it, stage);
                continue;
            }
            st = ti_error(err, TI_ERR_NOT_FOUND, "%s: key '%s' is missing", src->name, it->key);
            break;
        }
        if (gs != TI_OK) {
            st = gs;
            break;
        }
        int same = view.ndim == it->ndim;
        for (int d = 0; same && d < it->ndim; d++)
            same = view.shape[d] == it->shape[d];
        if (!same) {
            char a[96], b[96];
            st = ti_error(err, TI_ERR_SHAPE, "%s: '%s' has shape %s, the model expects %s",
                          src->name, it->key, ti_shape_str(view.ndim, view.shape, a, sizeof a),
                          ti_shape_str(it->ndim, it->shape, b, sizeof b));
            break;
        }
        if (!ti_dtype_is_float(view.dtype)) {
            st = ti_error(err, TI_ERR_DTYPE, "%s: '%s' has dtype %s, expected a float tensor",
                          src->name, it->key, ti_dtype_name(view.dtype));
            break;
        }
        /* convert dtype and layout on the host with the CPU COPY kernel */
        struct ti_copy_args ca;
        memset(&ca, 0, sizeof ca);
        ca.out = ti_tensor_view(stage, w->dtype, TI_DEVICE_CPU, it->ndim, it->shape);
        ca.inp = view;
        struct ti_kctx hk;
        memset(&hk, 0, sizeof hk);
        hk.err = err;
        st = cpu->k[w->dtype].copy_forward(&hk, &ca);
        if (st == TI_OK) st = put(w, &k, it, stage);
    }
    kctx_close(w, &k);
    free(stage);
    after_write(w, st);
    return st;
}

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b + 0x9e3779b97f4a7c15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

ti_status ti_weights_randomize(struct ti_weights *w, uint64_t seed, double gain,
                               struct ti_err *err) {
    if (!w->arena) return ti_error(err, TI_ERR_INVALID, "weights: randomize before alloc");
    size_t es = ti_dtype_size(w->dtype);
    int64_t maxn = 0;
    for (int i = 0; i < w->n; i++)
        if (item_numel(&w->items[i]) > maxn) maxn = item_numel(&w->items[i]);
    float *f = malloc((size_t)(maxn ? maxn : 1) * sizeof(float));
    void *stage = w->dtype == TI_DTYPE_F32 ? (void *)f : malloc((size_t)(maxn ? maxn : 1) * es);
    if (!f || !stage) {
        free(f);
        if (stage != f) free(stage);
        return ti_error(err, TI_ERR_NOMEM, "weights: no host memory for staging");
    }
    struct ti_kctx k;
    ti_status st = kctx_open(w, &k, err);
    const int64_t chunk = 1 << 20;
    for (int i = 0; st == TI_OK && i < w->n; i++) {
        struct ti_weight *it = &w->items[i];
        int64_t n = item_numel(it);
        /* matrices / kernels: fan-in scaled normal; vectors: norm weights 1, biases small */
        int is_vec = it->ndim == 1;
        size_t kl = strlen(it->key);
        int is_norm_w = is_vec && kl > 7 && strcmp(it->key + kl - 7, ".weight") == 0;
        double fan_in = 1;
        for (int d = 1; d < it->ndim; d++)
            fan_in *= (double)it->shape[d];
        if (it->ndim == 2 && it->shape[0] > 1000 && it->shape[1] <= 1280 && strstr(it->key, "emb"))
            fan_in = 1; /* embedding tables: unit-scale rows */
        double std = is_vec ? 0.02 : gain / sqrt(fan_in);
        int64_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
        for (int64_t c = 0; c < nchunks; c++) {
            struct ti_rng r;
            ti_rng_seed(&r, mix(mix(seed, (uint64_t)i), (uint64_t)c));
            int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
            /* uniform on [-sqrt 3, sqrt 3): unit variance, and ~10x cheaper than normal draws */
            for (int64_t j = lo; j < hi; j++) {
                double u = (double)(ti_rng_next(&r) >> 11) * 0x1.0p-53;
                f[j] = is_norm_w ? 1.0f : (float)((2.0 * u - 1.0) * 1.7320508075688772 * std);
            }
        }
        if (stage != f) {
            struct ti_copy_args ca;
            memset(&ca, 0, sizeof ca);
            ca.out = ti_tensor_view(stage, w->dtype, TI_DEVICE_CPU, it->ndim, it->shape);
            ca.inp = ti_tensor_view(f, TI_DTYPE_F32, TI_DEVICE_CPU, it->ndim, it->shape);
            struct ti_kctx hk;
            memset(&hk, 0, sizeof hk);
            hk.err = err;
            st = ti_backend_cpu()->k[w->dtype].copy_forward(&hk, &ca);
        }
        if (st == TI_OK) st = put(w, &k, it, stage);
    }
    kctx_close(w, &k);
    if (stage != f) free(stage);
    free(f);
    after_write(w, st);
    return st;
}
