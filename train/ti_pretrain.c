/*
 * ti_pretrain.c - ti-pretrain: trains ti's tiny latent text-to-image model from scratch on the
 * synthetic shapes data set (data/shapes.h), and measures how well it follows its prompts.
 *
 *   ti-pretrain --config C --out DIR --stage vae   stage 1: the autoencoder
 *   ti-pretrain --config C --out DIR --stage ldm --init DIR/model.safetensors
 *                                                  stage 2: text encoder + UNet (VAE frozen)
 *   ti-pretrain eval --config C --ckpt M           samples "a photo of a <colour> <shape>" for
 *                                                  every seen class and classifies them
 * Outputs (each through a temporary file renamed into place): DIR/model.safetensors (ti_ldm_save),
 * DIR/config.yaml (the config, with scale_factor measured after stage 1 unless given),
 * DIR/log_<stage>.csv (step, losses, learning rate, seconds). The recipe: train/pretrain.h;
 * scripts/pretrain_tiny.sh runs it; docs/DEMO.md records a run.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "fileio.h"
#include "ldm.h"
#include "metrics.h" /* defines: ti_now_seconds */
#include "pretrain.h"
#include "rng.h"
#include "sampler.h"
#include "schedule.h"
#include "tape.h"
#include "tokenizer.h"
#include "torch_gen.h"

#ifdef TI_HAVE_DATA
#include "shapes.h"
#include "shapes_classify.h"
#endif

#define TOOL "ti-pretrain"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: " TOOL " --config CFG --out DIR --stage vae|ldm [options]\n"
        "       " TOOL " eval --config CFG --ckpt MODEL [--n N] [--steps N] [--scale S]\n"
        "       " TOOL " half --config CFG --ckpt MODEL --out FILE.safetensors\n"
        "                      copies MODEL with its text encoder and UNet in float16 (the\n"
        "                      autoencoder stays float32, as stage ldm reads it): how the\n"
        "                      shipped tiny models are stored\n"
        "training options:\n"
        "  --init MODEL        stage vae: start from these weights; stage ldm: the stage-1\n"
        "                      model, whose autoencoder is taken (text encoder and UNet\n"
        "                      start from ti_ldm_randomize's values for --seed)\n"
        "  --continue          stage ldm: take the text encoder and UNet from --init too\n"
        "                      (a further run from a finished one: fresh AdamW moments,\n"
        "                      its own warm-up and cosine schedule, another data order)\n"
        "  --seed N            run seed (default 0)\n"
        "  --steps N           optimizer steps (default 400)\n"
        "  --batch N           images per step (default 8)\n"
        "  --lr X              peak learning rate (default 1e-3)\n"
        "  --warmup N          linear warm-up steps (default 20), then cosine to lr/10\n"
        "  --weight_decay X    AdamW weight decay (default 0.01)\n"
        "  --kl_weight X       stage vae: KL weight per latent element (default 1e-4)\n"
        "  --posterior_noise X stage vae: scale of the posterior sample's noise (default 1)\n"
        "  --decoder_only      stage vae: train the decoder (and post_quant_conv) only; the\n"
        "                      encoder, and so every latent a stage-2 model learned, stays\n"
        "                      as it is\n"
        "  --p_uncond X        stage ldm: fraction of empty captions (default 0.1)\n"
        "  --data_size N       stage ldm: data set images, encoded once (default 8192); each\n"
        "                      step draws a batch of them with fresh posterior noise\n"
        "  --scale_factor X    written into DIR/config.yaml (default: 1/std of the latents\n"
        "                      measured after stage vae; stage ldm: the config's)\n"
        "  --data_seed N       shapes data set seed (default 0)\n"
        "  --held_out_colour_rate X  share of data set samples recoloured teal, the held-out\n"
        "                      colour (default 0.0625; 0: the data set before it existed, on\n"
        "                      which the shipped autoencoder's stage 1 ran)\n"
        "  --log_every N       log line every N steps (default 10)\n"
        "  --save_every N      also write DIR/model-<step>.safetensors every N steps\n"
        "                      (with DIR/config.yaml), to evaluate a run while it goes on\n"
        "eval options:\n"
        "  --n N               samples per class (default 4); --steps N DDIM steps (20)\n"
        "  --scale S           guidance scale (default 5); --seed N; --recon N: also\n"
        "                      classify N autoencoder reconstructions of data set images\n"
        "  --cond_check N      also the eps loss of N data set images with their captions, with\n"
        "                      shuffled captions and with empty ones (same t and noise)\n"
        "  --grid FILE         also write the samples of the first 8 classes as a PNG grid\n");
}

struct opts {
    int eval, half;
    const char *config, *out, *stage, *init, *ckpt, *grid;
    uint64_t seed, data_seed;
    long steps, batch, warmup, log_every, save_every, n, recon, data_size, cond_check;
    double lr, wd, kl_weight, p_uncond, scale_factor, scale, post_noise, teal_rate;
    int has_steps, cont, decoder_only;
};

