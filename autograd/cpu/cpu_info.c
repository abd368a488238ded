/*
 * cpu/cpu_info.c - CPU features (CPUID + XCR0), the OpenBLAS core check and ti_cpu_describe
 * (cpu_info.h).
 */
#define TI_CPU_ONCE
#include "cpu_common.h"

#include <stdio.h>   /* defines: snprintf */
#include <string.h>  /* defines: memcpy, memset, strcasecmp */
#include <strings.h> /* defines: strcasecmp */

#include "../cpu_info.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h> /* defines: __get_cpuid, __get_cpuid_count */
#define TI_X86 1
#endif

#ifdef TI_HAVE_OPENBLAS
#include <cblas.h> /* defines: openblas_get_corename */
#endif

#ifdef TI_X86
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

void ti_cpu_features(struct ti_cpu_features *f) {
    memset(f, 0, sizeof *f);
#ifdef TI_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned maxleaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    if (fam == 0xf) fam += (a >> 20) & 0xff;
    if (fam == 0x6 || fam >= 0xf) mod |= ((a >> 16) & 0xf) << 4;
    f->family = (int)fam;
    f->model = (int)mod;
    int osxsave = (c >> 27) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6, os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    int os_amx = (xcr0 & 0x60000) == 0x60000;
    f->avx = os_avx && ((c >> 28) & 1);
    f->fma = f->avx && ((c >> 12) & 1);
    if (maxleaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = f->avx && ((b >> 5) & 1);
        f->avx512f = os_avx512 && ((b >> 16) & 1);
        f->avx512bw = f->avx512f && ((b >> 30) & 1);
        f->avx512vl = f->avx512f && ((b >> 31) & 1);
        f->avx512_fp16 = f->avx512f && ((d >> 23) & 1);
        f->amx_tile = os_amx && ((d >> 24) & 1);
        f->amx_bf16 = os_amx && ((d >> 22) & 1);
        unsigned a1, b1, c1, d1;
        if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1))
            f->avx512_bf16 = f->avx512f && ((a1 >> 5) & 1);
    }
#endif
}

int ti_cpu_vector_level(void) {
    struct ti_cpu_features f;
    ti_cpu_features(&f);
    if (f.avx512f && f.avx512bw && f.avx512vl) return 3;
    if (f.avx2 && f.fma) return 2;
    return f.avx ? 1 : 0;
}

/* Vector level of an OpenBLAS x86 core's kernels (names as openblas_get_corename prints them). */
static int blas_core_level(const char *core) {
    static const char *const l3[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const l2[] = {"haswell", "zen"};
    static const char *const l1[] = {"sandybridge", "bulldozer", "piledriver", "steamroller",
                                     "excavator"};
    for (size_t i = 0; i < sizeof l3 / sizeof *l3; i++)
        if (strcasecmp(core, l3[i]) == 0) return 3;
    for (size_t i = 0; i < sizeof l2 / sizeof *l2; i++)
        if (strcasecmp(core, l2[i]) == 0) return 2;
    for (size_t i = 0; i < sizeof l1 / sizeof *l1; i++)
        if (strcasecmp(core, l1[i]) == 0) return 1;
    return 0; /* prescott, core2, penryn, nehalem, atom, barcelona, ... */
}

const char *ti_cpu_blas_core(int *outdated) {
    if (outdated) *outdated = 0;
#ifdef TI_HAVE_OPENBLAS
    const char *core = openblas_get_corename();
    if (!core) core = "unknown";
#ifdef TI_X86
    if (outdated) *outdated = blas_core_level(core) < ti_cpu_vector_level();
#else
    (void)blas_core_level;
#endif
    return core;
#else
    (void)blas_core_level;
    return NULL;
#endif
}

int ti_cpu_describe(char *buf, size_t n) {
    struct ti_cpu_features f;
    ti_cpu_features(&f);
    char feat[160];
    snprintf(feat, sizeof feat, "%s%s%s%s%s%s%s", f.avx ? " AVX" : "", f.avx2 ? " AVX2" : "",
             f.fma ? " FMA" : "", f.avx512f ? " AVX-512" : "", f.avx512_bf16 ? " AVX512-BF16" : "",
             f.avx512_fp16 ? " AVX512-FP16" : "", f.amx_bf16 ? " AMX-BF16" : "");
    char conv[96];
#ifdef TI_HAVE_DNNL
    if (ti_dnnl_conv_enabled())
        snprintf(conv, sizeof conv, "oneDNN (%s)", ti_dnnl_isa_name());
    else
        snprintf(conv, sizeof conv, "built-in Winograd/GEMM (oneDNN off: TI_DNNL=0)");
#else
    snprintf(conv, sizeof conv, "built-in Winograd/GEMM (built without oneDNN)");
#endif
    int outdated = 0;
    const char *core = ti_cpu_blas_core(&outdated);
    char blas[256];
    if (core)
        snprintf(blas, sizeof blas, "; OpenBLAS core %s%s", core,
                 !outdated ? ""
                 : strcmp(ti_cpu_gemm_name(), "oneDNN") == 0
                     ? " (older than this CPU's features; used for f64 only)"
                     : " (older than this CPU's features, slow: set OPENBLAS_CORETYPE, e.g. "
                       "SkylakeX for AVX-512 or Haswell for AVX2)");
    else
        blas[0] = 0;
    return snprintf(buf, n, "CPU %s family %d model %d,%s; conv f32: %s; GEMM f32: %s%s",
                    f.vendor[0] ? f.vendor : "?", f.family, f.model, feat[0] ? feat : " SSE only",
                    conv, ti_cpu_gemm_name(), blas);
}
