/* pickle.c - the safe unpickler (symbolic VM, deny list, torch rebuilds) and the pickle writer
 * (see pickle.h). */
#include "pickle.h"

#include "unicode.h" /* defines: ti_utf8_valid */

#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: snprintf, vsnprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free */
#include <string.h> /* defines: memcpy, memchr, strcmp, strlen, strncmp */

#define NODE_CHUNK_MIN  64 /* first chunk; each next one doubles, up to NODE_CHUNK_MAX */
#define NODE_CHUNK_MAX  4096
#define BYTE_CHUNK      (1u << 20)
#define MAX_STACK       (1u << 20) /* values on the stack */
#define MAX_MARKS       (1u << 16) /* nested MARKs */
#define MAX_NODES       (2u << 20) /* nodes per VM: <= ~370 MB; a full SD checkpoint needs ~20k */
#define MAX_GLOBAL_NAME 1024       /* module or name of a GLOBAL */

struct node_chunk {
    struct node_chunk *next;
    size_t used, cap;
    struct ti_py nodes[];
};

struct byte_chunk {
    struct byte_chunk *next;
    size_t used, cap;
    uint8_t data[];
};

struct ti_pickle {
    char what[256];
    struct node_chunk *chunks;
    size_t n_nodes;
    struct byte_chunk *bytes;
    struct ti_py **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t n_marks, marks_cap;
    struct ti_py **memo;
    size_t memo_cap, memo_count;
    uint64_t memo_limit;
    struct ti_py_storage *storages, **storage_tail;
    size_t n_storages;
    struct ti_py_storage **st_table; /* open addressing by key */
    size_t st_cap;
    struct ti_py *tensors, **tensor_tail;
    uint32_t stamp;
    const uint8_t *start; /* current run, for byte offsets in messages */
    unsigned flags;       /* TI_PICKLE_* */
    uint64_t view_elems;  /* elements of every tensor view so far (the per-element work) */
};

static struct ti_py_storage *storage_lookup(struct ti_pickle *pk, const char *key);

/* ---- allocation ---------------------------------------------------------------------------- */

