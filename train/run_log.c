/*
 * run_log.c - ti-train's run folder, config assembly and schedule (run_log.h has the rules).
 */
#include "run_log.h"

#include <ctype.h>    /* defines: isdigit */
#include <dirent.h>   /* defines: opendir, readdir */
#include <math.h>     /* defines: isnan, isinf */
#include <errno.h>    /* defines: errno, EEXIST */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: malloc, free */
#include <string.h>   /* defines: strlen, strcmp, strerror */
#include <sys/stat.h> /* defines: mkdir */
#include <unistd.h>   /* defines: unlink */

#include "fileio.h" /* defines: ti_file_write_atomic, ti_path_stem */
#include "strbuf.h" /* defines: struct ti_strbuf, ti_sb_put, ti_sb_str */

/* ---- config assembly ------------------------------------------------------------------------ */

static ti_status override_fmt(struct ti_yaml_doc *doc, struct ti_err *err, const char *key,
                              long v) {
    char buf[160];
    snprintf(buf, sizeof buf, "%s=%ld", key, v);
    return ti_yaml_override(doc, buf, err);
}

ti_status ti_train_config_build(struct ti_train_setup *s, const struct ti_train_args *a,
                                struct ti_err *err) {
    s->doc = NULL;
    s->cfg = NULL;
    ti_status st;
    TI_TRY_GOTO(
        st, ti_yaml_load_merged(&s->doc, a->base, a->n_base, a->overrides, a->n_overrides, err));
    struct ti_yaml_doc *d = s->doc;
    const struct ti_yaml_node *root = ti_yaml_root(d);
    /* the flags below add keys under model:, which would then seem to come from them */
    if (!ti_yaml_get(root, "model")) {
        char files[1024] = "";
        for (int i = 0; i < a->n_base && strlen(files) < 900; i++)
            snprintf(files + strlen(files), sizeof files - strlen(files), "%s%s", i ? ", " : "",
                     a->base[i]);
        st = ti_error(err, TI_ERR_CONFIG,
                      "--base %s: no 'model' section (empty, or not a model config); expected "
                      "one such as configs/stable-diffusion/v1-finetune.yaml",
                      files);
        goto fail;
    }
    /* main.py: trainer.accelerator = "ddp" (kept only with gpus), then the non-default PL flags
     * in sorted order (nondefault_trainer_args sorts them); keys the YAML has keep their place */
    if (a->gpus)
        TI_TRY_GOTO(st, ti_yaml_set_str(d, "lightning.trainer.accelerator", "ddp", "--gpus", err));
    if (a->accumulate_grad_batches > 0)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.accumulate_grad_batches",
                                     a->accumulate_grad_batches));
    if (a->gpus)
        TI_TRY_GOTO(st, ti_yaml_set_str(d, "lightning.trainer.gpus", a->gpus, "--gpus", err));
    if (a->max_epochs > 0)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.max_epochs", a->max_epochs));
    if (a->max_steps > 0)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.max_steps", a->max_steps));
    if (a->precision_given && a->precision == TI_PREC_FP16)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.precision", 16));
    else if (a->precision_given && a->precision == TI_PREC_BF16)
        TI_TRY_GOTO(st,
                    ti_yaml_set_str(d, "lightning.trainer.precision", "bf16", "--precision", err));
    const char *pz = "model.params.personalization_config.params";
    char path[256];
    snprintf(path, sizeof path, "%s.embedding_manager_ckpt", pz);
    TI_TRY_GOTO(st,
                ti_yaml_set_str(d, path, a->embedding_manager_ckpt ? a->embedding_manager_ckpt : "",
                                "--embedding_manager_ckpt", err));
    static const char *const splits[] = {"train", "validation"};
    if (a->placeholder) {
        snprintf(path, sizeof path, "%s.placeholder_strings", pz);
        TI_TRY_GOTO(st,
                    ti_yaml_set_str_list(d, path, &a->placeholder, 1, "--placeholder_string", err));
        /* the peer forgot this (pitfall 1.7-b): the captions must carry the new word */
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "data.params.%s", splits[k]);
            if (!ti_yaml_get(root, path)) continue;
            snprintf(path, sizeof path, "data.params.%s.params.placeholder_token", splits[k]);
            TI_TRY_GOTO(st, ti_yaml_set_str(d, path, a->placeholder, "--placeholder_string", err));
        }
    }
    if (a->init_word) {
        /* initializer_words[0] = word; the list is created when absent */
        snprintf(path, sizeof path, "%s.initializer_words", pz);
        const struct ti_yaml_node *iw = ti_yaml_get(root, path);
        if (iw && iw->kind == TI_YAML_SEQ && iw->n > 0) {
            snprintf(path, sizeof path, "%s.initializer_words[0]", pz);
            TI_TRY_GOTO(st, ti_yaml_set_str(d, path, a->init_word, "--init_word", err));
        } else {
            TI_TRY_GOTO(st, ti_yaml_set_str_list(d, path, &a->init_word, 1, "--init_word", err));
        }
    }
    if (a->data_root) {
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "data.params.%s", splits[k]);
            if (!ti_yaml_get(root, path)) continue;
            snprintf(path, sizeof path, "data.params.%s.params.data_root", splits[k]);
            TI_TRY_GOTO(st, ti_yaml_set_str(d, path, a->data_root, "--data_root", err));
        }
    }
    s->cfg = calloc(1, sizeof *s->cfg);
    if (!s->cfg) {
        st = ti_error(err, TI_ERR_NOMEM, "out of memory for the config");
        goto fail;
    }
    TI_TRY_GOTO(st, ti_config_from_yaml(s->cfg, ti_yaml_root(d), err));
    TI_TRY_GOTO(st, ti_config_check_train(s->cfg, err));
    return TI_OK;
