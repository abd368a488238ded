/*
 * train_run.c - ti-train's run machinery (train_run.h): the data stream, the resume files, the
 * embedding / image / plot outputs and the dry run. Prints nothing; ti_train.c reports.
 */
/* needs data/ (built only with the stb headers): without it ti-train says so and this file is
 * empty */
#ifdef TI_HAVE_DATA
#include "train_run.h"

#include <errno.h>  /* defines: errno */
#include <math.h>   /* defines: sqrt, log, cos, sin */
#include <stdio.h>  /* defines: snprintf, fopen */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: strcmp, strlen */
#include <unistd.h> /* defines: unlink, getcwd */

#include "context.h"      /* defines: struct ti_ctx */
#include "embedding_io.h" /* defines: ti_embedding_write */
#include "fileio.h"       /* defines: ti_path_is_dir, ti_path_stem, ti_fmap */
#include "image.h"        /* defines: struct ti_image, ti_image_write_* */
#include "text_image.h"   /* defines: ti_image_text (the conditioning grid) */
#include "ldm.h"          /* defines: struct ti_ldm */
#include "ops.h"          /* defines: ti_copy */
#include "sampler.h"      /* defines: ti_sampler_run, ti_sampler_decode */
#include "torch_gen.h"    /* defines: ti_torch_gen, ti_torch_randn */
#include "vae.h"          /* defines: ti_vae_encode, ti_vae_decode */

/* ---- the deterministic data stream ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* uniform in [0,1) from (seed, k, j) */
static double hash_uniform(uint64_t seed, uint64_t k, uint64_t j) {
    uint64_t h = mix64(seed ^ mix64(k * 4 + j + 0x5851f42d4c957f2dULL));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* 64 random bits from (seed, salt, k, j): the per-sample randomness of the run */
static uint64_t ctr_bits(uint64_t seed, uint64_t salt, uint64_t k, uint64_t j) {
    return mix64(seed ^ mix64(salt ^ mix64(k ^ mix64(j + 0x632be59bd9b4e019ULL))));
}
static double ctr_uniform(uint64_t seed, uint64_t salt, uint64_t k, uint64_t j) {
    return (double)(ctr_bits(seed, salt, k, j) >> 11) * (1.0 / 9007199254740992.0);
}
/* n standard normals (Box-Muller on pairs of counter uniforms) */
static void ctr_normals(float *out, size_t n, uint64_t seed, uint64_t salt, uint64_t k) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ctr_uniform(seed, salt, k, i), u2 = ctr_uniform(seed, salt, k, i + 1);
        double rad = sqrt(-2.0 * log(1.0 - u1)), th = 6.283185307179586 * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
}
enum { SALT_T = 0x7431, SALT_NOISE = 0x6e6f69, SALT_EPS = 0x657073 };

void ti_train_sample_randomness(uint64_t seed, uint64_t k, int T, int *t, float *noise, float *eps,
                                size_t n) {
    *t = (int)(ctr_uniform(seed, SALT_T, k, 0) * T);
    if (*t >= T) *t = T - 1;
    ctr_normals(noise, n, seed, SALT_NOISE, k);
    ctr_normals(eps, n, seed, SALT_EPS, k);
}

static size_t stream_index(struct ti_train_stream *s, uint64_t k) {
    int64_t e = (int64_t)(k / s->len);
    if (e != s->epoch) {
        uint64_t st = mix64(s->seed ^ mix64((uint64_t)e + 0x243f6a8885a308d3ULL));
        for (size_t i = 0; i < s->len; i++)
            s->perm[i] = i;
        for (size_t i = s->len; i > 1; i--) { /* Fisher-Yates */
            st = mix64(st);
            size_t j = (size_t)(st % i);
            size_t t = s->perm[i - 1];
            s->perm[i - 1] = s->perm[j];
            s->perm[j] = t;
        }
        s->epoch = e;
    }
    return s->perm[k % s->len];
}

/* ---- resume state --------------------------------------------------------------------------- */
/* checkpoints/resume.txt names the trainer state of the same step, written before it:
 *   ti-train resume 1
 *   step <global step: optimizer steps attempted, skipped ones included>
 *   state resume_gs-<step>.state                                                            */

