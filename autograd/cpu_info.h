/*
 * cpu_info.h - what the CPU can do and which kernels the CPU backend runs on it.
 *
 * ti picks its CPU kernels from the CPU's features (CPUID and the OS's XSAVE state), never from
 * a table of CPU models, so a CPU newer than a library's table still gets vector kernels:
 *   - convolutions (f32): oneDNN when built with it (CMake TI_DNNL), which dispatches on the
 *     same features (its choice is read back with dnnl_get_effective_cpu_isa and reported);
 *   - GEMM (f32): oneDNN's SGEMM when built in (dispatched on the features; as fast as or faster
 *     than OpenBLAS's best core on SD shapes), else OpenBLAS, whose core comes from its model
 *     table or OPENBLAS_CORETYPE: ti_cpu_blas_core says when that core is older than the CPU
 *     allows (and ti_cpu_describe warns). TI_GEMM=openblas|dnnl forces one. f64 GEMMs (the
 *     gradcheck reference) stay on OpenBLAS.
 * Tools print ti_cpu_describe() at start-up so users see what runs:
 *
 *   char line[512];
 *   ti_cpu_describe(line, sizeof line);
 *   fprintf(stderr, "ti: %s\n", line);
 *
 * Not here: the kernels (cpu/), the backend table (backend.h).
 */
#ifndef TI_CPU_INFO_H
#define TI_CPU_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CPU features usable here (CPUID bit and, for AVX / AVX-512 / AMX, OS support via XCR0). */
struct ti_cpu_features {
    char vendor[13]; /* "GenuineIntel", "AuthenticAMD", ... */
    int family, model;
    int avx, avx2, fma, avx512f, avx512bw, avx512vl, avx512_bf16, avx512_fp16, amx_tile, amx_bf16;
};
void ti_cpu_features(struct ti_cpu_features *f);

/* Vector level: 0 SSE, 1 AVX, 2 AVX2+FMA, 3 AVX-512 (F+BW+VL). */
int ti_cpu_vector_level(void);

/* The OpenBLAS core in use ("Haswell", "Prescott", ...), NULL when built without OpenBLAS, and
 * whether its kernels are older than the CPU allows (1) - e.g. OpenBLAS 0.3.21 falls back to
 * "Prescott" (SSE3) kernels on CPU models it does not know, 3-4x slower. */
const char *ti_cpu_blas_core(int *outdated);

/* Which f32 GEMM runs: "OpenBLAS", "oneDNN" or "built-in". */
const char *ti_cpu_gemm_name(void);

/* One line: CPU, features, the kernels chosen, and a warning when OpenBLAS's core is older than
 * the CPU allows. Returns the length written (snprintf semantics). */
int ti_cpu_describe(char *buf, size_t n);

/* Memory holding frozen weights (model parameters no one writes while it is declared): the
 * oneDNN convolutions keep blocked copies of weights inside it (cpu/dnnl_conv.c). Declaring it
 * again (new values) or thawing it drops those copies. No effect without oneDNN. */
void ti_cpu_weights_frozen(const void *data, size_t bytes);
void ti_cpu_weights_thawed(const void *data, size_t bytes);
/* Bytes held by those blocked copies now. */
size_t ti_cpu_weight_cache_bytes(void);

#ifdef __cplusplus
}
#endif
#endif /* TI_CPU_INFO_H */
