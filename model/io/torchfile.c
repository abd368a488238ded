/* torchfile.c - torch.save containers (zip and legacy) in and out (see torchfile.h). */
#include "torchfile.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free, aligned_alloc */
#include <string.h> /* defines: memcpy, memcmp, strcmp, strlen, strrchr */

#include "fileio.h" /* defines: ti_strdup */

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19};

enum ti_torch_container ti_torchfile_sniff(const void *data, uint64_t size) {
    const uint8_t *d = data;
    if (size >= 4 && !memcmp(d, "PK\x03\x04", 4)) return TI_TORCH_ZIP;
    /* PROTO n, [FRAME len], LONG1 10 <magic> */
    if (size >= 14 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5) {
        uint64_t p = 2;
        if (d[p] == 0x95) p += 9;
        if (p + 12 <= size && d[p] == 0x8a && d[p + 1] == 10 &&
            !memcmp(d + p + 2, legacy_magic, 10))
            return TI_TORCH_LEGACY;
    }
    return TI_TORCH_NONE;
}

static ti_status keep_owned(struct ti_torchfile *tf, void *p, struct ti_err *err) {
    if (tf->n_owned == tf->cap_owned) {
        size_t cap = tf->cap_owned ? 2 * tf->cap_owned : 16;
        void **o = realloc(tf->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return ti_error(err, TI_ERR_NOMEM, "out of memory");
        }
        tf->owned = o;
        tf->cap_owned = cap;
    }
    tf->owned[tf->n_owned++] = p;
    return TI_OK;
}

/* Binds storage s to bytes[0..n); copies them into aligned memory when they are not aligned to
 * the element size (hand-made zips, legacy files) or when `owned` says they are temporary. */
static ti_status bind_storage(struct ti_torchfile *tf, struct ti_py_storage *s,
                              const uint8_t *bytes, uint64_t n, void *owned, struct ti_err *err) {
    size_t es = ti_dtype_size(s->dtype);
    if (owned) TI_TRY(keep_owned(tf, owned, err));
    if (es > 1 && ((uintptr_t)bytes % es) != 0 && n > 0) {
        uint64_t need = s->numel * es;
        uint64_t k = n < need ? n : need;
        void *copy = malloc(k ? (size_t)k : 1);
        if (!copy)
            return ti_error(err, TI_ERR_NOMEM, "out of memory realigning storage '%s'", s->key);
        memcpy(copy, bytes, (size_t)k);
        TI_TRY(keep_owned(tf, copy, err));
        bytes = copy;
        n = k;
    }
    s->data = bytes;
    s->nbytes = n;
    return TI_OK;
}

static unsigned pickle_flags(unsigned flags) {
    return flags & TI_TORCH_ALLOW_UNKNOWN_GLOBALS ? TI_PICKLE_ALLOW_UNKNOWN_GLOBALS : 0;
}

/* The archive's format version, as torch.load reads it: `.data/version` if present, else
 * `version`; it must exist and parse as an unsigned integer (strtoull: leading white space, then
 * digits; what follows the digits is ignored, so "3\n" is 3) in [TI_TORCH_VERSION_MIN,
 * TI_TORCH_VERSION_MAX]. torch refuses every other archive, and so does ti. */
