/*
 * test_io_ckpt.c - state dicts (model/io/ckpt.h): a lightning checkpoint flattened from its
 * state_dict, EMA selection (values, errors), the diffusers folder mapping checked against the
 * original-layout state dict that diffusers' own converter (convert_ldm_*_checkpoint) turned into
 * that folder, the key mapping one key at a time, and the shape-check messages for SD 2.x, SDXL,
 * LDM vs SD v1, inpainting, VAE-only and damaged files.
 */
#include "ckpt.h"
#include "io_test_util.h"
#include "safetensors.h"
#include "test_common.h"
#include "torchfile.h"
#include "zip.h"

static const char *tmp;

TEST(lightning_checkpoint_and_ema) {
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_state_dict_open(&sd, tio_fixture("lightning_mini.ckpt"), NULL, &err), &err);
    if (!sd) return;
    CHECK(ti_state_dict_count(sd) == 11 && ti_state_dict_has_ema(sd));
    CHECK(ti_state_dict_source(sd) == TI_SD_TORCH);
    const struct ti_tensor *w =
        ti_state_dict_find(sd, "model.diffusion_model.input_blocks.0.0.weight");
    CHECK(w && ((const float *)w->data)[0] == tio_value(0, 21)); /* non-EMA by default */
    const struct ti_tensor *t;
    CHECK(ti_state_dict_get(sd, "nope", &t, &err) == TI_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "'nope'") && strstr(err.msg, "lightning_mini.ckpt"));
    ti_state_dict_close(sd);

    struct ti_state_dict_opts o = {.use_ema = 1, .verify_crc = 1};
    ti_err_clear(&err);
    CHECK_OK(ti_state_dict_open(&sd, tio_fixture("lightning_mini.ckpt"), &o, &err), &err);
    if (!sd) return;
    w = ti_state_dict_find(sd, "model.diffusion_model.input_blocks.0.0.weight");
    const struct ti_tensor *b =
        ti_state_dict_find(sd, "model.diffusion_model.input_blocks.0.0.bias");
    const struct ti_tensor *o2 = ti_state_dict_find(sd, "model.diffusion_model.out.2.weight");
    int ok = w && b && o2;
    for (int i = 0; ok && i < 72; i++)
        ok &= ((const float *)w->data)[i] == tio_value(i, 31);
    for (int i = 0; ok && i < 4; i++)
        ok &= ((const float *)b->data)[i] == tio_value(i, 32);
    for (int i = 0; ok && i < 72; i++)
        ok &= ti_f16_to_f32(((const uint16_t *)o2->data)[i]) == tio_value(i, 33);
    CHECK(ok);
    CHECK(o2 && o2->dtype == TI_DTYPE_F16);
    ti_state_dict_close(sd);

    /* "EMA when present" (a config's use_ema): the EMA values here, the plain ones where the
     * file has no model_ema.* */
    struct ti_state_dict_opts ip = {.use_ema = TI_USE_EMA_IF_PRESENT};
    ti_err_clear(&err);
    CHECK_OK(ti_state_dict_open(&sd, tio_fixture("lightning_mini.ckpt"), &ip, &err), &err);
    if (sd) {
        b = ti_state_dict_find(sd, "model.diffusion_model.input_blocks.0.0.bias");
        CHECK(b && ((const float *)b->data)[1] == tio_value(1, 32));
        ti_state_dict_close(sd);
    }
    ti_err_clear(&err);
    CHECK_OK(ti_state_dict_open(&sd, tio_fixture("diffusers_tiny_original.safetensors"), &ip, &err),
             &err);
    ti_state_dict_close(sd);
    sd = NULL;

    /* asking for EMA where there is none is an error that says why */
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, tio_fixture("diffusers_tiny_original.safetensors"), &o, &err) ==
          TI_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "no model_ema") != NULL);
}

