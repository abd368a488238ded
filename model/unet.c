/*
 * unet.c - UNetModel construction (the openaimodel block loop, sd-arch.md §3.5) and forward.
 * Backward comes from the tape; with use_checkpoint, each ResBlock and SpatialTransformer is
 * recomputed in backward (ti_checkpoint), which works with frozen weights.
 */
#include "unet.h"

#include <string.h>

#include "tape.h"

void ti_unet_hparams_sd_v1(struct ti_unet_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->in_channels = 4;
    hp->out_channels = 4;
    hp->model_channels = 320;
    hp->num_res_blocks = 2;
    hp->n_levels = 4;
    hp->channel_mult[0] = 1;
    hp->channel_mult[1] = 2;
    hp->channel_mult[2] = 4;
    hp->channel_mult[3] = 4;
    hp->n_attention = 3;
    hp->attention_resolutions[0] = 4;
    hp->attention_resolutions[1] = 2;
    hp->attention_resolutions[2] = 1;
    hp->num_heads = 8;
    hp->num_head_channels = -1;
    hp->transformer_depth = 1;
    hp->context_dim = 768;
    hp->legacy = 0;
    hp->use_checkpoint = 0;
}

static int has_attention(const struct ti_unet_hparams *hp, int ds) {
    for (int i = 0; i < hp->n_attention; i++)
        if (hp->attention_resolutions[i] == ds) return 1;
    return 0;
}

/* heads and head width at `ch` channels (sd-arch.md §1.3) */
static ti_status heads_for(const struct ti_unet_hparams *hp, int ch, int *heads, int *dim,
                           struct ti_err *err) {
    if (hp->num_head_channels == -1) {
        if (hp->num_heads <= 0 || ch % hp->num_heads)
            return ti_error(err, TI_ERR_CONFIG, "unet: num_heads %d does not divide %d channels",
                            hp->num_heads, ch);
        *heads = hp->num_heads;
        *dim = ch / hp->num_heads;
    } else {
        if (hp->num_head_channels <= 0 || ch % hp->num_head_channels)
            return ti_error(err, TI_ERR_CONFIG,
                            "unet: num_head_channels %d does not divide %d channels",
                            hp->num_head_channels, ch);
        *heads = ch / hp->num_head_channels;
        *dim = hp->num_head_channels;
    }
    if (hp->legacy) *dim = ch / *heads; /* legacy && use_spatial_transformer */
    return TI_OK;
}

static ti_status add_res(struct ti_unet_block *b, struct ti_weights *w, const char *prefix, int cin,
                         int cout, int time_dim, struct ti_err *err) {
    char k[TI_KEY_MAX];
    struct ti_unet_layer *l = &b->layers[b->n];
    l->kind = TI_UNET_RES;
    TI_TRY(ti_resblock_init(&l->res, w, ti_key(k, prefix, "%d.", b->n), cin, cout, time_dim, 0,
                            1e-5, err));
    b->n++;
    b->out_channels = cout;
    return TI_OK;
}

static ti_status add_attn(struct ti_unet_block *b, struct ti_weights *w, const char *prefix,
                          const struct ti_unet_hparams *hp, int ch, struct ti_err *err) {
    char k[TI_KEY_MAX];
    int heads = 0, dim = 0;
    TI_TRY(heads_for(hp, ch, &heads, &dim, err));
    struct ti_unet_layer *l = &b->layers[b->n];
    l->kind = TI_UNET_ATTN;
    TI_TRY(ti_spatial_transformer_init(&l->attn, w, ti_key(k, prefix, "%d.", b->n), ch, heads, dim,
                                       hp->transformer_depth, hp->context_dim, err));
    if (hp->use_checkpoint) l->attn.ff_recompute_min = 0; /* the whole block is recomputed */
    b->n++;
    return TI_OK;
}

