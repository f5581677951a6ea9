// Render plans (chat_plan.h) against the interpreter: thousands of random conversations through every
// template we know (tests/data/chat_templates, the fixtures' tokenizer configs, the built-ins), each
// rendered with plans and without, must give the same bytes, spans and errors.
#include <fstream>
#include <random>

#include "lathe/chat/chat_plan.h"
#include "lathe/chat/chat_template.h"
#include "lathe/core/error.h"
#include "test_util.h"

using lathe::ChatRenderOptions;
using lathe::ChatTemplate;
using json = nlohmann::ordered_json;

namespace {

struct Case {
  std::string name;
  ChatTemplate tmpl;
  ChatRenderOptions opts;
};

std::vector<Case> all_templates() {
  std::vector<Case> out;
  std::ifstream f(lathe::test::source_path("tests/data/chat_templates/templates.json"));
  json all = json::parse(f);
  for (auto it = all.begin(); it != all.end(); ++it) {
    ChatRenderOptions o;
    o.bos_token = it.value()["bos_token"];
    o.eos_token = it.value()["eos_token"];
    o.extra = it.value()["vars"];
    if (it.value().contains("now")) o.now = it.value()["now"].get<std::time_t>();
    out.push_back({it.key(), ChatTemplate::parse(it.value()["template"]), o});
  }
  for (const char* dir : {"tokenizers/llama3", "tokenizers/qwen3", "tokenizers/mistral-v0.1", "tokenizers/gpt2",
                          "models/stories260K-hf"}) {
    if (!lathe::test::has_fixture(dir)) continue;
    auto c = lathe::chat_template_config_load(lathe::test::fixture_path(dir));
    if (c.source.empty()) continue;
    ChatRenderOptions o;
    o.bos_token = c.bos_token;
    o.eos_token = c.eos_token;
    out.push_back({std::string("fixture:") + dir, ChatTemplate::parse(c.source), o});
  }
  for (const std::string& n : ChatTemplate::builtin_names()) {
    ChatRenderOptions o;
    o.bos_token = "<s>";
    o.eos_token = "</s>";
    out.push_back({"builtin:" + n, ChatTemplate::builtin(n), o});
  }
  return out;
}

// Contents that are plain most of the time, and sometimes whatever a template might look at.
std::string random_content(std::mt19937& rng) {
  static const char* plain[] = {"안녕하세요", "Hello there.", "서울의 날씨는 맑습니다", "The answer is 42.",
                                "코드 리뷰 부탁드립니다", "ok", "Explain RAII in C++.", "감사합니다!"};
  static const char* odd[] = {"",        "{{ messages }}",         "{% if x %}y{% endif %}", "<|im_end|>",
                              "</think>", "<think>\nhmm\n</think>\n\nanswer", "\nleading newline",
                              "trailing spaces  ", " ", "\n", "<tool_response>r</tool_response>",
                              "<|eot_id|>", "[INST] x [/INST]", "<start_of_turn>", "'quote\" \\ back"};
  std::uniform_int_distribution<int> pick(0, 99);
  int k = pick(rng) % 3 + 1;
  std::string s;
  for (int i = 0; i < k; ++i) {
    if (pick(rng) < 75) s += plain[pick(rng) % (sizeof plain / sizeof *plain)];
    else s += odd[pick(rng) % (sizeof odd / sizeof *odd)];
    if (pick(rng) < 30) s += pick(rng) < 50 ? " " : "\n";
  }
  return pick(rng) < 5 ? "" : s;
}

json random_conversation(std::mt19937& rng) {
  std::uniform_int_distribution<int> pick(0, 99);
  json m = json::array();
  if (pick(rng) < 40) m.push_back({{"role", "system"}, {"content", random_content(rng)}});
  int turns = pick(rng) % 4 + 1;
  for (int t = 0; t < turns; ++t) {
    m.push_back({{"role", "user"}, {"content", random_content(rng)}});
    if (t + 1 == turns && pick(rng) < 15) break;  // ends on the user
    json a = {{"role", "assistant"}, {"content", random_content(rng)}};
    if (pick(rng) < 3) a["reasoning_content"] = "thought";
    m.push_back(a);
    if (pick(rng) < 3) m.push_back({{"role", "tool"}, {"content", random_content(rng)}});
  }
  if (pick(rng) < 2) std::swap(m[0], m[m.size() - 1]);  // odd orders some templates reject
  return m;
}

// The render as JSON, or the error it raised.
json outcome(const ChatTemplate& t, const json& msgs, ChatRenderOptions o, bool plans, bool agp) {
  o.plans = plans;
  o.add_generation_prompt = agp;
  try {
    json r = t.render(msgs, o).to_json();
    r["render_text"] = t.render_text(msgs, o);
    return r;
  } catch (const lathe::Error& e) {
    return json{{"error", e.what()}};
  }
}

}  // namespace

