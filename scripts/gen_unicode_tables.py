"""Writes model/unicode_tables.c and model/unicode_tables.h: the Unicode, HTML-entity and ftfy
data that the C tokenizers (model/tokenizer_bpe.c, model/tokenizer_wordpiece.c) and the ftfy
port (model/text_fix.c) need.

Usage (from the repository root, in the oracle environment of docs/DEVELOPING.md):
    /opt/oracle-venv/bin/python scripts/gen_unicode_tables.py

Every table is measured from the very code the reference tokenizers run, so the C port sees the
same Unicode version as each of them (they differ):
  * CLIP (HF CLIPTokenizer, slow): ftfy.fix_text (NFC from Python's `unicodedata`, the ftfy
    6.x character classes and codecs), `str.lower()` (Python's full lower-case mapping with the
    Final_Sigma rule), and the `regex` module's \\p{L}, \\p{N}, \\s under IGNORECASE (the `regex`
    module carries a newer Unicode version than `unicodedata`; each class bit below is taken by
    matching that very pattern against every code point).
  * LDM (HF BertTokenizerFast, Rust `tokenizers`): categories from `unicodedata` give the base
    classes (C* dropped, whitespace, CJK, Mn stripped, P* punctuation); the Rust crates inside
    `tokenizers` use an older Unicode version, so every code point is then run through the real
    BertNormalizer / BertPreTokenizer and the few hundred code points where they disagree get
    override bits (KEEP: passed through untouched; STRIP: removed; punctuation flipped). The
    generator prints how many overrides it wrote; it stops if a difference is of another kind.
The versions are recorded in the generated files' header comments. Hangul syllables are
composed and decomposed algorithmically in model/unicode.c and are not in the tables.

Requires: Python 3.11 (unicodedata 14.0.0), regex, ftfy 6.x, tokenizers (via transformers).
The output is passed through clang-format (when found) so scripts/format.sh --check stays clean.
"""
import codecs
import html
import html.entities
import itertools
import os
import re
import shutil
import subprocess
import sys
import unicodedata

import regex
import ftfy
import ftfy.badness
import ftfy.chardata
import tokenizers
from tokenizers import normalizers, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_C = os.path.join(ROOT, "model", "unicode_tables.c")
OUT_H = os.path.join(ROOT, "model", "unicode_tables.h")

MAXCP = 0x110000
BLOCK = 128  # code points per second-stage block of the property table


def all_cps():
    for cp in range(MAXCP):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates never reach the tables (UTF-8 input cannot hold them)
        yield cp


def is_hangul_syllable(cp):
    return 0xAC00 <= cp <= 0xD7A3


# ---- property flag bits (mirrored in the generated header) -----------------------------------
FLAGS = [
    ("CLIP_L", "matches [\\p{L}] (regex module, IGNORECASE): part of a letter run"),
    ("CLIP_N", "matches [\\p{N}] (regex module, IGNORECASE): a one-character number token"),
    ("CLIP_O", "matches [^\\s\\p{L}\\p{N}] (regex module, IGNORECASE): part of an 'other' run"),
    ("RX_SPACE", "matches \\s of the regex module (CLIP whitespace_clean)"),
    ("PY_SPACE", "str.isspace(), also Python re's \\s (str.strip, ftfy's badness \\s)"),
    ("PY_WORD", "Python re's \\w (ftfy badness)"),
    ("PY_DIGIT", "Python re's \\d (ftfy remove_terminal_escapes)"),
    ("CASED", "Cased and not Case_Ignorable (str.lower's Final_Sigma context)"),
    ("CASE_IGN", "Case_Ignorable (skipped by the Final_Sigma context test)"),
    ("LOWER", "str.lower() changes it: see ti_unicode_lower_map"),
    ("DECOMP", "NFD changes it (not Hangul): see ti_unicode_decomp_map"),
    ("COMP_SECOND", "can be the second code point of a canonical composition"),
    ("BERT_DROP", "BertNormalizer clean_text removes it (NUL, U+FFFD, control)"),
    ("BERT_SPACE", "BertNormalizer clean_text maps it to a space"),
    ("BERT_CJK", "BertNormalizer puts spaces around it (CJK ideograph)"),
    ("BERT_MN", "removed after NFD by strip_accents (category Mn)"),
    ("BERT_PUNCT", "BertPreTokenizer splits it off as its own word"),
    ("BERT_KEEP", "tokenizers-rs override: passed through untouched by the normalizer"),
    ("BERT_STRIP", "tokenizers-rs override: removed by the normalizer (older Unicode Mn)"),
]
FLAG_BIT = {name: 1 << i for i, (name, _) in enumerate(FLAGS)}

