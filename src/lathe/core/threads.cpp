#include "lathe/core/threads.h"

#include <omp.h>

namespace lathe {

void set_num_threads(int n) {
  // n <= 0 keeps OpenMP's own default: OMP_NUM_THREADS when set, else every core.
  if (n > 0) omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace lathe
