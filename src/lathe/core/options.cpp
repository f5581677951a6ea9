#include "lathe/core/options.h"
#include "lathe/core/strings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace lathe {

using nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string shown(const OptionValue& v) {
  auto quote = [](std::string s) {
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return "'" + s + "'";
  };
  if (v.is_text) return quote(v.text);
  if (v.json.is_string()) return quote(v.json.get<std::string>());
  if (v.json.is_array()) return "a list";
  if (v.json.is_object()) return "a mapping";
  if (v.json.is_null()) return "nothing";
  return quote(v.json.dump());
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

bool parse_bool_text(const std::string& s, bool* out) {
  const std::string l = lower(s);
  if (l == "true" || l == "yes" || l == "on" || l == "1") return *out = true, true;
  if (l == "false" || l == "no" || l == "off" || l == "0") return *out = false, true;
  return false;
}

// The exact integer a text spells ("+5", "-3", "4096"), or false ("4096.0", "1e3", " 5", "0x10").
bool parse_int_text(const std::string& s, json* out) {
  std::string t = !s.empty() && s[0] == '+' ? s.substr(1) : s;
  if (t.empty()) return false;
  const char* b = t.data();
  const char* e = b + t.size();
  if (t[0] == '-') {
    int64_t v = 0;
    auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e) return false;
    *out = v;
    return true;
  }
  uint64_t u = 0;
  auto r = std::from_chars(b, e, u);
  if (r.ec != std::errc() || r.ptr != e) return false;
  if (u <= uint64_t(INT64_MAX)) *out = int64_t(u);
  else *out = u;
  return true;
}

bool parse_number_text(const std::string& s, double* out) {
  if (s.empty() || std::isspace((unsigned char)s[0])) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::vector<std::string> split_csv(const std::string& s) { return split_list(s, ',', true); }

std::string fmt_bound(long double v) { return fmt::format("{}", double(v)); }

std::string range_rule(const Option& o) {
  const bool lo = o.has_lo || !o.has_hi, hi = o.has_hi || !o.has_lo;
  if (lo && hi && !std::isinf(o.hi))
    return fmt::format("in {}{}, {}{}", o.lo_open ? "(" : "[", fmt_bound(o.lo), fmt_bound(o.hi), o.hi_open ? ")" : "]");
  if (lo) return fmt::format("{} {}", o.lo_open ? ">" : ">=", fmt_bound(o.lo));
  return fmt::format("{} {}", o.hi_open ? "<" : "<=", fmt_bound(o.hi));
}

void check_range(const Option& o, long double v, const OptionValue& src) {
  const bool low = o.lo_open ? !(v > o.lo) : !(v >= o.lo);
  const bool high = o.hi_open ? !(v < o.hi) : v > o.hi;
  if (!low && !high) return;
  // Past a bound nobody declared (the field type's): the whole interval, so the message is true.
  const bool undeclared = (low && !o.has_lo) || (high && !o.has_hi);
  const std::string rule = undeclared ? fmt::format("in {}{}, {}{}", o.lo_open ? "(" : "[", fmt_bound(o.lo), fmt_bound(o.hi),
                                                    o.hi_open ? ")" : "]")
                                      : range_rule(o);
  throw OptionProblem{fmt::format("must be {} (got {})", rule, shown(src))};
}

void check_choice(const Option& o, const std::string& s) {
  if (o.choices.empty()) return;
  for (const auto& c : o.choices)
    if (s == c) return;
  const std::string near = closest_key(s, o.choices);
  throw OptionProblem{fmt::format("'{}' is not one of: {}{}", s, join(o.choices),
                                  near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near))};
}

// A list item or map value that names a string: strings, and plain scalars written unquoted.
bool item_text(const json& j, std::string* out) {
  if (j.is_string()) return *out = j.get<std::string>(), true;
  if (j.is_number() || j.is_boolean()) return *out = j.dump(), true;
  return false;
}

std::string resolve_path(const Option& o, const OptionValue& v, const std::string& p) {
  if (!o.is_path || v.base_dir.empty() || p.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(v.base_dir) / p).string();
}

}  // namespace

OptionError::OptionError(const std::string& component, std::string where_, std::string key_, std::string problem_,
                         bool names_key_, OptionSource source_)
    : Error("[" + component + "] " +
            (names_key_ || key_.empty()                                     ? where_ + ": " + problem_
             : source_ == OptionSource::File || source_ == OptionSource::Json ? where_ + ": key '" + key_ + "' " + problem_
                                                                               : where_ + ": " + problem_)),
      where(std::move(where_)),
      key(std::move(key_)),
      problem(std::move(problem_)),
      names_key(names_key_),
      source(source_) {}