static ti_status check_version(struct ti_torchfile *tf, struct ti_err *err) {
    char rec[TI_ZIP_MAX_NAME + 64];
    snprintf(rec, sizeof rec, "%s/.data/version", tf->prefix);
    const struct ti_zip_record *r = ti_zip_find(&tf->zip, rec);
    if (!r) {
        snprintf(rec, sizeof rec, "%s/version", tf->prefix);
        r = ti_zip_find(&tf->zip, rec);
    }
    if (!r)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s' has no '%s/version' record: torch.load refuses such an archive "
                        "(the file is incomplete or was not written by torch.save)",
                        tf->name, tf->prefix);
    if (r->size > 64)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': the version record '%s' holds %llu bytes, not a version number",
                        tf->name, rec, (unsigned long long)r->size);
    const uint8_t *p;
    void *owned;
    TI_TRY(ti_zip_read(&tf->zip, r, &p, &owned, err));
    char text[65];
    size_t n = (size_t)r->size, i = 0;
    memcpy(text, p, n);
    text[n] = '\0';
    free(owned);
    while (i < n && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
        i++;
    if (i < n && text[i] == '+') i++;
    uint64_t v = 0;
    size_t d0 = i;
    int big = 0;
    for (; i < n && text[i] >= '0' && text[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) big = 1;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    for (size_t k = 0; k < n; k++) /* printable in the message */
        if ((unsigned char)text[k] < 0x20 || (unsigned char)text[k] >= 0x7f) text[k] = '?';
    if (i == d0 && !(i < n && text[i] == '-'))
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': the version record '%s' (\"%s\") is not a number, so torch.load "
                        "refuses the file",
                        tf->name, rec, text);
    if (big || i == d0 || v < TI_TORCH_VERSION_MIN || v > TI_TORCH_VERSION_MAX)
        return ti_error(err, TI_ERR_UNSUPPORTED,
                        "'%s': archive format version \"%s\" is outside the range torch reads "
                        "(%d..%d); the file is damaged or from a serializer ti does not know",
                        tf->name, text, TI_TORCH_VERSION_MIN, TI_TORCH_VERSION_MAX);
    return TI_OK;
}

static ti_status open_zip(struct ti_torchfile *tf, unsigned flags, struct ti_err *err) {
    ti_status st;
    TI_TRY(ti_zip_open(&tf->zip, tf->data, tf->size, tf->name, err));
    /* exactly one <folder>/data.pkl; a TorchScript archive is not a checkpoint */
    const struct ti_zip_record *pkl = NULL;
    for (size_t i = 0; i < tf->zip.n; i++) {
        const char *nm = tf->zip.recs[i].name, *slash = strchr(nm, '/');
        if (!slash || slash == nm) continue;
        if (!strcmp(slash + 1, "constants.pkl"))
            return ti_error(err, TI_ERR_UNSUPPORTED,
                            "'%s' is a TorchScript archive "
                            "(torch.jit.save), not a checkpoint or embedding file",
                            tf->name);
        if (strcmp(slash + 1, "data.pkl")) continue;
        if (pkl)
            return ti_error(err, TI_ERR_FORMAT, "'%s' holds two pickles ('%s' and '%s')", tf->name,
                            pkl->name, nm);
        pkl = &tf->zip.recs[i];
    }
    if (!pkl)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s' is a zip archive but not a torch file (it has "
                        "no <folder>/data.pkl record)",
                        tf->name);
    size_t plen = (size_t)(strchr(pkl->name, '/') - pkl->name);
    tf->prefix = malloc(plen + 1);
    if (!tf->prefix) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    memcpy(tf->prefix, pkl->name, plen);
    tf->prefix[plen] = '\0';

    char rec[TI_ZIP_MAX_NAME + 64];
    snprintf(rec, sizeof rec, "%s/byteorder", tf->prefix);
    const struct ti_zip_record *bo = ti_zip_find(&tf->zip, rec);
    if (bo) { /* torch.load: 'little' or 'big', anything else is "Unknown endianness type" */
        const uint8_t *b;
        void *bown;
        TI_TRY(ti_zip_read(&tf->zip, bo, &b, &bown, err));
        int little = bo->size == 6 && !memcmp(b, "little", 6);
        int big = bo->size == 3 && !memcmp(b, "big", 3);
        free(bown);
        if (big)
            return ti_error(err, TI_ERR_UNSUPPORTED,
                            "'%s' was written on a big-endian machine "
                            "(byteorder 'big'); ti reads little-endian files",
                            tf->name);
        if (!little)
            return ti_error(err, TI_ERR_FORMAT,
                            "'%s': its %s record is neither 'little' nor 'big' (torch.load "
                            "refuses it: unknown endianness type)",
                            tf->name, rec);
    }

    TI_TRY(check_version(tf, err));

    const uint8_t *pdata;
    void *powned;
    TI_TRY(ti_zip_check_crc(&tf->zip, pkl, err));
    TI_TRY(ti_zip_read(&tf->zip, pkl, &pdata, &powned, err));
    if (powned) TI_TRY(keep_owned(tf, powned, err));
    char what[512];
    snprintf(what, sizeof what, "'%s' %s", tf->name, pkl->name);
    TI_TRY(ti_pickle_new(&tf->pk, what, err));
    ti_pickle_set_flags(tf->pk, pickle_flags(flags));
    size_t used;
    TI_TRY(ti_pickle_run(tf->pk, pdata, (size_t)pkl->size, &used, &tf->root, err));

    for (struct ti_py_storage *s = ti_pickle_storages(tf->pk); s; s = s->next) {
        snprintf(rec, sizeof rec, "%s/data/%s", tf->prefix, s->key);
        const struct ti_zip_record *r = ti_zip_find(&tf->zip, rec);
        if (!r)
            return ti_error(err, TI_ERR_FORMAT,
                            "'%s': storage '%s' has no record '%s' (the file "
                            "is incomplete)",
                            tf->name, s->key, rec);
        if (flags & TI_TORCH_VERIFY_CRC) TI_TRY(ti_zip_check_crc(&tf->zip, r, err));
        const uint8_t *bytes;
        void *owned;
        if ((st = ti_zip_read(&tf->zip, r, &bytes, &owned, err)) != TI_OK) return st;
        TI_TRY(bind_storage(tf, s, bytes, r->size, owned, err));
    }
    return ti_pickle_bind_tensors(tf->pk, err);
}

