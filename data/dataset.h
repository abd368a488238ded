/*
 * dataset.h - the peer's PersonalizedBase (ldm/data/personalized.py and personalized_style.py,
 * ti-peer.md §4.1): a folder of images -> (image in [-1, 1], caption) training examples.
 *
 * What it does, in the peer's order: list data_root, decode each image to RGB, center crop
 * (optional), resize to size x size with PIL's filter, and per example choose a caption
 * template, format it with the placeholder (and a per-image token) and flip at random.
 *
 * Where it differs from the peer, and why (also in docs/DATA.md):
 *  - The listing is sorted by name (strcmp, byte order); the peer uses os.listdir's order, which
 *    is the filesystem's and differs between machines: sorting makes runs reproducible.
 *  - Directories and hidden entries (.DS_Store, .ipynb_checkpoints, any name starting with '.')
 *    are skipped, and a file that is not a usable image is skipped with a warning naming it and
 *    why (the peer crashes on the first one). Zero usable images is an error naming the folder.
 *  - EXIF orientation is applied (phone photos come out upright; the peer trains on them
 *    sideways, ti-peer.md §8.1) and alpha is composited on white (PIL's convert("RGB") drops
 *    alpha, showing whatever colour transparent pixels hold).
 *  - Each image is decoded and prepared once at open (the peer re-reads the file for every
 *    example): the result is the same, since preparation before the flip is deterministic.
 *  - Randomness comes from the caller as uniforms (u_mix, u_template, u_flip) so that training
 *    owns one seeded generator; the peer uses numpy, Python's random and torch's RNG.
 * JPEG pixels can differ from PIL's by a few levels (stb_image's IDCT and chroma upsampling are
 * not libjpeg-turbo's); PNG/BMP/TGA/GIF pixels and everything after decoding are exact.
 *
 * Ownership: ti_dataset_open allocates the dataset (paths and prepared images);
 * ti_dataset_close frees it (NULL is fine). A dataset is read-only after open:
 * ti_dataset_example may run concurrently from several threads.
 */
#ifndef TI_DATA_DATASET_H
#define TI_DATA_DATASET_H

#include <stddef.h>

#include "data_err.h"
#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ti_dataset_opts {
    const char *root;        /* data_root: a folder of images */
    int size;                /* resize to size x size; 0: keep each image's size (peer: None) */
    enum ti_resample interp; /* peer default: bicubic */
    int center_crop;         /* peer default: 0 (non-square images are squashed) */
    double flip_p;           /* peer default: 0.5 (also for validation, as in the peer) */
    int repeats;             /* peer default: 100 (training only) */
    int is_train;            /* set == "train": len = n_images * repeats, else n_images */
    const char *placeholder; /* placeholder_token; NULL: "*" */
    int per_image_tokens;    /* peer default: 0 */
    double mixing_prob;      /* peer default: 0.25 (the style dataset hard-codes 0.25) */
    const char *coarse_class_text; /* or NULL; non-empty: captions use "<coarse> <placeholder>" */
    int style;                     /* 1: personalized_style.py's templates */
    /* (ti) caption templates used instead of the object or style list (ti-train --templates;
     * the per-image-token "dual" templates stay the peer's); NULL: the peer's. Not copied: the
     * list must outlive the dataset. */
    const char *const *templates;
    int n_templates;
};

/* The peer's defaults: size 0, bicubic, no center crop, flip_p 0.5, repeats 100, train,
 * placeholder "*", no per-image tokens, mixing_prob 0.25, no coarse class, object templates;
 * root NULL (set it). */
void ti_dataset_opts_default(struct ti_dataset_opts *o);

/* Called once per skipped entry with a message naming it and why; may be NULL. */
typedef void (*ti_data_warn_fn)(void *user, const char *msg);
struct ti_dataset;

/* Lists root (sorted by name; directories and hidden files skipped), decodes and prepares every
 * image once (EXIF, RGB, center crop, resize: the prepared image BEFORE the random flip); a file
 * that is not a usable image is skipped with a warning naming it and why. Errors (-1, *ds NULL):
 * root missing or not a folder, no entries, zero usable images (naming the folder and the first
 * reason), per_image_tokens with 22 or more images (the peer's assertion message), bad options. */
int ti_dataset_open(struct ti_dataset **ds, const struct ti_dataset_opts *o, ti_data_warn_fn warn,
                    void *user, struct ti_data_err *e);
void ti_dataset_close(struct ti_dataset *ds);

/* A 64-bit hash of the decoded images (count, sizes, pixels) in folder order: another value
 * means other training images. */
uint64_t ti_dataset_fingerprint(const struct ti_dataset *ds);
size_t ti_dataset_len(const struct ti_dataset *ds); /* n_images * repeats (train) or n_images */
int ti_dataset_n_images(const struct ti_dataset *ds);
const char *ti_dataset_image_path(const struct ti_dataset *ds, int i); /* root/name */
const struct ti_image *ti_dataset_image(const struct ti_dataset *ds,
                                        int i); /* prepared, unflipped */

/* The caption of example i (image i % n): ph = placeholder, or "<coarse_class_text> <placeholder>"
 * when coarse_class_text is non-empty; with per_image_tokens and u_mix < mixing_prob a dual
 * template formatted with (ph, ti_per_image_tokens[i % n]), else a single template formatted
 * with ph; the template index is floor(u_template * count) (clamped to the list). u_mix is not
 * looked at without per_image_tokens (the peer draws no number then). */
int ti_dataset_caption(const struct ti_dataset *ds, size_t i, double u_mix, double u_template,
                       char *caption, size_t caption_cap, struct ti_data_err *e);

/* Example i (image i % n): randomness comes from the caller's generator as uniforms in [0,1):
 * u_mix (per-image-token coin), u_template (template choice = floor(u*count)), u_flip (flip when
 * u_flip < flip_p, torchvision's RandomHorizontalFlip). chw: (3, H, W) floats in [-1,1],
 * px / 127.5 - 1 (H = W = size, or the image's own size when size is 0); caption: NUL-terminated
 * UTF-8. Either output may be NULL. */
int ti_dataset_example(const struct ti_dataset *ds, size_t i, double u_mix, double u_template,
                       double u_flip, float *chw, char *caption, size_t caption_cap,
                       struct ti_data_err *e);

#ifdef __cplusplus
}
#endif

#endif /* TI_DATA_DATASET_H */
