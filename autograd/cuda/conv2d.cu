/*
 * cuda/conv2d.cu - CUDA kernels of CONV2D (NCHW cross-correlation, one stride, asymmetric zero
 * padding, no dilation, one group), forward and backward, f32 / f16 / bf16 storage with f32
 * accumulation. Not here: shape checks (ops_gemm.c), the CPU reference (cpu/conv2d.c).
 *
 * Two paths, both always compiled when cuDNN is found:
 *  - cuDNN (TI_HAVE_CUDNN, legacy API): cudnnConvolutionForward / BackwardData /
 *    BackwardFilter with algorithms from the *_v7 heuristics (deterministic ones first; f32
 *    runs with CUDNN_FMA_MATH, i.e. no TF32, so it matches the CPU to f32 rounding), workspace
 *    from the scratch arena. cuDNN padding is symmetric: an asymmetric pad (the VAE
 *    downsample's {0, 1, 0, 1}) zero-pads the input into scratch and convolves with pad 0;
 *    backward-data then writes the padded gradient to scratch and adds its interior to dinp.
 *    Descriptors are created and destroyed per call (caching them per shape is a later
 *    optimisation).
 *  - im2col + cuBLAS (no cuDNN, or no cuDNN algorithm runs the case): per image,
 *    col (Cin*KH*KW, Ho*Wo) = im2col(x); y = W . col; backward-data col = W^T . dy then col2im
 *    (a gather per input element: deterministic, no atomics); backward-filter dW += dy . col^T.
 * The bias is broadcast into the output before the convolution (which then accumulates with
 * beta = 1: one rounding for 16-bit outputs) and its gradient is a per-channel sum kernel
 * (linear.cu).
 */
#ifdef TI_HAVE_CUDNN
#include <cudnn.h> /* defines: cudnnConvolutionForward, cudnnConvolutionBackwardData, ... */
#endif

#include "cuda_common.h"
#include "launchers.h"
#include "linear.h"

/* Geometry of one call (sizes as in ops.h). */
struct conv_geom {
    int64_t B, Cin, H, W, Cout, KH, KW, Ho, Wo, s, pt, pb, pl, pr, Hp, Wp;
};

static void geom_of(struct conv_geom *g, const struct ti_conv2d_args *a) {
    g->B = a->inp.shape[0];
    g->Cin = a->inp.shape[1];
    g->H = a->inp.shape[2];
    g->W = a->inp.shape[3];
    g->Cout = a->weight.shape[0];
    g->KH = a->weight.shape[2];
    g->KW = a->weight.shape[3];
    g->s = a->stride[0];
    g->pt = a->pad[0];
    g->pb = a->pad[1];
    g->pl = a->pad[2];
    g->pr = a->pad[3];
    g->Hp = g->H + g->pt + g->pb;
    g->Wp = g->W + g->pl + g->pr;
    g->Ho = (g->Hp - g->KH) / g->s + 1;
    g->Wo = (g->Wp - g->KW) / g->s + 1;
}

static ti_status scratch_or_fail(struct ti_kctx *k, void **p, size_t bytes, const char *what) {
    *p = NULL;
    if (bytes == 0) return TI_OK;
    *p = ti_cuda_scratch(k, bytes);
    if (!*p)
        return ti_error(k->err, TI_ERR_NOMEM, "conv2d: no device scratch for %s (%zu bytes)", what,
                        bytes);
    return TI_OK;
}

/* ---- element kernels ------------------------------------------------------------------------- */

