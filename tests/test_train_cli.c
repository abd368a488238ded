/*
 * test_train_cli.c - ti-train's library parts that need no model: the command line (main.py's
 * semantics, ti-peer.md §1.1), the config assembly and LR (§1.2-1.3), the run-folder name
 * (§1.4), the checkpoint / image schedule (§1.6, §5.4), the YAML dump of the saved configs,
 * and metrics.h5 / metrics.csv.
 * Expected values are the spec's worked examples (ti-peer.md), never this code's output.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "metrics.h"
#include "run_log.h"
#include "test_common.h"
#include "test_util.h"

static int parse(struct ti_train_args *a, char *msg, const char *const *argv) {
    int n = 0;
    while (argv[n])
        n++;
    return ti_train_args_parse(a, n, (char **)argv, msg, 512);
}

TEST(str2bool_is_the_peers) {
    const char *yes[] = {"yes", "TRUE", "t", "Y", "1", "True"};
    const char *no[] = {"no", "false", "F", "n", "0", "NO"};
    for (int i = 0; i < 6; i++)
        CHECK(ti_train_str2bool(yes[i]) == 1);
    for (int i = 0; i < 6; i++)
        CHECK(ti_train_str2bool(no[i]) == 0);
    CHECK(ti_train_str2bool("maybe") == -1);
    CHECK(ti_train_str2bool("") == -1);
}

TEST(defaults_and_readme_invocation) {
    struct ti_train_args a;
    char msg[512];
    const char *argv[] = {"ti-train",
                          "--base",
                          "configs/latent-diffusion/txt2img-1p4B-finetune.yaml",
                          "-t",
                          "--actual_resume",
                          "m.ckpt",
                          "-n",
                          "run1",
                          "--gpus",
                          "0,",
                          "--data_root",
                          "/data/cat_toy",
                          "--init_word",
                          "toy",
                          NULL};
    CHECK(parse(&a, msg, argv) == 0);
    CHECK(a.n_base == 1 && a.train == 1);
    CHECK(a.seed == 23);
    CHECK(!strcmp(a.logdir, "logs"));
    CHECK(a.scale_lr == 1 && a.datadir_in_name == 1);
    CHECK(a.n_gpus == 1 && a.gpu_ids[0] == 0);
    CHECK(!strcmp(a.name, "run1") && !strcmp(a.init_word, "toy"));
    CHECK(a.format == TI_EMB_A1111 && a.precision == TI_PREC_FP32);
    CHECK(a.max_steps == -1 && a.accumulate_grad_batches == -1);
    /* §1.4's example: --data_root /data/cat_toy -n run1 -> cat_toy<date>_run1 */
    char now[128], dir[256];
    ti_run_now_string(now, sizeof now, &a, 0);
    CHECK(!strncmp(now, "cat_toy", 7) && strlen(now) == 7 + 19);
    CHECK(now[7 + 4] == '-' && now[7 + 10] == 'T' && now[7 + 13] == '-');
    ti_run_dir_name(dir, sizeof dir, &a, "cat_toy2022-08-21T12-00-00");
    CHECK(!strcmp(dir, "cat_toy2022-08-21T12-00-00_run1"));
}