TEST(diffusers_key_map) {
    static const char *const cases[][3] = {
        {"unet", "conv_in.weight", "model.diffusion_model.input_blocks.0.0.weight"},
        {"unet", "time_embedding.linear_2.bias", "model.diffusion_model.time_embed.2.bias"},
        {"unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
         "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"},
        {"unet", "down_blocks.3.resnets.1.conv_shortcut.weight",
         "model.diffusion_model.input_blocks.11.0.skip_connection.weight"},
        {"unet", "down_blocks.2.downsamplers.0.conv.bias",
         "model.diffusion_model.input_blocks.9.0.op.bias"},
        {"unet", "up_blocks.0.upsamplers.0.conv.weight",
         "model.diffusion_model.output_blocks.2.1.conv.weight"},
        {"unet", "up_blocks.2.upsamplers.0.conv.weight",
         "model.diffusion_model.output_blocks.8.2.conv.weight"},
        {"unet", "up_blocks.3.attentions.2.proj_out.weight",
         "model.diffusion_model.output_blocks.11.1.proj_out.weight"},
        {"unet", "mid_block.resnets.1.time_emb_proj.bias",
         "model.diffusion_model.middle_block.2.emb_layers.1.bias"},
        {"unet", "conv_norm_out.weight", "model.diffusion_model.out.0.weight"},
        {"vae", "decoder.up_blocks.0.resnets.2.conv2.weight",
         "first_stage_model.decoder.up.3.block.2.conv2.weight"},
        {"vae", "encoder.down_blocks.1.resnets.0.conv_shortcut.bias",
         "first_stage_model.encoder.down.1.block.0.nin_shortcut.bias"},
        {"vae", "encoder.mid_block.attentions.0.to_q.weight",
         "first_stage_model.encoder.mid.attn_1.q.weight"},
        {"vae", "decoder.mid_block.attentions.0.proj_attn.bias",
         "first_stage_model.decoder.mid.attn_1.proj_out.bias"},
        {"vae", "decoder.mid_block.attentions.0.group_norm.weight",
         "first_stage_model.decoder.mid.attn_1.norm.weight"},
        {"vae", "decoder.conv_norm_out.bias", "first_stage_model.decoder.norm_out.bias"},
        {"vae", "post_quant_conv.weight", "first_stage_model.post_quant_conv.weight"},
        {"text_encoder", "text_model.final_layer_norm.weight",
         "cond_stage_model.transformer.text_model.final_layer_norm.weight"},
    };
    char out[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int ok = ti_diffusers_key_map(cases[i][0], cases[i][1], out, sizeof out) &&
                 !strcmp(out, cases[i][2]);
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s %s -> %s\n", cases[i][0], cases[i][1], out);
    }
    static const char *const bad[][2] = {
        {"unet", "add_embedding.linear_1.weight"},
        {"unet", "down_blocks.3.attentions.0.norm.weight"},
        {"unet", "down_blocks.4.resnets.0.conv1.weight"},
        {"unet", "up_blocks.0.attentions.0.norm.weight"},
        {"unet", "down_blocks.01.resnets.0.conv1.weight"},
        {"vae", "encoder.down_blocks.3.downsamplers.0.conv.weight"},
        {"vae", "decoder.up_blocks.3.upsamplers.0.conv.weight"},
        {"other", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!ti_diffusers_key_map(bad[i][0], bad[i][1], out, sizeof out));
}

TEST(diffusers_folder_matches_original) {
    struct ti_state_dict *folder = NULL, *orig = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_state_dict_open(&folder, tio_fixture("diffusers_tiny"), NULL, &err), &err);
    CHECK_OK(
        ti_state_dict_open(&orig, tio_fixture("diffusers_tiny_original.safetensors"), NULL, &err),
        &err);
    if (!folder || !orig) return;
    CHECK(ti_state_dict_source(folder) == TI_SD_DIFFUSERS);
    CHECK(ti_state_dict_count(folder) == ti_state_dict_count(orig));
    const char *tok = ti_state_dict_tokenizer_dir(folder);
    CHECK(tok && strstr(tok, "diffusers_tiny/tokenizer"));
    size_t same = 0, vae_attn = 0;
    for (size_t i = 0; i < ti_state_dict_count(orig); i++) {
        const struct ti_state_dict_entry *e = ti_state_dict_at(orig, i);
        const struct ti_tensor *t = ti_state_dict_find(folder, e->key);
        if (!t) {
            fprintf(stderr, "  missing in the folder: %s\n", e->key);
            continue;
        }
        if (strstr(e->key, "mid.attn_1.q.weight")) vae_attn += t->ndim == 4;
        size_t nb = ti_tensor_nbytes(t);
        uint8_t *a = malloc(nb + 1), *b = malloc(nb + 1);
        ti_tensor_gather(a, t);
        ti_tensor_gather(b, &e->t);
        if (ti_tensor_same_shape(t, &e->t) && t->dtype == e->t.dtype && !memcmp(a, b, nb))
            same++;
        else
            fprintf(stderr, "  differs: %s\n", e->key);
        free(a);
        free(b);
    }
    CHECK(same == ti_state_dict_count(orig));
    CHECK(vae_attn == 2); /* encoder and decoder attention, [C, C] exposed as [C, C, 1, 1] */
    char d[256];
    CHECK(strstr(ti_state_dict_describe(folder, d, sizeof d), "SD v1") != NULL);
    /* its tiny shapes against the real SD v1 table: same family, so "damaged or modified" */
    size_t n;
    struct ti_param_spec *spec = tio_load_spec("tests/fixtures/keys/sd-v1-full.tsv", NULL, &n);
    CHECK(spec && n == 1143);
    ti_err_clear(&err);
    CHECK(ti_state_dict_check(folder, spec, n, "SD v1", &err) == TI_ERR_SHAPE);
    CHECK(strstr(err.msg, "may be damaged or come from a modified model") != NULL);
    tio_free_spec(spec, n);
    ti_state_dict_close(folder);
    ti_state_dict_close(orig);
}

