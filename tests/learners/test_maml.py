"""MAML, FOMAML, ANIL, Meta-SGD and Reptile as learners: they learn, are deterministic,
do not mutate on adapt, round-trip through save/load and reject bad hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metamed.errors import MetamedError, MetamedTypeError, MetamedValueError, UnknownNameError
from metamed.learners.base import LEARNERS, MetaLearner
from metamed.learners.maml import ANIL, FOMAML, MAML, AdaptedMLP, MetaSGD
from metamed.learners.reptile import Reptile
from metamed.tasks.episodes import sample_support_query
from metamed.tasks.task import Task

ALL = [MAML, FOMAML, ANIL, MetaSGD, Reptile]
N_FEATURES = 6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny problems: one thread avoids OpenMP hand-offs on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_tasks(
    seed: int, n_tasks: int, n_rows: int = 50, outcome_type: str = "binary"
) -> list[Task]:
    """Tasks sharing one logistic (or linear) model plus task-specific shifts.

    The shared weight vector is the same for every call (fixed seed), so training,
    validation and test tasks come from one task distribution; each task adds its own
    intercept and a perturbation of the weights, which is what adaptation must pick up.
    """
    rng = np.random.default_rng(seed)
    w_shared = np.random.default_rng(1234).normal(size=N_FEATURES) * 1.5
    tasks = []
    for t in range(n_tasks):
        w = w_shared + rng.normal(size=N_FEATURES) * 0.7
        intercept = rng.normal() * 1.5
        X = rng.normal(size=(n_rows, N_FEATURES)).astype(np.float32)
        signal = X @ w + intercept
        if outcome_type == "binary":
            y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-signal))).astype(np.float32)
        else:
            y = (100.0 + 10.0 * signal + rng.normal(size=n_rows)).astype(np.float32)
        tasks.append(Task(f"task{seed}_{t}", X, y, outcome_type))
    return tasks


TRAIN = make_tasks(0, 30)
VAL = make_tasks(1, 6)
TEST = make_tasks(2, 8)

FAST = dict(hidden_sizes=(16,), meta_batch_size=8, k_support=8, n_query=15, eval_every=10)


def _kwargs(cls, **extra):
    kw = dict(FAST, outer_lr=0.5 if cls is Reptile else 1e-2)
    kw.update(extra)
    return kw


def _mean_auc(learner: MetaLearner, tasks: list[Task], k: int = 8, seed: int = 7) -> float:
    rng = np.random.default_rng(seed)
    aucs = []
    for task in tasks:
        s, q = sample_support_query(task, k, rng)
        model = learner.adapt(task.subset(s))
        aucs.append(roc_auc_score(task.y[q], model.predict_proba(task.X[q])))
    return float(np.mean(aucs))


@pytest.fixture(scope="module")
def fitted() -> dict[type, MetaLearner]:
    """Each learner meta-trained once (shared by the tests below to keep them fast)."""
    return {cls: cls(**_kwargs(cls, meta_iterations=80)).meta_fit(TRAIN, VAL) for cls in ALL}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_meta_training_beats_the_initialisation(cls, fitted):
    learner = fitted[cls]
    # The same learner stopped after one iteration is (almost) its initialisation.
    untrained = cls(**_kwargs(cls, meta_iterations=1)).meta_fit(TRAIN)
    auc_init, auc_meta = _mean_auc(untrained, TEST), _mean_auc(learner, TEST)
    assert auc_meta > auc_init + 0.1, (auc_init, auc_meta)
    val = [v for _, v in learner.history_["val_loss"]]
    assert min(val) < val[0] - 0.02  # val_loss[0] is the initialisation
    assert np.isfinite(learner.history_["train_loss"]).all()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_same_seed_same_result_other_seed_differs(cls, fitted):
    a = fitted[cls]
    b = cls(**_kwargs(cls, meta_iterations=80)).meta_fit(TRAIN, VAL)
    for key in a.params_:
        assert torch.equal(a.params_[key], b.params_[key])
    assert a.history_ == b.history_
    support = TEST[0].subset(np.arange(10))
    np.testing.assert_array_equal(
        a.adapt(support).predict_proba(TEST[0].X), b.adapt(support).predict_proba(TEST[0].X)
    )
    c = cls(**_kwargs(cls, meta_iterations=20, random_state=1)).meta_fit(TRAIN, VAL)
    d = cls(**_kwargs(cls, meta_iterations=20, random_state=0)).meta_fit(TRAIN, VAL)
    assert not torch.equal(c.params_["w0"], d.params_["w0"])


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_adapt_returns_new_model_and_leaves_learner_unchanged(cls, fitted, tmp_path):
    learner = fitted[cls]
    before = {k: v.clone() for k, v in learner.params_.items()}
    support = TEST[1].subset(np.arange(12))
    model = learner.adapt(support)
    assert isinstance(model, AdaptedMLP)
    p = model.predict_proba(TEST[1].X)
    assert p.shape == (len(TEST[1]),) and ((p > 0) & (p < 1)).all()
    for key in before:
        assert torch.equal(before[key], learner.params_[key])
    # Adaptation moved the model away from the meta-parameters.
    assert any(not torch.equal(model.params[k], learner.params_[k]) for k in before)
    np.testing.assert_array_equal(learner.adapt(support).predict_proba(TEST[1].X), p)
    # Save / load round trip gives the same adapted predictions.
    path = tmp_path / "model"
    learner.save(path)
    loaded = MetaLearner.load(path)
    assert type(loaded) is cls and loaded.get_params() == learner.get_params()
    np.testing.assert_array_equal(loaded.adapt(support).predict_proba(TEST[1].X), p)


def test_anil_adapts_only_the_output_layer(fitted):
    learner = fitted[ANIL]
    model = learner.adapt(TEST[0].subset(np.arange(10)))
    assert torch.equal(model.params["w0"], learner.params_["w0"])
    assert torch.equal(model.params["b0"], learner.params_["b0"])
    assert not torch.equal(model.params["w1"], learner.params_["w1"])


def test_metasgd_learns_step_sizes(fitted):
    learner = fitted[MetaSGD]
    assert set(learner.lrs_) == set(learner.params_)
    for key, lr in learner.lrs_.items():
        assert lr.shape == learner.params_[key].shape
    spread = torch.cat([v.flatten() for v in learner.lrs_.values()])
    assert float(spread.std()) > 1e-4  # moved away from the constant starting value


def test_registry_names():
    for name, cls in [
        ("maml", MAML),
        ("fomaml", FOMAML),
        ("anil", ANIL),
        ("metasgd", MetaSGD),
        ("reptile", Reptile),
    ]:
        assert LEARNERS[name] is cls


def test_progress_callback_and_early_stopping():
    calls = []
    learner = MAML(**_kwargs(MAML, meta_iterations=200, eval_every=5, patience=2, outer_lr=0.3))
    learner.progress = lambda i, total, loss: calls.append((i, total, loss))
    learner.meta_fit(TRAIN, VAL)
    h = learner.history_
    assert [c[0] for c in calls] == list(range(1, h["n_iterations"] + 1))
    assert all(c[1] == 200 for c in calls)
    assert [c[2] for c in calls] == h["train_loss"]
    # A large outer step makes validation loss stop improving quickly.
    assert h["stopped_early"] and h["n_iterations"] < 200
    val = dict(h["val_loss"])
    assert val[h["best_iteration"]] == min(val.values())


def test_numeric_outcome_predicts_in_outcome_units():
    train, test = (
        make_tasks(3, 20, outcome_type="numeric"),
        make_tasks(4, 3, outcome_type="numeric"),
    )
    learner = MAML(**_kwargs(MAML, meta_iterations=40, inner_lr=0.05)).meta_fit(train)
    task = test[0]
    model = learner.adapt(task.subset(np.arange(10)))
    pred = model.predict(task.X[10:])
    # Predictions are in the outcome's units (around 100), not standardised.
    assert abs(float(np.mean(pred)) - float(np.mean(task.y))) < 3 * float(np.std(task.y))
    rmse = float(np.sqrt(np.mean((pred - task.y[10:]) ** 2)))
    assert rmse < float(np.std(task.y[10:]))  # beats predicting the mean
    assert not hasattr(model, "predict_proba")  # no probabilities of a measurement


BAD = [
    ("inner_steps", 0, MetamedValueError),
    ("inner_steps", 2.5, MetamedTypeError),
    ("inner_lr", -0.1, MetamedValueError),
    ("inner_lr", float("nan"), MetamedValueError),
    ("outer_lr", 0, MetamedValueError),
    ("meta_batch_size", 0, MetamedValueError),
    ("meta_iterations", True, MetamedTypeError),
    ("k_support", 0, MetamedValueError),
    ("n_query", 0, MetamedValueError),
    ("chunk_size", 0, MetamedValueError),
    ("patience", 0, MetamedValueError),
    ("hidden_sizes", (16, 0), MetamedValueError),
    ("hidden_sizes", 16, MetamedTypeError),
    ("backend", "vmap", UnknownNameError),
    ("random_state", -1, MetamedValueError),
]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name,value,error", BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_bad_hyperparameters_raise_in_meta_fit(cls, name, value, error):
    learner = cls(**{name: value})  # __init__ only stores
    with pytest.raises(error) as info:
        learner.meta_fit(TRAIN[:3])
    assert name in str(info.value) or name == "backend"
    assert not learner.is_fitted()


def test_learner_specific_checks():
    with pytest.raises(MetamedValueError, match="at least 1 hidden layer"):
        ANIL(hidden_sizes=()).meta_fit(TRAIN[:3])
    with pytest.raises(MetamedTypeError, match="first_order"):
        MAML(first_order="yes").meta_fit(TRAIN[:3])
    with pytest.raises(MetamedValueError, match=r"\(0, 1\]"):
        Reptile(outer_lr=2.0).meta_fit(TRAIN[:3])


def test_bad_tasks_and_supports_raise():
    learner = FOMAML(**_kwargs(FOMAML, meta_iterations=2))
    with pytest.raises(MetamedValueError, match="empty"):
        learner.meta_fit([])
    mixed = TRAIN[:3] + make_tasks(5, 2, outcome_type="numeric")
    with pytest.raises(MetamedValueError, match="outcome type"):
        learner.meta_fit(mixed)
    tiny = [Task("tiny", TRAIN[0].X[:4], TRAIN[0].y[:4])]
    with pytest.raises(MetamedValueError, match="validation task"):
        learner.meta_fit(TRAIN[:3], tiny)
    with pytest.raises(MetamedError, match="not meta-trained"):
        learner.adapt(TEST[0])
    learner.meta_fit(TRAIN[:3])
    with pytest.raises(MetamedValueError, match="features"):
        learner.adapt(Task("wide", np.zeros((4, N_FEATURES + 1)), np.array([0, 1, 0, 1])))
    with pytest.raises(MetamedValueError, match="shape"):
        learner.adapt(TEST[0].subset(np.arange(10))).predict_proba(np.zeros((2, N_FEATURES + 2)))


def test_chunking_and_backends_give_the_same_training():
    a = MAML(**_kwargs(MAML, meta_iterations=5)).meta_fit(TRAIN)
    b = MAML(**_kwargs(MAML, meta_iterations=5, chunk_size=3)).meta_fit(TRAIN)
    c = MAML(**_kwargs(MAML, meta_iterations=5, backend="func")).meta_fit(TRAIN)
    for key in a.params_:
        assert torch.allclose(a.params_[key], b.params_[key], atol=1e-5)
        assert torch.allclose(a.params_[key], c.params_[key], atol=1e-5)


@pytest.mark.parametrize("cls", [MAML, FOMAML, Reptile])
def test_lowrank_backend_trains_like_the_manual_one(cls):
    # 48 units: MAML's second layer (8 support rows x 5 steps) is held in low-rank form.
    kw = dict(meta_iterations=5, hidden_sizes=(48, 48))
    manual = cls(**_kwargs(cls, **kw)).meta_fit(TRAIN)
    low = cls(**_kwargs(cls, **kw, backend="lowrank")).meta_fit(TRAIN)
    for key in manual.params_:
        assert torch.allclose(manual.params_[key], low.params_[key], atol=1e-5)
    support = TEST[0].subset(np.arange(10))
    probs = [m.adapt(support).predict_proba(TEST[0].X) for m in (manual, low)]
    assert np.allclose(*probs, atol=1e-5)
