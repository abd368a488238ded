/*
 * test_data_image.c - data/image.h: decoding (formats, alpha, EXIF orientation 1-8, hostile
 * files), PIL-exact resize, crop/flip, PNG/JPEG writers, make_grid layout, CHW conversions.
 *
 * Reference values come from PIL 9.4 (tests/fixtures/data, scripts/oracle/data_fixtures.py) or
 * are written out here by hand; none is produced by the code under test.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "test_common.h"
#include "test_util.h"
#include "image.h"
#include "image_test_util.h"

#define FIX "tests/fixtures/data/"

static char tmpdir[256]; /* a fresh folder for written files, made in main */

static double mean_diff(const struct ti_image *a, const struct ti_image *b) {
    double s = 0;
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++)
        s += abs((int)a->px[i] - (int)b->px[i]);
    return s / (double)n;
}

/* ---- resize against PIL ---------------------------------------------------------------------- */

/* Every case of resize/manifest.txt must equal PIL's output exactly (0 levels): the fixed-point
 * arithmetic is reproduced, not approximated. */
TEST(resize_matches_pil_exactly) {
    FILE *f = fopen(FIX "resize/manifest.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char src[128], filt[32], out[128];
    int w, h, cases = 0, exact = 0;
    while (fscanf(f, "%127s %d %d %31s %127s", src, &w, &h, filt, out) == 5) {
        char p[256];
        struct ti_image s = {0}, want = {0}, got = {0};
        struct ti_data_err e = {{0}};
        enum ti_resample r;
        snprintf(p, sizeof p, FIX "resize/%s", src);
        DCHECK_OK(ti_image_load(&s, p, &e), &e);
        snprintf(p, sizeof p, FIX "resize/%s", out);
        DCHECK_OK(ti_image_load(&want, p, &e), &e);
        DCHECK_OK(ti_resample_parse(&r, filt, &e), &e);
        DCHECK_OK(ti_image_resize(&got, &s, w, h, r, &e), &e);
        int d = got.px && want.px ? image_max_diff(&got, &want) : 999;
        if (d != 0) {
            fprintf(stderr, "  %s -> %dx%d %s: max diff %d (want exact)\n", src, w, h, filt, d);
        }
        exact += d == 0;
        cases++;
        ti_image_free(&s), ti_image_free(&want), ti_image_free(&got);
    }
    fclose(f);
    printf("  resize: %d of %d PIL cases exact\n", exact, cases);
    CHECK(cases >= 60);
    CHECK(exact == cases);
}

TEST(resize_edges) {
    struct ti_data_err e = {{0}};
    struct ti_image a = {0}, b = {0};
    DCHECK_OK(ti_image_alloc(&a, 5, 4, &e), &e);
    for (int i = 0; i < 5 * 4 * 3; i++)
        a.px[i] = (uint8_t)(i * 7);
    /* same size: a copy, as PIL (which returns self.copy()) */
    DCHECK_OK(ti_image_resize(&b, &a, 5, 4, TI_RESAMPLE_LANCZOS, &e), &e);
    CHECK(image_max_diff(&a, &b) == 0);
    ti_image_free(&b);
    CHECK(ti_image_resize(&b, &a, 0, 4, TI_RESAMPLE_BICUBIC, &e) == -1);
    CHECK(strstr(e.msg, "0x4") != NULL);
    CHECK(b.px == NULL);
    enum ti_resample r;
    CHECK(ti_resample_parse(&r, "cubic", &e) == -1 && strstr(e.msg, "'cubic'"));
    DCHECK_OK(ti_resample_parse(&r, "linear", &e), &e);
    CHECK(r == TI_RESAMPLE_BILINEAR);
    ti_image_free(&a);
}

/* ---- formats, alpha, EXIF ------------------------------------------------------------------- */

/* Loads FIX formats/<name> into *got and PIL's decode of it, formats/<name>.expected.png, into
 * *want (a failed load is a failed check and leaves px NULL). */
static void load_with_expected(const char *name, struct ti_image *got, struct ti_image *want) {
    char p[256], q[256];
    struct ti_data_err e = {{0}};
    snprintf(p, sizeof p, FIX "formats/%s", name);
    snprintf(q, sizeof q, FIX "formats/%s.expected.png", name);
    DCHECK_OK(ti_image_load(got, p, &e), &e);
    DCHECK_OK(ti_image_load(want, q, &e), &e);
}

TEST(formats_decode_to_rgb) {
    static const char *const names[] = {"rgba.png",         "la.png",   "grey.png", "palette.png",
                                        "palette_trns.png", "anim.gif", "rgb.bmp",  "rgb.tga",
                                        "rgb_rle.tga",      "rgb16.png"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct ti_image got = {0}, want = {0};
        load_with_expected(names[i], &got, &want);
        int d = got.px && want.px ? image_max_diff(&got, &want) : 999;
        if (d) fprintf(stderr, "  %s: max diff %d\n", names[i], d);
        CHECK(d == 0);
        ti_image_free(&got), ti_image_free(&want);
    }
}

/* JPEGs against PIL's decode (libjpeg-turbo): stb_image has its own IDCT and chroma upsampling,
 * so pixels may differ by a few levels. Measured when written: max 2 levels (4:2:0, progressive,
 * restart markers), 1 (grey, CMYK), 11 at a few 4:2:2 chroma edges; the mean stays below 0.3. */
TEST(jpeg_close_to_pil) {
    /* stb_image's IDCT and YCbCr->RGB differ from libjpeg-turbo's by a level or two; its chroma
     * upsampling is libjpeg's (data/stb_impl.c). jpeg422_odd.jpg has a chroma edge at the right
     * border, where stb's own h2v1 upsampler was >100 levels off (jpeg422.jpg: 11);
     * jpeg420_tiny.jpg (3 px wide) is where libjpeg replicates chroma instead of blending.
     * cmyk_no_adobe.jpg / cmyk_adobe1.jpg: CMYK stb read as YCbCr (255 levels off) until
     * image.c gave it the Adobe transform libjpeg assumes. */
    static const char *const names[] = {
        "jpeg420.jpg", "jpeg422.jpg", "jpeg422_odd.jpg", "jpeg420_tiny.jpg",  "progressive.jpg",
        "restart.jpg", "grey.jpg",    "cmyk.jpg",        "cmyk_no_adobe.jpg", "cmyk_adobe1.jpg"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct ti_image got = {0}, want = {0};
        load_with_expected(names[i], &got, &want);
        int mx = got.px && want.px ? image_max_diff(&got, &want) : 999;
        double md = mx < 999 ? mean_diff(&got, &want) : 999;
        printf("  %s: max %d, mean %.3f levels from PIL\n", names[i], mx, md);
        CHECK(mx <= 3);
        CHECK(md <= 0.05);
        ti_image_free(&got), ti_image_free(&want);
    }
}

/* orient_N.jpg stores the pattern so that applying tag N makes it upright (PIL's exif_transpose
 * checked that when it wrote them). Tolerance: JPEG at quality 95, 4:4:4, flat 16x16 blocks. */
TEST(exif_orientation_1_to_8) {
    if (!ti_image_exif_supported()) {
        TC_SKIP_TEST("built without libexif: orientation is not applied");
        return;
    }
    struct ti_data_err e = {{0}};
    struct ti_image up = {0};
    DCHECK_OK(ti_image_load(&up, FIX "exif/upright.png", &e), &e);
    for (int o = 1; o <= 8; o++) {
        char p[256];
        snprintf(p, sizeof p, FIX "exif/orient_%d.jpg", o);
        FILE *f = fopen(p, "rb");
        uint8_t buf[65536];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f) fclose(f);
        CHECK(ti_image_exif_orientation(buf, n) == o);
        struct ti_image im = {0};
        DCHECK_OK(ti_image_load(&im, p, &e), &e);
        CHECK(im.w == 48 && im.h == 32);
        if (im.w == 48 && im.h == 32) {
            double md = mean_diff(&im, &up);
            int mx = image_max_diff(&im, &up);
            if (md > 2.0 || mx > 40) fprintf(stderr, "  orient %d: mean %.2f max %d\n", o, md, mx);
            CHECK(md <= 2.0);
            CHECK(mx <= 40);
        }
        ti_image_free(&im);
    }
    /* PNG eXIf chunk (lossless: exact), before and after IDAT */
    struct ti_image im = {0};
    DCHECK_OK(ti_image_load(&im, FIX "exif/orient_6.png", &e), &e);
    CHECK(image_max_diff(&im, &up) == 0);
    ti_image_free(&im);
    DCHECK_OK(ti_image_load(&im, FIX "exif/orient_8_late.png", &e), &e);
    CHECK(image_max_diff(&im, &up) == 0);
    ti_image_free(&im);
    ti_image_free(&up);
}

