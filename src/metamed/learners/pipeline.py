"""`Pipeline`: raw patient rows in, predictions out; preprocessing and model saved together.

A model alone expects the preprocessed matrix it was trained on; a deployed model meets
patient rows with the original columns (ages in years, chest-pain codes, missing cells).
A :class:`Pipeline` holds the :class:`~metamed.data.Preprocessor` fitted at
meta-training and a meta-learner or an adapted model, so that, scikit-learn style::

    pipe = Pipeline(preprocessor, learner, provenance=cohort.provenance)
    site = pipe.adapt(support_rows)        # labelled rows of the new site (raw columns)
    p = site.predict_proba(patient_rows)   # P(y = 1) per row
    site.save("models/site-b"); Pipeline.load("models/site-b")

The saved folder is one artifact (:mod:`metamed.artifacts`): the model's weights and
state, the preprocessor's fitted state, a readable feature schema (types, units,
categories) and the data provenance, all under the manifest's checksums.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.artifacts import artifact_error, read_artifact, write_artifact
from metamed.data.preprocess import Preprocessor, outcome_array
from metamed.errors import MetamedTypeError, MetamedValueError, did_you_mean
from metamed.learners.base import ADAPTED_MODEL, AdaptedModel, Adapter, BinaryModel, MetaLearner
from metamed.learners.conformal import ConformalIntervalModel, ConformalSetModel, conformal_adapt
from metamed.learners.recalibration import RecalibratingAdapter
from metamed.tasks.task import Task

__all__ = ["Pipeline", "feature_schema"]


def feature_schema(preprocessor: Preprocessor) -> dict[str, Any]:
    """The input columns a fitted preprocessor expects, for people and deployment tools.

    Each column has its ``name``, ``type`` (numeric, categorical, codeset) and ``unit``
    (None where the schema gives none); categorical columns list their ``categories``,
    code-set columns their ``codes`` (the vocabulary) and ``code_levels`` (whether codes
    are rolled up the ICD-9 hierarchy), numeric ones whether a missing-value indicator
    is added, and ``range``, the smallest and largest value seen at meta-training (null
    where unknown).  ``inputs`` names the model's input columns after preprocessing.
    """
    schema = preprocessor.schema
    columns: list[dict[str, Any]] = []
    ranges = getattr(preprocessor, "ranges_", {})
    for col in schema.numeric:
        low, high = ranges.get(col, (np.nan, np.nan))
        columns.append(
            {
                "name": col,
                "type": "numeric",
                "unit": schema.units.get(col),
                "missing_indicator": col in preprocessor.indicators_,
                "range": None if np.isnan(low) else [low, high],
            }
        )
    for col in schema.categorical:
        levels = preprocessor.categories_[col]
        columns.append(
            {
                "name": col,
                "type": "categorical",
                "unit": schema.units.get(col),
                "categories": levels,
            }
        )
    for col in schema.codesets:
        columns.append(
            {
                "name": col,
                "type": "codeset",
                "unit": None,
                "codes": preprocessor.codes_[col],
                "code_levels": list(preprocessor.code_levels_[col]),
            }
        )
    return {
        "columns": columns,
        "inputs": list(preprocessor.feature_names_),
        "n_inputs": preprocessor.n_features_out,
    }


def _n_inputs(model: MetaLearner | AdaptedModel) -> int | None:
    if isinstance(model, MetaLearner):
        return getattr(model, "n_features_", None)
    return getattr(model, "n_features", None)


class Pipeline:
    """A fitted preprocessor and a model, used on raw patient rows.

    Parameters
    ----------
    preprocessor : Preprocessor
        Fitted on the meta-training rows.
    model : MetaLearner or AdaptedModel
        A meta-trained learner (call :meth:`adapt` to get a pipeline that predicts) or
        a model adapted to one task.  Its input width must be the preprocessor's output.
    provenance : dict, optional
        Where the training data came from (e.g. ``cohort.provenance``); saved with the
        model.  Values must be numbers, strings, arrays or lists/dicts of these.
    """

    def __init__(
        self,
        preprocessor: Preprocessor,
        model: MetaLearner | AdaptedModel,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(preprocessor, Preprocessor):
            raise MetamedTypeError(
                f"preprocessor must be a fitted Preprocessor, got {type(preprocessor).__name__}."
            )
        preprocessor._check_fitted()
        if not isinstance(model, (MetaLearner, AdaptedModel)):
            raise MetamedTypeError(
                f"model must be a MetaLearner or an AdaptedModel, got {type(model).__name__}."
            )
        if isinstance(model, MetaLearner):
            model._check_fitted()
        width = _n_inputs(model)
        if width is not None and width != preprocessor.n_features_out:
            raise MetamedValueError(
                f"The model takes {width} inputs but the preprocessor makes "
                f"{preprocessor.n_features_out}; pair the model with the Preprocessor it was "
                "trained with."
            )
        self.preprocessor = preprocessor
        self.model = model
        self.provenance = dict(provenance or {})

    @property
    def feature_names_in_(self) -> list[str]:
        """The raw columns a patient row must have (outcome and group columns excluded)."""
        return list(self.preprocessor.schema.features)

    def check_columns(self, frame: pd.DataFrame) -> list[str]:
        """Check that ``frame`` has every input column; return the columns that are ignored.

        Raises :class:`~metamed.errors.MetamedValueError` naming the first missing column
        (with a "did you mean") and listing all missing ones.
        """
        if not isinstance(frame, pd.DataFrame):
            raise MetamedTypeError(
                f"Expected a pandas DataFrame of patient rows, got {type(frame).__name__}."
            )
        present = set(map(str, frame.columns))
        missing = [c for c in self.feature_names_in_ if c not in present]
        if missing:
            col = missing[0]
            raise MetamedValueError(
                f"Patient rows lack input column '{col}'.{did_you_mean(col, present)} "
                f"Missing: {', '.join(missing)}; expected columns: {', '.join(self.feature_names_in_)}."
            )
        wanted = set(self.feature_names_in_)
        return [str(c) for c in frame.columns if str(c) not in wanted]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix for raw ``frame`` (columns checked first)."""
        self.check_columns(frame)
        return self.preprocessor.transform(frame)

    # -- adapting and predicting -------------------------------------------------------
    def adapt(
        self,
        support: pd.DataFrame,
        coverage: float | None = None,
        method: str = "auto",
        record: dict[str, Any] | None = None,
        recalibrate: bool = False,
    ) -> Pipeline:
        """A pipeline adapted to the task whose labelled raw rows are ``support``.

        ``support`` needs the input columns and the outcome column; the meta-learner is
        unchanged.  With ``coverage`` (e.g. 0.9) the model is wrapped in a
        :class:`~metamed.learners.conformal.ConformalModel` calibrated on the same rows
        (``method`` as in :func:`~metamed.learners.conformal.conformal_adapt`), so that
        :meth:`predict_set` / :meth:`predict_interval` work.  ``record`` adds entries to
        the ``adapted_from`` provenance (the parent artifact, the support data's hash).
        With ``recalibrate`` (binary outcomes) every adaptation, the conformal fold models'
        included, is recalibrated on its own support rows, cross-validated within them
        (:class:`~metamed.learners.recalibration.RecalibratingAdapter`).
        """
        if not isinstance(self.model, MetaLearner):
            raise MetamedTypeError(
                "This pipeline already holds an adapted model; adapt the meta-learner's "
                "pipeline instead."
            )
        schema = self.preprocessor.schema
        task = Task(
            "support",
            self.transform(support),
            outcome_array(support, schema),
            schema.outcome_type,
        )
        adapter: Adapter = RecalibratingAdapter(self.model) if recalibrate else self.model
        adapted: AdaptedModel
        if coverage is None:
            adapted = adapter.adapt(task)
        else:
            adapted = conformal_adapt(adapter, task, coverage, method)
        provenance = {
            **self.provenance,
            "adapted_from": {
                "learner": self.model.name,
                "support_rows": len(task),
                **({"recalibrated": True} if recalibrate else {}),
                **(record or {}),
            },
        }
        return Pipeline(self.preprocessor, adapted, provenance)

    def _adapted(self) -> AdaptedModel:
        if not isinstance(self.model, AdaptedModel):
            raise MetamedTypeError(
                "This pipeline holds a meta-learner, which predicts only after adaptation: "
                "call pipeline.adapt(support_rows) with labelled rows of the task first."
            )
        return self.model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(y = 1) for each raw patient row of ``frame``, shape (n,); binary outcomes only."""
        model = self._adapted()
        if not isinstance(model, BinaryModel):
            raise MetamedTypeError(
                f"predict_proba gives the probabilities of a binary outcome; this pipeline "
                f"predicts a {model.outcome_type} one: use predict(rows)."
            )
        return model.predict_proba(self.transform(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Class labels (binary) or predicted values (numeric) for each raw row, shape (n,)."""
        model = self._adapted()
        return model.predict(self.transform(frame))

    def _conformal(self, kind: type[ConformalSetModel | ConformalIntervalModel]):
        model = self._adapted()
        if not isinstance(model, kind):
            what = "sets" if kind is ConformalSetModel else "intervals"
            raise MetamedTypeError(
                f"Prediction {what} need a model adapted with a coverage "
                "(pipeline.adapt(support_rows, coverage=0.9))"
                + (
                    ""
                    if isinstance(model, (ConformalSetModel, ConformalIntervalModel))
                    else ", and this one was adapted without"
                )
                + f"; {what} are for {kind.outcome_type} outcomes."
            )
        return model

    def predict_set(self, frame: pd.DataFrame) -> np.ndarray:
        """Conformal prediction sets for each raw row: (n, 2) bool ("holds 0", "holds 1")."""
        model: ConformalSetModel = self._conformal(ConformalSetModel)
        return model.predict_set(self.transform(frame))

    def predict_interval(self, frame: pd.DataFrame) -> np.ndarray:
        """Conformal prediction intervals for each raw row (numeric outcomes): (n, 2)."""
        model: ConformalIntervalModel = self._conformal(ConformalIntervalModel)
        return model.predict_interval(self.transform(frame))

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save preprocessing, model and provenance as one artifact folder; return it."""
        content = self.model._artifact_content()
        schema = self.preprocessor.schema
        content["outcome"] = {
            **content["outcome"],
            "column": schema.outcome,
            "unit": schema.units.get(schema.outcome),
        }
        content["features"] = feature_schema(self.preprocessor)
        content["preprocessing"] = self.preprocessor.to_dict()
        content["provenance"] = self.provenance
        return write_artifact(path, content)

    @classmethod
    def load(cls, path: str | Path) -> Pipeline:
        """Load a pipeline saved with :meth:`save` (checksums and format verified first)."""
        content = read_artifact(path)
        state = content.get("preprocessing")
        if not isinstance(state, dict):
            raise artifact_error(
                path,
                "it holds a model without preprocessing (saved with the model's own save); "
                "load it with MetaLearner.load or AdaptedModel.load.",
            )
        try:
            preprocessor = Preprocessor.from_dict(state)
        except (KeyError, TypeError, ValueError) as error:
            raise artifact_error(
                path, f"its preprocessing state is incomplete ({error})."
            ) from None
        if content.get("kind") == ADAPTED_MODEL:
            model: MetaLearner | AdaptedModel = AdaptedModel._from_artifact_content(content, path)
        else:
            model = MetaLearner._from_artifact_content(content, path)
        return cls(preprocessor, model, content.get("provenance"))

    def __repr__(self) -> str:
        return f"Pipeline({len(self.feature_names_in_)} input columns -> {self.model!r})"
