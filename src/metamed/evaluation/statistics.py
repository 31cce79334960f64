"""Uncertainty and comparisons over held-out tasks, computed from the tidy results table.

The unit of replication is the **held-out task** (site, condition, patient), not the
episode: the R support draws of one task share that task's patients and difficulty, so
treating them as independent would make confidence intervals far too narrow.  Every
function here therefore first averages a metric over draws within each task and then
works with one number per task:

* :func:`~metamed.evaluation.bootstrap.bootstrap_ci` resamples tasks (percentile
  bootstrap of the mean); every interval is seeded by its cell's identity, so it does
  not depend on which other intervals were asked for.
* :func:`summarise` reports mean over tasks, its CI, ``n_tasks`` and ``n_draws``.
* :func:`paired_comparison` pairs two methods on identical episodes (same task and
  draw, hence the same support and query rows), averages the differences within each
  task, and gives a task-bootstrap CI and a Wilcoxon signed-rank p-value.
* :func:`verdicts` compares each method with the best baseline and judges it (better,
  worse, leaning, no clear difference); :mod:`metamed.report.verdicts` words it.

Which way a metric is better, and its ideal value, come from the metric registry
(:data:`metamed.evaluation.metrics.METRICS`).

With few held-out tasks (e.g. 4 hospitals) a bootstrap over tasks is coarse: there are
only ``n_tasks ** n_tasks`` resamples, the percentile interval tends to be too narrow,
and a two-sided Wilcoxon test on 4 tasks cannot reach p < 0.125.  ``n_tasks`` is always
reported so a reader can judge; results on a handful of tasks should be read as
descriptive, not as evidence that one method is better.

Expected columns of ``results``: ``method, dataset, task, k, draw, metric, value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from metamed.errors import MetamedValueError, unknown_name
from metamed.evaluation.bootstrap import ConfidenceInterval, _check_settings, bootstrap_ci
from metamed.evaluation.metrics import get_metric, outcome_kind, primary_metric

__all__ = [
    "RESULT_COLUMNS",
    "FEW_TASKS",
    "JUDGEMENTS",
    "ConfidenceInterval",
    "PairedComparison",
    "bootstrap_ci",
    "task_means",
    "summarise",
    "paired_comparison",
    "best_baseline",
    "verdicts",
]

RESULT_COLUMNS: tuple[str, ...] = ("method", "dataset", "task", "k", "draw", "metric", "value")

# Below this many held-out tasks verdicts carry a warning that the CI is coarse;
# 10 is a rule of thumb (the bootstrap distribution of a mean of < 10 units is lumpy).
FEW_TASKS: int = 10

#: The judgements :func:`verdicts` can give, from strongest evidence to none.
JUDGEMENTS: tuple[str, ...] = (
    "better",
    "worse",
    "leaning better",
    "leaning worse",
    "no clear difference",
    "undetermined",
)


@dataclass(frozen=True)
class PairedComparison:
    """``method - reference`` on identical episodes, summarised over tasks.

    Attributes
    ----------
    method, reference, metric : str
        What was compared.
    k : int
        Support size.
    mean_method, mean_reference : float
        Mean over tasks (per-task mean over paired draws) of each method.
    mean_difference : float
        Mean over tasks of the per-task mean difference ``method - reference``.
    ci_low, ci_high : float
        Percentile bootstrap CI of ``mean_difference``, resampling tasks.
    p_value : float
        Two-sided Wilcoxon signed-rank p-value (see :func:`paired_comparison`).
    n_tasks : int
        Tasks with at least one complete pair.
    n_pairs : int
        Paired episodes (task, draw) used.
    """

    method: str
    reference: str
    metric: str
    k: int
    mean_method: float
    mean_reference: float
    mean_difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_tasks: int
    n_pairs: int

    def to_dict(self) -> dict[str, object]:
        """Return the fields as a plain dict (one row of a DataFrame)."""
        return asdict(self)


# ----------------------------------------------------------------------------- helpers


def _check_results(results: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(results, pd.DataFrame):
        raise MetamedValueError(
            f"results must be a pandas DataFrame with columns {list(RESULT_COLUMNS)}; "
            f"received {type(results).__name__}. Use the table produced by the evaluation protocol."
        )
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise MetamedValueError(
            f"results is missing column(s) {missing}; expected {list(RESULT_COLUMNS)}, "
            f"received {list(results.columns)}. Use the tidy table from the evaluation protocol."
        )
    return results


def _select(
    results: pd.DataFrame, *, metric: str, k: int | None = None, dataset: str | None = None
) -> pd.DataFrame:
    known_metrics = results["metric"].unique().tolist()
    if metric not in known_metrics:
        raise unknown_name("metric", metric, [str(m) for m in known_metrics])
    rows = results[results["metric"] == metric]
    if dataset is not None:
        known = rows["dataset"].unique().tolist()
        if dataset not in known:
            raise unknown_name("dataset", dataset, [str(d) for d in known])
        rows = rows[rows["dataset"] == dataset]
    if k is not None:
        known_k = sorted(rows["k"].unique().tolist())
        if k not in known_k:
            raise MetamedValueError(
                f"No results for K={k} on metric '{metric}'; K values present: {known_k}. "
                f"Pick one of those or rerun the protocol with K={k}."
            )
        rows = rows[rows["k"] == k]
    return rows


def _require_single_dataset(rows: pd.DataFrame, dataset: str | None) -> None:
    datasets = rows["dataset"].unique().tolist()
    if dataset is None and len(datasets) > 1:
        raise MetamedValueError(
            f"results hold several datasets {sorted(map(str, datasets))}; tasks from different "
            f"datasets cannot be pooled in one comparison. Pass dataset=<name>."
        )


# ---------------------------------------------------------------------------- public API


def task_means(results: pd.DataFrame) -> pd.DataFrame:
    """Average each metric over draws within each task (NaN draws skipped).

    Parameters
    ----------
    results : DataFrame
        Tidy results table.

    Returns
    -------
    DataFrame
        Columns ``dataset, method, k, metric, task, value, n_draws`` where ``value`` is
        the mean over finite draws (``nan`` when none) and ``n_draws`` counts them.
    """
    _check_results(results)
    keys = ["dataset", "method", "k", "metric", "task"]
    grouped = results.groupby(keys, sort=True, dropna=False)["value"]
    out = grouped.agg(value="mean", n_draws="count").reset_index()
    return out


def summarise(
    results: pd.DataFrame, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Mean over held-out tasks with bootstrap CI, per dataset x method x K x metric.

    Each task contributes one value: its metric averaged over the draws where it is
    defined.  Tasks whose metric is undefined in every draw are left out of ``n_tasks``.

    Parameters
    ----------
    results : DataFrame
        Tidy results table (``method, dataset, task, k, draw, metric, value``).
    n_boot : int, default 2000
        Bootstrap resamples per cell.
    level : float, default 0.95
        Confidence level.
    seed : int, default 0
        Seed; each cell's resamples derive from it and the cell's identity
        ``("summary", dataset, method, k, metric)``, so the table is reproducible and a
        cell's interval does not depend on the other cells or the row order.

    Returns
    -------
    DataFrame
        Columns ``dataset, method, k, metric, mean, ci_low, ci_high, n_tasks, n_draws``;
        ``n_draws`` is the number of distinct draw ids with a finite value in that cell.
    """
    _check_results(results)
    _check_settings(n_boot, level)
    per_task = task_means(results)
    finite = results[np.isfinite(results["value"].astype(float))]
    draw_counts = finite.groupby(["dataset", "method", "k", "metric"])["draw"].nunique()
    rows: list[dict[str, object]] = []
    for (dataset, method, k, metric), cell in per_task.groupby(
        ["dataset", "method", "k", "metric"], sort=True
    ):
        ci = bootstrap_ci(
            cell["value"].to_numpy(), n_boot=n_boot, level=level, seed=seed,
            cell=("summary", dataset, method, k, metric),
        )  # fmt: skip
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "k": k,
                "metric": metric,
                "mean": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "n_tasks": ci.n_tasks,
                "n_draws": int(draw_counts.get((dataset, method, k, metric), 0)),
            }
        )
    columns = ["dataset", "method", "k", "metric", "mean", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=[*columns, "n_tasks", "n_draws"])


