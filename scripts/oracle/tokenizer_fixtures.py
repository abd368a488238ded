"""Writes the tokenizer fixtures from the reference tokenizers:

  tests/fixtures/tokenizer_prompts.jsonl  one prompt per line with the 77 ids of both models
  tests/fixtures/tokenizer_unicode_sweep.jsonl  all tokens (no truncation) of both models for
                                          texts that sweep the code space (see unicode_sweep)
  tests/fixtures/ftfy_cases.jsonl          ftfy.fix_text / ftfy.badness.is_bad on many strings

Usage (from the repository root, in the oracle environment of docs/DEVELOPING.md):
    /opt/oracle-venv/bin/python scripts/oracle/tokenizer_fixtures.py

References:
  * SD v1: transformers.CLIPTokenizer (the slow tokenizer; ftfy installed, so its fix_text path),
    called as SD does: truncation=True, max_length=77, padding="max_length". Its vocab.json and
    merges.txt are built offline from model/vocab/bpe_simple_vocab_16e6.txt.gz exactly as
    sd-arch.md §5.2 describes (the same construction as openai/CLIP's SimpleTokenizer); the
    construction is checked against tests/fixtures/tokenizer_testvectors.jsonl first.
  * LDM: transformers.BertTokenizerFast on model/vocab/bert-base-uncased-vocab.txt
    (do_lower_case=True, strip_accents unset = follow lower-casing), the tokenizer of the
    reference BERTEmbedder. The slow BertTokenizer is run too; prompts where it disagrees are
    counted in the summary and carry its ids in "ldm_slow" (documentation only).

Each prompt line: {"prompt": str, "sd": [77], "ldm": [77], "sd_decode": str, "ldm_decode": str,
"group": str} plus "hex" (the raw UTF-8 bytes) for prompts given as ill-formed UTF-8, where
"prompt" is bytes.decode("utf-8", "replace"), the text Python would tokenize. Decodes are
decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).
"""
import gzip
import json
import os
import random
import re
import sys
import tempfile

# This file's name shadows the `tokenizers` package that transformers imports: take the script's
# own directory off the module search path first.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import ftfy  # noqa: E402
import ftfy.badness  # noqa: E402
from transformers import BertTokenizer, BertTokenizerFast, CLIPTokenizer  # noqa: E402
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(ROOT, "model", "vocab")
FIX = os.path.join(ROOT, "tests", "fixtures")


def build_clip_files(tmp):
    """vocab.json + merges.txt for CLIPTokenizer from the openai merges file (sd-arch §5.2)."""
    with gzip.open(os.path.join(VOCAB, "bpe_simple_vocab_16e6.txt.gz")) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(dict(zip(vocab, range(len(vocab)))), f)
    with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(" ".join(m) + "\n")


def ids77(tok, text):
    return tok(text, truncation=True, max_length=77, padding="max_length")["input_ids"]