/* The transforms themselves on a 3x2 image of distinct pixels, written out by hand. */
TEST(orient_transforms) {
    /* source (W=3, H=2), pixel value = its label:   a b c
     *                                                d e f */
    static const char src[] = "abcdef";
    static const char *const want[9] = {
        NULL,     "abcdef", "cbafed", "fedcba", "defabc", "adbecf", /* 5 transpose: 2x3 */
        "daebfc",                                                   /* 6 rotate 90 clockwise */
        "fcebda",                                                   /* 7 transverse */
        "cfbead", /* 8 rotate 90 counter-clockwise */
    };
    for (int o = 1; o <= 8; o++) {
        struct ti_data_err e = {{0}};
        struct ti_image im = {0};
        DCHECK_OK(ti_image_alloc(&im, 3, 2, &e), &e);
        for (int i = 0; i < 6; i++)
            memset(im.px + i * 3, src[i], 3);
        DCHECK_OK(ti_image_orient(&im, o, &e), &e);
        CHECK(im.w * im.h == 6);
        CHECK(o < 5 ? (im.w == 3 && im.h == 2) : (im.w == 2 && im.h == 3));
        char got[7] = {0};
        for (int i = 0; i < 6; i++)
            got[i] = (char)im.px[i * 3];
        if (strcmp(got, want[o])) fprintf(stderr, "  orient %d: got %s want %s\n", o, got, want[o]);
        CHECK(!strcmp(got, want[o]));
        ti_image_free(&im);
    }
}

