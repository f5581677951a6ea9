// Serve layer pieces without HTTP: the scheduler against the plain generate() loop, stop strings,
// request validation, the error shape, Prometheus histograms and the feedback store.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/rng.h"
#include "lathe/model/generate.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
#include "lathe/serve/adapter_registry.h"
#include "lathe/serve/feedback_store.h"
#include "lathe/serve/metrics.h"
#include "lathe/serve/openai_protocol.h"
#include "lathe/serve/scheduler.h"
#include "test_util.h"

using nlohmann::json;
using namespace lathe;
using namespace lathe::serve;

namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  return c;
}

// Jobs interleaved by the scheduler (chunked prefill, several adapters in one batched decode step)
// give exactly the ids of running generate() on each alone.
TEST(ServeSchedulerUnit, InterleavedJobsMatchSequentialGenerate) {
  Model m = Model::init_random(tiny_config(), 5, 0.3f);
  LoraConfig lc;
  lc.r = 2;
  lc.target_modules = {"all-linear"};
  std::vector<std::shared_ptr<ServedAdapter>> adapters;
  for (uint64_t seed : {1, 2}) {
    auto a = std::make_shared<ServedAdapter>();
    a->loaded.peft_type = "LORA";
    a->loaded.lora = LoraAdapter::create(m.config, lc, seed);
    Rng rng(seed);
    for (Param* p : a->loaded.lora->params())
      for (int64_t i = 0; i < p->value.numel(); i++) p->value.f32()[i] = 0.3f * rng.normal();
    adapters.push_back(a);
  }
  auto prefix = std::make_shared<ServedAdapter>();
  prefix->loaded.peft_type = "PREFIX_TUNING";
  PrefixConfig pc;
  pc.num_virtual_tokens = 3;
  prefix->loaded.prefix = PrefixAdapter::create(m.config, pc, 9);
  adapters.push_back(prefix);
  for (bool batch : {true, false}) {
  SCOPED_TRACE(batch ? "batched decode" : "one decode step per request");
  SchedulerOptions so{3, 8, 2};  // 3 at once, prefill 2 tokens a turn
  so.batch_decode = batch;
  Scheduler sched(m, so);
  std::vector<std::shared_ptr<GenJob>> jobs;
  for (int i = 0; i < 6; i++) {
    auto j = std::make_shared<GenJob>();
    for (int t = 0; t < 3 + i; t++) j->prompt.push_back(int32_t((7 * i + 3 * t + 1) % 64));
    j->max_tokens = 5 + i;
    j->sampling.temperature = i % 2 ? 0.8f : 0.0f;
    j->sampling.seed = uint64_t(i);
    j->sampling.presence_penalty = 0.5f;
    if (i % 4) j->adapter = adapters[size_t(i % 4 - 1)];  // none, LoRA 1, LoRA 2, prefix
    ASSERT_TRUE(sched.submit(j));
    jobs.push_back(j);
  }
  for (auto& j : jobs) {
    std::unique_lock<std::mutex> lock(j->mu);
    ASSERT_TRUE(j->cv.wait_for(lock, std::chrono::seconds(20), [&] { return j->done; }));
  }
  // References only now: adapters keep scratch buffers, so only one thread may run them at a time
  // (in the server that is always the worker).
  for (size_t i = 0; i < jobs.size(); i++) {
    auto& j = jobs[i];
    GenerateParams gp;
    gp.sampling = j->sampling;
    gp.max_new_tokens = j->max_tokens;
    GenerateResult ref = generate(m, j->prompt, gp, {}, j->adapter ? j->adapter->loaded.set() : nullptr);
    EXPECT_EQ(j->ids, ref.ids) << "job " << i;
    EXPECT_EQ(j->finish_reason, "length");
  }
  }
}

TEST(ServeSchedulerUnit, RefusesBeyondQueueAndHonoursCancel) {
  Model m = Model::init_random(tiny_config(), 5);
  Scheduler sched(m, SchedulerOptions{1, 1, 16});
  std::vector<std::shared_ptr<GenJob>> jobs;
  int accepted = 0;
  for (int i = 0; i < 4; i++) {
    auto j = std::make_shared<GenJob>();
    j->prompt = {1, 2, 3};
    j->max_tokens = 200;
    j->cancel = true;  // each ends at its first turn
    accepted += sched.submit(j);
    jobs.push_back(j);
  }
  EXPECT_GE(accepted, 2);  // one running + one queued always fit
  for (int i = 0; i < accepted; i++) {
    std::unique_lock<std::mutex> lock(jobs[size_t(i)]->mu);
    jobs[size_t(i)]->cv.wait_for(lock, std::chrono::seconds(5), [&] { return jobs[size_t(i)]->done; });
    EXPECT_EQ(jobs[size_t(i)]->finish_reason, "cancelled");
    EXPECT_TRUE(jobs[size_t(i)]->ids.empty());
  }
}

