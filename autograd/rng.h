/*
 * rng.h - a small deterministic random number generator (xoshiro256**, seeded by splitmix64)
 * with uniform and normal draws. Same seed, same stream on every machine: used for test inputs,
 * training noise and timesteps. Not cryptographic.
 *
 *   struct ti_rng r;
 *   ti_rng_seed(&r, 23);
 *   double u = ti_rng_uniform(&r);        // [0, 1)
 *   ti_rng_normal_f32(&r, buf, n);        // N(0, 1) floats (Box-Muller)
 */
#ifndef TI_RNG_H
#define TI_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ti_rng {
    uint64_t s[4];
};

void ti_rng_seed(struct ti_rng *r, uint64_t seed);
uint64_t ti_rng_next(struct ti_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double ti_rng_uniform(struct ti_rng *r);
/* Uniform integer in [0, n). */
uint64_t ti_rng_below(struct ti_rng *r, uint64_t n);
/* Standard normal. */
double ti_rng_normal(struct ti_rng *r);
void ti_rng_normal_f32(struct ti_rng *r, float *out, size_t n);
void ti_rng_uniform_f64(struct ti_rng *r, double *out, size_t n, double lo, double hi);

#ifdef __cplusplus
}
#endif
#endif /* TI_RNG_H */
