// Ridge regression for RegMix. n rows, p features; Z = standardised, centred features.
// n > p: primal normal equations (Z^T Z + lambda I) beta = Z^T y.
// n <= p: dual form (Z Z^T + lambda I) a = y, beta = Z^T a (an n x n system instead).
// Leave-one-out residuals come in closed form, e_i / (1 - h_ii), so the penalty is chosen
// by the honest PRESS error without refitting n times.
#include "ridge.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "dma/error.hpp"

namespace dma::policy_detail {

bool cholesky(std::vector<double>& a, int n) {
  for (int j = 0; j < n; ++j) {
    double d = a[static_cast<size_t>(j * n + j)];
    for (int k = 0; k < j; ++k) d -= a[static_cast<size_t>(j * n + k)] * a[static_cast<size_t>(j * n + k)];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    a[static_cast<size_t>(j * n + j)] = d;
    for (int i = j + 1; i < n; ++i) {
      double s = a[static_cast<size_t>(i * n + j)];
      for (int k = 0; k < j; ++k) s -= a[static_cast<size_t>(i * n + k)] * a[static_cast<size_t>(j * n + k)];
      a[static_cast<size_t>(i * n + j)] = s / d;
    }
  }
  return true;
}

void forward_solve(const std::vector<double>& l, int n, std::vector<double>& b) {
  for (int i = 0; i < n; ++i) {
    double s = b[static_cast<size_t>(i)];
    for (int k = 0; k < i; ++k) s -= l[static_cast<size_t>(i * n + k)] * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = s / l[static_cast<size_t>(i * n + i)];
  }
}

void cholesky_solve(const std::vector<double>& l, int n, std::vector<double>& b) {
  forward_solve(l, n, b);
  for (int i = n - 1; i >= 0; --i) {
    double s = b[static_cast<size_t>(i)];
    for (int k = i + 1; k < n; ++k) s -= l[static_cast<size_t>(k * n + i)] * b[static_cast<size_t>(k)];
    b[static_cast<size_t>(i)] = s / l[static_cast<size_t>(i * n + i)];
  }
}

double RidgeModel::predict(const std::vector<double>& x) const {
  double y = intercept;
  for (size_t j = 0; j < beta.size(); ++j) y += beta[j] * (x[j] - center[j]) / scale[j];
  return y;
}

namespace {

using Matrix = std::vector<double>;  // row-major

/// One penalty's fit: coefficients and leave-one-out leverages h_ii of the centred part.
struct Solution {
  std::vector<double> beta;      // (p)
  std::vector<double> leverage;  // (n)
  bool ok = false;
};

Solution solve_primal(const Matrix& z, const std::vector<double>& y, int n, int p, double lambda) {
  Matrix a(static_cast<size_t>(p * p), 0.0);  // (p, p) Z^T Z + lambda I
  std::vector<double> rhs(static_cast<size_t>(p), 0.0);
  for (int i = 0; i < n; ++i) {
    const double* zi = z.data() + static_cast<size_t>(i * p);
    for (int r = 0; r < p; ++r) {
      rhs[static_cast<size_t>(r)] += zi[r] * y[static_cast<size_t>(i)];
      for (int c = 0; c <= r; ++c) a[static_cast<size_t>(r * p + c)] += zi[r] * zi[c];
    }
  }
  for (int r = 0; r < p; ++r) {
    a[static_cast<size_t>(r * p + r)] += lambda;
    for (int c = r + 1; c < p; ++c) a[static_cast<size_t>(r * p + c)] = a[static_cast<size_t>(c * p + r)];
  }
  Solution s;
  if (!cholesky(a, p)) return s;
  s.beta = rhs;
  cholesky_solve(a, p, s.beta);
  for (int i = 0; i < n; ++i) {
    std::vector<double> v(z.begin() + i * p, z.begin() + (i + 1) * p);
    forward_solve(a, p, v);
    double h = 0;
    for (double x : v) h += x * x;
    s.leverage.push_back(h);
  }
  s.ok = true;
  return s;
}

Solution solve_dual(const Matrix& z, const std::vector<double>& y, int n, int p, double lambda) {
  Matrix m(static_cast<size_t>(n * n), 0.0);  // (n, n) Z Z^T + lambda I
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = 0;
      for (int k = 0; k < p; ++k) s += z[static_cast<size_t>(i * p + k)] * z[static_cast<size_t>(j * p + k)];
      m[static_cast<size_t>(i * n + j)] = m[static_cast<size_t>(j * n + i)] = s + (i == j ? lambda : 0.0);
    }
  Solution s;
  if (!cholesky(m, n)) return s;
  std::vector<double> a = y;
  cholesky_solve(m, n, a);
  s.beta.assign(static_cast<size_t>(p), 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < p; ++k)
      s.beta[static_cast<size_t>(k)] += z[static_cast<size_t>(i * p + k)] * a[static_cast<size_t>(i)];
  // Hat matrix K (K + lambda I)^-1 = I - lambda M^-1: its diagonal needs diag(M^-1).
  for (int i = 0; i < n; ++i) {
    std::vector<double> e(static_cast<size_t>(n), 0.0);
    e[static_cast<size_t>(i)] = 1.0;
    forward_solve(m, n, e);
    double inv_ii = 0;
    for (double x : e) inv_ii += x * x;
    s.leverage.push_back(1.0 - lambda * inv_ii);
  }
  s.ok = true;
  return s;
}

}  // namespace

