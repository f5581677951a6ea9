// Training checkpoints: one directory per optimizer step, OUTPUT/checkpoint-STEP/, holding
//   trainable.safetensors   every trainable Param's value, by Param::name (f32)
//   optimizer.safetensors   AdamW moments "exp_avg.<name>" / "exp_avg_sq.<name>"; metadata "step"
//   trainer_state.json      format_version, global_step, epoch, data cursor, RNG states, scheduler
//                           step, optimizer step and hyper-parameters, loss history tail, config
//   checksums.json          {"algorithm": "xxh64", "files": {file: 16 hex digits}} for the three above
// A checkpoint is built in OUTPUT/checkpoint-STEP.tmp-PID/ (every file fsynced) and renamed into
// place, so a crash leaves either no checkpoint-STEP or a whole one; leftover .tmp-* directories are
// never listed as checkpoints and are removed by the next save. Loading verifies every checksum first.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/core/rng.h"
#include "lathe/train/adamw.h"
#include "lathe/train/params.h"

namespace lathe {

constexpr int kCheckpointFormatVersion = 1;

// Everything besides tensors that a bitwise resume needs. The trainer owns the meaning of
// data_cursor and config (opaque JSON here); RNG states are stored exactly (decimal strings, since
// JSON readers outside C++ lose u64 precision).
struct TrainerState {
  int64_t global_step = 0;  // optimizer steps taken
  double epoch = 0.0;       // fractional epoch, as HF's trainer_state.json
  int64_t scheduler_step = 0;
  nlohmann::json data_cursor = nlohmann::json::object();
  std::map<std::string, std::array<uint64_t, 4>> rng_states;  // e.g. {"dropout": rng.state()}
  nlohmann::json loss_history = nlohmann::json::array();      // e.g. the last N {"step","loss"} rows
  nlohmann::json config = nlohmann::json::object();           // the resolved TrainOptions
  int world_size = 1;  // ranks of the data-parallel job that wrote it (the data order depends on it)
};

std::array<uint64_t, 4> rng_state_of(const Rng& rng);
void rng_restore(Rng* rng, const std::array<uint64_t, 4>& state);

// Writes OUTPUT/checkpoint-<state.global_step>/ (creating OUTPUT if needed; replacing an existing
// checkpoint of the same step atomically), removes stale .tmp-* directories, then keeps only the
// newest `save_total_limit` checkpoints by step (0 = keep all). Returns the checkpoint directory.
std::string checkpoint_save(const std::string& output_dir, const ParamList& params, const AdamW& optimizer,
                            const TrainerState& state, int save_total_limit = 0);

// Loads `ckpt_dir` into `params` (values), `optimizer` (moments + step; may be null) and `state`.
// Verifies checksums first; throws "[checkpoint] DIR/FILE: ..." naming the file that is missing,
// corrupted or inconsistent, and the tensor that is missing, extra or mis-shaped.
void checkpoint_load(const std::string& ckpt_dir, const ParamList& params, AdamW* optimizer, TrainerState* state);

// Reads only trainer_state.json (checksum-verified): for inspection or to restore the data cursor
// before the model is built.
TrainerState checkpoint_read_state(const std::string& ckpt_dir);

// The complete checkpoints under output_dir as (step, path), ascending by step. Only directories named
// exactly checkpoint-<digits> that hold checksums.json count (never .tmp-* ones).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& output_dir);
// The newest complete checkpoint's path, or "" when there is none.
std::string find_latest_checkpoint(const std::string& output_dir);
// For --resume-from-checkpoint: "" -> "" (fresh run); "latest" -> find_latest_checkpoint (throws when
// there is none); otherwise the directory itself, which must be a checkpoint.
std::string resolve_resume_checkpoint(const std::string& spec, const std::string& output_dir);
// Deletes all but the newest `keep` checkpoints (keep <= 0: nothing is deleted).
void prune_checkpoints(const std::string& output_dir, int keep);
// Removes checkpoint-*.tmp-* directories left by an interrupted save.
void clean_stale_checkpoint_tmp(const std::string& output_dir);

}  // namespace lathe
