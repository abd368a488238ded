/*
 * pickle.h - a safe, bounded unpickler for the pickles inside torch files, and a pickle writer.
 *
 * The reader is a symbolic stack machine. It never calls anything and never imports anything:
 * it turns protocol 2-5 opcodes into an inert tree of `struct ti_py` nodes. Only the calls that
 * torch and pytorch-lightning files need are *interpreted* into data:
 *   torch._utils._rebuild_tensor / _v2 / _v3  -> a TENSOR (a strided view into a STORAGE)
 *   torch._utils._rebuild_parameter(_with_state), torch._tensor._rebuild_from_type_v2
 *                                             -> the tensor inside (is_param set)
 *   collections.OrderedDict, builtins.set/frozenset, torch.Size, _codecs.encode
 *                                             -> DICT, SET, TUPLE, BYTES
 *   NEWOBJ + BUILD of any other class (e.g. torch.nn.modules.container.ParameterDict)
 *                                             -> an OBJECT holding its class symbol, arguments
 *                                                and BUILD state (a ParameterDict's state holds
 *                                                `_parameters`: see ti_py_unwrap_module)
 * Every other GLOBAL is an inert symbol, and a REDUCE of it an inert OBJECT. Which globals a
 * file may name at all (GLOBAL, and STACK_GLOBAL judged the same way) is an ALLOWLIST of what
 * real files contain: torch's weights_only set (rebuild helpers, storages, tensor classes,
 * dtypes, layouts, Size, device, Parameter, _get_layout), collections.OrderedDict/defaultdict/
 * Counter, _codecs.encode, builtins that are plain types (set, dict, int, ...), the peer's
 * ParameterDict (and ParameterList), TorchVersion, numpy scalars/dtypes/arrays, Lightning's
 * AttributeDict and callback classes (ModelCheckpoint keys the `callbacks` state), and
 * argparse.Namespace (old hparams); the list is in pickle.c. Any other global refuses the
 * file with TI_ERR_UNSAFE naming it, unless the VM has TI_PICKLE_ALLOW_UNKNOWN_GLOBALS (the
 * tools' --allow-unknown-globals): then it stays an inert symbol. A DENY list is refused even
 * then, with a message that the file is hostile: os, posix, nt, sys, subprocess, runpy,
 * importlib, imp, shutil, socket, ctypes/_ctypes, pickle, shelve, marshal, operator,
 * functools, types, io, codecs, pandas, pydoc, ... (whole modules), builtins other than plain
 * types (eval, exec, getattr, __import__, compile, open), torch.load, torch.serialization
 * (but _get_layout), torch.utils (cpp_extension.load_inline), torch.hub, torch.jit,
 * torch.storage._load_from_bytes, numpy.load, numpy.ctypeslib, numpy.testing. ti calls none
 * of them either way; refusing tells the user the file is not what it claims.
 * Opcodes that call classes by themselves (INST, OBJ, NEWOBJ_EX), the extension registry
 * (EXT1/2/4), text persistent ids (PERSID), out-of-band buffers and the protocol-0 text
 * opcodes are refused.
 *
 * Bounds: stack depth (1M values), MARK depth (64K), node count (2M, so a hostile pickle costs
 * at most ~370 MB; a full SD checkpoint needs ~20k), memo indices (< pickle length + 16), string
 * lengths (<= the bytes left), LONG sizes; every read is checked against the pickle's length.
 * Tensor views are checked against their storage's declared size when they are built
 * (offset + sum((size_i - 1) * stride_i) < numel; sizes and strides >= 0; <= TI_MAX_DIMS
 * dims; the element count and byte size fit 63 bits) and against the bytes the container
 * really has when storages are bound. An overlapping (stride-0) view may name at most
 * TI_PICKLE_VIEW_SLACK more elements than its storage holds (real files expand only small
 * buffers), so reading one view costs about its storage's size. Several views of one storage
 * are legitimate (tied weights), so whoever reads every element of every view (ti-inspect
 * --json) bounds the total with ti_pickle_view_elements.
 *
 * Storages come from BINPERSID ids ('storage', <torch XStorage>, key, location, numel): one
 * STORAGE per key, shared by every tensor that names it. The container (torchfile.c) binds
 * each storage's bytes afterwards (`data`, `nbytes`) and calls ti_pickle_bind_tensors, which
 * checks sizes and points every tensor into its storage. Locations ('cuda:0') are ignored.
 *
 * The tree is a DAG (memo GETs share nodes) and may even be cyclic; ti_pickle_walk_tensors
 * visits each container once and stops at TI_PY_MAX_DEPTH.
 *
 * The writer (ti_pkw_*) appends opcodes to a growing buffer; torchfile.c uses it to write
 * embedding files with exactly the opcodes pt-format.md §4.4 allows.
 *
 * Not here: zip and legacy containers (torchfile.h), file mapping (fileio.h).
 */
