/*
 * tokenizer_bpe.c - CLIP byte-level BPE for SD v1 (see tokenizer_bpe.h for the pipeline).
 *
 * Sections: loading the merges file; the split pattern; BPE on one pre-token (heap version of
 * HF's round-by-round algorithm); encode / decode / the single-token rule.
 */
#include "tokenizer_bpe.h"

#include <errno.h>  /* defines: errno */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: malloc, calloc, realloc, free */
#include <string.h> /* defines: memcpy, strlen, strerror */
#ifdef TI_HAVE_ZLIB
#include <zlib.h> /* defines: gzopen, gzread, gzclose, gzerror */
#else
/* Built without zlib: read plain files through stdio and refuse gzip data with a clear error. */
#include <stdio.h>
typedef FILE *gzFile;
#define Z_ERRNO (-1)
static gzFile gzopen(const char *path, const char *mode) {
    return fopen(path, mode);
}
static int gzclose(gzFile f) {
    return fclose(f);
}
static int gz_is_gzip = 0;
static int gzread(gzFile f, void *buf, unsigned n) {
    size_t got = fread(buf, 1, n, f);
    if (ferror(f)) return -1;
    if (got >= 2 && ((unsigned char *)buf)[0] == 0x1f && ((unsigned char *)buf)[1] == 0x8b &&
        ftell(f) == (long)got) {
        gz_is_gzip = 1;
        return -1;
    }
    return (int)got;
}
static const char *gzerror(gzFile f, int *zerr) {
    (void)f;
    *zerr = gz_is_gzip ? 0 : Z_ERRNO;
    return "the file is gzip-compressed and this ti was built without zlib (install zlib1g-dev "
           "and rebuild, or gunzip the file)";
}
#endif

#include "text_fix.h"
#include "unicode.h"

struct merge_slot {
    uint64_t key; /* left << 32 | right; 0 = empty (id pair (0, 0) is stored as key + 1) */
    int32_t rank;
    int32_t merged;
};

struct ti_bpe {
    struct ti_vocab vocab;  /* ids 0..49407 and their byte-level strings */
    int32_t byte_id[256];   /* id of the symbol of byte b */
    int32_t byte_id_w[256]; /* id of the symbol of byte b followed by "</w>" */
    uint8_t sym_byte[512];  /* byte-level code point (< 0x144) -> byte, for decoding */
    struct merge_slot *merges;
    uint32_t n_slots;
};

/* ==== bytes_to_unicode ======================================================================= */

/* The byte-level alphabet (openai/CLIP simple_tokenizer.bytes_to_unicode): printable bytes
 * 33..126, 161..172, 174..255 stand for themselves, the other 68 bytes map to U+0100.. in byte
 * order. order[i] is the byte of vocabulary id i, cp[b] the code point of byte b. */
static void bytes_to_unicode(uint8_t order[256], uint32_t cp[256]) {
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
            order[n++] = (uint8_t)b;
            cp[b] = (uint32_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
            order[n++] = (uint8_t)b;
            cp[b] = 256u + (uint32_t)extra++;
        }
}

/* ==== merge ranks ============================================================================ */

static uint64_t merge_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static uint32_t merge_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* Rank of the pair (a, b) and its merged id, or -1 when (a, b) is not a merge rule. */
static int32_t merge_rank(const struct ti_bpe *bpe, int32_t a, int32_t b, int32_t *merged) {
    uint64_t k = merge_key(a, b);
    uint32_t mask = bpe->n_slots - 1, i = merge_hash(k) & mask;
    while (bpe->merges[i].key) {
        if (bpe->merges[i].key == k) {
            if (merged) *merged = bpe->merges[i].merged;
            return bpe->merges[i].rank;
        }
        i = (i + 1) & mask;
    }
    return -1;
}

static void merge_put(struct ti_bpe *bpe, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    uint64_t k = merge_key(a, b);
    uint32_t mask = bpe->n_slots - 1, i = merge_hash(k) & mask;
    while (bpe->merges[i].key && bpe->merges[i].key != k)
        i = (i + 1) & mask;
    bpe->merges[i].key = k; /* a repeated rule keeps its last rank, like HF's dict(zip(...)) */
    bpe->merges[i].rank = rank;
    bpe->merges[i].merged = merged;
}

