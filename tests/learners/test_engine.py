"""The vectorised MAML-family engine against a plain per-task loop.

The reference below is deliberately written the obvious way (one task at a time, only
its real rows, ``torch.autograd.grad(create_graph=True)`` over a list of parameters),
sharing no code with the engine beyond the parameter initialiser, so an error in the
engine's batching, masking, chunking or analytic gradient shows up as a mismatch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metamed.errors import MetamedValueError, UnknownNameError
from metamed.learners import lowrank
from metamed.learners.engine import (
    InnerLoopConfig,
    adapt_params,
    forward,
    loss_grad,
    masked_loss,
    meta_gradient,
    meta_loss,
    query_losses,
)
from metamed.learners.mlp import init_mlp, mlp_forward
from metamed.learners.networks import make_network
from metamed.outcomes import BINARY, NUMERIC, Outcome
from metamed.tasks.episodes import EpisodeBatch

SIZES = (5, 7, 6, 1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are tiny: one thread avoids OpenMP hand-offs that, on a busy
    2-core machine, cost more than the arithmetic.  Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


INNER_LR = 0.3
STEPS = 3


def _batch(
    outcome_type: Outcome, seed: int = 0, dtype=torch.float64, d: int = SIZES[0]
) -> EpisodeBatch:
    """Seven tasks of unequal support/query sizes, padded like stack_episodes does."""
    rng = np.random.default_rng(seed)
    s_sizes = [4, 2, 6, 3, 5, 6, 1]
    q_sizes = [3, 8, 5, 1, 7, 2, 4]

    def padded(sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = max(sizes)
        x = np.zeros((len(sizes), n, d))
        y = np.zeros((len(sizes), n))
        m = np.zeros((len(sizes), n))
        for i, k in enumerate(sizes):
            x[i, :k] = rng.normal(size=(k, d))
            y[i, :k] = rng.integers(0, 2, k) if outcome_type is BINARY else rng.normal(size=k)
            m[i, :k] = 1.0
            # Padding holds junk: a masking bug then shows up instead of hiding behind zeros.
            x[i, k:] = rng.normal(size=(n - k, d)) * 5
            y[i, k:] = 1.0
        return tuple(torch.tensor(a, dtype=dtype) for a in (x, y, m))

    return EpisodeBatch(*padded(s_sizes), *padded(q_sizes))


def _params(dtype=torch.float64) -> dict[str, torch.Tensor]:
    params = init_mlp(SIZES, torch.Generator().manual_seed(1))
    # Non-zero biases so that every term of the gradient is exercised.
    gen = torch.Generator().manual_seed(2)
    return {k: (v + 0.1 * torch.randn(v.shape, generator=gen)).to(dtype) for k, v in params.items()}


def _ref_loss(pred, y, outcome_type):
    if outcome_type is BINARY:
        return F.binary_cross_entropy_with_logits(pred, y)
    return F.mse_loss(pred, y)


def _reference(
    params,
    batch,
    outcome_type,
    *,
    first_order=False,
    head_only=False,
    lrs=None,
    model=mlp_forward,
    head=None,
    inner_lr=INNER_LR,
):
    """Per-task loop: adapt with autograd.grad(create_graph=True), query loss, average.

    ``model(params, x)`` is the network (the MLP by default), ``head`` the names of its
    output layer's parameters (the MLP's last layer by default).
    """
    names = list(params)
    leaves = [params[k].detach().clone().requires_grad_(True) for k in names]
    lr_leaves = (
        [lrs[k].detach().clone().requires_grad_(True) for k in names] if lrs is not None else None
    )
    if head is None:
        last = max(int(k[1:]) for k in names if k.startswith("w"))
        head = [f"w{last}", f"b{last}"]
    adapted_names = list(head) if head_only else names
    total = 0.0
    for t in range(batch.size):
        ns = int(batch.support_mask[t].sum())
        nq = int(batch.query_mask[t].sum())
        sx, sy = batch.support_x[t, :ns], batch.support_y[t, :ns]
        qx, qy = batch.query_x[t, :nq], batch.query_y[t, :nq]
        fast = dict(zip(names, leaves, strict=True))
        for _ in range(STEPS):
            loss = _ref_loss(model(fast, sx), sy, outcome_type)
            grads = torch.autograd.grad(
                loss, [fast[k] for k in adapted_names], create_graph=not first_order
            )
            for k, g in zip(adapted_names, grads, strict=True):
                lr = lr_leaves[names.index(k)] if lr_leaves is not None else inner_lr
                fast[k] = fast[k] - lr * g
        total = total + _ref_loss(model(fast, qx), qy, outcome_type)
    outer = total / batch.size
    targets = leaves + (lr_leaves or [])
    grads = torch.autograd.grad(outer, targets, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(targets, grads, strict=True)]
    g_params = dict(zip(names, grads[: len(names)], strict=True))
    g_lrs = dict(zip(names, grads[len(names) :], strict=True)) if lrs is not None else None
    return float(outer.detach()), g_params, g_lrs


def _max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)


CASES = {
    "maml": dict(first_order=False, head_only=False, metasgd=False),
    "fomaml": dict(first_order=True, head_only=False, metasgd=False),
    "anil": dict(first_order=False, head_only=True, metasgd=False),
    "anil_first_order": dict(first_order=True, head_only=True, metasgd=False),
    "metasgd": dict(first_order=False, head_only=False, metasgd=True),
    "metasgd_first_order": dict(first_order=True, head_only=False, metasgd=True),
}


@pytest.mark.parametrize("backend", ["manual", "func", "lowrank"])
@pytest.mark.parametrize("outcome_type", [BINARY, NUMERIC], ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_meta_gradient_matches_looped_reference(case, outcome_type, backend):
    spec = CASES[case]
    params = _params()
    batch = _batch(outcome_type)
    lrs = None
    if spec["metasgd"]:
        gen = torch.Generator().manual_seed(3)
        lrs = {
            k: (INNER_LR * (0.5 + torch.rand(v.shape, generator=gen))).to(v.dtype)
            for k, v in params.items()
        }
    ref_loss, ref_g, ref_lr_g = _reference(
        params,
        batch,
        outcome_type,
        first_order=spec["first_order"],
        head_only=spec["head_only"],
        lrs=lrs,
    )
    config = InnerLoopConfig(STEPS, outcome_type, spec["first_order"], spec["head_only"], backend)
    # chunk_size 3 < 7 tasks: the last chunk is partial.
    out = meta_gradient(params, batch, config, lrs if lrs is not None else INNER_LR, chunk_size=3)
    assert abs(out.loss - ref_loss) < 1e-10
    assert _max_diff(out.grads, ref_g) < 1e-5
    # The check is not vacuous: the gradient is far from zero.
    assert max(float(g.abs().max()) for g in ref_g.values()) > 1e-3
    if lrs is not None:
        assert out.lr_grads is not None
        assert _max_diff(out.lr_grads, ref_lr_g) < 1e-5
        assert max(float(g.abs().max()) for g in ref_lr_g.values()) > 1e-4
    else:
        assert out.lr_grads is None
    assert (
        abs(meta_loss(params, batch, config, lrs if lrs is not None else INNER_LR, 2) - ref_loss)
        < 1e-10
    )


#: Wide enough that the lowrank backend keeps both hidden layers in low-rank form (rank
#: 6 support rows x 3 steps < 20 units), unlike SIZES, where every layer stays dense.
WIDE = (8, 24, 20, 1)
#: A step size at which the wider network's squared-error inner loop does not diverge.
WIDE_LR = 0.05


@pytest.mark.parametrize("outcome_type", [BINARY, NUMERIC], ids=str)
@pytest.mark.parametrize("case", ["maml", "fomaml"])
def test_lowrank_meta_gradient_matches_looped_reference_on_low_rank_layers(case, outcome_type):
    first_order = CASES[case]["first_order"]
    gen = torch.Generator().manual_seed(5)
    params = {
        k: (v + 0.1 * torch.randn(v.shape, generator=gen)).double()
        for k, v in init_mlp(WIDE, torch.Generator().manual_seed(1)).items()
    }
    batch = _batch(outcome_type, d=WIDE[0])
    ref_loss, ref_g, _ = _reference(
        params, batch, outcome_type, first_order=first_order, inner_lr=WIDE_LR
    )
    assert 1e-3 < max(float(g.abs().max()) for g in ref_g.values()) < 1e3
    config = InnerLoopConfig(STEPS, outcome_type, first_order, False, "lowrank")
    layers = lowrank.adapt(params, WIDE_LR, batch.support_x, batch.support_y,
                           batch.support_mask, STEPS, outcome_type).layers  # fmt: skip
    assert [layer.low_rank for layer in layers] == [True, True, False]  # the check is not vacuous
    for chunk in (None, 3):
        out = meta_gradient(params, batch, config, WIDE_LR, chunk_size=chunk)
        assert abs(out.loss - ref_loss) < 1e-10
        assert _max_diff(out.grads, ref_g) < 1e-10
        assert out.lr_grads is None
    # Through autograd (query_losses), as the validation loss and torch.compile use it.
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss = query_losses(leaves, batch, config, WIDE_LR).mean()
    auto = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    assert _max_diff(auto, ref_g) < 1e-10
    # Written out, the adapted weights are the manual backend's.
    kwargs = dict(inner_lr=WIDE_LR, inner_steps=STEPS, outcome_type=outcome_type,
                  first_order=first_order)  # fmt: skip
    tensors = (batch.support_x, batch.support_y, batch.support_mask)
    dense = adapt_params(params, *tensors, **kwargs, backend="lowrank")
    assert _max_diff(dense, adapt_params(params, *tensors, **kwargs)) < 1e-10


def test_second_order_differs_from_first_order():
    """Guards against silently dropping the second-order terms."""
    params, batch = _params(), _batch(BINARY)
    so = meta_gradient(params, batch, InnerLoopConfig(STEPS), INNER_LR)
    fo = meta_gradient(params, batch, InnerLoopConfig(STEPS, first_order=True), INNER_LR)
    assert _max_diff(so.grads, fo.grads) > 1e-4


def test_chunking_does_not_change_the_result_float32():
    params = _params(torch.float32)
    batch = _batch(BINARY, dtype=torch.float32)
    config = InnerLoopConfig(STEPS)
    whole = meta_gradient(params, batch, config, INNER_LR, chunk_size=None)
    for chunk in (1, 2, 5, 100):
        part = meta_gradient(params, batch, config, INNER_LR, chunk_size=chunk)
        assert _max_diff(whole.grads, part.grads) < 1e-5


def test_manual_loss_grad_matches_autograd():
    params, batch = _params(), _batch(BINARY)
    for outcome_type in (BINARY, NUMERIC):
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        pred = forward(leaves, batch.support_x)
        loss = masked_loss(pred, batch.support_y, batch.support_mask, outcome_type).sum()
        auto = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
        manual = loss_grad(
            params, batch.support_x, batch.support_y, batch.support_mask, outcome_type
        )
        # Shared parameters give per-task gradients; summing them over tasks matches autograd.
        manual_sum = {k: v.sum(0) for k, v in manual.items()}
        assert _max_diff(auto, manual_sum) < 1e-10


def _torch_nn_mlp(params: dict[str, torch.Tensor]) -> torch.nn.Sequential:
    """The same network written with torch.nn layers, holding copies of ``params``."""
    layers: list[torch.nn.Module] = []
    for i in range(len(SIZES) - 1):
        layer = torch.nn.Linear(SIZES[i], SIZES[i + 1], dtype=params["w0"].dtype)
        with torch.no_grad():
            layer.weight.copy_(params[f"w{i}"])
            layer.bias.copy_(params[f"b{i}"])
        layers += [layer, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])  # no ReLU after the output layer


def test_forward_matches_torch_nn():
    """The functional forward (which the reference above also uses) against torch.nn
    with the same weights: shared weights over a [B, S, d] batch, and one weight set
    per task (the leading task axis the inner loop adapts)."""
    params, batch = _params(), _batch(BINARY)
    x = batch.query_x
    with torch.no_grad():
        expected = _torch_nn_mlp(params)(x).squeeze(-1)
    assert forward(params, x).shape == x.shape[:-1]
    assert torch.allclose(forward(params, x), expected, atol=1e-12)

    gen = torch.Generator().manual_seed(3)
    per_task = {
        k: v + 0.1 * torch.randn((batch.size, *v.shape), generator=gen, dtype=v.dtype)
        for k, v in params.items()
    }
    with torch.no_grad():
        expected = torch.stack(
            [
                _torch_nn_mlp({k: v[t] for k, v in per_task.items()})(x[t]).squeeze(-1)
                for t in range(batch.size)
            ]
        )
    assert torch.allclose(forward(per_task, x), expected, atol=1e-12)


@pytest.mark.parametrize("backend", ["manual", "func"])
def test_adapt_params_single_task_matches_batched(backend):
    params, batch = _params(), _batch(BINARY)
    batched = adapt_params(
        params,
        batch.support_x,
        batch.support_y,
        batch.support_mask,
        inner_lr=INNER_LR,
        inner_steps=STEPS,
    )
    before = {k: v.clone() for k, v in params.items()}
    for t in range(batch.size):
        ns = int(batch.support_mask[t].sum())
        single = adapt_params(
            params,
            batch.support_x[t, :ns],
            batch.support_y[t, :ns],
            inner_lr=INNER_LR,
            inner_steps=STEPS,
            backend=backend,
        )
        assert _max_diff(single, {k: v[t] for k, v in batched.items()}) < 1e-10
    assert _max_diff(before, params) == 0.0  # inputs untouched


def test_adapt_params_reduces_support_loss():
    params, batch = _params(), _batch(BINARY)
    before = masked_loss(
        forward(params, batch.support_x), batch.support_y, batch.support_mask, BINARY
    )
    adapted = adapt_params(
        params, batch.support_x, batch.support_y, batch.support_mask, inner_lr=0.5, inner_steps=10
    )
    after = masked_loss(
        forward(adapted, batch.support_x), batch.support_y, batch.support_mask, BINARY
    )
    assert float(after.mean()) < float(before.mean())


def test_config_rejects_bad_values():
    with pytest.raises(UnknownNameError, match="Did you mean 'manual'"):
        InnerLoopConfig(backend="manul")
    with pytest.raises(MetamedValueError, match="Did you mean 'binary'"):
        InnerLoopConfig(outcome_type="binay")
    with pytest.raises(MetamedValueError):
        InnerLoopConfig(inner_steps=-1)
    with pytest.raises(MetamedValueError):
        meta_gradient(_params(), _batch(BINARY), InnerLoopConfig(), 0.1, chunk_size=0)


# -- a convolutional network through functional_call ----------------------------------------
CNN_SIDE = 8
CNN_CHANNELS = (2, 3)


#: The 3-D CNN at toy size: 8^3 voxels averaged to 4^3, one block of 2 channels (4 -> 2
#: voxels a side).
CNN3D_SIDE = 8
CNN3D_CHANNELS = (2,)


def _cnn_reference_forward(params, x, dims=2):
    """The small CNN written out with torch.nn.functional (no module, no functional_call)."""
    side, channels = (CNN_SIDE, CNN_CHANNELS) if dims == 2 else (CNN3D_SIDE, CNN3D_CHANNELS)
    conv, pool = (F.conv2d, F.max_pool2d) if dims == 2 else (F.conv3d, F.max_pool3d)
    h = x.reshape(-1, 1, *[side] * dims)
    first = 0
    if dims == 3:  # cnn3d averages 2 x 2 x 2 voxel blocks first (a layer without weights)
        h, first = F.avg_pool3d(h, 2), 1
    for i in range(len(channels)):
        key = f"body.blocks.{first + 3 * i}"
        w, b = params[f"{key}.weight"], params[f"{key}.bias"]
        h = pool(F.relu(conv(h, w, b, padding=1)), 2)
    h = h.mean(dim=tuple(range(-dims, 0)))
    return (h @ params["head.weight"].T + params["head.bias"]).squeeze(-1)


def _cnn_params(dims=2):
    if dims == 2:
        network = make_network("cnn", CNN_CHANNELS, CNN_SIDE * CNN_SIDE)
    else:
        network = make_network("cnn3d", CNN3D_CHANNELS, CNN3D_SIDE**3)
    gen = torch.Generator().manual_seed(4)
    params = {
        k: (v + 0.1 * torch.randn(v.shape, generator=gen)).double()
        for k, v in network.init(torch.Generator().manual_seed(1)).items()
    }
    return network, params


@pytest.mark.parametrize(
    "case, backend, dims",
    [("maml", "func", 2), ("fomaml", "func", 2), ("anil", "func", 2), ("anil", "manual", 2),
     ("metasgd", "func", 2), ("maml", "func", 3), ("fomaml", "func", 3), ("anil", "func", 3)],
)  # fmt: skip
def test_cnn_meta_gradient_matches_looped_reference(case, backend, dims):
    spec = CASES[case]
    network, params = _cnn_params(dims)
    batch = _batch(BINARY, d=CNN_SIDE * CNN_SIDE if dims == 2 else CNN3D_SIDE**3)
    lrs = None
    if spec["metasgd"]:
        gen = torch.Generator().manual_seed(3)
        lrs = {k: INNER_LR * (0.5 + torch.rand(v.shape, generator=gen)).double()
               for k, v in params.items()}  # fmt: skip
    ref_loss, ref_g, ref_lr_g = _reference(
        params, batch, BINARY, first_order=spec["first_order"], head_only=spec["head_only"],
        lrs=lrs, model=lambda p, x: _cnn_reference_forward(p, x, dims),
        head=["head.weight", "head.bias"],
    )  # fmt: skip
    config = InnerLoopConfig(
        STEPS, BINARY, spec["first_order"], spec["head_only"], backend, network
    )
    out = meta_gradient(params, batch, config, lrs if lrs is not None else INNER_LR, chunk_size=4)
    assert abs(out.loss - ref_loss) < 1e-10
    assert _max_diff(out.grads, ref_g) < 1e-8
    # Not vacuous: the convolution weights receive a real gradient.
    first = "body.blocks.0.weight" if dims == 2 else "body.blocks.1.weight"
    assert float(ref_g[first].abs().max()) > 1e-4
    if lrs is not None:
        assert _max_diff(out.lr_grads, ref_lr_g) < 1e-8


@pytest.mark.parametrize("dims", [2, 3])
def test_cnn_forward_matches_the_written_out_network(dims):
    network, params = _cnn_params(dims)
    x = _batch(BINARY, d=CNN_SIDE * CNN_SIDE if dims == 2 else CNN3D_SIDE**3).query_x
    # [B, S, D]: leading axes kept
    assert torch.allclose(network.forward(params, x), _cnn_reference_forward(
        params, x, dims).reshape(x.shape[:-1]), atol=1e-12)  # fmt: skip


def test_cnn3d_refuses_rows_that_are_not_volumes():
    with pytest.raises(MetamedValueError, match="not a cube number"):
        make_network("cnn3d", (2,), 28 * 28)


def test_manual_backend_refuses_a_module_network():
    network, _ = _cnn_params()
    with pytest.raises(MetamedValueError, match="backend='func'"):
        InnerLoopConfig(STEPS, network=network)
    InnerLoopConfig(STEPS, head_only=True, network=network)  # ANIL: a linear head, fine
