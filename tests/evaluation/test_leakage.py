"""Leakage as a property of the evaluation protocol, checked for every registered learner.

A held-out task's query labels are what the protocol scores against; nothing that is
scored may depend on them.  So, for every learner, the protocol is run once on a small
seeded cohort and again with the held-out task's query labels changed three ways:
permuted among the query rows (same prevalence), replaced by random labels (a different
prevalence: this is what catches a leaked base rate), all turned round (so that whatever
training on them would fit, it now fits the opposite: this is what makes a leak into
meta-training or early stopping show) and one label flipped.  Each time:

- the episodes (which rows are scored) are the same: the support draw may not look at
  query labels;
- every prediction is bit-for-bit the same;
- every score is a function of the predictions table alone: recomputed from the stored
  predictions and labels, the per-episode metrics match, so the only thing a changed
  label moves is its own row's contribution.

A last check changes one query row's *features*: only that row's prediction may move
(preprocessing is fitted on training tasks only, query rows are scored independently).

These tests go through ``run_protocol`` and its output tables only; they do not spy on
learners or re-derive the episodes, so a leak anywhere between the table and the scores
(preprocessing, task construction, episode sampling, adaptation, scoring) fails them.
Every leakage assertion's message starts with ``"leak:"``:
``benchmarks/leakage_mutants.py`` counts a mutant as caught on purpose only when one of
these assertions fails.

One inherent exception, recorded here so that a failure of the episode check is read
right: a support draw holding one class is redrawn, and whether a draw is rejected
depends on the labels of the rows it drew, which may end up in the query set.  The seed
and K below give no redraw, so the episodes cannot move.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema
from metamed.evaluation.metrics import binary_metrics, numeric_metrics
from metamed.evaluation.protocol import ProtocolConfig, ProtocolResult, run_protocol
from metamed.learners import LEARNERS, make_learner
from metamed.outcomes import NUMERIC
from metamed.tasks import TaskSet

importlib.import_module("metamed.learners")  # registers every learner

#: Tiny, seeded hyperparameters per learner.  Learning rates are high enough that a few
#: steps really fit the data, and early stopping is on and evaluated often, so that
#: meta-training or validation on held-out labels would move the chosen state and show in
#: the predictions (with the default learning rates these budgets barely move off the
#: initial weights, and such a leak went unseen).
_GRADIENT_META = dict(
    hidden_sizes=(8,),
    inner_steps=1,
    outer_lr=0.05,
    meta_batch_size=4,
    meta_iterations=8,
    k_support=6,
    n_query=8,
    eval_every=1,
    patience=2,
)
PARAMS: dict[str, dict[str, Any]] = {
    "pooled": dict(hidden_sizes=(8,), lr=0.05, max_epochs=8, batch_size=32, patience=2),
    "pooled-finetune": dict(
        hidden_sizes=(8,), lr=0.05, max_epochs=8, batch_size=32, patience=2, finetune_steps=3
    ),
    "multitask": dict(hidden_sizes=(8,), lr=0.05, max_epochs=8, batch_size=32, patience=2),
    "local-logreg": {},
    "local-gbm": dict(n_estimators=10),
    "local-rf": dict(n_estimators=10),
    "local-knn": {},
    "protonet": dict(
        hidden_sizes=(8,),
        embedding_dim=4,
        k_support=6,
        n_query=8,
        meta_batch_size=4,
        lr=0.05,
        n_iterations=10,
        eval_every=1,
        patience=2,
    ),
    "maml": _GRADIENT_META,
    "fomaml": _GRADIENT_META,
    "anil": _GRADIENT_META,
    "metasgd": _GRADIENT_META,
    "reptile": {**_GRADIENT_META, "outer_lr": 0.5},
    "metapred": {**_GRADIENT_META, "n_sources": 2},
    "pooled-logreg": {},
    "recal-intercept": {},
    "recal-logistic": {},
    "model-revision": {},
    "mixed-intercept": dict(max_iter=50),
    "guard": dict(adapter="recal-logistic", reference="pooled-logreg"),
    "linear-probe": dict(hidden_sizes=(8,), lr=0.05, max_epochs=8, batch_size=32, patience=2),
    "support-only": dict(hidden_sizes=(8,), steps=10),
}

NAMES = sorted(LEARNERS)
HELD_OUT = "site4"
CONFIG = ProtocolConfig(shots=(8,), draws=2, seed=0)
EPISODE = ["k", "draw"]


def make_cohort(outcome_type: str = "binary", seed: int = 0) -> Cohort:
    """Five sites of 40 patients: three numeric features (one with gaps), one categorical."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(5):
        x = rng.normal(size=(40, 3)) + 0.3 * s
        eta = x @ np.array([1.5, -1.0, 0.5]) + rng.normal(0, 0.3)
        if outcome_type == "binary":
            y = (rng.random(40) < 1 / (1 + np.exp(-eta))).astype(int)
            y[:2] = [0, 1]  # both classes in every site
        else:
            y = 10 + 2 * eta + rng.normal(size=40)
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame.loc[rng.random(40) < 0.1, "c"] = np.nan
        frame["kind"] = rng.choice(["p", "q", "r"], 40)
        frame["site"] = f"site{s}"
        frame["outcome"] = y
        frames.append(frame)
    schema = Schema(
        outcome="outcome",
        numeric=("a", "b", "c"),
        categorical=("kind",),
        group=("site",),
        outcome_type=outcome_type,
    )
    return Cohort("leak", pd.concat(frames, ignore_index=True), schema, {"source": "test"})


