/*
 * arena.h - memory arenas, the only owners of tensor memory.
 *
 * One arena per lifetime (weights, trainable state, activations, scratch), each on one
 * backend's device. Two kinds:
 *   TI_ARENA_STACK  bump allocation, freed all at once by ti_arena_reset (weights, trainable
 *                   state, kernel scratch). Tensors from it have blk == NULL.
 *   TI_ARENA_POOL   reference-counted blocks carved from big chunks (activations, gradients).
 *                   A block returns to the pool when its count drops to zero (tensor.h
 *                   ti_tensor_release), neighbours coalesce, and the next step reuses it.
 *
 * Memory is obtained from the system in chunks (one malloc / cudaMalloc each). A chunk is
 * added only when nothing free fits; after the first training step the pattern repeats and a
 * steady-state step obtains nothing from the system: ti_arena_stats().system_allocs stays
 * constant (tests check this). `capacity` preallocates the first chunk; `max_bytes` (0 = no
 * limit) caps the total and turns growth past it into TI_ERR_NOMEM naming the arena.
 *
 *   struct ti_arena *act;
 *   TI_TRY(ti_arena_init(&act, be, TI_ARENA_POOL, "activations", 1u << 30, 0, err));
 *   struct ti_tensor t;
 *   TI_TRY(ti_arena_tensor(&t, act, TI_DTYPE_F32, 2, shape, err));
 *   ...
 *   ti_tensor_release(&t);
 *   ti_arena_free(&act);
 */
#ifndef TI_ARENA_H
#define TI_ARENA_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_backend;
struct ti_arena;

enum ti_arena_kind { TI_ARENA_STACK = 0, TI_ARENA_POOL = 1 };

/* A piece of a POOL arena. Opaque outside arena.c except for these two fields. */
struct ti_block {
    struct ti_arena *arena;
    char *ptr;                              /* start of the block's memory (device or host) */
    size_t size;                            /* usable bytes */
    int32_t refs;                           /* 0 = free */
    int32_t chunk;                          /* which chunk */
    struct ti_block *prev, *next;           /* address order inside the chunk */
    struct ti_block *free_prev, *free_next; /* free list (refs == 0 only) */
};

struct ti_arena_stats {
    size_t reserved;       /* bytes obtained from the system */
    size_t in_use;         /* bytes handed out now */
    size_t peak;           /* high-water mark of in_use */
    int64_t system_allocs; /* chunk + bookkeeping allocations since init */
    int64_t live_blocks;   /* POOL: blocks with refs > 0 */
};

ti_status ti_arena_init(struct ti_arena **out, const struct ti_backend *be, enum ti_arena_kind kind,
                        const char *name, size_t capacity, size_t max_bytes, struct ti_err *err);
/* Frees every chunk. Live POOL blocks become dangling: release tensors first. NULL-safe;
 * sets *a to NULL. */
void ti_arena_free(struct ti_arena **a);

/* Raw allocation (STACK: bump; POOL: a block with one reference, returned in *blk). */
ti_status ti_arena_alloc(struct ti_arena *a, size_t bytes, void **ptr, struct ti_block **blk,
                         struct ti_err *err);
/* A contiguous tensor of the given shape, uninitialised. */
ti_status ti_arena_tensor(struct ti_tensor *out, struct ti_arena *a, enum ti_dtype dt, int ndim,
                          const int64_t *shape, struct ti_err *err);
/* STACK: forget every allocation (memory is kept for reuse). POOL: no-op.
 * A STACK arena emptied (reset, or rewound to offset 0) after it grew past one chunk gives
 * its chunks back and takes, on its next allocation, one chunk holding the most it was asked
 * for at once: chunks grown request by request leave the unused tail of each behind. */
void ti_arena_reset(struct ti_arena *a);
/* STACK: current offset, and rewinding to it (scoped scratch use). */
size_t ti_arena_mark(const struct ti_arena *a);
void ti_arena_rewind(struct ti_arena *a, size_t mark);

struct ti_arena_stats ti_arena_stats(const struct ti_arena *a);
const char *ti_arena_name(const struct ti_arena *a);
const struct ti_backend *ti_arena_backend(const struct ti_arena *a);

void ti_block_retain(struct ti_block *b);
void ti_block_release(struct ti_block *b);

#ifdef __cplusplus
}
#endif
#endif /* TI_ARENA_H */