# ftfy character classes: MOJIBAKE_CATEGORIES (badness.py) and UTF8_CLUES (chardata.py)
FTFY_CLASSES = [
    ("COMMON", ftfy.badness.MOJIBAKE_CATEGORIES, "common"),
    ("C1", ftfy.badness.MOJIBAKE_CATEGORIES, "c1"),
    ("BAD", ftfy.badness.MOJIBAKE_CATEGORIES, "bad"),
    ("LAW", ftfy.badness.MOJIBAKE_CATEGORIES, "law"),
    ("CURRENCY", ftfy.badness.MOJIBAKE_CATEGORIES, "currency"),
    ("START_PUNCT", ftfy.badness.MOJIBAKE_CATEGORIES, "start_punctuation"),
    ("END_PUNCT", ftfy.badness.MOJIBAKE_CATEGORIES, "end_punctuation"),
    ("NUMERIC", ftfy.badness.MOJIBAKE_CATEGORIES, "numeric"),
    ("KAOMOJI", ftfy.badness.MOJIBAKE_CATEGORIES, "kaomoji"),
    ("UPPER_ACCENTED", ftfy.badness.MOJIBAKE_CATEGORIES, "upper_accented"),
    ("LOWER_ACCENTED", ftfy.badness.MOJIBAKE_CATEGORIES, "lower_accented"),
    ("UPPER_COMMON", ftfy.badness.MOJIBAKE_CATEGORIES, "upper_common"),
    ("LOWER_COMMON", ftfy.badness.MOJIBAKE_CATEGORIES, "lower_common"),
    ("BOX", ftfy.badness.MOJIBAKE_CATEGORIES, "box"),
    ("UTF8_FIRST_OF_2", ftfy.chardata.UTF8_CLUES, "utf8_first_of_2"),
    ("UTF8_FIRST_OF_3", ftfy.chardata.UTF8_CLUES, "utf8_first_of_3"),
    ("UTF8_FIRST_OF_4", ftfy.chardata.UTF8_CLUES, "utf8_first_of_4"),
    ("UTF8_CONTINUATION", ftfy.chardata.UTF8_CLUES, "utf8_continuation"),
    ("UTF8_CONTINUATION_STRICT", ftfy.chardata.UTF8_CLUES, "utf8_continuation_strict"),
]


def class_members(spec):
    """Code points of a regex character-class body as ftfy writes it (ranges with '-')."""
    pat = re.compile("[" + spec + "]")
    return {cp for cp in range(0x30000) if pat.match(chr(cp))}


# ---- CLIP: regex-module classes and Python's lower() ------------------------------------------
def clip_flags():
    flags = {}
    rx_l = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    rx_n = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    rx_o = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)
    rx_s = regex.compile(r"\s")
    py_s = re.compile(r"\s")
    py_w = re.compile(r"\w")
    py_d = re.compile(r"\d")
    for cp in all_cps():
        c = chr(cp)
        f = 0
        if rx_l.match(c):
            f |= FLAG_BIT["CLIP_L"]
        if rx_n.match(c):
            f |= FLAG_BIT["CLIP_N"]
        if rx_o.match(c):
            f |= FLAG_BIT["CLIP_O"]
        if rx_s.match(c):
            f |= FLAG_BIT["RX_SPACE"]
        if c.isspace():
            f |= FLAG_BIT["PY_SPACE"]
        assert bool(py_s.match(c)) == c.isspace()
        if py_w.match(c):
            f |= FLAG_BIT["PY_WORD"]
        if py_d.match(c):
            f |= FLAG_BIT["PY_DIGIT"]
        flags[cp] = f
    return flags