static int parse_long(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, TOOL ": %s %s: expected an integer in [%ld, %ld]\n", flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, TOOL ": %s %s: expected a number in [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(struct opts *o, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->steps = 400;
    o->batch = 8;
    o->teal_rate = -1;
    o->warmup = 20;
    o->log_every = 10;
    o->n = 4;
    o->data_size = 8192;
    o->lr = 1e-3;
    o->wd = 0.01;
    o->kl_weight = 1e-4;
    o->p_uncond = 0.1;
    o->post_noise = 1.0;
    o->scale = 5.0;
    int i = 1;
    if (argc > 1 && !strcmp(argv[1], "eval")) {
        o->eval = 1;
        o->steps = 20;
        i = 2;
    } else if (argc > 1 && !strcmp(argv[1], "half")) {
        o->half = 1;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--continue")) {
            o->cont = 1;
            continue;
        }
        if (!strcmp(a, "--decoder_only")) {
            o->decoder_only = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, TOOL ": %s: missing value (or unknown flag)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        long l;
        int rc = 0;
        if (!strcmp(a, "--config"))
            o->config = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--stage"))
            o->stage = v;
        else if (!strcmp(a, "--init"))
            o->init = v;
        else if (!strcmp(a, "--ckpt"))
            o->ckpt = v;
        else if (!strcmp(a, "--grid"))
            o->grid = v;
        else if (!strcmp(a, "--seed")) {
            rc = parse_long(a, v, 0, INT32_MAX, &l);
            o->seed = (uint64_t)l;
        } else if (!strcmp(a, "--data_seed")) {
            rc = parse_long(a, v, 0, INT32_MAX, &l);
            o->data_seed = (uint64_t)l;
        } else if (!strcmp(a, "--held_out_colour_rate")) {
            rc = parse_double(a, v, 0, 1, &o->teal_rate);
        } else if (!strcmp(a, "--steps")) {
            rc = parse_long(a, v, 1, 10000000, &o->steps);
            o->has_steps = 1;
        } else if (!strcmp(a, "--batch"))
            rc = parse_long(a, v, 1, 4096, &o->batch);
        else if (!strcmp(a, "--warmup"))
            rc = parse_long(a, v, 0, 10000000, &o->warmup);
        else if (!strcmp(a, "--log_every"))
            rc = parse_long(a, v, 1, 10000000, &o->log_every);
        else if (!strcmp(a, "--save_every"))
            rc = parse_long(a, v, 1, 10000000, &o->save_every);
        else if (!strcmp(a, "--n"))
            rc = parse_long(a, v, 1, 10000, &o->n);
        else if (!strcmp(a, "--recon"))
            rc = parse_long(a, v, 0, 100000, &o->recon);
        else if (!strcmp(a, "--cond_check"))
            rc = parse_long(a, v, 0, 100000, &o->cond_check);
        else if (!strcmp(a, "--data_size"))
            rc = parse_long(a, v, 1, 1000000, &o->data_size);
        else if (!strcmp(a, "--lr"))
            rc = parse_double(a, v, 0.0, 1.0, &o->lr);
        else if (!strcmp(a, "--weight_decay"))
            rc = parse_double(a, v, 0.0, 1.0, &o->wd);
        else if (!strcmp(a, "--kl_weight"))
            rc = parse_double(a, v, 0.0, 1e3, &o->kl_weight);
        else if (!strcmp(a, "--p_uncond"))
            rc = parse_double(a, v, 0.0, 1.0, &o->p_uncond);
        else if (!strcmp(a, "--posterior_noise"))
            rc = parse_double(a, v, 0.0, 1.0, &o->post_noise);
        else if (!strcmp(a, "--scale_factor"))
            rc = parse_double(a, v, 1e-6, 1e6, &o->scale_factor);
        else if (!strcmp(a, "--scale"))
            rc = parse_double(a, v, 0.0, 100.0, &o->scale);
        else {
            fprintf(stderr, TOOL ": unknown flag %s (see --help)\n", a);
            return -1;
        }
        if (rc) return -1;
    }
    if (!o->config) {
        fprintf(stderr, TOOL ": --config is required\n");
        return -1;
    }
    if (o->eval) {
        if (!o->ckpt) {
            fprintf(stderr, TOOL " eval: --ckpt is required\n");
            return -1;
        }
        return 0;
    }
    if (o->half) {
        if (!o->ckpt || !o->out) {
            fprintf(stderr, TOOL " half: --ckpt and --out are required\n");
            return -1;
        }
        return 0;
    }
    if (!o->out || !o->stage) {
        fprintf(stderr, TOOL ": --out and --stage are required\n");
        return -1;
    }
    if (strcmp(o->stage, "vae") && strcmp(o->stage, "ldm")) {
        fprintf(stderr, TOOL ": --stage %s: expected vae or ldm\n", o->stage);
        return -1;
    }
    if (!strcmp(o->stage, "ldm") && !o->init) {
        fprintf(stderr, TOOL ": --stage ldm needs --init (the stage-1 model)\n");
        return -1;
    }
    return 0;
}

static int fail(const struct ti_err *err, const char *what) {
    fprintf(stderr, TOOL ": %s: %s\n", what, err->msg);
    return 1;
}

#ifdef TI_HAVE_DATA

/* Learning rate at step k (0-based): linear warm-up, then cosine from lr to lr / 10. */
static double lr_at(const struct opts *o, long k) {
    if (k < o->warmup) return o->lr * (double)(k + 1) / (double)o->warmup;
    double p = o->steps > o->warmup ? (double)(k - o->warmup) / (double)(o->steps - o->warmup) : 1;
    return o->lr * (0.1 + 0.9 * 0.5 * (1.0 + cos(M_PI * p)));
}

/* Data set sample idx as CHW floats in [-1, 1] (and its caption). */
static int shapes_chw(const struct ti_shapes_spec *sp, uint64_t idx, float *chw, uint8_t *px,
                      char *caption, struct ti_err *err) {
    struct ti_data_err de = {{0}};
    if (ti_shapes_sample(sp, idx, NULL, px, caption, caption ? TI_SHAPES_CAPTION_MAX : 0, &de)) {
        ti_error(err, TI_ERR_INVALID, "shapes sample %llu: %s", (unsigned long long)idx, de.msg);
        return -1;
    }
    int S = sp->size;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++)
            chw[(size_t)c * S * S + i] = (float)px[(size_t)i * 3 + c] / 127.5f - 1.0f;
    return 0;
}

