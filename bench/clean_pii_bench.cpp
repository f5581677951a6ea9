// CPU time of `lathe data prepare`'s per-record text stages on a JSONL corpus, one thread, stage by stage:
//   clean_pii_bench CORPUS.jsonl [REPEATS]
// Records are parsed and mapped first (untimed, map stage defaults), then each stage runs over all of them
// as the streaming driver runs it: clean (clean_text on every text, then filter_record), PII (detect, report
// masks, redact), dedup (record_text, dedup_normalize, XXH3-128) and the statistics pass (count_scripts,
// utf8_length). It prints thread CPU-seconds per stage, MB per CPU-second over the corpus bytes, and one
// XXH3 digest of everything the stages produce (cleaned and redacted texts, drop reasons, matches,
// normalized texts, script counts): a faster build must print the same digest.
#include <xxhash.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "lathe/core/utf8.h"
#include "lathe/data/clean.h"
#include "lathe/data/dedup.h"
#include "lathe/data/mapping.h"
#include "lathe/data/pii.h"

using namespace lathe;
using namespace lathe::data;

namespace {

double thread_cpu() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

struct Digest {
  XXH3_state_t* st = XXH3_createState();
  Digest() { XXH3_64bits_reset(st); }
  ~Digest() { XXH3_freeState(st); }
  void add(std::string_view s) {
    const uint64_t n = s.size();
    XXH3_64bits_update(st, &n, sizeof n);
    XXH3_64bits_update(st, s.data(), s.size());
  }
  uint64_t value() const { return XXH3_64bits_digest(st); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: clean_pii_bench CORPUS.jsonl [REPEATS]\n");
    return 2;
  }
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 1;
  std::ifstream in(argv[1]);
  std::vector<Record> base;
  std::string line;
  size_t bytes = 0;
  int64_t ln = 0;
  while (std::getline(in, line)) {
    bytes += line.size() + 1;
    Record r;
    r.json = nlohmann::json::parse(line, nullptr, false);
    if (r.json.is_discarded()) continue;
    r.source.file = "corpus";
    r.source.line = ++ln;
    base.push_back(std::move(r));
  }
  StageCounts mc("map");
  std::map<std::string, size_t> shapes;
  map_records(base, MappingOptions{}, mc, shapes);
  const CleanOptions co;
  const PiiDetector det;
  double t_text = 0, t_clean = 0, t_pii = 0, t_dedup = 0, t_stats = 0;
  uint64_t digest = 0;
  for (int rep = 0; rep < repeats; rep++) {
    std::vector<Record> recs = base;
    Digest d;
    std::vector<char> keep(recs.size());
    double t0 = thread_cpu();
    for (size_t i = 0; i < recs.size(); i++) for_each_text(recs[i].json, [&](std::string& s) { clean_text(s, co); });
    double tf = thread_cpu();
    for (size_t i = 0; i < recs.size(); i++) {
      auto why = filter_record(recs[i].json, co);
      keep[i] = !why;
      if (why) d.add(*why);
    }
    double t1 = thread_cpu();
    t_text += tf - t0;
    for (size_t i = 0; i < recs.size(); i++) {
      if (!keep[i]) continue;
      for_each_text(recs[i].json, [&](std::string& s) {
        auto m = det.detect(s);
        if (m.empty()) return;
        for (auto& x : m) d.add(mask_for_report(s, x));
        s = redact(s, m);
      });
    }
    double t2 = thread_cpu();
    for (size_t i = 0; i < recs.size(); i++) {
      if (!keep[i]) continue;
      const std::string norm = dedup_normalize(record_text(recs[i].json));
      const XXH128_hash_t h = XXH3_128bits(norm.data(), norm.size());
      d.add(std::string_view(reinterpret_cast<const char*>(&h), sizeof h));
    }
    double t3 = thread_cpu();
    std::map<std::string, size_t> scripts;
    size_t chars = 0;
    for (size_t i = 0; i < recs.size(); i++) {
      if (!keep[i]) continue;
      const std::string t = record_text(recs[i].json);
      count_scripts(t, scripts);
      chars += lathe::utf8_length(t);
    }
    double t4 = thread_cpu();
    for (size_t i = 0; i < recs.size(); i++)
      if (keep[i]) d.add(recs[i].json.dump());
    for (auto& [k, v] : scripts) d.add(k + "=" + std::to_string(v));
    d.add(std::to_string(chars));
    t_clean += t1 - t0, t_pii += t2 - t1, t_dedup += t3 - t2, t_stats += t4 - t3;
    digest = d.value();
  }
  const double mb = double(bytes) * repeats / 1e6;
  const double total = t_clean + t_pii + t_dedup + t_stats;
  std::printf("records %zu, %.1f MB x %d\n", base.size(), double(bytes) / 1e6, repeats);
  std::printf("clean  %7.3f CPU-s  %7.1f MB/CPU-s  (clean_text %.3f, filter_record %.3f)\n", t_clean, mb / t_clean,
              t_text, t_clean - t_text);
  std::printf("pii    %7.3f CPU-s  %7.1f MB/CPU-s\n", t_pii, mb / t_pii);
  std::printf("dedup  %7.3f CPU-s  %7.1f MB/CPU-s\n", t_dedup, mb / t_dedup);
  std::printf("stats  %7.3f CPU-s  %7.1f MB/CPU-s\n", t_stats, mb / t_stats);
  std::printf("total  %7.3f CPU-s  %7.1f MB/CPU-s\n", total, mb / total);
  std::printf("digest %016llx\n", static_cast<unsigned long long>(digest));
  return 0;
}
