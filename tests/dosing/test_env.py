"""Gymnasium glucose-dosing environments."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metamed.dosing.env import ENV_ID, GlucoseDosingEnv, GlucoseVectorEnv
from metamed.dosing.patient import load_virtual_patients
from metamed.errors import MetamedValueError, UnknownNameError


def test_check_env_passes() -> None:
    env = GlucoseDosingEnv("adult#001", days=0.1)
    check_env(env, skip_render_check=True)


def test_registered_single_and_vector() -> None:
    env = gym.make(ENV_ID, patient="child#002", days=0.05)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    vec = gym.make_vec(
        ENV_ID, num_envs=10, vectorization_mode="vector_entry_point", patients="adult", days=0.05
    )
    obs, info = vec.reset(seed=0)
    assert obs.shape == (10, 14) and info["bg_mg_dl"].shape == (10,)


def _trace(dt: int, hours: float = 10.0) -> np.ndarray:
    """Noise-free BG every 15 min at basal rate with the fixed meal plan (breakfast at 8 h)."""
    env = GlucoseVectorEnv(
        load_virtual_patients(["adult#003", "child#004"]),
        days=hours / 24,
        sample_time_min=dt,
        scenario="fixed",
        sensor_noise=False,
        random_init_bg=False,
    )
    env.reset(seed=0)
    out = []
    for _ in range(env.horizon_steps):
        _, _, term, _, info = env.step(env.patients.basal_u_per_h[:, None])
        assert not term.any()
        if info["t_min"][0] % 15 == 0:
            out.append(info["bg_mg_dl"])
    return np.array(out)


def test_meal_and_insulin_accounting_independent_of_sample_time() -> None:
    ref = _trace(1)
    assert ref.max() - ref.min() > 20.0  # meals really moved glucose in the window
    for dt in (3, 5):
        np.testing.assert_allclose(_trace(dt), ref, rtol=1e-9)


def test_action_is_rate_in_units_per_hour() -> None:
    env = GlucoseVectorEnv("adult", days=0.1, meal_announcement=False)
    env.reset(seed=0)
    bolus_u = 4.0
    obs, *_ = env.step(np.full((10, 1), bolus_u * 60.0 / env.sample_time_min))
    # insulin on board right after delivery: about the whole bolus (a little has acted)
    assert np.all(obs[:, -1] > 0.95 * bolus_u) and np.all(obs[:, -1] <= bolus_u + 1e-6)


def test_seeding_reproducible_and_seed_sensitive() -> None:
    env = GlucoseVectorEnv(["adult#001", "adolescent#002"], days=0.2)

    def run(seed: int) -> np.ndarray:
        obs, _ = env.reset(seed=seed)
        rows = [obs]
        for _ in range(10):
            obs, *_ = env.step(np.ones((2, 1)))
            rows.append(obs)
        return np.array(rows)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_early_termination_never_pays() -> None:
    env = GlucoseVectorEnv(["adult#001", "adult#001"], days=0.5, sensor_noise=False)
    env.reset(seed=0)
    returns = np.zeros(2)
    done = np.zeros(2, dtype=bool)
    basal = env.patients.basal_u_per_h
    for _ in range(env.horizon_steps):
        # patient 0: basal; patient 1: a massive overdose that ends the episode early
        action = np.array([[basal[0]], [25.0]])
        _, reward, term, trunc, info = env.step(action)
        returns += np.where(done, 0.0, reward)
        done |= term | trunc
    assert info["t_min"][0] == env.horizon_min or done[0]
    assert returns[1] < returns[0]
    # the failing episode is charged at least the worst case for its remaining steps
    assert returns[1] <= -env.horizon_steps * 0.5


def test_vector_autoreset_next_step() -> None:
    env = GlucoseVectorEnv(["adult#001", "adult#002"], days=0.3, sensor_noise=False)
    env.reset(seed=0)
    terminated = np.zeros(2, dtype=bool)
    for _ in range(env.horizon_steps):
        _, _, terminated, _, info = env.step(np.array([[0.0], [300.0]]))
        if terminated[1]:
            break
    assert terminated[1], "the 300 U/h patient should hit severe hypoglycaemia"
    _, reward, term, trunc, info = env.step(np.array([[0.0], [0.0]]))
    assert info["t_min"][1] == 0 and reward[1] == 0.0 and not term[1] and not trunc[1]


def test_bad_configuration_raises() -> None:
    with pytest.raises(MetamedValueError, match="sample_time_min"):
        GlucoseVectorEnv("adult", sample_time_min=0)
    with pytest.raises(MetamedValueError, match="scenario"):
        GlucoseVectorEnv("adult", scenario="weekend")


def test_one_patients_failure_does_not_change_the_others() -> None:
    def run(overdose: float) -> np.ndarray:
        env = GlucoseVectorEnv(["adult#001", "adult#001"], days=0.5)
        env.reset(seed=4)
        out = []
        for _ in range(env.horizon_steps):
            obs, *_ = env.step(np.array([[1.0], [overdose]]))
            out.append(obs[0])
        return np.array(out)

    np.testing.assert_array_equal(run(1.0), run(300.0))


@pytest.mark.parametrize("gymnasium_first", [False, True])
def test_import_metamed_registers_the_env_and_stays_cheap(gymnasium_first: bool) -> None:
    # a fresh interpreter: this test process has imported metamed.dosing long ago
    # `import metamed` alone must not pull in numpy, Gymnasium or the dosing package
    heavy = ["metamed.dosing"] if gymnasium_first else ["metamed.dosing", "gymnasium", "numpy"]
    code = (
        "import sys\n" + ("import gymnasium\n" if gymnasium_first else "") + "import metamed\n"
        f"heavy = set({heavy!r}) & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "import gymnasium as gym\n"
        "env = gym.make('metamed/GlucoseDosing-v0', patient='child#002', days=0.05)\n"
        "obs, _ = env.reset(seed=0)\n"
        "vec = gym.make_vec('metamed/GlucoseDosing-v0', num_envs=3,\n"
        "                   vectorization_mode='vector_entry_point', days=0.05)\n"
        "print(obs.shape, vec.reset(seed=0)[0].shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(14,)", "(3,", "14)"]


def test_reset_option_patient_chooses_the_task() -> None:
    env = GlucoseDosingEnv("adult#001", days=0.1)
    switched, _ = env.reset(seed=4, options={"patient": "child#002"})
    assert env.patient == "child#002"
    fresh, _ = GlucoseDosingEnv("child#002", days=0.1).reset(seed=4)
    np.testing.assert_array_equal(switched, fresh)  # the same task and seed: the same episode
    back, _ = env.reset(seed=4, options={"patient": "adult#001"})
    first, _ = GlucoseDosingEnv("adult#001", days=0.1).reset(seed=4)
    np.testing.assert_array_equal(back, first)

    # without a seed a switch is still reproducible from the last seed
    def unseeded_switches() -> list[np.ndarray]:
        e = GlucoseDosingEnv("adult#001", days=0.1)
        e.reset(seed=9)
        return [e.reset(options={"patient": p})[0] for p in ("child#001", "adult#003")]

    for a, b in zip(unseeded_switches(), unseeded_switches(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_vector_reset_option_patients_replaces_the_batch() -> None:
    env = GlucoseVectorEnv("adult", days=0.1)
    obs, info = env.reset(seed=0, options={"patients": "child"})
    assert env.patients.age_group == ("child",) * 10 and obs.shape == (10, 14)
    alone, _ = GlucoseVectorEnv("child", days=0.1).reset(seed=0)
    np.testing.assert_array_equal(obs, alone)
    with pytest.raises(MetamedValueError, match="one patient per row"):
        env.reset(options={"patients": ["adult#001"]})


def test_unknown_reset_options_are_rejected() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'patient'"):
        GlucoseDosingEnv("adult#001", days=0.1).reset(options={"patients": ["child#001"]})
    with pytest.raises(UnknownNameError, match="reset option 'meals'"):
        GlucoseVectorEnv("adult", days=0.1).reset(options={"meals": "fixed"})


@pytest.mark.parametrize("scenario", ["random", "fixed"])
def test_observations_stay_within_finite_bounds(scenario: str) -> None:
    """The observation space is bounded (sensor range, insulin on board at the pump's
    largest rate, a day's meals) and every observation lies inside it: through a
    morning of meals at a basal rate, then at the pump's largest rate until the
    episode ends."""
    env = GlucoseDosingEnv("adult#001", days=1.0, scenario=scenario, sample_time_min=5)
    space = env.observation_space
    assert np.all(np.isfinite(space.high))
    obs, _ = env.reset(seed=0)
    assert space.contains(obs)
    steps_per_hour = 12
    saw_meal = False
    for step in range(24 * steps_per_hour):
        rate = 1.0 if step < 12 * steps_per_hour else env.action_space.high[0]
        obs, _, terminated, truncated, _ = env.step(np.array([rate], dtype=np.float32))
        assert space.contains(obs), (step, obs, space.high)
        saw_meal |= bool(obs[-1] > 0)
        if terminated or truncated:
            break
    assert saw_meal and terminated


def test_fused_step_equals_pump_model_and_reward_composed() -> None:
    """The compiled vector step reproduces the library's pieces run one after another."""
    from metamed.dosing.devices import InsulinPump
    from metamed.dosing.env import IOB_PEAK_MIN, RISK_REWARD_CAP
    from metamed.dosing.metrics import bg_risk

    patients = load_virtual_patients(["adult#003", "child#002", "adolescent#005"])
    env = GlucoseVectorEnv(patients, days=0.5, sensor_noise=False, random_init_bg=True)
    _, info = env.reset(seed=3)
    state = env._state.copy()
    meals = env._meals_g.copy()
    model, pump = env.model, InsulinPump("Insulet")
    iob = np.zeros((2, 3))
    rng = np.random.default_rng(0)
    for k in range(60):
        rate = rng.uniform(0.0, 1.5, size=3) * (k % 7 != 0) + 12.0 * (k == 20)
        obs, reward, terminated, _, info = env.step(rate[:, None])
        u = pump.deliver(rate / 60.0)
        state = model.advance_unchecked(state, meals[:, 5 * k : 5 * k + 5].T, u)
        for _ in range(5):
            flow = iob / IOB_PEAK_MIN
            iob = iob + np.stack([u - flow[0], flow[0] - flow[1]])
        bg = model.subcutaneous_glucose_mg_dl(state)
        low, high = bg_risk(bg)
        np.testing.assert_allclose(info["bg_mg_dl"], bg, rtol=1e-12)
        np.testing.assert_allclose(obs[:, -2], iob.sum(axis=0), rtol=1e-6)
        np.testing.assert_allclose(obs[:, -3], np.clip(bg, 39, 600), rtol=1e-6)
        expected = -np.minimum(low + high, RISK_REWARD_CAP) / RISK_REWARD_CAP
        np.testing.assert_allclose(reward, expected, rtol=1e-9, atol=1e-12)
        upcoming = meals[:, 5 * k + 5 : 5 * k + 10].sum(axis=1)
        np.testing.assert_allclose(info["upcoming_carbs_g"], upcoming)
        assert not terminated.any()


def test_threaded_step_equals_serial_step() -> None:
    # the threaded step splits the batch into blocks of rows; every row is stepped once,
    # as by the serial step (27 rows: blocks of unequal size, the last one padded)
    names = ["adult#001", "child#003", "adolescent#007", "adult#009", "child#010", "adult#001", "adolescent#002"] * 4  # fmt: skip
    names = names[:27]
    serial = GlucoseVectorEnv(load_virtual_patients(names), days=0.25)
    threaded = GlucoseVectorEnv(load_virtual_patients(names), days=0.25)
    threaded.model.parallel = True
    a, _ = serial.reset(seed=3)
    b, _ = threaded.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(serial.horizon_steps + 2):  # through the truncation and autoreset
        rate = rng.uniform(0.0, 3.0, size=(len(names), 1))
        a, ra, ta, ua, ia = serial.step(rate)
        b, rb, tb, ub, ib = threaded.step(rate)
        np.testing.assert_allclose(a, b, rtol=1e-6)  # float32 observations
        np.testing.assert_allclose(ra, rb, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ia["bg_mg_dl"], ib["bg_mg_dl"], rtol=1e-9)
        assert (ta == tb).all() and (ua == ub).all()
    assert serial.blood_glucose_mg_dl().std() > 0
