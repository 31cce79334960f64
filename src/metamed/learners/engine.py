"""The vectorised inner/outer loop shared by MAML, first-order MAML, ANIL and Meta-SGD.

Parameters are a plain ``dict`` of tensors: the functional MLP's (:mod:`metamed.learners.mlp`,
the default) or those of any ``torch.nn.Module`` run through ``functional_call``
(:class:`~metamed.learners.networks.ModuleNetwork`, e.g. the small CNN of the imaging
tasks), chosen by ``InnerLoopConfig.network``.
One call adapts a whole meta-batch of tasks at once: the support sets arrive padded
to ``[B, S, D]`` with a ``[B, S]`` mask, each task gets its own copy of the
parameters (a leading task axis appears after the first inner step), and the masked
query loss after adaptation is averaged over tasks.  The meta-gradient is ordinary
reverse-mode autograd through the inner loop:

* second order (MAML): the inner gradients stay in the graph, so the outer gradient
  includes the Hessian-vector terms of Finn et al. (2017);
* first order (FOMAML): the inner gradients are treated as constants;
* head only (ANIL, Raghu et al. 2020): the body is shared and only the output layer
  is adapted; the body's features are computed once per task, not once per step;
* learned step sizes (Meta-SGD, Li et al. 2017): ``inner_lr`` is a dict of tensors
  shaped like the parameters, and it receives a meta-gradient too.

Three interchangeable ways to get the inner gradient (``backend``):

``"manual"`` (default)
    The analytic gradient of the masked MLP loss (back-propagation written out with
    batched matrix products).  Its formulas are plain differentiable tensor ops, so the
    outer autograd differentiates through them exactly as it would through autograd's
    own backward pass; it needs no ``vmap`` because every op broadcasts over the
    leading task axis.  It is the faster one on CPU (see
    ``benchmarks/results/meta_throughput.md``).
``"func"``
    ``torch.func.grad`` of the per-task loss, ``torch.func.vmap``-ed over the tasks of
    a chunk.  Generic (any differentiable loss, any network) and the cross-check of the
    manual one; the only backend for a module network's full inner loop (ANIL adapts a
    linear head, which the manual backend handles on any network's body features).

``"lowrank"``
    The manual backend's arithmetic with each task's adapted weights kept as the
    shared weights plus a low-rank correction (:mod:`metamed.learners.lowrank`): every
    product with the shared weights is one large GEMM over all tasks' rows, and the
    first-order meta-gradient is written out without autograd.  For the whole MLP with
    a scalar ``inner_lr``; ANIL, Meta-SGD and a single task run the manual code.

All give the same meta-gradient as a plain per-task loop with
``torch.autograd.grad(create_graph=True)`` (``tests/learners/test_engine.py``, which
covers a convolutional network too).
Tasks are processed ``chunk_size`` at a time and each chunk's graph is freed after its
backward pass, which bounds memory by the chunk, not the meta-batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import grad, vmap

from metamed.errors import MetamedValueError, unknown_name
from metamed.learners import lowrank
from metamed.learners.mlp import Params, linear, mlp_features, mlp_forward, n_layers
from metamed.learners.networks import MLPNetwork, Network
from metamed.outcomes import BINARY, Outcome, as_outcome
from metamed.tasks.episodes import EpisodeBatch

__all__ = [
    "Params",
    "LearningRate",
    "InnerLoopConfig",
    "MetaGradient",
    "BACKENDS",
    "forward",
    "features",
    "masked_loss",
    "loss_grad",
    "head_keys",
    "adapt_params",
    "query_losses",
    "meta_gradient",
    "meta_loss",
    "iter_chunks",
]

#: A scalar learning rate, or one tensor per parameter (Meta-SGD).
LearningRate = float | Params

BACKENDS = ("manual", "func", "lowrank")


@dataclass(frozen=True)
class InnerLoopConfig:
    """How the inner loop runs.

    Parameters
    ----------
    inner_steps : int
        Number of SGD steps on the support set (>= 0).
    outcome_type : Outcome or {"binary", "numeric"}
        Whose loss the inner loop minimises (:meth:`~metamed.outcomes.Outcome.row_losses`):
        BCE with logits for binary outcomes, squared error for numeric ones.
    first_order : bool
        Treat inner gradients as constants (FOMAML); no second-order terms.
    head_only : bool
        Adapt only the output layer on shared body features (ANIL).
    backend : {"manual", "func", "lowrank"}
        Where the inner gradient comes from (see the module docstring).
    network : Network or None
        The model the parameters belong to (:mod:`metamed.learners.networks`); None is
        the functional MLP.
    """

    inner_steps: int = 5
    outcome_type: Outcome = BINARY
    first_order: bool = False
    head_only: bool = False
    backend: str = "manual"
    network: Network | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome_type", as_outcome(self.outcome_type))
        if self.backend not in BACKENDS:
            raise unknown_name("backend", self.backend, BACKENDS)
        if self.network is None:
            object.__setattr__(self, "network", _MLP)
        if self.backend != "func" and not self.head_only and not self.net.manual_gradient:
            raise MetamedValueError(
                f"backend={self.backend!r} is the MLP's written-out gradient; a "
                f"{type(self.net).__name__} adapts all its layers with backend='func'."
            )
        if isinstance(self.inner_steps, bool) or int(self.inner_steps) != self.inner_steps:
            raise MetamedValueError(
                f"inner_steps must be a whole number >= 0, got {self.inner_steps!r}."
            )
        if self.inner_steps < 0:
            raise MetamedValueError(f"inner_steps must be >= 0, got {self.inner_steps}.")

    @property
    def net(self) -> Network:
        """The network (never None after construction)."""
        assert self.network is not None
        return self.network


#: The default network: the functional MLP, its layers read from the parameters.
_MLP = MLPNetwork()


@dataclass(frozen=True)
class MetaGradient:
    """Outer loss of a meta-batch and its gradients.

    ``grads`` has one tensor per parameter; ``lr_grads`` one per learned step size
    (Meta-SGD) or ``None`` when ``inner_lr`` was a plain number.
    """

    loss: float
    grads: Params
    lr_grads: Params | None


# -- the model -------------------------------------------------------------------------------
# The engine's model is the one functional MLP every learner uses; these public names
# are kept for callers of the engine.
features = mlp_features
forward = mlp_forward


def masked_loss(
    pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, outcome_type: Outcome
) -> torch.Tensor:
    """Mean loss over the real (mask = 1) rows of each task; reduces the last axis.

    Padding rows carry zero weight; a task without any real row contributes 0 rather
    than NaN (the denominator is clipped at 1).
    """
    per_row = outcome_type.row_losses(pred, y)
    return (per_row * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def loss_grad(
    params: Params, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, outcome_type: Outcome
) -> Params:
    """Analytic gradient of :func:`masked_loss` ∘ :func:`forward` per task.

    Back-propagation written out for the ReLU MLP.  Every op broadcasts over leading
    task axes, so one call returns per-task gradients ``[B, ...]`` for a padded batch.
    The result is differentiable (autograd can take its derivative, giving MAML's
    second-order terms); ReLU's derivative enters as a constant 0/1 mask, which is what
    autograd's own double backward through ReLU does.
    """
    n = n_layers(params)
    inputs = [x]
    h = x
    for i in range(n - 1):
        h = torch.relu(linear(h, params[f"w{i}"], params[f"b{i}"]))
        inputs.append(h)
    z = linear(h, params[f"w{n - 1}"], params[f"b{n - 1}"]).squeeze(-1)
    weight = mask / mask.sum(-1, keepdim=True).clamp_min(1.0)
    dz = outcome_type.loss_gradient(z, y) * weight
    delta = dz.unsqueeze(-1)  # [..., S, out=1]
    grads: Params = {}
    for i in reversed(range(n)):
        grads[f"w{i}"] = torch.matmul(delta.transpose(-1, -2), inputs[i])
        grads[f"b{i}"] = delta.sum(-2)
        if i > 0:
            # ReLU's derivative as one op: zero where the unit was inactive (h = 0).  Its
            # own derivative with respect to h is zero, as for autograd's ReLU backward.
            delta = torch.ops.aten.threshold_backward(
                torch.matmul(delta, params[f"w{i}"]), inputs[i], 0.0
            )
    return grads


#: A model as a function of its parameters: ``predict(params, x) -> outputs``.
Predictor = Callable[[Params, torch.Tensor], torch.Tensor]


def _func_loss_grad(
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    outcome_type: Outcome,
    predict: Predictor = mlp_forward,
) -> Params:
    """``torch.func.grad`` of the loss of one task (no task axis: use under ``vmap``)."""

    def loss(p: Params) -> torch.Tensor:
        return masked_loss(predict(p, x), y, mask, outcome_type)

    return grad(loss)(params)


# -- the inner loop --------------------------------------------------------------------------
def head_keys(params: Params) -> tuple[str, str]:
    """Names of the functional MLP's output layer weight and bias (the part ANIL adapts)."""
    last = n_layers(params) - 1
    return f"w{last}", f"b{last}"


