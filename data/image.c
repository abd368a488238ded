/*
 * image.c - decoding (stb_image; WebP through libwebp and TIFF through libtiff when built with
 * them), EXIF orientation (libexif), alloc/copy/crop/flip, grids and the float CHW conversions.
 * Resizing is in resize.c, the writers in image_write.c.
 *
 * Decoding reads the whole file (bounded by TI_IMAGE_MAX_FILE_BYTES), asks stb_image for the
 * header's dimensions first (stbi_info_from_memory) and refuses sizes over the limits before
 * any pixel buffer exists, then checks a JPEG's marker structure (a truncated JPEG decodes in
 * stb as grey rows; PIL refuses it, and so do we) while picking up its EXIF segment. WebP and
 * TIFF are dispatched on their first bytes to load_webp / load_tiff, which check the canvas /
 * directory size the same way before decoding; every decoder's pixels go through the same
 * alpha-on-white rule and the same orientation code.
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STBI_NO_STDIO
#include "stb_image.h" /* defines: stbi_info_from_memory, stbi_load_from_memory, ... */
#ifdef TI_HAVE_ZLIB
#include <zlib.h> /* defines: z_stream, inflate, crc32 */
#endif

#ifdef TI_HAVE_EXIF
#include <libexif/exif-data.h> /* defines: ExifData, exif_data_*, exif_content_get_entry */
#endif
#ifdef TI_HAVE_WEBP
#include <webp/decode.h> /* defines: WebPDecode, WebPDecoderConfig, WebPGetFeatures */
#include <webp/demux.h>  /* defines: WebPDemux, WebPDemuxGetFrame, WebPDemuxGetChunk */
#endif
#ifdef TI_HAVE_TIFF
#include <tiffio.h> /* defines: TIFFClientOpenExt, TIFFRGBAImage*, TIFFGetField */
#endif

void ti_data_vset_err(struct ti_data_err *e, const char *fmt, va_list ap) {
    if (e) vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

void ti_data_set_err(struct ti_data_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ti_data_vset_err(e, fmt, ap);
    va_end(ap);
}

/* ---- resample names ------------------------------------------------------------------------ */

int ti_resample_parse(enum ti_resample *r, const char *name, struct ti_data_err *e) {
    if (name && (!strcmp(name, "bilinear") || !strcmp(name, "linear"))) {
        *r = TI_RESAMPLE_BILINEAR;
    } else if (name && !strcmp(name, "bicubic")) {
        *r = TI_RESAMPLE_BICUBIC;
    } else if (name && !strcmp(name, "lanczos")) {
        *r = TI_RESAMPLE_LANCZOS;
    } else if (name && !strcmp(name, "nearest")) {
        *r = TI_RESAMPLE_NEAREST;
    } else {
        return TI_DATA_FAIL(e,
                            "interpolation '%s': expected one of linear, bilinear, bicubic, "
                            "lanczos, nearest",
                            name ? name : "(null)");
    }
    return 0;
}

const char *ti_resample_name(enum ti_resample r) {
    switch (r) {
    case TI_RESAMPLE_BILINEAR: return "bilinear";
    case TI_RESAMPLE_BICUBIC: return "bicubic";
    case TI_RESAMPLE_LANCZOS: return "lanczos";
    case TI_RESAMPLE_NEAREST: return "nearest";
    }
    return "?";
}

/* ---- allocation ---------------------------------------------------------------------------- */

static int size_ok(long w, long h) {
    return w >= 1 && h >= 1 && w <= TI_IMAGE_MAX_SIDE && h <= TI_IMAGE_MAX_SIDE &&
           w * h <= TI_IMAGE_MAX_PIXELS;
}

int ti_image_alloc(struct ti_image *img, int w, int h, struct ti_data_err *e) {
    memset(img, 0, sizeof *img);
    if (!size_ok(w, h)) {
        return TI_DATA_FAIL(e, "image size %dx%d: expected 1..%d per side and at most %ld pixels",
                            w, h, TI_IMAGE_MAX_SIDE, (long)TI_IMAGE_MAX_PIXELS);
    }
    img->px = malloc((size_t)w * (size_t)h * 3);
    if (!img->px) return TI_DATA_FAIL(e, "image %dx%d: out of memory", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void ti_image_free(struct ti_image *img) {
    if (!img) return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

int ti_image_copy(struct ti_image *dst, const struct ti_image *src, struct ti_data_err *e) {
    if (ti_image_alloc(dst, src->w, src->h, e)) return -1;
    memcpy(dst->px, src->px, (size_t)src->w * src->h * 3);
    return 0;
}

int ti_image_crop(struct ti_image *dst, const struct ti_image *src, int x, int y, int w, int h,
                  struct ti_data_err *e) {
    memset(dst, 0, sizeof *dst);
    if (x < 0 || y < 0 || w < 1 || h < 1 || x > src->w - w || y > src->h - h) {
        return TI_DATA_FAIL(e, "crop %dx%d at (%d,%d): outside the %dx%d image", w, h, x, y, src->w,
                            src->h);
    }
    if (ti_image_alloc(dst, w, h, e)) return -1;
    for (int r = 0; r < h; r++) {
        memcpy(dst->px + (size_t)r * w * 3, src->px + ((size_t)(y + r) * src->w + x) * 3,
               (size_t)w * 3);
    }
    return 0;
}

int ti_image_center_crop(struct ti_image *dst, const struct ti_image *src, struct ti_data_err *e) {
    int crop = src->h < src->w ? src->h : src->w;
    /* numpy slices img[(h-crop)//2:(h+crop)//2, ...]: the length is always crop */
    return ti_image_crop(dst, src, (src->w - crop) / 2, (src->h - crop) / 2, crop, crop, e);
}

void ti_image_hflip(struct ti_image *img) {
    for (int y = 0; y < img->h; y++) {
        uint8_t *row = img->px + (size_t)y * img->w * 3;
        for (int a = 0, b = img->w - 1; a < b; a++, b--) {
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];
                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
        }
    }
}

/* ---- container signatures ------------------------------------------------------------------ */

static int is_webp(const uint8_t *d, size_t n) {
    return n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4);
}

static int is_tiff(const uint8_t *d, size_t n) {
    return n >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4));
}

