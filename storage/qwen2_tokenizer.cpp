#include "storage/qwen2_tokenizer.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/gzip.h"
#include "storage/byte_tokenizer.h"
#include "storage/json_fields.h"
#include "storage/qwen2_pretokenizer.h"
#include "storage/unicode_text.h"

namespace radlads {
namespace {

using nlohmann::json;

// Builds "<source>: <field>: <what>" errors.
class Errors {
 public:
  explicit Errors(std::string_view source) : source_(source) {}
  Status Bad(std::string_view field, std::string_view what) const {
    return Status::InvalidArgument(source_ + ": " + std::string(field) + ": " + std::string(what));
  }
  Status Expected(std::string_view field, std::string_view what, const json& got) const {
    std::string g = got.dump(-1, ' ', false, json::error_handler_t::replace);
    if (g.size() > 80) g = g.substr(0, 77) + "...";
    return Bad(field, "expected " + std::string(what) + ", got " + g);
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

std::string Quoted(std::string_view s) {
  std::string q = json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
  if (q.size() > 60) q = q.substr(0, 57) + "...\"";
  return q;
}

const json* Field(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// A bool field that must have `want` when present.
Status RequireBool(const Errors& e, const json& obj, std::string_view path, std::string_view key,
                   bool want) {
  const json* v = Field(obj, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean() || v->get<bool>() != want) {
    return e.Expected(std::string(path) + "." + std::string(key), want ? "true" : "false", *v);
  }
  return Status::Ok();
}

std::string TypeOf(const json& obj) {
  const json* t = Field(obj, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : std::string();
}

// The reverse of GPT-2's bytes_to_unicode: code point -> byte, -1 for other code points.
const std::vector<int>& ByteOfCodePoint() {
  static const std::vector<int> table = [] {
    std::vector<int> t(0x144, -1);
    for (int b = 0; b < 256; ++b) {
      char32_t cp;
      const std::string sym = ByteSymbol(static_cast<std::uint8_t>(b));
      DecodeUtf8(reinterpret_cast<const unsigned char*>(sym.data()), &cp);
      t[cp] = b;
    }
    return t;
  }();
  return table;
}

// Hugging Face's ByteLevel decoder for one token: its characters' bytes when all are in the
// byte alphabet, else the token's own UTF-8.
std::string ByteLevelDecode(std::string_view token) {
  if (!IsValidUtf8(token)) return std::string(token);
  const std::vector<int>& table = ByteOfCodePoint();
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(token.data());
  for (std::size_t i = 0; i < token.size();) {
    char32_t cp;
    i += static_cast<std::size_t>(DecodeUtf8(p + i, &cp));
    if (cp >= table.size() || table[cp] < 0) return std::string(token);
    out.push_back(static_cast<char>(table[cp]));
  }
  return out;
}

Status CheckNormalizer(const Errors& e, const json& j, bool* nfc) {
  *nfc = false;
  const json* n = Field(j, "normalizer");
  if (n == nullptr) return Status::Ok();
  if (n->is_object() && TypeOf(*n) == "NFC") { *nfc = true; return Status::Ok(); }
  return e.Expected("normalizer", "null or {\"type\": \"NFC\"}", *n);
}

Status CheckByteLevel(const Errors& e, const json& bl, const std::string& path) {
  RADLADS_RETURN_IF_ERROR(RequireBool(e, bl, path, "add_prefix_space", false));
  const json* r = Field(bl, "use_regex");
  if (r == nullptr || !r->is_boolean() || r->get<bool>()) {
    return e.Expected(path + ".use_regex", "false (GPT-2's own regex is not supported)",
                      r == nullptr ? json() : *r);
  }
  return Status::Ok();
}

Status CheckPreTokenizer(const Errors& e, const json& j, bool* split) {
  const json* p = Field(j, "pre_tokenizer");
  const std::string kWant = "the Qwen2 Sequence [Split, ByteLevel] or a lone ByteLevel";
  if (p == nullptr || !p->is_object()) return e.Expected("pre_tokenizer", kWant, p ? *p : json());
  const std::string type = TypeOf(*p);
  if (type == "ByteLevel") {
    *split = false;
    return CheckByteLevel(e, *p, "pre_tokenizer");
  }
  const json* seq = Field(*p, "pretokenizers");
  if (type != "Sequence" || seq == nullptr || !seq->is_array() || seq->size() != 2 ||
      !(*seq)[0].is_object() || !(*seq)[1].is_object()) {
    return e.Expected("pre_tokenizer", kWant, *p);
  }
  const json& sp = (*seq)[0];
  if (TypeOf(sp) != "Split") return e.Expected("pre_tokenizer.pretokenizers[0].type", "\"Split\"", sp);
  const json* pat = Field(sp, "pattern");
  const json* re = pat != nullptr && pat->is_object() ? Field(*pat, "Regex") : nullptr;
  if (re == nullptr || !re->is_string() || re->get<std::string>() != kQwen2SplitRegex) {
    return e.Expected("pre_tokenizer.pretokenizers[0].pattern.Regex", "Qwen2's split regex",
                      pat ? *pat : json());
  }
  const json* beh = Field(sp, "behavior");
  if (beh == nullptr || !beh->is_string() || beh->get<std::string>() != "Isolated") {
    return e.Expected("pre_tokenizer.pretokenizers[0].behavior", "\"Isolated\"", beh ? *beh : json());
  }
  RADLADS_RETURN_IF_ERROR(RequireBool(e, sp, "pre_tokenizer.pretokenizers[0]", "invert", false));
  const json& bl = (*seq)[1];
  if (TypeOf(bl) != "ByteLevel") {
    return e.Expected("pre_tokenizer.pretokenizers[1].type", "\"ByteLevel\"", bl);
  }
  *split = true;
  return CheckByteLevel(e, bl, "pre_tokenizer.pretokenizers[1]");
}

Status CheckModelOptions(const Errors& e, const json& m) {
  if (TypeOf(m) != "BPE" && Field(m, "type") != nullptr) {
    return e.Expected("model.type", "\"BPE\"", *Field(m, "type"));
  }
  if (const json* d = Field(m, "dropout"); d != nullptr) {
    return e.Expected("model.dropout", "null (BPE dropout is not supported)", *d);
  }
  RADLADS_RETURN_IF_ERROR(RequireBool(e, m, "model", "byte_fallback", false));
  RADLADS_RETURN_IF_ERROR(RequireBool(e, m, "model", "ignore_merges", false));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = Field(m, key);
    if (v != nullptr && !(v->is_string() && v->get<std::string>().empty())) {
      return e.Expected(std::string("model.") + key, "null or \"\"", *v);
    }
  }
  return Status::Ok();
}

}  // namespace

void AddedTokenMatcher::Add(std::string_view content, std::uint32_t token_index) {
  std::size_t node = 0;
  for (char c : content) {
    const auto b = static_cast<unsigned char>(c);
    if (nodes_[node].child[b] < 0) {
      nodes_[node].child[b] = static_cast<std::int32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    node = static_cast<std::size_t>(nodes_[node].child[b]);
  }
  nodes_[node].token = static_cast<std::int32_t>(token_index);
}

std::size_t AddedTokenMatcher::LongestAt(std::string_view text, std::size_t i,
                                         std::uint32_t* token_index) const {
  std::size_t node = 0, best = 0;
  for (std::size_t k = i; k < text.size(); ++k) {
    const std::int32_t c = nodes_[node].child[static_cast<unsigned char>(text[k])];
    if (c < 0) break;
    node = static_cast<std::size_t>(c);
    if (nodes_[node].token >= 0) {
      best = k + 1 - i;
      *token_index = static_cast<std::uint32_t>(nodes_[node].token);
    }
  }
  return best;
}

Result<Qwen2Tokenizer> Qwen2Tokenizer::Load(const std::string& model_dir) {
  std::string path = JoinPath(model_dir, "tokenizer.json");
  if (!PathExists(path) && PathExists(path + ".gz")) path += ".gz";
  if (!PathExists(path)) {
    return Status::NotFound(model_dir + ": no tokenizer.json (nor tokenizer.json.gz)");
  }
  RADLADS_ASSIGN_OR_RETURN(std::string text, ReadMaybeGzipFile(path));
  const std::string config_path = JoinPath(model_dir, "tokenizer_config.json");
  std::string config;
  if (PathExists(config_path)) {
    RADLADS_ASSIGN_OR_RETURN(config, ReadMaybeGzipFile(config_path));
    if (config.empty()) return Status::InvalidArgument(config_path + ": empty file");
  }
  return Parse(text, path, config, config_path);
}

Result<Qwen2Tokenizer> Qwen2Tokenizer::Parse(std::string_view tokenizer_json,
                                             std::string_view source,
                                             std::string_view config_json,
                                             std::string_view config_source) {
  const Errors e(source);
  RADLADS_ASSIGN_OR_RETURN(json j, ParseJsonObject(tokenizer_json, source));
  Qwen2Tokenizer t;
  RADLADS_RETURN_IF_ERROR(CheckNormalizer(e, j, &t.nfc_));
  RADLADS_RETURN_IF_ERROR(CheckPreTokenizer(e, j, &t.split_));
  if (const json* d = Field(j, "decoder"); d != nullptr && !(d->is_object() && TypeOf(*d) == "ByteLevel")) {
    return e.Expected("decoder", "null or {\"type\": \"ByteLevel\"}", *d);
  }
  const json* model = Field(j, "model");
  if (model == nullptr || !model->is_object()) {
    return e.Expected("model", "an object", model ? *model : json());
  }
  RADLADS_RETURN_IF_ERROR(CheckModelOptions(e, *model));

  // model.vocab: symbol -> id, ids exactly 0..N-1.
  const json* vocab = Field(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object() || vocab->empty()) {
    return e.Expected("model.vocab", "a non-empty object of token -> id", vocab ? *vocab : json());
  }
  const std::size_t n = vocab->size();
  if (n >= (1u << 31)) return e.Bad("model.vocab", "too many tokens");
  std::vector<std::string> symbols(n);
  std::vector<std::uint8_t> seen(n, 0);
  t.vocab_.reserve(n);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
        static_cast<std::uint64_t>(v.get<std::int64_t>()) >= n) {
      return e.Expected("model.vocab[" + Quoted(it.key()) + "]",
                        "an integer id in [0, " + std::to_string(n) + ") (ids must be 0..N-1)", v);
    }
    const auto id = static_cast<std::uint32_t>(v.get<std::int64_t>());
    if (seen[id]) {
      return e.Bad("model.vocab[" + Quoted(it.key()) + "]",
                   "id " + std::to_string(id) + " is also the id of " + Quoted(symbols[id]));
    }
    seen[id] = 1;
    symbols[id] = it.key();
    t.vocab_.emplace(it.key(), id);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string sym = ByteSymbol(static_cast<std::uint8_t>(b));
    auto it = t.vocab_.find(sym);
    if (it == t.vocab_.end()) {
      return e.Bad("model.vocab", "the byte symbol " + Quoted(sym) + " (byte " + std::to_string(b) +
                                      ") is missing; a byte-level BPE needs all 256");
    }
    t.byte_ids_[static_cast<std::size_t>(b)] = it->second;
  }

  // model.merges: "left right" strings or [left, right] pairs, in rank order.
  const json* merges = Field(*model, "merges");
  if (merges == nullptr || !merges->is_array()) {
    return e.Expected("model.merges", "a list of merges", merges ? *merges : json());
  }
  t.merges_ = BpeMerges(merges->size());
  std::uint32_t rank = 0;
  for (const json& m : *merges) {
    const std::string field = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const std::size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return e.Expected(field, "\"left right\" (two tokens, one space)", m);
      }
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return e.Expected(field, "\"left right\" or [\"left\", \"right\"]", m);
    }
    auto find = [&](const std::string& tok) -> Result<std::uint32_t> {
      auto it = t.vocab_.find(tok);
      if (it == t.vocab_.end()) {
        return e.Bad(field, "token " + Quoted(tok) + " is not in model.vocab");
      }
      return it->second;
    };
    RADLADS_ASSIGN_OR_RETURN(std::uint32_t l, find(left));
    RADLADS_ASSIGN_OR_RETURN(std::uint32_t r, find(right));
    RADLADS_ASSIGN_OR_RETURN(std::uint32_t merged, find(left + right));
    if (!t.merges_.Insert(l, r, {rank, merged})) {
      return e.Bad(field, Quoted(left + " " + right) + " repeats an earlier merge");
    }
    ++rank;
  }

