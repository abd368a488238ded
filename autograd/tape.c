/*
 * tape.c - the reverse-mode tape (see tape.h): nodes, gradient slots, backward walk,
 * recomputation (ti_checkpoint).
 */
#include "tape.h"

#include <stddef.h> /* defines: offsetof */
#include <stdlib.h> /* defines: realloc, free, calloc */
#include <string.h> /* defines: memset */

#include "ops_internal.h" /* defines: struct ti_node, union ti_op_args, backward rules */

struct slot {
    struct ti_tensor meta; /* shape, dtype, device of the tensor (data NULL) */
    struct ti_tensor grad; /* accumulated gradient or none */
    int watched;           /* grad is the caller's buffer: never released */
};

struct ti_tape {
    struct ti_node *nodes;
    int nnodes, cap_nodes;
    struct slot *slots;
    int nslots, cap_slots;
    int walking_from; /* index below which a nested (checkpoint) walk must stop */
};

static const ti_node_backward_fn backward_rules[TI_OP_COUNT] = {
#define TI_KOP(NAME, name, BWD) [TI_OP_##NAME] = ti_##name##_tape_backward,
#define TI_FOP(NAME, name)      [TI_OP_##NAME] = ti_##name##_tape_backward,
#include "ops.def"
#undef TI_KOP
#undef TI_FOP
};
_Static_assert(sizeof backward_rules / sizeof backward_rules[0] == TI_OP_COUNT,
               "every op in ops.def needs a backward rule");

static const char *const op_names[TI_OP_COUNT] = {
#define TI_KOP(NAME, name, BWD) [TI_OP_##NAME] = #name,
#define TI_FOP(NAME, name)      [TI_OP_##NAME] = #name,
#include "ops.def"
#undef TI_KOP
#undef TI_FOP
};

const char *ti_op_name(enum ti_op op) {
    return (unsigned)op < TI_OP_COUNT ? op_names[op] : "?";
}

ti_status ti_tape_init(struct ti_tape **out, struct ti_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return ti_error(err, TI_ERR_NOMEM, "tape: out of host memory");
    return TI_OK;
}

int ti_tape_node_count(const struct ti_tape *t) {
    return t ? t->nnodes : 0;
}

static void node_release(struct ti_node *n) {
    for (int i = 0; i < n->nkept; i++) {
        struct ti_tensor *t = (struct ti_tensor *)((char *)&n->args + n->kept_off[i]);
        ti_tensor_release(t);
    }
    n->nkept = 0;
}

static void slot_release(struct slot *s) {
    if (!s->watched) ti_tensor_release(&s->grad);
    s->grad = ti_tensor_none();
}

static void tape_forget(struct ti_tape *t) {
    for (int i = t->nnodes - 1; i >= 0; i--)
        node_release(&t->nodes[i]);
    for (int i = 0; i < t->nslots; i++)
        slot_release(&t->slots[i]);
    t->nnodes = 0;
    t->nslots = 0;
    t->walking_from = 0;
}

void ti_tape_free(struct ti_tape **tp) {
    if (!tp || !*tp) return;
    tape_forget(*tp);
    free((*tp)->nodes);
    free((*tp)->slots);
    free(*tp);
    *tp = NULL;
}

void ti_tape_clear(struct ti_ctx *ctx) {
    if (ctx->tape) tape_forget(ctx->tape);
}

static ti_status new_slot(struct ti_ctx *ctx, const struct ti_tensor *meta, int32_t *id) {
    struct ti_tape *t = ctx->tape;
    if (t->nslots == t->cap_slots) {
        int cap = t->cap_slots ? 2 * t->cap_slots : 1024;
        struct slot *s = realloc(t->slots, (size_t)cap * sizeof *s);
        if (!s) return ti_error(&ctx->err, TI_ERR_NOMEM, "tape: out of host memory (slots)");
        t->slots = s;
        t->cap_slots = cap;
    }
    struct slot *s = &t->slots[t->nslots];
    s->meta = *meta;
    s->meta.data = NULL;
    s->meta.blk = NULL;
    s->meta.grad = -1;
    ti_tensor_set_contiguous(&s->meta);
    s->grad = ti_tensor_none();
    s->watched = 0;
    *id = t->nslots++;
    return TI_OK;
}

