/*
 * test_io_torchfile.c - torch.save containers (model/io/torchfile.h): files written by real
 * torch 1.13 (every dtype, non-contiguous and shared-offset views, legacy format, protocol 4,
 * a pytorch-lightning checkpoint with numpy scalars and lightning objects, DEFLATE-recompressed
 * records), the six hostile pickles, truncated and inconsistent archives, realignment, CRC
 * checking, and writer -> reader round trips (plain and zip64).
 */
#include "io_test_util.h"
#include "test_common.h"
#include "torchfile.h"

static const char *tmp;

static struct ti_torchfile *open_fixture(const char *name, unsigned flags) {
    struct ti_torchfile *tf = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_torchfile_open(&tf, tio_fixture(name), flags, &err), &err);
    return tf;
}

static const struct ti_tensor *get(const struct ti_py *d, const char *key) {
    const struct ti_py *v = ti_py_dict_get(d, key);
    CHECK(v && v->kind == TI_PY_TENSOR);
    return v && v->kind == TI_PY_TENSOR ? &v->u.tensor.t : NULL;
}

static double at(const struct ti_tensor *t, int64_t i) { /* element i of a 1-D tensor */
    const uint8_t *p =
        (const uint8_t *)t->data + i * t->stride[0] * (int64_t)ti_dtype_size(t->dtype);
    switch (t->dtype) {
    case TI_DTYPE_F32: return *(const float *)p;
    case TI_DTYPE_F16: return ti_f16_to_f32(*(const uint16_t *)p);
    case TI_DTYPE_BF16: return ti_bf16_to_f32(*(const uint16_t *)p);
    case TI_DTYPE_F64: return *(const double *)p;
    case TI_DTYPE_I64: return (double)*(const int64_t *)p;
    case TI_DTYPE_I32: return *(const int32_t *)p;
    case TI_DTYPE_I16: return *(const int16_t *)p;
    case TI_DTYPE_I8: return *(const int8_t *)p;
    default: return *p;
    }
}

TEST(every_dtype_from_torch) {
    struct ti_torchfile *tf = open_fixture("dtypes.pt", TI_TORCH_VERIFY_CRC);
    if (!tf) return;
    CHECK(tf->container == TI_TORCH_ZIP && !strcmp(tf->prefix, "dtypes"));
    static const struct {
        const char *key;
        enum ti_dtype dt;
        double v[3];
    } want[] = {
        {"f32", TI_DTYPE_F32, {1.5, -2.25, 3.0}},
        {"f16", TI_DTYPE_F16, {1.5, -2.25, 65504.0}},
        {"f64", TI_DTYPE_F64, {1.5, -2.25, 1e300}},
        {"i64", TI_DTYPE_I64, {1, -2, 1099511627776.0}},
        {"i32", TI_DTYPE_I32, {1, -2, 1073741824.0}},
        {"i16", TI_DTYPE_I16, {1, -2, 300}},
        {"i8", TI_DTYPE_I8, {1, -2, 100}},
        {"u8", TI_DTYPE_U8, {1, 2, 250}},
        {"bool", TI_DTYPE_BOOL, {1, 0, 1}},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const struct ti_tensor *t = get(tf->root, want[i].key);
        if (!t) continue;
        CHECK(t->dtype == want[i].dt && t->ndim == 1 && t->shape[0] == 3);
        double got[3] = {at(t, 0), at(t, 1), at(t, 2)};
        CHECK_CLOSE(got, want[i].v, 3, 0, 0);
    }
    const struct ti_tensor *bf = get(tf->root, "bf16");
    if (bf) {
        double got[3] = {at(bf, 0), at(bf, 1), at(bf, 2)};
        double w[3] = {1.5, -2.25, ti_bf16_to_f32(ti_f32_to_bf16(3.0e38f))};
        CHECK(bf->dtype == TI_DTYPE_BF16);
        CHECK_CLOSE(got, w, 3, 0, 0);
    }
    const struct ti_tensor *s = get(tf->root, "scalar"), *e = get(tf->root, "empty"),
                           *f = get(tf->root, "five_d");
    CHECK(s && s->ndim == 0 && *(const float *)s->data == 7.5f);
    CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 4);
    CHECK(f && f->ndim == 5 && ((const float *)f->data)[31] == 31.0f);
    ti_torchfile_close(tf);
}

