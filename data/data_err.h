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

struct ti_data_err {
    char msg[512];
};

/* Formats the message into e (if non-NULL) and returns -1, so `return ti_data_fail(e, ...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int ti_data_fail(struct ti_data_err *e, const char *fmt, ...);

#endif /* TI_DATA_ERR_H */
