/*
 * embedding_manager.c - the peer's EmbeddingManager as token-id rewriting (see the header for the
 * rules and where ti differs from the peer).
 */
#include "embedding_manager.h"

#include <stdint.h> /* defines: INT32_MAX */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, realloc, free */
#include <string.h> /* defines: memcpy, memmove, strcmp, strlen */

#include "context.h" /* defines: struct ti_ctx, ti_ctx_download */
#include "fileio.h"  /* defines: ti_strdup */
#include "ops.h"     /* defines: ti_copy */
#include "rng.h"     /* defines: struct ti_rng */

/* The peer's per_img_token_list (ldm/data/personalized.py): 22 Hebrew letters appended to the
 * placeholders when per_image_tokens is set. Each is two CLIP tokens, so with SD the
 * single-token rule refuses them, as the peer's assertion does. */
static const char *const PER_IMAGE_TOKENS[22] = {
    "\xd7\x90", "\xd7\x91", "\xd7\x92", "\xd7\x93", "\xd7\x94", "\xd7\x95", "\xd7\x96", "\xd7\x97",
    "\xd7\x98", "\xd7\x99", "\xd7\x9b", "\xd7\x9c", "\xd7\x9e", "\xd7\xa0", "\xd7\xa1", "\xd7\xa2",
    "\xd7\xa4", "\xd7\xa6", "\xd7\xa7", "\xd7\xa8", "\xd7\xa9", "\xd7\xaa"};

#define KEY_PREFIX "model.params.personalization_config.params."

void ti_emb_manager_init(struct ti_emb_manager *em, int dim, int is_clip) {
    memset(em, 0, sizeof *em);
    em->dim = dim;
    em->is_clip = is_clip;
    em->num_vectors_per_token = 0;
}

void ti_emb_manager_free(struct ti_emb_manager *em) {
    if (!em) return;
    for (int i = 0; i < em->n_terms; i++) {
        free(em->terms[i].placeholder);
        free((char *)em->terms[i].source);
    }
    free(em->terms);
    free(em->rows);
    free(em->init_rows);
    memset(em, 0, sizeof *em);
}

const struct ti_emb_term *ti_emb_manager_find(const struct ti_emb_manager *em,
                                              const char *placeholder) {
    for (int i = 0; i < em->n_terms; i++)
        if (strcmp(em->terms[i].placeholder, placeholder) == 0) return &em->terms[i];
    return NULL;
}

const struct ti_emb_term *ti_emb_manager_find_token(const struct ti_emb_manager *em,
                                                    int32_t token) {
    for (int i = 0; i < em->n_terms; i++)
        if (em->terms[i].token == token) return &em->terms[i];
    return NULL;
}

int ti_emb_manager_term_vectors(const struct ti_emb_manager *em, const struct ti_emb_term *t) {
    int per = em->num_vectors_per_token;
    if (per == 1) return 1;
    return per > 0 && per < t->n_vectors ? per : t->n_vectors;
}

/* Appends a term with its vectors (n x dim) and, when init is not NULL, its init vectors. */
static ti_status add_term(struct ti_emb_manager *em, const char *placeholder, int32_t token, int n,
                          const float *vectors, const float *init, const char *source,
                          struct ti_err *err) {
    size_t d = (size_t)em->dim, rows = (size_t)em->n_rows + (size_t)n;
    struct ti_emb_term *terms = realloc(em->terms, (size_t)(em->n_terms + 1) * sizeof *terms);
    if (!terms) return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    em->terms = terms;
    float *r = realloc(em->rows, rows * d * sizeof *r);
    if (!r) return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    em->rows = r;
    if (init && !em->init_rows) {
        em->init_rows = calloc(rows * d, sizeof(float));
        if (!em->init_rows) return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    } else if (em->init_rows) {
        float *ir = realloc(em->init_rows, rows * d * sizeof *ir);
        if (!ir) return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
        em->init_rows = ir;
        memset(ir + (size_t)em->n_rows * d, 0, (size_t)n * d * sizeof *ir);
    }
    struct ti_emb_term *t = &em->terms[em->n_terms];
    memset(t, 0, sizeof *t);
    t->placeholder = ti_strdup(placeholder);
    t->source = ti_strdup(source ? source : "?");
    if (!t->placeholder || !t->source) {
        free(t->placeholder);
        free((char *)t->source);
        return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    }
    t->token = token;
    t->n_vectors = n;
    t->row0 = em->n_rows;
    t->has_init = init != NULL;
    memcpy(em->rows + (size_t)em->n_rows * d, vectors, (size_t)n * d * sizeof(float));
    if (init) memcpy(em->init_rows + (size_t)em->n_rows * d, init, (size_t)n * d * sizeof(float));
    em->n_terms++;
    em->n_rows = (int)rows;
    return TI_OK;
}

