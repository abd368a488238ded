/*
 * yaml_tree.c - YAML document tree from libyaml's event parser, OmegaConf-style merge, dot-list
 * overrides, dotted lookup and typed getters (see yaml_tree.h).
 *
 * Not here: what the keys mean (config.c).
 *
 * Sections: scalar typing (PyYAML/OmegaConf resolvers), nodes and documents, the libyaml
 * builder (anchors, aliases, merge keys), merge and overrides, lookup and typed getters.
 */
#include "yaml_tree.h"

#include <errno.h>  /* defines: errno */
#include <limits.h> /* defines: INT64_MAX */
#include <math.h>   /* defines: INFINITY, NAN */
#include <stdio.h>  /* defines: FILE, fopen, fread, snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free, strtod */
#include <string.h> /* defines: strcmp, strlen, memcpy, strchr, strerror */

#ifdef TI_HAVE_YAML
#include <yaml.h> /* defines: yaml_parser_t, yaml_event_t, yaml_parser_parse, YAML_*_EVENT */
#endif

#define MAX_DEPTH 128         /* nesting levels; deeper is refused (stack safety) */
#define MAX_NODES (1u << 20)  /* nodes per document, alias expansion included */
#define MAX_FILE  (16u << 20) /* bytes of one config file */
#define MAX_SEGS  64          /* segments of a dotted path */
#define SHOW_TEXT 80          /* characters of a value quoted in messages */

#ifndef TI_HAVE_YAML
static const char NO_YAML_MSG[] = "ti was built without libyaml: install libyaml-dev and rebuild";
#endif

/* ==== Scalar typing ========================================================================
 * PyYAML's SafeLoader resolvers (YAML 1.1) as OmegaConf 2.1.1 configures them: its float
 * regex is added after PyYAML's (so both apply; OmegaConf's also accepts "1e-6" and "1e5"),
 * and the timestamp resolver is removed (dates stay strings). Order of the checks is the
 * resolver order: bool, float, int, null. */

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Consumes [0-9_]* and returns the end. */
static const char *skip_digits_us(const char *s) {
    while (is_digit(*s) || *s == '_')
        s++;
    return s;
}

/* [eE][-+]?[0-9]+ (sign_required: [eE][-+][0-9]+); returns the end or NULL. */
static const char *match_exp(const char *s, int sign_required) {
    if (*s != 'e' && *s != 'E') return NULL;
    s++;
    if (*s == '-' || *s == '+')
        s++;
    else if (sign_required)
        return NULL;
    if (!is_digit(*s)) return NULL;
    while (is_digit(*s))
        s++;
    return s;
}

/* (:[0-5]?[0-9])+ ; returns the end or NULL when there is no such group. */
static const char *match_base60(const char *s) {
    int groups = 0;
    while (*s == ':') {
        const char *t = s + 1;
        if (t[0] >= '0' && t[0] <= '5' && is_digit(t[1]))
            t += 2;
        else if (is_digit(t[0]))
            t += 1;
        else
            break;
        s = t;
        groups++;
    }
    return groups ? s : NULL;
}

static int is_bool_text(const char *s, int *val) {
    static const char *const yes[] = {"yes",  "Yes", "YES", "true", "True",
                                      "TRUE", "on",  "On",  "ON"};
    static const char *const no[] = {"no",    "No",  "NO",  "false", "False",
                                     "FALSE", "off", "Off", "OFF"};
    for (size_t k = 0; k < sizeof yes / sizeof yes[0]; k++) {
        if (strcmp(s, yes[k]) == 0) return *val = 1, 1;
        if (strcmp(s, no[k]) == 0) return *val = 0, 1;
    }
    return 0;
}