ti_status ti_train_write_resume(struct ti_trainer *t, const char *ckdir, int64_t step,
                                int64_t prev_step, uint64_t data_fp, struct ti_err *err) {
    char path[4300], text[256];
    snprintf(path, sizeof path, "%s/resume_gs-%lld.state", ckdir, (long long)step);
    TI_TRY(ti_trainer_save_state(t, path, err));
    snprintf(text, sizeof text,
             "ti-train resume 1\nstep %lld\nstate resume_gs-%lld.state\ndata %016llx\n",
             (long long)step, (long long)step, (unsigned long long)data_fp);
    snprintf(path, sizeof path, "%s/resume.txt", ckdir);
    TI_TRY(ti_write_text_atomic(path, text, err));
    if (prev_step >= 0 && prev_step != step) {
        snprintf(path, sizeof path, "%s/resume_gs-%lld.state", ckdir, (long long)prev_step);
        unlink(path);
    }
    return TI_OK;
}

ti_status ti_train_read_resume(const char *ckdir, int64_t *step, char *state, size_t cap,
                               uint64_t *data_fp, struct ti_err *err) {
    char path[4600];
    if (snprintf(path, sizeof path, "%s/resume.txt", ckdir) >= (int)sizeof path)
        return ti_error(err, TI_ERR_INVALID, "--resume: the path '%s' is too long", ckdir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ti_error(err, TI_ERR_NOT_FOUND,
                        "--resume: '%s' is missing: the run saved no resume state (it ended before "
                        "its first checkpoint, or was not made by ti-train)",
                        path);
    long long s = -1;
    char name[256] = "";
    int ok = fscanf(f, "ti-train resume 1 step %lld state %255s", &s, name) == 2;
    unsigned long long fp = 0;
    if (ok && fscanf(f, " data %llx", &fp) != 1) fp = 0;
    *data_fp = fp;
    fclose(f);
    if (!ok || s < 0)
        return ti_error(err, TI_ERR_FORMAT,
                        "--resume: '%s': expected 'ti-train resume 1', 'step N', 'state FILE'",
                        path);
    *step = s;
    if ((size_t)snprintf(state, cap, "%s/%s", ckdir, name) >= cap)
        return ti_error(err, TI_ERR_INVALID, "--resume: the path '%s' is too long", ckdir);
    return TI_OK;
}

/* args.txt: the command line of the run, one argument per line, for --resume */
ti_status ti_train_write_args(const char *rundir, const char *now, int argc, char **argv,
                              struct ti_err *err) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd) || strchr(cwd, '\n')) cwd[0] = 0;
    size_t n = strlen(now) + strlen(cwd) + 64;
    for (int i = 1; i < argc; i++) {
        if (strchr(argv[i], '\n'))
            return ti_error(err, TI_ERR_INVALID,
                            "argument %d contains a line break: cannot be saved for --resume", i);
        n += strlen(argv[i]) + 1;
    }
    char *buf = malloc(n), *p = buf;
    if (!buf) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    /* the working folder too: the arguments' relative paths are relative to it */
    p += sprintf(p, "#ti-train args 1\n#now %s\n#cwd %s\n", now, cwd);
    for (int i = 1; i < argc; i++)
        p += sprintf(p, "%s\n", argv[i]);
    char path[4300];
    snprintf(path, sizeof path, "%s/args.txt", rundir);
    ti_status st = ti_write_text_atomic(path, buf, err);
    free(buf);
    return st;
}

static int has_args_file(const char *dir) {
    char p[4400];
    return snprintf(p, sizeof p, "%s/args.txt", dir) < (int)sizeof p && ti_path_exists(p);
}