ti_status ti_unet_init(struct ti_unet *u, const struct ti_unet_hparams *hp, const char *prefix,
                       struct ti_weights *w, struct ti_err *err) {
    char k[TI_KEY_MAX], p[TI_KEY_MAX];
    memset(u, 0, sizeof *u);
    u->hp = *hp;
    if (hp->n_levels < 1 || hp->n_levels > TI_UNET_MAX_LEVELS || hp->num_res_blocks < 1 ||
        hp->model_channels <= 0 || hp->in_channels <= 0 || hp->out_channels <= 0)
        return ti_error(err, TI_ERR_CONFIG,
                        "unet: invalid hyperparameters (levels %d, res blocks %d, channels %d)",
                        hp->n_levels, hp->num_res_blocks, hp->model_channels);
    int mc = hp->model_channels;
    int td = 4 * mc;
    u->time_dim = td;
    TI_TRY(
        ti_weights_add2(w, &u->time0_w, ti_key(k, prefix, "time_embed.0."), "weight", td, mc, err));
    TI_TRY(ti_weights_add1(w, &u->time0_b, k, "bias", td, err));
    TI_TRY(
        ti_weights_add2(w, &u->time2_w, ti_key(k, prefix, "time_embed.2."), "weight", td, td, err));
    TI_TRY(ti_weights_add1(w, &u->time2_b, k, "bias", td, err));

    /* input blocks */
    int chans[TI_UNET_MAX_BLOCKS], nchans = 0;
    int ch = mc, ds = 1, nb = 0;
    struct ti_unet_block *b = &u->input[nb++];
    b->layers[0].kind = TI_UNET_CONV_IN;
    TI_TRY(ti_conv_init(&b->layers[0].conv, w, ti_key(k, prefix, "input_blocks.0.0."),
                        hp->in_channels, mc, 3, 1, 1, 1, 1, 1, err));
    b->n = 1;
    b->out_channels = mc;
    chans[nchans++] = mc;
    for (int level = 0; level < hp->n_levels; level++) {
        int mult = hp->channel_mult[level];
        for (int r = 0; r < hp->num_res_blocks; r++) {
            if (nb >= TI_UNET_MAX_BLOCKS)
                return ti_error(err, TI_ERR_CONFIG, "unet: too many blocks");
            b = &u->input[nb];
            ti_key(p, prefix, "input_blocks.%d.", nb);
            nb++;
            TI_TRY(add_res(b, w, p, ch, mult * mc, td, err));
            ch = mult * mc;
            if (has_attention(hp, ds)) TI_TRY(add_attn(b, w, p, hp, ch, err));
            chans[nchans++] = ch;
        }
        if (level != hp->n_levels - 1) {
            b = &u->input[nb];
            ti_key(p, prefix, "input_blocks.%d.0.op.", nb);
            nb++;
            b->layers[0].kind = TI_UNET_DOWN;
            TI_TRY(ti_conv_init(&b->layers[0].conv, w, p, ch, ch, 3, 2, 1, 1, 1, 1, err));
            b->n = 1;
            b->out_channels = ch;
            chans[nchans++] = ch;
            ds *= 2;
        }
    }
    u->n_input = nb;

    /* middle block: Res, ST, Res */
    ti_key(p, prefix, "middle_block.");
    TI_TRY(add_res(&u->middle, w, p, ch, ch, td, err));
    TI_TRY(add_attn(&u->middle, w, p, hp, ch, err));
    TI_TRY(add_res(&u->middle, w, p, ch, ch, td, err));

    /* output blocks */
    nb = 0;
    for (int level = hp->n_levels - 1; level >= 0; level--) {
        int mult = hp->channel_mult[level];
        for (int i = 0; i <= hp->num_res_blocks; i++) {
            b = &u->output[nb];
            ti_key(p, prefix, "output_blocks.%d.", nb);
            nb++;
            int ich = chans[--nchans];
            TI_TRY(add_res(b, w, p, ch + ich, mc * mult, td, err));
            ch = mc * mult;
            if (has_attention(hp, ds)) TI_TRY(add_attn(b, w, p, hp, ch, err));
            if (level && i == hp->num_res_blocks) {
                struct ti_unet_layer *l = &b->layers[b->n];
                l->kind = TI_UNET_UP;
                TI_TRY(ti_conv_init(&l->conv, w, ti_key(k, p, "%d.conv.", b->n), ch, ch, 3, 1, 1, 1,
                                    1, 1, err));
                b->n++;
                ds /= 2;
            }
        }
    }
    u->n_output = nb;
    TI_TRY(ti_weights_add1(w, &u->out_norm_w, ti_key(k, prefix, "out.0."), "weight", ch, err));
    TI_TRY(ti_weights_add1(w, &u->out_norm_b, k, "bias", ch, err));
    return ti_conv_init(&u->out_conv, w, ti_key(k, prefix, "out.2."), mc, hp->out_channels, 3, 1, 1,
                        1, 1, 1, err);
}

