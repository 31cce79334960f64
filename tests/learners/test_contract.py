"""The generic learner check suite: every registered learner against the shared contract.

Each learner in :data:`metamed.learners.base.LEARNERS` is run on one small seeded
synthetic problem (6 tasks, 8 features: a shared logistic model plus task-specific
shifts of weights and intercept) with fast hyperparameters, and checked for:
seeding determinism, adapt leaving the learner unchanged, probability shape and range,
save/load round trip of the meta-learner and of an adapted model (same state,
bit-identical predictions, the same files when saved again), bad hyperparameters
rejected in ``meta_fit``, use before ``meta_fit``, one-class support sets (adapted to,
finite risks) and support sets of the wrong width, and unusable inputs (NaN, inf, text, wrong shape, beyond
float32) refused with one metamed error by ``adapt`` and by the adapted model's
``predict_proba`` / ``predict``.

A new learner must add its fast hyperparameters to ``FAST_PARAMS`` and one invalid
setting to ``BAD_PARAMS``; until it does, its tests fail saying so.

The learners that take ``network="cnn"`` run the same checks as cases ``<name>/cnn``
(:data:`CNN_CASES`), on the same kind of problem with 16 features read as 4 x 4 images.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import sklearn.base
import torch

from metamed.errors import (
    MetamedError,
    MetamedTypeError,
    MetamedValueError,
    NotFittedError,
    UnknownNameError,
)
from metamed.learners.base import (
    LEARNERS,
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    learners_for,
    load_every_learner,
    make_learner,
)
from metamed.outcomes import BINARY, NUMERIC, OUTCOMES, Outcome
from metamed.tasks import Task, sample_support_query

importlib.import_module("metamed.learners.baselines")
importlib.import_module("metamed.learners.protonet")
# The MAML family and Reptile are written in parallel: check them once they exist.
for _module in ("metamed.learners.maml", "metamed.learners.reptile", "metamed.learners.metapred"):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as error:
        if error.name != _module:
            raise

_MAML_FAST: dict[str, Any] = dict(
    hidden_sizes=(16,),
    inner_steps=2,
    meta_batch_size=4,
    meta_iterations=12,
    k_support=6,
    n_query=10,
    eval_every=6,
)

#: Small, fast hyperparameters per learner: a fit must take well under a second.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "pooled": dict(hidden_sizes=(16,), max_epochs=5, batch_size=64),
    "pooled-finetune": dict(hidden_sizes=(16,), max_epochs=5, batch_size=64, finetune_steps=3),
    "multitask": dict(hidden_sizes=(16,), max_epochs=5, batch_size=64),
    "local-logreg": {},
    "local-gbm": dict(n_estimators=20),
    "local-rf": dict(n_estimators=20),
    "local-knn": {},
    "protonet": dict(
        hidden_sizes=(16,),
        embedding_dim=8,
        k_support=6,
        n_query=10,
        meta_batch_size=4,
        n_iterations=20,
        eval_every=10,
    ),
    "maml": _MAML_FAST,
    "fomaml": _MAML_FAST,
    "anil": _MAML_FAST,
    "metasgd": _MAML_FAST,
    "reptile": _MAML_FAST,
    "metapred": {**_MAML_FAST, "n_sources": 2},
    "pooled-logreg": {},
    "recal-intercept": {},
    "recal-logistic": {},
    "model-revision": {},
    "mixed-intercept": dict(max_iter=50),
    "guard": dict(adapter="recal-logistic", reference="pooled-logreg"),
    "linear-probe": dict(hidden_sizes=(16,), max_epochs=5, batch_size=64),
    "support-only": dict(hidden_sizes=(16,), steps=20),
}

#: The learners that run on a convolutional network: ``<name>/cnn`` is the learner with
#: these settings added (a tiny CNN; the func backend where all layers adapt).
_CNN = dict(network="cnn", hidden_sizes=(2, 3))
CNN_CASES: dict[str, dict[str, Any]] = {
    "maml/cnn": {**_CNN, "backend": "func", "meta_iterations": 4, "inner_steps": 1},
    "fomaml/cnn": {**_CNN, "backend": "func", "meta_iterations": 4, "inner_steps": 1},
    "anil/cnn": {**_CNN, "meta_iterations": 4},
    "protonet/cnn": dict(_CNN),
    "pooled-finetune/cnn": dict(_CNN),
    "linear-probe/cnn": dict(_CNN),
    "support-only/cnn": dict(_CNN),
}
#: Features of the CNN cases' problem: 4 x 4 one-channel images.
CNN_FEATURES = 16

#: One invalid hyperparameter setting per learner; meta_fit must reject it.
BAD_PARAMS: dict[str, dict[str, Any]] = {
    "pooled": dict(lr=-1.0),
    "pooled-finetune": dict(anchor_strength=-1.0),
    "multitask": dict(val_fraction=0.5),
    "local-logreg": dict(C=0.0),
    "local-gbm": dict(min_child_samples=0),
    "local-rf": dict(max_features=0.0),
    "local-knn": dict(n_neighbors=0),
    "protonet": dict(k_support=1),
    "maml": dict(inner_lr=-0.1),
    "fomaml": dict(inner_steps=0),
    "anil": dict(inner_lr=0.0),
    "metasgd": dict(meta_batch_size=0),
    "reptile": dict(outer_lr=-1.0),
    "metapred": dict(source_weight=-0.5),
    "pooled-logreg": dict(C=0.0),
    "recal-intercept": dict(penalty=0.0),
    "recal-logistic": dict(penalty=-1.0),
    "model-revision": dict(revision_penalty=0.0),
    "mixed-intercept": dict(C=-1.0),
    "guard": dict(n_folds=1),
    "linear-probe": dict(C=0.0),
    "support-only": dict(steps=0),
}

# The package loads its modules lazily: register every learner before listing them (the
# list was short of the named-only learners when this file ran on its own).
load_every_learner()
LEARNER_NAMES = sorted(LEARNERS)
NAMES = LEARNER_NAMES + sorted(CNN_CASES)


def base(case: str) -> str:
    """The learner name of a check case (``"maml/cnn"`` -> ``"maml"``)."""
    return case.split("/")[0]


def n_features_of(case: str) -> int:
    return CNN_FEATURES if case in CNN_CASES else 8

#: Learners whose adapt leaves the pooled model as it is.
NOT_ADAPTING = ("pooled", "pooled-logreg")


@dataclass(frozen=True)
class Problem:
    """The suite's one problem: 4 training tasks, 1 validation task, a K = 8 test split."""

    train: list[Task]
    val: list[Task]
    test: Task
    query_idx: np.ndarray
    support: Task
    query: Task


