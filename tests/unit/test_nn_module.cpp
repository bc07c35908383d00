// nn::Module and the containers: registration, traversal, modes, conversion, state dicts,
// printing.
#include <sstream>

#include "test_nn_util.h"

namespace tessera {
namespace {
using nn_test::expect_close;
using nn_test::expect_error;

// A small encoder shaped like a transformer's, to test dotted names at depth.
struct Block : nn::Module {
  std::shared_ptr<nn::Linear> linear1, linear2;
  Block() {
    linear1 = register_module("linear1", std::make_shared<nn::Linear>(4, 8));
    linear2 = register_module("linear2", std::make_shared<nn::Linear>(8, 4));
  }
  Tensor forward(const Tensor& x) override { return (*linear2)(relu((*linear1)(x))); }
};
struct Encoder : nn::Module {
  std::shared_ptr<nn::ModuleList> layers;
  Tensor scale;
  Encoder() {
    layers = register_module("layers", std::make_shared<nn::ModuleList>());
    layers->push_back(std::make_shared<Block>());
    layers->push_back(std::make_shared<Block>());
    scale = register_parameter("scale", ones({1}));
    register_buffer("step", zeros({}, kInt64));
    register_buffer("cache", zeros({2}), /*persistent=*/false);
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& [name, m] : *layers) y = m->forward(y);
    return y * scale;
  }
};
struct Model : nn::Module {
  std::shared_ptr<Encoder> encoder;
  Model() { encoder = register_module("encoder", std::make_shared<Encoder>()); }
  Tensor forward(const Tensor& x) override { return encoder->forward(x); }
};

std::vector<std::string> names(const nn::Named<Tensor>& v) {
  std::vector<std::string> out;
  for (auto& e : v) out.push_back(e.first);
  return out;
}

TEST(NNModule, RegistersParametersAsLeavesRequiringGrad) {
  nn::Module m;
  Tensor w = m.register_parameter("w", zeros({2}));
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(m.parameters()[0].is_same(w));
  Tensor frozen = m.register_parameter("frozen", ones({2}), /*requires_grad=*/false);
  EXPECT_FALSE(frozen.requires_grad());
  // A computed tensor is detached into a leaf.
  Tensor a = ones({2}).requires_grad_();
  Tensor p = m.register_parameter("p", a * 2.0);
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
  EXPECT_EQ(names(m.named_parameters()), (std::vector<std::string>{"w", "frozen", "p"}));
}

TEST(NNModule, RejectsBadNamesAndClashes) {
  nn::Module m;
  m.register_parameter("w", zeros({1}));
  expect_error<ValueError>([&] { m.register_buffer("w", zeros({1})); },
                           {"[register_buffer]", "\"w\"", "parameter"});
  expect_error<ValueError>([&] { m.register_parameter("a.b", zeros({1})); },
                           {"[register_parameter]", "a.b"});
  expect_error<ValueError>([&] { m.register_module("", std::make_shared<nn::ReLU>()); },
                           {"[register_module]"});
  expect_error<ValueError>([&] { m.register_module<nn::ReLU>("r", nullptr); },
                           {"[register_module]", "null"});
  // Registering again under the same name replaces.
  Tensor w2 = m.register_parameter("w", ones({3}));
  ASSERT_EQ(m.parameters().size(), 1u);
  EXPECT_TRUE(m.parameters()[0].is_same(w2));
}

TEST(NNModule, DottedNamesAtDepth) {
  auto model = std::make_shared<Model>();
  const auto pn = names(model->named_parameters());
  const std::vector<std::string> want = {"encoder.scale",
                                         "encoder.layers.0.linear1.weight",
                                         "encoder.layers.0.linear1.bias",
                                         "encoder.layers.0.linear2.weight",
                                         "encoder.layers.0.linear2.bias",
                                         "encoder.layers.1.linear1.weight",
                                         "encoder.layers.1.linear1.bias",
                                         "encoder.layers.1.linear2.weight",
                                         "encoder.layers.1.linear2.bias"};
  EXPECT_EQ(pn, want);
  EXPECT_EQ(model->parameters().size(), 9u);
  EXPECT_TRUE(model->parameters(/*recurse=*/false).empty());
  EXPECT_EQ(names(model->named_buffers()),
            (std::vector<std::string>{"encoder.step", "encoder.cache"}));
  EXPECT_EQ(model->children().size(), 1u);
  EXPECT_EQ(model->named_children()[0].first, "encoder");
  std::vector<std::string> mods;
  for (auto& [n, m] : model->named_modules()) mods.push_back(n);
  EXPECT_EQ(mods, (std::vector<std::string>{"", "encoder", "encoder.layers", "encoder.layers.0",
                                            "encoder.layers.0.linear1", "encoder.layers.0.linear2",
                                            "encoder.layers.1", "encoder.layers.1.linear1",
                                            "encoder.layers.1.linear2"}));
  EXPECT_EQ(model->modules().size(), 9u);
  EXPECT_TRUE(model->get_parameter("encoder.layers.1.linear1.bias")
                  .is_same(model->encoder->layers->at<Block>(1)->linear1->bias));
  EXPECT_EQ(model->get_submodule("encoder.layers.0")->type_name(), "Block");
  expect_error<ValueError>([&] { model->get_submodule("encoder.nope"); },
                           {"[get_submodule]", "nope"});
}

TEST(NNModule, TiedParametersAppearOnce) {
  auto a = std::make_shared<nn::Linear>(3, 3);
  nn::Module m;
  m.register_module("a", a);
  m.register_parameter("tied", a->weight);
  EXPECT_EQ(m.parameters().size(), 2u);  // a.weight (= tied) and a.bias
  EXPECT_EQ(m.state_dict().size(), 3u);  // the state dict keeps both names
}

TEST(NNModule, ModulesNeedSharedOwnership) {
  Model stack_model;
  expect_error<ValueError>([&] { stack_model.modules(); }, {"shared_ptr"});
}

TEST(NNModule, ApplyVisitsChildrenFirstThenSelf) {
  auto model = std::make_shared<Model>();
  std::vector<std::string> order;
  model->apply([&](nn::Module& m) { order.push_back(m.type_name()); });
  ASSERT_EQ(order.size(), 9u);
  EXPECT_EQ(order.front(), "Linear");
  EXPECT_EQ(order.back(), "Model");
  // A typical use: re-initialize every Linear.
  model->apply([](nn::Module& m) {
    if (auto* l = dynamic_cast<nn::Linear*>(&m)) nn::init::zeros_(l->weight);
  });
  EXPECT_EQ(model->encoder->layers->at<Block>(0)->linear2->weight.abs().sum().item<double>(), 0);
}

TEST(NNModule, TrainEvalRecurse) {
  auto model = std::make_shared<Model>();
  EXPECT_TRUE(model->is_training());
  model->eval();
  for (auto& m : model->modules()) EXPECT_FALSE(m->is_training());
  model->train();
  for (auto& m : model->modules()) EXPECT_TRUE(m->is_training());
}

TEST(NNModule, ToDtypeKeepsHandlesAndConvertsGrads) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  Tensor w = lin->weight;
  const auto before = nn_test::vals(w);
  (*lin)(ones({1, 3})).sum().backward();
  ASSERT_TRUE(w.grad().defined());
  lin->to(kFloat64);
  EXPECT_EQ(w.dtype(), kFloat64);  // the handle held outside sees the conversion
  EXPECT_TRUE(lin->named_parameters()[0].second.is_same(w));
  EXPECT_EQ(w.grad().dtype(), kFloat64);
  EXPECT_TRUE(w.requires_grad());
  expect_close(w, before, 1e-7);
  Tensor y = (*lin)(ones({1, 3}, kFloat64));
  EXPECT_EQ(y.dtype(), kFloat64);
  // Integer buffers stay integers.
  auto bn = std::make_shared<nn::BatchNorm1d>(2);
  bn->to(kFloat64);
  EXPECT_EQ(bn->running_mean.dtype(), kFloat64);
  EXPECT_EQ(bn->num_batches_tracked.dtype(), kInt64);
  expect_error<DTypeError>([&] { lin->to(kInt32); }, {"[Module.to]"});
}

