/*
 * trainer.h - one textual-inversion training run as the peer's LatentDiffusion does it
 * (ti-peer.md §5): the frozen model, the embedding manager's rows as the only trainable tensor,
 * the eps-prediction loss, gradient accumulation and AdamW, and a state file for --resume.
 *
 *   struct ti_trainer_opts o = {.cfg = cfg, .ckpt_path = "sd-v1-4.ckpt", .be = ti_backend_cpu(),
 *                               .dtype = TI_DTYPE_F32, .seed = 23,
 *                               .lr = ti_config_learning_rate(cfg, 1)};
 *   struct ti_trainer *t;
 *   TI_TRY(ti_trainer_open(&t, &o, err));
 *   for (step ...) {
 *       for (a = 0; a < accumulate_grad_batches; a++)
 *           TI_TRY(ti_trainer_forward_backward(t, images, captions, B, &loss, err));
 *       TI_TRY(ti_trainer_optimizer_step(t, err));
 *   }
 *   TI_TRY(ti_trainer_save_state(t, "logs/.../trainer_state.bin", err));
 *   ti_trainer_close(t);
 *
 * Images are (B, 3, S, S) with S = the config's pixel size (model.params.image_size times the
 * first stage's downsample factor: 512 for SD v1, 256 for LDM).
 *
 * One micro-batch (ti_trainer_forward_backward):
 *   1. the VAE encodes the images (frozen, not recorded), posterior sample with logvar clamped to
 *      [-30, 20]: z = scale_factor * (mean + exp(logvar/2) * eps);
 *   2. t ~ U{0..T-1} per image, noise ~ N(0, I), x_t = sqrt(ab_t) z + sqrt(1 - ab_t) noise
 *      (ab from betas = linspace(sqrt(linear_start), sqrt(linear_end), T)^2 in f64, the
 *      coefficients rounded to f32 as the peer's buffers are);
 *   3. the captions through the embedding manager (one encoder call) and the text encoder, the
 *      UNet on (x_t, t, context), loss = mean((noise - eps_hat)^2) (the peer's mean over C, H, W
 *      then over the batch, equal for equal-sized images), plus embedding_reg_weight times the
 *      coarse regulariser when it is > 0;
 *   4. backward to the rows only (text encoder and UNet are on the tape, every weight frozen);
 *      the gradient is added to the accumulator.
 * ti_trainer_optimizer_step divides the accumulator by the number of micro-batches since the last
 * step (PyTorch Lightning scales each loss by 1/accumulate_grad_batches), then runs torch's AdamW
 * (betas 0.9/0.999, eps 1e-8, weight_decay 0.01; no scheduler, no clipping) on the rows:
 *   p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^s) * m / (sqrt(v) / sqrt(1 - b2^s) + eps)          (f32, as torch computes)
 *
 * unfreeze_model (the peer's pivotal-tuning WIP, v1-finetune_unfrozen.yaml): every UNet and
 * text-encoder weight is trained too, with its own gradient buffer and a second AdamW group at
 * model.params.model_lr (same betas, eps, weight decay). Differences from the peer: the token
 * table stays frozen (its placeholder rows are the trainable part; ti's embedding op refuses a
 * trainable table), f32 weights only, no recomputation. The update runs on the host (weights are
 * downloaded, updated and uploaded once per optimizer step). ti-train must then save the whole
 * model (ti_ldm_save), as the peer keeps full .ckpt files.
 *
 * Randomness: the trainer's own xoshiro256** stream (autograd/rng.h), seeded from opts.seed, draws
 * per micro-batch the posterior eps, then t, then the noise (the peer's order). The numbers are
 * not PyTorch's; ti_trainer_step_explicit takes them from the caller instead (the oracle test).
 * The same seed gives bit-identical rows on the CPU; save_state/load_state continue a run
 * bit-identically (rows, moments, accumulator, step, RNG and the progressive-words counter).
 *
 * Threads: none of its own; one trainer per thread. Not here: data loading, logging, the CLI
 * (ti-train), sampling.
 */
#ifndef TI_TRAINER_H
#define TI_TRAINER_H

#include <stdint.h>

#include "config.h"            /* defines: struct ti_config */
#include "embedding_manager.h" /* defines: struct ti_emb_manager */
#include "ldm.h"               /* defines: struct ti_ldm */
#include "tokenizer.h"         /* defines: struct ti_tokenizer */

