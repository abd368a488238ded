/*
 * test_ti_sample_safety.c - ti-sample's watermark and safety checker (the reference txt2img's
 * put_watermark and check_safety) end to end on the tiny SD config (CPU), with a random tiny
 * checkpoint written here and the tiny checkers of scripts/oracle/safety_fixtures.py:
 *   - PNGs below 256x256 carry watermark=none and the log says so; at 256x256 each sample is the
 *     unmarked image (same seed, --no-watermark) marked once by the reference-exact encoder, the
 *     grid is the unmarked grid marked once (made from unmarked samples), the tEXt entry says
 *     StableDiffusionV1, and the decoder's reading is reported (see docs/WATERMARK.md);
 *     img2img marks nothing;
 *   - --safety_checker with a checker that flags every image (concept thresholds -2.5 < any
 *     cosine) blacks out every sample and the grid's cells and reports "2 of 2"; with one that
 *     flags none the pixels equal the run without checker and it reports "0 of 2"; without the
 *     flag the run says that no check was made;
 *   - a bad or mismatched checker (a UNet file, a text file, the tiny checker file alone whose
 *     head count no config.json gives, a missing path) fails before sampling: exit 1, a message
 *     naming the file, no output folder.
 * argv[1]: the ti-sample executable. With "full" as argv[2] (test_safety_fullsize, label slow):
 * the full-size ViT-L/14 checker with random weights, written by the oracle script into a
 * temporary folder (SKIP without /opt/oracle-venv or TI_ORACLE_PYTHON; TI_SAFETY_FULL_DIR names a
 * folder it wrote before), checks one image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "image.h"
#include "ldm.h"
#include "sample_test_util.h"
#include "test_common.h"
#include "test_util.h"
#include "watermark.h"

static const char *tool;
static char dir[256];
static char errbuf[16384];
static const char *ckpt = "model.safetensors"; /* in dir */

/* runs ti-sample on the tiny model with args; stderr in errbuf; the exit status */
static int run(const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s --config configs/tiny/sd-tiny-inference.yaml --ckpt %s/%s "
             "--device cpu --prompt 'a photo' --ddim_steps 2 --n_iter 1 --seed 3 %s",
             tool, dir, ckpt, args);
    return tu_run_capture(cmd, dir, errbuf, sizeof errbuf);
}

static int exists(const char *sub) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    return stat(p, &st) == 0;
}

/* 1 when the PNG at dir/sub holds the tEXt entry key=value */
static int has_text(const char *sub, const char *key, const char *value) {
    char p[1024], needle[512];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    FILE *f = fopen(p, "rb");
    if (!f) return 0;
    static unsigned char buf[1 << 21];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t kl = strlen(key), vl = strlen(value);
    memcpy(needle, "tEXt", 4);
    memcpy(needle + 4, key, kl + 1);
    memcpy(needle + 5 + kl, value, vl);
    return memmem(buf, n, needle, 5 + kl + vl) != NULL;
}

static int load(struct ti_image *img, const char *sub) {
    char p[1024];
    struct ti_data_err de = {{0}};
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    memset(img, 0, sizeof *img);
    if (ti_image_load(img, p, &de) != 0) {
        fprintf(stderr, "%s\n", de.msg);
        return -1;
    }
    return 0;
}

static int setup(void) {
    struct ti_err err = {0};
    struct ti_ldm m;
    char p[512];
    if (stu_tiny_ldm(&m, "configs/tiny/sd-tiny-inference.yaml", 7) != 0) return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(ti_ldm_save(&m, p, &err), &err);
    /* flat.safetensors: the same with the VAE's last conv zeroed and biases -0.2, 0.1, 0.3, so
     * every image is the flat colour (101 or 102, 140, 165), content the mark survives on */
    struct ti_tensor *cw = &m.vae.dec_conv_out.w, *cb = &m.vae.dec_conv_out.b;
    CHECK(cw->dtype == TI_DTYPE_F32 && ti_tensor_numel(cb) == 3);
    memset(cw->data, 0, (size_t)ti_tensor_numel(cw) * sizeof(float));
    static const float bias[3] = {-0.2f, 0.1f, 0.3f};
    memcpy(cb->data, bias, sizeof bias);
    snprintf(p, sizeof p, "%s/flat.safetensors", dir);
    CHECK_OK(ti_ldm_save(&m, p, &err), &err);
    ti_ldm_free(&m);
    /* a 256x256 init image and a text file posing as a checker */
    snprintf(p, sizeof p, "%s/init.png", dir);
    CHECK(stu_write_png(p, 256, 256) == 0);
    snprintf(p, sizeof p, "%s/bad.safetensors", dir);
    FILE *f = fopen(p, "w");
    fputs("not a checker", f);
    fclose(f);
    return 0;
}