TEST(NNModule, ToCudaRaisesWithoutAGpu) {
  if (cuda::is_available()) GTEST_SKIP() << "a GPU is present";
  auto lin = std::make_shared<nn::Linear>(3, 2);
  lin->to(Device::cpu());  // a no-op
  if (cuda::is_built()) {
    EXPECT_THROW(lin->to(Device::cuda()), DeviceError);  // "[cuda] no CUDA device ..."
  } else {
    EXPECT_THROW(lin->to(Device::cuda()), NotBuiltError);
  }
}

TEST(NNModule, ZeroGradMakesGradsUndefined) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  (*lin)(ones({4, 3})).sum().backward();
  EXPECT_TRUE(lin->weight.grad().defined());
  lin->zero_grad();
  EXPECT_FALSE(lin->weight.grad().defined());
  EXPECT_FALSE(lin->bias.grad().defined());
}

TEST(NNModule, StateDictRoundTrip) {
  manual_seed(1);
  auto a = std::make_shared<Model>();
  auto b = std::make_shared<Model>();
  const StateDict sd = a->state_dict();
  // Parameters and persistent buffers only; "cache" is not persistent.
  EXPECT_EQ(sd.size(), 9u + 1u);
  EXPECT_TRUE(sd.count("encoder.step"));
  EXPECT_FALSE(sd.count("encoder.cache"));
  EXPECT_FALSE(sd.at("encoder.scale").requires_grad());
  Tensor held = b->encoder->layers->at<Block>(1)->linear1->weight;
  const auto report = b->load_state_dict(sd);
  EXPECT_TRUE(report.missing_keys.empty());
  EXPECT_TRUE(report.unexpected_keys.empty());
  for (auto& [k, v] : sd) expect_close(b->state_dict().at(k), v, 0, k);
  expect_close(held, sd.at("encoder.layers.1.linear1.weight"), 0);  // loaded in place
  Tensor x = randn({2, 4});
  expect_close((*b)(x), (*a)(x), 0);
}

