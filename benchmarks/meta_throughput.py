"""Meta-training throughput: metamed's vectorised engine vs a per-task autograd loop.

Standard configuration: MLP 64-128-128-1, meta-batch of 32 binary tasks, 10 support +
30 query rows per task, 5 inner SGD steps, Adam outer update; CPU with
``torch.set_num_threads(2)``.  One "iteration" is one meta-gradient on a fixed
meta-batch plus the Adam step (episode sampling is excluded from both sides).

Compared, in one run and on the same data and initial weights:

``loop``
    The learn2learn / higher design: an ``nn.Module``; for each task in turn its
    parameters are adapted with ``torch.autograd.grad(create_graph=True)`` (second
    order) or without the graph (first order), the query loss of the adapted weights
    is back-propagated into the module's ``.grad`` (one backward per task, as in
    learn2learn's examples), then Adam steps.  The adapted weights are used through the
    module's own layer list with ``F.linear``, which is what learn2learn's cloned
    module computes without the overhead of cloning a module per task.
``engine-manual``
    :func:`metamed.learners.engine.meta_gradient`, default backend (analytic batched
    inner gradient).
``engine-lowrank``
    ``backend="lowrank"``: each task's adapted weights kept as the shared weights plus a
    low-rank correction (:mod:`metamed.learners.lowrank`), so products with the shared
    weights are one large GEMM over all tasks' rows; first order without autograd.
``engine-manual-chunk8``
    The same in chunks of 8 tasks (``chunk_size=8``): less memory, more calls.
``engine-func``
    The manual engine's job with ``backend="func"`` (``torch.func.grad`` + ``vmap``).
``engine-manual-compiled``
    ``torch.compile`` of the manual backend's forward (inner loop + query loss); the
    outer backward is then AOTAutograd's compiled backward.

Before timing, the meta-gradients of every variant are compared with the loop's (max
abs difference, float32).  Timing interleaves the variants in rounds of short blocks so
that load from other processes affects all of them alike; the headline it/s of a variant
is its best block (``timeit``'s convention: slower blocks measure interference, not the
code) and its speed-up is best over best; medians are recorded too.  Peak memory is measured per variant in a fresh
subprocess (peak RSS minus RSS before the first iteration).

Run::

    python benchmarks/meta_throughput.py            # writes benchmarks/results/meta_throughput.{json,md}
    python benchmarks/meta_throughput.py --no-compile --rounds 3
    python benchmarks/meta_throughput.py --device cuda --meta-batch 1024 --no-compile
        # on a GPU: writes benchmarks/results/meta_throughput_cuda_b1024.{json,md}

``--device auto`` (the default) uses a GPU when torch sees one; nothing requires one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from metamed.learners.engine import InnerLoopConfig, meta_gradient, query_losses
from metamed.learners.mlp import init_mlp
from metamed.tasks.episodes import EpisodeBatch

SIZES = (64, 128, 128, 1)
META_BATCH = 32
N_SUPPORT = 10
N_QUERY = 30
INNER_STEPS = 5
INNER_LR = 0.1
OUTER_LR = 1e-3
SEED = 0
RESULTS = Path(__file__).parent / "results"

Step = Callable[[], None]

#: What was tried to make the engine faster (qualitative; the numbers are in the table).
NOTES = [
    "- The default backend is `manual` (analytic, batched inner gradient written out for the "
    "ReLU MLP): it removes `torch.func.grad`'s per-step transform overhead; compare the "
    "`engine-manual` and `engine-func` rows. Both match the loop's meta-gradient.",
    "- First-order variants compute the inner gradient under `torch.no_grad()` (no graph "
    "is built for a gradient that is treated as a constant).",
    "- A shared first inner step is one large GEMM over all tasks' rows (parameters get "
    "their task axis only after the first update); ANIL computes body features once per task.",
    "- Fused update ops (`torch.add(..., alpha=-lr)`, `addcmul` for Meta-SGD) and a one-op "
    "ReLU derivative (`threshold_backward`) made no measurable difference at this size; "
    "kept because they shrink the outer graph.",
    "- `torch.profiler` (1 thread) shows the manual backend's second-order time dominated by "
    "batched matmuls of shape [32, 10, 128] x [32, 128, 128] and their backward: small-K "
    "batched GEMMs run well below peak FLOP rate. The `lowrank` backend below targets them.",
    "- `torch.compile` of the manual backend's forward (inner loop + query loss; the outer "
    "backward is then AOTAutograd's) works and gives the same gradient; its cost is the "
    "compile time (a cold compile took minutes on this machine). It is not enabled in the "
    "learners (a cold compile exceeds a short meta-training run), and the recorded run "
    "skipped it (`--no-compile`) to keep the quiet-machine measurement short; without that "
    "flag the table gains `engine-manual-compiled` rows.",
    "- `engine-lowrank` (backend `lowrank`, `metamed.learners.lowrank`) keeps each task's "
    "adapted weights as W - lr * D^T U (one rank-10 term per inner step; the first layer's "
    "terms merge into one, since its input is the support set at every step), so every "
    "product with the shared W is one GEMM over all tasks' rows and the per-task products "
    "are at most 50 wide; the per-task weight gradients delta^T h are never formed. Its "
    "first-order meta-gradient is written out (no autograd): each layer's weight part is "
    "one GEMM over all tasks' query rows. It applies to the whole MLP with a scalar step "
    "size (MAML, FOMAML); Meta-SGD and ANIL run the manual code under it. It is not the "
    "default yet: switching changes the hyperparameter recorded in every run folder's cell "
    "keys (resumed suites would redo their MAML cells), and the README benchmark's summary "
    "numbers under it have not been compared.",
    "- Not tried yet: a hand-written outer backward for the second-order case (autograd "
    "differentiates the low-rank inner loop now), and fusing the inner steps.",
    "- `--device cuda --meta-batch 1024` runs the same comparison on a GPU (the page then "
    "names it); this machine has no GPU and none was lent for these runs, so no GPU run "
    "is recorded.",
    "- `chunk_size` trades speed for memory: the engine keeps the graph of one chunk; the "
    "`engine-manual-chunk8` rows show the lower peak and the cost of more, smaller calls.",
    "- The 2-core machine is shared with other jobs: the recorded run had the other heavy "
    "jobs paused while it ran (the load average above lags behind that), but wall-clock "
    "blocks still vary between rounds. Variants were interleaved so that all saw the same "
    "conditions, and the best block of each is the headline. "
    "`meta_throughput_1thread_cpu.md` (1 thread, timed by process CPU time) is from an "
    "earlier run, before the `lowrank` backend and with the earlier goals of 3x / 5x; it "
    "was not rerun.",
]


def make_problem(
    meta_batch: int = META_BATCH, device: str = "cpu"
) -> tuple[dict[str, torch.Tensor], EpisodeBatch]:
    """Initial weights and one fixed meta-batch, drawn on the CPU (the same numbers on
    every device) and then moved to ``device``."""
    gen = torch.Generator().manual_seed(SEED)
    params = init_mlp(SIZES, gen)
    d = SIZES[0]
    w_true = torch.randn(d, generator=gen)

    def part(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.randn(meta_batch, n, d, generator=gen)
        shift = torch.randn(meta_batch, 1, generator=gen)
        p = torch.sigmoid(x @ w_true / d**0.5 + shift)
        y = (torch.rand(meta_batch, n, generator=gen) < p).float()
        return x.to(device), y.to(device), torch.ones(meta_batch, n, device=device)

    params = {k: v.to(device) for k, v in params.items()}
    return params, EpisodeBatch(*part(N_SUPPORT), *part(N_QUERY))


# -- the per-task loop reference -----------------------------------------------------------
def make_module(params: dict[str, torch.Tensor]) -> nn.Sequential:
    device = params["w0"].device
    layers: list[nn.Module] = []
    n = len(SIZES) - 1
    for i in range(n):
        lin = nn.Linear(SIZES[i], SIZES[i + 1])
        with torch.no_grad():
            lin.weight.copy_(params[f"w{i}"])
            lin.bias.copy_(params[f"b{i}"])
        layers.append(lin)
        if i < n - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).to(device)


def module_forward(
    module: nn.Sequential, weights: list[torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """The module's layers applied with substituted (adapted) weights."""
    h, i = x, 0
    for layer in module:
        if isinstance(layer, nn.Linear):
            h = F.linear(h, weights[i], weights[i + 1])
            i += 2
        else:
            h = layer(h)
    return h.squeeze(-1)


