"""A mixed-effects model with a random intercept per site: meta-learning as statisticians do it.

The model (``mixed-intercept``, :class:`RandomIntercept`)::

    g(E[y | x, site s]) = β₀ + β·x + u_s,    u_s ~ N(0, τ²)

with ``g`` the logit (binary outcome) or the identity (numeric outcome, standardised,
residual variance σ²).  Meta-training fits β₀, β, τ (and σ) on the training sites by
maximising the marginal likelihood with each site's intercept integrated out, plus the
pooled model's ridge penalty ½‖β‖²/C (the intercept is not penalised):

- numeric: exact, per site with n rows, residuals r = y - β₀ - β·x,
  ``log L = -½[n log 2πσ² + log(1 + nτ²/σ²) + (Σr² - τ²(Σr)²/(σ² + nτ²)) / σ²]``;
- binary: the Laplace approximation at each site's mode û,
  ``log L ≈ ℓ(û) - û²/2τ² - ½ log(1 + τ² Σ p(1-p))``; the modes are found by a
  vectorised Newton iteration, and one last Newton step is taken inside autograd so
  that the gradient carries û's dependence on the parameters (at the mode, that step's
  derivative is the implicit one).

A new site adapts by the empirical-Bayes estimate (BLUP) of its intercept from its K
patients, the fitted β and τ held fixed: the posterior mode of u given the support set,
``û = τ² Σr / (σ² + Kτ²)`` for a numeric outcome (a closed form the tests check) and the
MAP fit of :func:`metamed.learners.updating.map_offset_fit` with prior precision 1/τ²
for a binary one.  With few patients, or patients of one class, û shrinks toward 0, the
average site; no fallback is needed.

statsmodels was tried first: ``MixedLM`` does the numeric model, but its binary mixed
model (``BinomialBayesMixedGLM``) took 38 s (variational Bayes) and failed to converge
(Laplace) on 2,000 rows of 150 sites, where this fit takes well under a second.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from metamed.learners._params import POSITIVE, POSITIVE_INT, SEED, hyperparameter, hyperparameters
from metamed.learners.base import MetaLearner, register
from metamed.learners.baselines import pooled_rows
from metamed.learners.updating import LinearModel, linear_model, map_offset_fit
from metamed.outcomes import BINARY, NUMERIC, Outcome, TargetScaling
from metamed.tasks.task import Task

__all__ = ["RandomIntercept", "blup_intercept", "marginal_log_likelihood"]

#: Bounds on log τ and log σ: a site variance between e^-16 (no site effect; one training
#: site cannot tell) and e^6.
_LOG_SD_BOUNDS = (-8.0, 3.0)
#: Newton iterations for the sites' modes (each a one-dimensional concave problem).
_MODE_STEPS = 25


def _site_sums(groups: torch.Tensor, values: torch.Tensor, n_sites: int) -> torch.Tensor:
    return torch.zeros(n_sites, dtype=values.dtype).index_add(0, groups, values)


def marginal_log_likelihood(
    eta: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    n_sites: int,
    log_tau: torch.Tensor,
    log_sigma: torch.Tensor,
    outcome: Outcome,
) -> torch.Tensor:
    """Sum over sites of log p(y_site) with the site intercept integrated out.

    ``eta`` is the fixed-effects linear predictor per row and ``groups`` each row's site
    index in ``range(n_sites)``; exact for a numeric outcome, Laplace for a binary one.
    """
    tau2 = torch.exp(2 * log_tau)
    if outcome is NUMERIC:
        sigma2 = torch.exp(2 * log_sigma)
        r = y - eta
        n = _site_sums(groups, torch.ones_like(r), n_sites)
        s1 = _site_sums(groups, r, n_sites)
        s2 = _site_sums(groups, r * r, n_sites)
        per_site = n * torch.log(2 * torch.pi * sigma2) + torch.log1p(n * tau2 / sigma2)
        per_site = per_site + (s2 - tau2 * s1**2 / (sigma2 + n * tau2)) / sigma2
        return -0.5 * per_site.sum()
    with torch.no_grad():
        u = torch.zeros(n_sites, dtype=eta.dtype)
        for _ in range(_MODE_STEPS):
            p = torch.sigmoid(eta + u[groups])
            grad = _site_sums(groups, y - p, n_sites) - u / tau2
            hess = _site_sums(groups, p * (1 - p), n_sites) + 1 / tau2
            u = u + grad / hess
    p = torch.sigmoid(eta + u[groups])
    grad = _site_sums(groups, y - p, n_sites) - u / tau2
    hess = _site_sums(groups, p * (1 - p), n_sites) + 1 / tau2
    u = u + grad / hess  # one differentiable step: carries dû/dθ (see the module docstring)
    full = eta + u[groups]
    p = torch.sigmoid(full)
    loglik = _site_sums(groups, y * full - torch.nn.functional.softplus(full), n_sites)
    info = _site_sums(groups, p * (1 - p), n_sites)
    return (loglik - u**2 / (2 * tau2) - 0.5 * torch.log1p(tau2 * info)).sum()


def blup_intercept(residual_sum: float, k: int, tau2: float, sigma2: float) -> float:
    """The BLUP of a numeric site's intercept from K residuals: τ² Σr / (σ² + Kτ²)."""
    return tau2 * residual_sum / (sigma2 + k * tau2)