int ti_train_resume_folder(const char *arg, char *out, size_t cap) {
    snprintf(out, cap, "%s", arg);
    size_t L = strlen(out);
    while (L > 1 && out[L - 1] == '/')
        out[--L] = 0;
    int strip = 0;
    if (!ti_path_is_dir(out))
        strip = ti_path_exists(out) ? 2 : 0; /* main.py: logdir = "/".join(paths[:-2]) */
    else if (!has_args_file(out))
        strip = 1; /* RUN/checkpoints */
    char cand[4300];
    snprintf(cand, sizeof cand, "%s", out);
    for (int k = 0; k < strip; k++) {
        char *slash = strrchr(cand, '/');
        if (!slash) {
            snprintf(cand, sizeof cand, "%s", ".");
            break;
        }
        if (slash == cand)
            slash[1] = 0;
        else
            *slash = 0;
    }
    if (!strip || !ti_path_is_dir(cand) || !has_args_file(cand)) return 0;
    snprintf(out, cap, "%s", cand);
    return 1;
}

ti_status ti_train_read_args(struct ti_train_saved_args *sa, const char *rundir,
                             struct ti_err *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/args.txt", rundir);
    struct ti_fmap m;
    if (!ti_path_is_dir(rundir))
        return ti_error(err, TI_ERR_NOT_FOUND, "--resume: '%s' is not a folder", rundir);
    if (ti_fmap_open(&m, path, err) != TI_OK)
        return ti_error(err, TI_ERR_NOT_FOUND, "--resume: '%s' is not a ti-train run folder",
                        rundir);
    sa->text = malloc(m.size + 1);
    if (!sa->text) {
        ti_fmap_close(&m);
        return ti_error(err, TI_ERR_NOMEM, "out of memory");
    }
    if (m.size) memcpy(sa->text, m.data, m.size);
    sa->text[m.size] = 0;
    ti_fmap_close(&m);
    sa->argc = 0;
    sa->argv[sa->argc++] = (char *)"ti-train";
    int header = 0;
    for (char *line = sa->text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strcmp(line, "#ti-train args 1"))
            header = 1;
        else if (!strncmp(line, "#now ", 5))
            snprintf(sa->now, sizeof sa->now, "%s", line + 5);
        else if (!strncmp(line, "#cwd ", 5))
            snprintf(sa->cwd, sizeof sa->cwd, "%s", line + 5);
        else if (sa->argc < (int)(sizeof sa->argv / sizeof sa->argv[0]))
            sa->argv[sa->argc++] = line;
        line = nl ? nl + 1 : NULL;
    }
    if (!header || !sa->now[0])
        return ti_error(err, TI_ERR_FORMAT, "--resume: '%s' is not a ti-train args file", path);
    return TI_OK;
}

/* ---- outputs -------------------------------------------------------------------------------- */

const char *ti_train_emb_ext(enum ti_embedding_format f) {
    return f == TI_EMB_DIFFUSERS ? "safetensors" : "pt";
}

static ti_status save_embeddings(struct ti_train_run *r, int64_t step, struct ti_err *err) {
    struct ti_embedding emb;
    ti_embedding_init(&emb);
    ti_status st = ti_emb_manager_to_embedding(ti_trainer_embeddings(r->t), &emb, err);
    if (st == TI_OK) st = ti_embedding_set_meta(&emb, r->nowname, step, NULL, r->model_stem, err);
    enum ti_embedding_format fmt = r->a.format;
    if (st == TI_OK && emb.n_terms > 1 && fmt != TI_EMB_PEER) fmt = TI_EMB_PEER; /* warned */
    char path[4400];
    if (st == TI_OK) {
        snprintf(path, sizeof path, "%s/embeddings_gs-%lld.%s", r->ckdir, (long long)step,
                 ti_train_emb_ext(fmt));
        st = ti_embedding_write(&emb, path, fmt, err);
    }
    if (st == TI_OK) {
        snprintf(path, sizeof path, "%s/embeddings.%s", r->ckdir, ti_train_emb_ext(fmt));
        st = ti_embedding_write(&emb, path, fmt, err);
    }
    ti_embedding_free(&emb);
    return st;
}