/* ==== loading ================================================================================ */

/* Reads the file (gzip, or plain: zlib passes it through) up to the line HF's slice stops at.
 * *start skips the leading whitespace HF's str.strip() removes. */
static ti_status read_merges_text(char **out, size_t *len, size_t *start, const char *path,
                                  struct ti_err *err) {
    *out = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return ti_error(err, TI_ERR_IO, "bpe: cannot open merges file %s: %s", path,
                        errno ? strerror(errno) : "out of memory");
    size_t cap = 1 << 20, n = 0, lines = 0, s = 0;
    int started = 0;
    char *buf = malloc(cap);
    ti_status st = TI_OK;
    if (!buf) {
        st = ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate %zu bytes", cap);
        goto done;
    }
    for (;;) {
        if (cap - n < 65536) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                st = ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate %zu bytes", cap * 2);
                goto done;
            }
            buf = p;
            cap *= 2;
        }
        int got = gzread(f, buf + n, (unsigned)(cap - n - 1));
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            st = ti_error(err, TI_ERR_FORMAT, "bpe: cannot read merges file %s: %s", path,
                          zerr == Z_ERRNO ? strerror(errno) : msg);
            goto done;
        }
        for (size_t i = n; i < n + (size_t)got; i++) {
            if (!started) {
                unsigned char c = (unsigned char)buf[i];
                if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) continue;
                started = 1;
                s = i;
            }
            if (buf[i] == '\n') lines++;
        }
        n += (size_t)got;
        if (got == 0 || lines > TI_BPE_N_MERGES) break;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    *len = n;
    *start = started ? s : n;
done:
    free(buf);
    gzclose(f);
    return st;
}

/* Python's str.split() on one merge line (the byte-level alphabet has no whitespace). */
static int split_fields(const char *line, size_t len, const char **f, size_t *flen, int max) {
    int nf = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || (line[i] >= 0x09 && line[i] <= 0x0D)))
            i++;
        if (i >= len) break;
        size_t b = i;
        while (i < len && !(line[i] == ' ' || (line[i] >= 0x09 && line[i] <= 0x0D)))
            i++;
        if (nf < max) {
            f[nf] = line + b;
            flen[nf] = i - b;
        }
        nf++;
    }
    return nf;
}

