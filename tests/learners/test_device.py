"""--device: where the torch learners compute (metamed.device).

This machine has no GPU: the cases on ``cuda`` run where torch sees one and are skipped
here (say so in any report); resolution and refusal are checked everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamed import device as device_module
from metamed.device import current_device, resolve_device, use_device
from metamed.errors import MetamedValueError, UnknownNameError
from metamed.learners import make_learner
from metamed.learners.networks import NETWORKS, ModuleNetwork, SmallCNN
from metamed.tasks.task import Task

#: The devices this machine can compute on: the CPU, and CUDA where torch sees a GPU.
HERE = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU on this machine"
))]  # fmt: skip


def test_auto_is_cuda_when_torch_sees_a_gpu_else_the_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_without_a_gpu_and_unknown_names_are_one_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MetamedValueError, match="torch sees no CUDA GPU.*--device auto"):
        resolve_device("cuda")
    with pytest.raises(UnknownNameError, match="Did you mean 'cuda'"):
        resolve_device("cudaa")


def test_the_default_is_the_cpu_and_use_device_restores_it(monkeypatch) -> None:
    monkeypatch.setattr(device_module, "_current", None)
    assert current_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # resolves, computes nothing
    with use_device("cuda") as inside:
        assert inside == torch.device("cuda") == current_device()
    assert device_module._current is None and current_device() == torch.device("cpu")


_SEEN: list[torch.device] = []


class _RecordingCNN(SmallCNN):
    """The small CNN, noting the device of every batch and weight that reaches it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _SEEN.append(x.device)
        return super().forward(x)


def _recording(hidden_sizes, n_features, out):
    side = int(round(n_features**0.5))
    return ModuleNetwork(_RecordingCNN(side, hidden_sizes), int(hidden_sizes[-1]), out)


@pytest.fixture
def recording_network(monkeypatch):
    monkeypatch.setitem(NETWORKS, "recording-cnn", _recording)
    _SEEN.clear()
    return "recording-cnn"


def _images(name: str, n: int, seed: int) -> Task:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.random((n, 36), dtype=np.float32) * 0.5 + 0.5 * y[:, None].astype(np.float32)
    return Task(name, X, y)


_NET = {"hidden_sizes": (2,)}
CASES = {
    "fomaml": {"backend": "func", "meta_iterations": 2, "inner_steps": 1, "k_support": 2,
               "n_query": 4, "meta_batch_size": 2, **_NET},
    "maml": {"backend": "func", "meta_iterations": 2, "inner_steps": 1, "k_support": 2,
             "n_query": 4, "meta_batch_size": 2, **_NET},
    "anil": {"meta_iterations": 2, "k_support": 2, "n_query": 4, "meta_batch_size": 2, **_NET},
    "protonet": {"n_iterations": 2, "k_support": 2, "n_query": 4, "meta_batch_size": 2, **_NET},
    "linear-probe": {"max_epochs": 1, **_NET},
    "pooled-finetune": {"max_epochs": 1, "finetune_steps": 2, **_NET},
    "support-only": {"steps": 2, **_NET},
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("where", HERE)
def test_an_episode_computes_on_the_given_device_and_rests_on_the_cpu(
    name: str, where: str, recording_network: str
) -> None:
    """Meta-train, adapt and predict on the device passed explicitly: every batch the
    network sees is there, and what is fitted or adapted rests on the CPU (saved,
    pickled and served anywhere); the probabilities are those of the CPU run."""
    train = [_images("a", 16, 0), _images("b", 16, 1)]
    support, query = _images("new", 4, 2), _images("new-query", 6, 3)
    learner = make_learner(name, network=recording_network, **CASES[name])
    with use_device(torch.device(where)):
        model = learner.meta_fit(train, [_images("v", 12, 4)]).adapt(support)
        p = model.predict_proba(query.X)
    assert _SEEN and {d.type for d in _SEEN} == {torch.device(where).type}
    fitted = [v for k, v in vars(learner).items() if k.endswith("_") and isinstance(v, dict)]
    adapted = [v for v in vars(model).values() if isinstance(v, dict)]
    for params in fitted + adapted:
        assert all(t.device.type == "cpu" for t in params.values() if isinstance(t, torch.Tensor))
    assert p.shape == (6,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    if where != "cpu":  # the same computation on the CPU, up to float rounding
        reference = make_learner(name, network=recording_network, **CASES[name])
        q = reference.meta_fit(train, [_images("v", 12, 4)]).adapt(support).predict_proba(query.X)
        np.testing.assert_allclose(p, q, atol=1e-4)
