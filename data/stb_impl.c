/*
 * stb_impl.c - the one translation unit that compiles stb_image (decoders: JPEG, PNG, BMP, TGA,
 * GIF) and stb_image_write (JPEG, and deflate when zlib is missing) from the system's headers
 * (Debian libstb-dev). Compiled without warnings (third-party code). Our only change to stb:
 * its JPEG chroma upsamplers are replaced by libjpeg's (below).
 */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO /* we read files ourselves (size limits, error messages) */
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_ONLY_GIF
/* STBI_MAX_DIMENSIONS stays at its default (2^24): image.c refuses sizes over TI_IMAGE_MAX_SIDE
 * from stbi_info first, with a message that names the claimed size */

/* Chroma upsampling as libjpeg's "fancy" upsampler (libjpeg-turbo, what PIL decodes with), in
 * place of stb_image's own:
 * - 4:2:2 (h2v1, what most DSLRs write): stb (v2.27, and upstream still) weights the left output
 *   sample of the LAST chroma column 3:1 towards its neighbour instead of towards itself, so the
 *   second-to-last pixel column (the last one for odd widths) of every 4:2:2 JPEG had the wrong
 *   colour, over 100 levels off at a chroma edge.
 * - 4:2:0 (h2v2): stb rounds both output samples +8; libjpeg rounds the left one +8 and the
 *   right one +7 (a level of chroma; the mean distance to PIL drops by two thirds).
 * Each output sample is 3/4 of the nearer chroma sample + 1/4 of the other neighbour (for h2v2
 * first vertically, 3/4 near row + 1/4 far row), edges replicated; like libjpeg, rows of one or
 * two chroma samples (images up to 4 pixels wide) are replicated instead, nothing blended. The
 * functions take stb's
 * names; the function-like macros below rename stb's own definitions (the name followed by '(')
 * and leave its uses (`r->resample = stbi__resample_row_h_2;`, the kernel pointer set in
 * stbi__setup_jpeg; no '(') pointing here. tests/test_data_image.c jpeg_close_to_pil checks the
 * result against PIL. */
static unsigned char *box_row(unsigned char *out, const unsigned char *in, int w) {
    for (int i = 0; i < w; i++)
        out[2 * i] = out[2 * i + 1] = in[i];
    return out;
}

static unsigned char *stbi__resample_row_h_2(unsigned char *out, unsigned char *in_near,
                                             unsigned char *in_far, int w, int hs) {
    (void)in_far;
    (void)hs;
    if (w <= 2) return box_row(out, in_near, w);
    for (int i = 0; i < w; i++) {
        int t = 3 * in_near[i];
        int l = i > 0 ? in_near[i - 1] : in_near[i];
        int r = i < w - 1 ? in_near[i + 1] : in_near[i];
        out[2 * i] = (unsigned char)((t + l + 1) >> 2);
        out[2 * i + 1] = (unsigned char)((t + r + 2) >> 2);
    }
    return out;
}

static unsigned char *stbi__resample_row_hv_2(unsigned char *out, unsigned char *in_near,
                                              unsigned char *in_far, int w, int hs) {
    (void)hs;
    if (w <= 2) return box_row(out, in_near, w);
    for (int i = 0; i < w; i++) {
        int t = 3 * in_near[i] + in_far[i];
        int l = i > 0 ? 3 * in_near[i - 1] + in_far[i - 1] : t;
        int r = i < w - 1 ? 3 * in_near[i + 1] + in_far[i + 1] : t;
        out[2 * i] = (unsigned char)((3 * t + l + 8) >> 4);
        out[2 * i + 1] = (unsigned char)((3 * t + r + 7) >> 4);
    }
    return out;
}

/* stb picks its SSE2 / NEON h2v2 kernel when it can: the same function under that name too */
static unsigned char *stbi__resample_row_hv_2_simd(unsigned char *out, unsigned char *in_near,
                                                   unsigned char *in_far, int w, int hs) {
    return stbi__resample_row_hv_2(out, in_near, in_far, w, hs);
}

#define stbi__resample_row_h_2(a, b, c, d, e)       stbi__resample_row_h_2_stb(a, b, c, d, e)
#define stbi__resample_row_hv_2(a, b, c, d, e)      stbi__resample_row_hv_2_stb(a, b, c, d, e)
#define stbi__resample_row_hv_2_simd(a, b, c, d, e) stbi__resample_row_hv_2_simd_stb(a, b, c, d, e)
#include "stb_image.h"
#undef stbi__resample_row_h_2
#undef stbi__resample_row_hv_2
#undef stbi__resample_row_hv_2_simd

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include "stb_image_write.h"
