/*
 * text_fix.c - ftfy 6.3.1 fix_text() in C (see text_fix.h for what it does and the deviations).
 *
 * The structure follows ftfy's own files so the two can be read side by side:
 *   ti_text_fix          ftfy/__init__.py fix_text, fix_and_explain
 *   fix_encoding*        ftfy/__init__.py fix_encoding_and_explain, _fix_encoding_one_step...
 *   ti_text_is_mojibake  ftfy/badness.py BADNESS_RE, one C test per alternative of the regex
 *   the small fixers     ftfy/fixes.py
 * Character classes, code pages and entity names come from model/unicode_tables.c.
 */
#include "text_fix.h"

#include <stdlib.h> /* defines: malloc, realloc, free */
#include <string.h> /* defines: strcmp, memcmp, strlen */

#define N_OF(a)           (sizeof(a) / sizeof((a)[0]))
#define NOCP              0xFFFFFFFFu /* "no code point": past the end of the string */
#define MAX_ROUNDS        64          /* bound on ftfy's repeat-until-stable loops */
#define MAX_DECODE_LENGTH 1000000     /* ftfy TextFixerConfig.max_decode_length */

/* ==== ftfy.badness.is_bad ==================================================================== */

enum {
    CM = TI_FT_COMMON,
    C1 = TI_FT_C1,
    BAD = TI_FT_BAD,
    LW = TI_FT_LAW,
    CU = TI_FT_CURRENCY,
    SP = TI_FT_START_PUNCT,
    EP = TI_FT_END_PUNCT,
    NU = TI_FT_NUMERIC,
    KA = TI_FT_KAOMOJI,
    UA = TI_FT_UPPER_ACCENTED,
    LA = TI_FT_LOWER_ACCENTED,
    UC = TI_FT_UPPER_COMMON,
    LC = TI_FT_LOWER_COMMON,
    BX = TI_FT_BOX
};

static uint32_t ft(uint32_t cp) {
    return cp == NOCP ? 0 : ti_uprop_ftfy(cp);
}
static int py_space(uint32_t cp) {
    return cp != NOCP && (ti_uprop_flags(cp) & TI_UP_PY_SPACE);
}
static int py_word(uint32_t cp) {
    return cp != NOCP && (ti_uprop_flags(cp) & TI_UP_PY_WORD);
}
static int ascii_lower(uint32_t cp) {
    return cp >= 'a' && cp <= 'z';
}
static int ascii_letter(uint32_t cp) {
    return ascii_lower(cp) || (cp >= 'A' && cp <= 'Z');
}
static int one_of(uint32_t cp, const uint32_t *set, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (set[i] == cp) return 1;
    return 0;
}
#define ONE_OF(cp, ...)                                                                            \
    one_of((cp), (const uint32_t[]){__VA_ARGS__}, N_OF(((const uint32_t[]){__VA_ARGS__})))

/* Does one alternative of BADNESS_RE match at s[i]? c[k] = s[i + k] or NOCP. The numbers are the
 * alternatives in badness.py's order. */
