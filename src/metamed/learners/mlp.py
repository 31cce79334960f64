"""A functional multilayer perceptron: parameters are a plain dict of tensors.

Every learner that needs a neural network uses this one, so that meta-learners and
the pooled baselines compare the same model.  Because parameters are passed in and
out explicitly, the forward pass works unchanged under ``torch.func.vmap`` and
``torch.func.grad`` (one parameter set per task in a meta-batch).
"""

from __future__ import annotations

import math

import torch

__all__ = ["init_mlp", "linear", "mlp_forward", "mlp_features", "n_layers", "relu_layers"]

Params = dict[str, torch.Tensor]


def init_mlp(sizes: list[int] | tuple[int, ...], generator: torch.Generator) -> Params:
    """Parameters of an MLP with layer widths ``sizes`` (input first, output last).

    Weights are uniform with variance ``1 / fan_in`` (LeCun scaling, which keeps
    logits of order one for standardised inputs) and biases start at zero; all
    randomness comes from ``generator``.
    """
    params: Params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        bound = 1.0 / math.sqrt(n_in)
        w = (torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound * math.sqrt(3.0)
        params[f"w{i}"] = w
        params[f"b{i}"] = torch.zeros(n_out)
    return params


def n_layers(params: Params) -> int:
    return sum(1 for k in params if k.startswith("w"))


def linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h @ w.T + b``, where ``w`` may be [out, in] (shared) or [B, out, in] (one per task).

    matmul broadcasts both against h = [..., S, in], so one set of shared weights over
    a whole meta-batch is one large GEMM.
    """
    return torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)


def relu_layers(params: Params, x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` layers of ``params``, each followed by ReLU."""
    h = x
    for i in range(n):
        h = torch.relu(linear(h, params[f"w{i}"], params[f"b{i}"]))
    return h


def mlp_features(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Output of the last hidden layer (the 'body'; ANIL and ProtoNet use it)."""
    return relu_layers(params, x, n_layers(params) - 1)


def mlp_forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits (or numeric predictions) of shape ``x.shape[:-1]`` for a 1-unit output layer.

    Parameters may carry a leading task axis (``w`` [B, out, in] with ``x`` [B, S, in]).
    """
    last = n_layers(params) - 1
    return linear(mlp_features(params, x), params[f"w{last}"], params[f"b{last}"]).squeeze(-1)
