/*
 * ti_sample.c - `ti-sample`: text-to-image (and image-to-image) sampling with learned embeddings,
 * the flags of the reference scripts (CompVis scripts/txt2img.py and img2img.py, the peer's
 * stable_txt2img.py / txt2img.py; ti-peer.md §7, sd-arch.md §8).
 *
 * Seeds users can share: image i of a run (counted over every iteration and batch) draws from
 * its own PyTorch CPU generator seeded seed + i: x_T = torch.randn([C, H/f, W/f], generator),
 * then (eta > 0) the DDIM noise of each step; for img2img the posterior noise first, then the
 * forward noise. With --fixed_code image j of every batch reuses seed + j.
 *
 * After decoding, as the reference txt2img: the safety checker (--safety_checker; flagged images
 * become black), then the invisible watermark on each saved sample (a marked copy; the grid is
 * made from the unmarked images and marked once); img2img and images below 256x256 unmarked.
 * The PNG tEXt entries `watermark` and `safety_check` record what was done (docs/SAMPLING.md).
 *
 * Every check (flags, files, embeddings, init image, checker, model, step count) runs before the
 * first step; nothing is written until they pass, and every PNG appears whole (temp file +
 * rename).
 * Exit status: 0 ok, 1 run-time error (files, model, sampling), 2 usage error.
 * Not here: the sampler (sampler.h), embeddings (embedding_manager.h), images (data/image.h),
 * the checker (model/safety_checker.h), the mark (data/watermark.h).
 */
#include <errno.h>    /* defines: errno */
#include <signal.h>   /* defines: sigprocmask, SIGINT */
#include <stdint.h>   /* defines: uint64_t */
#include <stdio.h>    /* defines: printf, fprintf, snprintf */
#include <stdlib.h>   /* defines: strtod, strtoll, malloc, free */
#include <string.h>   /* defines: strcmp, strlen */
#include <sys/stat.h> /* defines: mkdir, stat */
#include <unistd.h>   /* defines: isatty */

#ifdef TI_HAVE_DATA
#include <dirent.h> /* defines: opendir, readdir */

#include "cli.h"             /* defines: ti_cli_next_value, ti_cli_split_eq */
#include "clip_preprocess.h" /* defines: ti_clip_image_from_chw, ti_clip_preprocess */
#include "cpu_info.h"        /* defines: ti_cpu_describe */
#include "embedding_manager.h"
#include "fileio.h" /* defines: ti_find_beside_tool */
#include "image.h"
#include "ldm.h"
#include "metrics.h"        /* defines: ti_now_seconds */
#include "safety_checker.h" /* defines: ti_safety_checker_load, ti_safety_checker_run */
#include "sampler.h"
#include "schedule.h"
#include "tokenizer.h"
#include "unicode.h"   /* defines: ti_utf8_valid */
#include "watermark.h" /* defines: ti_watermark_encode, TI_WATERMARK_SD_TEXT */
#endif

#define TOOL     "ti-sample"
#define MAX_EMB  64
#define SEQ_LEN  77
#define MAX_TEXT (1 << 20) /* prompt bytes; the tokenizer keeps the first 75 tokens */

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: ti-sample [--prompt TEXT] [--embedding_path FILE...] [--ckpt FILE] [--config "
        "YAML]\n"
        "                 [--outdir DIR] [options]\n"
        "\n"
        "Samples images from a Stable Diffusion v1 or LDM text2img-large checkpoint with learned\n"
        "textual-inversion embeddings, as the reference txt2img / img2img scripts do.\n"
        "\n"
        "Prompt and embeddings\n"
        "  --prompt TEXT          the prompt (default \"a painting of a virus monster playing\n"
        "                         guitar\"); placeholders such as * are the embeddings' words\n"
        "  --from-file FILE       prompts, one per line, sampled in batches of --n_samples\n"
        "  --negative_prompt TEXT the unconditional prompt of classifier-free guidance\n"
        "                         (default: the empty prompt, as the reference)\n"
        "  --embedding_path FILE... one or more embedding files (AUTOMATIC1111 .pt, the peer's\n"
        "                         embeddings.pt, diffusers learned_embeds or its folder, kohya);\n"
        "                         the flag may also be repeated. Several placeholders may\n"
        "                         appear in a prompt.\n"
        "Model\n"
        "  --config YAML          model config (default "
        "configs/stable-diffusion/v1-inference.yaml)\n"
        "  --ckpt FILE            checkpoint (.ckpt, .safetensors, diffusers folder)\n"
        "                         (default models/ldm/stable-diffusion-v1/model.ckpt)\n"
        "  --ckpt_path FILE       the same (the peer's LDM script's name); without --config\n"
        "                         it selects that script's config,\n"
        "                         configs/latent-diffusion/txt2img-1p4B-eval_with_tokens.yaml\n"
        "  --device cpu|cuda      where to run (default cuda when a GPU is present, else cpu)\n"
        "  --precision autocast|full  autocast: float16 on cuda (float32 on cpu); full: float32\n"
        "                         (default autocast)\n"
        "Sampling\n"
        "  --ddim_steps N         DDIM steps (default 50; 200 for an LDM config). The reference's\n"
        "                         uniform schedule may take one more (6 -> 7); counts it cannot\n"
        "                         run (e.g. 9) are refused with the nearest that work\n"
        "  --plms                 the PLMS sampler instead of DDIM (needs --ddim_eta 0)\n"
        "  --laion400m            LDM text2img-large as the SD scripts (their --config, --ckpt\n"
        "                         and --outdir for it; their other defaults)\n"
        "  --ddim_eta X           DDIM eta (default 0.0: deterministic)\n"
        "  --scale X              guidance scale (default 7.5; 5.0 for LDM and img2img);\n"
        "                         1 skips the unconditional pass\n"
        "  --seed N               image i of the run uses a PyTorch CPU generator seeded N + i\n"
        "                         (default 42)\n"
        "  --fixed_code           image j of every batch starts from the same noise (seed + j)\n"
        "  --n_samples N          images per batch (default 3; 4 for LDM; 2 for img2img)\n"
        "  --n_iter N             times each batch is sampled (default 2; 1 for LDM and img2img)\n"
        "  --H N, --W N           image height and width in pixels (default 512; 256 for LDM),\n"
        "                         multiples of 8 that the UNet can halve down to its last level\n"
        "  --C N                  latent channels (default: the model's, 4)\n"
        "  --f N                  downsampling factor (default: the model's, 8)\n"
        "img2img\n"
        "  --init-img FILE        start from this image (EXIF orientation applied and\n"
        "                         transparency put on white (ti); sides cut down to multiples\n"
        "                         of 32 with Lanczos as the reference; the output has that\n"
        "                         size; DDIM only)\n"
        "  --strength X           0..1, how much of the schedule is re-noised (default 0.75;\n"
        "                         1.0 starts from pure noise)\n"
        "Output\n"
        "  --outdir DIR           default outputs/txt2img-samples (outputs/img2img-samples)\n"
        "  --skip_save            do not write the single images (DIR/samples/NNNNN.png)\n"
        "  --skip_grid            do not write the grid (DIR/grid-NNNN.png)\n"
        "  --n_rows N             images per grid row (default --n_samples)\n");
    fprintf(
        f,
        "  --no-watermark         do not mark the images (default: txt2img marks every PNG of\n"
        "                         256x256 pixels or more with the reference's invisible\n"
        "                         watermark, the bytes \"StableDiffusionV1\"; img2img marks "
        "nothing,\n"
        "                         as the reference; read it with ti-inspect IMAGE --watermark)\n"
        "Safety checker\n"
        "  --safety_checker PATH  run the reference's NSFW checker (CLIP ViT-L/14 + concept\n"
        "                         embeddings) on every image, on the CPU: PATH is its diffusers\n"
        "                         folder (e.g. CompVis/stable-diffusion-safety-checker), a\n"
        "                         pipeline folder with safety_checker/, or its .safetensors/.bin\n"
        "                         file. A flagged image is replaced by a black one. Without it no\n"
        "                         check is made (the run says so)\n"
        "  --help                 this text\n"
        "\n"
        "Each PNG records the prompt, negative prompt, seed, steps, scale, sampler, model file,\n"
        "embedding files, watermark and safety check in tEXt chunks.\n"
        "Numbering continues after the files already in DIR (none is overwritten).\n"
        "Exit status: 0 ok, 1 run-time error, 2 usage error.\n");
}

