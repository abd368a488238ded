/*
 * test_util.h - small helpers the test binaries share: whole-file reads, a file's existence,
 * fresh temporary folders, running a tool with its output captured. Header only (static inline), no
 * library to link; io_test_util.h builds its tio_ helpers on these.
 *
 *   size_t n;
 *   char *s = tu_read_file("out/log.txt", &n);   // NUL-terminated; NULL when unreadable
 *   char err[4096];
 *   int rc = tu_run_capture("ti-sample --help", dir, err, sizeof err);
 */
#ifndef TI_TEST_UTIL_H
#define TI_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* defines: stat */
#include <sys/wait.h> /* defines: WIFEXITED, WEXITSTATUS */

/* The whole file, malloc'ed, with a NUL after its *n bytes (so text can be searched as a
 * string); NULL (and *n = 0) when it cannot be opened or read. */
static inline void *tu_read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    char *p = len >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)len + 1) : NULL;
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (!p) return NULL;
    p[len] = '\0';
    *n = (size_t)len;
    return p;
}

/* Makes a fresh folder $TMPDIR/<name>.XXXXXX ($TMPDIR unset or empty: /tmp) and writes its path
 * into buf. Returns 0, or -1 after saying why on stderr. */
static inline int tu_mkdtemp(char *buf, size_t cap, const char *name) {
    const char *t = getenv("TMPDIR");
    int k = snprintf(buf, cap, "%s/%s.XXXXXX", t && *t ? t : "/tmp", name);
    if (k < 0 || (size_t)k >= cap) {
        fprintf(stderr, "tu_mkdtemp: the path for %s is too long\n", name);
        return -1;
    }
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

static inline int tu_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs the shell command `cmd` with its stdout in dir/stdout.txt and its stderr in
 * dir/stderr.txt; when errbuf is not NULL, the start of stderr goes there (NUL-terminated).
 * Returns the exit status, or -1 when the command did not exit normally. */
static inline int tu_run_capture(const char *cmd, const char *dir, char *errbuf, size_t errcap) {
    size_t cap = strlen(cmd) + 2 * 1024 + 64;
    char *full = malloc(cap);
    char errpath[1024];
    if (!full) return -1;
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    snprintf(full, cap, "%s > %s/stdout.txt 2> %s", cmd, dir, errpath);
    int rc = system(full);
    free(full);
    rc = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (errbuf && errcap > 0) {
        errbuf[0] = '\0';
        FILE *f = fopen(errpath, "r");
        if (f) {
            size_t n = fread(errbuf, 1, errcap - 1, f);
            errbuf[n] = '\0';
            fclose(f);
        }
    }
    return rc;
}

#endif /* TI_TEST_UTIL_H */