def casing_flags(flags):
    """Cased / Case_Ignorable as CPython's Final_Sigma test sees them, measured with lower()."""
    for cp in all_cps():
        c = chr(cp)
        if c == "\u03a3":
            flags[cp] |= FLAG_BIT["CASED"]
            continue
        t1 = ("A\u03a3" + c).lower()[1] == "\u03c3"  # c cased and not ignorable
        t2 = ("A\u03a3" + c + "B").lower()[1] == "\u03c3"  # c cased or ignorable
        if t1:
            flags[cp] |= FLAG_BIT["CASED"]
        elif t2:
            flags[cp] |= FLAG_BIT["CASE_IGN"]
        # the preceding-context test must agree with the classes
        t3 = (c + "\u03a3").lower()[-1]
        want = "\u03c2" if t1 else "\u03c3"
        assert t3 == want, hex(cp)


def lower_map(flags):
    out = []
    for cp in all_cps():
        c = chr(cp)
        lo = c.lower()
        if lo != c:
            flags[cp] |= FLAG_BIT["LOWER"]
            out.append((cp, [ord(x) for x in lo]))
    return out


def ci_fold():
    """Non-ASCII code points that the regex module matches case-insensitively to an ASCII
    letter (the literals of the CLIP pattern: 's, 't, <|startoftext|> ...)."""
    out = []
    for letter in "abcdefghijklmnopqrstuvwxyz":
        p = regex.compile(letter, regex.IGNORECASE)
        for cp in range(0x80, MAXCP):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            if p.fullmatch(chr(cp)):
                out.append((cp, ord(letter)))
    return sorted(out)


# ---- normalization data (unicodedata) ------------------------------------------------------
def normalization(flags):
    decomp = []
    ccc = {}
    for cp in all_cps():
        c = chr(cp)
        k = unicodedata.combining(c)
        if k:
            ccc[cp] = k
        if is_hangul_syllable(cp):
            continue
        d = unicodedata.normalize("NFD", c)
        if d != c:
            flags[cp] |= FLAG_BIT["DECOMP"]
            decomp.append((cp, [ord(x) for x in d]))
    comp = []
    for cp in all_cps():
        if is_hangul_syllable(cp):
            continue
        dec = unicodedata.decomposition(chr(cp))
        if not dec or dec.startswith("<"):
            continue
        parts = [int(x, 16) for x in dec.split()]
        if len(parts) != 2:
            continue
        a, b = parts
        if unicodedata.normalize("NFC", chr(a) + chr(b)) == chr(cp):
            comp.append((a, b, cp))
            flags[b] |= FLAG_BIT["COMP_SECOND"]
    comp.sort()
    return decomp, ccc, comp


# ---- BERT (tokenizers-rs BertNormalizer + BertPreTokenizer) ------------------------------------
def bert_is_cjk(cp):
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def bert_flags(flags):
    for cp in all_cps():
        c = chr(cp)
        cat = unicodedata.category(c)
        f = 0
        if cp == 0 or cp == 0xFFFD or (cat.startswith("C") and cat != "Cn" and c not in "\t\n\r"):
            f |= FLAG_BIT["BERT_DROP"]  # tokenizers-rs: Cn (unassigned) is not a control
        elif c in "\t\n\r" or cat in ("Zs", "Zl", "Zp"):
            f |= FLAG_BIT["BERT_SPACE"]  # Rust char::is_whitespace (Zl, Zp too)
        if bert_is_cjk(cp):
            f |= FLAG_BIT["BERT_CJK"]
        if cat == "Mn":
            f |= FLAG_BIT["BERT_MN"]
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or cat.startswith("P"):
            f |= FLAG_BIT["BERT_PUNCT"]
        flags[cp] |= f


def bert_strips(f):
    return bool(f & FLAG_BIT["BERT_MN"]) and not (f & FLAG_BIT["BERT_KEEP"])


