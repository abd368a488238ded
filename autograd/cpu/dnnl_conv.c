/*
 * cpu/dnnl_conv.c - f32 and bf16 convolution forward and backward-data through oneDNN (the library
 * PyTorch's CPU convolutions use), when ti is built with it (TI_HAVE_DNNL, CMake TI_DNNL).
 * oneDNN picks its kernels from the CPU's features (AVX2, AVX-512, AVX512-BF16, AMX), not from
 * a table of CPU models, so new CPUs get vector kernels. Without oneDNN, or when oneDNN cannot
 * take a shape, conv2d.c's own paths (Winograd / shifted GEMM / im2col over CPU_GEMM) run.
 *
 * When: only for a frozen weight with a reordered copy in the cache below, or (f32) one whose
 * layout is a mere permutation on a large image, reordered per call (per_call). Otherwise
 * conv2d.c's paths are faster: they read the weight in place, while reordering it per call costs
 * ~40/pixels of the convolution, and at many pixels their Winograd beats oneDNN's direct kernels
 * plus the reorders (1-thread CPU time, 320 -> 320 at 64x64: 51 ms against 70 ms; docs/PERF.md).
 *
 * Per call: the plain NCHW input is reordered into the primitive's layout (nhwc or nChw16c on
 * AVX-512) in the kernel's scratch, the convolution runs, and the result is reordered back
 * (backward-data adds it into dinp with a sum post-op, keeping the "backward adds" contract).
 * Primitives are created once per shape and kept (prims below); their scratchpad comes from the
 * kernel's scratch arena.
 *
 * Algorithm: Winograd F(4x4, 3x3) (jit_wino_4x3, AVX-512 only) for 3x3 stride-1 convolutions
 * over >= 1024 output pixels, else direct (wino_shape); with the weight cached, Winograd ran
 * 2.1-2.9x faster than conv2d.c's F(2x2, 3x3) at 32x32 and 64x64.
 *
 * Weight cache: oneDNN's kernels read the weight in a blocked (Winograd: transformed, 4x the
 * plain size) layout. Only weights inside memory declared frozen are cached
 * (ti_cpu_weights_frozen, cpu_info.h; model/weights.c declares every model parameter after a
 * load or randomize): declaring memory frozen again or thawing it drops the copies made from
 * it, so a weight that changes (weight-gradient training, a reload) is never served stale; the
 * cache is never keyed on a bare pointer. The copies take at most TI_DNNL_WEIGHT_CACHE_MB
 * (default 512 MiB) in all, bf16 copies at most 256 MiB and f32 copies none unless the variable
 * is set, on top of the plain weights: that is the memory cost. Copies are
 * made first come, first served and never evicted, so the set is fixed by the first pass over
 * a model and every later step computes exactly what the first did.
 *
 * Environment: TI_DNNL=0 turns the oneDNN convolutions off (conv2d.c's own paths run);
 * TI_DNNL_WINOGRAD=0 keeps oneDNN on the direct algorithm.
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#ifdef TI_HAVE_DNNL

#include <pthread.h> /* defines: pthread_mutex_t, pthread_once */
#include <stdlib.h>  /* defines: getenv, atoi, aligned_alloc, free, calloc */
#include <string.h>  /* defines: memset, memcmp */

#include <dnnl.h> /* defines: dnnl_* */

#include "../cpu_info.h"

/* ---- engine and stream (created once) -------------------------------------------------------- */
static pthread_once_t dn_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t dn_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t dn_engine;
static dnnl_stream_t dn_stream;
static int dn_ok;

