/* op_cases.c - running op cases (see op_cases.h). */
#include "op_cases.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define MAX_CASES 1024
static const struct op_case *all_cases[MAX_CASES];
static const char *all_families[MAX_CASES];
static int n_cases = -1;

static void collect(void) {
    static const struct {
        const char *family;
        const struct op_case *table;
    } tables[] = {{"eltwise", oc_cases_eltwise},
                  {"gemm", oc_cases_gemm},
                  {"norm", oc_cases_norm},
                  {"attention", oc_cases_attention},
                  {"misc", oc_cases_misc}};
    n_cases = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const struct op_case *c = tables[t].table; c->name && n_cases < MAX_CASES; c++) {
            all_families[n_cases] = tables[t].family;
            all_cases[n_cases++] = c;
        }
}

const struct op_case *const *oc_all_cases(int *n) {
    if (n_cases < 0) collect();
    *n = n_cases;
    return all_cases;
}

const char *oc_case_family(int i) {
    if (n_cases < 0) collect();
    return i >= 0 && i < n_cases ? all_families[i] : "?";
}

static long numel_of(const struct oc_input *in) {
    long n = 1;
    for (int i = 0; i < in->ndim; i++)
        n *= (long)in->shape[i];
    return n;
}

void oc_data_random(struct oc_data *d, const struct op_case *c, unsigned long long seed) {
    struct ti_rng r;
    ti_rng_seed(&r, seed);
    memset(d, 0, sizeof *d);
    for (int i = 0; i < c->n_in; i++) {
        const struct oc_input *in = &c->in[i];
        long n = numel_of(in);
        d->numel[i] = n;
        d->in[i] = malloc((size_t)(n ? n : 1) * sizeof(double));
        for (long j = 0; j < n; j++) {
            if (in->is_index) {
                long span = (long)(in->hi - in->lo) + 1;
                d->in[i][j] = in->lo + (double)ti_rng_below(&r, (uint64_t)span);
            } else {
                d->in[i][j] = in->lo + (in->hi - in->lo) * ti_rng_uniform(&r);
            }
        }
    }
}

void oc_data_free(struct oc_data *d) {
    for (int i = 0; i < OC_MAX_IN; i++)
        free(d->in[i]);
    memset(d, 0, sizeof *d);
}

void oc_result_free(struct oc_result *r) {
    free(r->out);
    for (int i = 0; i < OC_MAX_IN; i++)
        free(r->grad[i]);
    memset(r, 0, sizeof *r);
}

/* host doubles -> tensor of dtype dt on ctx */
static ti_status upload(struct ti_ctx *ctx, struct ti_tensor *t, const struct oc_input *in,
                        const double *v, long n, enum ti_dtype dt) {
    struct ti_tensor host =
        ti_tensor_view((void *)v, TI_DTYPE_F64, TI_DEVICE_CPU, in->ndim, in->shape);
    if (in->is_index) {
        int32_t *buf = malloc((size_t)(n ? n : 1) * sizeof *buf);
        for (long j = 0; j < n; j++)
            buf[j] = (int32_t)v[j];
        ti_status st = ti_ctx_upload(ctx, t, buf, TI_DTYPE_I32, in->ndim, in->shape);
        free(buf);
        return st;
    }
    /* convert on the host through the CPU backend's COPY, then upload */
    const struct ti_backend *cpu = ti_backend_cpu();
    size_t es = ti_dtype_size(dt);
    void *buf = malloc((size_t)(n ? n : 1) * es);
    struct ti_tensor hdst = ti_tensor_view(buf, dt, TI_DEVICE_CPU, in->ndim, in->shape);
    struct ti_copy_args ca;
    memset(&ca, 0, sizeof ca);
    ca.out = hdst;
    ca.inp = host;
    struct ti_kctx k;
    memset(&k, 0, sizeof k);
    k.err = &ctx->err;
    ti_status st = cpu->k[dt].copy_forward(&k, &ca);
    if (st == TI_OK) st = ti_ctx_upload(ctx, t, buf, dt, in->ndim, in->shape);
    free(buf);
    return st;
}

