/*
 * io_test_util.h - helpers shared by the file-format tests (tests/io.cmake): temporary folders,
 * whole-file reads and writes, the fixtures' value formula, key/shape tables from
 * tests/fixtures/keys/<name>.tsv, running the tools. tio_read and tio_exists are test_util.h's
 * tu_read_file and tu_exists. Static functions: include it from one .c only.
 *
 * Tests run from the source root (ti_add_test sets WORKING_DIRECTORY), so fixtures are at
 * tests/fixtures/io/<name>.
 */
#ifndef TI_IO_TEST_UTIL_H
#define TI_IO_TEST_UTIL_H

#define _GNU_SOURCE 1
#include <dirent.h> /* defines: opendir, readdir */
#include <ftw.h>    /* defines: nftw */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* defines: stat */
#include <sys/wait.h> /* defines: WIFEXITED, WEXITSTATUS */
#include <unistd.h>   /* defines: unlink, rmdir */

#include "ckpt.h"
#include "safetensors.h"
#include "test_common.h"
#include "torchfile.h"
#include "test_util.h"

#define TIO_FIXTURES "tests/fixtures/io"

/* The value formula of scripts/oracle/io_fixtures.py (exact in f32, f16 and bf16). */
static inline float tio_value(long i, long salt) {
    return (float)((((i * 37 + salt) % 101) - 50) * 0.25);
}

static inline const char *tio_fixture(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", TIO_FIXTURES, name);
    return b;
}

/* A fresh folder under $TMPDIR or /tmp. */
static inline const char *tio_tmpdir(void) {
    static char dir[512];
    if (tu_mkdtemp(dir, sizeof dir, "ti-io-test") != 0) exit(1);
    return dir;
}

static inline const char *tio_path(const char *dir, const char *name) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    if (snprintf(b, 1024, "%s/%s", dir, name) >= 1024) {
        fprintf(stderr, "tio_path: %s/%s is too long\n", dir, name);
        abort();
    }
    return b;
}

