// Chat template rendering against tokenizing, per record, one thread:
//   chat_template_bench MODEL_DIR CORPUS.jsonl [TEMPLATE]
// Every conversational record of the corpus (bench/data_bench_gen.py writes one) is rendered with its
// loss spans as `lathe data prepare --model` renders it: by the interpreter alone (plans off, what
// lathe did before render plans) and with render plans (chat_plan.h); the two must agree on every
// byte and span. Then the rendered texts are encoded with the model's tokenizer, alone and as
// RecordEncoder does it (whole text plus the span boundaries: Tokenizer::tokens_reproduced).
#include <time.h>

#include <cstdio>
#include <fstream>

#include "lathe/chat/chat_plan.h"
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
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: chat_template_bench MODEL_DIR CORPUS.jsonl [TEMPLATE]\n");
    return 2;
  }
  auto tok = lathe::Tokenizer::load(argv[1]);
  lathe::RecordFormatOptions fo;
  lathe::RecordEncoder enc = lathe::RecordEncoder::for_model(*tok, argv[1], argc > 3 ? argv[3] : "", fo);
  std::vector<nlohmann::ordered_json> convs;
  size_t bytes = 0;
  {
    std::ifstream f(argv[2]);
    std::string line;
    while (std::getline(f, line)) {
      auto rec = nlohmann::json::parse(line, nullptr, false);
      if (rec.is_discarded()) continue;
      auto shape = lathe::detect_record_shape(rec);
      if (shape == lathe::RecordShape::Unknown || shape == lathe::RecordShape::Text ||
          shape == lathe::RecordShape::PreTokenized || shape == lathe::RecordShape::Preference)
        continue;
      convs.push_back(lathe::record_to_messages(rec, shape));
      bytes += line.size() + 1;
    }
  }
  const double mb = double(bytes) / 1e6;
  std::printf("%zu conversational records, %.1f MB of JSONL\n", convs.size(), mb);

  lathe::ChatTemplate interp = lathe::ChatTemplate::parse(enc.chat_template().source());
  lathe::ChatTemplate planned = lathe::ChatTemplate::parse(enc.chat_template().source());
  lathe::ChatRenderOptions off, on;
  off.plans = false;
  std::vector<lathe::ChatRender> a(convs.size()), b(convs.size());
  double t0 = cpu_now();
  for (size_t i = 0; i < convs.size(); ++i) a[i] = interp.render(convs[i], off);
  double t1 = cpu_now();
  for (size_t i = 0; i < convs.size(); ++i) b[i] = planned.render(convs[i], on);
  double t2 = cpu_now();
  size_t differ = 0;
  for (size_t i = 0; i < convs.size(); ++i) differ += a[i].to_json() != b[i].to_json();
  double t3 = cpu_now();
  size_t ntok = 0;
  for (size_t i = 0; i < convs.size(); ++i) ntok += tok->encode(b[i].text, false).size();
  double t4 = cpu_now();
  auto st = planned.plan_stats();
  std::printf("template, interpreter only: %7.3f CPU-s  %7.1f MB per CPU-second\n", t1 - t0, mb / (t1 - t0));
  std::printf("template, render plans:     %7.3f CPU-s  %7.1f MB per CPU-second  (%zu plans, %zu probes, %zu renders "
              "from plans; %zu records differ)\n",
              t2 - t1, mb / (t2 - t1), st.plans, st.probes, st.hits, differ);
  std::printf("encode the rendered text:   %7.3f CPU-s  %7.1f MB per CPU-second  (%zu tokens)\n", t4 - t3,
              mb / (t4 - t3), ntok);
  double t5 = cpu_now();
  for (const auto& c : convs) (void)enc.encode_messages(c);
  double t6 = cpu_now();
  std::printf("RecordEncoder (render + encode + span boundaries): %7.3f CPU-s  %7.1f MB per CPU-second\n",
              t6 - t5, mb / (t6 - t5));
  std::printf("ratio template / encode: interpreter %.2f, render plans %.2f\n", (t1 - t0) / (t4 - t3),
              (t2 - t1) / (t4 - t3));
  return differ == 0 ? 0 : 1;
}
