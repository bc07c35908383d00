// Recurrent layers. Each layer/direction projects the whole input sequence with one matmul,
// then runs the recurrence step by step; everything is composed of differentiable public ops.
#include "tessera/nn/recurrent.h"

#include <cmath>

#include "tessera/core/error.h"
#include "tessera/nn/functional.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace {

using State = std::vector<Tensor>;  // {h} or {h, c}

// The recurrent weights of one step, transposed once per call rather than once per step.
// b_hh is set only where it can't be folded into the input projection (GRU).
struct StepWeights {
  Tensor w_hh_t, b_hh, w_hr_t;
};

using StepFn = State (*)(const Tensor& gx, const State& s, const StepWeights& w);

State tanh_step(const Tensor& gx, const State& s, const StepWeights& w) {
  return {tessera::tanh(gx + matmul(s[0], w.w_hh_t))};
}

State relu_step(const Tensor& gx, const State& s, const StepWeights& w) {
  return {tessera::relu(gx + matmul(s[0], w.w_hh_t))};
}

State lstm_step(const Tensor& gx, const State& s, const StepWeights& w) {
  const auto g = chunk(gx + matmul(s[0], w.w_hh_t), 4, -1);  // i, f, g, o
  Tensor c = sigmoid(g[1]) * s[1] + sigmoid(g[0]) * tessera::tanh(g[2]);
  Tensor h = sigmoid(g[3]) * tessera::tanh(c);
  if (w.w_hr_t.defined()) h = matmul(h, w.w_hr_t);
  return {h, c};
}

State gru_step(const Tensor& gx, const State& s, const StepWeights& w) {
  Tensor gh = matmul(s[0], w.w_hh_t);
  if (w.b_hh.defined()) gh = gh + w.b_hh;
  const int64_t hs = s[0].size(-1);
  // r and z in one sigmoid; n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
  const auto rz = chunk(sigmoid(gx.narrow(-1, 0, 2 * hs) + gh.narrow(-1, 0, 2 * hs)), 2, -1);
  const Tensor n = tessera::tanh(gx.narrow(-1, 2 * hs, hs) + rz[0] * gh.narrow(-1, 2 * hs, hs));
  return {n + rz[1] * (s[0] - n)};  // (1 - z) n + z h
}

struct ModeInfo {
  const char* name;
  int64_t gates;
  int64_t state_size;  // 2 for LSTM's (h, c)
  StepFn step;
};

// Indexed by RNNMode.
constexpr ModeInfo kModes[] = {
    {"RNN", 1, 1, tanh_step},
    {"RNN", 1, 1, relu_step},
    {"LSTM", 4, 2, lstm_step},
    {"GRU", 3, 1, gru_step},
};

const ModeInfo& info(RNNMode m) { return kModes[static_cast<int>(m)]; }

// x W_ih^T plus the biases that can be added before the recurrence: all of them but GRU's
// b_hh, which must stay inside r * (W_hn h + b_hn).
Tensor input_projection(RNNMode mode, const Tensor& x, const Tensor& w_ih, const Tensor& b_ih,
                        const Tensor& b_hh) {
  Tensor gx = matmul(x, w_ih.t());
  if (!b_ih.defined()) return gx;
  return gx + (mode == RNNMode::GRU ? b_ih : b_ih + b_hh);
}

StepWeights step_weights(RNNMode mode, const Tensor& w_hh, const Tensor& b_hh, const Tensor& w_hr) {
  return {w_hh.t(), mode == RNNMode::GRU ? b_hh : Tensor(), w_hr.defined() ? w_hr.t() : Tensor()};
}

// The steps of x along dim 0 as views, cut through a binary tree of halves: a view's gradient
// is padded to its base's full size, so T selects from the whole sequence would cost O(T^2) in
// backward; the tree costs O(T log T).
void split_steps(const Tensor& x, std::vector<Tensor>& out) {
  constexpr int64_t kLeaf = 8;
  const int64_t n = x.size(0);
  if (n <= kLeaf) {
    for (int64_t t = 0; t < n; ++t) out.push_back(x.select(0, t));
    return;
  }
  split_steps(x.narrow(0, 0, n / 2), out);
  split_steps(x.narrow(0, n / 2, n - n / 2), out);
}

// Runs one direction of one layer over the projected inputs gx (T, N, G * H): the outputs
// (T, N, H_out) and the final state.
std::pair<Tensor, State> run_direction(StepFn step, const Tensor& gx, State s, const StepWeights& w,
                                       bool reverse) {
  std::vector<Tensor> steps;
  split_steps(gx, steps);
  const size_t T = steps.size();
  std::vector<Tensor> out(T);
  for (size_t i = 0; i < T; ++i) {
    const size_t t = reverse ? T - 1 - i : i;
    s = step(steps[t], s, w);
    out[t] = s[0];
  }
  return {stack(out, 0), s};
}

}  // namespace