#ifndef TI_PICKLE_H
#define TI_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_PY_MAX_DEPTH 100 /* walkers refuse deeper nesting */

#define TI_PICKLE_VIEW_SLACK (1u << 24) /* elements a view may name beyond its storage's */

enum { TI_PICKLE_ALLOW_UNKNOWN_GLOBALS = 1 }; /* flags for ti_pickle_set_flags */

enum ti_py_kind {
    TI_PY_NONE,
    TI_PY_BOOL,
    TI_PY_INT,
    TI_PY_BIGINT, /* an int wider than 64 bits: u.str holds its little-endian bytes */
    TI_PY_FLOAT,
    TI_PY_STR, /* UTF-8 */
    TI_PY_BYTES,
    TI_PY_TUPLE,
    TI_PY_LIST,
    TI_PY_DICT, /* dict and OrderedDict: u.seq.items = k0, v0, k1, v1, ... (insertion order) */
    TI_PY_SET,
    TI_PY_GLOBAL, /* an inert symbol module.name */
    TI_PY_OBJECT, /* result of REDUCE / NEWOBJ on a symbol ti does not interpret */
    TI_PY_STORAGE,
    TI_PY_TENSOR,
    TI_PY_MARK /* internal: never part of a finished tree */
};

struct ti_py;

struct ti_py_storage {
    const char *key;       /* record name part: "0" (zip) or the legacy pointer string */
    const char *location;  /* "cpu", "cuda:0", ... (ignored) */
    const char *type_name; /* "FloatStorage", ... */
    enum ti_dtype dtype;   /* element type (U8 for an UntypedStorage) */
    uint64_t numel;        /* elements of dtype, as the pickle declares */
    const uint8_t *data;   /* bound by the container; NULL until then */
    uint64_t nbytes;       /* bytes available at data */
    struct ti_py_storage *next;
};

struct ti_py_tensor {
    struct ti_tensor t; /* CPU view; t.data set by ti_pickle_bind_tensors */
    struct ti_py_storage *storage;
    int64_t offset; /* in elements of t.dtype */
    int requires_grad;
    int is_param;       /* it came through _rebuild_parameter */
    struct ti_py *next; /* list of all tensors of a pickle */
};

struct ti_py {
    enum ti_py_kind kind;
    uint32_t seen; /* walker stamp */
    union {
        int64_t i; /* BOOL, INT */
        double f;  /* FLOAT */
        struct {
            char *s;
            size_t len;
        } str; /* STR, BYTES, BIGINT */
        struct {
            struct ti_py **items;
            size_t n, cap;
        } seq; /* TUPLE, LIST, SET, DICT */
        struct {
            const char *module, *name;
        } global; /* GLOBAL */
        struct {
            struct ti_py *cls;   /* the GLOBAL (or other value) that was called */
            struct ti_py *args;  /* TUPLE */
            struct ti_py *state; /* BUILD argument, or NULL */
            struct ti_py *dict;  /* items set on it with SETITEM(S) (dict subclasses), or NULL */
            struct ti_py *list;  /* items appended with APPEND(S) (list subclasses), or NULL */
            int newobj;          /* 1: NEWOBJ, 0: REDUCE */
        } obj;
        struct ti_py_storage *storage; /* STORAGE */
        struct ti_py_tensor tensor;    /* TENSOR */
    } u;
};

struct ti_pickle; /* the VM and the arena of every node it made */

/* A fresh VM. `what` names the pickle in messages ("'x.ckpt' archive/data.pkl"). */
ti_status ti_pickle_new(struct ti_pickle **out, const char *what, struct ti_err *err);
/* TI_PICKLE_* flags for the runs that follow (default 0: unknown globals refuse the file). */
void ti_pickle_set_flags(struct ti_pickle *pk, unsigned flags);
/* Runs one pickle from data[0..len) to its STOP. *used = bytes consumed (legacy files hold
 * several pickles back to back), *root = the value. Each run has its own memo; storages are
 * shared across runs of the same VM (by key). Can be called several times. */
ti_status ti_pickle_run(struct ti_pickle *pk, const uint8_t *data, size_t len, size_t *used,
                        struct ti_py **root, struct ti_err *err);
/* All storages, in order of first use. The container sets data/nbytes on each. */
struct ti_py_storage *ti_pickle_storages(struct ti_pickle *pk);
size_t ti_pickle_storage_count(const struct ti_pickle *pk);
/* The storage with this key, or NULL. */
struct ti_py_storage *ti_pickle_storage_find(struct ti_pickle *pk, const char *key);
/* After binding: checks every storage holds numel * elsize bytes (an error names the key and
 * both sizes: torch does not check and reads garbage) and points every tensor at its data. */
ti_status ti_pickle_bind_tensors(struct ti_pickle *pk, struct ti_err *err);
/* The elements of all tensor views together (saturating): the work of reading every one. */
uint64_t ti_pickle_view_elements(const struct ti_pickle *pk);
/* All tensors (a list through u.tensor.next). */
struct ti_py *ti_pickle_tensors(struct ti_pickle *pk);
void ti_pickle_free(struct ti_pickle *pk);

