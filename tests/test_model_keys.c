/*
 * test_model_keys.c - the networks register exactly the parameters of the real checkpoints:
 * every key and shape of tests/fixtures/keys/<model>.tsv (lists made by constructing the
 * reference PyTorch modules, sd-arch.md §0) and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "ldm.h"
#include "text_encoder.h"
#include "unet.h"
#include "vae.h"
#include "weights.h"

struct tsv_entry {
    char key[256];
    int ndim;
    int64_t shape[4];
    int seen;
    int skip; /* not a parameter of ours: integer buffers, unused heads */
};

static int load_tsv(const char *path, struct tsv_entry **out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    int n = 0, cap = 2048;
    struct tsv_entry *e = calloc((size_t)cap, sizeof *e);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *tab = strchr(line, '\t');
        if (!tab || n == cap) continue;
        *tab = '\0';
        size_t kl = strlen(line);
        if (kl >= sizeof e[n].key) continue;
        memcpy(e[n].key, line, kl + 1);
        char *s = tab + 1;
        e[n].ndim = 0;
        while (*s && *s != '\t' && e[n].ndim < 4) {
            e[n].shape[e[n].ndim++] = strtoll(s, &s, 10);
            if (*s == 'x') s++;
        }
        /* position_ids is an int64 buffer (positions are implicit in ti); BERT's to_logits is
         * never used by the LDM conditioning (return_embeddings=True, sd-arch.md §6.2) */
        e[n].skip = strstr(s, "int") != NULL || strstr(e[n].key, ".to_logits.") != NULL;
        n++;
    }
    fclose(f);
    *out = e;
    return n;
}

/* Compares the registered table with the TSV; keys of the TSV under `prefix` only. */
static void compare(const struct ti_weights *w, const char *tsv, const char *prefix) {
    struct tsv_entry *e = NULL;
    int n = load_tsv(tsv, &e);
    CHECK(n > 0);
    int matched = 0, wrong = 0;
    for (int i = 0; i < w->n; i++) {
        const struct ti_weight *it = &w->items[i];
        int found = 0;
        for (int j = 0; j < n && !found; j++) {
            if (e[j].skip || strcmp(e[j].key, it->key) != 0) continue;
            found = 1;
            e[j].seen++;
            int same = e[j].ndim == it->ndim;
            for (int d = 0; same && d < it->ndim; d++)
                same = e[j].shape[d] == it->shape[d];
            if (!same) {
                wrong++;
                fprintf(stderr, "  shape differs: %s\n", it->key);
            } else {
                matched++;
            }
        }
        if (!found) {
            wrong++;
            fprintf(stderr, "  not in %s: %s\n", tsv, it->key);
        }
    }
    int expected = 0;
    for (int j = 0; j < n; j++) {
        if (e[j].skip || strncmp(e[j].key, prefix, strlen(prefix)) != 0) continue;
        expected++;
        if (e[j].seen != 1) {
            wrong++;
            fprintf(stderr, "  %s: %s registered %d times\n", tsv, e[j].key, e[j].seen);
        }
    }
    printf("  %s: %d of %d keys match\n", tsv, matched, expected);
    CHECK(wrong == 0);
    CHECK(matched == expected);
    free(e);
}

/* sum of registered parameter counts */
static int64_t total_params(const struct ti_weights *w) {
    int64_t total = 0;
    for (int i = 0; i < w->n; i++) {
        int64_t n = 1;
        for (int d = 0; d < w->items[i].ndim; d++)
            n *= w->items[i].shape[d];
        total += n;
    }
    return total;
}

TEST(unet_sd_v1_keys) {
    struct ti_err err = {0};
    struct ti_unet_hparams hp;
    ti_unet_hparams_sd_v1(&hp);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_unet u;
    CHECK_OK(ti_unet_init(&u, &hp, "model.diffusion_model.", &w, &err), &err);
    compare(&w, "tests/fixtures/keys/sd-v1-unet.tsv", "model.diffusion_model.");
    CHECK(total_params(&w) == 859520964); /* sd-arch.md §9 */
    ti_unet_free(&u);
    ti_weights_free(&w);
}

