/*
 * pretrain.h - training a whole tiny latent-diffusion model from scratch (ti-pretrain): every
 * weight trainable, on the CPU, deterministic from a seed.
 *
 * What it is: the recipe behind ti's shipped demo model (models/tiny-sd/, docs/DEMO.md).
 *   stage 1  the kl-f8 AutoencoderKL alone: loss = mean((decode(z) - x)^2)
 *            + kl_weight * mean over latent elements of 0.5 (mu^2 + var - 1 - logvar),
 *            z = mu + exp(logvar / 2) eps (the posterior sample, eps from the caller)
 *   stage 2  the text encoder and the UNet jointly, the VAE frozen: z = scale_factor * posterior
 *            sample, t uniform in [0, T), x_t = sqrt(ab_t) z + sqrt(1 - ab_t) noise (the config's
 *            schedule, train/schedule.h), loss = mean((unet(x_t, t, text(c)) - noise)^2), with
 *            captions replaced by "" at the caller's choice (classifier-free guidance).
 * The token-embedding table cannot carry a gradient slot (the embedding op keeps tables frozen by
 * contract), so stage 2 feeds every token through the op's trainable-rows path: ids become
 * -1 - id and the rows are the table itself, watched. The position embedding is read through a
 * view that drops gradients, so it keeps its initial values (a fixed random code: it still tells
 * positions apart). Everything else in the two networks is trained.
 *
 * Randomness comes from the caller (ti_pretrain_*_step take eps, noise, timesteps), so the tool
 * owns one generator and a run is a pure function of its seed.
 *
 *   struct ti_wopt o;
 *   TI_TRY(ti_wopt_init(&o, &m.vae_w, &adam, err));
 *   for (...) TI_TRY(ti_pretrain_vae_step(&ctx, &m, &o, images, eps, B, kl_w, &loss, err));
 *
 * Not here: the data (data/shapes.h), sampling (sampler.h), files (ldm.h's ti_ldm_save).
 */
#ifndef TI_PRETRAIN_H
#define TI_PRETRAIN_H

#include <stdint.h>

#include "context.h"
#include "ldm.h"
#include "schedule.h"
#include "tokenizer.h"

/* torch.optim.AdamW hyperparameters. */
struct ti_adamw_hp {
    double lr, beta1, beta2, eps, weight_decay;
};

/* AdamW over every parameter of one weight table (CPU, f32). Gradients, first and second
 * moments live in host arrays parallel to the parameters. ti_wopt_skip marks parameters the
 * generic watch leaves out: the token table (its gradient comes through the rows path) and the
 * position table (no gradient reaches it); skipped parameters are not updated by the step
 * unless `update_skipped` is set (the token table's gradient is filled by the caller). */
struct ti_wopt {
    struct ti_weights *w;
    struct ti_adamw_hp hp;
    size_t n;                /* parameters in all */
    float *grad, *m, *v;     /* n each */
    size_t *offset;          /* per weight: offset into the arrays */
    struct ti_tensor *gview; /* per weight: gradient view */
    unsigned char *skip;     /* per weight: 1 = not watched; 2 = not watched, not updated */
    int64_t step;
};

ti_status ti_wopt_init(struct ti_wopt *o, struct ti_weights *w, const struct ti_adamw_hp *hp,
                       struct ti_err *err);
/* Leaves the parameter whose slot is `slot` out of the watch; update: whether the step still
 * updates it (from a gradient the caller provides through ti_wopt_grad_view). */
void ti_wopt_skip(struct ti_wopt *o, const struct ti_tensor *slot, int update);
/* The gradient view of the parameter whose slot is `slot` (none() when absent). */
struct ti_tensor ti_wopt_grad_view(const struct ti_wopt *o, const struct ti_tensor *slot);
void ti_wopt_free(struct ti_wopt *o);
/* Gives every parameter (but the skipped one) a gradient slot on ctx's tape. */
ti_status ti_wopt_watch(struct ti_wopt *o, struct ti_ctx *ctx);
/* Clears the parameters' slot ids (after backward: the tape has forgotten them). */
void ti_wopt_unwatch(struct ti_wopt *o);
/* One AdamW step (torch's order of operations, f32) with lr, then zeroes the gradients. */
void ti_wopt_step(struct ti_wopt *o, double lr);

/* Stage 1: one step of the autoencoder on images (B, 3, S, S) in [-1, 1] with eps (B, embed_dim,
 * S/f, S/f). Runs forward, backward and the optimizer step. rec and kl (may be NULL) receive the
 * two terms before weighting. */
ti_status ti_pretrain_vae_step(struct ti_ctx *ctx, struct ti_ldm *m, struct ti_wopt *o,
                               const float *images, const float *eps, int B, double kl_weight,
                               double lr, double *rec, double *kl, struct ti_err *err);

/* The first stage's latents for images (B, 3, S, S): scale * (mu + exp(logvar / 2) eps) into z
 * (B * embed_dim * h * w floats, host); eps NULL gives scale * mu. No gradients. */
ti_status ti_pretrain_latents(struct ti_ctx *ctx, const struct ti_ldm *m, const float *images,
                              const float *eps, int B, double scale, float *z, struct ti_err *err);

/* The first stage's moments [mean | logvar] (B, 2 * embed_dim, h, w) for images (B, 3, S, S)
 * into mom (host floats). No gradients. Stage 2 encodes its data set once and draws posterior
 * samples from the moments: z = scale * (mean + exp(clamp(logvar, -30, 20) / 2) eps). */
ti_status ti_pretrain_moments(struct ti_ctx *ctx, const struct ti_ldm *m, const float *images,
                              int B, float *mom, struct ti_err *err);

/* Stage 2: one step of text encoder + UNet. z (B, C, h, w) latents (already scaled), noise like
 * z, t[b] in [0, T), ids (B, 77) token ids (plain, >= 0). to (text) and uo (UNet) are the two
 * optimizers (to skips the token table: its gradient arrives through the rows path). */
ti_status ti_pretrain_ldm_step(struct ti_ctx *ctx, struct ti_ldm *m, struct ti_wopt *to,
                               struct ti_wopt *uo, const struct ti_schedule *s, const float *z,
                               const float *noise, const int *t, const int32_t *ids, int B,
                               double lr, double *loss, struct ti_err *err);

/* The stage-2 loss alone (no gradients, no update): the same q_sample, text encoder and UNet
 * as ti_pretrain_ldm_step. For measuring how much the captions help (true against shuffled). */
ti_status ti_pretrain_eps_loss(struct ti_ctx *ctx, const struct ti_ldm *m,
                               const struct ti_schedule *s, const float *z, const float *noise,
                               const int *t, const int32_t *ids, int B, double *loss,
                               struct ti_err *err);

/* Text conditioning (B, 77, width) for prompts, no gradients (sampling after training). */
ti_status ti_pretrain_encode(struct ti_ctx *ctx, const struct ti_ldm *m,
                             const struct ti_tokenizer *tok, const char *const *prompts, int B,
                             struct ti_tensor *out, struct ti_err *err);

#endif /* TI_PRETRAIN_H */
