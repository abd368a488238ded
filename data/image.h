/*
 * image.h - 8-bit RGB images: decode, EXIF orientation, resize, crop, flip, grids, PNG/JPEG
 * writers and the float CHW conversions the models use.
 *
 * What it is: the image side of the peer's PersonalizedBase (ti-peer.md §4.1) and of its image
 * loggers / sampling scripts, in C. What it is not: a general image library (8-bit RGB only,
 * no colour management, no animation, no 16-bit output).
 *
 * Entry points:
 *   ti_image_load        file -> upright RGB8 (JPEG, PNG, BMP, TGA, GIF first frame; WebP and
 *                        TIFF when built with libwebp / libtiff)
 *   ti_image_resize      exactly PIL 9's Image.resize (bilinear, bicubic, lanczos, nearest)
 *   ti_image_center_crop the peer's center crop (min side, integer-division offsets)
 *   ti_image_write_png   PNG with text chunks; ti_image_write_jpeg (both temp file + rename)
 *   ti_image_grid        torchvision.utils.make_grid's layout
 *   ti_image_to_chw / ti_image_from_chw   uint8 HWC <-> float CHW in [-1, 1]
 *
 * Ownership: an image's pixels are owned by the image (malloc); ti_image_free releases them and
 * zeroes the struct. Every function that fills a `dst` / `img` allocates it fresh: pass a
 * zeroed struct or one already freed (a dst holding pixels is NOT freed first: that would
 * leak, so free it yourself). On error dst is left zeroed. src and dst must be different.
 *
 * Errors: 0 or -1 with a message in *e (data_err.h).
 */
#ifndef TI_DATA_IMAGE_H
#define TI_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "data_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RGB8, interleaved, rows top to bottom, no padding: w*h*3 bytes. */
struct ti_image {
    int w, h;
    uint8_t *px;
};

/* Limits on what a decoder (and ti_image_alloc) will allocate: a header claiming more is refused
 * before any pixel memory is taken. 2^27 pixels is 384 MiB of RGB (a 134-megapixel photo). */
#define TI_IMAGE_MAX_PIXELS (1L << 27)
#define TI_IMAGE_MAX_SIDE   16384
/* Files larger than this are refused before they are read (an uncompressed BMP at the pixel
 * limit is 512 MiB). */
#define TI_IMAGE_MAX_FILE_BYTES (1L << 30)
/* Grids (ti_image_grid) are built here, not decoded: the reference's make_grid has no side
 * limit (--n_samples 32 at 512 px is a 16450-pixel row), so only their memory is bounded
 * (2^28 pixels, 768 MiB). */
#define TI_IMAGE_GRID_MAX_SIDE   (1L << 20)
#define TI_IMAGE_GRID_MAX_PIXELS (1L << 28)

/* PIL's resampling filters (Image.Resampling). The peer's "linear" and "bilinear" are both
 * BILINEAR; its default is BICUBIC. */
enum ti_resample {
    TI_RESAMPLE_BILINEAR,
    TI_RESAMPLE_BICUBIC,
    TI_RESAMPLE_LANCZOS,
    TI_RESAMPLE_NEAREST
};

/* "bilinear"/"linear", "bicubic", "lanczos", "nearest" -> *r; -1 (message naming `name` and the
 * accepted values) otherwise. */
int ti_resample_parse(enum ti_resample *r, const char *name, struct ti_data_err *e);
const char *ti_resample_name(enum ti_resample r);

