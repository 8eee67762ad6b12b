// Every reference a reader can follow must resolve inside the repository:
// - a repository path cited in code, configs or docs (`pipeline/decoder.h`, `docs/spec.md`)
//   names a file or folder that exists;
// - a section cited after a document (`docs/spec.md §3.4, §6.2`, `docs/design.md §4.1`) is a
//   heading of that document (`### 3.4 ...`, `## 4. ...`, `#### 6a. ...`), and inside a
//   document a bare `§N` names one of its own headings;
// - a `§N` in code that does not follow a document is an error: a reader cannot tell what it
//   cites;
// - nothing names a path outside the repository (a development machine's folders).
// Files scanned: every text file under the source tree except build outputs, run directories,
// virtual environments and binary test data (tests/data is scanned for its *.md only). Only the
// comments of C++, shell, YAML and CMake files are read: their code holds runtime paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kRoot = RADLADS_SOURCE_DIR;

// Top-level folders a repository path can start with: the source tree's own, and folders that
// existed once (a citation of them is stale).
std::set<std::string> TopFolders() {
  std::set<std::string> out = {"coordinator"};
  for (const auto& e : fs::directory_iterator(kRoot)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name[0] != '.' && name.rfind("build", 0) != 0 && name != "runs") out.insert(name);
  }
  return out;
}
const std::set<std::string> kTopFolders = TopFolders();

bool Skipped(const fs::path& rel) {
  const std::string first = rel.begin()->string();
  if (first.rfind("build", 0) == 0 || first == ".git" || first == "runs" || first == ".ci") return true;
  for (const auto& part : rel) {
    const std::string p = part.string();
    if (p == ".venv" || p == "__pycache__" || p == "corpus") return true;
  }
  return false;
}

bool Scanned(const fs::path& rel) {
  static const std::set<std::string> kExt = {".h", ".cpp", ".cu", ".cuh", ".md", ".yaml",
                                             ".py", ".sh", ".sbatch", ".txt", ".cmake"};
  const std::string ext = rel.extension().string();
  if (!kExt.count(ext) && rel.filename() != "CMakeLists.txt") return false;
  const std::string s = rel.generic_string();
  if (s.rfind("data/", 0) == 0) return ext == ".md";
  if (s.rfind("tests/data/", 0) == 0) return ext == ".md";
  return true;
}

std::vector<fs::path> TextFiles() {
  std::vector<fs::path> out;
  for (auto it = fs::recursive_directory_iterator(kRoot); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path rel = fs::relative(it->path(), kRoot);
    if (Skipped(rel)) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && Scanned(rel)) out.push_back(rel);
  }
  return out;
}

std::string Read(const fs::path& rel) {
  std::ifstream f(kRoot / rel, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The section numbers a markdown file defines: "3", "3.4", "6a" from headings such as
// "## 3. Title", "### 3.4 Title", "#### 6a. Title".
std::set<std::string> Sections(const std::string& text) {
  static const std::regex kHeading(R"(^#{1,6}\s+(\d+(?:\.\d+)*[a-z]?)[.\s])");
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, kHeading)) out.insert(m[1]);
  }
  return out;
}

// C and C++ source with everything but comments blanked (newlines kept, so offsets and line
// numbers stay): paths in string literals are runtime paths, not citations.
std::string CommentsOnly(const std::string& src) {
  std::string out(src.size(), ' ');
  enum { kCode, kLine, kBlock, kStr, kChar, kRaw } st = kCode;
  std::string raw_end;
  for (std::size_t i = 0; i < src.size(); ++i) {
    const char c = src[i];
    if (c == '\n') out[i] = '\n';
    switch (st) {
      case kCode:
        if (c == '/' && i + 1 < src.size() && src[i + 1] == '/') {
          st = kLine;
        } else if (c == '/' && i + 1 < src.size() && src[i + 1] == '*') {
          st = kBlock;
        } else if (c == 'R' && i + 1 < src.size() && src[i + 1] == '"' &&
                   (i == 0 || !std::isalnum(static_cast<unsigned char>(src[i - 1])))) {
          const std::size_t open = src.find('(', i + 2);
          if (open == std::string::npos) return out;
          raw_end = ")" + src.substr(i + 2, open - i - 2) + "\"";
          i = open;
          st = kRaw;
        } else if (c == '"') {
          st = kStr;
        } else if (c == '\'' && !(i > 0 && std::isalnum(static_cast<unsigned char>(src[i - 1])))) {
          st = kChar;  // not a digit separator (1'000)
        }
        break;
      case kLine:
        if (c == '\n') st = kCode; else out[i] = c;
        break;
      case kBlock:
        if (c == '*' && i + 1 < src.size() && src[i + 1] == '/') { st = kCode; ++i; } else if (c != '\n') out[i] = c;
        break;
      case kStr:
      case kChar:
        if (c == '\\') ++i;
        else if ((st == kStr && c == '"') || (st == kChar && c == '\'') || c == '\n') st = kCode;
        break;
      case kRaw:
        if (src.compare(i, raw_end.size(), raw_end) == 0) { i += raw_end.size() - 1; st = kCode; }
        break;
    }
  }
  return out;
}

