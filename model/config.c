/*
 * config.c - the peer's configs as typed structs (see config.h; every key is documented in
 * configs/README.md).
 *
 * Each section is read the same way: check its keys against a table (known and read, known
 * without effect, known but ignored by ti, or unknown = warning), read every value with the
 * peer's default, validate, then derive. Cross-section checks and derived sizes come last.
 *
 * Peer defaults are those of the code the configs instantiate (rinongal/textual_inversion at
 * 424192de: ldm/models/diffusion/ddpm.py, openaimodel.py, autoencoder.py + model.py,
 * encoders/modules.py, embedding_manager.py, data/personalized*.py, main.py) and of
 * PyTorch-Lightning 1.5 for the trainer; ti-peer.md §2 and sd-arch.md §1 list them.
 */
#include "config.h"

#include <limits.h> /* defines: INT_MAX, INT_MIN */
#include <stdarg.h> /* defines: va_list */
#include <stddef.h> /* defines: offsetof */
#include <stdio.h>  /* defines: snprintf, vsnprintf */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: strcmp, strlen, memset, memcpy */

/* ==== Targets ============================================================================== */

static const struct {
    enum ti_target t;
    const char *path;
    const char *note; /* why ti cannot use it where a module of its own is needed */
} TARGETS[] = {
    {TI_TARGET_LATENT_DIFFUSION, "ldm.models.diffusion.ddpm.LatentDiffusion", NULL},
    {TI_TARGET_UNET, "ldm.modules.diffusionmodules.openaimodel.UNetModel", NULL},
    {TI_TARGET_AUTOENCODER_KL, "ldm.models.autoencoder.AutoencoderKL", NULL},
    {TI_TARGET_CLIP_EMBEDDER, "ldm.modules.encoders.modules.FrozenCLIPEmbedder", NULL},
    {TI_TARGET_BERT_EMBEDDER, "ldm.modules.encoders.modules.BERTEmbedder", NULL},
    {TI_TARGET_EMBEDDING_MANAGER, "ldm.modules.embedding_manager.EmbeddingManager", NULL},
    {TI_TARGET_PERSONALIZED_OBJECT, "ldm.data.personalized.PersonalizedBase", NULL},
    {TI_TARGET_PERSONALIZED_STYLE, "ldm.data.personalized_style.PersonalizedBase", NULL},
    {TI_TARGET_DATA_MODULE, "main.DataModuleFromConfig", NULL},
    {TI_TARGET_IMAGE_LOGGER, "main.ImageLogger", NULL},
    {TI_TARGET_MODEL_CHECKPOINT, "pytorch_lightning.callbacks.ModelCheckpoint", NULL},
    {TI_TARGET_IDENTITY, "torch.nn.Identity", NULL},
    {TI_TARGET_LPIPS_DISCRIMINATOR, "ldm.modules.losses.LPIPSWithDiscriminator",
     "the autoencoder's training loss"},
    {TI_TARGET_VQ_MODEL_INTERFACE, "ldm.models.autoencoder.VQModelInterface",
     "ti implements the KL autoencoder (AutoencoderKL) only"},
    {TI_TARGET_CLASS_EMBEDDER, "ldm.modules.encoders.modules.ClassEmbedder",
     "a class-label model has no text encoder to personalize"},
    {TI_TARGET_LAMBDA_LINEAR_SCHED, "ldm.lr_scheduler.LambdaLinearScheduler",
     "an LR schedule the peer's TI training never uses"},
};
#define N_TARGETS (sizeof TARGETS / sizeof TARGETS[0])

const char *ti_target_name(enum ti_target t) {
    for (size_t k = 0; k < N_TARGETS; k++)
        if (TARGETS[k].t == t) return TARGETS[k].path;
    return "";
}

enum ti_target ti_target_lookup(const char *class_path) {
    if (!class_path) return TI_TARGET_NONE;
    for (size_t k = 0; k < N_TARGETS; k++)
        if (strcmp(TARGETS[k].path, class_path) == 0) return TARGETS[k].t;
    return TI_TARGET_NONE;
}

static const char *target_note(enum ti_target t) {
    for (size_t k = 0; k < N_TARGETS; k++)
        if (TARGETS[k].t == t) return TARGETS[k].note;
    return NULL;
}

/* ==== Context, messages, warnings ========================================================== */

struct ld {
    struct ti_config *cfg; /* may be NULL (ti_config_read_vae without a config) */
    struct ti_err *err;
};

