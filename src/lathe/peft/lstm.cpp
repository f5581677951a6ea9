#include "lathe/peft/lstm.h"

#include <cmath>
#include <cstring>

#include "lathe/core/error.h"

namespace lathe {

namespace {
float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }
}  // namespace

void BiLstm::forward(const std::vector<Param*>& params, const float* x, int T, float* y) {
  LATHE_CHECK(params.size() == size_t(8 * L_), "BiLstm: {} parameters for {} layers", params.size(), L_);
  T_ = T;
  const int H = H_, G = 4 * H;
  inputs_.assign(L_, {});
  dirs_.assign(2 * L_, {});
  std::vector<float> out(size_t(T) * 2 * H);
  inputs_[0].assign(x, x + size_t(T) * in_);
  for (int l = 0; l < L_; l++) {
    const int in = l == 0 ? in_ : 2 * H;
    if (l > 0) inputs_[l] = out;
    const float* xin = inputs_[l].data();
    for (int rev = 0; rev < 2; rev++) {
      const float *Wih = params[size_t(8 * l + 4 * rev)]->value.f32(), *Whh = params[size_t(8 * l + 4 * rev + 1)]->value.f32();
      const float *bih = params[size_t(8 * l + 4 * rev + 2)]->value.f32(), *bhh = params[size_t(8 * l + 4 * rev + 3)]->value.f32();
      Dir& d = dirs_[size_t(2 * l + rev)];
      d.gates.assign(size_t(T) * G, 0.0f);
      d.c.assign(size_t(T) * H, 0.0f);
      d.h.assign(size_t(T) * H, 0.0f);
      std::vector<float> z(G);
      for (int s = 0; s < T; s++) {
        const int t = rev ? T - 1 - s : s, tp = rev ? t + 1 : t - 1;  // tp: the previous step's row
        const float* hp = s > 0 ? d.h.data() + size_t(tp) * H : nullptr;
        const float* cp = s > 0 ? d.c.data() + size_t(tp) * H : nullptr;
        for (int r = 0; r < G; r++) {
          double acc = double(bih[r]) + double(bhh[r]);
          for (int i = 0; i < in; i++) acc += double(Wih[size_t(r) * in + i]) * xin[size_t(t) * in + i];
          if (hp)
            for (int j = 0; j < H; j++) acc += double(Whh[size_t(r) * H + j]) * hp[j];
          z[r] = float(acc);
        }
        float* gt = d.gates.data() + size_t(t) * G;
        for (int j = 0; j < H; j++) {
          const float ig = sigmoid(z[j]), fg = sigmoid(z[H + j]), gg = std::tanh(z[2 * H + j]), og = sigmoid(z[3 * H + j]);
          gt[j] = ig, gt[H + j] = fg, gt[2 * H + j] = gg, gt[3 * H + j] = og;
          const float c = fg * (cp ? cp[j] : 0.0f) + ig * gg;
          d.c[size_t(t) * H + j] = c;
          d.h[size_t(t) * H + j] = og * std::tanh(c);
          out[size_t(t) * 2 * H + size_t(rev) * H + j] = d.h[size_t(t) * H + j];
        }
      }
    }
  }
  std::memcpy(y, out.data(), out.size() * sizeof(float));
}

void BiLstm::backward(const std::vector<Param*>& params, const float* dy, float* dx) {
  const int T = T_, H = H_, G = 4 * H;
  std::vector<float> dout(dy, dy + size_t(T) * 2 * H);  // d (this layer's output)
  for (int l = L_ - 1; l >= 0; l--) {
    const int in = l == 0 ? in_ : 2 * H;
    const float* xin = inputs_[l].data();
    std::vector<float> dxin(size_t(T) * in, 0.0f);
    for (int rev = 0; rev < 2; rev++) {
      const float *Wih = params[size_t(8 * l + 4 * rev)]->value.f32(), *Whh = params[size_t(8 * l + 4 * rev + 1)]->value.f32();
      float *gWih = params[size_t(8 * l + 4 * rev)]->grad.f32(), *gWhh = params[size_t(8 * l + 4 * rev + 1)]->grad.f32();
      float *gbih = params[size_t(8 * l + 4 * rev + 2)]->grad.f32(), *gbhh = params[size_t(8 * l + 4 * rev + 3)]->grad.f32();
      const Dir& d = dirs_[size_t(2 * l + rev)];
      std::vector<float> dh_next(H, 0.0f), dc_next(H, 0.0f), dz(G);
      for (int s = T - 1; s >= 0; s--) {  // processing order reversed
        const int t = rev ? T - 1 - s : s, tp = rev ? t + 1 : t - 1;
        const float* hp = s > 0 ? d.h.data() + size_t(tp) * H : nullptr;
        const float* cp = s > 0 ? d.c.data() + size_t(tp) * H : nullptr;
        const float* gt = d.gates.data() + size_t(t) * G;
        for (int j = 0; j < H; j++) {
          const float ig = gt[j], fg = gt[H + j], gg = gt[2 * H + j], og = gt[3 * H + j];
          const float tc = std::tanh(d.c[size_t(t) * H + j]);
          const float dh = dout[size_t(t) * 2 * H + size_t(rev) * H + j] + dh_next[j];
          const float dc = dc_next[j] + dh * og * (1.0f - tc * tc);
          dz[j] = dc * gg * ig * (1.0f - ig);
          dz[H + j] = dc * (cp ? cp[j] : 0.0f) * fg * (1.0f - fg);
          dz[2 * H + j] = dc * ig * (1.0f - gg * gg);
          dz[3 * H + j] = dh * tc * og * (1.0f - og);
          dc_next[j] = dc * fg;
        }
        std::fill(dh_next.begin(), dh_next.end(), 0.0f);
        for (int r = 0; r < G; r++) {
          const float g = dz[r];
          gbih[r] += g, gbhh[r] += g;
          for (int i = 0; i < in; i++) {
            gWih[size_t(r) * in + i] += g * xin[size_t(t) * in + i];
            dxin[size_t(t) * in + i] += g * Wih[size_t(r) * in + i];
          }
          if (hp)
            for (int j = 0; j < H; j++) {
              gWhh[size_t(r) * H + j] += g * hp[j];
              dh_next[j] += g * Whh[size_t(r) * H + j];
            }
        }
      }
    }
    if (l > 0) {
      dout = dxin;
    } else if (dx) {
      for (size_t i = 0; i < dxin.size(); i++) dx[i] += dxin[i];
    }
  }
}

}  // namespace lathe
