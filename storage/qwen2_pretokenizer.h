// The Qwen2 pre-tokenizer split: a hand-written scanner equal to the regex in Qwen2's
// tokenizer.json (pre_tokenizer.pretokenizers[0].pattern.Regex, behaviour "Isolated"):
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
//
// At each position the first alternative that matches wins, with the regex's greedy
// backtracking resolved by hand:
//   1. an apostrophe and s, t, re, ve, m, ll or d in any case (U+017F "long s" folds to s);
//   2. one character that is not \r, \n, a letter or a number, then a run of letters; or a
//      run of letters;
//   3. a single number character;
//   4. an optional U+0020, a run of characters that are neither \s, letters nor numbers, then
//      any \r and \n;
//   5. within a run of whitespace holding \r or \n: up to and including its last \r or \n;
//   6. a run of whitespace that ends the text; otherwise the run minus its last character
//      when that leaves at least one;
//   7. the single whitespace character left.
// Classes are those of storage/unicode_text.h. tests/storage/qwen2_tokenizer_test.cpp checks the
// split, through whole encodings, against Hugging Face `tokenizers` on fixed and 600 random
// strings (tests/data/tokenizer/).
// Thread-safety: pure functions.
#pragma once

#include <string_view>
#include <vector>

namespace radlads {

// The regex string exactly as Qwen2's tokenizer.json spells it (after JSON unescaping).
extern const std::string_view kQwen2SplitRegex;

// Appends the pieces of `text` (well-formed UTF-8, already normalised) to `pieces`, in order;
// their concatenation is `text`, and none is empty.
void SplitQwen2Pieces(std::string_view text, std::vector<std::string_view>* pieces);

}  // namespace radlads
