/*
 * test_embedding_manager.c - train/embedding_manager.h against the peer's rules (ti-peer.md §3),
 * on the tiny SD (CLIP) and LDM (BERT) configs with random weights. Expected token ids come from
 * transformers' tokenizers (tests/fixtures/tokenizer_prompts.jsonl: "A photo of a * on the
 * beach" gives CLIP a=320 photo=1125 of=539 *=265 on=525, BERT a=1037 photo=6302 of=1997 *=1008
 * on=2006; "sculpture" is CLIP 8757, BERT 6743 (line 6744 of bert-base-uncased-vocab.txt);
 * "opossum" is CLIP [78, 38575]); the substituted layouts are worked out by hand from the peer's
 * EmbeddingManager.forward.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedding_manager.h"
#include "ldm.h"
#include "test_common.h"

static const char *const SD_CFG = "configs/tiny/sd-tiny-finetune.yaml";
static const char *const LDM_CFG = "configs/tiny/ldm-tiny-finetune.yaml";
#define CLIP_VOCAB "model/vocab/bpe_simple_vocab_16e6.txt.gz"
#define BERT_VOCAB "model/vocab/bert-base-uncased-vocab.txt"
#define PP         "model.params.personalization_config.params."

static char *dupstr(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* A tiny model with random weights, its config and tokenizer. */
struct fx {
    struct ti_config cfg;
    struct ti_ldm m;
    struct ti_tokenizer *tok;
    int ok;
};

static void fx_open(struct fx *f, int clip, const char *const *over, int n_over) {
    struct ti_err err = {0};
    memset(f, 0, sizeof *f);
    const char *path = clip ? SD_CFG : LDM_CFG;
    CHECK_OK(ti_config_load(&f->cfg, &path, 1, over, n_over, &err), &err);
    CHECK_OK(ti_ldm_init(&f->m, &f->cfg, &err), &err);
    CHECK_OK(ti_ldm_alloc(&f->m, ti_backend_cpu(), TI_DTYPE_F32, &err), &err);
    CHECK_OK(ti_ldm_randomize(&f->m, 77, &err), &err);
    CHECK_OK(ti_tokenizer_load(&f->tok, clip ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE,
                               clip ? CLIP_VOCAB : BERT_VOCAB, &err),
             &err);
    f->ok = tc_failures == 0;
}

static void fx_close(struct fx *f) {
    ti_ldm_free(&f->m);
    ti_tokenizer_free(&f->tok);
}

/* the expected 77 ids: head[0..n) then fill */
static void expect_ids(const int32_t *got, const int32_t *head, int n, int32_t fill) {
    int same = 1;
    for (int i = 0; i < TI_TOKENS_MAX; i++) {
        int32_t want = i < n ? head[i] : fill;
        if (got[i] != want) {
            fprintf(stderr, "  id[%d] = %d, expected %d\n", i, got[i], want);
            same = 0;
            break;
        }
    }
    CHECK(same);
}

static void run_ids(int clip, int nvec) {
    char over[128];
    snprintf(over, sizeof over, PP "num_vectors_per_token=%d", nvec);
    const char *ov[] = {over};
    struct fx f;
    fx_open(&f, clip, ov, 1);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    CHECK(em.n_terms == 1 && em.n_rows == nvec && em.dim == 32);
    CHECK(em.terms[0].token == (clip ? 265 : 1008));
    int32_t idx[TI_TOKENS_MAX];
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "a photo of *", idx, 77, &err), &err);
    int32_t bos = clip ? 49406 : 101, eos = clip ? 49407 : 102, pad = clip ? 49407 : 0;
    int32_t a = clip ? 320 : 1037, photo = clip ? 1125 : 6302, of = clip ? 539 : 1997;
    int32_t head[16] = {bos, a, photo, of};
    int n = 4;
    for (int k = 0; k < nvec; k++)
        head[n++] = -1 - k;
    head[n++] = eos;
    expect_ids(idx, head, n, pad);
    /* two occurrences: "* on *" -> each expanded, the right one first */
    int32_t on = clip ? 525 : 2006;
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "* on *", idx, 77, &err), &err);
    n = 0;
    head[n++] = bos;
    for (int k = 0; k < nvec; k++)
        head[n++] = -1 - k;
    head[n++] = on;
    for (int k = 0; k < nvec; k++)
        head[n++] = -1 - k;
    head[n++] = eos;
    expect_ids(idx, head, n, pad);
    ti_emb_manager_free(&em);
    fx_close(&f);
}

