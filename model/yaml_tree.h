/*
 * yaml_tree.h - a YAML document tree read with libyaml, with the OmegaConf semantics the peer's
 * configs rely on: files merged left to right, `key.path=value` overrides, dotted lookup and
 * typed getters whose errors name the file, line, key path, the value found and the type
 * expected.
 *
 *   struct ti_yaml_doc *doc = NULL;
 *   const char *files[] = {"configs/stable-diffusion/v1-finetune.yaml"};
 *   const char *over[] = {"lightning.trainer.max_steps=100"};
 *   if (ti_yaml_load_merged(&doc, files, 1, over, 1, &err) != TI_OK) ...;
 *   int64_t steps;
 *   ti_yaml_get_int(ti_yaml_root(doc), "lightning.trainer.max_steps", -1, &steps, &err);
 *   ti_yaml_free(doc);
 *
 * What it is:
 *   - A tree of mappings (keys in file order), sequences and scalars. Every node records the
 *     file, line and column (1-based) of its value and, for mapping entries, of its key.
 *   - Anchors and aliases are resolved (an alias is a deep copy of the anchored node); YAML 1.1
 *     merge keys (`<<: *base`) follow PyYAML. Block and flow style both work.
 *   - Plain scalars are typed as the peer's loader (OmegaConf 2.1.1 = PyYAML SafeLoader plus
 *     OmegaConf's float resolver, minus timestamps) types them:
 *       null  `~`, `null`, `Null`, `NULL`, empty
 *       bool  `true/True/TRUE/false/...`, `yes/no/on/off` in the same three spellings
 *       int   decimal with `_` separators, `0x..`, `0b..`, `0..` (octal), `1:30` (base 60)
 *       float `1.5`, `1.`, `5.0e-03`, `1.e-6`, `.5`, `.inf`, `.nan`, and `1e-6`, `1e5`
 *             (exponent without a dot: OmegaConf's resolver; plain PyYAML would give a string)
 *       str   everything else, and every quoted scalar
 *     Explicit tags `!!str !!int !!float !!bool !!null` are honoured; other tags are an error.
 *     Duplicate keys are an error (as in OmegaConf). Only scalar keys are accepted.
 *   - Without libyaml (TI_HAVE_YAML undefined) the loaders and ti_yaml_override return
 *     TI_ERR_UNSUPPORTED with "ti was built without libyaml: install libyaml-dev and rebuild";
 *     the rest still works on trees built by ti_yaml_doc_new and ti_yaml_set_str.
 *
 * What it is not: a YAML emitter, or OmegaConf interpolation (`${a.b}`) and the mandatory
 * marker `???`: typed getters reject both with a message that says so.
 *
 * Ownership: a ti_yaml_doc owns all of its nodes and strings; node pointers and the strings
 * returned by the getters stay valid until ti_yaml_free (or until an override replaces them).
 */
#ifndef TI_YAML_TREE_H
#define TI_YAML_TREE_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int64_t */

#include "status.h" /* defines: ti_status, struct ti_err, TI_ERR_* */

