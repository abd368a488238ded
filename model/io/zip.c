/* zip.c - zip/zip64 reader over mapped bytes, bounded DEFLATE, streaming writer (see zip.h). */
#include "zip.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, free, qsort_r */
#include <string.h> /* defines: memcpy, memcmp, strcmp, strlen */

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD    0x06054b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_LOC64   0x07064b50u

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) {
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* a + b <= limit without overflow */
static int fits(uint64_t a, uint64_t b, uint64_t limit) {
    return a <= limit && b <= limit - a;
}

/* ---- reader -------------------------------------------------------------------------------- */

static int cmp_by_name(const void *a, const void *b, void *ctx) {
    const struct ti_zip_record *r = ctx;
    return strcmp(r[*(const uint32_t *)a].name, r[*(const uint32_t *)b].name);
}
static int cmp_by_offset(const void *a, const void *b, void *ctx) {
    const struct ti_zip_record *r = ctx;
    uint64_t x = r[*(const uint32_t *)a].header_offset, y = r[*(const uint32_t *)b].header_offset;
    return x < y ? -1 : x > y;
}

/* Finds the end-of-central-directory record: the last signature in the final 65557 bytes
 * whose fixed part and comment fit in the file. */
static ti_status find_eocd(const struct ti_zip *z, const uint8_t *d, uint64_t size, uint64_t *pos,
                           struct ti_err *err) {
    if (size < 22)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': file of %llu bytes is too short to "
                        "be an archive (truncated?)",
                        z->name, (unsigned long long)size);
    uint64_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (uint64_t p = size - 22 + 1; p-- > lo;) {
        if (rd32(d + p) != SIG_EOCD) continue;
        uint16_t clen = rd16(d + p + 20);
        if (p + 22 + clen > size) continue;
        *pos = p;
        return TI_OK;
    }
    return ti_error(err, TI_ERR_FORMAT,
                    "zip '%s': no end-of-central-directory record (the file is "
                    "truncated or not a zip archive)",
                    z->name);
}

/* Reads the zip64 fields of a CD entry from its extra data, for each field that is saturated. */
static ti_status read_zip64_extra(const struct ti_zip *z, const uint8_t *ex, uint32_t exlen,
                                  uint64_t *usize, uint64_t *csize, uint64_t *off, const char *name,
                                  struct ti_err *err) {
    int need_u = *usize == 0xFFFFFFFFu, need_c = *csize == 0xFFFFFFFFu,
        need_o = *off == 0xFFFFFFFFu;
    if (!need_u && !need_c && !need_o) return TI_OK;
    uint32_t p = 0;
    while (p + 4 <= exlen) {
        uint16_t id = rd16(ex + p), len = rd16(ex + p + 2);
        if (p + 4u + len > exlen) break;
        if (id == 1) {
            const uint8_t *f = ex + p + 4;
            uint32_t q = 0;
            if (need_u) {
                if (q + 8 > len) goto short_field;
                *usize = rd64(f + q);
                q += 8;
            }
            if (need_c) {
                if (q + 8 > len) goto short_field;
                *csize = rd64(f + q);
                q += 8;
            }
            if (need_o) {
                if (q + 8 > len) goto short_field;
                *off = rd64(f + q);
            }
            return TI_OK;
        }
        p += 4u + len;
    }
    return ti_error(err, TI_ERR_FORMAT,
                    "zip '%s': record '%s' has 32-bit fields saturated at "
                    "0xFFFFFFFF but no zip64 extra field",
                    z->name, name);
short_field:
    return ti_error(err, TI_ERR_FORMAT,
                    "zip '%s': record '%s' has a zip64 extra field that is too "
                    "short for its saturated fields",
                    z->name, name);
}

