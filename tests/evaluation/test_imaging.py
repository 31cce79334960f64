"""The few-shot imaging protocol: where support and scored images come from, pairing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.registry import get_source
from metamed.errors import MetamedValueError
from metamed.evaluation.imaging import (
    ImageSetting,
    ImagingConfig,
    held_out_corruption,
    held_out_sets,
    paired_with_best_baseline,
    run_imaging_protocol,
)
from metamed.learners import make_learner
from metamed.learners.base import BinaryModel, MetaLearner
from metamed.outcomes import BINARY
from metamed.tasks import Task, image_tasks


def _tasks(folder: Path, corruptions=("none",)):
    spec = get_source("medmnist")
    cohort = spec.loader(folder, **spec.resolve_options({"corruptions": corruptions}))
    return image_tasks(cohort)


class _Recorder(MetaLearner):
    """Records what it is trained on and adapted to; predicts the first pixel."""

    outcome_types = (BINARY,)
    seen: list[tuple[str, np.ndarray]] = []

    def meta_fit(self, train_tasks, val_tasks=None):
        for t in train_tasks:
            _Recorder.seen.append(("train:" + t.name, t.X))
        self.n_features_ = train_tasks[0].n_features
        return self

    def adapt(self, support: Task):
        _Recorder.seen.append(("support:" + support.name, support.X))
        return _FirstPixel(self.n_features_)

    def clone(self):
        return _Recorder()


class _FirstPixel(BinaryModel):
    def __init__(self, n_features: int) -> None:
        self.n_features = n_features

    def predict_proba(self, X):
        return np.asarray(self._inputs(X)[:, 0], dtype=float)


def _rows(X: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in X}


def test_support_from_train_split_and_whole_test_split_scored(tiny_medmnist: Path) -> None:
    tasks = _tasks(tiny_medmnist)
    settings = held_out_sets(tasks, ["breastmnist", "pneumoniamnist"])
    _Recorder.seen.clear()
    result = run_imaging_protocol(
        tasks, settings[:1], {"rec": _Recorder()}, ImagingConfig(shots=(1, 2), draws=3)
    )
    trained = [X for what, X in _Recorder.seen if what.startswith("train:")]
    assert [w for w, _ in _Recorder.seen if w.startswith("train:")] == ["train:pneumoniamnist"]
    np.testing.assert_array_equal(trained[0], tasks.train["pneumoniamnist"].X)
    pool = _rows(tasks.train["breastmnist"].X)
    test_rows = _rows(tasks.test["breastmnist"].X)
    supports = [X for what, X in _Recorder.seen if what.startswith("support:")]
    assert len(supports) == 2 * 3
    for X in supports:
        assert _rows(X) <= pool and not (_rows(X) & test_rows)
        assert len(X) in (2, 4)  # K per class, both classes
    # One AUROC and one accuracy per (K, draw), on the 4 test images.
    assert len(result.results) == 2 * 3 * 2
    assert set(result.results["metric"]) == {"auroc", "accuracy"}


def test_every_method_sees_the_same_episodes(tiny_medmnist: Path) -> None:
    tasks = _tasks(tiny_medmnist)
    setting = held_out_sets(tasks, ["breastmnist", "pneumoniamnist"])[0]
    config = ImagingConfig(shots=(2,), draws=2)
    _Recorder.seen.clear()
    run_imaging_protocol(tasks, [setting], {"a": _Recorder(), "b": _Recorder()}, config)
    supports = [X for what, X in _Recorder.seen if what.startswith("support:")]
    for first, second in zip(supports[:2], supports[2:], strict=True):
        np.testing.assert_array_equal(first, second)


def test_query_labels_do_not_move_predictions(tiny_medmnist: Path) -> None:
    """Flipping the held-out test split's labels changes the scores, not what was predicted."""
    tasks = _tasks(tiny_medmnist)
    setting = held_out_sets(tasks, ["breastmnist", "pneumoniamnist"])[0]
    learner = make_learner("linear-probe", network="cnn", hidden_sizes=(2,), max_epochs=1)
    config = ImagingConfig(shots=(1,), draws=2)
    base = run_imaging_protocol(tasks, [setting], {"lp": learner}, config).results
    test = dict(tasks.test)
    flipped = test["breastmnist"]
    test["breastmnist"] = Task(flipped.name, flipped.X, 1.0 - flipped.y)
    again = run_imaging_protocol(replace(tasks, test=test), [setting], {"lp": learner}, config)
    auc = base[base["metric"] == "auroc"]["value"].to_numpy()
    auc_flipped = again.results[again.results["metric"] == "auroc"]["value"].to_numpy()
    np.testing.assert_allclose(auc_flipped, 1.0 - auc)


def test_corruption_setting_and_refusals(tiny_medmnist: Path) -> None:
    tasks = _tasks(tiny_medmnist, ("none", "blur", "gamma"))
    setting = held_out_corruption(tasks, ["breastmnist"], ["none", "blur"], ["gamma"])
    assert setting.train == ("breastmnist", "breastmnist/blur")
    assert setting.test == ("breastmnist/gamma",)
    with pytest.raises(MetamedValueError, match="both trained on and held out"):
        ImageSetting("x", ("breastmnist",), ("breastmnist",))
    with pytest.raises(MetamedValueError, match="(?i)did you mean 'breastmnist/blur'"):
        held_out_corruption(tasks, ["breastmnist"], ["none"], ["blurr"])
    with pytest.raises(MetamedValueError, match="K=5 per class needs 6 of each"):
        run_imaging_protocol(tasks, [setting], {"r": _Recorder()}, ImagingConfig(shots=(5,)))


def test_paired_difference_is_against_the_best_baseline() -> None:
    rows = []
    for draw in range(4):
        for method, value in (("good", 0.8), ("weak", 0.6), ("meta", 0.7 + 0.01 * draw)):
            rows.append(
                {"setting": "s", "task": "t", "k": 1, "draw": draw, "metric": "auroc",
                 "method": method, "value": value}
            )  # fmt: skip
    paired = paired_with_best_baseline(pd.DataFrame(rows), ["good", "weak"])
    assert list(paired["method"]) == ["meta"] and list(paired["baseline"]) == ["good"]
    assert paired["difference"].iloc[0] == pytest.approx(-0.085)
    assert paired["ci_high"].iloc[0] < 0