/* col (Cin*KH*KW, Ho*Wo)[(c,u,v), (i,j)] = x[c, i*s+u-pt, j*s+v-pl], 0 in the padding */
template <typename T>
__global__ void im2col_kernel(T *col, const T *x, struct conv_geom g, int64_t total) {
    for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < total;
         n += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = n % g.Wo, t = n / g.Wo;
        int64_t i = t % g.Ho;
        t /= g.Ho;
        int64_t v = t % g.KW;
        t /= g.KW;
        int64_t u = t % g.KH, c = t / g.KH;
        int64_t y = i * g.s + u - g.pt, xx = j * g.s + v - g.pl;
        if (y >= 0 && y < g.H && xx >= 0 && xx < g.W)
            col[n] = x[(c * g.H + y) * g.W + xx];
        else
            stf(col + n, 0.f);
    }
}

/* dx (Cin, H, W) += col2im(col): each input element gathers the col entries that read it,
 * i.e. taps (u, v) with y + pt - u = i*s and x + pl - v = j*s inside the output */
template <typename T>
__global__ void col2im_add_kernel(T *dx, const T *col, struct conv_geom g, int64_t total) {
    int64_t plane = g.Ho * g.Wo;
    for (int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; n < total;
         n += (int64_t)gridDim.x * blockDim.x) {
        int64_t xx = n % g.W, t = n / g.W, y = t % g.H, c = t / g.H;
        float acc = 0.f;
        for (int64_t u = 0; u < g.KH; u++) {
            int64_t ty = y + g.pt - u;
            if (ty < 0 || ty % g.s != 0 || ty / g.s >= g.Ho) continue;
            for (int64_t v = 0; v < g.KW; v++) {
                int64_t tx = xx + g.pl - v;
                if (tx < 0 || tx % g.s != 0 || tx / g.s >= g.Wo) continue;
                acc +=
                    ldf(col + ((c * g.KH + u) * g.KW + v) * plane + (ty / g.s) * g.Wo + tx / g.s);
            }
        }
        stf(dx + n, ldf(dx + n) + acc);
    }
}

/* ---- im2col + cuBLAS path (one image at a time) ---------------------------------------------- */

static ti_status im2col(struct ti_kctx *k, enum ti_dtype dt, void *col, const void *x,
                        const struct conv_geom &g) {
    int64_t total = g.Cin * g.KH * g.KW * g.Ho * g.Wo;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, dt, T, {
        im2col_kernel<T>
            <<<ti_cuda_blocks(total, 256), 256, 0, s>>>((T *)col, (const T *)x, g, total);
    });
    CUDA_CHECK_LAUNCH(k, "conv2d im2col");
    return TI_OK;
}

static ti_status col2im_add(struct ti_kctx *k, enum ti_dtype dt, void *dx, const void *col,
                            const struct conv_geom &g) {
    int64_t total = g.Cin * g.H * g.W;
    if (total == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, dt, T, {
        col2im_add_kernel<T>
            <<<ti_cuda_blocks(total, 256), 256, 0, s>>>((T *)dx, (const T *)col, g, total);
    });
    CUDA_CHECK_LAUNCH(k, "conv2d col2im");
    return TI_OK;
}

/* y_b (Cout, Ho*Wo) = W (Cout, Cin*KH*KW) . col_b (+ the bias already in y: beta = 1) */
static ti_status gemm_forward(struct ti_kctx *k, const struct ti_conv2d_args *a,
                              const struct conv_geom &g) {
    enum ti_dtype dt = a->out.dtype;
    size_t es = ti_dtype_size(dt);
    int64_t ckk = g.Cin * g.KH * g.KW, plane = g.Ho * g.Wo;
    void *col;
    TI_TRY(scratch_or_fail(k, &col, (size_t)(ckk * plane) * es, "im2col"));
    float beta = 0.f;
    if (a->bias.data) {
        TI_TRY(ti_cuda_bias_fill(k, dt, a->out.data, a->bias.data, g.B, g.Cout, plane));
        beta = 1.f;
    }
    for (int64_t b = 0; b < g.B; b++) {
        const char *x = (const char *)a->inp.data + (size_t)(b * g.Cin * g.H * g.W) * es;
        char *y = (char *)a->out.data + (size_t)(b * g.Cout * plane) * es;
        TI_TRY(im2col(k, dt, col, x, g));
        TI_TRY(ti_cuda_gemm(k, dt, 1, mat2(y, g.Cout, plane, plane, 1),
                            mat2(a->weight.data, g.Cout, ckk, ckk, 1),
                            mat2(col, ckk, plane, plane, 1), 1.f, beta));
    }
    return TI_OK;
}

