"""The job counter: the bar moves during meta-training and the estimate follows the jobs."""

from __future__ import annotations

import pytest

from metamed.data import make_synthetic_cohort
from metamed.evaluation.protocol import JobCounter, ProtocolConfig, plan
from metamed.learners import MAML, LocalLogisticRegression
from metamed.tasks import TaskSet


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def the_plan():
    cohort = make_synthetic_cohort(n_tasks=6, seed=0)
    sites = TaskSet(cohort, "site")
    names = list(sites.names)
    splits = [sites.split(test=names[:1]), sites.split(test=names[1:2])]
    methods = {"maml": MAML(), "local-logreg": LocalLogisticRegression()}
    return plan(sites, methods, splits, ProtocolConfig(shots=(4,), draws=2), "synthetic")


def test_meta_training_moves_the_bar_and_the_estimate_follows_the_jobs(the_plan):
    calls: list[tuple[str, float, int]] = []
    clock = FakeClock()
    counter = JobCounter(the_plan, lambda *call: calls.append(call), clock=clock)
    maml_fit, *_ = [f for f in the_plan.fits if f.method == "maml"]
    for it in (1, 50, 100):  # 0.1 s per iteration of 200
        clock.now = 0.1 * it
        counter.iteration("maml", it, 200, 0.5)
    assert [done for _, done, _ in calls] == [0.005, 0.25, 0.5]  # moves inside the fit
    # a fit is projected from its iterations, but score jobs are not timed yet: no estimate
    assert "left" not in calls[-1][0]
    clock.now = 20.0
    counter.finished(maml_fit)
    for score in the_plan.scores_of(maml_fit):
        clock.now += 0.5
        counter.finished(score)
    # left: the other maml fit (20 s) and its scores (0.5 s each); local-logreg's fits take
    # the mean fit time (20 s) until one has run, its scores take their own mean (unknown):
    # local-logreg scores are not timed yet, so there is still no estimate
    assert counter.seconds_left() is None
    logreg_fit, *_ = [f for f in the_plan.fits if f.method == "local-logreg"]
    clock.now += 1.0
    counter.finished(logreg_fit)
    for score in the_plan.scores_of(logreg_fit):
        clock.now += 0.25
        counter.finished(score)
    n_scores = len(the_plan.scores_of(maml_fit))
    expected = 20.0 + n_scores * 0.5 + 1.0 + n_scores * 0.25  # one fit of each method left
    assert counter.seconds_left() == pytest.approx(expected)
    assert calls[-1][0].endswith("left")
    assert calls[-1][1] == counter.count
