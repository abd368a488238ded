/*
 * watermark.h - the invisible watermark of the reference txt2img script (CompVis
 * scripts/txt2img.py put_watermark: imwatermark WatermarkEncoder('bytes', "StableDiffusionV1"),
 * method 'dwtDct'), and its decoder (WatermarkDecoder('bytes', 136).decode(..., 'dwtDct')).
 *
 * Bit-exact with the reference on RGB8 buffers: OpenCV's 8-bit fixed-point BGR<->YUV
 * conversions, a one-level Haar DWT of the U plane in PyWavelets' float order, the bit written
 * into the largest-magnitude coefficient (top-left excluded) of every 4x4 block of the LL band
 * with step 36, the reference's inverse DWT with its horizontal and vertical detail bands
 * swapped, numpy's truncating float->uint8 store (sd-arch.md section 8.6). Despite the method's
 * name there is no DCT. Y and V are not marked. The mark is fragile: it does not survive JPEG,
 * resizing or cropping, and is often unreadable on saturated or noisy images (docs/WATERMARK.md).
 *
 * Not here: PNG I/O (data/image.h), the safety checker.
 * Entry points: ti_watermark_encode (in place), ti_watermark_decode, ti_watermark_fits.
 */
#ifndef TI_WATERMARK_H
#define TI_WATERMARK_H

#include <stdint.h>

#include "data_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The payload of the reference txt2img script (17 bytes, no terminator) and the PNG tEXt
 * key under which ti-sample records what it wrote ("StableDiffusionV1" or "none"). */
#define TI_WATERMARK_SD_TEXT "StableDiffusionV1"
#define TI_WATERMARK_SD_LEN  17
#define TI_WATERMARK_PNG_KEY "watermark"

/* Smallest image the reference accepts: w*h >= 256*256 (it raises below that, for encoding and
 * decoding alike). Returns 1 when (w, h) can be marked and read, else 0. */
int ti_watermark_fits(int w, int h);

/* Marks rgb (w x h RGB8, interleaved, rows top to bottom) in place with the nbytes bytes of
 * `bytes`, MSB first, repeated over the image's 8x8-pixel blocks, exactly as txt2img does
 * (its RGB->BGR swap is a pure channel order change and is folded in). Every pixel may change
 * by the YUV round trip; pixels of rows/columns beyond the last multiple of 4 change only by
 * it. Errors (-1, nothing written): w*h < 65536, nbytes < 1, out of memory. */
int ti_watermark_encode(uint8_t *rgb, int w, int h, const uint8_t *bytes, int nbytes,
                        struct ti_data_err *e);

/* Reads an nbytes-byte mark from rgb (w x h RGB8) as the reference decoder does: per block the
 * bit is 1 when the largest coefficient's magnitude mod 36 exceeds 18; each payload bit is the
 * majority (mean * 255 > 127) over its repetitions; bits are packed MSB first. An unmarked image
 * gives arbitrary bytes, not an error: compare with the payload you expect. A bit with no block
 * (nbytes * 8 > number of blocks) reads as 0, as in the reference. Errors (-1): w*h < 65536,
 * nbytes < 1, out of memory. */
int ti_watermark_decode(const uint8_t *rgb, int w, int h, uint8_t *bytes, int nbytes,
                        struct ti_data_err *e);

#ifdef __cplusplus
}
#endif

#endif
