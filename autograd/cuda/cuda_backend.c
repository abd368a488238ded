/*
 * cuda_backend.c - the CUDA backend (plain C over the CUDA runtime, cuBLAS, cuBLASLt and, when
 * found at build time, cuDNN): device memory, transfers, per-context stream and library
 * handles, and the kernel tables (f32, f16, bf16) filled from cuda/launchers.h.
 * Kernels live in cuda/<op>.cu. Every runtime call is checked; an error names the call.
 */
#include <cublasLt.h>         /* defines: cublasLtCreate, cublasLtDestroy */
#include <cublas_v2.h>        /* defines: cublasCreate, cublasSetStream, cublasDestroy */
#include <cuda_runtime_api.h> /* defines: cudaMalloc, cudaFree, cudaMemcpyAsync, ... */
#include <pthread.h>          /* defines: pthread_once */
#include <stdio.h>            /* defines: snprintf */
#include <string.h>           /* defines: memset */
#ifdef TI_HAVE_CUDNN
#include <cudnn.h> /* defines: cudnnCreate, cudnnSetStream, cudnnDestroy */
#endif

#include "../backend.h"
#include "launchers.h"

#define MAX_DEVICES 16

#define RT_CHECK(err, call)                                                                        \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return ti_error((err), TI_ERR_CUDA, "%s failed: %s (%s)", #call,                       \
                            cudaGetErrorString(e_), cudaGetErrorName(e_));                         \
    } while (0)

static ti_status cuda_mem_alloc(const struct ti_backend *be, size_t bytes, void **out,
                                struct ti_err *err) {
    *out = NULL;
    RT_CHECK(err, cudaSetDevice(be->device_index));
    cudaError_t e = cudaMalloc(out, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        *out = NULL;
        return ti_error(err, TI_ERR_NOMEM, "%s: cannot allocate %zu bytes (%zu of %zu free): %s",
                        be->name, bytes, free_b, total_b, cudaGetErrorString(e));
    }
    return TI_OK;
}

static void cuda_mem_free(const struct ti_backend *be, void *p, size_t bytes) {
    (void)bytes;
    if (!p) return;
    cudaSetDevice(be->device_index);
    cudaFree(p);
}

static ti_status cuda_mem_zero(const struct ti_backend *be, struct ti_kctx *k, void *p,
                               size_t bytes) {
    (void)be;
    RT_CHECK(k->err, cudaMemsetAsync(p, 0, bytes, (cudaStream_t)k->stream));
    return TI_OK;
}

static ti_status cuda_mem_copy(const struct ti_backend *be, struct ti_kctx *k, void *dst,
                               enum ti_device dst_dev, const void *src, enum ti_device src_dev,
                               size_t bytes) {
    (void)be;
    cudaStream_t s = (cudaStream_t)k->stream;
    enum cudaMemcpyKind kind;
    if (dst_dev == TI_DEVICE_CUDA && src_dev == TI_DEVICE_CUDA)
        kind = cudaMemcpyDeviceToDevice;
    else if (dst_dev == TI_DEVICE_CUDA)
        kind = cudaMemcpyHostToDevice;
    else if (src_dev == TI_DEVICE_CUDA)
        kind = cudaMemcpyDeviceToHost;
    else
        kind = cudaMemcpyHostToHost;
    RT_CHECK(k->err, cudaMemcpyAsync(dst, src, bytes, kind, s));
    /* host memory is pageable and owned by the caller: finish before returning */
    if (kind != cudaMemcpyDeviceToDevice) RT_CHECK(k->err, cudaStreamSynchronize(s));
    return TI_OK;
}

static ti_status cuda_sync(const struct ti_backend *be, struct ti_kctx *k) {
    (void)be;
    RT_CHECK(k->err, cudaStreamSynchronize((cudaStream_t)k->stream));
    return TI_OK;
}

static void cuda_kctx_free(const struct ti_backend *be, struct ti_kctx *k) {
    (void)be;
#ifdef TI_HAVE_CUDNN
    if (k->dnn) cudnnDestroy((cudnnHandle_t)k->dnn);
#endif
    if (k->blaslt) cublasLtDestroy((cublasLtHandle_t)k->blaslt);
    if (k->blas) cublasDestroy((cublasHandle_t)k->blas);
    if (k->stream) cudaStreamDestroy((cudaStream_t)k->stream);
    k->dnn = k->blaslt = k->blas = k->stream = NULL;
}