static void dn_init(void) {
    const char *e = getenv("TI_DNNL");
    if (e && e[0] == '0') return;
    if (dnnl_engine_create(&dn_engine, dnnl_cpu, 0) != dnnl_success) return;
    if (dnnl_stream_create(&dn_stream, dn_engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(dn_engine);
        return;
    }
    dn_ok = 1;
}

int ti_dnnl_conv_enabled(void) {
    pthread_once(&dn_once, dn_init);
    return dn_ok;
}

/* ---- frozen memory and the blocked-weight cache ---------------------------------------------- */
struct frozen {
    const char *lo, *hi;
};
struct wcache {
    const void *src;       /* the plain weight */
    dnnl_memory_desc_t md; /* blocked layout of the copy */
    void *data;            /* the copy (malloc'd) */
    size_t bytes;
    int bf16; /* counted in wc_bf16_bytes too */
};
static struct frozen *fz;
static int fz_n, fz_cap;
static struct wcache *wc;
static int wc_n, wc_cap;
static size_t wc_bytes, wc_bf16_bytes;

/* TI_DNNL_WEIGHT_CACHE_MB in bytes, else default_mb MiB. */
static size_t wc_env_budget(size_t default_mb) {
    const char *e = getenv("TI_DNNL_WEIGHT_CACHE_MB");
    return (size_t)(e ? (size_t)atoll(e) : default_mb) << 20;
}

static size_t wc_budget(void) {
    static size_t b = (size_t)-1;
    if (b == (size_t)-1) b = wc_env_budget(512);
    return b;
}

/* f32 copies alone: none unless TI_DNNL_WEIGHT_CACHE_MB is set. With the per-call reorders
 * (per_call) a 64x64 f32 step took 2.6 % more CPU time without copies than with 512 MiB of them
 * (the Winograd forward weights, 4x their plain size) and 0.5 GiB less peak RSS, which puts the
 * step under 4.6 GB (docs/PERF.md, "f32 peak memory"). */
static size_t wc_budget_f32(void) {
    static size_t b = (size_t)-1;
    if (b == (size_t)-1) b = wc_env_budget(0);
    return b;
}

/* bf16 copies alone: 256 MiB unless TI_DNNL_WEIGHT_CACHE_MB is set (then that, for both). ti's
 * own reorder makes an uncached bf16 weight cheap (docs/PERF.md: a 64x64 bf16 step took the same
 * CPU time with 256 MiB as with 512 MiB of copies and 0.21 GiB less peak RSS, 2.64 GiB). */
static size_t wc_budget_bf16(void) {
    static size_t b = (size_t)-1;
    if (b == (size_t)-1) b = wc_env_budget(256);
    return b;
}

/* Drops the cached copies made from [lo, hi). Lock held. */
static void wc_drop(const char *lo, const char *hi) {
    for (int i = 0; i < wc_n;) {
        const char *p = wc[i].src;
        if (p >= lo && p < hi) {
            free(wc[i].data);
            wc_bytes -= wc[i].bytes;
            if (wc[i].bf16) wc_bf16_bytes -= wc[i].bytes;
            wc[i] = wc[--wc_n];
        } else {
            i++;
        }
    }
}

void ti_cpu_weights_frozen(const void *data, size_t bytes) {
    if (!data || !bytes) return;
    const char *lo = data, *hi = lo + bytes;
    pthread_mutex_lock(&dn_lock);
    wc_drop(lo, hi); /* new values: copies of the old ones are stale */
    int i;
    for (i = 0; i < fz_n; i++)
        if (fz[i].lo == lo) break;
    if (i == fz_n) {
        if (fz_n == fz_cap) {
            int cap = fz_cap ? 2 * fz_cap : 64;
            struct frozen *n = realloc(fz, (size_t)cap * sizeof *n);
            if (!n) { /* not declared frozen: only slower (no cached copy) */
                pthread_mutex_unlock(&dn_lock);
                return;
            }
            fz = n;
            fz_cap = cap;
        }
        fz_n++;
    }
    fz[i].lo = lo;
    fz[i].hi = hi;
    pthread_mutex_unlock(&dn_lock);
}

void ti_cpu_weights_thawed(const void *data, size_t bytes) {
    if (!data) return;
    const char *lo = data, *hi = lo + bytes;
    pthread_mutex_lock(&dn_lock);
    wc_drop(lo, hi);
    for (int i = 0; i < fz_n;) {
        if (fz[i].lo < hi && fz[i].hi > lo)
            fz[i] = fz[--fz_n];
        else
            i++;
    }
    pthread_mutex_unlock(&dn_lock);
}

size_t ti_cpu_weight_cache_bytes(void) {
    pthread_mutex_lock(&dn_lock);
    size_t b = wc_bytes;
    pthread_mutex_unlock(&dn_lock);
    return b;
}

/* Lock held. */
static int is_frozen(const void *p, size_t bytes) {
    const char *lo = p, *hi = lo + bytes;
    for (int i = 0; i < fz_n; i++)
        if (lo >= fz[i].lo && hi <= fz[i].hi) return 1;
    return 0;
}

/* ---- primitives, one per shape and direction ------------------------------------------------- */
struct conv_key {
    int64_t v[16]; /* backward, B, Ci, H, W, Co, KH, KW, stride, pt, pb, pl, pr, bias, winograd,
                      bf16 */
};

struct conv_prim {
    struct conv_key key;
    int ok; /* 0: oneDNN cannot take this shape (conv2d.c's paths run) */
    dnnl_primitive_t conv;
    dnnl_primitive_t in_reorder;  /* plain -> blocked input (NULL: the layouts agree) */
    dnnl_primitive_t out_reorder; /* blocked -> plain output (backward: += through a sum) */
    dnnl_primitive_t w_reorder;   /* plain -> blocked weight (NULL: the layouts agree) */
    dnnl_memory_desc_t in_md, in_blk, out_md, out_blk, w_md, w_blk, b_md;
    size_t in_bytes, out_bytes, w_bytes, pad_bytes; /* blocked buffers and scratchpad */
    size_t w_pad_bytes;                             /* the weight reorder's scratchpad */
    dnnl_memory_t m_in, m_inb, m_out, m_outb, m_w, m_wb, m_b, m_pad, m_wpad;
    int own_x;  /* bf16 weight layout AcdB<own_x>a2b: ti's own reorder can make it (0: no) */
    int own_ok; /* ti's reorder: 0 not yet compared with oneDNN's, 1 identical, -1 differs */
};

static struct conv_prim *prims;
static int prims_n, prims_cap;

#define DN_TRY(call)                                                                               \
    do {                                                                                           \
        if ((call) != dnnl_success) goto fail;                                                     \
    } while (0)

/* pad_bytes: NULL, or where the reorder's scratchpad size goes: its scratchpad is then the
 * caller's (user mode). Otherwise oneDNN keeps one of its own, the largest any of its
 * primitives asked for, as long as they live: the Winograd weight reorder's (a transform space
 * the size of the copy) stayed allocated for the whole run, ~90 MiB of the f32 step's peak. */
static dnnl_status_t reorder_new(dnnl_primitive_t *out, const dnnl_memory_desc_t *from,
                                 const dnnl_memory_desc_t *to, int accumulate, size_t *pad_bytes) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s = dnnl_success;
    *out = NULL;
    if (accumulate || pad_bytes) {
        if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) goto done;
    }
    if (pad_bytes && (s = dnnl_primitive_attr_set_scratchpad_mode(
                          attr, dnnl_scratchpad_mode_user)) != dnnl_success)
        goto done;
    if (accumulate) {
        if ((s = dnnl_post_ops_create(&po)) != dnnl_success) goto done;
        if ((s = dnnl_post_ops_append_sum(po, 1.0f)) != dnnl_success) goto done;
        if ((s = dnnl_primitive_attr_set_post_ops(attr, po)) != dnnl_success) goto done;
    }
    if ((s = dnnl_reorder_primitive_desc_create(&pd, from, dn_engine, to, dn_engine, attr)) !=
        dnnl_success)
        goto done;
    if (pad_bytes) {
        const dnnl_memory_desc_t *pad =
            dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        *pad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    }
    s = dnnl_primitive_create(out, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return s;
}

