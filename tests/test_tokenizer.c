/*
 * test_tokenizer.c - the SD (CLIP BPE) and LDM (BERT WordPiece) tokenizers against the reference
 * tokenizers, and the layers under them.
 *
 *   tests/fixtures/tokenizer_prompts.jsonl    transformers' CLIPTokenizer (slow, ftfy) and
 *                                            BertTokenizerFast on 400+ prompts: 77 ids + decode
 *   tests/fixtures/tokenizer_testvectors.jsonl the reference's own test vectors (sd-arch.md §5/6)
 *   tests/fixtures/tokenizer_unicode_sweep.jsonl  all tokens of texts sweeping the code space
 *   tests/fixtures/ftfy_cases.jsonl           ftfy.fix_text and ftfy.badness.is_bad
 * plus the single-token rule (ti-peer.md §3.2), Unicode normalisation and UTF-8 edge cases,
 * vocabulary load errors, and ill-formed / very long inputs (no crash, sane output).
 * Run from the repository root (ctest does).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef TI_HAVE_ZLIB
#include <zlib.h>
#else
/* every case needs the gzip'd CLIP vocabulary: main only reports SKIP */
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

#include "test_common.h"
#include "text_fix.h"
#include "tokenizer.h"
#include "tokenizer_bpe.h"
#include "tokenizer_wordpiece.h"
#include "unicode.h"

#define CLIP_VOCAB "model/vocab/bpe_simple_vocab_16e6.txt.gz"
#define BERT_VOCAB "model/vocab/bert-base-uncased-vocab.txt"

static struct ti_bpe *g_bpe;
static struct ti_wordpiece *g_wp;

/* ==== a minimal JSON-lines reader (objects of strings, int arrays, booleans) ================= */

struct jstr {
    char *s; /* UTF-8, NUL-terminated, may contain NULs */
    size_t len;
};

static void skip_ws(const char **p) {
    while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
        (*p)++;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        *v = *v * 16 + (unsigned)d;
    }
    return 1;
}

/* Parses a JSON string at *p (at the opening quote); returns 0 on malformed input. */
static int parse_string(const char **p, struct jstr *out) {
    const char *s = *p;
    if (*s != '"') return 0;
    s++;
    size_t cap = 64, n = 0;
    char *b = malloc(cap);
    if (!b) return 0;
    while (*s && *s != '"') {
        if (n + 8 > cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                return 0;
            }
            b = nb;
        }
        if (*s != '\\') {
            b[n++] = *s++;
            continue;
        }
        s++;
        char c = *s++;
        unsigned cp;
        switch (c) {
        case 'n': b[n++] = '\n'; break;
        case 't': b[n++] = '\t'; break;
        case 'r': b[n++] = '\r'; break;
        case 'b': b[n++] = '\b'; break;
        case 'f': b[n++] = '\f'; break;
        case '/': b[n++] = '/'; break;
        case '\\': b[n++] = '\\'; break;
        case '"': b[n++] = '"'; break;
        case 'u':
            if (!hex4(s, &cp)) goto bad;
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s[0] != '\\' || s[1] != 'u' || !hex4(s + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += (size_t)ti_utf8_encode(b + n, cp);
            break;
        default: goto bad;
        }
    }
    if (*s != '"') goto bad;
    b[n] = '\0';
    out->s = b;
    out->len = n;
    *p = s + 1;
    return 1;
bad:
    free(b);
    return 0;
}

/* Finds "key": in a one-line object and leaves *p at its value. */
static int find_key(const char *line, const char *key, const char **p) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(line, pat);
    if (!k) return 0;
    *p = k + strlen(pat);
    skip_ws(p);
    return 1;
}

static int get_string(const char *line, const char *key, struct jstr *out) {
    const char *p;
    return find_key(line, key, &p) && parse_string(&p, out);
}

static int get_ints(const char *line, const char *key, int32_t *out, int max) {
    const char *p;
    if (!find_key(line, key, &p) || *p != '[') return -1;
    p++;
    int n = 0;
    for (;;) {
        skip_ws(&p);
        if (*p == ']') return n;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || n >= max) return -1;
        out[n++] = (int32_t)v;
        p = end;
        skip_ws(&p);
        if (*p == ',') p++;
    }
}

