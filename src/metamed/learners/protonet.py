"""Prototypical networks (Snell, Swersky & Zemel, NeurIPS 2017) for binary clinical tasks.

An MLP (or, with ``network="cnn"``, the small CNN of :mod:`metamed.learners.networks`)
embeds each patient or image; a task's class *prototype* is the mean embedding of its
support patients of that class, and a query patient is classified by a softmax over
negative squared distances to the two prototypes.  Meta-training draws episodes from
the training tasks and minimises the query cross-entropy, so the embedding learns a
space in which "nearest class mean" works from a handful of examples.

With two classes the softmax reduces to a logistic function of the distance gap::

    logit P(y = 1 | x) = s · (d₀(x) − d₁(x)) + b,   d_c(x) = ‖f(x) − c_c‖² / E

- ``d_c`` is the squared Euclidean distance divided by the embedding width ``E``, so the
  scale of the logit does not grow with ``embedding_dim``.
- ``s = exp(log_scale)`` is a meta-learned inverse temperature (metric scaling, Oreshkin,
  Rodríguez & Lacoste, NeurIPS 2018).  Plain ProtoNets fix ``s = 1``; their
  probabilities are then only as calibrated as the embedding's distance scale happens to
  be.  Learning ``s`` on the query log-loss is a one-parameter calibration that is fitted
  during meta-training, not on the test task.
- ``b = log(n₁ / n₀)`` of the support set (``prior_correction``): with class-conditional
  Gaussians of shared isotropic covariance the posterior has exactly this form, with the
  class prior in ``b``.  Plain ProtoNets assume balanced classes (b = 0), which inflates
  risk for rare outcomes.  Support sets are random samples of the task (holding both
  classes), so ``n₁ / n₀`` estimates the task's odds (coarsely at tiny K).
- A support set of one class (the unconditioned sampler draws them) has no prototype for
  the other: that class falls back to its prior, the mean embedding of the training
  rows of that class (``class_means_``, computed once after meta-training), and the log
  odds get half a patient added to each class (log((n₁ + ½) / (n₀ + ½)), the
  Haldane-Anscombe correction), so that all-negative support sets give a small, finite
  risk instead of log(0).

The whole meta-batch is processed in one call: episodes are padded into an
:class:`~metamed.tasks.EpisodeBatch` and masks remove padding from prototypes and losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch

from metamed.device import as_tensor, current_device, to_cpu, to_device
from metamed.errors import MetamedValueError
from metamed.learners._params import (
    POSITIVE,
    POSITIVE_INT,
    SEED,
    Boolean,
    Callback,
    Interval,
    LayerWidths,
    Options,
    hyperparameter,
    hyperparameters,
)
from metamed.learners._training import EarlyStopping
from metamed.learners.base import BinaryModel, MetaLearner, ProgressCallback, register
from metamed.learners.baselines import check_val_tasks, detach_params, network_of, stack_tasks
from metamed.learners.mlp import Params, mlp_features, n_layers
from metamed.learners.networks import NETWORKS, Network, make_network
from metamed.outcomes import BINARY
from metamed.tasks.episodes import EpisodeBatch, EpisodeSampler
from metamed.tasks.task import Task

__all__ = ["ProtoNet", "ProtoModel", "embed", "prototypes", "proto_logits"]

#: Episodes drawn once from the validation tasks and reused at every evaluation, so that
#: early stopping compares iterations on the same episodes.
VAL_EPISODES = 64


def embed(params: Params, x: torch.Tensor, network: Network | None = None) -> torch.Tensor:
    """Embedding of shape ``x.shape[:-1] + (E,)``: the network's body, then a linear layer
    (``network`` None: the MLP's ReLU hidden layers)."""
    if network is not None:
        return network.outputs(params, x)
    last = n_layers(params) - 1
    return mlp_features(params, x) @ params[f"w{last}"].T + params[f"b{last}"]


def prototypes(
    emb: torch.Tensor, y: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-0 and class-1 mean embeddings and the log support odds log(n₁ / n₀).

    ``emb`` is [..., S, E], ``y`` and ``mask`` are [..., S]; padded rows (mask 0) are left
    out.  Returns tensors of shape [..., E], [..., E] and [...].
    """
    w1 = mask * y
    w0 = mask * (1.0 - y)
    n1 = w1.sum(-1)
    n0 = w0.sum(-1)
    c1 = (w1.unsqueeze(-1) * emb).sum(-2) / n1.unsqueeze(-1)
    c0 = (w0.unsqueeze(-1) * emb).sum(-2) / n0.unsqueeze(-1)
    return c0, c1, torch.log(n1) - torch.log(n0)


def proto_logits(
    query_emb: torch.Tensor,
    c0: torch.Tensor,
    c1: torch.Tensor,
    log_scale: torch.Tensor,
    log_odds: torch.Tensor | None,
) -> torch.Tensor:
    """Logits of class 1 for query embeddings [..., Q, E] given prototypes [..., E]."""
    width = query_emb.shape[-1]
    d0 = ((query_emb - c0.unsqueeze(-2)) ** 2).sum(-1) / width
    d1 = ((query_emb - c1.unsqueeze(-2)) ** 2).sum(-1) / width
    logits = torch.exp(log_scale) * (d0 - d1)
    if log_odds is not None:
        logits = logits + log_odds.unsqueeze(-1)
    return logits


def _batch_loss(
    params: Params,
    log_scale: torch.Tensor,
    batch: EpisodeBatch,
    prior_correction: bool,
    network: Network | None = None,
) -> torch.Tensor:
    """Mean query cross-entropy over all real query rows of a meta-batch (one call)."""
    c0, c1, log_odds = prototypes(
        embed(params, batch.support_x, network), batch.support_y, batch.support_mask
    )
    logits = proto_logits(
        embed(params, batch.query_x, network),
        c0,
        c1,
        log_scale,
        log_odds if prior_correction else None,
    )
    per_row = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, batch.query_y, reduction="none"
    )
    return (per_row * batch.query_mask).sum() / batch.query_mask.sum()


class ProtoModel(BinaryModel):
    """A ProtoNet adapted to one task: the embedding plus that task's two prototypes."""

    def __init__(
        self,
        params: Params,
        c0: torch.Tensor,
        c1: torch.Tensor,
        log_scale: float,
        log_odds: float | None,
        n_features: int,
        network: tuple[str, tuple[int, ...]] | None = None,
    ) -> None:
        self.params = detach_params(params)
        self.c0 = c0.detach().clone()
        self.c1 = c1.detach().clone()
        self.log_scale = log_scale
        self.log_odds = log_odds
        self.n_features = n_features
        if network is not None:  # MLP models keep the state they always saved
            self.network = network

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) per row, shape (n,)."""
        x = as_tensor(self._inputs(X))
        spec = getattr(self, "network", None)
        net = None if spec is None else network_of(spec, self.n_features, len(self.c0))
        device = x.device
        with torch.no_grad():
            log_odds = None if self.log_odds is None else torch.tensor(self.log_odds, device=device)
            logits = proto_logits(
                embed(to_device(self.params), x, net), self.c0.to(device), self.c1.to(device),
                torch.tensor(self.log_scale, device=device), log_odds,
            )  # fmt: skip
        return torch.sigmoid(logits).cpu().double().numpy()


@register("protonet")
@hyperparameters
class ProtoNet(MetaLearner):
    """Prototypical network meta-trained on episodes; binary outcomes only.

    Parameters
    ----------
    hidden_sizes : sequence of int, default (64, 64)
        Hidden ReLU layers of the embedding MLP (the meta-learners' default body); with
        ``network="cnn"`` the channels of the convolution blocks.
    network : str, default "mlp"
        The embedding's body (:data:`metamed.learners.networks.NETWORKS`), as for the
        MAML family.
    embedding_dim : int, default 32
        Width of the final linear embedding layer.
    k_support : int, default 10
        Support size of meta-training episodes (random, both classes present).
        Snell et al. found training shot close to test shot works best.
    n_query : int or None, default 32
        Query rows per training episode (None: all rows not in the support set).
    meta_batch_size : int, default 16
        Episodes per meta-training step.
    n_iterations : int, default 1000
        Meta-training steps (Adam).
    lr : float, default 1e-3
        Adam learning rate for the embedding and the temperature.
    learn_temperature : bool, default True
        Meta-learn the inverse temperature ``s`` (else ``s = 1``).
    prior_correction : bool, default True
        Add the support set's log odds to every logit (see the module docstring).
    eval_every : int, default 50
        Iterations between evaluations on the validation episodes.
    patience : int, default 10
        Early stopping: evaluations without a lower validation loss before stopping; the
        best iteration's weights are kept.  Unused without ``val_tasks``.
    random_state : int, default 0
        Seed of initial weights and episode draws.
    progress : callable(iteration, n_iterations, loss) or None
        Called after every meta-training step.
    """

    #: Class prototypes need classes.
    outcome_types = (BINARY,)

    hidden_sizes: Sequence[int] = hyperparameter(default=(64, 64), allowed=LayerWidths())
    network: str = hyperparameter(default="mlp", allowed=Options(NETWORKS))
    embedding_dim: int = hyperparameter(default=32, allowed=POSITIVE_INT)
    k_support: int = hyperparameter(default=10, allowed=Interval(Integral, 2, None))
    n_query: int | None = hyperparameter(default=32, allowed=[POSITIVE_INT, None])
    meta_batch_size: int = hyperparameter(default=16, allowed=POSITIVE_INT)
    n_iterations: int = hyperparameter(default=1000, allowed=POSITIVE_INT)
    lr: float = hyperparameter(default=1e-3, allowed=POSITIVE)
    learn_temperature: bool = hyperparameter(default=True, allowed=Boolean())
    prior_correction: bool = hyperparameter(default=True, allowed=Boolean())
    eval_every: int = hyperparameter(default=50, allowed=POSITIVE_INT)
    patience: int = hyperparameter(default=10, allowed=POSITIVE_INT)
    random_state: int = hyperparameter(default=0, allowed=SEED)
    progress: ProgressCallback | None = hyperparameter(default=None, allowed=[Callback(), None])

    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> ProtoNet:
        """Meta-train the embedding (and temperature) on episodes from ``train_tasks``."""
        self._validate_params()
        n_features = self._check_tasks(train_tasks)
        outcome_type = self._check_outcome(train_tasks)
        val_tasks = check_val_tasks(val_tasks, n_features, outcome_type)

        seeds = np.random.SeedSequence(int(self.random_state)).spawn(2)
        k, n_query = int(self.k_support), self.n_query
        sampler = EpisodeSampler(train_tasks, k, n_query, np.random.default_rng(seeds[0]))
        val_batch: EpisodeBatch | None = None
        if val_tasks:
            try:
                val_sampler = EpisodeSampler(val_tasks, k, n_query, np.random.default_rng(seeds[1]))
            except MetamedValueError as error:
                raise MetamedValueError(f"val_tasks: {error}") from error
            val_batch = val_sampler.sample(VAL_EPISODES).to(current_device())

        gen = torch.Generator().manual_seed(int(self.random_state))
        net = make_network(str(self.network), self.hidden_sizes, n_features, int(self.embedding_dim))
        network = None if self.network == "mlp" else net
        # initialised on the CPU from the seeded generator: the same start on every device
        params = {name: p.requires_grad_(True) for name, p in to_device(net.init(gen)).items()}
        log_scale = torch.zeros(
            (), device=current_device(), requires_grad=bool(self.learn_temperature)
        )
        trainable = [*params.values(), *([log_scale] if self.learn_temperature else [])]
        opt = torch.optim.Adam(trainable, lr=self.lr)
        prior = bool(self.prior_correction)

        history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}

        def snapshot() -> tuple[Params, float]:
            return detach_params(params), float(log_scale.detach())

        stopper = EarlyStopping(snapshot(), int(self.patience))
        total = int(self.n_iterations)
        for iteration in range(1, total + 1):
            batch = sampler.sample(int(self.meta_batch_size)).to(current_device())
            loss = _batch_loss(params, log_scale, batch, prior, network)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history["train_loss"].append(float(loss.detach()))
            if self.progress is not None:
                self.progress(iteration, total, float(loss.detach()))
            if val_batch is None or (iteration % int(self.eval_every) and iteration != total):
                continue
            with torch.no_grad():
                val_loss = float(_batch_loss(params, log_scale, val_batch, prior, network))
            history["val_loss"].append(val_loss)
            if stopper.update(val_loss, iteration, snapshot):
                break

        best, best_iteration = stopper.best_state, stopper.best_step
        if val_batch is None:
            best, best_iteration = snapshot(), total
        self.params_, self.log_scale_ = to_cpu(best[0]), best[1]  # at rest on the CPU
        with torch.no_grad():  # the prior prototypes of one-class support sets
            X, y = (as_tensor(a) for a in stack_tasks(train_tasks))
            c0, c1, _ = prototypes(embed(to_device(self.params_), X, network), y, torch.ones_like(y))
        self.class_means_ = torch.stack([c0, c1]).cpu()
        self.n_features_ = n_features
        self.outcome_type_ = outcome_type
        self.best_iteration_ = best_iteration
        self.history_ = history
        self.skipped_tasks_ = dict(sampler.skipped)
        return self

    def adapt(self, support: Task) -> ProtoModel:
        """Prototypes of ``support``'s two classes in the meta-learned embedding (a class
        the support set lacks takes its training-rows prototype)."""
        self._check_fitted()
        self._check_support(support, self.n_features_)
        spec = self._network_spec()
        network = None if spec is None else network_of(spec, self.n_features_, self._width())
        with torch.no_grad():
            emb = embed(to_device(self.params_), as_tensor(support.X), network)
            y = as_tensor(support.y)
            c0, c1, log_odds = prototypes(emb, y, torch.ones_like(y))
            c0, c1 = c0.cpu(), c1.cpu()
            n1 = float(y.sum())
            if n1 in (0.0, float(len(y))):  # one class: see the module docstring
                c0, c1 = (self.class_means_[0], c1) if n1 else (c0, self.class_means_[1])
                log_odds = torch.log(torch.tensor((n1 + 0.5) / (len(y) - n1 + 0.5)))
        return ProtoModel(
            self.params_,
            c0,
            c1,
            self.log_scale_,
            float(log_odds) if self.prior_correction else None,
            self.n_features_,
            spec,
        )

    def _network_spec(self) -> tuple[str, tuple[int, ...]] | None:
        if self.network == "mlp":
            return None
        return str(self.network), tuple(int(h) for h in self.hidden_sizes)

    def _width(self) -> int:
        return int(self.class_means_.shape[-1])
