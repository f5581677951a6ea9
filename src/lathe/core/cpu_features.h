// CPU facts for the byte scanners outside the kernels layer (data/, tokenizer/), whose block paths
// are compiled for AVX2 with a target attribute and chosen at run time, so that one binary built for
// any x86-64 runs them where the CPU has AVX2 and the byte loops elsewhere (same results either way).
#pragma once

namespace lathe {

// An x86-64 CPU with AVX2, unless LATHE_CPU_ISA=scalar pins the byte loops (read once). The kernels
// make their own choice (qisa_active in kernels/cpu/qblock.h), capped by the same variable.
bool cpu_text_avx2();

}  // namespace lathe

#if defined(__x86_64__)
#define LATHE_TEXT_AVX2 1
#define LATHE_TARGET_AVX2 __attribute__((target("avx2")))
#endif
