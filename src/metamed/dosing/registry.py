"""Controllers known by name: what ``metamed dose --controllers`` and the protocol run.

An entry says how to build its controller settings for a batch of patients, which
environment options its batch needs (the G2P2C protocol announces meals early and fails
on the CGM), what it sees of the meals (for the tables), and whether it needs the
leave-patients-out personalisation first.  The evaluation
(:func:`metamed.dosing.evaluate.evaluate_controllers`) loops over entries, never over
names, so a new controller is one :func:`register_controller` call::

    register_controller(ControllerEntry(
        name="pid_gentle",
        build=lambda ctx: [("pid_gentle", PIDController(
            ctx.patients.basal_u_per_h, ctx.patients.correction_factor_mg_dl_per_u,
            kp_per_h=0.05))],
        meal_announcement="no",
    ))

An entry may build several settings (``personalised`` also builds its adaptation curve
``personalised_1d`` ...); every setting of one run must have its own label.

Every registered name also exists with the suffix ``+plgs`` (:data:`PLGS_SUFFIX`): the
same settings, each behind a predictive low-glucose suspend
(:class:`~metamed.dosing.controllers.LowGlucoseSuspend`) that withholds the controller's
own basal rate while a low is predicted.  All patients are simulated, not real people.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from metamed.dosing.closedloop import (
    ClosedLoopController,
    ClosedLoopParameters,
    population_leave_patients_out,
)
from metamed.dosing.controllers import (
    G2P2C_CORRECTION_COOLDOWN_MIN,
    BasalBolusController,
    Controller,
    LowGlucoseSuspend,
    PIDController,
    tdi_rule_therapy,
)
from metamed.dosing.patient import VirtualPatients
from metamed.dosing.personalise import CAUTIOUS, TherapyParameters
from metamed.errors import MetamedValueError, unknown_name

__all__ = [
    "BUILTIN_CONTROLLERS",
    "G2P2C_ANNOUNCE_AHEAD_MIN",
    "PLGS_SUFFIX",
    "ControllerContext",
    "ControllerEntry",
    "Setting",
    "controller_names",
    "get_controller",
    "register_controller",
]

#: Meal announcement lead time of the G2P2C protocol (``t_meal`` = 20 min in RL4H/G2P2C
#: ``utils/options.py``): the basal-bolus controller boluses 20 min before the meal.
G2P2C_ANNOUNCE_AHEAD_MIN = 20

#: Suffix of a controller name that puts its settings behind predictive low-glucose suspend.
PLGS_SUFFIX = "+plgs"

#: One controller setting of a run: its label in the results and the batched controller.
Setting = tuple[str, Controller]


@dataclass(frozen=True)
class ControllerContext:
    """What an entry may use to build its settings.

    Attributes
    ----------
    patients : VirtualPatients
        The evaluated patients (each controller gets one row per patient, in this order).
    record_days : int
        Days of each patient's own records the protocol allows for personalisation.
    therapy : mapping of str to TherapyParameters
        Leave-patients-out estimates keyed ``"0d"`` .. ``f"{record_days}d"`` (and
        ``"oracle"``), rows in the order of ``patients``; empty unless the entry
        ``needs_personalisation``.
    """

    patients: VirtualPatients
    record_days: int
    therapy: Mapping[str, TherapyParameters] = field(default_factory=dict)


@dataclass(frozen=True)
class ControllerEntry:
    """A named controller of the dosing protocol.

    Attributes
    ----------
    name : str
        What ``--controllers`` accepts.
    build : callable
        ``build(ControllerContext) -> list of (label, Controller)``.
    meal_announcement : str
        What the controller sees of meals, as the tables show it (``"yes"``, ``"no"``,
        ``"yes, 20 min early"``).
    env_options : mapping
        Extra :class:`~metamed.dosing.env.GlucoseVectorEnv` options of its batch;
        entries with equal options share one batched simulation.
    needs_personalisation : bool
        Whether ``build`` reads ``ControllerContext.therapy``.
    description : str
        What the controller is, in a clinician's words, for the tables and the report;
        an oracle (a controller given what no clinic knows) says so first.
    """

    name: str
    build: Callable[[ControllerContext], list[Setting]]
    meal_announcement: str
    env_options: Mapping[str, Any] = field(default_factory=dict)
    needs_personalisation: bool = False
    description: str = ""


_REGISTRY: dict[str, ControllerEntry] = {}


def register_controller(entry: ControllerEntry, *, replace: bool = False) -> ControllerEntry:
    """Add ``entry`` to the registry (``replace=True`` to redefine a name)."""
    if not isinstance(entry, ControllerEntry):
        raise MetamedValueError(
            f"register_controller expects a ControllerEntry; received {type(entry).__name__}."
        )
    if entry.name in _REGISTRY and not replace:
        raise MetamedValueError(
            f"A controller named '{entry.name}' is already registered; pick another name or "
            "pass replace=True."
        )
    _REGISTRY[entry.name] = entry
    return entry


def get_controller(name: str) -> ControllerEntry:
    """The registered entry called ``name`` (with "did you mean" when unknown).

    ``NAME+plgs`` is entry ``NAME`` with every setting behind predictive low-glucose
    suspend (labels ``LABEL+plgs``).
    """
    if name.endswith(PLGS_SUFFIX) and name != PLGS_SUFFIX:
        return _with_plgs(get_controller(name[: -len(PLGS_SUFFIX)]))
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("controller", name, _REGISTRY) from None


def _with_plgs(entry: ControllerEntry) -> ControllerEntry:
    def build(ctx: ControllerContext) -> list[Setting]:
        guarded: list[Setting] = []
        for label, ctrl in entry.build(ctx):
            basal = getattr(ctrl, "basal_u_per_h", None)
            if basal is None:
                raise MetamedValueError(
                    f"Controller '{label}' has no basal rate (basal_u_per_h) for low-glucose "
                    f"suspend to withhold; '{entry.name}{PLGS_SUFFIX}' needs one. Give the "
                    "controller a basal_u_per_h attribute or wrap it in LowGlucoseSuspend "
                    "yourself."
                )
            guarded.append((f"{label}{PLGS_SUFFIX}", LowGlucoseSuspend(ctrl, basal)))
        return guarded

    return ControllerEntry(
        f"{entry.name}{PLGS_SUFFIX}",
        build,
        entry.meal_announcement,
        env_options=entry.env_options,
        needs_personalisation=entry.needs_personalisation,
        description=f"{entry.description}; behind predictive low-glucose suspend (basal "
        "withheld while the CGM is predicted below 80 mg/dL within 30 min)",
    )


def controller_names() -> tuple[str, ...]:
    """Registered controller names, built-ins first, in registration order."""
    return tuple(_REGISTRY)


def _basal_bolus(
    tp: TherapyParameters, correction_cooldown_min: float = 0.0, correction: str = "linear"
) -> BasalBolusController:
    return BasalBolusController(
        tp.basal_u_per_h,
        tp.carb_ratio_g_per_u,
        tp.correction_factor_mg_dl_per_u,
        correction_cooldown_min=correction_cooldown_min,
        correction=correction,
    )


def _quest(patients: VirtualPatients) -> TherapyParameters:
    return TherapyParameters(
        patients.basal_u_per_h, patients.carb_ratio_g_per_u, patients.correction_factor_mg_dl_per_u
    )


def _personalised(ctx: ControllerContext) -> list[Setting]:
    # the adaptation curve (1 .. record_days - 1 days) is evaluated beside the final one
    days = range(1, ctx.record_days)
    curve = [(f"personalised_{d}d", _basal_bolus(ctx.therapy[f"{d}d"])) for d in days]
    return [*curve, ("personalised", _basal_bolus(ctx.therapy[f"{ctx.record_days}d"]))]


def _g2p2c(ctx: ControllerContext) -> list[Setting]:
    # the G2P2C therapy rule and, on the same protocol, the Quest therapy: separates the
    # effect of the therapy parameters from that of the protocol
    rule = TherapyParameters(*tdi_rule_therapy(ctx.patients.total_daily_insulin_u))
    cooldown = G2P2C_CORRECTION_COOLDOWN_MIN
    return [
        ("basal_bolus_g2p2c", _basal_bolus(rule, cooldown)),
        ("basal_bolus_quest_g2p2c", _basal_bolus(_quest(ctx.patients), cooldown)),
    ]


def _closed_loop(ctx: ControllerContext) -> list[Setting]:
    # leave-patients-out over all 30 patients (each patient adapted by its fold's
    # meta-trained mapping), rows taken in the evaluated patients' order; the curve
    # 0 .. record_days - 1 days is evaluated beside the final one
    lpo = population_leave_patients_out(ctx.record_days)
    idx = [lpo.names.index(name) for name in ctx.patients.names]
    settings: list[Setting] = []
    for d in range(ctx.record_days + 1):
        params = ClosedLoopParameters.from_array(lpo.parameters[f"{d}d"].as_array()[idx])
        label = "closed_loop" if d == ctx.record_days else f"closed_loop_{d}d"
        settings.append((label, ClosedLoopController(params)))
    return settings


for _entry in (
    ControllerEntry(
        "basal_bolus",
        lambda ctx: [("basal_bolus", _basal_bolus(_quest(ctx.patients)))],
        "yes",
        description="oracle: basal-bolus therapy on each patient's true parameters (the "
        "simulator's Quest values), which no clinic knows; an upper reference",
    ),
    ControllerEntry(
        "pid",
        lambda ctx: [
            (
                "pid",
                PIDController(
                    ctx.patients.basal_u_per_h, ctx.patients.correction_factor_mg_dl_per_u
                ),
            )
        ],
        "no",
        description="PID feedback on the CGM reading around the patient's true basal rate "
        "and correction factor; meals not announced",
    ),
    ControllerEntry(
        "population",
        lambda ctx: [("population", _basal_bolus(ctx.therapy["0d"]))],
        "yes",
        needs_personalisation=True,
        description="basal-bolus therapy on population-average parameters (no data of the "
        "patient's own)",
    ),
    ControllerEntry(
        "personalised",
        _personalised,
        "yes",
        needs_personalisation=True,
        description="basal-bolus therapy on parameters estimated from the patient's own "
        "records (personalisation, leave patients out)",
    ),
    ControllerEntry(
        "personalised_cautious",
        lambda ctx: [
            (
                "personalised_cautious",
                _basal_bolus(
                    ctx.therapy[f"{ctx.record_days}d{CAUTIOUS}"], correction="glucose_scaled"
                ),
            )
        ],
        "yes",
        needs_personalisation=True,
        description="basal-bolus therapy on a cautious choice from the patient's own "
        "records: carbohydrate ratio and correction factor one leave-one-out error "
        "toward smaller boluses, basal as estimated, corrections scaled by the glucose "
        "as the personaliser's model has it (hypoglycaemia-aware personalisation, leave "
        "patients out)",
    ),
    ControllerEntry(
        "basal_bolus_g2p2c",
        _g2p2c,
        "yes, 20 min early",
        env_options=MappingProxyType(
            {"announce_ahead_min": G2P2C_ANNOUNCE_AHEAD_MIN, "failure_signal": "cgm"}
        ),
        description="G2P2C's protocol: its total-daily-insulin therapy rule (and, as "
        "basal_bolus_quest_g2p2c, the true parameters) with meals announced 20 min early",
    ),
):
    register_controller(_entry)

#: The controllers metamed ships, in the order the default evaluation runs them.
BUILTIN_CONTROLLERS: tuple[str, ...] = controller_names()

# Registered after the defaults: it meta-trains first (a per-patient search over all 30
# patients on the batched simulator, about a minute on 2 cores), so a plain
# ``metamed dose`` stays quick; name it to run it (``--controllers closed_loop``).
register_controller(
    ControllerEntry(
        "closed_loop",
        _closed_loop,
        "no",
        env_options=MappingProxyType({"failure_signal": "cgm"}),
        description="fully closed loop without meal announcement (CGM and its own insulin "
        "only): oref-style micro-boluses on the predicted glucose, insulin-on-board limit "
        "and low-glucose suspend, its basal, correction factor and trend horizon adapted "
        "from the patient's first days by a mapping meta-learned across training patients "
        "(leave patients out; G2P2C failure rule, episodes end when the CGM leaves 40-600)",
    )
)