/* Destroys what a failed prim_try made (NULL-safe members), keeping the key. */
static void prim_release(struct conv_prim *p) {
    dnnl_primitive_t *prs[] = {&p->conv, &p->in_reorder, &p->out_reorder, &p->w_reorder};
    for (size_t i = 0; i < sizeof prs / sizeof *prs; i++)
        if (*prs[i]) dnnl_primitive_destroy(*prs[i]);
    dnnl_memory_t *ms[] = {&p->m_in, &p->m_inb, &p->m_out, &p->m_outb, &p->m_w,
                           &p->m_wb, &p->m_b,   &p->m_pad, &p->m_wpad};
    for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
        if (*ms[i]) dnnl_memory_destroy(*ms[i]);
    struct conv_key key = p->key;
    memset(p, 0, sizeof *p);
    p->key = key;
}

static void prim_try(struct conv_prim *p, dnnl_alg_kind_t alg) {
    const int64_t *v = p->key.v;
    int backward = (int)v[0], has_bias = (int)v[13];
    /* bf16: bf16 input, weight, output and bias, f32 accumulation; backward-data computes
     * diff_src in f32, which the output reorder rounds while adding it into the bf16 dinp */
    dnnl_data_type_t dt = v[15] ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t xd = {v[1], v[2], v[3], v[4]}, wd = {v[5], v[2], v[6], v[7]}, bd = {v[5]};
    dnnl_dims_t yd = {v[1], v[5], (v[3] + v[9] + v[10] - v[6]) / v[8] + 1,
                      (v[4] + v[11] + v[12] - v[7]) / v[8] + 1};
    dnnl_dims_t st = {v[8], v[8]}, pl = {v[9], v[11]}, pr = {v[10], v[12]};
    dnnl_memory_desc_t xp, yp, wp, xa, ya, wa, bm, xda;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t fpd = NULL, pd = NULL;
    dnnl_convolution_desc_t fd, bdsc;
    DN_TRY(dnnl_memory_desc_init_by_tag(&xp, 4, xd, dt, dnnl_nchw));
    DN_TRY(dnnl_memory_desc_init_by_tag(&yp, 4, yd, dt, dnnl_nchw));
    DN_TRY(dnnl_memory_desc_init_by_tag(&wp, 4, wd, dt, dnnl_oihw));
    DN_TRY(dnnl_memory_desc_init_by_tag(&xa, 4, xd, dt, dnnl_format_tag_any));
    DN_TRY(dnnl_memory_desc_init_by_tag(&xda, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DN_TRY(dnnl_memory_desc_init_by_tag(&ya, 4, yd, dt, dnnl_format_tag_any));
    DN_TRY(dnnl_memory_desc_init_by_tag(&wa, 4, wd, dt, dnnl_format_tag_any));
    DN_TRY(dnnl_memory_desc_init_by_tag(&bm, 1, bd, dt, dnnl_x));
    DN_TRY(dnnl_primitive_attr_create(&attr));
    DN_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    DN_TRY(dnnl_convolution_forward_desc_init(
        &fd, backward ? dnnl_forward_training : dnnl_forward_inference, alg, &xa, &wa,
        has_bias ? &bm : NULL, &ya, st, pl, pr));
    if (!backward) {
        DN_TRY(dnnl_primitive_desc_create(&pd, &fd, attr, dn_engine, NULL));
        p->in_md = xp;
        p->out_md = yp;
        p->in_blk = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        p->out_blk = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    } else {
        DN_TRY(dnnl_primitive_desc_create(&fpd, &fd, NULL, dn_engine, NULL));
        DN_TRY(dnnl_convolution_backward_data_desc_init(&bdsc, alg, &xda, &wa, &ya, st, pl, pr));
        DN_TRY(dnnl_primitive_desc_create(&pd, &bdsc, attr, dn_engine, fpd));
        p->in_md = yp; /* dout in, dinp out */
        p->out_md = xp;
        p->in_blk = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0);
        p->out_blk = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0);
    }
    p->w_md = wp;
    p->w_blk = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->b_md = bm;
    p->in_bytes = dnnl_memory_desc_get_size(&p->in_blk);
    p->out_bytes = dnnl_memory_desc_get_size(&p->out_blk);
    p->w_bytes = dnnl_memory_desc_get_size(&p->w_blk);
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->pad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    DN_TRY(dnnl_primitive_create(&p->conv, pd));
    if (!dnnl_memory_desc_equal(&p->in_blk, &p->in_md))
        DN_TRY(reorder_new(&p->in_reorder, &p->in_md, &p->in_blk, 0, NULL));
    /* backward always goes through a buffer: oneDNN overwrites diff_src, ti adds into dinp */
    if (backward || !dnnl_memory_desc_equal(&p->out_blk, &p->out_md))
        DN_TRY(reorder_new(&p->out_reorder, &p->out_blk, &p->out_md, backward, NULL));
    if (!dnnl_memory_desc_equal(&p->w_blk, &p->w_md))
        DN_TRY(reorder_new(&p->w_reorder, &p->w_md, &p->w_blk, 0, &p->w_pad_bytes));
    DN_TRY(dnnl_memory_create(&p->m_in, &p->in_md, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_inb, &p->in_blk, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_out, &p->out_md, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_outb, &p->out_blk, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_w, &p->w_md, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_wb, &p->w_blk, dn_engine, DNNL_MEMORY_NONE));
    DN_TRY(dnnl_memory_create(&p->m_b, &p->b_md, dn_engine, DNNL_MEMORY_NONE));
    if (pad) DN_TRY(dnnl_memory_create(&p->m_pad, pad, dn_engine, DNNL_MEMORY_NONE));
    if (p->w_pad_bytes) {
        dnnl_memory_desc_t wpad;
        dnnl_dims_t n = {(int64_t)p->w_pad_bytes};
        DN_TRY(dnnl_memory_desc_init_by_tag(&wpad, 1, n, dnnl_u8, dnnl_x));
        DN_TRY(dnnl_memory_create(&p->m_wpad, &wpad, dn_engine, DNNL_MEMORY_NONE));
    }
    p->ok = 1;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (attr) dnnl_primitive_attr_destroy(attr);
}

