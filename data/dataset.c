/*
 * dataset.c - the peer's PersonalizedBase: folder listing, one-time preparation of each image,
 * captions from the templates and flipped CHW examples. Contract and the differences from the
 * peer: dataset.h.
 */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "templates.h"

struct ti_dataset {
    struct ti_dataset_opts o;      /* strings below are our own copies */
    char *root, *placeholder, *ph; /* ph: "<coarse> <placeholder>" or the placeholder */
    int n;
    char **paths;
    struct ti_image *imgs;
};

void ti_dataset_opts_default(struct ti_dataset_opts *o) {
    memset(o, 0, sizeof *o);
    o->size = 0;
    o->interp = TI_RESAMPLE_BICUBIC;
    o->center_crop = 0;
    o->flip_p = 0.5;
    o->repeats = 100;
    o->is_train = 1;
    o->placeholder = "*";
    o->per_image_tokens = 0;
    o->mixing_prob = 0.25;
    o->coarse_class_text = NULL;
    o->style = 0;
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void warnf(ti_data_warn_fn warn, void *user, const char *fmt, const char *a) {
    if (!warn) return;
    char msg[640];
    snprintf(msg, sizeof msg, fmt, a);
    warn(user, msg);
}

void ti_dataset_close(struct ti_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) {
        free(ds->paths[i]);
        ti_image_free(&ds->imgs[i]);
    }
    free(ds->paths);
    free(ds->imgs);
    free(ds->root);
    free(ds->placeholder);
    free(ds->ph);
    free(ds);
}

/* root's entry names, sorted, hidden ones left out; *count set. */
static int list_names(char ***names_out, int *count, const char *root, struct ti_data_err *e) {
    *names_out = NULL;
    *count = 0;
    struct stat st;
    if (stat(root, &st) != 0) {
        return TI_DATA_FAIL(e, "data_root '%s': %s (expected a folder of training images)", root,
                            strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        return TI_DATA_FAIL(e, "data_root '%s': not a folder (expected a folder of images)", root);
    }
    DIR *d = opendir(root);
    if (!d) return TI_DATA_FAIL(e, "data_root '%s': cannot open: %s", root, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue; /* ., .., .DS_Store, .ipynb_checkpoints, ... */
        if (n == cap) {
            int nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, (size_t)nc * sizeof *nn);
            if (!nn) goto oom;
            names = nn, cap = nc;
        }
        if (!(names[n] = dupstr(de->d_name))) goto oom;
        n++;
    }
    closedir(d);
    /* the peer takes os.listdir's (filesystem) order; sorted here for reproducible runs */
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_names);
    *names_out = names;
    *count = n;
    return 0;
oom:
    closedir(d);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return TI_DATA_FAIL(e, "data_root '%s': out of memory listing it", root);
}

/* decode + center crop + resize, the peer's __getitem__ steps 1, 3 and 4 */
static int prepare(struct ti_image *out, const char *path, const struct ti_dataset_opts *o,
                   struct ti_data_err *e) {
    struct ti_image a = {0}, b = {0};
    if (ti_image_load(&a, path, e)) return -1;
    if (o->center_crop) {
        if (ti_image_center_crop(&b, &a, e)) goto fail;
        ti_image_free(&a);
        a = b;
        memset(&b, 0, sizeof b);
    }
    if (o->size > 0) {
        if (ti_image_resize(&b, &a, o->size, o->size, o->interp, e)) {
            char why[512];
            snprintf(why, sizeof why, "%s", e->msg);
            ti_data_set_err(e, "%s: %s", path, why);
            goto fail;
        }
        ti_image_free(&a);
        a = b;
    }
    *out = a;
    return 0;
fail:
    ti_image_free(&a);
    ti_image_free(&b);
    return -1;
}