static void warn(struct ti_config *cfg, enum ti_cfg_warning_kind kind, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void warn(struct ti_config *cfg, enum ti_cfg_warning_kind kind, const char *fmt, ...) {
    if (!cfg) return;
    if (cfg->n_warnings == TI_CFG_MAX_WARNINGS) {
        cfg->n_warnings_dropped++;
        return;
    }
    struct ti_cfg_warning *w = &cfg->warnings[cfg->n_warnings++];
    w->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
}

/* "<file>:<line>:<col>: <path>: <message>" for the value at base.key (or base itself when key
 * is NULL). An absent key is reported at its parent, as "<parent>.<key>". */
static ti_status verr(struct ld *ld, const struct ti_yaml_node *base, const char *key,
                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static ti_status verr(struct ld *ld, const struct ti_yaml_node *base, const char *key,
                      const char *fmt, ...) {
    char msg[600], path[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const struct ti_yaml_node *n = key ? ti_yaml_get(base, key) : base;
    if (n) {
        ti_yaml_path(n, path, sizeof path);
        return ti_error(ld->err, TI_ERR_CONFIG, "%s:%d:%d: %s: %s", n->file, n->line, n->col, path,
                        msg);
    }
    if (!base) return ti_error(ld->err, TI_ERR_CONFIG, "%s: %s", key ? key : "?", msg);
    ti_yaml_path(base, path, sizeof path);
    return ti_error(ld->err, TI_ERR_CONFIG, "%s:%d:%d: %s%s%s: %s", base->file, base->line,
                    base->col, base->parent ? path : "", base->parent ? "." : "", key, msg);
}

#define NEED(cond, base, key, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) return verr(ld, (base), (key), __VA_ARGS__);                                  \
    } while (0)

/* ==== Key tables =========================================================================== */

enum use {
    READ,     /* ti reads it */
    NOEFFECT, /* the peer reads it, but it changes nothing ti computes (logging, device, ...) */
    IGNORED   /* the peer acts on it and ti does not: a warning when set (truthy) */
};

struct key {
    const char *name;
    enum use use;
    const char *why; /* IGNORED: what the peer would do */
};

/* Python truthiness: what "set" means for an IGNORED key. */
static int truthy(const struct ti_yaml_node *n) {
    if (n->kind != TI_YAML_SCALAR) return n->n > 0;
    switch (n->type) {
    case TI_YAML_NULL: return 0;
    case TI_YAML_BOOL:
    case TI_YAML_INT: return n->i != 0;
    case TI_YAML_FLOAT: return n->f != 0.0;
    default: return n->text[0] != '\0';
    }
}

static void check_keys(struct ld *ld, const struct ti_yaml_node *map, const struct key *keys,
                       const char *owner) {
    if (!map || map->kind != TI_YAML_MAP) return;
    for (size_t i = 0; i < map->n; i++) {
        const struct ti_yaml_node *e = map->items[i];
        const struct key *k = keys;
        while (k->name && strcmp(k->name, e->key) != 0)
            k++;
        char path[300];
        if (!k->name) {
            warn(ld->cfg, TI_CFG_WARN_UNKNOWN, "%s:%d:%d: %s: unknown key, ignored (%s)", e->file,
                 e->key_line, e->key_col, ti_yaml_path(e, path, sizeof path), owner);
        } else if (k->use == IGNORED && truthy(e)) {
            warn(ld->cfg, TI_CFG_WARN_IGNORED, "%s:%d:%d: %s: ignored by ti: %s", e->file,
                 e->key_line, e->key_col, ti_yaml_path(e, path, sizeof path), k->why);
        }
    }
}

static const struct key K_TOP[] = {
    {"model", READ, NULL}, {"data", READ, NULL}, {"lightning", READ, NULL}, {NULL, READ, NULL}};
static const struct key K_MODEL[] = {{"base_learning_rate", READ, NULL},
                                     {"target", READ, NULL},
                                     {"params", READ, NULL},
                                     {NULL, READ, NULL}};
static const struct key K_SECTION[] = {
    {"target", READ, NULL}, {"params", READ, NULL}, {NULL, READ, NULL}};

/* LatentDiffusion.__init__ + DDPM.__init__ */
static const struct key K_LDM[] = {{"linear_start", READ, NULL},
                                   {"linear_end", READ, NULL},
                                   {"timesteps", READ, NULL},
                                   {"beta_schedule", READ, NULL},
                                   {"image_size", READ, NULL},
                                   {"channels", READ, NULL},
                                   {"first_stage_key", READ, NULL},
                                   {"cond_stage_key", READ, NULL},
                                   {"cond_stage_trainable", READ, NULL},
                                   {"conditioning_key", READ, NULL},
                                   {"concat_mode", READ, NULL},
                                   {"num_timesteps_cond", READ, NULL},
                                   {"scale_factor", READ, NULL},
                                   {"scale_by_std", READ, NULL},
                                   {"use_ema", READ, NULL},
                                   {"parameterization", READ, NULL},
                                   {"loss_type", READ, NULL},
                                   {"l_simple_weight", READ, NULL},
                                   {"original_elbo_weight", READ, NULL},
                                   {"embedding_reg_weight", READ, NULL},
                                   {"unfreeze_model", READ, NULL},
                                   {"model_lr", READ, NULL},
                                   {"v_posterior", READ, NULL},
                                   {"logvar_init", READ, NULL},
                                   {"given_betas", READ, NULL},
                                   {"use_positional_encodings", READ, NULL},
                                   {"cond_stage_forward", READ, NULL},
                                   {"unet_config", READ, NULL},
                                   {"first_stage_config", READ, NULL},
                                   {"cond_stage_config", READ, NULL},
                                   {"personalization_config", READ, NULL},
                                   {"log_every_t", NOEFFECT, NULL},
                                   {"monitor", NOEFFECT, NULL},
                                   {"clip_denoised", NOEFFECT, NULL},
                                   {"cosine_s", NOEFFECT, NULL},
                                   {"learn_logvar", NOEFFECT, NULL},
                                   {"ckpt_path", NOEFFECT, NULL},
                                   {"ignore_keys", NOEFFECT, NULL},
                                   {"load_only_unet", NOEFFECT, NULL},
                                   {"scheduler_config", NOEFFECT, NULL},
                                   {NULL, READ, NULL}};

static const struct key K_UNET[] = {
    {"image_size", READ, NULL},
    {"in_channels", READ, NULL},
    {"out_channels", READ, NULL},
    {"model_channels", READ, NULL},
    {"attention_resolutions", READ, NULL},
    {"num_res_blocks", READ, NULL},
    {"channel_mult", READ, NULL},
    {"num_heads", READ, NULL},
    {"num_head_channels", READ, NULL},
    {"use_spatial_transformer", READ, NULL},
    {"transformer_depth", READ, NULL},
    {"context_dim", READ, NULL},
    {"legacy", READ, NULL},
    {"dims", READ, NULL},
    {"num_classes", READ, NULL},
    {"conv_resample", READ, NULL},
    {"use_scale_shift_norm", READ, NULL},
    {"resblock_updown", READ, NULL},
    {"n_embed", READ, NULL},
    {"dropout", READ, NULL},
    {"use_checkpoint", READ, NULL},
    {"use_new_attention_order", NOEFFECT, NULL},
    {"num_heads_upsample", NOEFFECT, NULL},
    {"use_fp16", IGNORED,
     "the peer stores the UNet in float16; ti picks the compute type at run time"},
    {NULL, READ, NULL}};

static const struct key K_AE[] = {
    {"embed_dim", READ, NULL},
    {"ddconfig", READ, NULL},
    {"lossconfig", READ, NULL},
    {"monitor", NOEFFECT, NULL},
    {"image_key", NOEFFECT, NULL},
    {"colorize_nlabels", NOEFFECT, NULL},
    {"ckpt_path", IGNORED,
     "the peer loads the autoencoder from this file; ti reads every weight "
     "from the one model checkpoint"},
    {"ignore_keys", IGNORED, "applies to ckpt_path, which ti does not read"},
    {NULL, READ, NULL}};

static const struct key K_DD[] = {
    {"double_z", READ, NULL},    {"z_channels", READ, NULL},       {"resolution", READ, NULL},
    {"in_channels", READ, NULL}, {"out_ch", READ, NULL},           {"ch", READ, NULL},
    {"ch_mult", READ, NULL},     {"num_res_blocks", READ, NULL},   {"attn_resolutions", READ, NULL},
    {"dropout", READ, NULL},     {"resamp_with_conv", READ, NULL}, {"use_linear_attn", READ, NULL},
    {"attn_type", READ, NULL},   {"give_pre_end", READ, NULL},     {"tanh_out", READ, NULL},
    {NULL, READ, NULL}};

/* FrozenCLIPEmbedder(version, device, max_length) + ti's explicit widths */
static const struct key K_CLIP[] = {
    {"version", READ, NULL},           {"max_length", READ, NULL},
    {"device", NOEFFECT, NULL},        {"hidden_size", READ, NULL},
    {"num_hidden_layers", READ, NULL}, {"num_attention_heads", READ, NULL},
    {"intermediate_size", READ, NULL}, {"max_position_embeddings", READ, NULL},
    {"vocab_size", READ, NULL},        {NULL, READ, NULL}};

/* BERTEmbedder(n_embed, n_layer, vocab_size, max_seq_len, device, use_tokenizer,
 * embedding_dropout) + ti's explicit attention shape */
static const struct key K_BERT[] = {
    {"n_embed", READ, NULL},     {"n_layer", READ, NULL},       {"vocab_size", READ, NULL},
    {"max_seq_len", READ, NULL}, {"use_tokenizer", READ, NULL}, {"embedding_dropout", READ, NULL},
    {"device", NOEFFECT, NULL},  {"heads", READ, NULL},         {"dim_head", READ, NULL},
    {NULL, READ, NULL}};

static const struct key K_EM[] = {{"placeholder_strings", READ, NULL},
                                  {"initializer_words", READ, NULL},
                                  {"per_image_tokens", READ, NULL},
                                  {"num_vectors_per_token", READ, NULL},
                                  {"progressive_words", READ, NULL},
                                  {"embedding_manager_ckpt", READ, NULL},
                                  {NULL, READ, NULL}};

static const struct key K_DM[] = {
    {"batch_size", READ, NULL},
    {"num_workers", READ, NULL},
    {"train", READ, NULL},
    {"validation", READ, NULL},
    {"wrap", NOEFFECT, NULL},
    {"shuffle_test_loader", NOEFFECT, NULL},
    {"use_worker_init_fn", NOEFFECT, NULL},
    {"shuffle_val_dataloader", NOEFFECT, NULL},
    {"test", IGNORED, "ti runs no test split (the peer's trainer.test after training)"},
    {"predict", IGNORED, "ti runs no predict split"},
    {NULL, READ, NULL}};

static const struct key K_PB_OBJECT[] = {{"data_root", READ, NULL},
                                         {"size", READ, NULL},
                                         {"repeats", READ, NULL},
                                         {"interpolation", READ, NULL},
                                         {"flip_p", READ, NULL},
                                         {"set", READ, NULL},
                                         {"placeholder_token", READ, NULL},
                                         {"per_image_tokens", READ, NULL},
                                         {"center_crop", READ, NULL},
                                         {"mixing_prob", READ, NULL},
                                         {"coarse_class_text", READ, NULL},
                                         {NULL, READ, NULL}};
static const struct key K_PB_STYLE[] = {{"data_root", READ, NULL},
                                        {"size", READ, NULL},
                                        {"repeats", READ, NULL},
                                        {"interpolation", READ, NULL},
                                        {"flip_p", READ, NULL},
                                        {"set", READ, NULL},
                                        {"placeholder_token", READ, NULL},
                                        {"per_image_tokens", READ, NULL},
                                        {"center_crop", READ, NULL},
                                        {NULL, READ, NULL}};

static const struct key K_LIGHTNING[] = {{"trainer", READ, NULL},
                                         {"modelcheckpoint", READ, NULL},
                                         {"callbacks", READ, NULL},
                                         {"logger", NOEFFECT, NULL},
                                         {NULL, READ, NULL}};

/* PyTorch-Lightning 1.5 Trainer arguments. */
static const struct key K_TRAINER[] = {
    {"max_steps", READ, NULL},
    {"max_epochs", READ, NULL},
    {"accumulate_grad_batches", READ, NULL},
    {"benchmark", READ, NULL},
    {"gpus", READ, NULL},
    {"precision", READ, NULL},
    {"accelerator", NOEFFECT, NULL},
    {"strategy", NOEFFECT, NULL},
    {"devices", NOEFFECT, NULL},
    {"auto_select_gpus", NOEFFECT, NULL},
    {"num_processes", NOEFFECT, NULL},
    {"tpu_cores", NOEFFECT, NULL},
    {"ipus", NOEFFECT, NULL},
    {"logger", NOEFFECT, NULL},
    {"checkpoint_callback", NOEFFECT, NULL},
    {"enable_checkpointing", NOEFFECT, NULL},
    {"callbacks", NOEFFECT, NULL},
    {"default_root_dir", NOEFFECT, NULL},
    {"weights_save_path", NOEFFECT, NULL},
    {"process_position", NOEFFECT, NULL},
    {"log_gpu_memory", NOEFFECT, NULL},
    {"progress_bar_refresh_rate", NOEFFECT, NULL},
    {"enable_progress_bar", NOEFFECT, NULL},
    {"enable_model_summary", NOEFFECT, NULL},
    {"weights_summary", NOEFFECT, NULL},
    {"flush_logs_every_n_steps", NOEFFECT, NULL},
    {"log_every_n_steps", NOEFFECT, NULL},
    {"track_grad_norm", NOEFFECT, NULL},
    {"check_val_every_n_epoch", NOEFFECT, NULL},
    {"val_check_interval", NOEFFECT, NULL},
    {"limit_val_batches", NOEFFECT, NULL},
    {"limit_test_batches", NOEFFECT, NULL},
    {"limit_predict_batches", NOEFFECT, NULL},
    {"num_sanity_val_steps", NOEFFECT, NULL},
    {"resume_from_checkpoint", NOEFFECT, NULL},
    {"profiler", NOEFFECT, NULL},
    {"deterministic", NOEFFECT, NULL},
    {"reload_dataloaders_every_n_epochs", NOEFFECT, NULL},
    {"reload_dataloaders_every_epoch", NOEFFECT, NULL},
    {"replace_sampler_ddp", NOEFFECT, NULL},
    {"sync_batchnorm", NOEFFECT, NULL},
    {"prepare_data_per_node", NOEFFECT, NULL},
    {"plugins", NOEFFECT, NULL},
    {"amp_backend", NOEFFECT, NULL},
    {"amp_level", NOEFFECT, NULL},
    {"move_metrics_to_cpu", NOEFFECT, NULL},
    {"multiple_trainloader_mode", NOEFFECT, NULL},
    {"detect_anomaly", NOEFFECT, NULL},
    {"terminate_on_nan", NOEFFECT, NULL},
    {"gradient_clip_val", IGNORED, "the peer clips gradients; ti does not"},
    {"gradient_clip_algorithm", IGNORED, "the peer clips gradients; ti does not"},
    {"num_nodes", IGNORED, "the peer trains on several machines; ti on one"},
    {"min_epochs", IGNORED, "ti stops at max_steps / max_epochs"},
    {"min_steps", IGNORED, "ti stops at max_steps / max_epochs"},
    {"max_time", IGNORED, "ti stops at max_steps / max_epochs"},
    {"limit_train_batches", IGNORED, "ti trains on every batch of an epoch"},
    {"overfit_batches", IGNORED, "ti trains on every batch of an epoch"},
    {"fast_dev_run", IGNORED, "ti has no dev-run mode"},
    {"stochastic_weight_avg", IGNORED, "ti does no weight averaging"},
    {"auto_lr_find", IGNORED, "ti does no LR search"},
    {"auto_scale_batch_size", IGNORED, "ti does no batch-size search"},
    {NULL, READ, NULL}};

/* pytorch_lightning.callbacks.ModelCheckpoint (1.5) */
static const struct key K_CKPT[] = {{"every_n_train_steps", READ, NULL},
                                    {"every_n_epochs", READ, NULL},
                                    {"dirpath", NOEFFECT, NULL},
                                    {"filename", NOEFFECT, NULL},
                                    {"monitor", NOEFFECT, NULL},
                                    {"verbose", NOEFFECT, NULL},
                                    {"save_last", NOEFFECT, NULL},
                                    {"save_top_k", NOEFFECT, NULL},
                                    {"save_weights_only", NOEFFECT, NULL},
                                    {"mode", NOEFFECT, NULL},
                                    {"auto_insert_metric_name", NOEFFECT, NULL},
                                    {"every_n_val_epochs", NOEFFECT, NULL},
                                    {"period", NOEFFECT, NULL},
                                    {"train_time_interval", NOEFFECT, NULL},
                                    {"save_on_train_epoch_end", NOEFFECT, NULL},
                                    {NULL, READ, NULL}};

/* main.py's default callbacks, by name */
static const struct key K_CALLBACKS[] = {
    {"image_logger", READ, NULL},
    {"setup_callback", NOEFFECT, NULL},
    {"learning_rate_logger", NOEFFECT, NULL},
    {"cuda_callback", NOEFFECT, NULL},
    {"checkpoint_callback", NOEFFECT, NULL},
    {"metrics_over_trainsteps_checkpoint", IGNORED,
     "the peer writes extra checkpoints (and embeddings) every 10000 steps"},
    {NULL, READ, NULL}};

static const struct key K_IMAGE_LOGGER[] = {
    {"batch_frequency", READ, NULL},
    {"max_images", READ, NULL},
    {"clamp", READ, NULL},
    {"increase_log_steps", READ, NULL},
    {"rescale", READ, NULL},
    {"disabled", READ, NULL},
    {"log_on_batch_idx", READ, NULL},
    {"log_first_step", READ, NULL},
    /* ti-train reads sample, ddim_steps, ddim_eta from the tree itself (train/ti_train.c) */
    {"log_images_kwargs", READ, NULL},
    {NULL, READ, NULL}};

/* ==== Typed readers ======================================================================== */

static ti_status rd_int(struct ld *ld, const struct ti_yaml_node *m, const char *key, int dflt,
                        int *out) {
    int64_t v;
    TI_TRY(ti_yaml_get_int(m, key, dflt, &v, ld->err));
    NEED(v >= INT_MIN && v <= INT_MAX, m, key, "%lld does not fit a 32-bit integer", (long long)v);
    *out = (int)v;
    return TI_OK;
}

/* An integer or null (Python None) -> null_value. */
static ti_status rd_int_null(struct ld *ld, const struct ti_yaml_node *m, const char *key, int dflt,
                             int null_value, int *out) {
    if (ti_yaml_is_null(ti_yaml_get(m, key))) return *out = null_value, TI_OK;
    return rd_int(ld, m, key, dflt, out);
}

static ti_status rd_float(struct ld *ld, const struct ti_yaml_node *m, const char *key, double dflt,
                          double *out) {
    return ti_yaml_get_float(m, key, dflt, out, ld->err);
}

static ti_status rd_bool(struct ld *ld, const struct ti_yaml_node *m, const char *key, int dflt,
                         int *out) {
    return ti_yaml_get_bool(m, key, dflt, out, ld->err);
}

static ti_status copy_str(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                          const char *s, char *buf, size_t cap) {
    NEED(strlen(s) < cap, m, key, "'%.40s...' is longer than ti's limit of %zu bytes", s, cap - 1);
    memcpy(buf, s, strlen(s) + 1);
    return TI_OK;
}

/* A string; null gives "" when null_ok (Python None), else it is a type error. */
static ti_status rd_str(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                        const char *dflt, int null_ok, char *buf, size_t cap) {
    const struct ti_yaml_node *n = ti_yaml_get(m, key);
    const char *s = dflt;
    if (n && null_ok && ti_yaml_is_null(n))
        s = "";
    else if (n)
        TI_TRY(ti_yaml_as_str(n, &s, ld->err));
    return copy_str(ld, m, key, s, buf, cap);
}

/* An absent or null value must equal the peer's default: anything else is not implemented. */
static ti_status rd_null_only(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                              const char *what) {
    const struct ti_yaml_node *n = ti_yaml_get(m, key);
    NEED(!n || ti_yaml_is_null(n), m, key, "must be null: %s", what);
    return TI_OK;
}

static ti_status rd_int_list(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                             const int *dflt, int n_dflt, int *out, int cap, int *count) {
    const struct ti_yaml_node *n = ti_yaml_get(m, key);
    if (!n) {
        for (int k = 0; k < n_dflt; k++)
            out[k] = dflt[k];
        *count = n_dflt;
        return TI_OK;
    }
    int64_t v[64];
    size_t got;
    TI_TRY(ti_yaml_as_int_list(n, v, (size_t)cap < 64 ? (size_t)cap : 64, &got, ld->err));
    for (size_t k = 0; k < got; k++) {
        if (v[k] < INT_MIN || v[k] > INT_MAX)
            return verr(ld, n->items[k], NULL, "%lld does not fit a 32-bit integer",
                        (long long)v[k]);
        out[k] = (int)v[k];
    }
    *count = (int)got;
    return TI_OK;
}

/* A list of strings (null = empty list, Python None). */
static ti_status rd_words(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                          char out[][TI_CFG_WORD_MAX], int *count) {
    const struct ti_yaml_node *n = ti_yaml_get(m, key);
    *count = 0;
    if (!n || ti_yaml_is_null(n)) return TI_OK;
    const char *w[TI_CFG_MAX_WORDS];
    size_t got;
    TI_TRY(ti_yaml_as_str_list(n, w, TI_CFG_MAX_WORDS, &got, ld->err));
    for (size_t k = 0; k < got; k++)
        TI_TRY(copy_str(ld, n->items[k], NULL, w[k], out[k], TI_CFG_WORD_MAX));
    *count = (int)got;
    return TI_OK;
}

/* The keys of a {target, params} section: returns the target and the params mapping (NULL when
 * absent: the peer's instantiate_from_config passes no arguments then). */
static ti_status rd_section(struct ld *ld, const struct ti_yaml_node *sec, const char *what,
                            const enum ti_target *allowed, int n_allowed, enum ti_target *target,
                            const struct ti_yaml_node **params) {
    *target = TI_TARGET_NONE;
    *params = NULL;
    /* the top-level `model` of an autoencoder config also carries base_learning_rate */
    int top_model = sec->parent && !sec->parent->parent && sec->key && !strcmp(sec->key, "model");
    if (sec->kind != TI_YAML_MAP)
        return verr(ld, sec, NULL,
                    "expected the %s as a mapping {target: ..., params: ...}, "
                    "found %s%s%s%s",
                    what, ti_yaml_type_name(sec), sec->kind == TI_YAML_SCALAR ? " '" : "",
                    sec->kind == TI_YAML_SCALAR ? sec->text : "",
                    sec->kind == TI_YAML_SCALAR ? "'" : "");
    check_keys(ld, sec, top_model ? K_MODEL : K_SECTION,
               top_model ? "main.py reads base_learning_rate, target and params"
                         : "a section takes target and params");
    const struct ti_yaml_node *t;
    TI_TRY(ti_yaml_require(sec, "target", &t, ld->err));
    const char *name;
    TI_TRY(ti_yaml_as_str(t, &name, ld->err));
    enum ti_target tt = ti_target_lookup(name);
    for (int k = 0; k < n_allowed; k++) {
        if (tt == allowed[k]) {
            *target = tt;
            const struct ti_yaml_node *p = ti_yaml_get(sec, "params");
            if (p && ti_yaml_is_null(p)) p = NULL;
            if (p && p->kind != TI_YAML_MAP)
                return verr(ld, p, NULL, "expected a mapping of parameters, found %s",
                            ti_yaml_type_name(p));
            *params = p;
            return TI_OK;
        }
    }
    char known[700];
    size_t used = 0;
    known[0] = '\0';
    for (int k = 0; k < n_allowed && used < sizeof known; k++)
        used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "",
                                 ti_target_name(allowed[k]));
    const char *note = target_note(tt);
    if (tt != TI_TARGET_NONE)
        return verr(ld, t, NULL, "%s cannot be the %s in ti%s%s; ti accepts: %s", name, what,
                    note ? ": " : "", note ? note : "", known);
    return verr(ld, t, NULL, "unknown target '%s' for the %s; known targets: %s", name, what,
                known);
}

/* ==== model.params ========================================================================= */

static ti_status rd_diffusion(struct ld *ld, const struct ti_yaml_node *model,
                              const struct ti_yaml_node *p, struct ti_cfg_diffusion *d) {
    const struct ti_yaml_node *lr = ti_yaml_get(model, "base_learning_rate");
    d->has_base_learning_rate = lr != NULL;
    TI_TRY(rd_float(ld, model, "base_learning_rate", 0.0, &d->base_learning_rate));
    NEED(d->base_learning_rate >= 0.0, model, "base_learning_rate", "must be >= 0");

    check_keys(ld, p, K_LDM, "not a parameter of LatentDiffusion or DDPM");
    TI_TRY(rd_float(ld, p, "linear_start", 1e-4, &d->linear_start));
    TI_TRY(rd_float(ld, p, "linear_end", 2e-2, &d->linear_end));
    NEED(d->linear_start > 0.0 && d->linear_start < 1.0, p, "linear_start",
         "%g is not a noise variance in (0, 1)", d->linear_start);
    NEED(d->linear_end >= d->linear_start && d->linear_end < 1.0, p, "linear_end",
         "%g must lie in [linear_start, 1)", d->linear_end);
    TI_TRY(rd_int(ld, p, "timesteps", 1000, &d->timesteps));
    NEED(d->timesteps >= 2, p, "timesteps", "%d: need at least 2 steps", d->timesteps);
    TI_TRY(rd_int_null(ld, p, "num_timesteps_cond", 1, 1, &d->num_timesteps_cond));
    NEED(d->num_timesteps_cond >= 1 && d->num_timesteps_cond <= d->timesteps, p,
         "num_timesteps_cond", "%d must lie in [1, timesteps]", d->num_timesteps_cond);

    char s[TI_CFG_NAME_MAX];
    TI_TRY(rd_str(ld, p, "beta_schedule", "linear", 0, s, sizeof s));
    NEED(strcmp(s, "linear") == 0, p, "beta_schedule",
         "'%s': ti implements the \"linear\" schedule of SD and LDM only", s);
    TI_TRY(rd_str(ld, p, "parameterization", "eps", 0, s, sizeof s));
    NEED(strcmp(s, "eps") == 0, p, "parameterization", "'%s': ti implements eps-prediction only",
         s);
    TI_TRY(rd_str(ld, p, "loss_type", "l2", 0, s, sizeof s));
    NEED(strcmp(s, "l2") == 0, p, "loss_type", "'%s': ti implements the l2 loss only", s);

    /* conditioning_key None means 'concat' if concat_mode (default True) else 'crossattn' */
    int concat_mode;
    TI_TRY(rd_bool(ld, p, "concat_mode", 1, &concat_mode));
    TI_TRY(rd_str(ld, p, "conditioning_key", "", 1, s, sizeof s));
    if (!s[0]) memcpy(s, concat_mode ? "concat" : "crossattn", concat_mode ? 7 : 10);
    NEED(strcmp(s, "crossattn") == 0, p,
         ti_yaml_get(p, "conditioning_key") ? "conditioning_key" : "concat_mode",
         "conditioning '%s': ti conditions through cross-attention (crossattn) only", s);

    int flag;
    TI_TRY(rd_bool(ld, p, "scale_by_std", 0, &flag));
    NEED(!flag, p, "scale_by_std", "ti does not re-estimate scale_factor from the first batch");
    TI_TRY(rd_bool(ld, p, "use_positional_encodings", 0, &flag));
    NEED(!flag, p, "use_positional_encodings",
         "ti does not implement latent positional "
         "encodings");
    TI_TRY(rd_null_only(ld, p, "given_betas", "ti computes the betas from the schedule"));
    TI_TRY(rd_null_only(ld, p, "cond_stage_forward", "ti calls the text encoder's encode"));

    TI_TRY(rd_int(ld, p, "image_size", 256, &d->image_size));
    NEED(d->image_size >= 1, p, "image_size", "must be >= 1");
    TI_TRY(rd_int(ld, p, "channels", 3, &d->channels));
    NEED(d->channels >= 1, p, "channels", "must be >= 1");
    TI_TRY(rd_str(ld, p, "first_stage_key", "image", 0, d->first_stage_key,
                  sizeof d->first_stage_key));
    TI_TRY(
        rd_str(ld, p, "cond_stage_key", "image", 0, d->cond_stage_key, sizeof d->cond_stage_key));
    TI_TRY(rd_bool(ld, p, "cond_stage_trainable", 0, &d->cond_stage_trainable));
    TI_TRY(rd_float(ld, p, "scale_factor", 1.0, &d->scale_factor));
    NEED(d->scale_factor > 0.0, p, "scale_factor", "must be > 0");
    TI_TRY(rd_bool(ld, p, "use_ema", 1, &d->use_ema));
    TI_TRY(rd_float(ld, p, "embedding_reg_weight", 0.0, &d->embedding_reg_weight));
    NEED(d->embedding_reg_weight >= 0.0, p, "embedding_reg_weight", "must be >= 0");
    TI_TRY(rd_bool(ld, p, "unfreeze_model", 0, &d->unfreeze_model));
    TI_TRY(rd_float(ld, p, "model_lr", 0.0, &d->model_lr));
    NEED(d->model_lr >= 0.0, p, "model_lr", "must be >= 0");
    TI_TRY(rd_float(ld, p, "l_simple_weight", 1.0, &d->l_simple_weight));
    TI_TRY(rd_float(ld, p, "original_elbo_weight", 0.0, &d->original_elbo_weight));
    TI_TRY(rd_float(ld, p, "v_posterior", 0.0, &d->v_posterior));
    TI_TRY(rd_float(ld, p, "logvar_init", 0.0, &d->logvar_init));
    return TI_OK;
}

/* Attention heads and head width at a level of `ch` channels (openaimodel.py; sd-arch §1.3).
 * use_spatial_transformer is required, so the legacy branch uses ch / heads. */
static void unet_heads(const struct ti_cfg_unet *u, int ch, int *heads, int *dim) {
    int nh = u->num_heads, d;
    if (u->num_head_channels == -1) {
        d = nh > 0 ? ch / nh : 0;
    } else {
        nh = ch / u->num_head_channels;
        d = u->num_head_channels;
    }
    if (u->legacy) d = nh > 0 ? ch / nh : 0;
    *heads = nh;
    *dim = d;
}

static ti_status rd_unet(struct ld *ld, const struct ti_yaml_node *sec, struct ti_cfg_unet *u) {
    static const enum ti_target ok[] = {TI_TARGET_UNET};
    enum ti_target t;
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, "diffusion network (unet_config)", ok, 1, &t, &p));
    NEED(p, sec, "params",
         "missing: UNetModel needs image_size, in_channels, model_channels, "
         "out_channels, num_res_blocks and attention_resolutions");
    check_keys(ld, p, K_UNET, "not a parameter of UNetModel");
    static const char *const required[] = {"image_size",     "in_channels",
                                           "model_channels", "out_channels",
                                           "num_res_blocks", "attention_resolutions"};
    for (size_t k = 0; k < sizeof required / sizeof *required; k++) {
        const struct ti_yaml_node *n;
        TI_TRY(ti_yaml_require(p, required[k], &n, ld->err));
    }
    TI_TRY(rd_int(ld, p, "image_size", 0, &u->image_size));
    TI_TRY(rd_int(ld, p, "in_channels", 0, &u->in_channels));
    TI_TRY(rd_int(ld, p, "out_channels", 0, &u->out_channels));
    TI_TRY(rd_int(ld, p, "model_channels", 0, &u->model_channels));
    TI_TRY(rd_int(ld, p, "num_res_blocks", 0, &u->num_res_blocks));
    NEED(u->in_channels >= 1, p, "in_channels", "must be >= 1");
    NEED(u->out_channels >= 1, p, "out_channels", "must be >= 1");
    NEED(u->model_channels >= 1, p, "model_channels", "must be >= 1");
    NEED(u->num_res_blocks >= 1, p, "num_res_blocks", "must be >= 1");
    TI_TRY(rd_int_list(ld, p, "attention_resolutions", NULL, 0, u->attention_resolutions,
                       TI_CFG_MAX_ATTN, &u->n_attention_resolutions));
    for (int k = 0; k < u->n_attention_resolutions; k++)
        NEED(u->attention_resolutions[k] >= 1, ti_yaml_get(p, "attention_resolutions")->items[k],
             NULL, "a downsample factor must be >= 1");
    static const int mult_default[] = {1, 2, 4, 8};
    TI_TRY(rd_int_list(ld, p, "channel_mult", mult_default, 4, u->channel_mult, TI_CFG_MAX_LEVELS,
                       &u->n_levels));
    NEED(u->n_levels >= 1, p, "channel_mult", "must not be empty");
    for (int k = 0; k < u->n_levels; k++) {
        const struct ti_yaml_node *cm = ti_yaml_get(p, "channel_mult");
        NEED(u->channel_mult[k] >= 1, cm ? cm->items[k] : p, cm ? NULL : "channel_mult",
             "a channel multiplier must be >= 1");
        NEED((long)u->model_channels * u->channel_mult[k] <= INT_MAX / 8, p, "model_channels",
             "too large");
    }
    /* null is not "unset" here: the peer compares with -1 and then divides by None */
    TI_TRY(rd_int(ld, p, "num_heads", -1, &u->num_heads));
    TI_TRY(rd_int(ld, p, "num_head_channels", -1, &u->num_head_channels));
    NEED(u->num_heads == -1 || u->num_heads >= 1, p, "num_heads", "must be >= 1 (or -1: unset)");
    NEED(u->num_head_channels == -1 || u->num_head_channels >= 1, p, "num_head_channels",
         "must be >= 1 (or -1: unset)");
    NEED(u->num_heads != -1 || u->num_head_channels != -1, p, "num_heads",
         "either num_heads or num_head_channels must be set");
    TI_TRY(rd_bool(ld, p, "use_spatial_transformer", 0, &u->use_spatial_transformer));
    NEED(u->use_spatial_transformer, p, "use_spatial_transformer",
         "must be true: ti implements the SpatialTransformer attention of SD and LDM only");
    TI_TRY(rd_int(ld, p, "transformer_depth", 1, &u->transformer_depth));
    NEED(u->transformer_depth >= 1, p, "transformer_depth", "must be >= 1");
    TI_TRY(rd_int_null(ld, p, "context_dim", 0, 0, &u->context_dim));
    NEED(u->context_dim >= 1, p, "context_dim",
         "must be the text encoder's width (a SpatialTransformer needs a context)");
    TI_TRY(rd_bool(ld, p, "legacy", 1, &u->legacy));
    TI_TRY(rd_bool(ld, p, "use_checkpoint", 0, &u->use_checkpoint));
    TI_TRY(rd_float(ld, p, "dropout", 0.0, &u->dropout));
    NEED(u->dropout >= 0.0 && u->dropout < 1.0, p, "dropout", "must lie in [0, 1)");

    int v, flag;
    TI_TRY(rd_int(ld, p, "dims", 2, &v));
    NEED(v == 2, p, "dims", "%d: ti implements 2-D UNets only", v);
    TI_TRY(rd_bool(ld, p, "conv_resample", 1, &flag));
    NEED(flag, p, "conv_resample", "must be true: ti resamples with convolutions");
    TI_TRY(rd_bool(ld, p, "use_scale_shift_norm", 0, &flag));
    NEED(!flag, p, "use_scale_shift_norm",
         "must be false: ti's ResBlock adds the time "
         "embedding (no FiLM scale/shift)");
    TI_TRY(rd_bool(ld, p, "resblock_updown", 0, &flag));
    NEED(!flag, p, "resblock_updown", "must be false: ti resamples with plain convolutions");
    TI_TRY(rd_null_only(ld, p, "num_classes", "ti implements text-conditioned UNets only"));
    TI_TRY(rd_null_only(ld, p, "n_embed", "ti implements the continuous-output UNet only"));

    /* derived */
    u->time_embed_dim = 4 * u->model_channels;
    u->downsample = 1 << (u->n_levels - 1);
    u->n_input_blocks = 1 + u->n_levels * u->num_res_blocks + (u->n_levels - 1);
    u->n_output_blocks = u->n_levels * (u->num_res_blocks + 1);
    for (int l = 0; l < u->n_levels; l++) {
        int ch = u->model_channels * u->channel_mult[l];
        u->level_channels[l] = ch;
        u->level_ds[l] = 1 << l;
        NEED(ch % 32 == 0, p, "channel_mult",
             "level %d has %d channels: GroupNorm(32) needs a multiple of 32", l, ch);
        u->level_attention[l] = 0;
        for (int k = 0; k < u->n_attention_resolutions; k++)
            if (u->attention_resolutions[k] == u->level_ds[l]) u->level_attention[l] = 1;
        u->level_heads[l] = u->level_head_dim[l] = 0;
        if (u->level_attention[l]) {
            unet_heads(u, ch, &u->level_heads[l], &u->level_head_dim[l]);
            NEED(u->level_heads[l] >= 1 && u->level_head_dim[l] >= 1, p,
                 u->num_head_channels == -1 ? "num_heads" : "num_head_channels",
                 "level %d (%d channels) gets %d heads of width %d", l, ch, u->level_heads[l],
                 u->level_head_dim[l]);
        }
    }
    u->mid_channels = u->level_channels[u->n_levels - 1];
    unet_heads(u, u->mid_channels, &u->mid_heads, &u->mid_head_dim);
    NEED(u->mid_heads >= 1 && u->mid_head_dim >= 1, p,
         u->num_head_channels == -1 ? "num_heads" : "num_head_channels",
         "the middle block (%d channels) gets %d heads of width %d", u->mid_channels, u->mid_heads,
         u->mid_head_dim);
    for (int k = 0; k < u->n_attention_resolutions; k++) {
        int r = u->attention_resolutions[k], hit = 0;
        for (int l = 0; l < u->n_levels; l++)
            hit |= r == u->level_ds[l];
        if (!hit) {
            const struct ti_yaml_node *n = ti_yaml_get(p, "attention_resolutions")->items[k];
            char path[300];
            warn(ld->cfg, TI_CFG_WARN_CONSISTENCY,
                 "%s:%d:%d: %s: downsample factor %d matches no level (the levels have factors "
                 "1..%d): no attention is added for it",
                 n->file, n->line, n->col, ti_yaml_path(n, path, sizeof path), r, u->downsample);
        }
    }
    return TI_OK;
}