static ti_status open_legacy(struct ti_torchfile *tf, unsigned flags, struct ti_err *err) {
    char what[512];
    snprintf(what, sizeof what, "'%s' (legacy torch file)", tf->name);
    TI_TRY(ti_pickle_new(&tf->pk, what, err));
    ti_pickle_set_flags(tf->pk, pickle_flags(flags));
    uint64_t pos = 0;
    size_t used;
    struct ti_py *v;
    /* 1. magic number, 2. protocol version, 3. sys_info */
    TI_TRY(ti_pickle_run(tf->pk, tf->data, (size_t)tf->size, &used, &v, err));
    if (v->kind != TI_PY_BIGINT || v->u.str.len != 10 || memcmp(v->u.str.s, legacy_magic, 10))
        return ti_error(err, TI_ERR_FORMAT, "%s: bad magic number", what);
    pos += used;
    TI_TRY(ti_pickle_run(tf->pk, tf->data + pos, (size_t)(tf->size - pos), &used, &v, err));
    if (v->kind != TI_PY_INT || v->u.i != 1001)
        return ti_error(err, TI_ERR_FORMAT, "%s: protocol version is not 1001", what);
    pos += used;
    TI_TRY(ti_pickle_run(tf->pk, tf->data + pos, (size_t)(tf->size - pos), &used, &v, err));
    const struct ti_py *le = ti_py_dict_get(v, "little_endian");
    if (v->kind != TI_PY_DICT || !le || le->kind != TI_PY_BOOL)
        return ti_error(err, TI_ERR_FORMAT, "%s: sys_info is not a dict with little_endian", what);
    if (!le->u.i)
        return ti_error(err, TI_ERR_UNSUPPORTED, "%s was written on a big-endian machine", what);
    pos += used;
    /* 4. the object */
    TI_TRY(ti_pickle_run(tf->pk, tf->data + pos, (size_t)(tf->size - pos), &used, &tf->root, err));
    pos += used;
    /* 5. the storage keys, then each storage: int64 count + raw bytes */
    struct ti_py *keys;
    TI_TRY(ti_pickle_run(tf->pk, tf->data + pos, (size_t)(tf->size - pos), &used, &keys, err));
    pos += used;
    if (keys->kind != TI_PY_LIST)
        return ti_error(err, TI_ERR_FORMAT, "%s: the storage key list is a %s", what,
                        ti_py_kind_name(keys->kind));
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const struct ti_py *k = keys->u.seq.items[i];
        if (k->kind != TI_PY_STR)
            return ti_error(err, TI_ERR_FORMAT, "%s: a storage key is not a string", what);
        struct ti_py_storage *s = ti_pickle_storage_find(tf->pk, k->u.str.s);
        if (!s)
            return ti_error(err, TI_ERR_FORMAT, "%s: storage '%s' is listed but never used", what,
                            k->u.str.s);
        if (s->data)
            return ti_error(err, TI_ERR_FORMAT, "%s: storage '%s' is listed twice", what, s->key);
        if (tf->size - pos < 8)
            return ti_error(err, TI_ERR_FORMAT, "%s: truncated before storage '%s'", what, s->key);
        uint64_t numel = 0;
        for (int b = 7; b >= 0; b--)
            numel = (numel << 8) | tf->data[pos + (uint64_t)b];
        pos += 8;
        uint64_t es = ti_dtype_size(s->dtype);
        if (numel != s->numel)
            return ti_error(err, TI_ERR_FORMAT,
                            "%s: storage '%s' holds %llu elements, the pickle "
                            "declares %llu",
                            what, s->key, (unsigned long long)numel, (unsigned long long)s->numel);
        if (numel > (tf->size - pos) / es)
            return ti_error(err, TI_ERR_FORMAT,
                            "%s: storage '%s' (%llu %s elements) runs past the "
                            "end of the file (truncated?)",
                            what, s->key, (unsigned long long)numel, ti_dtype_name(s->dtype));
        TI_TRY(bind_storage(tf, s, tf->data + pos, numel * es, NULL, err));
        pos += numel * es;
    }
    return ti_pickle_bind_tensors(tf->pk, err);
}