static int get_bool(const char *line, const char *key, int *out) {
    const char *p;
    if (!find_key(line, key, &p)) return 0;
    if (strncmp(p, "true", 4) == 0)
        *out = 1;
    else if (strncmp(p, "false", 5) == 0)
        *out = 0;
    else
        return 0;
    return 1;
}

/* The prompt bytes: "hex" when present (ill-formed UTF-8), else "prompt". */
static int get_prompt(const char *line, struct jstr *out) {
    struct jstr hex;
    if (!get_string(line, "hex", &hex)) return get_string(line, "prompt", out);
    out->len = hex.len / 2;
    out->s = malloc(out->len + 1);
    for (size_t i = 0; i < out->len; i++) {
        unsigned v;
        char h[5] = {'0', '0', hex.s[2 * i], hex.s[2 * i + 1], 0};
        hex4(h, &v);
        out->s[i] = (char)v;
    }
    out->s[out->len] = '\0';
    free(hex.s);
    return 1;
}

/* Prints a prompt for a failure message (escaped, shortened). */
static void show(const char *s, size_t len) {
    fputc('"', stderr);
    for (size_t i = 0; i < len && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fprintf(stderr, "%s\"", len > 120 ? "..." : "");
}

static int ids_equal(const int32_t *got, const int32_t *want, int n, int *first) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            *first = i;
            return 0;
        }
    return 1;
}

/* ==== fixtures ============================================================================== */

