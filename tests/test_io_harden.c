/*
 * test_io_harden.c - the file readers against what a hostile or damaged file can ask for
 * (the "Foundation hardening" points 5, 6, 7 and 14):
 *   - pickle globals: an allowlist of what real checkpoints and embeddings contain; the names
 *     a deny list missed (cpp_extension.load_inline, imp.load_source, _ctypes.dlopen,
 *     shelve.open, pandas.read_pickle, numpy.ctypeslib.load_library, torch.serialization._load)
 *     refused with and without TI_PICKLE_ALLOW_UNKNOWN_GLOBALS; unknown harmless names refused
 *     by default and inert with the flag; every real-layout fixture still loads;
 *   - tensor views whose element count or byte size overflows 64 bits, and stride-0 views that
 *     name far more elements than their storage (a 200-byte .pt asking for 2^40 elements);
 *   - the archive's `version` record: missing, unparsable, out of torch's range;
 *   - the tools: ti-inspect/ti-convert --allow-unknown-globals, ti-inspect --json on the hostile
 *     view (fast refusal), and the context width of a tiny SD-layout model read from its tensors.
 *
 * usage: test_io_harden <ti-inspect> <ti-convert>   (ctest passes both)
 */
#include "embedding_io.h"
#include "fileio.h"
#include "io_test_util.h"
#include "pickle.h"
#include "test_common.h"
#include "torchfile.h"
#include "zip.h"

#ifdef TI_TEST_HAVE_YAML
#include "config.h"
#include "ldm.h"
#endif

#include <sys/stat.h> /* defines: mkfifo, lstat */
#include <time.h>     /* defines: clock_gettime */

static const char *tmp, *inspect, *convert;

/* ---- helpers ------------------------------------------------------------------------------- */

static ti_status run_pickle(const struct ti_pkw *w, unsigned flags, struct ti_pickle **pk,
                            struct ti_py **root, struct ti_err *err) {
    size_t used;
    ti_err_clear(err);
    *pk = NULL;
    TI_TRY(ti_pickle_new(pk, "test", err));
    ti_pickle_set_flags(*pk, flags);
    return ti_pickle_run(*pk, w->buf, w->n, &used, root, err);
}

