/* embedding_io.c - embedding files in and out (see embedding_io.h). */
#include "embedding_io.h"

#include <math.h>   /* defines: isfinite, isnan */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free */
#include <string.h> /* defines: memcpy, strcmp, strlen */

#include "fileio.h"
#include "pickle.h"

void ti_embedding_init(struct ti_embedding *emb) {
    memset(emb, 0, sizeof *emb);
    emb->step = -1;
    emb->file_dtype = TI_DTYPE_F32;
}

void ti_embedding_free(struct ti_embedding *emb) {
    if (!emb) return;
    for (int i = 0; i < emb->n_terms; i++) {
        free(emb->terms[i].placeholder);
        free(emb->terms[i].vectors);
    }
    free(emb->terms);
    free(emb->source);
    free(emb->name);
    free(emb->sd_checkpoint);
    free(emb->sd_checkpoint_name);
    ti_embedding_init(emb);
}

ti_status ti_embedding_add_term(struct ti_embedding *emb, const char *placeholder, int64_t token,
                                int n_vectors, int dim, const float *vectors, struct ti_err *err) {
    if (n_vectors < 1 || n_vectors > TI_EMB_MAX_VECTORS || dim < 1 || dim > TI_EMB_MAX_DIM)
        return ti_error(err, TI_ERR_SHAPE,
                        "embedding term '%s': %d vectors of width %d is out of "
                        "range (1..%d vectors, width 1..%d)",
                        placeholder, n_vectors, dim, TI_EMB_MAX_VECTORS, TI_EMB_MAX_DIM);
    size_t total = (size_t)n_vectors * (size_t)dim;
    for (int i = 0; i < emb->n_terms; i++) {
        if (!strcmp(emb->terms[i].placeholder, placeholder))
            return ti_error(err, TI_ERR_INVALID, "embedding: placeholder '%s' appears twice",
                            placeholder);
        total += (size_t)emb->terms[i].n_vectors * (size_t)emb->terms[i].dim;
    }
    if (total > TI_EMB_MAX_ELEMS)
        return ti_error(err, TI_ERR_SHAPE,
                        "embedding term '%s': the terms hold %zu values in all, more than any "
                        "embedding file does (at most %d)",
                        placeholder, total, TI_EMB_MAX_ELEMS);
    struct ti_embedding_term *t = realloc(emb->terms, (size_t)(emb->n_terms + 1) * sizeof *t);
    if (!t) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    emb->terms = t;
    struct ti_embedding_term *nt = &emb->terms[emb->n_terms];
    size_t n = (size_t)n_vectors * (size_t)dim;
    nt->placeholder = ti_strdup(placeholder);
    nt->vectors = malloc(n * sizeof(float));
    if (!nt->placeholder || !nt->vectors) {
        free(nt->placeholder);
        free(nt->vectors);
        return ti_error(err, TI_ERR_NOMEM, "out of memory");
    }
    if (vectors)
        memcpy(nt->vectors, vectors, n * sizeof(float));
    else
        memset(nt->vectors, 0, n * sizeof(float));
    nt->token = token;
    nt->n_vectors = n_vectors;
    nt->dim = dim;
    emb->n_terms++;
    return TI_OK;
}

static ti_status set_str(char **dst, const char *s, struct ti_err *err) {
    char *p = NULL;
    if (s && !(p = ti_strdup(s))) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = p;
    return TI_OK;
}

ti_status ti_embedding_set_meta(struct ti_embedding *emb, const char *name, int64_t step,
                                const char *sd_checkpoint, const char *sd_checkpoint_name,
                                struct ti_err *err) {
    TI_TRY(set_str(&emb->name, name, err));
    TI_TRY(set_str(&emb->sd_checkpoint, sd_checkpoint, err));
    TI_TRY(set_str(&emb->sd_checkpoint_name, sd_checkpoint_name, err));
    emb->step = step;
    return TI_OK;
}

const char *ti_embedding_format_name(enum ti_embedding_format f) {
    switch (f) {
    case TI_EMB_A1111: return "a1111";
    case TI_EMB_PEER: return "peer";
    case TI_EMB_DIFFUSERS: return "diffusers";
    case TI_EMB_KOHYA: return "kohya";
    default: return "unknown";
    }
}

