/*
 * torch_gen.h - PyTorch's CPU random generator in C, so a seed gives the same noise as
 * torch.Generator("cpu").manual_seed(seed) + torch.randn(..., generator=g) in torch 1.13:
 * users share seeds between ti and the Python scripts.
 *
 *   struct ti_torch_gen g;
 *   ti_torch_gen_seed(&g, 42);
 *   ti_torch_randn(&g, x, 4 * 64 * 64);    // == torch.randn([4, 64, 64], generator=g)
 *   ti_torch_randn(&g, e, 16);             // the stream continues as torch's does
 *
 * What torch does (and this file reproduces):
 *   - the engine is MT19937 (32-bit), state[0] = low 32 bits of the seed, Knuth's seeding;
 *     random() is one 32-bit draw, random64() two draws, the first in the high half;
 *   - float uniforms: (random() & (2^24-1)) * 2^-24; double uniforms: random64() with 53 bits;
 *   - randn of a contiguous float tensor with n >= 16 elements: n float uniforms first, then
 *     Box-Muller in place on every block of 16 (pairs j, j+8: r = sqrt(-2 log(1-u_j)),
 *     theta = 2 pi u_{j+8}, x_j = r cos theta, x_{j+8} = r sin theta); when n % 16 != 0 the
 *     last 16 positions are redrawn (16 fresh uniforms) and transformed again. On x86-64 with
 *     AVX2 (torch's dispatch on every current CPU) the log/sin/cos are avx_mathfun's Cephes
 *     polynomials in float with fused multiply-adds, which this file evaluates lane by lane;
 *   - randn with n < 16: one double normal per element, Box-Muller on two double uniforms
 *     (u1 -> angle, u2 -> radius) whose sine half is cached in the generator and used by the
 *     next scalar draw (manual_seed clears the cache; the n >= 16 path neither reads nor
 *     writes it).
 * Exactness: bit for bit with the AVX2 build (tests/test_torch_gen.c; the fixture is torch
 * 1.13 on this machine). Not here: other distributions, CUDA generators (torch's CUDA randn
 * is a different stream: ti always draws on the CPU and copies, as the reference scripts'
 * users expect from a CPU generator).
 */
#ifndef TI_TORCH_GEN_H
#define TI_TORCH_GEN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ti_torch_gen {
    uint32_t state[624];
    int index;
    int has_next_normal; /* cached double normal (the scalar path's sine half) */
    double next_normal;
    uint64_t seed;
};

/* torch.Generator("cpu").manual_seed(seed) (torch keeps the low 32 bits for the engine). */
void ti_torch_gen_seed(struct ti_torch_gen *g, uint64_t seed);
/* One 32-bit engine draw (generator.random()). */
uint32_t ti_torch_gen_random(struct ti_torch_gen *g);
/* torch.randn(n, generator=g) into out (n floats), continuing g's stream. */
void ti_torch_randn(struct ti_torch_gen *g, float *out, size_t n);
/* torch.rand(n, generator=g): float uniforms in [0, 1). */
void ti_torch_rand(struct ti_torch_gen *g, float *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* TI_TORCH_GEN_H */
