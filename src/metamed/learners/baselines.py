"""Baselines under the learner contract: pooled MLP, pooled + fine-tune, local-only models.

Every meta-learner is compared with these on the same episodes, so they follow the same
contract (:mod:`metamed.learners.base`) and the neural ones use the same network as the
MAML family: the functional MLP (:mod:`metamed.learners.mlp`), or with ``network="cnn"``
the same small CNN (:mod:`metamed.learners.networks`).

- ``pooled`` (:class:`PooledMLP`): one MLP trained on all rows of all training tasks; no
  adaptation.
- ``pooled-finetune`` (:class:`PooledFineTune`): the pooled MLP, then a few full-batch
  gradient steps on the support set, pulled toward the pooled weights (L2-SP).
- ``local-logreg`` (:class:`LocalLogisticRegression`): L2 logistic regression (ridge
  regression for numeric outcomes) on the support set only.
- ``local-gbm`` (:class:`LocalGBM`): LightGBM on the support set only.

A support set of one class (drawn by the unconditioned sampler) leaves the local models
nothing to separate: they predict the support's event rate with half a patient added to
each class, (n₁ + ½) / (K + 1) (:class:`ConstantRiskModel`; the Jeffreys prior's
posterior mean), which uses the support set alone, as a local model must.  The pooled
models need no fallback (fine-tuning on one class is a well-defined gradient step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from metamed.device import as_tensor, to_cpu, to_device
from metamed.errors import MetamedValueError
from metamed.learners._estimator_state import estimator_from_state, estimator_state
from metamed.learners._params import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Callback,
    Interval,
    LayerWidths,
    Options,
    hyperparameter,
    hyperparameters,
)
from metamed.learners._training import detach_params, fit_minibatches
from metamed.learners.base import (
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    ProgressCallback,
    register,
)
from metamed.learners.engine import loss_grad
from metamed.learners.mlp import Params
from metamed.learners.networks import NETWORKS, Network, make_network
from metamed.outcomes import BINARY, NUMERIC, Outcome, TargetScaling
from metamed.tasks.task import Task, check_task_list

__all__ = [
    "BinaryMLPModel",
    "ConstantRiskModel",
    "BinarySupportModel",
    "LocalGBM",
    "LocalLogisticRegression",
    "LocalRandomForest",
    "MLPModel",
    "NumericMLPModel",
    "adapted_mlp",
    "network_of",
    "NumericSupportModel",
    "PooledRows",
    "PooledFineTune",
    "PooledMLP",
    "SupportModel",
    "check_val_tasks",
    "detach_params",
    "one_class_risk",
    "pooled_rows",
    "stack_tasks",
]

_SEED_HINT = "Pass e.g. random_state=0; results are reproducible only with a fixed seed."


# -- data checks shared by the learners in this package ---------------------------------------
def check_val_tasks(
    val_tasks: list[Task] | None, n_features: int, outcome_type: Outcome
) -> list[Task]:
    """Validation tasks must match the training tasks' features and outcome type."""
    if val_tasks is None:
        return []
    val_tasks = check_task_list(val_tasks, "val_tasks")
    if not val_tasks:
        return []
    dims = {t.n_features for t in val_tasks}
    if dims != {n_features}:
        raise MetamedValueError(
            f"val_tasks have {sorted(dims)} features, train_tasks have {n_features}; preprocess "
            "both with the same fitted Preprocessor."
        )
    kinds = {t.outcome_type for t in val_tasks}
    if kinds != {outcome_type}:
        raise MetamedValueError(
            f"val_tasks have outcome type(s) {sorted(map(str, kinds))}, train_tasks have "
            f"'{outcome_type}'; validate on tasks of the training outcome."
        )
    return list(val_tasks)


