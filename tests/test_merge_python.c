/*
 * test_merge_python.c - a file ti-merge wrote loads in real torch: runs ti-merge -sd on torch
 * sources of every torch-readable format (a1111, legacy a1111, peer merged, diffusers .bin,
 * kohya .pt), then tests/merge_torch_check.py with Debian's python3 + python3-torch compares
 * every merged term with its source loaded by torch itself, and loads a one-term --format a1111
 * merge with weights_only=True. The interpreter is $TI_PYTHON, else /usr/bin/python3; without it
 * or without torch: exit 77 (SKIP), never PASS.
 *
 * usage: test_merge_python <ti-merge>
 */
#include "io_test_util.h"
#include "test_common.h"

#define FX(name) "tests/fixtures/io/" name

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_merge_python <ti-merge>\n");
        return 2;
    }
    const char *py = tio_python();
    if (!py) return TC_SKIP;
    const char *dir = tio_tmpdir();
    char merged[1024], a1111[1024], cmd[8192];
    snprintf(merged, sizeof merged, "%s/merged.pt", dir);
    snprintf(a1111, sizeof a1111, "%s/one.pt", dir);
    snprintf(cmd, sizeof cmd,
             "%s -sd --manager_ckpts %s %s %s %s %s --output_path %s --rename %s:*=cat "
             "--rename '%s:<cat-toy>=toy' --rename %s:*=sks --rename %s:*=dog </dev/null",
             argv[1], FX("a1111_f32.pt"), FX("peer_merged.pt"), FX("diffusers_2d.bin"),
             FX("kohya.pt"), FX("legacy_a1111.pt"), merged, FX("peer_merged.pt"),
             FX("diffusers_2d.bin"), FX("kohya.pt"), FX("legacy_a1111.pt"));
    CHECK(tio_run(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "%s -sd --manager_ckpts %s --output_path %s --format a1111 </dev/null", argv[1],
             FX("kohya.pt"), a1111);
    CHECK(tio_run(cmd) == 0);
    /* CLIP ids: '*' 265, 'cat' 2368, '@' 287, 'toy' 5988, 'sks' 48136, 'dog' 1929 */
    snprintf(cmd, sizeof cmd,
             "%s tests/merge_torch_check.py %s %s '*:265:%s:*' 'cat:2368:%s:*' '@:287:%s:@' "
             "'toy:5988:%s:<cat-toy>' 'sks:48136:%s:*' 'dog:1929:%s:*'",
             py, merged, a1111, FX("a1111_f32.pt"), FX("peer_merged.pt"), FX("peer_merged.pt"),
             FX("diffusers_2d.bin"), FX("kohya.pt"), FX("legacy_a1111.pt"));
    return tio_python_verdict(cmd, py, dir);
}