static struct ti_py *new_node(struct ti_pickle *pk, enum ti_py_kind kind) {
    if (pk->n_nodes >= MAX_NODES) return NULL;
    if (!pk->chunks || pk->chunks->used == pk->chunks->cap) {
        size_t cap = pk->chunks ? 2 * pk->chunks->cap : NODE_CHUNK_MIN;
        if (cap > NODE_CHUNK_MAX) cap = NODE_CHUNK_MAX;
        struct node_chunk *c = malloc(sizeof *c + cap * sizeof(struct ti_py));
        if (!c) return NULL;
        c->next = pk->chunks;
        c->used = 0;
        c->cap = cap;
        pk->chunks = c;
    }
    struct ti_py *v = &pk->chunks->nodes[pk->chunks->used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    pk->n_nodes++;
    return v;
}

static void *new_bytes(struct ti_pickle *pk, size_t n) {
    n = (n + 7) & ~(size_t)7;
    if (!pk->bytes || pk->bytes->cap - pk->bytes->used < n) {
        /* chunks grow from 4 KiB to BYTE_CHUNK; a big string gets a chunk of its own */
        size_t grow = !pk->bytes                         ? 4096
                      : pk->bytes->cap >= BYTE_CHUNK / 2 ? BYTE_CHUNK
                                                         : 2 * pk->bytes->cap;
        size_t cap = n > BYTE_CHUNK / 4 ? n : grow < n ? n : grow;
        struct byte_chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        if (pk->bytes && n > BYTE_CHUNK / 4) { /* big string: own chunk, keep the current one */
            c->next = pk->bytes->next;
            pk->bytes->next = c;
            c->used = n;
            return c->data;
        }
        c->next = pk->bytes;
        pk->bytes = c;
    }
    void *p = pk->bytes->data + pk->bytes->used;
    pk->bytes->used += n;
    return p;
}

static char *new_str(struct ti_pickle *pk, const void *s, size_t n) {
    char *p = new_bytes(pk, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int seq_push(struct ti_py *v, struct ti_py *item) {
    if (v->u.seq.n == v->u.seq.cap) {
        size_t cap = v->u.seq.cap ? 2 * v->u.seq.cap : 4;
        struct ti_py **p = realloc(v->u.seq.items, cap * sizeof *p);
        if (!p) return 0;
        v->u.seq.items = p;
        v->u.seq.cap = cap;
    }
    v->u.seq.items[v->u.seq.n++] = item;
    return 1;
}

ti_status ti_pickle_new(struct ti_pickle **out, const char *what, struct ti_err *err) {
    struct ti_pickle *pk = calloc(1, sizeof *pk);
    if (!pk) return ti_error(err, TI_ERR_NOMEM, "pickle: out of memory");
    snprintf(pk->what, sizeof pk->what, "%s", what ? what : "pickle");
    pk->storage_tail = &pk->storages;
    pk->tensor_tail = &pk->tensors;
    *out = pk;
    return TI_OK;
}

void ti_pickle_free(struct ti_pickle *pk) {
    if (!pk) return;
    for (struct node_chunk *c = pk->chunks; c;) {
        for (size_t i = 0; i < c->used; i++) {
            enum ti_py_kind k = c->nodes[i].kind;
            if (k == TI_PY_TUPLE || k == TI_PY_LIST || k == TI_PY_SET || k == TI_PY_DICT)
                free(c->nodes[i].u.seq.items);
        }
        struct node_chunk *next = c->next;
        free(c);
        c = next;
    }
    for (struct byte_chunk *b = pk->bytes; b;) {
        struct byte_chunk *next = b->next;
        free(b);
        b = next;
    }
    for (struct ti_py_storage *s = pk->storages; s;) {
        struct ti_py_storage *next = s->next;
        free(s);
        s = next;
    }
    free(pk->st_table);
    free(pk->stack);
    free(pk->marks);
    free(pk->memo);
    free(pk);
}

void ti_pickle_set_flags(struct ti_pickle *pk, unsigned flags) {
    pk->flags = flags;
}

struct ti_py_storage *ti_pickle_storages(struct ti_pickle *pk) {
    return pk->storages;
}
struct ti_py_storage *ti_pickle_storage_find(struct ti_pickle *pk, const char *key) {
    return storage_lookup(pk, key);
}
size_t ti_pickle_storage_count(const struct ti_pickle *pk) {
    return pk->n_storages;
}
struct ti_py *ti_pickle_tensors(struct ti_pickle *pk) {
    return pk->tensors;
}
uint64_t ti_pickle_view_elements(const struct ti_pickle *pk) {
    return pk->view_elems;
}

/* ---- errors -------------------------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static ti_status
vm_error_at(struct ti_pickle *pk, struct ti_err *err, ti_status code, const uint8_t *at,
            const char *fmt, ...) {
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at && pk->start)
        return ti_error(err, code, "%s: at byte %zu: %s", pk->what, (size_t)(at - pk->start), msg);
    return ti_error(err, code, "%s: %s", pk->what, msg);
}

/* Evaluates to `code` where static analysis sees it, as ti_error does (status.h). */
#define vm_error(pk, err, code, ...)                                                               \
    ti_error_value_((code), vm_error_at((pk), (err), (code), __VA_ARGS__))

/* ---- which globals a file may name ---------------------------------------------------------
 *
 * Two lists. The DENY list names callables that run code, spawn processes, load libraries,
 * touch files or unpickle other data: a file naming one is hostile and is refused whatever the
 * caller allows. The ALLOW list names what real checkpoints and embedding files contain (torch's
 * weights_only set, plus what Lightning-era SD .ckpt files and A1111/peer embeddings hold). A
 * global on neither list is refused too, naming it, unless the VM was told to keep unknown
 * globals inert (TI_PICKLE_ALLOW_UNKNOWN_GLOBALS): ti never calls anything either way, but it
 * must not tell a user that a file it cannot vouch for is fine. */

/* Whole modules (and their submodules) whose callables run code, touch files or processes, or
 * call other callables (operator/functools chains). NULL name = every name in the module. */
static const struct {
    const char *module, *name;
} denied[] = {
    {"os", NULL},
    {"posix", NULL},
    {"nt", NULL},
    {"sys", NULL},
    {"subprocess", NULL},
    {"runpy", NULL},
    {"importlib", NULL},
    {"imp", NULL},
    {"shutil", NULL},
    {"socket", NULL},
    {"pty", NULL},
    {"ctypes", NULL},
    {"_ctypes", NULL},
    {"multiprocessing", NULL},
    {"signal", NULL},
    {"code", NULL},
    {"codeop", NULL},
    {"pdb", NULL},
    {"bdb", NULL},
    {"pickle", NULL},
    {"_pickle", NULL},
    {"cPickle", NULL},
    {"pickletools", NULL},
    {"shelve", NULL},
    {"dbm", NULL},
    {"marshal", NULL},
    {"webbrowser", NULL},
    {"commands", NULL},
    {"popen2", NULL},
    {"asyncio", NULL},
    {"operator", NULL},
    {"_operator", NULL},
    {"functools", NULL},
    {"types", NULL},
    {"timeit", NULL},
    {"trace", NULL},
    {"profile", NULL},
    {"cProfile", NULL},
    {"doctest", NULL},
    {"pydoc", NULL},
    {"idlelib", NULL},
    {"zipimport", NULL},
    {"pkgutil", NULL},
    {"site", NULL},
    {"io", NULL},
    {"_io", NULL},
    {"codecs", NULL},
    {"tempfile", NULL},
    {"urllib", NULL},
    {"http", NULL},
    {"ftplib", NULL},
    {"smtplib", NULL},
    {"telnetlib", NULL},
    {"requests", NULL},
    {"pip", NULL},
    {"setuptools", NULL},
    {"distutils", NULL},
    {"venv", NULL},
    {"ensurepip", NULL},
    {"_posixsubprocess", NULL},
    {"_winapi", NULL},
    {"msvcrt", NULL},
    {"winreg", NULL},
    {"threading", NULL},
    {"_thread", NULL},
    {"inspect", NULL},
    {"dill", NULL},
    {"cloudpickle", NULL},
    {"joblib", NULL},
    {"yaml", NULL},
    {"glob", NULL},
    {"pandas", NULL}, /* read_pickle, read_csv, eval, ... */
    {"pathlib", NULL},
    {"torch", "load"},
    {"torch.serialization", NULL}, /* _load, load, ...; _get_layout is allowed below */
    {"torch.hub", NULL},
    {"torch.package", NULL},
    {"torch.storage", "_load_from_bytes"},
    {"torch.jit", NULL},
    {"torch.utils", NULL}, /* cpp_extension.load_inline, data, ... */
    {"torch.ops", NULL},
    {"torch._ops", NULL},
    {"torch._C", NULL},
    {"torch.classes", NULL},
    {"torch.library", NULL},
    {"torch._dynamo", NULL},
    {"torch.fx", NULL},
    {"numpy", "load"},
    {"numpy", "loads"},
    {"numpy", "fromfile"},
    {"numpy", "loadtxt"},
    {"numpy", "genfromtxt"},
    {"numpy.lib", NULL},
    {"numpy.testing", NULL},
    {"numpy.f2py", NULL},
    {"numpy.distutils", NULL},
    {"numpy.ctypeslib", NULL},
};

/* builtins that are plain types (inert as symbols, harmless to construct); every other
 * builtin (eval, exec, getattr, setattr, __import__, compile, open, input, globals, vars,
 * breakpoint, ...) is refused */
static const char *const builtin_types[] = {
    "set",   "frozenset", "bytearray", "bytes", "complex", "slice", "range",    "object",   "int",
    "float", "str",       "bool",      "list",  "dict",    "tuple", "NoneType", "Ellipsis",
};

/* What real files name. name NULL: every name of exactly that module. */
static const struct {
    const char *module, *name;
} allowed[] = {
    /* containers and codecs */
    {"collections", "OrderedDict"},
    {"collections", "defaultdict"},
    {"collections", "Counter"},
    {"collections", "deque"},
    {"_codecs", "encode"},
    {"argparse", "Namespace"}, /* old hparams */
    /* torch: rebuild helpers, tensor types, layouts, parameters, versions */
    {"torch._utils", "_rebuild_tensor"},
    {"torch._utils", "_rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_tensor_v3"},
    {"torch._utils", "_rebuild_parameter"},
    {"torch._utils", "_rebuild_parameter_with_state"},
    {"torch._utils", "_rebuild_qtensor"},
    {"torch._utils", "_rebuild_sparse_tensor"},
    {"torch._utils", "_rebuild_sparse_csr_tensor"},
    {"torch._utils", "_rebuild_meta_tensor_no_storage"},
    {"torch._utils", "_rebuild_wrapper_subclass"},
    {"torch._utils", "_rebuild_nested_tensor"},
    {"torch._utils", "_rebuild_device_tensor_from_numpy"},
    {"torch._utils", "_rebuild_device_tensor_from_cpu_tensor"},
    {"torch._tensor", "_rebuild_from_type_v2"},
    {"torch", "Size"},
    {"torch", "Tensor"},
    {"torch", "device"},
    {"torch", "dtype"},
    {"torch", "layout"},
    {"torch", "strided"},
    {"torch", "sparse_coo"},
    {"torch", "sparse_csr"},
    {"torch", "_mkldnn"},
    {"torch", "contiguous_format"},
    {"torch", "channels_last"},
    {"torch", "preserve_format"},
    {"torch", "per_tensor_affine"},
    {"torch", "per_tensor_symmetric"},
    {"torch", "per_channel_affine"},
    {"torch", "per_channel_symmetric"},
    {"torch", "per_channel_affine_float_qparams"},
    {"torch.storage", "TypedStorage"},
    {"torch.storage", "UntypedStorage"},
    {"torch.storage", "_TypedStorage"},
    {"torch.storage", "_UntypedStorage"},
    {"torch.serialization", "_get_layout"},
    {"torch.nn.parameter", "Parameter"},
    {"torch.nn.parameter", "Buffer"},
    {"torch.nn.modules.container", "ParameterDict"},
    {"torch.nn.modules.container", "ParameterList"},
    {"torch.torch_version", "TorchVersion"},
    /* numpy scalars, dtypes and arrays (Lightning callback state: best_model_score, ...) */
    {"numpy.core.multiarray", "scalar"},
    {"numpy.core.multiarray", "_reconstruct"},
    {"numpy._core.multiarray", "scalar"},
    {"numpy._core.multiarray", "_reconstruct"},
    {"numpy", "dtype"},
    {"numpy", "ndarray"},
    {"numpy.dtypes", NULL},
    /* Lightning: the hparams dict and the callbacks module (classes below) */
    {"pytorch_lightning.utilities.parsing", "AttributeDict"},
    {"lightning.pytorch.utilities.parsing", "AttributeDict"},
    {"lightning_fabric.utilities.data", "AttributeDict"},
    {"lightning.fabric.utilities.data", "AttributeDict"},
    {"pytorch_lightning.callbacks", "model_checkpoint"},
    {"pytorch_lightning.trainer.states", "TrainerFn"}, /* loop state enums */
    {"pytorch_lightning.trainer.states", "TrainerStatus"},
    {"pytorch_lightning.trainer.states", "RunningStage"},
    {"lightning.pytorch.trainer.states", "TrainerFn"},
    {"lightning.pytorch.trainer.states", "TrainerStatus"},
    {"lightning.pytorch.trainer.states", "RunningStage"},
};

/* torch dtype objects by name (torch.float32, torch.bfloat16, torch.float8_e4m3fn, ...) */
static const char *const torch_dtypes[] = {
    "float32",
    "float",
    "float16",
    "half",
    "bfloat16",
    "float64",
    "double",
    "int64",
    "long",
    "int32",
    "int",
    "int16",
    "short",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex32",
    "complex64",
    "complex128",
    "cfloat",
    "cdouble",
    "chalf",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "bits8",
    "bits16",
};

static int module_in(const char *module, const char *m) {
    size_t n = strlen(m);
    return !strncmp(module, m, n) && (module[n] == '\0' || module[n] == '.');
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && !strcmp(s + a - b, suffix);
}

/* Returns a reason if module.name must be refused, else NULL. */
static const char *denied_global(const char *module, const char *name) {
    if (!strcmp(module, "builtins") || !strcmp(module, "__builtin__")) {
        for (size_t i = 0; i < sizeof builtin_types / sizeof *builtin_types; i++)
            if (!strcmp(name, builtin_types[i])) return NULL;
        return "a Python builtin that can run code or reach the system";
    }
    if (!strcmp(module, "torch.serialization") && !strcmp(name, "_get_layout")) return NULL;
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        if (!module_in(module, denied[i].module)) continue;
        if (denied[i].name == NULL || !strcmp(name, denied[i].name))
            return "a callable that can run code, load libraries, spawn processes or touch files";
    }
    return NULL;
}

/* 1 if module.name is something real checkpoints and embedding files contain. */
static int allowed_global(const char *module, const char *name) {
    if (!strcmp(module, "builtins") || !strcmp(module, "__builtin__"))
        return 1; /* denied_global already refused every builtin that is not a plain type */
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (!strcmp(module, allowed[i].module) &&
            (allowed[i].name == NULL || !strcmp(name, allowed[i].name)))
            return 1;
    /* torch storages and legacy tensor classes: torch.FloatStorage, torch.cuda.HalfTensor */
    if ((!strcmp(module, "torch") || !strcmp(module, "torch.cuda")) &&
        (ends_with(name, "Storage") || ends_with(name, "Tensor")))
        return 1;
    if (!strcmp(module, "torch"))
        for (size_t i = 0; i < sizeof torch_dtypes / sizeof *torch_dtypes; i++)
            if (!strcmp(name, torch_dtypes[i])) return 1;
    /* Lightning callback classes (kept inert: they only key the `callbacks` state dict) */
    if ((module_in(module, "pytorch_lightning.callbacks") ||
         module_in(module, "lightning.pytorch.callbacks")) &&
        name[0] >= 'A' && name[0] <= 'Z' && strcmp(name, "LambdaCallback"))
        return 1;
    return 0;
}

/* The policy: TI_OK, or TI_ERR_UNSAFE with a message naming module.name. */
static ti_status judge_global(struct ti_pickle *pk, const char *m, const char *n, const uint8_t *at,
                              struct ti_err *err) {
    const char *why = denied_global(m, n);
    if (why)
        return vm_error(pk, err, TI_ERR_UNSAFE, at,
                        "refused: the file references %s.%s, %s. ti never runs code from model "
                        "files; this file was made to run code when loaded with torch.load. Do "
                        "not load it with other tools either",
                        m, n, why);
    if (!(pk->flags & TI_PICKLE_ALLOW_UNKNOWN_GLOBALS) && !allowed_global(m, n))
        return vm_error(pk, err, TI_ERR_UNSAFE, at,
                        "refused: the file references %s.%s, which is not among the names model "
                        "checkpoints and embedding files contain (torch tensors, storages and "
                        "dtypes, collections, numpy scalars, Lightning callbacks, ...), so ti "
                        "cannot vouch for it. ti never calls it; if you trust the file, "
                        "--allow-unknown-globals (TI_PICKLE_ALLOW_UNKNOWN_GLOBALS) keeps such "
                        "names inert and loads it",
                        m, n);
    return TI_OK;
}

static const char *norm_module(const char *m) {
    if (!strcmp(m, "__builtin__")) return "builtins";
    if (!strcmp(m, "copy_reg")) return "copyreg";
    return m;
}

int ti_py_is_global(const struct ti_py *v, const char *module, const char *name) {
    return v && v->kind == TI_PY_GLOBAL && !strcmp(norm_module(v->u.global.module), module) &&
           !strcmp(v->u.global.name, name);
}

static ti_status push_global(struct ti_pickle *pk, const char *module, size_t mlen,
                             const char *name, size_t nlen, const uint8_t *at, struct ti_py **out,
                             struct ti_err *err) {
    if (mlen == 0 || nlen == 0 || mlen > MAX_GLOBAL_NAME || nlen > MAX_GLOBAL_NAME ||
        memchr(module, 0, mlen) || memchr(name, 0, nlen))
        return vm_error(pk, err, TI_ERR_FORMAT, at, "invalid GLOBAL name");
    char *m = new_str(pk, module, mlen), *n = new_str(pk, name, nlen);
    struct ti_py *v = new_node(pk, TI_PY_GLOBAL);
    if (!m || !n || !v) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
    TI_TRY(judge_global(pk, m, n, at, err));
    v->u.global.module = m;
    v->u.global.name = n;
    *out = v;
    return TI_OK;
}

/* ---- storages and tensors ------------------------------------------------------------------ */

static const struct {
    const char *name;
    enum ti_dtype dt;
} storage_types[] = {
    {"FloatStorage", TI_DTYPE_F32},     {"HalfStorage", TI_DTYPE_F16},
    {"BFloat16Storage", TI_DTYPE_BF16}, {"DoubleStorage", TI_DTYPE_F64},
    {"LongStorage", TI_DTYPE_I64},      {"IntStorage", TI_DTYPE_I32},
    {"ShortStorage", TI_DTYPE_I16},     {"CharStorage", TI_DTYPE_I8},
    {"ByteStorage", TI_DTYPE_U8},       {"BoolStorage", TI_DTYPE_BOOL},
    {"UntypedStorage", TI_DTYPE_U8},
};

static const struct {
    const char *name;
    enum ti_dtype dt;
} dtype_names[] = {
    {"float32", TI_DTYPE_F32}, {"float", TI_DTYPE_F32},     {"float16", TI_DTYPE_F16},
    {"half", TI_DTYPE_F16},    {"bfloat16", TI_DTYPE_BF16}, {"float64", TI_DTYPE_F64},
    {"double", TI_DTYPE_F64},  {"int64", TI_DTYPE_I64},     {"long", TI_DTYPE_I64},
    {"int32", TI_DTYPE_I32},   {"int", TI_DTYPE_I32},       {"int16", TI_DTYPE_I16},
    {"short", TI_DTYPE_I16},   {"int8", TI_DTYPE_I8},       {"uint8", TI_DTYPE_U8},
    {"bool", TI_DTYPE_BOOL},
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static struct ti_py_storage *storage_lookup(struct ti_pickle *pk, const char *key) {
    if (!pk->st_cap) return NULL;
    for (size_t i = hash_str(key) & (pk->st_cap - 1);; i = (i + 1) & (pk->st_cap - 1)) {
        struct ti_py_storage *s = pk->st_table[i];
        if (!s) return NULL;
        if (!strcmp(s->key, key)) return s;
    }
}

static int storage_insert(struct ti_pickle *pk, struct ti_py_storage *s) {
    if (2 * (pk->n_storages + 1) > pk->st_cap) {
        size_t cap = pk->st_cap ? 2 * pk->st_cap : 64;
        struct ti_py_storage **t = calloc(cap, sizeof *t);
        if (!t) return 0;
        for (size_t j = 0; j < pk->st_cap; j++) {
            struct ti_py_storage *o = pk->st_table[j];
            if (!o) continue;
            size_t i = hash_str(o->key) & (cap - 1);
            while (t[i])
                i = (i + 1) & (cap - 1);
            t[i] = o;
        }
        free(pk->st_table);
        pk->st_table = t;
        pk->st_cap = cap;
    }
    size_t i = hash_str(s->key) & (pk->st_cap - 1);
    while (pk->st_table[i])
        i = (i + 1) & (pk->st_cap - 1);
    pk->st_table[i] = s;
    *pk->storage_tail = s;
    pk->storage_tail = &s->next;
    pk->n_storages++;
    return 1;
}

/* BINPERSID: ('storage', <storage class>, key, location, numel[, view_metadata]); in legacy
 * (pre-zip) torch.save files also ('module', <class>, source_file, source), which torch.load
 * answers with the class itself (an nn.Module such as the peer's ParameterDict; the class was
 * checked against the lists when its GLOBAL was read). */
static ti_status persistent_load(struct ti_pickle *pk, struct ti_py *pid, const uint8_t *at,
                                 struct ti_py **out, struct ti_err *err) {
    if (pid->kind == TI_PY_TUPLE && pid->u.seq.n == 4 &&
        ti_py_is_str(pid->u.seq.items[0], "module") && pid->u.seq.items[1]->kind == TI_PY_GLOBAL) {
        *out = pid->u.seq.items[1];
        return TI_OK;
    }
    if (pid->kind != TI_PY_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6 ||
        !ti_py_is_str(pid->u.seq.items[0], "storage"))
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "persistent id is not a torch storage "
                        "tuple ('storage', type, key, location, numel)");
    struct ti_py **it = pid->u.seq.items;
    const struct ti_py *cls = it[1];
    if (cls->kind != TI_PY_GLOBAL)
        return vm_error(pk, err, TI_ERR_FORMAT, at, "storage type is a %s, not a class",
                        ti_py_kind_name(cls->kind));
    const char *mod = cls->u.global.module, *name = cls->u.global.name;
    int found = -1;
    if (!strcmp(mod, "torch") || !strcmp(mod, "torch.cuda") || !strcmp(mod, "torch.storage"))
        for (size_t i = 0; i < sizeof storage_types / sizeof *storage_types; i++)
            if (!strcmp(name, storage_types[i].name)) found = (int)i;
    if (found < 0)
        return vm_error(pk, err, TI_ERR_UNSUPPORTED, at,
                        "storage type %s.%s is not supported "
                        "(ti reads float32/16/64, bfloat16, int8-64, uint8 and bool storages)",
                        mod, name);
    if (it[2]->kind != TI_PY_STR || it[3]->kind != TI_PY_STR || it[4]->kind != TI_PY_INT ||
        it[4]->u.i < 0)
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "storage tuple has wrong field types "
                        "(key and location must be strings, numel a non-negative int)");
    if (pid->u.seq.n == 6 && it[5]->kind != TI_PY_NONE)
        return vm_error(pk, err, TI_ERR_UNSUPPORTED, at,
                        "legacy storage views (view_metadata) "
                        "are not supported");
    enum ti_dtype dt = storage_types[found].dt;
    uint64_t numel = (uint64_t)it[4]->u.i;
    if (numel > (UINT64_MAX >> 4))
        return vm_error(pk, err, TI_ERR_FORMAT, at, "storage of %llu elements is impossible",
                        (unsigned long long)numel);
    const char *key = it[2]->u.str.s;
    struct ti_py_storage *s = storage_lookup(pk, key);
    if (s) {
        if (s->dtype != dt || s->numel != numel)
            return vm_error(pk, err, TI_ERR_FORMAT, at,
                            "storage '%s' is declared twice with "
                            "different types or sizes",
                            key);
    } else {
        s = calloc(1, sizeof *s);
        if (!s) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
        s->key = key;
        s->location = it[3]->u.str.s;
        s->type_name = name;
        s->dtype = dt;
        s->numel = numel;
        if (!storage_insert(pk, s)) {
            free(s);
            return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
        }
    }
    struct ti_py *v = new_node(pk, TI_PY_STORAGE);
    if (!v) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
    v->u.storage = s;
    *out = v;
    return TI_OK;
}

static int int_tuple(const struct ti_py *v, int64_t *out, int *n) {
    if (v->kind != TI_PY_TUPLE && v->kind != TI_PY_LIST) return 0;
    if (v->u.seq.n > TI_MAX_DIMS) {
        *n = (int)(v->u.seq.n > 1000 ? 1000 : v->u.seq.n);
        return -1;
    }
    *n = (int)v->u.seq.n;
    for (size_t i = 0; i < v->u.seq.n; i++) {
        if (v->u.seq.items[i]->kind != TI_PY_INT) return 0;
        out[i] = v->u.seq.items[i]->u.i;
    }
    return 1;
}

/* _rebuild_tensor(storage, offset, size, stride)
 * _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
 * _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata]) */
static ti_status rebuild_tensor(struct ti_pickle *pk, int version, const struct ti_py *args,
                                const uint8_t *at, struct ti_py **out, struct ti_err *err) {
    size_t n = args->u.seq.n;
    int ok = version == 1 ? n == 4 : version == 2 ? (n == 6 || n == 7) : (n == 7 || n == 8);
    if (!ok)
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "_rebuild_tensor%s takes %s arguments, "
                        "got %zu",
                        version == 1   ? ""
                        : version == 2 ? "_v2"
                                       : "_v3",
                        version == 1   ? "4"
                        : version == 2 ? "6 or 7"
                                       : "7 or 8",
                        n);
    struct ti_py *const *a = args->u.seq.items;
    if (a[0]->kind != TI_PY_STORAGE)
        return vm_error(pk, err, TI_ERR_FORMAT, at, "tensor storage argument is a %s",
                        ti_py_kind_name(a[0]->kind));
    struct ti_py_storage *s = a[0]->u.storage;
    if (a[1]->kind != TI_PY_INT || a[1]->u.i < 0)
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "tensor storage offset is not a "
                        "non-negative int");
    int64_t size[TI_MAX_DIMS], stride[TI_MAX_DIMS];
    int nd = 0, ns = 0;
    int rs = int_tuple(a[2], size, &nd), rt = int_tuple(a[3], stride, &ns);
    if (rs < 0 || rt < 0)
        return vm_error(pk, err, TI_ERR_UNSUPPORTED, at,
                        "tensor with %d dimensions (ti "
                        "supports up to %d)",
                        rs < 0 ? nd : ns, TI_MAX_DIMS);
    if (!rs || !rt || nd != ns)
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "tensor size and stride must be int tuples "
                        "of the same length");
    enum ti_dtype dt = s->dtype;
    if (version == 3) {
        const struct ti_py *d = a[6];
        int found = -1;
        if (d->kind == TI_PY_GLOBAL && !strcmp(d->u.global.module, "torch"))
            for (size_t i = 0; i < sizeof dtype_names / sizeof *dtype_names; i++)
                if (!strcmp(d->u.global.name, dtype_names[i].name)) found = (int)i;
        if (found < 0)
            return vm_error(pk, err, TI_ERR_UNSUPPORTED, at,
                            "tensor dtype %s%s%s is not "
                            "supported",
                            d->kind == TI_PY_GLOBAL ? d->u.global.module : "?",
                            d->kind == TI_PY_GLOBAL ? "." : "",
                            d->kind == TI_PY_GLOBAL ? d->u.global.name : "");
        dt = dtype_names[found].dt;
        if (strcmp(s->type_name, "UntypedStorage") && dt != s->dtype)
            return vm_error(pk, err, TI_ERR_FORMAT, at,
                            "tensor dtype %s does not match its "
                            "%s",
                            ti_dtype_name(dt), s->type_name);
    }
    /* the element count and byte size of the view must fit 63 bits (ti_tensor_numel and
     * ti_tensor_nbytes multiply unchecked), even when a zero dimension makes it empty */
    uint64_t es = ti_dtype_size(dt), numel = 1;
    for (int i = 0; i < nd; i++) {
        uint64_t dim = size[i] > 0 ? (uint64_t)size[i] : 1;
        if (__builtin_mul_overflow(numel, dim, &numel) || numel > (uint64_t)INT64_MAX / es) {
            char sh[160];
            return vm_error(pk, err, TI_ERR_FORMAT, at,
                            "tensor size %s: its element count or byte size overflows 64 bits",
                            ti_shape_str(nd, size, sh, sizeof sh));
        }
    }
    for (int i = 0; i < nd; i++)
        if (size[i] == 0) numel = 0;
    /* bounds of the view, in bytes of the storage, without overflow */
    uint64_t sbytes = s->numel * ti_dtype_size(s->dtype);
    uint64_t off = (uint64_t)a[1]->u.i, last = off;
    int empty = 0;
    for (int i = 0; i < nd; i++) {
        if (size[i] < 0 || stride[i] < 0)
            return vm_error(pk, err, TI_ERR_FORMAT, at, "tensor has a negative size or stride");
        if (size[i] == 0) empty = 1;
    }
    if (!empty) {
        for (int i = 0; i < nd; i++) {
            uint64_t step;
            if (__builtin_mul_overflow((uint64_t)(size[i] - 1), (uint64_t)stride[i], &step) ||
                __builtin_add_overflow(last, step, &last))
                goto out_of_bounds;
        }
        uint64_t end;
        if (__builtin_add_overflow(last, 1, &end) || __builtin_mul_overflow(end, es, &end) ||
            end > sbytes)
            goto out_of_bounds;
    } else if (off > (es ? sbytes / es : 0)) {
        goto out_of_bounds;
    }
    /* An overlapping (stride-0, expanded) view can name far more elements than its storage
     * holds: a 200-byte file could ask whoever reads every element for 2^40 of them. Real files
     * expand only small buffers (position_ids [1, 77] with stride [0, 1]). */
    if (numel > sbytes / es + TI_PICKLE_VIEW_SLACK) {
        char sh[160], stv[160];
        return vm_error(pk, err, TI_ERR_FORMAT, at,
                        "tensor view (size %s, stride %s) names %llu elements, more than its "
                        "storage '%s' holds (%llu %s elements) by over %u: overlapping views that "
                        "large are refused",
                        ti_shape_str(nd, size, sh, sizeof sh),
                        ti_shape_str(nd, stride, stv, sizeof stv), (unsigned long long)numel,
                        s->key, (unsigned long long)s->numel, ti_dtype_name(s->dtype),
                        TI_PICKLE_VIEW_SLACK);
    }
    struct ti_py *v = new_node(pk, TI_PY_TENSOR);
    if (!v) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
    struct ti_py_tensor *t = &v->u.tensor;
    t->t = ti_tensor_none();
    t->t.dtype = dt;
    t->t.device = TI_DEVICE_CPU;
    t->t.ndim = nd;
    for (int i = 0; i < nd; i++) {
        t->t.shape[i] = size[i];
        t->t.stride[i] = stride[i];
    }
    t->storage = s;
    t->offset = (int64_t)off;
    t->requires_grad = version >= 2 && a[4]->kind == TI_PY_BOOL && a[4]->u.i;
    pk->view_elems = numel > UINT64_MAX - pk->view_elems ? UINT64_MAX : pk->view_elems + numel;
    *pk->tensor_tail = v;
    pk->tensor_tail = &t->next;
    *out = v;
    return TI_OK;
