/*
 * test_ti_sample.c - ti-sample end to end on the tiny SD config (CPU): a random tiny checkpoint
 * (ti_ldm_randomize + ti_ldm_save) and embedding files written here; the tool writes the requested
 * number of PNGs of the requested size, the same bytes for the same seed, continues the file
 * numbering, records the settings in tEXt chunks; img2img gives the init image's size cut to
 * multiples of 32; bad input fails with a clear message before anything is written.
 * argv[1]: the ti-sample executable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "config.h"
#include "emb_test_util.h"
#include "embedding_io.h"
#include "image.h"
#include "io_test_util.h"
#include "ldm.h"
#include "safetensors.h"
#include "sample_test_util.h"
#include "schedule.h"
#include "test_common.h"
#include "test_util.h"
#include "tokenizer.h"

static const char *tool;
static char dir[256];

static int run_model(const char *config, const char *ckpt, const char *args, char *errbuf,
                     size_t errcap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s --config %s --ckpt %s/%s --device cpu %s", tool, config, dir,
             ckpt, args);
    return tu_run_capture(cmd, dir, errbuf, errcap);
}

static int run(const char *args, char *errbuf, size_t errcap) {
    return run_model("configs/tiny/sd-tiny-inference.yaml", "model.safetensors", args, errbuf,
                     errcap);
}

static int exists(const char *fmt, const char *a) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, fmt, dir, a);
    return stat(p, &st) == 0;
}

static int same_file(const char *a, const char *b) {
    size_t nx, ny;
    unsigned char *x = tu_read_file(a, &nx), *y = tu_read_file(b, &ny);
    int same = x && y && nx > 0 && nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static int setup(void) {
    struct ti_err err = {0};
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (stu_write_tiny_ckpt("configs/tiny/sd-tiny-inference.yaml", 7, p) != 0) return -1;
    snprintf(p, sizeof p, "%s/ldm.safetensors", dir);
    if (stu_write_tiny_ckpt("configs/tiny/ldm-tiny-eval_with_tokens.yaml", 8, p) != 0) return -1;
    float v[3 * 32];
    for (int i = 0; i < 3 * 32; i++)
        v[i] = (float)((i * 37 % 101) - 50) * 0.02f;
    struct ti_embedding e;
    /* star.pt: '*' (A1111), at.safetensors: '@' with 2 vectors (diffusers), narrow.pt: width 16,
     * star2.pt: '*' again (a second definition) */
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", -1, 1, 32, v, &err), &err);
    snprintf(p, sizeof p, "%s/star.pt", dir);
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_A1111, &err), &err);
    snprintf(p, sizeof p, "%s/star2.pt", dir);
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_A1111, &err), &err);
    ti_embedding_free(&e);
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "@", -1, 2, 32, v + 32, &err), &err);
    snprintf(p, sizeof p, "%s/at.safetensors", dir);
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_DIFFUSERS, &err), &err);
    ti_embedding_free(&e);
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", -1, 1, 16, v, &err), &err);
    snprintf(p, sizeof p, "%s/narrow.pt", dir);
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_A1111, &err), &err);
    ti_embedding_free(&e);
    /* merged.pt: both placeholders in one file (the peer's format, token ids from the tokenizer) */
    struct ti_tokenizer *tok = NULL;
    char vp[1024];
    snprintf(vp, sizeof vp, "%s/%s", ti_tokenizer_vocab_dir(),
             ti_tokenizer_vocab_file(TI_TOKENIZER_BPE));
    int32_t star_id = -1, at_id = -1;
    CHECK_OK(ti_tokenizer_load(&tok, TI_TOKENIZER_BPE, vp, &err), &err);
    CHECK_OK(ti_tokenizer_single_token(&star_id, tok, "*", &err), &err);
    CHECK_OK(ti_tokenizer_single_token(&at_id, tok, "@", &err), &err);
    ti_tokenizer_free(&tok);
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", star_id, 1, 32, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&e, "@", at_id, 2, 32, v + 32, &err), &err);
    snprintf(p, sizeof p, "%s/merged.pt", dir);
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_PEER, &err), &err);
    ti_embedding_free(&e);
    /* an init image of 100x70 (cut to 96x64) and a file that is not an image */
    snprintf(p, sizeof p, "%s/init.png", dir);
    CHECK(stu_write_png(p, 100, 70) == 0);
    snprintf(p, sizeof p, "%s/notimage.png", dir);
    FILE *f = fopen(p, "w");
    fputs("hello", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/prompts.txt", dir);
    f = fopen(p, "w");
    fputs("a photo of *\n@ on a beach\nan oil painting of * and @\n", f);
    fclose(f);
    return 0;
}

