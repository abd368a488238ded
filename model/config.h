/*
 * config.h - the peer's LDM-style YAML configs (v1-finetune.yaml, txt2img-1p4B-finetune.yaml,
 * ...) as typed structs: every value the peer's code would use, with the peer's defaults for
 * absent keys, `target:` class paths mapped to ti's modules, values validated, derived sizes
 * computed, and unknown keys collected as warnings.
 *
 *   struct ti_config *cfg = malloc(sizeof *cfg);          (about 22 KB: no pointers inside)
 *   const char *files[] = {"configs/stable-diffusion/v1-finetune.yaml"};
 *   const char *over[] = {"lightning.trainer.max_steps=100"};
 *   if (ti_config_load(cfg, files, 1, over, 1, &err) != TI_OK) { print err.msg; exit 1 }
 *   for (int k = 0; k < cfg->n_warnings; k++) fprintf(stderr, "warning: %s\n",
 * cfg->warnings[k].msg); cfg->unet.model_channels == 320, cfg->unet.level_heads[1] == 8,
 * cfg->latent_size == 64 ...
 *
 * What it is: the reading of the files and keys listed in configs/README.md (the meaning,
 * default and origin of every key is documented there, not repeated here). Values are taken
 * as the peer (PyYAML + OmegaConf 2.1.1) would receive them; a value the peer would accept but
 * ti cannot honour is an error that says so (e.g. use_scale_shift_norm: true), a key that
 * changes nothing is accepted silently, a key the peer does not know either is a warning.
 *
 * What it is not: the YAML reader (yaml_tree.h), the networks, or checking weights. The
 * networks take their widths from here and compare them with the checkpoint's shapes.
 *
 * Errors name the file, line and column, the key path, the value found and what was
 * expected: "configs/x.yaml:42:20: model.params.unet_config.params.num_heads: expected an
 * integer, found string 'eight'".
 */
#ifndef TI_CONFIG_H
#define TI_CONFIG_H

#include "status.h"    /* defines: ti_status, struct ti_err */
#include "yaml_tree.h" /* defines: struct ti_yaml_node, struct ti_yaml_doc */

