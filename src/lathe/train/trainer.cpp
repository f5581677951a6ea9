#include "lathe/train/trainer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <map>
#include <optional>

#include "lathe/core/error.h"
#include "lathe/core/file_io.h"
#include "lathe/core/sys.h"
#include "lathe/core/threads.h"
#include "lathe/kernels/cpu/base_compute.h"
#include "lathe/dist/comm.h"
#include "lathe/kernels/cpu/cpu.h"
#include "lathe/model/train_graph.h"
#include "lathe/peft/ia3.h"
#include "lathe/peft/lora.h"
#include "lathe/peft/prefix.h"
#include "lathe/peft/prompt_tuning.h"
#include "lathe/core/phase_prof.h"
#include "lathe/train/adamw.h"
#include "lathe/train/checkpoint.h"
#include "lathe/records/record_format.h"
#include "lathe/tokenizer/tokenizer.h"
#include "lathe/train/dataset.h"
#include "lathe/train/grad_clip.h"
#include "lathe/train/grad_sync.h"
#include "lathe/train/metrics.h"
#include "lathe/train/model_prep.h"
#include "lathe/train/preference_data.h"
#include "lathe/train/schedule.h"

namespace lathe {

namespace {

// The trainable state of one method: its parameters, the adapters the graph sees, and the
// full-fine-tuning gradient mirror.
struct Method {
  std::unique_ptr<LoraAdapter> lora;
  std::unique_ptr<PrefixAdapter> prefix;
  std::unique_ptr<IA3Adapter> ia3;
  std::unique_ptr<PromptAdapter> prompt;
  ModelWeights full_grads;
  std::vector<std::unique_ptr<Param>> full_params;
  ParamList params;
  const AdapterSet* adapters = nullptr;
  ModelWeights* grads = nullptr;
};

// `kind`: what trains (lora | qlora | prefix | full), the method itself or a preference method's
// finetuning_type.
Method setup_method(const TrainOptions& o, const std::string& kind, Model& m) {
  Method s;
  const ModelConfig& c = m.config;
  if (kind == "lora" || kind == "qlora") {
    if (!o.init_adapter.empty()) {
      s.lora = LoraAdapter::load_peft(o.init_adapter, c);
    } else {
      LoraConfig lc;
      lc.r = o.lora_r;
      lc.alpha = float(o.lora_alpha);
      lc.dropout = float(o.lora_dropout);
      lc.use_rslora = o.use_rslora;
      lc.use_dora = o.use_dora;
      lc.init_gaussian = o.init_lora_weights == "gaussian";
      lc.target_modules = parse_target_modules(o.lora_target_modules);
      // PEFT's default targets are per family; for Phi-3's fused projections they are qkv_proj
      // (q_proj/v_proj do not exist there).
      if (o.lora_target_modules == "q_proj,v_proj" && c.fused_qkv) {
        lc.target_modules = {"qkv_proj"};
        std::fprintf(stderr, "lathe train: %s has a fused qkv_proj; LoRA targets qkv_proj (PEFT's default for it)\n",
                     arch_hf_name(c.arch));
      }
      s.lora = LoraAdapter::create(c, lc, uint64_t(o.seed));
      // PiSSA / OLoRA move the top of each targeted weight into the adapter (deterministic from W, so a
      // resumed run rebuilds the same residual base before loading the checkpoint's A and B).
      if (o.init_lora_weights == "pissa" || o.init_lora_weights == "olora" || pissa_niter(o.init_lora_weights) >= 0)
        s.lora->init_from_base(m, o.init_lora_weights, uint64_t(o.seed));
      if (o.init_lora_weights == "loftq") {  // deterministic from W: a resumed run rebuilds the same base
        s.lora->init_loftq(m, o.loftq_iter, /*set_factors=*/true);
        if (s.lora->config().scaling() != 1.0f)
          std::fprintf(stderr, "lathe train: note: LoftQ's A and B approximate W - Q, but the adapter adds them times "
                       "the scaling lora_alpha/r = %g (PEFT does not divide them by it); use lora_alpha = r for "
                       "Q + s·B A ≈ W at step 0\n", double(s.lora->config().scaling()));
      }
    }
    // QLoRA's NF4 base (a LoftQ adapter's projections are NF4 already; one loaded with --init-adapter gets its
    // LoftQ base rebuilt), before DoRA's magnitudes, which PEFT sets on the quantized layer.
    if (kind == "qlora") {
      if (!o.init_adapter.empty() && s.lora->loftq_iter() > 0) s.lora->init_loftq(m, s.lora->loftq_iter(), false);
      quantize_model_nf4(m);
    }
    if (o.init_adapter.empty() && o.use_dora) s.lora->init_dora_magnitude(m);
    s.params = s.lora->params();
    s.adapters = &s.lora->adapters();
  } else if (kind == "ia3") {
    if (!o.init_adapter.empty()) {
      s.ia3 = IA3Adapter::load_peft(o.init_adapter, c);
    } else {
      IA3Config ic;
      ic.target_modules = parse_target_modules(o.ia3_target_modules);
      ic.feedforward_modules = o.ia3_feedforward_modules.empty() ? std::vector<std::string>{}
                                                                 : parse_target_modules(o.ia3_feedforward_modules);
      // The default down_proj applies only where it is targeted (as PEFT fills feedforward_modules
      // from its per-model table after the subset check); one given explicitly must be a target.
      if (o.ia3_feedforward_modules == TrainOptions{}.ia3_feedforward_modules)
        std::erase_if(ic.feedforward_modules, [&](const std::string& f) {
          return std::find(ic.target_modules.begin(), ic.target_modules.end(), f) == ic.target_modules.end() &&
                 std::find(ic.target_modules.begin(), ic.target_modules.end(), "all-linear") == ic.target_modules.end();
        });
      s.ia3 = IA3Adapter::create(c, ic);
    }
    s.params = s.ia3->params();
    s.adapters = &s.ia3->adapters();
  } else if (kind == "prompt_tuning" || kind == "p_tuning") {
    const std::string type = kind == "p_tuning" ? "P_TUNING" : "PROMPT_TUNING";
    if (!o.init_adapter.empty()) {
      s.prompt = PromptAdapter::load_peft(o.init_adapter, c);
      if (s.prompt->config().peft_type != type)
        fail("train", "{}: a {} adapter, but --method is {}", o.init_adapter, s.prompt->config().peft_type, kind);
    } else {
      PromptConfig pc;
      pc.peft_type = type;
      pc.num_virtual_tokens = o.num_virtual_tokens;
      pc.prompt_tuning_init = !o.prompt_tuning_init.empty() ? o.prompt_tuning_init
                              : o.prompt_tuning_init_text.empty() ? "RANDOM" : "TEXT";
      pc.prompt_tuning_init_text = o.prompt_tuning_init_text;
      pc.encoder_reparameterization_type = o.encoder_reparameterization_type;
      pc.encoder_hidden_size = o.encoder_hidden_size;
      pc.encoder_num_layers = o.encoder_num_layers;
      std::vector<int32_t> ids;
      if (kind == "prompt_tuning" && pc.prompt_tuning_init == "TEXT")  // PEFT: tokenizer(text), special tokens too
        ids = Tokenizer::load(o.model)->encode(pc.prompt_tuning_init_text, /*add_special_tokens=*/true);
      s.prompt = PromptAdapter::create(m, pc, uint64_t(o.seed), ids);
    }
    s.params = s.prompt->params();
    s.adapters = &s.prompt->train_adapters();
  } else if (kind == "prefix") {
    if (!o.init_adapter.empty()) {
      s.prefix = PrefixAdapter::load_peft(o.init_adapter, c);
    } else {
      PrefixConfig pc;
      pc.num_virtual_tokens = o.num_virtual_tokens;
      pc.prefix_projection = o.prefix_projection;
      pc.encoder_hidden_size = o.encoder_hidden_size;
      s.prefix = PrefixAdapter::create(c, pc, uint64_t(o.seed));
    }
    s.params = s.prefix->params();
    s.adapters = &s.prefix->adapters();
  } else {  // full: every weight is a parameter; its gradient lives in a mirror of the weights
    for_each_tensor(c, s.full_grads, [&](TensorSlot& t) { *t.tensor = Tensor::zeros(DType::F32, t.shape); });
    if (c.tie_word_embeddings) s.full_grads.lm_head = s.full_grads.embed;
    std::vector<Tensor*> grads;
    for_each_tensor(c, s.full_grads, [&](TensorSlot& t) { grads.push_back(t.tensor); });
    size_t i = 0;
    for_each_tensor(c, m.weights, [&](TensorSlot& t) {
      auto p = std::make_unique<Param>();
      p->name = t.hf_name;
      p->value = *t.tensor;
      p->grad = *grads[i++];
      // HF Trainer: no weight decay on biases and norm weights.
      p->weight_decay = t.role != TensorRole::Norm && t.role != TensorRole::Bias;
      s.params.push_back(p.get());
      s.full_params.push_back(std::move(p));
    });
    s.grads = &s.full_grads;
  }
  return s;
}

// LoRA+ (PEFT's create_loraplus_optimizer): lora_B and every 1-D parameter (DoRA's magnitude vectors)
// train at lr · ratio, everything else (lora_A) at lr.
std::vector<double> loraplus_lr_scales(const ParamList& params, double ratio) {
  std::vector<double> scales;
  for (const Param* p : params)
    scales.push_back(p->name.find("lora_B") != std::string::npos || p->value.shape.size() == 1 ? ratio : 1.0);
  return scales;
}

void zero_grads(Method& s) {
  for (Param* p : s.params) std::memset(p->grad.data, 0, p->grad.nbytes());
  if (s.prefix) s.prefix->zero_prefix_grads();
  if (s.prompt) s.prompt->zero_prompt_grads();
}

// Loss, gradients and token count of one optimizer step (all its micro-batches).
struct StepOutcome {
  double loss = 0;
  int64_t tokens = 0, label_tokens = 0;
  nlohmann::json metrics = nlohmann::json::object();  // preference methods: TRL's rewards/* and logps/*
};

// Data parallelism: a step is gradient_accumulation_steps x ranks micro-batches, drawn by every rank in
// the same global order (every rank holds the whole dataset and the same cursor); micro-batch k runs
// on rank k % ranks with the dropout seed of k. So N ranks compute exactly the micro-batches, scales
// and dropout masks of one process with gradient_accumulation_steps x N, and the gradients summed
// over the ranks (GradSync) are that process's up to the order of the sums.
std::vector<size_t> my_micro_batches(const Communicator& comm, size_t total) {
  std::vector<size_t> mine;
  for (size_t k = size_t(comm.rank()); k < total; k += size_t(comm.size())) mine.push_back(k);
  return mine;
}

// Runs `micro` with the layer hook of the gradient exchange on the rank's last micro-batch only.
template <class F>
void with_sync_hook(TrainGraph& graph, GradSync& sync, bool last, F&& micro) {
  if (sync.active() && last) graph.set_layer_backward_hook([&](int l) { sync.layer_done(l); });
  micro();
  graph.set_layer_backward_hook({});
}

StepOutcome run_step(TrainDataset& data, TrainGraph& graph, Method& s, const TrainOptions& o, int64_t step,
                     Communicator& comm, GradSync& sync) {
  // HF semantics: the loss is averaged over every label token of the whole optimizer step, so
  // the micro-batches are drawn first and the scale is 1 / (their label tokens).
  std::vector<std::vector<size_t>> micro;
  int64_t labels = 0;
  for (int a = 0; a < o.gradient_accumulation_steps * comm.size(); a++) {
    micro.push_back(data.next_batch(o.per_device_train_batch_size));
    labels += data.total_label_tokens(micro.back());
    // Prompt tuning: the last virtual token predicts each sequence's first label (PEFT's -100 prefix).
    for (size_t i : s.prompt ? micro.back() : std::vector<size_t>{}) {
      auto [first, last] = data.example_sequences(i);
      for (size_t q = first; q < last; q++) {
        auto lab = o.train_on_inputs ? data.input_ids(q) : data.labels(q);
        labels += !lab.empty() && lab[0] >= 0;
      }
    }
  }
  StepOutcome r;
  r.label_tokens = labels;
  zero_grads(s);
  if (labels == 0) return r;
  double nll = 0;
  const std::vector<size_t> mine = my_micro_batches(comm, micro.size());
  for (size_t j = 0; j < mine.size(); j++) {
    const size_t a = mine[j];
    PackedBatch b;
    for (size_t i : micro[a]) {
      auto [first, last] = data.example_sequences(i);
      for (size_t q = first; q < last; q++) {
        auto ids = data.input_ids(q);
        auto lab = o.train_on_inputs ? data.input_ids(q) : data.labels(q);
        b.add(std::vector<int32_t>(ids.begin(), ids.end()), std::vector<int32_t>(lab.begin(), lab.end()));
        r.tokens += int64_t(ids.size());
      }
    }
    AdapterContext ctx;
    ctx.training = true;
    ctx.dropout_seed = uint64_t(o.seed) * 0x9e3779b97f4a7c15ull + uint64_t(step) * 1000003ull + a;
    int64_t cnt = 0;
    with_sync_hook(graph, sync, j + 1 == mine.size(),
                   [&] { nll += graph.forward_backward(b, float(1.0 / double(labels)), &cnt, ctx); });
  }
  if (s.prefix) s.prefix->backward();
  if (s.prompt) s.prompt->backward();
  sync.finish();
  double sums[2] = {nll, double(r.tokens)};
  comm.allreduce_sum(sums, 2);
  r.loss = sums[0] / double(labels);
  r.tokens = int64_t(sums[1]);
  return r;
}

PreferenceOptions preference_options(const TrainOptions& o) {
  PreferenceOptions p;
  p.method = o.method;
  p.loss_type = o.loss_type;
  p.beta = o.beta;
  p.label_smoothing = o.label_smoothing;
  p.desirable_weight = o.desirable_weight;
  p.undesirable_weight = o.undesirable_weight;
  return p;
}

// Step-level metrics: means over every example of the step's micro-batches (margins from the means,
// as TRL's KTO reports them).
nlohmann::json step_metrics(const std::map<std::string, double>& sums, const std::map<std::string, int64_t>& counts,
                            const std::string& prefix) {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : sums) j[prefix + k] = v / double(counts.at(k));
  if (!sums.count("rewards/margins") && j.contains(prefix + "rewards/chosen") && j.contains(prefix + "rewards/rejected"))
    j[prefix + "rewards/margins"] = j[prefix + "rewards/chosen"].get<double>() - j[prefix + "rewards/rejected"].get<double>();
  return j;
}

// One optimizer step of DPO / KTO / ORPO: each micro-batch's loss is its mean over examples (TRL),
// scaled by 1 / gradient_accumulation_steps (HF Trainer's accumulation).
// Under data parallelism the micro-batches are split over the ranks as in run_step; each is scaled by
// 1 / (gradient_accumulation_steps x ranks), and the metric sums travel to rank 0, which writes them.
StepOutcome run_preference_step(PreferenceData& data, TrainGraph& graph, Method& s, const ReferencePolicy& ref,
                                const TrainOptions& o, int64_t step, Communicator& comm, GradSync& sync) {
  StepOutcome r;
  zero_grads(s);
  const PreferenceOptions po = preference_options(o);
  const int total = o.gradient_accumulation_steps * comm.size();
  std::vector<std::vector<size_t>> micro;
  for (int a = 0; a < total; a++) micro.push_back(data.examples().next_batch(o.per_device_train_batch_size));
  std::map<std::string, double> sums;
  std::map<std::string, int64_t> counts;
  double loss = 0;
  const std::vector<size_t> mine = my_micro_batches(comm, micro.size());
  for (size_t j = 0; j < mine.size(); j++) {
    const size_t a = mine[j];
    PreferenceBatch b = data.batch(micro[a]);
    for (auto& ids : b.ids) r.tokens += int64_t(ids.size());
    r.label_tokens += data.examples().total_label_tokens(micro[a]);
    AdapterContext ctx;
    ctx.training = true;
    ctx.dropout_seed = uint64_t(o.seed) * 0x9e3779b97f4a7c15ull + uint64_t(step) * 1000003ull + a;
    PreferenceLoss l;
    with_sync_hook(graph, sync, j + 1 == mine.size(),
                   [&] { l = preference_micro_step(graph, s.adapters, ref, b, po, float(1.0 / total), ctx); });
    loss += l.loss / total;
    for (auto& [k, v] : l.metric_sums) sums[k] += v, counts[k] += l.metric_counts[k];
  }
  sync.finish();
  double totals[3] = {loss, double(r.tokens), double(r.label_tokens)};
  comm.allreduce_sum(totals, 3);
  r.loss = totals[0];
  r.tokens = int64_t(totals[1]);
  r.label_tokens = int64_t(totals[2]);
  if (comm.size() > 1) {  // which metrics a rank has depends on its examples (KTO: desirable ones or not)
    nlohmann::json mine_j = {{"sums", sums}, {"counts", counts}};
    std::vector<std::string> all = comm.gather(mine_j.dump(), 0);
    sums.clear(), counts.clear();
    for (const std::string& t : all) {
      nlohmann::json j = nlohmann::json::parse(t);
      for (auto& [k, v] : j["sums"].items()) sums[k] += v.get<double>();
      for (auto& [k, v] : j["counts"].items()) counts[k] += v.get<int64_t>();
    }
  }
  r.metrics = step_metrics(sums, counts, "");
  return r;
}

// Loss and metrics of preference data (eval_data) without gradients: "eval_loss", "eval_rewards/...".
nlohmann::json evaluate_preference(const std::string& path, const TrainOptions& o, TrainGraph& graph,
                                   const Method& s, const ReferencePolicy& ref, const RecordEncoderFactory& enc) {
  PreferenceData ev = PreferenceData::load(path, o.method, o.max_seq_length, uint64_t(o.seed), false, enc, "validation");
  const PreferenceOptions po = preference_options(o);
  std::map<std::string, double> sums;
  std::map<std::string, int64_t> counts;
  double loss = 0;
  int64_t batches = 0;
  const int n = o.per_device_train_batch_size;
  for (size_t i = 0; i < ev.examples().size(); i += size_t(n), batches++) {
    std::vector<size_t> picks;
    for (size_t k = i; k < std::min(ev.examples().size(), i + size_t(n)); k++) picks.push_back(k);
    PreferenceLoss l = preference_micro_step(graph, s.adapters, ref, ev.batch(picks), po, 0.0f, AdapterContext{},
                                             /*backward=*/false);
    loss += l.loss;
    for (auto& [k, v] : l.metric_sums) sums[k] += v, counts[k] += l.metric_counts[k];
  }
  nlohmann::json j = step_metrics(sums, counts, "eval_");
  j["eval_loss"] = loss / double(std::max<int64_t>(1, batches));
  return j;
}

double evaluate(const std::string& path, const TrainOptions& o, TrainGraph& graph, const RecordEncoderFactory& enc) {
  // A prepared dataset directory given as eval data means its validation split.
  TrainDataset ev = TrainDataset::load(path, o.max_seq_length, uint64_t(o.seed), false, enc, "validation");
  double nll = 0;
  int64_t cnt = 0;
  for (size_t i = 0; i < ev.sequences(); i++) {
    PackedBatch b;
    auto ids = ev.input_ids(i);
    auto lab = ev.labels(i);
    b.add(std::vector<int32_t>(ids.begin(), ids.end()), std::vector<int32_t>(lab.begin(), lab.end()));
    int64_t c = 0;
    nll += graph.forward_loss(b, &c);
    cnt += c;
  }
  return cnt ? nll / double(cnt) : NAN;
}

void save_final(const TrainOptions& o, const std::string& kind, const Method& s, const Model& m) {
  if (s.lora) {
    s.lora->save_peft(o.output, o.model);
    if (kind == "qlora") mark_adapter_qlora(o.output);
  } else if (s.prefix) {
    s.prefix->save_peft(o.output, o.model);
  } else if (s.ia3) {
    s.ia3->save_peft(o.output, o.model);
  } else if (s.prompt) {
    s.prompt->save_peft(o.output, o.model);
  } else {
    m.save_hf_dir(o.output);
  }
  copy_tokenizer_files(o.model, o.output);
}

// The ranks apply the same summed gradients to the same parameters, so their parameters must be
// bitwise equal; a difference (a rank with other data, threads that are not deterministic) would
// otherwise go unnoticed until the adapter is used. Compared by a hash at the end of training.
// True when every rank passed the same value.
bool same_on_every_rank(Communicator& comm, uint64_t h) {
  int64_t v[2] = {int64_t(h >> 1), -int64_t(h >> 1)};
  comm.allreduce_max(v, 2);
  return v[0] == -v[1];
}

// Before step 1: every rank must have read the same data (a node with other files under the same
// path would silently train on something else).
void check_ranks_read_the_same_data(Communicator& comm, const TrainDataset& data, const std::string& path) {
  if (comm.size() <= 1) return;
  uint64_t h = 1469598103934665603ull;
  for (uint64_t w : {uint64_t(data.size()), uint64_t(data.sequences()), uint64_t(data.total_tokens()),
                     uint64_t(data.total_label_tokens()), uint64_t(data.max_token_id())})
    h = (h ^ w) * 1099511628211ull;
  if (!same_on_every_rank(comm, h))
    fail("train", "{}{}: the ranks read different training data ({} examples, {} tokens here); every rank must see "
         "the same files (a shared filesystem, or the same copy at the same path on every node)", rank_prefix(), path,
         data.size(), data.total_tokens());
}

void check_ranks_agree(Communicator& comm, const ParamList& params) {
  if (comm.size() <= 1) return;
  uint64_t h = 1469598103934665603ull;
  for (const Param* p : params) {
    const auto* b = static_cast<const unsigned char*>(p->value.data);
    for (size_t i = 0; i < p->value.nbytes(); i += 8) {  // a word at a time: this runs over every weight
      uint64_t w = 0;
      std::memcpy(&w, b + i, std::min<size_t>(8, p->value.nbytes() - i));
      h = (h ^ w) * 1099511628211ull;
    }
  }
  if (!same_on_every_rank(comm, h))
    fail("train", "{}the ranks' parameters differ after training (hash {:x}); the ranks did not see the same data or "
         "ran different code: check that every rank runs the same lathe on the same files", rank_prefix(), h);
}

}  // namespace

