// Rendering a parsed Jinja template (jinja_ast.h) with a set of global variables.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lathe/chat/jinja_ast.h"
#include "lathe/chat/jinja_value.h"

namespace lathe::jinja {

// Bounds that keep hostile templates (the fuzz target, a user's --template file) from hanging or
// exhausting memory; real chat templates stay far below them.
struct RenderLimits {
  size_t max_steps = 10'000'000;  // statements + expressions evaluated
  int max_call_depth = 64;        // nested macro calls
  size_t max_string = 64u << 20;  // bytes in any one string, including the output
  size_t max_range = 1'000'000;   // elements range() may build
};

// A content probe (chat_compiled.cpp): while rendering, the evaluator records every operation whose
// result depends on the bytes of a tracked string (a message's content) as a Guard, with its result.
// A render whose only such operations are guards, and whose contents reach the output only verbatim
// (whole, with their origins), produces for any other contents that satisfy every guard the same
// output with the contents substituted: the evaluator is deterministic and every branch it took saw
// the same values. Anything else (a content sliced, upper-cased, printed inside a list, used as a
// dict key) marks the probe not clean, and the chat layer keeps interpreting such conversations.
struct Guard {
  enum class Kind { Truthy, Filter, Test, Method, Equal, In, Compare };
  Kind kind = Kind::Truthy;
  std::string name;     // filter / test / method name, or the comparison operator
  Pos pos;
  std::vector<Value> operands;  // subject first, then positional arguments
  std::vector<int> refs;        // per operand: the content it is (by source index), or -1
  Dict kwargs;                  // never content-derived
  Value expected;               // the result when expected_ref < 0 (never content-derived)
  int expected_ref = -1;        // the result is exactly content `expected_ref`, origin included
};

struct Probe {
  std::vector<size_t> content_len;  // by source index
  bool clean = true;
  std::string why;  // the first reason the render is not clean
  std::vector<Guard> guards;
};

struct RenderOptions {
  RenderLimits limits;
  // strftime_now() formats this time (UTC) when set, the current local time otherwise.
  std::optional<std::time_t> now;
  // Dicts (by Value::identity) whose for-loop iterations are tagged in RenderResult::item_runs; the
  // chat layer passes each message with its index.
  std::vector<std::pair<const void*, int>> tracked_items;
  Probe* probe = nullptr;  // records guards when set (does not change what is rendered)
};

struct RenderResult {
  // The text, with origins of every byte run that came verbatim from a tracked source.
  Str out;
  // Byte ranges [begin, end) of the output of each top-level {% generation %} block.
  std::vector<std::pair<size_t, size_t>> generation_spans;
  // Output written while a for loop was iterating over a tracked item (innermost such loop wins):
  // Origin{pos, len, source = the item's tag}. Tells which message's iteration emitted each byte.
  std::vector<Origin> item_runs;
};

// Throws lathe::Error "[chat-template] line L col C: ..." on runtime errors, and
// "[chat-template] line L col C: raise_exception: <message>" when the template raises.
RenderResult jinja_render(const Template& tpl, const Dict& globals, const RenderOptions& opts = {});

// Re-evaluates a probe's guards with other contents (by source index): true when every guard gives
// the result it gave during the probe. An error in a guard counts as a different result. quick: yes/no
// questions of one content with constant operands (its truth, `'x' in content`, startswith/endswith
// of a string) are answered on the bytes without the interpreter (false: every guard interpreted, the
// reference the tests compare with).
bool guards_hold(const std::vector<Guard>& guards, const std::vector<const std::string*>& contents,
                 const RenderOptions& opts, bool quick = true);

}  // namespace lathe::jinja