static ti_status save_plot(struct ti_train_run *r, struct ti_err *err) {
    struct ti_image img;
    struct ti_data_err de;
    if (ti_image_alloc(&img, 640, 360, &de) != 0)
        return ti_error(err, TI_ERR_NOMEM, "loss plot: %s", de.msg);
    ti_metrics_plot(r->metrics, img.px, img.w, img.h);
    char path[4300];
    snprintf(path, sizeof path, "%s/loss.png", r->rundir);
    static const char *const text[] = {"Title", "ti-train loss per step", NULL};
    int rc = ti_image_write_png(&img, path, text, &de);
    ti_image_free(&img);
    if (rc != 0) return ti_error(err, TI_ERR_IO, "%s", de.msg);
    return TI_OK;
}

/* everything a checkpoint writes: embeddings, resume state, metrics, the plot */
ti_status ti_train_checkpoint(struct ti_train_run *r, int64_t emb_step, int64_t resume_step,
                              struct ti_err *err) {
    TI_TRY(save_embeddings(r, emb_step, err));
    if (r->cfg->model.unfreeze_model) {
        /* pivotal tuning trains model weights too: the latest model next to the embeddings (the
         * peer keeps full .ckpt files in this mode); only the latest, to bound the disk use */
        char path[4400];
        snprintf(path, sizeof path, "%s/model.safetensors", r->ckdir);
        TI_TRY(ti_ldm_save(ti_trainer_model(r->t), path, err));
    }
    /* the metrics rows before the resume state that points past them: a kill in between then
     * leaves extra rows (dropped on resume), never a gap */
    TI_TRY(ti_metrics_flush(r->metrics, 1, err));
    TI_TRY(ti_train_write_resume(r->t, r->ckdir, resume_step, r->resume_written, r->data_fp, err));
    r->resume_written = resume_step;
    return save_plot(r, err);
}

/* The n tiles in a grid (torchvision make_grid nrow 4, pad 2, grey 127) -> the JPEG of `key`;
 * frees the first `made` tiles. Writes nothing unless st (how making the tiles went) is TI_OK. */
static ti_status grid_jpeg(struct ti_train_run *r, struct ti_image *tiles, int n, int made,
                           ti_status st, const char *key, int64_t gs, int64_t epoch, int64_t batch,
                           struct ti_err *err) {
    struct ti_data_err de;
    struct ti_image grid = {0};
    if (st == TI_OK && ti_image_grid(&grid, tiles, n, 4, 2, 127, &de) != 0)
        st = ti_error(err, TI_ERR_NOMEM, "image log: %s", de.msg);
    char path[4400];
    ti_run_image_name(path, sizeof path, r->imgdir, key, gs, epoch, batch);
    if (st == TI_OK && ti_image_write_jpeg(&grid, path, 75, &de) != 0)
        st = ti_error(err, TI_ERR_IO, "%s", de.msg);
    ti_image_free(&grid);
    for (int i = 0; i < made; i++)
        ti_image_free(&tiles[i]);
    return st;
}

/* grid of n CHW images in [-1,1] -> JPEG (torchvision make_grid nrow 4, pad 2, grey 127) */
static ti_status write_grid(struct ti_train_run *r, const float *chw, int n, int size,
                            const char *key, int64_t gs, int64_t epoch, int64_t batch,
                            struct ti_err *err) {
    struct ti_image tiles[64];
    struct ti_data_err de;
    ti_status st = TI_OK;
    if (n > 64) n = 64;
    int made = 0;
    for (; made < n; made++)
        if (ti_image_from_chw(&tiles[made], chw + (size_t)made * 3 * size * size, size, size,
                              &de) != 0) {
            st = ti_error(err, TI_ERR_NOMEM, "image log: %s", de.msg);
            break;
        }
    return grid_jpeg(r, tiles, n, made, st, key, gs, epoch, batch, err);
}

/* `conditioning`: the batch's captions drawn as text on size x size canvases (the peer's
 * log_txt_as_img, data/text_image.h), make_grid as the other keys */
