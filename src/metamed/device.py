"""Where the torch learners compute: the CPU, or a CUDA GPU when there is one (``--device``).

The device is an *execution setting*, like the thread count (:mod:`metamed.threads`):
chosen once per command (``--device auto|cpu|cuda``), applied process-wide
(:func:`set_device`), recorded with each result, and never part of what a run *is*.  It
is not a hyperparameter: a learner's parameters, and so a run folder's cell keys, are
the same on every device, and a CPU run (the default) computes exactly what it did
before the setting existed.

``auto`` means CUDA when torch sees a GPU, else the CPU; ``cuda`` asks for the GPU and
is refused, before any work, where there is none; ``cpu`` is the default.

How the learners use it (the MAML family and Reptile, ProtoNet, the probes, pooled
fine-tuning, support-only training): tensors *at rest* stay on the CPU (fitted
parameters, adapted models, anything saved or pickled), and each computation moves
what it needs to :func:`current_device` (:func:`to_device`, :func:`as_tensor`) and
brings the result back (:func:`to_cpu`).  So a model fitted on a GPU is saved,
loaded and served on a machine without one, and two learners of a run never disagree
about where their tensors are.  The float64 mixed model and the tabular multitask body
compute on the CPU only (their problems are tiny; a GPU would only add transfers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from metamed.errors import MetamedValueError, unknown_name

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "DEVICES", "as_tensor", "current_device", "device_kind", "device_name", "resolve_device",
    "set_device",
    "to_cpu", "to_device", "use_device",
]  # fmt: skip

#: What ``--device`` accepts.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

#: The process's device (None: the CPU, the default).
_current: torch.device | None = None


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device ``name`` means here: ``auto`` is CUDA when torch sees a GPU, else
    the CPU.

    Raises
    ------
    UnknownNameError
        ``name`` is not one of :data:`DEVICES` ("did you mean").
    MetamedValueError
        ``cuda`` where torch sees no CUDA GPU.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    base = str(name).split(":")[0]
    if base not in DEVICES:
        raise unknown_name("device", str(name), DEVICES)
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise MetamedValueError(
            f"--device {name}: torch sees no CUDA GPU on this machine "
            "(torch.cuda.is_available() is False); use --device auto (the GPU when there "
            "is one, else the CPU) or --device cpu."
        )
    return torch.device(str(name))


def set_device(name: str | torch.device = "cpu") -> torch.device:
    """Make ``name`` (see :func:`resolve_device`) the device the learners compute on in
    this process; returns it."""
    global _current
    _current = resolve_device(name)
    return _current


def current_device() -> torch.device:
    """The device the learners compute on now (the CPU unless :func:`set_device` said
    otherwise)."""
    import torch

    return torch.device("cpu") if _current is None else _current


@contextlib.contextmanager
def use_device(name: str | torch.device) -> Iterator[torch.device]:
    """Compute on ``name`` inside the block; the previous device is restored on leaving."""
    global _current
    before = _current
    try:
        yield set_device(name)
    finally:
        _current = before


def device_kind(device: torch.device | None = None) -> str:
    """``"cpu"`` or ``"cuda"``: what a run folder's identity says of its device."""
    return (current_device() if device is None else device).type


def device_name(device: torch.device | None = None) -> str:
    """How a run records its device: ``cpu``, or ``cuda:0 (<GPU name>)``."""
    import torch

    device = current_device() if device is None else device
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def as_tensor(array: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (default :func:`current_device`), sharing its
    memory on the CPU."""
    import torch

    return torch.from_numpy(array).to(current_device() if device is None else device)


def to_device(params: Mapping[str, torch.Tensor], device: torch.device | None = None) -> dict[str, Any]:
    """The tensors of ``params`` on ``device`` (default :func:`current_device`); on the
    device they are already on, the same tensors."""
    target = current_device() if device is None else device
    return {k: v.to(target) for k, v in params.items()}


def to_cpu(params: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The tensors of ``params`` on the CPU (fitted state at rest)."""
    return {k: v.cpu() for k, v in params.items()}