TEST(noncontiguous_and_shared_views) {
    struct ti_torchfile *tf = open_fixture("noncontig.pt", 0);
    if (tf) {
        const struct ti_tensor *t = get(tf->root, "t");
        CHECK(t && t->shape[0] == 2 && t->shape[1] == 12 && t->stride[0] == 1 && t->stride[1] == 2);
        int ok = t != NULL;
        for (int i = 0; ok && i < 2; i++)
            for (int j = 0; j < 12; j++)
                ok &= ((const float *)t->data)[i * t->stride[0] + j * t->stride[1]] ==
                      (float)(2 * j + i);
        CHECK(ok);
        ti_torchfile_close(tf);
    }
    tf = open_fixture("shared_offset.pt", 0);
    if (tf) {
        const struct ti_py *a = ti_py_dict_get(tf->root, "a"), *b = ti_py_dict_get(tf->root, "b");
        CHECK(a && b && a->u.tensor.storage == b->u.tensor.storage);
        CHECK(ti_pickle_storage_count(tf->pk) == 1);
        CHECK(a->u.tensor.offset == 8 && b->u.tensor.offset == 24);
        CHECK(((const float *)a->u.tensor.t.data)[0] == 8.0f);
        CHECK(((const float *)b->u.tensor.t.data)[7] == 31.0f);
        ti_torchfile_close(tf);
    }
}

static void check_a1111_values(const struct ti_torchfile *tf, enum ti_dtype dt) {
    const struct ti_py *p = ti_py_dict_get(tf->root, "string_to_param");
    const struct ti_tensor *t = p ? get(p, "*") : NULL;
    CHECK(t && t->dtype == dt && t->shape[0] == 2 && t->shape[1] == 768);
    if (!t) return;
    double got[1536], want[1536];
    for (int i = 0; i < 1536; i++) {
        const uint8_t *q = (const uint8_t *)t->data + (size_t)i * ti_dtype_size(dt);
        got[i] = dt == TI_DTYPE_F32   ? *(const float *)q
                 : dt == TI_DTYPE_F16 ? ti_f16_to_f32(*(const uint16_t *)q)
                                      : ti_bf16_to_f32(*(const uint16_t *)q);
        want[i] = tio_value(i, 1);
    }
    CHECK_CLOSE(got, want, 1536, 0, 0);
}

TEST(containers_from_torch) {
    struct ti_torchfile *tf = open_fixture("legacy_a1111.pt", 0);
    if (tf) {
        CHECK(tf->container == TI_TORCH_LEGACY);
        check_a1111_values(tf, TI_DTYPE_F32);
        CHECK(ti_py_is_str(ti_py_dict_get(tf->root, "name"), "legacy"));
        ti_torchfile_close(tf);
    }
    tf = open_fixture("a1111_proto4.pt", 0);
    if (tf) {
        check_a1111_values(tf, TI_DTYPE_F32);
        ti_torchfile_close(tf);
    }
    tf = open_fixture("a1111_deflate.pt", TI_TORCH_VERIFY_CRC);
    if (tf) {
        check_a1111_values(tf, TI_DTYPE_F32);
        ti_torchfile_close(tf);
    }
    tf = open_fixture("a1111_f16.pt", 0);
    if (tf) {
        check_a1111_values(tf, TI_DTYPE_F16);
        ti_torchfile_close(tf);
    }
    tf = open_fixture("a1111_bf16.pt", 0);
    if (tf) {
        check_a1111_values(tf, TI_DTYPE_BF16);
        ti_torchfile_close(tf);
    }
}