static ti_status write_caption_grid(struct ti_train_run *r, const char *const *captions, int n,
                                    int size, int64_t gs, int64_t epoch, int64_t batch,
                                    struct ti_err *err) {
    struct ti_image tiles[64];
    struct ti_data_err de;
    ti_status st = TI_OK;
    if (n > 64) n = 64;
    int made = 0;
    for (; made < n; made++)
        if (ti_image_text(&tiles[made], size, size, captions[made], NULL, &de) != 0) {
            st = ti_error(err, TI_ERR_NOMEM, "image log: conditioning: %s", de.msg);
            break;
        }
    return grid_jpeg(r, tiles, n, made, st, "conditioning", gs, epoch, batch, err);
}

/* prompts (B) -> conditioning (B, T, D) on ctx's device, with the current vectors. The
 * progressive-words counter is left as it was: logging does not change training. */
static ti_status encode(struct ti_train_run *r, struct ti_ctx *ctx, const char *const *prompts,
                        int B, struct ti_tensor *out, struct ti_err *err) {
    struct ti_emb_manager *em = ti_trainer_embeddings(r->t);
    const struct ti_ldm *m = ti_trainer_model(r->t);
    int T = r->cfg->seq_len;
    int32_t *idx = malloc((size_t)B * T * sizeof *idx);
    if (!idx) return ti_error(err, TI_ERR_NOMEM, "image log: out of memory");
    int64_t counter = em->progressive_counter;
    ti_status st =
        ti_emb_manager_batch_ids(em, ti_trainer_tokenizer(r->t), prompts, B, idx, T, err);
    em->progressive_counter = counter;
    struct ti_tensor it = ti_tensor_none(), rows = ti_tensor_none(), rf = ti_tensor_none();
    int64_t is[2] = {B, T}, rs[2] = {em->n_rows, em->dim};
    if (st == TI_OK) st = ti_ctx_upload(ctx, &it, idx, TI_DTYPE_I32, 2, is);
    if (st == TI_OK && em->n_rows > 0) {
        st = ti_ctx_upload(ctx, &rf, em->rows, TI_DTYPE_F32, 2, rs);
        if (st == TI_OK) st = ti_copy(ctx, &rows, &rf, r->dtype);
    }
    if (st == TI_OK)
        st = ti_text_encoder_forward(ctx, out, &m->text, &it, em->n_rows > 0 ? &rows : NULL);
    if (st != TI_OK && !err->msg[0]) *err = ctx->err;
    ti_tensor_release(&it);
    ti_tensor_release(&rf);
    ti_tensor_release(&rows);
    free(idx);
    return st;
}

/* `samples` (DDIM, eta 1, conditional) and `samples_scaled` (guidance 5.0 against ""), as
 * log_images; x_T from PyTorch's generator seeded with seed + global step (one per image) */
