#include "lathe/kernels/cpu/serial_blas.h"

#include <cblas.h>

namespace lathe {

SerialBlas::SerialBlas() : prev_(openblas_get_num_threads()) {
  if (prev_ > 1) openblas_set_num_threads(1);
}

SerialBlas::~SerialBlas() {
  if (prev_ > 1) openblas_set_num_threads(prev_);
}

}  // namespace lathe
