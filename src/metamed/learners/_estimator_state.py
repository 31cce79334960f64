"""The local baselines' fitted estimators as arrays and text, for artifacts (private).

:class:`~metamed.learners.baselines.SupportModel` holds a fitted scikit-learn or LightGBM
estimator, and these libraries' own persistence is pickle.  An artifact stores instead

- logistic / ridge regression: the constructor parameters plus the fitted arrays
  (``coef_``, ``intercept_``, ``classes_``, ``n_iter_``), set back on a new estimator:
  the prediction is the same arithmetic on the same numbers, so bit-identical;
- LightGBM: the booster's own text model format (``model_to_string``), loaded back into a
  ``lightgbm.Booster`` wrapped in :class:`BoosterModel`.  LightGBM's scikit-learn classes
  cannot be rebuilt from a booster without setting their private attributes; their
  predictions are the booster's (``LGBMClassifier.predict_proba`` is ``[1 - p, p]`` of
  ``Booster.predict``), and the text format keeps every threshold and leaf value exactly
  (tests/learners/test_artifacts.py checks bit-identical predictions).

Estimator classes are found in the table below by name, never imported from the file.
"""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from metamed.artifacts import TextFile
from metamed.errors import MetamedTypeError, MetamedValueError

__all__ = ["BoosterModel", "estimator_state", "estimator_from_state"]

_LINEAR: dict[str, type[Any]] = {"LogisticRegression": LogisticRegression, "Ridge": Ridge}
_LINEAR_FITTED = ("coef_", "intercept_", "classes_", "n_iter_")
_BOOSTER = "lightgbm-booster"
_BOOSTER_FILE = "lightgbm-model.txt"


class BoosterModel:
    """A LightGBM booster with the prediction methods of ``LGBMClassifier``/``LGBMRegressor``.

    Parameters
    ----------
    booster : lightgbm.Booster
    classes : ndarray or None
        Class labels of a binary classifier (``classes_``); None for a regressor.
    """

    def __init__(self, booster: lightgbm.Booster, classes: np.ndarray | None) -> None:
        self.booster = booster
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray:
        if self.classes is None:
            raise AttributeError("a LightGBM regressor has no classes_")
        return self.classes

    def _predict(self, X: np.ndarray) -> np.ndarray:
        # Booster.predict is typed as also returning sparse matrices (for pred_contrib);
        # a plain prediction is a float64 array, which asarray returns unchanged.
        return np.asarray(self.booster.predict(X, num_threads=1))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self._predict(X)
        return np.vstack((1.0 - p, p)).transpose()

    def predict(self, X: np.ndarray) -> np.ndarray:
        p = self._predict(X)
        if self.classes is None:
            return p
        return self.classes[(p > 0.5).astype(np.int64)]


def estimator_state(estimator: Any) -> dict[str, Any]:
    """Arrays, numbers and text that rebuild ``estimator``'s predictions exactly."""
    kind = type(estimator).__name__
    if _LINEAR.get(kind) is type(estimator):
        fitted = {k: getattr(estimator, k) for k in _LINEAR_FITTED if hasattr(estimator, k)}
        return {"type": kind, "params": estimator.get_params(), "fitted": fitted}
    if isinstance(estimator, (LGBMClassifier, LGBMRegressor)):
        classes = estimator.classes_ if isinstance(estimator, LGBMClassifier) else None
        return _booster_state(estimator.booster_, classes)
    if isinstance(estimator, BoosterModel):
        return _booster_state(estimator.booster, estimator.classes)
    raise MetamedTypeError(
        f"Cannot save a support-set model of type {kind}; artifacts support "
        f"{', '.join(_LINEAR)}, LGBMClassifier and LGBMRegressor."
    )


def _booster_state(booster: lightgbm.Booster, classes: np.ndarray | None) -> dict[str, Any]:
    return {
        "type": _BOOSTER,
        "classes": None if classes is None else np.asarray(classes),
        "model": TextFile(_BOOSTER_FILE, booster.model_to_string()),
    }


def estimator_from_state(state: dict[str, Any]) -> Any:
    """Rebuild the estimator saved by :func:`estimator_state`.

    Raises :class:`~metamed.errors.MetamedValueError` when the state names an estimator
    this module does not know or the installed library cannot read it.
    """
    kind = state.get("type")
    if kind == _BOOSTER:
        model = state.get("model")
        text = model.text if isinstance(model, TextFile) else None
        try:
            booster = lightgbm.Booster(model_str=text)
        except (lightgbm.basic.LightGBMError, TypeError) as error:
            raise MetamedValueError(f"the LightGBM model cannot be read ({error}).") from None
        return BoosterModel(booster, state.get("classes"))
    if kind in _LINEAR:
        try:
            estimator = _LINEAR[kind](**state.get("params", {}))
        except TypeError as error:
            raise MetamedValueError(
                f"the installed scikit-learn cannot rebuild {kind} ({error}); use the "
                "scikit-learn version named in the manifest's library_versions."
            ) from None
        fitted = state.get("fitted", {})
        for key, value in fitted.items():
            if key not in _LINEAR_FITTED:
                raise MetamedValueError(f"{kind} has no fitted attribute {key!r} to restore.")
            setattr(estimator, key, value)
        estimator.n_features_in_ = int(np.shape(fitted["coef_"])[-1])
        return estimator
    raise MetamedValueError(
        f"support-set model type {kind!r} is not one metamed can load "
        f"(known: {', '.join([*_LINEAR, _BOOSTER])})."
    )