/* growing text buffer for the CSV log */
struct sbuf {
    char *p;
    size_t n, cap;
};
static int sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static int sbuf_printf(struct sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return -1;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return 0;
        }
        size_t cap = b->cap ? 2 * b->cap : 65536;
        while (cap < b->n + (size_t)k + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
}

/* The config file with `scale_factor:` set to sf (the line replaced, indentation kept). */
static ti_status write_config(const char *src, const char *dst, double sf, struct ti_err *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return ti_error(err, TI_ERR_IO, "%s: %s", src, strerror(errno));
    struct sbuf b = {0};
    char line[4096];
    int found = 0;
    ti_status st = TI_OK;
    while (fgets(line, sizeof line, f)) {
        const char *s = line;
        while (*s == ' ')
            s++;
        if (!strncmp(s, "scale_factor:", 13)) {
            found = 1;
            if (sbuf_printf(&b, "%.*sscale_factor: %.6g\n", (int)(s - line), line, sf)) break;
        } else if (sbuf_printf(&b, "%s", line)) {
            break;
        }
    }
    fclose(f);
    if (!found) st = ti_error(err, TI_ERR_CONFIG, "%s: no scale_factor line to set", src);
    if (st == TI_OK) st = ti_file_write_atomic(dst, b.p, b.n, err);
    free(b.p);
    return st;
}

struct run {
    struct ti_config cfg;
    struct ti_ldm m;
    struct ti_ctx ctx;
    struct ti_tape *tape;
    struct ti_tokenizer *tok;
    struct ti_schedule sched;
    int cfg_ok, model_ok, ctx_ok;
};

static void run_free(struct run *r) {
    if (r->ctx_ok) {
        r->ctx.tape = NULL;
        ti_ctx_free(&r->ctx);
    }
    ti_tape_free(&r->tape);
    if (r->model_ok) ti_ldm_free(&r->m);
    ti_tokenizer_free(&r->tok);
}

static ti_status sd_get(void *user, const char *key, struct ti_tensor *view, struct ti_err *err) {
    (void)err;
    const struct ti_tensor *t = ti_state_dict_find(user, key);
    if (!t) return TI_ERR_NOT_FOUND;
    *view = *t;
    return TI_OK;
}

/* The autoencoder's weights alone from a checkpoint (stage ldm: the UNet may differ in width
 * from the stage-1 file's; ti_weights_load checks every autoencoder key and shape). */
static ti_status load_vae(struct ti_ldm *m, const char *path, struct ti_err *err) {
    struct ti_state_dict *sd = NULL;
    ti_status st = ti_state_dict_open(&sd, path, NULL, err);
    if (st == TI_OK) {
        struct ti_weight_source src = {sd, path, sd_get};
        st = ti_weights_load(&m->vae_w, &src, err);
    }
    ti_state_dict_close(sd);
    return st;
}

/* weights: a whole model (eval) or, with vae_only, the autoencoder (stage ldm); NULL: random */
static int setup(struct run *r, const char *config, const char *weights, int vae_only,
                 uint64_t seed) {
    struct ti_err err = {0};
    if (ti_config_load(&r->cfg, &config, 1, NULL, 0, &err) != TI_OK) return fail(&err, config);
    if (ti_ldm_init(&r->m, &r->cfg, &err) != TI_OK) return fail(&err, config);
    r->model_ok = 1;
    if (ti_ldm_alloc(&r->m, ti_backend_cpu(), TI_DTYPE_F32, &err) != TI_OK)
        return fail(&err, "model");
    if (weights && vae_only) {
        if (ti_ldm_randomize(&r->m, seed, &err) != TI_OK) return fail(&err, "model");
        if (load_vae(&r->m, weights, &err) != TI_OK) return fail(&err, weights);
    } else if (weights) {
        if (ti_ldm_load_file(&r->m, weights, NULL, r->m.text_is_clip ? "SD v1" : "LDM", &err) !=
            TI_OK)
            return fail(&err, weights);
    } else if (ti_ldm_randomize(&r->m, seed, &err) != TI_OK) {
        return fail(&err, "model");
    }
    if (ti_schedule_init(&r->sched, &r->cfg.model, &err) != TI_OK) return fail(&err, config);
    enum ti_tokenizer_kind kind = r->m.text_is_clip ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE;
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/%s", ti_tokenizer_vocab_dir(), ti_tokenizer_vocab_file(kind));
    if (ti_tokenizer_load(&r->tok, kind, vpath, &err) != TI_OK) return fail(&err, "tokenizer");
    if (ti_ctx_init(&r->ctx, ti_backend_cpu(), 0, 0) != TI_OK) {
        fprintf(stderr, TOOL ": cannot set up the CPU backend: %s\n", r->ctx.err.msg);
        return 1;
    }
    r->ctx_ok = 1;
    if (ti_tape_init(&r->tape, &err) != TI_OK) return fail(&err, "tape");
    return 0;
}

