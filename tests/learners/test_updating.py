"""The updating hierarchy and the mixed model against closed forms and an outside reference.

- Without a prior (penalties near 0) the updates are the textbook maximum-likelihood
  fits, whose score equations are known: recalibration in the large makes the support's
  mean risk equal its event rate; logistic recalibration also zeroes the score of the
  slope; numeric model revision is ordinary least squares on the support set.
- The mixed model's numeric fit equals statsmodels' ``MixedLM`` (maximum likelihood), and
  its adaptation is the closed-form BLUP τ² Σr / (σ² + Kτ²); the binary BLUP solves the
  posterior mode's score equation Σ (y - p) = û / τ².
- With random slopes, the numeric fit equals ``MixedLM`` with the slope as an
  independent variance component, the slope goes to the strongest covariate, the
  adaptation is the closed-form BLUP (D⁻¹ + ZᵀZ/σ²)⁻¹ Zᵀr/σ², and the binary BLUP
  solves the score equations Zᵀ(y - p) = D⁻¹ b̂.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit, logit

from metamed.errors import MetamedValueError
from metamed.learners import make_learner
from metamed.learners.mixed import RandomIntercept
from metamed.tasks import Task

N_FEATURES = 4


def sites(
    outcome: str, n_sites: int = 30, seed: int = 0, slope_sd: float = 0.0, min_rows: int = 10
) -> list[Task]:
    """Sites sharing coefficients, each with its own intercept (SD 0.8) and, with
    ``slope_sd > 0``, its own slope on feature 0 (SD ``slope_sd``)."""
    rng = np.random.default_rng(seed)
    beta = np.array([0.8, -0.5, 0.3, 0.0])
    tasks = []
    for s in range(n_sites):
        n = int(rng.integers(min_rows, 40))
        X = rng.normal(size=(n, N_FEATURES))
        eta = X @ beta + rng.normal(0, 0.8)
        if slope_sd:
            eta = eta + X[:, 0] * rng.normal(0, slope_sd)
        if outcome == "binary":
            y = (rng.random(n) < expit(eta - 1.0)).astype(float)
        else:
            y = 5.0 + 2.0 * (eta + rng.normal(size=n))
        tasks.append(Task(f"site{s}", X, y, outcome))
    return tasks


TRAIN_BIN, TRAIN_NUM = sites("binary"), sites("numeric")
NEW_BIN, NEW_NUM = sites("binary", 1, seed=7)[0], sites("numeric", 1, seed=7)[0]
ML = dict(penalty=1e-9, revision_penalty=1e-9, C=1e6)


def test_recalibration_in_the_large_matches_the_support_event_rate():
    model = make_learner("recal-intercept", **ML).meta_fit(TRAIN_BIN).adapt(NEW_BIN)
    assert model.predict_proba(NEW_BIN.X).mean() == pytest.approx(NEW_BIN.y.mean(), abs=1e-6)


def test_logistic_recalibration_solves_both_score_equations():
    learner = make_learner("recal-logistic", **ML).meta_fit(TRAIN_BIN)
    lp = NEW_BIN.X.astype(float) @ learner.coef_ + learner.intercept_
    residual = NEW_BIN.y - learner.adapt(NEW_BIN).predict_proba(NEW_BIN.X)
    assert abs(residual.sum()) < 1e-6 and abs((residual * lp).sum()) < 1e-6


def test_numeric_model_revision_without_prior_is_least_squares_on_the_support():
    model = make_learner("model-revision", **ML).meta_fit(TRAIN_NUM).adapt(NEW_NUM)
    design = np.column_stack([np.ones(len(NEW_NUM)), NEW_NUM.X])
    ols = design @ np.linalg.lstsq(design, NEW_NUM.y.astype(float), rcond=None)[0]
    np.testing.assert_allclose(model.predict(NEW_NUM.X), ols, atol=1e-5)


def test_one_class_support_shrinks_toward_the_pooled_model_and_stays_finite():
    learner = make_learner("recal-intercept").meta_fit(TRAIN_BIN)
    pooled = make_learner("pooled-logreg").meta_fit(TRAIN_BIN).adapt(NEW_BIN)
    negatives = NEW_BIN.subset(np.flatnonzero(NEW_BIN.y == 0)[:5])
    risk = learner.adapt(negatives).predict_proba(NEW_BIN.X)
    assert np.isfinite(logit(risk)).all()
    assert (risk < pooled.predict_proba(NEW_BIN.X)).all()


def test_mixed_model_numeric_fit_equals_statsmodels_mixedlm():
    from statsmodels.regression.mixed_linear_model import MixedLM

    learner = RandomIntercept(C=1e9).meta_fit(TRAIN_NUM)
    X = np.concatenate([t.X for t in TRAIN_NUM]).astype(float)
    y = np.concatenate([t.y for t in TRAIN_NUM]).astype(float)
    groups = np.repeat(np.arange(len(TRAIN_NUM)), [len(t) for t in TRAIN_NUM])
    reference = MixedLM(y, np.column_stack([np.ones(len(y)), X]), groups=groups).fit(reml=False)
    sd = learner.y_std_
    assert np.sqrt(learner.tau2_) * sd == pytest.approx(
        np.sqrt(float(reference.cov_re[0, 0])), rel=1e-3
    )
    assert np.sqrt(learner.sigma2_) * sd == pytest.approx(np.sqrt(reference.scale), rel=1e-3)
    np.testing.assert_allclose(learner.coef_ * sd, reference.fe_params[1:], rtol=1e-3)


def test_mixed_model_numeric_adaptation_is_the_closed_form_blup():
    learner = RandomIntercept().meta_fit(TRAIN_NUM)
    support = NEW_NUM.subset(np.arange(6))
    z = (support.y.astype(float) - learner.y_mean_) / learner.y_std_
    residual = z - (support.X.astype(float) @ learner.coef_ + learner.intercept_)
    tau2, sigma2, k = learner.tau2_, learner.sigma2_, len(support)
    blup = tau2 * residual.sum() / (sigma2 + k * tau2)  # written out, not the module's helper
    model = learner.adapt(support)
    assert model.intercept == pytest.approx(learner.intercept_ + blup, abs=1e-10)
    np.testing.assert_array_equal(model.coef, learner.coef_)


def test_mixed_model_binary_blup_solves_the_posterior_mode_equation():
    learner = RandomIntercept().meta_fit(TRAIN_BIN)
    assert 0.3 < np.sqrt(learner.tau2_) < 1.5  # the sites' intercept SD is 0.8
    for k in (5, 20):
        support = NEW_BIN.subset(np.arange(k))
        model = learner.adapt(support)
        u = model.intercept - learner.intercept_
        residual = support.y - model.predict_proba(support.X)
        assert residual.sum() == pytest.approx(u / learner.tau2_, abs=1e-8)


def sloped_sites(outcome: str, n_sites: int = 30, seed: int = 3) -> list[Task]:
    """Sites with their own intercept (SD 0.8) and their own slope on feature 0 (SD 0.5)."""
    return sites(outcome, n_sites, seed, slope_sd=0.5, min_rows=15)


SLOPED_NUM, SLOPED_BIN = sloped_sites("numeric"), sloped_sites("binary")


def test_mixed_model_random_slope_fit_equals_statsmodels_mixedlm():
    from statsmodels.regression.mixed_linear_model import MixedLM

    learner = RandomIntercept(C=1e9, n_slopes=1).meta_fit(SLOPED_NUM)
    np.testing.assert_array_equal(learner.slope_features_, [0])  # the largest |β|
    X = np.concatenate([t.X for t in SLOPED_NUM]).astype(float)
    y = np.concatenate([t.y for t in SLOPED_NUM]).astype(float)
    groups = np.repeat(np.arange(len(SLOPED_NUM)), [len(t) for t in SLOPED_NUM])
    slope = {"slope": {g: X[groups == g][:, [0]] for g in range(len(SLOPED_NUM))}}
    with warnings.catch_warnings():  # statsmodels' dict form of variance components
        warnings.simplefilter("ignore", FutureWarning)
        reference = MixedLM(
            y, np.column_stack([np.ones(len(y)), X]), groups=groups,
            exog_re=np.ones((len(y), 1)), exog_vc=slope,
        ).fit(reml=False)  # fmt: skip
    sd = learner.y_std_
    assert np.sqrt(learner.tau2_) * sd == pytest.approx(
        np.sqrt(float(reference.cov_re[0, 0])), rel=1e-3
    )
    assert np.sqrt(learner.slope_tau2_[0]) * sd == pytest.approx(
        np.sqrt(float(reference.vcomp[0])), rel=1e-3
    )
    assert np.sqrt(learner.sigma2_) * sd == pytest.approx(np.sqrt(reference.scale), rel=1e-3)
    np.testing.assert_allclose(learner.coef_ * sd, reference.fe_params[1:], rtol=1e-3)


def test_mixed_model_random_slope_adaptation_is_the_closed_form_blup():
    learner = RandomIntercept(n_slopes=2).meta_fit(SLOPED_NUM)
    new = sloped_sites("numeric", 1, seed=11)[0]
    support = new.subset(np.arange(8))
    X = support.X.astype(float)
    z = (support.y.astype(float) - learner.y_mean_) / learner.y_std_
    residual = z - (X @ learner.coef_ + learner.intercept_)
    Z = np.column_stack([np.ones(len(z)), X[:, learner.slope_features_]])
    prior = np.diag(1 / np.concatenate([[learner.tau2_], learner.slope_tau2_]))
    b = np.linalg.solve(prior + Z.T @ Z / learner.sigma2_, Z.T @ residual / learner.sigma2_)
    model = learner.adapt(support)
    assert model.intercept == pytest.approx(learner.intercept_ + b[0], abs=1e-10)
    expected = learner.coef_.copy()
    expected[learner.slope_features_] += b[1:]
    np.testing.assert_allclose(model.coef, expected, atol=1e-10)


def test_mixed_model_binary_random_slope_blup_solves_the_score_equations():
    learner = RandomIntercept(n_slopes=1).meta_fit(SLOPED_BIN)
    assert learner.slope_tau2_[0] > 0.01  # the sites' slopes differ (SD 0.5 on the logit)
    new = sloped_sites("binary", 1, seed=11)[0]
    for k in (5, 15):
        support = new.subset(np.arange(k))
        model = learner.adapt(support)
        Z = np.column_stack([np.ones(k), support.X[:, learner.slope_features_]])
        b = np.concatenate([[model.intercept - learner.intercept_],
                            model.coef[learner.slope_features_] - learner.coef_[learner.slope_features_]])  # fmt: skip
        residual = support.y - model.predict_proba(support.X)
        prior = 1 / np.concatenate([[learner.tau2_], learner.slope_tau2_])
        np.testing.assert_allclose(Z.T @ residual, prior * b, atol=1e-7)


def test_mixed_model_refuses_more_slopes_than_features():
    with pytest.raises(MetamedValueError, match="n_slopes=5 but the tasks have only 4"):
        RandomIntercept(n_slopes=5).meta_fit(SLOPED_NUM)


@pytest.mark.parametrize("outcome", ["binary", "numeric"])
def test_a_site_that_reverses_the_pooled_ranking_gets_no_negative_or_flat_slope(outcome):
    # Labels that run against the pooled model (the site's patients ranked backwards): the
    # free calibration slope would be negative and reverse the model's ranking at the site;
    # the update keeps the pooled ranking and refits with the slope fixed at 1.
    train = TRAIN_BIN if outcome == "binary" else TRAIN_NUM
    learner = make_learner("recal-logistic", **ML).meta_fit(train)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, N_FEATURES))
    lp = X @ learner.coef_ + learner.intercept_
    y = (lp < np.median(lp)).astype(float) if outcome == "binary" else -lp * 3.0 + 10.0
    adapted = learner.adapt(Task("reversed", X, y, outcome))
    pooled = make_learner("pooled-logreg", **ML).meta_fit(train).adapt(Task("r", X, y, outcome))
    score = (lambda m: m.predict_proba(X)) if outcome == "binary" else (lambda m: m.predict(X))
    order = np.argsort(score(pooled))
    assert np.all(np.diff(score(adapted)[order]) > 0)  # same ranking, strictly
    # the intercept alone was refitted: recalibration in the large on the same support
    in_large = make_learner("recal-intercept", **ML).meta_fit(train).adapt(Task("r", X, y, outcome))
    assert score(adapted) == pytest.approx(score(in_large))
    # a site that agrees with the model keeps its free slope (not the intercept-only update)
    new = NEW_BIN if outcome == "binary" else NEW_NUM
    agree = learner.adapt(new)
    intercept_only = make_learner("recal-intercept", **ML).meta_fit(train).adapt(new)
    assert not np.allclose(score(agree), score(intercept_only))
