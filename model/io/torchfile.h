/*
 * torchfile.h - files written by torch.save (.ckpt, .pt, .pth, .bin): reading them into an
 * inert object tree whose tensors are CPU views into the mapped file, and writing them.
 *
 * Reading. Two containers are recognised by their first bytes (never by extension):
 *   - zip (torch >= 1.6): `<folder>/data.pkl` (exactly one such record; the folder is any
 *     name), storages in `<folder>/data/<key>`; `byteorder` "big" is refused, `constants.pkl`
 *     (a TorchScript archive) is refused, and so is an archive whose `version` record (or
 *     `.data/version`) is missing, unparsable or outside TI_TORCH_VERSION_MIN..MAX, as
 *     torch.load refuses them. The zip layer bounds everything (zip.h).
 *   - legacy (torch < 1.6, `_use_new_zipfile_serialization=False`): the magic-number pickle,
 *     the protocol (1001), sys_info (little-endian only), the object, the storage-key list,
 *     then each storage as an int64 element count + raw bytes, in key-list order.
 * The object pickle runs in the safe VM (pickle.h), so a hostile file is refused before any
 * storage is touched. Each storage is bound to its record (shared by all tensors naming it);
 * a record shorter than the pickle declares is an error. Tensors point into the mapping
 * (torch aligns records to 64 bytes) unless a record is compressed or not aligned to its
 * element size: those storages are copied into aligned memory the torchfile owns. Tensor
 * views are read-only and valid until ti_torchfile_close.
 * CRC-32: data.pkl is always checked (small); storages only with TI_TORCH_VERIFY_CRC,
 * because that reads every byte of a multi-GB checkpoint.
 *
 * Writing. ti_torch_writer builds data.pkl with the pickle writer (the caller emits the
 * structure; ti_torch_writer_tensor emits one tensor: `_rebuild_tensor_v2` over a fresh
 * storage holding a contiguous copy) and saves a zip laid out as pt-format.md §1.3
 * recommends: `<stem>/data.pkl`, `<stem>/data/0..`, `<stem>/version` = "3\n", 64-byte
 * aligned, stored, real CRC-32, through a temporary file renamed into place.
 *
 * Not here: what the tree means (ckpt.h for model state dicts, train/embedding_io.h for
 * embeddings).
 */
#ifndef TI_TORCHFILE_H
#define TI_TORCHFILE_H

#include <stddef.h>
#include <stdint.h>

#include "fileio.h"
#include "pickle.h"
#include "status.h"
#include "tensor.h"
#include "zip.h"

#ifdef __cplusplus
extern "C" {
#endif

enum ti_torch_container { TI_TORCH_NONE = 0, TI_TORCH_ZIP = 1, TI_TORCH_LEGACY = 2 };

/* flags for ti_torchfile_open: check every storage's CRC-32; keep globals outside the
 * allowlist inert instead of refusing the file (pickle.h; the deny list still refuses) */
enum { TI_TORCH_VERIFY_CRC = 1, TI_TORCH_ALLOW_UNKNOWN_GLOBALS = 2 };

/* The archive format versions torch.load reads (torch 1.13: kMin/MaxSupportedFileFormatVersion) */
#define TI_TORCH_VERSION_MIN 1
#define TI_TORCH_VERSION_MAX 10

struct ti_torchfile {
    char *name; /* path or caller's name, for messages */
    enum ti_torch_container container;
    struct ti_fmap map;  /* owned mapping (open by path) */
    const uint8_t *data; /* the file's bytes */
    uint64_t size;
    struct ti_zip zip;    /* zip container */
    char *prefix;         /* the zip's folder ("archive", "sd-v1-4", ...) */
    struct ti_pickle *pk; /* the VM and its nodes */
    struct ti_py *root;   /* the unpickled object */
    void **owned;         /* inflated or realigned storages */
    size_t n_owned, cap_owned;
};

/* What the bytes look like: zip, legacy torch, or neither. */
enum ti_torch_container ti_torchfile_sniff(const void *data, uint64_t size);

ti_status ti_torchfile_open(struct ti_torchfile **out, const char *path, unsigned flags,
                            struct ti_err *err);
/* Same over bytes the caller keeps alive (tests, fuzzing); `name` is used in messages. */
ti_status ti_torchfile_open_mem(struct ti_torchfile **out, const void *data, uint64_t size,
                                const char *name, unsigned flags, struct ti_err *err);
void ti_torchfile_close(struct ti_torchfile *tf);

/* ---- writer -------------------------------------------------------------------------------- */
struct ti_torch_writer_storage {
    void *data; /* owned contiguous copy */
    uint64_t nbytes;
};

struct ti_torch_writer {
    struct ti_pkw pk; /* the caller writes the pickle structure here */
    struct ti_torch_writer_storage *st;
    size_t n_st, cap_st;
    uint64_t zip64_threshold; /* passed to the zip writer (tests lower it) */
};

void ti_torch_writer_init(struct ti_torch_writer *w);
void ti_torch_writer_free(struct ti_torch_writer *w);
/* Emits `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, requires_grad,
 * OrderedDict())` for a contiguous copy of t (any layout in, C order out; CPU memory). */
ti_status ti_torch_writer_tensor(struct ti_torch_writer *w, const struct ti_tensor *t,
                                 int requires_grad, struct ti_err *err);
/* The same wrapped in `torch._utils._rebuild_parameter(tensor, requires_grad, OrderedDict())`. */
ti_status ti_torch_writer_parameter(struct ti_torch_writer *w, const struct ti_tensor *t,
                                    int requires_grad, struct ti_err *err);
/* Appends STOP and writes the archive to `path` atomically (the archive folder is the file's
 * stem, as torch.save(obj, path) does). */
ti_status ti_torch_writer_save(struct ti_torch_writer *w, const char *path, struct ti_err *err);

/* Copies any (strided) CPU tensor into dst in C order; dst holds numel * elsize bytes. A tensor
 * without data copies nothing. */
void ti_tensor_gather(void *dst, const struct ti_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* TI_TORCHFILE_H */
