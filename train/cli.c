/*
 * cli.c - ti-train's command line (cli.h has the rules).
 */
#include "cli.h"

#include <ctype.h>  /* defines: tolower */
#include <errno.h>  /* defines: errno */
#include <stdarg.h> /* defines: va_list */
#include <stdlib.h> /* defines: strtol, strtoull */
#include <string.h> /* defines: strcmp, strchr, strncmp */

void ti_train_usage(FILE *f) {
    fprintf(
        f,
        "usage: ti-train --base CONFIG.yaml [--base MORE.yaml ...] -t --actual_resume MODEL\n"
        "                --data_root DIR [options] [key.path=value ...]\n"
        "       ti-train --resume RUN_FOLDER [--max_steps N] [--quiet] [--gpus IDS]\n"
        "\n"
        "Textual inversion: learns the vectors of a new word (the placeholder, '*' unless set)\n"
        "from a folder of images, with the frozen Stable Diffusion v1 or LDM model in MODEL. The\n"
        "flags are those of the original textual_inversion main.py; what differs is marked (ti).\n"
        "\n"
        "Config\n"
        "  -b, --base FILE ...        YAML configs, merged left to right (several files may\n"
        "                             follow one --base, or repeat --base)\n"
        "  key.path=value             any other argument of this form overrides the merged config\n"
        "                             (e.g. lightning.trainer.max_steps=3000\n"
        "                             data.params.batch_size=1), in command-line order\n"
        "  --actual_resume MODEL      the frozen model (.ckpt, .safetensors, diffusers folder)\n"
        "  --data_root DIR            the training images (JPEG/PNG/BMP/TGA/GIF, and WebP/TIFF\n"
        "                             when ti is built with libwebp/libtiff; EXIF rotation is\n"
        "                             applied (ti); other files are skipped with a warning)\n"
        "  --init_word WORD           the word whose embedding starts the new one (one token)\n"
        "  --placeholder_string S     the new word (one token; default '*'); ti also puts it in\n"
        "                             the training captions (the original did not, so nothing\n"
        "                             was learned)\n"
        "  --embedding_manager_ckpt F start from the vectors in an embedding file\n"
        "  --templates FILE           (ti) the training captions' templates, one per line, {}\n"
        "                             (or AUTOMATIC1111's [name]) where the new word goes, '#'\n"
        "                             starts a comment; instead of the original's fixed list\n"
        "                             (\"a photo of a {}\", \"a rendering of a {}\", ...). For a\n"
        "                             model whose text encoder knows other words (models/tiny-*\n"
        "                             ship theirs as templates.txt)\n"
        "  --max_steps N              optimizer steps (lightning.trainer.max_steps)\n"
        "  --max_epochs N             stop after N epochs if that comes first\n"
        "                             (lightning.trainer.max_epochs; an epoch is images x\n"
        "                             repeats / batch_size micro-batches)\n"
        "  --accumulate_grad_batches K  micro-batches per optimizer step\n"
        "  --scale_lr [BOOL]          lr = accumulate * gpus * batch * base_lr (default true)\n"
        "  --lr_scheduler NAME        (ti) how the LR changes over the --max_steps steps, as in\n"
        "                             diffusers: constant (default; the original has no\n"
        "                             schedule), constant_with_warmup, linear (to 0), cosine (to "
        "0)\n"
        "  --lr_warmup_steps N        (ti) steps of linear warm-up from 0 (default 0; needs a\n"
        "                             --lr_scheduler other than constant)\n"
        "  -s, --seed N               random seed (default 23)\n"
        "  --gpus IDS                 run on CUDA device(s), read as PyTorch Lightning does:\n"
        "                             ids with a comma (\"0,\" device 0, \"0,3\"), or a count\n"
        "                             (\"1\" device 0, \"2\" devices 0 and 1, \"0\" the CPU);\n"
        "                             absent: CPU; several devices need mpirun -np N (one\n"
        "                             process per GPU)\n"
        "  --precision P              fp32 (default), bf16, or fp16 (GPU only); also 32, 16\n"
        "\n");
    fprintf(
        f,
        "Run folder (LOGDIR/<data_root name><date>_<name or config name><postfix>/)\n"
        "  -t, --train [BOOL]         train (without it ti-train only prepares and checks)\n"
        "  -n, --name NAME            run name (not with --resume)\n"
        "  -f, --postfix S            appended to the run folder name\n"
        "  -l, --logdir DIR           root of the run folders (default logs)\n"
        "  --datadir_in_name [BOOL]   start the folder name with the data folder name (default\n"
        "                             true)\n"
        "  --format F                 embedding files written (ti):\n"
        "                               a1111 (default) AUTOMATIC1111's layout:\n"
        "                                 torch.load(weights_only=True), AUTOMATIC1111, ComfyUI,\n"
        "                                 diffusers, ti-sample, ti-merge. The vectors are\n"
        "                                 stored under '*' with the word's token id beside them\n"
        "                                 (ti-sample and ti-merge read that word back)\n"
        "                               peer   the original EmbeddingManager layout\n"
        "                                 (nn.ParameterDict; several placeholders): for the\n"
        "                                 original txt2img and merge_embeddings.py, whose\n"
        "                                 EmbeddingManager needs the token id as a tensor\n"
        "                               diffusers  learned_embeds layout, written as\n"
        "                                 embeddings.safetensors / embeddings_gs-N.safetensors\n"
        "                                 (diffusers' load_textual_inversion refuses a key its\n"
        "                                 tokenizer knows, such as '*': give it token=\"<x>\")\n"
        "  -r, --resume RUN_FOLDER    (ti) continue an interrupted run exactly where it stopped:\n"
        "                             same vectors, optimizer state, step and random state, so\n"
        "                             the result is bit-identical to an uninterrupted run;\n"
        "                             --max_steps may raise the target. The config is the run's\n"
        "                             own (RUN/configs/); a file inside the run\n"
        "                             (RUN/checkpoints/embeddings.pt, as the original's -r takes)\n"
        "                             or RUN/checkpoints also names the run\n"
        "  --dry_run                  (ti) prepare the data exactly as training would, write each\n"
        "                             prepared image to RUN/data/NNN_<name>.png and 20 sample\n"
        "                             captions to RUN/data/captions.txt, then stop (no model)\n"
        "  --no-test [BOOL]           accepted for compatibility; ti never runs a test split\n"
        "  -p, --project P, -d, --debug [BOOL]\n"
        "                             accepted for compatibility, no effect (the original never\n"
        "                             reads --project; --debug starts its Python debugger)\n"
        "  --quiet                    (ti) no progress line\n"
        "  -h, --help                 this text\n"
        "\n"
        "mpirun -np N ti-train ... (a build with MPI): N data-parallel processes, each taking a\n"
        "full batch of different samples; the gradients are averaged before each step and the\n"
        "LR counts N as the number of GPUs. Rank 0 writes the run folder.\n"
        "With model.params.unfreeze_model (pivotal tuning) checkpoints/model.safetensors holds\n"
        "the latest model weights too.\n"
        "\n");
    fprintf(
        f,
        "BOOL is yes/true/t/y/1 or no/false/f/n/0; a bare flag means true.\n"
        "Written: RUN/configs/<now>-project.yaml and <now>-lightning.yaml (the merged config),\n"
        "RUN/checkpoints/embeddings.pt (latest) and embeddings_gs-N.pt at N = 499, 999, ... and\n"
        "the last step, RUN/images/train/<key>_gs-NNNNNN_e-NNNNNN_b-NNNNNN.jpg (keys inputs,\n"
        "reconstruction, conditioning, samples, samples_scaled; RUN/images/val/ likewise at the\n"
        "epoch ends that fall on a logging step), RUN/metrics.h5 (step, loss, lr,\n"
        "embedding_norm; metrics.csv without HDF5), RUN/loss.png. Ctrl-C saves\n"
        "the embeddings and the resume state, then stops. Every file appears whole or not at all.\n"
        "Exit status: 0 done, 1 run-time error, 2 usage error, 130 / 143 stopped by SIGINT /\n"
        "SIGTERM (embeddings and resume state saved).\n");
}

