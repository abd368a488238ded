/*
 * vmath.h - single-precision exp and normal CDF written so that GCC/Clang vectorise them inside
 * `#pragma omp simd` loops (no calls, no branches: bit-mask selects, bit casts by memcpy). glibc's
 * expf/erff are scalar calls (~5-20 ns each here), which made SiLU, GELU and softmax loops
 * 5-10x slower than the memory traffic they need.
 *
 *   ti_vexpf(x)   e^x; max relative error ~1.5e-7 (2 ulp) for x in [-87.33, 88.72]; 0 below
 *                 (no denormals), +inf above, NaN stays NaN.
 *   ti_vphif(x)   Phi(x) = 0.5 (1 + erf(x / sqrt 2)), the standard normal CDF; absolute error
 *                 < 1e-7 everywhere (like 0.5 (1 + erff(z)) with libm), relative error <= 2 ulp
 *                 for x >= 0 and growing into the left tail (~20 ulp at x = -2.8, ~100 ulp at
 *                 -8 where Phi < 1e-15; 0 below -13): the tail is 0.5 erfc(-x / sqrt 2), so it
 *                 keeps its digits instead of cancelling in 1 + erf (torch's formula loses all
 *                 of them below x ~ -5.4).
 * Accuracy is checked by tests/test_vmath.c against libm in double.
 *
 * Method. exp: Cephes: n = round(x / ln 2) (magic-number rounding; needs IEEE single evaluation,
 * no -ffast-math), r = x - n ln 2 in two parts, e^r by a degree-6 polynomial, times 2^n built in
 * the exponent bits (2^128 split as 2^127 * 2). erf: for |z| < 1, erf(z) = z P(z^2) (P of
 * degree 5, max relative error 4e-8); for 1 <= |z| < 4, erfc(|z|) = exp(Q(|z| - 2.5)) with Q of
 * degree 8 fitted to log erfc on [1, 4] (max abs error 1.2e-8, i.e. relative 1.2e-8 on erfc);
 * for |z| >= 4, erfc(t) = exp(-t^2 + H(1/t^2)) / t with H of degree 4 fitted on [4, 9.5]
 * (abs error 6.5e-9; the rounding of t^2 costs ~t^2 * 6e-8 relative, i.e. up to ~100 ulp in
 * the far tail where Phi < 1e-8). Coefficients: Lawson-weighted least squares (near-minimax)
 * against mpmath, reproduced by scripts/fit_vmath.py.
 *
 * Only for f32 kernels; the f64 kernels (the gradcheck reference) use libm.
 */
#ifndef TI_CPU_VMATH_H
#define TI_CPU_VMATH_H

#include <math.h> /* defines: HUGE_VALF, fabsf, erfc */
#include <stdint.h>
#include <string.h> /* defines: memcpy */

/* TI_VCLONES on a kernel's per-row function compiles it three times (AVX-512, AVX2+FMA ISA
 * levels and the portable baseline) and picks one at load time (GCC >= 12, x86-64 Linux): the
 * default build stays portable (no -march) yet the SIMD loops run 8 or 16 lanes wide where the
 * CPU has them (4x faster SiLU / GELU here than SSE2). The arithmetic is the same in every clone
 * (no FMA contraction under -std=c11), only the order of vectorised reductions may differ, so
 * results are deterministic per machine. TI_VINLINE forces the helpers below into the clones
 * (GCC does not inline a default-target function into a clone otherwise). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) &&           \
    defined(__linux__)
#define TI_VCLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TI_VCLONES
#endif
#if defined(__GNUC__)
#define TI_VINLINE inline __attribute__((always_inline))
#else
#define TI_VINLINE inline
#endif

/* c ? a : b by bit masks. A plain ?: on floats is kept as control flow by GCC under the default
 * -ftrapping-math (the comparison might trap), which blocks vectorisation. */
static TI_VINLINE float ti_vsel(int c, float a, float b) {
    int32_t ia, ib, m = -(int32_t)(c != 0), r;
    float f;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    r = (ia & m) | (ib & ~m);
    memcpy(&f, &r, sizeof f);
    return f;
}

