"""Unit tests of the batched UVA/Padova patient model, devices, scenarios and runner."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from metamed.dosing.devices import CGMSensor, InsulinPump
from metamed.dosing.patient import (
    EAT_RATE_G_PER_MIN,
    UVAPadova,
    load_virtual_patients,
)
from metamed.dosing.scenario import FixedMealScenario, G2P2CMealScenario
from metamed.errors import MetamedTypeError, MetamedValueError, UnknownNameError


@pytest.fixture(scope="module")
def patients():
    return load_virtual_patients()


def test_load_all_and_groups(patients):
    assert len(patients) == 30
    assert patients.names[0] == "adolescent#001" and patients.names[-1] == "child#010"
    assert [len(load_virtual_patients(g)) for g in ("adolescent", "adult", "child")] == [10] * 3
    sub = load_virtual_patients(["child#003", "adult#001"])
    assert sub.names == ("child#003", "adult#001")
    assert sub.age_group == ("child", "adult")
    i = patients.names.index("child#003")
    assert sub.body_weight_kg[0] == patients.body_weight_kg[i]
    assert sub.initial_state_x[:, 0].tolist() == patients.initial_state_x[:, i].tolist()
    # basal = u2ss * BW / 6000 U/min (simglucose BBController)
    np.testing.assert_allclose(
        patients.basal_u_per_h, patients.params["u2ss"] * patients.params["BW"] / 6000 * 60
    )
    assert np.all(patients.carb_ratio_g_per_u > 0) and np.all(patients.total_daily_insulin_u > 0)


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError, match="adult#001"):
        load_virtual_patients(["adult#01"])
    with pytest.raises(MetamedValueError):
        load_virtual_patients([])


def test_steady_state_is_stationary(patients):
    model = UVAPadova(patients)
    state = model.initial_state()
    g0 = model.plasma_glucose_mg_dl(state)
    np.testing.assert_allclose(g0, patients.params["Gb"], rtol=1e-6)
    for _ in range(120):
        state = model.step(state, 0.0, model.basal_u_per_min)
    np.testing.assert_allclose(model.plasma_glucose_mg_dl(state), g0, atol=1e-3)
    assert state.t_min == 120


def test_step_does_not_mutate_and_batch_is_independent(patients):
    model = UVAPadova(patients)
    s0 = model.initial_state()
    x_before = s0.x.copy()
    carbs = np.zeros(30)
    carbs[4] = 60.0
    s1 = model.step(s0, carbs, model.basal_u_per_min)
    np.testing.assert_array_equal(s0.x, x_before)
    # patient 4 alone: same trajectory as inside the batch
    single = load_virtual_patients([patients.names[4]])
    m1 = UVAPadova(single)
    t1 = m1.step(m1.initial_state(), [60.0], single.basal_u_per_min)
    np.testing.assert_allclose(t1.x[:, 0], s1.x[:, 4], rtol=1e-12, atol=1e-12)


def test_meal_is_eaten_at_five_grams_per_minute(patients):
    model = UVAPadova(load_virtual_patients(["adult#001"]))
    s = model.initial_state()
    s = model.step(s, [23.0], model.basal_u_per_min)
    eaten = [float(s.last_eaten_g[0])]
    for _ in range(6):
        s = model.step(s, [0.0], model.basal_u_per_min)
        eaten.append(float(s.last_eaten_g[0]))
    assert eaten == [5.0, 5.0, 5.0, 5.0, 3.0, 0.0, 0.0]
    assert EAT_RATE_G_PER_MIN == 5.0
    assert s.meal_eaten_g[0] == pytest.approx(23.0)
    assert not s.is_eating[0]
    # the ingested glucose is in the stomach/gut (mg), minus what already went on
    assert s.x[0, 0] + s.x[1, 0] + s.x[2, 0] > 0.9 * 23_000 * 0.5


def test_integrator_matches_tight_ode_solution(patients):
    """One minute of the split exact/Runge-Kutta integrator vs scipy's Radau at rtol 1e-10."""
    model = UVAPadova(patients)
    state = model.initial_state()
    carbs = np.full(30, 40.0)
    insulin = model.basal_u_per_min + 0.5
    for _ in range(30):  # move into a meal + bolus transient
        state = model.step(state, carbs, insulin)
        carbs = np.zeros(30)
    to_eat = np.minimum(EAT_RATE_G_PER_MIN, state.planned_carbs_g)
    dbar = state.meal_start_qsto_mg + 1000 * (state.meal_eaten_g + to_eat)
    nxt = model.step(state, 0.0, insulin)

    def f(_t, flat):
        return model.derivatives(flat.reshape(13, 30), to_eat, insulin, dbar).ravel()

    ref = solve_ivp(f, (0, 1), state.x.ravel(), method="Radau", rtol=1e-10, atol=1e-10)
    x_ref = ref.y[:, -1].reshape(13, 30)
    g_err = np.abs(nxt.x[3] - x_ref[3]) / patients.params["Vg"]
    assert g_err.max() < 1e-3  # mg/dL per minute
    np.testing.assert_allclose(nxt.x[5:12], x_ref[5:12], rtol=1e-7, atol=1e-9)