// Shell, YAML and CMake text with everything but `#` comments blanked (a `#` that starts the
// line or follows whitespace): their code holds runtime and scratch paths, not citations.
std::string HashCommentsOnly(const std::string& src) {
  std::string out(src.size(), ' ');
  bool comment = false;
  for (std::size_t i = 0; i < src.size(); ++i) {
    const char c = src[i];
    if (c == '\n') {
      out[i] = '\n';
      comment = false;
      continue;
    }
    if (!comment && c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(src[i - 1])))) comment = true;
    if (comment) out[i] = c;
  }
  return out;
}

struct Problem {
  std::string where;
  std::string what;
};

class Checker {
 public:
  void CheckFile(const fs::path& rel) {
    text_ = Read(rel);
    static const std::set<std::string> kCpp = {".h", ".cpp", ".cu", ".cuh"};
    static const std::set<std::string> kHash = {".sh", ".sbatch", ".yaml", ".cmake", ".txt"};
    if (kCpp.count(rel.extension().string())) text_ = CommentsOnly(text_);
    if (kHash.count(rel.extension().string())) text_ = HashCommentsOnly(text_);
    dir_ = rel.parent_path().generic_string();
    file_ = rel.generic_string();
    line_starts_ = {0};
    for (std::size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
    }
    CheckMachinePaths();
    CheckReferences(rel.extension() == ".md");
  }
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::string Where(std::size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    return file_ + ":" + std::to_string(it - line_starts_.begin());
  }
  void Report(std::size_t offset, std::string what) { problems_.push_back({Where(offset), std::move(what)}); }

