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

struct RenderOptions {
  RenderLimits limits;
  // strftime_now() formats this time (UTC) when set, the current local time otherwise.
  std::optional<std::time_t> now;
  // Dicts (by Value::identity) whose for-loop iterations are tagged in RenderResult::item_runs; the
  // chat layer passes each message with its index.
  std::vector<std::pair<const void*, int>> tracked_items;
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

}  // namespace lathe::jinja
