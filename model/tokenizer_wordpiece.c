/*
 * tokenizer_wordpiece.c - BERT WordPiece for LDM text2img-large (see tokenizer_wordpiece.h).
 *
 * Sections: loading vocab.txt; normalisation and pre-tokenisation (BertNormalizer,
 * BertPreTokenizer); WordPiece on one word; encode / decode / the single-token rule.
 */
#include "tokenizer_wordpiece.h"

#include <errno.h>  /* defines: errno */
#include <stdio.h>  /* defines: fopen, fread, fclose */
#include <stdlib.h> /* defines: malloc, realloc, free */
#include <string.h> /* defines: memcpy, strlen, strerror */

#include "unicode.h"

enum { SP_PAD, SP_UNK, SP_CLS, SP_SEP, SP_MASK, N_SPECIAL };
static const char *const special_names[N_SPECIAL] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

struct ti_wordpiece {
    struct ti_vocab vocab;
    int32_t special[N_SPECIAL]; /* ids of the special tokens */
};

/* ==== loading ================================================================================ */

ti_status ti_wordpiece_load(struct ti_wordpiece **out, const char *path, struct ti_err *err) {
    *out = NULL;
    ti_status st = TI_OK;
    char *buf = NULL;
    struct ti_wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp) return ti_error(err, TI_ERR_NOMEM, "wordpiece: cannot allocate");
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = ti_error(err, TI_ERR_IO, "wordpiece: cannot open vocab file %s: %s", path,
                      strerror(errno));
        goto fail;
    }
    size_t cap = 1 << 18, n = 0;
    buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = p;
        cap *= 2;
    }
    int read_err = ferror(f);
    fclose(f);
    if (!buf) {
        st = ti_error(err, TI_ERR_NOMEM, "wordpiece: cannot allocate %zu bytes", cap);
        goto fail;
    }
    if (read_err) {
        st = ti_error(err, TI_ERR_IO, "wordpiece: cannot read vocab file %s", path);
        goto fail;
    }
    /* Python readlines() in text mode: universal newlines (\n, \r\n, \r), "\n" stripped */
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && buf[e] != '\n' && buf[e] != '\r')
            e++;
        TI_TRY_GOTO(st, ti_vocab_add(&wp->vocab, buf + i, e - i, err));
        if (e < n && buf[e] == '\r' && e + 1 < n && buf[e + 1] == '\n') e++;
        i = e + 1;
    }
    for (int k = 0; k < N_SPECIAL; k++) {
        wp->special[k] = ti_vocab_find(&wp->vocab, special_names[k], strlen(special_names[k]));
        if (wp->special[k] < 0) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "wordpiece: vocab file %s (%d lines) has no %s line; expected a BERT "
                          "vocab.txt such as bert-base-uncased's",
                          path, (int)wp->vocab.n_ids, special_names[k]);
            goto fail;
        }
    }
    free(buf);
    *out = wp;
    return TI_OK;
fail:
    free(buf);
    ti_wordpiece_free(&wp);
    return st;
}

void ti_wordpiece_free(struct ti_wordpiece **wp) {
    if (!wp || !*wp) return;
    ti_vocab_free(&(*wp)->vocab);
    free(*wp);
    *wp = NULL;
}

void ti_wordpiece_specials(int32_t *cls, int32_t *sep, int32_t *pad,
                           const struct ti_wordpiece *wp) {
    *cls = wp->special[SP_CLS];
    *sep = wp->special[SP_SEP];
    *pad = wp->special[SP_PAD];
}

/* ==== growable lists ========================================================================= */

struct work {
    struct ti_ustr norm, low;
    char *bytes; /* "##" + the word's UTF-8 */
    size_t bytes_cap;
};

/* ==== WordPiece on one word ================================================================== */

/* Greedy longest-match-first (tokenizers-rs WordPiece::tokenize): at each position the longest
 * vocabulary entry ("##"-prefixed after the first piece); a position with no match turns the
 * whole word into one [UNK]. */