static int bad_at(const uint32_t *c, size_t i) {
    const uint32_t f0 = ft(c[0]), f1 = ft(c[1]), f2 = ft(c[2]);
    /* 1 */ if (f0 & C1)
        return 1;
    /* 2 */ if ((f0 & (BAD | LA | UA | BX | SP | EP | CU | NU | LW)) && (f1 & BAD))
        return 1;
    /* 3 */ if (ascii_letter(c[0]) && (f1 & (LC | UC)) && (f2 & BAD))
        return 1;
    /* 4 */ if ((f0 & BAD) && (f1 & (LA | UA | BX | SP | EP | CU | NU | LW)))
        return 1;
    /* 5 */ if ((f0 & (LA | LC | BX | EP | CU | NU)) && (f1 & UA))
        return 1;
    /* 6 */ if ((f0 & (BX | EP | CU | NU)) && (f1 & LA))
        return 1;
    /* 7 */ if ((f0 & (LA | BX | EP)) && (f1 & CU))
        return 1;
    /* 8 */ if (py_space(c[0]) && (f1 & UA) && (f2 & CU))
        return 1;
    /* 9 */ if ((f0 & (UA | BX)) && (f1 & (NU | LW)))
        return 1;
    /* 10 */ if ((f0 & (LA | UA | BX | CU | EP)) && (f1 & SP) && (f2 & NU))
        return 1;
    /* 11 */ if ((f0 & (LA | UA | CU | NU | BX | LW)) && (f1 & EP) && (f2 & SP))
        return 1;
    /* 12 */ if ((f0 & (CU | NU | BX)) && (f1 & SP))
        return 1;
    /* 13 */ if (ascii_lower(c[0]) && (f1 & UA) && (f2 & (SP | CU)))
        return 1;
    /* 14 */ if ((f0 & BX) && (f1 & KA))
        return 1;
    /* 15 */ if ((f0 & (LA | UA | CU | NU | SP | EP | LW)) && (f1 & BX))
        return 1;
    /* 16 */ if ((f0 & BX) && (f1 & EP))
        return 1;
    /* 17 */ if ((f0 & (LA | UA)) && (f1 & (SP | EP)) && py_word(c[2]))
        return 1;
    /* 18: Œ or œ not followed by an ASCII letter */
    if (ONE_OF(c[0], 0x152, 0x153) && c[1] != NOCP && !ascii_letter(c[1])) return 1;
    /* 19: degree sign after an upper-case accented letter */
    if ((f0 & UA) && c[1] == 0xB0) return 1;
    /* 20: [ÂÃÎÐ][€œŠš¢£Ÿž\xa0\xad®©°·»{start_punct}{end_punct}–—´] */
    if (ONE_OF(c[0], 0xC2, 0xC3, 0xCE, 0xD0) &&
        ((f1 & (SP | EP)) ||
         ONE_OF(c[1], 0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE, 0xA9,
                0xB0, 0xB7, 0xBB, 0x2013, 0x2014, 0xB4)))
        return 1;
    /* 21: × [²³] */
    if (c[0] == 0xD7 && ONE_OF(c[1], 0xB2, 0xB3)) return 1;
    /* 22: ([ØÙ] [{common}{currency}{bad}{numeric}{start_punct}ŸŠ®°µ»]) twice */
    for (int k = 0; k < 4; k += 2) {
        if (!ONE_OF(c[k], 0xD8, 0xD9)) break;
        if (!((ft(c[k + 1]) & (CM | CU | BAD | NU | SP)) ||
              ONE_OF(c[k + 1], 0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB)))
            break;
        if (k == 2) return 1;
    }
    /* 23: à[²µ¹¼½¾] */
    if (c[0] == 0xE0 && ONE_OF(c[1], 0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE)) return 1;
    /* 24: √[±∂†≠®™´≤≥¥µø] */
    if (c[0] == 0x221A && ONE_OF(c[1], 0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264,
                                 0x2265, 0xA5, 0xB5, 0xF8))
        return 1;
    /* 25: ≈[°¢] */
    if (c[0] == 0x2248 && ONE_OF(c[1], 0xB0, 0xA2)) return 1;
    /* 26: ‚Ä[ìîïòôúùû†°¢π] */
    if (c[0] == 0x201A && c[1] == 0xC4 &&
        ONE_OF(c[2], 0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0, 0xA2, 0x3C0))
        return 1;
    /* 27: ‚[âó][àä°ê] */
    if (c[0] == 0x201A && ONE_OF(c[1], 0xE2, 0xF3) && ONE_OF(c[2], 0xE0, 0xE4, 0xB0, 0xEA))
        return 1;
    /* 28: вЂ */
    if (c[0] == 0x432 && c[1] == 0x402) return 1;
    /* 29: [ВГРС][{c1}{bad}{start_punct}{end_punct}{currency}°µ][ВГРС] */
    if (ONE_OF(c[0], 0x412, 0x413, 0x420, 0x421) &&
        ((f1 & (C1 | BAD | SP | EP | CU)) || ONE_OF(c[1], 0xB0, 0xB5)) &&
        ONE_OF(c[2], 0x412, 0x413, 0x420, 0x421))
        return 1;
    /* 30: ГўВЂВ.[A-Za-z ] ('.' is anything but a newline) */
    if (c[0] == 0x413 && c[1] == 0x45E && c[2] == 0x412 && c[3] == 0x402 && c[4] == 0x412 &&
        c[5] != NOCP && c[5] != '\n' && (ascii_letter(c[6]) || c[6] == ' '))
        return 1;
    /* 31: Ã[\xa0¡] */
    if (c[0] == 0xC3 && ONE_OF(c[1], 0xA0, 0xA1)) return 1;
    /* 32: [a-z]\s?[ÃÂ][ ] */
    if (ascii_lower(c[0])) {
        if (ONE_OF(c[1], 0xC3, 0xC2) && c[2] == ' ') return 1;
        if (py_space(c[1]) && ONE_OF(c[2], 0xC3, 0xC2) && c[3] == ' ') return 1;
    }
    /* 33: ^[ÃÂ][ ] */
    if (i == 0 && ONE_OF(c[0], 0xC3, 0xC2) && c[1] == ' ') return 1;
    /* 34: [a-z.,?!{end_punct}] Â [ {start_punct}{end_punct}] */
    if ((ascii_lower(c[0]) || ONE_OF(c[0], '.', ',', '?', '!') || (f0 & EP)) && c[1] == 0xC2 &&
        (c[2] == ' ' || (f2 & (SP | EP))))
        return 1;
    /* 35: β€[™\xa0Ά\xad®°] */
    if (c[0] == 0x3B2 && c[1] == 0x20AC && ONE_OF(c[2], 0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0))
        return 1;
    /* 36: [ΒΓΞΟ][{c1}{bad}{start_punct}{end_punct}{currency}°][ΒΓΞΟ] */
    if (ONE_OF(c[0], 0x392, 0x393, 0x39E, 0x39F) &&
        ((f1 & (C1 | BAD | SP | EP | CU)) || c[1] == 0xB0) &&
        ONE_OF(c[2], 0x392, 0x393, 0x39E, 0x39F))
        return 1;
    /* 37: ā€ */
    if (c[0] == 0x101 && c[1] == 0x20AC) return 1;
    return 0;
}

