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
 * Data order and randomness: train_run.h (a pure function of seed and sample index, so resume,
 * repeat runs and MPI layouts give the same numbers). Data parallelism: under mpirun each rank
 * takes its share of every batch; loss and gradient are averaged over the ranks before the
 * optimizer step, the ranks agree on a stop request after each step, and rank 0 alone prints
 * and writes files.
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
#include <unistd.h>   /* defines: unlink, access */

#include "backend.h"           /* defines: ti_backend_cpu, ti_backend_cuda */
#include "cpu_info.h"          /* defines: ti_cpu_describe */
#include "cli.h"               /* defines: struct ti_train_args */
#include "context.h"           /* defines: struct ti_ctx */
#include "dataset.h"           /* defines: ti_dataset_open, ti_dataset_example */
#include "embedding_io.h"      /* defines: ti_embedding_write */
#include "embedding_manager.h" /* defines: struct ti_emb_manager */
#include "fileio.h"            /* defines: ti_path_is_dir, ti_path_stem */
#include "image.h"             /* defines: struct ti_image, ti_image_write_* */
#include "ldm.h"               /* defines: struct ti_ldm */
#include "lr_schedule.h"       /* defines: ti_lr_schedule_factor */
#include "metrics.h"           /* defines: ti_metrics_*, ti_progress_* */
#include "ops.h"               /* defines: ti_copy */
#include "run_log.h"           /* defines: ti_train_config_build, ti_run_* */
#include "sampler.h"           /* defines: ti_sampler_run, ti_sampler_decode */
#include "schedule.h"          /* defines: ti_schedule_init */
#include "torch_gen.h"         /* defines: ti_torch_gen, ti_torch_randn */
#include "train_run.h"         /* defines: struct ti_train_run, ti_train_* */
#include "tokenizer.h"         /* defines: ti_tokenizer_load */
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

/* ---- main ----------------------------------------------------------------------------------- */

static int fail_run(struct ti_train_run *r, const struct ti_err *err) {
    if (g_world > 1)
        fprintf(stderr, PROG " (rank %d): error: %s\n", g_rank, err->msg);
    else
        fprintf(stderr, PROG ": error: %s\n", err->msg);
    /* never a half-made run folder: one this invocation created is removed until training runs */
    if (r->remove_on_fail && g_rank == 0 && ti_path_exists(r->rundir) &&
        ti_remove_tree(r->rundir) == 0)
        fprintf(stderr, PROG ": the unfinished run folder %s was removed\n", r->rundir);
    r->remove_on_fail = 0;
    abort_ranks(1);
    return 1;
}

/* Makes a new run's folder with mkdir, which fails when the name is taken (an earlier run, or
 * another ti-train started in the same second under the same name: a check before creating
 * would let both take one folder). On EEXIST the next name (-1, -2, ...) is tried; rundir, ckdir
 * and imgdir follow. */
static ti_status claim_run_dir(struct ti_train_run *r, struct ti_err *err) {
    TI_TRY(ti_mkdirs(r->a.logdir, err));
    /* -n a/b: the peer's os.makedirs makes RUN_a/b, the run in a folder of its own */
    char parent[sizeof r->rundir];
    snprintf(parent, sizeof parent, "%s", r->rundir);
    char *slash = strrchr(parent, '/');
    if (slash && slash > parent + strlen(r->a.logdir)) {
        *slash = 0;
        TI_TRY(ti_mkdirs(parent, err));
    }
    for (int k = 1; mkdir(r->rundir, 0777) != 0; k++) {
        if (errno != EEXIST || k >= 1000)
            return ti_error(err, TI_ERR_IO, "cannot create the run folder %s: %s", r->rundir,
                            strerror(errno));
        snprintf(r->rundir, sizeof r->rundir, "%s/%s-%d", r->a.logdir, r->runname, k);
    }
    r->remove_on_fail = 1;
    snprintf(r->ckdir, sizeof r->ckdir, "%s/checkpoints", r->rundir);
    snprintf(r->imgdir, sizeof r->imgdir, "%s/images/train", r->rundir);
    return TI_OK;
}

