/*
 * test_clip_vision.c - model/clip_vision.c (the safety checker's CLIP vision tower) against
 * diffusers' StableDiffusionSafetyChecker / transformers' CLIPVisionModel on a tiny random
 * configuration (tests/fixtures/model_clip_vision.h5, scripts/oracle/clip_vision.py): the last
 * hidden state, the pooled output and the projected image embedding, in f64 and f32; the
 * parameter table against the fixture's keys; a wrong input size is refused by name. The safety
 * checker on top (model/safety_checker.c): its cosines, and its NSFW verdict per image under
 * 64 threshold sets against the reference checker's own forward.
 */
#include <math.h>
#include <string.h>

#include "clip_vision.h"
#include "h5_weights.h"
#include "safety_checker.h"
#include "tensor_test_util.h"
#include "test_common.h"

#define FIXTURE "tests/fixtures/model_clip_vision.h5"

/* the fixture's configuration: image 28, patch 7, width 32, 2 layers, 4 heads x 8, ff 64,
 * projection 16 */
static const struct ti_clip_vision_hparams HP = {28, 7, 32, 2, 4, 8, 64, 16};

static void compare(struct ti_ctx *ctx, const char *what, const struct ti_tensor *got, hid_t f,
                    const char *ds, int nd_want, double atol, double rtol) {
    int nd = 0;
    int64_t shape[6];
    double *want = NULL;
    CHECK(h5u_read(f, ds, &want, &nd, shape) == 0);
    if (!want) return;
    CHECK(nd == nd_want && got->ndim == nd);
    int same = nd == got->ndim;
    for (int i = 0; same && i < nd; i++)
        same = shape[i] == got->shape[i];
    CHECK(same);
    if (same) {
        double *g = tt_download(ctx, got);
        if (!tc_check_close(g, want, (long)ti_tensor_numel(got), atol, rtol, what, __FILE__,
                            __LINE__))
            fprintf(stderr, "  (%s vs fixture %s)\n", what, ds);
        free(g);
    }
    free(want);
}

static void run(enum ti_dtype dt, double atol, double rtol) {
    struct h5_weights h;
    struct ti_weight_source src;
    if (h5_weights_open(&h, &src, FIXTURE) != 0) {
        fprintf(stderr, "cannot open " FIXTURE "\n");
        tc_failures++;
        return;
    }
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_clip_vision v;
    CHECK_OK(ti_clip_vision_init(&v, &HP, "vision_model.vision_model.", "visual_projection.", &w,
                                 &ctx.err),
             &ctx.err);
    CHECK(w.n == 40); /* 5 embedding/pre-LN, 16 per layer x 2, post-LN 2, projection 1 */
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_load(&w, &src, &ctx.err), &ctx.err);

    int nd = 0;
    int64_t shape[6];
    double *px = NULL;
    CHECK(h5u_read(h.file, "pixels", &px, &nd, shape) == 0);
    struct ti_tensor pixels = ti_tensor_none(), embeds, pooled, hidden;
    if (px) {
        pixels = tt_upload(&ctx, px, nd, shape, dt);
        free(px);
    }
    ti_status st = ti_clip_vision_forward(&ctx, &embeds, &pooled, &hidden, &v, &pixels);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        compare(&ctx, "hidden", &hidden, h.file, "hidden", 3, atol, rtol);
        compare(&ctx, "pooled", &pooled, h.file, "pooled", 2, atol, rtol);
        compare(&ctx, "embeds", &embeds, h.file, "embeds", 2, atol, rtol);
        ti_tensor_release(&embeds);
        ti_tensor_release(&pooled);
        ti_tensor_release(&hidden);
    }
    /* embeds only */
    st = ti_clip_vision_forward(&ctx, &embeds, NULL, NULL, &v, &pixels);
    CHECK_OK(st, &ctx.err);
    if (st == TI_OK) {
        compare(&ctx, "embeds", &embeds, h.file, "embeds", 2, atol, rtol);
        ti_tensor_release(&embeds);
    }
    /* a crop of the wrong size is refused with both sizes in the message */
    struct ti_tensor small = ti_tensor_none();
    const int64_t s[4] = {1, 3, 21, 21};
    CHECK_OK(ti_ctx_zeros(&ctx, &small, dt, 4, s), &ctx.err);
    CHECK(ti_clip_vision_forward(&ctx, &embeds, NULL, NULL, &v, &small) == TI_ERR_SHAPE);
    if (!strstr(ctx.err.msg, "21, 21") || !strstr(ctx.err.msg, "(B, 3, 28, 28)")) {
        fprintf(stderr, "message: %s\n", ctx.err.msg);
        CHECK(!"the message names both sizes");
    }
    ti_tensor_release(&small);
    ti_tensor_release(&pixels);
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_clip_vision_free(&v);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    h5_weights_close(&h);
}

