/*
 * test_io_safetensors.c - safetensors (model/io/safetensors.h): writer -> reader round trips for
 * every dtype, scalars, empty and 6-D tensors, strided sources, escaped names and metadata; files
 * written by Python's safetensors; and headers that lie: oversize and overlong headers, gaps,
 * overlaps, sizes that disagree with shapes, buffers too short or too long, duplicates, unknown
 * dtypes, bad JSON of many kinds, every truncation. Plus realignment of unaligned tensors.
 */
#include "io_test_util.h"
#include "safetensors.h"
#include "test_common.h"
#include "torchfile.h" /* defines: ti_tensor_gather */

static const char *tmp;

TEST(round_trip_every_dtype) {
    static double f64[3] = {1e300, -0.5, 2};
    static float f32[6] = {1, 2, 3, 4, 5, 6};
    static uint16_t f16[2] = {0x3c00, 0x7c00}, bf16[2] = {0x3f80, 0xff80};
    static int64_t i64[2] = {INT64_MIN, 7};
    static int32_t i32[1] = {-9};
    static int16_t i16[2] = {-3, 3};
    static int8_t i8[3] = {-128, 0, 127};
    static uint8_t u8[1] = {255}, b8[2] = {1, 0};
    static float six[64];
    for (int i = 0; i < 64; i++)
        six[i] = (float)i;
    struct ti_tensor t[13];
    t[0] = ti_tensor_view(f64, TI_DTYPE_F64, TI_DEVICE_CPU, 1, (int64_t[]){3});
    t[1] = ti_tensor_view(f32, TI_DTYPE_F32, TI_DEVICE_CPU, 2, (int64_t[]){2, 3});
    t[2] = ti_tensor_view(f16, TI_DTYPE_F16, TI_DEVICE_CPU, 1, (int64_t[]){2});
    t[3] = ti_tensor_view(bf16, TI_DTYPE_BF16, TI_DEVICE_CPU, 1, (int64_t[]){2});
    t[4] = ti_tensor_view(i64, TI_DTYPE_I64, TI_DEVICE_CPU, 1, (int64_t[]){2});
    t[5] = ti_tensor_view(i32, TI_DTYPE_I32, TI_DEVICE_CPU, 0, NULL);
    t[6] = ti_tensor_view(i16, TI_DTYPE_I16, TI_DEVICE_CPU, 1, (int64_t[]){2});
    t[7] = ti_tensor_view(i8, TI_DTYPE_I8, TI_DEVICE_CPU, 1, (int64_t[]){3});
    t[8] = ti_tensor_view(u8, TI_DTYPE_U8, TI_DEVICE_CPU, 1, (int64_t[]){1});
    t[9] = ti_tensor_view(b8, TI_DTYPE_BOOL, TI_DEVICE_CPU, 1, (int64_t[]){2});
    t[10] = ti_tensor_view(f32, TI_DTYPE_F32, TI_DEVICE_CPU, 2, (int64_t[]){0, 3});
    t[11] = ti_tensor_view(six, TI_DTYPE_F32, TI_DEVICE_CPU, 6, (int64_t[]){2, 2, 2, 2, 2, 2});
    struct ti_err err = {0};
    CHECK_OK(ti_tensor_permute_view(&t[12], &t[1], (int[]){1, 0}, &err), &err); /* strided */
    const char *names[13] = {"f64",       "f32",  "f16",   "bf16",
                             "i64",       "i32",  "i16",   "i8",
                             "u8",        "bool", "empty", "six \"quoted\" \\ \xc3\xa9",
                             "transposed"};
    struct ti_st_entry e[13];
    for (int i = 0; i < 13; i++)
        e[i] = (struct ti_st_entry){names[i], &t[i]};
    const char *meta[] = {"format", "pt", "note", "line\nbreak \"q\""};
    const char *p = tio_path(tmp, "all.safetensors");
    CHECK_OK(ti_safetensors_write(p, e, 13, meta, 2, &err), &err);
    struct ti_safetensors *st = NULL;
    CHECK_OK(ti_safetensors_open(&st, p, &err), &err);
    if (!st) return;
    CHECK(st->n == 13 && st->header_len % 8 == 0);
    CHECK(!strcmp(ti_safetensors_meta(st, "format"), "pt"));
    CHECK(!strcmp(ti_safetensors_meta(st, "note"), "line\nbreak \"q\""));
    for (int i = 0; i < 13; i++) {
        const struct ti_st_tensor *r = ti_safetensors_find(st, names[i]);
        CHECK(r != NULL);
        if (!r) continue;
        CHECK(ti_tensor_same_shape(&r->t, &t[i]) && r->t.dtype == t[i].dtype);
        size_t nb = ti_tensor_nbytes(&t[i]);
        uint8_t *want = malloc(nb + 1);
        ti_tensor_gather(want, &t[i]);
        CHECK(!memcmp(r->t.data, want, nb));
        CHECK(((uintptr_t)r->t.data % ti_dtype_size(r->t.dtype)) == 0);
        free(want);
    }
    /* the reference writer's order: larger elements first, then by name */
    CHECK(ti_safetensors_find(st, "f64")->begin == 0 || ti_safetensors_find(st, "i64")->begin == 0);
    CHECK(ti_safetensors_find(st, "u8")->begin > ti_safetensors_find(st, "f32")->begin);
    ti_safetensors_close(st);
    /* the writer refuses duplicates and the reserved name */
    struct ti_st_entry dup[2] = {{"a", &t[1]}, {"a", &t[2]}};
    CHECK(ti_safetensors_write(tio_path(tmp, "dup.safetensors"), dup, 2, NULL, 0, &err) ==
          TI_ERR_INVALID);
    struct ti_st_entry res[1] = {{"__metadata__", &t[1]}};
    CHECK(ti_safetensors_write(tio_path(tmp, "res.safetensors"), res, 1, NULL, 0, &err) ==
          TI_ERR_INVALID);
    CHECK(!tio_exists(tio_path(tmp, "dup.safetensors")) &&
          !tio_exists(tio_path(tmp, "res.safetensors")));
}