int ti_dataset_open(struct ti_dataset **ds_out, const struct ti_dataset_opts *o,
                    ti_data_warn_fn warn, void *user, struct ti_data_err *e) {
    *ds_out = NULL;
    if (!o || !o->root || !o->root[0]) return TI_DATA_FAIL(e, "dataset: data_root is not set");
    if (o->size < 0 || o->size > TI_IMAGE_MAX_SIDE) {
        return TI_DATA_FAIL(e, "dataset '%s': size %d, expected 0 (keep) or 1..%d", o->root,
                            o->size, TI_IMAGE_MAX_SIDE);
    }
    if (o->interp != TI_RESAMPLE_BILINEAR && o->interp != TI_RESAMPLE_BICUBIC &&
        o->interp != TI_RESAMPLE_LANCZOS && o->interp != TI_RESAMPLE_NEAREST) {
        return TI_DATA_FAIL(e, "dataset '%s': unknown interpolation %d", o->root, (int)o->interp);
    }
    if (o->is_train && o->repeats < 1) {
        return TI_DATA_FAIL(e, "dataset '%s': repeats %d, expected >= 1", o->root, o->repeats);
    }
    if (!isfinite(o->flip_p) || !isfinite(o->mixing_prob)) {
        return TI_DATA_FAIL(e, "dataset '%s': flip_p and mixing_prob must be finite", o->root);
    }
    struct ti_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return TI_DATA_FAIL(e, "dataset '%s': out of memory", o->root);
    ds->o = *o;
    const char *ph = o->placeholder ? o->placeholder : "*";
    ds->root = dupstr(o->root);
    ds->placeholder = dupstr(ph);
    if (o->coarse_class_text && o->coarse_class_text[0]) { /* Python: `if coarse_class_text:` */
        size_t n = strlen(o->coarse_class_text) + 1 + strlen(ph) + 1;
        ds->ph = malloc(n);
        if (ds->ph) snprintf(ds->ph, n, "%s %s", o->coarse_class_text, ph);
    } else {
        ds->ph = dupstr(ph);
    }
    if (!ds->root || !ds->placeholder || !ds->ph) {
        ti_dataset_close(ds);
        return TI_DATA_FAIL(e, "dataset '%s': out of memory", o->root);
    }
    ds->o.root = ds->root;
    ds->o.placeholder = ds->placeholder;
    ds->o.coarse_class_text = NULL; /* folded into ds->ph */

    char **names = NULL;
    int nn = 0;
    if (list_names(&names, &nn, ds->root, e)) {
        ti_dataset_close(ds);
        return -1;
    }
    if (nn == 0) {
        ti_dataset_close(ds);
        return TI_DATA_FAIL(e,
                            "data_root '%s' has no files (hidden ones do not count): expected "
                            "the training images",
                            o->root);
    }
    ds->paths = calloc((size_t)nn, sizeof *ds->paths);
    ds->imgs = calloc((size_t)nn, sizeof *ds->imgs);
    if (!ds->paths || !ds->imgs) {
        for (int i = 0; i < nn; i++)
            free(names[i]);
        free(names);
        ti_dataset_close(ds);
        return TI_DATA_FAIL(e, "dataset '%s': out of memory", o->root);
    }
    size_t rl = strlen(ds->root);
    int slash = rl > 0 && ds->root[rl - 1] == '/';
    char first_reason[512] = "";
    int skipped = 0, dirs = 0;
    for (int i = 0; i < nn; i++) {
        size_t pl = rl + 1 + strlen(names[i]) + 1;
        char *path = malloc(pl);
        if (!path) {
            ti_data_set_err(e, "dataset '%s': out of memory", o->root);
            goto fail;
        }
        snprintf(path, pl, "%s%s%s", ds->root, slash ? "" : "/", names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            warnf(warn, user, "skipping %s: a folder (data_root is not searched recursively)",
                  path);
            dirs++;
            free(path);
            continue;
        }
        struct ti_data_err pe = {{0}};
        if (prepare(&ds->imgs[ds->n], path, &ds->o, &pe)) {
            warnf(warn, user, "skipping %s", pe.msg);
            if (!first_reason[0]) snprintf(first_reason, sizeof first_reason, "%s", pe.msg);
            skipped++;
            free(path);
            continue;
        }
        ds->paths[ds->n++] = path;
    }
    for (int i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    names = NULL;
    if (ds->n == 0) {
        if (skipped) {
            ti_data_set_err(e, "data_root '%s': none of its %d files is a usable image (first: %s)",
                            o->root, skipped, first_reason);
        } else {
            ti_data_set_err(e, "data_root '%s' holds only folders (%d), no image files", o->root,
                            dirs);
        }
        goto fail;
    }
    if (o->per_image_tokens && ds->n >= TI_N_PER_IMAGE_TOKENS) {
        /* the peer's assertion, message verbatim */
        ti_data_set_err(
            e,
            "data_root '%s' has %d images: Can't use per-image tokens when the training "
            "set contains more than %d tokens. To enable larger sets, add more tokens to "
            "'per_img_token_list'.",
            o->root, ds->n, TI_N_PER_IMAGE_TOKENS);
        goto fail;
    }
    *ds_out = ds;
    return 0;
fail:
    if (names) {
        for (int i = 0; i < nn; i++)
            free(names[i]);
        free(names);
    }
    ti_dataset_close(ds);
    return -1;
}

uint64_t ti_dataset_fingerprint(const struct ti_dataset *ds) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
#define FNV(byte) (h = (h ^ (uint8_t)(byte)) * 0x100000001b3ull)
    for (int i = 0; i < ds->n; i++) {
        const struct ti_image *im = &ds->imgs[i];
        uint32_t dims[2] = {(uint32_t)im->w, (uint32_t)im->h};
        for (int k = 0; k < 8; k++)
            FNV(dims[k / 4] >> (8 * (k % 4)));
        size_t n = (size_t)im->w * (size_t)im->h * 3;
        for (size_t k = 0; k < n; k++)
            FNV(im->px[k]);
    }
#undef FNV
    return h;
}