def paired_comparison(
    results: pd.DataFrame,
    method: str,
    reference: str,
    metric: str,
    k: int,
    *,
    dataset: str | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    test_unit: Literal["task", "episode"] = "task",
) -> PairedComparison:
    """Compare ``method`` with ``reference`` on identical episodes (same task and draw).

    Only episodes where both methods have a finite value are paired.  Differences
    ``method - reference`` are averaged within each task; the reported mean difference
    is the mean of those task means and its CI resamples tasks.

    Parameters
    ----------
    results : DataFrame
        Tidy results table.
    method, reference : str
        Method names as they appear in ``results["method"]``.
    metric : str
        Metric name, e.g. ``"auroc"``.
    k : int
        Support size.
    dataset : str, optional
        Required when ``results`` holds several datasets.
    n_boot, level, seed
        Bootstrap settings, as in :func:`~metamed.evaluation.bootstrap.bootstrap_ci`; the
        interval's cell is ``("paired", dataset, method, reference, metric, k)``.
    test_unit : {"task", "episode"}, default "task"
        What the Wilcoxon signed-rank test treats as independent pairs.  ``"task"``
        (default) tests the per-task mean differences, matching the bootstrap; it is
        honest but has little power with few tasks (4 tasks: p >= 0.125).
        ``"episode"`` tests every (task, draw) difference; draws of one task are not
        independent, so its p-values are optimistic and should be read as descriptive.

    Returns
    -------
    PairedComparison
        All differences are ``method - reference``.  ``p_value`` is 1.0 when every
        difference is zero and ``nan`` when there are no pairs.
    """
    _check_results(results)
    if test_unit not in ("task", "episode"):
        raise MetamedValueError(f"test_unit must be 'task' or 'episode'; received {test_unit!r}.")
    rows = _select(results, metric=metric, k=k, dataset=dataset)
    _require_single_dataset(rows, dataset)
    known_methods = [str(m) for m in results["method"].unique()]
    for name in (method, reference):
        if name not in known_methods:
            raise unknown_name("method", name, known_methods)
    episodes = _episode_table(rows, (method, reference), metric, k)
    return _compare(episodes, method, reference, metric, k, n_boot, level, seed, test_unit)