TEST(ids_clip_1) {
    run_ids(1, 1);
}
TEST(ids_clip_3) {
    run_ids(1, 3);
}
TEST(ids_bert_1) {
    run_ids(0, 1);
}
TEST(ids_bert_3) {
    run_ids(0, 3);
}

/* A 3-vector word near the end of a full prompt: the tail (EOS included) falls off at 77. */
TEST(truncation_at_77) {
    const char *ov[] = {PP "num_vectors_per_token=3"};
    struct fx f;
    fx_open(&f, 1, ov, 1);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    char prompt[512] = "";
    for (int i = 0; i < 74; i++)
        strcat(prompt, "a ");
    strcat(prompt, "*");
    int32_t idx[77], want[77];
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, prompt, idx, 77, &err), &err);
    /* BOS, 74 x a, then the 3 rows at 75.. truncated: rows 0 and 1 fit, row 2 and EOS fall off */
    want[0] = 49406;
    for (int i = 1; i <= 74; i++)
        want[i] = 320;
    want[75] = -1;
    want[76] = -2;
    expect_ids(idx, want, 77, 0);
    /* at the front: "* a a ... a" (74 a): BOS, 3 rows, 73 a; the last a and EOS fall off */
    strcpy(prompt, "*");
    for (int i = 0; i < 74; i++)
        strcat(prompt, " a");
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, prompt, idx, 77, &err), &err);
    want[1] = -1;
    want[2] = -2;
    want[3] = -3;
    for (int i = 4; i < 77; i++)
        want[i] = 320;
    expect_ids(idx, want, 77, 0);
    ti_emb_manager_free(&em);
    fx_close(&f);
}

/* host f32 copy of row r of a CPU f32 table */
static const float *table_row(const struct ti_tensor *t, int64_t r) {
    return (const float *)t->data + r * t->stride[0];
}

static void run_init(int clip) {
    const char *ov[] = {PP "num_vectors_per_token=2"};
    struct fx f;
    fx_open(&f, clip, ov, 1);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    CHECK(em.init_rows != NULL && em.terms[0].has_init);
    const float *tokrow = table_row(&f.m.text.tok_emb, clip ? 8757 : 6743);
    const float *pos0 = table_row(&f.m.text.pos_emb, 0);
    int bad = 0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 32; j++) {
            float want = clip ? tokrow[j] + pos0[j] : tokrow[j];
            bad += em.rows[r * 32 + j] != want || em.init_rows[r * 32 + j] != want;
        }
    CHECK(bad == 0);
    /* the regulariser: zero at the init vectors; with D = p - p0 it is mean(D D^T) */
    CHECK(ti_emb_manager_reg_loss(&em, 1.0, NULL) == 0.0);
    double dsum[32] = {0};
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 32; j++) {
            float delta = 0.01f * (float)(r + 1) * (float)(j % 5 - 2);
            em.rows[r * 32 + j] += delta;
        }
    double gram = 0;
    for (int r = 0; r < 2; r++)
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < 32; j++)
                gram += ((double)em.rows[r * 32 + j] - em.init_rows[r * 32 + j]) *
                        ((double)em.rows[s * 32 + j] - em.init_rows[s * 32 + j]);
    for (int j = 0; j < 32; j++)
        for (int r = 0; r < 2; r++)
            dsum[j] += (double)em.rows[r * 32 + j] - em.init_rows[r * 32 + j];
    float *g = calloc(64, sizeof *g);
    double loss = ti_emb_manager_reg_loss(&em, 0.5, g);
    CHECK(fabs(loss - gram / 4) < 1e-9);
    /* d/dp_r of mean(D D^T) = 2 * sum_i D_i / N^2, times the weight */
    double gb = 0;
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 32; j++)
            gb = fmax(gb, fabs(g[r * 32 + j] - 0.5 * 2 * dsum[j] / 4));
    CHECK(gb < 1e-7);
    free(g);
    ti_emb_manager_free(&em);
    fx_close(&f);
}

