/* status.c - error sink (see status.h). */
#include "status.h"

#include <stdio.h>  /* defines: vsnprintf, snprintf */
#include <string.h> /* defines: strlen, strrchr */

const char *ti_status_str(ti_status s) {
    switch (s) {
    case TI_OK: return "ok";
    case TI_ERR_INVALID: return "invalid argument";
    case TI_ERR_SHAPE: return "shape mismatch";
    case TI_ERR_DTYPE: return "unsupported dtype";
    case TI_ERR_UNSUPPORTED: return "unsupported by backend";
    case TI_ERR_NOMEM: return "out of memory";
    case TI_ERR_IO: return "I/O error";
    case TI_ERR_FORMAT: return "malformed file";
    case TI_ERR_CUDA: return "CUDA error";
    case TI_ERR_UNSAFE: return "unsafe file refused";
    case TI_ERR_NOT_FOUND: return "not found";
    case TI_ERR_CONFIG: return "config error";
    case TI_ERR_INTERNAL: return "internal error";
    case TI_ERR_CANCELLED: return "cancelled";
    default: return "unknown error";
    }
}

void ti_err_clear(struct ti_err *err) {
    if (!err) return;
    err->code = TI_OK;
    err->msg[0] = '\0';
}

ti_status ti_error_at(struct ti_err *err, ti_status code, const char *file, int line,
                      const char *fmt, ...) {
    if (!err) return code;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t used = strlen(err->msg);
    if (err->code == TI_OK) {
        err->code = code;
        used = 0;
        err->msg[0] = '\0';
    } else if (used + 8 < sizeof err->msg) {
        /* keep the root cause first; add the context after it */
        used += (size_t)snprintf(err->msg + used, sizeof err->msg - used, "; ");
    } else {
        return code;
    }
    if (used >= sizeof err->msg) return code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg + used, sizeof err->msg - used, fmt, ap);
    va_end(ap);
    if (n < 0) return code;
    used += (size_t)n;
    if (used < sizeof err->msg)
        snprintf(err->msg + used, sizeof err->msg - used, " [%s:%d]", base, line);
    return code;
}