def loop_meta_gradient(module: nn.Sequential, batch: EpisodeBatch, first_order: bool) -> None:
    """Accumulate the meta-gradient into ``module``'s ``.grad`` one task at a time."""
    params = list(module.parameters())
    n_tasks = batch.size
    for t in range(n_tasks):
        fast = params
        for _ in range(INNER_STEPS):
            loss = F.binary_cross_entropy_with_logits(
                module_forward(module, fast, batch.support_x[t]), batch.support_y[t]
            )
            grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
            fast = [w - INNER_LR * g for w, g in zip(fast, grads, strict=True)]
        query = F.binary_cross_entropy_with_logits(
            module_forward(module, fast, batch.query_x[t]), batch.query_y[t]
        )
        (query / n_tasks).backward()


def loop_step(
    params: dict[str, torch.Tensor], batch: EpisodeBatch, first_order: bool
) -> tuple[Step, Callable]:
    module = make_module(params)
    opt = torch.optim.Adam(module.parameters(), lr=OUTER_LR)

    def step() -> None:
        opt.zero_grad()
        loop_meta_gradient(module, batch, first_order)
        opt.step()

    def gradient() -> dict[str, torch.Tensor]:
        module.zero_grad()
        loop_meta_gradient(module, batch, first_order)
        lins = [m for m in module if isinstance(m, nn.Linear)]
        out = {}
        for i, lin in enumerate(lins):
            out[f"w{i}"], out[f"b{i}"] = lin.weight.grad.clone(), lin.bias.grad.clone()
        return out

    return step, gradient