  // added_tokens.
  std::uint32_t max_id = static_cast<std::uint32_t>(n - 1);
  if (const json* added = Field(j, "added_tokens"); added != nullptr) {
    if (!added->is_array()) return e.Expected("added_tokens", "a list", *added);
    for (std::size_t k = 0; k < added->size(); ++k) {
      const std::string field = "added_tokens[" + std::to_string(k) + "]";
      const json& a = (*added)[k];
      if (!a.is_object()) return e.Expected(field, "an object", a);
      Qwen2AddedToken tok;
      const json* id = Field(a, "id");
      if (id == nullptr || !id->is_number_integer() || id->get<std::int64_t>() < 0 ||
          id->get<std::int64_t>() >= (std::int64_t{1} << 31)) {
        return e.Expected(field + ".id", "an integer in [0, 2^31)", id ? *id : json());
      }
      tok.id = static_cast<std::uint32_t>(id->get<std::int64_t>());
      const json* content = Field(a, "content");
      if (content == nullptr || !content->is_string() || content->get<std::string>().empty()) {
        return e.Expected(field + ".content", "a non-empty string", content ? *content : json());
      }
      tok.content = content->get<std::string>();
      if (!IsValidUtf8(tok.content)) return e.Bad(field + ".content", "is not valid UTF-8");
      tok.special = false;
      JsonFields f(a, e.source() + ": " + field);
      RADLADS_RETURN_IF_ERROR(f.Bool("special", &tok.special));
      tok.normalized = !tok.special;
      RADLADS_RETURN_IF_ERROR(f.Bool("single_word", &tok.single_word));
      RADLADS_RETURN_IF_ERROR(f.Bool("lstrip", &tok.lstrip));
      RADLADS_RETURN_IF_ERROR(f.Bool("rstrip", &tok.rstrip));
      RADLADS_RETURN_IF_ERROR(f.Bool("normalized", &tok.normalized));
      if (auto it = t.vocab_.find(tok.content); it != t.vocab_.end() && it->second != tok.id) {
        return e.Bad(field + ".id", std::to_string(tok.id) + " differs from model.vocab's id " +
                                        std::to_string(it->second) + " of the same token");
      }
      if (tok.id < n && symbols[tok.id] != tok.content) {
        return e.Bad(field + ".id", std::to_string(tok.id) + " is model.vocab's id of " +
                                        Quoted(symbols[tok.id]));
      }
      for (const Qwen2AddedToken& o : t.added_) {
        if (o.id == tok.id) return e.Bad(field + ".id", std::to_string(tok.id) + " repeats an earlier added token's id");
        if (o.content == tok.content) return e.Bad(field + ".content", Quoted(tok.content) + " repeats an earlier added token");
      }
      max_id = std::max(max_id, tok.id);
      t.added_.push_back(std::move(tok));
    }
  }
  if (max_id >= n + (1u << 20)) {
    return e.Bad("added_tokens", "id " + std::to_string(max_id) +
                                     " leaves more than 2^20 unused ids after model.vocab");
  }

