/*
 * unicode.h - the Unicode text layer the tokenizers and the ftfy port share: UTF-8 in and out,
 * growable code-point strings, per-code-point properties, NFD / NFC, and Python's str.lower().
 *
 * What it is: exactly the pieces of Python's `unicodedata`, `str` and the `regex` module that
 * HF CLIPTokenizer (ftfy path) and BertTokenizerFast depend on, driven by tables generated from
 * those very implementations (model/unicode_tables.c, scripts/gen_unicode_tables.py; the
 * versions are in TI_UNICODE_TABLES_VERSION). What it is not: a general Unicode library (no
 * NFKC, no collation, no grapheme segmentation, no upper/title case).
 *
 *   struct ti_ustr s = {0};
 *   TI_TRY(ti_ustr_from_utf8(&s, text, strlen(text), err));   // invalid bytes -> U+FFFD
 *   struct ti_ustr n = {0};
 *   TI_TRY(ti_ustr_nfc(&n, s.cp, s.n, err));
 *   ...
 *   ti_ustr_free(&s); ti_ustr_free(&n);
 *
 * Invalid UTF-8 is decoded like Python's bytes.decode("utf-8", errors="replace"): each maximal
 * ill-formed subpart (an invalid lead byte, or a lead byte plus the continuation bytes that were
 * still valid before the sequence broke off) becomes one U+FFFD. Surrogate code points
 * (encoded ED A0..BF xx) are ill-formed too, so no ti_ustr made from UTF-8 ever holds one.
 */
#ifndef TI_UNICODE_H
#define TI_UNICODE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "unicode_tables.h" /* defines: struct ti_uprop, TI_UP_* and TI_FT_* bits, the tables */

#ifdef __cplusplus
extern "C" {
#endif

#define TI_UNICODE_REPLACEMENT 0xFFFDu

/* A growable code-point string. Zero-initialise; ti_ustr_free releases it. The functions that
 * write a ti_ustr output replace its contents (the buffer is reused). */
struct ti_ustr {
    uint32_t *cp;
    size_t n;   /* code points in use */
    size_t cap; /* allocated code points */
};

void ti_ustr_free(struct ti_ustr *s);
/* Makes room for at least `cap` code points. */
ti_status ti_ustr_reserve(struct ti_ustr *s, size_t cap, struct ti_err *err);
ti_status ti_ustr_push(struct ti_ustr *s, uint32_t cp, struct ti_err *err);
ti_status ti_ustr_append(struct ti_ustr *s, const uint32_t *cp, size_t n, struct ti_err *err);
/* Replaces s with a copy of cp[0..n). `cp` must not point into s. */
ti_status ti_ustr_assign(struct ti_ustr *s, const uint32_t *cp, size_t n, struct ti_err *err);
/* 1 when both hold the same code points. */
int ti_ustr_equal(const struct ti_ustr *a, const struct ti_ustr *b);

/* A growable list of token ids (both tokenizers build their output with it). */
struct ti_idlist {
    int32_t *v;
    size_t n, cap;
};
ti_status ti_idlist_push(struct ti_idlist *l, int32_t id, struct ti_err *err);

/* Binary search of a code-point map sorted by cp (the generated tables); NULL when absent. */
const struct ti_umap *ti_umap_find(const struct ti_umap *map, size_t n, uint32_t cp);

/* ---- UTF-8 --------------------------------------------------------------------------------- */
/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, nothing above U+10FFFF); encoded
 * surrogates (ED A0..BF xx) are accepted only when allow_surrogates (Python's 'surrogatepass',
 * which pickle strings may use). */
int ti_utf8_valid(const uint8_t *s, size_t n, int allow_surrogates);
/* Decodes the sequence at s[0..n) (n >= 1) as CPython does: the second byte of E0, ED, F0 and
 * F4 sequences has a narrowed range (no overlongs, no surrogates unless allow_surrogates,
 * nothing above U+10FFFF). Returns its length (1-4) with *cp set, or, when ill-formed, minus the
 * length of the maximal invalid prefix (the lead byte and the valid continuation bytes after it).
 */
int ti_utf8_decode_one(const uint8_t *s, size_t n, int allow_surrogates, uint32_t *cp);
/* Decodes len bytes (NULs included) into out, replacing ill-formed parts with U+FFFD (above). */
ti_status ti_ustr_from_utf8(struct ti_ustr *out, const char *s, size_t len, struct ti_err *err);
/* Encodes cp[0..n) as a NUL-terminated UTF-8 string in *out (malloc'ed, the caller frees it);
 * *len (may be NULL) gets the byte count without the NUL. */
ti_status ti_utf8_from_cps(char **out, size_t *len, const uint32_t *cp, size_t n,
                           struct ti_err *err);
/* Writes the UTF-8 form of one code point (<= 0x10FFFF) into out[0..4); returns its length. */
int ti_utf8_encode(char out[4], uint32_t cp);

/* ---- properties ---------------------------------------------------------------------------- */
static inline const struct ti_uprop *ti_uprop_get(uint32_t cp) {
    if (cp >= 0x110000u) cp = 0x10FFFFu; /* never happens for decoded text; keeps lookups safe */
    uint32_t blk = ti_uprop_stage1[cp / TI_UNICODE_BLOCK];
    return &ti_uprop_records[ti_uprop_stage2[blk * TI_UNICODE_BLOCK + cp % TI_UNICODE_BLOCK]];
}
static inline uint32_t ti_uprop_flags(uint32_t cp) {
    return ti_uprop_get(cp)->flags;
}
static inline uint32_t ti_uprop_ftfy(uint32_t cp) {
    return ti_uprop_get(cp)->ftfy;
}
static inline int ti_uprop_ccc(uint32_t cp) {
    return ti_uprop_get(cp)->ccc;
}

/* The lower-case ASCII letter that the `regex` module matches `cp` to under IGNORECASE
 * ('S' and U+017F LONG S -> 's', U+212A KELVIN SIGN -> 'k'), or 0 when cp is not a letter of
 * the ASCII alphabet in that sense. */
uint32_t ti_unicode_ci_ascii(uint32_t cp);

/* ---- case and normalisation ---------------------------------------------------------------- */
/* Python's full lower-case mapping of one code point, without context (no Final_Sigma):
 * writes 1..3 code points into to[] and returns the count. */
int ti_unicode_lower_char(uint32_t to[4], uint32_t cp);
/* Python's str.lower() of a whole string: the full mapping plus the Final_Sigma rule for
 * U+03A3 (σ/ς chosen from the Cased / Case_Ignorable context, as CPython does). */
ti_status ti_ustr_lower(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err);
/* Canonical decomposition of one code point (Hangul included); returns the count (1..4). */
int ti_unicode_decompose(uint32_t to[4], uint32_t cp);
/* Sorts each run of non-starters by canonical combining class (stable): the canonical
 * ordering step of NFD. Code points carrying any of the `starter_flags` property bits count
 * as starters (class 0) whatever the table says (BERT passes TI_UP_BERT_KEEP, 0 otherwise). */
void ti_unicode_reorder(uint32_t *cp, size_t n, uint32_t starter_flags);
/* unicodedata.normalize("NFD", s) and ("NFC", s). */
ti_status ti_ustr_nfd(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err);
ti_status ti_ustr_nfc(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err);

#ifdef __cplusplus
}
#endif
#endif /* TI_UNICODE_H */
