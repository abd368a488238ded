/* merge.c - merging embedding terms with the peer's rules and prompts (see merge.h). */
#include "merge.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, realloc, free */
#include <string.h> /* defines: strcmp, strlen, memcpy */

void ti_merge_init(struct ti_merge *m) {
    ti_embedding_init(&m->emb);
    m->term_src = NULL;
    m->computed_ids = 0;
}

void ti_merge_free(struct ti_merge *m) {
    for (int i = 0; i < m->emb.n_terms; i++)
        free(m->term_src[i]);
    free(m->term_src);
    ti_embedding_free(&m->emb);
    m->term_src = NULL;
}

/* When a file's width says it belongs to the other tokenizer: what to do, else "". */
static const char *width_hint(int dim, const struct ti_tokenizer *tok) {
    int bpe = ti_tokenizer_kind_of(tok) == TI_TOKENIZER_BPE, clip = ti_embedding_width_is_clip(dim);
    if (!bpe && clip == 1)
        return "; or, as its width says it is a Stable Diffusion embedding, pass -sd";
    if (bpe && clip == 0) return "; or, as its width says it is an LDM embedding, drop -sd";
    return "";
}

/* The merged term using `s` (or one of the file's terms already accepted), or -1. */
static int find_merged(const struct ti_merge *m, const char *s) {
    for (int i = 0; i < m->emb.n_terms; i++)
        if (!strcmp(m->emb.terms[i].placeholder, s)) return i;
    return -1;
}

static const char *taken_by(const struct ti_merge *m, const char *const *pending_names,
                            int n_pending, const char *path, const char *s) {
    int i = find_merged(m, s);
    if (i >= 0) return m->term_src[i];
    for (int k = 0; k < n_pending; k++)
        if (!strcmp(pending_names[k], s)) return path;
    return NULL;
}

/* The source of a merged or pending term whose token is `id` under another spelling (CLIP
 * lower-cases: 'Cat' is 'cat'), with that term's name in *as; or NULL. Two names of one token
 * make a file ti-sample refuses and the peer's scripts resolve by chance. */
static const char *token_taken_by(const struct ti_merge *m, char *const *pending_names,
                                  const int32_t *pending_ids, int n_pending, const char *path,
                                  int32_t id, const char **as) {
    for (int i = 0; i < m->emb.n_terms; i++)
        if (m->emb.terms[i].token == id) {
            *as = m->emb.terms[i].placeholder;
            return m->term_src[i];
        }
    for (int k = 0; k < n_pending; k++)
        if (pending_ids[k] == id) {
            *as = pending_names[k];
            return path;
        }
    return NULL;
}

/* One answer from the user into *out (malloc'd); TI_ERR_INVALID at end of input. */
static ti_status ask(struct ti_merge_opts *o, const char *prompt, char **out, const char *path,
                     const char *s, struct ti_err *err) {
    *out = NULL;
    TI_TRY(o->ask(o->ask_user, prompt, out, err));
    if (!*out)
        return ti_error(err, TI_ERR_INVALID,
                        "'%s': no replacement was given for placeholder '%s' (end of input)", path,
                        s);
    return TI_OK;
}