/* Decodes `path` (JPEG, PNG, BMP, TGA, GIF: first frame; WebP, still or animated: first frame,
 * built with libwebp; TIFF, 8-bit RGB / RGBA / grey: first page, built with libtiff) into
 * upright RGB8:
 *  - EXIF orientation 1-8 (JPEG APP1 segment, PNG eXIf chunk, WebP EXIF chunk) is applied as
 *    PIL's ImageOps.exif_transpose does, so phone photos come out upright (the peer ignores it;
 *    ti-peer.md §8.1). Built without libexif it is not applied (ti_image_exif_supported() == 0).
 *    A TIFF's own orientation tag is applied by the TIFF decoder, as PIL 9.4 does on load.
 *  - alpha (RGBA, grey+alpha, GIF transparency, WebP alpha, TIFF extra-sample alpha) is
 *    composited on white: out = (c*a + 255*(255-a) + 127) / 255 (integer division); an animated
 *    WebP's canvas outside its first frame is transparent, so white.
 *  - grey and palette images are expanded to RGB; 16-bit PNGs are reduced to 8 bits.
 * Refuses, with a message naming the file and the reason: a missing file, a directory, an empty
 * file, a file over TI_IMAGE_MAX_FILE_BYTES, something that is not one of these formats, a
 * header claiming more than TI_IMAGE_MAX_SIDE per side or TI_IMAGE_MAX_PIXELS in all (checked
 * from the header alone, before allocating the pixels), a JPEG without its end-of-image marker
 * (truncated), a PNG with a chunk before its image data that fails its CRC or with image data
 * that is not a valid zlib stream (Adler-32 included), as PIL refuses them (needs zlib:
 * ti_image_png_checked()), a WebP that is truncated (shorter than its RIFF size) or damaged,
 * a TIFF of another kind (16-bit, 1-bit, palette, CMYK, YCbCr) or with damaged data, WebP /
 * TIFF in a build without their library (the message says so), and any decode error stb_image,
 * libwebp or libtiff reports. */
int ti_image_load(struct ti_image *img, const char *path, struct ti_data_err *e);
/* The same from memory; `name` is used in messages (the file name). */
int ti_image_load_memory(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                         struct ti_data_err *e);
/* 1 when this build applies EXIF orientation (built with libexif), else 0. */
int ti_image_exif_supported(void);
/* 1 when this build reads WebP (built with libwebp), else 0: without it a WebP file is refused
 * with a message naming the format and the missing library. */
int ti_image_webp_supported(void);
/* 1 when this build reads TIFF (built with libtiff >= 4.5), else 0 (refused likewise). */
int ti_image_tiff_supported(void);
/* The formats this build decodes, for messages: "JPEG, PNG, BMP, TGA, GIF[, WebP][, TIFF]". */
const char *ti_image_formats(void);
/* 1 when this build refuses damaged PNGs (CRC, zlib stream; built with zlib), else 0. */
int ti_image_png_checked(void);
/* The EXIF orientation (1-8) of an encoded JPEG/PNG/WebP in memory; 1 when there is none, it is
 * invalid, or the build has no libexif (or, for WebP, no libwebp); 1 for a TIFF, whose own tag
 * the TIFF decoder applies. Exposed for tests and tools. */
int ti_image_exif_orientation(const uint8_t *data, size_t n);
/* Applies EXIF orientation `o` (1-8) in place (reallocating when w and h swap): 2 mirror,
 * 3 rotate 180, 4 flip vertically, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
 * 8 rotate 90 counter-clockwise. Other values leave the image as it is. */
int ti_image_orient(struct ti_image *img, int o, struct ti_data_err *e);

/* Allocates w x h (uninitialised pixels); 1 <= w, h <= TI_IMAGE_MAX_SIDE and w*h <=
 * TI_IMAGE_MAX_PIXELS, else -1. */
int ti_image_alloc(struct ti_image *img, int w, int h, struct ti_data_err *e);
/* Frees the pixels and zeroes *img; NULL or an empty image is fine. */
void ti_image_free(struct ti_image *img);
/* dst = a copy of src. */
int ti_image_copy(struct ti_image *dst, const struct ti_image *src, struct ti_data_err *e);

/* dst = src resized to w x h exactly as PIL 9.4's Image.resize((w, h), resample=r) on an RGB
 * image: separable convolution (horizontal pass first, each pass rounded to 8 bits), filter
 * support scaled by the downscale factor, coefficients in PIL's 22-bit fixed point; NEAREST is
 * PIL's affine nearest-neighbour map. A resize to the same size is a copy, as in PIL. */