TEST(lightning_checkpoint) {
    struct ti_torchfile *tf = open_fixture("lightning_mini.ckpt", TI_TORCH_VERIFY_CRC);
    if (!tf) return;
    const struct ti_py *r = tf->root, *v;
    CHECK(!strcmp(tf->prefix, "archive"));
    CHECK((v = ti_py_dict_get(r, "epoch")) && v->u.i == 6);
    CHECK((v = ti_py_dict_get(r, "global_step")) && v->u.i == 470000);
    CHECK(ti_py_is_str(ti_py_dict_get(r, "pytorch-lightning_version"), "1.4.2"));
    const struct ti_py *sd = ti_py_dict_get(r, "state_dict");
    CHECK(sd && ti_py_dict_len(sd) == 11);
    const struct ti_tensor *w =
        sd ? get(sd, "model.diffusion_model.input_blocks.0.0.weight") : NULL;
    CHECK(w && w->ndim == 4 && w->shape[0] == 4 && w->shape[3] == 3);
    if (w) {
        double got[72], want[72];
        for (int i = 0; i < 72; i++)
            got[i] = ((const float *)w->data)[i], want[i] = tio_value(i, 21);
        CHECK_CLOSE(got, want, 72, 0, 0);
    }
    const struct ti_tensor *n = sd ? get(sd, "model_ema.num_updates") : NULL;
    CHECK(n && n->dtype == TI_DTYPE_I32 && n->ndim == 0 && *(const int32_t *)n->data == 470000);
    /* the ModelCheckpoint class is a dict key; its values hold numpy scalars (inert objects) */
    const struct ti_py *cb = ti_py_dict_get(r, "callbacks");
    CHECK(cb && ti_py_dict_len(cb) == 1);
    if (cb && ti_py_dict_len(cb) == 1) {
        CHECK(ti_py_is_global(ti_py_dict_key(cb, 0), "pytorch_lightning.callbacks.model_checkpoint",
                              "ModelCheckpoint"));
        const struct ti_py *score = ti_py_dict_get(ti_py_dict_value(cb, 0), "best_model_score");
        CHECK(score && score->kind == TI_PY_OBJECT &&
              ti_py_is_global(score->u.obj.cls, "numpy.core.multiarray", "scalar"));
    }
    const struct ti_py *hp = ti_py_dict_get(r, "hyper_parameters");
    CHECK(hp && hp->kind == TI_PY_OBJECT && hp->u.obj.newobj && hp->u.obj.dict &&
          ti_py_dict_get(hp->u.obj.dict, "base_learning_rate")->u.f == 1e-4);
    ti_torchfile_close(tf);
}

TEST(hostile_pickles_are_refused) {
    static const char *const cases[][2] = {
        {"mal_os_system.pt", "os.system"},
        {"mal_builtins_eval_global.pt", "builtins.eval"},
        {"mal_builtins_eval.pt", "__builtin__.eval"},
        {"mal_posix_system_in_a1111.pt", "posix.system"},
        {"mal_stack_global_eval.pt", "builtins.eval"},
        {"mal_inst_os_system.pt", "os.system"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ti_torchfile *tf = NULL;
        struct ti_err err = {0};
        ti_status st = ti_torchfile_open(&tf, tio_fixture(cases[i][0]), 0, &err);
        CHECK(st == TI_ERR_UNSAFE && tf == NULL);
        CHECK(strstr(err.msg, cases[i][1]) != NULL && strstr(err.msg, cases[i][0]) != NULL);
        if (!strstr(err.msg, cases[i][1])) fprintf(stderr, "  %s: %s\n", cases[i][0], err.msg);
    }
}

TEST(every_truncation_is_an_error) {
    size_t n;
    uint8_t *d = tio_read(tio_fixture("a1111_f32.pt"), &n);
    CHECK(d != NULL);
    int errors = 0;
    for (size_t k = 0; d && k < n; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, d, k);
        struct ti_torchfile *tf = NULL;
        struct ti_err err = {0};
        if (ti_torchfile_open_mem(&tf, c, k, "cut", 0, &err) != TI_OK) errors++;
        ti_torchfile_close(tf);
        free(c);
    }
    CHECK(errors == (int)n);
    free(d);
    d = tio_read(tio_fixture("legacy_a1111.pt"), &n);
    errors = 0;
    for (size_t k = 0; d && k < n; k += 7) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, d, k);
        struct ti_torchfile *tf = NULL;
        struct ti_err err = {0};
        if (ti_torchfile_open_mem(&tf, c, k, "cut", 0, &err) != TI_OK) errors++;
        ti_torchfile_close(tf);
        free(c);
    }
    CHECK(errors == (int)((n + 6) / 7));
    free(d);
}