fail:
    ti_train_setup_free(s);
    return st;
}

void ti_train_setup_free(struct ti_train_setup *s) {
    if (!s) return;
    ti_yaml_free(s->doc);
    free(s->cfg);
    s->doc = NULL;
    s->cfg = NULL;
}

/* ---- names ---------------------------------------------------------------------------------- */

/* basename(os.path.normpath(p)): components, "." dropped, ".." cancelling the component before
 * it (kept at the start of a relative path, dropped at the root of an absolute one); the last
 * one remains. An empty result (".", "/") gives no prefix. */
static void path_base(char *buf, size_t cap, const char *p) {
    /* the start and length of each kept component */
    enum { MAXC = 256 };
    size_t at[MAXC], len[MAXC];
    int n = 0, absolute = p[0] == '/';
    for (size_t i = 0; p[i];) {
        while (p[i] == '/')
            i++;
        size_t s = i;
        while (p[i] && p[i] != '/')
            i++;
        size_t l = i - s;
        if (l == 0 || (l == 1 && p[s] == '.')) continue;
        if (l == 2 && p[s] == '.' && p[s + 1] == '.') {
            if (n > 0 && !(len[n - 1] == 2 && !strncmp(p + at[n - 1], "..", 2))) {
                n--;
                continue;
            }
            if (absolute) continue; /* /.. is / */
        }
        if (n == MAXC) { /* absurdly deep: keep the last ones */
            memmove(at, at + 1, (MAXC - 1) * sizeof at[0]);
            memmove(len, len + 1, (MAXC - 1) * sizeof len[0]);
            n--;
        }
        at[n] = s;
        len[n] = l;
        n++;
    }
    buf[0] = 0;
    if (n == 0 || cap == 0) return;
    size_t l = len[n - 1] < cap ? len[n - 1] : cap - 1;
    memcpy(buf, p + at[n - 1], l);
    buf[l] = 0;
}

void ti_run_now_string(char *buf, size_t cap, const struct ti_train_args *a, time_t t) {
    char stem[256] = "", date[64];
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H-%M-%S", &tm);
    if (a->datadir_in_name && a->data_root) path_base(stem, sizeof stem, a->data_root);
    snprintf(buf, cap, "%s%s", stem, date);
}

