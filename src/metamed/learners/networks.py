"""The networks the gradient learners train: the functional MLP, or any ``torch.nn.Module``.

A network here is a *function of a parameter dict*, never a stateful module: the engine
(:mod:`metamed.learners.engine`) passes parameters in and out, gives each task its own
copy inside ``torch.func.vmap``, and differentiates through the inner loop.  Two kinds:

- :class:`MLPNetwork`: the functional MLP of :mod:`metamed.learners.mlp` (keys ``w0``,
  ``b0``, ...).  Its analytic gradient is written out, so the engine's fast ``"manual"``
  backend applies to it.
- :class:`ModuleNetwork`: any ``torch.nn.Module`` *body* mapping rows ``[..., D]`` to
  features ``[..., width]``, followed by a linear head, called through
  ``torch.func.functional_call`` with the parameters of the dict (keys ``body.<name>``,
  ``head.weight``, ``head.bias``).  The module is built on the ``meta`` device, a
  skeleton without storage: it holds the computation, never the weights, so no copy of
  it can go stale and building it draws nothing from torch's global random generator.
  It needs the ``"func"`` backend for the full inner loop (ANIL's head-only loop runs
  on either, since the head is always linear).

Every network splits into a body and a linear head in the MLP layout ``{w0, b0}``
(:meth:`Network.split`): ANIL adapts the head on body features computed once, and
ProtoNet embeds with body and head.  Parameters are initialised from an explicit
generator with the MLP's rule (LeCun-uniform weights, zero biases) for every kind.

Networks are known by name (:data:`NETWORKS`, the learners' ``network``
hyperparameter): ``"mlp"``, ``"cnn"``, the small convolutional body of
:class:`SmallCNN` for square one-channel images given as flattened rows (MedMNIST's
28 x 28 pixels, :func:`metamed.tasks.image_tasks`), and ``"cnn3d"``, the same body with
3-D convolutions for cubic one-channel volumes (AdrenalMNIST3D's 28^3 voxels), which
first averages each 2 x 2 x 2 block of voxels (28^3 -> 14^3: on one CPU thread a 3-D
convolution over the full volume cost about 0.1 s per volume forward and backward, too
slow for meta-training on a shared machine; a shape mask loses little at half the
resolution).  :func:`register_network` adds a
factory of your own module.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call

from metamed.errors import MetamedValueError, unknown_name
from metamed.learners.mlp import Params, init_mlp, linear, mlp_forward, n_layers, relu_layers

__all__ = [
    "NETWORKS",
    "MLPNetwork",
    "ModuleNetwork",
    "Network",
    "SmallCNN",
    "make_network",
    "register_network",
    "cube_volume_side",
    "square_image_side",
]


class Network(ABC):
    """A model as a pure function of a parameter dict, with a body and a linear head.

    Attributes
    ----------
    manual_gradient : bool
        Whether the engine's ``"manual"`` backend (the MLP's written-out gradient) can
        adapt the whole network.
    """

    manual_gradient: ClassVar[bool] = False

    @abstractmethod
    def init(self, generator: torch.Generator) -> Params:
        """Fresh parameters; all randomness from ``generator``."""

    @abstractmethod
    def split(self, params: Params) -> tuple[Params, Params]:
        """(body, head), the head renamed to a one-layer MLP ``{w0, b0}``."""

    @abstractmethod
    def join(self, body: Params, head: Params) -> Params:
        """Inverse of :meth:`split`."""

    @abstractmethod
    def features(self, body: Params, x: torch.Tensor) -> torch.Tensor:
        """Body output ``[..., width]`` for rows ``x`` ``[..., D]`` (``body`` from :meth:`split`)."""

    def outputs(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Head outputs ``[..., out]``."""
        body, head = self.split(params)
        return linear(self.features(body, x), head["w0"], head["b0"])

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """Logits (or numeric predictions) ``x.shape[:-1]`` of a one-output network."""
        return self.outputs(params, x).squeeze(-1)


