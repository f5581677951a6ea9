// Precision and recall of the PII detector on (1) the project's labelled set tests/data/pii/labelled.jsonl
// (Korean + English, written by tools/pii/build_labelled.py with independently computed checksums) and
// (2) Microsoft Presidio's test cases in ../shared/fixtures/pii/presidio (skipped when absent; scored only
// for the entity types each Presidio test file covers, all of which we support).
//
// A prediction counts as a true positive when type and byte span are exactly the labelled ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <tuple>
#include <map>
#include <nlohmann/json.hpp>

#include "lathe/data/pii.h"
#include "test_util.h"

namespace {

using lathe::data::PiiDetector;
using lathe::data::PiiMatch;
using lathe::data::PiiType;

struct Span {
  std::string type;
  size_t begin, end;
  bool operator<(const Span& o) const { return std::tie(type, begin, end) < std::tie(o.type, o.begin, o.end); }
};

struct Tally {
  int tp = 0, fp = 0, fn = 0;
  double precision() const { return tp + fp ? double(tp) / (tp + fp) : 1.0; }
  double recall() const { return tp + fn ? double(tp) / (tp + fn) : 1.0; }
};

// Scores one text; only predicted types in `scored_types` (empty = all) count.
void score(const std::string& text, const std::vector<Span>& gold, const std::vector<PiiMatch>& pred,
           const std::vector<std::string>& scored_types, std::map<std::string, Tally>& per_type, Tally& all,
           std::vector<std::string>* report) {
  std::set<Span> g(gold.begin(), gold.end()), p;
  for (const PiiMatch& m : pred) {
    std::string t = lathe::data::pii_type_name(m.type);
    if (!scored_types.empty() && std::find(scored_types.begin(), scored_types.end(), t) == scored_types.end()) continue;
    p.insert({t, m.begin, m.end});
  }
  for (const Span& s : p) {
    bool hit = g.count(s) > 0;
    (hit ? per_type[s.type].tp : per_type[s.type].fp)++;
    (hit ? all.tp : all.fp)++;
    if (!hit && report) report->push_back("FP " + s.type + " '" + text.substr(s.begin, s.end - s.begin) + "' in: " + text);
  }
  for (const Span& s : g)
    if (!p.count(s)) {
      per_type[s.type].fn++;
      all.fn++;
      if (report) report->push_back("FN " + s.type + " '" + text.substr(s.begin, s.end - s.begin) + "' in: " + text);
    }
}

void print(const char* title, const std::map<std::string, Tally>& per_type, const Tally& all) {
  std::printf("%s\n  %-15s %4s %4s %4s %9s %7s\n", title, "type", "tp", "fp", "fn", "precision", "recall");
  for (auto& [t, c] : per_type)
    std::printf("  %-15s %4d %4d %4d %9.3f %7.3f\n", t.c_str(), c.tp, c.fp, c.fn, c.precision(), c.recall());
  std::printf("  %-15s %4d %4d %4d %9.3f %7.3f\n", "ALL", all.tp, all.fp, all.fn, all.precision(), all.recall());
}

TEST(PiiLabelled, ProjectSetPrecisionRecall) {
  std::ifstream in(lathe::test::source_path("tests/data/pii/labelled.jsonl"));
  ASSERT_TRUE(in) << "tests/data/pii/labelled.jsonl missing (regenerate with tools/pii/build_labelled.py)";
  PiiDetector det;
  std::map<std::string, Tally> per_type;
  Tally all;
  std::vector<std::string> report;
  std::string line;
  int n = 0, decoys = 0, clean_decoys = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    std::string text = j["text"];
    std::vector<Span> gold;
    for (auto& s : j["spans"]) gold.push_back({s["type"], s["begin"], s["end"]});
    auto pred = det.detect(text);
    if (gold.empty()) {
      ++decoys;
      clean_decoys += pred.empty();
    }
    score(text, gold, pred, {}, per_type, all, &report);
    ++n;
  }
  ASSERT_GE(n, 220);
  print("labelled set (tests/data/pii/labelled.jsonl)", per_type, all);
  std::printf("  decoys with no match: %d / %d\n", clean_decoys, decoys);
  for (auto& r : report) std::printf("  %s\n", r.c_str());
  // Thresholds: the set is small and written with the rules in mind, so we demand a lot of it; a rule
  // change that loses a few cases shows up here with the exact sentences printed above.
  // Reached: P 1.000, R 0.981 (153 of 156; misses listed in docs/pii_dedup.md), 85 of 85 decoys clean.
  EXPECT_GE(all.precision(), 0.98);
  EXPECT_GE(all.recall(), 0.96);
  EXPECT_GE(double(clean_decoys) / decoys, 0.97);
}

TEST(PiiLabelled, PresidioCasesPrecisionRecall) {
  LATHE_REQUIRE_FIXTURE("pii/presidio/presidio_pii_cases.jsonl");
  std::ifstream in(lathe::test::fixture_path("pii/presidio/presidio_pii_cases.jsonl"));
  const std::map<std::string, std::string> type_of = {
      {"test_credit_card_recognizer.py", "CARD"}, {"test_email_recognizer.py", "EMAIL"},
      {"test_kr_brn_recognizer.py", "BRN"},       {"test_kr_driver_license_recognizer.py", "DRIVER_LICENSE"},
      {"test_kr_frn_recognizer.py", "FRN"},       {"test_kr_passport_recognizer.py", "PASSPORT"},
      {"test_kr_rrn_recognizer.py", "RRN"},       {"test_phone_recognizer.py", "PHONE"}};
  PiiDetector det;
  std::map<std::string, Tally> per_type;
  Tally all;
  std::vector<std::string> report;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    auto it = type_of.find(j["source_test"].get<std::string>());
    if (it == type_of.end()) continue;
    std::string text = j["text"];
    // Presidio positions are Python character offsets; convert to UTF-8 byte offsets.
    std::vector<size_t> byte_at;
    for (size_t b = 0; b < text.size(); ++b)
      if ((static_cast<unsigned char>(text[b]) & 0xC0) != 0x80) byte_at.push_back(b);
    byte_at.push_back(text.size());
    auto pos = j.contains("expected_positions") ? j["expected_positions"] : j["expected_res"];
    std::vector<Span> gold;
    for (auto& p : pos) gold.push_back({it->second, byte_at[p[0].get<size_t>()], byte_at[p[1].get<size_t>()]});
    score(text, gold, det.detect(text), {it->second}, per_type, all, &report);
  }
  print("Presidio analyzer test cases (../shared/fixtures/pii/presidio)", per_type, all);
  for (auto& r : report) std::printf("  %s\n", r.c_str());
  // Presidio reports some shapes at 0.05-0.5 that we only accept with a context word (contiguous
  // licence numbers, old passports, non-checksum RRNs without a label), and its phone cases include
  // regions we do not model; the floors below are what the rules reach, kept as a regression guard.
  // Reached: P 0.979, R 0.905. The text "... one is415-555-0132" appears twice with contradicting
  // expectations (one or two phones), so it scores one TP and one FP whichever way we decide.
  EXPECT_GE(all.precision(), 0.97);
  EXPECT_GE(all.recall(), 0.87);
}

}  // namespace
