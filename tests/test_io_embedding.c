/*
 * test_io_embedding.c - embedding files (train/embedding_io.h): every format written by real
 * torch/safetensors (A1111 f32/f16/bf16, legacy and protocol 4, the peer's plain dicts and
 * pickled ParameterDict with cuda:0 locations, a merged multi-term file, LDM 1280-wide, diffusers
 * 1-D/2-D .bin and .safetensors, kohya), refusals (SDXL, checkpoints, hostile files, PNG), width
 * checks, bit-exact round trips for every writer x the reader, the A1111 writer's opcode and
 * global whitelist, record alignment, CRC and names, and writes that fail leaving nothing behind.
 */
#include "embedding_io.h"
#include "io_test_util.h"
#include "test_common.h"
#include "zip.h"

static const char *tmp;

struct want {
    const char *file;
    enum ti_embedding_format fmt;
    const char *name; /* NULL: the stem */
    int64_t step;
    const char *ckpt, *ckpt_name;
    enum ti_dtype dt;
    int n_terms;
    struct {
        const char *ph;
        int64_t token;
        int n, dim, salt;
    } t[2];
};

static const struct want wants[] = {
    {"a1111_f32.pt",
     TI_EMB_A1111,
     "cat",
     500,
     "abc123",
     "v1-5",
     TI_DTYPE_F32,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"a1111_f16.pt",
     TI_EMB_A1111,
     "cat16",
     -1,
     NULL,
     NULL,
     TI_DTYPE_F16,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"a1111_bf16.pt",
     TI_EMB_A1111,
     "catbf",
     7,
     "abc123",
     NULL,
     TI_DTYPE_BF16,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"legacy_a1111.pt",
     TI_EMB_A1111,
     "legacy",
     3,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"a1111_proto4.pt",
     TI_EMB_A1111,
     "proto4",
     11,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"a1111_deflate.pt",
     TI_EMB_A1111,
     "cat",
     500,
     "abc123",
     "v1-5",
     TI_DTYPE_F32,
     1,
     {{"*", 265, 2, 768, 1}}},
    {"peer_dict.pt", TI_EMB_PEER, NULL, -1, NULL, NULL, TI_DTYPE_F32, 1, {{"*", 265, 1, 768, 2}}},
    {"peer_paramdict.pt",
     TI_EMB_PEER,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"*", 265, 1, 768, 3}}},
    /* legacy: a ('module', ParameterDict, ...) persistent id */
    {"legacy_peer.pt", TI_EMB_PEER, NULL, -1, NULL, NULL, TI_DTYPE_F32, 1, {{"*", 265, 2, 768, 9}}},
    {"peer_merged.pt",
     TI_EMB_PEER,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     2,
     {{"*", 265, 1, 768, 4}, {"@", 287, 3, 768, 5}}},
    {"peer_ldm_1280.pt",
     TI_EMB_PEER,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"*", 1008, 2, 1280, 6}}},
    {"diffusers_1d.bin",
     TI_EMB_DIFFUSERS,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"<cat-toy>", -1, 1, 768, 7}}},
    {"diffusers_2d.bin",
     TI_EMB_DIFFUSERS,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"<cat-toy>", -1, 3, 768, 8}}},
    {"learned_embeds.safetensors",
     TI_EMB_DIFFUSERS,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"<cat-toy>", -1, 3, 768, 9}}},
    {"kohya.pt", TI_EMB_KOHYA, NULL, -1, NULL, NULL, TI_DTYPE_F32, 1, {{"*", -1, 2, 768, 10}}},
    {"kohya.safetensors",
     TI_EMB_KOHYA,
     NULL,
     -1,
     NULL,
     NULL,
     TI_DTYPE_F32,
     1,
     {{"*", -1, 2, 768, 11}}},
};

static int streq(const char *a, const char *b) {
    return (!a && !b) || (a && b && !strcmp(a, b));
}

