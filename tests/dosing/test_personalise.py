"""Meta-learned therapy personalisation."""

from __future__ import annotations

import numpy as np
import pytest

from metamed.dosing.controllers import BasalBolusController
from metamed.dosing.env import GlucoseVectorEnv, rollout
from metamed.dosing.patient import load_virtual_patients
from metamed.dosing.personalise import (
    PatientRecords,
    TherapyParameters,
    TherapyPersonaliser,
    action_curve,
    design_matrix,
    quest_parameters,
    records_from_simulation,
    stratified_folds,
)
from metamed.errors import MetamedValueError, NotFittedError

DT = 5.0


def _synthetic(n: int, days: float, rng: np.random.Generator):
    """Records from the model family itself, with known per-patient coefficients."""
    isf = rng.lognormal(np.log(40.0), 0.35, n)
    csf = rng.lognormal(np.log(4.0), 0.3, n)
    basal = rng.lognormal(np.log(1.0), 0.3, n)  # U/h that holds glucose flat
    c = isf * basal  # drift balanced by the basal insulin effect
    k = np.full(n, 0.3)
    steps = int(days * 1440 / DT)
    carbs = np.zeros((n, steps))
    for day in range(int(np.ceil(days))):
        for hour, grams in ((8, 50), (13, 70), (19, 80)):
            idx = int((day * 24 + hour + rng.uniform(-1, 1)) * 60 / DT)
            if idx < steps:
                carbs[:, idx] = grams * rng.uniform(0.6, 1.4, n)
    # the recording therapy: a fixed population basal and a rough bolus (varied carb counting)
    insulin = np.full((n, steps), 1.0 * DT / 60)
    insulin += carbs / 10.0 * rng.uniform(0.6, 1.4, (n, steps))
    ins_eff = np.zeros((n, steps))
    carb_eff = np.zeros((n, steps))
    a_i, a_c = action_curve(100.0, DT), action_curve(50.0, DT)
    for j in range(min(len(a_i), steps)):
        ins_eff[:, j:] += a_i[j] * insulin[:, : steps - j]
    for j in range(min(len(a_c), steps)):
        carb_eff[:, j:] += a_c[j] * carbs[:, : steps - j]
    g = np.empty((n, steps))
    level = np.full(n, 130.0)
    for t in range(steps):
        rate = (
            -isf * (level / 120.0) * ins_eff[:, t] / (DT / 60)
            + csf * carb_eff[:, t] / (DT / 60)
            + c
            - k * (level - 120.0)
        )
        level = np.clip(level + rate * DT / 60 + rng.normal(0, 1.0, n), 40, 400)
        g[:, t] = level
    therapy = TherapyParameters(basal, isf / csf, isf)  # CR = ISF / CSF, CF = ISF
    return PatientRecords(g, insulin, carbs, DT), therapy


def _rmse_log(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.log(np.asarray(a) / np.asarray(b)) ** 2)))


def test_action_curve_normalised_with_peak() -> None:
    w = action_curve(75.0, DT)
    assert w.sum() == pytest.approx(1.0)
    assert abs((np.argmax(w) + 0.5) * DT - 75.0) <= DT


def test_adaptation_beats_population_on_model_family() -> None:
    rng = np.random.default_rng(0)
    train, train_tp = _synthetic(24, 3, rng)
    test, test_tp = _synthetic(12, 3, rng)
    groups_tr, groups_te = ["adult"] * 24, ["adult"] * 12
    model = TherapyPersonaliser(insulin_peaks_min=(100.0,), carb_peaks_min=(50.0,))
    model.meta_fit(train, groups_tr, train_tp)
    pop = model.population(groups_te)
    adapted = model.adapt(test, groups_te)
    for attr in ("carb_ratio_g_per_u", "correction_factor_mg_dl_per_u", "basal_u_per_h"):
        err_pop = _rmse_log(getattr(pop, attr), getattr(test_tp, attr))
        err_ad = _rmse_log(getattr(adapted, attr), getattr(test_tp, attr))
        assert err_ad < 0.8 * err_pop, attr