TEST(clip_vision_f64) {
    run(TI_DTYPE_F64, 1e-9, 1e-7);
}
TEST(clip_vision_f32) {
    run(TI_DTYPE_F32, 1e-5, 1e-5);
}

/* The L/14 table: parameter count of the real safety checker's vision tower + projection. */
TEST(clip_vision_l14_table) {
    struct ti_clip_vision_hparams hp;
    ti_clip_vision_hparams_l14(&hp);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_clip_vision v;
    struct ti_err err = {0};
    CHECK_OK(
        ti_clip_vision_init(&v, &hp, "vision_model.vision_model.", "visual_projection.", &w, &err),
        &err);
    /* openai/clip-vit-large-patch14 vision tower: 303,179,776 parameters; + 1024x768 projection */
    int64_t numel = 0; /* from the table's shapes (w.numel is set by ti_weights_alloc) */
    for (int i = 0; i < w.n; i++) {
        int64_t n = 1;
        for (int d = 0; d < w.items[i].ndim; d++)
            n *= w.items[i].shape[d];
        numel += n;
    }
    CHECK(numel == 303179776LL + 1024LL * 768);
    CHECK(w.n == 5 + 16 * 24 + 2 + 1);
    ti_clip_vision_free(&v);
    ti_weights_free(&w);
    hp.patch = 15; /* 224 is not a multiple of 15 */
    CHECK(ti_clip_vision_init(&v, &hp, "", "", &w, &err) == TI_ERR_CONFIG);
    CHECK(strstr(err.msg, "patch 15") != NULL);
}

/* overwrites a (small) weight tensor with host doubles, in the tensor's dtype */
static void set_weight(struct ti_ctx *ctx, struct ti_tensor *t, const double *v) {
    struct ti_tensor cast = tt_upload(ctx, v, t->ndim, t->shape, t->dtype);
    CHECK_OK(ti_ctx_copy_into(ctx, t, &cast), &ctx->err);
    ti_tensor_release(&cast);
}

static void run_checker(enum ti_dtype dt) {
    struct h5_weights h;
    struct ti_weight_source src;
    if (h5_weights_open(&h, &src, FIXTURE) != 0) {
        fprintf(stderr, "cannot open " FIXTURE "\n");
        tc_failures++;
        return;
    }
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_safety_checker sc;
    CHECK_OK(ti_safety_checker_init(&sc, &HP, "", &w, &ctx.err), &ctx.err);
    CHECK(w.n == 44); /* every tensor of the checker's state dict */
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), dt, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_load(&w, &src, &ctx.err), &ctx.err);

    int nd;
    int64_t sh[6], sh2[6], sh3[6], sh4[6], sh5[6];
    double *px = NULL, *ts = NULL, *tcn = NULL, *flags = NULL, *cosd = NULL;
    CHECK(h5u_read(h.file, "pixels", &px, &nd, sh) == 0);
    CHECK(h5u_read(h.file, "thr_special", &ts, &nd, sh2) == 0);
    CHECK(h5u_read(h.file, "thr_concept", &tcn, &nd, sh3) == 0);
    CHECK(h5u_read(h.file, "nsfw", &flags, &nd, sh4) == 0);
    CHECK(h5u_read(h.file, "cos_dist", &cosd, &nd, sh5) == 0);
    if (px && ts && tcn && flags && cosd) {
        struct ti_tensor pixels = tt_upload(&ctx, px, 4, sh, dt);
        int K = (int)sh4[0], B = (int)sh4[1], agree = 0, flagged = 0, via_adjustment = 0;
        struct ti_safety_result res[2];
        CHECK(B == 2 && sh2[1] == TI_SAFETY_SPECIAL && sh3[1] == TI_SAFETY_CONCEPTS);
        for (int k = 0; k < K && B == 2; k++) {
            set_weight(&ctx, &sc.special_thr, ts + (size_t)k * TI_SAFETY_SPECIAL);
            set_weight(&ctx, &sc.concept_thr, tcn + (size_t)k * TI_SAFETY_CONCEPTS);
            CHECK_OK(ti_safety_checker_run(&ctx, res, &sc, &pixels), &ctx.err);
            for (int b = 0; b < B; b++) {
                int want = flags[k * B + b] != 0;
                agree += res[b].nsfw == want;
                if (res[b].nsfw != want)
                    fprintf(stderr, "set %d image %d: nsfw %d, reference %d\n", k, b, res[b].nsfw,
                            want);
                flagged += want;
                /* flagged although no concept's cosine exceeds its threshold on its own */
                int raw = 0;
                for (int c = 0; c < TI_SAFETY_CONCEPTS; c++)
                    raw |= res[b].concept_score[c] - (res[b].special_care ? 0.01 : 0.0) > 1e-9;
                via_adjustment += want && !raw;
                if (k == 0)
                    for (int c = 0; c < TI_SAFETY_CONCEPTS; c++)
                        CHECK(fabs(res[b].concept_cos[c] - cosd[b * TI_SAFETY_CONCEPTS + c]) <
                              (dt == TI_DTYPE_F64 ? 1e-7 : 1e-5));
            }
        }
        printf("  %s: %d of %d verdicts agree (%d flagged by the reference, %d of them only "
               "through the special-care adjustment)\n",
               dt == TI_DTYPE_F64 ? "f64" : "f32", agree, K * B, flagged, via_adjustment);
        CHECK(agree == K * B);
        CHECK(flagged > 0 && flagged < K * B && via_adjustment > 0);
        ti_tensor_release(&pixels);
    }
    free(px);
    free(ts);
    free(tcn);
    free(flags);
    free(cosd);
    CHECK(ti_arena_stats(ctx.act).live_blocks == 0);
    ti_safety_checker_free(&sc);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
    h5_weights_close(&h);
}