json option_convert(const Option& o, const OptionValue& v) {
  auto bad = [&](const char* want) { return OptionProblem{fmt::format("must be {} (got {})", want, shown(v))}; };
  const bool text = v.is_text && !v.quoted;
  switch (o.kind) {
    case OptionKind::String: {
      std::string s;
      if (v.is_text) s = v.text;
      else if (v.json.is_string()) s = v.json.get<std::string>();
      else if (v.json.is_null()) s = "";
      else if (v.json.is_array() && o.list_as_csv) {
        for (const auto& x : v.json) {
          std::string item;
          if (!item_text(x, &item)) throw bad("a list of names");
          s += (s.empty() ? "" : ",") + item;
        }
      } else throw bad("a string");
      check_choice(o, s);
      return resolve_path(o, v, s);
    }
    case OptionKind::Bool: {
      bool b = false;
      if (v.json.is_boolean()) return v.json.get<bool>();
      if (text && parse_bool_text(v.text, &b)) return b;
      throw bad("true or false");
    }
    case OptionKind::Int: {
      json j;
      if (text) {
        if (!parse_int_text(v.text, &j)) throw bad("an integer");
      } else if (!v.is_text && (v.json.is_number_integer() || v.json.is_number_unsigned())) {
        j = v.json;
      } else {
        throw bad("an integer");
      }
      const long double x = j.is_number_unsigned() ? (long double)j.get<uint64_t>() : (long double)j.get<int64_t>();
      check_range(o, x, v);
      return j;
    }
    case OptionKind::Number: {
      double d = 0;
      if (text) {
        if (!parse_number_text(v.text, &d)) throw bad("a number");
      } else if (!v.is_text && v.json.is_number()) {
        d = v.json.get<double>();
      } else {
        throw bad("a number");
      }
      if (!std::isfinite(d)) throw bad("a finite number");
      check_range(o, d, v);
      return d;
    }
    case OptionKind::StringList: {
      std::vector<std::string> items;
      if (v.is_text && (v.source == OptionSource::Env || v.source == OptionSource::Flag)) {
        items = split_csv(v.text);
      } else if (v.is_text && o.scalar_as_list) {
        items = {v.text};
      } else if (v.json.is_array()) {
        for (const auto& x : v.json) {
          std::string s;
          if (!item_text(x, &s)) throw bad("a list of strings, e.g. [a, b]");
          items.push_back(s);
        }
      } else {
        throw bad("a list of strings, e.g. [a, b]");
      }
      if (items.size() < o.min_items || items.size() > o.max_items)
        throw OptionProblem{fmt::format("must have {} to {} items (got {})", o.min_items, o.max_items, items.size())};
      for (auto& s : items) {
        check_choice(o, s);
        s = resolve_path(o, v, s);
      }
      return items;
    }
    case OptionKind::StringMap: {
      json m = json::object();
      if (v.is_text && (v.source == OptionSource::Env || v.source == OptionSource::Flag)) {
        for (const std::string& kv : split_csv(v.text)) {
          const size_t eq = kv.find('=');
          if (eq == std::string::npos || eq == 0) throw bad("KEY=VALUE pairs separated by ','");
          m[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
      } else if (v.json.is_object()) {
        for (auto it = v.json.begin(); it != v.json.end(); ++it) {
          std::string s;
          if (!item_text(it.value(), &s)) throw bad("a mapping of name: name");
          m[it.key()] = s;
        }
      } else {
        throw bad("a mapping of name: name");
      }
      return m;
    }
    case OptionKind::NumberList: {
      std::vector<double> items;
      if (v.is_text && (v.source == OptionSource::Env || v.source == OptionSource::Flag)) {
        for (const std::string& s : split_csv(v.text)) {
          double d = 0;
          if (!parse_number_text(s, &d)) throw OptionProblem{fmt::format("'{}' is not a number", s)};
          items.push_back(d);
        }
      } else if (v.json.is_array()) {
        for (const auto& x : v.json) {
          if (!x.is_number() || !std::isfinite(x.get<double>())) throw bad("a list of numbers, e.g. [0.9, 0.1]");
          items.push_back(x.get<double>());
        }
      } else {
        throw bad("a list of numbers, e.g. [0.9, 0.1]");
      }
      if (items.size() < o.min_items || items.size() > o.max_items)
        throw OptionProblem{fmt::format("give {} to {} numbers (got {})", o.min_items, o.max_items, items.size())};
      for (double d : items) {
        OptionValue item = v;
        item.is_text = false;
        item.json = d;
        check_range(o, d, item);
      }
      return items;
    }
  }
  throw bad("a value");
}

std::string option_flag_of(const std::string& key) {
  std::string f = "--" + key;
  std::replace(f.begin(), f.end(), '_', '-');
  std::replace(f.begin(), f.end(), '.', '-');
  return f;
}

std::string option_env_of(const std::string& key) {
  std::string e = "LATHE_" + key;
  for (char& c : e) c = c == '.' || c == '-' ? '_' : char(std::toupper((unsigned char)c));
  return e;
}

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  // Optimal string alignment distance: insert, delete, substitute, swap neighbours, each 1.
  auto dist = [](const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); i++) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); j++) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); i++)
      for (size_t j = 1; j <= b.size(); j++) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[a.size()][b.size()];
  };
  if (key.size() > 64) return "";  // not a typo of any key; spares the quadratic table
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& k : known) {
    std::string a = key;
    std::replace(a.begin(), a.end(), '-', '_');  // flag spelling of a key: a typo of 0
    const size_t d = dist(a, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  const size_t limit = std::min<size_t>(2, std::max<size_t>(1, key.size() / 3));
  return best_d <= limit ? best : "";
}

const Option* OptionTableBase::find(const std::string& key) const {
  for (const auto& o : options_)
    if (o.key == key) return &o;
  return nullptr;
}

std::vector<std::string> OptionTableBase::keys() const {
  std::vector<std::string> k;
  for (const auto& o : options_) k.push_back(o.key);
  return k;
}

void OptionTableBase::apply(void* obj, const OptionSettings& settings) const {
  for (const OptionSetting& s : settings) {
    json v;
    try {
      v = option_convert(*s.option, s.value);
    } catch (const OptionProblem& p) {
      throw OptionError(component_, s.value.where, s.option->key, p.message, false, s.value.source);
    }
    s.option->set(obj, v);
  }
}

OptionSettings OptionTableBase::from_env() const {
  OptionSettings out;
  for (const auto& o : options_) {
    if (o.env.empty()) continue;
    const char* e = std::getenv(o.env.c_str());
    if (!e) continue;
    OptionValue v;
    v.is_text = true;
    v.text = e;
    v.source = OptionSource::Env;
    v.where = o.env;
    out.push_back({&o, std::move(v)});
  }
  return out;
}

OptionSettings OptionTableBase::from_json(const json& j, const std::string& where) const {
  if (!j.is_object()) throw OptionError(component_, where, "", "must be a JSON object of key: value", false, OptionSource::Json);
  OptionSettings out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Option* o = find(it.key());
    if (!o) throw OptionError(component_, where, it.key(), fmt::format("unknown key '{}'", it.key()), true, OptionSource::Json);
    OptionValue v;
    v.json = it.value();
    v.source = OptionSource::Json;
    v.where = where;
    out.push_back({o, std::move(v)});
  }
  return out;
}

