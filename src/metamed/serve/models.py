"""Deployed models: load an artifact, describe it, adapt it to a site, predict with it.

Shared by the command line (``metamed adapt / predict / inspect``) and the HTTP service,
so that both check rows the same way (:mod:`metamed.serve.validation`) and write the
same lineage into the adapted artifact's manifest (``provenance.adapted_from``):

- ``parent``: the meta-trained artifact's ``id`` (its folder name) and
  ``manifest_sha256`` (:func:`metamed.artifacts.artifact_id`, which pins every file);
- ``support_sha256``: the sha256 of the support data as received: the CSV file's bytes
  (``sha256sum local.csv`` gives the same), or for the service the request's rows in
  canonical JSON (sorted keys, no spaces);
- ``coverage`` and ``method`` of the conformal calibration, and ``support_rows``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metamed.artifacts import MANIFEST, artifact_id, read_artifact
from metamed.errors import (
    InvalidInputError,
    MetamedValueError,
    ModelStateError,
    OutputPlaceError,
    unknown_name,
)
from metamed.learners import ConformalModel, MetaLearner, Pipeline
from metamed.learners.conformal import DEFAULT_COVERAGE, ConformalIntervalModel, ConformalSetModel
from metamed.learners.guard import GuardedModel
from metamed.outcomes import BINARY, as_outcome
from metamed.serve.encoding import RowEncoder
from metamed.serve.validation import (
    CATEGORICAL,
    DEFAULT_MAX_ROWS,
    NUMERIC_COLUMN,
    InputSchema,
    allowed_range,
)

__all__ = [
    "MODEL_ID_PATTERN",
    "ModelStore",
    "ServedModel",
    "adapt_pipeline",
    "canonical_sha256",
    "check_model_id",
    "load_model",
    "predict_inputs",
    "predict_records",
    "predict_rows",
]

#: Model ids are folder names: letters, digits, '.', '_' and '-', no leading dot.
MODEL_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_MODEL_ID = re.compile(MODEL_ID_PATTERN)


def canonical_sha256(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        raise MetamedValueError(
            f"Model id {model_id!r} is not valid: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return model_id


def _jsonable(value: Any) -> Any:
    """Manifest values as plain JSON (arrays as lists, NaN as None)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class ServedModel:
    """A loaded artifact with what serving it needs."""

    id: str
    path: Path
    pipeline: Pipeline
    schema: InputSchema
    summary: dict[str, Any]
    #: Checks JSON records and encodes them without pandas (:mod:`metamed.serve.encoding`).
    encoder: RowEncoder

    @property
    def adapted(self) -> bool:
        return not isinstance(self.pipeline.model, MetaLearner)

    @property
    def coverage(self) -> float | None:
        model = self.pipeline.model
        return model.coverage if isinstance(model, ConformalModel) else None


def _summary(model_id: str, content: dict[str, Any], sha: str) -> dict[str, Any]:
    provenance = content.get("provenance") or {}
    columns = []
    for col in (content.get("features") or {}).get("columns", []):
        entry = {k: col.get(k) for k in ("name", "type", "unit")}
        if col.get("type") == NUMERIC_COLUMN:
            entry["range"] = col.get("range")
            allowed = allowed_range(col.get("range"))
            entry["accepted_range"] = list(allowed) if allowed else None
        if col.get("type") == CATEGORICAL:
            entry["categories"] = [c for c in col.get("categories", []) if c != "<missing>"]
        columns.append(entry)
    model = content.get("model") or {}
    uncertainty = None
    if str(model.get("class", "")).startswith("Conformal"):
        state = model.get("state", {})
        uncertainty = {
            "coverage": state.get("coverage"),
            "method": state.get("method"),
            "calibration_rows": len(state.get("scores", [])),
            "kind": "prediction set"
            if as_outcome(str((content.get("outcome") or {}).get("kind"))).predicts_probabilities
            else "prediction interval",
        }
    learner = (content.get("learner") or {}).get("name") or (
        provenance.get("adapted_from") or {}
    ).get("learner")
    data_keys = ("dataset", "source", "licence", "citation", "checksums")
    return _jsonable(
        {
            "id": model_id,
            "kind": content.get("kind"),
            "learner": learner,
            "manifest_sha256": sha,
            "metamed_version": content.get("metamed_version"),
            "outcome": content.get("outcome"),
            "features": columns,
            "uncertainty": uncertainty,
            "lineage": provenance.get("adapted_from"),
            "training": provenance.get("training"),
            "evaluation": provenance.get("evaluation"),
            "data": {k: provenance[k] for k in data_keys if k in provenance},
        }
    )


def load_model(
    path: str | Path, model_id: str | None = None, max_rows: int = DEFAULT_MAX_ROWS
) -> ServedModel:
    """Load and check the pipeline artifact at ``path`` (see :class:`ServedModel`)."""
    path = Path(path)
    sha = artifact_id(path)
    content = read_artifact(path)
    pipeline = Pipeline.load(path)
    schema = InputSchema(content.get("features") or {}, content.get("outcome") or {}, max_rows)
    model_id = model_id or path.name
    summary = _summary(model_id, content, sha)
    return ServedModel(model_id, path, pipeline, schema, summary, RowEncoder(schema, pipeline.preprocessor))