TEST(unet_ldm_keys) {
    struct ti_err err = {0};
    struct ti_unet_hparams hp;
    ti_unet_hparams_sd_v1(&hp);
    hp.context_dim = 1280;
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_unet u;
    CHECK_OK(ti_unet_init(&u, &hp, "model.diffusion_model.", &w, &err), &err);
    compare(&w, "tests/fixtures/keys/ldm-1p4b-unet.tsv", "model.diffusion_model.");
    ti_unet_free(&u);
    ti_weights_free(&w);
}

TEST(vae_kl_f8_keys) {
    struct ti_err err = {0};
    struct ti_vae_hparams hp;
    ti_vae_hparams_kl_f8(&hp);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_vae v;
    CHECK_OK(ti_vae_init(&v, &hp, "first_stage_model.", &w, &err), &err);
    compare(&w, "tests/fixtures/keys/kl-f8-vae.tsv", "first_stage_model.");
    CHECK(total_params(&w) == 83653863); /* sd-arch.md §9 */
    ti_vae_free(&v);
    ti_weights_free(&w);
}

TEST(clip_text_keys) {
    struct ti_err err = {0};
    struct ti_text_hparams hp;
    ti_text_hparams_clip_l14(&hp);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_text_encoder e;
    CHECK_OK(ti_clip_text_init(&e, &hp, "cond_stage_model.transformer.text_model.", &w, &err),
             &err);
    compare(&w, "tests/fixtures/keys/sd-v1-clip-text.tsv", "cond_stage_model.");
    CHECK(total_params(&w) == 123060480); /* sd-arch.md §9 */
    ti_text_encoder_free(&e);
    ti_weights_free(&w);
}

TEST(bert_keys) {
    struct ti_err err = {0};
    struct ti_text_hparams hp;
    ti_text_hparams_ldm_bert(&hp);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_text_encoder e;
    CHECK_OK(ti_bert_embedder_init(&e, &hp, "cond_stage_model.transformer.", &w, &err), &err);
    compare(&w, "tests/fixtures/keys/ldm-1p4b-bert.tsv", "cond_stage_model.");
    CHECK(total_params(&w) == 542895360); /* sd-arch.md §9, without the unused to_logits */
    ti_text_encoder_free(&e);
    ti_weights_free(&w);
}

/* The whole model built from the peer's own config file: every network key of the full
 * checkpoint layout (the 12 schedule buffers are recomputed, not parameters). */
static void full_model(const char *config, const char *tsv, int64_t params) {
#ifndef TI_HAVE_YAML
    (void)config, (void)tsv, (void)params;
    TC_SKIP_TEST("built without libyaml: the peer's configs cannot load");
    return;
#endif
    struct ti_err err = {0};
    struct ti_config *cfg = calloc(1, sizeof *cfg);
    const char *files[1] = {config};
    CHECK_OK(ti_config_load(cfg, files, 1, NULL, 0, &err), &err);
    struct ti_ldm m;
    CHECK_OK(ti_ldm_init(&m, cfg, &err), &err);
    compare(&m.unet_w, tsv, "model.diffusion_model.");
    compare(&m.vae_w, tsv, "first_stage_model.");
    compare(&m.text_w, tsv, "cond_stage_model.");
    CHECK(total_params(&m.unet_w) + total_params(&m.vae_w) + total_params(&m.text_w) == params);
    ti_ldm_free(&m);
    free(cfg);
}

TEST(sd_v1_from_peer_config) {
    full_model("configs/stable-diffusion/v1-inference.yaml", "tests/fixtures/keys/sd-v1-full.tsv",
               1066235307); /* sd-arch.md §9 */
}

TEST(ldm_from_peer_config) {
    /* UNet 872,300,484 + BERT 542,895,360 + VAE 83,653,863 (sd-arch.md §9) */
    full_model("configs/latent-diffusion/txt2img-1p4B-finetune.yaml",
               "tests/fixtures/keys/ldm-1p4b-full.tsv", 872300484LL + 542895360LL + 83653863LL);
}

int main(void) {
    RUN(unet_sd_v1_keys);
    RUN(unet_ldm_keys);
    RUN(vae_kl_f8_keys);
    RUN(clip_text_keys);
    RUN(bert_keys);
    RUN(sd_v1_from_peer_config);
    RUN(ldm_from_peer_config);
    return tc_finish();
}