TEST(files_written_by_torch) {
    for (size_t i = 0; i < sizeof wants / sizeof *wants; i++) {
        const struct want *w = &wants[i];
        struct ti_embedding e;
        struct ti_err err = {0};
        CHECK_OK(ti_embedding_read(&e, tio_fixture(w->file), &err), &err);
        char stem[256];
        ti_path_stem(w->file, stem, sizeof stem);
        int ok = e.format == w->fmt && streq(e.name, w->name ? w->name : stem) &&
                 e.step == w->step && streq(e.sd_checkpoint, w->ckpt) &&
                 streq(e.sd_checkpoint_name, w->ckpt_name) && e.file_dtype == w->dt &&
                 e.n_terms == w->n_terms && streq(e.source, tio_fixture(w->file));
        for (int k = 0; ok && k < w->n_terms; k++) {
            const struct ti_embedding_term *t = &e.terms[k];
            ok = streq(t->placeholder, w->t[k].ph) && t->token == w->t[k].token &&
                 t->n_vectors == w->t[k].n && t->dim == w->t[k].dim;
            for (int j = 0; ok && j < t->n_vectors * t->dim; j++)
                ok = t->vectors[j] == tio_value(j, w->t[k].salt);
        }
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  %s read wrong (format %s, name %s)\n", w->file,
                    ti_embedding_format_name(e.format), e.name ? e.name : "(null)");
        ti_embedding_free(&e);
    }
}

static void expect_read_error(const char *path, ti_status code, const char *needle) {
    struct ti_embedding e;
    struct ti_err err = {0};
    ti_status st = ti_embedding_read(&e, path, &err);
    CHECK(st == code && strstr(err.msg, needle));
    if (st != code || !strstr(err.msg, needle)) fprintf(stderr, "  %s: %d %s\n", path, st, err.msg);
    CHECK(e.n_terms == 0 && e.terms == NULL);
}

TEST(refusals_and_width_checks) {
    expect_read_error(tio_fixture("sdxl.safetensors"), TI_ERR_UNSUPPORTED, "SDXL embedding");
    expect_read_error(tio_fixture("lightning_mini.ckpt"), TI_ERR_FORMAT,
                      "looks like a model checkpoint");
    expect_read_error(tio_fixture("dtypes.pt"), TI_ERR_FORMAT, "not an embedding file");
    expect_read_error(tio_fixture("diffusers_tiny_original.safetensors"), TI_ERR_FORMAT,
                      "1131 tensors");
    expect_read_error(tio_fixture("mal_posix_system_in_a1111.pt"), TI_ERR_UNSAFE, "posix.system");
    expect_read_error(tio_fixture("mal_stack_global_eval.pt"), TI_ERR_UNSAFE, "builtins.eval");
    const char *png = tio_path(tmp, "image.png");
    tio_write(png, "\x89PNG\r\n\x1a\n0000", 12);
    expect_read_error(png, TI_ERR_UNSUPPORTED, "PNG");
    expect_read_error(tio_path(tmp, "absent.pt"), TI_ERR_NOT_FOUND, "absent.pt");

    struct ti_embedding e;
    struct ti_err err = {0};
    CHECK_OK(ti_embedding_read(&e, tio_fixture("a1111_sd2_1024.pt"), &err), &err);
    CHECK(ti_embedding_check_width(&e, 768, &err) == TI_ERR_SHAPE);
    CHECK(strstr(err.msg,
                 "embedding 'tests/fixtures/io/a1111_sd2_1024.pt' has vectors of width 1024 "
                 "(SD 2.x); this model expects 768 (SD v1)") != NULL);
    CHECK_OK(ti_embedding_check_width(&e, 1024, &err), &err);
    ti_embedding_free(&e);
    CHECK_OK(ti_embedding_read(&e, tio_fixture("peer_ldm_1280.pt"), &err), &err);
    ti_err_clear(&err);
    CHECK(ti_embedding_check_width(&e, 768, &err) == TI_ERR_SHAPE);
    CHECK(strstr(err.msg, "width 1280 (LDM text2img-large); this model expects 768 (SD v1)") !=
          NULL);
    ti_embedding_free(&e);
}

/* vectors with every kind of float: signed zeros, subnormals, infinities, a NaN payload */
static void fill(float *v, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t bits = seed;
        if (i == 0) bits = 0x80000000u; /* -0 */
        if (i == 1) bits = 0x00000001u; /* smallest subnormal */
        if (i == 2) bits = 0x7f800000u; /* inf */
        if (i == 3) bits = 0x7fc01234u; /* NaN with a payload */
        if ((bits & 0x7f800000u) == 0x7f800000u && i > 3) bits ^= 0x40000000u;
        memcpy(&v[i], &bits, 4);
    }
}