enum ti_embedding_format ti_embedding_format_parse(const char *s) {
    for (int f = TI_EMB_A1111; f <= TI_EMB_KOHYA; f++)
        if (!strcmp(s, ti_embedding_format_name((enum ti_embedding_format)f)))
            return (enum ti_embedding_format)f;
    return TI_EMB_UNKNOWN;
}

int ti_embedding_width_is_clip(int dim) {
    return dim == 768 || dim == 1024 ? 1 : dim == 1280 ? 0 : -1;
}

const char *ti_embedding_width_name(int dim) {
    switch (dim) {
    case 768: return "SD v1";
    case 1024: return "SD 2.x";
    case 1280: return "LDM text2img-large";
    default: return "unknown model";
    }
}

const char *ti_embedding_label(const struct ti_embedding *emb) {
    return emb->source ? emb->source : emb->name ? emb->name : "(embedding)";
}

ti_status ti_embedding_check_width(const struct ti_embedding *emb, int expected_dim,
                                   struct ti_err *err) {
    for (int i = 0; i < emb->n_terms; i++) {
        int d = emb->terms[i].dim;
        if (d == expected_dim) continue;
        return ti_error(err, TI_ERR_SHAPE,
                        "embedding '%s' has vectors of width %d (%s); this "
                        "model expects %d (%s)",
                        ti_embedding_label(emb), d, ti_embedding_width_name(d), expected_dim,
                        ti_embedding_width_name(expected_dim));
    }
    return TI_OK;
}

ti_status ti_embedding_check_finite(const struct ti_embedding *emb, struct ti_err *err) {
    for (int i = 0; i < emb->n_terms; i++) {
        const struct ti_embedding_term *t = &emb->terms[i];
        size_t n = (size_t)t->n_vectors * (size_t)t->dim;
        for (size_t k = 0; k < n; k++)
            if (!isfinite(t->vectors[k]))
                return ti_error(err, TI_ERR_INVALID,
                                "embedding '%s': the vectors of '%s' hold %s (vector %zu, "
                                "element %zu): the run that made it diverged; every image would "
                                "be black",
                                ti_embedding_label(emb), t->placeholder,
                                isnan(t->vectors[k]) ? "NaN" : "an infinity", k / (size_t)t->dim,
                                k % (size_t)t->dim);
    }
    return TI_OK;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* A placeholder key with a NUL byte would be cut there (and merge with another name). */
static ti_status check_name(const struct ti_py *k, const char *what, struct ti_err *err) {
    if (strlen(k->u.str.s) == k->u.str.len) return TI_OK;
    return ti_error(err, TI_ERR_FORMAT,
                    "'%s': the placeholder '%s\\x00...' holds a NUL byte; expected a word", what,
                    k->u.str.s);
}

/* Converts one tensor ([n, dim] or [dim]) to a term. */
static ti_status add_tensor_term(struct ti_embedding *emb, const char *what,
                                 const char *placeholder, int64_t token, const struct ti_tensor *t,
                                 struct ti_err *err) {
    char sh[128];
    if (!ti_dtype_is_float(t->dtype))
        return ti_error(err, TI_ERR_DTYPE, "'%s': the vectors of '%s' are %s, expected floats",
                        what, placeholder, ti_dtype_name(t->dtype));
    if (t->ndim != 1 && t->ndim != 2)
        return ti_error(err, TI_ERR_SHAPE,
                        "'%s': the vectors of '%s' have shape %s, expected "
                        "[n_vectors, width] or [width]",
                        what, placeholder, ti_shape_str(t->ndim, t->shape, sh, sizeof sh));
    int64_t n = t->ndim == 2 ? t->shape[0] : 1, dim = t->shape[t->ndim - 1];
    if (n < 1 || n > TI_EMB_MAX_VECTORS || dim < 1 || dim > TI_EMB_MAX_DIM)
        return ti_error(err, TI_ERR_SHAPE, "'%s': the vectors of '%s' have shape %s, out of range",
                        what, placeholder, ti_shape_str(t->ndim, t->shape, sh, sizeof sh));
    TI_TRY(ti_embedding_add_term(emb, placeholder, token, (int)n, (int)dim, NULL, err));
    float *dst = emb->terms[emb->n_terms - 1].vectors;
    const uint8_t *base = t->data;
    size_t es = ti_dtype_size(t->dtype);
    int64_t rs = t->ndim == 2 ? t->stride[0] : 0, cs = t->stride[t->ndim - 1];
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < dim; c++) {
            dst[r * dim + c] = ti_dtype_load_f32(base + (r * rs + c * cs) * (int64_t)es, t->dtype);
        }
    emb->file_dtype = t->dtype;
    return TI_OK;
}

