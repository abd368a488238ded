/*
 * test_merge.c - ti-merge (train/ti_merge.c) and its library (train/merge.h), the peer's
 * merge_embeddings.py with ti's checks:
 *   - files of every format ti reads (a1111 f32/f16/bf16/legacy, peer dict/ParameterDict/
 *     merged, diffusers .bin 1-D/2-D and .safetensors, kohya .pt/.safetensors) merged into one
 *     peer file that round-trips through ti_embedding_read: every vector as the source holds
 *     it, token ids recomputed for the chosen tokenizer (CLIP ids from ti-peer.md §3.2, BERT
 *     ids = line numbers of bert-base-uncased's vocab.txt - 1);
 *   - conflicts: --rename, the error naming both files when stdin is not a terminal, the peer's
 *     prompts verbatim through the library's ask hook (conflict, multi-token answer, and ours for
 *     an answer that is already merged), a multi-token or already-used rename refused;
 *   - widths that differ, a missing file, --format a1111/diffusers with several terms, usage
 *     errors (exit 2) and run-time errors (exit 1) never leaving an output file.
 *
 * usage: test_merge <ti-merge>   (ctest passes it)
 */
#include "emb_test_util.h"
#include "embedding_io.h"
#include "io_test_util.h"
#include "merge.h"
#include "test_common.h"
#include "tokenizer.h"

#include <math.h>     /* defines: NAN */
#include <stdarg.h>   /* defines: va_list */
#include <sys/stat.h> /* defines: mkdir */

static const char *tmp, *merge;

static int tool(const char *args) {
    char a[8192];
    snprintf(a, sizeof a, "%s </dev/null", args);
    return tio_tool(tmp, merge, a);
}

static int file_has(const char *name, const char *needle) {
    return tio_file_has(tmp, name, needle);
}

#define FX(name) "tests/fixtures/io/" name

/* appends printf-style text to args */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
cat(char *args, size_t n, const char *fmt, ...) {
    size_t k = strlen(args);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args + k, n - k, fmt, ap);
    va_end(ap);
}

/* The term `placeholder` of the file at `path`, read on its own. */
static int same_vectors(const struct ti_embedding *merged, const char *placeholder, const char *src,
                        const char *src_placeholder) {
    struct ti_embedding e;
    struct ti_err err = {0};
    if (ti_embedding_read(&e, src, &err) != TI_OK) {
        fprintf(stderr, "  %s: %s\n", src, err.msg);
        return 0;
    }
    const struct ti_embedding_term *a = NULL, *b = NULL;
    for (int i = 0; i < merged->n_terms; i++)
        if (!strcmp(merged->terms[i].placeholder, placeholder)) a = &merged->terms[i];
    for (int i = 0; i < e.n_terms; i++)
        if (!strcmp(e.terms[i].placeholder, src_placeholder)) b = &e.terms[i];
    int ok = a && b && a->n_vectors == b->n_vectors && a->dim == b->dim &&
             !memcmp(a->vectors, b->vectors, (size_t)a->n_vectors * (size_t)a->dim * 4);
    if (!ok)
        fprintf(stderr, "  term '%s' differs from '%s' of %s\n", placeholder, src_placeholder, src);
    ti_embedding_free(&e);
    return ok;
}

static int64_t token_of(const struct ti_embedding *e, const char *placeholder) {
    for (int i = 0; i < e->n_terms; i++)
        if (!strcmp(e->terms[i].placeholder, placeholder)) return e->terms[i].token;
    return -2;
}

/* The peer's merge copies a new string's stored token as it is, whatever -sd says: an SD file
 * merged without -sd keeps CLIP's 265 for '*', an LDM file with -sd keeps BERT's 1008 (it used
 * to be re-tokenized, which broke both); diffusers output names a '*' stored for another word
 * by that word. */
