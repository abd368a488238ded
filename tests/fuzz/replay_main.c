/*
 * replay_main.c - runs a libFuzzer harness (fuzz_*.c) without libFuzzer: every file of the
 * given corpus folders goes through LLVMFuzzerTestOneInput once. Built by tests/fuzz.cmake in
 * every configuration, so the harnesses keep compiling and the committed seed corpus (valid
 * files, hostile files, and anything `make fuzz` found and was committed) is a regression test
 * that runs under ASan + UBSan in `make test-asan`. Fails when no input was read.
 *
 *   replay_<name> DIR [DIR ...]
 */
#include <dirent.h> /* defines: opendir, readdir */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return 0;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 1;
}

int main(int argc, char **argv) {
    int inputs = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "replay: cannot open the corpus folder %s\n", argv[a]);
            return 1;
        }
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            if (snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name) >= (int)sizeof path)
                continue;
            inputs += replay_file(path);
        }
        closedir(d);
    }
    printf("%d inputs replayed without a crash\n", inputs);
    if (inputs == 0) {
        fprintf(stderr, "replay: no inputs found: a replay of nothing checks nothing\n");
        return 1;
    }
    return 0;
}