static ti_status token_of(const struct ti_py *v, int64_t *out) {
    *out = -1;
    if (!v) return TI_OK;
    if (v->kind == TI_PY_INT) {
        *out = v->u.i;
        return TI_OK;
    }
    if (v->kind == TI_PY_TENSOR && ti_tensor_numel(&v->u.tensor.t) == 1) {
        const struct ti_tensor *t = &v->u.tensor.t;
        if (t->dtype == TI_DTYPE_I64)
            memcpy(out, t->data, 8);
        else if (t->dtype == TI_DTYPE_I32) {
            int32_t x;
            memcpy(&x, t->data, 4);
            *out = x;
        }
    }
    return TI_OK;
}

static ti_status meta_str(const struct ti_py *root, const char *key, char **dst, const char *what,
                          struct ti_err *err) {
    const struct ti_py *v = ti_py_dict_get(root, key);
    if (!v || v->kind == TI_PY_NONE) return TI_OK;
    if (v->kind != TI_PY_STR)
        return ti_error(err, TI_ERR_FORMAT, "'%s': '%s' is a %s, expected a string", what, key,
                        ti_py_kind_name(v->kind));
    return set_str(dst, v->u.str.s, err);
}

static ti_status sdxl_error(const char *what, struct ti_err *err) {
    return ti_error(err, TI_ERR_UNSUPPORTED,
                    "'%s' is an SDXL embedding (clip_l 768 + clip_g "
                    "1280 vectors); ti trains and loads SD v1 and LDM embeddings only",
                    what);
}

