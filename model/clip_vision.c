/*
 * clip_vision.c - CLIP ViT vision tower + projection (see clip_vision.h; transformers
 * CLIPVisionTransformer, diffusers StableDiffusionSafetyChecker).
 */
#include "clip_vision.h"

#include <stdlib.h>
#include <string.h>

void ti_clip_vision_hparams_l14(struct ti_clip_vision_hparams *hp) {
    hp->image_size = 224;
    hp->patch = 14;
    hp->width = 1024;
    hp->layers = 24;
    hp->heads = 16;
    hp->head_dim = 64;
    hp->ff_width = 4096;
    hp->proj_dim = 768;
}

ti_status ti_clip_vision_init(struct ti_clip_vision *v, const struct ti_clip_vision_hparams *hp,
                              const char *prefix, const char *proj_prefix, struct ti_weights *w,
                              struct ti_err *err) {
    memset(v, 0, sizeof *v);
    if (hp->image_size <= 0 || hp->patch <= 0 || hp->image_size % hp->patch || hp->width <= 0 ||
        hp->layers <= 0 || hp->heads <= 0 || hp->head_dim <= 0 || hp->ff_width <= 0 ||
        hp->proj_dim <= 0)
        return ti_error(err, TI_ERR_CONFIG,
                        "clip vision: invalid hyperparameters (image %d, patch %d: the image "
                        "size must be a multiple of the patch; width %d, layers %d, heads %d x %d, "
                        "ff %d, projection %d)",
                        hp->image_size, hp->patch, hp->width, hp->layers, hp->heads, hp->head_dim,
                        hp->ff_width, hp->proj_dim);
    v->hp = *hp;
    v->layers = calloc((size_t)hp->layers, sizeof *v->layers);
    if (!v->layers) return ti_error(err, TI_ERR_NOMEM, "out of host memory");
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    int D = hp->width, G = hp->image_size / hp->patch;
    TI_TRY(ti_weights_add1(w, &v->class_emb, ti_key(k, prefix, "embeddings."), "class_embedding", D,
                           err));
    TI_TRY(ti_weights_add4(w, &v->patch_w, ti_key(k, prefix, "embeddings.patch_embedding."),
                           "weight", D, 3, hp->patch, hp->patch, err));
    TI_TRY(ti_weights_add2(w, &v->pos_emb, ti_key(k, prefix, "embeddings.position_embedding."),
                           "weight", G * G + 1, D, err));
    TI_TRY(ti_weights_add1(w, &v->pre_w, ti_key(k, prefix, "pre_layrnorm."), "weight", D, err));
    TI_TRY(ti_weights_add1(w, &v->pre_b, k, "bias", D, err));
    for (int l = 0; l < hp->layers; l++)
        TI_TRY(ti_clip_layer_init(&v->layers[l], w, ti_key(p, prefix, "encoder.layers.%d.", l), D,
                                  hp->heads * hp->head_dim, hp->ff_width, err));
    TI_TRY(ti_weights_add1(w, &v->post_w, ti_key(k, prefix, "post_layernorm."), "weight", D, err));
    TI_TRY(ti_weights_add1(w, &v->post_b, k, "bias", D, err));
    return ti_weights_add2(w, &v->proj_w, proj_prefix, "weight", hp->proj_dim, D, err);
}

void ti_clip_vision_free(struct ti_clip_vision *v) {
    free(v->layers);
    v->layers = NULL;
}

