/*
 * lr_schedule.h - ti-train's learning-rate schedules (ti extension, `--lr_scheduler`,
 * `--lr_warmup_steps`): the multiplier of the base LR at each optimizer step, with the names and
 * formulas of diffusers' get_scheduler (its textual_inversion.py example's --lr_scheduler).
 *
 *   enum ti_lr_schedule k;
 *   if (ti_lr_schedule_parse("cosine", &k) != 0) ...        // unknown name
 *   double f = ti_lr_schedule_factor(k, step, warmup, max_steps);
 *   lr = base_lr * f;               // the LR of optimizer step `step` (0-based)
 *
 * With W warm-up steps and T = max_steps, at step s (0-based, as torch's LambdaLR counts):
 *   constant              1
 *   constant_with_warmup  s / W while s < W, then 1
 *   linear                s / W while s < W, then max(0, (T - s) / (T - W))
 *   cosine                s / W while s < W, then max(0, 0.5 (1 + cos(pi (s - W) / (T - W))))
 * The warm-up starts at 0 as in diffusers (step 0 of a warm-up changes nothing). The peer
 * (textual_inversion's LatentDiffusion) has no schedule: `constant` is the default, and its
 * configs' scheduler_config has no effect there or here.
 */
#ifndef TI_LR_SCHEDULE_H
#define TI_LR_SCHEDULE_H

#include <stdint.h> /* defines: int64_t */

#ifdef __cplusplus
extern "C" {
#endif

enum ti_lr_schedule { TI_LR_CONSTANT, TI_LR_CONSTANT_WITH_WARMUP, TI_LR_LINEAR, TI_LR_COSINE };

/* name -> kind; 0 ok, -1 for an unknown name. */
int ti_lr_schedule_parse(const char *name, enum ti_lr_schedule *out);
/* kind -> its name ("constant", ...). */
const char *ti_lr_schedule_name(enum ti_lr_schedule k);
/* The names, for messages: "constant, constant_with_warmup, linear, cosine". */
const char *ti_lr_schedule_names(void);
/* The LR multiplier at optimizer step `step` (0-based) of `total` with `warmup` warm-up steps. */
double ti_lr_schedule_factor(enum ti_lr_schedule k, int64_t step, int64_t warmup, int64_t total);

#ifdef __cplusplus
}
#endif
#endif /* TI_LR_SCHEDULE_H */