TEST(bools_overrides_and_lists) {
    struct ti_train_args a;
    char msg[512];
    const char *argv[] = {"ti-train",
                          "-b",
                          "a.yaml",
                          "b.yaml",
                          "-t",
                          "lightning.trainer.max_steps=7",
                          "--scale_lr",
                          "false",
                          "--datadir_in_name=no",
                          "--no-test",
                          "--data_root",
                          "d/",
                          "--actual_resume=m",
                          "x.y=1",
                          "--gpus",
                          "0,3,7,8",
                          "-f",
                          "_pf",
                          NULL};
    CHECK(parse(&a, msg, argv) == 0);
    if (msg[0]) fprintf(stderr, "%s\n", msg);
    CHECK(a.n_base == 2 && !strcmp(a.base[1], "b.yaml"));
    CHECK(a.train == 1 && a.scale_lr == 0 && a.datadir_in_name == 0 && a.no_test == 1);
    CHECK(a.n_overrides == 2 && !strcmp(a.overrides[0], "lightning.trainer.max_steps=7") &&
          !strcmp(a.overrides[1], "x.y=1"));
    CHECK(a.n_gpus == 4 && a.gpu_ids[3] == 8);
    CHECK(!strcmp(a.actual_resume, "m"));
    /* name from the first --base stem, no data-dir prefix */
    char now[128], dir[256];
    ti_run_now_string(now, sizeof now, &a, 0);
    CHECK(strlen(now) == 19);
    ti_run_dir_name(dir, sizeof dir, &a, "2022-08-21T12-00-00");
    CHECK(!strcmp(dir, "2022-08-21T12-00-00_a_pf"));
    const char *argv2[] = {"ti-train",    "-b", "a.yaml",          "-t", "off",
                           "--data_root", "d",  "--actual_resume", "m",  NULL};
    CHECK(parse(&a, msg, argv2) == -1);
    CHECK(strstr(msg, "--train") && strstr(msg, "Boolean value expected"));
    const char *argv3[] = {"ti-train",    "-b", "a.yaml",          "-t", "0",
                           "--data_root", "d",  "--actual_resume", "m",  NULL};
    CHECK(parse(&a, msg, argv3) == 0 && a.train == 0);
}

TEST(usage_errors_name_the_flag) {
    struct ti_train_args a;
    char msg[512];
    struct {
        const char *argv[12];
        const char *want;
    } cases[] = {
        {{"ti-train", "--bogus", NULL}, "--bogus"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "--gpus", "x", NULL},
         "--gpus"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "--max_steps", "0",
          NULL},
         "--max_steps"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "--seed", "-1", NULL},
         "--seed"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "--precision", "fp8",
          NULL},
         "--precision"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "--format", "ckpt",
          NULL},
         "--format"},
        {{"ti-train", "-b", "a", "--actual_resume", "m", NULL}, "--data_root"},
        {{"ti-train", "-b", "a", "--data_root", "d", NULL}, "--actual_resume"},
        {{"ti-train", "--data_root", "d", "--actual_resume", "m", NULL}, "--base"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", "stray", NULL},
         "stray"},
        {{"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", NULL}, "--actual_resume"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int r = parse(&a, msg, cases[k].argv);
        CHECK(r == -1);
        if (!strstr(msg, cases[k].want)) {
            fprintf(stderr, "case %zu: '%s' does not name %s\n", k, msg, cases[k].want);
            CHECK(0);
        }
    }
    /* the peer's message, verbatim */
    const char *argv[] = {"ti-train", "-n", "x", "--resume", "logs/run", NULL};
    CHECK(parse(&a, msg, argv) == -1);
    CHECK(!strcmp(msg, "-n/--name and -r/--resume cannot be specified both.If you want to resume "
                       "training in a new log folder, use -n/--name in combination with "
                       "--resume_from_checkpoint"));
    const char *argv2[] = {"ti-train", "--resume", "logs/run", "--max_steps", "10", NULL};
    CHECK(parse(&a, msg, argv2) == 0 && !strcmp(a.resume, "logs/run") && a.max_steps == 10);
    const char *argv3[] = {"ti-train", "--help", NULL};
    CHECK(parse(&a, msg, argv3) == 1);
}