/* ---- hostile files -------------------------------------------------------------------------- */

TEST(hostile_files_refused) {
    CHECK(image_load_fails_with(FIX "hostile/empty.jpg", "empty"));
    CHECK(image_load_fails_with(FIX "hostile/text.png", "not an image"));
    CHECK(image_load_fails_with(FIX "hostile/notes.txt", "not an image"));
    CHECK(image_load_fails_with(FIX "hostile/truncated.jpg", "truncated"));
    CHECK(image_load_fails_with(FIX "hostile/truncated.png", "PNG"));
    CHECK(image_load_fails_with(FIX "hostile/does-not-exist.png", "No such file"));
    /* photo.webp, scan.tif: test_data_webp / test_data_tiff (read or refused by build) */
    CHECK(image_load_fails_with(FIX "hostile/image.ppm", "a PNM/PPM image"));
    CHECK(image_load_fails_with(FIX "hostile", "directory"));
    /* a FIFO without a writer: refused at once, never waited on */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo.png", tmpdir);
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK(image_load_fails_with(fifo, "not a regular file"));
    unlink(fifo);
}

/* A header claiming 60000x60000 (10.8 GB of RGB) is refused from the header alone. Run in a
 * child whose address space is capped at its current size + 1 GiB: an attempt to allocate what
 * the header claims fails there, and the message must be ours ("claims"), not an allocation
 * failure; the child also must answer within 2 s. */
static long vm_size_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * sysconf(_SC_PAGESIZE);
}

