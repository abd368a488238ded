/*
 * test_io_zip.c - the zip layer (model/io/zip.h): CRC-32, writer -> reader round trips (plain
 * and forced zip64), 64-byte alignment, truncated and corrupted archives (every prefix, every
 * flipped byte of the directory), duplicate and overlapping records, encryption and unknown
 * methods, DEFLATE records written by Python's zlib, and zip bombs (a stream that inflates past
 * its declared size, a declared size over the limit, an impossible ratio).
 */
#include "io_test_util.h"
#include "test_common.h"
#include "zip.h"

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)rd16(p) | ((uint32_t)rd16(p + 2) << 16);
}
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v) {
    wr16(p, (uint16_t)v);
    wr16(p + 2, (uint16_t)(v >> 16));
}

static const char *tmp;

/* The central directory's offset, from the zip64 end record when there is one. */
static size_t cd_offset(const uint8_t *z, size_t size) {
    uint32_t off = rd32(z + size - 22 + 16);
    if (off != 0xFFFFFFFFu) return off;
    const uint8_t *loc = z + size - 22 - 20;
    uint64_t e64 = rd32(loc + 8) | ((uint64_t)rd32(loc + 12) << 32);
    return rd32(z + e64 + 48);
}

/* Writes an archive of `n` records "a/rI" with (i * 37 + k) bytes; returns its bytes. */
static uint8_t *make_archive(int n, uint64_t threshold, size_t *size) {
    struct ti_err err = {0};
    struct ti_outfile f;
    const char *p = tio_path(tmp, "t.zip");
    CHECK_OK(ti_outfile_open(&f, p, &err), &err);
    struct ti_zip_writer w;
    ti_zip_writer_init(&w, &f);
    w.zip64_threshold = threshold;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i * 37 % 200) + (i == 1 ? 0 : 1);
        uint8_t *d = malloc(len + 1);
        for (size_t k = 0; k < len; k++)
            d[k] = (uint8_t)(k * 7 + (size_t)i);
        char name[32];
        snprintf(name, sizeof name, "a/r%d", i);
        CHECK_OK(ti_zip_writer_add(&w, name, d, len, &err), &err);
        free(d);
    }
    CHECK_OK(ti_zip_writer_finish(&w, &err), &err);
    ti_zip_writer_free(&w);
    CHECK_OK(ti_outfile_commit(&f, &err), &err);
    return tio_read(p, size);
}

TEST(crc32_known_values) {
    CHECK(ti_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(ti_crc32(0, "", 0) == 0);
    CHECK(ti_crc32(0, "The quick brown fox jumps over the lazy dog", 43) == 0x414FA339u);
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = (uint8_t)(i * 13);
    uint32_t whole = ti_crc32(0, buf, 1000);
    uint32_t part = ti_crc32(ti_crc32(ti_crc32(0, buf, 3), buf + 3, 500), buf + 503, 497);
    CHECK(whole == part);
}

static void check_round_trip(uint64_t threshold) {
    size_t size;
    uint8_t *z = make_archive(12, threshold, &size);
    CHECK(z != NULL);
    if (!z) return;
    struct ti_zip zip;
    struct ti_err err = {0};
    CHECK_OK(ti_zip_open(&zip, z, size, "test.zip", &err), &err);
    CHECK(zip.n == 12);
    CHECK(zip.zip64 == (threshold == 0));
    for (int i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "a/r%d", i);
        const struct ti_zip_record *r = ti_zip_find(&zip, name);
        CHECK(r != NULL);
        if (!r) continue;
        size_t len = (size_t)(i * 37 % 200) + (i == 1 ? 0 : 1);
        CHECK(r->size == len);
        CHECK(r->data_offset % 64 == 0);
        CHECK(r->method == 0);
        CHECK_OK(ti_zip_check_crc(&zip, r, &err), &err);
        const uint8_t *d;
        void *owned;
        CHECK_OK(ti_zip_read(&zip, r, &d, &owned, &err), &err);
        CHECK(owned == NULL); /* stored records are used in place */
        int same = 1;
        for (size_t k = 0; k < len; k++)
            same &= d[k] == (uint8_t)(k * 7 + (size_t)i);
        CHECK(same);
    }
    CHECK(ti_zip_find(&zip, "a/missing") == NULL);
    ti_zip_close(&zip);
    free(z);
}