/* Whether the blocked bf16 weight layout is OhwI<X>o2i (AcdB<X>a2b), which wreorder() makes:
 * oneDNN's own (generic jit:uni) reorder into it ran at about 0.7 GB/s, 29 ms for a 1280 x 1280
 * x 3 x 3 weight, paid per call by every weight outside the cache. */
static int own_layout(const struct conv_prim *p) {
    static const int xs[4] = {16, 32, 48, 64};
    static const dnnl_format_tag_t tags[4] = {dnnl_AcdB16a2b, dnnl_AcdB32a2b, dnnl_AcdB48a2b,
                                              dnnl_AcdB64a2b};
    if (!p->key.v[15] || !p->w_reorder) return 0;
    for (int i = 0; i < 4; i++) {
        dnnl_memory_desc_t md;
        if (dnnl_memory_desc_init_by_tag(&md, 4, p->w_md.dims, dnnl_bf16, tags[i]) != dnnl_success)
            continue;
        if (dnnl_memory_desc_equal(&md, &p->w_blk)) return xs[i];
    }
    return 0;
}

/* plain (O, I, KH, KW) bf16 -> [O/X][KH][KW][I/2][X][2], zero in the padding. */
static void wreorder(const struct conv_prim *p, const uint16_t *src, uint16_t *dst) {
    const int64_t O = p->w_md.dims[0], I = p->w_md.dims[1], KH = p->w_md.dims[2],
                  KW = p->w_md.dims[3], X = p->own_x;
    const int64_t OB = p->w_blk.padded_dims[0] / X, IB = p->w_blk.padded_dims[1] / 2;
    const int64_t n = OB * KH;
#pragma omp parallel for schedule(static) if (n * KW * IB * X > 65536)
    for (int64_t obh = 0; obh < n; obh++) {
        int64_t ob = obh / KH, h = obh % KH;
        uint16_t *d = dst + obh * KW * IB * X * 2;
        for (int64_t w = 0; w < KW; w++)
            for (int64_t ib = 0; ib < IB; ib++)
                for (int64_t oi = 0; oi < X; oi++)
                    for (int64_t ii = 0; ii < 2; ii++) {
                        int64_t o = ob * X + oi, i = ib * 2 + ii;
                        *d++ = o < O && i < I ? src[((o * I + i) * KH + h) * KW + w] : 0;
                    }
    }
}