/* Writes a safetensors file with zero-filled f32 tensors of the given keys and shapes. */
struct kshape {
    const char *key;
    int ndim;
    int64_t shape[4];
};
static const char *write_st(const char *name, const struct kshape *k, size_t n) {
    struct ti_tensor *t = calloc(n, sizeof *t);
    struct ti_st_entry *e = calloc(n, sizeof *e);
    void **bufs = calloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < k[i].ndim; d++)
            numel *= k[i].shape[d];
        bufs[i] = calloc((size_t)numel + 1, 4);
        t[i] = ti_tensor_view(bufs[i], TI_DTYPE_F32, TI_DEVICE_CPU, k[i].ndim, k[i].shape);
        e[i] = (struct ti_st_entry){k[i].key, &t[i]};
    }
    struct ti_err err = {0};
    const char *p = tio_path(tmp, name);
    CHECK_OK(ti_safetensors_write(p, e, n, NULL, 0, &err), &err);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(t);
    free(e);
    return p;
}

#define TO_K "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"

static void expect_check(const char *file, const char *tsv, const char *model, ti_status code,
                         const char *n1, const char *n2) {
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_state_dict_open(&sd, file, NULL, &err), &err);
    if (!sd) return;
    size_t n;
    struct ti_param_spec *spec = tio_load_spec(tsv, NULL, &n);
    ti_status st = ti_state_dict_check(sd, spec, n, model, &err);
    CHECK(st == code && strstr(err.msg, n1) && strstr(err.msg, n2));
    if (st != code || !strstr(err.msg, n1) || !strstr(err.msg, n2))
        fprintf(stderr, "  %s: expected '%s' and '%s', got %d: %s\n", file, n1, n2, st, err.msg);
    tio_free_spec(spec, n);
    ti_state_dict_close(sd);
}

