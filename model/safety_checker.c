/*
 * safety_checker.c - the reference txt2img safety checker (see safety_checker.h).
 */
#include "safety_checker.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- finding the file and its sizes ---------------------------------------------------- */

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a small text file (config.json) whole; NULL when absent or larger than 1 MB. */
static char *read_small(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc((1 << 20) + 1);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int big = buf && n == (1 << 20) && fgetc(f) != EOF;
    fclose(f);
    if (!buf || big) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* past the JSON string starting at s (on its opening quote) */
static const char *skip_string(const char *s) {
    for (s++; *s && *s != '"'; s++)
        if (*s == '\\' && s[1]) s++;
    return *s ? s + 1 : s;
}

/* In config.json text: the integer value of key `name` directly inside the object that is the
 * value of key `obj` (any depth); 0 when absent. A lenient scan (the file is transformers'
 * output): strings are skipped with their escapes, braces and brackets counted. */
static long json_member_int(const char *text, const char *obj, const char *name) {
    size_t ol = strlen(obj), nl = strlen(name);
    for (const char *s = text; *s;) {
        if (*s != '"') {
            s++;
            continue;
        }
        const char *end = skip_string(s);
        int hit = (size_t)(end - s) == ol + 2 && !strncmp(s + 1, obj, ol);
        s = end;
        if (!hit) continue;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == ':')
            s++;
        if (*s != '{') continue;
        int depth = 0;
        for (; *s; s++) {
            if (*s == '"') {
                const char *e = skip_string(s);
                if (depth == 1 && (size_t)(e - s) == nl + 2 && !strncmp(s + 1, name, nl)) {
                    const char *v = e;
                    while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r' || *v == ':')
                        v++;
                    char *ve;
                    errno = 0;
                    long x = strtol(v, &ve, 10);
                    return ve != v && !errno && x > 0 && x < 1 << 16 ? x : -1;
                }
                s = e - 1;
            } else if (*s == '{' || *s == '[') {
                depth++;
            } else if (*s == '}' || *s == ']') {
                if (--depth == 0) break;
            }
        }
    }
    return 0;
}

/* key's tensor in sd with ndim dimensions; NULL (err set, naming file and key) otherwise */
static const struct ti_tensor *need(const struct ti_state_dict *sd, const char *key,
                                    const char *file, int ndim, struct ti_err *err) {
    const struct ti_tensor *t = ti_state_dict_find(sd, key);
    if (!t) {
        ti_error(err, TI_ERR_NOT_FOUND,
                 "--safety_checker %s: no key %s; expected the reference's safety checker "
                 "(diffusers StableDiffusionSafetyChecker, e.g. CompVis/"
                 "stable-diffusion-safety-checker's model.safetensors or pytorch_model.bin)",
                 file, key);
        return NULL;
    }
    if (t->ndim != ndim) {
        ti_error(err, TI_ERR_SHAPE, "--safety_checker %s: %s has %d dimensions, expected %d", file,
                 key, t->ndim, ndim);
        return NULL;
    }
    return t;
}

