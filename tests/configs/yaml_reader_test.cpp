// The strict YAML walker: scalar rules, positions, unknown/missing/duplicate keys, syntax errors.
#include "configs/yaml_reader.h"

#include <gtest/gtest.h>

#include "tests/configs/config_test_util.h"

namespace radlads::config {
namespace {

using radlads::testing::ErrorAt;

struct Inner {
  double rate = 0.5;
  std::int64_t rank = 0;  // 0 = auto
};

struct Outer {
  std::int64_t count = 7;
  double scale = 1.0;
  bool flag = false;
  std::string label;
  int color = 0;
  Inner inner;
};

Schema<Outer> TestSchema() {
  Schema<Inner> inner;
  inner.Real("rate", &Inner::rate, RealRange{0.0, 1.0, true, false},
             FieldInfo{false, "0.5", "a rate", "-"});
  inner.IntOrAuto("rank", &Inner::rank, IntRange{1, 64}, FieldInfo{false, "auto", "a rank", "-"});
  Schema<Outer> s;
  s.Int("count", &Outer::count, IntRange{1}, FieldInfo{true, "", "how many", "-"});
  s.Real("scale", &Outer::scale, RealRange{}, FieldInfo{false, "1.0", "a scale", "-"});
  s.Bool("flag", &Outer::flag, FieldInfo{false, "false", "a flag", "-"});
  s.String("label", &Outer::label, FieldInfo{false, "\"\"", "a label", "-"});
  s.Enum<int>("color", &Outer::color, {{"red", 0}, {"green", 1}, {"1", 1, true}},
              FieldInfo{false, "red", "a color", "-"});
  s.Struct<Inner>("inner", &Outer::inner, inner, FieldInfo{false, "defaults", "nested", "-"});
  return s;
}

Result<Outer> Read(std::string_view text) { return ReadYamlText(text, "t.yaml", TestSchema()); }

TEST(YamlReader, ReadsEveryScalarKind) {
  auto r = Read(
      "count: 100_000\n"
      "scale: -1.5e-3\n"
      "flag: true\n"
      "label: \"hello: world\"\n"
      "color: green\n"
      "inner:\n"
      "  rate: 1\n"
      "  rank: auto\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->count, 100000);
  EXPECT_DOUBLE_EQ(r->scale, -1.5e-3);
  EXPECT_TRUE(r->flag);
  EXPECT_EQ(r->label, "hello: world");
  EXPECT_EQ(r->color, 1);
  EXPECT_DOUBLE_EQ(r->inner.rate, 1.0);
  EXPECT_EQ(r->inner.rank, 0);
}

TEST(YamlReader, AbsentKeysKeepStructDefaults) {
  auto r = Read("count: 3\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_DOUBLE_EQ(r->scale, 1.0);
  EXPECT_FALSE(r->flag);
  EXPECT_DOUBLE_EQ(r->inner.rate, 0.5);
  EXPECT_EQ(r->color, 0);
}

TEST(YamlReader, AcceptsEnumAliasAndRealForms) {
  auto r = Read("count: 1\ncolor: 1\nscale: .5\ninner: {rate: 2.5E-1, rank: 64}\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->color, 1);
  EXPECT_DOUBLE_EQ(r->scale, 0.5);
  EXPECT_DOUBLE_EQ(r->inner.rate, 0.25);
  EXPECT_EQ(r->inner.rank, 64);
}

TEST(YamlReader, WrongTypesNameFileLineKeyAndExpectation) {
  EXPECT_TRUE(ErrorAt(Read("count: -3\n").status(), "t.yaml", 1,
                      {"count: expected a positive integer, got -3"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1.5\n").status(), "t.yaml", 1,
                      {"count: expected a positive integer, got 1.5"}));
  EXPECT_TRUE(ErrorAt(Read("count: \"4\"\n").status(), "t.yaml", 1,
                      {"count: expected a positive integer, got \"4\""}));
  EXPECT_TRUE(ErrorAt(Read("count: 010\n").status(), "t.yaml", 1, {"count: expected"}))
      << "leading zeros are octal in YAML 1.1";
  EXPECT_TRUE(ErrorAt(Read("count: 99999999999999999999\n").status(), "t.yaml", 1, {"count"}));
  EXPECT_TRUE(ErrorAt(Read("count: [1, 2]\n").status(), "t.yaml", 1,
                      {"count: expected a positive integer, got a list"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\nflag: yes\n").status(), "t.yaml", 2,
                      {"flag: expected true or false, got yes"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\nflag: 1\n").status(), "t.yaml", 2, {"flag"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\nscale: .inf\n").status(), "t.yaml", 2,
                      {"scale: expected a number, got .inf"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\nscale: nan\n").status(), "t.yaml", 2, {"scale"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\ninner: 3\n").status(), "t.yaml", 2,
                      {"inner: expected a mapping, got 3"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\nlabel: {a: 1}\n").status(), "t.yaml", 2, {"label"}));
}

TEST(YamlReader, OutOfRangeNamesTheNestedPath) {
  auto st = Read("count: 1\n\ninner:\n  rate: 0\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 4, {"inner.rate: expected a number in (0, 1], got 0"}));
  st = Read("count: 1\ninner:\n  rank: 65\n").status();
  EXPECT_TRUE(
      ErrorAt(st, "t.yaml", 3, {"inner.rank: expected `auto` or an integer in [1, 64], got 65"}));
}

TEST(YamlReader, EnumErrorListsChoicesAndSuggests) {
  auto st = Read("count: 1\ncolor: gren\n").status();
  EXPECT_TRUE(
      ErrorAt(st, "t.yaml", 2,
              {"color: expected one of `red`, `green`, got gren", "did you mean `green`?"}));
}

TEST(YamlReader, UnknownKeySuggestsTheNearMiss) {
  auto st = Read("count: 1\ninner:\n  rnk: 3\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 3,
                      {"inner.rnk: unknown key", "did you mean `rank`?", "keys of inner: rate"}));
  st = Read("cuont: 1\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 1, {"cuont: unknown key", "did you mean `count`?"}));
  st = Read("count: 1\nzzzzzz: 1\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 2, {"zzzzzz: unknown key ("}));
  EXPECT_EQ(st.message().find("did you mean"), std::string::npos) << st.message();
}

TEST(YamlReader, MissingRequiredKeyNamesTheMappingLine) {
  auto st = Read("# a comment\nscale: 2\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 2, {"missing required key `count`", "how many"}));
}

TEST(YamlReader, NullIsNeverAValue) {
  auto st = Read("count: 1\nscale:\nflag: true\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 2, {"scale: expected a value", "got null"}));
  st = Read("count: ~\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 1, {"count", "got null"}));
}

TEST(YamlReader, DuplicateKeysAreErrors) {
  auto st = Read("count: 1\ninner:\n  rate: 0.1\n  rate: 0.2\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 4, {"inner: duplicate key `rate` (first at line 3)"}));
}

TEST(YamlReader, SyntaxErrorsGiveFileAndLine) {
  auto st = Read("count: 1\ninner:\n  rate: 0.1\n rank: 2\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 4, {"YAML syntax error"})) << st.ToString();
  st = Read("count: [1, 2\nscale: 3\n").status();
  EXPECT_TRUE(ErrorAt(st, "t.yaml", 2, {"YAML syntax error"})) << st.ToString();
}

TEST(YamlReader, DocumentShapeErrors) {
  EXPECT_TRUE(ErrorAt(Read("").status(), "t.yaml", 1, {"empty"}));
  EXPECT_TRUE(ErrorAt(Read("# only a comment\n").status(), "t.yaml", 1, {"empty"}));
  EXPECT_TRUE(ErrorAt(Read("- 1\n- 2\n").status(), "t.yaml", 1, {"expected a mapping"}));
  EXPECT_TRUE(
      ErrorAt(Read("count: 1\n---\ncount: 2\n").status(), "t.yaml", 2, {"one YAML document", "---"}));
  EXPECT_TRUE(ErrorAt(Read("count: !!int 1\n").status(), "t.yaml", 1, {"count", "tags"}));
  EXPECT_TRUE(ErrorAt(Read("count: 1\n[1]: 2\n").status(), "t.yaml", 2, {"keys"}));
}

TEST(YamlReader, MissingFileIsNotFound) {
  auto r = ParseYamlFile("/nonexistent/radlads/x.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
}

TEST(YamlReader, SuggestKey) {
  const std::vector<std::string> keys = {"warmup_steps", "init", "final", "endpoint"};
  EXPECT_EQ(SuggestKey("warmup_step", keys), "warmup_steps");
  EXPECT_EQ(SuggestKey("lr_init", keys), "init");
  EXPECT_EQ(SuggestKey("endpiont", keys), "endpoint");
  EXPECT_EQ(SuggestKey("batch", keys), "");
}

TEST(YamlReader, DocsRowsFollowTheTable) {
  auto rows = TestSchema().Docs();
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0].key, "count");
  EXPECT_EQ(rows[0].default_text, "required");
  EXPECT_EQ(rows[0].range, "≥ 1");
  EXPECT_EQ(rows[4].type, "`red` | `green`") << "aliases are not listed";
  EXPECT_EQ(rows[6].key, "inner.rate");
  EXPECT_EQ(rows[6].range, "(0, 1]");
  const std::string table = RenderFieldTable(rows);
  EXPECT_NE(table.find("| `color` | `red` \\| `green` |"), std::string::npos) << table;
}

// Control characters are refused with the line: yaml-cpp 0.7 loops forever on a NUL byte
// (found by tests/fuzz/config_yaml_fuzz.cpp: a key with NULs in a cluster layout hung `plan`).
TEST(YamlReader, ControlCharactersAreRefusedWithTheLine) {
  const std::string text = std::string("nodes: 1\ncache_disk_bu") + std::string(20, '\0') + "dget_gib: 1\n";
  auto r = ParseYamlText(text, "c.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("c.yaml:2: a control character (byte 0x00)"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(ParseYamlText("a: 1\x07\n", "c.yaml").ok());
  EXPECT_TRUE(ParseYamlText("a: 1\r\nb: 'x\ty'\n", "c.yaml").ok()) << "tab and CR are text";
}

// Invalid UTF-8 is refused with the line (yaml-cpp 0.7 loops forever on some of it: found by
// tests/fuzz/config_yaml_fuzz.cpp); valid multi-byte text is read.
// An alias of the mapping that contains it (found by the fuzzer: the conversion recursed until
// the stack overflowed) is refused.
TEST(YamlReader, ARecursiveAliasIsRefused) {
  auto r = ParseYamlText("a: &x\n  b: *x\n", "r.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nested more than 64 levels deep"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("r.yaml:"), std::string::npos) << r.status().message();
  EXPECT_TRUE(ParseYamlText("base: &b {x: 1}\nother: *b\n", "r.yaml").ok()) << "a plain alias still reads";
}

TEST(YamlReader, InvalidUtf8IsRefusedWithTheLine) {
  for (const std::string& bad : {std::string("a: 1\nb: i\xee" "u\xfe" "au\xf8\xff\n"), std::string("a: \xc0\xaf\n"),
                                std::string("a: \xed\xa0\x80\n"), std::string("a: \xe2\x82\n")}) {
    auto r = ParseYamlText(bad, "u.yaml");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("not UTF-8"), std::string::npos) << r.status().message();
  }
  auto r = ParseYamlText("a: 1\nb: i\xee" "u\n", "u.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("u.yaml:2: not UTF-8 (byte 0xee)"), std::string::npos) << r.status().message();
  // yaml-cpp's LoadAll never returned on ", " (found by the fuzzer): a syntax error now.
  auto comma = ParseYamlText(", ", "u.yaml");
  ASSERT_FALSE(comma.ok());
  EXPECT_NE(comma.status().message().find("u.yaml:1: YAML syntax error"), std::string::npos) << comma.status().message();
  EXPECT_TRUE(ParseYamlText("description: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80\n", "u.yaml").ok());
}

}  // namespace
}  // namespace radlads::config