ti_status ti_torchfile_open_mem(struct ti_torchfile **out, const void *data, uint64_t size,
                                const char *name, unsigned flags, struct ti_err *err) {
    *out = NULL;
    struct ti_torchfile *tf = calloc(1, sizeof *tf);
    if (!tf || !(tf->name = ti_strdup(name ? name : "<memory>"))) {
        free(tf);
        return ti_error(err, TI_ERR_NOMEM, "'%s': out of memory", name ? name : "<memory>");
    }
    tf->data = data;
    tf->size = size;
    tf->container = ti_torchfile_sniff(data, size);
    ti_status st;
    if (tf->container == TI_TORCH_ZIP) {
        st = open_zip(tf, flags, err);
    } else if (tf->container == TI_TORCH_LEGACY) {
        st = open_legacy(tf, flags, err);
    } else if (size >= 262 && !memcmp((const uint8_t *)data + 257, "ustar", 5)) {
        st = ti_error(err, TI_ERR_UNSUPPORTED,
                      "'%s' is a tar-format torch file (torch <= 0.3), "
                      "which ti does not read",
                      tf->name);
    } else {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s' is not a torch file (neither a zip archive nor a "
                      "legacy torch pickle)",
                      tf->name);
    }
    if (st != TI_OK) {
        ti_torchfile_close(tf);
        return st;
    }
    *out = tf;
    return TI_OK;
}

ti_status ti_torchfile_open(struct ti_torchfile **out, const char *path, unsigned flags,
                            struct ti_err *err) {
    struct ti_fmap m;
    *out = NULL;
    TI_TRY(ti_fmap_open(&m, path, err));
    ti_status st = ti_torchfile_open_mem(out, m.data, m.size, path, flags, err);
    if (st != TI_OK) {
        ti_fmap_close(&m);
        return st;
    }
    (*out)->map = m;
    return TI_OK;
}

