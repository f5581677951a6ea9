// The tokenizer's share of `lathe data prepare --model`, alone, one thread:
//   prepare_encode_bench MODEL_DIR CORPUS.jsonl [REPS]
// Records of the corpus (bench/data_bench_gen.py writes one) are rendered with the model's chat template
// first (not timed); then each pass encodes them as RecordEncoder does: a conversation's rendered text
// with the marks, plus Tokenizer::tokens_reproduced at the assistant spans' boundaries; a text record
// with the special tokens. Prints the best pass's CPU seconds and MB (of JSONL) per CPU-second, and a
// hash of every id and label boundary, which must be the same before and after a tokenizer change.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "lathe/chat/chat_template.h"
#include "lathe/records/record_format.h"
#include "lathe/records/record_shape.h"
#include "lathe/tokenizer/tokenizer.h"

namespace {
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}
uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull; }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: prepare_encode_bench MODEL_DIR CORPUS.jsonl [REPS]\n");
    return 2;
  }
  const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
  auto tok = lathe::Tokenizer::load(argv[1]);
  lathe::RecordFormatOptions fo;
  lathe::RecordEncoder enc = lathe::RecordEncoder::for_model(*tok, argv[1], "", fo);
  std::vector<lathe::ChatRender> convs;
  std::vector<std::string> texts;
  size_t bytes = 0;
  {
    std::ifstream f(argv[2]);
    std::string line;
    while (std::getline(f, line)) {
      auto rec = nlohmann::json::parse(line, nullptr, false);
      if (rec.is_discarded()) continue;
      auto shape = lathe::detect_record_shape(rec);
      if (shape == lathe::RecordShape::Text && rec["text"].is_string()) {
        texts.push_back(rec["text"].get<std::string>());
      } else if (shape != lathe::RecordShape::Unknown && shape != lathe::RecordShape::PreTokenized &&
                 shape != lathe::RecordShape::Preference) {
        convs.push_back(enc.chat_template().render(lathe::record_to_messages(rec, shape), {}));
      } else {
        continue;
      }
      bytes += line.size() + 1;
    }
  }
  const double mb = double(bytes) / 1e6;
  std::printf("%zu conversations, %zu texts, %.1f MB of JSONL\n", convs.size(), texts.size(), mb);
  double best = 1e30;
  uint64_t first_hash = 0;
  // The ids and boundaries are kept and hashed after each timed pass, so the hash costs no time.
  std::vector<std::vector<int32_t>> ids(convs.size() + texts.size());
  std::vector<size_t> bounds;
  for (int r = 0; r < reps; r++) {
    bounds.clear();
    const double t0 = cpu_now();
    for (size_t i = 0; i < convs.size(); i++) {
      const lathe::ChatRender& c = convs[i];
      lathe::EncodeMarks marks;
      ids[i] = tok->encode(c.text, marks);
      for (const auto& m : c.messages) {
        if (m.role != "assistant" || !(m.has_turn || m.has_content)) continue;
        const lathe::ChatSpan span = m.has_turn ? m.turn : m.content;
        bounds.push_back(tok->tokens_reproduced(c.text, span.begin, ids[i], marks));
        bounds.push_back(tok->tokens_reproduced(c.text, span.end, ids[i], marks));
      }
    }
    for (size_t i = 0; i < texts.size(); i++) ids[convs.size() + i] = tok->encode(texts[i], true);
    const double s = cpu_now() - t0;
    best = std::min(best, s);
    uint64_t h = 0xCBF29CE484222325ull;
    size_t ntok = 0;
    for (const auto& v : ids) {
      for (int32_t id : v) h = mix(h, uint64_t(id));
      h = mix(h, ~uint64_t(0));
      ntok += v.size();
    }
    for (size_t b : bounds) h = mix(h, b);
    if (r == 0) first_hash = h;
    if (h != first_hash) {
      std::fprintf(stderr, "pass %d: ids differ from pass 0\n", r);
      return 1;
    }
    std::printf("pass %d: %.3f CPU-s (%zu tokens, %zu span boundaries)\n", r, s, ntok, bounds.size());
  }
  std::printf("best: %.3f CPU-s  %.1f MB per CPU-second  ids hash %016llx\n", best, mb / best,
              static_cast<unsigned long long>(first_hash));
  return 0;
}
