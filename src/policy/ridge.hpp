#pragma once
// Ridge least squares with an unpenalised intercept and standardised features, the penalty
// chosen from a grid by leave-one-out error (closed form). Plain C++: the systems are small
// (p = D + D(D-1)/2 features for RegMix's quadratic model, n = a store's episodes).
#include <vector>

namespace dma::policy_detail {

struct RidgeModel {
  std::vector<double> center, scale;  // (p) feature standardisation
  std::vector<double> beta;           // (p) on standardised features
  double intercept = 0;
  double lambda = 0;  // chosen penalty
  double r2 = 0;      // in-sample
  double r2_loo = 0;  // leave-one-out (out-of-sample)
  double press = 0;   // leave-one-out sum of squared errors
  double predict(const std::vector<double>& x) const;
};

/// Fits y ~ X (n rows of p features); requires n >= 2 and rows of equal length.
RidgeModel fit_ridge(const std::vector<std::vector<double>>& x, const std::vector<double>& y);

/// Factors a symmetric positive definite A (n x n, row-major) as L L^T in place (lower
/// triangle). Returns false when A is not positive definite.
bool cholesky(std::vector<double>& a, int n);
/// With `l` from cholesky(): solves L z = b (forward substitution), b overwritten by z.
void forward_solve(const std::vector<double>& l, int n, std::vector<double>& b);
/// With `l` from cholesky(): solves L L^T z = b, b overwritten by z.
void cholesky_solve(const std::vector<double>& l, int n, std::vector<double>& b);

}  // namespace dma::policy_detail
