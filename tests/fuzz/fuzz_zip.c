/*
 * fuzz_zip.c - libFuzzer harness: arbitrary bytes as a torch file.
 *
 * Runs the zip reader (every record read, inflated and CRC-checked), then the whole torch
 * container path on the same bytes (zip or legacy, the safe unpickler, storage binding) and the
 * embedding extraction on whatever opened. Every tensor view is read at its first and last
 * element, so a bounds check that lets a view past its storage shows up under ASan.
 * Built with -DTI_FUZZ=ON (clang); run by scripts/fuzz.sh.
 */
#include <stdint.h>
#include <stdlib.h>

#include "embedding_io.h"
#include "torchfile.h"
#include "zip.h"

static volatile uint8_t sink;

static void touch(const struct ti_tensor *t) {
    int64_t n = ti_tensor_numel(t);
    if (n <= 0) return;
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++)
        last += (t->shape[d] - 1) * t->stride[d];
    const uint8_t *p = t->data;
    size_t es = ti_dtype_size(t->dtype);
    sink ^= p[0];
    sink ^= p[last * (int64_t)es + (int64_t)es - 1];
}

static ti_status on_tensor(void *ud, const char *path, const struct ti_py *v, struct ti_err *err) {
    (void)ud, (void)path, (void)err;
    touch(&v->u.tensor.t);
    return TI_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ti_err err = {0};
    struct ti_zip z;
    if (ti_zip_open(&z, data, size, "fuzz", &err) == TI_OK) {
        for (size_t i = 0; i < z.n; i++) {
            const uint8_t *d;
            void *owned;
            ti_err_clear(&err);
            (void)ti_zip_check_crc(&z, &z.recs[i], &err);
            if (ti_zip_read(&z, &z.recs[i], &d, &owned, &err) == TI_OK && z.recs[i].size)
                sink ^= d[z.recs[i].size - 1];
            free(owned);
        }
        (void)ti_zip_find(&z, "archive/data.pkl");
        ti_zip_close(&z);
    }
    struct ti_torchfile *tf = NULL;
    ti_err_clear(&err);
    if (ti_torchfile_open_mem(&tf, data, size, "fuzz", TI_TORCH_VERIFY_CRC, &err) == TI_OK) {
        (void)ti_pickle_walk_tensors(tf->pk, tf->root, on_tensor, NULL, &err);
        struct ti_embedding e;
        ti_err_clear(&err);
        if (ti_embedding_from_torch(&e, tf, "fuzz", &err) == TI_OK) {
            (void)ti_embedding_check_width(&e, 768, &err);
            ti_embedding_free(&e);
        }
        ti_torchfile_close(tf);
    }
    return 0;
}
