/*
 * test_pretrain.c - ti-pretrain (train/pretrain.c, train/ti_pretrain.c).
 *
 *   adamw_matches_torch     ti_wopt_step over a small weight table against torch.optim.AdamW's
 *                           update written out here in double (three steps, two tensors)
 *   recipe_prefix_vae       the first steps of stage 1 of scripts/pretrain_tiny.sh, run again,
 *                           (stage 1b starts from stage 1's weights, not shipped: not replayed)
 *   recipe_prefix_vae1c     and of stage 1c (from 1b's autoencoder, which tiny-sd ships),
 *   recipe_prefix_ldm       and of stage 2 (from the shipped model's frozen autoencoder),
 *                           reproduce the first lines of the committed logs models/tiny-sd/
 *                           log_vae.csv and log_ldm.csv, and models/tiny-ldm/log_vae1c.csv and
 *                           log_ldm.csv
 *   shipped_model_loads     models/tiny-sd and models/tiny-ldm load with ti_ldm_load_file
 *                           under their configs
 *   half_command            `ti-pretrain half` on the shipped model (already text encoder and
 *                           UNet float16, autoencoder float32) writes the same tensors, bytes and
 *                           dtypes; without --out it exits 2
 *
 * The recipe runs single-threaded (OMP_NUM_THREADS=1) as the committed run did, so on the machine
 * that made the logs the losses agree to the printed digits. Another CPU or a build without
 * OpenBLAS sums the GEMMs in another order (relative differences ~1e-7 per op); the first step is
 * a pure forward pass of freshly initialised weights, so it must agree to 1e-5 relative. After an
 * AdamW step, a gradient element near zero can change its sign, which moves that weight by up to
 * lr (2e-3 / 50 = 4e-5 in the warm-up); the loss moves by far less than 1e-3 relative, the
 * tolerance for steps 2 and 3. A wrong gradient, data order, seed or schedule changes these
 * losses by percents.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "io_test_util.h"
#include "ldm.h"
#include "pretrain.h"
#include "safetensors.h"
#include "test_common.h"

static const char *tool, *tmp;

TEST(adamw_matches_torch) {
    struct ti_err err = {0};
    struct ti_weights w;
    struct ti_tensor a, b;
    ti_weights_init(&w);
    CHECK_OK(ti_weights_add2(&w, &a, "", "a", 2, 3, &err), &err);
    CHECK_OK(ti_weights_add1(&w, &b, "", "b", 4, &err), &err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), TI_DTYPE_F32, &err), &err);
    double p[10], m[10] = {0}, v[10] = {0};
    for (int i = 0; i < 10; i++) {
        p[i] = 0.3 * (i - 4.5);
        float f = (float)p[i];
        if (i < 6)
            ((float *)a.data)[i] = f;
        else
            ((float *)b.data)[i - 6] = f;
        p[i] = f;
    }
    struct ti_adamw_hp hp = {1e-2, 0.9, 0.999, 1e-8, 0.05};
    struct ti_wopt o;
    CHECK_OK(ti_wopt_init(&o, &w, &hp, &err), &err);
    CHECK(o.n == 10);
    for (int s = 1; s <= 3; s++) {
        double lr = 1e-2 * s, g[10];
        for (int i = 0; i < 10; i++) {
            g[i] = sin(1.7 * i + s) * (i == 3 ? 1e-6 : 1.0);
            o.grad[i] = (float)g[i];
            g[i] = (float)g[i];
        }
        ti_wopt_step(&o, lr);
        /* torch 1.13 _single_tensor_adamw: p *= 1 - lr wd; m, v moments; bias corrections;
         * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) */
        double bc1 = 1 - pow(0.9, s), bc2 = 1 - pow(0.999, s);
        for (int i = 0; i < 10; i++) {
            p[i] *= 1 - lr * 0.05;
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
            p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + 1e-8);
        }
        double got[10];
        for (int i = 0; i < 10; i++)
            got[i] = i < 6 ? ((float *)a.data)[i] : ((float *)b.data)[i - 6];
        CHECK_CLOSE(got, p, 10, 1e-6, 1e-5);
        for (int i = 0; i < 10; i++)
            CHECK(o.grad[i] == 0.0f);
    }
    /* a skipped, not-updated parameter keeps its values */
    ti_wopt_skip(&o, &b, 0);
    float b0 = ((float *)b.data)[0];
    o.grad[6] = 1.0f;
    ti_wopt_step(&o, 0.1);
    CHECK(((float *)b.data)[0] == b0);
    CHECK(o.grad[6] == 0.0f);
    ti_wopt_free(&o);
    ti_weights_free(&w);
}