/* The single-token rule with the peer's message first, then the tokenizer's explanation. */
static ti_status single_token(int32_t *id, const struct ti_tokenizer *tok, const char *word,
                              const char *what, struct ti_err *err) {
    struct ti_err inner = {0};
    if (ti_tokenizer_single_token(id, tok, word, &inner) == TI_OK) return TI_OK;
    return ti_error(err, TI_ERR_INVALID,
                    "%s: String '%s' maps to more than a single token. Please use another "
                    "string (%s)",
                    what, word, inner.msg);
}

/* Rows `ids[0..n)` of the token table as f32 (n x dim) into out; with add_pos0 the position-0
 * row is added to each (CLIP's init-vector quirk). The tables may be on any backend/dtype. */
static ti_status table_rows(const struct ti_text_encoder *te, const int32_t *ids, int n,
                            int add_pos0, float *out, struct ti_err *err) {
    const struct ti_tensor *tab = &te->tok_emb;
    const struct ti_backend *be = ti_backend_cpu();
    if (tab->device == TI_DEVICE_CUDA) TI_TRY(ti_backend_cuda(&be, tab->device_index, err));
    struct ti_ctx ctx;
    ti_status st = ti_ctx_init(&ctx, be, 1 << 20, 1 << 20);
    if (st != TI_OK) return ti_error(err, st, "embedding manager: %s", ctx.err.msg);
    int dim = (int)tab->shape[1];
    float *pos = NULL;
    if (add_pos0) {
        pos = malloc((size_t)dim * sizeof *pos);
        if (!pos) {
            st = ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
            goto done;
        }
    }
    for (int i = 0; i <= n; i++) {
        const struct ti_tensor *src = i < n ? tab : &te->pos_emb;
        int64_t row = i < n ? ids[i] : 0;
        if (i == n && !add_pos0) break;
        if (row < 0 || row >= src->shape[0]) {
            st = ti_error(err, TI_ERR_INVALID,
                          "embedding manager: token id %lld is outside the token table (%lld rows)",
                          (long long)row, (long long)src->shape[0]);
            goto done;
        }
        struct ti_tensor v, c = ti_tensor_none();
        st = ti_tensor_narrow_view(&v, src, 0, row, 1, &ctx.err);
        if (st == TI_OK) st = ti_copy(&ctx, &c, &v, TI_DTYPE_F32);
        if (st == TI_OK)
            st = ti_ctx_download(&ctx, i < n ? out + (size_t)i * (size_t)dim : pos,
                                 (size_t)dim * sizeof(float), &c);
        ti_tensor_release(&c);
        if (st != TI_OK) {
            st = ti_error(err, st, "embedding manager: reading a token-table row: %s", ctx.err.msg);
            goto done;
        }
    }
    if (add_pos0)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < dim; j++)
                out[(size_t)i * (size_t)dim + (size_t)j] += pos[j];
done:
    free(pos);
    ti_ctx_free(&ctx);
    return st;
}