ti_status ti_zip_open(struct ti_zip *z, const void *data, uint64_t size, const char *name,
                      struct ti_err *err) {
    ti_status st = TI_OK;
    memset(z, 0, sizeof *z);
    snprintf(z->name, sizeof z->name, "%s", name ? name : "<memory>");
    const uint8_t *d = data;
    z->data = d;
    z->size = size;
    uint64_t eocd = 0;
    TI_TRY(find_eocd(z, d, size, &eocd, err));
    uint64_t n_disk = rd16(d + eocd + 8), n_total = rd16(d + eocd + 10);
    uint64_t cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
    uint32_t disk = rd16(d + eocd + 4), cd_disk = rd16(d + eocd + 6);
    uint64_t cd_limit = eocd; /* the CD must end before the record that describes it */
    if (eocd >= 20 && rd32(d + eocd - 20) == SIG_LOC64) {
        uint64_t off64 = rd64(d + eocd - 20 + 8);
        if (!fits(off64, 56, eocd - 20) || rd32(d + off64) != SIG_EOCD64)
            return ti_error(err, TI_ERR_FORMAT,
                            "zip '%s': the zip64 end record offset %llu is not "
                            "valid (file of %llu bytes)",
                            z->name, (unsigned long long)off64, (unsigned long long)size);
        const uint8_t *r = d + off64;
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n_total = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        cd_limit = off64;
        z->zip64 = 1;
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return ti_error(err, TI_ERR_FORMAT, "zip '%s': multi-disk archives are not supported",
                        z->name);
    if (!fits(cd_off, cd_size, cd_limit))
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': central directory (offset %llu, %llu bytes) "
                        "lies outside the file (%llu bytes; truncated?)",
                        z->name, (unsigned long long)cd_off, (unsigned long long)cd_size,
                        (unsigned long long)size);
    if (n_total > cd_size / 46)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': %llu entries cannot fit in a central directory "
                        "of %llu bytes",
                        z->name, (unsigned long long)n_total, (unsigned long long)cd_size);
    if (n_total == 0)
        return ti_error(err, TI_ERR_FORMAT, "zip '%s': the archive is empty", z->name);

    z->n = (size_t)n_total;
    z->recs = calloc(z->n, sizeof *z->recs);
    z->by_name = calloc(z->n, sizeof *z->by_name);
    z->names = malloc((size_t)cd_size + 1); /* names are shorter than the CD holding them */
    if (!z->recs || !z->by_name || !z->names) {
        st = ti_error(err, TI_ERR_NOMEM, "zip '%s': out of memory for %zu entries", z->name, z->n);
        goto fail;
    }
    size_t pool = 0;
    uint64_t p = cd_off, cd_end = cd_off + cd_size;
    for (size_t i = 0; i < z->n; i++) {
        struct ti_zip_record *r = &z->recs[i];
        if (!fits(p, 46, cd_end) || rd32(d + p) != SIG_CENTRAL) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': central directory entry %zu of %zu is "
                          "damaged (bad signature or past the directory's end)",
                          z->name, i, z->n);
            goto fail;
        }
        const uint8_t *c = d + p;
        r->flags = rd16(c + 8);
        r->method = rd16(c + 10);
        r->crc = rd32(c + 16);
        r->csize = rd32(c + 20);
        r->size = rd32(c + 24);
        uint32_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        r->header_offset = rd32(c + 42);
        if (!fits(p + 46, (uint64_t)nlen + xlen + clen, cd_end)) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': central directory entry %zu runs past the "
                          "directory's end",
                          z->name, i);
            goto fail;
        }
        if (nlen == 0 || nlen > TI_ZIP_MAX_NAME || memchr(c + 46, 0, nlen)) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': central directory entry %zu has an invalid "
                          "name (empty, too long or with a NUL byte)",
                          z->name, i);
            goto fail;
        }
        memcpy(z->names + pool, c + 46, nlen);
        z->names[pool + nlen] = '\0';
        r->name = z->names + pool;
        pool += nlen + 1;
        TI_TRY_GOTO(st, read_zip64_extra(z, c + 46 + nlen, xlen, &r->size, &r->csize,
                                         &r->header_offset, r->name, err));
        if (r->flags & 0x41) {
            st = ti_error(err, TI_ERR_UNSUPPORTED, "zip '%s': record '%s' is encrypted", z->name,
                          r->name);
            goto fail;
        }
        if (r->method != 0 && r->method != 8) {
            st = ti_error(err, TI_ERR_UNSUPPORTED,
                          "zip '%s': record '%s' uses compression method %u; "
                          "ti reads stored (0) and deflated (8) records",
                          z->name, r->name, r->method);
            goto fail;
        }
        if (r->method == 0 && r->csize != r->size) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': stored record '%s' declares %llu compressed "
                          "but %llu uncompressed bytes",
                          z->name, r->name, (unsigned long long)r->csize,
                          (unsigned long long)r->size);
            goto fail;
        }
        z->by_name[i] = (uint32_t)i;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
    /* The local headers are spread over the whole file (one before each storage of a 4 GB
     * checkpoint): ask for all their pages at once, so a cold open costs one batch of parallel
     * reads instead of a thousand sequential seeks. */
    for (size_t i = 0; i < z->n; i++)
        if (fits(z->recs[i].header_offset, 30, size)) ti_prefetch(d + z->recs[i].header_offset, 30);
    for (size_t i = 0; i < z->n; i++) {
        struct ti_zip_record *r = &z->recs[i];
        /* local header: signature, then the data right after its name and extra field */
        uint64_t lh = r->header_offset;
        if (!fits(lh, 30, size) || rd32(d + lh) != SIG_LOCAL) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': record '%s': local header at offset %llu is "
                          "missing or damaged (file of %llu bytes)",
                          z->name, r->name, (unsigned long long)lh, (unsigned long long)size);
            goto fail;
        }
        r->data_offset = lh + 30 + rd16(d + lh + 26) + rd16(d + lh + 28);
        if (!fits(r->data_offset, r->csize, cd_off)) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "zip '%s': record '%s' (%llu bytes at offset %llu) "
                          "runs past the data area, which ends at %llu (truncated file or bad "
                          "offset)",
                          z->name, r->name, (unsigned long long)r->csize,
                          (unsigned long long)r->data_offset, (unsigned long long)cd_off);
            goto fail;
        }
    }
    /* no two records may share bytes (overlapping records are how non-recursive bombs work) */
    qsort_r(z->by_name, z->n, sizeof *z->by_name, cmp_by_offset, z->recs);
    for (size_t i = 1; i < z->n; i++) {
        const struct ti_zip_record *a = &z->recs[z->by_name[i - 1]], *b = &z->recs[z->by_name[i]];
        if (a->data_offset + a->csize > b->header_offset) {
            st = ti_error(err, TI_ERR_FORMAT, "zip '%s': records '%s' and '%s' overlap", z->name,
                          a->name, b->name);
            goto fail;
        }
    }
    qsort_r(z->by_name, z->n, sizeof *z->by_name, cmp_by_name, z->recs);
    for (size_t i = 1; i < z->n; i++)
        if (!strcmp(z->recs[z->by_name[i - 1]].name, z->recs[z->by_name[i]].name)) {
            st = ti_error(err, TI_ERR_FORMAT, "zip '%s': the name '%s' appears twice", z->name,
                          z->recs[z->by_name[i]].name);
            goto fail;
        }
    return TI_OK;