/* ---- EXIF orientation ---------------------------------------------------------------------- */

int ti_image_orient(struct ti_image *img, int o, struct ti_data_err *e) {
    if (o < 2 || o > 8) return 0;
    int W = img->w, H = img->h;
    int ow = o >= 5 ? H : W, oh = o >= 5 ? W : H;
    struct ti_image out;
    if (ti_image_alloc(&out, ow, oh, e)) return -1;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy; /* the source pixel that lands at (x, y) */
            switch (o) {
            case 2: sx = W - 1 - x, sy = y; break;         /* mirror left-right */
            case 3: sx = W - 1 - x, sy = H - 1 - y; break; /* rotate 180 */
            case 4: sx = x, sy = H - 1 - y; break;         /* flip top-bottom */
            case 5: sx = y, sy = x; break;                 /* transpose */
            case 6: sx = y, sy = H - 1 - x; break;         /* rotate 90 clockwise */
            case 7: sx = W - 1 - y, sy = H - 1 - x; break; /* transverse */
            default: sx = W - 1 - y, sy = x; break;        /* 8: rotate 90 counter-clockwise */
            }
            memcpy(out.px + ((size_t)y * ow + x) * 3, img->px + ((size_t)sy * W + sx) * 3, 3);
        }
    }
    ti_image_free(img);
    *img = out;
    return 0;
}

int ti_image_exif_supported(void) {
#ifdef TI_HAVE_EXIF
    return 1;
#else
    return 0;
#endif
}

int ti_image_webp_supported(void) {
#ifdef TI_HAVE_WEBP
    return 1;
#else
    return 0;
#endif
}

int ti_image_tiff_supported(void) {
#ifdef TI_HAVE_TIFF
    return 1;
#else
    return 0;
#endif
}

int ti_image_png_checked(void) {
#ifdef TI_HAVE_ZLIB
    return 1;
#else
    return 0;
#endif
}

/* What jpeg_walk finds in a JPEG's segments. */
struct jpeg_segs {
    const uint8_t *exif; /* the first APP1 "Exif\0\0" payload (TIFF header included), or NULL */
    size_t exif_len;
    int comps;             /* the frame header's component count (0: none seen) */
    size_t adobe_xform_at; /* offset of the Adobe APP14 segment's transform byte (0: none) */
};

/* Walks a JPEG's marker segments from SOI: returns 1 when the end-of-image marker is reached,
 * 0 when the data ends first (truncated), -1 for a length field that cannot be right; fills *js
 * (the frame header and Adobe segment from before the first scan). Bytes between segments that
 * are not a marker are skipped as libjpeg does ("extraneous bytes"). */
static int jpeg_walk(const uint8_t *d, size_t n, struct jpeg_segs *js) {
    size_t pos = 2;
    int in_scans = 0;
    memset(js, 0, sizeof *js);
    for (;;) {
        while (pos < n && d[pos] != 0xFF)
            pos++;
        while (pos < n && d[pos] == 0xFF)
            pos++;
        if (pos >= n) return 0;
        int marker = d[pos++];
        if (marker == 0xD9) return 1; /* EOI */
        if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
        if (pos + 2 > n) return 0;
        size_t len = (size_t)d[pos] << 8 | d[pos + 1];
        if (len < 2) return -1;
        if (pos + len > n) return 0;
        const uint8_t *b = d + pos + 2; /* the payload, len - 2 bytes */
        if (marker == 0xE1 && !js->exif && len >= 8 && !memcmp(b, "Exif\0\0", 6)) {
            js->exif = b;
            js->exif_len = len - 2;
        }
        int sof =
            marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
        if (!in_scans && sof && len >= 8) js->comps = b[5];
        if (!in_scans && marker == 0xEE && len >= 14 && !memcmp(b, "Adobe", 5))
            js->adobe_xform_at = (size_t)(b + 11 - d);
        pos += len;
        if (marker == 0xDA) { /* entropy-coded data up to the next marker other than RSTn */
            in_scans = 1;
            while (pos + 1 < n && !(d[pos] == 0xFF && d[pos + 1] != 0x00 &&
                                    !(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7))) {
                pos++;
            }
            if (pos + 1 >= n) return 0;
        }
    }
}

/* A four-component (CMYK) JPEG as libjpeg and PIL read it: without an Adobe APP14 segment
 * libjpeg takes plain CMYK, and PIL always unpacks CMYK with Adobe's inverted convention; an
 * unknown Adobe transform is taken as YCCK. stb_image reads an Adobe transform of 0 as that
 * CMYK and 2 as YCCK, but anything else (no segment at all included) as YCbCr and drops the
 * fourth channel: colours 100-255 levels off. Returns a malloc'd copy with an Adobe segment
 * inserted after SOI (transform 0) or its transform set to 2, *out_n its size; NULL when the
 * file needs nothing (or on no memory: stb then decodes it as it is). js: jpeg_walk's. */