out_of_bounds : {
    char sh[160], stv[160];
    return vm_error(pk, err, TI_ERR_FORMAT, at,
                    "tensor view (offset %llu, size %s, stride %s) "
                    "reaches past the end of storage '%s' (%llu %s elements)",
                    (unsigned long long)off, ti_shape_str(nd, size, sh, sizeof sh),
                    ti_shape_str(nd, stride, stv, sizeof stv), s->key, (unsigned long long)s->numel,
                    ti_dtype_name(s->dtype));
}
}

ti_status ti_pickle_bind_tensors(struct ti_pickle *pk, struct ti_err *err) {
    for (struct ti_py_storage *s = pk->storages; s; s = s->next) {
        uint64_t need = s->numel * ti_dtype_size(s->dtype);
        if (!s->data || s->nbytes < need)
            return ti_error(err, TI_ERR_FORMAT,
                            "%s: storage '%s' holds %llu bytes but the "
                            "pickle declares %llu %s elements (%llu bytes): the file is "
                            "truncated or damaged",
                            pk->what, s->key, (unsigned long long)(s->data ? s->nbytes : 0),
                            (unsigned long long)s->numel, ti_dtype_name(s->dtype),
                            (unsigned long long)need);
    }
    for (struct ti_py *v = pk->tensors; v; v = v->u.tensor.next) {
        struct ti_py_tensor *t = &v->u.tensor;
        t->t.data = (void *)(t->storage->data + (uint64_t)t->offset * ti_dtype_size(t->t.dtype));
    }
    return TI_OK;
}