/* Writes a torch archive by hand: data.pkl from `pk`, records data/<i> from recs. */
static const char *hand_archive(const char *name, const struct ti_pkw *pk, const void *const *recs,
                                const size_t *sizes, int n, unsigned align, const char *extra,
                                const char *extra_data) {
    struct ti_err err = {0};
    struct ti_outfile f;
    const char *p = tio_path(tmp, name);
    CHECK_OK(ti_outfile_open(&f, p, &err), &err);
    struct ti_zip_writer w;
    ti_zip_writer_init(&w, &f);
    w.align = align;
    CHECK_OK(ti_zip_writer_add(&w, "arch/data.pkl", pk->buf, pk->n, &err), &err);
    for (int i = 0; i < n; i++) {
        char rn[64];
        snprintf(rn, sizeof rn, "arch/data/%d", i);
        CHECK_OK(ti_zip_writer_add(&w, rn, recs[i], sizes[i], &err), &err);
    }
    if (extra) CHECK_OK(ti_zip_writer_add(&w, extra, extra_data, strlen(extra_data), &err), &err);
    CHECK_OK(ti_zip_writer_add(&w, "arch/version", "3\n", 2, &err), &err);
    CHECK_OK(ti_zip_writer_finish(&w, &err), &err);
    ti_zip_writer_free(&w);
    CHECK_OK(ti_outfile_commit(&f, &err), &err);
    return p;
}

static void one_tensor_pickle(struct ti_torch_writer *w, int64_t numel) {
    static float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (float)i + 0.5f;
    ti_torch_writer_init(w);
    ti_pkw_proto(&w->pk, 2);
    struct ti_tensor t = ti_tensor_view(v, TI_DTYPE_F32, TI_DEVICE_CPU, 1, (int64_t[]){numel});
    struct ti_err err = {0};
    CHECK_OK(ti_torch_writer_tensor(w, &t, 0, &err), &err);
    ti_pkw_op(&w->pk, TI_PK_STOP);
}