def _sgd_steps(
    params: Params,
    lr: LearningRate,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    config: InnerLoopConfig,
    predict: Predictor = mlp_forward,
) -> Params:
    """``inner_steps`` gradient steps from ``params`` on (x, y, mask).

    ``predict`` is the model of ``params`` (the func backend differentiates it); the
    manual backend's analytic gradient is the MLP's, so it is used only for MLP-layout
    parameters (a whole MLP, or any network's linear head).
    """
    adapted = params
    for _ in range(config.inner_steps):
        if config.backend != "func":  # manual, or lowrank's fallback (see _low_rank)
            if config.first_order:
                # No graph is needed for a gradient that is treated as a constant.
                with torch.no_grad():
                    g = loss_grad(adapted, x, y, mask, config.outcome_type)
            else:
                g = loss_grad(adapted, x, y, mask, config.outcome_type)
        else:
            g = _func_loss_grad(adapted, x, y, mask, config.outcome_type, predict)
            if config.first_order:
                g = {k: v.detach() for k, v in g.items()}
        # Fused update ops (one node each in the outer graph instead of two).
        if isinstance(lr, dict):
            adapted = {k: torch.addcmul(adapted[k], lr[k], g[k], value=-1.0) for k in adapted}
        else:
            adapted = {k: torch.add(adapted[k], g[k], alpha=-lr) for k in adapted}
    return adapted