static int same_embedding(const struct ti_embedding *a, const struct ti_embedding *b, int tokens) {
    if (a->n_terms != b->n_terms) return 0;
    for (int i = 0; i < a->n_terms; i++) {
        const struct ti_embedding_term *x = &a->terms[i], *y = &b->terms[i];
        if (x->n_vectors != y->n_vectors || x->dim != y->dim) return 0;
        if (memcmp(x->vectors, y->vectors, (size_t)x->n_vectors * (size_t)x->dim * 4)) return 0;
        if (tokens && (x->token != y->token || strcmp(x->placeholder, y->placeholder))) return 0;
    }
    return 1;
}

TEST(round_trips_bit_exact) {
    struct ti_err err = {0};
    float v1[3 * 768], v2[1 * 768], v3[2 * 1280];
    fill(v1, 3 * 768, 1), fill(v2, 768, 2), fill(v3, 2 * 1280, 3);
    /* one term, full metadata */
    struct ti_embedding one, multi, ldm;
    ti_embedding_init(&one);
    CHECK_OK(ti_embedding_add_term(&one, "*", 265, 3, 768, v1, &err), &err);
    CHECK_OK(ti_embedding_set_meta(&one, "my \"cat\" \xc3\xa9", 123456789012LL, "a1b2c3",
                                   "v1-5-pruned", &err),
             &err);
    ti_embedding_init(&multi);
    CHECK_OK(ti_embedding_add_term(&multi, "*", 265, 3, 768, v1, &err), &err);
    CHECK_OK(ti_embedding_add_term(&multi, "<toy>", 49408, 1, 768, v2, &err), &err);
    ti_embedding_init(&ldm);
    CHECK_OK(ti_embedding_add_term(&ldm, "*", 1008, 2, 1280, v3, &err), &err);

    struct ti_embedding r;
    /* a1111 */
    const char *p = tio_path(tmp, "one.pt");
    CHECK_OK(ti_embedding_write(&one, p, TI_EMB_A1111, &err), &err);
    CHECK_OK(ti_embedding_read(&r, p, &err), &err);
    CHECK(r.format == TI_EMB_A1111 && same_embedding(&one, &r, 1) && r.step == 123456789012LL &&
          streq(r.name, one.name) && streq(r.sd_checkpoint, "a1b2c3") &&
          streq(r.sd_checkpoint_name, "v1-5-pruned"));
    ti_embedding_free(&r);
    /* peer: one and several terms, 768 and 1280 */
    const struct ti_embedding *peers[3] = {&one, &multi, &ldm};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "peer%d.pt", i);
        p = tio_path(tmp, name);
        CHECK_OK(ti_embedding_write(peers[i], p, TI_EMB_PEER, &err), &err);
        CHECK_OK(ti_embedding_read(&r, p, &err), &err);
        CHECK(r.format == TI_EMB_PEER && same_embedding(peers[i], &r, 1));
        ti_embedding_free(&r);
    }
    /* diffusers (also into a folder) */
    p = tio_path(tmp, "emb.safetensors");
    CHECK_OK(ti_embedding_write(&ldm, p, TI_EMB_DIFFUSERS, &err), &err);
    CHECK_OK(ti_embedding_read(&r, p, &err), &err);
    CHECK(r.format == TI_EMB_DIFFUSERS && same_embedding(&ldm, &r, 0) &&
          !strcmp(r.terms[0].placeholder, "*"));
    ti_embedding_free(&r);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/out", tmp);
    mkdir(dir, 0755);
    CHECK_OK(ti_embedding_write(&one, dir, TI_EMB_DIFFUSERS, &err), &err);
    CHECK_OK(ti_embedding_read(&r, tio_path(dir, "learned_embeds.safetensors"), &err), &err);
    CHECK(same_embedding(&one, &r, 0));
    /* and back through every writer from what was read */
    const enum ti_embedding_format fmts[3] = {TI_EMB_A1111, TI_EMB_PEER, TI_EMB_DIFFUSERS};
    for (int i = 0; i < 3; i++) {
        struct ti_embedding r2;
        p = tio_path(tmp, i == 0 ? "again.pt" : i == 1 ? "again_peer.pt" : "again.safetensors");
        CHECK_OK(ti_embedding_write(&r, p, fmts[i], &err), &err);
        CHECK_OK(ti_embedding_read(&r2, p, &err), &err);
        CHECK(same_embedding(&one, &r2, 0));
        ti_embedding_free(&r2);
    }
    ti_embedding_free(&r);
    ti_embedding_free(&one);
    ti_embedding_free(&multi);
    ti_embedding_free(&ldm);
}

