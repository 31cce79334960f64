"""The adapt-or-not guard: it adapts where sites differ, keeps the pooled model where they
do not, decides from the support set alone, and the protocol records what it chose.

The family: sites share one linear model of four features and differ only by an
offset on the logit (the value, for a numeric outcome) of +shift or -shift, so the
pooled model fits no site when the shift is large and every site when it is 0.  The
guard chooses between recalibration in the large (``recal-intercept``: exactly the
update these sites need) and the pooled logistic model it starts from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metamed.data.cohort import Cohort, Schema
from metamed.evaluation.protocol import ProtocolConfig, episode_rng, run_protocol
from metamed.learners import make_learner
from metamed.learners.guard import CHOICES, GuardedModel
from metamed.tasks import Task, TaskSet, TaskSplit, sample_support_query

N_ROWS = 200


def family(shift: float, outcome: str, n_sites: int = 8, seed: int = 0) -> list[Task]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=4)
    tasks = []
    for t in range(n_sites):
        X = rng.normal(size=(N_ROWS, 4))
        eta = X @ w + (shift if t % 2 == 0 else -shift)
        if outcome == "binary":
            y = rng.random(N_ROWS) < 1 / (1 + np.exp(-eta))
        else:
            y = eta + rng.normal(size=N_ROWS)
        tasks.append(Task(f"site{t}", X.astype(np.float32), y.astype(np.float32), outcome))
    return tasks


def guard(tasks: list[Task]):
    learner = make_learner("guard", adapter="recal-intercept", reference="pooled-logreg")
    return learner.meta_fit(tasks[:6])


def choices(shift: float, outcome: str, k: int) -> list[GuardedModel]:
    tasks = family(shift, outcome)
    learner = guard(tasks)
    models = []
    for task in tasks[6:]:
        for draw in range(15):
            rng = np.random.default_rng([draw, k])
            support, _ = sample_support_query(task, k, rng, sampler="unconditioned")
            models.append(learner.adapt(task.subset(support)))
    return models


@pytest.mark.parametrize("outcome", ["binary", "numeric"])
def test_guard_adapts_where_the_sites_clearly_differ(outcome: str) -> None:
    models = choices(3.0, outcome, k=10)
    adapted = [m.choice != "pooled" for m in models]
    assert np.mean(adapted) >= 0.8, [m.choice for m in models]


@pytest.mark.parametrize("outcome", ["binary", "numeric"])
def test_guard_keeps_the_pooled_model_where_the_sites_are_identical(outcome: str) -> None:
    models = choices(0.0, outcome, k=10)
    kept = [m.choice == "pooled" for m in models]
    assert np.mean(kept) >= 0.8, [m.choice for m in models]


def test_learned_start_adapts_where_every_site_shows_adapting_pays_but_five_patients_cannot() -> None:
    """Sites offset by +-1: recalibration in the large helps at every site, yet the
    support set's own cross-validation at K = 5 rarely shows it; the training sites'
    episodes do, so the learned start adapts where the pooled start keeps the pooled model."""
    tasks = family(1.0, "numeric")
    served = {}
    for start in ("pooled", "learned"):
        learner = make_learner(
            "guard", adapter="recal-intercept", reference="pooled-logreg", start=start
        ).meta_fit(tasks[:6])
        models = []
        for task in tasks[6:]:
            for draw in range(15):
                support, _ = sample_support_query(
                    task, 5, np.random.default_rng([draw, 5]), sampler="unconditioned"
                )
                models.append(learner.adapt(task.subset(support)))
        served[start] = np.mean([m.choice == "adapted" for m in models])
    assert learner.learned_choices_ == ["adapted"] * 3 and min(learner.learned_episodes_) > 0
    assert served["pooled"] < 0.5 <= 0.8 <= served["learned"], served


@pytest.mark.parametrize("outcome", ["binary", "numeric"])
def test_learned_start_is_the_pooled_model_where_the_sites_are_identical(outcome: str) -> None:
    learner = guard(family(0.0, outcome))
    assert learner.learned_choices_ == ["pooled"] * 3
    assert learner.learned_start(7) == learner.learned_start(200) == "pooled"


def test_guarded_model_serves_its_choice() -> None:
    """Weight 0 is the pooled model's risk, 1 the adapted one's, 0.5 their mean."""
    tasks = family(3.0, "binary")
    model = guard(tasks).adapt(tasks[6].subset(np.arange(10)))
    X = tasks[7].X
    adapted, pooled = model.adapted.predict_proba(X), model.pooled.predict_proba(X)
    for choice, weight in CHOICES.items():
        served = type(model)(model.adapted, model.pooled, choice, "test", model.cv_errors)
        np.testing.assert_allclose(
            served.predict_proba(X), weight * adapted + (1 - weight) * pooled
        )


def _taskset(tasks: list[Task]) -> TaskSet:
    frame = pd.concat(
        [
            pd.DataFrame(t.X, columns=[f"x{j}" for j in range(t.n_features)]).assign(
                site=t.name, y=t.y
            )
            for t in tasks
        ],
        ignore_index=True,
    )
    schema = Schema(outcome="y", numeric=tuple(f"x{j}" for j in range(4)), group=("site",))
    return TaskSet(Cohort("guard-family", frame, schema), "site")


def _run(taskset: TaskSet) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    methods = {
        "guard": make_learner("guard", adapter="recal-intercept", reference="pooled-logreg"),
        "recal-intercept": make_learner("recal-intercept"),
        "pooled-logreg": make_learner("pooled-logreg"),
    }
    split = [TaskSplit(train=tuple(f"site{t}" for t in range(6)), val=(), test=("site6",))]
    config = ProtocolConfig(shots=(10,), draws=4, sampler="unconditioned")
    result = run_protocol(taskset, methods, split, config, "guard-family")
    return result.results, result.decisions, result.predictions


def test_protocol_records_each_decision_with_both_candidates_scored() -> None:
    results, decisions, _ = _run(_taskset(family(3.0, "binary")))
    assert set(decisions["method"]) == {"guard"} and len(decisions[["draw"]].drop_duplicates()) == 4
    values = results.pivot_table(index=["draw", "metric"], columns="method", values="value")
    by_episode = decisions.set_index(["draw", "metric"])
    for column, method in (("served", "guard"), ("adapted", "recal-intercept"),
                           ("pooled", "pooled-logreg")):  # fmt: skip
        np.testing.assert_allclose(by_episode[column], values.loc[by_episode.index, method])
    assert set(decisions["choice"]) <= set(CHOICES)


def test_decisions_never_see_the_query_labels() -> None:
    """Permuting the held-out site's labels outside every support set leaves every
    decision, and every risk the guard serves, as it was."""
    tasks = family(3.0, "binary")  # where the guard adapts: its risks read the support
    taskset = _taskset(tasks)
    _, before, risks_before = _run(taskset)
    assert (before["choice"] != "pooled").any()
    supports: set[int] = set()
    held_out = tasks[6]
    for draw in range(4):
        support, _ = sample_support_query(
            held_out, 10, episode_rng(0, "site6", 10, draw), sampler="unconditioned"
        )
        supports |= set(support.tolist())
    frame = taskset.cohort.frame.copy()
    rows = np.flatnonzero(frame["site"].to_numpy() == "site6")
    outside = rows[[i for i in range(len(rows)) if i not in supports]]
    frame.loc[outside, "y"] = np.random.default_rng(5).permutation(frame.loc[outside, "y"])
    assert (frame["y"] != taskset.cohort.frame["y"]).any()
    permuted = TaskSet(Cohort("guard-family", frame, taskset.cohort.schema), "site")
    _, after, risks_after = _run(permuted)
    decided = ["draw", "choice", "weight", "reason"]
    pd.testing.assert_frame_equal(before[decided], after[decided])
    guarded = risks_before["method"] == "guard"
    np.testing.assert_array_equal(
        risks_before.loc[guarded, "y_pred"], risks_after.loc[guarded, "y_pred"]
    )