def test_insulin_lowers_and_carbs_raise_glucose(patients):
    model = UVAPadova(patients)
    n_min = 240
    base = np.tile(model.basal_u_per_min, (n_min, 1))
    s0 = model.initial_state()
    _, basal_only = model.run(s0, np.zeros((n_min, 30)), base)
    more = base.copy()
    more[0] += 2.0  # 2 U bolus in the first minute
    _, with_bolus = model.run(s0, np.zeros((n_min, 30)), more)
    meal = np.zeros((n_min, 30))
    meal[0] = 50.0
    _, with_meal = model.run(s0, meal, base)
    assert np.all(with_bolus.plasma_glucose_mg_dl[-1] < basal_only.plasma_glucose_mg_dl[-1] - 5)
    assert np.all(
        with_meal.plasma_glucose_mg_dl.max(0) > basal_only.plasma_glucose_mg_dl.max(0) + 10
    )


def test_bad_inputs_raise(patients):
    model = UVAPadova(patients)
    s = model.initial_state()
    with pytest.raises(MetamedValueError, match="insulin_u_per_min"):
        model.step(s, 0.0, -1.0)
    with pytest.raises(MetamedValueError, match="carbs_g"):
        model.step(s, np.nan, 0.0)
    with pytest.raises(MetamedValueError):
        UVAPadova(patients, substeps=0)
    with pytest.raises(MetamedTypeError):
        UVAPadova("adult#001")  # type: ignore[arg-type]
    with pytest.raises(MetamedValueError, match=r"\(T, N\)"):
        model.run(s, np.zeros((5, 3)), np.zeros((5, 3)))


def test_random_initial_state_is_seeded(patients):
    model = UVAPadova(patients)
    a = model.initial_state(np.random.default_rng(3))
    b = model.initial_state(np.random.default_rng(3))
    c = model.initial_state(np.random.default_rng(4))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x[3], c.x[3])
    np.testing.assert_array_equal(a.x[5:12], model.initial_state().x[5:12])


def test_cgm_noise_seeded_and_clipped():
    g = np.full(4, 120.0)
    s1 = CGMSensor("Dexcom", 4, np.random.default_rng(0))
    s2 = CGMSensor("Dexcom", 4, np.random.default_rng(0))
    r1 = np.array([s1.measure(g) for _ in range(200)])
    r2 = np.array([s2.measure(g) for _ in range(200)])
    np.testing.assert_array_equal(r1, r2)
    assert s1.sample_time_min == 3.0
    noise = r1 - 120.0
    assert 3.0 < noise.std() < 30.0
    # consecutive 3-min readings are strongly autocorrelated (AR(1) + cubic spline)
    assert np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1] > 0.8
    low = CGMSensor("GuardianRT", 4, noise=False).measure(np.array([10.0, 50, 700, 100]))
    np.testing.assert_array_equal(low, [39.0, 50.0, 600.0, 100.0])
    with pytest.raises(MetamedTypeError):
        CGMSensor("Dexcom", 4)  # noisy sensor without a generator
    with pytest.raises(UnknownNameError, match="Dexcom"):
        CGMSensor("Dexcomm", 4, noise=False)


