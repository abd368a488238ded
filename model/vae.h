/*
 * vae.h - the first stage: AutoencoderKL "kl-f8" (ldm/modules/diffusionmodules/model.py,
 * sd-arch.md §4): encoder -> quant_conv -> diagonal Gaussian posterior; post_quant_conv ->
 * decoder. Frozen in textual inversion; forward only in practice, but built from autograd ops
 * so gradients are available (tests check them against diffusers).
 *
 *   struct ti_vae v;
 *   TI_TRY(ti_vae_init(&v, &hp, "first_stage_model.", &weights, err));
 *   TI_TRY(ti_vae_encode(ctx, &moments, &v, &img));           // img in [-1, 1], (B, 3, H, W)
 *   TI_TRY(ti_vae_sample(ctx, &z, &v, &moments, &noise));     // mean + std * noise
 *   TI_TRY(ti_vae_decode(ctx, &img2, &v, &z));                // z unscaled (B, embed, h, w)
 * The latent scale factor (0.18215) belongs to the diffusion model, not to the VAE.
 */
#ifndef TI_VAE_H
#define TI_VAE_H

#include "blocks.h"

#define TI_VAE_MAX_LEVELS 8
#define TI_VAE_MAX_RES    4

struct ti_vae_hparams {
    int in_channels, out_ch, ch;
    int n_levels;
    int ch_mult[TI_VAE_MAX_LEVELS];
    int num_res_blocks;
    int z_channels, double_z, embed_dim;
    int resolution; /* input resolution; attention levels derive from it */
    int n_attn;
    int attn_resolutions[TI_VAE_MAX_LEVELS];
};

/* kl-f8 as in every SD v1 / LDM-1.4B config. */
void ti_vae_hparams_kl_f8(struct ti_vae_hparams *hp);

struct ti_vae_attn { /* AttnBlock: GN, 1x1 q/k/v/proj_out, single head */
    int channels;
    struct ti_tensor norm_w, norm_b;
    struct ti_conv q, k, v, proj_out;
};

struct ti_vae_level {
    struct ti_resblock res[TI_VAE_MAX_RES + 1];
    struct ti_vae_attn attn[TI_VAE_MAX_RES + 1];
    int n_res, n_attn;
    int has_resample;
    struct ti_conv resample;
};

struct ti_vae {
    struct ti_vae_hparams hp;
    /* encoder */
    struct ti_conv enc_conv_in;
    struct ti_vae_level down[TI_VAE_MAX_LEVELS];
    struct ti_resblock enc_mid1, enc_mid2;
    struct ti_vae_attn enc_mid_attn;
    struct ti_tensor enc_norm_w, enc_norm_b;
    struct ti_conv enc_conv_out, quant_conv;
    /* decoder */
    struct ti_conv post_quant_conv, dec_conv_in;
    struct ti_resblock dec_mid1, dec_mid2;
    struct ti_vae_attn dec_mid_attn;
    struct ti_vae_level up[TI_VAE_MAX_LEVELS];
    struct ti_tensor dec_norm_w, dec_norm_b;
    struct ti_conv dec_conv_out;
};

ti_status ti_vae_init(struct ti_vae *v, const struct ti_vae_hparams *hp, const char *prefix,
                      struct ti_weights *w, struct ti_err *err);
void ti_vae_free(struct ti_vae *v);

/* img (B, in_channels, H, W), H and W multiples of 2^(levels-1) -> moments
 * (B, 2*embed_dim, H/f, W/f): [mean | logvar] after quant_conv. */
ti_status ti_vae_encode(struct ti_ctx *ctx, struct ti_tensor *moments, const struct ti_vae *v,
                        const struct ti_tensor *img);
/* posterior sample: mean + exp(0.5 * clamp(logvar, -30, 20)) * noise; noise (B, embed, h, w).
 * noise NULL gives the mode (mean). */
ti_status ti_vae_sample(struct ti_ctx *ctx, struct ti_tensor *z, const struct ti_vae *v,
                        const struct ti_tensor *moments, const struct ti_tensor *noise);
/* z (B, embed_dim, h, w), unscaled -> image (B, out_ch, f*h, f*w) (no clamp) */
ti_status ti_vae_decode(struct ti_ctx *ctx, struct ti_tensor *img, const struct ti_vae *v,
                        const struct ti_tensor *z);

#endif /* TI_VAE_H */
