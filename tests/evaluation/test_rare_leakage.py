"""No patient leaks across the rare-conditions split, or from a query set into its support.

The protocol runs on a small seeded condition cohort (one row per patient, a code-set
column whose codes differ by condition) under :func:`metamed.tasks.rare_split`, and again
with what must not be seen changed.  Each time the predictions of the rows that stay the
same must be bit-for-bit the same:

- **query into support**: the labels of the rare cohorts' patients that are scored in
  every episode (never in a support set) are permuted among themselves;
- **across rare cohorts**: every feature, code and label of one rare cohort is replaced
  (class counts kept, so the rule still calls it rare): no other rare cohort's
  prediction may move (preprocessing and meta-training see common cohorts only, and each
  cohort adapts from its own support set);
- **skipped cohorts**: changing them moves nothing at all.

A patient sits in one split only (checked on the patient column), and each episode
scores exactly the cohort's patients outside its K-patient support set.  Assertion
messages start with ``"leak:"`` as in ``test_leakage.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from metamed.data import Cohort, Schema
from metamed.evaluation.protocol import ProtocolConfig, ProtocolResult, episode_rng, run_protocol
from metamed.learners import make_learner
from metamed.tasks import RareRule, TaskSet, rare_split

#: common cohorts of 60 patients, rare ones of 30, one cohort too small, one of one class
SIZES = {
    "c0": 60,
    "c1": 60,
    "c2": 60,
    "c3": 60,
    "r0": 30,
    "r1": 30,
    "r2": 30,
    "tiny": 12,
    "mono": 30,
}
RULE = RareRule(n_common=60, min_query=10, min_per_class=3, val_fraction=0.25)
#: seed 1: no support draw of a rare cohort is redrawn for holding one class (see
#: ``test_the_fixture_draws_no_support_twice``)
CONFIG = ProtocolConfig(shots=(4, 8), draws=2, seed=1)
EPISODE = ["task", "k", "draw"]
TINY_META = dict(
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
    "pooled-finetune": dict(
        hidden_sizes=(8,), lr=0.05, max_epochs=8, batch_size=32, patience=2, finetune_steps=3
    ),
    "maml": TINY_META,
    "metapred": {**TINY_META, "n_sources": 2},
    "local-logreg": {},
}


def make_cohort(seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    frames = []
    first = 0
    for c, (name, n) in enumerate(SIZES.items()):
        x = rng.normal(size=(n, 2)) + 0.2 * c
        y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))).astype(int)
        y[:4] = [0, 1, 0, 1]
        if name == "mono":
            y[:] = 0
        codes = [f"{400 + c}.{i % 3};{250 + i % 5}" for i in range(n)]
        frames.append(
            pd.DataFrame(
                {
                    "a": x[:, 0],
                    "b": x[:, 1],
                    "kind": rng.choice(["p", "q"], n),
                    "dx": codes,
                    "condition": name,
                    "patient": np.arange(first, first + n),
                    "event": y,
                }
            )
        )
        first += n
    schema = Schema(
        outcome="event",
        numeric=("a", "b"),
        categorical=("kind",),
        codesets=("dx",),
        group=("condition", "patient"),
    )
    return Cohort("rare-leak", pd.concat(frames, ignore_index=True), schema, {"source": "test"})


def run(cohort: Cohort, name: str) -> ProtocolResult:
    taskset = TaskSet(cohort, "condition")
    split = rare_split(taskset, RULE, CONFIG.shots, seed=0).split
    learner = (
        make_learner(name, random_state=0, **PARAMS[name])
        if name != "local-logreg"
        else make_learner(name)
    )
    return run_protocol(taskset, {name: learner}, [split], CONFIG, dataset="rare-leak")


def rows_of(cohort: Cohort, name: str) -> np.ndarray:
    return np.flatnonzero(cohort.frame["condition"].to_numpy() == name)


def replaced(cohort: Cohort, rows: np.ndarray, seed: int, labels: bool = True) -> Cohort:
    """``cohort`` with new features and codes (and permuted labels) for table rows ``rows``."""
    rng = np.random.default_rng(seed)
    frame = cohort.frame.copy()
    frame.loc[rows, "a"] = rng.normal(5.0, 3.0, len(rows))
    frame.loc[rows, "b"] = rng.normal(-5.0, 3.0, len(rows))
    frame.loc[rows, "kind"] = "q"
    frame.loc[rows, "dx"] = [f"V{10 + i % 7}.{i % 4}" for i in range(len(rows))]
    if labels:  # permuted within each cohort: class counts, and so the split, are kept
        for _, same in frame.loc[rows].groupby("condition"):
            frame.loc[same.index, "event"] = rng.permutation(same["event"].to_numpy())
    return Cohort(cohort.name, frame, cohort.schema, cohort.provenance)


def predictions(result: ProtocolResult, tasks: list[str] | None = None) -> pd.DataFrame:
    p = result.predictions
    if tasks is not None:
        p = p[p["task"].isin(tasks)]
    return p.sort_values([*EPISODE, "row"]).reset_index(drop=True)[[*EPISODE, "row", "y_pred"]]


@pytest.fixture(scope="module")
def baseline() -> dict[str, ProtocolResult]:
    cohort = make_cohort()
    return {name: run(cohort, name) for name in PARAMS}


def test_the_fixture_draws_no_support_twice() -> None:
    """A support draw holding one class is redrawn, and whether it is depends on the labels
    of rows that may end in the query set (the inherent exception of ``test_leakage.py``):
    the fixture's seed must give no redraw, or permuted query labels could move episodes."""
    cohort = make_cohort()
    y = cohort.frame["event"].to_numpy()
    for task in ("r0", "r1", "r2"):
        labels = y[rows_of(cohort, task)]
        for k in CONFIG.shots:
            for draw in range(CONFIG.draws):
                first = episode_rng(CONFIG.seed, task, k, draw).choice(
                    len(labels), k, replace=False
                )
                assert len(set(labels[first])) == 2, f"pick another CONFIG seed ({task}, K={k})"


