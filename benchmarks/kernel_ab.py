"""The simulator's compiled integrator against the one of an earlier commit, in one run.

Loads ``src/metamed/dosing/_kernel.py`` as it was at ``--before`` (``git show``) beside the
current one and times ``advance_period`` of both, alternating, on the same patients and
meals as ``benchmarks/sim_throughput.py`` (the 30 virtual patients cycled to the batch
size, one thread, 5-minute periods over a day, basal insulin).  Reports nanoseconds per
patient-minute (best of the repeats) for each, their ratio, and the largest relative
difference in glucose between the two after the day.  The current and the earlier kernel
take the patient constants differently (a lane table, or the propagator and constants
table); both are built from the same ``UVAPadova``.

Usage::

    .venv/bin/python benchmarks/kernel_ab.py                # before the SIMD lanes
    .venv/bin/python benchmarks/kernel_ab.py --before HEAD~3 --patients 300

Writes ``benchmarks/results/kernel_ab.{json,md}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sim_throughput import MEALS, _batch  # noqa: E402  (the same patients and meals)

from metamed.dosing import _kernel  # noqa: E402
from metamed.dosing.patient import UVAPadova  # noqa: E402
from metamed.dosing.scenario import FixedMealScenario  # noqa: E402

#: The commit before the kernel advanced patients in SIMD lanes.
BEFORE_LANES = "020124f"


def _earlier_kernel(rev: str, folder: Path):
    source = subprocess.run(
        ["git", "show", f"{rev}:src/metamed/dosing/_kernel.py"],
        cwd=HERE.parent, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = folder / f"kernel_{rev.replace('~', '_').replace('^', '_')}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _time(kernel, model: UVAPadova, carbs: np.ndarray, insulin: np.ndarray) -> tuple[float, np.ndarray]:
    params = inspect.signature(kernel.advance_period.py_func).parameters
    tables = (model._half_prop, model._kernel_constants) if "half" in params else (model._lane_table,)
    s = model.initial_state()
    state = [s.x.copy(), s.planned_carbs_g.astype(float), s.last_eaten_g.astype(float),
             s.meal_start_qsto_mg.astype(float), s.meal_eaten_g.astype(float),
             s.is_eating.astype(bool)]  # fmt: skip
    t0 = time.perf_counter()
    for t in range(0, carbs.shape[0], 5):
        kernel.advance_period(*state, carbs[t : t + 5], insulin, *tables, model.substeps)
    return time.perf_counter() - t0, state[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE_LANES, help="the earlier commit")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    patients = _batch(args.patients)
    model = UVAPadova(patients)
    carbs = np.ascontiguousarray(FixedMealScenario(MEALS).schedule(patients, 1440))
    insulin = np.ascontiguousarray(patients.basal_u_per_min)
    with tempfile.TemporaryDirectory() as folder:
        kernels = {"before": _earlier_kernel(args.before, Path(folder)), "now": _kernel}
        for kernel in kernels.values():  # compile (or load) outside the timing
            _time(kernel, model, carbs[:5], insulin)
        best = {name: float("inf") for name in kernels}
        glucose = {}
        for _ in range(args.repeats):
            for name, kernel in kernels.items():
                seconds, x = _time(kernel, model, carbs, insulin)
                best[name] = min(best[name], seconds)
                glucose[name] = x[12]
    per_minute = {k: v * 1e9 / (args.patients * carbs.shape[0]) for k, v in best.items()}
    record = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "before": args.before,
        "patients": args.patients,
        "ns_per_patient_minute": per_minute,
        "speed_up": per_minute["before"] / per_minute["now"],
        "max_relative_glucose_difference": float(
            np.max(np.abs(glucose["now"] - glucose["before"]) / np.abs(glucose["before"]))
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, the serial kernel (one thread)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernel_ab.json").write_text(json.dumps(record, indent=2) + "\n")
    page = "\n".join([
        "# The compiled integrator against an earlier commit's",
        "",
        f"Command: `{record['command']}`; {record['machine']}.",
        "",
        f"{args.patients:,} patients, one simulated day in 5-minute periods, best of "
        f"{args.repeats} alternating repeats:",
        "",
        "| kernel | ns per patient-minute |",
        "|---|---:|",
        f"| `{args.before}` | {per_minute['before']:.1f} |",
        f"| this commit | {per_minute['now']:.1f} |",
        "",
        f"Speed-up {record['speed_up']:.2f}x; glucose after the day differs by at most "
        f"{record['max_relative_glucose_difference']:.1e} relative.",
        "",
    ])  # fmt: skip
    (args.out / "kernel_ab.md").write_text(page)
    print(page)


if __name__ == "__main__":
    main()
