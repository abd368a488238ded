/*
 * bench_util.h - the clocks and helpers every benchmark shares: wall and process-CPU time in
 * seconds, a qsort comparator for doubles (medians), the peak resident set in GiB.
 */
#ifndef TI_BENCH_UTIL_H
#define TI_BENCH_UTIL_H

#include <sys/resource.h> /* defines: getrusage */
#include <time.h>         /* defines: clock_gettime */

static inline double bench_now(void) { /* wall clock, seconds */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double bench_cpu_now(void) { /* CPU time of the whole process, every thread */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* peak resident set of this process in GiB (getrusage's ru_maxrss, the kernel's VmHWM) */
static inline double bench_peak_rss_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1 << 20);
}

#endif /* TI_BENCH_UTIL_H */
