/*
 * safety_checker.c - the reference txt2img safety checker (see safety_checker.h).
 */
#include "safety_checker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h" /* defines: ti_state_dict_* */

ti_status ti_safety_checker_init(struct ti_safety_checker *sc,
                                 const struct ti_clip_vision_hparams *hp, const char *prefix,
                                 struct ti_weights *w, struct ti_err *err) {
    char vp[TI_KEY_MAX], pp[TI_KEY_MAX];
    sc->concept = sc->special = sc->concept_thr = sc->special_thr = ti_tensor_none();
    TI_TRY(ti_clip_vision_init(&sc->v, hp, ti_key(vp, prefix, "vision_model.vision_model."),
                               ti_key(pp, prefix, "visual_projection."), w, err));
    TI_TRY(ti_weights_add2(w, &sc->concept, prefix, "concept_embeds", TI_SAFETY_CONCEPTS,
                           hp->proj_dim, err));
    TI_TRY(ti_weights_add2(w, &sc->special, prefix, "special_care_embeds", TI_SAFETY_SPECIAL,
                           hp->proj_dim, err));
    TI_TRY(ti_weights_add1(w, &sc->concept_thr, prefix, "concept_embeds_weights",
                           TI_SAFETY_CONCEPTS, err));
    return ti_weights_add1(w, &sc->special_thr, prefix, "special_care_embeds_weights",
                           TI_SAFETY_SPECIAL, err);
}

void ti_safety_checker_free(struct ti_safety_checker *sc) {
    ti_clip_vision_free(&sc->v);
}

static ti_status sd_get(void *user, const char *key, struct ti_tensor *view, struct ti_err *err) {
    const struct ti_tensor *t = ti_state_dict_find(user, key);
    (void)err;
    if (!t) return TI_ERR_NOT_FOUND;
    *view = *t;
    return TI_OK;
}

ti_status ti_safety_checker_load_file(struct ti_weights *w, const char *path, struct ti_err *err) {
    struct ti_param_spec *spec = calloc(w->n ? (size_t)w->n : 1, sizeof *spec);
    if (!spec) return ti_error(err, TI_ERR_NOMEM, "loading %s: out of memory", path);
    size_t k = 0;
    for (int i = 0; i < w->n; i++) {
        if (w->items[i].optional) continue;
        spec[k].key = w->items[i].key;
        spec[k].ndim = w->items[i].ndim;
        memcpy(spec[k].shape, w->items[i].shape, sizeof spec[k].shape);
        k++;
    }
    struct ti_state_dict *sd = NULL;
    ti_status st = ti_state_dict_open(&sd, path, NULL, err);
    if (st == TI_OK) st = ti_state_dict_check(sd, spec, k, "the safety checker", err);
    if (st == TI_OK) {
        struct ti_weight_source src = {sd, path, sd_get};
        st = ti_weights_load(w, &src, err);
    }
    ti_state_dict_close(sd);
    free(spec);
    return st;
}

/* numpy's round(x, 3) on a float64: rint(x * 1000) / 1000 (half to even) */
static double np_round3(double x) {
    return nearbyint(x * 1000.0) / 1000.0;
}

void ti_safety_decide(struct ti_safety_result *r, const float *special_thr,
                      const float *concept_thr) {
    double adjustment = 0.0;
    r->special_care = r->nsfw = 0;
    for (int c = 0; c < TI_SAFETY_SPECIAL; c++) {
        /* float32 cosine - float threshold (as a double) + adjustment, left to right */
        double s = (double)r->special_cos[c] - (double)special_thr[c];
        r->special_score[c] = np_round3(s + adjustment);
        if (r->special_score[c] > 0) {
            r->special_care = 1;
            adjustment = 0.01;
        }
    }
    for (int c = 0; c < TI_SAFETY_CONCEPTS; c++) {
        double s = (double)r->concept_cos[c] - (double)concept_thr[c];
        r->concept_score[c] = np_round3(s + adjustment);
        if (r->concept_score[c] > 0) r->nsfw = 1;
    }
}

/* t (any dtype, any backend) -> *h, n host doubles (malloc'd; NULL on error) */
static ti_status to_host(struct ti_ctx *ctx, double **h, const struct ti_tensor *t) {
    size_t n = (size_t)ti_tensor_numel(t);
    struct ti_tensor d = ti_tensor_none();
    *h = malloc(n * sizeof **h);
    if (!*h) return ti_error(&ctx->err, TI_ERR_NOMEM, "safety checker: out of host memory");
    ti_status st = ti_copy(ctx, &d, t, TI_DTYPE_F64);
    if (st == TI_OK) st = ti_ctx_download(ctx, *h, n * sizeof **h, &d);
    ti_tensor_release(&d);
    if (st != TI_OK) {
        free(*h);
        *h = NULL;
    }
    return st;
}

/* torch: normalize(a) . normalize(b)^T, x / max(||x||, 1e-12) per row, in double */
static double cosine(const double *a, const double *b, int n) {
    double na = 0, nb = 0, dot = 0;
    for (int i = 0; i < n; i++) {
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    na = fmax(sqrt(na), 1e-12);
    nb = fmax(sqrt(nb), 1e-12);
    for (int i = 0; i < n; i++)
        dot += (a[i] / na) * (b[i] / nb);
    return dot;
}

ti_status ti_safety_checker_run(struct ti_ctx *ctx, struct ti_safety_result *res,
                                const struct ti_safety_checker *sc,
                                const struct ti_tensor *pixels) {
    struct ti_tensor emb = ti_tensor_none();
    double *e = NULL, *con = NULL, *spe = NULL, *cthr = NULL, *sthr = NULL;
    ti_status st;
    TI_TRY_GOTO(st, ti_clip_vision_forward(ctx, &emb, NULL, NULL, &sc->v, pixels));
    TI_TRY_GOTO(st, to_host(ctx, &e, &emb));
    TI_TRY_GOTO(st, to_host(ctx, &con, &sc->concept));
    TI_TRY_GOTO(st, to_host(ctx, &spe, &sc->special));
    TI_TRY_GOTO(st, to_host(ctx, &cthr, &sc->concept_thr));
    TI_TRY_GOTO(st, to_host(ctx, &sthr, &sc->special_thr));
    int P = sc->v.hp.proj_dim;
    float ct[TI_SAFETY_CONCEPTS], stt[TI_SAFETY_SPECIAL];
    for (int c = 0; c < TI_SAFETY_CONCEPTS; c++)
        ct[c] = (float)cthr[c];
    for (int c = 0; c < TI_SAFETY_SPECIAL; c++)
        stt[c] = (float)sthr[c];
    for (int64_t b = 0; b < emb.shape[0]; b++) {
        struct ti_safety_result *r = &res[b];
        for (int c = 0; c < TI_SAFETY_SPECIAL; c++)
            r->special_cos[c] = (float)cosine(e + b * P, spe + (size_t)c * P, P);
        for (int c = 0; c < TI_SAFETY_CONCEPTS; c++)
            r->concept_cos[c] = (float)cosine(e + b * P, con + (size_t)c * P, P);
        ti_safety_decide(r, stt, ct);
    }
    st = TI_OK;
fail:
    ti_tensor_release(&emb);
    free(e);
    free(con);
    free(spe);
    free(cthr);
    free(sthr);
    return st;
}
