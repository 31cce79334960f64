"""The protocol must never let a held-out task's query rows or labels reach training or adaptation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import metamed.evaluation.protocol as protocol
from metamed.data import Cohort, Schema
from metamed.errors import MetamedError, MetamedValueError
from metamed.evaluation.protocol import ProtocolConfig, run_protocol
from metamed.learners.base import BinaryModel, MetaLearner
from metamed.outcomes import BINARY, NUMERIC
from metamed.tasks import TaskSet


def small_cohort(n_sites: int = 4, n: int = 40, seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_sites):
        x = rng.normal(size=(n, 3)) + s * 0.3
        logit = x @ np.array([1.5, -1.0, 0.5]) + rng.normal(0, 0.3)
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        y[:2] = [0, 1]  # both classes in every site
        frame = pd.DataFrame(x, columns=["a", "b", "c"])
        frame["kind"] = rng.choice(["p", "q"], n)
        frame["site"] = f"site{s}"
        frame["died"] = y
        frames.append(frame)
    schema = Schema(outcome="died", numeric=("a", "b", "c"), categorical=("kind",), group=("site",))
    return Cohort("toy", pd.concat(frames, ignore_index=True), schema, {"source": "test"})


class _Adapted(BinaryModel):
    def __init__(self, log: list, support_X: np.ndarray) -> None:
        self.log, self.support_X = log, support_X

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.log.append(("predict", X.copy()))
        return np.full(len(X), 0.5)


class SpyLearner(MetaLearner):
    """Records everything it is given."""

    LOG: list = []
    outcome_types = (BINARY, NUMERIC)

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def meta_fit(self, train_tasks, val_tasks=None):
        self.LOG.append(
            ("meta_fit", [t.name for t in train_tasks], [t.X.copy() for t in train_tasks])
        )
        self.LOG.append(("val", val_tasks))
        self.n_features_ = train_tasks[0].n_features
        return self

    def adapt(self, support):
        self.LOG.append(("adapt", support.name, support.X.copy(), support.y.copy()))
        return _Adapted(self.LOG, support.X)


def test_no_query_row_or_label_reaches_adaptation(monkeypatch):
    SpyLearner.LOG.clear()
    drawn: list = []
    real_sample = protocol.sample_support_query

    def recording_sample(task, k, rng, n_query=None, sampler="conditioned"):
        s, q = real_sample(task, k, rng, n_query, sampler)
        drawn.append((task, s, q))
        return s, q

    monkeypatch.setattr(protocol, "sample_support_query", recording_sample)
    fit_frames: list[pd.DataFrame] = []
    real_fit = protocol.Preprocessor.fit

    def recording_fit(self, frame):
        fit_frames.append(frame.copy())
        return real_fit(self, frame)

    monkeypatch.setattr(protocol.Preprocessor, "fit", recording_fit)
    cohort = small_cohort()
    taskset = TaskSet(cohort, "site")
    splits = list(taskset.leave_one_out())
    run_protocol(
        taskset, {"spy": SpyLearner()}, splits, ProtocolConfig(shots=(4, 8), draws=3), "toy"
    )

    # preprocessing of each split saw only that split's training sites
    assert len(fit_frames) == len(splits)
    for frame, split in zip(fit_frames, splits, strict=True):
        assert set(frame["site"]) == set(split.train)

    fits = [e for e in SpyLearner.LOG if e[0] == "meta_fit"]
    for (_, names, _), split in zip(fits, splits, strict=True):
        assert set(names) == set(split.train) and not set(names) & set(split.test)

    adapts = [e for e in SpyLearner.LOG if e[0] == "adapt"]
    predicts = [e for e in SpyLearner.LOG if e[0] == "predict"]
    assert len(adapts) == len(drawn) == len(predicts) == 4 * 2 * 3
    for (_, name, X, y), (_, Xq), (task, s, q) in zip(adapts, predicts, drawn, strict=True):
        assert name == task.name
        assert not set(s) & set(q)
        np.testing.assert_array_equal(X, task.X[s])  # adapt got exactly the support rows...
        np.testing.assert_array_equal(y, task.y[s])
        query_rows = {r.tobytes() for r in task.X[q]}
        assert not any(r.tobytes() in query_rows for r in X)  # ...and no query row
        np.testing.assert_array_equal(Xq, task.X[q])  # the query is scored without labels
        assert len(s) + len(q) == len(task)  # score on the rest of the task


def test_same_episodes_for_every_method():
    cohort = small_cohort()
    taskset = TaskSet(cohort, "site")
    splits = list(taskset.leave_one_out())[:1]
    SpyLearner.LOG.clear()
    run_protocol(
        taskset,
        {"a": SpyLearner(), "b": SpyLearner()},
        splits,
        ProtocolConfig(shots=(4,), draws=2),
        "toy",
    )
    adapts = [e for e in SpyLearner.LOG if e[0] == "adapt"]
    first, second = adapts[:2], adapts[2:]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[2], b[2])


def test_k_too_large_fails_before_any_training():
    cohort = small_cohort(n=10)
    taskset = TaskSet(cohort, "site")
    SpyLearner.LOG.clear()
    with pytest.raises(MetamedValueError, match="K=50 is larger than held-out task"):
        run_protocol(
            taskset,
            {"spy": SpyLearner()},
            list(taskset.leave_one_out()),
            ProtocolConfig(shots=(50,)),
            "toy",
        )
    assert not [e for e in SpyLearner.LOG if e[0] == "meta_fit"]


def test_validation_rows_come_from_training_tasks_only():
    cohort = small_cohort(n=200)
    taskset = TaskSet(cohort, "site")
    splits = list(taskset.leave_one_out())[:1]
    SpyLearner.LOG.clear()
    run_protocol(taskset, {"spy": SpyLearner()}, splits, ProtocolConfig(shots=(4,), draws=1), "toy")
    ((_, names, train_X),) = [e for e in SpyLearner.LOG if e[0] == "meta_fit"]
    ((_, val),) = [e for e in SpyLearner.LOG if e[0] == "val"]
    assert [t.name for t in val] == names  # one validation part per training site
    for t, X in zip(val, train_X, strict=True):
        train_rows = {r.tobytes() for r in X}
        assert not any(r.tobytes() in train_rows for r in t.X)  # disjoint rows
        assert 38 <= len(t) <= 42 and set(t.y) == {0.0, 1.0}  # ~20% of 200, both classes
    SpyLearner.LOG.clear()
    config = ProtocolConfig(shots=(4,), draws=1, val_rows_fraction=0.0)
    run_protocol(taskset, {"spy": SpyLearner()}, splits, config, "toy")
    assert [e[1] for e in SpyLearner.LOG if e[0] == "val"] == [None]


def test_tasks_too_small_for_validation_rows_train_on_everything():
    cohort = small_cohort(n=40)  # 20% of 40 rows = 8 < MIN_VAL_ROWS
    taskset = TaskSet(cohort, "site")
    SpyLearner.LOG.clear()
    run_protocol(
        taskset, {"spy": SpyLearner()}, list(taskset.leave_one_out())[:1],
        ProtocolConfig(shots=(4,), draws=1), "toy",
    )  # fmt: skip
    ((_, _, train_X),) = [e for e in SpyLearner.LOG if e[0] == "meta_fit"]
    assert [len(X) for X in train_X] == [40, 40, 40]
    assert [e[1] for e in SpyLearner.LOG if e[0] == "val"] == [None]


def test_method_that_cannot_model_the_outcome_fails_before_any_training():
    from metamed.learners import ProtoNet

    cohort = small_cohort()
    frame = cohort.frame.assign(died=cohort.frame["a"] * 2.0)
    numeric = Cohort("toy", frame, replace(cohort.schema, outcome_type="numeric"), {})
    taskset = TaskSet(numeric, "site")
    SpyLearner.LOG.clear()
    with pytest.raises(MetamedValueError, match="'protonet' does not support a numeric outcome"):
        run_protocol(
            taskset,
            {"spy": SpyLearner(), "protonet": ProtoNet()},
            list(taskset.leave_one_out()),
            ProtocolConfig(shots=(4,), draws=1),
            "toy",
        )
    assert not [e for e in SpyLearner.LOG if e[0] == "meta_fit"]


def test_codes_unknown_to_the_meta_train_vocabulary_are_counted_per_split():
    cohort = small_cohort(n=40)
    frame = cohort.frame.copy()
    # Training sites share two codes; the held-out site3 has only codes never seen in training
    # in its first 10 rows.
    frame["dx"] = np.where(frame["site"] == "site3", "250.01", "428.0;250.01")
    frame.loc[frame.index[frame["site"] == "site3"][:10], "dx"] = "V57.1;E849"
    schema = Schema(outcome="died", numeric=("a", "b", "c"), codesets=("dx",), group=("site",))
    taskset = TaskSet(Cohort("codes", frame, schema), "site")
    split = taskset.split(["site3"])
    result = run_protocol(
        taskset, {"spy": SpyLearner()}, [split], ProtocolConfig(shots=(4,), draws=1), "codes"
    )
    assert result.config["unknown_codes"] == [
        {
            "test": ["site3"],
            "vocabulary": {"dx": 2},
            "train": {"dx": {"rows": 0, "codes": 0}},
            "held_out": {"dx": {"rows": 10, "codes": 2}},
        }
    ]
    plain = run_protocol(
        TaskSet(cohort, "site"), {"spy": SpyLearner()}, [TaskSet(cohort, "site").split(["site3"])],
        ProtocolConfig(shots=(4,), draws=1), "toy",
    )  # fmt: skip
    assert "unknown_codes" not in plain.config  # cohorts without code sets: config unchanged


def test_unconditioned_sampler_is_recorded_and_one_class_supports_are_scored():
    """K random patients of a site may all be negative: every draw is still adapted to and
    scored, and the run says which sampler drew them."""
    from metamed.learners import make_learner

    cohort = small_cohort(n=60)
    taskset = TaskSet(cohort, "site")
    splits = list(taskset.leave_one_out())[:1]
    SpyLearner.LOG.clear()
    config = ProtocolConfig(shots=(1, 3), draws=20, sampler="unconditioned")
    result = run_protocol(
        taskset, {"spy": SpyLearner(), "local": make_learner("local-logreg")}, splits, config, "toy"
    )
    assert result.config["sampler"] == "unconditioned"
    supports = [e[3] for e in SpyLearner.LOG if e[0] == "adapt"]
    assert len(supports) == 2 * 20 and any(len(set(y)) == 1 for y in supports if len(y) == 3)
    assert np.isfinite(result.predictions["y_pred"]).all()
    with pytest.raises(MetamedValueError, match="K=1 is too small"):
        run_protocol(
            taskset, {"spy": SpyLearner()}, splits, replace(config, sampler="conditioned"), "toy"
        )
    with pytest.raises(MetamedError, match="Did you mean 'unconditioned'"):
        ProtocolConfig(sampler="unconditional")


def test_preprocessing_is_fitted_once_per_split_and_every_method_gets_the_same_tasks(
    monkeypatch,
):
    """The fit jobs of one split share its preprocessed tasks (a fifth of OPT's fit time
    went to redoing them per method); what each method is given does not change."""
    from metamed.data.preprocess import Preprocessor

    taskset = TaskSet(small_cohort(n=200), "site")
    splits = list(taskset.leave_one_out())[:2]
    config = ProtocolConfig(shots=(4,), draws=1)
    SpyLearner.LOG.clear()
    run_protocol(taskset, {"spy": SpyLearner()}, splits, config, "toy")
    alone = [e for e in SpyLearner.LOG if e[0] == "meta_fit"]
    fits = []
    original = Preprocessor.fit
    monkeypatch.setattr(Preprocessor, "fit", lambda self, f: fits.append(1) or original(self, f))
    monkeypatch.setattr(protocol, "_LAST_SPLIT", [], raising=False)  # a fresh cache
    SpyLearner.LOG.clear()
    methods = {"spy": SpyLearner(), "spy2": SpyLearner(), "spy3": SpyLearner()}
    run_protocol(taskset, methods, splits, config, "toy")
    assert len(fits) == len(splits)
    shared = [e for e in SpyLearner.LOG if e[0] == "meta_fit"]
    assert len(shared) == 3 * len(splits)
    for split_index, (_, names, train_X) in enumerate(alone):
        for _, other_names, other_X in shared[3 * split_index : 3 * split_index + 3]:
            assert other_names == names
            for X, Y in zip(train_X, other_X, strict=True):
                np.testing.assert_array_equal(X, Y)
