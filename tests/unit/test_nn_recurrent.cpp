// Recurrent layers against an independent float64 reference written with per-element loops:
// multi-layer, bidirectional, batch_first, unbatched, projection, no bias; gradients by central
// differences; PyTorch's parameter names and shapes; shape errors.
#include <cmath>

#include "tessera/nn/recurrent.h"
#include "test_nn_util.h"

namespace tessera {
namespace {
using nn_test::check_param_grads;
using nn_test::expect_close;
using nn_test::expect_error;
using nn_test::gradcheck;
using nn_test::vals;
using Vec = std::vector<double>;

// ---- the reference ----------------------------------------------------------------------------

// One (layer, direction)'s weights as row-major host matrices; biases empty when absent.
struct RefWeights {
  Vec w_ih, w_hh, b_ih, b_hh, w_hr;
  int64_t in = 0, hidden = 0, h_out = 0;
};

struct RefSpec {
  nn::RNNMode mode;
  int64_t layers = 1, dirs = 1;
  bool zero_between_layers = false;  // what dropout(p = 1) does to a layer's input
};

double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// W (rows, cols) x + b.
Vec affine(const Vec& w, const Vec& x, const Vec& b, int64_t rows) {
  const auto cols = static_cast<int64_t>(x.size());
  Vec y(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = b.empty() ? 0.0 : b[r];
    for (int64_t c = 0; c < cols; ++c) acc += w[r * cols + c] * x[c];
    y[r] = acc;
  }
  return y;
}

// One step of the cell equations for one sample, updating h (and c).
void ref_cell(nn::RNNMode mode, const RefWeights& w, const Vec& x, Vec& h, Vec& c) {
  const int64_t H = w.hidden;
  const int64_t G = mode == nn::RNNMode::LSTM ? 4 : mode == nn::RNNMode::GRU ? 3 : 1;
  const Vec a = affine(w.w_ih, x, w.b_ih, G * H), b = affine(w.w_hh, h, w.b_hh, G * H);
  if (mode == nn::RNNMode::RNNTanh || mode == nn::RNNMode::RNNReLU) {
    for (int64_t j = 0; j < H; ++j) {
      const double v = a[j] + b[j];
      h[j] = mode == nn::RNNMode::RNNTanh ? std::tanh(v) : std::max(v, 0.0);
    }
  } else if (mode == nn::RNNMode::LSTM) {
    Vec hh(static_cast<size_t>(H));
    for (int64_t j = 0; j < H; ++j) {
      const double i = sig(a[j] + b[j]), f = sig(a[H + j] + b[H + j]);
      const double g = std::tanh(a[2 * H + j] + b[2 * H + j]), o = sig(a[3 * H + j] + b[3 * H + j]);
      c[j] = f * c[j] + i * g;
      hh[j] = o * std::tanh(c[j]);
    }
    h = w.w_hr.empty() ? hh : affine(w.w_hr, hh, {}, w.h_out);
  } else {
    for (int64_t j = 0; j < H; ++j) {
      const double r = sig(a[j] + b[j]), z = sig(a[H + j] + b[H + j]);
      const double n = std::tanh(a[2 * H + j] + r * b[2 * H + j]);
      h[j] = (1 - z) * n + z * h[j];
    }
  }
}

struct RefResult {
  Vec out, h, c;  // out (T, N, D * h_out), h (L * D, N, h_out), c (L * D, N, hidden)
};

// The full multi-layer, bidirectional recurrence over x (T, N, in), time-major.
RefResult ref_rnn(const RefSpec& spec, const std::vector<RefWeights>& ws, const Vec& x, int64_t T,
                  int64_t N, const Vec& h0, const Vec& c0) {
  const int64_t D = spec.dirs, P = ws[0].h_out, H = ws[0].hidden;
  RefResult res{{},
                Vec(static_cast<size_t>(spec.layers * D * N * P)),
                Vec(static_cast<size_t>(spec.layers * D * N * H))};
  // seq[t][n]: the current layer's input vectors.
  std::vector<std::vector<Vec>> seq(T, std::vector<Vec>(N));
  const int64_t in0 = ws[0].in;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n)
      seq[t][n] = Vec(x.begin() + (t * N + n) * in0, x.begin() + (t * N + n + 1) * in0);
  for (int64_t l = 0; l < spec.layers; ++l) {
    std::vector<std::vector<Vec>> next(T, std::vector<Vec>(N, Vec(static_cast<size_t>(D * P))));
    for (int64_t d = 0; d < D; ++d) {
      const int64_t k = l * D + d;
      for (int64_t n = 0; n < N; ++n) {
        Vec h(h0.begin() + (k * N + n) * P, h0.begin() + (k * N + n + 1) * P);
        Vec c = c0.empty() ? Vec(H, 0.0)
                           : Vec(c0.begin() + (k * N + n) * H, c0.begin() + (k * N + n + 1) * H);
        for (int64_t i = 0; i < T; ++i) {
          const int64_t t = d == 1 ? T - 1 - i : i;
          ref_cell(spec.mode, ws[k], seq[t][n], h, c);
          std::copy(h.begin(), h.end(), next[t][n].begin() + d * P);
        }
        std::copy(h.begin(), h.end(), res.h.begin() + (k * N + n) * P);
        std::copy(c.begin(), c.end(), res.c.begin() + (k * N + n) * H);
      }
    }
    seq = next;
    if (spec.zero_between_layers && l + 1 < spec.layers)
      for (auto& row : seq)
        for (auto& v : row) std::fill(v.begin(), v.end(), 0.0);
  }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t n = 0; n < N; ++n)
      res.out.insert(res.out.end(), seq[t][n].begin(), seq[t][n].end());
  return res;
}

