// Throughput of the data pipeline's personal-data detector and deduplication on generated text.
//   pii_dedup_bench pii MB [DUMP_FILE]   PII detect, then PII + normalize + exact-hash (per-record), MB/s
//   pii_dedup_bench minhash N [CHARS [DUMP DUMP_N]]  near-dup clusters of N records of ~CHARS characters
// Text is generated deterministically (fixed seeds): Korean and English sentences, personal data in
// about 1 of 12 sentences, and for minhash 10% of the records near-copies (2-5 words edited) of an
// earlier one. Threads: OMP_NUM_THREADS. bench/pii_dedup_bench.sh runs both with references.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "lathe/data/dedup.h"
#include "lathe/data/pii.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// CPU seconds of the whole process (user + system): on a shared machine the wall clock also measures
// other people's jobs; MB per CPU-second x cores is what the machine would do unloaded.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}
long peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

const char* kKo[] = {"임대차 계약이 끝나면 보증금을 돌려받을 수 있습니다.", "근로자는 근로계약서를 서면으로 받아야 합니다.",
                     "민법 제750조에 따라 손해를 배상할 책임이 있다.", "과태료는 {N}원 이하입니다.",
                     "회의는 2023-10-15 오후 3시에 열립니다.", "주문번호 {N}{N} 상품이 발송되었습니다.",
                     "안녕하세요, 법률 상담을 받고 싶습니다.", "이 법은 국민의 생활 안전을 보장함을 목적으로 한다."};
const char* kEn[] = {"The tenant may terminate the lease after {N} months.",
                     "Fine-tuning with LoRA keeps the base weights frozen.", "Version 1.{N}.3 was released on 2024-01-02.",
                     "Results: accuracy {N}%, loss 0.{N} after 3 epochs.", "See section 14.9 of RFC 2616 for caching rules.",
                     "Invoice {N}-{N} is due within 30 days."};
const char* kPii[] = {"연락처는 010-{4}-{4}입니다.", "문의: 02-{3}-{4}", "메일 user{N}@example.com 로 보내주세요.",
                      "주민등록번호 900101-1{6}", "Call me at (415) 555-{4}.", "card 4111 1111 1111 1111",
                      "계좌 110-{3}-{6} (신한은행)", "server 203.0.113.{N} responded", "token = ghp_{36}"};

std::string fill(const char* tmpl, std::mt19937& rng) {
  std::string out;
  for (const char* p = tmpl; *p; ++p) {
    if (*p == '{') {
      const char* q = p + 1;
      if (*q == 'N') out += std::to_string(rng() % 1000);
      else {
        int k = std::atoi(q);
        for (int i = 0; i < k; ++i) out += static_cast<char>('0' + rng() % 10);
      }
      while (*p != '}') ++p;
    } else {
      out += *p;
    }
  }
  return out;
}

std::vector<std::string> pii_corpus(double mb) {
  std::mt19937 rng(7);
  std::vector<std::string> recs;
  size_t total = 0;
  while (total < mb * 1e6) {
    std::string r;
    while (r.size() < 600) {
      uint32_t x = rng() % 24;
      if (x < 2) r += fill(kPii[rng() % (sizeof kPii / sizeof *kPii)], rng);
      else if (x < 14) r += fill(kKo[rng() % (sizeof kKo / sizeof *kKo)], rng);
      else r += fill(kEn[rng() % (sizeof kEn / sizeof *kEn)], rng);
      r += ' ';
    }
    total += r.size();
    recs.push_back(std::move(r));
  }
  return recs;
}

int bench_pii(double mb, const char* dump) {
  auto recs = pii_corpus(mb);
  size_t bytes = 0;
  for (auto& r : recs) bytes += r.size();
  if (dump) {
    std::ofstream f(dump, std::ios::binary);
    for (auto& r : recs) f << r << '\n';
  }
  lathe::data::PiiDetector det;
  const int64_t n = static_cast<int64_t>(recs.size());
  std::printf("corpus: %zu records, %.1f MB mixed Korean/English, threads %d\n", recs.size(), bytes / 1e6,
              omp_get_max_threads());
  // Warm-up pass, then timed passes.
  size_t matches = 0;
  auto t0 = Clock::now();
  double c0 = cpu_seconds();
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : matches)
  for (int64_t i = 0; i < n; ++i) matches += det.detect(recs[i]).size();
  double t_pii = seconds_since(t0), c_pii = cpu_seconds() - c0;
  t0 = Clock::now();
  c0 = cpu_seconds();
  size_t redacted_bytes = 0;
  std::vector<uint64_t> hashes(n);
#pragma omp parallel for schedule(dynamic, 64) reduction(+ : redacted_bytes)
  for (int64_t i = 0; i < n; ++i) {
    std::string red = lathe::data::redact(recs[i], det.detect(recs[i]));
    redacted_bytes += red.size();
    hashes[i] = lathe::data::exact_hash(lathe::data::dedup_normalize(red));
  }
  std::unordered_set<uint64_t> seen(hashes.begin(), hashes.end());
  double t_all = seconds_since(t0), c_all = cpu_seconds() - c0;
  std::printf("pii detect:                            %7.1f MB/s wall, %7.1f MB per CPU-second (%zu matches)\n",
              bytes / 1e6 / t_pii, bytes / 1e6 / c_pii, matches);
  std::printf("pii + redact + normalize + xxh3 + set: %7.1f MB/s wall, %7.1f MB per CPU-second (%zu unique)\n",
              bytes / 1e6 / t_all, bytes / 1e6 / c_all, seen.size());
  std::printf("peak RSS %ld MB\n", peak_rss_mb());
  return 0;
}