TEST(gpus_as_pytorch_lightning_reads_them) {
    /* PL 1.5 parse_gpu_ids: a comma makes a list of ids, else a count (0: the CPU) */
    struct {
        const char *v;
        int n, ids[3];
    } ok[] = {{"0,", 1, {0}},   {"1,", 1, {1}}, {"0,3", 2, {0, 3}}, {"1", 1, {0}},
              {"2", 2, {0, 1}}, {"0", 0, {0}},  {",2,", 1, {2}}};
    struct ti_train_args a;
    char msg[512];
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        const char *argv[] = {"ti-train",        "-b", "a",      "--data_root", "d",
                              "--actual_resume", "m",  "--gpus", ok[k].v,       NULL};
        int r = parse(&a, msg, argv);
        int good = r == 0 && a.n_gpus == ok[k].n && a.gpus && !strcmp(a.gpus, ok[k].v);
        for (int i = 0; good && i < ok[k].n; i++)
            good = a.gpu_ids[i] == ok[k].ids[i];
        if (!good)
            fprintf(stderr, "  --gpus '%s': r %d, %d devices (%s)\n", ok[k].v, r, a.n_gpus, msg);
        CHECK(good);
    }
    const char *bad[] = {"-1", "17", "x", "1.5", ",", ""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        const char *argv[] = {"ti-train",        "-b", "a",      "--data_root", "d",
                              "--actual_resume", "m",  "--gpus", bad[k],        NULL};
        CHECK(parse(&a, msg, argv) == -1 && strstr(msg, "--gpus"));
    }
}