def run(cohort: Cohort, name: str) -> ProtocolResult:
    """The protocol for one learner, holding out one site (one site kept for validation)."""
    taskset = TaskSet(cohort, "site")
    split = taskset.split([HELD_OUT], val_fraction=0.25, seed=0)
    assert split.val, "the fixture split should exercise early stopping on a validation site"
    learner = make_learner(name, **params(name))
    return run_protocol(taskset, {name: learner}, [split], CONFIG, dataset="leak")


def params(name: str) -> dict[str, Any]:
    if name not in PARAMS:
        pytest.fail(
            f"Learner '{name}' is registered but has no entry in PARAMS of {__file__}; add "
            "tiny, seeded hyperparameters for it so that its leakage is tested too."
        )
    return dict(PARAMS[name])


def with_outcome(cohort: Cohort, rows: np.ndarray, values: np.ndarray) -> Cohort:
    """``cohort`` with the outcome of table rows ``rows`` set to ``values``."""
    frame = cohort.frame.copy()
    col = frame.columns.get_loc(cohort.schema.outcome)
    frame.iloc[rows, col] = values
    return Cohort(cohort.name, frame, cohort.schema, cohort.provenance)


def always_query(result: ProtocolResult) -> np.ndarray:
    """Table rows of the held-out task scored in every episode (never in a support set)."""
    per_episode = [set(g["row"]) for _, g in result.predictions.groupby(EPISODE)]
    return np.array(sorted(set.intersection(*per_episode)))


