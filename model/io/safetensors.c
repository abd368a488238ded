/* safetensors.c - validating safetensors reader and writer (see safetensors.h). */
#include "safetensors.h"

#include "unicode.h" /* defines: ti_utf8_valid */

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free, qsort */
#include <string.h> /* defines: memcpy, memcmp, strcmp, strlen */

#include "torchfile.h" /* defines: ti_tensor_gather */
#include "strbuf.h"    /* defines: struct ti_strbuf, ti_sb_put, ti_sb_str */

static const struct {
    const char *name;
    enum ti_dtype dt;
} st_dtypes[] = {
    {"F32", TI_DTYPE_F32}, {"F16", TI_DTYPE_F16},   {"BF16", TI_DTYPE_BF16}, {"F64", TI_DTYPE_F64},
    {"I64", TI_DTYPE_I64}, {"I32", TI_DTYPE_I32},   {"I16", TI_DTYPE_I16},   {"I8", TI_DTYPE_I8},
    {"U8", TI_DTYPE_U8},   {"BOOL", TI_DTYPE_BOOL},
};

const char *ti_safetensors_dtype_name(enum ti_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name;
    return NULL;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int ti_safetensors_sniff(const void *data, uint64_t size) {
    const uint8_t *d = data;
    if (size < 10) return 0;
    uint64_t n = rd64(d);
    return n >= 2 && n <= size - 8 && d[8] == '{';
}

/* ---- a strict JSON reader for the header --------------------------------------------------- */

struct jp {
    const uint8_t *p, *end;
    const char *what;
    struct ti_err *err;
};

static void ws(struct jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static ti_status jerr(struct jp *j, const char *msg) {
    return ti_error(j->err, TI_ERR_FORMAT, "%s: header JSON: %s", j->what, msg);
}

static ti_status expect(struct jp *j, char c) {
    ws(j);
    if (j->p >= j->end || *j->p != (uint8_t)c) {
        char m[48];
        snprintf(m, sizeof m, "expected '%c'", c);
        return jerr(j, m);
    }
    j->p++;
    return TI_OK;
}

static int peek(struct jp *j, char c) {
    ws(j);
    return j->p < j->end && *j->p == (uint8_t)c;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parses a JSON string into a malloc'd NUL-terminated UTF-8 string. */
static ti_status jstring(struct jp *j, char **out, size_t *outlen) {
    *out = NULL;
    ws(j);
    if (j->p >= j->end || *j->p != '"') return jerr(j, "expected a string");
    j->p++;
    const uint8_t *s = j->p;
    size_t cap = 0;
    while (j->p < j->end && *j->p != '"') { /* a first pass for the length bound */
        if (*j->p == '\\') j->p++;
        if (j->p < j->end) j->p++;
        cap++;
    }
    if (j->p >= j->end) return jerr(j, "unterminated string");
    const uint8_t *e = j->p++;
    char *buf = malloc(4 * cap + 1);
    if (!buf) return ti_error(j->err, TI_ERR_NOMEM, "%s: out of memory", j->what);
    buf[0] = '\0';
    size_t n = 0;
    for (const uint8_t *q = s; q < e;) {
        uint8_t c = *q++;
        if (c < 0x20) goto bad;
        if (c != '\\') {
            buf[n++] = (char)c;
            continue;
        }
        c = *q++;
        switch (c) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp = 0;
            for (int i = 0; i < 4; i++) {
                int h = q < e ? hexval(*q++) : -1;
                if (h < 0) goto bad;
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* surrogate pair */
                uint32_t lo = 0;
                if (e - q < 6 || q[0] != '\\' || q[1] != 'u') goto bad;
                q += 2;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(*q++);
                    if (h < 0) goto bad;
                    lo = lo * 16 + (uint32_t)h;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                goto bad;
            }
            if (cp < 0x80) {
                buf[n++] = (char)cp;
            } else if (cp < 0x800) {
                buf[n++] = (char)(0xC0 | (cp >> 6));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[n++] = (char)(0xE0 | (cp >> 12));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[n++] = (char)(0xF0 | (cp >> 18));
                buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: goto bad;
        }
    }
    if (!ti_utf8_valid((const uint8_t *)buf, n, 0) || memchr(buf, 0, n)) goto bad;
    buf[n] = '\0';
    *out = buf;
    if (outlen) *outlen = n;
    return TI_OK;
bad:
    free(buf);
    return jerr(j, "invalid string (bad escape, control character, NUL or invalid UTF-8)");
}

/* A non-negative JSON integer below 2^63 (no sign, fraction or exponent). */
static ti_status juint(struct jp *j, uint64_t *v) {
    ws(j);
    const uint8_t *s = j->p;
    uint64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (INT64_MAX - 9) / 10) return jerr(j, "integer too large");
        x = x * 10 + (uint64_t)(*j->p++ - '0');
    }
    if (j->p == s) return jerr(j, "expected a non-negative integer");
    if (j->p - s > 1 && *s == '0') return jerr(j, "integer with a leading zero");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return jerr(j, "expected an integer, found a fraction");
    *v = x;
    return TI_OK;
}

/* Skips any JSON value (for unknown keys inside a tensor entry); depth-bounded. */
static ti_status jskip(struct jp *j, int depth) {
    if (depth > 16) return jerr(j, "nested too deeply");
    ws(j);
    if (j->p >= j->end) return jerr(j, "unexpected end");
    uint8_t c = *j->p;
    if (c == '"') {
        char *s;
        TI_TRY(jstring(j, &s, NULL));
        free(s);
        return TI_OK;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (peek(j, close)) {
            j->p++;
            return TI_OK;
        }
        for (;;) {
            if (c == '{') {
                char *k;
                TI_TRY(jstring(j, &k, NULL));
                free(k);
                TI_TRY(expect(j, ':'));
            }
            TI_TRY(jskip(j, depth + 1));
            if (peek(j, ',')) {
                j->p++;
                continue;
            }
            return expect(j, close);
        }
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lits[i], n)) {
            j->p += n;
            return TI_OK;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        j->p++;
        while (j->p < j->end && strchr("0123456789.eE+-", *j->p))
            j->p++;
        return TI_OK;
    }
    return jerr(j, "unexpected character");
}