# -- the engine ------------------------------------------------------------------------------
def engine_step(
    params: dict[str, torch.Tensor],
    batch: EpisodeBatch,
    first_order: bool,
    backend: str,
    compiled: bool,
    chunk_size: int | None,
) -> tuple[Step, Callable]:
    config = InnerLoopConfig(INNER_STEPS, "binary", first_order, False, backend)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    opt = torch.optim.Adam(leaves.values(), lr=OUTER_LR)

    if compiled:
        losses_fn = torch.compile(lambda p: query_losses(p, batch, config, INNER_LR))

        def gradient() -> dict[str, torch.Tensor]:
            loss = losses_fn(leaves).sum() / batch.size
            return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))
    else:

        def gradient() -> dict[str, torch.Tensor]:
            return meta_gradient(leaves, batch, config, INNER_LR, chunk_size).grads

    def step() -> None:
        grads = gradient()
        for k, g in grads.items():
            leaves[k].grad = g
        opt.step()

    return step, gradient


def _resolve_device(requested: str) -> str:
    """``auto`` -> cuda when torch sees a GPU, else cpu; cuda without one: exit 2."""
    available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if requested == "cuda" and not available:
        print(
            "meta_throughput.py: --device cuda, but torch sees no GPU (torch "
            f"{torch.__version__}); run with --device cpu or --device auto.",
            file=sys.stderr,
        )
        sys.exit(2)
    return requested


def _wanted_variants(spec: str | None, compile_: bool) -> set[str] | None:
    """The --variants names (the loop, every speed-up's reference, always included)."""
    if spec is None:
        return None
    known = {name for name, _ in variants(compile_)}
    wanted = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = sorted(wanted - known)
    if unknown:
        print(
            f"meta_throughput.py: unknown variant(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known))}.",
            file=sys.stderr,
        )
        sys.exit(2)
    return wanted | {"loop"}