ti_status ti_embedding_from_torch(struct ti_embedding *emb, const struct ti_torchfile *tf,
                                  const char *stem, struct ti_err *err) {
    const char *what = tf->name;
    const struct ti_py *root = tf->root;
    ti_embedding_init(emb);
    ti_status st = TI_OK;
    if (root->kind == TI_PY_TENSOR) { /* torch.save(tensor): a bare tensor */
        emb->format = TI_EMB_DIFFUSERS;
        TI_TRY_GOTO(st, add_tensor_term(emb, what, stem, -1, &root->u.tensor.t, err));
        TI_TRY_GOTO(st, set_str(&emb->name, stem, err));
        return TI_OK;
    }
    if (root->kind != TI_PY_DICT) {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s' is not an embedding file (it holds a %s, not a "
                      "dict)",
                      what, ti_py_kind_name(root->kind));
        goto fail;
    }
    const struct ti_py *s2p = ti_py_dict_get(root, "string_to_param");
    if (s2p) {
        const struct ti_py *params = ti_py_unwrap_module(s2p);
        const struct ti_py *s2t = ti_py_dict_get(root, "string_to_token");
        if (!params) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "'%s': string_to_param is a %s, expected a dict or "
                          "an nn.ParameterDict",
                          what, ti_py_kind_name(s2p->kind));
            goto fail;
        }
        if (ti_py_dict_len(params) == 0) {
            st = ti_error(err, TI_ERR_FORMAT, "'%s': string_to_param is empty", what);
            goto fail;
        }
        int peer = s2p->kind == TI_PY_OBJECT;
        for (size_t i = 0; i < ti_py_dict_len(params); i++) {
            const struct ti_py *k = ti_py_dict_key(params, i), *v = ti_py_dict_value(params, i);
            if (k->kind != TI_PY_STR || v->kind != TI_PY_TENSOR) {
                st = ti_error(err, TI_ERR_FORMAT,
                              "'%s': string_to_param entry %zu is not "
                              "placeholder -> tensor",
                              what, i);
                goto fail;
            }
            TI_TRY_GOTO(st, check_name(k, what, err));
            const struct ti_py *tok = s2t ? ti_py_dict_get(s2t, k->u.str.s) : NULL;
            if (tok && tok->kind == TI_PY_TENSOR) peer = 1;
            int64_t id;
            token_of(tok, &id);
            TI_TRY_GOTO(st, add_tensor_term(emb, what, k->u.str.s, id, &v->u.tensor.t, err));
        }
        /* the original's EmbeddingManager substitutes every string_to_token key with
         * string_to_param[key]: a key without vectors is its KeyError at the first prompt */
        if (s2t && s2t->kind == TI_PY_DICT)
            for (size_t i = 0; i < ti_py_dict_len(s2t); i++) {
                const struct ti_py *k = ti_py_dict_key(s2t, i);
                if (k->kind == TI_PY_STR && !ti_py_dict_get(params, k->u.str.s)) {
                    st = ti_error(err, TI_ERR_FORMAT,
                                  "'%s': string_to_token has the placeholder '%s' but "
                                  "string_to_param has no vectors for it (the original fails "
                                  "with KeyError '%s'); the two dicts must have the same keys",
                                  what, k->u.str.s, k->u.str.s);
                    goto fail;
                }
            }
        emb->format = peer ? TI_EMB_PEER : TI_EMB_A1111;
        TI_TRY_GOTO(st, meta_str(root, "name", &emb->name, what, err));
        TI_TRY_GOTO(st, meta_str(root, "sd_checkpoint", &emb->sd_checkpoint, what, err));
        TI_TRY_GOTO(st, meta_str(root, "sd_checkpoint_name", &emb->sd_checkpoint_name, what, err));
        const struct ti_py *step = ti_py_dict_get(root, "step");
        if (step && step->kind == TI_PY_INT) emb->step = step->u.i;
        if (!emb->name) TI_TRY_GOTO(st, set_str(&emb->name, stem, err));
        return TI_OK;
    }
    if (ti_py_dict_get(root, "clip_l") || ti_py_dict_get(root, "clip_g")) {
        st = sdxl_error(what, err);
        goto fail;
    }
    const struct ti_py *kohya = ti_py_dict_get(root, "emb_params");
    if (kohya && kohya->kind == TI_PY_TENSOR) {
        emb->format = TI_EMB_KOHYA;
        TI_TRY_GOTO(st, add_tensor_term(emb, what, "*", -1, &kohya->u.tensor.t, err));
        TI_TRY_GOTO(st, set_str(&emb->name, stem, err));
        return TI_OK;
    }
    /* diffusers: a single placeholder -> tensor */
    size_t n_tensors = 0, which = 0;
    for (size_t i = 0; i < ti_py_dict_len(root); i++)
        if (ti_py_dict_value(root, i)->kind == TI_PY_TENSOR) n_tensors++, which = i;
    if (n_tensors == 1 && ti_py_dict_key(root, which)->kind == TI_PY_STR) {
        emb->format = TI_EMB_DIFFUSERS;
        TI_TRY_GOTO(st, check_name(ti_py_dict_key(root, which), what, err));
        TI_TRY_GOTO(st, add_tensor_term(emb, what, ti_py_dict_key(root, which)->u.str.s, -1,
                                        &ti_py_dict_value(root, which)->u.tensor.t, err));
        TI_TRY_GOTO(st, set_str(&emb->name, stem, err));
        return TI_OK;
    }
    st = ti_error(err, TI_ERR_FORMAT,
                  "'%s' is not an embedding file: it has no string_to_param "
                  "(a1111/peer), emb_params (kohya) or single placeholder tensor (diffusers)%s",
                  what,
                  ti_py_dict_get(root, "state_dict") ? "; it looks like a model checkpoint" : "");
fail:
    ti_embedding_free(emb);
    return st;
}

