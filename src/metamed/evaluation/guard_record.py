"""The adapt-or-not guard's record: how often it chose well, and what that cost or saved.

The protocol keeps, for every episode of a guard method, what the guard served and the
query's metrics of the served model and of its two candidates, always adapting
(``adapted``) and never adapting (``pooled``) (:data:`~metamed.evaluation.protocol.DECISION_COLUMNS`).
From that table :func:`guard_record` gives, per dataset, guard method, K and metric:

- how often the guard served each candidate (``share_pooled``, ``share_blend``,
  ``share_adapted``);
- ``share_right``: the share of episodes where what it served scored at least as well
  as the better of always and never adapting on that query (for a pure choice, that it
  chose the better one; a blend must match the better of the two);
- ``saved_vs_adapted`` and ``saved_vs_pooled``: the mean gain of the guard over always
  adapting and over never adapting, in the metric's units and signed so that a positive
  value is the guard doing better (lower Brier, higher AUROC, slope nearer 1), with a
  bootstrap CI over held-out tasks (each task's gain averaged over its draws first, as
  every other interval metamed reports; :mod:`metamed.evaluation.bootstrap`).

:func:`guard_breaches` judges the issue's goal for the guard from that record: never
worse than the better of always and never adapting beyond its CI.  The better of the two
scores at least as well as each of them, so the guard breaches the goal wherever it did
worse than either one beyond its CI: a ``saved_vs_*`` interval wholly below 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metamed.errors import MetamedValueError
from metamed.evaluation.bootstrap import bootstrap_ci
from metamed.evaluation.metrics import get_metric
from metamed.learners.guard import CHOICES

__all__ = ["GUARD_BREACH_COLUMNS", "GUARD_RECORD_COLUMNS", "guard_breaches", "guard_record"]

#: Against what the guard's gains are measured: never adapting, always adapting.
_OPTIONS = ("pooled", "adapted")

GUARD_RECORD_COLUMNS = [
    "dataset", "method", "k", "metric", "n_episodes", "n_tasks",
    *(f"share_{c}" for c in CHOICES), "share_right",
    *(f"saved_vs_{o}{end}" for o in _OPTIONS for end in ("", "_low", "_high")),
]  # fmt: skip

GUARD_BREACH_COLUMNS = [
    "dataset", "method", "k", "metric", "against", "saved", "low", "high", "n_tasks",
]  # fmt: skip

#: Two scores closer than this are a tie (the served model *is* one of the candidates).
_TIE = 1e-12


def guard_record(
    decisions: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """The guard's record per dataset, method, K and metric (see the module docstring).

    Parameters
    ----------
    decisions : DataFrame
        The protocol's decisions table (``ProtocolResult.decisions``, ``decisions.csv``).
    n_boot, level, seed
        Bootstrap settings; each interval's cell is
        ``("guard", dataset, method, k, metric, option)``.

    Returns
    -------
    DataFrame
        Columns :data:`GUARD_RECORD_COLUMNS`; empty when no guard ran.
    """
    missing = {"dataset", "method", "task", "k", "draw", "choice", "metric", "served",
               "adapted", "pooled"} - set(decisions.columns)  # fmt: skip
    if missing:
        raise MetamedValueError(
            f"decisions table lacks column(s) {sorted(missing)}; pass the protocol's "
            "decisions (ProtocolResult.decisions or a run folder's decisions.csv)."
        )
    rows = []
    for (dataset, method, k, metric), cell in decisions.groupby(
        ["dataset", "method", "k", "metric"], sort=True
    ):
        scorer = get_metric(str(metric))
        finite = cell[np.isfinite(cell[["served", *_OPTIONS]].to_numpy(float)).all(axis=1)]
        loss = {c: finite[c].map(scorer.loss).to_numpy(float) for c in ("served", *_OPTIONS)}
        row: dict[str, object] = {
            "dataset": dataset,
            "method": method,
            "k": int(cell["k"].iloc[0]),
            "metric": metric,
            "n_episodes": len(finite),
            "n_tasks": int(finite["task"].nunique()),
        }
        for choice in CHOICES:
            row[f"share_{choice}"] = float((finite["choice"] == choice).mean())
        best = np.minimum(loss["adapted"], loss["pooled"])
        row["share_right"] = float((loss["served"] <= best + _TIE).mean())
        for option in _OPTIONS:
            gains = pd.Series(loss[option] - loss["served"], index=finite.index)
            per_task = gains.groupby(finite["task"]).mean()
            ci = bootstrap_ci(
                per_task.to_numpy(), n_boot=n_boot, level=level, seed=seed,
                cell=("guard", dataset, method, k, metric, option),
            )  # fmt: skip
            row[f"saved_vs_{option}"] = ci.mean
            row[f"saved_vs_{option}_low"] = ci.low
            row[f"saved_vs_{option}_high"] = ci.high
        rows.append(row)
    return pd.DataFrame(rows, columns=GUARD_RECORD_COLUMNS)


def guard_breaches(record: pd.DataFrame) -> pd.DataFrame:
    """Where the guard did worse than always or never adapting beyond its CI.

    Parameters
    ----------
    record : DataFrame
        :func:`guard_record`'s table (any subset of its rows, e.g. the page's metrics).

    Returns
    -------
    DataFrame
        Columns :data:`GUARD_BREACH_COLUMNS`, one row per dataset, guard method, K, metric
        and option (``against``: ``"adapted"``, always adapting, or ``"pooled"``, never
        adapting) whose ``saved`` interval lies wholly below 0; empty where the guard
        meets the goal.  A cell without an interval (one held-out task) is not judged.
    """
    rows = []
    for row in record.to_dict("records"):
        for option in _OPTIONS:
            high = row[f"saved_vs_{option}_high"]
            if np.isfinite(high) and high < 0:
                rows.append({
                    "dataset": row["dataset"], "method": row["method"], "k": row["k"],
                    "metric": row["metric"], "against": option,
                    "saved": row[f"saved_vs_{option}"], "low": row[f"saved_vs_{option}_low"],
                    "high": high, "n_tasks": row["n_tasks"],
                })  # fmt: skip
    return pd.DataFrame(rows, columns=GUARD_BREACH_COLUMNS)
