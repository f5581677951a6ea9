#include "lathe/chat/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"

namespace lathe::jinja {

Str str_slice(const Str& in, size_t a, size_t b) {
  Str out;
  b = std::min(b, in.s.size());
  a = std::min(a, b);
  out.s = in.s.substr(a, b - a);
  for (const Origin& o : in.origins) {
    size_t lo = std::max(o.pos, a), hi = std::min(o.pos + o.len, b);
    // Zero-length origins survive when they sit inside (or on the edge of) the slice.
    if (lo > hi || (lo == hi && o.len > 0)) continue;
    out.origins.push_back(Origin{lo - a, hi - lo, o.source, o.src_pos + (lo - o.pos)});
  }
  return out;
}

void str_append(Str& dst, const Str& src) {
  size_t base = dst.s.size();
  dst.s += src.s;
  for (Origin o : src.origins) {
    o.pos += base;
    // Merge a run that continues the previous one, so one message's content stays one origin.
    if (!dst.origins.empty()) {
      Origin& p = dst.origins.back();
      if (p.source == o.source && p.pos + p.len == o.pos && p.src_pos + p.len == o.src_pos) {
        p.len += o.len;
        continue;
      }
    }
    dst.origins.push_back(o);
  }
}

Value Value::none() {
  Value v;
  v.type_ = Type::None;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::Bool;
  v.b_ = b;
  v.i_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.type_ = Type::Int;
  v.i_ = i;
  return v;
}
Value Value::number(double d) {
  Value v;
  v.type_ = Type::Float;
  v.d_ = d;
  return v;
}
Value Value::string(std::string s) { return string(Str{std::move(s), {}}); }
Value Value::string(Str s) {
  Value v;
  v.type_ = Type::String;
  v.s_ = std::make_shared<const Str>(std::move(s));
  return v;
}
Value Value::list(List items) {
  Value v;
  v.type_ = Type::List;
  v.l_ = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::dict(Dict items) {
  Value v;
  v.type_ = Type::Dict;
  v.m_ = std::make_shared<Dict>(std::move(items));
  return v;
}
Value Value::ns(Dict items) {
  Value v = dict(std::move(items));
  v.type_ = Type::Namespace;
  return v;
}
Value Value::macro(const Stmt* def) {
  Value v;
  v.type_ = Type::Macro;
  v.mac_ = def;
  return v;
}
Value Value::function(std::string name) {
  Value v;
  v.type_ = Type::Function;
  v.uname_ = std::move(name);
  return v;
}
Value Value::undefined(std::string name) {
  Value v;
  v.uname_ = std::move(name);
  return v;
}

namespace {

// Recursive by nature (a Value mirrors the JSON tree); the depth check keeps hostile JSON that did
// not come through core/json_io.h's bounded parser (a value built in memory, an HTTP request) from
// overflowing the stack.
Value value_from_json(const nlohmann::ordered_json& j, int source, int depth) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: return Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: {
      Str s{j.get<std::string>(), {}};
      if (source >= 0) s.origins.push_back(Origin{0, s.s.size(), source, 0});
      return Value::string(std::move(s));
    }
    case nlohmann::ordered_json::value_t::array:
    case nlohmann::ordered_json::value_t::object:
      if (depth >= lathe::kMaxJsonDepth)
        lathe::fail("chat-template", "template variable nested deeper than {} levels", lathe::kMaxJsonDepth);
      if (j.is_array()) {
        List l;
        for (const auto& e : j) l.push_back(value_from_json(e, source, depth + 1));
        return Value::list(std::move(l));
      } else {
        Dict d;
        for (auto it = j.begin(); it != j.end(); ++it) d.emplace_back(it.key(), value_from_json(it.value(), source, depth + 1));
        return Value::dict(std::move(d));
      }
    default: return Value();
  }
}

}  // namespace

Value Value::from_json(const nlohmann::ordered_json& j, int source) { return value_from_json(j, source, 0); }

Value* Value::find(std::string_view key) const {
  if (!is_mapping()) return nullptr;
  for (auto& [k, v] : *m_)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) const {
  if (Value* p = find(key)) {
    *p = std::move(v);
    return;
  }
  m_->emplace_back(key, std::move(v));
}

bool Value::truthy() const {
  switch (type_) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return b_;
    case Type::Int: return i_ != 0;
    case Type::Float: return d_ != 0;
    case Type::String: return !s_->s.empty();
    case Type::List: return !l_->empty();
    case Type::Dict: return !m_->empty();
    default: return true;
  }
}

std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // Python repr switches to exponent form below 1e-4 and from 1e16 on.
  double a = std::fabs(d);
  std::string s;
  if (a != 0 && (a < 1e-4 || a >= 1e16)) {
    // Shortest round-trip mantissa: try increasing precision.
    for (int p = 0; p <= 17; ++p) {
      s = fmt::format("{:.{}e}", d, p);
      if (std::stod(s) == d) break;
    }
    return s;  // fmt writes the exponent as e-05 / e+16, like Python
  }
  s = fmt::format("{}", d);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

static void repr_string(std::string& out, const std::string& s) {
  // Python prefers single quotes unless the string contains one and no double quote.
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  out += q;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<unsigned char>(q)) { out += '\\'; out += q; }
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  out += q;
}