# ---- the prompts -------------------------------------------------------------------------------
SD_PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "a painting of a virus monster playing guitar",
    "A photo of a * on the beach",
    "an oil painting of <cat-toy> in the style of van gogh",
    "a photo of sks dog",
    "portrait of a woman, highly detailed, digital painting, artstation, concept art, smooth, "
    "sharp focus, illustration, art by artgerm and greg rutkowski and alphonse mucha",
    "a cute corgi wearing sunglasses, 4k, trending on artstation",
    "(masterpiece:1.2), ((best quality)), [ugly], {blurry|sharp}",
    "cyberpunk city at night, neon lights, rain, 35mm, f/1.8, bokeh",
    "A Painting,  of   a FIRE!!",
    "don't stop 1234 C++ it's ok",
    "the Eiffel Tower in the style of Studio Ghibli",
    "an elephant made of ice cream, studio lighting, 8K UHD",
    "Photo of S* as a knight in shining armor",
    "a watercolor of a fox in a snowy forest",
    "low-poly 3D render of a tree house",
    "a bowl of ramen, macro photography, f/2.8, 100mm",
    "UNREAL ENGINE 5, octane render, hyperrealistic",
    "an astronaut lounging in a tropical resort in space, vaporwave",
    "a sculpture of * in marble, museum display",
    "teddy bear on a skateboard in times square",
    "Mona Lisa by Leonardo da Vinci but she's a cat",
    "a propaganda poster of a robot uprising, 1950s style",
    "close-up of an eye with a galaxy in the iris",
    "a photo of a <dog-toy> next to a cup of coffee",
]
PUNCT = [
    "hello, world!", "what?!", "a---b", "...", "!!!???", "e-mail me @ user@example.com",
    "#hashtag @mention", "C++ & C# & F#", "50% off!!!", "a/b\\c|d", "~tilde~ `code` ^caret^",
    "(parens) [brackets] {braces} <angles>", "¡hola! ¿qué tal?", "«guillemets» ‹single›",
    "a_b_c snake_case", "x+y=z; a*b", "semi;colon:colon", "'single' \"double\"", "''", "\"",
    "—em dash– en dash‐hyphen", "…ellipsis", "•bullet·middot", "§1 ¶2 †3 ‡4", "©®™",
]
CONTRACTIONS = [
    "don't", "it's", "we'll", "I'm", "you're", "they've", "she'd", "DON'T", "It'S",
    "o'clock", "rock'n'roll", "'s", "can't won't shouldn't", "y'all", "it’s", "it‘s", "we’ll",
    "Jack's cat's toy", "the '90s", "'tis", "don''t", "'LL 'Ve 'RE 'M 'D 'T 'S",
]
DIGITS = [
    "1234567890", "2023-01-01", "3.5mm f/1.4", "1st 2nd 3rd 4th", "¹²³ x² H₂O", "½ ¼ ¾",
    "Ⅻ roman Ⅷ", "٣ ٤ arabic-indic", "１２３ fullwidth", "3.14159265358979", "0x1F600",
    "10,000,000", "99.9%", "-42", "1e-5", "π ≈ 3.14", "४२ devanagari",
]
ACCENTS = [
    "café", "naïve", "Zürich", "ñandú", "crème brûlée", "São Paulo", "Ångström", "Øresund",
    "Dvořák", "Łódź", "İstanbul", "Straße groß", "ÉCOLE FRANÇAISE", "cafe\u0301",
    "e\u0301\u0323", "a\u0328\u0301", "Ǆemal ǅ ǆ", "Þórr", "Ærøskøbing", "Ελληνικά", "ΟΔΟΣ ΣΑΣ",
    "ὈΔΥΣΣΕΎΣ", "Привет мир", "Ёлка", "Ça va? Où?", "piñata jalapeño", "résumé",
    "fiancée", "Å\u030a", "\u212b angstrom sign", "\u1e9b\u0323", "ǰ", "a\u0345",
]
CJK = [
    "猫", "一只猫在海滩上", "日本語のテキスト", "東京タワー", "한국어 텍스트", "ｶﾀｶﾅ ﾊﾝｶｸ",
    "中文，标点。", "a 猫 b", "𠀀 𪜀 𫠠 𬺰", "豈 更 車", "ひらがな カタカナ", "漢字かな交じり文",
    "안녕하세요 세계", "\u1100\u1161\u11a8", "水墨画风格的山水", "アニメ風の少女、桜の木の下",
    "⺀ ⼀ 〇", "㐀㐁", "（全角括号）", "「かぎかっこ」『二重』",
]
EMOJI = [
    "🙂", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇯🇵", "a cat 🐱 wearing a hat 🎩",
    "🫨 shaking face", "👩🏿‍🚀", "🔥🔥🔥", "☕", "✨magic✨", "😀😃😄😁", "🧑‍🎨 artist",
    "keycap 1️⃣", "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
]
HTML = [
    "&amp;", "fish &amp; chips", "&quot;quoted&quot;", "it&#39;s", "caf&eacute;", "a&nbsp;b",
    "&#x41;&#66;&#x43;", "&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b> &amp; more", "&amp;amp;",
    "&amp;lt;", "&EACUTE; &Eacute; &SZLIG;", "&notanentity;", "&#0;", "&#128; &#150;",
    "&#xD800;", "&#1114112;", "&copy; 2023 &mdash; all rights", "&hellip;", "AT&T",
    "&", "&;", "&#;", "&#x;", "&#65a;", "&#x41g;", "&amp", "&Amp;", "&AMP;", "&nbsp",
    "a &lt; b &amp; c &gt; d", "x &amp;\n< y\n&amp; z", "&#13;&#10;", "&#x1F600;",
    "&frac12; &deg; &times;", "&NotEqualTilde; &ngE;", "&abcdefghijklmnopqrstuvwxyz;",
    "&#000000000000000000065;", "&#x0000000000000000000041;",
]
QUOTES_WIDTH = [
    "“hello”", "‘world’", "„low“", "‛reversed‟", "ʼapostrophe", "ＬＯＵＤ　ＮＯＩＳＥＳ",
    "ｈｅｌｌｏ！", "Ｃａｔ ｄｏｇ", "ﬁne ﬂour ﬀ ﬃ ﬄ ﬅ ﬆ", "ŉ Ĳ ĳ", "ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ",
]
WHITESPACE = [
    "a\tb", "line1\nline2", "a\r\nb\rc", "  leading and trailing  ", "\n\n", "a\u2028b\u2029c",
    "a\u00a0b", "a\u3000b", "a\x0b\x0cb", "a\u200bb zero width", "soft\u00adhyphen", "\ufeffbom",
    "tab\t\ttabs", " ", "\t", "a\u0085b", "a\u1680b\u2007c", "a\x1cb\x1fc",
]
CONTROL = [
    "\x1b[31mred\x1b[0m", "a\x00b", "del\x7f", "\u206aarabic control", "\ufff9annot\ufffb",
    "nul\x00\x00", "\x07bell", "\x1b[1;32;40mgreen", "a\u200db", "a\u202eb",
]
SPECIAL = [
    "*", "<cat-toy>", "sks", "S*", "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b",
    "<|ENDOFTEXT|>", "<|startoftext|>a photo<|endoftext|>", "[MASK]", "a [MASK] b",
    "[CLS][SEP]", "[mask]", "x[SEP]y", "[UNK] [PAD]", "@", "א", "ש", "opossum", "leavanny",
    "sculpture", "painting", "toy", "cat", "<|startoftext|", "|endoftext|>", "it'ſ",
    "<|ſtartoftext|>", "\u212aelvin", "ſtar", "*cat*", "<>", "##s", "[MASK][MASK]",
]
MOJIBAKE = [
    "Ã©", "cafÃ©", "â€œquotedâ€\x9d", "Ã la mode", "IÃ±tÃ«rnÃ¢tiÃ´nÃ lizÃ¦tiÃ¸n",
    "ÐŸÑ€Ð¸Ð²ÐµÑ‚", "\x85", "\x93quoted\x94", "Ã\xa0", "â€™", "Ã¼ber", "sÃ³ que nÃ£o",
    "voilÃ  le travail", "â€œ like this â€�", "ã\x83\x84", "&macr;\\_(ã\x83\x84)_/&macr;",
    "âœ” No problems", "Ð¸Ð· Ñ\x80Ñ\x83Ñ\x81Ñ\x81ÐºÐ¾Ð³Ð¾", "Ãºnico", "Ã\x83Â©",
    "This â€” is mixed with “real” quotes", "ÂŁ100", "Â£100", "naÃ¯ve cafÃ©",
]
LONG = [
    " ".join(["the quick brown fox"] * 30),
    "a" * 300,
    "!" * 200,
    "1234567890" * 10,
    ", ".join("word%d" % i for i in range(90)),
    "masterpiece, best quality, " * 20 + "a photo of *",
    "超长的中文提示词" * 20,
    "🙂" * 100,
    "supercalifragilisticexpialidocious" * 4,
    "x" * 101,
    "a" * 100,
    "élan vital " * 40,
    "&amp; " * 90,
    "Ã©" * 50,
]
INVALID_UTF8 = [
    b"caf\xe9", b"\xff\xfe", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80",
    b"ok\x80ok", b"\xe2\x82\xac\xe2\x82", b"a\xf0\x9f\x98b", b"\xc3\x28", b"\xf8\x88\x80\x80\x80",
    b"trunc\xe6\x97",
]


