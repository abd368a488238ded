/*
 * tokenizer.h - what the two text tokenizers share: the 77-id model input, a common front end
 * over both (so tools and the trainer can take `--model sd|ldm`), and the vocabulary hash map.
 *
 *   SD v1 (CLIP ViT-L/14 text tower)  -> byte-level BPE, model/tokenizer_bpe.h
 *   LDM text2img-large (BERTEmbedder) -> WordPiece, bert-base-uncased, model/tokenizer_wordpiece.h
 *
 *   struct ti_tokenizer *tok = NULL;
 *   TI_TRY(ti_tokenizer_load(&tok, TI_TOKENIZER_BPE, "model/vocab/bpe_simple_vocab_16e6.txt.gz",
 *                            err));
 *   struct ti_token_ids in;
 *   TI_TRY(ti_tokenizer_encode(&in, tok, prompt, strlen(prompt), err)); // in.ids: [77]
 *   int32_t placeholder;
 *   TI_TRY(ti_tokenizer_single_token(&placeholder, tok, "*", err));     // 265 for CLIP
 *   ti_tokenizer_free(&tok);
 *
 * Not here: the text encoders that consume the ids (clip_text.c, bert_embedder.c).
 */
#ifndef TI_TOKENIZER_H
#define TI_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Context length of both text encoders: BOS/CLS + at most 75 tokens + EOS/SEP, padded. */
#define TI_TOKENS_MAX 77

/* The ids one prompt gives the text encoder (T = 77). */
struct ti_token_ids {
    int32_t ids[TI_TOKENS_MAX]; /* (T): BOS, tokens, EOS, then padding */
    int n;                      /* ids from BOS to EOS inclusive: 2..77 */
    size_t n_text;              /* tokens the text produced before truncation to 75 */
};

/* Lays out `n` text tokens the way HF tokenizers do with truncation=True, max_length=77,
 * padding="max_length": [bos] + toks[:75] + [eos] + [pad] * (75 - min(n, 75)). */
void ti_token_ids_layout(struct ti_token_ids *out, const int32_t *toks, size_t n, int32_t bos,
                         int32_t eos, int32_t pad);

/* ---- the common front end ------------------------------------------------------------------ */

enum ti_tokenizer_kind {
    TI_TOKENIZER_BPE = 0,      /* SD v1: CLIP byte-level BPE (`--model sd`) */
    TI_TOKENIZER_WORDPIECE = 1 /* LDM: BERT WordPiece, bert-base-uncased (`--model ldm`) */
};

struct ti_tokenizer; /* opaque */

/* Loads the vocabulary at `path`: the CLIP merges file (gzip or plain text) for BPE, vocab.txt
 * for WordPiece. *out is freed with ti_tokenizer_free. */
ti_status ti_tokenizer_load(struct ti_tokenizer **out, enum ti_tokenizer_kind kind,
                            const char *path, struct ti_err *err);
/* Frees *tok (NULL is fine) and sets it to NULL. */
void ti_tokenizer_free(struct ti_tokenizer **tok);
enum ti_tokenizer_kind ti_tokenizer_kind_of(const struct ti_tokenizer *tok);

/* All the text's tokens, without BOS/EOS and without truncation: *ids is malloc'ed (the caller
 * frees it; it may be NULL when *n == 0). `len` bytes of UTF-8 (ill-formed bytes: U+FFFD). */
ti_status ti_tokenizer_tokenize(int32_t **ids, size_t *n, const struct ti_tokenizer *tok,
                                const char *text, size_t len, struct ti_err *err);
/* The model input for one prompt (BOS + 75 + EOS + padding). */
ti_status ti_tokenizer_encode(struct ti_token_ids *out, const struct ti_tokenizer *tok,
                              const char *text, size_t len, struct ti_err *err);
/* Ids back to text, special ids skipped (HF decode(skip_special_tokens=True,
 * clean_up_tokenization_spaces=False)). *out is malloc'ed and NUL-terminated. */
ti_status ti_tokenizer_decode(char **out, const struct ti_tokenizer *tok, const int32_t *ids,
                              size_t n, struct ti_err *err);
/* The single-token rule (ti-peer.md §3.2) for placeholder strings and initializer words; see
 * ti_bpe_single_token and ti_wordpiece_single_token. */
ti_status ti_tokenizer_single_token(int32_t *id, const struct ti_tokenizer *tok, const char *word,
                                    struct ti_err *err);
/* The file name of each kind's vocabulary in model/vocab/ ("bpe_simple_vocab_16e6.txt.gz",
 * "bert-base-uncased-vocab.txt"). */
const char *ti_tokenizer_vocab_file(enum ti_tokenizer_kind kind);
/* The source tree's model/vocab directory, compiled in (CMake sets TI_VOCAB_DIR); tools use it
 * when no --vocab is given and no vocab/ directory sits next to the executable. */
const char *ti_tokenizer_vocab_dir(void);
/* The vocabulary a tool uses when no --vocab is given: vocab/<ti_tokenizer_vocab_file(kind)> next
 * to the running executable when that file is readable, else the same file in
 * ti_tokenizer_vocab_dir(). Writes the path (truncated to size) into buf. */
void ti_tokenizer_default_vocab(char *buf, size_t size, enum ti_tokenizer_kind kind);
/* The BOS / EOS / PAD ids of the layout (49406/49407/49407 or 101/102/0). */
void ti_tokenizer_specials(int32_t *bos, int32_t *eos, int32_t *pad,
                           const struct ti_tokenizer *tok);

/* ---- vocabulary: byte strings <-> dense ids ------------------------------------------------- */

/* Ids are added in order 0, 1, 2, ...; adding a string that is already present points the
 * string at the new id (the later id wins, as in a Python dict built from the list). */
struct ti_vocab {
    char *blob; /* all strings, NUL-separated */
    size_t blob_n, blob_cap;
    uint32_t *off; /* (n_ids): offset of each id's string in blob */
    uint32_t *len; /* (n_ids): its length in bytes */
    int32_t n_ids, cap_ids;
    int32_t *slots; /* open-addressing hash: id + 1, 0 = empty */
    uint32_t n_slots;
};

ti_status ti_vocab_add(struct ti_vocab *v, const char *s, size_t len, struct ti_err *err);
/* The id of a string, or -1. */
int32_t ti_vocab_find(const struct ti_vocab *v, const char *s, size_t len);
/* The string of an id (not NUL-terminated in general; *len gets its length). */
const char *ti_vocab_token(const struct ti_vocab *v, int32_t id, size_t *len);
void ti_vocab_free(struct ti_vocab *v);

/* Formats "a b c" (at most `max` ids, then " ...") into buf; for error messages. */
void ti_ids_format(char *buf, size_t size, const int32_t *ids, size_t n, size_t max);

#ifdef __cplusplus
}
#endif
#endif /* TI_TOKENIZER_H */
