// A LoRA adapter as llama.cpp's GGUF LoRA (REFERENCE.md §2.6, the layout convert_lora_to_gguf.py
// writes and llama-adapter.cpp reads): general.type = "adapter", adapter.type = "lora",
// adapter.lora.alpha, and per targeted weight `<gguf name>.lora_a` (PEFT A [r, in], ggml ne
// [in, r]) and `.lora_b` (PEFT B [out, r], ne [r, out]).
// llama.cpp scales by alpha / r, so rsLoRA (alpha / √r) is folded in as alpha' = alpha·√r; on the
// NORM-RoPE architectures (llama, smollm3) the rows of B for q/k are permuted like the base q/k
// weights. Fused Phi-3 modules keep llama.cpp's names: qkv_proj -> attn_qkv, gate_up_proj -> ffn_up.
#pragma once
#include "lathe/formats/gguf_write.h"
#include "lathe/peft/lora.h"

namespace lathe {

// The alpha llama.cpp must see so that alpha' / r equals the adapter's scaling.
float gguf_lora_alpha(const LoraConfig& c);
// Adds the adapter's metadata and tensors to `w`; `type` as for models (Q8_0 falls back to F16 for
// a tensor whose rows are not a multiple of 32, e.g. B when r < 32).
void add_lora_to_gguf(const LoraAdapter& a, const ModelConfig& mc, GgmlType type, const std::string& name,
                      GgufWriter& w);

}  // namespace lathe