def random_prompts(rng, n):
    pool = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n,.!?'\"-_()[]{}<>*&#;:/@%+=~|\\")
        + list("éèêëàâäôöûüçñßÆøåÉÀÖÜ")
        + list("猫犬山水日本語한국어カタカナひらがな")
        + ["🙂", "👍", "🏽", "\u200d", "❤", "\ufe0f", "🐱", "🇫", "🇷"]
        + ["\u0301", "\u0308", "\u0323", "\u0345", "\u00a0", "\u3000", "\u2028", "\u00ad"]
        + ["&amp;", "&eacute;", "&#39;", "&lt;", "'s", "'ll", "Ã©", "â€™", "\x85", "\x93"]
        + ["ΣΑΣ", "Σ", "ς", "İ", "ſ", "ﬁ", "Ａ", "１", "“", "”", "‘", "’"]
    )
    out = []
    for _ in range(n):
        k = rng.randint(1, 24)
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


def prompt_groups(rng):
    groups = [
        ("sd", SD_PROMPTS), ("punct", PUNCT), ("contraction", CONTRACTIONS), ("digit", DIGITS),
        ("accent", ACCENTS), ("cjk", CJK), ("emoji", EMOJI), ("html", HTML),
        ("quote_width", QUOTES_WIDTH), ("whitespace", WHITESPACE), ("control", CONTROL),
        ("placeholder", SPECIAL), ("mojibake", MOJIBAKE), ("long", LONG), ("empty", [""]),
        ("random", random_prompts(rng, 120)),
    ]
    return groups