/* The init vectors (N x dim) of initializer text `word`: one token repeated N times, or (where
 * ti differs from the peer) m <= N tokens spread over the vectors as AUTOMATIC1111 does. With te
 * NULL only the word is checked (a dry run) and out is not written. */
static ti_status init_vectors(float *out, const struct ti_tokenizer *tok,
                              const struct ti_text_encoder *te, const char *word, int N,
                              int is_clip, const char *what, struct ti_err *err) {
    int32_t id;
    struct ti_err inner = {0};
    if (ti_tokenizer_single_token(&id, tok, word, &inner) == TI_OK) {
        if (!te) return TI_OK;
        int dim = (int)te->tok_emb.shape[1];
        TI_TRY(table_rows(te, &id, 1, is_clip, out, err));
        for (int i = 1; i < N; i++)
            memcpy(out + (size_t)i * (size_t)dim, out, (size_t)dim * sizeof(float));
        return TI_OK;
    }
    int32_t *ids = NULL;
    size_t m = 0;
    TI_TRY(ti_tokenizer_tokenize(&ids, &m, tok, word, strlen(word), err));
    if (m <= 1 || (size_t)N < m) {
        free(ids);
        if (m > 1)
            return ti_error(err, TI_ERR_INVALID,
                            "%s: String '%s' maps to more than a single token. Please use another "
                            "string (it gives %zu tokens; ti accepts a multi-token initializer "
                            "text only when num_vectors_per_token (%d) is at least its token "
                            "count, and then spreads the tokens over the vectors as AUTOMATIC1111 "
                            "does; %s)",
                            what, word, m, N, inner.msg);
        return ti_error(err, TI_ERR_INVALID,
                        "%s: String '%s' maps to more than a single token. Please use another "
                        "string (%s)",
                        what, word, inner.msg);
    }
    /* A1111 create_embedding: vec[i] = embedded[i * m // N] */
    int32_t *pick = malloc((size_t)N * sizeof *pick);
    if (!pick) {
        free(ids);
        return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    }
    for (int i = 0; i < N; i++)
        pick[i] = ids[(size_t)i * m / (size_t)N];
    ti_status st = te ? table_rows(te, pick, N, is_clip, out, err) : TI_OK;
    free(pick);
    free(ids);
    return st;
}

/* Replaces the terms with those of embedding_manager_ckpt (the peer's load(): wholesale), keeping
 * the config's init vectors for placeholders the file has with the same vector count. */
