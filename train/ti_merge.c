/*
 * ti_merge.c - `ti-merge --manager_ckpts A B ... --output_path OUT [-sd]`: merges embedding
 * files into one, as the peer's merge_embeddings.py (ti-peer.md §6) with its flags, prints and
 * prompts, and with the checks it lacks (widths, renamed names that collide). The rules are in
 * train/merge.h; reading and writing in train/embedding_io.h.
 *
 * Not here: the merge rules (merge.c). Exit status: 0 ok, 1 run-time error, 2 usage error.
 */
#include <stdio.h>  /* defines: printf, fprintf, getline, fflush */
#include <stdlib.h> /* defines: calloc, free */
#include <string.h> /* defines: strcmp, strncmp, strlen, strchr, strrchr */
#include <unistd.h> /* defines: isatty */

#include "cli.h" /* defines: ti_cli_is_option, ti_cli_split_eq */
#include "embedding_io.h"
#include "embedding_manager.h" /* defines: ti_embedding_words_from_tokens */
#include "fileio.h"            /* defines: ti_path_has_suffix, ti_path_is_dir */
#include "merge.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: ti-merge --manager_ckpts FILE [FILE ...] --output_path OUT\n"
        "                [-sd | --stable_diffusion] [--rename FILE:OLD=NEW ...]\n"
        "                [--format peer|a1111|diffusers] [--vocab PATH]\n"
        "                [--allow-unknown-globals]\n"
        "\n"
        "Merges textual-inversion embedding files into one file holding every placeholder,\n"
        "like the original merge_embeddings.py. Inputs may be in any format ti reads:\n"
        "the original embeddings.pt (also merged ones), AUTOMATIC1111 .pt, diffusers\n"
        "learned_embeds.bin/.safetensors (or the folder holding it), kohya emb_params (.pt\n"
        "or .safetensors).\n"
        "\n"
        "  --manager_ckpts FILE ...  the embedding files to merge, in order (required)\n"
        "  --output_path OUT         the merged file (required); written to a temporary name\n"
        "                            and renamed, so OUT appears only when the merge succeeded\n"
        "  -sd, --stable_diffusion   renamed placeholders (and those of files that store no\n"
        "                            token id: diffusers, kohya) are checked and their ids\n"
        "                            computed with Stable Diffusion's CLIP BPE tokenizer;\n"
        "                            without it, with LDM's BERT WordPiece tokenizer. A\n"
        "                            stored id is copied as it is, as the original does.\n"
        "                            Such a placeholder must be a single token (ti-tokenize\n"
        "                            --check shows why a string is not).\n"
        "  --rename FILE:OLD=NEW     in FILE (as given to --manager_ckpts), use placeholder\n"
        "                            NEW instead of OLD; repeatable. NEW must be a single\n"
        "                            token and unused. A1111 and kohya files hold '*';\n"
        "                            diffusers files hold their token, e.g. '<cat-toy>',\n"
        "                            which is several CLIP tokens and needs a rename.\n"
        "                            Each renames one occurrence of FILE (the first not yet\n"
        "                            renamed): a file given twice needs one rename.\n"
        "  --format peer             (default) the original EmbeddingManager layout, which\n"
        "                            holds any number of placeholders; the original\n"
        "                            txt2img scripts and ti-sample load it. Used whatever\n"
        "                            the number of placeholders, as the original does.\n"
        "  --format a1111            AUTOMATIC1111 .pt (one placeholder only: A1111 refuses\n"
        "                            files with several terms)\n"
        "  --format diffusers        learned_embeds.safetensors (one placeholder only);\n"
        "                            an existing folder as --output_path gets\n"
        "                            FOLDER/learned_embeds.safetensors\n"
        "  --vocab PATH              the tokenizer vocabulary (default: vocab/ next to this\n"
        "                            executable, else %s)\n"
        "  --allow-unknown-globals   read torch files whose pickle names globals outside\n"
        "                            ti's list of what embeddings contain (kept inert,\n"
        "                            never called)\n"
        "  --help                    this text\n"
        "\n"
        "When a placeholder is already used by an earlier file (or is not a single token),\n"
        "ti-merge asks for a replacement with the original's prompt if standard input is a\n"
        "terminal, and otherwise stops with an error naming both files: then pass --rename.\n"
        "Files whose vectors differ in width (SD v1 768, LDM 1280, SD 2.x 1024) are not\n"
        "merged. Exit status: 0 ok, 1 run-time error, 2 usage error.\n",
        ti_tokenizer_vocab_dir());
}