struct opts {
    const char *prompt, *outdir, *from_file, *config, *ckpt, *precision, *device, *negative;
    const char *init_img, *safety_checker;
    const char *emb[MAX_EMB];
    int no_watermark;
    int n_emb;
    int skip_grid, skip_save, plms, fixed_code;
    long long steps, n_iter, H, W, C, f, n_samples, n_rows;
    double eta, scale, strength;
    unsigned long long seed;
    /* 1 when given on the command line (LDM / img2img defaults apply to the others) */
    int has_steps, has_n_iter, has_H, has_W, has_n_samples, has_scale, has_outdir, has_strength;
    int has_config, ldm_flag; /* ldm_flag: --ckpt_path, the peer's LDM script's name */
    int laion;                /* --laion400m */
};

static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) return 0;
    *out = v;
    return 1;
}

/* 0 ok, 2 usage error (message printed) */
static int parse_args(struct opts *o, int argc, char **argv, int *help) {
    memset(o, 0, sizeof *o);
    o->prompt = "a painting of a virus monster playing guitar";
    o->outdir = "outputs/txt2img-samples";
    o->config = "configs/stable-diffusion/v1-inference.yaml";
    o->ckpt = "models/ldm/stable-diffusion-v1/model.ckpt";
    o->precision = "autocast";
    o->negative = "";
    o->steps = 50;
    o->n_iter = 2;
    o->H = o->W = 512;
    o->n_samples = 3;
    o->scale = 7.5;
    o->seed = 42;
    o->strength = 0.75;
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *a = argv[i], *val = NULL;
        if ((val = ti_cli_split_eq(a, flag, sizeof flag))) a = flag; /* --flag=value */
        static const char *const names[] = {"--prompt",
                                            "--from-file",
                                            "--negative_prompt",
                                            "--embedding_path",
                                            "--config",
                                            "--ckpt",
                                            "--ckpt_path",
                                            "--device",
                                            "--precision",
                                            "--ddim_steps",
                                            "--plms",
                                            "--laion400m",
                                            "--ddim_eta",
                                            "--scale",
                                            "--seed",
                                            "--fixed_code",
                                            "--n_samples",
                                            "--n_iter",
                                            "--H",
                                            "--W",
                                            "--C",
                                            "--f",
                                            "--init-img",
                                            "--strength",
                                            "--outdir",
                                            "--skip_save",
                                            "--skip_grid",
                                            "--n_rows",
                                            "--no-watermark",
                                            "--safety_checker",
                                            "--dpm_solver",
                                            "--help",
                                            NULL};
        if (!(a = ti_cli_expand(TOOL, a, names))) return 2; /* argparse's abbreviations */
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = 1;
            return 0;
        }
        static const char *const bools[] = {
            "--skip_grid",    "--skip_save",    "--plms",      "--fixed_code",
            "--no-watermark", "--no_watermark", "--laion400m", NULL};
        int is_bool = 0;
        for (int k = 0; bools[k]; k++)
            is_bool |= !strcmp(a, bools[k]);
        if (is_bool) {
            if (val) {
                fprintf(stderr, TOOL ": %s takes no value\n", a);
                return 2;
            }
            if (!strcmp(a, "--skip_grid"))
                o->skip_grid = 1;
            else if (!strcmp(a, "--skip_save"))
                o->skip_save = 1;
            else if (!strcmp(a, "--plms"))
                o->plms = 1;
            else if (!strcmp(a, "--laion400m"))
                o->laion = 1;
            else if (strstr(a, "watermark"))
                o->no_watermark = 1;
            else
                o->fixed_code = 1;
            continue;
        }
        if (!strcmp(a, "--embedding_path")) {
            int got = 0;
            if (val) {
                if (o->n_emb >= MAX_EMB) goto too_many;
                o->emb[o->n_emb++] = val;
                got = 1;
            }
            while (!val && i + 1 < argc && strncmp(argv[i + 1], "--", 2)) {
                if (o->n_emb >= MAX_EMB) goto too_many;
                o->emb[o->n_emb++] = argv[++i];
                got = 1;
            }
            if (!got) {
                fprintf(stderr, TOOL ": --embedding_path needs at least one file\n");
                return 2;
            }
            continue;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, TOOL ": unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--dpm_solver")) {
            fprintf(stderr, TOOL ": --dpm_solver is not available; sample with DDIM (the default) "
                                 "or --plms\n");
            return 2;
        }
        static const char *const valued[] = {"--prompt",
                                             "--outdir",
                                             "--from-file",
                                             "--config",
                                             "--ckpt",
                                             "--ckpt_path",
                                             "--negative_prompt",
                                             "--init-img",
                                             "--init_img",
                                             "--precision",
                                             "--device",
                                             "--seed",
                                             "--ddim_eta",
                                             "--scale",
                                             "--strength",
                                             "--ddim_steps",
                                             "--n_iter",
                                             "--H",
                                             "--W",
                                             "--C",
                                             "--f",
                                             "--n_samples",
                                             "--n_rows",
                                             "--safety_checker",
                                             "--safety-checker",
                                             NULL};
        int known = 0;
        for (int k = 0; valued[k]; k++)
            known |= !strcmp(a, valued[k]);
        if (!known) {
            fprintf(stderr, TOOL ": unknown flag '%s' (see --help)\n", a);
            return 2;
        }
        if (!val) {
            if (!(val = ti_cli_next_value(TOOL, argc, argv, i))) return 2;
            i++;
        }
        long long n;
        double d;
        if (!strcmp(a, "--prompt"))
            o->prompt = val;
        else if (!strcmp(a, "--outdir"))
            o->outdir = val, o->has_outdir = 1;
        else if (!strcmp(a, "--from-file"))
            o->from_file = val;
        else if (!strcmp(a, "--config"))
            o->config = val, o->has_config = 1;
        else if (!strcmp(a, "--ckpt") || !strcmp(a, "--ckpt_path"))
            o->ckpt = val, o->ldm_flag |= !strcmp(a, "--ckpt_path");
        else if (!strcmp(a, "--negative_prompt"))
            o->negative = val;
        else if (!strcmp(a, "--init-img") || !strcmp(a, "--init_img"))
            o->init_img = val;
        else if (!strcmp(a, "--safety_checker") || !strcmp(a, "--safety-checker"))
            o->safety_checker = val;
        else if (!strcmp(a, "--precision")) {
            if (strcmp(val, "autocast") && strcmp(val, "full")) {
                fprintf(stderr, TOOL ": --precision must be autocast or full, not '%s'\n", val);
                return 2;
            }
            o->precision = val;
        } else if (!strcmp(a, "--device")) {
            if (strcmp(val, "cpu") && strcmp(val, "cuda")) {
                fprintf(stderr, TOOL ": --device must be cpu or cuda, not '%s'\n", val);
                return 2;
            }
            o->device = val;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_ll(val, 0, INT64_MAX, &n)) {
                fprintf(stderr, TOOL ": --seed needs a non-negative integer, not '%s'\n", val);
                return 2;
            }
            o->seed = (unsigned long long)n;
        } else if (!strcmp(a, "--ddim_eta") || !strcmp(a, "--scale") || !strcmp(a, "--strength")) {
            if (!parse_double(val, &d)) {
                fprintf(stderr, TOOL ": %s needs a number, not '%s'\n", a, val);
                return 2;
            }
            if (!strcmp(a, "--ddim_eta"))
                o->eta = d;
            else if (!strcmp(a, "--scale"))
                o->scale = d, o->has_scale = 1;
            else
                o->strength = d, o->has_strength = 1;
        } else {
            static const char *const ints[] = {"--ddim_steps", "--n_iter", "--H",
                                               "--W",          "--C",      "--f",
                                               "--n_samples",  "--n_rows", NULL};
            long long *dst[] = {&o->steps, &o->n_iter, &o->H,         &o->W,
                                &o->C,     &o->f,      &o->n_samples, &o->n_rows};
            int *has[] = {&o->has_steps, &o->has_n_iter, &o->has_H,         &o->has_W,
                          NULL,          NULL,           &o->has_n_samples, NULL};
            int k = 0;
            while (ints[k] && strcmp(a, ints[k]))
                k++;
            if (!ints[k]) {
                fprintf(stderr, TOOL ": unknown flag '%s' (see --help)\n", a);
                return 2;
            }
            if (!parse_ll(val, 0, 1 << 20, &n)) {
                fprintf(stderr, TOOL ": %s needs a non-negative integer, not '%s'\n", a, val);
                return 2;
            }
            *dst[k] = n;
            if (has[k]) *has[k] = 1;
        }
    }
    /* the peer's LDM script (txt2img.py, --ckpt_path) hard-codes its config */
    if (o->ldm_flag && !o->has_config)
        o->config = "configs/latent-diffusion/txt2img-1p4B-eval_with_tokens.yaml";
    /* the SD scripts' --laion400m: the LDM model with the SD script's other defaults; like the
     * reference it replaces --config, --ckpt and --outdir */
    if (o->laion) {
        o->config = "configs/latent-diffusion/txt2img-1p4B-eval.yaml";
        o->ckpt = "models/ldm/text2img-large/model.ckpt";
        o->outdir = "outputs/txt2img-samples-laion400m";
        o->has_steps = o->has_n_iter = o->has_H = o->has_W = o->has_n_samples = o->has_scale = 1;
    }
    return 0;
