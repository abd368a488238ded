/*
 * ti_tokenize.c - the ti-tokenize tool: prints the token ids a text encoder sees for each text,
 * so users can check that a placeholder string or an initializer word is a single token.
 *
 *   ti-tokenize "a photo of *" sculpture          # SD v1 (CLIP BPE), one line of ids per text
 *   echo opossum | ti-tokenize --model ldm --check
 *
 * Only main and option parsing live here; the tokenizers are model/tokenizer*.h.
 */
#include <stdio.h>  /* defines: printf, fprintf, getline, snprintf */
#include <stdlib.h> /* defines: calloc, free */
#include <string.h> /* defines: strcmp, strlen, strrchr, memchr */
#include <unistd.h> /* defines: ssize_t */

#include "tokenizer.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: ti-tokenize [--model sd|ldm] [--vocab PATH] [--pad] [--check] [--] [TEXT...]\n"
        "       ti-tokenize [options] < texts.txt\n"
        "\n"
        "Prints, for each TEXT (or, with none, each line of standard input), the token ids\n"
        "the model's text encoder sees, space-separated on one line: from the start token to\n"
        "the end token, exactly as the reference tokenizer gives them (77 at most; longer\n"
        "texts are truncated to 75 tokens, with a note on stderr).\n"
        "\n"
        "  --model sd    Stable Diffusion v1: CLIP byte-level BPE (default). BOS 49406,\n"
        "                EOS 49407, padding 49407.\n"
        "  --model ldm   LDM text2img-large: BERT WordPiece, bert-base-uncased. [CLS] 101,\n"
        "                [SEP] 102, padding 0.\n"
        "  --vocab PATH  vocabulary file: the CLIP merges file bpe_simple_vocab_16e6.txt.gz\n"
        "                (gzip or plain text) for sd, vocab.txt for ldm. Default: the file of\n"
        "                that name in vocab/ next to this executable if present, else in the\n"
        "                source tree's model/vocab/ (%s).\n"
        "  --pad         print all 77 ids, padding included.\n"
        "  --check       apply the single-token rule to every text; print why a text fails\n"
        "                on stderr; exit 1 if any fails.\n"
        "  --help        this text.\n"
        "\n"
        "The single-token rule (textual inversion, rinongal/textual_inversion): a placeholder\n"
        "string and an initializer word must each map to exactly one token. For sd, the 77\n"
        "ids may hold only 2 entries other than 49407 (start token + the word's token); for\n"
        "ldm, only 3 non-zero entries ([CLS] + the token + [SEP]). \"*\", \"cat\", \"sks\" and\n"
        "\"sculpture\" are single tokens for sd; \"opossum\" is not (78 38575). Words that map\n"
        "to a special token (e.g. an emoji that is [UNK] for ldm) are refused as well.\n"
        "\n"
        "Exit status: 0 ok, 1 run-time error or a --check failure, 2 usage error.\n",
        ti_tokenizer_vocab_dir());
}

/* The default vocabulary path for `kind`: vocab/<file> next to the executable, else the
 * compiled-in source tree directory. */
/* Tokenises one text and prints its line; returns 0, or 1 on a run-time error or a failed
 * --check. */
static int process(const struct ti_tokenizer *tok, const char *text, size_t len, int pad, int check,
                   size_t index) {
    struct ti_err err = {0};
    struct ti_token_ids t;
    if (ti_tokenizer_encode(&t, tok, text, len, &err) != TI_OK) {
        fprintf(stderr, "ti-tokenize: error: text %zu: %s\n", index, err.msg);
        return 1;
    }
    int n = pad ? TI_TOKENS_MAX : t.n;
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? " " : "", (int)t.ids[i]);
    printf("\n");
    if (t.n_text > TI_TOKENS_MAX - 2)
        fprintf(stderr,
                "ti-tokenize: note: text %zu has %zu tokens; the model sees only the first %d\n",
                index, t.n_text, TI_TOKENS_MAX - 2);
    if (check) {
        if (memchr(text, '\0', len)) {
            fprintf(stderr,
                    "ti-tokenize: text %zu contains a NUL byte; it cannot be a "
                    "placeholder or initializer word\n",
                    index);
            return 1;
        }
        int32_t id;
        ti_err_clear(&err);
        if (ti_tokenizer_single_token(&id, tok, text, &err) != TI_OK) {
            fprintf(stderr, "ti-tokenize: %s\n", err.msg);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    enum ti_tokenizer_kind kind = TI_TOKENIZER_BPE;
    const char *vocab = NULL;
    int pad = 0, check = 0, n_texts = 0, only_texts = 0;
    /* options may appear anywhere; after "--" everything is a text (for texts starting "--") */
    char **texts = calloc((size_t)argc + 1, sizeof(char *));
    if (!texts) {
        fprintf(stderr, "ti-tokenize: error: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_texts || a[0] != '-' || a[1] != '-') {
            texts[n_texts++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            only_texts = 1;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            free(texts);
            return 0;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--vocab") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ti-tokenize: %s needs a value (see --help)\n", a);
                free(texts);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--vocab") == 0) {
                vocab = v;
            } else if (strcmp(v, "sd") == 0) {
                kind = TI_TOKENIZER_BPE;
            } else if (strcmp(v, "ldm") == 0) {
                kind = TI_TOKENIZER_WORDPIECE;
            } else {
                fprintf(stderr, "ti-tokenize: --model must be sd or ldm, not '%s'\n", v);
                free(texts);
                return 2;
            }
        } else if (strcmp(a, "--pad") == 0) {
            pad = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
        } else {
            fprintf(stderr,
                    "ti-tokenize: unknown option %s (see --help; a text that starts "
                    "with -- goes after a lone --)\n",
                    a);
            free(texts);
            return 2;
        }
    }

    char path[4096];
    if (!vocab) {
        ti_tokenizer_default_vocab(path, sizeof path, kind);
        vocab = path;
    }
    struct ti_err err = {0};
    struct ti_tokenizer *tok = NULL;
    if (ti_tokenizer_load(&tok, kind, vocab, &err) != TI_OK) {
        fprintf(stderr, "ti-tokenize: error: %s\n", err.msg);
        free(texts);
        return 1;
    }

    int failed = 0;
    size_t index = 0;
    if (n_texts > 0) {
        for (int i = 0; i < n_texts; i++)
            failed |= process(tok, texts[i], strlen(texts[i]), pad, check, ++index);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            size_t len = (size_t)n;
            if (len && line[len - 1] == '\n') len--;
            if (len && line[len - 1] == '\r') len--;
            line[len] = '\0';
            failed |= process(tok, line, len, pad, check, ++index);
        }
        free(line);
        if (ferror(stdin)) {
            fprintf(stderr, "ti-tokenize: error: cannot read standard input\n");
            failed = 1;
        }
    }
    ti_tokenizer_free(&tok);
    free(texts);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "ti-tokenize: error: cannot write standard output\n");
        return 1;
    }
    return failed ? 1 : 0;
}