void ti_torchfile_close(struct ti_torchfile *tf) {
    if (!tf) return;
    ti_pickle_free(tf->pk);
    ti_zip_close(&tf->zip);
    for (size_t i = 0; i < tf->n_owned; i++)
        free(tf->owned[i]);
    free(tf->owned);
    ti_fmap_close(&tf->map);
    free(tf->prefix);
    free(tf->name);
    free(tf);
}

/* ---- writer -------------------------------------------------------------------------------- */

static const char *storage_class(enum ti_dtype dt) {
    switch (dt) {
    case TI_DTYPE_F32: return "FloatStorage";
    case TI_DTYPE_F16: return "HalfStorage";
    case TI_DTYPE_BF16: return "BFloat16Storage";
    case TI_DTYPE_F64: return "DoubleStorage";
    case TI_DTYPE_I64: return "LongStorage";
    case TI_DTYPE_I32: return "IntStorage";
    case TI_DTYPE_I16: return "ShortStorage";
    case TI_DTYPE_I8: return "CharStorage";
    case TI_DTYPE_U8: return "ByteStorage";
    case TI_DTYPE_BOOL: return "BoolStorage";
    default: return NULL;
    }
}

void ti_tensor_gather(void *dst, const struct ti_tensor *t) {
    size_t es = ti_dtype_size(t->dtype);
    int64_t n = ti_tensor_numel(t);
    if (n <= 0 || !t->data) return; /* writers refuse data-less tensors before they get here */
    if (ti_tensor_is_contiguous(t)) {
        memcpy(dst, t->data, (size_t)n * es);
        return;
    }
    int64_t idx[TI_MAX_DIMS] = {0};
    const uint8_t *src = t->data;
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int k = 0; k < t->ndim; k++)
            off += idx[k] * t->stride[k];
        memcpy(d + (size_t)i * es, src + off * (int64_t)es, es);
        for (int k = t->ndim - 1; k >= 0; k--) {
            if (++idx[k] < t->shape[k]) break;
            idx[k] = 0;
        }
    }
}

void ti_torch_writer_init(struct ti_torch_writer *w) {
    memset(w, 0, sizeof *w);
    ti_pkw_init(&w->pk);
    w->zip64_threshold = 0xFFFFFFFFu;
}

void ti_torch_writer_free(struct ti_torch_writer *w) {
    for (size_t i = 0; i < w->n_st; i++)
        free(w->st[i].data);
    free(w->st);
    ti_pkw_free(&w->pk);
    memset(w, 0, sizeof *w);
}

static void pkw_int_tuple(struct ti_pkw *pk, int n, const int64_t *v) {
    if (n > 3) ti_pkw_op(pk, TI_PK_MARK);
    for (int i = 0; i < n; i++)
        ti_pkw_int(pk, v[i]);
    ti_pkw_tuple(pk, n);
}

