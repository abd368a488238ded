/*
 * test_io_python.c - the one test that runs Python: files written by ti must load in real torch.
 *
 * Writes an A1111 .pt, a multi-term peer .pt, a zip64-everywhere torch file and a diffusers
 * .safetensors into a temporary folder, with the exact vectors as raw f32 files and the expected
 * metadata as JSON; then runs tests/io_torch_check.py with Debian's python3 + python3-torch
 * (torch.load(weights_only=True) for the A1111 file, plain torch.load for the peer file, values
 * compared bit for bit). The interpreter is $TI_PYTHON, else /usr/bin/python3. No interpreter or
 * no torch: exit 77 (ctest SKIP), never PASS.
 */
#include "embedding_io.h"
#include "io_test_util.h"
#include "test_common.h"
#include "torchfile.h"

static void fill(float *v, int n, uint32_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t bits = seed;
        if (i == 0) bits = 0x80000000u;                               /* -0 */
        if (i == 1) bits = 0x00000001u;                               /* subnormal */
        if (i == 2) bits = 0x7f7fffffu;                               /* FLT_MAX */
        if ((bits & 0x7f800000u) == 0x7f800000u) bits ^= 0x40000000u; /* no inf/NaN: torch.equal */
        memcpy(&v[i], &bits, 4);
    }
}

static void write_raw(const char *dir, const char *name, const float *v, size_t n) {
    CHECK(tio_write(tio_path(dir, name), v, n * sizeof *v));
}

int main(void) {
    const char *py = tio_python();
    if (!py) return TC_SKIP;
    const char *dir = tio_tmpdir();
    struct ti_err err = {0};
    static float v1[2 * 768], v2[1 * 768], v3[4 * 768], v4[3 * 1024];
    fill(v1, 2 * 768, 11), fill(v2, 768, 12), fill(v3, 4 * 768, 13), fill(v4, 3 * 1024, 14);

    struct ti_embedding a, p, s;
    ti_embedding_init(&a);
    CHECK_OK(ti_embedding_add_term(&a, "*", 265, 2, 768, v1, &err), &err);
    CHECK_OK(ti_embedding_set_meta(&a, "cat-toy \xc3\xa9", 3000, "a1b2c3d4", NULL, &err), &err);
    CHECK_OK(ti_embedding_write(&a, tio_path(dir, "a1111.pt"), TI_EMB_A1111, &err), &err);
    write_raw(dir, "a1111.f32", v1, 2 * 768);

    ti_embedding_init(&p);
    CHECK_OK(ti_embedding_add_term(&p, "*", 265, 1, 768, v2, &err), &err);
    CHECK_OK(ti_embedding_add_term(&p, "@", 287, 4, 768, v3, &err), &err);
    CHECK_OK(ti_embedding_write(&p, tio_path(dir, "peer.pt"), TI_EMB_PEER, &err), &err);
    write_raw(dir, "peer_0.f32", v2, 768);
    write_raw(dir, "peer_1.f32", v3, 4 * 768);

    ti_embedding_init(&s);
    CHECK_OK(ti_embedding_add_term(&s, "<cat-toy>", -1, 3, 1024, v4, &err), &err);
    CHECK_OK(
        ti_embedding_write(&s, tio_path(dir, "learned_embeds.safetensors"), TI_EMB_DIFFUSERS, &err),
        &err);
    write_raw(dir, "diffusers.f32", v4, 3 * 1024);

    struct ti_torch_writer w; /* {'t': tensor} with zip64 fields in every record */
    ti_torch_writer_init(&w);
    w.zip64_threshold = 0;
    ti_pkw_proto(&w.pk, 2);
    ti_pkw_op(&w.pk, TI_PK_EMPTY_DICT);
    ti_pkw_str(&w.pk, "t");
    struct ti_tensor t = ti_tensor_view(v3, TI_DTYPE_F32, TI_DEVICE_CPU, 3, (int64_t[]){4, 24, 32});
    CHECK_OK(ti_torch_writer_tensor(&w, &t, 0, &err), &err);
    ti_pkw_op(&w.pk, TI_PK_SETITEM);
    CHECK_OK(ti_torch_writer_save(&w, tio_path(dir, "zip64.pt"), &err), &err);
    ti_torch_writer_free(&w);
    write_raw(dir, "zip64.f32", v3, 4 * 768);

    FILE *f = fopen(tio_path(dir, "expected.json"), "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(
            f,
            "{\"a1111\": {\"token\": 265, \"n_vectors\": 2, \"dim\": 768, "
            "\"name\": \"cat-toy \\u00e9\", \"step\": 3000, \"sd_checkpoint\": \"a1b2c3d4\", "
            "\"sd_checkpoint_name\": null},\n"
            " \"peer\": {\"terms\": [{\"placeholder\": \"*\", \"token\": 265, \"n_vectors\": 1, "
            "\"dim\": 768}, {\"placeholder\": \"@\", \"token\": 287, \"n_vectors\": 4, \"dim\": "
            "768}]},\n"
            " \"diffusers\": {\"placeholder\": \"<cat-toy>\", \"n_vectors\": 3, \"dim\": 1024}}\n");
        fclose(f);
    }
    ti_embedding_free(&a);
    ti_embedding_free(&p);
    ti_embedding_free(&s);

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s tests/io_torch_check.py %s", py, dir);
    return tio_python_verdict(cmd, py, dir);
}
