// Golden test: the C++ proxy's logits, loss and gradients against its plain PyTorch twin
// (tools/bench/proxy_throughput.py, the throughput benchmark's baseline) on the same weights.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fixture.hpp"
#include "model.hpp"

namespace dma::proxy {
namespace {

void write_bin(const std::string& path, const torch::Tensor& t) {
  auto c = t.contiguous();
  std::ofstream(path, std::ios::binary)
      .write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

torch::Tensor read_bin(const std::string& path, const torch::Tensor& like) {
  auto out = torch::empty_like(like).contiguous();
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(out.nbytes()));
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return out;
}

TEST(ProxyGolden, MatchesThePyTorchTwin) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 has no torch (apt install python3-torch)";
  dma::testing::TempDir dir;
  ModelShape s;
  s.vocab = 64;
  s.seq_len = 24;
  s.d_model = 32;
  s.n_layers = 2;
  s.n_heads = 4;
  s.ffn_hidden = 88;
  const int batch = 3;
  ProxyLM model(s);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  model->initialise(gen);
  {
    torch::NoGradGuard no_grad;  // gains away from 1 so the norms' gradients matter
    for (auto& item : model->named_parameters())
      if (item.value().dim() == 1) item.value().uniform_(0.5, 1.5, gen);
  }
  for (const auto& item : model->named_parameters()) write_bin(dir.file("param." + item.key() + ".bin"), item.value());
  auto tokens = torch::randint(s.vocab, {batch, s.seq_len + 1}, gen, torch::kInt64);
  write_bin(dir.file("tokens.bin"), tokens);
  std::ofstream(dir.file("shape.json")) << "{\"vocab\": " << s.vocab << ", \"seq_len\": " << s.seq_len
                                        << ", \"d_model\": " << s.d_model << ", \"n_layers\": " << s.n_layers
                                        << ", \"n_heads\": " << s.n_heads << ", \"ffn_hidden\": " << s.ffn_hidden
                                        << ", \"batch\": " << batch << "}";
  const std::string cmd =
      std::string("/usr/bin/python3 ") + DMA_SOURCE_DIR + "/tools/bench/proxy_throughput.py golden " + dir.file("");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  auto logits = model->forward(tokens.narrow(1, 0, s.seq_len));
  auto loss = row_losses(model, tokens).mean();
  loss.backward();
  const auto py_logits = read_bin(dir.file("out.logits.bin"), logits);
  const auto py_loss = read_bin(dir.file("out.loss.bin"), torch::empty({1}));
  EXPECT_TRUE(torch::allclose(logits, py_logits, 1e-4, 1e-5)) << (logits - py_logits).abs().max().item<float>();
  EXPECT_NEAR(loss.item<float>(), py_loss.item<float>(), 1e-5);
  for (const auto& item : model->named_parameters()) {
    const auto g = item.value().grad();
    const auto py = read_bin(dir.file("out.grad." + item.key() + ".bin"), g);
    EXPECT_TRUE(torch::allclose(g, py, 1e-3, 1e-6))
        << item.key() << " differs by " << (g - py).abs().max().item<float>();
  }
}

}  // namespace
}  // namespace dma::proxy