static int tio_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void tio_rmrf(const char *dir) {
    nftw(dir, tio_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline uint8_t *tio_read(const char *path, size_t *n) {
    return tu_read_file(path, n);
}

static inline int tio_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static inline int tio_exists(const char *path) {
    return tu_exists(path);
}

/* Number of entries in a folder (temporary files left behind would show up here). */
static inline int tio_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A torch embedding file written op by op: string_to_token {tok[i]: id[i]} (plain ints, as
 * A1111 writes them), string_to_param {par[j]: 1x8 zeros}, and, when gm is not NULL, an entry
 * "extra" = REDUCE(gm.gn, ()) - a global in an otherwise real file. */
static inline void tio_embedding_pickle(const char *path, int n_tok, const char *const *tok,
                                        const int64_t *id, int n_par, const char *const *par,
                                        const char *gm, const char *gn) {
    static float v[8];
    struct ti_torch_writer w;
    struct ti_err err = {0};
    ti_torch_writer_init(&w);
    struct ti_pkw *pk = &w.pk;
    ti_pkw_proto(pk, 2);
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    ti_pkw_str(pk, "string_to_token");
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    for (int i = 0; i < n_tok; i++) {
        ti_pkw_str(pk, tok[i]);
        ti_pkw_int(pk, id[i]);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    ti_pkw_str(pk, "string_to_param");
    ti_pkw_op(pk, TI_PK_EMPTY_DICT);
    ti_pkw_op(pk, TI_PK_MARK);
    for (int j = 0; j < n_par; j++) {
        ti_pkw_str(pk, par[j]);
        struct ti_tensor t = ti_tensor_view(v, TI_DTYPE_F32, TI_DEVICE_CPU, 2, (int64_t[]){1, 8});
        CHECK_OK(ti_torch_writer_tensor(&w, &t, 1, &err), &err);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    if (gm) {
        ti_pkw_str(pk, "extra");
        ti_pkw_global(pk, gm, gn);
        ti_pkw_op(pk, TI_PK_EMPTY_TUPLE);
        ti_pkw_op(pk, TI_PK_REDUCE);
    }
    ti_pkw_op(pk, TI_PK_SETITEMS);
    CHECK_OK(ti_torch_writer_save(&w, path, &err), &err);
    ti_torch_writer_free(&w);
}

/* dst <- the tensors of checkpoint src plus n_extra more (keys[i]: extra[i]), as safetensors: a
 * model file with buffers added (a lightning checkpoint's schedule, say). */
static inline void tio_safetensors_plus(const char *src, const char *dst, const char *const *keys,
                                        const struct ti_tensor *extra, int n_extra) {
    struct ti_err e = {0};
    struct ti_state_dict *sd = NULL;
    CHECK_OK(ti_state_dict_open(&sd, src, NULL, &e), &e);
    if (!sd) return;
    size_t n = ti_state_dict_count(sd);
    struct ti_st_entry *ent = calloc(n + (size_t)n_extra, sizeof *ent);
    CHECK(ent != NULL);
    if (ent) {
        for (size_t i = 0; i < n; i++) {
            const struct ti_state_dict_entry *x = ti_state_dict_at(sd, i);
            ent[i] = (struct ti_st_entry){x->key, &x->t};
        }
        for (int k = 0; k < n_extra; k++)
            ent[n + (size_t)k] = (struct ti_st_entry){keys[k], &extra[k]};
        CHECK_OK(ti_safetensors_write(dst, ent, n + (size_t)n_extra, NULL, 0, &e), &e);
    }
    free(ent);
    ti_state_dict_close(sd);
}

/* Loads "key<TAB>AxBxC<TAB>dtype" lines (tests/fixtures/keys/<name>.tsv) as a spec table. Keys are
 * malloc'd; free with tio_free_spec. Keys matching `skip_prefix` (if not NULL) are left out. */
static inline struct ti_param_spec *tio_load_spec(const char *path, const char *skip_prefix,
                                                  size_t *n) {
    FILE *f = fopen(path, "r");
    *n = 0;
    if (!f) return NULL;
    size_t cap = 2048;
    struct ti_param_spec *s = calloc(cap, sizeof *s);
    char line[1024];
    while (s && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = '\0';
        if (skip_prefix && !strncmp(line, skip_prefix, strlen(skip_prefix))) continue;
        if (*n == cap) break;
        struct ti_param_spec *e = &s[(*n)++];
        e->key = strdup(line);
        char *p = tab + 1;
        e->ndim = 0;
        while (*p && *p != '\t' && e->ndim < 4) {
            e->shape[e->ndim++] = strtoll(p, &p, 10);
            if (*p == 'x') p++;
        }
    }
    fclose(f);
    return s;
}

static inline void tio_free_spec(struct ti_param_spec *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        free((char *)s[i].key);
    free(s);
}

/* Runs a shell command, returns its exit status (or -1). */
static inline int tio_run(const char *cmd) {
    int r = system(cmd);
    if (r == -1 || !WIFEXITED(r)) return -1;
    return WEXITSTATUS(r);
}

/* Runs "exe args" with stdout in dir/out and stderr in dir/err; its exit status (or -1). */
static inline int tio_tool(const char *dir, const char *exe, const char *args) {
    size_t cap = strlen(exe) + strlen(args) + 2 * strlen(dir) + 32;
    char *cmd = malloc(cap);
    if (!cmd) return -1;
    snprintf(cmd, cap, "%s %s >%s/out 2>%s/err", exe, args, dir, dir);
    int rc = tio_run(cmd);
    free(cmd);
    return rc;
}

/* 1 when the file dir/name holds the text `needle`; else 0, and the file's start on stderr. */
static inline int tio_file_has(const char *dir, const char *name, const char *needle) {
    size_t n;
    char *s = tu_read_file(tio_path(dir, name), &n);
    int r = s && strstr(s, needle) != NULL;
    if (!r) fprintf(stderr, "  %s lacks '%s':\n%.3000s\n", name, needle, s ? s : "(unreadable)");
    free(s);
    return r;
}

/* The Python that checks files with torch: $TI_PYTHON, else /usr/bin/python3; NULL (after a SKIP
 * line) when it is not there. */
static inline const char *tio_python(void) {
    const char *py = getenv("TI_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    if (access(py, X_OK) != 0) {
        printf("SKIP: %s not found (set TI_PYTHON, or install Debian's python3-torch)\n", py);
        return NULL;
    }
    return py;
}

/* Runs the Python check `cmd` (exit 77 when torch is missing), removes dir and returns the
 * binary's exit status: TC_SKIP without torch, else tc_finish() with the check's result. */
static inline int tio_python_verdict(const char *cmd, const char *py, const char *dir) {
    int rc = tio_run(cmd);
    tio_rmrf(dir);
    if (rc == TC_SKIP) {
        printf("SKIP: python3-torch is not installed for %s\n", py);
        return TC_SKIP;
    }
    CHECK(rc == 0);
    return tc_finish();
}

#endif /* TI_IO_TEST_UTIL_H */
