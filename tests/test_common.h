/*
 * test_common.h - the tiny test harness every ti test binary uses.
 *
 *   TEST(arena_reuses_blocks) { ... CHECK(x == 3); CHECK_CLOSE(got, want, n, 1e-6, 1e-5); }
 *   int main(void) { RUN(arena_reuses_blocks); return tc_finish(); }
 *
 * Every failed check prints file:line and the details (for CHECK_CLOSE: the first bad index,
 * both values, and the largest absolute and relative errors) and makes tc_finish() return 1.
 * A binary that cannot run here (no GPU, missing fixture library) exits with TC_SKIP (77),
 * which ctest reports as SKIP, never PASS. A test that cannot run in this build calls
 * TC_SKIP_TEST("why") and returns; tc_finish() then returns TC_SKIP unless a check failed, so a
 * binary whose parts were skipped is never reported as PASS.
 */
#ifndef TI_TEST_COMMON_H
#define TI_TEST_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "status.h"

#define TC_SKIP 77

static int tc_failures;
static int tc_checks;
static int tc_skips;
static const char *tc_current = "";

#define TEST(name) static void name(void)
#define RUN(name)                                                                                  \
    do {                                                                                           \
        int before_ = tc_failures, skips_ = tc_skips;                                              \
        tc_current = #name;                                                                        \
        name();                                                                                    \
        printf("%s %s\n",                                                                          \
               tc_failures != before_ ? "FAIL"                                                     \
               : skips_ != tc_skips   ? "skip"                                                     \
                                      : "ok  ",                                                      \
               #name);                                                                             \
        fflush(stdout);                                                                            \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        tc_checks++;                                                                               \
        if (!(cond)) {                                                                             \
            tc_failures++;                                                                         \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, tc_current,      \
                    #cond);                                                                        \
        }                                                                                          \
    } while (0)

static inline const char *tc_errmsg(const struct ti_err *e) {
    return e ? e->msg : "";
}

/* Checks a ti_status; prints the context's error message on failure. */
#define CHECK_OK(expr, errp)                                                                       \
    do {                                                                                           \
        tc_checks++;                                                                               \
        int st_ = (expr);                                                                          \
        if (st_ != 0) {                                                                            \
            tc_failures++;                                                                         \
            fprintf(stderr, "%s:%d: [%s] %s returned %d: %s\n", __FILE__, __LINE__, tc_current,    \
                    #expr, st_, tc_errmsg(errp));                                                  \
        }                                                                                          \
    } while (0)

/* CHECK_OK for data/ calls: they return 0 / -1 and fill a struct ti_data_err (data/ stands alone,
 * so its errors are not a struct ti_err). */
#define DCHECK_OK(expr, e)                                                                         \
    do {                                                                                           \
        tc_checks++;                                                                               \
        if ((expr) != 0) {                                                                         \
            tc_failures++;                                                                         \
            fprintf(stderr, "%s:%d: [%s] %s failed: %s\n", __FILE__, __LINE__, tc_current, #expr,  \
                    (e)->msg);                                                                     \
        }                                                                                          \
    } while (0)

/* |got - want| <= atol + rtol * |want| element-wise (torch.allclose semantics). */
static inline int tc_check_close(const double *got, const double *want, long n, double atol,
                                 double rtol, const char *what, const char *file, int line) {
    long bad = -1, nbad = 0;
    double max_abs = 0, max_rel = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        double rel = d / (fabs(want[i]) > 1e-300 ? fabs(want[i]) : 1e-300);
        if (d > max_abs) max_abs = d;
        if (rel > max_rel && fabs(want[i]) > atol) max_rel = rel;
        if (!(d <= atol + rtol * fabs(want[i]))) { /* also catches NaN */
            if (bad < 0) bad = i;
            nbad++;
        }
    }
    tc_checks++;
    if (bad >= 0) {
        tc_failures++;
        fprintf(stderr,
                "%s:%d: [%s] %s: %ld of %ld elements differ (atol %g, rtol %g); first at [%ld]: "
                "got %.10g want %.10g; max abs err %.3g, max rel err %.3g\n",
                file, line, tc_current, what, nbad, n, atol, rtol, bad, got[bad], want[bad],
                max_abs, max_rel);
        return 0;
    }
    return 1;
}
#define CHECK_CLOSE(got, want, n, atol, rtol)                                                      \
    tc_check_close((got), (want), (long)(n), (atol), (rtol), #got, __FILE__, __LINE__)

/* Marks the current test as not run in this build (say why: "built without libyaml"). */
#define TC_SKIP_TEST(why)                                                                          \
    do {                                                                                           \
        tc_skips++;                                                                                \
        printf("SKIP %s: %s\n", tc_current, (why));                                                \
    } while (0)

static inline int tc_finish(void) {
    printf("%d checks, %d failures, %d skipped\n", tc_checks, tc_failures, tc_skips);
    if (tc_failures) return 1;
    if (tc_skips) return TC_SKIP;
    if (tc_checks == 0) {
        fprintf(stderr, "no checks ran: a test without assertions is a failure\n");
        return 1;
    }
    return tc_failures ? 1 : 0;
}

#endif /* TI_TEST_COMMON_H */