TEST(prompts_fixture) {
    FILE *f = fopen("tests/fixtures/tokenizer_prompts.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad_sd = 0, bad_ldm = 0, bad_dec = 0;
    while (getline(&line, &cap, f) > 0) {
        struct jstr prompt, sd_dec, ldm_dec;
        int32_t want_sd[TI_TOKENS_MAX], want_ldm[TI_TOKENS_MAX];
        int ok = get_prompt(line, &prompt);
        CHECK(ok);
        if (!ok) continue;
        CHECK(get_ints(line, "sd", want_sd, TI_TOKENS_MAX) == TI_TOKENS_MAX);
        CHECK(get_ints(line, "ldm", want_ldm, TI_TOKENS_MAX) == TI_TOKENS_MAX);
        CHECK(get_string(line, "sd_decode", &sd_dec));
        CHECK(get_string(line, "ldm_decode", &ldm_dec));
        n++;

        struct ti_err err = {0};
        struct ti_token_ids got;
        int first;
        CHECK_OK(ti_bpe_encode(&got, g_bpe, prompt.s, prompt.len, &err), &err);
        if (!ids_equal(got.ids, want_sd, TI_TOKENS_MAX, &first)) {
            bad_sd++;
            fprintf(stderr, "sd mismatch at [%d] (got %d want %d) for ", first, (int)got.ids[first],
                    (int)want_sd[first]);
            show(prompt.s, prompt.len);
            fprintf(stderr, "\n");
        }
        char *dec = NULL;
        CHECK_OK(ti_bpe_decode(&dec, g_bpe, want_sd, TI_TOKENS_MAX, &err), &err);
        if (dec && strcmp(dec, sd_dec.s) != 0) {
            bad_dec++;
            fprintf(stderr, "sd decode mismatch: got ");
            show(dec, strlen(dec));
            fprintf(stderr, " want ");
            show(sd_dec.s, sd_dec.len);
            fprintf(stderr, "\n");
        }
        free(dec);

        CHECK_OK(ti_wordpiece_encode(&got, g_wp, prompt.s, prompt.len, &err), &err);
        if (!ids_equal(got.ids, want_ldm, TI_TOKENS_MAX, &first)) {
            bad_ldm++;
            fprintf(stderr, "ldm mismatch at [%d] (got %d want %d) for ", first,
                    (int)got.ids[first], (int)want_ldm[first]);
            show(prompt.s, prompt.len);
            fprintf(stderr, "\n");
        }
        dec = NULL;
        CHECK_OK(ti_wordpiece_decode(&dec, g_wp, want_ldm, TI_TOKENS_MAX, &err), &err);
        if (dec && strcmp(dec, ldm_dec.s) != 0) {
            bad_dec++;
            fprintf(stderr, "ldm decode mismatch: got ");
            show(dec, strlen(dec));
            fprintf(stderr, " want ");
            show(ldm_dec.s, ldm_dec.len);
            fprintf(stderr, "\n");
        }
        free(dec);
        free(prompt.s);
        free(sd_dec.s);
        free(ldm_dec.s);
    }
    free(line);
    fclose(f);
    printf("  %d prompts: %d sd mismatches, %d ldm mismatches, %d decode mismatches\n", n, bad_sd,
           bad_ldm, bad_dec);
    CHECK(n == 441); /* every line of the fixture (tests/fixtures/README.md), not a prefix */
    CHECK(bad_sd == 0);
    CHECK(bad_ldm == 0);
    CHECK(bad_dec == 0);
}

TEST(reference_testvectors) {
    FILE *f = fopen("tests/fixtures/tokenizer_testvectors.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        struct jstr prompt;
        int32_t want_sd[TI_TOKENS_MAX], want_ldm[TI_TOKENS_MAX];
        CHECK(get_string(line, "prompt", &prompt));
        CHECK(get_ints(line, "sd_clip_ids_77", want_sd, TI_TOKENS_MAX) == TI_TOKENS_MAX);
        CHECK(get_ints(line, "ldm_bert_ids_77", want_ldm, TI_TOKENS_MAX) == TI_TOKENS_MAX);
        struct ti_err err = {0};
        struct ti_token_ids got;
        int first;
        CHECK_OK(ti_bpe_encode(&got, g_bpe, prompt.s, prompt.len, &err), &err);
        CHECK(ids_equal(got.ids, want_sd, TI_TOKENS_MAX, &first));
        CHECK_OK(ti_wordpiece_encode(&got, g_wp, prompt.s, prompt.len, &err), &err);
        CHECK(ids_equal(got.ids, want_ldm, TI_TOKENS_MAX, &first));
        free(prompt.s);
        n++;
    }
    free(line);
    fclose(f);
    CHECK(n == 7);
}

/* Full token lists (no truncation) for texts sweeping the code space. */
TEST(unicode_sweep_fixture) {
    FILE *f = fopen("tests/fixtures/tokenizer_unicode_sweep.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    enum { MAXIDS = 1 << 16 };
    int32_t *want = malloc(MAXIDS * sizeof(int32_t));
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad = 0;
    while (want && getline(&line, &cap, f) > 0) {
        struct jstr text;
        CHECK(get_string(line, "text", &text));
        for (int model = 0; model < 2; model++) {
            int nw = get_ints(line, model ? "ldm" : "sd", want, MAXIDS);
            CHECK(nw >= 0);
            int32_t *got = NULL;
            size_t ng = 0;
            struct ti_err err = {0};
            if (model)
                CHECK_OK(ti_wordpiece_tokenize(&got, &ng, g_wp, text.s, text.len, &err), &err);
            else
                CHECK_OK(ti_bpe_tokenize(&got, &ng, g_bpe, text.s, text.len, &err), &err);
            int first = -1;
            if (ng != (size_t)nw || !ids_equal(got, want, nw, &first)) {
                bad++;
                size_t k = first >= 0 ? (size_t)first : (ng < (size_t)nw ? ng : (size_t)nw);
                fprintf(stderr,
                        "%s sweep line %d: %zu ids, want %d; first difference at [%zu] "
                        "(got %d want %d)\n",
                        model ? "ldm" : "sd", n + 1, ng, nw, k, k < ng ? (int)got[k] : -1,
                        k < (size_t)nw ? (int)want[k] : -1);
            }
            free(got);
        }
        free(text.s);
        n++;
    }
    free(want);
    free(line);
    fclose(f);
    printf("  %d sweep texts: %d mismatches\n", n, bad);
    CHECK(n == 152); /* every line of the fixture */
    CHECK(bad == 0);
}

TEST(ftfy_fixture) {
    FILE *f = fopen("tests/fixtures/ftfy_cases.jsonl", "r");
    CHECK(f != NULL);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, bad_fix = 0, bad_flag = 0;
    struct ti_ustr in = {0}, want = {0}, got = {0};
    while (getline(&line, &cap, f) > 0) {
        struct jstr text, fixed;
        int bad = -1;
        CHECK(get_string(line, "text", &text));
        CHECK(get_string(line, "fixed", &fixed));
        CHECK(get_bool(line, "bad", &bad));
        struct ti_err err = {0};
        CHECK_OK(ti_ustr_from_utf8(&in, text.s, text.len, &err), &err);
        CHECK_OK(ti_ustr_from_utf8(&want, fixed.s, fixed.len, &err), &err);
        CHECK_OK(ti_text_fix(&got, in.cp, in.n, &err), &err);
        if (!ti_ustr_equal(&got, &want)) {
            bad_fix++;
            char *g = NULL;
            ti_utf8_from_cps(&g, NULL, got.cp, got.n, &err);
            fprintf(stderr, "fix_text mismatch for ");
            show(text.s, text.len);
            fprintf(stderr, ": got ");
            if (g) show(g, strlen(g));
            fprintf(stderr, " want ");
            show(fixed.s, fixed.len);
            fprintf(stderr, "\n");
            free(g);
        }
        if (ti_text_is_mojibake(in.cp, in.n) != bad) {
            bad_flag++;
            fprintf(stderr, "is_bad mismatch (want %d) for ", bad);
            show(text.s, text.len);
            fprintf(stderr, "\n");
        }
        free(text.s);
        free(fixed.s);
        n++;
    }
    ti_ustr_free(&in);
    ti_ustr_free(&want);
    ti_ustr_free(&got);
    free(line);
    fclose(f);
    printf("  %d ftfy cases: %d fix_text mismatches, %d is_bad mismatches\n", n, bad_fix, bad_flag);
    CHECK(n == 3524); /* every line of the fixture */
    CHECK(bad_fix == 0);
    CHECK(bad_flag == 0);
}

/* ==== the single-token rule (ti-peer.md §3.2) ============================================== */

TEST(single_token_rule_clip) {
    static const struct {
        const char *word;
        int32_t id;
    } ok[] = {{"*", 265},    {"@", 287},     {"sculpture", 8757}, {"painting", 3086}, {"toy", 5988},
              {"cat", 2368}, {"sks", 48136}, {"Cat", 2368},       {" cat ", 2368}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct ti_err err = {0};
        int32_t id = -1;
        CHECK_OK(ti_bpe_single_token(&id, g_bpe, ok[i].word, &err), &err);
        CHECK(id == ok[i].id);
    }
    struct ti_err err = {0};
    int32_t id = 7;
    CHECK(ti_bpe_single_token(&id, g_bpe, "opossum", &err) == TI_ERR_INVALID);
    CHECK(id == -1);
    CHECK(strstr(err.msg, "\"opossum\"") != NULL);
    CHECK(strstr(err.msg, "78 38575") != NULL);
    CHECK(strstr(err.msg, "ti-tokenize") != NULL);
    ti_err_clear(&err);
    CHECK(ti_bpe_single_token(&id, g_bpe, "leavanny", &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "3198 5291") != NULL);
    ti_err_clear(&err);
    CHECK(ti_bpe_single_token(&id, g_bpe, "\xd7\x90", &err) == TI_ERR_INVALID); /* Hebrew alef */
    CHECK(strstr(err.msg, "147 494") != NULL);
    ti_err_clear(&err);
    CHECK(ti_bpe_single_token(&id, g_bpe, "", &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "0 tokens") != NULL);
    ti_err_clear(&err);
    CHECK(ti_bpe_single_token(&id, g_bpe, "<|endoftext|>", &err) == TI_ERR_INVALID);
    ti_err_clear(&err);
    /* passes the reference's count (2 ids differ from 49407) but is a special token */
    CHECK(ti_bpe_single_token(&id, g_bpe, "<|startoftext|>", &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "special") != NULL);
    ti_err_clear(&err);
    CHECK(ti_bpe_single_token(&id, g_bpe, "a photo", &err) == TI_ERR_INVALID);
}

TEST(single_token_rule_bert) {
    static const struct {
        const char *word;
        int32_t id;
    } ok[] = {{"*", 1008}, {"cat", 4937}, {"sculpture", 6743}, {"painting", 4169}, {"toy", 9121}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct ti_err err = {0};
        int32_t id = -1;
        CHECK_OK(ti_wordpiece_single_token(&id, g_wp, ok[i].word, &err), &err);
        CHECK(id == ok[i].id);
    }
    struct ti_err err = {0};
    int32_t id;
    CHECK(ti_wordpiece_single_token(&id, g_wp, "opossum", &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "6728 15094 2819") != NULL);
    CHECK(strstr(err.msg, "ti-tokenize --model ldm") != NULL);
    ti_err_clear(&err);
    CHECK(ti_wordpiece_single_token(&id, g_wp, "sks", &err) == TI_ERR_INVALID); /* sk ##s */
    ti_err_clear(&err);
    /* an emoji is a lone [UNK]: the reference accepts it, we refuse a special token */
    CHECK(ti_wordpiece_single_token(&id, g_wp, "\xf0\x9f\x99\x82", &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "[UNK]") != NULL);
    ti_err_clear(&err);
    CHECK(ti_wordpiece_single_token(&id, g_wp, "[MASK]", &err) == TI_ERR_INVALID);
    ti_err_clear(&err);
    CHECK(ti_wordpiece_single_token(&id, g_wp, "", &err) == TI_ERR_INVALID);

    /* the common front end dispatches to the same rule */
    struct ti_tokenizer *tok = NULL;
    ti_err_clear(&err);
    CHECK_OK(ti_tokenizer_load(&tok, TI_TOKENIZER_WORDPIECE, BERT_VOCAB, &err), &err);
    if (tok) {
        CHECK_OK(ti_tokenizer_single_token(&id, tok, "cat", &err), &err);
        CHECK(id == 4937);
        int32_t bos, eos, pad;
        ti_tokenizer_specials(&bos, &eos, &pad, tok);
        CHECK(bos == 101 && eos == 102 && pad == 0);
        CHECK(ti_tokenizer_kind_of(tok) == TI_TOKENIZER_WORDPIECE);
    }
    ti_tokenizer_free(&tok);
    CHECK(tok == NULL);
}

/* ==== layout, truncation, robustness ======================================================== */

TEST(layout_and_truncation) {
    struct ti_err err = {0};
    struct ti_token_ids t;
    CHECK_OK(ti_bpe_encode(&t, g_bpe, "", 0, &err), &err);
    CHECK(t.n == 2 && t.ids[0] == TI_BPE_BOS && t.ids[1] == TI_BPE_EOS && t.ids[76] == TI_BPE_EOS);
    CHECK(t.n_text == 0);
    /* 100 digits: one token each; 75 kept, EOS last */
    char digits[101];
    for (int i = 0; i < 100; i++)
        digits[i] = (char)('0' + i % 10);
    digits[100] = '\0';
    CHECK_OK(ti_bpe_encode(&t, g_bpe, digits, 100, &err), &err);
    CHECK(t.n == 77 && t.n_text == 100 && t.ids[76] == TI_BPE_EOS &&
          t.ids[75] == 275); /* "4</w>" */
    char many_a[157];
    for (int i = 0; i < 78; i++)
        memcpy(many_a + 2 * i, "a ", 2);
    many_a[156] = '\0';
    CHECK_OK(ti_wordpiece_encode(&t, g_wp, many_a, 156, &err), &err);
    CHECK(t.n == 77 && t.n_text == 78 && t.ids[0] == 101 && t.ids[75] == 1037 && t.ids[76] == 102);
}

/* Deterministic pseudo-random bytes (no libc rand: the sequence must not depend on the libc). */
static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

TEST(ill_formed_and_long_inputs) {
    struct ti_err err = {0};
    struct ti_token_ids t;
    uint32_t seed = 12345;
    char buf[512];
    /* random bytes, biased towards UTF-8 lead/continuation bytes and ASCII punctuation */
    for (int iter = 0; iter < 400; iter++) {
        size_t len = lcg(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = lcg(&seed);
            static const char pick[] = "a &;#<>'\"\n\t\x1b[";
            buf[i] = (r & 3) == 0 ? pick[(r >> 2) % (sizeof pick - 1)] : (char)(r >> 4);
        }
        CHECK_OK(ti_bpe_encode(&t, g_bpe, buf, len, &err), &err);
        int in_range = t.n >= 2 && t.n <= 77;
        for (int i = 0; i < TI_TOKENS_MAX; i++)
            in_range &= t.ids[i] >= 0 && t.ids[i] < 49408;
        CHECK(in_range);
        CHECK_OK(ti_wordpiece_encode(&t, g_wp, buf, len, &err), &err);
        in_range = t.n >= 2 && t.n <= 77;
        for (int i = 0; i < TI_TOKENS_MAX; i++)
            in_range &= t.ids[i] >= 0 && t.ids[i] < 30522;
        CHECK(in_range);
    }
    /* very long inputs: 1 MB of one letter (a single pre-token), of '!', of mixed text */
    size_t big = 1u << 20;
    char *s = malloc(big);
    CHECK(s != NULL);
    if (!s) return;
    const char *fills[] = {"a", "!", "ab cd, \xc3\xa9\xe7\x8c\xab ", "&amp;", "\xff"};
    for (size_t k = 0; k < sizeof fills / sizeof fills[0]; k++) {
        size_t fl = strlen(fills[k]);
        for (size_t i = 0; i < big; i++)
            s[i] = fills[k][i % fl];
        CHECK_OK(ti_bpe_encode(&t, g_bpe, s, big, &err), &err);
        CHECK(t.n == 77 && t.ids[76] == TI_BPE_EOS && t.n_text >= 75);
        CHECK_OK(ti_wordpiece_encode(&t, g_wp, s, big, &err), &err);
        CHECK(t.ids[0] == 101 && t.ids[t.n - 1] == 102);
    }
    free(s);
}

/* ==== Unicode layer ========================================================================= */

static int utf8_decodes_to(const char *bytes, size_t len, const uint32_t *want, size_t n) {
    struct ti_ustr u = {0};
    struct ti_err err = {0};
    int ok = ti_ustr_from_utf8(&u, bytes, len, &err) == TI_OK && u.n == n &&
             (n == 0 || memcmp(u.cp, want, n * sizeof(uint32_t)) == 0);
    ti_ustr_free(&u);
    return ok;
}

TEST(utf8_replacement_like_python) {
    /* expected values: Python 3.11 bytes.decode("utf-8", errors="replace") */
    const uint32_t R = TI_UNICODE_REPLACEMENT;
    CHECK(utf8_decodes_to("\xed\xa0\x80", 3, (const uint32_t[]){R, R, R}, 3));
    CHECK(utf8_decodes_to("\xe2\x82", 2, (const uint32_t[]){R}, 1));
    CHECK(utf8_decodes_to("\xe2\x82"
                          "A",
                          3, (const uint32_t[]){R, 'A'}, 2));
    CHECK(utf8_decodes_to("\xc0\x80", 2, (const uint32_t[]){R, R}, 2));
    CHECK(utf8_decodes_to("\xf4\x90\x80\x80", 4, (const uint32_t[]){R, R, R, R}, 4));
    CHECK(utf8_decodes_to("\xf0\x9f\x98"
                          "b",
                          4, (const uint32_t[]){R, 'b'}, 2));
    CHECK(utf8_decodes_to("\xf0\x9f\x98\x80", 4, (const uint32_t[]){0x1F600}, 1));
    CHECK(utf8_decodes_to("a\0b", 3, (const uint32_t[]){'a', 0, 'b'}, 3));
    char out[4];
    CHECK(ti_utf8_encode(out, 0x10FFFF) == 4 && (unsigned char)out[0] == 0xF4);
}

static int nf_is(int nfc, const uint32_t *in, size_t n, const uint32_t *want, size_t wn) {
    struct ti_ustr u = {0};
    struct ti_err err = {0};
    ti_status st = nfc ? ti_ustr_nfc(&u, in, n, &err) : ti_ustr_nfd(&u, in, n, &err);
    int ok = st == TI_OK && u.n == wn && memcmp(u.cp, want, wn * sizeof(uint32_t)) == 0;
    ti_ustr_free(&u);
    return ok;
}

TEST(normalisation_and_case) {
    /* expected values: unicodedata.normalize / str.lower of Python 3.11 */
    CHECK(nf_is(1, (const uint32_t[]){'e', 0x301}, 2, (const uint32_t[]){0xE9}, 1));
    CHECK(nf_is(0, (const uint32_t[]){0xE9}, 1, (const uint32_t[]){'e', 0x301}, 2));
    /* canonical ordering: dot below (220) before acute (230) */
    CHECK(nf_is(0, (const uint32_t[]){'e', 0x301, 0x323}, 3, (const uint32_t[]){'e', 0x323, 0x301},
                3));
    CHECK(nf_is(1, (const uint32_t[]){'e', 0x301, 0x323}, 3, (const uint32_t[]){0x1EB9, 0x301}, 2));
    /* Hangul: jamo compose to a syllable, a syllable decomposes */
    CHECK(nf_is(1, (const uint32_t[]){0x1100, 0x1161, 0x11A8}, 3, (const uint32_t[]){0xAC01}, 1));
    CHECK(nf_is(0, (const uint32_t[]){0xAC01}, 1, (const uint32_t[]){0x1100, 0x1161, 0x11A8}, 3));
    /* singletons and exclusions: ANGSTROM SIGN -> Å, U+0958 stays decomposed */
    CHECK(nf_is(1, (const uint32_t[]){0x212B}, 1, (const uint32_t[]){0xC5}, 1));
    CHECK(nf_is(1, (const uint32_t[]){0x958}, 1, (const uint32_t[]){0x915, 0x93C}, 2));

    struct ti_ustr u = {0};
    struct ti_err err = {0};
    /* "ΟΔΟΣ ΣΑΣ." -> "οδος σας." (final sigma by context) */
    const uint32_t greek[] = {0x39F, 0x394, 0x39F, 0x3A3, ' ', 0x3A3, 0x391, 0x3A3, '.'};
    const uint32_t lower[] = {0x3BF, 0x3B4, 0x3BF, 0x3C2, ' ', 0x3C3, 0x3B1, 0x3C2, '.'};
    CHECK_OK(ti_ustr_lower(&u, greek, 9, &err), &err);
    CHECK(u.n == 9 && memcmp(u.cp, lower, sizeof lower) == 0);
    const uint32_t lone[] = {0x3A3};
    CHECK_OK(ti_ustr_lower(&u, lone, 1, &err), &err);
    CHECK(u.n == 1 && u.cp[0] == 0x3C3);
    const uint32_t idot[] = {0x130};
    CHECK_OK(ti_ustr_lower(&u, idot, 1, &err), &err);
    CHECK(u.n == 2 && u.cp[0] == 'i' && u.cp[1] == 0x307);
    ti_ustr_free(&u);
    CHECK(ti_unicode_ci_ascii(0x17F) == 's' && ti_unicode_ci_ascii(0x212A) == 'k');
    CHECK(ti_unicode_ci_ascii('Q') == 'q' && ti_unicode_ci_ascii(0xE9) == 0);
}

/* ==== loading ============================================================================== */

TEST(load_errors) {
    struct ti_err err = {0};
    struct ti_bpe *bpe = NULL;
    CHECK(ti_bpe_load(&bpe, "no/such/merges.txt.gz", &err) == TI_ERR_IO);
    CHECK(bpe == NULL);
    CHECK(strstr(err.msg, "no/such/merges.txt.gz") != NULL);

    /* a merges file that stops early */
    char path[] = "/tmp/ti_test_merges_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    fprintf(f, "#version: 0.2\ni n\nt h\n");
    fclose(f);
    ti_err_clear(&err);
    CHECK(ti_bpe_load(&bpe, path, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "expected at least 48894") != NULL);

    /* a vocab.txt without [CLS] */
    f = fopen(path, "w");
    fprintf(f, "[PAD]\n[UNK]\n[SEP]\n[MASK]\nhello\n");
    fclose(f);
    struct ti_wordpiece *wp = NULL;
    ti_err_clear(&err);
    CHECK(ti_wordpiece_load(&wp, path, &err) == TI_ERR_FORMAT);
    CHECK(wp == NULL);
    CHECK(strstr(err.msg, "[CLS]") != NULL && strstr(err.msg, path) != NULL);
    ti_err_clear(&err);
    CHECK(ti_wordpiece_load(&wp, "no/such/vocab.txt", &err) == TI_ERR_IO);
    remove(path);

    /* decode rejects ids outside the vocabulary */
    char *s = NULL;
    int32_t badid[] = {320, 49408};
    ti_err_clear(&err);
    CHECK(ti_bpe_decode(&s, g_bpe, badid, 2, &err) == TI_ERR_INVALID && s == NULL);
    ti_err_clear(&err);
    int32_t badid2[] = {-1};
    CHECK(ti_wordpiece_decode(&s, g_wp, badid2, 1, &err) == TI_ERR_INVALID && s == NULL);
    ti_bpe_free(&bpe);
    ti_wordpiece_free(&wp);
}

#ifdef TI_HAVE_ZLIB
TEST(uncompressed_merges_file) {
    /* the same merges, gunzipped: must load and tokenize identically */
    gzFile gz = gzopen(CLIP_VOCAB, "rb");
    CHECK(gz != NULL);
    if (!gz) return;
    char path[] = "/tmp/ti_test_merges_plain_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        gzclose(gz);
        return;
    }
    FILE *f = fdopen(fd, "wb");
    char chunk[65536];
    int got;
    while ((got = gzread(gz, chunk, sizeof chunk)) > 0)
        fwrite(chunk, 1, (size_t)got, f);
    gzclose(gz);
    fclose(f);
    struct ti_err err = {0};
    struct ti_bpe *plain = NULL;
    CHECK_OK(ti_bpe_load(&plain, path, &err), &err);
    remove(path);
    if (!plain) return;
    const char *prompts[] = {"a painting of a virus monster playing guitar",
                             "naïve café 🙂 &amp;"};
    for (int i = 0; i < 2; i++) {
        struct ti_token_ids a, b;
        CHECK_OK(ti_bpe_encode(&a, plain, prompts[i], strlen(prompts[i]), &err), &err);
        CHECK_OK(ti_bpe_encode(&b, g_bpe, prompts[i], strlen(prompts[i]), &err), &err);
        CHECK(memcmp(a.ids, b.ids, sizeof a.ids) == 0);
    }
    ti_bpe_free(&plain);
    CHECK(plain == NULL);
}
#endif

TEST(decode_round_trip) {
    struct ti_err err = {0};
    const char *text = "a photo of a cat, 4k";
    struct ti_token_ids t;
    CHECK_OK(ti_bpe_encode(&t, g_bpe, text, strlen(text), &err), &err);
    char *s = NULL;
    CHECK_OK(ti_bpe_decode(&s, g_bpe, t.ids, TI_TOKENS_MAX, &err), &err);
    CHECK(s && strcmp(s, "a photo of a cat , 4 k") == 0);
    free(s);
    CHECK_OK(ti_wordpiece_encode(&t, g_wp, text, strlen(text), &err), &err);
    s = NULL;
    CHECK_OK(ti_wordpiece_decode(&s, g_wp, t.ids, TI_TOKENS_MAX, &err), &err);
    CHECK(s && strcmp(s, "a photo of a cat, 4k") == 0);
    free(s);
}

int main(void) {
#ifndef TI_HAVE_ZLIB
    printf("SKIP: built without zlib (the committed CLIP merges file %s is gzip'd)\n", CLIP_VOCAB);
    return TC_SKIP;
#else
    struct ti_err err = {0};
    if (ti_bpe_load(&g_bpe, CLIP_VOCAB, &err) != TI_OK ||
        ti_wordpiece_load(&g_wp, BERT_VOCAB, &err) != TI_OK) {
        fprintf(stderr, "cannot load the vocabularies (run from the repository root): %s\n",
                err.msg);
        return 1;
    }
    RUN(prompts_fixture);
    RUN(reference_testvectors);
    RUN(unicode_sweep_fixture);
    RUN(ftfy_fixture);
    RUN(single_token_rule_clip);
    RUN(single_token_rule_bert);
    RUN(layout_and_truncation);
    RUN(ill_formed_and_long_inputs);
    RUN(utf8_replacement_like_python);
    RUN(normalisation_and_case);
    RUN(load_errors);
    RUN(uncompressed_merges_file);
    RUN(decode_round_trip);
    ti_bpe_free(&g_bpe);
    ti_wordpiece_free(&g_wp);
    return tc_finish();
#endif
}
