/*
 * ti_convert.c - `ti-convert IN OUT [--format a1111|peer|diffusers]`: converts an embedding
 * file between formats (train/embedding_io.h lists what is read and written).
 *
 * The output appears whole or not at all (temporary file + rename): a failure never leaves a
 * partial OUT. Vectors are written as float32 whatever the input held.
 *
 * Not here: checkpoints (ti-inspect lists them; ti never rewrites model files).
 * Exit status: 0 ok, 1 the input could not be read or the output written, 2 usage.
 */
#include <errno.h>  /* defines: errno */
#include <stdio.h>  /* defines: printf, fprintf */
#include <stdlib.h> /* defines: strtoll */
#include <string.h> /* defines: strcmp */

#include "cli.h" /* defines: ti_cli_next_value, ti_cli_split_eq */
#include "embedding_io.h"
#include "fileio.h" /* defines: ti_path_is_dir */

static void usage(FILE *f) {
    fprintf(f, "usage: ti-convert IN OUT [--format a1111|peer|diffusers] [--name NAME]\n"
               "                  [--step N] [--token ID] [--allow-unknown-globals]\n"
               "\n"
               "Converts the textual-inversion embedding IN (AUTOMATIC1111 .pt, the original\n"
               "textual_inversion embeddings.pt, diffusers learned_embeds.bin/.safetensors or\n"
               "their folder, kohya emb_params; float32/16/bf16) into OUT, always float32.\n"
               "\n"
               "  --format a1111      (default, unless OUT ends in .safetensors: then\n"
               "                      diffusers) AUTOMATIC1111 .pt; loads with\n"
               "                      torch.load(weights_only=True), in A1111, ComfyUI, diffusers\n"
               "  --format peer       the original textual_inversion format (nn.ParameterDict);\n"
               "                      the only one that holds several placeholders\n"
               "  --format diffusers  learned_embeds.safetensors (OUT may be a folder); its key\n"
               "                      is the placeholder: diffusers' load_textual_inversion\n"
               "                      refuses a word its tokenizer has, such as '*', unless\n"
               "                      given token=\"<name>\"\n"
               "  --name NAME         the embedding's name (a1111 `name`)\n"
               "  --step N            the training step to record (a1111 `step`)\n"
               "  --token ID          the token id of the placeholder (peer format; single term)\n"
               "  --allow-unknown-globals  read a torch file whose pickle names globals outside\n"
               "                      ti's list of what embeddings contain, keeping them inert\n"
               "                      (never called); dangerous callables are refused even then\n"
               "  --help              this text\n"
               "\n"
               "OUT appears only when the conversion succeeded.\n"
               "Exit status: 0 ok, 1 the input is unreadable or cannot be written that way,\n"
               "2 usage error.\n");
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *name = NULL;
    enum ti_embedding_format fmt = TI_EMB_A1111;
    int fmt_given = 0;
    long long step = -2, token = -2;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flagbuf[64];
        const char *inl = ti_cli_split_eq(a, flagbuf, sizeof flagbuf); /* --flag=value */
        if (inl) a = flagbuf;
        static const char *const names[] = {
            "--format", "--name", "--step", "--token", "--allow-unknown-globals", "--help", NULL};
        if (!(a = ti_cli_expand("ti-convert", a, names))) return 2; /* argparse's abbreviations */
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--allow-unknown-globals")) {
            flags |= TI_TORCH_ALLOW_UNKNOWN_GLOBALS;
            continue;
        }
        if (!strcmp(a, "--format") || !strcmp(a, "--name") || !strcmp(a, "--step") ||
            !strcmp(a, "--token")) {
            const char *v = inl ? inl : ti_cli_next_value("ti-convert", argc, argv, i);
            if (!v) return 2;
            if (!inl) i++;
            if (!strcmp(a, "--format")) {
                fmt = ti_embedding_format_parse(v);
                fmt_given = 1;
                if (fmt != TI_EMB_A1111 && fmt != TI_EMB_PEER && fmt != TI_EMB_DIFFUSERS) {
                    fprintf(stderr,
                            "ti-convert: --format must be a1111, peer or diffusers, not "
                            "'%s'\n",
                            v);
                    return 2;
                }
            } else if (!strcmp(a, "--name")) {
                name = v;
            } else if (!strcmp(a, "--step")) {
                if (!parse_int(v, 0, INT64_MAX, &step)) {
                    fprintf(stderr, "ti-convert: --step needs a non-negative integer, not '%s'\n",
                            v);
                    return 2;
                }
            } else if (!parse_int(v, 0, INT32_MAX, &token)) {
                fprintf(stderr, "ti-convert: --token needs a non-negative integer, not '%s'\n", v);
                return 2;
            }
            continue;
        }
        if (inl) {
            fprintf(stderr, "ti-convert: unknown option '%s' (in '%s')\n", a, argv[i]);
            usage(stderr);
            return 2;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "ti-convert: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!in)
            in = a;
        else if (!out)
            out = a;
        else {
            fprintf(stderr, "ti-convert: too many arguments ('%s')\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "ti-convert: IN and OUT are required\n");
        usage(stderr);
        return 2;
    }

    /* loaders pick the reader by the extension: a name that contradicts the layout would not
     * load there (a safetensors file named .bin, a torch pickle named .safetensors) */
    int st_ext = ti_path_has_suffix(out, ".safetensors");
    if (!fmt_given && st_ext) fmt = TI_EMB_DIFFUSERS;
    size_t out_len = strlen(out);
    if (fmt == TI_EMB_DIFFUSERS && out_len > 0 && out[out_len - 1] == '/' && !ti_path_is_dir(out)) {
        fprintf(stderr, "ti-convert: the folder '%s' (OUT) does not exist\n", out);
        return 1;
    }
    if (fmt == TI_EMB_DIFFUSERS && !st_ext && !ti_path_is_dir(out)) {
        fprintf(stderr,
                "ti-convert: --format diffusers writes a safetensors file: give OUT ending in "
                ".safetensors (or a folder), not '%s'\n",
                out);
        return 2;
    }
    if (fmt != TI_EMB_DIFFUSERS && st_ext) {
        fprintf(stderr,
                "ti-convert: --format %s writes a torch pickle, not safetensors: give OUT "
                "ending in .pt, or --format diffusers\n",
                ti_embedding_format_name(fmt));
        return 2;
    }
    if (fmt == TI_EMB_DIFFUSERS && (name || step != -2))
        fprintf(stderr, "ti-convert: warning: the diffusers layout holds only the placeholder "
                        "and its vectors: --name and --step are not stored\n");
    struct ti_err err = {0};
    struct ti_embedding emb;
    if (ti_embedding_read_flags(&emb, in, flags, &err) != TI_OK) {
        fprintf(stderr, "ti-convert: error: %s\n", err.msg);
        return 1;
    }
    /* NaN or infinite vectors (a diverged run): ti-sample and ti-train refuse them too */
    if (ti_embedding_check_finite(&emb, &err) != TI_OK) {
        fprintf(stderr, "ti-convert: error: %s\n", err.msg);
        ti_embedding_free(&emb);
        return 1;
    }
    ti_status st = TI_OK;
    if (name || step != -2)
        st = ti_embedding_set_meta(&emb, name ? name : emb.name, step != -2 ? step : emb.step,
                                   emb.sd_checkpoint, emb.sd_checkpoint_name, &err);
    if (st == TI_OK && token != -2) {
        if (emb.n_terms != 1)
            st = ti_error(&err, TI_ERR_INVALID,
                          "--token applies to a single-term embedding; '%s' "
                          "has %d terms",
                          in, emb.n_terms);
        else
            emb.terms[0].token = token;
    }
    if (st == TI_OK) st = ti_embedding_write(&emb, out, fmt, &err);
    if (st != TI_OK) {
        fprintf(stderr, "ti-convert: error: %s\n", err.msg);
        ti_embedding_free(&emb);
        return 1;
    }
    printf("ti-convert: wrote %s (%s format, %d term%s, width %d) from %s (%s format)\n", out,
           ti_embedding_format_name(fmt), emb.n_terms, emb.n_terms == 1 ? "" : "s",
           emb.terms[0].dim, in, ti_embedding_format_name(emb.format));
    ti_embedding_free(&emb);
    return 0;
}