static ti_status wordpiece_word(struct ti_idlist *out, const struct ti_wordpiece *wp,
                                struct work *w, const uint32_t *cp, size_t n, struct ti_err *err) {
    if (n > TI_WORDPIECE_MAX_CHARS) return ti_idlist_push(out, wp->special[SP_UNK], err);
    size_t off[TI_WORDPIECE_MAX_CHARS + 1];
    size_t need = 2 + n * 4;
    if (need > w->bytes_cap) {
        char *p = realloc(w->bytes, need);
        if (!p) return ti_error(err, TI_ERR_NOMEM, "wordpiece: cannot allocate");
        w->bytes = p;
        w->bytes_cap = need;
    }
    /* the word's UTF-8 starts at b = bytes + 2; a continuation piece starting at b + off[s] is
     * looked up as b[off[s] - 2 ..] after writing "##" there: those two bytes belong to pieces
     * already emitted (or to the two spare bytes in front), so nothing still needed is lost */
    char *b = w->bytes + 2;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = m;
        m += (size_t)ti_utf8_encode(b + m, cp[i]);
    }
    off[n] = m;
    size_t mark = out->n;
    for (size_t s = 0; s < n;) {
        int32_t found = -1;
        size_t e = n;
        if (s > 0) memcpy(b + off[s] - 2, "##", 2);
        for (; e > s; e--) {
            const char *str = s > 0 ? b + off[s] - 2 : b;
            size_t len = off[e] - off[s] + (s > 0 ? 2 : 0);
            found = ti_vocab_find(&wp->vocab, str, len);
            if (found >= 0) break;
        }
        if (found < 0) {
            out->n = mark;
            return ti_idlist_push(out, wp->special[SP_UNK], err);
        }
        TI_TRY(ti_idlist_push(out, found, err));
        s = e;
    }
    return TI_OK;
}

/* ==== normalisation and pre-tokenisation ===================================================== */

/* BertNormalizer (clean_text, handle_chinese_chars, strip_accents via NFD + drop Mn, lowercase)
 * then BertPreTokenizer and WordPiece, for one piece of text between special tokens. */
static ti_status encode_piece(struct ti_idlist *out, const struct ti_wordpiece *wp, struct work *w,
                              const uint32_t *cp, size_t n, struct ti_err *err) {
    struct ti_ustr *norm = &w->norm, *low = &w->low;
    norm->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t f = ti_uprop_flags(cp[i]);
        if (f & TI_UP_BERT_KEEP) {
            TI_TRY(ti_ustr_push(norm, cp[i], err));
            continue;
        }
        if (f & (TI_UP_BERT_STRIP | TI_UP_BERT_DROP)) continue;
        if (f & TI_UP_BERT_SPACE) {
            TI_TRY(ti_ustr_push(norm, ' ', err));
            continue;
        }
        uint32_t d[4];
        int k = ti_unicode_decompose(d, cp[i]);
        if (f & TI_UP_BERT_CJK) TI_TRY(ti_ustr_push(norm, ' ', err));
        TI_TRY(ti_ustr_append(norm, d, (size_t)k, err));
        if (f & TI_UP_BERT_CJK) TI_TRY(ti_ustr_push(norm, ' ', err));
    }
    /* canonical ordering of the NFD; code points the Rust tables do not know are starters */
    ti_unicode_reorder(norm->cp, norm->n, TI_UP_BERT_KEEP);
    low->n = 0;
    for (size_t i = 0; i < norm->n; i++) {
        uint32_t c = norm->cp[i], f = ti_uprop_flags(c);
        if (f & TI_UP_BERT_KEEP) {
            TI_TRY(ti_ustr_push(low, c, err));
            continue;
        }
        if (f & TI_UP_BERT_MN) continue; /* strip accents */
        uint32_t to[4];
        int k = ti_unicode_lower_char(to, c);
        TI_TRY(ti_ustr_append(low, to, (size_t)k, err));
    }
    /* BertPreTokenizer: whitespace separates words, each punctuation character is a word */
    const uint32_t *t = low->cp;
    size_t tn = low->n;
    for (size_t i = 0; i < tn;) {
        uint32_t f = ti_uprop_flags(t[i]);
        if (t[i] == ' ' || (f & TI_UP_BERT_SPACE)) {
            i++;
            continue;
        }
        if (f & TI_UP_BERT_PUNCT) {
            TI_TRY(wordpiece_word(out, wp, w, t + i, 1, err));
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < tn && t[j] != ' ' &&
               !(ti_uprop_flags(t[j]) & (TI_UP_BERT_SPACE | TI_UP_BERT_PUNCT)))
            j++;
        TI_TRY(wordpiece_word(out, wp, w, t + i, j - i, err));
        i = j;
    }
    return TI_OK;
}

