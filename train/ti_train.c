/*
 * ti_train.c - `ti-train`: textual inversion training, the peer's main.py for everything TI
 * uses (ti-peer.md §1), plus --resume, --dry_run, --precision and --format (cli.h, --help).
 *
 * Flow: command line -> merged config (run_log.h) -> the training images (data/dataset.h; zero
 * usable images is an error before any model is loaded) -> the LR line -> the trainer
 * (train/trainer.h: frozen model, embedding manager, AdamW) -> the run folder -> the loop:
 * micro-batches, optimizer step, metrics row, progress line, image logs at the image logger's
 * steps, embedding files at the checkpoint steps -> final files.
 *
 * Data order: the sample at position k of the stream (k = step * accumulate * batch + ...) is
 * a pure function of (seed, k): a seeded permutation of the dataset per epoch, and the three
 * uniforms of ti_dataset_example hashed from (seed, k). --resume therefore needs only the step
 * (plus the trainer's own state), and the same seed gives the same bits.
 *
 * Files: every file goes through a temporary name + rename (embedding_io, fileio, image writers,
 * metrics), so a kill at any moment leaves only complete files. SIGINT/SIGTERM end the current
 * step, then write embeddings.pt, embeddings_gs-<step>.pt and the resume state, and exit with
 * 130/143 after saying how to resume.
 *
 * Exit status: 0 done, 1 run-time error, 2 usage error, 130/143 interrupted (state saved).
 */
/* ti-train needs data/ (built only with the stb headers) and train/trainer.h; a build without
 * them still has the executable, which says what is missing. */
#if defined(TI_HAVE_DATA) && defined(__has_include)
#if __has_include("trainer.h") && __has_include("dataset.h")
#define TI_TRAIN_COMPLETE 1
#endif
#endif

#ifndef TI_TRAIN_COMPLETE
#include <stdio.h> /* defines: fprintf */

int main(void) {
    fprintf(stderr, "ti-train: this build has no training: it needs data/ (Debian libstb-dev) and "
                    "train/trainer.h\n");
    return 1;
}
#else
#include <errno.h>    /* defines: errno */
#include <limits.h>   /* defines: PATH_MAX */
#include <math.h>     /* defines: isfinite, sqrt */
#include <signal.h>   /* defines: sigaction, SIGINT, SIGTERM */
#include <stdio.h>    /* defines: printf, fprintf */
#include <stdlib.h>   /* defines: malloc, free */
#include <string.h>   /* defines: strcmp, strlen */
#include <sys/stat.h> /* defines: stat */
#include <time.h>     /* defines: time */
#include <unistd.h>   /* defines: unlink */

#include "backend.h"           /* defines: ti_backend_cpu, ti_backend_cuda */
#include "cli.h"               /* defines: struct ti_train_args */
#include "context.h"           /* defines: struct ti_ctx */
#include "dataset.h"           /* defines: ti_dataset_open, ti_dataset_example */
#include "embedding_io.h"      /* defines: ti_embedding_write */
#include "embedding_manager.h" /* defines: struct ti_emb_manager */
#include "fileio.h"            /* defines: ti_path_is_dir, ti_path_stem */
#include "image.h"             /* defines: struct ti_image, ti_image_write_* */
#include "ldm.h"               /* defines: struct ti_ldm */
#include "metrics.h"           /* defines: ti_metrics_*, ti_progress_* */
#include "ops.h"               /* defines: ti_copy */
#include "run_log.h"           /* defines: ti_train_config_build, ti_run_* */
#include "sampler.h"           /* defines: ti_sampler_run, ti_sampler_decode */
#include "schedule.h"          /* defines: ti_schedule_init */
#include "torch_gen.h"         /* defines: ti_torch_gen, ti_torch_randn */
#include "trainer.h"           /* defines: ti_trainer_* */
#include "vae.h"               /* defines: ti_vae_encode, ti_vae_decode */

#ifdef TI_HAVE_MPI
#include <mpi.h> /* defines: MPI_Init, MPI_Allreduce */
#endif

#define PROG "ti-train"

/* data-parallel processes (mpirun -np W ti-train ...; 1 without MPI). Rank 0 alone prints and
 * writes files; every rank trains on its share of each batch and the gradients are averaged. */
static int g_rank = 0, g_world = 1;

/* sums a few doubles over the ranks (in place) */
static void allreduce_sum(double *v, int n) {
#ifdef TI_HAVE_MPI
    if (g_world > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)v;
    (void)n;
#endif
}

/* the gradient averaged over the ranks, before the optimizer step */
static void allreduce_grad(struct ti_trainer *t) {
#ifdef TI_HAVE_MPI
    if (g_world <= 1) return;
    size_t n;
    float *g = ti_trainer_grad(t, &n);
    MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    float inv = 1.0f / (float)g_world;
    for (size_t i = 0; i < n; i++)
        g[i] *= inv;
#else
    (void)t;
#endif
}

