/*
 * run_log.h - ti-train's run folder: the config assembled as the peer's main.py does it
 * (ti-peer.md §1.2), the folder name (§1.4), the saved configs, the checkpoint and image-log
 * schedule (§1.6, §5.4), and small file helpers (mkdir -p, atomic text files).
 *
 *   struct ti_train_setup s;
 *   TI_TRY(ti_train_config_build(&s, &args, err));        // YAML merge + flags -> s.cfg
 *   ti_run_dir_name(name, sizeof name, &args, time(NULL)); // "cat2026-01-02T03-04-05_run1"
 *   TI_TRY(ti_run_write_configs(&s, rundir, now, err));    // configs/<now>-project.yaml ...
 *   ti_train_setup_free(&s);
 *
 * The run folder:
 *   <logdir>/<data_root stem><%Y-%m-%dT%H-%M-%S>_<name | first --base stem><postfix>/
 *     configs/<now>-project.yaml     the merged config without `lightning` (data_root, the
 *                                    flags and the key.path=value overrides included)
 *     configs/<now>-lightning.yaml   {lightning: ...} (trainer.gpus, max_steps, ...)
 *     checkpoints/embeddings.pt, embeddings_gs-N.pt, resume.state
 *     images/train/<key>_gs-%06d_e-%06d_b-%06d.jpg
 *     metrics.h5 (or metrics.csv), loss.png, args.txt (the command line, for --resume)
 * <now> in the config names carries the data-folder prefix, as in the peer.
 *
 * Not here: command-line parsing (cli.h), the metrics file (metrics.h), training.
 */
#ifndef TI_RUN_LOG_H
#define TI_RUN_LOG_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int64_t */
#include <time.h>   /* defines: time_t */

#include "cli.h"       /* defines: struct ti_train_args */
#include "config.h"    /* defines: struct ti_config */
#include "status.h"    /* defines: ti_status, struct ti_err */
#include "yaml_tree.h" /* defines: struct ti_yaml_doc */

#ifdef __cplusplus
extern "C" {
#endif

struct ti_train_setup {
    struct ti_yaml_doc *doc; /* the merged tree (what the configs/ files hold) */
    struct ti_config *cfg;   /* read from doc (heap; ~22 KB) */
};

/* main.py's config assembly: --base files merged in order, then the key.path=value overrides,
 * then the flags: --max_steps, --accumulate_grad_batches and --gpus into lightning.trainer,
 * --embedding_manager_ckpt, --placeholder_string (the EmbeddingManager's placeholder_strings AND
 * the train/validation datasets' placeholder_token: peer pitfall 1.7-b), --init_word
 * (initializer_words[0]), --data_root (train and validation). Then the config is read and
 * checked for training (ti_config_check_train). */
ti_status ti_train_config_build(struct ti_train_setup *s, const struct ti_train_args *a,
                                struct ti_err *err);
void ti_train_setup_free(struct ti_train_setup *s);

/* "<data_root stem><%Y-%m-%dT%H-%M-%S>" (stem only with datadir_in_name): the peer's `now`. */
void ti_run_now_string(char *buf, size_t cap, const struct ti_train_args *a, time_t t);
/* now + "_" + (name | first --base stem | nothing) + postfix. */
void ti_run_dir_name(char *buf, size_t cap, const struct ti_train_args *a, const char *now);

/* Writes the tree as OmegaConf.to_yaml (PyYAML block style, Python float repr, PyYAML's string
 * quoting) would; ti_yaml_load_string reads it back to the same tree. skip_key: a top-level key
 * left out (NULL: none); only_key: only that top-level key (NULL: all). The caller frees *out. */
ti_status ti_yaml_dump(char **out, size_t *len, const struct ti_yaml_node *root,
                       const char *skip_key, const char *only_key, struct ti_err *err);

/* configs/<now>-project.yaml and configs/<now>-lightning.yaml under rundir (atomic writes). */
ti_status ti_run_write_configs(const struct ti_train_setup *s, const char *rundir, const char *now,
                               struct ti_err *err);

/* mkdir -p (mode 0777 & ~umask). */
ti_status ti_mkdirs(const char *path, struct ti_err *err);
/* A text file written atomically (temporary name + rename). */
ti_status ti_write_text_atomic(const char *path, const char *text, struct ti_err *err);

/* Removes the temporary files a killed run left in dir (".<name>.tmp-*", never anything else);
 * returns how many. */
int ti_run_clean_temps(const char *dir);

/* ---- schedule (PL 1.5 semantics, §1.6 and §5.4) --------------------------------------------- */
/* 1 when the checkpoint hook fires after optimizer step `global_step` (0-based, before the
 * increment): (global_step + 1) % every == 0, every > 0. */
int ti_run_is_checkpoint_step(int64_t global_step, int every);
/* 1 when the image logger fires at `global_step` (before the increment): global_step > 0 and
 * global_step % frequency == 0 (increase_log_steps false). */
int ti_run_is_image_step(int64_t global_step, int frequency);
/* "<dir>/embeddings_gs-<step>.pt" (not zero-padded). */
void ti_run_embedding_name(char *buf, size_t cap, const char *ckpt_dir, int64_t step);
/* "<dir>/<key>_gs-%06d_e-%06d_b-%06d.jpg". */
void ti_run_image_name(char *buf, size_t cap, const char *dir, const char *key, int64_t gs,
                       int64_t epoch, int64_t batch);

#ifdef __cplusplus
}
#endif
#endif /* TI_RUN_LOG_H */
