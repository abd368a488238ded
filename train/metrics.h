/*
 * metrics.h - ti-train's per-step record: <run>/metrics.h5 (HDF5: 1-D extendible, chunked
 * datasets `step` int64, `loss`, `lr`, `embedding_norm` float64, one row per optimizer step) or,
 * in a build without HDF5, <run>/metrics.csv (header `step,loss,lr,embedding_norm`); the
 * loss-curve plot (loss.png); the terminal progress line.
 *
 *   struct ti_metrics *m;
 *   TI_TRY(ti_metrics_open(&m, rundir, resume_step, err));   // resume: rows < step kept
 *   ti_metrics_add(m, step, loss, lr, norm);                 // every optimizer step
 *   TI_TRY(ti_metrics_flush(m, 0, err));                     // rewrites the file if due
 *   ti_metrics_plot(m, px, 640, 360);                        // RGB8 loss curve
 *   ti_metrics_close(m);
 *
 * Robustness: the rows live in memory and the file is rewritten whole through a temporary name
 * and a rename (at most every 2 s, plus forced flushes at checkpoints and at the end), so a kill
 * at any moment leaves the previous complete file, never a torn one. A run of 6100 steps holds
 * 200 KB of rows.
 *
 * Not here: the embedding files (embedding_io.h), images (data/image.h writes the PNG).
 */
#ifndef TI_METRICS_H
#define TI_METRICS_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int64_t, uint8_t */
#include <stdio.h>  /* defines: FILE */

#include "status.h" /* defines: ti_status, struct ti_err */

#ifdef __cplusplus
extern "C" {
#endif

struct ti_metrics;

/* 1 when this build writes metrics.h5 (HDF5 found), 0 when metrics.csv. */
int ti_metrics_have_hdf5(void);
/* "metrics.h5" or "metrics.csv". */
const char *ti_metrics_file_name(void);

/* Opens the record of the run in `rundir`. keep_below >= 0: an existing file is read back and
 * its rows with step < keep_below kept (--resume); -1: start empty. */
ti_status ti_metrics_open(struct ti_metrics **m, const char *rundir, int64_t keep_below,
                          struct ti_err *err);
/* Appends one row (copies; never fails except out of memory, which drops the row). */
void ti_metrics_add(struct ti_metrics *m, int64_t step, double loss, double lr, double norm);
/* Rewrites the file when force or when 2 s passed since the last write. */
ti_status ti_metrics_flush(struct ti_metrics *m, int force, struct ti_err *err);
size_t ti_metrics_rows(const struct ti_metrics *m);
void ti_metrics_close(struct ti_metrics *m);

/* Draws the loss curve (each step light, an exponential moving average dark, axes with the step
 * range and loss range labelled) into px (w x h x 3 RGB8, rows top to bottom). w >= 64, h >= 48.*/
void ti_metrics_plot(const struct ti_metrics *m, uint8_t *px, int w, int h);

/* ---- progress line ---------------------------------------------------------------------------*/
struct ti_progress {
    FILE *f;
    int tty;       /* rewrite one line with \r (else one plain line per report) */
    double t0;     /* seconds (monotonic) at start */
    int64_t step0; /* first step of this process (resume) */
    int64_t total;
    double last_print;
    int width; /* characters of the last \r line (to blank leftovers) */
};
/* tty < 0: decide with isatty(fileno(f)). */
void ti_progress_init(struct ti_progress *p, FILE *f, int tty, int64_t step0, int64_t total);
/* After optimizer step `done` (1-based count): "step 12/6100  loss 0.1234  1.52 it/s  ETA 1:06:40".
 * A terminal gets it rewritten in place every 0.2 s; otherwise a plain line every 10 s and at
 * the end. */
void ti_progress_update(struct ti_progress *p, int64_t done, double loss);
/* Ends a \r line with a newline (before other output or at the end). */
void ti_progress_break(struct ti_progress *p);
/* Monotonic seconds. */
double ti_now_seconds(void);

#ifdef __cplusplus
}
#endif
#endif /* TI_METRICS_H */