@pytest.mark.parametrize("summaries", [False, True])
def test_zero_days_is_group_geometric_mean(summaries: bool) -> None:
    rng = np.random.default_rng(1)
    rec, tp = _synthetic(12, 1, rng)
    groups = ["adult"] * 6 + ["child"] * 6
    model = TherapyPersonaliser(
        insulin_peaks_min=(100.0,), carb_peaks_min=(50.0,), summary_features=summaries
    )
    model.meta_fit(rec, groups, tp)
    pop = model.adapt(rec.subset([6, 0]).first_days(0), ["child", "adult"])
    assert pop.carb_ratio_g_per_u[0] == pytest.approx(
        np.exp(np.log(tp.carb_ratio_g_per_u[6:]).mean())
    )
    assert pop.basal_u_per_h[1] == pytest.approx(np.exp(np.log(tp.basal_u_per_h[:6]).mean()))
    # with data the estimate moves away from the population value
    adapted = model.adapt(rec.subset([6]), ["child"])
    assert adapted.carb_ratio_g_per_u[0] != pytest.approx(pop.carb_ratio_g_per_u[0])


def test_errors_unfitted_and_unknown_group() -> None:
    with pytest.raises(NotFittedError):
        TherapyPersonaliser().adapt(None, ["adult"])
    rng = np.random.default_rng(2)
    rec, tp = _synthetic(6, 1, rng)
    model = TherapyPersonaliser(insulin_peaks_min=(100.0,), carb_peaks_min=(50.0,))
    model.meta_fit(rec, ["adult"] * 6, tp)
    with pytest.raises(MetamedValueError, match="not seen in meta-training"):
        model.adapt(None, ["child"])
    with pytest.raises(MetamedValueError, match="shape"):
        PatientRecords(np.zeros((2, 5)), np.zeros((2, 4)), np.zeros((2, 5)), 5.0)


def test_missing_tail_windows_are_ignored() -> None:
    rng = np.random.default_rng(3)
    rec, _ = _synthetic(2, 1, rng)
    cgm = rec.cgm_mg_dl.copy()
    cgm[0, 150:] = np.nan  # the episode ended early
    X, y = design_matrix(PatientRecords(cgm, rec.insulin_u, rec.carbs_g, DT), 100.0, 50.0)
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))
    n_used = np.count_nonzero(np.any(X[0] != 0, axis=1))
    assert 0 < n_used < np.count_nonzero(np.any(X[1] != 0, axis=1))


def test_stratified_folds_balanced() -> None:
    groups = ("adult",) * 10 + ("child",) * 10
    fold = stratified_folds(groups, 5)
    for f in range(5):
        assert np.sum((fold == f)[:10]) == 2 and np.sum((fold == f)[10:]) == 2
    with pytest.raises(MetamedValueError):
        stratified_folds(groups, 11)


def test_runs_on_simulator_records() -> None:
    vp = load_virtual_patients(["adult#001", "adult#002", "adult#003", "adult#004", "adult#005"])
    env = GlucoseVectorEnv(vp, days=0.5)
    quest = quest_parameters(vp)
    sim = rollout(BasalBolusController(vp.basal_u_per_h, 12.0, 40.0), env, seed=0)
    rec = records_from_simulation(sim)
    model = TherapyPersonaliser(insulin_peaks_min=(100.0,), carb_peaks_min=(50.0,), window_min=30)
    train = [0, 1, 2, 3]
    model.meta_fit(
        rec.subset(train),
        ["adult"] * 4,
        TherapyParameters(
            quest.basal_u_per_h[train],
            quest.carb_ratio_g_per_u[train],
            quest.correction_factor_mg_dl_per_u[train],
        ),
    )
    tp = model.adapt(rec.subset([4]), ["adult"])
    for value in (tp.basal_u_per_h, tp.carb_ratio_g_per_u, tp.correction_factor_mg_dl_per_u):
        assert np.all(np.isfinite(value)) and np.all(value > 0)