/* ---- interpreted calls --------------------------------------------------------------------- */

static ti_status reduce_call(struct ti_pickle *pk, struct ti_py *fn, struct ti_py *args,
                             const uint8_t *at, int depth, struct ti_py **out, struct ti_err *err) {
    size_t n = args->u.seq.n;
    struct ti_py *const *a = args->u.seq.items;
    if (ti_py_is_global(fn, "torch._utils", "_rebuild_tensor"))
        return rebuild_tensor(pk, 1, args, at, out, err);
    if (ti_py_is_global(fn, "torch._utils", "_rebuild_tensor_v2"))
        return rebuild_tensor(pk, 2, args, at, out, err);
    if (ti_py_is_global(fn, "torch._utils", "_rebuild_tensor_v3"))
        return rebuild_tensor(pk, 3, args, at, out, err);
    if (ti_py_is_global(fn, "torch._utils", "_rebuild_parameter") ||
        ti_py_is_global(fn, "torch._utils", "_rebuild_parameter_with_state")) {
        if (n < 2 || a[0]->kind != TI_PY_TENSOR)
            return vm_error(pk, err, TI_ERR_FORMAT, at, "_rebuild_parameter without a tensor");
        a[0]->u.tensor.is_param = 1;
        a[0]->u.tensor.requires_grad = a[1]->kind == TI_PY_BOOL && a[1]->u.i;
        *out = a[0];
        return TI_OK;
    }
    if (ti_py_is_global(fn, "torch._tensor", "_rebuild_from_type_v2")) {
        /* (func, new_type, args, state): a tensor subclass; rebuild the plain tensor */
        if (n != 4 || a[2]->kind != TI_PY_TUPLE || depth > 0)
            return vm_error(pk, err, TI_ERR_FORMAT, at, "malformed _rebuild_from_type_v2");
        return reduce_call(pk, a[0], a[2], at, depth + 1, out, err);
    }
    if (depth > 0)
        return vm_error(pk, err, TI_ERR_FORMAT, at, "_rebuild_from_type_v2 of an unknown function");
    struct ti_py *v = NULL;
    if (ti_py_is_global(fn, "collections", "OrderedDict")) {
        v = new_node(pk, TI_PY_DICT);
        if (v && n == 1 && (a[0]->kind == TI_PY_LIST || a[0]->kind == TI_PY_TUPLE)) {
            for (size_t i = 0; i < a[0]->u.seq.n; i++) {
                const struct ti_py *pair = a[0]->u.seq.items[i];
                if ((pair->kind != TI_PY_TUPLE && pair->kind != TI_PY_LIST) || pair->u.seq.n != 2)
                    return vm_error(pk, err, TI_ERR_FORMAT, at, "OrderedDict item is not a pair");
                if (!seq_push(v, pair->u.seq.items[0]) || !seq_push(v, pair->u.seq.items[1]))
                    return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
            }
        }
    } else if (ti_py_is_global(fn, "builtins", "set") ||
               ti_py_is_global(fn, "builtins", "frozenset")) {
        v = new_node(pk, TI_PY_SET);
        if (v && n == 1 && (a[0]->kind == TI_PY_LIST || a[0]->kind == TI_PY_TUPLE))
            for (size_t i = 0; i < a[0]->u.seq.n; i++)
                if (!seq_push(v, a[0]->u.seq.items[i]))
                    return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
    } else if (ti_py_is_global(fn, "torch", "Size") && n == 1 && a[0]->kind == TI_PY_TUPLE) {
        *out = a[0];
        return TI_OK;
    } else if (ti_py_is_global(fn, "_codecs", "encode") && n == 2 && a[0]->kind == TI_PY_STR &&
               (ti_py_is_str(a[1], "latin1") || ti_py_is_str(a[1], "latin-1"))) {
        /* protocol 2 pickles bytes as encode(str, 'latin1'): code points 0..255 -> bytes */
        const uint8_t *s = (const uint8_t *)a[0]->u.str.s;
        size_t len = a[0]->u.str.len, k = 0;
        char *b = new_bytes(pk, len + 1);
        v = new_node(pk, TI_PY_BYTES);
        if (!b || !v) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
        for (size_t i = 0; i < len; i++) {
            if (s[i] < 0x80)
                b[k++] = (char)s[i];
            else if ((s[i] & 0xE0) == 0xC0 && i + 1 < len && s[i] <= 0xC3)
                b[k++] = (char)(((s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F)), i++;
            else
                return vm_error(pk, err, TI_ERR_FORMAT, at, "_codecs.encode of a non-latin1 str");
        }
        v->u.str.s = b;
        v->u.str.len = k;
    } else {
        v = new_node(pk, TI_PY_OBJECT); /* inert: a symbol applied to arguments, never called */
        if (v) {
            v->u.obj.cls = fn;
            v->u.obj.args = args;
        }
    }
    if (!v) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
    *out = v;
    return TI_OK;
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* ---- the VM -------------------------------------------------------------------------------- */

static const char *opcode_name(uint8_t op) {
    switch (op) {
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x92: return "NEWOBJ_EX";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'P': return "PERSID";
    case 'I': return "INT (text)";
    case 'L': return "LONG (text)";
    case 'F': return "FLOAT (text)";
    case 'S': return "STRING (text)";
    case 'V': return "UNICODE (text)";
    case 'g': return "GET (text)";
    case 'p': return "PUT (text)";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

static ti_status push(struct ti_pickle *pk, struct ti_py *v, const uint8_t *at,
                      struct ti_err *err) {
    if (!v)
        return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or too many objects (%u)",
                        MAX_NODES);
    if (pk->sp == pk->stack_cap) {
        if (pk->stack_cap >= MAX_STACK)
            return vm_error(pk, err, TI_ERR_FORMAT, at, "stack deeper than %u", MAX_STACK);
        size_t cap = pk->stack_cap ? 2 * pk->stack_cap : 256;
        struct ti_py **s = realloc(pk->stack, cap * sizeof *s);
        if (!s) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
        pk->stack = s;
        pk->stack_cap = cap;
    }
    pk->stack[pk->sp++] = v;
    return TI_OK;
}

static size_t mark_base(const struct ti_pickle *pk) {
    return pk->n_marks ? pk->marks[pk->n_marks - 1] : 0;
}

static ti_status pop(struct ti_pickle *pk, struct ti_py **v, const uint8_t *at,
                     struct ti_err *err) {
    if (pk->sp <= mark_base(pk)) return vm_error(pk, err, TI_ERR_FORMAT, at, "stack underflow");
    *v = pk->stack[--pk->sp];
    return TI_OK;
}

static ti_status top(struct ti_pickle *pk, struct ti_py **v, const uint8_t *at,
                     struct ti_err *err) {
    if (pk->sp <= mark_base(pk)) return vm_error(pk, err, TI_ERR_FORMAT, at, "stack underflow");
    *v = pk->stack[pk->sp - 1];
    return TI_OK;
}

/* Pops everything down to the last MARK: items in stack[*first .. *first + *n). */
static ti_status pop_mark(struct ti_pickle *pk, size_t *first, size_t *n, const uint8_t *at,
                          struct ti_err *err) {
    if (!pk->n_marks) return vm_error(pk, err, TI_ERR_FORMAT, at, "no MARK on the stack");
    size_t base = pk->marks[--pk->n_marks];
    *first = base;
    *n = pk->sp - base;
    pk->sp = base;
    return TI_OK;
}

static ti_status memo_put(struct ti_pickle *pk, uint64_t idx, struct ti_py *v, const uint8_t *at,
                          struct ti_err *err) {
    if (idx >= pk->memo_limit)
        return vm_error(pk, err, TI_ERR_FORMAT, at, "memo index %llu out of range",
                        (unsigned long long)idx);
    if (idx >= pk->memo_cap) {
        size_t cap = pk->memo_cap ? pk->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        if (cap > pk->memo_limit) cap = (size_t)pk->memo_limit;
        struct ti_py **m = realloc(pk->memo, cap * sizeof *m);
        if (!m) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
        memset(m + pk->memo_cap, 0, (cap - pk->memo_cap) * sizeof *m);
        pk->memo = m;
        pk->memo_cap = cap;
    }
    if (!pk->memo[idx]) pk->memo_count++;
    pk->memo[idx] = v;
    return TI_OK;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* LONG1/LONG4 payload: little-endian two's complement */
static struct ti_py *make_long(struct ti_pickle *pk, const uint8_t *p, uint64_t n) {
    if (n <= 8) {
        struct ti_py *v = new_node(pk, TI_PY_INT);
        if (!v) return NULL;
        uint64_t u = n ? rd_le(p, (int)n) : 0;
        if (n && n < 8 && (p[n - 1] & 0x80)) u |= ~0ull << (8 * n);
        v->u.i = (int64_t)u;
        return v;
    }
    struct ti_py *v = new_node(pk, TI_PY_BIGINT);
    if (!v) return NULL;
    v->u.str.s = new_str(pk, p, (size_t)n);
    v->u.str.len = (size_t)n;
    return v->u.str.s ? v : NULL;
}

static struct ti_py *make_str(struct ti_pickle *pk, enum ti_py_kind k, const uint8_t *p, size_t n) {
    struct ti_py *v = new_node(pk, k);
    if (!v) return NULL;
    v->u.str.s = new_str(pk, p, n);
    v->u.str.len = n;
    return v->u.str.s ? v : NULL;
}

static struct ti_py *make_seq(struct ti_pickle *pk, enum ti_py_kind k, struct ti_py **items,
                              size_t n) {
    struct ti_py *v = new_node(pk, k);
    if (!v) return NULL;
    if (n) {
        v->u.seq.items = malloc(n * sizeof *items);
        if (!v->u.seq.items) return NULL;
        memcpy(v->u.seq.items, items, n * sizeof *items);
        v->u.seq.n = v->u.seq.cap = n;
    }
    return v;
}

static ti_status set_items(struct ti_pickle *pk, struct ti_py *target, struct ti_py **items,
                           size_t n, const uint8_t *at, struct ti_err *err) {
    if (n % 2) return vm_error(pk, err, TI_ERR_FORMAT, at, "SETITEMS with an odd item count");
    if (target->kind == TI_PY_OBJECT) { /* a dict subclass (e.g. lightning's AttributeDict) */
        if (!target->u.obj.dict && !(target->u.obj.dict = new_node(pk, TI_PY_DICT)))
            return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
        target = target->u.obj.dict;
    }
    if (target->kind != TI_PY_DICT)
        return vm_error(pk, err, TI_ERR_FORMAT, at, "SETITEM on a %s",
                        ti_py_kind_name(target->kind));
    for (size_t i = 0; i < n; i++)
        if (!seq_push(target, items[i]))
            return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
    return TI_OK;
}

static ti_status append_items(struct ti_pickle *pk, struct ti_py *target, struct ti_py **items,
                              size_t n, int is_set, const uint8_t *at, struct ti_err *err) {
    if (target->kind == TI_PY_OBJECT && !is_set) {
        if (!target->u.obj.list && !(target->u.obj.list = new_node(pk, TI_PY_LIST)))
            return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory or nodes");
        target = target->u.obj.list;
    }
    if (target->kind != (is_set ? TI_PY_SET : TI_PY_LIST))
        return vm_error(pk, err, TI_ERR_FORMAT, at, "%s on a %s", is_set ? "ADDITEMS" : "APPEND",
                        ti_py_kind_name(target->kind));
    for (size_t i = 0; i < n; i++)
        if (!seq_push(target, items[i]))
            return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
    return TI_OK;
}

/* A linear pass over the opcodes up to the first STOP, before anything runs: every GLOBAL and
 * INST names its callable in its argument, so a hostile pickle is refused by name even when an
 * opcode ti does not support comes first. It stops quietly at anything it cannot step over;
 * the VM then reports that precisely. */
static ti_status prescan(struct ti_pickle *pk, const uint8_t *data, size_t len,
                         struct ti_err *err) {
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        const uint8_t *at = p;
        uint8_t op = *p++;
        uint64_t skip = 0;
        switch (op) {
        case '.': return TI_OK;
        case 0x80:
        case 'K':
        case 'h':
        case 'q':
        case 0x82: skip = 1; break;
        case 'M':
        case 0x83: skip = 2; break;
        case 'J':
        case 'j':
        case 'r':
        case 0x84: skip = 4; break;
        case 'G':
        case 0x95: skip = 8; break;
        case 0x8c:
        case 'U':
        case 'C':
        case 0x8a:
            if (p >= end) return TI_OK;
            skip = 1 + (uint64_t)*p;
            break;
        case 'X':
        case 'T':
        case 'B':
        case 0x8b:
            if (end - p < 4) return TI_OK;
            skip = 4 + rd_le(p, 4);
            break;
        case 0x8d:
        case 0x8e:
        case 0x96:
            if (end - p < 8) return TI_OK;
            skip = rd_le(p, 8);
            if (skip > UINT64_MAX - 8) return TI_OK;
            skip += 8;
            break;
        case 'I':
        case 'L':
        case 'F':
        case 'S':
        case 'V':
        case 'g':
        case 'p':
        case 'P': {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) return TI_OK;
            skip = (uint64_t)(nl - p) + 1;
            break;
        }
        case 'c':
        case 'i': {
            const uint8_t *nl1 = memchr(p, '\n', (size_t)(end - p));
            if (!nl1) return TI_OK;
            const uint8_t *nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1));
            if (!nl2) return TI_OK;
            size_t ml = (size_t)(nl1 - p), nl = (size_t)(nl2 - nl1 - 1);
            if (ml && nl && ml <= MAX_GLOBAL_NAME && nl <= MAX_GLOBAL_NAME) {
                char m[MAX_GLOBAL_NAME + 1], n[MAX_GLOBAL_NAME + 1];
                memcpy(m, p, ml);
                m[ml] = '\0';
                memcpy(n, nl1 + 1, nl);
                n[nl] = '\0';
                /* INST is refused by the VM whatever it names; name a hostile one here */
                if (op == 'i' && denied_global(m, n)) TI_TRY(judge_global(pk, m, n, at, err));
                if (op == 'c') TI_TRY(judge_global(pk, m, n, at, err));
            }
            skip = (uint64_t)(nl2 - p) + 1;
            break;
        }
        case '(':
        case '0':
        case '1':
        case '2':
        case 'N':
        case 0x88:
        case 0x89:
        case ')':
        case ']':
        case '}':
        case 0x8f:
        case 't':
        case 0x85:
        case 0x86:
        case 0x87:
        case 'l':
        case 'd':
        case 'a':
        case 'e':
        case 's':
        case 'u':
        case 'b':
        case 'R':
        case 0x81:
        case 0x92:
        case 'o':
        case 'Q':
        case 0x93:
        case 0x94:
        case 0x90:
        case 0x91:
        case 0x97:
        case 0x98: break;
        default: return TI_OK;
        }
        if (skip > (uint64_t)(end - p)) return TI_OK;
        p += skip;
    }
    return TI_OK;
}