ti_status ti_torch_writer_tensor(struct ti_torch_writer *w, const struct ti_tensor *t,
                                 int requires_grad, struct ti_err *err) {
    const char *cls = storage_class(t->dtype);
    if (!cls) return ti_error(err, TI_ERR_DTYPE, "torch writer: dtype %s", ti_dtype_name(t->dtype));
    if (t->device != TI_DEVICE_CPU || (!t->data && ti_tensor_numel(t) > 0))
        return ti_error(err, TI_ERR_INVALID, "torch writer: tensor is not in CPU memory");
    if (w->n_st == w->cap_st) {
        size_t cap = w->cap_st ? 2 * w->cap_st : 8;
        struct ti_torch_writer_storage *s = realloc(w->st, cap * sizeof *s);
        if (!s) return ti_error(err, TI_ERR_NOMEM, "torch writer: out of memory");
        w->st = s;
        w->cap_st = cap;
    }
    int64_t numel = ti_tensor_numel(t);
    size_t nbytes = (size_t)numel * ti_dtype_size(t->dtype);
    void *copy = malloc(nbytes ? nbytes : 1);
    if (!copy) return ti_error(err, TI_ERR_NOMEM, "torch writer: out of memory");
    ti_tensor_gather(copy, t);
    size_t key = w->n_st;
    w->st[w->n_st++] = (struct ti_torch_writer_storage){copy, nbytes};

    char keystr[24];
    snprintf(keystr, sizeof keystr, "%zu", key);
    int64_t stride[TI_MAX_DIMS], s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= t->shape[i];
    }
    struct ti_pkw *pk = &w->pk;
    ti_pkw_global(pk, "torch._utils", "_rebuild_tensor_v2");
    ti_pkw_op(pk, TI_PK_MARK);
    ti_pkw_op(pk, TI_PK_MARK); /* persistent id */
    ti_pkw_str(pk, "storage");
    ti_pkw_global(pk, "torch", cls);
    ti_pkw_str(pk, keystr);
    ti_pkw_str(pk, "cpu");
    ti_pkw_int(pk, numel);
    ti_pkw_op(pk, TI_PK_TUPLE);
    ti_pkw_op(pk, TI_PK_BINPERSID);
    ti_pkw_int(pk, 0);
    pkw_int_tuple(pk, t->ndim, t->shape);
    pkw_int_tuple(pk, t->ndim, stride);
    ti_pkw_bool(pk, requires_grad);
    ti_pkw_global(pk, "collections", "OrderedDict");
    ti_pkw_op(pk, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(pk, TI_PK_REDUCE);
    ti_pkw_op(pk, TI_PK_TUPLE);
    ti_pkw_op(pk, TI_PK_REDUCE);
    return ti_pkw_status(pk, err);
}

ti_status ti_torch_writer_parameter(struct ti_torch_writer *w, const struct ti_tensor *t,
                                    int requires_grad, struct ti_err *err) {
    ti_pkw_global(&w->pk, "torch._utils", "_rebuild_parameter");
    TI_TRY(ti_torch_writer_tensor(w, t, requires_grad, err));
    ti_pkw_bool(&w->pk, requires_grad);
    ti_pkw_global(&w->pk, "collections", "OrderedDict");
    ti_pkw_op(&w->pk, TI_PK_EMPTY_TUPLE);
    ti_pkw_op(&w->pk, TI_PK_REDUCE);
    ti_pkw_op(&w->pk, TI_PK_TUPLE3);
    ti_pkw_op(&w->pk, TI_PK_REDUCE);
    return ti_pkw_status(&w->pk, err);
}

ti_status ti_torch_writer_save(struct ti_torch_writer *w, const char *path, struct ti_err *err) {
    ti_pkw_op(&w->pk, TI_PK_STOP);
    TI_TRY(ti_pkw_status(&w->pk, err));
    char stem[256], name[512];
    ti_path_stem(path, stem, sizeof stem);
    if (!stem[0]) snprintf(stem, sizeof stem, "archive");
    struct ti_outfile f;
    TI_TRY(ti_outfile_open(&f, path, err));
    struct ti_zip_writer z;
    ti_zip_writer_init(&z, &f);
    z.zip64_threshold = w->zip64_threshold;
    ti_status st;
    snprintf(name, sizeof name, "%s/data.pkl", stem);
    TI_TRY_GOTO(st, ti_zip_writer_add(&z, name, w->pk.buf, w->pk.n, err));
    for (size_t i = 0; i < w->n_st; i++) {
        snprintf(name, sizeof name, "%s/data/%zu", stem, i);
        TI_TRY_GOTO(st, ti_zip_writer_add(&z, name, w->st[i].data, w->st[i].nbytes, err));
    }
    snprintf(name, sizeof name, "%s/version", stem);
    TI_TRY_GOTO(st, ti_zip_writer_add(&z, name, "3\n", 2, err));
    TI_TRY_GOTO(st, ti_zip_writer_finish(&z, err));
    ti_zip_writer_free(&z);
    return ti_outfile_commit(&f, err);
fail:
    ti_zip_writer_free(&z);
    ti_outfile_abort(&f);
    return st;
}
