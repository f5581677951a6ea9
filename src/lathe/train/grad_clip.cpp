#include "lathe/train/grad_clip.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lathe {

namespace {

// Chunk size fixed independently of the thread count: the partial sums, and the order they are
// added in, depend only on the shapes.
constexpr int64_t kChunk = 1 << 14;

double sum_squares(const float* g, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double s = 0.0;
    for (int64_t i = c * kChunk; i < end; i++) s += double(g[i]) * double(g[i]);
    partial[size_t(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

double global_grad_norm(const ParamList& params) {
  double total = 0.0;
  for (const Param* p : params) total += sum_squares(p->grad.f32(), p->grad.numel());
  return std::sqrt(total);
}

double clip_grad_norm(const ParamList& params, float max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm <= 0.0f || !std::isfinite(norm)) return norm;
  const double coef = double(max_norm) / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  const float c = float(coef);
  for (Param* p : params) {
    float* g = p->grad.f32();
    const int64_t n = p->grad.numel();
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) g[i] *= c;
  }
  return norm;
}

bool grads_finite(const ParamList& params, std::string* first_bad_name) {
  for (const Param* p : params) {
    const float* g = p->grad.f32();
    const int64_t n = p->grad.numel();
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > 16384)
    for (int64_t i = 0; i < n; i++) bad |= !std::isfinite(g[i]);
    if (bad) {
      if (first_bad_name) *first_bad_name = p->name;
      return false;
    }
  }
  return true;
}

}  // namespace lathe
