/*
 * cpu/dnnl_matmul.c - bf16 LINEAR forward and backward-data through oneDNN's matmul primitive
 * (bf16 inputs and weight, f32 accumulation, bf16 output rounded once; AVX512-BF16 / AMX
 * kernels where the CPU has them), when ti is built with oneDNN (TI_HAVE_DNNL).
 *
 *   forward:       out (M, N) = inp (M, K) . weight (N, K)^T + bias (N)
 *   backward-data: dinp (M, K) += dout (M, N) . weight (N, K)   (a sum post-op: the "+=")
 *
 * The weight is read in its plain row-major layout (as a (K, N) matrix with strides (1, K) or
 * an (N, K) one); oneDNN packs it per call into its scratchpad, which costs O(N*K) against
 * the O(M*N*K) product. Primitives are made once per shape and kept; their scratchpad comes
 * from the kernel's scratch arena. The weight gradient and the bias gradient stay on the
 * f32 kernel between conversions (bf16.c): textual inversion never asks for them.
 * TI_DNNL=0 turns this off with the convolutions.
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#ifdef TI_HAVE_DNNL

#include <pthread.h> /* defines: pthread_mutex_t */
#include <stdlib.h>  /* defines: realloc */
#include <string.h>  /* defines: memset, memcmp */

#include <dnnl.h> /* defines: dnnl_* */

struct mm_key {
    int64_t v[5]; /* backward, M, N, K, bias */
};

struct mm_prim {
    struct mm_key key;
    int ok;
    dnnl_primitive_t prim;
    dnnl_memory_t m_src, m_wei, m_bias, m_dst, m_pad;
    size_t pad_bytes;
};

static pthread_mutex_t mm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mm_prim *mms;
static int mms_n, mms_cap;
static dnnl_engine_t mm_engine;
static dnnl_stream_t mm_stream;
static int mm_state; /* 0 untried, 1 up, -1 unavailable */

#define MM_TRY(call)                                                                               \
    do {                                                                                           \
        if ((call) != dnnl_success) goto fail;                                                     \
    } while (0)

static void mm_make(struct mm_prim *p) {
    const int64_t *v = p->key.v;
    int backward = (int)v[0];
    int64_t M = v[1], N = v[2], K = v[3];
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_matmul_desc_t md;
    if (!backward) {
        dnnl_dims_t sd = {M, K}, ss = {K, 1}, wd = {K, N}, ws = {1, K}, dd = {M, N}, ds = {N, 1};
        dnnl_dims_t bd = {1, N}, bs = {N, 1};
        MM_TRY(dnnl_memory_desc_init_by_strides(&src, 2, sd, dnnl_bf16, ss));
        MM_TRY(dnnl_memory_desc_init_by_strides(&wei, 2, wd, dnnl_bf16, ws));
        MM_TRY(dnnl_memory_desc_init_by_strides(&dst, 2, dd, dnnl_bf16, ds));
        MM_TRY(dnnl_memory_desc_init_by_strides(&bias, 2, bd, dnnl_bf16, bs));
    } else {
        dnnl_dims_t sd = {M, N}, ss = {N, 1}, wd = {N, K}, ws = {K, 1}, dd = {M, K}, ds = {K, 1};
        MM_TRY(dnnl_memory_desc_init_by_strides(&src, 2, sd, dnnl_bf16, ss));
        MM_TRY(dnnl_memory_desc_init_by_strides(&wei, 2, wd, dnnl_bf16, ws));
        MM_TRY(dnnl_memory_desc_init_by_strides(&dst, 2, dd, dnnl_bf16, ds));
    }
    MM_TRY(dnnl_primitive_attr_create(&attr));
    MM_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (backward) { /* dinp += ...: the old dinp is read, the sum done in f32, rounded once */
        MM_TRY(dnnl_post_ops_create(&po));
        MM_TRY(dnnl_post_ops_append_sum(po, 1.0f));
        MM_TRY(dnnl_primitive_attr_set_post_ops(attr, po));
    }
    MM_TRY(dnnl_matmul_desc_init(&md, &src, &wei, !backward && v[4] ? &bias : NULL, &dst));
    MM_TRY(dnnl_primitive_desc_create(&pd, &md, attr, mm_engine, NULL));
    const dnnl_memory_desc_t *pad = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->pad_bytes = pad ? dnnl_memory_desc_get_size(pad) : 0;
    MM_TRY(dnnl_primitive_create(&p->prim, pd));
    MM_TRY(dnnl_memory_create(&p->m_src, &src, mm_engine, DNNL_MEMORY_NONE));
    MM_TRY(dnnl_memory_create(&p->m_wei, &wei, mm_engine, DNNL_MEMORY_NONE));
    MM_TRY(dnnl_memory_create(&p->m_dst, &dst, mm_engine, DNNL_MEMORY_NONE));
    if (!backward && v[4])
        MM_TRY(dnnl_memory_create(&p->m_bias, &bias, mm_engine, DNNL_MEMORY_NONE));
    if (p->pad_bytes) MM_TRY(dnnl_memory_create(&p->m_pad, pad, mm_engine, DNNL_MEMORY_NONE));
    p->ok = 1;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!p->ok) { /* keep the key: this shape stays on the conversion path */
        if (p->prim) dnnl_primitive_destroy(p->prim);
        dnnl_memory_t ms[] = {p->m_src, p->m_wei, p->m_bias, p->m_dst, p->m_pad};
        for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
            if (ms[i]) dnnl_memory_destroy(ms[i]);
        struct mm_key key = p->key;
        memset(p, 0, sizeof *p);
        p->key = key;
    }
}