static int is_null_text(const char *s) {
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int is_float_text(const char *s) {
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    /* [-+]?\.(inf|Inf|INF) */
    if (p[0] == '.' &&
        (strcmp(p + 1, "inf") == 0 || strcmp(p + 1, "Inf") == 0 || strcmp(p + 1, "INF") == 0))
        return 1;
    /* \.(nan|NaN|NAN), no sign */
    if (s[0] == '.' &&
        (strcmp(s + 1, "nan") == 0 || strcmp(s + 1, "NaN") == 0 || strcmp(s + 1, "NAN") == 0))
        return 1;
    /* \.[0-9_]+([eE][-+][0-9]+)?, no sign */
    if (s[0] == '.') {
        const char *t = skip_digits_us(s + 1);
        if (t == s + 1) return 0;
        if (*t == '\0') return 1;
        const char *e = match_exp(t, 1);
        return e && *e == '\0';
    }
    if (!is_digit(*p)) return 0;
    const char *t = skip_digits_us(p + 1);
    if (*t == '.') { /* [0-9][0-9_]*\.[0-9_]*([eE][-+]?[0-9]+)? */
        t = skip_digits_us(t + 1);
        if (*t == '\0') return 1;
        const char *e = match_exp(t, 0);
        return e && *e == '\0';
    }
    if (*t == 'e' || *t == 'E') { /* [0-9][0-9_]*[eE][-+]?[0-9]+ (OmegaConf) */
        const char *e = match_exp(t, 0);
        return e && *e == '\0';
    }
    if (*t == ':') { /* [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* */
        const char *e = match_base60(t);
        if (!e || *e != '.') return 0;
        return *skip_digits_us(e + 1) == '\0';
    }
    return 0;
}

static int is_int_text(const char *s) {
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (p[0] == '0' && p[1] == 'b') { /* 0b[0-1_]+ */
        const char *t = p + 2;
        if (!*t) return 0;
        for (; *t; t++)
            if (*t != '0' && *t != '1' && *t != '_') return 0;
        return 1;
    }
    if (p[0] == '0' && p[1] == 'x') { /* 0x[0-9a-fA-F_]+ */
        const char *t = p + 2;
        if (!*t) return 0;
        for (; *t; t++)
            if (!(is_digit(*t) || (*t >= 'a' && *t <= 'f') || (*t >= 'A' && *t <= 'F') ||
                  *t == '_'))
                return 0;
        return 1;
    }
    if (p[0] == '0') { /* 0 | 0[0-7_]+ */
        if (p[1] == '\0') return 1;
        for (const char *t = p + 1; *t; t++)
            if (!((*t >= '0' && *t <= '7') || *t == '_')) return 0;
        return 1;
    }
    if (p[0] >= '1' && p[0] <= '9') { /* [1-9][0-9_]* | [1-9][0-9_]*(:[0-5]?[0-9])+ */
        const char *t = skip_digits_us(p + 1);
        if (*t == '\0') return 1;
        const char *e = match_base60(t);
        return e && *e == '\0';
    }
    return 0;
}

/* Copies s without '_' into buf (cap >= strlen(s)+1). */
static void strip_us(const char *s, char *buf) {
    for (; *s; s++)
        if (*s != '_') *buf++ = *s;
    *buf = '\0';
}

/* PyYAML construct_yaml_int. Returns 0 when the value does not fit int64 (or has no digits). */
static int int_value(const char *text, int64_t *out) {
    size_t len = strlen(text);
    char stack[64];
    char *buf = len < sizeof stack ? stack : malloc(len + 1);
    if (!buf) return 0;
    strip_us(text, buf);
    const char *p = buf;
    int neg = 0, ok = 1;
    if (*p == '-' || *p == '+') neg = (*p++ == '-');
    unsigned base = 10;
    uint64_t v = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    if (strchr(p, ':')) { /* base 60: "1:30" = 90 */
        uint64_t part = 0;
        for (; ok && *p; p++) {
            if (*p == ':') {
                if (v > (lim - part) / 60) ok = 0;
                v = v * 60 + part;
                part = 0;
            } else if (part > (lim - 9) / 10) {
                ok = 0;
            } else {
                part = part * 10 + (uint64_t)(*p - '0');
            }
        }
        if (ok && v > (lim - part) / 60) ok = 0;
        if (ok) v = v * 60 + part;
    } else {
        if (p[0] == '0' && p[1] == 'b')
            base = 2, p += 2;
        else if (p[0] == '0' && p[1] == 'x')
            base = 16, p += 2;
        else if (p[0] == '0' && p[1] != '\0')
            base = 8, p += 1;
        if (*p == '\0') ok = 0;
        for (; ok && *p; p++) {
            unsigned d = is_digit(*p)               ? (unsigned)(*p - '0')
                         : (*p >= 'a' && *p <= 'f') ? (unsigned)(*p - 'a' + 10)
                                                    : (unsigned)(*p - 'A' + 10);
            if (v > (lim - d) / base)
                ok = 0;
            else
                v = v * base + d;
        }
    }
    if (ok) *out = neg ? (v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (buf != stack) free(buf);
    return ok;
}

/* PyYAML construct_yaml_float (strtod; ti never changes LC_NUMERIC). */
static double float_value(const char *text) {
    size_t len = strlen(text);
    char stack[64];
    char *buf = len < sizeof stack ? stack : malloc(len + 1);
    if (!buf) return NAN;
    strip_us(text, buf);
    char *p = buf;
    double sign = 1.0, v;
    if (*p == '-' || *p == '+') sign = (*p++ == '-') ? -1.0 : 1.0;
    if (p[0] == '.' && (p[1] == 'i' || p[1] == 'I')) {
        v = INFINITY;
    } else if (p[0] == '.' && (p[1] == 'n' || p[1] == 'N')) {
        v = NAN;
    } else if (strchr(p, ':')) { /* base 60: "1:30.5" = 90.5 */
        v = 0.0;
        char *q = p;
        for (;;) {
            char *colon = strchr(q, ':');
            if (colon) *colon = '\0';
            v = v * 60.0 + strtod(q, NULL);
            if (!colon) break;
            q = colon + 1;
        }
    } else {
        v = strtod(p, NULL);
    }
    if (buf != stack) free(buf);
    return sign * v;
}

enum ti_yaml_type ti_yaml_resolve_plain(const char *text, int64_t *i, double *f) {
    int b;
    if (is_bool_text(text, &b)) {
        if (i) *i = b;
        if (f) *f = b;
        return TI_YAML_BOOL;
    }
    if (is_float_text(text)) {
        double v = float_value(text);
        if (f) *f = v;
        return TI_YAML_FLOAT;
    }
    if (is_int_text(text)) {
        int64_t v = 0;
        if (!int_value(text, &v)) { /* out of int64 range (Python has big ints) */
            double d = float_value(text);
            v = d < 0 ? INT64_MIN : INT64_MAX;
        }
        if (i) *i = v;
        if (f) *f = (double)v;
        return TI_YAML_INT;
    }
    if (is_null_text(text)) return TI_YAML_NULL;
    return TI_YAML_STR;
}

/* ==== Nodes and documents ================================================================= */

struct ti_yaml_doc {
    struct ti_yaml_node *root;
    char **files; /* interned file names the nodes point to */
    size_t n_files, cap_files;
    size_t n_nodes; /* nodes created, for the expansion limit */
};

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const char *doc_file(struct ti_yaml_doc *d, const char *name) {
    for (size_t k = 0; k < d->n_files; k++)
        if (strcmp(d->files[k], name) == 0) return d->files[k];
    if (d->n_files == d->cap_files) {
        size_t cap = d->cap_files ? 2 * d->cap_files : 4;
        char **f = realloc(d->files, cap * sizeof *f);
        if (!f) return NULL;
        d->files = f;
        d->cap_files = cap;
    }
    char *s = dupstr(name);
    if (!s) return NULL;
    d->files[d->n_files++] = s;
    return s;
}

static void node_free(struct ti_yaml_node *n) {
    if (!n) return;
    for (size_t k = 0; k < n->n; k++)
        node_free(n->items[k]);
    free(n->items);
    free((char *)n->text);
    free((char *)n->key);
    free(n);
}

static ti_status nomem(struct ti_err *err, const char *what) {
    return ti_error(err, TI_ERR_NOMEM, "yaml: out of memory (%s)", what);
}

/* *out = a new node owned by d (not yet attached). Fails when out of memory or when the
 * document has too many nodes (alias bombs). */
static ti_status node_new(struct ti_yaml_doc *d, enum ti_yaml_kind kind, const char *file, int line,
                          int col, struct ti_yaml_node **out, struct ti_err *err) {
    *out = NULL;
    if (d->n_nodes >= MAX_NODES)
        return ti_error(err, TI_ERR_FORMAT, "%s:%d:%d: more than %u nodes (alias expansion?)", file,
                        line, col, MAX_NODES);
    struct ti_yaml_node *n = calloc(1, sizeof *n);
    if (!n) return nomem(err, "node");
    n->kind = kind;
    n->type = TI_YAML_NULL;
    n->file = file;
    n->line = line;
    n->col = col;
    d->n_nodes++;
    *out = n;
    return TI_OK;
}

/* Appends child to a map or sequence node (the caller sets child->key for maps). */
static ti_status node_append(struct ti_yaml_node *parent, struct ti_yaml_node *child,
                             struct ti_err *err) {
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? 2 * parent->cap : 4;
        struct ti_yaml_node **it = realloc(parent->items, cap * sizeof *it);
        if (!it) return nomem(err, "children");
        parent->items = it;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    child->parent = parent;
    return TI_OK;
}

static struct ti_yaml_node *map_find(const struct ti_yaml_node *map, const char *key, size_t *idx) {
    if (!map || map->kind != TI_YAML_MAP) return NULL;
    for (size_t k = 0; k < map->n; k++) {
        if (strcmp(map->items[k]->key, key) == 0) {
            if (idx) *idx = k;
            return map->items[k];
        }
    }
    return NULL;
}

static ti_status scalar_set(struct ti_yaml_node *n, const char *text, struct ti_err *err) {
    char *t = dupstr(text);
    if (!t) return nomem(err, "scalar");
    free((char *)n->text);
    n->text = t;
    return TI_OK;
}

/* Deep copy of src into document d (file names re-interned), with the given parent. The key
 * is copied too. */
static ti_status node_copy(struct ti_yaml_doc *d, const struct ti_yaml_node *src,
                           struct ti_yaml_node *parent, struct ti_yaml_node **out,
                           struct ti_err *err) {
    *out = NULL;
    const char *file = doc_file(d, src->file);
    if (!file) return nomem(err, "file name");
    struct ti_yaml_node *n;
    TI_TRY(node_new(d, src->kind, file, src->line, src->col, &n, err));
    n->type = src->type;
    n->quoted = src->quoted;
    n->i = src->i;
    n->f = src->f;
    n->key_line = src->key_line;
    n->key_col = src->key_col;
    n->parent = parent;
    ti_status st = TI_OK;
    if (src->text && (st = scalar_set(n, src->text, err)) != TI_OK) goto fail;
    if (src->key && !(n->key = dupstr(src->key))) {
        st = nomem(err, "key");
        goto fail;
    }
    for (size_t k = 0; k < src->n; k++) {
        struct ti_yaml_node *c;
        TI_TRY_GOTO(st, node_copy(d, src->items[k], n, &c, err));
        if ((st = node_append(n, c, err)) != TI_OK) {
            node_free(c);
            goto fail;
        }
    }
    *out = n;
    return TI_OK;
fail:
    node_free(n);
    return st;
}

static ti_status doc_alloc(struct ti_yaml_doc **out, struct ti_err *err) {
    *out = calloc(1, sizeof **out);
    return *out ? TI_OK : nomem(err, "document");
}

void ti_yaml_free(struct ti_yaml_doc *doc) {
    if (!doc) return;
    node_free(doc->root);
    for (size_t k = 0; k < doc->n_files; k++)
        free(doc->files[k]);
    free(doc->files);
    free(doc);
}

const struct ti_yaml_node *ti_yaml_root(const struct ti_yaml_doc *doc) {
    return doc ? doc->root : NULL;
}

/* An empty mapping as root, positioned at file:1:1. */
static ti_status doc_empty_root(struct ti_yaml_doc *d, const char *name, struct ti_err *err) {
    const char *file = doc_file(d, name);
    if (!file) return nomem(err, "file name");
    return node_new(d, TI_YAML_MAP, file, 1, 1, &d->root, err);
}

ti_status ti_yaml_doc_new(struct ti_yaml_doc **out, struct ti_err *err) {
    *out = NULL;
    struct ti_yaml_doc *d;
    TI_TRY(doc_alloc(&d, err));
    ti_status st = doc_empty_root(d, "<empty>", err);
    if (st != TI_OK) {
        ti_yaml_free(d);
        return st;
    }
    *out = d;
    return TI_OK;
}

/* ==== Messages ============================================================================= */

const char *ti_yaml_type_name(const struct ti_yaml_node *n) {
    if (!n) return "nothing";
    if (n->kind == TI_YAML_MAP) return "mapping";
    if (n->kind == TI_YAML_SEQ) return "sequence";
    switch (n->type) {
    case TI_YAML_NULL: return "null";
    case TI_YAML_BOOL: return "bool";
    case TI_YAML_INT: return "integer";
    case TI_YAML_FLOAT: return "float";
    default: return "string";
    }
}

int ti_yaml_is_null(const struct ti_yaml_node *n) {
    return n && n->kind == TI_YAML_SCALAR && n->type == TI_YAML_NULL;
}

char *ti_yaml_path(const struct ti_yaml_node *node, char *buf, size_t cap) {
    if (!buf || cap == 0) return buf;
    buf[0] = '\0';
    if (!node) return buf;
    const struct ti_yaml_node *chain[MAX_DEPTH * 2];
    size_t depth = 0;
    for (const struct ti_yaml_node *n = node; n->parent && depth < sizeof chain / sizeof *chain;
         n = n->parent)
        chain[depth++] = n;
    if (depth == 0) {
        snprintf(buf, cap, "<root>");
        return buf;
    }
    size_t used = 0;
    for (size_t k = depth; k-- > 0 && used < cap;) {
        const struct ti_yaml_node *n = chain[k];
        int w;
        if (n->parent->kind == TI_YAML_SEQ) {
            size_t idx = 0;
            while (idx < n->parent->n && n->parent->items[idx] != n)
                idx++;
            w = snprintf(buf + used, cap - used, "[%zu]", idx);
        } else {
            w = snprintf(buf + used, cap - used, "%s%s", used ? "." : "", n->key ? n->key : "?");
        }
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

/* "'text'" shortened to SHOW_TEXT characters. */
static const char *show(const char *text, char *buf, size_t cap) {
    size_t n = strlen(text);
    if (n <= SHOW_TEXT)
        snprintf(buf, cap, "'%s'", text);
    else
        snprintf(buf, cap, "'%.*s...'", SHOW_TEXT, text);
    return buf;
}

static ti_status type_error(const struct ti_yaml_node *n, const char *expected,
                            struct ti_err *err) {
    char path[256], val[SHOW_TEXT + 8];
    ti_yaml_path(n, path, sizeof path);
    if (n->kind == TI_YAML_SCALAR && n->type != TI_YAML_NULL)
        return ti_error(err, TI_ERR_CONFIG, "%s:%d:%d: %s: expected %s, found %s %s", n->file,
                        n->line, n->col, path, expected, ti_yaml_type_name(n),
                        show(n->text ? n->text : "", val, sizeof val));
    return ti_error(
        err, TI_ERR_CONFIG, "%s:%d:%d: %s: expected %s, found %s", n->file, n->line, n->col, path,
        expected,
        n->kind == TI_YAML_SCALAR ? "null" : (n->kind == TI_YAML_MAP ? "a mapping" : "a sequence"));
}

/* OmegaConf features ti does not implement show up as strings: say so instead of a confusing
 * type error. */
static ti_status check_special(const struct ti_yaml_node *n, struct ti_err *err) {
    if (n->kind != TI_YAML_SCALAR || n->type != TI_YAML_STR) return TI_OK;
    char path[256], val[SHOW_TEXT + 8];
    if (strstr(n->text, "${")) {
        ti_yaml_path(n, path, sizeof path);
        return ti_error(err, TI_ERR_CONFIG,
                        "%s:%d:%d: %s: OmegaConf interpolation %s is not supported by ti; write "
                        "the value itself",
                        n->file, n->line, n->col, path, show(n->text, val, sizeof val));
    }
    if (!n->quoted && strcmp(n->text, "?\?\?") == 0) {
        ti_yaml_path(n, path, sizeof path);
        return ti_error(err, TI_ERR_CONFIG,
                        "%s:%d:%d: %s: mandatory value '?\?\?' was never set (override it with "
                        "%s=<value>)",
                        n->file, n->line, n->col, path, path);
    }
    return TI_OK;
}

/* ==== The libyaml builder ================================================================== */

#ifdef TI_HAVE_YAML

struct anchor {
    char *name;
    struct ti_yaml_node *node;
    int done; /* 0 while the anchored collection is still being read (recursive alias) */
};

struct builder {
    yaml_parser_t p;
    struct ti_yaml_doc *doc;
    const char *file;
    int col_offset; /* added to columns on line 1: overrides parse the text after '=' */
    struct anchor *anchors;
    size_t n_anchors, cap_anchors;
    struct ti_yaml_node **scrap; /* detached nodes anchors may still point to */
    size_t n_scrap, cap_scrap;
    struct ti_err *err;
};

static int mark_line(const yaml_mark_t *m) {
    return (int)m->line + 1;
}
static int mark_col(const struct builder *b, const yaml_mark_t *m) {
    return (int)m->column + 1 + (m->line == 0 ? b->col_offset : 0);
}

static ti_status syntax_error(struct builder *b) {
    yaml_parser_t *p = &b->p;
    switch (p->error) {
    case YAML_MEMORY_ERROR: return nomem(b->err, "libyaml");
    case YAML_READER_ERROR:
        if (p->problem_value != -1)
            return ti_error(b->err, TI_ERR_FORMAT, "%s: %s: #%X at byte %zu", b->file,
                            p->problem ? p->problem : "invalid input", (unsigned)p->problem_value,
                            p->problem_offset);
        return ti_error(b->err, TI_ERR_FORMAT, "%s: %s at byte %zu", b->file,
                        p->problem ? p->problem : "invalid input", p->problem_offset);
    default:
        if (p->context)
            return ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: %s (%s at line %d, column %d)",
                            b->file, mark_line(&p->problem_mark), mark_col(b, &p->problem_mark),
                            p->problem ? p->problem : "syntax error", p->context,
                            mark_line(&p->context_mark), mark_col(b, &p->context_mark));
        return ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: %s", b->file, mark_line(&p->problem_mark),
                        mark_col(b, &p->problem_mark), p->problem ? p->problem : "syntax error");
    }
}

static ti_status next_event(struct builder *b, yaml_event_t *ev) {
    if (!yaml_parser_parse(&b->p, ev)) return syntax_error(b);
    return TI_OK;
}

static ti_status anchor_add(struct builder *b, const yaml_char_t *name, struct ti_yaml_node *n,
                            int done) {
    if (!name) return TI_OK;
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? 2 * b->cap_anchors : 8;
        struct anchor *a = realloc(b->anchors, cap * sizeof *a);
        if (!a) return nomem(b->err, "anchors");
        b->anchors = a;
        b->cap_anchors = cap;
    }
    char *s = dupstr((const char *)name);
    if (!s) return nomem(b->err, "anchor");
    b->anchors[b->n_anchors++] = (struct anchor){s, n, done};
    return TI_OK;
}

static void anchor_done(struct builder *b, const struct ti_yaml_node *n) {
    for (size_t k = 0; k < b->n_anchors; k++)
        if (b->anchors[k].node == n) b->anchors[k].done = 1;
}

/* The latest anchor of that name (YAML allows redefinition). */
static struct anchor *anchor_find(struct builder *b, const char *name) {
    for (size_t k = b->n_anchors; k-- > 0;)
        if (strcmp(b->anchors[k].name, name) == 0) return &b->anchors[k];
    return NULL;
}

static ti_status scrap_add(struct builder *b, struct ti_yaml_node *n) {
    if (b->n_scrap == b->cap_scrap) {
        size_t cap = b->cap_scrap ? 2 * b->cap_scrap : 4;
        struct ti_yaml_node **s = realloc(b->scrap, cap * sizeof *s);
        if (!s) {
            node_free(n);
            return nomem(b->err, "merge keys");
        }
        b->scrap = s;
        b->cap_scrap = cap;
    }
    b->scrap[b->n_scrap++] = n;
    return TI_OK;
}

static ti_status build_node(struct builder *b, yaml_event_t *ev, int depth,
                            struct ti_yaml_node **out);

static ti_status build_alias(struct builder *b, yaml_event_t *ev, struct ti_yaml_node **out) {
    const char *name = (const char *)ev->data.alias.anchor;
    int line = mark_line(&ev->start_mark), col = mark_col(b, &ev->start_mark);
    struct anchor *a = anchor_find(b, name);
    if (!a)
        return ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: found undefined alias '%s'", b->file,
                        line, col, name);
    if (!a->done)
        return ti_error(b->err, TI_ERR_FORMAT,
                        "%s:%d:%d: recursive alias '%s' (a node that contains itself) is not "
                        "supported",
                        b->file, line, col, name);
    ti_status st = node_copy(b->doc, a->node, NULL, out, b->err);
    if (st == TI_OK) {
        free((char *)(*out)->key);
        (*out)->key = NULL;
    }
    return st;
}