TEST(files_from_python) {
    struct ti_safetensors *st = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_safetensors_open(&st, tio_fixture("learned_embeds.safetensors"), &err), &err);
    if (st) {
        const struct ti_st_tensor *t = ti_safetensors_find(st, "<cat-toy>");
        CHECK(t && t->t.dtype == TI_DTYPE_F32 && t->t.shape[0] == 3 && t->t.shape[1] == 768);
        CHECK(!strcmp(ti_safetensors_meta(st, "format"), "pt"));
        if (t) {
            double got[2304], want[2304];
            for (int i = 0; i < 2304; i++)
                got[i] = ((const float *)t->t.data)[i], want[i] = tio_value(i, 9);
            CHECK_CLOSE(got, want, 2304, 0, 0);
        }
        ti_safetensors_close(st);
    }
    CHECK_OK(ti_safetensors_open(&st, tio_fixture("diffusers_tiny_original.safetensors"), &err),
             &err);
    CHECK(st && st->n == 1131);
    ti_safetensors_close(st);
}

/* A file from a literal header and a buffer of `buf` bytes (0, 1, 2, ...). */
static ti_status open_raw(const char *header, uint64_t declared, size_t buf, struct ti_err *err) {
    size_t hl = strlen(header);
    uint8_t *f = malloc(8 + hl + buf + 1);
    uint64_t n = declared ? declared : hl;
    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)(n >> (8 * i));
    memcpy(f + 8, header, hl);
    for (size_t i = 0; i < buf; i++)
        f[8 + hl + i] = (uint8_t)i;
    struct ti_safetensors *st = NULL;
    ti_err_clear(err);
    ti_status s = ti_safetensors_open_mem(&st, f, 8 + hl + buf, "raw", err);
    ti_safetensors_close(st);
    free(f);
    return s;
}

static void expect_raw(const char *header, uint64_t declared, size_t buf, ti_status code,
                       const char *needle) {
    struct ti_err err = {0};
    ti_status s = open_raw(header, declared, buf, &err);
    CHECK(s == code);
    CHECK(strstr(err.msg, needle) != NULL);
    if (s != code || !strstr(err.msg, needle))
        fprintf(stderr, "  header %s: expected %d '%s', got %d: %s\n", header, code, needle, s,
                err.msg);
}

#define T2(a, b)                                                                                   \
    "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" a "]},"                           \
    "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" b "]}}"

