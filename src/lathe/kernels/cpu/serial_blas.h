// Runs the BLAS calls of a scope on the calling thread alone. For the rank-r products of LoRA
// (512 x 576 x 16 at the benchmark's shape) a parallel sgemm spends about as long in its OpenMP
// fork/join as it saves, and far longer when the cores are shared: the step profile
// (docs/bench_train.md) measured them at a fifth of a 2-thread step on a quiet machine and half a
// step on a loaded one. Not thread-safe against other threads' BLAS calls (OpenBLAS's thread count
// is global); training calls BLAS from one thread.
#pragma once

namespace lathe {

class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int prev_;  // OpenBLAS's thread count to restore (1: nothing to do)
};

}  // namespace lathe
