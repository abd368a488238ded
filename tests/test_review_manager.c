/*
 * test_review_manager.c - review findings on the embedding manager (train/embedding_manager.h)
 * as ti-sample uses it:
 *   - a file whose placeholder is several tokens (diffusers' '<cat-toy>') is refused with the
 *     peer's words and now also how to give its vectors a one-token name (ti-merge --rename with
 *     the file and the placeholder, -sd for CLIP; or ti-convert), and the commands it names work:
 *     the renamed term loads.
 */
#include <string.h>

#include "embedding_io.h"
#include "embedding_manager.h"
#include "merge.h"
#include "test_common.h"
#include "tokenizer.h"

/* 1 when the n floats are equal value by value */
static int same_floats(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

TEST(multi_token_placeholder_says_how_to_rename) {
    char vocab[1024];
    snprintf(vocab, sizeof vocab, "%s/%s", ti_tokenizer_vocab_dir(),
             ti_tokenizer_vocab_file(TI_TOKENIZER_BPE));
    struct ti_tokenizer *tok = NULL;
    struct ti_err err = {0};
    CHECK_OK(ti_tokenizer_load(&tok, TI_TOKENIZER_BPE, vocab, &err), &err);
    if (!tok) return;
    static float v[2 * 8] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct ti_embedding e;
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "<cat-toy>", -1, 2, 8, v, &err), &err);
    e.source = "dl/learned_embeds.bin";
    struct ti_emb_manager em;
    ti_emb_manager_init(&em, 8, 1);
    err.msg[0] = 0;
    CHECK(ti_emb_manager_add_file(&em, &e, tok, &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "String '<cat-toy>' maps to more than a single token. Please use "
                          "another string") != NULL);
    CHECK(strstr(err.msg, "ti-merge --manager_ckpts dl/learned_embeds.bin --rename "
                          "'dl/learned_embeds.bin:<cat-toy>=NEW' -sd --output_path") != NULL);
    CHECK(strstr(err.msg, "ti-convert dl/learned_embeds.bin") != NULL);
    CHECK(em.n_terms == 0);
    if (!strstr(err.msg, "--rename")) fprintf(stderr, "  message: %s\n", err.msg);

    /* what the rename does (ti_merge_add, the library of ti-merge): the term loads */
    struct ti_merge_rename rn = {"dl/learned_embeds.bin", "<cat-toy>", "cat", 0};
    struct ti_merge_opts o = {0};
    o.tok = tok;
    o.renames = &rn;
    o.n_renames = 1;
    struct ti_merge m;
    ti_merge_init(&m);
    CHECK_OK(ti_merge_add(&m, &e, "dl/learned_embeds.bin", &o, &err), &err);
    CHECK_OK(ti_merge_finish(&m, &o, &err), &err);
    CHECK_OK(ti_emb_manager_add_file(&em, &m.emb, tok, &err), &err);
    CHECK(em.n_terms == 1 && em.n_rows == 2 && same_floats(em.rows, v, 16));
    ti_merge_free(&m);
    ti_emb_manager_free(&em);
    e.source = NULL;
    ti_embedding_free(&e);
    ti_tokenizer_free(&tok);
}

int main(void) {
    RUN(multi_token_placeholder_says_how_to_rename);
    return tc_finish();
}