TEST(writer_reader_round_trip) {
    check_round_trip(0xFFFFFFFFu);
}
TEST(writer_reader_round_trip_zip64) {
    check_round_trip(0);
}

TEST(every_truncation_is_an_error) {
    size_t size;
    uint8_t *z = make_archive(4, 0xFFFFFFFFu, &size);
    int errors = 0, oks = 0;
    for (size_t n = 0; n < size; n++) {
        uint8_t *c = malloc(n ? n : 1); /* exact-size copy: ASan catches any overread */
        memcpy(c, z, n);
        struct ti_zip zip;
        struct ti_err err = {0};
        if (ti_zip_open(&zip, c, n, "test.zip", &err) == TI_OK)
            oks++;
        else {
            errors++;
            CHECK(err.msg[0] != '\0');
        }
        ti_zip_close(&zip);
        free(c);
    }
    CHECK(oks == 0);
    CHECK(errors == (int)size);
    free(z);
}

TEST(every_flipped_directory_byte_is_safe) {
    size_t size;
    uint8_t *z = make_archive(5, 0, &size); /* zip64 records too */
    size_t cd_off = cd_offset(z, size);
    CHECK(cd_off < size);
    int errors = 0;
    for (size_t i = cd_off; i < size; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t *c = malloc(size);
            memcpy(c, z, size);
            c[i] = v == 0 ? (uint8_t)(c[i] ^ 0xFF) : v == 1 ? (uint8_t)(c[i] + 1) : 0xFF;
            struct ti_zip zip;
            struct ti_err err = {0};
            if (ti_zip_open(&zip, c, size, "test.zip", &err) == TI_OK) {
                for (size_t r = 0; r < zip.n; r++) { /* whatever opened must read safely */
                    const uint8_t *d;
                    void *owned;
                    if (ti_zip_read(&zip, &zip.recs[r], &d, &owned, &err) == TI_OK) free(owned);
                }
            } else {
                errors++;
            }
            ti_zip_close(&zip);
            free(c);
        }
    }
    CHECK(errors > 0);
    free(z);
}

/* Offsets of the n-th central directory entry. */
static uint8_t *cd_entry(uint8_t *z, size_t size, int n) {
    uint8_t *p = z + cd_offset(z, size);
    for (int i = 0; i < n; i++)
        p += 46 + rd16(p + 28) + rd16(p + 30) + rd16(p + 32);
    return p;
}

static void expect_error(uint8_t *z, size_t size, ti_status code, const char *needle) {
    struct ti_zip zip;
    struct ti_err err = {0};
    ti_status st = ti_zip_open(&zip, z, size, "test.zip", &err);
    CHECK(st == code);
    CHECK(strstr(err.msg, needle) != NULL);
    if (!strstr(err.msg, needle)) fprintf(stderr, "  message was: %s\n", err.msg);
    ti_zip_close(&zip);
}