  // Decoding table.
  t.decoded_.assign(static_cast<std::size_t>(max_id) + 1, std::string());
  t.defined_.assign(static_cast<std::size_t>(max_id) + 1, 0);
  for (std::size_t id = 0; id < n; ++id) {
    t.decoded_[id] = ByteLevelDecode(symbols[id]);
    t.defined_[id] = 1;
  }
  for (std::size_t k = 0; k < t.added_.size(); ++k) {
    const Qwen2AddedToken& a = t.added_[k];
    t.decoded_[a.id] = ByteLevelDecode(a.content);
    t.defined_[a.id] = 1;
    if (a.normalized) {
      t.normalized_matcher_.Add(t.nfc_ ? NfcNormalize(a.content) : a.content,
                                static_cast<std::uint32_t>(k));
    } else {
      t.raw_matcher_.Add(a.content, static_cast<std::uint32_t>(k));
    }
  }

  // tokenizer_config.json: eos_token.
  if (!config_json.empty()) {
    const Errors ce(config_source);
    RADLADS_ASSIGN_OR_RETURN(json c, ParseJsonObject(config_json, config_source));
    if (const json* eos = Field(c, "eos_token"); eos != nullptr) {
      const json* content = eos;
      if (eos->is_object()) content = Field(*eos, "content");
      if (content == nullptr || !content->is_string()) {
        return ce.Expected("eos_token", "a string or {\"content\": string}", *eos);
      }
      const std::optional<std::uint32_t> id = t.TokenId(content->get<std::string>());
      if (!id) return ce.Bad("eos_token", Quoted(content->get<std::string>()) + " is not a token of " + e.source());
      t.eos_id_ = id;
    }
  }
  if (t.TokenId("<|endoftext|>")) {
    RADLADS_RETURN_IF_ERROR(t.SetEndOfText("<|endoftext|>"));
  } else if (t.eos_id_) {
    t.end_of_text_id_ = *t.eos_id_;
    for (const Qwen2AddedToken& a : t.added_) {
      if (a.id == *t.eos_id_) t.end_of_text_token_ = a.content;
    }
    if (t.end_of_text_token_.empty()) t.end_of_text_token_ = symbols[*t.eos_id_];
  }
  return t;
}

std::optional<std::uint32_t> Qwen2Tokenizer::TokenId(std::string_view token) const {
  for (const Qwen2AddedToken& a : added_) {
    if (a.content == token) return a.id;
  }
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

Status Qwen2Tokenizer::SetEndOfText(std::string_view token) {
  const std::optional<std::uint32_t> id = TokenId(token);
  if (!id) return Status::InvalidArgument("end of text " + Quoted(token) + ": not a token of this tokenizer");
  end_of_text_id_ = *id;
  end_of_text_token_ = std::string(token);
  return Status::Ok();
}

std::vector<std::uint32_t> Qwen2Tokenizer::Encode(std::string_view text) const {
  std::vector<std::uint32_t> ids;
  Qwen2Encoder(*this).Encode(text, &ids);
  return ids;
}

Result<std::string> Qwen2Tokenizer::Decode(std::span<const std::uint32_t> ids) const {
  std::string out;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const std::uint32_t id = ids[k];
    if (id >= decoded_.size() || !defined_[id]) {
      return Status::InvalidArgument("decode: ids[" + std::to_string(k) + "] = " +
                                     std::to_string(id) + " is not a token (vocabulary size " +
                                     std::to_string(decoded_.size()) + ")");
    }
    out += decoded_[id];
  }
  return out;
}

namespace {

// Start of the code point that ends at text[end) (end > 0).
std::size_t PrevCodePointStart(std::string_view text, std::size_t end) {
  std::size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

char32_t CodePointAt(std::string_view text, std::size_t i, int* len) {
  char32_t cp;
  *len = DecodeUtf8(reinterpret_cast<const unsigned char*>(text.data()) + i, &cp);
  return cp;
}

bool IsWhiteSpace(char32_t cp) {
  const CharClass c = ClassifyCodePoint(cp);
  return c == CharClass::kSpace || c == CharClass::kNewline;
}

}  // namespace

void Qwen2Encoder::Encode(std::string_view text, std::vector<std::uint32_t>* out) {
  if (IsValidUtf8(text)) {
    EncodeAddedSplit(text, tok_->raw_matcher_, true, out);
  } else {
    const std::string clean = ReplaceInvalidUtf8(text);
    EncodeAddedSplit(clean, tok_->raw_matcher_, true, out);
  }
}

// Hugging Face's AddedVocabulary::find_matches: leftmost-longest matches, scanning on after the
// end of each match (also one that single_word rejects). `normalize`: this is the raw text, so
// plain pieces are normalised and searched again for normalized=true tokens.
void Qwen2Encoder::EncodeAddedSplit(std::string_view text, const AddedTokenMatcher& matcher,
                                    bool normalize, std::vector<std::uint32_t>* out) {
  auto plain = [&](std::string_view piece) {
    if (piece.empty()) return;
    if (!normalize) return EncodeWords(piece, out);
    const AddedTokenMatcher& next = tok_->normalized_matcher_;
    if (!tok_->nfc_ || IsBelowU0300(piece)) {
      if (next.empty()) return EncodeWords(piece, out);
      return EncodeAddedSplit(piece, next, false, out);
    }
    const std::string nfc = NfcNormalize(piece);
    if (next.empty()) return EncodeWords(nfc, out);
    EncodeAddedSplit(nfc, next, false, out);
  };
  if (matcher.empty()) return plain(text);
  std::size_t start_offset = 0, i = 0;
  while (i < text.size()) {
    std::uint32_t index = 0;
    const std::size_t len = matcher.LongestAt(text, i, &index);
    if (len == 0) { ++i; continue; }
    const Qwen2AddedToken& a = tok_->added_[index];
    std::size_t start = i, stop = i + len;
    i = stop;
    int cl;
    if (a.single_word) {
      const bool word_before =
          start > 0 && IsWordCodePoint(CodePointAt(text, PrevCodePointStart(text, start), &cl));
      const bool word_after = stop < text.size() && IsWordCodePoint(CodePointAt(text, stop, &cl));
      if (word_before || word_after) continue;
    }
    if (a.lstrip) {
      std::size_t s = start;
      while (s > start_offset) {
        const std::size_t p = PrevCodePointStart(text, s);
        if (!IsWhiteSpace(CodePointAt(text, p, &cl))) break;
        s = p;
      }
      start = std::max(s, start_offset);
    }
    if (a.rstrip) {
      while (stop < text.size() && IsWhiteSpace(CodePointAt(text, stop, &cl))) {
        stop += static_cast<std::size_t>(cl);
      }
      i = stop;
    }
    plain(text.substr(start_offset, start - start_offset));
    out->push_back(a.id);
    start_offset = stop;
  }
  plain(text.substr(start_offset));
}

void Qwen2Encoder::EncodeWords(std::string_view text, std::vector<std::uint32_t>* out) {
  if (!tok_->split_) return EncodeWord(text, out);
  pieces_.clear();
  SplitQwen2Pieces(text, &pieces_);
  for (std::string_view word : pieces_) EncodeWord(word, out);
}

void Qwen2Encoder::EncodeWord(std::string_view word, std::vector<std::uint32_t>* out) {
  if (word.size() == 1) {
    out->push_back(tok_->byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  if (cache_.Find(word, out)) return;
  symbols_.clear();
  for (char c : word) symbols_.push_back(tok_->byte_ids_[static_cast<unsigned char>(c)]);
  BpeMergeWord(tok_->merges_, &symbols_);
  cache_.Insert(word, symbols_);
  out->insert(out->end(), symbols_.begin(), symbols_.end());
}

}  // namespace radlads
