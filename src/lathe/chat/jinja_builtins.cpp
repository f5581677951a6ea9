// Filters, tests, methods and global functions of the Jinja subset. Names and argument orders
// follow Jinja2 (filters, tests), Python (str/dict/list methods) and transformers (tojson,
// raise_exception, strftime_now) so a template written for transformers renders the same here.
// Case mapping (upper, lower, title, capitalize) is ASCII-only: Hangul has no case, and templates only
// case-map role names.
#include <algorithm>
#include <cmath>
#include <ctime>

#include "lathe/core/error.h"
#include "lathe/core/html_escape.h"
#include "lathe/core/utf8.h"
#include "lathe/chat/jinja_interp.h"

namespace lathe::jinja {
namespace {

const Value* kwarg(const Dict& kw, const char* name) {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

// Positional argument i, else keyword `name`, else undefined.
Value arg(const Args& args, const Dict& kw, size_t i, const char* name) {
  if (i < args.size()) return args[i];
  if (const Value* v = kwarg(kw, name)) return *v;
  return Value();
}

std::string ascii_upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  return s;
}
std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return s;
}
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python str.title(): a letter is upper-cased when the previous character is not a letter.
std::string python_title(const std::string& s) {
  std::string out = s;
  bool prev_letter = false;
  for (char& c : out) {
    if (is_alpha(c)) {
      c = prev_letter ? ascii_lower(std::string(1, c))[0] : ascii_upper(std::string(1, c))[0];
      prev_letter = true;
    } else {
      prev_letter = (static_cast<unsigned char>(c) & 0x80) != 0;  // non-ASCII letters count as letters
    }
  }
  return out;
}

// Jinja's title filter: words begin after whitespace or one of - ( { [ <.
std::string jinja_title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    bool sep = is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      start = true;
      continue;
    }
    c = start ? ascii_upper(std::string(1, c))[0] : ascii_lower(std::string(1, c))[0];
    start = false;
  }
  return out;
}

// strip/lstrip/rstrip keeping provenance. chars undefined/none: whitespace.
Value strip_value(const Value& v, const Value& chars, bool left, bool right) {
  const std::string& s = v.s();
  auto in_set = [&](char c) {
    if (chars.is_string()) return chars.s().find(c) != std::string::npos;
    return is_space(c);
  };
  size_t a = 0, b = s.size();
  if (left)
    while (a < b && in_set(s[a])) ++a;
  if (right)
    while (b > a && in_set(s[b - 1])) --b;
  return Value::string(str_slice(v.str(), a, b));
}

Value split_value(const Value& v, const Value& sep, int64_t maxsplit) {
  const std::string& s = v.s();
  List out;
  if (!sep.is_string()) {  // split on whitespace runs, no empty parts
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_space(s[i])) ++i;
      if (i >= s.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && is_space(s[e - 1])) --e;
        out.push_back(Value::string(str_slice(v.str(), i, e)));
        break;
      }
      while (j < s.size() && !is_space(s[j])) ++j;
      out.push_back(Value::string(str_slice(v.str(), i, j)));
      i = j;
    }
    return Value::list(std::move(out));
  }
  const std::string& d = sep.s();
  if (d.empty()) lathe::fail("chat-template", "split(): empty separator");
  size_t i = 0;
  while (true) {
    size_t j = s.find(d, i);
    if (j == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.push_back(Value::string(str_slice(v.str(), i, s.size())));
      break;
    }
    out.push_back(Value::string(str_slice(v.str(), i, j)));
    i = j + d.size();
  }
  return Value::list(std::move(out));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t i = 0;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    for (size_t k = 0; k <= s.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (k < s.size()) out += s[k];
    }
    return out;
  }
  while (true) {
    size_t j = s.find(from, i);
    if (j == std::string::npos || (count >= 0 && done >= count)) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
    ++done;
  }
  out.append(s, i, std::string::npos);
  return out;
}

// "a.b.0" attribute paths, as selectattr/map/join/sort take them.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('.', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (cur.is_mapping()) {
      Value* x = cur.find(part);
      cur = x ? *x : Value::undefined(part);
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      size_t k = std::stoul(part);
      cur = k < cur.items().size() ? cur.items()[k] : Value::undefined(part);
    } else {
      return Value::undefined(part);
    }
    i = j + 1;
  }
  return cur;
}

std::string join_values(const List& items, const Value& sep, Str* out) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i && sep.is_string()) str_append(*out, sep.str());
    if (items[i].is_string()) str_append(*out, items[i].str());
    else out->s += items[i].to_str();
  }
  return out->s;
}