static void block_free(struct ti_unet_block *b) {
    for (int i = 0; i < b->n; i++)
        if (b->layers[i].kind == TI_UNET_ATTN) ti_spatial_transformer_free(&b->layers[i].attn);
}

void ti_unet_free(struct ti_unet *u) {
    for (int i = 0; i < u->n_input; i++)
        block_free(&u->input[i]);
    block_free(&u->middle);
    for (int i = 0; i < u->n_output; i++)
        block_free(&u->output[i]);
    memset(u, 0, sizeof *u);
}

/* ---- forward --------------------------------------------------------------------------------- */

/* checkpoint adapters: in = {h, emb_silu} / {h, context} */
static ti_status res_fn(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                        int n_in, void *user) {
    (void)n_in;
    return ti_resblock_forward(ctx, out, (const struct ti_resblock *)user, &in[0], &in[1]);
}

static ti_status attn_fn(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                         int n_in, void *user) {
    (void)n_in;
    return ti_spatial_transformer_forward(ctx, out, (const struct ti_spatial_transformer *)user,
                                          &in[0], &in[1]);
}

/* runs one layer on *h (replacing it) */
static ti_status layer_forward(struct ti_ctx *ctx, const struct ti_unet *u,
                               const struct ti_unet_layer *l, struct ti_tensor *h,
                               const struct ti_tensor *emb, const struct ti_tensor *context) {
    struct ti_tensor o = ti_tensor_none(), t = ti_tensor_none();
    ti_status st = TI_OK;
    int ck = u->hp.use_checkpoint;
    switch (l->kind) {
    case TI_UNET_CONV_IN:
    case TI_UNET_DOWN:
    case TI_UNET_UP:
        /* in the weights' dtype, the result back in the stream's (blocks.h) */
        st = ti_block_as_dtype(ctx, &o, h, l->conv.w.dtype);
        if (st == TI_OK && l->kind == TI_UNET_UP) {
            st = ti_upsample_nearest(ctx, &t, &o, 2);
            ti_tensor_release(&o);
            o = t;
            t = ti_tensor_none();
        }
        if (st == TI_OK) st = ti_conv_forward(ctx, &t, &l->conv, &o);
        ti_tensor_release(&o);
        if (st == TI_OK) st = ti_block_as_dtype(ctx, &o, &t, h->dtype);
        ti_tensor_release(&t);
        break;
    case TI_UNET_RES: {
        struct ti_tensor in[2] = {*h, *emb};
        st = ck ? ti_checkpoint(ctx, &o, res_fn, (void *)&l->res, 2, in)
                : ti_resblock_forward(ctx, &o, &l->res, h, emb);
    } break;
    case TI_UNET_ATTN: {
        /* a context in another dtype (an f32 text encoder in a bf16 run) is cast here, per
         * layer, so its gradient is summed over the layers in the context's own precision */
        if (context->dtype != l->attn.proj_in_w.dtype) {
            TI_TRY(ti_copy(ctx, &t, context, l->attn.proj_in_w.dtype));
            context = &t;
        }
        struct ti_tensor in[2] = {*h, *context};
        st = ck ? ti_checkpoint(ctx, &o, attn_fn, (void *)&l->attn, 2, in)
                : ti_spatial_transformer_forward(ctx, &o, &l->attn, h, context);
        ti_tensor_release(&t);
    } break;
    }
    if (st != TI_OK) return st;
    ti_tensor_release(h);
    *h = o;
    return TI_OK;
}

static ti_status block_forward(struct ti_ctx *ctx, const struct ti_unet *u,
                               const struct ti_unet_block *b, struct ti_tensor *h,
                               const struct ti_tensor *emb, const struct ti_tensor *context) {
    for (int i = 0; i < b->n; i++)
        TI_TRY(layer_forward(ctx, u, &b->layers[i], h, emb, context));
    return TI_OK;
}

