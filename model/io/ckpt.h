/*
 * ckpt.h - model weights as a state dict: key -> tensor view, from any file users bring.
 *
 *   struct ti_state_dict *sd;
 *   TI_TRY(ti_state_dict_open(&sd, "sd-v1-4.ckpt", NULL, err));   // or .safetensors, a folder
 *   TI_TRY(ti_state_dict_check(sd, spec, n_spec, "SD v1", err));  // shapes vs the config
 *   const struct ti_tensor *w = ti_state_dict_find(sd, "model.diffusion_model.out.2.weight");
 *   ... copy/convert w into the model's weight arena ...
 *   ti_state_dict_close(sd);                                       // views die here
 *
 * Sources (detected by content, not by extension):
 *   - torch files (.ckpt/.pt/.pth/.bin, zip or legacy; torchfile.h): the tensors under the
 *     root's "state_dict" dict when there is one (pytorch-lightning checkpoints: SD v1.x,
 *     LDM text2img-large), else every tensor in the file; nested dict keys are joined by '.'.
 *   - .safetensors (safetensors.h): every tensor, by name (the same original layouts).
 *   - a diffusers folder: unet/, text_encoder/, vae/ (each diffusion_pytorch_model.* or
 *     model.* / pytorch_model.*, safetensors preferred, fp16 variants accepted), mapped onto the
 *     original names (sd-arch.md §2.3): UNet -> model.diffusion_model.*, text encoder ->
 *     cond_stage_model.transformer.*, VAE -> first_stage_model.*. The VAE attention weights
 *     (diffusers [512, 512] linear) are exposed with the original [512, 512, 1, 1] shape, and
 *     the text encoder's position_ids (not saved by newer transformers) are synthesised as
 *     0..P-1. A key with no SD v1 counterpart is an error naming it. tokenizer/ is recorded
 *     (ti_state_dict_tokenizer_dir) for the tokenizer loader.
 * Tensors are views into the mapped files (any dtype, possibly strided; read-only): nothing is
 * copied, so opening a 4 GB checkpoint costs about as much as parsing its pickle. The model
 * converts while copying into its own weight arena.
 *
 * EMA. Full lightning checkpoints carry `model_ema.*` next to the UNet: one tensor per UNet
 * parameter named "model_ema." + ("diffusion_model." + name) with the dots removed. Like the
 * peer, ti uses the non-EMA weights unless asked (opts.use_ema), and then the EMA tensor is
 * exposed under the model.diffusion_model.* key (every UNet key must have one; a file without
 * model_ema.* keys is an error, since an EMA-only checkpoint already holds EMA weights).
 *
 * Shape check. The model layer describes what it needs as `struct ti_param_spec` arrays;
 * ti_state_dict_check reports the first missing key or mismatching shape with both shapes and
 * the likely cause, from the file's own keys: an SD 2.x file (OpenCLIP, 1024-wide context),
 * SDXL (`conditioner.` keys, 2048-wide context), LDM text2img-large (BERT, 1280) vs SD v1
 * (CLIP, 768), inpainting UNets (9 input channels), VAE-only, LoRA and embedding files; the
 * spec's own family (a damaged or modified file) is judged from its text encoder's keys, so a
 * tiny config of the SD v1 layout counts as SD v1. A missing key the file holds in another form
 * is named with that form: only as an EMA copy (model_ema.*), under an extra prefix (DDP's
 * "module."), without its prefix (a UNet-only export), or under diffusers names (a single
 * diffusers file instead of a folder). The reference loads none of these either (strict=False
 * leaves the weights untrained).
 * Extra keys in the file are ignored (the peer loads with strict=False).
 *
 * Not here: the containers (torchfile.h, safetensors.h), embeddings (train/embedding_io.h).
 */
#ifndef TI_CKPT_H
#define TI_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One parameter the model needs: its checkpoint key and shape (ndim <= 4). */
struct ti_param_spec {
    const char *key;
    int ndim;
    int64_t shape[4];
};

enum ti_state_dict_source { TI_SD_TORCH = 1, TI_SD_SAFETENSORS = 2, TI_SD_DIFFUSERS = 3 };

#define TI_USE_EMA_IF_PRESENT 2

struct ti_state_dict_opts {
    int use_ema;    /* expose model_ema.* weights as the UNet's (default 0, like the peer);
                     * TI_USE_EMA_IF_PRESENT: only when the file holds model_ema.* (a config's
                     * use_ema: the reference samples under ema_scope then) */
    int verify_crc; /* check the CRC-32 of every zip record (reads the whole file) */
    int allow_unknown_globals; /* keep pickle globals outside the allowlist inert (pickle.h) */
};

struct ti_state_dict_entry {
    const char *key;
    struct ti_tensor t; /* CPU view, read-only */
};

struct ti_state_dict;

/* Opens a file or diffusers folder. opts may be NULL (defaults). */
ti_status ti_state_dict_open(struct ti_state_dict **out, const char *path,
                             const struct ti_state_dict_opts *opts, struct ti_err *err);
void ti_state_dict_close(struct ti_state_dict *sd);

/* Entries sorted by key. */
size_t ti_state_dict_count(const struct ti_state_dict *sd);
const struct ti_state_dict_entry *ti_state_dict_at(const struct ti_state_dict *sd, size_t i);
/* NULL if absent. */
const struct ti_tensor *ti_state_dict_find(const struct ti_state_dict *sd, const char *key);
/* TI_ERR_NOT_FOUND with a message naming the key and the file if absent. */
ti_status ti_state_dict_get(const struct ti_state_dict *sd, const char *key,
                            const struct ti_tensor **out, struct ti_err *err);

enum ti_state_dict_source ti_state_dict_source(const struct ti_state_dict *sd);
const char *ti_state_dict_path(const struct ti_state_dict *sd);
/* 1 if the file holds model_ema.* tensors. */
int ti_state_dict_has_ema(const struct ti_state_dict *sd);
/* diffusers folder: its tokenizer/ path, or NULL. */
const char *ti_state_dict_tokenizer_dir(const struct ti_state_dict *sd);

/* Every spec key present with the spec's shape; `model` names the config in messages
 * ("SD v1"). */
ti_status ti_state_dict_check(const struct ti_state_dict *sd, const struct ti_param_spec *spec,
                              size_t n, const char *model, struct ti_err *err);

/* Starts reading, in the background, the bytes of the tensors `spec` names (every tensor when
 * spec is NULL), in file order: a model about to copy its weights calls this after
 * ti_state_dict_check, so a cold load streams at disk speed instead of faulting page by page.
 * Tensors outside the spec (EMA copies, optimizer state) are not read. A hint: it cannot fail. */
void ti_state_dict_prefetch(const struct ti_state_dict *sd, const struct ti_param_spec *spec,
                            size_t n);

/* What the file looks like, from its keys and shapes ("an SD 2.x checkpoint (...)"), into buf;
 * "" when ti cannot tell. Returns buf. */
const char *ti_state_dict_describe(const struct ti_state_dict *sd, char *buf, size_t n);

/* The diffusers -> original key mapping (exposed for tests and ti-inspect): component is
 * "unet", "vae" or "text_encoder"; writes the original key (with its prefix) into out.
 * Returns 1 if mapped, 0 if the key has no SD v1 counterpart. */
int ti_diffusers_key_map(const char *component, const char *key, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* TI_CKPT_H */
