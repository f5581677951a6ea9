#include "lathe/eval/runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <omp.h>

#include "lathe/core/error.h"
#include "lathe/core/json_io.h"
#include "lathe/core/file_io.h"
#include "lathe/data/dedup.h"
#include "lathe/formats/dataset_manifest.h"
#include "lathe/eval/text_metrics.h"
#include "lathe/model/generate.h"
#include "lathe/model/model.h"
#include "lathe/peft/adapter.h"
#include "lathe/chat/chat_template.h"
#include "lathe/records/record_format.h"
#include "lathe/retrieval/rag_prompt.h"
#include "lathe/tokenizer/stop_tokens.h"
#include "lathe/tokenizer/tokenizer.h"

namespace lathe::eval {

namespace fs = std::filesystem;

std::string contamination_normalize(const std::string& s) {
  std::string out;
  bool space = false;
  for (char32_t c : utf8_code_points(unicode_lower(s))) {
    if (is_unicode_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out += utf8_from_code_points({c});
  }
  return out;
}

namespace {

struct Prompting {
  std::optional<ChatTemplate> tmpl;  // empty: plain text
  ChatRenderOptions render;
  std::string origin = "plain";
  bool model_has_template = false;
};

Prompting choose_prompting(const std::string& name, const std::string& model_path, const Tokenizer& tok) {
  Prompting p;
  ChatTemplateConfig cfg;
  try {
    cfg = chat_template_config_load(model_path);
  } catch (const Error&) {
  }
  p.model_has_template = !cfg.source.empty();
  p.render.add_generation_prompt = true;
  p.render.turn_spans = false;
  p.render.bos_token = !cfg.bos_token.empty() ? cfg.bos_token : tok.bos_token();
  p.render.eos_token = !cfg.eos_token.empty() ? cfg.eos_token : tok.eos_token();
  if (name == "plain") return p;
  if (name == "auto") {
    if (!cfg.source.empty()) {
      p.tmpl = ChatTemplate::parse(cfg.source);
      p.origin = "model";
    }
    return p;
  }
  auto names = ChatTemplate::builtin_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) {
    p.tmpl = ChatTemplate::builtin(name);
  } else if (fs::is_regular_file(name)) {
    p.tmpl = ChatTemplate::parse(read_file(name));
  } else {
    fail("eval", "generation.template '{}' is not auto, plain, a built-in ({}) or a .jinja file", name,
         fmt::format("{}", fmt::join(names, ", ")));
  }
  p.origin = name;
  return p;
}

// The case as text the model continues. Plain mode: system, few-shot pairs and the prompt joined
// as "SYSTEM\n\nP1R1\n\nP2R2\n\nPROMPT" (the suite writes prompts in the form it wants).
// `user_turn`, when given, replaces the content of the case's last user turn (the rag variants put
// the retrieved passages there).
std::string render_prompt(const EvalCase& c, const PromptBaseline* baseline, const Prompting& p,
                          const std::string* user_turn = nullptr) {
  std::string system = baseline ? baseline->system : "";
  if (!c.system.empty()) system += (system.empty() ? "" : "\n\n") + c.system;
  if (!p.tmpl) {
    if (!c.messages.is_null()) fail("eval", "{}: a 'messages' case needs a chat template (generation.template)", c.where);
    std::string text = system.empty() ? "" : system + "\n\n";
    if (baseline)
      for (auto& f : baseline->few_shot) text += f.prompt + f.response + "\n\n";
    return text + (user_turn ? *user_turn : c.prompt);
  }
  nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
  nlohmann::ordered_json conv = c.messages.is_null()
                                    ? nlohmann::ordered_json::array({{{"role", "user"}, {"content", c.prompt}}})
                                    : c.messages;
  if (!conv.empty() && conv[0]["role"] == "system") {
    system += (system.empty() ? "" : "\n\n") + conv[0]["content"].get<std::string>();
    conv.erase(conv.begin());
  }
  if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
  if (baseline)
    for (auto& f : baseline->few_shot) {
      msgs.push_back({{"role", "user"}, {"content", f.prompt}});
      msgs.push_back({{"role", "assistant"}, {"content", f.response}});
    }
  if (user_turn)
    for (size_t i = conv.size(); i-- > 0;)
      if (conv[i]["role"] == "user") {
        conv[i]["content"] = *user_turn;
        break;
      }
  for (auto& m : conv) msgs.push_back(m);
  return p.tmpl->render_text(msgs, p.render);
}

std::string last_user_turn(const EvalCase& c) { return retrieval_query(c); }

std::vector<std::pair<nlohmann::json, std::string>> read_records(const std::string& path, size_t limit) {
  JsonlReader in(path, "eval");  // malformed or too deep: "[eval] path:line: ..."
  std::vector<std::pair<nlohmann::json, std::string>> out;
  nlohmann::json j;
  while ((limit == 0 || out.size() < limit) && in.next(j)) out.emplace_back(std::move(j), in.where());
  return out;
}

// splits.<split>.records of a dataset directory's manifest.json; "" when absent.
std::string manifest_split(const std::string& dir, const std::string& split) {
  if (!has_dataset_manifest(dir)) fail("eval", "{}: no manifest.json (give a dataset directory or a .jsonl file)", dir);
  const DatasetManifest m = read_dataset_manifest(dir);
  const DatasetSplit* s = m.split(split);
  if (!s || s->records.empty()) return "";
  return dataset_file(dir, s->records);
}

// Prompt texts of training records for the contamination check: the records layer's prompt of each
// record; for pre-tokenized records the decoded ids that carry no loss (every id without labels).
std::vector<std::pair<std::string, std::string>> training_prompts(const std::string& path, const Tokenizer& tok) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [rec, where] : read_records(path, 0)) {
    try {
      if (detect_record_shape(rec) == RecordShape::PreTokenized) {
        TokenizedRecord t = read_pretokenized(rec);
        check_token_ids_in_vocab(t.input_ids, tok.vocab_size(), "input_ids");
        out.emplace_back(tok.decode(prompt_token_ids(t), true), where);
      } else {
        for (auto& p : record_prompts(rec)) out.emplace_back(std::move(p), where);
      }
    } catch (const Error& e) {
      fail("eval", "{}: {}", where, e.what());
    }
  }
  return out;
}