TEST(stored_token_ids_are_copied) {
    static const struct {
        const char *fx, *flags;
        int64_t token;
    } cases[] = {
        {FX("peer_dict.pt"), "", 265},
        {FX("a1111_f32.pt"), "", 265},
        {FX("peer_ldm_1280.pt"), "-sd", 1008},
        {FX("peer_ldm_1280.pt"), "", 1008},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[1024], args[2048];
        snprintf(out, sizeof out, "%s/kept%zu.pt", tmp, i);
        snprintf(args, sizeof args, "%s --manager_ckpts %s --output_path %s", cases[i].flags,
                 cases[i].fx, out);
        CHECK(tool(args) == 0);
        struct ti_embedding m;
        struct ti_err err = {0};
        CHECK_OK(ti_embedding_read(&m, out, &err), &err);
        if (err.msg[0]) continue;
        CHECK(m.n_terms == 1 && token_of(&m, "*") == cases[i].token);
        if (token_of(&m, "*") != cases[i].token)
            fprintf(stderr, "  %s %s: '*' has token %lld, want %lld\n", cases[i].fx, cases[i].flags,
                    (long long)token_of(&m, "*"), (long long)cases[i].token);
        ti_embedding_free(&m);
    }
}

/* argparse's forms: --flag=value, and an option is never taken as a value (the peer's
 * "expected one argument"; ti-merge used to write a file named '-sd') */
TEST(argparse_forms) {
    char args[2048];
    snprintf(args, sizeof args, "--manager_ckpts=%s --output_path=%s/eq.pt -sd", FX("peer_dict.pt"),
             tmp);
    CHECK(tool(args) == 0);
    snprintf(args, sizeof args, "%s/eq.pt", tmp);
    CHECK(tio_exists(args));
    snprintf(args, sizeof args, "--manager_ckpts %s --output_path -sd", FX("peer_dict.pt"));
    CHECK(tool(args) == 2 && file_has("err", "--output_path expected one argument, not the "
                                             "option '-sd'"));
    snprintf(args, sizeof args, "%s/-sd", tmp);
    CHECK(!tio_exists(args) && !tio_exists("-sd"));
    snprintf(args, sizeof args, "--manager_ckpts %s --output_path %s/x.pt --stable_diffusion=1",
             FX("peer_dict.pt"), tmp);
    CHECK(tool(args) == 2 && file_has("err", "--stable_diffusion takes no value"));
    /* argparse's abbreviations, as merge_embeddings.py takes them: --man, --out, --st */
    snprintf(args, sizeof args, "--man %s --out=%s/abbr.pt --st", FX("peer_dict.pt"), tmp);
    CHECK(tool(args) == 0);
    snprintf(args, sizeof args, "%s/abbr.pt", tmp);
    CHECK(tio_exists(args));
}

/* NaN vectors (a diverged run) are refused, as ti-sample and ti-train refuse them; the peer
 * merged them silently */
TEST(nan_vectors_refused) {
    static float v[768];
    v[5] = NAN;
    char in[1024], out[1024], args[4096];
    snprintf(in, sizeof in, "%s/nan.pt", tmp);
    snprintf(out, sizeof out, "%s/nan_merged.pt", tmp);
    CHECK(etu_write_one(in, "*", 1, 768, v, TI_EMB_A1111) == 0);
    snprintf(args, sizeof args, "--manager_ckpts %s --output_path %s -sd", in, out);
    CHECK(tool(args) == 1 && file_has("err", "hold NaN (vector 0, element 5)"));
    CHECK(!tio_exists(out));
}

/* one a1111 file written as a1111: its name, step and checkpoint are kept (they were dropped) */
TEST(one_file_keeps_its_metadata) {
    char out[1024], args[4096];
    snprintf(out, sizeof out, "%s/one.pt", tmp);
    snprintf(args, sizeof args, "--manager_ckpts %s --output_path %s --format a1111 -sd",
             FX("a1111_f32.pt"), out);
    CHECK(tool(args) == 0);
    struct ti_embedding a, b;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&a, FX("a1111_f32.pt"), &err), &err);
    CHECK_OK(ti_embedding_read(&b, out, &err), &err);
    CHECK(a.name && b.name && !strcmp(a.name, b.name) && a.step == b.step && a.step > 0 &&
          a.sd_checkpoint && b.sd_checkpoint && !strcmp(a.sd_checkpoint, b.sd_checkpoint));
    ti_embedding_free(&a);
    ti_embedding_free(&b);
}