/* the prompt on stdout, one line from stdin (Python's input()) */
static ti_status ask_stdin(void *user, const char *prompt, char **answer, struct ti_err *err) {
    (void)user;
    (void)err;
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        *answer = NULL;
        return TI_OK;
    }
    size_t len = (size_t)n;
    if (len && line[len - 1] == '\n') line[--len] = '\0';
    if (len && line[len - 1] == '\r') line[--len] = '\0';
    *answer = line;
    return TI_OK;
}

/* --rename FILE:OLD=NEW where FILE is one of the inputs (paths may hold ':' themselves). */
static int parse_rename(struct ti_merge_rename *r, char *arg, char **files, int n_files) {
    size_t best = 0;
    const char *file = NULL;
    for (int i = 0; i < n_files; i++) {
        size_t k = strlen(files[i]);
        if (!strncmp(arg, files[i], k) && arg[k] == ':' && k > best) best = k, file = files[i];
    }
    if (!file) return 0;
    char *old = arg + best + 1, *eq = strchr(old, '=');
    if (!eq || !eq[1]) return -1; /* OLD may be empty: a file's '' placeholder */
    *eq = '\0';
    r->file = file;
    r->old_name = old;
    r->new_name = eq + 1;
    r->used = 0;
    return 1;
}

int main(int argc, char **argv) {
    char **files = calloc((size_t)argc + 1, sizeof *files);
    char **rename_args = calloc((size_t)argc + 1, sizeof *rename_args);
    struct ti_merge_rename *renames = calloc((size_t)argc + 1, sizeof *renames);
    if (!files || !rename_args || !renames) {
        fprintf(stderr, "ti-merge: error: out of memory\n");
        free(files);
        free(rename_args);
        free(renames);
        return 1;
    }
    int n_files = 0, n_renames = 0, sd = 0, rc = 2;
    unsigned flags = 0;
    const char *out = NULL, *vocab = NULL;
    enum ti_embedding_format fmt = TI_EMB_PEER;
    struct ti_tokenizer *tok = NULL;
    struct ti_merge m;
    ti_merge_init(&m);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flagbuf[64];
        const char *inl = ti_cli_split_eq(a, flagbuf, sizeof flagbuf); /* --flag=value */
        if (inl) a = flagbuf;
        static const char *const names[] = {"--manager_ckpts",
                                            "--output_path",
                                            "--stable_diffusion",
                                            "--rename",
                                            "--format",
                                            "--vocab",
                                            "--allow-unknown-globals",
                                            "--help",
                                            NULL};
        if (!(a = ti_cli_expand("ti-merge", a, names))) goto done; /* argparse's abbreviations */
        int valued = !strcmp(a, "--manager_ckpts") || !strcmp(a, "--output_path") ||
                     !strcmp(a, "--rename") || !strcmp(a, "--format") || !strcmp(a, "--vocab");
        if (inl && !valued) {
            fprintf(stderr, "ti-merge: %s takes no value ('%s')\n", a, argv[i]);
            goto done;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            rc = 0;
            goto done;
        } else if (!strcmp(a, "--manager_ckpts")) {
            int k = 0;
            if (inl) files[n_files++] = (char *)inl, k++;
            while (!inl && i + 1 < argc && !ti_cli_is_option(argv[i + 1]))
                files[n_files++] = argv[++i], k++;
            if (!k) {
                fprintf(stderr, "ti-merge: --manager_ckpts needs at least one file\n");
                goto done;
            }
        } else if (!strcmp(a, "-sd") || !strcmp(a, "--stable_diffusion")) {
            sd = 1;
        } else if (!strcmp(a, "--allow-unknown-globals")) {
            flags |= TI_TORCH_ALLOW_UNKNOWN_GLOBALS;
        } else if (!strcmp(a, "--output_path") || !strcmp(a, "--rename") ||
                   !strcmp(a, "--format") || !strcmp(a, "--vocab")) {
            const char *v = inl ? inl : ti_cli_next_value("ti-merge", argc, argv, i);
            if (!v) goto done;
            if (!inl) i++;
            if (!strcmp(a, "--output_path")) {
                out = v;
            } else if (!strcmp(a, "--rename")) {
                rename_args[n_renames++] = (char *)v; /* in argv: parse_rename cuts it */
            } else if (!strcmp(a, "--vocab")) {
                vocab = v;
            } else {
                fmt = ti_embedding_format_parse(v);
                if (fmt != TI_EMB_A1111 && fmt != TI_EMB_PEER && fmt != TI_EMB_DIFFUSERS) {
                    fprintf(stderr,
                            "ti-merge: --format must be peer, a1111 or diffusers, not '%s'\n", v);
                    goto done;
                }
            }
        } else {
            fprintf(stderr, "ti-merge: unknown argument '%s' (see --help)\n", a);
            goto done;
        }
    }
    /* diffusers' learned_embeds.bin is a torch pickle; ti writes the layout as safetensors */
    if (out && fmt == TI_EMB_DIFFUSERS && !ti_path_has_suffix(out, ".safetensors") &&
        !ti_path_is_dir(out)) {
        fprintf(stderr,
                "ti-merge: --format diffusers writes a safetensors file: give an --output_path "
                "ending in .safetensors or an existing folder (for FOLDER/learned_embeds."
                "safetensors), not '%s' (for a torch pickle use --format a1111 or peer)\n",
                out);
        goto done;
    }
    if (!n_files || !out) {
        fprintf(stderr, "ti-merge: %s is required\n",
                !n_files ? "--manager_ckpts" : "--output_path");
        usage(stderr);
        goto done;
    }
    for (int r = 0; r < n_renames; r++) {
        int k = parse_rename(&renames[r], rename_args[r], files, n_files);
        if (k <= 0) {
            fprintf(stderr,
                    k == 0 ? "ti-merge: --rename '%s': expected FILE:OLD=NEW with FILE one of "
                             "the --manager_ckpts files\n"
                           : "ti-merge: --rename '%s': expected FILE:OLD=NEW with a non-empty "
                             "NEW\n",
                    rename_args[r]);
            goto done;
        }
        /* one rename of OLD per occurrence of FILE (each renames one copy) */
        int same = 1, copies = 0;
        for (int q = 0; q < r; q++)
            same += !strcmp(renames[q].file, renames[r].file) &&
                    !strcmp(renames[q].old_name, renames[r].old_name);
        for (int q = 0; q < n_files; q++)
            copies += !strcmp(files[q], renames[r].file);
        if (same > copies) {
            fprintf(stderr,
                    "ti-merge: --rename %s:%s is given %d times but %s is merged %d time%s (each "
                    "rename renames one copy)\n",
                    renames[r].file, renames[r].old_name, same, renames[r].file, copies,
                    copies == 1 ? "" : "s");
            goto done;
        }
    }

    rc = 1;
    struct ti_err err = {0};
    enum ti_tokenizer_kind kind = sd ? TI_TOKENIZER_BPE : TI_TOKENIZER_WORDPIECE;
    char vpath[4096];
    if (!vocab) {
        ti_tokenizer_default_vocab(vpath, sizeof vpath, kind);
        vocab = vpath;
    }
    if (ti_tokenizer_load(&tok, kind, vocab, &err) != TI_OK) {
        fprintf(stderr, "ti-merge: error: %s\n", err.msg);
        goto done;
    }
    struct ti_merge_opts o = {0};
    o.tok = tok;
    o.renames = renames;
    o.n_renames = n_renames;
    o.ask = isatty(0) ? ask_stdin : NULL;
    for (int i = 0; i < n_files; i++) {
        printf("Parsing %s...\n", files[i]);
        fflush(stdout);
        struct ti_embedding e;
        if (ti_embedding_read_flags(&e, files[i], flags, &err) != TI_OK) {
            fprintf(stderr, "ti-merge: error: %s\n", err.msg);
            goto done;
        }
        /* NaN or infinite vectors (a diverged run): ti-sample and ti-train refuse them too */
        if (ti_embedding_check_finite(&e, &err) != TI_OK) {
            fprintf(stderr, "ti-merge: error: %s\n", err.msg);
            ti_embedding_free(&e);
            goto done;
        }
        /* one file: its name, step and checkpoint stay with it (a1111 output stores them) */
        if (n_files == 1 && ti_embedding_set_meta(&m.emb, e.name, e.step, e.sd_checkpoint,
                                                  e.sd_checkpoint_name, &err) != TI_OK) {
            fprintf(stderr, "ti-merge: error: %s\n", err.msg);
            ti_embedding_free(&e);
            goto done;
        }
        /* diffusers output, whose key is the prompt word: a '*' term stored for another word
         * is that word (as ti-sample reads it), unless a --rename names this file's '*'. The
         * other formats keep '*' and the stored id, as the peer's merge does. */
        int renamed_star = fmt != TI_EMB_DIFFUSERS;
        for (int r = 0; r < n_renames; r++)
            renamed_star |= !strcmp(renames[r].file, files[i]) && !strcmp(renames[r].old_name, "*");
        char note[1024];
        if (!renamed_star && ti_embedding_words_from_tokens(&e, tok, note, sizeof note))
            printf("note: %s\n", note);
        ti_status st = ti_merge_add(&m, &e, files[i], &o, &err);
        ti_embedding_free(&e);
        if (st != TI_OK) {
            fprintf(stderr, "ti-merge: error: %s\n", err.msg);
            goto done;
        }
    }
    if (ti_merge_finish(&m, &o, &err) != TI_OK) {
        fprintf(stderr, "ti-merge: error: %s\n", err.msg);
        goto done;
    }
    /* the peer's pitfall: a renamed SD term merged without -sd (or an LDM one with it) gets
     * the other tokenizer's id, which no prompt then finds */
    int dim = m.emb.n_terms ? m.emb.terms[0].dim : 0;
    int clip = ti_embedding_width_is_clip(dim);
    if (m.computed_ids && ((sd && clip == 0) || (!sd && clip == 1)))
        fprintf(stderr,
                "ti-merge: warning: the vectors have width %d (%s) but the token ids of renamed "
                "placeholders (and of files that store none) are %s's; %s\n",
                dim, ti_embedding_width_name(dim), sd ? "SD's CLIP" : "LDM's BERT",
                sd ? "drop -sd for LDM embeddings" : "pass -sd for Stable Diffusion embeddings");
    printf("Saving combined manager...\n");
    fflush(stdout);
    if (fmt != TI_EMB_PEER && m.emb.n_terms != 1) {
        fprintf(stderr,
                "ti-merge: error: the %s format holds one placeholder and the merge has %d; "
                "write it with --format peer (the default)\n",
                ti_embedding_format_name(fmt), m.emb.n_terms);
        goto done;
    }
    if (ti_embedding_write(&m.emb, out, fmt, &err) != TI_OK) {
        fprintf(stderr, "ti-merge: error: %s\n", err.msg);
        goto done;
    }
    printf("Managers merged. Final list of placeholders: {");
    for (int i = 0; i < m.emb.n_terms; i++) {
        char k[1024], v[4200];
        ti_merge_py_repr(k, sizeof k, m.emb.terms[i].placeholder);
        ti_merge_py_repr(v, sizeof v, m.term_src[i]);
        printf("%s%s: %s", i ? ", " : "", k, v);
    }
    printf("}\n");
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    ti_merge_free(&m);
    ti_tokenizer_free(&tok);
    free(files);
    free(rename_args);
    free(renames);
    return rc;
}