TEST(init_vector_clip_quirk) {
    run_init(1);
}
TEST(init_vector_bert) {
    run_init(0);
}

/* No init word: torch.rand-like U[0,1), reproducible from the seed. */
TEST(random_init) {
    const char *ov[] = {PP "initializer_words=[]", PP "num_vectors_per_token=2"};
    struct fx f;
    fx_open(&f, 1, ov, 2);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager a, b, c;
    CHECK_OK(ti_emb_manager_from_config(&a, &f.cfg, f.tok, &f.m.text, 5, &err), &err);
    CHECK_OK(ti_emb_manager_from_config(&b, &f.cfg, f.tok, &f.m.text, 5, &err), &err);
    CHECK_OK(ti_emb_manager_from_config(&c, &f.cfg, f.tok, &f.m.text, 6, &err), &err);
    CHECK(a.init_rows == NULL && !a.terms[0].has_init);
    double lo = 1, hi = 0, mean = 0;
    for (int i = 0; i < 64; i++) {
        lo = fmin(lo, a.rows[i]);
        hi = fmax(hi, a.rows[i]);
        mean += a.rows[i] / 64.0;
    }
    CHECK(lo >= 0 && hi < 1 && hi - lo > 0.5 && mean > 0.3 && mean < 0.7);
    CHECK(memcmp(a.rows, b.rows, 64 * sizeof(float)) == 0);
    CHECK(memcmp(a.rows, c.rows, 64 * sizeof(float)) != 0);
    CHECK(ti_emb_manager_reg_loss(&a, 1.0, NULL) == 0.0);
    ti_emb_manager_free(&a);
    ti_emb_manager_free(&b);
    ti_emb_manager_free(&c);
    fx_close(&f);
}

/* Multi-token words: placeholders are refused with the peer's message; an init text of m tokens
 * is spread over N >= m vectors (A1111), refused for N < m. */
TEST(multi_token_words) {
    struct ti_err err = {0};
    struct ti_emb_manager em;
    {
        const char *ov[] = {PP "placeholder_strings=[opossum]"};
        struct fx f;
        fx_open(&f, 1, ov, 1);
        if (!f.ok) return;
        CHECK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err) != TI_OK);
        CHECK(strstr(err.msg, "String 'opossum' maps to more than a single token. Please use "
                              "another string") != NULL);
        CHECK(strstr(err.msg, "placeholder_strings[0]") != NULL);
        fprintf(stderr, "(expected) %s\n", err.msg);
        fx_close(&f);
    }
    {
        const char *ov[] = {PP "initializer_words=[opossum]"};
        struct fx f;
        fx_open(&f, 1, ov, 1);
        ti_err_clear(&err);
        CHECK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err) != TI_OK);
        CHECK(strstr(err.msg, "String 'opossum' maps to more than a single token") != NULL);
        CHECK(strstr(err.msg, "initializer_words[0]") != NULL);
        CHECK(strstr(err.msg, "num_vectors_per_token (1)") != NULL);
        fprintf(stderr, "(expected) %s\n", err.msg);
        fx_close(&f);
    }
    {
        const char *ov[] = {PP "initializer_words=[opossum]", PP "num_vectors_per_token=3"};
        struct fx f;
        fx_open(&f, 1, ov, 2);
        ti_err_clear(&err);
        CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
        /* vector i = token floor(i * 2 / 3): 78, 78, 38575 (+ position 0, CLIP) */
        const int32_t pick[3] = {78, 78, 38575};
        const float *pos0 = table_row(&f.m.text.pos_emb, 0);
        int bad = 0;
        for (int r = 0; r < 3; r++)
            for (int j = 0; j < 32; j++)
                bad += em.rows[r * 32 + j] != table_row(&f.m.text.tok_emb, pick[r])[j] + pos0[j];
        CHECK(bad == 0);
        ti_emb_manager_free(&em);
        fx_close(&f);
    }
}

