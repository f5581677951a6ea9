// Pooling of encoder hidden states into one vector per text, and the sentence-transformers files that
// choose it (modules.json, <pooling folder>/config.json).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/json_io.h"
#include "lathe/model/encoder.h"

namespace lathe {

const char* pooling_name(Pooling p) { return p == Pooling::Cls ? "cls" : "mean"; }

Pooling pooling_from_name(const std::string& name, const std::string& what) {
  if (name == "cls") return Pooling::Cls;
  if (name == "mean") return Pooling::Mean;
  fail("encoder", "{}: unknown pooling '{}' (cls, mean)", what, name);
}

PoolingConfig encoder_pooling_from_dir(const std::string& dir, const PoolingConfig& fallback) {
  // modules.json lists the sentence-transformers pipeline, e.g. Transformer, Pooling ("1_Pooling"),
  // Normalize ("2_Normalize"); without it the conventional folder name is the only hint.
  std::string pooling_dir = "1_Pooling";
  bool normalize = fallback.normalize, have_modules = false;
  const std::string modules_path = dir + "/modules.json";
  if (file_exists(modules_path)) {
    const nlohmann::json m = read_json_file_bounded(modules_path, "encoder");
    if (!m.is_array()) fail("encoder", "{}: must be a list of modules", modules_path);
    have_modules = true;
    normalize = false;
    pooling_dir.clear();
    for (const auto& mod : m) {
      const std::string type = mod.is_object() ? mod.value("type", "") : "";
      if (type.ends_with(".Pooling")) pooling_dir = mod.value("path", "");
      if (type.ends_with(".Normalize")) normalize = true;
    }
  }
  const std::string cfg_path = dir + "/" + pooling_dir + "/config.json";
  if (pooling_dir.empty() || !file_exists(cfg_path)) {
    PoolingConfig out = fallback;
    out.normalize = normalize;
    out.source = have_modules ? modules_path : "default";
    return out;
  }
  const nlohmann::json j = read_json_file_bounded(cfg_path, "encoder");
  if (!j.is_object()) fail("encoder", "{}: must be a JSON object", cfg_path);
  auto flag = [&](const char* key) {
    if (!j.contains(key)) return false;
    if (!j[key].is_boolean()) fail("encoder", "{}: {} must be true or false, got {}", cfg_path, key, j[key].dump());
    return j[key].get<bool>();
  };
  for (const char* key : {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                          "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"})
    if (flag(key)) fail("encoder", "{}: {} is not supported (cls or mean pooling)", cfg_path, key);
  const bool cls = flag("pooling_mode_cls_token"), mean = flag("pooling_mode_mean_tokens");
  if (cls && mean)
    fail("encoder", "{}: pooling_mode_cls_token and pooling_mode_mean_tokens are both set (lathe pools one way)",
         cfg_path);
  PoolingConfig out;
  out.normalize = normalize;
  out.source = cfg_path;
  if (cls || mean) {
    out.mode = cls ? Pooling::Cls : Pooling::Mean;
  } else if (j.contains("pooling_mode") && j["pooling_mode"].is_string()) {  // the newer single-key spelling
    out.mode = pooling_from_name(j["pooling_mode"].get<std::string>(), cfg_path + ": pooling_mode");
  } else {
    fail("encoder", "{}: no pooling mode set (pooling_mode_cls_token or pooling_mode_mean_tokens)", cfg_path);
  }
  return out;
}

void encoder_pool(const float* hidden, const int* lengths, int B, int T, int C, Pooling mode, bool normalize,
                  float* out) {
  for (int b = 0; b < B; b++) {
    const float* h = hidden + size_t(b) * T * C;
    float* o = out + size_t(b) * C;
    LATHE_CHECK(lengths[b] >= 1 && lengths[b] <= T, "sequence {} length {} outside [1, {}]", b, lengths[b], T);
    if (mode == Pooling::Cls) {
      std::memcpy(o, h, sizeof(float) * C);
    } else {
      // Summed in double: a mean over thousands of tokens should not depend on their order.
      std::vector<double> acc(C, 0.0);
      for (int t = 0; t < lengths[b]; t++)
        for (int i = 0; i < C; i++) acc[i] += h[size_t(t) * C + i];
      for (int i = 0; i < C; i++) o[i] = float(acc[i] / lengths[b]);
    }
    if (normalize) {
      double ss = 0;
      for (int i = 0; i < C; i++) ss += double(o[i]) * o[i];
      const double inv = 1.0 / std::max(std::sqrt(ss), 1e-12);
      for (int i = 0; i < C; i++) o[i] = float(o[i] * inv);
    }
  }
}

}  // namespace lathe