void score_case(const EvalCase& c, CaseOutput& o) {
  double wsum = 0, ssum = 0;
  o.pass = true;
  for (auto& a : c.asserts) {
    o.results.push_back(evaluate_assertion(a, o.output, c.expected));
    o.pass = o.pass && o.results.back().pass;
    wsum += a.weight;
    ssum += a.weight * o.results.back().score;
  }
  o.score = wsum > 0 ? ssum / wsum : (o.pass ? 1.0 : 0.0);
}

CaseOutput generate_case(const Model& m, const AdapterSet* set, const Tokenizer& tok, const std::string& prompt_text,
                         bool chat, const GenerationSettings& g, const std::vector<int32_t>& stop_ids) {
  CaseOutput o;
  o.prompt_text = prompt_text;
  // A chat template writes BOS itself when the model wants it; plain text gets the tokenizer's specials.
  std::vector<int32_t> ids = tok.encode(prompt_text, !chat);
  if (ids.empty() && tok.bos_id() >= 0) ids.push_back(tok.bos_id());
  if (ids.empty()) fail("eval", "empty prompt and no BOS token to start from");
  if (int64_t(ids.size()) + g.max_new_tokens > m.config.max_position_embeddings)
    fail("eval", "prompt of {} tokens + max_new_tokens {} exceeds the model's context {}", ids.size(),
         g.max_new_tokens, m.config.max_position_embeddings);
  GenerateParams gp;
  gp.max_new_tokens = g.max_new_tokens;
  gp.sampling.temperature = g.temperature;
  gp.sampling.top_k = g.top_k;
  gp.sampling.top_p = g.top_p;
  gp.sampling.seed = g.seed;
  gp.stop_ids = stop_ids;
  StreamDecoder dec(tok, true);
  std::string so_far;
  bool stopped_by_text = false;
  auto on_token = [&](int32_t id) {
    if (g.stop.empty()) return true;
    so_far += dec.push(id);
    for (auto& s : g.stop)
      if (so_far.find(s) != std::string::npos) {
        stopped_by_text = true;
        return false;
      }
    return true;
  };
  GenerateResult r = generate(m, ids, gp, on_token, set);
  std::vector<int32_t> out = r.ids;
  if (!out.empty() && std::find(stop_ids.begin(), stop_ids.end(), out.back()) != stop_ids.end()) out.pop_back();
  o.output = tok.decode(out, true);
  size_t cut = std::string::npos;
  for (auto& s : g.stop) cut = std::min(cut, o.output.find(s));
  if (cut != std::string::npos) o.output.resize(cut);
  o.prompt_tokens = int(ids.size());
  o.new_tokens = int(r.ids.size());
  o.finish_reason = stopped_by_text || cut != std::string::npos ? "stop-sequence" : r.finish_reason;
  return o;
}

}  // namespace

