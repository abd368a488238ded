/*
 * clip_preprocess.h - the input side of the reference txt2img safety checker (sd-arch.md 8.5):
 *
 *   ti_clip_image_from_chw  txt2img's numpy_to_pil: the decoded float image clamp((x+1)/2, 0, 1)
 *                           -> round(255 v) (half to even) as uint8. Note: the saved sample
 *                           truncates instead (ti_image_from_chw); the checker sees the rounded
 *                           image.
 *   ti_clip_preprocess      CLIPFeatureExtractor as CompVis/stable-diffusion-safety-checker
 *                           configures it: shortest side -> size (PIL bicubic, long side
 *                           int(size * long / short)), center crop size x size (offsets
 *                           (dim - size) // 2), x * (1/255) in double stored as float, then
 *                           (x - mean) / std in float with CLIP's mean and std.
 *
 * Values follow transformers 4.40's CLIPImageProcessor (tests/fixtures/clip_preprocess.h5);
 * 4.19 (SD's pin) divides by 255 in float32, which can differ in the last bit.
 * Not here: the checker itself (model/safety_checker.h).
 */
#ifndef TI_CLIP_PREPROCESS_H
#define TI_CLIP_PREPROCESS_H

#include "image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* chw (3, h, w) floats in [-1, 1] (the VAE decoder's output) -> dst (allocated here). */
int ti_clip_image_from_chw(struct ti_image *dst, const float *chw, int w, int h,
                           struct ti_data_err *e);

/* img -> chw (3, size, size) floats (caller's buffer). size: 224 for the checker. Errors:
 * size < 1, out of memory. */
int ti_clip_preprocess(const struct ti_image *img, int size, float *chw, struct ti_data_err *e);

#ifdef __cplusplus
}
#endif

#endif /* TI_CLIP_PREPROCESS_H */