def test_pump_limits():
    pump = InsulinPump("Insulet")
    np.testing.assert_allclose(pump.basal(np.array([-1.0, 0.02, 100.0])), [0.0, 0.02, 30.0])
    assert pump.deliver(0.01, 0.5) == pytest.approx(0.51)


def test_fixed_scenario_repeats_daily(patients):
    sc = FixedMealScenario([(7, 50), (12.5, 70)])
    carbs = sc.schedule(patients, 2 * 1440)
    assert carbs.shape == (2880, 30)
    assert carbs[420, 0] == 50 and carbs[750, 5] == 70 and carbs[1440 + 420, 29] == 50
    assert carbs.sum() == 2 * 120 * 30
    shifted = sc.schedule(patients, 60, start_minute=400)
    assert shifted[20, 0] == 50 and shifted.sum() == 50 * 30


def test_g2p2c_scenario(patients):
    sc = G2P2CMealScenario()
    a = sc.schedule(patients, 20 * 1440, np.random.default_rng(7))
    b = sc.schedule(patients, 20 * 1440, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    daily = a.reshape(20, 1440, 30)
    # no snacks by default: at most 3 meals a day, inside the main-meal windows
    assert (daily > 0).sum(axis=1).max() <= 3
    minutes = np.nonzero(daily.sum(axis=(0, 2)))[0]
    assert minutes.min() >= 7 * 60 and minutes.max() <= 21 * 60
    child = np.array([g == "child" for g in patients.age_group])
    assert daily[:, :, child].sum() < daily[:, :, ~child].sum()  # children eat less
    # adult lunch amounts lie within 85 +/- 15 g
    lunch = daily[:, 12 * 60 : 14 * 60 + 1, ~child]
    assert lunch[lunch > 0].min() >= 70 and lunch[lunch > 0].max() <= 100
    with_snacks = G2P2CMealScenario(snack_probability=1.0, main_meal_probability=1.0)
    s = with_snacks.schedule(patients, 1440, np.random.default_rng(0)).reshape(1440, 30)
    assert np.all((s > 0).sum(axis=0) == 6)
    with pytest.raises(MetamedValueError):
        sc.schedule(patients, 100)  # random scenario without a generator


def test_simulate_basal_bolus_runs_and_controls(
    patients, simglucose_simulate, simglucose_basal_bolus
):
    res = simglucose_simulate(
        patients,
        simglucose_basal_bolus(patients),
        FixedMealScenario([(7, 50), (12, 70), (18, 80)]),
        days=1,
    )
    assert res.plasma_glucose_mg_dl.shape == (289, 30)
    assert res.insulin_u_per_min.shape == (288, 30)
    # a bolus follows each meal one step later; total insulin ~ basal*24h + carbs/CR
    total_u = res.insulin_u_per_min.sum(0) * 5
    expected = patients.basal_u_per_min * 1440 + 200 / patients.carb_ratio_g_per_u
    # (the pump rounds each minute's rate to 0.05 pmol/min: < 0.01 U a day)
    assert np.all(total_u >= expected - 0.01)
    # (simglucose's basal-bolus rule drives some children below 40 mg/dL: no lower bound here)
    assert np.all(res.plasma_glucose_mg_dl > 0) and np.all(res.plasma_glucose_mg_dl < 600)
    noisy = simglucose_simulate(
        patients,
        simglucose_basal_bolus(patients),
        FixedMealScenario(),
        days=0.5,
        sensor=CGMSensor("Dexcom", 30, np.random.default_rng(0)),
    )
    assert noisy.t_min[-1] == 720 and np.any(noisy.cgm_mg_dl != noisy.subcutaneous_glucose_mg_dl)
    with pytest.raises(MetamedValueError, match="multiple"):
        simglucose_simulate(
            patients, simglucose_basal_bolus(patients), FixedMealScenario(), days=1.001
        )


def test_fused_advance_matches_minute_steps() -> None:
    # advance_unchecked (one call per sensor period) must equal M single-minute steps,
    # through a meal (bookkeeping inside the fused loop) and with 2 sub-steps
    vp = load_virtual_patients(["adult#001", "child#003", "adolescent#007"])
    rng = np.random.default_rng(0)
    for substeps in (1, 2):
        model = UVAPadova(vp, substeps=substeps)
        fused = stepped = model.initial_state(rng)
        carbs = np.zeros((60, 3))
        carbs[7] = [60.0, 0.0, 25.0]
        carbs[31] = [0.0, 40.0, 0.0]
        for k in range(12):
            ins = rng.uniform(0.0, 0.2, size=3)
            fused = model.advance_unchecked(fused, carbs[5 * k : 5 * k + 5], ins)
            for j in range(5):
                stepped = model.step_unchecked(stepped, carbs[5 * k + j], ins)
        np.testing.assert_allclose(fused.x, stepped.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(fused.meal_eaten_g, stepped.meal_eaten_g)
        assert fused.t_min == stepped.t_min == 60


def test_parallel_kernel_matches_serial_kernel() -> None:
    # the threaded kernel runs the same per-patient code (compiled separately, so fused
    # multiply-adds may round differently: equal to a few ulp)
    vp = load_virtual_patients(["adult#001", "child#003", "adolescent#007", "adult#009"])
    rng = np.random.default_rng(1)
    serial, threaded = UVAPadova(vp), UVAPadova(vp, parallel=True)
    a = b = serial.initial_state(rng)
    carbs = np.zeros((5, 4))
    for k in range(24):
        carbs[0] = [40.0, 0.0, 0.0, 70.0] if k == 2 else 0.0
        ins = rng.uniform(0.0, 0.2, size=4)
        a = serial.advance_unchecked(a, carbs, ins)
        b = threaded.advance_unchecked(b, carbs, ins)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a.meal_eaten_g, b.meal_eaten_g, rtol=1e-12)
    assert a.meal_eaten_g.max() > 0  # meals went through the kernel's bookkeeping


def test_a_patient_advances_the_same_in_any_lane_of_any_batch() -> None:
    # the kernel advances patients in blocks of LANES, padding the last: a patient's
    # trajectory must not depend on its lane, its block or the padding beside it
    from metamed.dosing._kernel import LANES

    base = load_virtual_patients()
    names = [base.names[(7 * i) % len(base)] for i in range(2 * LANES + 3)]
    batch = UVAPadova(load_virtual_patients(names))
    rng = np.random.default_rng(2)
    carbs = np.zeros((5, len(names)))
    state = batch.initial_state()
    insulin = rng.uniform(0.0, 0.2, size=(24, len(names)))
    for k in range(24):
        carbs[0] = 60.0 * (np.arange(len(names)) % 3 == k % 3) if k in (2, 9) else 0.0
        state = batch.advance_unchecked(state, carbs, insulin[k])
    for i in (0, LANES - 1, LANES, len(names) - 1):  # first and last lanes, the padded block
        alone = UVAPadova(load_virtual_patients([names[i]]))
        one = alone.initial_state()
        for k in range(24):
            own = np.zeros((5, 1))
            own[0] = 60.0 * (i % 3 == k % 3) if k in (2, 9) else 0.0
            one = alone.advance_unchecked(one, own, insulin[k, i : i + 1])
        np.testing.assert_array_equal(one.x[:, 0], state.x[:, i])
    assert state.meal_eaten_g.max() > 0


def test_insulin_propagator_has_the_zeros_the_kernel_skips() -> None:
    from metamed.dosing._kernel import INSULIN_NONZERO

    model = UVAPadova(load_virtual_patients())
    used = np.zeros((7, 9), dtype=bool)
    for row in INSULIN_NONZERO:
        for r, col in row:
            used[r, col] = True
    assert np.all(model._half_prop[:, ~used] == 0.0)
    assert np.all(model._half_prop[:, used] != 0.0)  # and no nonzero entry is missing