/* ends every rank when one fails (the others would wait in the next all-reduce forever) */
static void abort_ranks(int rc) {
#ifdef TI_HAVE_MPI
    if (g_world > 1 && rc != 0) MPI_Abort(MPI_COMM_WORLD, rc);
#else
    (void)rc;
#endif
}

static volatile sig_atomic_t g_stop; /* the signal that asked to stop, 0 = none */

static void on_signal(int sig) {
    g_stop = sig;
    /* a second signal ends the process at once: every file on disk is complete anyway */
    signal(sig, SIG_DFL);
}

static void print_data_warning(void *user, const char *msg) {
    (void)user;
    fprintf(stderr, PROG ": warning: %s\n", msg);
}

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

struct stream {
    uint64_t seed;
    size_t len;    /* dataset length (n_images * repeats) */
    size_t *perm;  /* the current epoch's permutation */
    int64_t epoch; /* epoch of perm, -1 none */
};

static size_t stream_index(struct stream *s, uint64_t k) {
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

static ti_status write_resume(struct ti_trainer *t, const char *ckdir, int64_t step,
                              int64_t prev_step, struct ti_err *err) {
    char path[4300], text[256];
    snprintf(path, sizeof path, "%s/resume_gs-%lld.state", ckdir, (long long)step);
    TI_TRY(ti_trainer_save_state(t, path, err));
    snprintf(text, sizeof text, "ti-train resume 1\nstep %lld\nstate resume_gs-%lld.state\n",
             (long long)step, (long long)step);
    snprintf(path, sizeof path, "%s/resume.txt", ckdir);
    TI_TRY(ti_write_text_atomic(path, text, err));
    if (prev_step >= 0 && prev_step != step) {
        snprintf(path, sizeof path, "%s/resume_gs-%lld.state", ckdir, (long long)prev_step);
        unlink(path);
    }
    return TI_OK;
}

static ti_status read_resume(const char *ckdir, int64_t *step, char *state, size_t cap,
                             struct ti_err *err) {
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
static ti_status write_args(const char *rundir, const char *now, int argc, char **argv,
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

struct saved_args {
    char *text;
    char *argv[TI_TRAIN_MAX_OVERRIDES + 2 * TI_TRAIN_MAX_BASE + 64];
    int argc;
    char now[256];
    char cwd[4096]; /* the run's working folder ("" unknown) */
};

static ti_status read_args(struct saved_args *sa, const char *rundir, struct ti_err *err) {
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
    sa->argv[sa->argc++] = (char *)PROG;
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

struct run {
    struct ti_train_args a;
    struct ti_train_setup setup;
    const struct ti_config *cfg;
    char rundir[4096], ckdir[4200], imgdir[4200], now[256], nowname[512], model_stem[256];
    int64_t max_steps;
    int batch, accum, every_ckpt, img_freq, max_images;
    double lr;
    struct ti_dataset *ds;
    struct stream stream;
    struct ti_trainer *t;
    struct ti_metrics *metrics;
    int64_t resume_written; /* the step of the last resume state, -1 none */
    /* image logger: log_images' keyword defaults (§5.4), overridable through
     * lightning.callbacks.image_logger.params.log_images_kwargs.{sample,ddim_steps,ddim_eta} */
    int log_sample, log_ddim_steps;
    double log_ddim_eta;
    enum ti_dtype dtype;
    struct ti_schedule sched;
};

static const char *emb_ext(enum ti_embedding_format f) {
    return f == TI_EMB_DIFFUSERS ? "safetensors" : "pt";
}

static ti_status save_embeddings(struct run *r, int64_t step, struct ti_err *err) {
    struct ti_embedding emb;
    ti_embedding_init(&emb);
    ti_status st = ti_emb_manager_to_embedding(ti_trainer_embeddings(r->t), &emb, err);
    if (st == TI_OK) st = ti_embedding_set_meta(&emb, r->nowname, step, NULL, r->model_stem, err);
    enum ti_embedding_format fmt = r->a.format;
    if (st == TI_OK && emb.n_terms > 1 && fmt != TI_EMB_PEER) fmt = TI_EMB_PEER; /* warned */
    char path[4400];
    if (st == TI_OK) {
        snprintf(path, sizeof path, "%s/embeddings_gs-%lld.%s", r->ckdir, (long long)step,
                 emb_ext(fmt));
        st = ti_embedding_write(&emb, path, fmt, err);
    }
    if (st == TI_OK) {
        snprintf(path, sizeof path, "%s/embeddings.%s", r->ckdir, emb_ext(fmt));
        st = ti_embedding_write(&emb, path, fmt, err);
    }
    ti_embedding_free(&emb);
    return st;
}

static ti_status save_plot(struct run *r, struct ti_err *err) {
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
static ti_status checkpoint(struct run *r, int64_t emb_step, int64_t resume_step,
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
    TI_TRY(write_resume(r->t, r->ckdir, resume_step, r->resume_written, err));
    r->resume_written = resume_step;
    return save_plot(r, err);
}

/* grid of n CHW images in [-1,1] -> JPEG (torchvision make_grid nrow 4, pad 2, grey 127) */
static ti_status write_grid(struct run *r, const float *chw, int n, int size, const char *key,
                            int64_t gs, int64_t epoch, int64_t batch, struct ti_err *err) {
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

/* prompts (B) -> conditioning (B, T, D) on ctx's device, with the current vectors. The
 * progressive-words counter is left as it was: logging does not change training. */
static ti_status encode(struct run *r, struct ti_ctx *ctx, const char *const *prompts, int B,
                        struct ti_tensor *out, struct ti_err *err) {
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
static ti_status log_samples(struct run *r, struct ti_ctx *ctx, const char *const *captions, int n,
                             int64_t gs, int64_t epoch, int64_t batch, struct ti_err *err) {
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
 * samples and samples_scaled (log_images' sample=True). `conditioning` (captions drawn as
 * text) is not logged. Runs outside the trainer's context and RNG, so it never changes the
 * training numbers. */
static ti_status log_images(struct run *r, const float *images, const char *const *captions, int n,
                            int64_t gs, int64_t epoch, int64_t batch, const struct ti_backend *be,
                            struct ti_err *err) {
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
    free(host);
    if (st == TI_OK && r->log_sample) st = log_samples(r, &ctx, captions, n, gs, epoch, batch, err);
    ti_ctx_free(&ctx);
    return st;
}

static double embedding_norm(const struct ti_emb_manager *em) {
    double s = 0;
    for (size_t i = 0; i < (size_t)em->n_rows * (size_t)em->dim; i++)
        s += (double)em->rows[i] * em->rows[i];
    return sqrt(s);
}

/* ---- dataset -------------------------------------------------------------------------------- */

static int open_dataset(struct run *r, struct ti_err *err) {
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
    if (ti_dataset_open(&r->ds, &o, print_data_warning, NULL, &de) != 0) {
        ti_error(err, TI_ERR_INVALID, "--data_root: %s", de.msg);
        return -1;
    }
    return 0;
}

/* example k of the stream into chw / caption */
static ti_status stream_example(struct run *r, uint64_t k, float *chw, char *caption, size_t cap,
                                struct ti_err *err) {
    size_t i = stream_index(&r->stream, k);
    uint64_t s = r->stream.seed;
    struct ti_data_err de;
    if (ti_dataset_example(r->ds, i, hash_uniform(s, k, 0), hash_uniform(s, k, 1),
                           hash_uniform(s, k, 2), chw, caption, cap, &de) != 0)
        return ti_error(err, TI_ERR_INVALID, "training example %zu: %s", i, de.msg);
    return TI_OK;
}

static int dry_run(struct run *r, struct ti_err *err) {
    char dir[4300], path[4600];
    snprintf(dir, sizeof dir, "%s/data", r->rundir);
    if (ti_mkdirs(dir, err) != TI_OK) return 1;
    int n = ti_dataset_n_images(r->ds);
    for (int i = 0; i < n; i++) {
        char stem[256];
        const char *src = ti_dataset_image_path(r->ds, i);
        ti_path_stem(src, stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%03d_%s.png", dir, i, stem);
        const char *text[] = {"Source", src, NULL};
        struct ti_data_err de;
        if (ti_image_write_png(ti_dataset_image(r->ds, i), path, text, &de) != 0) {
            ti_error(err, TI_ERR_IO, "%s", de.msg);
            return 1;
        }
    }
    int size = r->cfg->data.train.size;
    const struct ti_image *im0 = ti_dataset_image(r->ds, 0);
    size_t px = size > 0 ? (size_t)size * size : (size_t)im0->w * im0->h;
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
        if (stream_example(r, k, chw, cap_k, sizeof cap_k, err) != TI_OK) {
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
    printf("dry run: %d image%s prepared at %dx%d (dataset length %zu with repeats %d), written "
           "to %s/; 20 sample captions in %s\n",
           n, n == 1 ? "" : "s", size > 0 ? size : im0->w, size > 0 ? size : im0->h,
           ti_dataset_len(r->ds), r->cfg->data.train.repeats, dir, path);
    printf("EXIF orientation: %s\n",
           ti_image_exif_supported() ? "applied" : "NOT applied (built without libexif)");
    printf("placeholder '%s'; batch %d; %lld steps; no model loaded\n",
           r->cfg->data.train.placeholder_token, r->batch, (long long)r->max_steps);
    return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

static int fail_run(struct run *r, const struct ti_err *err) {
    if (g_world > 1)
        fprintf(stderr, PROG " (rank %d): error: %s\n", g_rank, err->msg);
    else
        fprintf(stderr, PROG ": error: %s\n", err->msg);
    (void)r;
    abort_ranks(1);
    return 1;
}

static int run_main(int argc, char **argv) {
    static struct run R;
    struct run *r = &R;
    struct ti_err err = {0};
    char msg[1024];
    int pr = ti_train_args_parse(&r->a, argc, argv, msg, sizeof msg);
    if (pr > 0) {
        ti_train_usage(stdout);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, PROG ": %s\n(ti-train --help lists the flags)\n", msg);
        return 2;
    }
    r->resume_written = -1;

    /* --resume: the saved command line, with a new --max_steps / --quiet / --gpus on top */
    static struct saved_args sa;
    int64_t resume_step = -1;
    char resume_state[4400] = "";
    if (r->a.resume) {
        struct ti_train_args now_args = r->a;
        if (read_args(&sa, now_args.resume, &err) != TI_OK) return fail_run(r, &err);
        if (ti_train_args_parse(&r->a, sa.argc, sa.argv, msg, sizeof msg) != 0) {
            fprintf(stderr, PROG ": --resume: the saved command line is not valid: %s\n", msg);
            return 1;
        }
        r->a.resume = now_args.resume;
        if (now_args.max_steps > 0) r->a.max_steps = now_args.max_steps;
        if (now_args.quiet) r->a.quiet = 1;
        if (now_args.gpus) {
            r->a.gpus = now_args.gpus;
            r->a.n_gpus = now_args.n_gpus;
            memcpy(r->a.gpu_ids, now_args.gpu_ids, sizeof r->a.gpu_ids);
        }
        r->a.train = 1;
        /* the run folder as an absolute path, then the run's own working folder, so its
         * relative --base / --data_root / --actual_resume mean what they meant */
        char abs_run[PATH_MAX];
        if (!realpath(now_args.resume, abs_run)) {
            ti_error(&err, TI_ERR_NOT_FOUND, "--resume '%s': %s", now_args.resume, strerror(errno));
            return fail_run(r, &err);
        }
        if (sa.cwd[0] && chdir(sa.cwd) != 0)
            fprintf(stderr,
                    PROG ": warning: --resume: the run's working folder '%s' is gone (%s); "
                         "relative paths are taken from here\n",
                    sa.cwd, strerror(errno));
        snprintf(r->rundir, sizeof r->rundir, "%s", abs_run);
        size_t L = strlen(r->rundir);
        while (L > 1 && r->rundir[L - 1] == '/')
            r->rundir[--L] = 0;
        snprintf(r->now, sizeof r->now, "%s", sa.now);
        snprintf(r->ckdir, sizeof r->ckdir, "%s/checkpoints", r->rundir);
        if (read_resume(r->ckdir, &resume_step, resume_state, sizeof resume_state, &err) != TI_OK)
            return fail_run(r, &err);
    }

    /* backend and precision */
    const struct ti_backend *be = ti_backend_cpu();
    /* one GPU per process: several ids need as many processes (mpirun -np N), rank r on the
     * r-th id */
    if (r->a.n_gpus > 1 && r->a.n_gpus != g_world) {
        fprintf(stderr,
                PROG
                ": --gpus '%s' lists %d devices: ti-train drives one GPU per process; run "
                "it as mpirun -np %d ti-train ... (a build with MPI), or give one id (\"0,\")\n",
                r->a.gpus, r->a.n_gpus, r->a.n_gpus);
        abort_ranks(2);
        return 2;
    }
    int gpu = r->a.n_gpus > 1 ? r->a.gpu_ids[g_rank] : r->a.n_gpus == 1 ? r->a.gpu_ids[0] : -1;
    if (gpu >= 0 && ti_backend_cuda(&be, gpu, &err) != TI_OK) {
        fprintf(stderr, PROG ": --gpus %s: device %d: %s\n", r->a.gpus, gpu, err.msg);
        abort_ranks(1);
        return 1;
    }
    if (r->a.n_gpus == 0 && r->a.precision != TI_PREC_FP32) {
        fprintf(stderr,
                PROG ": --precision %s: the CPU computes in fp32 only; add --gpus 0, for "
                     "%s\n",
                ti_train_precision_name(r->a.precision), ti_train_precision_name(r->a.precision));
        return 2;
    }
    enum ti_dtype dtype = r->a.precision == TI_PREC_BF16   ? TI_DTYPE_BF16
                          : r->a.precision == TI_PREC_FP16 ? TI_DTYPE_F16
                                                           : TI_DTYPE_F32;

    /* config (§1.2) */
    if (ti_train_config_build(&r->setup, &r->a, &err) != TI_OK) return fail_run(r, &err);
    r->cfg = r->setup.cfg;
    const struct ti_config *cfg = r->cfg;
    for (int k = 0; k < cfg->n_warnings; k++)
        fprintf(stderr, PROG ": warning: %s\n", cfg->warnings[k].msg);
    if (g_world > 1 && cfg->model.unfreeze_model) {
        ti_error(&err, TI_ERR_CONFIG,
                 "model.params.unfreeze_model: data-parallel runs (mpirun) average only the "
                 "embedding gradient; train the model weights in one process");
        return fail_run(r, &err);
    }
    r->batch = cfg->data.batch_size;
    r->accum =
        cfg->lightning.accumulate_grad_batches > 0 ? cfg->lightning.accumulate_grad_batches : 1;
    r->max_steps = cfg->lightning.max_steps;
    if (r->max_steps <= 0) {
        /* the peer then runs for PL's 1000 epochs, i.e. "forever" (§1.5, §8.3-3) */
        r->max_steps = 6100;
        fprintf(stderr,
                PROG ": warning: lightning.trainer.max_steps is not set; training %lld steps (give "
                     "--max_steps N to change it)\n",
                (long long)r->max_steps);
    }
    r->every_ckpt = cfg->lightning.every_n_train_steps;
    if (r->every_ckpt <= 0)
        fprintf(stderr,
                PROG ": warning: lightning.modelcheckpoint.params.every_n_train_steps is not "
                     "set: embeddings are saved only at the end\n");
    r->img_freq = cfg->lightning.image_disabled ? 0 : cfg->lightning.image_batch_frequency;
    r->max_images = cfg->lightning.image_max_images > 0 ? cfg->lightning.image_max_images : 4;
    r->dtype = dtype;
    {
        const struct ti_yaml_node *kw =
            ti_yaml_get(ti_yaml_root(r->setup.doc),
                        "lightning.callbacks.image_logger.params.log_images_kwargs");
        int64_t steps = 200;
        int sample = 1;
        double eta = 1.0;
        if (kw && (ti_yaml_get_bool(kw, "sample", 1, &sample, &err) != TI_OK ||
                   ti_yaml_get_int(kw, "ddim_steps", 200, &steps, &err) != TI_OK ||
                   ti_yaml_get_float(kw, "ddim_eta", 1.0, &eta, &err) != TI_OK))
            return fail_run(r, &err);
        if (steps < 1 || steps > 1000 || eta < 0) {
            ti_error(&err, TI_ERR_CONFIG,
                     "lightning.callbacks.image_logger.params.log_images_kwargs: ddim_steps must "
                     "be 1..1000 and ddim_eta >= 0 (found %lld, %g)",
                     (long long)steps, eta);
            return fail_run(r, &err);
        }
        r->log_sample = sample;
        r->log_ddim_steps = (int)steps;
        r->log_ddim_eta = eta;
        if (ti_schedule_init(&r->sched, &cfg->model, &err) != TI_OK) return fail_run(r, &err);
        /* a step count the sampler refuses fails now, not at the first image log */
        struct ti_sampler_opts so;
        memset(&so, 0, sizeof so);
        so.steps = r->log_ddim_steps;
        so.eta = r->log_ddim_eta;
        so.scale = 5.0;
        if (r->log_sample && r->img_freq > 0 && ti_sampler_n_steps(&r->sched, &so, &err) < 0) {
            fprintf(stderr, PROG ": lightning.callbacks.image_logger.params.log_images_kwargs: ");
            return fail_run(r, &err);
        }
    }
    if (cfg->personalization.n_placeholders > 1 && r->a.format != TI_EMB_PEER)
        fprintf(stderr,
                PROG ": warning: %d placeholders: the embedding files are written in the "
                     "peer format (a1111 and diffusers files hold one)\n",
                cfg->personalization.n_placeholders);

    /* data, before any model (zero usable images is an error here) */
    if (open_dataset(r, &err) != 0) return fail_run(r, &err);
    r->stream.seed = r->a.seed;
    r->stream.len = ti_dataset_len(r->ds);
    r->stream.epoch = -1;
    r->stream.perm = malloc((r->stream.len ? r->stream.len : 1) * sizeof *r->stream.perm);
    if (!r->stream.perm) {
        ti_error(&err, TI_ERR_NOMEM, "out of memory for the data order");
        return fail_run(r, &err);
    }
    printf("train, PersonalizedBase, %zu\n", ti_dataset_len(r->ds));
    if (!ti_image_exif_supported())
        fprintf(stderr,
                PROG ": warning: built without libexif: EXIF orientation is not applied "
                     "(phone photos may train sideways; check images/train/inputs_gs-*.jpg)\n");

    /* run folder name (§1.4) */
    if (!r->a.resume) {
        ti_run_now_string(r->now, sizeof r->now, &r->a, time(NULL));
        char name[600];
        ti_run_dir_name(name, sizeof name, &r->a, r->now);
        snprintf(r->rundir, sizeof r->rundir, "%s/%s", r->a.logdir, name);
        /* two runs started in the same second with the same name would share a folder */
        for (int k = 1; ti_path_is_dir(r->rundir) && k < 1000; k++)
            snprintf(r->rundir, sizeof r->rundir, "%s/%s-%d", r->a.logdir, name, k);
        snprintf(r->ckdir, sizeof r->ckdir, "%s/checkpoints", r->rundir);
    }
    /* the embedding's `name`: the run name, else the data folder's; never the date, so the same
     * seed gives the same file bytes */
    if (r->a.name && *r->a.name)
        snprintf(r->nowname, sizeof r->nowname, "%s", r->a.name);
    else {
        char base[480];
        const char *dr = cfg->data.train.data_root;
        size_t L = strlen(dr);
        while (L > 1 && dr[L - 1] == '/')
            L--;
        size_t b0 = L;
        while (b0 > 0 && dr[b0 - 1] != '/')
            b0--;
        snprintf(base, sizeof base, "%.*s", (int)(L - b0), dr + b0);
        snprintf(r->nowname, sizeof r->nowname, "%s", base[0] ? base : "embedding");
    }
    snprintf(r->imgdir, sizeof r->imgdir, "%s/images/train", r->rundir);

    if (r->a.dry_run) {
        if (g_rank != 0) return 0;
        if (ti_run_write_configs(&r->setup, r->rundir, r->now, &err) != TI_OK)
            return fail_run(r, &err);
        int rc = dry_run(r, &err);
        if (rc) return fail_run(r, &err);
        return 0;
    }

    if (cfg->data.train.size <= 0) {
        ti_error(&err, TI_ERR_CONFIG,
                 "data.params.train.params.size: training needs one image size (the images are "
                 "batched), found none (size: null keeps each image's own size)");
        return fail_run(r, &err);
    }

    /* LR (§1.3), printed as the peer does */
    r->lr = ti_config_learning_rate(cfg, r->a.scale_lr);
    /* data-parallel processes count as the peer's GPUs (each takes a full batch) */
    int n_dev = g_world > 1 ? g_world : cfg->lightning.n_gpus;
    if (r->a.scale_lr && g_world > 1)
        r->lr = (double)cfg->lightning.accumulate_grad_batches * n_dev * cfg->data.batch_size *
                cfg->model.base_learning_rate;
    if (r->a.scale_lr)
        printf("Setting learning rate to %.2e = %d (accumulate_grad_batches) * %d (num_gpus) * %d "
               "(batchsize) * %.2e (base_lr)\n",
               r->lr, cfg->lightning.accumulate_grad_batches, n_dev, cfg->data.batch_size,
               cfg->model.base_learning_rate);
    else {
        printf("++++ NOT USING LR SCALING ++++\n");
        printf("Setting learning rate to %.2e\n", r->lr);
    }
    fflush(stdout);

    /* the model */
    struct stat sb;
    if (stat(r->a.actual_resume, &sb) != 0) {
        ti_error(&err, TI_ERR_NOT_FOUND, "--actual_resume '%s': %s", r->a.actual_resume,
                 strerror(errno));
        return fail_run(r, &err);
    }
    {
        char base[1024];
        const char *b = strrchr(r->a.actual_resume, '/');
        snprintf(base, sizeof base, "%s", b ? b + 1 : r->a.actual_resume);
        ti_path_stem(base, r->model_stem, sizeof r->model_stem);
    }
    struct ti_trainer_opts to;
    memset(&to, 0, sizeof to);
    to.cfg = cfg;
    to.ckpt_path = r->a.actual_resume;
    to.be = be;
    to.dtype = dtype;
    to.seed = r->a.seed;
    to.lr = r->lr;
    if (ti_trainer_open(&r->t, &to, &err) != TI_OK) return fail_run(r, &err);
    if (r->a.resume) {
        if (ti_trainer_load_state(r->t, resume_state, &err) != TI_OK) return fail_run(r, &err);
        r->resume_written = resume_step;
        /* a killed run may have left temporary files (never at a final name) */
        const char *sub[] = {"", "/checkpoints", "/images/train", "/configs"};
        for (int k = 0; k < 4 && g_rank == 0; k++) {
            char d[4400];
            snprintf(d, sizeof d, "%s%s", r->rundir, sub[k]);
            ti_run_clean_temps(d);
        }
        printf("resuming %s at step %lld\n", r->rundir, (long long)resume_step);
    }

    if (!r->a.train) {
        printf(PROG ": config, data and model are fine; nothing trained (add -t to train)\n");
        ti_trainer_close(r->t);
        return 0;
    }

    /* run folder (§1.4): configs, args for --resume */
    int writer = g_rank == 0;
    if (writer && (ti_mkdirs(r->ckdir, &err) != TI_OK || ti_mkdirs(r->imgdir, &err) != TI_OK))
        return fail_run(r, &err);
    if (writer && !r->a.resume) {
        if (ti_run_write_configs(&r->setup, r->rundir, r->now, &err) != TI_OK ||
            write_args(r->rundir, r->now, argc, argv, &err) != TI_OK)
            return fail_run(r, &err);
        printf("run folder %s\n", r->rundir);
    }
    if (ti_metrics_open(&r->metrics, r->rundir, r->a.resume ? resume_step : -1, &err) != TI_OK)
        return fail_run(r, &err);

    /* the loop */
    int64_t step = resume_step > 0 ? resume_step : 0;
    struct ti_progress prog;
    ti_progress_init(&prog, stderr, r->a.quiet ? 0 : -1, step, r->max_steps);
    int rc = 0;
    int size = cfg->data.train.size;
    size_t img_floats = (size_t)3 * size * size;
    int lat_c, lat_f;
    ti_trainer_latent_shape(r->t, &lat_c, &lat_f);
    size_t lat = (size_t)lat_c * (size_t)(size / lat_f) * (size_t)(size / lat_f);
    float *images = malloc((size_t)r->batch * img_floats * sizeof *images);
    char(*caps)[1024] = malloc((size_t)r->batch * sizeof *caps);
    const char **capp = malloc((size_t)r->batch * sizeof *capp);
    int *tsteps = malloc((size_t)r->batch * sizeof *tsteps);
    float *noise = malloc((size_t)r->batch * lat * sizeof *noise);
    float *peps = malloc((size_t)r->batch * lat * sizeof *peps);
    if (!images || !caps || !capp || !tsteps || !noise || !peps) {
        ti_error(&err, TI_ERR_NOMEM, "out of memory for a batch");
        rc = 1;
        goto out;
    }
    for (int b = 0; b < r->batch; b++)
        capp[b] = caps[b];

    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_signal;
    sigemptyset(&act.sa_mask);
    sigaction(SIGINT, &act, NULL);
    sigaction(SIGTERM, &act, NULL);

    int show = writer && !r->a.quiet;
    int stop = 0; /* g_stop as every rank agrees on it */
    int consecutive_bad = 0;
    const char *raise_env = getenv("TI_TRAIN_RAISE_SIGINT_AT");
    int64_t raise_at = raise_env ? strtoll(raise_env, NULL, 10) : -1;
    /* test hook: the loss of this step reads as NaN (as if the forward pass overflowed) */
    const char *nan_env = getenv("TI_TRAIN_TEST_NAN_AT");
    int64_t nan_at = nan_env ? strtoll(nan_env, NULL, 10) : -1;
    while (step < r->max_steps && !stop) {
        double loss_sum = 0;
        int bad = 0;
        /* sample k of the stream: micro-batch m of this step, rank g_rank's share b */
        uint64_t k0 = (uint64_t)step * (uint64_t)r->accum * (uint64_t)g_world * (uint64_t)r->batch;
        for (int m = 0; m < r->accum; m++) {
            for (int b = 0; b < r->batch; b++) {
                uint64_t k = k0 + ((uint64_t)m * (uint64_t)g_world + (uint64_t)g_rank) * r->batch +
                             (uint64_t)b;
                if (stream_example(r, k, images + (size_t)b * img_floats, caps[b], sizeof caps[b],
                                   &err) != TI_OK) {
                    rc = 1;
                    goto out;
                }
                /* the diffusion randomness of sample k: the same whatever the process layout */
                tsteps[b] = (int)(ctr_uniform(r->a.seed, SALT_T, k, 0) * cfg->model.timesteps);
                if (tsteps[b] >= cfg->model.timesteps) tsteps[b] = cfg->model.timesteps - 1;
                ctr_normals(noise + (size_t)b * lat, lat, r->a.seed, SALT_NOISE, k);
                ctr_normals(peps + (size_t)b * lat, lat, r->a.seed, SALT_EPS, k);
            }
            double loss = 0;
            if (ti_trainer_step_explicit(r->t, images, capp, r->batch, tsteps, noise, peps, &loss,
                                         NULL, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
            if (step == nan_at) loss = NAN;
            loss_sum += loss;
        }
        /* the loss over every rank's micro-batches; NaN anywhere reaches every rank, so all skip */
        allreduce_sum(&loss_sum, 1);
        loss_sum /= g_world;
        if (!isfinite(loss_sum)) bad = 1;
        double loss = loss_sum / r->accum;
        if (bad) {
            /* report and skip: no update from a non-finite loss */
            ti_trainer_zero_grad(r->t);
            ti_progress_break(&prog);
            fprintf(stderr, PROG ": warning: step %lld: non-finite loss (%g); step skipped\n",
                    (long long)step, loss);
            if (++consecutive_bad >= 20) {
                ti_error(&err, TI_ERR_INVALID,
                         "20 steps in a row had a non-finite loss: the run diverged (try a lower "
                         "model.base_learning_rate or --precision fp32)");
                rc = 1;
                goto out;
            }
        } else {
            consecutive_bad = 0;
            allreduce_grad(r->t);
            if (ti_trainer_optimizer_step(r->t, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
        }
        ti_metrics_add(r->metrics, step, loss, r->lr, embedding_norm(ti_trainer_embeddings(r->t)));
        /* the image logger and the checkpoint hook see global_step before its increment */
        if (writer && ti_run_is_image_step(step, r->img_freq)) {
            uint64_t kl = k0 + (uint64_t)(r->accum - 1) * g_world * r->batch;
            ti_progress_break(&prog);
            if (log_images(r, images, capp, r->batch, step, (int64_t)(kl / r->stream.len),
                           (int64_t)((kl % r->stream.len) / ((uint64_t)r->batch * g_world)), be,
                           &err) != TI_OK) {
                fprintf(stderr, PROG ": warning: image log at step %lld: %s\n", (long long)step,
                        err.msg);
                ti_err_clear(&err);
            }
        }
        if (writer && ti_run_is_checkpoint_step(step, r->every_ckpt) && step + 1 < r->max_steps) {
            if (checkpoint(r, step, step + 1, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
        }
        step++;
        if (writer && ti_metrics_flush(r->metrics, 0, &err) != TI_OK) {
            rc = 1;
            goto out;
        }
        if (show) ti_progress_update(&prog, step, loss);
        /* test hook (tests/test_ti_train.sh): a SIGINT after this step, as if from Ctrl-C */
        if (raise_at > 0 && step == raise_at) raise(SIGINT);
        /* every rank stops after the same step (mpirun forwards Ctrl-C to each at its own time) */
        double sv = g_stop ? (double)g_stop : 0.0;
        allreduce_sum(&sv, 1);
        if (sv > 0 && !g_stop) g_stop = SIGINT;
        stop = sv > 0;
    }
    ti_progress_break(&prog);
    if (stop && !writer) goto out;
    if (stop) {
        /* Ctrl-C / SIGTERM: the peer saves embeddings at the current global step */
        if (checkpoint(r, step, step, &err) != TI_OK) {
            rc = 1;
            goto out;
        }
        fprintf(stderr,
                PROG ": %s: stopped after step %lld of %lld; embeddings and the resume state are "
                     "saved.\nContinue with: ti-train --resume %s\n",
                g_stop == SIGINT ? "interrupted" : "terminated", (long long)step,
                (long long)r->max_steps, r->rundir);
        rc = g_stop == SIGINT ? 130 : 143;
        goto out;
    }
    /* train end (save_last): global_step - 1 (§1.6) */
    if (!writer) goto out;
    if (checkpoint(r, r->max_steps - 1, r->max_steps, &err) != TI_OK) {
        rc = 1;
        goto out;
    }
    printf("done: %lld steps; embeddings in %s/embeddings.%s\n", (long long)r->max_steps, r->ckdir,
           emb_ext(r->a.format));
out:
    if (rc == 1) {
        ti_progress_break(&prog);
        fprintf(stderr, PROG ": error: %s\n", err.msg);
        struct ti_err e2 = {0};
        if (writer && ti_metrics_flush(r->metrics, 1, &e2) != TI_OK)
            fprintf(stderr, PROG ": error: %s\n", e2.msg);
    }
    free(images);
    free(tsteps);
    free(noise);
    free(peps);
    free(caps);
    free(capp);
    ti_metrics_close(r->metrics);
    ti_trainer_close(r->t);
    ti_dataset_close(r->ds);
    free(r->stream.perm);
    ti_train_setup_free(&r->setup);
    free(sa.text);
    return rc;
}

int main(int argc, char **argv) {
#ifdef TI_HAVE_MPI
    /* started by mpirun (Open MPI / PMIx set these): data-parallel ranks */
    int mpi = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
    if (mpi) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_world);
        /* only rank 0 talks on stdout; errors still reach stderr from every rank */
        if (g_rank != 0 && !freopen("/dev/null", "w", stdout)) g_rank = g_rank + 0;
    }
    int rc = run_main(argc, argv);
    if (mpi) {
        abort_ranks(rc == 1 || rc == 2 ? rc : 0);
        MPI_Finalize();
    }
    return rc;
#else
    return run_main(argc, argv);
#endif
}
#endif /* TI_TRAIN_COMPLETE */