static TI_VINLINE float ti_vexpf(float x) {
    const float lo = -87.3365448f, hi = 88.7228394f; /* ln(FLT_MIN), ln(FLT_MAX) */
    float xc = ti_vsel(x > lo, x, lo);               /* NaN -> lo (kept finite for the int cast) */
    xc = ti_vsel(xc < hi, xc, hi);
    const float magic = 12582912.f; /* 1.5 * 2^23: (v + magic) - magic rounds v to an integer */
    float n = (xc * 1.44269504088896341f + magic) - magic;
    float r = xc - n * 0.693359375f; /* ln 2 = 0.693359375 - 2.12194440e-4 (Cephes) */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.f;
    float m = ti_vsel(n < 127.f, n, 127.f); /* n in [-126, 128]; 2^n = 2^m * (1 or 2) */
    int32_t bits = ((int32_t)m + 127) * (1 << 23);
    float s;
    memcpy(&s, &bits, sizeof s);
    y = y * s;
    y = ti_vsel(n > m, y * 2.f, y);
    y = ti_vsel(x < lo, 0.f, y);
    y = ti_vsel(x > hi, HUGE_VALF, y);
    return ti_vsel(x != x, x, y);
}

static TI_VINLINE float ti_vphif(float x) {
    float z = x * 0.707106781186547524f, t = fabsf(z), s = z * z;
    /* |z| < 1: Phi = 0.5 + 0.5 z P(z^2) */
    float p = -5.631444670143732e-4f;
    p = p * s + 4.917557780167628e-3f;
    p = p * s + -2.6711317862852066e-2f;
    p = p * s + 1.1280180408398371e-1f;
    p = p * s + -3.761232624167742e-1f;
    p = p * s + 1.128379122522754f;
    float small = 0.5f + 0.5f * (z * p);
    /* 1 <= |z| < 4: e = 0.5 erfc(|z|) = 0.5 exp(Q(|z| - 2.5)) (centred: no cancellation) */
    float u = ti_vsel(t < 4.f, t, 4.f) - 2.5f;
    float q = 1.5998152740337446e-06f;
    q = q * u + -1.3301707489254966e-05f;
    q = q * u + 7.745493657784763e-05f;
    q = q * u + -4.2017313088682506e-04f;
    q = q * u + 2.1650814995874956e-03f;
    q = q * u + -1.085848734171524e-02f;
    q = q * u + -9.43893608346303e-01f;
    q = q * u + -5.352680688514797f;
    q = q * u + -7.806815278983359f;
    float e_mid = 0.5f * ti_vexpf(q);
    /* |z| >= 4 (only the z < 0 tail differs from 1 in single precision):
     * erfc(t) = v exp(-t^2 + H(v^2)), v = 1/t (asymptotic form; H of degree 4 in v^2) */
    float tt = ti_vsel(t > 4.f, t, 4.f), v = 1.f / tt, w = v * v;
    float h = 2.718947030309285f;
    h = h * w + -1.382183595438274f;
    h = h * w + 6.203577686387757e-01f;
    h = h * w + -4.999358094678373e-01f;
    h = h * w + -5.723652695719325e-01f;
    float e_tail = 0.5f * v * ti_vexpf(h - tt * tt);
    float e = ti_vsel(t < 4.f, e_mid, e_tail);
    float big = ti_vsel(z < 0, e, 1.f - e);
    float r = ti_vsel(t < 1.f, small, big);
    return ti_vsel(x != x, x, r);
}

/* `omp simd` for the kernels' loops that call VEXP / VPHI, and for float max reductions. Clang
 * warns (-Wpass-failed) when it cannot honour the pragma: libm calls in the f64 build, float max
 * reductions without fast-math; these keep the pragma where it vectorises. */
#define TI_PRAGMA_(x) _Pragma(#x)
#if defined(__clang__) && defined(TI_REAL_F64)
#define TI_SIMD_MATH
#define TI_SIMD_MATH_RED(...)
#else
#define TI_SIMD_MATH          _Pragma("omp simd")
#define TI_SIMD_MATH_RED(...) TI_PRAGMA_(omp simd reduction(__VA_ARGS__))
#endif
#if defined(__clang__)
#define TI_SIMD_MAX(v)
#else
#define TI_SIMD_MAX(v) TI_PRAGMA_(omp simd reduction(max : v))
#endif

/* For the kernels compiled once per `real` (cpu_common.h): VEXP / VPHI are the vectorisable forms
 * above for f32 and libm for f64 (the gradcheck reference). */
#if defined(TI_REAL_F32)
#define VEXP ti_vexpf
#define VPHI ti_vphif
#elif defined(TI_REAL_F64)
#define VEXP exp
#define VPHI ti_phi_f64
static TI_VINLINE double ti_phi_f64(double x) {
    return 0.5 * erfc(-x * 0.70710678118654752440);
}
#endif

#endif /* TI_CPU_VMATH_H */
