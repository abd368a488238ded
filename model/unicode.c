/*
 * unicode.c - UTF-8, code-point strings, NFD/NFC and Python's lower() (see unicode.h).
 *
 * Not here: the tables themselves (generated, unicode_tables.c), ftfy (text_fix.c), the
 * tokenizers' pre-tokenisation (tokenizer_bpe.c, tokenizer_wordpiece.c).
 */
#include "unicode.h"

#include <stdlib.h> /* defines: malloc, realloc, free, bsearch */
#include <string.h> /* defines: memcpy, memcmp */

/* ==== code-point strings ===================================================================== */

void ti_ustr_free(struct ti_ustr *s) {
    if (!s) return;
    free(s->cp);
    s->cp = NULL;
    s->n = s->cap = 0;
}

ti_status ti_ustr_reserve(struct ti_ustr *s, size_t cap, struct ti_err *err) {
    if (cap <= s->cap) return TI_OK;
    size_t want = s->cap ? s->cap : 16;
    while (want < cap) {
        if (want > ((size_t)-1) / 2 / sizeof(uint32_t))
            return ti_error(err, TI_ERR_NOMEM, "unicode: string of %zu code points is too long",
                            cap);
        want *= 2;
    }
    uint32_t *p = realloc(s->cp, want * sizeof(uint32_t));
    if (!p) return ti_error(err, TI_ERR_NOMEM, "unicode: cannot allocate %zu code points", want);
    s->cp = p;
    s->cap = want;
    return TI_OK;
}

ti_status ti_ustr_push(struct ti_ustr *s, uint32_t cp, struct ti_err *err) {
    if (s->n == s->cap) TI_TRY(ti_ustr_reserve(s, s->n + 1, err));
    s->cp[s->n++] = cp;
    return TI_OK;
}

ti_status ti_ustr_append(struct ti_ustr *s, const uint32_t *cp, size_t n, struct ti_err *err) {
    if (n == 0) return TI_OK;
    TI_TRY(ti_ustr_reserve(s, s->n + n, err));
    memcpy(s->cp + s->n, cp, n * sizeof(uint32_t));
    s->n += n;
    return TI_OK;
}

ti_status ti_ustr_assign(struct ti_ustr *s, const uint32_t *cp, size_t n, struct ti_err *err) {
    s->n = 0;
    return ti_ustr_append(s, cp, n, err);
}

int ti_ustr_equal(const struct ti_ustr *a, const struct ti_ustr *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->cp, b->cp, a->n * sizeof(uint32_t)) == 0);
}

/* ==== UTF-8 ================================================================================== */

int ti_utf8_decode_one(const uint8_t *s, size_t n, int allow_surrogates, uint32_t *cp) {
    unsigned b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        v = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        v = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED && !allow_surrogates) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        v = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else { /* continuation byte, C0, C1 or F5..FF as a lead byte */
        return -1;
    }
    int got = 0;
    while (got < need && (size_t)got + 1 < n) {
        unsigned c = s[got + 1];
        unsigned l = got == 0 ? lo : 0x80, h = got == 0 ? hi : 0xBF;
        if (c < l || c > h) break;
        v = (v << 6) | (c & 0x3F);
        got++;
    }
    if (got < need) return -(got + 1);
    *cp = v;
    return need + 1;
}

/* Decoding follows CPython's UTF-8 decoder (ti_utf8_decode_one): when a sequence breaks off, the
 * lead byte and the valid continuation bytes so far become one U+FFFD and decoding resumes at
 * the offending byte. */
ti_status ti_ustr_from_utf8(struct ti_ustr *out, const char *str, size_t len, struct ti_err *err) {
    const uint8_t *s = (const uint8_t *)str;
    out->n = 0;
    TI_TRY(ti_ustr_reserve(out, len + 1, err)); /* never more code points than bytes */
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int r = ti_utf8_decode_one(s + i, len - i, 0, &cp);
        out->cp[out->n++] = r > 0 ? cp : TI_UNICODE_REPLACEMENT;
        i += (size_t)(r > 0 ? r : -r);
    }
    return TI_OK;
}