/* Reads up to n data rows of a CSV log (header skipped) as numbers: rows x cols. */
static int read_log(const char *path, double *vals, int n, int cols) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int r = 0;
    if (!fgets(line, sizeof line, f)) r = -1;
    while (r >= 0 && r < n && fgets(line, sizeof line, f)) {
        char *s = line;
        for (int c = 0; c < cols; c++) {
            char *end;
            vals[r * cols + c] = strtod(s, &end);
            if (end == s) {
                fclose(f);
                return -1;
            }
            s = *end == ',' ? end + 1 : end;
        }
        r++;
    }
    fclose(f);
    return r;
}

/* Runs the tool with OMP_NUM_THREADS=1; returns its exit status. */
static int run_tool(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 '%s' %s > '%s/out.txt' 2>&1", tool, args, tmp);
    int rc = system(cmd);
    if (rc != 0) {
        char p[1024];
        snprintf(p, sizeof p, "%s/out.txt", tmp);
        FILE *f = fopen(p, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f))
            fputs(line, stderr);
        if (f) fclose(f);
    }
    return rc;
}

/* Compares the first `steps` rows of two logs, columns 1..cols-2 (losses and learning rate; the
 * step column must match exactly; the last column is wall time). */
static void compare_logs(const char *got_path, const char *want_path, int steps, int cols) {
    double got[3 * 8] = {0}, want[3 * 8] = {0};
    CHECK(read_log(got_path, got, steps, cols) == steps);
    CHECK(read_log(want_path, want, steps, cols) == steps);
    for (int r = 0; r < steps; r++) {
        CHECK(got[r * cols] == r + 1 && want[r * cols] == r + 1);
        double rtol = r == 0 ? 1e-5 : 1e-3;
        CHECK_CLOSE(got + r * cols + 1, want + r * cols + 1, cols - 2, 1e-7, rtol);
    }
}

/* Runs 3 steps of a stage-vae command (flags: what differs between stages) into tmp/out and
 * compares its log with the committed one. */
static void replay_vae(const char *flags, const char *out, const char *want) {
    char args[2048], got[256];
    snprintf(args, sizeof args,
             "%s --out '%s/%s' --stage vae --steps 3 --batch 8 --warmup 50 --kl_weight 1e-4 "
             "--scale_factor 1",
             flags, tmp, out);
    CHECK(run_tool(args) == 0);
    snprintf(got, sizeof got, "%s/log_vae.csv", out);
    compare_logs(tio_path(tmp, got), want, 3, 6);
}

TEST(recipe_prefix_vae) {
    /* the flags of stage 1 in scripts/pretrain_tiny.sh (the data set without the held-out
     * colour); --scale_factor skips its measurement */
    replay_vae("--config configs/tiny/sd-tiny-finetune.yaml --seed 0 --held_out_colour_rate 0 "
               "--lr 2e-3",
               "vae", "models/tiny-sd/log_vae.csv");
}

/* Stage 1c (the LDM model's autoencoder) starts from stage 1b's autoencoder, which models/tiny-sd
 * ships (its stage 2 never changed it): its first steps must reproduce models/tiny-ldm/
 * log_vae1c.csv. The script runs it under configs/tiny/sd-tiny-finetune.yaml on 1b's own file;
 * the autoencoder's part of the config is the same. */
TEST(recipe_prefix_vae1c) {
    replay_vae("--config models/tiny-sd/config.yaml --init models/tiny-sd/model.safetensors "
               "--seed 3 --data_seed 3 --held_out_colour_rate 0.0625 --lr 1e-3",
               "vae1c", "models/tiny-ldm/log_vae1c.csv");
}

/* The flags of stage 2 in scripts/pretrain_tiny.sh: the shipped model's autoencoder is the one
 * its stage 2 ran on (1b for tiny-sd, 1c for tiny-ldm; stage 2 never changes it), text encoder
 * and UNet start from the seed. Stage 1b itself is not replayed: it starts from stage 1's
 * autoencoder, which is not shipped. */