static ti_status build_scalar(struct builder *b, yaml_event_t *ev, struct ti_yaml_node **out) {
    int line = mark_line(&ev->start_mark), col = mark_col(b, &ev->start_mark);
    const char *text = (const char *)ev->data.scalar.value;
    if (strlen(text) != ev->data.scalar.length)
        return ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: scalar contains a NUL character", b->file,
                        line, col);
    struct ti_yaml_node *n;
    TI_TRY(node_new(b->doc, TI_YAML_SCALAR, b->file, line, col, &n, b->err));
    ti_status st = scalar_set(n, text, b->err);
    if (st != TI_OK) goto fail;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->quoted = !plain;
    if (tag && strcmp(tag, "!") != 0) {
        static const char P[] = "tag:yaml.org,2002:";
        const char *t = strncmp(tag, P, sizeof P - 1) == 0 ? tag + sizeof P - 1 : NULL;
        enum ti_yaml_type r = ti_yaml_resolve_plain(text, &n->i, &n->f);
        if (t && strcmp(t, "str") == 0) {
            n->type = TI_YAML_STR;
        } else if (t && strcmp(t, "null") == 0) {
            n->type = TI_YAML_NULL;
        } else if (t && strcmp(t, "bool") == 0 && r == TI_YAML_BOOL) {
            n->type = TI_YAML_BOOL;
        } else if (t && strcmp(t, "int") == 0 && r == TI_YAML_INT) {
            n->type = TI_YAML_INT;
        } else if (t && strcmp(t, "float") == 0 && (r == TI_YAML_FLOAT || r == TI_YAML_INT)) {
            n->type = TI_YAML_FLOAT;
        } else if (t && (!strcmp(t, "bool") || !strcmp(t, "int") || !strcmp(t, "float"))) {
            st = ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: '%s' is not a valid !!%s", b->file,
                          line, col, text, t);
            goto fail;
        } else {
            st = ti_error(b->err, TI_ERR_FORMAT,
                          "%s:%d:%d: unsupported tag '%s' (ti reads !!str, !!int, !!float, "
                          "!!bool and !!null)",
                          b->file, line, col, tag);
            goto fail;
        }
    } else if (plain && !tag) {
        n->type = ti_yaml_resolve_plain(text, &n->i, &n->f);
    } else {
        n->type = TI_YAML_STR;
    }
    if ((st = anchor_add(b, ev->data.scalar.anchor, n, 1)) != TI_OK) goto fail;
    *out = n;
    return TI_OK;