def variants(compile_: bool) -> list[tuple[str, bool]]:
    names = ["loop", "engine-manual", "engine-lowrank", "engine-manual-chunk8", "engine-func"]
    names += ["engine-manual-compiled"] if compile_ else []
    return [(name, fo) for fo in (False, True) for name in names]


def build(name: str, first_order: bool, params, batch) -> tuple[Step, Callable]:
    if name == "loop":
        return loop_step(params, batch, first_order)
    backend = {"engine-func": "func", "engine-lowrank": "lowrank"}.get(name, "manual")
    chunk = 8 if name.endswith("chunk8") else None
    return engine_step(params, batch, first_order, backend, name.endswith("compiled"), chunk)


def key(name: str, first_order: bool) -> str:
    return f"{name}/{'first' if first_order else 'second'}-order"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_memory(variant: str, meta_batch: int, device: str) -> None:
    """Child process: peak memory growth while running one variant (printed as JSON):
    resident memory on the CPU, memory allocated by torch on a GPU."""
    name, order = variant.split("/")
    params, batch = make_problem(meta_batch, device)
    step, _ = build(name, order.startswith("first"), params, batch)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before_bytes = torch.cuda.memory_allocated()
        for _ in range(6):
            step()
        torch.cuda.synchronize()
        growth = (torch.cuda.max_memory_allocated() - before_bytes) / 2**20
        print(json.dumps({"peak_growth_mib": growth, "memory": "cuda allocated"}))
        return
    before = rss_mib()
    reset = reset_peak_rss()
    for _ in range(6):
        step()
    peak = peak_rss_mib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": peak, "peak_growth_mib": peak - before, "peak_reset": reset}))


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ``clear_refs`` 5) so the peak below
    belongs to the timed iterations, not to imports or setup."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_info(threads: int, device: str) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def write_markdown(report: dict, path: Path) -> None:
    """A short human-readable summary of ``report`` (the JSON stays the source of truth)."""
    cfg, mach = report["config"], report["machine"]
    lines = [
        "# Meta-training throughput: vectorised engine vs per-task loop",
        "",
        f"Command: `{report['command']}` (results: `{path.with_suffix('.json').name}`).",
        "",
        f"Config: MLP {'-'.join(map(str, cfg['mlp_sizes']))}, meta-batch {cfg['meta_batch']}, "
        f"{cfg['n_support']} support + {cfg['n_query']} query rows per task, "
        f"{cfg['inner_steps']} inner SGD steps, {cfg['outer_optimizer']}. "
        f"{cfg['rounds']} interleaved rounds of ~{cfg['target_block_s']} s timed blocks per "
        f"variant after {cfg['warmup']} warm-up iterations, timed by the "
        f"{cfg.get('clock', 'wall')} clock. Throughput is the best block "
        "(the timeit convention: slower blocks measure interference from other processes, "
        "not the code); medians and every block are in the JSON.",
        "",
        f"Machine: {mach['cpu']}, {mach['logical_cpus']} logical CPUs, torch {mach['torch']}, "
        f"{mach['torch_threads']} torch threads, Python {mach['python']}; device "
        f"{_fmt_device(mach)}. "
        f"Load average (1/5/15 min) before {_fmt_load(report['load_average_1_5_15_min']['before'])}, "
        f"after {_fmt_load(report['load_average_1_5_15_min']['after'])}.",
        "",
        "| variant | order | it/s (best) | it/s (median) | speed-up vs loop (best / median of "
        f"rounds) | peak {'GPU memory' if mach.get('device') == 'cuda' else 'RSS'} growth "
        "(MiB) | max abs grad diff vs loop |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for k, r in report["results"].items():
        name, order = k.split("/")
        mem = f"{r['peak_growth_mib']:.0f}" if "peak_growth_mib" in r else "n/m"
        extra = f" (compile {r['compile_s']:.0f} s)" if "compile_s" in r else ""
        lines.append(
            f"| {name}{extra} | {order} | {r['it_per_s_best']:.2f} | {r['it_per_s_median']:.2f} "
            f"| {r['speedup_vs_loop_best']:.2f}x / {r['speedup_vs_loop_median_of_rounds']:.2f}x "
            f"| {mem} | {r['max_abs_grad_diff_vs_loop']:.1e} |"
        )
    lines += ["", "Goals (engine vs loop, best blocks; issue 14):", ""]
    for order, s in report["summary"].items():
        goal = s["goal_speedup"]
        parts = []
        for name, got in sorted(s["speedups"].items(), key=lambda kv: -kv[1]):
            verdict = "met" if got >= goal else f"NOT met, short by {goal - got:.2f}x"
            default = " (the default backend)" if name == s["default_variant"] else ""
            parts.append(f"{name}{default} {got:.2f}x: {verdict}")
        lines.append(f"- {order}, goal {goal:.0f}x: " + "; ".join(parts) + ".")
    standard = (cfg.get("device", "cpu"), cfg["meta_batch"], mach["torch_threads"]) == (
        "cpu",
        META_BATCH,
        2,
    )
    if not standard:
        lines += [
            "",
            "The goals are set on the standard config (CPU, 2 threads, meta-batch 32); this "
            "run is not it, so its verdicts above are for information only.",
        ]
    if report.get("compile_error"):
        lines += ["", f"torch.compile failed: `{report['compile_error']}`"]
    notes = report.get("notes")
    if notes:
        lines += ["", "## Notes", "", *notes]
    path.write_text("\n".join(lines) + "\n")


def _fmt_device(machine: dict) -> str:
    if machine.get("device") == "cuda":
        return f"cuda ({machine['gpu']})"
    return "cpu (no GPU used)"


def _fmt_load(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--block-s",
        type=float,
        default=0.5,
        help="target seconds per timed block (sets iterations)",
    )
    parser.add_argument("--rounds", type=int, default=12, help="interleaved timing rounds")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time (robust to other processes "
        "when --threads 1, since a descheduled process accrues no CPU time)",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where tensors live (auto: cuda when torch sees a GPU, else cpu)",
    )
    parser.add_argument(
        "--meta-batch", type=int, default=META_BATCH, help="tasks per meta-batch (standard: 32)"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variant names to run (default: all; 'loop' is always run)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON to write, the .md beside it (default: benchmarks/results/meta_throughput.json "
        "on the standard config, else meta_throughput_<device>_b<meta-batch>.json)",
    )
    parser.add_argument("--measure-memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--markdown-only", action="store_true", help="rewrite the .md from an existing --out JSON"
    )
    args = parser.parse_args()
    device = _resolve_device(args.device)
    if args.meta_batch < 1:
        print(
            f"meta_throughput.py: --meta-batch must be >= 1, got {args.meta_batch}.",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.out is None:
        standard = device == "cpu" and args.meta_batch == META_BATCH
        stem = "meta_throughput" if standard else f"meta_throughput_{device}_b{args.meta_batch}"
        args.out = RESULTS / f"{stem}.json"
    if args.markdown_only:
        report = json.loads(args.out.read_text())
        report["notes"] = NOTES
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(report, args.out.with_suffix(".md"))
        return
    torch.set_num_threads(args.threads)
    if args.measure_memory:
        measure_memory(args.measure_memory, args.meta_batch, device)
        return

    params, batch = make_problem(args.meta_batch, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    wanted = _wanted_variants(args.variants, not args.no_compile)
    load_before = os.getloadavg()
    built: dict[str, tuple[Step, Callable]] = {}
    grad_check: dict[str, float] = {}
    compile_s: dict[str, float] = {}
    compile_error = None
    block_iters: dict[str, int] = {}
    reference: dict[bool, dict[str, torch.Tensor]] = {}
    for name, fo in variants(not args.no_compile):
        if wanted is not None and name not in wanted:
            continue
        k = key(name, fo)
        try:
            t0 = time.perf_counter()
            step, gradient = build(name, fo, params, batch)
            grads = gradient()  # compiles on first call for the compiled variant
            if name.endswith("compiled"):
                compile_s[k] = time.perf_counter() - t0
        except Exception as exc:  # torch.compile may be unavailable; record why
            if not name.endswith("compiled"):
                raise
            compile_error = f"{type(exc).__name__}: {exc}"[:500]
            print(f"{k}: failed: {compile_error}", file=sys.stderr)
            continue
        if name == "loop":
            reference[fo] = grads
        grad_check[k] = max(float((grads[p] - reference[fo][p]).abs().max()) for p in grads)
        built[k] = (step, gradient)
        print(f"{k}: max |grad - loop grad| = {grad_check[k]:.2e}", file=sys.stderr)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step()
        sync()
        per_iter = (time.perf_counter() - t0) / max(args.warmup, 1)
        block_iters[k] = max(1, round(args.block_s / per_iter))

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    rates: dict[str, list[float]] = {k: [] for k in built}
    for r in range(args.rounds):
        for k, (step, _) in built.items():
            sync()
            t0 = clock()
            for _ in range(block_iters[k]):
                step()
            sync()  # a GPU runs asynchronously: the block ends when its work does
            rates[k].append(block_iters[k] / (clock() - t0))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    load_after = os.getloadavg()

    results = {}
    for k, values in rates.items():
        name, order = k.split("/")
        loop_rates = rates[f"loop/{order}"]
        ratios = [v / lr for v, lr in zip(values, loop_rates, strict=True)]
        results[k] = {
            "it_per_s_best": max(values),
            "it_per_s_median": statistics.median(values),
            "it_per_s_rounds": values,
            "iters_per_block": block_iters[k],
            "speedup_vs_loop_best": max(values) / max(loop_rates),
            "speedup_vs_loop_median_of_rounds": statistics.median(ratios),
            "max_abs_grad_diff_vs_loop": grad_check[k],
        }
        if k in compile_s:
            results[k]["compile_s"] = compile_s[k]
        if not name.endswith("compiled") and not args.no_memory:
            child = ["--threads", str(args.threads), "--device", device]
            child += ["--meta-batch", str(args.meta_batch), "--measure-memory", k]
            out = subprocess.run(
                [sys.executable, __file__, *child],
                capture_output=True,
                text=True,
                check=True,
            )
            results[k].update(json.loads(out.stdout.strip().splitlines()[-1]))

    # Issue 14's goals, for each backend of the engine (the default one is marked).
    goals = {"second-order": 10.0, "first-order": 15.0}
    default = f"engine-{InnerLoopConfig().backend}"
    summary = {}
    for order, goal in goals.items():
        speedups = {
            name: results[f"{name}/{order}"]["speedup_vs_loop_best"]
            for name in ("engine-manual", "engine-lowrank")
            if f"{name}/{order}" in results
        }
        if speedups:
            best = max(speedups, key=speedups.__getitem__)
            summary[order] = {
                "goal_speedup": goal,
                "default_variant": default,
                "speedups": speedups,
                "best_variant": best,
                "met": speedups[best] >= goal,
            }
    report = {
        # The script named from the repository root, whatever the working directory.
        "command": "python " + " ".join(["benchmarks/meta_throughput.py", *sys.argv[1:]]),
        "config": {
            "mlp_sizes": SIZES,
            "meta_batch": args.meta_batch,
            "device": device,
            "n_support": N_SUPPORT,
            "n_query": N_QUERY,
            "inner_steps": INNER_STEPS,
            "inner_lr": INNER_LR,
            "outer_optimizer": f"Adam(lr={OUTER_LR})",
            "target_block_s": args.block_s,
            "clock": args.clock,
            "rounds": args.rounds,
            "warmup": args.warmup,
        },
        "machine": machine_info(args.threads, device),
        "load_average_1_5_15_min": {"before": load_before, "after": load_after},
        "results": results,
        "summary": summary,
        "compile_error": compile_error,
        "notes": NOTES,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out.with_suffix(".md"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
