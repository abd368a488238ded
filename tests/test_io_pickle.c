/*
 * test_io_pickle.c - the safe unpickler (model/io/pickle.h) on hand-made pickles: every
 * supported opcode and the memo, the deny list through GLOBAL, STACK_GLOBAL and INST, refused
 * opcodes, structural errors (every truncation, underflow, bad memo keys), limits (MARK depth,
 * nesting depth for walkers, cycles, shared sub-trees), tensor views (bounds, strides, v3
 * dtypes, parameters, shared storages, storages shorter than declared) and the writer's ints.
 */
#include "io_test_util.h"
#include "pickle.h"
#include "test_common.h"

/* a growable byte string */
struct bs {
    uint8_t p[1 << 17];
    size_t n;
};
static void put(struct bs *b, const void *d, size_t n) {
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void op(struct bs *b, uint8_t o) {
    put(b, &o, 1);
}
static void u8(struct bs *b, uint8_t v) {
    put(b, &v, 1);
}
static void u32(struct bs *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}
static void u64(struct bs *b, uint64_t v) {
    u32(b, (uint32_t)v);
    u32(b, (uint32_t)(v >> 32));
}
static void sstr(struct bs *b, const char *s) { /* SHORT_BINUNICODE */
    op(b, 0x8c);
    u8(b, (uint8_t)strlen(s));
    put(b, s, strlen(s));
}
static void ustr(struct bs *b, const char *s) { /* BINUNICODE */
    op(b, 'X');
    u32(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}
static void global(struct bs *b, const char *m, const char *n) {
    op(b, 'c');
    put(b, m, strlen(m));
    op(b, '\n');
    put(b, n, strlen(n));
    op(b, '\n');
}

static ti_status run(struct bs *b, struct ti_pickle **pk, struct ti_py **root, struct ti_err *err) {
    size_t used;
    ti_err_clear(err);
    TI_TRY(ti_pickle_new(pk, "test", err));
    return ti_pickle_run(*pk, b->p, b->n, &used, root, err);
}

static int n_seen;
static ti_status count_tensor(void *ud, const char *path, const struct ti_py *t,
                              struct ti_err *err) {
    (void)ud, (void)path, (void)t, (void)err;
    n_seen++;
    return TI_OK;
}

TEST(opcodes_and_memo) {
    struct bs b = {.n = 0};
    op(&b, 0x80), u8(&b, 4);   /* PROTO 4 */
    op(&b, 0x95), u64(&b, 10); /* FRAME (length only checked) */
    op(&b, '}'), op(&b, 0x94); /* EMPTY_DICT, MEMOIZE -> 0 */
    op(&b, '(');
    sstr(&b, "small"), op(&b, 'K'), u8(&b, 200);
    sstr(&b, "mid"), op(&b, 'M'), u8(&b, 0x34), u8(&b, 0x12);
    sstr(&b, "neg"), op(&b, 'J'), u32(&b, (uint32_t)-5);
    sstr(&b, "big"), op(&b, 0x8a), u8(&b, 6), put(&b, "\x00\x00\x00\x00\x00\x01", 6); /* 2^40 */
    sstr(&b, "negbig"), op(&b, 0x8a), u8(&b, 2), put(&b, "\x00\x80", 2);              /* -32768 */
    sstr(&b, "huge"), op(&b, 0x8b), u32(&b, 9), put(&b, "\x01\x00\x00\x00\x00\x00\x00\x00\x01", 9);
    sstr(&b, "flt"), op(&b, 'G'), put(&b, "\x3f\xf8\x00\x00\x00\x00\x00\x00", 8); /* 1.5 */
    ustr(&b, "s8"), op(&b, 0x8d), u64(&b, 3), put(&b, "abc", 3);
    sstr(&b, "bytes"), op(&b, 'C'), u8(&b, 2), put(&b, "\x00\xff", 2);
    sstr(&b, "pystr"), op(&b, 'U'), u8(&b, 2), put(&b, "hi", 2);
    sstr(&b, "t"), op(&b, 0x88);
    sstr(&b, "f"), op(&b, 0x89);
    sstr(&b, "none"), op(&b, 'N');
    sstr(&b, "tup"), op(&b, 'K'), u8(&b, 1), op(&b, 'K'), u8(&b, 2), op(&b, 0x86), op(&b, 'q'),
        u8(&b, 7);
    sstr(&b, "again"), op(&b, 'h'), u8(&b, 7); /* BINGET */
    sstr(&b, "lst"), op(&b, ']'), op(&b, '('), op(&b, 'K'), u8(&b, 3), op(&b, 'K'), u8(&b, 4),
        op(&b, 'e'), op(&b, 'K'), u8(&b, 5), op(&b, 'a'); /* [3,4,5] */
    sstr(&b, "set"), op(&b, 0x8f), op(&b, '('), op(&b, 'K'), u8(&b, 9), op(&b, 0x90);
    sstr(&b, "fz"), op(&b, '('), op(&b, 'K'), u8(&b, 1), op(&b, 0x91);
    sstr(&b, "dup"), op(&b, 'K'), u8(&b, 42), op(&b, '2'), op(&b, '0'); /* DUP, POP */
    sstr(&b, "lp"), op(&b, 'N'), op(&b, 'r'), u32(&b, 200), op(&b, '0'), op(&b, 'j'), u32(&b, 200);
    sstr(&b, "pm"), op(&b, '('), op(&b, 'K'), u8(&b, 1), op(&b, '1'), op(&b, 'K'),
        u8(&b, 6);                                                                  /* POP_MARK */
    sstr(&b, "d"), op(&b, '('), sstr(&b, "k"), op(&b, 'K'), u8(&b, 1), op(&b, 'd'); /* DICT */
    sstr(&b, "self"), op(&b, 'h'), u8(&b, 0); /* the dict itself */
    op(&b, 'u'), op(&b, '.');
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    CHECK_OK(run(&b, &pk, &root, &err), &err);
    if (!pk || !root) return;
    const struct ti_py *v;
    CHECK((v = ti_py_dict_get(root, "small")) && v->kind == TI_PY_INT && v->u.i == 200);
    CHECK((v = ti_py_dict_get(root, "mid")) && v->u.i == 0x1234);
    CHECK((v = ti_py_dict_get(root, "neg")) && v->u.i == -5);
    CHECK((v = ti_py_dict_get(root, "big")) && v->u.i == (int64_t)1 << 40);
    CHECK((v = ti_py_dict_get(root, "negbig")) && v->u.i == -32768);
    CHECK((v = ti_py_dict_get(root, "huge")) && v->kind == TI_PY_BIGINT && v->u.str.len == 9);
    CHECK((v = ti_py_dict_get(root, "flt")) && v->kind == TI_PY_FLOAT && v->u.f == 1.5);
    CHECK(ti_py_is_str(ti_py_dict_get(root, "s8"), "abc"));
    CHECK((v = ti_py_dict_get(root, "bytes")) && v->kind == TI_PY_BYTES && v->u.str.len == 2);
    CHECK(ti_py_is_str(ti_py_dict_get(root, "pystr"), "hi"));
    CHECK((v = ti_py_dict_get(root, "t")) && v->kind == TI_PY_BOOL && v->u.i == 1);
    CHECK((v = ti_py_dict_get(root, "f")) && v->kind == TI_PY_BOOL && v->u.i == 0);
    CHECK((v = ti_py_dict_get(root, "none")) && v->kind == TI_PY_NONE);
    const struct ti_py *tup = ti_py_dict_get(root, "tup");
    CHECK(tup && tup->kind == TI_PY_TUPLE && tup->u.seq.n == 2 && tup->u.seq.items[1]->u.i == 2);
    CHECK(ti_py_dict_get(root, "again") == tup); /* the memo shares nodes */
    CHECK((v = ti_py_dict_get(root, "lst")) && v->kind == TI_PY_LIST && v->u.seq.n == 3 &&
          v->u.seq.items[2]->u.i == 5);
    CHECK((v = ti_py_dict_get(root, "set")) && v->kind == TI_PY_SET && v->u.seq.n == 1);
    CHECK((v = ti_py_dict_get(root, "fz")) && v->kind == TI_PY_SET && v->u.seq.n == 1);
    CHECK((v = ti_py_dict_get(root, "dup")) && v->u.i == 42);
    CHECK((v = ti_py_dict_get(root, "lp")) && v->kind == TI_PY_NONE);
    CHECK((v = ti_py_dict_get(root, "pm")) && v->u.i == 6);
    CHECK((v = ti_py_dict_get(root, "d")) && ti_py_dict_get(v, "k")->u.i == 1);
    CHECK(ti_py_dict_get(root, "self") == root); /* a cycle */
    CHECK(ti_py_dict_len(root) == 23);
    CHECK_OK(ti_pickle_walk_tensors(pk, root, count_tensor, NULL, &err), &err); /* terminates */
    ti_pickle_free(pk);
}

static void expect(struct bs *b, ti_status code, const char *needle) {
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    ti_status st = run(b, &pk, &root, &err);
    CHECK(st == code);
    CHECK(strstr(err.msg, needle) != NULL);
    if (st != code || !strstr(err.msg, needle))
        fprintf(stderr, "  expected %d '%s', got %d: %s\n", code, needle, st, err.msg);
    ti_pickle_free(pk);
}

TEST(dangerous_globals_are_refused_by_name) {
    static const char *const bad[][2] = {
        {"os", "system"},           {"posix", "system"},
        {"nt", "system"},           {"subprocess", "Popen"},
        {"sys", "modules"},         {"builtins", "eval"},
        {"builtins", "exec"},       {"builtins", "getattr"},
        {"builtins", "__import__"}, {"builtins", "compile"},
        {"builtins", "open"},       {"__builtin__", "eval"},
        {"runpy", "_run_code"},     {"importlib", "import_module"},
        {"importlib.util", "x"},    {"shutil", "rmtree"},
        {"socket", "socket"},       {"ctypes", "CDLL"},
        {"pickle", "loads"},        {"marshal", "loads"},
        {"operator", "attrgetter"}, {"functools", "partial"},
        {"types", "FunctionType"},  {"torch", "load"},
        {"torch.hub", "load"},      {"torch.storage", "_load_from_bytes"},
        {"numpy", "load"},          {"numpy.testing._private.utils", "runstring"},
        {"os.path", "join"},        {"timeit", "timeit"},
        {"pydoc", "pipepager"},     {"codecs", "open"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s.%s", bad[i][0], bad[i][1]);
        struct bs b = {.n = 0};
        op(&b, 0x80), u8(&b, 2);
        global(&b, bad[i][0], bad[i][1]);
        ustr(&b, "echo"), op(&b, 0x85), op(&b, 'R'), op(&b, '.');
        expect(&b, TI_ERR_UNSAFE, want);
        /* the same names through STACK_GLOBAL (protocol 4) */
        b.n = 0;
        op(&b, 0x80), u8(&b, 4);
        sstr(&b, bad[i][0]), sstr(&b, bad[i][1]), op(&b, 0x93);
        op(&b, ')'), op(&b, 'R'), op(&b, '.');
        expect(&b, TI_ERR_UNSAFE, want);
    }
    /* behind an unsupported opcode, the pre-scan still names the callable */
    struct bs b = {.n = 0};
    put(&b, "(S'echo'\nios\nsystem\n.", 21);
    expect(&b, TI_ERR_UNSAFE, "os.system");
    /* INST of a harmless class is still a call while loading */
    b.n = 0;
    put(&b, "(icollections\nOrderedDict\n.", 27);
    expect(&b, TI_ERR_UNSAFE, "INST calls collections.OrderedDict");
}

TEST(inert_globals_are_accepted) {
    static const char *const ok[][2] = {
        {"collections", "OrderedDict"},
        {"builtins", "set"},
        {"__builtin__", "set"},
        {"numpy.core.multiarray", "scalar"},
        {"numpy", "dtype"},
        {"_codecs", "encode"},
        {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"},
        {"torch", "Size"},
        {"argparse", "Namespace"},
        {"builtins", "dict"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct bs b = {.n = 0};
        op(&b, 0x80), u8(&b, 2);
        global(&b, ok[i][0], ok[i][1]);
        op(&b, ')'), op(&b, 'R'), op(&b, '.');
        struct ti_pickle *pk = NULL;
        struct ti_py *root;
        struct ti_err err = {0};
        CHECK_OK(run(&b, &pk, &root, &err), &err);
        ti_pickle_free(pk);
    }
    /* an unknown class called with REDUCE stays an inert object (never called) */
    struct bs b = {.n = 0};
    op(&b, 0x80), u8(&b, 2);
    global(&b, "pytorch_lightning.trainer.states", "TrainerFn");
    ustr(&b, "fit"), op(&b, 0x85), op(&b, 'R');
    op(&b, '}'), sstr(&b, "x"), op(&b, 'K'), u8(&b, 1), op(&b, 's'), op(&b, 'b'), op(&b, '.');
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    CHECK_OK(run(&b, &pk, &root, &err), &err);
    CHECK(root && root->kind == TI_PY_OBJECT && root->u.obj.state &&
          ti_py_is_global(root->u.obj.cls, "pytorch_lightning.trainer.states", "TrainerFn"));
    ti_pickle_free(pk);
}

TEST(refused_opcodes) {
    struct bs b = {.n = 0};
    op(&b, 0x80), u8(&b, 2), global(&b, "collections", "OrderedDict"), op(&b, ')'), op(&b, 'o');
    expect(&b, TI_ERR_UNSAFE, "OBJ");
    b.n = 0;
    op(&b, 0x80), u8(&b, 4), global(&b, "collections", "OrderedDict"), op(&b, ')'), op(&b, '}'),
        op(&b, 0x92);
    expect(&b, TI_ERR_UNSAFE, "NEWOBJ_EX");
    b.n = 0;
    op(&b, 0x80), u8(&b, 2), op(&b, 0x82), u8(&b, 1);
    expect(&b, TI_ERR_UNSAFE, "EXT1");
    b.n = 0;
    op(&b, 0x80), u8(&b, 2), op(&b, 0x84), u32(&b, 1);
    expect(&b, TI_ERR_UNSAFE, "EXT4");
    b.n = 0;
    put(&b, "Pfoo\n.", 6);
    expect(&b, TI_ERR_FORMAT, "PERSID");
    b.n = 0;
    put(&b, "I42\n.", 5);
    expect(&b, TI_ERR_FORMAT, "INT (text)");
    b.n = 0;
    op(&b, 0x80), u8(&b, 5), op(&b, 0x97);
    expect(&b, TI_ERR_FORMAT, "NEXT_BUFFER");
    b.n = 0;
    op(&b, 0x80), u8(&b, 6);
    expect(&b, TI_ERR_UNSUPPORTED, "protocol 6");
    b.n = 0;
    op(&b, 0xff);
    expect(&b, TI_ERR_FORMAT, "unknown pickle opcode 0xff");
}

TEST(structural_errors) {
    struct bs b = {.n = 0};
    op(&b, 'R'), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "stack underflow");
    b.n = 0;
    op(&b, 'K'), u8(&b, 1), op(&b, 't');
    expect(&b, TI_ERR_FORMAT, "no MARK");
    b.n = 0;
    op(&b, 'h'), u8(&b, 3), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "memo key 3 was never stored");
    b.n = 0;
    op(&b, 'N'), op(&b, 'r'), u32(&b, 0x7fffffff), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "memo index");
    b.n = 0;
    op(&b, '}'), op(&b, '('), op(&b, 'K'), u8(&b, 1), op(&b, 'u');
    expect(&b, TI_ERR_FORMAT, "odd");
    b.n = 0;
    op(&b, '}'), op(&b, 'K'), u8(&b, 1), op(&b, 'a');
    expect(&b, TI_ERR_FORMAT, "APPEND on a dict");
    b.n = 0;
    global(&b, "collections", "OrderedDict"), op(&b, ']'), op(&b, 'R');
    expect(&b, TI_ERR_FORMAT, "not a tuple");
    b.n = 0;
    op(&b, 'X'), u32(&b, 0xFFFFFFF0u), put(&b, "ab", 2);
    expect(&b, TI_ERR_FORMAT, "truncated");
    b.n = 0;
    op(&b, 0x8b), u32(&b, 0x80000000u);
    expect(&b, TI_ERR_FORMAT, "negative LONG4");
    b.n = 0;
    op(&b, 'X'), u32(&b, 2), put(&b, "\xc3\x28", 2), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "UTF-8");
    b.n = 0;
    for (int i = 0; i < 70000; i++)
        op(&b, '(');
    expect(&b, TI_ERR_FORMAT, "MARKs nested deeper");
    /* every truncation of a valid pickle is an error, never a crash */
    struct ti_pkw w;
    ti_pkw_init(&w);
    ti_pkw_proto(&w, 2);
    ti_pkw_op(&w, TI_PK_EMPTY_DICT);
    ti_pkw_op(&w, TI_PK_MARK);
    ti_pkw_str(&w, "a");
    ti_pkw_int(&w, 1 << 20);
    ti_pkw_str(&w, "b");
    ti_pkw_global(&w, "collections", "OrderedDict");
    ti_pkw_op(&w, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(&w, TI_PK_REDUCE);
    ti_pkw_op(&w, TI_PK_SETITEMS);
    ti_pkw_op(&w, TI_PK_STOP);
    int errors = 0;
    for (size_t n = 0; n < w.n; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, w.buf, n);
        struct ti_pickle *pk = NULL;
        struct ti_py *root;
        struct ti_err err = {0};
        size_t used;
        ti_pickle_new(&pk, "t", &err);
        errors += ti_pickle_run(pk, c, n, &used, &root, &err) != TI_OK;
        ti_pickle_free(pk);
        free(c);
    }
    CHECK(errors == (int)w.n);
    ti_pkw_free(&w);
}

TEST(node_budget) {
    /* 2.2M x (NONE, POP): each None is a node, the stack stays empty */
    size_t n = 2 * (2200000) + 1;
    uint8_t *p = malloc(n);
    for (size_t i = 0; i + 1 < n; i += 2)
        p[i] = 'N', p[i + 1] = '0';
    p[n - 1] = '.';
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    size_t used;
    CHECK_OK(ti_pickle_new(&pk, "budget", &err), &err);
    CHECK(ti_pickle_run(pk, p, n, &used, &root, &err) == TI_ERR_NOMEM);
    CHECK(strstr(err.msg, "too many objects") != NULL);
    ti_pickle_free(pk);
    free(p);
}

TEST(walker_bounds) {
    for (int depth = 50; depth <= 150; depth += 100) {
        struct bs b = {.n = 0};
        for (int i = 0; i < depth; i++)
            op(&b, ']');
        for (int i = 1; i < depth; i++)
            op(&b, 'a');
        op(&b, '.');
        struct ti_pickle *pk = NULL;
        struct ti_py *root;
        struct ti_err err = {0};
        CHECK_OK(run(&b, &pk, &root, &err), &err);
        ti_status st = ti_pickle_walk_tensors(pk, root, count_tensor, NULL, &err);
        CHECK(depth < 100 ? st == TI_OK : st == TI_ERR_FORMAT);
        if (depth > 100) CHECK(strstr(err.msg, "nested deeper") != NULL);
        ti_pickle_free(pk);
    }
    /* 60 levels, each holding the previous twice: 2^60 paths, walked in linear time */
    struct bs b = {.n = 0};
    op(&b, ']'), op(&b, 'q'), u8(&b, 0);
    for (int i = 1; i <= 60; i++) {
        op(&b, '('), op(&b, 'h'), u8(&b, (uint8_t)(i - 1)), op(&b, 'h'), u8(&b, (uint8_t)(i - 1));
        op(&b, 't'), op(&b, 'q'), u8(&b, (uint8_t)i), op(&b, '0');
    }
    op(&b, 'h'), u8(&b, 60), op(&b, '.');
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    CHECK_OK(run(&b, &pk, &root, &err), &err);
    CHECK_OK(ti_pickle_walk_tensors(pk, root, count_tensor, NULL, &err), &err);
    ti_pickle_free(pk);
}

/* emits _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict()) */
static void tensor_v2(struct bs *b, const char *cls, const char *key, int numel, int offset, int nd,
                      const int *size, const int *stride) {
    global(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    op(b, '('), ustr(b, "storage"), global(b, "torch", cls), ustr(b, key), ustr(b, "cuda:0");
    op(b, 'M'), u8(b, (uint8_t)numel), u8(b, (uint8_t)(numel >> 8)), op(b, 't'), op(b, 'Q');
    op(b, 'K'), u8(b, (uint8_t)offset);
    op(b, '(');
    for (int i = 0; i < nd; i++)
        op(b, 'K'), u8(b, (uint8_t)size[i]);
    op(b, 't');
    op(b, '(');
    for (int i = 0; i < nd; i++) {
        if (stride[i] < 0)
            op(b, 'J'), u32(b, (uint32_t)stride[i]);
        else
            op(b, 'K'), u8(b, (uint8_t)stride[i]);
    }
    op(b, 't');
    op(b, 0x89), global(b, "collections", "OrderedDict"), op(b, ')'), op(b, 'R');
    op(b, 't'), op(b, 'R');
}

TEST(tensor_views) {
    struct bs b = {.n = 0};
    op(&b, 0x80), u8(&b, 2), op(&b, '}'), op(&b, '(');
    ustr(&b, "a"), tensor_v2(&b, "FloatStorage", "0", 32, 8, 2, (int[]){2, 8}, (int[]){8, 1});
    ustr(&b, "b"), tensor_v2(&b, "FloatStorage", "0", 32, 24, 1, (int[]){8}, (int[]){1});
    ustr(&b, "t"), tensor_v2(&b, "FloatStorage", "1", 24, 0, 2, (int[]){2, 12}, (int[]){1, 2});
    ustr(&b, "h"), tensor_v2(&b, "HalfStorage", "2", 4, 1, 0, NULL, NULL);
    ustr(&b, "e"), tensor_v2(&b, "LongStorage", "3", 1, 1, 2, (int[]){0, 5}, (int[]){5, 1});
    ustr(&b, "p");
    global(&b, "torch._utils", "_rebuild_parameter");
    tensor_v2(&b, "FloatStorage", "1", 24, 0, 1, (int[]){24}, (int[]){1});
    op(&b, 0x88), global(&b, "collections", "OrderedDict"), op(&b, ')'), op(&b, 'R'), op(&b, 0x87);
    op(&b, 'R');
    op(&b, 'u'), op(&b, '.');
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    CHECK_OK(run(&b, &pk, &root, &err), &err);
    if (!root) return;
    CHECK(ti_pickle_storage_count(pk) == 4);
    static float s0[32], s1[24];
    static uint16_t s2[4];
    static int64_t s3[1];
    for (int i = 0; i < 32; i++)
        s0[i] = (float)i;
    for (int i = 0; i < 24; i++)
        s1[i] = (float)(100 + i);
    const void *bufs[4] = {s0, s1, s2, s3};
    const uint64_t sizes[4] = {sizeof s0, sizeof s1, sizeof s2, sizeof s3};
    int k = 0;
    for (struct ti_py_storage *s = ti_pickle_storages(pk); s; s = s->next, k++) {
        s->data = bufs[k];
        s->nbytes = sizes[k];
        CHECK(!strcmp(s->location, "cuda:0"));
    }
    CHECK_OK(ti_pickle_bind_tensors(pk, &err), &err);
    const struct ti_py *a = ti_py_dict_get(root, "a"), *bb = ti_py_dict_get(root, "b");
    const struct ti_py *t = ti_py_dict_get(root, "t"), *p = ti_py_dict_get(root, "p");
    CHECK(a->u.tensor.storage == bb->u.tensor.storage); /* shared, bound once */
    CHECK(((const float *)a->u.tensor.t.data)[0] == 8.0f &&
          ((const float *)bb->u.tensor.t.data)[7] == 31.0f);
    CHECK(t->u.tensor.t.stride[0] == 1 && t->u.tensor.t.stride[1] == 2);
    CHECK(ti_py_dict_get(root, "h")->u.tensor.t.ndim == 0);
    CHECK(ti_tensor_numel(&ti_py_dict_get(root, "e")->u.tensor.t) == 0);
    CHECK(p->kind == TI_PY_TENSOR && p->u.tensor.is_param && p->u.tensor.requires_grad);
    ti_pickle_free(pk);

    /* a storage shorter than the pickle declares */
    b.n = 0;
    op(&b, 0x80), u8(&b, 2);
    tensor_v2(&b, "FloatStorage", "0", 32, 0, 1, (int[]){32}, (int[]){1});
    op(&b, '.');
    CHECK_OK(run(&b, &pk, &root, &err), &err);
    ti_pickle_storages(pk)->data = (const uint8_t *)s0;
    ti_pickle_storages(pk)->nbytes = 64;
    CHECK(ti_pickle_bind_tensors(pk, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "holds 64 bytes but the pickle declares 32 f32 elements (128 bytes)") !=
          NULL);
    ti_pickle_free(pk);
}

TEST(bad_tensor_views) {
    struct bs b = {.n = 0};
    tensor_v2(&b, "FloatStorage", "0", 16, 1, 2, (int[]){4, 4}, (int[]){4, 1}); /* one past */
    op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "reaches past the end of storage '0'");
    b.n = 0;
    tensor_v2(&b, "FloatStorage", "0", 16, 0, 2, (int[]){4, 4}, (int[]){-4, 1});
    op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "negative");
    b.n = 0;
    tensor_v2(&b, "FloatStorage", "0", 200, 0, 7, (int[]){1, 1, 1, 1, 1, 1, 1},
              (int[]){1, 1, 1, 1, 1, 1, 1});
    op(&b, '.');
    expect(&b, TI_ERR_UNSUPPORTED, "7 dimensions");
    b.n = 0;
    tensor_v2(&b, "ComplexFloatStorage", "0", 4, 0, 1, (int[]){4}, (int[]){1});
    op(&b, '.');
    expect(&b, TI_ERR_UNSUPPORTED, "torch.ComplexFloatStorage");
    b.n = 0; /* one key, two sizes */
    op(&b, '(');
    tensor_v2(&b, "FloatStorage", "0", 16, 0, 1, (int[]){4}, (int[]){1});
    tensor_v2(&b, "FloatStorage", "0", 32, 0, 1, (int[]){4}, (int[]){1});
    op(&b, 't'), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "declared twice");
    b.n = 0; /* persistent ids must be storage tuples */
    op(&b, '('), ustr(&b, "module"), op(&b, 't'), op(&b, 'Q'), op(&b, '.');
    expect(&b, TI_ERR_FORMAT, "not a torch storage");
    b.n = 0; /* _rebuild_tensor_v3 with an untyped storage and a dtype symbol */
    global(&b, "torch._utils", "_rebuild_tensor_v3");
    op(&b, '(');
    op(&b, '('), ustr(&b, "storage"), global(&b, "torch.storage", "UntypedStorage"), ustr(&b, "0"),
        ustr(&b, "cpu"), op(&b, 'K'), u8(&b, 16), op(&b, 't'), op(&b, 'Q');
    op(&b, 'K'), u8(&b, 1), op(&b, '('), op(&b, 'K'), u8(&b, 3), op(&b, 't'), op(&b, '('),
        op(&b, 'K'), u8(&b, 1), op(&b, 't');
    op(&b, 0x89), global(&b, "collections", "OrderedDict"), op(&b, ')'), op(&b, 'R');
    global(&b, "torch", "float32"), op(&b, 't'), op(&b, 'R'), op(&b, '.');
    struct ti_pickle *pk = NULL;
    struct ti_py *root;
    struct ti_err err = {0};
    CHECK_OK(run(&b, &pk, &root, &err), &err); /* bytes 4..16 of a 16-byte storage */
    CHECK(root && root->kind == TI_PY_TENSOR && root->u.tensor.t.dtype == TI_DTYPE_F32);
    ti_pickle_free(pk);
}

