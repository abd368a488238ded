/*
 * text_fix.h - a C port of ftfy 6.3.1's fix_text() with its default configuration: the text
 * clean-up HF CLIPTokenizer runs on every prompt before byte-level BPE (sd-arch.md §5.2 step 2).
 *
 *   struct ti_ustr fixed = {0};
 *   TI_TRY(ti_text_fix(&fixed, text.cp, text.n, err));
 *
 * What fix_text does, in ftfy's order, to each line (segment ending in '\n'), repeated until the
 * line stops changing:
 *   1. unescape_html - "&amp;", "&eacute;", "&#233;", "&#xE9;" and the upper-case forms ftfy
 *      accepts ("&EACUTE;"): only complete entities that end in ';' (the full HTML5 list). Once a
 *      line contains '<', this step is off for that line and every later line (ftfy's "auto").
 *   2. fix_encoding - mojibake repair: when the text looks like mis-decoded UTF-8 (ftfy's
 *      badness heuristic, ti_text_is_mojibake), re-encode it with latin-1, the sloppy Windows
 *      code pages 1252/1251/1250/1253/1254/1257, ISO-8859-2, MacRoman or cp437 and decode as
 *      UTF-8 (with ftfy's restore_byte_a0 / replace_lossy_sequences / utf-8-variants repairs);
 *      else fix embedded mojibake runs, then latin-1 vs windows-1252, then lone C1 controls.
 *   3. fix_c1_controls (U+0080..U+009F as windows-1252), fix_latin_ligatures ("ﬁ" -> "fi"),
 *      fix_character_width (full-width ASCII, half-width katakana, U+3000 -> ' '),
 *      uncurl_quotes (‘’‛ ʼ -> ', “”„‟ -> "), fix_line_breaks (CRLF, CR, U+2028, U+2029, U+0085
 *      -> '\n'), remove_terminal_escapes (ESC [ digits/; letter), remove_control_chars
 *      (C0 controls but \t \n \f \r, DEL, U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC).
 *   4. NFC normalisation.
 * Lines longer than 1,000,000 code points are cut there, as ftfy's max_decode_length does.
 *
 * Deviations from ftfy (by construction, none on text a Python str can hold):
 *   - fix_surrogates is not needed: a ti_ustr decoded from UTF-8 holds no surrogates, and no
 *     step here creates one (ftfy's own codecs never emit them either).
 *   - The repeat-until-stable loops (and the recursion of embedded-mojibake repair) stop after
 *     64 rounds, where ftfy has no bound; real text settles after two or three.
 *
 * Not here: whitespace clean-up and lower-casing (tokenizer_bpe.c does those after fix_text),
 * ftfy's other entry points (fix_file, guess_bytes, explanations), configurable fixers.
 */
#ifndef TI_TEXT_FIX_H
#define TI_TEXT_FIX_H

#include "unicode.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ftfy.fix_text(text) with the default TextFixerConfig. `out` must not alias `in`. */
ti_status ti_text_fix(struct ti_ustr *out, const uint32_t *in, size_t n, struct ti_err *err);

/* ftfy.badness.is_bad(text): 1 when the text contains a character sequence that is much more
 * likely UTF-8 mojibake than intended text. */
int ti_text_is_mojibake(const uint32_t *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* TI_TEXT_FIX_H */
