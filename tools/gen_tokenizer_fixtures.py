#!/usr/bin/env python3
"""Writes the Qwen2.5 tokenizer fixtures (tests/data/tokenizer/) with Hugging Face `tokenizers`.

How to run (from the repository root; CPU only, a few seconds):

    tools/.venv/bin/python tools/gen_tokenizer_fixtures.py

    (any venv with `tokenizers` as pinned in tools/requirements.txt.)

The tokenizer is the vendored one, data/qwen2.5-tokenizer/tokenizer.json.gz (data/NOTICE.md).
Every id is `Tokenizer.encode(text, add_special_tokens=False).ids`.

Files written (docs/tokenizer.md, "Fixtures"):
  cases.bin.gz   gzip of: magic b"RLTOKFX1", u32 case count, then per case
                   u32 name length, name (UTF-8), u32 text length, text (raw bytes, may be
                   invalid UTF-8), u32 id count, ids (u32 little-endian).
                 Text that is not valid UTF-8 is encoded as Python sees
                 `text.decode("utf-8", errors="replace")` (each maximal invalid subsequence
                 becomes U+FFFD): the policy radlads states in storage/qwen2_tokenizer.h.
  austen.json    per novel in data/austen/: uncompressed byte count, token count, FNV-1a 64 of
                 the ids (each id as 4 little-endian bytes) and the first 1,000 ids.

Determinism: the random cases come from random.Random(20240613); rerunning with the same
`tokenizers` version reproduces both files byte for byte (gzip mtime is 0).
"""

import gzip
import json
import os
import random
import struct

import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data", "tokenizer")
AUSTEN = ["emma", "mansfield_park", "northanger_abbey", "persuasion", "pride_and_prejudice",
          "sense_and_sensibility"]


def load_tokenizer():
    with gzip.open(os.path.join(ROOT, "data", "qwen2.5-tokenizer", "tokenizer.json.gz"), "rb") as f:
        return tokenizers.Tokenizer.from_str(f.read().decode("utf-8"))


def fnv1a64(ids):
    h = 0xcbf29ce484222325
    for b in struct.pack("<%dI" % len(ids), *ids):
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


NFD_E = "e\u0301"
FIXED_CASES = [
    ("empty", ""),
    ("ascii_sentence", "Hello, world! It's a truth universally acknowledged."),
    ("contractions", "I'm you're we've they'll she'd it's DON'T I'M YOU'RE 'S 's 'x '' '"),
    ("contraction_long_s", "it\u017f and IT'\u017f 'K \u212a"),
    ("digits", "1234567890 3.14159 1,000,000 2024-06-13 \u0661\u0662\u0663 \u2163 \u00bd"),
    ("whitespace_runs", "a  b   c    d\t\te\t \tf \n\ng\n\n\nh \n \n i\r\n\r\nj   \n"),
    ("trailing_spaces", "line with trailing spaces   \nnext line\t\t\n   "),
    ("only_spaces", "     "),
    ("only_newlines", "\n\n\n\n"),
    ("crlf", "a\r\nb\r\n\r\nc\rd\r"),
    ("unicode_spaces", "a\u00a0b\u3000c\u2003d\u2028e\u2029f\u0085g\u000bh\u000ci \u200b j"),
    ("source_code_cpp",
     "#include <vector>\n\nint main(int argc, char** argv) {\n\tstd::vector<int> v{1, 2, 3};\n"
     "    for (auto x : v) { if (x % 2 == 0) return x; }  // comment\n\treturn 0;\n}\n"),
    ("source_code_python",
     "def f(x):\n    '''doc'''\n    if x:\n        return [i**2 for i in range(10)]\n\n\n"
     "class A:\n\tpass\n    \n"),
    ("json_text", '{"a": [1, 2.5e-3, null, true], "b": "x\\ny", "c": {}}'),
    ("punctuation_runs", "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) ''' \"\"\"\n!!!\n\n"),
    ("cjk", "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002\u6211\u4eec\u53bb\u516c\u56ed\u5427\uff01"
            "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8."),
    ("arabic", "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! "
               "\u0647\u0630\u0627 \u0646\u0635 \u0639\u0631\u0628\u064a\u064c \u0661\u0662."),
    ("hebrew_thai_hindi", "\u05e9\u05dc\u05d5\u05dd \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 "
                          "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e"),
    ("cyrillic_greek", "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! "
                       "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5"),
    ("emoji", "I \u2764\ufe0f it \U0001F600\U0001F600 \U0001F44D\U0001F3FD ok \U0001F1EB\U0001F1F7"),
    ("emoji_zwj", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 family "
                  "\U0001F3F3\ufe0f\u200d\U0001F308 \U0001F9D1\U0001F3FF\u200d\U0001F4BB"),
    ("combining_marks", "a\u0301\u0302\u0303 o\u0308 Z\u0351\u0352\u0357\u035b ZA\u0336LGO"),
    ("nfc_composed", "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m \uac00"),
    ("nfd_decomposed", "caf" + NFD_E + " nai\u0308ve A\u030angstro\u0308m \u1100\u1161"),
    ("nfc_singletons", "\u212b \u2126 \u212a \u0344 \u0958 \uf900"),
    ("special_tokens", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi"
                       "<|im_end|>\n<|endoftext|>"),
    ("special_tokens_adjacent", "a<|endoftext|><|endoftext|>b <|endoftext|> c\n<|endoftext|>\n"),
    ("special_tokens_partial", "<|endoftext| <|im_start <|im_end|> <tool_call></tool_call> "
                               "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|>z<|file_sep|>"),
    ("special_token_nfd_around", NFD_E + "<|endoftext|>\u0301 x"),
    ("long_word", "a" * 300 + " " + "ab" * 200 + " " + "\u4e00" * 100),
    ("long_number", "9" * 100),
    ("long_spaces", " " * 200 + "x" + "\n" * 50 + "y" + "\t" * 30),
    ("mixed_scripts", "abc\u4e2d\u6587def123\u0661\u0662ghi \u00e9\u00e8 x\u00b2 \u00bd"),
    ("control_chars", "a\x00b\x01c\x1fd\x7fe\u200ef\ufefff"),
    ("private_use_and_max", "\ue000\U000F0000\U0010FFFD \ufffd \uffff"),
]