TEST(ChatPlan, RandomConversationsMatchTheInterpreterOnEveryTemplate) {
  std::mt19937 rng(20261204);
  size_t total = 0, served = 0;
  for (Case& c : all_templates()) {
    SCOPED_TRACE(c.name);
    for (int k = 0; k < 300; ++k) {
      json msgs = random_conversation(rng);
      bool agp = k % 5 == 0;
      json want = outcome(c.tmpl, msgs, c.opts, false, agp);
      json got = outcome(c.tmpl, msgs, c.opts, true, agp);
      ASSERT_EQ(got.dump(), want.dump()) << "messages: " << msgs.dump();
      ++total;
    }
    auto st = c.tmpl.plan_stats();
    served += st.hits;
    std::printf("%-28s plans %4zu  probes %4zu  renders from plans %5zu\n", c.name.c_str(), st.plans, st.probes,
                st.hits);
  }
  EXPECT_GE(total, 7000u);
  EXPECT_GT(served, total);  // most renders (1 + 2 per assistant turn each) come from plans
}

TEST(ChatPlan, CommonShapesAreServedFromPlans) {
  // ChatML, Llama 3 (which trims) and Qwen3 (which looks into assistant contents for </think>) all
  // render plain conversations from plans once the shape has been seen.
  for (const char* name : {"chatml", "llama3", "qwen3"}) {
    SCOPED_TRACE(name);
    std::ifstream f(lathe::test::source_path("tests/data/chat_templates/templates.json"));
    json all = json::parse(f);
    std::string src = std::string(name) == "llama3" ? ChatTemplate::builtin_source("llama3")
                                                    : all[std::string(name)]["template"].get<std::string>();
    ChatTemplate t = ChatTemplate::parse(src);
    ChatRenderOptions o;
    auto conv = [](const std::string& a, const std::string& b) {
      return json::array({{{"role", "system"}, {"content", "시스템"}},
                          {{"role", "user"}, {"content", a}},
                          {{"role", "assistant"}, {"content", b}}});
    };
    auto r0 = t.render(conv("첫 질문", "첫 답"), o);
    auto before = t.plan_stats();
    EXPECT_GT(before.plans, 0u);
    auto r1 = t.render(conv("second question, longer", "a longer second answer"), o);
    auto after = t.plan_stats();
    EXPECT_EQ(after.probes, before.probes);  // no interpretation at all
    EXPECT_GT(after.hits, before.hits);
    o.plans = false;
    EXPECT_EQ(r1.to_json(), t.render(conv("second question, longer", "a longer second answer"), o).to_json());
  }
}

TEST(ChatPlan, Qwen3ThinkContentFallsBackToTheInterpreter) {
  std::ifstream f(lathe::test::source_path("tests/data/chat_templates/templates.json"));
  ChatTemplate t = ChatTemplate::parse(json::parse(f)["qwen3"]["template"].get<std::string>());
  ChatRenderOptions on, off;
  off.plans = false;
  auto conv = [](const std::string& answer) {
    return json::array({{{"role", "user"}, {"content", "2+2?"}}, {{"role", "assistant"}, {"content", answer}}});
  };
  (void)t.render(conv("4"), on);  // the plan for plain answers
  auto plain = t.plan_stats();
  // '</think>' in content: the guard fails, the interpreter splits the reasoning off.
  auto a = t.render(conv("<think>\nadd\n</think>\n\n4"), on);
  EXPECT_EQ(a.to_json(), t.render(conv("<think>\nadd\n</think>\n\n4"), off).to_json());
  EXPECT_NE(a.text.find("<think>\nadd\n</think>\n\n4<|im_end|>"), std::string::npos);
  auto st = t.plan_stats();
  EXPECT_GT(st.probes, plain.probes);
  // That probe split a content: not clean, so no plan came of it; the plain plan still serves.
  EXPECT_EQ(st.plans, plain.plans);
  auto b = t.render(conv("\nleading newline is stripped by lstrip"), on);
  EXPECT_EQ(b.to_json(), t.render(conv("\nleading newline is stripped by lstrip"), off).to_json());
  size_t hits = t.plan_stats().hits;
  (void)t.render(conv("5"), on);
  EXPECT_GT(t.plan_stats().hits, hits);
}