static uint8_t *jpeg_cmyk_for_stb(const uint8_t *d, size_t n, const struct jpeg_segs *js,
                                  size_t *out_n) {
    if (js->comps != 4) return NULL;
    if (js->adobe_xform_at) {
        uint8_t t = d[js->adobe_xform_at];
        if (t == 0 || t == 2) return NULL;
        uint8_t *c = malloc(n);
        if (!c) return NULL;
        memcpy(c, d, n);
        c[js->adobe_xform_at] = 2;
        *out_n = n;
        return c;
    }
    static const uint8_t app14[16] = {0xFF, 0xEE, 0, 14,  'A', 'd', 'o', 'b',
                                      'e',  0,    0, 100, 0,   0,   0,   0};
    uint8_t *c = malloc(n + sizeof app14);
    if (!c) return NULL;
    memcpy(c, d, 2);
    memcpy(c + 2, app14, sizeof app14);
    memcpy(c + 2 + sizeof app14, d + 2, n - 2);
    *out_n = n + sizeof app14;
    return c;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#ifdef TI_HAVE_ZLIB
/* PIL refuses a PNG whose chunks before the image data fail their CRC ("broken PNG file (bad
 * header checksum)") and one whose image data is not a valid zlib stream, its Adler-32 included
 * ("broken data stream"); stb_image checks neither and decodes damaged pixels. The same
 * refusals (IDAT's own CRC and the chunks after it are not checked, as PIL does not). A stream
 * that merely ends early is left to the decoder's "truncated" message. 0 ok, -1 (e set). */
static int png_check(const uint8_t *d, size_t n, const char *name, struct ti_data_err *e) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) return 0; /* no memory to check: stb still decodes */
    static _Thread_local uint8_t out[1 << 16];
    size_t pos = 8;
    int seen_idat = 0, zrc = Z_OK, rc = 0;
    while (pos + 12 <= n && rc == 0) {
        uint32_t clen = be32(d + pos);
        if (clen > n - pos - 12) break;
        const uint8_t *type = d + pos + 4, *body = d + pos + 8;
        if (!memcmp(type, "IDAT", 4)) {
            seen_idat = 1;
            zs.next_in = (Bytef *)body;
            zs.avail_in = clen;
            while (zs.avail_in > 0 && zrc == Z_OK) {
                zs.next_out = out;
                zs.avail_out = sizeof out;
                zrc = inflate(&zs, Z_NO_FLUSH);
                if (zrc == Z_BUF_ERROR) zrc = Z_OK; /* no progress this call: more input next */
                if (zs.avail_out == sizeof out && zs.avail_in > 0 && zrc == Z_OK) break;
            }
            if (zrc == Z_DATA_ERROR)
                rc = TI_DATA_FAIL(e,
                                  "%s: damaged PNG: its image data is not a valid zlib stream "
                                  "(%s); PIL refuses it too (broken data stream)",
                                  name, zs.msg ? zs.msg : "data error");
        } else if (!seen_idat) {
            uint32_t crc = (uint32_t)crc32(crc32(0L, type, 4), body, clen);
            if (crc != be32(body + clen))
                rc = TI_DATA_FAIL(e,
                                  "%s: damaged PNG: chunk '%.4s' fails its CRC check; PIL "
                                  "refuses it too (bad header checksum)",
                                  name, (const char *)type);
        }
        if (!memcmp(type, "IEND", 4)) break;
        pos += 12 + (size_t)clen;
    }
    inflateEnd(&zs);
    return rc;
}
#endif

#ifdef TI_HAVE_EXIF
/* The payload of a PNG's first eXIf chunk (a TIFF header, without "Exif\0\0"), or NULL. The
 * spec wants it before IDAT, but PIL's getexif() also finds one after the image data (it loads
 * the file to the end), so the whole chunk list is searched. */
static const uint8_t *png_exif(const uint8_t *d, size_t n, size_t *len) {
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t clen = be32(d + pos);
        if (clen > n - pos - 12) return NULL;
        const uint8_t *type = d + pos + 4;
        if (!memcmp(type, "eXIf", 4)) {
            *len = clen;
            return d + pos + 8;
        }
        if (!memcmp(type, "IEND", 4)) return NULL;
        pos += 12 + (size_t)clen;
    }
    return NULL;
}

/* Orientation tag of IFD0 (never the thumbnail's IFD1) in an "Exif\0\0" + TIFF block. */
static int exif_block_orientation(const uint8_t *blk, size_t len) {
    if (len > 0xFFFFFFFFu) return 1;
    ExifData *ed = exif_data_new();
    if (!ed) return 1;
    /* no "fixing" of the data (which could add default tags); we only read one tag */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, blk, (unsigned int)len);
    int o = 1;
    ExifEntry *en = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (en && en->data && en->components >= 1) {
        ExifByteOrder bo = exif_data_get_byte_order(ed);
        if (en->format == EXIF_FORMAT_SHORT && en->size >= 2) {
            o = exif_get_short(en->data, bo);
        } else if (en->format == EXIF_FORMAT_LONG && en->size >= 4) {
            o = (int)exif_get_long(en->data, bo);
        }
    }
    exif_data_unref(ed);
    return o >= 1 && o <= 8 ? o : 1;
}

/* Orientation from the payload of a PNG eXIf or WebP EXIF chunk: a TIFF header, or (as some
 * writers store it, and PIL's Exif.load accepts) "Exif\0\0" + TIFF header. */
static int exif_payload_orientation(const uint8_t *p, size_t len) {
    if (len >= 6 && !memcmp(p, "Exif\0\0", 6)) return exif_block_orientation(p, len);
    if (len < 8 || len > (1u << 24)) return 1;
    uint8_t *blk = malloc(len + 6);
    if (!blk) return 1;
    memcpy(blk, "Exif\0\0", 6);
    memcpy(blk + 6, p, len);
    int o = exif_block_orientation(blk, len + 6);
    free(blk);
    return o;
}