int ti_image_resize(struct ti_image *dst, const struct ti_image *src, int w, int h,
                    enum ti_resample r, struct ti_data_err *e);

/* dst = the w x h rectangle of src at (x, y); the rectangle must lie inside src. */
int ti_image_crop(struct ti_image *dst, const struct ti_image *src, int x, int y, int w, int h,
                  struct ti_data_err *e);
/* The peer's center crop: crop = min(h, w), rows (h-crop)/2 .. (h+crop)/2 and columns
 * (w-crop)/2 .. (w+crop)/2 (integer division), i.e. a crop x crop square. */
int ti_image_center_crop(struct ti_image *dst, const struct ti_image *src, struct ti_data_err *e);
/* Mirrors left-right in place (torchvision's hflip). */
void ti_image_hflip(struct ti_image *img);

/* Writes img as an 8-bit RGB PNG (zlib, adaptive row filters) with text chunks:
 * text = {key0, value0, key1, value1, ..., NULL} (NULL itself: none). Keys are 1-79 printable
 * Latin-1 characters without leading/trailing/double spaces (the PNG rule); values must not
 * contain NUL. An ASCII value goes into a tEXt chunk, any other (UTF-8) value into an
 * uncompressed iTXt chunk, as PIL's PngInfo.add_text does for text Latin-1 cannot hold.
 * The file is written to a temporary name in the same folder, flushed and renamed into place:
 * on error nothing is left behind. */
int ti_image_write_png(const struct ti_image *img, const char *path, const char *const *text,
                       struct ti_data_err *e);
/* Baseline JPEG (stb_image_write, 4:2:0 below quality 90), quality 1-100; temp file + rename.
 * PIL's default quality, which the peer's ImageLogger (.jpg grids) gets, is 75. */
int ti_image_write_jpeg(const struct ti_image *img, const char *path, int quality,
                        struct ti_data_err *e);
#define TI_JPEG_QUALITY_PIL_DEFAULT 75
/* By the path's extension (case-insensitive): .png -> ti_image_write_png with text, .jpg/.jpeg
 * -> ti_image_write_jpeg at quality 75 (text is not stored); anything else is an error. */
int ti_image_write(const struct ti_image *img, const char *path, const char *const *text,
                   struct ti_data_err *e);

/* torchvision.utils.make_grid's layout for n tiles of equal size: xmaps = min(nrow, n) columns,
 * ceil(n / xmaps) rows, each cell (tile + pad) and one more pad at the right and bottom, filled
 * with pad_value where no tile lies; tile k at row k / xmaps, column k % xmaps. As in
 * torchvision, a single tile (n == 1) is returned as it is, without padding. The peer's
 * ImageLogger builds its grids in [-1, 1] with pad value 0, which becomes 127 after its
 * (x + 1) / 2 * 255 truncation: grid the converted images with pad_value 127 to match it. */
int ti_image_grid(struct ti_image *dst, const struct ti_image *tiles, int n, int nrow, int pad,
                  uint8_t pad_value, struct ti_data_err *e);

/* The reference scripts' float -> image step: v = clamp((x + 1) / 2, 0, 1) * 255 in float32,
 * truncated to uint8 (NaN -> 0). chw: (3, h, w) floats. */
int ti_image_from_chw(struct ti_image *dst, const float *chw, int w, int h, struct ti_data_err *e);
/* The same, rounding half to even instead of truncating when round != 0 (txt2img's numpy_to_pil,
 * which ti_clip_image_from_chw uses). */
int ti_image_from_chw_round(struct ti_image *dst, const float *chw, int w, int h, int round,
                            struct ti_data_err *e);
/* The peer's image -> float step: px / 127.5 - 1 (computed in double, stored as float, as numpy
 * does); chw: (3, img->h, img->w) floats. */
void ti_image_to_chw(const struct ti_image *img, float *chw);
/* The same, mirrored left-right on the fly (the image is not modified). */
void ti_image_to_chw_flipped(const struct ti_image *img, int hflip, float *chw);

#ifdef __cplusplus
}
#endif

#endif /* TI_DATA_IMAGE_H */