fail:
    ti_zip_close(z);
    return st;
}

void ti_zip_close(struct ti_zip *z) {
    if (!z) return;
    free(z->recs);
    free(z->by_name);
    free(z->names);
    memset(z, 0, sizeof *z);
}

const struct ti_zip_record *ti_zip_find(const struct ti_zip *z, const char *name) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->recs[z->by_name[mid]].name, name);
        if (c == 0) return &z->recs[z->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

ti_status ti_zip_check_crc(const struct ti_zip *z, const struct ti_zip_record *r,
                           struct ti_err *err) {
    if (r->crc == 0 || r->method != 0) return TI_OK;
    uint32_t c = ti_crc32(0, z->data + r->data_offset, (size_t)r->size);
    if (c != r->crc)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': record '%s' fails its CRC-32 check (stored "
                        "%08x, computed %08x): the file is damaged",
                        z->name, r->name, r->crc, c);
    return TI_OK;
}

ti_status ti_zip_read(struct ti_zip *z, const struct ti_zip_record *r, const uint8_t **out,
                      void **owned, struct ti_err *err) {
    *out = NULL;
    *owned = NULL;
    if (r->method == 0) {
        *out = z->data + r->data_offset;
        return TI_OK;
    }
    /* deflated: refuse bombs before allocating anything */
    if (r->size > TI_ZIP_INFLATE_MAX)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': compressed record '%s' would inflate to %llu "
                        "bytes; ti inflates records of at most %llu bytes (torch.save stores "
                        "records uncompressed)",
                        z->name, r->name, (unsigned long long)r->size,
                        (unsigned long long)TI_ZIP_INFLATE_MAX);
    if (r->size > 1024 && r->size / TI_ZIP_MAX_RATIO > r->csize)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': compressed record '%s' claims %llu bytes from "
                        "%llu, a ratio DEFLATE cannot reach: a zip bomb",
                        z->name, r->name, (unsigned long long)r->size,
                        (unsigned long long)r->csize);
    if (z->inflated + r->size > TI_ZIP_INFLATE_TOTAL)
        return ti_error(err, TI_ERR_FORMAT,
                        "zip '%s': the archive inflates to more than %llu bytes "
                        "in all: a zip bomb",
                        z->name, (unsigned long long)TI_ZIP_INFLATE_TOTAL);
    uint8_t *buf = malloc(r->size ? (size_t)r->size : 1);
    if (!buf)
        return ti_error(err, TI_ERR_NOMEM, "zip '%s': out of memory inflating '%s'", z->name,
                        r->name);
    ti_status st =
        ti_inflate(buf, (size_t)r->size, z->data + r->data_offset, (size_t)r->csize, err);
    if (st != TI_OK) {
        free(buf);
        return ti_error(err, st, "in record '%s' of '%s'", r->name, z->name);
    }
    z->inflated += r->size;
    if (r->crc != 0) {
        uint32_t c = ti_crc32(0, buf, (size_t)r->size);
        if (c != r->crc) {
            free(buf);
            return ti_error(err, TI_ERR_FORMAT,
                            "zip '%s': record '%s' fails its CRC-32 check "
                            "(stored %08x, computed %08x)",
                            z->name, r->name, r->crc, c);
        }
    }
    *out = buf;
    *owned = buf;
    return TI_OK;
}

