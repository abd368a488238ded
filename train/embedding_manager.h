/*
 * embedding_manager.h - the peer's EmbeddingManager (ti-peer.md §3): the placeholder words, their
 * trainable vectors, and the substitution of those vectors into a prompt.
 *
 * ti does not substitute embeddings after the lookup as the peer does; it rewrites the prompt's
 * token ids instead: every placeholder position gets the index -1-row, which the embedding op
 * (autograd/ops.h ti_embedding) reads from the trainable `rows` tensor instead of the frozen token
 * table. Positions are added after the lookup in both text encoders, so this is the same
 * computation, gradients included.
 *
 *   Training (ti-train):
 *     struct ti_emb_manager em;
 *     TI_TRY(ti_emb_manager_from_config(&em, cfg, tok, &model.text, seed, err));
 *     int32_t idx[B * 77];
 *     TI_TRY(ti_emb_manager_batch_ids(&em, tok, captions, B, idx, 77, err));  // one forward call
 *     ... rows tensor (em.n_rows, em.dim) <- em.rows; ti_text_encoder_forward(..., &rows) ...
 *     ti_emb_manager_free(&em);
 *   Sampling (ti-sample):
 *     ti_emb_manager_init(&em, 768, 1);
 *     TI_TRY(ti_emb_manager_add_file(&em, &emb, tok, err));   // every term of every file
 *     TI_TRY(ti_emb_manager_prompt_ids(&em, tok, prompt, idx, 77, err));
 *
 * The rules, as the peer has them:
 *   - single-token rule: every placeholder and initializer word must be one token of the model's
 *     tokenizer; otherwise an error with the peer's text ("String 'x' maps to more than a single
 *     token. Please use another string") and what the word splits into.
 *   - init vector: the token-embedding row of the init word; for CLIP plus the position-0
 *     embedding (the peer calls the patched CLIPTextEmbeddings on a length-1 sequence), repeated
 *     num_vectors_per_token times. Without an init word: U[0,1) (torch.rand), from `seed` (ti's
 *     xoshiro generator: the numbers differ from PyTorch's).
 *     Where ti differs (docs/TRAINING.md): an init text of m > 1 tokens is accepted when
 *     num_vectors_per_token >= m, spread over the vectors as AUTOMATIC1111 does (vector i is
 *     token floor(i*m/N)); the peer refuses every multi-token init word.
 *   - substitution: with num_vectors_per_token == 1 every occurrence becomes the term's one row;
 *     otherwise each occurrence (right to left) is replaced by k rows, shifting the rest of the
 *     prompt right and truncating it to seq_len (tail tokens, EOS included, fall off), with
 *     k = min(n_vectors, 1 + counter // 2000) under progressive_words (the counter counts once
 *     per encoder call per placeholder, before the occurrence search, whether or not the prompt
 *     holds the word) and k = min(n_vectors, num_vectors_per_token) otherwise.
 *   - embedding_manager_ckpt replaces the terms wholesale with the file's (the init vectors of
 *     the config stay, for placeholders the file keeps with the same vector count).
 *
 * Memory: everything is malloc'ed and freed by ti_emb_manager_free. Not here: the optimizer and
 * the training step (trainer.h), file formats (embedding_io.h).
 */
#ifndef TI_EMBEDDING_MANAGER_H
#define TI_EMBEDDING_MANAGER_H

#include <stdint.h>

#include "config.h"       /* defines: struct ti_config */
#include "embedding_io.h" /* defines: struct ti_embedding */
#include "text_encoder.h" /* defines: struct ti_text_encoder */
#include "tokenizer.h"    /* defines: struct ti_tokenizer */