static ti_status load_ckpt(struct ti_emb_manager *em, const char *path,
                           const struct ti_tokenizer *tok, struct ti_err *err) {
    struct ti_embedding emb;
    ti_embedding_init(&emb);
    struct ti_emb_manager nm;
    ti_emb_manager_init(&nm, em->dim, em->is_clip);
    ti_status st = ti_embedding_read(&emb, path, err);
    if (st == TI_OK) st = ti_embedding_check_finite(&emb, err); /* NaN: every step would skip */
    if (st != TI_OK) {
        ti_embedding_free(&emb);
        return ti_error(err, st, " (" KEY_PREFIX "embedding_manager_ckpt)");
    }
    /* The peer substitutes by the file's stored token id. An AUTOMATIC1111 file keys its vector
     * '*' and stores the id of the word it was trained for, so continuing such a run with that
     * word as the placeholder trains the file's vectors under it: a term whose stored id is a
     * configured placeholder's token takes that placeholder's name. */
    for (int i = 0; i < emb.n_terms; i++) {
        struct ti_embedding_term *e = &emb.terms[i];
        for (int j = 0; j < em->n_terms && e->token >= 0; j++) {
            const struct ti_emb_term *c = &em->terms[j];
            if (c->token != e->token || !strcmp(c->placeholder, e->placeholder)) continue;
            char *np = strdup(c->placeholder);
            if (!np) {
                st = ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
                goto fail;
            }
            free(e->placeholder);
            e->placeholder = np;
            break;
        }
    }
    TI_TRY_GOTO(st, ti_emb_manager_add_file(&nm, &emb, tok, err));
    for (int i = 0; i < nm.n_terms; i++) {
        const struct ti_emb_term *t = &nm.terms[i];
        if (em->num_vectors_per_token == 1 && t->n_vectors != 1) {
            st = ti_error(err, TI_ERR_SHAPE,
                          KEY_PREFIX "embedding_manager_ckpt '%s': '%s' has %d vectors but "
                                     "num_vectors_per_token is 1 (the reference fails here with a "
                                     "shape mismatch); set num_vectors_per_token: %d",
                          path, t->placeholder, t->n_vectors, t->n_vectors);
            goto fail;
        }
    }
    /* carry the init vectors over */
    size_t d = (size_t)em->dim;
    for (int i = 0; i < nm.n_terms; i++) {
        struct ti_emb_term *t = &nm.terms[i];
        const struct ti_emb_term *old = ti_emb_manager_find(em, t->placeholder);
        if (!old || !old->has_init || old->n_vectors != t->n_vectors) continue;
        if (!nm.init_rows) {
            nm.init_rows = calloc((size_t)nm.n_rows * d, sizeof(float));
            if (!nm.init_rows) {
                st = ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
                goto fail;
            }
        }
        memcpy(nm.init_rows + (size_t)t->row0 * d, em->init_rows + (size_t)old->row0 * d,
               (size_t)t->n_vectors * d * sizeof(float));
        t->has_init = 1;
    }
    nm.num_vectors_per_token = em->num_vectors_per_token;
    nm.progressive_words = em->progressive_words;
    nm.progressive_counter = em->progressive_counter;
    ti_emb_manager_free(em);
    *em = nm;
    ti_embedding_free(&emb);
    return TI_OK;
fail:
    ti_emb_manager_free(&nm);
    ti_embedding_free(&emb);
    return st;
}