TEST(inconsistent_archives) {
    struct ti_torch_writer w;
    one_tensor_pickle(&w, 8);
    float data[8];
    for (int i = 0; i < 8; i++)
        data[i] = (float)i + 0.5f;
    const void *recs[1] = {data};
    size_t short_size[1] = {16}, full_size[1] = {32};
    struct ti_torchfile *tf = NULL;
    struct ti_err err = {0};
    /* a storage record shorter than the pickle declares */
    const char *p = hand_archive("short.pt", &w.pk, recs, short_size, 1, 64, NULL, NULL);
    CHECK(ti_torchfile_open(&tf, p, 0, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "holds 16 bytes but the pickle declares 8 f32 elements (32 bytes)") !=
          NULL);
    /* a missing storage record */
    ti_err_clear(&err);
    p = hand_archive("missing.pt", &w.pk, recs, full_size, 0, 64, NULL, NULL);
    CHECK(ti_torchfile_open(&tf, p, 0, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "has no record 'arch/data/0'") != NULL);
    /* torch.load takes byteorder 'little'; it refuses 'big' (ti reads little-endian files),
     * any other value ("Unknown endianness type"), and TorchScript archives */
    ti_err_clear(&err);
    p = hand_archive("little.pt", &w.pk, recs, full_size, 1, 64, "arch/byteorder", "little");
    CHECK_OK(ti_torchfile_open(&tf, p, 0, &err), &err);
    ti_torchfile_close(tf);
    tf = NULL;
    static const struct {
        const char *file, *record, *data, *want;
        ti_status st;
    } refused[] = {
        {"big.pt", "arch/byteorder", "big", "big-endian", TI_ERR_UNSUPPORTED},
        {"middle.pt", "arch/byteorder", "middle",
         "arch/byteorder record is neither 'little' nor 'big'", TI_ERR_FORMAT},
        {"script.pt", "arch/constants.pkl", "x", "TorchScript", TI_ERR_UNSUPPORTED},
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        ti_err_clear(&err);
        p = hand_archive(refused[k].file, &w.pk, recs, full_size, 1, 64, refused[k].record,
                         refused[k].data);
        CHECK(ti_torchfile_open(&tf, p, 0, &err) == refused[k].st);
        CHECK(strstr(err.msg, refused[k].want) != NULL);
    }
    /* records not aligned to their element size are copied into aligned memory */
    ti_err_clear(&err);
    p = hand_archive("unaligned.pt", &w.pk, recs, full_size, 1, 1, NULL, NULL);
    CHECK_OK(ti_torchfile_open(&tf, p, TI_TORCH_VERIFY_CRC, &err), &err);
    if (tf) {
        const struct ti_tensor *t = &tf->root->u.tensor.t;
        CHECK(((uintptr_t)t->data % 4) == 0 && ((const float *)t->data)[7] == 7.5f);
        CHECK(tf->n_owned == 1);
        ti_torchfile_close(tf);
        tf = NULL;
    }
    /* CRC: storages checked on request, data.pkl always */
    p = hand_archive("crc.pt", &w.pk, recs, full_size, 1, 64, NULL, NULL);
    size_t n;
    uint8_t *d = tio_read(p, &n);
    const uint8_t *pos = d ? memmem(d, n, data, 32) : NULL;
    CHECK(pos != NULL);
    if (pos) {
        d[pos - d + 5] ^= 1;
        CHECK_OK(ti_torchfile_open_mem(&tf, d, n, "crc.pt", 0, &err), &err);
        ti_torchfile_close(tf);
        tf = NULL;
        CHECK(ti_torchfile_open_mem(&tf, d, n, "crc.pt", TI_TORCH_VERIFY_CRC, &err) ==
              TI_ERR_FORMAT);
        CHECK(strstr(err.msg, "CRC-32") != NULL);
        d[pos - d + 5] ^= 1;
        const uint8_t *pk = memmem(d, n, "storage", 7);
        d[pk - d] = 'S';
        ti_err_clear(&err);
        CHECK(ti_torchfile_open_mem(&tf, d, n, "crc.pt", 0, &err) == TI_ERR_FORMAT);
        CHECK(strstr(err.msg, "CRC-32") != NULL);
    }
    free(d);
    /* not torch files */
    ti_err_clear(&err);
    CHECK(ti_torchfile_open_mem(&tf, "hello world, not a checkpoint", 29, "txt", 0, &err) ==
          TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "not a torch file") != NULL);
    uint8_t tar[600] = {0};
    memcpy(tar + 257, "ustar", 5);
    ti_err_clear(&err);
    CHECK(ti_torchfile_open_mem(&tf, tar, sizeof tar, "old.tar", 0, &err) == TI_ERR_UNSUPPORTED);
    ti_torch_writer_free(&w);
}