def test_run_dose_quick_writes_self_contained_report(tmp_path) -> None:
    from metamed.runs import run_dose

    messages: list[str] = []
    outputs = run_dose(
        ["basal_bolus", "personalised"],
        patients="adult",
        seed=3,
        out_dir=tmp_path,
        progress=messages.append,
        quick=True,
    )
    text = outputs.report_html.read_text()
    assert "All patients are simulated" in text
    assert text.count("data:image/png;base64,") == 2  # percentile bands + adaptation curve
    assert "personalised" in text and "oracle (Quest)" in text
    assert 'src="http' not in text  # self-contained
    assert (tmp_path / "per_patient_day.csv").exists() and messages


def test_run_dose_rejects_unknown_controller(tmp_path) -> None:
    from metamed.errors import UnknownNameError
    from metamed.runs import run_dose

    with pytest.raises(UnknownNameError, match="Did you mean 'pid'"):
        run_dose(["pdi"], out_dir=tmp_path, quick=True)


def test_dose_report_reads_as_a_clinical_report(tmp_path) -> None:
    from metamed.runs import run_dose

    outputs = run_dose(["basal_bolus", "pid"], "adult#001", quick=True, out_dir=tmp_path)
    text = outputs.report_html.read_text()
    assert "basal_bolus (oracle)" in text  # the oracle says what it is
    assert "time in range 70-180 mg/dL (%)" in text  # clinical names, not column names
    assert "tir_pct" not in text and "below_54_pct" not in text
    assert '"sample_time_min"' not in text  # the protocol is a table, not raw JSON
    conclusion = text[text.index('id="conclusion"') : text.index("<h2>Controllers")]
    assert "kept glucose in range" in conclusion and "upper reference" in conclusion


def test_cautious_choice_gives_smaller_boluses_for_most_new_patients() -> None:
    """risk_aversion = 1: the carbohydrate ratio and correction factor move one
    leave-one-out error up (smaller boluses), so the patient's true ratio lies below the
    chosen one for most held-out patients (about Phi(1) = 84 % if the error is normal on
    the log scale), far more often than below the estimate itself; the basal keeps its
    estimate, and with no records nothing changes."""
    rng = np.random.default_rng(3)
    train, train_tp = _synthetic(40, 3, rng)
    test, test_tp = _synthetic(80, 3, rng)
    model = TherapyPersonaliser(insulin_peaks_min=(100.0,), carb_peaks_min=(50.0,))
    model.meta_fit(train, ["adult"] * 40, train_tp)
    groups = ["adult"] * 80
    estimate = model.adapt(test, groups)
    cautious = model.adapt(test, groups, risk_aversion=1.0)
    for attr, j in (("correction_factor_mg_dl_per_u", 0), ("carb_ratio_g_per_u", 1)):
        ratio = np.asarray(getattr(cautious, attr)) / np.asarray(getattr(estimate, attr))
        np.testing.assert_allclose(ratio, np.exp(model.loo_rmse_[j]))
        truth = np.asarray(getattr(test_tp, attr))
        covered = np.mean(truth <= np.asarray(getattr(cautious, attr)))
        assert covered >= 0.7 and covered > np.mean(truth <= np.asarray(getattr(estimate, attr)))
    np.testing.assert_array_equal(cautious.basal_u_per_h, estimate.basal_u_per_h)
    pop = model.adapt(None, groups[:3], risk_aversion=2.0)
    np.testing.assert_array_equal(pop.carb_ratio_g_per_u, model.population(groups[:3]).carb_ratio_g_per_u)
    with pytest.raises(MetamedValueError, match="risk_aversion"):
        model.adapt(test, groups, risk_aversion=-1.0)


def test_cautious_personalisation_is_a_controller_not_a_curve_point() -> None:
    import pandas as pd

    from metamed.dosing.evaluate import is_adaptation_curve
    from metamed.dosing.registry import controller_names

    assert "personalised_cautious" in controller_names()
    labels = pd.Series(["personalised_1d", "personalised_2d+plgs", "personalised",
                        "personalised_cautious", "personalised_cautious+plgs"])  # fmt: skip
    assert is_adaptation_curve(labels).tolist() == [True, True, False, False, False]
