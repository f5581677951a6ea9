#include "lathe/train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#define XXH_INLINE_ALL  // header-only use of libxxhash: nothing extra to link
#include <xxhash.h>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/core/scope_exit.h"
#include "lathe/formats/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {

namespace {

constexpr const char* kTrainable = "trainable.safetensors";
constexpr const char* kOptimizer = "optimizer.safetensors";
constexpr const char* kState = "trainer_state.json";
constexpr const char* kChecksums = "checksums.json";
constexpr const char* kPrefix = "checkpoint-";

std::string hex64(uint64_t h) { return fmt::format("{:016x}", h); }

// "checkpoint-123" -> 123; anything else (including "checkpoint-123.tmp-77") -> -1.
int64_t checkpoint_step_of(const std::string& name) {
  const size_t n = std::strlen(kPrefix);
  if (name.size() <= n || name.compare(0, n, kPrefix) != 0 || name.size() - n > 18) return -1;
  int64_t step = 0;
  for (size_t i = n; i < name.size(); i++) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Directory entries must reach the disk too, or a rename can be lost in a crash after it returned.
void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("checkpoint", "{}: cannot open directory: {}", dir, std::strerror(errno));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) fail("checkpoint", "{}: fsync failed: {}", dir, std::strerror(e));
}

void remove_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) fail("checkpoint", "{}: cannot remove: {}", dir, ec.message());
}

// A checkpoint file read whole, its checksum already verified; shared so safetensors views can
// point into it.
std::shared_ptr<std::string> read_verified(const std::string& dir, const std::string& file, const json& sums) {
  const std::string path = dir + "/" + file;
  if (!file_exists(path)) fail("checkpoint", "{}: missing (incomplete or damaged checkpoint)", path);
  auto bytes = std::make_shared<std::string>(read_file(path));
  if (!sums.contains(file) || !sums[file].is_string())
    fail("checkpoint", "{}: no checksum recorded in {}", path, kChecksums);
  const std::string got = hex64(XXH64(bytes->data(), bytes->size(), 0));
  if (got != sums[file].get<std::string>())
    fail("checkpoint", "{}: checksum mismatch (xxh64 {} recorded, {} found): the file is corrupted", path,
         sums[file].get<std::string>(), got);
  return bytes;
}

json read_checksums(const std::string& dir) {
  const std::string path = dir + "/" + kChecksums;
  if (!is_directory(dir)) fail("checkpoint", "{}: not a directory", dir);
  if (!file_exists(path)) fail("checkpoint", "{}: missing (not a complete checkpoint)", path);
  json j;
  JsonError err;
  if (!try_parse_json_bounded(read_file(path), j, &err)) fail("checkpoint", "{}: invalid JSON: {}", path, err.message);
  if (!j.is_object() || j.value("algorithm", "") != "xxh64" || !j.contains("files") || !j["files"].is_object())
    fail("checkpoint", "{}: expected {{\"algorithm\": \"xxh64\", \"files\": {{...}}}}", path);
  return j["files"];
}

json state_to_json(const TrainerState& st, const AdamW& opt) {
  json rng = json::object();
  for (const auto& [name, s] : st.rng_states)
    rng[name] = {std::to_string(s[0]), std::to_string(s[1]), std::to_string(s[2]), std::to_string(s[3])};
  const AdamWConfig& c = opt.config();
  return json{{"format_version", kCheckpointFormatVersion},
              {"global_step", st.global_step},
              {"epoch", st.epoch},
              {"scheduler", {{"step", st.scheduler_step}}},
              {"optimizer",
               {{"type", "adamw"},
                {"step", opt.step_count()},
                {"beta1", c.beta1},
                {"beta2", c.beta2},
                {"eps", c.eps},
                {"weight_decay", c.weight_decay}}},
              {"data_cursor", st.data_cursor},
              {"rng_states", rng},
              {"loss_history", st.loss_history},
              {"config", st.config},
              {"world_size", st.world_size}};
}

