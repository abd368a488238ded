/*
 * tokenizer.c - the 77-id layout, the front end over both tokenizers and the vocabulary hash
 * map (see tokenizer.h). The tokenizers themselves: tokenizer_bpe.c, tokenizer_wordpiece.c.
 */
#include "tokenizer.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free */
#include <string.h> /* defines: memcpy, memcmp */

#include "fileio.h" /* defines: ti_find_beside_tool */
#include "tokenizer_bpe.h"
#include "tokenizer_wordpiece.h"

void ti_token_ids_layout(struct ti_token_ids *out, const int32_t *toks, size_t n, int32_t bos,
                         int32_t eos, int32_t pad) {
    size_t keep = n < TI_TOKENS_MAX - 2 ? n : TI_TOKENS_MAX - 2;
    out->ids[0] = bos;
    for (size_t i = 0; i < keep; i++)
        out->ids[1 + i] = toks[i];
    out->ids[1 + keep] = eos;
    for (size_t i = keep + 2; i < TI_TOKENS_MAX; i++)
        out->ids[i] = pad;
    out->n = (int)keep + 2;
    out->n_text = n;
}

void ti_ids_format(char *buf, size_t size, const int32_t *ids, size_t n, size_t max) {
    size_t used = 0;
    if (size == 0) return;
    buf[0] = '\0';
    for (size_t i = 0; i < n && i < max && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? " " : "", (int)ids[i]);
    if (n > max && used < size) snprintf(buf + used, size - used, " ...");
}

/* ==== the front end ========================================================================== */

#ifndef TI_VOCAB_DIR
#define TI_VOCAB_DIR "model/vocab" /* relative to the repository root when CMake did not say */
#endif

const char *ti_tokenizer_vocab_file(enum ti_tokenizer_kind kind) {
    return kind == TI_TOKENIZER_BPE ? "bpe_simple_vocab_16e6.txt.gz"
                                    : "bert-base-uncased-vocab.txt";
}

const char *ti_tokenizer_vocab_dir(void) {
    return TI_VOCAB_DIR;
}

void ti_tokenizer_default_vocab(char *buf, size_t size, enum ti_tokenizer_kind kind) {
    const char *file = ti_tokenizer_vocab_file(kind);
    static const char *const beside[] = {"vocab"};
    if (ti_find_beside_tool(file, beside, 1, buf, size)) return;
    snprintf(buf, size, "%s/%s", ti_tokenizer_vocab_dir(), file);
}

struct ti_tokenizer {
    enum ti_tokenizer_kind kind;
    struct ti_bpe *bpe;
    struct ti_wordpiece *wp;
};

ti_status ti_tokenizer_load(struct ti_tokenizer **out, enum ti_tokenizer_kind kind,
                            const char *path, struct ti_err *err) {
    *out = NULL;
    struct ti_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ti_error(err, TI_ERR_NOMEM, "tokenizer: cannot allocate");
    t->kind = kind;
    ti_status st;
    if (kind == TI_TOKENIZER_BPE)
        st = ti_bpe_load(&t->bpe, path, err);
    else if (kind == TI_TOKENIZER_WORDPIECE)
        st = ti_wordpiece_load(&t->wp, path, err);
    else
        st = ti_error(err, TI_ERR_INVALID, "tokenizer: unknown kind %d", (int)kind);
    if (st != TI_OK) {
        free(t);
        return st;
    }
    *out = t;
    return TI_OK;
}

void ti_tokenizer_free(struct ti_tokenizer **tok) {
    if (!tok || !*tok) return;
    ti_bpe_free(&(*tok)->bpe);
    ti_wordpiece_free(&(*tok)->wp);
    free(*tok);
    *tok = NULL;
}

enum ti_tokenizer_kind ti_tokenizer_kind_of(const struct ti_tokenizer *tok) {
    return tok->kind;
}

ti_status ti_tokenizer_tokenize(int32_t **ids, size_t *n, const struct ti_tokenizer *tok,
                                const char *text, size_t len, struct ti_err *err) {
    if (tok->kind == TI_TOKENIZER_BPE) return ti_bpe_tokenize(ids, n, tok->bpe, text, len, err);
    return ti_wordpiece_tokenize(ids, n, tok->wp, text, len, err);
}

ti_status ti_tokenizer_encode(struct ti_token_ids *out, const struct ti_tokenizer *tok,
                              const char *text, size_t len, struct ti_err *err) {
    if (tok->kind == TI_TOKENIZER_BPE) return ti_bpe_encode(out, tok->bpe, text, len, err);
    return ti_wordpiece_encode(out, tok->wp, text, len, err);
}