fail:
    node_free(n);
    return st;
}

static ti_status build_seq(struct builder *b, yaml_event_t *ev, int depth,
                           struct ti_yaml_node **out) {
    struct ti_yaml_node *n;
    TI_TRY(node_new(b->doc, TI_YAML_SEQ, b->file, mark_line(&ev->start_mark),
                    mark_col(b, &ev->start_mark), &n, b->err));
    ti_status st = anchor_add(b, ev->data.sequence_start.anchor, n, 0);
    if (st != TI_OK) goto fail;
    for (;;) {
        yaml_event_t item;
        TI_TRY_GOTO(st, next_event(b, &item));
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            break;
        }
        struct ti_yaml_node *c;
        TI_TRY_GOTO(st, build_node(b, &item, depth + 1, &c));
        if ((st = node_append(n, c, b->err)) != TI_OK) {
            node_free(c);
            goto fail;
        }
    }
    anchor_done(b, n);
    *out = n;
    return TI_OK;
fail:
    node_free(n);
    return st;
}

/* Puts (key, value) into map: a key already there gets the new value in its old place. */
static ti_status map_put(struct ti_yaml_node *map, struct ti_yaml_node *value, struct ti_err *err) {
    size_t idx;
    struct ti_yaml_node *old = map_find(map, value->key, &idx);
    if (old) {
        /* idx comes from map_find, so map->items is non-empty */
        // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
        map->items[idx] = value;
        value->parent = map;
        node_free(old);
        return TI_OK;
    }
    return node_append(map, value, err);
}

/* YAML 1.1 merge keys as PyYAML flattens them: the merged entries come first (for a sequence
 * of mappings the earlier mapping wins), then the mapping's own entries override them. */
