// Checkpoints (round trip, checksums, atomic layout, pruning) and metrics.jsonl resume truncation.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/train/checkpoint.h"
#include "lathe/train/metrics.h"
#include "test_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lathe {
namespace {

struct Model {
  Param w{"base_model.model.layers.0.q_proj.lora_A.weight", Tensor::zeros(DType::F32, {4, 6}),
          Tensor::zeros(DType::F32, {4, 6}), true};
  Param b{"base_model.model.layers.0.q_proj.bias", Tensor::zeros(DType::F32, {4}), Tensor::zeros(DType::F32, {4}),
          false};
  ParamList list{&w, &b};
  explicit Model(uint64_t seed) {
    Rng r(seed);
    for (Param* p : list)
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = r.normal();
  }
  void grads(uint64_t seed) {
    Rng r(seed);
    for (Param* p : list)
      for (int64_t i = 0; i < p->grad.numel(); i++) p->grad.f32()[i] = r.normal();
  }
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TrainerState make_state(int64_t step) {
  TrainerState st;
  st.global_step = step;
  st.scheduler_step = step;
  st.epoch = 1.0 / 3.0;
  st.data_cursor = {{"epoch", 2}, {"position", 17}};
  Rng dropout(12345);
  dropout.next_u64();
  st.rng_states["dropout"] = rng_state_of(dropout);
  st.rng_states["max"] = {~0ull, 0, 1, 0x8000000000000000ull};
  st.loss_history = json::array({{{"step", step}, {"loss", 1.25}}});
  st.config = {{"learning_rate", 2e-4}, {"method", "lora"}};
  return st;
}

void expect_error_naming(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected an error naming " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, RoundTripIsBitwise) {
  test::TempDir dir;
  Model a(1);
  AdamW oa(a.list, AdamWConfig{0.9, 0.999, 1e-8, 0.01});
  for (int s = 0; s < 3; s++) a.grads(100 + s), oa.step(1e-2);
  TrainerState st = make_state(3);
  std::string path = checkpoint_save(dir.path, a.list, oa, st);
  EXPECT_EQ(path, dir / "checkpoint-3");
  for (const char* f : {"trainable.safetensors", "optimizer.safetensors", "trainer_state.json", "checksums.json"})
    EXPECT_TRUE(file_exists(path + "/" + f)) << f;

  Model b(2);  // different values everywhere
  AdamW ob(b.list, AdamWConfig{0.9, 0.999, 1e-8, 0.01});
  TrainerState got;
  checkpoint_load(path, b.list, &ob, &got);
  EXPECT_TRUE(same_bytes(a.w.value, b.w.value));
  EXPECT_TRUE(same_bytes(a.b.value, b.b.value));
  EXPECT_EQ(ob.step_count(), 3);
  auto sa = oa.export_state(), sb = ob.export_state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); i++) EXPECT_TRUE(same_bytes(sa[i].second, sb[i].second)) << sa[i].first;
  EXPECT_EQ(got.global_step, 3);
  EXPECT_EQ(got.scheduler_step, 3);
  EXPECT_EQ(got.epoch, 1.0 / 3.0);  // exact, not rounded
  EXPECT_EQ(got.data_cursor, st.data_cursor);
  EXPECT_EQ(got.rng_states, st.rng_states);
  EXPECT_EQ(got.loss_history, st.loss_history);
  EXPECT_EQ(got.config, st.config);
  Rng restored(0), original(12345);
  original.next_u64();
  rng_restore(&restored, got.rng_states["dropout"]);
  EXPECT_EQ(restored.next_u64(), original.next_u64());

  // Training on from either copy gives the same bits.
  a.grads(200), b.grads(200), oa.step(5e-3), ob.step(5e-3);
  EXPECT_TRUE(same_bytes(a.w.value, b.w.value));
  EXPECT_EQ(checkpoint_read_state(path).data_cursor, st.data_cursor);
}

TEST(Checkpoint, CorruptionNamesTheFile) {
  test::TempDir dir;
  Model a(1);
  AdamW oa(a.list, {});
  std::string path = checkpoint_save(dir.path, a.list, oa, make_state(10));
  for (const char* f : {"optimizer.safetensors", "trainable.safetensors", "trainer_state.json"}) {
    SCOPED_TRACE(f);
    const std::string fp = path + "/" + f;
    std::string bytes = read_file(fp);
    std::string flipped = bytes;
    flipped[flipped.size() - 3] ^= 0x01;
    write_file_atomic(fp, flipped);
    Model b(2);
    Tensor before = Tensor::zeros(DType::F32, b.w.value.shape);
    std::memcpy(before.data, b.w.value.data, before.nbytes());
    AdamW ob(b.list, {});
    expect_error_naming([&] { checkpoint_load(path, b.list, &ob, nullptr); }, fp);
    EXPECT_TRUE(same_bytes(before, b.w.value)) << "a failed load must not touch the params";
    write_file_atomic(fp, bytes);
  }
  fs::remove(path + "/optimizer.safetensors");
  expect_error_naming([&] { checkpoint_load(path, a.list, &oa, nullptr); }, "optimizer.safetensors: missing");
}

