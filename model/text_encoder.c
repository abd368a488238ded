/*
 * text_encoder.c - CLIP ViT-L/14 text tower and the LDM BERT embedder (see text_encoder.h,
 * sd-arch.md §5.1 and §6.2).
 */
#include "text_encoder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ti_text_hparams_clip_l14(struct ti_text_hparams *hp) {
    hp->vocab_size = 49408;
    hp->max_positions = 77;
    hp->width = 768;
    hp->layers = 12;
    hp->heads = 12;
    hp->head_dim = 64;
    hp->ff_width = 3072;
}

void ti_text_hparams_ldm_bert(struct ti_text_hparams *hp) {
    hp->vocab_size = 30522;
    hp->max_positions = 77;
    hp->width = 1280;
    hp->layers = 32;
    hp->heads = 8;
    hp->head_dim = 64;
    hp->ff_width = 5120;
}

static ti_status check_hp(const struct ti_text_hparams *hp, struct ti_err *err) {
    if (hp->vocab_size <= 0 || hp->max_positions <= 0 || hp->width <= 0 || hp->layers <= 0 ||
        hp->heads <= 0 || hp->head_dim <= 0 || hp->ff_width <= 0)
        return ti_error(err, TI_ERR_CONFIG,
                        "text encoder: invalid hyperparameters (vocab %d, positions %d, width %d, "
                        "layers %d, heads %d x %d, ff %d)",
                        hp->vocab_size, hp->max_positions, hp->width, hp->layers, hp->heads,
                        hp->head_dim, hp->ff_width);
    return TI_OK;
}

/* Zeroes e, checks hp, allocates the layer array. */
static ti_status encoder_begin(struct ti_text_encoder *e, const struct ti_text_hparams *hp,
                               int is_clip, struct ti_err *err) {
    memset(e, 0, sizeof *e);
    TI_TRY(check_hp(hp, err));
    e->hp = *hp;
    e->is_clip = is_clip;
    e->layers = calloc((size_t)hp->layers, sizeof *e->layers);
    if (!e->layers) return ti_error(err, TI_ERR_NOMEM, "out of host memory");
    return TI_OK;
}

ti_status ti_clip_layer_init(struct ti_text_layer *L, struct ti_weights *w, const char *p, int D,
                             int inner, int ff_width, struct ti_err *err) {
    char k[TI_KEY_MAX];
    TI_TRY(ti_weights_add2(w, &L->q_w, ti_key(k, p, "self_attn.q_proj."), "weight", inner, D, err));
    TI_TRY(ti_weights_add1(w, &L->q_b, k, "bias", inner, err));
    TI_TRY(ti_weights_add2(w, &L->k_w, ti_key(k, p, "self_attn.k_proj."), "weight", inner, D, err));
    TI_TRY(ti_weights_add1(w, &L->k_b, k, "bias", inner, err));
    TI_TRY(ti_weights_add2(w, &L->v_w, ti_key(k, p, "self_attn.v_proj."), "weight", inner, D, err));
    TI_TRY(ti_weights_add1(w, &L->v_b, k, "bias", inner, err));
    TI_TRY(
        ti_weights_add2(w, &L->o_w, ti_key(k, p, "self_attn.out_proj."), "weight", D, inner, err));
    TI_TRY(ti_weights_add1(w, &L->o_b, k, "bias", D, err));
    TI_TRY(ti_weights_add1(w, &L->ln1_w, ti_key(k, p, "layer_norm1."), "weight", D, err));
    TI_TRY(ti_weights_add1(w, &L->ln1_b, k, "bias", D, err));
    TI_TRY(ti_weights_add2(w, &L->fc1_w, ti_key(k, p, "mlp.fc1."), "weight", ff_width, D, err));
    TI_TRY(ti_weights_add1(w, &L->fc1_b, k, "bias", ff_width, err));
    TI_TRY(ti_weights_add2(w, &L->fc2_w, ti_key(k, p, "mlp.fc2."), "weight", D, ff_width, err));
    TI_TRY(ti_weights_add1(w, &L->fc2_b, k, "bias", D, err));
    TI_TRY(ti_weights_add1(w, &L->ln2_w, ti_key(k, p, "layer_norm2."), "weight", D, err));
    return ti_weights_add1(w, &L->ln2_b, k, "bias", D, err);
}

