// Math text with worked solutions. Every number is drawn through rnd:: (portable), so a
// seed gives the same problems on every platform. Each problem's key is its short form,
// which is what the held-out benchmark compares against.
#include "math_gen.hpp"

#include <numeric>

#include <fmt/format.h>

#include "random.hpp"

namespace dma::math {
namespace {

const char* column_name(size_t i) {
  static const char* names[] = {"ones", "tens", "hundreds", "thousands", "ten-thousands", "hundred-thousands"};
  return names[i];
}

Problem finish(std::string statement, std::string steps, std::string short_form, std::string answer) {
  Problem p;
  p.key = short_form;
  p.prompt = fmt::format("Q: {} = ?\nA: ", short_form);
  p.worked = fmt::format("{}\n{}Answer: {}\n", statement, steps, answer);
  p.answer = std::move(answer);
  return p;
}

/// Multi-digit addition, each column with its carry written out.
Problem addition(std::mt19937_64& rng) {
  const int a = rnd::range(rng, 10, 9999), b = rnd::range(rng, 10, 9999);
  std::string steps;
  int carry = 0;
  const auto da = std::to_string(a), db = std::to_string(b);
  const size_t cols = std::max(da.size(), db.size());
  for (size_t i = 0; i < cols; ++i) {
    const int x = i < da.size() ? da[da.size() - 1 - i] - '0' : 0;
    const int y = i < db.size() ? db[db.size() - 1 - i] - '0' : 0;
    const int s = x + y + carry;
    steps += carry ? fmt::format("{}: {} + {} + {} = {}", column_name(i), x, y, carry, s)
                   : fmt::format("{}: {} + {} = {}", column_name(i), x, y, s);
    carry = s / 10;
    steps += carry ? fmt::format(", write {} carry 1.\n", s % 10) : fmt::format(", write {}.\n", s);
  }
  if (carry) steps += fmt::format("{}: carry 1, write 1.\n", column_name(cols));
  return finish(fmt::format("Add {} + {}.", a, b), steps, fmt::format("{} + {}", a, b), std::to_string(a + b));
}

/// A multi-digit number times one digit, carries written out.
Problem multiplication(std::mt19937_64& rng) {
  const int a = rnd::range(rng, 12, 9999), d = rnd::range(rng, 2, 9);
  const auto da = std::to_string(a);
  std::string steps;
  int carry = 0;
  for (size_t i = 0; i < da.size(); ++i) {
    const int x = da[da.size() - 1 - i] - '0';
    const int p = x * d + carry;
    steps += carry ? fmt::format("{}: {} * {} + {} = {}", column_name(i), x, d, carry, p)
                   : fmt::format("{}: {} * {} = {}", column_name(i), x, d, p);
    steps += p >= 10 ? fmt::format(", write {} carry {}.\n", p % 10, p / 10) : fmt::format(", write {}.\n", p);
    carry = p / 10;
  }
  if (carry) steps += fmt::format("{}: carry {}, write {}.\n", column_name(da.size()), carry, carry);
  return finish(fmt::format("Multiply {} * {}.", a, d), steps, fmt::format("{} * {}", a, d), std::to_string(a * d));
}

Problem arithmetic(std::mt19937_64& rng) { return rnd::bounded(rng, 3) < 2 ? addition(rng) : multiplication(rng); }

/// Linear equations with an integer solution, solved one operation per line.
Problem equation(std::mt19937_64& rng) {
  const int x = rnd::range(rng, -9, 20), a = rnd::range(rng, 2, 9), b = rnd::range(rng, 1, 30);
  std::string eq, steps;
  switch (rnd::bounded(rng, 4)) {
    case 0:
      eq = fmt::format("{}x + {} = {}", a, b, a * x + b);
      steps =
          fmt::format("Subtract {} from both sides: {}x = {}.\nDivide both sides by {}: x = {}.\n", b, a, a * x, a, x);
      break;
    case 1:
      eq = fmt::format("{}x - {} = {}", a, b, a * x - b);
      steps = fmt::format("Add {} to both sides: {}x = {}.\nDivide both sides by {}: x = {}.\n", b, a, a * x, a, x);
      break;
    case 2:
      eq = fmt::format("{}(x + {}) = {}", a, b, a * (x + b));
      steps = fmt::format("Divide both sides by {}: x + {} = {}.\nSubtract {} from both sides: x = {}.\n", a, b, x + b,
                          b, x);
      break;
    default:
      eq = fmt::format("x / {} + {} = {}", a, b, x + b);
      steps = fmt::format("Subtract {} from both sides: x / {} = {}.\nMultiply both sides by {}: x = {}.\n", b, a, x, a,
                          a * x);
      return finish(fmt::format("Solve {}.", eq), steps, fmt::format("{}, x", eq), std::to_string(a * x));
  }
  return finish(fmt::format("Solve {}.", eq), steps, fmt::format("{}, x", eq), std::to_string(x));
}

std::string fraction(int num, int den) {
  const int g = std::gcd(num, den);
  num /= g, den /= g;
  return den == 1 ? std::to_string(num) : fmt::format("{}/{}", num, den);
}

Problem fraction_sum(std::mt19937_64& rng) {
  const int q = rnd::range(rng, 2, 12), s = rnd::range(rng, 2, 12);
  const int p = rnd::range(rng, 1, q - 1), r = rnd::range(rng, 1, s - 1);
  const int l = std::lcm(q, s);
  const int n = p * (l / q) + r * (l / s);
  const auto steps = fmt::format("Common denominator: {}.\n{}/{} = {}/{} and {}/{} = {}/{}.\n{}/{} + {}/{} = {}/{}.\n",
                                 l, p, q, p * (l / q), l, r, s, r * (l / s), l, p * (l / q), l, r * (l / s), l, n, l);
  return finish(fmt::format("Add {}/{} + {}/{}.", p, q, r, s), steps, fmt::format("{}/{} + {}/{}", p, q, r, s),
                fraction(n, l));
}

Problem percent_of(std::mt19937_64& rng) {
  const int p = 5 * rnd::range(rng, 1, 19);
  int n = 0;
  do n = 10 * rnd::range(rng, 1, 50);
  while (p * n % 100 != 0);
  const auto steps = fmt::format("{}% of {} = {} * {} / 100.\n{} * {} = {}.\n{} / 100 = {}.\n", p, n, p, n, p, n, p * n,
                                 p * n, p * n / 100);
  return finish(fmt::format("What is {}% of {}?", p, n), steps, fmt::format("{}% of {}", p, n),
                std::to_string(p * n / 100));
}

Problem simplify(std::mt19937_64& rng) {
  const int g = rnd::range(rng, 2, 12), a = rnd::range(rng, 1, 11);
  const int b = rnd::range(rng, a + 1, 15);
  const int num = a * g, den = b * g, d = std::gcd(num, den);
  const auto steps = fmt::format("The greatest common divisor of {} and {} is {}.\n{} / {} = {} and {} / {} = {}.\n",
                                 num, den, d, num, d, num / d, den, d, den / d);
  return finish(fmt::format("Simplify {}/{}.", num, den), steps, fmt::format("simplify {}/{}", num, den),
                fraction(num, den));
}

Problem part_of(std::mt19937_64& rng) {
  const int den = rnd::range(rng, 2, 9), num = rnd::range(rng, 1, den - 1), k = rnd::range(rng, 2, 15);
  const auto steps = fmt::format("{} / {} = {}.\n{} * {} = {}.\n", den * k, den, k, k, num, k * num);
  return finish(fmt::format("What is {}/{} of {}?", num, den, den * k), steps,
                fmt::format("{}/{} of {}", num, den, den * k), std::to_string(k * num));
}

Problem percent_change(std::mt19937_64& rng) {
  const int p = 5 * rnd::range(rng, 1, 10);
  const int base = 20 * rnd::range(rng, 1, 25);
  const int change = base * p / 100;
  const bool up = rnd::bounded(rng, 2) == 0;
  const int result = up ? base + change : base - change;
  const auto steps =
      fmt::format("{}% of {} = {}.\n{} {} {} = {}.\n", p, base, change, base, up ? '+' : '-', change, result);
  return finish(fmt::format("A price of {} {} by {}%. What is the new price?", base, up ? "rises" : "falls", p), steps,
                fmt::format("{} {} {}%", base, up ? "plus" : "minus", p), std::to_string(result));
}

Problem fractions(std::mt19937_64& rng) {
  switch (rnd::bounded(rng, 5)) {
    case 0:
      return fraction_sum(rng);
    case 1:
      return percent_of(rng);
    case 2:
      return simplify(rng);
    case 3:
      return part_of(rng);
    default:
      return percent_change(rng);
  }
}

const std::vector<std::string> kNames = {"Ann", "Ben", "Carla", "Dev", "Ema", "Femi", "Gus", "Hana", "Ivo", "Jun"};
const std::vector<std::string> kItems = {"apples",  "stamps", "marbles",  "cards",
                                         "pencils", "shells", "stickers", "coins"};

/// Multi-step word problems: two or three operations, each step on its own line.
Problem word_problem(std::mt19937_64& rng) {
  const auto& name = rnd::pick(kNames, rng);
  const auto& item = rnd::pick(kItems, rng);
  switch (rnd::bounded(rng, 4)) {
    case 0: {
      const int a = rnd::range(rng, 2, 60), b = rnd::range(rng, 2, 9), c = rnd::range(rng, 2, 12);
      const int d = rnd::range(rng, 1, a + b * c - 1), ans = a + b * c - d;
      return finish(
          fmt::format("{} has {} {}, buys {} bags of {} {} and gives away {}. How many {} are left?", name, a, item, b,
                      c, item, d, item),
          fmt::format("Step 1: {} bags of {} is {} * {} = {}.\nStep 2: {} + {} = {}.\nStep 3: {} - {} = {}.\n", b, c, b,
                      c, b * c, a, b * c, a + b * c, a + b * c, d, ans),
          fmt::format("{} + {} * {} - {}", a, b, c, d), std::to_string(ans));
    }
    case 1: {
      const int p = rnd::range(rng, 2, 25), n = rnd::range(rng, 2, 9), cost = p * n;
      const int paid = (cost / 50 + 1) * 50;
      return finish(
          fmt::format("{} buys {} {} at {} dollars each and pays {} dollars. What is the change?", name, n, item, p,
                      paid),
          fmt::format("Step 1: {} * {} = {} dollars.\nStep 2: {} - {} = {}.\n", n, p, cost, paid, cost, paid - cost),
          fmt::format("{} - {} * {}", paid, n, p), std::to_string(paid - cost));
    }
    case 2: {
      const int n = rnd::range(rng, 2, 9), k = rnd::range(rng, 2, 12), e = rnd::range(rng, 1, k - 1);
      return finish(fmt::format("{} friends share {} {} equally, then each gives away {}. How many does each keep?", n,
                                n * k, item, e),
                    fmt::format("Step 1: {} / {} = {}.\nStep 2: {} - {} = {}.\n", n * k, n, k, k, e, k - e),
                    fmt::format("{} / {} - {}", n * k, n, e), std::to_string(k - e));
    }
    default: {
      const int p = rnd::range(rng, 5, 40), d = rnd::range(rng, 2, 9), q = rnd::range(rng, 1, 30);
      const int read = p * d + q, total = read + rnd::range(rng, 1, 200);
      return finish(
          fmt::format("{} reads {} pages a day for {} days, then {} more. The book has {} pages. How many are left?",
                      name, p, d, q, total),
          fmt::format("Step 1: {} * {} = {}.\nStep 2: {} + {} = {}.\nStep 3: {} - {} = {}.\n", p, d, p * d, p * d, q,
                      read, total, read, total - read),
          fmt::format("{} - ({} * {} + {})", total, p, d, q), std::to_string(total - read));
    }
  }
}

}  // namespace

const std::vector<SubDomain>& sub_domains() {
  static const std::vector<SubDomain> all = {
      {"math-arithmetic", "multi-digit addition and multiplication with the carries written out", &arithmetic},
      {"math-equations", "linear equations solved one operation per line", &equation},
      {"math-fractions", "fractions and percentages with worked steps", &fractions},
      {"math-word-problems", "multi-step word problems, one step per line", &word_problem},
  };
  return all;
}

}  // namespace dma::math
