/*
 * metrics.c - metrics.h5 / metrics.csv, the loss plot and the progress line (metrics.h).
 */
#include "metrics.h"

#include <fcntl.h>  /* defines: open */
#include <math.h>   /* defines: isfinite, log10, floor */
#include <stdio.h>  /* defines: snprintf, fopen */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: memset, strlen */
#include <time.h>   /* defines: clock_gettime */
#include <unistd.h> /* defines: isatty, fsync, unlink, getpid */

#include "fileio.h" /* defines: ti_outfile, ti_path_is_file */

#ifdef TI_HAVE_HDF5
#include <hdf5.h>
#endif

struct ti_metrics {
    char path[4096];
    int64_t *step;
    double *loss, *lr, *norm;
    size_t n, cap;
    double last_write;
    size_t written; /* rows in the file */
};

double ti_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ti_metrics_have_hdf5(void) {
#ifdef TI_HAVE_HDF5
    return 1;
#else
    return 0;
#endif
}

const char *ti_metrics_file_name(void) {
    return ti_metrics_have_hdf5() ? "metrics.h5" : "metrics.csv";
}

static int grow(struct ti_metrics *m) {
    if (m->n < m->cap) return 1;
    size_t c = m->cap ? 2 * m->cap : 1024;
    int64_t *s = realloc(m->step, c * sizeof *s);
    if (s) m->step = s;
    double *a = realloc(m->loss, c * sizeof *a);
    if (a) m->loss = a;
    double *b = realloc(m->lr, c * sizeof *b);
    if (b) m->lr = b;
    double *d = realloc(m->norm, c * sizeof *d);
    if (d) m->norm = d;
    if (!s || !a || !b || !d) return 0;
    m->cap = c;
    return 1;
}

void ti_metrics_add(struct ti_metrics *m, int64_t step, double loss, double lr, double norm) {
    if (!m || !grow(m)) return;
    m->step[m->n] = step;
    m->loss[m->n] = loss;
    m->lr[m->n] = lr;
    m->norm[m->n] = norm;
    m->n++;
}

size_t ti_metrics_rows(const struct ti_metrics *m) {
    return m ? m->n : 0;
}

/* ---- reading back (resume) ------------------------------------------------------------------ */

#ifdef TI_HAVE_HDF5
static int h5_read_col(hid_t f, const char *name, hid_t type, void *buf, size_t n) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[1] = {0};
    int ok = H5Sget_simple_extent_ndims(sp) == 1 &&
             H5Sget_simple_extent_dims(sp, dims, NULL) == 1 && dims[0] == n;
    if (ok && n) ok = H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    H5Sclose(sp);
    H5Dclose(d);
    return ok ? 0 : -1;
}

static ti_status read_back(struct ti_metrics *m, int64_t keep_below, struct ti_err *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(m->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return ti_error(err, TI_ERR_FORMAT, "%s: not a readable HDF5 file", m->path);
    hid_t d = H5Dopen2(f, "step", H5P_DEFAULT);
    hsize_t dims[1] = {0};
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        H5Dclose(d);
    }
    size_t n = (size_t)dims[0];
    m->n = 0;
    while (m->cap < n)
        if (!grow(m) || (m->n = m->cap, 0)) break;
    m->n = 0;
    if (m->cap < n) {
        H5Fclose(f);
        return ti_error(err, TI_ERR_NOMEM, "%s: out of memory for %zu rows", m->path, n);
    }
    int bad = d < 0 || h5_read_col(f, "step", H5T_NATIVE_INT64, m->step, n) ||
              h5_read_col(f, "loss", H5T_NATIVE_DOUBLE, m->loss, n) ||
              h5_read_col(f, "lr", H5T_NATIVE_DOUBLE, m->lr, n) ||
              h5_read_col(f, "embedding_norm", H5T_NATIVE_DOUBLE, m->norm, n);
    H5Fclose(f);
    if (bad)
        return ti_error(err, TI_ERR_FORMAT,
                        "%s: expected 1-D datasets step, loss, lr, embedding_norm of one length",
                        m->path);
    size_t k = 0;
    while (k < n && m->step[k] < keep_below)
        k++;
    m->n = k;
    return TI_OK;
}
#else
static ti_status read_back(struct ti_metrics *m, int64_t keep_below, struct ti_err *err) {
    FILE *f = fopen(m->path, "r");
    if (!f) return ti_error(err, TI_ERR_IO, "%s: cannot read", m->path);
    char line[512];
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    m->n = 0;
    while (fgets(line, sizeof line, f)) {
        long long s;
        double a, b, c;
        if (sscanf(line, "%lld,%lf,%lf,%lf", &s, &a, &b, &c) != 4) {
            fclose(f);
            return ti_error(err, TI_ERR_FORMAT, "%s: a malformed row '%s'", m->path, line);
        }
        if (s >= keep_below) break;
        ti_metrics_add(m, s, a, b, c);
    }
    fclose(f);
    return TI_OK;
}
#endif