/* dW (Cout, Cin*KH*KW) += dy_b . col_b^T;  col = W^T . dy_b, dx_b += col2im(col) */
static ti_status gemm_backward(struct ti_kctx *k, const struct ti_conv2d_args *a,
                               const struct conv_geom &g, int want_x, int want_w) {
    enum ti_dtype dt = a->dout.dtype;
    size_t es = ti_dtype_size(dt);
    int64_t ckk = g.Cin * g.KH * g.KW, plane = g.Ho * g.Wo;
    void *col;
    TI_TRY(scratch_or_fail(k, &col, (size_t)(ckk * plane) * es, "im2col"));
    for (int64_t b = 0; b < g.B; b++) {
        char *dy = (char *)a->dout.data + (size_t)(b * g.Cout * plane) * es;
        size_t xoff = (size_t)(b * g.Cin * g.H * g.W) * es;
        if (want_w) {
            TI_TRY(im2col(k, dt, col, (const char *)a->inp.data + xoff, g));
            TI_TRY(ti_cuda_gemm(k, dt, 1, mat2(a->dweight.data, g.Cout, ckk, ckk, 1),
                                mat2(dy, g.Cout, plane, plane, 1), mat2(col, plane, ckk, 1, plane),
                                1.f, 1.f));
        }
        if (want_x) {
            TI_TRY(ti_cuda_gemm(k, dt, 1, mat2(col, ckk, plane, plane, 1),
                                mat2(a->weight.data, ckk, g.Cout, 1, ckk),
                                mat2(dy, g.Cout, plane, plane, 1), 1.f, 0.f));
            TI_TRY(col2im_add(k, dt, (char *)a->dinp.data + xoff, col, g));
        }
    }
    return TI_OK;
}

/* ---- cuDNN path ------------------------------------------------------------------------------ */
#ifdef TI_HAVE_CUDNN

/* xp (BC, Hp, Wp) = x (BC, H, W) with pt rows on top and pl columns on the left of zeros (the
 * bottom / right padding is what remains of Hp, Wp) */
template <typename T>
__global__ void pad_kernel(T *xp, const T *x, int64_t H, int64_t W, int64_t Hp, int64_t Wp,
                           int64_t pt, int64_t pl, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % Wp, t = i / Wp, r = t % Hp, bc = t / Hp;
        int64_t y = r - pt, xx = j - pl;
        if (y >= 0 && y < H && xx >= 0 && xx < W)
            xp[i] = x[(bc * H + y) * W + xx];
        else
            stf(xp + i, 0.f);
    }
}

/* dx (BC, H, W) += interior of dxp (BC, Hp, Wp) (the padding's gradient is dropped) */
template <typename T>
__global__ void crop_add_kernel(T *dx, const T *dxp, int64_t H, int64_t W, int64_t Hp, int64_t Wp,
                                int64_t pt, int64_t pl, int64_t total) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % W, t = i / W, y = t % H, bc = t / H;
        stf(dx + i, ldf(dx + i) + ldf(dxp + (bc * Hp + y + pt) * Wp + j + pl));
    }
}

static ti_status launch_pad(struct ti_kctx *k, enum ti_dtype dt, void *xp, const void *x,
                            const struct conv_geom &g) {
    int64_t total = g.B * g.Cin * g.Hp * g.Wp;
    if (total == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, dt, T, {
        pad_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, s>>>((T *)xp, (const T *)x, g.H, g.W,
                                                                 g.Hp, g.Wp, g.pt, g.pl, total);
    });
    CUDA_CHECK_LAUNCH(k, "conv2d pad");
    return TI_OK;
}

