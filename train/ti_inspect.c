/*
 * ti_inspect.c - `ti-inspect FILE [--json]`: what a checkpoint, safetensors file, diffusers
 * folder or embedding file holds.
 *
 * Lists every tensor (key, dtype, shape); with --json also its first 8 values (C order) and
 * its sum in f64, which reads the whole file. For embedding files it adds the format,
 * placeholder strings, token ids, vector counts and widths, name, step and checkpoint fields.
 * Torch files list every tensor in the pickle with its full path (state_dict.model...),
 * diffusers folders list the original (mapped) names.
 *
 * `ti-inspect IMAGE --watermark` instead reads the invisible watermark of the reference txt2img
 * script (data/watermark.h) from an image and prints the recovered bytes.
 *
 * Not here: any conversion (ti-convert), loading into a model (model/io/ckpt.h).
 * Exit status: 0 ok, 1 the file could not be read (the message names it and why), 2 usage.
 */
#include <math.h>   /* defines: isnan, isinf */
#include <stdio.h>  /* defines: printf, fprintf, putchar */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: strcmp, memcpy */

#include "ckpt.h"
#include "cli.h" /* defines: ti_cli_expand */
#include "embedding_io.h"
#include "fileio.h"
#include "safetensors.h"
#include "torchfile.h"
#ifdef TI_HAVE_DATA
#include "image.h"     /* defines: ti_image_load */
#include "watermark.h" /* defines: ti_watermark_decode, TI_WATERMARK_SD_* */
#endif

static void usage(FILE *f) {
    fprintf(f, "usage: ti-inspect FILE [--json] [--allow-unknown-globals]   (-- FILE: a name that\n"
               "       starts with '-')\n"
               "\n"
               "Lists what FILE holds: each tensor's key, dtype and shape. FILE may be a torch\n"
               "checkpoint or embedding (.ckpt, .pt, .pth, .bin; zip or legacy format), a\n"
               ".safetensors file, or a diffusers model folder (unet/, text_encoder/, vae/).\n"
               "For embedding files it also shows the format (a1111, peer, diffusers, kohya),\n"
               "placeholder strings, token ids, vector count and width, name and step, and\n"
               "warns of vectors that hold NaN or infinite values.\n"
               "\n"
               "  --json   machine-readable output; adds each tensor's first 8 values and its\n"
               "           sum (in f64), which reads every byte of the file (sums are null when\n"
               "           overlapping views name far more elements than the file holds)\n"
               "  --allow-unknown-globals\n"
               "           load torch files whose pickle names globals outside ti's list of\n"
               "           what checkpoints and embeddings contain, keeping them inert (never\n"
               "           called); dangerous callables are refused even then\n"
               "  --help   this text\n"
               "\n"
               "ti-inspect never runs code from a file: a pickle that references a dangerous\n"
               "callable (os.system, builtins.eval, ...) is refused with an error naming it, and\n"
               "so is one naming any global real checkpoints do not contain (unless\n"
               "--allow-unknown-globals).\n"
               "Exit status: 0 ok, 1 unreadable or refused file, 2 usage error.\n");
    fprintf(f, "\n"
               "ti-inspect IMAGE --watermark\n"
               "  reads the invisible watermark of the reference txt2img script (imwatermark\n"
               "  'dwtDct', as ti-sample writes it) from IMAGE (PNG, JPEG, ...) and prints the\n"
               "  17 recovered bytes; 'watermark: StableDiffusionV1' when they are the mark,\n"
               "  'watermark: none' otherwise. The mark is fragile (docs/WATERMARK.md): none on\n"
               "  a generated image does not prove it was not marked.\n");
}

/* --json reads at most this many elements per byte of a torch file (+ the slack) */
#define INSPECT_ELEMS_PER_BYTE 4u
#define INSPECT_ELEMS_SLACK    (1ull << 26)

struct item {
    char *key;
    struct ti_tensor t;
};

struct list {
    struct item *v;
    size_t n, cap;
};