INVALID_CASES = [
    ("invalid_lone_continuation", b"abc\x80def"),
    ("invalid_lead_bytes", b"\xc0\xc1\xf5\xff x"),
    ("invalid_truncated_2", b"x\xc3"),
    ("invalid_truncated_3", b"x\xe2\x82 y\xe2"),
    ("invalid_truncated_4", b"\xf0\x9f\x98 z \xf0\x9f"),
    ("invalid_overlong", b"\xe0\x80\xaf \xf0\x80\x80\xaf"),
    ("invalid_surrogate", b"\xed\xa0\x80\xed\xbf\xbf ok"),
    ("invalid_above_max", b"\xf4\x90\x80\x80 \xf8\x88\x80\x80\x80"),
    ("invalid_mixed", "caf\u00e9 ".encode() + b"\xe9t\xe9 " + "\U0001F600".encode()[:2] +
     " <|endoftext|>".encode() + b"\xff"),
    ("invalid_in_special", b"<|endo\x80ftext|><|endoftext|>"),
]

POOL = (list("abcdefxyzABCXYZ") + list("0123456789") + [" "] * 8 + ["\n"] * 4 + ["\r", "\t"] +
        list("'.,!?-_()[]{}<>|/\\\"#@$%^&*+=~`") + ["'s", "'T", "'re", "'LL", "'d", "'m", "'ve"] +
        ["\u00a0", "\u3000", "\u2028", "\u0085", "\u000b", "\u200b", "\u017f", "\u212a"] +
        ["\u00e9", "e\u0301", "\u0301", "\u0308", "\u4e00", "\u4e8c", "\u3042", "\uac00",
         "\u1100", "\u1161", "\u0627", "\u0661", "\u0663", "\u2163", "\u00bd", "\u00b2",
         "\U0001F600", "\u200d", "\ufe0f", "\U0001F3FD", "\U0001F468", "\u0394", "\u03b4",
         "\u0416", "\u05d0", "\u0e01", "\u0e31", "\u0928", "\u094d", "\u2019", "\u201c"] +
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|endoftext|"])


def random_cases(rng, n):
    out = []
    for i in range(n):
        length = rng.randrange(0, 40)
        out.append(("random_%03d" % i, "".join(rng.choice(POOL) for _ in range(length))))
    return out


def main():
    tok = load_tokenizer()
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = random.Random(20240613)
    cases = [(n, t.encode("utf-8")) for n, t in FIXED_CASES + random_cases(rng, 600)]
    cases += INVALID_CASES
    blob = bytearray(b"RLTOKFX1")
    blob += struct.pack("<I", len(cases))
    for name, raw in cases:
        text = raw.decode("utf-8", errors="replace")
        ids = tok.encode(text, add_special_tokens=False).ids
        nb = name.encode("utf-8")
        blob += struct.pack("<I", len(nb)) + nb
        blob += struct.pack("<I", len(raw)) + raw
        blob += struct.pack("<I", len(ids)) + struct.pack("<%dI" % len(ids), *ids)
    with open(os.path.join(OUT_DIR, "cases.bin.gz"), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=9) as g:
            g.write(bytes(blob))

    novels = []
    for name in AUSTEN:
        with gzip.open(os.path.join(ROOT, "data", "austen", name + ".txt.gz"), "rb") as f:
            raw = f.read()
        ids = tok.encode(raw.decode("utf-8", errors="replace"), add_special_tokens=False).ids
        novels.append({"file": "data/austen/%s.txt.gz" % name, "bytes": len(raw),
                       "token_count": len(ids), "fnv1a64": "%016x" % fnv1a64(ids),
                       "head_ids": ids[:1000]})
    doc = {"generator": "tools/gen_tokenizer_fixtures.py", "tokenizers": tokenizers.__version__,
           "tokenizer": "data/qwen2.5-tokenizer/tokenizer.json.gz", "novels": novels}
    with open(os.path.join(OUT_DIR, "austen.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %d cases and %d novels to %s" % (len(cases), len(novels), OUT_DIR))


if __name__ == "__main__":
    main()