#ifdef TI_HAVE_WEBP
/* The payload of a WebP's EXIF chunk (found by the demuxer, as PIL finds it). */
static int webp_exif_orientation(const uint8_t *data, size_t n) {
    WebPData wd = {data, n};
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx) return 1;
    int o = 1;
    WebPChunkIterator ci;
    if (WebPDemuxGetChunk(dmx, "EXIF", 1, &ci)) {
        o = exif_payload_orientation(ci.chunk.bytes, ci.chunk.size);
        WebPDemuxReleaseChunkIterator(&ci);
    }
    WebPDemuxDelete(dmx);
    return o;
}
#endif
#endif

int ti_image_exif_orientation(const uint8_t *data, size_t n) {
#ifdef TI_HAVE_EXIF
    if (n >= 4 && data[0] == 0xFF && data[1] == 0xD8) {
        struct jpeg_segs js;
        jpeg_walk(data, n, &js);
        return js.exif ? exif_block_orientation(js.exif, js.exif_len) : 1;
    }
    if (n >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) {
        size_t len = 0;
        const uint8_t *tiff = png_exif(data, n, &len);
        return tiff ? exif_payload_orientation(tiff, len) : 1;
    }
#ifdef TI_HAVE_WEBP
    if (is_webp(data, n)) return webp_exif_orientation(data, n);
#endif
#else
    (void)data;
    (void)n;
#endif
    return 1;
}

/* ---- decoding ------------------------------------------------------------------------------ */

static const char *format_name(const uint8_t *d, size_t n) {
    if (n >= 2 && d[0] == 0xFF && d[1] == 0xD8) return "JPEG";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "GIF";
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return "BMP";
    return NULL;
}

/* The formats this build decodes, for messages. */
#ifdef TI_HAVE_WEBP
#define TI_FMT_WEBP ", WebP"
#else
#define TI_FMT_WEBP ""
#endif
#ifdef TI_HAVE_TIFF
#define TI_FMT_TIFF ", TIFF"
#else
#define TI_FMT_TIFF ""
#endif
#define TI_FORMATS_READ "JPEG, PNG, BMP, TGA, GIF" TI_FMT_WEBP TI_FMT_TIFF

const char *ti_image_formats(void) {
    return TI_FORMATS_READ;
}

/* Image formats PIL may open but we do not: named in the message so the user knows to convert.
 * WebP and TIFF reach here only in a build without libwebp / libtiff. */
static const char *unsupported_format(const uint8_t *d, size_t n) {
    if (is_webp(d, n)) return "WebP";
    if (n >= 12 && !memcmp(d + 4, "ftyp", 4)) {
        if (!memcmp(d + 8, "avif", 4) || !memcmp(d + 8, "avis", 4)) return "AVIF";
        if (!memcmp(d + 8, "hei", 3) || !memcmp(d + 8, "mif1", 4) || !memcmp(d + 8, "msf1", 4)) {
            return "HEIF/HEIC";
        }
    }
    if (is_tiff(d, n)) return "TIFF";
    if (n >= 4 && !memcmp(d, "\0\0\1\0", 4)) return "ICO";
    if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6') return "PNM/PPM";
    if (n >= 4 && !memcmp(d, "8BPS", 4)) return "Photoshop";
    if (n >= 12 && !memcmp(d, "\0\0\0\x0cjP  ", 8)) return "JPEG 2000";
    return NULL;
}

/* What to add to the refusal of `fmt` when a library would have read it. */
static const char *missing_library_hint(const char *fmt) {
    if (!strcmp(fmt, "WebP")) {
        return "; this build of ti lacks libwebp (Debian libwebp-dev), with which it reads WebP";
    }
    if (!strcmp(fmt, "TIFF")) {
        return "; this build of ti lacks libtiff (Debian libtiff-dev), with which it reads 8-bit "
               "RGB(A) and grey TIFFs";
    }
    return "";
}

static int refuse_too_large(const char *name, const char *fmt, long w, long h,
                            struct ti_data_err *e) {
    return TI_DATA_FAIL(e,
                        "%s: the %s header claims %ldx%ld pixels; refusing images over %d pixels "
                        "per side or %ld pixels in all (damaged or hostile file?)",
                        name, fmt, w, h, TI_IMAGE_MAX_SIDE, (long)TI_IMAGE_MAX_PIXELS);
}

/* n pixels of c interleaved 8-bit channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) -> RGB, with
 * alpha composited on white: out = (c*a + 255*(255-a) + 127) / 255 (integer division). */
static void pixels_to_rgb(uint8_t *dst, const uint8_t *src, size_t n, int c) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src + i * (size_t)c;
        uint8_t *d = dst + i * 3;
        unsigned r, g, b, a = 255;
        if (c <= 2) {
            r = g = b = s[0];
            if (c == 2) a = s[1];
        } else {
            r = s[0], g = s[1], b = s[2];
            if (c == 4) a = s[3];
        }
        if (a != 255) { /* composite on white */
            r = (r * a + 255u * (255u - a) + 127u) / 255u;
            g = (g * a + 255u * (255u - a) + 127u) / 255u;
            b = (b * a + 255u * (255u - a) + 127u) / 255u;
        }
        d[0] = (uint8_t)r, d[1] = (uint8_t)g, d[2] = (uint8_t)b;
    }
}

