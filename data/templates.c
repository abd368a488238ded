/*
 * templates.c - the peer's caption templates, verbatim (ti-peer.md §4.2). Generated once from
 * ldm/data/personalized.py and personalized_style.py (their lists, in order, duplicates kept:
 * they weight the random choice); tests/test_data_dataset.c checks counts and entries against
 * the spec text.
 */
#include "templates.h"

#include <errno.h>  /* defines: errno */
#include <stdio.h>  /* defines: FILE, fopen, getc */
#include <stdlib.h> /* defines: malloc, realloc, free */
#include <string.h> /* defines: strerror, strstr, strncmp */

const char *const ti_templates_object[] = {
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
    "an illustration of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "an illustration of a clean {}",
    "an illustration of a dirty {}",
    "a dark photo of the {}",
    "an illustration of my {}",
    "an illustration of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "an illustration of the {}",
    "a good photo of the {}",
    "an illustration of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "an illustration of the clean {}",
    "a rendition of a {}",
    "an illustration of a nice {}",
    "a good photo of a {}",
    "an illustration of the nice {}",
    "an illustration of the small {}",
    "an illustration of the weird {}",
    "an illustration of the large {}",
    "an illustration of a cool {}",
    "an illustration of a small {}",
    "a depiction of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a depiction of a clean {}",
    "a depiction of a dirty {}",
    "a dark photo of the {}",
    "a depiction of my {}",
    "a depiction of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a depiction of the {}",
    "a good photo of the {}",
    "a depiction of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a depiction of the clean {}",
    "a rendition of a {}",
    "a depiction of a nice {}",
    "a good photo of a {}",
    "a depiction of the nice {}",
    "a depiction of the small {}",
    "a depiction of the weird {}",
    "a depiction of the large {}",
    "a depiction of a cool {}",
    "a depiction of a small {}",
};
const int ti_n_templates_object = (int)(sizeof ti_templates_object / sizeof ti_templates_object[0]);

const char *const ti_templates_object_dual[] = {
    "a photo of a {} with {}",           "a rendering of a {} with {}",
    "a cropped photo of the {} with {}", "the photo of a {} with {}",
    "a photo of a clean {} with {}",     "a photo of a dirty {} with {}",
    "a dark photo of the {} with {}",    "a photo of my {} with {}",
    "a photo of the cool {} with {}",    "a close-up photo of a {} with {}",
    "a bright photo of the {} with {}",  "a cropped photo of a {} with {}",
    "a photo of the {} with {}",         "a good photo of the {} with {}",
    "a photo of one {} with {}",         "a close-up photo of the {} with {}",
    "a rendition of the {} with {}",     "a photo of the clean {} with {}",
    "a rendition of a {} with {}",       "a photo of a nice {} with {}",
    "a good photo of a {} with {}",      "a photo of the nice {} with {}",
    "a photo of the small {} with {}",   "a photo of the weird {} with {}",
    "a photo of the large {} with {}",   "a photo of a cool {} with {}",
    "a photo of a small {} with {}",
};
const int ti_n_templates_object_dual =
    (int)(sizeof ti_templates_object_dual / sizeof ti_templates_object_dual[0]);

const char *const ti_templates_style[] = {
    "a painting in the style of {}",         "a rendering in the style of {}",
    "a cropped painting in the style of {}", "the painting in the style of {}",
    "a clean painting in the style of {}",   "a dirty painting in the style of {}",
    "a dark painting in the style of {}",    "a picture in the style of {}",
    "a cool painting in the style of {}",    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",  "a cropped painting in the style of {}",
    "a good painting in the style of {}",    "a close-up painting in the style of {}",
    "a rendition in the style of {}",        "a nice painting in the style of {}",
    "a small painting in the style of {}",   "a weird painting in the style of {}",
    "a large painting in the style of {}",
};
const int ti_n_templates_style = (int)(sizeof ti_templates_style / sizeof ti_templates_style[0]);

const char *const ti_templates_style_dual[] = {
    "a painting in the style of {} with {}",
    "a rendering in the style of {} with {}",
    "a cropped painting in the style of {} with {}",
    "the painting in the style of {} with {}",
    "a clean painting in the style of {} with {}",
    "a dirty painting in the style of {} with {}",
    "a dark painting in the style of {} with {}",
    "a cool painting in the style of {} with {}",
    "a close-up painting in the style of {} with {}",
    "a bright painting in the style of {} with {}",
    "a cropped painting in the style of {} with {}",
    "a good painting in the style of {} with {}",
    "a painting of one {} in the style of {}",
    "a nice painting in the style of {} with {}",
    "a small painting in the style of {} with {}",
    "a weird painting in the style of {} with {}",
    "a large painting in the style of {} with {}",
};
const int ti_n_templates_style_dual =
    (int)(sizeof ti_templates_style_dual / sizeof ti_templates_style_dual[0]);

