/*
 * clip_vision.h - the CLIP ViT vision tower and its projection, as the safety checker of the
 * reference txt2img uses it (diffusers StableDiffusionSafetyChecker = transformers
 * CLIPVisionModel + visual_projection; sd-arch.md section 8.5). Forward only (the checker runs
 * under no_grad), on the existing ops.
 *
 *   pixels (B, 3, S, S), already normalised (CLIPFeatureExtractor: resize, crop, mean/std)
 *   -> patch conv (P x P, stride P, no bias) -> (B, G*G, D) tokens, G = S / P
 *   -> [class token; patches] + position embedding (G*G + 1 rows)
 *   -> pre_layrnorm (sic, the checkpoint's spelling) -> L pre-LN layers (non-causal attention
 *      with q/k/v/out biases, quick-GELU MLP; the CLIP text layer, text_encoder.h)
 *   -> last hidden state (B, T, D); pooled = post_layernorm(hidden[:, 0]) (B, D)
 *   -> image embedding = visual_projection(pooled) (B, proj), no bias.
 *
 * Key names (the safety checker's checkpoint, safety_checker/model.safetensors or
 * pytorch_model.bin): prefix "vision_model.vision_model." + embeddings.{class_embedding,
 * patch_embedding.weight, position_embedding.weight}, pre_layrnorm.*, encoder.layers.N.*,
 * post_layernorm.*; projection "visual_projection.weight".
 *
 * Not here: the feature extractor (image resize/crop/normalise), the concept comparison.
 *   struct ti_clip_vision v;
 *   TI_TRY(ti_clip_vision_init(&v, &hp, "vision_model.vision_model.", "visual_projection.", &w,
 * err)); TI_TRY(ti_clip_vision_forward(ctx, &embeds, NULL, NULL, &v, &pixels));
 */
#ifndef TI_CLIP_VISION_H
#define TI_CLIP_VISION_H

#include "text_encoder.h" /* defines: struct ti_text_layer, ti_clip_layer_init */

struct ti_clip_vision_hparams {
    int image_size, patch, width, layers, heads, head_dim, ff_width, proj_dim;
};

/* CLIP ViT-L/14 as in CompVis/stable-diffusion-safety-checker: 224, 14, 1024, 24 layers,
 * 16 heads x 64, 4096, projection 768 */
void ti_clip_vision_hparams_l14(struct ti_clip_vision_hparams *hp);

struct ti_clip_vision {
    struct ti_clip_vision_hparams hp;
    struct ti_tensor patch_w;   /* (D, 3, P, P) */
    struct ti_tensor class_emb; /* (D) */
    struct ti_tensor pos_emb;   /* (G*G + 1, D) */
    struct ti_tensor pre_w, pre_b, post_w, post_b;
    struct ti_tensor proj_w; /* (proj, D) */
    struct ti_text_layer *layers;
};

/* Registers every parameter in w (prefix: the vision transformer's, proj_prefix: the
 * projection's, e.g. "visual_projection."). Errors: invalid hparams (S not a multiple of P,
 * non-positive sizes), out of memory. Free with ti_clip_vision_free. */
ti_status ti_clip_vision_init(struct ti_clip_vision *v, const struct ti_clip_vision_hparams *hp,
                              const char *prefix, const char *proj_prefix, struct ti_weights *w,
                              struct ti_err *err);
void ti_clip_vision_free(struct ti_clip_vision *v);

/* pixels (B, 3, S, S) in the weights' dtype -> embeds (B, proj); pooled (B, D) and hidden
 * (B, G*G + 1, D) (the last hidden state, before post_layernorm) when not NULL. Each output is
 * a new reference for the caller to release. */
ti_status ti_clip_vision_forward(struct ti_ctx *ctx, struct ti_tensor *embeds,
                                 struct ti_tensor *pooled, struct ti_tensor *hidden,
                                 const struct ti_clip_vision *v, const struct ti_tensor *pixels);

#endif /* TI_CLIP_VISION_H */
