/*
 * fuzz_pickle.c - libFuzzer harness: arbitrary bytes as one or more pickles.
 *
 * Runs the safe unpickler over the input (pickle after pickle, as a legacy torch file holds
 * several), binds every storage to a buffer of exactly the declared size (or, for every other
 * storage, one byte short, which must be refused), then walks the tree: tensors are read at
 * their first and last element, so a view that escapes its storage shows up under ASan; dict
 * lookups and ParameterDict unwrapping run on the root.
 * Built with -DTI_FUZZ=ON (clang); run by scripts/fuzz.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

static volatile uint8_t sink;

static ti_status on_tensor(void *ud, const char *path, const struct ti_py *v, struct ti_err *err) {
    (void)ud, (void)err;
    const struct ti_tensor *t = &v->u.tensor.t;
    sink ^= (uint8_t)path[0];
    int64_t n = ti_tensor_numel(t);
    if (n <= 0) return TI_OK;
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++)
        last += (t->shape[d] - 1) * t->stride[d];
    const uint8_t *p = t->data;
    size_t es = ti_dtype_size(t->dtype);
    sink ^= p[0];
    sink ^= p[last * (int64_t)es + (int64_t)es - 1];
    return TI_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ti_err err = {0};
    struct ti_pickle *pk = NULL;
    if (ti_pickle_new(&pk, "fuzz", &err) != TI_OK) return 0;
    size_t pos = 0;
    struct ti_py *root = NULL, *last = NULL;
    for (int k = 0; k < 8 && pos < size; k++) {
        size_t used = 0;
        ti_err_clear(&err);
        if (ti_pickle_run(pk, data + pos, size - pos, &used, &root, &err) != TI_OK) break;
        last = root;
        pos += used;
    }
    void *bufs[64];
    int nb = 0, short_one = 0;
    for (struct ti_py_storage *s = ti_pickle_storages(pk); s && nb < 64; s = s->next) {
        uint64_t need = s->numel * ti_dtype_size(s->dtype);
        if (need > (1u << 20)) break; /* leave big ones unbound: binding must refuse */
        uint64_t give = (nb & 1) && need ? need - 1 : need;
        short_one |= give < need;
        bufs[nb] = malloc(give ? (size_t)give : 1);
        memset(bufs[nb], 0x5a, give ? (size_t)give : 1);
        s->data = bufs[nb++];
        s->nbytes = give;
    }
    ti_err_clear(&err);
    if (last && ti_pickle_bind_tensors(pk, &err) == TI_OK) {
        if (short_one) __builtin_trap(); /* a short storage must never bind */
        (void)ti_pickle_walk_tensors(pk, last, on_tensor, NULL, &err);
    }
    if (last) {
        (void)ti_py_dict_get(last, "state_dict");
        (void)ti_py_unwrap_module(ti_py_dict_get(last, "string_to_param"));
        for (size_t i = 0; i < ti_py_dict_len(last); i++)
            sink ^= (uint8_t)ti_py_dict_key(last, i)->kind;
    }
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    ti_pickle_free(pk);
    return 0;
}
