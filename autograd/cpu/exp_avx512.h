/*
 * exp_avx512.h - e^x for 16 floats with AVX-512F: the softmax exp of the f32 and bf16 attention
 * kernels (attention_f32.c, attention_bf16.c), one copy for both.
 *
 *   __m512 y = ti_exp16_avx512(x);   // inside a function compiled for avx512f (or more)
 *
 * Method as fast_exp.h (Cephes expf with Cody-Waite reduction x = n ln2 + r, the degree-5
 * polynomial), with 2^n applied by vscalefps: exact over/underflow (x <= -104 gives 0, x > 88.7
 * gives inf), NaN stays NaN. Within 2 ulp of expf on the softmax range (test_attention compares
 * both kernels with the naive path).
 */
#ifndef TI_CPU_EXP_AVX512_H
#define TI_CPU_EXP_AVX512_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "fast_exp.h" /* defines: TI_FEXP_* constants */

__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) __m512
ti_exp16_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* NaN x: x (second operand) */
    x = _mm512_min_ps(_mm512_set1_ps(88.7f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(TI_FEXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TI_FEXP_C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TI_FEXP_C2), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(TI_FEXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TI_FEXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TI_FEXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TI_FEXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TI_FEXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TI_FEXP_P5));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#endif

#endif /* TI_CPU_EXP_AVX512_H */
