/*
 * cpu_backend.c - the CPU backend: host memory (huge pages for big chunks, since first touch
 * of a page is very expensive on small VMs: chunks are populated when mapped) and the kernel tables
 * for f32 and f64 (kernels from cpu/<op>.c compiled twice), bf16 (bf16.c: bf16 storage, f32
 * arithmetic) plus COPY for every dtype.
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <pthread.h>  /* defines: pthread_once */
#include <stdlib.h>   /* defines: aligned_alloc, free */
#include <string.h>   /* defines: memset, memcpy */
#include <sys/mman.h> /* defines: mmap, munmap, madvise */

/* ---- memory ---------------------------------------------------------------------------------- */
/* Chunks of at least 2 MiB are mapped directly and populated by the kernel at once
 * (MAP_POPULATE). Measured on the 2-core VM this project runs on (2 GiB): faulting pages in by
 * touching them ran at 0.65 GB/s, with MADV_HUGEPAGE at 0.29 GB/s, MAP_POPULATE at 2 GB/s. An
 * arena chunk is used right away, so populating it up front costs nothing extra. */
#define HUGE_MIN ((size_t)2 << 20)

static ti_status cpu_mem_alloc(const struct ti_backend *be, size_t bytes, void **out,
                               struct ti_err *err) {
    (void)be;
    *out = NULL;
    if (bytes >= HUGE_MIN) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) return ti_error(err, TI_ERR_NOMEM, "cpu: cannot map %zu bytes", bytes);
        *out = p;
        return TI_OK;
    }
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) return ti_error(err, TI_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    *out = p;
    return TI_OK;
}

static void cpu_mem_free(const struct ti_backend *be, void *p, size_t bytes) {
    (void)be;
    if (!p) return;
    if (bytes >= HUGE_MIN)
        munmap(p, bytes);
    else
        free(p);
}

static ti_status cpu_mem_zero(const struct ti_backend *be, struct ti_kctx *k, void *p,
                              size_t bytes) {
    (void)be;
    (void)k;
    if (bytes < ((size_t)1 << 20)) {
        memset(p, 0, bytes);
        return TI_OK;
    }
    int nt = ti_cpu_threads();
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        ti_split_range((int64_t)bytes, nt, t, &lo, &hi);
        memset((char *)p + lo, 0, (size_t)(hi - lo));
    }
    return TI_OK;
}

static ti_status cpu_mem_copy(const struct ti_backend *be, struct ti_kctx *k, void *dst,
                              enum ti_device dst_dev, const void *src, enum ti_device src_dev,
                              size_t bytes) {
    (void)be;
    if (dst_dev != TI_DEVICE_CPU || src_dev != TI_DEVICE_CPU)
        return ti_error(k ? k->err : NULL, TI_ERR_INVALID, "cpu backend cannot copy device memory");
    memmove(dst, src, bytes);
    return TI_OK;
}

static ti_status cpu_sync(const struct ti_backend *be, struct ti_kctx *k) {
    (void)be;
    (void)k;
    return TI_OK;
}

static ti_status cpu_kctx_init(const struct ti_backend *be, struct ti_kctx *k) {
    (void)be;
    k->threads = ti_cpu_threads();
    return TI_OK;
}

/* ---- the backend ----------------------------------------------------------------------------- */
static struct ti_backend cpu_backend;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

/* COPY has one implementation for every dtype pair (copy.c), not f32/f64 twins: the generic
 * fill below names it by the twin names, which an unoptimised (Debug) build would otherwise
 * fail to link (the stores are overwritten, but only -O removes them). */
#define cpu_f32_copy_forward  cpu_copy_forward
#define cpu_f64_copy_forward  cpu_copy_forward
#define cpu_f32_copy_backward cpu_copy_backward
#define cpu_f64_copy_backward cpu_copy_backward

#define TI_BWD_SET_1(tbl, pfx, name) (tbl).name##_backward = pfx##name##_backward;
#define TI_BWD_SET_0(tbl, pfx, name)

static void fill_tables(struct ti_backend *be) {
    struct ti_kernels *k32 = &be->k[TI_DTYPE_F32], *k64 = &be->k[TI_DTYPE_F64];
#define TI_KOP(NAME, name, BWD)                                                                    \
    k32->name##_forward = cpu_f32_##name##_forward;                                                \
    k64->name##_forward = cpu_f64_##name##_forward;                                                \
    TI_BWD_SET_##BWD(*k32, cpu_f32_, name) TI_BWD_SET_##BWD(*k64, cpu_f64_, name)
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP
    ti_cpu_bf16_fill(&be->k[TI_DTYPE_BF16]);
    /* COPY converts between any dtypes: registered for every output dtype */
    for (int dt = 0; dt < TI_DTYPE_COUNT; dt++) {
        be->k[dt].copy_forward = cpu_copy_forward;
        be->k[dt].copy_backward = cpu_copy_backward;
    }
}

static void cpu_backend_init(void) {
    memset(&cpu_backend, 0, sizeof cpu_backend);
    cpu_backend.name = "cpu";
    cpu_backend.device = TI_DEVICE_CPU;
    cpu_backend.device_index = 0;
    cpu_backend.mem_alloc = cpu_mem_alloc;
    cpu_backend.mem_free = cpu_mem_free;
    cpu_backend.mem_zero = cpu_mem_zero;
    cpu_backend.mem_copy = cpu_mem_copy;
    cpu_backend.sync = cpu_sync;
    cpu_backend.kctx_init = cpu_kctx_init;
    cpu_backend.kctx_free = NULL;
    fill_tables(&cpu_backend);
}

const struct ti_backend *ti_backend_cpu(void) {
    /* filled exactly once, also when several threads make their first context at the same
     * time: pthread_once makes the others wait for the complete table */
    pthread_once(&cpu_once, cpu_backend_init);
    return &cpu_backend;
}

/* ---- slot enumeration for tests -------------------------------------------------------------- */
static const char *const slot_names[] = {
#define TI_KOP(NAME, name, BWD) #name "_forward", #name "_backward",
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP
};

int ti_kernels_count(void) {
    return (int)(sizeof slot_names / sizeof slot_names[0]);
}

const char *ti_kernels_slot_name(int i) {
    return i >= 0 && i < ti_kernels_count() ? slot_names[i] : "?";
}

const void *ti_kernels_slot(const struct ti_kernels *k, int i) {
    /* struct ti_kernels is an array of function pointers in slot_names order */
    if (i < 0 || i >= ti_kernels_count()) return NULL;
    const void *p;
    memcpy(&p, (const char *)k + (size_t)i * sizeof(void (*)(void)), sizeof p);
    return p;
}

_Static_assert(sizeof(struct ti_kernels) ==
                   sizeof slot_names / sizeof slot_names[0] * sizeof(void (*)(void)),
               "struct ti_kernels must be exactly the slots of ops.def");