def _episode_table(rows: pd.DataFrame, methods: Sequence[str], metric: str, k: int) -> pd.DataFrame:
    """One dataset's values at one K and metric: one row per episode, one column per method.

    The index is ``(dataset, task, draw)``, sorted, so every comparison built from it
    sees the episodes in the same order whichever other methods the table holds.
    """
    keys = ["dataset", "task", "draw"]
    part = rows.loc[rows["method"].isin(methods), ["method", *keys, "value"]]
    duplicated = part.duplicated(["method", *keys])
    if duplicated.any():
        name = part.loc[duplicated, "method"].iloc[0]
        raise MetamedValueError(
            f"Method '{name}' has several rows for the same (task, draw) at K={k}, metric "
            f"'{metric}'; expected one. Deduplicate results (e.g. rows from two runs "
            f"appended together)."
        )
    wide = part.pivot(index=keys, columns="method", values="value")
    wide.columns = [str(c) for c in wide.columns]
    return wide.sort_index()


def _compare(
    episodes: pd.DataFrame,
    method: str,
    reference: str,
    metric: str,
    k: int,
    n_boot: int,
    level: float,
    seed: int,
    test_unit: Literal["task", "episode"],
) -> PairedComparison:
    """``method - reference`` on the episodes where both have a finite value."""
    empty = np.full(len(episodes), np.nan)
    m = episodes[method].to_numpy(dtype=float) if method in episodes else empty
    r = episodes[reference].to_numpy(dtype=float) if reference in episodes else empty
    keep = np.isfinite(m) & np.isfinite(r)
    index = episodes.index[keep]
    paired = pd.DataFrame({"value_m": m[keep], "value_r": r[keep]}, index=index)
    paired["diff"] = paired["value_m"] - paired["value_r"]
    per_task = paired.groupby(level=["dataset", "task"], sort=True).mean()
    diffs_task = per_task["diff"].to_numpy(dtype=float)

    # The dataset is part of the cell's identity whether or not the caller named it.
    cell_dataset = episodes.index.get_level_values("dataset")[0] if len(episodes) else ""
    cell = ("paired", cell_dataset, method, reference, metric, int(k))
    ci = bootstrap_ci(diffs_task, n_boot=n_boot, level=level, seed=seed, cell=cell)
    test_diffs = diffs_task if test_unit == "task" else paired["diff"].to_numpy(dtype=float)
    p_value = _wilcoxon_p(test_diffs)
    return PairedComparison(
        method=method,
        reference=reference,
        metric=metric,
        k=int(k),
        mean_method=float(per_task["value_m"].mean()) if len(per_task) else float("nan"),
        mean_reference=float(per_task["value_r"].mean()) if len(per_task) else float("nan"),
        mean_difference=ci.mean,
        ci_low=ci.low,
        ci_high=ci.high,
        p_value=p_value,
        n_tasks=len(per_task),
        n_pairs=len(paired),
    )


