// The target attribute and inlining macro of the AVX-512 VNNI kernels (qblock_x86_vnni.cpp decode,
// qgemm_vnni.cpp prefill): functions compiled for VNNI inside a baseline build, chosen at run time.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC's AVX-512 intrinsics' undefined-value idiom
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define LATHE_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LATHE_ALWAYS_INLINE inline __attribute__((always_inline))