@pytest.fixture(scope="module")
def problems(make_toy_tasks) -> dict[int, Problem]:
    """The suite's problem per feature count (8: tables; 16: the CNN cases' 4 x 4 images)."""
    out = {}
    for n_features in (8, CNN_FEATURES):
        tasks = make_toy_tasks(n_features=n_features)
        test = tasks[5]
        support_idx, query_idx = sample_support_query(test, 8, np.random.default_rng(1))
        out[n_features] = Problem(
            tasks[:4], tasks[4:5], test, query_idx, test.subset(support_idx), test.subset(query_idx)
        )
    return out


@pytest.fixture
def problem(request, problems) -> Problem:
    """The problem of the test's case (``name`` parameter; the tabular one without)."""
    callspec = getattr(request.node, "callspec", None)
    name = callspec.params.get("name", "") if callspec is not None else ""
    return problems[n_features_of(name)]


def fast_params(name: str) -> dict[str, Any]:
    learner = base(name)
    if learner not in FAST_PARAMS or learner not in BAD_PARAMS:
        pytest.fail(
            f"Learner '{learner}' is registered but has no entry in FAST_PARAMS and BAD_PARAMS "
            f"of {__file__}; add its fast test hyperparameters and one invalid setting there."
        )
    return {**FAST_PARAMS[learner], **CNN_CASES.get(name, {})}


def build(name: str, **params: Any) -> MetaLearner:
    """The learner of check case ``name`` with ``params``."""
    return make_learner(base(name), **params)


def fit(problem: Problem, name: str, **overrides: Any) -> MetaLearner:
    learner = build(name, **{**fast_params(name), **overrides})
    return learner.meta_fit(problem.train, val_tasks=problem.val)


