/*
 * test_io_tools.c - ti-inspect and ti-convert as users run them: --help, usage errors (exit 2),
 * run-time errors (exit 1) with messages naming the file, hostile and malformed inputs that never
 * leave an output file behind, --json values (first elements and f64 sum) and conversions that
 * read back correctly.
 *
 * usage: test_io_tools <ti-inspect> <ti-convert>   (ctest passes both)
 */
#include <math.h> /* defines: NAN */

#include "emb_test_util.h"
#include "embedding_io.h"
#include "io_test_util.h"
#include "test_common.h"

static const char *tmp, *inspect, *convert;

/* Runs "<tool> args" with stdout and stderr captured into tmp/out and tmp/err. */
static int tool(const char *exe, const char *args) {
    return tio_tool(tmp, exe, args);
}

static int out_has(const char *needle) {
    return tio_file_has(tmp, "out", needle);
}

static int err_has(const char *needle) {
    return tio_file_has(tmp, "err", needle);
}

TEST(inspect_usage) {
    CHECK(tool(inspect, "--help") == 0 && out_has("usage: ti-inspect FILE [--json]"));
    CHECK(tool(inspect, "") == 2 && err_has("usage"));
    CHECK(tool(inspect, "--frobnicate x") == 2 && err_has("unknown option '--frobnicate'"));
    CHECK(tool(inspect, "a b") == 2 && err_has("one FILE expected"));
    /* `--` ends the options (argparse): a FILE may then start with '-' */
    CHECK(tool(inspect, "-- -not-there.pt") == 1 && err_has("-not-there.pt"));
    CHECK(tool(inspect, "-- a b") == 2 && err_has("one FILE expected"));
    char args[1024];
    snprintf(args, sizeof args, "--json -- %s", tio_fixture("a1111_f32.pt"));
    CHECK(tool(inspect, args) == 0 && out_has("\"name\": \"cat\""));
    /* argparse's abbreviations: --js is --json */
    snprintf(args, sizeof args, "--js %s", tio_fixture("a1111_f32.pt"));
    CHECK(tool(inspect, args) == 0 && out_has("\"name\": \"cat\""));
}

TEST(inspect_files) {
    char args[1024];
    snprintf(args, sizeof args, "%s", tio_fixture("a1111_f32.pt"));
    CHECK(tool(inspect, args) == 0);
    CHECK(out_has("embedding: a1111 format, name 'cat', step 500"));
    CHECK(out_has("term '*': token 265, 2 vectors of width 768 (SD v1)"));
    CHECK(out_has("string_to_param.*  f32    [2, 768]"));
    snprintf(args, sizeof args, "--json %s", tio_fixture("a1111_f32.pt"));
    CHECK(tool(inspect, args) == 0);
    double sum = 0;
    for (int i = 0; i < 1536; i++)
        sum += tio_value(i, 1);
    char want[256];
    snprintf(want, sizeof want,
             "\"first\": [%.9g, %.9g, %.9g, %.9g, %.9g, %.9g, %.9g, %.9g], \"sum\": %.17g}",
             tio_value(0, 1), tio_value(1, 1), tio_value(2, 1), tio_value(3, 1), tio_value(4, 1),
             tio_value(5, 1), tio_value(6, 1), tio_value(7, 1), sum);
    CHECK(out_has(want));
    CHECK(out_has("{\"placeholder\": \"*\", \"token\": 265, \"n_vectors\": 2, \"dim\": 768, "
                  "\"nonfinite\": 0}"));
    CHECK(out_has("\"name\": \"cat\", \"step\": 500, \"sd_checkpoint\": \"abc123\""));
    CHECK(out_has("\"container\": \"torch-zip\""));
    snprintf(args, sizeof args, "--json %s", tio_fixture("dtypes.pt"));
    CHECK(tool(inspect, args) == 0);
    CHECK(out_has("{\"key\": \"i64\", \"dtype\": \"i64\", \"shape\": [3], \"first\": [1, -2, "
                  "1099511627776]"));
    CHECK(out_has("{\"key\": \"scalar\", \"dtype\": \"f32\", \"shape\": [], \"first\": [7.5], "
                  "\"sum\": 7.5}"));
    snprintf(args, sizeof args, "%s", tio_fixture("lightning_mini.ckpt"));
    CHECK(tool(inspect, args) == 0 && out_has("state_dict.model_ema.diffusion_modelout2weight") &&
          out_has("looks like: an SD v1 checkpoint"));
    snprintf(args, sizeof args, "%s", tio_fixture("diffusers_tiny"));
    CHECK(tool(inspect, args) == 0 && out_has("container: diffusers-folder, 1131 tensors") &&
          out_has("first_stage_model.decoder.mid.attn_1.q.weight"));
    snprintf(args, sizeof args, "%s", tio_fixture("peer_merged.pt"));
    CHECK(tool(inspect, args) == 0 && out_has("term '@': token 287, 3 vectors of width 768"));
    snprintf(args, sizeof args, "%s", tio_fixture("learned_embeds.safetensors"));
    CHECK(tool(inspect, args) == 0 && out_has("metadata: format = pt") &&
          out_has("diffusers format"));
}