int ti_train_str2bool(const char *s) {
    static const char *const yes[] = {"yes", "true", "t", "y", "1"};
    static const char *const no[] = {"no", "false", "f", "n", "0"};
    char low[8];
    size_t n = strlen(s);
    if (n >= sizeof low) return -1;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)s[i]);
    for (int i = 0; i < 5; i++) {
        if (!strcmp(low, yes[i])) return 1;
        if (!strcmp(low, no[i])) return 0;
    }
    return -1;
}

const char *ti_train_precision_name(enum ti_train_precision p) {
    return p == TI_PREC_BF16 ? "bf16" : p == TI_PREC_FP16 ? "fp16" : "fp32";
}

static int fail(char *msg, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(char *msg, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int ti_cli_is_option(const char *s) {
    if (!s || s[0] != '-' || !s[1] || strchr(s, ' ')) return 0;
    const char *p = s + 1;
    int digits = 0, dot = 0;
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && !dot)
            dot = 1;
        else
            return 1;
    }
    return !digits; /* "-5", "-.5", "-1.25": a negative number */
}

const char *ti_cli_next_value(const char *tool, int argc, char **argv, int i) {
    if (i + 1 < argc && !ti_cli_is_option(argv[i + 1])) return argv[i + 1];
    if (i + 1 < argc)
        fprintf(stderr, "%s: %s expected one argument, not the option '%s'\n", tool, argv[i],
                argv[i + 1]);
    else
        fprintf(stderr, "%s: %s expected one argument\n", tool, argv[i]);
    return NULL;
}