static void prim_init(struct conv_prim *p) {
    prim_try(p, p->key.v[14] ? dnnl_convolution_winograd : dnnl_convolution_direct);
    if (!p->ok)
        prim_release(p);
    else
        p->own_x = own_layout(p);
}

/* Winograd (oneDNN's F(4x4, 3x3) on AVX-512: 2.25x fewer multiplications) for 3x3 stride-1
 * convolutions over at least 1024 output pixels, where it measured 1.3-2x faster than the
 * direct kernels (32x32 and 64x64 SD UNet layers; at 16x16 and 8x8 the direct ones win) - but
 * only with a cached transformed weight: transforming it costs more than the convolution
 * (137 ms against 108 ms for 320 -> 320 at 64x64). Direct otherwise, or where oneDNN has no
 * Winograd kernel (AVX2). */
static int64_t out_pixels(const int64_t *v) {
    int64_t ho = (v[3] + v[9] + v[10] - v[6]) / v[8] + 1,
            wo = (v[4] + v[11] + v[12] - v[7]) / v[8] + 1;
    return v[1] * ho * wo;
}

static int wino_shape(const int64_t *v) {
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("TI_DNNL_WINOGRAD");
        off = e && e[0] == '0';
    }
    return !off && v[6] == 3 && v[7] == 3 && v[8] == 1 && out_pixels(v) >= 1024;
}