TEST(inspect_refuses_bad_files) {
    char args[1024];
    static const char *const bad[][2] = {
        {"mal_os_system.pt", "os.system"},
        {"mal_posix_system_in_a1111.pt", "posix.system"},
        {"mal_inst_os_system.pt", "os.system"},
        {"mal_stack_global_eval.pt", "builtins.eval"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "--json %s", tio_fixture(bad[i][0]));
        CHECK(tool(inspect, args) == 1 && err_has(bad[i][1]) && err_has(bad[i][0]));
        size_t no;
        char *o = tu_read_file(tio_path(tmp, "out"), &no);
        CHECK(o && no == 0); /* nothing printed before the refusal */
        free(o);
    }
    snprintf(args, sizeof args, "%s", tio_path(tmp, "missing.ckpt"));
    CHECK(tool(inspect, args) == 1 && err_has("missing.ckpt"));
    size_t n;
    uint8_t *d = tio_read(tio_fixture("a1111_f32.pt"), &n);
    tio_write(tio_path(tmp, "cut.pt"), d, n / 2);
    free(d);
    snprintf(args, sizeof args, "%s", tio_path(tmp, "cut.pt"));
    CHECK(tool(inspect, args) == 1 && err_has("cut.pt"));
}

static void read_back(const char *name, struct ti_embedding *e) {
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(e, tio_path(tmp, name), &err), &err);
}

