/*
 * fuzz_image.c - libFuzzer harness: arbitrary bytes as an image file (data/image.h).
 *
 * Decodes the input (stb_image behind our header checks, JPEG marker walk, EXIF through
 * libexif); whatever decodes is center-cropped, resized with every filter and converted to
 * CHW, so ASan sees any pixel access outside the buffers. Replayed over tests/fixtures/data by
 * test_replay_image (tests/data.cmake) in every build.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct ti_image im = {0}, c = {0}, r = {0};
    struct ti_data_err e;
    if (ti_image_load_memory(&im, data, size, "fuzz", &e)) return 0;
    if (im.w < 1 || im.h < 1 || !im.px) __builtin_trap();
    (void)ti_image_exif_orientation(data, size);
    if (ti_image_center_crop(&c, &im, &e) == 0) {
        for (int f = 0; f < 4; f++) {
            if (ti_image_resize(&r, &c, 7, 5, (enum ti_resample)f, &e) == 0) {
                float chw[3 * 7 * 5];
                ti_image_to_chw(&r, chw);
                ti_image_free(&r);
            }
        }
        ti_image_free(&c);
    }
    ti_image_free(&im);
    return 0;
}
