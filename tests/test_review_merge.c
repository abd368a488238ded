/*
 * test_review_merge.c - review findings on ti-merge's library (train/merge.h):
 *   - the same file given twice (the peer asks on the terminal for the second copy's '*'): one
 *     --rename FILE:*=@ renames one occurrence (the first), so the second keeps '*' and the merge
 *     succeeds with both; before, the rename hit both copies and the second collided with '@';
 *   - two renames of one OLD in a file given once: the second is reported as never applied;
 *   - the tool: a file given three times merges with two renames of its '*' (one per copy); the
 *     same rename more often than the file is given is a usage error (exit 2), no output;
 *   - an SD v1 file (width 768) merged without -sd, or an LDM file (1280) with it, still merges as
 *     the peer does but warns that the ids are the other tokenizer's (the peer's silent pitfall).
 * usage: test_review_merge <ti-merge>   (ctest passes it)
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emb_test_util.h"
#include "embedding_io.h"
#include "merge.h"
#include "test_common.h"
#include "tokenizer.h"

/* 1 when the n floats are equal value by value */
static int same_floats(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static struct ti_tokenizer *load_clip(struct ti_err *err) {
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/%s", ti_tokenizer_vocab_dir(),
             ti_tokenizer_vocab_file(TI_TOKENIZER_BPE));
    struct ti_tokenizer *tok = NULL;
    if (ti_tokenizer_load(&tok, TI_TOKENIZER_BPE, vocab, err) != TI_OK) return NULL;
    return tok;
}

TEST(same_file_twice_one_rename) {
    struct ti_err err = {0};
    struct ti_tokenizer *tok = load_clip(&err);
    CHECK(tok != NULL);
    if (!tok) return;
    static float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct ti_embedding a;
    ti_embedding_init(&a);
    CHECK_OK(ti_embedding_add_term(&a, "*", 265, 1, 8, v, &err), &err);
    struct ti_merge_rename rn = {"a.pt", "*", "@", 0};
    struct ti_merge_opts o = {0};
    o.tok = tok;
    o.renames = &rn;
    o.n_renames = 1;
    struct ti_merge m;
    ti_merge_init(&m);
    CHECK_OK(ti_merge_add(&m, &a, "a.pt", &o, &err), &err);
    CHECK_OK(ti_merge_add(&m, &a, "a.pt", &o, &err), &err);
    CHECK_OK(ti_merge_finish(&m, &o, &err), &err);
    CHECK(m.emb.n_terms == 2);
    if (m.emb.n_terms == 2) {
        /* the first copy renamed, the second as it was; CLIP ids: '@' 287, '*' 265 */
        CHECK(!strcmp(m.emb.terms[0].placeholder, "@") && m.emb.terms[0].token == 287);
        CHECK(!strcmp(m.emb.terms[1].placeholder, "*") && m.emb.terms[1].token == 265);
        CHECK(same_floats(m.emb.terms[0].vectors, v, 8));
        CHECK(same_floats(m.emb.terms[1].vectors, v, 8));
    }
    ti_merge_free(&m);

    /* two renames of '*' but a.pt given once: the second is never applied, an error */
    struct ti_merge_rename two[2] = {{"a.pt", "*", "@", 0}, {"a.pt", "*", "%", 0}};
    o.renames = two;
    o.n_renames = 2;
    ti_merge_init(&m);
    CHECK_OK(ti_merge_add(&m, &a, "a.pt", &o, &err), &err);
    CHECK(m.emb.n_terms == 1 && !strcmp(m.emb.terms[0].placeholder, "@"));
    err.msg[0] = 0;
    CHECK(ti_merge_finish(&m, &o, &err) != TI_OK);
    CHECK(strstr(err.msg, "a.pt:*=%") != NULL && strstr(err.msg, "never applied") != NULL);
    ti_merge_free(&m);
    ti_embedding_free(&a);
    ti_tokenizer_free(&tok);
}

static const char *merge_tool;