/* ---- the tool ------------------------------------------------------------------------------ */

TEST(merge_every_format_sd) {
    char out[1024];
    snprintf(out, sizeof out, "%s/all.pt", tmp);
    static const char *const in[][2] = {
        {FX("a1111_f32.pt"), NULL},
        {FX("a1111_f16.pt"), "*=cat"},
        {FX("a1111_bf16.pt"), "*=dog"},
        {FX("legacy_a1111.pt"), "*=sks"},
        {FX("peer_dict.pt"), "*=toy"},
        {FX("peer_paramdict.pt"), "*=painting"},
        {FX("peer_merged.pt"), "*=sculpture"},
        {FX("diffusers_1d.bin"), "<cat-toy>=house"},
        {FX("diffusers_2d.bin"), "<cat-toy>=tree"},
        {FX("learned_embeds.safetensors"), "<cat-toy>=car"},
        {FX("kohya.pt"), "*=bird"},
        {FX("kohya.safetensors"), "*=fish"},
    };
    char args[4096] = "-sd --manager_ckpts";
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        cat(args, sizeof args, " %s", in[i][0]);
    cat(args, sizeof args, " --output_path %s", out);
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        if (in[i][1]) cat(args, sizeof args, " --rename '%s:%s'", in[i][0], in[i][1]);
    int rc = tool(args);
    CHECK(rc == 0);
    if (rc) {
        file_has("err", "?");
        return;
    }
    CHECK(file_has("out", "Parsing " FX("a1111_f32.pt") "...\nParsing " FX("a1111_f16.pt")));
    CHECK(file_has("out", "Saving combined manager...\n"));
    CHECK(file_has("out", "Managers merged. Final list of placeholders: {'*': '" FX(
                              "a1111_f32.pt") "', 'cat': '" FX("a1111_f16.pt") "', 'dog': '"));
    CHECK(file_has("out", "'@': '" FX("peer_merged.pt") "', 'house': '" FX("diffusers_1d.bin")));
    CHECK(file_has("out", "'fish': '" FX("kohya.safetensors") "'}\n"));
    struct ti_embedding m;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    if (err.msg[0]) return;
    CHECK(m.format == TI_EMB_PEER && m.n_terms == 13);
    /* CLIP ids (ti-peer.md §3.2 and the CLIP vocabulary) */
    CHECK(token_of(&m, "*") == 265 && token_of(&m, "@") == 287 && token_of(&m, "cat") == 2368 &&
          token_of(&m, "toy") == 5988 && token_of(&m, "sks") == 48136 &&
          token_of(&m, "painting") == 3086 && token_of(&m, "sculpture") == 8757);
    CHECK(same_vectors(&m, "*", FX("a1111_f32.pt"), "*"));
    CHECK(same_vectors(&m, "cat", FX("a1111_f16.pt"), "*"));
    CHECK(same_vectors(&m, "dog", FX("a1111_bf16.pt"), "*"));
    CHECK(same_vectors(&m, "sks", FX("legacy_a1111.pt"), "*"));
    CHECK(same_vectors(&m, "toy", FX("peer_dict.pt"), "*"));
    CHECK(same_vectors(&m, "painting", FX("peer_paramdict.pt"), "*"));
    CHECK(same_vectors(&m, "sculpture", FX("peer_merged.pt"), "*"));
    CHECK(same_vectors(&m, "@", FX("peer_merged.pt"), "@"));
    CHECK(same_vectors(&m, "house", FX("diffusers_1d.bin"), "<cat-toy>"));
    CHECK(same_vectors(&m, "tree", FX("diffusers_2d.bin"), "<cat-toy>"));
    CHECK(same_vectors(&m, "car", FX("learned_embeds.safetensors"), "<cat-toy>"));
    CHECK(same_vectors(&m, "bird", FX("kohya.pt"), "*"));
    CHECK(same_vectors(&m, "fish", FX("kohya.safetensors"), "*"));
    ti_embedding_free(&m);
}

