// Prompt tuning (Lester et al. 2021; PEFT PROMPT_TUNING) and P-tuning (Liu et al. 2021; PEFT
// P_TUNING) — virtual tokens in the input embeddings (REFERENCE.md §2.2):
//
//   prompt tuning  the virtual embeddings V [P, C] are the trained table itself; init RANDOM
//                  (nn.Embedding's N(0, 1)) or TEXT (the embeddings of prompt_tuning_init_text's
//                  tokens, repeated / cut to P, as PEFT does);
//   P-tuning       V = encoder(E), E [P, C] a trained table and the encoder PEFT's PromptEncoder:
//                  MLP = Linear(C, H) ReLU Linear(H, H) ReLU Linear(H, C) (mlp_head.0/2/4), or
//                  LSTM = bidirectional nn.LSTM(C, H, encoder_num_layers) (lstm_head) then
//                  Linear(2H, 2H) ReLU Linear(2H, C) (mlp_head.0/2).
//
// Training prepends V to every sequence (AdapterSet::prompt_embeds, the embedding hook in
// TrainGraph), positions 0..P-1, labels -100 there. PEFT saves V itself as `prompt_embeddings`
// (for P-tuning the encoder's OUTPUT) and loads it as a plain table; so do we. For inference the
// adapter is baked once into a key/value prefix: the keys and values the base model computes for
// the P virtual rows, which are all that later tokens see of them (causal attention). Generation,
// eval and serving then run it exactly like a prefix-tuning adapter, per request.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lathe/core/param.h"
#include "lathe/model/linear.h"
#include "lathe/model/model.h"
#include "lathe/peft/lstm.h"

namespace lathe {

struct PromptConfig {
  std::string peft_type = "PROMPT_TUNING";  // or P_TUNING
  int num_virtual_tokens = 20;
  std::string prompt_tuning_init = "RANDOM";  // RANDOM | TEXT (prompt tuning)
  std::string prompt_tuning_init_text;
  std::string encoder_reparameterization_type = "MLP";  // P-tuning: MLP | LSTM
  int encoder_hidden_size = 0;                          // P-tuning: 0 = the model's hidden size
  int encoder_num_layers = 2;                           // P-tuning LSTM layers (PEFT's default)
  bool p_tuning() const { return peft_type == "P_TUNING"; }
};

class PromptAdapter {
 public:
  // Fresh adapter. TEXT init takes `init_ids`, the tokenized prompt_tuning_init_text (the caller
  // owns the tokenizer), and copies those rows of m's embedding table.
  static std::unique_ptr<PromptAdapter> create(const Model& m, const PromptConfig& cfg, uint64_t seed,
                                               const std::vector<int32_t>& init_ids = {});
  // PROMPT_TUNING or P_TUNING directory; the saved table trains on directly (PEFT keeps no
  // encoder in the file).
  static std::unique_ptr<PromptAdapter> load_peft(const std::string& dir, const ModelConfig& mc);
  void save_peft(const std::string& dir, const std::string& base_model);

  void refresh();            // V from the parameters (after each optimizer step)
  void zero_prompt_grads();  // before a step's micro-batches
  void backward();           // dV -> parameter gradients (after the micro-batches)
  // Computes the inference prefix (the virtual rows' keys/values) with model m's weights.
  void bake(const Model& m);

  const AdapterSet& train_adapters() const { return train_set_; }
  const AdapterSet& adapters() const;  // inference: the baked prefix (bake first)
  ParamList params();
  Param* param(const std::string& name);
  const PromptConfig& config() const { return cfg_; }
  const std::vector<float>& virtual_embeddings() const { return V_; }

 private:
  void init_layout(const ModelConfig& mc, bool encoder);
  PromptConfig cfg_;
  int P_ = 0, C_ = 0, H_ = 0, layers_ = 0, heads_ = 0;
  bool encoder_ = false;  // P-tuning being trained: V = encoder(E)
  // prompt_embeddings [P, C]; or prompt_encoder.embedding.weight [P, C], the LSTM's and the
  // mlp_head's parameters.
  std::vector<std::unique_ptr<Param>> params_;
  std::vector<Param*> lstm_params_;                 // 8 per LSTM layer (lstm.h's order)
  std::vector<std::pair<Param*, Param*>> linears_;  // mlp_head (weight, bias), ReLU between them
  std::unique_ptr<BiLstm> lstm_;
  std::vector<std::vector<float>> lin_in_;          // each linear's input [P, in]
  std::vector<float> V_, dV_;                       // [P, C] x2
  std::vector<std::vector<float>> k_, v_;  // baked prefix per layer [P, Hkv*D]
  AdapterSet train_set_, infer_set_;
  bool baked_ = false;
};

}  // namespace lathe