/* Two placeholders; the same token twice is refused. */
TEST(two_placeholders) {
    const char *ov[] = {PP "placeholder_strings=['*', '@']", PP "initializer_words=[sculpture]"};
    struct fx f;
    fx_open(&f, 1, ov, 2);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    CHECK(em.n_terms == 2 && em.terms[1].token == 287 && em.terms[1].row0 == 1);
    CHECK(em.terms[0].has_init && !em.terms[1].has_init);
    int32_t idx[77];
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "@ on *", idx, 77, &err), &err);
    const int32_t want[] = {49406, -2, 525, -1, 49407};
    expect_ids(idx, want, 5, 49407);
    ti_emb_manager_free(&em);
    fx_close(&f);

    /* the same token under another spelling (the config refuses the same string twice) */
    const char *ov2[] = {PP "placeholder_strings=['*', ' *']"};
    fx_open(&f, 1, ov2, 1);
    ti_err_clear(&err);
    CHECK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err) != TI_OK);
    CHECK(strstr(err.msg, "placeholder_strings[1]") != NULL && strstr(err.msg, "token"));
    fprintf(stderr, "(expected) %s\n", err.msg);
    fx_close(&f);
}

/* Progressive words: k = min(N, 1 + counter // 2000), counted once per call per placeholder. */
TEST(progressive_counter) {
    const char *ov[] = {PP "num_vectors_per_token=3", PP "progressive_words=true"};
    struct fx f;
    fx_open(&f, 1, ov, 2);
    if (!f.ok) return;
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    CHECK(em.progressive_words && em.progressive_counter == 0);
    int32_t idx[2 * 77];
    const char *batch[2] = {"*", "a photo"};
    CHECK_OK(ti_emb_manager_batch_ids(&em, f.tok, batch, 2, idx, 77, &err), &err);
    CHECK(em.progressive_counter == 1); /* one call, two prompts: counted once */
    const int32_t one[] = {49406, -1, 49407};
    expect_ids(idx, one, 3, 49407);
    em.progressive_counter = 1998;
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "*", idx, 77, &err), &err); /* 1999: k 1 */
    expect_ids(idx, one, 3, 49407);
    /* a prompt without the word still counts */
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "", idx, 77, &err), &err); /* 2000 */
    CHECK(em.progressive_counter == 2000);
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "*", idx, 77, &err), &err); /* 2001: k 2 */
    const int32_t two[] = {49406, -1, -2, 49407};
    expect_ids(idx, two, 4, 49407);
    em.progressive_counter = 100000; /* k capped at N = 3 */
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "*", idx, 77, &err), &err);
    const int32_t three[] = {49406, -1, -2, -3, 49407};
    expect_ids(idx, three, 5, 49407);
    ti_emb_manager_free(&em);
    fx_close(&f);
}

