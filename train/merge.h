/*
 * merge.h - merging embedding files into one set of placeholder terms: the peer's
 * merge_embeddings.py (ti-peer.md §6) as a library, used by ti-merge.
 *
 *   struct ti_merge m;
 *   ti_merge_init(&m);
 *   struct ti_merge_opts o = {.tok = tok};           // the chosen model's tokenizer
 *   for each file: ti_embedding_read(&e, path, err); ti_merge_add(&m, &e, path, &o, err);
 *   TI_TRY(ti_merge_finish(&m, &o, err));             // every --rename was used
 *   ti_embedding_write(&m.emb, out, TI_EMB_PEER, err);
 *   ti_merge_free(&m);
 *
 * Each term of each file, in file order then the file's own order:
 *   1. a rename (file, OLD -> NEW) for it applies first (the user's --rename); each rename
 *      applies to one occurrence of its file, the first not yet renamed (a file given twice);
 *   2. the vectors must have the width of the terms merged so far: otherwise an error naming
 *      both files and both widths (the peer never checks, and writes an unusable file);
 *   3. its token id: the one the file stores, copied as the peer copies it; for a renamed
 *      string, an answer to a prompt, or a term stored without an id (diffusers, kohya), the
 *      string must be a single token for `tok` (ti_tokenizer_single_token, the peer's rule) and
 *      its id is `tok`'s;
 *   4. it must not be a placeholder merged already (nor, a ti check, its token under another
 *      name).
 * When 3 or 4 fails for a string that came from a file, `ask` (when set) is asked for a
 * replacement with the peer's prompts, verbatim: "Placeholder string <s> was already used.
 * Please enter a replacement string: " for a conflict, "Placeholder string '<new>' maps to more
 * than a single token. Please enter another string: " while the answer is not one token; and,
 * where the peer would silently overwrite a merged term, "Placeholder string '<new>' is already
 * used by <file>. Please enter another string: ". Without `ask` (stdin not a terminal) it is an
 * error naming both files and the --rename that resolves it. A string that came from a rename
 * is never re-asked: it must pass 3 and 4 or the merge fails naming the rename.
 *
 * Not here: reading and writing files (embedding_io.h), the command line (ti_merge.c).
 */
#ifndef TI_MERGE_H
#define TI_MERGE_H

#include "embedding_io.h"
#include "status.h"
#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --rename FILE:OLD=NEW: in the file `file` (as given on the command line), OLD becomes NEW. */
struct ti_merge_rename {
    const char *file, *old_name, *new_name;
    int used; /* set by ti_merge_add */
};

/* Prints `prompt` (no newline) and reads one line: *answer is malloc'd without its newline, or
 * NULL at end of input. */
typedef ti_status (*ti_merge_ask_fn)(void *user, const char *prompt, char **answer,
                                     struct ti_err *err);

struct ti_merge_opts {
    const struct ti_tokenizer *tok; /* the chosen model's tokenizer (required) */
    struct ti_merge_rename *renames;
    int n_renames;
    ti_merge_ask_fn ask; /* NULL: conflicts are errors */
    void *ask_user;
};

struct ti_merge {
    struct ti_embedding emb; /* the merged terms */
    char **term_src;         /* (emb.n_terms): the file each term came from */
    int computed_ids;        /* how many of their token ids came from the tokenizer */
};

void ti_merge_init(struct ti_merge *m);
void ti_merge_free(struct ti_merge *m);
/* Adds every term of `e` (read from `path`). On error nothing of `e` is added. */
ti_status ti_merge_add(struct ti_merge *m, const struct ti_embedding *e, const char *path,
                       struct ti_merge_opts *o, struct ti_err *err);
/* After the last file: every rename must have matched a placeholder. */
ti_status ti_merge_finish(const struct ti_merge *m, const struct ti_merge_opts *o,
                          struct ti_err *err);

/* Python's repr() of a str (quotes chosen as Python does, \\, \n, \x.. escapes), for the
 * peer's "Final list of placeholders: {...}" line. Writes at most n bytes, NUL-terminated. */
void ti_merge_py_repr(char *buf, size_t n, const char *s);

#ifdef __cplusplus
}
#endif
#endif /* TI_MERGE_H */
