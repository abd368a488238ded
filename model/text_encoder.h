/*
 * text_encoder.h - the two conditioning encoders, both taking token indices in the embedding
 * op's convention (idx >= 0: row of the frozen token table; idx < 0: row -1-idx of the
 * trainable placeholder vectors), so the textual-inversion vectors enter exactly where the
 * peer's EmbeddingManager substitutes them: after the token lookup, before positions.
 *
 *   CLIP ViT-L/14 text tower (SD v1, HF CLIPTextModel key names under
 *   "cond_stage_model.transformer.text_model."): 12 pre-LN layers, causal self-attention with
 *   q/k/v/out biases, quick-GELU MLP, final LayerNorm; SD uses all T hidden states.
 *
 *   LDM BERTEmbedder (x-transformers TransformerWrapper + Encoder, key names under
 *   "cond_stage_model.transformer."): learned absolute positions, 32 pre-norm layers of
 *   non-causal attention (8 heads x 64, no q/k/v bias) and GELU feed-forward, final LayerNorm.
 *
 *   struct ti_clip_text c;
 *   TI_TRY(ti_clip_text_init(&c, &hp, "cond_stage_model.transformer.text_model.", &w, err));
 *   TI_TRY(ti_clip_text_forward(ctx, &hidden, &c, &idx, &rows));     // (B, T, D)
 */
#ifndef TI_TEXT_ENCODER_H
#define TI_TEXT_ENCODER_H

#include "blocks.h"

struct ti_text_hparams {
    int vocab_size, max_positions, width, layers, heads, head_dim, ff_width;
};

/* openai/clip-vit-large-patch14 text config: 49408, 77, 768, 12 layers, 12 heads x 64, 3072 */
void ti_text_hparams_clip_l14(struct ti_text_hparams *hp);
/* LDM text2img-large BERTEmbedder: 30522, 77, 1280, 32 layers, 8 heads x 64, 5120 */
void ti_text_hparams_ldm_bert(struct ti_text_hparams *hp);

struct ti_text_layer {
    struct ti_tensor ln1_w, ln1_b, ln2_w, ln2_b;
    struct ti_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b; /* q/k/v biases: CLIP only */
    struct ti_tensor fc1_w, fc1_b, fc2_w, fc2_b;
};

struct ti_text_encoder {
    struct ti_text_hparams hp;
    int is_clip; /* CLIP (causal, quick-GELU, biases) or LDM BERT */
    struct ti_tensor tok_emb, pos_emb, final_w, final_b;
    struct ti_text_layer *layers;
};

ti_status ti_clip_text_init(struct ti_text_encoder *e, const struct ti_text_hparams *hp,
                            const char *prefix, struct ti_weights *w, struct ti_err *err);
ti_status ti_bert_embedder_init(struct ti_text_encoder *e, const struct ti_text_hparams *hp,
                                const char *prefix, struct ti_weights *w, struct ti_err *err);
void ti_text_encoder_free(struct ti_text_encoder *e);

/* One CLIP encoder layer's parameters under prefix (".../encoder.layers.N."), HF
 * CLIPEncoderLayer names: self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1/fc2, layer_norm2.
 * Shared by the text tower and the vision tower (model/clip_vision.h). */
ti_status ti_clip_layer_init(struct ti_text_layer *L, struct ti_weights *w, const char *prefix,
                             int width, int inner, int ff_width, struct ti_err *err);
/* One pre-LN layer on the residual stream h (B, T, D), replaced in place (the old tensor is
 * released): h += out_proj(attn(LN1(h))); h += fc2(act(fc1(LN2(h)))), LayerNorm eps 1e-5,
 * act = quick-GELU or GELU, q/k/v biases when the layer has them. */
ti_status ti_text_layer_forward(struct ti_ctx *ctx, struct ti_tensor *h,
                                const struct ti_text_layer *L, int heads, int head_dim, int causal,
                                int quick_gelu);

/* idx (B, T) i32, T <= max_positions; rows (K, width) trainable vectors or NULL.
 * out: (B, T, width), the last hidden state after the final LayerNorm. */
ti_status ti_text_encoder_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                                  const struct ti_text_encoder *e, const struct ti_tensor *idx,
                                  const struct ti_tensor *rows);

/* The input embeddings only: token rows (with the trainable substitution) + positions,
 * (B, T, width) — what the layers see. */
ti_status ti_text_encoder_embed(struct ti_ctx *ctx, struct ti_tensor *out,
                                const struct ti_text_encoder *e, const struct ti_tensor *idx,
                                const struct ti_tensor *rows);

#endif /* TI_TEXT_ENCODER_H */
