// Byte classes of 32 text bytes for the AVX2 block paths of `lathe data prepare` (already_clean in
// clean.cpp, dedup_normalize's plain runs in dedup_normalize.cpp): each test sets a lane to 0xFF
// where its byte is in the class. Both paths look at a character's later bytes too (Hangul and CJK
// ranges end inside a three-byte character), so a window holds the bytes one and two after each.
// Compiled for AVX2 by a target attribute (LATHE_TARGET_AVX2) on every x86-64 build; callers run
// them only where cpu_text_avx2() says the CPU can.
#pragma once
#include "lathe/core/cpu_features.h"
#ifdef LATHE_TEXT_AVX2
#include <immintrin.h>

#include <cstdint>

namespace lathe::data::text_blocks {

LATHE_TARGET_AVX2 inline __m256i eq(__m256i a, int c) { return _mm256_cmpeq_epi8(a, _mm256_set1_epi8(char(c))); }
// Unsigned a >= c.
LATHE_TARGET_AVX2 inline __m256i ge(__m256i a, int c) { return _mm256_cmpeq_epi8(_mm256_max_epu8(a, _mm256_set1_epi8(char(c))), a); }
// lo <= a <= hi, unsigned (hi < 0xFF).
LATHE_TARGET_AVX2 inline __m256i in(__m256i a, int lo, int hi) { return _mm256_andnot_si256(ge(a, hi + 1), ge(a, lo)); }
// UTF-8 continuation bytes (10xxxxxx).
LATHE_TARGET_AVX2 inline __m256i continuation(__m256i a) { return eq(_mm256_and_si256(a, _mm256_set1_epi8(char(0xC0))), 0x80); }

// The 32 bytes at p and the 32 that start one and two bytes later (p[32, 34) must be readable).
struct Window {
  __m256i x, n1, n2;
};
LATHE_TARGET_AVX2 inline Window window(const unsigned char* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 1)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2))};
}
// Lead bytes ED of characters past the last Hangul syllable, U+D7A3 (ED 9E A3).
LATHE_TARGET_AVX2 inline __m256i past_last_syllable(const Window& w) {
  return _mm256_and_si256(eq(w.x, 0xED), _mm256_or_si256(ge(w.n1, 0x9F), _mm256_and_si256(eq(w.n1, 0x9E), ge(w.n2, 0xA4))));
}

}  // namespace lathe::data::text_blocks
#endif