# ---- ftfy cases ------------------------------------------------------------------------------
FTFY_WORDS = [
    "café", "naïve", "Zürich", "crème brûlée", "São Paulo", "Ångström", "Dvořák", "Łódź",
    "straße", "Привет мир", "Ελληνικά", "“quoted”", "it’s", "—", "…", "€100", "£5", "½",
    "日本語", "한국어", "🙂", "👍🏽", "à la mode", "àquele", "às vezes", "Ørsted", "©2023",
    "Ñandú", "¿Qué?", "Αθήνα", "Київ", "Şişli", "Ağrı", "Ýmir", "ŽŠČ", "ø", "µs", "°C", "×",
    "nɪce ɪpa", "ﬁ", "Ⅻ", "₤", "†‡", "™", "®", "\u00a0", "\u00ad",
]
FTFY_ENCODINGS = [
    "latin-1", "windows-1252", "windows-1251", "windows-1250", "windows-1253", "windows-1254",
    "windows-1257", "iso-8859-2", "macroman", "cp437", "sloppy-windows-1252",
    "sloppy-windows-1251", "sloppy-windows-1250",
]


def mojibake_cases(rng):
    out = []
    for w in FTFY_WORDS:
        for ctx in ("%s", "The word %s here", "%s!"):
            text = ctx % w
            raw = text.encode("utf-8")
            for enc in FTFY_ENCODINGS:
                try:
                    out.append(raw.decode(enc))
                except UnicodeDecodeError:
                    out.append(raw.decode(enc, errors="replace"))  # lossy: U+FFFD inside
            # double mojibake, a0 -> space, lost continuation bytes
            once = raw.decode("sloppy-windows-1252")
            out.append(once.encode("utf-8").decode("sloppy-windows-1252"))
            out.append(once.replace("\xa0", " "))
            out.append(raw.decode("windows-1252", errors="replace"))
            out.append(once + " and real " + text)
            out.append(raw.decode("utf-8").encode("utf-16-le").decode("latin-1"))
    return out


def random_ftfy(rng, n):
    cats = ftfy.badness.MOJIBAKE_CATEGORIES
    pool = set()
    for spec in cats.values():
        pat = re.compile("[" + spec + "]")
        pool.update(chr(c) for c in range(0x3000) if pat.match(chr(c)))
    pool = sorted(pool) + list("abcXYZ .,?!\n") + ["\u00c3", "\u00c2", "\u00e2\u20ac", "\u0432\u0402"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 8)
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


def unicode_sweep(rng):
    """Texts made of every code point of the script-dense ranges and a 1-in-61 sample of the
    rest (unassigned and private-use included), in "words" of 1-6 code points, so that each code
    point's class, case mapping, decomposition and BPE bytes are exercised in context."""
    cps = []
    for lo, hi in [(0x20, 0x800), (0x900, 0xE00), (0x1100, 0x1200), (0x1E00, 0x2200),
                   (0x2460, 0x2500), (0x2E80, 0x3100), (0xA700, 0xA800), (0xAC00, 0xAC40),
                   (0xF900, 0xF920), (0xFB00, 0xFB50), (0xFE00, 0xFFFE)]:
        cps += range(lo, hi)
    cps += [c for c in range(0x800, 0x110000, 61) if not 0xD800 <= c <= 0xDFFF]
    cps = sorted(set(cps))
    texts = []
    i = 0
    while i < len(cps):
        words = []
        n = 0
        while n < 160 and i < len(cps):
            k = rng.randint(1, 6)
            words.append("".join(chr(c) for c in cps[i : i + k]))
            i += k
            n += k
        texts.append(" ".join(words))
    return texts