TEST(lr_schedules_are_diffusers) {
    /* diffusers' get_scheduler formulas, values worked by hand: W = 10 warm-up steps of T = 110 */
    struct {
        enum ti_lr_schedule k;
        int64_t step;
        double want;
    } cases[] = {
        {TI_LR_CONSTANT, 0, 1.0},
        {TI_LR_CONSTANT, 500, 1.0},
        {TI_LR_CONSTANT_WITH_WARMUP, 0, 0.0},
        {TI_LR_CONSTANT_WITH_WARMUP, 5, 0.5},
        {TI_LR_CONSTANT_WITH_WARMUP, 10, 1.0},
        {TI_LR_CONSTANT_WITH_WARMUP, 109, 1.0},
        {TI_LR_LINEAR, 1, 0.1},
        {TI_LR_LINEAR, 10, 1.0},
        {TI_LR_LINEAR, 35, 0.75},
        {TI_LR_LINEAR, 60, 0.5},
        {TI_LR_LINEAR, 110, 0.0},
        {TI_LR_LINEAR, 200, 0.0},
        {TI_LR_COSINE, 3, 0.3},
        {TI_LR_COSINE, 10, 1.0},
        {TI_LR_COSINE, 35, 0.5 + 0.5 * sqrt(0.5)}, /* cos(pi / 4) */
        {TI_LR_COSINE, 60, 0.5},
        {TI_LR_COSINE, 85, 0.5 - 0.5 * sqrt(0.5)},
        {TI_LR_COSINE, 110, 0.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double f = ti_lr_schedule_factor(cases[i].k, cases[i].step, 10, 110);
        if (fabs(f - cases[i].want) > 1e-12) {
            fprintf(stderr, "  %s at step %lld: %.15g, want %.15g\n",
                    ti_lr_schedule_name(cases[i].k), (long long)cases[i].step, f, cases[i].want);
            CHECK(0);
        }
    }
    /* no warm-up: the decay starts at 1 on step 0 */
    CHECK(ti_lr_schedule_factor(TI_LR_COSINE, 0, 0, 100) == 1.0);
    CHECK(fabs(ti_lr_schedule_factor(TI_LR_LINEAR, 50, 0, 100) - 0.5) < 1e-15);

    /* the flags */
    struct ti_train_args a;
    char msg[512];
    const char *ok[] = {"ti-train", "-b",
                        "a",        "--data_root",
                        "d",        "--actual_resume",
                        "m",        "--lr_scheduler",
                        "cosine",   "--lr_warmup_steps=20",
                        NULL};
    CHECK(parse(&a, msg, ok) == 0 && a.lr_scheduler == TI_LR_COSINE && a.lr_warmup_steps == 20);
    const char *dflt[] = {"ti-train", "-b", "a", "--data_root", "d", "--actual_resume", "m", NULL};
    CHECK(parse(&a, msg, dflt) == 0 && a.lr_scheduler == TI_LR_CONSTANT && a.lr_warmup_steps == 0);
    const char *unknown[] = {
        "ti-train",       "-b",         "a", "--data_root", "d", "--actual_resume", "m",
        "--lr_scheduler", "polynomial", NULL};
    CHECK(parse(&a, msg, unknown) == -1 && strstr(msg, "--lr_scheduler") &&
          strstr(msg, "polynomial") && strstr(msg, "cosine"));
    const char *neg[] = {"ti-train", "-b",
                         "a",        "--data_root",
                         "d",        "--actual_resume",
                         "m",        "--lr_scheduler",
                         "linear",   "--lr_warmup_steps",
                         "-3",       NULL};
    CHECK(parse(&a, msg, neg) == -1 && strstr(msg, "--lr_warmup_steps"));
    /* a warm-up the constant schedule would silently ignore (diffusers does) is refused */
    const char *lone[] = {
        "ti-train",          "-b", "a", "--data_root", "d", "--actual_resume", "m",
        "--lr_warmup_steps", "5",  NULL};
    CHECK(parse(&a, msg, lone) == -1 && strstr(msg, "--lr_warmup_steps") &&
          strstr(msg, "--lr_scheduler"));
    /* argparse's attached short values: -s5, -nNAME, -l=... is not one (a value "=...") */
    const char *att[] = {"ti-train", "-b",  "a",     "--data_root", "d", "--actual_resume",
                         "m",        "-s5", "-ncat", "-f_x",        NULL};
    CHECK(parse(&a, msg, att) == 0 && a.seed == 5 && !strcmp(a.name, "cat") &&
          !strcmp(a.postfix, "_x"));
    const char *res[] = {"ti-train", "--resume", "logs/r", "--lr_scheduler", "linear", NULL};
    CHECK(parse(&a, msg, res) == -1 && strstr(msg, "--resume"));
}

TEST(schedule_is_pl_1_5) {
    /* §1.6: every_n_train_steps 500 -> global_step 499, 999, ...; §5.4: images at 500, 1000 */
    int ck[7000] = {0}, n = 0;
    for (int s = 0; s < 6100; s++)
        if (ti_run_is_checkpoint_step(s, 500)) ck[n++] = s;
    CHECK(n == 12 && ck[0] == 499 && ck[1] == 999 && ck[11] == 5999);
    CHECK(!ti_run_is_image_step(0, 500) && ti_run_is_image_step(500, 500) &&
          !ti_run_is_image_step(499, 500) && ti_run_is_image_step(1000, 500));
    CHECK(!ti_run_is_checkpoint_step(5, 0) && !ti_run_is_image_step(5, 0));
    char b[256];
    ti_run_embedding_name(b, sizeof b, "r/checkpoints", 5999);
    CHECK(!strcmp(b, "r/checkpoints/embeddings_gs-5999.pt"));
    ti_run_image_name(b, sizeof b, "r/images/train", "samples_scaled", 500, 2, 0);
    CHECK(!strcmp(b, "r/images/train/samples_scaled_gs-000500_e-000002_b-000000.jpg"));
}

TEST(config_assembly_and_lr) {
#ifndef TI_HAVE_YAML
    TC_SKIP_TEST("built without libyaml");
#else
    struct ti_train_args a;
    char msg[512];
    const char *argv[] = {"ti-train",
                          "-b",
                          "configs/stable-diffusion/v1-finetune.yaml",
                          "-t",
                          "--actual_resume",
                          "m.ckpt",
                          "--data_root",
                          "/data/cat_toy",
                          "--placeholder_string",
                          "<cat>",
                          "--init_word",
                          "toy",
                          "--max_steps",
                          "30",
                          "data.params.batch_size=4",
                          NULL};
    CHECK(parse(&a, msg, argv) == 0);
    struct ti_train_setup s;
    struct ti_err err = {0};
    CHECK_OK(ti_train_config_build(&s, &a, &err), &err);
    if (!s.cfg) return;
    const struct ti_config *c = s.cfg;
    CHECK(!strcmp(c->personalization.placeholder_strings[0], "<cat>"));
    /* pitfall 1.7-b fixed: the captions use the new placeholder */
    CHECK(!strcmp(c->data.train.placeholder_token, "<cat>"));
    CHECK(!strcmp(c->data.validation.placeholder_token, "<cat>"));
    CHECK(!strcmp(c->personalization.initializer_words[0], "toy"));
    CHECK(!strcmp(c->data.train.data_root, "/data/cat_toy"));
    CHECK(c->lightning.max_steps == 30 && c->data.batch_size == 4);
    /* §1.3: 1 * 1 * bs * 5e-3 */
    CHECK(fabs(ti_config_learning_rate(c, 1) - 2.0e-2) < 1e-15);
    CHECK(fabs(ti_config_learning_rate(c, 0) - 5.0e-3) < 1e-15);

    /* the saved configs load back to the same config */
    char tmpl[] = "/tmp/ti_train_cli_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    CHECK_OK(ti_run_write_configs(&s, dir, "cat_toy2022-08-21T12-00-00", &err), &err);
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/configs/cat_toy2022-08-21T12-00-00-project.yaml", dir);
    snprintf(p2, sizeof p2, "%s/configs/cat_toy2022-08-21T12-00-00-lightning.yaml", dir);
    const char *files[] = {p1, p2};
    struct ti_config *back = calloc(1, sizeof *back);
    CHECK_OK(ti_config_load(back, files, 2, NULL, 0, &err), &err);
    CHECK(!strcmp(back->data.train.placeholder_token, "<cat>"));
    CHECK(!strcmp(back->data.train.data_root, "/data/cat_toy"));
    CHECK(back->lightning.max_steps == 30 && back->data.batch_size == 4);
    CHECK(back->model.base_learning_rate == c->model.base_learning_rate);
    CHECK(back->model.linear_end == c->model.linear_end);
    CHECK(back->unet.model_channels == 320 && back->lightning.every_n_train_steps == 500);
    CHECK(back->lightning.image_batch_frequency == 500);
    /* project has no lightning; lightning has only it */
    struct ti_yaml_doc *d;
    CHECK_OK(ti_yaml_load_file(&d, p1, &err), &err);
    CHECK(ti_yaml_get(ti_yaml_root(d), "lightning") == NULL);
    CHECK(ti_yaml_get(ti_yaml_root(d), "model.params.unet_config") != NULL);
    ti_yaml_free(d);
    CHECK_OK(ti_yaml_load_file(&d, p2, &err), &err);
    CHECK(ti_yaml_root(d)->n == 1 && ti_yaml_get(ti_yaml_root(d), "lightning.trainer") != NULL);
    ti_yaml_free(d);
    free(back);
    unlink(p1);
    unlink(p2);
    char cd[300];
    snprintf(cd, sizeof cd, "%s/configs", dir);
    rmdir(cd);
    rmdir(dir);
    ti_train_setup_free(&s);

    /* LDM: 1 * 1 * 4 * 5e-3 = 2e-2; --gpus 0,1 counts 2 */
    const char *argv2[] = {"ti-train",
                           "-b",
                           "configs/latent-diffusion/txt2img-1p4B-finetune.yaml",
                           "--actual_resume",
                           "m",
                           "--data_root",
                           "d",
                           "--gpus",
                           "0,1",
                           "--accumulate_grad_batches",
                           "3",
                           NULL};
    CHECK(parse(&a, msg, argv2) == 0);
    CHECK_OK(ti_train_config_build(&s, &a, &err), &err);
    if (s.cfg) CHECK(fabs(ti_config_learning_rate(s.cfg, 1) - 3 * 2 * 4 * 5e-3) < 1e-15);
    ti_train_setup_free(&s);

    /* a config the schema rejects: an error naming the key, no crash */
    const char *argv3[] = {"ti-train",
                           "-b",
                           "configs/stable-diffusion/v1-finetune.yaml",
                           "--actual_resume",
                           "m",
                           "--data_root",
                           "d",
                           "model.params.unet_config.params.num_heads=eight",
                           NULL};
    CHECK(parse(&a, msg, argv3) == 0);
    ti_err_clear(&err);
    CHECK(ti_train_config_build(&s, &a, &err) != TI_OK);
    CHECK(strstr(err.msg, "num_heads") != NULL);
    CHECK(s.cfg == NULL && s.doc == NULL);
#endif
}

TEST(metrics_rows_and_resume) {
    char tmpl[] = "/tmp/ti_train_metrics_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    struct ti_err err = {0};
    struct ti_metrics *m;
    CHECK_OK(ti_metrics_open(&m, dir, -1, &err), &err);
    for (int s = 0; s < 50; s++)
        ti_metrics_add(m, s, 1.0 / (s + 1), 1e-2, 0.5 + s);
    CHECK_OK(ti_metrics_flush(m, 1, &err), &err);
    /* plot: white background, some dark curve pixels */
    int w = 320, h = 200;
    uint8_t *px = malloc((size_t)w * h * 3);
    ti_metrics_plot(m, px, w, h);
    long dark = 0;
    for (long i = 0; i < (long)w * h; i++)
        if (px[3 * i] < 60 && px[3 * i + 2] > 120) dark++;
    CHECK(dark > 50);
    free(px);
    ti_metrics_close(m);
    /* resume at step 20: rows 0..19 stay */
    CHECK_OK(ti_metrics_open(&m, dir, 20, &err), &err);
    CHECK(ti_metrics_rows(m) == 20);
    ti_metrics_add(m, 20, 0.25, 1e-2, 3);
    CHECK_OK(ti_metrics_flush(m, 1, &err), &err);
    ti_metrics_close(m);
    CHECK_OK(ti_metrics_open(&m, dir, 1000, &err), &err);
    CHECK(ti_metrics_rows(m) == 21);
    ti_metrics_close(m);
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, ti_metrics_file_name());
    unlink(p);
    rmdir(dir);
}