/* ---- DEFLATE (RFC 1951), canonical-Huffman decoder with every length checked --------------- */

struct bits {
    const uint8_t *in;
    size_t n, pos;
    uint64_t buf;
    int cnt;
    int eof; /* ran out of input */
};

static uint32_t getbits(struct bits *s, int need) {
    uint64_t v = s->buf;
    while (s->cnt < need) {
        if (s->pos == s->n) {
            s->eof = 1;
            return 0;
        }
        v |= (uint64_t)s->in[s->pos++] << s->cnt;
        s->cnt += 8;
    }
    s->buf = v >> need;
    s->cnt -= need;
    return (uint32_t)(v & ((1ull << need) - 1));
}

struct huff {
    short count[16];
    short symbol[288];
};

/* Builds a decoder from code lengths; returns 0 complete, > 0 incomplete, < 0 over-subscribed. */
static int huff_build(struct huff *h, const short *length, int n) {
    short offs[16];
    for (int len = 0; len < 16; len++)
        h->count[len] = 0;
    for (int sym = 0; sym < n; sym++)
        h->count[length[sym]]++;
    if (h->count[0] == n) return 0;
    int left = 1;
    for (int len = 1; len < 16; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0) return left;
    }
    offs[1] = 0;
    for (int len = 1; len < 15; len++)
        offs[len + 1] = (short)(offs[len] + h->count[len]);
    for (int sym = 0; sym < n; sym++)
        if (length[sym]) h->symbol[offs[length[sym]]++] = (short)sym;
    return left;
}