def stack_tasks(tasks: list[Task]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([t.X for t in tasks]), np.concatenate([t.y for t in tasks])


@dataclass(frozen=True)
class PooledRows:
    """What a learner fitted on all training rows pooled starts from (:func:`pooled_rows`)."""

    n_features: int
    outcome: Outcome
    X: np.ndarray
    y: np.ndarray
    val_tasks: list[Task]


def pooled_rows(
    learner: MetaLearner, train_tasks: list[Task], val_tasks: list[Task] | None
) -> PooledRows:
    """Check hyperparameters and tasks as ``meta_fit`` must, and stack the training rows.

    Refuses training rows of one outcome class: a pooled model needs both.
    """
    learner._validate_params()
    n_features = learner._check_tasks(train_tasks)
    outcome = learner._check_outcome(train_tasks)
    val = check_val_tasks(val_tasks, n_features, outcome)
    X, y = stack_tasks(train_tasks)
    if outcome.missing_class(y) is not None:
        raise MetamedValueError(
            f"train_tasks hold one outcome class only (all y = {int(y[0])}); "
            f"{type(learner).__name__} needs patients of both classes."
        )
    return PooledRows(n_features, outcome, X, y, val)


def _check_adapt(learner: MetaLearner, support: Task) -> None:
    """Checks before ``adapt`` of a learner with ``n_features_`` and ``outcome_type_``."""
    learner._check_fitted()
    learner._check_support(support, learner.n_features_)  # type: ignore[attr-defined]


# -- adapted models ------------------------------------------------------------------------
class MLPModel(AdaptedModel):
    """An adapted functional MLP; :class:`BinaryMLPModel` and :class:`NumericMLPModel` predict.

    Parameters
    ----------
    params : dict of str to Tensor
        MLP parameters (copied; the model never shares tensors with a learner).
    n_features : int
        Expected input width.
    y_mean, y_std : float
        Numeric outcomes are modelled standardised; predictions are mapped back with these.
    network : (str, tuple of int) or None
        (network name, hidden sizes) of a network other than the MLP (None: the MLP).
    """

    def __init__(
        self,
        params: Params,
        n_features: int,
        y_mean: float = 0.0,
        y_std: float = 1.0,
        network: tuple[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.params = detach_params(params)
        self.n_features = n_features
        self.y_mean = y_mean
        self.y_std = y_std
        if network is not None:  # MLP models keep the state they always saved
            self.network = network

    def _raw(self, X: Any) -> torch.Tensor:
        x = as_tensor(self._inputs(X))
        net = network_of(getattr(self, "network", None), self.n_features)
        with torch.no_grad():
            return net.forward(to_device(self.params), x).cpu()


class BinaryMLPModel(BinaryModel, MLPModel):
    """An adapted MLP whose output is the logit of P(y = 1)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n,)."""
        return torch.sigmoid(self._raw(X)).double().numpy()


class NumericMLPModel(MLPModel):
    """An adapted MLP of a standardised numeric outcome."""

    outcome_type = NUMERIC

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values in the outcome's own units, shape (n,)."""
        return TargetScaling(self.y_mean, self.y_std).inverse(self._raw(X).double().numpy())


#: The adapted MLP of each outcome type.
_MLP_MODELS: dict[Outcome, type[MLPModel]] = {BINARY: BinaryMLPModel, NUMERIC: NumericMLPModel}


def adapted_mlp(
    outcome: Outcome,
    params: Params,
    n_features: int,
    y_mean: float,
    y_std: float,
    network: tuple[str, tuple[int, ...]] | None = None,
) -> MLPModel:
    """The adapted network of ``outcome`` (binary: a risk model; numeric: values in its units)."""
    return _MLP_MODELS[outcome](params, n_features, y_mean, y_std, network)


def network_of(
    spec: tuple[str, tuple[int, ...]] | None, n_features: int, out: int = 1
) -> Network:
    """The network of a saved (name, hidden sizes) spec; None is the functional MLP (whose
    layers are read from the parameters, so its sizes are not needed here)."""
    if spec is None:
        return make_network("mlp", (), n_features, out)
    return make_network(spec[0], spec[1], n_features, out)


class SupportModel(AdaptedModel):
    """A scikit-learn style estimator fitted on one support set (see the two subclasses)."""

    def __init__(self, estimator: Any, n_features: int) -> None:
        self.estimator = estimator
        self.n_features = n_features

    # The estimator is saved as arrays (linear models) or LightGBM's text model, not pickled.
    def _artifact_state(self) -> dict[str, Any]:
        return {**vars(self), "estimator": estimator_state(self.estimator)}

    @classmethod
    def _from_artifact_state(cls, state: dict[str, Any]) -> AdaptedModel:
        return super()._from_artifact_state(
            {**state, "estimator": estimator_from_state(state["estimator"])}
        )


class BinarySupportModel(BinaryModel, SupportModel):
    """A classifier fitted on one support set."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n,)."""
        proba = self.estimator.predict_proba(self._inputs(X))
        # Column of class 1: the support set always holds both classes, so classes_ == [0, 1].
        col = int(np.flatnonzero(np.asarray(self.estimator.classes_) == 1)[0])
        return np.asarray(proba[:, col], dtype=np.float64)


class NumericSupportModel(SupportModel):
    """A regressor fitted on one support set."""

    outcome_type = NUMERIC

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values, shape (n,)."""
        return np.asarray(self.estimator.predict(self._inputs(X)), dtype=np.float64)


class ConstantRiskModel(BinaryModel):
    """The same risk for every patient: a local model's fallback for a one-class support set."""

    def __init__(self, risk: float, n_features: int) -> None:
        self.risk = float(risk)
        self.n_features = n_features

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``risk`` for every row, shape (n,)."""
        return np.full(len(self._inputs(X)), self.risk)


def one_class_risk(y: np.ndarray) -> float | None:
    """(n₁ + ½) / (K + 1) when the binary labels ``y`` hold one class, else None."""
    if BINARY.missing_class(y) is None:
        return None
    return (float(np.sum(y)) + 0.5) / (len(y) + 1.0)


#: The support-set model of each outcome type.
_SUPPORT_MODELS: dict[Outcome, type[SupportModel]] = {
    BINARY: BinarySupportModel,
    NUMERIC: NumericSupportModel,
}


def _estimator_labels(outcome: Outcome, y: np.ndarray) -> np.ndarray:
    """Support labels as a scikit-learn estimator takes them: integer classes if any."""
    return y.astype(np.int64) if outcome.classes is not None else y


# -- pooled MLP ------------------------------------------------------------------------------
#: The last pooled MLP fit (see :meth:`PooledMLP.meta_fit`): its hyperparameters, the task
#: objects it was trained on (held, so their ids cannot be reused meanwhile) and the
#: fitted attributes.  Its tensors are never written in place (fine-tuning clones them).
_LAST_POOLED_FIT: list[tuple[tuple, tuple, dict[str, Any]]] = []


def _same_tasks(a: tuple, b: tuple) -> bool:
    """Whether two (train, val) pairs of task tuples hold the very same task objects."""
    return all(
        (x is None and y is None)
        or (x is not None and y is not None and len(x) == len(y)
            and all(s is t for s, t in zip(x, y, strict=True)))
        for x, y in zip(a, b, strict=True)
    )  # fmt: skip


@register("pooled")
@hyperparameters
class PooledMLP(MetaLearner):
    """One MLP trained on all training tasks' rows pooled; ``adapt`` does not adapt.

    Parameters
    ----------
    hidden_sizes : sequence of int, default (64, 64)
        Hidden layer widths (the same default as the meta-learners); with
        ``network="cnn"`` the channels of the convolution blocks.
    network : str, default "mlp"
        The model (:data:`metamed.learners.networks.NETWORKS`), as for the MAML family.
    lr : float, default 1e-3
        Adam learning rate.
    weight_decay : float, default 0.0
        Adam L2 penalty.
    batch_size : int, default 128
        Rows per minibatch.
    max_batches_per_epoch : int, default 1000
        Minibatches grow beyond ``batch_size`` rows where an epoch would take more steps
        than this (tables of over 128,000 training rows at the defaults).
    max_epochs : int, default 100
        Passes over the pooled rows.
    patience : int, default 10
        Early stopping: stop after this many epochs without a lower loss on ``val_tasks``
        and keep the best epoch's weights.  Unused when no ``val_tasks`` are given.
    random_state : int, default 0
        Seed for initial weights and minibatch order.
    progress : callable(epoch, max_epochs, train_loss) or None
        Called after every epoch.

    Notes
    -----
    Binary outcomes use binary cross-entropy without class weights (so probabilities stay
    calibrated to the pooled prevalence); numeric outcomes use mean squared error on the
    outcome standardised with the training rows' mean and standard deviation (the
    outcome type's loss and scaling, :mod:`metamed.outcomes`).
    """

    outcome_types = tuple(_MLP_MODELS)

    hidden_sizes: Sequence[int] = hyperparameter(default=(64, 64), allowed=LayerWidths())
    network: str = hyperparameter(default="mlp", allowed=Options(NETWORKS))
    lr: float = hyperparameter(default=1e-3, allowed=POSITIVE)
    weight_decay: float = hyperparameter(default=0.0, allowed=NON_NEGATIVE)
    batch_size: int = hyperparameter(default=128, allowed=POSITIVE_INT)
    max_batches_per_epoch: int = hyperparameter(default=1000, allowed=POSITIVE_INT)
    max_epochs: int = hyperparameter(default=100, allowed=POSITIVE_INT)
    patience: int = hyperparameter(default=10, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED, hint=_SEED_HINT)
    progress: ProgressCallback | None = hyperparameter(default=None, allowed=[Callback(), None])

    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> PooledMLP:
        """Train the MLP on all rows of ``train_tasks``; early-stop on ``val_tasks`` if given.

        The training is a pure function of the hyperparameters below and the tasks, so the
        last fit is kept and given again to the next learner with the same ones on the
        same task objects: in a benchmark, ``pooled``, ``pooled-finetune`` and the guard's
        two learners all train this one MLP on each split (its fit jobs share the split's
        tasks), and it is trained once instead of four times.
        """
        rows = pooled_rows(self, train_tasks, val_tasks)  # checks first, hit or not
        key = tuple(
            getattr(self, name)
            for name in ("hidden_sizes", "network", "lr", "weight_decay", "batch_size",
                         "max_batches_per_epoch", "max_epochs", "patience", "random_state")
        )  # fmt: skip
        tasks = (tuple(train_tasks), None if rows.val_tasks is None else tuple(rows.val_tasks))
        if _LAST_POOLED_FIT and _LAST_POOLED_FIT[0][0] == key and _same_tasks(
            _LAST_POOLED_FIT[0][1], tasks
        ):
            self.__dict__.update(_LAST_POOLED_FIT[0][2])
            return self
        self._fit_pooled(rows)
        fitted = ("params_", "n_features_", "outcome_type_", "y_mean_", "y_std_",
                  "best_epoch_", "history_")  # fmt: skip
        _LAST_POOLED_FIT[:] = [(key, tasks, {name: getattr(self, name) for name in fitted})]
        return self

    def _fit_pooled(self, rows: PooledRows) -> None:
        n_features, outcome, X, y, val_tasks = (
            rows.n_features, rows.outcome, rows.X, rows.y, rows.val_tasks
        )
        scaling = outcome.fit_scaling(y)
        x_t = as_tensor(X)
        y_t = as_tensor(scaling.transform(y)).float()
        if val_tasks:
            xv, yv = stack_tasks(val_tasks)
            xv_t = as_tensor(xv)
            yv_t = as_tensor(scaling.transform(yv)).float()

        gen = torch.Generator().manual_seed(int(self.random_state))
        net = make_network(str(self.network), self.hidden_sizes, n_features)
        # initialised on the CPU from the seeded generator: the same start on every device
        params = {k: v.requires_grad_(True) for k, v in to_device(net.init(gen)).items()}
        fit = fit_minibatches(
            params,
            lambda idx: outcome.loss(net.forward(params, x_t[idx]), y_t[idx]),
            torch.arange(len(y_t)),
            (lambda: outcome.loss(net.forward(params, xv_t), yv_t)) if val_tasks else None,
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            batch_size=int(self.batch_size),
            max_batches_per_epoch=int(self.max_batches_per_epoch),
            max_epochs=int(self.max_epochs),
            patience=int(self.patience),
            generator=gen,
            progress=self.progress,
        )
        best, best_epoch, history = fit.params, fit.best_epoch, fit.history
        self.params_ = to_cpu(best)  # fitted state rests on the CPU
        self.n_features_ = n_features
        self.outcome_type_ = outcome
        self.y_mean_ = scaling.mean
        self.y_std_ = scaling.std
        self.best_epoch_ = best_epoch
        self.history_ = history

    def _check_adapt(self, support: Task) -> None:
        _check_adapt(self, support)

    def adapt(self, support: Task) -> MLPModel:
        """Return the pooled model unchanged (the support set is only validated)."""
        self._check_adapt(support)
        return self._model(self.params_)

    def _network_spec(self) -> tuple[str, tuple[int, ...]] | None:
        """(network name, hidden sizes), or None for the functional MLP."""
        if self.network == "mlp":
            return None
        return str(self.network), tuple(int(h) for h in self.hidden_sizes)

    def _net(self) -> Network:
        return network_of(self._network_spec(), self.n_features_)

    def _model(self, params: Params) -> MLPModel:
        """The adapted model of the training outcome with ``params``."""
        return adapted_mlp(
            self.outcome_type_,
            to_cpu(params),
            self.n_features_,
            self.y_mean_,
            self.y_std_,
            self._network_spec(),
        )


#: How many times a diverging fine-tuning restarts with a ten times smaller step.
_RETRIES = 3


@register("pooled-finetune")
@hyperparameters
class PooledFineTune(PooledMLP):
    """The pooled MLP fine-tuned on each support set.

    ``adapt`` runs ``finetune_steps`` full-batch gradient-descent steps on the support
    loss plus an L2 pull toward the pooled weights θ₀ (L2-SP; Li, Grandvalet & Davoine,
    ICML 2018)::

        loss(θ) = task_loss(support; θ) + anchor_strength / 2 · ‖θ − θ₀‖²

    With K = 2 the support loss alone can be driven to zero by moving far from θ₀; the
    anchor keeps the adapted model near the pooled one.

    Parameters
    ----------
    finetune_steps : int, default 20
        Gradient steps at adaptation (0 gives the pooled model back).
    finetune_lr : float, default 0.05
        Step size of plain gradient descent (as in the MAML inner loop).
    anchor_strength : float, default 1.0
        Weight of the L2 pull toward the pooled weights (0 disables it).
    **pooled parameters
        As :class:`PooledMLP`.
    """

    finetune_steps: int = hyperparameter(default=20, allowed=NON_NEGATIVE_INT)
    finetune_lr: float = hyperparameter(default=0.05, allowed=POSITIVE)
    anchor_strength: float = hyperparameter(default=1.0, allowed=NON_NEGATIVE)

    def adapt(self, support: Task) -> MLPModel:
        """Fine-tune a copy of the pooled weights on ``support`` (full batch, deterministic).

        Where the steps diverge (a loss or a weight that is not finite: on IWPC warfarin,
        when rare 0/1 flags were still standardised to about 38, one such patient in a
        support set could make a step of 0.05 explode), fine-tuning starts again from the pooled weights with
        a step ten times smaller, at most :data:`_RETRIES` times, then keeps the pooled
        weights.  Wherever the steps stay finite the result is the plain fine-tuning's.
        """
        self._check_adapt(support)
        x = as_tensor(support.X)
        y = as_tensor((support.y - self.y_mean_) / self.y_std_).float()
        lr = float(self.finetune_lr)
        for _ in range(_RETRIES + 1):
            params = self._finetune(x, y, lr)
            if params is not None:
                return self._model(params)
            lr /= 10
        return self._model(self.params_)

    def _finetune(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> dict[str, torch.Tensor] | None:
        """The fine-tuned weights at step size ``lr``, or None where a step diverged."""
        if self._network_spec() is None:
            return self._finetune_mlp(x, y, lr)
        anchor = to_device(self.params_)
        params = {k: v.clone().requires_grad_(True) for k, v in anchor.items()}
        net = self._net()
        for _ in range(int(self.finetune_steps)):
            loss = self.outcome_type_.loss(net.forward(params, x), y)
            if self.anchor_strength > 0:
                pull = sum(((params[k] - anchor[k]) ** 2).sum() for k in params)
                loss = loss + 0.5 * self.anchor_strength * pull
            if not torch.isfinite(loss):
                return None
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                params = {
                    k: (p - lr * g).requires_grad_(True)
                    for (k, p), g in zip(params.items(), grads, strict=True)
                }
        if not all(bool(torch.isfinite(p).all()) for p in params.values()):
            return None
        return params

    def _finetune_mlp(
        self, x: torch.Tensor, y: torch.Tensor, lr: float
    ) -> dict[str, torch.Tensor] | None:
        """:meth:`_finetune` for the functional MLP, with its gradient written out.

        The same steps as the autograd loop (``engine.loss_grad`` is the analytic gradient
        of the same mean loss, checked against autograd in the tests), without building a
        graph per step: on these small networks autograd's bookkeeping costs several
        times the arithmetic (about ten times over, for a 64-64 MLP on 20 rows).
        A step that diverges shows as a weight that is not finite at the end (a
        non-finite loss has non-finite gradients).
        """
        anchor = to_device(self.params_)
        params = dict(anchor)
        mask = torch.ones_like(y)
        strength = float(self.anchor_strength)
        with torch.no_grad():
            for _ in range(int(self.finetune_steps)):
                grads = loss_grad(params, x, y, mask, self.outcome_type_)
                if strength > 0:
                    grads = {k: g + strength * (params[k] - anchor[k]) for k, g in grads.items()}
                params = {k: params[k] - lr * grads[k] for k in params}
        if not all(bool(torch.isfinite(p).all()) for p in params.values()):
            return None
        return params


# -- local-only models -------------------------------------------------------------------------
class _LocalLearner(MetaLearner):
    """Shared part of the support-only baselines: meta_fit only records the data's shape."""

    uses_meta_training = False
    outcome_types = tuple(_SUPPORT_MODELS)

    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> _LocalLearner:
        """Record the feature count and outcome type; the tasks themselves are not used."""
        self._validate_params()
        n_features = self._check_tasks(train_tasks)
        outcome = self._check_outcome(train_tasks)
        check_val_tasks(val_tasks, n_features, outcome)
        self.n_features_ = n_features
        self.outcome_type_ = outcome
        return self

    def _check_adapt(self, support: Task) -> None:
        _check_adapt(self, support)

    def _fit(self, estimator: Any, support: Task) -> AdaptedModel:
        """``estimator`` fitted on ``support``, or the constant risk of a one-class support."""
        if self.outcome_type_.classes is not None:
            risk = one_class_risk(support.y)
            if risk is not None:
                return ConstantRiskModel(risk, self.n_features_)
        estimator.fit(support.X, _estimator_labels(self.outcome_type_, support.y))
        return _SUPPORT_MODELS[self.outcome_type_](estimator, self.n_features_)


@register("local-logreg")
@hyperparameters
class LocalLogisticRegression(_LocalLearner):
    """L2-penalised logistic regression fitted on the support set alone.

    Numeric outcomes get ridge regression with ``alpha = 1 / C``, the same penalty as
    the logistic model's (scikit-learn minimises ½‖w‖² + C·Σ loss in both cases when the
    squared loss is halved), so one hyperparameter controls both.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 strength.  With K of 2 to 20 the penalty, not the data, sets the scale of
        the coefficients; C = 1 on standardised features keeps probabilities moderate.
    max_iter : int, default 1000
        Solver iterations (lbfgs).
    random_state : int, default 0
        Kept for a uniform contract; lbfgs is deterministic.
    """

    C: float = hyperparameter(default=1.0, allowed=POSITIVE)
    max_iter: int = hyperparameter(default=1000, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED, hint=_SEED_HINT)

    def adapt(self, support: Task) -> AdaptedModel:
        """Fit a fresh logistic (or ridge) regression on ``support``."""
        self._check_adapt(support)
        estimators = {
            BINARY: lambda: LogisticRegression(
                C=self.C, max_iter=int(self.max_iter), random_state=int(self.random_state)
            ),
            NUMERIC: lambda: Ridge(alpha=1.0 / self.C),
        }
        return self._fit(estimators[self.outcome_type_](), support)


class _LightGBMLocal(_LocalLearner):
    """A LightGBM model fitted on the support set alone; subclasses build the estimator."""

    def _estimator(self) -> Any:
        raise NotImplementedError

    def _lightgbm(self, **settings: Any) -> Any:
        """The LightGBM estimator of the outcome with ``settings``, plus what every local
        LightGBM model shares: small-data binning, seeded and deterministic, silent."""
        estimator = {BINARY: LGBMClassifier, NUMERIC: LGBMRegressor}[self.outcome_type_]
        return estimator(
            **settings,
            min_data_in_bin=1,
            n_jobs=int(self.n_jobs),  # type: ignore[attr-defined]
            random_state=int(self.random_state),  # type: ignore[attr-defined]
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )

    def adapt(self, support: Task) -> AdaptedModel:
        """Fit a fresh LightGBM model on ``support``."""
        self._check_adapt(support)
        return self._fit(self._estimator(), support)


@register("local-gbm")
@hyperparameters
class LocalGBM(_LightGBMLocal):
    """LightGBM gradient boosting fitted on the support set alone.

    The defaults are set for tiny support sets: leaves may hold 2 rows and bins 1 row
    (LightGBM's defaults of 20 and 3 would forbid every split below K = 40), and an L2
    penalty on leaf values (``reg_lambda``) keeps the few leaves from extreme values.
    When no split is possible (K = 2 or 3 with ``min_child_samples = 2``) the model
    predicts the support prevalence for every row.

    Parameters
    ----------
    n_estimators : int, default 100
    learning_rate : float, default 0.1
    num_leaves : int, default 7
    min_child_samples : int, default 2
        Fewest support rows in a leaf.
    reg_lambda : float, default 5.0
        L2 penalty on leaf values.  A leaf's value is −G / (H + reg_lambda) and at tiny K
        the Hessian sum H is small (0.25 per row at p = 0.5), so this penalty sets how
        far probabilities move from the prevalence.  With 1.0, K = 4 gave a Brier score
        (0.345) worse than a constant prediction; 5.0 gave 0.267 at the same AUROC
        (docs/learners/local-gbm.md).
    n_jobs : int, default 1
        Threads; one thread keeps fits deterministic and avoids oversubscription when
        many episodes run in parallel.
    random_state : int, default 0
    """

    n_estimators: int = hyperparameter(default=100, allowed=POSITIVE_INT)
    learning_rate: float = hyperparameter(default=0.1, allowed=POSITIVE)
    num_leaves: int = hyperparameter(default=7, allowed=Interval(Integral, 2, None))
    min_child_samples: int = hyperparameter(default=2, allowed=POSITIVE_INT)
    reg_lambda: float = hyperparameter(default=5.0, allowed=NON_NEGATIVE)
    n_jobs: int = hyperparameter(default=1, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED, hint=_SEED_HINT)

    def _estimator(self) -> Any:
        return self._lightgbm(
            n_estimators=int(self.n_estimators),
            learning_rate=float(self.learning_rate),
            num_leaves=int(self.num_leaves),
            min_child_samples=int(self.min_child_samples),
            reg_lambda=float(self.reg_lambda),
        )


@register("local-rf")
@hyperparameters
class LocalRandomForest(_LightGBMLocal):
    """A random forest fitted on the support set alone (LightGBM's ``rf`` mode).

    Each tree is grown on a bootstrap-like bag of the support rows (``bagging_fraction``)
    with a random share of the features tried at each split (``max_features``), and the
    forest averages the trees, as Breiman's random forest does.  LightGBM's forest (not
    scikit-learn's) because its text model is what a saved adapted model stores; no
    pickle is needed.  The FS-Mol and molecular few-shot papers report a random forest on
    fingerprints as the support-only baseline to beat.

    Parameters
    ----------
    n_estimators : int, default 100
        Trees.
    num_leaves : int, default 31
    min_child_samples : int, default 1
        Fewest support rows in a leaf (1: trees may separate every support molecule).
    max_features : float, default 0.1
        Share of the features tried at each split (LightGBM ``feature_fraction_bynode``);
        about sqrt(2048) / 2048 * 4 for a 2048-bit fingerprint.
    bagging_fraction : float, default 0.632
        Share of the support rows each tree sees (a bootstrap sample's distinct share).
    n_jobs : int, default 1
    random_state : int, default 0
    """

    n_estimators: int = hyperparameter(default=100, allowed=POSITIVE_INT)
    num_leaves: int = hyperparameter(default=31, allowed=Interval(Integral, 2, None))
    min_child_samples: int = hyperparameter(default=1, allowed=POSITIVE_INT)
    max_features: float = hyperparameter(default=0.1, allowed=Interval(Real, 0, 1, closed="right"))
    bagging_fraction: float = hyperparameter(
        default=0.632, allowed=Interval(Real, 0, 1, closed="neither")
    )
    n_jobs: int = hyperparameter(default=1, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED, hint=_SEED_HINT)

    def _estimator(self) -> Any:
        return self._lightgbm(
            boosting_type="rf",
            n_estimators=int(self.n_estimators),
            num_leaves=int(self.num_leaves),
            min_child_samples=int(self.min_child_samples),
            min_sum_hessian_in_leaf=1e-5,
            reg_lambda=0.0,
            feature_fraction_bynode=float(self.max_features),
            bagging_fraction=float(self.bagging_fraction),
            bagging_freq=1,
        )