// The module's weights, read through named_parameters (not through the module's own code).
std::vector<RefWeights> ref_weights(const nn::RNNBase& m) {
  const int64_t D = m.num_directions(),
                P = m.options.proj_size > 0 ? m.options.proj_size : m.hidden_size;
  std::vector<RefWeights> out;
  for (int64_t l = 0; l < m.options.num_layers; ++l)
    for (int64_t d = 0; d < D; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      RefWeights w;
      w.in = l == 0 ? m.input_size : D * P;
      w.hidden = m.hidden_size;
      w.h_out = P;
      w.w_ih = vals(m.get_parameter("weight_ih" + sfx));
      w.w_hh = vals(m.get_parameter("weight_hh" + sfx));
      if (m.options.bias) {
        w.b_ih = vals(m.get_parameter("bias_ih" + sfx));
        w.b_hh = vals(m.get_parameter("bias_hh" + sfx));
      }
      if (m.options.proj_size > 0) w.w_hr = vals(m.get_parameter("weight_hr" + sfx));
      out.push_back(w);
    }
  return out;
}

RefSpec spec_of(const nn::RNNBase& m) { return {m.mode, m.options.num_layers, m.num_directions()}; }

template <class M>
std::shared_ptr<M> make64(int64_t in, int64_t hidden, nn::RNNOptions opt = {}) {
  manual_seed(7);
  auto m = std::make_shared<M>(in, hidden, opt);
  m->to(kFloat64);
  return m;
}

Tensor rand64(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat64, &g);
}

// ---- parameters -------------------------------------------------------------------------------

std::vector<std::pair<std::string, Shape>> name_shapes(const nn::Module& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (auto& [n, p] : m.named_parameters()) out.emplace_back(n, p.shape());
  return out;
}

TEST(NNRecurrent, LSTMParameterNamesAndShapesMatchPyTorch) {
  nn::LSTM lstm(3, 5, {.num_layers = 2, .bidirectional = true});
  const std::vector<std::pair<std::string, Shape>> want = {{"weight_ih_l0", {20, 3}},
                                                           {"weight_hh_l0", {20, 5}},
                                                           {"bias_ih_l0", {20}},
                                                           {"bias_hh_l0", {20}},
                                                           {"weight_ih_l0_reverse", {20, 3}},
                                                           {"weight_hh_l0_reverse", {20, 5}},
                                                           {"bias_ih_l0_reverse", {20}},
                                                           {"bias_hh_l0_reverse", {20}},
                                                           {"weight_ih_l1", {20, 10}},
                                                           {"weight_hh_l1", {20, 5}},
                                                           {"bias_ih_l1", {20}},
                                                           {"bias_hh_l1", {20}},
                                                           {"weight_ih_l1_reverse", {20, 10}},
                                                           {"weight_hh_l1_reverse", {20, 5}},
                                                           {"bias_ih_l1_reverse", {20}},
                                                           {"bias_hh_l1_reverse", {20}}};
  EXPECT_EQ(name_shapes(lstm), want);
  EXPECT_EQ(lstm.str(), "LSTM(3, 5, num_layers=2, bidirectional=true)");
}