TEST(merge_ldm_recomputes_bert_ids) {
    char out[1024];
    snprintf(out, sizeof out, "%s/ldm.pt", tmp);
    char args[2048] = "";
    /* the peer's LDM file (BERT '*' = 1008), given twice with a rename */
    cat(args, sizeof args, "--manager_ckpts %s %s --output_path %s --rename %s:*=cat",
        FX("peer_ldm_1280.pt"), FX("peer_ldm_1280.pt"), out, FX("peer_ldm_1280.pt"));
    /* one file given twice: the rename applies to one occurrence (the first), the second keeps
     * '*' (the peer asks for it on the terminal) */
    CHECK(tool(args) == 0 && file_has("out", "{'cat': '" FX("peer_ldm_1280.pt") "', '*': '" FX(
                                                 "peer_ldm_1280.pt") "'}"));
    CHECK(tio_exists(out));
    snprintf(args, sizeof args, "--manager_ckpts " FX("peer_ldm_1280.pt") " --output_path %s", out);
    CHECK(tool(args) == 0);
    struct ti_embedding m;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    /* bert-base-uncased vocab.txt: '*' on line 1009 -> id 1008 */
    CHECK(m.n_terms == 1 && token_of(&m, "*") == 1008 && m.terms[0].dim == 1280);
    CHECK(same_vectors(&m, "*", FX("peer_ldm_1280.pt"), "*"));
    ti_embedding_free(&m);
    /* an SD file's '*' under BERT: renamed to a BERT word, its id recomputed (cat = 4937) */
    args[0] = '\0';
    cat(args, sizeof args, "--manager_ckpts %s --output_path %s --rename %s:*=cat",
        FX("a1111_f32.pt"), out, FX("a1111_f32.pt"));
    CHECK(tool(args) == 0);
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    CHECK(m.n_terms == 1 && token_of(&m, "cat") == 4937);
    ti_embedding_free(&m);
}

TEST(conflicts_without_a_terminal) {
    char out[1024];
    snprintf(out, sizeof out, "%s/c.pt", tmp);
    char args[2048];
    snprintf(args, sizeof args,
             "-sd --manager_ckpts " FX("a1111_f32.pt") " " FX("kohya.pt") " --output_path %s", out);
    CHECK(tool(args) == 1 && file_has("err", "placeholder '*' of '" FX("kohya.pt") "'") &&
          file_has("err", "already used by '" FX("a1111_f32.pt") "'") &&
          file_has("err", "--rename " FX("kohya.pt") ":*=NEW"));
    CHECK(!tio_exists(out));
    /* a rename that is several CLIP tokens (opossum = 78 38575) */
    args[0] = '\0';
    cat(args, sizeof args, "-sd --manager_ckpts %s %s --output_path %s --rename %s:*=opossum",
        FX("a1111_f32.pt"), FX("kohya.pt"), out, FX("kohya.pt"));
    CHECK(tool(args) == 1 && file_has("err", "\"opossum\" is not a single token"));
    CHECK(!tio_exists(out));
    /* a rename onto a name merged already (the peer would overwrite it silently) */
    args[0] = '\0';
    cat(args, sizeof args, "-sd --manager_ckpts %s %s --output_path %s --rename %s:*=@",
        FX("peer_merged.pt"), FX("kohya.pt"), out, FX("kohya.pt"));
    CHECK(tool(args) == 1 &&
          file_has("err", "placeholder '@' is already used by '" FX("peer_merged.pt") "'"));
    CHECK(!tio_exists(out));
    /* a multi-token placeholder from a file names the file and the fix */
    snprintf(args, sizeof args, "-sd --manager_ckpts " FX("diffusers_2d.bin") " --output_path %s",
             out);
    CHECK(tool(args) == 1 && file_has("err", "\"<cat-toy>\" is not a single token") &&
          file_has("err", "--rename " FX("diffusers_2d.bin") ":<cat-toy>=NEW"));
    /* a rename onto another spelling of a merged name's token (CLIP lower-cases: 'Cat' is
     * 'cat'): a file with both would be refused by ti-sample */
    args[0] = '\0';
    cat(args, sizeof args,
        "-sd --manager_ckpts %s %s --output_path %s --rename %s:*=cat --rename %s:*=Cat",
        FX("a1111_f32.pt"), FX("kohya.pt"), out, FX("a1111_f32.pt"), FX("kohya.pt"));
    CHECK(tool(args) == 1 && file_has("err", "placeholder 'Cat' is already used by '" FX(
                                                 "a1111_f32.pt") "' (as 'cat': the same token)"));
    CHECK(!tio_exists(out));
    /* an SD file merged without -sd: the fix its width suggests */
    snprintf(args, sizeof args, "--manager_ckpts " FX("diffusers_2d.bin") " --output_path %s", out);
    CHECK(tool(args) == 1 && file_has("err", "\"<cat-toy>\" is not a single token") &&
          file_has("err", "Stable Diffusion embedding, pass -sd"));
    /* a rename of a placeholder the file does not hold */
    args[0] = '\0';
    cat(args, sizeof args, "-sd --manager_ckpts %s --output_path %s --rename %s:@=cat",
        FX("a1111_f32.pt"), out, FX("a1111_f32.pt"));
    CHECK(tool(args) == 1 && file_has("err", "has no placeholder '@' (it holds '*')"));
    CHECK(!tio_exists(out));
}