ti_status ti_config_read_vae(struct ti_cfg_vae *vae, const struct ti_yaml_node *sec,
                             struct ti_config *cfg, struct ti_err *err) {
    struct ld ctx = {cfg, err}, *ld = &ctx;
    memset(vae, 0, sizeof *vae);
    if (!sec) return ti_error(err, TI_ERR_INVALID, "ti_config_read_vae: NULL section");
    static const enum ti_target ok[] = {TI_TARGET_AUTOENCODER_KL};
    enum ti_target t;
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, "first stage (first_stage_config)", ok, 1, &t, &p));
    NEED(p, sec, "params", "missing: AutoencoderKL needs embed_dim, ddconfig and lossconfig");
    check_keys(ld, p, K_AE, "not a parameter of AutoencoderKL");
    const struct ti_yaml_node *dd, *loss = ti_yaml_get(p, "lossconfig");
    TI_TRY(ti_yaml_require(p, "ddconfig", &dd, err));
    NEED(dd->kind == TI_YAML_MAP, dd, NULL, "expected a mapping, found %s", ti_yaml_type_name(dd));
    {
        const struct ti_yaml_node *n;
        TI_TRY(ti_yaml_require(p, "embed_dim", &n, err));
    }
    TI_TRY(rd_int(ld, p, "embed_dim", 0, &vae->embed_dim));
    NEED(vae->embed_dim >= 1, p, "embed_dim", "must be >= 1");
    if (loss && !ti_yaml_is_null(loss)) {
        static const enum ti_target lok[] = {TI_TARGET_IDENTITY, TI_TARGET_LPIPS_DISCRIMINATOR};
        const struct ti_yaml_node *lp;
        TI_TRY(rd_section(ld, loss, "autoencoder loss (lossconfig)", lok, 2, &t, &lp));
    }

    check_keys(ld, dd, K_DD, "not a parameter of the autoencoder's Encoder/Decoder");
    static const char *const required[] = {
        "ch",          "out_ch",     "num_res_blocks", "attn_resolutions",
        "in_channels", "resolution", "z_channels"};
    for (size_t k = 0; k < sizeof required / sizeof *required; k++) {
        const struct ti_yaml_node *n;
        TI_TRY(ti_yaml_require(dd, required[k], &n, err));
    }
    TI_TRY(rd_bool(ld, dd, "double_z", 1, &vae->double_z));
    NEED(vae->double_z, dd, "double_z",
         "must be true: AutoencoderKL encodes mean and log-variance");
    TI_TRY(rd_int(ld, dd, "z_channels", 0, &vae->z_channels));
    TI_TRY(rd_int(ld, dd, "resolution", 0, &vae->resolution));
    TI_TRY(rd_int(ld, dd, "in_channels", 0, &vae->in_channels));
    TI_TRY(rd_int(ld, dd, "out_ch", 0, &vae->out_ch));
    TI_TRY(rd_int(ld, dd, "ch", 0, &vae->ch));
    TI_TRY(rd_int(ld, dd, "num_res_blocks", 0, &vae->num_res_blocks));
    NEED(vae->z_channels >= 1, dd, "z_channels", "must be >= 1");
    NEED(vae->resolution >= 1, dd, "resolution", "must be >= 1");
    NEED(vae->in_channels >= 1, dd, "in_channels", "must be >= 1");
    NEED(vae->out_ch >= 1, dd, "out_ch", "must be >= 1");
    NEED(vae->ch >= 1 && vae->ch <= (1 << 20), dd, "ch", "must lie in [1, 2^20]");
    NEED(vae->num_res_blocks >= 1, dd, "num_res_blocks", "must be >= 1");
    static const int mult_default[] = {1, 2, 4, 8};
    TI_TRY(rd_int_list(ld, dd, "ch_mult", mult_default, 4, vae->ch_mult, TI_CFG_MAX_LEVELS,
                       &vae->n_levels));
    NEED(vae->n_levels >= 1, dd, "ch_mult", "must not be empty");
    TI_TRY(rd_int_list(ld, dd, "attn_resolutions", NULL, 0, vae->attn_resolutions, TI_CFG_MAX_ATTN,
                       &vae->n_attn_resolutions));
    TI_TRY(rd_float(ld, dd, "dropout", 0.0, &vae->dropout));
    NEED(vae->dropout >= 0.0 && vae->dropout < 1.0, dd, "dropout", "must lie in [0, 1)");
    int flag;
    char s[TI_CFG_NAME_MAX];
    TI_TRY(rd_bool(ld, dd, "resamp_with_conv", 1, &flag));
    NEED(flag, dd, "resamp_with_conv", "must be true: ti resamples with convolutions");
    TI_TRY(rd_bool(ld, dd, "use_linear_attn", 0, &flag));
    NEED(!flag, dd, "use_linear_attn", "must be false: ti implements vanilla attention");
    TI_TRY(rd_str(ld, dd, "attn_type", "vanilla", 0, s, sizeof s));
    NEED(strcmp(s, "vanilla") == 0, dd, "attn_type", "'%s': ti implements \"vanilla\" only", s);
    TI_TRY(rd_bool(ld, dd, "give_pre_end", 0, &flag));
    NEED(!flag, dd, "give_pre_end", "must be false: ti's decoder ends with conv_out");
    TI_TRY(rd_bool(ld, dd, "tanh_out", 0, &flag));
    NEED(!flag, dd, "tanh_out", "must be false: ti's decoder has no final tanh");

    /* derived */
    vae->downsample = 1 << (vae->n_levels - 1);
    for (int l = 0; l < vae->n_levels; l++) {
        const struct ti_yaml_node *cm = ti_yaml_get(dd, "ch_mult");
        NEED(vae->ch_mult[l] >= 1 && (long)vae->ch * vae->ch_mult[l] <= INT_MAX / 8,
             cm ? cm->items[l] : dd, cm ? NULL : "ch_mult", "a channel multiplier must be >= 1");
        int c = vae->ch * vae->ch_mult[l];
        vae->level_channels[l] = c;
        NEED(c % 32 == 0, dd, "ch_mult",
             "level %d has %d channels: GroupNorm(32) needs a multiple of 32", l, c);
        vae->level_attention[l] = 0;
        for (int k = 0; k < vae->n_attn_resolutions; k++)
            if (vae->attn_resolutions[k] == (vae->resolution >> l)) vae->level_attention[l] = 1;
    }
    vae->mid_channels = vae->level_channels[vae->n_levels - 1];
    NEED(vae->ch % 32 == 0, dd, "ch", "%d: GroupNorm(32) needs a multiple of 32", vae->ch);
    return TI_OK;
}