int ti_text_is_mojibake(const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80 && !ascii_letter(s[i]) && !ONE_OF(s[i], '.', ',', '?', '!') &&
            !py_space(s[i]))
            continue; /* no alternative starts with any other ASCII character */
        uint32_t c[7];
        for (size_t k = 0; k < 7; k++)
            c[k] = i + k < n ? s[i + k] : NOCP;
        if (bad_at(c, i)) return 1;
    }
    return 0;
}

/* ==== byte buffers for the re-encoding attempts ============================================== */

struct bytes {
    unsigned char *b;
    size_t n, cap;
};

static ti_status bytes_push(struct bytes *bb, unsigned char v, struct ti_err *err) {
    if (bb->n == bb->cap) {
        size_t cap = bb->cap ? bb->cap * 2 : 64;
        unsigned char *p = realloc(bb->b, cap);
        if (!p) return ti_error(err, TI_ERR_NOMEM, "text_fix: cannot allocate %zu bytes", cap);
        bb->b = p;
        bb->cap = cap;
    }
    bb->b[bb->n++] = v;
    return TI_OK;
}

static void bytes_swap(struct bytes *a, struct bytes *b) {
    struct bytes t = *a;
    *a = *b;
    *b = t;
}

static void ustr_swap(struct ti_ustr *a, struct ti_ustr *b) {
    struct ti_ustr t = *a;
    *a = *b;
    *b = t;
}

/* ==== ftfy's codecs ========================================================================== */

static int charmap_index(const char *name) {
    for (int e = 0; e < TI_FTFY_N_CHARMAPS; e++)
        if (strcmp(ti_ftfy_charmap_names[e], name) == 0) return e;
    return -1;
}

/* The byte a code page encodes cp as, or -1 (chardata.possible_encoding: ASCII but 0x1A, or a
 * decoding of 0x80..0xFF or of 0x1A). */
static int charmap_encode(int e, uint32_t cp) {
    if (cp < 0x80 && cp != 0x1A) return (int)cp;
    if (ti_ftfy_charmaps[e][0x1A] == cp) return 0x1A;
    for (int b = 0x80; b < 0x100; b++)
        if (ti_ftfy_charmaps[e][b] == cp) return b;
    return -1;
}

/* fixes.restore_byte_a0: A_GRAVE_WORD_RE (b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "),
 * then every ALTERED_UTF8_RE match gets its spaces turned into 0xA0. */
static int altered_utf8_at(const unsigned char *b, size_t n, size_t i) {
#define CONT_A0(x)                                                                                 \
    (((x) >= 0x80 && (x) <= 0x84) || ((x) >= 0x86 && (x) <= 0x9F) || ((x) >= 0xA1 && (x) <= 0xBF))
#define CONT(x) ((x) >= 0x80 && (x) <= 0xBF)
    unsigned c0 = b[i], c1 = i + 1 < n ? b[i + 1] : 0x100, c2 = i + 2 < n ? b[i + 2] : 0x100,
             c3 = i + 3 < n ? b[i + 3] : 0x100;
    if ((c0 == 0xC2 || c0 == 0xC3 || c0 == 0xC5 || c0 == 0xCE || c0 == 0xD0 || c0 == 0xD9) &&
        c1 == ' ')
        return 2;
    if ((c0 == 0xE2 || c0 == 0xE3) && c1 == ' ' && CONT_A0(c2)) return 3;
    if (c0 >= 0xE0 && c0 <= 0xE3 && CONT_A0(c1) && c2 == ' ') return 3;
    if (c0 == 0xF0) {
        if (c1 == ' ' && CONT(c2) && CONT(c3)) return 4;
        if (CONT(c1) && c2 == ' ' && CONT(c3)) return 4;
        if (CONT(c1) && CONT(c2) && c3 == ' ') return 4;
    }
    return 0;
}

