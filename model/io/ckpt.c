/* ckpt.c - state dicts from torch files, safetensors and diffusers folders; EMA selection;
 * diffusers key mapping; shape checks with likely causes (see ckpt.h). */
#include "ckpt.h"

#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: snprintf, vsnprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free, qsort */
#include <string.h> /* defines: memcpy, strcmp, strncmp, strlen, strstr */

#include "fileio.h"
#include "safetensors.h"
#include "torchfile.h"

#define MAX_SOURCES 3
#define KEY_MAX     1024

struct ti_state_dict {
    char *path;
    enum ti_state_dict_source source;
    struct ti_torchfile *tf[MAX_SOURCES];
    struct ti_safetensors *st[MAX_SOURCES];
    struct ti_state_dict_entry *e;
    size_t n, cap;
    void **owned; /* keys and synthesised tensors */
    size_t n_owned, cap_owned;
    int has_ema;
    char *tokenizer_dir;
};

static void *own(struct ti_state_dict *sd, void *p) {
    if (!p) return NULL;
    if (sd->n_owned == sd->cap_owned) {
        size_t cap = sd->cap_owned ? 2 * sd->cap_owned : 256;
        void **o = realloc(sd->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        sd->owned = o;
        sd->cap_owned = cap;
    }
    sd->owned[sd->n_owned++] = p;
    return p;
}

static char *own_str(struct ti_state_dict *sd, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return own(sd, p);
}

static ti_status add_entry(struct ti_state_dict *sd, const char *key, const struct ti_tensor *t,
                           struct ti_err *err) {
    if (sd->n == sd->cap) {
        size_t cap = sd->cap ? 2 * sd->cap : 1024;
        struct ti_state_dict_entry *e = realloc(sd->e, cap * sizeof *e);
        if (!e) return ti_error(err, TI_ERR_NOMEM, "out of memory");
        sd->e = e;
        sd->cap = cap;
    }
    const char *k = own_str(sd, key);
    if (!k) return ti_error(err, TI_ERR_NOMEM, "out of memory");
    sd->e[sd->n].key = k;
    sd->e[sd->n].t = *t;
    sd->n++;
    return TI_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const struct ti_state_dict_entry *)a)->key,
                  ((const struct ti_state_dict_entry *)b)->key);
}

static struct ti_state_dict_entry *find_entry(const struct ti_state_dict *sd, const char *key) {
    size_t lo = 0, hi = sd->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sd->e[mid].key, key);
        if (!c) return &sd->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- diffusers -> original names ----------------------------------------------------------- */

/* Matches k against pat, where each '#' in pat is a decimal number (1-2 digits) stored into
 * nums[]; on success *rest points after the matched prefix. */
static int match(const char *k, const char *pat, int *nums, const char **rest) {
    int ni = 0;
    while (*pat) {
        if (*pat == '#') {
            if (*k < '0' || *k > '9') return 0;
            int v = 0, digits = 0;
            while (*k >= '0' && *k <= '9' && digits < 3)
                v = v * 10 + (*k++ - '0'), digits++;
            if (digits > 2 || (digits == 2 && v < 10)) return 0;
            nums[ni++] = v;
            pat++;
            continue;
        }
        if (*k++ != *pat++) return 0;
    }
    *rest = k;
    return 1;
}