/* The text-tower shapes of the FrozenCLIPEmbedder versions (HF CLIPTextConfig). */
static const struct {
    const char *version;
    int width, layers, heads, ff;
} CLIP_VERSIONS[] = {
    {"openai/clip-vit-large-patch14", 768, 12, 12, 3072},
    {"openai/clip-vit-large-patch14-336", 768, 12, 12, 3072},
    {"openai/clip-vit-base-patch32", 512, 12, 8, 2048},
    {"openai/clip-vit-base-patch16", 512, 12, 8, 2048},
};

static ti_status rd_text(struct ld *ld, const struct ti_yaml_node *sec, struct ti_cfg_text *x) {
    if (sec->kind == TI_YAML_SCALAR && sec->type == TI_YAML_STR &&
        (!strcmp(sec->text, "__is_unconditional__") || !strcmp(sec->text, "__is_first_stage__")))
        return verr(ld, sec, NULL,
                    "'%s': this model has no text encoder, so there is nothing "
                    "to personalize",
                    sec->text);
    static const enum ti_target ok[] = {TI_TARGET_CLIP_EMBEDDER, TI_TARGET_BERT_EMBEDDER};
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, "text encoder (cond_stage_config)", ok, 2, &x->target, &p));
    if (x->target == TI_TARGET_CLIP_EMBEDDER) {
        x->kind = TI_TEXT_CLIP;
        check_keys(ld, p, K_CLIP, "not a parameter of FrozenCLIPEmbedder");
        TI_TRY(rd_str(ld, p, "version", "openai/clip-vit-large-patch14", 0, x->version,
                      sizeof x->version));
        size_t v = 0;
        while (v < sizeof CLIP_VERSIONS / sizeof *CLIP_VERSIONS &&
               strcmp(CLIP_VERSIONS[v].version, x->version) != 0)
            v++;
        int known = v < sizeof CLIP_VERSIONS / sizeof *CLIP_VERSIONS;
        NEED(known || ti_yaml_get(p, "hidden_size"), p, "version",
             "'%s' is not a CLIP version ti knows the shape of (openai/clip-vit-large-patch14, "
             "-large-patch14-336, -base-patch32, -base-patch16); give hidden_size, "
             "num_hidden_layers, num_attention_heads and intermediate_size",
             x->version);
        int w = known ? CLIP_VERSIONS[v].width : 0, nl = known ? CLIP_VERSIONS[v].layers : 0;
        int nh = known ? CLIP_VERSIONS[v].heads : 0, ff = known ? CLIP_VERSIONS[v].ff : 0;
        TI_TRY(rd_int(ld, p, "hidden_size", w, &x->width));
        TI_TRY(rd_int(ld, p, "num_hidden_layers", nl, &x->layers));
        TI_TRY(rd_int(ld, p, "num_attention_heads", nh, &x->heads));
        TI_TRY(rd_int(ld, p, "intermediate_size", ff, &x->ff_dim));
        TI_TRY(rd_int(ld, p, "max_position_embeddings", 77, &x->max_positions));
        TI_TRY(rd_int(ld, p, "vocab_size", 49408, &x->vocab_size));
        TI_TRY(rd_int(ld, p, "max_length", 77, &x->max_length));
        NEED(x->width >= 1, p, "hidden_size", "must be >= 1");
        NEED(x->layers >= 1, p, "num_hidden_layers", "must be >= 1");
        NEED(x->heads >= 1 && x->width % x->heads == 0, p, "num_attention_heads",
             "%d heads do not divide the width %d", x->heads, x->width);
        NEED(x->ff_dim >= 1, p, "intermediate_size", "must be >= 1");
        NEED(x->vocab_size >= 49408, p, "vocab_size",
             "%d: the CLIP BPE tokenizer emits ids up to 49407", x->vocab_size);
        NEED(x->max_positions >= 2, p, "max_position_embeddings", "must be >= 2");
        NEED(x->max_length >= 2 && x->max_length <= x->max_positions, p, "max_length",
             "%d must lie in [2, max_position_embeddings = %d]", x->max_length, x->max_positions);
        x->head_dim = x->width / x->heads;
        return TI_OK;
    }
    x->kind = TI_TEXT_BERT;
    NEED(p, sec, "params", "missing: BERTEmbedder needs n_embed and n_layer");
    check_keys(ld, p, K_BERT, "not a parameter of BERTEmbedder");
    const struct ti_yaml_node *n;
    TI_TRY(ti_yaml_require(p, "n_embed", &n, ld->err));
    TI_TRY(ti_yaml_require(p, "n_layer", &n, ld->err));
    TI_TRY(rd_int(ld, p, "n_embed", 0, &x->width));
    TI_TRY(rd_int(ld, p, "n_layer", 0, &x->layers));
    TI_TRY(rd_int(ld, p, "vocab_size", 30522, &x->vocab_size));
    TI_TRY(rd_int(ld, p, "max_seq_len", 77, &x->max_length));
    TI_TRY(rd_int(ld, p, "heads", 8, &x->heads));
    TI_TRY(rd_int(ld, p, "dim_head", 64, &x->head_dim));
    TI_TRY(rd_float(ld, p, "embedding_dropout", 0.0, &x->embedding_dropout));
    int tok;
    TI_TRY(rd_bool(ld, p, "use_tokenizer", 1, &tok));
    NEED(tok, p, "use_tokenizer", "must be true: ti tokenizes prompts with the BERT vocabulary");
    NEED(x->width >= 1 && x->width <= (1 << 20), p, "n_embed", "must lie in [1, 2^20]");
    NEED(x->layers >= 1, p, "n_layer", "must be >= 1");
    NEED(x->vocab_size >= 30522, p, "vocab_size",
         "%d: the bert-base-uncased tokenizer emits ids up to 30521", x->vocab_size);
    NEED(x->max_length >= 3, p, "max_seq_len", "%d: need room for [CLS], a token and [SEP]",
         x->max_length);
    NEED(x->heads >= 1, p, "heads", "must be >= 1");
    NEED(x->head_dim >= 1, p, "dim_head", "must be >= 1");
    NEED(x->embedding_dropout >= 0.0 && x->embedding_dropout < 1.0, p, "embedding_dropout",
         "must lie in [0, 1)");
    x->max_positions = x->max_length;
    x->ff_dim = 4 * x->width;
    return TI_OK;
}