TEST(safety_checker_f64) {
    run_checker(TI_DTYPE_F64);
}
TEST(safety_checker_f32) {
    run_checker(TI_DTYPE_F32);
}

/* The checker as diffusers saves it (safetensors, float32): loaded through model/io, the
 * embedding equals the fixture's; a file of another shape is refused naming a key. */
TEST(safety_checker_load_file) {
    const char *path = "tests/fixtures/safety_checker_tiny.safetensors";
    struct ti_ctx ctx;
    CHECK_OK(ti_ctx_init(&ctx, ti_backend_cpu(), 0, 0), &ctx.err);
    struct ti_weights w;
    ti_weights_init(&w);
    struct ti_safety_checker sc;
    CHECK_OK(ti_safety_checker_init(&sc, &HP, "", &w, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), TI_DTYPE_F64, &ctx.err), &ctx.err);
    CHECK_OK(ti_safety_checker_load_file(&w, path, &ctx.err), &ctx.err);
    hid_t f = h5u_open(FIXTURE);
    double *px = NULL;
    int nd;
    int64_t sh[6];
    CHECK(f >= 0 && h5u_read(f, "pixels", &px, &nd, sh) == 0);
    if (px) {
        struct ti_tensor pixels, embeds;
        CHECK_OK(ti_ctx_upload(&ctx, &pixels, px, TI_DTYPE_F64, 4, sh), &ctx.err);
        CHECK_OK(ti_clip_vision_forward(&ctx, &embeds, NULL, NULL, &sc.v, &pixels), &ctx.err);
        compare(&ctx, "embeds (from safetensors)", &embeds, f, "embeds", 2, 1e-9, 1e-7);
        ti_tensor_release(&embeds);
        ti_tensor_release(&pixels);
        free(px);
    }
    if (f >= 0) h5u_close(f);
    ti_safety_checker_free(&sc);
    ti_weights_free(&w);

    /* a checker of another width: the first mismatching key is named */
    struct ti_clip_vision_hparams hp2 = HP;
    hp2.width = 48;
    ti_weights_init(&w);
    CHECK_OK(ti_safety_checker_init(&sc, &hp2, "", &w, &ctx.err), &ctx.err);
    CHECK_OK(ti_weights_alloc(&w, ti_backend_cpu(), TI_DTYPE_F32, &ctx.err), &ctx.err);
    CHECK(ti_safety_checker_load_file(&w, path, &ctx.err) != TI_OK);
    if (!strstr(ctx.err.msg, "vision_model.vision_model.")) {
        fprintf(stderr, "message: %s\n", ctx.err.msg);
        CHECK(!"the message names a key");
    }
    CHECK(ti_safety_checker_load_file(&w, "tests/fixtures/no_such_checker.safetensors", &ctx.err) !=
          TI_OK);
    CHECK(strstr(ctx.err.msg, "no_such_checker") != NULL);
    ti_safety_checker_free(&sc);
    ti_weights_free(&w);
    ti_ctx_free(&ctx);
}

int main(void) {
    RUN(clip_vision_f64);
    RUN(clip_vision_f32);
    RUN(clip_vision_l14_table);
    RUN(safety_checker_f64);
    RUN(safety_checker_f32);
    RUN(safety_checker_load_file);
    return tc_finish();
}
