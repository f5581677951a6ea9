#include "lathe/train/preference.h"

#include <cmath>

#include "lathe/core/error.h"
#include "lathe/model/train_graph.h"

namespace lathe {

namespace {

double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }
double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

// The value a loss sees for sequence i: the summed log-probability, or its per-token mean.
double value(const SequenceLogps& s, size_t i, bool average) {
  return average ? s.sum[i] / double(std::max<int64_t>(1, s.count[i])) : s.sum[i];
}
double dvalue_dsum(const SequenceLogps& s, size_t i, bool average) {
  return average ? 1.0 / double(std::max<int64_t>(1, s.count[i])) : 1.0;
}

// Adds x to the running sum behind metric `name` (means over a whole step, across micro-batches).
void observe(PreferenceLoss& r, const std::string& name, double x) {
  r.metric_sums[name] += x;
  r.metric_counts[name] += 1;
}

void dpo(const PreferenceOptions& o, const SequenceLogps& pol, const SequenceLogps& ref, PreferenceLoss& r) {
  const bool avg = o.average_logps();
  const size_t E = pol.sum.size() / 2;
  for (size_t e = 0; e < E; e++) {
    const size_t c = 2 * e, j = 2 * e + 1;
    const double pc = value(pol, c, avg), pr = value(pol, j, avg);
    const double rc = value(ref, c, avg), rr = value(ref, j, avg);
    const double z = (pc - pr) - (rc - rr);
    double loss, dz;
    if (o.loss_type == "ipo") {
      const double d = z - 1.0 / (2.0 * o.beta);
      loss = d * d;
      dz = 2.0 * d;
    } else {
      const double ls = o.label_smoothing, bz = o.beta * z;
      loss = -log_sigmoid(bz) * (1.0 - ls) - log_sigmoid(-bz) * ls;
      dz = -(1.0 - ls) * o.beta * sigmoid(-bz) + ls * o.beta * sigmoid(bz);
    }
    r.loss += loss / double(E);
    r.dloss_dsum[c] = dz / double(E) * dvalue_dsum(pol, c, avg);
    r.dloss_dsum[j] = -dz / double(E) * dvalue_dsum(pol, j, avg);
    const double rew_c = o.beta * (pc - rc), rew_r = o.beta * (pr - rr);
    observe(r, "rewards/chosen", rew_c);
    observe(r, "rewards/rejected", rew_r);
    observe(r, "rewards/margins", rew_c - rew_r);
    observe(r, "rewards/accuracies", rew_c > rew_r ? 1.0 : 0.0);
    observe(r, "logps/chosen", pc);
    observe(r, "logps/rejected", pr);
  }
}

void kto(const PreferenceOptions& o, const PreferenceBatch& b, const SequenceLogps& pol, const SequenceLogps& ref,
         const SequenceLogps& kl_pol, const SequenceLogps& kl_ref, PreferenceLoss& r) {
  const size_t E = pol.sum.size();
  // KL estimate from the mismatched pairs: the batch mean, clamped at 0, no gradient.
  double kl = 0;
  for (size_t e = 0; e < E; e++) kl += kl_pol.sum[e] - kl_ref.sum[e];
  kl = std::max(0.0, kl / double(E));
  for (size_t e = 0; e < E; e++) {
    const double lr = pol.sum[e] - ref.sum[e];
    double loss, dlr;
    if (b.desirable[e]) {
      const double s = sigmoid(o.beta * (lr - kl));
      loss = o.desirable_weight * (1.0 - s);
      dlr = -o.desirable_weight * o.beta * s * (1.0 - s);
      observe(r, "rewards/chosen", o.beta * lr);
      observe(r, "logps/chosen", pol.sum[e]);
    } else {
      const double s = sigmoid(o.beta * (kl - lr));
      loss = o.undesirable_weight * (1.0 - s);
      dlr = o.undesirable_weight * o.beta * s * (1.0 - s);
      observe(r, "rewards/rejected", o.beta * lr);
      observe(r, "logps/rejected", pol.sum[e]);
    }
    r.loss += loss / double(E);
    r.dloss_dsum[e] = dlr / double(E);
  }
  observe(r, "kl", kl);
}

void orpo(const PreferenceOptions& o, const SequenceLogps& pol, PreferenceLoss& r) {
  const size_t E = pol.sum.size() / 2;
  // NLL of the chosen completions, averaged over their tokens in the micro-batch.
  int64_t chosen_tokens = 0;
  double chosen_sum = 0;
  for (size_t e = 0; e < E; e++) chosen_tokens += pol.count[2 * e], chosen_sum += pol.sum[2 * e];
  const double nll = -chosen_sum / double(std::max<int64_t>(1, chosen_tokens));
  r.loss += nll;
  observe(r, "nll_loss", nll);
  for (size_t e = 0; e < E; e++) {
    const size_t c = 2 * e, j = 2 * e + 1;
    const double a = value(pol, c, true), bb = value(pol, j, true);
    // log odds(p) = log p - log(1 - p) on the mean per-token log-probability; -expm1(a) = 1 - e^a.
    const double log_odds = (a - bb) - (std::log(-std::expm1(a)) - std::log(-std::expm1(bb)));
    const double ratio = log_sigmoid(log_odds);
    r.loss -= o.beta * ratio / double(E);
    const double dlo = -o.beta * sigmoid(-log_odds) / double(E);
    r.dloss_dsum[c] = dlo / -std::expm1(a) * dvalue_dsum(pol, c, true) - 1.0 / double(std::max<int64_t>(1, chosen_tokens));
    r.dloss_dsum[j] = -dlo / -std::expm1(bb) * dvalue_dsum(pol, j, true);
    observe(r, "rewards/chosen", o.beta * a);
    observe(r, "rewards/rejected", o.beta * bb);
    observe(r, "rewards/margins", o.beta * (a - bb));
    observe(r, "rewards/accuracies", a > bb ? 1.0 : 0.0);
    observe(r, "logps/chosen", a);
    observe(r, "logps/rejected", bb);
    observe(r, "log_odds_ratio", ratio);
    observe(r, "log_odds_chosen", log_odds);
  }
}

PackedBatch packed(const std::vector<std::vector<int32_t>>& ids, const std::vector<std::vector<int32_t>>& labels) {
  PackedBatch p;
  for (size_t i = 0; i < ids.size(); i++) p.add(ids[i], labels[i]);
  return p;
}

// Per-sequence sums of the rows' log-probabilities over the targets that carry loss.
SequenceLogps per_sequence(const PackedBatch& p, const std::vector<double>& logp) {
  SequenceLogps s;
  for (size_t q = 0; q < p.seg_start.size(); q++) {
    double sum = 0;
    int64_t n = 0;
    for (int t = p.seg_start[q]; t < p.seg_start[q] + p.seg_len[q]; t++)
      if (p.targets[size_t(t)] >= 0) sum += logp[size_t(t)], n++;
    s.sum.push_back(sum);
    s.count.push_back(n);
  }
  return s;
}

SequenceLogps run_logps(TrainGraph& g, const AdapterSet* adapters, const AdapterContext& ctx, const PackedBatch& p) {
  std::vector<double> logp;
  g.forward_logps(p, adapters, ctx, &logp);
  return per_sequence(p, logp);
}

}  // namespace