ti_status ti_pickle_run(struct ti_pickle *pk, const uint8_t *data, size_t len, size_t *used,
                        struct ti_py **root, struct ti_err *err) {
    const uint8_t *p = data, *end = data + len;
    ti_status st = TI_OK;
    pk->start = data;
    pk->sp = 0;
    pk->n_marks = 0;
    pk->memo_count = 0;
    if (pk->memo_cap) memset(pk->memo, 0, pk->memo_cap * sizeof *pk->memo);
    pk->memo_limit = (uint64_t)len + 16;
    *root = NULL;
    TI_TRY(prescan(pk, data, len, err));
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if ((uint64_t)(end - p) < (uint64_t)(k)) goto truncated;                                   \
    } while (0)
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((st = (expr)) != TI_OK) return st;                                                     \
    } while (0)
    for (;;) {
        if (p >= end) goto truncated;
        const uint8_t *at = p;
        uint8_t op = *p++;
        struct ti_py *v = NULL, *w = NULL;
        size_t first = 0, n = 0;
        switch (op) {
        case 0x80: /* PROTO */
            NEED(1);
            if (*p > 5) return vm_error(pk, err, TI_ERR_UNSUPPORTED, at, "pickle protocol %d", *p);
            p++;
            break;
        case 0x95: /* FRAME: an 8-byte length we only check */
            NEED(8);
            if (rd_le(p, 8) > (uint64_t)(end - p - 8)) goto truncated;
            p += 8;
            break;
        case '.': /* STOP */
            TRY(pop(pk, &v, at, err));
            *root = v;
            *used = (size_t)(p - data);
            return TI_OK;
        case '(': /* MARK */
            if (pk->n_marks == pk->marks_cap) {
                if (pk->marks_cap >= MAX_MARKS)
                    return vm_error(pk, err, TI_ERR_FORMAT, at, "MARKs nested deeper than %u",
                                    MAX_MARKS);
                size_t cap = pk->marks_cap ? 2 * pk->marks_cap : 64;
                size_t *m = realloc(pk->marks, cap * sizeof *m);
                if (!m) return vm_error(pk, err, TI_ERR_NOMEM, at, "out of memory");
                pk->marks = m;
                pk->marks_cap = cap;
            }
            pk->marks[pk->n_marks++] = pk->sp;
            break;
        case '0': /* POP */
            if (pk->sp > mark_base(pk))
                pk->sp--;
            else
                TRY(pop_mark(pk, &first, &n, at, err));
            break;
        case '1': /* POP_MARK */ TRY(pop_mark(pk, &first, &n, at, err)); break;
        case '2': /* DUP */
            TRY(top(pk, &v, at, err));
            TRY(push(pk, v, at, err));
            break;
        case 'N': TRY(push(pk, new_node(pk, TI_PY_NONE), at, err)); break;
        case 0x88:
        case 0x89: /* NEWTRUE / NEWFALSE */
            v = new_node(pk, TI_PY_BOOL);
            if (v) v->u.i = op == 0x88;
            TRY(push(pk, v, at, err));
            break;
        case 'J': /* BININT */
            NEED(4);
            v = new_node(pk, TI_PY_INT);
            if (v) v->u.i = (int32_t)(uint32_t)rd_le(p, 4);
            p += 4;
            TRY(push(pk, v, at, err));
            break;
        case 'K': /* BININT1 */
            NEED(1);
            v = new_node(pk, TI_PY_INT);
            if (v) v->u.i = *p;
            p += 1;
            TRY(push(pk, v, at, err));
            break;
        case 'M': /* BININT2 */
            NEED(2);
            v = new_node(pk, TI_PY_INT);
            if (v) v->u.i = (int64_t)rd_le(p, 2);
            p += 2;
            TRY(push(pk, v, at, err));
            break;
        case 0x8a: /* LONG1 */
            NEED(1);
            n = *p++;
            NEED(n);
            TRY(push(pk, make_long(pk, p, n), at, err));
            p += n;
            break;
        case 0x8b: { /* LONG4 */
            NEED(4);
            uint64_t k = rd_le(p, 4);
            p += 4;
            if ((int32_t)k < 0) return vm_error(pk, err, TI_ERR_FORMAT, at, "negative LONG4 size");
            NEED(k);
            TRY(push(pk, make_long(pk, p, k), at, err));
            p += k;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            NEED(8);
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = (u << 8) | p[i];
            p += 8;
            v = new_node(pk, TI_PY_FLOAT);
            if (v) memcpy(&v->u.f, &u, 8);
            TRY(push(pk, v, at, err));
            break;
        }
        case 'X':    /* BINUNICODE */
        case 0x8c:   /* SHORT_BINUNICODE */
        case 0x8d: { /* BINUNICODE8 */
            int w8 = op == 'X' ? 4 : op == 0x8c ? 1 : 8;
            NEED(w8);
            uint64_t k = rd_le(p, w8);
            p += w8;
            NEED(k);
            if (!ti_utf8_valid(p, (size_t)k, 1))
                return vm_error(pk, err, TI_ERR_FORMAT, at, "string is not valid UTF-8");
            TRY(push(pk, make_str(pk, TI_PY_STR, p, (size_t)k), at, err));
            p += k;
            break;
        }
        case 'T':   /* BINSTRING (Python 2 str) */
        case 'U': { /* SHORT_BINSTRING */
            int w8 = op == 'T' ? 4 : 1;
            NEED(w8);
            uint64_t k = rd_le(p, w8);
            p += w8;
            if (op == 'T' && (int32_t)k < 0)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "negative BINSTRING size");
            NEED(k);
            TRY(push(pk,
                     make_str(pk, ti_utf8_valid(p, (size_t)k, 1) ? TI_PY_STR : TI_PY_BYTES, p,
                              (size_t)k),
                     at, err));
            p += k;
            break;
        }
        case 'B':    /* BINBYTES */
        case 'C':    /* SHORT_BINBYTES */
        case 0x8e:   /* BINBYTES8 */
        case 0x96: { /* BYTEARRAY8 */
            int w8 = op == 'B' ? 4 : op == 'C' ? 1 : 8;
            NEED(w8);
            uint64_t k = rd_le(p, w8);
            p += w8;
            NEED(k);
            TRY(push(pk, make_str(pk, TI_PY_BYTES, p, (size_t)k), at, err));
            p += k;
            break;
        }
        case ')': TRY(push(pk, make_seq(pk, TI_PY_TUPLE, NULL, 0), at, err)); break;
        case ']': TRY(push(pk, make_seq(pk, TI_PY_LIST, NULL, 0), at, err)); break;
        case '}': TRY(push(pk, make_seq(pk, TI_PY_DICT, NULL, 0), at, err)); break;
        case 0x8f: TRY(push(pk, make_seq(pk, TI_PY_SET, NULL, 0), at, err)); break;
        case 0x85:
        case 0x86:
        case 0x87: { /* TUPLE1/2/3 */
            size_t k = (size_t)(op - 0x84);
            if (pk->sp < mark_base(pk) + k)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "stack underflow");
            pk->sp -= k;
            TRY(push(pk, make_seq(pk, TI_PY_TUPLE, pk->stack + pk->sp, k), at, err));
            break;
        }
        case 't':    /* TUPLE */
        case 'l':    /* LIST */
        case 0x91: { /* FROZENSET */
            TRY(pop_mark(pk, &first, &n, at, err));
            enum ti_py_kind k = op == 't' ? TI_PY_TUPLE : op == 'l' ? TI_PY_LIST : TI_PY_SET;
            TRY(push(pk, make_seq(pk, k, n ? pk->stack + first : NULL, n), at, err));
            break;
        }
        case 'd': /* DICT */
            TRY(pop_mark(pk, &first, &n, at, err));
            if (n % 2) return vm_error(pk, err, TI_ERR_FORMAT, at, "DICT with an odd item count");
            TRY(push(pk, make_seq(pk, TI_PY_DICT, n ? pk->stack + first : NULL, n), at, err));
            break;
        case 's': /* SETITEM */
            if (pk->sp < mark_base(pk) + 3)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "stack underflow");
            pk->sp -= 2;
            TRY(set_items(pk, pk->stack[pk->sp - 1], pk->stack + pk->sp, 2, at, err));
            break;
        case 'u': /* SETITEMS */
            TRY(pop_mark(pk, &first, &n, at, err));
            TRY(top(pk, &v, at, err));
            TRY(set_items(pk, v, n ? pk->stack + first : NULL, n, at, err));
            break;
        case 'a': /* APPEND */
            if (pk->sp < mark_base(pk) + 2)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "stack underflow");
            pk->sp -= 1;
            TRY(append_items(pk, pk->stack[pk->sp - 1], pk->stack + pk->sp, 1, 0, at, err));
            break;
        case 'e':    /* APPENDS */
        case 0x90: { /* ADDITEMS */
            TRY(pop_mark(pk, &first, &n, at, err));
            TRY(top(pk, &v, at, err));
            TRY(append_items(pk, v, n ? pk->stack + first : NULL, n, op == 0x90, at, err));
            break;
        }
        case 'c': { /* GLOBAL module\nname\n */
            const uint8_t *m = p, *nl1 = memchr(p, '\n', (size_t)(end - p));
            if (!nl1) goto truncated;
            const uint8_t *nm = nl1 + 1, *nl2 = memchr(nm, '\n', (size_t)(end - nm));
            if (!nl2) goto truncated;
            p = nl2 + 1;
            TRY(push_global(pk, (const char *)m, (size_t)(nl1 - m), (const char *)nm,
                            (size_t)(nl2 - nm), at, &v, err));
            TRY(push(pk, v, at, err));
            break;
        }
        case 0x93: /* STACK_GLOBAL: judged exactly like GLOBAL */
            TRY(pop(pk, &w, at, err));
            TRY(pop(pk, &v, at, err));
            if (v->kind != TI_PY_STR || w->kind != TI_PY_STR)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "STACK_GLOBAL needs two strings");
            TRY(push_global(pk, v->u.str.s, v->u.str.len, w->u.str.s, w->u.str.len, at, &v, err));
            TRY(push(pk, v, at, err));
            break;
        case 'R': { /* REDUCE */
            struct ti_py *args, *fn, *res = NULL;
            TRY(pop(pk, &args, at, err));
            TRY(pop(pk, &fn, at, err));
            if (args->kind != TI_PY_TUPLE)
                return vm_error(pk, err, TI_ERR_FORMAT, at,
                                "REDUCE arguments are a %s, not a "
                                "tuple",
                                ti_py_kind_name(args->kind));
            TRY(reduce_call(pk, fn, args, at, 0, &res, err));
            TRY(push(pk, res, at, err));
            break;
        }
        case 0x81: { /* NEWOBJ: cls.__new__(cls, *args), never run: an inert OBJECT */
            struct ti_py *args, *cls;
            TRY(pop(pk, &args, at, err));
            TRY(pop(pk, &cls, at, err));
            if (args->kind != TI_PY_TUPLE)
                return vm_error(pk, err, TI_ERR_FORMAT, at, "NEWOBJ arguments are not a tuple");
            if (ti_py_is_global(cls, "collections", "OrderedDict") ||
                ti_py_is_global(cls, "builtins", "dict"))
                v = make_seq(pk, TI_PY_DICT, NULL, 0);
            else if (ti_py_is_global(cls, "builtins", "list"))
                v = make_seq(pk, TI_PY_LIST, NULL, 0);
            else if (ti_py_is_global(cls, "builtins", "set"))
                v = make_seq(pk, TI_PY_SET, NULL, 0);
            else if ((v = new_node(pk, TI_PY_OBJECT))) {
                v->u.obj.cls = cls;
                v->u.obj.args = args;
                v->u.obj.newobj = 1;
            }
            TRY(push(pk, v, at, err));
            break;
        }
        case 'b': /* BUILD: keep the state on objects, ignore it elsewhere (never __setstate__) */
            TRY(pop(pk, &w, at, err));
            TRY(top(pk, &v, at, err));
            if (v->kind == TI_PY_OBJECT) v->u.obj.state = w;
            break;
        case 'Q': /* BINPERSID */
            TRY(pop(pk, &v, at, err));
            TRY(persistent_load(pk, v, at, &w, err));
            TRY(push(pk, w, at, err));
            break;
        case 'h':   /* BINGET */
        case 'j': { /* LONG_BINGET */
            int w8 = op == 'h' ? 1 : 4;
            NEED(w8);
            uint64_t idx = rd_le(p, w8);
            p += w8;
            if (idx >= pk->memo_cap || !pk->memo[idx])
                return vm_error(pk, err, TI_ERR_FORMAT, at, "memo key %llu was never stored",
                                (unsigned long long)idx);
            TRY(push(pk, pk->memo[idx], at, err));
            break;
        }
        case 'q':   /* BINPUT */
        case 'r': { /* LONG_BINPUT */
            int w8 = op == 'q' ? 1 : 4;
            NEED(w8);
            uint64_t idx = rd_le(p, w8);
            p += w8;
            TRY(top(pk, &v, at, err));
            TRY(memo_put(pk, idx, v, at, err));
            break;
        }
        case 0x94: /* MEMOIZE */
            TRY(top(pk, &v, at, err));
            TRY(memo_put(pk, pk->memo_count, v, at, err));
            break;
        case 'i':
        case 'o': { /* INST / OBJ: protocol 0/1 opcodes that call a class at once */
            if (op == 'i') {
                const uint8_t *nl1 = memchr(p, '\n', (size_t)(end - p));
                const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
                if (nl2 && nl1 - p < 200 && nl2 - nl1 < 200)
                    return vm_error(pk, err, TI_ERR_UNSAFE, at,
                                    "refused: opcode INST calls "
                                    "%.*s.%.*s while loading; ti never calls anything from a "
                                    "pickle and refuses files that try",
                                    (int)(nl1 - p), p, (int)(nl2 - nl1 - 1), nl1 + 1);
            }
            return vm_error(pk, err, TI_ERR_UNSAFE, at,
                            "refused: opcode %s calls a class while "
                            "loading; ti never calls anything from a pickle",
                            opcode_name(op));
        }
        default: {
            const char *name = opcode_name(op);
            if (name)
                return vm_error(pk, err,
                                op == 0x92 || (op >= 0x82 && op <= 0x84) ? TI_ERR_UNSAFE
                                                                         : TI_ERR_FORMAT,
                                at, "refused: opcode %s is not allowed in torch files", name);
            return vm_error(pk, err, TI_ERR_FORMAT, at, "unknown pickle opcode 0x%02x", op);
        }
        }
    }
