// The content probe of the Jinja evaluator (jinja_eval.h, Probe): which operations looked at a
// message's content, and what they answered. chat_compiled.cpp turns a clean probe into a render
// plan that later conversations of the same shape reuse without interpreting the template.
#include "lathe/core/error.h"
#include "lathe/chat/jinja_interp.h"

namespace lathe::jinja {

int Interp::content_ref(const Value& v) const {
  if (!v.is_string() || v.str().origins.empty()) return -1;
  const auto& os = v.str().origins;
  const Origin& o = os[0];
  if (os.size() == 1 && o.pos == 0 && o.src_pos == 0 && o.len == v.s().size() && o.source >= 0 &&
      static_cast<size_t>(o.source) < probe_->content_len.size() && probe_->content_len[size_t(o.source)] == o.len)
    return o.source;
  return -2;
}

bool Interp::tainted(const Value& v, int depth) const {
  if (depth > 64) return true;  // deeper than any chat message: assume the worst
  if (v.is_string()) return !v.str().origins.empty();
  if (v.is_list()) {
    for (const Value& x : v.items())
      if (tainted(x, depth + 1)) return true;
  } else if (v.is_mapping()) {
    for (const auto& [k, x] : v.entries())
      if (tainted(x, depth + 1)) return true;
  }
  return false;
}

void Interp::taint_fail(const std::string& why) {
  if (probe_->clean) probe_->why = why;
  probe_->clean = false;
}

bool Interp::probe_truthy(const Value& v) {
  bool r = v.truthy();
  // A list or dict is truthy by its size, not by what its strings hold.
  if (probe_ && v.is_string()) probe_op(Guard::Kind::Truthy, "truthy", Pos{}, {v}, {}, Value::boolean(r), false);
  return r;
}

void Interp::probe_op(Guard::Kind kind, const std::string& name, Pos pos, const Args& operands, const Dict& kwargs,
                      const Value& result, bool structural) {
  if (!probe_ || !probe_->clean) return;
  Guard g;
  bool any = false;
  for (const Value& x : operands) {
    int r = content_ref(x);
    if (r == -2) return taint_fail(name + " on part of a content");
    if (r == -1 && !structural && tainted(x)) return taint_fail(name + " on a value holding a content");
    any |= r >= 0;
    g.refs.push_back(r);
  }
  for (const auto& [k, x] : kwargs)
    if (tainted(x)) return taint_fail(name + " with a content keyword argument");
  if (!any) return;  // only containers, and the operation is structural
  // A template that inspects contents this often gains nothing from a plan; the bound keeps a probe's
  // memory small whatever the template does within its step limit.
  if (probe_->guards.size() >= 4096) return taint_fail("more than 4096 guards");
  // Lists and dicts are shared and mutable: a guard holding one could see it change after the probe.
  for (const Value& x : operands)
    if (x.is_list() || x.is_mapping()) return taint_fail(name + " of a content and a list or dict");
  if (result.is_list() || result.is_mapping()) return taint_fail(name + " of a content gives a list or dict");
  g.expected_ref = content_ref(result);
  if (g.expected_ref == -2 || (g.expected_ref == -1 && tainted(result)))
    return taint_fail(name + " derives a new string from a content");
  // A string made from a content (upper-cased, replaced, ...) would be a guard only that content passes.
  if (g.expected_ref == -1 && result.is_string()) return taint_fail(name + " derives a new string from a content");
  if (g.expected_ref == -1) g.expected = result;
  g.kind = kind;
  g.name = name;
  g.pos = pos;
  g.operands = operands;
  g.kwargs = kwargs;
  probe_->guards.push_back(std::move(g));
}

Value Interp::eval_guard(const Guard& g, const Args& ops) {
  Args rest(ops.begin() + 1, ops.end());
  switch (g.kind) {
    case Guard::Kind::Truthy: return Value::boolean(ops[0].truthy());
    case Guard::Kind::Filter: return apply_filter(g.pos, g.name, ops[0], rest, g.kwargs);
    case Guard::Kind::Test: return Value::boolean(apply_test(g.pos, g.name, ops[0], rest));
    case Guard::Kind::Method: {
      bool found = false;
      Value r = call_method(g.pos, ops[0], g.name, rest, g.kwargs, &found);
      if (!found) fail_at(g.pos, "method vanished");
      return r;
    }
    case Guard::Kind::Equal: return Value::boolean(values_equal(ops[0], ops[1]));
    case Guard::Kind::In: return Value::boolean(apply_test(g.pos, "in", ops[0], {ops[1]}));
    case Guard::Kind::Compare: {
      int c = ops[0].s().compare(ops[1].s());
      const std::string& op = g.name;
      return Value::boolean(op == "<" ? c < 0 : op == ">" ? c > 0 : op == "<=" ? c <= 0 : c >= 0);
    }
  }
  return Value();
}

static bool same_value(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  if (a.is_string() && !a.str().origins.empty()) return false;  // the result must not be content-derived
  return values_equal(a, b);
}

// content.strip() / lstrip() / rstrip() (no argument, or a string of characters) and content|trim, where
// the probe saw the whole content come back (Qwen3's templates strip every message's content): it still
// does exactly when neither stripped end holds a character to strip, as strip_value decides. nullopt
// for anything else, and for an empty content (left to the interpreter).
static std::optional<bool> quick_strip_guard(const Guard& g, const std::vector<const std::string*>& contents) {
  const size_t n = g.operands.size();
  if (g.refs.size() != n || n == 0 || n > 2 || g.refs[0] != g.expected_ref || !g.kwargs.empty()) return std::nullopt;
  bool left = true, right = true;
  if (g.kind == Guard::Kind::Method && (g.name == "strip" || g.name == "lstrip" || g.name == "rstrip")) {
    left = g.name != "rstrip";
    right = g.name != "lstrip";
  } else if (!(g.kind == Guard::Kind::Filter && g.name == "trim")) {
    return std::nullopt;
  }
  if (n == 2 && (g.refs[1] >= 0 || !g.operands[1].is_string())) return std::nullopt;
  const std::string& c = *contents[size_t(g.expected_ref)];
  if (c.empty()) return std::nullopt;
  auto strips = [&](char ch) { return n == 2 ? g.operands[1].s().find(ch) != std::string::npos : is_space(ch); };
  return !(left && strips(c.front())) && !(right && strips(c.back()));
}

// The interpreter's answer to a guard that asks a yes/no question of one content with constant string
// operands — what Qwen3's and similar templates ask of every message (`content.startswith(
// '<tool_response>')`, `'</think>' in content`, `loop.first and content`) — from the content's bytes,
// without copying it into a Value or building an interpreter: whether the guard gives its expected
// result. nullopt: any other guard (the interpreter evaluates it).
static std::optional<bool> quick_guard(const Guard& g, const std::vector<const std::string*>& contents) {
  if (g.expected_ref >= 0) return quick_strip_guard(g, contents);
  if (g.expected.type() != Value::Type::Bool) return std::nullopt;
  const bool want = g.expected.as_bool();
  const size_t n = g.operands.size();
  if (g.refs.size() != n) return std::nullopt;
  switch (g.kind) {
    case Guard::Kind::Truthy:  // a string's truth: not empty
      if (n == 1 && g.refs[0] >= 0) return !contents[size_t(g.refs[0])]->empty() == want;
      break;
    case Guard::Kind::In:  // 'literal' in content: a substring
      if (n == 2 && g.refs[0] < 0 && g.operands[0].is_string() && g.refs[1] >= 0)
        return (contents[size_t(g.refs[1])]->find(g.operands[0].s()) != std::string::npos) == want;
      break;
    case Guard::Kind::Method:  // content.startswith('literal') / endswith (no tuple, no keywords)
      if (n == 2 && g.refs[0] >= 0 && g.refs[1] < 0 && g.operands[1].is_string() && g.kwargs.empty() &&
          (g.name == "startswith" || g.name == "endswith")) {
        const std::string_view s = *contents[size_t(g.refs[0])], x = g.operands[1].s();
        const bool hit = g.name == "startswith" ? s.starts_with(x) : s.ends_with(x);
        return hit == want;
      }
      break;
    default: break;
  }
  return std::nullopt;
}

bool guards_hold(const std::vector<Guard>& guards, const std::vector<const std::string*>& contents,
                 const RenderOptions& opts, bool quick) {
  if (guards.empty()) return true;
  std::optional<Interp> in;  // built for the first guard that needs it
  for (const Guard& g : guards) {
    if (quick) {
      if (const std::optional<bool> held = quick_guard(g, contents)) {
        if (!*held) return false;
        continue;
      }
    }
    if (!in) in.emplace(Dict{}, opts);
    Args ops = g.operands;
    for (size_t i = 0; i < ops.size(); ++i)
      if (g.refs[i] >= 0) {
        const std::string& c = *contents[size_t(g.refs[i])];
        ops[i] = Value::string(Str{c, {Origin{0, c.size(), g.refs[i], 0}}});
      }
    Value r;
    try {
      r = in->eval_guard(g, ops);
    } catch (const Error&) {
      return false;
    }
    if (g.expected_ref >= 0) {
      const std::string& c = *contents[size_t(g.expected_ref)];
      if (!r.is_string() || r.s() != c || r.str().origins.size() != 1) return false;
      const Origin& o = r.str().origins[0];
      if (o.pos != 0 || o.src_pos != 0 || o.len != c.size() || o.source != g.expected_ref) return false;
    } else if (!same_value(r, g.expected)) {
      return false;
    }
  }
  return true;
}

}  // namespace lathe::jinja
