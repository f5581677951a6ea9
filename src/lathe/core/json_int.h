// Integers read from user JSON without silent narrowing. nlohmann keeps non-negative integers as
// uint64 and converts on get<T>() without checking: get<int32_t>() on 5000000000 gives 705032704,
// get<int64_t>() on 2^64-100 gives -100 (the label ignore index), get<int>() on 1e12 (a float)
// truncates. Every integer a user file supplies (config sizes, token ids) goes through these.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace lathe {

// The exact value of an integer JSON number (signed or unsigned) that fits in int64. False for
// floats (even 3.0 or 1e12: a float where an integer is needed is a type error), bools, strings,
// and unsigned values above INT64_MAX.
template <class Json>
bool json_to_int64(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.template get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return false;
    *out = int64_t(u);
    return true;
  }
  if (v.is_number_integer()) {
    *out = v.template get<int64_t>();
    return true;
  }
  return false;
}

// What a rejected JSON value was, for error messages: "3.5 (a float)", "\"7\" (a string)",
// "18446744073709551615 (too large for a 64-bit integer)". dump() keeps the number as written
// (nlohmann prints floats with round-trip precision), so the user sees their own value.
template <class Json>
std::string json_int_problem(const Json& v) {
  std::string d = v.dump();
  if (d.size() > 64) d = d.substr(0, 64) + "...";
  if (v.is_number_unsigned()) return d + " (too large for a 64-bit integer)";
  if (v.is_number_float()) return d + " (a float, not an integer)";
  if (v.is_boolean()) return d + " (a boolean, not an integer)";
  if (v.is_string()) return d + " (a string, not an integer)";
  return d + " (not an integer)";
}

}  // namespace lathe