def _wilcoxon_p(diffs: np.ndarray) -> float:
    if len(diffs) == 0:
        return float("nan")
    # Differences that are zero up to float noise carry no sign; scipy's default
    # ("wilcox") zero handling drops them, and raises when nothing is left.
    nonzero = diffs[np.abs(diffs) > 1e-12]
    if len(nonzero) == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero, alternative="two-sided").pvalue)


def best_baseline(
    results: pd.DataFrame,
    baselines: Sequence[str],
    metric: str,
    k: int,
    *,
    dataset: str | None = None,
) -> str:
    """Name of the baseline with the best mean over tasks at support size ``k``.

    "Best" follows the metric's direction in the registry: the highest mean, the lowest
    where lower is better (Brier, ECE, RMSE, MAE), or the closest to the ideal value
    (calibration slope 1, intercept 0).  Ties go to the baseline listed first.

    Parameters
    ----------
    results : DataFrame
        Tidy results table.
    baselines : sequence of str
        Candidate baseline method names; those absent at this K are ignored.
    metric : str
        Metric name.
    k : int
        Support size.
    dataset : str, optional
        Required when ``results`` holds several datasets.

    Returns
    -------
    str
        The chosen baseline's name.

    Raises
    ------
    MetamedValueError
        When no listed baseline has a finite result at this K and metric.
    """
    _check_results(results)
    scorer = get_metric(metric)
    rows = _select(results, metric=metric, k=k, dataset=dataset)
    _require_single_dataset(rows, dataset)
    per_task = rows.groupby(["method", "task"])["value"].mean()
    scores: list[tuple[float, int, str]] = []
    for order, name in enumerate(baselines):
        if name not in per_task.index.get_level_values("method"):
            continue
        task_values = per_task.loc[name].to_numpy(dtype=float)
        task_values = task_values[np.isfinite(task_values)]
        if len(task_values) == 0:
            continue  # metric undefined on every task for this baseline
        scores.append((scorer.loss(float(task_values.mean())), order, name))
    if not scores:
        present = sorted(map(str, rows["method"].unique()))
        raise MetamedValueError(
            f"None of the baselines {list(baselines)} has a finite '{metric}' result at K={k}; "
            f"methods present there: {present}. Check the baseline names or rerun them at K={k}."
        )
    return min(scores)[2]


def _judge(cmp: PairedComparison, alpha: float) -> str:
    """One of ``better, worse, leaning better, leaning worse, no clear difference, undetermined``.

    "better"/"worse" need both the bootstrap CI to exclude 0 and the Wilcoxon test to be
    significant; when only the CI excludes 0 (typical with a handful of tasks, where the
    percentile bootstrap under-covers) the verdict is "leaning ...".
    """
    lo, hi = cmp.ci_low, cmp.ci_high
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undetermined"
    if lo <= 0.0 <= hi:
        return "no clear difference"
    # For target metrics (calibration slope / intercept) better means closer to the ideal.
    better = get_metric(cmp.metric).is_better(cmp.mean_method, cmp.mean_reference)
    direction = "better" if better else "worse"
    significant = bool(np.isfinite(cmp.p_value) and cmp.p_value < alpha)
    return direction if significant else f"leaning {direction}"