static ti_status apply_merges(struct builder *b, struct ti_yaml_node *map,
                              struct ti_yaml_node **merges, size_t n_merges) {
    struct ti_yaml_node *own = map;
    struct ti_yaml_node tmp = *own; /* the explicit entries, moved aside */
    own->items = NULL;
    own->n = own->cap = 0;
    ti_status st = TI_OK;
    for (size_t m = 0; m < n_merges && st == TI_OK; m++) {
        const struct ti_yaml_node *src = merges[m];
        size_t n_sub = src->kind == TI_YAML_MAP ? 1 : src->n;
        for (size_t s = n_sub; s-- > 0 && st == TI_OK;) { /* sequences: last first */
            const struct ti_yaml_node *sub = src->kind == TI_YAML_MAP ? src : src->items[s];
            for (size_t k = 0; k < sub->n && st == TI_OK; k++) {
                struct ti_yaml_node *c;
                st = node_copy(b->doc, sub->items[k], own, &c, b->err);
                if (st == TI_OK && (st = map_put(own, c, b->err)) != TI_OK) node_free(c);
            }
        }
    }
    for (size_t k = 0; k < tmp.n; k++) {
        if (st == TI_OK) {
            st = map_put(own, tmp.items[k], b->err);
            if (st != TI_OK) node_free(tmp.items[k]);
        } else {
            node_free(tmp.items[k]);
        }
    }
    free(tmp.items);
    return st;
}

static ti_status build_map(struct builder *b, yaml_event_t *ev, int depth,
                           struct ti_yaml_node **out) {
    struct ti_yaml_node *n;
    TI_TRY(node_new(b->doc, TI_YAML_MAP, b->file, mark_line(&ev->start_mark),
                    mark_col(b, &ev->start_mark), &n, b->err));
    struct ti_yaml_node *merges[16];
    size_t n_merges = 0;
    ti_status st = anchor_add(b, ev->data.mapping_start.anchor, n, 0);
    if (st != TI_OK) goto fail;
    for (;;) {
        yaml_event_t kev;
        TI_TRY_GOTO(st, next_event(b, &kev));
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        int kline = mark_line(&kev.start_mark), kcol = mark_col(b, &kev.start_mark);
        char *key = NULL;
        int is_merge = 0;
        if (kev.type == YAML_SCALAR_EVENT) {
            const char *text = (const char *)kev.data.scalar.value;
            is_merge = kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !kev.data.scalar.tag &&
                       strcmp(text, "<<") == 0;
            key = dupstr(text);
        } else if (kev.type == YAML_ALIAS_EVENT) {
            struct anchor *a = anchor_find(b, (const char *)kev.data.alias.anchor);
            if (a && a->done && a->node->kind == TI_YAML_SCALAR)
                key = dupstr(a->node->text);
            else if (!a) {
                st = ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: found undefined alias '%s'",
                              b->file, kline, kcol, (const char *)kev.data.alias.anchor);
                yaml_event_delete(&kev);
                goto fail;
            }
        }
        yaml_event_delete(&kev);
        if (!key) {
            st = ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: only scalar mapping keys are supported",
                          b->file, kline, kcol);
            goto fail;
        }
        yaml_event_t vev;
        struct ti_yaml_node *c = NULL;
        if ((st = next_event(b, &vev)) != TI_OK || (st = build_node(b, &vev, depth + 1, &c))) {
            free(key);
            goto fail;
        }
        if (is_merge) {
            free(key);
            int ok = c->kind == TI_YAML_MAP;
            if (c->kind == TI_YAML_SEQ) {
                ok = 1;
                for (size_t k = 0; k < c->n; k++)
                    ok &= c->items[k]->kind == TI_YAML_MAP;
            }
            if (!ok || n_merges == sizeof merges / sizeof *merges) {
                st = ti_error(b->err, TI_ERR_FORMAT,
                              "%s:%d:%d: a merge key '<<' takes a mapping or a sequence of "
                              "mappings (at most %zu per mapping)",
                              b->file, kline, kcol, sizeof merges / sizeof *merges);
                node_free(c);
                goto fail;
            }
            if ((st = scrap_add(b, c)) != TI_OK) goto fail;
            merges[n_merges++] = c;
            continue;
        }
        struct ti_yaml_node *dup = map_find(n, key, NULL);
        if (dup) {
            st = ti_error(b->err, TI_ERR_FORMAT,
                          "%s:%d:%d: duplicate key '%s' (first defined at line %d)", b->file, kline,
                          kcol, key, dup->key_line);
            free(key);
            node_free(c);
            goto fail;
        }
        c->key = key;
        c->key_line = kline;
        c->key_col = kcol;
        if ((st = node_append(n, c, b->err)) != TI_OK) {
            node_free(c);
            goto fail;
        }
    }
    if (n_merges && (st = apply_merges(b, n, merges, n_merges)) != TI_OK) goto fail;
    anchor_done(b, n);
    *out = n;
    return TI_OK;
fail:
    node_free(n);
    return st;
}

/* Takes ownership of *ev (deletes it). */
static ti_status build_node(struct builder *b, yaml_event_t *ev, int depth,
                            struct ti_yaml_node **out) {
    ti_status st;
    *out = NULL;
    if (depth > MAX_DEPTH) {
        st = ti_error(b->err, TI_ERR_FORMAT, "%s:%d:%d: nesting deeper than %d levels", b->file,
                      mark_line(&ev->start_mark), mark_col(b, &ev->start_mark), MAX_DEPTH);
    } else {
        switch (ev->type) {
        case YAML_ALIAS_EVENT: st = build_alias(b, ev, out); break;
        case YAML_SCALAR_EVENT: st = build_scalar(b, ev, out); break;
        case YAML_SEQUENCE_START_EVENT: st = build_seq(b, ev, depth, out); break;
        case YAML_MAPPING_START_EVENT: st = build_map(b, ev, depth, out); break;
        default:
            st = ti_error(b->err, TI_ERR_INTERNAL, "%s:%d:%d: unexpected libyaml event %d", b->file,
                          mark_line(&ev->start_mark), mark_col(b, &ev->start_mark), (int)ev->type);
        }
    }
    yaml_event_delete(ev);
    return st;
}