/* The folder given to --outdir is relative to the test's working directory (the source root),
 * so every run here names a folder inside dir. */
static int run_in(const char *args, const char *out) {
    char full[4096];
    snprintf(full, sizeof full, "%s --outdir %s/%s", args, dir, out);
    return run(full);
}

TEST(watermark_below_256_is_none) {
    CHECK(run_in("--H 64 --W 64 --n_samples 2", "small") == 0);
    CHECK(has_text("small/samples/00000.png", TI_WATERMARK_PNG_KEY, "none"));
    CHECK(has_text("small/samples/00001.png", TI_WATERMARK_PNG_KEY, "none"));
    CHECK(has_text("small/grid-0000.png", TI_WATERMARK_PNG_KEY, "none"));
    CHECK(has_text("small/samples/00000.png", "safety_check", "not run"));
    CHECK(strstr(errbuf, "carry no watermark") != NULL);
    CHECK(strstr(errbuf, "no safety check was made") != NULL);
}

/* 256x256: marked = encode(unmarked), for the samples and the grid; the decoder's reading */
TEST(watermark_at_256) {
    CHECK(run_in("--H 256 --W 256 --n_samples 1", "wm") == 0);
    if (errbuf[0]) fprintf(stderr, "%s", errbuf);
    CHECK(run_in("--H 256 --W 256 --n_samples 1 --no-watermark", "plain") == 0);
    CHECK(has_text("wm/samples/00000.png", TI_WATERMARK_PNG_KEY, TI_WATERMARK_SD_TEXT));
    CHECK(has_text("wm/grid-0000.png", TI_WATERMARK_PNG_KEY, TI_WATERMARK_SD_TEXT));
    CHECK(has_text("plain/samples/00000.png", TI_WATERMARK_PNG_KEY, "none"));
    CHECK(has_text("plain/grid-0000.png", TI_WATERMARK_PNG_KEY, "none"));
    CHECK(strstr(errbuf, "carry no watermark") == NULL);
    static const char *const pairs[][2] = {{"wm/samples/00000.png", "plain/samples/00000.png"},
                                           {"wm/grid-0000.png", "plain/grid-0000.png"}};
    for (int k = 0; k < 2; k++) {
        struct ti_image a, b;
        struct ti_data_err de = {{0}};
        if (load(&a, pairs[k][0]) != 0 || load(&b, pairs[k][1]) != 0) {
            CHECK(!"both PNGs load");
            continue;
        }
        CHECK(a.w == b.w && a.h == b.h);
        size_t n = (size_t)a.w * (size_t)a.h * 3;
        int differ = a.w == b.w && a.h == b.h && memcmp(a.px, b.px, n) != 0;
        CHECK(differ); /* the mark changes pixels */
        CHECK(ti_watermark_encode(b.px, b.w, b.h, (const uint8_t *)TI_WATERMARK_SD_TEXT,
                                  TI_WATERMARK_SD_LEN, &de) == 0);
        CHECK(a.w == b.w && a.h == b.h && memcmp(a.px, b.px, n) == 0);
        uint8_t got[TI_WATERMARK_SD_LEN + 1] = {0};
        CHECK(ti_watermark_decode(a.px, a.w, a.h, got, TI_WATERMARK_SD_LEN, &de) == 0);
        /* the decoder's reading of ti-sample's own output (a random tiny model: how often it
         * succeeds is content-dependent and reported in docs/WATERMARK.md, not asserted) */
        printf("  %s: decoder reads \"%s\"%s\n", pairs[k][0], (const char *)got,
               memcmp(got, TI_WATERMARK_SD_TEXT, TI_WATERMARK_SD_LEN) ? " (not the mark)" : "");
        uint8_t none[TI_WATERMARK_SD_LEN + 1] = {0};
        CHECK(ti_watermark_decode(b.px, b.w, b.h, none, TI_WATERMARK_SD_LEN, &de) == 0);
        ti_image_free(&a);
        ti_image_free(&b);
    }
    /* the unmarked sample gives no mark */
    struct ti_image p;
    struct ti_data_err de = {{0}};
    if (load(&p, "plain/samples/00000.png") == 0) {
        uint8_t got[TI_WATERMARK_SD_LEN] = {0};
        CHECK(ti_watermark_decode(p.px, p.w, p.h, got, TI_WATERMARK_SD_LEN, &de) == 0);
        CHECK(memcmp(got, TI_WATERMARK_SD_TEXT, TI_WATERMARK_SD_LEN) != 0);
        ti_image_free(&p);
    }
}