TEST(lying_headers) {
    struct ti_err err = {0};
    CHECK_OK(open_raw(T2("0,8", "8,16"), 0, 16, &err), &err);
    CHECK_OK(open_raw("{}", 0, 0, &err), &err);
    CHECK_OK(
        open_raw(
            "{\"__metadata__\":{},\"s\":{\"shape\":[],\"data_offsets\":[0,8],\"dtype\":\"I64\"}}  ",
            0, 8, &err),
        &err);
    expect_raw("{}", 100000001, 0, TI_ERR_FORMAT, "exceeds the limit");
    expect_raw("{}", 4096, 0, TI_ERR_FORMAT, "runs past the end");
    expect_raw(T2("0,8", "12,20"), 0, 20, TI_ERR_FORMAT, "leave a gap");
    expect_raw(T2("0,8", "4,12"), 0, 12, TI_ERR_FORMAT, "overlap");
    expect_raw(T2("0,8", "8,12"), 0, 12, TI_ERR_FORMAT, "data_offsets [8, 12]");
    expect_raw(T2("0,8", "8,16"), 0, 24, TI_ERR_FORMAT, "padded or damaged");
    expect_raw(T2("0,8", "8,16"), 0, 12, TI_ERR_FORMAT, "truncated");
    expect_raw(T2("8,0", "8,16"), 0, 16, TI_ERR_FORMAT, "data_offsets [8, 0]");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               0, 16, TI_ERR_FORMAT, "appears twice");
    expect_raw("{\"x\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 0, 2,
               TI_ERR_UNSUPPORTED, "F8_E4M3");
    expect_raw("{\"x\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 0, 2,
               TI_ERR_UNSUPPORTED, "U16");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 0, 8,
               TI_ERR_FORMAT, "fraction");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8,
               TI_ERR_FORMAT, "non-negative integer");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 0, 8,
               TI_ERR_FORMAT, "leading zero");
    expect_raw(
        "{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 0, 8,
        TI_ERR_FORMAT, "too large");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":"
               "[0,8]}}",
               0, 8, TI_ERR_FORMAT, "impossible shape");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4,
               TI_ERR_UNSUPPORTED, "more than 6 dimensions");
    expect_raw("{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 8, TI_ERR_FORMAT,
               "lacks 'dtype'");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               0, 8, TI_ERR_FORMAT, "duplicate 'dtype'");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", 0, 8,
               TI_ERR_FORMAT, "trailing bytes");
    expect_raw("{\"x\\q\":{}}", 0, 0, TI_ERR_FORMAT, "invalid string");
    expect_raw("{\"x\x01\":{}}", 0, 0, TI_ERR_FORMAT, "invalid string");
    expect_raw("{\"\xc3\x28\":{}}", 0, 0, TI_ERR_FORMAT, "invalid string");
    expect_raw("{\"\\ud800\":{}}", 0, 0, TI_ERR_FORMAT, "invalid string");
    expect_raw("{\"x\":{}}", 0, 0, TI_ERR_FORMAT, "empty entry");
    expect_raw("{\"__metadata__\":{\"a\":1}}", 0, 0, TI_ERR_FORMAT, "must be strings");
    expect_raw("{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, TI_ERR_FORMAT,
               "duplicate __metadata__");
    expect_raw("[1]", 0, 0, TI_ERR_FORMAT, "expected '{'");
    expect_raw("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"deep\":"
               "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}",
               0, 8, TI_ERR_FORMAT, "nested too deeply");
    /* unknown keys inside an entry are skipped, as the reference reader does */
    CHECK_OK(open_raw("{\"x\":{\"dtype\":\"F32\",\"extra\":{\"a\":[1,-2.5e3,true,null,\"s\"]},"
                      "\"shape\":[2],\"data_offsets\":[0,8]}}",
                      0, 8, &err),
             &err);
    /* escapes decode to the right name */
    struct ti_safetensors *st = NULL;
    const char *h =
        "{\"\\u00e9\\ud83d\\ude00\\n\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    uint8_t f[256];
    size_t hl = strlen(h);
    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(f + 8, h, hl);
    f[8 + hl] = 7;
    CHECK_OK(ti_safetensors_open_mem(&st, f, 8 + hl + 1, "esc", &err), &err);
    CHECK(st && ti_safetensors_find(st, "\xc3\xa9\xf0\x9f\x98\x80\n") != NULL);
    ti_safetensors_close(st);
}

TEST(unaligned_tensors_are_copied) {
    /* a 1-byte tensor first puts the F32 tensor at an odd address */
    const char *h = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    size_t hl = strlen(h);
    uint8_t *f = malloc(8 + hl + 9);
    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(f + 8, h, hl);
    float v[2] = {1.25f, -7.5f};
    f[8 + hl] = 3;
    memcpy(f + 8 + hl + 1, v, 8);
    struct ti_safetensors *st = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_safetensors_open_mem(&st, f, 8 + hl + 9, "odd", &err), &err);
    const struct ti_st_tensor *b = st ? ti_safetensors_find(st, "b") : NULL;
    CHECK(b && ((uintptr_t)b->t.data % 4) == 0 && !memcmp(b->t.data, v, 8));
    ti_safetensors_close(st);
    free(f);
}

TEST(every_truncation_is_an_error) {
    size_t n;
    uint8_t *d = tio_read(tio_fixture("kohya.safetensors"), &n);
    CHECK(d != NULL);
    int errors = 0;
    for (size_t k = 0; d && k < n; k++) {
        uint8_t *c = malloc(k ? k : 1);
        memcpy(c, d, k);
        struct ti_safetensors *st = NULL;
        struct ti_err err = {0};
        errors += ti_safetensors_open_mem(&st, c, k, "cut", &err) != TI_OK;
        ti_safetensors_close(st);
        free(c);
    }
    CHECK(errors == (int)n);
    free(d);
}

int main(void) {
    tmp = tio_tmpdir();
    RUN(round_trip_every_dtype);
    RUN(files_from_python);
    RUN(lying_headers);
    RUN(unaligned_tensors_are_copied);
    RUN(every_truncation_is_an_error);
    tio_rmrf(tmp);
    return tc_finish();
}
