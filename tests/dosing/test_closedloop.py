"""The fully closed loop: what it sees, its safety limits, and leave-patients-out adaptation."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing import ControlInput, get_controller, load_virtual_patients
from metamed.dosing.closedloop import (
    MAX_IOB_BASAL_HOURS,
    ClosedLoopAdapter,
    ClosedLoopController,
    ClosedLoopParameters,
    leave_patients_out_closed_loop,
    record_features,
)
from metamed.errors import MetamedValueError, NotFittedError

# three patients per age group in three stratified folds: each fold trains on two per
# group, so the training optima differ from their group's population values
NINE = [f"{g}#00{i}" for g in ("adult", "adolescent", "child") for i in (1, 2, 3)]


def _params(n: int, basal: float = 1.0, cf: float = 30.0, horizon: float = 60.0):
    return ClosedLoopParameters(np.full(n, basal), np.full(n, cf), np.full(n, horizon))


def _drive(ctrl: ClosedLoopController, cgm_steps: list[float], carbs: float = 0.0) -> np.ndarray:
    ctrl.reset()
    rate = np.zeros(ctrl.n_patients)
    for g in cgm_steps:
        rate = ctrl.act(
            ControlInput(np.full(ctrl.n_patients, g), np.full(ctrl.n_patients, carbs), 5.0)
        )
    return rate


def test_meal_announcement_is_ignored_and_a_rise_gets_insulin() -> None:
    ctrl = ClosedLoopController(_params(2))
    assert not ctrl.uses_meal_announcement
    rising = [130, 140, 150, 160, 170]
    with_carbs = _drive(ctrl, rising, carbs=60.0)
    without = _drive(ctrl, rising, carbs=0.0)
    np.testing.assert_array_equal(with_carbs, without)
    flat = _drive(ctrl, [130] * 5)
    assert np.all(without > flat) and np.all(flat >= 0)


def test_predicted_low_suspends_all_insulin() -> None:
    ctrl = ClosedLoopController(_params(3))
    np.testing.assert_array_equal(_drive(ctrl, [130, 120, 110, 100, 90]), 0.0)


def test_insulin_on_board_stays_within_its_limit() -> None:
    # a long steep rise asks for ever more insulin: the on-board limit caps it
    ctrl = ClosedLoopController(_params(1, basal=0.5, cf=5.0, horizon=120.0))
    ctrl.reset()
    for g in np.linspace(150, 400, 40):
        ctrl.act(ControlInput(np.array([g]), np.zeros(1), 5.0))
        assert ctrl.insulin_on_board_u[0] <= MAX_IOB_BASAL_HOURS * 0.5 + 1e-9


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(MetamedValueError, match="correction factors > 0"):
        ClosedLoopController(ClosedLoopParameters(np.ones(2), np.array([10.0, 0.0]), np.ones(2)))
    with pytest.raises(NotFittedError):
        ClosedLoopAdapter().adapt(0, None, ("adult",))


def _lpo(record_days: int, optima: np.ndarray):
    vp = load_virtual_patients(NINE)
    # a near-unpenalised mapping: with 6 training patients the default penalty grid may
    # shrink it to the population values, and a test of what moves it could not fail
    return leave_patients_out_closed_loop(
        vp, record_days=record_days, n_folds=3, record_seed=7, optima=optima, ridge_alphas=(1e-3,)
    )


@pytest.fixture(scope="module")
def optima() -> np.ndarray:
    rng = np.random.default_rng(0)
    vp = load_virtual_patients(NINE)
    basal = vp.basal_u_per_h * rng.uniform(0.8, 1.25, len(NINE))
    cf = vp.correction_factor_mg_dl_per_u * rng.uniform(0.8, 1.25, len(NINE))
    return np.stack([basal, cf, rng.choice([30.0, 60.0, 90.0], len(NINE))], axis=1)


@pytest.fixture(scope="module")
def two_days(optima):
    return _lpo(2, optima)


def test_held_out_patients_are_not_meta_trained_on(two_days, optima) -> None:
    res = two_days
    for f, adapter in enumerate(res.adapters):
        held_out = {n for n, k in zip(res.names, res.fold, strict=True) if k == f}
        assert held_out and held_out.isdisjoint(adapter.trained_on_)
    # the held-out patients' own optima do not move their adapted parameters ...
    test = res.fold == 0
    changed = optima.copy()
    changed[test] *= 3.0
    other = _lpo(2, changed)
    for key in ("0d", "1d", "2d"):
        np.testing.assert_allclose(
            other.parameters[key].as_array()[test], res.parameters[key].as_array()[test]
        )
    # ... while the training patients' optima do (the check above could fail)
    assert not np.allclose(
        other.parameters["0d"].as_array()[~test], res.parameters["0d"].as_array()[~test]
    )


def test_records_beyond_the_allowed_days_do_not_influence_adaptation(two_days, optima) -> None:
    one_day = _lpo(1, optima)
    np.testing.assert_allclose(
        one_day.parameters["1d"].as_array(), two_days.parameters["1d"].as_array()
    )
    np.testing.assert_allclose(
        one_day.parameters["0d"].as_array(), two_days.parameters["0d"].as_array()
    )
    # the records do move the estimate (the check above could fail)
    assert not np.allclose(
        two_days.parameters["1d"].as_array(), two_days.parameters["0d"].as_array()
    )


def test_features_need_matching_records() -> None:
    with pytest.raises(MetamedValueError, match="one shape"):
        record_features(np.ones((2, 288)), np.ones((2, 287)), 5.0)


def test_registered_without_meal_announcement_on_the_g2p2c_failure_rule() -> None:
    entry = get_controller("closed_loop")
    assert entry.meal_announcement == "no"
    assert dict(entry.env_options) == {"failure_signal": "cgm"}