bool sort_less(const Value& a, const Value& b) {
  if (a.is_string() && b.is_string()) return a.s() < b.s();
  return a.as_float() < b.as_float();
}

}  // namespace

List Interp::iterate(Pos pos, const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
    case Value::Type::None: return {};
    case Value::Type::List: return v.items();
    case Value::Type::Dict:
    case Value::Type::Namespace: {
      List keys;
      for (const auto& [k, x] : v.entries()) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Type::String: {
      if (probe_ && tainted(v)) taint_fail("iterating over a content");
      List chars;
      const std::string& s = v.s();
      for (size_t i = 0; i < s.size();) {
        size_t j = i + 1;
        while (j < s.size() && utf8_is_continuation(s[j])) ++j;
        chars.push_back(Value::string(str_slice(v.str(), i, j)));
        i = j;
      }
      return chars;
    }
    default: fail_at(pos, fmt::format("a {} value is not iterable", v.type_name()));
  }
}

Value Interp::apply_filter(Pos pos, const std::string& name, const Value& v, Args args, const Dict& kw) {
  auto need_string = [&]() {
    if (!v.is_string()) fail_at(pos, fmt::format("filter '{}' expects a string, got {}", name, v.type_name()));
  };
  auto str_of = [&](const Value& x) { return x.is_string() ? x : Value::string(x.to_str()); };
  if (name == "trim") {
    Value s = str_of(v);
    return strip_value(s, arg(args, kw, 0, "chars"), true, true);
  }
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value::integer(static_cast<int64_t>(utf8_length(v.s())));
    if (v.is_list()) return Value::integer(static_cast<int64_t>(v.items().size()));
    if (v.is_mapping()) return Value::integer(static_cast<int64_t>(v.entries().size()));
    if (v.is_undefined()) return Value::integer(0);
    fail_at(pos, fmt::format("object of type {} has no length", v.type_name()));
  }
  if (name == "tojson") {
    // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=...)
    Value ind = arg(args, kw, 0, "indent");
    Value sort = arg(args, kw, 2, "sort_keys");
    Value seps = arg(args, kw, 1, "separators");
    int indent = ind.type() == Value::Type::Int ? static_cast<int>(std::clamp<int64_t>(ind.as_int(), 0, 64)) : -1;
    std::string item_sep = indent >= 0 ? "," : ", ", key_sep = ": ";
    if (seps.is_list() && seps.items().size() == 2) {
      item_sep = seps.items()[0].to_str();
      key_sep = seps.items()[1].to_str();
    }
    std::string out = python_json_dumps(v, indent, sort.truthy(), item_sep, key_sep);
    check_size(pos, out.size());
    return Value::string(std::move(out));
  }
  if (name == "upper") return Value::string(ascii_upper(v.to_str()));
  if (name == "lower") return Value::string(ascii_lower(v.to_str()));
  if (name == "title") return Value::string(jinja_title(v.to_str()));
  if (name == "capitalize") {
    std::string s = ascii_lower(v.to_str());
    if (!s.empty()) s[0] = ascii_upper(s.substr(0, 1))[0];
    return Value::string(s);
  }
  if (name == "default" || name == "d") {
    bool boolean = arg(args, kw, 1, "boolean").truthy();
    Value dflt = arg(args, kw, 0, "default_value");
    if (dflt.is_undefined()) dflt = Value::string("");
    if (v.is_undefined() || (boolean && !v.truthy())) return dflt;
    return v;
  }
  if (name == "first" || name == "last") {
    List items = iterate(pos, v);
    if (items.empty()) return Value::undefined(name);
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    Value sep = arg(args, kw, 0, "d");
    Value attr = arg(args, kw, 1, "attribute");
    List items = iterate(pos, v);
    if (attr.is_string())
      for (Value& x : items) x = attr_path(x, attr.s());
    Str out;
    join_values(items, sep.is_string() ? sep : Value::string(""), &out);
    check_size(pos, out.s.size());
    return Value::string(std::move(out));
  }
  if (name == "replace") {
    Value s = str_of(v);
    Value cnt = arg(args, kw, 2, "count");
    std::string r = replace_all(s.s(), arg(args, kw, 0, "old").to_str(), arg(args, kw, 1, "new").to_str(),
                                cnt.type() == Value::Type::Int ? cnt.as_int() : -1);
    check_size(pos, r.size());
    return Value::string(std::move(r));
  }
  if (name == "list") return Value::list(iterate(pos, v));
  if (name == "string") return str_of(v);
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    // Jinja's escape: & < > " ' become entities, '"' spelled &#34; as markupsafe does.
    return Value::string(html_escape(v.to_str(), HtmlQuote::kNumeric));
  }
  if (name == "int") {
    Value dflt = arg(args, kw, 0, "default");
    if (dflt.is_undefined()) dflt = Value::integer(0);
    if (v.type() == Value::Type::Int || v.type() == Value::Type::Bool) return Value::integer(v.as_int());
    if (v.type() == Value::Type::Float) {
      if (!std::isfinite(v.as_float()) || std::fabs(v.as_float()) > 9e18) return dflt;
      return Value::integer(static_cast<int64_t>(v.as_float()));
    }
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = strip_value(v, Value(), true, true).s();
        int64_t i = std::stoll(s, &used);
        if (used == s.size()) return Value::integer(i);
        double d = std::stod(s, &used);
        if (used == s.size() && std::fabs(d) < 9e18) return Value::integer(static_cast<int64_t>(d));
      } catch (const std::exception&) {
      }
    }
    return dflt;
  }
  if (name == "float") {
    Value dflt = arg(args, kw, 0, "default");
    if (dflt.is_undefined()) dflt = Value::number(0.0);
    if (v.is_number() || v.type() == Value::Type::Bool) return Value::number(v.as_float());
    if (v.is_string()) {
      try {
        size_t used = 0;
        std::string s = strip_value(v, Value(), true, true).s();
        double d = std::stod(s, &used);
        if (used == s.size()) return Value::number(d);
      } catch (const std::exception&) {
      }
    }
    return dflt;
  }
  if (name == "abs") {
    if (v.type() == Value::Type::Float) return Value::number(std::fabs(v.as_float()));
    if (v.type() == Value::Type::Int) return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    fail_at(pos, "filter 'abs' expects a number");
  }
  if (name == "round") {
    Value prec = arg(args, kw, 0, "precision");
    Value method = arg(args, kw, 1, "method");
    int p = prec.type() == Value::Type::Int ? static_cast<int>(std::clamp<int64_t>(prec.as_int(), -20, 20)) : 0;
    double scale = std::pow(10.0, p), x = v.as_float() * scale;
    std::string m = method.is_string() ? method.s() : "common";
    double r = m == "ceil" ? std::ceil(x) : m == "floor" ? std::floor(x) : std::round(x);
    return Value::number(r / scale);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_mapping()) fail_at(pos, "filter 'items' expects a mapping");
    List out;
    for (const auto& [k, x] : v.entries()) out.push_back(Value::list({Value::string(k), x}));
    return Value::list(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "selectattr" || name == "select";
    size_t t = by_attr ? 1 : 0;
    if (by_attr && (args.empty() || !args[0].is_string()))
      fail_at(pos, fmt::format("filter '{}' needs an attribute name", name));
    List out;
    for (const Value& item : iterate(pos, v)) {
      Value x = by_attr ? attr_path(item, args[0].s()) : item;
      bool r;
      if (args.size() > t) {
        if (!args[t].is_string()) fail_at(pos, fmt::format("filter '{}': test name must be a string", name));
        r = apply_test(pos, args[t].s(), x, Args(args.begin() + static_cast<long>(t) + 1, args.end()));
      } else {
        r = x.truthy();
      }
      if (r == keep_if) out.push_back(item);
    }
    return Value::list(std::move(out));
  }
  if (name == "map") {
    List out;
    const Value* attribute = kwarg(kw, "attribute");
    for (const Value& item : iterate(pos, v)) {
      if (attribute) {
        Value x = attr_path(item, attribute->to_str());
        if (x.is_undefined())
          if (const Value* d = kwarg(kw, "default")) x = *d;
        out.push_back(x);
      } else if (!args.empty() && args[0].is_string()) {
        out.push_back(apply_filter(pos, args[0].s(), item, Args(args.begin() + 1, args.end()), {}));
      } else {
        fail_at(pos, "filter 'map' needs attribute= or a filter name");
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "unique") {
    List out;
    for (const Value& item : iterate(pos, v)) {
      bool seen = false;
      for (const Value& o : out) seen = seen || values_equal(o, item);
      if (!seen) out.push_back(item);
    }
    return Value::list(std::move(out));
  }
  if (name == "reverse") {
    if (v.is_string()) {
      List chars = iterate(pos, v);
      std::string out;
      for (size_t i = chars.size(); i-- > 0;) out += chars[i].s();
      return Value::string(std::move(out));
    }
    List items = iterate(pos, v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort") {
    List items = iterate(pos, v);
    bool rev = arg(args, kw, 0, "reverse").truthy();
    Value attr = arg(args, kw, 2, "attribute");
    auto key = [&](const Value& x) { return attr.is_string() ? attr_path(x, attr.s()) : x; };
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
      return rev ? sort_less(key(b), key(a)) : sort_less(key(a), key(b));
    });
    return Value::list(std::move(items));
  }
  if (name == "min" || name == "max" || name == "sum") {
    List items = iterate(pos, v);
    if (name == "sum") {
      Value acc = Value::integer(0);
      for (const Value& x : items)
        acc = (acc.type() == Value::Type::Float || x.type() == Value::Type::Float)
                  ? Value::number(acc.as_float() + x.as_float())
                  : Value::integer(acc.as_int() + x.as_int());
      return acc;
    }
    if (items.empty()) return Value::undefined(name);
    Value best = items[0];
    for (const Value& x : items)
      if (name == "min" ? sort_less(x, best) : sort_less(best, x)) best = x;
    return best;
  }
  if (name == "indent") {
    need_string();
    Value w = arg(args, kw, 0, "width");
    std::string pad = w.is_string() ? w.s() : std::string(w.type() == Value::Type::Int ? static_cast<size_t>(std::clamp<int64_t>(w.as_int(), 0, 256)) : 4, ' ');
    bool first = arg(args, kw, 1, "first").truthy(), blank = arg(args, kw, 2, "blank").truthy();
    const std::string& s = v.s();
    std::string out;
    size_t i = 0;
    bool line_no = 0;
    while (i <= s.size()) {
      size_t j = s.find('\n', i);
      std::string line = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
      bool indent = (line_no || first) && (blank || !line.empty());
      if (indent) out += pad;
      out += line;
      if (j == std::string::npos) break;
      out += '\n';
      i = j + 1;
      line_no = true;
    }
    check_size(pos, out.size());
    return Value::string(std::move(out));
  }
  if (name == "wordcount") return Value::integer(static_cast<int64_t>(split_value(str_of(v), Value(), -1).items().size()));
  if (name == "dictsort") {
    if (!v.is_mapping()) fail_at(pos, "filter 'dictsort' expects a mapping");
    Dict d = v.entries();
    std::stable_sort(d.begin(), d.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    List out;
    for (auto& [k, x] : d) out.push_back(Value::list({Value::string(k), x}));
    return Value::list(std::move(out));
  }
  fail_at(pos, fmt::format("unsupported filter '{}'", name));
}

bool Interp::apply_test(Pos pos, const std::string& name, const Value& v, const Args& args) {
  using T = Value::Type;
  auto need_arg = [&]() -> const Value& {
    if (args.empty()) fail_at(pos, fmt::format("test '{}' needs an argument", name));
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_list() || v.is_mapping() || v.is_string();
  if (name == "sequence") return v.is_list() || v.is_mapping() || v.is_string();
  if (name == "number") return v.is_number() || v.type() == T::Bool;
  if (name == "integer") return v.type() == T::Int;
  if (name == "float") return v.type() == T::Float;
  if (name == "boolean") return v.type() == T::Bool;
  if (name == "true") return v.type() == T::Bool && v.as_bool();
  if (name == "false") return v.type() == T::Bool && !v.as_bool();
  if (name == "callable") return v.type() == T::Macro || v.type() == T::Function;
  if (name == "odd" || name == "even") {
    if (v.type() != T::Int) fail_at(pos, fmt::format("test '{}' expects an integer", name));
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& d = need_arg();
    if (v.type() != T::Int || d.type() != T::Int || d.as_int() == 0) fail_at(pos, "test 'divisibleby' expects integers");
    return v.as_int() % d.as_int() == 0;
  }
  if (name == "lower") return v.is_string() && ascii_lower(v.s()) == v.s();
  if (name == "upper") return v.is_string() && ascii_upper(v.s()) == v.s();
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return values_equal(v, need_arg());
  if (name == "ne" || name == "!=") return !values_equal(v, need_arg());
  if (name == "in") {
    const Value& c = need_arg();
    if (c.is_string()) {
      if (!v.is_string()) fail_at(pos, fmt::format("'in <string>' requires a string, not {}", v.type_name()));
      return c.s().find(v.s()) != std::string::npos;
    }
    if (c.is_list()) {
      for (const Value& x : c.items())
        if (values_equal(x, v)) return true;
      return false;
    }
    if (c.is_mapping()) return v.is_string() && c.find(v.s()) != nullptr;
    // An undefined container holds nothing (Jinja2's Undefined iterates as empty; jinja.js agrees):
    // SmolLM3 asks `"/system_override" in system_message` when there is no system message.
    if (c.is_undefined()) return false;
    fail_at(pos, fmt::format("a {} value does not support 'in'", c.type_name()));
  }
  if (name == "lt" || name == "lessthan" || name == "gt" || name == "greaterthan" || name == "le" || name == "ge") {
    const Value& o = need_arg();
    if (!v.is_number() || !o.is_number()) fail_at(pos, fmt::format("test '{}' expects numbers", name));
    double a = v.as_float(), b = o.as_float();
    if (name == "lt" || name == "lessthan") return a < b;
    if (name == "gt" || name == "greaterthan") return a > b;
    return name == "le" ? a <= b : a >= b;
  }
  fail_at(pos, fmt::format("unsupported test '{}'", name));
}

Value Interp::call_method(Pos pos, const Value& obj, const std::string& name, const Args& args, const Dict& kw,
                          bool* found) {
  *found = true;
  if (obj.is_string()) {
    const std::string& s = obj.s();
    if (name == "strip") return strip_value(obj, arg(args, kw, 0, "chars"), true, true);
    if (name == "lstrip") return strip_value(obj, arg(args, kw, 0, "chars"), true, false);
    if (name == "rstrip") return strip_value(obj, arg(args, kw, 0, "chars"), false, true);
    if (name == "split") {
      Value m = arg(args, kw, 1, "maxsplit");
      return split_value(obj, arg(args, kw, 0, "sep"), m.type() == Value::Type::Int ? m.as_int() : -1);
    }
    if (name == "startswith" || name == "endswith") {
      Value p = arg(args, kw, 0, "prefix");
      List cands = p.is_list() ? p.items() : List{p};
      for (const Value& c : cands) {
        if (!c.is_string()) fail_at(pos, fmt::format("{}() expects a string", name));
        const std::string& x = c.s();
        bool hit = name == "startswith" ? s.compare(0, x.size(), x) == 0 && s.size() >= x.size()
                                        : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
        if (hit) return Value::boolean(true);
      }
      return Value::boolean(false);
    }
    if (name == "upper") return Value::string(ascii_upper(s));
    if (name == "lower") return Value::string(ascii_lower(s));
    if (name == "title") return Value::string(python_title(s));
    if (name == "capitalize") return apply_filter(pos, "capitalize", obj, {}, {});
    if (name == "replace") {
      Value cnt = arg(args, kw, 2, "count");
      std::string r = replace_all(s, arg(args, kw, 0, "old").to_str(), arg(args, kw, 1, "new").to_str(),
                                  cnt.type() == Value::Type::Int ? cnt.as_int() : -1);
      check_size(pos, r.size());
      return Value::string(std::move(r));
    }
    if (name == "find") {
      size_t p = s.find(arg(args, kw, 0, "sub").to_str());
      return Value::integer(p == std::string::npos ? -1 : static_cast<int64_t>(utf8_length(s.substr(0, p))));
    }
    if (name == "count") {
      std::string sub = arg(args, kw, 0, "sub").to_str();
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    if (name == "join") {
      Str out;
      join_values(iterate(pos, arg(args, kw, 0, "iterable")), obj, &out);
      check_size(pos, out.s.size());
      return Value::string(std::move(out));
    }
    if (name == "isdigit") return Value::boolean(!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit));
    if (name == "isspace") return Value::boolean(!s.empty() && std::all_of(s.begin(), s.end(), is_space));
    if (name == "format") {
      // str.format with {} / {0} / {name} fields and {{ }} escapes; no format specs.
      std::string out;
      size_t auto_idx = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') { out += '{'; ++i; continue; }
        if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') { out += '}'; ++i; continue; }
        if (s[i] != '{') { out += s[i]; continue; }
        size_t j = s.find('}', i);
        if (j == std::string::npos) fail_at(pos, "format(): unmatched '{'");
        std::string field = s.substr(i + 1, j - i - 1);
        if (field.find_first_of(":!") != std::string::npos) fail_at(pos, "unsupported: format specs in format()");
        Value x;
        if (field.empty()) x = auto_idx < args.size() ? args[auto_idx++] : Value();
        else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
          size_t k = std::stoul(field);
          x = k < args.size() ? args[k] : Value();
        } else if (const Value* kv = kwarg(kw, field.c_str())) {
          x = *kv;
        }
        out += x.to_str();
        check_size(pos, out.size());
        i = j;
      }
      return Value::string(std::move(out));
    }
  } else if (obj.is_mapping()) {
    if (name == "items") return apply_filter(pos, "items", obj, {}, {});
    if (name == "keys") return Value::list(iterate(pos, obj));
    if (name == "values") {
      List out;
      for (const auto& [k, x] : obj.entries()) out.push_back(x);
      return Value::list(std::move(out));
    }
    if (name == "get") {
      Value key = arg(args, kw, 0, "key");
      Value* x = key.is_string() ? obj.find(key.s()) : nullptr;
      if (x) return *x;
      Value d = arg(args, kw, 1, "default");
      return d.is_undefined() ? Value::none() : d;
    }
    if (name == "cycle" && obj.find("index0") && !args.empty()) {  // loop.cycle(a, b, ...)
      return args[static_cast<size_t>(obj.find("index0")->as_int()) % args.size()];
    }
  } else if (obj.is_list()) {
    if (name == "append") {
      check_size(pos, obj.items().size() + 1);
      obj.items().push_back(arg(args, kw, 0, "object"));
      return Value::none();
    }
    if (name == "pop") {
      if (obj.items().empty()) fail_at(pos, "pop from empty list");
      Value i = arg(args, kw, 0, "index");
      int64_t n = static_cast<int64_t>(obj.items().size());
      int64_t k = i.type() == Value::Type::Int ? i.as_int() : n - 1;
      if (k < 0) k += n;
      if (k < 0 || k >= n) fail_at(pos, "pop index out of range");
      Value r = obj.items()[static_cast<size_t>(k)];
      obj.items().erase(obj.items().begin() + k);
      return r;
    }
    if (name == "index") {
      Value x = arg(args, kw, 0, "value");
      for (size_t i = 0; i < obj.items().size(); ++i)
        if (values_equal(obj.items()[i], x)) return Value::integer(static_cast<int64_t>(i));
      fail_at(pos, "list.index(x): x not in list");
    }
  } else if (obj.is_undefined()) {
    fail_at(pos, fmt::format("'{}' is undefined (calling .{}())", obj.undefined_name(), name));
  }
  *found = false;
  return Value();
}