/* tensor (any device, dtype) -> malloc'd host doubles */
static ti_status download(struct ti_ctx *ctx, double **out, const struct ti_tensor *t) {
    long n = (long)ti_tensor_numel(t);
    size_t es = ti_dtype_size(t->dtype);
    void *buf = malloc((size_t)(n ? n : 1) * es);
    *out = malloc((size_t)(n ? n : 1) * sizeof(double));
    ti_status st = ti_ctx_download(ctx, buf, (size_t)n * es, t);
    if (st == TI_OK) {
        struct ti_tensor src = ti_tensor_view(buf, t->dtype, TI_DEVICE_CPU, t->ndim, t->shape);
        struct ti_tensor dst = ti_tensor_view(*out, TI_DTYPE_F64, TI_DEVICE_CPU, t->ndim, t->shape);
        struct ti_copy_args ca;
        memset(&ca, 0, sizeof ca);
        ca.out = dst;
        ca.inp = src;
        struct ti_kctx k;
        memset(&k, 0, sizeof k);
        k.err = &ctx->err;
        st = ti_backend_cpu()->k[TI_DTYPE_F64].copy_forward(&k, &ca);
    }
    free(buf);
    return st;
}

ti_status oc_run(struct ti_ctx *ctx, const struct op_case *c, const struct oc_data *d,
                 enum ti_dtype dt, const double *dout, struct oc_result *r) {
    memset(r, 0, sizeof *r);
    struct ti_tensor in[OC_MAX_IN], grad[OC_MAX_IN], out = ti_tensor_none(),
                                                     seed = ti_tensor_none();
    struct ti_tape *tape = NULL;
    ti_status st = TI_OK;
    for (int i = 0; i < OC_MAX_IN; i++)
        in[i] = grad[i] = ti_tensor_none();
    for (int i = 0; i < c->n_in && st == TI_OK; i++)
        st = upload(ctx, &in[i], &c->in[i], d->in[i], d->numel[i], dt);
    if (st == TI_OK && dout) {
        st = ti_tape_init(&tape, &ctx->err);
        ctx->tape = tape;
        for (int i = 0; i < c->n_in && st == TI_OK; i++) {
            if (!c->in[i].grad) continue;
            st = ti_ctx_zeros(ctx, &grad[i], in[i].dtype, in[i].ndim, in[i].shape);
            if (st == TI_OK) st = ti_tape_watch(ctx, &in[i], &grad[i]);
        }
    }
    if (st == TI_OK) st = c->fn(ctx, &out, in, c->p);
    if (st == TI_OK) {
        r->out_ndim = out.ndim;
        for (int i = 0; i < out.ndim; i++)
            r->out_shape[i] = out.shape[i];
        r->out_numel = (long)ti_tensor_numel(&out);
        st = download(ctx, &r->out, &out);
    }
    if (st == TI_OK && dout) {
        struct oc_input so;
        memset(&so, 0, sizeof so);
        so.ndim = out.ndim;
        for (int i = 0; i < out.ndim; i++)
            so.shape[i] = out.shape[i];
        st = upload(ctx, &seed, &so, dout, r->out_numel, out.dtype);
        if (st == TI_OK) st = ti_tape_backward(ctx, &out, &seed);
        for (int i = 0; i < c->n_in && st == TI_OK; i++)
            if (c->in[i].grad) st = download(ctx, &r->grad[i], &grad[i]);
    }
    if (tape) {
        ti_tape_clear(ctx);
        ti_tape_free(&tape);
        ctx->tape = NULL;
    }
    ti_tensor_release(&seed);
    ti_tensor_release(&out);
    for (int i = 0; i < OC_MAX_IN; i++) {
        ti_tensor_release(&in[i]);
        ti_tensor_release(&grad[i]);
    }
    return st;
}

ti_status oc_out_numel(const struct op_case *c, const struct oc_data *d, long *numel) {
    struct ti_ctx ctx;
    TI_TRY(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0));
    struct oc_result r;
    ti_status st = oc_run(&ctx, c, d, TI_DTYPE_F64, NULL, &r);
    *numel = r.out_numel;
    oc_result_free(&r);
    ti_ctx_free(&ctx);
    return st;
}