static ti_status list_add(struct list *l, const char *key, const struct ti_tensor *t,
                          struct ti_err *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct item *v = realloc(l->v, cap * sizeof *v);
        if (!v) return ti_error(err, TI_ERR_NOMEM, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    size_t n = strlen(key) + 1;
    char *k = malloc(n);
    if (!k) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    memcpy(k, key, n);
    l->v[l->n].key = k;
    l->v[l->n].t = *t;
    l->n++;
    return TI_OK;
}

static ti_status on_tensor(void *ud, const char *path, const struct ti_py *v, struct ti_err *err) {
    return list_add(ud, path, &v->u.tensor.t, err);
}

/* element i (C order) of any CPU tensor, as a double */
static double element(const struct ti_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    const uint8_t *p = (const uint8_t *)t->data + off * (int64_t)ti_dtype_size(t->dtype);
    switch (t->dtype) {
    case TI_DTYPE_F32: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case TI_DTYPE_F64: {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    case TI_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ti_f16_to_f32(h);
    }
    case TI_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return ti_bf16_to_f32(h);
    }
    case TI_DTYPE_I64: {
        int64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    case TI_DTYPE_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case TI_DTYPE_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case TI_DTYPE_I8: return (int8_t)*p;
    default: return *p; /* u8, bool */
    }
}

static double tensor_sum(const struct ti_tensor *t) {
    int64_t n = ti_tensor_numel(t);
    double s = 0;
    if (t->dtype == TI_DTYPE_F32 && ti_tensor_is_contiguous(t)) {
        const float *p = t->data;
        for (int64_t i = 0; i < n; i++)
            s += p[i];
        return s;
    }
    for (int64_t i = 0; i < n; i++)
        s += element(t, i);
    return s;
}

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\')
            printf("\\%c", *q);
        else if (*q < 0x20)
            printf("\\u%04x", *q);
        else
            putchar(*q);
    }
    putchar('"');
}

static void json_num(double v, enum ti_dtype dt) {
    if (isnan(v))
        printf("\"nan\"");
    else if (isinf(v))
        printf(v > 0 ? "\"inf\"" : "\"-inf\"");
    else if (!ti_dtype_is_float(dt))
        printf("%.0f", v);
    else if (dt == TI_DTYPE_F64)
        printf("%.17g", v);
    else
        printf("%.9g", v);
}

/* How many of a term's values are NaN or infinite (a diverged run's file). */
static size_t term_nonfinite(const struct ti_embedding_term *t) {
    size_t k = 0, n = (size_t)t->n_vectors * (size_t)t->dim;
    for (size_t j = 0; j < n; j++)
        k += !isfinite(t->vectors[j]);
    return k;
}

static void print_embedding_json(const struct ti_embedding *e) {
    printf("  \"embedding\": {\"format\": ");
    json_str(ti_embedding_format_name(e->format));
    printf(", \"name\": ");
    if (e->name)
        json_str(e->name);
    else
        printf("null");
    printf(", \"step\": ");
    if (e->step >= 0)
        printf("%lld", (long long)e->step);
    else
        printf("null");
    printf(", \"sd_checkpoint\": ");
    if (e->sd_checkpoint)
        json_str(e->sd_checkpoint);
    else
        printf("null");
    printf(", \"sd_checkpoint_name\": ");
    if (e->sd_checkpoint_name)
        json_str(e->sd_checkpoint_name);
    else
        printf("null");
    printf(", \"dtype\": \"%s\", \"terms\": [", ti_dtype_name(e->file_dtype));
    for (int i = 0; i < e->n_terms; i++) {
        printf("%s{\"placeholder\": ", i ? ", " : "");
        json_str(e->terms[i].placeholder);
        printf(", \"token\": ");
        if (e->terms[i].token >= 0)
            printf("%lld", (long long)e->terms[i].token);
        else
            printf("null");
        printf(", \"n_vectors\": %d, \"dim\": %d, \"nonfinite\": %zu}", e->terms[i].n_vectors,
               e->terms[i].dim, term_nonfinite(&e->terms[i]));
    }
    printf("]},\n");
}

/* ---- --watermark ------------------------------------------------------------------------ */

static int watermark_requested(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--watermark")) return 1;
    return 0;
}

/* ti-inspect IMAGE --watermark: returns the exit status */
static int inspect_watermark(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--watermark")) continue;
        if ((argv[i][0] == '-' && argv[i][1]) || path) {
            fprintf(stderr,
                    "ti-inspect: --watermark takes one IMAGE and no other option, got '%s'\n",
                    argv[i]);
            return 2;
        }
        path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "ti-inspect: --watermark needs an IMAGE\n");
        return 2;
    }