ti_status ti_emb_manager_from_config(struct ti_emb_manager *em, const struct ti_config *cfg,
                                     const struct ti_tokenizer *tok,
                                     const struct ti_text_encoder *te, uint64_t seed,
                                     struct ti_err *err) {
    const struct ti_cfg_personalization *p = &cfg->personalization;
    int is_clip = te ? te->is_clip : cfg->text.kind == TI_TEXT_CLIP;
    ti_emb_manager_init(em, cfg->token_dim, is_clip);
    if (!p->present)
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.personalization_config: the config has no EmbeddingManager, "
                        "so there is nothing to train (use a *-finetune.yaml config)");
    if (te && (te->hp.width != cfg->token_dim || te->tok_emb.ndim != 2 ||
               te->tok_emb.shape[1] != cfg->token_dim))
        return ti_error(err, TI_ERR_SHAPE,
                        "embedding manager: the text encoder is %d wide, the config's token "
                        "width is %d",
                        te->hp.width, cfg->token_dim);
    int N = p->num_vectors_per_token;
    if (N < 1 || N > TI_EMB_MAX_VECTORS)
        return ti_error(err, TI_ERR_CONFIG,
                        KEY_PREFIX "num_vectors_per_token: %d; expected 1 to %d", N,
                        TI_EMB_MAX_VECTORS);
    em->num_vectors_per_token = N;
    em->progressive_words = p->progressive_words;
    int n_ph = p->n_placeholders + (p->per_image_tokens ? 22 : 0);
    if (n_ph == 0)
        return ti_error(err, TI_ERR_CONFIG,
                        KEY_PREFIX "placeholder_strings: empty; expected at least one word "
                                   "(the reference default is [\"*\"])");
    size_t d = (size_t)cfg->token_dim;
    float *vec = calloc((size_t)N * d, sizeof *vec); /* zeros stay where te is NULL */
    if (!vec) return ti_error(err, TI_ERR_NOMEM, "embedding manager: out of memory");
    struct ti_rng rng;
    ti_rng_seed(&rng, seed);
    ti_status st = TI_OK;
    for (int i = 0; i < n_ph; i++) {
        const char *ph = i < p->n_placeholders ? p->placeholder_strings[i]
                                               : PER_IMAGE_TOKENS[i - p->n_placeholders];
        char what[256];
        if (i < p->n_placeholders)
            snprintf(what, sizeof what, KEY_PREFIX "placeholder_strings[%d]", i);
        else
            snprintf(what, sizeof what,
                     KEY_PREFIX "per_image_tokens (per-image placeholder %d of the reference's "
                                "22 Hebrew letters)",
                     i - p->n_placeholders + 1);
        int32_t token;
        TI_TRY_GOTO(st, single_token(&token, tok, ph, what, err));
        for (int j = 0; j < em->n_terms; j++)
            if (strcmp(em->terms[j].placeholder, ph) == 0 || em->terms[j].token == token) {
                st = ti_error(err, TI_ERR_CONFIG,
                              "%s: '%s' is the same %s as placeholder '%s' before it; every "
                              "placeholder needs a token of its own",
                              what, ph,
                              strcmp(em->terms[j].placeholder, ph) == 0 ? "string" : "token",
                              em->terms[j].placeholder);
                goto fail;
            }
        int has_init = i < p->n_initializer_words;
        if (has_init) {
            char iw[256];
            snprintf(iw, sizeof iw, KEY_PREFIX "initializer_words[%d]", i);
            TI_TRY_GOTO(st,
                        init_vectors(vec, tok, te, p->initializer_words[i], N, is_clip, iw, err));
        } else {
            for (size_t k = 0; k < (size_t)N * d; k++)
                vec[k] = (float)ti_rng_uniform(&rng); /* torch.rand: U[0, 1) */
        }
        TI_TRY_GOTO(st, add_term(em, ph, token, N, vec, has_init ? vec : NULL, "config", err));
    }
    free(vec);
    vec = NULL;
    if (p->embedding_manager_ckpt[0])
        TI_TRY_GOTO(st, load_ckpt(em, p->embedding_manager_ckpt, tok, err));
    return TI_OK;
fail:
    free(vec);
    ti_emb_manager_free(em);
    return st;
}

int ti_embedding_words_from_tokens(struct ti_embedding *emb, const struct ti_tokenizer *tok,
                                   char *note, size_t cap) {
    if (cap) note[0] = 0;
    int32_t star;
    struct ti_err e = {0};
    if (ti_tokenizer_single_token(&star, tok, "*", &e) != TI_OK) return 0;
    int renamed = 0;
    for (int i = 0; i < emb->n_terms; i++) {
        struct ti_embedding_term *t = &emb->terms[i];
        if (strcmp(t->placeholder, "*") || t->token < 0 || t->token == star || t->token > INT32_MAX)
            continue;
        int32_t id = (int32_t)t->token, back;
        char *word = NULL;
        if (ti_tokenizer_decode(&word, tok, &id, 1, &e) != TI_OK || !word) {
            free(word);
            ti_err_clear(&e);
            continue;
        }
        /* decode may put a space around the word; the word must come back as this one id */
        char *w = word;
        while (*w == ' ')
            w++;
        size_t L = strlen(w);
        while (L && w[L - 1] == ' ')
            w[--L] = 0;
        if (!L || ti_tokenizer_single_token(&back, tok, w, &e) != TI_OK || back != id) {
            ti_err_clear(&e);
            free(word);
            continue;
        }
        char *np = strdup(w);
        free(word);
        if (!np) continue;
        if (!renamed && cap)
            snprintf(note, cap,
                     "'%s' stores its vectors under '*' for the word '%s' (stored token %d, "
                     "where the original substitutes them): the prompt word is '%s'",
                     ti_embedding_label(emb), np, (int)id, np);
        free(t->placeholder);
        t->placeholder = np;
        renamed++;
    }
    return renamed;
}