TEST(writer_ints_round_trip) {
    const int64_t vals[] = {0,
                            1,
                            255,
                            256,
                            65535,
                            65536,
                            -1,
                            -128,
                            -129,
                            INT32_MIN,
                            INT32_MAX,
                            (int64_t)INT32_MAX + 1,
                            (int64_t)INT32_MIN - 1,
                            (int64_t)1 << 40,
                            -((int64_t)1 << 40),
                            INT64_MIN,
                            INT64_MAX,
                            0x7f,
                            0x80,
                            -0x8000};
    struct ti_pkw w;
    ti_pkw_init(&w);
    ti_pkw_proto(&w, 2);
    ti_pkw_op(&w, TI_PK_MARK);
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        ti_pkw_int(&w, vals[i]);
    ti_pkw_op(&w, TI_PK_TUPLE);
    ti_pkw_op(&w, TI_PK_STOP);
    struct ti_err err = {0};
    CHECK_OK(ti_pkw_status(&w, &err), &err);
    struct ti_pickle *pk = NULL;
    struct ti_py *root = NULL;
    size_t used;
    CHECK_OK(ti_pickle_new(&pk, "ints", &err), &err);
    CHECK_OK(ti_pickle_run(pk, w.buf, w.n, &used, &root, &err), &err);
    CHECK(used == w.n);
    int same = root && root->u.seq.n == sizeof vals / sizeof *vals;
    for (size_t i = 0; same && i < root->u.seq.n; i++)
        same = root->u.seq.items[i]->u.i == vals[i];
    CHECK(same);
    ti_pickle_free(pk);
    ti_pkw_free(&w);
}

int main(void) {
    RUN(opcodes_and_memo);
    RUN(dangerous_globals_are_refused_by_name);
    RUN(inert_globals_are_accepted);
    RUN(refused_opcodes);
    RUN(structural_errors);
    RUN(node_budget);
    RUN(walker_bounds);
    RUN(tensor_views);
    RUN(bad_tensor_views);
    RUN(writer_ints_round_trip);
    return tc_finish();
}