/* JPEG, PNG, BMP, TGA, GIF through stb_image, behind our header checks. */
static int load_stb(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                    struct ti_data_err *e) {
    const char *fmt = format_name(data, n);
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(data, (int)n, &w, &h, &comp)) {
        /* stb refuses PNG headers over 2^30 bytes of pixels itself ("too large"): say what the
         * header claims, as for the other formats */
        if (fmt && !strcmp(fmt, "PNG") && n >= 24 && !memcmp(data + 12, "IHDR", 4)) {
            uint32_t pw = be32(data + 16), ph = be32(data + 20);
            if (pw == 0 || ph == 0)
                return TI_DATA_FAIL(e, "%s: the PNG header claims %ux%u pixels: an empty image",
                                    name, (unsigned)pw, (unsigned)ph);
            if (!size_ok(pw, ph)) return refuse_too_large(name, "PNG", (long)pw, (long)ph, e);
        }
        if (fmt) {
            return TI_DATA_FAIL(e, "%s: unreadable %s header (%s)", name, fmt,
                                stbi_failure_reason());
        }
        const char *other = unsupported_format(data, n);
        if (other) {
            return TI_DATA_FAIL(e,
                                "%s: a %s image, which ti does not read (" TI_FORMATS_READ
                                "): convert it, e.g. to PNG%s",
                                name, other, missing_library_hint(other));
        }
        return TI_DATA_FAIL(e,
                            "%s: not an image (expected " TI_FORMATS_READ
                            "; the first bytes match none of them)",
                            name);
    }
    if (!fmt) fmt = "TGA";
    if (w == 0 || h == 0)
        return TI_DATA_FAIL(e, "%s: the %s header claims %dx%d pixels: an empty image", name, fmt,
                            w, h);
    if (!size_ok(w, h)) return refuse_too_large(name, fmt, w, h, e);
    struct jpeg_segs js = {0};
    if (!strcmp(fmt, "JPEG")) {
        int st = jpeg_walk(data, n, &js);
        if (st == 0) return TI_DATA_FAIL(e, "%s: truncated JPEG (no end-of-image marker)", name);
        if (st < 0) return TI_DATA_FAIL(e, "%s: damaged JPEG (bad segment length)", name);
    }
#ifdef TI_HAVE_ZLIB
    if (!strcmp(fmt, "PNG") && png_check(data, n, name, e) != 0) return -1;
#endif
    int x = 0, y = 0, c = 0;
    size_t fixed_n = 0;
    uint8_t *fixed = !strcmp(fmt, "JPEG") ? jpeg_cmyk_for_stb(data, n, &js, &fixed_n) : NULL;
    uint8_t *px = fixed && fixed_n <= 0x7FFFFFFF
                      ? stbi_load_from_memory(fixed, (int)fixed_n, &x, &y, &c, 0)
                      : stbi_load_from_memory(data, (int)n, &x, &y, &c, 0);
    free(fixed);
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    if (!px && !strcmp(fmt, "PNG") && (n < 12 || memcmp(data + n - 12, iend, 12)) &&
        n <= 0x7FFFFFFF - 12) {
        /* no IEND chunk (a cut-off writer): PIL decodes what the IDAT chunks hold, stb reads on
         * past the end; so does ti, with the chunk put back */
        uint8_t *whole = malloc(n + 12);
        if (whole) {
            memcpy(whole, data, n);
            memcpy(whole + n, iend, 12);
            px = stbi_load_from_memory(whole, (int)(n + 12), &x, &y, &c, 0);
            free(whole);
        }
    }
    if (!px) {
        const char *why = stbi_failure_reason();
        if (why && !(why[0] >= ' ' && why[0] < 127))
            why = "a chunk the decoder does not know (damaged or truncated file?)";
        if (why && !strcmp(why, "outofdata")) why = "the data ends early (truncated file?)";
        return TI_DATA_FAIL(e, "%s: cannot decode %s: %s", name, fmt, why ? why : "unknown error");
    }
    if (x != w || y != h || c < 1 || c > 4) {
        stbi_image_free(px);
        return TI_DATA_FAIL(e, "%s: decoded %dx%dx%d, the header said %dx%d", name, x, y, c, w, h);
    }
    if (ti_image_alloc(img, w, h, e)) {
        stbi_image_free(px);
        return -1;
    }
    pixels_to_rgb(img->px, px, (size_t)w * h, c);
    stbi_image_free(px);
    return 0;
}

#ifdef TI_HAVE_WEBP
static const char *webp_status_text(VP8StatusCode st) {
    switch (st) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "damaged bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the data ends early (truncated file?)";
    }
    return "unknown error";
}

/* A still or animated WebP (lossy, lossless, with or without alpha) through libwebp: its first
 * frame as PIL 9.4 gets it. PIL reads every WebP with libwebp's animation decoder, whose first
 * frame is the frame's bitstream decoded as straight (not premultiplied) RGBA at the frame's
 * offset on a canvas that starts transparent (the ANIM chunk's background colour is a hint that
 * decoder ignores). We decode that bitstream the same way (WebPDecode, default options: fancy
 * upsampling, no dithering) and composite it, and the canvas it leaves uncovered, on white. The
 * container is parsed and the canvas size checked before any pixel memory exists. */
