// The workbench's static files (src/lathe/ui/assets/), compiled into the binary by
// cmake/embed_assets.cmake: `lathe ui` works offline and never reads them from disk.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lathe::ui {

struct Asset {
  std::string name;        // file name, e.g. "app.js"
  std::string_view bytes;  // its content
};

const std::vector<Asset>& embedded_assets();
// The asset called `name`, or nullptr.
const Asset* find_asset(const std::string& name);
// Content-Type by extension (text types with charset=utf-8).
std::string asset_content_type(const std::string& name);

}  // namespace lathe::ui