/* ---- reader -------------------------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const struct ti_st_tensor *)a)->name, ((const struct ti_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const struct ti_st_tensor *x = *(const struct ti_st_tensor *const *)a;
    const struct ti_st_tensor *y = *(const struct ti_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static ti_status parse_tensor(struct jp *j, struct ti_st_tensor *t, const char *name) {
    int have_dtype = 0, have_shape = 0, have_off = 0;
    TI_TRY(expect(j, '{'));
    if (peek(j, '}'))
        return ti_error(j->err, TI_ERR_FORMAT, "%s: tensor '%s' has an empty entry", j->what, name);
    for (;;) {
        char *k;
        TI_TRY(jstring(j, &k, NULL));
        ti_status st = expect(j, ':');
        if (st != TI_OK) {
            free(k);
            return st;
        }
        if (!strcmp(k, "dtype")) {
            free(k);
            if (have_dtype++) return jerr(j, "duplicate 'dtype'");
            char *d;
            TI_TRY(jstring(j, &d, NULL));
            int found = -1;
            for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
                if (!strcmp(d, st_dtypes[i].name)) found = (int)i;
            if (found < 0) {
                st = ti_error(j->err, TI_ERR_UNSUPPORTED,
                              "%s: tensor '%s' has dtype '%.32s', "
                              "which ti does not support",
                              j->what, name, d);
                free(d);
                return st;
            }
            free(d);
            t->t.dtype = st_dtypes[found].dt;
        } else if (!strcmp(k, "shape")) {
            free(k);
            if (have_shape++) return jerr(j, "duplicate 'shape'");
            TI_TRY(expect(j, '['));
            int nd = 0;
            if (peek(j, ']')) {
                j->p++;
            } else {
                for (;;) {
                    uint64_t d;
                    TI_TRY(juint(j, &d));
                    if (nd == TI_MAX_DIMS)
                        return ti_error(j->err, TI_ERR_UNSUPPORTED,
                                        "%s: tensor '%s' has more "
                                        "than %d dimensions",
                                        j->what, name, TI_MAX_DIMS);
                    t->t.shape[nd++] = (int64_t)d;
                    if (peek(j, ',')) {
                        j->p++;
                        continue;
                    }
                    TI_TRY(expect(j, ']'));
                    break;
                }
            }
            t->t.ndim = nd;
        } else if (!strcmp(k, "data_offsets")) {
            free(k);
            if (have_off++) return jerr(j, "duplicate 'data_offsets'");
            TI_TRY(expect(j, '['));
            TI_TRY(juint(j, &t->begin));
            TI_TRY(expect(j, ','));
            TI_TRY(juint(j, &t->end));
            TI_TRY(expect(j, ']'));
        } else {
            free(k);
            TI_TRY(jskip(j, 0));
        }
        if (peek(j, ',')) {
            j->p++;
            continue;
        }
        TI_TRY(expect(j, '}'));
        break;
    }
    if (!have_dtype || !have_shape || !have_off)
        return ti_error(j->err, TI_ERR_FORMAT, "%s: tensor '%s' lacks %s", j->what, name,
                        !have_dtype   ? "'dtype'"
                        : !have_shape ? "'shape'"
                                      : "'data_offsets'");
    return TI_OK;
}

static ti_status parse_metadata(struct jp *j, struct ti_safetensors *st) {
    TI_TRY(expect(j, '{'));
    if (peek(j, '}')) {
        j->p++;
        return TI_OK;
    }
    size_t cap = 0;
    for (;;) {
        char *k, *v;
        TI_TRY(jstring(j, &k, NULL));
        ti_status s = expect(j, ':');
        if (s == TI_OK) s = jstring(j, &v, NULL);
        if (s != TI_OK) {
            free(k);
            return ti_error(j->err, TI_ERR_FORMAT, "%s: __metadata__ values must be strings",
                            j->what);
        }
        for (size_t i = 0; i < st->n_meta; i++)
            if (!strcmp(st->meta[2 * i], k)) {
                free(k);
                free(v);
                return jerr(j, "duplicate __metadata__ key");
            }
        if (st->n_meta == cap) {
            cap = cap ? 2 * cap : 8;
            char **m = realloc(st->meta, 2 * cap * sizeof *m);
            if (!m) {
                free(k);
                free(v);
                return ti_error(j->err, TI_ERR_NOMEM, "out of memory");
            }
            st->meta = m;
        }
        st->meta[2 * st->n_meta] = k;
        st->meta[2 * st->n_meta + 1] = v;
        st->n_meta++;
        if (peek(j, ',')) {
            j->p++;
            continue;
        }
        return expect(j, '}');
    }
}

static ti_status parse(struct ti_safetensors *st, struct ti_err *err) {
    const char *what = st->name;
    if (st->size < 8)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': %llu bytes is too short for a safetensors "
                        "file (truncated?)",
                        what, (unsigned long long)st->size);
    uint64_t n = rd64(st->data);
    if (n > TI_SAFETENSORS_MAX_HEADER)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': header length %llu exceeds the limit of %llu "
                        "bytes",
                        what, (unsigned long long)n, TI_SAFETENSORS_MAX_HEADER);
    if (n > st->size - 8)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': header length %llu runs past the end of the "
                        "file (%llu bytes; truncated?)",
                        what, (unsigned long long)n, (unsigned long long)st->size);
    st->header_len = n;
    struct jp j = {st->data + 8, st->data + 8 + n, what, err};
    size_t cap = 0;
    int have_meta = 0;
    TI_TRY(expect(&j, '{'));
    if (peek(&j, '}')) {
        j.p++;
    } else {
        for (;;) {
            char *key;
            TI_TRY(jstring(&j, &key, NULL));
            ti_status s = expect(&j, ':');
            if (s != TI_OK) {
                free(key);
                return s;
            }
            if (!strcmp(key, "__metadata__")) {
                free(key);
                if (have_meta++) return jerr(&j, "duplicate __metadata__");
                TI_TRY(parse_metadata(&j, st));
            } else {
                if (st->n == cap) {
                    cap = cap ? 2 * cap : 64;
                    struct ti_st_tensor *t = realloc(st->tensors, cap * sizeof *t);
                    if (!t) {
                        free(key);
                        return ti_error(err, TI_ERR_NOMEM, "out of memory");
                    }
                    st->tensors = t;
                }
                struct ti_st_tensor *t = &st->tensors[st->n++];
                memset(t, 0, sizeof *t);
                t->name = key;
                t->t = ti_tensor_none();
                TI_TRY(parse_tensor(&j, t, key));
            }
            if (peek(&j, ',')) {
                j.p++;
                continue;
            }
            TI_TRY(expect(&j, '}'));
            break;
        }
    }
    ws(&j); /* writers pad with spaces */
    if (j.p != j.end) return jerr(&j, "trailing bytes after the header object");

    /* names unique */
    if (st->n) qsort(st->tensors, st->n, sizeof *st->tensors, cmp_name);
    for (size_t i = 1; i < st->n; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
            return ti_error(err, TI_ERR_FORMAT, "'%s': tensor '%s' appears twice in the header",
                            what, st->tensors[i].name);
    /* sizes match shapes, and the tensors tile the buffer exactly */
    uint64_t buf_size = st->size - 8 - n;
    const uint8_t *buf = st->data + 8 + n;
    struct ti_st_tensor **order = malloc((st->n ? st->n : 1) * sizeof *order);
    if (!order) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    ti_status s = TI_OK;
    for (size_t i = 0; i < st->n; i++) {
        struct ti_st_tensor *t = &st->tensors[i];
        uint64_t bytes = ti_dtype_size(t->t.dtype);
        for (int d = 0; d < t->t.ndim; d++)
            if (__builtin_mul_overflow(bytes, (uint64_t)t->t.shape[d], &bytes)) {
                s = ti_error(err, TI_ERR_FORMAT, "'%s': tensor '%s' has an impossible shape", what,
                             t->name);
                goto done;
            }
        if (t->end < t->begin || t->end - t->begin != bytes) {
            char sh[160];
            s = ti_error(err, TI_ERR_FORMAT,
                         "'%s': tensor '%s' (%s %s = %llu bytes) has "
                         "data_offsets [%llu, %llu] (%lld bytes)",
                         what, t->name, ti_dtype_name(t->t.dtype),
                         ti_shape_str(t->t.ndim, t->t.shape, sh, sizeof sh),
                         (unsigned long long)bytes, (unsigned long long)t->begin,
                         (unsigned long long)t->end, (long long)(t->end - t->begin));
            goto done;
        }
        order[i] = t;
    }
    if (st->n) qsort(order, st->n, sizeof *order, cmp_begin);
    uint64_t at = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (order[i]->begin != at) {
            s = ti_error(err, TI_ERR_FORMAT,
                         "'%s': tensor '%s' starts at buffer offset %llu, "
                         "expected %llu (the offsets %s)",
                         what, order[i]->name, (unsigned long long)order[i]->begin,
                         (unsigned long long)at, order[i]->begin > at ? "leave a gap" : "overlap");
            goto done;
        }
        at = order[i]->end;
    }
    if (at != buf_size) {
        s = ti_error(err, TI_ERR_FORMAT,
                     "'%s': the tensors cover %llu bytes but the data buffer "
                     "holds %llu (the file is %s)",
                     what, (unsigned long long)at, (unsigned long long)buf_size,
                     at > buf_size ? "truncated" : "padded or damaged");
        goto done;
    }
    for (size_t i = 0; i < st->n; i++) {
        struct ti_st_tensor *t = &st->tensors[i];
        const uint8_t *p = buf + t->begin;
        size_t es = ti_dtype_size(t->t.dtype);
        if (((uintptr_t)p % es) != 0 && t->end > t->begin) { /* realign */
            void *copy = malloc((size_t)(t->end - t->begin));
            void **o = realloc(st->owned, (st->n_owned + 1) * sizeof *o);
            if (!copy || !o) {
                free(copy);
                if (o) st->owned = o;
                s = ti_error(err, TI_ERR_NOMEM, "out of memory");
                goto done;
            }
            memcpy(copy, p, (size_t)(t->end - t->begin));
            st->owned = o;
            st->owned[st->n_owned++] = copy;
            p = copy;
        }
        t->t.data = (void *)p;
        t->t.device = TI_DEVICE_CPU;
        ti_tensor_set_contiguous(&t->t);
    }
