/*
 * data_err.h - the error record of every data/ function.
 *
 * data/ stands alone (libc, stb_image, libexif, zlib): it does not use autograd's ti_status.
 * Every data/ function that can fail returns 0 on success or -1 on error and then writes a
 * message into a caller-provided struct ti_data_err (which may be NULL: the message is lost).
 * Messages name the file, folder or argument and say what was found and what was expected,
 * e.g. "photos/cat.jpg: truncated JPEG (no end-of-image marker)".
 */
#ifndef TI_DATA_ERR_H
#define TI_DATA_ERR_H

#include <stdarg.h>

struct ti_data_err {
    char msg[512];
};

/* Formats the message into e (if non-NULL). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 0)))
#endif
void ti_data_vset_err(struct ti_data_err *e, const char *fmt, va_list ap);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void ti_data_set_err(struct ti_data_err *e, const char *fmt, ...);

/* Sets the message and returns -1, so `return ti_data_fail(e, "...", ...);`. Inline so that
 * static analysers see the -1 at every call site (they do not follow a variadic call into
 * another file); a plain statement `ti_data_fail(e, ...);` is fine too. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline int
ti_data_fail(struct ti_data_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ti_data_vset_err(e, fmt, ap);
    va_end(ap);
    return -1;
}

/* The same as an expression whose -1 every analyser sees: `return TI_DATA_FAIL(e, ...);` (the
 * form data/ itself uses; as a bare statement it draws -Wunused-value, use ti_data_set_err). */
#define TI_DATA_FAIL(e, ...) (ti_data_set_err((e), __VA_ARGS__), -1)

#endif /* TI_DATA_ERR_H */
