/*
 * strbuf.h - a growing, always NUL-terminated text buffer for writers that build a file's text in
 * memory (safetensors headers, run configs). Header only. Out of memory is sticky: appends after
 * a failed growth do nothing and `oom` says so; check it once at the end.
 *
 *   struct ti_strbuf b = {0};
 *   ti_sb_str(&b, "{\"a\": ");  ti_sb_put(&b, bytes, n);
 *   if (b.oom) ...;  use b.p (b.n bytes);  free(b.p);
 */
#ifndef TI_IO_STRBUF_H
#define TI_IO_STRBUF_H

#include <stdlib.h> /* defines: realloc */
#include <string.h> /* defines: memcpy, strlen */

struct ti_strbuf {
    char *p;
    size_t n, cap;
    int oom;
};

/* Appends n bytes of s. */
static inline void ti_sb_put(struct ti_strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap - b->n < n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* Appends the string s. */
static inline void ti_sb_str(struct ti_strbuf *b, const char *s) {
    ti_sb_put(b, s, strlen(s));
}

#endif /* TI_IO_STRBUF_H */