/* On content the mark survives (a flat colour), the decoder reads the payload back from
 * ti-sample's PNGs, sample and grid (the reference decoder reads it from both too:
 * docs/WATERMARK.md); the same images unmarked read as something else. */
TEST(watermark_read_back_on_flat_content) {
    ckpt = "flat.safetensors";
    CHECK(run_in("--H 256 --W 256 --n_samples 1", "flat") == 0);
    CHECK(run_in("--H 256 --W 256 --n_samples 1 --no-watermark", "flat_plain") == 0);
    ckpt = "model.safetensors";
    static const char *const files[] = {"flat/samples/00000.png", "flat/grid-0000.png",
                                        "flat_plain/samples/00000.png"};
    for (int k = 0; k < 3; k++) {
        struct ti_image a;
        struct ti_data_err de = {{0}};
        if (load(&a, files[k]) != 0) {
            CHECK(!"the PNG loads");
            continue;
        }
        if (k == 2) { /* flat: every pixel (102, 140, 165) up to float rounding */
            int flat = abs(a.px[0] - 102) <= 1 && a.px[1] == 140 && a.px[2] == 165;
            for (size_t i = 3; flat && i < (size_t)a.w * (size_t)a.h * 3; i++)
                flat = a.px[i] == a.px[i % 3];
            CHECK(flat);
        }
        uint8_t got[TI_WATERMARK_SD_LEN] = {0};
        CHECK(ti_watermark_decode(a.px, a.w, a.h, got, TI_WATERMARK_SD_LEN, &de) == 0);
        int is_mark = !memcmp(got, TI_WATERMARK_SD_TEXT, TI_WATERMARK_SD_LEN);
        if (is_mark != (k < 2)) fprintf(stderr, "%s: decoder reads %.17s\n", files[k], got);
        CHECK(is_mark == (k < 2));
        ti_image_free(&a);
    }
}

TEST(img2img_marks_nothing) {
    char args[1024];
    snprintf(args, sizeof args, "--init-img %s/init.png --n_samples 1 --skip_grid", dir);
    CHECK(run_in(args, "i2i") == 0);
    if (errbuf[0] && !exists("i2i/samples/00000.png")) fprintf(stderr, "%s", errbuf);
    CHECK(has_text("i2i/samples/00000.png", TI_WATERMARK_PNG_KEY, "none"));
}

/* every pixel of image sub is 0 (x0, y0, w, h: the region) */
static int black(const char *sub, int x0, int y0, int w, int h) {
    struct ti_image img;
    if (load(&img, sub) != 0) return 0;
    int ok = x0 + w <= img.w && y0 + h <= img.h;
    for (int y = y0; ok && y < y0 + h; y++)
        for (int x = x0; x < x0 + w; x++)
            for (int c = 0; c < 3; c++)
                ok &= img.px[((size_t)y * (size_t)img.w + (size_t)x) * 3 + (size_t)c] == 0;
    ti_image_free(&img);
    return ok;
}