TEST(NNModule, LoadStateDictStrictAndNonStrict) {
  auto m = std::make_shared<nn::Linear>(3, 2);
  StateDict sd = m->state_dict();
  sd.erase("bias");
  sd["extra"] = zeros({1});
  expect_error<ValueError>(
      [&] { m->load_state_dict(sd); },
      {"[load_state_dict]", "missing keys: \"bias\"", "unexpected keys: \"extra\""});
  StateDict fresh;
  fresh["weight"] = full({2, 3}, 7.0);
  fresh["extra"] = zeros({1});
  const auto report = m->load_state_dict(fresh, /*strict=*/false);
  EXPECT_EQ(report.missing_keys, (std::vector<std::string>{"bias"}));
  EXPECT_EQ(report.unexpected_keys, (std::vector<std::string>{"extra"}));
  expect_close(m->weight, std::vector<double>(6, 7.0), 0);
  // Shape mismatches raise even when not strict, and nothing is loaded.
  StateDict bad;
  bad["weight"] = zeros({3, 3});
  bad["bias"] = zeros({2});
  expect_error<ValueError>([&] { m->load_state_dict(bad, false); },
                           {"size mismatch for \"weight\"", "expected (2, 3), got (3, 3)"});
  expect_close(m->weight, std::vector<double>(6, 7.0), 0);
  // Values convert to the parameter's dtype.
  StateDict f64 = m->state_dict();
  f64["weight"] = full({2, 3}, 0.5, kFloat64);
  m->load_state_dict(f64);
  EXPECT_EQ(m->weight.dtype(), kFloat32);
  expect_close(m->weight, std::vector<double>(6, 0.5), 0);
}