/* the saved configs are OmegaConf.to_yaml's text (tests/fixtures/train/config_dump, written by
 * scripts/oracle/train_config_dump.py with OmegaConf 2.1.1 from the same command lines) */
static void dump_case(const char *name, const char *const *argv) {
    struct ti_train_args a;
    char msg[512];
    CHECK(parse(&a, msg, argv) == 0);
    struct ti_train_setup s;
    struct ti_err err = {0};
    CHECK_OK(ti_train_config_build(&s, &a, &err), &err);
    if (!s.cfg) return;
    char tmpl[] = "/tmp/ti_train_dump_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir) return;
    CHECK_OK(ti_run_write_configs(&s, dir, "now", &err), &err);
    static const char *const kinds[2] = {"project", "lightning"};
    for (int k = 0; k < 2; k++) {
        char got_p[300], want_p[300];
        snprintf(got_p, sizeof got_p, "%s/configs/now-%s.yaml", dir, kinds[k]);
        snprintf(want_p, sizeof want_p, "tests/fixtures/train/config_dump/%s-%s.yaml", name,
                 kinds[k]);
        size_t ng = 0, nw = 0;
        char *got = tu_read_file(got_p, &ng), *want = tu_read_file(want_p, &nw);
        CHECK(got && want);
        if (got && want && (ng != nw || memcmp(got, want, nw))) {
            size_t i = 0;
            while (i < ng && i < nw && got[i] == want[i])
                i++;
            size_t line = 1;
            for (size_t j = 0; j < i; j++)
                line += want[j] == '\n';
            fprintf(stderr, "  %s differs from %s at line %zu\n", got_p, want_p, line);
            CHECK(0);
        }
        free(got);
        free(want);
        unlink(got_p);
    }
    char cd[300];
    snprintf(cd, sizeof cd, "%s/configs", dir);
    rmdir(cd);
    rmdir(dir);
    ti_train_setup_free(&s);
}