ti_status ti_clip_text_init(struct ti_text_encoder *e, const struct ti_text_hparams *hp,
                            const char *prefix, struct ti_weights *w, struct ti_err *err) {
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    TI_TRY(encoder_begin(e, hp, 1, err));
    int D = hp->width, inner = hp->heads * hp->head_dim;
    TI_TRY(ti_weights_add2(w, &e->tok_emb, ti_key(k, prefix, "embeddings.token_embedding."),
                           "weight", hp->vocab_size, D, err));
    TI_TRY(ti_weights_add2(w, &e->pos_emb, ti_key(k, prefix, "embeddings.position_embedding."),
                           "weight", hp->max_positions, D, err));
    for (int l = 0; l < hp->layers; l++)
        TI_TRY(ti_clip_layer_init(&e->layers[l], w, ti_key(p, prefix, "encoder.layers.%d.", l), D,
                                  inner, hp->ff_width, err));
    TI_TRY(
        ti_weights_add1(w, &e->final_w, ti_key(k, prefix, "final_layer_norm."), "weight", D, err));
    return ti_weights_add1(w, &e->final_b, k, "bias", D, err);
}

ti_status ti_bert_embedder_init(struct ti_text_encoder *e, const struct ti_text_hparams *hp,
                                const char *prefix, struct ti_weights *w, struct ti_err *err) {
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    TI_TRY(encoder_begin(e, hp, 0, err));
    int D = hp->width, inner = hp->heads * hp->head_dim;
    TI_TRY(ti_weights_add2(w, &e->tok_emb, ti_key(k, prefix, "token_emb."), "weight",
                           hp->vocab_size, D, err));
    TI_TRY(ti_weights_add2(w, &e->pos_emb, ti_key(k, prefix, "pos_emb.emb."), "weight",
                           hp->max_positions, D, err));
    for (int l = 0; l < hp->layers; l++) {
        struct ti_text_layer *L = &e->layers[l];
        /* attention sub-layer 2l: .0 = LayerNorm, .1 = Attention */
        ti_key(p, prefix, "attn_layers.layers.%d.", 2 * l);
        TI_TRY(ti_weights_add1(w, &L->ln1_w, ti_key(k, p, "0."), "weight", D, err));
        TI_TRY(ti_weights_add1(w, &L->ln1_b, k, "bias", D, err));
        TI_TRY(ti_weights_add2(w, &L->q_w, ti_key(k, p, "1.to_q."), "weight", inner, D, err));
        TI_TRY(ti_weights_add2(w, &L->k_w, ti_key(k, p, "1.to_k."), "weight", inner, D, err));
        TI_TRY(ti_weights_add2(w, &L->v_w, ti_key(k, p, "1.to_v."), "weight", inner, D, err));
        TI_TRY(ti_weights_add2(w, &L->o_w, ti_key(k, p, "1.to_out."), "weight", D, inner, err));
        TI_TRY(ti_weights_add1(w, &L->o_b, k, "bias", D, err));
        /* feed-forward sub-layer 2l+1: .0 = LayerNorm, .1.net.0.0 = Linear, .1.net.2 = Linear */
        ti_key(p, prefix, "attn_layers.layers.%d.", 2 * l + 1);
        TI_TRY(ti_weights_add1(w, &L->ln2_w, ti_key(k, p, "0."), "weight", D, err));
        TI_TRY(ti_weights_add1(w, &L->ln2_b, k, "bias", D, err));
        TI_TRY(ti_weights_add2(w, &L->fc1_w, ti_key(k, p, "1.net.0.0."), "weight", hp->ff_width, D,
                               err));
        TI_TRY(ti_weights_add1(w, &L->fc1_b, k, "bias", hp->ff_width, err));
        TI_TRY(ti_weights_add2(w, &L->fc2_w, ti_key(k, p, "1.net.2."), "weight", D, hp->ff_width,
                               err));
        TI_TRY(ti_weights_add1(w, &L->fc2_b, k, "bias", D, err));
    }
    TI_TRY(ti_weights_add1(w, &e->final_w, ti_key(k, prefix, "norm."), "weight", D, err));
    return ti_weights_add1(w, &e->final_b, k, "bias", D, err);
}

void ti_text_encoder_free(struct ti_text_encoder *e) {
    free(e->layers);
    e->layers = NULL;
}

ti_status ti_text_encoder_embed(struct ti_ctx *ctx, struct ti_tensor *out,
                                const struct ti_text_encoder *e, const struct ti_tensor *idx,
                                const struct ti_tensor *rows) {
    *out = ti_tensor_none();
    if (idx->ndim != 2 || idx->shape[1] > e->hp.max_positions) {
        char s[64];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "text encoder: token ids %s must be (B, T) with T <= %d",
                        ti_shape_str(idx->ndim, idx->shape, s, sizeof s), e->hp.max_positions);
    }
    struct ti_tensor tok = ti_tensor_none(), pos = ti_tensor_none(), rc = ti_tensor_none();
    ti_status st;
    if (rows && rows->data && rows->dtype != e->tok_emb.dtype) { /* the table's dtype */
        TI_TRY_GOTO(st, ti_copy(ctx, &rc, rows, e->tok_emb.dtype));
        rows = &rc;
    }
    /* token rows (placeholders from the trainable rows), then + position rows 0..T-1 */
    TI_TRY_GOTO(st, ti_embedding(ctx, &tok, &e->tok_emb, rows, idx));
    /* ti_slice (not a raw view) so the position table gets its gradient when it is trained
     * (unfreeze_model); frozen, it records nothing */
    TI_TRY_GOTO(st, ti_slice(ctx, &pos, &e->pos_emb, 0, 0, idx->shape[1]));
    st = ti_add(ctx, out, &tok, &pos);
