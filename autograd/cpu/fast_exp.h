/*
 * fast_exp.h - a vectorisable single-precision exp for the CPU kernels (attention softmax),
 * header-only so tests/test_attention.c checks exactly this code against expf.
 *
 *   float y = ti_fast_expf(x);      // portable (a*b + c rounded twice)
 *   float z = ti_fast_expf_fma(x);  // fused multiply-adds, for code compiled for FMA hardware
 *
 * Why: libm's expf is a scalar call (~5-10 ns), and softmax over 4096 keys x 4096 queries x 8
 * heads needs 134 M of them per attention forward. This version is straight-line float/int
 * arithmetic that GCC and Clang vectorise (SSE2 in a portable build, AVX2 with -march), with no
 * branches and no table.
 *
 * Method (Cephes expf, S. Moshier, public domain, with Cody-Waite reduction):
 *   x = n ln2 + r, n = round(x / ln2), |r| <= ln2/2, ln2 split as C1 + C2 (C1 has 9 significant
 *   bits, so n*C1 is exact for |n| <= 150);
 *   e^r = 1 + r + r^2 P(r), P a degree-5 minimax polynomial (relative error ~1e-7 on the range);
 *   e^x = e^r * 2^n1 * 2^n2 with n1 = n >> 1, n2 = n - n1: both factors are normal floats for
 *   every n in [-150, 128], so results down in the subnormal range and up to FLT_MAX come out
 *   with a single rounding.
 * Range: x <= -103.972084 (e^x below half the smallest subnormal) gives +0; x > 88.7228317
 * (e^x above FLT_MAX + ulp/2) gives +inf; NaN gives NaN. Accuracy: at most 2 ulp against
 * expf over the whole float range, 0.99 ulp against the exact value in an exhaustive check of
 * all 2^32 inputs (tests/test_attention.c, exp_matches_expf, checks a 4-million sample).
 * Requires IEEE binary32 floats and no -ffast-math (the rounding trick below must not be
 * reassociated).
 */
#ifndef TI_CPU_FAST_EXP_H
#define TI_CPU_FAST_EXP_H

#include <stdint.h>
#include <math.h>   /* defines: fmaf */
#include <string.h> /* defines: memcpy (bit casts; compiles to a register move) */

/* 88.7228317f: the largest x whose e^x rounds to a finite float */
#define TI_FEXP_HI_BITS 0x42b17217u
/* -103.972084f: the largest x whose e^x rounds to +0 */
#define TI_FEXP_LO_BITS 0xc2cff1b5u
#define TI_FEXP_LOG2E   1.44269504088896341f
#define TI_FEXP_C1      0.693359375f    /* ln2 high part (9 bits) */
#define TI_FEXP_C2      -2.12194440e-4f /* ln2 - C1 */
#define TI_FEXP_ROUND   12582912.0f     /* 1.5 * 2^23: adding it rounds to the nearest integer */
/* Cephes' degree-5 polynomial: e^r ~ 1 + r + r^2 (P0 r^5 + P1 r^4 + ... + P5) on |r| <= ln2/2.
 * The SIMD exps (exp_avx512.h, attention_f32.c) evaluate the same constants. */
#define TI_FEXP_P0 1.9875691500E-4f
#define TI_FEXP_P1 1.3981999507E-3f
#define TI_FEXP_P2 8.3334519073E-3f
#define TI_FEXP_P3 4.1665795894E-2f
#define TI_FEXP_P4 1.6666665459E-1f
#define TI_FEXP_P5 5.0000001201E-1f

static inline float ti_fexp_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t ti_fexp_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The body of both variants below; MA(a, b, c) is a*b + c (rounded twice, or fused). */
#define TI_FEXP_BODY(x, MA)                                                                        \
    uint32_t ux = ti_fexp_to_bits(x);                                                              \
    /* all-ones masks (0u - 1) or zero */                                                          \
    uint32_t m_nan = 0u - (uint32_t)((ux & 0x7fffffffu) > 0x7f800000u);                            \
    uint32_t m_hi = 0u - (uint32_t)((ux > TI_FEXP_HI_BITS) & (ux <= 0x7f800000u));  /* +inf */     \
    uint32_t m_lo = 0u - (uint32_t)((ux >= TI_FEXP_LO_BITS) & (ux <= 0xff800000u)); /* +0 */       \
    /* special inputs are replaced by 0 so the arithmetic below stays finite and defined */        \
    float xc = ti_fexp_from_bits(ux & ~(m_nan | m_hi | m_lo)); /* in (LO, HI] */                   \
    /* n = round(x / ln2) via the 1.5*2^23 trick (|x / ln2| <= 150 here) */                        \
    float t = MA(xc, TI_FEXP_LOG2E, TI_FEXP_ROUND);                                                \
    float nf = t - TI_FEXP_ROUND;                                                                  \
    float r = MA(nf, -TI_FEXP_C1, xc);                                                             \
    r = MA(nf, -TI_FEXP_C2, r);                                                                    \
    float z = r * r;                                                                               \
    float p = TI_FEXP_P0;                                                                          \
    p = MA(p, r, TI_FEXP_P1);                                                                      \
    p = MA(p, r, TI_FEXP_P2);                                                                      \
    p = MA(p, r, TI_FEXP_P3);                                                                      \
    p = MA(p, r, TI_FEXP_P4);                                                                      \
    p = MA(p, r, TI_FEXP_P5);                                                                      \
    p = MA(p, z, r) + 1.0f;                                                                        \
    /* 2^n = 2^n1 * 2^n2; n in [-150, 128] so n1, n2 in [-75, 64]: both normal floats */           \
    int32_t n = (int32_t)nf;                                                                       \
    int32_t n1 = n / 2;                                                                            \
    int32_t n2 = n - n1;                                                                           \
    float s1 = ti_fexp_from_bits((uint32_t)(n1 + 127) << 23);                                      \
    float s2 = ti_fexp_from_bits((uint32_t)(n2 + 127) << 23);                                      \
    uint32_t y = ti_fexp_to_bits(p * s1 * s2);                                                     \
    y &= ~(m_nan | m_hi | m_lo);     /* +0 for the low range */                                    \
    y |= m_hi & 0x7f800000u;         /* +inf */                                                    \
    y |= m_nan & (ux | 0x00400000u); /* quiet NaN, payload kept */                                 \
    return ti_fexp_from_bits(y)

#define TI_FEXP_MA_PLAIN(a, b, c) ((a) * (b) + (c))
#define TI_FEXP_MA_FUSED(a, b, c) fmaf((a), (b), (c))

/* e^x, see the file comment for range and accuracy. The special cases are selected with
 * integer masks on the bit pattern of x, not with float compares and branches: compares may
 * raise FP exceptions and branches may be threaded around the polynomial, and either stops
 * GCC from if-converting (and so vectorising) a loop over this function. */
static inline float ti_fast_expf(float x) {
    TI_FEXP_BODY(x, TI_FEXP_MA_PLAIN);
}

/* The same with fused multiply-adds (fmaf): ~35% faster inside code compiled for FMA hardware
 * (e.g. __attribute__((target("avx2,fma")))), where fmaf is one instruction; elsewhere fmaf is
 * a libm call (correct, slow). Same range and accuracy bound; results may differ from
 * ti_fast_expf in the last bit. */
static inline float ti_fast_expf_fma(float x) {
    TI_FEXP_BODY(x, TI_FEXP_MA_FUSED);
}

#endif /* TI_CPU_FAST_EXP_H */