TEST(convert_usage) {
    CHECK(tool(convert, "--help") == 0 && out_has("usage: ti-convert IN OUT"));
    CHECK(tool(convert, "") == 2 && err_has("IN and OUT are required"));
    CHECK(tool(convert, "a.pt b.pt --format onnx") == 2 && err_has("--format must be"));
    CHECK(tool(convert, "a.pt b.pt --step x") == 2 && err_has("--step needs"));
    CHECK(tool(convert, "a.pt b.pt --format") == 2 && err_has("--format expected one argument"));
    /* argparse: an option is not a value ("expected one argument"); --flag=value is one */
    CHECK(tool(convert, "a.pt b.pt --name --format peer") == 2 &&
          err_has("--name expected one argument, not the option '--format'"));
    char args[2048];
    snprintf(args, sizeof args, "tests/fixtures/io/peer_dict.pt %s --format=a1111 --name=-5",
             tio_path(tmp, "eq.pt"));
    CHECK(tool(convert, args) == 0);
    struct ti_embedding e;
    read_back("eq.pt", &e);
    CHECK(e.format == TI_EMB_A1111 && e.name && !strcmp(e.name, "-5"));
    ti_embedding_free(&e);
    /* argparse's abbreviations: --fo and --na are --format and --name */
    snprintf(args, sizeof args, "tests/fixtures/io/peer_dict.pt %s --fo=a1111 --na abbr",
             tio_path(tmp, "abbr.pt"));
    CHECK(tool(convert, args) == 0);
    read_back("abbr.pt", &e);
    CHECK(e.format == TI_EMB_A1111 && e.name && !strcmp(e.name, "abbr"));
    ti_embedding_free(&e);
    /* NaN vectors (a diverged run): refused, as ti-sample refuses them */
    static float v[768];
    v[3] = NAN;
    CHECK(etu_write_one(tio_path(tmp, "nan.pt"), "*", 1, 768, v, TI_EMB_A1111) == 0);
    snprintf(args, sizeof args, "%s %s", tio_path(tmp, "nan.pt"), tio_path(tmp, "nan_out.pt"));
    CHECK(tool(convert, args) == 1 && err_has("hold NaN (vector 0, element 3)"));
    CHECK(!tio_exists(tio_path(tmp, "nan_out.pt")));
    /* ti-inspect reads such a file and says what is wrong with it (text and --json) */
    v[700] = -INFINITY;
    CHECK(etu_write_one(tio_path(tmp, "nan2.pt"), "*", 1, 768, v, TI_EMB_A1111) == 0);
    snprintf(args, sizeof args, "%s", tio_path(tmp, "nan2.pt"));
    CHECK(tool(inspect, args) == 0 && out_has("warning: 2 of its 768 values are NaN or infinite"));
    snprintf(args, sizeof args, "--json %s", tio_path(tmp, "nan2.pt"));
    CHECK(tool(inspect, args) == 0 && out_has("\"dim\": 768, \"nonfinite\": 2}"));
    /* a diffusers folder OUT that does not exist is named */
    snprintf(args, sizeof args, "tests/fixtures/io/peer_dict.pt %s --format diffusers",
             tio_path(tmp, "no_such_folder/"));
    CHECK(tool(convert, args) == 1 && err_has("no_such_folder/' (OUT) does not exist"));
    CHECK(tool(convert, "a.pt b.pt c.pt") == 2 && err_has("too many"));
    /* an OUT name that contradicts the layout: loaders pick their reader by it */
    CHECK(tool(convert, "a.pt b.bin --format diffusers") == 2 &&
          err_has("ending in .safetensors (or a folder), not 'b.bin'"));
    CHECK(tool(convert, "a.pt b.safetensors --format a1111") == 2 &&
          err_has("writes a torch pickle, not safetensors"));
}

/* ti-inspect shows a name's control bytes as \xNN: no raw ESC reaches the terminal. (A --token
 * past the base vocabulary is legitimate: diffusers' added tokens start at 49408.) */
TEST(inspect_escapes_control_bytes) {
    struct ti_err err = {0};
    struct ti_embedding e;
    static float v[768];
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "\x1b[2J\nx", -1, 1, 768, v, &err), &err);
    CHECK_OK(ti_embedding_write(&e, tio_path(tmp, "ctrl.safetensors"), TI_EMB_DIFFUSERS, &err),
             &err);
    ti_embedding_free(&e);
    char args[2048];
    snprintf(args, sizeof args, "%s", tio_path(tmp, "ctrl.safetensors"));
    CHECK(tool(inspect, args) == 0 && out_has("term '\\x1b[2J\\x0ax'") && !out_has("\x1b"));
}

/* OUT ending in .safetensors picks the diffusers layout when --format is not given; a 1280-wide
 * (LDM) term without a token is stored under BERT's id of '*' (1008), not CLIP's (265). */
TEST(convert_picks_by_extension_and_width) {
    char args[2048];
    struct ti_embedding e;
    snprintf(args, sizeof args, "%s %s", tio_fixture("a1111_f16.pt"),
             tio_path(tmp, "x.safetensors"));
    CHECK(tool(convert, args) == 0);
    read_back("x.safetensors", &e);
    CHECK(e.format == TI_EMB_DIFFUSERS && e.n_terms == 1);
    ti_embedding_free(&e);
    struct ti_err err = {0};
    static float v[1280];
    for (int i = 0; i < 1280; i++)
        v[i] = 0.001f * (float)i;
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", -1, 1, 1280, v, &err), &err);
    CHECK_OK(ti_embedding_write(&e, tio_path(tmp, "ldm.pt"), TI_EMB_PEER, &err), &err);
    ti_embedding_free(&e);
    read_back("ldm.pt", &e);
    CHECK(e.n_terms == 1 && e.terms[0].token == 1008);
    ti_embedding_free(&e);
}

