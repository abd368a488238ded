/*
 * test_review_merge.c - review findings on ti-merge's library (train/merge.h):
 *   - the same file given twice (the peer asks on the terminal for the second copy's '*'): one
 *     --rename FILE:*=@ renames one occurrence (the first), so the second keeps '*' and the merge
 *     succeeds with both; before, the rename hit both copies and the second collided with '@';
 *   - two renames of one OLD in a file given once: the second is reported as never applied.
 */
#include <string.h>

#include "embedding_io.h"
#include "merge.h"
#include "test_common.h"
#include "tokenizer.h"

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
        CHECK(!memcmp(m.emb.terms[0].vectors, v, sizeof v));
        CHECK(!memcmp(m.emb.terms[1].vectors, v, sizeof v));
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

int main(void) {
    RUN(same_file_twice_one_rename);
    return tc_finish();
}