static int huff_decode(struct bits *s, const struct huff *h) {
    int code = 0, first = 0, index = 0;
    for (int len = 1; len < 16; len++) {
        code |= (int)getbits(s, 1);
        if (s->eof) return -1;
        int count = h->count[len];
        if (code - count < first) return h->symbol[index + (code - first)];
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return -2; /* no such code */
}

static const short lbase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                               2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short dbase[30] = {1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
                                33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short dext[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                               6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

struct inflate_out {
    uint8_t *p;
    size_t n, cap;
};

static ti_status inflate_codes(struct bits *s, struct inflate_out *o, const struct huff *lc,
                               const struct huff *dc, struct ti_err *err) {
    for (;;) {
        int sym = huff_decode(s, lc);
        if (sym < 0) goto bad;
        if (sym < 256) {
            if (o->n == o->cap) goto overflow;
            o->p[o->n++] = (uint8_t)sym;
        } else if (sym == 256) {
            return TI_OK;
        } else {
            sym -= 257;
            if (sym >= 29) goto bad;
            size_t len = (size_t)lbase[sym] + getbits(s, lext[sym]);
            int ds = huff_decode(s, dc);
            if (ds < 0 || ds >= 30 || s->eof) goto bad;
            size_t dist = (size_t)dbase[ds] + getbits(s, dext[ds]);
            if (s->eof) goto bad;
            if (dist > o->n)
                return ti_error(err, TI_ERR_FORMAT,
                                "inflate: distance %zu reaches before the "
                                "start of the output",
                                dist);
            if (len > o->cap - o->n) goto overflow;
            for (size_t i = 0; i < len; i++, o->n++)
                o->p[o->n] = o->p[o->n - dist];
        }
    }
bad:
    return ti_error(err, TI_ERR_FORMAT, "inflate: invalid or truncated compressed data");
overflow:
    return ti_error(err, TI_ERR_FORMAT,
                    "inflate: the data inflates past its declared size of "
                    "%zu bytes (a zip bomb or a damaged record)",
                    o->cap);
}

ti_status ti_inflate(uint8_t *out, size_t out_size, const uint8_t *in, size_t in_size,
                     struct ti_err *err) {
    struct bits s = {in, in_size, 0, 0, 0, 0};
    struct inflate_out o = {out, 0, out_size};
    struct huff lc, dc;
    short lengths[320];
    int last;
    do {
        last = (int)getbits(&s, 1);
        int type = (int)getbits(&s, 2);
        if (s.eof) goto truncated;
        if (type == 0) {
            s.buf = 0;
            s.cnt = 0; /* stored blocks start on a byte boundary */
            if (s.n - s.pos < 4) goto truncated;
            unsigned len = rd16(s.in + s.pos), nlen = rd16(s.in + s.pos + 2);
            s.pos += 4;
            if (len != (~nlen & 0xffffu))
                return ti_error(err, TI_ERR_FORMAT, "inflate: stored block length check fails");
            if (s.n - s.pos < len) goto truncated;
            if (len > o.cap - o.n) goto overflow;
            memcpy(o.p + o.n, s.in + s.pos, len);
            o.n += len;
            s.pos += len;
        } else if (type == 1) {
            int i = 0;
            for (; i < 144; i++)
                lengths[i] = 8;
            for (; i < 256; i++)
                lengths[i] = 9;
            for (; i < 280; i++)
                lengths[i] = 7;
            for (; i < 288; i++)
                lengths[i] = 8;
            huff_build(&lc, lengths, 288);
            for (i = 0; i < 30; i++)
                lengths[i] = 5;
            huff_build(&dc, lengths, 30);
            TI_TRY(inflate_codes(&s, &o, &lc, &dc, err));
        } else if (type == 2) {
            static const short order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                            11, 4,  12, 3, 13, 2, 14, 1, 15};
            int nlen = (int)getbits(&s, 5) + 257, ndist = (int)getbits(&s, 5) + 1;
            int ncode = (int)getbits(&s, 4) + 4;
            if (s.eof) goto truncated;
            if (nlen > 286 || ndist > 30)
                return ti_error(err, TI_ERR_FORMAT, "inflate: bad dynamic block header");
            int i = 0;
            for (; i < ncode; i++)
                lengths[order[i]] = (short)getbits(&s, 3);
            for (; i < 19; i++)
                lengths[order[i]] = 0;
            if (s.eof) goto truncated;
            if (huff_build(&lc, lengths, 19) != 0)
                return ti_error(err, TI_ERR_FORMAT, "inflate: incomplete code-length code");
            int idx = 0;
            while (idx < nlen + ndist) {
                int sym = huff_decode(&s, &lc);
                if (sym < 0) goto bad;
                if (sym < 16) {
                    lengths[idx++] = (short)sym;
                    continue;
                }
                short len = 0;
                int rep;
                if (sym == 16) {
                    if (idx == 0) goto bad;
                    len = lengths[idx - 1];
                    rep = 3 + (int)getbits(&s, 2);
                } else if (sym == 17) {
                    rep = 3 + (int)getbits(&s, 3);
                } else {
                    rep = 11 + (int)getbits(&s, 7);
                }
                if (s.eof) goto truncated;
                if (idx + rep > nlen + ndist) goto bad;
                while (rep--)
                    lengths[idx++] = len;
            }
            if (lengths[256] == 0) goto bad; /* no end-of-block code */
            int e = huff_build(&lc, lengths, nlen);
            if (e < 0 || (e > 0 && nlen - lc.count[0] != 1)) goto bad;
            e = huff_build(&dc, lengths + nlen, ndist);
            if (e < 0 || (e > 0 && ndist - dc.count[0] != 1)) goto bad;
            TI_TRY(inflate_codes(&s, &o, &lc, &dc, err));
        } else {
            goto bad;
        }
    } while (!last);
    if (o.n != out_size)
        return ti_error(err, TI_ERR_FORMAT,
                        "inflate: the data inflates to %zu bytes, %zu were "
                        "declared",
                        o.n, out_size);
    return TI_OK;
bad:
    return ti_error(err, TI_ERR_FORMAT, "inflate: invalid compressed data");
truncated:
    return ti_error(err, TI_ERR_FORMAT, "inflate: the compressed data is truncated");
overflow:
    return ti_error(err, TI_ERR_FORMAT,
                    "inflate: the data inflates past its declared size of "
                    "%zu bytes (a zip bomb or a damaged record)",
                    out_size);
}

/* ---- writer -------------------------------------------------------------------------------- */

static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void wr32(uint8_t *p, uint32_t v) {
    wr16(p, (uint16_t)v);
    wr16(p + 2, (uint16_t)(v >> 16));
}
static void wr64(uint8_t *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

void ti_zip_writer_init(struct ti_zip_writer *w, struct ti_outfile *f) {
    memset(w, 0, sizeof *w);
    w->f = f;
    w->zip64_threshold = 0xFFFFFFFFu;
    w->align = 64;
}

void ti_zip_writer_free(struct ti_zip_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++)
        free(w->names[i]);
    free(w->names);
    free(w->recs);
    w->names = NULL;
    w->recs = NULL;
    w->n = w->cap = 0;
}

ti_status ti_zip_writer_add(struct ti_zip_writer *w, const char *name, const void *data, uint64_t n,
                            struct ti_err *err) {
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > TI_ZIP_MAX_NAME)
        return ti_error(err, TI_ERR_INVALID, "zip writer: invalid record name '%s'", name);
    for (size_t i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name))
            return ti_error(err, TI_ERR_INVALID, "zip writer: record '%s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 8;
        struct ti_zip_record *r = realloc(w->recs, cap * sizeof *r);
        if (!r) return ti_error(err, TI_ERR_NOMEM, "zip writer: out of memory");
        w->recs = r;
        char **nm = realloc(w->names, cap * sizeof *nm);
        if (!nm) return ti_error(err, TI_ERR_NOMEM, "zip writer: out of memory");
        w->names = nm;
        w->cap = cap;
    }
    char *copy = malloc(nlen + 1);
    if (!copy) return ti_error(err, TI_ERR_NOMEM, "zip writer: out of memory");
    memcpy(copy, name, nlen + 1);

    struct ti_zip_record r = {0};
    r.name = copy;
    r.header_offset = w->f->offset;
    r.size = r.csize = n;
    r.crc = ti_crc32(0, data, (size_t)n);
    int z64 = n >= w->zip64_threshold;
    uint64_t start = r.header_offset + 30 + nlen + (z64 ? 20 : 0) + 4;
    uint64_t pad = (w->align - start % w->align) % w->align;
    uint16_t xlen = (uint16_t)((z64 ? 20 : 0) + 4 + pad);
    uint8_t h[30 + 20 + 4];
    wr32(h, SIG_LOCAL);
    wr16(h + 4, z64 ? 45 : 20);
    wr16(h + 6, 0x0800); /* UTF-8 name; sizes and CRC are in this header (no data descriptor) */
    wr16(h + 8, 0);
    wr32(h + 10, 0); /* time, date */
    wr32(h + 14, r.crc);
    wr32(h + 18, z64 ? 0xFFFFFFFFu : (uint32_t)n);
    wr32(h + 22, z64 ? 0xFFFFFFFFu : (uint32_t)n);
    wr16(h + 26, (uint16_t)nlen);
    wr16(h + 28, xlen);
    ti_status st = ti_outfile_write(w->f, h, 30, err);
    if (st == TI_OK) st = ti_outfile_write(w->f, name, nlen, err);
    if (st == TI_OK && z64) {
        uint8_t x[20];
        wr16(x, 1);
        wr16(x + 2, 16);
        wr64(x + 4, n);
        wr64(x + 12, n);
        st = ti_outfile_write(w->f, x, 20, err);
    }
    if (st == TI_OK) {
        /* torch's alignment field: 'F' 'B' <u16 pad> then pad bytes of 'Z' */
        uint8_t x[4 + 64];
        x[0] = 'F';
        x[1] = 'B';
        wr16(x + 2, (uint16_t)pad);
        memset(x + 4, 'Z', (size_t)pad);
        st = ti_outfile_write(w->f, x, 4 + (size_t)pad, err);
    }
    r.data_offset = w->f->offset;
    if (st == TI_OK) st = ti_outfile_write(w->f, data, (size_t)n, err);
    if (st != TI_OK) {
        free(copy);
        return st;
    }
    w->names[w->n] = copy;
    w->recs[w->n++] = r;
    return TI_OK;
}