TEST(NNRecurrent, GRUAndRNNParameterShapes) {
  nn::GRU gru(4, 6, {.bias = false});
  EXPECT_EQ(name_shapes(gru), (std::vector<std::pair<std::string, Shape>>{
                                  {"weight_ih_l0", {18, 4}}, {"weight_hh_l0", {18, 6}}}));
  nn::RNN rnn(2, 3, {.num_layers = 2, .nonlinearity = "relu"});
  EXPECT_EQ(name_shapes(rnn), (std::vector<std::pair<std::string, Shape>>{{"weight_ih_l0", {3, 2}},
                                                                          {"weight_hh_l0", {3, 3}},
                                                                          {"bias_ih_l0", {3}},
                                                                          {"bias_hh_l0", {3}},
                                                                          {"weight_ih_l1", {3, 3}},
                                                                          {"weight_hh_l1", {3, 3}},
                                                                          {"bias_ih_l1", {3}},
                                                                          {"bias_hh_l1", {3}}}));
  EXPECT_EQ(rnn.str(), "RNN(2, 3, num_layers=2, nonlinearity=relu)");
  EXPECT_EQ(gru.str(), "GRU(4, 6, bias=false)");
}

TEST(NNRecurrent, LSTMProjectionShapes) {
  nn::LSTM lstm(3, 6, {.num_layers = 2, .bidirectional = true, .proj_size = 2});
  const auto ns = name_shapes(lstm);
  ASSERT_EQ(ns.size(), 20u);
  EXPECT_EQ(ns[1], (std::pair<std::string, Shape>{"weight_hh_l0", {24, 2}}));
  EXPECT_EQ(ns[4], (std::pair<std::string, Shape>{"weight_hr_l0", {2, 6}}));
  EXPECT_EQ(ns[10], (std::pair<std::string, Shape>{"weight_ih_l1", {24, 4}}));
  EXPECT_EQ(lstm.all_weights().size(), 4u);
  EXPECT_EQ(lstm.all_weights()[3].size(), 5u);
  EXPECT_TRUE(lstm.all_weights()[3][4].is_same(lstm.get_parameter("weight_hr_l1_reverse")));
}

TEST(NNRecurrent, CellParameterShapes) {
  nn::LSTMCell lc(3, 4);
  EXPECT_EQ(
      name_shapes(lc),
      (std::vector<std::pair<std::string, Shape>>{
          {"weight_ih", {16, 3}}, {"weight_hh", {16, 4}}, {"bias_ih", {16}}, {"bias_hh", {16}}}));
  nn::GRUCell gc(3, 4, false);
  EXPECT_EQ(name_shapes(gc), (std::vector<std::pair<std::string, Shape>>{{"weight_ih", {12, 3}},
                                                                         {"weight_hh", {12, 4}}}));
  EXPECT_EQ(nn::RNNCell(2, 5, true, "relu").str(), "RNNCell(2, 5, nonlinearity=relu)");
}

TEST(NNRecurrent, DefaultInitIsUniformWithinOneOverSqrtHidden) {
  manual_seed(3);
  nn::LSTM lstm(40, 64);
  const double bound = 1.0 / 8.0;
  for (auto& [name, p] : lstm.named_parameters()) {
    const auto v = vals(p);
    double lo = 1, hi = -1, mean = 0;
    for (double e : v) lo = std::min(lo, e), hi = std::max(hi, e), mean += e;
    mean /= static_cast<double>(v.size());
    EXPECT_GE(lo, -bound) << name;
    EXPECT_LE(hi, bound) << name;
    EXPECT_LT(lo, -0.9 * bound) << name;  // fills the range: not a smaller or constant init
    EXPECT_GT(hi, 0.9 * bound) << name;
    EXPECT_NEAR(mean, 0.0, 0.03) << name;
  }
}