TEST(malformed_directories) {
    size_t size;
    uint8_t *z = make_archive(3, 0xFFFFFFFFu, &size), *c = malloc(size);
    /* duplicate names: rename a/r1 -> a/r0 in the directory */
    memcpy(c, z, size);
    cd_entry(c, size, 1)[46 + 3] = '0';
    expect_error(c, size, TI_ERR_FORMAT, "appears twice");
    /* overlapping records */
    memcpy(c, z, size);
    wr32(cd_entry(c, size, 1) + 42, rd32(cd_entry(c, size, 0) + 42));
    expect_error(c, size, TI_ERR_FORMAT, "overlap");
    /* encrypted */
    memcpy(c, z, size);
    wr16(cd_entry(c, size, 2) + 8, 0x0801);
    expect_error(c, size, TI_ERR_UNSUPPORTED, "encrypted");
    /* unknown method */
    memcpy(c, z, size);
    wr16(cd_entry(c, size, 0) + 10, 12);
    expect_error(c, size, TI_ERR_UNSUPPORTED, "method 12");
    /* stored sizes that disagree */
    memcpy(c, z, size);
    wr32(cd_entry(c, size, 0) + 20, rd32(cd_entry(c, size, 0) + 20) + 1);
    expect_error(c, size, TI_ERR_FORMAT, "stored record");
    /* a record whose data runs past the data area */
    memcpy(c, z, size);
    wr32(cd_entry(c, size, 2) + 20, 100000);
    wr32(cd_entry(c, size, 2) + 24, 100000);
    expect_error(c, size, TI_ERR_FORMAT, "runs past");
    /* local-header offset past the end of the file */
    memcpy(c, z, size);
    wr32(cd_entry(c, size, 1) + 42, 0x7FFFFFF0u);
    expect_error(c, size, TI_ERR_FORMAT, "local header");
    /* central directory outside the file */
    memcpy(c, z, size);
    wr32(c + size - 22 + 16, (uint32_t)size);
    expect_error(c, size, TI_ERR_FORMAT, "central directory");
    /* more entries than the directory can hold */
    memcpy(c, z, size);
    wr16(c + size - 22 + 8, 60000);
    wr16(c + size - 22 + 10, 60000);
    expect_error(c, size, TI_ERR_FORMAT, "cannot fit");
    /* saturated fields without a zip64 extra */
    memcpy(c, z, size);
    wr32(cd_entry(c, size, 0) + 42, 0xFFFFFFFFu);
    expect_error(c, size, TI_ERR_FORMAT, "zip64 extra");
    /* no end record at all */
    memcpy(c, z, size);
    memset(c + size - 22, 0, 4);
    expect_error(c, size, TI_ERR_FORMAT, "end-of-central-directory");
    /* trailing bytes after the archive are accepted (torch accepts them too) */
    uint8_t *t = malloc(size + 100);
    memcpy(t, z, size);
    memset(t + size, 'x', 100);
    struct ti_zip zip;
    struct ti_err err = {0};
    CHECK_OK(ti_zip_open(&zip, t, size + 100, "test.zip", &err), &err);
    ti_zip_close(&zip);
    free(t);
    free(c);
    free(z);
}

TEST(writer_refuses_duplicate_names) {
    struct ti_err err = {0};
    struct ti_outfile f;
    CHECK_OK(ti_outfile_open(&f, tio_path(tmp, "dup.zip"), &err), &err);
    struct ti_zip_writer w;
    ti_zip_writer_init(&w, &f);
    CHECK_OK(ti_zip_writer_add(&w, "a/x", "1", 1, &err), &err);
    CHECK(ti_zip_writer_add(&w, "a/x", "2", 1, &err) == TI_ERR_INVALID);
    ti_zip_writer_free(&w);
    ti_outfile_abort(&f);
    CHECK(!tio_exists(tio_path(tmp, "dup.zip")));
}

TEST(deflated_records_from_python) {
    size_t n1, n2;
    uint8_t *a = tio_read(tio_fixture("a1111_f32.pt"), &n1);
    uint8_t *b = tio_read(tio_fixture("a1111_deflate.pt"), &n2);
    CHECK(a && b);
    if (!a || !b) return;
    struct ti_zip za, zb;
    struct ti_err err = {0};
    CHECK_OK(ti_zip_open(&za, a, n1, "test.zip", &err), &err);
    CHECK_OK(ti_zip_open(&zb, b, n2, "test.zip", &err), &err);
    int deflated = 0;
    for (size_t i = 0; i < za.n; i++) {
        const struct ti_zip_record *ra = &za.recs[i], *rb = ti_zip_find(&zb, ra->name);
        CHECK(rb != NULL);
        if (!rb) continue;
        deflated += rb->method == 8;
        const uint8_t *da, *db;
        void *oa, *ob;
        CHECK_OK(ti_zip_read(&za, ra, &da, &oa, &err), &err);
        CHECK_OK(ti_zip_read(&zb, rb, &db, &ob, &err), &err);
        CHECK(ra->size == rb->size && !memcmp(da, db, (size_t)ra->size));
        free(oa);
        free(ob);
    }
    CHECK(deflated >= 2);
    ti_zip_close(&za);
    ti_zip_close(&zb);
    free(a);
    free(b);
}