ti_status ti_embedding_from_safetensors(struct ti_embedding *emb, const struct ti_safetensors *st,
                                        const char *stem, struct ti_err *err) {
    ti_embedding_init(emb);
    ti_status s = TI_OK;
    if (ti_safetensors_find(st, "clip_l") || ti_safetensors_find(st, "clip_g")) {
        s = sdxl_error(st->name, err);
        goto fail;
    }
    const struct ti_st_tensor *k = ti_safetensors_find(st, "emb_params");
    if (k) {
        emb->format = TI_EMB_KOHYA;
        TI_TRY_GOTO(s, add_tensor_term(emb, st->name, "*", -1, &k->t, err));
    } else if (st->n == 1) {
        emb->format = TI_EMB_DIFFUSERS;
        TI_TRY_GOTO(
            s, add_tensor_term(emb, st->name, st->tensors[0].name, -1, &st->tensors[0].t, err));
    } else {
        s = ti_error(err, TI_ERR_FORMAT,
                     "'%s' is not an embedding file: it holds %zu tensors and "
                     "no emb_params (an embedding .safetensors holds one tensor)",
                     st->name, st->n);
        goto fail;
    }
    TI_TRY_GOTO(s, set_str(&emb->name, stem, err));
    return TI_OK;
fail:
    ti_embedding_free(emb);
    return s;
}

ti_status ti_embedding_read(struct ti_embedding *emb, const char *path, struct ti_err *err) {
    return ti_embedding_read_flags(emb, path, 0, err);
}

ti_status ti_embedding_read_flags(struct ti_embedding *emb, const char *path, unsigned flags,
                                  struct ti_err *err) {
    struct ti_fmap m;
    char stem[256], inner[4096];
    ti_embedding_init(emb);
    ti_path_stem(path, stem, sizeof stem);
    const char *file = path;
    if (ti_path_is_dir(path)) {
        /* a diffusers textual-inversion output folder (what load_textual_inversion takes): its
         * learned_embeds.safetensors, else learned_embeds.bin; the folder names the embedding */
        static const char *const names[] = {"learned_embeds.safetensors", "learned_embeds.bin"};
        file = NULL;
        for (size_t i = 0; i < sizeof names / sizeof *names && !file; i++) {
            if (snprintf(inner, sizeof inner, "%s/%s", path, names[i]) >= (int)sizeof inner)
                return ti_error(err, TI_ERR_INVALID, "'%s': path too long", path);
            if (ti_path_is_file(inner)) file = inner;
        }
        if (!file)
            return ti_error(err, TI_ERR_NOT_FOUND,
                            "'%s' is a folder without learned_embeds.safetensors or "
                            "learned_embeds.bin; expected an embedding file or a diffusers "
                            "textual-inversion folder",
                            path);
    }
    TI_TRY(ti_fmap_open(&m, file, err));
    path = file;
    ti_status st;
    if (m.size == 0) {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s' is empty (0 bytes); expected an embedding file (a torch .pt/.bin or "
                      "a .safetensors file)",
                      path);
    } else if (ti_torchfile_sniff(m.data, m.size) != TI_TORCH_NONE) {
        struct ti_torchfile *tf;
        st = ti_torchfile_open_mem(&tf, m.data, m.size, path,
                                   TI_TORCH_VERIFY_CRC | (flags & TI_TORCH_ALLOW_UNKNOWN_GLOBALS),
                                   err);
        if (st == TI_OK) {
            st = ti_embedding_from_torch(emb, tf, stem, err);
            ti_torchfile_close(tf);
        }
    } else if (ti_safetensors_sniff(m.data, m.size)) {
        struct ti_safetensors *sf;
        st = ti_safetensors_open_mem(&sf, m.data, m.size, path, err);
        if (st == TI_OK) {
            st = ti_embedding_from_safetensors(emb, sf, stem, err);
            ti_safetensors_close(sf);
        }
    } else if (m.size >= 8 && !memcmp(m.data, "\x89PNG\r\n\x1a\n", 8)) {
        st = ti_error(err, TI_ERR_UNSUPPORTED,
                      "'%s' is a PNG; embeddings stored inside images "
                      "are not supported (use the .pt file)",
                      path);
    } else {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s' is not an embedding file (expected a torch .pt/.bin "
                      "or a .safetensors file)",
                      path);
    }
    ti_fmap_close(&m);
    if (st == TI_OK) st = set_str(&emb->source, path, err);
    if (st != TI_OK) ti_embedding_free(emb);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------- */

static ti_status write_str_or_none(struct ti_pkw *pk, const char *s) {
    if (s)
        ti_pkw_str(pk, s);
    else
        ti_pkw_op(pk, TI_PK_NONE);
    return TI_OK;
}

