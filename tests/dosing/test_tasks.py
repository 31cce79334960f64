"""Patients as meta-RL tasks: the sampler, the sampling env, and PPO training on it."""

from __future__ import annotations

import collections

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.wrappers import RescaleAction

from metamed.dosing.tasks import PatientSampler, PatientSamplingEnv
from metamed.errors import MetamedValueError, UnknownNameError

HELD_OUT = ("adult#001", "adult#002")


def test_sampler_draws_only_the_training_patients_and_all_of_them() -> None:
    sampler = PatientSampler("adult", exclude=HELD_OUT, seed=0)
    drawn = collections.Counter(sampler.sample_batch(800))
    assert set(drawn) == {f"adult#{i:03d}" for i in range(3, 11)}
    # uniform: each of the 8 patients about 100 times in 800 draws
    assert min(drawn.values()) > 60 and max(drawn.values()) < 140


def test_sampler_is_reproducible_from_its_seed() -> None:
    a = PatientSampler(seed=3)
    b = PatientSampler(seed=3)
    first = [a.sample() for _ in range(20)]
    assert first == [b.sample() for _ in range(20)]
    a.seed(3)
    assert [a.sample() for _ in range(20)] == first
    assert first != [PatientSampler(seed=4).sample() for _ in range(20)]


def test_sampler_refuses_bad_populations() -> None:
    with pytest.raises(UnknownNameError, match="adult#001"):
        PatientSampler("adult", exclude=["adult#01"])
    with pytest.raises(MetamedValueError, match="leaves no patient"):
        PatientSampler("adult#003", exclude=["adult#003"])
    with pytest.raises(MetamedValueError, match="n >= 1"):
        PatientSampler().sample_batch(0)


def make_env(**kwargs: object) -> PatientSamplingEnv:
    sampler = PatientSampler("adolescent", exclude=["adolescent#001"], seed=0)
    return PatientSamplingEnv(sampler, days=0.25, **kwargs)


def episode_patients(env: PatientSamplingEnv, seed: int, n: int) -> list[str]:
    patients = [env.reset(seed=seed)[1]["patient"]]
    patients += [env.reset()[1]["patient"] for _ in range(n - 1)]
    return patients


def test_every_reset_draws_a_patient_and_the_seed_fixes_the_sequence() -> None:
    env = make_env()
    first = episode_patients(env, seed=11, n=12)
    assert len(set(first)) > 3 and "adolescent#001" not in first
    assert episode_patients(env, seed=11, n=12) == first
    # the patient is really switched: with no insulin, two patients' glucose differs
    # from the same seed (same meals and noise streams are keyed by patient name, so
    # compare the noise-free glucose after an hour)
    traces = {}
    for name in ("adolescent#002", "adolescent#007"):
        env.reset(seed=5, options={"patient": name})
        assert env.patient == name
        for _ in range(12):
            *_, info = env.step(np.zeros(1, dtype=np.float32))
        traces[name] = info["bg_mg_dl"]
        assert info["patient"] == name
    assert traces["adolescent#002"] != pytest.approx(traces["adolescent#007"], abs=1.0)


def test_sampling_env_passes_the_gymnasium_checker() -> None:
    gymnasium_check_env(make_env(), skip_render_check=True)


def test_stable_baselines3_ppo_trains_over_sampled_patients() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sampling = make_env()
    # SB3's advice for Gaussian policies (float32 bounds, as the env's own)
    unit = np.ones(1, dtype=np.float32)
    env = RescaleAction(sampling, -unit, unit)
    sb3_check_env(env)
    seen: collections.Counter[str] = collections.Counter()
    reset = sampling.reset

    def counting_reset(**kwargs: object):  # type: ignore[no-untyped-def]
        obs, info = reset(**kwargs)  # type: ignore[arg-type]
        seen[info["patient"]] += 1
        return obs, info

    sampling.reset = counting_reset  # type: ignore[method-assign]
    model = PPO(
        "MlpPolicy", env, n_steps=256, batch_size=64, n_epochs=2, seed=0, device="cpu",
        policy_kwargs={"net_arch": [16, 16]},
    )  # fmt: skip
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=2048)
    # 2,048 steps of 72-step (6-hour) episodes: many episodes, several patients
    assert sum(seen.values()) >= 2048 // 72 and len(seen) >= 4
    # PPO's updates moved the policy (a run that only collected steps would not)
    after = list(model.policy.parameters())
    assert any(not np.allclose(b.numpy(), a.detach().numpy()) for b, a in zip(before, after, strict=True))
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == env.action_space.shape and np.all(np.isfinite(action))