#ifdef __cplusplus
extern "C" {
#endif

enum ti_yaml_kind { TI_YAML_SCALAR, TI_YAML_SEQ, TI_YAML_MAP };

/* The resolved type of a scalar. */
enum ti_yaml_type { TI_YAML_NULL, TI_YAML_BOOL, TI_YAML_INT, TI_YAML_FLOAT, TI_YAML_STR };

struct ti_yaml_node {
    enum ti_yaml_kind kind;
    enum ti_yaml_type type; /* scalars only */
    const char *text;       /* scalars: the scalar's text after YAML unescaping ("" for empty) */
    int quoted;             /* scalars: 1 when written quoted (or as a block scalar) */
    int64_t i;              /* TI_YAML_INT value; TI_YAML_BOOL: 0 or 1 */
    double f;               /* TI_YAML_FLOAT value (and TI_YAML_INT converted) */

    const char *file; /* where the value was written: a file name, or "override '...'" */
    int line, col;    /* 1-based position of the value */

    struct ti_yaml_node *parent; /* NULL for the root */
    const char *key;             /* the key in the parent mapping; NULL for sequence items */
    int key_line, key_col;       /* position of that key */

    size_t n;                    /* number of children (map entries or sequence items) */
    struct ti_yaml_node **items; /* children in order; map entries carry their key */
    size_t cap;
};

struct ti_yaml_doc;

/* ---- loading -------------------------------------------------------------------------- */

/* Parses one YAML file (a single document). An empty file gives an empty mapping.
 * Syntax errors read "configs/x.yaml:12:3: <libyaml problem> (<context> at line L, column C)".
 * *out is set on success; free it with ti_yaml_free. */
ti_status ti_yaml_load_file(struct ti_yaml_doc **out, const char *path, struct ti_err *err);

/* Same for a string; `name` stands for the file name in positions and messages. */
ti_status ti_yaml_load_string(struct ti_yaml_doc **out, const char *text, size_t len,
                              const char *name, struct ti_err *err);

/* A document whose root is an empty mapping (a merge target). */
ti_status ti_yaml_doc_new(struct ti_yaml_doc **out, struct ti_err *err);

/* What the peer's main.py does: load every file, merge them left to right into an empty
 * mapping, then apply every override in order (ti_yaml_override). n_files may be 0. */
ti_status ti_yaml_load_merged(struct ti_yaml_doc **out, const char *const *files, int n_files,
                              const char *const *overrides, int n_overrides, struct ti_err *err);

/* Frees a document and everything in it. NULL is a no-op. */
void ti_yaml_free(struct ti_yaml_doc *doc);

const struct ti_yaml_node *ti_yaml_root(const struct ti_yaml_doc *doc);

/* ---- OmegaConf operations ------------------------------------------------------------- */

/* OmegaConf.merge(dst, src): mappings merge recursively (new keys are appended, existing keys
 * keep their place), scalars and sequences replace. A mapping merged onto a sequence or the
 * reverse is an error (OmegaConf raises the same). The root of src must be a mapping.
 * dst keeps src's file names and positions for the nodes it copies. */
ti_status ti_yaml_merge(struct ti_yaml_doc *dst, const struct ti_yaml_doc *src, struct ti_err *err);

/* A dot-list override "a.b.c=value" (OmegaConf.from_dotlist + merge): the value is parsed as a
 * YAML scalar or flow collection ("5", "1e-4", "[1, 2]", "{x: 1}", "" = null) and merged at
 * the path; missing intermediate mappings are created (a scalar in the way is replaced by a
 * mapping). A segment may index an existing sequence ("a.b.0=x" or "a.b[0]=x"; a ti extension,
 * OmegaConf's dot-list cannot do that). An argument without '=' is an error (the peer would
 * silently add a null key). */
ti_status ti_yaml_override(struct ti_yaml_doc *doc, const char *arg, struct ti_err *err);

/* Sets a string at a path without YAML parsing (for values such as paths that must stay
 * strings). `origin` names where the value came from in later messages ("--data_root"). */
ti_status ti_yaml_set_str(struct ti_yaml_doc *doc, const char *path, const char *value,
                          const char *origin, struct ti_err *err);

/* Sets a sequence of strings at a path (replacing what is there). */
ti_status ti_yaml_set_str_list(struct ti_yaml_doc *doc, const char *path, const char *const *values,
                               int n, const char *origin, struct ti_err *err);

/* ---- lookup --------------------------------------------------------------------------- */

/* The node at a dotted path below base ("model.params.unet_config", "a.b[2]" or "a.b.2");
 * NULL when base is NULL, a key is absent, or a segment does not fit the node. */
const struct ti_yaml_node *ti_yaml_get(const struct ti_yaml_node *base, const char *path);

/* Like ti_yaml_get, but a missing node is an error that names the file, line and the path. */
ti_status ti_yaml_require(const struct ti_yaml_node *base, const char *path,
                          const struct ti_yaml_node **out, struct ti_err *err);

/* Writes the node's full path from the root ("model.params.channel_mult[2]"; "<root>" for the
 * root) into buf (truncated to cap) and returns buf. */
char *ti_yaml_path(const struct ti_yaml_node *node, char *buf, size_t cap);

/* "integer", "float", "bool", "string", "null", "mapping", "sequence". */
const char *ti_yaml_type_name(const struct ti_yaml_node *node);

int ti_yaml_is_null(const struct ti_yaml_node *node);

/* ---- typed conversion ----------------------------------------------------------------- */
/* Each reads one node; a wrong type is TI_ERR_CONFIG with
 * "<file>:<line>:<col>: <path>: expected <type>, found <type> '<text>'".
 *   int:   an integer scalar (a float such as 320.0 is an error, as it is for the peer's torch)
 *   float: a float or integer scalar
 *   bool:  a bool scalar (the string "False" is an error: Python would read it as true)
 *   str:   a string scalar; *out points into the document */

ti_status ti_yaml_as_int(const struct ti_yaml_node *n, int64_t *out, struct ti_err *err);
ti_status ti_yaml_as_float(const struct ti_yaml_node *n, double *out, struct ti_err *err);
ti_status ti_yaml_as_bool(const struct ti_yaml_node *n, int *out, struct ti_err *err);
ti_status ti_yaml_as_str(const struct ti_yaml_node *n, const char **out, struct ti_err *err);

/* A sequence of integers (or strings) with at most cap items; *count gets the length. */
ti_status ti_yaml_as_int_list(const struct ti_yaml_node *n, int64_t *out, size_t cap, size_t *count,
                              struct ti_err *err);
ti_status ti_yaml_as_str_list(const struct ti_yaml_node *n, const char **out, size_t cap,
                              size_t *count, struct ti_err *err);

/* Path-based versions: an absent key gives the default (dflt_str may be NULL; a list default
 * has n_dflt items). A present null is not absent: it is a type error. */
ti_status ti_yaml_get_int(const struct ti_yaml_node *base, const char *path, int64_t dflt,
                          int64_t *out, struct ti_err *err);
ti_status ti_yaml_get_float(const struct ti_yaml_node *base, const char *path, double dflt,
                            double *out, struct ti_err *err);
ti_status ti_yaml_get_bool(const struct ti_yaml_node *base, const char *path, int dflt, int *out,
                           struct ti_err *err);
ti_status ti_yaml_get_str(const struct ti_yaml_node *base, const char *path, const char *dflt_str,
                          const char **out, struct ti_err *err);
ti_status ti_yaml_get_int_list(const struct ti_yaml_node *base, const char *path,
                               const int64_t *dflt, size_t n_dflt, int64_t *out, size_t cap,
                               size_t *count, struct ti_err *err);
ti_status ti_yaml_get_str_list(const struct ti_yaml_node *base, const char *path,
                               const char *const *dflt, size_t n_dflt, const char **out, size_t cap,
                               size_t *count, struct ti_err *err);

/* Types one plain scalar exactly as the peer's loader would (see the table above). For tests
 * and for tools that take YAML-typed values from elsewhere. *i / *f receive the value. */
enum ti_yaml_type ti_yaml_resolve_plain(const char *text, int64_t *i, double *f);

#ifdef __cplusplus
}
#endif
#endif /* TI_YAML_TREE_H */
