/*
 * schedule.c - the linear ("scaled linear") beta schedule and the DDIM sub-schedule, with the
 * reference's roundings (see schedule.h).
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "schedule.h"

#include <math.h>
#include <stdio.h> /* defines: snprintf */
#include <string.h>

/* torch.linspace(a, b, n, dtype=float64) on the CPU (AVX2 build): 4-wide vectors,
 * base = a + step * i (first half) or b - step * (n - 1 - i) (second half) fused, lanes
 * base + k * step fused; the tail after the last 8-block per element with the same rule. */
static void torch_linspace_f64(double *out, double a, double b, int n) {
    if (n == 1) {
        out[0] = a;
        return;
    }
    double step = (b - a) / (double)(n - 1);
    int half = n / 2;
    int nvec = n / 8 * 8;
    for (int c = 0; c < nvec; c += 4) {
        double base = c < half ? fma(step, (double)c, a) : fma(-step, (double)(n - c - 1), b);
        for (int k = 0; k < 4; k++)
            out[c + k] = fma((double)k, step, base);
    }
    for (int i = nvec; i < n; i++)
        out[i] = i < half ? fma(step, (double)i, a) : fma(-step, (double)(n - i - 1), b);
}

ti_status ti_schedule_init_linear(struct ti_schedule *s, double linear_start, double linear_end,
                                  int T, struct ti_err *err) {
    memset(s, 0, sizeof *s);
    if (T < 1 || T > TI_SCHEDULE_MAX_T)
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.timesteps: %d is not supported (expected 1..%d)", T,
                        TI_SCHEDULE_MAX_T);
    if (!(linear_start > 0) || !(linear_end > 0) || !(linear_start < 1) || !(linear_end < 1))
        return ti_error(err, TI_ERR_CONFIG,
                        "model.params.linear_start/linear_end: %g, %g (expected values in (0, 1))",
                        linear_start, linear_end);
    s->T = T;
    s->linear_start = linear_start;
    s->linear_end = linear_end;
    double lin[TI_SCHEDULE_MAX_T] = {0};
    torch_linspace_f64(lin, sqrt(linear_start), sqrt(linear_end), T);
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        s->betas[i] = lin[i] * lin[i];
        acc = acc * (1.0 - s->betas[i]);
        s->alphas_cumprod[i] = acc;
        s->alphas_cumprod_f32[i] = (float)acc;
    }
    return TI_OK;
}

ti_status ti_schedule_init(struct ti_schedule *s, const struct ti_cfg_diffusion *d,
                           struct ti_err *err) {
    return ti_schedule_init_linear(s, d->linear_start, d->linear_end, d->timesteps, err);
}

void ti_schedule_q_sample_coefs(const struct ti_schedule *s, float *sqrt_ab, float *sqrt_1m_ab) {
    for (int i = 0; i < s->T; i++) {
        sqrt_ab[i] = (float)sqrt(s->alphas_cumprod[i]);
        sqrt_1m_ab[i] = (float)sqrt(1.0 - s->alphas_cumprod[i]);
    }
}

int ti_schedule_use_file(struct ti_schedule *s, const struct ti_ldm_file_schedule *f,
                         const char *file, char *note, size_t note_size) {
    if (note_size) note[0] = 0;
    if (!(f->have & TI_LDM_BUF_ALPHAS_CUMPROD)) return 0;
    if (f->T != s->T) {
        snprintf(note, note_size,
                 "%s stores a %d-step diffusion schedule, the config has %d steps: using the "
                 "config's (the reference refuses such a file)",
                 file, f->T, s->T);
        return -1;
    }
    double m = 0;
    for (int i = 0; i < s->T; i++) {
        double d = fabs((double)f->alphas_cumprod[i] - s->alphas_cumprod_f32[i]) /
                   (double)s->alphas_cumprod_f32[i];
        m = d > m ? d : m;
        s->alphas_cumprod_f32[i] = f->alphas_cumprod[i];
    }
    if (m > 1e-6)
        snprintf(note, note_size,
                 "%s stores its diffusion schedule (alphas_cumprod) up to %.2g %% away from the "
                 "config's (a half-precision export?): using the stored one, as the reference "
                 "does",
                 file, 100.0 * m);
    return 1;
}

int ti_ddim_steps_taken(int T, int steps) {
    if (steps < 1 || steps > T) return -1;
    int c = T / steps;
    int n = (T + c - 1) / c; /* len(range(0, T, c)) */
    if ((n - 1) * c + 1 >= T) return -1;
    return n;
}

ti_status ti_ddim_schedule_init(struct ti_ddim_schedule *d, const struct ti_schedule *s, int steps,
                                double eta, struct ti_err *err) {
    memset(d, 0, sizeof *d);
    if (!(eta >= 0) || !isfinite(eta))
        return ti_error(err, TI_ERR_INVALID, "ddim_eta: %g (expected a number >= 0)", eta);
    int n = ti_ddim_steps_taken(s->T, steps);
    if (n < 0) {
        if (steps < 1)
            return ti_error(err, TI_ERR_INVALID, "ddim_steps: %d (expected at least 1)", steps);
        int lo = steps - 1, hi = steps + 1;
        while (lo >= 1 && ti_ddim_steps_taken(s->T, lo) < 0)
            lo--;
        while (hi <= s->T && ti_ddim_steps_taken(s->T, hi) < 0)
            hi++;
        char near[96];
        if (lo >= 1 && hi <= s->T)
            snprintf(near, sizeof near, "%d or %d", lo, hi);
        else if (lo >= 1)
            snprintf(near, sizeof near, "%d", lo);
        else
            snprintf(near, sizeof near, "%d", hi);
        if (steps > s->T)
            return ti_error(err, TI_ERR_INVALID,
                            "ddim_steps: %d is more than the model's %d timesteps; use %s", steps,
                            s->T, near);
        int c = s->T / steps, last = ((s->T + c - 1) / c - 1) * c + 1;
        return ti_error(err, TI_ERR_INVALID,
                        "ddim_steps: %d cannot be sampled: the reference's uniform schedule "
                        "(range(0, %d, %d) + 1) would end at timestep %d, past the model's last "
                        "(%d), and fails there; the nearest step counts that work: %s",
                        steps, s->T, c, last, s->T - 1, near);
    }
    int c = s->T / steps;
    d->n = n;
    d->eta = eta;
    for (int i = 0; i < n; i++) {
        d->timesteps[i] = i * c + 1;
        float a = s->alphas_cumprod_f32[d->timesteps[i]];
        float ap = i == 0 ? s->alphas_cumprod_f32[0] : s->alphas_cumprod_f32[d->timesteps[i - 1]];
        d->alphas[i] = a;
        d->alphas_prev[i] = ap;
        /* make_ddim_sampling_parameters on the model's float32 buffer: alphas_prev is a numpy
         * float64 array when it has more than one element, float32 when it has one; numpy
         * defers ndarray / tensor to torch, which computes it as reciprocal(tensor) * ndarray,
         * the reciprocal in float32 */
        float recip = 1.0f / (1.0f - a);
        if (n > 1) {
            double v = (double)recip * (1.0 - (double)ap) * (1.0 - (double)a / (double)ap);
            d->sigmas[i] = (float)(eta * sqrt(v));
        } else {
            float v = recip * (1.0f - ap) * (1.0f - a / ap);
            d->sigmas[i] = (float)eta * sqrtf(v);
        }
        d->sqrt_one_minus_alphas[i] = sqrtf(1.0f - a);
    }
    return TI_OK;
}