/* Walks a pickle's opcodes (only the ones the A1111 writer may use) and collects GLOBALs. */
static int a1111_pickle_is_weights_only_clean(const uint8_t *p, size_t n) {
    static const char *const globals[] = {"torch._utils\n_rebuild_tensor_v2\n",
                                          "collections\nOrderedDict\n", "torch\nFloatStorage\n"};
    size_t i = 0;
    while (i < n) {
        uint8_t op = p[i++];
        switch (op) {
        case 0x80: i += 1; break;                /* PROTO */
        case 'K': i += 1; break;                 /* BININT1 */
        case 'M': i += 2; break;                 /* BININT2 */
        case 'J': i += 4; break;                 /* BININT */
        case 0x8a: i += 1 + (size_t)p[i]; break; /* LONG1 */
        case 'X': {                              /* BINUNICODE */
            uint32_t len = (uint32_t)p[i] | ((uint32_t)p[i + 1] << 8) | ((uint32_t)p[i + 2] << 16) |
                           ((uint32_t)p[i + 3] << 24);
            i += 4 + len;
            break;
        }
        case 'c': {
            int known = 0;
            for (size_t g = 0; g < 3; g++)
                if (!strncmp((const char *)p + i, globals[g], strlen(globals[g]))) {
                    i += strlen(globals[g]);
                    known = 1;
                }
            if (!known) return 0;
            break;
        }
        case '}':
        case '(':
        case 's':
        case 'u':
        case 't':
        case 0x85:
        case 0x86:
        case 0x87:
        case ')':
        case 'Q':
        case 0x88:
        case 0x89:
        case 'N':
        case 'R': break;
        case '.': return i == n;
        default: return 0; /* BINFLOAT, bytes, memo, anything else */
        }
    }
    return 0;
}

TEST(a1111_file_layout) {
    struct ti_err err = {0};
    float v[2 * 768];
    fill(v, 2 * 768, 9);
    struct ti_embedding e;
    ti_embedding_init(&e);
    CHECK_OK(ti_embedding_add_term(&e, "*", 265, 2, 768, v, &err), &err);
    CHECK_OK(ti_embedding_set_meta(&e, "layout", 500, NULL, "sd", &err), &err);
    const char *p = tio_path(tmp, "my-emb.v2.pt");
    CHECK_OK(ti_embedding_write(&e, p, TI_EMB_A1111, &err), &err);
    size_t n;
    uint8_t *d = tio_read(p, &n);
    struct ti_zip z;
    CHECK_OK(ti_zip_open(&z, d, n, "test.zip", &err), &err);
    CHECK(z.n == 3);
    const char *names[3] = {"my-emb.v2/data.pkl", "my-emb.v2/data/0", "my-emb.v2/version"};
    for (int i = 0; i < 3; i++) {
        const struct ti_zip_record *r = ti_zip_find(&z, names[i]);
        CHECK(r && r->data_offset % 64 == 0 && r->crc != 0 && r->method == 0);
        if (r) CHECK_OK(ti_zip_check_crc(&z, r, &err), &err);
    }
    CHECK(!strcmp(z.recs[0].name, names[0]) && !strcmp(z.recs[2].name, names[2]));
    const struct ti_zip_record *pkl = ti_zip_find(&z, names[0]), *ver = ti_zip_find(&z, names[2]);
    CHECK(pkl && a1111_pickle_is_weights_only_clean(d + pkl->data_offset, (size_t)pkl->size));
    CHECK(ver && ver->size == 2 && !memcmp(d + ver->data_offset, "3\n", 2));
    const uint8_t *step =
        pkl ? memmem(d + pkl->data_offset, (size_t)pkl->size, "X\x04\0\0\0step", 9) : NULL;
    CHECK(step && step[9] == 'M' && step[10] == (500 & 0xff) &&
          step[11] == (500 >> 8)); /* BININT2 500 */
    ti_zip_close(&z);
    free(d);
    ti_embedding_free(&e);
}