@register("mixed-intercept")
@hyperparameters
class RandomIntercept(MetaLearner):
    """Random-intercept (mixed-effects) model; a new site gets its empirical-Bayes intercept.

    See the module docstring for the model, the fit and the adaptation.

    Parameters
    ----------
    C : float, default 1.0
        Inverse ridge strength on the fixed-effect coefficients (as ``pooled-logreg``).
    max_iter : int, default 500
        L-BFGS iterations of the marginal-likelihood fit.
    random_state : int, default 0
        Kept for a uniform contract; the fit is deterministic.
    """

    outcome_types = (BINARY, NUMERIC)

    C: float = hyperparameter(default=1.0, allowed=POSITIVE)
    max_iter: int = hyperparameter(default=500, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED)

    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> RandomIntercept:
        """Fit β₀, β, τ (and σ) on ``train_tasks``, one site each (``val_tasks`` unused)."""
        rows = pooled_rows(self, train_tasks, val_tasks)
        n_features, outcome, X_np, y_np = rows.n_features, rows.outcome, rows.X, rows.y
        scaling = outcome.fit_scaling(y_np)
        X = torch.from_numpy(X_np.astype(np.float64))
        y = torch.from_numpy(scaling.transform(y_np.astype(np.float64)))
        groups = torch.from_numpy(
            np.repeat(np.arange(len(train_tasks)), [len(t) for t in train_tasks])
        )
        n_sites, n_rows = len(train_tasks), len(y)

        def unpack(theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (
                theta[:n_features],
                theta[n_features],
                theta[n_features + 1],
                theta[n_features + 2],
            )

        def objective(values: np.ndarray) -> tuple[float, np.ndarray]:
            theta = torch.tensor(values, dtype=torch.float64, requires_grad=True)
            beta, beta0, log_tau, log_sigma = unpack(theta)
            loglik = marginal_log_likelihood(
                X @ beta + beta0, y, groups, n_sites, log_tau, log_sigma, outcome
            )
            # per row, so that the tolerance means the same for every cohort size
            loss = (-loglik + 0.5 * (beta @ beta) / self.C) / n_rows
            (grad,) = torch.autograd.grad(loss, theta)
            return float(loss.detach()), grad.numpy()

        start = np.zeros(n_features + 3)
        start[n_features + 1] = np.log(0.5)
        bounds = [(None, None)] * (n_features + 1) + [_LOG_SD_BOUNDS, _LOG_SD_BOUNDS]
        if outcome is BINARY:
            bounds[-1] = (0.0, 0.0)  # no residual variance in a logistic model
        fit = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": int(self.max_iter)},
        )
        self.coef_ = fit.x[:n_features].copy()
        self.intercept_ = float(fit.x[n_features])
        self.tau2_ = float(np.exp(2 * fit.x[n_features + 1]))
        self.sigma2_ = float(np.exp(2 * fit.x[n_features + 2]))
        self.converged_ = bool(fit.success)
        self.n_features_ = n_features
        self.outcome_type_ = outcome
        self.y_mean_, self.y_std_ = scaling.mean, scaling.std
        return self

    def adapt(self, support: Task) -> LinearModel:
        """The fixed effects with the support set's empirical-Bayes intercept (BLUP)."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        scaling = TargetScaling(self.y_mean_, self.y_std_)
        eta = support.X.astype(np.float64) @ self.coef_ + self.intercept_
        y = scaling.transform(support.y.astype(np.float64))
        if self.outcome_type_ is NUMERIC:
            u = blup_intercept(float(np.sum(y - eta)), len(y), self.tau2_, self.sigma2_)
        else:
            ones = np.ones((len(y), 1))
            u = float(map_offset_fit(ones, y, eta, np.array([1 / self.tau2_]), BINARY)[0])
        return linear_model(self.outcome_type_, self.coef_, self.intercept_ + u, scaling)