const char *ti_cli_split_eq(const char *arg, char *buf, size_t cap) {
    const char *eq = strchr(arg, '=');
    if (arg[0] != '-' || arg[1] != '-' || !eq || !cap) return NULL;
    size_t n = (size_t)(eq - arg);
    if (n >= cap) n = cap - 1;
    memcpy(buf, arg, n);
    buf[n] = 0;
    return eq + 1;
}

const char *ti_cli_expand(const char *tool, const char *arg, const char *const *names) {
    if (arg[0] != '-' || arg[1] != '-' || !arg[2]) return arg;
    size_t n = strlen(arg);
    const char *hit = NULL;
    int hits = 0;
    for (int k = 0; names[k]; k++) {
        if (!strcmp(arg, names[k])) return arg;
        if (!strncmp(arg, names[k], n)) {
            hit = names[k];
            hits++;
        }
    }
    if (hits <= 1) return hits ? hit : arg;
    fprintf(stderr, "%s: ambiguous option: %s could match", tool, arg);
    for (int k = 0, first = 1; names[k]; k++)
        if (!strncmp(arg, names[k], n)) {
            fprintf(stderr, "%s %s", first ? "" : ",", names[k]);
            first = 0;
        }
    fputc('\n', stderr);
    return NULL;
}

/* The Trainer flags main.py accepts through Trainer.add_argparse_args (PyTorch Lightning 1.x)
 * that ti-train does not map: named as such instead of "unknown". */
static int is_lightning_flag(const char *flag) {
    static const char pl[] =
        " --min_epochs --min_steps --max_time --check_val_every_n_epoch"
        " --val_check_interval --limit_train_batches --limit_val_batches --limit_test_batches"
        " --log_every_n_steps --gradient_clip_val --gradient_clip_algorithm --num_nodes"
        " --num_processes --devices --accelerator --strategy --tpu_cores --ipus"
        " --auto_select_gpus --benchmark --deterministic --fast_dev_run --overfit_batches"
        " --num_sanity_val_steps --resume_from_checkpoint --default_root_dir"
        " --enable_checkpointing --checkpoint_callback --enable_progress_bar"
        " --progress_bar_refresh_rate --enable_model_summary --weights_summary"
        " --track_grad_norm --amp_backend --amp_level --auto_lr_find --auto_scale_batch_size"
        " --replace_sampler_ddp --detect_anomaly --profiler --reload_dataloaders_every_n_epochs"
        " --sync_batchnorm --logger --plugins --move_metrics_to_cpu"
        " --multiple_trainloader_mode --stochastic_weight_avg --terminate_on_nan"
        " --flush_logs_every_n_steps --prepare_data_per_node --process_position"
        " --weights_save_path ";
    size_t n = strlen(flag);
    if (n < 3) return 0;
    for (const char *p = strstr(pl, flag); p; p = strstr(p + 1, flag))
        if (p[-1] == ' ' && p[n] == ' ') return 1;
    return 0;
}