// ---- forward against the reference ------------------------------------------------------------

// Runs module m on x (T, N, in) time-major with the given state and compares every output.
void check_against_ref(nn::RNNBase& m, int64_t T, int64_t N, bool with_state, double tol = 1e-12) {
  const int64_t D = m.num_directions(), L = m.options.num_layers;
  const int64_t P = m.options.proj_size > 0 ? m.options.proj_size : m.hidden_size;
  const Tensor x = rand64({T, N, m.input_size}, 11);
  const Tensor h0 = with_state ? rand64({L * D, N, P}, 12) : zeros({L * D, N, P}, kFloat64);
  const Tensor c0 = with_state ? rand64({L * D, N, m.hidden_size}, 13)
                               : zeros({L * D, N, m.hidden_size}, kFloat64);
  const bool lstm = m.mode == nn::RNNMode::LSTM;
  const RefResult ref =
      ref_rnn(spec_of(m), ref_weights(m), vals(x), T, N, vals(h0), lstm ? vals(c0) : Vec{});
  const Tensor xin = m.options.batch_first ? x.transpose(0, 1).contiguous() : x;
  Tensor out, h, c;
  if (lstm) {
    auto [o, s] =
        (*dynamic_cast<nn::LSTM*>(&m))(xin, with_state ? nn::LSTMState{h0, c0} : nn::LSTMState{});
    out = o, h = s.h, c = s.c;
  } else if (m.mode == nn::RNNMode::GRU) {
    std::tie(out, h) = (*dynamic_cast<nn::GRU*>(&m))(xin, with_state ? h0 : Tensor());
  } else {
    std::tie(out, h) = (*dynamic_cast<nn::RNN*>(&m))(xin, with_state ? h0 : Tensor());
  }
  if (m.options.batch_first) {
    EXPECT_EQ(out.shape(), (Shape{N, T, D * P}));
    out = out.transpose(0, 1);
  }
  ASSERT_EQ(out.shape(), (Shape{T, N, D * P}));
  ASSERT_EQ(h.shape(), (Shape{L * D, N, P}));
  expect_close(out, ref.out, tol, "output");
  expect_close(h, ref.h, tol, "h_n");
  if (lstm) expect_close(c, ref.c, tol, "c_n");
}

TEST(NNRecurrent, RNNTanhMatchesReference) {
  auto m = make64<nn::RNN>(3, 4, {.num_layers = 2, .bidirectional = true});
  check_against_ref(*m, 5, 2, true);
  check_against_ref(*m, 5, 2, false);
}

TEST(NNRecurrent, RNNReLUMatchesReference) {
  auto m = make64<nn::RNN>(3, 4, {.num_layers = 3, .nonlinearity = "relu"});
  check_against_ref(*m, 4, 3, true);
}

TEST(NNRecurrent, LSTMMatchesReference) {
  auto m = make64<nn::LSTM>(3, 4, {.num_layers = 2, .bidirectional = true});
  check_against_ref(*m, 5, 2, true);
  check_against_ref(*m, 1, 1, false);
}

TEST(NNRecurrent, LSTMLongSequenceMatchesReference) {
  // 37 steps cross several levels of the step-splitting tree, with odd halves.
  auto m = make64<nn::LSTM>(2, 3, {.bidirectional = true});
  check_against_ref(*m, 37, 2, true);
}

TEST(NNRecurrent, LSTMProjectionMatchesReference) {
  auto m = make64<nn::LSTM>(3, 5, {.num_layers = 2, .bidirectional = true, .proj_size = 2});
  check_against_ref(*m, 4, 2, true);
}

TEST(NNRecurrent, GRUMatchesReference) {
  auto m = make64<nn::GRU>(3, 4, {.num_layers = 2, .bidirectional = true});
  check_against_ref(*m, 6, 3, true);
}