static ti_status rd_personalization(struct ld *ld, const struct ti_yaml_node *sec,
                                    struct ti_cfg_personalization *e) {
    static const enum ti_target ok[] = {TI_TARGET_EMBEDDING_MANAGER};
    enum ti_target t;
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, "embedding manager (personalization_config)", ok, 1, &t, &p));
    e->present = 1;
    NEED(p, sec, "params", "missing: EmbeddingManager needs placeholder_strings");
    check_keys(ld, p, K_EM, "not a parameter of EmbeddingManager");
    const struct ti_yaml_node *ps;
    TI_TRY(ti_yaml_require(p, "placeholder_strings", &ps, ld->err));
    TI_TRY(rd_words(ld, p, "placeholder_strings", e->placeholder_strings, &e->n_placeholders));
    NEED(e->n_placeholders >= 1, p, "placeholder_strings", "must name at least one placeholder");
    for (int k = 0; k < e->n_placeholders; k++) {
        NEED(e->placeholder_strings[k][0], ps->items[k], NULL, "a placeholder must not be empty");
        for (int j = 0; j < k; j++)
            NEED(strcmp(e->placeholder_strings[j], e->placeholder_strings[k]) != 0, ps->items[k],
                 NULL, "'%s' is listed twice", e->placeholder_strings[k]);
    }
    TI_TRY(rd_words(ld, p, "initializer_words", e->initializer_words, &e->n_initializer_words));
    TI_TRY(rd_bool(ld, p, "per_image_tokens", 0, &e->per_image_tokens));
    TI_TRY(rd_int(ld, p, "num_vectors_per_token", 1, &e->num_vectors_per_token));
    NEED(e->num_vectors_per_token >= 1, p, "num_vectors_per_token", "must be >= 1");
    TI_TRY(rd_bool(ld, p, "progressive_words", 0, &e->progressive_words));
    TI_TRY(rd_str(ld, p, "embedding_manager_ckpt", "", 1, e->embedding_manager_ckpt,
                  sizeof e->embedding_manager_ckpt));
    if (e->n_initializer_words > e->n_placeholders) {
        const struct ti_yaml_node *n = ti_yaml_get(p, "initializer_words");
        char path[300];
        warn(ld->cfg, TI_CFG_WARN_CONSISTENCY,
             "%s:%d:%d: %s: %d initializer words for %d placeholders: the extra words are unused",
             n->file, n->line, n->col, ti_yaml_path(n, path, sizeof path), e->n_initializer_words,
             e->n_placeholders);
    }
    return TI_OK;
}