TEST(ServeAdapterRegistry, LoadsByNameAndRefusesQLoRA) {
  Model m = Model::init_random(tiny_config(), 5);
  test::TempDir dir;
  LoraConfig lc;
  lc.r = 2;
  LoraAdapter::create(m.config, lc, 1)->save_peft(dir / "lora", "base");
  AdapterRegistry reg(m);
  EXPECT_EQ(reg.load("a", dir / "lora")->loaded.peft_type, "LORA");
  EXPECT_THROW(reg.load("a", dir / "lora"), Error);       // name taken
  EXPECT_THROW(reg.load("bad name", dir / "lora"), Error);
  EXPECT_THROW(reg.load("b", dir / "missing"), Error);
  // The same adapter marked as trained over an NF4 base (what lathe train --method qlora writes).
  std::filesystem::copy(dir / "lora", dir / "qlora");
  json cfg = json::parse(read_file(dir / "qlora/adapter_config.json"));
  cfg["lathe_base_quantization"] = "nf4";
  std::ofstream(dir / "qlora/adapter_config.json") << cfg.dump();
  try {
    reg.load("q", dir / "qlora");
    ADD_FAILURE() << "a QLoRA adapter must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("QLoRA"), std::string::npos) << e.what();
  }
  EXPECT_EQ(reg.list().size(), 1u);
  auto held = reg.get("a");
  EXPECT_TRUE(reg.unload("a"));
  EXPECT_FALSE(reg.unload("a"));
  EXPECT_EQ(held->name, "a");  // a request holding it keeps it alive
}

TEST(ServeStopMatcher, HoldsBackPossibleStopPrefixes) {
  StopMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.push("hello E"), "hello ");  // "E" may start "END"
  EXPECT_EQ(m.push("x"), "Ex");
  EXPECT_EQ(m.push(" and\n"), " and");
  EXPECT_EQ(m.push("\nmore"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("after"), "");
  StopMatcher n({"END"});
  EXPECT_EQ(n.push("fine EN"), "fine ");
  EXPECT_EQ(n.flush(), "EN");  // generation ended without the stop string: the tail is text
  StopMatcher split({"ab"});
  EXPECT_EQ(split.push("xa"), "x");
  EXPECT_EQ(split.push("b"), "");
  EXPECT_TRUE(split.stopped());
  StopMatcher none({});
  EXPECT_EQ(none.push("all of it"), "all of it");
}

TEST(ServeProtocol, ParsesOpenAIRequests) {
  CompletionRequest r = parse_completion_request(
      R"({"model":"m","messages":[{"role":"developer","content":"be nice"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
          "temperature":0.5,"top_p":0.9,"max_completion_tokens":7,"stop":"x","seed":3,"presence_penalty":1,"frequency_penalty":-1,
          "stream":true,"stream_options":{"include_usage":true},"n":1})",
      true);
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "ab");
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_EQ(r.stop, std::vector<std::string>{"x"});
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.sampling.seed, 3u);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -1.0f);
  EXPECT_TRUE(r.stream && r.include_usage);
  CompletionRequest t = parse_completion_request(R"({"model":"m","prompt":[1,2,3]})", false);
  EXPECT_EQ(t.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FLOAT_EQ(t.sampling.temperature, 1.0f);  // OpenAI's default
  EXPECT_FALSE(t.max_tokens.has_value());
}

TEST(ServeProtocol, RejectsBadRequestsNamingTheParam) {
  auto param_of = [](const std::string& body, bool chat) -> std::string {
    try {
      parse_completion_request(body, chat);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      return e.param.empty() ? e.code : e.param;
    }
    return "accepted";
  };
  EXPECT_EQ(param_of("{", false), "invalid_json");
  EXPECT_EQ(param_of(R"({"prompt":"x"})", false), "model");
  EXPECT_EQ(param_of(R"({"model":"m"})", false), "prompt");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":["a","b"]})", false), "prompt");
  EXPECT_EQ(param_of(R"({"model":"m","messages":{}})", true), "messages");
  EXPECT_EQ(param_of(R"({"model":"m","messages":[{"content":"x"}]})", true), "messages[0]");
  EXPECT_EQ(param_of(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})", true), "messages[0].content");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","temperature":-1})", false), "temperature");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","max_tokens":-5})", false), "max_tokens");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","stop":["a","b","c","d","e"]})", false), "stop");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","stop":""})", false), "stop");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","logprobs":true})", false), "logprobs");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","n":3})", false), "n");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","presence_penalty":2.5})", false), "presence_penalty");
  EXPECT_EQ(param_of(R"({"model":"m","prompt":"x","max_tokens":1})", false), "accepted");
}

