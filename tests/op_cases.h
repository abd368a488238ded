/*
 * op_cases.h - the table of op test cases shared by three suites:
 *   test_gradcheck   every case on the CPU in f64 against central finite differences,
 *   test_oracle_ops  every case against PyTorch outputs and gradients (tests/fixtures/ops_*.h5,
 *                    written by scripts/oracle/ops.py with the same case names and parameters),
 *   test_backends    every case on each other backend (CUDA) against the CPU.
 * Each op family lists its cases in tests/cases_<family>.c (terminated by {NULL}); a case
 * builds its op from inputs through the public front end (ops.h).
 */
#ifndef TI_TEST_OP_CASES_H
#define TI_TEST_OP_CASES_H

#include "context.h"
#include "ops.h"
#include "tape.h"

#define OC_MAX_IN 5

typedef ti_status (*oc_fn)(struct ti_ctx *ctx, struct ti_tensor *out, const struct ti_tensor *in,
                           const double *p);

struct oc_input {
    int ndim;
    int64_t shape[TI_MAX_DIMS];
    int grad;      /* 1: differentiable input whose gradient is checked */
    double lo, hi; /* random values uniform in [lo, hi] (keep away from kinks) */
    int is_index;  /* i32 integers uniform in [lo, hi] (embedding indices) */
};

struct op_case {
    const char *name; /* unique; the HDF5 group of its fixture */
    const char *op;   /* the ops.def name it covers, e.g. "groupnorm" */
    oc_fn fn;
    double p[8]; /* op parameters, handed to fn */
    int n_in;
    struct oc_input in[OC_MAX_IN];
    double gc_atol, gc_rtol; /* gradcheck tolerances; 0 = 1e-5 / 1e-3 (torch gradcheck) */
    double gc_eps;           /* finite-difference step; 0 = 1e-6 */
    double nmse_tol;         /* backend consistency for f32; 0 = 1e-7 (f16 x1e3, bf16 x1e4) */
    double oracle_atol, oracle_rtol; /* f32 vs PyTorch; 0 = 1e-5 / 1e-4 */
    /* NULL: every backend must run this case (test_backends fails on TI_ERR_UNSUPPORTED or
     * TI_ERR_DTYPE). Else why a backend may refuse it (a size or layout the models never use):
     * test_backends then counts a refusal as a skip with this reason. */
    const char *may_be_unsupported;
};

/* Every case of every family, in a stable order. */
const struct op_case *const *oc_all_cases(int *n);
/* The family of case i ("eltwise", "gemm", "norm", "attention", "misc"): its fixture file is
 * tests/fixtures/ops_<family>.h5. */
const char *oc_case_family(int i);

/* Host data of a case: in[i] as doubles (numel of input i), deterministic for a seed. */
struct oc_data {
    double *in[OC_MAX_IN];
    long numel[OC_MAX_IN];
};
void oc_data_random(struct oc_data *d, const struct op_case *c, unsigned long long seed);
void oc_data_free(struct oc_data *d);

/* Results of one forward (+ backward) run, as host doubles. */
struct oc_result {
    double *out;
    long out_numel;
    int out_ndim;
    int64_t out_shape[TI_MAX_DIMS];
    double *grad[OC_MAX_IN]; /* NULL for inputs without grad */
};
void oc_result_free(struct oc_result *r);

/* Uploads d to ctx's device as `dt` (indices stay i32), runs the case forward; when dout is
 * non-NULL also runs backward with that seed (length out_numel) and collects input gradients.
 * Returns the first failing status (message in ctx->err). */
ti_status oc_run(struct ti_ctx *ctx, const struct op_case *c, const struct oc_data *d,
                 enum ti_dtype dt, const double *dout, struct oc_result *r);

/* Output shape of a case (runs forward once on the CPU in f64). */
ti_status oc_out_numel(const struct op_case *c, const struct oc_data *d, long *numel);

/* Family tables */
extern const struct op_case oc_cases_eltwise[];
extern const struct op_case oc_cases_gemm[];
extern const struct op_case oc_cases_norm[];
extern const struct op_case oc_cases_attention[];
extern const struct op_case oc_cases_misc[];

#endif /* TI_TEST_OP_CASES_H */