static int load_webp(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                     struct ti_data_err *e) {
    WebPData wd = {data, n};
    /* the whole file, as PIL's decoder wants it; the partial parse only names the failure */
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx) {
        WebPDemuxState state = WEBP_DEMUX_PARSE_ERROR;
        WebPDemuxDelete(WebPDemuxPartial(&wd, &state));
        if (state == WEBP_DEMUX_PARSE_ERROR)
            return TI_DATA_FAIL(e,
                                "%s: damaged WebP (its RIFF container or image header does not "
                                "parse)",
                                name);
        return TI_DATA_FAIL(e, "%s: truncated WebP (the file ends before its RIFF size says)",
                            name);
    }
    uint32_t cw = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
    uint32_t ch = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
    if (!size_ok(cw, ch)) {
        WebPDemuxDelete(dmx);
        return refuse_too_large(name, "WebP", (long)cw, (long)ch, e);
    }
    WebPIterator it;
    if (!WebPDemuxGetFrame(dmx, 1, &it)) {
        WebPDemuxDelete(dmx);
        return TI_DATA_FAIL(e, "%s: damaged WebP (no image frame)", name);
    }
    /* the frame's bitstream lies in `data`; the demuxer only points into it */
    const uint8_t *bits = it.fragment.bytes;
    size_t nbits = it.fragment.size;
    long fx = it.x_offset, fy = it.y_offset, fw = it.width, fh = it.height;
    WebPDemuxReleaseIterator(&it);
    WebPDemuxDelete(dmx);

    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return TI_DATA_FAIL(e, "%s: libwebp's decoder does not match its headers", name);
    VP8StatusCode st = WebPGetFeatures(bits, nbits, &cfg.input);
    if (st != VP8_STATUS_OK)
        return TI_DATA_FAIL(e, "%s: cannot decode WebP: %s", name, webp_status_text(st));
    if (cfg.input.width != fw || cfg.input.height != fh || fw < 1 || fh < 1 || fx < 0 || fy < 0 ||
        fx + fw > (long)cw || fy + fh > (long)ch) {
        return TI_DATA_FAIL(e,
                            "%s: damaged WebP (a %dx%d bitstream for a %ldx%ld frame at (%ld,%ld) "
                            "on a %ux%u canvas)",
                            name, cfg.input.width, cfg.input.height, fw, fh, fx, fy, (unsigned)cw,
                            (unsigned)ch);
    }
    size_t stride = (size_t)fw * 4, bytes = stride * (size_t)fh;
    uint8_t *rgba = malloc(bytes);
    if (!rgba) return TI_DATA_FAIL(e, "%s: out of memory decoding %ldx%ld WebP", name, fw, fh);
    cfg.output.colorspace = MODE_RGBA;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = rgba;
    cfg.output.u.RGBA.stride = (int)stride;
    cfg.output.u.RGBA.size = bytes;
    st = WebPDecode(bits, nbits, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* external memory: releases nothing of ours */
    if (st != VP8_STATUS_OK) {
        free(rgba);
        return TI_DATA_FAIL(e, "%s: cannot decode WebP: %s", name, webp_status_text(st));
    }
    if (ti_image_alloc(img, (int)cw, (int)ch, e)) {
        free(rgba);
        return -1;
    }
    if (fw != (long)cw || fh != (long)ch) memset(img->px, 255, (size_t)cw * ch * 3);
    for (long y = 0; y < fh; y++) {
        pixels_to_rgb(img->px + ((size_t)(fy + y) * cw + (size_t)fx) * 3, rgba + (size_t)y * stride,
                      (size_t)fw, 4);
    }
    free(rgba);
    return 0;
}
#endif

#ifdef TI_HAVE_TIFF
/* libtiff reads the file from memory through these; its messages go into err (the first error)
 * rather than to stderr. */
struct tiff_src {
    const uint8_t *d;
    toff_t n, pos;
    char err[200];
};

static tmsize_t tiff_read(thandle_t h, void *buf, tmsize_t size) {
    struct tiff_src *s = h;
    if (size <= 0 || s->pos >= s->n) return 0;
    toff_t k = s->n - s->pos < (toff_t)size ? s->n - s->pos : (toff_t)size;
    memcpy(buf, s->d + s->pos, (size_t)k);
    s->pos += k;
    return (tmsize_t)k;
}

static tmsize_t tiff_write(thandle_t h, void *buf, tmsize_t size) {
    (void)h, (void)buf, (void)size;
    return -1;
}

static toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
    struct tiff_src *s = h;
    toff_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->n : 0;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) return (toff_t)-1;
    if (off > UINT64_MAX - base) return (toff_t)-1;
    s->pos = base + off; /* past the end is allowed; reads there return 0 bytes */
    return s->pos;
}

static int tiff_close(thandle_t h) {
    (void)h;
    return 0;
}

static toff_t tiff_size(thandle_t h) {
    return ((struct tiff_src *)h)->n;
}

static int tiff_map(thandle_t h, void **base, toff_t *size) {
    (void)h, (void)base, (void)size;
    return 0;
}

static void tiff_unmap(thandle_t h, void *base, toff_t size) {
    (void)h, (void)base, (void)size;
}

static int tiff_on_error(TIFF *t, void *user, const char *module, const char *fmt, va_list ap) {
    (void)t, (void)module;
    struct tiff_src *s = user;
    if (!s->err[0]) vsnprintf(s->err, sizeof s->err, fmt, ap);
    return 1; /* handled: nothing reaches libtiff's global handler (stderr) */
}