def _head_lr(network: Network, lr: LearningRate) -> LearningRate:
    """The step sizes of the head (Meta-SGD's dict has the parameters' keys)."""
    return network.split(lr)[1] if isinstance(lr, dict) else lr


def _low_rank(config: InnerLoopConfig, lr: LearningRate, x: torch.Tensor) -> bool:
    """Whether the lowrank backend's own code runs: the whole MLP, one scalar step size
    and a batch of tasks; otherwise (ANIL, Meta-SGD, one task) the manual backend's."""
    return (
        config.backend == "lowrank"
        and not config.head_only
        and not isinstance(lr, dict)
        and x.dim() == 3
    )


def _adapt(
    params: Params,
    lr: LearningRate,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    config: InnerLoopConfig,
) -> tuple[Callable[[], Params], Callable[[torch.Tensor], torch.Tensor]]:
    """The adapted parameters (written out when called) and a predictor using them."""
    net = config.net
    if _low_rank(config, lr, x):
        model = lowrank.adapt(
            params, float(lr), x, y, mask, config.inner_steps,  # type: ignore[arg-type]
            config.outcome_type, config.first_order,
        )  # fmt: skip
        return model.dense, model.forward
    if not config.head_only:
        adapted = _sgd_steps(params, lr, x, y, mask, config, net.forward)
        return lambda: adapted, lambda xq: net.forward(adapted, xq)
    body, head = net.split(params)
    # ANIL's body is fixed during the inner loop, so its features are computed once.
    phi = net.features(body, x)
    head_adapted = _sgd_steps(head, _head_lr(net, lr), phi, y, mask, config)

    def predict(xq: torch.Tensor) -> torch.Tensor:
        return mlp_forward(head_adapted, net.features(body, xq))

    return lambda: net.join(body, head_adapted), predict


def adapt_params(
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    support_mask: torch.Tensor | None = None,
    *,
    inner_lr: LearningRate,
    inner_steps: int,
    outcome_type: Outcome | str = BINARY,
    first_order: bool = False,
    head_only: bool = False,
    backend: str = "manual",
    network: Network | None = None,
) -> Params:
    """Adapt ``params`` to one task (``support_x`` [S, D]) or, with the manual or lowrank
    backend, to a padded batch of tasks (``support_x`` [B, S, D], ``support_mask`` [B, S]).
    ``network`` is the model of ``params`` (None: the functional MLP).

    Returns a new dict; ``params`` is not modified.  At test time call it under
    ``torch.no_grad()`` with detached parameters (the gradient steps still run: the
    manual backend needs no autograd, and ``torch.func.grad`` ignores an outer
    ``no_grad``).
    """
    config = InnerLoopConfig(
        inner_steps, as_outcome(outcome_type), first_order, head_only, backend, network
    )
    if support_mask is None:
        support_mask = torch.ones_like(support_y)
    if backend == "func" and support_x.dim() == 3:
        raise MetamedValueError(
            "adapt_params with backend='func' takes one task (support_x of shape [S, D]); "
            f"got shape {tuple(support_x.shape)}. Use backend='manual' for a batch of tasks, "
            "or query_losses/meta_gradient, which vmap the func backend over tasks."
        )
    adapted, _ = _adapt(params, inner_lr, support_x, support_y, support_mask, config)
    return adapted()


