/*
 * zip.h - zip / zip64 archives: a reader over bytes already in memory (a mapped file) and a
 * streaming writer. This is the container of every torch.save file since torch 1.6.
 *
 * Reader. `ti_zip_open` walks the central directory of `data[0..size)` (usually a ti_fmap) and
 * checks every size and offset against `size` with 64-bit arithmetic: EOCD found by a bounded
 * backward scan (at most 65557 bytes), the zip64 EOCD through its locator, zip64 extra fields
 * for the CD fields that hold 0xFFFFFFFF, each local header's signature, each record's data
 * inside the file, no two records overlapping (that also defeats "overlapping" zip bombs), no
 * duplicate names, no encrypted entries. Records are used in place: a stored record is a
 * pointer into `data` (no copy of a 4 GB checkpoint). Methods: 0 (stored) and 8 (DEFLATE) for
 * small records only: a record is inflated only if its declared size is at most
 * TI_ZIP_INFLATE_MAX, its compression ratio is possible for DEFLATE (at most 1032:1), the
 * stream stops exactly at the declared size, and the archive inflates at most
 * TI_ZIP_INFLATE_TOTAL bytes in all; anything else is refused as a zip bomb.
 * CRC-32: a CRC of 0 means "not computed" (torch >= 2.6 with compute_crc32=False writes 0).
 * Inflated records are always checked; stored ones when the caller asks (ti_zip_check_crc),
 * because checking means reading every byte of a multi-GB checkpoint.
 *
 * Writer. Streams records into a ti_outfile: stored, correct CRC-32, real sizes in the local
 * header (no data descriptors), every record's data 64-byte aligned with torch's "FB" padding
 * extra field, zip64 fields and records only where a size or offset needs them. This is the
 * layout pt-format.md §1.3 recommends (torch 1.6..2.x, weights_only, Python zipfile, A1111).
 *
 * Not here: what the records mean (torchfile.h), files on disk (fileio.h).
 */
#ifndef TI_ZIP_H
#define TI_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TI_ZIP_INFLATE_MAX   (256ull << 20) /* largest compressed record ti inflates */
#define TI_ZIP_INFLATE_TOTAL (1ull << 30)   /* total bytes one archive may inflate */
#define TI_ZIP_MAX_RATIO     1032ull        /* DEFLATE cannot compress better than this */
#define TI_ZIP_MAX_NAME      4096           /* longest record name accepted */

struct ti_zip_record {
    const char *name;       /* NUL-terminated copy of the CD name */
    uint64_t header_offset; /* local header */
    uint64_t data_offset;   /* first byte of the (compressed) data */
    uint64_t csize;         /* compressed size (== size when stored) */
    uint64_t size;          /* uncompressed size */
    uint32_t crc;           /* from the central directory; 0 = not computed */
    uint16_t method;        /* 0 stored, 8 deflate */
    uint16_t flags;
};

struct ti_zip {
    char name[256];      /* the file, for messages */
    const uint8_t *data; /* the archive bytes (borrowed) */
    uint64_t size;
    struct ti_zip_record *recs; /* in central-directory order */
    size_t n;
    uint32_t *by_name; /* record indices sorted by name */
    char *names;       /* name pool */
    int zip64;         /* a zip64 EOCD was present */
    uint64_t inflated; /* bytes inflated so far (bounded by TI_ZIP_INFLATE_TOTAL) */
};

/* Parses the archive in data[0..size); `name` (the file) is used in messages. `data` must
 * outlive the ti_zip. On error *z is left closed (safe to ti_zip_close). */
ti_status ti_zip_open(struct ti_zip *z, const void *data, uint64_t size, const char *name,
                      struct ti_err *err);
void ti_zip_close(struct ti_zip *z);
/* Exact name lookup; NULL if absent. */
const struct ti_zip_record *ti_zip_find(const struct ti_zip *z, const char *name);
/* The record's uncompressed bytes. Stored: *out points into the archive and *owned is NULL.
 * Deflated: *out == *owned is a malloc'd buffer the caller frees (CRC checked when non-zero). */
ti_status ti_zip_read(struct ti_zip *z, const struct ti_zip_record *r, const uint8_t **out,
                      void **owned, struct ti_err *err);
/* Checks a stored record's CRC-32 (reads every byte). CRC 0 passes ("not computed"). */
ti_status ti_zip_check_crc(const struct ti_zip *z, const struct ti_zip_record *r,
                           struct ti_err *err);

/* Inflates a raw DEFLATE stream into out[0..out_size), requiring it to produce exactly
 * out_size bytes (used by ti_zip_read; exposed for the tests and the fuzzer). */
ti_status ti_inflate(uint8_t *out, size_t out_size, const uint8_t *in, size_t in_size,
                     struct ti_err *err);

/* ---- writer -------------------------------------------------------------------------------- */
struct ti_zip_writer {
    struct ti_outfile *f;       /* destination (owned by the caller) */
    struct ti_zip_record *recs; /* written so far */
    size_t n, cap;
    char **names;
    uint64_t zip64_threshold; /* 0xFFFFFFFF; tests lower it to exercise the zip64 paths */
    unsigned align;           /* data alignment (64) */
};

void ti_zip_writer_init(struct ti_zip_writer *w, struct ti_outfile *f);
/* Adds one stored record. `name` must be unique (checked). */
ti_status ti_zip_writer_add(struct ti_zip_writer *w, const char *name, const void *data, uint64_t n,
                            struct ti_err *err);
/* Writes the central directory and end records. Does not commit the outfile. */
ti_status ti_zip_writer_finish(struct ti_zip_writer *w, struct ti_err *err);
/* Frees the writer's bookkeeping (always call, also after an error). */
void ti_zip_writer_free(struct ti_zip_writer *w);

#ifdef __cplusplus
}
#endif
#endif /* TI_ZIP_H */