static int altered_utf8_search(const struct bytes *bb) {
    for (size_t i = 0; i < bb->n; i++)
        if (altered_utf8_at(bb->b, bb->n, i)) return 1;
    return 0;
}

static int starts_with(const unsigned char *b, size_t n, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i + k <= n && memcmp(b + i, lit, k) == 0;
}

static ti_status restore_byte_a0(struct bytes *out, const struct bytes *in, struct ti_err *err) {
    struct bytes tmp = {0};
    ti_status st = TI_OK;
    for (size_t i = 0; i < in->n;) {
        if (in->b[i] == 0xC3 && i + 1 < in->n && in->b[i + 1] == ' ' &&
            !(starts_with(in->b, in->n, i + 2, " ") || starts_with(in->b, in->n, i + 2, "quele") ||
              starts_with(in->b, in->n, i + 2, "quela") ||
              starts_with(in->b, in->n, i + 2, "quilo") ||
              starts_with(in->b, in->n, i + 2, "s "))) {
            TI_TRY_GOTO(st, bytes_push(&tmp, 0xC3, err));
            TI_TRY_GOTO(st, bytes_push(&tmp, 0xA0, err));
            TI_TRY_GOTO(st, bytes_push(&tmp, ' ', err));
            i += 2;
            continue;
        }
        TI_TRY_GOTO(st, bytes_push(&tmp, in->b[i], err));
        i++;
    }
    out->n = 0;
    for (size_t i = 0; i < tmp.n;) {
        int k = altered_utf8_at(tmp.b, tmp.n, i);
        if (k) {
            for (int j = 0; j < k; j++)
                TI_TRY_GOTO(st, bytes_push(out, tmp.b[i + j] == ' ' ? 0xA0 : tmp.b[i + j], err));
            i += (size_t)k;
            continue;
        }
        TI_TRY_GOTO(st, bytes_push(out, tmp.b[i], err));
        i++;
    }
fail:
    free(tmp.b);
    return st;
}

/* fixes.replace_lossy_sequences: LOSSY_UTF8_RE matches become the UTF-8 of U+FFFD. */
static int lossy_at(const unsigned char *b, size_t n, size_t i) {
#define AT(k)    (i + (k) < n ? (unsigned)b[i + (k)] : 0x100u)
#define SUB_Q(x) ((x) == 0x1A || (x) == '?')
#define SUB_C(x) ((x) == 0x1A || CONT(x))
    unsigned c0 = AT(0);
    if (c0 >= 0xC2 && c0 <= 0xDF && AT(1) == 0x1A) return 2;
    if ((c0 == 0xC2 || c0 == 0xC3) && AT(1) == '?') return 2;
    if (c0 == 0xED && AT(1) >= 0xA0 && AT(1) <= 0xAF && AT(3) == 0xED && AT(4) >= 0xB0 &&
        AT(4) <= 0xBF) {
        if (SUB_Q(AT(2)) && (SUB_Q(AT(5)) || CONT(AT(5)))) return 6;
        if ((SUB_Q(AT(2)) || CONT(AT(2))) && SUB_Q(AT(5))) return 6;
    }
    if (c0 >= 0xE0 && c0 <= 0xEF) {
        if (SUB_Q(AT(1)) && SUB_C(AT(2))) return 3;
        if (SUB_C(AT(1)) && SUB_Q(AT(2))) return 3;
    }
    if (c0 >= 0xF0 && c0 <= 0xF4) {
        if (SUB_Q(AT(1)) && SUB_C(AT(2)) && SUB_C(AT(3))) return 4;
        if (SUB_C(AT(1)) && SUB_Q(AT(2)) && SUB_C(AT(3))) return 4;
        if (SUB_C(AT(1)) && SUB_C(AT(2)) && SUB_Q(AT(3))) return 4;
    }
    if (c0 == 0x1A) return 1;
    return 0;
#undef AT
#undef SUB_Q
#undef SUB_C
}

static ti_status replace_lossy(struct bytes *out, const struct bytes *in, struct ti_err *err) {
    out->n = 0;
    for (size_t i = 0; i < in->n;) {
        int k = lossy_at(in->b, in->n, i);
        if (k) {
            TI_TRY(bytes_push(out, 0xEF, err));
            TI_TRY(bytes_push(out, 0xBF, err));
            TI_TRY(bytes_push(out, 0xBD, err));
            i += (size_t)k;
            continue;
        }
        TI_TRY(bytes_push(out, in->b[i], err));
        i++;
    }
    return TI_OK;
}