TEST(saved_configs_are_omegaconfs_text) {
    const char *sd[] = {"ti-train",
                        "--base",
                        "configs/stable-diffusion/v1-finetune.yaml",
                        "-t",
                        "--actual_resume",
                        "m.ckpt",
                        "--data_root",
                        "/data/my cats \xc3\xbc/",
                        "--init_word",
                        "toy",
                        "--placeholder_string",
                        "@",
                        "model.params.personalization_config.params.num_vectors_per_token=3",
                        "data.params.batch_size=1",
                        "lightning.trainer.max_steps=3",
                        "--accumulate_grad_batches",
                        "2",
                        NULL};
    dump_case("sd", sd);
    const char *ldm[] = {
        "ti-train",
        "--base",
        "configs/latent-diffusion/txt2img-1p4B-finetune.yaml",
        "configs/latent-diffusion/txt2img-1p4B-finetune_style.yaml",
        "--actual_resume",
        "m.ckpt",
        "--data_root",
        "photos",
        "--gpus",
        "0,",
        "model.params.personalization_config.params.initializer_words=[painting,art]",
        "model.base_learning_rate=1e-5",
        "lightning.trainer.max_steps=3",
        "data.params.train.params.size=128",
        "model.params.personalization_config.params.placeholder_strings=['*']",
        NULL};
    dump_case("ldm_style", ldm);
}