static ti_status launch_crop_add(struct ti_kctx *k, enum ti_dtype dt, void *dx, const void *dxp,
                                 const struct conv_geom &g) {
    int64_t total = g.B * g.Cin * g.H * g.W;
    if (total == 0) return TI_OK;
    cudaStream_t s = TI_CUDA_STREAM(k);
    TI_CUDA_FLOAT_SWITCH(k, dt, T, {
        crop_add_kernel<T><<<ti_cuda_blocks(total, 256), 256, 0, s>>>(
            (T *)dx, (const T *)dxp, g.H, g.W, g.Hp, g.Wp, g.pt, g.pl, total);
    });
    CUDA_CHECK_LAUNCH(k, "conv2d crop_add");
    return TI_OK;
}

/* Largest workspace an algorithm may ask for. */
#define DNN_WS_MAX ((size_t)1 << 30)

/* The four descriptors of one convolution, destroyed on every return path. */
struct dnn_descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
    dnn_descs() : x(NULL), y(NULL), w(NULL), c(NULL) {}
    ~dnn_descs() {
        if (c) cudnnDestroyConvolutionDescriptor(c);
        if (w) cudnnDestroyFilterDescriptor(w);
        if (y) cudnnDestroyTensorDescriptor(y);
        if (x) cudnnDestroyTensorDescriptor(x);
    }
};

static int dnn_type(enum ti_dtype dt, cudnnDataType_t *t) {
    switch (dt) {
    case TI_DTYPE_F32: *t = CUDNN_DATA_FLOAT; return 1;
    case TI_DTYPE_F16: *t = CUDNN_DATA_HALF; return 1;
    case TI_DTYPE_BF16: *t = CUDNN_DATA_BFLOAT16; return 1;
    default: return 0;
    }
}

static int fits_int(int64_t v) {
    return v >= 0 && v <= 2147483647;
}

/* Descriptors for the convolution of an input (B, Cin, hin, win) padded symmetrically by
 * (ph, pw), producing (B, Cout, Ho, Wo). *ok = 0 when cuDNN cannot describe it (int sizes). */
static ti_status dnn_setup(struct ti_kctx *k, dnn_descs &d, enum ti_dtype dt,
                           const struct conv_geom &g, int64_t hin, int64_t win, int64_t ph,
                           int64_t pw, int *ok) {
    cudnnDataType_t t;
    *ok = 0;
    if (!dnn_type(dt, &t)) return TI_OK;
    /* every size is a factor of one of these element counts (an empty input channel dim is
     * left to the GEMM path too) */
    if (g.Cin == 0 || !fits_int(g.B * g.Cin * hin * win) || !fits_int(g.B * g.Cout * g.Ho * g.Wo) ||
        !fits_int(g.Cout * g.Cin * g.KH * g.KW) || !fits_int(ph) || !fits_int(pw) || !fits_int(g.s))
        return TI_OK;
    CUDNN_CHECK(k, cudnnCreateTensorDescriptor(&d.x));
    CUDNN_CHECK(k, cudnnCreateTensorDescriptor(&d.y));
    CUDNN_CHECK(k, cudnnCreateFilterDescriptor(&d.w));
    CUDNN_CHECK(k, cudnnCreateConvolutionDescriptor(&d.c));
    CUDNN_CHECK(k, cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NCHW, t, (int)g.B, (int)g.Cin,
                                              (int)hin, (int)win));
    CUDNN_CHECK(k, cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NCHW, t, (int)g.B, (int)g.Cout,
                                              (int)g.Ho, (int)g.Wo));
    CUDNN_CHECK(k, cudnnSetFilter4dDescriptor(d.w, t, CUDNN_TENSOR_NCHW, (int)g.Cout, (int)g.Cin,
                                              (int)g.KH, (int)g.KW));
    CUDNN_CHECK(k, cudnnSetConvolution2dDescriptor(d.c, (int)ph, (int)pw, (int)g.s, (int)g.s, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    int n = 0, c = 0, h = 0, w = 0;
    CUDNN_CHECK(k, cudnnGetConvolution2dForwardOutputDim(d.c, d.x, d.w, &n, &c, &h, &w));
    if (n != g.B || c != g.Cout || h != g.Ho || w != g.Wo)
        return ti_error(k->err, TI_ERR_INTERNAL,
                        "conv2d: cuDNN output [%d, %d, %d, %d], expected [%lld, %lld, %lld, %lld]",
                        n, c, h, w, (long long)g.B, (long long)g.Cout, (long long)g.Ho,
                        (long long)g.Wo);
    *ok = 1;
    return TI_OK;
}

/* Math mode an algorithm runs with: f32 never uses TF32 tensor cores (FMA only); 16-bit
 * storage keeps what the heuristic proposed (tensor cores, f32 accumulation). */
static cudnnMathType_t dnn_math(enum ti_dtype dt, cudnnMathType_t proposed) {
    return dt == TI_DTYPE_F32 ? CUDNN_FMA_MATH : proposed;
}

/* Candidate order over heuristic results: deterministic algorithms first, then the others, each
 * in the heuristic's order; failed or over-hungry entries are dropped. Returns the count. */
template <typename Perf> static int dnn_order(const Perf *p, int n, int *order) {
    int m = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (p[i].status != CUDNN_STATUS_SUCCESS || p[i].memory > DNN_WS_MAX) continue;
            if ((p[i].determinism == CUDNN_DETERMINISTIC) != (pass == 0)) continue;
            order[m++] = i;
        }
    return m;
}