ti_status ti_tokenizer_decode(char **out, const struct ti_tokenizer *tok, const int32_t *ids,
                              size_t n, struct ti_err *err) {
    if (tok->kind == TI_TOKENIZER_BPE) return ti_bpe_decode(out, tok->bpe, ids, n, err);
    return ti_wordpiece_decode(out, tok->wp, ids, n, err);
}

ti_status ti_tokenizer_single_token(int32_t *id, const struct ti_tokenizer *tok, const char *word,
                                    struct ti_err *err) {
    if (tok->kind == TI_TOKENIZER_BPE) return ti_bpe_single_token(id, tok->bpe, word, err);
    return ti_wordpiece_single_token(id, tok->wp, word, err);
}

void ti_tokenizer_specials(int32_t *bos, int32_t *eos, int32_t *pad,
                           const struct ti_tokenizer *tok) {
    if (tok->kind == TI_TOKENIZER_BPE) {
        *bos = TI_BPE_BOS;
        *eos = TI_BPE_EOS;
        *pad = TI_BPE_EOS;
    } else {
        ti_wordpiece_specials(bos, eos, pad, tok->wp);
    }
}

/* ==== vocabulary hash map ==================================================================== */

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static int vocab_eq(const struct ti_vocab *v, int32_t id, const char *s, size_t len) {
    return v->len[id] == len && memcmp(v->blob + v->off[id], s, len) == 0;
}

/* Slot index of string s: its slot if present, else the empty slot where it would go. */
static uint32_t vocab_slot(const struct ti_vocab *v, const char *s, size_t len) {
    uint32_t mask = v->n_slots - 1, i = hash_bytes(s, len) & mask;
    while (v->slots[i] && !vocab_eq(v, v->slots[i] - 1, s, len))
        i = (i + 1) & mask;
    return i;
}

static ti_status vocab_grow_slots(struct ti_vocab *v, struct ti_err *err) {
    uint32_t n = v->n_slots ? v->n_slots * 2 : 1024;
    int32_t *old = v->slots;
    uint32_t old_n = v->n_slots;
    v->slots = calloc(n, sizeof(int32_t));
    if (!v->slots) {
        v->slots = old;
        return ti_error(err, TI_ERR_NOMEM, "vocab: cannot allocate %u hash slots", n);
    }
    v->n_slots = n;
    for (uint32_t i = 0; i < old_n; i++) {
        if (!old[i]) continue;
        int32_t id = old[i] - 1;
        v->slots[vocab_slot(v, v->blob + v->off[id], v->len[id])] = old[i];
    }
    free(old);
    return TI_OK;
}

ti_status ti_vocab_add(struct ti_vocab *v, const char *s, size_t len, struct ti_err *err) {
    if (v->n_ids == v->cap_ids) {
        int32_t cap = v->cap_ids ? v->cap_ids * 2 : 1024;
        uint32_t *off = realloc(v->off, (size_t)cap * sizeof(uint32_t));
        if (!off) return ti_error(err, TI_ERR_NOMEM, "vocab: cannot allocate %d ids", cap);
        v->off = off;
        uint32_t *ln = realloc(v->len, (size_t)cap * sizeof(uint32_t));
        if (!ln) return ti_error(err, TI_ERR_NOMEM, "vocab: cannot allocate %d ids", cap);
        v->len = ln;
        v->cap_ids = cap;
    }
    if (v->blob_n + len + 1 > v->blob_cap) {
        size_t cap = v->blob_cap ? v->blob_cap : 4096;
        while (cap < v->blob_n + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX) return ti_error(err, TI_ERR_FORMAT, "vocab: strings exceed 4 GiB");
        char *b = realloc(v->blob, cap);
        if (!b) return ti_error(err, TI_ERR_NOMEM, "vocab: cannot allocate %zu bytes", cap);
        v->blob = b;
        v->blob_cap = cap;
    }
    if ((uint64_t)(v->n_ids + 1) * 2 > v->n_slots) TI_TRY(vocab_grow_slots(v, err));
    int32_t id = v->n_ids++;
    v->off[id] = (uint32_t)v->blob_n;
    v->len[id] = (uint32_t)len;
    if (len) memcpy(v->blob + v->blob_n, s, len);
    v->blob[v->blob_n + len] = '\0';
    v->blob_n += len + 1;
    v->slots[vocab_slot(v, s, len)] = id + 1; /* a duplicate string now points at the new id */
    return TI_OK;
}

int32_t ti_vocab_find(const struct ti_vocab *v, const char *s, size_t len) {
    if (!v->n_slots) return -1;
    int32_t e = v->slots[vocab_slot(v, s, len)];
    return e ? e - 1 : -1;
}

const char *ti_vocab_token(const struct ti_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n_ids) return NULL;
    if (len) *len = v->len[id];
    return v->blob + v->off[id];
}

void ti_vocab_free(struct ti_vocab *v) {
    if (!v) return;
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof *v);
}
