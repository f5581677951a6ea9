// Content hashes that decide whether a stage's inputs changed: XXH3-64 over file bytes, and for a
// directory over its files' relative paths and hashes in sorted order (checkpoint-* directories
// and logs are skipped: they do not change what a stage's result means).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lathe::project {

std::string hex64(uint64_t h);
std::string hash_bytes(const std::string& bytes);
// A file or a directory; "" for a path that does not exist.
std::string hash_path(const std::string& path);
// Expands globs (*, ?, [..]) and keeps plain paths; sorted, unique. A pattern that matches nothing
// stays in the list so its absence changes the hash.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns);
// The combined hash of several paths, each named by its path relative to `base` (when under it), so a
// project copied or moved elsewhere keeps its fingerprints.
std::string hash_paths(const std::vector<std::string>& paths, const std::string& base);
// `path` relative to `base` when it lies under it, else unchanged.
std::string relative_to(const std::string& path, const std::string& base);

}  // namespace lathe::project
