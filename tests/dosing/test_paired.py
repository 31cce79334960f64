"""Paired evaluation: every controller sees the same meals and CGM noise per patient-day."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metamed.dosing import (
    BasalBolusController,
    DoseProtocol,
    GlucoseVectorEnv,
    PIDController,
    StackedController,
    evaluate_controllers,
    load_virtual_patients,
    rollout,
)
from metamed.dosing.evaluate import DoseResults
from metamed.report.dosing import paired_difference_table

NAMES = ["adult#001", "child#002"]


def _noise(sim, rows):  # CGM minus noise-free glucose = the sensor noise (where unclipped)
    return sim.cgm_mg_dl[rows] - sim.bg_mg_dl[rows]


def _stacked_run(seed: int):
    vp = load_virtual_patients(NAMES)
    batch = vp.select(NAMES * 2)  # rows 0-1: basal-bolus, rows 2-3: PID
    env = GlucoseVectorEnv(batch, days=0.5, paired_copies=True)
    ctrl = StackedController(
        [
            BasalBolusController(
                vp.basal_u_per_h, vp.carb_ratio_g_per_u, vp.correction_factor_mg_dl_per_u
            ),
            PIDController(vp.basal_u_per_h, vp.correction_factor_mg_dl_per_u),
        ]
    )
    return env, rollout(ctrl, env, seed=seed)


def test_controllers_share_meals_and_noise_per_patient_day() -> None:
    env, sim = _stacked_run(seed=7)
    assert not sim.failed.any()
    # the two controllers really acted differently ...
    assert not np.allclose(sim.insulin_u[0:2], sim.insulin_u[2:4])
    assert not np.allclose(sim.bg_mg_dl[0:2], sim.bg_mg_dl[2:4])
    # ... on the identical meal schedule and sensor-noise stream of each patient
    np.testing.assert_array_equal(env._meals_g[0:2], env._meals_g[2:4])
    np.testing.assert_array_equal(sim.carbs_g[0:2], sim.carbs_g[2:4])
    assert sim.carbs_g.sum() > 0
    np.testing.assert_allclose(_noise(sim, slice(0, 2)), _noise(sim, slice(2, 4)), atol=1e-9)
    # different patients and different days do not share draws
    assert not np.allclose(_noise(sim, [0]), _noise(sim, [1]))
    _, other_day = _stacked_run(seed=8)
    assert not np.allclose(_noise(sim, [0]), _noise(other_day, [0]))


def test_streams_independent_of_batch_composition() -> None:
    def trace(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        env = GlucoseVectorEnv(names, days=0.5, paired_copies=True)
        env.reset(seed=3)
        row = names.index("adult#001")
        meals = env._meals_g[row].copy()
        cgm = []
        for _ in range(env.horizon_steps):
            _, _, _, _, info = env.step(np.full((len(names), 1), 1.0))
            cgm.append(info["cgm_mg_dl"][row] - info["bg_mg_dl"][row])
        return meals, np.array(cgm)

    alone_meals, alone_noise = trace(["adult#001"])
    with_meals, with_noise = trace(["child#002", "adolescent#004", "adult#001"])
    np.testing.assert_array_equal(alone_meals, with_meals)
    np.testing.assert_allclose(alone_noise, with_noise, atol=1e-9)


def test_unpaired_copies_are_independent_draws() -> None:
    env = GlucoseVectorEnv(["adult#001", "adult#001"], days=0.5)
    env.reset(seed=3)
    assert not np.array_equal(env._meals_g[0], env._meals_g[1])


def test_paired_difference_table_from_evaluation() -> None:
    res = evaluate_controllers(
        ["basal_bolus", "pid"], ["adult#001", "adult#002", "child#001"], DoseProtocol(days=2)
    )
    table = paired_difference_table(res, pairs=[("basal_bolus", "pid")], n_boot=200)
    row = table[(table["age_group"] == "all") & (table["metric"] == "tir_pct")].iloc[0]
    df = res.per_patient_day
    per_patient = df.groupby(["controller", "patient"])["tir_pct"].mean().unstack(0)
    expected = float((per_patient["basal_bolus"] - per_patient["pid"]).mean())
    assert row["n_patients"] == 3
    assert np.isclose(row["mean_difference"], expected)
    assert row["ci_low"] <= row["mean_difference"] <= row["ci_high"]


def _fake_dose_results() -> DoseResults:
    """Per-patient-day metrics of four controllers on six patients: no simulation needed."""
    rng = np.random.default_rng(0)
    rows = []
    for patient in range(6):
        for controller, shift in (("basal_bolus", 8.0), ("personalised", 5.0), ("pid", -3.0)):
            for episode in range(3):
                rows.append(
                    {
                        "controller": controller,
                        "patient": f"adult#00{patient}",
                        "age_group": "adult" if patient < 3 else "child",
                        "episode": episode,
                        "tir_pct": 70 + shift + rng.normal(0, 5),
                        "below_54_pct": abs(rng.normal(1, 1)),
                        "failure_pct": 0.0,
                    }
                )
    frame = pd.DataFrame(rows)
    population = frame[frame["controller"] == "pid"].assign(controller="population")
    frame = pd.concat([frame, population.assign(tir_pct=population["tir_pct"] + 2)])
    return DoseResults(per_patient_day=frame, bg_mg_dl={}, protocol=DoseProtocol(days=3))


def test_paired_interval_does_not_depend_on_the_other_comparisons() -> None:
    # The old table drew every interval from one shared generator, so a pair's interval
    # moved when another pair, group or metric was asked for before it.
    res = _fake_dose_results()
    pair = ("personalised", "pid")
    alone = paired_difference_table(res, pairs=[pair], metrics=["tir_pct"], n_boot=300)
    among = paired_difference_table(
        res,
        pairs=[("basal_bolus", "personalised"), pair, ("personalised", "population")],
        metrics=["below_54_pct", "tir_pct"],
        n_boot=300,
    )
    among = among[(among["comparison"] == "personalised - pid") & (among["metric"] == "tir_pct")]
    cols = ["age_group", "mean_difference", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(
        alone[cols].reset_index(drop=True), among[cols].reset_index(drop=True)
    )
    assert (alone["ci_low"] < alone["mean_difference"]).all()
