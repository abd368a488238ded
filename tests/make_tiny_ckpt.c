/*
 * make_tiny_ckpt.c - test helper: `make_tiny_ckpt CONFIG.yaml OUT.safetensors [SEED]` writes a
 * model of random weights for a (tiny) config with ti_ldm_randomize + ti_ldm_save, so ti-train's
 * end-to-end tests (tests/test_ti_train.sh) have a checkpoint to train against.
 * Exit status: 0 written, 1 error, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "config.h"
#include "ldm.h"

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: make_tiny_ckpt CONFIG.yaml OUT.safetensors [SEED]\n");
        return 2;
    }
    unsigned long long seed = argc == 4 ? strtoull(argv[3], NULL, 10) : 1234;
    struct ti_err err = {0};
    struct ti_config *cfg = calloc(1, sizeof *cfg);
    struct ti_ldm m;
    const char *files[] = {argv[1]};
    int rc = 1;
    if (!cfg) return 1;
    if (ti_config_load(cfg, files, 1, NULL, 0, &err) != TI_OK) goto out;
    if (ti_ldm_init(&m, cfg, &err) != TI_OK) goto out;
    if (ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &err) == TI_OK &&
        ti_ldm_randomize(&m, seed, &err) == TI_OK && ti_ldm_save(&m, argv[2], &err) == TI_OK)
        rc = 0;
    ti_ldm_free(&m);
out:
    if (rc) fprintf(stderr, "make_tiny_ckpt: %s\n", err.msg);
    free(cfg);
    return rc;
}