#ifdef __cplusplus
extern "C" {
#endif

#define TI_CFG_MAX_LEVELS   8    /* entries of channel_mult / ch_mult */
#define TI_CFG_MAX_ATTN     8    /* entries of attention_resolutions / attn_resolutions */
#define TI_CFG_MAX_WORDS    32   /* placeholder strings, initializer words */
#define TI_CFG_WORD_MAX     64   /* bytes of one placeholder / word, with the NUL */
#define TI_CFG_NAME_MAX     128  /* bytes of a name (HF version, dataset key) */
#define TI_CFG_PATH_MAX     1024 /* bytes of a path */
#define TI_CFG_MAX_WARNINGS 32   /* warnings kept (later ones are counted only) */
#define TI_CFG_WARNING_MAX  400  /* bytes of one warning */

/* The classes a `target:` may name. The first group are ti's modules; the second are classes of
 * the peer that ti recognises but does not implement (naming them where ti needs a module of
 * its own is an error that says so). */
enum ti_target {
    TI_TARGET_NONE = 0,
    TI_TARGET_LATENT_DIFFUSION,    /* ldm.models.diffusion.ddpm.LatentDiffusion */
    TI_TARGET_UNET,                /* ldm.modules.diffusionmodules.openaimodel.UNetModel */
    TI_TARGET_AUTOENCODER_KL,      /* ldm.models.autoencoder.AutoencoderKL */
    TI_TARGET_CLIP_EMBEDDER,       /* ldm.modules.encoders.modules.FrozenCLIPEmbedder */
    TI_TARGET_BERT_EMBEDDER,       /* ldm.modules.encoders.modules.BERTEmbedder */
    TI_TARGET_EMBEDDING_MANAGER,   /* ldm.modules.embedding_manager.EmbeddingManager */
    TI_TARGET_PERSONALIZED_OBJECT, /* ldm.data.personalized.PersonalizedBase */
    TI_TARGET_PERSONALIZED_STYLE,  /* ldm.data.personalized_style.PersonalizedBase */
    TI_TARGET_DATA_MODULE,         /* main.DataModuleFromConfig */
    TI_TARGET_IMAGE_LOGGER,        /* main.ImageLogger */
    TI_TARGET_MODEL_CHECKPOINT,    /* pytorch_lightning.callbacks.ModelCheckpoint */
    TI_TARGET_IDENTITY,            /* torch.nn.Identity (the autoencoder's lossconfig) */
    TI_TARGET_LPIPS_DISCRIMINATOR, /* ldm.modules.losses.LPIPSWithDiscriminator (AE training) */
    TI_TARGET_VQ_MODEL_INTERFACE,  /* ldm.models.autoencoder.VQModelInterface: not in ti */
    TI_TARGET_CLASS_EMBEDDER,      /* ldm.modules.encoders.modules.ClassEmbedder: not in ti */
    TI_TARGET_LAMBDA_LINEAR_SCHED, /* ldm.lr_scheduler.LambdaLinearScheduler: no effect */
    TI_TARGET_COUNT
};

/* The class path of a target ("ldm.models.autoencoder.AutoencoderKL"); "" for NONE. */
const char *ti_target_name(enum ti_target t);
/* The target a class path names; TI_TARGET_NONE when unknown. */
enum ti_target ti_target_lookup(const char *class_path);

/* model.params (LatentDiffusion and its base DDPM). */
struct ti_cfg_diffusion {
    double base_learning_rate; /* model.base_learning_rate */
    int has_base_learning_rate;
    double linear_start, linear_end; /* beta schedule "linear": (linspace(sqrt a, sqrt b, T))^2 */
    int timesteps;
    int num_timesteps_cond;
    int image_size; /* latent side (the UNet runs at image_size x image_size) */
    int channels;   /* latent channels */
    char first_stage_key[TI_CFG_NAME_MAX]; /* batch key of the image ("image") */
    char cond_stage_key[TI_CFG_NAME_MAX];  /* batch key of the caption ("caption") */
    int cond_stage_trainable;
    double scale_factor; /* z_diffusion = scale_factor * z_vae */
    int use_ema;
    double embedding_reg_weight;
    int unfreeze_model;
    double model_lr;
    double l_simple_weight, original_elbo_weight, v_posterior, logvar_init;
    /* Validated to the only values ti implements: beta_schedule "linear", parameterization
     * "eps", loss_type "l2", conditioning_key "crossattn", scale_by_std false. */
};

/* model.params.unet_config.params (UNetModel with SpatialTransformer attention). */
struct ti_cfg_unet {
    int image_size; /* written by the configs, unused by the network */
    int in_channels, out_channels, model_channels, num_res_blocks;
    int n_attention_resolutions;
    int attention_resolutions[TI_CFG_MAX_ATTN]; /* downsample factors ds, not pixel sizes */
    int n_levels;                               /* len(channel_mult) */
    int channel_mult[TI_CFG_MAX_LEVELS];
    int num_heads;         /* -1: unset (then num_head_channels decides) */
    int num_head_channels; /* -1: unset */
    int transformer_depth;
    int context_dim; /* cross-attention context width (the text encoder's width) */
    int use_spatial_transformer, use_checkpoint, legacy;
    double dropout; /* inactive: the frozen UNet runs in eval mode */

    /* derived (openaimodel.py semantics; sd-arch §1.1, §1.3) */
    int time_embed_dim;                        /* 4 * model_channels */
    int level_channels[TI_CFG_MAX_LEVELS];     /* model_channels * channel_mult[l] */
    int level_ds[TI_CFG_MAX_LEVELS];           /* downsample factor of level l: 2^l */
    int level_attention[TI_CFG_MAX_LEVELS];    /* 1 when level_ds[l] is in attention_resolutions */
    int level_heads[TI_CFG_MAX_LEVELS];        /* attention heads at level l (0: no attention) */
    int level_head_dim[TI_CFG_MAX_LEVELS];     /* head width at level l (0: no attention) */
    int mid_channels, mid_heads, mid_head_dim; /* the middle block (always has attention) */
    int downsample;      /* 2^(n_levels-1): the latent side must be a multiple of it */
    int n_input_blocks;  /* 1 + n_levels*num_res_blocks + (n_levels-1) */
    int n_output_blocks; /* n_levels * (num_res_blocks+1) */
};

/* model.params.first_stage_config.params (AutoencoderKL and its ddconfig). */
struct ti_cfg_vae {
    int embed_dim; /* latent channels after quant_conv */
    int double_z, z_channels, resolution, in_channels, out_ch, ch, num_res_blocks;
    int n_levels; /* len(ch_mult) */
    int ch_mult[TI_CFG_MAX_LEVELS];
    int n_attn_resolutions;
    int attn_resolutions[TI_CFG_MAX_ATTN]; /* pixel resolutions (not factors) */
    double dropout;                        /* inactive: the VAE is frozen */

    /* derived */
    int downsample;                         /* 2^(n_levels-1): 8 for kl-f8 */
    int level_channels[TI_CFG_MAX_LEVELS];  /* ch * ch_mult[l] */
    int level_attention[TI_CFG_MAX_LEVELS]; /* 1 when resolution >> l is in attn_resolutions */
    int mid_channels;                       /* ch * ch_mult[last] */
};

enum ti_text_kind { TI_TEXT_CLIP = 1, TI_TEXT_BERT = 2 };

/* model.params.cond_stage_config, normalised over both encoders. */
struct ti_cfg_text {
    enum ti_target target;
    enum ti_text_kind kind;
    int width;         /* CLIP hidden_size (768) | BERT n_embed (1280): the token/context dim */
    int layers;        /* CLIP num_hidden_layers (12) | BERT n_layer (32) */
    int heads;         /* CLIP num_attention_heads (12) | BERT heads (8, ti extension) */
    int head_dim;      /* CLIP width/heads (64) | BERT dim_head (64, ti extension) */
    int ff_dim;        /* CLIP intermediate_size (3072) | BERT 4*n_embed */
    int vocab_size;    /* CLIP 49408 | BERT 30522 */
    int max_positions; /* position-embedding rows: CLIP max_position_embeddings | BERT max_seq_len
                        */
    int max_length;    /* tokens per prompt: CLIP max_length | BERT max_seq_len (77) */
    char version[TI_CFG_NAME_MAX]; /* CLIP: HF model name ("openai/clip-vit-large-patch14") */
    double embedding_dropout;      /* BERT, inactive (eval mode) */
};

/* model.params.personalization_config.params (EmbeddingManager). */
struct ti_cfg_personalization {
    int present; /* 0 for configs without an EmbeddingManager (the CompVis originals) */
    int n_placeholders;
    char placeholder_strings[TI_CFG_MAX_WORDS][TI_CFG_WORD_MAX];
    int n_initializer_words;
    char initializer_words[TI_CFG_MAX_WORDS][TI_CFG_WORD_MAX];
    int per_image_tokens; /* the peer then appends 22 Hebrew letters as placeholders */
    int num_vectors_per_token;
    int progressive_words;
    char embedding_manager_ckpt[TI_CFG_PATH_MAX]; /* "" = none */
};

enum ti_interp { TI_INTERP_BILINEAR, TI_INTERP_BICUBIC, TI_INTERP_LANCZOS };
enum ti_templates { TI_TEMPLATES_OBJECT, TI_TEMPLATES_STYLE };

/* data.params.train / .validation (PersonalizedBase). */
struct ti_cfg_dataset {
    int present;
    enum ti_target target;
    enum ti_templates templates;     /* object (personalized.py) or style (personalized_style.py) */
    char data_root[TI_CFG_PATH_MAX]; /* main.py injects --data_root; "" until then */
    int size;                        /* square resize side; 0 = no resize (size: null) */
    int repeats;                     /* train set length = images * repeats */
    int is_train;                    /* set == "train" (only then do repeats apply) */
    enum ti_interp interpolation;    /* "linear" and "bilinear" are both bilinear */
    double flip_p;
    char placeholder_token[TI_CFG_WORD_MAX];
    int per_image_tokens, center_crop;
    double mixing_prob;                      /* object templates only */
    char coarse_class_text[TI_CFG_WORD_MAX]; /* object templates only; "" = None */
};

/* data (DataModuleFromConfig). */
struct ti_cfg_data {
    int present;
    int batch_size;
    int num_workers; /* default 2 * batch_size */
    struct ti_cfg_dataset train, validation;
};

/* lightning (the PyTorch-Lightning 1.5 trainer and main.py's callbacks). */
struct ti_cfg_lightning {
    int max_steps;  /* -1: absent (PL then stops after max_epochs) */
    int max_epochs; /* -1: absent (PL 1.5: 1000 when max_steps is absent too) */
    int accumulate_grad_batches;
    int benchmark;
    char gpus[64];             /* the scalar as written ("0," or "0,1"); "" when absent (CPU) */
    int n_gpus;                /* main.py: len(gpus.strip(",").split(",")); 1 when absent */
    char precision[16];        /* "32" unless set */
    int every_n_train_steps;   /* modelcheckpoint.params; 0: not set */
    int every_n_epochs;        /* 0: not set; PL saves every epoch when neither is set */
    int image_batch_frequency; /* callbacks.image_logger.params.batch_frequency */
    int image_max_images;
    int image_clamp, image_increase_log_steps, image_rescale, image_disabled;
    int image_log_on_batch_idx, image_log_first_step;
};

enum ti_cfg_warning_kind {
    TI_CFG_WARN_UNKNOWN,    /* a key neither the peer nor ti reads (a typo?) */
    TI_CFG_WARN_IGNORED,    /* a key the peer acts on and ti does not */
    TI_CFG_WARN_CONSISTENCY /* legal but probably not meant (sizes that disagree, ...) */
};

struct ti_cfg_warning {
    enum ti_cfg_warning_kind kind;
    char msg[TI_CFG_WARNING_MAX]; /* "file:line:col: key.path: ..." */
};

struct ti_config {
    struct ti_cfg_diffusion model;
    struct ti_cfg_unet unet;
    struct ti_cfg_vae vae;
    struct ti_cfg_text text;
    struct ti_cfg_personalization personalization;
    struct ti_cfg_data data;
    struct ti_cfg_lightning lightning;

    /* derived */
    int latent_size; /* model.image_size */
    int pixel_size;  /* latent_size * vae.downsample: the image side the model is built for */
    int token_dim;   /* width of one learned embedding vector = text.width = unet.context_dim */
    int seq_len;     /* tokens per prompt = text.max_length */

    int n_warnings;         /* warnings kept below */
    int n_warnings_dropped; /* more warnings than TI_CFG_MAX_WARNINGS */
    struct ti_cfg_warning warnings[TI_CFG_MAX_WARNINGS];
};

/* Reads a merged config tree (root = the top-level mapping). On error cfg is left zeroed
 * except for the warnings gathered so far. */
ti_status ti_config_from_yaml(struct ti_config *cfg, const struct ti_yaml_node *root,
                              struct ti_err *err);

/* ti_yaml_load_merged + ti_config_from_yaml: the files merged left to right, then the
 * overrides ("key.path=value"), then reading. */
ti_status ti_config_load(struct ti_config *cfg, const char *const *files, int n_files,
                         const char *const *overrides, int n_overrides, struct ti_err *err);

/* Reads an AutoencoderKL section ({target, params: {embed_dim, ddconfig, lossconfig}}), e.g.
 * model.params.first_stage_config, or the `model` of an autoencoder config such as
 * kl-f8/config.yaml. Warnings go into cfg (may be NULL to drop them). */
ti_status ti_config_read_vae(struct ti_cfg_vae *vae, const struct ti_yaml_node *section,
                             struct ti_config *cfg, struct ti_err *err);

/* What training needs beyond a loadable config: an EmbeddingManager, a train set with a
 * data_root, model.base_learning_rate, cond_stage_trainable (without it the peer computes the
 * conditioning without gradients and learns nothing), the batch keys "image"/"caption", and a
 * dataset placeholder_token that is one of the placeholder_strings (peer pitfall 1.7-b). */
ti_status ti_config_check_train(const struct ti_config *cfg, struct ti_err *err);

/* main.py's learning rate: accumulate_grad_batches * n_gpus * batch_size * base_learning_rate
 * when scale_lr (the default), else base_learning_rate. */
double ti_config_learning_rate(const struct ti_config *cfg, int scale_lr);

#ifdef __cplusplus
}
#endif
#endif /* TI_CONFIG_H */
