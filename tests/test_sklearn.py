"""metamed.sklearn: adapted models as scikit-learn estimators, and the meta-estimators.

scikit-learn's own check suite runs on the adapted classifier and regressor, over a
support-only baseline (local-logreg) and over MAML; the checks expected to fail are
listed in ``EXPECTED_FAILURES`` with the reason (docs/design.md repeats the list).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from metamed.errors import MetamedValueError, NotFittedError
from metamed.learners import MAML
from metamed.sklearn import AdaptedClassifier, AdaptedRegressor, MetaClassifier, MetaRegressor
from metamed.tasks import Task

_MAML = {"meta_iterations": 3, "hidden_sizes": (16,), "random_state": 0}
_TRAINED: dict[tuple, MAML] = {}


class AnyWidthMAML(MAML):
    """Test double for the check suite, whose data sets have 1 to 10 columns: a MAML
    meta-trained (briefly, on random tasks) for each input width it is asked to adapt to.
    A real meta-trained learner has one width; everything else is MAML's own adapt."""

    def is_fitted(self) -> bool:
        return True

    def adapt(self, support: Task):
        key = (support.n_features, support.outcome_type)
        if key not in _TRAINED:  # cached outside the instance: adapt must not mutate it
            rng = np.random.default_rng(0)
            tasks = []
            for i in range(3):
                X = rng.normal(size=(30, key[0])).astype(np.float32)
                y = (X[:, 0] > 0).astype(np.float32) if key[1].name == "binary" else X[:, 0]
                tasks.append(Task(f"t{i}", X, y, key[1]))
            _TRAINED[key] = MAML(**self.get_params()).meta_fit(tasks)
        return _TRAINED[key].adapt(support)


FLOAT32 = (
    "metamed models compute in float32: the same row scored in a batch of another size "
    "can differ in the last bit (about 1e-7, the check's tolerance)"
)
EXPECTED_FAILURES = {
    "check_methods_subset_invariance": FLOAT32,
    "check_methods_sample_order_invariance": FLOAT32,
}
MAML_REGRESSOR_FAILURES = {
    "check_regressors_train": (
        "MAML adapts by a few gradient steps from its meta-learned start (here meta-trained "
        "3 iterations on unrelated tasks), not by fitting to convergence: R^2 on the check's "
        "data stays under its 0.5 bar"
    ),
}


def expected_failures(estimator) -> dict[str, str]:
    failures = dict(EXPECTED_FAILURES)
    if isinstance(estimator, AdaptedRegressor) and isinstance(estimator.learner, MAML):
        failures.update(MAML_REGRESSOR_FAILURES)
    return failures


@parametrize_with_checks(
    [
        AdaptedClassifier("local-logreg"),
        AdaptedRegressor("local-logreg"),
        AdaptedClassifier(AnyWidthMAML(**_MAML)),
        AdaptedRegressor(AnyWidthMAML(**_MAML)),
    ],
    expected_failed_checks=expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- working inside scikit-learn -----------------------------------------------------------
def sites(seed: int = 0, n_sites: int = 6, n: int = 60):
    """Rows of ``n_sites`` hospitals whose outcome rate differs; labels are strings."""
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(n_sites), n)
    X = rng.normal(size=(len(site), 4))
    logit = X[:, 0] - X[:, 1] + 0.6 * (site - n_sites / 2)
    y = np.where(rng.random(len(site)) < 1 / (1 + np.exp(-logit)), "died", "alive")
    return X, y, site


@pytest.fixture(scope="module")
def meta():
    X, y, site = sites()
    train = site < 5
    return MetaClassifier(MAML(meta_iterations=20, random_state=0)).fit(
        X[train], y[train], groups=site[train]
    )


def test_adapted_classifier_is_a_scikit_learn_classifier(meta):
    X, y, site = sites()
    Xn, yn = X[site == 5], y[site == 5]
    model = meta.adapt(Xn[:20], yn[:20])
    assert list(model.classes_) == ["alive", "died"]
    proba = model.predict_proba(Xn[20:])
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the second column is the metamed model's own P(y = classes_[1])
    np.testing.assert_allclose(proba[:, 1], model.model_.predict_proba(Xn[20:]), rtol=1e-6)
    assert set(model.predict(Xn[20:])) <= {"alive", "died"}
    assert 0.0 <= model.score(Xn[20:], yn[20:]) <= 1.0


def test_cross_validation_and_calibration_adapt_per_fold_and_never_meta_train(meta):
    X, y, site = sites()
    Xn, yn = X[site == 5], y[site == 5]
    model = meta.adapt(Xn[:20], yn[:20])
    before = {k: v.clone() for k, v in meta.learner_.params_.items()}
    assert clone(model).learner is meta.learner_  # a clone shares the meta-trained learner
    scores = cross_val_score(model, Xn, yn, cv=3, scoring="roc_auc")
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    calibrated = CalibratedClassifierCV(model, cv=3).fit(Xn, yn)
    assert calibrated.predict_proba(Xn[:5]).shape == (5, 2)
    pipe = make_pipeline(StandardScaler(), clone(model)).fit(Xn[:30], yn[:30])
    assert pipe.predict_proba(Xn[30:]).shape == (30, 2)
    for name, value in meta.learner_.params_.items():  # adapting never moved the learner
        assert bool((value == before[name]).all()), name


def test_meta_regressor_adapts_to_a_numeric_outcome():
    X, _, site = sites()
    y = 3.0 * X[:, 0] + site
    train = site < 5
    meta = MetaRegressor(MAML(meta_iterations=10, random_state=0)).fit(
        X[train], y[train], groups=site[train]
    )
    model = meta.adapt(X[site == 5][:20], y[site == 5][:20])
    assert model.predict(X[site == 5][20:]).shape == (40,)
    assert isinstance(model.score(X[site == 5][20:], y[site == 5][20:]), float)


def test_meta_estimators_refuse_what_they_cannot_do(meta):
    X, y, site = sites()
    with pytest.raises(MetamedValueError, match="needs groups"):
        MetaClassifier("local-logreg").fit(X, y)
    with pytest.raises(MetamedValueError, match="several tasks"):
        MetaClassifier("local-logreg").fit(X, y, groups=np.zeros(len(y)))
    with pytest.raises(MetamedValueError, match="never saw"):
        meta.adapt(X[:20], np.where(y[:20] == "died", "dead", "alive"))
    with pytest.raises(MetamedValueError, match="Only binary classification"):
        AdaptedClassifier("local-logreg").fit(X[:9], np.arange(9) % 3)
    with pytest.raises(NotFittedError, match="not meta-trained"):
        AdaptedClassifier(MAML()).fit(X[:20], y[:20])
