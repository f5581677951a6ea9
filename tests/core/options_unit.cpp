// core/options: one table drives YAML, environment, flags and JSON; precedence defaults < file <
// environment < flags; integers read exactly; every error names the key and where the value came from.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/options.h"
#include "lathe/core/options_yaml.h"
#include "test_util.h"

namespace lathe {
namespace {

struct Sub {
  int k = 1;
};
struct S {
  int n = 4;
  double lr = 0.1;
  bool on = true;
  std::string mode = "a";
  std::vector<std::string> files;
  uint64_t seed = 1;
  size_t cap = 10;
  Sub sub;
};

const OptionTable<S>& table() {
  static const OptionTable<S> t = [] {
    OptionTable<S> t("test");
    t.add("n", &S::n, "a count").min(1);
    t.add("lr", &S::lr, "a rate").above(0).below(1);
    t.add("on", &S::on, "a switch");
    t.add("mode", &S::mode, "a choice").one_of({"a", "bee", "cat"});
    t.add("files", &S::files, "paths").one_or_list().path();
    t.add("seed", &S::seed, "a seed");
    t.add("cap", &S::cap, "a size");
    t.add("sub.k", [](S& s) -> auto& { return s.sub.k; }, "nested");
    return t;
  }();
  return t;
}

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

OptionSetting text_setting(const std::string& key, const std::string& text, OptionSource src, const std::string& where) {
  OptionValue v;
  v.is_text = true;
  v.text = text;
  v.source = src;
  v.where = where;
  return {table().find(key), v};
}

using test::error_of;

TEST(Options, NamesFollowTheKey) {
  EXPECT_EQ(option_flag_of("learning_rate"), "--learning-rate");
  EXPECT_EQ(option_flag_of("clean.min_chars"), "--clean-min-chars");
  EXPECT_EQ(option_env_of("learning_rate"), "LATHE_LEARNING_RATE");
  EXPECT_EQ(option_env_of("clean.min_chars"), "LATHE_CLEAN_MIN_CHARS");
  EXPECT_EQ(table().find("sub.k")->env, "LATHE_SUB_K");
  EXPECT_EQ(table().find("n")->default_text, "4");
}

TEST(Options, PrecedenceDefaultsFileEnvFlags) {
  test::TempDir dir;
  write(dir / "c.yaml", "n: 5\nlr: 0.2\nmode: bee\nsub:\n  k: 7\nfiles: x.txt\n");
  const auto& t = table();
  S s;
  t.apply(s, options_from_yaml_file(dir / "c.yaml", t));
  EXPECT_EQ(s.n, 5);
  EXPECT_EQ(s.sub.k, 7);
  ASSERT_EQ(s.files.size(), 1u);
  EXPECT_EQ(s.files[0], dir / "x.txt");  // a path from a file resolves against the file's directory
  ::setenv("LATHE_N", "6", 1);
  ::setenv("LATHE_LR", "0.3", 1);
  t.apply(s, t.from_env());
  ::unsetenv("LATHE_N");
  ::unsetenv("LATHE_LR");
  EXPECT_EQ(s.n, 6);         // environment over file
  EXPECT_EQ(s.lr, 0.3);
  t.apply(s, {text_setting("lr", "0.5", OptionSource::Flag, "--lr")});
  EXPECT_EQ(s.lr, 0.5);      // flag over environment
  EXPECT_EQ(s.mode, "bee");  // file over default
  EXPECT_TRUE(s.on);         // untouched default
}

TEST(Options, IntegersAreReadExactly) {
  test::TempDir dir;
  const auto& t = table();
  S s;
  write(dir / "c.yaml", "n: 4096.0\n");
  std::string e = error_of([&] { t.apply(s, options_from_yaml_file(dir / "c.yaml", t)); });
  EXPECT_NE(e.find(dir / "c.yaml" + ":1: key 'n' must be an integer (got '4096.0')"), std::string::npos) << e;
  write(dir / "c.yaml", "n: 1e3\n");
  e = error_of([&] { t.apply(s, options_from_yaml_file(dir / "c.yaml", t)); });
  EXPECT_NE(e.find("must be an integer (got '1e3')"), std::string::npos) << e;
  write(dir / "c.yaml", "n: \"8\"\n");  // quoted: a string
  e = error_of([&] { t.apply(s, options_from_yaml_file(dir / "c.yaml", t)); });
  EXPECT_NE(e.find("must be an integer"), std::string::npos) << e;
  write(dir / "c.yaml", "n: 5000000000\n");  // beyond int
  e = error_of([&] { t.apply(s, options_from_yaml_file(dir / "c.yaml", t)); });
  EXPECT_NE(e.find("key 'n' must be in [1, 2147483647]"), std::string::npos) << e;
  // JSON: a float where an integer belongs is refused, even 3.0; unsigned 64-bit values fit a uint64.
  e = error_of([&] { t.apply(s, t.from_json(nlohmann::json{{"n", 3.0}}, "options JSON")); });
  EXPECT_NE(e.find("options JSON: key 'n' must be an integer (got '3.0')"), std::string::npos) << e;
  t.apply(s, t.from_json(nlohmann::json::parse(R"({"seed": 18446744073709551615, "cap": 12})"), "j"));
  EXPECT_EQ(s.seed, UINT64_MAX);
  EXPECT_EQ(s.cap, 12u);
  e = error_of([&] { t.apply(s, {text_setting("seed", "-1", OptionSource::Env, "LATHE_SEED")}); });
  EXPECT_NE(e.find("[test] LATHE_SEED: must be in [0, "), std::string::npos) << e;
  e = error_of([&] { t.apply(s, {text_setting("n", "12abc", OptionSource::Flag, "--n")}); });
  EXPECT_NE(e.find("[test] --n: must be an integer (got '12abc')"), std::string::npos) << e;
}

TEST(Options, RangesChoicesAndBools) {
  const auto& t = table();
  S s;
  std::string e = error_of([&] { t.apply(s, {text_setting("n", "0", OptionSource::Flag, "--n")}); });
  EXPECT_NE(e.find("--n: must be >= 1 (got '0')"), std::string::npos) << e;
  e = error_of([&] { t.apply(s, {text_setting("lr", "1", OptionSource::Env, "LATHE_LR")}); });
  EXPECT_NE(e.find("LATHE_LR: must be in (0, 1) (got '1')"), std::string::npos) << e;
  e = error_of([&] { t.apply(s, {text_setting("lr", "nan", OptionSource::Flag, "--lr")}); });
  EXPECT_NE(e.find("must be a number"), std::string::npos) << e;
  e = error_of([&] { t.apply(s, {text_setting("mode", "be", OptionSource::File, "c.yaml:3")}); });
  EXPECT_NE(e.find("c.yaml:3: key 'mode' 'be' is not one of: a, bee, cat (did you mean 'bee'?)"), std::string::npos) << e;
  t.apply(s, {text_setting("on", "off", OptionSource::Env, "LATHE_ON")});
  EXPECT_FALSE(s.on);
  e = error_of([&] { t.apply(s, {text_setting("on", "maybe", OptionSource::Env, "LATHE_ON")}); });
  EXPECT_NE(e.find("LATHE_ON: must be true or false (got 'maybe')"), std::string::npos) << e;
  // Values set in code are checked against the same declarations; defaults always pass.
  s = S();
  EXPECT_NO_THROW(t.check(s));
  s.n = -3;
  EXPECT_NE(error_of([&] { t.check(s); }).find("--n: must be >= 1 (got '-3')"), std::string::npos);
}

TEST(Options, UnknownKeysNameFileAndLine) {
  test::TempDir dir;
  const auto& t = table();
  write(dir / "c.yaml", "n: 2\nmdoe: a\n");
  std::string e = error_of([&] { options_from_yaml_file(dir / "c.yaml", t); });
  EXPECT_NE(e.find(dir / "c.yaml" + ":2: unknown key 'mdoe' (did you mean 'mode'?)"), std::string::npos) << e;
  write(dir / "c.yaml", "sub:\n  kk: 1\n");
  e = error_of([&] { options_from_yaml_file(dir / "c.yaml", t); });
  EXPECT_NE(e.find(":2: unknown key 'kk' in 'sub' (did you mean 'k'?)"), std::string::npos) << e;
  write(dir / "c.yaml", "zzzzzz: 1\n");
  e = error_of([&] { options_from_yaml_file(dir / "c.yaml", t); });
  EXPECT_NE(e.find("(expected one of: n, lr, on, mode, files, seed, cap, sub)"), std::string::npos) << e;
  write(dir / "c.yaml", "sub: [1]\n");
  e = error_of([&] { options_from_yaml_file(dir / "c.yaml", t); });
  EXPECT_NE(e.find(":1: sub: must be a mapping"), std::string::npos) << e;
  // With columns (project.yaml) and a section name.
  YAML::Node root = YAML::Load("x:\n  n: 1\n  bogus: 2\n");
  e = error_of([&] { options_from_yaml(root["x"], all_options(t), {"test", "p.yaml", true, "x", "", {}}); });
  EXPECT_NE(e.find("p.yaml:3:3: unknown key 'bogus' in 'x'"), std::string::npos) << e;
  e = error_of([&] { t.from_json(nlohmann::json{{"bogus", 1}}, "options JSON"); });
  EXPECT_NE(e.find("options JSON: unknown key 'bogus'"), std::string::npos) << e;
}

TEST(Options, JsonRoundTripNestsDottedKeys) {
  const auto& t = table();
  S s;
  s.sub.k = 9;
  s.files = {"a", "b"};
  nlohmann::json j = t.to_json(s);
  EXPECT_EQ(j["sub"]["k"], 9);
  EXPECT_EQ(j["files"], nlohmann::json({"a", "b"}));
  EXPECT_EQ(j["seed"], 1u);
  EXPECT_NE(t.to_string(s).find("lr: 0.1\n"), std::string::npos);
}

}  // namespace
}  // namespace lathe