def main():
    rng = random.Random(20240611)
    with tempfile.TemporaryDirectory() as tmp:
        build_clip_files(tmp)
        clip = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"))
        assert clip.fix_text is not None, "ftfy must be installed: the SD path uses it"
        bert_vocab = os.path.join(VOCAB, "bert-base-uncased-vocab.txt")
        bert = BertTokenizerFast(bert_vocab)
        bert_slow = BertTokenizer(bert_vocab)

        # the construction must reproduce the reference's own test vectors
        tv = os.path.join(FIX, "tokenizer_testvectors.jsonl")
        with open(tv, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                assert ids77(clip, d["prompt"]) == d["sd_clip_ids_77"], d["prompt"]
                assert ids77(bert, d["prompt"]) == d["ldm_bert_ids_77"], d["prompt"]

        n = n_slow_diff = 0
        seen = set()
        path = os.path.join(FIX, "tokenizer_prompts.jsonl")
        with open(path, "w", encoding="ascii") as f:
            items = [(g, p, None) for g, ps in prompt_groups(rng) for p in ps]
            items += [("invalid_utf8", b.decode("utf-8", "replace"), b) for b in INVALID_UTF8]
            for group, prompt, raw in items:
                key = raw if raw is not None else prompt
                if key in seen:
                    continue
                seen.add(key)
                sd = ids77(clip, prompt)
                ldm = ids77(bert, prompt)
                rec = {"group": group, "prompt": prompt}
                if raw is not None:
                    rec["hex"] = raw.hex()
                rec["sd"] = sd
                rec["ldm"] = ldm
                rec["sd_decode"] = clip.decode(sd, skip_special_tokens=True,
                                               clean_up_tokenization_spaces=False)
                rec["ldm_decode"] = bert.decode(ldm, skip_special_tokens=True,
                                                clean_up_tokenization_spaces=False)
                slow = ids77(bert_slow, prompt)
                if slow != ldm:
                    rec["ldm_slow"] = slow
                    n_slow_diff += 1
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
                n += 1
        print("wrote %s: %d prompts (%d where the slow BertTokenizer differs from the fast one)"
              % (os.path.relpath(path, ROOT), n, n_slow_diff))

        path = os.path.join(FIX, "tokenizer_unicode_sweep.jsonl")
        n = 0
        with open(path, "w", encoding="ascii") as f:
            for text in unicode_sweep(random.Random(99)):
                rec = {"text": text, "sd": clip(text, add_special_tokens=False)["input_ids"],
                       "ldm": bert(text, add_special_tokens=False)["input_ids"]}
                f.write(json.dumps(rec, ensure_ascii=True) + "\n")
                n += 1
        print("wrote %s: %d texts" % (os.path.relpath(path, ROOT), n))

        cases = []
        for g, ps in prompt_groups(random.Random(7)):
            cases += ps
        cases += mojibake_cases(rng)
        cases += random_ftfy(rng, 1500)
        path = os.path.join(FIX, "ftfy_cases.jsonl")
        seen = set()
        n = n_changed = n_bad = 0
        with open(path, "w", encoding="ascii") as f:
            for text in cases:
                if text in seen:
                    continue
                seen.add(text)
                fixed = ftfy.fix_text(text)
                bad = ftfy.badness.is_bad(text)
                f.write(json.dumps({"text": text, "fixed": fixed, "bad": bad}, ensure_ascii=True)
                        + "\n")
                n += 1
                n_changed += fixed != text
                n_bad += bad
        print("wrote %s: %d cases (%d changed by fix_text, %d is_bad)"
              % (os.path.relpath(path, ROOT), n, n_changed, n_bad))
    print("ftfy %s" % ftfy.__version__, file=sys.stderr)


if __name__ == "__main__":
    main()