ti_status ti_metrics_open(struct ti_metrics **out, const char *rundir, int64_t keep_below,
                          struct ti_err *err) {
    *out = NULL;
    struct ti_metrics *m = calloc(1, sizeof *m);
    if (!m) return ti_error(err, TI_ERR_NOMEM, "out of memory for the metrics");
    snprintf(m->path, sizeof m->path, "%s/%s", rundir, ti_metrics_file_name());
    if (keep_below >= 0 && ti_path_is_file(m->path)) {
        ti_status st = read_back(m, keep_below, err);
        if (st != TI_OK) {
            ti_metrics_close(m);
            return st;
        }
    }
    m->last_write = ti_now_seconds();
    *out = m;
    return TI_OK;
}

void ti_metrics_close(struct ti_metrics *m) {
    if (!m) return;
    free(m->step);
    free(m->loss);
    free(m->lr);
    free(m->norm);
    free(m);
}

/* ---- writing -------------------------------------------------------------------------------- */

#ifdef TI_HAVE_HDF5
static int h5_write_col(hid_t f, const char *name, hid_t type, const void *buf, size_t n) {
    hsize_t dims[1] = {n}, maxd[1] = {H5S_UNLIMITED}, chunk[1] = {1024};
    hid_t sp = H5Screate_simple(1, dims, maxd);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, chunk);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    int ok = d >= 0;
    if (ok && n) ok = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(sp);
    return ok ? 0 : -1;
}

static ti_status write_file(struct ti_metrics *m, const char *tmp, struct ti_err *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return ti_error(err, TI_ERR_IO, "%s: cannot create", tmp);
    int bad = h5_write_col(f, "step", H5T_NATIVE_INT64, m->step, m->n) ||
              h5_write_col(f, "loss", H5T_NATIVE_DOUBLE, m->loss, m->n) ||
              h5_write_col(f, "lr", H5T_NATIVE_DOUBLE, m->lr, m->n) ||
              h5_write_col(f, "embedding_norm", H5T_NATIVE_DOUBLE, m->norm, m->n);
    if (H5Fclose(f) < 0) bad = 1;
    if (bad) return ti_error(err, TI_ERR_IO, "%s: HDF5 write failed", tmp);
    return TI_OK;
}
#else
static ti_status write_file(struct ti_metrics *m, const char *tmp, struct ti_err *err) {
    FILE *f = fopen(tmp, "w");
    if (!f) return ti_error(err, TI_ERR_IO, "%s: cannot create", tmp);
    fprintf(f, "step,loss,lr,embedding_norm\n");
    for (size_t k = 0; k < m->n; k++)
        fprintf(f, "%lld,%.9g,%.9g,%.9g\n", (long long)m->step[k], m->loss[k], m->lr[k],
                m->norm[k]);
    if (fclose(f) != 0) return ti_error(err, TI_ERR_IO, "%s: write failed", tmp);
    return TI_OK;
}
#endif

ti_status ti_metrics_flush(struct ti_metrics *m, int force, struct ti_err *err) {
    double now = ti_now_seconds();
    if (!force && (now - m->last_write < 2.0 || m->written == m->n)) return TI_OK;
    if (force && m->written == m->n && ti_path_is_file(m->path)) return TI_OK;
    /* the library writes by name: a temporary name in the same folder, fsync, rename */
    char tmp[4200];
    const char *slash = strrchr(m->path, '/');
    size_t dl = slash ? (size_t)(slash - m->path) : 0;
    snprintf(tmp, sizeof tmp, "%.*s%s.%s.tmp-%ld", (int)dl, m->path, slash ? "/" : "",
             ti_metrics_file_name(), (long)getpid());
    ti_status st = write_file(m, tmp, err);
    if (st == TI_OK) {
        int fd = open(tmp, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        if (rename(tmp, m->path) != 0)
            st = ti_error(err, TI_ERR_IO, "%s: cannot rename into place", m->path);
    }
    if (st != TI_OK) {
        unlink(tmp);
        return st;
    }
    m->written = m->n;
    m->last_write = now;
    return TI_OK;
}

/* ---- plot ----------------------------------------------------------------------------------- */

/* 3x5 digits and a few signs, one row per 3 bits (MSB left). */
static const uint8_t glyphs[][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7},
    {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1},
    {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {0, 0, 0, 0, 2}, /* . */
    {0, 0, 7, 0, 0},                                   /* - */
    {5, 5, 2, 5, 5},                                   /* x: unknown */
};

static void put(uint8_t *px, int w, int h, int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t *p = px + 3 * ((size_t)y * (size_t)w + (size_t)x);
    p[0] = r;
    p[1] = g;
    p[2] = b;
}

/* text at (x, y) top-left, scale 2 */
static void text(uint8_t *px, int w, int h, int x, int y, const char *s) {
    for (; *s; s++, x += 8) {
        int gi = *s >= '0' && *s <= '9' ? *s - '0' : *s == '.' ? 10 : *s == '-' ? 11 : 12;
        if (*s == ' ') continue;
        if (*s == 'e') gi = 12;
        for (int r = 0; r < 5; r++)
            for (int c = 0; c < 3; c++)
                if (glyphs[gi][r] >> (2 - c) & 1)
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++)
                            put(px, w, h, x + 2 * c + dx, y + 2 * r + dy, 0, 0, 0);
    }
}

