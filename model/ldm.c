/* ldm.c - config -> network hyperparameters, and the three networks together (see ldm.h). */
#include "ldm.h"

#include <string.h>

ti_status ti_ldm_hparams(struct ti_unet_hparams *u, struct ti_vae_hparams *v,
                         struct ti_text_hparams *t, int *text_is_clip, const struct ti_config *cfg,
                         struct ti_err *err) {
    const struct ti_cfg_unet *cu = &cfg->unet;
    memset(u, 0, sizeof *u);
    u->in_channels = cu->in_channels;
    u->out_channels = cu->out_channels;
    u->model_channels = cu->model_channels;
    u->num_res_blocks = cu->num_res_blocks;
    u->n_levels = cu->n_levels;
    if (cu->n_levels > TI_UNET_MAX_LEVELS || cu->n_attention_resolutions > TI_UNET_MAX_LEVELS)
        return ti_error(err, TI_ERR_CONFIG,
                        "unet_config: %d levels / %d attention resolutions "
                        "(at most %d)",
                        cu->n_levels, cu->n_attention_resolutions, TI_UNET_MAX_LEVELS);
    for (int i = 0; i < cu->n_levels; i++)
        u->channel_mult[i] = cu->channel_mult[i];
    u->n_attention = cu->n_attention_resolutions;
    for (int i = 0; i < cu->n_attention_resolutions; i++)
        u->attention_resolutions[i] = cu->attention_resolutions[i];
    u->num_heads = cu->num_heads;
    u->num_head_channels = cu->num_head_channels;
    u->transformer_depth = cu->transformer_depth;
    u->context_dim = cu->context_dim;
    u->legacy = cu->legacy;
    u->use_checkpoint = 0; /* recomputation is a training option (ti-train), not a config key */

    const struct ti_cfg_vae *cv = &cfg->vae;
    memset(v, 0, sizeof *v);
    v->in_channels = cv->in_channels;
    v->out_ch = cv->out_ch;
    v->ch = cv->ch;
    v->n_levels = cv->n_levels;
    if (cv->n_levels > TI_VAE_MAX_LEVELS || cv->n_attn_resolutions > TI_VAE_MAX_LEVELS ||
        cv->num_res_blocks > TI_VAE_MAX_RES)
        return ti_error(err, TI_ERR_CONFIG, "first_stage_config: too many levels or blocks");
    for (int i = 0; i < cv->n_levels; i++)
        v->ch_mult[i] = cv->ch_mult[i];
    v->num_res_blocks = cv->num_res_blocks;
    v->z_channels = cv->z_channels;
    v->double_z = cv->double_z;
    v->embed_dim = cv->embed_dim;
    v->resolution = cv->resolution;
    v->n_attn = cv->n_attn_resolutions;
    for (int i = 0; i < cv->n_attn_resolutions; i++)
        v->attn_resolutions[i] = cv->attn_resolutions[i];

    const struct ti_cfg_text *ct = &cfg->text;
    t->vocab_size = ct->vocab_size;
    t->max_positions = ct->max_positions;
    t->width = ct->width;
    t->layers = ct->layers;
    t->heads = ct->heads;
    t->head_dim = ct->head_dim;
    t->ff_width = ct->ff_dim;
    *text_is_clip = ct->kind == TI_TEXT_CLIP;
    if (ct->width != cu->context_dim)
        return ti_error(err, TI_ERR_CONFIG,
                        "the text encoder's width %d differs from unet_config.context_dim %d",
                        ct->width, cu->context_dim);
    return TI_OK;
}

ti_status ti_ldm_init(struct ti_ldm *m, const struct ti_config *cfg, struct ti_err *err) {
    memset(m, 0, sizeof *m);
    ti_weights_init(&m->unet_w);
    ti_weights_init(&m->vae_w);
    ti_weights_init(&m->text_w);
    TI_TRY(ti_ldm_hparams(&m->unet_hp, &m->vae_hp, &m->text_hp, &m->text_is_clip, cfg, err));
    TI_TRY(ti_unet_init(&m->unet, &m->unet_hp, TI_LDM_PREFIX_UNET, &m->unet_w, err));
    TI_TRY(ti_vae_init(&m->vae, &m->vae_hp, TI_LDM_PREFIX_VAE, &m->vae_w, err));
    if (m->text_is_clip)
        return ti_clip_text_init(&m->text, &m->text_hp, TI_LDM_PREFIX_CLIP, &m->text_w, err);
    return ti_bert_embedder_init(&m->text, &m->text_hp, TI_LDM_PREFIX_BERT, &m->text_w, err);
}

ti_status ti_ldm_alloc(struct ti_ldm *m, const struct ti_backend *be, enum ti_dtype dt,
                       struct ti_err *err) {
    TI_TRY(ti_weights_alloc(&m->unet_w, be, dt, err));
    TI_TRY(ti_weights_alloc(&m->vae_w, be, dt, err));
    return ti_weights_alloc(&m->text_w, be, dt, err);
}

ti_status ti_ldm_load(struct ti_ldm *m, const struct ti_weight_source *src, struct ti_err *err) {
    TI_TRY(ti_weights_load(&m->unet_w, src, err));
    TI_TRY(ti_weights_load(&m->vae_w, src, err));
    return ti_weights_load(&m->text_w, src, err);
}

ti_status ti_ldm_randomize(struct ti_ldm *m, uint64_t seed, struct ti_err *err) {
    TI_TRY(ti_weights_randomize(&m->unet_w, seed, 1.0, err));
    TI_TRY(ti_weights_randomize(&m->vae_w, seed + 1, 1.0, err));
    return ti_weights_randomize(&m->text_w, seed + 2, 1.0, err);
}

void ti_ldm_free(struct ti_ldm *m) {
    ti_unet_free(&m->unet);
    ti_vae_free(&m->vae);
    ti_text_encoder_free(&m->text);
    ti_weights_free(&m->unet_w);
    ti_weights_free(&m->vae_w);
    ti_weights_free(&m->text_w);
}