  void CheckMachinePaths() {
    static const std::regex kMachine(R"((^|[\s"'`(=])(/work/|/home/|/opt/|/root/|/mnt/|\.\./shared\b|/tmp/tmp\.))");
    for (auto it = std::sregex_iterator(text_.begin(), text_.end(), kMachine); it != std::sregex_iterator(); ++it) {
      Report(static_cast<std::size_t>(it->position(2)), "names a path outside the repository: " + (*it)[2].str());
    }
  }

  const std::set<std::string>& SectionsOf(const std::string& doc) {
    auto it = sections_.find(doc);
    if (it == sections_.end()) it = sections_.emplace(doc, Sections(Read(doc))).first;
    return it->second;
  }

  // Checks the chain "§A, §B and §C-§D" starting at `pos` (whitespace, then a section sign)
  // against `doc` ("": skip it unchecked); returns the offset just past the chain (`pos` when
  // there is none).
  std::size_t CheckSections(const std::string& doc, std::size_t pos) {
    static const std::regex kFirst(R"(^\s*§\s?(\d+(?:\.\d+)*[a-z]?))");
    static const std::regex kNext(R"(^(?:\s*(?:,|/|and|or|-|–|to)\s*)§\s?(\d+(?:\.\d+)*[a-z]?))");
    std::smatch m;
    auto rest = [&] { return std::string(text_, pos, std::min<std::size_t>(200, text_.size() - pos)); };
    std::string r = rest();
    if (!std::regex_search(r, m, kFirst)) return pos;
    static const std::set<std::string> kNone;
    const std::set<std::string>& have = doc.empty() ? kNone : SectionsOf(doc);
    for (;;) {
      const std::string sec = m[1];
      if (!doc.empty() && !have.count(sec)) Report(pos, doc + " has no section §" + sec);
      pos += static_cast<std::size_t>(m.position(0) + m.length(0));
      r = rest();
      if (!std::regex_search(r, m, kNext)) return pos;
    }
  }

  // True when the section sign at `p` follows a source tag such as "[P " or "[R ": it cites a
  // section of an external source (the paper), not of a document here.
  bool AfterSourceTag(std::size_t p) const {
    std::size_t i = p;
    while (i > 0 && text_[i - 1] == ' ') --i;
    std::size_t j = i;
    while (j > 0 && (std::isalnum(static_cast<unsigned char>(text_[j - 1])) || text_[j - 1] == '-')) --j;
    return j < i && j > 0 && text_[j - 1] == '[';
  }

  void CheckReferences(bool is_doc) {
    static const std::regex kPath(R"((^|[^A-Za-z0-9_./$<{-])((?:[a-z0-9_]+/)+[A-Za-z0-9_.+-]*[A-Za-z0-9_]))");
    std::vector<bool> covered(text_.size() + 1, false);
    docs_at_.clear();
    for (auto it = std::sregex_iterator(text_.begin(), text_.end(), kPath); it != std::sregex_iterator(); ++it) {
      const std::smatch& m = *it;
      const std::string path = m[2];
      const std::size_t start = static_cast<std::size_t>(m.position(2));
      const std::size_t end = start + path.size();
      if (!kTopFolders.count(path.substr(0, path.find('/')))) continue;
      // A path followed by a wildcard or a placeholder is a pattern, not a file.
      const std::string next = text_.substr(end, 2);
      auto pattern_char = [](char c) { return c == '*' || c == '<' || c == '{' || c == '$' || c == '-'; };
      // "dir/name.{h,cpp}": every expansion must exist.
      if (next == ".{") {
        const std::size_t close = text_.find('}', end);
        const std::string list = close == std::string::npos ? "" : text_.substr(end + 2, close - end - 2);
        if (!list.empty() && list.find_first_of(" \n*<$") == std::string::npos) {
          std::size_t b = 0;
          for (std::size_t c = 0; c <= list.size(); ++c) {
            if (c < list.size() && list[c] != ',') continue;
            const std::string one = path + "." + list.substr(b, c - b);
            if (!fs::exists(kRoot / one) && !fs::exists(kRoot / dir_ / one)) {
              Report(start, "cites " + one + ", which does not exist");
            }
            b = c + 1;
          }
        }
        continue;
      }
      if (!next.empty() && pattern_char(next[0])) continue;
      if (next.size() == 2 && next[0] == '.' && pattern_char(next[1])) continue;
      if (path.find("/.") != std::string::npos) continue;  // hidden, machine-local (tools/.venv)
      if (!fs::exists(kRoot / path) && !fs::exists(kRoot / dir_ / path)) {
        Report(start, "cites " + path + ", which does not exist");
        continue;
      }
      if (path.size() > 3 && path.compare(path.size() - 3, 3, ".md") == 0) {
        docs_at_[start] = path;
        std::size_t after = end;
        if (after < text_.size() && text_[after] == '`') ++after;
        if (after < text_.size() && text_[after] == ')') ++after;
        const std::size_t chain_end = CheckSections(path, after);
        for (std::size_t i = start; i < chain_end; ++i) covered[i] = true;
      }
    }
    // A section sign that is not part of a chain after a document: in a document it names one
    // of its own sections; elsewhere, one of the document the file cited last before it.
    for (std::size_t p = text_.find("§"); p != std::string::npos; p = text_.find("§", p + 1)) {
      if (covered[p]) continue;
      if (AfterSourceTag(p)) {  // skip the whole chain unchecked
        const std::size_t end = CheckSections("", p);
        for (std::size_t i = p; i < end; ++i) covered[i] = true;
        continue;
      }
      std::string doc = is_doc ? file_ : "";
      if (!is_doc) {
        auto it = docs_at_.upper_bound(p);
        if (it != docs_at_.begin()) doc = std::prev(it)->second;
      }
      if (doc.empty()) {
        Report(p, "a section sign with no document cited before it: name the document "
                  "(docs/<doc>.md §N)");
        for (std::size_t q = p; q < text_.size() && text_[q] != '\n'; ++q) covered[q] = true;
        continue;
      }
      const std::size_t end = CheckSections(doc, p);
      for (std::size_t i = p; i < end; ++i) covered[i] = true;
    }
  }

  std::string text_, file_, dir_;
  std::vector<std::size_t> line_starts_;
  std::map<std::size_t, std::string> docs_at_;  // offset of each cited document -> its path
  std::map<std::string, std::set<std::string>> sections_;
  std::vector<Problem> problems_;
};

TEST(RepositoryReferences, EveryCitedFileAndSectionExists) {
  Checker c;
  const std::vector<fs::path> files = TextFiles();
  ASSERT_GT(files.size(), 100u) << "the scan found too few files under " << kRoot;
  for (const fs::path& f : files) c.CheckFile(f);
  std::string report;
  for (const Problem& p : c.problems()) report += p.where + ": " + p.what + "\n";
  EXPECT_TRUE(c.problems().empty()) << c.problems().size() << " broken references:\n" << report;
}

}  // namespace