static int fmt(char *out, size_t n, const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fmt(char *out, size_t n, const char *f, ...) {
    va_list ap;
    va_start(ap, f);
    int k = vsnprintf(out, n, f, ap);
    va_end(ap);
    return k >= 0 && (size_t)k < n;
}

/* inside UNet resnets: norm1 -> in_layers.0, ... */
static const char *unet_resnet_part(const char *rest, const char **tail) {
    static const char *const map[][2] = {
        {"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
        {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
        {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t n = strlen(map[i][0]);
        if (!strncmp(rest, map[i][0], n)) {
            *tail = rest + n;
            return map[i][1];
        }
    }
    return NULL;
}

static int map_unet(const char *k, char *out, size_t n) {
    const char *P = "model.diffusion_model.", *r, *tail, *part;
    int v[4];
    if (match(k, "time_embedding.linear_1.", v, &r)) return fmt(out, n, "%stime_embed.0.%s", P, r);
    if (match(k, "time_embedding.linear_2.", v, &r)) return fmt(out, n, "%stime_embed.2.%s", P, r);
    if (match(k, "conv_in.", v, &r)) return fmt(out, n, "%sinput_blocks.0.0.%s", P, r);
    if (match(k, "conv_norm_out.", v, &r)) return fmt(out, n, "%sout.0.%s", P, r);
    if (match(k, "conv_out.", v, &r)) return fmt(out, n, "%sout.2.%s", P, r);
    if (match(k, "down_blocks.#.resnets.#.", v, &r) && v[0] <= 3 && v[1] <= 1 &&
        (part = unet_resnet_part(r, &tail)))
        return fmt(out, n, "%sinput_blocks.%d.0.%s%s", P, 3 * v[0] + v[1] + 1, part, tail);
    if (match(k, "down_blocks.#.attentions.#.", v, &r) && v[0] <= 2 && v[1] <= 1)
        return fmt(out, n, "%sinput_blocks.%d.1.%s", P, 3 * v[0] + v[1] + 1, r);
    if (match(k, "down_blocks.#.downsamplers.0.conv.", v, &r) && v[0] <= 2)
        return fmt(out, n, "%sinput_blocks.%d.0.op.%s", P, 3 * (v[0] + 1), r);
    if (match(k, "up_blocks.#.resnets.#.", v, &r) && v[0] <= 3 && v[1] <= 2 &&
        (part = unet_resnet_part(r, &tail)))
        return fmt(out, n, "%soutput_blocks.%d.0.%s%s", P, 3 * v[0] + v[1], part, tail);
    if (match(k, "up_blocks.#.attentions.#.", v, &r) && v[0] >= 1 && v[0] <= 3 && v[1] <= 2)
        return fmt(out, n, "%soutput_blocks.%d.1.%s", P, 3 * v[0] + v[1], r);
    if (match(k, "up_blocks.#.upsamplers.0.conv.", v, &r) && v[0] <= 2)
        return fmt(out, n, "%soutput_blocks.%d.%d.conv.%s", P, 3 * v[0] + 2, v[0] == 0 ? 1 : 2, r);
    if (match(k, "mid_block.attentions.0.", v, &r)) return fmt(out, n, "%smiddle_block.1.%s", P, r);
    if (match(k, "mid_block.resnets.#.", v, &r) && v[0] <= 1 && (part = unet_resnet_part(r, &tail)))
        return fmt(out, n, "%smiddle_block.%d.%s%s", P, 2 * v[0], part, tail);
    return 0;
}

static const char *vae_resnet_part(const char *rest, const char **tail) {
    static const char *const map[][2] = {
        {"norm1.", "norm1."},
        {"conv1.", "conv1."},
        {"norm2.", "norm2."},
        {"conv2.", "conv2."},
        {"conv_shortcut.", "nin_shortcut."},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t n = strlen(map[i][0]);
        if (!strncmp(rest, map[i][0], n)) {
            *tail = rest + n;
            return map[i][1];
        }
    }
    return NULL;
}

static const char *vae_attn_part(const char *rest, const char **tail) {
    static const char *const map[][2] = {
        {"group_norm.", "norm."},
        {"query.", "q."},
        {"to_q.", "q."},
        {"key.", "k."},
        {"to_k.", "k."},
        {"value.", "v."},
        {"to_v.", "v."},
        {"proj_attn.", "proj_out."},
        {"to_out.0.", "proj_out."},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t n = strlen(map[i][0]);
        if (!strncmp(rest, map[i][0], n)) {
            *tail = rest + n;
            return map[i][1];
        }
    }
    return NULL;
}

static int map_vae(const char *k, char *out, size_t n) {
    const char *P = "first_stage_model.", *r, *tail, *part;
    int v[4];
    if (match(k, "quant_conv.", v, &r) || match(k, "post_quant_conv.", v, &r))
        return fmt(out, n, "%s%s", P, k);
    for (int d = 0; d < 2; d++) {
        const char *ed = d ? "decoder" : "encoder";
        char pat[64];
        snprintf(pat, sizeof pat, "%s.", ed);
        const char *s;
        if (!match(k, pat, v, &s)) continue;
        if (match(s, "conv_in.", v, &r) || match(s, "conv_out.", v, &r))
            return fmt(out, n, "%s%s.%s", P, ed, s);
        if (match(s, "conv_norm_out.", v, &r)) return fmt(out, n, "%s%s.norm_out.%s", P, ed, r);
        if (match(s, "mid_block.resnets.#.", v, &r) && v[0] <= 1 &&
            (part = vae_resnet_part(r, &tail)))
            return fmt(out, n, "%s%s.mid.block_%d.%s%s", P, ed, v[0] + 1, part, tail);
        if (match(s, "mid_block.attentions.0.", v, &r) && (part = vae_attn_part(r, &tail)))
            return fmt(out, n, "%s%s.mid.attn_1.%s%s", P, ed, part, tail);
        if (!d) {
            if (match(s, "down_blocks.#.resnets.#.", v, &r) && v[0] <= 3 && v[1] <= 1 &&
                (part = vae_resnet_part(r, &tail)))
                return fmt(out, n, "%sencoder.down.%d.block.%d.%s%s", P, v[0], v[1], part, tail);
            if (match(s, "down_blocks.#.downsamplers.0.conv.", v, &r) && v[0] <= 2)
                return fmt(out, n, "%sencoder.down.%d.downsample.conv.%s", P, v[0], r);
        } else {
            if (match(s, "up_blocks.#.resnets.#.", v, &r) && v[0] <= 3 && v[1] <= 2 &&
                (part = vae_resnet_part(r, &tail)))
                return fmt(out, n, "%sdecoder.up.%d.block.%d.%s%s", P, 3 - v[0], v[1], part, tail);
            if (match(s, "up_blocks.#.upsamplers.0.conv.", v, &r) && v[0] <= 2)
                return fmt(out, n, "%sdecoder.up.%d.upsample.conv.%s", P, 3 - v[0], r);
        }
    }
    return 0;
}

int ti_diffusers_key_map(const char *component, const char *key, char *out, size_t n) {
    if (!strcmp(component, "unet")) return map_unet(key, out, n);
    if (!strcmp(component, "vae")) return map_vae(key, out, n);
    if (!strcmp(component, "text_encoder"))
        return fmt(out, n, "cond_stage_model.transformer.%s", key);
    return 0;
}

/* ---- opening ------------------------------------------------------------------------------- */

struct collect {
    struct ti_state_dict *sd;
};

static ti_status collect_tensor(void *ud, const char *path, const struct ti_py *v,
                                struct ti_err *err) {
    struct collect *c = ud;
    return add_entry(c->sd, path, &v->u.tensor.t, err);
}

/* Opens one file (torch or safetensors, by content) as source slot `slot`. */
static ti_status open_file(struct ti_state_dict *sd, int slot, const char *path, unsigned flags,
                           struct ti_err *err) {
    struct ti_fmap m;
    TI_TRY(ti_fmap_open(&m, path, err));
    ti_status st;
    if (ti_torchfile_sniff(m.data, m.size) != TI_TORCH_NONE) {
        st = ti_torchfile_open_mem(&sd->tf[slot], m.data, m.size, path, flags, err);
        if (st == TI_OK) sd->tf[slot]->map = m;
    } else if (ti_safetensors_sniff(m.data, m.size)) {
        st = ti_safetensors_open_mem(&sd->st[slot], m.data, m.size, path, err);
        if (st == TI_OK) sd->st[slot]->map = m;
    } else {
        st = ti_error(err, TI_ERR_FORMAT,
                      "'%s' is neither a torch file (.ckpt/.pt/.bin) nor a safetensors file", path);
    }
    if (st != TI_OK) ti_fmap_close(&m);
    return st;
}

static ti_status load_file(struct ti_state_dict *sd, const char *path, unsigned flags,
                           struct ti_err *err) {
    TI_TRY(open_file(sd, 0, path, flags, err));
    if (sd->tf[0]) {
        sd->source = TI_SD_TORCH;
        const struct ti_py *root = sd->tf[0]->root;
        const struct ti_py *sub = ti_py_dict_get(root, "state_dict");
        if (sub && sub->kind == TI_PY_DICT) root = sub;
        struct collect c = {sd};
        TI_TRY(ti_pickle_walk_tensors(sd->tf[0]->pk, root, collect_tensor, &c, err));
    } else {
        sd->source = TI_SD_SAFETENSORS;
        for (size_t i = 0; i < sd->st[0]->n; i++)
            TI_TRY(add_entry(sd, sd->st[0]->tensors[i].name, &sd->st[0]->tensors[i].t, err));
    }
    if (sd->n == 0) return ti_error(err, TI_ERR_FORMAT, "'%s' holds no tensors", path);
    return TI_OK;
}

static const char *const comp_files[3][4] = {
    {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
     "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin"},
    {"model.safetensors", "pytorch_model.bin", "model.fp16.safetensors", "pytorch_model.fp16.bin"},
    {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
     "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin"},
};
static const char *const comp_names[3] = {"unet", "text_encoder", "vae"};

static ti_status add_mapped(struct ti_state_dict *sd, const char *comp, const char *key,
                            const struct ti_tensor *t, const char *file, struct ti_err *err) {
    char mapped[KEY_MAX];
    if (!ti_diffusers_key_map(comp, key, mapped, sizeof mapped))
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s': diffusers %s key '%s' has no SD v1 / LDM "
                        "counterpart (ti maps the SD v1 layout; an SDXL or otherwise different "
                        "model cannot be loaded)",
                        file, comp, key);
    struct ti_tensor v = *t;
    /* VAE attention: diffusers keeps [C, C] linear weights, the original [C, C, 1, 1] convs */
    size_t ml = strlen(mapped);
    if (!strcmp(comp, "vae") && strstr(mapped, ".mid.attn_1.") && v.ndim == 2 && ml > 7 &&
        !strcmp(mapped + ml - 7, ".weight") && !strstr(mapped, ".norm.")) {
        v.ndim = 4;
        v.shape[2] = v.shape[3] = 1;
        v.stride[2] = v.stride[3] = 1;
    }
    return add_entry(sd, mapped, &v, err);
}

static ti_status load_diffusers(struct ti_state_dict *sd, const char *dir, unsigned flags,
                                struct ti_err *err) {
    char path[4096];
    int found = 0;
    sd->source = TI_SD_DIFFUSERS;
    for (int c = 0; c < 3; c++) {
        snprintf(path, sizeof path, "%s/%s", dir, comp_names[c]);
        if (!ti_path_is_dir(path)) continue;
        found++;
        int k = 0;
        for (; k < 4; k++) {
            snprintf(path, sizeof path, "%s/%s/%s", dir, comp_names[c], comp_files[c][k]);
            if (ti_path_is_file(path)) break;
        }
        if (k == 4)
            return ti_error(err, TI_ERR_NOT_FOUND,
                            "diffusers folder '%s': %s/ holds none of %s, "
                            "%s, %s, %s (sharded weights are not supported)",
                            dir, comp_names[c], comp_files[c][0], comp_files[c][1],
                            comp_files[c][2], comp_files[c][3]);
        TI_TRY(open_file(sd, c, path, flags, err));
        if (sd->tf[c]) {
            struct ti_state_dict tmp = {0}; /* collect raw keys, then map them */
            struct collect col = {&tmp};
            ti_status st =
                ti_pickle_walk_tensors(sd->tf[c]->pk, sd->tf[c]->root, collect_tensor, &col, err);
            for (size_t i = 0; st == TI_OK && i < tmp.n; i++)
                st = add_mapped(sd, comp_names[c], tmp.e[i].key, &tmp.e[i].t, path, err);
            for (size_t i = 0; i < tmp.n_owned; i++)
                free(tmp.owned[i]);
            free(tmp.owned);
            free(tmp.e);
            TI_TRY(st);
        } else {
            for (size_t i = 0; i < sd->st[c]->n; i++)
                TI_TRY(add_mapped(sd, comp_names[c], sd->st[c]->tensors[i].name,
                                  &sd->st[c]->tensors[i].t, path, err));
        }
    }
    if (!found)
        return ti_error(err, TI_ERR_FORMAT,
                        "'%s' is a folder but not a diffusers model (it has "
                        "no unet/, text_encoder/ or vae/)",
                        dir);
    snprintf(path, sizeof path, "%s/tokenizer", dir);
    if (ti_path_is_dir(path) && !(sd->tokenizer_dir = own_str(sd, path)))
        return ti_error(err, TI_ERR_NOMEM, "out of memory");
    /* newer transformers do not save position_ids: synthesise 0..P-1 */
    const char *pe_key =
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight";
    const char *pi_key = "cond_stage_model.transformer.text_model.embeddings.position_ids";
    int has_pi = 0;
    const struct ti_tensor *pe = NULL;
    for (size_t i = 0; i < sd->n; i++) {
        if (!strcmp(sd->e[i].key, pi_key)) has_pi = 1;
        if (!strcmp(sd->e[i].key, pe_key)) pe = &sd->e[i].t;
    }
    if (pe && !has_pi && pe->ndim == 2 && pe->shape[0] > 0 && pe->shape[0] <= 1 << 20) {
        int64_t p = pe->shape[0];
        int64_t *ids = own(sd, malloc((size_t)p * sizeof *ids));
        if (!ids) return ti_error(err, TI_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < p; i++)
            ids[i] = i;
        struct ti_tensor t = ti_tensor_view(ids, TI_DTYPE_I64, TI_DEVICE_CPU, 2, (int64_t[]){1, p});
        TI_TRY(add_entry(sd, pi_key, &t, err));
    }
    return TI_OK;
}

/* "model.diffusion_model.a.b" -> "model_ema.diffusion_modelab" */
static int ema_key(const char *key, char *out, size_t n) {
    const char *pre = "model.diffusion_model.";
    size_t pl = strlen(pre);
    if (strncmp(key, pre, pl)) return 0;
    size_t k = (size_t)snprintf(out, n, "model_ema.diffusion_model");
    for (const char *s = key + pl; *s && k + 1 < n; s++)
        if (*s != '.') out[k++] = *s;
    out[k] = '\0';
    return k + 1 < n;
}

static ti_status select_ema(struct ti_state_dict *sd, struct ti_err *err) {
    if (!sd->has_ema)
        return ti_error(err, TI_ERR_NOT_FOUND,
                        "EMA weights were asked for, but '%s' has no "
                        "model_ema.* tensors (an EMA-only checkpoint already holds the EMA "
                        "weights under model.diffusion_model.*: load it without asking for EMA)",
                        sd->path);
    size_t swapped = 0;
    for (size_t i = 0; i < sd->n; i++) {
        char ek[KEY_MAX];
        if (!ema_key(sd->e[i].key, ek, sizeof ek)) continue;
        const struct ti_state_dict_entry *e = find_entry(sd, ek);
        if (!e)
            return ti_error(err, TI_ERR_NOT_FOUND,
                            "'%s': EMA weights were asked for, but "
                            "'%s' has no EMA copy '%s'",
                            sd->path, sd->e[i].key, ek);
        if (!ti_tensor_same_shape(&e->t, &sd->e[i].t)) {
            char a[128], b[128];
            return ti_error(err, TI_ERR_SHAPE, "'%s': EMA tensor '%s' has shape %s but '%s' has %s",
                            sd->path, ek, ti_shape_str(e->t.ndim, e->t.shape, a, sizeof a),
                            sd->e[i].key,
                            ti_shape_str(sd->e[i].t.ndim, sd->e[i].t.shape, b, sizeof b));
        }
        sd->e[i].t = e->t;
        swapped++;
    }
    if (!swapped)
        return ti_error(err, TI_ERR_NOT_FOUND,
                        "'%s': EMA weights were asked for, but the file "
                        "has no model.diffusion_model.* tensors to replace",
                        sd->path);
    return TI_OK;
}

ti_status ti_state_dict_open(struct ti_state_dict **out, const char *path,
                             const struct ti_state_dict_opts *opts, struct ti_err *err) {
    *out = NULL;
    struct ti_state_dict_opts o = {0};
    if (opts) o = *opts;
    struct ti_state_dict *sd = calloc(1, sizeof *sd);
    if (!sd || !(sd->path = malloc(strlen(path) + 1))) {
        free(sd);
        return ti_error(err, TI_ERR_NOMEM, "out of memory");
    }
    memcpy(sd->path, path, strlen(path) + 1);
    unsigned flags = (o.verify_crc ? TI_TORCH_VERIFY_CRC : 0u) |
                     (o.allow_unknown_globals ? TI_TORCH_ALLOW_UNKNOWN_GLOBALS : 0u);
    ti_status st = ti_path_is_dir(path) ? load_diffusers(sd, path, flags, err)
                                        : load_file(sd, path, flags, err);
    if (st == TI_OK) {
        qsort(sd->e, sd->n, sizeof *sd->e, cmp_entry);
        for (size_t i = 1; i < sd->n; i++)
            if (!strcmp(sd->e[i - 1].key, sd->e[i].key)) {
                st = ti_error(err, TI_ERR_FORMAT, "'%s': the key '%s' appears twice", path,
                              sd->e[i].key);
                break;
            }
    }
    if (st == TI_OK)
        for (size_t i = 0; i < sd->n && !sd->has_ema; i++)
            if (!strncmp(sd->e[i].key, "model_ema.", 10)) sd->has_ema = 1;
    if (st == TI_OK && o.use_ema && (o.use_ema != TI_USE_EMA_IF_PRESENT || sd->has_ema))
        st = select_ema(sd, err);
    if (st != TI_OK) {
        ti_state_dict_close(sd);
        return st;
    }
    *out = sd;
    return TI_OK;
}

void ti_state_dict_close(struct ti_state_dict *sd) {
    if (!sd) return;
    for (int i = 0; i < MAX_SOURCES; i++) {
        ti_torchfile_close(sd->tf[i]);
        ti_safetensors_close(sd->st[i]);
    }
    for (size_t i = 0; i < sd->n_owned; i++)
        free(sd->owned[i]);
    free(sd->owned);
    free(sd->e);
    free(sd->path);
    free(sd);
}

size_t ti_state_dict_count(const struct ti_state_dict *sd) {
    return sd->n;
}
const struct ti_state_dict_entry *ti_state_dict_at(const struct ti_state_dict *sd, size_t i) {
    return i < sd->n ? &sd->e[i] : NULL;
}
const struct ti_tensor *ti_state_dict_find(const struct ti_state_dict *sd, const char *key) {
    const struct ti_state_dict_entry *e = find_entry(sd, key);
    return e ? &e->t : NULL;
}
ti_status ti_state_dict_get(const struct ti_state_dict *sd, const char *key,
                            const struct ti_tensor **out, struct ti_err *err) {
    *out = ti_state_dict_find(sd, key);
    if (!*out) return ti_error(err, TI_ERR_NOT_FOUND, "'%s' has no tensor '%s'", sd->path, key);
    return TI_OK;
}
enum ti_state_dict_source ti_state_dict_source(const struct ti_state_dict *sd) {
    return sd->source;
}
const char *ti_state_dict_path(const struct ti_state_dict *sd) {
    return sd->path;
}
int ti_state_dict_has_ema(const struct ti_state_dict *sd) {
    return sd->has_ema;
}
const char *ti_state_dict_tokenizer_dir(const struct ti_state_dict *sd) {
    return sd->tokenizer_dir;
}

/* ---- prefetching ------------------------------------------------------------------------- */

struct span {
    const uint8_t *p;
    uint64_t n;
};

static int cmp_span(const void *a, const void *b) {
    const uint8_t *x = ((const struct span *)a)->p, *y = ((const struct span *)b)->p;
    return x < y ? -1 : x > y;
}

void ti_state_dict_prefetch(const struct ti_state_dict *sd, const struct ti_param_spec *spec,
                            size_t n) {
    size_t cnt = spec ? n : sd->n, k = 0;
    struct span *s = malloc((cnt ? cnt : 1) * sizeof *s);
    if (!s) return; /* only a hint */
    for (size_t i = 0; i < cnt; i++) {
        const struct ti_tensor *t = spec ? ti_state_dict_find(sd, spec[i].key) : &sd->e[i].t;
        if (!t || !t->data) continue;
        int64_t last = 0; /* the bytes a view spans, strides included */
        for (int d = 0; d < t->ndim; d++)
            last += (t->shape[d] - 1) * t->stride[d];
        if (ti_tensor_numel(t) <= 0) continue;
        s[k++] = (struct span){t->data, (uint64_t)(last + 1) * ti_dtype_size(t->dtype)};
    }
    qsort(s, k, sizeof *s, cmp_span); /* file order: one sweep over the disk */
    for (size_t i = 0; i < k;) {      /* merge neighbours into large requests */
        const uint8_t *a = s[i].p, *e = s[i].p + s[i].n;
        for (i++; i < k && s[i].p <= e + 4096; i++)
            if (s[i].p + s[i].n > e) e = s[i].p + s[i].n;
        ti_prefetch(a, (uint64_t)(e - a));
    }
    free(s);
}

/* ---- what the file looks like -------------------------------------------------------------- */

enum family { FAM_UNKNOWN, FAM_SD1, FAM_SD2, FAM_SDXL, FAM_LDM, FAM_EMBEDDING, FAM_LORA, FAM_VAE };

/* What a family is; `width` is the context width the file's own tensors show (0: unknown).
 * A width other than the family's own (a tiny test model of the same layout) is reported as
 * found, never as the family's usual width. */
static const char *family_text(enum family f, int64_t width, char *buf, size_t n) {
    static const struct {
        const char *full, *layout;
        int64_t width;
    } fam[] = {
        [FAM_SD1] = {"an SD v1 checkpoint (CLIP ViT-L/14 text encoder",
                     "an SD v1-layout checkpoint "
                     "(CLIP text encoder",
                     768},
        [FAM_SD2] = {"an SD 2.x checkpoint (OpenCLIP ViT-H text encoder",
                     "an SD 2.x-layout checkpoint (OpenCLIP text encoder", 1024},
        [FAM_SDXL] = {"an SDXL checkpoint (two text encoders",
                      "an SDXL-layout checkpoint (two text "
                      "encoders",
                      2048},
        [FAM_LDM] = {"an LDM text2img-large checkpoint (BERT text encoder",
                     "an LDM text2img-layout checkpoint (BERT text encoder", 1280},
    };
    switch (f) {
    case FAM_SD1:
    case FAM_SD2:
    case FAM_SDXL:
    case FAM_LDM:
        if (width <= 0 || width == fam[f].width)
            snprintf(buf, n, "%s, context width %lld)", fam[f].full, (long long)fam[f].width);
        else
            snprintf(buf, n, "%s, context width %lld)", fam[f].layout, (long long)width);
        return buf;
    case FAM_EMBEDDING: return "a textual-inversion embedding file, not a model checkpoint";
    case FAM_LORA: return "a LoRA file, not a full model checkpoint";
    case FAM_VAE: return "a VAE-only file, not a full model checkpoint";
    default: return "";
    }
}

static int64_t ctx_width_of(const struct ti_tensor *t) {
    return t && t->ndim == 2 ? t->shape[1] : 0;
}

/* The context width the tensors show: the UNet's cross-attention key input, else the text
 * encoder's token embedding (as the model loaders derive it); 0 if neither is there. */
static int64_t ctx_width(const struct ti_state_dict *sd) {
    static const char *const keys[] = {
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        "cond_stage_model.model.token_embedding.weight",
        "cond_stage_model.transformer.token_emb.weight",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int64_t w = ctx_width_of(ti_state_dict_find(sd, keys[i]));
        if (w > 0) return w;
    }
    return 0;
}

static enum family guess(const struct ti_state_dict *sd, int *inpaint) {
    int has_unet = 0, has_vae = 0, has_other = 0;
    enum family by_keys = FAM_UNKNOWN;
    *inpaint = 0;
    for (size_t i = 0; i < sd->n; i++) {
        const char *k = sd->e[i].key;
        if (!strncmp(k, "conditioner.", 12) || !strncmp(k, "model.diffusion_model.label_emb.", 32))
            return FAM_SDXL;
        if (!strncmp(k, "cond_stage_model.model.", 23)) by_keys = FAM_SD2;
        if (!strcmp(k, "cond_stage_model.transformer.token_emb.weight")) by_keys = FAM_LDM;
        if (!strncmp(k, "cond_stage_model.transformer.text_model.", 40) && by_keys == FAM_UNKNOWN)
            by_keys = FAM_SD1;
        if (!strncmp(k, "string_to_param", 15) || !strcmp(k, "emb_params") || !strcmp(k, "clip_l"))
            return FAM_EMBEDDING;
        if (!strncmp(k, "lora_unet_", 10) || !strncmp(k, "lora_te", 7)) return FAM_LORA;
        if (!strncmp(k, "model.diffusion_model.", 22))
            has_unet = 1;
        else if (!strncmp(k, "first_stage_model.", 18) || !strncmp(k, "encoder.", 8) ||
                 !strncmp(k, "decoder.", 8) || !strncmp(k, "quant_conv.", 11) ||
                 !strncmp(k, "post_quant_conv.", 16))
            has_vae = 1;
        else
            has_other = 1;
    }
    const struct ti_tensor *in0 =
        ti_state_dict_find(sd, "model.diffusion_model.input_blocks.0.0.weight");
    if (in0 && in0->ndim == 4 && in0->shape[1] == 9) *inpaint = 1;
    int64_t ctx = ctx_width_of(ti_state_dict_find(
        sd, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"));
    if (ctx == 2048) return FAM_SDXL;
    if (ctx == 1024) return FAM_SD2;
    if (ctx == 1280) return FAM_LDM;
    if (ctx == 768 && by_keys != FAM_SD2 && by_keys != FAM_LDM) return FAM_SD1;
    if (by_keys != FAM_UNKNOWN) return by_keys;
    if (!has_unet && has_vae && !has_other) return FAM_VAE;
    return FAM_UNKNOWN;
}

const char *ti_state_dict_describe(const struct ti_state_dict *sd, char *buf, size_t n) {
    int inpaint;
    enum family f = guess(sd, &inpaint);
    char fam[160];
    snprintf(buf, n, "%s%s", family_text(f, ctx_width(sd), fam, sizeof fam),
             inpaint && f != FAM_UNKNOWN ? ", with an inpainting UNet (9 input channels)" : "");
    return buf;
}

/* The family a spec describes: from its text encoder's keys (CLIP: SD v1 layout, BERT: LDM
 * layout), which a model of any width (ti's tiny configs) shares with its family; else from
 * its cross-attention width. */
static enum family spec_family(const struct ti_param_spec *spec, size_t n) {
    enum family by_width = FAM_UNKNOWN;
    for (size_t i = 0; i < n; i++) {
        if (!strncmp(spec[i].key, "cond_stage_model.transformer.text_model.", 40)) return FAM_SD1;
        if (!strcmp(spec[i].key, "cond_stage_model.transformer.token_emb.weight")) return FAM_LDM;
        if (strcmp(spec[i].key,
                   "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"))
            continue;
        if (spec[i].ndim == 2 && spec[i].shape[1] == 768) by_width = FAM_SD1;
        if (spec[i].ndim == 2 && spec[i].shape[1] == 1280) by_width = FAM_LDM;
    }
    return by_width;
}

/* Why the spec key `key` is missing when the file holds it in another form, into out ("" when
 * it does not): only as an EMA copy (model_ema.*), under an extra prefix (a DDP-wrapped
 * "module." model), without its prefix (a UNet-only export), or under diffusers names. */
static void missing_hint(const struct ti_state_dict *sd, const char *key, char *out, size_t n) {
    char k2[KEY_MAX];
    out[0] = '\0';
    if (ema_key(key, k2, sizeof k2) && find_entry(sd, k2)) {
        snprintf(out, n,
                 "; the file holds the UNet only as EMA copies ('%s'): an EMA-only export "
                 "that kept LitEma's names. The reference code loads the UNet from "
                 "model.diffusion_model.* and would leave it untrained; rename the copies to "
                 "model.diffusion_model.* (dots restored) to use them",
                 k2);
        return;
    }
    size_t kl = strlen(key);
    for (size_t i = 0; i < sd->n; i++) { /* an extra prefix: "<prefix>" + key */
        const char *e = sd->e[i].key;
        size_t el = strlen(e);
        if (el > kl && e[el - kl - 1] == '.' && !strcmp(e + el - kl, key)) {
            snprintf(out, n,
                     "; the file has it as '%s': its keys carry the extra prefix '%.*s' (a "
                     "model saved inside a wrapper, such as DDP's 'module.'), which the "
                     "reference code does not strip either",
                     e, (int)(el - kl), e);
            return;
        }
    }
    for (const char *s = strchr(key, '.'); s; s = strchr(s + 1, '.')) /* a missing prefix */
        if (strchr(s + 1, '.') && find_entry(sd, s + 1)) {
            snprintf(out, n,
                     "; the file has it as '%s': its keys lack the prefix '%.*s' (a part of "
                     "the model saved on its own), which the reference code does not add "
                     "either",
                     s + 1, (int)(s + 1 - key), key);
            return;
        }
    size_t diffusers = 0;
    const char *example = NULL;
    for (size_t i = 0; i < sd->n; i++) {
        const char *e = sd->e[i].key, *dot = strchr(e, '.');
        char m[KEY_MAX];
        int hit =
            map_unet(e, m, sizeof m) || map_vae(e, m, sizeof m) || !strncmp(e, "text_model.", 11);
        if (!hit && dot &&
            (!strncmp(e, "unet.", 5) || !strncmp(e, "vae.", 4) || !strncmp(e, "text_encoder.", 13)))
            hit = map_unet(dot + 1, m, sizeof m) || map_vae(dot + 1, m, sizeof m) ||
                  !strncmp(dot + 1, "text_model.", 11);
        if (hit && !diffusers++) example = e;
    }
    if (diffusers * 2 > sd->n)
        snprintf(out, n,
                 "; its keys are diffusers names (such as '%s'): ti maps those only from a "
                 "diffusers folder (unet/, text_encoder/, vae/); give the folder, or convert "
                 "the file to the original layout",
                 example);
}

static void cause(const struct ti_state_dict *sd, const struct ti_param_spec *spec, size_t n,
                  const char *model, char *out, size_t outn) {
    int inpaint;
    enum family f = guess(sd, &inpaint), want = spec_family(spec, n);
    char fam[160];
    out[0] = '\0';
    if (f == FAM_UNKNOWN) return;
    if (f == want && inpaint)
        snprintf(out, outn,
                 "; the file is an inpainting model (9 UNet input channels), which "
                 "%s cannot use",
                 model);
    else if (f == want)
        snprintf(out, outn,
                 "; the file looks like %s, so it may be damaged or come from a "
                 "modified model",
                 family_text(f, ctx_width(sd), fam, sizeof fam));
    else
        snprintf(out, outn, "; the file looks like %s, which %s cannot use",
                 family_text(f, ctx_width(sd), fam, sizeof fam), model);
}

ti_status ti_state_dict_check(const struct ti_state_dict *sd, const struct ti_param_spec *spec,
                              size_t n, const char *model, struct ti_err *err) {
    size_t missing = 0, bad = 0, first_missing = n, first_bad = n;
    for (size_t i = 0; i < n; i++) {
        const struct ti_tensor *t = ti_state_dict_find(sd, spec[i].key);
        if (!t) {
            if (!missing++) first_missing = i;
            continue;
        }
        int same = t->ndim == spec[i].ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = t->shape[d] == spec[i].shape[d];
        if (!same && !bad++) first_bad = i;
    }
    if (!missing && !bad) return TI_OK;
    char why[512];
    cause(sd, spec, n, model, why, sizeof why);
    if (bad) {
        const struct ti_param_spec *s = &spec[first_bad];
        const struct ti_tensor *t = ti_state_dict_find(sd, s->key);
        char a[128], b[128], more[64] = "";
        if (bad > 1) snprintf(more, sizeof more, " (and %zu more tensors differ)", bad - 1);
        return ti_error(err, TI_ERR_SHAPE, "'%s': %s has shape %s, %s expects %s%s%s", sd->path,
                        s->key, ti_shape_str(t->ndim, t->shape, a, sizeof a), model,
                        ti_shape_str(s->ndim, s->shape, b, sizeof b), more, why);
    }
    char hint[KEY_MAX + 512];
    missing_hint(sd, spec[first_missing].key, hint, sizeof hint);
    return ti_error(err, TI_ERR_NOT_FOUND,
                    "'%s' has no tensor '%s', which %s needs (%zu of the "
                    "%zu tensors it needs are missing)%s",
                    sd->path, spec[first_missing].key, model, missing, n, hint[0] ? hint : why);
}
