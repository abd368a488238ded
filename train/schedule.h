/*
 * schedule.h - the diffusion noise schedule of the peer's LatentDiffusion (ti-peer.md §5.2) and
 * the DDIM sub-schedule its samplers use (ti-peer.md §5.5, ldm/models/diffusion/ddim.py), with
 * the reference's float64 / float32 roundings reproduced value for value.
 *
 *   struct ti_schedule s;
 *   TI_TRY(ti_schedule_init(&s, &cfg.model, err));           // betas, alphas_cumprod
 *   struct ti_ddim_schedule d;
 *   TI_TRY(ti_ddim_schedule_init(&d, &s, 50, 0.0, err));     // 50 DDIM steps, eta 0
 *
 * Reference arithmetic:
 *   betas          = torch.linspace(sqrt(start), sqrt(end), T, float64) ** 2 (torch's AVX2
 *                    linspace: fused multiply-adds, halves counted from either end)
 *   alphas_cumprod = np.cumprod(1 - betas) in float64; the model keeps it as float32
 *   DDIM timesteps = range(0, T, T // S) + 1 ("uniform"): S = 6 gives 7 steps, as the
 *                    reference does; a step count whose last timestep would be T or more (the
 *                    reference's index error, e.g. S = 9 or 27 for T = 1000) is refused with the
 *                    nearest counts that work
 *   ddim alphas    = alphas_cumprod_f32[timesteps] (float32)
 *   alphas_prev    = [alphas_cumprod_f32[0]] + alphas[:-1] (float32 values)
 *   sigmas         = eta * sqrt((1 - ap) / (1 - a) * (1 - a / ap)) in float64 from float32
 *                    values, the division as float32 reciprocal(1 - a) times (1 - ap) (torch's
 *                    __rtruediv__); all in float32 for a one-step schedule (numpy's dtype)
 *   sqrt(1 - a)    = computed in float32
 *   q_sample       = sqrt(alphas_cumprod), sqrt(1 - alphas_cumprod) in float64, then float32
 * Not here: the sampling loops (sampler.h).
 */
#ifndef TI_SCHEDULE_H
#define TI_SCHEDULE_H

#include "config.h"
#include "ldm.h" /* defines: struct ti_ldm_file_schedule */
#include "status.h"

#define TI_SCHEDULE_MAX_T TI_LDM_MAX_T /* the longest schedule ti reads or makes */

struct ti_schedule {
    int T;
    double betas[TI_SCHEDULE_MAX_T], alphas_cumprod[TI_SCHEDULE_MAX_T]; /* float64 */
    float alphas_cumprod_f32[TI_SCHEDULE_MAX_T]; /* the model's buffer (float32) */
    double linear_start, linear_end;
};

/* From the config's diffusion section (linear_start, linear_end, timesteps). */
ti_status ti_schedule_init(struct ti_schedule *s, const struct ti_cfg_diffusion *d,
                           struct ti_err *err);
/* The same from explicit values (T <= TI_SCHEDULE_MAX_T). */
ti_status ti_schedule_init_linear(struct ti_schedule *s, double linear_start, double linear_end,
                                  int T, struct ti_err *err);

/* The peer's q_sample buffers sqrt_alphas_cumprod and sqrt_one_minus_alphas_cumprod (T floats
 * each): np.sqrt of the float64 cumulative product, then float32. */
void ti_schedule_q_sample_coefs(const struct ti_schedule *s, float *sqrt_ab, float *sqrt_1m_ab);

/* Takes the alphas_cumprod buffer a checkpoint stores (m->file_sched after ti_ldm_load_file)
 * as the model's float32 buffer, as the reference's load_state_dict(strict=False) does, so the
 * DDIM / PLMS schedules made from s afterwards use the file's values (float16-rounded in a
 * half-precision export). Returns 1 when taken, 0 when the file has none, -1 when its length is
 * not s->T (s unchanged). note (note_size bytes) gets a sentence for the user, or "", when the
 * stored schedule differs from the config's (more than 1e-6 relative) or is not taken; `file`
 * names the checkpoint in it. */
int ti_schedule_use_file(struct ti_schedule *s, const struct ti_ldm_file_schedule *f,
                         const char *file, char *note, size_t note_size);

struct ti_ddim_schedule {
    int n;                            /* number of DDIM steps actually taken */
    int timesteps[TI_SCHEDULE_MAX_T]; /* ascending: timesteps[i] = i * (T / S) + 1 */
    float alphas[TI_SCHEDULE_MAX_T];  /* alphas_cumprod at timesteps[i] */
    float alphas_prev[TI_SCHEDULE_MAX_T];
    float sigmas[TI_SCHEDULE_MAX_T];
    float sqrt_one_minus_alphas[TI_SCHEDULE_MAX_T];
    double eta;
};

/* The number of DDIM steps the reference takes for `steps` requested (len(range(0, T, T //
 * steps))), or -1 when the reference cannot run it (steps < 1, steps > T, or a last timestep of T
 * or more). */
int ti_ddim_steps_taken(int T, int steps);
/* DDIM sub-schedule for `steps` requested steps and eta >= 0. Errors (steps out of range, the
 * reference's index error) name the step count and the nearest counts that work. */
ti_status ti_ddim_schedule_init(struct ti_ddim_schedule *d, const struct ti_schedule *s, int steps,
                                double eta, struct ti_err *err);

#endif /* TI_SCHEDULE_H */
