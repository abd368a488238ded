/* rng.c - xoshiro256** with splitmix64 seeding; uniform and Box-Muller normal (see rng.h). */
#include "rng.h"

#include <math.h> /* defines: log, sqrt, cos, sin */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void ti_rng_seed(struct ti_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t ti_rng_next(struct ti_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ti_rng_uniform(struct ti_rng *r) {
    return (double)(ti_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t ti_rng_below(struct ti_rng *r, uint64_t n) {
    if (n == 0) return 0;
    /* rejection sampling: no modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ti_rng_next(r);
    while (x >= limit);
    return x % n;
}

double ti_rng_normal(struct ti_rng *r) {
    double u1 = ti_rng_uniform(r), u2 = ti_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void ti_rng_normal_f32(struct ti_rng *r, float *out, size_t n) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double u1 = ti_rng_uniform(r), u2 = ti_rng_uniform(r);
        if (u1 < 1e-300) u1 = 1e-300;
        double m = sqrt(-2.0 * log(u1));
        out[i] = (float)(m * cos(6.283185307179586 * u2));
        out[i + 1] = (float)(m * sin(6.283185307179586 * u2));
    }
    if (i < n) out[i] = (float)ti_rng_normal(r);
}

void ti_rng_uniform_f64(struct ti_rng *r, double *out, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++)
        out[i] = lo + (hi - lo) * ti_rng_uniform(r);
}
