"""Throughput of the batched UVA/Padova simulator vs simglucose (simulated patients).

Measures simulated patient-days per second of wall time for the same closed-loop
protocol in both simulators: the 30 virtual patients, a fixed daily meal scenario
(07:00 50 g, 12:00 70 g, 15:30 15 g, 18:00 80 g), simglucose's basal-bolus controller,
GuardianRT CGM (5-min, noisy), Insulet pump, 1-minute patient steps.

- metamed: its one closed loop, :func:`metamed.dosing.env.rollout` of the batched
  :class:`~metamed.dosing.controllers.BasalBolusController` on the vector environment
  (one ``step`` call per CGM period for the whole batch), all 30 patients at once (and,
  for scale, 300 = 10 copies of each); the environment's reset is inside the timing.
- simglucose 0.2.11: its own ``T1DSimEnv`` + ``BBController`` loop, one patient at a time
  as it is designed, run in a subprocess with the interpreter given by ``--simglucose-python``
  (default ``/tmp/sgvenv/bin/python``; simglucose is not a metamed dependency).  Its cost
  per patient-day does not depend on the cohort, so a few patients are timed and the rate
  is reported per patient-day.

Usage::

    .venv/bin/python benchmarks/sim_throughput.py            # writes benchmarks/results/
    .venv/bin/python benchmarks/sim_throughput.py --days 2 --simglucose-patients 3

Before/after a change: run the script on the old source tree first (e.g. a
``git worktree`` of the old commit) with ``PYTHONPATH=<old tree>/src ... --out /tmp/before``,
then on the current tree with ``--before-json /tmp/before/sim_throughput.json``; both runs
time simglucose too, so each ratio is measured under the load of its own run.
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

import numpy as np

from metamed.dosing.controllers import BasalBolusController
from metamed.dosing.env import GlucoseVectorEnv, rollout
from metamed.dosing.patient import load_virtual_patients
from metamed.dosing.scenario import FixedMealScenario

MEALS = ((7.0, 50.0), (12.0, 70.0), (15.5, 15.0), (18.0, 80.0))
RESULTS = Path(__file__).with_name("results")

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


def _time_metamed(n_copies: int, days: int, repeats: int) -> dict:
    base = load_virtual_patients()
    patients = base.select(list(base.names) * n_copies)
    env = GlucoseVectorEnv(
        patients, days=days, scenario=FixedMealScenario(MEALS), random_init_bg=False
    )
    controller = BasalBolusController(
        patients.basal_u_per_h, patients.carb_ratio_g_per_u, patients.correction_factor_mg_dl_per_u
    )
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        rollout(controller, env, seed=r)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "n_patients": len(patients),
        "days": days,
        "seconds": times,
        "patient_days_per_s": len(patients) * days / best,
    }


def _merge(a: dict, b: dict) -> dict:
    seconds = a["seconds"] + b["seconds"]
    return {
        **a,
        "seconds": seconds,
        "patient_days_per_s": a["n_patients"] * a["days"] / min(seconds),
    }


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
        check=True,
    )
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
    ap.add_argument("--days", type=int, default=2, help="simulated days per run")
    ap.add_argument("--repeats", type=int, default=3, help="metamed repeats (best is kept)")
    ap.add_argument("--simglucose-python", default="/tmp/sgvenv/bin/python")
    ap.add_argument("--simglucose-patients", type=int, default=3)
    ap.add_argument("--simglucose-days", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--before-json",
        type=Path,
        default=None,
        help="result of this script on the previous code, shown as 'before'",
    )
    ap.add_argument("--before-label", default="previous code", help="what 'before' was")
    args = ap.parse_args()

    load_before = os.getloadavg()
    # metamed is timed before and after simglucose (best run kept) so that a burst of
    # load from other processes on a shared machine does not decide the ratio.
    ours30 = _time_metamed(1, args.days, args.repeats)
    ours300 = _time_metamed(10, args.days, args.repeats)
    sg = _time_simglucose(args.simglucose_python, args.simglucose_patients, args.simglucose_days)
    ours30 = _merge(ours30, _time_metamed(1, args.days, args.repeats))
    ours300 = _merge(ours300, _time_metamed(10, args.days, args.repeats))
    load_after = os.getloadavg()
    result = {
        "benchmark": "sim_throughput",
        "protocol": {
            "meals_hour_grams": MEALS,
            "controller": "simglucose basal-bolus (BBController rule)",
            "sensor": "GuardianRT (5 min, noisy)",
            "pump": "Insulet",
            "patient_step_min": 1,
        },
        "metamed_30_patients": ours30,
        "metamed_300_patients": ours300,
        "simglucose": sg,
        "speedup_30_patients": (
            ours30["patient_days_per_s"] / sg["patient_days_per_s"] if sg else None
        ),
        "speedup_300_patients": (
            ours300["patient_days_per_s"] / sg["patient_days_per_s"] if sg else None
        ),
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1min_before_after": [load_before[0], load_after[0]],
        },
    }
    before = json.loads(args.before_json.read_text()) if args.before_json else None
    if before is not None:
        result["before"] = {
            "label": args.before_label,
            "command": before.get("command"),
            "metamed_30_patients_per_s": before["metamed_30_patients"]["patient_days_per_s"],
            "metamed_300_patients_per_s": before["metamed_300_patients"]["patient_days_per_s"],
            "simglucose_per_s": (before.get("simglucose") or {}).get("patient_days_per_s"),
            "speedup_30_patients": before.get("speedup_30_patients"),
            "speedup_300_patients": before.get("speedup_300_patients"),
            "load_average_1min_before_after": before["machine"]["load_average_1min_before_after"],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sim_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Simulator throughput (simulated patient-days per second)",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpu_count']} CPUs, "
        f"Python {result['machine']['python']}, numpy {result['machine']['numpy']}; "
        f"1-min load average {load_before[0]:.1f} before / {load_after[0]:.1f} after "
        "(shared machine: absolute numbers vary, the ratio is measured in the same run).",
        "",
        "Protocol: 24 h days, meals 07:00 50 g, 12:00 70 g, 15:30 15 g, 18:00 80 g; "
        "basal-bolus controller; GuardianRT CGM with noise; Insulet pump; 1-min steps.",
        "",
        "| simulator | patients per call | patient-days/s | speed-up vs simglucose |",
        "|---|---|---|---|",
    ]
    for key in ("metamed_30_patients", "metamed_300_patients"):
        r = result[key]
        sp = result["speedup_30_patients" if "30_" in key else "speedup_300_patients"]
        lines.append(
            f"| metamed batched (numpy) | {r['n_patients']} | {r['patient_days_per_s']:.1f} | "
            + (f"{sp:.0f}x |" if sp else "n/a |")
        )
    if sg:
        lines.append(
            f"| simglucose {sg['version']} | 1 (timed {len(sg['patients'])} patients x "
            f"{sg['days']} day) | {sg['patient_days_per_s']:.3f} | 1x |"
        )
    else:
        lines.append("| simglucose | not available (no --simglucose-python) | - | - |")
    if before is not None:
        b = result["before"]

        def fmt(v: float | None, spec: str) -> str:
            return "n/a" if v is None else format(v, spec)

        lines += [
            "",
            f"## Before / after ({b['label']})",
            "",
            "Each row is its own run of this script (metamed and simglucose timed in the same "
            "run); the 'before' run used the previous source tree "
            f"(1-min load average {b['load_average_1min_before_after'][0]:.1f} / "
            f"{b['load_average_1min_before_after'][1]:.1f}).",
            "",
            "| code | 30 patients: patient-days/s | speed-up | 300 patients: patient-days/s "
            "| speed-up | simglucose patient-days/s |",
            "|---|---|---|---|---|---|",
            f"| before | {b['metamed_30_patients_per_s']:.1f} | "
            f"{fmt(b['speedup_30_patients'], '.0f')}x | {b['metamed_300_patients_per_s']:.1f} | "
            f"{fmt(b['speedup_300_patients'], '.0f')}x | {fmt(b['simglucose_per_s'], '.3f')} |",
            f"| after | {ours30['patient_days_per_s']:.1f} | "
            f"{fmt(result['speedup_30_patients'], '.0f')}x | "
            f"{ours300['patient_days_per_s']:.1f} | "
            f"{fmt(result['speedup_300_patients'], '.0f')}x | "
            f"{fmt(sg['patient_days_per_s'] if sg else None, '.3f')} |",
        ]
    (args.out / "sim_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
