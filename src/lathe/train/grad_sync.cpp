#include "lathe/train/grad_sync.h"

#include <chrono>
#include <cstring>

namespace lathe {

int param_layer(const std::string& name) {
  const size_t at = name.find("layers.");
  if (at == std::string::npos) return -1;
  size_t i = at + 7;
  int v = 0, digits = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') v = v * 10 + (name[i++] - '0'), digits++;
  return digits > 0 && i < name.size() && name[i] == '.' ? v : -1;
}

GradSync::GradSync(Communicator& comm, const ParamList& params, size_t bucket_bytes) : comm_(comm) {
  if (comm_.size() <= 1) return;
  // Parameters keep their order (the same on every rank), so bucket k is the same tensors everywhere.
  for (Param* p : params) {
    const int layer = param_layer(p->name);
    const size_t bytes = p->grad.nbytes();
    if (buckets_.empty() || buckets_.back().layer != layer ||
        (!buckets_.back().buf.empty() && buckets_.back().buf.size() * sizeof(float) + bytes > bucket_bytes))
      buckets_.push_back(Bucket{layer, {}, {}, false});
    buckets_.back().params.push_back(p);
    buckets_.back().buf.resize(buckets_.back().buf.size() + size_t(p->grad.numel()));
  }
}

size_t GradSync::bytes_per_step() const {
  size_t n = 0;
  for (const Bucket& b : buckets_) n += b.buf.size() * sizeof(float);
  return n;
}

void GradSync::start(Bucket& b) {
  float* dst = b.buf.data();
  for (Param* p : b.params) {
    std::memcpy(dst, p->grad.f32(), p->grad.nbytes());
    dst += p->grad.numel();
  }
  comm_.start_allreduce_sum(b.buf.data(), b.buf.size());
  b.started = true;
}

void GradSync::layer_done(int layer) {
  if (!active()) return;
  for (Bucket& b : buckets_)
    if (b.layer == layer && !b.started) start(b), started_early_++;
  comm_.progress();
}

void GradSync::finish() {
  if (!active()) return;
  // Every rank starts the same buckets in the same order (MPI matches collectives by order): the
  // layers reported during backward (the same sequence everywhere), then the rest in bucket order.
  for (Bucket& b : buckets_)
    if (!b.started) start(b);
  const auto t0 = std::chrono::steady_clock::now();
  comm_.wait_all();
  wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Bucket& b : buckets_) {
    const float* src = b.buf.data();
    for (Param* p : b.params) {
      std::memcpy(p->grad.f32(), src, p->grad.nbytes());
      src += p->grad.numel();
    }
    b.started = false;
  }
  overlapped_ = started_early_;
  started_early_ = 0;
}

}  // namespace lathe