/* A DEFLATE stream (fixed Huffman): one literal 0, then `reps` copies of length 258 at
 * distance 1, end of block: 1 + 258 * reps bytes from ~13 bits per copy. */
struct bitw {
    uint8_t *p;
    size_t n, cap;
    uint32_t buf;
    int cnt;
};
static void putbits(struct bitw *w, uint32_t v, int n) {
    for (int i = 0; i < n; i++) {
        w->buf |= ((v >> i) & 1u) << w->cnt;
        if (++w->cnt == 8) {
            w->p[w->n++] = (uint8_t)w->buf;
            w->buf = 0;
            w->cnt = 0;
        }
    }
}
static void puthuff(struct bitw *w, uint32_t code, int n) { /* Huffman codes go MSB first */
    for (int i = n - 1; i >= 0; i--)
        putbits(w, (code >> i) & 1u, 1);
}
static uint8_t *bomb_stream(size_t reps, size_t *n) {
    struct bitw w = {malloc(reps * 2 + 64), 0, reps * 2 + 64, 0, 0};
    putbits(&w, 1, 1);        /* final */
    putbits(&w, 1, 2);        /* fixed Huffman */
    puthuff(&w, 0x30 + 0, 8); /* literal 0 */
    for (size_t i = 0; i < reps; i++) {
        puthuff(&w, 0xC5, 8); /* length symbol 285 (258): codes 280-287 are 11000000 + (s-280) */
        puthuff(&w, 0, 5);    /* distance code 0 (1) */
    }
    puthuff(&w, 0, 7); /* end of block: 256 is 0000000 */
    if (w.cnt) w.p[w.n++] = (uint8_t)w.buf;
    *n = w.n;
    return w.p;
}

/* An archive with one deflated record holding `stream`, declaring `usize`. */
static uint8_t *deflate_archive(const uint8_t *stream, size_t slen, uint32_t usize, size_t *size) {
    struct ti_err err = {0};
    struct ti_outfile f;
    const char *p = tio_path(tmp, "bomb.zip");
    CHECK_OK(ti_outfile_open(&f, p, &err), &err);
    struct ti_zip_writer w;
    ti_zip_writer_init(&w, &f);
    CHECK_OK(ti_zip_writer_add(&w, "archive/data.pkl", stream, slen, &err), &err);
    CHECK_OK(ti_zip_writer_finish(&w, &err), &err);
    ti_zip_writer_free(&w);
    CHECK_OK(ti_outfile_commit(&f, &err), &err);
    uint8_t *z = tio_read(p, size);
    uint8_t *cd = cd_entry(z, *size, 0);
    wr16(cd + 10, 8);     /* method: deflate */
    wr32(cd + 16, 0);     /* CRC not computed */
    wr32(cd + 24, usize); /* declared uncompressed size */
    return z;
}