ti_status ti_merge_add(struct ti_merge *m, const struct ti_embedding *e, const char *path,
                       struct ti_merge_opts *o, struct ti_err *err) {
    if (!path || !o->tok)
        return ti_error(err, TI_ERR_INVALID, "ti_merge_add: no path or tokenizer");
    int n = e->n_terms;
    char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    int32_t *ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    char *computed = calloc((size_t)(n ? n : 1), 1);
    ti_status st = TI_OK;
    if (!names || !ids || !computed) {
        st = ti_error(err, TI_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* every rename aimed at this file must name one of its placeholders */
    for (int r = 0; r < o->n_renames; r++) {
        struct ti_merge_rename *rn = &o->renames[r];
        if (strcmp(rn->file, path)) continue;
        int hit = 0;
        for (int i = 0; i < n; i++)
            hit |= !strcmp(e->terms[i].placeholder, rn->old_name);
        if (!hit) {
            char list[512] = "";
            for (int i = 0; i < n; i++) {
                size_t len = strlen(list);
                snprintf(list + len, sizeof list - len, "%s'%s'", i ? ", " : "",
                         e->terms[i].placeholder);
            }
            st = ti_error(err, TI_ERR_INVALID,
                          "--rename %s:%s=%s: '%s' has no placeholder '%s' (it holds %s)", rn->file,
                          rn->old_name, rn->new_name, path, rn->old_name, list);
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        const struct ti_embedding_term *t = &e->terms[i];
        /* 2. one width for every term */
        int dim0 = m->emb.n_terms ? m->emb.terms[0].dim : i ? e->terms[0].dim : t->dim;
        if (t->dim != dim0) {
            const char *other = m->emb.n_terms ? m->term_src[0] : path;
            st = ti_error(err, TI_ERR_SHAPE,
                          "'%s' holds vectors of width %d (%s) for '%s', but '%s' holds width %d "
                          "(%s): embeddings of different models cannot be merged",
                          path, t->dim, ti_embedding_width_name(t->dim), t->placeholder, other,
                          dim0, ti_embedding_width_name(dim0));
            goto done;
        }
        /* 1. the user's rename: each applies to one occurrence of its file, the first not yet
         * renamed, so a file given twice (the peer asks on the terminal) can be merged with
         * itself: --rename a.pt:*=@ renames the first copy and the second keeps '*' */
        const struct ti_merge_rename *rn = NULL;
        for (int r = 0; r < o->n_renames && !rn; r++)
            if (!o->renames[r].used && !strcmp(o->renames[r].file, path) &&
                !strcmp(o->renames[r].old_name, t->placeholder)) {
                rn = &o->renames[r];
                o->renames[r].used = 1;
            }
        const char *s = rn ? rn->new_name : t->placeholder;
        char *answer = NULL;
        for (int round = 0;; round++) {
            /* 3. one token for this tokenizer */
            struct ti_err terr = {0};
            int32_t id;
            /* the peer copies a new string's stored token as it is; a renamed string, an
             * answer, and a term stored without one (diffusers, kohya) get `tok`'s */
            int stored = !rn && round == 0 && t->token >= 0 && t->token <= INT32_MAX;
            ti_status ts = stored ? (id = (int32_t)t->token, TI_OK)
                                  : ti_tokenizer_single_token(&id, o->tok, s, &terr);
            const char *user = taken_by(m, (const char *const *)names, i, path, s);
            const char *as = NULL; /* the other spelling of the same token */
            if (ts == TI_OK && !user) user = token_taken_by(m, names, ids, i, path, id, &as);
            char same[300] = "";
            if (as) snprintf(same, sizeof same, " (as '%.200s': the same token)", as);
            if (ts == TI_OK && !user) {
                names[i] = answer ? answer : NULL;
                if (!answer && !(names[i] = malloc(strlen(s) + 1))) {
                    st = ti_error(err, TI_ERR_NOMEM, "out of memory");
                    goto done;
                }
                if (!answer) memcpy(names[i], s, strlen(s) + 1);
                ids[i] = id;
                computed[i] = !stored;
                break;
            }
            if (ts == TI_ERR_NOMEM) {
                free(answer);
                st = ti_error(err, ts, "%s", terr.msg);
                goto done;
            }
            if (rn) {
                st = ts != TI_OK
                         ? ti_error(err, TI_ERR_INVALID, "--rename %s:%s=%s: %s", rn->file,
                                    rn->old_name, rn->new_name, terr.msg)
                         : ti_error(err, TI_ERR_INVALID,
                                    "--rename %s:%s=%s: placeholder '%s' is already used by "
                                    "'%s'%s; choose another name",
                                    rn->file, rn->old_name, rn->new_name, rn->new_name, user, same);
                goto done;
            }
            if (!o->ask) {
                free(answer);
                if (ts != TI_OK)
                    st = ti_error(err, TI_ERR_INVALID,
                                  "'%s': %s; give it another name with --rename %s:%s=NEW%s", path,
                                  terr.msg, path, t->placeholder, width_hint(t->dim, o->tok));
                else
                    st = ti_error(err, TI_ERR_INVALID,
                                  "placeholder '%s' of '%s' is already used by '%s'%s; rename one "
                                  "of them with --rename %s:%s=NEW (ti-merge asks only when "
                                  "standard input is a terminal)",
                                  t->placeholder, path, user, same, path, t->placeholder);
                goto done;
            }
            /* the peer's prompts; ours for a name merged already (the peer overwrites it) */
            char prompt[1024];
            if (round == 0 && ts == TI_OK && !strcmp(s, t->placeholder))
                snprintf(prompt, sizeof prompt,
                         "Placeholder string %s was already used. Please enter a replacement "
                         "string: ",
                         s);
            else if (ts != TI_OK)
                snprintf(prompt, sizeof prompt,
                         "Placeholder string '%s' maps to more than a single token. Please enter "
                         "another string: ",
                         s);
            else
                snprintf(prompt, sizeof prompt,
                         "Placeholder string '%s' is already used by %s%s. Please enter another "
                         "string: ",
                         s, user, same);
            free(answer);
            if ((st = ask(o, prompt, &answer, path, t->placeholder, err)) != TI_OK) goto done;
            s = answer;
        }
    }
    /* all accepted: append */
    for (int i = 0; i < n; i++) {
        const struct ti_embedding_term *t = &e->terms[i];
        char **src = realloc(m->term_src, (size_t)(m->emb.n_terms + 1) * sizeof *src);
        if (!src) {
            st = ti_error(err, TI_ERR_NOMEM, "out of memory");
            goto done;
        }
        m->term_src = src;
        char *p = malloc(strlen(path) + 1);
        if (!p) {
            st = ti_error(err, TI_ERR_NOMEM, "out of memory");
            goto done;
        }
        memcpy(p, path, strlen(path) + 1);
        st =
            ti_embedding_add_term(&m->emb, names[i], ids[i], t->n_vectors, t->dim, t->vectors, err);
        if (st != TI_OK) {
            free(p);
            goto done;
        }
        m->term_src[m->emb.n_terms - 1] = p;
        m->computed_ids += computed[i];
    }
done:
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    free(ids);
    free(computed);
    return st;
}

ti_status ti_merge_finish(const struct ti_merge *m, const struct ti_merge_opts *o,
                          struct ti_err *err) {
    for (int r = 0; r < o->n_renames; r++)
        if (!o->renames[r].used)
            return ti_error(err, TI_ERR_INVALID,
                            "--rename %s:%s=%s was never applied (each --rename renames one "
                            "occurrence of its file, and '%s' is given fewer times than it has "
                            "renames of '%s')",
                            o->renames[r].file, o->renames[r].old_name, o->renames[r].new_name,
                            o->renames[r].file, o->renames[r].old_name);
    if (m->emb.n_terms == 0) return ti_error(err, TI_ERR_INVALID, "nothing to merge");
    return TI_OK;
}

void ti_merge_py_repr(char *buf, size_t n, const char *s) {
    int has_sq = strchr(s, '\'') != NULL, has_dq = strchr(s, '"') != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    size_t k = 0;
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (k + 1 < n) buf[k++] = (c);                                                             \
    } while (0)
    PUT(q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (c == '\\' || c == (unsigned char)q) {
            PUT('\\');
            PUT((char)c);
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c == '\r') {
            PUT('\\');
            PUT('r');
        } else if (c == '\t') {
            PUT('\\');
            PUT('t');
        } else if (c < 0x20 || c == 0x7f) {
            char hex[5];
            snprintf(hex, sizeof hex, "\\x%02x", c);
            for (int j = 0; j < 4; j++)
                PUT(hex[j]);
        } else {
            PUT((char)c); /* printable ASCII and UTF-8 as Python 3 prints them */
        }
    }
    PUT(q);
#undef PUT
    if (n) buf[k < n ? k : n - 1] = '\0';
}