// ---- RNNBase ----------------------------------------------------------------------------------

RNNBase::RNNBase(RNNMode m, int64_t in, int64_t hidden, RNNOptions opt)
    : mode(m), input_size(in), hidden_size(hidden), options(std::move(opt)) {
  const char* name = info(mode).name;
  TS_CHECK(in > 0 && hidden > 0, ValueError, name,
           "input_size and hidden_size must be positive, got {} and {}", in, hidden);
  TS_CHECK(options.num_layers > 0, ValueError, name, "num_layers must be positive, got {}",
           options.num_layers);
  TS_CHECK(options.dropout >= 0.0 && options.dropout <= 1.0, ValueError, name,
           "dropout must be in [0, 1], got {}", options.dropout);
  TS_CHECK(mode == RNNMode::LSTM || options.proj_size == 0, ValueError, name,
           "proj_size applies to LSTM only, got {}", options.proj_size);
  TS_CHECK(options.proj_size >= 0 && options.proj_size < hidden, ValueError, name,
           "proj_size must be in [0, hidden_size {}), got {}", hidden, options.proj_size);
  const int64_t gates = info(mode).gates, D = num_directions(), h_out = output_size();
  for (int64_t l = 0; l < options.num_layers; ++l) {
    for (int64_t d = 0; d < D; ++d) {
      const std::string sfx = fmt::format("_l{}{}", l, d == 1 ? "_reverse" : "");
      const int64_t layer_in = l == 0 ? in : h_out * D;
      Weights w;
      w.w_ih = register_parameter("weight_ih" + sfx, empty({gates * hidden, layer_in}));
      w.w_hh = register_parameter("weight_hh" + sfx, empty({gates * hidden, h_out}));
      if (options.bias) {
        w.b_ih = register_parameter("bias_ih" + sfx, empty({gates * hidden}));
        w.b_hh = register_parameter("bias_hh" + sfx, empty({gates * hidden}));
      }
      if (options.proj_size > 0)
        w.w_hr = register_parameter("weight_hr" + sfx, empty({options.proj_size, hidden}));
      weights_.push_back(w);
    }
  }
  reset_parameters();
}

void RNNBase::reset_parameters() {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (Tensor& p : parameters(false)) init::uniform_(p, -bound, bound);
}

std::string RNNBase::type_name() const { return info(mode).name; }

std::string RNNBase::extra_repr() const {
  const auto& o = options;
  std::string s = fmt::format("{}, {}", input_size, hidden_size);
  if (o.proj_size != 0) s += fmt::format(", proj_size={}", o.proj_size);
  if (o.num_layers != 1) s += fmt::format(", num_layers={}", o.num_layers);
  if (mode == RNNMode::RNNReLU) s += ", nonlinearity=relu";
  if (!o.bias) s += ", bias=false";
  if (o.batch_first) s += ", batch_first=true";
  if (o.dropout != 0.0) s += fmt::format(", dropout={}", o.dropout);
  if (o.bidirectional) s += ", bidirectional=true";
  return s;
}

std::vector<std::vector<Tensor>> RNNBase::all_weights() const {
  std::vector<std::vector<Tensor>> out;
  for (const Weights& w : weights_) {
    out.emplace_back();
    for (const Tensor& t : {w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr})
      if (t.defined()) out.back().push_back(t);
  }
  return out;
}

void RNNBase::check_input(const Tensor& x) const {
  const char* name = info(mode).name;
  TS_CHECK(x.defined(), ValueError, name, "input is undefined");
  const bool ok = (x.dim() == 2 || x.dim() == 3) && x.size(-1) == input_size;
  TS_CHECK(ok, ShapeError, name, "expected input {} or unbatched (T, {}), got {}",
           options.batch_first ? fmt::format("(N, T, {})", input_size)
                               : fmt::format("(T, N, {})", input_size),
           input_size, shape_str(x.shape()));
  const int64_t T = x.dim() == 3 && options.batch_first ? x.size(1) : x.size(0);
  TS_CHECK(T > 0, ShapeError, name, "expected a non-empty sequence, got input {}",
           shape_str(x.shape()));
}