static int huge_refused_in_child(const char *path) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        long vm = vm_size_bytes();
        struct rlimit rl = {(rlim_t)vm + (1L << 30), (rlim_t)vm + (1L << 30)};
        if (vm > 0) setrlimit(RLIMIT_AS, &rl);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct ti_data_err e = {{0}};
        struct ti_image im = {0};
        int rc = ti_image_load(&im, path, &e);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        int ok = rc == -1 && strstr(e.msg, "claims 60000x60000") && strstr(e.msg, path) && s < 2;
        if (!ok) fprintf(stderr, "  %s: rc %d in %.3fs: %s\n", path, rc, s, e.msg);
        ssize_t wr = write(fds[1], ok ? "1" : "0", 1);
        _exit(wr == 1 ? 0 : 1);
    }
    close(fds[1]);
    char c = '0';
    ssize_t rd = read(fds[0], &c, 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return rd == 1 && c == '1' && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST(huge_headers_refused_without_allocating) {
    CHECK(huge_refused_in_child(FIX "hostile/huge.png"));
    CHECK(huge_refused_in_child(FIX "hostile/huge.jpg"));
    struct ti_data_err e = {{0}};
    struct ti_image im = {0};
    CHECK(ti_image_alloc(&im, 60000, 60000, &e) == -1 && im.px == NULL);
    CHECK(ti_image_alloc(&im, TI_IMAGE_MAX_SIDE + 1, 1, &e) == -1);
}

/* ---- crop, flip, grid, CHW ------------------------------------------------------------------ */

static void fill_coords(struct ti_image *im) {
    for (int y = 0; y < im->h; y++) {
        for (int x = 0; x < im->w; x++) {
            uint8_t *p = im->px + ((size_t)y * im->w + x) * 3;
            p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = 77;
        }
    }
}

TEST(crop_center_crop_flip) {
    struct ti_data_err e = {{0}};
    struct ti_image a = {0}, c = {0};
    DCHECK_OK(ti_image_alloc(&a, 50, 37, &e), &e);
    fill_coords(&a);
    /* numpy img[(37-37)//2:(37+37)//2, (50-37)//2:(50+37)//2] = rows 0..36, columns 6..42 */
    DCHECK_OK(ti_image_center_crop(&c, &a, &e), &e);
    CHECK(c.w == 37 && c.h == 37);
    CHECK(c.px[0] == 6 && c.px[1] == 0);
    CHECK(c.px[((size_t)36 * 37 + 36) * 3] == 42 && c.px[((size_t)36 * 37 + 36) * 3 + 1] == 36);
    ti_image_free(&c);
    ti_image_free(&a);
    /* tall, odd difference: h=10, w=7: rows (10-7)//2=1 .. (10+7)//2=8 */
    DCHECK_OK(ti_image_alloc(&a, 7, 10, &e), &e);
    fill_coords(&a);
    DCHECK_OK(ti_image_center_crop(&c, &a, &e), &e);
    CHECK(c.w == 7 && c.h == 7 && c.px[0] == 0 && c.px[1] == 1);
    ti_image_free(&c);
    CHECK(ti_image_crop(&c, &a, 1, 4, 7, 7, &e) == -1 && strstr(e.msg, "outside"));
    DCHECK_OK(ti_image_crop(&c, &a, 2, 3, 4, 5, &e), &e);
    CHECK(c.w == 4 && c.h == 5 && c.px[0] == 2 && c.px[1] == 3);
    ti_image_hflip(&c);
    CHECK(c.px[0] == 5 && c.px[1] == 3 && c.px[3] == 4 && c.px[9] == 2);
    ti_image_free(&c);
    ti_image_free(&a);
}

TEST(grid_layout_as_make_grid) {
    struct ti_data_err e = {{0}};
    struct ti_image t[5] = {{0}}, g = {0};
    for (int k = 0; k < 5; k++) {
        DCHECK_OK(ti_image_alloc(&t[k], 3, 2, &e), &e);
        memset(t[k].px, 100 + k, 3 * 2 * 3);
    }
    /* nrow=2: xmaps 2, ymaps 3; width (3+2)*2+2 = 12, height (2+2)*3+2 = 14 */
    DCHECK_OK(ti_image_grid(&g, t, 5, 2, 2, 7, &e), &e);
    CHECK(g.w == 12 && g.h == 14);
    if (g.w == 12 && g.h == 14) {
        int bad = 0;
        for (int y = 0; y < 14; y++) {
            for (int x = 0; x < 12; x++) {
                int want = 7; /* tile k at x in [2+5c, 5+5c), y in [2+4r, 4+4r) */
                int c = (x - 2) / 5, r = (y - 2) / 4;
                if (x >= 2 && y >= 2 && (x - 2) % 5 < 3 && (y - 2) % 4 < 2 && r * 2 + c < 5) {
                    want = 100 + r * 2 + c;
                }
                for (int ch = 0; ch < 3; ch++)
                    bad += g.px[((size_t)y * 12 + x) * 3 + ch] != want;
            }
        }
        CHECK(bad == 0);
    }
    ti_image_free(&g);
    /* nrow larger than n: one row */
    DCHECK_OK(ti_image_grid(&g, t, 3, 8, 1, 0, &e), &e);
    CHECK(g.w == (3 + 1) * 3 + 1 && g.h == (2 + 1) + 1);
    ti_image_free(&g);
    /* one tile: torchvision returns it unpadded */
    DCHECK_OK(ti_image_grid(&g, t, 1, 4, 2, 0, &e), &e);
    CHECK(g.w == 3 && g.h == 2 && g.px[0] == 100);
    ti_image_free(&g);
    t[3].w = 2;
    CHECK(ti_image_grid(&g, t, 5, 2, 2, 0, &e) == -1 && strstr(e.msg, "tile 3"));
    t[3].w = 3;
    for (int k = 0; k < 5; k++)
        ti_image_free(&t[k]);
}

TEST(chw_conversions) {
    struct ti_data_err e = {{0}};
    struct ti_image im = {0}, back = {0};
    DCHECK_OK(ti_image_alloc(&im, 2, 1, &e), &e);
    const uint8_t px[6] = {0, 127, 255, 128, 1, 254};
    memcpy(im.px, px, 6);
    float chw[6];
    ti_image_to_chw(&im, chw);
    /* (3, 1, 2): R = {0, 128}, G = {127, 1}, B = {255, 254}; value = (float)(px / 127.5 - 1) */
    const double want[6] = {-1.0,
                            (double)(float)(128 / 127.5 - 1),
                            (double)(float)(127 / 127.5 - 1),
                            (double)(float)(1 / 127.5 - 1),
                            1.0,
                            (double)(float)(254 / 127.5 - 1)};
    double got[6];
    for (int i = 0; i < 6; i++)
        got[i] = chw[i];
    CHECK_CLOSE(got, want, 6, 0, 0);
    ti_image_to_chw_flipped(&im, 1, chw);
    CHECK(chw[0] == (float)(128 / 127.5 - 1) && chw[1] == -1.0f);
    /* float -> uint8: clamp((x+1)/2, 0, 1) * 255, truncated */
    const float in[6] = {-1.0f, 1.0f, 0.0f, 0.5f, 3.0f, NAN};
    DCHECK_OK(ti_image_from_chw(&back, in, 2, 1, &e), &e);
    /* R = {-1 -> 0, 1 -> 255}, G = {0 -> 127 (127.5), 0.5 -> 191 (191.25)}, B = {3 -> 255, NaN ->
     * 0} */
    const uint8_t wantb[6] = {0, 127, 255, 255, 191, 0};
    CHECK(back.px && !memcmp(back.px, wantb, 6));
    ti_image_free(&back);
    ti_image_free(&im);
}

/* ---- writers -------------------------------------------------------------------------------- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A w x h image of LCG noise from `seed`, its first `smooth` rows a ramp instead. */
static int noise_image(struct ti_image *im, int w, int h, uint32_t seed, int smooth,
                       struct ti_data_err *e) {
    if (ti_image_alloc(im, w, h, e) != 0) return -1;
    uint32_t s = seed;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s = s * 1103515245u + 12345u;
        im->px[i] = (uint8_t)(i < (size_t)w * 3 * smooth ? i * 3 : s >> 24);
    }
    return 0;
}