/* Strict UTF-8 (Python's "utf-8"), or with `variants` ftfy's "utf-8-variants": also C0 80 as
 * U+0000 and CESU-8 surrogate pairs (ED A0..AF xx ED B0..BF xx) as one supplementary code point.
 * Returns 0 and leaves `out` unspecified when the bytes do not decode. */
static int decode_utf8_strict(struct ti_ustr *out, const struct bytes *in, int variants,
                              ti_status *st, struct ti_err *err) {
    const unsigned char *s = in->b;
    size_t n = in->n;
    out->n = 0;
    if ((*st = ti_ustr_reserve(out, n + 1, err)) != TI_OK) return 0;
    for (size_t i = 0; i < n;) {
        unsigned b = s[i];
        if (b < 0x80) {
            out->cp[out->n++] = b;
            i++;
            continue;
        }
        if (variants && b == 0xC0 && i + 1 < n && s[i + 1] == 0x80) {
            out->cp[out->n++] = 0;
            i += 2;
            continue;
        }
        if (variants && b == 0xED && i + 5 < n && s[i + 1] >= 0xA0 && s[i + 1] <= 0xAF &&
            CONT(s[i + 2]) && s[i + 3] == 0xED && s[i + 4] >= 0xB0 && s[i + 4] <= 0xBF &&
            CONT(s[i + 5])) {
            out->cp[out->n++] =
                (((uint32_t)s[i + 1] & 0x0F) << 16) + (((uint32_t)s[i + 2] & 0x3F) << 10) +
                (((uint32_t)s[i + 4] & 0x0F) << 6) + ((uint32_t)s[i + 5] & 0x3F) + 0x10000;
            i += 6;
            continue;
        }
        uint32_t cp;
        int r = ti_utf8_decode_one(s + i, n - i, 0, &cp);
        if (r <= 0) return 0;
        out->cp[out->n++] = cp;
        i += (size_t)r;
    }
    return 1;
}
#undef CONT
#undef CONT_A0

/* ==== fix_encoding =========================================================================== */

static ti_status fix_encoding(struct ti_ustr *out, const uint32_t *s, size_t n, int depth,
                              struct ti_err *err);

/* fixes.decode_inconsistent_utf8: every UTF8_DETECTOR_RE run that is shorter than the text and
 * is_bad on its own is replaced by fix_encoding() of it. */
static size_t utf8_detector_at(const uint32_t *s, size_t n, size_t i) {
    if (i > 0 && (ft(s[i - 1]) & TI_FT_UTF8_CONTINUATION_STRICT)) return 0; /* lookbehind */
    size_t j = i;
    for (;;) {
        /* ( [first_of_2][cont] | [first_of_3][cont]{2} | [first_of_4][cont]{3} )+ : the first
         * alternative that matches wins each round; nothing follows, so no backtracking */
        static const uint32_t firsts[3] = {TI_FT_UTF8_FIRST_OF_2, TI_FT_UTF8_FIRST_OF_3,
                                           TI_FT_UTF8_FIRST_OF_4};
        uint32_t c0 = ft(j < n ? s[j] : NOCP);
        int len = 0, ok = 0;
        for (int a = 0; a < 3 && !ok; a++) {
            len = a + 2;
            if (!(c0 & firsts[a])) continue;
            ok = 1;
            for (int k = 1; k < len; k++)
                if (!(ft(j + (size_t)k < n ? s[j + (size_t)k] : NOCP) & TI_FT_UTF8_CONTINUATION)) {
                    ok = 0;
                    break;
                }
        }
        if (!ok) break;
        j += (size_t)len;
    }
    return j - i;
}

static ti_status decode_inconsistent_utf8(struct ti_ustr *out, const uint32_t *s, size_t n,
                                          int depth, struct ti_err *err) {
    struct ti_ustr fixed = {0};
    ti_status st = TI_OK;
    out->n = 0;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_detector_at(s, n, i);
        if (len == 0) {
            TI_TRY_GOTO(st, ti_ustr_push(out, s[i], err));
            i++;
            continue;
        }
        if (len < n && ti_text_is_mojibake(s + i, len)) {
            TI_TRY_GOTO(st, fix_encoding(&fixed, s + i, len, depth + 1, err));
            TI_TRY_GOTO(st, ti_ustr_append(out, fixed.cp, fixed.n, err));
        } else {
            TI_TRY_GOTO(st, ti_ustr_append(out, s + i, len, err));
        }
        i += len;
    }
fail:
    ti_ustr_free(&fixed);
    return st;
}

static int any_c1(const uint32_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80 && s[i] <= 0x9F) return 1;
    return 0;
}