/* the run folder's data prefix is basename(os.path.normpath(data_root)), as main.py; "." and
 * "/" give no prefix (the peer's "." would make a hidden folder) */
TEST(data_root_prefix_is_basename_of_normpath) {
    static const char *const cases[][2] = {
        {"/data/cat_toy", "cat_toy"},
        {"/data/cat_toy/", "cat_toy"},
        {"cat_toy//", "cat_toy"},
        {"../cat_toy/./", "cat_toy"},
        {"../cat_toy/.", "cat_toy"},
        {"a/b/..", "a"},
        {"a/b/../", "a"},
        {"a/./b/./", "b"},
        {"..", ".."},
        {"../..", ".."},
        {"/..", ""},
        {"/", ""},
        {".", ""},
        {"./", ""},
        {"my cats \xc3\xbc/", "my cats \xc3\xbc"},
        {"a/..", ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct ti_train_args a;
        char msg[512], now[512], want[512];
        const char *argv[] = {"ti-train",        "-b", "c.yaml", "--data_root", cases[k][0],
                              "--actual_resume", "m",  NULL};
        CHECK(parse(&a, msg, argv) == 0);
        ti_run_now_string(now, sizeof now, &a, 0);
        /* the date is 19 characters after the prefix */
        snprintf(want, sizeof want, "%s", cases[k][1]);
        size_t n = strlen(now);
        int ok = n == strlen(want) + 19 && !strncmp(now, want, strlen(want));
        if (!ok)
            fprintf(stderr, "  data_root '%s': prefix of '%s', want '%s'\n", cases[k][0], now,
                    want);
        CHECK(ok);
    }
}

int main(void) {
    RUN(str2bool_is_the_peers);
    RUN(defaults_and_readme_invocation);
    RUN(bools_overrides_and_lists);
    RUN(usage_errors_name_the_flag);
    RUN(gpus_as_pytorch_lightning_reads_them);
    RUN(lr_schedules_are_diffusers);
    RUN(schedule_is_pl_1_5);
    RUN(config_assembly_and_lr);
    RUN(metrics_rows_and_resume);
    RUN(saved_configs_are_omegaconfs_text);
    RUN(data_root_prefix_is_basename_of_normpath);
    return tc_finish();
}