static void line(uint8_t *px, int w, int h, int x0, int y0, int x1, int y1, uint8_t r, uint8_t g,
                 uint8_t b) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        put(px, w, h, x0, y0, r, g, b);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) {
            e += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            e += dx;
            y0 += sy;
        }
    }
}

void ti_metrics_plot(const struct ti_metrics *m, uint8_t *px, int w, int h) {
    memset(px, 255, (size_t)w * (size_t)h * 3);
    const int L = 70, R = w - 12, T = 12, B = h - 30; /* plot box */
    double lo = INFINITY, hi = -INFINITY;
    int64_t s0 = 0, s1 = 1;
    size_t n = m ? m->n : 0;
    for (size_t k = 0; k < n; k++)
        if (isfinite(m->loss[k])) {
            if (m->loss[k] < lo) lo = m->loss[k];
            if (m->loss[k] > hi) hi = m->loss[k];
        }
    if (n) {
        s0 = m->step[0];
        s1 = m->step[n - 1];
    }
    if (s1 <= s0) s1 = s0 + 1;
    if (!(lo <= hi)) {
        lo = 0;
        hi = 1;
    }
    if (hi - lo < 1e-12) {
        hi += 0.5;
        lo -= 0.5;
    }
    /* grid: 4 horizontal lines */
    for (int g = 0; g <= 4; g++) {
        int y = B - (B - T) * g / 4;
        for (int x = L; x <= R; x++)
            put(px, w, h, x, y, 225, 225, 225);
        char lab[32];
        snprintf(lab, sizeof lab, "%.4f", lo + (hi - lo) * g / 4);
        text(px, w, h, 2, y - 5, lab);
    }
    line(px, w, h, L, T, L, B, 0, 0, 0);
    line(px, w, h, L, B, R, B, 0, 0, 0);
    char lab[32];
    snprintf(lab, sizeof lab, "%lld", (long long)s0);
    text(px, w, h, L, B + 8, lab);
    snprintf(lab, sizeof lab, "%lld", (long long)s1);
    text(px, w, h, R - 8 * (int)strlen(lab), B + 8, lab);
#define PX(s) (L + (int)((double)((s)-s0) / (double)(s1 - s0) * (R - L)))
#define PY(v) (B - (int)(((v)-lo) / (hi - lo) * (B - T)))
    /* every step, light blue */
    int px0 = -1, py0 = -1;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(m->loss[k])) continue;
        int x = PX(m->step[k]), y = PY(m->loss[k]);
        if (px0 >= 0)
            line(px, w, h, px0, py0, x, y, 170, 200, 240);
        else
            put(px, w, h, x, y, 170, 200, 240);
        px0 = x;
        py0 = y;
    }
    /* moving average (about 1/20 of the run), dark blue */
    double alpha = n > 20 ? 20.0 / (double)n : 1.0, ema = 0;
    int have = 0;
    px0 = -1;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(m->loss[k])) continue;
        ema = have ? ema + alpha * (m->loss[k] - ema) : m->loss[k];
        have = 1;
        int x = PX(m->step[k]), y = PY(ema);
        if (px0 >= 0) {
            line(px, w, h, px0, py0, x, y, 20, 50, 160);
            line(px, w, h, px0, py0 + 1, x, y + 1, 20, 50, 160);
        }
        px0 = x;
        py0 = y;
    }
#undef PX
#undef PY
}

/* ---- progress ------------------------------------------------------------------------------- */

void ti_progress_init(struct ti_progress *p, FILE *f, int tty, int64_t step0, int64_t total) {
    memset(p, 0, sizeof *p);
    p->f = f;
    p->tty = tty < 0 ? isatty(fileno(f)) : tty;
    p->t0 = ti_now_seconds();
    p->step0 = step0;
    p->total = total;
    p->last_print = -1e9;
}

static void hms(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void ti_progress_update(struct ti_progress *p, int64_t done, double loss) {
    double now = ti_now_seconds();
    int last = done >= p->total;
    if (!last && now - p->last_print < (p->tty ? 0.2 : 10.0)) return;
    p->last_print = now;
    double el = now - p->t0;
    double rate = el > 0 ? (double)(done - p->step0) / el : 0;
    char eta[32];
    hms(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    char buf[200];
    int n = snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  %.2f it/s  ETA %s",
                     (long long)done, (long long)p->total, loss, rate, eta);
    if (p->tty) {
        int pad = p->width > n ? p->width - n : 0;
        fprintf(p->f, "\r%s%*s", buf, pad, "");
        p->width = n;
    } else
        fprintf(p->f, "%s\n", buf);
    fflush(p->f);
}

void ti_progress_break(struct ti_progress *p) {
    if (p->tty && p->width) {
        fputc('\n', p->f);
        fflush(p->f);
        p->width = 0;
    }
}