too_many:
    fprintf(stderr, TOOL ": more than %d embedding files\n", MAX_EMB);
    return 2;
}

/* Checks that need no file; 0 ok, 2 usage error (message printed). */
static int check_args(const struct opts *o) {
    if (!o->outdir[0] || !o->config[0] || !o->ckpt[0]) {
        fprintf(stderr, TOOL ": --%s must not be empty\n",
                !o->outdir[0]   ? "outdir"
                : !o->config[0] ? "config"
                                : "ckpt");
        return 2;
    }
    if (o->steps < 1) {
        fprintf(stderr, TOOL ": --ddim_steps must be at least 1 (got %lld)\n", o->steps);
        return 2;
    }
    if (o->n_samples < 1 || o->n_samples > 256 || o->n_iter < 1) {
        fprintf(stderr, TOOL ": --n_samples must be 1..256 and --n_iter at least 1\n");
        return 2;
    }
    if (!o->init_img && (o->H % 8 || o->W % 8 || o->H < 8 || o->W < 8)) {
        fprintf(stderr, TOOL ": --H %lld --W %lld: both must be positive multiples of 8\n", o->H,
                o->W);
        return 2;
    }
    if (!(o->eta >= 0)) {
        fprintf(stderr, TOOL ": --ddim_eta must be >= 0 (got %g)\n", o->eta);
        return 2;
    }
    if (o->plms && o->eta != 0) {
        fprintf(stderr, TOOL ": --plms needs --ddim_eta 0 (the reference: ddim_eta must be 0 for "
                             "PLMS)\n");
        return 2;
    }
    if (o->plms && o->init_img) {
        fprintf(stderr, TOOL ": --init-img (img2img) samples with DDIM; drop --plms\n");
        return 2;
    }
    if (o->has_strength && !o->init_img) {
        fprintf(stderr, TOOL ": --strength needs --init-img\n");
        return 2;
    }
    if (!(o->strength >= 0 && o->strength <= 1)) {
        fprintf(stderr, TOOL ": --strength must be in [0, 1] (got %g)\n", o->strength);
        return 2;
    }
    /* any finite number, as the reference's argparse float (negative: away from the prompt) */
    if (!(o->scale >= -1e30 && o->scale <= 1e30)) {
        fprintf(stderr, TOOL ": --scale must be a finite number (got %g)\n", o->scale);
        return 2;
    }
    if (strlen(o->prompt) >= MAX_TEXT || strlen(o->negative) >= MAX_TEXT) {
        fprintf(stderr, TOOL ": prompts are limited to %d bytes\n", MAX_TEXT - 1);
        return 2;
    }
    return 0;
}

#ifndef TI_HAVE_DATA
int main(int argc, char **argv) {
    struct opts o;
    int help = 0, rc = parse_args(&o, argc, argv, &help);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = check_args(&o);
    if (rc) return rc;
    fprintf(stderr, TOOL ": this build has no image support (data/ needs the stb headers, Debian "
                         "libstb-dev); rebuild with them to sample\n");
    return 1;
}
#else

/* ---- run state ----------------------------------------------------------------------------- */

struct run {
    struct opts o;
    struct ti_config cfg;
    struct ti_ldm m;
    int model_ok;
    struct ti_tokenizer *tok;
    struct ti_emb_manager em;
    int em_ok;
    struct ti_embedding embs[MAX_EMB];
    int n_embs;
    struct ti_schedule sched;
    struct ti_ddim_schedule *dsch; /* of --ddim_steps and --ddim_eta, made once at setup */
    const struct ti_backend *be;
    enum ti_dtype dt;
    struct ti_ctx ctx;
    int ctx_ok;
    char **prompts; /* every prompt of the run (from the file or n_samples copies) */
    int n_prompts;
    char *file_text;
    struct ti_image init; /* img2img, resized */
    int latent_h, latent_w, C, f;
    /* the safety checker (--safety_checker): float32 on the CPU, as the reference runs it */
    struct ti_safety_checker sc;
    struct ti_weights sc_w;
    struct ti_ctx sc_ctx;
    int sc_ok, sc_ctx_ok;
    double sc_seconds; /* time spent in the checker (preprocessing included) */
    int mark;          /* 1: watermark the PNGs that fit */
    char emb_list[4096];
    int tty;
    int batch_k, batch_total;
    double t0;
};

static int fail(struct ti_err *err, const char *what) {
    fprintf(stderr, TOOL ": %s%s%s\n", what ? what : "", what ? ": " : "", err->msg);
    return 1;
}

/* Why a learned word written in `prompt` is not substituted, into why (": ..." or ""): the
 * 75-token limit cut it, or the tokenizer joined it with the characters beside it (naming the
 * token it made). */
static void why_unused(const struct run *r, const struct ti_emb_term *t, const char *prompt,
                       char *why, size_t cap) {
    int32_t *ids = NULL;
    size_t n = 0;
    struct ti_err e = {0};
    why[0] = 0;
    if (ti_tokenizer_tokenize(&ids, &n, r->tok, prompt, strlen(prompt), &e) != TI_OK) return;
    for (size_t i = 0; i < n && !why[0]; i++)
        if (ids[i] == t->token)
            snprintf(why, cap,
                     ": it is token %zu of \"%.60s%s\", past the %d the text encoder reads", i + 1,
                     prompt, strlen(prompt) > 60 ? "..." : "", TI_TOKENS_MAX - 2);
    for (size_t i = 0; i < n && !why[0]; i++) {
        char *text = NULL;
        if (ti_tokenizer_decode(&text, r->tok, &ids[i], 1, &e) != TI_OK || !text) {
            free(text);
            break;
        }
        const char *tx = text;
        while (*tx == ' ')
            tx++;
        if (strstr(tx, t->placeholder))
            snprintf(why, cap,
                     ": the tokenizer joins it with the characters beside it (\"%.40s\" is one "
                     "token); put spaces around it (\"a photo of %s , at night\")",
                     tx, t->placeholder);
        free(text);
    }
    free(ids);
}

/* The text encoders read 75 tokens (77 with BOS and EOS); a longer prompt loses its end, as in
 * the reference, which says nothing. A learned word counts as its vectors (the manager inserts
 * them after truncation, pushing the end out). Warns about `prompt`, naming the learned words
 * that fall past the limit; returns 1 when it warned. */