void RNNBase::check_state(const Tensor& s, const Tensor& x, int64_t size, const char* what) const {
  Shape want{options.num_layers * num_directions()};
  if (x.dim() == 3) want.push_back(x.size(options.batch_first ? 0 : 1));
  want.push_back(size);
  TS_CHECK(s.shape() == want, ShapeError, info(mode).name, "expected {} of shape {}, got {}", what,
           shape_str(want), shape_str(s.shape()));
}

std::vector<Tensor> RNNBase::initial_state(const Tensor& x, std::vector<Tensor> state) const {
  const bool batched = x.dim() == 3;
  const int64_t N = !batched ? 1 : x.size(options.batch_first ? 0 : 1);
  const int64_t sizes[] = {output_size(), hidden_size};
  const char* names[] = {"h0", "c0"};
  for (size_t k = 0; k < static_cast<size_t>(info(mode).state_size); ++k) {
    if (state.size() <= k) {
      state.push_back(
          zeros({options.num_layers * num_directions(), N, sizes[k]}, {x.dtype(), x.device()}));
      continue;
    }
    check_state(state[k], x, sizes[k], names[k]);
    if (!batched) state[k] = state[k].unsqueeze(1);
  }
  return state;
}

Tensor RNNBase::run_layer(int64_t l, const Tensor& in, const std::vector<Tensor>& state,
                          std::vector<std::vector<Tensor>>& finals) const {
  const int64_t D = num_directions();
  std::vector<Tensor> outs;
  for (int64_t d = 0; d < D; ++d) {
    const Weights& w = weights_[static_cast<size_t>(l * D + d)];
    const Tensor gx = input_projection(mode, in, w.w_ih, w.b_ih, w.b_hh);
    State s0;
    for (const Tensor& s : state) s0.push_back(s.select(0, l * D + d));
    auto [out, s] =
        run_direction(info(mode).step, gx, s0, step_weights(mode, w.w_hh, w.b_hh, w.w_hr), d == 1);
    outs.push_back(out);
    for (size_t k = 0; k < s.size(); ++k) finals[k].push_back(s[k]);
  }
  return D == 1 ? outs[0] : cat(outs, -1);
}

std::pair<Tensor, std::vector<Tensor>> RNNBase::run(const Tensor& x, std::vector<Tensor> state) {
  check_input(x);
  const bool batched = x.dim() == 3;
  state = initial_state(x, std::move(state));
  Tensor h = !batched ? x.unsqueeze(1) : options.batch_first ? x.transpose(0, 1) : x;
  std::vector<std::vector<Tensor>> finals(state.size());
  for (int64_t l = 0; l < options.num_layers; ++l) {
    h = run_layer(l, h, state, finals);
    if (l + 1 < options.num_layers) h = functional::dropout(h, options.dropout, is_training());
  }
  const Tensor output = !batched ? h.squeeze(1) : options.batch_first ? h.transpose(0, 1) : h;
  std::vector<Tensor> final_state;
  for (const auto& f : finals)
    final_state.push_back(batched ? stack(f, 0) : stack(f, 0).squeeze(1));
  return {output, final_state};
}

// ---- RNN, LSTM, GRU ---------------------------------------------------------------------------

namespace {
RNNMode rnn_mode(const std::string& nonlinearity, const char* name) {
  if (nonlinearity == "tanh") return RNNMode::RNNTanh;
  if (nonlinearity == "relu") return RNNMode::RNNReLU;
  fail<ValueError>(name, "nonlinearity must be \"tanh\" or \"relu\", got \"{}\"", nonlinearity);
}

RNNOptions only_tanh(RNNOptions opt, const char* name) {
  TS_CHECK(opt.nonlinearity == "tanh", ValueError, name,
           "nonlinearity applies to RNN only, got \"{}\"", opt.nonlinearity);
  return opt;
}
}  // namespace

RNN::RNN(int64_t in, int64_t hidden, RNNOptions opt)
    : RNNBase(rnn_mode(opt.nonlinearity, "RNN"), in, hidden, opt) {}

std::pair<Tensor, Tensor> RNN::forward(const Tensor& x, const Tensor& h0) {
  auto [out, s] = run(x, h0.defined() ? State{h0} : State{});
  return {out, s[0]};
}

LSTM::LSTM(int64_t in, int64_t hidden, RNNOptions opt)
    : RNNBase(RNNMode::LSTM, in, hidden, only_tanh(std::move(opt), "LSTM")) {}

std::pair<Tensor, LSTMState> LSTM::forward(const Tensor& x, const LSTMState& state) {
  TS_CHECK(state.h.defined() == state.c.defined(), ValueError, "LSTM",
           "give both h0 and c0 or neither (got only {})", state.h.defined() ? "h0" : "c0");
  auto [out, s] = run(x, state.h.defined() ? State{state.h, state.c} : State{});
  return {out, LSTMState{s[0], s[1]}};
}