TEST(shape_check_messages) {
    const char *sd1 = "tests/fixtures/keys/sd-v1-full.tsv",
               *ldm = "tests/fixtures/keys/ldm-1p4b-full.tsv";
    const struct kshape sd2[] = {{TO_K, 2, {320, 1024}},
                                 {"cond_stage_model.model.ln_final.weight", 1, {1024}}};
    expect_check(write_st("sd2.safetensors", sd2, 2), sd1, "SD v1", TI_ERR_SHAPE,
                 TO_K " has shape [320, 1024], SD v1 expects [320, 768]",
                 "looks like an SD 2.x checkpoint");
    const struct kshape xl[] = {{TO_K, 2, {320, 2048}}, {"conditioner.embedders.0.x", 1, {4}}};
    expect_check(write_st("xl.safetensors", xl, 2), sd1, "SD v1", TI_ERR_SHAPE, "[320, 2048]",
                 "an SDXL checkpoint");
    const struct kshape l[] = {{TO_K, 2, {320, 1280}},
                               {"cond_stage_model.transformer.token_emb.weight", 2, {4, 4}}};
    expect_check(write_st("ldm.safetensors", l, 2), sd1, "SD v1", TI_ERR_SHAPE,
                 "SD v1 expects [320, 768]", "LDM text2img-large checkpoint (BERT");
    const struct kshape s1[] = {
        {TO_K, 2, {320, 768}},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {768}}};
    expect_check(write_st("sd1.safetensors", s1, 2), ldm, "LDM text2img-large", TI_ERR_SHAPE,
                 "LDM text2img-large expects [320, 1280]", "looks like an SD v1 checkpoint");
    const struct kshape ip[] = {
        {TO_K, 2, {320, 768}},
        {"model.diffusion_model.input_blocks.0.0.weight", 4, {320, 9, 3, 3}}};
    expect_check(write_st("inpaint.safetensors", ip, 2), sd1, "SD v1", TI_ERR_SHAPE,
                 "[320, 9, 3, 3]", "inpainting model (9 UNet input channels)");
    const struct kshape vae[] = {{"first_stage_model.post_quant_conv.weight", 4, {4, 4, 1, 1}}};
    expect_check(write_st("vae.safetensors", vae, 1), sd1, "SD v1", TI_ERR_NOT_FOUND,
                 "has no tensor 'betas', which SD v1 needs (1142 of the 1143", "a VAE-only file");
    expect_check(tio_fixture("a1111_f32.pt"), sd1, "SD v1", TI_ERR_NOT_FOUND, "has no tensor",
                 "embedding file, not a model checkpoint");
    /* a file that satisfies a (small) spec passes */
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_state_dict_open(&sd, tio_path(tmp, "sd1.safetensors"), NULL, &err), &err);
    const struct ti_param_spec ok[] = {
        {TO_K, 2, {320, 768}},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {768}}};
    CHECK_OK(ti_state_dict_check(sd, ok, 2, "SD v1", &err), &err);
    ti_state_dict_close(sd);
}

/* A small spec of ti's tiny SD-layout configs: CLIP keys, context width 32. */
static const struct ti_param_spec tiny_spec[] = {
    {"model.diffusion_model.input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
    {TO_K, 2, {8, 32}},
    {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {32}},
};

static void expect_tiny(const char *file, ti_status code, const char *n1, const char *n2) {
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_state_dict_open(&sd, file, NULL, &err), &err);
    if (!sd) return;
    ti_status st = ti_state_dict_check(sd, tiny_spec, 3, "SD v1", &err);
    int ok = st == code && strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2));
    CHECK(ok);
    if (!ok) fprintf(stderr, "  %s: expected '%s' / '%s', got %d: %s\n", file, n1, n2, st, err.msg);
    ti_state_dict_close(sd);
}

/* Files that hold what a model needs in another form: the message says which form. A tiny
 * SD-layout file (width 32) with one bad shape is the spec's own family, not "which SD v1
 * cannot use" (spec_family once judged the spec by the 768 width alone). */
