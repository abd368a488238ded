/*
 * sampler.h - the reference's DDIM and PLMS samplers (ldm/models/diffusion/{ddim,plms}.py,
 * ti-peer.md §5.5) over ti's UNet, with classifier-free guidance, img2img and the VAE decode
 * to 8-bit images. Used by ti-sample and by ti-train's image logs.
 *
 *   struct ti_sampler_opts o = {.steps = 50, .eta = 0.0, .scale = 7.5};
 *   // x: x_T = torch.randn([C, h, w], generator=manual_seed(seed + b)) per image b
 *   TI_TRY(ti_sampler_run(ctx, &m, &sched, &o, &cond, &uncond, &x, gens, NULL, NULL, err));
 *   TI_TRY(ti_sampler_decode_rgb(ctx, &m, cfg.model.scale_factor, &x, rgb, err));
 *
 * Reference arithmetic (float32, in the reference's operation order, on the host: latents are
 * small next to a UNet pass):
 *   e_t   = unet(x, t, c), or with guidance (scale != 1 and an unconditional context): one batch
 *           [uncond; cond] of 2B, e_t = e_u + scale * (e_c - e_u)
 *   DDIM  pred_x0 = (x - sqrt(1 - a_t) e_t) / sqrt(a_t)
 *         x_prev  = sqrt(a_prev) pred_x0 + sqrt(1 - a_prev - sigma^2) e_t + sigma * noise
 *         noise: with eta > 0, torch.randn([C, h, w]) from image b's own generator, each step
 *   PLMS  (eta must be 0) first step: pseudo improved Euler (a second UNet pass at the next
 *         timestep), then Adams-Bashforth of orders 2, 3, 4 over the previous e_t's
 *   img2img: z_enc = sqrt(a[t_enc]) z0 + sqrt(1 - a[t_enc]) noise (ti_sampler_img2img_start),
 *         then DDIM from index t_enc - 1 down to 0 (opts.t_start = t_enc); t_enc >= the number
 *         of DDIM steps (strength 1.0, where the reference fails with an index error) starts from
 *         the noise itself and runs every step.
 * Not here: text encoding, the initial noise (torch_gen.h), image files.
 */
#ifndef TI_SAMPLER_H
#define TI_SAMPLER_H

#include <signal.h> /* defines: sig_atomic_t */
#include <stdint.h>

#include "context.h"
#include "ldm.h"
#include "schedule.h"
#include "torch_gen.h"

struct ti_sampler_opts {
    int steps;    /* requested DDIM steps (the reference may take one more, schedule.h) */
    double eta;   /* DDIM eta (0: deterministic); PLMS requires 0 */
    int plms;     /* 1: PLMS instead of DDIM */
    double scale; /* classifier-free guidance scale; 1: no unconditional pass */
    int t_start;  /* 0: txt2img; > 0: img2img, x holds z_enc at DDIM index t_start */
    /* optional: every intermediate (host, B*C*h*w floats each) after step i (0-based) */
    void (*on_latent)(void *user, int step, const float *x, const float *pred_x0);
    void *latent_user;
    /* optional: when *cancel is non-zero before a step, stop with TI_ERR_CANCELLED (Ctrl-C) */
    const volatile sig_atomic_t *cancel;
};

/* x (B, C, h, w) f32, any device: in x_T (or z_enc), out the sampled latent x_0.
 * cond, uncond (B, T, D) in the UNet's dtype; uncond NULL or scale == 1: no guidance.
 * gens[b]: image b's generator (eta noise; may be NULL when eta == 0).
 * cb(user, step, steps) after each step (may be NULL). */
ti_status ti_sampler_run(struct ti_ctx *ctx, const struct ti_ldm *m, const struct ti_schedule *s,
                         const struct ti_sampler_opts *o, const struct ti_tensor *cond,
                         const struct ti_tensor *uncond, struct ti_tensor *x,
                         struct ti_torch_gen *gens, void (*cb)(void *user, int step, int steps),
                         void *user, struct ti_err *err);

/* The number of sampling steps ti_sampler_run will take (progress bars), or -1 (the error names
 * the step count). */
int ti_sampler_n_steps(const struct ti_schedule *s, const struct ti_sampler_opts *o,
                       struct ti_err *err);

/* img2img's DDIM index for a strength in [0, 1]: int(strength * steps) as the reference. */
int ti_sampler_img2img_t_enc(double strength, int steps);
/* stochastic_encode: out = sqrt(a[t_enc]) * z0 + sqrt(1 - a[t_enc]) * noise, n floats (host);
 * t_enc >= d->n: out = noise. Returns the t_start to pass to ti_sampler_run. */
int ti_sampler_img2img_start(const struct ti_ddim_schedule *d, int t_enc, const float *z0,
                             const float *noise, float *out, size_t n);

/* img2img's init latents as scripts/img2img.py: rgb (H, W, 3 bytes) -> px / 255, 2x - 1 (float32),
 * VAE encode, posterior sample mean + std * noise with noise = torch.randn([C, H/f, W/f]) from
 * gens[b] (the first draw of each image's generator), times scale_factor; the same image for each
 * of the B images. z0: B * C * (H/f) * (W/f) floats (host). */
ti_status ti_sampler_encode_init(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                 const uint8_t *rgb, int H, int W, int B, struct ti_torch_gen *gens,
                                 float *z0, struct ti_err *err);

/* latent (B, C, h, w) -> chw (B, 3, H, W) floats (caller's buffer, H = h * f): the VAE decoder's
 * output for z / scale_factor, before any clamp (the safety checker's input is made from it). */
ti_status ti_sampler_decode_f32(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                const struct ti_tensor *z, float *chw, struct ti_err *err);
/* latent (B, C, h, w) -> B RGB8 images (B * H * W * 3 bytes, interleaved, rows top to bottom):
 * the VAE decode of z / scale_factor, then clamp((x + 1) / 2, 0, 1) * 255 truncated, as the
 * reference scripts. Images are decoded one at a time (same result as a batch). */
ti_status ti_sampler_decode_rgb(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                                const struct ti_tensor *z, uint8_t *rgb, struct ti_err *err);
#ifdef TI_HAVE_DATA
#include "image.h" /* defines: struct ti_image */
/* The same into B images (out[b] allocated here; the caller frees each with ti_image_free). */
ti_status ti_sampler_decode(struct ti_ctx *ctx, const struct ti_ldm *m, double scale_factor,
                            const struct ti_tensor *z, struct ti_image *out, struct ti_err *err);
#endif
/* The reference's float -> 8-bit step alone: chw (3, H, W) in [-1, 1] -> rgb (H, W, 3). */
void ti_sampler_to_rgb(const float *chw, int H, int W, uint8_t *rgb);

#endif /* TI_SAMPLER_H */