ti_status ti_wordpiece_tokenize(int32_t **ids, size_t *n, const struct ti_wordpiece *wp,
                                const char *text, size_t len, struct ti_err *err) {
    *ids = NULL;
    *n = 0;
    struct ti_ustr in = {0};
    struct work w = {0};
    struct ti_idlist out = {0};
    ti_status st = TI_OK;
    TI_TRY_GOTO(st, ti_ustr_from_utf8(&in, text, len, err));
    /* step 1: the special tokens are matched on the raw text (not normalised) */
    size_t start = 0;
    for (size_t i = 0; i <= in.n;) {
        int special = -1;
        size_t sl = 0;
        if (i < in.n && in.cp[i] == '[')
            for (int k = 0; k < N_SPECIAL && special < 0; k++) {
                size_t L = strlen(special_names[k]), j = 0;
                while (j < L && i + j < in.n &&
                       in.cp[i + j] == (uint32_t)(unsigned char)special_names[k][j])
                    j++;
                if (j == L) {
                    special = k;
                    sl = L;
                }
            }
        if (special < 0 && i < in.n) {
            i++;
            continue;
        }
        if (i > start) TI_TRY_GOTO(st, encode_piece(&out, wp, &w, in.cp + start, i - start, err));
        if (special < 0) break;
        TI_TRY_GOTO(st, ti_idlist_push(&out, wp->special[special], err));
        i += sl;
        start = i;
    }
    *ids = out.v;
    *n = out.n;
    out.v = NULL;
fail:
    free(out.v);
    ti_ustr_free(&in);
    ti_ustr_free(&w.norm);
    ti_ustr_free(&w.low);
    free(w.bytes);
    return st;
}

ti_status ti_wordpiece_encode(struct ti_token_ids *out, const struct ti_wordpiece *wp,
                              const char *text, size_t len, struct ti_err *err) {
    int32_t *ids;
    size_t n;
    TI_TRY(ti_wordpiece_tokenize(&ids, &n, wp, text, len, err));
    ti_token_ids_layout(out, ids, n, wp->special[SP_CLS], wp->special[SP_SEP], wp->special[SP_PAD]);
    free(ids);
    return TI_OK;
}

/* ==== decode ================================================================================= */

static int is_special(const struct ti_wordpiece *wp, int32_t id) {
    for (int k = 0; k < N_SPECIAL; k++)
        if (wp->special[k] == id) return 1;
    return 0;
}

/* tokenizers-rs decoders::wordpiece::cleanup, applied to each decoded token. */
static void cleanup_token(char *s, size_t *len) {
    static const char *const from[] = {" .",  " ?",      " !",  " ,",   " ' ", " n't",
                                       " 'm", " do not", " 's", " 've", " 're"};
    static const char *const to[] = {".",  "?",      "!",  ",",   "'",  "n't",
                                     "'m", " don't", "'s", "'ve", "'re"};
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]);
        if (fl < tl) continue; /* never: every replacement is shorter or equal */
        size_t o = 0;
        for (size_t i = 0; i < *len;) {
            if (i + fl <= *len && memcmp(s + i, from[r], fl) == 0) {
                memcpy(s + o, to[r], tl);
                o += tl;
                i += fl;
            } else {
                s[o++] = s[i++];
            }
        }
        *len = o;
    }
}

