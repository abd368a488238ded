/*
 * fuzz_safetensors.c - libFuzzer harness: arbitrary bytes as a .safetensors file.
 *
 * Opens the input with the validating reader; whatever opens has every tensor read at its first
 * and last byte (ASan sees any view outside the file), every name looked up again, the metadata
 * queried, and the embedding extraction run on it.
 * Built with -DTI_FUZZ=ON (clang); run by scripts/fuzz.sh.
 */
#include <stdint.h>

#include "embedding_io.h"
#include "safetensors.h"

static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ti_err err = {0};
    struct ti_safetensors *st = NULL;
    if (ti_safetensors_open_mem(&st, data, size, "fuzz", &err) != TI_OK) return 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct ti_st_tensor *t = &st->tensors[i];
        if (ti_safetensors_find(st, t->name) != t) __builtin_trap();
        size_t nb = ti_tensor_nbytes(&t->t);
        if (nb != t->end - t->begin) __builtin_trap();
        if (nb) {
            const uint8_t *p = t->t.data;
            sink ^= p[0];
            sink ^= p[nb - 1];
        }
    }
    (void)ti_safetensors_meta(st, "format");
    struct ti_embedding e;
    ti_err_clear(&err);
    if (ti_embedding_from_safetensors(&e, st, "fuzz", &err) == TI_OK) ti_embedding_free(&e);
    ti_safetensors_close(st);
    return 0;
}
