/*
 * ldm.h - a whole latent-diffusion model as the peer's LatentDiffusion config describes it:
 * the UNet, the first-stage AutoencoderKL and the conditioning text encoder (CLIP for SD v1,
 * the BERT embedder for LDM text2img-large), each with its own parameter table and arena,
 * under the checkpoint prefixes model.diffusion_model., first_stage_model. and
 * cond_stage_model.transformer.[text_model.].
 *
 *   struct ti_ldm m;
 *   TI_TRY(ti_ldm_init(&m, cfg, err));                        // hyperparameters from the config
 *   TI_TRY(ti_ldm_alloc(&m, be, TI_DTYPE_F32, err));
 *   TI_TRY(ti_ldm_load(&m, &source, err));                    // or ti_ldm_randomize
 *   ... ti_unet_forward(ctx, &eps, &m.unet, ...) ...
 *   ti_ldm_free(&m);
 *
 * Not here: the diffusion schedule, samplers and training (they use these networks).
 */
#ifndef TI_LDM_H
#define TI_LDM_H

#include "ckpt.h"
#include "config.h"
#include "text_encoder.h"
#include "unet.h"
#include "vae.h"

#define TI_LDM_PREFIX_UNET "model.diffusion_model."
#define TI_LDM_PREFIX_VAE  "first_stage_model."
#define TI_LDM_PREFIX_CLIP "cond_stage_model.transformer.text_model."
#define TI_LDM_PREFIX_BERT "cond_stage_model.transformer."

/* The diffusion schedule's buffers as a checkpoint may store them (lightning checkpoints of the
 * reference's LatentDiffusion do: register_schedule's float32 buffers). The reference loads them
 * with load_state_dict(strict=False) over the ones its config computed, so its samplers and
 * q_sample use the file's values: the same numbers for a float32 file of the same schedule,
 * float16-rounded ones for a half-precision export. ti_ldm_load_file reads them here; the
 * schedule's users (train/schedule.h ti_schedule_use_file, the trainer) decide. */
#define TI_LDM_MAX_T 1000
enum {
    TI_LDM_BUF_ALPHAS_CUMPROD = 1u,
    TI_LDM_BUF_SQRT_ALPHAS_CUMPROD = 2u,
    TI_LDM_BUF_SQRT_ONE_MINUS_ALPHAS_CUMPROD = 4u
};
struct ti_ldm_file_schedule {
    unsigned have; /* TI_LDM_BUF_* bits: which were found, 1-D, float, finite, in [0, 1] */
    int T;         /* their common length (a buffer of another length is left out) */
    float alphas_cumprod[TI_LDM_MAX_T];
    float sqrt_alphas_cumprod[TI_LDM_MAX_T];
    float sqrt_one_minus_alphas_cumprod[TI_LDM_MAX_T];
};

struct ti_ldm {
    struct ti_unet_hparams unet_hp;
    struct ti_vae_hparams vae_hp;
    struct ti_text_hparams text_hp;
    int text_is_clip;
    struct ti_unet unet;
    struct ti_vae vae;
    struct ti_text_encoder text;
    struct ti_weights unet_w, vae_w, text_w;
    struct ti_ldm_file_schedule file_sched; /* filled by ti_ldm_load_file */
};

/* Network hyperparameters from a loaded config (errors name the config key). */
ti_status ti_ldm_hparams(struct ti_unet_hparams *unet, struct ti_vae_hparams *vae,
                         struct ti_text_hparams *text, int *text_is_clip,
                         const struct ti_config *cfg, struct ti_err *err);

/* Builds the three networks' parameter tables. */
ti_status ti_ldm_init(struct ti_ldm *m, const struct ti_config *cfg, struct ti_err *err);
/* Allocates every parameter on `be` in dtype dt (one arena per network). */
ti_status ti_ldm_alloc(struct ti_ldm *m, const struct ti_backend *be, enum ti_dtype dt,
                       struct ti_err *err);
ti_status ti_ldm_load(struct ti_ldm *m, const struct ti_weight_source *src, struct ti_err *err);
ti_status ti_ldm_randomize(struct ti_ldm *m, uint64_t seed, struct ti_err *err);
/* Opens a checkpoint (.ckpt / .safetensors / diffusers folder; opts may be NULL), reads the
 * schedule buffers it holds into m->file_sched, checks every key and shape the three networks
 * need (a mismatch names the key, both shapes and the likely
 * cause: an SD 2.x, SDXL or LDM file for an SD v1 config, ...; `model` names the config in
 * messages, e.g. "SD v1"), streams and copies the weights, and closes the file. */
ti_status ti_ldm_load_file(struct ti_ldm *m, const char *path,
                           const struct ti_state_dict_opts *opts, const char *model,
                           struct ti_err *err);
/* Writes every parameter of the three networks (CPU backend) to a .safetensors file under the
 * checkpoint key names, so ti_state_dict_open / ti_ldm_load read it back: test models, the
 * shipped tiny model. Written through a temporary file renamed into place. */
ti_status ti_ldm_save(const struct ti_ldm *m, const char *path, struct ti_err *err);
/* ti_ldm_save with the networks named in f16_tables (TI_LDM_UNET | TI_LDM_VAE | TI_LDM_TEXT)
 * written in float16 (rounded to nearest; every loader converts back to the run's dtype), the
 * others as they are: the shipped tiny models keep their autoencoder exact and halve the rest. */
enum { TI_LDM_UNET = 1u, TI_LDM_VAE = 2u, TI_LDM_TEXT = 4u };
ti_status ti_ldm_save_as(const struct ti_ldm *m, const char *path, unsigned f16_tables,
                         struct ti_err *err);
void ti_ldm_free(struct ti_ldm *m);

#endif /* TI_LDM_H */
