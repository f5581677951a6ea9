// Values of the Jinja subset that chat templates use (jinja_parser.h has the grammar).
//
// Strings carry provenance: a list of Origins saying which byte runs came unchanged from a tracked
// source (a chat message's content). Operations that keep bytes verbatim (concatenation, slicing with
// step 1, strip/trim, split, join) keep the origins; any other transformation drops them. The
// evaluator copies origins into the rendered output, so the chat-template layer learns exactly where
// each message's content landed without ever searching the text for it.
//
// Lists, dicts and namespaces are shared by reference, like Python objects, so `list.append` and
// `{% set ns.x = ... %}` are visible through every alias.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/utf8.h"  // utf8_length, utf8_offset: strings index by code point, as in Python

namespace lathe::jinja {

// A run of bytes [pos, pos+len) of a string that is bytes [src_pos, src_pos+len) of source `source`.
// len may be 0: an empty content string still marks where it was emitted.
struct Origin {
  size_t pos = 0, len = 0;
  int source = -1;
  size_t src_pos = 0;
};

struct Str {
  std::string s;
  std::vector<Origin> origins;  // sorted by pos, non-overlapping
};

// The bytes [a, b) of `in`, with origins clipped and shifted.
Str str_slice(const Str& in, size_t a, size_t b);
void str_append(Str& dst, const Str& src);

class Value;
struct Template;
struct Stmt;
using List = std::vector<Value>;
// Insertion-ordered like Python dicts; keys are strings (JSON objects and keyword arguments).
using Dict = std::vector<std::pair<std::string, Value>>;

// A macro defined by {% macro %}; called through the evaluator.
struct Macro {
  const Stmt* def = nullptr;
};

class Value {
 public:
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Macro, Function };

  Value() = default;  // undefined
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value string(Str s);
  static Value list(List items = {});
  static Value dict(Dict items = {});
  static Value ns(Dict items = {});
  static Value macro(const Stmt* def);
  // A built-in global function (range, namespace, raise_exception, ...) named `name`.
  static Value function(std::string name);
  // Converts JSON; every string inside gets origin `source` when source >= 0.
  static Value from_json(const nlohmann::ordered_json& j, int source = -1);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::Undefined; }
  bool is_none() const { return type_ == Type::None; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Float; }
  bool is_list() const { return type_ == Type::List; }
  bool is_mapping() const { return type_ == Type::Dict || type_ == Type::Namespace; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_float() const { return type_ == Type::Int ? static_cast<double>(i_) : d_; }
  const Str& str() const { return *s_; }
  const std::string& s() const { return s_->s; }
  List& items() const { return *l_; }
  Dict& entries() const { return *m_; }
  const Stmt* macro_def() const { return mac_; }
  const std::string& function_name() const { return uname_; }
  // The shared object behind a list or dict (nullptr otherwise): lets the evaluator recognise a
  // message dict however the template reached it (messages[1:], loop_messages, ...).
  const void* identity() const { return m_ ? static_cast<const void*>(m_.get()) : static_cast<const void*>(l_.get()); }
  // Undefined values remember the name they were looked up by, for error messages (uname_ holds it,
  // or a built-in function's name).
  const std::string& undefined_name() const { return uname_; }
  static Value undefined(std::string name);

  // Dict lookup; nullptr when absent.
  Value* find(std::string_view key) const;
  void set(const std::string& key, Value v) const;

  bool truthy() const;
  // Python's str(): what {{ }} prints. None -> "None", True -> "True", lists in repr form.
  std::string to_str() const;
  // Python's repr() (strings quoted), used inside list and dict printing.
  std::string repr() const;
  nlohmann::ordered_json to_json() const;
  const char* type_name() const;

 private:
  Type type_ = Type::Undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const Str> s_;
  std::shared_ptr<List> l_;
  std::shared_ptr<Dict> m_;
  const Stmt* mac_ = nullptr;
  std::string uname_;
};

// Python equality: 1 == 1.0 == True, lists and dicts compare element-wise.
bool values_equal(const Value& a, const Value& b);
// Python float repr: shortest round-trip digits, always with '.0' or an exponent.
std::string python_float(double d);
// json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...) as transformers'
// tojson does it; indent < 0 means none.
std::string python_json_dumps(const Value& v, int indent, bool sort_keys,
                              const std::string& item_sep, const std::string& key_sep);

}  // namespace lathe::jinja