static int warn_long_prompt(const struct run *r, const char *what, const char *prompt) {
    int32_t *ids = NULL;
    size_t n = 0;
    struct ti_err e = {0};
    if (ti_tokenizer_tokenize(&ids, &n, r->tok, prompt, strlen(prompt), &e) != TI_OK) return 0;
    size_t used = 0, cl = 0;
    char cut[256] = "";
    for (size_t i = 0; i < n; i++) {
        const struct ti_emb_term *t = ti_emb_manager_find_token(&r->em, ids[i]);
        int k = t ? ti_emb_manager_term_vectors(&r->em, t) : 1;
        /* the tokenizer keeps 75 tokens; the manager then widens each learned word to its k
         * vectors at slot 1 + used and cuts the sequence at 77, EOS included: the word keeps
         * min(k, 76 - used) of them */
        long room = i < (size_t)(TI_TOKENS_MAX - 2) ? (long)(TI_TOKENS_MAX - 1) - (long)used : 0;
        int kept = room <= 0 ? 0 : room < k ? (int)room : k;
        if (t && kept < k && cl + 96 < sizeof cut && !strstr(cut, t->placeholder)) {
            int w =
                kept ? snprintf(cut + cl, sizeof cut - cl, "%s'%.40s' (%d of its %d vectors kept)",
                                cl ? ", " : "", t->placeholder, kept, k)
                     : snprintf(cut + cl, sizeof cut - cl, "%s'%.40s'", cl ? ", " : "",
                                t->placeholder);
            if (w > 0) cl += (size_t)w;
        }
        used += (size_t)k;
    }
    free(ids);
    if (used <= TI_TOKENS_MAX - 2) return 0;
    fprintf(stderr,
            TOOL ": warning: %s is %zu tokens long%s; the text encoder reads the first %d and "
                 "drops the rest, as the reference does%s%s\n",
            what, used, r->em.n_terms ? " (a learned word counts as its vectors)" : "",
            TI_TOKENS_MAX - 2, cl ? ". Cut with it: the learned word " : "", cut);
    return 1;
}

/* Counts the entries of a directory as os.listdir does (hidden ones too); -1 when it cannot be
 * read. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int make_dir(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The length of the line break at text[i] as Python's str.splitlines sees it, 0 for none. */
static size_t line_break(const char *text, size_t i, size_t n) {
    const unsigned char *t = (const unsigned char *)text;
    if (t[i] == '\r') return i + 1 < n && t[i + 1] == '\n' ? 2 : 1;
    if (t[i] == '\n' || t[i] == '\v' || t[i] == '\f' || (t[i] >= 0x1c && t[i] <= 0x1e)) return 1;
    if (t[i] == 0xc2 && i + 1 < n && t[i + 1] == 0x85) return 2;
    if (t[i] == 0xe2 && i + 2 < n && t[i + 1] == 0x80 && (t[i + 2] == 0xa8 || t[i + 2] == 0xa9))
        return 3;
    return 0;
}

