/*
 * ops_internal.h - shared by the op front ends (ops_*.c) and the tape (tape.c). Not installed,
 * not for models.
 *
 * A front end follows one pattern (see ops_eltwise.c for the simplest ones):
 *   1. validate (ti_check_* below: names the op, the argument and both shapes),
 *   2. allocate the output (ti_ctx_tensor), fill a `struct ti_<op>_args`,
 *   3. TI_RUN_KERNEL(st, ctx, dtype, <op>_forward, &args),
 *   4. if ti_tape_wants(ctx, ...): node = ti_tape_record(...), copy args into node->args,
 *      set node->in_slot[i] = input.grad, and TI_NODE_KEEP() every tensor backward reads.
 * and defines `ti_<op>_tape_backward(ctx, node, dout)` which fetches gradient buffers with
 * ti_tape_grad (zeroed, contiguous, the slot's shape) and calls the backward kernel, or
 * composes the gradient from other kernels and ti_tape_accumulate.
 * Only tensors passed to ti_node_keep may be read in backward: the others may have been freed.
 */
#ifndef TI_OPS_INTERNAL_H
#define TI_OPS_INTERNAL_H

#include "context.h"
#include "tape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- args of the front-end-only ops --------------------------------------------------------- */
struct ti_scale_args {
    double alpha;
};
struct ti_concat_args {
    int dim;
    int64_t split; /* size of the first operand along dim */
};
struct ti_slice_args {
    int dim;
    int64_t start, len;
};
struct ti_reshape_args {
    int unused;
};
struct ti_permute_args {
    int perm[TI_MAX_DIMS];
};
struct ti_checkpoint_args {
    ti_block_fn fn;
    void *user;
    int n_in;
    struct ti_tensor in[TI_CHECKPOINT_MAX_IN];
};

union ti_op_args {
#define TI_KOP(NAME, name, BWD) struct ti_##name##_args name;
#define TI_FOP(NAME, name)      struct ti_##name##_args name;
#include "ops.def"
#undef TI_KOP
#undef TI_FOP
};

#define TI_NODE_MAX_IN   4
#define TI_NODE_MAX_KEPT 10

struct ti_node {
    enum ti_op op;
    int32_t out_slot;
    int32_t in_slot[TI_NODE_MAX_IN]; /* gradient slots of the inputs, -1 = none */
    int nkept;
    uint16_t kept_off[TI_NODE_MAX_KEPT]; /* byte offsets of retained tensors inside args */
    union ti_op_args args;
};

/* Backward rule of each op: reads node->args (kept tensors only) and dout (contiguous, the
 * output's shape), adds into the input slots. */
typedef ti_status (*ti_node_backward_fn)(struct ti_ctx *ctx, struct ti_node *node,
                                         const struct ti_tensor *dout);
#define TI_KOP(NAME, name, BWD)                                                                    \
    ti_status ti_##name##_tape_backward(struct ti_ctx *ctx, struct ti_node *node,                  \
                                        const struct ti_tensor *dout);
#define TI_FOP(NAME, name) TI_KOP(NAME, name, 0)
#include "ops.def"
#undef TI_KOP
#undef TI_FOP

/* ---- tape hooks for front ends --------------------------------------------------------------- */
/* True when ctx records and any of the n inputs (NULL entries ignored) has a gradient slot. */
int ti_tape_wants(const struct ti_ctx *ctx, int n, const struct ti_tensor *const *inputs);
/* Appends a node for `op`, gives *out a new gradient slot (out->grad) and returns the node
 * (args zeroed, in_slot all -1). The node pointer is valid until the next record. */
ti_status ti_tape_record(struct ti_ctx *ctx, enum ti_op op, struct ti_tensor *out,
                         struct ti_node **node);
/* Shape, dtype and device of the tensor that owns a slot (data NULL), or NULL if slot < 0. */
const struct ti_tensor *ti_tape_slot_meta(const struct ti_ctx *ctx, int32_t slot);
/* Retains a tensor field of node->args so backward may read it. TI_ERR_INTERNAL (naming the op)
 * when the node already keeps TI_NODE_MAX_KEPT tensors, `field` is not inside node->args or is
 * kept already: a
 * bug in the op's front end, reported rather than dropping the tensor, which backward would
 * then read after it was freed. On error nothing is retained; the node stays on the tape and is
 * released with it. */
ti_status ti_node_keep(struct ti_ctx *ctx, struct ti_node *node, struct ti_tensor *field);
/* A front end's chain of keeps: st = ti_node_keep(...) unless st already holds an error. */
#define TI_NODE_KEEP(st, ctx, node, field)                                                         \
    do {                                                                                           \
        if ((st) == TI_OK) (st) = ti_node_keep((ctx), (node), (field));                            \
    } while (0)
/* The gradient buffer of a slot (zero-filled on first use; contiguous; slot's shape), or
 * ti_tensor_none() when slot < 0. Owned by the tape: do not release. */
ti_status ti_tape_grad(struct ti_ctx *ctx, int32_t slot, struct ti_tensor *g);
/* grad[slot] += alpha * contrib (contrib: the slot's shape, any strides). No-op if slot < 0. */
ti_status ti_tape_accumulate(struct ti_ctx *ctx, int32_t slot, const struct ti_tensor *contrib,
                             double alpha);

/* ---- kernel calls ---------------------------------------------------------------------------- */
/* Finishes a kernel call: rewinds scratch, optionally syncs, adds the op name to an error. */
ti_status ti_kernel_finish(struct ti_ctx *ctx, size_t scratch_mark, ti_status st, const char *slot);
ti_status ti_kernel_missing(struct ti_ctx *ctx, const char *slot, enum ti_dtype dt);

/* st = ctx->be->k[dt].slot(&ctx->k, argsp), with the checks above. */
#define TI_RUN_KERNEL(st, ctx, dt, slot, argsp)                                                    \
    do {                                                                                           \
        if ((ctx)->be->k[(dt)].slot == NULL) {                                                     \
            (st) = ti_kernel_missing((ctx), #slot, (dt));                                          \
        } else {                                                                                   \
            size_t ti_mark_ = ti_arena_mark((ctx)->scratch);                                       \
            (st) = ti_kernel_finish((ctx), ti_mark_, (ctx)->be->k[(dt)].slot(&(ctx)->k, (argsp)),  \
                                    #slot);                                                        \
        }                                                                                          \
    } while (0)

/* ---- validation helpers (each names the op and the argument in its message) ------------------ */
/* t present, float dtype, on ctx's device. */
ti_status ti_check_float(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t);
/* t present, dtype dt, on ctx's device. */
ti_status ti_check_dtype(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t, enum ti_dtype dt);
/* t has exactly ndim dims; sizes < 0 in `shape` are wildcards. */
ti_status ti_check_shape(struct ti_ctx *ctx, const char *op, const char *arg,
                         const struct ti_tensor *t, int ndim, const int64_t *shape);
/* The stat dtype for an op dtype: f64 for f64, else f32. */
enum ti_dtype ti_stat_dtype(enum ti_dtype dt);
/* A front end's last step: on success moves the output o into *out, otherwise releases it;
 * returns st. */
ti_status ti_op_result(ti_status st, struct ti_tensor *o, struct ti_tensor *out);

#ifdef __cplusplus
}
#endif
#endif /* TI_OPS_INTERNAL_H */
