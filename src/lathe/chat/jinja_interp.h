// Internal to the Jinja evaluator: the interpreter state shared by jinja_eval.cpp (statements and
// expressions) and jinja_builtins.cpp (filters, tests, methods, global functions).
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "lathe/chat/jinja_eval.h"

namespace lathe::jinja {

using Args = std::vector<Value>;

// What strip(), split() and the other string builtins take for white space (ASCII, as the templates'
// Python does for these bytes; guards_hold's quick answers decide by the same test).
inline bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class Interp {
 public:
  Interp(const Dict& globals, const RenderOptions& opts);

  RenderResult run(const Template& tpl);

  // jinja_eval.cpp
  Value eval(const Expr& e);
  void step(Pos pos);
  void check_size(Pos pos, size_t n) const;
  Value call_value(Pos pos, const Value& callee, Args args, Dict kwargs);

  // jinja_builtins.cpp
  Value apply_filter(Pos pos, const std::string& name, const Value& v, Args args, const Dict& kwargs);
  bool apply_test(Pos pos, const std::string& name, const Value& v, const Args& args);
  // Method call obj.name(args); *found is false when obj has no such method.
  Value call_method(Pos pos, const Value& obj, const std::string& name, const Args& args, const Dict& kwargs,
                    bool* found);
  Value call_function(Pos pos, const std::string& name, const Args& args, const Dict& kwargs);
  static bool is_function(const std::string& name);

  // Iteration as Python does it: lists, dict keys, string code points; undefined/none give nothing.
  List iterate(Pos pos, const Value& v);

 private:
  enum class Flow { Normal, Break, Continue };
  using Frame = std::unordered_map<std::string, Value>;

  Flow exec_body(const Body& body, Str& out);
  Flow exec(const Stmt& s, Str& out);
  void exec_for(const Stmt& s, Str& out);
  void emit(Pos pos, Str& out, const Value& v);
  void emit_raw(Pos pos, Str& out, const Value& v);
  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value v);
  Value call_macro(Pos pos, const Stmt& def, Args args, Dict kwargs);
  Value eval_binary(const Expr& e);
  Value eval_call(const Expr& e);

  RenderOptions opts_;
  // frames_[0] holds the caller's globals, frames_[1] the template's top level. A macro call hides
  // the frames of its caller: lookups walk frames_[base_..] and then fall back to frames 1 and 0.
  std::vector<Frame> frames_;
  size_t base_ = 1;
  size_t steps_ = 0;
  int call_depth_ = 0;
  int loop_depth_ = 0;
  Str* root_out_ = nullptr;
  std::vector<std::pair<size_t, size_t>> generation_spans_;
  std::unordered_map<const void*, int> item_tags_;
  std::vector<int> item_stack_;  // tags of the tracked items being iterated, innermost last
  std::vector<Origin> item_runs_;
  void tag_output(const Str& out, size_t begin);

 public:
  // Content probe (RenderOptions::probe): jinja_probe.cpp.
  Probe* probe_ = nullptr;
  int content_ref(const Value& v) const;  // source index when v is exactly a content, -1 untainted, -2 other
  bool tainted(const Value& v, int depth = 0) const;  // v holds content-derived bytes anywhere
  void taint_fail(const std::string& why);
  bool probe_truthy(const Value& v);
  // Records an operation on content strings as a guard; containers holding contents are allowed only
  // for `structural` operations (those that do not look at the items' bytes).
  void probe_op(Guard::Kind kind, const std::string& name, Pos pos, const Args& operands, const Dict& kwargs,
                const Value& result, bool structural);
  Value eval_guard(const Guard& g, const Args& operands);
};

}  // namespace lathe::jinja
