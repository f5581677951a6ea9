// Differential fuzzing of the record hot path's JSON reader/writer against nlohmann::json, the
// implementation it must agree with (see json_fast.h): whenever json_parse_fast accepts a text,
// nlohmann must accept it too and build the same value with the same dump; and json_dump_fast must
// write byte for byte what nlohmann's dump (error_handler_t::replace) writes for any value.
#include <cstddef>
#include <cstdint>
#include <string>

#include "lathe/data/collect.h"
#include "lathe/data/json_fast.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json ref = nlohmann::json::parse(text, nullptr, false);
  if (lathe::data::valid_utf8(text)) {  // the reader's documented precondition
    nlohmann::json fast;
    if (lathe::data::json_parse_fast(text, fast)) {
      if (ref.is_discarded()) __builtin_trap();  // accepted what nlohmann rejects
      if (fast != ref || fast.dump() != ref.dump()) __builtin_trap();
    }
  }
  if (!ref.is_discarded()) {
    std::string out;
    lathe::data::json_dump_fast(ref, out);
    if (out != ref.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) __builtin_trap();
  }
  // Values nlohmann never parses from text but records can hold: strings with broken UTF-8.
  nlohmann::json s = nlohmann::json::object();
  s["raw"] = text;
  std::string out;
  lathe::data::json_dump_fast(s, out);
  if (out != s.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)) __builtin_trap();
  return 0;
}
