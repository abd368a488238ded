/*
 * image_write.c - PNG (with text chunks) and JPEG writers, both through a temporary file in the
 * target's folder that is flushed, fsync'd and renamed into place; on any error the temporary
 * file is removed and the target is untouched.
 *
 * PNG: 8-bit RGB, one IDAT, rows filtered with the usual adaptive heuristic (per row the filter
 * with the smallest sum of |signed residuals|), compressed with zlib (level 6) when the build
 * has it, else with stb_image_write's deflate. CRC-32 is computed here (table, polynomial
 * 0xEDB88320). JPEG: stb_image_write.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define STBI_WRITE_NO_STDIO
#include "stb_image_write.h" /* defines: stbi_write_jpg_to_func, stbi_zlib_compress */

#ifdef TI_HAVE_ZLIB
#include <zlib.h> /* defines: compress2, compressBound */
#else
/* stb_image_write's deflate (declared only in its implementation part); free() releases it */
unsigned char *stbi_zlib_compress(unsigned char *data, int data_len, int *out_len, int quality);
#endif

/* ---- temporary file + rename --------------------------------------------------------------- */

struct outfile {
    FILE *f;
    char *tmp;
    const char *path;
    int failed, err;
};

static int outfile_open(struct outfile *o, const char *path, struct ti_data_err *e) {
    memset(o, 0, sizeof *o);
    o->path = path;
    size_t n = strlen(path);
    o->tmp = malloc(n + 16);
    if (!o->tmp) return TI_DATA_FAIL(e, "%s: out of memory", path);
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmp.XXXXXX", 12);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int er = errno;
        free(o->tmp);
        o->tmp = NULL;
        return TI_DATA_FAIL(e, "%s: cannot create a temporary file beside it: %s", path,
                            strerror(er));
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; images are meant to be shared */
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        int er = errno;
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return TI_DATA_FAIL(e, "%s: %s", path, strerror(er));
    }
    return 0;
}

static void outfile_write(struct outfile *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->f) != n) {
        o->failed = 1;
        o->err = errno;
    }
}

/* Closes and renames (ok) or removes the temporary file. */
static int outfile_close(struct outfile *o, int ok, struct ti_data_err *e) {
    int rc = 0;
    if (ok && !o->failed) {
        if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0) o->failed = 1, o->err = errno;
    }
    if (fclose(o->f) != 0 && !o->failed) o->failed = 1, o->err = errno;
    if (ok && o->failed) {
        rc = TI_DATA_FAIL(e, "%s: write failed: %s", o->path, strerror(o->err));
    } else if (ok && rename(o->tmp, o->path) != 0) {
        rc = TI_DATA_FAIL(e, "%s: cannot rename the temporary file into place: %s", o->path,
                          strerror(errno));
        ok = 0;
    }
    if (!ok || rc) unlink(o->tmp);
    free(o->tmp);
    memset(o, 0, sizeof *o);
    return ok ? rc : -1;
}

/* ---- PNG ----------------------------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static void crc_fill(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}
static void crc_init(void) {
    pthread_once(&crc_once, crc_fill);
}
static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk; the data may come in two parts (keyword block + value) to avoid a copy. */
static void png_chunk(struct outfile *o, const char *type, const void *a, size_t na, const void *b,
                      size_t nb) {
    uint8_t hdr[8];
    put32(hdr, (uint32_t)(na + nb));
    memcpy(hdr + 4, type, 4);
    outfile_write(o, hdr, 8);
    outfile_write(o, a, na);
    outfile_write(o, b, nb);
    uint32_t crc = crc_update(0xFFFFFFFFu, (const uint8_t *)type, 4);
    crc = crc_update(crc, a, na);
    crc = crc_update(crc, b, nb);
    uint8_t c[4];
    put32(c, crc ^ 0xFFFFFFFFu);
    outfile_write(o, c, 4);
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

/* Filters every row (filter byte + residuals) into out: h * (1 + 3w) bytes. */
static void png_filter(uint8_t *out, const struct ti_image *img, uint8_t *cand) {
    size_t stride = (size_t)img->w * 3;
    for (int y = 0; y < img->h; y++) {
        const uint8_t *cur = img->px + (size_t)y * stride;
        const uint8_t *up = y ? cur - stride : NULL;
        long best_sum = -1;
        int best = 0;
        for (int f = 0; f < 5; f++) {
            uint8_t *c = cand + (size_t)f * stride;
            long sum = 0;
            for (size_t i = 0; i < stride; i++) {
                int a = i >= 3 ? cur[i - 3] : 0, b = up ? up[i] : 0;
                int cc = i >= 3 && up ? up[i - 3] : 0, pred;
                switch (f) {
                case 0: pred = 0; break;
                case 1: pred = a; break;
                case 2: pred = b; break;
                case 3: pred = (a + b) >> 1; break;
                default: pred = paeth(a, b, cc); break;
                }
                c[i] = (uint8_t)(cur[i] - pred);
                sum += c[i] < 128 ? c[i] : 256 - c[i];
            }
            if (best_sum < 0 || sum < best_sum) best_sum = sum, best = f;
        }
        uint8_t *dst = out + (size_t)y * (stride + 1);
        dst[0] = (uint8_t)best;
        memcpy(dst + 1, cand + (size_t)best * stride, stride);
    }
}

/* A PNG keyword: 1-79 Latin-1 printable characters (32-126, 161-255), no leading, trailing or
 * consecutive spaces. Our keys come in as UTF-8: accept printable ASCII only. */
static int keyword_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (c < 32 || c > 126 || (c == ' ' && k[i + 1] == ' ')) return 0;
    }
    return 1;
}

