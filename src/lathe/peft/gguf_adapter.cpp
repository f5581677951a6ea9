#include "lathe/peft/gguf_adapter.h"

#include <cmath>

#include "lathe/core/error.h"
#include "lathe/model/gguf_export.h"

namespace lathe {

float gguf_lora_alpha(const LoraConfig& c) { return c.scaling() * float(c.r); }

void add_lora_to_gguf(const LoraAdapter& a, const ModelConfig& mc, GgmlType type, const std::string& name,
                      GgufWriter& w) {
  // llama.cpp's GGUF LoRA holds only lora_a/lora_b pairs (its converter aborts on a magnitude vector,
  // REFERENCE.md §2.6); DoRA's per-row rescaling is not a low-rank delta, so it has no GGUF LoRA form.
  if (a.config().use_dora)
    fail("export", "a DoRA adapter (use_dora: true) cannot be a llama.cpp GGUF LoRA: llama.cpp has no "
         "magnitude vectors. Merge it instead: lathe export --format gguf --adapter DIR (or --format merged)");
  add_gguf_general(mc, type, "adapter", name, w);
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", gguf_lora_alpha(a.config()));
  static const char* kGgufNames[] = {"attn_q",   "attn_k",   "attn_v",   "attn_output", "ffn_gate",
                                     "ffn_up",   "ffn_down", "attn_qkv", "ffn_up"};  // Phi-3: [gate; up] in ffn_up
  const bool permute = gguf_rope_permuted(mc);
  auto pick = [&](const Tensor& t) {
    return type == GgmlType::Q8_0 && t.shape.back() % 32 != 0 ? GgmlType::F16 : type;
  };
  const AdapterSet& set = a.adapters();
  for (int l = 0; l < int(set.linears.size()); l++)
    for (int k = 0; k < int(LinearId::kCount); k++) {
      auto* lin = static_cast<const LoraLinear*>(set.linears[l][k]);
      if (!lin) continue;
      std::string base = "blk." + std::to_string(l) + "." + kGgufNames[k] + ".weight";
      Tensor B = lin->B.value;
      LinearId id = LinearId(k);
      if (permute && (id == LinearId::Q || id == LinearId::K)) {
        Tensor p = Tensor::empty(DType::F32, B.shape);
        int heads = id == LinearId::Q ? mc.num_attention_heads : mc.num_key_value_heads;
        rope_rows_hf_to_gguf(B.f32(), p.f32(), heads, mc.head_dim, B.shape[1]);
        B = p;
      }
      w.add_tensor(base + ".lora_a", lin->A.value, pick(lin->A.value));
      w.add_tensor(base + ".lora_b", B, pick(B));
    }
}

}  // namespace lathe