truncated:
    return vm_error(pk, err, TI_ERR_FORMAT, NULL, "the pickle is truncated (%zu bytes, no STOP)",
                    len);
#undef NEED
#undef TRY
}

/* ---- the tree ------------------------------------------------------------------------------ */

const char *ti_py_kind_name(enum ti_py_kind k) {
    static const char *const names[] = {"None",   "bool",    "int",    "big int", "float", "str",
                                        "bytes",  "tuple",   "list",   "dict",    "set",   "global",
                                        "object", "storage", "tensor", "mark"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

int ti_py_is_str(const struct ti_py *v, const char *s) {
    return v && v->kind == TI_PY_STR && v->u.str.len == strlen(s) &&
           !memcmp(v->u.str.s, s, v->u.str.len);
}

size_t ti_py_dict_len(const struct ti_py *d) {
    return d && d->kind == TI_PY_DICT ? d->u.seq.n / 2 : 0;
}
const struct ti_py *ti_py_dict_key(const struct ti_py *d, size_t i) {
    return i < ti_py_dict_len(d) ? d->u.seq.items[2 * i] : NULL;
}
const struct ti_py *ti_py_dict_value(const struct ti_py *d, size_t i) {
    return i < ti_py_dict_len(d) ? d->u.seq.items[2 * i + 1] : NULL;
}

const struct ti_py *ti_py_dict_get(const struct ti_py *d, const char *key) {
    if (!d || d->kind != TI_PY_DICT) return NULL;
    for (size_t i = d->u.seq.n / 2; i-- > 0;)
        if (ti_py_is_str(d->u.seq.items[2 * i], key)) return d->u.seq.items[2 * i + 1];
    return NULL;
}

const struct ti_py *ti_py_unwrap_module(const struct ti_py *v) {
    if (!v) return NULL;
    if (v->kind == TI_PY_DICT) return v;
    if (v->kind != TI_PY_OBJECT || !v->u.obj.state) return NULL;
    const struct ti_py *s = v->u.obj.state;
    if (s->kind == TI_PY_TUPLE && s->u.seq.n == 2) s = s->u.seq.items[0]; /* (dict, slots) */
    const struct ti_py *p = ti_py_dict_get(s, "_parameters");
    return p && p->kind == TI_PY_DICT ? p : NULL;
}

struct walk {
    struct ti_pickle *pk;
    ti_py_tensor_fn fn;
    void *ud;
    char path[4096];
    size_t len;
};

static ti_status walk_value(struct walk *w, const struct ti_py *v, int depth, struct ti_err *err);

/* appends ".seg" (or "seg" at the root) to the path */
static ti_status walk_child(struct walk *w, const char *seg, size_t seglen, const struct ti_py *v,
                            int depth, struct ti_err *err) {
    size_t old = w->len, need = old + (old ? 1 : 0) + seglen;
    if (need + 1 > sizeof w->path)
        return ti_error(err, TI_ERR_FORMAT, "%s: a key path is longer than %zu bytes", w->pk->what,
                        sizeof w->path);
    if (old) w->path[w->len++] = '.';
    memcpy(w->path + w->len, seg, seglen);
    w->len += seglen;
    w->path[w->len] = '\0';
    ti_status st = walk_value(w, v, depth + 1, err);
    w->len = old;
    w->path[old] = '\0';
    return st;
}

static ti_status walk_index(struct walk *w, size_t i, const struct ti_py *v, int depth,
                            struct ti_err *err) {
    char seg[32];
    int k = snprintf(seg, sizeof seg, "%zu", i);
    return walk_child(w, seg, (size_t)k, v, depth, err);
}

static ti_status walk_dict(struct walk *w, const struct ti_py *d, int depth, struct ti_err *err) {
    for (size_t i = 0; i < ti_py_dict_len(d); i++) {
        const struct ti_py *k = ti_py_dict_key(d, i), *v = ti_py_dict_value(d, i);
        char buf[MAX_GLOBAL_NAME * 2 + 8];
        const char *seg = buf;
        size_t len;
        if (k->kind == TI_PY_STR) {
            seg = k->u.str.s;
            len = k->u.str.len;
        } else if (k->kind == TI_PY_INT) {
            len = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)k->u.i);
        } else if (k->kind == TI_PY_GLOBAL) {
            len = (size_t)snprintf(buf, sizeof buf, "%s.%s", k->u.global.module, k->u.global.name);
        } else {
            len = (size_t)snprintf(buf, sizeof buf, "<%s>", ti_py_kind_name(k->kind));
        }
        if (len >= sizeof buf && seg == buf) len = sizeof buf - 1;
        TI_TRY(walk_child(w, seg, len, v, depth, err));
    }
    return TI_OK;
}