static ti_status log_samples(struct ti_train_run *r, struct ti_ctx *ctx,
                             const char *const *captions, int n, int64_t gs, int64_t epoch,
                             int64_t batch, struct ti_err *err) {
    const struct ti_ldm *m = ti_trainer_model(r->t);
    int C = r->cfg->model.channels, h = r->cfg->latent_size, size = r->cfg->data.train.size;
    size_t per = (size_t)C * h * h;
    float *xh = malloc((size_t)n * per * sizeof *xh);
    struct ti_torch_gen *gens = malloc((size_t)n * sizeof *gens);
    struct ti_image *imgs = calloc((size_t)n, sizeof *imgs);
    struct ti_image grid = {0};
    const char *empty[64];
    ti_status st = TI_OK;
    if (!xh || !gens || !imgs) st = ti_error(err, TI_ERR_NOMEM, "image log: out of memory");
    for (int b = 0; b < n && b < 64; b++)
        empty[b] = "";
    struct ti_tensor cond = ti_tensor_none(), uncond = ti_tensor_none();
    if (st == TI_OK) st = encode(r, ctx, captions, n, &cond, err);
    if (st == TI_OK) st = encode(r, ctx, empty, n, &uncond, err);
    static const char *const keys[2] = {"samples", "samples_scaled"};
    for (int k = 0; k < 2 && st == TI_OK; k++) {
        for (int b = 0; b < n; b++) {
            ti_torch_gen_seed(&gens[b], r->a.seed + (uint64_t)gs * 1000u + (uint64_t)b);
            ti_torch_randn(&gens[b], xh + (size_t)b * per, per);
        }
        struct ti_tensor x = ti_tensor_none();
        int64_t xs[4] = {n, C, h, h};
        st = ti_ctx_upload(ctx, &x, xh, TI_DTYPE_F32, 4, xs);
        struct ti_sampler_opts so;
        memset(&so, 0, sizeof so);
        so.steps = r->log_ddim_steps;
        so.eta = r->log_ddim_eta;
        so.scale = k == 0 ? 1.0 : 5.0;
        so.cancel = r->stop;
        if (st == TI_OK)
            st = ti_sampler_run(ctx, m, &r->sched, &so, &cond, k == 0 ? NULL : &uncond, &x, gens,
                                NULL, NULL, err);
        if (st == TI_OK) st = ti_sampler_decode(ctx, m, r->cfg->model.scale_factor, &x, imgs, err);
        ti_tensor_release(&x);
        struct ti_data_err de;
        if (st == TI_OK && ti_image_grid(&grid, imgs, n, 4, 2, 127, &de) != 0)
            st = ti_error(err, TI_ERR_NOMEM, "image log: %s", de.msg);
        char path[4400];
        ti_run_image_name(path, sizeof path, r->imgdir, keys[k], gs, epoch, batch);
        if (st == TI_OK && ti_image_write_jpeg(&grid, path, 75, &de) != 0)
            st = ti_error(err, TI_ERR_IO, "%s", de.msg);
        ti_image_free(&grid);
        for (int b = 0; b < n; b++)
            ti_image_free(&imgs[b]);
    }
    (void)size;
    ti_tensor_release(&cond);
    ti_tensor_release(&uncond);
    free(xh);
    free(gens);
    free(imgs);
    return st;
}

/* The image logger (§5.4): inputs, reconstruction (VAE round trip through the posterior mean),
 * conditioning (the captions drawn as text), samples and samples_scaled (log_images'
 * sample=True). Runs outside the trainer's context and RNG, so it never changes the
 * training numbers. */
ti_status ti_train_log_images(struct ti_train_run *r, const float *images,
                              const char *const *captions, int n, int64_t gs, int64_t epoch,
                              int64_t batch, const struct ti_backend *be, struct ti_err *err) {
    int size = r->cfg->data.train.size;
    if (n > r->max_images) n = r->max_images;
    if (n > 64) n = 64;
    if (n <= 0) return TI_OK;
    TI_TRY(write_grid(r, images, n, size, "inputs", gs, epoch, batch, err));
    const struct ti_ldm *m = ti_trainer_model(r->t);
    struct ti_ctx ctx;
    if (ti_ctx_init(&ctx, be, 0, 0) != TI_OK)
        return ti_error(err, TI_ERR_NOMEM, "image log: cannot create a context");
    ti_ctx_no_grad_begin(&ctx);
    struct ti_tensor x = ti_tensor_none(), xd = ti_tensor_none(), mom = ti_tensor_none(),
                     z = ti_tensor_none(), rec = ti_tensor_none(), recf = ti_tensor_none();
    int64_t shape[4] = {n, 3, size, size};
    float *host = NULL;
    ti_status st = ti_ctx_upload(&ctx, &x, images, TI_DTYPE_F32, 4, shape);
    if (st == TI_OK) st = ti_copy(&ctx, &xd, &x, r->dtype);
    if (st == TI_OK) st = ti_vae_encode(&ctx, &mom, &m->vae, &xd);
    if (st == TI_OK) st = ti_vae_sample(&ctx, &z, &m->vae, &mom, NULL);
    if (st == TI_OK) st = ti_vae_decode(&ctx, &rec, &m->vae, &z);
    if (st == TI_OK) st = ti_copy(&ctx, &recf, &rec, TI_DTYPE_F32);
    size_t cnt = (size_t)n * 3 * size * size;
    if (st == TI_OK && !(host = malloc(cnt * sizeof *host)))
        st = ti_error(&ctx.err, TI_ERR_NOMEM, "image log: out of memory");
    if (st == TI_OK) st = ti_ctx_download(&ctx, host, cnt * sizeof *host, &recf);
    if (st != TI_OK) {
        *err = ctx.err;
        if (!err->msg[0]) ti_error(err, st, "image log: reconstruction failed");
    }
    ti_tensor_release(&x);
    ti_tensor_release(&xd);
    ti_tensor_release(&mom);
    ti_tensor_release(&z);
    ti_tensor_release(&rec);
    ti_tensor_release(&recf);
    if (st == TI_OK) st = write_grid(r, host, n, size, "reconstruction", gs, epoch, batch, err);
    if (st == TI_OK) st = write_caption_grid(r, captions, n, size, gs, epoch, batch, err);
    free(host);
    if (st == TI_OK && r->log_sample) st = log_samples(r, &ctx, captions, n, gs, epoch, batch, err);
    ti_ctx_free(&ctx);
    return st;
}