/* A cuDNN status that means "this algorithm cannot run this case": try the next one. */
static int dnn_unsupported(cudnnStatus_t st) {
    return CUDNN_STATUS_CATEGORY(st) == CUDNN_STATUS_NOT_SUPPORTED;
}

/* y = alpha conv(x, w) + beta y. *done = 0 when no algorithm runs the case. */
static ti_status dnn_run_forward(struct ti_kctx *k, dnn_descs &d, enum ti_dtype dt, const void *x,
                                 const void *w, void *y, float beta, int *done) {
    cudnnHandle_t h = (cudnnHandle_t)k->dnn;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0, order[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    const float alpha = 1.f;
    *done = 0;
    CUDNN_CHECK(k, cudnnGetConvolutionForwardAlgorithm_v7(
                       h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
    int m = dnn_order(perf, n, order);
    for (int j = 0; j < m; j++) {
        const cudnnConvolutionFwdAlgoPerf_t &p = perf[order[j]];
        CUDNN_CHECK(k, cudnnSetConvolutionMathType(d.c, dnn_math(dt, p.mathType)));
        size_t wsz = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, p.algo, &wsz) !=
            CUDNN_STATUS_SUCCESS)
            continue;
        void *ws;
        TI_TRY(scratch_or_fail(k, &ws, wsz, "the cuDNN forward workspace"));
        cudnnStatus_t st =
            cudnnConvolutionForward(h, &alpha, d.x, x, d.w, w, d.c, p.algo, ws, wsz, &beta, d.y, y);
        if (dnn_unsupported(st)) continue;
        CUDNN_CHECK(k, st);
        *done = 1;
        return TI_OK;
    }
    return TI_OK;
}

/* dx = alpha conv^T(dy, w) + beta dx. */
static ti_status dnn_run_data(struct ti_kctx *k, dnn_descs &d, enum ti_dtype dt, const void *w,
                              const void *dy, void *dx, float beta, int *done) {
    cudnnHandle_t h = (cudnnHandle_t)k->dnn;
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0, order[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    const float alpha = 1.f;
    *done = 0;
    CUDNN_CHECK(k, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                       h, d.w, d.y, d.c, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
    int m = dnn_order(perf, n, order);
    for (int j = 0; j < m; j++) {
        const cudnnConvolutionBwdDataAlgoPerf_t &p = perf[order[j]];
        CUDNN_CHECK(k, cudnnSetConvolutionMathType(d.c, dnn_math(dt, p.mathType)));
        size_t wsz = 0;
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, d.w, d.y, d.c, d.x, p.algo, &wsz) !=
            CUDNN_STATUS_SUCCESS)
            continue;
        void *ws;
        TI_TRY(scratch_or_fail(k, &ws, wsz, "the cuDNN backward-data workspace"));
        cudnnStatus_t st = cudnnConvolutionBackwardData(h, &alpha, d.w, w, d.y, dy, d.c, p.algo, ws,
                                                        wsz, &beta, d.x, dx);
        if (dnn_unsupported(st)) continue;
        CUDNN_CHECK(k, st);
        *done = 1;
        return TI_OK;
    }
    return TI_OK;
}

/* dw += conv_filter_grad(x, dy). */
static ti_status dnn_run_filter(struct ti_kctx *k, dnn_descs &d, enum ti_dtype dt, const void *x,
                                const void *dy, void *dw, int *done) {
    cudnnHandle_t h = (cudnnHandle_t)k->dnn;
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0, order[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    const float alpha = 1.f, beta = 1.f;
    *done = 0;
    CUDNN_CHECK(k, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                       h, d.x, d.y, d.c, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf));
    int m = dnn_order(perf, n, order);
    for (int j = 0; j < m; j++) {
        const cudnnConvolutionBwdFilterAlgoPerf_t &p = perf[order[j]];
        CUDNN_CHECK(k, cudnnSetConvolutionMathType(d.c, dnn_math(dt, p.mathType)));
        size_t wsz = 0;
        if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, d.x, d.y, d.c, d.w, p.algo, &wsz) !=
            CUDNN_STATUS_SUCCESS)
            continue;
        void *ws;
        TI_TRY(scratch_or_fail(k, &ws, wsz, "the cuDNN backward-filter workspace"));
        cudnnStatus_t st = cudnnConvolutionBackwardFilter(h, &alpha, d.x, x, d.y, dy, d.c, p.algo,
                                                          ws, wsz, &beta, d.w, dw);
        if (dnn_unsupported(st)) continue;
        CUDNN_CHECK(k, st);
        *done = 1;
        return TI_OK;
    }
    return TI_OK;
}

