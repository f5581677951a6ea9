// A JSON reader and writer for the record hot path of `lathe data prepare`, which otherwise spends
// about a quarter of its time in nlohmann::json's lexer (a virtual-free but byte-at-a-time reader that
// also records every byte for error messages) and serializer (a UTF-8 state machine per byte).
//
// Both work on runs of bytes instead: a string is copied up to the next '"', '\\' or control byte,
// found eight bytes at a time. Neither is a second JSON implementation to keep in step by hand:
//   - json_parse_fast accepts a strict subset of what nlohmann::json::parse accepts (no floats, no
//     integers over 18 digits, nesting up to 256) and builds the same value. Anything else, malformed
//     input included, returns false and the caller runs nlohmann::json::parse, which then decides.
//   - json_dump_fast writes what j.dump(-1, ' ', false, error_handler_t::replace) writes; floats, binary
//     values and strings that are not valid UTF-8 are handed to nlohmann's own dump.
// tests/data_pipeline/data_collect_unit.cpp checks both against nlohmann on odd inputs.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lathe/data/record.h"

namespace lathe::data {

// `text` must be valid UTF-8 (collect checks every line first). On false `out` is unspecified.
bool json_parse_fast(std::string_view text, nlohmann::json& out);
// Appends the compact dump of `j` to `out`.
void json_dump_fast(const nlohmann::json& j, std::string& out);
// Appends what json_dump_fast writes for the object `rec` after rec["_source"] = src.to_json() and
// rec["_id"] = id, without adding them to it (a record's line in the records files: two map nodes, a
// nested object and its strings per record saved).
void json_dump_record(const nlohmann::json& rec, std::string_view id, const Source& src, std::string& out);

}  // namespace lathe::data