int bench_minhash(int64_t n, int chars, const char* dump, int64_t dump_n) {
  auto t0 = Clock::now();
  std::mt19937 rng(11);
  // Vocabulary: 20k English-like and 20k Hangul-syllable words.
  std::vector<std::string> vocab;
  const char* syl_en[] = {"ka", "ro", "mi", "te", "su", "na", "lo", "pe", "di", "gu", "ba", "ze", "ki", "mo", "an", "er"};
  for (int i = 0; i < 20000; ++i) {
    std::string w;
    for (int k = 0, id = i; k < 4; ++k, id /= 16) w += syl_en[id % 16];
    vocab.push_back(w.substr(0, 3 + i % 6));
  }
  for (int i = 0; i < 20000; ++i) {
    std::string w;
    for (int k = 0; k < 2 + i % 2; ++k) {
      uint32_t cp = 0xAC00 + (rng() % 11172);
      w += static_cast<char>(0xE0 | (cp >> 12));
      w += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      w += static_cast<char>(0x80 | (cp & 0x3F));
    }
    vocab.push_back(w);
  }
  std::vector<std::string> recs;
  recs.reserve(n);
  int64_t planted = 0;
  std::vector<std::pair<int64_t, int64_t>> pairs;  // (copy, source)
  for (int64_t i = 0; i < n; ++i) {
    if (i > 100 && rng() % 10 == 0) {  // near-copy of an earlier record: 2-5 words replaced
      int64_t src = rng() % i;
      std::string r = recs[src];
      pairs.emplace_back(i, src);
      int edits = 2 + rng() % 4;
      for (int e = 0; e < edits; ++e) {
        size_t pos = r.find(' ', rng() % r.size());
        if (pos == std::string::npos) continue;
        size_t end = r.find(' ', pos + 1);
        r.replace(pos + 1, (end == std::string::npos ? r.size() : end) - pos - 1, vocab[rng() % vocab.size()]);
      }
      recs.push_back(std::move(r));
      ++planted;
      continue;
    }
    std::string r;
    size_t cps = 0;
    while (cps < static_cast<size_t>(chars)) {
      const std::string& w = vocab[rng() % vocab.size()];
      r += w;
      r += ' ';
      cps += (w[0] & 0x80) ? w.size() / 3 + 1 : w.size() + 1;
    }
    recs.push_back(std::move(r));
  }
  double t_gen = seconds_since(t0);
  size_t bytes = 0;
  for (auto& r : recs) bytes += r.size();
  std::vector<std::string_view> views(recs.begin(), recs.end());
  if (dump) {  // the first dump_n records, one per line, for the Python reference
    std::ofstream f(dump, std::ios::binary);
    for (int64_t i = 0; i < std::min<int64_t>(dump_n, n); ++i) f << recs[i] << '\n';
  }
  std::printf("records: %lld of ~%d characters (%.0f MB), %lld planted near-copies, generated in %.1f s, threads %d\n",
              static_cast<long long>(n), chars, bytes / 1e6, static_cast<long long>(planted), t_gen,
              omp_get_max_threads());
  long rss_before = peak_rss_mb();
  t0 = Clock::now();
  double c0 = cpu_seconds();
  auto clusters = lathe::data::near_duplicate_clusters(views);
  double t = seconds_since(t0), c = cpu_seconds() - c0;
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) dropped += clusters[i] != i;
  lathe::data::MinHashOptions o;
  std::printf("minhash near-dup (ngram %d, %d perms = %d bands x %d rows, threshold %.2f): %.1f s wall, %.1f CPU-s, "
              "%lld dropped as near-duplicates\n",
              o.ngram, o.num_perm, o.bands, o.rows, o.threshold, t, c, static_cast<long long>(dropped));
  std::printf("peak RSS %ld MB (%ld MB before clustering: the generated texts)\n", peak_rss_mb(), rss_before);
  // Recall on planted copies whose exact shingle Jaccard with their source reaches the threshold
  // (2-5 edited words move a ~100-word record to J ~0.6-0.85, so not every copy is a near-duplicate).
  int64_t eligible = 0, found = 0, checked = 0;
  for (size_t k = 0; k < pairs.size() && checked < 5000; k += 1 + pairs.size() / 5000, ++checked) {
    auto [c, src] = pairs[k];
    auto a = lathe::data::minhash_shingles(lathe::data::dedup_normalize(recs[c]), o.ngram);
    auto b = lathe::data::minhash_shingles(lathe::data::dedup_normalize(recs[src]), o.ngram);
    size_t inter = 0;
    for (size_t x = 0, y = 0; x < a.size() && y < b.size();) {
      if (a[x] == b[y]) { ++inter; ++x; ++y; } else if (a[x] < b[y]) ++x; else ++y;
    }
    double j = double(inter) / double(a.size() + b.size() - inter);
    if (j >= o.threshold) {
      ++eligible;
      found += clusters[c] == clusters[src];
    }
  }
  std::printf("planted copies with exact Jaccard >= %.2f: %lld of %lld sampled; clustered with their source: %lld "
              "(%.1f%%)\n", o.threshold, static_cast<long long>(eligible), static_cast<long long>(checked),
              static_cast<long long>(found), eligible ? 100.0 * found / eligible : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "pii") return bench_pii(argc > 2 ? std::atof(argv[2]) : 64, argc > 3 ? argv[3] : nullptr);
  if (mode == "minhash")
    return bench_minhash(argc > 2 ? std::atoll(argv[2]) : 100000, argc > 3 ? std::atoi(argv[3]) : 500,
                         argc > 4 ? argv[4] : nullptr, argc > 5 ? std::atoll(argv[5]) : 20000);
  std::fprintf(stderr, "usage: pii_dedup_bench pii MB [DUMP_FILE] | minhash N [CHARS [DUMP_FILE [DUMP_N]]]\n");
  return 2;
}
