/*
 * train_run.h - ti-train's run machinery, everything the tool's main (train/ti_train.c) drives
 * but does not print: the deterministic data stream, the resume files, the outputs written at
 * checkpoints and image-log steps, and the dry run.
 *
 *   struct ti_train_run r = {...};                           // filled by ti_train.c
 *   TI_TRY(ti_train_open_dataset(&r, warn, NULL, err));      // data before any model
 *   ti_train_example(&r, k, chw, caption, cap, err);         // sample k of the stream
 *   ti_train_sample_randomness(seed, k, T, &t, noise, eps, n);
 *   ti_train_log_images(&r, images, captions, B, gs, epoch, batch, be, err);
 *   ti_train_checkpoint(&r, emb_step, resume_step, err);
 *
 * Data order: sample k of the run (k = (step * accumulate + micro) * world * batch + rank *
 * batch + b) is a pure function of (seed, k): a seeded Fisher-Yates permutation of the dataset
 * per epoch, the three uniforms of ti_dataset_example, and the diffusion randomness (t, noise,
 * posterior eps) hashed from (seed, k). --resume therefore needs only the step, the same seed
 * gives the same bits, and any split over processes (MPI) sees the same samples.
 *
 * Resume files: checkpoints/resume.txt ("ti-train resume 1", "step S", "state FILE") names the
 * trainer state (ti_trainer_save_state) written before it; args.txt holds the run's command
 * line ("#ti-train args 1", "#now", "#cwd", then one argument per line).
 *
 * Outputs (all through temporary names + rename): embeddings_gs-N.<pt|safetensors> and
 * embeddings.<ext>, model.safetensors with unfreeze_model, metrics, loss.png, and the image
 * grids <key>_gs-%06d_e-%06d_b-%06d.jpg (inputs, reconstruction, samples, samples_scaled).
 *
 * Not here: the command line (cli.h), the config and run-folder names (run_log.h), printing,
 * signals and MPI (ti_train.c).
 */
#ifndef TI_TRAIN_RUN_H
#define TI_TRAIN_RUN_H

#include <signal.h> /* defines: sig_atomic_t */
#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int64_t, uint64_t */

#include "backend.h"   /* defines: struct ti_backend */
#include "cli.h"       /* defines: struct ti_train_args, TI_TRAIN_MAX_* */
#include "dataset.h"   /* defines: struct ti_dataset, ti_data_warn_fn */
#include "metrics.h"   /* defines: struct ti_metrics */
#include "run_log.h"   /* defines: struct ti_train_setup */
#include "schedule.h"  /* defines: struct ti_schedule */
#include "templates.h" /* defines: struct ti_template_list */
#include "trainer.h"   /* defines: struct ti_trainer */