static int read_prompts(struct run *r) {
    const struct opts *o = &r->o;
    if (!o->from_file) {
        r->n_prompts = (int)o->n_samples;
        r->prompts = calloc((size_t)r->n_prompts, sizeof *r->prompts);
        if (!r->prompts) return -1;
        for (int i = 0; i < r->n_prompts; i++)
            r->prompts[i] = (char *)o->prompt;
        return 0;
    }
    FILE *f = fopen(o->from_file, "rb");
    if (!f) {
        fprintf(stderr, TOOL ": --from-file %s: %s\n", o->from_file, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap + 1);
    size_t got;
    while (text && (got = fread(text + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *t2 = realloc(text, 2 * cap + 1);
            if (!t2) {
                free(text);
                text = NULL;
                break;
            }
            text = t2;
            cap *= 2;
        }
    }
    int ioerr = ferror(f);
    fclose(f);
    if (!text || ioerr) {
        free(text);
        fprintf(stderr, TOOL ": --from-file %s: cannot be read\n", o->from_file);
        return -1;
    }
    text[n] = 0;
    r->file_text = text;
    /* Python's splitlines (after text-mode reading): \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085,
     * U+2028, U+2029; a last line without a break counts, an empty file holds none */
    int lines = 0;
    size_t s0 = 0;
    for (size_t i = 0; i < n;) {
        size_t k = line_break(text, i, n);
        i += k ? k : 1;
        if (k) lines++, s0 = i;
    }
    if (s0 < n) lines++;
    r->prompts = calloc((size_t)(lines ? lines : 1), sizeof *r->prompts);
    if (!r->prompts) return -1;
    s0 = 0;
    for (size_t i = 0; i < n;) {
        size_t k = line_break(text, i, n);
        if (!k) {
            i++;
            continue;
        }
        text[i] = 0;
        r->prompts[r->n_prompts++] = text + s0;
        i += k;
        s0 = i;
    }
    if (s0 < n) r->prompts[r->n_prompts++] = text + s0;
    if (r->n_prompts == 0) {
        fprintf(stderr, TOOL ": --from-file %s holds no prompt\n", o->from_file);
        return -1;
    }
    for (int i = 0; i < r->n_prompts; i++)
        if (!r->prompts[i] || strlen(r->prompts[i]) >= MAX_TEXT) {
            fprintf(stderr, TOOL ": --from-file %s: line %d is longer than %d bytes\n",
                    o->from_file, i + 1, MAX_TEXT - 1);
            return -1;
        }
    return 0;
}

/* Loads config, tokenizer, embeddings, init image, model; every check before sampling. */
static int prepare(struct run *r) {
    struct opts *o = &r->o;
    struct ti_err err = {0};
    struct stat stt;
    /* files first: the cheap checks before the model load; a default config that is not under
     * the working folder is looked for beside the tool (build/bin/../../configs/..., an
     * install's bin/../share/ti/configs/...), so ti-sample runs from any folder */
    static char found[4096];
    static const char *const beside[] = {"../..", "../share/ti", ".."};
    if (!o->has_config && stat(o->config, &stt) != 0 &&
        ti_find_beside_tool(o->config, beside, 3, found, sizeof found))
        o->config = found;
    if (stat(o->config, &stt) != 0) {
        fprintf(stderr, TOOL ": --config %s: %s\n", o->config, strerror(errno));
        return 1;
    }
    if (stat(o->ckpt, &stt) != 0) {
        fprintf(stderr, TOOL ": --ckpt %s: %s\n", o->ckpt, strerror(errno));
        return 1;
    }
    for (int i = 0; i < o->n_emb; i++)
        if (stat(o->emb[i], &stt) != 0) {
            fprintf(stderr, TOOL ": --embedding_path %s: %s\n", o->emb[i], strerror(errno));
            return 1;
        }
    if (ti_config_load(&r->cfg, &o->config, 1, NULL, 0, &err) != TI_OK)
        return fail(&err, o->config);
    if (ti_ldm_init(&r->m, &r->cfg, &err) != TI_OK) return fail(&err, o->config);
    r->model_ok = 1;
    int is_ldm = !r->m.text_is_clip;
    /* the LDM script's defaults (ti-peer.md §7.1), then img2img's (scripts/img2img.py) */
    if (is_ldm) {
        if (!o->has_steps) o->steps = 200;
        if (!o->has_n_iter) o->n_iter = 1;
        if (!o->has_H) o->H = 256;
        if (!o->has_W) o->W = 256;
        if (!o->has_n_samples) o->n_samples = 4;
        if (!o->has_scale) o->scale = 5.0;
    }
    if (o->init_img) {
        if (!o->has_scale) o->scale = 5.0;
        if (!o->has_n_iter) o->n_iter = 1;
        if (!o->has_n_samples) o->n_samples = 2;
        if (!o->has_outdir) o->outdir = "outputs/img2img-samples";
    }
    r->C = r->m.unet_hp.in_channels;
    r->f = 1 << (r->m.vae_hp.n_levels - 1);
    if (o->C && o->C != r->C) {
        fprintf(stderr, TOOL ": --C %lld: the model's latents have %d channels (%s)\n", o->C, r->C,
                o->config);
        return 2;
    }
    if (o->f && o->f != r->f) {
        fprintf(stderr, TOOL ": --f %lld: the model's autoencoder downsamples by %d (%s)\n", o->f,
                r->f, o->config);
        return 2;
    }
    if (ti_schedule_init(&r->sched, &r->cfg.model, &err) != TI_OK) return fail(&err, o->config);
    {
        r->dsch = malloc(sizeof *r->dsch);
        ti_status st = r->dsch
                           ? ti_ddim_schedule_init(r->dsch, &r->sched, (int)o->steps, o->eta, &err)
                           : TI_ERR_NOMEM;
        if (st != TI_OK) {
            fprintf(stderr, TOOL ": --%s\n", err.msg);
            return 2;
        }
    }
    /* img2img: the init image, EXIF-corrected, sides cut down to multiples of 32 (Lanczos) */
    if (o->init_img) {
        struct ti_data_err de = {{0}};
        struct ti_image raw = {0};
        if (ti_image_load(&raw, o->init_img, &de) != 0) {
            fprintf(stderr, TOOL ": --init-img: %s\n", de.msg);
            return 1;
        }
        int w = raw.w - raw.w % 32, h = raw.h - raw.h % 32;
        if (w < 32 || h < 32) {
            fprintf(stderr, TOOL ": --init-img %s is %dx%d; img2img needs at least 32x32\n",
                    o->init_img, raw.w, raw.h);
            ti_image_free(&raw);
            return 1;
        }
        int rc = ti_image_resize(&r->init, &raw, w, h, TI_RESAMPLE_LANCZOS, &de);
        ti_image_free(&raw);
        if (rc != 0) {
            fprintf(stderr, TOOL ": --init-img: %s\n", de.msg);
            return 1;
        }
        if ((o->has_H || o->has_W) && !o->laion && (o->H != h || o->W != w))
            fprintf(stderr,
                    TOOL ": note: --H/--W are not used with --init-img: the output is the init "
                         "image's size, %dx%d (as the reference)\n",
                    w, h);
        o->H = h;
        o->W = w;
    }
    int mult = r->f << (r->m.unet_hp.n_levels - 1);
    if (o->H % mult || o->W % mult) {
        if (o->init_img)
            fprintf(stderr,
                    TOOL ": --init-img %s is %lldx%lld after cutting to multiples of 32; this "
                         "model needs sides that are multiples of %d\n",
                    o->init_img, o->W, o->H, mult);
        else
            fprintf(stderr,
                    TOOL ": --W %lld --H %lld: this model needs sides that are multiples of %d "
                         "(its UNet halves the %dx-downsampled latent %d times)\n",
                    o->W, o->H, mult, r->f, r->m.unet_hp.n_levels - 1);
        return o->init_img ? 1 : 2;
    }
    r->latent_h = (int)(o->H / r->f);
    r->latent_w = (int)(o->W / r->f);
    if (read_prompts(r) != 0) return 1;
    /* the images and the grid must fit data/'s limits: refuse them now, not after sampling */
    if (o->W > TI_IMAGE_MAX_SIDE || o->H > TI_IMAGE_MAX_SIDE || o->W * o->H > TI_IMAGE_MAX_PIXELS) {
        fprintf(stderr,
                TOOL ": --W %lld --H %lld: images are limited to %d pixels per side and %ld "
                     "in all\n",
                o->W, o->H, TI_IMAGE_MAX_SIDE, (long)TI_IMAGE_MAX_PIXELS);
        return 2;
    }
    long long total = (long long)r->n_prompts * o->n_iter;
    long long xmaps = o->n_rows > 0 ? o->n_rows : o->n_samples;
    xmaps = xmaps < total ? xmaps : total;
    long long gw = (o->W + 2) * xmaps + 2, gh = (o->H + 2) * ((total + xmaps - 1) / xmaps) + 2;
    if (!o->skip_grid && total > 1 &&
        (gw > TI_IMAGE_GRID_MAX_SIDE || gh > TI_IMAGE_GRID_MAX_SIDE ||
         gw * gh > TI_IMAGE_GRID_MAX_PIXELS)) {
        fprintf(stderr,
                TOOL ": the grid of %lld images would be %lldx%lld pixels, over the limits "
                     "(%ld per side, %ld in all); pass --skip_grid or another --n_rows\n",
                total, gw, gh, (long)TI_IMAGE_GRID_MAX_SIDE, (long)TI_IMAGE_GRID_MAX_PIXELS);
        return 2;
    }

    /* tokenizer and embeddings (before the model load: their errors come fast) */
    enum ti_tokenizer_kind kind = r->m.text_is_clip ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE;
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/%s", ti_tokenizer_vocab_dir(), ti_tokenizer_vocab_file(kind));
    if (ti_tokenizer_load(&r->tok, kind, vpath, &err) != TI_OK) return fail(&err, "tokenizer");
    int dim = r->m.text_hp.width;
    ti_emb_manager_init(&r->em, dim, r->m.text_is_clip);
    r->em_ok = 1;
    size_t el = 0;
    r->emb_list[0] = 0;
    for (int i = 0; i < o->n_emb; i++) {
        ti_embedding_init(&r->embs[i]);
        r->n_embs = i + 1;
        if (ti_embedding_read(&r->embs[i], o->emb[i], &err) != TI_OK) return fail(&err, o->emb[i]);
        if (ti_embedding_check_width(&r->embs[i], dim, &err) != TI_OK) return fail(&err, o->emb[i]);
        if (ti_embedding_check_finite(&r->embs[i], &err) != TI_OK) return fail(&err, o->emb[i]);
        char note[1024];
        if (ti_embedding_words_from_tokens(&r->embs[i], r->tok, note, sizeof note))
            fprintf(stderr, TOOL ": note: %s\n", note);
        if (ti_emb_manager_add_file(&r->em, &r->embs[i], r->tok, &err) != TI_OK)
            return fail(&err, o->emb[i]);
        int k =
            snprintf(r->emb_list + el, sizeof r->emb_list - el, "%s%s", i ? ", " : "", o->emb[i]);
        if (k > 0 && el + (size_t)k < sizeof r->emb_list) el += (size_t)k;
    }
    /* every prompt must be UTF-8 (the reference fails reading it; the PNGs record it as UTF-8)
     * and tokenize (and fit the manager's rules) before any sampling */
    for (int i = 0; i <= r->n_prompts; i++) {
        const char *p = i < r->n_prompts ? r->prompts[i] : o->negative;
        if (ti_utf8_valid((const uint8_t *)p, strlen(p), 0)) continue;
        if (i == r->n_prompts)
            fprintf(stderr, TOOL ": --negative_prompt: not valid UTF-8\n");
        else if (o->from_file)
            fprintf(stderr, TOOL ": --from-file %s: prompt %d is not valid UTF-8\n", o->from_file,
                    i + 1);
        else
            fprintf(stderr, TOOL ": --prompt: not valid UTF-8\n");
        return 1;
    }
    int32_t idx[SEQ_LEN];
    char *used = calloc((size_t)(r->em.n_terms ? r->em.n_terms : 1), 1);
    if (!used) {
        fprintf(stderr, TOOL ": out of memory\n");
        return 1;
    }
    for (int i = 0; i < r->n_prompts; i++) {
        if (ti_emb_manager_prompt_ids(&r->em, r->tok, r->prompts[i], idx, SEQ_LEN, &err) != TI_OK) {
            free(used);
            return fail(&err, "prompt");
        }
        for (int k = 0; k < SEQ_LEN; k++)
            for (int j = 0; idx[k] < 0 && j < r->em.n_terms; j++) {
                int row = -1 - idx[k];
                const struct ti_emb_term *t = &r->em.terms[j];
                if (row >= t->row0 && row < t->row0 + t->n_vectors) used[j] = 1;
            }
    }
    /* a learned word no prompt holds as a token of its own changes nothing: say so (the
     * reference is silent; "*," is one CLIP token, so "a photo of *, at night" misses it) */
    for (int j = 0; j < r->em.n_terms; j++) {
        if (used[j]) continue;
        const struct ti_emb_term *t = &r->em.terms[j];
        const char *written = NULL;
        for (int i = 0; i < r->n_prompts && !written; i++)
            if (strstr(r->prompts[i], t->placeholder)) written = r->prompts[i];
        char why[320] = "";
        if (written) why_unused(r, t, written, why, sizeof why);
        fprintf(stderr,
                TOOL ": warning: the learned word '%s' (%s) is in no prompt as a word of its own, "
                     "so it changes nothing%s\n",
                t->placeholder, t->source ? t->source : "an --embedding_path file", why);
    }
    free(used);
    if (ti_emb_manager_prompt_ids(&r->em, r->tok, o->negative, idx, SEQ_LEN, &err) != TI_OK)
        return fail(&err, "--negative_prompt");
    if (!o->from_file) {
        warn_long_prompt(r, "--prompt", o->prompt);
    } else {
        int warned = 0;
        for (int i = 0; i < r->n_prompts; i++) {
            char what[64];
            snprintf(what, sizeof what, "prompt %d of --from-file", i + 1);
            if (warned < 5) warned += warn_long_prompt(r, what, r->prompts[i]);
        }
    }
    warn_long_prompt(r, "--negative_prompt", o->negative);

    /* the safety checker: every key and shape checked before the model load and any sampling */
    if (o->safety_checker) {
        double t_load = ti_now_seconds();
        if (ti_safety_checker_load(&r->sc, &r->sc_w, o->safety_checker, ti_backend_cpu(),
                                   TI_DTYPE_F32, &err) != TI_OK)
            return fail(&err, NULL);
        r->sc_ok = 1;
        if (ti_ctx_init(&r->sc_ctx, ti_backend_cpu(), 0, 0) != TI_OK) {
            fprintf(stderr, TOOL ": cannot set up the safety checker: %s\n", r->sc_ctx.err.msg);
            return 1;
        }
        r->sc_ctx_ok = 1;
        const struct ti_clip_vision_hparams *hp = &r->sc.v.hp;
        fprintf(stderr,
                TOOL ": safety checker %s: CLIP ViT (image %d, patch %d, width %d, %d layers, %d "
                     "heads), projection %d; loaded in %.2f s\n",
                o->safety_checker, hp->image_size, hp->patch, hp->width, hp->layers, hp->heads,
                hp->proj_dim, ti_now_seconds() - t_load);
    }
    r->mark = !o->no_watermark && !o->init_img;

    /* backend and model */
    int want_cuda = o->device ? !strcmp(o->device, "cuda") : ti_cuda_device_count() > 0;
    if (want_cuda) {
        if (ti_backend_cuda(&r->be, 0, &err) != TI_OK) return fail(&err, "--device cuda");
    } else {
        r->be = ti_backend_cpu();
        char cpu[512];
        ti_cpu_describe(cpu, sizeof cpu);
        fprintf(stderr, TOOL ": %s\n", cpu);
    }
    r->dt = want_cuda && !strcmp(o->precision, "autocast") ? TI_DTYPE_F16 : TI_DTYPE_F32;
    if (ti_ldm_alloc(&r->m, r->be, r->dt, &err) != TI_OK) return fail(&err, "model");
    /* the reference samples under ema_scope(): with use_ema (DDPM's default) the UNet runs on
     * the file's model_ema.* weights when it has them */
    struct ti_state_dict_opts so = {.use_ema = r->cfg.model.use_ema ? TI_USE_EMA_IF_PRESENT : 0};
    if (ti_ldm_load_file(&r->m, o->ckpt, &so, r->m.text_is_clip ? "SD v1" : "LDM", &err) != TI_OK)
        return fail(&err, o->ckpt);
    /* the schedule buffers the file stores replace the config's, as the reference's
     * load_state_dict(strict=False) does (float16-rounded in a half-precision export) */
    char note[TI_CFG_PATH_MAX + 256];
    int sched_used = ti_schedule_use_file(&r->sched, &r->m.file_sched, o->ckpt, note, sizeof note);
    if (note[0]) fprintf(stderr, TOOL ": %s\n", note);
    if (sched_used > 0 &&
        ti_ddim_schedule_init(r->dsch, &r->sched, (int)o->steps, o->eta, &err) != TI_OK)
        return fail(&err, o->ckpt);
    if (ti_ctx_init(&r->ctx, r->be, 0, 0) != TI_OK) {
        fprintf(stderr, TOOL ": cannot set up the %s backend: %s\n", want_cuda ? "cuda" : "cpu",
                r->ctx.err.msg);
        return 1;
    }
    r->ctx_ok = 1;
    return 0;
}

/* prompts (B) -> conditioning (B, 77, D) on the device */
static ti_status encode(struct run *r, const char *const *prompts, int B, struct ti_tensor *out,
                        struct ti_err *err) {
    int32_t *idx = malloc((size_t)B * SEQ_LEN * sizeof *idx);
    if (!idx) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    ti_status st = ti_emb_manager_batch_ids(&r->em, r->tok, prompts, B, idx, SEQ_LEN, err);
    struct ti_tensor it = ti_tensor_none(), rows = ti_tensor_none();
    int64_t is[2] = {B, SEQ_LEN}, rs[2] = {r->em.n_rows, r->em.dim};
    ti_ctx_no_grad_begin(&r->ctx);
    if (st == TI_OK) st = ti_ctx_upload(&r->ctx, &it, idx, TI_DTYPE_I32, 2, is);
    if (st == TI_OK && r->em.n_rows > 0) {
        struct ti_tensor rf = ti_tensor_none();
        st = ti_ctx_upload(&r->ctx, &rf, r->em.rows, TI_DTYPE_F32, 2, rs);
        if (st == TI_OK) st = ti_copy(&r->ctx, &rows, &rf, r->dt);
        ti_tensor_release(&rf);
    }
    if (st == TI_OK)
        st =
            ti_text_encoder_forward(&r->ctx, out, &r->m.text, &it, r->em.n_rows > 0 ? &rows : NULL);
    ti_ctx_no_grad_end(&r->ctx);
    if (st != TI_OK && err->msg[0] == 0) snprintf(err->msg, sizeof err->msg, "%s", r->ctx.err.msg);
    ti_tensor_release(&it);
    ti_tensor_release(&rows);
    free(idx);
    return st;
}

static void progress(void *user, int step, int steps) {
    struct run *r = user;
    if (r->tty) {
        fprintf(stderr, "\r" TOOL ": batch %d/%d  step %d/%d  %.1f s   ", r->batch_k,
                r->batch_total, step, steps, ti_now_seconds() - r->t0);
        if (step == steps) fputc('\n', stderr);
        fflush(stderr);
    }
}

/* The PNG text entries of a saved sample or grid, NULL-ended: those both have, a sample's
 * ddim_eta and size (NULL for a grid: left out), and an img2img sample's init_image and strength
 * (left out without --init_img or with strength NULL). */
enum { PNG_TEXT_N = 32 };
struct png_meta {
    const char *prompt, *seed, *steps, *scale, *sampler, *eta, *size, *wm, *safety, *strength;
};

static void png_text(const char **t, const struct opts *o, const struct run *r,
                     const struct png_meta *m) {
    int n = 0;
#define PNG_KV(k, v) (t[n++] = (k), t[n++] = (v))
    PNG_KV("prompt", m->prompt);
    PNG_KV("negative_prompt", o->negative);
    PNG_KV("seed", m->seed);
    PNG_KV("steps", m->steps);
    PNG_KV("scale", m->scale);
    PNG_KV("sampler", m->sampler);
    if (m->eta) PNG_KV("ddim_eta", m->eta);
    if (m->size) PNG_KV("size", m->size);
    PNG_KV("model", o->ckpt);
    PNG_KV("embeddings", r->emb_list);
    PNG_KV(TI_WATERMARK_PNG_KEY, m->wm);
    PNG_KV("safety_check", m->safety);
    PNG_KV("software", "ti-sample");
    if (o->init_img && m->strength) {
        PNG_KV("init_image", o->init_img);
        PNG_KV("strength", m->strength);
    }
#undef PNG_KV
    t[n] = NULL;
}

/* Ctrl-C (or SIGTERM, SIGHUP) waits while a PNG is written, so the temporary file is renamed
 * into place first and never left behind; the signal then ends the run as usual. */
static int write_png(const struct ti_image *img, const char *path, const char *const *text) {
    struct ti_data_err de = {{0}};
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    int rc = ti_image_write_png(img, path, text, &de);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, TOOL ": %s\n", de.msg);
        return -1;
    }
    return 0;
}

