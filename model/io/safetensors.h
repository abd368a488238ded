/*
 * safetensors.h - .safetensors files: a validating reader over a mapped file, and a writer.
 *
 * Layout: u64 N (little-endian), N bytes of JSON, then the byte buffer. The JSON object maps
 * each tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets
 * relative to the buffer) and may hold "__metadata__": {string: string}.
 *
 * The reader validates what the reference implementation does, and a bit more:
 *   N <= 100,000,000 and 8 + N <= file size; the JSON is strict (UTF-8, no duplicate keys,
 *   integers only where integers belong, nothing but spaces after the object); every tensor
 *   has a known dtype (BOOL U8 I8 I16 I32 I64 F16 BF16 F32 F64; others are refused by name),
 *   at most TI_MAX_DIMS dims, end - begin == numel * element size (overflow-checked); sorted
 *   by begin the tensors tile the buffer exactly (no gaps, no overlaps) and the last end is
 *   the end of the file. Headers that lie about any of this are refused with a message that
 *   names the tensor and both numbers.
 * Tensors are contiguous CPU views into the mapping (read-only, valid until close), except
 * the rare tensor not aligned to its element size, which is copied into aligned memory.
 *
 * The writer follows the reference writer: tensors sorted by descending element size, then
 * name, packed back to back in C order; compact JSON padded with spaces to a multiple of 8;
 * written through a temporary file renamed into place.
 *
 * Not here: mapping safetensors keys onto a model (ckpt.h), embeddings (train/embedding_io.h).
 */
#ifndef TI_SAFETENSORS_H
#define TI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_SAFETENSORS_MAX_HEADER 100000000ull

struct ti_st_tensor {
    char *name;
    struct ti_tensor t;  /* contiguous view */
    uint64_t begin, end; /* data_offsets */
};

struct ti_safetensors {
    char *name;         /* path or caller's name, for messages */
    struct ti_fmap map; /* owned mapping (open by path) */
    const uint8_t *data;
    uint64_t size;
    uint64_t header_len;          /* N */
    struct ti_st_tensor *tensors; /* sorted by name */
    size_t n;
    char **meta;   /* __metadata__: key0, value0, key1, value1, ... */
    size_t n_meta; /* pairs */
    void **owned;  /* realigned copies */
    size_t n_owned;
};

/* 1 if the bytes look like a safetensors file (u64 N within the file, then '{'). */
int ti_safetensors_sniff(const void *data, uint64_t size);

ti_status ti_safetensors_open(struct ti_safetensors **out, const char *path, struct ti_err *err);
ti_status ti_safetensors_open_mem(struct ti_safetensors **out, const void *data, uint64_t size,
                                  const char *name, struct ti_err *err);
void ti_safetensors_close(struct ti_safetensors *st);
const struct ti_st_tensor *ti_safetensors_find(const struct ti_safetensors *st, const char *name);
/* __metadata__ value, or NULL. */
const char *ti_safetensors_meta(const struct ti_safetensors *st, const char *key);

/* "F32" for TI_DTYPE_F32, ...; NULL for dtypes safetensors has no name for. */
const char *ti_safetensors_dtype_name(enum ti_dtype dt);

/* ---- writer -------------------------------------------------------------------------------- */
struct ti_st_entry {
    const char *name;
    const struct ti_tensor *t; /* CPU memory, any layout */
};

/* Writes `n` tensors and `n_meta` metadata pairs (meta[2i] = key, meta[2i+1] = value). */
ti_status ti_safetensors_write(const char *path, const struct ti_st_entry *entries, size_t n,
                               const char *const *meta, size_t n_meta, struct ti_err *err);

#ifdef __cplusplus
}
#endif
#endif /* TI_SAFETENSORS_H */
