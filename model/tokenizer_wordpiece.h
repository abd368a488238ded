/*
 * tokenizer_wordpiece.h - the LDM text2img-large tokenizer: BERT WordPiece with the
 * bert-base-uncased vocab.txt, giving the same ids as HF BertTokenizerFast (the tokenizer the
 * reference BERTEmbedder uses) called with truncation=True, max_length=77, padding="max_length".
 * sd-arch.md §6.1 is the specification; the pipeline for one prompt is
 *   1. the literal special tokens [PAD] [UNK] [CLS] [SEP] [MASK] become their ids (tokenizers'
 *      added vocabulary splits the raw text first); the pieces between them go through 2-4;
 *   2. BertNormalizer: drop NUL, U+FFFD and control characters (C*, not \t \n \r), whitespace
 *      -> ' ', spaces around CJK ideographs, NFD, drop Mn (strip accents), lower-case;
 *   3. BertPreTokenizer: split on whitespace, every punctuation character is its own word;
 *   4. WordPiece: a word of more than 100 code points is [UNK]; else greedy longest match from
 *      the left, continuation pieces prefixed "##"; if some position matches nothing, the whole
 *      word is one [UNK];
 *   5. [CLS] + first 75 ids + [SEP] + [PAD]=0 padding to 77.
 * The Rust crates inside `tokenizers` carry an older Unicode version than Python; the character
 * classes are Python's with the measured differences as overrides (model/unicode_tables.c:
 * e.g. unassigned code points are kept, U+2028/U+2029 are whitespace, Mn characters newer than
 * the crates are kept). Lower-casing is per code point (Rust char::to_lowercase), so a final
 * capital sigma becomes σ, not ς as Python's str.lower() would give (the slow BertTokenizer).
 *
 * Vocabulary: id = 0-based line number of vocab.txt, the line without its "\n" (as HF's
 * load_vocab, universal newlines); a repeated line points at its later id. Ill-formed UTF-8 in
 * the input becomes U+FFFD, which the normalizer then drops (as tokenizers-rs does).
 *
 * Not here: the BERT encoder (bert_embedder.c), the common front end (tokenizer.h). Objects are
 * read-only after loading: one ti_wordpiece can serve several threads.
 */
#ifndef TI_TOKENIZER_WORDPIECE_H
#define TI_TOKENIZER_WORDPIECE_H

#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_WORDPIECE_MAX_CHARS 100 /* max_input_chars_per_word */

struct ti_wordpiece; /* opaque */

/* Loads vocab.txt at `path`; it must contain [PAD], [UNK], [CLS], [SEP] and [MASK] lines. */
ti_status ti_wordpiece_load(struct ti_wordpiece **out, const char *path, struct ti_err *err);
/* Frees *wp (NULL is fine) and sets it to NULL. */
void ti_wordpiece_free(struct ti_wordpiece **wp);

/* All tokens of `len` bytes of UTF-8 text (steps 1-4, no CLS/SEP, no truncation). *ids is
 * malloc'ed, the caller frees it (NULL when *n == 0). */
ti_status ti_wordpiece_tokenize(int32_t **ids, size_t *n, const struct ti_wordpiece *wp,
                                const char *text, size_t len, struct ti_err *err);
/* The 77 ids the LDM BERTEmbedder sees (steps 1-5). */
ti_status ti_wordpiece_encode(struct ti_token_ids *out, const struct ti_wordpiece *wp,
                              const char *text, size_t len, struct ti_err *err);
/* BertTokenizerFast.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
 * the five special ids skipped, tokens joined by spaces, "##" pieces glued to the previous
 * token, and the WordPiece decoder's own clean-up (" ." -> "." ...). *out is malloc'ed. */
ti_status ti_wordpiece_decode(char **out, const struct ti_wordpiece *wp, const int32_t *ids,
                              size_t n, struct ti_err *err);
/* The single-token rule of the reference trainer (ti-peer.md §3.2, get_bert_token_for_string):
 * encode `word` to 77 ids; exactly 3 of them may be non-zero ([CLS], the token, [SEP]) and the
 * token is ids[1]. Otherwise TI_ERR_INVALID naming the word, the ids, and ti-tokenize. One
 * deliberate addition: a word whose single id is a special token ([UNK] for an unknown
 * character such as an emoji, or a literal "[MASK]") passes the reference's count but would
 * train a shared special embedding; it is refused too. */
ti_status ti_wordpiece_single_token(int32_t *id, const struct ti_wordpiece *wp, const char *word,
                                    struct ti_err *err);
/* [CLS], [SEP] and [PAD] ids (101, 102, 0 for bert-base-uncased). */
void ti_wordpiece_specials(int32_t *cls, int32_t *sep, int32_t *pad, const struct ti_wordpiece *wp);

#ifdef __cplusplus
}
#endif
#endif /* TI_TOKENIZER_WORDPIECE_H */
