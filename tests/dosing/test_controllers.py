"""Batched basal-bolus and PID controllers."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing.controllers import (
    BasalBolusController,
    ControlInput,
    LowGlucoseSuspend,
    PIDController,
)
from metamed.errors import MetamedValueError


def _inp(cgm, carbs=None, dt=5.0) -> ControlInput:
    cgm = np.asarray(cgm, dtype=float)
    carbs = np.zeros_like(cgm) if carbs is None else np.asarray(carbs, dtype=float)
    return ControlInput(cgm, carbs, dt)


def test_basal_bolus_dose_formula() -> None:
    ctrl = BasalBolusController([1.0, 0.5, 0.8], [10.0, 20.0, 15.0], [40.0, 80.0, 50.0])
    rate = ctrl.act(_inp([120.0, 200.0, 200.0], [0.0, 60.0, 30.0], dt=5.0))
    dt_h = 5.0 / 60.0
    delivered_u = rate * dt_h
    assert delivered_u[0] == pytest.approx(1.0 * dt_h)  # no meal: basal only, no correction
    # meal + correction above 150: 60/20 + (200-140)/80
    assert delivered_u[1] == pytest.approx(0.5 * dt_h + 3.0 + 0.75)
    assert delivered_u[2] == pytest.approx(0.8 * dt_h + 2.0 + 60.0 / 50.0)
    # no correction at or below 150 mg/dL
    below = ctrl.act(_inp([150.0, 150.0, 150.0], [10.0, 20.0, 15.0])) * dt_h
    assert below == pytest.approx(ctrl.basal_u_per_h * dt_h + 1.0)


def test_glucose_scaled_correction_brings_the_glucose_model_to_target() -> None:
    # Under insulin whose effect is proportional to the glucose, dG = -(CF / 120) G dU (the
    # personaliser's model, CF the drop per unit at 120 mg/dL), the scaled correction is the
    # dose that ends at the 140 mg/dL target; the linear one undershoots it from far above.
    cf = np.array([40.0, 40.0, 25.0])
    cgm = np.array([160.0, 280.0, 350.0])
    doses = {}
    for correction in ("linear", "glucose_scaled"):
        ctrl = BasalBolusController(np.zeros(3), 10.0, cf, correction=correction)
        doses[correction] = ctrl.bolus_u(cgm, np.full(3, 1e-9))  # a meal of ~0 g
    for correction, dose in doses.items():
        glucose = cgm.copy()
        for _ in range(20_000):  # the dose delivered in small steps
            glucose -= cf / 120.0 * glucose * dose / 20_000
        if correction == "glucose_scaled":
            assert glucose == pytest.approx(np.full(3, 140.0), rel=1e-3)
        else:  # below the target, the further the higher it started
            assert np.all(glucose < 140.0) and glucose[2] < glucose[1] < glucose[0]
    # near the target the two formulas agree within the ratio of reference to target
    ratio = doses["glucose_scaled"][0] / doses["linear"][0]
    assert 120.0 / 140.0 * 0.9 < ratio < 120.0 / 140.0 * 1.01


def test_correction_formula_must_be_known() -> None:
    with pytest.raises(MetamedValueError, match="glucose_scaled"):
        BasalBolusController(1.0, 10.0, 50.0, correction="log")


@pytest.mark.parametrize("dt", [1.0, 3.0, 5.0, 15.0])
def test_bolus_amount_independent_of_sample_time(dt: float) -> None:
    ctrl = BasalBolusController(0.0, 10.0, 50.0)
    delivered = ctrl.act(_inp([100.0], [50.0], dt=dt)) * dt / 60.0
    assert delivered[0] == pytest.approx(5.0)


def test_basal_bolus_validation() -> None:
    with pytest.raises(MetamedValueError):
        BasalBolusController([1.0, 1.0], [10.0, 10.0, 10.0], [50.0, 50.0])
    with pytest.raises(MetamedValueError):
        BasalBolusController([1.0], [0.0], [50.0])
    ctrl = BasalBolusController([1.0, 1.0], 10.0, 50.0)
    with pytest.raises(MetamedValueError, match="shape"):
        ctrl.act(_inp([100.0, 100.0, 100.0]))


def test_pid_direction_scaling_and_clipping() -> None:
    pid = PIDController([1.0, 1.0, 1.0], [25.0, 100.0, 50.0], kp_per_h=1.0, ki_per_h2=0.0, kd_h=0.0)
    rate = pid.act(_inp([220.0, 220.0, 120.0]))
    assert rate[2] == pytest.approx(1.0)  # at target: basal
    # 100 mg/dL above target = 4 CF for patient 0, 1 CF for patient 1
    assert rate[0] == pytest.approx(1.0 + 4.0) and rate[1] == pytest.approx(1.0 + 1.0)
    low = pid.act(_inp([40.0, 40.0, 40.0]))
    assert np.all(low >= 0.0) and low[0] == 0.0


def test_pid_integral_and_reset() -> None:
    pid = PIDController([1.0], [50.0], kp_per_h=0.0, ki_per_h2=1.0, kd_h=0.0)
    first = pid.act(_inp([180.0]))[0]
    second = pid.act(_inp([180.0]))[0]
    assert second > first > 1.0  # integral accumulates a persistent error
    pid.reset()
    assert pid.act(_inp([180.0]))[0] == pytest.approx(first)


def test_pid_anti_windup() -> None:
    pid = PIDController([0.5], [50.0], kp_per_h=1.0, ki_per_h2=1.0, kd_h=0.0)
    for _ in range(200):  # long hypo: output saturates at zero, the integral must not run away
        pid.act(_inp([60.0]))
    assert pid._integral_mg_dl_h[0] > -60.0
    assert pid.act(_inp([125.0]))[0] > 0.0


def test_batched_equals_looped() -> None:
    rng = np.random.default_rng(1)
    basal, cf = rng.uniform(0.3, 1.5, 5), rng.uniform(20, 120, 5)
    batch = PIDController(basal, cf)
    singles = [PIDController(basal[i], cf[i]) for i in range(5)]
    for _ in range(20):
        cgm = rng.uniform(60, 300, 5)
        joint = batch.act(_inp(cgm))
        looped = [singles[i].act(_inp(cgm[i : i + 1]))[0] for i in range(5)]
        np.testing.assert_allclose(joint, looped)


def test_stacked_controller_slices_and_hides_announcement() -> None:
    from metamed.dosing.controllers import StackedController

    bb = BasalBolusController([1.0, 1.0], 10.0, 50.0)
    pid = PIDController([1.0], [50.0], kp_per_h=0.0, ki_per_h2=0.0, kd_h=0.0)
    stacked = StackedController([bb, pid])
    rate = stacked.act(_inp([120.0, 120.0, 120.0], [50.0, 0.0, 50.0]))
    assert rate[0] == pytest.approx(1.0 + 5.0 * 12.0)  # 5 U over 5 min = 60 U/h
    assert rate[1] == pytest.approx(1.0)
    assert rate[2] == pytest.approx(1.0)  # PID never sees the announcement


def test_low_glucose_suspend_withholds_basal_while_a_low_is_predicted() -> None:
    # patient 0 falls 3 mg/dL per 5 min from 110 (30-min prediction below 80 from 95 on),
    # then recovers; patient 1 stays flat at 150 and is never touched
    inner = BasalBolusController([1.0, 0.8], [10.0, 10.0], [50.0, 50.0])
    guard = LowGlucoseSuspend(
        BasalBolusController([1.0, 0.8], [10.0, 10.0], [50.0, 50.0]), [1.0, 0.8]
    )
    falling = [110.0 - 3.0 * k for k in range(8)] + [89.0 + 6.0 * k for k in range(8)]
    suspended = []
    for k, g in enumerate(falling):
        carbs = [40.0, 0.0] if k == 6 else [0.0, 0.0]  # a meal while suspended
        expected = inner.act(_inp([g, 150.0], carbs))
        rate = guard.act(_inp([g, 150.0], carbs))
        assert rate[1] == expected[1]
        if guard.suspended[0]:
            # basal withheld, the meal bolus (4 U over 5 min) still delivered
            assert rate[0] == pytest.approx(max(expected[0] - 1.0, 0.0))
        else:
            assert rate[0] == expected[0]
        suspended.append(bool(guard.suspended[0]))
    assert not any(suspended[:5])  # 110 .. 98: prediction still at or above 80
    assert all(suspended[5:9])  # the fall and the first rise (trend fitted on 20 min)
    assert not suspended[-1]  # resumed on recovery
    assert guard.act(_inp([150.0, 150.0]))[0] == 1.0 or guard.suspended[0]
    guard.reset()
    assert not guard.suspended.any()


def test_low_glucose_suspend_prevents_lows_in_closed_loop() -> None:
    from metamed.dosing.env import GlucoseVectorEnv, rollout
    from metamed.dosing.patient import load_virtual_patients

    vp = load_virtual_patients(["adult#001", "adolescent#003", "child#002"])
    basal = 1.3 * vp.basal_u_per_h  # an over-dosed basal: the patients go low

    def run(wrap: bool):
        ctrl = BasalBolusController(basal, vp.carb_ratio_g_per_u, vp.correction_factor_mg_dl_per_u)
        ctrl = LowGlucoseSuspend(ctrl, basal) if wrap else ctrl
        env = GlucoseVectorEnv(vp, days=1, scenario="fixed", meal_announcement=True)
        return rollout(ctrl, env, seed=0)

    bare, guarded = run(False), run(True)
    assert bare.failed.any() and (bare.bg_mg_dl < 54.0).any()
    assert not guarded.failed.any()
    assert (guarded.bg_mg_dl >= 54.0).all()
    below_70 = [np.nanmean(r.bg_mg_dl < 70.0, axis=1) for r in (bare, guarded)]
    assert (below_70[1] < below_70[0]).all()


def test_low_glucose_suspend_checks_its_settings() -> None:
    inner = PIDController([1.0, 1.0], [50.0, 50.0])
    with pytest.raises(MetamedValueError, match="one rate per patient"):
        LowGlucoseSuspend(inner, [1.0, 1.0, 1.0])
    with pytest.raises(MetamedValueError, match="threshold_mg_dl must be a positive"):
        LowGlucoseSuspend(inner, [1.0, 1.0], threshold_mg_dl=float("nan"))
    with pytest.raises(MetamedValueError, match="wraps a Controller"):
        LowGlucoseSuspend("pid", [1.0])  # type: ignore[arg-type]