static ti_status walk_value(struct walk *w, const struct ti_py *v, int depth, struct ti_err *err) {
    if (depth > TI_PY_MAX_DEPTH)
        return ti_error(err, TI_ERR_FORMAT, "%s: objects nested deeper than %d levels at '%s'",
                        w->pk->what, TI_PY_MAX_DEPTH, w->path);
    switch (v->kind) {
    case TI_PY_TENSOR: return w->fn(w->ud, w->path, v, err);
    case TI_PY_DICT:
    case TI_PY_LIST:
    case TI_PY_TUPLE:
    case TI_PY_SET:
    case TI_PY_OBJECT: break;
    default: return TI_OK;
    }
    if (v->seen == w->pk->stamp) return TI_OK; /* shared or cyclic: visit each container once */
    ((struct ti_py *)v)->seen = w->pk->stamp;
    if (v->kind == TI_PY_DICT) return walk_dict(w, v, depth, err);
    if (v->kind != TI_PY_OBJECT) {
        for (size_t i = 0; i < v->u.seq.n; i++)
            TI_TRY(walk_index(w, i, v->u.seq.items[i], depth, err));
        return TI_OK;
    }
    /* objects: nn.Module state is flattened like a state_dict; other objects expose their
     * dict items, list items, state and arguments */
    const struct ti_py *s = v->u.obj.state;
    if (s && s->kind == TI_PY_TUPLE && s->u.seq.n == 2) s = s->u.seq.items[0];
    const struct ti_py *params = ti_py_dict_get(s, "_parameters");
    if (params && params->kind == TI_PY_DICT) {
        const struct ti_py *bufs = ti_py_dict_get(s, "_buffers"),
                           *mods = ti_py_dict_get(s, "_modules");
        TI_TRY(walk_dict(w, params, depth, err));
        if (bufs && bufs->kind == TI_PY_DICT) TI_TRY(walk_dict(w, bufs, depth, err));
        if (mods && mods->kind == TI_PY_DICT) TI_TRY(walk_dict(w, mods, depth, err));
        return TI_OK;
    }
    if (v->u.obj.dict) TI_TRY(walk_dict(w, v->u.obj.dict, depth, err));
    if (v->u.obj.list)
        for (size_t i = 0; i < v->u.obj.list->u.seq.n; i++)
            TI_TRY(walk_index(w, i, v->u.obj.list->u.seq.items[i], depth, err));
    if (v->u.obj.state) {
        if (v->u.obj.state->kind == TI_PY_DICT)
            TI_TRY(walk_value(w, v->u.obj.state, depth + 1, err));
        else
            TI_TRY(walk_child(w, "__state__", 9, v->u.obj.state, depth, err));
    }
    if (v->u.obj.args && v->u.obj.args->u.seq.n)
        TI_TRY(walk_child(w, "__args__", 8, v->u.obj.args, depth, err));
    return TI_OK;
}