TEST(missing_key_hints) {
    const struct kshape bad[] = {
        {"model.diffusion_model.input_blocks.0.0.weight", 4, {8, 4, 3, 1}},
        {TO_K, 2, {8, 32}},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {32}}};
    expect_tiny(write_st("tiny_bad.safetensors", bad, 3), TI_ERR_SHAPE, "expects [8, 4, 3, 3]",
                "SD v1-layout checkpoint (CLIP text encoder, context width 32), so it may be "
                "damaged");
    const struct kshape ema[] = {
        {"model_ema.diffusion_modelinput_blocks00weight", 4, {8, 4, 3, 3}},
        {"model_ema.diffusion_modelinput_blocks11transformer_blocks0attn2to_kweight", 2, {8, 32}},
        {"model_ema.decay", 0, {0}},
        {"cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {32}}};
    expect_tiny(write_st("ema_only.safetensors", ema, 4), TI_ERR_NOT_FOUND,
                "has no tensor 'model.diffusion_model.input_blocks.0.0.weight'",
                "only as EMA copies ('model_ema.diffusion_modelinput_blocks00weight')");
    const struct kshape ddp[] = {
        {"module.model.diffusion_model.input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
        {"module." TO_K, 2, {8, 32}},
        {"module.cond_stage_model.transformer.text_model.final_layer_norm.weight", 1, {32}}};
    expect_tiny(write_st("ddp.safetensors", ddp, 3), TI_ERR_NOT_FOUND, "(3 of the 3",
                "carry the extra prefix 'module.'");
    const struct kshape bare[] = {
        {"input_blocks.0.0.weight", 4, {8, 4, 3, 3}},
        {"input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, {8, 32}}};
    expect_tiny(write_st("bare_unet.safetensors", bare, 2), TI_ERR_NOT_FOUND,
                "has it as 'input_blocks.0.0.weight'", "lack the prefix 'model.diffusion_model.'");
    const struct kshape dif[] = {{"conv_in.weight", 4, {8, 4, 3, 3}},
                                 {"conv_in.bias", 1, {8}},
                                 {"down_blocks.0.attentions.0.proj_in.weight", 2, {8, 8}}};
    expect_tiny(write_st("diffusers_unet.safetensors", dif, 3), TI_ERR_NOT_FOUND,
                "diffusers names (such as 'conv_in.", "give the folder");
}

TEST(bad_sources) {
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    /* a folder that is not a diffusers model */
    CHECK(ti_state_dict_open(&sd, tmp, NULL, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "not a diffusers model") != NULL);
    /* a unet/ without weights */
    char dir[1024], sub[1100];
    snprintf(dir, sizeof dir, "%s/noweights", tmp);
    snprintf(sub, sizeof sub, "%s/unet", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, dir, NULL, &err) == TI_ERR_NOT_FOUND);
    CHECK(strstr(err.msg, "diffusion_pytorch_model.safetensors") != NULL);
    /* an SDXL-only key in a diffusers UNet */
    const struct kshape xl[] = {{"add_embedding.linear_1.weight", 2, {4, 4}}};
    const char *p = write_st("x.safetensors", xl, 1);
    snprintf(sub, sizeof sub, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    CHECK(rename(p, sub) == 0);
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, dir, NULL, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "'add_embedding.linear_1.weight' has no SD v1") != NULL);
    /* not a model file at all */
    const char *txt = tio_path(tmp, "notes.txt");
    tio_write(txt, "just some text, no tensors here\n", 32);
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, txt, NULL, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "neither a torch file") != NULL);
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, tio_path(tmp, "absent.ckpt"), NULL, &err) == TI_ERR_NOT_FOUND);
    /* a hostile checkpoint is refused the same way */
    ti_err_clear(&err);
    CHECK(ti_state_dict_open(&sd, tio_fixture("mal_os_system.pt"), NULL, &err) == TI_ERR_UNSAFE);
    /* two tensors flattening to one key */
    static float v[2] = {1, 2};
    struct ti_tensor t = ti_tensor_view(v, TI_DTYPE_F32, TI_DEVICE_CPU, 1, (int64_t[]){2});
    struct ti_torch_writer w;
    ti_torch_writer_init(&w);
    ti_pkw_proto(&w.pk, 2);
    ti_pkw_op(&w.pk, TI_PK_EMPTY_DICT);
    ti_pkw_str(&w.pk, "a.b");
    CHECK_OK(ti_torch_writer_tensor(&w, &t, 0, &err), &err);
    ti_pkw_op(&w.pk, TI_PK_SETITEM);
    ti_pkw_str(&w.pk, "a");
    ti_pkw_op(&w.pk, TI_PK_EMPTY_DICT);
    ti_pkw_str(&w.pk, "b");
    CHECK_OK(ti_torch_writer_tensor(&w, &t, 0, &err), &err);
    ti_pkw_op(&w.pk, TI_PK_SETITEM);
    ti_pkw_op(&w.pk, TI_PK_SETITEM);
    p = tio_path(tmp, "twice.pt");
    CHECK_OK(ti_torch_writer_save(&w, p, &err), &err);
    ti_torch_writer_free(&w);
    CHECK(ti_state_dict_open(&sd, p, NULL, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "'a.b' appears twice") != NULL);
}

