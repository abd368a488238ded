/* fileio.c - mapped input files, atomic output files, CRC-32 (see fileio.h). */
#include "fileio.h"

#include <dirent.h>   /* defines: opendir, readdir */
#include <errno.h>    /* defines: errno */
#include <fcntl.h>    /* defines: open, O_* */
#include <pthread.h>  /* defines: pthread_once */
#include <stdio.h>    /* defines: snprintf */
#include <stdlib.h>   /* defines: malloc, free, mkstemp */
#include <string.h>   /* defines: memcpy, strerror, strrchr */
#include <sys/mman.h> /* defines: mmap, munmap, madvise */
#include <sys/stat.h> /* defines: fstat, stat */
#include <unistd.h>   /* defines: close, write, fsync, unlink, readlink, access */

/* ---- mapped input files -------------------------------------------------------------------- */

ti_status ti_fmap_open(struct ti_fmap *m, const char *path, struct ti_err *err) {
    memset(m, 0, sizeof *m);
    /* O_NONBLOCK: a FIFO given as a file is refused below instead of waiting for a writer (no
     * effect on regular files) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ti_error(err, errno == ENOENT ? TI_ERR_NOT_FOUND : TI_ERR_IO, "cannot open '%s': %s",
                        path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ti_error(err, TI_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return ti_error(err, TI_ERR_IO, "'%s' is a directory, expected a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ti_error(err, TI_ERR_IO, "'%s' is not a regular file", path);
    }
    m->size = (uint64_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        return TI_OK;
    }
    if ((uint64_t)(size_t)m->size != m->size) {
        close(fd);
        return ti_error(err, TI_ERR_IO, "'%s' is too large to map on this platform", path);
    }
    void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps its own reference to the file */
    if (p == MAP_FAILED) {
        m->size = 0;
        return ti_error(err, TI_ERR_IO, "cannot map '%s' (%llu bytes): %s", path,
                        (unsigned long long)st.st_size, strerror(e));
    }
    m->base = p;
    m->data = (const uint8_t *)p;
    return TI_OK;
}

void ti_fmap_close(struct ti_fmap *m) {
    if (!m) return;
    if (m->base) munmap(m->base, (size_t)m->size);
    memset(m, 0, sizeof *m);
}

void ti_prefetch(const void *p, uint64_t n) {
    long page = sysconf(_SC_PAGESIZE);
    if (!p || !n || page <= 0) return;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1);
    uintptr_t end = (uintptr_t)p + (uintptr_t)n;
    (void)madvise((void *)a, (size_t)(end - a), MADV_WILLNEED);
}

/* ---- atomic output files ------------------------------------------------------------------- */

#define OUTFILE_BUF (1u << 20)

int ti_find_beside_tool(const char *rel, const char *const *dirs, size_t n_dirs, char *out,
                        size_t cap) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    for (size_t i = 0; i < n_dirs; i++) {
        int k = snprintf(out, cap, "%s/%s/%s", exe, dirs[i], rel);
        if (k > 0 && (size_t)k < cap && access(out, R_OK) == 0) return 1;
    }
    return 0;
}

char *ti_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The file a write to `path` must replace: a symlink is followed to its target (as open() and
 * torch.save do; renaming onto the link would replace the link itself), up to 16 links; the
 * result (malloc'd) may not exist yet. NULL on a loop or out of memory. */
static char *write_target(const char *path) {
    char *cur = ti_strdup(path);
    for (int hop = 0; cur && hop < 16; hop++) {
        struct stat ls;
        if (lstat(cur, &ls) != 0 || !S_ISLNK(ls.st_mode)) return cur;
        char link[4096];
        ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0) return cur;
        link[n] = 0;
        const char *slash = strrchr(cur, '/');
        size_t dirlen = link[0] != '/' && slash ? (size_t)(slash - cur + 1) : 0;
        char *next = malloc(dirlen + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dirlen);
            memcpy(next + dirlen, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    free(cur);
    return NULL;
}

ti_status ti_outfile_open(struct ti_outfile *f, const char *path_in, struct ti_err *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!path_in || !*path_in) return ti_error(err, TI_ERR_INVALID, "empty output path");
    if (ti_path_is_dir(path_in))
        return ti_error(err, TI_ERR_IO, "output '%s' is a directory, expected a file name",
                        path_in);
    char *target = write_target(path_in);
    if (!target)
        return ti_error(err, TI_ERR_IO, "output '%s': too many levels of symbolic links", path_in);
    /* a device, FIFO or socket is never replaced by a regular file; an existing file keeps its
     * permissions */
    struct stat old;
    int exists = stat(target, &old) == 0;
    if (exists && !S_ISREG(old.st_mode)) {
        ti_status st = ti_error(err, TI_ERR_IO,
                                "output '%s' exists and is not a regular file (a device, FIFO or "
                                "socket); ti writes a temporary file and renames it onto the "
                                "name, which would replace it: give a file name",
                                path_in);
        free(target);
        return st;
    }
    const char *path = target;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(path) + 32;
    f->path = target;
    f->tmp = malloc(n);
    f->buf = malloc(OUTFILE_BUF);
    if (!f->path || !f->tmp || !f->buf) {
        ti_outfile_abort(f);
        return ti_error(err, TI_ERR_NOMEM, "out of memory opening '%s'", path_in);
    }
    /* the temporary name is hidden and in the same folder, so rename() is atomic */
    snprintf(f->tmp, n, "%.*s.%s.tmp-XXXXXX", (int)dirlen, path, base);
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0) {
        int e = errno;
        ti_status st =
            e == ENOENT && dirlen > 0
                ? ti_error(err, TI_ERR_IO, "cannot write '%s': the folder '%.*s' does not exist",
                           path, (int)dirlen, path)
                : ti_error(err, TI_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                           strerror(e));
        free(f->tmp);
        f->tmp = NULL; /* nothing to unlink */
        ti_outfile_abort(f);
        return st;
    }
    (void)fchmod(f->fd, exists ? old.st_mode & 07777 : 0644);
    return TI_OK;
}

