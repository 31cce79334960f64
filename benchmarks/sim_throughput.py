"""Throughput of the batched UVA/Padova simulator vs simglucose (simulated patients).

Measures simulated patient-days per second of wall time for the same closed-loop
protocol in both simulators: virtual patients (the 30, cycled to the batch size), a
fixed daily meal scenario (07:00 50 g, 12:00 70 g, 15:30 15 g, 18:00 80 g), a basal-bolus
controller, GuardianRT CGM (5-min, noisy), Insulet pump, 1-minute patient steps.

- metamed: its one closed loop, :func:`metamed.dosing.env.rollout` of the batched
  :class:`~metamed.dosing.controllers.BasalBolusController` on the vector environment
  (one ``step`` call per CGM period for the whole batch), for 30, 300, 1,000 and 10,000
  patients; the environment's reset is inside the timing.  Single-threaded (the default)
  and with the model on numba's threads (``UVAPadova(parallel=True)``).
- the compute floor: the compiled integrator alone
  (:meth:`~metamed.dosing.patient.UVAPadova.advance_unchecked`, 288 five-minute periods,
  the meals above, basal insulin), no environment, controller or sensor: what the
  closed loop would cost if everything but the model's arithmetic were free.
- simglucose 0.2.11: its own ``T1DSimEnv`` + ``BBController`` loop, one patient at a time
  as it is designed, run in a subprocess with the interpreter given by ``--simglucose-python``
  (default ``/tmp/sgvenv/bin/python``; simglucose is not a metamed dependency).  Its cost
  per patient-day does not depend on the cohort, so a few patients are timed and the rate
  is reported per patient-day.

Usage::

    .venv/bin/python benchmarks/sim_throughput.py            # writes benchmarks/results/
    .venv/bin/python benchmarks/sim_throughput.py --sizes 30,300 --simglucose-patients 1

Everything is timed in one run, so the ratios are measured under one machine load; the
1-minute load average before and after is recorded (the development machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

from metamed.dosing.controllers import BasalBolusController
from metamed.dosing.env import GlucoseVectorEnv, rollout
from metamed.dosing.patient import UVAPadova, load_virtual_patients
from metamed.dosing.scenario import FixedMealScenario

MEALS = ((7.0, 50.0), (12.0, 70.0), (15.5, 15.0), (18.0, 80.0))
RESULTS = Path(__file__).with_name("results")
#: Issue 11's goal: simulated patient-days per second on 2 cores, 1,000+ patients.
GOAL_PATIENT_DAYS_PER_S = 10_000.0

_SIMGLUCOSE_SCRIPT = r"""
import json, sys, time
from datetime import datetime, timedelta
import logging
logging.disable(logging.CRITICAL)
from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario import CustomScenario
from simglucose.simulation.sim_engine import SimObj
names, days, meals = json.loads(sys.argv[1])
start = datetime(2024, 1, 1)
elapsed = []
for i, name in enumerate(names):
    env = T1DSimEnv(T1DPatient.withName(name), CGMSensor.withName("GuardianRT", seed=i),
                    InsulinPump.withName("Insulet"),
                    CustomScenario(start_time=start, scenario=[(h + 24 * d, g) for d in range(days) for h, g in meals]))
    sim = SimObj(env, BBController(), timedelta(days=days), animate=False, path=None)
    t0 = time.perf_counter()
    sim.simulate()
    elapsed.append(time.perf_counter() - t0)