TEST(Checkpoint, MismatchedParamsAreNamed) {
  test::TempDir dir;
  Model a(1);
  AdamW oa(a.list, {});
  std::string path = checkpoint_save(dir.path, a.list, oa, make_state(1));
  Param other{"other.weight", Tensor::zeros(DType::F32, {2}), Tensor::zeros(DType::F32, {2}), true};
  ParamList more = a.list;
  more.push_back(&other);
  expect_error_naming([&] { checkpoint_load(path, more, nullptr, nullptr); }, "other.weight");
  ParamList fewer{&a.w};
  expect_error_naming([&] { checkpoint_load(path, fewer, nullptr, nullptr); }, "q_proj.bias");
  Param wrong{a.w.name, Tensor::zeros(DType::F32, {6, 4}), Tensor::zeros(DType::F32, {6, 4}), true};
  ParamList shaped{&wrong, &a.b};
  expect_error_naming([&] { checkpoint_load(path, shaped, nullptr, nullptr); }, "[6, 4]");
}

TEST(Checkpoint, LatestIgnoresTmpAndPrunes) {
  test::TempDir dir;
  Model a(1);
  AdamW oa(a.list, {});
  EXPECT_EQ(find_latest_checkpoint(dir.path), "");
  EXPECT_EQ(resolve_resume_checkpoint("", dir.path), "");
  EXPECT_THROW(resolve_resume_checkpoint("latest", dir.path), Error);
  for (int64_t s : {5, 20, 10}) checkpoint_save(dir.path, a.list, oa, make_state(s));
  EXPECT_EQ(find_latest_checkpoint(dir.path), dir / "checkpoint-20");  // by step, not by name or time

  // A crash mid-save leaves a .tmp dir (even one with a complete-looking layout); never "latest".
  fs::create_directories(dir / "checkpoint-99.tmp-4242");
  std::ofstream(dir / "checkpoint-99.tmp-4242/checksums.json") << "{}";
  fs::create_directories(dir / "checkpoint-77");  // no checksums.json: not one of ours
  EXPECT_EQ(find_latest_checkpoint(dir.path), dir / "checkpoint-20");
  EXPECT_EQ(resolve_resume_checkpoint("latest", dir.path), dir / "checkpoint-20");
  EXPECT_EQ(resolve_resume_checkpoint(dir / "checkpoint-5", dir.path), dir / "checkpoint-5");
  EXPECT_THROW(resolve_resume_checkpoint(dir / "checkpoint-77", dir.path), Error);

  // The next save cleans the stale .tmp dir and keeps the newest 2 by step.
  checkpoint_save(dir.path, a.list, oa, make_state(30), 2);
  EXPECT_FALSE(fs::exists(dir / "checkpoint-99.tmp-4242"));
  auto all = list_checkpoints(dir.path);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 20);
  EXPECT_EQ(all[1].first, 30);

  // Saving a step that exists replaces it atomically.
  TrainerState st = make_state(30);
  st.epoch = 7.0;
  checkpoint_save(dir.path, a.list, oa, st, 2);
  EXPECT_EQ(checkpoint_read_state(dir / "checkpoint-30").epoch, 7.0);
  for (const auto& e : fs::directory_iterator(dir.path))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

std::vector<json> read_rows(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

TEST(Metrics, ResumeDropsRowsAfterTheCheckpoint) {
  test::TempDir dir;
  const std::string path = dir / "metrics.jsonl";
  {
    MetricsWriter w(path);
    for (int s = 1; s <= 6; s++) w.write({{"step", s}, {"loss", 1.0 / s}});
    w.write({{"step", 4}, {"eval_loss", 0.5}});
  }
  {
    std::ofstream torn(path, std::ios::app);
    torn << "{\"step\": 7, \"lo";  // killed mid-write
  }
  {
    MetricsWriter w(path, 4);
    w.write({{"step", 5}, {"loss", 0.2}});
  }
  auto rows = read_rows(path);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[3]["step"], 4);
  EXPECT_EQ(rows[4]["eval_loss"], 0.5);
  EXPECT_EQ(rows[5]["loss"], 0.2);
  {
    MetricsWriter w(path);  // a fresh run starts the file over
    w.write({{"step", 1}});
  }
  EXPECT_EQ(read_rows(path).size(), 1u);
}

TEST(Metrics, ProgressPlainLines) {
  EXPECT_EQ(format_duration(5), "5s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
  EXPECT_EQ(format_duration(-1), "?");
  test::TempDir dir;
  FILE* f = std::fopen((dir / "log").c_str(), "w+");
  ProgressReporter p(10, 4, 0, f, /*tty=*/0);
  for (int s = 1; s <= 10; s++) p.update(s, 2.5, 1e-4, 1500);
  p.finish();
  std::fclose(f);
  std::string log = read_file(dir / "log");
  EXPECT_NE(log.find("step 4/10  loss 2.5000  lr 1.00e-04  1500 tok/s"), std::string::npos) << log;
  EXPECT_NE(log.find("step 8/10"), std::string::npos) << log;
  EXPECT_NE(log.find("step 10/10"), std::string::npos) << log;
  EXPECT_EQ(log.find("step 5/10"), std::string::npos) << log;
  EXPECT_EQ(log.find('\r'), std::string::npos);
}

}  // namespace
}  // namespace lathe