static int train(struct opts *o) {
    struct run r;
    memset(&r, 0, sizeof r);
    struct ti_err err = {0};
    if (o->cont && (strcmp(o->stage, "ldm") || !o->init)) {
        fprintf(stderr, TOOL ": --continue needs --stage ldm and --init MODEL\n");
        return 2;
    }
    int rc = setup(&r, o->config, o->init, !strcmp(o->stage, "ldm") && !o->cont, o->seed);
    int vae = !strcmp(o->stage, "vae");
    struct ti_wopt ov = {0}, ot = {0}, ou = {0};
    struct sbuf log = {0};
    float *img = NULL, *eps = NULL, *z = NULL, *noise = NULL;
    uint8_t *px = NULL;
    int32_t *ids = NULL;
    int *ts = NULL;
    float *moms = NULL;
    unsigned char *have = NULL;
    char(*caps)[TI_SHAPES_CAPTION_MAX] = NULL;
    char path[4096], logpath[4096];
    if (rc) goto done;
    if (mkdir(o->out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, TOOL ": --out %s: %s\n", o->out, strerror(errno));
        rc = 1;
        goto done;
    }
    struct ti_shapes_spec sp;
    ti_shapes_spec_default(&sp);
    sp.seed = o->data_seed;
    if (o->teal_rate >= 0) sp.held_out_colour_rate = o->teal_rate;
    sp.size = r.cfg.pixel_size;
    struct ti_data_err de = {{0}};
    if (ti_shapes_spec_check(&sp, &de)) {
        fprintf(stderr, TOOL ": shapes data set for %d px images: %s\n", sp.size, de.msg);
        rc = 1;
        goto done;
    }
    int B = (int)o->batch, S = sp.size, C = r.m.vae_hp.embed_dim;
    int h = S >> (r.m.vae_hp.n_levels - 1), T77 = TI_TOKENS_MAX;
    size_t ipi = (size_t)3 * S * S, lpi = (size_t)C * h * h;
    img = malloc((size_t)B * ipi * sizeof *img);
    eps = malloc((size_t)B * lpi * sizeof *eps);
    z = malloc((size_t)B * lpi * sizeof *z);
    noise = malloc((size_t)B * lpi * sizeof *noise);
    px = malloc(ipi);
    ids = malloc((size_t)B * T77 * sizeof *ids);
    ts = malloc((size_t)B * sizeof *ts);
    if (!img || !eps || !z || !noise || !px || !ids || !ts) {
        fprintf(stderr, TOOL ": out of memory\n");
        rc = 1;
        goto done;
    }
    struct ti_adamw_hp hp = {o->lr, 0.9, 0.999, 1e-8, o->wd};
    if (vae) {
        if (ti_wopt_init(&ov, &r.m.vae_w, &hp, &err) != TI_OK) {
            rc = fail(&err, "optimizer");
            goto done;
        }
        if (o->decoder_only) /* the encoder (and so every latent) stays as it is */
            for (int i = 0; i < r.m.vae_w.n; i++) {
                const char *key = r.m.vae_w.items[i].key + strlen(TI_LDM_PREFIX_VAE);
                if (!strncmp(key, "encoder.", 8) || !strncmp(key, "quant_conv.", 11))
                    ti_wopt_skip(&ov, r.m.vae_w.items[i].slot, 0);
            }
    } else {
        if (ti_wopt_init(&ot, &r.m.text_w, &hp, &err) != TI_OK ||
            ti_wopt_init(&ou, &r.m.unet_w, &hp, &err) != TI_OK) {
            rc = fail(&err, "optimizer");
            goto done;
        }
        ti_wopt_skip(&ot, &r.m.text.tok_emb, 1);
        ti_wopt_skip(&ot, &r.m.text.pos_emb, 0);
    }
    r.ctx.tape = r.tape;
    struct ti_rng rng;
    ti_rng_seed(&rng, o->seed * 0x9E3779B97F4A7C15ull + (vae ? 1 : 2));
    double sf = o->scale_factor > 0 ? o->scale_factor : r.cfg.model.scale_factor;
    /* stage 1 draws data set samples 0, 1, 2, ...; stage 2 starts at 2^32 (other images) */
    uint64_t base = vae ? 0 : (1ull << 32);
    if (vae)
        sbuf_printf(&log, "step,loss,rec,kl,lr,time_s\n");
    else
        sbuf_printf(&log, "step,loss,lr,time_s\n");
    snprintf(logpath, sizeof logpath, "%s/log_%s.csv", o->out, o->stage);
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    double t0 = ti_now_seconds(), acc = 0, acc2 = 0;
    int nacc = 0;
    if (!vae) {
        /* the data set: data_size images whose captions and first-stage moments are made the
         * first time a step draws them (one image at a time: the same values whatever the order) */
        long N = o->data_size;
        moms = malloc((size_t)N * 2 * lpi * sizeof *moms);
        caps = malloc((size_t)N * sizeof *caps);
        have = calloc((size_t)N, 1);
        if (!moms || !caps || !have) {
            fprintf(stderr, TOOL ": out of memory for %ld images\n", N);
            rc = 1;
            goto done;
        }
    }
    for (long k = 0; k < o->steps; k++) {
        if (vae) {
            for (int b = 0; b < B; b++)
                if (shapes_chw(&sp, base + (uint64_t)k * (uint64_t)B + (uint64_t)b,
                               img + (size_t)b * ipi, px, NULL, &err)) {
                    rc = fail(&err, "data");
                    goto done;
                }
            ti_rng_normal_f32(&rng, eps, (size_t)B * lpi);
            if (o->post_noise != 1.0)
                for (size_t j = 0; j < (size_t)B * lpi; j++)
                    eps[j] *= (float)o->post_noise;
        } else {
            for (int b = 0; b < B; b++) {
                uint64_t i = ti_rng_below(&rng, (uint64_t)o->data_size);
                if (!have[i]) {
                    if (shapes_chw(&sp, base + i, img, px, caps[i], &err) ||
                        ti_pretrain_moments(&r.ctx, &r.m, img, 1, moms + i * 2 * lpi, &err) !=
                            TI_OK) {
                        rc = fail(&err, "encoding the data set");
                        goto done;
                    }
                    have[i] = 1;
                }
                const char *cap = ti_rng_uniform(&rng) < o->p_uncond ? "" : caps[i];
                struct ti_token_ids ti;
                if (ti_tokenizer_encode(&ti, r.tok, cap, strlen(cap), &err) != TI_OK) {
                    rc = fail(&err, "caption");
                    goto done;
                }
                memcpy(ids + (size_t)b * T77, ti.ids, sizeof ti.ids);
                ts[b] = (int)ti_rng_below(&rng, (uint64_t)r.sched.T);
                /* posterior sample from the cached moments, times scale_factor */
                const float *mu = moms + (size_t)i * 2 * lpi, *lv = mu + lpi;
                float *zb = z + (size_t)b * lpi;
                ti_rng_normal_f32(&rng, zb, lpi);
                for (size_t j = 0; j < lpi; j++) {
                    float l = lv[j] < -30.0f ? -30.0f : lv[j] > 20.0f ? 20.0f : lv[j];
                    zb[j] = (float)sf * (mu[j] + expf(0.5f * l) * zb[j]);
                }
            }
            ti_rng_normal_f32(&rng, noise, (size_t)B * lpi);
        }
        double lr = lr_at(o, k), l1 = 0, l2 = 0;
        ti_status st;
        if (vae) {
            st = ti_pretrain_vae_step(&r.ctx, &r.m, &ov, img, eps, B, o->kl_weight, lr, &l1, &l2,
                                      &err);
        } else {
            st = ti_pretrain_ldm_step(&r.ctx, &r.m, &ot, &ou, &r.sched, z, noise, ts, ids, B, lr,
                                      &l1, &err);
        }
        if (st != TI_OK) {
            char what[64];
            snprintf(what, sizeof what, "step %ld", k + 1);
            rc = fail(&err, what);
            goto done;
        }
        if (!isfinite(l1)) {
            fprintf(stderr, TOOL ": step %ld: the loss is %g (lower --lr)\n", k + 1, l1);
            rc = 1;
            goto done;
        }
        double tn = ti_now_seconds() - t0;
        /* every step is logged (the test compares the first ones); the console every log_every */
        if (vae)
            sbuf_printf(&log, "%ld,%.9g,%.9g,%.9g,%.6g,%.2f\n", k + 1, l1 + o->kl_weight * l2, l1,
                        l2, lr, tn);
        else
            sbuf_printf(&log, "%ld,%.9g,%.6g,%.2f\n", k + 1, l1, lr, tn);
        acc += l1;
        acc2 += l2;
        nacc++;
        if ((k + 1) % o->log_every == 0 || k + 1 == o->steps) {
            if (vae)
                fprintf(stderr, TOOL ": vae step %ld/%ld  rec %.5f  kl %.4f  lr %.3g  %.0f s\n",
                        k + 1, o->steps, acc / nacc, acc2 / nacc, lr, tn);
            else
                fprintf(stderr, TOOL ": ldm step %ld/%ld  loss %.5f  lr %.3g  %.0f s\n", k + 1,
                        o->steps, acc / nacc, lr, tn);
            acc = acc2 = 0;
            nacc = 0;
            if (ti_file_write_atomic(logpath, log.p, log.n, &err) != TI_OK) {
                rc = fail(&err, logpath);
                goto done;
            }
        }
        if (o->save_every > 0 && (k + 1) % o->save_every == 0 && k + 1 < o->steps) {
            char sp2[4096], cp2[4096];
            snprintf(sp2, sizeof sp2, "%s/model-%ld.safetensors", o->out, k + 1);
            snprintf(cp2, sizeof cp2, "%s/config.yaml", o->out);
            if (ti_ldm_save(&r.m, sp2, &err) != TI_OK) {
                rc = fail(&err, sp2);
                goto done;
            }
            if (write_config(o->config, cp2, sf, &err) != TI_OK) {
                rc = fail(&err, cp2);
                goto done;
            }
        }
    }
    r.ctx.tape = NULL;
    if (vae && o->scale_factor <= 0) {
        /* scale_factor = 1 / std of posterior samples over 256 images (SD's recipe, one batch) */
        double s1 = 0, s2 = 0;
        size_t cnt = 0;
        for (int k = 0; k < 256 / B + (256 % B != 0); k++) {
            for (int b = 0; b < B; b++)
                if (shapes_chw(&sp, (1ull << 40) + (uint64_t)k * B + b, img + (size_t)b * ipi, px,
                               NULL, &err)) {
                    rc = fail(&err, "data");
                    goto done;
                }
            ti_rng_normal_f32(&rng, eps, (size_t)B * lpi);
            if (ti_pretrain_latents(&r.ctx, &r.m, img, eps, B, 1.0, z, &err) != TI_OK) {
                rc = fail(&err, "latents");
                goto done;
            }
            for (size_t i = 0; i < (size_t)B * lpi; i++) {
                s1 += z[i];
                s2 += (double)z[i] * z[i];
                cnt++;
            }
        }
        double mean = s1 / (double)cnt, sd = sqrt(s2 / (double)cnt - mean * mean);
        sf = 1.0 / sd;
        fprintf(stderr, TOOL ": latents: mean %.4f std %.4f -> scale_factor %.5g\n", mean, sd, sf);
    }
    if (ti_ldm_save(&r.m, path, &err) != TI_OK) {
        rc = fail(&err, path);
        goto done;
    }
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.yaml", o->out);
    if (write_config(o->config, cpath, sf, &err) != TI_OK) {
        rc = fail(&err, cpath);
        goto done;
    }
    if (ti_file_write_atomic(logpath, log.p, log.n, &err) != TI_OK) {
        rc = fail(&err, logpath);
        goto done;
    }
    fprintf(stderr, TOOL ": wrote %s, %s and %s (%.0f s)\n", path, cpath, logpath,
            ti_now_seconds() - t0);
done:
    ti_wopt_free(&ov);
    ti_wopt_free(&ot);
    ti_wopt_free(&ou);
    free(log.p);
    free(img);
    free(eps);
    free(z);
    free(noise);
    free(px);
    free(ids);
    free(ts);
    free(moms);
    free(caps);
    free(have);
    run_free(&r);
    return rc;
}