static void writer_round_trip(uint64_t threshold) {
    /* f32 (from a non-contiguous view), f16, bf16, f64, i64 0-d; a dict of them */
    static float base[24];
    for (int i = 0; i < 24; i++)
        base[i] = (float)i * 1.25f - 3.0f;
    struct ti_tensor tr = ti_tensor_view(base, TI_DTYPE_F32, TI_DEVICE_CPU, 2, (int64_t[]){12, 2});
    struct ti_tensor t;
    struct ti_err err = {0};
    CHECK_OK(ti_tensor_permute_view(&t, &tr, (int[]){1, 0}, &err), &err);
    uint16_t h[5] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000}, bf[2] = {0x3f80, 0xc040};
    double dd[3] = {1e300, -0.0, 3.25};
    int64_t tok = 49407;
    struct ti_tensor th = ti_tensor_view(h, TI_DTYPE_F16, TI_DEVICE_CPU, 1, (int64_t[]){5});
    struct ti_tensor tb = ti_tensor_view(bf, TI_DTYPE_BF16, TI_DEVICE_CPU, 2, (int64_t[]){1, 2});
    struct ti_tensor td = ti_tensor_view(dd, TI_DTYPE_F64, TI_DEVICE_CPU, 1, (int64_t[]){3});
    struct ti_tensor ti = ti_tensor_view(&tok, TI_DTYPE_I64, TI_DEVICE_CPU, 0, NULL);
    struct ti_torch_writer w;
    ti_torch_writer_init(&w);
    w.zip64_threshold = threshold;
    ti_pkw_proto(&w.pk, 2);
    ti_pkw_op(&w.pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(&w.pk, TI_PK_MARK);
    const char *names[5] = {"t", "h", "b", "d", "i"};
    struct ti_tensor *ts[5] = {&t, &th, &tb, &td, &ti};
    for (int i = 0; i < 5; i++) {
        ti_pkw_str(&w.pk, names[i]);
        CHECK_OK(i == 2 ? ti_torch_writer_parameter(&w, ts[i], 1, &err)
                        : ti_torch_writer_tensor(&w, ts[i], 0, &err),
                 &err);
    }
    ti_pkw_op(&w.pk, TI_PK_SETITEMS);
    const char *p = tio_path(tmp, threshold ? "round.pt" : "round64.pt");
    CHECK_OK(ti_torch_writer_save(&w, p, &err), &err);
    ti_torch_writer_free(&w);
    struct ti_torchfile *tf = NULL;
    CHECK_OK(ti_torchfile_open(&tf, p, TI_TORCH_VERIFY_CRC, &err), &err);
    if (!tf) return;
    CHECK(!strcmp(tf->prefix, threshold ? "round" : "round64"));
    CHECK(tf->zip.zip64 == (threshold == 0));
    for (size_t r = 0; r < tf->zip.n; r++)
        CHECK(tf->zip.recs[r].data_offset % 64 == 0);
    const struct ti_tensor *rt = get(tf->root, "t");
    int same = rt && rt->shape[0] == 2 && rt->shape[1] == 12 && ti_tensor_is_contiguous(rt);
    for (int i = 0; same && i < 2; i++)
        for (int j = 0; j < 12; j++)
            same &= ((const float *)rt->data)[i * 12 + j] == base[j * 2 + i];
    CHECK(same);
    const struct ti_tensor *rh = get(tf->root, "h"), *rb = get(tf->root, "b"),
                           *rd = get(tf->root, "d"), *ri = get(tf->root, "i");
    CHECK(rh && rh->dtype == TI_DTYPE_F16 && !memcmp(rh->data, h, sizeof h));
    CHECK(rb && rb->dtype == TI_DTYPE_BF16 && rb->ndim == 2 && !memcmp(rb->data, bf, sizeof bf));
    CHECK(ti_py_dict_get(tf->root, "b")->u.tensor.is_param);
    CHECK(rd && !memcmp(rd->data, dd, sizeof dd));
    CHECK(ri && ri->ndim == 0 && *(const int64_t *)ri->data == 49407);
    ti_torchfile_close(tf);
}

TEST(writer_round_trip_plain) {
    writer_round_trip(0xFFFFFFFFu);
}
TEST(writer_round_trip_zip64) {
    writer_round_trip(0);
}

int main(void) {
    tmp = tio_tmpdir();
    RUN(every_dtype_from_torch);
    RUN(noncontiguous_and_shared_views);
    RUN(containers_from_torch);
    RUN(lightning_checkpoint);
    RUN(hostile_pickles_are_refused);
    RUN(every_truncation_is_an_error);
    RUN(inconsistent_archives);
    RUN(writer_round_trip_plain);
    RUN(writer_round_trip_zip64);
    tio_rmrf(tmp);
    return tc_finish();
}
