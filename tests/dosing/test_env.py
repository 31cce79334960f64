"""Gymnasium glucose-dosing environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metamed.dosing.env import ENV_ID, GlucoseDosingEnv, GlucoseVectorEnv
from metamed.dosing.patient import load_virtual_patients
from metamed.errors import MetamedValueError


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