/* A dot-list override: "a.b=c" with a key that starts with a letter or '_'. */
static int is_override(const char *s) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || s[0] == '-') return 0;
    return isalpha((unsigned char)s[0]) || s[0] == '_';
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* --gpus as PyTorch Lightning 1.5 reads it (parse_gpu_ids): with a comma, device ids ("0," /
 * "0,3,7,8"); without, a count N: devices 0..N-1 ("1" is device 0, "2" devices 0 and 1), 0 the
 * CPU. -1 (every GPU) is refused: ti needs the ids. The peer's LR counts
 * len(s.strip(",").split(",")) whatever PL uses (config.c). */
static int parse_gpus(struct ti_train_args *a, const char *s, char *msg, size_t cap) {
    a->n_gpus = 0;
    a->gpus = s;
    if (!strchr(s, ',')) {
        long n;
        if (!strcmp(s, "-1"))
            return fail(msg, cap,
                        "--gpus -1 (every GPU): give the device ids instead, e.g. \"0,1\"");
        if (!parse_long(s, 0, TI_TRAIN_MAX_GPUS, &n))
            return fail(msg, cap,
                        "--gpus: expected a GPU count (0 = the CPU, N = devices 0..N-1, at most "
                        "%d) or device ids with a comma (\"0,\" or \"0,3\"), found '%s'",
                        TI_TRAIN_MAX_GPUS, s);
        for (int i = 0; i < (int)n; i++)
            a->gpu_ids[a->n_gpus++] = i;
        return 0;
    }
    const char *p = s;
    while (*p) {
        if (*p == ',') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > 1023 || (*end && *end != ','))
            return fail(msg, cap,
                        "--gpus: expected device ids separated by commas (\"0,\" or "
                        "\"0,3\") or a GPU count (\"1\"), found '%s'",
                        s);
        if (a->n_gpus == TI_TRAIN_MAX_GPUS)
            return fail(msg, cap, "--gpus: at most %d devices", TI_TRAIN_MAX_GPUS);
        a->gpu_ids[a->n_gpus++] = (int)v;
        p = end;
    }
    if (!a->n_gpus)
        return fail(msg, cap, "--gpus: expected at least one device id (\"0,\"), found '%s'", s);
    return 0;
}

