// The adapters a server holds, by name. All share the one base model in memory; each request picks
// one (or none) through its "model" field. Loading and unloading happen at runtime (POST/DELETE
// /v1/adapters); a request that is running keeps its adapter alive through its shared_ptr.
//
// QLoRA adapters (adapter_config "lathe_base_quantization": "nf4") are refused: they were trained
// against the NF4-quantized base, and serving them over the f32 base would change their outputs.
// Serve them from their own server started on a base that is quantized, or merge them first.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lathe/serve/scheduler.h"

namespace lathe::serve {

class AdapterRegistry {
 public:
  explicit AdapterRegistry(const Model& base) : base_(base) {}
  // Throws lathe::Error "[serve] ..." for a bad name, a duplicate, or an adapter that does not fit.
  // `rag`: whether its chat completions retrieve (the server decides from --rag-models or the request).
  std::shared_ptr<const ServedAdapter> load(const std::string& name, const std::string& dir, bool rag = false);
  bool unload(const std::string& name);
  std::shared_ptr<const ServedAdapter> get(const std::string& name) const;
  std::vector<std::shared_ptr<const ServedAdapter>> list() const;
  static bool valid_name(const std::string& name);

 private:
  const Model& base_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ServedAdapter>> by_name_;
};

}  // namespace lathe::serve