#ifdef __cplusplus
extern "C" {
#endif

/* the data order of a run (see above) */
struct ti_train_stream {
    uint64_t seed;
    size_t len;    /* dataset length (n_images * repeats) */
    size_t *perm;  /* the current epoch's permutation */
    int64_t epoch; /* epoch of perm, -1 none */
};

/* args.txt read back (argv points into text) */
struct ti_train_saved_args {
    char *text;
    char *argv[TI_TRAIN_MAX_OVERRIDES + 2 * TI_TRAIN_MAX_BASE + 64];
    int argc;
    char now[256];
    char cwd[4096]; /* the run's working folder ("" unknown) */
};

/* one run: its arguments, config, folders, schedule and open objects */
struct ti_train_run {
    struct ti_train_args a;
    struct ti_train_setup setup;
    const struct ti_config *cfg;
    char rundir[4096], ckdir[4200], imgdir[4200], now[256], nowname[512], model_stem[256];
    char runname[600]; /* a new run's folder name under logdir, before any -N suffix */
    int64_t max_steps;
    int remove_on_fail; /* this run created rundir and has not trained yet: a failure removes it */
    int batch, accum, every_ckpt, img_freq, max_images;
    double lr;
    struct ti_dataset *ds;
    struct ti_template_list templates; /* --templates, read by ti_train_open_dataset */
    struct ti_train_stream stream;
    struct ti_trainer *t;
    struct ti_metrics *metrics;
    int64_t resume_written; /* the step of the last resume state, -1 none */
    /* image logger: log_images' keyword defaults (§5.4), overridable through
     * lightning.callbacks.image_logger.params.log_images_kwargs.{sample,ddim_steps,ddim_eta} */
    int log_sample, log_ddim_steps;
    double log_ddim_eta;
    enum ti_dtype dtype;
    struct ti_schedule sched;
    const volatile sig_atomic_t *stop; /* non-zero: Ctrl-C; image logs stop sampling */
    uint64_t data_fp;                  /* ti_dataset_fingerprint of the training images */
};

/* ---- data --------------------------------------------------------------------------------- */
/* Opens the training set of cfg->data.train (warn: one call per skipped file); sets up the
 * stream. Zero usable images is an error. Returns 0 or -1 with err set. */
int ti_train_open_dataset(struct ti_train_run *r, ti_data_warn_fn warn, void *user,
                          struct ti_err *err);
/* Sample k of the stream: chw (3, size, size) in [-1, 1] and its caption. */
ti_status ti_train_example(struct ti_train_run *r, uint64_t k, float *chw, char *caption,
                           size_t cap, struct ti_err *err);
/* The diffusion randomness of sample k: t in [0, T), noise and posterior eps (n floats each). */
void ti_train_sample_randomness(uint64_t seed, uint64_t k, int T, int *t, float *noise, float *eps,
                                size_t n);
/* --dry_run: RUN/data/NNN_<stem>.png (prepared, unflipped) and RUN/data/captions.txt (the
 * first 20 captions of the stream). Returns 0 or 1 with err set. */
int ti_train_dry_run(struct ti_train_run *r, struct ti_err *err);

/* ---- resume ------------------------------------------------------------------------------- */
/* RUN/checkpoints/resume.txt: the step, the state file and the data set's fingerprint
 * (ti_dataset_fingerprint; 0 when a run folder from before it has none). */
ti_status ti_train_write_resume(struct ti_trainer *t, const char *ckdir, int64_t step,
                                int64_t prev_step, uint64_t data_fp, struct ti_err *err);
ti_status ti_train_read_resume(const char *ckdir, int64_t *step, char *state, size_t cap,
                               uint64_t *data_fp, struct ti_err *err);
/* --resume's argument as a run folder (cap bytes into out): the folder itself, RUN/checkpoints,
 * or a file inside RUN/checkpoints (the original's -r FILE: the path less its last two
 * components). Returns 1 when out differs from arg. */
int ti_train_resume_folder(const char *arg, char *out, size_t cap);
ti_status ti_train_write_args(const char *rundir, const char *now, int argc, char **argv,
                              struct ti_err *err);
ti_status ti_train_read_args(struct ti_train_saved_args *sa, const char *rundir,
                             struct ti_err *err);

/* ---- outputs ------------------------------------------------------------------------------ */
/* "safetensors" for the diffusers format, else "pt". */
const char *ti_train_emb_ext(enum ti_embedding_format f);
/* embeddings_gs-<emb_step> + embeddings (+ model.safetensors with unfreeze_model), metrics,
 * then the resume state at resume_step (after the metrics it points past), then loss.png. */
ti_status ti_train_checkpoint(struct ti_train_run *r, int64_t emb_step, int64_t resume_step,
                              struct ti_err *err);
/* The image logger at global step gs: grids of the first max_images of the batch. */
ti_status ti_train_log_images(struct ti_train_run *r, const float *images,
                              const char *const *captions, int n, int64_t gs, int64_t epoch,
                              int64_t batch, const struct ti_backend *be, struct ti_err *err);
/* The image logger on the validation split (§5.4), which PL runs at each epoch end: every image
 * once, in order, in batches of the training batch size (the last may be short), each batch's
 * grids under images/val/ with batch index b. Flip and caption templates are drawn from the run
 * seed and the epoch (apart from the training draws). Only the caller decides when (global
 * step gs a multiple of batch_frequency). */
ti_status ti_train_log_val_images(struct ti_train_run *r, int64_t gs, int64_t epoch,
                                  const struct ti_backend *be, struct ti_err *err);
/* L2 norm of every learned vector. */
double ti_train_embedding_norm(const struct ti_emb_manager *em);

#ifdef __cplusplus
}
#endif
#endif /* TI_TRAIN_RUN_H */