/* PIL refuses a PNG whose image data is damaged (zlib error or Adler-32 mismatch: "broken data
 * stream") or whose chunks before the data fail their CRC; it does not check IDAT's own CRC.
 * stb_image checks none of them. */
TEST(damaged_png_refused_as_pil) {
    if (!ti_image_png_checked()) {
        printf("  (built without zlib: damaged PNGs are not checked; skipped)\n");
        return;
    }
    struct ti_data_err e = {{0}};
    struct ti_image im = {0}, back = {0};
    DCHECK_OK(noise_image(&im, 40, 30, 777, 0, &e), &e);
    char path[512];
    snprintf(path, sizeof path, "%s/damage.png", tmpdir);
    DCHECK_OK(ti_image_write_png(&im, path, NULL, &e), &e);
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    size_t idat = 0, ihdr = 0;
    for (size_t pos = 8; b && pos + 12 <= n; pos += 12 + rd32(b + pos)) {
        if (!memcmp(b + pos + 4, "IDAT", 4) && !idat) idat = pos;
        if (!memcmp(b + pos + 4, "IHDR", 4)) ihdr = pos;
    }
    CHECK(b && idat > 0 && ihdr == 8);
    if (!b || !idat) {
        free(b);
        ti_image_free(&im);
        return;
    }
    uint32_t len = rd32(b + idat);
    struct {
        size_t at;
        const char *want; /* NULL: loads, as in PIL */
    } cases[] = {
        {idat + 8 + len / 2, "not a valid zlib stream"}, /* a byte of the compressed pixels */
        {idat + 8 + len - 2, "not a valid zlib stream"}, /* the Adler-32 trailer */
        {ihdr + 8 + 13, "chunk 'IHDR' fails its CRC"},   /* IHDR's CRC */
        {idat + 8 + len, NULL},                          /* IDAT's own CRC: PIL skips it */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        b[cases[k].at] ^= 0x10;
        int rc = ti_image_load_memory(&back, b, n, "damage.png", &e);
        int ok = cases[k].want
                     ? rc == -1 && strstr(e.msg, cases[k].want) && strstr(e.msg, "damage.png")
                     : rc == 0 && image_max_diff(&im, &back) == 0;
        if (!ok) fprintf(stderr, "  case %zu: rc %d: %s\n", k, rc, rc ? e.msg : "");
        CHECK(ok);
        ti_image_free(&back);
        b[cases[k].at] ^= 0x10;
    }
    DCHECK_OK(ti_image_load_memory(&back, b, n, "damage.png", &e), &e); /* undamaged */
    CHECK(image_max_diff(&im, &back) == 0);
    ti_image_free(&back);
    /* no IEND chunk (a writer cut off after the data): PIL decodes it whole, so does ti */
    CHECK(n > 12 && !memcmp(b + n - 8, "IEND", 4));
    DCHECK_OK(ti_image_load_memory(&back, b, n - 12, "noiend.png", &e), &e);
    CHECK(image_max_diff(&im, &back) == 0);
    ti_image_free(&back);
    free(b);
    ti_image_free(&im);
}

