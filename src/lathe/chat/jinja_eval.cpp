// Statements and expressions of the Jinja subset. Semantics follow Python Jinja2 as transformers
// runs chat templates, with one deliberate leniency: an attribute or item of an undefined value is
// undefined (Jinja's ChainableUndefined) rather than an error, which real templates rely on when a
// message lacks a key.
#include <cctype>
#include <cmath>

#include "lathe/core/error.h"
#include "lathe/core/scope_exit.h"
#include "lathe/chat/jinja_interp.h"

namespace lathe::jinja {

Interp::Interp(const Dict& globals, const RenderOptions& opts) : opts_(opts), probe_(opts.probe) {
  frames_.emplace_back();
  for (const auto& [k, v] : globals) frames_[0][k] = v;
  frames_.emplace_back();
  for (const auto& [id, tag] : opts.tracked_items) item_tags_[id] = tag;
}

RenderResult Interp::run(const Template& tpl) {
  RenderResult r;
  root_out_ = &r.out;
  Flow f = exec_body(tpl.body, r.out);
  (void)f;  // break/continue outside a loop are rejected when they execute
  r.generation_spans = std::move(generation_spans_);
  r.item_runs = std::move(item_runs_);
  return r;
}

void Interp::step(Pos pos) {
  if (++steps_ > opts_.limits.max_steps)
    fail_at(pos, fmt::format("template exceeded {} evaluation steps (infinite loop?)", opts_.limits.max_steps));
}

void Interp::check_size(Pos pos, size_t n) const {
  if (n > opts_.limits.max_string)
    fail_at(pos, fmt::format("string of {} bytes exceeds the limit of {}", n, opts_.limits.max_string));
}

Value Interp::lookup(const std::string& name) const {
  for (size_t i = frames_.size(); i-- > base_;) {
    auto it = frames_[i].find(name);
    if (it != frames_[i].end()) return it->second;
  }
  for (size_t i : {size_t{1}, size_t{0}}) {
    if (i >= base_) continue;
    auto it = frames_[i].find(name);
    if (it != frames_[i].end()) return it->second;
  }
  if (is_function(name)) return Value::function(name);
  return Value::undefined(name);
}

void Interp::assign(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

void Interp::tag_output(const Str& out, size_t begin) {
  if (&out != root_out_ || item_stack_.empty() || out.s.size() == begin) return;
  int tag = item_stack_.back();
  if (!item_runs_.empty() && item_runs_.back().source == tag && item_runs_.back().pos + item_runs_.back().len == begin) {
    item_runs_.back().len += out.s.size() - begin;
    return;
  }
  item_runs_.push_back(Origin{begin, out.s.size() - begin, tag, 0});
}

void Interp::emit(Pos pos, Str& out, const Value& v) {
  size_t begin = out.s.size();
  emit_raw(pos, out, v);
  tag_output(out, begin);
}

void Interp::emit_raw(Pos pos, Str& out, const Value& v) {
  if (v.is_string()) {
    check_size(pos, out.s.size() + v.s().size());
    str_append(out, v.str());
  } else {
    if (probe_ && tainted(v)) taint_fail("a content printed inside a list or dict");
    std::string s = v.to_str();
    check_size(pos, out.s.size() + s.size());
    out.s += s;
  }
}

Interp::Flow Interp::exec_body(const Body& body, Str& out) {
  for (const StmtPtr& s : body) {
    Flow f = exec(*s, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec(const Stmt& s, Str& out) {
  step(s.pos);
  switch (s.kind) {
    case Stmt::Kind::Text:
      check_size(s.pos, out.s.size() + s.text.size());
      out.s += s.text;
      tag_output(out, out.s.size() - s.text.size());
      return Flow::Normal;
    case Stmt::Kind::Output: emit(s.pos, out, eval(*s.expr)); return Flow::Normal;
    case Stmt::Kind::If: return exec_body(probe_truthy(eval(*s.expr)) ? s.body : s.else_body, out);
    case Stmt::Kind::For: exec_for(s, out); return Flow::Normal;
    case Stmt::Kind::Set: {
      Value v = eval(*s.expr);
      if (!s.attr.empty()) {
        Value ns = lookup(s.targets[0]);
        if (ns.type() != Value::Type::Namespace)
          fail_at(s.pos, fmt::format("cannot assign attribute on '{}': not a namespace()", s.targets[0]));
        ns.set(s.attr, std::move(v));
      } else if (s.targets.size() == 1) {
        assign(s.targets[0], std::move(v));
      } else {
        List items = iterate(s.pos, v);
        if (items.size() != s.targets.size())
          fail_at(s.pos, fmt::format("cannot unpack {} values into {} names", items.size(), s.targets.size()));
        for (size_t i = 0; i < items.size(); ++i) assign(s.targets[i], items[i]);
      }
      return Flow::Normal;
    }
    case Stmt::Kind::SetBlock: {
      Str body;
      exec_body(s.body, body);
      assign(s.targets[0], Value::string(std::move(body)));
      return Flow::Normal;
    }
    case Stmt::Kind::Macro: assign(s.name, Value::macro(&s)); return Flow::Normal;
    case Stmt::Kind::Break:
    case Stmt::Kind::Continue:
      if (loop_depth_ == 0) fail_at(s.pos, "'break' / 'continue' outside a for loop");
      return s.kind == Stmt::Kind::Break ? Flow::Break : Flow::Continue;
    case Stmt::Kind::Generation: {
      size_t begin = out.s.size();
      Flow f = exec_body(s.body, out);
      if (&out == root_out_) generation_spans_.emplace_back(begin, out.s.size());
      return f;
    }
  }
  return Flow::Normal;
}

void Interp::exec_for(const Stmt& s, Str& out) {
  List src = iterate(s.pos, eval(*s.expr));
  auto bind = [&](const Value& item) {
    if (s.targets.size() == 1) {
      assign(s.targets[0], item);
      return;
    }
    List parts = iterate(s.pos, item);
    if (parts.size() != s.targets.size())
      fail_at(s.pos, fmt::format("cannot unpack {} values into {} loop variables", parts.size(), s.targets.size()));
    for (size_t i = 0; i < parts.size(); ++i) assign(s.targets[i], parts[i]);
  };
  // `for x in xs if cond` filters before iterating, so loop.length and loop.last see only kept items.
  List items;
  if (s.cond) {
    for (const Value& item : src) {
      frames_.emplace_back();
      bind(item);
      bool keep = probe_truthy(eval(*s.cond));
      frames_.pop_back();
      if (keep) items.push_back(item);
    }
  } else {
    items = std::move(src);
  }
  if (items.empty()) {
    exec_body(s.else_body, out);
    return;
  }
  ++loop_depth_;
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step(s.pos);  // an empty body must still count, or nested empty loops run unbounded
    frames_.emplace_back();
    Dict loop{{"index", Value::integer(i + 1)},
              {"index0", Value::integer(i)},
              {"revindex", Value::integer(n - i)},
              {"revindex0", Value::integer(n - i - 1)},
              {"first", Value::boolean(i == 0)},
              {"last", Value::boolean(i == n - 1)},
              {"length", Value::integer(n)},
              {"previtem", i > 0 ? items[i - 1] : Value::undefined("loop.previtem")},
              {"nextitem", i + 1 < n ? items[i + 1] : Value::undefined("loop.nextitem")},
              {"depth", Value::integer(1)},
              {"depth0", Value::integer(0)}};
    assign("loop", Value::dict(std::move(loop)));
    bind(items[i]);
    auto tag = items[i].is_mapping() ? item_tags_.find(items[i].identity()) : item_tags_.end();
    if (tag != item_tags_.end()) item_stack_.push_back(tag->second);
    Flow f = exec_body(s.body, out);
    if (tag != item_tags_.end()) item_stack_.pop_back();
    frames_.pop_back();
    if (f == Flow::Break) break;
  }
  --loop_depth_;
}

Value Interp::call_macro(Pos pos, const Stmt& def, Args args, Dict kwargs) {
  if (call_depth_ >= opts_.limits.max_call_depth)
    fail_at(pos, fmt::format("macro calls nested deeper than {}", opts_.limits.max_call_depth));
  if (args.size() > def.params.size())
    fail_at(pos, fmt::format("macro '{}' takes {} arguments, {} given", def.name, def.params.size(), args.size()));
  size_t saved_base = base_;
  int saved_loops = loop_depth_;
  base_ = frames_.size();
  frames_.emplace_back();
  ++call_depth_;
  loop_depth_ = 0;
  // The caller's frames and counters come back however the macro ends (an error inside it is caught
  // by the caller's own handlers, which must see the interpreter as it was).
  ScopeExit restore([&] {
    frames_.resize(base_);
    base_ = saved_base;
    --call_depth_;
    loop_depth_ = saved_loops;
  });
  Str body;
  for (size_t i = 0; i < def.params.size(); ++i) {
    const auto& [name, dflt] = def.params[i];
    Value v;
    bool given = false;
    for (auto& [k, kv] : kwargs)
      if (k == name) {
        v = kv;
        given = true;
      }
    if (i < args.size()) v = args[i];
    else if (!given) v = dflt ? eval(*dflt) : Value::undefined(name);
    assign(name, std::move(v));
  }
  exec_body(def.body, body);
  return Value::string(std::move(body));
}

Value Interp::call_value(Pos pos, const Value& callee, Args args, Dict kwargs) {
  if (callee.type() == Value::Type::Macro) return call_macro(pos, *callee.macro_def(), std::move(args), std::move(kwargs));
  if (callee.type() == Value::Type::Function) {
    if (probe_) {
      const std::string& f = callee.function_name();
      bool moves_only = f == "namespace" || f == "dict" || f == "raise_exception";
      if (f == "strftime_now" && !opts_.now) taint_fail("strftime_now() without a fixed time");
      for (const Value& a : args)
        if (!moves_only && tainted(a)) taint_fail(f + "() of a content");
      for (const auto& [k, a] : kwargs)
        if (!moves_only && tainted(a)) taint_fail(f + "() of a content");
    }
    return call_function(pos, callee.function_name(), args, kwargs);
  }
  if (callee.is_undefined()) fail_at(pos, fmt::format("'{}' is undefined and cannot be called", callee.undefined_name()));
  fail_at(pos, fmt::format("a {} value is not callable", callee.type_name()));
}

Value Interp::eval_call(const Expr& e) {
  Args args;
  Dict kwargs;
  for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v));
  const Expr& callee = *e.args[0];
  if (callee.kind == Expr::Kind::Attr) {
    Value obj = eval(*callee.args[0]);
    bool found = false;
    Value r = call_method(e.pos, obj, callee.name, args, kwargs, &found);
    if (found) {
      if (probe_) {
        // get/items/keys/values/append move values around without reading their bytes.
        const std::string& m = callee.name;
        bool structural = !obj.is_string() && (m == "get" || m == "items" || m == "keys" || m == "values" || m == "append");
        Args ops{obj};
        ops.insert(ops.end(), args.begin(), args.end());
        probe_op(Guard::Kind::Method, m, e.pos, ops, kwargs, r, structural);
      }
      return r;
    }
    if (Value* member = obj.find(callee.name)) return call_value(e.pos, *member, std::move(args), std::move(kwargs));
    fail_at(e.pos, fmt::format("a {} value has no method '{}'", obj.type_name(), callee.name));
  }
  return call_value(e.pos, eval(callee), std::move(args), std::move(kwargs));
}

static Value index_value(Pos pos, const Value& obj, const Value& key) {
  if (obj.is_mapping()) {
    if (!key.is_string()) return Value::undefined(fmt::format("[{}]", key.to_str()));
    Value* v = obj.find(key.s());
    return v ? *v : Value::undefined(key.s());
  }
  if (obj.is_list() || obj.is_string()) {
    if (key.type() != Value::Type::Int && key.type() != Value::Type::Bool)
      fail_at(pos, fmt::format("{} indices must be integers, not {}", obj.type_name(), key.type_name()));
    int64_t n = obj.is_list() ? static_cast<int64_t>(obj.items().size()) : static_cast<int64_t>(utf8_length(obj.s()));
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined(fmt::format("[{}]", key.as_int()));
    if (obj.is_list()) return obj.items()[static_cast<size_t>(i)];
    size_t a = utf8_offset(obj.s(), static_cast<size_t>(i)), b = utf8_offset(obj.s(), static_cast<size_t>(i) + 1);
    return Value::string(str_slice(obj.str(), a, b));
  }
  return Value::undefined(fmt::format("[{}]", key.to_str()));
}

// Python slice semantics for lists and strings (strings by code point). Step 1 keeps provenance.
static Value slice_value(Pos pos, const Value& obj, const Value& a, const Value& b, const Value& c) {
  auto opt = [&](const Value& v, int64_t dflt) {
    if (v.is_undefined() || v.is_none()) return dflt;
    if (v.type() != Value::Type::Int) fail_at(pos, "slice indices must be integers");
    return v.as_int();
  };
  int64_t step = opt(c, 1);
  if (step == 0) fail_at(pos, "slice step cannot be zero");
  int64_t n = obj.is_list() ? static_cast<int64_t>(obj.items().size())
                            : obj.is_string() ? static_cast<int64_t>(utf8_length(obj.s())) : -1;
  if (n < 0) {
    if (obj.is_undefined()) return obj;
    fail_at(pos, fmt::format("cannot slice a {} value", obj.type_name()));
  }
  auto clamp = [&](int64_t i) {
    if (i < 0) i += n;
    return step > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  int64_t start = step > 0 ? clamp(opt(a, 0)) : clamp(opt(a, n - 1));
  // A negative step with no stop runs to the front (a stop of -1 would mean "the last element").
  int64_t stop = step > 0 ? clamp(opt(b, n)) : (b.is_undefined() || b.is_none() ? -1 : clamp(opt(b, 0)));
  std::vector<int64_t> idx;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
  if (obj.is_list()) {
    List out;
    for (int64_t i : idx) out.push_back(obj.items()[static_cast<size_t>(i)]);
    return Value::list(std::move(out));
  }
  const std::string& s = obj.s();
  if (step == 1) {
    if (idx.empty()) return Value::string("");
    return Value::string(str_slice(obj.str(), utf8_offset(s, static_cast<size_t>(idx.front())),
                                   utf8_offset(s, static_cast<size_t>(idx.back()) + 1)));
  }
  std::string out;
  for (int64_t i : idx) {
    size_t p = utf8_offset(s, static_cast<size_t>(i));
    out += s.substr(p, utf8_offset(s, static_cast<size_t>(i) + 1) - p);
  }
  return Value::string(std::move(out));
}

Value Interp::eval(const Expr& e) {
  step(e.pos);
  switch (e.kind) {
    case Expr::Kind::Literal: return e.lit;
    case Expr::Kind::Name: return lookup(e.name);
    case Expr::Kind::Attr: {
      Value obj = eval(*e.args[0]);
      if (obj.is_undefined()) return Value::undefined(e.name);
      Value* v = obj.find(e.name);
      return v ? *v : Value::undefined(e.name);
    }
    case Expr::Kind::Item: {
      Value obj = eval(*e.args[0]);
      Value key = eval(*e.args[1]);
      if (obj.is_undefined()) return obj;
      if (probe_ && ((obj.is_string() && tainted(obj)) || tainted(key))) taint_fail("indexing a content or by a content");
      return index_value(e.pos, obj, key);
    }
    case Expr::Kind::Slice: {
      Value obj = eval(*e.args[0]);
      Value a = e.args[1] ? eval(*e.args[1]) : Value();
      Value b = e.args[2] ? eval(*e.args[2]) : Value();
      Value c = e.args[3] ? eval(*e.args[3]) : Value();
      if (probe_ && obj.is_string() && tainted(obj)) taint_fail("slicing a content");
      return slice_value(e.pos, obj, a, b, c);
    }
    case Expr::Kind::Call: return eval_call(e);
    case Expr::Kind::Filter: {
      Value v = eval(*e.args[0]);
      Args args;
      Dict kwargs;
      for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
      for (const auto& [k, x] : e.kwargs) kwargs.emplace_back(k, eval(*x));
      if (!probe_) return apply_filter(e.pos, e.name, v, std::move(args), kwargs);
      Args ops{v};
      ops.insert(ops.end(), args.begin(), args.end());
      Value r = apply_filter(e.pos, e.name, v, std::move(args), kwargs);
      // These look at a container's size or move its items, never at the items' bytes.
      const std::string& f = e.name;
      bool structural = !v.is_string() && (f == "length" || f == "count" || f == "first" || f == "last" ||
                                           f == "reverse" || f == "list");
      // selectattr/rejectattr/map(attribute=) over message dicts read one attribute of each: structural
      // when that attribute is not the content (the other values are part of the shape).
      if (!structural && v.is_list()) {
        auto other_attr = [&](const Value* x) {
          if (!x || !x->is_string() || tainted(*x) || x->s().empty()) return false;
          std::string first = x->s().substr(0, x->s().find('.'));
          return first != "content" && !first.empty() && !std::isdigit(static_cast<unsigned char>(first[0]));
        };
        bool dicts = true;
        for (const Value& item : v.items()) dicts &= item.is_mapping();
        const Value* attribute = nullptr;
        for (const auto& [k, x] : kwargs)
          if (k == "attribute") attribute = &x;
        if (dicts && (f == "selectattr" || f == "rejectattr") && ops.size() > 1) structural = other_attr(&ops[1]);
        if (dicts && f == "map" && ops.size() == 1 && kwargs.size() == 1) structural = other_attr(attribute);
      }
      probe_op(Guard::Kind::Filter, f, e.pos, ops, kwargs, r, structural);
      return r;
    }
    case Expr::Kind::Test: {
      Value v = eval(*e.args[0]);
      Args args;
      for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
      bool r = apply_test(e.pos, e.name, v, args);
      if (probe_) {
        Args ops{v};
        ops.insert(ops.end(), args.begin(), args.end());
        const std::string& t = e.name;  // tests of the type alone
        bool structural = t == "defined" || t == "undefined" || t == "none" || t == "mapping" || t == "sequence" ||
                          t == "iterable" || t == "string" || t == "number" || t == "boolean" || t == "integer" ||
                          t == "float" || t == "callable";
        probe_op(Guard::Kind::Test, t, e.pos, ops, {}, Value::boolean(r), structural);
      }
      return Value::boolean(r != e.negated);
    }
    case Expr::Kind::Unary: {
      Value v = eval(*e.args[0]);
      if (e.name == "not") return Value::boolean(!probe_truthy(v));
      if (!v.is_number() && v.type() != Value::Type::Bool)
        fail_at(e.pos, fmt::format("bad operand type for unary {}: {}", e.name, v.type_name()));
      if (e.name == "+") return v.type() == Value::Type::Bool ? Value::integer(v.as_int()) : v;
      if (v.type() == Value::Type::Float) return Value::number(-v.as_float());
      if (v.as_int() == INT64_MIN) fail_at(e.pos, "integer overflow");
      return Value::integer(-v.as_int());
    }
    case Expr::Kind::Binary: return eval_binary(e);
    case Expr::Kind::Cond:
      if (probe_truthy(eval(*e.args[1]))) return eval(*e.args[0]);
      return e.args[2] ? eval(*e.args[2]) : Value::undefined("else");
    case Expr::Kind::List:
    case Expr::Kind::Tuple: {
      List l;
      for (const ExprPtr& x : e.args) l.push_back(eval(*x));
      return Value::list(std::move(l));
    }
    case Expr::Kind::Dict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i]);
        if (probe_ && tainted(k)) taint_fail("a content as a dict key");
        d.set(k.is_string() ? k.s() : k.to_str(), eval(*e.args[i + 1]));
      }
      return d;
    }
  }
  return Value();
}