GRU::GRU(int64_t in, int64_t hidden, RNNOptions opt)
    : RNNBase(RNNMode::GRU, in, hidden, only_tanh(std::move(opt), "GRU")) {}

std::pair<Tensor, Tensor> GRU::forward(const Tensor& x, const Tensor& h0) {
  auto [out, s] = run(x, h0.defined() ? State{h0} : State{});
  return {out, s[0]};
}

// ---- cells ------------------------------------------------------------------------------------

namespace {
const char* cell_name(RNNMode m) {
  constexpr const char* kNames[] = {"RNNCell", "RNNCell", "LSTMCell", "GRUCell"};
  return kNames[static_cast<int>(m)];
}
}  // namespace

RNNCellBase::RNNCellBase(RNNMode m, int64_t in, int64_t hidden, bool bias)
    : mode(m), input_size(in), hidden_size(hidden) {
  TS_CHECK(in > 0 && hidden > 0, ValueError, cell_name(mode),
           "input_size and hidden_size must be positive, got {} and {}", in, hidden);
  const int64_t gates = info(mode).gates;
  weight_ih = register_parameter("weight_ih", empty({gates * hidden, in}));
  weight_hh = register_parameter("weight_hh", empty({gates * hidden, hidden}));
  if (bias) {
    bias_ih = register_parameter("bias_ih", empty({gates * hidden}));
    bias_hh = register_parameter("bias_hh", empty({gates * hidden}));
  }
  reset_parameters();
}

void RNNCellBase::reset_parameters() {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (Tensor& p : parameters(false)) init::uniform_(p, -bound, bound);
}

std::string RNNCellBase::type_name() const { return cell_name(mode); }

std::string RNNCellBase::extra_repr() const {
  std::string s = fmt::format("{}, {}", input_size, hidden_size);
  if (!bias_ih.defined()) s += ", bias=false";
  if (mode == RNNMode::RNNReLU) s += ", nonlinearity=relu";
  return s;
}

std::vector<Tensor> RNNCellBase::step(const Tensor& x, std::vector<Tensor> state) {
  const char* name = cell_name(mode);
  TS_CHECK(x.defined(), ValueError, name, "input is undefined");
  const bool ok = (x.dim() == 1 || x.dim() == 2) && x.size(-1) == input_size;
  TS_CHECK(ok, ShapeError, name, "expected input (N, {}) or unbatched ({}), got {}", input_size,
           input_size, shape_str(x.shape()));
  const bool batched = x.dim() == 2;
  const Tensor xb = batched ? x : x.unsqueeze(0);
  const Shape want = batched ? Shape{x.size(0), hidden_size} : Shape{hidden_size};
  const char* names[] = {"h", "c"};
  for (size_t k = 0; k < state.size(); ++k) {
    Tensor& s = state[k];
    if (!s.defined()) {
      s = zeros({xb.size(0), hidden_size}, {x.dtype(), x.device()});
      continue;
    }
    TS_CHECK(s.shape() == want, ShapeError, name, "expected {} of shape {}, got {}", names[k],
             shape_str(want), shape_str(s.shape()));
    if (!batched) s = s.unsqueeze(0);
  }
  const Tensor gx = input_projection(mode, xb, weight_ih, bias_ih, bias_hh);
  State out = info(mode).step(gx, state, step_weights(mode, weight_hh, bias_hh, Tensor()));
  if (!batched)
    for (Tensor& s : out) s = s.squeeze(0);
  return out;
}

RNNCell::RNNCell(int64_t in, int64_t hidden, bool bias, const std::string& nonlinearity)
    : RNNCellBase(rnn_mode(nonlinearity, "RNNCell"), in, hidden, bias) {}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) { return step(x, {h})[0]; }

LSTMCell::LSTMCell(int64_t in, int64_t hidden, bool bias)
    : RNNCellBase(RNNMode::LSTM, in, hidden, bias) {}

LSTMState LSTMCell::forward(const Tensor& x, const LSTMState& state) {
  TS_CHECK(state.h.defined() == state.c.defined(), ValueError, "LSTMCell",
           "give both h and c or neither (got only {})", state.h.defined() ? "h" : "c");
  const State s = step(x, {state.h, state.c});
  return {s[0], s[1]};
}

GRUCell::GRUCell(int64_t in, int64_t hidden, bool bias)
    : RNNCellBase(RNNMode::GRU, in, hidden, bias) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) { return step(x, {h})[0]; }

}  // namespace tessera::nn