static const char *const BASE = "--embedding_path %s/star.pt %s/at.safetensors --H 64 --W 96 "
                                "--ddim_steps 4 --n_samples 2 --n_iter 1 --seed 5";

TEST(writes_pngs_same_bytes_for_same_seed) {
    char args[2048], err[4096], a[512], b[512];
    snprintf(args, sizeof args, BASE, dir, dir);
    char full[4096];
    snprintf(full, sizeof full, "%s --prompt 'a photo of * with @' --outdir %s/out1", args, dir);
    CHECK(run(full, err, sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    CHECK(!strstr(err, "tokens long")); /* a short prompt: no warning */
    CHECK(exists("%s/out1/samples/00000.png%s", ""));
    CHECK(exists("%s/out1/samples/00001.png%s", ""));
    CHECK(!exists("%s/out1/samples/00002.png%s", ""));
    CHECK(exists("%s/out1/grid-0000.png%s", ""));
    struct ti_image img = {0};
    struct ti_data_err de = {{0}};
    snprintf(a, sizeof a, "%s/out1/samples/00001.png", dir);
    CHECK(ti_image_load(&img, a, &de) == 0);
    CHECK(img.w == 96 && img.h == 64);
    ti_image_free(&img);
    snprintf(a, sizeof a, "%s/out1/grid-0000.png", dir);
    CHECK(ti_image_load(&img, a, &de) == 0);
    CHECK(img.w == 2 * (96 + 2) + 2 && img.h == 64 + 4); /* make_grid: 2 per row, 2 px pad */
    ti_image_free(&img);
    /* the settings in tEXt chunks */
    size_t n;
    snprintf(a, sizeof a, "%s/out1/samples/00000.png", dir);
    unsigned char *png = tu_read_file(a, &n);
    CHECK(n > 0 && memmem(png, n, "tEXtprompt\0a photo of * with @", 30) != NULL);
    CHECK(n > 0 && memmem(png, n,
                          "seed\0"
                          "5",
                          6) != NULL);
    CHECK(n > 0 && memmem(png, n, "sampler\0DDIM", 12) != NULL);
    CHECK(n > 0 && memmem(png, n, "star.pt", 7) != NULL);
    free(png);
    /* same seed, another folder: the same bytes; a second run in out1 continues the count */
    snprintf(full, sizeof full, "%s --prompt 'a photo of * with @' --outdir %s/out2", args, dir);
    CHECK(run(full, NULL, 0) == 0);
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/out1/samples/%05d.png", dir, i);
        snprintf(b, sizeof b, "%s/out2/samples/%05d.png", dir, i);
        CHECK(same_file(a, b));
    }
    snprintf(a, sizeof a, "%s/out1/samples/00000.png", dir);
    snprintf(b, sizeof b, "%s/out1/samples/00001.png", dir);
    CHECK(!same_file(a, b)); /* seeds 5 and 6 differ */
    snprintf(full, sizeof full, "%s --prompt 'a photo of * with @' --outdir %s/out1 --skip_grid",
             args, dir);
    CHECK(run(full, NULL, 0) == 0);
    CHECK(exists("%s/out1/samples/00003.png%s", ""));
    CHECK(!exists("%s/out1/grid-0001.png%s", ""));
    /* seed 6 alone reproduces the second image of the seed-5 run (image i uses seed + i); within
     * 2 levels: a batch of 1 instead of 2 changes the GEMMs' rounding */
    snprintf(full, sizeof full,
             "--embedding_path %s/star.pt %s/at.safetensors --H 64 --W 96 --ddim_steps 4 "
             "--n_samples 1 --n_iter 1 --seed 6 --prompt 'a photo of * with @' --outdir %s/out3",
             dir, dir, dir);
    CHECK(run(full, NULL, 0) == 0);
    snprintf(a, sizeof a, "%s/out3/samples/00000.png", dir);
    snprintf(b, sizeof b, "%s/out2/samples/00001.png", dir);
    CHECK(ti_image_load(&img, a, &de) == 0);
    struct ti_image img2 = {0};
    CHECK(ti_image_load(&img2, b, &de) == 0);
    int maxd = img.px && img2.px ? 0 : 999;
    for (int i = 0; img.px && img2.px && i < 96 * 64 * 3; i++)
        if (abs(img.px[i] - img2.px[i]) > maxd) maxd = abs(img.px[i] - img2.px[i]);
    CHECK(maxd <= 2);
    ti_image_free(&img);
    ti_image_free(&img2);
}

TEST(from_file_plms_eta_negative) {
    char full[4096], err[4096];
    snprintf(full, sizeof full,
             "--embedding_path %s/star.pt --embedding_path %s/at.safetensors --H 64 --W 64 "
             "--ddim_steps 6 --n_samples 2 --n_iter 2 --from-file %s/prompts.txt --plms "
             "--negative_prompt 'blurry' --outdir %s/out4",
             dir, dir, dir, dir);
    CHECK(run(full, err, sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    /* 3 prompts x 2 iterations, batches of 2 and 1 */
    CHECK(exists("%s/out4/samples/00005.png%s", ""));
    CHECK(!exists("%s/out4/samples/00006.png%s", ""));
    CHECK(exists("%s/out4/grid-0000.png%s", ""));
    snprintf(full, sizeof full,
             "--embedding_path %s/star.pt --H 64 --W 64 --ddim_steps 4 --n_samples 1 --n_iter 1 "
             "--ddim_eta 0.7 --scale 1 --prompt '*' --outdir %s/out5",
             dir, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(exists("%s/out5/samples/00000.png%s", ""));
}

/* The text encoder reads 75 tokens: ti-sample says when a prompt is longer, counting a learned
 * word as its vectors and naming the learned words that fall past the limit. */
TEST(long_prompt_warns) {
    char args[2048], full[8192], err[4096], words[512] = "";
    snprintf(args, sizeof args, BASE, dir, dir);
    for (int i = 0; i < 74; i++) /* 74 tokens: "a" is one token */
        strcat(words, "a ");
    /* 74 + '*' (1 vector) = 75: fits, no warning */
    snprintf(full, sizeof full, "%s --prompt '%s*' --outdir %s/long1", args, words, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(!strstr(err, "tokens long"));
    /* 74 + '@' (2 vectors) = 76: both vectors stay, EOS is pushed out (the reference cuts the
     * widened row at 77 tokens, BOS and EOS included) */
    snprintf(full, sizeof full, "%s --prompt '%s@' --outdir %s/long2", args, words, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(strstr(err, "warning: --prompt is 76 tokens long") != NULL);
    CHECK(!strstr(err, "Cut with it"));
    /* '@' + 73 + '@': the second '@' starts at slot 76 and keeps 1 of its 2 vectors */
    snprintf(full, sizeof full, "%s --prompt '@ %s@' --outdir %s/long2b", args, words + 2, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(strstr(err, "warning: --prompt is 77 tokens long") != NULL);
    CHECK(strstr(err, "Cut with it: the learned word '@' (1 of its 2 vectors kept)") != NULL);
    /* 75 + '@': the tokenizer's 75 tokens end before it, all of it is cut */
    snprintf(full, sizeof full, "%s --prompt '%sa @' --outdir %s/long2c", args, words, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(strstr(err, "Cut with it: the learned word '@'\n") != NULL);
    /* words past 75 with '*' among them, in the negative prompt too */
    snprintf(full, sizeof full,
             "%s --prompt '%s a a * a' --negative_prompt '%s%s' --outdir %s/long3", args, words,
             words, words, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(strstr(err, "warning: --prompt is 78 tokens long") != NULL);
    CHECK(strstr(err, "Cut with it: the learned word '*'") != NULL);
    CHECK(strstr(err, "it is token 77 of") && strstr(err, "past the 75 the text encoder reads"));
    CHECK(strstr(err, "warning: --negative_prompt is 148 tokens long") != NULL);
    if (tc_failures) fprintf(stderr, "%s", err);
}

TEST(img2img_size) {
    char full[4096], err[4096], a[512];
    snprintf(full, sizeof full,
             "--embedding_path %s/star.pt --init-img %s/init.png --strength 0.5 --ddim_steps 4 "
             "--n_samples 1 --prompt 'a photo of *' --outdir %s/out6",
             dir, dir, dir);
    CHECK(run(full, err, sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    CHECK(strstr(err, "target t_enc is 2 steps\n") != NULL); /* int(0.5 * 4), as the reference */
    snprintf(a, sizeof a, "%s/out6/samples/00000.png", dir);
    struct ti_image img = {0};
    struct ti_data_err de = {{0}};
    CHECK(ti_image_load(&img, a, &de) == 0);
    CHECK(img.w == 96 && img.h == 64);
    ti_image_free(&img);
    snprintf(full, sizeof full,
             "--init-img %s/init.png --strength 1.0 --ddim_steps 4 --n_samples 1 --outdir %s/out7",
             dir, dir);
    CHECK(run(full, err, sizeof err) == 0);
    CHECK(exists("%s/out7/samples/00000.png%s", ""));
    /* a strength under 1/steps denoises nothing, and --H/--W do not apply: both said */
    snprintf(full, sizeof full,
             "--init-img %s/init.png --strength 0.1 --ddim_steps 4 --n_samples 1 --H 128 --W 128 "
             "--outdir %s/out7",
             dir, dir);
    CHECK(run(full, err, sizeof err) == 0 && strstr(err, "target t_enc is 0 steps (") &&
          strstr(err, "--H/--W are not used with --init-img") && strstr(err, "96x64"));
}

/* one merged file gives the same images as the two files it merges */
TEST(merged_file) {
    char full[4096], err[4096], a[512], b[512];
    snprintf(full, sizeof full,
             "--embedding_path %s/merged.pt --H 64 --W 96 --ddim_steps 4 --n_samples 2 --n_iter 1 "
             "--seed 5 --prompt 'a photo of * with @' --outdir %s/out9 --skip_grid",
             dir, dir);
    CHECK(run(full, err, sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    struct ti_image x = {0}, y = {0};
    struct ti_data_err de = {{0}};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/out9/samples/%05d.png", dir, i);
        snprintf(b, sizeof b, "%s/out2/samples/%05d.png", dir, i);
        CHECK(ti_image_load(&x, a, &de) == 0 && ti_image_load(&y, b, &de) == 0);
        CHECK(x.px && y.px && x.w == y.w && x.h == y.h && !memcmp(x.px, y.px, 96 * 64 * 3));
        ti_image_free(&x);
        ti_image_free(&y);
    }
}

/* One 64x64 image of "a red circle" (2 DDIM steps, seed 3) from config + dir/<ckpt> into
 * dir/<out>/samples/00000.png; the exit status, stderr in err. */
static int sample_one(const char *config, const char *ckpt, const char *out, char *err,
                      size_t errcap) {
    char args[1024];
    snprintf(args, sizeof args,
             "--H 64 --W 64 --ddim_steps 2 --n_samples 1 --n_iter 1 --seed 3 "
             "--prompt 'a red circle' --skip_grid --outdir %s/%s",
             dir, out);
    return run_model(config, ckpt, args, err, errcap);
}

/* The pixels of dir/<out>/samples/00000.png equal (want_same) or not those of dir/<ref>/'s (the
 * PNGs' tEXt chunks name the model files, so the files themselves differ). */
static void check_same_pixels(const char *ref, const char *out, int want_same) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s/samples/00000.png", dir, ref);
    snprintf(b, sizeof b, "%s/%s/samples/00000.png", dir, out);
    struct ti_image x = {0}, y = {0};
    struct ti_data_err de = {{0}};
    CHECK(ti_image_load(&x, a, &de) == 0 && ti_image_load(&y, b, &de) == 0);
    CHECK(x.px && y.px && x.w == y.w && x.h == y.h);
    if (x.px && y.px && x.w == y.w && x.h == y.h)
        CHECK((memcmp(x.px, y.px, (size_t)x.w * x.h * 3) == 0) == want_same);
    ti_image_free(&x);
    ti_image_free(&y);
}

/* A lightning-style file whose UNet weights are zeros and whose model_ema.* copies are the real
 * ones: with use_ema: True (DDPM's default) the reference samples under ema_scope(), so from the
 * EMA copies, the same image as model.safetensors; with use_ema: False from the zeros. ti-sample
 * once ignored use_ema and always sampled from model.diffusion_model.*. */
TEST(config_use_ema) {
    char p[512], q[512], err[4096];
    struct ti_err e = {0};
    struct ti_state_dict *sd = NULL;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(ti_state_dict_open(&sd, p, NULL, &e), &e);
    if (!sd) return;
    size_t n = ti_state_dict_count(sd), k = 0, zn = 0;
    struct ti_st_entry *ent = calloc(2 * n, sizeof *ent);
    struct ti_tensor *zt = calloc(n, sizeof *zt);
    char **names = calloc(n, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        const struct ti_state_dict_entry *x = ti_state_dict_at(sd, i);
        int64_t m = ti_tensor_numel(&x->t);
        if (m > (int64_t)zn) zn = (size_t)m;
    }
    float *zeros = calloc(zn ? zn : 1, sizeof *zeros);
    for (size_t i = 0; i < n; i++) {
        const struct ti_state_dict_entry *x = ti_state_dict_at(sd, i);
        const char *pre = "model.diffusion_model.";
        if (strncmp(x->key, pre, strlen(pre))) {
            ent[k++] = (struct ti_st_entry){x->key, &x->t};
            continue;
        }
        names[i] = calloc(strlen(x->key) + 32, 1);
        strcpy(names[i], "model_ema.diffusion_model");
        size_t l = strlen(names[i]);
        for (const char *c = x->key + strlen(pre); *c; c++)
            if (*c != '.') names[i][l++] = *c;
        ent[k++] = (struct ti_st_entry){names[i], &x->t};
        zt[i] = ti_tensor_view(zeros, TI_DTYPE_F32, TI_DEVICE_CPU, x->t.ndim, x->t.shape);
        ent[k++] = (struct ti_st_entry){x->key, &zt[i]};
    }
    snprintf(q, sizeof q, "%s/ema.safetensors", dir);
    CHECK_OK(ti_safetensors_write(q, ent, k, NULL, 0, &e), &e);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(zeros);
    free(zt);
    free(ent);
    ti_state_dict_close(sd);
    /* the tiny inference config with use_ema: True */
    size_t cn;
    char *cfg = tu_read_file("configs/tiny/sd-tiny-inference.yaml", &cn);
    char *u = cfg ? strstr(cfg, "use_ema: False") : NULL;
    CHECK(u != NULL);
    if (!u) {
        free(cfg);
        return;
    }
    memcpy(u, "use_ema: True ", 14);
    snprintf(p, sizeof p, "%s/ema.yaml", dir);
    FILE *f = fopen(p, "w");
    fwrite(cfg, 1, cn, f);
    fclose(f);
    free(cfg);
    const char *tiny = "configs/tiny/sd-tiny-inference.yaml";
    CHECK(sample_one(tiny, "model.safetensors", "ema_ref", err, sizeof err) == 0);
    CHECK(sample_one(p, "ema.safetensors", "ema_on", err, sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    CHECK(sample_one(tiny, "ema.safetensors", "ema_off", err, sizeof err) == 0);
    check_same_pixels("ema_ref", "ema_on", 1);
    check_same_pixels("ema_ref", "ema_off", 0);
}

/* dir/<name>: model.safetensors plus an "alphas_cumprod" buffer of n values in dtype dt (f32 or
 * f16) rounded from vals, as a lightning checkpoint (or its half-precision export) holds it. */
static void write_with_schedule(const char *name, const float *vals, int n, enum ti_dtype dt) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/model.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    uint16_t h[1000];
    for (int i = 0; i < n; i++)
        h[i] = ti_f32_to_f16(vals[i]);
    struct ti_tensor buf = ti_tensor_view(dt == TI_DTYPE_F16 ? (void *)h : (void *)vals, dt,
                                          TI_DEVICE_CPU, 1, (int64_t[]){n});
    const char *key = "alphas_cumprod";
    tio_safetensors_plus(src, dst, &key, &buf, 1);
}

/* The schedule buffers a checkpoint stores replace the config's, as the reference's
 * load_state_dict(strict=False) does: a float32 alphas_cumprod of the config's own schedule
 * changes nothing; a float16-rounded one (a half-precision export) is what the DDIM schedule
 * uses, and ti-sample says so; one of another length is left out, with a note. */
TEST(file_schedule_buffers) {
    struct ti_err e = {0};
    struct ti_config cfg;
    const char *cpath = "configs/tiny/sd-tiny-inference.yaml";
    CHECK_OK(ti_config_load(&cfg, &cpath, 1, NULL, 0, &e), &e);
    struct ti_schedule s;
    CHECK_OK(ti_schedule_init(&s, &cfg.model, &e), &e);
    if (s.T != 1000) return;
    write_with_schedule("sched32.safetensors", s.alphas_cumprod_f32, s.T, TI_DTYPE_F32);
    write_with_schedule("sched16.safetensors", s.alphas_cumprod_f32, s.T, TI_DTYPE_F16);
    write_with_schedule("sched500.safetensors", s.alphas_cumprod_f32, 500, TI_DTYPE_F32);

    /* the loader reads the buffer; the DDIM schedule takes the file's float16-rounded values */
    struct ti_ldm m;
    char p[512];
    snprintf(p, sizeof p, "%s/sched16.safetensors", dir);
    CHECK_OK(ti_ldm_init(&m, &cfg, &e), &e);
    CHECK_OK(ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &e), &e);
    CHECK_OK(ti_ldm_load_file(&m, p, NULL, "SD v1", &e), &e);
    CHECK(m.file_sched.have == TI_LDM_BUF_ALPHAS_CUMPROD && m.file_sched.T == 1000);
    struct ti_schedule s16 = s;
    char note[1024];
    CHECK(ti_schedule_use_file(&s16, &m.file_sched, p, note, sizeof note) == 1);
    CHECK(strstr(note, "stores its diffusion schedule") != NULL);
    struct ti_ddim_schedule d;
    CHECK_OK(ti_ddim_schedule_init(&d, &s16, 4, 0.0, &e), &e);
    int differs = 0;
    for (int i = 0; i < d.n; i++) {
        float want = ti_f16_to_f32(ti_f32_to_f16(s.alphas_cumprod_f32[d.timesteps[i]]));
        CHECK(d.alphas[i] == want);
        differs |= want != s.alphas_cumprod_f32[d.timesteps[i]];
    }
    CHECK(differs);
    ti_ldm_free(&m);

    char err[4096];
    CHECK(sample_one(cpath, "model.safetensors", "sched_ref", err, sizeof err) == 0);
    CHECK(sample_one(cpath, "sched32.safetensors", "sched32", err, sizeof err) == 0);
    CHECK(strstr(err, "diffusion schedule") == NULL);
    check_same_pixels("sched_ref", "sched32", 1);
    CHECK(sample_one(cpath, "sched16.safetensors", "sched16", err, sizeof err) == 0);
    CHECK(strstr(err, "stores its diffusion schedule (alphas_cumprod) up to") != NULL);
    check_same_pixels("sched_ref", "sched16", 0);
    CHECK(sample_one(cpath, "sched500.safetensors", "sched500", err, sizeof err) == 0);
    CHECK(strstr(err, "stores a 500-step diffusion schedule") != NULL);
    check_same_pixels("sched_ref", "sched500", 1);
}

/* the LDM config (BERT, WordPiece): its script's defaults (n_samples 4, n_iter 1) */
TEST(ldm_config) {
    char full[4096], err[4096];
    snprintf(full, sizeof full,
             "--embedding_path %s/star.pt --H 64 --W 64 --ddim_steps 4 --prompt 'a photo of *' "
             "--outdir %s/out8",
             dir, dir);
    CHECK(run_model("configs/tiny/ldm-tiny-eval_with_tokens.yaml", "ldm.safetensors", full, err,
                    sizeof err) == 0);
    if (err[0]) fprintf(stderr, "%s", err);
    CHECK(exists("%s/out8/samples/00003.png%s", ""));
    CHECK(!exists("%s/out8/samples/00004.png%s", ""));
}

/* bad input: exit status, a message naming the culprit, and no output folder */
static void refused(const char *extra, int want_rc, const char *needle) {
    char full[4096], err[4096];
    snprintf(full, sizeof full, "%s --outdir %s/bad", extra, dir);
    int rc = run(full, err, sizeof err);
    CHECK(rc == want_rc);
    CHECK(strstr(err, needle) != NULL);
    CHECK(!exists("%s/bad%s", ""));
    if (rc != want_rc || !strstr(err, needle))
        fprintf(stderr, "for [%s]: rc %d, stderr: %s\n", extra, rc, err);
}

TEST(bad_input) {
    char x[1024];
    snprintf(x, sizeof x, "--embedding_path %s/missing.pt", dir);
    refused(x, 1, "missing.pt");
    snprintf(x, sizeof x, "--embedding_path %s/narrow.pt --H 64 --W 64", dir);
    refused(x, 1, "narrow.pt");
    snprintf(x, sizeof x, "--embedding_path %s/star.pt %s/star2.pt --H 64 --W 64", dir, dir);
    refused(x, 1, "star2.pt");
    refused("--H 60 --W 64", 2, "--H 60");
    refused("--H 72 --W 64", 2, "multiples of 16");
    refused("--ddim_steps 0 --H 64 --W 64", 2, "--ddim_steps");
    refused("--ddim_steps 9 --H 64 --W 64", 2, "8 or 10");
    refused("--plms --ddim_eta 0.5", 2, "PLMS");
    refused("--bogus 3", 2, "--bogus");
    /* argparse: an option is never a value (it sampled the prompt "--skip_grid") */
    refused("--prompt --skip_grid", 2,
            "--prompt expected one argument, not the option '--skip_grid'");
    refused("--scale x", 2, "--scale needs a number");
    snprintf(x, sizeof x, "--init-img %s/init.png --strength 1.5", dir);
    refused(x, 2, "--strength");
    snprintf(x, sizeof x, "--init-img %s/notimage.png", dir);
    refused(x, 1, "notimage.png");
    snprintf(x, sizeof x, "--init-img %s/nothere.png", dir);
    refused(x, 1, "nothere.png");
    refused("--prompt '* ok' --H 64 --W 64 --embedding_path /nonexistent/dir/e.pt", 1, "e.pt");
    snprintf(x, sizeof x, "--from-file %s/nofile.txt --H 64 --W 64", dir);
    refused(x, 1, "nofile.txt");
}

/* What users get wrong, said before any sampling: a NaN embedding, a prompt that is not UTF-8,
 * an --outdir that is a file; and, while sampling, a learned word the tokenizer joins with its
 * neighbours ("*," is one token), and an existing numbered file, which is never overwritten. */
TEST(user_mistakes_named) {
    char x[2048], p[512], err[4096];
    float v[32];
    for (int i = 0; i < 32; i++)
        v[i] = i == 7 ? NAN : 0.1f * (float)i;
    snprintf(p, sizeof p, "%s/nan.pt", dir);
    CHECK(etu_write_one(p, "*", 1, 32, v, TI_EMB_A1111) == 0);
    snprintf(x, sizeof x, "--embedding_path %s/nan.pt --H 64 --W 64 --prompt '*'", dir);
    refused(x, 1, "hold NaN (vector 0, element 7)");
    /* argparse's abbreviations: a prefix of one option is that option (--emb, --prom: the run
     * gets as far as the embedding); a prefix of several is refused, naming them */
    snprintf(x, sizeof x, "--emb %s/nan.pt --H 64 --W 64 --prom '*'", dir);
    refused(x, 1, "hold NaN (vector 0, element 7)");
    refused("--pr x --H 64 --W 64", 2, "ambiguous option: --pr could match --prompt, --precision");
    refused("--prompt=x --n_s=1 --H 64 --W 64 --n 2", 2,
            "--n could match --negative_prompt, --n_samples, --n_iter, --n_rows, --no-watermark");
    snprintf(p, sizeof p, "%s/latin1.txt", dir);
    FILE *f = fopen(p, "wb");
    fputs("a photo\nof a caf\xe9\n", f);
    fclose(f);
    snprintf(x, sizeof x, "--from-file %s --H 64 --W 64", p);
    refused(x, 1, "prompt 2 is not valid UTF-8");
    snprintf(p, sizeof p, "%s/afile", dir);
    f = fopen(p, "w");
    fclose(f);
    snprintf(x, sizeof x, "--prompt x --H 64 --W 64 --ddim_steps 4 --outdir %s", p);
    CHECK(run(x, err, sizeof err) == 1 && strstr(err, "exists and is not a folder"));
    /* samples/00000.png and 00002.png exist (2 entries): the next sample skips 00002 */
    snprintf(p, sizeof p, "%s/gap/samples", dir);
    snprintf(x, sizeof x, "mkdir -p %s && touch %s/00000.png %s/00002.png", p, p, p);
    CHECK(system(x) == 0);
    snprintf(x, sizeof x,
             "--embedding_path %s/star.pt --H 64 --W 64 --ddim_steps 4 --n_samples 1 --n_iter 1 "
             "--prompt 'a photo of *, at night' --outdir %s/gap",
             dir, dir);
    CHECK(run(x, err, sizeof err) == 0);
    CHECK(strstr(err, "the learned word '*'") && strstr(err, "put spaces around it") &&
          strstr(err, "(\"*,\" is one token)"));
    struct stat st;
    snprintf(p, sizeof p, "%s/gap/samples/00002.png", dir);
    CHECK(stat(p, &st) == 0 && st.st_size == 0); /* not overwritten */
    CHECK(exists("%s/gap/samples/00003.png%s", ""));
    CHECK(exists("%s/gap/grid-0000.png%s", ""));
    /* the same word with spaces around it: no warning */
    snprintf(x, sizeof x,
             "--embedding_path %s/star.pt --H 64 --W 64 --ddim_steps 4 --n_samples 1 --n_iter 1 "
             "--prompt 'a photo of * , at night' --outdir %s/gap",
             dir, dir);
    CHECK(run(x, err, sizeof err) == 0 && !strstr(err, "the learned word"));
    /* the token named is the one the tokenizer made ("*." here, not "*,") */
    snprintf(x, sizeof x,
             "--embedding_path %s/star.pt --H 64 --W 64 --ddim_steps 4 --n_samples 1 --n_iter 1 "
             "--prompt 'a photo of *.' --outdir %s/gap",
             dir, dir);
    CHECK(run(x, err, sizeof err) == 0 && strstr(err, "(\"*.\" is one token)"));
}

/* Without --config, the default (configs/stable-diffusion/v1-inference.yaml) is found beside the
 * tool when the working folder has no configs/: the run gets past the config to the --ckpt check
 * (a missing config would be named first). A --config given is never looked for elsewhere. */
TEST(default_config_from_any_folder) {
    char cmd[2048], err[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s --ckpt %s/none.ckpt --prompt a --outdir %s/dc", dir,
             tool, dir, dir);
    int rc = tu_run_capture(cmd, dir, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "--ckpt") && strstr(err, "none.ckpt") && !strstr(err, "--config"));
    if (!strstr(err, "--ckpt")) fprintf(stderr, "stderr: %s\n", err);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s --config configs/stable-diffusion/v1-inference.yaml --ckpt %s/none.ckpt "
             "--prompt a --outdir %s/dc",
             dir, tool, dir, dir);
    rc = tu_run_capture(cmd, dir, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "--config configs/stable-diffusion/v1-inference.yaml"));
    CHECK(!exists("%s/dc%s", ""));
}

TEST(help_lists_every_flag) {
    char cmd[1024], out[16384];
    snprintf(cmd, sizeof cmd, "%s --help > %s/help.txt", tool, dir);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s/help.txt", dir);
    FILE *f = fopen(cmd, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    static const char *const flags[] = {"--prompt",
                                        "--outdir",
                                        "--skip_grid",
                                        "--skip_save",
                                        "--ddim_steps",
                                        "--plms",
                                        "--fixed_code",
                                        "--ddim_eta",
                                        "--n_iter",
                                        "--H",
                                        "--W",
                                        "--C",
                                        "--f",
                                        "--n_samples",
                                        "--n_rows",
                                        "--scale",
                                        "--from-file",
                                        "--config",
                                        "--ckpt",
                                        "--ckpt_path",
                                        "--seed",
                                        "--precision",
                                        "--embedding_path",
                                        "--device",
                                        "--negative_prompt",
                                        "--init-img",
                                        "--strength",
                                        NULL};
    for (int i = 0; flags[i]; i++)
        if (!strstr(out, flags[i])) {
            fprintf(stderr, "--help does not mention %s\n", flags[i]);
            CHECK(0);
        }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_ti_sample PATH/TO/ti-sample\n");
        return 2;
    }
    tool = argv[1];
    if (tu_mkdtemp(dir, sizeof dir, "ti_test_sample") != 0) return 1;
    if (setup() != 0) return 1;
    RUN(help_lists_every_flag);
    RUN(bad_input);
    RUN(user_mistakes_named);
    RUN(default_config_from_any_folder);
    RUN(writes_pngs_same_bytes_for_same_seed);
    RUN(merged_file);
    RUN(from_file_plms_eta_negative);
    RUN(long_prompt_warns);
    RUN(img2img_size);
    RUN(ldm_config);
    RUN(config_use_ema);
    RUN(file_schedule_buffers);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (tc_failures == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tc_finish();
}