static int tiff_on_warning(TIFF *t, void *user, const char *module, const char *fmt, va_list ap) {
    (void)t, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

/* The first page (directory) of an 8-bit RGB, RGBA or grey TIFF through libtiff, upright: PIL
 * 9.4 applies the TIFF orientation tag when it loads the pixels (TiffImageFile.load_end), so the
 * peer trains on upright TIFFs; we do the same with ti_image_orient. libtiff's RGBA reader does
 * the strips / tiles, planar layouts, compressions and MINISWHITE; it is told the data is
 * already top-left so that it flips nothing itself. Alpha: for unassociated alpha (what PIL
 * writes) libtiff hands back (c*a + 127) / 255, associated alpha is stored that way; on white
 * that is p + 255 - a, the same value as (c*a + 255*(255-a) + 127) / 255 for the other formats.
 * An extra sample marked "unspecified" is not alpha (PIL reads RGBX) and is ignored. Other
 * kinds (16-bit, 1-bit, palette, CMYK, YCbCr, grey + alpha) are refused with what they are. */
static int load_tiff(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                     struct ti_data_err *e) {
    struct tiff_src src = {data, (toff_t)n, 0, {0}};
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) return TI_DATA_FAIL(e, "%s: out of memory opening TIFF", name);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_on_error, &src);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_on_warning, &src);
    /* one strip or tile buffer may hold at most an RGBA image at the pixel limit */
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)TI_IMAGE_MAX_PIXELS * 4);
    /* "m": no memory mapping (the procs above read the caller's buffer) */
    TIFF *tif = TIFFClientOpenExt(name, "rm", &src, tiff_read, tiff_write, tiff_seek, tiff_close,
                                  tiff_size, tiff_map, tiff_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) {
        return TI_DATA_FAIL(e, "%s: damaged TIFF (%s)", name,
                            src.err[0] ? src.err : "its header does not parse");
    }
    int rc = -1;
    uint32_t w = 0, h = 0, *raster = NULL;
    uint16_t bps = 0, spp = 0, photo = 0, fmt = SAMPLEFORMAT_UINT, orient = ORIENTATION_TOPLEFT;
    uint16_t nextra = 0, *extra = NULL;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orient);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo)) {
        rc = TI_DATA_FAIL(e, "%s: damaged TIFF (no PhotometricInterpretation tag)", name);
        goto done;
    }
    if (w == 0 || h == 0) {
        rc = TI_DATA_FAIL(e, "%s: the TIFF header claims %ux%u pixels: an empty image", name,
                          (unsigned)w, (unsigned)h);
        goto done;
    }
    if (!size_ok(w, h)) {
        rc = refuse_too_large(name, "TIFF", (long)w, (long)h, e);
        goto done;
    }
    int grey = (photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE) && spp == 1;
    int rgb = photo == PHOTOMETRIC_RGB && (spp == 3 || spp == 4);
    if (bps != 8 || fmt != SAMPLEFORMAT_UINT || !(grey || rgb)) {
        rc = TI_DATA_FAIL(e,
                          "%s: a TIFF of %u-bit samples, %u per pixel (photometric %u, sample "
                          "format %u), which ti does not read (it reads 8-bit RGB, RGBA and grey "
                          "TIFFs): convert it, e.g. to PNG",
                          name, (unsigned)bps, (unsigned)spp, (unsigned)photo, (unsigned)fmt);
        goto done;
    }
    /* RGB + one extra sample: alpha unless marked unspecified (PIL: RGBX, alpha ignored) */
    int use_alpha = spp == 4 && nextra >= 1 && extra && extra[0] != EXTRASAMPLE_UNSPECIFIED;
    char emsg[1024] = {0};
    TIFFRGBAImage ri;
    if (!TIFFRGBAImageOK(tif, emsg) || !TIFFRGBAImageBegin(&ri, tif, 1, emsg)) {
        rc = TI_DATA_FAIL(e, "%s: cannot decode TIFF: %s", name,
                          emsg[0]      ? emsg
                          : src.err[0] ? src.err
                                       : "unsupported layout");
        goto done;
    }
    ri.orientation = ORIENTATION_TOPLEFT; /* rows as stored; orientation applied below */
    ri.req_orientation = ORIENTATION_TOPLEFT;
    raster = malloc((size_t)w * h * sizeof *raster);
    int got = raster && TIFFRGBAImageGet(&ri, raster, w, h);
    TIFFRGBAImageEnd(&ri);
    if (!raster) {
        rc = TI_DATA_FAIL(e, "%s: out of memory decoding %ux%u TIFF", name, (unsigned)w,
                          (unsigned)h);
        goto done;
    }
    if (!got) {
        rc = TI_DATA_FAIL(e, "%s: cannot decode TIFF: damaged or truncated image data (%s)", name,
                          src.err[0] ? src.err : "libtiff gives no reason");
        goto done;
    }
    if (ti_image_alloc(img, (int)w, (int)h, e)) goto done;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        uint32_t p = raster[i];
        unsigned r = TIFFGetR(p), g = TIFFGetG(p), b = TIFFGetB(p), a = TIFFGetA(p);
        if (use_alpha && a != 255) { /* premultiplied -> on white; clamped for p > a (damaged) */
            r += 255u - a, g += 255u - a, b += 255u - a;
            r = r > 255 ? 255 : r, g = g > 255 ? 255 : g, b = b > 255 ? 255 : b;
        }
        img->px[i * 3] = (uint8_t)r, img->px[i * 3 + 1] = (uint8_t)g,
                    img->px[i * 3 + 2] = (uint8_t)b;
    }
    rc = 0;
    if (orient != ORIENTATION_TOPLEFT && ti_image_orient(img, orient, e)) {
        ti_image_free(img);
        rc = -1;
    }
done:
    free(raster);
    TIFFClose(tif);
    return rc;
}
#endif

/* By the first bytes: WebP and TIFF through their libraries when built with them, everything
 * else (and their refusal messages without them) through stb_image. */
static int load_any(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                    struct ti_data_err *e) {
#ifdef TI_HAVE_WEBP
    if (is_webp(data, n)) return load_webp(img, data, n, name, e);
#endif
#ifdef TI_HAVE_TIFF
    if (is_tiff(data, n)) return load_tiff(img, data, n, name, e);
#endif
    return load_stb(img, data, n, name, e);
}

int ti_image_load_memory(struct ti_image *img, const uint8_t *data, size_t n, const char *name,
                         struct ti_data_err *e) {
    memset(img, 0, sizeof *img);
    if (n == 0) return TI_DATA_FAIL(e, "%s: empty file, expected an image", name);
    if (n > (size_t)TI_IMAGE_MAX_FILE_BYTES || n > (size_t)0x7FFFFFFF) {
        return TI_DATA_FAIL(e, "%s: %zu bytes, more than the %ld an image file may have", name, n,
                            (long)TI_IMAGE_MAX_FILE_BYTES);
    }
    if (load_any(img, data, n, name, e)) {
        ti_image_free(img);
        return -1;
    }
    int o = ti_image_exif_orientation(data, n);
    if (o != 1 && ti_image_orient(img, o, e)) {
        ti_image_free(img);
        return -1;
    }
    return 0;
}

