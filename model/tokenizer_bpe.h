/*
 * tokenizer_bpe.h - the SD v1 text tokenizer: CLIP's byte-level BPE with the real merges file
 * (bpe_simple_vocab_16e6.txt.gz), giving the same ids as HF CLIPTokenizer (slow, ftfy installed)
 * as Stable Diffusion calls it: truncation=True, max_length=77, padding="max_length".
 * sd-arch.md §5.2 is the specification; the pipeline for one prompt is
 *   1. the literal strings <|startoftext|> and <|endoftext|> become 49406 / 49407 (HF splits the
 *      raw text on its special tokens first); each piece between them goes through 2-5;
 *   2. ftfy.fix_text (model/text_fix.h: HTML entities, mojibake, quotes, widths, NFC, ...);
 *   3. whitespace_clean: runs of \s -> one space, strip; then Python's str.lower();
 *   4. the split pattern <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|
 *      [\p{N}]|[^\s\p{L}\p{N}]+ (regex module, IGNORECASE; first alternative wins);
 *   5. each piece: UTF-8 bytes -> byte-level symbols, "</w>" on the last, BPE merges by rank;
 *   6. [49406] + first 75 ids + [49407] + 49407 padding to 77.
 *
 * Vocabulary (ids 0..49407): the 256 byte symbols in bytes_to_unicode order, the same with
 * "</w>", one id per merge rule (merge r -> 512 + r, rules 0..48893 of the file), BOS, EOS.
 * Loading reads the header line and the first 48,894 merge lines only (gzip via zlib, or the
 * same file uncompressed), builds hash maps for the vocabulary and the merge ranks.
 *
 * BPE applies HF's rule (repeatedly merge every non-overlapping occurrence, left to right, of
 * the adjacent pair with the lowest rank) with a heap, so a run of 100k letters costs
 * O(n log n) rather than HF's O(n^2); the result is the same.
 *
 * Invalid UTF-8 in the input is decoded as U+FFFD (see unicode.h), which is what Python would
 * hand the tokenizer after bytes.decode("utf-8", errors="replace").
 *
 * Not here: the CLIP text encoder (clip_text.c), the common front end over both tokenizers
 * (tokenizer.h), ftfy (text_fix.h). Objects are read-only after loading: one ti_bpe can serve
 * several threads.
 */
#ifndef TI_TOKENIZER_BPE_H
#define TI_TOKENIZER_BPE_H

#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_BPE_N_MERGES 48894 /* merges used: lines 1..48894 after the header (49152-256-2) */
#define TI_BPE_BOS      49406 /* <|startoftext|> */
#define TI_BPE_EOS      49407 /* <|endoftext|>: also UNK and PAD for SD */
#define TI_BPE_N_VOCAB  49408

struct ti_bpe; /* opaque */

/* Loads the merges file at `path` (gzip or plain text). Errors name the file and line. */
ti_status ti_bpe_load(struct ti_bpe **out, const char *path, struct ti_err *err);
/* Frees *bpe (NULL is fine) and sets it to NULL. */
void ti_bpe_free(struct ti_bpe **bpe);

/* All tokens of `len` bytes of UTF-8 text (steps 1-5, no BOS/EOS, no truncation). *ids is
 * malloc'ed, the caller frees it (NULL when *n == 0). */
ti_status ti_bpe_tokenize(int32_t **ids, size_t *n, const struct ti_bpe *bpe, const char *text,
                          size_t len, struct ti_err *err);
/* The 77 ids SD feeds the text encoder (steps 1-6). */
ti_status ti_bpe_encode(struct ti_token_ids *out, const struct ti_bpe *bpe, const char *text,
                        size_t len, struct ti_err *err);
/* HF CLIPTokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False):
 * BOS/EOS skipped, byte symbols joined, invalid UTF-8 -> U+FFFD, "</w>" -> " ", stripped.
 * *out is malloc'ed. Ids outside 0..49407 are an error. */
ti_status ti_bpe_decode(char **out, const struct ti_bpe *bpe, const int32_t *ids, size_t n,
                        struct ti_err *err);
/* The single-token rule of the reference trainer (ti-peer.md §3.2, get_clip_token_for_string):
 * encode `word` to 77 ids; exactly 2 of them may differ from 49407 (BOS plus the token), and the
 * token is ids[1]. Otherwise TI_ERR_INVALID with a message that names the word and the ids it
 * produced and suggests ti-tokenize. One deliberate addition: a word whose single id is BOS or
 * EOS ("<|startoftext|>", "<|endoftext|> x") passes the reference's count but would train a
 * special embedding; it is refused too. */
ti_status ti_bpe_single_token(int32_t *id, const struct ti_bpe *bpe, const char *word,
                              struct ti_err *err);

#ifdef __cplusplus
}
#endif
#endif /* TI_TOKENIZER_BPE_H */