ti_status ti_safety_checker_probe(struct ti_clip_vision_hparams *hp, char *file, size_t file_n,
                                  const char *path, struct ti_err *err) {
    static const char *const names[] = {"model.safetensors", "pytorch_model.bin",
                                        "safety_checker/model.safetensors",
                                        "safety_checker/pytorch_model.bin", NULL};
    char cfg[4096];
    struct stat st;
    if (stat(path, &st) != 0)
        return ti_error(err, TI_ERR_IO, "--safety_checker %s: %s", path, strerror(errno));
    if (strlen(path) + 40 > file_n || strlen(path) + 40 > sizeof cfg)
        return ti_error(err, TI_ERR_INVALID, "--safety_checker %s: path too long", path);
    if (S_ISDIR(st.st_mode)) {
        int k = 0;
        for (; names[k]; k++) {
            snprintf(file, file_n, "%s/%s", path, names[k]);
            if (is_file(file)) break;
        }
        if (!names[k])
            return ti_error(err, TI_ERR_NOT_FOUND,
                            "--safety_checker %s: a folder without model.safetensors or "
                            "pytorch_model.bin (nor safety_checker/ holding one)",
                            path);
        snprintf(cfg, sizeof cfg, "%s/%s", path,
                 k >= 2 ? "safety_checker/config.json" : "config.json");
    } else {
        snprintf(file, file_n, "%s", path);
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) : 1;
        snprintf(cfg, sizeof cfg, "%.*s/config.json", dl, slash ? path : ".");
    }
    struct ti_state_dict *sd = NULL;
    ti_status s = ti_state_dict_open(&sd, file, NULL, err);
    if (s != TI_OK) return s;
    const char *V = "vision_model.vision_model.";
    char key[TI_KEY_MAX];
    const struct ti_tensor *patch, *pos, *fc1, *proj;
    s = TI_ERR_NOT_FOUND;
    if (!(patch = need(sd, ti_key(key, V, "embeddings.patch_embedding.weight"), file, 4, err)) ||
        !(pos = need(sd, ti_key(key, V, "embeddings.position_embedding.weight"), file, 2, err)) ||
        !(fc1 = need(sd, ti_key(key, V, "encoder.layers.0.mlp.fc1.weight"), file, 2, err)) ||
        !(proj = need(sd, "visual_projection.weight", file, 2, err)))
        goto done;
    memset(hp, 0, sizeof *hp);
    hp->width = (int)patch->shape[0];
    hp->patch = (int)patch->shape[2];
    int64_t g = (int64_t)llround(sqrt((double)(pos->shape[0] - 1)));
    if (patch->shape[1] != 3 || patch->shape[3] != hp->patch || g < 1 ||
        g * g + 1 != pos->shape[0] || pos->shape[1] != hp->width || g * hp->patch > 4096) {
        s = ti_error(err, TI_ERR_SHAPE,
                     "--safety_checker %s: patch embedding %lldx%lldx%lldx%lld and %lld "
                     "positions do not make a square RGB ViT (expected positions = grid^2 + 1)",
                     file, (long long)patch->shape[0], (long long)patch->shape[1],
                     (long long)patch->shape[2], (long long)patch->shape[3],
                     (long long)pos->shape[0]);
        goto done;
    }
    hp->image_size = (int)g * hp->patch;
    hp->ff_width = (int)fc1->shape[0];
    hp->proj_dim = (int)proj->shape[0];
    while (hp->layers < 1000 &&
           ti_state_dict_find(
               sd, ti_key(key, V, "encoder.layers.%d.self_attn.q_proj.weight", hp->layers)))
        hp->layers++;
    char *text = read_small(cfg);
    long heads = 0;
    if (text) {
        heads = json_member_int(text, "vision_config", "num_attention_heads");
        if (heads == 0) heads = json_member_int(text, "vision_config_dict", "num_attention_heads");
        free(text);
    }
    if (heads < 0 || (heads > 0 && hp->width % heads)) {
        s = ti_error(err, TI_ERR_SHAPE,
                     "--safety_checker %s: vision_config.num_attention_heads in %s does not "
                     "divide the width %d",
                     file, cfg, hp->width);
        goto done;
    }
    if (heads == 0) {
        if (hp->width % 64) {
            s = ti_error(err, TI_ERR_SHAPE,
                         "--safety_checker %s: width %d is not a multiple of CLIP's head width "
                         "64 and no config.json beside it gives vision_config.num_attention_heads",
                         file, hp->width);
            goto done;
        }
        heads = hp->width / 64;
    }
    hp->heads = (int)heads;
    hp->head_dim = hp->width / hp->heads;
    s = TI_OK;
done:
    ti_state_dict_close(sd);
    return s;
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

ti_status ti_safety_checker_load(struct ti_safety_checker *sc, struct ti_weights *w,
                                 const char *path, const struct ti_backend *be, enum ti_dtype dt,
                                 struct ti_err *err) {
    struct ti_clip_vision_hparams hp;
    char file[4200];
    ti_weights_init(w);
    memset(sc, 0, sizeof *sc);
    ti_status st = ti_safety_checker_probe(&hp, file, sizeof file, path, err);
    if (st == TI_OK) st = ti_safety_checker_init(sc, &hp, "", w, err);
    if (st == TI_OK) st = ti_weights_alloc(w, be, dt, err);
    if (st == TI_OK) st = ti_safety_checker_load_file(w, file, err);
    if (st != TI_OK) {
        ti_safety_checker_free(sc);
        ti_weights_free(w);
    }
    return st;
}