int ti_image_load(struct ti_image *img, const char *path, struct ti_data_err *e) {
    memset(img, 0, sizeof *img);
    /* O_NONBLOCK: opening a FIFO (or a device) must not hang the caller; it is refused below */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return TI_DATA_FAIL(e, "%s: cannot open: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int er = errno;
        close(fd);
        return TI_DATA_FAIL(e, "%s: cannot open: %s", path, strerror(er));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int er = errno;
        fclose(f);
        return TI_DATA_FAIL(e, "%s: cannot stat: %s", path, strerror(er));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return TI_DATA_FAIL(e, "%s: is a directory, expected an image file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return TI_DATA_FAIL(e, "%s: not a regular file, expected an image file", path);
    }
    if (st.st_size == 0) {
        fclose(f);
        return TI_DATA_FAIL(e, "%s: empty file, expected an image", path);
    }
    if (st.st_size > TI_IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return TI_DATA_FAIL(e, "%s: %lld bytes, more than the %ld an image file may have", path,
                            (long long)st.st_size, (long)TI_IMAGE_MAX_FILE_BYTES);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n);
    if (!buf) {
        fclose(f);
        return TI_DATA_FAIL(e, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != n) {
        free(buf);
        return TI_DATA_FAIL(e, "%s: read %zu of %zu bytes%s", path, got, n,
                            rerr ? " (read error)" : " (file shrank while reading)");
    }
    int rc = ti_image_load_memory(img, buf, n, path, e);
    free(buf);
    return rc;
}

/* ---- grid and float conversions ------------------------------------------------------------ */

int ti_image_grid(struct ti_image *dst, const struct ti_image *tiles, int n, int nrow, int pad,
                  uint8_t pad_value, struct ti_data_err *e) {
    memset(dst, 0, sizeof *dst);
    if (n < 1 || nrow < 1 || pad < 0) {
        return TI_DATA_FAIL(e,
                            "image grid: n=%d nrow=%d pad=%d, expected n >= 1, nrow >= 1, "
                            "pad >= 0",
                            n, nrow, pad);
    }
    int tw = tiles[0].w, th = tiles[0].h;
    for (int k = 1; k < n; k++) {
        if (tiles[k].w != tw || tiles[k].h != th) {
            return TI_DATA_FAIL(e, "image grid: tile %d is %dx%d, tile 0 is %dx%d (all equal)", k,
                                tiles[k].w, tiles[k].h, tw, th);
        }
    }
    if (n == 1) return ti_image_copy(dst, &tiles[0], e); /* torchvision: squeeze, no padding */
    int xmaps = nrow < n ? nrow : n;
    int ymaps = (n + xmaps - 1) / xmaps;
    long cw = (long)tw + pad, ch = (long)th + pad;
    long gw = cw * xmaps + pad, gh = ch * ymaps + pad;
    if (gw > TI_IMAGE_GRID_MAX_SIDE || gh > TI_IMAGE_GRID_MAX_SIDE ||
        gw * gh > TI_IMAGE_GRID_MAX_PIXELS) {
        return TI_DATA_FAIL(e,
                            "image grid: %ldx%ld is over the grid limits (%ld per side, %ld "
                            "pixels)",
                            gw, gh, (long)TI_IMAGE_GRID_MAX_SIDE, (long)TI_IMAGE_GRID_MAX_PIXELS);
    }
    /* not ti_image_alloc: a grid may be wider than a decoded image */
    dst->px = malloc((size_t)gw * (size_t)gh * 3);
    if (!dst->px) return TI_DATA_FAIL(e, "image grid %ldx%ld: out of memory", gw, gh);
    dst->w = (int)gw;
    dst->h = (int)gh;
    memset(dst->px, pad_value, (size_t)gw * gh * 3);
    for (int k = 0; k < n; k++) {
        long x0 = (k % xmaps) * cw + pad, y0 = (k / xmaps) * ch + pad;
        for (int r = 0; r < th; r++) {
            memcpy(dst->px + ((size_t)(y0 + r) * gw + x0) * 3, tiles[k].px + (size_t)r * tw * 3,
                   (size_t)tw * 3);
        }
    }
    return 0;
}

int ti_image_from_chw_round(struct ti_image *dst, const float *chw, int w, int h, int round,
                            struct ti_data_err *e) {
    if (ti_image_alloc(dst, w, h, e)) return -1;
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        for (int c = 0; c < 3; c++) {
            float v = (chw[c * plane + i] + 1.0f) / 2.0f; /* torch, float32 */
            if (!(v > 0.0f)) v = 0.0f;                    /* also NaN */
            if (v > 1.0f) v = 1.0f;
            float s = v * 255.0f; /* numpy: float32 array * 255 stays float32 */
            /* .round() is half to even (rintf); astype(uint8) truncates; both <= 255 */
            dst->px[i * 3 + c] = (uint8_t)(round ? rintf(s) : s);
        }
    }
    return 0;
}

int ti_image_from_chw(struct ti_image *dst, const float *chw, int w, int h, struct ti_data_err *e) {
    return ti_image_from_chw_round(dst, chw, w, h, 0, e);
}

void ti_image_to_chw_flipped(const struct ti_image *img, int hflip, float *chw) {
    size_t plane = (size_t)img->w * img->h;
    for (int y = 0; y < img->h; y++) {
        for (int x = 0; x < img->w; x++) {
            int sx = hflip ? img->w - 1 - x : x;
            const uint8_t *p = img->px + ((size_t)y * img->w + sx) * 3;
            size_t o = (size_t)y * img->w + x;
            for (int c = 0; c < 3; c++)
                chw[c * plane + o] = (float)(p[c] / 127.5 - 1.0);
        }
    }
}

void ti_image_to_chw(const struct ti_image *img, float *chw) {
    ti_image_to_chw_flipped(img, 0, chw);
}