ti_status ti_train_log_val_images(struct ti_train_run *r, int64_t gs, int64_t epoch,
                                  const struct ti_backend *be, struct ti_err *err) {
    int n = ti_dataset_n_images(r->ds), B = r->batch, size = r->cfg->data.train.size;
    size_t per = (size_t)3 * size * size;
    float *imgs = malloc((size_t)B * per * sizeof *imgs);
    char(*caps)[512] = malloc((size_t)B * sizeof *caps);
    const char **capp = malloc((size_t)B * sizeof *capp);
    char saved[sizeof r->imgdir];
    memcpy(saved, r->imgdir, sizeof saved);
    snprintf(r->imgdir, sizeof r->imgdir, "%s/images/val", r->rundir);
    ti_status st = TI_OK;
    if (!imgs || !caps || !capp) st = ti_error(err, TI_ERR_NOMEM, "val image log: out of memory");
    if (st == TI_OK) st = ti_mkdirs(r->imgdir, err);
    /* the val draws: another seed than the training stream's, one key per (epoch, image) */
    uint64_t s = r->stream.seed ^ 0x76616c5f6c6f6755ULL;
    for (int b = 0; st == TI_OK && b * B < n; b++) {
        int m = n - b * B < B ? n - b * B : B;
        for (int j = 0; j < m && st == TI_OK; j++) {
            size_t i = (size_t)b * B + (size_t)j;
            uint64_t k = (uint64_t)epoch * (uint64_t)n + i;
            struct ti_data_err de;
            capp[j] = caps[j];
            if (ti_dataset_example(r->ds, i, hash_uniform(s, k, 0), hash_uniform(s, k, 1),
                                   hash_uniform(s, k, 2), imgs + (size_t)j * per, caps[j],
                                   sizeof caps[j], &de) != 0)
                st = ti_error(err, TI_ERR_INVALID, "validation example %zu: %s", i, de.msg);
        }
        if (st == TI_OK) st = ti_train_log_images(r, imgs, capp, m, gs, epoch, b, be, err);
    }
    memcpy(r->imgdir, saved, sizeof saved);
    free(imgs);
    free(caps);
    free(capp);
    return st;
}

double ti_train_embedding_norm(const struct ti_emb_manager *em) {
    double s = 0;
    for (size_t i = 0; i < (size_t)em->n_rows * (size_t)em->dim; i++)
        s += (double)em->rows[i] * em->rows[i];
    return sqrt(s);
}

/* ---- dataset -------------------------------------------------------------------------------- */

int ti_train_open_dataset(struct ti_train_run *r, ti_data_warn_fn warn, void *user,
                          struct ti_err *err) {
    const struct ti_cfg_dataset *d = &r->cfg->data.train;
    struct ti_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.root = d->data_root;
    o.size = d->size;
    o.interp = d->interpolation == TI_INTERP_BILINEAR  ? TI_RESAMPLE_BILINEAR
               : d->interpolation == TI_INTERP_LANCZOS ? TI_RESAMPLE_LANCZOS
                                                       : TI_RESAMPLE_BICUBIC;
    o.center_crop = d->center_crop;
    o.flip_p = d->flip_p;
    o.repeats = d->repeats;
    o.is_train = 1;
    o.placeholder = d->placeholder_token;
    o.per_image_tokens = d->per_image_tokens;
    o.mixing_prob = d->mixing_prob;
    o.coarse_class_text = d->coarse_class_text[0] ? d->coarse_class_text : NULL;
    o.style = d->templates == TI_TEMPLATES_STYLE;
    struct ti_data_err de;
    if (r->a.templates) {
        if (ti_templates_load(&r->templates, r->a.templates, &de) != 0) {
            ti_error(err, TI_ERR_INVALID, "--templates: %s", de.msg);
            return -1;
        }
        o.templates = (const char *const *)r->templates.t;
        o.n_templates = r->templates.n;
    }
    if (ti_dataset_open(&r->ds, &o, warn, user, &de) != 0) {
        ti_error(err, TI_ERR_INVALID, "--data_root: %s", de.msg);
        return -1;
    }
    return 0;
}