json OptionTableBase::to_json(const void* obj) const {
  json j = json::object();
  for (const auto& o : options_) {
    if (!o.in_json) continue;
    json* at = &j;
    size_t i = 0;
    for (size_t dot; (dot = o.key.find('.', i)) != std::string::npos; i = dot + 1) at = &(*at)[o.key.substr(i, dot - i)];
    (*at)[o.key.substr(i)] = o.get(obj);
  }
  return j;
}

void OptionTableBase::check(const void* obj, const void* defaults) const {
  for (const auto& o : options_) {
    OptionValue v;
    v.json = o.get(obj);
    const bool is_default = json(v.json) == o.get(defaults);  // both as json: clang finds ordered_json == json ambiguous
    v.source = OptionSource::Flag;
    v.where = o.flag.empty() ? o.key : o.flag;
    if (o.required && (v.json.is_null() || (v.json.is_string() && v.json.get<std::string>().empty()) ||
                       (v.json.is_array() && v.json.empty())))
      throw OptionError(component_, v.where, o.key, fmt::format("required ({})", o.help), false, OptionSource::Flag);
    if (is_default) continue;
    try {
      option_convert(o, v);
    } catch (const OptionProblem& p) {
      throw OptionError(component_, v.where, o.key, p.message, false, OptionSource::Flag);
    }
  }
}

std::string OptionTableBase::to_string(const void* obj) const {
  std::string out;
  for (const auto& o : options_) {
    if (!o.in_json) continue;
    const json v = o.get(obj);
    std::string s;
    if (v.is_string()) s = v.get<std::string>();
    else if (v.is_number_float()) s = fmt::format("{}", v.get<double>());
    else s = v.dump();
    out += fmt::format("{}: {}\n", o.key, s);
  }
  return out;
}

}  // namespace lathe