std::string Value::repr() const {
  if (type_ == Type::String) {
    std::string out;
    repr_string(out, s_->s);
    return out;
  }
  return to_str();
}

std::string Value::to_str() const {
  switch (type_) {
    case Type::Undefined: return "";
    case Type::None: return "None";
    case Type::Bool: return b_ ? "True" : "False";
    case Type::Int: return std::to_string(i_);
    case Type::Float: return python_float(d_);
    case Type::String: return s_->s;
    case Type::List: {
      std::string out = "[";
      for (size_t i = 0; i < l_->size(); ++i) out += (i ? ", " : "") + (*l_)[i].repr();
      return out + "]";
    }
    case Type::Dict: {
      std::string out = "{";
      for (size_t i = 0; i < m_->size(); ++i) {
        if (i) out += ", ";
        repr_string(out, (*m_)[i].first);
        out += ": " + (*m_)[i].second.repr();
      }
      return out + "}";
    }
    case Type::Namespace: return "<Namespace>";
    case Type::Macro: return "<Macro>";
    case Type::Function: return "<built-in function " + uname_ + ">";
  }
  return "";
}

nlohmann::ordered_json Value::to_json() const {
  switch (type_) {
    case Type::Undefined:
    case Type::None: return nullptr;
    case Type::Bool: return b_;
    case Type::Int: return i_;
    case Type::Float: return d_;
    case Type::String: return s_->s;
    case Type::List: {
      nlohmann::ordered_json j = nlohmann::ordered_json::array();
      for (const Value& v : *l_) j.push_back(v.to_json());
      return j;
    }
    case Type::Dict:
    case Type::Namespace: {
      nlohmann::ordered_json j = nlohmann::ordered_json::object();
      for (const auto& [k, v] : *m_) j[k] = v.to_json();
      return j;
    }
    default: return nullptr;
  }
}

const char* Value::type_name() const {
  switch (type_) {
    case Type::Undefined: return "undefined";
    case Type::None: return "none";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "string";
    case Type::List: return "list";
    case Type::Dict: return "dict";
    case Type::Namespace: return "namespace";
    case Type::Macro: return "macro";
    case Type::Function: return "function";
  }
  return "?";
}

bool values_equal(const Value& a, const Value& b) {
  using T = Value::Type;
  bool an = a.is_number() || a.type() == T::Bool, bn = b.is_number() || b.type() == T::Bool;
  if (an && bn) {
    if (a.type() == T::Float || b.type() == T::Float) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case T::Undefined:
    case T::None: return true;
    case T::String: return a.s() == b.s();
    case T::List: {
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i)
        if (!values_equal(a.items()[i], b.items()[i])) return false;
      return true;
    }
    case T::Dict:
    case T::Namespace: {
      if (&a.entries() == &b.entries()) return true;
      if (a.entries().size() != b.entries().size()) return false;
      for (const auto& [k, v] : a.entries()) {
        Value* o = b.find(k);
        if (!o || !values_equal(v, *o)) return false;
      }
      return true;
    }
    case T::Macro: return a.macro_def() == b.macro_def();
    case T::Function: return a.function_name() == b.function_name();
    default: return false;
  }
}

static void dump_json_string(std::string& out, const std::string& s) {
  // ensure_ascii=False: non-ASCII bytes pass through; control characters are escaped like Python.
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}

static void dump_json(std::string& out, const Value& v, int indent, int depth, bool sort_keys,
                      const std::string& item_sep, const std::string& key_sep) {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  using T = Value::Type;
  switch (v.type()) {
    case T::Undefined:
    case T::None: out += "null"; break;
    case T::Bool: out += v.as_bool() ? "true" : "false"; break;
    case T::Int: out += std::to_string(v.as_int()); break;
    case T::Float: {
      double d = v.as_float();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : python_float(d);
      break;
    }
    case T::String: dump_json_string(out, v.s()); break;
    case T::List: {
      const List& l = v.items();
      if (l.empty()) { out += "[]"; break; }
      out += '[';
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        dump_json(out, l[i], indent, depth + 1, sort_keys, item_sep, key_sep);
      }
      newline(depth);
      out += ']';
      break;
    }
    case T::Dict:
    case T::Namespace: {
      // Insertion order, as Python dicts keep it, unless sort_keys.
      std::vector<const std::pair<std::string, Value>*> kv;
      for (const auto& e : v.entries()) kv.push_back(&e);
      if (kv.empty()) { out += "{}"; break; }
      if (sort_keys)
        std::stable_sort(kv.begin(), kv.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < kv.size(); ++i) {
        if (i) out += item_sep;
        newline(depth + 1);
        dump_json_string(out, kv[i]->first);
        out += key_sep;
        dump_json(out, kv[i]->second, indent, depth + 1, sort_keys, item_sep, key_sep);
      }
      newline(depth);
      out += '}';
      break;
    }
    default: out += "null";
  }
}

std::string python_json_dumps(const Value& v, int indent, bool sort_keys, const std::string& item_sep,
                              const std::string& key_sep) {
  std::string out;
  dump_json(out, v, indent, 0, sort_keys, item_sep, key_sep);
  return out;
}

}  // namespace lathe::jinja