/* The next number whose file does not exist yet: the reference numbers from the folder's entry
 * count and overwrites a file that already has that number (a folder with gaps); ti skips it. */
static int next_free(const char *fmt_dir, const char *dir, int n) {
    char path[4200];
    for (;; n++) {
        snprintf(path, sizeof path, fmt_dir, dir, n);
        struct stat st;
        if (lstat(path, &st) != 0) return n;
    }
}

/* The reference's check_safety: the decoded images (chw, B x (3, H, W) in [-1, 1]) rounded as
 * its numpy_to_pil, through the feature extractor (shortest side to the checker's size, bicubic;
 * center crop; CLIP mean/std), the checker in float32 on the CPU; flagged[b] = 1 for an image it
 * flags, whose pixels become black. (The reference's diffusers checker blacks it out too; its
 * txt2img then pastes assets/rick.jpeg, which ti does not ship: see docs/SAMPLING.md.) */
static ti_status safety_check(struct run *r, const float *chw, struct ti_image *imgs, int B,
                              int *flagged, struct ti_err *err) {
    double t0 = ti_now_seconds();
    int S = r->sc.v.hp.image_size, H = (int)r->o.H, W = (int)r->o.W;
    size_t img_n = 3 * (size_t)H * (size_t)W, px_n = 3 * (size_t)S * (size_t)S;
    float *px = malloc((size_t)B * px_n * sizeof *px);
    struct ti_safety_result *res = calloc((size_t)B, sizeof *res);
    ti_status st = px && res ? TI_OK : ti_error(err, TI_ERR_NOMEM, "safety checker: out of memory");
    for (int b = 0; st == TI_OK && b < B; b++) {
        struct ti_image ci = {0};
        struct ti_data_err de = {{0}};
        if (ti_clip_image_from_chw(&ci, chw + (size_t)b * img_n, W, H, &de) != 0 ||
            ti_clip_preprocess(&ci, S, px + (size_t)b * px_n, &de) != 0)
            st = ti_error(err, TI_ERR_NOMEM, "safety checker input: %s", de.msg);
        ti_image_free(&ci);
    }
    struct ti_tensor pixels = ti_tensor_none();
    int64_t ps[4] = {B, 3, S, S};
    ti_ctx_no_grad_begin(&r->sc_ctx);
    if (st == TI_OK) st = ti_ctx_upload(&r->sc_ctx, &pixels, px, TI_DTYPE_F32, 4, ps);
    if (st == TI_OK) st = ti_safety_checker_run(&r->sc_ctx, res, &r->sc, &pixels);
    ti_ctx_no_grad_end(&r->sc_ctx);
    if (st != TI_OK && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "safety checker: %.900s", r->sc_ctx.err.msg);
    ti_tensor_release(&pixels);
    for (int b = 0; st == TI_OK && b < B; b++) {
        flagged[b] = res[b].nsfw;
        if (flagged[b]) memset(imgs[b].px, 0, img_n);
    }
    free(px);
    free(res);
    r->sc_seconds += ti_now_seconds() - t0;
    return st;
}