TEST(widths_files_and_formats) {
    char out[1024];
    snprintf(out, sizeof out, "%s/w.pt", tmp);
    char args[2048] = "";
    cat(args, sizeof args, "-sd --manager_ckpts %s %s --output_path %s --rename %s:*=cat",
        FX("a1111_f32.pt"), FX("a1111_sd2_1024.pt"), out, FX("a1111_sd2_1024.pt"));
    CHECK(tool(args) == 1 &&
          file_has("err", "'" FX("a1111_sd2_1024.pt") "' holds vectors of width 1024") &&
          file_has("err", "'" FX("a1111_f32.pt") "' holds width 768"));
    CHECK(!tio_exists(out));
    snprintf(args, sizeof args, "-sd --manager_ckpts %s/missing.pt --output_path %s", tmp, out);
    CHECK(tool(args) == 1 && file_has("out", "Parsing ") && file_has("err", "missing.pt"));
    /* one-term formats */
    snprintf(args, sizeof args,
             "-sd --manager_ckpts " FX("peer_merged.pt") " --output_path %s --format a1111", out);
    CHECK(tool(args) == 1 && file_has("err", "the a1111 format holds one placeholder and the "
                                             "merge has 2"));
    CHECK(!tio_exists(out));
    snprintf(args, sizeof args,
             "-sd --manager_ckpts " FX("kohya.pt") " --output_path %s --format a1111", out);
    CHECK(tool(args) == 0);
    struct ti_embedding m;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    CHECK(m.format == TI_EMB_A1111 && m.n_terms == 1 && token_of(&m, "*") == 265);
    ti_embedding_free(&m);
    /* a .safetensors path, and an existing folder: FOLDER/learned_embeds.safetensors, as
     * ti-convert writes it */
    char outs[2][1024], reads[2][1100];
    snprintf(outs[0], sizeof outs[0], "%s/w.safetensors", tmp);
    snprintf(reads[0], sizeof reads[0], "%s", outs[0]);
    snprintf(outs[1], sizeof outs[1], "%s/dfold", tmp);
    snprintf(reads[1], sizeof reads[1], "%s/learned_embeds.safetensors", outs[1]);
    CHECK(mkdir(outs[1], 0755) == 0);
    for (int k = 0; k < 2; k++) {
        args[0] = '\0';
        cat(args, sizeof args,
            "-sd --manager_ckpts %s --output_path %s --format diffusers --rename %s:*=sks",
            FX("kohya.pt"), outs[k], FX("kohya.pt"));
        CHECK(tool(args) == 0);
        CHECK_OK(ti_embedding_read(&m, reads[k], &err), &err);
        CHECK(m.format == TI_EMB_DIFFUSERS && m.n_terms == 1 &&
              !strcmp(m.terms[0].placeholder, "sks"));
        CHECK(same_vectors(&m, "sks", FX("kohya.pt"), "*"));
        ti_embedding_free(&m);
    }
}