const char *const ti_per_image_tokens[22] = {
    "\xd7\x90" /* א */, "\xd7\x91" /* ב */, "\xd7\x92" /* ג */, "\xd7\x93" /* ד */,
    "\xd7\x94" /* ה */, "\xd7\x95" /* ו */, "\xd7\x96" /* ז */, "\xd7\x97" /* ח */,
    "\xd7\x98" /* ט */, "\xd7\x99" /* י */, "\xd7\x9b" /* כ */, "\xd7\x9c" /* ל */,
    "\xd7\x9e" /* מ */, "\xd7\xa0" /* נ */, "\xd7\xa1" /* ס */, "\xd7\xa2" /* ע */,
    "\xd7\xa4" /* פ */, "\xd7\xa6" /* צ */, "\xd7\xa7" /* ק */, "\xd7\xa8" /* ר */,
    "\xd7\xa9" /* ש */, "\xd7\xaa" /* ת */
};

int ti_template_format(char *out, size_t cap, const char *tmpl, const char *a, const char *b,
                       struct ti_data_err *e) {
    const char *args[2] = {a, b};
    int used = 0;
    size_t n = 0;
    if (cap == 0) return TI_DATA_FAIL(e, "caption template '%s': no room for the caption", tmpl);
    for (const char *p = tmpl; *p;) {
        const char *s = p[0] == '{' && p[1] == '}' ? NULL : p;
        size_t len;
        if (!s) {
            if (used >= 2 || !args[used]) {
                return TI_DATA_FAIL(e, "caption template '%s': more {} slots than arguments", tmpl);
            }
            s = args[used++];
            len = strlen(s);
            p += 2;
        } else {
            len = 1;
            p++;
        }
        if (n + len >= cap) {
            return TI_DATA_FAIL(e, "caption template '%s': the caption needs more than %zu bytes",
                                tmpl, cap - 1);
        }
        memcpy(out + n, s, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

/* ---- template files -------------------------------------------------------------------------- */

/* Rewrites line in place: trims blanks, turns every "[name]" into "{}"; returns its slot count
 * (-1: "[filewords]"). */
static int template_line(char *line, char **start) {
    char *p = line, *end = line + strlen(line);
    while (*p == ' ' || *p == '\t')
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    *start = p;
    if (strstr(p, "[filewords]")) return -1;
    char *w = p;
    int slots = 0;
    for (const char *r = p; *r;) {
        if (!strncmp(r, "[name]", 6)) {
            *w++ = '{';
            *w++ = '}';
            r += 6;
            slots++;
        } else {
            if (r[0] == '{' && r[1] == '}') slots++;
            *w++ = *r++;
        }
    }
    *w = '\0';
    return slots;
}

void ti_templates_free(struct ti_template_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++)
        free(l->t[i]);
    free(l->t);
    l->t = NULL;
    l->n = 0;
}

int ti_templates_load(struct ti_template_list *out, const char *path, struct ti_data_err *e) {
    out->t = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return TI_DATA_FAIL(e, "%s: %s", path, strerror(errno));
    char line[TI_TEMPLATE_LEN_MAX + 1];
    int lineno = 0, rc = 0, c = 0;
    while (!rc && c != EOF) {
        size_t len = 0;
        lineno++;
        while ((c = getc(f)) != EOF && c != '\n') {
            if (c == '\0') {
                rc = TI_DATA_FAIL(e, "%s:%d: a NUL byte: expected a text file", path, lineno);
                break;
            }
            if (len == TI_TEMPLATE_LEN_MAX) {
                rc = TI_DATA_FAIL(e, "%s:%d: the line is longer than %d bytes", path, lineno,
                                  TI_TEMPLATE_LEN_MAX);
                break;
            }
            line[len++] = (char)c;
        }
        if (rc) break;
        line[len] = '\0';
        if (lineno == 1 && !strncmp(line, "\xef\xbb\xbf", 3)) /* a UTF-8 byte order mark */
            memmove(line, line + 3, len - 2);
        char *t;
        int slots = template_line(line, &t);
        if (!*t || *t == '#') continue;
        if (slots < 0) {
            rc = TI_DATA_FAIL(e,
                              "%s:%d: '[filewords]': ti-train has no per-image captions; write "
                              "the template with {} (or [name]) where the new word goes",
                              path, lineno);
            break;
        }
        if (slots != 1) {
            rc = TI_DATA_FAIL(e,
                              "%s:%d: '%s': expected exactly one {} (or [name]) for the new word, "
                              "found %d",
                              path, lineno, t, slots);
            break;
        }
        if (out->n == TI_TEMPLATES_MAX) {
            rc = TI_DATA_FAIL(e, "%s: more than %d templates", path, TI_TEMPLATES_MAX);
            break;
        }
        char **grown = realloc(out->t, (size_t)(out->n + 1) * sizeof *grown);
        char *copy = grown ? malloc(strlen(t) + 1) : NULL;
        if (grown) out->t = grown;
        if (!copy) {
            rc = TI_DATA_FAIL(e, "%s: out of memory", path);
            break;
        }
        strcpy(copy, t);
        out->t[out->n++] = copy;
    }
    if (!rc && ferror(f)) rc = TI_DATA_FAIL(e, "%s: %s", path, strerror(errno));
    fclose(f);
    if (!rc && out->n == 0)
        rc = TI_DATA_FAIL(e, "%s: no templates (expected lines such as 'a photo of a {}')", path);
    if (rc) ti_templates_free(out);
    return rc;
}
