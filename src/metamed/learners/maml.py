"""MAML, first-order MAML, ANIL and Meta-SGD: gradient-based meta-learners on one network.

All four meta-learn an initialisation of the same network, the functional MLP
(:mod:`metamed.learners.mlp`) or, with ``network="cnn"`` or a registered network of your
own, any ``torch.nn.Module`` (:mod:`metamed.learners.networks`; the ``"func"`` backend),
such that a few gradient steps on a new task's support set give a good model for
that task; they differ only in what the inner loop adapts and how the meta-gradient
is taken, which is why they share one engine (:mod:`metamed.learners.engine`):

==========  ===========================  ==================  ==========================
learner     adapts in the inner loop     meta-gradient       reference
==========  ===========================  ==================  ==========================
MAML        all layers                   second order        Finn et al. (2017)
FOMAML      all layers                   first order         Finn et al. (2017), §5.2
ANIL        output layer only            second order        Raghu et al. (2020)
MetaSGD     all layers, learned step     second order        Li et al. (2017)
            size per parameter
==========  ===========================  ==================  ==========================

Meta-training samples meta-batches of K-shot episodes with
:class:`~metamed.tasks.EpisodeSampler`, updates the initialisation with Adam, and, when
validation tasks are given, keeps the parameters with the lowest query loss on a fixed
set of validation episodes (early stopping).  The shared scaffolding
(:class:`GradientMetaLearner`, :class:`AdaptedMLP`) is reused by Reptile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from metamed.device import as_tensor, current_device, to_cpu, to_device
from metamed.errors import MetamedValueError
from metamed.learners._params import (
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Boolean,
    LayerWidths,
    Options,
    hyperparameter,
    hyperparameters,
)
from metamed.learners._training import EarlyStopping
from metamed.learners.base import (
    AdaptedModel,
    BinaryModel,
    MetaLearner,
    ProgressCallback,
    check_features,
    register,
)
from metamed.learners.engine import (
    BACKENDS,
    InnerLoopConfig,
    LearningRate,
    Params,
    adapt_params,
    meta_gradient,
    meta_loss,
)
from metamed.learners.networks import NETWORKS, MLPNetwork, Network, make_network
from metamed.outcomes import BINARY, NUMERIC, Outcome, TargetScaling
from metamed.tasks.episodes import (
    EpisodeBatch,
    EpisodeSampler,
    make_episode,
    max_support_size,
    stack_episodes,
)
from metamed.tasks.task import Task, check_task_list

__all__ = [
    "AdaptedMLP",
    "BinaryAdaptedMLP",
    "NumericAdaptedMLP",
    "GradientMetaLearner",
    "MAML",
    "FOMAML",
    "ANIL",
    "MetaSGD",
    "ProgressCallback",
]

#: Validation episodes drawn per validation task (fixed once per ``meta_fit``): several
#: draws per task make the early-stopping signal less dependent on one lucky support set.
VAL_DRAWS_PER_TASK = 3


class AdaptedMLP(AdaptedModel):
    """An MLP adapted to one task; :class:`BinaryAdaptedMLP` and :class:`NumericAdaptedMLP`
    predict.  ``decision_function`` gives the raw outputs (logits, or standardised values).
    """

    def __init__(
        self,
        params: Params,
        n_features: int,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        network: tuple[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.n_features = n_features
        self.target_mean = target_mean
        self.target_std = target_std
        if network is not None:  # (name, hidden_sizes); MLP models keep their old state
            self.network = network

    def _outputs(self, X: np.ndarray) -> torch.Tensor:
        spec = getattr(self, "network", None)
        net = _MLP if spec is None else make_network(spec[0], spec[1], self.n_features)
        with torch.no_grad():
            out = net.forward(to_device(self.params), as_tensor(self._inputs(X)))
        return out.cpu().double().reshape(-1)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits (binary) or standardised predictions (numeric), shape (n,)."""
        return self._outputs(X).numpy()

    @classmethod
    def joint(cls, models: Sequence[AdaptedModel]) -> Callable[[Any], np.ndarray] | None:
        """Plain MLPs of one shape: their parameters stacked, all answered in one forward pass.

        The answers equal each model's own up to float32 rounding of the matrix products
        (a batched product may sum in another order).
        """
        mlps = [m for m in models if type(m) is cls]
        if not mlps or len(mlps) != len(models):
            return None
        first = mlps[0]
        spec = getattr(first, "network", None)
        if spec is not None and not isinstance(
            make_network(spec[0], spec[1], first.n_features), MLPNetwork
        ):
            return None
        shapes = {k: v.shape for k, v in first.params.items()}
        for m in mlps:
            if (
                {k: v.shape for k, v in m.params.items()} != shapes
                or getattr(m, "network", None) != spec
                or m.n_features != first.n_features
            ):
                return None
        params = {k: torch.stack([m.params[k] for m in mlps]) for k in shapes}
        means = np.array([[m.target_mean] for m in mlps], dtype=np.float64)
        stds = np.array([[m.target_std] for m in mlps], dtype=np.float64)
        binary, n_features = issubclass(cls, BinaryModel), first.n_features

        def predict_all(X: Any) -> np.ndarray:
            with torch.no_grad():  # weights [K, out, in] against shared rows [n, in]
                x = as_tensor(check_features(X, n_features))
                out = _MLP.forward(to_device(params), x).cpu().double()
            return torch.sigmoid(out).numpy() if binary else out.numpy() * stds + means

        return predict_all


