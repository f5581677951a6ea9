#include "lathe/project/yaml_strict.h"

#include <set>

#include "lathe/core/error.h"
#include "lathe/data/collect.h"

namespace lathe::project {

namespace {

struct Checker {
  const std::string& text;
  const std::string& file;
  size_t visited = 0;
  std::set<std::pair<long, int>> checked;  // (position, indent): an aliased scalar is scanned once

  // 1-based line and column of byte `pos`, for messages about a position inside a scalar.
  std::pair<int, int> line_col(size_t pos) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos && i < text.size(); i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    return {line, col};
  }

  // The quoted scalar opening at `start` (a ' or "): every line it continues onto must be indented
  // more than `indent` (YAML 1.2 §7.3: flow scalar lines in block context at indentation n), or be
  // empty; it must be closed before the end of the text. `is_key`: an implicit key fits on one line.
  void check_quoted(size_t start, int indent, bool is_key) {
    if (!checked.insert({long(start), is_key ? -2 : indent}).second) return;
    const char q = text[start];
    size_t i = start + 1;
    while (i < text.size()) {
      const char ch = text[i];
      if (q == '"' && ch == '\\') {
        i += 2;  // an escaped character, \" included
        continue;
      }
      if (ch == q) {
        if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          i += 2;  // '' is a quote inside a single-quoted scalar
          continue;
        }
        return;  // closed
      }
      if (ch == '\n') {
        if (is_key) {
          auto [l, c] = line_col(start);
          fail("project", "{}:{}:{}: a quoted key must close on its own line (unterminated quoted string?)", file, l, c);
        }
        size_t j = i + 1;
        int spaces = 0;
        while (j < text.size() && text[j] == ' ') {
          spaces++;
          j++;
        }
        const bool blank = j >= text.size() || text[j] == '\n' || (text[j] == '\r' && j + 1 < text.size() && text[j + 1] == '\n');
        if (!blank && spaces <= indent) {
          auto [l, c] = line_col(start);
          fail("project", "{}:{}:{}: unterminated quoted string: the {}-quoted value goes on to line {}, which is not "
                          "indented more than its key (close the quote, or indent the continuation)",
               file, l, c, q == '"' ? "double" : "single", line_col(j).first);
        }
      }
      i++;
    }
    auto [l, c] = line_col(start);
    fail("project", "{}:{}:{}: unterminated quoted string (no closing {} before the end of the file)", file, l, c, q);
  }

  // Values end up in JSON (the run registry, fingerprints), which holds only valid UTF-8; yaml-cpp
  // passes raw bytes of plain and quoted scalars through unchecked.
  void check_utf8(const YAML::Node& n) const {
    if (!lathe::data::valid_utf8(n.Scalar()))
      fail("project", "{}:{}:{}: not valid UTF-8 text", file, n.Mark().line + 1,
           n.Mark().column + 1);
  }

  bool quoted_at(const YAML::Node& n) const {
    if (!n.IsScalar() || n.Tag() != "!") return false;  // yaml-cpp tags non-plain scalars "!"
    const auto pos = n.Mark().pos;
    return pos >= 0 && size_t(pos) < text.size() && (text[pos] == '"' || text[pos] == '\'');
  }

  // `indent`: the column of the block key or sequence entry the node is the value of (-1 at the top).
  void walk(const YAML::Node& n, int indent, int depth) {
    if (depth > kMaxProjectYamlDepth)
      fail("project", "{}:{}: nested deeper than {} levels", file, n.Mark().line + 1, kMaxProjectYamlDepth);
    // Aliases share nodes, so a few lines of anchors can stand for billions of values ("billion
    // laughs"); everything after this walk (schema, JSON copy, hashing) would visit them all.
    if (++visited > kMaxProjectYamlNodes)
      fail("project", "{}: more than {} values (counting each use of an alias); a project file states settings",
           file, kMaxProjectYamlNodes);
    if (n.IsScalar()) {
      if (quoted_at(n)) check_quoted(size_t(n.Mark().pos), indent, false);
      check_utf8(n);
      return;
    }
    const bool flow = n.Style() == YAML::EmitterStyle::Flow;
    if (n.IsSequence()) {
      for (const auto& x : n) walk(x, flow ? indent : n.Mark().column, depth + 1);  // the dashes' column
    } else if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        const int key_col = it->first.Mark().column;
        if (quoted_at(it->first)) check_quoted(size_t(it->first.Mark().pos), key_col, true);
        walk(it->first, flow ? indent : key_col, depth + 1);
        walk(it->second, flow ? indent : key_col, depth + 1);
      }
    }
  }
};

}  // namespace

void check_yaml_strict(const std::string& text, const YAML::Node& root, const std::string& file) {
  Checker c{text, file, 0, {}};
  c.walk(root, -1, 0);
}

}  // namespace lathe::project