TEST(usage_errors) {
    CHECK(tool("--help") == 0 && file_has("out", "--manager_ckpts") &&
          file_has("out", "--rename FILE:OLD=NEW") && file_has("out", "--format peer") &&
          file_has("out", "-sd, --stable_diffusion") &&
          file_has("out", "--allow-unknown-globals") && file_has("out", "--vocab"));
    CHECK(tool("") == 2 && file_has("err", "--manager_ckpts is required"));
    CHECK(tool("--manager_ckpts a.pt") == 2 && file_has("err", "--output_path is required"));
    CHECK(tool("--manager_ckpts --output_path o.pt") == 2 && file_has("err", "at least one"));
    CHECK(tool("--manager_ckpts a.pt --output_path o.pt --format onnx") == 2 &&
          file_has("err", "--format must be"));
    CHECK(tool("--manager_ckpts a.pt --output_path o.pt --rename b.pt:*=x") == 2 &&
          file_has("err", "FILE one of the --manager_ckpts"));
    CHECK(tool("--manager_ckpts a.pt --output_path o.pt --rename a.pt:*") == 2 &&
          file_has("err", "with a non-empty NEW"));
    /* diffusers' learned_embeds.bin is a pickle; ti writes that layout only as safetensors */
    CHECK(tool("--manager_ckpts a.pt --output_path o.bin --format diffusers") == 2 &&
          file_has("err", "ending in .safetensors or an existing folder") &&
          file_has("err", "not 'o.bin'"));
    CHECK(tool("--manager_ckpts a.pt --output_path o.pt --frob") == 2 &&
          file_has("err", "unknown argument '--frob'"));
    CHECK(tool("--manager_ckpts a.pt --output_path") == 2 &&
          file_has("err", "--output_path expected one argument"));
}

/* The tool on a terminal (util-linux `script` gives it a pseudo-terminal): the peer's prompts
 * and the answers typed. */
TEST(prompts_on_a_terminal) {
    if (tio_run("command -v script >/dev/null 2>&1") != 0) {
        TC_SKIP_TEST("util-linux `script` is missing: cannot give ti-merge a terminal");
        return;
    }
    char out[1024], cmd[4096];
    snprintf(out, sizeof out, "%s/tty.pt", tmp);
    snprintf(cmd, sizeof cmd,
             "printf 'opossum\\ncat\\n' | script -qec \"%s -sd --manager_ckpts %s %s "
             "--output_path %s\" /dev/null >%s/out 2>%s/err",
             merge, FX("a1111_f32.pt"), FX("kohya.pt"), out, tmp, tmp);
    CHECK(tio_run(cmd) == 0);
    CHECK(file_has("out", "Placeholder string * was already used. Please enter a replacement "
                          "string: "));
    CHECK(file_has("out", "Placeholder string 'opossum' maps to more than a single token. Please "
                          "enter another string: "));
    CHECK(file_has("out", "Final list of placeholders: {'*': '" FX("a1111_f32.pt") "', 'cat': '" FX(
                              "kohya.pt") "'}"));
    struct ti_embedding m;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    CHECK(m.n_terms == 2 && token_of(&m, "cat") == 2368);
    CHECK(same_vectors(&m, "cat", FX("kohya.pt"), "*"));
    ti_embedding_free(&m);
}

