/*
 * torch_gen.c - PyTorch's CPU generator (MT19937) and its float normal transforms, written from
 * torch 1.13's documented algorithm (CPUGeneratorImpl, DistributionTemplates' normal_fill and
 * avx_mathfun.h's log256_ps / sincos256_ps, evaluated one lane at a time). See torch_gen.h.
 *
 * The AVX2 build of torch compiles avx_mathfun with floating-point contraction: some
 * multiply-adds are fused. The fmaf() calls below are exactly the pairs the compiled code
 * fuses (found against the torch fixture); everything else is a separately rounded float
 * operation, so this file must not be contracted by the compiler.
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "torch_gen.h"

#include <math.h>
#include <string.h>

#define MT_N 624
#define MT_M 397

void ti_torch_gen_seed(struct ti_torch_gen *g, uint64_t seed) {
    g->seed = seed;
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + (uint32_t)j;
    g->index = MT_N;
    g->has_next_normal = 0;
    g->next_normal = 0;
}

static void mt_twist(struct ti_torch_gen *g) {
    uint32_t *s = g->state;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = y >> 1;
        if (y & 1u) v ^= 0x9908b0dfu;
        s[i] = s[(i + MT_M) % MT_N] ^ v;
    }
    g->index = 0;
}

uint32_t ti_torch_gen_random(struct ti_torch_gen *g) {
    if (g->index >= MT_N) mt_twist(g);
    uint32_t y = g->state[g->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static uint64_t gen_random64(struct ti_torch_gen *g) {
    uint64_t hi = ti_torch_gen_random(g);
    uint64_t lo = ti_torch_gen_random(g);
    return (hi << 32) | lo;
}

static float uniform_f32(struct ti_torch_gen *g) {
    return (float)(ti_torch_gen_random(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

static double uniform_f64(struct ti_torch_gen *g) {
    return (double)(gen_random64(g) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

void ti_torch_rand(struct ti_torch_gen *g, float *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_f32(g);
}

static float f_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* avx_mathfun log256_ps for one lane (x > 0 here: 1 - u with u in [0, 1)). */
static float cephes_logf(float x) {
    const float min_norm = f_from_bits(0x00800000u);
    if (x < min_norm) x = min_norm;
    int32_t e_i = (int32_t)(f_bits(x) >> 23);
    x = f_from_bits((f_bits(x) & ~0x7f800000u) | f_bits(0.5f));
    e_i -= 0x7f;
    float e = (float)e_i;
    e = e + 1.0f;
    int lt = x < 0.707106781186547524f;
    float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    if (lt) e = e - 1.0f;
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, +1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, +2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, +3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = fmaf(z, -0.5f, y);
    x = x + y;
    x = fmaf(e, 0.693359375f, x);
    return x;
}

/* avx_mathfun sincos256_ps for one lane. */
static void cephes_sincosf(float xin, float *s, float *c) {
    uint32_t sign_sin = f_bits(xin) & 0x80000000u;
    float x = f_from_bits(f_bits(xin) & 0x7fffffffu);
    float y = x * 1.27323954473516f;
    int32_t j = (int32_t)y; /* cvttps: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sin = ((uint32_t)j & 4u) << 29;
    int poly_sin = (j & 2) == 0; /* 1: the sine polynomial gives the sine */
    uint32_t sign_cos = ((~(uint32_t)(j - 2)) & 4u) << 29;
    sign_sin ^= swap_sin;
    x = fmaf(y, -0.78515625f, x);
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    float z = x * x;
    float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = fmaf(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    float sv = poly_sin ? ys : yc;
    float cv = poly_sin ? yc : ys;
    *s = f_from_bits(f_bits(sv) ^ sign_sin);
    *c = f_from_bits(f_bits(cv) ^ sign_cos);
}

static void normal_fill_16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float theta = two_pi * u2;
        float sn, cs;
        cephes_sincosf(theta, &sn, &cs);
        d[j] = radius * cs;
        d[j + 8] = radius * sn;
    }
}

static double normal_f64(struct ti_torch_gen *g) {
    if (g->has_next_normal) {
        g->has_next_normal = 0;
        return g->next_normal;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * 3.14159265358979323846 * u1;
    g->next_normal = r * sin(theta);
    g->has_next_normal = 1;
    return r * cos(theta);
}

void ti_torch_randn(struct ti_torch_gen *g, float *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)normal_f64(g);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16)
        normal_fill_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16;
        for (int i = 0; i < 16; i++)
            tail[i] = uniform_f32(g);
        normal_fill_16(tail);
    }
}
