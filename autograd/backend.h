/*
 * backend.h - a backend: device memory functions plus one kernel table per dtype.
 *
 * struct ti_kernels is generated from ops.def: for every TI_KOP(NAME, name) it holds
 *   ti_status (*name_forward)(struct ti_kctx *k, const struct ti_name_args *a);
 *   ti_status (*name_backward)(struct ti_kctx *k, const struct ti_name_args *a);
 * A backend fills be->k[dtype] for each dtype it computes in; a NULL slot means "unsupported"
 * (the front end returns TI_ERR_UNSUPPORTED and tests report SKIP), like ggml's supports_op.
 *
 *   const struct ti_backend *cpu = ti_backend_cpu();          // f32 and f64 kernels
 *   const struct ti_backend *gpu;
 *   if (ti_backend_cuda(&gpu, 0, &err) == TI_OK) ...          // f32, f16, bf16 kernels
 *
 * Not here: the tensor (tensor.h), memory arenas (arena.h), op contracts (ops.h).
 */
#ifndef TI_BACKEND_H
#define TI_BACKEND_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_arena;

/* What a kernel sees besides its arguments. */
struct ti_kctx {
    struct ti_err *err;       /* where kernels report errors */
    struct ti_arena *scratch; /* workspace (stack arena on the kernel's device) */
    void *stream;             /* CUDA: cudaStream_t (NULL = default stream) */
    void *blas;               /* CUDA: cublasHandle_t */
    void *blaslt;             /* CUDA: cublasLtHandle_t */
    void *dnn;                /* CUDA: cudnnHandle_t (NULL when built without cuDNN) */
    int device_index;
    int sync_each_op; /* TI_CUDA_SYNC=1: synchronize after each kernel (error names op) */
    int threads;      /* CPU: OpenMP threads (0 = default) */
};

struct ti_kernels {
#define TI_KOP(NAME, name, BWD)                                                                    \
    ti_status (*name##_forward)(struct ti_kctx * k, const struct ti_##name##_args *a);             \
    ti_status (*name##_backward)(struct ti_kctx * k, const struct ti_##name##_args *a);
#define TI_FOP(NAME, name)
#include "ops.def"
#undef TI_KOP
#undef TI_FOP
};

struct ti_backend {
    const char *name; /* "cpu", "cuda:0" */
    enum ti_device device;
    int device_index;
    /* memory on this backend's device */
    ti_status (*mem_alloc)(const struct ti_backend *be, size_t bytes, void **out,
                           struct ti_err *err);
    void (*mem_free)(const struct ti_backend *be, void *p, size_t bytes);
    ti_status (*mem_zero)(const struct ti_backend *be, struct ti_kctx *k, void *p, size_t bytes);
    /* copies between host memory and this device, either direction (dst_dev/src_dev say which) */
    ti_status (*mem_copy)(const struct ti_backend *be, struct ti_kctx *k, void *dst,
                          enum ti_device dst_dev, const void *src, enum ti_device src_dev,
                          size_t bytes);
    ti_status (*sync)(const struct ti_backend *be, struct ti_kctx *k);
    /* per-context state (streams, library handles); kctx_free(NULL-safe) undoes kctx_init */
    ti_status (*kctx_init)(const struct ti_backend *be, struct ti_kctx *k);
    void (*kctx_free)(const struct ti_backend *be, struct ti_kctx *k);
    struct ti_kernels k[TI_DTYPE_COUNT];
};

/* The CPU backend (always built): f32 kernels (OpenBLAS/oneDNN + OpenMP), f64 kernels (the
 * gradcheck reference), bf16 kernels (bf16 storage, f32 arithmetic: oneDNN bf16 convolutions,
 * the rest f32 kernels between conversions; cpu/bf16.c), and COPY for every float dtype (f16
 * storage is converted, not computed). */
const struct ti_backend *ti_backend_cpu(void);
/* Counts of the CPU backend's GEMM calls and their multiply-adds (M*N*K) since the program
 * started, all threads and dtypes together; either pointer may be NULL. For tests (a frozen
 * weight's gradient GEMM never runs) and benchmarks: read before and after, subtract. */
void ti_cpu_gemm_counters(uint64_t *calls, uint64_t *macs);

/* Number of usable CUDA devices; 0 when ti was built without CUDA or no GPU is present. */
int ti_cuda_device_count(void);
/* The CUDA backend for device `index`: TI_ERR_UNSUPPORTED (with a message) when not built or
 * no GPU is present. The returned pointer is static; no free needed. */
ti_status ti_backend_cuda(const struct ti_backend **out, int index, struct ti_err *err);

/* Names of every kernel slot, for tests that iterate the table: "groupnorm_forward", ... */
int ti_kernels_count(void); /* number of slots (2 per TI_KOP) */
const char *ti_kernels_slot_name(int i);
/* Slot i of a table as an untyped pointer (NULL = unsupported). */
const void *ti_kernels_slot(const struct ti_kernels *k, int i);

#ifdef __cplusplus
}
#endif
#endif /* TI_BACKEND_H */
