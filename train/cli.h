/*
 * cli.h - ti-train's command line: the flags of the peer's main.py that textual inversion uses
 * (ti-peer.md §1.1), read with the peer's semantics, plus ti's own (--resume RUN, --precision,
 * --format, --dry_run, --templates, --lr_scheduler, --lr_warmup_steps).
 *
 *   struct ti_train_args a;
 *   char msg[512];
 *   int r = ti_train_args_parse(&a, argc, argv, msg, sizeof msg);
 *   if (r < 0) { fprintf(stderr, "ti-train: %s\n", msg); return 2; }   // usage error
 *   if (r > 0) { ti_train_usage(stdout); return 0; }                     // --help
 *
 * Semantics kept from main.py:
 *   - bool flags (-t/--train, --scale_lr, --datadir_in_name, --no-test, --dry_run) follow
 *     str2bool with nargs='?': the bare flag means true, a following yes/true/t/y/1 or
 *     no/false/f/n/0 (any case) is taken as its value, `--flag=value` too. A following token that
 *     is not an option and not a `key=value` override is an error ("Boolean value expected").
 *   - every token `key.path=value` that is not a flag is an OmegaConf dot-list override, merged
 *     after the --base files in command-line order.
 *   - -n/--name together with --resume is refused with the peer's message.
 *   - --seed defaults to 23, --logdir to "logs", --scale_lr and --datadir_in_name to true.
 * Differences (fixes of §1.7 / §8.3): an unknown `--flag` is an error naming it (the peer turned
 * it into a broken dot-list entry); --resume takes a ti run folder and continues bit-exactly;
 * --no-test is accepted and does nothing (ti never runs a test split).
 *
 * Strings in the struct point into argv (no allocation, nothing to free).
 * Not here: building the config (run_log.h), the training loop (ti_train.c).
 */
#ifndef TI_TRAIN_CLI_H
#define TI_TRAIN_CLI_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: uint64_t */
#include <stdio.h>  /* defines: FILE */

#include "embedding_io.h" /* defines: enum ti_embedding_format */
#include "lr_schedule.h"  /* defines: enum ti_lr_schedule */

#ifdef __cplusplus
extern "C" {
#endif

#define TI_TRAIN_MAX_BASE      16
#define TI_TRAIN_MAX_OVERRIDES 64
#define TI_TRAIN_MAX_GPUS      16

enum ti_train_precision { TI_PREC_FP32, TI_PREC_BF16, TI_PREC_FP16 };

struct ti_train_args {
    const char *base[TI_TRAIN_MAX_BASE]; /* -b/--base, merged in order */
    int n_base;
    int train;                          /* -t/--train */
    int no_test;                        /* --no-test (no effect) */
    int dry_run;                        /* --dry_run */
    const char *actual_resume;          /* the frozen model checkpoint */
    const char *name;                   /* -n/--name ("" = none) */
    const char *postfix;                /* -f/--postfix */
    const char *logdir;                 /* -l/--logdir, default "logs" */
    uint64_t seed;                      /* -s/--seed, default 23 */
    const char *gpus;                   /* --gpus as written ("0," / "0,3" / "2"); NULL: none */
    int n_gpus;                         /* devices --gpus selects (0: the CPU) */
    int gpu_ids[TI_TRAIN_MAX_GPUS];     /* the ids */
    const char *data_root;              /* --data_root */
    const char *init_word;              /* --init_word or NULL */
    const char *placeholder;            /* --placeholder_string or NULL */
    const char *embedding_manager_ckpt; /* --embedding_manager_ckpt ("" = none) */
    int scale_lr;                       /* --scale_lr, default 1 */
    int datadir_in_name;                /* --datadir_in_name, default 1 */
    const char *overrides[TI_TRAIN_MAX_OVERRIDES]; /* key.path=value, in order */
    int n_overrides;
    long max_steps;               /* --max_steps; -1 = not given */
    long max_epochs;              /* --max_epochs; -1 = not given */
    long accumulate_grad_batches; /* --accumulate_grad_batches; -1 = not given */
    const char *resume;           /* --resume RUN_FOLDER or NULL */
    enum ti_train_precision precision;
    int precision_given;
    enum ti_embedding_format format;  /* --format, default TI_EMB_A1111 */
    int quiet;                        /* --quiet: no progress line */
    const char *templates;            /* --templates FILE (ti) or NULL: the peer's templates */
    enum ti_lr_schedule lr_scheduler; /* --lr_scheduler (ti), default constant (the peer's) */
    int lr_scheduler_given;           /* --lr_scheduler was given (refused with --resume) */
    long lr_warmup_steps;             /* --lr_warmup_steps (ti), default 0 */
};

/* Fills *a from argv (argv[0] is the program). Returns 0 ok, 1 when --help was asked (a is
 * then incomplete), -1 on a usage error with a message naming the flag and what was expected
 * in msg. Also checks what is required: --actual_resume and --data_root (except with --resume,
 * where the saved run supplies them), and --base unless --resume. */
int ti_train_args_parse(struct ti_train_args *a, int argc, char **argv, char *msg, size_t cap);

/* The --help text. */
void ti_train_usage(FILE *f);

/* str2bool: yes/true/t/y/1 -> 1, no/false/f/n/0 -> 0 (any case), else -1. */
int ti_train_str2bool(const char *s);

/* 1 when argparse would read `s` as an option rather than as a value: it starts with '-', is
 * longer than "-", holds no space and is not a negative number ("-5", "-.5"). An option that
 * takes a value refuses such a token ("expected one argument"): every ti tool does the same. */
int ti_cli_is_option(const char *s);

/* `--flag=value`: copies "--flag" into buf (cap bytes) and returns the value; NULL (buf
 * untouched) when `arg` is not a long option with '='. */
const char *ti_cli_split_eq(const char *arg, char *buf, size_t cap);

/* The value of option argv[i] from argv[i + 1], or NULL after printing "TOOL: FLAG expected one
 * argument[, not the option '...']" to stderr (argv[i + 1] missing or an option). */
const char *ti_cli_next_value(const char *tool, int argc, char **argv, int i);

/* argparse's allow_abbrev for ti-sample, ti-merge, ti-convert and ti-inspect: a long option
 * written as the prefix of exactly one of `names` ("--name" strings, NULL-terminated) is that
 * option. Returns the full name (a string of `names`); `arg` itself when it is a name, not a long
 * option, or the prefix of none (the caller reports it as unknown); NULL after printing "TOOL:
 * ambiguous option: ARG could match --a, --b" to stderr when it starts several. ti-train does
 * not abbreviate: main.py's options and Lightning's share too many prefixes. */
const char *ti_cli_expand(const char *tool, const char *arg, const char *const *names);

/* "fp32" / "bf16" / "fp16". */
const char *ti_train_precision_name(enum ti_train_precision p);

#ifdef __cplusplus
}
#endif
#endif /* TI_TRAIN_CLI_H */