class BinaryAdaptedMLP(BinaryModel, AdaptedMLP):
    """An adapted MLP of a binary outcome: sigmoid probabilities of its logits."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n,)."""
        return torch.sigmoid(self._outputs(X)).numpy()


class NumericAdaptedMLP(AdaptedMLP):
    """An adapted MLP of a numeric outcome, modelled standardised."""

    outcome_type = NUMERIC

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions in the outcome's own units, shape (n,)."""
        scaling = TargetScaling(self.target_mean, self.target_std)
        return scaling.inverse(self._outputs(X).numpy())


_MLP = MLPNetwork()

#: The adapted MLP of each outcome type.
_ADAPTED_MLPS: dict[Outcome, type[AdaptedMLP]] = {
    BINARY: BinaryAdaptedMLP,
    NUMERIC: NumericAdaptedMLP,
}


@hyperparameters
class GradientMetaLearner(MetaLearner):
    """Shared scaffolding of the MLP meta-learners (MAML family and Reptile).

    Subclasses implement :meth:`_init_state`, :meth:`_train_step`, :meth:`_inner_lr`
    and say whether they adapt the head only.  Everything else (hyperparameter checks,
    seeding, episode sampling, target scaling, early stopping, adaptation, progress
    reporting) lives here so the learners differ only in their algorithm.

    Attributes set by ``meta_fit``
    -------------------------------
    params_ : dict of str to Tensor
        Meta-learned MLP parameters (the best ones on validation episodes if given).
    n_features_ : int
    outcome_type_ : Outcome
    target_mean_, target_std_ : float
        Standardisation of numeric outcomes, fitted on the training tasks (0 and 1 for
        binary outcomes).
    history_ : dict
        ``train_loss`` (one value per iteration), ``val_loss`` (list of
        ``(iteration, loss)``), ``best_iteration``, ``n_iterations``, ``stopped_early``.
    skipped_tasks_ : dict of str to str
        Training tasks too small for a K-shot episode, with the reason.
    """

    outcome_types = tuple(_ADAPTED_MLPS)
    #: Adapt only the output layer (ANIL).
    _head_only: ClassVar[bool] = False
    #: Keys of the state dict built by ``_init_state``; each is published as ``<stem>_``.
    _state_stems: ClassVar[tuple[str, ...]] = ("params",)

    # The hyperparameters of the whole family (documented in _FAMILY_DOC below); a
    # progress hook is set on the instance (MetaLearner.progress), not passed here.
    hidden_sizes: tuple[int, ...] = hyperparameter(default=(64, 64), allowed=LayerWidths())
    inner_steps: int = hyperparameter(default=5, allowed=POSITIVE_INT)
    inner_lr: float = hyperparameter(default=0.1, allowed=POSITIVE)
    outer_lr: float = hyperparameter(default=1e-3, allowed=POSITIVE)
    meta_batch_size: int = hyperparameter(default=16, allowed=POSITIVE_INT)
    meta_iterations: int = hyperparameter(default=500, allowed=POSITIVE_INT)
    k_support: int = hyperparameter(default=10, allowed=POSITIVE_INT)
    n_query: int | None = hyperparameter(default=20, allowed=[POSITIVE_INT, None])
    chunk_size: int | None = hyperparameter(default=None, allowed=[POSITIVE_INT, None])
    adapt_steps: int | None = hyperparameter(default=None, allowed=[NON_NEGATIVE_INT, None])
    eval_every: int = hyperparameter(default=25, allowed=POSITIVE_INT)
    patience: int | None = hyperparameter(default=5, allowed=[POSITIVE_INT, None])
    backend: str = hyperparameter(default="manual", allowed=Options(BACKENDS))
    random_state: int | None = hyperparameter(default=0, allowed=[SEED, None])

    # -- hooks for subclasses ------------------------------------------------------------
    def _init_state(self, params: Params) -> dict[str, Params]:
        """Tensors that meta-training updates, keyed by attribute stem (``params``, ...)."""
        return {"params": params}

    def _inner_lr(self, state: dict[str, Params]) -> LearningRate:
        return float(self.inner_lr)

    def _first_order(self) -> bool:
        return False

    def _train_step(self, state: dict[str, Params], batch: EpisodeBatch, iteration: int) -> float:
        raise NotImplementedError

    def _make_optimizer(self, state: dict[str, Params]) -> torch.optim.Optimizer | None:
        return None

    def _network_spec(self) -> tuple[str, tuple[int, ...]] | None:
        """(network name, hidden sizes), or None for the functional MLP."""
        return None

    def _network(self, n_features: int) -> Network:
        spec = self._network_spec()
        if spec is None:
            return MLPNetwork([n_features, *[int(h) for h in self.hidden_sizes], 1])
        return make_network(spec[0], spec[1], n_features)

    def _config(self, steps: int, first_order: bool) -> InnerLoopConfig:
        """The inner loop of this learner on its fitted network."""
        return InnerLoopConfig(
            steps,
            self.outcome_type_,
            first_order,
            self._head_only,
            self.backend,
            self._network(self.n_features_) if self._network_spec() else None,
        )

    def _make_sampler(self, tasks: list[Task], rng: np.random.Generator) -> EpisodeSampler:
        """Where meta-training episodes come from (MetaPred draws groups of cohorts)."""
        return EpisodeSampler(tasks, self.k_support, self.n_query, rng)

    # -- episodes ------------------------------------------------------------------------
    def _scaled(self, batch: EpisodeBatch) -> EpisodeBatch:
        """Standardise numeric targets (inner_lr then means the same on every dataset)."""
        scaling = TargetScaling(self.target_mean_, self.target_std_)
        if scaling.is_identity:
            return batch
        return replace(
            batch,
            support_y=scaling.transform(batch.support_y),
            query_y=scaling.transform(batch.query_y),
        )

    def _val_batch(self, val_tasks: list[Task], rng: np.random.Generator) -> EpisodeBatch:
        usable = [t for t in val_tasks if max_support_size(t) >= self.k_support]
        if not usable:
            raise MetamedValueError(
                f"No validation task can provide a K={self.k_support} support set plus a query "
                f"set (tasks: {', '.join(t.name for t in val_tasks)}). Lower k_support, pass "
                "larger validation tasks, or pass val_tasks=None to train without early stopping."
            )
        episodes = [
            make_episode(t, self.k_support, rng, self.n_query)
            for t in usable
            for _ in range(VAL_DRAWS_PER_TASK)
        ]
        return self._scaled(stack_episodes(episodes)).to(current_device())

    def _val_loss(self, state: dict[str, Params], batch: EpisodeBatch) -> float:
        """Query loss after the test-time adaptation (``adapt_steps``, no outer graph)."""
        config = self._config(self._adapt_steps(), True)
        return meta_loss(state["params"], batch, config, self._inner_lr(state), self.chunk_size)

    def _adapt_steps(self) -> int:
        return self.inner_steps if self.adapt_steps is None else int(self.adapt_steps)

    # -- the contract --------------------------------------------------------------------
    def meta_fit(
        self, train_tasks: list[Task], val_tasks: list[Task] | None = None
    ) -> GradientMetaLearner:
        """Meta-train on ``train_tasks``; early-stop on ``val_tasks`` when given.

        Returns ``self``.  Raises :class:`~metamed.errors.MetamedValueError` /
        :class:`~metamed.errors.MetamedTypeError` for bad hyperparameters or tasks.
        """
        self._validate_params()
        n_features = self._check_tasks(train_tasks, "train_tasks")
        outcome_type = self._check_outcome(list(train_tasks), "train_tasks")
        if val_tasks is not None:
            val_tasks = check_task_list(val_tasks, "val_tasks")
            if self._check_tasks(val_tasks, "val_tasks") != n_features:
                raise MetamedValueError(
                    "val_tasks have a different feature count from train_tasks; preprocess both "
                    "with the same fitted Preprocessor."
                )
            if self._check_outcome(val_tasks, "val_tasks") != outcome_type:
                raise MetamedValueError(
                    f"val_tasks have a different outcome type from train_tasks ({outcome_type})."
                )
        # Fitted state is assembled in locals and published at the end, so a failed
        # meta_fit does not leave a half-fitted learner behind.
        self.outcome_type_ = outcome_type
        scaling = outcome_type.fit_scaling(np.concatenate([t.y for t in train_tasks]))
        self.target_mean_, self.target_std_ = scaling.mean, scaling.std
        try:
            self._fit(list(train_tasks), val_tasks, n_features)
        except BaseException:
            for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                delattr(self, key)
            raise
        return self

    def _fit(self, train_tasks: list[Task], val_tasks: list[Task] | None, n_features: int) -> None:
        seeds = np.random.SeedSequence(self.random_state)
        train_seed, val_seed, init_seed = seeds.spawn(3)
        sampler = self._make_sampler(train_tasks, np.random.default_rng(train_seed))
        generator = torch.Generator().manual_seed(int(init_seed.generate_state(1)[0]))
        # n_features_ first: the inner-loop configuration builds the network from it.
        self.n_features_ = n_features
        network = self._network(n_features)
        if self._network_spec() is not None:
            self._config(int(self.inner_steps), False)  # a backend the network lacks: now
        # initialised on the CPU from the seeded generator: the same start on every device
        state = self._init_state(to_device(network.init(generator)))
        val_batch = (
            self._val_batch(val_tasks, np.random.default_rng(val_seed)) if val_tasks else None
        )
        self._optimizer = self._make_optimizer(state)
        try:
            history, best_state = self._loop(state, sampler, val_batch)
        finally:
            del self._optimizer
        for stem, tensors in best_state.items():  # fitted state rests on the CPU
            setattr(self, f"{stem}_", to_cpu(tensors))
        self.n_features_ = n_features
        self.skipped_tasks_ = dict(sampler.skipped)
        self.history_ = history

    def _loop(
        self, state: dict[str, Params], sampler: EpisodeSampler, val_batch: EpisodeBatch | None
    ) -> tuple[dict[str, Any], dict[str, Params]]:
        """The meta-training loop with early stopping; returns (history, best state)."""

        history: dict[str, Any] = {"train_loss": [], "val_loss": [], "stopped_early": False}
        initial_state = _copy_state(state)
        initial_loss = math.inf
        if val_batch is not None:
            initial_loss = self._val_loss(state, val_batch)
            history["val_loss"].append((0, initial_loss))
        stopper = EarlyStopping(initial_state, self.patience, best_loss=initial_loss)
        total = int(self.meta_iterations)
        iteration = 0
        for iteration in range(1, total + 1):
            batch = self._scaled(sampler.sample(int(self.meta_batch_size))).to(current_device())
            loss = self._train_step(state, batch, iteration)
            if not math.isfinite(loss):
                raise MetamedValueError(
                    f"{type(self).__name__} meta-training diverged at iteration {iteration} "
                    f"(loss {loss}); lower inner_lr (now {self.inner_lr}) or outer_lr "
                    f"(now {self.outer_lr}): on the command line --param METHOD.inner_lr=VALUE, "
                    "in a spec file params = { inner_lr = VALUE }, in a suite file under the "
                    "dataset params = { METHOD = { inner_lr = VALUE } }."
                )
            history["train_loss"].append(loss)
            if self.progress is not None:
                self.progress(iteration, total, loss)
            if val_batch is not None and (iteration % self.eval_every == 0 or iteration == total):
                val = self._val_loss(state, val_batch)
                history["val_loss"].append((iteration, val))
                if stopper.update(val, iteration, lambda: _copy_state(state)):
                    history["stopped_early"] = True
                    break
        best_state, best_iteration = stopper.best_state, stopper.best_step
        if val_batch is None:
            best_state, best_iteration = _copy_state(state), iteration
        history["best_iteration"] = best_iteration
        history["n_iterations"] = iteration
        return history, best_state

    def adapt(self, support: Task) -> AdaptedMLP:
        """Fine-tune the meta-learned parameters on ``support``; the learner is unchanged."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        state = {stem: to_device(tensors) for stem, tensors in self._fitted_state().items()}
        y = (support.y - self.target_mean_) / self.target_std_
        with torch.no_grad():
            adapted = adapt_params(
                state["params"],
                as_tensor(support.X),
                as_tensor(y.astype(np.float32)),
                inner_lr=self._inner_lr(state),
                inner_steps=self._adapt_steps(),
                outcome_type=self.outcome_type_,
                head_only=self._head_only,
                backend=self.backend,
                network=self._network(self.n_features_) if self._network_spec() else None,
            )
        model = _ADAPTED_MLPS[self.outcome_type_]
        return model(
            to_cpu(adapted), self.n_features_, self.target_mean_, self.target_std_, self._network_spec()
        )

    def _fitted_state(self) -> dict[str, Params]:
        return {stem: getattr(self, f"{stem}_") for stem in self._state_stems}


def _copy_state(state: dict[str, Params]) -> dict[str, Params]:
    return {s: {k: v.detach().clone() for k, v in t.items()} for s, t in state.items()}


@hyperparameters
class _MAMLFamily(GradientMetaLearner):
    """Outer loop shared by MAML, FOMAML, ANIL and Meta-SGD: Adam on the meta-gradient."""

    network: str = hyperparameter(
        default="mlp",
        allowed=Options(NETWORKS),
        hint="A network other than 'mlp' needs backend='func' (ANIL: either backend).",
    )

    def _network_spec(self) -> tuple[str, tuple[int, ...]] | None:
        if self.network == "mlp":
            return None
        return str(self.network), tuple(int(h) for h in self.hidden_sizes)

    def _make_optimizer(self, state: dict[str, Params]) -> torch.optim.Optimizer:
        leaves = [t.requires_grad_(True) for tensors in state.values() for t in tensors.values()]
        # foreach=False: the per-tensor loop is exact and these tensors are few and small.
        return torch.optim.Adam(leaves, lr=float(self.outer_lr), foreach=False)

    def _train_step(self, state: dict[str, Params], batch: EpisodeBatch, iteration: int) -> float:
        config = self._config(int(self.inner_steps), self._first_order())
        out = meta_gradient(state["params"], batch, config, self._inner_lr(state), self.chunk_size)
        for key, g in out.grads.items():
            state["params"][key].grad = g
        if out.lr_grads is not None:
            for key, g in out.lr_grads.items():
                state["lrs"][key].grad = g
        assert self._optimizer is not None  # made by _make_optimizer for the whole _fit
        self._optimizer.step()
        return out.loss


@hyperparameters
class _FirstOrderOption(_MAMLFamily):
    """The MAML-family hyperparameters plus ``first_order`` (MAML, ANIL and Meta-SGD).

    FOMAML is first order by definition and therefore takes no such parameter.
    """

    first_order: bool = hyperparameter(default=False, allowed=Boolean())

    def _first_order(self) -> bool:
        return bool(self.first_order)


_FAMILY_DOC = """
    Parameters
    ----------
    hidden_sizes : tuple of int, default (64, 64)
        Hidden layer widths of the MLP (input and 1-unit output layers are added).
    inner_steps : int, default 5
        SGD steps on each task's support set during meta-training.
    inner_lr : float, default 0.1
        Inner-loop SGD step size{lr_note}.
    outer_lr : float, default 1e-3
        Adam learning rate of the meta-update.
    meta_batch_size : int, default 16
        Tasks (episodes) per meta-update.
    meta_iterations : int, default 500
        Maximum number of meta-updates.
    k_support : int, default 10
        Support-set size of training and validation episodes.
    n_query : int or None, default 20
        Query rows per episode (None: all rows not in the support set).
    chunk_size : int or None, default None
        Tasks processed per vectorised call; lower it to bound memory (same result).
    adapt_steps : int or None, default None
        SGD steps at adaptation time (None: ``inner_steps``).
    eval_every : int, default 25
        Meta-iterations between evaluations on the validation episodes.
    patience : int or None, default 5
        Stop after this many evaluations without improvement (None: never stop early).
    backend : {{"manual", "func", "lowrank"}}, default "manual"
        Inner-gradient implementation (see :mod:`metamed.learners.engine`); same result
        up to float rounding.
    network : str, default "mlp"
        The model (:data:`metamed.learners.networks.NETWORKS`): ``"mlp"``, ``"cnn"``
        (a small CNN on rows that are one-channel square images; ``hidden_sizes`` are then
        the channels of its convolution blocks), ``"cnn3d"`` (the same on cubic volumes),
        or a registered network of your own.
        Networks other than the MLP need ``backend="func"`` (ANIL runs on either).
    random_state : int or None, default 0
        Seeds episode sampling and initialisation; the same seed gives identical results.