TEST(ChatPlan, ProbeRejectsContentTransformsAndTime) {
  // Upper-casing, printing inside a list, indexing, strftime_now without a fixed time, selecting
  // messages by their content and joining contents are not substitutions: those conversations are
  // always interpreted (and still correct).
  for (const char* src : {"{% for m in messages %}{{ m.content | upper }}{% endfor %}",
                          "{% for m in messages %}{{ [m.content] }}{% endfor %}",
                          "{% for m in messages %}{{ m.content[0] }}{% endfor %}",
                          "{% for m in messages %}{{ m.content }}{{ strftime_now('%Y') }}{% endfor %}",
                          "{% for m in messages | selectattr('content', 'equalto', 'abc') %}[{{ m.content }}]{% endfor %}",
                          "{{ messages | map(attribute='content') | join('|') }}"}) {
    SCOPED_TRACE(src);
    ChatTemplate t = ChatTemplate::parse(src);
    json msgs = json::array({{{"role", "user"}, {"content", "abc"}}});
    ChatRenderOptions o, off;
    off.plans = false;
    EXPECT_EQ(t.render_text(msgs, o), t.render_text(msgs, off));
    EXPECT_EQ(t.render_text(msgs, o), t.render_text(msgs, off));
    EXPECT_EQ(t.plan_stats().plans, 0u);
    EXPECT_EQ(t.plan_stats().hits, 0u);
  }
}

TEST(ChatPlan, GuardsOnLengthAndEquality) {
  // A template that branches on the content's length and value: a plan serves only contents that
  // take the same branches.
  ChatTemplate t = ChatTemplate::parse(
      "{% for m in messages %}{% if m.content | length > 3 %}L{% endif %}{% if m.content == 'x' %}X{% endif %}"
      "[{{ m.content }}]{% endfor %}");
  ChatRenderOptions o, off;
  off.plans = false;
  for (const char* c : {"abcd", "abcd", "ab", "x", "wxyz", "a", "x", "long one"}) {
    json msgs = json::array({{{"role", "user"}, {"content", c}}});
    EXPECT_EQ(t.render(msgs, o).to_json(), t.render(msgs, off).to_json()) << c;
  }
  EXPECT_EQ(t.render_text(json::array({{{"role", "user"}, {"content", "wxyz"}}}), o), "L[wxyz]");
  EXPECT_GT(t.plan_stats().hits, 0u);
}

TEST(ChatPlan, GenerationBlocksShiftWithTheContents) {
  ChatTemplate t = ChatTemplate::parse(
      "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>"
      "{% endgeneration %}{% else %}{{ m.content }}{% endif %}\n{% endfor %}");
  ChatRenderOptions o, off;
  off.plans = false;
  for (const char* a : {"short", "a much longer answer, 한국어 포함", "x"}) {
    json msgs = json::array({{{"role", "user"}, {"content", std::string("q: ") + a}},
                             {{"role", "assistant"}, {"content", a}},
                             {{"role", "user"}, {"content", "again"}},
                             {{"role", "assistant"}, {"content", std::string(a) + a}}});
    auto got = t.render(msgs, o);
    EXPECT_EQ(got.to_json(), t.render(msgs, off).to_json()) << a;
    ASSERT_EQ(got.generation.size(), 2u);
    EXPECT_EQ(got.text.substr(got.generation[1].begin, got.generation[1].end - got.generation[1].begin),
              std::string(a) + a + "</s>");
  }
  EXPECT_GT(t.plan_stats().hits, 0u);
}

#include "lathe/chat/jinja_eval.h"

