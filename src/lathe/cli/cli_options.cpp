#include "lathe/cli/cli_options.h"

#include <algorithm>
#include <limits>

namespace lathe::cli {

namespace {

const char* type_name(OptionKind k) {
  switch (k) {
    case OptionKind::String: return "TEXT";
    case OptionKind::Bool: return "";
    case OptionKind::Int: return "INT";
    case OptionKind::Number: return "NUMBER";
    case OptionKind::StringList: return "TEXT";
    case OptionKind::StringMap: return "K=V,...";
    case OptionKind::NumberList: return "N,N,...";
  }
  return "";
}

std::string help_of(const Option& o) {
  std::string h = o.help;
  if (!o.choices.empty()) {
    std::string c;
    for (const auto& x : o.choices) c += (c.empty() ? "" : "|") + (x.empty() ? std::string("\"\"") : x);
    if (h.find(c) == std::string::npos) h += " {" + c + "}";
  }
  if (!o.env.empty()) h += " [env " + o.env + "]";
  return h;
}

}  // namespace

CliOptions::CliOptions(CLI::App& app, const OptionTableBase& table, const std::vector<std::string>& only) : table_(table) {
  for (const Option& o : table.options()) {
    if (o.flag.empty()) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), o.key) == only.end()) continue;
    auto b = std::make_unique<Bound>();
    b->option = &o;
    if (o.kind == OptionKind::Bool) {
      // "--key,!--no-key": one CLI11 option, so count() sees either spelling.
      b->cli = app.add_flag(o.flag + ",!--no-" + o.flag.substr(2), b->flag, help_of(o));
    } else if (o.kind == OptionKind::StringList && o.repeatable_flag) {
      b->cli = app.add_option(o.flag, b->list, help_of(o));
    } else {
      b->cli = app.add_option(o.flag, b->text, help_of(o));
      // The type is checked while parsing, ranges and choices when applied (with the other sources).
      Option typed = o;
      typed.choices.clear();
      typed.lo = -std::numeric_limits<long double>::infinity();
      typed.hi = std::numeric_limits<long double>::infinity();
      typed.is_path = false;
      b->cli->check(CLI::Validator(
          [typed](std::string& s) -> std::string {
            OptionValue v;
            v.is_text = true;
            v.text = s;
            v.source = OptionSource::Flag;
            try {
              option_convert(typed, v);
            } catch (const OptionProblem& p) {
              return p.message;
            }
            return "";
          },
          ""));
    }
    if (o.kind != OptionKind::Bool) b->cli->type_name(type_name(o.kind));
    if (!o.default_text.empty() && o.default_text != "[]" && o.default_text != "{}") b->cli->default_str(o.default_text);
    bound_.push_back(std::move(b));
  }
}

OptionSettings CliOptions::given() const {
  OptionSettings out;
  for (const auto& b : bound_) {
    if (b->cli->count() == 0) continue;
    OptionValue v;
    v.source = OptionSource::Flag;
    v.where = b->option->flag;
    if (b->option->kind == OptionKind::Bool) {
      v.json = b->flag;
    } else if (b->option->kind == OptionKind::StringList && b->option->repeatable_flag) {
      v.json = b->list;
    } else {
      v.is_text = true;
      v.text = b->text;
    }
    out.push_back({b->option, std::move(v)});
  }
  return out;
}

OptionSettings CliOptions::overrides() const {
  OptionSettings s = table_.from_env();
  for (auto& g : given()) s.push_back(std::move(g));
  return s;
}

}  // namespace lathe::cli