size_t ti_dataset_len(const struct ti_dataset *ds) {
    return ds->o.is_train ? (size_t)ds->n * (size_t)ds->o.repeats : (size_t)ds->n;
}

int ti_dataset_n_images(const struct ti_dataset *ds) {
    return ds->n;
}

const char *ti_dataset_image_path(const struct ti_dataset *ds, int i) {
    return i >= 0 && i < ds->n ? ds->paths[i] : NULL;
}

const struct ti_image *ti_dataset_image(const struct ti_dataset *ds, int i) {
    return i >= 0 && i < ds->n ? &ds->imgs[i] : NULL;
}

static int pick(double u, int count) {
    double f = floor(u * count);
    if (!(f >= 0)) return 0; /* also NaN */
    return f >= count ? count - 1 : (int)f;
}

int ti_dataset_caption(const struct ti_dataset *ds, size_t i, double u_mix, double u_template,
                       char *caption, size_t caption_cap, struct ti_data_err *e) {
    int k = (int)(i % (size_t)ds->n);
    const char *const *list;
    int count;
    const char *token = NULL;
    if (ds->o.per_image_tokens && u_mix < ds->o.mixing_prob) {
        list = ds->o.style ? ti_templates_style_dual : ti_templates_object_dual;
        count = ds->o.style ? ti_n_templates_style_dual : ti_n_templates_object_dual;
        token = ti_per_image_tokens[k];
    } else if (ds->o.templates && ds->o.n_templates > 0) {
        list = ds->o.templates;
        count = ds->o.n_templates;
    } else {
        list = ds->o.style ? ti_templates_style : ti_templates_object;
        count = ds->o.style ? ti_n_templates_style : ti_n_templates_object;
    }
    return ti_template_format(caption, caption_cap, list[pick(u_template, count)], ds->ph, token,
                              e);
}

int ti_dataset_example(const struct ti_dataset *ds, size_t i, double u_mix, double u_template,
                       double u_flip, float *chw, char *caption, size_t caption_cap,
                       struct ti_data_err *e) {
    if (caption && ti_dataset_caption(ds, i, u_mix, u_template, caption, caption_cap, e)) {
        return -1;
    }
    if (chw) {
        const struct ti_image *img = &ds->imgs[i % (size_t)ds->n];
        ti_image_to_chw_flipped(img, u_flip < ds->o.flip_p, chw);
    }
    return 0;
}
