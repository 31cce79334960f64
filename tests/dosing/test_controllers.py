"""Batched basal-bolus and PID controllers."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing.controllers import (
    BasalBolusController,
    ControlInput,
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