def bert_emulate_char(cp, flags):
    """What model/tokenizer_wordpiece.c does to one isolated code point (the normalizer)."""
    f = flags[cp]
    c = chr(cp)
    if f & FLAG_BIT["BERT_KEEP"]:
        return c
    if f & FLAG_BIT["BERT_STRIP"]:
        return ""
    if f & FLAG_BIT["BERT_DROP"]:
        return ""
    if f & FLAG_BIT["BERT_SPACE"]:
        return " "
    s = unicodedata.normalize("NFD", c)
    s = "".join(x for x in s if not bert_strips(flags[ord(x)]))
    s = "".join(x.lower() for x in s)
    if f & FLAG_BIT["BERT_CJK"]:
        s = " " + s + " "
    return s


def bert_overrides(flags):
    # the normalizer HF BertTokenizerFast builds for bert-base-uncased (convert_slow_tokenizer)
    norm = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre = pre_tokenizers.BertPreTokenizer()
    n_keep = n_strip = n_punct = 0
    for cp in all_cps():
        c = chr(cp)
        got = norm.normalize_str(c)
        want = bert_emulate_char(cp, flags)
        if got != want:
            if got == c:
                flags[cp] |= FLAG_BIT["BERT_KEEP"]
                n_keep += 1
            elif got == "":
                flags[cp] |= FLAG_BIT["BERT_STRIP"]
                n_strip += 1
            else:
                sys.exit("gen_unicode_tables: unexpected BertNormalizer output %r for U+%04X "
                         "(emulated %r)" % (got, cp, want))
        # punctuation: probe characters that survive the normalizer unchanged
        if got == c and cp > 0x20 and not (flags[cp] & FLAG_BIT["BERT_SPACE"]):
            toks = [t for t, _ in pre.pre_tokenize_str("a" + c + "b")]
            is_p = toks == ["a", c, "b"]
            if not is_p and toks != ["a" + c + "b"]:
                sys.exit("gen_unicode_tables: unexpected BertPreTokenizer split %r for U+%04X"
                         % (toks, cp))
            if is_p != bool(flags[cp] & FLAG_BIT["BERT_PUNCT"]):
                flags[cp] ^= FLAG_BIT["BERT_PUNCT"]
                n_punct += 1
    return n_keep, n_strip, n_punct


# ---- HTML entities (ftfy's HTML_ENTITIES, built from html.entities.html5) ----------------------
def html_entities():
    entities = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            entities["&" + name] = char
            if name == name.lower():
                name_upper = name.upper()
                entity_upper = "&" + name_upper
                if html.unescape(entity_upper) == entity_upper:
                    entities[entity_upper] = char.upper()
    assert entities == ftfy.chardata.HTML_ENTITIES, "ftfy's HTML_ENTITIES changed"
    # key without '&' and ';', sorted by the UTF-8 bytes (strcmp order)
    return sorted((k[1:-1], v) for k, v in entities.items())


def html_charrefs():
    inv = sorted(html._invalid_charrefs.items())  # noqa: SLF001 (the stdlib's own table)
    cps = sorted(html._invalid_codepoints)  # noqa: SLF001
    ranges = []
    for _, g in itertools.groupby(enumerate(cps), lambda x: x[1] - x[0]):
        g = list(g)
        ranges.append((g[0][1], g[-1][1]))
    return inv, ranges


# ---- ftfy codecs ------------------------------------------------------------------------------
def charmaps():
    """Decode tables (byte -> code point) of ftfy's CHARMAP_ENCODINGS plus strict windows-1252."""
    maps = []
    for enc in ftfy.chardata.CHARMAP_ENCODINGS:
        dec = [ord(bytes([b]).decode(enc)) for b in range(256)]
        assert len(set(dec)) == 256, enc
        for b in range(256):  # encoding must invert decoding exactly
            assert chr(dec[b]).encode(enc) == bytes([b]), (enc, b)
        # the possible_encoding() regex: ASCII except 0x1A, plus decodings of 0x80-0xFF and 0x1A
        charlist = bytes(list(range(0x80, 0x100)) + [0x1A]).decode(enc)
        rx = ftfy.chardata.ENCODING_REGEXES[enc]
        for cp in range(0x30000):
            ok = (cp <= 0x7F and cp != 0x1A) or chr(cp) in charlist
            assert bool(rx.match(chr(cp))) == ok, (enc, cp)
        maps.append((enc, dec))
    w1252 = []
    for b in range(256):
        try:
            w1252.append(ord(bytes([b]).decode("windows-1252")))
        except UnicodeDecodeError:
            w1252.append(0xFFFFFFFF)
    return maps, w1252