/* fixes.fix_c1_controls: U+0080..U+009F are read as sloppy windows-1252. */
static ti_status fix_c1_controls(struct ti_ustr *out, const uint32_t *s, size_t n,
                                 struct ti_err *err) {
    int w = charmap_index("sloppy-windows-1252");
    if (w < 0) return ti_error(err, TI_ERR_INTERNAL, "text_fix: no sloppy-windows-1252 table");
    TI_TRY(ti_ustr_assign(out, s, n, err));
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80 && s[i] <= 0x9F) out->cp[i] = ti_ftfy_charmaps[w][s[i]];
    return TI_OK;
}

/* One step of ftfy._fix_encoding_one_step_and_explain; *out = the text after the step (equal to
 * the input when nothing applied). */
static ti_status fix_encoding_step(struct ti_ustr *out, const uint32_t *s, size_t n, int depth,
                                   struct ti_err *err) {
    ti_status st = TI_OK;
    struct bytes enc = {0}, tmp = {0};
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++)
        ascii = s[i] < 0x80;
    if (n == 0 || ascii || !ti_text_is_mojibake(s, n)) return ti_ustr_assign(out, s, n, err);

    int latin1_possible = 0;
    for (int e = 0; e < TI_FTFY_N_CHARMAPS; e++) {
        enc.n = 0;
        int possible = 1;
        for (size_t i = 0; i < n; i++) {
            int b = charmap_encode(e, s[i]);
            if (b < 0) {
                possible = 0;
                break;
            }
            TI_TRY_GOTO(st, bytes_push(&enc, (unsigned char)b, err));
        }
        if (!possible) continue;
        const char *name = ti_ftfy_charmap_names[e];
        if (strcmp(name, "latin-1") == 0) latin1_possible = 1;
        if (strcmp(name, "macroman") != 0 && altered_utf8_search(&enc)) {
            TI_TRY_GOTO(st, restore_byte_a0(&tmp, &enc, err));
            bytes_swap(&enc, &tmp);
        }
        if (strncmp(name, "sloppy", 6) == 0) {
            TI_TRY_GOTO(st, replace_lossy(&tmp, &enc, err));
            bytes_swap(&enc, &tmp);
        }
        int variants = 0;
        for (size_t i = 0; i < enc.n && !variants; i++)
            variants = enc.b[i] == 0xED || enc.b[i] == 0xC0;
        if (decode_utf8_strict(out, &enc, variants, &st, err)) goto done;
        if (st != TI_OK) goto fail;
    }

    /* Look for a-hat-euro sequences that remain, and fix them in isolation. */
    int detected = 0;
    for (size_t i = 0; i < n && !detected; i++)
        detected = utf8_detector_at(s, n, i) > 0;
    if (detected && depth < MAX_ROUNDS) {
        TI_TRY_GOTO(st, decode_inconsistent_utf8(out, s, n, depth, err));
        if (!(out->n == n && memcmp(out->cp, s, n * sizeof(uint32_t)) == 0)) goto done;
    }

    /* Latin-1 that was meant as windows-1252 (only C1 controls make the two differ). */
    if (latin1_possible) {
        TI_TRY_GOTO(st, ti_ustr_reserve(out, n, err));
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            uint32_t v = ti_ftfy_windows1252[s[i]];
            if (v == 0xFFFFFFFFu) ok = 0;
            out->cp[i] = v;
        }
        if (ok) {
            out->n = n;
            if (memcmp(out->cp, s, n * sizeof(uint32_t)) != 0) goto done;
        }
    }

    if (any_c1(s, n)) {
        TI_TRY_GOTO(st, fix_c1_controls(out, s, n, err));
        goto done;
    }
    TI_TRY_GOTO(st, ti_ustr_assign(out, s, n, err));
done:
fail:
    free(enc.b);
    free(tmp.b);
    return st;
}

/* ftfy.fix_encoding: steps until the text stops changing. */
static ti_status fix_encoding(struct ti_ustr *out, const uint32_t *s, size_t n, int depth,
                              struct ti_err *err) {
    struct ti_ustr next = {0};
    ti_status st = TI_OK;
    TI_TRY_GOTO(st, ti_ustr_assign(out, s, n, err));
    for (int round = 0; round < MAX_ROUNDS; round++) {
        TI_TRY_GOTO(st, fix_encoding_step(&next, out->cp, out->n, depth, err));
        if (ti_ustr_equal(&next, out)) break;
        ustr_swap(out, &next);
    }
fail:
    ti_ustr_free(&next);
    return st;
}

/* ==== unescape_html ========================================================================== */