ti_status ti_pickle_walk_tensors(struct ti_pickle *pk, const struct ti_py *root, ti_py_tensor_fn fn,
                                 void *ud, struct ti_err *err) {
    struct walk *w = malloc(sizeof *w);
    if (!w) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    w->pk = pk;
    w->fn = fn;
    w->ud = ud;
    w->len = 0;
    w->path[0] = '\0';
    if (++pk->stamp == 0) pk->stamp = 1;
    ti_status st = root ? walk_value(w, root, 0, err) : TI_OK;
    free(w);
    return st;
}

/* ---- writer -------------------------------------------------------------------------------- */

void ti_pkw_init(struct ti_pkw *w) {
    memset(w, 0, sizeof *w);
}
void ti_pkw_free(struct ti_pkw *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static void pkw_put(struct ti_pkw *w, const void *p, size_t n) {
    if (w->oom) return;
    if (w->cap - w->n < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->n < n)
            cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = 1;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->n, p, n);
    w->n += n;
}

void ti_pkw_op(struct ti_pkw *w, enum ti_pickle_op op) {
    uint8_t b = (uint8_t)op;
    pkw_put(w, &b, 1);
}

void ti_pkw_proto(struct ti_pkw *w, int version) {
    uint8_t b[2] = {0x80, (uint8_t)version};
    pkw_put(w, b, 2);
}

void ti_pkw_str(struct ti_pkw *w, const char *s) {
    size_t n = strlen(s);
    uint8_t h[5] = {'X', (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    pkw_put(w, h, 5);
    pkw_put(w, s, n);
}

void ti_pkw_int(struct ti_pkw *w, int64_t v) {
    uint8_t b[10];
    if (v >= 0 && v < 256) {
        b[0] = 'K';
        b[1] = (uint8_t)v;
        pkw_put(w, b, 2);
    } else if (v >= 0 && v < 65536) {
        b[0] = 'M';
        b[1] = (uint8_t)v;
        b[2] = (uint8_t)(v >> 8);
        pkw_put(w, b, 3);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        uint32_t u = (uint32_t)(int32_t)v;
        b[0] = 'J';
        for (int i = 0; i < 4; i++)
            b[1 + i] = (uint8_t)(u >> (8 * i));
        pkw_put(w, b, 5);
    } else { /* LONG1: shortest little-endian two's complement */
        uint64_t u = (uint64_t)v;
        int n = 8;
        while (n > 1) {
            uint8_t hi = (uint8_t)(u >> (8 * (n - 1))), next = (uint8_t)(u >> (8 * (n - 2)));
            if ((hi == 0 && !(next & 0x80)) || (hi == 0xff && (next & 0x80)))
                n--;
            else
                break;
        }
        b[0] = 0x8a;
        b[1] = (uint8_t)n;
        for (int i = 0; i < n; i++)
            b[2 + i] = (uint8_t)(u >> (8 * i));
        pkw_put(w, b, (size_t)n + 2);
    }
}

void ti_pkw_bool(struct ti_pkw *w, int v) {
    ti_pkw_op(w, v ? TI_PK_NEWTRUE : TI_PK_NEWFALSE);
}

void ti_pkw_global(struct ti_pkw *w, const char *module, const char *name) {
    ti_pkw_op(w, TI_PK_GLOBAL);
    pkw_put(w, module, strlen(module));
    pkw_put(w, "\n", 1);
    pkw_put(w, name, strlen(name));
    pkw_put(w, "\n", 1);
}

void ti_pkw_tuple(struct ti_pkw *w, int n) {
    static const enum ti_pickle_op small[4] = {TI_PK_EMPTY_TUPLE, TI_PK_TUPLE1, TI_PK_TUPLE2,
                                               TI_PK_TUPLE3};
    ti_pkw_op(w, n <= 3 ? small[n] : TI_PK_TUPLE);
}

ti_status ti_pkw_status(const struct ti_pkw *w, struct ti_err *err) {
    return w->oom ? ti_error(err, TI_ERR_NOMEM, "pickle writer: out of memory") : TI_OK;
}