EvalRun run_eval(const EvalSuite& suite, const RunOptions& opt) {
  using clock = std::chrono::steady_clock;
  EvalRun run;
  run.suite = suite;
  run.options = opt;
  if (opt.baseline != "base" && opt.baseline != "prompt") fail("eval", "--baseline must be base or prompt");
  if (opt.baseline == "prompt" && !suite.baseline.defined())
    fail("eval", "--baseline prompt: the suite has no baseline.system or baseline.few_shot");
  if (suite.gates.max_forgetting >= 0 && opt.holdout.empty())
    fail("eval", "the max_forgetting gate needs --holdout (general text to measure forgetting on)");

  Model base = Model::load(opt.model_path, parse_weight_format(opt.weights));
  auto tok = Tokenizer::load(opt.model_path);
  Prompting prompting = choose_prompting(suite.generation.template_name, opt.model_path, *tok);
  run.template_used = prompting.origin;
  // Answers end where the family's turn ends (tokenizer/stop_tokens.h), as in generate and serve.
  std::vector<int32_t> declared = declared_eos_ids(opt.model_path);
  if (base.config.eos_token_id >= 0) declared.push_back(base.config.eos_token_id);
  std::vector<int32_t> stop_ids =
      stop_tokens(*tok, prompting.tmpl ? prompting.tmpl->source() : std::string(), declared).ids;
  int ctx = opt.context > 0 ? opt.context : base.config.max_position_embeddings;

  // Perplexity inputs, encoded once: validation records as training sees them (loss on the
  // completion only), holdout text with every token counted.
  std::vector<std::vector<int32_t>> val_ids, val_labels, hold_ids;
  if (!opt.eval_data.empty()) {
    std::string path = opt.eval_data;
    if (fs::is_directory(path)) {
      path = manifest_split(opt.eval_data, "validation");
      if (path.empty()) fail("eval", "{}: the manifest has no validation split with records", opt.eval_data);
    }
    // Records are encoded as `lathe train` encodes them: the suite's named template, else the
    // model's; a model without one falls back to chatml there too (named here to skip the warning).
    std::string tname = suite.generation.template_name;
    if (tname == "auto" || tname == "plain") tname = prompting.model_has_template ? "" : "chatml";
    RecordEncoder enc = RecordEncoder::for_model(*tok, opt.model_path, tname, {});
    for (auto& [rec, where] : read_records(path, opt.max_ppl_records)) {
      try {
        EncodedRecord e = enc.encode(rec);
        val_ids.push_back(std::move(e.input_ids));
        val_labels.push_back(std::move(e.labels));
      } catch (const Error& e) {
        fail("eval", "{}: {}", where, e.what());
      }
    }
  }
  if (!opt.holdout.empty()) {
    if (fs::path(opt.holdout).extension() == ".jsonl") {
      for (auto& [rec, where] : read_records(opt.holdout, opt.max_ppl_records)) {
        if (!rec.is_object() || !rec.contains("text") || !rec["text"].is_string())
          fail("eval", "{}: expected {{\"text\": ...}}", where);
        hold_ids.push_back(tok->encode(rec["text"].get<std::string>(), true));
      }
    } else {
      hold_ids.push_back(tok->encode(read_file(opt.holdout), true));
    }
  }

  // Contamination: the explicit training file, else the manifest's train split.
  run.contamination.assign(suite.cases.size(), {});
  std::string train_path = opt.train_data;
  if (train_path.empty() && !opt.eval_data.empty() && fs::is_directory(opt.eval_data))
    train_path = manifest_split(opt.eval_data, "train");
  if (!train_path.empty()) {
    auto raw = training_prompts(train_path, *tok);
    std::vector<std::pair<std::string, std::string>> train;
    for (auto& [text, where] : raw) train.emplace_back(contamination_normalize(text), where);
    std::vector<std::string> prompts;
    for (size_t i = 0; i < suite.cases.size(); i++) {
      prompts.push_back(last_user_turn(suite.cases[i]));
      std::string p = contamination_normalize(prompts.back());
      for (auto& [t, where] : train)
        if (!p.empty() && (t == p || (p.size() >= 24 && t.find(p) != std::string::npos))) {
          run.contamination[i] = {true, where};
          break;
        }
    }
    // Near matches (punctuation dropped, MinHash Jaccard >= 0.7) with the data pipeline's own check.
    std::vector<std::string_view> train_views, prompt_views(prompts.begin(), prompts.end());
    for (auto& [text, where] : raw) train_views.push_back(text);
    std::vector<int64_t> near = data::contamination_matches(train_views, prompt_views);
    for (size_t t = 0; t < near.size(); t++)
      if (near[t] >= 0 && !run.contamination[size_t(near[t])].flagged)
        run.contamination[size_t(near[t])] = {true, raw[t].second + " (near match)"};
  }

  // Variants: base, prompt (when the suite states one), then each adapter.
  struct Plan {
    VariantResult v;
    std::unique_ptr<Model> own_base;  // QLoRA: an NF4 copy of the base
    LoadedAdapter adapter;
  };
  std::vector<Plan> plans;
  plans.push_back({});
  plans.back().v.name = "base";
  plans.back().v.kind = "base";
  if (suite.baseline.defined()) {
    plans.push_back({});
    plans.back().v.name = "prompt";
    plans.back().v.kind = "prompt";
  }
  // Retrieval: every case retrieves once; the rag variants share the passages.
  std::string index_dir = !opt.retrieval.empty() ? opt.retrieval : suite.retrieval.index;
  retrieval::RagPrompt rag_prompt;
  if (!index_dir.empty()) {
    run.retrieval_index = index_dir;
    run.retrieval_k = opt.retrieval_k > 0 ? opt.retrieval_k : suite.retrieval.k;
    std::string tpl = !opt.rag_template.empty() ? opt.rag_template : suite.retrieval.template_path;
    if (!tpl.empty()) rag_prompt = retrieval::RagPrompt::from_file(tpl);
    retrieval::Index index(index_dir);
    run.retrieval = retrieve_cases(index, suite.cases, run.retrieval_k);
    plans.push_back({});
    plans.back().v.name = "rag";
    plans.back().v.kind = "rag";
  }
  for (auto& [name, dir] : opt.adapters) {
    for (int with_rag = 0; with_rag <= int(!index_dir.empty()); with_rag++) {
      std::string vname = with_rag ? name + "+rag" : name;
      for (auto& p : plans)
        if (p.v.name == vname) fail("eval", "--adapter {}={}: the variant name '{}' is taken", name, dir, vname);
      Plan p;
      p.v.name = vname;
      p.v.kind = with_rag ? "adapter+rag" : "adapter";
      p.v.adapter_dir = dir;
      p.adapter = load_peft_adapter(dir, base);
      if (p.adapter.base_nf4) {
        p.own_base = std::make_unique<Model>(Model::load(opt.model_path));
        quantize_base_for(p.adapter, *p.own_base);  // NF4; a LoftQ adapter's rebuilt base
      }
      plans.push_back(std::move(p));
    }
  }

  for (auto& p : plans) {
    auto t0 = clock::now();
    const Model& m = p.own_base ? *p.own_base : base;
    const bool with_adapter = p.v.kind == "adapter" || p.v.kind == "adapter+rag";
    const AdapterSet* set = with_adapter ? p.adapter.set() : nullptr;
    const PromptBaseline* bl = p.v.kind == "prompt" ? &suite.baseline : nullptr;
    VariantResult& v = p.v;
    double wsum = 0, wpass = 0, wscore = 0;
    int hits = 0, pass_on_hit = 0;
    // Cases run side by side, one per thread (each generate() then runs its kernels on one
    // thread: OpenMP does not nest by default). Greedy decoding gives the same text either way.
    // Adapters keep forward scratch inside their modules (LoraLinear), so every thread gets its
    // own copy of the adapter; the base weights are read-only and shared.
    const int n_threads = std::max(1, omp_get_max_threads());
    std::vector<LoadedAdapter> thread_adapters;
    if (set)
      for (int t = 0; t < n_threads; t++) thread_adapters.push_back(load_peft_adapter(p.v.adapter_dir, m));
    const int n_cases = int(suite.cases.size());
    std::vector<CaseOutput> outs(suite.cases.size());
    std::vector<std::string> errors(suite.cases.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n_cases; i++) {
      try {
        const AdapterSet* mine = set ? thread_adapters[size_t(omp_get_thread_num())].set() : nullptr;
        auto c0 = clock::now();
        std::string text;
        int used = 0;
        if (p.v.uses_retrieval()) {
          // Passages that would push the prompt past the context (less the answer's room) are left
          // out from the last one up, as a server must; the case records how many were used.
          const auto& hits = run.retrieval[i].hits;
          const int64_t room = m.config.max_position_embeddings - suite.generation.max_new_tokens;
          for (used = int(hits.size()); used >= 0; used--) {
            std::vector<retrieval::Hit> some(hits.begin(), hits.begin() + used);
            std::string turn = retrieval::rag_user_message(last_user_turn(suite.cases[i]), some, rag_prompt);
            text = render_prompt(suite.cases[i], bl, prompting, &turn);
            if (used == 0 || int64_t(tok->encode(text, !prompting.tmpl).size()) <= room) break;
          }
        } else {
          text = render_prompt(suite.cases[i], bl, prompting);
        }
        outs[i] = generate_case(m, mine, *tok, text, prompting.tmpl.has_value(), suite.generation, stop_ids);
        outs[i].passages_used = used;
        outs[i].seconds = std::chrono::duration<double>(clock::now() - c0).count() +
                          (p.v.uses_retrieval() ? run.retrieval[i].seconds : 0.0);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
    for (size_t i = 0; i < errors.size(); i++)
      if (!errors[i].empty()) fail("eval", "{}: {}", suite.cases[i].where, errors[i]);
    for (size_t i = 0; i < suite.cases.size(); i++) {
      const EvalCase& c = suite.cases[i];
      CaseOutput o = std::move(outs[i]);
      score_case(c, o);
      v.passed += o.pass;
      wsum += c.weight;
      wpass += c.weight * o.pass;
      wscore += c.weight * o.score;
      for (auto& t : c.tags) {
        v.tags[t].cases++;
        v.tags[t].passed += o.pass;
      }
      if (v.uses_retrieval() && run.retrieval[i].hit_rank > 0) {
        hits++;
        pass_on_hit += o.pass;
      }
      v.mean_prompt_tokens += o.prompt_tokens;
      v.mean_new_tokens += o.new_tokens;
      v.mean_latency_s += o.seconds;
      v.cases.push_back(std::move(o));
    }
    const double n = double(std::max<size_t>(suite.cases.size(), 1));
    v.mean_prompt_tokens /= n;
    v.mean_new_tokens /= n;
    v.mean_latency_s /= n;
    if (hits > 0) v.pass_given_hit = double(pass_on_hit) / hits;
    v.pass_rate = double(v.passed) / double(suite.cases.size());
    v.weighted_pass_rate = wsum > 0 ? wpass / wsum : 0;
    v.weighted_score = wsum > 0 ? wscore / wsum : 0;
    // The prompt and rag variants have the weights of a variant before them: their perplexities
    // are that variant's, not recomputed.
    if (p.v.kind == "base" || p.v.kind == "adapter") {
      if (!val_ids.empty()) v.validation = sequence_perplexity(m, val_ids, val_labels, ctx, set);
      if (!hold_ids.empty()) v.holdout = sequence_perplexity(m, hold_ids, {}, ctx, set);
    }
    v.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    if (opt.progress)
      std::fprintf(stderr, "lathe eval: %-12s passed %d/%zu  score %.3f  (%.1fs)\n", v.name.c_str(), v.passed,
                   suite.cases.size(), v.weighted_score, v.seconds);
  }

  const VariantResult& b = plans[0].v;
  run.reference = opt.baseline;
  const VariantResult* ref = nullptr;
  for (auto& p : plans)
    if (p.v.name == run.reference) ref = &p.v;
  // Same weights, same perplexities: rag shares the base's, NAME+rag the adapter's.
  for (auto& p : plans) {
    if (!p.v.uses_retrieval()) continue;
    std::string of = p.v.kind == "rag" ? "base" : p.v.name.substr(0, p.v.name.size() - 4);
    for (auto& q : plans)
      if (q.v.name == of) {
        p.v.validation = q.v.validation;
        p.v.holdout = q.v.holdout;
      }
  }
  for (auto& p : plans) {
    if (b.holdout && p.v.holdout && b.holdout->ppl > 0) p.v.forgetting = p.v.holdout->ppl / b.holdout->ppl - 1.0;
    if (ref && &p.v != ref)
      for (size_t i = 0; i < suite.cases.size(); i++) {
        p.v.fixed += !ref->cases[i].pass && p.v.cases[i].pass;
        p.v.broken += ref->cases[i].pass && !p.v.cases[i].pass;
      }
  }
  for (auto& p : plans) run.variants.push_back(std::move(p.v));
  return run;
}

}  // namespace lathe::eval