static int is_ascii_alnum(uint32_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const char *entity_find(const char *name) {
    size_t lo = 0, hi = N_OF(ti_html_entities);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ti_html_entities[mid].name, name);
        if (c == 0) return ti_html_entities[mid].utf8;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int hex_value(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

/* html._replace_charref for a numeric reference; returns the number of code points (0 or 1). */
static int charref(uint32_t *out, uint64_t num) {
    for (size_t i = 0; i < N_OF(ti_html_invalid_charrefs); i++)
        if (ti_html_invalid_charrefs[i].num == num) {
            *out = ti_html_invalid_charrefs[i].cp;
            return 1;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        *out = TI_UNICODE_REPLACEMENT;
        return 1;
    }
    for (size_t i = 0; i < N_OF(ti_html_invalid_codepoints); i++)
        if (num >= ti_html_invalid_codepoints[i].lo && num <= ti_html_invalid_codepoints[i].hi)
            return 0;
    *out = (uint32_t)num;
    return 1;
}

/* fixes.unescape_html: HTML_ENTITY_RE (&#?[0-9A-Za-z]{1,24};) matches are looked up in ftfy's
 * HTML_ENTITIES; "&#...;" goes through html.unescape and is kept only when that consumed the
 * whole reference (body all decimal digits, or x/X and all hex digits). */
static ti_status unescape_html(struct ti_ustr *out, const uint32_t *s, size_t n,
                               struct ti_err *err) {
    struct ti_ustr tmp = {0};
    ti_status st = TI_OK;
    out->n = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '&') {
            size_t p = i + 1;
            int hash = p < n && s[p] == '#';
            if (hash) p++;
            size_t k = p;
            while (k < n && k - p < 25 && is_ascii_alnum(s[k]))
                k++;
            size_t len = k - p;
            if (len >= 1 && len <= 24 && k < n && s[k] == ';') {
                char name[32];
                for (size_t j = 0; j < len; j++)
                    name[j] = (char)s[p + j];
                name[len] = '\0';
                if (!hash) {
                    const char *rep = entity_find(name);
                    if (rep) {
                        TI_TRY_GOTO(st, ti_ustr_from_utf8(&tmp, rep, strlen(rep), err));
                        TI_TRY_GOTO(st, ti_ustr_append(out, tmp.cp, tmp.n, err));
                        i = k + 1;
                        continue;
                    }
                } else {
                    int is_hex = name[0] == 'x' || name[0] == 'X';
                    size_t d0 = is_hex ? 1 : 0;
                    int whole = len > d0;
                    uint64_t num = 0;
                    for (size_t j = d0; j < len && whole; j++) {
                        int v = is_hex ? hex_value((uint32_t)name[j])
                                       : (name[j] >= '0' && name[j] <= '9' ? name[j] - '0' : -1);
                        if (v < 0) whole = 0;
                        num = num * (is_hex ? 16u : 10u) + (uint64_t)v;
                        if (num > 0x10FFFFu) num = 0x110000u; /* saturate: Python ints grow */
                    }
                    if (whole) {
                        uint32_t cp;
                        if (charref(&cp, num)) TI_TRY_GOTO(st, ti_ustr_push(out, cp, err));
                        i = k + 1;
                        continue;
                    }
                }
            }
        }
        TI_TRY_GOTO(st, ti_ustr_push(out, s[i], err));
        i++;
    }
fail:
    ti_ustr_free(&tmp);
    return st;
}

/* ==== the small fixers ======================================================================= */

/* uncurl_quotes: SINGLE_QUOTE_RE [\u02bc\u2018-\u201b] and DOUBLE_QUOTE_RE [\u201c-\u201f]. */
static uint32_t uncurl(uint32_t c) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) return '\'';
    if (c >= 0x201C && c <= 0x201F) return '"';
    return c;
}

/* fix_latin_ligatures, fix_character_width and uncurl_quotes in one pass: each replaces single
 * code points, and the later fixers also see what the earlier ones produced (ŉ -> ʼn -> 'n). */
static ti_status map_chars(struct ti_ustr *out, const uint32_t *s, size_t n, struct ti_err *err) {
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        const struct ti_umap *m = NULL;
        if (c >= 0x132 && c <= 0xFB06)
            m = ti_umap_find(ti_ftfy_ligatures, N_OF(ti_ftfy_ligatures), c);
        if (m) {
            for (int k = 0; k < m->n; k++)
                TI_TRY(ti_ustr_push(out, uncurl(m->to[k]), err));
            continue;
        }
        if (c == 0x3000 || (c >= 0xFF01 && c < 0xFFF0)) {
            m = ti_umap_find(ti_ftfy_width_map, N_OF(ti_ftfy_width_map), c);
            if (m) {
                for (int k = 0; k < m->n; k++)
                    TI_TRY(ti_ustr_push(out, uncurl(m->to[k]), err));
                continue;
            }
        }
        TI_TRY(ti_ustr_push(out, uncurl(c), err));
    }
    return TI_OK;
}