namespace {

// guards_hold's quick answers (a content's truth, 'x' in content, startswith/endswith, strip and trim
// giving the content back) against the
// interpreter's, guard by guard, on random contents built from the literals (at the start, the end, the
// middle, cut short), empty contents and Korean; with expected results true and false, and with
// operands the quick path must leave to the interpreter (a tuple of prefixes, a non-string needle).
TEST(ChatPlan, QuickGuardsMatchTheInterpreter) {
  using namespace lathe::jinja;
  const std::vector<std::string> lits = {"<tool_response>", "</think>", "\n", "x", "", "한", "ab"};
  std::mt19937 rng(11);
  auto content = [&] {
    std::string s;
    for (int k = int(rng() % 5); k > 0; k--) {
      const std::string& l = lits[rng() % lits.size()];
      s += rng() % 4 ? l : l.substr(0, l.size() / 2);
      if (rng() % 2) s += rng() % 2 ? "한국어 " : "text ";
      if (rng() % 4 == 0) s += " \t\n\r\v\fx<"[rng() % 8];  // what strip() and its characters take
    }
    return s;
  };
  auto guard = [&](Guard::Kind kind, const std::string& name, std::vector<Value> ops, std::vector<int> refs) {
    Guard g;
    g.kind = kind;
    g.name = name;
    g.operands = std::move(ops);
    g.refs = std::move(refs);
    g.expected = Value::boolean(rng() % 2);
    return g;
  };
  RenderOptions ro;
  size_t agree_true = 0, agree_false = 0;
  for (int round = 0; round < 20000; round++) {
    std::vector<std::string> cs = {content(), content()};
    std::vector<const std::string*> ptrs = {&cs[0], &cs[1]};
    const Value lit = Value::string(lits[rng() % lits.size()]);
    const int ref = int(rng() % 2);
    std::vector<Guard> gs;
    switch (rng() % 8) {
      case 0: gs.push_back(guard(Guard::Kind::Truthy, "", {Value()}, {ref})); break;
      case 1: gs.push_back(guard(Guard::Kind::In, "in", {lit, Value()}, {-1, ref})); break;
      case 2: gs.push_back(guard(Guard::Kind::Method, "startswith", {Value(), lit}, {ref, -1})); break;
      case 3: gs.push_back(guard(Guard::Kind::Method, "endswith", {Value(), lit}, {ref, -1})); break;
      case 4:  // a tuple of prefixes: interpreted
        gs.push_back(guard(Guard::Kind::Method, rng() % 2 ? "startswith" : "endswith",
                           {Value(), Value::list({lit, Value::string("text")})}, {ref, -1}));
        break;
      case 5:  // a number looked for in a string: an error, which the guard counts as not holding
        gs.push_back(guard(Guard::Kind::In, "in", {Value::integer(3), Value()}, {-1, ref}));
        break;
      default: {  // strip / lstrip / rstrip / trim that gave the whole content back (or another's)
        const char* names[] = {"strip", "lstrip", "rstrip", "trim"};
        const std::string name = names[rng() % 4];
        std::vector<Value> ops{Value()};
        std::vector<int> refs{ref};
        const int args = int(rng() % 4);  // none, a string of characters, a number, a content
        if (args == 1) ops.push_back(Value::string(rng() % 2 ? "\n" : "x<"));
        if (args == 2) ops.push_back(Value::integer(1));
        if (args == 3) ops.push_back(Value());
        if (args) refs.push_back(args == 3 ? 1 - ref : -1);
        Guard g = guard(name == "trim" ? Guard::Kind::Filter : Guard::Kind::Method, name, ops, refs);
        g.expected_ref = rng() % 8 ? ref : 1 - ref;
        gs.push_back(g);
      }
    }
    if (rng() % 3 == 0) gs.push_back(guard(Guard::Kind::Truthy, "", {Value()}, {1 - ref}));
    const bool quick = guards_hold(gs, ptrs, ro, true), slow = guards_hold(gs, ptrs, ro, false);
    ASSERT_EQ(quick, slow) << "round " << round << " kind " << int(gs[0].kind) << " " << gs[0].name << " '"
                           << (gs[0].operands.size() > 1 && gs[0].operands[1].is_string() ? gs[0].operands[1].s() : "")
                           << "' content '" << cs[size_t(ref)] << "'";
    (quick ? agree_true : agree_false)++;
  }
  EXPECT_GT(agree_true, 2000u);
  EXPECT_GT(agree_false, 2000u);
}

}  // namespace
