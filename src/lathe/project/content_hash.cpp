#include "lathe/project/content_hash.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <xxhash.h>

#include "lathe/core/file_io.h"

namespace fs = std::filesystem;

namespace lathe::project {

std::string hex64(uint64_t h) { return fmt::format("{:016x}", h); }

std::string hash_bytes(const std::string& bytes) { return hex64(XXH3_64bits(bytes.data(), bytes.size())); }

namespace {

bool skipped(const fs::path& rel) {
  for (const auto& part : rel) {
    const std::string s = part.string();
    if (s.rfind("checkpoint-", 0) == 0 || s == ".lathe") return true;
  }
  const std::string name = rel.filename().string();
  return name == "metrics.jsonl" || name == "train.log" || name.rfind(".tmp", 0) == 0;
}

std::string hash_file(const std::string& path) {
  // Streamed so large weight files never sit in memory twice.
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    XXH3_freeState(st);
    return "";
  }
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) XXH3_64bits_update(st, buf.data(), n);
  std::fclose(f);
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return hex64(h);
}

}  // namespace

std::string hash_path(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return hash_file(path);
  if (!fs::is_directory(path, ec)) return "";
  std::vector<std::pair<std::string, std::string>> files;
  // error_code forms throughout: a symlink loop or a dangling link inside a data directory is data
  // collect's to report (as a skipped source), never a reason for the fingerprint to throw.
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path rel = it->path().lexically_relative(path);  // lexical: no syscalls that can throw
    if (skipped(rel)) {
      if (std::error_code de; it->is_directory(de)) it.disable_recursion_pending();
      continue;
    }
    std::error_code fe;
    if (it->is_regular_file(fe)) files.emplace_back(rel.generic_string(), hash_file(it->path().string()));
  }
  std::sort(files.begin(), files.end());
  std::string acc;
  for (auto& [rel, h] : files) acc += rel + "\t" + h + "\n";
  return hash_bytes(acc);
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const std::string& p : patterns) {
    if (p.find_first_of("*?[") == std::string::npos) {
      out.push_back(p);
      continue;
    }
    glob_t g{};
    if (glob(p.c_str(), 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
    } else {
      out.push_back(p);
    }
    globfree(&g);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string relative_to(const std::string& path, const std::string& base) {
  if (base.empty() || !fs::path(path).is_absolute()) return path;
  const fs::path rel = fs::path(path).lexically_normal().lexically_relative(fs::path(base).lexically_normal());
  if (rel.empty() || *rel.begin() == "..") return path;
  return rel.string();
}

std::string hash_paths(const std::vector<std::string>& paths, const std::string& base) {
  std::string acc;
  for (const std::string& p : paths) acc += relative_to(p, base) + "\t" + hash_path(p) + "\n";
  return hash_bytes(acc);
}

}  // namespace lathe::project
