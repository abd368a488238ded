/*
 * lr_schedule.c - ti-train's learning-rate schedules (lr_schedule.h has the formulas).
 */
#include "lr_schedule.h"

#include <math.h>   /* defines: cos, M_PI */
#include <string.h> /* defines: strcmp */

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static const char *const names[] = {"constant", "constant_with_warmup", "linear", "cosine"};

int ti_lr_schedule_parse(const char *name, enum ti_lr_schedule *out) {
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
        if (!strcmp(name, names[k])) {
            *out = (enum ti_lr_schedule)k;
            return 0;
        }
    return -1;
}

const char *ti_lr_schedule_name(enum ti_lr_schedule k) {
    return (int)k >= 0 && (int)k < (int)(sizeof names / sizeof names[0]) ? names[k] : "?";
}

const char *ti_lr_schedule_names(void) {
    return "constant, constant_with_warmup, linear, cosine";
}

double ti_lr_schedule_factor(enum ti_lr_schedule k, int64_t step, int64_t warmup, int64_t total) {
    if (k == TI_LR_CONSTANT) return 1.0;
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    if (k == TI_LR_CONSTANT_WITH_WARMUP) return 1.0;
    int64_t span = total - warmup;
    if (span < 1) span = 1;
    double p = (double)(step - warmup) / (double)span;
    double f = k == TI_LR_LINEAR ? 1.0 - p : 0.5 * (1.0 + cos(M_PI * p));
    return f > 0.0 ? f : 0.0;
}