/* ---- the library's prompts ----------------------------------------------------------------- */

struct script {
    const char *answers[8];
    int next;
    char prompts[8][512];
};

static ti_status scripted(void *user, const char *prompt, char **answer, struct ti_err *err) {
    (void)err;
    struct script *s = user;
    snprintf(s->prompts[s->next], sizeof s->prompts[0], "%s", prompt);
    const char *a = s->answers[s->next++];
    *answer = a ? strdup(a) : NULL;
    return TI_OK;
}

TEST(prompts_are_the_peers) {
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/%s", ti_tokenizer_vocab_dir(),
             ti_tokenizer_vocab_file(TI_TOKENIZER_BPE));
    struct ti_tokenizer *tok = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_tokenizer_load(&tok, TI_TOKENIZER_BPE, vocab, &err), &err);
    if (!tok) return;
    static float v[2 * 8];
    struct ti_embedding a, b;
    ti_embedding_init(&a);
    ti_embedding_init(&b);
    CHECK_OK(ti_embedding_add_term(&a, "*", 265, 1, 8, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&a, "@", -1, 1, 8, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&b, "*", 265, 2, 8, v, &err), &err);
    struct script s = {{"opossum", "@", "cat"}, 0, {{0}}};
    struct ti_merge_opts o = {0};
    o.tok = tok;
    o.ask = scripted;
    o.ask_user = &s;
    struct ti_merge m;
    ti_merge_init(&m);
    CHECK_OK(ti_merge_add(&m, &a, "a.pt", &o, &err), &err);
    CHECK_OK(ti_merge_add(&m, &b, "b.pt", &o, &err), &err);
    CHECK_OK(ti_merge_finish(&m, &o, &err), &err);
    CHECK(s.next == 3);
    CHECK(!strcmp(s.prompts[0], "Placeholder string * was already used. Please enter a "
                                "replacement string: "));
    CHECK(!strcmp(s.prompts[1], "Placeholder string 'opossum' maps to more than a single token. "
                                "Please enter another string: "));
    CHECK(!strcmp(s.prompts[2], "Placeholder string '@' is already used by a.pt. Please enter "
                                "another string: "));
    CHECK(m.emb.n_terms == 3 && !strcmp(m.emb.terms[2].placeholder, "cat") &&
          m.emb.terms[2].token == 2368 && m.emb.terms[2].n_vectors == 2 &&
          !strcmp(m.term_src[2], "b.pt") && m.emb.terms[1].token == 287);
    /* end of input: an error naming the file, nothing added */
    struct script eof = {{NULL}, 0, {{0}}};
    o.ask_user = &eof;
    ti_err_clear(&err);
    CHECK(ti_merge_add(&m, &b, "c.pt", &o, &err) == TI_ERR_INVALID &&
          strstr(err.msg, "'c.pt': no replacement was given for placeholder '*'"));
    CHECK(m.emb.n_terms == 3);
    char r[64];
    ti_merge_py_repr(r, sizeof r, "it's\n");
    CHECK(!strcmp(r, "\"it's\\n\""));
    ti_merge_py_repr(r, sizeof r, "a\\b");
    CHECK(!strcmp(r, "'a\\\\b'"));
    ti_merge_free(&m);
    ti_embedding_free(&a);
    ti_embedding_free(&b);
    ti_tokenizer_free(&tok);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_merge <ti-merge>\n");
        return 2;
    }
    merge = argv[1];
    tmp = tio_tmpdir();
    RUN(stored_token_ids_are_copied);
    RUN(argparse_forms);
    RUN(nan_vectors_refused);
    RUN(one_file_keeps_its_metadata);
    RUN(merge_every_format_sd);
    RUN(merge_ldm_recomputes_bert_ids);
    RUN(conflicts_without_a_terminal);
    RUN(widths_files_and_formats);
    RUN(usage_errors);
    RUN(prompts_on_a_terminal);
    RUN(prompts_are_the_peers);
    tio_rmrf(tmp);
    return tc_finish();
}