def verdicts(
    results: pd.DataFrame,
    methods: Sequence[str],
    baselines: Sequence[str],
    metric: str | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    test_unit: Literal["task", "episode"] = "task",
) -> pd.DataFrame:
    """Compare each method with the best baseline at each K and judge the difference.

    For every dataset and K the best baseline is chosen by :func:`best_baseline` (on
    all tasks at that K), then :func:`paired_comparison` gives the paired difference.
    The judgement (column ``judgement``) is "better" / "worse" only when the bootstrap CI
    excludes 0 *and* the Wilcoxon test is significant at ``alpha``; "leaning better" /
    "leaning worse" when only the CI excludes 0; "no clear difference" when the CI spans
    0; "undetermined" with fewer than 2 paired tasks.  "Better" follows the
    metric's direction in the registry (lower Brier/ECE/RMSE/MAE is better;
    slope/intercept closer to 1/0).  :func:`metamed.report.verdicts.verdict_sentences`
    words each row.

    Parameters
    ----------
    results : DataFrame
        Tidy results table.
    methods : sequence of str
        Methods to judge (e.g. the meta-learners); names missing from ``results`` raise.
    baselines : sequence of str
        Candidate baselines; a method is never compared with itself.
    metric : str, optional
        Metric to compare on; default the primary metric of the results' outcome kind
        in the registry (AUROC for binary outcomes, RMSE for numeric ones).
    n_boot, level, seed
        Bootstrap settings.
    alpha : float, default 0.05
        Significance level of the Wilcoxon test.
    test_unit : {"task", "episode"}, default "task"
        Passed to :func:`paired_comparison`.

    Returns
    -------
    DataFrame
        One row per dataset x method x K with columns ``dataset, k, method, baseline,
        metric, mean_method, mean_baseline, difference, ci_low, ci_high, p_value,
        n_tasks, n_pairs, judgement``.  Rows where no baseline has results at that K are
        skipped.

    Notes
    -----
    Held-out tasks are few in most clinical settings (a handful of sites), so these
    verdicts are coarse: a 4-task comparison cannot be significant by Wilcoxon
    (p >= 0.125) and its bootstrap CI under-covers.  ``n_tasks`` is in every sentence.
    """
    _check_results(results)
    known = [str(m) for m in results["method"].unique()]
    for name in methods:
        if name not in known:
            raise unknown_name("method", name, known)
    if test_unit not in ("task", "episode"):
        raise MetamedValueError(f"test_unit must be 'task' or 'episode'; received {test_unit!r}.")
    if metric is None:
        metric = primary_metric(outcome_kind(results["metric"].unique())).name
    get_metric(metric)  # an unknown metric fails here, before any work
    rows_metric = _select(results, metric=metric)
    out: list[dict[str, object]] = []
    for dataset in sorted(rows_metric["dataset"].unique(), key=str):
        rows_ds = rows_metric[rows_metric["dataset"] == dataset]
        for k in sorted(rows_ds["k"].unique()):
            rows_k = rows_ds[rows_ds["k"] == k]
            # One episode table and one best-baseline choice per candidate list serve every
            # method at this K (the same numbers paired_comparison gives one at a time).
            present = {str(m) for m in rows_k["method"].unique()}
            episodes = _episode_table(rows_k, sorted(present), metric, int(k))
            best: dict[tuple[str, ...], str | None] = {}
            for method in methods:
                if method not in present:
                    continue
                candidates = tuple(b for b in baselines if b != method and b in present)
                if not candidates:
                    continue
                if candidates not in best:
                    try:
                        best[candidates] = best_baseline(
                            rows_k, candidates, metric, int(k), dataset=dataset
                        )
                    except MetamedValueError:
                        best[candidates] = None  # every candidate undefined at this K
                base = best[candidates]
                if base is None:
                    continue
                cmp = _compare(
                    episodes, method, base, metric, int(k), n_boot, level, seed, test_unit
                )
                judgement = _judge(cmp, alpha)
                out.append(
                    {
                        "dataset": dataset,
                        "k": int(k),
                        "method": method,
                        "baseline": base,
                        "metric": metric,
                        "mean_method": cmp.mean_method,
                        "mean_baseline": cmp.mean_reference,
                        "difference": cmp.mean_difference,
                        "ci_low": cmp.ci_low,
                        "ci_high": cmp.ci_high,
                        "p_value": cmp.p_value,
                        "n_tasks": cmp.n_tasks,
                        "n_pairs": cmp.n_pairs,
                        "judgement": judgement,
                    }
                )
    columns = [
        "dataset", "k", "method", "baseline", "metric", "mean_method", "mean_baseline",
        "difference", "ci_low", "ci_high", "p_value", "n_tasks", "n_pairs", "judgement",
    ]  # fmt: skip
    return pd.DataFrame(out, columns=columns)