def adapt_pipeline(
    parent: ServedModel,
    support: pd.DataFrame,
    support_sha256: str,
    coverage: float = DEFAULT_COVERAGE,
    method: str = "auto",
    recalibrate: bool = False,
) -> Pipeline:
    """``parent`` adapted to checked ``support`` rows, calibrated to ``coverage``, lineage
    recorded; with ``recalibrate``, its risks recalibrated on the same rows first."""
    if parent.adapted:
        raise ModelStateError(
            f"Model '{parent.id}' is already adapted to a site; adapt its meta-trained parent "
            f"({(parent.summary.get('lineage') or {}).get('parent', {}).get('id', 'unknown')}) "
            "instead."
        )
    record = {
        "parent": {"id": parent.id, "manifest_sha256": parent.summary["manifest_sha256"]},
        "support_sha256": support_sha256,
        "coverage": coverage,
        "method": method,
    }
    if recalibrate and parent.schema.outcome_type != BINARY:
        raise InvalidInputError(
            f"Recalibration maps risks of a binary outcome; model '{parent.id}' predicts a "
            f"{parent.schema.outcome_type} one. Adapt without recalibration.",
            field="recalibrate",
        )
    adapted = parent.pipeline.adapt(
        support, coverage=coverage, method=method, record=record, recalibrate=recalibrate
    )
    if isinstance(adapted.model, ConformalModel):  # "auto" resolved to the method used
        adapted.provenance["adapted_from"]["method"] = adapted.model.method
    served = adapted.model.model if isinstance(adapted.model, ConformalModel) else adapted.model
    if isinstance(served, GuardedModel):  # what the adapt-or-not guard chose for this site
        adapted.provenance["adapted_from"]["guard"] = {
            "choice": served.choice,
            "reason": served.reason,
        }
    return adapted


def predict_rows(served: ServedModel, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Risks (binary) or predictions (numeric) and their conformal set or interval.

    Returns columns: binary ``risk``, ``holds_0``, ``holds_1``; numeric ``prediction``,
    ``lower``, ``upper``.  The sets and intervals need a model adapted with a coverage.
    """
    _check_predicts(served)
    return predict_inputs(served, served.pipeline.transform(frame))


def predict_records(served: ServedModel, records: Sequence[Any]) -> dict[str, np.ndarray]:
    """:func:`predict_rows` of JSON records, checked against the model's schema."""
    return predict_inputs(served, served.encoder.encode(records))


def _check_predicts(served: ServedModel) -> ConformalModel:
    if not served.adapted:
        raise ModelStateError(
            f"Model '{served.id}' is meta-trained but not adapted to a site; adapt it with "
            "the site's labelled support patients first (metamed adapt, or POST "
            f"/v1/models/{served.id}/adapt)."
        )
    model = served.pipeline.model
    if not isinstance(model, ConformalModel):
        raise ModelStateError(
            f"Model '{served.id}' was adapted without conformal calibration; adapt it again "
            "with metamed adapt (which calibrates on the support rows)."
        )
    return model


def predict_inputs(served: ServedModel, X: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`predict_rows` of the preprocessed input matrix ``X``."""
    model = _check_predicts(served)
    if isinstance(model, ConformalSetModel):
        risk, sets = model.predict_proba_and_set(X)
        return {"risk": risk, "holds_0": sets[:, 0], "holds_1": sets[:, 1]}
    assert isinstance(model, ConformalIntervalModel)
    prediction, interval = model.predict_and_interval(X)
    return {"prediction": prediction, "lower": interval[:, 0], "upper": interval[:, 1]}


class ModelStore:
    """The model folder of a service: every sub-folder with a manifest is a model.

    Loaded models are kept in memory and reloaded when their manifest changes.  Folders
    without a manifest (an adaptation killed before its commit) are never listed, and
    :meth:`recover` removes them at start-up.
    """

    def __init__(self, root: str | Path, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.root = Path(root)
        self.max_rows = max_rows
        self._cache: dict[str, tuple[int, ServedModel]] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if _MODEL_ID.fullmatch(p.name) and (p / MANIFEST).is_file()
        )

    def path(self, model_id: str) -> Path:
        return self._stamp(model_id)[0]

    def _stamp(self, model_id: str) -> tuple[Path, int]:
        """The model's folder and its manifest's mtime, from one stat (every request asks)."""
        check_model_id(model_id)
        path = self.root / model_id
        try:
            info = (path / MANIFEST).stat()
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise unknown_name("model", model_id, self.ids())
        return path, info.st_mtime_ns

    def _cached(self, model_id: str, stamp: int) -> ServedModel | None:
        with self._lock:
            cached = self._cache.get(model_id)
        return cached[1] if cached is not None and cached[0] == stamp else None

    def loaded(self, model_id: str) -> ServedModel | None:
        """The model if :meth:`get` would answer from memory (a stat, no load), else None."""
        return self._cached(model_id, self._stamp(model_id)[1])

    def get(self, model_id: str) -> ServedModel:
        path, stamp = self._stamp(model_id)
        served = self._cached(model_id, stamp)
        if served is None:
            # stamped before the load: a manifest rewritten meanwhile reloads next time
            served = load_model(path, model_id, self.max_rows)
            with self._lock:
                self._cache[model_id] = (stamp, served)
        return served

    def recover(self) -> list[str]:
        """Remove model folders left without a manifest by a killed adaptation; return them."""
        from metamed.outputs import STAGING_PREFIX, check_output_place

        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith(".") or (folder / MANIFEST).exists():
                continue
            entries = list(folder.iterdir())
            if not entries or not all(e.name.startswith(STAGING_PREFIX) for e in entries):
                continue  # not ours: a folder someone put there
            try:
                check_output_place(folder, force=True)  # clears staging folders of dead runs
            except OutputPlaceError:  # an adaptation into it is running now
                continue
            if not any(folder.iterdir()):
                folder.rmdir()
                removed.append(folder.name)
        return removed