class MLPNetwork(Network):
    """The functional ReLU MLP (:mod:`metamed.learners.mlp`).

    Parameters
    ----------
    sizes : sequence of int, optional
        Layer widths, input first and output last; needed by :meth:`init` only (the
        other methods read the layers from the parameters).
    """

    manual_gradient = True

    def __init__(self, sizes: Sequence[int] | None = None) -> None:
        self.sizes = None if sizes is None else tuple(int(s) for s in sizes)

    def init(self, generator: torch.Generator) -> Params:
        if self.sizes is None:
            raise MetamedValueError("MLPNetwork.init needs the layer sizes.")
        return init_mlp(self.sizes, generator)

    def split(self, params: Params) -> tuple[Params, Params]:
        last = n_layers(params) - 1
        wk, bk = f"w{last}", f"b{last}"
        body = {k: v for k, v in params.items() if k not in (wk, bk)}
        return body, {"w0": params[wk], "b0": params[bk]}

    def join(self, body: Params, head: Params) -> Params:
        last = n_layers(body)
        return {**body, f"w{last}": head["w0"], f"b{last}": head["b0"]}

    def features(self, body: Params, x: torch.Tensor) -> torch.Tensor:
        return relu_layers(body, x, n_layers(body))

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return mlp_forward(params, x)


class _BodyHead(nn.Module):
    """The skeleton a :class:`ModuleNetwork` calls: body, then a linear head."""

    def __init__(self, body: nn.Module, width: int, out: int) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(width, out, device="meta")


