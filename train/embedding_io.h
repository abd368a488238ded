/*
 * embedding_io.h - textual-inversion embedding files: every format other tools write, read
 * into one small in-memory model; written in the formats other tools load.
 *
 *   struct ti_embedding emb;
 *   TI_TRY(ti_embedding_read(&emb, "cat-toy.pt", err));          // any format below
 *   TI_TRY(ti_embedding_check_width(&emb, 768, err));             // SD v1 text width
 *   TI_TRY(ti_embedding_write(&emb, "out.pt", TI_EMB_A1111, err));
 *   ti_embedding_free(&emb);
 *
 * Formats read (detected by content: torch zip/legacy, or safetensors):
 *   a1111      {string_to_token: {'*': 265}, string_to_param: {'*': [n, dim]}, name, step,
 *              sd_checkpoint, sd_checkpoint_name}; f32, f16 or bf16 (also f64)
 *   peer       rinongal's EmbeddingManager.save: {string_to_token: {s: 0-d int64 tensor},
 *              string_to_param: nn.ParameterDict or dict {s: Parameter [n, dim]}}; any storage
 *              location (cuda:0); several terms (ti-merge / merge_embeddings.py output)
 *   diffusers  learned_embeds.bin / .safetensors: {token: [n, dim]} or the old 1-D [dim]
 *   kohya      {emb_params: [n, dim]} (.pt or .safetensors)
 * SDXL files (clip_l + clip_g) are refused with a message saying so. The term's placeholder is
 * the file's key ('*' for a1111 and kohya files: A1111 uses the file name as the trigger, so
 * `name` is the file stem when the file has none); token is the file's id or -1.
 *
 * Formats written (always float32 on disk, through a temporary file renamed into place, so a
 * failed write leaves nothing behind):
 *   TI_EMB_A1111 (the default) exactly one term, the a1111 layout above with key '*', written
 *              with only the opcodes and globals torch.load(weights_only=True) accepts on torch
 *              1.13 and later (pt-format.md §4.4: BININT for step, no floats or bytes),
 *              64-byte aligned records with correct CRC-32, archive folder = file stem
 *   TI_EMB_PEER  {string_to_token: {s: 0-d int64}, string_to_param: nn.ParameterDict}, as
 *              torch 1.13 pickles it, which the original EmbeddingManager.load (plain
 *              torch.load) accepts; several terms allowed; each term needs a token id (a
 *              placeholder '*' without one gets 265, the CLIP id of '*')
 *   TI_EMB_DIFFUSERS  learned_embeds.safetensors {placeholder: [n, dim]} with metadata
 *              format=pt; exactly one term; a folder as the path writes
 *              <folder>/learned_embeds.safetensors
 *
 * Not here: the tokenizer (placeholder -> token id), the text encoder that consumes the vectors.
 */
#ifndef TI_EMBEDDING_IO_H
#define TI_EMBEDDING_IO_H

#include <stdint.h>

#include "safetensors.h"
#include "status.h"
#include "torchfile.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_EMB_MAX_VECTORS 4096
#define TI_EMB_MAX_DIM     65536
/* all terms together: 64M floats (256 MB). Real files hold a few thousand; the bound keeps a
 * file of many stride-0 views of one small storage from asking for terabytes. */
#define TI_EMB_MAX_ELEMS (1 << 26)

enum ti_embedding_format {
    TI_EMB_UNKNOWN = 0,
    TI_EMB_A1111,
    TI_EMB_PEER,
    TI_EMB_DIFFUSERS,
    TI_EMB_KOHYA
};

struct ti_embedding_term {
    char *placeholder; /* "*", "<cat-toy>", ... */
    int64_t token;     /* tokenizer id, -1 if the file does not say */
    int n_vectors, dim;
    float *vectors; /* n_vectors x dim, row-major */
};

struct ti_embedding {
    char *source;                    /* the file it was read from (NULL when built in memory) */
    char *name;                      /* a1111 `name`, else the file stem; may be NULL when built */
    int64_t step;                    /* -1: none */
    char *sd_checkpoint;             /* or NULL */
    char *sd_checkpoint_name;        /* or NULL */
    enum ti_embedding_format format; /* the format it was read from */
    enum ti_dtype file_dtype;        /* dtype of the vectors in the file */
    int n_terms;
    struct ti_embedding_term *terms;
};

void ti_embedding_init(struct ti_embedding *emb);
void ti_embedding_free(struct ti_embedding *emb);
/* Copies the vectors. */
ti_status ti_embedding_add_term(struct ti_embedding *emb, const char *placeholder, int64_t token,
                                int n_vectors, int dim, const float *vectors, struct ti_err *err);
/* Replaces name / sd_checkpoint / sd_checkpoint_name (NULL clears) and step. */
ti_status ti_embedding_set_meta(struct ti_embedding *emb, const char *name, int64_t step,
                                const char *sd_checkpoint, const char *sd_checkpoint_name,
                                struct ti_err *err);

ti_status ti_embedding_read(struct ti_embedding *emb, const char *path, struct ti_err *err);
/* The same with torchfile.h flags: TI_TORCH_ALLOW_UNKNOWN_GLOBALS keeps pickle globals outside
 * the allowlist inert instead of refusing the file (the tools' --allow-unknown-globals). */
ti_status ti_embedding_read_flags(struct ti_embedding *emb, const char *path, unsigned flags,
                                  struct ti_err *err);
/* From an open torch file / safetensors file; `stem` names an unnamed embedding. */
ti_status ti_embedding_from_torch(struct ti_embedding *emb, const struct ti_torchfile *tf,
                                  const char *stem, struct ti_err *err);
ti_status ti_embedding_from_safetensors(struct ti_embedding *emb, const struct ti_safetensors *st,
                                        const char *stem, struct ti_err *err);

ti_status ti_embedding_write(const struct ti_embedding *emb, const char *path,
                             enum ti_embedding_format format, struct ti_err *err);

/* Every term's width is expected_dim, else e.g. "embedding 'x.pt' has vectors of width 1024
 * (SD 2.x); this model expects 768 (SD v1)". */
/* How messages name an embedding: the file it was read from, else its name, else
 * "(embedding)". */
const char *ti_embedding_label(const struct ti_embedding *emb);
ti_status ti_embedding_check_width(const struct ti_embedding *emb, int expected_dim,
                                   struct ti_err *err);
/* TI_ERR_INVALID naming the file and placeholder when a vector holds NaN or an infinity (a run
 * that diverged): such a word makes every image black. */
ti_status ti_embedding_check_finite(const struct ti_embedding *emb, struct ti_err *err);

const char *ti_embedding_format_name(enum ti_embedding_format f);
/* "a1111", "peer", "diffusers", "kohya" -> format; TI_EMB_UNKNOWN otherwise. */
enum ti_embedding_format ti_embedding_format_parse(const char *s);
/* "SD v1" for 768, "SD 2.x" for 1024, "LDM text2img-large" for 1280, else "unknown model". */
const char *ti_embedding_width_name(int dim);
/* The tokenizer a width implies: 1 CLIP (SD: 768, 1024), 0 BERT (LDM: 1280), -1 unknown (the
 * tiny models' widths say nothing). */
int ti_embedding_width_is_clip(int dim);

#ifdef __cplusplus
}
#endif
#endif /* TI_EMBEDDING_IO_H */
