/*
 * safety_checker.h - the NSFW safety checker of the reference txt2img script (diffusers
 * StableDiffusionSafetyChecker, CompVis/stable-diffusion-safety-checker; sd-arch.md section
 * 8.5): the CLIP vision tower's image embedding (clip_vision.h) compared with 3 "special care"
 * and 17 concept embeddings by cosine similarity, with the checker's thresholds and its
 * adjustment rule.
 *
 * Decision per image, as the reference (diffusers >= 2022-08-21, adjustment starts at 0):
 *   for each special concept c in order: score = round(cos - threshold + adjustment, 3);
 *     score > 0: the image needs special care and adjustment becomes 0.01 (for later concepts);
 *   for each of the 17 concepts: score = round(cos - threshold + adjustment, 3); any > 0: NSFW.
 * The cosines are rounded to float32 first and the scores are computed in float64 with numpy's
 * round (rint(x * 1000) / 1000), as the reference does.
 *
 * Not here: the feature extractor (resize shortest side to 224 bicubic, center crop, /255,
 * CLIP mean/std), replacing flagged images (txt2img: assets/rick.jpeg).
 * Keys (prefix "" for the checker's own model file): vision_model.vision_model.*,
 * visual_projection.weight, concept_embeds, special_care_embeds, concept_embeds_weights,
 * special_care_embeds_weights.
 */
#ifndef TI_SAFETY_CHECKER_H
#define TI_SAFETY_CHECKER_H

#include "clip_vision.h"

#define TI_SAFETY_CONCEPTS 17
#define TI_SAFETY_SPECIAL  3

struct ti_safety_checker {
    struct ti_clip_vision v;
    struct ti_tensor concept, special;         /* (17, proj), (3, proj) */
    struct ti_tensor concept_thr, special_thr; /* (17), (3) */
};

struct ti_safety_result {
    int nsfw;         /* any concept score > 0: the reference blanks the image */
    int special_care; /* any special score > 0 */
    float special_cos[TI_SAFETY_SPECIAL], concept_cos[TI_SAFETY_CONCEPTS];
    double special_score[TI_SAFETY_SPECIAL], concept_score[TI_SAFETY_CONCEPTS];
};

ti_status ti_safety_checker_init(struct ti_safety_checker *sc,
                                 const struct ti_clip_vision_hparams *hp, const char *prefix,
                                 struct ti_weights *w, struct ti_err *err);
void ti_safety_checker_free(struct ti_safety_checker *sc);

/* Fills every parameter registered in w (after ti_weights_alloc) from the checker's own file:
 * diffusers' safety_checker/model.safetensors or pytorch_model.bin (keys with prefix "").
 * Every key and shape is checked first; a mismatch names the key and both shapes. */
ti_status ti_safety_checker_load_file(struct ti_weights *w, const char *path, struct ti_err *err);

/* Finds the checker's weights file and reads its hyperparameters, before any allocation.
 * path: the checker's diffusers folder (model.safetensors or pytorch_model.bin, config.json),
 * a pipeline folder holding safety_checker/, or the weights file itself. The sizes come from
 * the tensors' shapes (patch conv, positions, layer count, MLP, projection); the head count,
 * which no shape holds, from vision_config.num_attention_heads (or vision_config_dict's) of the
 * config.json in the folder or beside the file, else width / 64 (CLIP's head width: 16 for
 * ViT-L/14). file (file_n bytes) gets the weights file's path. Errors name the path and the
 * missing key or inconsistent size (not a checker, e.g. a UNet file; a config.json whose head
 * count does not divide the width). */
ti_status ti_safety_checker_probe(struct ti_clip_vision_hparams *hp, char *file, size_t file_n,
                                  const char *path, struct ti_err *err);

/* probe + init (prefix "") + ti_weights_alloc + load_file: the checker at path (as for probe)
 * on be in dt, ready to run; w is initialised here. Free with ti_safety_checker_free and
 * ti_weights_free; on error nothing stays allocated. */
ti_status ti_safety_checker_load(struct ti_safety_checker *sc, struct ti_weights *w,
                                 const char *path, const struct ti_backend *be, enum ti_dtype dt,
                                 struct ti_err *err);

/* pixels (B, 3, S, S), the feature extractor's output in the weights' dtype -> res[0..B-1] */
ti_status ti_safety_checker_run(struct ti_ctx *ctx, struct ti_safety_result *res,
                                const struct ti_safety_checker *sc, const struct ti_tensor *pixels);

/* The decision alone: r->special_cos / concept_cos filled in; thresholds as stored (float). */
void ti_safety_decide(struct ti_safety_result *r, const float *special_thr,
                      const float *concept_thr);

#endif /* TI_SAFETY_CHECKER_H */