class ModuleNetwork(Network):
    """Any ``torch.nn.Module`` body (rows ``[..., D]`` to ``[..., width]``) with a linear head.

    Parameters
    ----------
    body : torch.nn.Module
        Built on the ``meta`` device (``device="meta"``), or moved there here; its own
        weights are never used.  It must accept any number of leading axes (or exactly
        one row axis when only the ``"func"`` backend runs it) and hold no buffers
        (batch norm's running statistics would be state outside the parameter dict).
    width : int
        Features the body outputs.
    out : int, default 1
        Head outputs (1 for a logit; ProtoNet's embedding width).
    """

    def __init__(self, body: nn.Module, width: int, out: int = 1) -> None:
        if any(True for _ in body.buffers()):
            raise MetamedValueError(
                f"ModuleNetwork: the body {type(body).__name__} holds buffers (batch norm?); "
                "use a buffer-free normalisation such as GroupNorm or LayerNorm."
            )
        self.module = _BodyHead(body.to("meta"), int(width), int(out))
        self.shapes = {k: tuple(p.shape) for k, p in self.module.named_parameters()}

    def init(self, generator: torch.Generator) -> Params:
        params: Params = {}
        for key, shape in self.shapes.items():
            if len(shape) >= 2:  # LeCun-uniform, as init_mlp: variance 1 / fan_in
                bound = math.sqrt(3.0 / math.prod(shape[1:]))
                params[key] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            else:
                params[key] = torch.zeros(shape)
        return params

    def split(self, params: Params) -> tuple[Params, Params]:
        body = {k[len("body.") :]: v for k, v in params.items() if k.startswith("body.")}
        return body, {"w0": params["head.weight"], "b0": params["head.bias"]}

    def join(self, body: Params, head: Params) -> Params:
        return {
            **{f"body.{k}": v for k, v in body.items()},
            "head.weight": head["w0"],
            "head.bias": head["b0"],
        }

    def features(self, body: Params, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = functional_call(self.module.body, body, (x,))
        return out


class SmallCNN(nn.Module):
    """A small 2-D (or 3-D) CNN body for one-channel square images (or cubic volumes)
    given as flattened rows.

    Each block is a 3 x 3 convolution (3 x 3 x 3 for volumes; padding 1), ReLU and 2 x 2
    (x 2) max pooling; global average pooling then gives ``channels[-1]`` features.  No batch norm: its running
    statistics would be state outside the parameter dict, and with K = 1 per class a
    batch statistic of the support set is noise.  Any leading axes are flattened into one
    batch axis and restored, so one call embeds a whole padded meta-batch.

    Parameters
    ----------
    side : int
        Image height and width (and depth; 28 for MedMNIST).
    channels : sequence of int
        Output channels of each block (at least one), e.g. (16, 32).
    dims : {2, 3}, default 2
        Spatial dimensions: 2 for images, 3 for volumes.
    downsample : int, default 1
        Average each block of ``downsample`` pixels a side before the first convolution
        (no parameters; 1 = none).
    """

    def __init__(
        self, side: int, channels: Sequence[int], dims: int = 2, downsample: int = 1
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise MetamedValueError(f"SmallCNN: dims must be 2 or 3, got {dims}.")
        self.side, self.dims = int(side), int(dims)
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
        average = nn.AvgPool2d if dims == 2 else nn.AvgPool3d
        layers: list[nn.Module] = [average(int(downsample))] if downsample > 1 else []
        c_in = 1
        for c_out in channels:
            layers += [conv(c_in, int(c_out), 3, padding=1, device="meta"), nn.ReLU(), pool(2)]
            c_in = int(c_out)
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = x.reshape(-1, 1, *[self.side] * self.dims)
        h = self.blocks(images).mean(dim=tuple(range(-self.dims, 0)))
        return h.reshape(*lead, h.shape[-1])


def square_image_side(n_features: int) -> int:
    """Side of a one-channel square image of ``n_features`` pixels, or a metamed error."""
    side = math.isqrt(int(n_features))
    if side * side != n_features or side < 2:
        raise MetamedValueError(
            f"network 'cnn' reads each row as a one-channel square image, but the tasks have "
            f"{n_features} features (not a square number of pixels). Use network='mlp' for "
            "tables, or image tasks (metamed.tasks.image_tasks)."
        )
    return side


def cube_volume_side(n_features: int) -> int:
    """Side of a one-channel cubic volume of ``n_features`` voxels, or a metamed error."""
    side = round(int(n_features) ** (1 / 3))
    if side**3 != n_features or side < 2:
        raise MetamedValueError(
            f"network 'cnn3d' reads each row as a one-channel cubic volume, but the tasks "
            f"have {n_features} features (not a cube number of voxels). Use network='cnn' "
            "for 2-D images, network='mlp' for tables."
        )
    return side


#: A network factory: (hidden_sizes, n_features, out) -> Network.
NetworkFactory = Callable[[Sequence[int], int, int], Network]


def _mlp(hidden_sizes: Sequence[int], n_features: int, out: int) -> Network:
    return MLPNetwork([n_features, *[int(h) for h in hidden_sizes], out])


def _convolutional(dims: int, downsample: int = 1) -> NetworkFactory:
    name, side_of = ("cnn", square_image_side) if dims == 2 else ("cnn3d", cube_volume_side)

    def factory(hidden_sizes: Sequence[int], n_features: int, out: int) -> Network:
        if not hidden_sizes:
            raise MetamedValueError(
                f"network '{name}' needs at least one convolution block: give hidden_sizes "
                "as the channels of each block, e.g. (16, 32)."
            )
        body = SmallCNN(side_of(n_features), hidden_sizes, dims, downsample)
        return ModuleNetwork(body, int(hidden_sizes[-1]), out)

    return factory


#: Network name -> factory.  ``hidden_sizes`` are the MLP's hidden widths, or the CNN's
#: channels per convolution block.
NETWORKS: dict[str, NetworkFactory] = {
    "mlp": _mlp, "cnn": _convolutional(2), "cnn3d": _convolutional(3, downsample=2),
}  # fmt: skip


def register_network(name: str, factory: NetworkFactory) -> None:
    """Make ``factory(hidden_sizes, n_features, out) -> Network`` available as ``name``.

    A factory usually wraps a module of your own: ``lambda h, d, out:
    ModuleNetwork(MyBody(d, h), width=h[-1], out=out)``.
    """
    if name in NETWORKS:
        raise MetamedValueError(f"A network named '{name}' is already registered.")
    NETWORKS[name] = factory


def make_network(name: str, hidden_sizes: Sequence[int], n_features: int, out: int = 1) -> Network:
    """The network ``name`` for rows of ``n_features`` inputs ("did you mean" when unknown)."""
    if name not in NETWORKS:
        raise unknown_name("network", name, NETWORKS)
    return NETWORKS[name](hidden_sizes, int(n_features), int(out))
