/*
 * bench_ckpt_load.c - how long ti takes to load a checkpoint, against reading the file once.
 *
 *   bench_ckpt_load CKPT [--spec KEYS.tsv] [--ema] [--repeat N] [--cold] [--no-prefetch]
 *
 * "read once": open + read() the whole file in 8 MiB chunks, touching every byte (a 64-bit sum).
 * "ti load":   ti_state_dict_open (map the file, parse the pickle in the safe VM, bind storages,
 *              build the sorted key table, EMA selection with --ema) + ti_state_dict_check
 *              against KEYS.tsv + ti_state_dict_prefetch of those tensors (unless
 *              --no-prefetch) + touching every tensor byte with the same sum, which is the
 *              least a model must do to copy its weights.
 * Warm page cache: the file is read once first, then each variant runs N times (min and median
 * reported). --cold also evicts the file's pages before every run with
 * posix_fadvise(POSIX_FADV_DONTNEED) (no root needed; the run reports the resident fraction it
 * achieved), so the disk is in the measurement.
 * Generate a full-size SD v1 layout with scripts/oracle/gen_full_ckpt.py (never committed).
 *
 * Not here: the model's own weight conversion (f32 -> f16/bf16 arenas, uploads to the GPU).
 */
#include <fcntl.h>    /* defines: open, posix_fadvise */
#include <stdio.h>    /* defines: printf, fprintf */
#include <stdlib.h>   /* defines: malloc, free, qsort, atoi */
#include <string.h>   /* defines: strcmp, memcpy */
#include <sys/mman.h> /* defines: mmap, mincore */
#include <sys/stat.h> /* defines: fstat */
#include <time.h>     /* defines: clock_gettime */
#include <unistd.h>   /* defines: read, close */

#include "ckpt.h"
#include "io_test_util.h" /* defines: tio_load_spec, tio_free_spec */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Reads every byte: a sum of 64-bit words (memory-bandwidth bound, vectorised at -O2). */
static uint64_t touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, b + i, 32);
        s0 += w[0], s1 += w[1], s2 += w[2], s3 += w[3];
    }
    for (; i < n; i++)
        s0 += b[i];
    return s0 + s1 + s2 + s3;
}

static void evict(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* Fraction of the file's pages in the page cache. */
static double resident(const char *path) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) return -1;
    size_t len = (size_t)st.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return -1;
    size_t pages = (len + 4095) / 4096, in = 0;
    unsigned char *v = malloc(pages);
    if (v && mincore(m, len, v) == 0)
        for (size_t i = 0; i < pages; i++)
            in += v[i] & 1;
    free(v);
    munmap(m, len);
    return (double)in / (double)pages;
}

static uint64_t sink;
static int prefetch = 1; /* --no-prefetch turns ti_state_dict_prefetch off */

static double read_once(const char *path, uint64_t *bytes) {
    double t0 = now();
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t cap = 8u << 20;
    uint8_t *buf = malloc(cap);
    uint64_t total = 0;
    for (;;) {
        ssize_t k = read(fd, buf, cap);
        if (k <= 0) break;
        sink += touch(buf, (size_t)k);
        total += (uint64_t)k;
    }
    close(fd);
    free(buf);
    *bytes = total;
    return now() - t0;
}

struct load_times {
    double open, check, touch, total;
    uint64_t tensor_bytes;
    size_t tensors;
};