static void replay_stage2(const char *model) {
    char args[2048], out[256], want[256];
    snprintf(out, sizeof out, "ldm-%s", strrchr(model, '/') + 1);
    snprintf(args, sizeof args,
             "--config %s/config.yaml --init %s/model.safetensors "
             "--out '%s/%s' --stage ldm --seed 0 --steps 3 --batch 32 --lr 1e-3 --warmup 100 "
             "--p_uncond 0.1 --data_size 16384",
             model, model, tmp, out);
    CHECK(run_tool(args) == 0);
    snprintf(want, sizeof want, "%s/log_ldm.csv", model);
    snprintf(args, sizeof args, "%s/log_ldm.csv", out);
    compare_logs(tio_path(tmp, args), want, 3, 4);
}

TEST(recipe_prefix_ldm) {
    replay_stage2("models/tiny-sd");
    replay_stage2("models/tiny-ldm");
}

static void check_shipped(const char *dir, const char *family) {
    struct ti_err err = {0};
    struct ti_config cfg;
    char cpath[256], mpath[256];
    snprintf(cpath, sizeof cpath, "%s/config.yaml", dir);
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    const char *files[1] = {cpath};
    CHECK_OK(ti_config_load(&cfg, files, 1, NULL, 0, &err), &err);
    if (err.msg[0]) return;
    /* scale_factor was measured (1 / std of the latents), not the SD default */
    CHECK(cfg.model.scale_factor > 0.05 && cfg.model.scale_factor < 20.0);
    struct ti_ldm m;
    CHECK_OK(ti_ldm_init(&m, &cfg, &err), &err);
    CHECK_OK(ti_ldm_alloc(&m, ti_backend_cpu(), TI_DTYPE_F32, &err), &err);
    CHECK_OK(ti_ldm_load_file(&m, mpath, NULL, family, &err), &err);
    CHECK(m.text_is_clip == (strcmp(family, "SD v1") == 0));
    ti_ldm_free(&m);
}

TEST(shipped_model_loads) {
    check_shipped("models/tiny-sd", "SD v1");
    check_shipped("models/tiny-ldm", "LDM");
}

TEST(half_command) {
    char args[2048];
    const char *out = tio_path(tmp, "half.safetensors");
    char outp[1024];
    snprintf(outp, sizeof outp, "%s", out);
    snprintf(args, sizeof args,
             "half --config models/tiny-sd/config.yaml --ckpt models/tiny-sd/model.safetensors "
             "--out '%s'",
             outp);
    CHECK(run_tool(args) == 0);
    struct ti_err err = {0};
    struct ti_safetensors *a = NULL, *b = NULL;
    CHECK_OK(ti_safetensors_open(&a, "models/tiny-sd/model.safetensors", &err), &err);
    CHECK_OK(ti_safetensors_open(&b, outp, &err), &err);
    if (a && b) {
        CHECK(a->n == b->n);
        int f16 = 0, f32 = 0;
        for (size_t i = 0; i < a->n; i++) {
            const struct ti_st_tensor *x = &a->tensors[i];
            const struct ti_st_tensor *y = ti_safetensors_find(b, x->name);
            CHECK(y != NULL);
            if (!y) continue;
            CHECK(x->t.dtype == y->t.dtype);
            CHECK(x->end - x->begin == y->end - y->begin);
            if (x->end - x->begin == y->end - y->begin)
                CHECK(memcmp(x->t.data, y->t.data, x->end - x->begin) == 0);
            int vae = strncmp(x->name, "first_stage_model.", 18) == 0;
            CHECK(x->t.dtype == (vae ? TI_DTYPE_F32 : TI_DTYPE_F16));
            f16 += x->t.dtype == TI_DTYPE_F16;
            f32 += x->t.dtype == TI_DTYPE_F32;
        }
        CHECK(f16 > 100 && f32 > 20);
    }
    ti_safetensors_close(a);
    ti_safetensors_close(b);
    /* usage errors exit 2 */
    int rc = run_tool("half --config models/tiny-sd/config.yaml --ckpt x.safetensors");
    CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_pretrain <ti-pretrain>\n");
        return 2;
    }
    tool = argv[1];
    tmp = tio_tmpdir();
    RUN(adamw_matches_torch);
    RUN(shipped_model_loads);
    RUN(half_command);
    RUN(recipe_prefix_vae);
    RUN(recipe_prefix_vae1c);
    RUN(recipe_prefix_ldm);
    tio_rmrf(tmp);
    return tc_finish();
}
