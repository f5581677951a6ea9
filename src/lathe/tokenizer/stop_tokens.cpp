#include "lathe/tokenizer/stop_tokens.h"

#include <algorithm>

#include <fmt/format.h>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_int.h"
#include "lathe/core/json_io.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe {
namespace {

const char* const kEndOfTurnMarkers[] = {"<|im_end|>",      "<|eot_id|>", "<|end|>", "<end_of_turn>", "[|endofturn|]",
                                         "<|endoftext|>", "<|end_of_text|>", "</s>", "<|END_OF_TURN_TOKEN|>"};

// eos_token_id of `file` (an id, a list of ids, null or absent) appended to `out`.
void read_eos(const std::string& file, std::vector<int32_t>& out) {
  if (!file_exists(file)) return;
  const nlohmann::json j = read_json_file_bounded(file, "config");
  if (!j.is_object() || !j.contains("eos_token_id")) return;
  const nlohmann::json& e = j["eos_token_id"];
  auto one = [&](const nlohmann::json& v, const std::string& field) {
    int64_t id;
    if (!json_to_int64(v, &id)) fail("config", "{}: {} is {}", file, field, json_int_problem(v));
    if (id < 0 || id > INT32_MAX) fail("config", "{}: {} = {} is not a token id", file, field, id);
    if (std::find(out.begin(), out.end(), int32_t(id)) == out.end()) out.push_back(int32_t(id));
  };
  if (e.is_null()) return;
  if (!e.is_array()) return one(e, "eos_token_id");
  for (size_t i = 0; i < e.size(); i++) one(e[i], fmt::format("eos_token_id[{}]", i));
}

}  // namespace

std::span<const char* const> end_of_turn_markers() { return kEndOfTurnMarkers; }

StopTokens stop_tokens(const Tokenizer& tok, const std::string& template_source, std::span<const int32_t> declared_eos) {
  StopTokens s;
  s.ids = tok.eos_ids();
  for (int32_t id : declared_eos)
    if (id >= 0) s.ids.push_back(id);
  for (const char* m : kEndOfTurnMarkers) {
    if (template_source.find(m) == std::string::npos) continue;
    std::vector<int32_t> ids = tok.encode(m, false);
    if (ids.size() == 1 && tok.is_special(ids[0])) s.ids.push_back(ids[0]);
    else s.texts.push_back(m);
  }
  std::sort(s.ids.begin(), s.ids.end());
  s.ids.erase(std::unique(s.ids.begin(), s.ids.end()), s.ids.end());
  return s;
}

std::vector<int32_t> declared_eos_ids(const std::string& model_path) {
  std::vector<int32_t> out;
  if (!is_directory(model_path)) return out;
  read_eos(model_path + "/generation_config.json", out);
  read_eos(model_path + "/config.json", out);
  return out;
}

}  // namespace lathe