static int ti_load(const char *path, const struct ti_param_spec *spec, size_t n_spec, int ema,
                   struct load_times *lt) {
    struct ti_err err = {0};
    struct ti_state_dict *sd = NULL;
    struct ti_state_dict_opts o = {.use_ema = ema};
    double t0 = now();
    if (ti_state_dict_open(&sd, path, &o, &err) != TI_OK) {
        fprintf(stderr, "bench_ckpt_load: %s\n", err.msg);
        return 0;
    }
    double t1 = now();
    if (spec && ti_state_dict_check(sd, spec, n_spec, "SD v1", &err) != TI_OK) {
        fprintf(stderr, "bench_ckpt_load: %s\n", err.msg);
        ti_state_dict_close(sd);
        return 0;
    }
    if (prefetch) ti_state_dict_prefetch(sd, spec, spec ? n_spec : 0);
    double t2 = now();
    uint64_t bytes = 0;
    /* what a model copies: the spec's tensors (all of them without a spec) */
    size_t n = spec ? n_spec : ti_state_dict_count(sd);
    for (size_t i = 0; i < n; i++) {
        const struct ti_tensor *t =
            spec ? ti_state_dict_find(sd, spec[i].key) : &ti_state_dict_at(sd, i)->t;
        size_t nb = ti_tensor_nbytes(t); /* checkpoint tensors are contiguous */
        sink += touch(t->data, nb);
        bytes += nb;
    }
    double t3 = now();
    ti_state_dict_close(sd);
    double t4 = now();
    *lt = (struct load_times){t1 - t0, t2 - t1, t3 - t2, t4 - t0, bytes, n};
    return 1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void run(const char *path, const struct ti_param_spec *spec, size_t n_spec, int ema,
                int repeat, int cold) {
    double tr[64], tl[64], topen[64], tcheck[64], ttouch[64], res_r = 0, res_l = 0;
    uint64_t file_bytes = 0;
    struct load_times lt = {0};
    if (!cold) {
        read_once(path, &file_bytes); /* warm the cache */
        ti_load(path, spec, n_spec, ema, &lt);
    }
    for (int i = 0; i < repeat; i++) {
        /* alternate the order so neither side always runs first */
        for (int k = 0; k < 2; k++) {
            int do_read = (k == 0) == (i % 2 == 0);
            if (cold) evict(path);
            double r = resident(path);
            if (do_read) {
                res_r += r;
                tr[i] = read_once(path, &file_bytes);
            } else {
                res_l += r;
                if (!ti_load(path, spec, n_spec, ema, &lt)) exit(1);
                tl[i] = lt.total;
                topen[i] = lt.open;
                tcheck[i] = lt.check;
                ttouch[i] = lt.touch;
            }
        }
    }
    double mr = median(tr, repeat), ml = median(tl, repeat);
    qsort(tr, (size_t)repeat, sizeof *tr, cmp_d);
    qsort(tl, (size_t)repeat, sizeof *tl, cmp_d);
    printf("%s page cache (resident before runs: read %.0f%%, ti %.0f%%), %d runs each\n",
           cold ? "cold" : "warm", 100 * res_r / repeat, 100 * res_l / repeat, repeat);
    printf("  read once:  median %7.3f s  min %7.3f s  (%.2f GB/s, %llu bytes)\n", mr, tr[0],
           (double)file_bytes / mr / 1e9, (unsigned long long)file_bytes);
    printf("  ti load:    median %7.3f s  min %7.3f s  (open+parse+table %.3f s, check%s %.4f s, "
           "touch %.3f s; %zu tensors, %llu bytes)\n",
           ml, tl[0], median(topen, repeat), prefetch ? "+prefetch" : "", median(tcheck, repeat),
           median(ttouch, repeat), lt.tensors, (unsigned long long)lt.tensor_bytes);
    printf("  ti load / read once: %.3f (median), %.3f (min)\n", ml / mr, tl[0] / tr[0]);
}

int main(int argc, char **argv) {
    const char *path = NULL, *spec_path = NULL;
    int ema = 0, repeat = 3, cold = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--spec") && i + 1 < argc)
            spec_path = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ema"))
            ema = 1;
        else if (!strcmp(argv[i], "--cold"))
            cold = 1;
        else if (!strcmp(argv[i], "--no-prefetch"))
            prefetch = 0;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else {
            fprintf(stderr, "usage: bench_ckpt_load CKPT [--spec KEYS.tsv] [--ema] [--repeat N] "
                            "[--cold] [--no-prefetch]\n");
            return 2;
        }
    }
    if (!path || repeat < 1 || repeat > 64) {
        fprintf(stderr,
                "usage: bench_ckpt_load CKPT [--spec KEYS.tsv] [--ema] [--repeat N] [--cold]\n");
        return 2;
    }
    size_t n_spec = 0;
    struct ti_param_spec *spec = spec_path ? tio_load_spec(spec_path, NULL, &n_spec) : NULL;
    if (spec_path && !spec) {
        fprintf(stderr, "bench_ckpt_load: cannot read %s\n", spec_path);
        return 1;
    }
    printf("bench_ckpt_load %s%s, spec %s (%zu keys)\n", path, ema ? " (EMA weights)" : "",
           spec_path ? spec_path : "none", n_spec);
    run(path, spec, n_spec, ema, repeat, 0);
    if (cold) run(path, spec, n_spec, ema, repeat, 1);
    printf("(checksum %llu)\n", (unsigned long long)sink);
    tio_free_spec(spec, n_spec);
    return 0;
}
