"""Meal scenarios for the batched T1D simulator (simulated patients, not real people).

A scenario turns a patient batch and a horizon into a per-minute array of *announced*
carbohydrate, shape ``(n_minutes, N)`` in grams: the value at minute ``t`` is the meal
amount announced at that minute, which the patient model eats at 5 g/min (see
:meth:`metamed.dosing.patient.UVAPadova.step`).  Minute 0 is midnight of day 0 unless
``start_minute`` says otherwise.  Randomness enters only through an explicit
``numpy.random.Generator``.

- :class:`FixedMealScenario`: the same meals (clock time, grams) every day.
- :class:`G2P2CMealScenario`: the randomised daily protocol used to train and evaluate
  G2P2C (Hettiarachchi et al., "G2P2C - A modular reinforcement learning algorithm for
  glucose control by glucose prediction and planning in Type 1 Diabetes", Biomedical
  Signal Processing and Control 2024; values from the authors' public configuration):
  six meal slots (breakfast, morning snack, lunch, afternoon snack, dinner, evening
  snack), each taken with a probability, at a time drawn from a truncated normal within
  a window, with an amount drawn uniformly within +/- 3 standard deviations of an
  age-group-specific mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from metamed.dosing.patient import AGE_GROUPS, VirtualPatients
from metamed.errors import MetamedTypeError, MetamedValueError, unknown_name

__all__ = [
    "MINUTES_PER_DAY",
    "G2P2C_MEAL_SLOTS",
    "FixedMealScenario",
    "G2P2CMealScenario",
    "MealScenario",
]

MINUTES_PER_DAY = 1440

#: Meal slots of the G2P2C protocol: (name, window start h, window end h, mean time h,
#: time SD min). Source: Hettiarachchi et al. 2024, public G2P2C configuration.
G2P2C_MEAL_SLOTS: tuple[tuple[str, float, float, float, float], ...] = (
    ("breakfast", 7.0, 9.0, 8.0, 60.0),
    ("morning_snack", 10.0, 11.0, 10.5, 30.0),
    ("lunch", 12.0, 14.0, 13.0, 60.0),
    ("afternoon_snack", 16.0, 17.0, 16.5, 30.0),
    ("dinner", 19.0, 21.0, 20.0, 60.0),
    ("evening_snack", 22.0, 23.0, 22.5, 30.0),
)
# Mean carbohydrate (g) and its SD (g) per slot and age group (same source; adults and
# adolescents share the adult protocol, children have smaller meals).
_G2P2C_AMOUNT_G: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "adult": ((45, 30, 85, 30, 80, 30), (5, 3, 5, 3, 10, 3)),
    "adolescent": ((45, 30, 85, 30, 80, 30), (5, 3, 5, 3, 10, 3)),
    "child": ((30, 15, 45, 15, 45, 15), (5, 3, 5, 3, 5, 3)),
}
#: Probability that a main meal is eaten on a given day (G2P2C configuration).
G2P2C_MAIN_MEAL_PROBABILITY = 0.95


class MealScenario:
    """Base class: a recipe for per-minute announced carbohydrate."""

    def schedule(
        self,
        patients: VirtualPatients,
        n_minutes: int,
        rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
        start_minute: int = 0,
    ) -> np.ndarray:
        """Announced carbohydrate per minute, grams, shape ``(n_minutes, N)``."""
        raise NotImplementedError

    def max_daily_g(self) -> float:
        """Most carbohydrate (g) any patient can be announced in one day.

        An upper bound, not a typical value: it bounds the environment's observation
        space.  A scenario that cannot say keeps this default, infinity.
        """
        return math.inf


def _check_horizon(n_minutes: int, start_minute: int) -> None:
    if not isinstance(n_minutes, (int, np.integer)) or n_minutes < 1:
        raise MetamedValueError(
            f"n_minutes must be a positive integer (minutes to simulate); received {n_minutes!r}."
        )
    if not isinstance(start_minute, (int, np.integer)) or start_minute < 0:
        raise MetamedValueError(
            f"start_minute must be an integer >= 0 (minutes after midnight of day 0); "
            f"received {start_minute!r}."
        )


@dataclass(frozen=True)
class FixedMealScenario(MealScenario):
    """The same meals at the same clock times every day, for every patient.

    Parameters
    ----------
    meals : sequence of (hour, grams)
        Clock time in hours after midnight (``7.5`` is 07:30, rounded to the minute) and
        announced carbohydrate in grams.
    repeat_daily : bool, default True
        Repeat the meals every day; otherwise only on day 0.

    Examples
    --------
    >>> FixedMealScenario([(7, 50), (12, 70), (18, 80)])  # doctest: +SKIP
    """

    meals: tuple[tuple[float, float], ...] = field(
        default=((7.0, 50.0), (12.0, 70.0), (18.0, 80.0))
    )
    repeat_daily: bool = True

    def __post_init__(self) -> None:
        meals = tuple((float(h), float(g)) for h, g in self.meals)
        for h, g in meals:
            if not (0.0 <= h < 24.0) or not np.isfinite(g) or g < 0:
                raise MetamedValueError(
                    "Each meal must be (hour in [0, 24), grams >= 0); received "
                    f"({h!r}, {g!r}). Example: FixedMealScenario([(7, 50), (12, 70)])."
                )
        object.__setattr__(self, "meals", meals)

    def schedule(
        self,
        patients: VirtualPatients,
        n_minutes: int,
        rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
        start_minute: int = 0,
    ) -> np.ndarray:
        """Announced carbohydrate per minute, grams, shape ``(n_minutes, N)``; ``rng`` unused."""
        _check_horizon(n_minutes, start_minute)
        out = np.zeros((n_minutes, len(patients)))
        last_day = (start_minute + n_minutes) // MINUTES_PER_DAY + 1
        days = range(last_day) if self.repeat_daily else range(1)
        for day in days:
            for h, g in self.meals:
                t = day * MINUTES_PER_DAY + round(h * 60.0) - start_minute
                if 0 <= t < n_minutes:
                    out[t] += g
        return out

    def max_daily_g(self) -> float:
        """All the meals of one day (the same for every patient)."""
        return float(sum(g for _, g in self.meals))


@dataclass(frozen=True)
class G2P2CMealScenario(MealScenario):
    """Randomised daily meals of the G2P2C protocol, scaled per age group.

    Every patient gets an independent draw each day.  For each slot of
    :data:`G2P2C_MEAL_SLOTS`: the meal is taken with probability
    ``main_meal_probability`` (breakfast, lunch, dinner) or ``snack_probability``
    (snacks); its minute is a normal draw (mean, SD of the slot) truncated to the slot's
    window and rounded; its amount is ``round(Uniform(mean - 3 SD, mean + 3 SD))`` grams
    with the age group's mean and SD (adult/adolescent: 45, 30, 85, 30, 80, 30 g; child:
    30, 15, 45, 15, 45, 15 g).

    Parameters
    ----------
    main_meal_probability : float, default 0.95
    snack_probability : float, default 0.0
        The authors' default configuration disables snacks (probability -1 in their
        code); set e.g. ``0.3`` (simglucose's snack probability) to include them.
    """

    main_meal_probability: float = G2P2C_MAIN_MEAL_PROBABILITY
    snack_probability: float = 0.0

    def __post_init__(self) -> None:
        for name in ("main_meal_probability", "snack_probability"):
            v = getattr(self, name)
            if not (0.0 <= float(v) <= 1.0):
                raise MetamedValueError(f"{name} must be a probability in [0, 1]; received {v!r}.")

    def max_daily_g(self) -> float:
        """Every slot taken at its largest amount (mean + 3 SD) by the hungriest age group
        (a reset may switch the patient, so the bound holds for every group)."""

        def largest_day(group: str) -> float:
            means, sds = _G2P2C_AMOUNT_G[group]
            return float(sum(round(m + 3 * sd) for m, sd in zip(means, sds, strict=True)))

        return max(largest_day(g) for g in _G2P2C_AMOUNT_G)

    def daily_meals(
        self, age_groups: Sequence[str], n_days: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw meal minutes and grams.

        Returns
        -------
        minute_of_day : ndarray of int, shape (n_days, 6, N)
            Minute after midnight of each slot's meal.
        grams : ndarray, shape (n_days, 6, N)
            Announced grams (0 when the meal is skipped).
        """
        if not isinstance(rng, np.random.Generator):
            raise MetamedTypeError(
                "G2P2CMealScenario needs rng=np.random.default_rng(seed) (a numpy Generator); "
                f"received {type(rng).__name__}."
            )
        groups = list(age_groups)
        for g in groups:
            if g not in _G2P2C_AMOUNT_G:
                raise unknown_name("age group", g, AGE_GROUPS)
        n = len(groups)
        mean_g = np.array([_G2P2C_AMOUNT_G[g][0] for g in groups], dtype=float).T  # (6, N)
        sd_g = np.array([_G2P2C_AMOUNT_G[g][1] for g in groups], dtype=float).T
        slots = np.array([s[1:] for s in G2P2C_MEAL_SLOTS], dtype=float)  # (6, 4)
        lb, ub, mu = slots[:, 0:1] * 60, slots[:, 1:2] * 60, slots[:, 2:3] * 60
        sd = slots[:, 3:4]
        prob = np.array(
            [
                self.main_meal_probability if "snack" not in s[0] else self.snack_probability
                for s in G2P2C_MEAL_SLOTS
            ]
        )[:, None]
        shape = (n_days, len(G2P2C_MEAL_SLOTS), n)
        taken = rng.random(shape) < prob
        # Truncated normal by inverse CDF between the window's standardised bounds.
        lo, hi = ndtr((lb - mu) / sd), ndtr((ub - mu) / sd)
        u = lo + (hi - lo) * rng.random(shape)
        minute = np.rint(mu + sd * ndtri(u)).astype(int)
        minute = np.clip(minute, lb.astype(int), ub.astype(int))
        grams = np.rint(rng.uniform(mean_g - 3 * sd_g, mean_g + 3 * sd_g, size=shape))
        grams = np.where(taken, np.maximum(grams, 0.0), 0.0)
        return minute, grams

    def schedule(
        self,
        patients: VirtualPatients,
        n_minutes: int,
        rng: np.random.Generator | Sequence[np.random.Generator] | None = None,
        start_minute: int = 0,
    ) -> np.ndarray:
        """Announced carbohydrate per minute, grams, shape ``(n_minutes, N)``.

        ``rng`` is one generator for the batch or one per patient (a patient's meals then
        do not depend on the other patients in the batch).  Days are drawn in order from
        day 0 (the day containing ``start_minute``), so the same ``rng`` state gives the
        same meals whatever the horizon.
        """
        _check_horizon(n_minutes, start_minute)
        if rng is None:
            raise MetamedValueError(
                "G2P2CMealScenario is random: pass rng=np.random.default_rng(seed)."
            )
        if not isinstance(rng, np.random.Generator):
            # one generator per patient: each patient's meals are independent of the batch
            if not isinstance(rng, Sequence) or len(rng) != len(patients):
                raise MetamedTypeError(
                    "rng must be a numpy Generator or one Generator per patient "
                    f"({len(patients)}); received {type(rng).__name__}."
                )
            return np.concatenate(
                [
                    self.schedule(patients.select([name]), n_minutes, g, start_minute)
                    for name, g in zip(patients.names, rng, strict=True)
                ],
                axis=1,
            )
        first_day = start_minute // MINUTES_PER_DAY
        last_day = (start_minute + n_minutes - 1) // MINUTES_PER_DAY
        minute, grams = self.daily_meals(patients.age_group, last_day + 1, rng)
        out = np.zeros((n_minutes, len(patients)))
        cols = np.arange(len(patients))
        for day in range(first_day, last_day + 1):
            for slot in range(minute.shape[1]):
                t = day * MINUTES_PER_DAY + minute[day, slot] - start_minute
                ok = (t >= 0) & (t < n_minutes) & (grams[day, slot] > 0)
                np.add.at(out, (t[ok], cols[ok]), grams[day, slot][ok])
        return out
