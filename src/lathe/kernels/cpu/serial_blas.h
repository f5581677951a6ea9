// Runs the BLAS calls of a scope on the calling thread alone. For the rank-r products of LoRA
// (512 x 576 x 16 at the benchmark's shape) a parallel sgemm spends about as long in its OpenMP
// fork/join as it saves, and far longer when the cores are shared: the step profile
// (docs/bench_train.md) measured them at a fifth of a 2-thread step on a quiet machine and half a
// step on a loaded one. OpenBLAS's thread count is global (and its OpenMP build sets the calling
// thread's omp_set_num_threads with it, restored on exit to the same count lathe set): use it only
// where one thread drives the compute (training, the serving scheduler's worker).
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