/* Lock held. */
static struct mm_prim *mm_get(const struct mm_key *key) {
    for (int i = 0; i < mms_n; i++)
        if (memcmp(&mms[i].key, key, sizeof *key) == 0) return &mms[i];
    if (mms_n == mms_cap) {
        int cap = mms_cap ? 2 * mms_cap : 32;
        struct mm_prim *n = realloc(mms, (size_t)cap * sizeof *n);
        if (!n) return NULL;
        mms = n;
        mms_cap = cap;
    }
    struct mm_prim *p = &mms[mms_n++];
    memset(p, 0, sizeof *p);
    p->key = *key;
    mm_make(p);
    return p;
}

/* Lock held. */
static int mm_up(void) {
    if (mm_state == 0) {
        mm_state = -1;
        if (!ti_dnnl_conv_enabled()) return 0; /* TI_DNNL=0 or no engine */
        if (dnnl_engine_create(&mm_engine, dnnl_cpu, 0) != dnnl_success) return 0;
        if (dnnl_stream_create(&mm_stream, mm_engine, dnnl_stream_default_flags) != dnnl_success)
            return 0;
        mm_state = 1;
    }
    return mm_state == 1;
}

#define MM_RUN(call, what)                                                                         \
    do {                                                                                           \
        if ((call) != dnnl_success) {                                                              \
            st = ti_error(k->err, TI_ERR_INTERNAL, "linear: oneDNN %s failed", (what));            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

ti_status ti_dnnl_linear_bf16(struct ti_kctx *k, const struct ti_linear_args *a, int backward,
                              int *done) {
    *done = 0;
    const struct ti_tensor *src = backward ? &a->dout : &a->inp,
                           *dst = backward ? &a->dinp : &a->out;
    if (!src->data || !dst->data || !a->weight.data || a->weight.dtype != TI_DTYPE_BF16 ||
        src->dtype != TI_DTYPE_BF16 || dst->dtype != TI_DTYPE_BF16)
        return TI_OK;
    int has_bias = !backward && a->bias.data;
    if (has_bias && a->bias.dtype != TI_DTYPE_BF16) return TI_OK;
    struct mm_key key;
    memset(&key, 0, sizeof key);
    key.v[0] = backward;
    key.v[1] = a->inp.shape[0];
    key.v[2] = a->weight.shape[0];
    key.v[3] = a->weight.shape[1];
    key.v[4] = has_bias;
    if (key.v[1] == 0 || key.v[2] == 0 || key.v[3] == 0) return TI_OK;
    ti_status st = TI_OK;
    pthread_mutex_lock(&mm_lock);
    struct mm_prim *p = mm_up() ? mm_get(&key) : NULL;
    if (!p || !p->ok) goto out;
    MM_RUN(dnnl_memory_set_data_handle(p->m_src, src->data), "source handle");
    MM_RUN(dnnl_memory_set_data_handle(p->m_wei, a->weight.data), "weight handle");
    MM_RUN(dnnl_memory_set_data_handle(p->m_dst, dst->data), "destination handle");
    dnnl_exec_arg_t ea[5];
    int n = 0;
    ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, p->m_src};
    ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, p->m_wei};
    ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, p->m_dst};
    if (has_bias) {
        MM_RUN(dnnl_memory_set_data_handle(p->m_bias, a->bias.data), "bias handle");
        ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->m_bias};
    }
    if (p->m_pad) {
        char *pad = cpu_scratch(k, p->pad_bytes);
        if (!pad) {
            st = ti_error(k->err, TI_ERR_NOMEM, "linear: no scratch for oneDNN's scratchpad");
            goto out;
        }
        MM_RUN(dnnl_memory_set_data_handle(p->m_pad, pad), "scratchpad handle");
        ea[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->m_pad};
    }
    MM_RUN(dnnl_primitive_execute(p->prim, mm_stream, n, ea), "matmul");
    MM_RUN(dnnl_stream_wait(mm_stream), "stream wait");
    *done = 1;
out:
    pthread_mutex_unlock(&mm_lock);
    return st;
}

#else
typedef int ti_dnnl_matmul_unused; /* ISO C: no empty translation unit */
#endif /* TI_HAVE_DNNL */
