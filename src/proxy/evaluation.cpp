#include "evaluation.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include "dma/proxy.hpp"

namespace dma {

namespace {
bool is_digit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
}  // namespace

std::string parse_answer(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && !is_digit(text[i]) && !(text[i] == '-' && i + 1 < text.size() && is_digit(text[i + 1])))
    ++i;
  std::string out;
  if (i < text.size() && text[i] == '-') out += text[i++];
  bool seen_point = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    const bool digit_follows = i + 1 < text.size() && is_digit(text[i + 1]);
    if (is_digit(c))
      out += c;
    else if ((c == ',' || c == ' ') && digit_follows)
      continue;  // "1,234" and "1 234" are 1234
    else if (c == '.' && digit_follows && !seen_point) {
      out += c;
      seen_point = true;
    } else
      break;
  }
  return out;
}

namespace proxy {

bool answer_complete(std::string_view text) {
  // Mirrors parse_answer: the first number ends at a character that cannot continue it.
  std::size_t i = 0;
  while (i < text.size() && !is_digit(text[i]) && !(text[i] == '-' && i + 1 < text.size() && is_digit(text[i + 1])))
    ++i;
  if (i == text.size()) return false;
  if (text[i] == '-') ++i;
  bool seen_point = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (is_digit(c)) continue;
    const bool known_next = i + 1 < text.size();
    const bool digit_next = known_next && is_digit(text[i + 1]);
    const bool may_continue = c == ',' || c == ' ' || (c == '.' && !seen_point);
    if (!may_continue) return true;
    if (!known_next) return false;  // "12," or "12." may still go on
    if (!digit_next) return true;
    seen_point = seen_point || c == '.';
  }
  return false;
}

EvalSet load_eval_set(const DomainSpace& space, int rows_per_domain, int seq_len, const torch::Device& device) {
  EvalSet set;
  set.domains = space.num_domains();
  const int width = space.row_width();
  std::vector<torch::Tensor> parts;
  for (int d = 0; d < set.domains; ++d) {
    const auto rows = std::min<std::int64_t>(rows_per_domain, space.domains()[d].eval_rows);
    if (rows <= 0) continue;
    std::vector<std::int32_t> buffer(static_cast<std::size_t>(rows * width));
    space.read_eval_rows(d, 0, rows, buffer);
    parts.push_back(
        torch::from_blob(buffer.data(), {rows, width}, torch::kInt32).narrow(1, 0, seq_len + 1).to(torch::kInt64));
    set.row_domain.insert(set.row_domain.end(), static_cast<std::size_t>(rows), d);
  }
  set.tokens = parts.empty() ? torch::empty({0, seq_len + 1}, torch::kInt64) : torch::cat(parts);
  set.tokens = set.tokens.to(device);
  return set;
}

MathSet load_math_set(const DomainSpace& space, int count) {
  MathSet set;
  if (space.tokenizer() != "bytes") return set;  // prompts are text; only bytes encode here
  const auto& problems = space.math_benchmark();
  const auto n = std::min<std::size_t>(problems.size(), static_cast<std::size_t>(std::max(count, 0)));
  for (std::size_t i = 0; i < n; ++i) {
    const auto ids = bytes_tokenizer::encode(problems[i].prompt);
    if (ids.empty()) continue;
    set.prompts.emplace_back(ids.begin(), ids.end());
    set.answers.push_back(problems[i].answer);
  }
  return set;
}

std::vector<std::string> greedy_generate(ProxyLM& model, const std::vector<std::vector<std::int64_t>>& prompts,
                                         int max_tokens, const torch::Device& device) {
  c10::InferenceMode inference;
  const auto seq_len = static_cast<std::int64_t>(model->shape().seq_len);
  const auto n = static_cast<std::int64_t>(prompts.size());
  const auto budget = std::min<std::int64_t>(std::max(max_tokens, 0), seq_len - 1);
  std::vector<std::string> out(prompts.size());
  if (n == 0 || budget == 0) return out;
  // Prompts keep their last seq_len - budget tokens and are left-padded to a common width,
  // so every row's next token comes from the last column; the cache hides the padding.
  std::int64_t width = 0;
  for (const auto& p : prompts) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(p.size()));
  width = std::min(width, seq_len - budget);
  auto buffer = torch::zeros({n, width}, torch::kInt64);
  auto pad = torch::empty({n}, torch::kInt64);
  for (std::int64_t r = 0; r < n; ++r) {
    const auto& p = prompts[static_cast<std::size_t>(r)];
    const auto keep = std::min<std::int64_t>(static_cast<std::int64_t>(p.size()), width);
    std::copy(p.end() - keep, p.end(), buffer[r].data_ptr<std::int64_t>() + (width - keep));
    pad[r] = width - keep;
  }
  auto cache = model->new_cache(pad.to(device), width + budget);
  auto logits = model->forward_cached(buffer.to(device), cache);  // (n, width, V)
  for (std::int64_t step = 0; step < budget; ++step) {
    auto next = logits.select(1, logits.size(1) - 1).argmax(/*dim=*/-1, /*keepdim=*/true);  // (n, 1)
    const auto host = next.to(torch::kCPU, torch::kInt32).contiguous();
    bool all_answered = true;
    for (std::int64_t r = 0; r < n; ++r) {
      auto& text = out[static_cast<std::size_t>(r)];
      text += bytes_tokenizer::decode({host.data_ptr<std::int32_t>() + r, 1});
      all_answered = all_answered && answer_complete(text);
    }
    // More tokens cannot change a number that has ended: stop early (exactly the same result).
    if (all_answered || step + 1 == budget) break;
    logits = model->forward_cached(next, cache);
  }
  return out;
}

bool exact_match(std::string_view generated, std::string_view answer) {
  const auto expected = parse_answer(answer);
  return !expected.empty() && parse_answer(generated) == expected;
}

float math_accuracy(ProxyLM& model, const MathSet& set, int max_tokens, const torch::Device& device) {
  if (set.prompts.empty()) return -1.0f;
  const auto generated = greedy_generate(model, set.prompts, max_tokens, device);
  int correct = 0;
  for (std::size_t i = 0; i < generated.size(); ++i) correct += exact_match(generated[i], set.answers[i]) ? 1 : 0;
  return static_cast<float>(correct) / static_cast<float>(generated.size());
}

}  // namespace proxy
}  // namespace dma
