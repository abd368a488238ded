/*
 * clip_preprocess.c - the safety checker's image preparation (see clip_preprocess.h).
 */
#include "clip_preprocess.h"

/* OpenAI CLIP's normalisation, as the checker's preprocessor_config.json lists it */
static const double CLIP_MEAN[3] = {0.48145466, 0.4578275, 0.40821073};
static const double CLIP_STD[3] = {0.26862954, 0.26130258, 0.27577711};

int ti_clip_image_from_chw(struct ti_image *dst, const float *chw, int w, int h,
                           struct ti_data_err *e) {
    return ti_image_from_chw_round(dst, chw, w, h, 1, e);
}

int ti_clip_preprocess(const struct ti_image *img, int size, float *chw, struct ti_data_err *e) {
    if (size < 1) return ti_data_fail(e, "clip preprocess: size %d must be >= 1", size);
    /* shortest edge -> size, the other int(size * long / short) (Python float division) */
    int w, h;
    if (img->w <= img->h) {
        w = size;
        h = (int)((double)size * img->h / img->w);
    } else {
        h = size;
        w = (int)((double)size * img->w / img->h);
    }
    struct ti_image r = {0}, c = {0};
    if (ti_image_resize(&r, img, w, h, TI_RESAMPLE_BICUBIC, e)) return -1;
    int rc = ti_image_crop(&c, &r, (w - size) / 2, (h - size) / 2, size, size, e);
    ti_image_free(&r);
    if (rc) return -1;
    size_t plane = (size_t)size * size;
    for (int ch = 0; ch < 3; ch++) {
        float mean = (float)CLIP_MEAN[ch], std = (float)CLIP_STD[ch];
        for (size_t i = 0; i < plane; i++) {
            float x = (float)(c.px[i * 3 + ch] * (1.0 / 255.0)); /* rescale: double, to f32 */
            chw[ch * plane + i] = (x - mean) / std;              /* normalize: float32 */
        }
    }
    ti_image_free(&c);
    return 0;
}