TEST(ServeProtocol, ErrorBodyIsOpenAIShape) {
  json e = json::parse(error_body(ApiError(404, "invalid_request_error", "model_not_found", "model", "no such model")));
  EXPECT_EQ(e, json::parse(R"({"error":{"message":"no such model","type":"invalid_request_error","param":"model","code":"model_not_found"}})"));
  json n = json::parse(error_body(500, "server_error", "", "", "x"));
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_TRUE(n["error"]["code"].is_null());
  EXPECT_EQ(new_completion_id("chatcmpl-").size(), 9u + 24u);
  EXPECT_NE(new_completion_id("x"), new_completion_id("x"));
}

TEST(ServeMetrics, CumulativeHistogramBuckets) {
  Metrics m;
  m.request("/v1/completions", 200, 0.003);
  m.request("/v1/completions", 200, 0.7);
  m.request("/v1/completions", 429, 0.0001);
  m.tokens(5, 7);
  std::string t = m.render(2, 1, 10, 1000);
  EXPECT_NE(t.find("lathe_requests_total{route=\"/v1/completions\",status=\"200\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_requests_total{route=\"/v1/completions\",status=\"429\"} 1\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"0.005\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("lathe_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"0.5\"} 2\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_request_duration_seconds_count{route=\"/v1/completions\"} 3\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_prompt_tokens_total 5\n"), std::string::npos);
  EXPECT_NE(t.find("lathe_queue_depth 2\n"), std::string::npos);
}

TEST(ServeFeedbackStore, ExportFiltersAndCorrections) {
  test::TempDir dir;
  FeedbackStore s(dir.path);
  auto completion = [&](const std::string& id, const std::string& kind, const std::string& req, const std::string& ans) {
    CompletionRecord r;
    r.id = id;
    r.created = 1700000000;
    r.model = "base";
    r.kind = kind;
    r.request_json = req;
    r.answer = ans;
    s.add_completion(r);
  };
  completion("c1", "chat", R"([{"role":"user","content":"q1"}])", "a1");
  completion("c2", "chat", R"([{"role":"user","content":"q2"}])", "a2");
  completion("c3", "text", R"("Once")", " upon");
  auto rate = [&](const std::string& id, int rating, const char* correction = nullptr) {
    FeedbackRecord f;
    f.completion_id = id;
    f.rating = rating;
    f.created = 1700000100;
    if (correction) f.correction = correction;
    s.add_feedback(f);
  };
  rate("c1", 2);
  rate("c1", 5);  // the newest rating of a completion counts
  rate("c2", 1, "better a2");
  rate("c3", 4);
  FeedbackRecord bad;
  bad.completion_id = "nope";
  EXPECT_THROW(s.add_feedback(bad), lathe::Error);
  std::string out;
  ExportSummary sum = s.export_jsonl({}, &out);
  EXPECT_EQ(sum.written, 3);
  EXPECT_EQ(out,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"q1\"},{\"role\":\"assistant\",\"content\":\"a1\"}]}\n"
            "{\"messages\":[{\"role\":\"user\",\"content\":\"q2\"},{\"role\":\"assistant\",\"content\":\"better a2\"}]}\n"
            "{\"prompt\":\"Once\",\"completion\":\" upon\"}\n");
  out.clear();
  ExportOptions o;
  o.min_rating = 5;
  sum = s.export_jsonl(o, &out);
  EXPECT_EQ(sum.written, 2);  // c1 (5) and c2 (a correction is kept whatever its rating)
  EXPECT_EQ(sum.skipped["rated below --min-rating"], 1);
  EXPECT_TRUE(sum.reconciles());
  out.clear();
  o = {};
  o.corrections_only = true;
  EXPECT_EQ(s.export_jsonl(o, &out).written, 1);
  json st = s.stats();
  EXPECT_EQ(st["completions"], 3);
  ASSERT_EQ(st["by_model_day"].size(), 1u);
  EXPECT_EQ(st["by_model_day"][0]["count"], 4);
  EXPECT_EQ(st["by_model_day"][0]["day"], "2023-11-14");
  EXPECT_EQ(st["by_model_day"][0]["corrections"], 1);
}

}  // namespace
