// Forcing a float rounding where a reference implementation rounds.
#pragma once

namespace lathe {

// Returns v rounded to f32 at this point. GCC's default for C++ is -ffp-contract=fast, which fuses a
// product into a following add (one rounding, an FMA) across statements; quantizers that must match
// a reference bit for bit (ggml's, bitsandbytes') round the product first. An empty asm that claims to
// change v keeps the two roundings without turning contraction off for the whole file.
inline float round_here(float v) {
#if defined(__GNUC__) && defined(__x86_64__)
  asm("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  asm("" : "+w"(v));
#else
  volatile float t = v;
  v = t;
#endif
  return v;
}

}  // namespace lathe