/* ---- the tree ------------------------------------------------------------------------------ */
const char *ti_py_kind_name(enum ti_py_kind k);
/* 1 if v is a STR equal to s. */
int ti_py_is_str(const struct ti_py *v, const char *s);
/* 1 if v is the GLOBAL module.name (Python 2 names are normalised: __builtin__ -> builtins). */
int ti_py_is_global(const struct ti_py *v, const char *module, const char *name);
/* Number of key/value pairs of a DICT (0 for anything else). */
size_t ti_py_dict_len(const struct ti_py *d);
const struct ti_py *ti_py_dict_key(const struct ti_py *d, size_t i);
const struct ti_py *ti_py_dict_value(const struct ti_py *d, size_t i);
/* The value of string key `key` in a DICT (the last one set, as Python keeps), or NULL. */
const struct ti_py *ti_py_dict_get(const struct ti_py *d, const char *key);
/* An nn.Module-like OBJECT (e.g. a pickled ParameterDict) -> its state's `_parameters` DICT;
 * a DICT -> itself; anything else -> NULL. This is A1111's getattr(x, '_parameters', x). */
const struct ti_py *ti_py_unwrap_module(const struct ti_py *v);

/* Calls fn(ud, path, tensor_node) for every tensor reachable from root, depth first, in order.
 * path: DICT keys joined by '.', list/tuple indices as numbers, ParameterDict transparent
 * ("string_to_param.*"). Each container is visited once; nesting beyond TI_PY_MAX_DEPTH or a
 * path longer than 4 KiB is an error. */
typedef ti_status (*ti_py_tensor_fn)(void *ud, const char *path, const struct ti_py *tensor,
                                     struct ti_err *err);
ti_status ti_pickle_walk_tensors(struct ti_pickle *pk, const struct ti_py *root, ti_py_tensor_fn fn,
                                 void *ud, struct ti_err *err);

/* ---- writer -------------------------------------------------------------------------------- */
enum ti_pickle_op {
    TI_PK_MARK = '(',
    TI_PK_STOP = '.',
    TI_PK_BININT = 'J',
    TI_PK_BININT1 = 'K',
    TI_PK_BININT2 = 'M',
    TI_PK_NONE = 'N',
    TI_PK_BINPERSID = 'Q',
    TI_PK_REDUCE = 'R',
    TI_PK_BINUNICODE = 'X',
    TI_PK_EMPTY_LIST = ']',
    TI_PK_APPEND = 'a',
    TI_PK_BUILD = 'b',
    TI_PK_GLOBAL = 'c',
    TI_PK_APPENDS = 'e',
    TI_PK_SETITEM = 's',
    TI_PK_TUPLE = 't',
    TI_PK_SETITEMS = 'u',
    TI_PK_EMPTY_DICT = '}',
    TI_PK_EMPTY_TUPLE = ')',
    TI_PK_PROTO = 0x80,
    TI_PK_NEWOBJ = 0x81,
    TI_PK_TUPLE1 = 0x85,
    TI_PK_TUPLE2 = 0x86,
    TI_PK_TUPLE3 = 0x87,
    TI_PK_NEWTRUE = 0x88,
    TI_PK_NEWFALSE = 0x89,
    TI_PK_LONG1 = 0x8a
};

struct ti_pkw {
    uint8_t *buf;
    size_t n, cap;
    int oom; /* sticky: an allocation failed */
};

void ti_pkw_init(struct ti_pkw *w);
void ti_pkw_free(struct ti_pkw *w);
void ti_pkw_op(struct ti_pkw *w, enum ti_pickle_op op);
void ti_pkw_proto(struct ti_pkw *w, int version);
/* BINUNICODE (u32 length + UTF-8): the string opcode every torch since 1.13 accepts. */
void ti_pkw_str(struct ti_pkw *w, const char *s);
/* BININT1 / BININT2 / BININT / LONG1, the shortest that holds v (as Python's pickler). */
void ti_pkw_int(struct ti_pkw *w, int64_t v);
void ti_pkw_bool(struct ti_pkw *w, int v);
/* GLOBAL 'module\nname\n'. */
void ti_pkw_global(struct ti_pkw *w, const char *module, const char *name);
/* TUPLE of the n values pushed since the caller's MARK, or TUPLE1/2/3/EMPTY_TUPLE for n <= 3
 * (the caller pushes a MARK itself only when n > 3). */
void ti_pkw_tuple(struct ti_pkw *w, int n);
/* TI_OK, or TI_ERR_NOMEM if any append failed. */
ti_status ti_pkw_status(const struct ti_pkw *w, struct ti_err *err);

#ifdef __cplusplus
}
#endif
#endif /* TI_PICKLE_H */
