/*
 * arena.c - STACK (bump) and POOL (refcounted best-fit blocks) arenas over chunks obtained
 * from a backend (see arena.h). Bookkeeping lives on the host even for device arenas.
 */
#include "arena.h"

#include <stdlib.h> /* defines: calloc, free */
#include <string.h> /* defines: memset, strncpy */

#include "backend.h" /* defines: struct ti_backend (mem_alloc, mem_free) */

#define ARENA_ALIGN   256u        /* CUDA-friendly; also a cache-line multiple */
#define DEFAULT_CHUNK (64u << 20) /* growth step when no capacity was given */
#define DESC_PAGE     1024        /* block descriptors per bookkeeping page */
#define MAX_CHUNKS    256

struct desc_page {
    struct desc_page *next;
    struct ti_block blocks[DESC_PAGE];
};

struct chunk {
    char *base;
    size_t size;
};

struct ti_arena {
    const struct ti_backend *be;
    enum ti_arena_kind kind;
    char name[48];
    size_t chunk_size; /* growth step */
    size_t max_bytes;  /* 0 = unlimited */
    struct chunk chunks[MAX_CHUNKS];
    int nchunks;
    /* STACK state */
    int cur_chunk;
    size_t cur_off;
    size_t demand, demand_peak; /* bytes asked for since the arena was last empty, and their
                                   high-water mark (what one chunk must hold; stack_merge) */
    /* POOL state */
    struct ti_block *free_list;  /* free blocks (refs == 0) */
    struct ti_block *spare_desc; /* unused descriptors */
    struct desc_page *pages;
    /* stats */
    size_t reserved, in_use, peak;
    int64_t system_allocs, live_blocks;
};

static size_t round_up(size_t n, size_t a) {
    return (n + a - 1) / a * a;
}

ti_status ti_arena_init(struct ti_arena **out, const struct ti_backend *be, enum ti_arena_kind kind,
                        const char *name, size_t capacity, size_t max_bytes, struct ti_err *err) {
    *out = NULL;
    struct ti_arena *a = calloc(1, sizeof *a);
    if (!a) return ti_error(err, TI_ERR_NOMEM, "arena %s: out of host memory", name);
    a->be = be;
    a->kind = kind;
    strncpy(a->name, name ? name : "arena", sizeof a->name - 1);
    a->chunk_size = capacity ? round_up(capacity, ARENA_ALIGN) : DEFAULT_CHUNK;
    a->max_bytes = max_bytes;
    a->system_allocs = 1;
    *out = a;
    return TI_OK;
}

static ti_status add_chunk(struct ti_arena *a, size_t need, struct ti_err *err) {
    size_t size = need > a->chunk_size ? round_up(need, ARENA_ALIGN) : a->chunk_size;
    if (a->nchunks == MAX_CHUNKS)
        return ti_error(err, TI_ERR_NOMEM, "arena %s: more than %d chunks (%zu bytes reserved)",
                        a->name, MAX_CHUNKS, a->reserved);
    if (a->max_bytes && a->reserved + size > a->max_bytes)
        return ti_error(err, TI_ERR_NOMEM,
                        "arena %s is full: %zu bytes requested, %zu of %zu bytes in use "
                        "(raise its limit)",
                        a->name, need, a->in_use, a->max_bytes);
    void *p = NULL;
    ti_status st = a->be->mem_alloc(a->be, size, &p, err);
    if (st != TI_OK)
        return ti_error(err, st, "arena %s: could not obtain %zu bytes on %s", a->name, size,
                        a->be->name);
    a->chunks[a->nchunks].base = p;
    a->chunks[a->nchunks].size = size;
    a->nchunks++;
    a->reserved += size;
    a->system_allocs++;
    return TI_OK;
}

/* ---- POOL bookkeeping ----------------------------------------------------------------------- */

static struct ti_block *desc_get(struct ti_arena *a, struct ti_err *err) {
    if (!a->spare_desc) {
        struct desc_page *pg = calloc(1, sizeof *pg);
        if (!pg) {
            ti_error(err, TI_ERR_NOMEM, "arena %s: out of host memory for block descriptors",
                     a->name);
            return NULL;
        }
        a->system_allocs++;
        pg->next = a->pages;
        a->pages = pg;
        for (int i = 0; i < DESC_PAGE; i++) {
            pg->blocks[i].next = a->spare_desc;
            a->spare_desc = &pg->blocks[i];
        }
    }
    struct ti_block *b = a->spare_desc;
    a->spare_desc = b->next;
    memset(b, 0, sizeof *b);
    b->arena = a;
    return b;
}

static void desc_put(struct ti_arena *a, struct ti_block *b) {
    b->next = a->spare_desc;
    a->spare_desc = b;
}

