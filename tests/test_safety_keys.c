/*
 * test_safety_keys.c - the full-size safety checker's parameter table (model/safety_checker.c,
 * ViT-L/14 hparams) equals the real layout: every key diffusers' StableDiffusionSafetyChecker
 * (CLIPConfig of CompVis/stable-diffusion-safety-checker) puts in its state_dict, with its shape
 * (tests/fixtures/keys/safety-checker-l14.tsv, scripts/oracle/safety_fixtures.py), none missing,
 * none extra. Registering allocates nothing, so this runs in milliseconds; loading a 1.2 GB
 * file with these keys is test_safety_fullsize (label slow).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_test_util.h"
#include "safety_checker.h"
#include "test_common.h"

TEST(l14_table_is_the_real_layout) {
    size_t n = 0;
    struct ti_param_spec *spec =
        tio_load_spec("tests/fixtures/keys/safety-checker-l14.tsv", NULL, &n);
    CHECK(spec != NULL);
    CHECK(n == 396); /* the fixture's line count: a truncated table fails */
    struct ti_clip_vision_hparams hp;
    ti_clip_vision_hparams_l14(&hp);
    struct ti_weights w;
    struct ti_safety_checker sc;
    struct ti_err err = {0};
    ti_weights_init(&w);
    CHECK_OK(ti_safety_checker_init(&sc, &hp, "", &w, &err), &err);
    CHECK(w.n == (int)n);
    int64_t total = 0;
    for (size_t i = 0; spec && i < n; i++) {
        int found = 0;
        for (int k = 0; k < w.n; k++) {
            if (strcmp(w.items[k].key, spec[i].key)) continue;
            found = 1;
            int same = w.items[k].ndim == spec[i].ndim;
            for (int d = 0; same && d < spec[i].ndim; d++)
                same = w.items[k].shape[d] == spec[i].shape[d];
            if (!same) fprintf(stderr, "%s: shape differs\n", spec[i].key);
            CHECK(same);
        }
        if (!found) fprintf(stderr, "%s: not registered\n", spec[i].key);
        CHECK(found);
        int64_t e = 1;
        for (int d = 0; d < spec[i].ndim; d++)
            e *= spec[i].shape[d];
        total += e;
    }
    /* 303.2 M parameters: 1.2 GB in float32, the released checker's size */
    printf("  %zu keys, %lld parameters\n", n, (long long)total);
    CHECK(total > 300000000 && total < 310000000);
    ti_safety_checker_free(&sc);
    ti_weights_free(&w);
    tio_free_spec(spec, n);
}

int main(void) {
    RUN(l14_table_is_the_real_layout);
    return tc_finish();
}