RidgeModel fit_ridge(const std::vector<std::vector<double>>& x, const std::vector<double>& y) {
  const int n = static_cast<int>(x.size());
  if (n < 2 || y.size() != x.size())
    throw PolicyError(fmt::format("ridge: {} rows and {} targets: need >= 2 of each", n, y.size()));
  const int p = static_cast<int>(x[0].size());
  RidgeModel model;
  model.center.assign(static_cast<size_t>(p), 0.0);
  model.scale.assign(static_cast<size_t>(p), 1.0);
  double y_mean = 0;
  for (int i = 0; i < n; ++i) {
    y_mean += y[static_cast<size_t>(i)] / n;
    for (int j = 0; j < p; ++j)
      model.center[static_cast<size_t>(j)] += x[static_cast<size_t>(i)][static_cast<size_t>(j)] / n;
  }
  for (int j = 0; j < p; ++j) {
    double var = 0;
    for (int i = 0; i < n; ++i) {
      const double d = x[static_cast<size_t>(i)][static_cast<size_t>(j)] - model.center[static_cast<size_t>(j)];
      var += d * d / n;
    }
    if (var > 1e-24) model.scale[static_cast<size_t>(j)] = std::sqrt(var);  // constant columns stay 0 after centring
  }
  Matrix z(static_cast<size_t>(n * p));  // (n, p)
  std::vector<double> yc(static_cast<size_t>(n));
  double sst = 0;
  for (int i = 0; i < n; ++i) {
    yc[static_cast<size_t>(i)] = y[static_cast<size_t>(i)] - y_mean;
    sst += yc[static_cast<size_t>(i)] * yc[static_cast<size_t>(i)];
    for (int j = 0; j < p; ++j)
      z[static_cast<size_t>(i * p + j)] =
          (x[static_cast<size_t>(i)][static_cast<size_t>(j)] - model.center[static_cast<size_t>(j)]) /
          model.scale[static_cast<size_t>(j)];
  }
  model.intercept = y_mean;
  model.beta.assign(static_cast<size_t>(p), 0.0);
  double best_press = std::numeric_limits<double>::infinity();
  for (int k = -8; k <= 3; ++k) {
    const double lambda = n * std::pow(10.0, k);
    const Solution s = n > p ? solve_primal(z, yc, n, p, lambda) : solve_dual(z, yc, n, p, lambda);
    if (!s.ok) continue;
    double press = 0, sse = 0;
    for (int i = 0; i < n; ++i) {
      double fit = 0;
      for (int j = 0; j < p; ++j) fit += z[static_cast<size_t>(i * p + j)] * s.beta[static_cast<size_t>(j)];
      const double e = yc[static_cast<size_t>(i)] - fit;
      // The intercept adds 1/n to every leverage.
      const double h = std::min(1.0 / n + s.leverage[static_cast<size_t>(i)], 1.0 - 1e-9);
      sse += e * e;
      press += (e / (1.0 - h)) * (e / (1.0 - h));
    }
    if (press < best_press) {
      best_press = press;
      model.beta = s.beta;
      model.lambda = lambda;
      model.r2 = sst > 0 ? 1.0 - sse / sst : 0.0;
      model.r2_loo = sst > 0 ? 1.0 - press / sst : 0.0;
      model.press = press;
    }
  }
  if (!std::isfinite(best_press))
    throw PolicyError("ridge: no penalty gave a positive definite system: the features are not finite");
  return model;
}

}  // namespace dma::policy_detail