/* The reference's put_watermark when this run marks (txt2img, no --no-watermark) and img is
 * 256x256 or larger: into copy when given (img stays unmarked for the grid), else in place;
 * *save is the image to write. Images too small are left unmarked and the log says so once.
 * 0 ok, 1 error (printed). */
static int mark_image(struct run *r, struct ti_image *img, struct ti_image *copy,
                      const struct ti_image **save) {
    static int told;
    struct ti_data_err de = {{0}};
    *save = img;
    if (!r->mark) return 0;
    if (!ti_watermark_fits(img->w, img->h)) {
        if (!told)
            fprintf(stderr,
                    TOOL ": %dx%d images carry no watermark (the reference's encoder refuses "
                         "images below 256x256 pixels); their PNGs record watermark=none\n",
                    img->w, img->h);
        told = 1;
        return 0;
    }
    struct ti_image *dst = img;
    if (copy) {
        if (ti_image_copy(copy, img, &de) != 0) {
            fprintf(stderr, TOOL ": watermark: %s\n", de.msg);
            return 1;
        }
        dst = copy;
    }
    if (ti_watermark_encode(dst->px, dst->w, dst->h, (const uint8_t *)TI_WATERMARK_SD_TEXT,
                            TI_WATERMARK_SD_LEN, &de) != 0) {
        fprintf(stderr, TOOL ": watermark: %s\n", de.msg);
        return 1;
    }
    *save = dst;
    return 0;
}