TEST(NNRecurrent, NoBiasMatchesReference) {
  for (auto mode : {0, 1, 2}) {
    nn::RNNOptions opt{.num_layers = 2, .bias = false};
    std::shared_ptr<nn::RNNBase> m;
    if (mode == 0) m = make64<nn::RNN>(3, 4, opt);
    if (mode == 1) m = make64<nn::LSTM>(3, 4, opt);
    if (mode == 2) m = make64<nn::GRU>(3, 4, opt);
    check_against_ref(*m, 3, 2, true);
  }
}

TEST(NNRecurrent, BatchFirstMatchesReference) {
  auto lstm = make64<nn::LSTM>(3, 4, {.num_layers = 2, .batch_first = true, .bidirectional = true});
  check_against_ref(*lstm, 4, 3, true);
  auto gru = make64<nn::GRU>(3, 4, {.batch_first = true});
  check_against_ref(*gru, 4, 3, false);
}

TEST(NNRecurrent, UnbatchedInputMatchesBatchOfOne) {
  auto m = make64<nn::GRU>(3, 4, {.num_layers = 2, .bidirectional = true});
  const Tensor x = rand64({5, 3}, 1), h0 = rand64({4, 4}, 2);
  auto [out, h] = (*m)(x, h0);
  auto [out1, h1] = (*m)(x.unsqueeze(1), h0.unsqueeze(1));
  ASSERT_EQ(out.shape(), (Shape{5, 8}));
  ASSERT_EQ(h.shape(), (Shape{4, 4}));
  expect_close(out, out1.squeeze(1), 1e-14);
  expect_close(h, h1.squeeze(1), 1e-14);
  // batch_first doesn't change the unbatched layout (T, in).
  auto lstm = make64<nn::LSTM>(3, 4, {.batch_first = true});
  auto [o2, s2] = (*lstm)(x);
  auto [o3, s3] = (*lstm)(x.unsqueeze(0));
  expect_close(o2, o3.squeeze(0), 1e-14);
  expect_close(s2.c, s3.c.squeeze(1), 1e-14);
}

TEST(NNRecurrent, OneArgumentForwardReturnsTheOutput) {
  auto m = make64<nn::LSTM>(3, 4);
  const Tensor x = rand64({4, 2, 3}, 1);
  expect_close(m->forward(x), (*m)(x).first, 0.0);
  nn::Sequential seq(std::static_pointer_cast<nn::Module>(m));
  EXPECT_EQ(seq.forward(x).shape(), (Shape{4, 2, 4}));
}

TEST(NNRecurrent, FloatInputWorks) {
  manual_seed(1);
  nn::LSTM lstm(3, 4, {.num_layers = 2});
  auto [out, s] = lstm(randn({6, 2, 3}));
  EXPECT_EQ(out.dtype(), kFloat32);
  EXPECT_EQ(s.h.shape(), (Shape{2, 2, 4}));
}

// ---- dropout between layers -------------------------------------------------------------------

TEST(NNRecurrent, DropoutActsBetweenLayersOnlyWhileTraining) {
  auto m = make64<nn::GRU>(3, 4, {.num_layers = 2, .dropout = 1.0});
  const Tensor x = rand64({4, 2, 3}, 1), h0 = rand64({2, 2, 4}, 2);
  RefSpec spec = spec_of(*m);
  const RefResult plain = ref_rnn(spec, ref_weights(*m), vals(x), 4, 2, vals(h0), {});
  spec.zero_between_layers = true;
  const RefResult dropped = ref_rnn(spec, ref_weights(*m), vals(x), 4, 2, vals(h0), {});
  auto [out_train, h_train] = (*m)(x, h0);
  expect_close(out_train, dropped.out, 1e-12, "training");
  expect_close(h_train, dropped.h, 1e-12, "training h_n");  // layer 0's h_n is untouched
  m->eval();
  auto [out_eval, h_eval] = (*m)(x, h0);
  expect_close(out_eval, plain.out, 1e-12, "eval");
}

