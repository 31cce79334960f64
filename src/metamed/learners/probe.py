"""Two fine-tuning baselines on the pooled encoder: a linear probe, and the support set alone.

The few-shot imaging literature's bar (FHIST, Shakeri et al. 2022): a network pre-trained
on the training tasks, then fitted to the new task with a regularised linear classifier
on frozen features, matches or beats episodic meta-learning.  With ``pooled-finetune``
(all layers, pulled toward the pooled weights) these are the baselines the MAML family
and ProtoNet meet on the same network (the MLP, or ``network="cnn"``):

- ``linear-probe`` (:class:`LinearProbe`): the pooled network of :class:`PooledMLP`; at
  adaptation its body is frozen and a fresh L2 logistic regression is fitted on the
  support set's body features, standardised with the training rows' feature means and
  SDs (a statistic of K = 1 per class would be noise).  The adapted model is the pooled
  body with that head, so it saves and predicts like any adapted network.  Binary only.
- ``support-only`` (:class:`SupportOnly`): the same network trained from a seeded random
  start on the support set alone (full-batch Adam with weight decay); what a site with
  no meta-training data could do.  ``meta_fit`` only records the data's shape.

A support set of one class has nothing to separate: the probe then predicts the local
models' (n₁ + ½) / (K + 1) for every row (a zero-weight head at that logit); the
support-only network is trained on it like any other (a gradient learner needs no
fallback).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from metamed.device import as_tensor, to_cpu, to_device
from metamed.learners._params import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    LayerWidths,
    Options,
    hyperparameter,
    hyperparameters,
)
from metamed.learners.base import MetaLearner, register
from metamed.learners.baselines import (
    MLPModel,
    PooledMLP,
    _check_adapt,
    adapted_mlp,
    check_val_tasks,
    one_class_risk,
    stack_tasks,
)
from metamed.learners.networks import NETWORKS, make_network
from metamed.outcomes import BINARY
from metamed.tasks.task import Task

__all__ = ["LinearProbe", "SupportOnly"]


@register("linear-probe")
@hyperparameters
class LinearProbe(PooledMLP):
    """The pooled network's frozen body with a logistic regression fitted on the support set.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 strength of the support-set logistic regression (on standardised
        features, as ``local-logreg``).
    **pooled parameters
        As :class:`~metamed.learners.PooledMLP` (the pre-training of the network).

    Attributes
    ----------
    feature_mean_, feature_std_ : Tensor
        Body features' mean and SD over the training rows (the probe's standardisation).
    """

    outcome_types = (BINARY,)

    C: float = hyperparameter(default=1.0, allowed=POSITIVE)

    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> LinearProbe:
        """Pre-train the network on all training rows (as ``pooled``), then record the body
        features' means and SDs on those rows."""
        super().meta_fit(train_tasks, val_tasks)
        X, _ = stack_tasks(train_tasks)
        net = self._net()
        body, _ = net.split(self.params_)
        with torch.no_grad():
            phi = net.features(to_device(body), as_tensor(X)).cpu()
        self.feature_mean_ = phi.mean(0)
        # A unit that never fires has SD 0: dividing by 1 leaves it at 0 instead of NaN.
        std = phi.std(0)
        self.feature_std_ = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def adapt(self, support: Task) -> MLPModel:
        """Fit the logistic head on the support set's standardised body features."""
        self._check_adapt(support)
        net = self._net()
        body, _ = net.split(self.params_)
        risk = one_class_risk(support.y)
        if risk is not None:  # one class: a zero-weight head at the constant risk's logit
            width = int(self.feature_mean_.shape[0])
            logit = float(np.log(risk / (1.0 - risk)))
            head = {"w0": torch.zeros(1, width), "b0": torch.tensor([logit])}
            return self._model(net.join(body, head))
        with torch.no_grad():
            phi = net.features(to_device(body), as_tensor(support.X)).cpu()
        z = ((phi - self.feature_mean_) / self.feature_std_).double().numpy()
        fit = LogisticRegression(C=float(self.C), max_iter=1000).fit(z, support.y.astype(int))
        # The head on raw features: w·(phi - m)/s + b = (w/s)·phi + (b - Σ w m / s).
        w = torch.from_numpy(fit.coef_[0]).float() / self.feature_std_
        b = float(fit.intercept_[0]) - float((w * self.feature_mean_).sum())
        head = {"w0": w.reshape(1, -1), "b0": torch.tensor([b], dtype=torch.float32)}
        return self._model(net.join(body, head))


@register("support-only")
@hyperparameters
class SupportOnly(MetaLearner):
    """The network trained from scratch on the support set alone.

    Parameters
    ----------
    hidden_sizes : sequence of int, default (64, 64)
        As the meta-learners (``network="cnn"``: channels of the convolution blocks).
    network : str, default "mlp"
        The model (:data:`metamed.learners.networks.NETWORKS`).
    steps : int, default 100
        Full-batch Adam steps on the support set.
    lr : float, default 1e-2
        Adam learning rate.
    weight_decay : float, default 1e-2
        L2 penalty (Adam's), the only regularisation a model of K examples gets here.
    random_state : int, default 0
        Seed of the initial weights (the same for every support set).
    """

    uses_meta_training = False
    outcome_types = (BINARY,)

    hidden_sizes: Sequence[int] = hyperparameter(default=(64, 64), allowed=LayerWidths())
    network: str = hyperparameter(default="mlp", allowed=Options(NETWORKS))
    steps: int = hyperparameter(default=100, allowed=POSITIVE_INT)
    lr: float = hyperparameter(default=1e-2, allowed=POSITIVE)
    weight_decay: float = hyperparameter(default=1e-2, allowed=NON_NEGATIVE)
    random_state: int = hyperparameter(default=0, allowed=SEED)

    def meta_fit(self, train_tasks: list[Task], val_tasks: list[Task] | None = None) -> SupportOnly:
        """Record the feature count and outcome type; the tasks themselves are not used."""
        self._validate_params()
        n_features = self._check_tasks(train_tasks)
        outcome = self._check_outcome(train_tasks)
        check_val_tasks(val_tasks, n_features, outcome)
        # Build the network now, so that a network the rows cannot feed fails here.
        make_network(*self._network_spec(), n_features)
        self.n_features_ = n_features
        self.outcome_type_ = outcome
        return self

    def _network_spec(self) -> tuple[str, tuple[int, ...]]:
        return str(self.network), tuple(int(h) for h in self.hidden_sizes)

    def adapt(self, support: Task) -> MLPModel:
        """Train a freshly initialised network on ``support`` (deterministic)."""
        _check_adapt(self, support)
        spec = self._network_spec()
        net = make_network(spec[0], spec[1], self.n_features_)
        params = to_device(net.init(torch.Generator().manual_seed(int(self.random_state))))
        params = {k: v.requires_grad_(True) for k, v in params.items()}
        opt = torch.optim.Adam(
            params.values(), lr=float(self.lr), weight_decay=float(self.weight_decay)
        )
        x, y = as_tensor(support.X), as_tensor(support.y)
        for _ in range(int(self.steps)):
            loss = BINARY.loss(net.forward(params, x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return adapted_mlp(
            BINARY, to_cpu(params), self.n_features_, 0.0, 1.0, None if self.network == "mlp" else spec
        )