static struct ti_tensor term_tensor(const struct ti_embedding_term *t) {
    return ti_tensor_view(t->vectors, TI_DTYPE_F32, TI_DEVICE_CPU, 2,
                          (int64_t[]){t->n_vectors, t->dim});
}

/* The token id a term without one is stored under: '*' as its model's tokenizer gives it, told
 * apart by the width (LDM text2img-large's BERT: 1008; SD's CLIP: 265, as A1111 writes). */
static int64_t star_token(const struct ti_embedding_term *t) {
    return t->token >= 0 ? t->token : ti_embedding_width_is_clip(t->dim) == 0 ? 1008 : 265;
}

static ti_status write_a1111(const struct ti_embedding *emb, const char *path, struct ti_err *err) {
    if (emb->n_terms != 1)
        return ti_error(err, TI_ERR_INVALID,
                        "the a1111 format holds exactly one term; this "
                        "embedding has %d (write it with the peer format)",
                        emb->n_terms);
    const struct ti_embedding_term *t = &emb->terms[0];
    char stem[256];
    const char *name = emb->name ? emb->name : ti_path_stem(path, stem, sizeof stem);
    struct ti_torch_writer w;
    ti_torch_writer_init(&w);
    struct ti_pkw *pk = &w.pk;
    ti_pkw_proto(pk, 2);
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    ti_pkw_str(pk, "string_to_token");
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_str(pk, "*");
    ti_pkw_int(pk, star_token(t));
    ti_pkw_op(pk, TI_PK_SETITEM);
    ti_pkw_str(pk, "string_to_param");
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_str(pk, "*");
    struct ti_tensor v = term_tensor(t);
    ti_status st = ti_torch_writer_tensor(&w, &v, 1, err);
    if (st == TI_OK) {
        ti_pkw_op(pk, TI_PK_SETITEM);
        ti_pkw_str(pk, "name");
        ti_pkw_str(pk, name);
        ti_pkw_str(pk, "step");
        if (emb->step >= 0)
            ti_pkw_int(pk, emb->step);
        else
            ti_pkw_op(pk, TI_PK_NONE);
        ti_pkw_str(pk, "sd_checkpoint");
        write_str_or_none(pk, emb->sd_checkpoint);
        ti_pkw_str(pk, "sd_checkpoint_name");
        write_str_or_none(pk, emb->sd_checkpoint_name);
        ti_pkw_op(pk, TI_PK_SETITEMS);
        st = ti_torch_writer_save(&w, path, err);
    }
    ti_torch_writer_free(&w);
    return st;
}

