/*
 * tape.h - reverse-mode automatic differentiation.
 *
 * While ctx->tape is set, every op whose inputs include a tensor with a gradient slot
 * (tensor.grad >= 0) is recorded, with exactly the tensors its backward needs (retained, so
 * their memory stays alive until backward passes them). Gradients start at the watched
 * (trainable) tensors only: frozen weights never get a slot, so their gradients are never
 * computed or allocated, and a frozen UNet's backward computes input gradients only.
 *
 *   struct ti_tape *tape;
 *   TI_TRY(ti_tape_init(&tape, &ctx.err));
 *   ctx.tape = tape;
 *   TI_TRY(ti_tape_watch(&ctx, &emb_rows, &emb_grad));   // emb_grad += d loss / d emb_rows
 *   ... forward ops ..., loss (a scalar)
 *   TI_TRY(ti_tape_backward(&ctx, &loss, NULL));          // releases what the tape held
 *   ti_tape_free(&tape);
 *
 * Activations are released as backward passes them: once a node's backward has run, its saved
 * tensors and its output gradient are dropped, so memory returns to the activation arena in
 * reverse order. ti_checkpoint trades compute for memory: the block's activations are not kept
 * in forward and the block is re-run (recorded) during backward.
 *
 * Not here: the ops themselves (ops.h), the per-op backward rules (ops_*.c).
 */
#ifndef TI_TAPE_H
#define TI_TAPE_H

#include "context.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_tape;

ti_status ti_tape_init(struct ti_tape **out, struct ti_err *err);
/* Releases everything still recorded, then frees. NULL-safe; sets *t = NULL. */
void ti_tape_free(struct ti_tape **t);

/* Gives `param` a gradient slot; backward accumulates (+=) d out / d param into `grad`
 * (same shape and dtype, contiguous, owned by the caller, e.g. in a trainable-state arena).
 * Watch again after ti_tape_clear or a backward: both forget all slots. */
ti_status ti_tape_watch(struct ti_ctx *ctx, struct ti_tensor *param, const struct ti_tensor *grad);

/* Back-propagates from `out` with seed gradient `dout` (same shape; NULL means 1 and requires
 * a one-element `out`), then forgets the whole tape (slots included). */
ti_status ti_tape_backward(struct ti_ctx *ctx, const struct ti_tensor *out,
                           const struct ti_tensor *dout);

/* Forgets the tape without running backward (releases every saved tensor). */
void ti_tape_clear(struct ti_ctx *ctx);

/* Recorded node count (for tests). */
int ti_tape_node_count(const struct ti_tape *t);

/* Recomputation. `fn` computes *out from in[0..n_in) using only frozen state reachable from
 * `user`, deterministically. Forward runs it without recording and keeps only the inputs;
 * backward re-runs it with recording and back-propagates through it.
 * At most TI_CHECKPOINT_MAX_IN inputs. */
#define TI_CHECKPOINT_MAX_IN 4
typedef ti_status (*ti_block_fn)(struct ti_ctx *ctx, struct ti_tensor *out,
                                 const struct ti_tensor *in, int n_in, void *user);
ti_status ti_checkpoint(struct ti_ctx *ctx, struct ti_tensor *out, ti_block_fn fn, void *user,
                        int n_in, const struct ti_tensor *in);

#ifdef __cplusplus
}
#endif
#endif /* TI_TAPE_H */