#ifdef TI_HAVE_DATA
    struct ti_image img = {0};
    struct ti_data_err e = {{0}};
    uint8_t b[TI_WATERMARK_SD_LEN];
    if (ti_image_load(&img, path, &e)) {
        fprintf(stderr, "ti-inspect: error: %s\n", e.msg);
        return 1;
    }
    if (ti_watermark_decode(img.px, img.w, img.h, b, TI_WATERMARK_SD_LEN, &e)) {
        fprintf(stderr, "ti-inspect: error: %s: %s\n", path, e.msg);
        ti_image_free(&img);
        return 1;
    }
    int same = 0; /* bits equal to the mark's: about half on an unmarked image */
    for (int i = 0; i < 8 * TI_WATERMARK_SD_LEN; i++)
        same += ((b[i / 8] ^ (uint8_t)TI_WATERMARK_SD_TEXT[i / 8]) >> (7 - i % 8) & 1) == 0;
    printf("image: %s (%dx%d)\nwatermark bytes: ", path, img.w, img.h);
    for (int i = 0; i < TI_WATERMARK_SD_LEN; i++)
        printf("%02x", b[i]);
    printf(" \"");
    for (int i = 0; i < TI_WATERMARK_SD_LEN; i++)
        printf(b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\' ? "%c" : "\\x%02x", b[i]);
    if (same == 8 * TI_WATERMARK_SD_LEN)
        printf("\"\nwatermark: %s\n", TI_WATERMARK_SD_TEXT);
    else
        printf(
            "\"\nwatermark: none (%d of %d bits match \"%s\"; unmarked images match about half)\n",
            same, 8 * TI_WATERMARK_SD_LEN, TI_WATERMARK_SD_TEXT);
    ti_image_free(&img);
    return 0;
#else
    fprintf(stderr,
            "ti-inspect: --watermark: this build has no data/ (stb headers missing), "
            "so it cannot read '%s'\n",
            path);
    return 1;
#endif
}

/* Text from a file goes to the terminal with its control bytes (newlines, ESC sequences) shown
 * as \xNN: a hostile name must not break the listing or drive the terminal. */
static size_t vis_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += *p < 0x20 || *p == 0x7f ? 4 : 1;
    return n;
}