/* The primitive for a shape (created on first use); NULL when the table cannot grow. Lock held. */
static struct conv_prim *prim_get(const struct conv_key *key) {
    for (int i = 0; i < prims_n; i++)
        if (memcmp(&prims[i].key, key, sizeof *key) == 0) return &prims[i];
    if (prims_n == prims_cap) {
        int cap = prims_cap ? 2 * prims_cap : 32;
        /* entries move: callers use the returned pointer only while the lock is held */
        struct conv_prim *n = realloc(prims, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        prims = n;
        prims_cap = cap;
    }
    struct conv_prim *p = &prims[prims_n++];
    memset(p, 0, sizeof *p);
    p->key = *key;
    prim_init(p);
    return p;
}

/* dst = the weight w reordered into the primitive's layout by oneDNN, its scratchpad from the
 * kernel's scratch for the time of the reorder. Lock held. */
static dnnl_status_t w_reorder_run(struct ti_kctx *k, const struct conv_prim *p, const void *w,
                                   void *dst) {
    size_t mark = ti_arena_mark(k->scratch);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, p->m_w}, {DNNL_ARG_TO, p->m_wb}, {0, NULL}};
    int n = 2;
    dnnl_status_t s = dnnl_success;
    if (p->m_wpad) {
        void *pad = cpu_scratch(k, p->w_pad_bytes);
        if (!pad) return dnnl_out_of_memory;
        if ((s = dnnl_memory_set_data_handle(p->m_wpad, pad)) != dnnl_success) goto done;
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_wpad};
    }
    if ((s = dnnl_memory_set_data_handle(p->m_w, (void *)w)) != dnnl_success ||
        (s = dnnl_memory_set_data_handle(p->m_wb, dst)) != dnnl_success ||
        (s = dnnl_primitive_execute(p->w_reorder, dn_stream, n, args)) != dnnl_success)
        goto done;
    s = dnnl_stream_wait(dn_stream);
done:
    ti_arena_rewind(k->scratch, mark);
    return s;
}

/* A blocked copy of a frozen weight (made now when the budget allows); NULL otherwise. Lock
 * held. */