static void freelist_insert(struct ti_arena *a, struct ti_block *b) {
    b->free_prev = NULL;
    b->free_next = a->free_list;
    if (a->free_list) a->free_list->free_prev = b;
    a->free_list = b;
}

static void freelist_remove(struct ti_arena *a, struct ti_block *b) {
    if (b->free_prev)
        b->free_prev->free_next = b->free_next;
    else
        a->free_list = b->free_next;
    if (b->free_next) b->free_next->free_prev = b->free_prev;
    b->free_prev = b->free_next = NULL;
}

/* A whole new chunk becomes one free block. */
static ti_status pool_grow(struct ti_arena *a, size_t need, struct ti_err *err) {
    TI_TRY(add_chunk(a, need, err));
    struct ti_block *b = desc_get(a, err);
    if (!b) return TI_ERR_NOMEM;
    b->ptr = a->chunks[a->nchunks - 1].base;
    b->size = a->chunks[a->nchunks - 1].size;
    b->chunk = a->nchunks - 1;
    freelist_insert(a, b);
    return TI_OK;
}

static ti_status pool_alloc(struct ti_arena *a, size_t bytes, struct ti_block **out,
                            struct ti_err *err) {
    size_t need = round_up(bytes ? bytes : 1, ARENA_ALIGN);
    struct ti_block *best = NULL;
    for (struct ti_block *b = a->free_list; b; b = b->free_next)
        if (b->size >= need &&
            (!best || b->size < best->size || (b->size == best->size && b->ptr < best->ptr)))
            best = b;
    if (!best) {
        TI_TRY(pool_grow(a, need, err));
        best = a->free_list; /* the new chunk's block was inserted at the head */
    }
    freelist_remove(a, best);
    if (best->size - need >= ARENA_ALIGN) {
        /* split: the tail stays free */
        struct ti_block *rest = desc_get(a, err);
        if (!rest) {
            freelist_insert(a, best);
            return TI_ERR_NOMEM;
        }
        rest->ptr = best->ptr + need;
        rest->size = best->size - need;
        rest->chunk = best->chunk;
        rest->prev = best;
        rest->next = best->next;
        if (best->next) best->next->prev = rest;
        best->next = rest;
        best->size = need;
        freelist_insert(a, rest);
    }
    best->refs = 1;
    a->in_use += best->size;
    if (a->in_use > a->peak) a->peak = a->in_use;
    a->live_blocks++;
    *out = best;
    return TI_OK;
}

static void pool_free(struct ti_arena *a, struct ti_block *b) {
    a->in_use -= b->size;
    a->live_blocks--;
    b->refs = 0;
    /* coalesce with the following free neighbour */
    struct ti_block *n = b->next;
    if (n && n->refs == 0) {
        freelist_remove(a, n);
        b->size += n->size;
        b->next = n->next;
        if (n->next) n->next->prev = b;
        desc_put(a, n);
    }
    /* and with the preceding one */
    struct ti_block *p = b->prev;
    if (p && p->refs == 0) {
        freelist_remove(a, p);
        p->size += b->size;
        p->next = b->next;
        if (b->next) b->next->prev = p;
        desc_put(a, b);
        b = p;
    }
    freelist_insert(a, b);
}

void ti_block_retain(struct ti_block *b) {
    if (b) b->refs++;
}

void ti_block_release(struct ti_block *b) {
    if (!b || b->refs <= 0) return;
    if (--b->refs == 0) pool_free(b->arena, b);
}

/* ---- STACK ----------------------------------------------------------------------------------- */

static ti_status stack_alloc(struct ti_arena *a, size_t bytes, void **ptr, struct ti_err *err) {
    size_t need = round_up(bytes ? bytes : 1, ARENA_ALIGN);
    a->demand += need;
    if (a->demand > a->demand_peak) a->demand_peak = a->demand;
    for (;;) {
        if (a->cur_chunk < a->nchunks) {
            struct chunk *c = &a->chunks[a->cur_chunk];
            if (c->size - a->cur_off >= need) {
                *ptr = c->base + a->cur_off;
                a->cur_off += need;
                a->in_use += need;
                if (a->in_use > a->peak) a->peak = a->in_use;
                return TI_OK;
            }
            if (a->cur_chunk + 1 < a->nchunks) {
                a->in_use += c->size - a->cur_off; /* the unused tail counts as used until reset */
                a->cur_chunk++;
                a->cur_off = 0;
                continue;
            }
        }
        TI_TRY(add_chunk(a, need, err));
        if (a->nchunks > 1 && a->cur_chunk < a->nchunks - 1) {
            a->in_use += a->chunks[a->cur_chunk].size - a->cur_off;
            a->cur_chunk = a->nchunks - 1;
            a->cur_off = 0;
        }
    }
}