print(json.dumps({"seconds": elapsed}))
"""


def _batch(n_patients: int):
    base = load_virtual_patients()
    return base.select([base.names[i % len(base)] for i in range(n_patients)])


def _time_metamed(n_patients: int, days: int, repeats: int, parallel: bool) -> dict:
    patients = _batch(n_patients)
    env = GlucoseVectorEnv(
        patients, days=days, scenario=FixedMealScenario(MEALS), random_init_bg=False
    )
    env.model.parallel = parallel
    controller = BasalBolusController(
        patients.basal_u_per_h, patients.carb_ratio_g_per_u, patients.correction_factor_mg_dl_per_u
    )
    rollout(controller, env, seed=0, steps=2)  # compile / warm up outside the timing
    times, cpu = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rollout(controller, env, seed=r)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return _rates(n_patients, days, parallel, times, cpu)


def _rates(n_patients: int, days: int, parallel: bool, times: list, cpu: list) -> dict:
    # wall time is what a user waits for; process CPU time (all threads) is what the
    # computation costs, and moves far less with the load of a shared machine
    return {
        "n_patients": n_patients,
        "days": days,
        "parallel": parallel,
        "seconds": times,
        "cpu_seconds": cpu,
        "patient_days_per_s": n_patients * days / min(times),
        "patient_days_per_cpu_s": n_patients * days / min(cpu),
    }


def _time_floor(n_patients: int, days: int, repeats: int, parallel: bool) -> dict:
    """The compiled integrator alone over the same days (no env, controller or sensor)."""
    patients = _batch(n_patients)
    model = UVAPadova(patients, parallel=parallel)
    n_min = days * 1440
    carbs = FixedMealScenario(MEALS).schedule(patients, n_min)
    insulin = np.ascontiguousarray(patients.basal_u_per_min)
    model.advance_unchecked(model.initial_state(), carbs[:5], insulin)  # compile
    times, cpu = [], []
    for _ in range(repeats):
        state = model.initial_state()
        t0, c0 = time.perf_counter(), time.process_time()
        for t in range(0, n_min, 5):
            state = model.advance_unchecked(state, carbs[t : t + 5], insulin)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return _rates(n_patients, days, parallel, times, cpu)


def _time_simglucose(python: str, n_patients: int, days: int) -> dict | None:
    if not Path(python).exists():
        return None
    names = list(load_virtual_patients().names)
    # spread over age groups: adolescent#001, adult#001, child#001, adolescent#002, ...
    picked = [names[(i % 3) * 10 + i // 3] for i in range(n_patients)]
    out = subprocess.run(
        [python, "-c", _SIMGLUCOSE_SCRIPT, json.dumps([picked, days, list(MEALS)])],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:  # no simglucose in that interpreter: report it, time the rest
        print(f"simglucose not timed: {out.stderr.strip().splitlines()[-1]}", file=sys.stderr)
        return None
    seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('simglucose'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "version": version,
        "patients": picked,
        "days": days,
        "seconds": seconds,
        "patient_days_per_s": n_patients * days / sum(seconds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="30,300,1000,10000", help="patients per batch")
    ap.add_argument("--days", type=int, default=2, help="simulated days per run")
    ap.add_argument("--repeats", type=int, default=2, help="metamed repeats (best is kept)")
    ap.add_argument("--simglucose-python", default="/tmp/sgvenv/bin/python")
    ap.add_argument("--simglucose-patients", type=int, default=3)
    ap.add_argument("--simglucose-days", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]

    load_before = os.getloadavg()
    rows = []
    for n in sizes:
        # fewer repeats and days for the largest batches keep the run within minutes
        days = args.days if n <= 1000 else 1
        repeats = args.repeats if n <= 1000 else 1
        for parallel in (False, True):
            loop = _time_metamed(n, days, repeats, parallel)
            floor = _time_floor(n, days, repeats, parallel)
            rows.append({"closed_loop": loop, "compute_floor": floor})
            print(
                f"{n:>6} patients, {'threads' if parallel else '1 thread'}: closed loop "
                f"{loop['patient_days_per_s']:.0f}, floor {floor['patient_days_per_s']:.0f} "
                "patient-days/s",
                flush=True,
            )
    sg = _time_simglucose(args.simglucose_python, args.simglucose_patients, args.simglucose_days)
    load_after = os.getloadavg()
    sg_rate = sg["patient_days_per_s"] if sg else None
    result = {
        "benchmark": "sim_throughput",
        "protocol": {
            "meals_hour_grams": MEALS,
            "controller": "basal-bolus (Quest therapy)",
            "sensor": "GuardianRT (5 min, noisy)",
            "pump": "Insulet",
            "patient_step_min": 1,
        },
        "rows": rows,
        "simglucose": sg,
        "goal_patient_days_per_s": GOAL_PATIENT_DAYS_PER_S,
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "load_average_1min_before_after": [load_before[0], load_after[0]],
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        "# Simulator throughput (simulated patient-days per second)",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['platform']}, {m['cpu_count']} CPUs ({m['numba_threads']} numba "
        f"threads), Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}; 1-min load "
        f"average {load_before[0]:.1f} before / {load_after[0]:.1f} after (shared machine: "
        "absolute numbers vary with the load, the ratios are measured in this one run).",
        "",
        "Protocol: 24 h days, meals 07:00 50 g, 12:00 70 g, 15:30 15 g, 18:00 80 g; "
        "basal-bolus controller; GuardianRT CGM with noise; Insulet pump; 1-min model steps. "
        "Closed loop = the vector environment's rollout (reset included; each step is one "
        "compiled call for the whole batch: pump, model, insulin on board, CGM, reward, "
        "observation); compute floor = the compiled integrator alone over the same days. "
        "Per CPU-s = per second of process CPU time (all threads): the goal of 10,000/s "
        "on 2 cores needs 5,000 per CPU-s with both cores busy.",
        "",
        "| patients | model threads | closed loop, patient-days/s | compute floor, "
        "patient-days/s | loop / floor | vs simglucose | vs goal (10,000/s) | closed loop, "
        "patient-days per CPU-s | floor, patient-days per CPU-s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        loop, floor = row["closed_loop"], row["compute_floor"]
        rate = loop["patient_days_per_s"]
        vs_sg = f"{rate / sg_rate:.0f}x" if sg_rate else "n/a"
        lines.append(
            f"| {loop['n_patients']} | {m['numba_threads'] if loop['parallel'] else 1} | "
            f"{rate:.0f} | {floor['patient_days_per_s']:.0f} | "
            f"{rate / floor['patient_days_per_s']:.2f} | {vs_sg} | "
            f"{rate / GOAL_PATIENT_DAYS_PER_S:.2f}x | {loop['patient_days_per_cpu_s']:.0f} | "
            f"{floor['patient_days_per_cpu_s']:.0f} |"
        )
    if sg:
        lines.append(
            f"\nsimglucose {sg['version']}: {sg_rate:.3f} patient-days/s (one patient at a "
            f"time; timed {len(sg['patients'])} patients x {sg['days']} day)."
        )
    else:
        lines.append("\nsimglucose: not available in this run (no --simglucose-python).")
    (args.out / "sim_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