ti_status ti_zip_writer_finish(struct ti_zip_writer *w, struct ti_err *err) {
    uint64_t thr = w->zip64_threshold;
    uint64_t cd_off = w->f->offset;
    int any64 = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct ti_zip_record *r = &w->recs[i];
        size_t nlen = strlen(r->name);
        int zs = r->size >= thr, zo = r->header_offset >= thr;
        uint16_t xlen = (uint16_t)((zs || zo) ? 4 + 8 * (2 * zs + zo) : 0);
        any64 |= zs || zo;
        uint8_t h[46], x[28];
        wr32(h, SIG_CENTRAL);
        wr16(h + 4, (uint16_t)(0x0300 | ((zs || zo) ? 45 : 20))); /* made by: unix */
        wr16(h + 6, (zs || zo) ? 45 : 20);
        wr16(h + 8, 0x0800);
        wr16(h + 10, 0);
        wr32(h + 12, 0);
        wr32(h + 16, r->crc);
        wr32(h + 20, zs ? 0xFFFFFFFFu : (uint32_t)r->csize);
        wr32(h + 24, zs ? 0xFFFFFFFFu : (uint32_t)r->size);
        wr16(h + 28, (uint16_t)nlen);
        wr16(h + 30, xlen);
        wr16(h + 32, 0);
        wr16(h + 34, 0);
        wr16(h + 36, 0);
        wr32(h + 38, 0100644u << 16); /* unix mode rw-r--r-- */
        wr32(h + 42, zo ? 0xFFFFFFFFu : (uint32_t)r->header_offset);
        size_t q = 4;
        if (xlen) {
            wr16(x, 1);
            wr16(x + 2, (uint16_t)(xlen - 4));
            if (zs) {
                wr64(x + q, r->size);
                wr64(x + q + 8, r->csize);
                q += 16;
            }
            if (zo) wr64(x + q, r->header_offset);
        }
        TI_TRY(ti_outfile_write(w->f, h, 46, err));
        TI_TRY(ti_outfile_write(w->f, r->name, nlen, err));
        if (xlen) TI_TRY(ti_outfile_write(w->f, x, xlen, err));
    }
    uint64_t cd_size = w->f->offset - cd_off;
    int z64 = any64 || w->n >= 0xFFFF || cd_off >= thr || cd_size >= thr;
    if (z64) {
        uint64_t e64 = w->f->offset;
        uint8_t e[56 + 20];
        wr32(e, SIG_EOCD64);
        wr64(e + 4, 44);
        wr16(e + 12, 0x032D);
        wr16(e + 14, 45);
        wr32(e + 16, 0);
        wr32(e + 20, 0);
        wr64(e + 24, w->n);
        wr64(e + 32, w->n);
        wr64(e + 40, cd_size);
        wr64(e + 48, cd_off);
        wr32(e + 56, SIG_LOC64);
        wr32(e + 60, 0);
        wr64(e + 64, e64);
        wr32(e + 72, 1);
        TI_TRY(ti_outfile_write(w->f, e, sizeof e, err));
    }
    uint8_t e[22];
    wr32(e, SIG_EOCD);
    wr16(e + 4, 0);
    wr16(e + 6, 0);
    uint16_t cnt = (z64 && w->n >= 0xFFFF) ? 0xFFFF : (uint16_t)w->n;
    wr16(e + 8, cnt);
    wr16(e + 10, cnt);
    wr32(e + 12, cd_size >= thr ? 0xFFFFFFFFu : (uint32_t)cd_size);
    wr32(e + 16, cd_off >= thr ? 0xFFFFFFFFu : (uint32_t)cd_off);
    wr16(e + 20, 0);
    return ti_outfile_write(w->f, e, sizeof e, err);
}