static void *wc_get(struct ti_kctx *k, const struct conv_prim *p, const void *w,
                    size_t plain_bytes) {
    for (int i = 0; i < wc_n; i++)
        if (wc[i].src == w && dnnl_memory_desc_equal(&wc[i].md, &p->w_blk)) return wc[i].data;
    if (!is_frozen(w, plain_bytes)) return NULL;
    /* first come, first served, never evicted: which convolutions run on oneDNN is fixed by the
     * first pass over a model, so every later step computes exactly what the first did (an
     * eviction would move an earlier convolution of the same step to conv2d.c's paths and
     * change its rounding: test_model_full checks two steps bitwise) */
    if (wc_bytes + p->w_bytes > wc_budget()) return NULL;
    if (p->key.v[15] && wc_bf16_bytes + p->w_bytes > wc_budget_bf16()) return NULL;
    if (!p->key.v[15] && wc_bytes - wc_bf16_bytes + p->w_bytes > wc_budget_f32()) return NULL;
    if (wc_n == wc_cap) {
        int cap = wc_cap ? 2 * wc_cap : 64;
        struct wcache *n = realloc(wc, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        wc = n;
        wc_cap = cap;
    }
    size_t sz = (p->w_bytes + 63) / 64 * 64;
    void *d = aligned_alloc(64, sz);
    if (!d) return NULL;
    if (w_reorder_run(k, p, w, d) != dnnl_success) {
        free(d);
        return NULL;
    }
    wc[wc_n].src = w;
    wc[wc_n].md = p->w_blk;
    wc[wc_n].data = d;
    wc[wc_n].bytes = p->w_bytes;
    wc[wc_n].bf16 = p->key.v[15] != 0;
    wc_n++;
    wc_bytes += p->w_bytes;
    if (p->key.v[15]) wc_bf16_bytes += p->w_bytes;
    return d;
}

/* Whether a frozen weight is reordered per call rather than cached: when its layout takes no
 * more than twice the plain weight (a permutation with padding: the direct kernels' blocked
 * layouts, and the Winograd backward-data's, whose kernel transforms the weight itself) and the
 * convolution has at least 2048 output pixels, the copy costs under ~2 % of the convolution
 * (~40 / pixels) and no memory past the call. At 64x64 latents this takes the SD UNet's 64x64
 * backward-data and 1x1 convolutions: caching only those (0.13 GiB) gave the step the CPU time
 * of caching 0.84 GiB with the Winograd forward copies (docs/PERF.md, "f32 peak memory"); the
 * cache keeps the expanded (Winograd forward, 4x) and small-image copies.
 * f32 only (bf16 keeps its own budget, see wc_budget_bf16). Lock held. */
static int per_call(const struct conv_prim *p, const void *w, size_t plain) {
    return !p->key.v[15] && p->w_bytes < 2 * plain && out_pixels(p->key.v) >= 2048 &&
           is_frozen(w, plain);
}

/* Most scratch one oneDNN convolution may take (activations + scratchpad). */
#define DN_SCRATCH_MAX ((size_t)192 << 20)

#define DN_RUN(call, what)                                                                         \
    do {                                                                                           \
        if ((call) != dnnl_success) {                                                              \
            st = ti_error(k->err, TI_ERR_INTERNAL, "conv2d: oneDNN %s failed", (what));            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static ti_status dn_conv(struct ti_kctx *k, const struct ti_conv2d_args *a, int backward,
                         int *done) {
    *done = 0;
    if (!ti_dnnl_conv_enabled()) return TI_OK;
    struct conv_key key;
    memset(&key, 0, sizeof key);
    int64_t *v = key.v;
    v[0] = backward;
    v[1] = a->inp.shape[0];
    v[2] = a->inp.shape[1];
    v[3] = a->inp.shape[2];
    v[4] = a->inp.shape[3];
    v[5] = a->weight.shape[0];
    v[6] = a->weight.shape[2];
    v[7] = a->weight.shape[3];
    v[8] = a->stride[0];
    for (int i = 0; i < 4; i++)
        v[9 + i] = a->pad[i];
    v[13] = !backward && a->bias.data != NULL;
    v[15] = a->inp.dtype == TI_DTYPE_BF16 || a->dout.dtype == TI_DTYPE_BF16;
    ti_status st = TI_OK;
    pthread_mutex_lock(&dn_lock);
    const void *w = a->weight.data;
    void *wb = NULL, *inb = NULL, *outb = NULL, *pad = NULL;
    size_t plain = (size_t)(v[5] * v[2] * v[6] * v[7]) * (v[15] ? 2 : sizeof(float));
    struct conv_prim *p = NULL;
    int percall = 0; /* the weight is reordered into scratch by this call (wb stays NULL) */
    int wino = !v[15] && wino_shape(v);
    if (wino) { /* Winograd (f32 only) with a cached transformed weight */
        v[14] = 1;
        p = prim_get(&key);
        if (p && p->ok && p->w_reorder) {
            percall = per_call(p, w, plain);
            if (!percall) wb = wc_get(k, p, w, plain);
        }
        if (!wb && !percall) p = NULL;
    }
    if (!p) {
        v[14] = 0;
        p = prim_get(&key);
        if (!p || !p->ok) goto out;
        /* never for a Winograd shape's direct fallback: conv2d.c's Winograd beats it */
        percall = p->w_reorder && !wino && per_call(p, w, plain);
        wb = !p->w_reorder ? (void *)w : percall ? NULL : wc_get(k, p, w, plain);
        /* without a cached copy conv2d.c's paths are faster: they read the weight in place,
         * while reordering it costs ~40/pixels of the convolution, and at many pixels their
         * Winograd beats oneDNN's direct kernels plus reorders (1-thread CPU time, 320 -> 320
         * at 64x64: 51 ms against 70 ms) */
        /* bf16 has no own path to fall back to (the alternative converts everything to f32):
         * an uncached weight is reordered into scratch per call */
        if (!wb && !percall && !v[15]) goto out;
    }
    /* the blocked activations and the scratchpad come from the kernel's scratch in one piece;
     * conv2d.c's paths work in bounded chunks, so they take the huge images (the VAE at 512
     * px and beyond) rather than growing the scratch arena by hundreds of MiB */
    if ((p->in_reorder ? p->in_bytes : 0) + (p->out_reorder ? p->out_bytes : 0) + p->pad_bytes >
        DN_SCRATCH_MAX)
        goto out;
    if (!wb) { /* not cached (bf16) or cheaper per call (per_call): reordered into scratch */
        if (!(wb = cpu_scratch(k, p->w_bytes))) goto nomem;
        if (p->own_x && p->own_ok == 1) {
            wreorder(p, w, wb);
        } else {
            DN_RUN(w_reorder_run(k, p, w, wb), "weight reorder");
            if (p->own_x && p->own_ok == 0) { /* ti's reorder is used once it made the same */
                void *mine = cpu_scratch(k, p->w_bytes);
                if (!mine) goto nomem;
                wreorder(p, w, mine);
                p->own_ok = memcmp(mine, wb, p->w_bytes) == 0 ? 1 : -1;
            }
        }
    }
    const void *in = backward ? a->dout.data : a->inp.data;
    void *out = backward ? a->dinp.data : a->out.data;
    if (p->in_reorder) {
        if (!(inb = cpu_scratch(k, p->in_bytes))) goto nomem;
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, p->m_in}, {DNNL_ARG_TO, p->m_inb}};
        DN_RUN(dnnl_memory_set_data_handle(p->m_in, (void *)in), "input handle");
        DN_RUN(dnnl_memory_set_data_handle(p->m_inb, inb), "input handle");
        DN_RUN(dnnl_primitive_execute(p->in_reorder, dn_stream, 2, ra), "input reorder");
    } else {
        DN_RUN(dnnl_memory_set_data_handle(p->m_inb, (void *)in), "input handle");
    }
    if (p->out_reorder) {
        if (!(outb = cpu_scratch(k, p->out_bytes))) goto nomem;
    } else {
        outb = out;
    }
    DN_RUN(dnnl_memory_set_data_handle(p->m_outb, outb), "output handle");
    DN_RUN(dnnl_memory_set_data_handle(p->m_wb, wb), "weight handle");
    if (p->m_pad) {
        if (!(pad = cpu_scratch(k, p->pad_bytes))) goto nomem;
        DN_RUN(dnnl_memory_set_data_handle(p->m_pad, pad), "scratchpad handle");
    }
    dnnl_exec_arg_t ca[5];
    int n = 0;
    ca[n++] = (dnnl_exec_arg_t){backward ? DNNL_ARG_DIFF_DST : DNNL_ARG_SRC, p->m_inb};
    ca[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->m_wb};
    ca[n++] = (dnnl_exec_arg_t){backward ? DNNL_ARG_DIFF_SRC : DNNL_ARG_DST, p->m_outb};
    if (v[13]) {
        DN_RUN(dnnl_memory_set_data_handle(p->m_b, a->bias.data), "bias handle");
        ca[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->m_b};
    }
    if (p->m_pad) ca[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_pad};
    DN_RUN(dnnl_primitive_execute(p->conv, dn_stream, n, ca), "convolution");
    if (p->out_reorder) {
        dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, p->m_outb}, {DNNL_ARG_TO, p->m_out}};
        DN_RUN(dnnl_memory_set_data_handle(p->m_out, out), "output handle");
        DN_RUN(dnnl_primitive_execute(p->out_reorder, dn_stream, 2, ra), "output reorder");
    }
    DN_RUN(dnnl_stream_wait(dn_stream), "stream wait");
    *done = 1;
    goto out;