PreferenceLoss preference_loss(const PreferenceOptions& o, const PreferenceBatch& b, const SequenceLogps& policy,
                               const SequenceLogps& reference, const SequenceLogps& kl_policy,
                               const SequenceLogps& kl_reference) {
  PreferenceLoss r;
  r.dloss_dsum.assign(policy.sum.size(), 0.0);
  if (o.method == "dpo")
    dpo(o, policy, reference, r);
  else if (o.method == "kto")
    kto(o, b, policy, reference, kl_policy, kl_reference, r);
  else if (o.method == "orpo")
    orpo(o, policy, r);
  else
    fail("train", "unknown preference method '{}'", o.method);
  for (auto& [k, v] : r.metric_sums) r.metrics[k] = v / double(r.metric_counts[k]);
  return r;
}

PreferenceLoss preference_micro_step(TrainGraph& graph, const AdapterSet* policy, const ReferencePolicy& reference,
                                     const PreferenceBatch& b, const PreferenceOptions& o, float scale,
                                     const AdapterContext& ctx, bool backward) {
  LATHE_CHECK(policy == graph.adapters(), "the policy runs with the graph's own adapters");
  const PackedBatch main = packed(b.ids, b.labels);
  const bool kto_kl = o.method == "kto";
  PackedBatch kl;
  if (kto_kl) {  // prompt e with completion e-1 (cyclically): TRL's mismatched pairs
    const size_t E = b.ids.size();
    for (size_t e = 0; e < E; e++) {
      const size_t d = (e + E - 1) % E;
      const size_t pe = size_t(b.prompt_len[e]), pd = size_t(b.prompt_len[d]);
      std::vector<int32_t> ids(b.ids[e].begin(), b.ids[e].begin() + long(pe));
      std::vector<int32_t> lab(b.labels[e].begin(), b.labels[e].begin() + long(pe));
      ids.insert(ids.end(), b.ids[d].begin() + long(pd), b.ids[d].end());
      lab.insert(lab.end(), b.labels[d].begin() + long(pd), b.labels[d].end());
      kl.add(ids, lab);
    }
  }
  // Reference first (no gradient, no dropout), then the policy; the policy's main batch runs last
  // so that its activations are the ones backward_weighted reads.
  SequenceLogps ref, kl_ref, kl_pol;
  if (reference.graph) {
    ref = run_logps(*reference.graph, reference.adapters, AdapterContext{}, main);
    if (kto_kl) kl_ref = run_logps(*reference.graph, reference.adapters, AdapterContext{}, kl);
  } else if (o.method != "orpo") {
    fail("train", "{} needs a reference policy", o.method);
  }
  if (kto_kl) kl_pol = run_logps(graph, policy, ctx, kl);
  std::vector<double> logp;
  graph.forward_logps(main, policy, ctx, &logp);
  const SequenceLogps pol = per_sequence(main, logp);
  PreferenceLoss r = preference_loss(o, b, pol, ref, kl_pol, kl_ref);
  if (!backward) return r;
  // d(scale·L)/d NLL_t = -scale · dL/d(sum of its sequence), for each completion token t.
  std::vector<float> w(size_t(main.num_tokens()), 0.0f);
  for (size_t q = 0; q < main.seg_start.size(); q++)
    for (int t = main.seg_start[q]; t < main.seg_start[q] + main.seg_len[q]; t++)
      if (main.targets[size_t(t)] >= 0) w[size_t(t)] = float(-double(scale) * r.dloss_dsum[q]);
  graph.backward_weighted(w);
  return r;
}

}  // namespace lathe
