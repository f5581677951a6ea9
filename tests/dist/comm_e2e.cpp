// The MPI communicator and the trainer's gradient exchange on three real ranks (a count that is not
// a power of two, where MPI's reduction algorithms differ from the two-rank case). The outer test
// launches this same executable under `mpirun -np 3` with a filter that selects the Ranks.* tests,
// which run only there (skipped in a plain run). Skipped where mpirun or an MPI build is missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <filesystem>

#include "lathe/dist/comm.h"
#include "lathe/train/grad_sync.h"
#include "test_util.h"

namespace {

bool under_mpi() { return lathe::launched_by_mpi() && lathe::world().size() > 1; }

#define REQUIRE_RANKS() \
  if (!under_mpi()) GTEST_SKIP() << "runs under mpirun only (launched by Comm.CollectivesOnThreeRanks)"

TEST(Comm, CollectivesOnThreeRanks) {
  if (lathe::launched_by_mpi()) GTEST_SKIP() << "this is the launcher";
  if (!lathe::built_with_mpi() || std::system((lathe::test::mpirun_prefix(1) + "true >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "mpirun or an MPI build is missing";
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string out;
  const std::string cmd = lathe::test::mpirun_prefix(3) + self + " --gtest_filter='Ranks.*' 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int st = pclose(f);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << out;
  int passed = 0;  // every rank ran the four Ranks tests
  for (size_t at = out.find("[  PASSED  ] 4 tests."); at != std::string::npos; at = out.find("[  PASSED  ] 4 tests.", at + 1))
    passed++;
  EXPECT_EQ(passed, 3) << out;
}

TEST(Comm, OneProcessIsTheIdentity) {
  if (lathe::launched_by_mpi()) GTEST_SKIP();
  lathe::Communicator& w = lathe::world();
  EXPECT_EQ(w.size(), 1);
  EXPECT_EQ(w.rank(), 0);
  float x[2] = {1.5f, -2.0f};
  w.allreduce_sum(x, 2);
  EXPECT_EQ(x[0], 1.5f);
  EXPECT_EQ(w.gather("abc", 0), std::vector<std::string>{"abc"});
  EXPECT_EQ(lathe::rank_prefix(), "");
}

TEST(Ranks, SumsMaxAndBroadcast) {
  REQUIRE_RANKS();
  lathe::Communicator& w = lathe::world();
  ASSERT_EQ(w.size(), 3);
  const int r = w.rank();
  std::vector<float> f = {float(r), 0.5f * float(r + 1)};
  w.allreduce_sum(f.data(), f.size());
  EXPECT_EQ(f[0], 3.0f);
  EXPECT_EQ(f[1], 3.0f);
  double d[1] = {1e-3 * r};
  w.allreduce_sum(d, 1);
  EXPECT_NEAR(d[0], 3e-3, 1e-15);
  int64_t i[2] = {int64_t(r) << 40, 7 - r};
  w.allreduce_sum(i, 1);
  w.allreduce_max(i + 1, 1);
  EXPECT_EQ(i[0], int64_t(3) << 40);
  EXPECT_EQ(i[1], 7);
  char msg[6] = "xxxxx";
  if (r == 2) std::snprintf(msg, sizeof msg, "hello");
  w.broadcast(msg, sizeof msg, 2);
  EXPECT_STREQ(msg, "hello");
  EXPECT_EQ(lathe::rank_prefix(), "rank " + std::to_string(r) + "/3: ");
}

TEST(Ranks, GatherKeepsRankOrderAndSizes) {
  REQUIRE_RANKS();
  lathe::Communicator& w = lathe::world();
  const std::string mine(size_t(w.rank()) * 1000, char('a' + w.rank()));  // rank 0 sends nothing
  auto all = w.gather(mine, 1);
  if (w.rank() != 1) {
    EXPECT_TRUE(all.empty());
    return;
  }
  ASSERT_EQ(all.size(), 3u);
  for (int k = 0; k < 3; k++) EXPECT_EQ(all[size_t(k)], std::string(size_t(k) * 1000, char('a' + k)));
}

TEST(Ranks, NonBlockingSums) {
  REQUIRE_RANKS();
  lathe::Communicator& w = lathe::world();
  std::vector<float> a(100000, float(w.rank() + 1)), b(7, 1.0f);
  w.start_allreduce_sum(a.data(), a.size());
  w.start_allreduce_sum(b.data(), b.size());
  w.progress();
  w.wait_all();
  for (float v : a) ASSERT_EQ(v, 6.0f);
  for (float v : b) ASSERT_EQ(v, 3.0f);
}

// Parameters named as the trainer names them: two decoder layers and the rest.
struct FakeParams {
  std::vector<std::unique_ptr<lathe::Param>> owned;
  lathe::ParamList list;
  explicit FakeParams(int rank) {
    for (const char* name : {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
                             "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight",
                             "model.norm.weight"}) {
      auto p = std::make_unique<lathe::Param>();
      p->name = name;
      p->value = lathe::Tensor::zeros(lathe::DType::F32, {3, 5});
      p->grad = lathe::Tensor::zeros(lathe::DType::F32, {3, 5});
      for (int64_t i = 0; i < 15; i++) p->grad.f32()[i] = float(rank * 100 + i) + 0.25f * float(owned.size());
      list.push_back(p.get());
      owned.push_back(std::move(p));
    }
  }
};

TEST(Ranks, GradSyncSumsEveryGradientWithOrWithoutOverlap) {
  REQUIRE_RANKS();
  lathe::Communicator& w = lathe::world();
  for (bool overlap : {false, true}) {
    FakeParams ps(w.rank());
    lathe::GradSync sync(w, ps.list, /*bucket_bytes=*/64);  // 64 bytes: every parameter its own bucket
    EXPECT_EQ(sync.buckets(), 5u);
    if (overlap) sync.layer_done(1), sync.layer_done(0);
    sync.finish();
    EXPECT_EQ(sync.overlapped_buckets(), overlap ? 3 : 0);
    for (size_t k = 0; k < ps.list.size(); k++)
      for (int64_t i = 0; i < 15; i++)  // (0 + 100 + 200) + 3 i + 3 * 0.25 k: exact in f32
        ASSERT_EQ(ps.list[k]->grad.f32()[i], float(300 + 3 * i) + 0.75f * float(k)) << ps.list[k]->name;
  }
}

TEST(GradSync, ParamLayerFromNames) {
  EXPECT_EQ(lathe::param_layer("base_model.model.model.layers.12.self_attn.q_proj.lora_A.weight"), 12);
  EXPECT_EQ(lathe::param_layer("model.layers.0.mlp.down_proj.weight"), 0);
  EXPECT_EQ(lathe::param_layer("model.embed_tokens.weight"), -1);
  EXPECT_EQ(lathe::param_layer("model.layers.x.weight"), -1);
  EXPECT_EQ(lathe::param_layer("prefix_encoder.embedding.weight"), -1);
}

}  // namespace