nomem:
    st = ti_error(k->err, TI_ERR_NOMEM, "conv2d: no scratch for oneDNN's blocked buffers");
out:
    pthread_mutex_unlock(&dn_lock);
    return st;
}

ti_status ti_dnnl_conv2d_forward(struct ti_kctx *k, const struct ti_conv2d_args *a, int *done) {
    return dn_conv(k, a, 0, done);
}

ti_status ti_dnnl_conv2d_backward_data(struct ti_kctx *k, const struct ti_conv2d_args *a,
                                       int *done) {
    return dn_conv(k, a, 1, done);
}

const char *ti_dnnl_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_mic: return "AVX-512 (MIC)";
    case dnnl_cpu_isa_avx512_mic_4ops: return "AVX-512 (MIC 4ops)";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX-512 BF16 + AMX";
    default: return "generic (no JIT ISA)";
    }
}

#else /* !TI_HAVE_DNNL */

#include "../cpu_info.h"

/* Without oneDNN nothing is cached: declaring memory frozen has no effect. */
void ti_cpu_weights_frozen(const void *data, size_t bytes) {
    (void)data;
    (void)bytes;
}
void ti_cpu_weights_thawed(const void *data, size_t bytes) {
    (void)data;
    (void)bytes;
}
size_t ti_cpu_weight_cache_bytes(void) {
    return 0;
}

#endif /* TI_HAVE_DNNL */