ti_status ti_wordpiece_decode(char **out, const struct ti_wordpiece *wp, const int32_t *ids,
                              size_t n, struct ti_err *err) {
    *out = NULL;
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    char *tok = NULL;
    size_t tok_cap = 0;
    ti_status st = TI_OK;
    if (!buf) return ti_error(err, TI_ERR_NOMEM, "wordpiece: decode: cannot allocate");
    size_t k = 0; /* index among the decoded (non-special) tokens */
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= wp->vocab.n_ids) {
            st = ti_error(err, TI_ERR_INVALID,
                          "wordpiece: decode: id %d at position %zu is outside 0..%d", (int)ids[i],
                          i, (int)wp->vocab.n_ids - 1);
            goto fail;
        }
        if (is_special(wp, ids[i])) continue;
        size_t tl;
        const char *t = ti_vocab_token(&wp->vocab, ids[i], &tl);
        if (!tok || tl + 2 > tok_cap) {
            tok_cap = tl + 64;
            char *p = realloc(tok, tok_cap);
            if (!p) {
                st = ti_error(err, TI_ERR_NOMEM, "wordpiece: decode: cannot allocate");
                goto fail;
            }
            tok = p;
        }
        size_t m = 0;
        if (k > 0) {
            if (tl >= 2 && t[0] == '#' && t[1] == '#') {
                t += 2;
                tl -= 2;
            } else {
                tok[m++] = ' ';
            }
        }
        memcpy(tok + m, t, tl);
        m += tl;
        cleanup_token(tok, &m);
        if (len + m + 1 > cap) {
            while (len + m + 1 > cap)
                cap *= 2;
            char *p = realloc(buf, cap);
            if (!p) {
                st = ti_error(err, TI_ERR_NOMEM, "wordpiece: decode: cannot allocate");
                goto fail;
            }
            buf = p;
        }
        memcpy(buf + len, tok, m);
        len += m;
        k++;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
fail:
    free(buf);
    free(tok);
    return st;
}

/* ==== the single-token rule ================================================================== */

ti_status ti_wordpiece_single_token(int32_t *id, const struct ti_wordpiece *wp, const char *word,
                                    struct ti_err *err) {
    *id = -1;
    struct ti_token_ids t;
    TI_TRY(ti_wordpiece_encode(&t, wp, word, strlen(word), err));
    int count = 0;
    for (int i = 0; i < TI_TOKENS_MAX; i++)
        count += t.ids[i] != 0;
    char list[256];
    ti_ids_format(list, sizeof list, t.ids + 1, (size_t)t.n - 2, 16);
    if (count != 3)
        return ti_error(err, TI_ERR_INVALID,
                        "single-token rule: \"%s\" is not a single token for the LDM (BERT "
                        "WordPiece) tokenizer: it gives %zu token%s (ids: %s), and the reference "
                        "trainer accepts a string only when exactly one id besides [CLS] and "
                        "[SEP] is non-zero (0 is [PAD]); pick another string (ti-tokenize "
                        "--model ldm WORD shows how a word splits)",
                        word, t.n_text, t.n_text == 1 ? "" : "s", t.n > 2 ? list : "none");
    if (is_special(wp, t.ids[1])) {
        size_t tl;
        const char *name = ti_vocab_token(&wp->vocab, t.ids[1], &tl);
        return ti_error(err, TI_ERR_INVALID,
                        "single-token rule: \"%s\" maps to the special token %d (%.*s) for the "
                        "LDM (BERT WordPiece) tokenizer; training it would change a shared "
                        "special embedding; pick another string (ti-tokenize --model ldm WORD "
                        "shows how a word splits)",
                        word, (int)t.ids[1], (int)tl, name);
    }
    *id = t.ids[1];
    return TI_OK;
}