ti_status ti_unet_forward(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_unet *u,
                          const struct ti_tensor *x, const struct ti_tensor *t,
                          const struct ti_tensor *context) {
    *out = ti_tensor_none();
    const struct ti_unet_hparams *hp = &u->hp;
    int64_t div = (int64_t)1 << (hp->n_levels - 1);
    if (x->ndim != 4 || x->shape[1] != hp->in_channels || x->shape[2] % div || x->shape[3] % div) {
        char s[96];
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "unet: latent %s must be (B, %d, H, W) with H and W multiples of %lld",
                        ti_shape_str(x->ndim, x->shape, s, sizeof s), hp->in_channels,
                        (long long)div);
    }
    if (context->ndim != 3 || context->shape[2] != hp->context_dim ||
        context->shape[0] != x->shape[0]) {
        char s[96];
        return ti_error(&ctx->err, TI_ERR_SHAPE, "unet: context %s must be (%lld, T, %d)",
                        ti_shape_str(context->ndim, context->shape, s, sizeof s),
                        (long long)x->shape[0], hp->context_dim);
    }
    struct ti_tensor e = ti_tensor_none(), e2 = ti_tensor_none(), emb = ti_tensor_none(),
                     h = ti_tensor_none(), c = ti_tensor_none();
    struct ti_tensor skips[TI_UNET_MAX_BLOCKS];
    int nskips = 0;
    ti_status st;
    /* time embedding: sinusoid (cos | sin) -> Linear -> SiLU -> Linear; every ResBlock applies
     * SiLU to it first, so compute silu(emb) once                      (B, 4*mc) */
    TI_TRY_GOTO(st, ti_timestep_embedding(ctx, &e, t, hp->model_channels, 10000.0, 1));
    if (e.dtype != u->time0_w.dtype) {
        /* the sinusoid is computed in t's precision (f32: bf16 cannot even hold t = 981),
         * then cast to the network's dtype */
        TI_TRY_GOTO(st, ti_copy(ctx, &e2, &e, u->time0_w.dtype));
        ti_tensor_release(&e);
        e = e2;
        e2 = ti_tensor_none();
    }
    TI_TRY_GOTO(st, ti_linear(ctx, &e2, &e, &u->time0_w, &u->time0_b));
    ti_tensor_release(&e);
    TI_TRY_GOTO(st, ti_silu(ctx, &e, &e2));
    ti_tensor_release(&e2);
    TI_TRY_GOTO(st, ti_linear(ctx, &e2, &e, &u->time2_w, &u->time2_b));
    ti_tensor_release(&e);
    TI_TRY_GOTO(st, ti_silu(ctx, &emb, &e2));
    ti_tensor_release(&e2);

    h = *x;
    ti_tensor_retain(&h);
    for (int i = 0; i < u->n_input; i++) {
        TI_TRY_GOTO(st, block_forward(ctx, u, &u->input[i], &h, &emb, context));
        skips[nskips] = h; /* the stack keeps its own reference */
        ti_tensor_retain(&skips[nskips]);
        nskips++;
    }
    TI_TRY_GOTO(st, block_forward(ctx, u, &u->middle, &h, &emb, context));
    for (int i = 0; i < u->n_output; i++) {
        /* [h, skip] along channels */
        struct ti_tensor s = skips[--nskips];
        st = ti_concat(ctx, &c, &h, &s, 1);
        ti_tensor_release(&s);
        TI_TRY_GOTO(st, st);
        ti_tensor_release(&h);
        h = c;
        c = ti_tensor_none();
        TI_TRY_GOTO(st, block_forward(ctx, u, &u->output[i], &h, &emb, context));
    }
    /* out: GN + SiLU -> conv 3x3 (in the weights' dtype) */
    TI_TRY_GOTO(st, ti_block_as_dtype(ctx, &c, &h, u->out_norm_w.dtype));
    ti_tensor_release(&h);
    h = c;
    c = ti_tensor_none();
    TI_TRY_GOTO(st, ti_block_gn(ctx, &c, &h, &u->out_norm_w, &u->out_norm_b, 1e-5, 1));
    TI_TRY_GOTO(st, ti_conv_forward(ctx, out, &u->out_conv, &c));
fail:
    while (nskips > 0)
        ti_tensor_release(&skips[--nskips]);
    ti_tensor_release(&e);
    ti_tensor_release(&e2);
    ti_tensor_release(&emb);
    ti_tensor_release(&h);
    ti_tensor_release(&c);
    return st;
}