enum flag_kind { F_STR, F_BOOL, F_BASE };
struct flag {
    const char *lng, *shrt;
    enum flag_kind kind;
    int id;
};
enum {
    ID_BASE,
    ID_TRAIN,
    ID_NOTEST,
    ID_DRY,
    ID_ACTUAL,
    ID_NAME,
    ID_POSTFIX,
    ID_LOGDIR,
    ID_SEED,
    ID_GPUS,
    ID_DATA,
    ID_INIT,
    ID_PLACE,
    ID_EMCKPT,
    ID_SCALE,
    ID_DDIN,
    ID_MAXSTEPS,
    ID_MAXEPOCHS,
    ID_ACCUM,
    ID_RESUME,
    ID_PREC,
    ID_FORMAT,
    ID_QUIET,
    ID_TEMPLATES,
    ID_LRSCHED,
    ID_WARMUP,
    ID_PROJECT,
    ID_DEBUG
};
static const struct flag flags[] = {
    {"--base", "-b", F_BASE, ID_BASE},
    {"--train", "-t", F_BOOL, ID_TRAIN},
    {"--no-test", NULL, F_BOOL, ID_NOTEST},
    {"--dry_run", NULL, F_BOOL, ID_DRY},
    {"--actual_resume", NULL, F_STR, ID_ACTUAL},
    {"--name", "-n", F_STR, ID_NAME},
    {"--postfix", "-f", F_STR, ID_POSTFIX},
    {"--logdir", "-l", F_STR, ID_LOGDIR},
    {"--seed", "-s", F_STR, ID_SEED},
    {"--gpus", NULL, F_STR, ID_GPUS},
    {"--data_root", NULL, F_STR, ID_DATA},
    {"--init_word", NULL, F_STR, ID_INIT},
    {"--placeholder_string", NULL, F_STR, ID_PLACE},
    {"--embedding_manager_ckpt", NULL, F_STR, ID_EMCKPT},
    {"--scale_lr", NULL, F_BOOL, ID_SCALE},
    {"--datadir_in_name", NULL, F_BOOL, ID_DDIN},
    {"--max_steps", NULL, F_STR, ID_MAXSTEPS},
    {"--max_epochs", NULL, F_STR, ID_MAXEPOCHS},
    {"--accumulate_grad_batches", NULL, F_STR, ID_ACCUM},
    {"--resume", "-r", F_STR, ID_RESUME},
    {"--precision", NULL, F_STR, ID_PREC},
    {"--format", NULL, F_STR, ID_FORMAT},
    {"--quiet", "-q", F_BOOL, ID_QUIET},
    {"--templates", NULL, F_STR, ID_TEMPLATES},
    {"--lr_scheduler", NULL, F_STR, ID_LRSCHED},
    {"--lr_warmup_steps", NULL, F_STR, ID_WARMUP},
    {"--project", "-p", F_STR, ID_PROJECT},
    {"--debug", "-d", F_BOOL, ID_DEBUG},
};

/* an integer flag's value in lo..hi (lo 0 or 1) into *dst */
static int set_long(long *dst, const char *flag, const char *v, long lo, long hi, char *msg,
                    size_t cap) {
    if (!parse_long(v, lo, hi, dst))
        return fail(msg, cap, "%s: expected a %s integer, found '%s'", flag,
                    lo > 0 ? "positive" : "non-negative", v);
    return 0;
}

static int set_str(struct ti_train_args *a, int id, const char *flag, const char *v, char *msg,
                   size_t cap) {
    switch (id) {
    case ID_ACTUAL: a->actual_resume = v; break;
    case ID_NAME: a->name = v; break;
    case ID_POSTFIX: a->postfix = v; break;
    case ID_LOGDIR:
        if (!*v) return fail(msg, cap, "%s: expected a folder, found an empty string", flag);
        a->logdir = v;
        break;
    case ID_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-')
            return fail(msg, cap, "%s: expected a non-negative integer, found '%s'", flag, v);
        a->seed = s;
        break;
    }
    case ID_GPUS: return parse_gpus(a, v, msg, cap);
    case ID_DATA: a->data_root = v; break;
    case ID_INIT:
        if (!*v) return fail(msg, cap, "%s: expected a word, found an empty string", flag);
        a->init_word = v;
        break;
    case ID_PLACE:
        if (!*v) return fail(msg, cap, "%s: expected a string, found an empty string", flag);
        a->placeholder = v;
        break;
    case ID_EMCKPT: a->embedding_manager_ckpt = v; break;
    case ID_TEMPLATES:
        if (!*v) return fail(msg, cap, "%s: expected a file, found an empty string", flag);
        a->templates = v;
        break;
    case ID_LRSCHED:
        if (ti_lr_schedule_parse(v, &a->lr_scheduler) != 0)
            return fail(msg, cap, "%s: expected one of %s, found '%s'", flag,
                        ti_lr_schedule_names(), v);
        a->lr_scheduler_given = 1;
        break;
    case ID_WARMUP: return set_long(&a->lr_warmup_steps, flag, v, 0, 1000000000L, msg, cap);
    case ID_MAXSTEPS: return set_long(&a->max_steps, flag, v, 1, 1000000000L, msg, cap);
    case ID_MAXEPOCHS: return set_long(&a->max_epochs, flag, v, 1, 1000000000L, msg, cap);
    case ID_ACCUM: return set_long(&a->accumulate_grad_batches, flag, v, 1, 1000000L, msg, cap);
    case ID_RESUME:
        if (!*v) return fail(msg, cap, "%s: expected a run folder, found an empty string", flag);
        a->resume = v;
        break;
    case ID_PREC:
        if (!strcmp(v, "fp32") || !strcmp(v, "32"))
            a->precision = TI_PREC_FP32;
        else if (!strcmp(v, "bf16"))
            a->precision = TI_PREC_BF16;
        else if (!strcmp(v, "fp16") || !strcmp(v, "16"))
            a->precision = TI_PREC_FP16;
        else
            return fail(msg, cap, "%s: expected fp32, bf16 or fp16, found '%s'", flag, v);
        a->precision_given = 1;
        break;
    case ID_FORMAT:
        a->format = ti_embedding_format_parse(v);
        if (a->format != TI_EMB_A1111 && a->format != TI_EMB_PEER && a->format != TI_EMB_DIFFUSERS)
            return fail(msg, cap, "%s: expected a1111, peer or diffusers, found '%s'", flag, v);
        break;
    default: break;
    }
    return 0;
}

