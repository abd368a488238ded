/*
 * weights.h - a model's named, frozen parameters: one table of (checkpoint key, shape,
 * tensor slot) built by the model constructors, one STACK arena that holds every tensor.
 *
 * Parameter names are the checkpoint keys
 * ("model.diffusion_model.input_blocks.1.0.in_layers.0.weight"), built by joining prefixes, so
 * loading is a lookup and a mismatch is reported by name.
 *
 *   struct ti_weights w;
 *   ti_weights_init(&w);
 *   TI_TRY(ti_unet_init(&unet, &hp, "model.diffusion_model.", &w, err));   // registers params
 *   TI_TRY(ti_weights_alloc(&w, be, TI_DTYPE_F32, err));                    // one allocation
 *   TI_TRY(ti_weights_load(&w, &source, err));                              // or
 * ti_weights_randomize
 *   ...
 *   ti_weights_free(&w);
 *
 * A weight source is anything that can hand out a CPU tensor view by key (a checkpoint's
 * state dict, an HDF5 fixture): the loader converts dtype and layout while copying.
 * Not here: checkpoint containers (model/io/), the modules themselves.
 */
#ifndef TI_WEIGHTS_H
#define TI_WEIGHTS_H

#include "arena.h"
#include "backend.h"

#define TI_WEIGHT_MAX_DIMS 4

struct ti_weight {
    char *key;
    int ndim;
    int64_t shape[TI_WEIGHT_MAX_DIMS];
    struct ti_tensor *slot; /* where the module keeps it */
    int optional;           /* absent from a source is fine (filled with zeros) */
};

struct ti_weights {
    struct ti_weight *items;
    int n, cap;
    struct ti_arena *arena;
    const struct ti_backend *be;
    enum ti_dtype dtype;
    int64_t numel; /* total parameters */
    /* the span declared frozen to the CPU backend after a load or randomize (cpu_info.h: it may
     * keep reordered copies of the parameters; write them only through ti_weights_load /
     * ti_weights_randomize, which declare the new values); NULL when none */
    const void *frozen;
    size_t frozen_bytes;
};

/* A place weights come from. get() fills *view with a CPU tensor (any float dtype, any strides;
 * valid until the source is closed) or returns TI_ERR_NOT_FOUND without writing an error. */
struct ti_weight_source {
    void *user;
    const char *name; /* for messages: the file */
    ti_status (*get)(void *user, const char *key, struct ti_tensor *view, struct ti_err *err);
};

void ti_weights_init(struct ti_weights *w);
void ti_weights_free(struct ti_weights *w);

/* Registers prefix+name with a shape (ndim <= 4; pass shape[] of ndim entries). */
ti_status ti_weights_add(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                         const char *name, int ndim, const int64_t *shape, struct ti_err *err);
/* Convenience for 1-D / 2-D / 4-D parameters. */
ti_status ti_weights_add1(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, struct ti_err *err);
ti_status ti_weights_add2(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, int64_t d1, struct ti_err *err);
ti_status ti_weights_add4(struct ti_weights *w, struct ti_tensor *slot, const char *prefix,
                          const char *name, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                          struct ti_err *err);

/* Allocates every registered tensor in one arena on `be` in dtype `dt`. */
ti_status ti_weights_alloc(struct ti_weights *w, const struct ti_backend *be, enum ti_dtype dt,
                           struct ti_err *err);

/* Copies every parameter from `src` (shape-checked: a mismatch names the key and both shapes;
 * a missing key is an error unless optional). */
ti_status ti_weights_load(struct ti_weights *w, const struct ti_weight_source *src,
                          struct ti_err *err);

/* Deterministic random values: unit-variance uniform values * std for matrices and kernels (std =
 * 1/sqrt(fan_in) times `gain`), norm weights 1 and biases small N(0, 0.02): a numerically sane
 * random model (activations keep unit scale through deep stacks). */
ti_status ti_weights_randomize(struct ti_weights *w, uint64_t seed, double gain,
                               struct ti_err *err);

/* Declares the weights no longer frozen, before anything trains them (unfreeze_model,
 * pretraining): the CPU backend drops its reordered copies and stops caching them, so every op
 * reads the current values. A later load or randomize freezes them again. */
void ti_weights_thaw(struct ti_weights *w);

/* Lookup by full key (NULL if absent). */
const struct ti_weight *ti_weights_find(const struct ti_weights *w, const char *key);

#endif /* TI_WEIGHTS_H */
