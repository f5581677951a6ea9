// AdamW, schedules and gradient clipping against PyTorch goldens (tests/data/optim/golden.json,
// regenerate with: /usr/bin/python3 tools/golden/gen_optim_goldens.py), plus schedule boundaries.
#include <cmath>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/train/adamw.h"
#include "lathe/train/grad_clip.h"
#include "lathe/train/schedule.h"
#include "test_util.h"

using nlohmann::json;

namespace lathe {
namespace {

const json& goldens() {
  static const json j = json::parse(read_file(test::source_path("tests/data/optim/golden.json")));
  return j;
}

void fill(const Tensor& t, const json& values) {
  ASSERT_EQ(int64_t(values.size()), t.numel());
  float* p = t.f32();
  for (size_t i = 0; i < values.size(); i++) p[i] = values[i].get<float>();
}

// Relative 1e-6 with a small absolute floor for values near zero.
void expect_close(const Tensor& t, const json& want, const std::string& what) {
  const float* p = t.f32();
  for (size_t i = 0; i < want.size(); i++) {
    const double w = want[i].get<double>();
    ASSERT_NEAR(p[i], w, 1e-6 * std::fabs(w) + 1e-9)
        << what << "[" << i << "] (regenerate goldens: /usr/bin/python3 tools/golden/gen_optim_goldens.py)";
  }
}

struct Fixture {
  std::vector<std::unique_ptr<Param>> owned;
  ParamList list;
  explicit Fixture(const json& c) {
    for (const auto& p : c["params"]) {
      auto prm = std::make_unique<Param>();
      prm->name = p["name"].get<std::string>();
      auto shape = p["shape"].get<std::vector<int64_t>>();
      prm->value = Tensor::zeros(DType::F32, shape);
      prm->grad = Tensor::zeros(DType::F32, shape);
      prm->weight_decay = p["weight_decay"].get<bool>();
      fill(prm->value, p["init"]);
      list.push_back(prm.get());
      owned.push_back(std::move(prm));
    }
  }
};

TEST(AdamW, MatchesTorchGoldens) {
  for (const auto& c : goldens()["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    Fixture f(c);
    AdamWConfig cfg;
    cfg.beta1 = c["betas"][0].get<double>();
    cfg.beta2 = c["betas"][1].get<double>();
    cfg.eps = c["eps"].get<double>();
    cfg.weight_decay = c["weight_decay"].get<double>();
    AdamW opt(f.list, cfg);
    const float max_norm = c["max_grad_norm"].get<float>();
    int step = 0;
    for (const auto& s : c["steps"]) {
      SCOPED_TRACE("step " + std::to_string(step));
      for (Param* p : f.list) fill(p->grad, s["grads"][p->name]);
      const double norm = max_norm > 0 ? clip_grad_norm(f.list, max_norm) : global_grad_norm(f.list);
      EXPECT_NEAR(norm, s["grad_norm"].get<double>(), 1e-6 * s["grad_norm"].get<double>());
      const double lr = lr_at(c["schedule"], c["lr"].get<double>(), step, c["warmup_steps"].get<int>(),
                              c["max_steps"].get<int>());
      EXPECT_NEAR(lr, s["lr"].get<double>(), 1e-15) << "schedule " << c["schedule"];
      opt.step(lr);
      for (Param* p : f.list) expect_close(p->value, s["params"][p->name], p->name);
      step++;
    }
    EXPECT_EQ(opt.step_count(), step);
    std::map<std::string, Tensor> state;
    for (auto& [name, t] : opt.export_state()) state[name] = t;
    for (Param* p : f.list) {
      expect_close(state.at("exp_avg." + p->name), c["exp_avg"][p->name], "exp_avg." + p->name);
      expect_close(state.at("exp_avg_sq." + p->name), c["exp_avg_sq"][p->name], "exp_avg_sq." + p->name);
    }
  }
}

TEST(AdamW, ImportStateContinuesBitwise) {
  const json& c = goldens()["cases"][0];
  Fixture a(c), b(c);
  AdamWConfig cfg{0.9, 0.999, 1e-8, 0.1};
  AdamW oa(a.list, cfg), ob(b.list, cfg);
  auto grads = [&](Fixture& f, int s) {
    for (Param* p : f.list) fill(p->grad, c["steps"][s]["grads"][p->name]);
  };
  for (int s = 0; s < 3; s++) grads(a, s), oa.step(1e-2);
  // b gets a's values and optimizer state, then both take the same next steps.
  std::map<std::string, Tensor> st;
  for (auto& [name, t] : oa.export_state()) st[name] = t;
  ob.import_state(st, oa.step_count());
  for (size_t i = 0; i < a.list.size(); i++)
    std::memcpy(b.list[i]->value.data, a.list[i]->value.data, a.list[i]->value.nbytes());
  for (int s = 3; s < 5; s++) grads(a, s), grads(b, s), oa.step(5e-3), ob.step(5e-3);
  for (size_t i = 0; i < a.list.size(); i++)
    EXPECT_EQ(0, std::memcmp(a.list[i]->value.data, b.list[i]->value.data, a.list[i]->value.nbytes()));

  st.erase("exp_avg.layer.bias");
  try {
    ob.import_state(st, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exp_avg.layer.bias"), std::string::npos) << e.what();
  }
}

TEST(Schedule, Boundaries) {
  // linear, warmup 10, 100 steps
  EXPECT_EQ(lr_at("linear", 1.0, 0, 10, 100), 0.0);
  EXPECT_DOUBLE_EQ(lr_at("linear", 1.0, 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(lr_at("linear", 1.0, 10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_at("linear", 1.0, 55, 10, 100), 0.5);
  EXPECT_EQ(lr_at("linear", 1.0, 100, 10, 100), 0.0);
  EXPECT_EQ(lr_at("linear", 1.0, 150, 10, 100), 0.0);  // clamped, never negative
  // no warmup: step 0 is the full lr
  EXPECT_DOUBLE_EQ(lr_at("linear", 2e-4, 0, 0, 4), 2e-4);
  EXPECT_DOUBLE_EQ(lr_at("linear", 2e-4, 3, 0, 4), 0.5e-4);
  // cosine: half-way through the decay is half the lr; the end is 0
  EXPECT_DOUBLE_EQ(lr_at("cosine", 1.0, 10, 10, 110), 1.0);
  EXPECT_NEAR(lr_at("cosine", 1.0, 60, 10, 110), 0.5, 1e-15);
  EXPECT_NEAR(lr_at("cosine", 1.0, 110, 10, 110), 0.0, 1e-15);
  EXPECT_DOUBLE_EQ(lr_at("cosine", 1.0, 3, 4, 110), 0.75);
  // constant ignores warmup (HF); constant_with_warmup uses it
  EXPECT_EQ(lr_at("constant", 3.0, 0, 5, 10), 3.0);
  EXPECT_EQ(lr_at("constant_with_warmup", 3.0, 0, 5, 10), 0.0);
  EXPECT_DOUBLE_EQ(lr_at("constant_with_warmup", 3.0, 4, 5, 10), 3.0 * 4 / 5);
  EXPECT_EQ(lr_at("constant_with_warmup", 3.0, 5, 5, 10), 3.0);
  EXPECT_EQ(lr_at("constant_with_warmup", 3.0, 500, 5, 10), 3.0);
  // warmup == max_steps: HF's max(1, T - w) avoids dividing by zero
  EXPECT_EQ(lr_at("linear", 1.0, 5, 5, 5), 0.0);
}

TEST(Schedule, UnknownTypeListsValidOnes) {
  try {
    lr_at("cosine_with_restarts", 1.0, 0, 0, 10);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cosine_with_restarts"), std::string::npos) << m;
    EXPECT_NE(m.find("constant, constant_with_warmup, linear, cosine"), std::string::npos) << m;
  }
  EXPECT_THROW(lr_at("linear", 1.0, 0, 0, -1), Error);
  EXPECT_NO_THROW(validate_lr_schedule_type("cosine"));
}

TEST(Schedule, WarmupRatioRoundsUpLikeHF) {
  EXPECT_EQ(resolve_warmup_steps(0, 0.1, 100), 10);
  EXPECT_EQ(resolve_warmup_steps(0, 0.07, 100), 8);  // 0.07 * 100 = 7.000000000000001 in f64: ceil -> 8, as HF
  EXPECT_EQ(resolve_warmup_steps(0, 0.03, 1000), 30);
  EXPECT_EQ(resolve_warmup_steps(0, 0.05, 7), 1);
  EXPECT_EQ(resolve_warmup_steps(0, 0.0, 7), 0);
  EXPECT_EQ(resolve_warmup_steps(3, 0.5, 100), 3);  // explicit steps win
}

TEST(GradClip, NormClipAndFinite) {
  Param a{"a", Tensor::zeros(DType::F32, {3}), Tensor::zeros(DType::F32, {3}), true};
  Param b{"b", Tensor::zeros(DType::F32, {40000}), Tensor::zeros(DType::F32, {40000}), false};
  ParamList ps{&a, &b};
  a.grad.f32()[0] = 3;
  a.grad.f32()[2] = 4;
  EXPECT_DOUBLE_EQ(global_grad_norm(ps), 5.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0f), 5.0);  // below the limit: unchanged
  EXPECT_EQ(a.grad.f32()[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0f), 5.0);  // disabled
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0f), 5.0);
  EXPECT_NEAR(global_grad_norm(ps), 1.0, 1e-6);
  EXPECT_FLOAT_EQ(a.grad.f32()[0], float(3.0 / (5.0 + 1e-6)));

  std::string bad;
  EXPECT_TRUE(grads_finite(ps, &bad));
  b.grad.f32()[39999] = NAN;
  EXPECT_FALSE(grads_finite(ps, &bad));
  EXPECT_EQ(bad, "b");
  b.grad.f32()[39999] = INFINITY;
  EXPECT_FALSE(grads_finite(ps, &bad));
  EXPECT_FALSE(std::isfinite(clip_grad_norm(ps, 1.0f)));
}

}  // namespace
}  // namespace lathe