static void put_vis(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

/* put_vis in quotes, or "-" for NULL */
static void put_quoted(const char *s) {
    if (!s) {
        printf("-");
        return;
    }
    putchar('\'');
    put_vis(s);
    putchar('\'');
}

static void print_embedding_text(const struct ti_embedding *e) {
    printf("embedding: %s format, name ", ti_embedding_format_name(e->format));
    put_quoted(e->name ? e->name : "");
    printf(", step ");
    if (e->step >= 0)
        printf("%lld", (long long)e->step);
    else
        printf("-");
    printf(", sd_checkpoint ");
    put_quoted(e->sd_checkpoint);
    printf(", sd_checkpoint_name ");
    put_quoted(e->sd_checkpoint_name);
    printf(", vectors %s on disk\n", ti_dtype_name(e->file_dtype));
    for (int i = 0; i < e->n_terms; i++) {
        printf("  term ");
        put_quoted(e->terms[i].placeholder);
        printf(": token ");
        if (e->terms[i].token >= 0)
            printf("%lld", (long long)e->terms[i].token);
        else
            printf("-");
        printf(", %d vector%s of width %d (%s)\n", e->terms[i].n_vectors,
               e->terms[i].n_vectors == 1 ? "" : "s", e->terms[i].dim,
               ti_embedding_width_name(e->terms[i].dim));
        size_t bad = term_nonfinite(&e->terms[i]);
        if (bad)
            printf("    warning: %zu of its %lld values are NaN or infinite (the run that made it "
                   "diverged): ti-sample, ti-train, ti-merge and ti-convert refuse it\n",
                   bad, (long long)e->terms[i].n_vectors * e->terms[i].dim);
    }
}

int main(int argc, char **argv) {
    if (watermark_requested(argc, argv)) return inspect_watermark(argc, argv);
    const char *path = NULL;
    int json = 0, allow = 0;
    static const char *const names[] = {"--json", "--allow-unknown-globals", "--help", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = ti_cli_expand("ti-inspect", argv[i], names); /* argparse's abbreviations */
        if (!a) return 2;
        if (!strcmp(a, "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--allow-unknown-globals")) {
            allow = 1;
        } else if (!strcmp(argv[i], "--") && i + 1 < argc && !path) {
            path = argv[++i]; /* a FILE that starts with '-' */
            if (i + 1 < argc) {
                fprintf(stderr, "ti-inspect: one FILE expected, got '%s' and '%s'\n", path,
                        argv[i + 1]);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ti-inspect: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "ti-inspect: one FILE expected, got '%s' and '%s'\n", path, argv[i]);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    struct ti_err err = {0};
    struct ti_fmap m = {0};
    struct ti_torchfile *tf = NULL;
    struct ti_safetensors *sf = NULL;
    struct ti_state_dict *sd = NULL;
    struct ti_embedding emb;
    struct list l = {0};
    int have_emb = 0, rc = 1;
    const char *container = "";
    char stem[256], desc[256] = "";
    struct ti_state_dict_opts sdo = {0};
    sdo.allow_unknown_globals = allow;
    ti_embedding_init(&emb);
    ti_path_stem(path, stem, sizeof stem);
    ti_status st;

    if (ti_path_is_dir(path)) {
        container = "diffusers-folder";
        st = ti_state_dict_open(&sd, path, &sdo, &err);
        for (size_t i = 0; st == TI_OK && i < ti_state_dict_count(sd); i++)
            st = list_add(&l, ti_state_dict_at(sd, i)->key, &ti_state_dict_at(sd, i)->t, &err);
        if (st == TI_OK) ti_state_dict_describe(sd, desc, sizeof desc);
    } else if ((st = ti_fmap_open(&m, path, &err)) == TI_OK) {
        if (ti_torchfile_sniff(m.data, m.size) != TI_TORCH_NONE) {
            /* CRC-32 of every record, as the tools that load the file check it (a damaged
             * file must not look good here); skipped above 1 GiB, where it would read gigabytes
             * of weights that are only listed */
            unsigned fl = (allow ? TI_TORCH_ALLOW_UNKNOWN_GLOBALS : 0) |
                          (m.size <= (1ull << 30) ? TI_TORCH_VERIFY_CRC : 0);
            st = ti_torchfile_open_mem(&tf, m.data, m.size, path, fl, &err);
            if (st == TI_OK) {
                container = tf->container == TI_TORCH_ZIP ? "torch-zip" : "torch-legacy";
                st = ti_pickle_walk_tensors(tf->pk, tf->root, on_tensor, &l, &err);
                struct ti_err e2 = {0};
                if (st == TI_OK && ti_embedding_from_torch(&emb, tf, stem, &e2) == TI_OK)
                    have_emb = 1;
            }
        } else if (ti_safetensors_sniff(m.data, m.size)) {
            st = ti_safetensors_open_mem(&sf, m.data, m.size, path, &err);
            if (st == TI_OK) {
                container = "safetensors";
                for (size_t i = 0; st == TI_OK && i < sf->n; i++)
                    st = list_add(&l, sf->tensors[i].name, &sf->tensors[i].t, &err);
                struct ti_err e2 = {0};
                if (st == TI_OK && ti_embedding_from_safetensors(&emb, sf, stem, &e2) == TI_OK)
                    have_emb = 1;
            }
        } else {
            st = ti_error(&err, TI_ERR_FORMAT,
                          "'%s' is not a torch file, a safetensors file or a "
                          "diffusers folder",
                          path);
        }
    }
    if (st != TI_OK) {
        fprintf(stderr, "ti-inspect: error: %s\n", err.msg);
        goto done;
    }
    if (have_emb) {
        free(emb.source);
        emb.source = NULL;
    }
    if ((tf || sf) && !have_emb) { /* a checkpoint: say what it looks like */
        struct ti_err e3 = {0};
        if (ti_state_dict_open(&sd, path, &sdo, &e3) == TI_OK)
            ti_state_dict_describe(sd, desc, sizeof desc);
    }

    uint64_t total = 0, elems = 0; /* saturating: views of one storage may overlap */
    for (size_t i = 0; i < l.n; i++) {
        uint64_t b = ti_tensor_nbytes(&l.v[i].t), e = (uint64_t)ti_tensor_numel(&l.v[i].t);
        total = total > UINT64_MAX - b ? UINT64_MAX : total + b;
        elems = elems > UINT64_MAX - e ? UINT64_MAX : elems + e;
    }
    /* The sums read every element of every view. Views of one torch storage may overlap, so a
     * small file could ask for far more elements than it holds: beyond a bound proportional
     * to the file's size the sums are left out (null) and a note says why. */
    int sums = 1;
    if (json && tf && elems > INSPECT_ELEMS_PER_BYTE * tf->size + INSPECT_ELEMS_SLACK) {
        sums = 0;
        fprintf(stderr,
                "ti-inspect: note: the tensors' views name %llu elements in all, more than a file "
                "of %llu bytes holds (overlapping views of shared storages); \"sum\" is left out\n",
                (unsigned long long)elems, (unsigned long long)tf->size);
    }
    if (json) {
        printf("{\n  \"file\": ");
        json_str(path);
        printf(",\n  \"container\": \"%s\",\n", container);
        if (tf && tf->prefix) {
            printf("  \"archive\": ");
            json_str(tf->prefix);
            printf(",\n");
        }
        if (sf && sf->n_meta) {
            printf("  \"metadata\": {");
            for (size_t i = 0; i < sf->n_meta; i++) {
                printf(i ? ", " : "");
                json_str(sf->meta[2 * i]);
                printf(": ");
                json_str(sf->meta[2 * i + 1]);
            }
            printf("},\n");
        }
        if (desc[0]) {
            printf("  \"looks_like\": ");
            json_str(desc);
            printf(",\n");
        }
        if (have_emb) print_embedding_json(&emb);
        printf("  \"n_tensors\": %zu,\n  \"bytes\": %llu,\n  \"tensors\": [\n", l.n,
               (unsigned long long)total);
        for (size_t i = 0; i < l.n; i++) {
            const struct ti_tensor *t = &l.v[i].t;
            printf("    {\"key\": ");
            json_str(l.v[i].key);
            printf(", \"dtype\": \"%s\", \"shape\": [", ti_dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++)
                printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
            printf("], \"first\": [");
            int64_t n = ti_tensor_numel(t);
            for (int64_t k = 0; k < n && k < 8; k++) {
                printf(k ? ", " : "");
                json_num(element(t, k), t->dtype);
            }
            printf("], \"sum\": ");
            if (sums)
                json_num(tensor_sum(t), TI_DTYPE_F64);
            else
                printf("null");
            printf("}%s\n", i + 1 < l.n ? "," : "");
        }
        printf("  ]\n}\n");
    } else {
        printf("file: %s\n", path);
        printf("container: %s", container);
        if (tf && tf->prefix) {
            printf(" (archive folder ");
            put_quoted(tf->prefix);
            printf(")");
        }
        printf(", %zu tensors, %llu bytes of tensor data\n", l.n, (unsigned long long)total);
        if (desc[0]) printf("looks like: %s\n", desc);
        if (sf)
            for (size_t i = 0; i < sf->n_meta; i++) {
                printf("metadata: ");
                put_vis(sf->meta[2 * i]);
                printf(" = ");
                put_vis(sf->meta[2 * i + 1]);
                printf("\n");
            }
        if (have_emb) print_embedding_text(&emb);
        size_t w = 3;
        for (size_t i = 0; i < l.n; i++)
            if (vis_len(l.v[i].key) > w) w = vis_len(l.v[i].key);
        printf("%-*s  %-5s  %s\n", (int)w, "key", "dtype", "shape");
        for (size_t i = 0; i < l.n; i++) {
            char sh[160];
            put_vis(l.v[i].key);
            printf("%*s  %-5s  %s\n", (int)(w - vis_len(l.v[i].key)), "",
                   ti_dtype_name(l.v[i].t.dtype),
                   ti_shape_str(l.v[i].t.ndim, l.v[i].t.shape, sh, sizeof sh));
        }
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].key);
    free(l.v);
    ti_embedding_free(&emb);
    ti_torchfile_close(tf);
    ti_safetensors_close(sf);
    ti_state_dict_close(sd);
    ti_fmap_close(&m); /* the torch/safetensors views above borrowed this mapping */
    return rc;
}