static ti_status write_ppm(const char *path, const uint8_t *rgb, int W, int H, struct ti_err *err) {
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", W, H);
    struct ti_outfile f;
    ti_status st = ti_outfile_open(&f, path, err);
    if (st == TI_OK) st = ti_outfile_write(&f, hdr, (size_t)hl, err);
    if (st == TI_OK) st = ti_outfile_write(&f, rgb, (size_t)W * H * 3, err);
    if (st == TI_OK) return ti_outfile_commit(&f, err);
    ti_outfile_abort(&f);
    return st;
}

/* eps loss with the true captions, shuffled captions (image b gets caption b+1) and "" */
static int cond_check(struct run *r, const struct opts *o, const void *unused) {
    (void)unused;
    struct ti_err err = {0};
    struct ti_shapes_spec sp;
    ti_shapes_spec_default(&sp);
    sp.size = r->cfg.pixel_size;
    int S = sp.size, C = r->m.vae_hp.embed_dim, h = S >> (r->m.vae_hp.n_levels - 1), B = 32;
    size_t ipi = (size_t)3 * S * S, lpi = (size_t)C * h * h;
    float *img = malloc((size_t)B * ipi * sizeof *img), *z = malloc((size_t)B * lpi * sizeof *z),
          *eps = malloc((size_t)B * lpi * sizeof *eps), *nz = malloc((size_t)B * lpi * sizeof *nz);
    uint8_t *px = malloc(ipi);
    int32_t *ids[3];
    for (int k = 0; k < 3; k++)
        ids[k] = malloc((size_t)B * TI_TOKENS_MAX * sizeof *ids[k]);
    int ts[32], rc = 0;
    char caps[32][TI_SHAPES_CAPTION_MAX];
    double sum[3] = {0};
    long nb = 0;
    struct ti_rng rng;
    ti_rng_seed(&rng, 12345);
    for (long i0 = 0;
         rc == 0 && img && z && eps && nz && px && ids[0] && ids[1] && ids[2] && i0 < o->cond_check;
         i0 += B, nb++) {
        for (int b = 0; b < B; b++)
            if (shapes_chw(&sp, (1ull << 46) + (uint64_t)(i0 + b), img + (size_t)b * ipi, px,
                           caps[b], &err))
                rc = fail(&err, "data");
        for (int b = 0; rc == 0 && b < B; b++) {
            const char *cs[3] = {caps[b], caps[(b + 1) % B], ""};
            for (int k = 0; k < 3; k++) {
                struct ti_token_ids ti;
                if (ti_tokenizer_encode(&ti, r->tok, cs[k], strlen(cs[k]), &err) != TI_OK) {
                    rc = fail(&err, "caption");
                    break;
                }
                memcpy(ids[k] + (size_t)b * TI_TOKENS_MAX, ti.ids, sizeof ti.ids);
            }
            ts[b] = (int)ti_rng_below(&rng, (uint64_t)r->sched.T);
        }
        ti_rng_normal_f32(&rng, eps, (size_t)B * lpi);
        ti_rng_normal_f32(&rng, nz, (size_t)B * lpi);
        if (rc == 0 && ti_pretrain_latents(&r->ctx, &r->m, img, eps, B, r->cfg.model.scale_factor,
                                           z, &err) != TI_OK)
            rc = fail(&err, "latents");
        for (int k = 0; rc == 0 && k < 3; k++) {
            double l;
            if (ti_pretrain_eps_loss(&r->ctx, &r->m, &r->sched, z, nz, ts, ids[k], B, &l, &err) !=
                TI_OK)
                rc = fail(&err, "loss");
            sum[k] += l;
        }
    }
    if (rc == 0 && nb > 0)
        printf("eps loss over %ld images: true captions %.5f, shuffled %.5f, empty %.5f\n", nb * B,
               sum[0] / nb, sum[1] / nb, sum[2] / nb);
    free(img);
    free(z);
    free(eps);
    free(nz);
    free(px);
    for (int k = 0; k < 3; k++)
        free(ids[k]);
    return rc;
}