TEST(safety_checker_flags_all_or_none) {
    CHECK(run_in("--H 64 --W 64 --n_samples 2 --safety_checker "
                 "tests/fixtures/safety_checker_tiny_all",
                 "sc_all") == 0);
    if (!strstr(errbuf, "2 of 2 images flagged")) fprintf(stderr, "%s", errbuf);
    CHECK(strstr(errbuf, "2 of 2 images flagged") != NULL);
    CHECK(strstr(errbuf, "heads") != NULL); /* the checker's sizes are logged */
    for (int i = 0; i < 2; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "sc_all/samples/%05d.png", i);
        CHECK(black(sub, 0, 0, 64, 64));
        CHECK(has_text(sub, "safety_check", "flagged, replaced by a black image"));
    }
    /* the grid is made from the checked images: both cells black */
    CHECK(black("sc_all/grid-0000.png", 2, 2, 64, 64));
    CHECK(black("sc_all/grid-0000.png", 68, 2, 64, 64));

    CHECK(run_in("--H 64 --W 64 --n_samples 2 --safety_checker "
                 "tests/fixtures/safety_checker_tiny_none",
                 "sc_none") == 0);
    CHECK(strstr(errbuf, "0 of 2 images flagged") != NULL);
    CHECK(run_in("--H 64 --W 64 --n_samples 2", "sc_off") == 0);
    for (int i = 0; i < 2; i++) {
        char sa[64], sb[64];
        snprintf(sa, sizeof sa, "sc_none/samples/%05d.png", i);
        snprintf(sb, sizeof sb, "sc_off/samples/%05d.png", i);
        CHECK(has_text(sa, "safety_check", "passed"));
        struct ti_image a, b;
        if (load(&a, sa) == 0 && load(&b, sb) == 0) {
            CHECK(a.w == b.w && a.h == b.h && !memcmp(a.px, b.px, (size_t)a.w * a.h * 3));
            CHECK(!black(sa, 0, 0, 64, 64));
            ti_image_free(&a);
            ti_image_free(&b);
        } else {
            CHECK(!"PNGs load");
        }
    }
}

/* Thresholds next to the cosines of the flat model's image (scripts/oracle/safety_fixtures.py,
 * decisions from diffusers' forward): flat_adjust is flagged only through the special-care
 * adjustment (score round(-0.006 + 0.01, 3) > 0), flat_pass with the same concept threshold
 * and no special care is not. The checker given as a pipeline folder (safety_checker/ inside). */
TEST(safety_checker_near_thresholds) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/pipe/safety_checker && cp tests/fixtures/safety_checker_tiny_flat_pass/* "
             "%s/pipe/safety_checker/",
             dir, dir);
    CHECK(system(cmd) == 0);
    ckpt = "flat.safetensors";
    CHECK(run_in("--H 64 --W 64 --n_samples 1 --safety_checker "
                 "tests/fixtures/safety_checker_tiny_flat_adjust",
                 "near_adjust") == 0);
    int flagged = strstr(errbuf, "1 of 1 images flagged") != NULL;
    snprintf(cmd, sizeof cmd, "--H 64 --W 64 --n_samples 1 --safety_checker %s/pipe", dir);
    CHECK(run_in(cmd, "near_pass") == 0);
    int passed = strstr(errbuf, "0 of 1 images flagged") != NULL;
    ckpt = "model.safetensors";
    CHECK(flagged);
    CHECK(passed);
    CHECK(black("near_adjust/samples/00000.png", 0, 0, 64, 64));
    CHECK(has_text("near_adjust/samples/00000.png", "safety_check",
                   "flagged, replaced by a black image"));
    CHECK(!black("near_pass/samples/00000.png", 0, 0, 64, 64));
    CHECK(has_text("near_pass/samples/00000.png", "safety_check", "passed"));
}

/* refused before sampling: exit 1, the message, no output folder */
static void refused(const char *checker, const char *needle) {
    char args[1024];
    snprintf(args, sizeof args, "--H 64 --W 64 --n_samples 1 --safety_checker %s", checker);
    int rc = run_in(args, "bad");
    CHECK(rc == 1);
    CHECK(strstr(errbuf, needle) != NULL);
    CHECK(!exists("bad"));
    if (rc != 1 || !strstr(errbuf, needle))
        fprintf(stderr, "for %s: rc %d, stderr: %s\n", checker, rc, errbuf);
}