static int asymmetric(const struct conv_geom &g) {
    return g.pt != g.pb || g.pl != g.pr;
}

/* Forward through cuDNN; *done = 0 leaves the case to the GEMM path. */
static ti_status dnn_forward(struct ti_kctx *k, const struct ti_conv2d_args *a,
                             const struct conv_geom &g, int *done) {
    enum ti_dtype dt = a->out.dtype;
    size_t es = ti_dtype_size(dt);
    const void *x = a->inp.data;
    int64_t hin = g.H, win = g.W, ph = g.pt, pw = g.pl;
    int ok;
    *done = 0;
    dnn_descs d;
    if (asymmetric(g)) {
        hin = g.Hp;
        win = g.Wp;
        ph = pw = 0;
    }
    TI_TRY(dnn_setup(k, d, dt, g, hin, win, ph, pw, &ok));
    if (!ok) return TI_OK;
    if (asymmetric(g)) { /* x zero-padded into scratch, convolved with pad 0 */
        void *xp;
        TI_TRY(
            scratch_or_fail(k, &xp, (size_t)(g.B * g.Cin * g.Hp * g.Wp) * es, "the padded input"));
        TI_TRY(launch_pad(k, dt, xp, a->inp.data, g));
        x = xp;
    }
    float beta = 0.f;
    if (a->bias.data) {
        TI_TRY(ti_cuda_bias_fill(k, dt, a->out.data, a->bias.data, g.B, g.Cout, g.Ho * g.Wo));
        beta = 1.f;
    }
    return dnn_run_forward(k, d, dt, x, a->weight.data, a->out.data, beta, done);
}