/* Writes a lightning-style checkpoint holding every key of `tsv` with its real shape, each tensor
 * a view at offset 0 of one shared f16 storage as large as the largest tensor: a legal torch
 * file of the complete layout at a fraction of the size. */
static const char *layout_ckpt(const char *name, const char *tsv) {
    size_t n;
    struct ti_param_spec *spec = tio_load_spec(tsv, NULL, &n);
    int64_t maxel = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t el = 1;
        for (int d = 0; d < spec[i].ndim; d++)
            el *= spec[i].shape[d];
        if (el > maxel) maxel = el;
    }
    struct ti_pkw w;
    ti_pkw_init(&w);
    ti_pkw_proto(&w, 2);
    ti_pkw_op(&w, TI_PK_EMPTY_DICT);
    ti_pkw_str(&w, "state_dict");
    ti_pkw_global(&w, "collections", "OrderedDict");
    ti_pkw_op(&w, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(&w, TI_PK_REDUCE);
    ti_pkw_op(&w, TI_PK_MARK);
    for (size_t i = 0; i < n; i++) {
        ti_pkw_str(&w, spec[i].key);
        ti_pkw_global(&w, "torch._utils", "_rebuild_tensor_v2");
        ti_pkw_op(&w, TI_PK_MARK);
        ti_pkw_op(&w, TI_PK_MARK);
        ti_pkw_str(&w, "storage");
        ti_pkw_global(&w, "torch", "HalfStorage");
        ti_pkw_str(&w, "0");
        ti_pkw_str(&w, "cpu");
        ti_pkw_int(&w, maxel);
        ti_pkw_op(&w, TI_PK_TUPLE);
        ti_pkw_op(&w, TI_PK_BINPERSID);
        ti_pkw_int(&w, 0);
        int nd = spec[i].ndim;
        int64_t stride[4], st = 1;
        for (int d = nd - 1; d >= 0; d--)
            stride[d] = st, st *= spec[i].shape[d];
        for (int pass = 0; pass < 2; pass++) {
            if (nd > 3) ti_pkw_op(&w, TI_PK_MARK);
            for (int d = 0; d < nd; d++)
                ti_pkw_int(&w, pass ? stride[d] : spec[i].shape[d]);
            ti_pkw_tuple(&w, nd);
        }
        ti_pkw_bool(&w, 0);
        ti_pkw_global(&w, "collections", "OrderedDict");
        ti_pkw_op(&w, TI_PK_EMPTY_TUPLE);
        ti_pkw_op(&w, TI_PK_REDUCE);
        ti_pkw_op(&w, TI_PK_TUPLE);
        ti_pkw_op(&w, TI_PK_REDUCE);
    }
    ti_pkw_op(&w, TI_PK_SETITEMS);
    ti_pkw_op(&w, TI_PK_SETITEM);
    ti_pkw_op(&w, TI_PK_STOP);
    struct ti_err err = {0};
    struct ti_outfile f;
    const char *p = tio_path(tmp, name);
    CHECK_OK(ti_outfile_open(&f, p, &err), &err);
    struct ti_zip_writer z;
    ti_zip_writer_init(&z, &f);
    void *zeros = calloc((size_t)maxel, 2);
    CHECK_OK(ti_zip_writer_add(&z, "archive/data.pkl", w.buf, w.n, &err), &err);
    CHECK_OK(ti_zip_writer_add(&z, "archive/data/0", zeros, (uint64_t)maxel * 2, &err), &err);
    CHECK_OK(ti_zip_writer_add(&z, "archive/version", "3\n", 2, &err), &err);
    CHECK_OK(ti_zip_writer_finish(&z, &err), &err);
    CHECK_OK(ti_outfile_commit(&f, &err), &err);
    ti_zip_writer_free(&z);
    free(zeros);
    ti_pkw_free(&w);
    tio_free_spec(spec, n);
    return p;
}