done:
    free(order);
    return s;
}

ti_status ti_safetensors_open_mem(struct ti_safetensors **out, const void *data, uint64_t size,
                                  const char *name, struct ti_err *err) {
    *out = NULL;
    struct ti_safetensors *st = calloc(1, sizeof *st);
    const char *nm = name ? name : "<memory>";
    if (st) st->name = malloc(strlen(nm) + 1);
    if (!st || !st->name) {
        free(st);
        return ti_error(err, TI_ERR_NOMEM, "'%s': out of memory", nm);
    }
    memcpy(st->name, nm, strlen(nm) + 1);
    st->data = data;
    st->size = size;
    ti_status s = parse(st, err);
    if (s != TI_OK) {
        ti_safetensors_close(st);
        return s;
    }
    *out = st;
    return TI_OK;
}

ti_status ti_safetensors_open(struct ti_safetensors **out, const char *path, struct ti_err *err) {
    struct ti_fmap m;
    *out = NULL;
    TI_TRY(ti_fmap_open(&m, path, err));
    ti_status s = ti_safetensors_open_mem(out, m.data, m.size, path, err);
    if (s != TI_OK) {
        ti_fmap_close(&m);
        return s;
    }
    (*out)->map = m;
    return TI_OK;
}

void ti_safetensors_close(struct ti_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < 2 * st->n_meta; i++)
        free(st->meta[i]);
    free(st->meta);
    for (size_t i = 0; i < st->n_owned; i++)
        free(st->owned[i]);
    free(st->owned);
    ti_fmap_close(&st->map);
    free(st->name);
    free(st);
}