/* Backward-data and backward-filter through cuDNN; *done_x / *done_w = 0 leave that part to the
 * GEMM path. */
static ti_status dnn_backward(struct ti_kctx *k, const struct ti_conv2d_args *a,
                              const struct conv_geom &g, int want_x, int want_w, int *done_x,
                              int *done_w) {
    enum ti_dtype dt = a->dout.dtype;
    size_t es = ti_dtype_size(dt);
    int asym = asymmetric(g), ok;
    int64_t hin = asym ? g.Hp : g.H, win = asym ? g.Wp : g.W;
    size_t padded = (size_t)(g.B * g.Cin * g.Hp * g.Wp) * es;
    *done_x = *done_w = 0;
    dnn_descs d;
    TI_TRY(dnn_setup(k, d, dt, g, hin, win, asym ? 0 : g.pt, asym ? 0 : g.pl, &ok));
    if (!ok) return TI_OK;
    if (want_x) {
        if (asym) { /* the padded input's gradient in scratch, its interior added to dinp */
            void *dxp;
            TI_TRY(scratch_or_fail(k, &dxp, padded, "the padded input gradient"));
            TI_TRY(dnn_run_data(k, d, dt, a->weight.data, a->dout.data, dxp, 0.f, done_x));
            if (*done_x) TI_TRY(launch_crop_add(k, dt, a->dinp.data, dxp, g));
        } else {
            TI_TRY(dnn_run_data(k, d, dt, a->weight.data, a->dout.data, a->dinp.data, 1.f, done_x));
        }
    }
    if (want_w) {
        const void *x = a->inp.data;
        if (asym) {
            void *xp;
            TI_TRY(scratch_or_fail(k, &xp, padded, "the padded input"));
            TI_TRY(launch_pad(k, dt, xp, a->inp.data, g));
            x = xp;
        }
        TI_TRY(dnn_run_filter(k, d, dt, x, a->dout.data, a->dweight.data, done_w));
    }
    return TI_OK;
}
#endif /* TI_HAVE_CUDNN */

/* ---- launchers ------------------------------------------------------------------------------- */

extern "C" ti_status cuda_conv2d_forward(struct ti_kctx *k, const struct ti_conv2d_args *a) {
    struct conv_geom g;
    geom_of(&g, a);
    if (g.B * g.Cout * g.Ho * g.Wo == 0) return TI_OK;
#ifdef TI_HAVE_CUDNN
    if (k->dnn) {
        int done;
        TI_TRY(dnn_forward(k, a, g, &done));
        if (done) return TI_OK;
    }
#endif
    return gemm_forward(k, a, g);
}

/* dbias[o] += sum_{b,i,j} dout[b,o,i,j]; dinp and dweight through cuDNN or im2col + cuBLAS. */
extern "C" ti_status cuda_conv2d_backward(struct ti_kctx *k, const struct ti_conv2d_args *a) {
    struct conv_geom g;
    geom_of(&g, a);
    if (g.B * g.Cout * g.Ho * g.Wo == 0) return TI_OK;
    if (a->dbias.data)
        TI_TRY(ti_cuda_bias_grad(k, a->dout.dtype, a->dbias.data, a->dout.data, g.B, g.Cout,
                                 g.Ho * g.Wo));
    int want_x = a->dinp.data != NULL, want_w = a->dweight.data != NULL;
#ifdef TI_HAVE_CUDNN
    if (k->dnn && (want_x || want_w)) {
        int done_x, done_w;
        TI_TRY(dnn_backward(k, a, g, want_x, want_w, &done_x, &done_w));
        want_x = want_x && !done_x;
        want_w = want_w && !done_w;
    }
#endif
    if (!want_x && !want_w) return TI_OK;
    return gemm_backward(k, a, g, want_x, want_w);
}