fail:
    ti_tensor_release(&tok);
    ti_tensor_release(&pos);
    ti_tensor_release(&rc);
    return st;
}

/* h = h + x for the residual stream (replaces *h) */
static ti_status residual(struct ti_ctx *ctx, struct ti_tensor *h, struct ti_tensor *x) {
    struct ti_tensor r;
    ti_status st = ti_add(ctx, &r, h, x);
    ti_tensor_release(x);
    if (st != TI_OK) return st;
    ti_tensor_release(h);
    *h = r;
    return TI_OK;
}

ti_status ti_text_layer_forward(struct ti_ctx *ctx, struct ti_tensor *h,
                                const struct ti_text_layer *L, int heads, int head_dim, int causal,
                                int quick_gelu) {
    struct ti_tensor n = ti_tensor_none(), q = ti_tensor_none(), k = ti_tensor_none(),
                     v = ti_tensor_none(), o = ti_tensor_none(), f = ti_tensor_none();
    ti_status st;
    double scale = 1.0 / sqrt((double)head_dim);
    /* q/k/v biases exist in CLIP only */
    const struct ti_tensor *qb = L->q_b.data ? &L->q_b : NULL;
    const struct ti_tensor *kb = L->k_b.data ? &L->k_b : NULL;
    const struct ti_tensor *vb = L->v_b.data ? &L->v_b : NULL;
    /* attention: h += out_proj(attn(LN1(h))) (q scaled after its bias, which equals scaling
     * the scores) */
    TI_TRY_GOTO(st, ti_layernorm(ctx, &n, h, &L->ln1_w, &L->ln1_b, 1e-5));
    TI_TRY_GOTO(st, ti_linear(ctx, &q, &n, &L->q_w, qb));
    TI_TRY_GOTO(st, ti_linear(ctx, &k, &n, &L->k_w, kb));
    TI_TRY_GOTO(st, ti_linear(ctx, &v, &n, &L->v_w, vb));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, ti_attention(ctx, &o, &q, &k, &v, heads, scale, causal));
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    TI_TRY_GOTO(st, ti_linear(ctx, &f, &o, &L->o_w, &L->o_b));
    ti_tensor_release(&o);
    TI_TRY_GOTO(st, residual(ctx, h, &f));
    /* feed-forward: h += fc2(act(fc1(LN2(h)))), act = quick-GELU (CLIP) / GELU (BERT) */
    TI_TRY_GOTO(st, ti_layernorm(ctx, &n, h, &L->ln2_w, &L->ln2_b, 1e-5));
    TI_TRY_GOTO(st, ti_linear(ctx, &f, &n, &L->fc1_w, &L->fc1_b));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, quick_gelu ? ti_quick_gelu(ctx, &n, &f) : ti_gelu(ctx, &n, &f));
    ti_tensor_release(&f);
    TI_TRY_GOTO(st, ti_linear(ctx, &f, &n, &L->fc2_w, &L->fc2_b));
    ti_tensor_release(&n);
    TI_TRY_GOTO(st, residual(ctx, h, &f));
fail:
    ti_tensor_release(&n);
    ti_tensor_release(&q);
    ti_tensor_release(&k);
    ti_tensor_release(&v);
    ti_tensor_release(&o);
    ti_tensor_release(&f);
    return st;
}

ti_status ti_text_encoder_forward(struct ti_ctx *ctx, struct ti_tensor *out,
                                  const struct ti_text_encoder *e, const struct ti_tensor *idx,
                                  const struct ti_tensor *rows) {
    *out = ti_tensor_none();
    const struct ti_text_hparams *hp = &e->hp;
    struct ti_tensor h = ti_tensor_none();
    ti_status st;
    TI_TRY_GOTO(st, ti_text_encoder_embed(ctx, &h, e, idx, rows)); /* (B, T, D) */
    /* CLIP: causal attention, quick-GELU; BERT: neither */
    for (int l = 0; l < hp->layers; l++)
        TI_TRY_GOTO(st, ti_text_layer_forward(ctx, &h, &e->layers[l], hp->heads, hp->head_dim,
                                              e->is_clip, e->is_clip));
    st = ti_layernorm(ctx, out, &h, &e->final_w, &e->final_b, 1e-5);
fail:
    ti_tensor_release(&h);
    return st;
}