/* example k of the stream into chw / caption */
ti_status ti_train_example(struct ti_train_run *r, uint64_t k, float *chw, char *caption,
                           size_t cap, struct ti_err *err) {
    size_t i = stream_index(&r->stream, k);
    uint64_t s = r->stream.seed;
    struct ti_data_err de;
    if (ti_dataset_example(r->ds, i, hash_uniform(s, k, 0), hash_uniform(s, k, 1),
                           hash_uniform(s, k, 2), chw, caption, cap, &de) != 0)
        return ti_error(err, TI_ERR_INVALID, "training example %zu: %s", i, de.msg);
    return TI_OK;
}

int ti_train_dry_run(struct ti_train_run *r, struct ti_err *err) {
    char dir[4300], path[4600];
    snprintf(dir, sizeof dir, "%s/data", r->rundir);
    if (ti_mkdirs(dir, err) != TI_OK) return 1;
    int n = ti_dataset_n_images(r->ds);
    size_t px = 0; /* the largest image (size: null keeps each image's own size) */
    for (int i = 0; i < n; i++) {
        char stem[256];
        const char *src = ti_dataset_image_path(r->ds, i);
        const struct ti_image *im = ti_dataset_image(r->ds, i);
        if ((size_t)im->w * im->h > px) px = (size_t)im->w * im->h;
        /* "NNN_<stem>.png" and the writer's temporary name beside it within NAME_MAX (255):
         * a long stem is cut at 200 bytes, never inside a UTF-8 sequence */
        ti_path_stem(src, stem, sizeof stem);
        size_t L = strlen(stem);
        if (L > 200) {
            L = 200;
            while (L > 0 && ((unsigned char)stem[L] & 0xC0) == 0x80)
                L--;
            stem[L] = 0;
        }
        snprintf(path, sizeof path, "%s/%03d_%s.png", dir, i, stem);
        const char *text[] = {"Source", src, NULL};
        struct ti_data_err de;
        if (ti_image_write_png(ti_dataset_image(r->ds, i), path, text, &de) != 0) {
            ti_error(err, TI_ERR_IO, "%s", de.msg);
            return 1;
        }
    }
    int size = r->cfg->data.train.size;
    if (size > 0) px = (size_t)size * size;
    float *chw = malloc(3 * px * sizeof *chw);
    size_t cap = 64 * 1024, used = 0;
    char *text = malloc(cap);
    if (!chw || !text) {
        free(chw);
        free(text);
        ti_error(err, TI_ERR_NOMEM, "out of memory");
        return 1;
    }
    text[0] = 0;
    for (uint64_t k = 0; k < 20; k++) {
        char cap_k[1024];
        if (ti_train_example(r, k, chw, cap_k, sizeof cap_k, err) != TI_OK) {
            free(chw);
            free(text);
            return 1;
        }
        used += (size_t)snprintf(text + used, cap - used, "%s\n", cap_k);
        if (used >= cap) used = cap - 1;
    }
    snprintf(path, sizeof path, "%s/captions.txt", dir);
    ti_status st = ti_write_text_atomic(path, text, err);
    free(chw);
    free(text);
    if (st != TI_OK) return 1;
    return 0;
}
#else
typedef int ti_train_run_unused_; /* ISO C: a translation unit is not empty */
#endif /* TI_HAVE_DATA */