void ti_run_dir_name(char *buf, size_t cap, const struct ti_train_args *a, const char *now) {
    char name[256] = "";
    if (a->name && *a->name)
        snprintf(name, sizeof name, "_%s", a->name);
    else if (a->n_base > 0) {
        char stem[200];
        char base[256];
        path_base(base, sizeof base, a->base[0]);
        ti_path_stem(base, stem, sizeof stem);
        snprintf(name, sizeof name, "_%s", stem);
    }
    snprintf(buf, cap, "%s%s%s", now, name, a->postfix ? a->postfix : "");
}

void ti_run_embedding_name(char *buf, size_t cap, const char *ckpt_dir, int64_t step) {
    snprintf(buf, cap, "%s/embeddings_gs-%lld.pt", ckpt_dir, (long long)step);
}

void ti_run_image_name(char *buf, size_t cap, const char *dir, const char *key, int64_t gs,
                       int64_t epoch, int64_t batch) {
    snprintf(buf, cap, "%s/%s_gs-%06lld_e-%06lld_b-%06lld.jpg", dir, key, (long long)gs,
             (long long)epoch, (long long)batch);
}

int ti_run_is_checkpoint_step(int64_t global_step, int every) {
    return every > 0 && (global_step + 1) % every == 0;
}

int ti_run_is_image_step(int64_t global_step, int frequency) {
    return frequency > 0 && global_step > 0 && global_step % frequency == 0;
}

/* ---- files ---------------------------------------------------------------------------------- */

ti_status ti_mkdirs(const char *path, struct ti_err *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return ti_error(err, TI_ERR_INVALID, "folder name '%s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return ti_error(err, TI_ERR_IO, "cannot create folder '%s': %s", buf, strerror(errno));
        if (!ti_path_is_dir(buf))
            return ti_error(err, TI_ERR_IO, "'%s' exists and is not a folder", buf);
        buf[i] = c;
    }
    return TI_OK;
}

int ti_run_clean_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp-")) continue;
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (ti_path_is_file(p) && unlink(p) == 0) n++;
    }
    closedir(d);
    return n;
}

ti_status ti_write_text_atomic(const char *path, const char *text, struct ti_err *err) {
    return ti_file_write_atomic(path, text, strlen(text), err);
}

/* ---- YAML emitter ---------------------------------------------------------------------------- */

static void sb_quoted(struct ti_strbuf *b, const char *s) {
    ti_sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '\t' || *p == '\n' || *p == '\r') {
            e[0] = '\\';
            e[1] = *p == '\t' ? 't' : *p == '\n' ? 'n' : 'r';
            ti_sb_put(b, e, 2);
        } else if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            ti_sb_put(b, e, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(e, sizeof e, "\\x%02x", *p);
            ti_sb_str(b, e);
        } else
            ti_sb_put(b, (const char *)p, 1);
    }
    ti_sb_put(b, "\"", 1);
}

/* ---- the YAML emitter: OmegaConf.to_yaml's text ------------------------------------------ */
/* The peer dumps its configs with OmegaConf.to_yaml, i.e. PyYAML's yaml.dump with
 * default_flow_style=False, allow_unicode=True, sort_keys=False. ti writes the same text:
 * block collections (a sequence under a key is not indented, "- " items), floats as Python's
 * repr (5.0e-03 -> 0.005, 1e-05 -> 1.0e-05), strings plain where PyYAML leaves them plain and
 * single-quoted otherwise ('*', '', 'yes', '5'), double-quoted with escapes when they hold
 * control characters. Not reproduced: PyYAML folds scalars longer than 80 columns at spaces
 * (ti writes them on one line; both read back the same). */

/* a string PyYAML would resolve to another type, or that reads back as one here */
static int str_resolves_other(const char *s) {
    int64_t i;
    double f;
    if (ti_yaml_resolve_plain(s, &i, &f) != TI_YAML_STR) return 1;
    /* YAML 1.1 timestamps (2022-08-21...) and the merge key */
    if (strlen(s) >= 10 && isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
        isdigit((unsigned char)s[2]) && isdigit((unsigned char)s[3]) && s[4] == '-')
        return 1;
    if (!strcmp(s, "<<") || !strcmp(s, "=")) return 1;
    return 0;
}

