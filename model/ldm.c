/* ldm.c - config -> network hyperparameters, and the three networks together (see ldm.h). */
#include "ldm.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

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

static ti_status state_dict_get(void *user, const char *key, struct ti_tensor *view,
                                struct ti_err *err) {
    const struct ti_tensor *t = ti_state_dict_find(user, key);
    if (!t) return TI_ERR_NOT_FOUND;
    (void)err;
    *view = *t;
    return TI_OK;
}

/* One schedule buffer of the file into out[0..n) as float32; its length, or 0 when it is absent
 * or not a usable schedule (not 1-D float, longer than TI_LDM_MAX_T, a value outside [0, 1]). */
static int read_sched_buffer(const struct ti_state_dict *sd, const char *key, float *out) {
    const struct ti_tensor *v = ti_state_dict_find(sd, key);
    if (!v || v->ndim != 1 || v->shape[0] < 2 || v->shape[0] > TI_LDM_MAX_T ||
        !ti_dtype_is_float(v->dtype))
        return 0;
    int n = (int)v->shape[0];
    size_t step = (size_t)v->stride[0] * ti_dtype_size(v->dtype);
    for (int i = 0; i < n; i++) {
        float x = ti_dtype_load_f32((const char *)v->data + (size_t)i * step, v->dtype);
        if (!(x >= 0.0f && x <= 1.0f)) return 0;
        out[i] = x;
    }
    return n;
}

static void read_sched(struct ti_ldm_file_schedule *fs, const struct ti_state_dict *sd) {
    static const char *const keys[3] = {"alphas_cumprod", "sqrt_alphas_cumprod",
                                        "sqrt_one_minus_alphas_cumprod"};
    float *outs[3] = {fs->alphas_cumprod, fs->sqrt_alphas_cumprod,
                      fs->sqrt_one_minus_alphas_cumprod};
    memset(fs, 0, sizeof *fs);
    for (int i = 0; i < 3; i++) {
        int n = read_sched_buffer(sd, keys[i], outs[i]);
        if (n && (!fs->T || n == fs->T)) {
            fs->T = n;
            fs->have |= 1u << i;
        }
    }
}

ti_status ti_ldm_load_file(struct ti_ldm *m, const char *path,
                           const struct ti_state_dict_opts *opts, const char *model,
                           struct ti_err *err) {
    const struct ti_weights *tables[3] = {&m->unet_w, &m->vae_w, &m->text_w};
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += (size_t)tables[i]->n;
    struct ti_param_spec *spec = calloc(n ? n : 1, sizeof *spec);
    if (!spec) return ti_error(err, TI_ERR_NOMEM, "loading %s: out of memory", path);
    size_t k = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < tables[i]->n; j++) {
            const struct ti_weight *w = &tables[i]->items[j];
            if (w->optional) continue;
            spec[k].key = w->key;
            spec[k].ndim = w->ndim;
            memcpy(spec[k].shape, w->shape, sizeof spec[k].shape);
            k++;
        }
    struct ti_state_dict *sd = NULL;
    ti_status st = ti_state_dict_open(&sd, path, opts, err);
    if (st == TI_OK) st = ti_state_dict_check(sd, spec, k, model ? model : "this config", err);
    if (st == TI_OK) {
        ti_state_dict_prefetch(sd, spec, k);
        struct ti_weight_source src = {sd, path, state_dict_get};
        st = ti_ldm_load(m, &src, err);
    }
    if (st == TI_OK) read_sched(&m->file_sched, sd);
    ti_state_dict_close(sd);
    free(spec);
    return st;
}

ti_status ti_ldm_save_as(const struct ti_ldm *m, const char *path, unsigned f16_tables,
                         struct ti_err *err) {
    const struct ti_weights *tables[3] = {&m->unet_w, &m->vae_w, &m->text_w};
    const unsigned bit[3] = {TI_LDM_UNET, TI_LDM_VAE, TI_LDM_TEXT};
    const struct ti_backend *cpu = ti_backend_cpu();
    size_t n = 0, n16 = 0;
    for (int i = 0; i < 3; i++) {
        if (tables[i]->n > 0 && tables[i]->be && tables[i]->be->device != TI_DEVICE_CPU)
            return ti_error(err, TI_ERR_UNSUPPORTED,
                            "ti_ldm_save: weights live on %s; save from the CPU backend",
                            tables[i]->be->name);
        n += (size_t)tables[i]->n;
        if (f16_tables & bit[i]) n16 += (size_t)tables[i]->numel;
    }
    struct ti_st_entry *e = calloc(n ? n : 1, sizeof *e);
    struct ti_tensor *half = calloc(n ? n : 1, sizeof *half);
    uint16_t *buf = n16 ? malloc(n16 * sizeof *buf) : NULL;
    if (!e || !half || (n16 && !buf)) {
        free(e);
        free(half);
        free(buf);
        return ti_error(err, TI_ERR_NOMEM, "ti_ldm_save: out of memory");
    }
    ti_status st = TI_OK;
    size_t k = 0, used = 0;
    for (int i = 0; i < 3 && st == TI_OK; i++)
        for (int j = 0; j < tables[i]->n && st == TI_OK; j++) {
            const struct ti_weight *w = &tables[i]->items[j];
            e[k].name = w->key;
            e[k].t = w->slot;
            if ((f16_tables & bit[i]) && w->slot->dtype != TI_DTYPE_F16) {
                /* rounded to float16 by the CPU copy kernel (round to nearest even) */
                struct ti_copy_args ca;
                memset(&ca, 0, sizeof ca);
                ca.out = ti_tensor_view(buf + used, TI_DTYPE_F16, TI_DEVICE_CPU, w->ndim, w->shape);
                ca.inp = *w->slot;
                struct ti_kctx hk;
                memset(&hk, 0, sizeof hk);
                hk.err = err;
                st = cpu->k[TI_DTYPE_F16].copy_forward(&hk, &ca);
                half[k] = ca.out;
                e[k].t = &half[k];
                used += (size_t)ti_tensor_numel(&ca.out);
            }
            k++;
        }
    if (st == TI_OK) st = ti_safetensors_write(path, e, n, NULL, 0, err);
    free(e);
    free(half);
    free(buf);
    return st;
}

ti_status ti_ldm_save(const struct ti_ldm *m, const char *path, struct ti_err *err) {
    return ti_ldm_save_as(m, path, 0, err);
}

void ti_ldm_free(struct ti_ldm *m) {
    ti_unet_free(&m->unet);
    ti_vae_free(&m->vae);
    ti_text_encoder_free(&m->text);
    ti_weights_free(&m->unet_w);
    ti_weights_free(&m->vae_w);
    ti_weights_free(&m->text_w);
}