TEST(png_writer_round_trip_and_text) {
    struct ti_data_err e = {{0}};
    struct ti_image im = {0}, back = {0};
    DCHECK_OK(noise_image(&im, 37, 23, 12345, 10, &e), &e); /* smooth rows, then noise */
    char path[512];
    snprintf(path, sizeof path, "%s/out.png", tmpdir);
    const char *const text[] = {"parameters", "a photo of *, Steps: 50", "prompt",
                                "a photo of \xd7\x90 with \xd7\x91", NULL};
    DCHECK_OK(ti_image_write_png(&im, path, text, &e), &e);
    CHECK(count_entries(tmpdir) == 1); /* no temporary file left */
    DCHECK_OK(ti_image_load(&back, path, &e), &e);
    CHECK(image_max_diff(&im, &back) == 0);
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    CHECK(b && n > 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8));
    int chunks = 0, crc_ok = 1, ihdr = 0, iend = 0, text_ok = 0, itxt_ok = 0;
    for (size_t pos = 8; b && pos + 12 <= n;) {
        uint32_t len = rd32(b + pos);
        if (pos + 12 + len > n) break;
        const uint8_t *type = b + pos + 4, *data = b + pos + 8;
        crc_ok &= crc_bitwise(type, 4 + (size_t)len) == rd32(b + pos + 8 + len);
        if (!memcmp(type, "IHDR", 4)) {
            ihdr = chunks == 0 && len == 13 && rd32(data) == 37 && rd32(data + 4) == 23 &&
                   data[8] == 8 && data[9] == 2;
        }
        if (!memcmp(type, "tEXt", 4)) {
            const char want[] = "parameters\0a photo of *, Steps: 50";
            text_ok = len == sizeof want - 1 && !memcmp(data, want, sizeof want - 1);
        }
        if (!memcmp(type, "iTXt", 4)) {
            const char want[] = "prompt\0\0\0\0\0a photo of \xd7\x90 with \xd7\x91";
            itxt_ok = len == sizeof want - 1 && !memcmp(data, want, sizeof want - 1);
        }
        iend = !memcmp(type, "IEND", 4) && len == 0 && pos + 12 == n;
        chunks++;
        pos += 12 + len;
    }
    CHECK(crc_ok && ihdr && iend && text_ok && itxt_ok);
    free(b);
    ti_image_free(&back);

    /* refused: a bad key, an unwritable place; nothing left behind */
    const char *const badkey[] = {" lead", "x", NULL};
    CHECK(ti_image_write_png(&im, path, badkey, &e) == -1 && strstr(e.msg, "' lead'"));
    CHECK(ti_image_write_png(&im, "/nonexistent-dir/x.png", NULL, &e) == -1 &&
          strstr(e.msg, "/nonexistent-dir/x.png"));
    CHECK(count_entries(tmpdir) == 1);

    /* JPEG: round trip within JPEG error on the smooth rows */
    snprintf(path, sizeof path, "%s/out.jpg", tmpdir);
    DCHECK_OK(ti_image_write_jpeg(&im, path, 95, &e), &e);
    DCHECK_OK(ti_image_load(&back, path, &e), &e);
    CHECK(back.w == 37 && back.h == 23);
    CHECK(ti_image_write_jpeg(&im, path, 0, &e) == -1 && strstr(e.msg, "quality 0"));
    CHECK(count_entries(tmpdir) == 2);
    /* by extension: .JPEG is a JPEG (FF D8), .Png a PNG, .gif refused */
    char p2[512];
    snprintf(p2, sizeof p2, "%s/by_ext.JPEG", tmpdir);
    DCHECK_OK(ti_image_write(&im, p2, NULL, &e), &e);
    b = read_all(p2, &n);
    CHECK(b && n > 2 && b[0] == 0xFF && b[1] == 0xD8);
    free(b);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s/by_ext.Png", tmpdir);
    DCHECK_OK(ti_image_write(&im, p2, text, &e), &e);
    b = read_all(p2, &n);
    CHECK(b && n > 8 && !memcmp(b, "\x89PNG", 4));
    free(b);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s/by_ext.gif", tmpdir);
    CHECK(ti_image_write(&im, p2, NULL, &e) == -1 && strstr(e.msg, "by_ext.gif"));
    CHECK(count_entries(tmpdir) == 2);
    ti_image_free(&back);
    ti_image_free(&im);
    unlink(path);
    snprintf(path, sizeof path, "%s/out.png", tmpdir);
    unlink(path);
}

int main(void) {
    if (tu_mkdtemp(tmpdir, sizeof tmpdir, "ti_test_data_image") != 0) return 1;
    RUN(resize_matches_pil_exactly);
    RUN(resize_edges);
    RUN(formats_decode_to_rgb);
    RUN(jpeg_close_to_pil);
    RUN(exif_orientation_1_to_8);
    RUN(orient_transforms);
    RUN(hostile_files_refused);
    RUN(huge_headers_refused_without_allocating);
    RUN(crop_center_crop_flip);
    RUN(grid_layout_as_make_grid);
    RUN(chw_conversions);
    RUN(png_writer_round_trip_and_text);
    RUN(damaged_png_refused_as_pil);
    rmdir(tmpdir);
    return tc_finish();
}