static void empty_ordered_dict(struct ti_pkw *pk) {
    ti_pkw_global(pk, "collections", "OrderedDict");
    ti_pkw_op(pk, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(pk, TI_PK_REDUCE);
}

static ti_status write_peer(const struct ti_embedding *emb, const char *path, struct ti_err *err) {
    if (emb->n_terms < 1) return ti_error(err, TI_ERR_INVALID, "the embedding has no terms");
    for (int i = 0; i < emb->n_terms; i++)
        if (emb->terms[i].token < 0 && strcmp(emb->terms[i].placeholder, "*"))
            return ti_error(err, TI_ERR_INVALID,
                            "the peer format stores each placeholder's token "
                            "id, and '%s' has none (give it one, e.g. ti-convert --token ID)",
                            emb->terms[i].placeholder);
    struct ti_torch_writer w;
    ti_torch_writer_init(&w);
    struct ti_pkw *pk = &w.pk;
    ti_status st = TI_OK;
    ti_pkw_proto(pk, 2);
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    /* string_to_token: {placeholder: 0-d int64 tensor} (a plain dict, as the peer keeps it) */
    ti_pkw_str(pk, "string_to_token");
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    for (int i = 0; i < emb->n_terms && st == TI_OK; i++) {
        int64_t tok = star_token(&emb->terms[i]);
        struct ti_tensor t = ti_tensor_view(&tok, TI_DTYPE_I64, TI_DEVICE_CPU, 0, NULL);
        ti_pkw_str(pk, emb->terms[i].placeholder);
        st = ti_torch_writer_tensor(&w, &t, 0, err);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    /* string_to_param: nn.ParameterDict, NEWOBJ + BUILD(module state), as torch 1.13 writes */
    ti_pkw_str(pk, "string_to_param");
    ti_pkw_global(pk, "torch.nn.modules.container", "ParameterDict");
    ti_pkw_op(pk, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(pk, TI_PK_NEWOBJ);
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    ti_pkw_str(pk, "training");
    ti_pkw_bool(pk, 1);
    ti_pkw_str(pk, "_parameters");
    empty_ordered_dict(pk);
    ti_pkw_op(pk, TI_PK_MARK);
    for (int i = 0; i < emb->n_terms && st == TI_OK; i++) {
        struct ti_tensor v = term_tensor(&emb->terms[i]);
        ti_pkw_str(pk, emb->terms[i].placeholder);
        st = ti_torch_writer_parameter(&w, &v, 1, err);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    static const char *const hooks[] = {"_buffers",
                                        "_non_persistent_buffers_set",
                                        "_backward_hooks",
                                        "_is_full_backward_hook",
                                        "_forward_hooks",
                                        "_forward_pre_hooks",
                                        "_state_dict_hooks",
                                        "_load_state_dict_pre_hooks",
                                        "_load_state_dict_post_hooks",
                                        "_modules"};
    for (size_t i = 0; i < sizeof hooks / sizeof *hooks; i++) {
        ti_pkw_str(pk, hooks[i]);
        if (!strcmp(hooks[i], "_non_persistent_buffers_set")) {
            ti_pkw_global(pk, "__builtin__", "set");
            ti_pkw_op(pk, TI_PK_EMPTY_LIST);
            ti_pkw_tuple(pk, 1);
            ti_pkw_op(pk, TI_PK_REDUCE);
        } else if (!strcmp(hooks[i], "_is_full_backward_hook")) {
            ti_pkw_op(pk, TI_PK_NONE);
        } else {
            empty_ordered_dict(pk);
        }
    }
    ti_pkw_str(pk, "_keys"); /* torch >= 1.12 iterates a ParameterDict through _keys */
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    for (int i = 0; i < emb->n_terms; i++) {
        ti_pkw_str(pk, emb->terms[i].placeholder);
        ti_pkw_op(pk, TI_PK_NONE);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    ti_pkw_op(pk, TI_PK_SETITEMS); /* the module state */
    ti_pkw_op(pk, TI_PK_BUILD);
    ti_pkw_op(pk, TI_PK_SETITEMS); /* the top-level dict */
    if (st == TI_OK) st = ti_torch_writer_save(&w, path, err);
    ti_torch_writer_free(&w);
    return st;
}

static ti_status write_diffusers(const struct ti_embedding *emb, const char *path,
                                 struct ti_err *err) {
    if (emb->n_terms != 1)
        return ti_error(err, TI_ERR_INVALID,
                        "the diffusers format holds exactly one term; this "
                        "embedding has %d (write it with the peer format)",
                        emb->n_terms);
    char full[4096];
    if (ti_path_is_dir(path)) {
        snprintf(full, sizeof full, "%s/learned_embeds.safetensors", path);
        path = full;
    }
    struct ti_tensor v = term_tensor(&emb->terms[0]);
    struct ti_st_entry e = {emb->terms[0].placeholder, &v};
    static const char *const meta[] = {"format", "pt"};
    return ti_safetensors_write(path, &e, 1, meta, 1, err);
}

ti_status ti_embedding_write(const struct ti_embedding *emb, const char *path,
                             enum ti_embedding_format format, struct ti_err *err) {
    for (int i = 0; i < emb->n_terms; i++)
        if (!emb->terms[i].vectors || emb->terms[i].n_vectors < 1 || emb->terms[i].dim < 1)
            return ti_error(err, TI_ERR_INVALID, "embedding term '%s' has no vectors",
                            emb->terms[i].placeholder);
    switch (format) {
    case TI_EMB_A1111: return write_a1111(emb, path, err);
    case TI_EMB_PEER: return write_peer(emb, path, err);
    case TI_EMB_DIFFUSERS: return write_diffusers(emb, path, err);
    default:
        return ti_error(err, TI_ERR_INVALID,
                        "ti writes embeddings as a1111, peer or diffusers, "
                        "not %s",
                        ti_embedding_format_name(format));
    }
}
