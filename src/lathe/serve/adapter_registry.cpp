#include "lathe/serve/adapter_registry.h"

#include <cctype>
#include <ctime>

#include "lathe/core/error.h"

namespace lathe::serve {

bool AdapterRegistry::valid_name(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/'))
      return false;
  return true;
}

std::shared_ptr<const ServedAdapter> AdapterRegistry::load(const std::string& name, const std::string& dir, bool rag) {
  if (!valid_name(name)) fail("serve", "adapter name '{}': use 1-128 characters from A-Z a-z 0-9 - _ . : /", name);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (by_name_.count(name)) fail("serve", "adapter '{}' is already loaded (DELETE it first)", name);
  }
  auto a = std::make_shared<ServedAdapter>();
  a->name = name;
  a->dir = dir;
  a->rag = rag;
  a->created = int64_t(std::time(nullptr));
  // File reading (and, for prompt tuning, P rows of forward over the read-only base): any thread.
  a->loaded = load_peft_adapter(dir, base_);
  if (a->loaded.base_nf4)
    fail("serve", "adapter '{}' ({}) was trained with QLoRA over an NF4 base; serving it over the f32 base would "
         "change its outputs. Merge it (lathe export) or serve it from a server of its own",
         name, dir);
  std::lock_guard<std::mutex> lock(mu_);
  if (!by_name_.emplace(name, a).second) fail("serve", "adapter '{}' is already loaded", name);
  return a;
}

bool AdapterRegistry::unload(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return by_name_.erase(name) > 0;
}

std::shared_ptr<const ServedAdapter> AdapterRegistry::get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const ServedAdapter>> AdapterRegistry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const ServedAdapter>> out;
  for (auto& [n, a] : by_name_) out.push_back(a);
  return out;
}

}  // namespace lathe::serve