ti_status ti_bpe_load(struct ti_bpe **out, const char *path, struct ti_err *err) {
    *out = NULL;
    struct ti_bpe *bpe = calloc(1, sizeof *bpe);
    if (!bpe) return ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate");
    char *text = NULL, *cat = NULL;
    size_t *line_off = NULL, *line_len = NULL;
    size_t len = 0, start = 0, cat_cap = 0;
    ti_status st = TI_OK;
    TI_TRY_GOTO(st, read_merges_text(&text, &len, &start, path, err));

    /* line 0 is the header; merge r is line r + 1 (HF: text.strip().split("\n")[1:48895]) */
    line_off = malloc((TI_BPE_N_MERGES + 1) * sizeof(size_t));
    line_len = malloc((TI_BPE_N_MERGES + 1) * sizeof(size_t));
    if (!line_off || !line_len) {
        st = ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate the line index");
        goto fail;
    }
    size_t nl = 0;
    for (size_t p = start; p < len && nl < TI_BPE_N_MERGES + 1;) {
        size_t e = p;
        while (e < len && text[e] != '\n')
            e++;
        line_off[nl] = p;
        line_len[nl] = e - p;
        nl++;
        p = e + 1;
    }
    if (nl < TI_BPE_N_MERGES + 1) {
        st = ti_error(err, TI_ERR_FORMAT,
                      "bpe: merges file %s has %zu merge lines after the header, expected at "
                      "least %d (is it bpe_simple_vocab_16e6.txt[.gz]?)",
                      path, nl ? nl - 1 : 0, TI_BPE_N_MERGES);
        goto fail;
    }

    /* ids 0..511: the byte symbols, then the same with "</w>" */
    uint8_t order[256];
    uint32_t cps[256];
    bytes_to_unicode(order, cps);
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 256; i++) {
            char s[8];
            int k = ti_utf8_encode(s, cps[order[i]]);
            if (w) {
                memcpy(s + k, "</w>", 4);
                k += 4;
            }
            TI_TRY_GOTO(st, ti_vocab_add(&bpe->vocab, s, (size_t)k, err));
            if (w)
                bpe->byte_id_w[order[i]] = 256 + i;
            else
                bpe->byte_id[order[i]] = i;
        }
    for (int b = 0; b < 256; b++)
        bpe->sym_byte[cps[b]] = (uint8_t)b;

    /* ids 512..49405: one per merge, the concatenation of its two symbols; then BOS, EOS */
    const char *f[3];
    size_t fl[3];
    for (int r = 0; r < TI_BPE_N_MERGES; r++) {
        int nf = split_fields(text + line_off[r + 1], line_len[r + 1], f, fl, 3);
        if (nf != 2) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "bpe: merges file %s line %d: expected two space-separated symbols, "
                          "found %d",
                          path, r + 2, nf);
            goto fail;
        }
        if (fl[0] + fl[1] > cat_cap) {
            size_t c = fl[0] + fl[1] + 64;
            char *p = realloc(cat, c);
            if (!p) {
                st = ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate %zu bytes", c);
                goto fail;
            }
            cat = p;
            cat_cap = c;
        }
        memcpy(cat, f[0], fl[0]);
        memcpy(cat + fl[0], f[1], fl[1]);
        TI_TRY_GOTO(st, ti_vocab_add(&bpe->vocab, cat, fl[0] + fl[1], err));
    }
    TI_TRY_GOTO(st, ti_vocab_add(&bpe->vocab, "<|startoftext|>", 15, err));
    TI_TRY_GOTO(st, ti_vocab_add(&bpe->vocab, "<|endoftext|>", 13, err));

    /* merge ranks: both symbols and the result resolved through the finished vocabulary (a
     * string listed twice resolves to its later id, as in HF's vocab dict) */
    bpe->n_slots = 1u << 17;
    bpe->merges = calloc(bpe->n_slots, sizeof *bpe->merges);
    if (!bpe->merges) {
        st = ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate the merge table");
        goto fail;
    }
    for (int r = 0; r < TI_BPE_N_MERGES; r++) {
        split_fields(text + line_off[r + 1], line_len[r + 1], f, fl, 3);
        int32_t a = ti_vocab_find(&bpe->vocab, f[0], fl[0]);
        int32_t b = ti_vocab_find(&bpe->vocab, f[1], fl[1]);
        if (a < 0 || b < 0) {
            st = ti_error(err, TI_ERR_FORMAT,
                          "bpe: merges file %s line %d: symbol '%.*s' is neither a byte symbol "
                          "nor the result of a merge",
                          path, r + 2, (int)(a < 0 ? fl[0] : fl[1]), a < 0 ? f[0] : f[1]);
            goto fail;
        }
        memcpy(cat, f[0], fl[0]);
        memcpy(cat + fl[0], f[1], fl[1]);
        merge_put(bpe, a, b, r, ti_vocab_find(&bpe->vocab, cat, fl[0] + fl[1]));
    }
fail:
    free(line_off);
    free(line_len);
    free(text);
    free(cat);
    if (st != TI_OK) {
        ti_bpe_free(&bpe);
        return st;
    }
    *out = bpe;
    return TI_OK;
}

void ti_bpe_free(struct ti_bpe **bpe) {
    if (!bpe || !*bpe) return;
    ti_vocab_free(&(*bpe)->vocab);
    free((*bpe)->merges);
    free(*bpe);
    *bpe = NULL;
}

/* ==== growable id list ======================================================================= */

/* ==== BPE of one pre-token =================================================================== */

struct heap_ent {
    int32_t rank;
    int32_t pos;
};