const struct ti_st_tensor *ti_safetensors_find(const struct ti_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (!c) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *ti_safetensors_meta(const struct ti_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

/* ---- writer -------------------------------------------------------------------------------- */

static void sb_json_str(struct ti_strbuf *b, const char *s) {
    ti_sb_put(b, "\"", 1);
    for (const uint8_t *q = (const uint8_t *)s; *q; q++) {
        char esc[8];
        if (*q == '"' || *q == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*q;
            ti_sb_put(b, esc, 2);
        } else if (*q < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *q);
            ti_sb_put(b, esc, 6);
        } else {
            ti_sb_put(b, (const char *)q, 1);
        }
    }
    ti_sb_put(b, "\"", 1);
}

struct wentry {
    const struct ti_st_entry *e;
    size_t es;
};

static int cmp_write(const void *a, const void *b) {
    const struct wentry *x = a, *y = b;
    if (x->es != y->es) return x->es > y->es ? -1 : 1;
    return strcmp(x->e->name, y->e->name);
}

ti_status ti_safetensors_write(const char *path, const struct ti_st_entry *entries, size_t n,
                               const char *const *meta, size_t n_meta, struct ti_err *err) {
    ti_status st = TI_OK;
    struct ti_strbuf h = {0};
    struct ti_outfile f;
    int opened = 0;
    void *tmp = NULL;
    struct wentry *w = calloc(n ? n : 1, sizeof *w);
    if (!w) return ti_error(err, TI_ERR_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct ti_tensor *t = entries[i].t;
        if (!ti_safetensors_dtype_name(t->dtype) || t->device != TI_DEVICE_CPU) {
            st = ti_error(err, TI_ERR_DTYPE,
                          "safetensors writer: tensor '%s' (%s) cannot be "
                          "written",
                          entries[i].name, ti_dtype_name(t->dtype));
            goto fail;
        }
        if (!ti_utf8_valid((const uint8_t *)entries[i].name, strlen(entries[i].name), 0) ||
            !strcmp(entries[i].name, "__metadata__")) {
            st = ti_error(err, TI_ERR_INVALID, "safetensors writer: invalid tensor name '%s'",
                          entries[i].name);
            goto fail;
        }
        w[i].e = &entries[i];
        w[i].es = ti_dtype_size(t->dtype);
    }
    if (n) qsort(w, n, sizeof *w, cmp_write);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(w[i - 1].e->name, w[i].e->name)) {
            st = ti_error(err, TI_ERR_INVALID, "safetensors writer: tensor '%s' given twice",
                          w[i].e->name);
            goto fail;
        }
    ti_sb_str(&h, "{");
    if (n_meta) {
        ti_sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) ti_sb_str(&h, ",");
            sb_json_str(&h, meta[2 * i]);
            ti_sb_str(&h, ":");
            sb_json_str(&h, meta[2 * i + 1]);
        }
        ti_sb_str(&h, "}");
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ti_tensor *t = w[i].e->t;
        uint64_t bytes = (uint64_t)ti_tensor_numel(t) * w[i].es;
        char num[64];
        if (n_meta || i) ti_sb_str(&h, ",");
        sb_json_str(&h, w[i].e->name);
        ti_sb_str(&h, ":{\"dtype\":\"");
        ti_sb_str(&h, ti_safetensors_dtype_name(t->dtype));
        ti_sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            ti_sb_str(&h, num);
        }
        uint64_t end = off + bytes;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)end);
        ti_sb_str(&h, num);
        off = end;
    }
    ti_sb_str(&h, "}");
    while (!h.oom && h.n % 8)
        ti_sb_str(&h, " ");
    if (h.oom) {
        st = ti_error(err, TI_ERR_NOMEM, "safetensors writer: out of memory");
        goto fail;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    TI_TRY_GOTO(st, ti_outfile_open(&f, path, err));
    opened = 1;
    TI_TRY_GOTO(st, ti_outfile_write(&f, len8, 8, err));
    TI_TRY_GOTO(st, ti_outfile_write(&f, h.p, h.n, err));
    for (size_t i = 0; i < n; i++) {
        const struct ti_tensor *t = w[i].e->t;
        size_t bytes = (size_t)ti_tensor_numel(t) * w[i].es;
        if (!bytes) continue;
        if (ti_tensor_is_contiguous(t)) {
            TI_TRY_GOTO(st, ti_outfile_write(&f, t->data, bytes, err));
        } else {
            tmp = malloc(bytes);
            if (!tmp) {
                st = ti_error(err, TI_ERR_NOMEM, "safetensors writer: out of memory");
                goto fail;
            }
            ti_tensor_gather(tmp, t);
            TI_TRY_GOTO(st, ti_outfile_write(&f, tmp, bytes, err));
            free(tmp);
            tmp = NULL;
        }
    }
    opened = 0;
    st = ti_outfile_commit(&f, err);
fail:
    if (opened) ti_outfile_abort(&f);
    free(tmp);
    free(h.p);
    free(w);
    return st;
}
