/*
 * unet.h - the latent-diffusion UNet of SD v1 and LDM text2img-large (openaimodel.UNetModel
 * with SpatialTransformers), forward and backward through autograd ops.
 *
 *   struct ti_unet u;
 *   TI_TRY(ti_unet_init(&u, &hp, "model.diffusion_model.", &weights, err));
 *   ... ti_weights_alloc / ti_weights_load ...
 *   TI_TRY(ti_unet_forward(ctx, &eps, &u, &x_t, &t, &context));   // (B, 4, h, w)
 *   ti_unet_free(&u);
 *
 * Block layout and key names follow sd-arch.md §3.5: input_blocks.N.M, middle_block.M,
 * output_blocks.N.M, time_embed.{0,2}, out.{0,2}; skip connections concatenate [h, skip].
 * Hyperparameters (struct ti_unet_hparams) come from the config (model/config.h) and are
 * checked against the weight shapes when loading (weights.h).
 */
#ifndef TI_UNET_H
#define TI_UNET_H

#include "blocks.h"

#define TI_UNET_MAX_LEVELS 8
#define TI_UNET_MAX_BLOCKS 64

struct ti_unet_hparams {
    int in_channels, out_channels, model_channels;
    int num_res_blocks;
    int n_levels;
    int channel_mult[TI_UNET_MAX_LEVELS];
    int n_attention; /* attention at these downsample factors */
    int attention_resolutions[TI_UNET_MAX_LEVELS];
    int num_heads;         /* -1 when num_head_channels is used */
    int num_head_channels; /* -1 when unset */
    int transformer_depth;
    int context_dim;
    int legacy;
    int use_checkpoint; /* recompute ResBlocks and transformers in backward */
};

/* The SD v1 UNet (v1-inference.yaml): 320 channels, mult 1,2,4,4, attention at 4,2,1. */
void ti_unet_hparams_sd_v1(struct ti_unet_hparams *hp);

enum ti_unet_layer_kind { TI_UNET_CONV_IN, TI_UNET_RES, TI_UNET_ATTN, TI_UNET_DOWN, TI_UNET_UP };

struct ti_unet_layer {
    enum ti_unet_layer_kind kind;
    struct ti_resblock res;
    struct ti_spatial_transformer attn;
    struct ti_conv conv; /* CONV_IN, DOWN, UP */
};

struct ti_unet_block {
    int n;
    struct ti_unet_layer layers[3];
    int out_channels;
};

struct ti_unet {
    struct ti_unet_hparams hp;
    int time_dim;
    struct ti_tensor time0_w, time0_b, time2_w, time2_b;
    int n_input, n_output;
    struct ti_unet_block input[TI_UNET_MAX_BLOCKS], middle, output[TI_UNET_MAX_BLOCKS];
    struct ti_tensor out_norm_w, out_norm_b;
    struct ti_conv out_conv;
};

/* Registers every parameter (prefix + checkpoint key) in w. Errors name the bad hparam. */
ti_status ti_unet_init(struct ti_unet *u, const struct ti_unet_hparams *hp, const char *prefix,
                       struct ti_weights *w, struct ti_err *err);
void ti_unet_free(struct ti_unet *u);

/* x (B, in, H, W) with H, W multiples of 2^(levels-1); t (B) timesteps as floats (f32
 * recommended whatever the network dtype: the sinusoid is computed in t's dtype, then cast);
 * context (B, T, context_dim) -> out (B, out, H, W) in the weights' dtype. The residual stream
 * (block outputs and skip connections) is kept in x's dtype: an f32 x with bf16 weights runs
 * every convolution, norm, matmul and attention in bf16 and the residual sums in f32
 * (blocks.h). */
ti_status ti_unet_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_unet *u,
                          const struct ti_tensor *x, const struct ti_tensor *t,
                          const struct ti_tensor *context);

#endif /* TI_UNET_H */
