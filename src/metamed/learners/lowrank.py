"""The engine's ``"lowrank"`` backend: adapted MLP weights kept as shared weights plus
a low-rank correction per task.

One SGD step on a task's support set changes a linear layer's weight by
``-lr * delta^T u`` (``delta`` the layer's output gradients, ``u`` its inputs, one row
per support row), a matrix of rank at most S, the support size.  After k steps a task's
weight is therefore ``W_t = W - lr * D_t^T U_t`` with the k steps' factors stacked
(``D_t`` [kS, out], ``U_t`` [kS, in]), and every product with it splits into

* ``x @ W^T`` with the *shared* ``W``: one large GEMM over all tasks' rows at once, and
* ``(x @ U_t^T) @ D_t``: two thin batched products, kS wide instead of 128.

The dense backends instead form ``W_t`` per task and multiply by it, which is a batched
GEMM of shape [B, S, in] x [B, in, out] (small K, small M: far below the CPU's peak) plus
the weight gradient ``delta^T u`` per task, which this form never forms.  The first
layer's input is the support set itself at every step, so its factors merge into one
rank-S term (``D`` summed over steps) and ``x @ x^T`` is computed once.  A layer whose
correction would not be thinner than the layer (``rank >= min(in, out)``, e.g. the
1-unit output layer) keeps a dense per-task weight as the manual backend does.

Same arithmetic as the manual backend up to float rounding (the test suite checks the
meta-gradient against the per-task ``autograd.grad`` loop), for the whole MLP with a
scalar ``inner_lr``: MAML, first-order MAML.  Meta-SGD (a step size per weight, so the
correction is not low-rank) and ANIL (only the output layer adapts) run the manual
backend's code.  Second order is autograd through these ops; first order needs no
autograd at all: its meta-gradient, the query loss gradient at the adapted weights
summed over tasks, is written out (:func:`first_order_meta_gradient`), and its weight
part is one large GEMM over all tasks' query rows per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metamed.learners.mlp import Params, linear, n_layers
from metamed.outcomes import Outcome

__all__ = ["LowRankMLP", "adapt", "first_order_meta_gradient"]


@dataclass
class _Layer:
    """One linear layer of a meta-batch of adapted networks.

    ``w`` is the shared weight [out, in] (dense layers: [B, out, in] after the first
    step), ``b`` the bias [out] or [B, out].  A low-rank layer holds the correction
    factors ``d`` [B, r, out] and ``u`` [B, r, in] (None before the first step); the
    task's weight is ``w - lr * d^T u``.
    """

    w: torch.Tensor
    b: torch.Tensor
    low_rank: bool
    merged: bool  # the input is the same every step (the first layer): d accumulates
    lr: float
    d: torch.Tensor | None = None
    u: torch.Tensor | None = None

    def apply(
        self, x: torch.Tensor, gram: torch.Tensor | None = None, xw: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x @ W_t^T + b_t`` per task; ``gram`` is ``x @ u^T`` and ``xw`` is ``x @ w^T``
        when already known (the first layer's, on the support set)."""
        z = linear(x, self.w, self.b) if xw is None else xw + self.b.unsqueeze(-2)
        if self.d is None:
            return z
        if gram is None:
            gram = torch.matmul(x, self.u.transpose(-1, -2))  # type: ignore[union-attr]
        return torch.baddbmm(z, gram, self.d, alpha=-self.lr)

    def backprop(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta @ W_t`` per task: the gradient with respect to the layer's input."""
        g = torch.matmul(delta, self.w)
        if self.d is None:
            return g
        inner = torch.matmul(delta, self.d.transpose(-1, -2))
        return torch.baddbmm(g, inner, self.u, alpha=-self.lr)  # type: ignore[arg-type]

    def step(self, delta: torch.Tensor, x: torch.Tensor) -> _Layer:
        """The layer after one SGD step with output gradients ``delta`` at inputs ``x``."""
        b = torch.add(self.b, delta.sum(-2), alpha=-self.lr)
        if not self.low_rank:
            w = torch.sub(self.w, torch.matmul(delta.transpose(-1, -2), x), alpha=self.lr)
            return _Layer(w, b, False, self.merged, self.lr)
        if self.d is None or self.u is None:
            d, u = delta, x
        elif self.merged:
            d, u = self.d + delta, self.u
        else:
            d = torch.cat([self.d, delta], dim=-2)
            u = torch.cat([self.u, x], dim=-2)
        return _Layer(self.w, b, True, self.merged, self.lr, d, u)

    def dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The task weights written out: ([B, out, in] or shared, bias)."""
        if self.d is None:
            return self.w, self.b
        corr = torch.matmul(self.d.transpose(-1, -2), self.u)  # type: ignore[arg-type]
        return self.w - self.lr * corr, self.b


class LowRankMLP:
    """A meta-batch of adapted MLPs (the result of :func:`adapt`)."""

    def __init__(self, layers: list[_Layer]) -> None:
        self.layers = layers

    def forward_layers(
        self,
        x: torch.Tensor,
        first_gram: torch.Tensor | None = None,
        first_xw: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The inputs of every layer and the output [B, N] for rows ``x`` [B, N, D]
        (``first_*``: the first layer's products with ``x``, see :meth:`_Layer.apply`)."""
        inputs = [x]
        h = x
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            z = layer.apply(h, first_gram, first_xw) if i == 0 else layer.apply(h)
            if i < n - 1:
                h = torch.relu(z)
                inputs.append(h)
        return inputs, z.squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs [B, N] of each task's adapted network on its rows ``x`` [B, N, D]."""
        return self.forward_layers(x)[1]

    def backward(self, inputs: list[torch.Tensor], dz: torch.Tensor) -> list[torch.Tensor]:
        """Output gradients of every layer, from the loss gradient ``dz`` [B, N]."""
        delta = dz.unsqueeze(-1)
        deltas = [delta]
        for i in range(len(self.layers) - 1, 0, -1):
            # ReLU's derivative as one op (see engine.loss_grad).
            delta = torch.ops.aten.threshold_backward(
                self.layers[i].backprop(delta), inputs[i], 0.0
            )
            deltas.append(delta)
        return deltas[::-1]

    def dense(self) -> Params:
        """The adapted parameters in the engine's dict layout ([B, ...] after a step)."""
        out: Params = {}
        for i, layer in enumerate(self.layers):
            out[f"w{i}"], out[f"b{i}"] = layer.dense()
        return out


def _row_weights(mask: torch.Tensor) -> torch.Tensor:
    """Each real row's share of its task's mean loss (padding rows get 0)."""
    return mask / mask.sum(-1, keepdim=True).clamp_min(1.0)


def adapt(
    params: Params,
    lr: float,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    outcome_type: Outcome,
    first_order: bool = False,
) -> LowRankMLP:
    """``steps`` SGD steps of every task of a padded batch (``x`` [B, S, D]).

    Differentiable with respect to ``params``: through the inner gradients (second
    order), or, with ``first_order``, with the inner gradients as constants (the steps
    run without a graph and the adapted network is ``params`` plus a constant).
    """
    if first_order:
        with torch.no_grad():
            const = _adapt(params, lr, x, y, mask, steps, outcome_type)
        return LowRankMLP([_reattach(layer, params, i) for i, layer in enumerate(const.layers)])
    return _adapt(params, lr, x, y, mask, steps, outcome_type)


def _reattach(layer: _Layer, params: Params, i: int) -> _Layer:
    """``layer`` computed without a graph, as ``params`` + a constant correction."""
    w, b = params[f"w{i}"], params[f"b{i}"]
    b_t = b + (layer.b - b.detach())
    w_t = w if layer.low_rank else w + (layer.w - w.detach())
    return _Layer(w_t, b_t, layer.low_rank, layer.merged, layer.lr, layer.d, layer.u)


def _adapt(
    params: Params,
    lr: float,
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    outcome_type: Outcome,
) -> LowRankMLP:
    n = n_layers(params)
    rows = x.shape[-2]
    layers = []
    for i in range(n):
        w = params[f"w{i}"]
        rank = rows if i == 0 else rows * steps
        layers.append(_Layer(w, params[f"b{i}"], rank < min(w.shape), i == 0, float(lr)))
    net = LowRankMLP(layers)
    weight = _row_weights(mask)
    # A low-rank first layer keeps its shared weight and sees the support rows at every
    # step, so x @ w^T and x @ x^T are the same at every step: computed once.
    first = net.layers[0]
    xw = torch.matmul(x, first.w.transpose(-1, -2)) if first.low_rank and steps > 1 else None
    gram = torch.matmul(x, x.transpose(-1, -2)) if first.low_rank and steps > 1 else None
    for _ in range(steps):
        inputs, z = net.forward_layers(x, gram, xw)
        deltas = net.backward(inputs, outcome_type.loss_gradient(z, y) * weight)
        net = LowRankMLP(
            [layer.step(d, h) for layer, d, h in zip(net.layers, deltas, inputs, strict=True)]
        )
    return net


def first_order_meta_gradient(
    params: Params,
    lr: float,
    batch: tuple[torch.Tensor, ...],
    steps: int,
    outcome_type: Outcome,
    n_tasks: int,
) -> tuple[float, Params]:
    """First-order MAML on one chunk, without autograd: (loss sum / n_tasks, gradients).

    The inner gradients are constants, so the gradient with respect to the shared
    weights is the query loss gradient at each task's adapted weights, summed over
    tasks; each layer's weight part is one GEMM over all tasks' query rows.
    """
    sx, sy, sm, qx, qy, qm = batch
    with torch.no_grad():
        net = _adapt(params, lr, sx, sy, sm, steps, outcome_type)
        inputs, z = net.forward_layers(qx)
        weight = _row_weights(qm) / n_tasks
        loss = float((outcome_type.row_losses(z, qy) * weight).sum())
        deltas = net.backward(inputs, outcome_type.loss_gradient(z, qy) * weight)
        grads: Params = {}
        for i, (delta, h) in enumerate(zip(deltas, inputs, strict=True)):
            grads[f"w{i}"] = torch.matmul(
                delta.reshape(-1, delta.shape[-1]).T, h.reshape(-1, h.shape[-1])
            )
            grads[f"b{i}"] = delta.sum((0, 1))
    return loss, grads