TEST(convert_files) {
    char args[2048], dir[1024];
    struct ti_embedding e;
    /* f16 A1111 -> f32 A1111, values exact */
    snprintf(args, sizeof args, "%s %s", tio_fixture("a1111_f16.pt"), tio_path(tmp, "c1.pt"));
    CHECK(tool(convert, args) == 0 && out_has("wrote"));
    read_back("c1.pt", &e);
    CHECK(e.format == TI_EMB_A1111 && e.file_dtype == TI_DTYPE_F32 && e.n_terms == 1 &&
          e.terms[0].vectors[5] == tio_value(5, 1) && !strcmp(e.name, "cat16"));
    ti_embedding_free(&e);
    /* a merged peer file cannot be a1111 (one term): exit 1 and no OUT */
    snprintf(dir, sizeof dir, "%s/conv", tmp);
    mkdir(dir, 0755);
    snprintf(args, sizeof args, "%s %s/c2.pt", tio_fixture("peer_merged.pt"), dir);
    CHECK(tool(convert, args) == 1 && err_has("exactly one term"));
    CHECK(tio_count_entries(dir) == 0);
    snprintf(args, sizeof args, "%s %s/c3.pt --format peer", tio_fixture("peer_merged.pt"), dir);
    CHECK(tool(convert, args) == 0);
    CHECK(tio_count_entries(dir) == 1);
    /* hostile, truncated, SDXL and missing inputs: exit 1, nothing written */
    const char *bad[] = {"mal_posix_system_in_a1111.pt", "mal_builtins_eval.pt", "sdxl.safetensors",
                         "lightning_mini.ckpt", "no_such_file.pt"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "%s %s/bad%zu.pt", tio_fixture(bad[i]), dir, i);
        CHECK(tool(convert, args) == 1 && err_has("error"));
    }
    snprintf(args, sizeof args, "%s %s/cut.pt", tio_path(tmp, "cut.pt"), dir);
    CHECK(tool(convert, args) == 1);
    CHECK(tio_count_entries(dir) == 1);
    /* a diffusers vector has no token id: the peer format needs --token */
    snprintf(args, sizeof args, "%s %s/c4.pt --format peer", tio_fixture("diffusers_2d.bin"), dir);
    CHECK(tool(convert, args) == 1 && err_has("--token"));
    snprintf(args, sizeof args, "%s %s --format peer --token 49408",
             tio_fixture("diffusers_2d.bin"), tio_path(tmp, "c4.pt"));
    CHECK(tool(convert, args) == 0);
    read_back("c4.pt", &e);
    CHECK(e.format == TI_EMB_PEER && e.terms[0].token == 49408 &&
          !strcmp(e.terms[0].placeholder, "<cat-toy>") && e.terms[0].n_vectors == 3 &&
          e.terms[0].vectors[100] == tio_value(100, 8));
    ti_embedding_free(&e);
    /* into a folder as learned_embeds.safetensors; name and step overrides */
    snprintf(args, sizeof args, "%s %s --format diffusers", tio_fixture("kohya.safetensors"), dir);
    CHECK(tool(convert, args) == 0);
    read_back("conv/learned_embeds.safetensors", &e);
    CHECK(e.format == TI_EMB_DIFFUSERS && e.terms[0].vectors[7] == tio_value(7, 11));
    ti_embedding_free(&e);
    snprintf(args, sizeof args, "%s %s --name renamed --step 42", tio_fixture("legacy_a1111.pt"),
             tio_path(tmp, "c5.pt"));
    CHECK(tool(convert, args) == 0);
    read_back("c5.pt", &e);
    CHECK(!strcmp(e.name, "renamed") && e.step == 42);
    ti_embedding_free(&e);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_io_tools <ti-inspect> <ti-convert>\n");
        return 2;
    }
    inspect = argv[1];
    convert = argv[2];
    tmp = tio_tmpdir();
    RUN(inspect_usage);
    RUN(inspect_files);
    RUN(inspect_refuses_bad_files);
    RUN(convert_usage);
    RUN(convert_files);
    RUN(convert_picks_by_extension_and_width);
    RUN(inspect_escapes_control_bytes);
    tio_rmrf(tmp);
    return tc_finish();
}
