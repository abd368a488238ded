/*
 * run_log.c - ti-train's run folder, config assembly and schedule (run_log.h has the rules).
 */
#include "run_log.h"

#include <dirent.h>   /* defines: opendir, readdir */
#include <errno.h>    /* defines: errno, EEXIST */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: malloc, free */
#include <string.h>   /* defines: strlen, strcmp, strerror */
#include <sys/stat.h> /* defines: mkdir */
#include <unistd.h>   /* defines: unlink */

#include "fileio.h" /* defines: ti_file_write_atomic, ti_path_stem */

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
    if (a->max_steps > 0)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.max_steps", a->max_steps));
    if (a->accumulate_grad_batches > 0)
        TI_TRY_GOTO(st, override_fmt(d, err, "lightning.trainer.accumulate_grad_batches",
                                     a->accumulate_grad_batches));
    if (a->gpus)
        TI_TRY_GOTO(st, ti_yaml_set_str(d, "lightning.trainer.gpus", a->gpus, "--gpus", err));
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

/* basename(normpath(p)) */
static void path_base(char *buf, size_t cap, const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/')
        b--;
    size_t len = n - b;
    if (len >= cap) len = cap - 1;
    memcpy(buf, p + b, len);
    buf[len] = 0;
    if (!strcmp(buf, ".") || !strcmp(buf, "/")) buf[0] = 0;
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

struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->n + n + 1)
            c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(struct sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}
static void sb_indent(struct sbuf *b, int k) {
    for (int i = 0; i < k; i++)
        sb_put(b, "  ", 2);
}

static void sb_quoted(struct sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\';
            e[1] = (char)*p;
            sb_put(b, e, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(e, sizeof e, "\\x%02x", *p);
            sb_str(b, e);
        } else
            sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

/* A key stays plain when it is made of safe characters and reads back as that string. */
static void sb_key(struct sbuf *b, const char *k) {
    int safe = *k != 0;
    for (const char *p = k; *p && safe; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '/' || (*p == '-' && p != k)))
            safe = 0;
    int64_t i;
    double f;
    if (safe && ti_yaml_resolve_plain(k, &i, &f) != TI_YAML_STR) safe = 0;
    if (safe)
        sb_str(b, k);
    else
        sb_quoted(b, k);
}

static void sb_scalar(struct sbuf *b, const struct ti_yaml_node *n) {
    switch (n->type) {
    case TI_YAML_NULL: sb_str(b, "null"); break;
    case TI_YAML_BOOL: sb_str(b, n->i ? "true" : "false"); break;
    case TI_YAML_INT: {
        char t[32];
        snprintf(t, sizeof t, "%lld", (long long)n->i);
        sb_str(b, t);
        break;
    }
    case TI_YAML_FLOAT: {
        /* the text as written resolves to this float (it was read that way); a quoted float
         * (!!float tag) is rewritten in a form that resolves plainly */
        int64_t i;
        double f;
        if (!n->quoted && ti_yaml_resolve_plain(n->text, &i, &f) == TI_YAML_FLOAT)
            sb_str(b, n->text);
        else {
            char t[40];
            snprintf(t, sizeof t, "%.17g", n->f);
            if (!strpbrk(t, ".eEn")) strcat(t, ".0");
            if (ti_yaml_resolve_plain(t, &i, &f) == TI_YAML_FLOAT)
                sb_str(b, t);
            else {
                sb_str(b, "!!float ");
                sb_quoted(b, t);
            }
        }
        break;
    }
    default: sb_quoted(b, n->text ? n->text : ""); break;
    }
}

static int all_scalars(const struct ti_yaml_node *n) {
    for (size_t k = 0; k < n->n; k++)
        if (n->items[k]->kind != TI_YAML_SCALAR) return 0;
    return 1;
}

static void emit(struct sbuf *b, const struct ti_yaml_node *n, int depth);

/* the value part after "key:" or "-" */
static void emit_value(struct sbuf *b, const struct ti_yaml_node *v, int depth) {
    if (v->kind == TI_YAML_SCALAR) {
        sb_put(b, " ", 1);
        sb_scalar(b, v);
        sb_put(b, "\n", 1);
    } else if (v->n == 0) {
        sb_str(b, v->kind == TI_YAML_MAP ? " {}\n" : " []\n");
    } else if (v->kind == TI_YAML_SEQ && all_scalars(v)) {
        sb_str(b, " [");
        for (size_t k = 0; k < v->n; k++) {
            if (k) sb_str(b, ", ");
            sb_scalar(b, v->items[k]);
        }
        sb_str(b, "]\n");
    } else {
        sb_put(b, "\n", 1);
        emit(b, v, depth + 1);
    }
}

static void emit(struct sbuf *b, const struct ti_yaml_node *n, int depth) {
    for (size_t k = 0; k < n->n; k++) {
        const struct ti_yaml_node *c = n->items[k];
        sb_indent(b, depth);
        if (n->kind == TI_YAML_MAP) {
            sb_key(b, c->key ? c->key : "");
            sb_put(b, ":", 1);
        } else
            sb_put(b, "-", 1);
        emit_value(b, c, depth);
    }
}

ti_status ti_yaml_dump(char **out, size_t *len, const struct ti_yaml_node *root,
                       const char *skip_key, const char *only_key, struct ti_err *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!root || root->kind != TI_YAML_MAP)
        return ti_error(err, TI_ERR_INVALID, "yaml dump: the root must be a mapping");
    struct sbuf b = {0};
    sb_str(&b, "");
    for (size_t k = 0; k < root->n; k++) {
        const struct ti_yaml_node *c = root->items[k];
        if (skip_key && c->key && !strcmp(c->key, skip_key)) continue;
        if (only_key && (!c->key || strcmp(c->key, only_key))) continue;
        sb_key(&b, c->key ? c->key : "");
        sb_put(&b, ":", 1);
        emit_value(&b, c, 0);
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