#ifdef __cplusplus
extern "C" {
#endif

/* The peer's PROGRESSIVE_SCALE: one more vector every 2000 encoder calls. */
#define TI_EMB_PROGRESSIVE_SCALE 2000

struct ti_emb_term {
    char *placeholder;  /* "*" */
    int32_t token;      /* its tokenizer id (265 for "*" with CLIP) */
    int n_vectors;      /* rows of this term */
    int row0;           /* its first row in ti_emb_manager.rows */
    const char *source; /* where it came from: a file path, or "config"; owned by the manager */
    int has_init;       /* init_rows holds this term's init vectors (the regulariser uses it) */
};

struct ti_emb_manager {
    int dim, is_clip, n_terms;
    struct ti_emb_term *terms;
    int n_rows;
    float *rows;      /* (n_rows, dim) host f32: every term's vectors, term after term */
    float *init_rows; /* same layout: the init-word vectors (regulariser), or NULL */
    /* 1: the peer's simple replacement; > 1: multi-vector insertion with at most this many
     * vectors; 0 (a manager made by ti_emb_manager_init): each term's own vector count */
    int num_vectors_per_token, progressive_words;
    int64_t progressive_counter;
};

/* Training: placeholders / init words / num_vectors / progressive from cfg->personalization;
 * init vector = token_emb row (+ pos_emb[0] for CLIP, the peer's quirk), random U[0,1) without
 * an init word (seeded); then embedding_manager_ckpt when set. Errors name the config key and
 * the word. `te` may live on any backend and dtype (its rows are read back as f32). With te
 * NULL nothing is read from a model: the same checks of the words and the file (ti-train
 * --dry_run), with zero init vectors. */
ti_status ti_emb_manager_from_config(struct ti_emb_manager *em, const struct ti_config *cfg,
                                     const struct ti_tokenizer *tok,
                                     const struct ti_text_encoder *te, uint64_t seed,
                                     struct ti_err *err);

/* The reference substitutes a term at its stored token id, whatever its key: a term keyed '*'
 * (the AUTOMATIC1111 layout, ti-train's default output) whose stored id is another word of this
 * tokenizer, one token on its own ('sks' after --placeholder_string sks), is renamed to that
 * word. A stored id of '*' itself (what AUTOMATIC1111 writes), none, or an id that is no whole
 * word leaves the key. Returns how many terms were renamed; note (cap bytes) then gets a
 * sentence naming the file, the word and the id, else "". */
int ti_embedding_words_from_tokens(struct ti_embedding *emb, const struct ti_tokenizer *tok,
                                   char *note, size_t cap);

/* Sampling: an empty manager of width dim (num_vectors_per_token 0: each term's own count). */
void ti_emb_manager_init(struct ti_emb_manager *em, int dim, int is_clip);
/* Adds every term of a file (ti_embedding_read): the placeholder must be one token (the file's
 * stored id is not trusted), the width must be dim, and a placeholder (or token) defined twice
 * is an error naming both sources. */
ti_status ti_emb_manager_add_file(struct ti_emb_manager *em, const struct ti_embedding *emb,
                                  const struct ti_tokenizer *tok, struct ti_err *err);

/* prompt -> the text encoder's index row (seq_len entries, seq_len == 77): token ids, with every
 * placeholder token replaced by -1-row (the embedding op's convention for trainable rows),
 * multi-vector terms expanded as the peer does (right to left, truncated to seq_len), progressive
 * words counted (one encoder call). */
ti_status ti_emb_manager_prompt_ids(struct ti_emb_manager *em, const struct ti_tokenizer *tok,
                                    const char *prompt, int32_t *idx, int seq_len,
                                    struct ti_err *err);
/* The same for a batch of n prompts given to the encoder in ONE call (the peer counts
 * progressive words once per call, not once per prompt): idx (n, seq_len). */
ti_status ti_emb_manager_batch_ids(struct ti_emb_manager *em, const struct ti_tokenizer *tok,
                                   const char *const *prompts, int n, int32_t *idx, int seq_len,
                                   struct ti_err *err);
/* The substitution alone, on already tokenized rows (n, seq_len) of ids (no negative entries):
 * what batch_ids does after tokenizing. Counts one encoder call. */
void ti_emb_manager_substitute(struct ti_emb_manager *em, int32_t *idx, int n, int seq_len);

/* The peer's embedding_to_coarse_loss().mean(): sum over terms with init vectors of
 * mean_{i,j}((p - p0)(p - p0)^T) / n_init_terms (0 when no term has one). When grad is not NULL,
 * weight * d loss / d rows is ADDED to it ((n_rows, dim) host f32). */
double ti_emb_manager_reg_loss(const struct ti_emb_manager *em, double weight, float *grad);

/* A copy of the terms (placeholder, token, vectors) as an embedding file model; name/step unset
 * (ti_embedding_set_meta). The caller frees *out with ti_embedding_free. */
ti_status ti_emb_manager_to_embedding(const struct ti_emb_manager *em, struct ti_embedding *out,
                                      struct ti_err *err);
/* The term of a placeholder string, or NULL. */
const struct ti_emb_term *ti_emb_manager_find(const struct ti_emb_manager *em,
                                              const char *placeholder);
/* The term whose token is `token`, or NULL. */
const struct ti_emb_term *ti_emb_manager_find_token(const struct ti_emb_manager *em, int32_t token);
/* How many vectors an occurrence of t takes in a prompt (the substitution rule above, progressive
 * words aside): 1 with num_vectors_per_token 1, else min(its vectors, num_vectors_per_token),
 * its own count when that is 0 (sampling). */
int ti_emb_manager_term_vectors(const struct ti_emb_manager *em, const struct ti_emb_term *t);
void ti_emb_manager_free(struct ti_emb_manager *em);

#ifdef __cplusplus
}
#endif
#endif /* TI_EMBEDDING_MANAGER_H */
