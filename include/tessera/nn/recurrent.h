#pragma once
// Recurrent layers: RNN (tanh or relu), LSTM and GRU over whole sequences, and their one-step
// cells. Parameter names, shapes, gate order (LSTM i, f, g, o; GRU r, z, n) and initialization
// U(-1/sqrt(hidden), 1/sqrt(hidden)) are PyTorch's, so state dicts carry over.
//
//   auto lstm = std::make_shared<nn::LSTM>(16, 32, nn::RNNOptions{.num_layers = 2,
//                                                                  .bidirectional = true});
//   auto [out, state] = (*lstm)(x);          // x (T, N, 16): out (T, N, 64), state.h (4, N, 32)
//   auto [out2, h_n] = (*gru)(x, h0);        // h0 (num_layers * directions, N, hidden)
//
// Calling a layer (operator()) returns the output and the final state like PyTorch; the
// one-argument forward(x) of the Module interface returns the output only, so that a recurrent
// layer can sit in a Sequential.
#include <string>
#include <utility>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::nn {

/// The cell kind of a recurrent layer.
enum class RNNMode { RNNTanh, RNNReLU, LSTM, GRU };

struct RNNOptions {
  int64_t num_layers = 1;
  std::string nonlinearity = "tanh";  ///< RNN only: "tanh" or "relu"
  bool bias = true;                   ///< bias_ih_l* and bias_hh_l*
  bool batch_first = false;           ///< input and output (N, T, *) instead of (T, N, *)
  double dropout = 0.0;               ///< on each layer's output but the last, while training
  bool bidirectional = false;
  int64_t proj_size = 0;  ///< LSTM only: h is projected to this size by weight_hr_l*
};

/// An LSTM's (h, c); undefined tensors mean zeros.
struct LSTMState {
  Tensor h, c;
};

/// What RNN, LSTM and GRU share: the parameters and the multi-layer, bidirectional driver.
class RNNBase : public Module {
 public:
  void reset_parameters() override;
  std::string type_name() const override;
  std::string extra_repr() const override;
  /// Number of directions (2 when bidirectional).
  int64_t num_directions() const { return options.bidirectional ? 2 : 1; }
  /// The size of h: proj_size when projecting, else hidden_size.
  int64_t output_size() const { return options.proj_size > 0 ? options.proj_size : hidden_size; }
  /// The parameters of each (layer, direction), in PyTorch's all_weights order: w_ih, w_hh,
  /// [b_ih, b_hh], [w_hr].
  std::vector<std::vector<Tensor>> all_weights() const;

  RNNMode mode;
  int64_t input_size, hidden_size;
  RNNOptions options;

 protected:
  RNNBase(RNNMode mode, int64_t input_size, int64_t hidden_size, RNNOptions opt);
  /// Runs every layer over x: returns the output and the final state ({h_n} or {h_n, c_n}).
  /// `state` is {} (zeros), {h0} or {h0, c0}.
  std::pair<Tensor, std::vector<Tensor>> run(const Tensor& x, std::vector<Tensor> state);

 private:
  struct Weights {
    Tensor w_ih, w_hh, b_ih, b_hh, w_hr;
  };
  void check_input(const Tensor& x) const;
  std::vector<Tensor> initial_state(const Tensor& x, std::vector<Tensor> state) const;
  /// Layer l in every direction: its output (T, N, D * output_size); final states go to finals.
  Tensor run_layer(int64_t l, const Tensor& in, const std::vector<Tensor>& state,
                   std::vector<std::vector<Tensor>>& finals) const;
  void check_state(const Tensor& s, const Tensor& x, int64_t size, const char* what) const;
  std::vector<Weights> weights_;  ///< per layer * num_directions + direction
};

/// Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu).
class RNN : public RNNBase {
 public:
  RNN(int64_t input_size, int64_t hidden_size, RNNOptions opt = {});
  /// (output, h_n): x (T, N, in) (or (N, T, in) batch_first, or unbatched (T, in)); h0
  /// (num_layers * directions, N, hidden) or undefined for zeros. output (T, N, D * hidden).
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h0);
  /// The output only.
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).first; }
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& h0 = {}) {
    return forward(x, h0);
  }
};

/// LSTM with PyTorch's gate order i, f, g, o and optional projection (proj_size).
class LSTM : public RNNBase {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, RNNOptions opt = {});
  /// (output, (h_n, c_n)): h (layers * D, N, proj_size or hidden), c (layers * D, N, hidden);
  /// give both or neither.
  std::pair<Tensor, LSTMState> forward(const Tensor& x, const LSTMState& state);
  Tensor forward(const Tensor& x) override { return forward(x, LSTMState{}).first; }
  std::pair<Tensor, LSTMState> operator()(const Tensor& x, const LSTMState& state = {}) {
    return forward(x, state);
  }
};

/// GRU with PyTorch's gate order r, z, n and n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
class GRU : public RNNBase {
 public:
  GRU(int64_t input_size, int64_t hidden_size, RNNOptions opt = {});
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h0);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).first; }
  std::pair<Tensor, Tensor> operator()(const Tensor& x, const Tensor& h0 = {}) {
    return forward(x, h0);
  }
};

// ---- cells ------------------------------------------------------------------------------------

/// What the cells share: weight_ih (G * hidden, in), weight_hh (G * hidden, hidden), biases.
class RNNCellBase : public Module {
 public:
  void reset_parameters() override;
  std::string type_name() const override;
  std::string extra_repr() const override;

  RNNMode mode;
  int64_t input_size, hidden_size;
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;

 protected:
  RNNCellBase(RNNMode mode, int64_t input_size, int64_t hidden_size, bool bias);
  /// One step: x (N, in) or (in); state tensors (N, hidden) or (hidden), undefined = zeros.
  std::vector<Tensor> step(const Tensor& x, std::vector<Tensor> state);
};

/// One step of an Elman RNN: x (N, in) or (in), h (N, hidden) or (hidden) -> h'.
class RNNCell : public RNNCellBase {
 public:
  RNNCell(int64_t input_size, int64_t hidden_size, bool bias = true,
          const std::string& nonlinearity = "tanh");
  Tensor forward(const Tensor& x, const Tensor& h);
  /// From a zero state.
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  Tensor operator()(const Tensor& x, const Tensor& h = {}) { return forward(x, h); }
};

/// One LSTM step -> (h', c').
class LSTMCell : public RNNCellBase {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, bool bias = true);
  LSTMState forward(const Tensor& x, const LSTMState& state);
  /// h' from a zero state.
  Tensor forward(const Tensor& x) override { return forward(x, LSTMState{}).h; }
  LSTMState operator()(const Tensor& x, const LSTMState& state = {}) { return forward(x, state); }
};

/// One GRU step -> h'.
class GRUCell : public RNNCellBase {
 public:
  GRUCell(int64_t input_size, int64_t hidden_size, bool bias = true);
  Tensor forward(const Tensor& x, const Tensor& h);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  Tensor operator()(const Tensor& x, const Tensor& h = {}) { return forward(x, h); }
};

}  // namespace tessera::nn