TEST(zip_bombs_are_refused) {
    size_t slen, size;
    struct ti_err err = {0};
    /* the stream really inflates to 1 + 258 * 400000 = ~103 MB but declares 1 MB */
    uint8_t *s = bomb_stream(400000, &slen);
    uint8_t *z = deflate_archive(s, slen, 1u << 20, &size);
    struct ti_zip zip;
    CHECK_OK(ti_zip_open(&zip, z, size, "test.zip", &err), &err);
    const uint8_t *d;
    void *owned = NULL;
    CHECK(ti_zip_read(&zip, &zip.recs[0], &d, &owned, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "past its declared size") != NULL);
    CHECK(owned == NULL);
    ti_zip_close(&zip);
    free(z);
    /* declared 300 MB: refused before anything is allocated */
    ti_err_clear(&err);
    z = deflate_archive(s, slen, 300u << 20, &size);
    CHECK_OK(ti_zip_open(&zip, z, size, "test.zip", &err), &err);
    CHECK(ti_zip_read(&zip, &zip.recs[0], &d, &owned, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "inflates records of at most") != NULL);
    ti_zip_close(&zip);
    free(z);
    free(s);
    /* declared 200 MB from 40 bytes: no DEFLATE stream can do that */
    ti_err_clear(&err);
    s = bomb_stream(20, &slen);
    z = deflate_archive(s, slen, 200u << 20, &size);
    CHECK_OK(ti_zip_open(&zip, z, size, "test.zip", &err), &err);
    CHECK(ti_zip_read(&zip, &zip.recs[0], &d, &owned, &err) == TI_ERR_FORMAT);
    CHECK(strstr(err.msg, "zip bomb") != NULL);
    ti_zip_close(&zip);
    free(z);
    /* the honest declaration inflates, and to the right bytes */
    ti_err_clear(&err);
    z = deflate_archive(s, slen, 1 + 258 * 20, &size);
    CHECK_OK(ti_zip_open(&zip, z, size, "test.zip", &err), &err);
    CHECK_OK(ti_zip_read(&zip, &zip.recs[0], &d, &owned, &err), &err);
    int zeros = owned != NULL;
    for (size_t i = 0; owned && i < 1 + 258 * 20; i++)
        zeros &= d[i] == 0;
    CHECK(zeros);
    free(owned);
    ti_zip_close(&zip);
    free(z);
    free(s);
}

TEST(inflate_rejects_garbage) {
    uint8_t out[256], in[64];
    struct ti_err err = {0};
    /* a stored block: BFINAL=1 BTYPE=00, LEN=3, NLEN=~3 */
    const uint8_t stored[] = {0x01, 3, 0, 0xFC, 0xFF, 'a', 'b', 'c'};
    CHECK_OK(ti_inflate(out, 3, stored, sizeof stored, &err), &err);
    CHECK(!memcmp(out, "abc", 3));
    CHECK(ti_inflate(out, 2, stored, sizeof stored, &err) == TI_ERR_FORMAT); /* too long */
    ti_err_clear(&err);
    CHECK(ti_inflate(out, 4, stored, sizeof stored, &err) == TI_ERR_FORMAT); /* too short */
    ti_err_clear(&err);
    const uint8_t badlen[] = {0x01, 3, 0, 0, 0, 'a', 'b', 'c'};
    CHECK(ti_inflate(out, 3, badlen, sizeof badlen, &err) == TI_ERR_FORMAT);
    int errors = 0;
    for (int seed = 0; seed < 2000; seed++) { /* random bytes never crash */
        uint32_t x = (uint32_t)seed * 2654435761u + 1;
        for (size_t i = 0; i < sizeof in; i++)
            in[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
        ti_err_clear(&err);
        errors += ti_inflate(out, sizeof out, in, sizeof in, &err) != TI_OK;
    }
    CHECK(errors > 1900);
}

int main(void) {
    tmp = tio_tmpdir();
    RUN(crc32_known_values);
    RUN(writer_reader_round_trip);
    RUN(writer_reader_round_trip_zip64);
    RUN(every_truncation_is_an_error);
    RUN(every_flipped_directory_byte_is_safe);
    RUN(malformed_directories);
    RUN(writer_refuses_duplicate_names);
    RUN(deflated_records_from_python);
    RUN(zip_bombs_are_refused);
    RUN(inflate_rejects_garbage);
    tio_rmrf(tmp);
    return tc_finish();
}