/* fix_line_breaks: CRLF, CR, U+2028, U+2029 and U+0085 become '\n'. */
static ti_status fix_line_breaks(struct ti_ustr *out, const uint32_t *s, size_t n,
                                 struct ti_err *err) {
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n') i++;
            c = '\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            c = '\n';
        }
        TI_TRY(ti_ustr_push(out, c, err));
    }
    return TI_OK;
}

static int is_control_char(uint32_t c) {
    size_t lo = 0, hi = N_OF(ti_ftfy_control_chars);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ti_ftfy_control_chars[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < N_OF(ti_ftfy_control_chars) && ti_ftfy_control_chars[lo] == c;
}

/* remove_terminal_escapes (ANSI_RE "\033\[((?:\d|;)*)([a-zA-Z])"), then remove_control_chars. */
static ti_status remove_escapes_and_controls(struct ti_ustr *out, const uint32_t *s, size_t n,
                                             struct ti_err *err) {
    out->n = 0;
    size_t i = 0;
    /* first pass: terminal escapes (they contain ESC, a control character, so do them first) */
    struct ti_ustr tmp = {0};
    ti_status st = TI_OK;
    while (i < n) {
        if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
            size_t k = i + 2;
            while (k < n && (s[k] == ';' || (ti_uprop_flags(s[k]) & TI_UP_PY_DIGIT)))
                k++;
            if (k < n && ascii_letter(s[k])) {
                i = k + 1;
                continue;
            }
        }
        TI_TRY_GOTO(st, ti_ustr_push(&tmp, s[i], err));
        i++;
    }
    for (i = 0; i < tmp.n; i++)
        if (!is_control_char(tmp.cp[i])) TI_TRY_GOTO(st, ti_ustr_push(out, tmp.cp[i], err));
fail:
    ti_ustr_free(&tmp);
    return st;
}

/* ==== fix_text =============================================================================== */

/* fix_and_explain on one segment: the fixers in ftfy's order until the text is stable. */
static ti_status fix_segment(struct ti_ustr *out, const uint32_t *s, size_t n, int html,
                             struct ti_err *err) {
    struct ti_ustr cur = {0}, nxt = {0}, orig = {0};
    ti_status st = TI_OK;
    TI_TRY_GOTO(st, ti_ustr_assign(&cur, s, n, err));
    for (int round = 0; round < MAX_ROUNDS; round++) {
        TI_TRY_GOTO(st, ti_ustr_assign(&orig, cur.cp, cur.n, err));
        if (html) {
            TI_TRY_GOTO(st, unescape_html(&nxt, cur.cp, cur.n, err));
            ustr_swap(&cur, &nxt);
        }
        TI_TRY_GOTO(st, fix_encoding(&nxt, cur.cp, cur.n, 0, err));
        ustr_swap(&cur, &nxt);
        if (any_c1(cur.cp, cur.n)) {
            TI_TRY_GOTO(st, fix_c1_controls(&nxt, cur.cp, cur.n, err));
            ustr_swap(&cur, &nxt);
        }
        TI_TRY_GOTO(st, map_chars(&nxt, cur.cp, cur.n, err));
        ustr_swap(&cur, &nxt);
        TI_TRY_GOTO(st, fix_line_breaks(&nxt, cur.cp, cur.n, err));
        ustr_swap(&cur, &nxt);
        TI_TRY_GOTO(st, remove_escapes_and_controls(&nxt, cur.cp, cur.n, err));
        ustr_swap(&cur, &nxt);
        TI_TRY_GOTO(st, ti_ustr_nfc(&nxt, cur.cp, cur.n, err));
        ustr_swap(&cur, &nxt);
        if (ti_ustr_equal(&cur, &orig)) break;
    }
    TI_TRY_GOTO(st, ti_ustr_append(out, cur.cp, cur.n, err));
fail:
    ti_ustr_free(&cur);
    ti_ustr_free(&nxt);
    ti_ustr_free(&orig);
    return st;
}

ti_status ti_text_fix(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err) {
    out->n = 0;
    int html = 1; /* unescape_html="auto": off for good once a segment contains '<' */
    size_t pos = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && in[end] != '\n')
            end++;
        end = end < n ? end + 1 : n;
        if (end - pos > MAX_DECODE_LENGTH) end = pos + MAX_DECODE_LENGTH;
        for (size_t i = pos; i < end && html; i++)
            if (in[i] == '<') html = 0;
        TI_TRY(fix_segment(out, in + pos, end - pos, html, err));
        pos = end;
    }
    return TI_OK;
}