TEST(NNModule, PrintsTheTree) {
  auto seq = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 2),
                                              std::make_shared<nn::ReLU>(),
                                              std::make_shared<nn::Dropout>(0.25));
  EXPECT_EQ(seq->at<nn::Linear>(0)->str(), "Linear(in_features=4, out_features=2, bias=true)");
  EXPECT_EQ(seq->str(),
            "Sequential(\n"
            "  (0): Linear(in_features=4, out_features=2, bias=true)\n"
            "  (1): ReLU()\n"
            "  (2): Dropout(p=0.25)\n"
            ")");
  auto model = std::make_shared<Model>();
  std::ostringstream os;
  os << *model;
  EXPECT_EQ(os.str(),
            "Model(\n"
            "  (encoder): Encoder(\n"
            "    (layers): ModuleList(\n"
            "      (0): Block(\n"
            "        (linear1): Linear(in_features=4, out_features=8, bias=true)\n"
            "        (linear2): Linear(in_features=8, out_features=4, bias=true)\n"
            "      )\n"
            "      (1): Block(\n"
            "        (linear1): Linear(in_features=4, out_features=8, bias=true)\n"
            "        (linear2): Linear(in_features=8, out_features=4, bias=true)\n"
            "      )\n"
            "    )\n"
            "  )\n"
            ")");
}

TEST(NNModule, DefaultForwardRaisesNotImplemented) {
  nn::Module m;
  expect_error<NotImplementedError>([&] { m(ones({1})); }, {"[Module]", "forward"});
  auto bil = std::make_shared<nn::Bilinear>(2, 2, 1);
  nn::Sequential seq(std::vector<nn::ModulePtr>{bil});
  expect_error<NotImplementedError>([&] { seq(ones({1, 2})); }, {"[Bilinear]"});
}

TEST(NNContainers, SequentialChainsAndIndexes) {
  manual_seed(3);
  auto l1 = std::make_shared<nn::Linear>(3, 5);
  auto l2 = std::make_shared<nn::Linear>(5, 2);
  auto seq = std::make_shared<nn::Sequential>(l1, std::make_shared<nn::Tanh>(), l2);
  Tensor x = randn({4, 3});
  expect_close((*seq)(x), (*l2)(tanh((*l1)(x))), 1e-6);
  EXPECT_EQ(seq->size(), 3u);
  EXPECT_TRUE((*seq)[-1] == l2);
  EXPECT_TRUE(seq->at<nn::Linear>(0) == l1);
  expect_error<ValueError>([&] { seq->at<nn::Linear>(1); }, {"[Sequential]", "Tanh"});
  expect_error<IndexError>([&] { (*seq)[3]; }, {"[Sequential]", "3"});
  seq->push_back(std::make_shared<nn::Sigmoid>());
  EXPECT_EQ(seq->named_children().back().first, "3");
  EXPECT_EQ(names(seq->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  nn::Sequential named(nn::Named<nn::ModulePtr>{{"fc", l1}, {"act", std::make_shared<nn::ReLU>()}});
  EXPECT_EQ(names(named.named_parameters()), (std::vector<std::string>{"fc.weight", "fc.bias"}));
}

TEST(NNContainers, ModuleListAndDict) {
  nn::ModuleList list({std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(2, 2)});
  list.push_back(std::make_shared<nn::Tanh>());
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(list[2]->type_name(), "Tanh");
  EXPECT_EQ(names(list.named_parameters()), (std::vector<std::string>{"1.weight", "1.bias"}));
  int count = 0;
  for (auto& [name, m] : list) count += m->parameters().empty() ? 0 : 1;
  EXPECT_EQ(count, 1);
  expect_error<IndexError>([&] { list[-4]; }, {"[ModuleList]"});

  nn::ModuleDict dict;
  dict.insert("proj", std::make_shared<nn::Linear>(2, 3));
  dict.insert("act", std::make_shared<nn::GELU>());
  EXPECT_TRUE(dict.contains("proj"));
  EXPECT_FALSE(dict.contains("nope"));
  EXPECT_EQ(dict.keys(), (std::vector<std::string>{"proj", "act"}));
  EXPECT_EQ(dict.at<nn::Linear>("proj")->out_features, 3);
  expect_error<IndexError>([&] { dict["nope"]; }, {"[ModuleDict]", "nope", "proj, act"});
  EXPECT_EQ(names(dict.named_parameters()), (std::vector<std::string>{"proj.weight", "proj.bias"}));
}

}  // namespace
}  // namespace tessera