/* ==== data ================================================================================= */

static ti_status rd_dataset(struct ld *ld, const struct ti_yaml_node *sec, const char *what,
                            struct ti_cfg_dataset *s) {
    static const enum ti_target ok[] = {TI_TARGET_PERSONALIZED_OBJECT,
                                        TI_TARGET_PERSONALIZED_STYLE};
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, what, ok, 2, &s->target, &p));
    s->present = 1;
    int style = s->target == TI_TARGET_PERSONALIZED_STYLE;
    s->templates = style ? TI_TEMPLATES_STYLE : TI_TEMPLATES_OBJECT;
    check_keys(ld, p, style ? K_PB_STYLE : K_PB_OBJECT,
               style ? "not a parameter of personalized_style.PersonalizedBase: the peer would "
                       "fail"
                     : "not a parameter of personalized.PersonalizedBase: the peer would fail");
    TI_TRY(rd_str(ld, p, "data_root", "", 0, s->data_root, sizeof s->data_root));
    TI_TRY(rd_int_null(ld, p, "size", 0, 0, &s->size));
    NEED(s->size >= 0, p, "size", "must be >= 1 (or null: no resize)");
    TI_TRY(rd_int(ld, p, "repeats", 100, &s->repeats));
    NEED(s->repeats >= 1, p, "repeats", "must be >= 1");
    char set[32], interp[32];
    TI_TRY(rd_str(ld, p, "set", "train", 0, set, sizeof set));
    s->is_train = strcmp(set, "train") == 0;
    TI_TRY(rd_str(ld, p, "interpolation", "bicubic", 0, interp, sizeof interp));
    if (!strcmp(interp, "linear") || !strcmp(interp, "bilinear"))
        s->interpolation = TI_INTERP_BILINEAR;
    else if (!strcmp(interp, "bicubic"))
        s->interpolation = TI_INTERP_BICUBIC;
    else if (!strcmp(interp, "lanczos"))
        s->interpolation = TI_INTERP_LANCZOS;
    else
        return verr(ld, p, "interpolation", "'%s': expected linear, bilinear, bicubic or lanczos",
                    interp);
    TI_TRY(rd_float(ld, p, "flip_p", 0.5, &s->flip_p));
    NEED(s->flip_p >= 0.0 && s->flip_p <= 1.0, p, "flip_p", "a probability must lie in [0, 1]");
    TI_TRY(rd_str(ld, p, "placeholder_token", "*", 0, s->placeholder_token,
                  sizeof s->placeholder_token));
    NEED(s->placeholder_token[0], p, "placeholder_token", "must not be empty");
    TI_TRY(rd_bool(ld, p, "per_image_tokens", 0, &s->per_image_tokens));
    TI_TRY(rd_bool(ld, p, "center_crop", 0, &s->center_crop));
    s->mixing_prob = 0.25;
    if (!style) {
        TI_TRY(rd_float(ld, p, "mixing_prob", 0.25, &s->mixing_prob));
        NEED(s->mixing_prob >= 0.0 && s->mixing_prob <= 1.0, p, "mixing_prob",
             "a probability must lie in [0, 1]");
        TI_TRY(rd_str(ld, p, "coarse_class_text", "", 1, s->coarse_class_text,
                      sizeof s->coarse_class_text));
    }
    return TI_OK;
}