TEST(tool_file_three_times) {
    char dir[] = "/tmp/ti_review_merge_XXXXXX", p[512], out[512], cmd[4096];
    CHECK(mkdtemp(dir) != NULL);
    struct ti_err err = {0};
    static float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    snprintf(p, sizeof p, "%s/a.pt", dir);
    CHECK(etu_write_one(p, "*", 1, 8, v, TI_EMB_A1111) == 0);
    snprintf(out, sizeof out, "%s/m.pt", dir);
    snprintf(cmd, sizeof cmd,
             "%s --manager_ckpts %s %s %s --output_path %s -sd --rename '%s:*=@' --rename "
             "'%s:*=%%' </dev/null >/dev/null 2>&1",
             merge_tool, p, p, p, out, p, p);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    struct ti_embedding m;
    ti_embedding_init(&m);
    CHECK_OK(ti_embedding_read(&m, out, &err), &err);
    CHECK(m.n_terms == 3);
    if (m.n_terms == 3)
        CHECK(!strcmp(m.terms[0].placeholder, "@") && !strcmp(m.terms[1].placeholder, "%") &&
              !strcmp(m.terms[2].placeholder, "*"));
    ti_embedding_free(&m);
    /* three renames of '*' for a file given twice: usage error, nothing written */
    unlink(out);
    snprintf(cmd, sizeof cmd,
             "%s --manager_ckpts %s %s --output_path %s -sd --rename '%s:*=@' --rename '%s:*=%%' "
             "--rename '%s:*=&' </dev/null >/dev/null 2>&1",
             merge_tool, p, p, out, p, p, p);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    struct stat st;
    CHECK(stat(out, &st) != 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ti-merge on fixture `fx` with `flag`; 1 when it exits 0 and its stderr holds `needle`
 * (NULL: holds no warning) */
static int merge_warns(const char *fx, const char *flag, const char *needle) {
    char dir[] = "/tmp/ti_review_merge_XXXXXX", cmd[4096], errp[512];
    if (!mkdtemp(dir)) return 0;
    snprintf(errp, sizeof errp, "%s/err", dir);
    snprintf(cmd, sizeof cmd,
             "%s --manager_ckpts %s --output_path %s/m.pt %s </dev/null "
             ">/dev/null 2>%s",
             merge_tool, fx, dir, flag, errp);
    int rc = system(cmd);
    char buf[4096] = "";
    FILE *f = fopen(errp, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    int ok = WIFEXITED(rc) && WEXITSTATUS(rc) == 0 &&
             (needle ? strstr(buf, needle) != NULL : strstr(buf, "warning") == NULL);
    if (!ok) fprintf(stderr, "  %s %s: rc %d, stderr: %s\n", fx, flag, rc, buf);
    return ok;
}

/* Stored ids are copied (the peer's merge), so only a renamed term's id comes from the chosen
 * tokenizer: the warning is for those, when the width says the other model. */
TEST(tool_warns_about_the_tokenizer) {
#define SD_FX  "tests/fixtures/io/a1111_f32.pt"
#define LDM_FX "tests/fixtures/io/peer_ldm_1280.pt"
    CHECK(merge_warns(SD_FX, "", NULL));
    CHECK(merge_warns(SD_FX, "--rename " SD_FX ":*=cat", "pass -sd"));
    CHECK(merge_warns(SD_FX, "-sd --rename " SD_FX ":*=cat", NULL));
    CHECK(merge_warns(LDM_FX, "-sd", NULL));
    CHECK(merge_warns(LDM_FX, "-sd --rename " LDM_FX ":*=cat", "drop -sd"));
    CHECK(merge_warns(LDM_FX, "--rename " LDM_FX ":*=cat", NULL));
#undef SD_FX
#undef LDM_FX
}

int main(int argc, char **argv) {
    RUN(same_file_twice_one_rename);
    if (argc > 1) {
        merge_tool = argv[1];
        RUN(tool_file_three_times);
        RUN(tool_warns_about_the_tokenizer);
    }
    return tc_finish();
}