static void set_bool(struct ti_train_args *a, int id, int b) {
    switch (id) {
    case ID_TRAIN: a->train = b; break;
    case ID_NOTEST: a->no_test = b; break;
    case ID_DRY: a->dry_run = b; break;
    case ID_SCALE: a->scale_lr = b; break;
    case ID_DDIN: a->datadir_in_name = b; break;
    case ID_QUIET: a->quiet = b; break;
    default: break;
    }
}

int ti_train_args_parse(struct ti_train_args *a, int argc, char **argv, char *msg, size_t cap) {
    memset(a, 0, sizeof *a);
    a->name = "";
    a->postfix = "";
    a->logdir = "logs";
    a->seed = 23;
    a->embedding_manager_ckpt = "";
    a->scale_lr = 1;
    a->datadir_in_name = 1;
    a->max_steps = -1;
    a->max_epochs = -1;
    a->accumulate_grad_batches = -1;
    a->format = TI_EMB_A1111;
    int name_given = 0;
    unsigned long long given = 0; /* 1 << ID_*: the flags on the command line */
    if (msg && cap) msg[0] = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) return 1;
        if (arg[0] != '-' || !arg[1]) {
            if (is_override(arg)) {
                if (a->n_overrides == TI_TRAIN_MAX_OVERRIDES)
                    return fail(msg, cap, "at most %d key.path=value overrides",
                                TI_TRAIN_MAX_OVERRIDES);
                a->overrides[a->n_overrides++] = arg;
                continue;
            }
            return fail(msg, cap,
                        "unexpected argument '%s': expected a flag (see --help) or a "
                        "key.path=value override",
                        arg);
        }
        /* --flag=value */
        char flagbuf[64];
        const char *inline_val = NULL;
        const char *flag = arg;
        if ((inline_val = ti_cli_split_eq(arg, flagbuf, sizeof flagbuf))) {
            flag = flagbuf;
        } else if (arg[1] != '-' && arg[2]) {
            /* argparse's -s5 / -nNAME: a short flag that takes a value, written attached */
            for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
                if (flags[k].shrt && flags[k].kind == F_STR && !strncmp(arg, flags[k].shrt, 2)) {
                    memcpy(flagbuf, arg, 2);
                    flagbuf[2] = 0;
                    flag = flagbuf;
                    inline_val = arg + 2;
                }
        }
        const struct flag *fl = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(flag, flags[k].lng) || (flags[k].shrt && !strcmp(flag, flags[k].shrt)))
                fl = &flags[k];
        if (!fl && is_lightning_flag(flag))
            return fail(msg, cap,
                        "'%s' is a PyTorch Lightning Trainer flag that ti-train does not take: "
                        "it maps only --max_steps, --max_epochs, --accumulate_grad_batches, "
                        "--precision and --gpus",
                        flag);
        if (!fl)
            return fail(msg, cap,
                        "unknown flag '%s' (see --help; config keys are set as "
                        "key.path=value)",
                        flag);
        given |= 1ull << fl->id;
        if (fl->kind == F_BOOL) {
            int b = 1;
            if (inline_val) {
                b = ti_train_str2bool(inline_val);
                if (b < 0)
                    return fail(msg, cap,
                                "%s: Boolean value expected (yes/no, true/false), found '%s'",
                                fl->lng, inline_val);
            } else if (i + 1 < argc && argv[i + 1][0] != '-' && !is_override(argv[i + 1])) {
                b = ti_train_str2bool(argv[i + 1]);
                if (b < 0)
                    return fail(msg, cap,
                                "%s: Boolean value expected (yes/no, true/false), found '%s'",
                                fl->lng, argv[i + 1]);
                i++;
            }
            set_bool(a, fl->id, b);
            continue;
        }
        if (fl->kind == F_BASE) {
            int got = 0;
            if (inline_val) {
                if (a->n_base == TI_TRAIN_MAX_BASE)
                    return fail(msg, cap, "--base: at most %d files", TI_TRAIN_MAX_BASE);
                a->base[a->n_base++] = inline_val;
                got = 1;
            }
            /* nargs='*': every following token that is not a flag or an override */
            while (!inline_val && i + 1 < argc && argv[i + 1][0] != '-' &&
                   !is_override(argv[i + 1])) {
                if (a->n_base == TI_TRAIN_MAX_BASE)
                    return fail(msg, cap, "--base: at most %d files", TI_TRAIN_MAX_BASE);
                a->base[a->n_base++] = argv[++i];
                got = 1;
            }
            if (!got) return fail(msg, cap, "--base: expected one or more YAML config files");
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) return fail(msg, cap, "%s: expected one argument", fl->lng);
            if (ti_cli_is_option(argv[i + 1]))
                return fail(msg, cap, "%s: expected one argument, not the option '%s'", fl->lng,
                            argv[i + 1]);
            v = argv[++i];
        }
        if (fl->id == ID_NAME) name_given = 1;
        if (set_str(a, fl->id, fl->lng, v, msg, cap) < 0) return -1;
    }

    if (name_given && a->resume)
        return fail(msg, cap,
                    "-n/--name and -r/--resume cannot be specified both.If you want to resume "
                    "training in a new log folder, use -n/--name in combination with "
                    "--resume_from_checkpoint");
    if (a->resume) {
        /* the run folder holds everything else; only a few flags may change */
        const unsigned long long allowed =
            1ull << ID_RESUME | 1ull << ID_MAXSTEPS | 1ull << ID_QUIET | 1ull << ID_GPUS |
            1ull << ID_TRAIN | 1ull << ID_NOTEST | 1ull << ID_PROJECT | 1ull << ID_DEBUG;
        const char *bad = a->n_overrides ? a->overrides[0] : NULL;
        for (size_t k = 0; !bad && k < sizeof flags / sizeof flags[0]; k++)
            if ((given & ~allowed) >> flags[k].id & 1) bad = flags[k].lng;
        if (bad)
            return fail(msg, cap,
                        "--resume: the run folder fixes the config, model, data and schedule; "
                        "'%s' cannot be given with it (only --max_steps, --quiet and --gpus may)",
                        bad);
        return 0;
    }
    if (a->lr_warmup_steps > 0 && a->lr_scheduler == TI_LR_CONSTANT)
        return fail(msg, cap,
                    "--lr_warmup_steps %ld: the constant schedule has no warm-up; add "
                    "--lr_scheduler constant_with_warmup, linear or cosine",
                    a->lr_warmup_steps);
    if (!a->n_base)
        return fail(msg, cap,
                    "--base: expected at least one YAML config (e.g. "
                    "configs/stable-diffusion/v1-finetune.yaml)");
    if (!a->data_root || !*a->data_root)
        return fail(msg, cap, "--data_root: required (the folder of training images)");
    if (!a->dry_run && (!a->actual_resume || !*a->actual_resume))
        return fail(msg, cap, "--actual_resume: required (the model checkpoint to train against)");
    return 0;
}