int run_training(const TrainOptions& o) {
  // Under mpirun every rank runs this function; rank 0 alone prints, writes metrics, checkpoints and
  // the result, and the ranks meet only in the collectives of GradSync and the step's sums.
  Communicator& comm = world();
  const bool root = comm.is_root();
  // Ranks on one machine share its cores: without --threads or OMP_NUM_THREADS each takes its share.
  int threads = o.threads;
  if (threads <= 0 && !std::getenv("OMP_NUM_THREADS") && comm.local_size() > 1) threads = default_threads_per_rank();
  cpu_set_num_threads(threads);
  if (root) std::filesystem::create_directories(o.output);
  if (root) std::fprintf(stderr, "lathe train: resolved options\n%s", train_options_to_string(o).c_str());
  if (comm.size() > 1) {
    std::fprintf(stderr, "lathe train: %sdata parallel over %d ranks (%d on this machine), %d threads each\n",
                 rank_prefix().c_str(), comm.size(), comm.local_size(), num_threads());
  }

  const bool preference = is_preference_method(o.method);
  const std::string kind = trained_kind(o);  // lora | qlora | prefix | full
  // The frozen base's products (--base-compute; kernels/cpu/base_compute.h): process-wide for this run,
  // back to f32 (and the prepared weights freed) however the run ends.
  const BaseCompute base_compute_used =
      kind == "full" || kind == "qlora" ? BaseCompute::F32 : base_compute_parse(o.base_compute);
  struct BaseComputeScope {
    explicit BaseComputeScope(BaseCompute c) { set_base_compute(c); }
    ~BaseComputeScope() { set_base_compute(BaseCompute::F32), base_compute_release(); }
  } base_compute_scope(base_compute_used);
  if (root) std::fprintf(stderr, "lathe train: base compute %s%s\n", base_compute_name(base_compute_used),
                         o.base_compute == "auto" ? " (auto)" : "");
  Model m = Model::load(o.model);
  prepare_model_for_method(m, kind);
  // The tokenizer and chat template load only when a record needs them (pre-tokenized data and
  // prepared datasets do not).
  std::unique_ptr<Tokenizer> tokenizer;
  std::optional<RecordEncoder> encoder;
  RecordEncoderFactory make_encoder = [&]() -> const RecordEncoder& {
    if (!encoder) {
      tokenizer = Tokenizer::load(o.model);
      RecordFormatOptions fo;
      fo.train_on_inputs = o.train_on_inputs;
      fo.system_prompt = o.system_prompt;
      encoder.emplace(RecordEncoder::for_model(*tokenizer, o.model, o.chat_template, fo));
    }
    return *encoder;
  };
  std::optional<PreferenceData> pref_data;
  std::optional<TrainDataset> sft_data;
  if (preference)
    pref_data.emplace(PreferenceData::load(o.data, o.method, o.max_seq_length, uint64_t(o.seed), o.shuffle, make_encoder));
  else
    sft_data.emplace(TrainDataset::load(o.data, o.max_seq_length, uint64_t(o.seed), o.shuffle, make_encoder));
  TrainDataset& data = preference ? pref_data->examples() : *sft_data;
  if (data.size() == 0) fail("train", "{}: no training examples", o.data);
  if (data.max_token_id() >= m.config.vocab_size)
    fail("train", "{}: token id {} is outside the model's vocabulary (vocab_size {})", o.data, data.max_token_id(),
         m.config.vocab_size);
  check_ranks_read_the_same_data(comm, data, o.data);
  if (!root) {
  } else if (preference) {
    const PreferenceData& pd = *pref_data;
    if (pd.truncated() > 0)
      std::fprintf(stderr, "lathe train: warning: %lld sequences were longer than max_seq_length=%d; their completions "
                   "were cut\n", (long long)pd.truncated(), o.max_seq_length);
    if (pd.unpaired())
      std::fprintf(stderr, "lathe train: %lld records -> %lld desirable and %lld undesirable completions (%lld "
                   "skipped), %lld tokens, trains %s with %s\n", (long long)pd.records(), (long long)pd.desirable(),
                   (long long)pd.undesirable(), (long long)pd.dropped(), (long long)data.total_tokens(), kind.c_str(),
                   o.method.c_str());
    else
      std::fprintf(stderr, "lathe train: %lld records -> %zu preference pairs (%lld skipped), %lld tokens, trains %s "
                   "with %s\n", (long long)pd.records(), data.size(), (long long)pd.dropped(),
                   (long long)data.total_tokens(), kind.c_str(), o.method.c_str());
    if (o.method == "kto" && o.per_device_train_batch_size < 2)
      std::fprintf(stderr, "lathe train: warning: KTO's KL estimate pairs each prompt with another example's "
                   "completion in the micro-batch; with per_device_train_batch_size 1 it pairs an example with "
                   "itself (use 2 or more)\n");
  } else {
    if (data.truncated_count() > 0)
      std::fprintf(stderr, "lathe train: warning: %lld of %zu examples were longer than max_seq_length=%d and were "
                   "truncated\n", (long long)data.truncated_count(), data.sequences(), o.max_seq_length);
    if (data.no_loss_count() > 0)
      std::fprintf(stderr, "lathe train: warning: %lld examples have no token that carries loss (all labels -100, e.g. "
                   "the assistant turn was truncated away); they add nothing to training\n",
                   (long long)data.no_loss_count());
    std::fprintf(stderr, "lathe train: %zu examples (%zu sequences%s), %lld tokens, %lld carry loss\n", data.size(),
                 data.sequences(), data.packed() ? ", packed" : "", (long long)data.total_tokens(),
                 (long long)data.total_label_tokens());
  }

  Method s = setup_method(o, kind, m);
  const int64_t micro_per_step = int64_t(o.gradient_accumulation_steps) * comm.size();
  const int64_t steps_per_epoch = std::max<int64_t>(
      1, (data.batches_per_epoch(o.per_device_train_batch_size) + micro_per_step - 1) / micro_per_step);
  const int64_t max_steps =
      o.max_steps > 0 ? o.max_steps : int64_t(std::ceil(o.num_train_epochs * double(steps_per_epoch)));
  const int warmup = resolve_warmup_steps(o.warmup_steps, o.warmup_ratio, int(max_steps));

  // Memory plan: refuse before step 1 rather than die at step 1000.
  const int T = data.max_length();
  const int N = T * o.per_device_train_batch_size;
  const int P = s.prefix ? s.prefix->config().num_virtual_tokens : 0;
  const int P_rows = s.prompt ? s.prompt->config().num_virtual_tokens : 0;  // prompt tuning: rows of every sequence
  size_t trainable = 0;
  for (Param* p : s.params) trainable += p->value.nbytes();
  MemoryPlan plan = plan_memory(m, trainable, s.grads != nullptr,
                                TrainGraph::activation_bytes(m.config, N + P_rows * o.per_device_train_batch_size,
                                                             T + P_rows, P, o.gradient_checkpointing));
  const bool reference_copy = preference && kind == "full" && o.method != "orpo";
  if (reference_copy) {  // full fine-tuning's reference is a frozen copy of the starting weights
    plan.weights += m.weight_bytes_f32;
    plan.total += m.weight_bytes_f32;
  }
  if (comm.size() > 1) {  // GradSync packs the gradients into its buffers: one more copy of them
    plan.gradients += trainable;
    plan.total += trainable;
  }
  // Ranks on one machine share its memory.
  plan.available /= size_t(std::max(1, comm.local_size()));
  // Backward recomputes the normalised inputs, the SwiGLU output and the attention probabilities
  // unless they fit: kept when the whole plan with them stays within half the available memory
  // (room left for the allocator, the OS and other processes), else recomputed as before.
  // `auto` keeps only where it measured faster: with a bf16 base (AMX) or int8 on VNNI the recompute
  // was 5-12% of a step; with f32, and int8 on AVX2's vpmaddubsw (no VNNI), keeping was level (the
  // products read the kept values from memory instead of recomputing them in cache) for +409-424 MiB
  // at SmolLM2-135M, seq 512 (docs/bench_train.md).
  const bool fast_base = base_compute_used == BaseCompute::BF16 ||
                         (base_compute_used == BaseCompute::Int8 && base_compute_int8_wmax() == 127);
  const bool want_keep = o.recompute_activations == "keep" || (o.recompute_activations == "auto" && fast_base);
  if (want_keep && !o.gradient_checkpointing && plan.available > 0) {
    const int Nr = N + P_rows * o.per_device_train_batch_size;
    const size_t extra = TrainGraph::activation_bytes(m.config, Nr, T + P_rows, P, false, /*keep=*/true) -
                         TrainGraph::activation_bytes(m.config, Nr, T + P_rows, P, false, /*keep=*/false);
    if (plan.total + extra <= plan.available / 2) {
      plan.activations += extra, plan.total += extra;
      plan.keeps_recomputed = true;
    }
  }
  // PEFT's print_trainable_parameters, in its words: what a method costs is compared on these counts.
  int64_t trainable_params = 0, base_params = 0;
  for (Param* p : s.params) trainable_params += p->value.numel();
  for (const auto& t : m.stored) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    base_params += n;
  }
  if (m.stored.empty()) base_params = int64_t(m.weight_bytes_f32 / 4);
  const int64_t all_params = kind == "full" ? base_params : base_params + trainable_params;
  if (root) {
    std::fprintf(stderr, "lathe train: trainable params: %lld || all params: %lld || trainable%%: %.4f\n",
                 (long long)trainable_params, (long long)all_params,
                 100.0 * double(trainable_params) / double(std::max<int64_t>(all_params, 1)));
    print_memory_plan(plan, o, N, T);
  }
  check_memory_plan(plan, o);

  TrainGraph graph(m, s.adapters, s.grads, o.gradient_checkpointing);
  graph.set_keep_recomputed(plan.keeps_recomputed);
  // The reference policy of DPO / KTO: the base with the adapter off (no copy), base + a frozen copy
  // of --init-adapter, or for full fine-tuning a frozen copy of the starting model. ORPO has none.
  ReferencePolicy ref;
  std::unique_ptr<LoraAdapter> ref_lora;
  std::optional<Model> ref_model;
  std::unique_ptr<TrainGraph> ref_graph;
  if (preference && o.method != "orpo") {
    if (reference_copy) {
      ref_model.emplace(Model::load(o.model));
      ref_graph = std::make_unique<TrainGraph>(*ref_model, nullptr, nullptr, o.gradient_checkpointing);
      ref = {ref_graph.get(), nullptr};
    } else if (!o.init_adapter.empty()) {
      ref_lora = LoraAdapter::load_peft(o.init_adapter, m.config);
      ref = {&graph, &ref_lora->adapters()};
    } else {
      ref = {&graph, nullptr};
    }
  }
  AdamW opt(s.params, AdamWConfig{o.adam_beta1, o.adam_beta2, o.adam_epsilon, o.weight_decay});
  if (o.loraplus_lr_ratio > 0) opt.set_lr_scales(loraplus_lr_scales(s.params, o.loraplus_lr_ratio));
  int64_t start = 0;
  if (!o.resume_from_checkpoint.empty()) {
    std::string dir = resolve_resume_checkpoint(o.resume_from_checkpoint, o.output);
    TrainerState st;
    checkpoint_load(dir, s.params, &opt, &st);
    // The optimizer's per-parameter lr is not in the checkpoint's tensors: a resumed LoRA+ run must
    // use the ratio it was trained with (the resolved options of every checkpoint record it).
    const double saved_ratio = st.config.value("loraplus_lr_ratio", 0.0);
    if (saved_ratio != o.loraplus_lr_ratio)
      fail("train", "{}: trained with loraplus_lr_ratio {}, resumed with {}: pass --loraplus-lr-ratio {} to resume "
           "the same run", dir, saved_ratio, o.loraplus_lr_ratio, saved_ratio);
    // bf16 / int8 products give other bits than f32 (and each other): resuming with another compute would
    // silently continue a different run. Checkpoints from before the option ran f32.
    const std::string saved_bc = st.config.value("base_compute_resolved", std::string("f32"));
    if (saved_bc != base_compute_name(base_compute_used))
      fail("train", "{}: trained with --base-compute {}, resumed with {}: pass --base-compute {} to resume the same "
           "run", dir, saved_bc, base_compute_name(base_compute_used), saved_bc);
    if (st.world_size != comm.size())
      fail("train", "{}: written by a job of {} rank(s), resumed with {}; the data order and global batch depend on "
           "the number of ranks: resume with mpirun -np {}", dir, st.world_size, comm.size(), st.world_size);
    data.set_cursor(DataCursor::from_json(st.data_cursor));
    start = st.global_step;
    if (s.prefix) s.prefix->refresh();
    if (s.prompt) s.prompt->refresh();
    if (root) std::fprintf(stderr, "lathe train: resumed from %s at step %lld\n", dir.c_str(), (long long)start);
  }
  GradSync sync(comm, s.params);
  std::optional<MetricsWriter> metrics;
  std::optional<ProgressReporter> progress;
  if (root) {
    clean_stale_checkpoint_tmp(o.output);
    metrics.emplace(o.output + "/metrics.jsonl", start);
    progress.emplace(max_steps, o.logging_steps, start);
  }
  // LATHE_PROFILE=1: per-phase wall time of each step (core/phase_prof.h), printed at the end.
  if (const char* p = std::getenv("LATHE_PROFILE"); p && *p && std::string(p) != "0") prof::set_enabled(true);
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_total = 0;
  std::string last_ckpt;

  for (int64_t step = start; step < max_steps; step++) {
    auto ts = std::chrono::steady_clock::now();
    prof::step_begin();
    StepOutcome r = preference ? run_preference_step(*pref_data, graph, s, ref, o, step, comm, sync)
                               : run_step(data, graph, s, o, step, comm, sync);
    std::string bad;
    prof::PhaseScope ps_opt(prof::Phase::Optimizer);
    // The loss and the summed gradients are the same on every rank, so every rank stops here together.
    if (!std::isfinite(r.loss) || !grads_finite(s.params, &bad)) {
      if (!root) return 3;
      progress->finish();
      std::fprintf(stderr, "lathe train: error: step %lld: %s is not finite; stopping. The last good checkpoint "
                   "is %s. Try a lower learning_rate or max_grad_norm.\n", (long long)step + 1,
                   std::isfinite(r.loss) ? ("the gradient of " + bad).c_str() : "the loss",
                   last_ckpt.empty() ? "(none yet)" : last_ckpt.c_str());
      return 3;
    }
    double norm = o.max_grad_norm > 0 ? clip_grad_norm(s.params, float(o.max_grad_norm)) : global_grad_norm(s.params);
    double lr = lr_at(o.lr_scheduler_type, o.learning_rate, int(step), warmup, int(max_steps));
    opt.step(lr);
    if (s.prefix) s.prefix->refresh();
    if (s.prompt) s.prompt->refresh();
    prof::step_end();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    tokens_total += r.tokens;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json row = {{"step", step + 1}, {"loss", r.loss}, {"lr", lr}, {"grad_norm", norm}, {"tokens", r.tokens},
                          {"tokens_per_s", r.tokens / dt}, {"elapsed_s", elapsed},
                          {"epoch", double(step + 1) / double(steps_per_epoch)}};
    row.update(r.metrics);
    if (!root) continue;  // evaluation and checkpoints are rank 0's
    metrics->write(row);
    progress->update(step + 1, r.loss, lr, r.tokens / dt);
    if (!o.eval_data.empty() && o.eval_steps > 0 && (step + 1) % o.eval_steps == 0) {
      nlohmann::json ev = preference ? evaluate_preference(o.eval_data, o, graph, s, ref, make_encoder)
                                     : nlohmann::json{{"eval_loss", evaluate(o.eval_data, o, graph, make_encoder)}};
      ev["step"] = step + 1;
      metrics->write(ev);
      progress->message("step " + std::to_string(step + 1) + " eval_loss " + std::to_string(ev["eval_loss"].get<double>()));
    }
    if (o.save_steps > 0 && (step + 1) % o.save_steps == 0 && step + 1 < max_steps) {
      TrainerState st;
      st.global_step = step + 1;
      st.scheduler_step = step + 1;
      st.epoch = double(step + 1) / double(steps_per_epoch);
      st.data_cursor = data.cursor().to_json();
      st.config = train_options_to_json(o);
      st.config["base_compute_resolved"] = base_compute_name(base_compute_used);
      st.world_size = comm.size();
      last_ckpt = checkpoint_save(o.output, s.params, opt, st, o.save_total_limit);
    }
  }
  check_ranks_agree(comm, s.params);
  if (!root) {
    comm.barrier();  // rank 0 writes the result
    return 0;
  }
  progress->finish();
  if (!o.eval_data.empty()) {
    nlohmann::json ev = preference ? evaluate_preference(o.eval_data, o, graph, s, ref, make_encoder)
                                   : nlohmann::json{{"eval_loss", evaluate(o.eval_data, o, graph, make_encoder)}};
    ev["step"] = max_steps;
    metrics->write(ev);
    std::fprintf(stderr, "lathe train: final eval_loss %.6f\n", ev["eval_loss"].get<double>());
    if (ev.contains("eval_rewards/accuracies"))
      std::fprintf(stderr, "lathe train: final eval rewards/accuracies %.4f, rewards/margins %.4f\n",
                   ev["eval_rewards/accuracies"].get<double>(), ev.value("eval_rewards/margins", 0.0));
  }
  save_final(o, kind, s, m);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The run's cost, as HF Trainer's last log row names it (train_runtime, ...), for the eval report's
  // comparison of methods (docs/eval.md): this process's part when it resumed.
  metrics->write({{"step", max_steps}, {"method", o.method}, {"use_dora", o.use_dora},
                  {"base_compute", base_compute_name(base_compute_used)},
                  {"trainable_params", trainable_params}, {"all_params", all_params}, {"train_runtime", elapsed},
                  {"train_tokens", tokens_total}, {"train_tokens_per_second", tokens_total / std::max(elapsed, 1e-9)},
                  {"peak_rss_mib", peak_rss_bytes() / 1048576.0}});
  std::fprintf(stderr, "lathe train: done: %lld steps, %lld tokens in %.1f s (%.1f tokens/s), peak RSS %.1f MiB; "
               "output in %s\n", (long long)(max_steps - start), (long long)tokens_total, elapsed,
               tokens_total / std::max(elapsed, 1e-9), peak_rss_bytes() / 1048576.0, o.output.c_str());
  if (prof::enabled()) std::fprintf(stderr, "lathe train: %s", prof::report().c_str());
  if (sync.active())
    std::fprintf(stderr, "lathe train: data parallel: %d ranks, %.2f MiB of gradients a step in %zu buckets, %.2f s "
                 "waiting for them in all (%d buckets of the last step overlapped the backward)\n", comm.size(),
                 sync.bytes_per_step() / 1048576.0, sync.buckets(), sync.wait_seconds(), sync.overlapped_buckets());
  comm.barrier();
  return 0;
}

}  // namespace lathe