/* Sampling: files are added; duplicates across files and wrong widths are refused. */
TEST(add_files) {
    struct fx f;
    fx_open(&f, 1, NULL, 0);
    if (!f.ok) return;
    struct ti_err err = {0};
    float v[3 * 32];
    for (int i = 0; i < 96; i++)
        v[i] = (float)i;
    struct ti_embedding a, b, c, w;
    ti_embedding_init(&a);
    ti_embedding_init(&b);
    ti_embedding_init(&c);
    ti_embedding_init(&w);
    a.source = dupstr("cat.pt");
    b.source = dupstr("dog.pt");
    c.source = dupstr("again.pt");
    w.source = dupstr("wide.pt");
    CHECK_OK(ti_embedding_add_term(&a, "*", 265, 3, 32, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&b, "@", -1, 1, 32, v + 64, &err), &err);
    CHECK_OK(ti_embedding_add_term(&c, "*", 265, 1, 32, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&w, "<w>", -1, 1, 16, v, &err), &err);
    struct ti_emb_manager em;
    ti_emb_manager_init(&em, 32, 1);
    CHECK_OK(ti_emb_manager_add_file(&em, &a, f.tok, &err), &err);
    CHECK_OK(ti_emb_manager_add_file(&em, &b, f.tok, &err), &err);
    CHECK(em.n_rows == 4 && em.terms[1].row0 == 3 && em.terms[1].token == 287);
    CHECK(memcmp(em.rows, v, 96 * sizeof(float)) == 0);
    CHECK(memcmp(em.rows + 96, v + 64, 32 * sizeof(float)) == 0);
    int32_t idx[77];
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, "a * on @", idx, 77, &err), &err);
    const int32_t want[] = {49406, 320, -1, -2, -3, 525, -4, 49407};
    expect_ids(idx, want, 8, 49407);
    CHECK(ti_emb_manager_add_file(&em, &c, f.tok, &err) != TI_OK);
    CHECK(strstr(err.msg, "cat.pt") && strstr(err.msg, "again.pt") && strstr(err.msg, "twice"));
    fprintf(stderr, "(expected) %s\n", err.msg);
    ti_err_clear(&err);
    CHECK(ti_emb_manager_add_file(&em, &w, f.tok, &err) != TI_OK);
    CHECK(strstr(err.msg, "wide.pt") && strstr(err.msg, "16") && strstr(err.msg, "32"));
    fprintf(stderr, "(expected) %s\n", err.msg);
    CHECK(em.n_terms == 2);
    /* back to a file model */
    struct ti_embedding out;
    CHECK_OK(ti_emb_manager_to_embedding(&em, &out, &err), &err);
    CHECK(out.n_terms == 2 && out.terms[0].n_vectors == 3 && out.terms[1].token == 287);
    CHECK(memcmp(out.terms[0].vectors, v, 96 * sizeof(float)) == 0);
    ti_embedding_free(&out);
    ti_emb_manager_free(&em);
    ti_embedding_free(&a);
    ti_embedding_free(&b);
    ti_embedding_free(&c);
    ti_embedding_free(&w);
    fx_close(&f);
}

/* embedding_manager_ckpt replaces the vectors; a 2-vector file with num_vectors_per_token 1 is
 * refused (the peer fails there with a shape mismatch). */
/* path <- a peer file of '*' (token 265) with n_vectors x 32 of v */
static void write_star(const char *path, int n_vectors, const float *v) {
    struct ti_err err = {0};
    struct ti_embedding e;
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", 265, n_vectors, 32, v, &err), &err);
    CHECK_OK(ti_embedding_write(&e, path, TI_EMB_PEER, &err), &err);
    ti_embedding_free(&e);
}

/* from_config with the file written last: refused, the message naming `want` */
static void expect_refused(struct fx *f, const char *want) {
    struct ti_err err = {0};
    struct ti_emb_manager em;
    CHECK(ti_emb_manager_from_config(&em, &f->cfg, f->tok, &f->m.text, 1, &err) != TI_OK);
    CHECK(strstr(err.msg, want) != NULL);
    fprintf(stderr, "(expected) %s\n", err.msg);
}

TEST(manager_ckpt) {
    char path[128], ovs[256]; /* the process id: suites running side by side do not collide */
    snprintf(path, sizeof path, "/tmp/ti_test_emb_manager_ckpt_%d.pt", (int)getpid());
    snprintf(ovs, sizeof ovs, PP "embedding_manager_ckpt=%s", path);
    struct ti_err err = {0};
    float v[64];
    for (int i = 0; i < 64; i++)
        v[i] = 0.25f * (float)i;
    write_star(path, 1, v);
    const char *ov[] = {ovs};
    struct fx f;
    fx_open(&f, 1, ov, 1);
    if (!f.ok) return;
    struct ti_emb_manager em;
    CHECK_OK(ti_emb_manager_from_config(&em, &f.cfg, f.tok, &f.m.text, 1, &err), &err);
    CHECK(em.n_rows == 1 && memcmp(em.rows, v, 32 * sizeof(float)) == 0);
    CHECK(em.terms[0].has_init); /* the init vectors of "sculpture" stay for the regulariser */
    CHECK(ti_emb_manager_reg_loss(&em, 1.0, NULL) > 0);
    ti_emb_manager_free(&em);
    write_star(path, 2, v);
    expect_refused(&f, "num_vectors_per_token");
    /* a NaN vector: refused by name (every step would have been skipped as non-finite) */
    v[3] = NAN;
    write_star(path, 1, v);
    expect_refused(&f, "embedding_manager_ckpt");
    fx_close(&f);
    unlink(path);
}