ti_status ti_emb_manager_add_file(struct ti_emb_manager *em, const struct ti_embedding *emb,
                                  const struct ti_tokenizer *tok, struct ti_err *err) {
    const char *src = ti_embedding_label(emb);
    for (int i = 0; i < emb->n_terms; i++) {
        const struct ti_embedding_term *e = &emb->terms[i];
        if (e->dim != em->dim)
            return ti_error(err, TI_ERR_SHAPE,
                            "embedding '%s': '%s' has vectors of width %d (%s); this model "
                            "expects %d (%s)",
                            src, e->placeholder, e->dim, ti_embedding_width_name(e->dim), em->dim,
                            ti_embedding_width_name(em->dim));
        if (e->n_vectors < 1)
            return ti_error(err, TI_ERR_FORMAT, "embedding '%s': '%s' has no vectors", src,
                            e->placeholder);
        int32_t token;
        struct ti_err inner = {0};
        if (ti_tokenizer_single_token(&token, tok, e->placeholder, &inner) != TI_OK)
            /* diffusers files name their term '<cat-toy>' and the like (an added token there):
             * say how to give the vectors a one-token name, before the tokenizer's details */
            return ti_error(err, TI_ERR_INVALID,
                            "embedding '%s': placeholder: String '%s' maps to more than a single "
                            "token. Please use another string: give the file's vectors a "
                            "one-token name with ti-merge --manager_ckpts %s --rename '%s:%s=NEW' "
                            "%s--output_path NEW.pt (or ti-convert %s NEW.pt, which names it "
                            "'*') (%s)",
                            src, e->placeholder, src, src, e->placeholder,
                            em->is_clip ? "-sd " : "", src, inner.msg);
        for (int j = 0; j < em->n_terms; j++) {
            const struct ti_emb_term *t = &em->terms[j];
            if (strcmp(t->placeholder, e->placeholder) == 0 || t->token == token)
                return ti_error(err, TI_ERR_INVALID,
                                "placeholder '%s' is defined twice: in '%s' and in '%s'%s; rename "
                                "one of them (ti-merge --manager_ckpts FILE --rename "
                                "'FILE:OLD=NEW' --output_path NEW.pt) or load only one",
                                e->placeholder, t->source, src,
                                strcmp(t->placeholder, e->placeholder) == 0
                                    ? ""
                                    : " (the same token under another spelling)");
        }
        TI_TRY(add_term(em, e->placeholder, token, e->n_vectors, e->vectors, NULL, src, err));
    }
    return TI_OK;
}

void ti_emb_manager_substitute(struct ti_emb_manager *em, int32_t *idx, int n, int seq_len) {
    for (int ti = 0; ti < em->n_terms; ti++) {
        const struct ti_emb_term *t = &em->terms[ti];
        if (em->num_vectors_per_token == 1) {
            /* the peer's simple replacement: embedded_text[tokens == token] = param */
            for (int64_t i = 0; i < (int64_t)n * seq_len; i++)
                if (idx[i] == t->token) idx[i] = -1 - t->row0;
            continue;
        }
        int k = ti_emb_manager_term_vectors(em, t);
        if (em->progressive_words) {
            em->progressive_counter++; /* once per call per placeholder, found or not */
            int64_t max_k = 1 + em->progressive_counter / TI_EMB_PROGRESSIVE_SCALE;
            k = t->n_vectors < max_k ? t->n_vectors : (int)max_k;
        }
        for (int b = 0; b < n; b++) {
            int32_t *row = idx + (size_t)b * (size_t)seq_len;
            /* right to left, so the columns still to visit do not move */
            for (int col = seq_len - 1; col >= 0; col--) {
                if (row[col] != t->token) continue;
                /* row = (row[:col] + [term] * k + row[col+1:])[:seq_len] */
                int tail = seq_len - (col + 1);
                int room = seq_len - (col + k);
                int keep = room < 0 ? 0 : (tail < room ? tail : room);
                if (keep > 0) memmove(row + col + k, row + col + 1, (size_t)keep * sizeof *row);
                for (int j = 0; j < k && col + j < seq_len; j++)
                    row[col + j] = -1 - (t->row0 + j);
            }
        }
    }
}