def test_a_patient_sits_in_one_split_and_each_episode_scores_the_rest_of_its_cohort(
    baseline: dict[str, ProtocolResult],
) -> None:
    cohort = make_cohort()
    taskset = TaskSet(cohort, "condition")
    split = rare_split(taskset, RULE, CONFIG.shots).split
    assert split.test == ("r0", "r1", "r2")
    patients = {
        part: set(cohort.frame.loc[taskset.frames(getattr(split, part)).index, "patient"])
        for part in ("train", "val", "test")
    }
    assert not patients["train"] & patients["val"], "leak: a patient is in meta-train and meta-val"
    assert not (patients["train"] | patients["val"]) & patients["test"], (
        "leak: a patient is in meta-training and meta-test"
    )
    for result in baseline.values():
        for (task, k, _), group in result.predictions.groupby(EPISODE):
            rows = group["row"].to_numpy()
            assert task in split.test, f"leak: cohort {task} outside meta-test was scored"
            assert len(set(rows)) == len(rows) == SIZES[task] - k, (
                f"leak: an episode of {task} at K={k} did not score exactly the "
                f"{SIZES[task] - k} patients outside its support set"
            )
            assert set(rows) <= set(rows_of(cohort, task))


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_query_labels_never_reach_a_support_set(
    name: str, baseline: dict[str, ProtocolResult]
) -> None:
    cohort = make_cohort()
    before = baseline[name]
    per_episode = before.predictions.groupby(EPISODE)["row"].apply(set)
    always = []
    for task in ("r0", "r1", "r2"):
        sets = [rows for (t, _, _), rows in per_episode.items() if t == task]
        always += sorted(set.intersection(*sets))
    always_rows = np.array(always)
    y = cohort.frame["event"].to_numpy()
    assert len(set(y[always_rows])) == 2, "the fixture must leave both classes to permute"
    frame = cohort.frame.copy()
    frame.loc[always_rows, "event"] = np.random.default_rng(1).permutation(y[always_rows])
    assert not np.array_equal(frame["event"].to_numpy(), y)
    after = run(Cohort(cohort.name, frame, cohort.schema, cohort.provenance), name)
    pd.testing.assert_frame_equal(
        predictions(before), predictions(after), check_exact=True, obj="leak: query labels"
    )


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_one_rare_cohort_changes_no_other_cohort(
    name: str, baseline: dict[str, ProtocolResult]
) -> None:
    cohort = make_cohort()
    after = run(replaced(cohort, rows_of(cohort, "r1"), seed=5), name)
    before_p, after_p = predictions(baseline[name], ["r0", "r2"]), predictions(after, ["r0", "r2"])
    pd.testing.assert_frame_equal(
        before_p, after_p, check_exact=True, obj="leak: another rare cohort"
    )
    assert not predictions(after, ["r1"]).equals(predictions(baseline[name], ["r1"])), (
        "the changed cohort's own predictions must move, or this test could not fail"
    )


def test_skipped_cohorts_change_nothing(baseline: dict[str, ProtocolResult]) -> None:
    cohort = make_cohort()
    rows = np.concatenate([rows_of(cohort, "tiny"), rows_of(cohort, "mono")])
    after = run(replaced(cohort, rows, seed=7), "maml")
    pd.testing.assert_frame_equal(
        predictions(baseline["maml"]),
        predictions(after),
        check_exact=True,
        obj="leak: a skipped cohort",
    )