static int is_ascii(const char *s) {
    for (; *s; s++) {
        if ((unsigned char)*s > 126 || ((unsigned char)*s < 32 && *s != '\n' && *s != '\t')) {
            return 0;
        }
    }
    return 1;
}

int ti_image_write_png(const struct ti_image *img, const char *path, const char *const *text,
                       struct ti_data_err *e) {
    if (!img || !img->px || img->w < 1 || img->h < 1) {
        return TI_DATA_FAIL(e, "%s: no image to write", path);
    }
    for (size_t i = 0; text && text[i]; i += 2) {
        if (!keyword_ok(text[i])) {
            return TI_DATA_FAIL(e,
                                "%s: PNG text key '%s': expected 1-79 printable ASCII characters "
                                "without leading, trailing or double spaces",
                                path, text[i]);
        }
        if (!text[i + 1])
            return TI_DATA_FAIL(e, "%s: PNG text key '%s' has no value", path, text[i]);
    }
    crc_init();
    size_t stride = (size_t)img->w * 3, raw_n = (size_t)img->h * (stride + 1);
    uint8_t *raw = malloc(raw_n), *cand = malloc(5 * stride), *z = NULL;
    size_t zn = 0;
    if (!raw || !cand) {
        free(raw), free(cand);
        return TI_DATA_FAIL(e, "%s: out of memory", path);
    }
    png_filter(raw, img, cand);
    free(cand);
#ifdef TI_HAVE_ZLIB
    uLongf zcap = compressBound((uLong)raw_n);
    z = malloc(zcap);
    if (z && compress2(z, &zcap, raw, (uLong)raw_n, 6) == Z_OK) {
        zn = zcap;
    } else {
        free(z);
        z = NULL;
    }
#else
    if (raw_n <= 0x7FFFFFFF) {
        int len = 0;
        z = stbi_zlib_compress(raw, (int)raw_n, &len, 8);
        zn = (size_t)len;
    }
#endif
    free(raw);
    if (!z) return TI_DATA_FAIL(e, "%s: PNG compression failed (out of memory?)", path);

    struct outfile o;
    if (outfile_open(&o, path, e)) {
        free(z);
        return -1;
    }
    outfile_write(&o, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13];
    put32(ihdr, (uint32_t)img->w);
    put32(ihdr + 4, (uint32_t)img->h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* colour type: RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    png_chunk(&o, "IHDR", ihdr, 13, NULL, 0);
    for (size_t i = 0; text && text[i]; i += 2) {
        const char *k = text[i], *v = text[i + 1];
        size_t kn = strlen(k);
        if (is_ascii(v)) { /* tEXt: keyword NUL text */
            png_chunk(&o, "tEXt", k, kn + 1, v, strlen(v));
        } else { /* iTXt: keyword NUL, compression flag 0, method 0, "" NUL, "" NUL, UTF-8 */
            uint8_t hdr[80 + 4];
            memcpy(hdr, k, kn + 1);
            memset(hdr + kn + 1, 0, 4);
            png_chunk(&o, "iTXt", hdr, kn + 5, v, strlen(v));
        }
    }
    /* IDAT chunks of at most 1 MiB (the limit some readers apply to one chunk) */
    for (size_t off = 0; off < zn; off += 1u << 20) {
        size_t n = zn - off < (1u << 20) ? zn - off : (1u << 20);
        png_chunk(&o, "IDAT", z + off, n, NULL, 0);
    }
    png_chunk(&o, "IEND", NULL, 0, NULL, 0);
    free(z);
    return outfile_close(&o, 1, e);
}

/* ---- JPEG ---------------------------------------------------------------------------------- */

static void jpeg_sink(void *ctx, void *data, int size) {
    outfile_write(ctx, data, (size_t)size);
}

int ti_image_write_jpeg(const struct ti_image *img, const char *path, int quality,
                        struct ti_data_err *e) {
    if (!img || !img->px || img->w < 1 || img->h < 1) {
        return TI_DATA_FAIL(e, "%s: no image to write", path);
    }
    if (quality < 1 || quality > 100) {
        return TI_DATA_FAIL(e, "%s: JPEG quality %d, expected 1..100", path, quality);
    }
    if (img->w > 65535 || img->h > 65535) {
        return TI_DATA_FAIL(e, "%s: %dx%d is too large for JPEG", path, img->w, img->h);
    }
    struct outfile o;
    if (outfile_open(&o, path, e)) return -1;
    int ok = stbi_write_jpg_to_func(jpeg_sink, &o, img->w, img->h, 3, img->px, quality);
    if (!ok) {
        outfile_close(&o, 0, e);
        return TI_DATA_FAIL(e, "%s: JPEG encoding failed", path);
    }
    return outfile_close(&o, 1, e);
}

int ti_image_write(const struct ti_image *img, const char *path, const char *const *text,
                   struct ti_data_err *e) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        if (!strcasecmp(dot, ".png")) return ti_image_write_png(img, path, text, e);
        if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")) {
            return ti_image_write_jpeg(img, path, TI_JPEG_QUALITY_PIL_DEFAULT, e);
        }
    }
    return TI_DATA_FAIL(e, "%s: unknown image file extension, expected .png, .jpg or .jpeg", path);
}
