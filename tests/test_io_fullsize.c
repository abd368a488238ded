/*
 * test_io_fullsize.c - a full-size SD v1 checkpoint layout loads (label slow).
 *
 * Generates, with Debian's python3-torch, a ~4.3 GB checkpoint holding every key and shape of
 * sd-v1-4.ckpt with random float32 values under the lightning "state_dict" nesting
 * (scripts/oracle/gen_full_ckpt.py), into a temporary folder; loads it as a state dict, checks
 * every shape against tests/fixtures/keys/sd-v1-full.tsv, compares the f64 sums and first values
 * the generator recorded for a few tensors, reads every tensor byte; deletes the file.
 * SKIP (77) without python3-torch or without 10 GB of free disk.
 */
#include <sys/statvfs.h> /* defines: statvfs */

#include "ckpt.h"
#include "io_test_util.h"
#include "test_common.h"

static volatile uint8_t sink; /* keeps the page reads below */

/* "key": {"sum": S, "first": [a, b, ...]} from the generator's json.dump(indent=1) */
static int sidecar(const char *json, const char *key, double *sum, double *first, int *nfirst) {
    char pat[512];
    snprintf(pat, sizeof pat, "\"%s\": {", key);
    const char *p = strstr(json, pat);
    if (!p) return 0;
    const char *s = strstr(p, "\"sum\": "), *f = strstr(p, "\"first\": [");
    if (!s || !f) return 0;
    *sum = strtod(s + 7, NULL);
    f += 10;
    *nfirst = 0;
    while (*nfirst < 8) {
        char *end;
        while (*f == ' ' || *f == '\n' || *f == ',')
            f++;
        if (*f == ']') break;
        first[(*nfirst)++] = strtod(f, &end);
        if (end == f) return 0;
        f = end;
    }
    return 1;
}

static double as_double(const struct ti_tensor *t, int64_t i) {
    if (t->dtype == TI_DTYPE_I64) return (double)((const int64_t *)t->data)[i];
    return ((const float *)t->data)[i];
}

int main(void) {
    const char *py = getenv("TI_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    if (access(py, X_OK) != 0 || tio_run("/usr/bin/env true") != 0) {
        printf("SKIP: %s not found\n", py);
        return TC_SKIP;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' 2>/dev/null", py);
    if (tio_run(cmd) != 0) {
        printf("SKIP: python3-torch is not installed for %s\n", py);
        return TC_SKIP;
    }
    const char *dir = tio_tmpdir();
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (double)vfs.f_bavail * (double)vfs.f_frsize < 10e9) {
        printf("SKIP: less than 10 GB free in %s\n", dir);
        tio_rmrf(dir);
        return TC_SKIP;
    }
    const char *ckpt = tio_path(dir, "sd-v1-full.ckpt");
    snprintf(cmd, sizeof cmd, "%s scripts/oracle/gen_full_ckpt.py %s", py, ckpt);
    int rc = tio_run(cmd);
    CHECK(rc == 0);
    size_t n;
    struct ti_param_spec *spec = tio_load_spec("tests/fixtures/keys/sd-v1-full.tsv", NULL, &n);
    CHECK(spec && n == 1143);
    struct ti_state_dict *sd = NULL;
    struct ti_err err = {0};
    if (rc == 0) CHECK_OK(ti_state_dict_open(&sd, ckpt, NULL, &err), &err);
    if (sd) {
        CHECK(ti_state_dict_count(sd) == 1143);
        CHECK_OK(ti_state_dict_check(sd, spec, n, "SD v1", &err), &err);
        size_t jn;
        char json_path[1100];
        snprintf(json_path, sizeof json_path, "%s.json", ckpt);
        uint8_t *raw = tio_read(json_path, &jn);
        char *json = malloc(jn + 1);
        if (raw) memcpy(json, raw, jn);
        json[raw ? jn : 0] = '\0';
        free(raw);
        static const char *const probe[] = {
            "betas",
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
            "cond_stage_model.transformer.text_model.embeddings.position_ids",
            "first_stage_model.decoder.mid.attn_1.q.weight",
            "model.diffusion_model.out.2.bias"};
        for (size_t k = 0; k < sizeof probe / sizeof *probe; k++) {
            double want_sum = 0, want_first[8] = {0};
            int nf = 0;
            int found = sidecar(json, probe[k], &want_sum, want_first, &nf);
            CHECK(found && nf > 0 && nf <= 8);
            if (!found || nf <= 0 || nf > 8) continue;
            const struct ti_tensor *t = ti_state_dict_find(sd, probe[k]);
            CHECK(t != NULL);
            if (!t) continue;
            double got_sum = 0, got_first[8];
            int64_t numel = ti_tensor_numel(t);
            for (int64_t i = 0; i < numel; i++)
                got_sum += as_double(t, i);
            for (int i = 0; i < nf; i++)
                got_first[i] = as_double(t, i);
            CHECK_CLOSE(got_first, want_first, nf, 0, 0);
            CHECK_CLOSE(&got_sum, &want_sum, 1, 1e-6, 1e-9);
        }
        free(json);
        uint64_t bytes = 0; /* every byte of every tensor is readable */
        for (size_t i = 0; i < ti_state_dict_count(sd); i++) {
            const struct ti_tensor *t = &ti_state_dict_at(sd, i)->t;
            size_t nb = ti_tensor_nbytes(t);
            for (size_t k = 0; k < nb; k += 4096)
                sink ^= ((const uint8_t *)t->data)[k];
            if (nb) sink ^= ((const uint8_t *)t->data)[nb - 1];
            bytes += nb;
        }
        CHECK(bytes > 4200000000ull);
        ti_state_dict_close(sd);
    }
    tio_free_spec(spec, n);
    tio_rmrf(dir);
    return tc_finish();
}
