// Encode throughput: tokenize_bench TOKENIZER CORPUS [THREADS]. The corpus is split into lines (one
// text each, like dataset records); prints single-thread MB/s and encode_batch MB/s on THREADS threads.
// bench/tokenize_bench.sh runs it beside the @huggingface/tokenizers reference and prints the ratio.
#include <omp.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "lathe/core/file_io.h"
#include "lathe/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenize_bench TOKENIZER CORPUS [THREADS]\n");
    return 2;
  }
  int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  auto tok = lathe::Tokenizer::load(argv[1]);
  std::string corpus = lathe::read_file(argv[2]);
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < corpus.size();) {
    size_t nl = corpus.find('\n', pos);
    if (nl == std::string::npos) nl = corpus.size();
    lines.push_back(corpus.substr(pos, nl - pos + 1));
    pos = nl + 1;
  }
  double mb = double(corpus.size()) / 1e6;
  using clock = std::chrono::steady_clock;
  // Warm-up pass fills the word cache as a long run would; the timed pass is the second one.
  size_t ntok = 0;
  for (auto& l : lines) ntok += tok->encode(l).size();
  // Single thread: CPU time of this thread, so a busy shared machine does not skew the figure.
  auto cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  double c0 = cpu();
  ntok = 0;
  for (auto& l : lines) ntok += tok->encode(l).size();
  double s1 = cpu() - c0;
  omp_set_num_threads(threads);
  tok->encode_batch(lines);
  auto t1 = clock::now();
  auto batch = tok->encode_batch(lines);
  double s2 = std::chrono::duration<double>(clock::now() - t1).count();
  std::printf("lathe  single: %.2f MB/s (%zu tokens, %.3f s cpu)  batch x%d: %.2f MB/s wall\n", mb / s1, ntok, s1, threads,
              mb / s2);
  return 0;
}