TEST(bad_checker_files) {
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    refused(p, "no key vision_model.vision_model.embeddings.patch_embedding.weight");
    snprintf(p, sizeof p, "%s/bad.safetensors", dir);
    refused(p, "bad.safetensors");
    snprintf(p, sizeof p, "%s/nothere", dir);
    refused(p, "nothere");
    snprintf(p, sizeof p, "%s/empty", dir);
    CHECK(mkdir(p, 0777) == 0);
    refused(p, "a folder without model.safetensors");
    /* the tiny checker alone: width 32 and no config.json to give its 4 heads */
    refused("tests/fixtures/safety_checker_tiny.safetensors", "num_attention_heads");
    /* a config.json whose head count does not divide the width */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/heads5 && cp tests/fixtures/safety_checker_tiny_none/model.safetensors "
             "%s/heads5/ && printf '{\"vision_config\": {\"hidden_size\": 32, "
             "\"num_attention_heads\": 5}}' > %s/heads5/config.json",
             dir, dir, dir);
    CHECK(system(cmd) == 0);
    snprintf(p, sizeof p, "%s/heads5", dir);
    refused(p, "does not divide the width 32");
}

TEST(help_names_the_flags) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s --help > %s/help.txt", tool, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/help.txt", dir);
    static char out[16384];
    FILE *f = fopen(cmd, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    CHECK(strstr(out, "--no-watermark") != NULL);
    CHECK(strstr(out, "--safety_checker PATH") != NULL);
    CHECK(strstr(out, "safety check in tEXt") != NULL);
}

/* label slow: the full-size checker (random weights, the real key names and shapes) */
static int full(void) {
    char l14[512];
    snprintf(l14, sizeof l14, "%s/l14", dir);
    const char *given = getenv("TI_SAFETY_FULL_DIR"); /* a folder the script wrote before */
    if (given) {
        snprintf(l14, sizeof l14, "%s", given);
        goto have;
    }
    const char *py = getenv("TI_ORACLE_PYTHON");
    if (!py) py = "/opt/oracle-venv/bin/python";
    if (access(py, X_OK) != 0) {
        printf("SKIP: no oracle Python (%s) to write the full-size checker\n", py);
        return 77;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s scripts/oracle/safety_fixtures.py --full %s/l14 > %s/py.txt 2>&1 || "
             "{ cat %s/py.txt; exit 1; }",
             py, dir, dir, dir);
    if (system(cmd) != 0) {
        printf("SKIP: the oracle script could not write the full-size checker\n");
        return 77;
    }
have:;
    char args[1024];
    snprintf(args, sizeof args, "--H 64 --W 64 --n_samples 1 --safety_checker %s", l14);
    CHECK(run_in(args, "full") == 0);
    if (errbuf[0]) fprintf(stderr, "%s", errbuf);
    CHECK(strstr(errbuf, "image 224, patch 14, width 1024, 24 layers, 16 heads), projection 768;"));
    CHECK(strstr(errbuf, "of 1 images flagged") != NULL);
    CHECK(exists("full/samples/00000.png"));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_ti_sample_safety PATH/TO/ti-sample [full]\n");
        return 2;
    }
    tool = argv[1];
    if (tu_mkdtemp(dir, sizeof dir, "ti_test_safety") != 0) return 1;
    if (setup() != 0) return 1;
    if (argc > 2 && !strcmp(argv[2], "full")) {
        int rc = full();
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        return rc == 77 ? 77 : tc_finish();
    }
    RUN(help_names_the_flags);
    RUN(watermark_below_256_is_none);
    RUN(bad_checker_files);
    RUN(safety_checker_flags_all_or_none);
    RUN(safety_checker_near_thresholds);
    RUN(watermark_at_256);
    RUN(watermark_read_back_on_flat_content);
    RUN(img2img_marks_nothing);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (getenv("TI_TEST_KEEP")) /* keeps the tiny model and outputs for a look by hand */
        printf("kept %s\n", dir);
    else if (tc_failures == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return tc_finish();
}