static int eval(struct opts *o) {
    struct run r;
    memset(&r, 0, sizeof r);
    struct ti_err err = {0};
    struct ti_data_err de = {{0}};
    int rc = setup(&r, o->config, o->ckpt, 0, 0);
    struct ti_shapes_classifier *cl = malloc(sizeof *cl);
    char(*prompts)[96] = NULL;
    const char **pp = NULL;
    float *xh = NULL;
    uint8_t *rgb = NULL;
    struct ti_torch_gen *gens = NULL;
    if (rc) goto done;
    if (!cl || ti_shapes_classifier_init(cl, &de)) {
        fprintf(stderr, TOOL ": classifier: %s\n", cl ? de.msg : "out of memory");
        rc = 1;
        goto done;
    }
    int S = r.cfg.pixel_size, C = r.m.vae_hp.embed_dim, h = S >> (r.m.vae_hp.n_levels - 1);
    double sf = r.cfg.model.scale_factor;
    const int NS = TI_SHAPE_COUNT - 1, NC = TI_COLOUR_NAMED_COUNT, NCL = NS * NC;
    int n = (int)o->n, N = NCL * n;
    size_t per = (size_t)C * h * h;
    prompts = malloc((size_t)N * sizeof *prompts);
    pp = malloc((size_t)N * sizeof *pp);
    xh = malloc((size_t)N * per * sizeof *xh);
    rgb = malloc((size_t)N * S * S * 3);
    gens = malloc((size_t)N * sizeof *gens);
    if (!prompts || !pp || !xh || !rgb || !gens) {
        fprintf(stderr, TOOL ": out of memory\n");
        rc = 1;
        goto done;
    }
    if (o->recon > 0) {
        /* the autoencoder's ceiling: classify reconstructions of data set images */
        struct ti_shapes_spec sp;
        ti_shapes_spec_default(&sp);
        sp.size = S;
        float *chw = malloc((size_t)3 * S * S * sizeof *chw);
        uint8_t *recon_dump = o->grid ? calloc((size_t)16 * S * 2 * S * 3, 1) : NULL;
        uint8_t *px = malloc((size_t)S * S * 3), *out = malloc((size_t)S * S * 3);
        int ok_s = 0, ok_c = 0, cnt = 0, col_n[TI_COLOUR_COUNT] = {0},
            col_ok[TI_COLOUR_COUNT] = {0}, tex_n[TI_TEXTURE_COUNT] = {0},
            tex_ok[TI_TEXTURE_COUNT] = {0};
        for (long i = 0; chw && px && out && i < o->recon; i++) {
            struct ti_shapes_attr a;
            if (ti_shapes_sample(&sp, (1ull << 44) + (uint64_t)i, &a, px, NULL, 0, &de)) break;
            for (int c = 0; c < 3; c++)
                for (int j = 0; j < S * S; j++)
                    chw[(size_t)c * S * S + j] = (float)px[(size_t)j * 3 + c] / 127.5f - 1.0f;
            struct ti_tensor zt = ti_tensor_none();
            int64_t zs[4] = {1, C, h, h};
            if (ti_pretrain_latents(&r.ctx, &r.m, chw, NULL, 1, sf, xh, &err) != TI_OK ||
                ti_ctx_upload(&r.ctx, &zt, xh, TI_DTYPE_F32, 4, zs) != TI_OK ||
                ti_sampler_decode_rgb(&r.ctx, &r.m, sf, &zt, out, &err) != TI_OK) {
                ti_tensor_release(&zt);
                break;
            }
            ti_tensor_release(&zt);
            struct ti_shapes_label lab;
            if (ti_shapes_classify(&lab, cl, out, S, S, &de)) break;
            if (recon_dump && i < 16) /* original above, reconstruction below */
                for (int y = 0; y < S; y++) {
                    memcpy(recon_dump + ((size_t)y * 16 * S + (size_t)i * S) * 3,
                           px + (size_t)y * S * 3, (size_t)S * 3);
                    memcpy(recon_dump + ((size_t)(S + y) * 16 * S + (size_t)i * S) * 3,
                           out + (size_t)y * S * 3, (size_t)S * 3);
                }
            ok_s += lab.shape == (int)a.shape;
            ok_c += lab.colour == (int)a.colour;
            col_n[a.colour]++;
            col_ok[a.colour] += lab.colour == (int)a.colour;
            tex_n[a.texture]++;
            tex_ok[a.texture] += lab.colour == (int)a.colour;
            cnt++;
        }
        printf("reconstructions: %d images, shape %.1f %%, colour %.1f %%\n", cnt,
               cnt ? 100.0 * ok_s / cnt : 0, cnt ? 100.0 * ok_c / cnt : 0);
        printf("reconstructed colour per colour:");
        for (int c = 0; c < TI_COLOUR_COUNT; c++)
            if (col_n[c])
                printf(" %s %d/%d", ti_colour_name((enum ti_colour)c), col_ok[c], col_n[c]);
        printf("\nreconstructed colour per texture:");
        for (int t = 0; t < TI_TEXTURE_COUNT; t++)
            if (tex_n[t])
                printf(" %s %d/%d", ti_texture_name((enum ti_texture)t), tex_ok[t], tex_n[t]);
        printf("\n");
        if (recon_dump) {
            char rp[4200];
            snprintf(rp, sizeof rp, "%s.recon.ppm", o->grid);
            if (write_ppm(rp, recon_dump, 16 * S, 2 * S, &err) != TI_OK) rc = fail(&err, rp);
        }
        free(recon_dump);
        free(chw);
        free(px);
        free(out);
    }
    if (o->cond_check > 0 && cond_check(&r, o, cl) != 0) {
        rc = 1;
        goto done;
    }
    for (int s = 0; s < NS; s++)
        for (int c = 0; c < NC; c++)
            for (int k = 0; k < n; k++) {
                int i = (s * NC + c) * n + k;
                const char *col = ti_colour_name((enum ti_colour)c);
                snprintf(prompts[i], sizeof prompts[i], "a photo of a %s %s", col,
                         ti_shape_name((enum ti_shape)s));
                if (col[0] == 'o') /* "an orange ..." as the captions say it */
                    snprintf(prompts[i], sizeof prompts[i], "a photo of an %s %s", col,
                             ti_shape_name((enum ti_shape)s));
                pp[i] = prompts[i];
                ti_torch_gen_seed(&gens[i], o->seed + (uint64_t)i);
                ti_torch_randn(&gens[i], xh + (size_t)i * per, per);
            }
    /* sample in chunks of 64 images */
    double t0 = ti_now_seconds();
    const char *empty[64];
    for (int i = 0; i < 64; i++)
        empty[i] = "";
    for (int b0 = 0; b0 < N; b0 += 64) {
        int B = N - b0 < 64 ? N - b0 : 64;
        struct ti_tensor cond = ti_tensor_none(), unc = ti_tensor_none(), x = ti_tensor_none();
        int64_t xs[4] = {B, C, h, h};
        struct ti_sampler_opts so = {.steps = (int)o->steps, .eta = 0.0, .scale = o->scale};
        ti_status st = ti_pretrain_encode(&r.ctx, &r.m, r.tok, pp + b0, B, &cond, &err);
        if (st == TI_OK) st = ti_pretrain_encode(&r.ctx, &r.m, r.tok, empty, B, &unc, &err);
        if (st == TI_OK) st = ti_ctx_upload(&r.ctx, &x, xh + (size_t)b0 * per, TI_DTYPE_F32, 4, xs);
        if (st == TI_OK)
            st = ti_sampler_run(&r.ctx, &r.m, &r.sched, &so, &cond, o->scale != 1.0 ? &unc : NULL,
                                &x, gens + b0, NULL, NULL, &err);
        if (st == TI_OK)
            st = ti_sampler_decode_rgb(&r.ctx, &r.m, sf, &x, rgb + (size_t)b0 * S * S * 3, &err);
        ti_tensor_release(&cond);
        ti_tensor_release(&unc);
        ti_tensor_release(&x);
        if (st != TI_OK) {
            if (!err.msg[0]) snprintf(err.msg, sizeof err.msg, "%s", r.ctx.err.msg);
            rc = fail(&err, "sampling");
            goto done;
        }
    }
    printf("eval: %d classes x %d samples, DDIM %ld steps, scale %g, seed %llu (%.0f s)\n", NCL, n,
           o->steps, o->scale, (unsigned long long)o->seed, ti_now_seconds() - t0);
    printf("%-10s %-8s %7s %7s %7s\n", "shape", "colour", "shape%", "colour%", "both%");
    int tot_s = 0, tot_c = 0, tot_b = 0, sh_ok[TI_SHAPE_COUNT] = {0}, co_ok[TI_COLOUR_COUNT] = {0};
    for (int s = 0; s < NS; s++)
        for (int c = 0; c < NC; c++) {
            int ks = 0, kc = 0, kb = 0;
            for (int k = 0; k < n; k++) {
                int i = (s * NC + c) * n + k;
                struct ti_shapes_label lab;
                if (ti_shapes_classify(&lab, cl, rgb + (size_t)i * S * S * 3, S, S, &de)) {
                    fprintf(stderr, TOOL ": classifier: %s\n", de.msg);
                    rc = 1;
                    goto done;
                }
                ks += lab.shape == s;
                kc += lab.colour == c;
                kb += lab.shape == s && lab.colour == c;
            }
            printf("%-10s %-8s %7.1f %7.1f %7.1f\n", ti_shape_name((enum ti_shape)s),
                   ti_colour_name((enum ti_colour)c), 100.0 * ks / n, 100.0 * kc / n,
                   100.0 * kb / n);
            tot_s += ks;
            tot_c += kc;
            tot_b += kb;
            sh_ok[s] += ks;
            co_ok[c] += kc;
        }
    printf("per shape:");
    for (int s = 0; s < NS; s++)
        printf(" %s %.0f%%", ti_shape_name((enum ti_shape)s), 100.0 * sh_ok[s] / (NC * n));
    printf("\nper colour:");
    for (int c = 0; c < NC; c++)
        printf(" %s %.0f%%", ti_colour_name((enum ti_colour)c), 100.0 * co_ok[c] / (NS * n));
    printf("\nall: shape %.1f %%, colour %.1f %%, both %.1f %%\n", 100.0 * tot_s / N,
           100.0 * tot_c / N, 100.0 * tot_b / N);
    if (o->grid) {
        /* raw PPM grid: first 8 classes (rows) x n samples */
        int rows = 8 < NCL ? 8 : NCL, cols = n, W = cols * S, H = rows * S;
        uint8_t *g = malloc((size_t)W * H * 3);
        if (g) {
            for (int rr = 0; rr < rows; rr++)
                for (int cc = 0; cc < cols; cc++)
                    for (int y = 0; y < S; y++)
                        memcpy(g + ((size_t)(rr * S + y) * W + (size_t)cc * S) * 3,
                               rgb + ((size_t)(rr * n + cc) * S * S + (size_t)y * S) * 3,
                               (size_t)S * 3);
            if (write_ppm(o->grid, g, W, H, &err) != TI_OK) rc = fail(&err, o->grid);
            free(g);
        }
    }
done:
    free(cl);
    free(prompts);
    free(pp);
    free(xh);
    free(rgb);
    free(gens);
    run_free(&r);
    return rc;
}

/* ti-pretrain half: the model with its text encoder and UNet rounded to float16 */
static int half(struct opts *o) {
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = setup(&r, o->config, o->ckpt, 0, 0);
    struct ti_err err = {0};
    if (!rc && ti_ldm_save_as(&r.m, o->out, TI_LDM_UNET | TI_LDM_TEXT, &err) != TI_OK)
        rc = fail(&err, o->out);
    if (!rc) printf(TOOL ": wrote %s (text encoder and UNet float16)\n", o->out);
    run_free(&r);
    return rc;
}
#endif /* TI_HAVE_DATA */

int main(int argc, char **argv) {
    struct opts o;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (parse_args(&o, argc, argv) != 0) return 2;
#ifdef TI_HAVE_DATA
    return o.eval ? eval(&o) : o.half ? half(&o) : train(&o);
#else
    fprintf(stderr, TOOL ": ti was built without data/ (stb missing): the shapes data set and "
                         "its classifier are not available\n");
    return 1;
#endif
}