static ti_status cuda_kctx_init(const struct ti_backend *be, struct ti_kctx *k) {
    struct ti_err *err = k->err;
    RT_CHECK(err, cudaSetDevice(be->device_index));
    cudaStream_t s;
    RT_CHECK(err, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    k->stream = s;
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        cuda_kctx_free(be, k);
        return ti_error(err, TI_ERR_CUDA, "cublasCreate failed on %s", be->name);
    }
    k->blas = h;
    if (cublasSetStream(h, s) != CUBLAS_STATUS_SUCCESS) {
        cuda_kctx_free(be, k);
        return ti_error(err, TI_ERR_CUDA, "cublasSetStream failed on %s", be->name);
    }
    cublasLtHandle_t lt;
    if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) {
        cuda_kctx_free(be, k);
        return ti_error(err, TI_ERR_CUDA, "cublasLtCreate failed on %s", be->name);
    }
    k->blaslt = lt;
#ifdef TI_HAVE_CUDNN
    cudnnHandle_t d;
    if (cudnnCreate(&d) != CUDNN_STATUS_SUCCESS) {
        cuda_kctx_free(be, k);
        return ti_error(err, TI_ERR_CUDA, "cudnnCreate failed on %s", be->name);
    }
    k->dnn = d;
    if (cudnnSetStream(d, s) != CUDNN_STATUS_SUCCESS) {
        cuda_kctx_free(be, k);
        return ti_error(err, TI_ERR_CUDA, "cudnnSetStream failed on %s", be->name);
    }
#endif
    return TI_OK;
}

#define TI_CUDA_BWD_SET_1(tbl, name) (tbl)->name##_backward = cuda_##name##_backward;
#define TI_CUDA_BWD_SET_0(tbl, name)

static void fill_table(struct ti_kernels *t) {
#define TI_KOP(NAME, name, BWD)                                                                    \
    t->name##_forward = cuda_##name##_forward;                                                     \
    TI_CUDA_BWD_SET_##BWD(t, name)
#define TI_FOP(NAME, name)
#include "../ops.def"
#undef TI_KOP
#undef TI_FOP
}

static struct ti_backend backends[MAX_DEVICES];
static char names[MAX_DEVICES][16];
static pthread_once_t backends_once = PTHREAD_ONCE_INIT;

/* Fills the tables of every possible device at once (they differ only in index and name), so
 * one pthread_once covers them: two threads making their first contexts at the same time never
 * see a half-filled table. Touches no device. */
static void backends_init(void) {
    for (int index = 0; index < MAX_DEVICES; index++) {
        struct ti_backend *be = &backends[index];
        memset(be, 0, sizeof *be);
        snprintf(names[index], sizeof names[index], "cuda:%d", index);
        be->name = names[index];
        be->device = TI_DEVICE_CUDA;
        be->device_index = index;
        be->mem_alloc = cuda_mem_alloc;
        be->mem_free = cuda_mem_free;
        be->mem_zero = cuda_mem_zero;
        be->mem_copy = cuda_mem_copy;
        be->sync = cuda_sync;
        be->kctx_init = cuda_kctx_init;
        be->kctx_free = cuda_kctx_free;
        fill_table(&be->k[TI_DTYPE_F32]);
        fill_table(&be->k[TI_DTYPE_F16]);
        fill_table(&be->k[TI_DTYPE_BF16]);
        /* COPY also converts to and from f64 and integers */
        for (int dt = 0; dt < TI_DTYPE_COUNT; dt++) {
            be->k[dt].copy_forward = cuda_copy_forward;
            be->k[dt].copy_backward = cuda_copy_backward;
        }
    }
}

int ti_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

ti_status ti_backend_cuda(const struct ti_backend **out, int index, struct ti_err *err) {
    *out = NULL;
    int n = ti_cuda_device_count();
    if (n == 0) return ti_error(err, TI_ERR_UNSUPPORTED, "no CUDA device is available");
    if (index < 0 || index >= n || index >= MAX_DEVICES)
        return ti_error(err, TI_ERR_INVALID, "CUDA device %d does not exist (%d present)", index,
                        n);
    pthread_once(&backends_once, backends_init);
    *out = &backends[index];
    return TI_OK;
}