static int run_main(int argc, char **argv) {
    static struct ti_train_run R;
    struct ti_train_run *r = &R;
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
    r->stop = &g_stop;

    /* --resume: the saved command line, with a new --max_steps / --quiet / --gpus on top */
    static struct ti_train_saved_args sa;
    static char run_arg[4096], saved_cfg[2][4400];
    int64_t resume_step = -1;
    uint64_t resume_fp = 0;
    char resume_state[4400] = "";
    if (r->a.resume) {
        struct ti_train_args now_args = r->a;
        if (ti_train_resume_folder(now_args.resume, run_arg, sizeof run_arg)) {
            printf("--resume: the run folder of %s is %s\n", now_args.resume, run_arg);
            now_args.resume = run_arg;
        }
        if (ti_train_read_args(&sa, now_args.resume, &err) != TI_OK) return fail_run(r, &err);
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
        /* the config is the run's own merged one (main.py prepends the files of RUN/configs): a
         * --base file edited or removed since does not change the run; the command line's
         * overrides are in it already */
        snprintf(saved_cfg[0], sizeof saved_cfg[0], "%s/configs/%s-project.yaml", r->rundir,
                 sa.now);
        snprintf(saved_cfg[1], sizeof saved_cfg[1], "%s/configs/%s-lightning.yaml", r->rundir,
                 sa.now);
        if (access(saved_cfg[0], R_OK) == 0 && access(saved_cfg[1], R_OK) == 0) {
            r->a.n_base = 2;
            r->a.base[0] = saved_cfg[0];
            r->a.base[1] = saved_cfg[1];
            r->a.n_overrides = 0;
        } else {
            fprintf(stderr,
                    PROG ": warning: --resume: %s/configs/ lacks %s-project.yaml or "
                         "-lightning.yaml; the config is rebuilt from the run's --base files\n",
                    r->rundir, sa.now);
        }
        snprintf(r->ckdir, sizeof r->ckdir, "%s/checkpoints", r->rundir);
        if (ti_train_read_resume(r->ckdir, &resume_step, resume_state, sizeof resume_state,
                                 &resume_fp, &err) != TI_OK)
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
    if (gpu < 0 && g_rank == 0) { /* which CPU kernels run (the CPU's features, not its model) */
        char cpu[512];
        ti_cpu_describe(cpu, sizeof cpu);
        fprintf(stderr, PROG ": %s\n", cpu);
    }
    if (r->a.n_gpus == 0 && r->a.precision == TI_PREC_FP16) {
        fprintf(stderr,
                PROG ": --precision %s: the CPU computes in fp32 and bf16 only; add --gpus 0, "
                     "for %s\n",
                ti_train_precision_name(r->a.precision), ti_train_precision_name(r->a.precision));
        return 2;
    }

    /* config (§1.2) */
    if (ti_train_config_build(&r->setup, &r->a, &err) != TI_OK) return fail_run(r, &err);
    r->cfg = r->setup.cfg;
    const struct ti_config *cfg = r->cfg;
    /* the precision: lightning.trainer.precision, which --precision sets (PL reads it there) */
    const char *prec = cfg->lightning.precision;
    enum ti_dtype dtype = !strcmp(prec, "bf16") ? TI_DTYPE_BF16
                          : !strcmp(prec, "16") ? TI_DTYPE_F16
                                                : TI_DTYPE_F32;
    if (!strcmp(prec, "64")) {
        ti_error(&err, TI_ERR_CONFIG,
                 "lightning.trainer.precision: 64 is not supported (ti trains in 32, 16 or "
                 "bf16)");
        return fail_run(r, &err);
    }
    if (r->a.n_gpus == 0 && dtype == TI_DTYPE_F16) {
        fprintf(stderr,
                PROG ": lightning.trainer.precision %s: the CPU computes in fp32 and bf16 only; "
                     "add --gpus 0, or set it to 32 or bf16\n",
                prec);
        return 2;
    }
    for (int k = 0; k < cfg->n_warnings; k++)
        fprintf(stderr, PROG ": warning: %s\n", cfg->warnings[k].msg);
    /* PL would take the devices from the config too; ti picks them before reading it */
    if (!r->a.gpus && cfg->lightning.gpus[0] && g_rank == 0)
        fprintf(stderr,
                PROG ": warning: lightning.trainer.gpus '%s' is not used: ti-train runs on the "
                     "CPU unless --gpus is given (--gpus %s)\n",
                cfg->lightning.gpus, cfg->lightning.gpus);
    if (g_world > 1 && cfg->model.unfreeze_model) {
        ti_error(&err, TI_ERR_CONFIG,
                 "model.params.unfreeze_model: data-parallel runs (mpirun) average only the "
                 "embedding gradient; train the model weights in one process");
        return fail_run(r, &err);
    }
    r->batch = cfg->data.batch_size;
    r->accum =
        cfg->lightning.accumulate_grad_batches > 0 ? cfg->lightning.accumulate_grad_batches : 1;
    r->max_steps = cfg->lightning.max_steps; /* max_epochs joins in once the data is known */
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
    if (ti_train_open_dataset(r, print_data_warning, NULL, &err) != 0) return fail_run(r, &err);
    r->data_fp = ti_dataset_fingerprint(r->ds);
    if (r->a.resume && resume_fp && resume_fp != r->data_fp)
        fprintf(stderr,
                PROG ": warning: --resume: the images in %s are not those the run was trained on "
                     "(files added, removed or changed since); the remaining steps train on the "
                     "folder as it is now\n",
                cfg->data.train.data_root);
    r->stream.seed = r->a.seed;
    r->stream.len = ti_dataset_len(r->ds);
    r->stream.epoch = -1;
    r->stream.perm = malloc((r->stream.len ? r->stream.len : 1) * sizeof *r->stream.perm);
    if (!r->stream.perm) {
        ti_error(&err, TI_ERR_NOMEM, "out of memory for the data order");
        return fail_run(r, &err);
    }
    printf("train, PersonalizedBase, %zu\n", ti_dataset_len(r->ds));
    if (r->templates.n)
        printf("captions: %d templates from %s (--templates)\n", r->templates.n, r->a.templates);
    /* main.py prints a line per split; the validation set (same folder) is never run by ti */
    if (cfg->data.validation.present) {
        int nv = ti_dataset_n_images(r->ds);
        size_t lv =
            cfg->data.validation.is_train
                ? (size_t)nv *
                      (size_t)(cfg->data.validation.repeats > 0 ? cfg->data.validation.repeats : 1)
                : (size_t)nv;
        printf("validation, PersonalizedBase, %zu\n", lv);
    }
    {
        /* PL 1.5 stops at whichever of max_steps and max_epochs comes first; with neither set,
         * max_epochs is 1000 (the style config: "forever", §1.5, §8.3-3). An epoch is
         * ceil(ceil(len / ranks) / batch) batches, ceil(that / accumulate) optimizer steps. */
        int64_t per_rank = ((int64_t)r->stream.len + g_world - 1) / g_world;
        int64_t batches = (per_rank + r->batch - 1) / r->batch;
        int64_t per_epoch = (batches + r->accum - 1) / r->accum;
        int64_t epochs = cfg->lightning.max_epochs > 0 ? cfg->lightning.max_epochs
                         : r->max_steps > 0            ? -1
                                                       : 1000;
        if (epochs > 0 && per_epoch > 0 && (r->max_steps <= 0 || epochs * per_epoch < r->max_steps))
            r->max_steps = epochs * per_epoch;
        if (cfg->lightning.max_steps <= 0 && cfg->lightning.max_epochs <= 0)
            fprintf(stderr,
                    PROG ": warning: lightning.trainer.max_steps is not set: training PL's 1000 "
                         "epochs, %lld steps (give --max_steps N to stop sooner)\n",
                    (long long)r->max_steps);
    }
    /* a target at or below the step reached would rewind the run's files: refuse, touch nothing */
    if (r->a.resume && r->max_steps <= resume_step) {
        fprintf(stderr,
                PROG ": --resume: %s is already at step %lld and its target is %lld steps: "
                     "nothing to train; give --max_steps N with N > %lld to train on (the run "
                     "is unchanged)\n",
                r->rundir, (long long)resume_step, (long long)r->max_steps, (long long)resume_step);
        return 2;
    }
    if (!ti_image_exif_supported())
        fprintf(stderr,
                PROG ": warning: built without libexif: EXIF orientation is not applied "
                     "(phone photos may train sideways; check images/train/inputs_gs-*.jpg)\n");

    /* run folder name (§1.4) */
    if (!r->a.resume) {
        ti_run_now_string(r->now, sizeof r->now, &r->a, time(NULL));
        char name[600];
        ti_run_dir_name(name, sizeof name, &r->a, r->now);
        memcpy(r->runname, name, sizeof name);
        /* claim_run_dir makes it (the next free -N name when it is taken) */
        snprintf(r->rundir, sizeof r->rundir, "%s/%s", r->a.logdir, name);
        r->remove_on_fail = 0; /* set by claim_run_dir, once the folder is ours */
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
        /* the words as training would check them (single tokens, init words), no model */
        {
            enum ti_tokenizer_kind kind =
                cfg->text.kind == TI_TEXT_CLIP ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE;
            char vpath[4200];
            ti_tokenizer_default_vocab(vpath, sizeof vpath, kind);
            struct ti_tokenizer *tok = NULL;
            struct ti_emb_manager em;
            if (ti_tokenizer_load(&tok, kind, vpath, &err) != TI_OK) {
                fprintf(stderr, PROG ": warning: the words were not checked: %s\n", err.msg);
                ti_err_clear(&err);
            } else {
                ti_status st = ti_emb_manager_from_config(&em, cfg, tok, NULL, r->a.seed, &err);
                if (st == TI_OK) ti_emb_manager_free(&em);
                ti_tokenizer_free(&tok);
                if (st != TI_OK) return fail_run(r, &err);
            }
        }
        if (claim_run_dir(r, &err) != TI_OK ||
            ti_run_write_configs(&r->setup, r->rundir, r->now, &err) != TI_OK)
            return fail_run(r, &err);
        if (ti_train_dry_run(r, &err) != 0) return fail_run(r, &err);
        int n = ti_dataset_n_images(r->ds), size = cfg->data.train.size;
        char at[64] = "their own sizes (size: null)";
        if (size > 0) snprintf(at, sizeof at, "%dx%d", size, size);
        printf("dry run: %d image%s prepared at %s (dataset length %zu with repeats %d), "
               "written to %s/data/; 20 sample captions in %s/data/captions.txt\n",
               n, n == 1 ? "" : "s", at, ti_dataset_len(r->ds), cfg->data.train.repeats, r->rundir,
               r->rundir);
        printf("EXIF orientation: %s\n",
               ti_image_exif_supported() ? "applied" : "NOT applied (built without libexif)");
        printf("image formats read: %s\n", ti_image_formats());
        printf("placeholder '%s'; batch %d; %lld steps; no model loaded\n",
               cfg->data.train.placeholder_token, r->batch, (long long)r->max_steps);
        return 0;
    }

    if (cfg->data.train.size <= 0) {
        ti_error(&err, TI_ERR_CONFIG,
                 "data.params.train.params.size is null (keep each image's own size): ti-train "
                 "trains every image at one size; set it, e.g. data.params.train.params.size=512 "
                 "(SD v1) or 256 (LDM)");
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
    if (r->a.lr_scheduler != TI_LR_CONSTANT)
        printf("LR schedule: %s over %lld steps, %ld warm-up (--lr_scheduler)\n",
               ti_lr_schedule_name(r->a.lr_scheduler), (long long)r->max_steps,
               r->a.lr_warmup_steps);
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
    {
        /* the image logger's sampler takes the schedule the file stores, as the trainer's
         * q_sample does (trainer.c) and the reference's load_state_dict */
        char note[TI_CFG_PATH_MAX + 256];
        ti_schedule_use_file(&r->sched, &ti_trainer_model(r->t)->file_sched, to.ckpt_path, note,
                             sizeof note);
        if (note[0]) fprintf(stderr, PROG ": %s\n", note);
    }
    {
        /* the captions' placeholder must be a learned term, or no vector ever gets a gradient
         * (an embedding_manager_ckpt for another placeholder replaces the config's terms; the
         * peer then trains on, learning nothing) */
        const struct ti_emb_manager *em = ti_trainer_embeddings(r->t);
        const char *ph = cfg->data.train.placeholder_token;
        if (em->n_terms > 0 && !ti_emb_manager_find(em, ph)) {
            char have[512] = "";
            for (int i = 0; i < em->n_terms && strlen(have) < 400; i++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s'%s'", i ? ", " : "",
                         em->terms[i].placeholder);
            ti_error(&err, TI_ERR_CONFIG,
                     "the captions' placeholder '%s' (data.params.train.params.placeholder_token) "
                     "is not among the learned placeholders (%s%s): nothing would be learned; "
                     "use --placeholder_string with one of those, or rename the file's "
                     "placeholder (ti-merge --rename)",
                     ph, have,
                     cfg->personalization.embedding_manager_ckpt[0]
                         ? ", from model.params.personalization_config.params."
                           "embedding_manager_ckpt"
                         : "");
            return fail_run(r, &err);
        }
    }
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
    if (writer && !r->a.resume && claim_run_dir(r, &err) != TI_OK) return fail_run(r, &err);
    if (writer && (ti_mkdirs(r->ckdir, &err) != TI_OK || ti_mkdirs(r->imgdir, &err) != TI_OK))
        return fail_run(r, &err);
    if (writer && !r->a.resume) {
        if (ti_run_write_configs(&r->setup, r->rundir, r->now, &err) != TI_OK ||
            ti_train_write_args(r->rundir, r->now, argc, argv, &err) != TI_OK)
            return fail_run(r, &err);
        printf("run folder %s\n", r->rundir);
    }
    if (ti_metrics_open(&r->metrics, r->rundir, r->a.resume ? resume_step : -1, &err) != TI_OK)
        return fail_run(r, &err);

    /* the loop */
    int64_t step = resume_step > 0 ? resume_step : 0;
    struct ti_progress prog;
    r->remove_on_fail = 0; /* from here on the run folder holds the run */
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
                if (ti_train_example(r, k, images + (size_t)b * img_floats, caps[b], sizeof caps[b],
                                     &err) != TI_OK) {
                    rc = 1;
                    goto out;
                }
                /* the diffusion randomness of sample k: the same whatever the process layout */
                ti_train_sample_randomness(r->a.seed, k, cfg->model.timesteps, &tsteps[b],
                                           noise + (size_t)b * lat, peps + (size_t)b * lat, lat);
            }
            double loss = 0;
            if (ti_trainer_step_explicit(r->t, images, capp, r->batch, tsteps, noise, peps, &loss,
                                         NULL, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
            if (step == nan_at) loss = NAN;
            loss_sum += loss;
            /* PL runs the image logger after every micro-batch: with accumulation each one of
             * a logging step writes its grids (its own batch_idx), the earlier ones before the
             * optimizer step; the last one is logged after it, below */
            if (writer && m + 1 < r->accum && ti_run_is_image_step(step, r->img_freq)) {
                uint64_t km = k0 + (uint64_t)m * g_world * r->batch;
                ti_progress_break(&prog);
                if (ti_train_log_images(
                        r, images, capp, r->batch, step, (int64_t)(km / r->stream.len),
                        (int64_t)((km % r->stream.len) / ((uint64_t)r->batch * g_world)), be,
                        &err) != TI_OK) {
                    fprintf(stderr, PROG ": warning: image log at step %lld: %s\n", (long long)step,
                            err.msg);
                    ti_err_clear(&err);
                }
            }
        }
        /* the loss over every rank's micro-batches; NaN anywhere reaches every rank, so all skip */
        allreduce_sum(&loss_sum, 1);
        loss_sum /= g_world;
        if (!isfinite(loss_sum)) bad = 1;
        double loss = loss_sum / r->accum;
        /* --lr_scheduler: the LR of this optimizer step (1 for the peer's constant LR) */
        double lr_factor =
            ti_lr_schedule_factor(r->a.lr_scheduler, step, r->a.lr_warmup_steps, r->max_steps);
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
            ti_trainer_set_lr_factor(r->t, lr_factor);
            if (ti_trainer_optimizer_step(r->t, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
        }
        ti_metrics_add(r->metrics, step, loss, r->lr * lr_factor,
                       ti_train_embedding_norm(ti_trainer_embeddings(r->t)));
        /* the image logger and the checkpoint hook see global_step before its increment */
        if (writer && ti_run_is_image_step(step, r->img_freq)) {
            uint64_t kl = k0 + (uint64_t)(r->accum - 1) * g_world * r->batch;
            ti_progress_break(&prog);
            if (ti_train_log_images(
                    r, images, capp, r->batch, step, (int64_t)(kl / r->stream.len),
                    (int64_t)((kl % r->stream.len) / ((uint64_t)r->batch * g_world)), be,
                    &err) != TI_OK) {
                fprintf(stderr, PROG ": warning: image log at step %lld: %s\n", (long long)step,
                        err.msg);
                ti_err_clear(&err);
            }
        }
        if (writer && ti_run_is_checkpoint_step(step, r->every_ckpt) && step + 1 < r->max_steps) {
            if (ti_train_checkpoint(r, step, step + 1, &err) != TI_OK) {
                rc = 1;
                goto out;
            }
        }
        step++;
        /* PL validates at each epoch end (here: a step whose samples cross a multiple of the
         * dataset length); the image logger then writes images/val/ when the global step, now
         * incremented, is a multiple of batch_frequency */
        {
            uint64_t per_step = (uint64_t)r->accum * (uint64_t)g_world * (uint64_t)r->batch;
            uint64_t k_end = (uint64_t)step * per_step;
            if (writer && ti_run_is_image_step(step, r->img_freq) &&
                k_end / r->stream.len > (k_end - per_step) / r->stream.len) {
                ti_progress_break(&prog);
                if (ti_train_log_val_images(r, step, (int64_t)(k_end / r->stream.len) - 1, be,
                                            &err) != TI_OK) {
                    fprintf(stderr, PROG ": warning: validation image log at step %lld: %s\n",
                            (long long)step, err.msg);
                    ti_err_clear(&err);
                }
            }
        }
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
        /* a stop asked during the last step: the run is complete, it ends as any other */
        stop = sv > 0 && step < r->max_steps;
    }
    ti_progress_break(&prog);
    if (stop && !writer) goto out;
    if (stop) {
        /* Ctrl-C / SIGTERM: the peer saves embeddings at the current global step */
        if (ti_train_checkpoint(r, step, step, &err) != TI_OK) {
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
    if (ti_train_checkpoint(r, r->max_steps - 1, r->max_steps, &err) != TI_OK) {
        rc = 1;
        goto out;
    }
    printf("done: %lld steps; embeddings in %s/embeddings.%s\n", (long long)r->max_steps, r->ckdir,
           ti_train_emb_ext(r->a.format));
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
    ti_templates_free(&r->templates);
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
        if (g_rank != 0 && !freopen("/dev/null", "w", stdout))
            fprintf(stderr, PROG " (rank %d): cannot silence stdout\n", g_rank);
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