static ti_status outfile_flush(struct ti_outfile *f, struct ti_err *err) {
    size_t off = 0;
    while (off < f->used) {
        ssize_t w = write(f->fd, f->buf + off, f->used - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            f->failed = TI_ERR_IO;
            return ti_error(err, TI_ERR_IO, "cannot write '%s': %s", f->path, strerror(errno));
        }
        off += (size_t)w;
    }
    f->used = 0;
    return TI_OK;
}

ti_status ti_outfile_write(struct ti_outfile *f, const void *p, size_t n, struct ti_err *err) {
    if (f->fd < 0) return ti_error(err, TI_ERR_INVALID, "write to a closed output file");
    if (f->failed) return f->failed;
    const uint8_t *src = p;
    f->offset += n;
    while (n) {
        if (f->used == OUTFILE_BUF) TI_TRY(outfile_flush(f, err));
        size_t k = OUTFILE_BUF - f->used;
        if (k > n) k = n;
        memcpy(f->buf + f->used, src, k);
        f->used += k;
        src += k;
        n -= k;
    }
    return TI_OK;
}

ti_status ti_outfile_pad(struct ti_outfile *f, size_t n, struct ti_err *err) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        TI_TRY(ti_outfile_write(f, zeros, k, err));
        n -= k;
    }
    return TI_OK;
}

ti_status ti_outfile_commit(struct ti_outfile *f, struct ti_err *err) {
    ti_status st = TI_OK;
    if (f->fd < 0) return ti_error(err, TI_ERR_INVALID, "commit of a closed output file");
    if (f->failed) {
        st = f->failed;
        goto fail;
    }
    TI_TRY_GOTO(st, outfile_flush(f, err));
    if (fsync(f->fd) != 0) {
        st = ti_error(err, TI_ERR_IO, "cannot sync '%s': %s", f->tmp, strerror(errno));
        goto fail;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        st = ti_error(err, TI_ERR_IO, "cannot close '%s': %s", f->tmp, strerror(errno));
        goto fail;
    }
    f->fd = -1;
    if (rename(f->tmp, f->path) != 0) {
        st = ti_error(err, TI_ERR_IO, "cannot rename '%s' to '%s': %s", f->tmp, f->path,
                      strerror(errno));
        goto fail;
    }
    /* make the rename itself durable */
    {
        const char *slash = strrchr(f->path, '/');
        char dir[4096];
        if (slash)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - f->path + 1), f->path);
        else
            snprintf(dir, sizeof dir, ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    free(f->tmp);
    f->tmp = NULL;
    ti_outfile_abort(f); /* frees the rest; nothing left to unlink */
    return TI_OK;
fail:
    ti_outfile_abort(f);
    return st;
}

void ti_outfile_abort(struct ti_outfile *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    if (f->tmp) unlink(f->tmp);
    free(f->tmp);
    free(f->path);
    free(f->buf);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

ti_status ti_file_write_atomic(const char *path, const void *data, size_t n, struct ti_err *err) {
    struct ti_outfile f;
    TI_TRY(ti_outfile_open(&f, path, err));
    ti_status st = ti_outfile_write(&f, data, n, err);
    if (st != TI_OK) {
        ti_outfile_abort(&f);
        return st;
    }
    return ti_outfile_commit(&f, err);
}

/* ---- CRC-32, slicing by 8 ------------------------------------------------------------------ */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t ti_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c; /* little-endian hosts only (ti targets x86-64 and aarch64) */
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
            crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
            crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ---- paths --------------------------------------------------------------------------------- */

const char *ti_path_stem(const char *path, char *buf, size_t n) {
    if (!n) return buf;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--; /* "dir/" -> "dir" */
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t end = len;
    for (size_t i = len; i > start + 1; i--)
        if (path[i - 1] == '.') {
            end = i - 1;
            break;
        }
    size_t k = end - start;
    if (k >= n) k = n - 1;
    memcpy(buf, path + start, k);
    buf[k] = '\0';
    return buf;
}

int ti_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ti_path_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int ti_path_has_suffix(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && !strcmp(path + n - k, suffix);
}

int ti_path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int ti_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *sub = malloc(n);
        if (!sub) {
            rc = -1;
            break;
        }
        snprintf(sub, n, "%s/%s", path, e->d_name);
        if (ti_remove_tree(sub) != 0) rc = -1;
        free(sub);
    }
    closedir(d);
    if (rc == 0) rc = rmdir(path);
    return rc;
}
