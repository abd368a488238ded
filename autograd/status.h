/*
 * status.h - error codes and the error sink every ti library function reports into.
 *
 * Library code never prints and never exits. A function that can fail returns a ti_status
 * (TI_OK == 0, errors negative) and writes a message into a `struct ti_err` that the caller
 * owns (usually the one inside `struct ti_ctx`). Only the tools' main() print it.
 *
 *   struct ti_err err = {0};
 *   if (ti_something(&err, ...) != TI_OK) { fprintf(stderr, "error: %s\n", err.msg); return 1; }
 *
 * Inside the library:
 *   return ti_error(err, TI_ERR_SHAPE, "linear: weight %s does not match input", buf);
 *   TI_TRY(other_call(...));          // propagate a failing status
 *
 * Not here: the tensor type (tensor.h), the execution context (context.h).
 */
#ifndef TI_STATUS_H
#define TI_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int ti_status;

enum {
    TI_OK = 0,
    TI_ERR_INVALID = -1,     /* bad argument from the caller (programmer or user input) */
    TI_ERR_SHAPE = -2,       /* tensor shapes do not fit the op or the config */
    TI_ERR_DTYPE = -3,       /* dtype not supported by this op or backend */
    TI_ERR_UNSUPPORTED = -4, /* op not implemented by this backend (empty vtable slot) */
    TI_ERR_NOMEM = -5,       /* allocation failed or an arena is full */
    TI_ERR_IO = -6,          /* file system error */
    TI_ERR_FORMAT = -7,      /* malformed or hostile file contents */
    TI_ERR_CUDA = -8,        /* CUDA runtime, cuBLAS or cuDNN error */
    TI_ERR_UNSAFE = -9,      /* refused: a file references a dangerous callable */
    TI_ERR_NOT_FOUND = -10,  /* missing key, file or record */
    TI_ERR_CONFIG = -11,     /* config file problem */
    TI_ERR_INTERNAL = -12,   /* broken invariant inside ti (a bug) */
    TI_ERR_CANCELLED = -13   /* stopped on request (Ctrl-C) before it finished */
};

#define TI_ERR_MSG_MAX 1024

/* Error sink. `code` is the first error reported (later ones are appended to msg only if
 * msg still has room, so the root cause stays first). */
struct ti_err {
    ti_status code;
    char msg[TI_ERR_MSG_MAX];
};

/* Records an error with the source location and returns `code`. `err` may be NULL. */
ti_status ti_error_at(struct ti_err *err, ti_status code, const char *file, int line,
                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* ti_error(err, code, fmt, ...) records and evaluates to `code`. The value comes from the inline
 * below rather than from ti_error_at, so static analysis (which cannot follow the variadic call
 * into status.c) sees that an error path never returns TI_OK. `code` is evaluated twice: pass a
 * constant or a variable. */
static inline ti_status ti_error_value_(ti_status code, ti_status recorded) {
    (void)recorded;
    return code;
}
#define ti_error(err, code, ...)                                                                   \
    ti_error_value_((code), ti_error_at((err), (code), __FILE__, __LINE__, __VA_ARGS__))

/* Clears a sink so it can be reused. */
void ti_err_clear(struct ti_err *err);

/* Human name of a status ("shape mismatch", ...). Never NULL. */
const char *ti_status_str(ti_status s);

/* Propagate a failing status. Use in functions that return ti_status. */
#define TI_TRY(expr)                                                                               \
    do {                                                                                           \
        ti_status ti_try_s_ = (expr);                                                              \
        if (ti_try_s_ != TI_OK) return ti_try_s_;                                                  \
    } while (0)

/* Same, but jumps to a `fail:` label after storing the status in `st` (for cleanup). */
#define TI_TRY_GOTO(st, expr)                                                                      \
    do {                                                                                           \
        (st) = (expr);                                                                             \
        if ((st) != TI_OK) goto fail;                                                              \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif /* TI_STATUS_H */