ti_status ti_tape_watch(struct ti_ctx *ctx, struct ti_tensor *param, const struct ti_tensor *grad) {
    char a[64], b[64];
    if (!ctx->tape) return ti_error(&ctx->err, TI_ERR_INVALID, "tape_watch: ctx has no tape");
    if (!ti_tensor_same_shape(param, grad) || param->dtype != grad->dtype ||
        !ti_tensor_is_contiguous(grad) || !grad->data)
        return ti_error(&ctx->err, TI_ERR_SHAPE,
                        "tape_watch: gradient buffer %s must be a contiguous tensor like %s",
                        ti_tensor_describe(grad, a, sizeof a),
                        ti_tensor_describe(param, b, sizeof b));
    int32_t id;
    TI_TRY(new_slot(ctx, param, &id));
    ctx->tape->slots[id].grad = *grad;
    ctx->tape->slots[id].grad.grad = -1;
    ctx->tape->slots[id].watched = 1;
    param->grad = id;
    return TI_OK;
}

int ti_tape_wants(const struct ti_ctx *ctx, int n, const struct ti_tensor *const *inputs) {
    if (!ctx->tape || ctx->no_grad > 0) return 0;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->data && inputs[i]->grad >= 0) return 1;
    return 0;
}

ti_status ti_tape_record(struct ti_ctx *ctx, enum ti_op op, struct ti_tensor *out,
                         struct ti_node **node) {
    struct ti_tape *t = ctx->tape;
    *node = NULL;
    if (t->nnodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 512;
        struct ti_node *n = realloc(t->nodes, (size_t)cap * sizeof *n);
        if (!n) return ti_error(&ctx->err, TI_ERR_NOMEM, "tape: out of host memory (nodes)");
        t->nodes = n;
        t->cap_nodes = cap;
    }
    int32_t id;
    TI_TRY(new_slot(ctx, out, &id));
    out->grad = id;
    struct ti_node *n = &t->nodes[t->nnodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->out_slot = id;
    for (int i = 0; i < TI_NODE_MAX_IN; i++)
        n->in_slot[i] = -1;
    *node = n;
    return TI_OK;
}

const struct ti_tensor *ti_tape_slot_meta(const struct ti_ctx *ctx, int32_t slot) {
    if (slot < 0 || !ctx->tape || slot >= ctx->tape->nslots) return NULL;
    return &ctx->tape->slots[slot].meta;
}

ti_status ti_node_keep(struct ti_ctx *ctx, struct ti_node *node, struct ti_tensor *field) {
    /* both are bugs of the op's front end; a dropped keep would be a use-after-free in backward */
    if (node->nkept >= TI_NODE_MAX_KEPT)
        return ti_error(&ctx->err, TI_ERR_INTERNAL,
                        "tape: op '%s' keeps more than %d tensors for backward (raise "
                        "TI_NODE_MAX_KEPT in ops_internal.h)",
                        ti_op_name(node->op), TI_NODE_MAX_KEPT);
    ptrdiff_t off = (char *)field - (char *)&node->args;
    if (off < 0 || (size_t)off + sizeof *field > sizeof node->args)
        return ti_error(&ctx->err, TI_ERR_INTERNAL,
                        "tape: op '%s' keeps a tensor that is not a field of its node's args",
                        ti_op_name(node->op));
    /* node_release releases each kept field once and clears it: a second keep would leak */
    for (int i = 0; i < node->nkept; i++)
        if (node->kept_off[i] == (uint16_t)off)
            return ti_error(&ctx->err, TI_ERR_INTERNAL,
                            "tape: op '%s' keeps the same tensor field twice",
                            ti_op_name(node->op));
    ti_tensor_retain(field);
    node->kept_off[node->nkept++] = (uint16_t)off;
    return TI_OK;
}

ti_status ti_tape_grad(struct ti_ctx *ctx, int32_t slot, struct ti_tensor *g) {
    *g = ti_tensor_none();
    if (slot < 0 || !ctx->tape) return TI_OK;
    struct ti_tape *t = ctx->tape;
    if (slot >= t->nslots)
        return ti_error(&ctx->err, TI_ERR_INTERNAL, "tape: gradient slot %d out of range", slot);
    struct slot *s = &t->slots[slot];
    if (!s->grad.data) {
        TI_TRY(ti_ctx_zeros(ctx, &s->grad, s->meta.dtype, s->meta.ndim, s->meta.shape));
    }
    *g = s->grad;
    return TI_OK;
}

ti_status ti_tape_accumulate(struct ti_ctx *ctx, int32_t slot, const struct ti_tensor *contrib,
                             double alpha) {
    if (slot < 0 || !ctx->tape) return TI_OK;
    struct ti_tape *t = ctx->tape;
    if (slot >= t->nslots)
        return ti_error(&ctx->err, TI_ERR_INTERNAL, "tape: gradient slot %d out of range", slot);
    struct slot *s = &t->slots[slot];
    struct ti_add_args a;
    memset(&a, 0, sizeof a);
    a.alpha = alpha;
    a.beta = 1.0;
    if (!s->grad.data) {
        /* first contribution: write, no zero fill */
        TI_TRY(ti_ctx_tensor(ctx, &s->grad, s->meta.dtype, s->meta.ndim, s->meta.shape));
        a.out = s->grad;
        a.a = *contrib;
        a.b = ti_tensor_none();
    } else {
        a.out = s->grad;
        a.a = *contrib;
        a.b = s->grad;
    }
    /* shapes must agree: view contrib with the slot's shape (same numel, possibly strided) */
    if (!ti_tensor_same_shape(&a.a, &s->meta)) {
        char x[64], y[64];
        return ti_error(&ctx->err, TI_ERR_INTERNAL, "tape: gradient %s does not fit slot %s",
                        ti_tensor_describe(contrib, x, sizeof x),
                        ti_tensor_describe(&s->meta, y, sizeof y));
    }
    ti_status st;
    TI_RUN_KERNEL(st, ctx, s->meta.dtype, add_forward, &a);
    return st;
}

/* Walks nodes [stop, nnodes) backwards, then drops them. With st already an error (a clean-up
 * walk) no rule runs: the nodes are only released. Returns the first error, st included. */
static ti_status walk(struct ti_ctx *ctx, int stop, ti_status st) {
    struct ti_tape *t = ctx->tape;
    while (t->nnodes > stop) {
        int i = t->nnodes - 1;
        /* copy: a checkpoint rule appends nodes, which may move the array */
        struct ti_node n = t->nodes[i];
        t->nnodes--; /* nested records go after this point */
        struct slot *os = &t->slots[n.out_slot];
        if (st == TI_OK && os->grad.data) {
            struct ti_tensor dout = os->grad;
            ti_tensor_retain(&dout);
            slot_release(&t->slots[n.out_slot]);
            st = backward_rules[n.op](ctx, &n, &dout);
            if (st != TI_OK)
                ti_error(&ctx->err, st, "in the backward pass of op '%s'", ti_op_name(n.op));
            ti_tensor_release(&dout);
        }
        node_release(&n);
        /* slots are not reused within a tape; the slot array is reset by tape_forget */
    }
    return st;
}

ti_status ti_tape_backward(struct ti_ctx *ctx, const struct ti_tensor *out,
                           const struct ti_tensor *dout) {
    struct ti_tape *t = ctx->tape;
    char a[64], b[64];
    if (!t) return ti_error(&ctx->err, TI_ERR_INVALID, "backward: ctx has no tape");
    if (out->grad < 0 || out->grad >= t->nslots) {
        tape_forget(t);
        return ti_error(&ctx->err, TI_ERR_INVALID,
                        "backward: the output does not depend on any watched tensor");
    }
    struct slot *s = &t->slots[out->grad];
    ti_status st = TI_OK;
    if (dout) {
        if (!ti_tensor_same_shape(dout, out) || dout->dtype != out->dtype) {
            tape_forget(t);
            return ti_error(&ctx->err, TI_ERR_SHAPE, "backward: seed gradient %s for output %s",
                            ti_tensor_describe(dout, a, sizeof a),
                            ti_tensor_describe(out, b, sizeof b));
        }
        st = ti_tape_accumulate(ctx, out->grad, dout, 1.0);
    } else {
        if (ti_tensor_numel(out) != 1) {
            tape_forget(t);
            return ti_error(&ctx->err, TI_ERR_SHAPE,
                            "backward: output %s is not a scalar; pass a seed gradient",
                            ti_tensor_describe(out, a, sizeof a));
        }
        double one64 = 1.0;
        float one32 = 1.0f;
        uint16_t one16 = out->dtype == TI_DTYPE_F16 ? ti_f32_to_f16(1.0f) : ti_f32_to_bf16(1.0f);
        const void *src = out->dtype == TI_DTYPE_F64   ? (const void *)&one64
                          : out->dtype == TI_DTYPE_F32 ? (const void *)&one32
                                                       : (const void *)&one16;
        st = ti_ctx_upload(ctx, &s->grad, src, out->dtype, s->meta.ndim, s->meta.shape);
    }
    st = walk(ctx, 0, st);
    tape_forget(t);
    return st;
}

/* ---- recomputation --------------------------------------------------------------------------- */

ti_status ti_checkpoint(struct ti_ctx *ctx, struct ti_tensor *out, ti_block_fn fn, void *user,
                        int n_in, const struct ti_tensor *in) {
    *out = ti_tensor_none();
    if (n_in < 0 || n_in > TI_CHECKPOINT_MAX_IN)
        return ti_error(&ctx->err, TI_ERR_INVALID, "checkpoint: %d inputs (at most %d)", n_in,
                        TI_CHECKPOINT_MAX_IN);
    const struct ti_tensor *ins[TI_CHECKPOINT_MAX_IN];
    for (int i = 0; i < n_in; i++)
        ins[i] = &in[i];
    int record = ti_tape_wants(ctx, n_in, ins);
    ctx->no_grad++;
    ti_status st = fn(ctx, out, in, n_in, user);
    ctx->no_grad--;
    if (st != TI_OK || !record) return st;
    struct ti_node *node;
    st = ti_tape_record(ctx, TI_OP_CHECKPOINT, out, &node);
    if (st != TI_OK) {
        ti_tensor_release(out);
        return st;
    }
    struct ti_checkpoint_args *a = &node->args.checkpoint;
    a->fn = fn;
    a->user = user;
    a->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        a->in[i] = in[i];
        TI_NODE_KEEP(st, ctx, node, &a->in[i]);
    }
    if (st != TI_OK) ti_tensor_release(out); /* the node stays; the tape releases what it kept */
    return st;
}

ti_status ti_checkpoint_tape_backward(struct ti_ctx *ctx, struct ti_node *node,
                                      const struct ti_tensor *dout) {
    struct ti_checkpoint_args *a = &node->args.checkpoint;
    struct ti_tape *t = ctx->tape;
    int stop = t->nnodes; /* nodes recorded from here on belong to the re-run */
    struct ti_tensor out;
    /* the inputs keep their slot ids, so the re-run's backward lands in their gradients */
    ti_status st = a->fn(ctx, &out, a->in, a->n_in, a->user);
    /* a failed re-run: release what it recorded before failing, return its error */
    if (st != TI_OK) return walk(ctx, stop, st);
    if (out.grad < 0) {
        /* the output does not depend on the inputs that have gradients (the block reads only
         * frozen ones): no contribution; release what the re-run recorded */
        ti_tensor_release(&out);
        return walk(ctx, stop, TI_OK);
    }
    st = ti_tape_accumulate(ctx, out.grad, dout, 1.0);
    ti_tensor_release(&out);
    /* back-propagates through the re-run, or (accumulate failed) only releases it; every error
     * is returned, the first one kept */
    return walk(ctx, stop, st);
}
