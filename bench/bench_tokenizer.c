/*
 * bench_tokenizer.c - how long the tokenizers take: loading each vocabulary (the CLIP merges
 * file: 48,894 merges from a 1.3 MB gzip), encoding typical prompts, and one very long input.
 * Not a test: it checks nothing and prints CPU times (process CPU clock, so a busy machine does
 * not inflate them). Run from the repository root: build/bench/bench_tokenizer
 */
#include <stdio.h>  /* defines: printf, fprintf */
#include <stdlib.h> /* defines: malloc, free */
#include <string.h> /* defines: strlen */
#include <time.h>   /* defines: clock_gettime */

#include "tokenizer.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
    static const char *const prompts[] = {
        "a photograph of an astronaut riding a horse",
        "portrait of a woman, highly detailed, digital painting, artstation, concept art, smooth, "
        "sharp focus, illustration, art by artgerm and greg rutkowski and alphonse mucha",
        "an oil painting of <cat-toy> in the style of van gogh",
        "caf\xc3\xa9 &amp; cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\xe2\x80\x99s \xe7\x8c\xab "
        "\xf0\x9f\x99\x82",
    };
    const int n_prompts = (int)(sizeof prompts / sizeof prompts[0]);
    for (int kind = 0; kind < 2; kind++) {
        enum ti_tokenizer_kind k = kind ? TI_TOKENIZER_WORDPIECE : TI_TOKENIZER_BPE;
        char path[1024];
        snprintf(path, sizeof path, "model/vocab/%s", ti_tokenizer_vocab_file(k));
        struct ti_err err = {0};
        struct ti_tokenizer *tok = NULL;
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            ti_tokenizer_free(&tok);
            double t0 = cpu_seconds();
            if (ti_tokenizer_load(&tok, k, path, &err) != TI_OK) {
                fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
                return 1;
            }
            double t = cpu_seconds() - t0;
            if (t < best) best = t;
        }
        printf("%-9s load %s: %.1f ms (best of 5)\n", kind ? "wordpiece" : "bpe", path, best * 1e3);

        int reps = 2000;
        double t0 = cpu_seconds();
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < n_prompts; i++) {
                struct ti_token_ids ids;
                if (ti_tokenizer_encode(&ids, tok, prompts[i], strlen(prompts[i]), &err) != TI_OK) {
                    fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
                    return 1;
                }
            }
        printf("%-9s encode: %.1f us per prompt (%d prompts x %d)\n", kind ? "wordpiece" : "bpe",
               (cpu_seconds() - t0) * 1e6 / (reps * n_prompts), n_prompts, reps);

        size_t big = 1u << 20;
        char *s = malloc(big);
        if (!s) return 1;
        const char *fill = "ab cd, caf\xc3\xa9 ";
        size_t fl = strlen(fill);
        for (size_t i = 0; i < big; i++)
            s[i] = fill[i % fl];
        t0 = cpu_seconds();
        struct ti_token_ids ids;
        if (ti_tokenizer_encode(&ids, tok, s, big, &err) != TI_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        printf("%-9s encode 1 MiB of text: %.0f ms (%zu tokens)\n", kind ? "wordpiece" : "bpe",
               (cpu_seconds() - t0) * 1e3, ids.n_text);
        free(s);
        ti_tokenizer_free(&tok);
    }
    return 0;
}