TrainerState state_from_json(const std::string& path, const std::string& text, int64_t* optimizer_step) {
  TrainerState st;
  try {
    json j = parse_json_bounded(text, path, "checkpoint");
    int version = j.at("format_version").get<int>();
    if (version > kCheckpointFormatVersion)
      fail("checkpoint", "{}: format_version {} is newer than this lathe reads ({})", path, version,
           kCheckpointFormatVersion);
    st.global_step = j.at("global_step").get<int64_t>();
    st.epoch = j.at("epoch").get<double>();
    st.scheduler_step = j.at("scheduler").at("step").get<int64_t>();
    st.data_cursor = j.at("data_cursor");
    for (const auto& [name, words] : j.at("rng_states").items()) {
      if (!words.is_array() || words.size() != 4) fail("checkpoint", "{}: rng_states.{}: expected 4 words", path, name);
      std::array<uint64_t, 4> s{};
      for (int i = 0; i < 4; i++) s[i] = std::stoull(words[i].get<std::string>());
      st.rng_states[name] = s;
    }
    st.loss_history = j.value("loss_history", json::array());
    st.config = j.value("config", json::object());
    st.world_size = j.value("world_size", 1);
    if (optimizer_step) *optimizer_step = j.at("optimizer").at("step").get<int64_t>();
  } catch (const json::exception& e) {
    fail("checkpoint", "{}: {}", path, e.what());
  } catch (const std::logic_error& e) {  // stoull on a malformed word
    fail("checkpoint", "{}: bad RNG state word: {}", path, e.what());
  }
  return st;
}

}  // namespace

std::array<uint64_t, 4> rng_state_of(const Rng& rng) {
  const uint64_t* s = rng.state();
  return {s[0], s[1], s[2], s[3]};
}

void rng_restore(Rng* rng, const std::array<uint64_t, 4>& state) { rng->set_state(state.data()); }

void clean_stale_checkpoint_tmp(const std::string& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kPrefix, 0) == 0 && name.find(".tmp-") != std::string::npos) remove_dir(e.path().string());
  }
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    const int64_t step = checkpoint_step_of(e.path().filename().string());
    if (step < 0 || !e.is_directory()) continue;
    if (!fs::exists(e.path() / kChecksums)) continue;  // not written by us, or hand-damaged
    out.emplace_back(step, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string find_latest_checkpoint(const std::string& output_dir) {
  auto all = list_checkpoints(output_dir);
  return all.empty() ? std::string() : all.back().second;
}

std::string resolve_resume_checkpoint(const std::string& spec, const std::string& output_dir) {
  if (spec.empty()) return "";
  if (spec == "latest") {
    std::string latest = find_latest_checkpoint(output_dir);
    if (latest.empty())
      fail("checkpoint", "--resume-from-checkpoint latest: no checkpoint-STEP directory in '{}'", output_dir);
    return latest;
  }
  if (!file_exists(spec + "/" + kChecksums))
    fail("checkpoint", "--resume-from-checkpoint {}: not a checkpoint directory (no {})", spec, kChecksums);
  return spec;
}

void prune_checkpoints(const std::string& output_dir, int keep) {
  if (keep <= 0) return;
  auto all = list_checkpoints(output_dir);
  for (size_t i = 0; i + size_t(keep) < all.size(); i++) remove_dir(all[i].second);
}

std::string checkpoint_save(const std::string& output_dir, const ParamList& params, const AdamW& optimizer,
                            const TrainerState& state, int save_total_limit) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) fail("checkpoint", "{}: cannot create output directory: {}", output_dir, ec.message());
  clean_stale_checkpoint_tmp(output_dir);

  const std::string final_dir = output_dir + "/" + kPrefix + std::to_string(state.global_step);
  const std::string tmp_dir = final_dir + ".tmp-" + std::to_string(::getpid());
  fs::create_directory(tmp_dir, ec);
  if (ec) fail("checkpoint", "{}: cannot create: {}", tmp_dir, ec.message());

  // A save that fails leaves no partial directory behind; its error propagates as it is.
  ScopeExit remove_partial([&] {
    std::error_code ignored;  // the save's own error is the one to report
    fs::remove_all(tmp_dir, ignored);
  });
  std::vector<std::pair<std::string, Tensor>> values;
  for (const Param* p : params) values.emplace_back(p->name, p->value);
  safetensors_write(tmp_dir + "/" + kTrainable, values, {{"format", "pt"}});
  safetensors_write(tmp_dir + "/" + kOptimizer, optimizer.export_state(),
                    {{"format", "lathe-adamw"}, {"step", std::to_string(optimizer.step_count())}});
  write_file_atomic(tmp_dir + "/" + kState, state_to_json(state, optimizer).dump(2) + "\n");

  // Hash what is on disk (each writer above already fsynced its file).
  json files = json::object();
  for (const char* f : {kTrainable, kOptimizer, kState}) {
    std::string bytes = read_file(tmp_dir + "/" + f);
    files[f] = hex64(XXH64(bytes.data(), bytes.size(), 0));
  }
  // checksums.json is written last: list_checkpoints treats its presence as "complete".
  write_file_atomic(tmp_dir + "/" + kChecksums, json{{"algorithm", "xxh64"}, {"files", files}}.dump(2) + "\n");
  fsync_dir(tmp_dir);

  if (fs::exists(final_dir)) {
    // Same step saved again (e.g. after resuming from an older checkpoint): swap atomically, then
    // drop the old copy, which now sits under the .tmp name and would be cleaned as stale anyway.
    if (::renameat2(AT_FDCWD, tmp_dir.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0)
      fail("checkpoint", "{}: cannot replace with {}: {}", final_dir, tmp_dir, std::strerror(errno));
    fsync_dir(output_dir);
    remove_dir(tmp_dir);
  } else {
    if (std::rename(tmp_dir.c_str(), final_dir.c_str()) != 0)
      fail("checkpoint", "{}: cannot rename {} into place: {}", final_dir, tmp_dir, std::strerror(errno));
  }
  fsync_dir(output_dir);
  remove_partial.dismiss();
  prune_checkpoints(output_dir, save_total_limit);
  return final_dir;
}