/* stream := STREAM-START [DOCUMENT-START node DOCUMENT-END] STREAM-END */
static ti_status build_stream(struct builder *b) {
    yaml_event_t ev;
    ti_status st;
    TI_TRY(next_event(b, &ev)); /* STREAM-START */
    yaml_event_delete(&ev);
    TI_TRY(next_event(b, &ev));
    if (ev.type == YAML_STREAM_END_EVENT) { /* empty file or only comments */
        yaml_event_delete(&ev);
        return TI_OK;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    TI_TRY(next_event(b, &ev));
    struct ti_yaml_node *root;
    TI_TRY(build_node(b, &ev, 0, &root));
    b->doc->root = root;
    TI_TRY(next_event(b, &ev)); /* DOCUMENT-END */
    yaml_event_delete(&ev);
    TI_TRY(next_event(b, &ev));
    if (ev.type != YAML_STREAM_END_EVENT) {
        st = ti_error(b->err, TI_ERR_FORMAT,
                      "%s:%d:%d: expected a single document in the stream, but found another "
                      "document",
                      b->file, mark_line(&ev.start_mark), mark_col(b, &ev.start_mark));
        yaml_event_delete(&ev);
        return st;
    }
    yaml_event_delete(&ev);
    return TI_OK;
}

/* raw = 0: an empty or null document becomes an empty mapping (a config file); raw = 1: it
 * stays a null scalar (an override value). */
static ti_status parse_text(struct ti_yaml_doc **out, const char *text, size_t len,
                            const char *name, int col_offset, int raw, struct ti_err *err) {
    *out = NULL;
    struct ti_yaml_doc *d;
    TI_TRY(doc_alloc(&d, err));
    struct builder b;
    memset(&b, 0, sizeof b);
    b.doc = d;
    b.err = err;
    b.col_offset = col_offset;
    ti_status st = TI_OK;
    if (!(b.file = doc_file(d, name))) {
        st = nomem(err, "file name");
        goto done;
    }
    if (!yaml_parser_initialize(&b.p)) {
        st = nomem(err, "libyaml parser");
        goto done;
    }
    yaml_parser_set_input_string(&b.p, (const unsigned char *)text, len);
    st = build_stream(&b);
    yaml_parser_delete(&b.p);
    if (st == TI_OK && !d->root && raw &&
        (st = node_new(d, TI_YAML_SCALAR, b.file, 1, col_offset + 1, &d->root, err)) == TI_OK)
        st = scalar_set(d->root, "", err);
    if (st == TI_OK && !d->root) st = doc_empty_root(d, name, err);
    if (st == TI_OK && !raw && ti_yaml_is_null(d->root)) { /* "---" alone, or "~" */
        node_free(d->root);
        d->root = NULL;
        st = doc_empty_root(d, name, err);
    }
done:
    for (size_t k = 0; k < b.n_anchors; k++)
        free(b.anchors[k].name);
    free(b.anchors);
    for (size_t k = 0; k < b.n_scrap; k++)
        node_free(b.scrap[k]);
    free(b.scrap);
    if (st != TI_OK) {
        ti_yaml_free(d);
        return st;
    }
    *out = d;
    return TI_OK;
}

#else /* !TI_HAVE_YAML */

static ti_status parse_text(struct ti_yaml_doc **out, const char *text, size_t len,
                            const char *name, int col_offset, int raw, struct ti_err *err) {
    (void)text, (void)len, (void)col_offset, (void)raw;
    *out = NULL;
    return ti_error(err, TI_ERR_UNSUPPORTED, "%s: %s", name, NO_YAML_MSG);
}

#endif /* TI_HAVE_YAML */

ti_status ti_yaml_load_string(struct ti_yaml_doc **out, const char *text, size_t len,
                              const char *name, struct ti_err *err) {
    *out = NULL;
    if (!text || !name) return ti_error(err, TI_ERR_INVALID, "yaml: NULL text or name");
    return parse_text(out, text, len, name, 0, 0, err);
}

ti_status ti_yaml_load_file(struct ti_yaml_doc **out, const char *path, struct ti_err *err) {
    *out = NULL;
    if (!path) return ti_error(err, TI_ERR_INVALID, "yaml: NULL path");
#ifndef TI_HAVE_YAML
    return ti_error(err, TI_ERR_UNSUPPORTED, "%s: %s", path, NO_YAML_MSG);
#else
    FILE *f = fopen(path, "rb");
    if (!f) return ti_error(err, TI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    ti_status st = TI_OK;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 8192;
            if (cap > MAX_FILE + 1) cap = MAX_FILE + 1;
            char *nb = realloc(buf, cap);
            if (!nb) {
                st = nomem(err, "file");
                goto done;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
        if (len > MAX_FILE) {
            st = ti_error(err, TI_ERR_FORMAT, "%s: larger than %u bytes; not a config file", path,
                          MAX_FILE);
            goto done;
        }
    }
    if (ferror(f)) {
        st = ti_error(err, TI_ERR_IO, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    st = parse_text(out, buf ? buf : "", len, path, 0, 0, err);
done:
    free(buf);
    fclose(f);
    return st;
#endif
}

/* ==== Merge and overrides ================================================================== */

static ti_status merge_map(struct ti_yaml_doc *d, struct ti_yaml_node *dst,
                           const struct ti_yaml_node *src, struct ti_err *err);

/* dst_parent->items[idx] receives src: mappings merge, everything else replaces. */
static ti_status merge_at(struct ti_yaml_doc *d, struct ti_yaml_node *parent, size_t idx,
                          const struct ti_yaml_node *src, struct ti_err *err) {
    /* idx indexes an existing child of parent (callers found it there) */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
    struct ti_yaml_node *cur = parent->items[idx];
    if (cur->kind == TI_YAML_MAP && src->kind == TI_YAML_MAP) return merge_map(d, cur, src, err);
    if ((cur->kind == TI_YAML_MAP && src->kind == TI_YAML_SEQ) ||
        (cur->kind == TI_YAML_SEQ && src->kind == TI_YAML_MAP)) {
        char path[256];
        ti_yaml_path(cur, path, sizeof path);
        return ti_error(err, TI_ERR_CONFIG,
                        "%s:%d:%d: %s: cannot merge a %s into the %s defined at %s:%d:%d "
                        "(OmegaConf refuses this too)",
                        src->file, src->line, src->col, path, ti_yaml_type_name(src),
                        ti_yaml_type_name(cur), cur->file, cur->line, cur->col);
    }
    struct ti_yaml_node *c;
    TI_TRY(node_copy(d, src, parent, &c, err));
    free((char *)c->key);
    c->key = cur->key; /* keep the destination's key and place */
    cur->key = NULL;
    if (!src->key) c->key_line = cur->key_line, c->key_col = cur->key_col;
    parent->items[idx] = c;
    node_free(cur);
    return TI_OK;
}

static ti_status merge_map(struct ti_yaml_doc *d, struct ti_yaml_node *dst,
                           const struct ti_yaml_node *src, struct ti_err *err) {
    for (size_t k = 0; k < src->n; k++) {
        const struct ti_yaml_node *s = src->items[k];
        size_t idx;
        if (map_find(dst, s->key, &idx)) {
            TI_TRY(merge_at(d, dst, idx, s, err));
        } else {
            struct ti_yaml_node *c;
            TI_TRY(node_copy(d, s, dst, &c, err));
            ti_status st = node_append(dst, c, err);
            if (st != TI_OK) {
                node_free(c);
                return st;
            }
        }
    }
    return TI_OK;
}

ti_status ti_yaml_merge(struct ti_yaml_doc *dst, const struct ti_yaml_doc *src,
                        struct ti_err *err) {
    if (!dst || !src || !dst->root || !src->root)
        return ti_error(err, TI_ERR_INVALID, "yaml merge: NULL document");
    const struct ti_yaml_node *s = src->root;
    if (s->kind != TI_YAML_MAP)
        return ti_error(err, TI_ERR_CONFIG,
                        "%s:%d:%d: the top level of a config must be a mapping, found a %s",
                        s->file, s->line, s->col, ti_yaml_type_name(s));
    if (dst->root->kind != TI_YAML_MAP)
        return ti_error(err, TI_ERR_CONFIG, "%s:%d:%d: the top level is not a mapping",
                        dst->root->file, dst->root->line, dst->root->col);
    return merge_map(dst, dst->root, s, err);
}

/* A parsed path. idx >= 0 for a "[N]" or an all-digit segment. */
struct path {
    char buf[600]; /* the segments, NUL-separated */
    const char *seg[MAX_SEGS];
    long idx[MAX_SEGS];
    int bracket[MAX_SEGS]; /* 1: written [N] (only a sequence index) */
    int n;
};

/* "a.b.c", "a.b[0].c", "a.b.0.c" -> segments; 0 for an empty or malformed path. */
static int parse_path(const char *path, struct path *p) {
    size_t len = strlen(path);
    if (len == 0 || len + MAX_SEGS >= sizeof p->buf) return 0;
    char *w = p->buf;
    const char *s = path;
    p->n = 0;
    while (*s) {
        if (p->n == MAX_SEGS) return 0;
        const char *start, *end;
        int bracket = *s == '[';
        if (bracket) {
            start = s + 1;
            end = strchr(start, ']');
            if (!end || end == start) return 0;
            for (const char *q = start; q < end; q++)
                if (!is_digit(*q)) return 0;
            s = end + 1;
        } else {
            start = end = s;
            while (*end && *end != '.' && *end != '[')
                end++;
            if (end == start) return 0; /* empty segment: "a..b", ".a" */
            s = end;
        }
        size_t sl = (size_t)(end - start);
        memcpy(w, start, sl);
        w[sl] = '\0';
        int digits = 1;
        for (size_t q = 0; q < sl; q++)
            digits &= is_digit(w[q]);
        p->seg[p->n] = w;
        p->idx[p->n] = digits && sl < 10 ? strtol(w, NULL, 10) : -1;
        p->bracket[p->n++] = bracket;
        w += sl + 1;
        if (*s == '.') {
            if (!*++s) return 0; /* trailing dot */
        } else if (*s && *s != '[') {
            return 0; /* "a[0]b" */
        }
    }
    return p->n > 0;
}

/* Child of n for segment k, or NULL. */
static struct ti_yaml_node *step(const struct ti_yaml_node *n, const struct path *p, int k,
                                 size_t *idx) {
    if (n->kind == TI_YAML_MAP && !p->bracket[k]) return map_find(n, p->seg[k], idx);
    if (n->kind == TI_YAML_SEQ && p->idx[k] >= 0 && (size_t)p->idx[k] < n->n) {
        *idx = (size_t)p->idx[k];
        return n->items[*idx];
    }
    return NULL;
}

const struct ti_yaml_node *ti_yaml_get(const struct ti_yaml_node *base, const char *path) {
    struct path p;
    if (!base || !path || !parse_path(path, &p)) return NULL;
    const struct ti_yaml_node *n = base;
    for (int k = 0; k < p.n && n; k++) {
        size_t idx;
        n = step(n, &p, k, &idx);
    }
    return n;
}

/* Puts value (owned by d, no parent yet) at path below the root with merge semantics. The value
 * is consumed in every case. */
static ti_status set_path(struct ti_yaml_doc *d, const char *path, struct ti_yaml_node *value,
                          const char *origin, struct ti_err *err) {
    struct path p;
    ti_status st = TI_OK;
    if (!parse_path(path, &p)) {
        st = ti_error(err, TI_ERR_CONFIG, "%s: '%s' is not a key path (a.b.c or a.b[0])", origin,
                      path);
        goto done;
    }
    struct ti_yaml_node *n = d->root;
    if (n->kind != TI_YAML_MAP) {
        st = ti_error(err, TI_ERR_CONFIG,
                      "%s: the document's top level (%s:%d:%d) is a %s, not a "
                      "mapping",
                      origin, n->file, n->line, n->col, ti_yaml_type_name(n));
        goto done;
    }
    for (int k = 0; k < p.n; k++) {
        size_t idx = 0;
        struct ti_yaml_node *c = step(n, &p, k, &idx);
        int last = k == p.n - 1;
        if (n->kind == TI_YAML_SEQ && !c) {
            char where[256];
            ti_yaml_path(n, where, sizeof where);
            st = ti_error(err, TI_ERR_CONFIG,
                          "%s: %s is a sequence of %zu items (defined at %s:%d:%d); '%s' is not "
                          "an index into it",
                          origin, where, n->n, n->file, n->line, n->col, p.seg[k]);
            goto done;
        }
        if (n->kind == TI_YAML_MAP && p.bracket[k]) {
            char where[256];
            ti_yaml_path(n, where, sizeof where);
            st = ti_error(err, TI_ERR_CONFIG,
                          "%s: %s is a mapping (defined at %s:%d:%d), not a "
                          "sequence: [%s] does not apply",
                          origin, where, n->file, n->line, n->col, p.seg[k]);
            goto done;
        }
        if (last) {
            if (c) {
                /* merge value into the existing node: reuse merge_at through a 1-entry view */
                if (!value->key && n->kind == TI_YAML_MAP && !(value->key = dupstr(p.seg[k]))) {
                    st = nomem(err, "key");
                    goto done;
                }
                st = merge_at(d, n, idx, value, err);
                goto done;
            }
            if (!(value->key = dupstr(p.seg[k]))) {
                st = nomem(err, "key");
                goto done;
            }
            if ((st = node_append(n, value, err)) != TI_OK) goto done;
            return TI_OK;
        }
        if (p.bracket[k + 1] && (!c || c->kind != TI_YAML_SEQ)) {
            char where[256];
            ti_yaml_path(c ? c : n, where, sizeof where);
            st = ti_error(err, TI_ERR_CONFIG,
                          "%s: %s%s%s is %s, not a sequence: [%s] does not apply", origin, where,
                          c ? "" : ".", c ? "" : p.seg[k], c ? ti_yaml_type_name(c) : "absent",
                          p.seg[k + 1]);
            goto done;
        }
        if (!c || c->kind == TI_YAML_SCALAR) { /* create (or replace a scalar by) a mapping */
            struct ti_yaml_node *m;
            st = node_new(d, TI_YAML_MAP, value->file, value->line, value->col, &m, err);
            if (st != TI_OK) goto done;
            if (!(m->key = dupstr(p.seg[k]))) {
                node_free(m);
                st = nomem(err, "key");
                goto done;
            }
            m->key_line = value->line;
            m->key_col = 1;
            if (c) {
                /* c was found at idx by map_find, so n->items is non-empty */
                // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
                n->items[idx] = m;
                m->parent = n;
                node_free(c);
            } else if ((st = node_append(n, m, err)) != TI_OK) {
                node_free(m);
                goto done;
            }
            c = m;
        }
        n = c;
    }
done:
    node_free(value);
    return st;
}

ti_status ti_yaml_override(struct ti_yaml_doc *doc, const char *arg, struct ti_err *err) {
    if (!doc || !doc->root || !arg) return ti_error(err, TI_ERR_INVALID, "yaml override: NULL");
    char origin[256];
    if (strlen(arg) <= 200)
        snprintf(origin, sizeof origin, "override '%s'", arg);
    else
        snprintf(origin, sizeof origin, "override '%.200s...'", arg);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return ti_error(err, TI_ERR_CONFIG, "%s: expected key.path=value", origin);
    char key[512];
    size_t klen = (size_t)(eq - arg);
    if (klen >= sizeof key) return ti_error(err, TI_ERR_CONFIG, "%s: key path too long", origin);
    memcpy(key, arg, klen);
    key[klen] = '\0';
    /* The value is a YAML document of its own ("" and "~" give null, as yaml.load does). */
    struct ti_yaml_doc *v;
    TI_TRY(parse_text(&v, eq + 1, strlen(eq + 1), origin, (int)klen + 1, 1, err));
    struct ti_yaml_node *value;
    ti_status st = node_copy(doc, v->root, NULL, &value, err);
    ti_yaml_free(v);
    if (st != TI_OK) return st;
    return set_path(doc, key, value, origin, err);
}

ti_status ti_yaml_set_str(struct ti_yaml_doc *doc, const char *path, const char *value,
                          const char *origin, struct ti_err *err) {
    return ti_yaml_set_str_list(doc, path, &value, -1, origin, err);
}

/* n < 0: a single string, not a list. */
ti_status ti_yaml_set_str_list(struct ti_yaml_doc *doc, const char *path, const char *const *values,
                               int n, const char *origin, struct ti_err *err) {
    if (!doc || !doc->root || !path || !origin || (n > 0 && !values))
        return ti_error(err, TI_ERR_INVALID, "yaml set: NULL argument");
    const char *file = doc_file(doc, origin);
    if (!file) return nomem(err, "file name");
    struct ti_yaml_node *v;
    TI_TRY(node_new(doc, n < 0 ? TI_YAML_SCALAR : TI_YAML_SEQ, file, 1, 1, &v, err));
    ti_status st = TI_OK;
    if (n < 0) {
        st = scalar_set(v, values[0], err);
        v->type = TI_YAML_STR;
        v->quoted = 1;
    }
    for (int k = 0; k < n && st == TI_OK; k++) {
        struct ti_yaml_node *c;
        if ((st = node_new(doc, TI_YAML_SCALAR, file, 1, 1, &c, err)) != TI_OK) break;
        c->type = TI_YAML_STR;
        c->quoted = 1;
        if ((st = scalar_set(c, values[k], err)) != TI_OK || (st = node_append(v, c, err)) != TI_OK)
            node_free(c);
    }
    if (st != TI_OK) {
        node_free(v);
        return st;
    }
    return set_path(doc, path, v, origin, err);
}

ti_status ti_yaml_load_merged(struct ti_yaml_doc **out, const char *const *files, int n_files,
                              const char *const *overrides, int n_overrides, struct ti_err *err) {
    *out = NULL;
    struct ti_yaml_doc *d;
    TI_TRY(ti_yaml_doc_new(&d, err));
    ti_status st = TI_OK;
    for (int k = 0; k < n_files && st == TI_OK; k++) {
        struct ti_yaml_doc *f;
        if ((st = ti_yaml_load_file(&f, files[k], err)) != TI_OK) break;
        st = ti_yaml_merge(d, f, err);
        ti_yaml_free(f);
    }
    for (int k = 0; k < n_overrides && st == TI_OK; k++)
        st = ti_yaml_override(d, overrides[k], err);
    if (st != TI_OK) {
        ti_yaml_free(d);
        return st;
    }
    if (n_files > 0) { /* name the merged root after the first file, as the peer's log does */
        const char *file = doc_file(d, files[0]);
        if (file) d->root->file = file;
    }
    *out = d;
    return TI_OK;
}

/* ==== Lookup and typed getters ============================================================= */

ti_status ti_yaml_require(const struct ti_yaml_node *base, const char *path,
                          const struct ti_yaml_node **out, struct ti_err *err) {
    *out = ti_yaml_get(base, path);
    if (*out) return TI_OK;
    if (!base) return ti_error(err, TI_ERR_NOT_FOUND, "yaml: missing key '%s'", path);
    char where[256];
    ti_yaml_path(base, where, sizeof where);
    return ti_error(err, TI_ERR_NOT_FOUND, "%s:%d:%d: %s: missing required key '%s'", base->file,
                    base->line, base->col, where, path);
}

ti_status ti_yaml_as_int(const struct ti_yaml_node *n, int64_t *out, struct ti_err *err) {
    TI_TRY(check_special(n, err));
    if (n->kind != TI_YAML_SCALAR || n->type != TI_YAML_INT)
        return type_error(n, "an integer", err);
    int64_t v;
    if (!int_value(n->text, &v)) {
        char path[256];
        ti_yaml_path(n, path, sizeof path);
        return ti_error(err, TI_ERR_CONFIG, "%s:%d:%d: %s: integer '%s' is out of range", n->file,
                        n->line, n->col, path, n->text);
    }
    *out = n->i;
    return TI_OK;
}

ti_status ti_yaml_as_float(const struct ti_yaml_node *n, double *out, struct ti_err *err) {
    TI_TRY(check_special(n, err));
    if (n->kind != TI_YAML_SCALAR || (n->type != TI_YAML_FLOAT && n->type != TI_YAML_INT))
        return type_error(n, "a number", err);
    *out = n->type == TI_YAML_INT ? (double)n->i : n->f;
    return TI_OK;
}

ti_status ti_yaml_as_bool(const struct ti_yaml_node *n, int *out, struct ti_err *err) {
    TI_TRY(check_special(n, err));
    if (n->kind != TI_YAML_SCALAR || n->type != TI_YAML_BOOL)
        return type_error(n, "a bool (true/false)", err);
    *out = n->i != 0;
    return TI_OK;
}

ti_status ti_yaml_as_str(const struct ti_yaml_node *n, const char **out, struct ti_err *err) {
    TI_TRY(check_special(n, err));
    if (n->kind != TI_YAML_SCALAR || n->type != TI_YAML_STR) return type_error(n, "a string", err);
    *out = n->text;
    return TI_OK;
}

static ti_status list_check(const struct ti_yaml_node *n, size_t cap, const char *what,
                            struct ti_err *err) {
    if (n->kind != TI_YAML_SEQ) return type_error(n, what, err);
    if (n->n > cap) {
        char path[256];
        ti_yaml_path(n, path, sizeof path);
        return ti_error(err, TI_ERR_CONFIG, "%s:%d:%d: %s: %zu items, ti allows at most %zu",
                        n->file, n->line, n->col, path, n->n, cap);
    }
    return TI_OK;
}

ti_status ti_yaml_as_int_list(const struct ti_yaml_node *n, int64_t *out, size_t cap, size_t *count,
                              struct ti_err *err) {
    TI_TRY(list_check(n, cap, "a sequence of integers", err));
    for (size_t k = 0; k < n->n; k++)
        TI_TRY(ti_yaml_as_int(n->items[k], &out[k], err));
    *count = n->n;
    return TI_OK;
}

ti_status ti_yaml_as_str_list(const struct ti_yaml_node *n, const char **out, size_t cap,
                              size_t *count, struct ti_err *err) {
    TI_TRY(list_check(n, cap, "a sequence of strings", err));
    for (size_t k = 0; k < n->n; k++)
        TI_TRY(ti_yaml_as_str(n->items[k], &out[k], err));
    *count = n->n;
    return TI_OK;
}

ti_status ti_yaml_get_int(const struct ti_yaml_node *base, const char *path, int64_t dflt,
                          int64_t *out, struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (!n) return *out = dflt, TI_OK;
    return ti_yaml_as_int(n, out, err);
}

ti_status ti_yaml_get_float(const struct ti_yaml_node *base, const char *path, double dflt,
                            double *out, struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (!n) return *out = dflt, TI_OK;
    return ti_yaml_as_float(n, out, err);
}

ti_status ti_yaml_get_bool(const struct ti_yaml_node *base, const char *path, int dflt, int *out,
                           struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (!n) return *out = dflt, TI_OK;
    return ti_yaml_as_bool(n, out, err);
}

ti_status ti_yaml_get_str(const struct ti_yaml_node *base, const char *path, const char *dflt_str,
                          const char **out, struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (!n) return *out = dflt_str, TI_OK;
    return ti_yaml_as_str(n, out, err);
}

ti_status ti_yaml_get_int_list(const struct ti_yaml_node *base, const char *path,
                               const int64_t *dflt, size_t n_dflt, int64_t *out, size_t cap,
                               size_t *count, struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (n) return ti_yaml_as_int_list(n, out, cap, count, err);
    if (n_dflt > cap) return ti_error(err, TI_ERR_INVALID, "yaml: default longer than cap");
    for (size_t k = 0; k < n_dflt; k++)
        out[k] = dflt[k];
    *count = n_dflt;
    return TI_OK;
}

ti_status ti_yaml_get_str_list(const struct ti_yaml_node *base, const char *path,
                               const char *const *dflt, size_t n_dflt, const char **out, size_t cap,
                               size_t *count, struct ti_err *err) {
    const struct ti_yaml_node *n = ti_yaml_get(base, path);
    if (n) return ti_yaml_as_str_list(n, out, cap, count, err);
    if (n_dflt > cap) return ti_error(err, TI_ERR_INVALID, "yaml: default longer than cap");
    for (size_t k = 0; k < n_dflt; k++)
        out[k] = dflt[k];
    *count = n_dflt;
    return TI_OK;
}