ti_status ti_emb_manager_batch_ids(struct ti_emb_manager *em, const struct ti_tokenizer *tok,
                                   const char *const *prompts, int n, int32_t *idx, int seq_len,
                                   struct ti_err *err) {
    if (seq_len != TI_TOKENS_MAX)
        return ti_error(err, TI_ERR_INVALID,
                        "embedding manager: prompts are %d tokens long, ti's text encoders take "
                        "%d",
                        seq_len, TI_TOKENS_MAX);
    for (int b = 0; b < n; b++) {
        struct ti_token_ids t;
        const char *p = prompts[b] ? prompts[b] : "";
        TI_TRY(ti_tokenizer_encode(&t, tok, p, strlen(p), err));
        memcpy(idx + (size_t)b * TI_TOKENS_MAX, t.ids, sizeof t.ids);
    }
    ti_emb_manager_substitute(em, idx, n, seq_len);
    return TI_OK;
}

ti_status ti_emb_manager_prompt_ids(struct ti_emb_manager *em, const struct ti_tokenizer *tok,
                                    const char *prompt, int32_t *idx, int seq_len,
                                    struct ti_err *err) {
    return ti_emb_manager_batch_ids(em, tok, &prompt, 1, idx, seq_len, err);
}

double ti_emb_manager_reg_loss(const struct ti_emb_manager *em, double weight, float *grad) {
    if (!em->init_rows) return 0.0;
    int n_init = 0;
    for (int i = 0; i < em->n_terms; i++)
        n_init += em->terms[i].has_init;
    if (n_init == 0) return 0.0;
    size_t d = (size_t)em->dim;
    double loss = 0.0;
    double *s = malloc(d * sizeof *s);
    if (!s) return 0.0;
    for (int i = 0; i < em->n_terms; i++) {
        const struct ti_emb_term *t = &em->terms[i];
        if (!t->has_init) continue;
        /* sum_{i,j} (D D^T)_{ij} = |sum_i D_i|^2, with D = p - p0 (N x dim) */
        for (size_t j = 0; j < d; j++)
            s[j] = 0.0;
        for (int r = 0; r < t->n_vectors; r++) {
            const float *p = em->rows + (size_t)(t->row0 + r) * d;
            const float *p0 = em->init_rows + (size_t)(t->row0 + r) * d;
            for (size_t j = 0; j < d; j++)
                s[j] += (double)p[j] - (double)p0[j];
        }
        double sq = 0.0;
        for (size_t j = 0; j < d; j++)
            sq += s[j] * s[j];
        double nn = (double)t->n_vectors * (double)t->n_vectors;
        loss += sq / nn / n_init;
        if (grad) /* d/dp_r = 2 * sum_i D_i / (N^2 n_init), the same for every row r */
            for (int r = 0; r < t->n_vectors; r++)
                for (size_t j = 0; j < d; j++)
                    grad[(size_t)(t->row0 + r) * d + j] +=
                        (float)(weight * 2.0 * s[j] / nn / n_init);
    }
    free(s);
    return loss;
}

ti_status ti_emb_manager_to_embedding(const struct ti_emb_manager *em, struct ti_embedding *out,
                                      struct ti_err *err) {
    ti_embedding_init(out);
    for (int i = 0; i < em->n_terms; i++) {
        const struct ti_emb_term *t = &em->terms[i];
        ti_status st = ti_embedding_add_term(out, t->placeholder, t->token, t->n_vectors, em->dim,
                                             em->rows + (size_t)t->row0 * (size_t)em->dim, err);
        if (st != TI_OK) {
            ti_embedding_free(out);
            return st;
        }
    }
    return TI_OK;
}