def perturbed_labels(how: str, y: np.ndarray, outcome_type: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    if how == "permute":
        new = rng.permutation(y)
    elif how == "invert":  # every label turned round: what a model learnt now hurts
        new = 1 - y if outcome_type == "binary" else 2 * y.mean() - y
    elif how == "random":
        new = (
            (rng.random(len(y)) < 0.9).astype(y.dtype)
            if outcome_type == "binary"
            else rng.normal(50.0, 5.0, len(y))
        )
    else:  # "flip": one row's label only
        new = y.copy()
        new[0] = 1 - y[0] if outcome_type == "binary" else y[0] + 7.0
    assert not np.array_equal(new, y), "the perturbation must change some label"
    if how == "random":
        assert abs(new.mean() - y.mean()) > 0.1 * max(1.0, abs(y.mean())), (
            "random labels must move the task's prevalence (mean), or a leaked base rate "
            "could not show"
        )
    return new


@pytest.fixture(scope="module")
def baseline():
    """Unperturbed protocol results per (learner, outcome type), computed once."""
    cache: dict[tuple[str, str], tuple[Cohort, ProtocolResult]] = {}

    def get(name: str, outcome_type: str = "binary") -> tuple[Cohort, ProtocolResult]:
        key = (name, outcome_type)
        if key not in cache:
            cohort = make_cohort(outcome_type)
            cache[key] = cohort, run(cohort, name)
        return cache[key]

    return get


def check_scores_follow_predictions(
    results: pd.DataFrame, predictions: pd.DataFrame, y_true: pd.Series, what: str
) -> None:
    """Every per-episode score in ``results`` equals the metrics of ``predictions``' y_pred
    against ``y_true`` (aligned with ``predictions``)."""
    score = binary_metrics if set(y_true.unique()) <= {0.0, 1.0} else numeric_metrics
    for (k, draw), group in predictions.groupby(EPISODE):
        expected = score(y_true.loc[group.index].to_numpy(), group["y_pred"].to_numpy())
        rows = results[(results["k"] == k) & (results["draw"] == draw)]
        got = dict(zip(rows["metric"], rows["value"], strict=True))
        assert got.keys() == expected.keys()
        for metric, value in expected.items():
            assert np.isclose(got[metric], value, rtol=0, atol=1e-12, equal_nan=True), (
                f"leak: {what}: K={k} draw {draw}: {metric} = {got[metric]} is not the "
                f"{metric} of the stored predictions and labels ({value}); something other "
                "than the predictions reached the score"
            )


def check_same_predictions(before: ProtocolResult, after: ProtocolResult, what: str) -> None:
    b, a = before.predictions, after.predictions
    for (episode, gb), (_, ga) in zip(b.groupby(EPISODE), a.groupby(EPISODE), strict=True):
        assert list(gb["row"]) == list(ga["row"]), (
            f"leak: {what} changed which rows are scored in episode (K, draw) = {episode}: "
            "the support draw depends on query labels"
        )
    mismatch = np.flatnonzero(b["y_pred"].to_numpy() != a["y_pred"].to_numpy())
    assert len(mismatch) == 0, (
        f"leak: {what} changed {len(mismatch)} of {len(b)} predictions (first: table row "
        f"{int(b['row'].iloc[mismatch[0]])}, {b['y_pred'].iloc[mismatch[0]]!r} -> "
        f"{a['y_pred'].iloc[mismatch[0]]!r}); predictions must not depend on query labels"
    )


@pytest.mark.parametrize("name", NAMES)
def test_episodes_score_exactly_the_rest_of_the_held_out_task(name: str, baseline) -> None:
    cohort, result = baseline(name)
    task_rows = set(TaskSet(cohort, "site").rows(HELD_OUT))
    k = CONFIG.shots[0]
    for episode, group in result.predictions.groupby(EPISODE):
        rows = list(group["row"])
        assert len(set(rows)) == len(rows), f"leak: episode {episode} scores a row twice"
        assert set(rows) <= task_rows, f"leak: episode {episode} scores rows of another task"
        assert len(rows) == len(task_rows) - k, (
            f"leak: episode {episode} scores {len(rows)} rows, the held-out task has "
            f"{len(task_rows)} and K = {k}: the query set is not the rest of the task"
        )
        labels = cohort.frame[cohort.schema.outcome].to_numpy()[rows]
        np.testing.assert_array_equal(group["y_true"].to_numpy(), labels)
    check_scores_follow_predictions(
        result.results, result.predictions, result.predictions["y_true"], "unperturbed run"
    )


@pytest.mark.parametrize("how", ["permute", "random", "invert", "flip"])
@pytest.mark.parametrize("name", NAMES)
def test_query_labels_do_not_reach_predictions(name: str, how: str, baseline) -> None:
    cohort, before = baseline(name)
    rows = always_query(before)
    y = cohort.frame[cohort.schema.outcome].to_numpy()[rows].astype(float)
    after = run(with_outcome(cohort, rows, perturbed_labels(how, y, "binary")), name)
    what = f"{how} of the held-out query labels"
    check_same_predictions(before, after, what)
    # the scores moved only through the labels: recomputed from the stored predictions,
    # with the new labels they give the new scores and with the old ones the old scores
    check_scores_follow_predictions(
        after.results, after.predictions, after.predictions["y_true"], what
    )
    check_scores_follow_predictions(
        before.results, after.predictions, before.predictions["y_true"], what
    )


@pytest.mark.parametrize("name", [n for n in NAMES if NUMERIC in LEARNERS[n].outcome_types])
def test_numeric_query_outcomes_do_not_reach_predictions(name: str, baseline) -> None:
    cohort, before = baseline(name, "numeric")
    rows = always_query(before)
    y = cohort.frame[cohort.schema.outcome].to_numpy()[rows].astype(float)
    after = run(with_outcome(cohort, rows, perturbed_labels("random", y, "numeric")), name)
    check_same_predictions(before, after, "random held-out query outcomes")
    what = "random held-out query outcomes"
    check_scores_follow_predictions(
        after.results, after.predictions, after.predictions["y_true"], what
    )


@pytest.mark.parametrize("name", NAMES)
def test_one_query_rows_features_move_only_its_own_prediction(name: str, baseline) -> None:
    cohort, before = baseline(name)
    row = int(always_query(before)[0])
    frame = cohort.frame.copy()
    frame.loc[row, ["a", "b"]] += [3.0, -2.0]
    frame.loc[row, "kind"] = "r" if frame.loc[row, "kind"] != "r" else "p"
    after = run(Cohort(cohort.name, frame, cohort.schema, cohort.provenance), name)
    check_same_predictions_except(before, after, row)


def check_same_predictions_except(before: ProtocolResult, after: ProtocolResult, row: int) -> None:
    b, a = before.predictions, after.predictions
    assert list(b["row"]) == list(a["row"]), (
        "leak: changing one query row's features changed which rows are scored"
    )
    others = (b["row"] != row).to_numpy()
    moved = np.flatnonzero(b["y_pred"].to_numpy()[others] != a["y_pred"].to_numpy()[others])
    assert len(moved) == 0, (
        f"leak: changing the features of query row {row} changed {len(moved)} predictions "
        "of other rows: preprocessing or scoring depends on held-out rows"
    )


def test_every_learner_is_covered() -> None:
    missing = [n for n in NAMES if n not in PARAMS]
    assert not missing, f"Learners {missing} have no PARAMS entry in {__file__}; add them."