TEST(NNRecurrent, PartialDropoutScalesKeptValues) {
  // With p = 0.5 some of layer 1's inputs are zero and the rest doubled: the output differs
  // from eval's, and a second draw differs from the first.
  auto m = make64<nn::RNN>(3, 8, {.num_layers = 2, .dropout = 0.5});
  const Tensor x = rand64({3, 2, 3}, 1);
  manual_seed(5);
  const Tensor a = m->forward(x), b = m->forward(x);
  m->eval();
  const Tensor e = m->forward(x);
  EXPECT_GT(amax(abs(a - e)).item<double>(), 1e-3);
  EXPECT_GT(amax(abs(a - b)).item<double>(), 1e-3);
}

// ---- cells ------------------------------------------------------------------------------------

RefWeights cell_weights(const nn::RNNCellBase& c) {
  RefWeights w;
  w.in = c.input_size, w.hidden = c.hidden_size, w.h_out = c.hidden_size;
  w.w_ih = vals(c.weight_ih), w.w_hh = vals(c.weight_hh);
  if (c.bias_ih.defined()) w.b_ih = vals(c.bias_ih), w.b_hh = vals(c.bias_hh);
  return w;
}

// Row n of an (N, k) host matrix.
Vec row(const Vec& m, int64_t n, int64_t k) {
  return Vec(m.begin() + n * k, m.begin() + (n + 1) * k);
}

template <class Cell>
void check_cell(Cell& cell, nn::RNNMode mode) {
  cell.to(kFloat64);
  const int64_t N = 3, H = cell.hidden_size;
  const Tensor x = rand64({N, cell.input_size}, 1), h = rand64({N, H}, 2), c = rand64({N, H}, 3);
  Vec want_h, want_c;
  for (int64_t n = 0; n < N; ++n) {
    Vec hn = row(vals(h), n, H), cn = row(vals(c), n, H);
    ref_cell(mode, cell_weights(cell), row(vals(x), n, cell.input_size), hn, cn);
    want_h.insert(want_h.end(), hn.begin(), hn.end());
    want_c.insert(want_c.end(), cn.begin(), cn.end());
  }
  if constexpr (std::is_same_v<Cell, nn::LSTMCell>) {
    const nn::LSTMState s = cell(x, {h, c});
    expect_close(s.h, want_h, 1e-12, "h'");
    expect_close(s.c, want_c, 1e-12, "c'");
    const nn::LSTMState u = cell(x[1], {h[1], c[1]});  // unbatched
    expect_close(u.h, row(want_h, 1, H), 1e-12, "unbatched h'");
  } else {
    expect_close(cell(x, h), want_h, 1e-12, "h'");
    expect_close(cell(x[2], h[2]), row(want_h, 2, H), 1e-12, "unbatched h'");
    // The default state is zeros.
    expect_close(cell(x), cell(x, zeros({N, H}, kFloat64)), 0.0);
  }
}

TEST(NNRecurrent, CellsMatchReference) {
  manual_seed(4);
  nn::RNNCell tanh_cell(3, 4);
  check_cell(tanh_cell, nn::RNNMode::RNNTanh);
  nn::RNNCell relu_cell(3, 4, true, "relu");
  check_cell(relu_cell, nn::RNNMode::RNNReLU);
  nn::LSTMCell lstm_cell(3, 4);
  check_cell(lstm_cell, nn::RNNMode::LSTM);
  nn::GRUCell gru_cell(3, 4);
  check_cell(gru_cell, nn::RNNMode::GRU);
  nn::GRUCell gru_nobias(3, 4, false);
  check_cell(gru_nobias, nn::RNNMode::GRU);
}

TEST(NNRecurrent, SequenceLayerEqualsItsCellUnrolled) {
  // An LSTM with a cell's weights gives the cell's states at every step.
  manual_seed(9);
  auto lstm = make64<nn::LSTM>(3, 4);
  nn::LSTMCell cell(3, 4);
  cell.to(kFloat64);
  cell.load_state_dict({{"weight_ih", lstm->get_parameter("weight_ih_l0")},
                        {"weight_hh", lstm->get_parameter("weight_hh_l0")},
                        {"bias_ih", lstm->get_parameter("bias_ih_l0")},
                        {"bias_hh", lstm->get_parameter("bias_hh_l0")}});
  const Tensor x = rand64({5, 2, 3}, 1);
  auto [out, fin] = (*lstm)(x);
  nn::LSTMState s;
  for (int64_t t = 0; t < 5; ++t) {
    s = cell(x[t], s);
    expect_close(out[t], s.h, 1e-13);
  }
  expect_close(fin.c[0], s.c, 1e-13);
}

