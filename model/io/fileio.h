/*
 * fileio.h - the file plumbing every container reader and writer shares: a read-only memory
 * mapping of an input file, an output file that appears atomically, and CRC-32.
 *
 *   struct ti_fmap m;                        // read side: the whole file, mapped, never copied
 *   TI_TRY(ti_fmap_open(&m, "sd-v1-4.ckpt", err));
 *   ... m.data[0 .. m.size) ...              // read-only; valid until ti_fmap_close
 *   ti_fmap_close(&m);
 *
 *   struct ti_outfile f;                     // write side: "<dir>/.<name>.tmp-XXXXXX" first,
 *   TI_TRY(ti_outfile_open(&f, path, err));  // then fsync + rename onto `path` in commit, so a
 *   ti_outfile_write(&f, buf, n, err);       // reader never sees a partial file and a failed
 *   ti_outfile_commit(&f, err);              // write leaves nothing behind (abort unlinks).
 *
 * A mapped file that another process truncates while ti reads it raises SIGBUS, as with any
 * mmap reader; ti never writes the files it maps (outputs go to new files renamed into place).
 *
 * Not here: what the bytes mean (zip.h, safetensors.h, torchfile.h).
 */
#ifndef TI_FILEIO_H
#define TI_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- read side: a mapped file -------------------------------------------------------------- */
struct ti_fmap {
    const uint8_t *data; /* first byte of the file (NULL for an empty file) */
    uint64_t size;       /* file size in bytes */
    void *base;          /* mmap base (NULL when data is borrowed or the file is empty) */
};

/* Maps `path` read-only (MAP_PRIVATE). Refuses directories and non-regular files with a clear
 * message. The mapping stays valid until ti_fmap_close. */
ti_status ti_fmap_open(struct ti_fmap *m, const char *path, struct ti_err *err);
/* Unmaps; safe on a zeroed or already closed map. */
void ti_fmap_close(struct ti_fmap *m);
/* Asks the kernel to start reading the pages of [p, p+n) into the page cache now
 * (madvise(MADV_WILLNEED) on the pages that hold them; asynchronous). p must lie in a
 * ti_fmap mapping or ordinary memory; a hint only, errors are ignored. */
void ti_prefetch(const void *p, uint64_t n);

/* ---- write side: an output file that appears whole or not at all -------------------------- */
struct ti_outfile {
    int fd;           /* -1 when closed */
    char *path;       /* final name */
    char *tmp;        /* temporary name in the same folder */
    uint8_t *buf;     /* write buffer */
    size_t used;      /* bytes in buf */
    uint64_t offset;  /* bytes written so far (the current file offset) */
    ti_status failed; /* first write error, sticky: commit refuses after a failed write */
};

ti_status ti_outfile_open(struct ti_outfile *f, const char *path, struct ti_err *err);
ti_status ti_outfile_write(struct ti_outfile *f, const void *p, size_t n, struct ti_err *err);
/* Writes `n` zero bytes. */
ti_status ti_outfile_pad(struct ti_outfile *f, size_t n, struct ti_err *err);
/* Flushes, fsyncs, renames the temporary file onto the final path, fsyncs the folder. On
 * failure the temporary file is removed. Either way the outfile is closed afterwards. */
ti_status ti_outfile_commit(struct ti_outfile *f, struct ti_err *err);
/* Closes and removes the temporary file (nothing appears at the final path). Safe to call
 * after commit or on a closed outfile. */
void ti_outfile_abort(struct ti_outfile *f);

/* Writes a whole buffer to `path` atomically (open + write + commit). */
ti_status ti_file_write_atomic(const char *path, const void *data, size_t n, struct ti_err *err);

/* A malloc'd copy of s (free() it); NULL when s is NULL or memory runs out. */
char *ti_strdup(const char *s);

/* Looks for the readable file `rel` under each of `dirs` (paths relative to the folder of the
 * running executable, e.g. "vocab" or "../share/ti") in turn; writes the first hit into out and
 * returns 1, else 0. Lets the tools find their data files from any working folder. */
int ti_find_beside_tool(const char *rel, const char *const *dirs, size_t n_dirs, char *out,
                        size_t cap);

/* ---- small helpers ------------------------------------------------------------------------- */
/* CRC-32 (IEEE 802.3, the zip polynomial). Start with crc = 0; feed chunks in order. */
uint32_t ti_crc32(uint32_t crc, const void *data, size_t n);

/* "learned_embeds" from "/a/b/learned_embeds.bin": the base name without its last extension,
 * into buf (truncated to n-1 bytes). Returns buf. */
const char *ti_path_stem(const char *path, char *buf, size_t n);
/* 1 if path names an existing directory. */
int ti_path_is_dir(const char *path);
/* 1 if path names an existing regular file. */
int ti_path_is_file(const char *path);
/* 1 if path ends in suffix (".safetensors"), byte for byte. */
int ti_path_has_suffix(const char *path, const char *suffix);
/* 1 if anything (a link too, even a dangling one) exists at path. */
int ti_path_exists(const char *path);
/* Removes the directory `path` and everything under it (links are removed, not followed).
 * 0 when it is gone, -1 (errno set) when something could not be removed. */
int ti_remove_tree(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* TI_FILEIO_H */