int ti_utf8_encode(char out[4], uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

ti_status ti_utf8_from_cps(char **out, size_t *len, const uint32_t *cp, size_t n,
                           struct ti_err *err) {
    *out = NULL;
    if (n > ((size_t)-1 - 1) / 4)
        return ti_error(err, TI_ERR_NOMEM, "unicode: string of %zu code points is too long", n);
    char *buf = malloc(n * 4 + 1);
    if (!buf) return ti_error(err, TI_ERR_NOMEM, "unicode: cannot allocate %zu bytes", n * 4 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)ti_utf8_encode(buf + k, cp[i]);
    buf[k] = '\0';
    *out = buf;
    if (len) *len = k;
    return TI_OK;
}

ti_status ti_idlist_push(struct ti_idlist *l, int32_t id, struct ti_err *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *p = realloc(l->v, cap * sizeof(int32_t));
        if (!p) return ti_error(err, TI_ERR_NOMEM, "tokenizer: cannot allocate %zu ids", cap);
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = id;
    return TI_OK;
}

int ti_utf8_valid(const uint8_t *s, size_t n, int allow_surrogates) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int r = ti_utf8_decode_one(s + i, n - i, allow_surrogates, &cp);
        if (r <= 0) return 0;
        i += (size_t)r;
    }
    return 1;
}

/* ==== table look-ups ========================================================================= */

const struct ti_umap *ti_umap_find(const struct ti_umap *map, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (map[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && map[lo].cp == cp ? &map[lo] : NULL;
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

uint32_t ti_unicode_ci_ascii(uint32_t cp) {
    if (cp >= 'a' && cp <= 'z') return cp;
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    for (size_t i = 0; i < N_OF(ti_unicode_ci_fold); i++)
        if (ti_unicode_ci_fold[i].cp == cp) return ti_unicode_ci_fold[i].ascii;
    return 0;
}

int ti_unicode_lower_char(uint32_t to[4], uint32_t cp) {
    if (ti_uprop_flags(cp) & TI_UP_LOWER) {
        const struct ti_umap *m =
            ti_umap_find(ti_unicode_lower_map, N_OF(ti_unicode_lower_map), cp);
        if (m) {
            for (int i = 0; i < m->n; i++)
                to[i] = m->to[i];
            return m->n;
        }
    }
    to[0] = cp;
    return 1;
}

/* Final_Sigma (CPython handle_capital_sigma): U+03A3 lowers to ς when a cased letter precedes it
 * (skipping case-ignorables) and none follows it (skipping case-ignorables). */
static uint32_t sigma_lower(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    uint32_t f = 0;
    while (j > 0) {
        f = ti_uprop_flags(s[j - 1]);
        if (!(f & TI_UP_CASE_IGN)) break;
        j--;
    }
    int final = j > 0 && (f & TI_UP_CASED);
    if (final) {
        for (j = i + 1; j < n; j++) {
            f = ti_uprop_flags(s[j]);
            if (!(f & TI_UP_CASE_IGN)) break;
        }
        final = j == n || !(f & TI_UP_CASED);
    }
    return final ? 0x3C2u : 0x3C3u;
}

ti_status ti_ustr_lower(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err) {
    out->n = 0;
    TI_TRY(ti_ustr_reserve(out, n, err));
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0x3A3u) {
            TI_TRY(ti_ustr_push(out, sigma_lower(in, n, i), err));
            continue;
        }
        uint32_t to[4];
        int k = ti_unicode_lower_char(to, in[i]);
        TI_TRY(ti_ustr_append(out, to, (size_t)k, err));
    }
    return TI_OK;
}

/* ==== normalisation ========================================================================== */

/* Hangul syllables (Unicode 3.12, conjoining jamo behaviour). */
enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_LN = 19,
    HANGUL_VN = 21,
    HANGUL_TN = 28,
    HANGUL_NN = HANGUL_VN * HANGUL_TN,
    HANGUL_SN = HANGUL_LN * HANGUL_NN
};