// ---- gradients --------------------------------------------------------------------------------

TEST(NNRecurrent, LSTMGradientsMatchFiniteDifferences) {
  auto m = make64<nn::LSTM>(2, 3, {.num_layers = 2, .bidirectional = true});
  const Tensor x = rand64({3, 2, 2}, 1), h0 = rand64({4, 2, 3}, 2), c0 = rand64({4, 2, 3}, 3);
  const Tensor r = rand64({3, 2, 6}, 4), rh = rand64({4, 2, 3}, 5), rc = rand64({4, 2, 3}, 6);
  auto f = [&](const std::vector<Tensor>& in) {
    auto [out, s] = (*m)(in[0], {in[1], in[2]});
    return cat({(out * r).reshape({-1}), (s.h * rh).reshape({-1}), (s.c * rc).reshape({-1})});
  };
  gradcheck(f, {x, h0, c0});
  check_param_grads(*m, [&] { return f({x, h0, c0}).sum(); });
}

TEST(NNRecurrent, GRUGradientsMatchFiniteDifferences) {
  auto m = make64<nn::GRU>(2, 3, {.num_layers = 2, .batch_first = true, .bidirectional = true});
  const Tensor x = rand64({2, 4, 2}, 1), h0 = rand64({4, 2, 3}, 2);
  const Tensor r = rand64({2, 4, 6}, 4), rh = rand64({4, 2, 3}, 5);
  auto f = [&](const std::vector<Tensor>& in) {
    auto [out, h] = (*m)(in[0], in[1]);
    return cat({(out * r).reshape({-1}), (h * rh).reshape({-1})});
  };
  gradcheck(f, {x, h0});
  check_param_grads(*m, [&] { return f({x, h0}).sum(); });
}

TEST(NNRecurrent, RNNAndProjectedLSTMGradientsMatchFiniteDifferences) {
  auto rnn = make64<nn::RNN>(2, 3, {.num_layers = 2});
  const Tensor x = rand64({3, 2, 2}, 1), r = rand64({3, 2, 3}, 2);
  check_param_grads(*rnn, [&] { return ((*rnn)(x).first * r).sum(); });
  gradcheck([&](const std::vector<Tensor>& in) { return (*rnn)(in[0]).first; }, {x});
  auto lstm = make64<nn::LSTM>(2, 3, {.proj_size = 2});
  const Tensor rp = rand64({3, 2, 2}, 3);
  check_param_grads(*lstm, [&] { return ((*lstm)(x).first * rp).sum(); });
}

TEST(NNRecurrent, LongSequenceGradientMatchesFiniteDifferences) {
  // 20 steps go through the step-splitting tree; the gradient reaches the first input.
  auto m = make64<nn::GRU>(1, 2);
  const Tensor x = rand64({20, 1, 1}, 1);
  gradcheck([&](const std::vector<Tensor>& in) { return (*m)(in[0]).second; }, {x});
}

TEST(NNRecurrent, CellGradientsMatchFiniteDifferences) {
  manual_seed(2);
  nn::GRUCell cell(2, 3);
  cell.to(kFloat64);
  const Tensor x = rand64({2, 2}, 1), h = rand64({2, 3}, 2);
  gradcheck([&](const std::vector<Tensor>& in) { return cell(in[0], in[1]); }, {x, h});
  nn::LSTMCell lc(2, 3);
  lc.to(kFloat64);
  const Tensor c = rand64({2, 3}, 3), r = rand64({2, 3}, 4);
  check_param_grads(lc, [&] {
    const auto s = lc(x, {h, c});
    return (s.h * r + s.c).sum();
  });
}

// ---- errors -----------------------------------------------------------------------------------

