// Fuzzes the data-pipeline readers: the first byte picks the format (JSONL, JSON, CSV, TSV, Markdown,
// HTML, text), the rest is the file. Readers must report bad input as drop reasons, never crash;
// then clean and map run on whatever records came out (mapping refuses a mix of SFT and preference
// records with an error naming the line; anything else thrown is a bug).
#include <cstddef>
#include <cstdint>
#include <string>

#include "lathe/core/error.h"
#include "lathe/data/clean.h"
#include "lathe/data/collect.h"
#include "lathe/data/mapping.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* formats[] = {"jsonl", "json", "csv", "tsv", "md", "html", "txt"};
  std::string format = formats[data[0] % 7];
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  lathe::data::CollectOptions o;
  o.chunk_chars = 1 + data[0] % 64;
  o.max_line_bytes = 4096;
  lathe::data::CollectResult r;
  lathe::data::collect_bytes(bytes, "fuzz." + format, format, o, r);
  lathe::data::StageCounts mc("map"), cc("clean");
  std::map<std::string, size_t> shapes;
  try {
    lathe::data::map_records(r.records, {}, mc, shapes);
  } catch (const lathe::Error& e) {
    // The one error mapping raises: records of more than one kind (SFT and preference), named by line.
    if (std::string(e.what()).find("among records of another kind") == std::string::npos) __builtin_trap();
    return 0;
  }
  lathe::data::clean_records(r.records, {}, cc);
  if (!mc.reconciles() || !cc.reconciles()) __builtin_trap();
  return 0;
}
