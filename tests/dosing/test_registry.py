"""The controller registry: the protocol builds controllers from entries, not from names."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing import (
    ControllerEntry,
    DoseProtocol,
    PIDController,
    controller_names,
    evaluate_controllers,
    get_controller,
    register_controller,
)
from metamed.dosing.evaluate import summary_table
from metamed.dosing.patient import load_virtual_patients
from metamed.dosing.personalise import CAUTIOUS, TherapyParameters
from metamed.dosing.registry import _REGISTRY, ControllerContext
from metamed.errors import MetamedValueError, UnknownNameError


@pytest.fixture
def gentle_pid():
    entry = ControllerEntry(
        name="pid_gentle",
        build=lambda ctx: [
            (
                "pid_gentle",
                PIDController(
                    ctx.patients.basal_u_per_h,
                    ctx.patients.correction_factor_mg_dl_per_u,
                    kp_per_h=0.0,
                    ki_per_h2=0.0,
                    kd_h=0.0,
                ),
            )
        ],
        meal_announcement="no",
    )
    register_controller(entry)
    yield entry
    del _REGISTRY[entry.name]


def test_builtins_are_registered_in_order() -> None:
    assert controller_names()[:6] == (
        "basal_bolus",
        "pid",
        "population",
        "personalised",
        "personalised_cautious",
        "basal_bolus_g2p2c",
    )
    assert get_controller("basal_bolus_g2p2c").env_options["announce_ahead_min"] == 20


def test_a_registered_controller_runs_in_the_protocol(gentle_pid) -> None:
    res = evaluate_controllers(["pid", "pid_gentle"], ["adult#001"], DoseProtocol(days=1))
    df = res.per_patient_day.set_index("controller")
    assert set(df.index) == {"pid", "pid_gentle"}
    # no gains: the basal rate alone, which is not what the tuned PID does
    assert df.loc["pid_gentle", "tir_pct"] != df.loc["pid", "tir_pct"]
    table = summary_table(res)
    assert set(table.loc[table["controller"] == "pid_gentle", "meal_announcement"]) == {"no"}
    assert np.isfinite(df["tir_pct"]).all()


def test_registry_refuses_a_second_entry_of_a_name_and_suggests_names(gentle_pid) -> None:
    with pytest.raises(MetamedValueError, match="already registered"):
        register_controller(gentle_pid)
    with pytest.raises(UnknownNameError, match="Did you mean 'pid_gentle'"):
        get_controller("pid_gentel")


def test_every_controller_runs_behind_low_glucose_suspend(gentle_pid) -> None:
    res = evaluate_controllers(
        ["basal_bolus", "basal_bolus+plgs", "pid_gentle+plgs"], ["child#002"], DoseProtocol(days=1)
    )
    df = res.per_patient_day.set_index("controller")
    assert set(df.index) == {"basal_bolus", "basal_bolus+plgs", "pid_gentle+plgs"}
    assert "low-glucose suspend" in res.descriptions["basal_bolus+plgs"]
    # the suspend only ever withholds insulin: never more time below 70 than without it
    assert df.loc["basal_bolus+plgs", "below_70_pct"] <= df.loc["basal_bolus", "below_70_pct"]
    with pytest.raises(UnknownNameError, match="Did you mean 'pid_gentle'"):
        get_controller("pid_gentel+plgs")


def test_only_the_cautious_personalisation_scales_its_corrections() -> None:
    patients = load_virtual_patients().select(["adult#001", "child#004"])
    one = TherapyParameters(np.full(2, 1.0), np.full(2, 10.0), np.full(2, 50.0))
    therapy = {key: one for key in ("0d", "1d", "2d", "3d", f"3d{CAUTIOUS}")}
    ctx = ControllerContext(patients, 3, therapy)
    built = {
        label: ctrl
        for name in ("basal_bolus", "population", "personalised", "personalised_cautious")
        for label, ctrl in get_controller(name).build(ctx)
    }
    assert {label: c.correction for label, c in built.items()} == {
        "basal_bolus": "linear",
        "population": "linear",
        "personalised_1d": "linear",
        "personalised_2d": "linear",
        "personalised": "linear",
        "personalised_cautious": "glucose_scaled",
    }