def _task_query_loss(
    params: Params,
    lr: LearningRate,
    sx: torch.Tensor,
    sy: torch.Tensor,
    sm: torch.Tensor,
    qx: torch.Tensor,
    qy: torch.Tensor,
    qm: torch.Tensor,
    config: InnerLoopConfig,
) -> torch.Tensor:
    _, predict = _adapt(params, lr, sx, sy, sm, config)
    return masked_loss(predict(qx), qy, qm, config.outcome_type)


def _tensors(
    batch: EpisodeBatch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Support x, y, mask, then query x, y, mask."""
    return (
        batch.support_x,
        batch.support_y,
        batch.support_mask,
        batch.query_x,
        batch.query_y,
        batch.query_mask,
    )


def query_losses(
    params: Params, batch: EpisodeBatch, config: InnerLoopConfig, inner_lr: LearningRate
) -> torch.Tensor:
    """Query loss after adaptation, one value per task of ``batch`` (shape [B]).

    Differentiable with respect to ``params`` and (Meta-SGD) ``inner_lr``.
    """
    tensors = _tensors(batch)
    if config.backend != "func":
        return _task_query_loss(params, inner_lr, *tensors, config)

    per_task = functools.partial(_task_query_loss, config=config)
    return vmap(per_task, in_dims=(None, None, 0, 0, 0, 0, 0, 0))(params, inner_lr, *tensors)


def iter_chunks(batch: EpisodeBatch, chunk_size: int | None) -> list[EpisodeBatch]:
    """Split a meta-batch into consecutive chunks of at most ``chunk_size`` tasks."""
    size = batch.size
    step = size if chunk_size is None else int(chunk_size)
    if step < 1:
        raise MetamedValueError(
            f"chunk_size must be >= 1 (or None for one chunk), got {chunk_size}."
        )
    return [batch.chunk(start, min(start + step, size)) for start in range(0, size, step)]


def meta_gradient(
    params: Params,
    batch: EpisodeBatch,
    config: InnerLoopConfig,
    inner_lr: LearningRate,
    chunk_size: int | None = None,
) -> MetaGradient:
    """Mean query loss over the tasks of ``batch`` and its gradient.

    Gradients are taken with respect to every tensor of ``params`` and, when
    ``inner_lr`` is a dict (Meta-SGD), every tensor of ``inner_lr``; the inputs need
    not require grad (leaf copies are made).  Each chunk of ``chunk_size`` tasks is
    differentiated and freed before the next one, so peak memory follows the chunk.
    """
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    lr_leaves: Params | None = None
    lr: LearningRate = inner_lr
    if isinstance(inner_lr, dict):
        lr_leaves = {k: v.detach().requires_grad_(True) for k, v in inner_lr.items()}
        lr = lr_leaves
    targets = list(leaves.values()) + (list(lr_leaves.values()) if lr_leaves else [])
    totals = [torch.zeros_like(t) for t in targets]
    loss_sum = 0.0
    n_tasks = batch.size
    for chunk in iter_chunks(batch, chunk_size):
        if config.first_order and _low_rank(config, lr, chunk.support_x):
            # First order needs no graph: the lowrank backend writes the gradient out.
            part_loss, part = lowrank.first_order_meta_gradient(
                leaves, float(lr), _tensors(chunk), config.inner_steps,  # type: ignore[arg-type]
                config.outcome_type, n_tasks,
            )  # fmt: skip
            for total, k in zip(totals, leaves, strict=False):
                total += part[k]
            loss_sum += part_loss
            continue
        losses = query_losses(leaves, chunk, config, lr)
        chunk_loss = losses.sum() / n_tasks
        # allow_unused: e.g. a layer that received no signal; its gradient is zero.
        grads = torch.autograd.grad(chunk_loss, targets, allow_unused=True)
        for total, g in zip(totals, grads, strict=True):
            if g is not None:
                total += g
        loss_sum += float(chunk_loss.detach())
    n_params = len(leaves)
    grads_out = dict(zip(leaves, totals[:n_params], strict=True))
    lr_out = dict(zip(lr_leaves, totals[n_params:], strict=True)) if lr_leaves is not None else None
    return MetaGradient(loss_sum, grads_out, lr_out)


def meta_loss(
    params: Params,
    batch: EpisodeBatch,
    config: InnerLoopConfig,
    inner_lr: LearningRate,
    chunk_size: int | None = None,
) -> float:
    """Mean query loss after adaptation, without building an outer graph (validation)."""
    total = 0.0
    detached = {k: v.detach() for k, v in params.items()}
    lr = {k: v.detach() for k, v in inner_lr.items()} if isinstance(inner_lr, dict) else inner_lr
    with torch.no_grad():
        for chunk in iter_chunks(batch, chunk_size):
            total += float(query_losses(detached, chunk, config, lr).sum())
    return total / batch.size
