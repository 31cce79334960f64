"""The G2P2C-protocol pieces: TDI-rule therapy, correction cooldown, early announcement."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing import BasalBolusController, ControlInput, GlucoseVectorEnv
from metamed.dosing.controllers import tdi_rule_therapy
from metamed.dosing.evaluate import DoseProtocol, evaluate_controllers, g2p2c_scoring_table
from metamed.errors import MetamedValueError


def test_tdi_rule_therapy_values() -> None:
    basal, cr, cf = tdi_rule_therapy([50.0, 20.0])
    np.testing.assert_allclose(basal, [1.0, 0.4])  # 0.48 * TDI / 24 U/h
    np.testing.assert_allclose(cr, [10.0, 25.0])
    np.testing.assert_allclose(cf, [36.0, 90.0])
    with pytest.raises(MetamedValueError):
        tdi_rule_therapy([0.0])


def test_correction_cooldown_blocks_corrections_within_three_hours() -> None:
    ctrl = BasalBolusController([1.0], [10.0], [50.0], correction_cooldown_min=180.0)
    high = np.array([250.0])

    def bolus(carbs: float) -> float:
        return float(ctrl.act(ControlInput(high, np.array([carbs]), 5.0))[0] - 1.0) * 5 / 60

    assert bolus(50.0) == pytest.approx(5.0 + 110.0 / 50.0)  # no meal before: corrected
    for _ in range(35):  # 35 more decisions = 175 min
        bolus(0.0)
    assert bolus(50.0) == pytest.approx(5.0)  # meal 180 min ago: no correction
    for _ in range(36):
        bolus(0.0)
    assert bolus(50.0) == pytest.approx(5.0 + 110.0 / 50.0)  # 185 min: corrected again


def test_meals_announced_ahead_of_time() -> None:
    kwargs = dict(days=0.6, scenario="fixed", sensor_noise=False)
    on_time = GlucoseVectorEnv(["adult#001"], **kwargs)
    early = GlucoseVectorEnv(["adult#001"], announce_ahead_min=20, **kwargs)
    on_time.reset(seed=0)
    early.reset(seed=0)
    seen_on_time, seen_early = [], []
    for _ in range(on_time.horizon_steps):
        seen_on_time.append(on_time.upcoming_carbs_g()[0])
        seen_early.append(early.upcoming_carbs_g()[0])
        on_time.step(np.array([[1.0]]))
        early.step(np.array([[1.0]]))
    k_on, k_early = np.flatnonzero(seen_on_time), np.flatnonzero(seen_early)
    np.testing.assert_array_equal(k_early + 4, k_on)  # 20 min = 4 steps earlier
    assert k_on.size == 2  # 07:00 and 12:00 within the 14.4 h horizon


def test_g2p2c_controllers_evaluated_and_scored() -> None:
    res = evaluate_controllers(
        ["basal_bolus_g2p2c"], ["adult#001", "adult#002"], DoseProtocol(days=1)
    )
    labels = set(res.per_patient_day["controller"])
    assert labels == {"basal_bolus_g2p2c", "basal_bolus_quest_g2p2c"}
    table = g2p2c_scoring_table(res)
    assert set(table["controller"]) == labels
    assert table["cgm_tir_completed_pct"].between(0, 100).all()
