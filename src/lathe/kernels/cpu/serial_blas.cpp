#include "lathe/kernels/cpu/serial_blas.h"

#include <cblas.h>
#include <omp.h>

namespace lathe {

// Inside a parallel region (lathe eval runs cases side by side) each caller's BLAS already runs on its
// own thread, and OpenBLAS's count is one global: leave it alone rather than race on it.
SerialBlas::SerialBlas() : prev_(omp_in_parallel() ? 1 : openblas_get_num_threads()) {
  if (prev_ > 1) openblas_set_num_threads(1);
}

SerialBlas::~SerialBlas() {
  if (prev_ > 1) openblas_set_num_threads(prev_);
}

}  // namespace lathe