"""


@register("maml")
class MAML(_FirstOrderOption):
    """Model-Agnostic Meta-Learning (Finn et al., 2017).

    Learns an MLP initialisation from which ``inner_steps`` SGD steps on a task's
    support set minimise the loss on its query set; the meta-gradient is taken through
    the inner loop (second order unless ``first_order=True``).
    {doc}
    first_order : bool, default False
        Drop the second-order terms (equivalent to :class:`FOMAML`).
    """


@register("fomaml")
class FOMAML(_MAMLFamily):
    """First-order MAML (Finn et al., 2017, section 5.2).

    MAML with the inner-loop gradients treated as constants: the meta-gradient is the
    query-loss gradient at the adapted parameters.  Cheaper per iteration than MAML and
    often about as accurate.
    {doc}
    """

    def _first_order(self) -> bool:
        return True


@register("anil")
@hyperparameters
class ANIL(_FirstOrderOption):
    """Almost No Inner Loop (Raghu et al., 2020).

    MAML in which the inner loop adapts only the output layer; the hidden layers (the
    "body") are meta-learned but shared by all tasks.  Needs at least one hidden layer.
    {doc}
    first_order : bool, default False
        Drop the second-order terms of the head's inner loop.
    """

    _head_only = True
    hidden_sizes: tuple[int, ...] = hyperparameter(
        default=(64, 64),
        allowed=LayerWidths(min_layers=1),
        hint="ANIL's inner loop adapts only the output layer, on top of the hidden ones.",
    )


@register("metasgd")
class MetaSGD(_FirstOrderOption):
    """Meta-SGD (Li et al., 2017).

    MAML with a learned inner-loop step size for every parameter entry (``lrs_``,
    same shapes as ``params_``), meta-trained by the same Adam update.  ``inner_lr`` is
    their starting value.
    {doc}
    first_order : bool, default False
        Drop the second-order terms (the step sizes still receive a gradient).

    Attributes
    ----------
    lrs_ : dict of str to Tensor
        Learned per-parameter inner-loop step sizes.
    """

    _state_stems = ("params", "lrs")

    def _init_state(self, params: Params) -> dict[str, Params]:
        lrs = {k: torch.full_like(v, float(self.inner_lr)) for k, v in params.items()}
        return {"params": params, "lrs": lrs}

    def _inner_lr(self, state: dict[str, Params]) -> LearningRate:
        return state["lrs"]


_LR_NOTES: dict[type[MetaLearner], str] = {
    MetaSGD: " (starting value of the learned per-parameter step sizes)"
}
for _cls in (MAML, FOMAML, ANIL, MetaSGD):
    _cls.__doc__ = (_cls.__doc__ or "").replace(
        "{doc}", _FAMILY_DOC.format(lr_note=_LR_NOTES.get(_cls, ""))
    )