TEST(NNRecurrent, BadShapesRaiseShapeError) {
  nn::LSTM lstm(3, 4, {.num_layers = 2});
  expect_error<ShapeError>([&] { lstm(zeros({5, 2, 7})); }, {"[LSTM]", "(T, N, 3)", "(5, 2, 7)"});
  expect_error<ShapeError>([&] { lstm(zeros({5})); }, {"[LSTM]", "(5,)"});
  expect_error<ShapeError>([&] { lstm(zeros({0, 2, 3})); }, {"[LSTM]", "non-empty"});
  expect_error<ShapeError>(
      [&] {
        lstm(zeros({5, 2, 3}), {zeros({1, 2, 4}), zeros({2, 2, 4})});
      },
      {"[LSTM]", "h0", "(2, 2, 4)", "(1, 2, 4)"});
  expect_error<ShapeError>(
      [&] {
        lstm(zeros({5, 2, 3}), {zeros({2, 2, 4}), zeros({2, 3, 4})});
      },
      {"[LSTM]", "c0", "(2, 2, 4)", "(2, 3, 4)"});
  expect_error<ValueError>(
      [&] {
        lstm(zeros({5, 2, 3}), {zeros({2, 2, 4}), Tensor()});
      },
      {"[LSTM]", "h0", "c0"});
  nn::GRU gru(3, 4, {.batch_first = true, .bidirectional = true});
  expect_error<ShapeError>(
      [&] {
        gru(zeros({2, 5, 3}), zeros({2, 5, 4}));
      },
      {"[GRU]", "h0", "(2, 2, 4)", "(2, 5, 4)"});
  expect_error<ShapeError>([&] { gru(zeros({2, 5, 4})); }, {"[GRU]", "(N, T, 3)"});
  expect_error<ShapeError>(
      [&] {
        gru(zeros({5, 3}), zeros({2, 1, 4}));
      },
      {"[GRU]", "h0", "(2, 4)", "(2, 1, 4)"});
  nn::RNNCell cell(3, 4);
  expect_error<ShapeError>([&] { cell(zeros({2, 4})); }, {"[RNNCell]", "(N, 3)", "(2, 4)"});
  expect_error<ShapeError>(
      [&] {
        cell(zeros({2, 3}), zeros({3, 4}));
      },
      {"[RNNCell]", "h", "(2, 4)", "(3, 4)"});
  nn::LSTMCell lcell(3, 4);
  expect_error<ValueError>(
      [&] {
        lcell(zeros({2, 3}), {Tensor(), zeros({2, 4})});
      },
      {"[LSTMCell]"});
}

TEST(NNRecurrent, BadOptionsRaiseValueError) {
  expect_error<ValueError>([] { nn::RNN(3, 4, {.nonlinearity = "sigmoid"}); },
                           {"[RNN]", "sigmoid"});
  expect_error<ValueError>([] { nn::GRU(3, 4, {.nonlinearity = "relu"}); }, {"[GRU]", "RNN only"});
  expect_error<ValueError>([] { nn::GRU(3, 4, {.proj_size = 2}); }, {"[GRU]", "proj_size"});
  expect_error<ValueError>([] { nn::LSTM(3, 4, {.proj_size = 4}); }, {"[LSTM]", "proj_size"});
  expect_error<ValueError>([] { nn::LSTM(3, 0); }, {"[LSTM]", "hidden_size"});
  expect_error<ValueError>([] { nn::LSTM(3, 4, {.num_layers = 0}); }, {"[LSTM]", "num_layers"});
  expect_error<ValueError>([] { nn::LSTM(3, 4, {.dropout = 1.5}); }, {"[LSTM]", "dropout"});
}

TEST(NNRecurrent, StateDictRoundTrips) {
  auto a = make64<nn::LSTM>(3, 4, {.bidirectional = true});
  manual_seed(99);
  nn::LSTM b(3, 4, {.bidirectional = true});
  b.to(kFloat64);
  b.load_state_dict(a->state_dict());
  const Tensor x = rand64({3, 2, 3}, 1);
  expect_close(b.forward(x), a->forward(x), 0.0);
}

}  // namespace
}  // namespace tessera