bool Interp::is_function(const std::string& name) {
  return name == "range" || name == "namespace" || name == "raise_exception" || name == "strftime_now" ||
         name == "dict";
}

Value Interp::call_function(Pos pos, const std::string& name, const Args& args, const Dict& kw) {
  if (name == "raise_exception") {
    fail_at(pos, "raise_exception: " + (args.empty() ? std::string("(no message)") : args[0].to_str()));
  }
  if (name == "namespace" || name == "dict") {
    Dict d;
    if (!args.empty() && args[0].is_mapping()) d = args[0].entries();
    for (const auto& [k, v] : kw) {
      bool replaced = false;
      for (auto& [dk, dv] : d)
        if (dk == k) {
          dv = v;
          replaced = true;
        }
      if (!replaced) d.emplace_back(k, v);
    }
    return name == "namespace" ? Value::ns(std::move(d)) : Value::dict(std::move(d));
  }
  if (name == "range") {
    for (const Value& a : args)
      if (a.type() != Value::Type::Int) fail_at(pos, "range() expects integers");
    int64_t start = 0, stop = 0, stepv = 1;
    if (args.size() == 1) stop = args[0].as_int();
    else if (args.size() >= 2) {
      start = args[0].as_int();
      stop = args[1].as_int();
      if (args.size() >= 3) stepv = args[2].as_int();
    } else {
      fail_at(pos, "range() expects 1 to 3 arguments");
    }
    if (stepv == 0) fail_at(pos, "range() step must not be zero");
    List out;
    for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
      if (out.size() >= opts_.limits.max_range) fail_at(pos, "range() too long");
      out.push_back(Value::integer(i));
    }
    return Value::list(std::move(out));
  }
  if (name == "strftime_now") {
    if (args.empty() || !args[0].is_string()) fail_at(pos, "strftime_now() expects a format string");
    std::time_t t = opts_.now ? *opts_.now : std::time(nullptr);
    std::tm tm{};
    if (opts_.now) gmtime_r(&t, &tm);
    else localtime_r(&t, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, args[0].s().c_str(), &tm);
    return Value::string(std::string(buf, n));
  }
  fail_at(pos, fmt::format("unsupported function '{}'", name));
}

}  // namespace lathe::jinja