#ifdef __cplusplus
extern "C" {
#endif

struct ti_trainer_opts {
    const struct ti_config *cfg; /* copied; personalization, model and schedule settings */
    const char *ckpt_path;       /* the frozen model (.ckpt / .safetensors / diffusers folder) */
    const struct ti_backend *be; /* where the model runs */
    enum ti_dtype dtype;         /* of the frozen UNet's weights and activations; the first
                                  * stage, the text encoder, the rows and the loss run in f32
                                  * when it is bf16 or f16 */
    uint64_t seed;               /* init vectors without an init word, and the trainer's RNG */
    double lr;                   /* as main.py computes it (ti_config_learning_rate) */
    /* additions */
    const char *vocab_dir;  /* tokenizer vocabulary folder; NULL: ti_tokenizer_vocab_dir() */
    int checkpointing;      /* 1: recompute UNet blocks in backward (less memory, ~30% slower) */
    const char *model_name; /* names the model in checkpoint errors ("SD v1"); NULL: derived */
    /* 1: no checkpoint, every weight from ti_ldm_randomize(random_seed) (benchmarks and tests
     * at full size without a 4 GB file); ckpt_path is then ignored and may be NULL */
    int random_weights;
    uint64_t random_seed;
};

struct ti_trainer;

ti_status ti_trainer_open(struct ti_trainer **t, const struct ti_trainer_opts *o,
                          struct ti_err *err);
/* NULL-safe. */
void ti_trainer_close(struct ti_trainer *t);

/* One micro-batch: images (B, 3, H, W) host f32 in [-1, 1], captions (B strings); VAE posterior
 * sample, t ~ U{0..T-1}, q_sample, eps MSE; backward to the placeholder rows; the gradient
 * ACCUMULATES (divided by the accumulation count when the optimizer step comes). *loss (may be
 * NULL) gets the micro-batch loss (regulariser included). */
ti_status ti_trainer_forward_backward(struct ti_trainer *t, const float *images,
                                      const char *const *captions, int batch, double *loss,
                                      struct ti_err *err);
/* The same with the randomness given: timesteps (B) in [0, T), noise and post_eps (B, C, h, w)
 * host f32 (C latent channels, h = H / 8): the diffusion noise and the posterior's N(0, 1)
 * draw. Also returns (may be NULL) the loss without the regulariser in *loss_simple. */
ti_status ti_trainer_step_explicit(struct ti_trainer *t, const float *images,
                                   const char *const *captions, int batch, const int *timesteps,
                                   const float *noise, const float *post_eps, double *loss,
                                   double *loss_simple, struct ti_err *err);
/* The gradient accumulator (n_rows x dim host f32, *n = its element count), for an all-reduce
 * across ranks between the last micro-batch and the optimizer step. */
float *ti_trainer_grad(struct ti_trainer *t, size_t *n);
/* Drops the accumulated gradient and the micro-batch count (a step skipped by the caller, e.g.
 * after a non-finite loss); the next optimizer step sees only later micro-batches. (Added by
 * branch train-tool for ti-train.) */
void ti_trainer_zero_grad(struct ti_trainer *t);
/* AdamW on the rows with the accumulated gradient / micro-batch count, then zero the gradient.
 * With no micro-batch since the last step it does nothing. */
ti_status ti_trainer_optimizer_step(struct ti_trainer *t, struct ti_err *err);
/* unfreeze_model: the accumulated gradient of one trained model weight by checkpoint key
 * (n = its element count), host f32; TI_ERR_NOT_FOUND for a weight that is not trained. */
ti_status ti_trainer_param_grad(struct ti_trainer *t, const char *key, float *out, size_t n,
                                struct ti_err *err);
/* Trained model weights (0 unless unfreeze_model). */
int ti_trainer_n_model_params(const struct ti_trainer *t);
struct ti_emb_manager *ti_trainer_embeddings(struct ti_trainer *t);
struct ti_ldm *ti_trainer_model(struct ti_trainer *t);
const struct ti_tokenizer *ti_trainer_tokenizer(const struct ti_trainer *t);
int64_t ti_trainer_step(const struct ti_trainer *t); /* optimizer steps done */
double ti_trainer_lr(const struct ti_trainer *t);    /* the embedding group's LR now */
/* Multiplies both groups' LR from the next optimizer step on (a schedule, lr_schedule.h). */
void ti_trainer_set_lr_factor(struct ti_trainer *t, double f);
/* The latent shape a (B, 3, H, W) image batch gives: channels and downsample factor. */
void ti_trainer_latent_shape(const struct ti_trainer *t, int *channels, int *factor);
/* The execution context (its arenas, for memory statistics). */
struct ti_ctx *ti_trainer_ctx(struct ti_trainer *t);

/* Everything --resume needs: rows, AdamW moments, the gradient accumulator, step, the trainer's
 * RNG and the progressive-words counter; bit-exact continuation. Little-endian binary file
 * ("TITRAINS", version 1) written to a temporary name and renamed into place. load_state checks
 * that the file's placeholders and shapes are this trainer's. */
ti_status ti_trainer_save_state(const struct ti_trainer *t, const char *path, struct ti_err *err);
ti_status ti_trainer_load_state(struct ti_trainer *t, const char *path, struct ti_err *err);

#ifdef __cplusplus
}
#endif
#endif /* TI_TRAINER_H */