int ti_unicode_decompose(uint32_t to[4], uint32_t cp) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SN) {
        uint32_t s = cp - HANGUL_S;
        to[0] = HANGUL_L + s / HANGUL_NN;
        to[1] = HANGUL_V + (s % HANGUL_NN) / HANGUL_TN;
        if (s % HANGUL_TN == 0) return 2;
        to[2] = HANGUL_T + s % HANGUL_TN;
        return 3;
    }
    if (ti_uprop_flags(cp) & TI_UP_DECOMP) {
        const struct ti_umap *m =
            ti_umap_find(ti_unicode_decomp_map, N_OF(ti_unicode_decomp_map), cp);
        if (m) {
            for (int i = 0; i < m->n; i++)
                to[i] = m->to[i];
            return m->n;
        }
    }
    to[0] = cp;
    return 1;
}

static int ccc_of(uint32_t cp, uint32_t starter_flags) {
    const struct ti_uprop *p = ti_uprop_get(cp);
    return (p->flags & starter_flags) ? 0 : p->ccc;
}

void ti_unicode_reorder(uint32_t *cp, size_t n, uint32_t starter_flags) {
    /* insertion sort inside each run of non-starters: runs are short, and it is stable */
    for (size_t i = 1; i < n; i++) {
        int c = ccc_of(cp[i], starter_flags);
        if (c == 0) continue;
        size_t j = i;
        uint32_t v = cp[i];
        while (j > 0) {
            int p = ccc_of(cp[j - 1], starter_flags);
            if (p == 0 || p <= c) break;
            cp[j] = cp[j - 1];
            j--;
        }
        cp[j] = v;
    }
}

ti_status ti_ustr_nfd(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err) {
    out->n = 0;
    TI_TRY(ti_ustr_reserve(out, n, err));
    for (size_t i = 0; i < n; i++) {
        uint32_t to[4];
        int k = ti_unicode_decompose(to, in[i]);
        TI_TRY(ti_ustr_append(out, to, (size_t)k, err));
    }
    ti_unicode_reorder(out->cp, out->n, 0);
    return TI_OK;
}

/* The primary composite of a + b, or 0 when there is none (or it is excluded from NFC). */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 &&
        b > HANGUL_T && b < HANGUL_T + HANGUL_TN)
        return a + (b - HANGUL_T);
    if (!(ti_uprop_flags(b) & TI_UP_COMP_SECOND)) return 0;
    uint64_t key = ((uint64_t)a << 21) | b;
    size_t lo = 0, hi = N_OF(ti_unicode_comp_map);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ti_unicode_comp_map[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < N_OF(ti_unicode_comp_map) && ti_unicode_comp_map[lo].key == key)
        return ti_unicode_comp_map[lo].cp;
    return 0;
}

ti_status ti_ustr_nfc(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err) {
    TI_TRY(ti_ustr_nfd(out, in, n, err));
    uint32_t *s = out->cp;
    size_t len = out->n, o = 0;
    size_t starter = (size_t)-1; /* output index of the last starter, -1: none yet */
    int last_ccc = 0;            /* class of the last code point written after the starter */
    for (size_t i = 0; i < len; i++) {
        uint32_t c = s[i];
        int cc = ti_uprop_ccc(c);
        if (starter != (size_t)-1) {
            /* c is blocked from the starter when something lies between them whose class is
             * 0 or >= cc (what lies between is in canonical order, so the last one decides) */
            int blocked = (o - 1 != starter) && (last_ccc == 0 || last_ccc >= cc);
            if (!blocked) {
                uint32_t comp = compose_pair(s[starter], c);
                if (comp) {
                    s[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) {
            starter = o;
            last_ccc = 0;
        } else {
            last_ccc = cc;
        }
        s[o++] = c;
    }
    out->n = o;
    return TI_OK;
}
