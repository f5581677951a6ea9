// Every option a command declares is documented, and every documented option exists: the option
// tables (core/options.h) against the pages that list them — docs/train.md, docs/data.md (its YAML
// example of the `data:` section), docs/eval.md, docs/serve.md, docs/export.md — and the project.yaml
// sections in docs/project.md.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "lathe/core/file_io.h"
#include "lathe/data/data_config.h"
#include "lathe/eval/eval_options.h"
#include "lathe/peft/export_options.h"
#include "lathe/project/launcher.h"
#include "lathe/project/project_schema.h"
#include "lathe/retrieval/index_options.h"
#include "lathe/serve/serve_options.h"
#include "lathe/train/train_options.h"
#include "test_util.h"

namespace {

using lathe::Option;
using lathe::OptionTableBase;
using Keys = std::set<std::string>;

std::string doc(const std::string& name) { return lathe::read_file(lathe::test::source_path("docs/" + name)); }

// The text under `heading` (a whole line) up to the next heading of the same or a higher level.
std::string section(const std::string& text, const std::string& heading) {
  const size_t at = text.find("\n" + heading + "\n");
  EXPECT_NE(at, std::string::npos) << "no heading '" << heading << "'";
  if (at == std::string::npos) return "";
  const size_t level = heading.find(' ');
  size_t end = at + heading.size() + 2;
  for (;;) {
    end = text.find("\n#", end);
    if (end == std::string::npos) return text.substr(at);
    const size_t hashes = text.find_first_not_of('#', end + 1) - end - 1;
    if (hashes <= level) return text.substr(at, end - at);
    end++;
  }
}

// The first cell of every table row: `--flag ARG` / `key` spellings.
std::vector<std::string> first_cells(const std::string& text) {
  std::vector<std::string> cells;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| ", 0) != 0 || line.rfind("|---", 0) == 0) continue;
    // The first cell ends at the first '|' not escaped as '\|'.
    size_t i = 1;
    while (i < line.size() && !(line[i] == '|' && line[i - 1] != '\\')) i++;
    cells.push_back(line.substr(1, i - 1));
  }
  return cells;
}

// Flags named in the first column of the option tables, as keys of `table`.
Keys documented_flags(const std::string& text, const OptionTableBase& table) {
  Keys keys;
  const std::regex flag("--[a-z0-9-]+");
  for (const std::string& cell : first_cells(text)) {
    for (auto it = std::sregex_iterator(cell.begin(), cell.end(), flag); it != std::sregex_iterator(); ++it) {
      std::string f = it->str();
      const Option* found = nullptr;
      for (const auto& o : table.options())
        if (o.flag == f || (o.kind == lathe::OptionKind::Bool && "--no-" + o.flag.substr(2) == f)) found = &o;
      keys.insert(found ? found->key : "(no such option) " + f);
    }
  }
  return keys;
}

Keys declared(const OptionTableBase& table) {
  Keys keys;
  for (const auto& o : table.options()) keys.insert(o.key);
  return keys;
}

TEST(OptionsDocs, TrainKeysMatchDocsTrainMd) {
  Keys documented;
  const std::regex key("^ *`([a-z0-9_]+)` *$");
  std::smatch m;
  for (const std::string& cell : first_cells(section(doc("train.md"), "## Options")))
    if (std::regex_match(cell, m, key)) documented.insert(m[1]);
  EXPECT_EQ(documented, declared(lathe::train_options_table()));
}

void flatten(const YAML::Node& n, const std::string& prefix, const OptionTableBase& table, Keys& out) {
  for (auto it = n.begin(); it != n.end(); ++it) {
    const std::string k = prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
    if (it->second.IsMap() && !table.find(k)) flatten(it->second, k, table, out);
    else out.insert(k);
  }
}

TEST(OptionsDocs, DataKeysMatchTheExampleInDocsDataMd) {
  const std::string text = section(doc("data.md"), "## The `data:` section");
  const size_t a = text.find("```yaml\n"), b = text.find("```", a + 8);
  ASSERT_NE(b, std::string::npos);
  const YAML::Node root = YAML::Load(text.substr(a + 8, b - a - 8));
  Keys documented;
  flatten(root["data"], "", lathe::data::data_options_table(), documented);
  EXPECT_EQ(documented, declared(lathe::data::data_options_table()));
}

TEST(OptionsDocs, CommandFlagsMatchTheirPages) {
  const std::string rdoc = doc("retrieval.md");
  EXPECT_EQ(documented_flags(section(rdoc, "### `lathe index build`"), lathe::retrieval::index_build_options_table()),
            declared(lathe::retrieval::index_build_options_table()));
  EXPECT_EQ(documented_flags(section(rdoc, "### `lathe index search`"), lathe::retrieval::index_search_options_table()),
            declared(lathe::retrieval::index_search_options_table()));
  EXPECT_EQ(documented_flags(section(rdoc, "### `lathe index augment`"), lathe::retrieval::index_augment_options_table()),
            declared(lathe::retrieval::index_augment_options_table()));
  EXPECT_EQ(documented_flags(section(doc("eval.md"), "## Options"), lathe::eval::eval_options_table()),
            declared(lathe::eval::eval_options_table()));
  EXPECT_EQ(documented_flags(section(doc("serve.md"), "## Options"), lathe::serve::serve_options_table()),
            declared(lathe::serve::serve_options_table()));
  EXPECT_EQ(documented_flags(section(doc("export.md"), "## Options"), lathe::export_options_table()),
            declared(lathe::export_options_table()));
}

// project.yaml: every key of the sections lathe run passes on is named in its section of
// docs/project.md (the serve and export keys, base_model's build keys).
TEST(OptionsDocs, ProjectSectionsNameEveryKey) {
  const std::string text = doc("project.md");
  auto named = [](const std::string& s, const std::string& key) {
    for (const char* end : {"`", " ", ":`"})
      if (s.find("`" + key + end) != std::string::npos) return true;
    return false;
  };
  const std::string serve = section(text, "### serve");
  for (const auto& o : lathe::serve::serve_options_table().options()) {
    if (o.key == "model" || o.key == "adapter" || o.key == "api_key" || o.key == "admin_key") continue;
    EXPECT_TRUE(named(serve, o.key)) << "serve." << o.key << " is not in docs/project.md";
  }
  const std::string exp = section(text, "### export");
  for (const Option* o : lathe::project::export_section_options())
    EXPECT_TRUE(named(exp, o->key)) << "export." << o->key << " is not in docs/project.md";
  const std::string retrieval = section(text, "### retrieval");
  for (const auto& o : lathe::retrieval::retrieval_section_table().options())
    EXPECT_TRUE(named(retrieval, o.key)) << "retrieval." << o.key << " is not in docs/project.md";
  const std::string launcher = section(text, "### launcher");
  for (const auto& o : lathe::project::launcher_options_table().options())
    EXPECT_TRUE(named(launcher, o.key)) << "launcher." << o.key << " is not in docs/project.md";
  const std::string base = section(text, "### base_model");
  for (const auto& o : lathe::project::base_model_options_table().options()) {
    const std::string leaf = o.key.substr(o.key.rfind('.') + 1);
    EXPECT_TRUE(named(base, leaf) || named(base, o.key)) << "base_model." << o.key << " is not in docs/project.md";
  }
}

}  // namespace