TrainerState checkpoint_read_state(const std::string& ckpt_dir) {
  json sums = read_checksums(ckpt_dir);
  auto text = read_verified(ckpt_dir, kState, sums);
  return state_from_json(ckpt_dir + "/" + kState, *text, nullptr);
}

void checkpoint_load(const std::string& ckpt_dir, const ParamList& params, AdamW* optimizer, TrainerState* state) {
  json sums = read_checksums(ckpt_dir);
  // Verify every file before touching params, so a damaged checkpoint changes nothing.
  auto state_bytes = read_verified(ckpt_dir, kState, sums);
  auto trainable_bytes = read_verified(ckpt_dir, kTrainable, sums);
  auto optimizer_bytes = read_verified(ckpt_dir, kOptimizer, sums);

  int64_t opt_step = 0;
  TrainerState st = state_from_json(ckpt_dir + "/" + kState, *state_bytes, &opt_step);

  const std::string tpath = ckpt_dir + "/" + kTrainable;
  auto tfile = SafetensorsFile::parse(tpath, reinterpret_cast<const uint8_t*>(trainable_bytes->data()),
                                      trainable_bytes->size(), trainable_bytes);
  for (const Param* p : params) {
    if (!tfile.has(p->name))
      fail("checkpoint", "{}: no tensor '{}' (was the checkpoint made with another method or target modules?)",
           tpath, p->name);
    Tensor t = tfile.tensor(p->name);
    if (t.dtype != DType::F32 || t.shape != p->value.shape)
      fail("checkpoint", "{}: tensor '{}' is {} {}, the model expects F32 {}", tpath, p->name, dtype_name(t.dtype),
           t.shape_str(), p->value.shape_str());
  }
  if (tfile.entries().size() != params.size()) {
    for (const auto& e : tfile.entries()) {
      bool known = std::any_of(params.begin(), params.end(), [&](const Param* p) { return p->name == e.name; });
      if (!known) fail("checkpoint", "{}: tensor '{}' matches no trainable parameter", tpath, e.name);
    }
  }

  if (optimizer) {
    const std::string opath = ckpt_dir + "/" + kOptimizer;
    auto ofile = SafetensorsFile::parse(opath, reinterpret_cast<const uint8_t*>(optimizer_bytes->data()),
                                        optimizer_bytes->size(), optimizer_bytes);
    auto it = ofile.metadata().find("step");
    if (it == ofile.metadata().end() || it->second != std::to_string(opt_step))
      fail("checkpoint", "{}: optimizer step does not match {} (step {})", opath, kState, opt_step);
    std::map<std::string, Tensor> tensors;
    for (const auto& e : ofile.entries()) tensors[e.name] = ofile.tensor(e.name);
    try {
      optimizer->import_state(tensors, opt_step);
    } catch (const Error& e) {
      fail("checkpoint", "{}: {}", opath, e.what());
    }
  }
  // Only now, with everything validated, overwrite the live parameters.
  for (const Param* p : params) {
    Tensor t = tfile.tensor(p->name);
    std::memcpy(p->value.data, t.data, p->value.nbytes());
  }
  if (state) *state = std::move(st);
}

}  // namespace lathe