struct bpe_scratch {
    int32_t *sym, *prev, *next; /* linked list of symbols over the pre-token's bytes */
    struct heap_ent *heap;
    int32_t *pending;
    size_t cap, heap_cap, n_heap;
};

static void scratch_free(struct bpe_scratch *s) {
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->pending);
    memset(s, 0, sizeof *s);
}

static ti_status scratch_reserve(struct bpe_scratch *s, size_t m, struct ti_err *err) {
    if (m <= s->cap) return TI_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < m)
        cap *= 2;
    int32_t *a = realloc(s->sym, cap * sizeof(int32_t));
    if (a) s->sym = a;
    int32_t *b = realloc(s->prev, cap * sizeof(int32_t));
    if (b) s->prev = b;
    int32_t *c = realloc(s->next, cap * sizeof(int32_t));
    if (c) s->next = c;
    int32_t *d = realloc(s->pending, cap * 2 * sizeof(int32_t));
    if (d) s->pending = d;
    if (!a || !b || !c || !d)
        return ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate a %zu-byte word", m);
    s->cap = cap;
    return TI_OK;
}

static int heap_less(struct heap_ent x, struct heap_ent y) {
    return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static ti_status heap_push(struct bpe_scratch *s, int32_t rank, int32_t pos, struct ti_err *err) {
    if (s->n_heap == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 128;
        struct heap_ent *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate the merge heap");
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->n_heap++;
    struct heap_ent e = {rank, pos};
    while (i > 0 && heap_less(e, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return TI_OK;
}

static struct heap_ent heap_pop(struct bpe_scratch *s) {
    struct heap_ent top = s->heap[0], last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(s->heap[c + 1], s->heap[c])) c++;
        if (!heap_less(s->heap[c], last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* Appends the ids of one pre-token (its UTF-8 bytes). HF's bpe(): symbols are the bytes with
 * "</w>" on the last; each round takes the lowest-ranked adjacent pair and merges all its
 * non-overlapping occurrences left to right, until no pair is a rule. Here the rounds come off
 * a heap ordered by (rank, position); entries made stale by earlier merges are skipped, and the
 * pairs a round creates enter the heap only after the round, as HF recomputes pairs per round. */
static ti_status bpe_word(struct ti_idlist *out, const struct ti_bpe *bpe, struct bpe_scratch *s,
                          const unsigned char *w, size_t m, struct ti_err *err) {
    if (m == 0) return TI_OK;
    if (m > INT32_MAX / 2) return ti_error(err, TI_ERR_INVALID, "bpe: word of %zu bytes", m);
    TI_TRY(scratch_reserve(s, m, err));
    for (size_t i = 0; i < m; i++) {
        s->sym[i] = i + 1 == m ? bpe->byte_id_w[w[i]] : bpe->byte_id[w[i]];
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < m ? (int32_t)i + 1 : -1;
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        int32_t r = merge_rank(bpe, s->sym[i], s->sym[i + 1], NULL);
        if (r >= 0) TI_TRY(heap_push(s, r, (int32_t)i, err));
    }
    while (s->n_heap) {
        int32_t round = s->heap[0].rank;
        size_t n_pending = 0;
        while (s->n_heap && s->heap[0].rank == round) {
            struct heap_ent e = heap_pop(s);
            int32_t p = e.pos, q = s->next[p];
            if (s->sym[p] < 0 || q < 0) continue; /* consumed, or nothing to its right */
            int32_t merged;
            if (merge_rank(bpe, s->sym[p], s->sym[q], &merged) != round) continue; /* stale */
            s->sym[p] = merged;
            s->sym[q] = -1;
            s->next[p] = s->next[q];
            if (s->next[q] >= 0) s->prev[s->next[q]] = p;
            if (s->prev[p] >= 0) s->pending[n_pending++] = s->prev[p];
            s->pending[n_pending++] = p;
        }
        for (size_t k = 0; k < n_pending; k++) {
            int32_t p = s->pending[k], q = s->next[p];
            if (s->sym[p] < 0 || q < 0) continue;
            int32_t r = merge_rank(bpe, s->sym[p], s->sym[q], NULL);
            if (r >= 0) TI_TRY(heap_push(s, r, p, err));
        }
    }
    for (int32_t p = 0; p >= 0; p = s->next[p])
        TI_TRY(ti_idlist_push(out, s->sym[p], err));
    return TI_OK;
}

/* ==== the split pattern ====================================================================== */

/* Does the lower-cased text match `lit` at t[i] under IGNORECASE? Returns its length or 0. */
static size_t match_literal(const uint32_t *t, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++) {
        if (i + k >= n) return 0;
        uint32_t c = t[i + k], want = (unsigned char)lit[k];
        if (want >= 'a' && want <= 'z') {
            if (ti_unicode_ci_ascii(c) != want) return 0;
        } else if (c != want) {
            return 0;
        }
    }
    return k;
}

/* 1 when t[0..n) is exactly the ASCII string lit. */
static int exact_ascii(const uint32_t *t, size_t n, const char *lit) {
    size_t k = 0;
    for (; k < n && lit[k]; k++)
        if (t[k] != (uint32_t)(unsigned char)lit[k]) return 0;
    return k == n && lit[k] == '\0';
}

/* Length of the pattern's match at t[i], 0 when t[i] is skipped (whitespace). */
static size_t pattern_at(const uint32_t *t, size_t n, size_t i) {
    static const char *const lits[] = {
        "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    if (t[i] == '<' || t[i] == '\'')
        for (size_t k = 0; k < sizeof lits / sizeof lits[0]; k++) {
            size_t len = match_literal(t, n, i, lits[k]);
            if (len) return len;
        }
    uint32_t f = ti_uprop_flags(t[i]);
    size_t j = i + 1;
    if (f & TI_UP_CLIP_L) {
        while (j < n && (ti_uprop_flags(t[j]) & TI_UP_CLIP_L))
            j++;
        return j - i;
    }
    if (f & TI_UP_CLIP_N) return 1;
    if (f & TI_UP_CLIP_O) {
        while (j < n && (ti_uprop_flags(t[j]) & TI_UP_CLIP_O))
            j++;
        return j - i;
    }
    return 0;
}

/* ==== encode ================================================================================= */

struct piece_bufs {
    struct ti_ustr fixed, clean, lower;
    unsigned char *bytes;
    size_t bytes_cap;
    struct bpe_scratch scratch;
};

/* Steps 2-5 for one piece of text between special tokens. */
static ti_status encode_piece(struct ti_idlist *out, const struct ti_bpe *bpe, struct piece_bufs *b,
                              const uint32_t *cp, size_t n, struct ti_err *err) {
    TI_TRY(ti_text_fix(&b->fixed, cp, n, err));
    /* whitespace_clean: re.sub(r"\s+", " ") with the regex module's \s, then str.strip() */
    b->clean.n = 0;
    for (size_t i = 0; i < b->fixed.n;) {
        if (ti_uprop_flags(b->fixed.cp[i]) & TI_UP_RX_SPACE) {
            while (i < b->fixed.n && (ti_uprop_flags(b->fixed.cp[i]) & TI_UP_RX_SPACE))
                i++;
            TI_TRY(ti_ustr_push(&b->clean, ' ', err));
        } else {
            TI_TRY(ti_ustr_push(&b->clean, b->fixed.cp[i++], err));
        }
    }
    size_t lo = 0, hi = b->clean.n;
    while (lo < hi && (ti_uprop_flags(b->clean.cp[lo]) & TI_UP_PY_SPACE))
        lo++;
    while (hi > lo && (ti_uprop_flags(b->clean.cp[hi - 1]) & TI_UP_PY_SPACE))
        hi--;
    TI_TRY(ti_ustr_lower(&b->lower, b->clean.cp + lo, hi - lo, err));

    const uint32_t *t = b->lower.cp;
    size_t tn = b->lower.n;
    for (size_t i = 0; i < tn;) {
        size_t len = pattern_at(t, tn, i);
        if (len == 0) {
            i++;
            continue;
        }
        /* the pattern's special-token alternatives: HF's bpe cache maps the exact strings to
         * themselves (a look-alike such as "<|\u017ftartoftext|>" goes through BPE) */
        if (exact_ascii(t + i, len, "<|startoftext|>") ||
            exact_ascii(t + i, len, "<|endoftext|>")) {
            TI_TRY(ti_idlist_push(out, len == 15 ? TI_BPE_BOS : TI_BPE_EOS, err));
            i += len;
            continue;
        }
        if (len * 4 > b->bytes_cap) {
            size_t cap = len * 4 + 64;
            unsigned char *p = realloc(b->bytes, cap);
            if (!p) return ti_error(err, TI_ERR_NOMEM, "bpe: cannot allocate %zu bytes", cap);
            b->bytes = p;
            b->bytes_cap = cap;
        }
        size_t m = 0;
        for (size_t k = 0; k < len; k++)
            m += (size_t)ti_utf8_encode((char *)b->bytes + m, t[i + k]);
        TI_TRY(bpe_word(out, bpe, &b->scratch, b->bytes, m, err));
        i += len;
    }
    return TI_OK;
}

ti_status ti_bpe_tokenize(int32_t **ids, size_t *n, const struct ti_bpe *bpe, const char *text,
                          size_t len, struct ti_err *err) {
    *ids = NULL;
    *n = 0;
    struct ti_ustr in = {0};
    struct piece_bufs b = {0};
    struct ti_idlist out = {0};
    ti_status st = TI_OK;
    TI_TRY_GOTO(st, ti_ustr_from_utf8(&in, text, len, err));
    /* step 1: split the raw text on the literal special tokens (HF tokens_trie.split) */
    size_t start = 0;
    for (size_t i = 0; i <= in.n;) {
        size_t sl = 0;
        int32_t special = -1;
        if (i < in.n && in.cp[i] == '<') {
            static const char *const sp[2] = {"<|startoftext|>", "<|endoftext|>"};
            for (int k = 0; k < 2 && special < 0; k++) {
                size_t L = strlen(sp[k]);
                if (i + L <= in.n && exact_ascii(in.cp + i, L, sp[k])) {
                    special = k ? TI_BPE_EOS : TI_BPE_BOS;
                    sl = L;
                }
            }
        }
        if (special < 0 && i < in.n) {
            i++;
            continue;
        }
        if (i > start) TI_TRY_GOTO(st, encode_piece(&out, bpe, &b, in.cp + start, i - start, err));
        if (special < 0) break; /* end of text */
        TI_TRY_GOTO(st, ti_idlist_push(&out, special, err));
        i += sl;
        start = i;
    }
    *ids = out.v;
    *n = out.n;
    out.v = NULL;
fail:
    free(out.v);
    ti_ustr_free(&in);
    ti_ustr_free(&b.fixed);
    ti_ustr_free(&b.clean);
    ti_ustr_free(&b.lower);
    free(b.bytes);
    scratch_free(&b.scratch);
    return st;
}

ti_status ti_bpe_encode(struct ti_token_ids *out, const struct ti_bpe *bpe, const char *text,
                        size_t len, struct ti_err *err) {
    int32_t *ids;
    size_t n;
    TI_TRY(ti_bpe_tokenize(&ids, &n, bpe, text, len, err));
    ti_token_ids_layout(out, ids, n, TI_BPE_BOS, TI_BPE_EOS, TI_BPE_EOS);
    free(ids);
    return TI_OK;
}

/* ==== decode ================================================================================= */

ti_status ti_bpe_decode(char **out, const struct ti_bpe *bpe, const int32_t *ids, size_t n,
                        struct ti_err *err) {
    *out = NULL;
    unsigned char *bytes = NULL;
    size_t nb = 0, cap = 0;
    struct ti_ustr u = {0}, v = {0};
    ti_status st = TI_OK;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= TI_BPE_N_VOCAB) {
            st = ti_error(err, TI_ERR_INVALID,
                          "bpe: decode: id %d at position %zu is outside "
                          "0..%d",
                          (int)ids[i], i, TI_BPE_N_VOCAB - 1);
            goto fail;
        }
        if (ids[i] == TI_BPE_BOS || ids[i] == TI_BPE_EOS) continue; /* skip_special_tokens */
        size_t tl;
        const char *tok = ti_vocab_token(&bpe->vocab, ids[i], &tl);
        TI_TRY_GOTO(st, ti_ustr_from_utf8(&u, tok, tl, err));
        if (nb + u.n > cap) {
            cap = (nb + u.n) * 2 + 64;
            unsigned char *p = realloc(bytes, cap);
            if (!p) {
                st = ti_error(err, TI_ERR_NOMEM, "bpe: decode: cannot allocate");
                goto fail;
            }
            bytes = p;
        }
        for (size_t k = 0; k < u.n; k++)
            bytes[nb++] = bpe->sym_byte[u.cp[k] & 0x1FF];
    }
    /* bytes -> text (errors="replace"), "</w>" -> " ", strip() */
    TI_TRY_GOTO(st, ti_ustr_from_utf8(&u, (const char *)bytes, nb, err));
    v.n = 0;
    for (size_t i = 0; i < u.n;) {
        if (i + 4 <= u.n && u.cp[i] == '<' && u.cp[i + 1] == '/' && u.cp[i + 2] == 'w' &&
            u.cp[i + 3] == '>') {
            TI_TRY_GOTO(st, ti_ustr_push(&v, ' ', err));
            i += 4;
        } else {
            TI_TRY_GOTO(st, ti_ustr_push(&v, u.cp[i++], err));
        }
    }
    size_t lo = 0, hi = v.n;
    while (lo < hi && (ti_uprop_flags(v.cp[lo]) & TI_UP_PY_SPACE))
        lo++;
    while (hi > lo && (ti_uprop_flags(v.cp[hi - 1]) & TI_UP_PY_SPACE))
        hi--;
    TI_TRY_GOTO(st, ti_utf8_from_cps(out, NULL, v.cp + lo, hi - lo, err));
fail:
    free(bytes);
    ti_ustr_free(&u);
    ti_ustr_free(&v);
    return st;
}

/* ==== the single-token rule ================================================================== */

ti_status ti_bpe_single_token(int32_t *id, const struct ti_bpe *bpe, const char *word,
                              struct ti_err *err) {
    *id = -1;
    struct ti_token_ids t;
    TI_TRY(ti_bpe_encode(&t, bpe, word, strlen(word), err));
    int count = 0;
    for (int i = 0; i < TI_TOKENS_MAX; i++)
        count += t.ids[i] != TI_BPE_EOS;
    char list[256];
    ti_ids_format(list, sizeof list, t.ids + 1, (size_t)t.n - 2, 16);
    if (count != 2)
        return ti_error(err, TI_ERR_INVALID,
                        "single-token rule: \"%s\" is not a single token for the SD (CLIP BPE) "
                        "tokenizer: it gives %zu token%s (ids: %s), and the reference trainer "
                        "accepts a string only when exactly one id besides the start token "
                        "differs from 49407 (<|endoftext|>, also the padding); pick another "
                        "string (ti-tokenize --model sd WORD shows how a word splits)",
                        word, t.n_text, t.n_text == 1 ? "" : "s", t.n > 2 ? list : "none");
    if (t.ids[1] == TI_BPE_BOS || t.ids[1] == TI_BPE_EOS)
        return ti_error(err, TI_ERR_INVALID,
                        "single-token rule: \"%s\" maps to the special token %d (%s) for the SD "
                        "(CLIP BPE) tokenizer; training it would change every prompt's %s; pick "
                        "another string (ti-tokenize --model sd WORD shows how a word splits)",
                        word, (int)t.ids[1],
                        t.ids[1] == TI_BPE_BOS ? "<|startoftext|>" : "<|endoftext|>",
                        t.ids[1] == TI_BPE_BOS ? "start token" : "end and padding tokens");
    *id = t.ids[1];
    return TI_OK;
}