/* An empty STACK arena that grew past its first chunk gives its chunks back and takes one
 * chunk holding the largest demand seen, on its next allocation. Chunks grown one request at a
 * time keep the unused tail of each (a request that does not fit the rest of a chunk starts a
 * new one), so without this a kernel whose workspace comes in several pieces leaves the arena
 * holding up to twice what any op needs (the full-size UNet's scratch: 334 MiB reserved for
 * ops needing at most ~140 MiB). Happens once per growth, in the first steps; a steady-state
 * step still obtains nothing from the system. */
static void stack_merge(struct ti_arena *a) {
    a->demand = 0;
    if (a->nchunks <= 1) return;
    for (int i = 0; i < a->nchunks; i++)
        a->be->mem_free(a->be, a->chunks[i].base, a->chunks[i].size);
    a->nchunks = 0;
    a->reserved = 0;
    size_t want = round_up(a->demand_peak, ARENA_ALIGN);
    if (want > a->chunk_size) a->chunk_size = want;
}

void ti_arena_reset(struct ti_arena *a) {
    if (!a || a->kind != TI_ARENA_STACK) return;
    a->cur_chunk = 0;
    a->cur_off = 0;
    a->in_use = 0;
    stack_merge(a);
}

size_t ti_arena_mark(const struct ti_arena *a) {
    return ((size_t)a->cur_chunk << 40) | a->cur_off;
}

void ti_arena_rewind(struct ti_arena *a, size_t mark) {
    if (!a || a->kind != TI_ARENA_STACK) return;
    int chunk = (int)(mark >> 40);
    size_t off = mark & (((size_t)1 << 40) - 1);
    /* recompute in_use: full earlier chunks + offset */
    size_t used = off;
    for (int i = 0; i < chunk && i < a->nchunks; i++)
        used += a->chunks[i].size;
    a->cur_chunk = chunk;
    a->cur_off = off;
    a->in_use = used;
    /* what was asked for up to the mark is at most what it spans (tails included) */
    if (a->demand > used) a->demand = used;
    if (chunk == 0 && off == 0) stack_merge(a);
}

/* ---- common ---------------------------------------------------------------------------------- */

ti_status ti_arena_alloc(struct ti_arena *a, size_t bytes, void **ptr, struct ti_block **blk,
                         struct ti_err *err) {
    *ptr = NULL;
    if (blk) *blk = NULL;
    if (a->kind == TI_ARENA_STACK) return stack_alloc(a, bytes, ptr, err);
    struct ti_block *b = NULL;
    TI_TRY(pool_alloc(a, bytes, &b, err));
    *ptr = b->ptr;
    if (blk) *blk = b;
    return TI_OK;
}

ti_status ti_arena_tensor(struct ti_tensor *out, struct ti_arena *a, enum ti_dtype dt, int ndim,
                          const int64_t *shape, struct ti_err *err) {
    char sh[128];
    *out = ti_tensor_none();
    if (ndim < 0 || ndim > TI_MAX_DIMS)
        return ti_error(err, TI_ERR_SHAPE, "tensor with %d dims (at most %d)", ndim, TI_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return ti_error(err, TI_ERR_SHAPE, "negative size in %s",
                            ti_shape_str(ndim, shape, sh, sizeof sh));
    struct ti_tensor t = ti_tensor_view(NULL, dt, a->be->device, ndim, shape);
    t.device_index = a->be->device_index;
    void *p = NULL;
    struct ti_block *b = NULL;
    TI_TRY(ti_arena_alloc(a, ti_tensor_nbytes(&t), &p, &b, err));
    t.data = p;
    t.blk = b;
    *out = t;
    return TI_OK;
}

void ti_arena_free(struct ti_arena **ap) {
    if (!ap || !*ap) return;
    struct ti_arena *a = *ap;
    for (int i = 0; i < a->nchunks; i++)
        a->be->mem_free(a->be, a->chunks[i].base, a->chunks[i].size);
    struct desc_page *pg = a->pages;
    while (pg) {
        struct desc_page *n = pg->next;
        free(pg);
        pg = n;
    }
    free(a);
    *ap = NULL;
}

struct ti_arena_stats ti_arena_stats(const struct ti_arena *a) {
    struct ti_arena_stats s;
    s.reserved = a->reserved;
    s.in_use = a->in_use;
    s.peak = a->peak;
    s.system_allocs = a->system_allocs;
    s.live_blocks = a->live_blocks;
    return s;
}

const char *ti_arena_name(const struct ti_arena *a) {
    return a->name;
}
const struct ti_backend *ti_arena_backend(const struct ti_arena *a) {
    return a->be;
}