/* 0 plain, 1 single-quoted, 2 double-quoted (PyYAML's analyze_scalar, block context) */
static int str_style(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    int plain = n > 0;
    for (size_t k = 0; k < n; k++) {
        unsigned c = p[k];
        /* control characters (tab and line breaks included) and C1 controls (U+0080..U+009F,
         * UTF-8 C2 80..C2 9F; U+0085 is a YAML break) need escapes */
        if (c < 0x20 || c == 0x7f ||
            (c == 0xC2 && k + 1 < n && p[k + 1] >= 0x80 && p[k + 1] < 0xA0))
            return 2;
    }
    if (!plain) return 1;
    if (p[0] == ' ' || p[n - 1] == ' ') return 1;
    if (strchr("#,[]{}&*!|>'\"%@`", p[0])) return 1;
    if (strchr("-?:", p[0]) && (n == 1 || p[1] == ' ')) return 1;
    for (size_t k = 0; k < n; k++) {
        if (p[k] == ':' && (k + 1 == n || p[k + 1] == ' ')) return 1;
        if (p[k] == '#' && k > 0 && p[k - 1] == ' ') return 1;
    }
    /* U+FEFF and other non-printables: PyYAML double-quotes them; the BOM is the likely one */
    if (strstr(s, "\xEF\xBB\xBF")) return 2;
    if (str_resolves_other(s)) return 1;
    return 0;
}

static void sb_single(struct ti_strbuf *b, const char *s) {
    ti_sb_put(b, "'", 1);
    for (const char *p = s; *p; p++) {
        ti_sb_put(b, p, 1);
        if (*p == '\'') ti_sb_put(b, "'", 1); /* '' is a quote inside single quotes */
    }
    ti_sb_put(b, "'", 1);
}

static void sb_string(struct ti_strbuf *b, const char *s) {
    switch (str_style(s)) {
    case 0: ti_sb_str(b, s); break;
    case 1: sb_single(b, s); break;
    default: sb_quoted(b, s); break;
    }
}

/* Python's repr(float) as PyYAML writes it: the shortest digits that read back, fixed notation
 * for exponents -4..15, else d.ddde+XX; PyYAML lower-cases it and turns 1e-05 into 1.0e-05 */
static void py_float(char *t, size_t cap, double v) {
    if (isnan(v)) {
        snprintf(t, cap, ".nan");
        return;
    }
    if (isinf(v)) {
        snprintf(t, cap, v < 0 ? "-.inf" : ".inf");
        return;
    }
    char e[40];
    int p = 0;
    for (; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    const char *q = e;
    int neg = *q == '-';
    if (neg) q++;
    char digits[24];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    digits[nd] = 0;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int k = 0; k < -exp10 - 1; k++)
                out[o++] = '0';
            for (int k = 0; k < nd; k++)
                out[o++] = digits[k];
        } else {
            for (int k = 0; k <= exp10; k++)
                out[o++] = k < nd ? digits[k] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1)
                for (int k = exp10 + 1; k < nd; k++)
                    out[o++] = digits[k];
            else
                out[o++] = '0';
        }
        out[o] = 0;
    } else {
        out[o++] = digits[0];
        out[o++] = '.';
        if (nd > 1)
            for (int k = 1; k < nd; k++)
                out[o++] = digits[k];
        else
            out[o++] = '0'; /* PyYAML's '.0' */
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    snprintf(t, cap, "%s", out);
}

static void sb_scalar(struct ti_strbuf *b, const struct ti_yaml_node *n) {
    char t[64];
    switch (n->type) {
    case TI_YAML_NULL: ti_sb_str(b, "null"); break;
    case TI_YAML_BOOL: ti_sb_str(b, n->i ? "true" : "false"); break;
    case TI_YAML_INT:
        snprintf(t, sizeof t, "%lld", (long long)n->i);
        ti_sb_str(b, t);
        break;
    case TI_YAML_FLOAT:
        py_float(t, sizeof t, n->f);
        ti_sb_str(b, t);
        break;
    default: sb_string(b, n->text ? n->text : ""); break;
    }
}

static void emit_map(struct ti_strbuf *b, const struct ti_yaml_node *n, int col, int inline_first);
static void emit_seq(struct ti_strbuf *b, const struct ti_yaml_node *n, int col, int inline_first);