/* The reference substitutes at the stored token id: a '*' term stored for another word is that
 * word; A1111's own id of '*' (265), no id, or an id that is no whole word keeps '*'. The ids
 * come from the tokenizer, not from constants. */
static void words_case(int clip, const char *word, const char *piece) {
    struct fx f;
    fx_open(&f, clip, NULL, 0);
    if (!f.ok) return;
    struct ti_err err = {0};
    int32_t star, wid;
    CHECK_OK(ti_tokenizer_single_token(&star, f.tok, "*", &err), &err);
    CHECK_OK(ti_tokenizer_single_token(&wid, f.tok, word, &err), &err);
    /* a vocabulary entry that is not a word of its own (CLIP: no end of word; BERT: ##) */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(ti_tokenizer_tokenize(&ids, &n, f.tok, piece, strlen(piece), &err), &err);
    CHECK(n >= 2);
    int32_t inner = n >= 2 ? ids[clip ? 0 : 1] : -1;
    free(ids);
    float v[64] = {0};
    const char *keys[5] = {"*", "*", "*", "*", "@"};
    int64_t toks[5] = {wid, star, -1, inner, wid};
    for (int c = 0; c < 5; c++) {
        struct ti_embedding e;
        ti_embedding_init(&e);
        e.source = dupstr("x.pt");
        CHECK_OK(ti_embedding_add_term(&e, keys[c], toks[c], 1, 32, v, &err), &err);
        char note[512];
        int got = ti_embedding_words_from_tokens(&e, f.tok, note, sizeof note);
        CHECK(got == (c == 0));
        CHECK(!strcmp(e.terms[0].placeholder, c == 0 ? word : keys[c]));
        CHECK(c == 0 ? strstr(note, "x.pt") && strstr(note, word) : !note[0]);
        ti_embedding_free(&e);
    }
    /* and the manager then substitutes the file's vectors at that word */
    struct ti_embedding one;
    ti_embedding_init(&one);
    CHECK_OK(ti_embedding_add_term(&one, word, wid, 1, 32, v, &err), &err);
    struct ti_emb_manager em;
    ti_emb_manager_init(&em, 32, clip);
    CHECK_OK(ti_emb_manager_add_file(&em, &one, f.tok, &err), &err);
    int32_t idx[77];
    char prompt[64];
    snprintf(prompt, sizeof prompt, "a photo of %s", word);
    CHECK_OK(ti_emb_manager_prompt_ids(&em, f.tok, prompt, idx, 77, &err), &err);
    CHECK(idx[4] == -1);
    ti_emb_manager_free(&em);
    ti_embedding_free(&one);
    fx_close(&f);
}
TEST(words_from_tokens_clip) {
    words_case(1, "sks", "photorealistic");
}
TEST(words_from_tokens_bert) {
    words_case(0, "toy", "embeddings");
}

int main(void) {
#ifndef TI_HAVE_ZLIB
    printf("SKIP: built without zlib (the CLIP merges file %s is gzip'd)\n", CLIP_VOCAB);
    return TC_SKIP;
#else
    RUN(ids_clip_1);
    RUN(ids_clip_3);
    RUN(ids_bert_1);
    RUN(ids_bert_3);
    RUN(truncation_at_77);
    RUN(init_vector_clip_quirk);
    RUN(init_vector_bert);
    RUN(random_init);
    RUN(multi_token_words);
    RUN(two_placeholders);
    RUN(progressive_counter);
    RUN(add_files);
    RUN(manager_ckpt);
    RUN(words_from_tokens_clip);
    RUN(words_from_tokens_bert);
    return tc_finish();
#endif
}
