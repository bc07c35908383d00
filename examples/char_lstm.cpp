// A character-level language model: an embedding, an LSTM and a linear head learn to predict
// the next character of a short text, then write some text of their own.
//
//   char_lstm [--steps N] [--text path/to/file.txt]
//
// The PASS thresholds are set for the built-in text below; a longer text needs more steps.
#include <tessera/tessera.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

using namespace tessera;
namespace F = nn::functional;

const char* kText =
    "A tensor is a box of numbers with a shape. You can add two boxes, multiply them, or fold "
    "one along an axis, and every step leaves a note behind. When the work is done, the notes "
    "are read backwards, and each number learns how much it moved the result. That is all a "
    "gradient is: a note read backwards. A model is a stack of such steps with a few numbers "
    "left free. We show it an example, measure how wrong it was, read the notes backwards, and "
    "nudge every free number a little in the direction that makes it less wrong. Then we show "
    "it another example. After a few thousand nudges the model is less wrong on examples it "
    "has never seen, and that is the whole trick. The box of numbers does not know what a "
    "letter is, or a word, or a digit. It only knows that some numbers follow others more "
    "often than not, and it learns to guess the next one a little better each time.\n";

struct CharModel : nn::Module {
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> head;
  CharModel(int64_t vocab, int64_t hidden) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, 32));
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(32, hidden));
    head = register_module("head", std::make_shared<nn::Linear>(hidden, vocab));
  }
  // tokens (T, N) -> logits (T, N, vocab), and the LSTM state after the last step.
  std::pair<Tensor, nn::LSTMState> forward(const Tensor& tokens, const nn::LSTMState& state) {
    auto [out, next] = (*lstm)((*embed)(tokens), state);
    return {(*head)(out), next};
  }
  using nn::Module::forward;
};

int main(int argc, char** argv) {
  int64_t steps = 500;
  std::string text = kText;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--steps") steps = std::stoll(argv[i + 1]);
    if (arg == "--text") text = (std::stringstream() << std::ifstream(argv[i + 1]).rdbuf()).str();
  }
  if (text.size() < 64) {
    std::fprintf(stderr, "char_lstm: the text must have at least 64 characters\n");
    return 1;
  }
  manual_seed(0);

  // The vocabulary: the distinct bytes of the text, each mapped to its index.
  std::string vocab;
  for (char c : text)
    if (vocab.find(c) == std::string::npos) vocab += c;
  auto encode = [&](const std::string& s) {
    std::vector<int64_t> ids;
    for (char c : s) ids.push_back(static_cast<int64_t>(vocab.find(c)));
    return tensor(ids);
  };
  Tensor data = encode(text);
  const auto V = static_cast<int64_t>(vocab.size()), L = data.numel();

  auto model = std::make_shared<CharModel>(V, 128);
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-2, .weight_decay = 0});
  optim::CosineAnnealingLR schedule(optimizer, /*T_max=*/steps);
  const int64_t T = 32, N = 16;  // windows of T + 1 characters, N at a time
  std::printf("%lld characters, %lld distinct; uniform guessing costs %.3f nats/char\n",
              static_cast<long long>(L), static_cast<long long>(V), std::log(double(V)));

  for (int64_t step = 1; step <= steps; ++step) {
    Tensor starts = randint(0, L - T - 1, {1, N});
    Tensor window = index_select(data, 0, (arange(T + 1, kInt64).unsqueeze(1) + starts).flatten());
    window = window.reshape({T + 1, N});
    auto [logits, state] = model->forward(window.slice(0, 0, T), {});
    Tensor loss = F::cross_entropy(logits.reshape({T * N, V}), window.slice(0, 1, T + 1).flatten());
    optimizer.zero_grad();
    loss.backward();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    schedule.step();
    if (step % 250 == 0 || step == steps)
      std::printf("step %4lld  loss %.3f\n", static_cast<long long>(step), loss.item<double>());
  }

  // The loss over the whole text, predicting each character from all the ones before it.
  autograd::NoGradGuard no_grad;
  auto [logits, state] = model->forward(data.slice(0, 0, L - 1).unsqueeze(1), {});
  const double text_loss =
      F::cross_entropy(logits.reshape({L - 1, V}), data.slice(0, 1, L)).item<double>();

  // Sampling: feed a prompt, then draw each next character from softmax(logits / 0.7).
  std::string out = text.substr(0, 4);
  nn::LSTMState s;
  Tensor next = encode(out);
  for (int k = 0; k < 200; ++k) {
    std::tie(logits, s) = model->forward(next.unsqueeze(1), s);
    std::vector<float> p = softmax(logits.select(0, -1).flatten() / 0.7, 0).to_vector<float>();
    double u = rand({}).item<double>();
    int64_t c = 0;
    while (c + 1 < V && (u -= p[static_cast<size_t>(c)]) > 0) ++c;
    out += vocab[static_cast<size_t>(c)];
    next = full({1}, c, kInt64);
  }
  std::printf("sample: %s\n", out.c_str());

  // The text is short, so the model ends up reciting it: uniform guessing costs ln(V), about
  // 3.5 nats; 60 steps reach about 1.4, 150 steps about 0.25, 500 steps under 0.1.
  const double needed = std::log(double(V)) * (steps >= 300   ? 0.1
                                               : steps >= 100 ? 0.3
                                               : steps >= 30  ? 0.75
                                                              : 0.95);
  std::printf("loss over the text %.3f nats/char (needed < %.3f)\n", text_loss, needed);
  if (text_loss >= needed) {
    std::printf("FAIL: loss over the text is not below %.3f\n", needed);
    return 1;
  }
  std::printf("PASS: loss over the text %.3f nats/char\n", text_loss);
}