TEST(failed_writes_leave_nothing) {
    struct ti_err err = {0};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/clean", tmp);
    mkdir(dir, 0755);
    float v[768] = {0};
    struct ti_embedding two, named;
    ti_embedding_init(&two);
    CHECK_OK(ti_embedding_add_term(&two, "*", 265, 1, 768, v, &err), &err);
    CHECK_OK(ti_embedding_add_term(&two, "@", 287, 1, 768, v, &err), &err);
    CHECK(ti_embedding_write(&two, tio_path(dir, "a.pt"), TI_EMB_A1111, &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "exactly one term") != NULL);
    ti_err_clear(&err);
    CHECK(ti_embedding_write(&two, tio_path(dir, "a.safetensors"), TI_EMB_DIFFUSERS, &err) ==
          TI_ERR_INVALID);
    ti_embedding_init(&named);
    CHECK_OK(ti_embedding_add_term(&named, "<toy>", -1, 1, 768, v, &err), &err);
    ti_err_clear(&err);
    CHECK(ti_embedding_write(&named, tio_path(dir, "p.pt"), TI_EMB_PEER, &err) == TI_ERR_INVALID);
    CHECK(strstr(err.msg, "token id") != NULL);
    ti_err_clear(&err);
    CHECK(ti_embedding_write(&named, tio_path(dir, "no/such/dir/x.pt"), TI_EMB_A1111, &err) ==
          TI_ERR_IO);
    ti_err_clear(&err);
    CHECK(ti_embedding_write(&named, dir, TI_EMB_A1111, &err) == TI_ERR_IO); /* a folder */
    CHECK(tio_count_entries(dir) == 0);
    CHECK(ti_embedding_add_term(&named, "<toy>", 1, 1, 768, v, &err) == TI_ERR_INVALID);
    CHECK(ti_embedding_add_term(&named, "big", 1, 5000, 768, v, &err) == TI_ERR_SHAPE);
    CHECK(ti_embedding_format_parse("peer") == TI_EMB_PEER &&
          ti_embedding_format_parse("x") == TI_EMB_UNKNOWN);
    ti_embedding_free(&two);
    ti_embedding_free(&named);
}

/* A file ti reads as a diffusers output folder, an empty file, and a peer file whose
 * string_to_token names a placeholder that string_to_param lacks (the original's KeyError). */
TEST(folders_empty_files_and_disagreeing_keys) {
    struct ti_embedding e, want;
    struct ti_err err = {0};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/my_concept", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    expect_read_error(dir, TI_ERR_NOT_FOUND, "without learned_embeds.safetensors");
    size_t n;
    uint8_t *bin = tio_read(tio_fixture("diffusers_2d.bin"), &n);
    CHECK(bin && tio_write(tio_path(dir, "learned_embeds.bin"), bin, n));
    free(bin);
    CHECK_OK(ti_embedding_read(&want, tio_fixture("diffusers_2d.bin"), &err), &err);
    CHECK_OK(ti_embedding_read(&e, dir, &err), &err);
    CHECK(e.format == TI_EMB_DIFFUSERS && same_embedding(&want, &e, 0) &&
          !strcmp(e.terms[0].placeholder, want.terms[0].placeholder) &&
          !strcmp(e.name, "my_concept") && strstr(e.source, "my_concept/learned_embeds.bin"));
    ti_embedding_free(&e);
    ti_embedding_free(&want);
    /* with both, the .safetensors (as diffusers prefers it) */
    bin = tio_read(tio_fixture("learned_embeds.safetensors"), &n);
    CHECK(bin && tio_write(tio_path(dir, "learned_embeds.safetensors"), bin, n));
    free(bin);
    CHECK_OK(ti_embedding_read(&want, tio_fixture("learned_embeds.safetensors"), &err), &err);
    CHECK_OK(ti_embedding_read(&e, dir, &err), &err);
    CHECK(same_embedding(&want, &e, 0) && !strcmp(e.name, "my_concept") &&
          strstr(e.source, "learned_embeds.safetensors"));
    ti_embedding_free(&e);
    ti_embedding_free(&want);

    const char *empty = tio_path(tmp, "empty.pt");
    CHECK(tio_write(empty, "", 0));
    expect_read_error(empty, TI_ERR_FORMAT, "is empty (0 bytes)");

    const char *p = tio_path(tmp, "disagree.pt");
    tio_embedding_pickle(p, 2, (const char *[]){"*", "sks"}, (const int64_t[]){265, 48136}, 1,
                         (const char *[]){"*"}, NULL, NULL);
    expect_read_error(p, TI_ERR_FORMAT, "string_to_token has the placeholder 'sks'");
}

int main(void) {
    tmp = tio_tmpdir();
    RUN(files_written_by_torch);
    RUN(refusals_and_width_checks);
    RUN(round_trips_bit_exact);
    RUN(a1111_file_layout);
    RUN(failed_writes_leave_nothing);
    RUN(folders_empty_files_and_disagreeing_keys);
    tio_rmrf(tmp);
    return tc_finish();
}
