// Threading: OpenMP everywhere, and OpenBLAS's OpenMP build, so there is one pool (REFERENCE.md §6).
#pragma once

namespace lathe {

// Sets the thread count for our kernels. n <= 0 keeps the default (OMP_NUM_THREADS, else all cores).
void set_num_threads(int n);
int num_threads();

}  // namespace lathe