static ti_status rd_data(struct ld *ld, const struct ti_yaml_node *sec, struct ti_cfg_data *d) {
    static const enum ti_target ok[] = {TI_TARGET_DATA_MODULE};
    enum ti_target t;
    const struct ti_yaml_node *p;
    TI_TRY(rd_section(ld, sec, "data module (data)", ok, 1, &t, &p));
    d->present = 1;
    NEED(p, sec, "params", "missing: DataModuleFromConfig needs batch_size");
    check_keys(ld, p, K_DM, "not a parameter of DataModuleFromConfig");
    const struct ti_yaml_node *n;
    TI_TRY(ti_yaml_require(p, "batch_size", &n, ld->err));
    TI_TRY(rd_int(ld, p, "batch_size", 0, &d->batch_size));
    NEED(d->batch_size >= 1, p, "batch_size", "must be >= 1");
    TI_TRY(
        rd_int_null(ld, p, "num_workers", 2 * d->batch_size, 2 * d->batch_size, &d->num_workers));
    NEED(d->num_workers >= 0, p, "num_workers", "must be >= 0");
    if ((n = ti_yaml_get(p, "train")) && !ti_yaml_is_null(n))
        TI_TRY(rd_dataset(ld, n, "training set (data.params.train)", &d->train));
    if ((n = ti_yaml_get(p, "validation")) && !ti_yaml_is_null(n))
        TI_TRY(rd_dataset(ld, n, "validation set (data.params.validation)", &d->validation));
    return TI_OK;
}

/* ==== lightning ============================================================================ */

/* Any scalar as text (gpus: "0," or 1 or null). */
static ti_status rd_scalar_text(struct ld *ld, const struct ti_yaml_node *m, const char *key,
                                const char *dflt, char *buf, size_t cap) {
    const struct ti_yaml_node *n = ti_yaml_get(m, key);
    const char *s = dflt;
    if (n && n->kind != TI_YAML_SCALAR)
        return verr(ld, n, NULL, "expected a scalar, found %s", ti_yaml_type_name(n));
    if (n) s = ti_yaml_is_null(n) ? "" : n->text;
    return copy_str(ld, m, key, s, buf, cap);
}

static ti_status rd_lightning(struct ld *ld, const struct ti_yaml_node *lt,
                              struct ti_cfg_lightning *l) {
    if (lt && ti_yaml_is_null(lt)) lt = NULL;
    NEED(!lt || lt->kind == TI_YAML_MAP, lt, NULL, "expected a mapping, found %s",
         ti_yaml_type_name(lt));
    check_keys(ld, lt, K_LIGHTNING, "main.py reads trainer, modelcheckpoint, callbacks, logger");
    const struct ti_yaml_node *tr = ti_yaml_get(lt, "trainer");
    if (tr && ti_yaml_is_null(tr)) tr = NULL;
    NEED(!tr || tr->kind == TI_YAML_MAP, tr, NULL, "expected a mapping, found %s",
         ti_yaml_type_name(tr));
    check_keys(ld, tr, K_TRAINER, "not a PyTorch-Lightning 1.5 Trainer argument");
    TI_TRY(rd_int_null(ld, tr, "max_steps", -1, -1, &l->max_steps));
    NEED(l->max_steps == -1 || l->max_steps >= 1, tr, "max_steps", "must be >= 1 (or -1)");
    TI_TRY(rd_int_null(ld, tr, "max_epochs", -1, -1, &l->max_epochs));
    NEED(l->max_epochs == -1 || l->max_epochs >= 1, tr, "max_epochs", "must be >= 1 (or -1)");
    TI_TRY(rd_int_null(ld, tr, "accumulate_grad_batches", 1, 1, &l->accumulate_grad_batches));
    NEED(l->accumulate_grad_batches >= 1, tr, "accumulate_grad_batches", "must be >= 1");
    TI_TRY(rd_bool(ld, tr, "benchmark", 0, &l->benchmark));
    TI_TRY(rd_scalar_text(ld, tr, "gpus", "", l->gpus, sizeof l->gpus));
    /* main.py: ngpu = len(gpus.strip(",").split(",")) -- "0,1" is 2, but "2" is 1 */
    {
        const char *a = l->gpus, *b = l->gpus + strlen(l->gpus);
        while (a < b && *a == ',')
            a++;
        while (b > a && b[-1] == ',')
            b--;
        l->n_gpus = 1;
        for (const char *c = a; c < b; c++)
            l->n_gpus += *c == ',';
    }
    TI_TRY(rd_scalar_text(ld, tr, "precision", "32", l->precision, sizeof l->precision));
    NEED(!strcmp(l->precision, "32") || !strcmp(l->precision, "16") ||
             !strcmp(l->precision, "64") || !strcmp(l->precision, "bf16"),
         tr, "precision", "'%s': expected 16, 32, 64 or bf16", l->precision);

    const struct ti_yaml_node *mc = ti_yaml_get(lt, "modelcheckpoint"), *mp = NULL;
    if (mc && !ti_yaml_is_null(mc)) {
        NEED(mc->kind == TI_YAML_MAP, mc, NULL, "expected a mapping, found %s",
             ti_yaml_type_name(mc));
        if (ti_yaml_get(mc, "target")) {
            static const enum ti_target ok[] = {TI_TARGET_MODEL_CHECKPOINT};
            enum ti_target t;
            TI_TRY(rd_section(ld, mc, "checkpoint callback (modelcheckpoint)", ok, 1, &t, &mp));
        } else {
            check_keys(ld, mc, K_SECTION, "a section takes target and params");
            mp = ti_yaml_get(mc, "params");
            if (mp && ti_yaml_is_null(mp)) mp = NULL;
            NEED(!mp || mp->kind == TI_YAML_MAP, mp, NULL, "expected a mapping, found %s",
                 ti_yaml_type_name(mp));
        }
        check_keys(ld, mp, K_CKPT, "not a ModelCheckpoint argument");
    }
    TI_TRY(rd_int_null(ld, mp, "every_n_train_steps", 0, 0, &l->every_n_train_steps));
    NEED(l->every_n_train_steps >= 0, mp, "every_n_train_steps", "must be >= 0");
    int epochs_default = l->every_n_train_steps == 0 && !ti_yaml_get(mp, "every_n_epochs") ? 1 : 0;
    TI_TRY(rd_int_null(ld, mp, "every_n_epochs", epochs_default, 0, &l->every_n_epochs));
    NEED(l->every_n_epochs >= 0, mp, "every_n_epochs", "must be >= 0");

    /* main.py merges its default image_logger {batch_frequency 750, max_images 4, clamp true}
     * under the config's; ImageLogger's own defaults fill the rest. */
    const struct ti_yaml_node *cb = ti_yaml_get(lt, "callbacks"), *ip = NULL;
    if (cb && ti_yaml_is_null(cb)) cb = NULL;
    NEED(!cb || cb->kind == TI_YAML_MAP, cb, NULL, "expected a mapping, found %s",
         ti_yaml_type_name(cb));
    check_keys(ld, cb, K_CALLBACKS, "ti runs no callbacks beyond main.py's defaults");
    const struct ti_yaml_node *il = ti_yaml_get(cb, "image_logger");
    if (il && !ti_yaml_is_null(il)) {
        NEED(il->kind == TI_YAML_MAP, il, NULL, "expected a mapping, found %s",
             ti_yaml_type_name(il));
        if (ti_yaml_get(il, "target")) {
            static const enum ti_target ok[] = {TI_TARGET_IMAGE_LOGGER};
            enum ti_target t;
            TI_TRY(rd_section(ld, il, "image logger (callbacks.image_logger)", ok, 1, &t, &ip));
        } else {
            ip = ti_yaml_get(il, "params");
            if (ip && ti_yaml_is_null(ip)) ip = NULL;
        }
        check_keys(ld, ip, K_IMAGE_LOGGER, "not an ImageLogger argument");
    }
    TI_TRY(rd_int(ld, ip, "batch_frequency", 750, &l->image_batch_frequency));
    NEED(l->image_batch_frequency >= 1, ip, "batch_frequency", "must be >= 1");
    TI_TRY(rd_int(ld, ip, "max_images", 4, &l->image_max_images));
    NEED(l->image_max_images >= 0, ip, "max_images", "must be >= 0");
    TI_TRY(rd_bool(ld, ip, "clamp", 1, &l->image_clamp));
    TI_TRY(rd_bool(ld, ip, "increase_log_steps", 1, &l->image_increase_log_steps));
    TI_TRY(rd_bool(ld, ip, "rescale", 1, &l->image_rescale));
    TI_TRY(rd_bool(ld, ip, "disabled", 0, &l->image_disabled));
    TI_TRY(rd_bool(ld, ip, "log_on_batch_idx", 0, &l->image_log_on_batch_idx));
    TI_TRY(rd_bool(ld, ip, "log_first_step", 0, &l->image_log_first_step));
    return TI_OK;
}

/* ==== The whole config ===================================================================== */