static void emit_spaces(struct ti_strbuf *b, int col) {
    for (int i = 0; i < col; i++)
        ti_sb_put(b, " ", 1);
}

/* what follows "key:" (the mapping at column col) */
static void emit_after_key(struct ti_strbuf *b, const struct ti_yaml_node *v, int col) {
    if (v->kind == TI_YAML_SCALAR) {
        ti_sb_put(b, " ", 1);
        sb_scalar(b, v);
        ti_sb_put(b, "\n", 1);
    } else if (v->n == 0) {
        ti_sb_str(b, v->kind == TI_YAML_MAP ? " {}\n" : " []\n");
    } else if (v->kind == TI_YAML_MAP) {
        ti_sb_put(b, "\n", 1);
        emit_map(b, v, col + 2, 0);
    } else {
        ti_sb_put(b, "\n", 1);
        emit_seq(b, v, col, 0); /* PyYAML: a sequence in a mapping is not indented */
    }
}

static void emit_map(struct ti_strbuf *b, const struct ti_yaml_node *n, int col, int inline_first) {
    for (size_t k = 0; k < n->n; k++) {
        const struct ti_yaml_node *c = n->items[k];
        if (k > 0 || !inline_first) emit_spaces(b, col);
        sb_string(b, c->key ? c->key : "");
        ti_sb_put(b, ":", 1);
        emit_after_key(b, c, col);
    }
}

static void emit_seq(struct ti_strbuf *b, const struct ti_yaml_node *n, int col, int inline_first) {
    for (size_t k = 0; k < n->n; k++) {
        const struct ti_yaml_node *c = n->items[k];
        if (k > 0 || !inline_first) emit_spaces(b, col);
        ti_sb_put(b, "-", 1);
        if (c->kind == TI_YAML_SCALAR) {
            ti_sb_put(b, " ", 1);
            sb_scalar(b, c);
            ti_sb_put(b, "\n", 1);
        } else if (c->n == 0) {
            ti_sb_str(b, c->kind == TI_YAML_MAP ? " {}\n" : " []\n");
        } else {
            ti_sb_put(b, " ", 1);
            if (c->kind == TI_YAML_MAP)
                emit_map(b, c, col + 2, 1);
            else
                emit_seq(b, c, col + 2, 1);
        }
    }
}

ti_status ti_yaml_dump(char **out, size_t *len, const struct ti_yaml_node *root,
                       const char *skip_key, const char *only_key, struct ti_err *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!root || root->kind != TI_YAML_MAP)
        return ti_error(err, TI_ERR_INVALID, "yaml dump: the root must be a mapping");
    struct ti_strbuf b = {0};
    ti_sb_str(&b, "");
    for (size_t k = 0; k < root->n; k++) {
        const struct ti_yaml_node *c = root->items[k];
        if (skip_key && c->key && !strcmp(c->key, skip_key)) continue;
        if (only_key && (!c->key || strcmp(c->key, only_key))) continue;
        sb_string(&b, c->key ? c->key : "");
        ti_sb_put(&b, ":", 1);
        emit_after_key(&b, c, 0);
    }
    if (b.oom) {
        free(b.p);
        return ti_error(err, TI_ERR_NOMEM, "yaml dump: out of memory");
    }
    *out = b.p;
    if (len) *len = b.n;
    return TI_OK;
}

ti_status ti_run_write_configs(const struct ti_train_setup *s, const char *rundir, const char *now,
                               struct ti_err *err) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/configs", rundir);
    TI_TRY(ti_mkdirs(dir, err));
    const struct ti_yaml_node *root = ti_yaml_root(s->doc);
    char *text;
    size_t n;
    TI_TRY(ti_yaml_dump(&text, &n, root, "lightning", NULL, err));
    snprintf(path, sizeof path, "%s/%s-project.yaml", dir, now);
    ti_status st = ti_file_write_atomic(path, text, n, err);
    free(text);
    TI_TRY(st);
    TI_TRY(ti_yaml_dump(&text, &n, root, NULL, "lightning", err));
    snprintf(path, sizeof path, "%s/%s-lightning.yaml", dir, now);
    st = ti_file_write_atomic(path, text, n, err);
    free(text);
    return st;
}
