"""Patients as tasks for meta-reinforcement learning: a seeded sampler and an env that uses it.

In meta-RL a task is one patient: a policy is trained over the training population, an
episode at a time on a patient drawn for it, and is then evaluated on patients it never
saw.  :class:`PatientSampler` draws those patients (uniformly, with replacement, from a
population minus the held-out ones); :class:`PatientSamplingEnv` drives the single-patient
environment ``metamed/GlucoseDosing-v0`` so that every ``reset()`` switches to a drawn
patient, through the environment's own ``reset(options={"patient": name})``.  The
wrapper is an ordinary ``gymnasium.Env``, so any RL library trains on it unchanged
(``tests/dosing/test_tasks.py`` trains Stable-Baselines3's PPO on it for a few thousand
steps).  All patients are simulated, not real people.

Seeding follows Gymnasium's convention: ``reset(seed=s)`` makes the rest of the run
reproducible, here both the environment's meals, initial glucose and sensor noise and the
sequence of patients drawn (the sampler is re-seeded from ``s`` through its own child
stream, so changing how the environment draws does not change which patients come).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metamed.dosing.env import GlucoseDosingEnv
from metamed.dosing.patient import load_virtual_patients
from metamed.errors import MetamedValueError, unknown_name

__all__ = ["PatientSampler", "PatientSamplingEnv"]

# Spawn key of the sampler's stream under a reset seed (the environment keys its own
# streams by patient name, so the two never coincide).
_SAMPLER_STREAM = (0x7A5C,)


class PatientSampler:
    """Draws patients (meta-RL tasks) from a population, uniformly with replacement.

    Parameters
    ----------
    population : str, sequence of str or None
        The patients to draw from, as :func:`~metamed.dosing.patient.load_virtual_patients`
        takes them: ``None`` for all 30, an age group, names, or a mix.
    exclude : sequence of str
        Patients never drawn (the held-out evaluation patients of leave-patients-out).
    seed : int, optional
        Seed of the draws.
    """

    def __init__(
        self,
        population: str | Sequence[str] | None = None,
        *,
        exclude: Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        names = load_virtual_patients(population).names
        excluded = set(exclude)
        for name in excluded:
            if name not in names:
                raise unknown_name("patient to exclude", name, names)
        self.names: tuple[str, ...] = tuple(n for n in names if n not in excluded)
        if not self.names:
            raise MetamedValueError(
                f"Excluding {sorted(excluded)} leaves no patient of {population!r} to draw; "
                "hold out fewer patients or widen the population."
            )
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        """Restart the draws from ``seed`` (fresh entropy when None)."""
        self._rng = np.random.default_rng(
            None if seed is None else np.random.SeedSequence(seed, spawn_key=_SAMPLER_STREAM)
        )

    def sample(self) -> str:
        """One patient's name."""
        return self.names[int(self._rng.integers(len(self.names)))]

    def sample_batch(self, n: int) -> list[str]:
        """``n`` names (with replacement), e.g. for ``GlucoseVectorEnv.reset(options={"patients": ...})``."""
        if n < 1:
            raise MetamedValueError(f"sample_batch needs n >= 1; received {n}.")
        return [self.names[i] for i in self._rng.integers(len(self.names), size=n)]


class PatientSamplingEnv(gym.Env):
    """``metamed/GlucoseDosing-v0`` with a new patient drawn from ``sampler`` at every reset.

    ``reset(options={"patient": name})`` still chooses the patient itself (an evaluation
    on a named held-out patient); ``info["patient"]`` names the episode's patient.  The
    action is the environment's insulin rate in U/h; policies with Gaussian actions
    (PPO's) learn better on ``gymnasium.wrappers.RescaleAction(env, -1.0, 1.0)``.

    Parameters
    ----------
    sampler : PatientSampler
        Where the patients come from.
    **env_kwargs
        Passed to :class:`~metamed.dosing.env.GlucoseDosingEnv` (days, sample_time_min,
        meal_announcement, ...).
    """

    metadata = {"render_modes": []}

    def __init__(self, sampler: PatientSampler, **env_kwargs: Any) -> None:
        self.sampler = sampler
        self._env = GlucoseDosingEnv(patient=sampler.names[0], **env_kwargs)
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space

    @property
    def patient(self) -> str:
        """The current episode's patient."""
        return self._env.patient

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.sampler.seed(seed)
        options = dict(options or {})
        options.setdefault("patient", self.sampler.sample())
        obs, info = self._env.reset(seed=seed, options=options)
        return obs, {**info, "patient": self.patient}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        return obs, reward, terminated, truncated, {**info, "patient": self.patient}