/* PROTO 2, GLOBAL module.name, EMPTY_TUPLE, REDUCE, STOP */
static void global_call(struct ti_pkw *w, const char *m, const char *n) {
    ti_pkw_init(w);
    ti_pkw_proto(w, 2);
    ti_pkw_global(w, m, n);
    ti_pkw_op(w, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(w, TI_PK_REDUCE);
    ti_pkw_op(w, TI_PK_STOP);
}

/* the same through STACK_GLOBAL (protocol 4) */
static void stack_global_call(struct ti_pkw *w, const char *m, const char *n) {
    ti_pkw_init(w);
    ti_pkw_proto(w, 4);
    ti_pkw_str(w, m);
    ti_pkw_str(w, n);
    ti_pkw_op(w, (enum ti_pickle_op)0x93);
    ti_pkw_op(w, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(w, TI_PK_REDUCE);
    ti_pkw_op(w, TI_PK_STOP);
}

static void expect_pickle(const struct ti_pkw *w, unsigned flags, ti_status code,
                          const char *needle, const char *needle2) {
    struct ti_pickle *pk;
    struct ti_py *root;
    struct ti_err err = {0};
    ti_status st = run_pickle(w, flags, &pk, &root, &err);
    int ok = st == code && (code == TI_OK || strstr(err.msg, needle)) &&
             (!needle2 || strstr(err.msg, needle2));
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "  expected %d '%s' '%s', got %d: %s\n", code, needle ? needle : "",
                needle2 ? needle2 : "", st, err.msg);
    ti_pickle_free(pk);
}

/* _rebuild_tensor_v2 over FloatStorage key "0" of `numel` elements with the given view. */
static void tensor_pickle(struct ti_pkw *w, int64_t numel, int nd, const int64_t *size,
                          const int64_t *stride) {
    ti_pkw_init(w);
    ti_pkw_proto(w, 2);
    ti_pkw_global(w, "torch._utils", "_rebuild_tensor_v2");
    ti_pkw_op(w, TI_PK_MARK);
    ti_pkw_op(w, TI_PK_MARK);
    ti_pkw_str(w, "storage");
    ti_pkw_global(w, "torch", "FloatStorage");
    ti_pkw_str(w, "0");
    ti_pkw_str(w, "cpu");
    ti_pkw_int(w, numel);
    ti_pkw_op(w, TI_PK_TUPLE);
    ti_pkw_op(w, TI_PK_BINPERSID);
    ti_pkw_int(w, 0);
    for (int pass = 0; pass < 2; pass++) {
        if (nd > 3) ti_pkw_op(w, TI_PK_MARK);
        for (int d = 0; d < nd; d++)
            ti_pkw_int(w, pass ? stride[d] : size[d]);
        ti_pkw_tuple(w, nd);
    }
    ti_pkw_bool(w, 0);
    ti_pkw_global(w, "collections", "OrderedDict");
    ti_pkw_op(w, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(w, TI_PK_REDUCE);
    ti_pkw_op(w, TI_PK_TUPLE);
    ti_pkw_op(w, TI_PK_REDUCE);
    ti_pkw_op(w, TI_PK_STOP);
}

/* A torch zip: arch/data.pkl, arch/data/0 (`st` bytes), and `vname` = `vtext` unless NULL. */
static const char *archive(const char *name, const struct ti_pkw *pk, const void *st, size_t stn,
                           const char *vname, const char *vtext) {
    struct ti_err err = {0};
    struct ti_outfile f;
    const char *p = tio_path(tmp, name);
    CHECK_OK(ti_outfile_open(&f, p, &err), &err);
    struct ti_zip_writer z;
    ti_zip_writer_init(&z, &f);
    CHECK_OK(ti_zip_writer_add(&z, "arch/data.pkl", pk->buf, pk->n, &err), &err);
    if (st) CHECK_OK(ti_zip_writer_add(&z, "arch/data/0", st, stn, &err), &err);
    if (vname) CHECK_OK(ti_zip_writer_add(&z, vname, vtext, strlen(vtext), &err), &err);
    CHECK_OK(ti_zip_writer_finish(&z, &err), &err);
    ti_zip_writer_free(&z);
    CHECK_OK(ti_outfile_commit(&f, &err), &err);
    return p;
}

/* An a1111 embedding with an entry REDUCE(m.n, ()) - a global in an otherwise real file. */
static const char *a1111_with_global(const char *file, const char *m, const char *n) {
    const char *p = tio_path(tmp, file);
    tio_embedding_pickle(p, 1, (const char *[]){"*"}, (const int64_t[]){265}, 1,
                         (const char *[]){"*"}, m, n);
    return p;
}

static int tool(const char *exe, const char *args) {
    return tio_tool(tmp, exe, args);
}

static int file_has(const char *name, const char *needle) {
    return tio_file_has(tmp, name, needle);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- 6: globals ---------------------------------------------------------------------------- */

/* Names the old deny list let through; each must refuse the file whatever the caller allows. */
static const char *const hostile[][2] = {
    {"torch.utils.cpp_extension", "load_inline"},
    {"imp", "load_source"},
    {"_ctypes", "dlopen"},
    {"shelve", "open"},
    {"pandas", "read_pickle"},
    {"pandas.io.pickle", "read_pickle"},
    {"numpy.ctypeslib", "load_library"},
    {"torch.serialization", "_load"},
    {"torch.serialization", "load"},
    {"torch.jit", "load"},
    {"os", "system"},
    {"builtins", "eval"},
};

TEST(hostile_globals_are_refused_even_when_unknown_ones_are_allowed) {
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        char want[160];
        snprintf(want, sizeof want, "%s.%s", hostile[i][0], hostile[i][1]);
        for (unsigned flags = 0; flags <= TI_PICKLE_ALLOW_UNKNOWN_GLOBALS; flags++) {
            struct ti_pkw w;
            global_call(&w, hostile[i][0], hostile[i][1]);
            expect_pickle(&w, flags, TI_ERR_UNSAFE, want, "made to run code");
            ti_pkw_free(&w);
            stack_global_call(&w, hostile[i][0], hostile[i][1]);
            expect_pickle(&w, flags, TI_ERR_UNSAFE, want, "made to run code");
            ti_pkw_free(&w);
        }
    }
}

TEST(unknown_globals_are_refused_unless_allowed) {
    static const char *const unknown[][2] = {
        {"mypackage.models", "Net"},
        {"copyreg", "_reconstructor"},
        {"omegaconf.dictconfig", "DictConfig"},
        {"torch", "Generator"},
        {"numpy.random", "RandomState"},
        {"pytorch_lightning.callbacks", "LambdaCallback"},
    };
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        char want[160];
        snprintf(want, sizeof want, "%s.%s", unknown[i][0], unknown[i][1]);
        struct ti_pkw w;
        global_call(&w, unknown[i][0], unknown[i][1]);
        expect_pickle(&w, 0, TI_ERR_UNSAFE, want, "--allow-unknown-globals");
        /* with the flag: an inert OBJECT holding the symbol, never called */
        struct ti_pickle *pk;
        struct ti_py *root;
        struct ti_err err = {0};
        CHECK_OK(run_pickle(&w, TI_PICKLE_ALLOW_UNKNOWN_GLOBALS, &pk, &root, &err), &err);
        CHECK(root && root->kind == TI_PY_OBJECT &&
              ti_py_is_global(root->u.obj.cls, unknown[i][0], unknown[i][1]));
        ti_pickle_free(pk);
        ti_pkw_free(&w);
        stack_global_call(&w, unknown[i][0], unknown[i][1]);
        expect_pickle(&w, 0, TI_ERR_UNSAFE, want, "--allow-unknown-globals");
        expect_pickle(&w, TI_PICKLE_ALLOW_UNKNOWN_GLOBALS, TI_OK, NULL, NULL);
        ti_pkw_free(&w);
    }
}

TEST(allowlisted_globals_load) {
    static const char *const ok[][2] = {
        {"collections", "OrderedDict"},
        {"collections", "defaultdict"},
        {"collections", "Counter"},
        {"_codecs", "encode"},
        {"__builtin__", "set"},
        {"builtins", "bytearray"},
        {"torch", "Size"},
        {"torch", "device"},
        {"torch", "bfloat16"},
        {"torch", "float8_e4m3fn"},
        {"torch", "HalfStorage"},
        {"torch.cuda", "FloatTensor"},
        {"torch.storage", "UntypedStorage"},
        {"torch.serialization", "_get_layout"},
        {"torch.nn.parameter", "Parameter"},
        {"torch.nn.modules.container", "ParameterDict"},
        {"torch.torch_version", "TorchVersion"},
        {"torch._utils", "_rebuild_qtensor"},
        {"numpy.core.multiarray", "scalar"},
        {"numpy.core.multiarray", "_reconstruct"},
        {"numpy._core.multiarray", "scalar"},
        {"numpy", "dtype"},
        {"numpy", "ndarray"},
        {"numpy.dtypes", "Float64DType"},
        {"argparse", "Namespace"},
        {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"},
        {"pytorch_lightning.callbacks.early_stopping", "EarlyStopping"},
        {"lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint"},
        {"pytorch_lightning.utilities.parsing", "AttributeDict"},
        {"pytorch_lightning.trainer.states", "TrainerFn"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct ti_pkw w;
        global_call(&w, ok[i][0], ok[i][1]);
        expect_pickle(&w, 0, TI_OK, NULL, NULL);
        ti_pkw_free(&w);
    }
}

/* Every real-layout fixture loads with the default policy; every hostile one is refused. */
TEST(fixtures_load_under_the_allowlist) {
    DIR *d = opendir(TIO_FIXTURES);
    CHECK(d != NULL);
    if (!d) return;
    int good = 0, bad = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (len < 4 || (strcmp(n + len - 3, ".pt") && strcmp(n + len - 4, ".bin") &&
                        strcmp(n + len - 5, ".ckpt")))
            continue;
        struct ti_torchfile *tf = NULL;
        struct ti_err err = {0};
        ti_status st = ti_torchfile_open(&tf, tio_fixture(n), 0, &err);
        if (!strncmp(n, "mal_", 4)) {
            CHECK(st == TI_ERR_UNSAFE);
            bad++;
        } else {
            CHECK_OK(st, &err);
            good++;
        }
        ti_torchfile_close(tf);
    }
    closedir(d);
    CHECK(good >= 15 && bad >= 6);
}

/* ---- 5: element counts ---------------------------------------------------------------------- */

TEST(views_whose_size_overflows_are_refused) {
    struct ti_pkw w;
    int64_t big = (int64_t)1 << 32;
    tensor_pickle(&w, 1, 2, (int64_t[]){big, big}, (int64_t[]){0, 0}); /* 2^64 wraps to 0 */
    expect_pickle(&w, 0, TI_ERR_FORMAT, "overflows 64 bits", "[4294967296, 4294967296]");
    ti_pkw_free(&w);
    big = (int64_t)1 << 40; /* empty, but the product of the other sizes overflows */
    tensor_pickle(&w, 1, 3, (int64_t[]){big, big, 0}, (int64_t[]){0, 0, 1});
    expect_pickle(&w, 0, TI_ERR_FORMAT, "overflows 64 bits", NULL);
    ti_pkw_free(&w);
    /* fits 64 bits as a count, not as bytes (x4) */
    tensor_pickle(&w, 1, 1, (int64_t[]){(int64_t)1 << 62}, (int64_t[]){0});
    expect_pickle(&w, 0, TI_ERR_FORMAT, "overflows 64 bits", NULL);
    ti_pkw_free(&w);
}

TEST(stride0_views_are_bounded_by_their_storage) {
    struct ti_pkw w;
    int64_t big = (int64_t)1 << 40;
    tensor_pickle(&w, 1, 1, (int64_t[]){big}, (int64_t[]){0});
    expect_pickle(&w, 0, TI_ERR_FORMAT, "names 1099511627776 elements", "storage '0' holds (1 f32");
    ti_pkw_free(&w);
    /* what real files hold: an expanded position_ids [1, 77] (stride [0, 1]) */
    tensor_pickle(&w, 77, 2, (int64_t[]){1, 77}, (int64_t[]){0, 1});
    expect_pickle(&w, 0, TI_OK, NULL, NULL);
    ti_pkw_free(&w);
    /* a small expanded buffer is still fine */
    tensor_pickle(&w, 1, 2, (int64_t[]){1000, 1000}, (int64_t[]){0, 0});
    expect_pickle(&w, 0, TI_OK, NULL, NULL);
    ti_pkw_free(&w);

    /* the 200-byte .pt of the issue: refused when opened, and ti-inspect --json says so at once */
    static const float one = 1.0f;
    tensor_pickle(&w, 1, 1, (int64_t[]){big}, (int64_t[]){0});
    const char *p = archive("stride0.pt", &w, &one, 4, "arch/version", "3\n");
    ti_pkw_free(&w);
    struct ti_torchfile *tf = NULL;
    struct ti_err err = {0};
    CHECK(ti_torchfile_open(&tf, p, 0, &err) == TI_ERR_FORMAT && strstr(err.msg, "stride0.pt"));
    ti_torchfile_close(tf);
    char args[1200];
    snprintf(args, sizeof args, "--json %s", p);
    double t0 = now();
    CHECK(tool(inspect, args) == 1 && file_has("err", "names 1099511627776 elements"));
    CHECK(now() - t0 < 10.0);
}

/* Embedding readers copy every value of every term: the total is bounded before allocating. */
TEST(embedding_values_are_bounded) {
    struct ti_embedding e;
    struct ti_err err = {0};
    ti_embedding_init(&e);
    static float v[4];
    CHECK_OK(ti_embedding_add_term(&e, "a", -1, 1, 4, v, &err), &err);
    CHECK(ti_embedding_add_term(&e, "b", -1, TI_EMB_MAX_VECTORS, TI_EMB_MAX_DIM, NULL, &err) ==
              TI_ERR_SHAPE &&
          strstr(err.msg, "more than any embedding file does"));
    CHECK(e.n_terms == 1);
    ti_embedding_free(&e);
}

/* ---- 7: the version record ----------------------------------------------------------------- */

TEST(version_record_is_checked_as_torch_does) {
    static const float v[4] = {1, 2, 3, 4};
    struct ti_pkw w;
    tensor_pickle(&w, 4, 1, (int64_t[]){4}, (int64_t[]){1});
    static const struct {
        const char *rec, *text;
        ti_status want;
        const char *needle;
    } cases[] = {
        {"arch/version", "3\n", TI_OK, NULL},
        {"arch/version", "3", TI_OK, NULL},
        {"arch/version", "1", TI_OK, NULL},
        {"arch/version", " 10\n", TI_OK, NULL},
        {"arch/.data/version", "3\n", TI_OK, NULL},
        {NULL, NULL, TI_ERR_FORMAT, "no 'arch/version' record"},
        {"arch/version", "", TI_ERR_FORMAT, "is not a number"},
        {"arch/version", "abc", TI_ERR_FORMAT, "(\"abc\") is not a number"},
        {"arch/version", "0", TI_ERR_UNSUPPORTED, "outside the range torch reads (1..10)"},
        {"arch/version", "11\n", TI_ERR_UNSUPPORTED, "\"11?\" is outside"},
        {"arch/version", "-1", TI_ERR_UNSUPPORTED, "outside the range"},
        {"arch/version", "99999999999999999999999", TI_ERR_UNSUPPORTED, "outside the range"},
        {"arch/version", "3333333333333333333333333333333333333333333333333333333333333333333",
         TI_ERR_FORMAT, "holds 67 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "version%zu.pt", i);
        const char *p = archive(name, &w, v, sizeof v, cases[i].rec, cases[i].text);
        struct ti_torchfile *tf = NULL;
        struct ti_err err = {0};
        ti_status st = ti_torchfile_open(&tf, p, 0, &err);
        int ok = st == cases[i].want &&
                 (!cases[i].needle || (strstr(err.msg, cases[i].needle) && strstr(err.msg, name)));
        CHECK(ok);
        if (!ok) fprintf(stderr, "  case %zu: got %d: %s\n", i, st, err.msg);
        if (st == TI_OK) CHECK(((const float *)tf->root->u.tensor.t.data)[3] == 4.0f);
        ti_torchfile_close(tf);
    }
    ti_pkw_free(&w);
}

/* ---- the tools' --allow-unknown-globals ---------------------------------------------------- */

TEST(tools_allow_unknown_globals_on_request) {
    char p[1024]; /* tio_path's buffers rotate */
    snprintf(p, sizeof p, "%s", a1111_with_global("unknown.pt", "mytrainer.state", "Config"));
    char args[1200];
    snprintf(args, sizeof args, "%s", p);
    CHECK(tool(inspect, args) == 1 && file_has("err", "mytrainer.state.Config") &&
          file_has("err", "unknown.pt"));
    snprintf(args, sizeof args, "--allow-unknown-globals %s", p);
    CHECK(tool(inspect, args) == 0 && file_has("out", "embedding: a1111 format"));
    snprintf(args, sizeof args, "%s %s", p, tio_path(tmp, "conv.pt"));
    CHECK(tool(convert, args) == 1 && file_has("err", "mytrainer.state.Config"));
    CHECK(!tio_exists(tio_path(tmp, "conv.pt")));
    snprintf(args, sizeof args, "%s %s --allow-unknown-globals", p, tio_path(tmp, "conv.pt"));
    CHECK(tool(convert, args) == 0 && tio_exists(tio_path(tmp, "conv.pt")));
    struct ti_embedding e;
    struct ti_err err = {0};
    ti_status rs = ti_embedding_read(&e, p, &err);
    CHECK(rs == TI_ERR_UNSAFE && strstr(err.msg, "mytrainer.state.Config"));
    if (rs != TI_ERR_UNSAFE) fprintf(stderr, "  got %d: %s\n", rs, err.msg);
    ti_err_clear(&err);
    CHECK_OK(ti_embedding_read_flags(&e, p, TI_TORCH_ALLOW_UNKNOWN_GLOBALS, &err), &err);
    CHECK(e.n_terms == 1 && e.terms[0].dim == 8);
    ti_embedding_free(&e);
    /* a hostile name stays refused with the flag */
    snprintf(p, sizeof p, "%s",
             a1111_with_global("hostile.pt", "torch.utils.cpp_extension", "load_inline"));
    snprintf(args, sizeof args, "--allow-unknown-globals %s", p);
    CHECK(tool(inspect, args) == 1 && file_has("err", "torch.utils.cpp_extension.load_inline"));
    CHECK(tool(inspect, "--help") == 0 && file_has("out", "--allow-unknown-globals"));
    CHECK(tool(convert, "--help") == 0 && file_has("out", "--allow-unknown-globals"));
}

/* ti-inspect checks the records' CRC-32 as the loading tools do: a damaged vector is refused,
 * not shown as a good file */
TEST(inspect_checks_crcs) {
    float v[8];
    for (int i = 0; i < 8; i++)
        v[i] = 1.2345f + (float)i;
    struct ti_embedding e;
    struct ti_err err = {0};
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", 265, 1, 8, v, &err), &err);
    char p[1024];
    snprintf(p, sizeof p, "%s", tio_path(tmp, "crc_flip.pt"));
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_A1111, &err), &err);
    ti_embedding_free(&e);
    CHECK(tool(inspect, p) == 0);
    FILE *f = fopen(p, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    uint8_t *at = memmem(buf, n, &v[3], sizeof v[3]);
    CHECK(at != NULL);
    if (at) {
        at[0] ^= 1;
        fseek(f, (long)(at - buf), SEEK_SET);
        fwrite(at, 1, 1, f);
    }
    fclose(f);
    CHECK(tool(inspect, p) == 1 && file_has("err", "CRC") && file_has("err", "crc_flip.pt"));
}

/* ---- 14: the context width comes from the tensors -------------------------------------------- */

TEST(inspect_reads_the_context_width_from_the_tensors) {
#ifdef TI_TEST_HAVE_YAML
    const char *cfg_path = "configs/tiny/sd-tiny-finetune.yaml";
    struct ti_config cfg;
    struct ti_ldm m;
    struct ti_err err = {0};
    CHECK_OK(ti_config_load(&cfg, &cfg_path, 1, NULL, 0, &err), &err);
    CHECK_OK(ti_ldm_init(&m, &cfg, &err), &err);
    CHECK_OK(ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &err), &err);
    CHECK_OK(ti_ldm_randomize(&m, 7, &err), &err);
    const char *p = tio_path(tmp, "tiny-sd.safetensors");
    CHECK_OK(ti_ldm_save(&m, p, &err), &err);
    ti_ldm_free(&m);
    char args[1200];
    snprintf(args, sizeof args, "%s", p);
    /* the tiny SD config: CLIP text tower of width 32, UNet context_dim 32 */
    CHECK(tool(inspect, args) == 0 &&
          file_has("out", "looks like: an SD v1-layout checkpoint (CLIP text encoder, context "
                          "width 32)"));
    size_t n;
    uint8_t *d = tio_read(tio_path(tmp, "out"), &n);
    CHECK(d && !memmem(d, n, "768", 3));
    free(d);
#else
    TC_SKIP_TEST("built without libyaml: the tiny config cannot load");
#endif
}

/* Outputs are written to a temporary file renamed onto the name: a symlink must be written
 * through (its target replaced, as torch.save does), a FIFO or device never replaced by a
 * regular file, an existing file's permissions kept, and a missing folder named. */
TEST(outputs_respect_what_is_at_the_name) {
    struct ti_err err = {0};
    char target[512], link[512], fifo[512], ro[512], nodir[512];
    snprintf(target, sizeof target, "%s/target.bin", tmp);
    snprintf(link, sizeof link, "%s/link.bin", tmp);
    CHECK(symlink("target.bin", link) == 0); /* relative, dangling until written */
    CHECK_OK(ti_file_write_atomic(link, "abc", 3, &err), &err);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(target, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 3);
    snprintf(fifo, sizeof fifo, "%s/fifo", tmp);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(ti_file_write_atomic(fifo, "abc", 3, &err) == TI_ERR_IO &&
          strstr(err.msg, "not a regular file"));
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    /* read as an input: refused at once (the open used to wait for a writer forever) */
    ti_err_clear(&err);
    struct ti_fmap m;
    CHECK(ti_fmap_open(&m, fifo, &err) == TI_ERR_IO && strstr(err.msg, "not a regular file"));
    snprintf(ro, sizeof ro, "%s/ro.bin", tmp);
    CHECK_OK(ti_file_write_atomic(ro, "x", 1, &err), &err);
    CHECK(chmod(ro, 0440) == 0);
    CHECK_OK(ti_file_write_atomic(ro, "yz", 2, &err), &err);
    CHECK(stat(ro, &st) == 0 && (st.st_mode & 07777) == 0440 && st.st_size == 2);
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.bin", tmp);
    CHECK(ti_file_write_atomic(nodir, "x", 1, &err) == TI_ERR_IO &&
          strstr(err.msg, "/no/such/dir/' does not exist"));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_io_harden <ti-inspect> <ti-convert>\n");
        return 2;
    }
    inspect = argv[1];
    convert = argv[2];
    tmp = tio_tmpdir();
    RUN(hostile_globals_are_refused_even_when_unknown_ones_are_allowed);
    RUN(unknown_globals_are_refused_unless_allowed);
    RUN(allowlisted_globals_load);
    RUN(fixtures_load_under_the_allowlist);
    RUN(views_whose_size_overflows_are_refused);
    RUN(stride0_views_are_bounded_by_their_storage);
    RUN(embedding_values_are_bounded);
    RUN(version_record_is_checked_as_torch_does);
    RUN(inspect_checks_crcs);
    RUN(tools_allow_unknown_globals_on_request);
    RUN(inspect_reads_the_context_width_from_the_tensors);
    RUN(outputs_respect_what_is_at_the_name);
    tio_rmrf(tmp);
    return tc_finish();
}