@pytest.fixture(scope="module")
def fitted(problems: dict[int, Problem]) -> Callable[[str], MetaLearner]:
    """One fitted learner per name, shared by the read-only checks (keeps the suite fast)."""
    cache: dict[str, MetaLearner] = {}

    def get(name: str) -> MetaLearner:
        if name not in cache:
            cache[name] = fit(problems[n_features_of(name)], name)
        return cache[name]

    return get


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Recursive exact equality for tensors, arrays, containers and plain objects."""
    assert type(a) is type(b), f"{where}: type changed from {type(a)} to {type(b)}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: tensor dtype/shape changed"
        assert torch.equal(a, b), f"{where}: tensor values changed"
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys changed"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length changed"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), f"{where}: NaN became {b}"
    elif hasattr(a, "__dict__") and not callable(a):
        assert_same(vars(a), vars(b), f"{where}.__dict__")
    else:
        assert a == b, f"{where}: {a!r} became {b!r}"


def test_every_learner_has_test_params() -> None:
    missing = [n for n in LEARNER_NAMES if n not in FAST_PARAMS or n not in BAD_PARAMS]
    assert not missing, (
        f"Learners {missing} have no FAST_PARAMS/BAD_PARAMS entry in {__file__}; add them."
    )


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_probabilities(name: str, problem, fitted) -> None:
    first = fitted(name).adapt(problem.support).predict_proba(problem.query.X)
    second = fit(problem, name).adapt(problem.support).predict_proba(problem.query.X)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_adapt_does_not_mutate_learner(name: str, problem, fitted) -> None:
    learner = fitted(name)
    before = copy.deepcopy(vars(learner))
    model = learner.adapt(problem.support)
    p_first = model.predict_proba(problem.query.X)
    # A second adaptation to other patients must neither touch the learner nor the
    # first model (no shared tensors updated in place).
    other_support = problem.test.subset(problem.query_idx[:10])
    assert len(np.unique(other_support.y)) == 2
    other = learner.adapt(other_support)
    other.predict_proba(problem.query.X)
    assert other is not model
    assert_same(before, vars(learner), f"{name} learner")
    np.testing.assert_array_equal(p_first, model.predict_proba(problem.query.X))


@pytest.mark.parametrize("name", NAMES)
def test_predict_proba_shape_and_range(name: str, problem, fitted) -> None:
    model = fitted(name).adapt(problem.support)
    assert isinstance(model, AdaptedModel)
    p = model.predict_proba(problem.query.X)
    assert isinstance(p, np.ndarray) and p.shape == (len(problem.query),)
    assert np.issubdtype(p.dtype, np.floating)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    labels = model.predict(problem.query.X)
    assert set(np.unique(labels)) <= {0, 1}


@pytest.mark.parametrize("name", NAMES)
def test_adapted_models_predict_the_way_their_outcome_says(
    name: str, make_toy_tasks, split_support_query
) -> None:
    """Every outcome a learner states it models gives a model of that outcome, scored by
    the outcome's prediction (P(y = 1) of a binary model, values of a numeric one, which
    has no predict_proba); any other outcome is refused naming the learners that model it.
    """
    cls = LEARNERS[base(name)]
    assert cls.outcome_types and all(isinstance(o, Outcome) for o in cls.outcome_types)
    for outcome in OUTCOMES.values():
        tasks = make_toy_tasks(outcome_type=outcome.name, n_features=n_features_of(name))
        learner = build(name, **fast_params(name))
        if outcome not in cls.outcome_types:
            with pytest.raises(MetamedValueError, match=f"{cls.__name__} models .*: "):
                learner.meta_fit(tasks[:4])
            continue
        support, query = split_support_query(tasks[5], 8, seed=1)
        model = learner.meta_fit(tasks[:4], val_tasks=tasks[4:5]).adapt(support)
        assert model.outcome_type is outcome
        scored = outcome.predict(model, query.X)
        assert scored.shape == (len(query),) and np.isfinite(scored).all()
        assert isinstance(model, BinaryModel) is outcome.predicts_probabilities
        assert hasattr(model, "predict_proba") is outcome.predicts_probabilities


def artifact_bytes(folder) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir())}


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name: str, tmp_path, problem, fitted) -> None:
    learner = fitted(name)
    folder = learner.save(tmp_path / name.replace("/", "-"))
    assert folder.is_dir() and (folder / "manifest.json").is_file()
    for loader in (MetaLearner, type(learner)):
        loaded = loader.load(folder)
        assert type(loaded) is type(learner)
        assert loaded.get_params() == learner.get_params()
        assert_same(vars(learner), vars(loaded), f"{name} loaded learner")
        np.testing.assert_array_equal(
            loaded.adapt(problem.support).predict_proba(problem.query.X),
            learner.adapt(problem.support).predict_proba(problem.query.X),
        )
    # Saving the loaded learner writes the same files: nothing was lost on the way.
    assert artifact_bytes(loaded.save(tmp_path / "again")) == artifact_bytes(folder)


@pytest.mark.parametrize("name", NAMES)
def test_adapted_model_save_load_round_trip(name: str, tmp_path, problem, fitted) -> None:
    model = fitted(name).adapt(problem.support)
    folder = model.save(tmp_path / f"{name.replace('/', '-')}-adapted")
    loaded = AdaptedModel.load(folder)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(
        loaded.predict_proba(problem.query.X), model.predict_proba(problem.query.X)
    )
    np.testing.assert_array_equal(loaded.predict(problem.query.X), model.predict(problem.query.X))
    assert artifact_bytes(loaded.save(tmp_path / "again")) == artifact_bytes(folder)


@pytest.mark.parametrize("name", NAMES)
def test_bad_hyperparameters_raise_in_meta_fit(name: str, problem) -> None:
    params = {**fast_params(name), **BAD_PARAMS[base(name)]}
    learner = build(name, **params)  # __init__ only stores, never validates
    assert not learner.is_fitted()
    with pytest.raises(MetamedValueError):
        learner.meta_fit(problem.train, val_tasks=problem.val)


@pytest.mark.parametrize("name", NAMES)
def test_adapt_before_meta_fit_raises(name: str, problem) -> None:
    learner = build(name, **fast_params(name))
    with pytest.raises(NotFittedError):
        learner.adapt(problem.support)
    with pytest.raises(NotFittedError):
        learner.save("never-written")


@pytest.mark.parametrize("name", NAMES)
def test_one_class_support_gives_finite_risks(name: str, problem, fitted) -> None:
    """A site's K random patients may all share one outcome (the unconditioned sampler):
    every learner adapts to that, and its risks are finite, and lower after five
    negatives than after five positives."""
    risks = {}
    for label in (0, 1):
        one_class = problem.test.subset(np.flatnonzero(problem.test.y == label)[:5])
        model = fitted(name).adapt(one_class)
        risks[label] = model.predict_proba(problem.query.X)
        assert np.isfinite(risks[label]).all() and ((risks[label] >= 0) & (risks[label] <= 1)).all()
    if name in NOT_ADAPTING:
        np.testing.assert_array_equal(risks[0], risks[1])
    else:
        assert risks[0].mean() < risks[1].mean()


@pytest.mark.parametrize("name", NAMES)
def test_support_with_wrong_feature_count_raises(name: str, problem, fitted) -> None:
    narrow = Task(problem.support.name, problem.support.X[:, :-1], problem.support.y)
    with pytest.raises(MetamedValueError, match="features"):
        fitted(name).adapt(narrow)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_argument_types_raise_metamed_errors(name: str, problem, fitted) -> None:
    fresh = build(name, **fast_params(name))
    for train, match in (
        ("task0", "train_tasks must be a list of Task objects.*got str"),
        (problem.train[0], "got one Task"),
        ([t.X for t in problem.train], r"train_tasks\[0\] is ndarray, not a Task"),
    ):
        with pytest.raises(MetamedTypeError, match=match):
            fresh.meta_fit(train)
    with pytest.raises(MetamedTypeError, match="val_tasks must be a list"):
        fresh.meta_fit(problem.train, val_tasks=problem.val[0])
    with pytest.raises(MetamedTypeError, match="support must be a Task.*got ndarray"):
        fitted(name).adapt(problem.support.X)


@pytest.mark.parametrize("name", NAMES)
def test_clone_is_unfitted_with_same_params(name: str, fitted) -> None:
    learner = fitted(name)
    twin = learner.clone()
    assert type(twin) is type(learner) and not twin.is_fitted()
    assert twin.get_params() == learner.get_params()


# -- hyperparameters: declared once, keyword-only, scikit-learn's estimator API ------------


@pytest.mark.parametrize("name", NAMES)
def test_sklearn_clone_gives_an_unfitted_twin(name: str, fitted, problem: Problem) -> None:
    """``sklearn.base.clone`` (get_params(deep=False) + the constructor, with its check
    that the constructor stores each value unchanged) works, fitted or not, and the
    twin learns exactly what the original learned."""
    learner = fitted(name)
    for original in (learner, LEARNERS[base(name)](**fast_params(name))):
        twin = sklearn.base.clone(original)
        assert type(twin) is type(original) and not twin.is_fitted()
        assert twin.get_params() == original.get_params()
    twin = sklearn.base.clone(learner).meta_fit(problem.train, val_tasks=problem.val)
    np.testing.assert_array_equal(
        twin.adapt(problem.support).predict_proba(problem.query.X),
        learner.adapt(problem.support).predict_proba(problem.query.X),
    )


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_are_keyword_only_and_set_by_name(name: str) -> None:
    cls = LEARNERS[base(name)]
    parameters = inspect.signature(cls).parameters.values()
    assert parameters and all(p.kind is p.KEYWORD_ONLY for p in parameters)
    first = next(iter(parameters))
    with pytest.raises(TypeError):
        cls(first.default)  # positional: refused
    learner = cls()
    assert learner.get_params(deep=False) == {p.name: p.default for p in parameters}
    assert learner.set_params(random_state=7) is learner and learner.random_state == 7
    with pytest.raises(UnknownNameError, match="Did you mean 'random_state'"):
        learner.set_params(random_stat=1)


@pytest.mark.parametrize("name", NAMES)
def test_every_hyperparameter_is_checked_with_one_message_format(name: str, problem) -> None:
    """The defaults are valid, and each hyperparameter, given a value of no sensible
    type, is refused by meta_fit with the same sentence."""
    cls = LEARNERS[base(name)]
    cls()._validate_params()
    for parameter in inspect.signature(cls).parameters:
        learner = cls(**{**fast_params(name), parameter: object()})
        expected = rf"^{cls.__name__}: {parameter} must be .+, got <object"
        with pytest.raises(MetamedTypeError, match=expected):
            learner.meta_fit(problem.train)
        assert not learner.is_fitted()


#: Unusable model inputs, each made from valid query features, with the message expected.
BAD_FEATURES: dict[str, tuple[Callable[[np.ndarray], Any], str]] = {
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), "NaN or inf"),
    "inf": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), "NaN or inf"),
    "beyond-float32": (lambda X: np.where(X > 1, 1e39, X), "float32"),
    "too-narrow": (lambda X: X[:, :-1], "shape"),
    "one-row-1d": (lambda X: X[0], "shape"),
    "text": (lambda X: X.astype(str), "numbers"),
    "one-text-cell": (
        lambda X: np.where(np.arange(X.size).reshape(X.shape) == 2, "n/a", X.astype(object)),
        "numbers",
    ),
}


@pytest.mark.parametrize("bad", sorted(BAD_FEATURES))
@pytest.mark.parametrize("name", NAMES)
def test_adapted_model_rejects_unusable_features(name: str, bad: str, problem, fitted) -> None:
    model = fitted(name).adapt(problem.support)
    make_bad, message = BAD_FEATURES[bad]
    X = make_bad(problem.query.X.astype(np.float64))
    for method in (model.predict_proba, model.predict):
        with pytest.raises(MetamedError, match=message) as caught:
            method(X)
        assert "\n" not in str(caught.value)
        assert isinstance(
            caught.value, (MetamedTypeError if "numbers" in message else MetamedValueError)
        )


def _support_with_nan_feature(support: Task) -> Task:
    X = support.X.copy()
    task = Task(support.name, X, support.y)
    task.X[0, 0] = np.nan  # arrays stay writable: a Task checked once can be changed later
    return task


def _support_with_nan_label(support: Task) -> Task:
    task = Task(support.name, support.X, support.y.copy())
    task.y[2] = np.nan
    return task


BAD_SUPPORT: dict[str, tuple[Callable[[Task], Any], type, str]] = {
    "nan-feature": (_support_with_nan_feature, MetamedValueError, "NaN or inf"),
    "nan-label": (_support_with_nan_label, MetamedValueError, "label"),
    "not-a-task": (lambda s: (s.X, s.y), MetamedTypeError, "Task"),
}


@pytest.mark.parametrize("bad", sorted(BAD_SUPPORT))
@pytest.mark.parametrize("name", NAMES)
def test_adapt_rejects_unusable_support(name: str, bad: str, problem, fitted) -> None:
    make_bad, error, message = BAD_SUPPORT[bad]
    with pytest.raises(error, match=message):
        fitted(name).adapt(make_bad(problem.support))


def test_learners_for_and_default_methods_follow_the_declared_outcomes() -> None:
    from metamed.learners import DEFAULT_METHODS, NAMED_ONLY, UPDATING, default_methods

    assert sorted(DEFAULT_METHODS + UPDATING + NAMED_ONLY) == LEARNER_NAMES, (
        "every registered learner is a default method, one of the updating hierarchy, or "
        "named-only"
    )
    for outcome in OUTCOMES.values():
        able = [n for n in LEARNER_NAMES if outcome in LEARNERS[n].outcome_types]
        assert learners_for(outcome) == able
        assert default_methods(outcome) == [n for n in DEFAULT_METHODS if n in able]
    assert "protonet" in default_methods(BINARY) and "protonet" not in default_methods(NUMERIC)