static int sample_all(struct run *r) {
    struct opts *o = &r->o;
    struct ti_err err = {0};
    char samples_dir[4096];
    snprintf(samples_dir, sizeof samples_dir, "%s/samples", o->outdir);
    struct stat ost;
    if (stat(o->outdir, &ost) == 0 && !S_ISDIR(ost.st_mode)) {
        fprintf(stderr, TOOL ": --outdir %s: exists and is not a folder\n", o->outdir);
        return 1;
    }
    if (make_dir(o->outdir) != 0) {
        fprintf(stderr, TOOL ": --outdir %s: cannot create it: %s\n", o->outdir, strerror(errno));
        return 1;
    }
    if (make_dir(samples_dir) != 0) {
        fprintf(stderr, TOOL ": cannot create %s: %s\n", samples_dir, strerror(errno));
        return 1;
    }
    int base_count = count_entries(samples_dir);
    int grid_count = count_entries(o->outdir) - 1;
    if (base_count < 0 || grid_count < 0) {
        fprintf(stderr, TOOL ": cannot list %s\n", o->outdir);
        return 1;
    }
    /* a folder we may not write would fail only after the sampling: refuse it now */
    const char *ro = !o->skip_save && access(samples_dir, W_OK | X_OK) != 0 ? samples_dir
                     : !o->skip_grid && access(o->outdir, W_OK | X_OK) != 0 ? o->outdir
                                                                            : NULL;
    if (ro) {
        fprintf(stderr, TOOL ": cannot write into %s: %s\n", ro, strerror(errno));
        return 1;
    }
    int bs = (int)o->n_samples;
    int n_batches = (r->n_prompts + bs - 1) / bs;
    r->batch_total = n_batches * (int)o->n_iter;
    int total_images = r->n_prompts * (int)o->n_iter;
    struct ti_image *all = o->skip_grid ? NULL : calloc((size_t)total_images, sizeof *all);
    int n_all = 0, rc = 0;
    size_t per = (size_t)r->C * (size_t)r->latent_h * (size_t)r->latent_w;
    float *xh = malloc((size_t)bs * per * sizeof *xh);
    float *z0 = o->init_img ? malloc((size_t)bs * per * sizeof *z0) : NULL;
    float *noise = o->init_img ? malloc((size_t)bs * per * sizeof *noise) : NULL;
    struct ti_torch_gen *gens = malloc((size_t)bs * sizeof *gens);
    uint64_t *seeds = malloc((size_t)bs * sizeof *seeds);
    struct ti_image *imgs = calloc((size_t)bs, sizeof *imgs);
    size_t img_n = 3 * (size_t)o->H * (size_t)o->W;
    float *chw = malloc((size_t)bs * img_n * sizeof *chw);
    int *flagged = calloc((size_t)bs, sizeof *flagged);
    int n_flagged = 0;
    const char **neg = malloc((size_t)bs * sizeof *neg);
    if ((!o->skip_grid && !all) || !xh || !gens || !seeds || !imgs || !neg || !chw || !flagged ||
        (o->init_img && (!z0 || !noise))) {
        fprintf(stderr, TOOL ": out of memory\n");
        rc = 1;
        goto done;
    }
    const char *sampler_name = o->plms ? "PLMS" : "DDIM";
    char steps_s[32], scale_s[32], eta_s[32], size_s[64], strength_s[32];
    snprintf(steps_s, sizeof steps_s, "%lld", o->steps);
    snprintf(scale_s, sizeof scale_s, "%g", o->scale);
    snprintf(eta_s, sizeof eta_s, "%g", o->eta);
    snprintf(size_s, sizeof size_s, "%lldx%lld", o->W, o->H);
    snprintf(strength_s, sizeof strength_s, "%g", o->strength);
    int t_enc = o->init_img ? ti_sampler_img2img_t_enc(o->strength, (int)o->steps) : 0;
    if (o->init_img) /* the reference prints this line too */
        fprintf(stderr, TOOL ": target t_enc is %d steps%s\n", t_enc,
                t_enc == 0 ? " (--strength is below 1/--ddim_steps: the init image comes back "
                             "encoded and decoded, not denoised)"
                           : "");
    if (o->scale == 1.0 && o->negative[0])
        fprintf(stderr, TOOL ": note: --negative_prompt is not used at --scale 1 (no guidance: "
                             "the unconditional pass is skipped)\n");
    r->t0 = ti_now_seconds();
    int image_index = 0, batch_no = 0;
    for (int it = 0; it < o->n_iter && rc == 0; it++) {
        for (int b0 = 0; b0 < r->n_prompts && rc == 0; b0 += bs) {
            int B = r->n_prompts - b0 < bs ? r->n_prompts - b0 : bs;
            r->batch_k = ++batch_no;
            const char *const *prompts = (const char *const *)r->prompts + b0;
            for (int b = 0; b < B; b++)
                neg[b] = o->negative;
            struct ti_tensor cond = ti_tensor_none(), uncond = ti_tensor_none(),
                             x = ti_tensor_none();
            ti_status st = TI_OK;
            if (o->scale != 1.0) st = encode(r, neg, B, &uncond, &err);
            if (st == TI_OK) st = encode(r, prompts, B, &cond, &err);
            for (int b = 0; b < B; b++) {
                seeds[b] = (uint64_t)o->seed + (uint64_t)(o->fixed_code ? b : image_index + b);
                ti_torch_gen_seed(&gens[b], seeds[b]);
            }
            int t_start = 0;
            if (st == TI_OK && !o->init_img) {
                for (int b = 0; b < B; b++)
                    ti_torch_randn(&gens[b], xh + (size_t)b * per, per);
            } else if (st == TI_OK) {
                st = ti_sampler_encode_init(&r->ctx, &r->m, r->cfg.model.scale_factor, r->init.px,
                                            r->init.h, r->init.w, B, gens, z0, &err);
                for (int b = 0; st == TI_OK && b < B; b++)
                    ti_torch_randn(&gens[b], noise + (size_t)b * per, per);
                if (st == TI_OK)
                    t_start =
                        ti_sampler_img2img_start(r->dsch, t_enc, z0, noise, xh, (size_t)B * per);
            }
            int64_t xs[4] = {B, r->C, r->latent_h, r->latent_w};
            if (st == TI_OK) st = ti_ctx_upload(&r->ctx, &x, xh, TI_DTYPE_F32, 4, xs);
            if (st != TI_OK && !err.msg[0]) snprintf(err.msg, sizeof err.msg, "%s", r->ctx.err.msg);
            struct ti_sampler_opts so = {.steps = (int)o->steps,
                                         .eta = o->eta,
                                         .plms = o->plms,
                                         .scale = o->scale,
                                         .t_start = t_start};
            if (st == TI_OK)
                st = ti_sampler_run(&r->ctx, &r->m, &r->sched, &so, &cond,
                                    o->scale != 1.0 ? &uncond : NULL, &x, gens, progress, r, &err);
            if (st == TI_OK)
                st =
                    ti_sampler_decode_f32(&r->ctx, &r->m, r->cfg.model.scale_factor, &x, chw, &err);
            for (int b = 0; st == TI_OK && b < B; b++) {
                struct ti_data_err de = {{0}};
                if (ti_image_alloc(&imgs[b], (int)o->W, (int)o->H, &de) != 0)
                    st = ti_error(&err, TI_ERR_NOMEM, "%s", de.msg);
                else
                    ti_sampler_to_rgb(chw + (size_t)b * img_n, (int)o->H, (int)o->W, imgs[b].px);
            }
            if (st == TI_OK && r->sc_ok) st = safety_check(r, chw, imgs, B, flagged, &err);
            ti_tensor_release(&cond);
            ti_tensor_release(&uncond);
            ti_tensor_release(&x);
            if (st != TI_OK) {
                rc = fail(&err, "sampling");
                break;
            }
            for (int b = 0; b < B && rc == 0; b++) {
                n_flagged += flagged[b];
                if (!o->skip_save) {
                    char path[4200], seed_s[32];
                    base_count = next_free("%s/%05d.png", samples_dir, base_count);
                    snprintf(path, sizeof path, "%s/%05d.png", samples_dir, base_count++);
                    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seeds[b]);
                    /* the reference marks each saved sample; the grid is made from the unmarked
                     * images, so a sample that goes into the grid is marked as a copy */
                    struct ti_image copy = {0};
                    const struct ti_image *save = &imgs[b];
                    const char *wm = "none";
                    if (mark_image(r, &imgs[b], all ? &copy : NULL, &save) != 0) {
                        rc = 1;
                        break;
                    }
                    if (save != &imgs[b] || (r->mark && ti_watermark_fits(save->w, save->h)))
                        wm = TI_WATERMARK_SD_TEXT;
                    const char *text[PNG_TEXT_N];
                    png_text(text, o, r,
                             &(struct png_meta){prompts[b], seed_s, steps_s, scale_s, sampler_name,
                                                eta_s, size_s, wm,
                                                !r->sc_ok    ? "not run"
                                                : flagged[b] ? "flagged, replaced by a black image"
                                                             : "passed",
                                                strength_s});
                    if (write_png(save, path, text) != 0) rc = 1;
                    ti_image_free(&copy);
                }
                if (all) {
                    all[n_all++] = imgs[b];
                    memset(&imgs[b], 0, sizeof imgs[b]);
                } else {
                    ti_image_free(&imgs[b]);
                }
            }
            for (int b = 0; b < B; b++)
                ti_image_free(&imgs[b]);
            if (rc != 0) break; /* a sample was not written: the batch is not done */
            if (!r->tty)
                fprintf(stderr, TOOL ": batch %d/%d done (%d images, %.1f s)\n", r->batch_k,
                        r->batch_total, B, ti_now_seconds() - r->t0);
            image_index += B;
        }
    }
    if (rc == 0 && all && n_all > 0) {
        struct ti_image grid = {0};
        struct ti_data_err de = {{0}};
        int nrow = o->n_rows > 0 ? (int)o->n_rows : bs;
        if (ti_image_grid(&grid, all, n_all, nrow, 2, 0, &de) != 0) {
            fprintf(stderr, TOOL ": grid: %s\n", de.msg);
            rc = 1;
        } else {
            char path[4200], seed_s[32];
            grid_count = next_free("%s/grid-%04d.png", o->outdir, grid_count);
            snprintf(path, sizeof path, "%s/grid-%04d.png", o->outdir, grid_count);
            snprintf(seed_s, sizeof seed_s, "%llu", o->seed);
            const char *text[PNG_TEXT_N];
            png_text(text, o, r,
                     &(struct png_meta){o->from_file ? o->from_file : o->prompt, seed_s, steps_s,
                                        scale_s, sampler_name, NULL, NULL,
                                        r->mark && ti_watermark_fits(grid.w, grid.h)
                                            ? TI_WATERMARK_SD_TEXT
                                            : "none",
                                        r->sc_ok ? "see the samples' entries" : "not run", NULL});
            const struct ti_image *save = &grid;
            if (mark_image(r, &grid, NULL, &save) != 0) rc = 1;
            if (rc == 0 && write_png(&grid, path, text) != 0) rc = 1;
            ti_image_free(&grid);
        }
    }
    if (rc == 0 && r->sc_ok)
        fprintf(stderr,
                TOOL ": safety checker: %d of %d images flagged as NSFW and replaced by black "
                     "images (%.2f s in the checker)\n",
                n_flagged, image_index, r->sc_seconds);
    else if (rc == 0)
        fprintf(stderr, TOOL ": no safety check was made (give the checker's weights with "
                             "--safety_checker PATH to run it)\n");
    if (rc == 0)
        printf("Your samples are ready and waiting for you here: \n%s \n \nEnjoy.\n", o->outdir);
done:
    for (int i = 0; all && i < n_all; i++)
        ti_image_free(&all[i]);
    free(all);
    free(xh);
    free(z0);
    free(noise);
    free(gens);
    free(seeds);
    free(imgs);
    free(neg);
    free(chw);
    free(flagged);
    return rc;
}

static void run_free(struct run *r) {
    if (r->ctx_ok) ti_ctx_free(&r->ctx);
    if (r->sc_ctx_ok) ti_ctx_free(&r->sc_ctx);
    if (r->sc_ok) {
        ti_safety_checker_free(&r->sc);
        ti_weights_free(&r->sc_w);
    }
    if (r->model_ok) ti_ldm_free(&r->m);
    if (r->em_ok) ti_emb_manager_free(&r->em);
    for (int i = 0; i < r->n_embs; i++)
        ti_embedding_free(&r->embs[i]);
    ti_tokenizer_free(&r->tok);
    ti_image_free(&r->init);
    free(r->dsch);
    free(r->prompts);
    free(r->file_text);
}

int main(int argc, char **argv) {
    static struct run r;
    int help = 0, rc = parse_args(&r.o, argc, argv, &help);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc) return rc;
    rc = check_args(&r.o);
    if (rc) return rc;
    r.tty = isatty(2);
    rc = prepare(&r);
    if (rc == 0) rc = check_args(&r.o); /* the model's defaults may have changed a value */
    if (rc == 0) rc = sample_all(&r);
    run_free(&r);
    return rc;
}
#endif
