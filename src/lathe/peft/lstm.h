// A bidirectional multi-layer LSTM over one short sequence, forward and backward, with PyTorch's
// nn.LSTM semantics (gate order i, f, g, o; zero initial state; layer k > 0 reads the previous
// layer's [forward; reverse] outputs; no dropout). P-tuning's LSTM prompt encoder runs it over
// the P virtual token embeddings (peft/prompt_tuning.cpp); sizes are tiny (P rows), so the
// recurrence is plain loops.
//
//   z_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh            [4H]
//   i, f, o = σ(z_i, z_f, z_o),  g = tanh(z_g)
//   c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
#pragma once
#include <vector>

#include "lathe/core/param.h"

namespace lathe {

class BiLstm {
 public:
  // Per layer and direction (forward, then reverse) the four PyTorch parameters, in this order:
  // weight_ih [4H, in], weight_hh [4H, H], bias_ih [4H], bias_hh [4H]; in = input size for layer 0,
  // 2H above.
  BiLstm(int input_size, int hidden, int layers) : in_(input_size), H_(hidden), L_(layers) {}
  // y[T, 2H] = lstm(x[T, in]); keeps what backward needs. params: 8 per layer, as above.
  void forward(const std::vector<Param*>& params, const float* x, int T, float* y);
  // From dy[T, 2H]: accumulates the parameter gradients and dx[T, in] (+=, may be null).
  void backward(const std::vector<Param*>& params, const float* dy, float* dx);

 private:
  struct Dir {                   // saved per (layer, direction), rows indexed by time t
    std::vector<float> gates;    // [T, 4H] i, f, g, o after their nonlinearities
    std::vector<float> c, h;     // [T, H]
  };
  int in_, H_, L_, T_ = 0;
  std::vector<std::vector<float>> inputs_;  // layer inputs [T, in_k]
  std::vector<Dir> dirs_;                   // [layer * 2 + reverse]
};

}  // namespace lathe