/* (B, 3, S, S) -> (B, G*G + 1, D): [class; patches] + positions */
static ti_status embed(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_clip_vision *v,
                       const struct ti_tensor *pixels) {
    const struct ti_clip_vision_hparams *hp = &v->hp;
    int64_t B = pixels->shape[0], D = hp->width;
    struct ti_tensor pc = ti_tensor_none(), pt = ti_tensor_none(), cls = ti_tensor_none(),
                     cat = ti_tensor_none();
    struct ti_tensor c1, cb;
    const int pad[4] = {0, 0, 0, 0};
    ti_status st;
    TI_TRY_GOTO(st, ti_conv2d(ctx, &pc, pixels, &v->patch_w, NULL, hp->patch, pad));
    TI_TRY_GOTO(st, ti_nchw_to_tokens(ctx, &pt, &pc)); /* (B, G*G, D), row-major patches */
    /* the class token, expanded to (B, 1, D) and materialised for the concatenation */
    const int64_t s1[3] = {1, 1, D}, sb[3] = {B, 1, D};
    TI_TRY_GOTO(st, ti_tensor_reshape_view(&c1, &v->class_emb, 3, s1, &ctx->err));
    TI_TRY_GOTO(st, ti_tensor_broadcast_view(&cb, &c1, 3, sb, &ctx->err));
    TI_TRY_GOTO(st, ti_contiguous(ctx, &cls, &cb));
    TI_TRY_GOTO(st, ti_concat(ctx, &cat, &cls, &pt, 1));
    st = ti_add(ctx, out, &cat, &v->pos_emb); /* (B, T, D) + (T, D) */
fail:
    ti_tensor_release(&pc);
    ti_tensor_release(&pt);
    ti_tensor_release(&cls);
    ti_tensor_release(&cat);
    return st;
}

ti_status ti_clip_vision_forward(struct ti_ctx *ctx, struct ti_tensor *embeds,
                                 struct ti_tensor *pooled, struct ti_tensor *hidden,
                                 const struct ti_clip_vision *v, const struct ti_tensor *pixels) {
    const struct ti_clip_vision_hparams *hp = &v->hp;
    *embeds = ti_tensor_none();
    if (pooled) *pooled = ti_tensor_none();
    if (hidden) *hidden = ti_tensor_none();
    if (pixels->ndim != 4 || pixels->shape[1] != 3 || pixels->shape[2] != hp->image_size ||
        pixels->shape[3] != hp->image_size) {
        char s[64];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "clip vision: pixels %s must be (B, 3, %d, %d) (the feature extractor's "
                        "crop size)",
                        ti_shape_str(pixels->ndim, pixels->shape, s, sizeof s), hp->image_size,
                        hp->image_size);
    }
    int64_t B = pixels->shape[0], D = hp->width;
    struct ti_tensor e = ti_tensor_none(), h = ti_tensor_none(), c = ti_tensor_none(),
                     n = ti_tensor_none(), p = ti_tensor_none();
    ti_status st;
    TI_TRY_GOTO(st, embed(ctx, &e, v, pixels));
    TI_TRY_GOTO(st, ti_layernorm(ctx, &h, &e, &v->pre_w, &v->pre_b, 1e-5));
    for (int l = 0; l < hp->layers; l++)
        TI_TRY_GOTO(st, ti_text_layer_forward(ctx, &h, &v->layers[l], hp->heads, hp->head_dim,
                                              0 /* not causal */, 1 /* quick-GELU */));
    /* pooled = post_layernorm(hidden[:, 0, :]) */
    TI_TRY_GOTO(st, ti_slice(ctx, &c, &h, 1, 0, 1)); /* (B, 1, D) view */
    TI_TRY_GOTO(st, ti_layernorm(ctx, &n, &c, &v->post_w, &v->post_b, 1e-5));
    const int64_t s2[2] = {B, D};
    TI_TRY_GOTO(st, ti_reshape(ctx, &p, &n, 2, s2));
    TI_TRY_GOTO(st, ti_linear(ctx, embeds, &p, &v->proj_w, NULL));
    if (pooled) {
        *pooled = p;
        p = ti_tensor_none();
    }
    if (hidden) {
        *hidden = h;
        h = ti_tensor_none();
    }
fail:
    ti_tensor_release(&e);
    ti_tensor_release(&h);
    ti_tensor_release(&c);
    ti_tensor_release(&n);
    ti_tensor_release(&p);
    return st;
}