static ti_status cross_check(struct ld *ld, const struct ti_yaml_node *p, struct ti_config *c) {
    const struct ti_yaml_node *up = ti_yaml_get(p, "unet_config.params");
    const struct ti_yaml_node *fp = ti_yaml_get(p, "first_stage_config.params");
    const struct ti_yaml_node *dd = ti_yaml_get(fp, "ddconfig");
    NEED(c->unet.in_channels == c->vae.embed_dim, up, "in_channels",
         "%d, but the first stage's embed_dim is %d: the UNet denoises the latent",
         c->unet.in_channels, c->vae.embed_dim);
    NEED(c->unet.out_channels == c->unet.in_channels, up, "out_channels",
         "%d, but in_channels is %d: the UNet predicts the noise of its input",
         c->unet.out_channels, c->unet.in_channels);
    NEED(c->model.channels == c->vae.embed_dim, p, "channels",
         "%d, but the first stage's embed_dim is %d", c->model.channels, c->vae.embed_dim);
    NEED(c->unet.context_dim == c->text.width, up, "context_dim",
         "%d, but the text encoder (%s) has width %d", c->unet.context_dim,
         ti_target_name(c->text.target), c->text.width);
    NEED(c->model.image_size % c->unet.downsample == 0, p, "image_size",
         "latent side %d is not a multiple of %d (the UNet halves it %d times)",
         c->model.image_size, c->unet.downsample, c->unet.n_levels - 1);
    NEED(c->vae.in_channels == 3, dd, "in_channels", "%d: ti reads RGB images", c->vae.in_channels);
    NEED(c->vae.out_ch == 3, dd, "out_ch", "%d: ti writes RGB images", c->vae.out_ch);
    if (c->personalization.present) {
        const struct ti_yaml_node *ep = ti_yaml_get(p, "personalization_config.params");
        NEED(c->personalization.num_vectors_per_token <= c->text.max_length - 2, ep,
             "num_vectors_per_token", "%d vectors do not fit a prompt of %d tokens",
             c->personalization.num_vectors_per_token, c->text.max_length);
    }
    c->latent_size = c->model.image_size;
    c->pixel_size = c->latent_size * c->vae.downsample;
    c->token_dim = c->text.width;
    c->seq_len = c->text.max_length;
    return TI_OK;
}

static ti_status check_data_sizes(struct ld *ld, const struct ti_yaml_node *root,
                                  struct ti_config *c) {
    const struct ti_cfg_dataset *sets[2] = {&c->data.train, &c->data.validation};
    static const char *const keys[2] = {"data.params.train.params",
                                        "data.params.validation.params"};
    int f = c->vae.downsample * c->unet.downsample;
    for (int k = 0; k < 2; k++) {
        const struct ti_cfg_dataset *s = sets[k];
        if (!s->present || s->size == 0) continue;
        const struct ti_yaml_node *p = ti_yaml_get(root, keys[k]);
        NEED(s->size % f == 0, p, "size",
             "%d px is not a multiple of %d (first stage x%d, UNet x%d)", s->size, f,
             c->vae.downsample, c->unet.downsample);
        if (s->size != c->pixel_size) {
            const struct ti_yaml_node *n = ti_yaml_get(p, "size");
            char path[300];
            warn(c, TI_CFG_WARN_CONSISTENCY,
                 "%s:%d:%d: %s: %d px images give %dx%d latents, but model.params.image_size "
                 "is %d (%d px): training runs at %d px, sampled images are %d px",
                 n ? n->file : p->file, n ? n->line : p->line, n ? n->col : p->col,
                 n ? ti_yaml_path(n, path, sizeof path) : keys[k], s->size,
                 s->size / c->vae.downsample, s->size / c->vae.downsample, c->latent_size,
                 c->pixel_size, s->size, c->pixel_size);
        }
    }
    return TI_OK;
}

ti_status ti_config_from_yaml(struct ti_config *cfg, const struct ti_yaml_node *root,
                              struct ti_err *err) {
    if (!cfg) return ti_error(err, TI_ERR_INVALID, "ti_config_from_yaml: NULL config");
    memset(cfg, 0, sizeof *cfg);
    if (!root) return ti_error(err, TI_ERR_INVALID, "ti_config_from_yaml: NULL tree");
    struct ld ctx = {cfg, err}, *ld = &ctx;
    ti_status st = TI_OK;
    if (root->kind != TI_YAML_MAP) {
        st = verr(ld, root, NULL, "the top level must be a mapping");
        goto fail;
    }
    check_keys(ld, root, K_TOP, "main.py reads model, data and lightning");

    const struct ti_yaml_node *model, *p, *n;
    TI_TRY_GOTO(st, ti_yaml_require(root, "model", &model, err));
    if (model->kind != TI_YAML_MAP) {
        st = verr(ld, model, NULL, "expected a mapping, found %s", ti_yaml_type_name(model));
        goto fail;
    }
    check_keys(ld, model, K_MODEL, "main.py reads base_learning_rate, target and params");
    {
        const struct ti_yaml_node *t;
        const char *name;
        TI_TRY_GOTO(st, ti_yaml_require(model, "target", &t, err));
        TI_TRY_GOTO(st, ti_yaml_as_str(t, &name, err));
        if (ti_target_lookup(name) != TI_TARGET_LATENT_DIFFUSION) {
            st = verr(ld, t, NULL, "'%s': ti reads latent-diffusion configs (target %s)%s", name,
                      ti_target_name(TI_TARGET_LATENT_DIFFUSION),
                      ti_target_lookup(name) == TI_TARGET_AUTOENCODER_KL
                          ? "; this is an autoencoder config (see ti_config_read_vae)"
                          : "");
            goto fail;
        }
    }
    TI_TRY_GOTO(st, ti_yaml_require(model, "params", &p, err));
    if (p->kind != TI_YAML_MAP) {
        st = verr(ld, p, NULL, "expected a mapping, found %s", ti_yaml_type_name(p));
        goto fail;
    }
    /* an unconditional model makes the conditioning checks below moot: say that first */
    if ((n = ti_yaml_get(p, "cond_stage_config")) && n->kind == TI_YAML_SCALAR)
        TI_TRY_GOTO(st, rd_text(ld, n, &cfg->text));
    TI_TRY_GOTO(st, rd_diffusion(ld, model, p, &cfg->model));
    TI_TRY_GOTO(st, ti_yaml_require(p, "unet_config", &n, err));
    TI_TRY_GOTO(st, rd_unet(ld, n, &cfg->unet));
    TI_TRY_GOTO(st, ti_yaml_require(p, "first_stage_config", &n, err));
    TI_TRY_GOTO(st, ti_config_read_vae(&cfg->vae, n, cfg, err));
    TI_TRY_GOTO(st, ti_yaml_require(p, "cond_stage_config", &n, err));
    TI_TRY_GOTO(st, rd_text(ld, n, &cfg->text));
    if ((n = ti_yaml_get(p, "personalization_config")) && !ti_yaml_is_null(n))
        TI_TRY_GOTO(st, rd_personalization(ld, n, &cfg->personalization));
    TI_TRY_GOTO(st, cross_check(ld, p, cfg));
    if ((n = ti_yaml_get(root, "data")) && !ti_yaml_is_null(n)) {
        TI_TRY_GOTO(st, rd_data(ld, n, &cfg->data));
        TI_TRY_GOTO(st, check_data_sizes(ld, root, cfg));
    }
    TI_TRY_GOTO(st, rd_lightning(ld, ti_yaml_get(root, "lightning"), &cfg->lightning));
    return TI_OK;
fail:
    memset(cfg, 0, offsetof(struct ti_config, n_warnings));
    return st;
}

ti_status ti_config_load(struct ti_config *cfg, const char *const *files, int n_files,
                         const char *const *overrides, int n_overrides, struct ti_err *err) {
    if (!cfg) return ti_error(err, TI_ERR_INVALID, "ti_config_load: NULL config");
    memset(cfg, 0, sizeof *cfg);
    if (n_files < 1)
        return ti_error(err, TI_ERR_INVALID, "ti_config_load: no config file given (--base)");
    struct ti_yaml_doc *doc;
    TI_TRY(ti_yaml_load_merged(&doc, files, n_files, overrides, n_overrides, err));
    ti_status st = ti_config_from_yaml(cfg, ti_yaml_root(doc), err);
    ti_yaml_free(doc);
    return st;
}

ti_status ti_config_check_train(const struct ti_config *c, struct ti_err *err) {
    if (!c) return ti_error(err, TI_ERR_INVALID, "ti_config_check_train: NULL config");
    const struct ti_cfg_personalization *e = &c->personalization;
    if (!e->present)
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.personalization_config is missing: training needs an "
                        "EmbeddingManager (use a *-finetune.yaml config)");
    if (!c->data.present || !c->data.train.present)
        return ti_error(err, TI_ERR_CONFIG,
                        "data.params.train is missing: training needs a PersonalizedBase set");
    if (!c->data.train.data_root[0])
        return ti_error(err, TI_ERR_CONFIG,
                        "data.params.train.params.data_root is empty: give --data_root");
    if (!c->model.has_base_learning_rate)
        return ti_error(err, TI_ERR_CONFIG, "model.base_learning_rate is missing");
    if (!c->model.cond_stage_trainable)
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.cond_stage_trainable is false: the peer then encodes the "
                        "captions without gradients and the embedding learns nothing; set it "
                        "to true (as v1-finetune.yaml does)");
    if (strcmp(c->model.first_stage_key, "image") != 0 ||
        strcmp(c->model.cond_stage_key, "caption") != 0)
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.first_stage_key / cond_stage_key are '%s' / '%s': "
                        "PersonalizedBase yields 'image' and 'caption'",
                        c->model.first_stage_key, c->model.cond_stage_key);
    const struct ti_cfg_dataset *sets[2] = {&c->data.train, &c->data.validation};
    for (int k = 0; k < 2; k++) {
        const struct ti_cfg_dataset *s = sets[k];
        if (!s->present) continue;
        int found = 0;
        for (int j = 0; j < e->n_placeholders; j++)
            found |= strcmp(e->placeholder_strings[j], s->placeholder_token) == 0;
        if (!found)
            return ti_error(err, TI_ERR_CONFIG,
                            "data.params.%s.params.placeholder_token '%s' is not one of the "
                            "placeholder_strings (first: '%s'): the captions would never "
                            "contain a learned token (set both, or give --placeholder_string, "
                            "which sets both)",
                            k ? "validation" : "train", s->placeholder_token,
                            e->placeholder_strings[0]);
    }
    return TI_OK;
}

double ti_config_learning_rate(const struct ti_config *c, int scale_lr) {
    if (!scale_lr) return c->model.base_learning_rate;
    return (double)c->lightning.accumulate_grad_batches * c->lightning.n_gpus * c->data.batch_size *
           c->model.base_learning_rate;
}