def width_map():
    wm = ftfy.chardata.WIDTH_MAP
    mine = {0x3000: " "}
    for i in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(i))
        if alt != chr(i):
            mine[i] = alt
    assert mine == wm
    return sorted((k, [ord(x) for x in v]) for k, v in wm.items())


def ligatures():
    return sorted((k, [ord(x) for x in v]) for k, v in ftfy.chardata.LIGATURES.items())


def control_chars():
    return sorted(ftfy.chardata.CONTROL_CHARS.keys())


# ---- emit --------------------------------------------------------------------------------------
def c_str(s):
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7F and chr(b) not in '"\\?':
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def emit_array(lines, decl, items, per_line=12):
    lines.append(decl + " = {")
    for i in range(0, len(items), per_line):
        lines.append("    " + ", ".join(items[i : i + per_line]) + ",")
    lines.append("};")


def main():
    flags = clip_flags()
    casing_flags(flags)
    lowers = lower_map(flags)
    fold = ci_fold()
    decomp, ccc, comp = normalization(flags)
    bert_flags(flags)
    n_keep, n_strip, n_punct = bert_overrides(flags)
    ftfy_bits = {}
    for i, (_, table, key) in enumerate(FTFY_CLASSES):
        for cp in class_members(table[key]):
            ftfy_bits[cp] = ftfy_bits.get(cp, 0) | (1 << i)
    entities = html_entities()
    inv_charrefs, inv_cp_ranges = html_charrefs()
    maps, w1252 = charmaps()
    widths = width_map()
    ligs = ligatures()
    ctrls = control_chars()

    # two-stage property table: records (flags, ftfy bits, ccc) deduplicated
    rec_index = {}
    records = []
    stage2 = []
    block_index = {}
    stage1 = []
    for base in range(0, MAXCP, BLOCK):
        blk = []
        for cp in range(base, base + BLOCK):
            rec = (flags.get(cp, 0), ftfy_bits.get(cp, 0), ccc.get(cp, 0))
            if rec not in rec_index:
                rec_index[rec] = len(records)
                records.append(rec)
            blk.append(rec_index[rec])
        key = tuple(blk)
        if key not in block_index:
            block_index[key] = len(stage2) // BLOCK
            stage2.extend(blk)
        stage1.append(block_index[key])
    assert len(records) < 65536 and len(stage2) // BLOCK < 65536

    versions = (
        "Python %s, unicodedata %s, regex %s, ftfy %s, tokenizers %s"
        % (sys.version.split()[0], unicodedata.unidata_version, regex.__version__,
           ftfy.__version__, tokenizers.__version__)
    )
    header = [
        "/*",
        " * unicode_tables.h - GENERATED by scripts/gen_unicode_tables.py; do not edit.",
        " * " + versions + ".",
        " *",
        " * Declarations of the generated Unicode, HTML-entity and ftfy tables used by",
        " * model/unicode.c, model/text_fix.c and the tokenizers. Look-ups go through",
        " * model/unicode.h; nothing else should index these arrays directly.",
        " */",
        "#ifndef TI_UNICODE_TABLES_H",
        "#define TI_UNICODE_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        '#define TI_UNICODE_TABLES_VERSION "%s"' % versions,
        "#define TI_UNICODE_BLOCK %d" % BLOCK,
        "",
        "/* Property flag bits (struct ti_uprop.flags). */",
        "enum ti_uprop_flag {",
    ]
    for i, (name, doc) in enumerate(FLAGS):
        header.append("    /* %s */" % doc)
        header.append("    TI_UP_%s = 1u << %d," % (name, i))
    header += ["};", "", "/* ftfy character-class bits (struct ti_uprop.ftfy). */", "enum ti_uprop_ftfy {"]
    for i, (name, _, key) in enumerate(FTFY_CLASSES):
        header.append("    TI_FT_%s = 1u << %d, /* ftfy '%s' */" % (name, i, key))
    header += [
        "};",
        "",
        "struct ti_uprop {",
        "    uint32_t flags; /* enum ti_uprop_flag */",
        "    uint32_t ftfy;  /* enum ti_uprop_ftfy */",
        "    uint8_t ccc;    /* canonical combining class */",
        "};",
        "",
        "/* A code point and the (at most 4) code points it maps to. */",
        "struct ti_umap {",
        "    uint32_t cp;",
        "    uint8_t n;",
        "    uint32_t to[4];",
        "};",
        "",
        "struct ti_ucomp {",
        "    uint64_t key; /* first << 21 | second */",
        "    uint32_t cp;",
        "};",
        "",
        "struct ti_uentity {",
        "    const char *name; /* without '&' and ';' */",
        "    const char *utf8; /* replacement text */",
        "};",
        "",
        "struct ti_ucharref {",
        "    uint32_t num;",
        "    uint32_t cp; /* replacement for &#num; */",
        "};",
        "",
        "struct ti_urange {",
        "    uint32_t lo, hi;",
        "};",
        "",
        "struct ti_ufold {",
        "    uint32_t cp;",
        "    uint32_t ascii; /* the lower-case ASCII letter it matches under IGNORECASE */",
        "};",
        "",
        "extern const uint16_t ti_uprop_stage1[%d];" % len(stage1),
        "extern const uint16_t ti_uprop_stage2[%d];" % len(stage2),
        "extern const struct ti_uprop ti_uprop_records[%d];" % len(records),
        "extern const struct ti_umap ti_unicode_lower_map[%d];" % len(lowers),
        "extern const struct ti_umap ti_unicode_decomp_map[%d];" % len(decomp),
        "extern const struct ti_ucomp ti_unicode_comp_map[%d];" % len(comp),
        "extern const struct ti_ufold ti_unicode_ci_fold[%d];" % len(fold),
        "extern const struct ti_uentity ti_html_entities[%d];" % len(entities),
        "extern const struct ti_ucharref ti_html_invalid_charrefs[%d];" % len(inv_charrefs),
        "extern const struct ti_urange ti_html_invalid_codepoints[%d];" % len(inv_cp_ranges),
        "",
        "/* ftfy's CHARMAP_ENCODINGS in its order; decode tables byte -> code point. */",
        "#define TI_FTFY_N_CHARMAPS %d" % len(maps),
        "extern const char *const ti_ftfy_charmap_names[TI_FTFY_N_CHARMAPS];",
        "extern const uint32_t ti_ftfy_charmaps[TI_FTFY_N_CHARMAPS][256];",
        "/* Python's strict windows-1252 decoder (0xFFFFFFFF = undefined byte). */",
        "extern const uint32_t ti_ftfy_windows1252[256];",
        "extern const struct ti_umap ti_ftfy_width_map[%d];" % len(widths),
        "extern const struct ti_umap ti_ftfy_ligatures[%d];" % len(ligs),
        "extern const uint32_t ti_ftfy_control_chars[%d];" % len(ctrls),
        "",
        "#endif /* TI_UNICODE_TABLES_H */",
    ]

    def umap_items(entries):
        items = []
        for cp, to in entries:
            assert len(to) <= 4
            items.append("{0x%X, %d, {%s}}" % (cp, len(to), ", ".join("0x%X" % x for x in to)))
        return items

    body = [
        "/*",
        " * unicode_tables.c - GENERATED by scripts/gen_unicode_tables.py; do not edit.",
        " * " + versions + ".",
        " *",
        " * Sources: CLIP classes from the regex module (IGNORECASE, as HF CLIPTokenizer's pattern);",
        " * lower-casing from str.lower(); NFC/NFD data from unicodedata; BERT classes from",
        " * unicodedata categories with %d KEEP / %d STRIP / %d punctuation overrides measured"
        % (n_keep, n_strip, n_punct),
        " * from tokenizers' BertNormalizer / BertPreTokenizer (older Unicode inside the Rust",
        " * crates); HTML entities from html.entities.html5 (ftfy's HTML_ENTITIES); ftfy's codecs,",
        " * character classes, width map, ligatures and control characters from ftfy.chardata.",
        " */",
        '#include "unicode_tables.h"',
        "",
    ]
    emit_array(body, "const uint16_t ti_uprop_stage1[%d]" % len(stage1), [str(x) for x in stage1], 16)
    emit_array(body, "const uint16_t ti_uprop_stage2[%d]" % len(stage2), [str(x) for x in stage2], 16)
    emit_array(
        body,
        "const struct ti_uprop ti_uprop_records[%d]" % len(records),
        ["{0x%X, 0x%X, %d}" % r for r in records],
        4,
    )
    emit_array(body, "const struct ti_umap ti_unicode_lower_map[%d]" % len(lowers), umap_items(lowers), 3)
    emit_array(body, "const struct ti_umap ti_unicode_decomp_map[%d]" % len(decomp), umap_items(decomp), 3)
    emit_array(
        body,
        "const struct ti_ucomp ti_unicode_comp_map[%d]" % len(comp),
        ["{0x%XULL, 0x%X}" % ((a << 21) | b, c) for a, b, c in comp],
        4,
    )
    emit_array(body, "const struct ti_ufold ti_unicode_ci_fold[%d]" % len(fold),
               ["{0x%X, 0x%X}" % x for x in fold], 6)
    emit_array(
        body,
        "const struct ti_uentity ti_html_entities[%d]" % len(entities),
        ["{%s, %s}" % (c_str(k), c_str(v)) for k, v in entities],
        3,
    )
    emit_array(
        body,
        "const struct ti_ucharref ti_html_invalid_charrefs[%d]" % len(inv_charrefs),
        ["{0x%X, 0x%X}" % (k, ord(v)) for k, v in inv_charrefs],
        6,
    )
    emit_array(
        body,
        "const struct ti_urange ti_html_invalid_codepoints[%d]" % len(inv_cp_ranges),
        ["{0x%X, 0x%X}" % r for r in inv_cp_ranges],
        6,
    )
    body.append("const char *const ti_ftfy_charmap_names[TI_FTFY_N_CHARMAPS] = {")
    body.append("    " + ", ".join('"%s"' % e for e, _ in maps) + ",")
    body.append("};")
    body.append("const uint32_t ti_ftfy_charmaps[TI_FTFY_N_CHARMAPS][256] = {")
    for enc, dec in maps:
        body.append("    /* %s */ {" % enc)
        for i in range(0, 256, 12):
            body.append("        " + ", ".join("0x%X" % x for x in dec[i : i + 12]) + ",")
        body.append("    },")
    body.append("};")
    emit_array(body, "const uint32_t ti_ftfy_windows1252[256]", ["0x%X" % x for x in w1252], 12)
    emit_array(body, "const struct ti_umap ti_ftfy_width_map[%d]" % len(widths), umap_items(widths), 3)
    emit_array(body, "const struct ti_umap ti_ftfy_ligatures[%d]" % len(ligs), umap_items(ligs), 3)
    emit_array(body, "const uint32_t ti_ftfy_control_chars[%d]" % len(ctrls), ["0x%X" % x for x in ctrls], 12)

    with open(OUT_H, "w", encoding="utf-8") as f:
        f.write("\n".join(header) + "\n")
    with open(OUT_C, "w", encoding="utf-8") as f:
        f.write("\n".join(body) + "\n")
    cf = shutil.which("clang-format")
    if cf:
        subprocess.run([cf, "-i", OUT_C, OUT_H], check=True, cwd=ROOT)
    print("wrote %s (%d records, %d blocks, %d lower, %d decomp, %d comp, %d entities); "
          "BERT overrides: %d keep, %d strip, %d punctuation"
          % (os.path.relpath(OUT_C, ROOT), len(records), len(stage2) // BLOCK, len(lowers),
             len(decomp), len(comp), len(entities), n_keep, n_strip, n_punct))


if __name__ == "__main__":
    main()
