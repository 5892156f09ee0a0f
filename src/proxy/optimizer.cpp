#include "optimizer.hpp"

#include <cmath>
#include <vector>

namespace dma::proxy {

FlatAdamW::FlatAdamW(torch::nn::Module& module, AdamWOptions options) : options_(options) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> decay, keep;
  for (const auto& item : module.named_parameters()) {
    const bool is_embedding = item.key().starts_with("embed.");
    (item.value().dim() >= 2 && !is_embedding ? decay : keep).push_back(item.value());
  }
  std::vector<torch::Tensor> ordered = decay;
  ordered.insert(ordered.end(), keep.begin(), keep.end());
  std::vector<torch::Tensor> flat_pieces;
  for (const auto& p : ordered) flat_pieces.push_back(p.detach().reshape({-1}));
  params_ = torch::cat(flat_pieces);
  grads_ = torch::zeros_like(params_);
  exp_avg_ = torch::zeros_like(params_);
  exp_avg_sq_ = torch::zeros_like(params_);
  std::int64_t offset = 0;
  for (auto& p : ordered) {
    const auto n = p.numel();
    p.set_data(params_.narrow(0, offset, n).view(p.sizes()));
    p.mutable_grad() = grads_.narrow(0, offset, n).view(p.sizes());
    offset += n;
  }
  for (const auto& p : decay) decayed_ += p.numel();
}

void FlatAdamW::zero_grad() { grads_.zero_(); }

double FlatAdamW::grad_norm() const { return grads_.norm().item<double>(); }

void FlatAdamW::step(double lr, double grad_norm) {
  torch::NoGradGuard no_grad;
  const auto& o = options_;
  if (o.grad_clip > 0 && grad_norm > o.grad_clip) grads_.mul_(o.grad_clip / (grad_norm + 1e-6));
  ++step_;
  if (o.weight_decay > 0) params_.narrow(0, 0, decayed_).mul_(1.0 - lr * o.weight_decay);
  exp_avg_.lerp_(grads_, 1.0 - o.beta1);
  exp_avg_sq_.mul_(o.beta2).addcmul_(grads_, grads_, 1.0 - o.beta2);
  const double bias1 = 1.0 - std::pow(o.beta1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(o.beta2, static_cast<double>(step_));
  auto denom = exp_avg_sq_.sqrt().div_(std::sqrt(bias2)).add_(o.eps);
  params_.addcdiv_(exp_avg_, denom, -lr / bias1);
}

void FlatAdamW::reset() {
  exp_avg_.zero_();
  exp_avg_sq_.zero_();
  grads_.zero_();
  step_ = 0;
}

void FlatAdamW::save(torch::serialize::OutputArchive& archive) const {
  archive.write("optim.exp_avg", exp_avg_.cpu());
  archive.write("optim.exp_avg_sq", exp_avg_sq_.cpu());
  archive.write("optim.step", torch::tensor(step_, torch::kInt64));
}

void FlatAdamW::load(torch::serialize::InputArchive& archive) {
  torch::NoGradGuard no_grad;
  torch::Tensor m, v, step;
  archive.read("optim.exp_avg", m);
  archive.read("optim.exp_avg_sq", v);
  archive.read("optim.step", step);
  TORCH_CHECK(m.sizes() == exp_avg_.sizes() && v.sizes() == exp_avg_sq_.sizes(), "optimizer state has ", m.numel(),
              " entries, the model ", exp_avg_.numel());
  exp_avg_.copy_(m);
  exp_avg_sq_.copy_(v);
  step_ = step.item<std::int64_t>();
}

}  // namespace dma::proxy