static bool numeric(const Value& v) { return v.is_number() || v.type() == Value::Type::Bool; }

Value Interp::eval_binary(const Expr& e) {
  const std::string& op = e.name;
  if (op == "and") {
    Value a = eval(*e.args[0]);
    return probe_truthy(a) ? eval(*e.args[1]) : a;
  }
  if (op == "or") {
    Value a = eval(*e.args[0]);
    return probe_truthy(a) ? a : eval(*e.args[1]);
  }
  Value a = eval(*e.args[0]);
  Value b = eval(*e.args[1]);
  auto type_error = [&]() -> Value {
    if (a.is_undefined()) fail_at(e.pos, fmt::format("'{}' is undefined", a.undefined_name()));
    if (b.is_undefined()) fail_at(e.pos, fmt::format("'{}' is undefined", b.undefined_name()));
    fail_at(e.pos, fmt::format("unsupported operand types for {}: {} and {}", op, a.type_name(), b.type_name()));
  };
  // `'key' in message` asks for a key; keys are part of a conversation's shape, the values unread.
  bool key_test = probe_ && (op == "in" || op == "not in") && b.is_mapping() && !tainted(a);
  if (probe_ && !key_test && (tainted(a) || tainted(b))) {
    bool concat = op == "~" || op == "+";
    if (concat && ((!a.is_string() && tainted(a)) || (!b.is_string() && tainted(b))) && !(a.is_list() && b.is_list()))
      taint_fail("a content converted by " + op);
    Guard::Kind k = op == "==" || op == "!=" ? Guard::Kind::Equal
                    : op == "in" || op == "not in" ? Guard::Kind::In
                                                   : Guard::Kind::Compare;
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      if (!a.is_string() || !b.is_string()) taint_fail("a content compared with a non-string");
    } else if (!concat && k == Guard::Kind::Compare) {
      taint_fail("a content in arithmetic " + op);
    }
    if (!concat && probe_->clean) {
      // Recorded before the operation runs: the guard holds the raw result (== and `in`, not != / not in).
      Value r;
      if (k == Guard::Kind::Equal) r = Value::boolean(values_equal(a, b));
      else if (k == Guard::Kind::In) r = Value::boolean(apply_test(e.pos, "in", a, {b}));
      else {
        int c = a.s().compare(b.s());
        r = Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
      }
      probe_op(k, op, e.pos, {a, b}, {}, r, false);
    }
  }
  if (op == "~") {
    Str s = a.is_string() ? a.str() : Str{a.to_str(), {}};
    str_append(s, b.is_string() ? b.str() : Str{b.to_str(), {}});
    check_size(e.pos, s.s.size());
    return Value::string(std::move(s));
  }
  if (op == "==") return Value::boolean(values_equal(a, b));
  if (op == "!=") return Value::boolean(!values_equal(a, b));
  if (op == "in" || op == "not in") {
    bool r = apply_test(e.pos, "in", a, {b});
    return Value::boolean(op == "in" ? r : !r);
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    int c;
    if (numeric(a) && numeric(b)) {
      double x = a.as_float(), y = b.as_float();
      c = x < y ? -1 : x > y ? 1 : 0;
    } else if (a.is_string() && b.is_string()) {
      c = a.s().compare(b.s());
    } else {
      return type_error();
    }
    bool r = op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0;
    return Value::boolean(r);
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      Str s = a.str();
      str_append(s, b.str());
      check_size(e.pos, s.s.size());
      return Value::string(std::move(s));
    }
    if (a.is_list() && b.is_list()) {
      List l = a.items();
      l.insert(l.end(), b.items().begin(), b.items().end());
      return Value::list(std::move(l));
    }
  }
  if (op == "*") {
    const Value* str = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* cnt = str == &a ? &b : &a;
    if (str && (cnt->type() == Value::Type::Int || cnt->type() == Value::Type::Bool)) {
      int64_t n = std::max<int64_t>(0, cnt->as_int());
      // An empty operand repeats to nothing whatever the count: loop 0 times, not n
      // (''*4e18 must not spin), and a product that overflows size_t is over the limit too.
      size_t unit = str->is_string() ? str->s().size() : str->items().size();
      if (unit == 0) n = 0;
      size_t total = 0;
      if (__builtin_mul_overflow(unit, static_cast<size_t>(n), &total)) total = SIZE_MAX;
      if (str->is_string()) {
        check_size(e.pos, total);
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += str->s();
        return Value::string(std::move(out));
      }
      check_size(e.pos, total);
      List l;
      for (int64_t i = 0; i < n; ++i) l.insert(l.end(), str->items().begin(), str->items().end());
      return Value::list(std::move(l));
    }
  }
  if (!numeric(a) || !numeric(b)) {
    if (op == "%" && a.is_string()) fail_at(e.pos, "unsupported: printf-style string formatting with '%'");
    return type_error();
  }
  bool ints = a.type() != Value::Type::Float && b.type() != Value::Type::Float;
  if (ints && (op == "+" || op == "-" || op == "*")) {
    // Python integers are unbounded; ours are 64-bit, so overflow is an error rather than UB.
    int64_t r = 0;
    bool ovf = op == "+" ? __builtin_add_overflow(a.as_int(), b.as_int(), &r)
               : op == "-" ? __builtin_sub_overflow(a.as_int(), b.as_int(), &r)
                           : __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
    if (ovf) fail_at(e.pos, "integer overflow");
    return Value::integer(r);
  }
  if (op == "+") return Value::number(a.as_float() + b.as_float());
  if (op == "-") return Value::number(a.as_float() - b.as_float());
  if (op == "*") return Value::number(a.as_float() * b.as_float());
  if (op == "/") {
    if (b.as_float() == 0) fail_at(e.pos, "division by zero");
    return Value::number(a.as_float() / b.as_float());
  }
  if (op == "//" || op == "%") {
    if (b.as_float() == 0) fail_at(e.pos, op == "%" ? "modulo by zero" : "division by zero");
    if (ints) {
      int64_t x = a.as_int(), y = b.as_int();
      if (y == -1) return op == "//" ? Value::integer(-x) : Value::integer(0);  // avoids INT64_MIN / -1
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward negative infinity
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    double x = a.as_float(), y = b.as_float();
    double q = std::floor(x / y);
    return Value::number(op == "//" ? q : x - q * y);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t r = 1, base = a.as_int();
      if (base >= -1 && base <= 1) {  // no overflow, and no loop of b iterations
        if (base == 0) return Value::integer(b.as_int() == 0 ? 1 : 0);
        return Value::integer(base == 1 || b.as_int() % 2 == 0 ? 1 : -1);
      }
      for (int64_t i = 0; i < b.as_int(); ++i)  // |base| >= 2 overflows within 64 steps
        if (__builtin_mul_overflow(r, base, &r)) fail_at(e.pos, "integer overflow");
      return Value::integer(r);
    }
    return Value::number(std::pow(a.as_float(), b.as_float()));
  }
  return type_error();
}

RenderResult jinja_render(const Template& tpl, const Dict& globals, const RenderOptions& opts) {
  Interp in(globals, opts);
  return in.run(tpl);
}

}  // namespace lathe::jinja