TEST(complete_sd_v1_and_ldm_layouts) {
    const char *sd1 = "tests/fixtures/keys/sd-v1-full.tsv",
               *ldm = "tests/fixtures/keys/ldm-1p4b-full.tsv";
    const char *sd1_file = layout_ckpt("sd1_layout.ckpt", sd1);
    const char *ldm_file = layout_ckpt("ldm_layout.ckpt", ldm);
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    size_t n1, n2;
    struct ti_param_spec *s1 = tio_load_spec(sd1, NULL, &n1), *s2 = tio_load_spec(ldm, NULL, &n2);
    CHECK_OK(ti_state_dict_open(&sd, sd1_file, NULL, &err), &err);
    if (sd) {
        CHECK(ti_state_dict_count(sd) == 1143);
        CHECK_OK(ti_state_dict_check(sd, s1, n1, "SD v1", &err), &err);
        ti_err_clear(&err);
        CHECK(ti_state_dict_check(sd, s2, n2, "LDM text2img-large", &err) == TI_ERR_SHAPE);
        CHECK(strstr(err.msg, "looks like an SD v1 checkpoint") != NULL);
        ti_state_dict_close(sd);
    }
    ti_err_clear(&err);
    CHECK_OK(ti_state_dict_open(&sd, ldm_file, NULL, &err), &err);
    if (sd) {
        CHECK(ti_state_dict_count(sd) == 1368);
        CHECK_OK(ti_state_dict_check(sd, s2, n2, "LDM text2img-large", &err), &err);
        ti_err_clear(&err);
        CHECK(ti_state_dict_check(sd, s1, n1, "SD v1", &err) == TI_ERR_SHAPE);
        CHECK(strstr(err.msg, "has shape [320, 1280], SD v1 expects [320, 768]") != NULL);
        CHECK(strstr(err.msg, "LDM text2img-large checkpoint (BERT text encoder") != NULL);
        const struct ti_tensor *te =
            ti_state_dict_find(sd, "cond_stage_model.transformer.token_emb.weight");
        CHECK(te && te->shape[0] == 30522 && te->shape[1] == 1280 && te->dtype == TI_DTYPE_F16);
        ti_state_dict_close(sd);
    }
    tio_free_spec(s1, n1);
    tio_free_spec(s2, n2);
    remove(sd1_file);
    remove(ldm_file);
}

int main(void) {
    tmp = tio_tmpdir();
    RUN(lightning_checkpoint_and_ema);
    RUN(diffusers_key_map);
    RUN(diffusers_folder_matches_original);
    RUN(shape_check_messages);
    RUN(missing_key_hints);
    RUN(bad_sources);
    RUN(complete_sd_v1_and_ldm_layouts);
    tio_rmrf(tmp);
    return tc_finish();
}
