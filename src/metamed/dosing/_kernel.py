"""Compiled UVA/Padova integrator: one sensor period for a whole batch in one call.

The numpy integrator (:meth:`metamed.dosing.patient.UVAPadova.step_unchecked`) is the
readable reference; this numba kernel computes the same scheme patient by patient, so a
period costs arithmetic instead of numpy's per-call overhead (which dominated at every
batch size: ~60 array operations per Runge-Kutta stage).  For each patient and each
minute of the period:

1. meal bookkeeping in simglucose's order (announce, eat at most 5 g/min, detect meal
   start and reset ``Dbar``'s pieces, accumulate, detect meal end) and the
   gastric-emptying constants from ``Dbar``;
2. the seven insulin states advanced exactly over each half sub-step with the
   precomputed matrix-exponential propagator ``half`` (an affine 7 x 9 map of
   ``[z, insulin, 1]``), skipping its structural zeros (:data:`INSULIN_NONZERO`);
3. Kutta's third-order method for the six nonlinear states, with simglucose's freeze of
   a glucose state that has gone negative.  The two ``tanh`` of the gastric emptying
   are one difference computed from two exponentials and one division.

What was measured (1,020 patients, CPU time on the shared 2-core machine): the numpy
fused integrator ~1,000 ns per patient-minute, this kernel ~200 ns; ~60 % of it is the
exponentials.  A SIMD layout (patients innermost, a polynomial exponential) was tried
twice and not kept: numba vectorises only a parallel loop's own body, so it needed one
thread launch per minute, which cost more than it saved; and in a serial loop over the
patients' state arrays LLVM emitted no packed arithmetic at all (too many arrays that
might alias), so the polynomial exponential only made it slower (215 vs 157 ns per
patient-minute).  The environment's step calls its per-row function once per block of
rows, not once per patient: a call passes ~25 arrays, each reference-counted, and once
per patient that cost 85 ns per patient-minute, as much as half the model.

Patients are independent: :func:`advance_period_parallel` spreads them over numba's
threads (``NUMBA_NUM_THREADS``); :func:`advance_period` is the same code on one thread,
for batches too small to pay for a thread launch per call.
``tests/dosing/test_patient.py::test_fused_advance_matches_minute_steps`` holds both to
the numpy reference (1e-9) and ``tests/dosing/test_fidelity.py`` to simglucose.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "CONSTANTS",
    "INSULIN_NONZERO",
    "advance_period",
    "advance_period_parallel",
    "env_step",
    "env_step_parallel",
    "thread_blocks",
]

#: Columns of the per-patient constant table passed to :func:`advance_period`.
CONSTANTS = (
    "kmax",
    "half_dk",
    "kabs",
    "ra_coef",
    "kp1",
    "kp2",
    "kp3",
    "fsnc",
    "ke1",
    "ke2",
    "k1",
    "k2",
    "vm0",
    "vmx",
    "km0",
    "ksc",
    "b",
    "d",
    "pmol_per_kg_per_u",
    "vg",
)
#: Entries (row, column) of the insulin propagator that can be nonzero.  The others are
#: zero by the model's structure: X (1) and Id (3) feed no other state, I1 (2) only Id,
#: the subcutaneous depots (5, 6) only downstream states, the constant (8) only X.
INSULIN_NONZERO = (
    ((0, 0), (0, 4), (0, 5), (0, 6), (0, 7)),
    ((1, 0), (1, 1), (1, 4), (1, 5), (1, 6), (1, 7), (1, 8)),
    ((2, 0), (2, 2), (2, 4), (2, 5), (2, 6), (2, 7)),
    ((3, 0), (3, 2), (3, 3), (3, 4), (3, 5), (3, 6), (3, 7)),
    ((4, 0), (4, 4), (4, 5), (4, 6), (4, 7)),
    ((5, 5), (5, 7)),
    ((6, 5), (6, 6), (6, 7)),
)
_EAT_RATE_G_PER_MIN = 5.0


@numba.njit(inline="always", cache=True, fastmath=True)
def _tanh_difference(a, b):
    # tanh(a) - tanh(b) = 2 (e^2a - e^2b) / ((1 + e^2a) (1 + e^2b)): two exponentials and
    # one division instead of two tanh calls (the costliest part of a stage).  |x| >= 20
    # is clipped: tanh is 1 to double precision there, and e^40 cannot overflow.
    a = min(max(a, -20.0), 20.0)
    b = min(max(b, -20.0), 20.0)
    ea = np.exp(2.0 * a)
    eb = np.exp(2.0 * b)
    return 2.0 * (ea - eb) / ((1.0 + ea) * (1.0 + eb))


@numba.njit(inline="always", cache=True, fastmath=True)
def _rhs(q1, q2, qgut, gp, gt, gs, vm, egp_base, d, ga, gc, gb, gd, c):
    # (ga, gc, gb, gd) = (a, c, b Dbar, d Dbar) of the gastric emptying; ga = 0: no meal
    # yet, kgut = kmax
    kmax = c[0]
    if ga != 0.0:
        qsto = q1 + q2
        kgut = kmax + c[1] * _tanh_difference(ga * (qsto - gb), gc * (qsto - gd))
    else:
        kgut = kmax
    flow = kgut * q2
    dq1 = d - kmax * q1
    dq2 = kmax * q1 - flow
    dqgut = flow - c[2] * qgut
    egp = egp_base - c[5] * gp
    if egp < 0.0:
        egp = 0.0
    renal = gp - c[9]
    if renal < 0.0:
        renal = 0.0
    dgp = egp - c[8] * renal - c[7] + c[3] * qgut - c[10] * gp + c[11] * gt
    dgt = c[10] * gp - c[11] * gt - vm * gt / (c[14] + gt)
    dgs = c[15] * (gp - gs)
    # simglucose freezes a glucose state that has gone negative (never in practice)
    if gp < 0.0:
        dgp = 0.0
    if gt < 0.0:
        dgt = 0.0
    if gs < 0.0:
        dgs = 0.0
    return dq1, dq2, dqgut, dgp, dgt, dgs


@numba.njit(inline="always", cache=True, fastmath=True)
def _gut_constants(meal_start_qsto, meal_eaten, c):
    dbar = meal_start_qsto + meal_eaten * 1000.0
    if dbar > 0.0:
        return 2.5 / (dbar * (1.0 - c[16])), 2.5 / (dbar * c[17]), c[16] * dbar, c[17] * dbar
    return 0.0, 0.0, c[16] * dbar, c[17] * dbar


@numba.njit(inline="always", cache=True, fastmath=True)
def _insulin_half_step(p, z, u, out):
    # out = p @ [z, u, 1] on the nonzero entries (INSULIN_NONZERO: 35 of 63)
    z0, z1, z2, z3, z4, z5, z6 = z[0], z[1], z[2], z[3], z[4], z[5], z[6]
    out[0] = p[0, 0] * z0 + p[0, 4] * z4 + p[0, 5] * z5 + p[0, 6] * z6 + p[0, 7] * u
    out[1] = (
        p[1, 0] * z0
        + p[1, 1] * z1
        + p[1, 4] * z4
        + p[1, 5] * z5
        + p[1, 6] * z6
        + p[1, 7] * u
        + p[1, 8]
    )
    out[2] = p[2, 0] * z0 + p[2, 2] * z2 + p[2, 4] * z4 + p[2, 5] * z5 + p[2, 6] * z6 + p[2, 7] * u
    out[3] = (
        p[3, 0] * z0
        + p[3, 2] * z2
        + p[3, 3] * z3
        + p[3, 4] * z4
        + p[3, 5] * z5
        + p[3, 6] * z6
        + p[3, 7] * u
    )
    out[4] = p[4, 0] * z0 + p[4, 4] * z4 + p[4, 5] * z5 + p[4, 6] * z6 + p[4, 7] * u
    out[5] = p[5, 5] * z5 + p[5, 7] * u
    out[6] = p[6, 5] * z5 + p[6, 6] * z6 + p[6, 7] * u


@numba.njit(inline="always", cache=True, fastmath=True)
def _advance_patient(
    i, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs, insulin, half,
    consts, substeps, z, zh, zf,
):  # fmt: skip
    # one patient's whole period: carbs (M,) its grams announced per minute, insulin its
    # rate (U/min); z, zh, zf (7,) are its insulin scratch
    n_min = carbs.shape[0]
    h = 1.0 / substeps
    c = consts[i]
    p = half[i]
    u = insulin * c[18]
    y0, y1, y2, y3, y4, y5 = x[0, i], x[1, i], x[2, i], x[3, i], x[4, i], x[12, i]
    for r in range(7):
        z[r] = x[5 + r, i]
    pl = planned[i]
    le = last_eaten[i]
    ms = meal_start_qsto[i]
    me = meal_eaten[i]
    eating = is_eating[i]
    ga, gc, gb, gd = _gut_constants(ms, me, c)
    for j in range(n_min):
        announced = carbs[j]
        if announced != 0.0 or pl != 0.0 or le != 0.0:
            pl = pl + announced
            to_eat = min(_EAT_RATE_G_PER_MIN, pl) if pl > 0.0 else 0.0
            pl = max(pl - to_eat, 0.0)
            if to_eat > 0.0 and le <= 0.0:  # a meal starts
                ms = y0 + y1
                me = 0.0
                eating = True
            if eating:
                me = me + to_eat
            if to_eat <= 0.0 and le > 0.0:  # the meal has ended
                eating = False
            le = to_eat
            ga, gc, gb, gd = _gut_constants(ms, me, c)
        d = le * 1000.0
        for _ in range(substeps):
            # exact insulin states at t + h/2 and t + h
            _insulin_half_step(p, z, u, zh)
            _insulin_half_step(p, zh, u, zf)
            vm1 = c[12] + c[13] * zh[1]
            e1 = c[4] - c[6] * zh[3]
            a0, a1, a2, a3, a4, a5 = _rhs(
                y0,
                y1,
                y2,
                y3,
                y4,
                y5,
                c[12] + c[13] * z[1],
                c[4] - c[6] * z[3],
                d,
                ga,
                gc,
                gb,
                gd,
                c,
            )
            hh = 0.5 * h
            b0, b1, b2, b3, b4, b5 = _rhs(
                y0 + hh * a0,
                y1 + hh * a1,
                y2 + hh * a2,
                y3 + hh * a3,
                y4 + hh * a4,
                y5 + hh * a5,
                vm1,
                e1,
                d,
                ga,
                gc,
                gb,
                gd,
                c,
            )
            d0, d1, d2, d3, d4, d5 = _rhs(
                y0 + h * (2.0 * b0 - a0),
                y1 + h * (2.0 * b1 - a1),
                y2 + h * (2.0 * b2 - a2),
                y3 + h * (2.0 * b3 - a3),
                y4 + h * (2.0 * b4 - a4),
                y5 + h * (2.0 * b5 - a5),
                c[12] + c[13] * zf[1],
                c[4] - c[6] * zf[3],
                d,
                ga,
                gc,
                gb,
                gd,
                c,
            )
            w = h / 6.0
            y0 += w * (a0 + 4.0 * b0 + d0)
            y1 += w * (a1 + 4.0 * b1 + d1)
            y2 += w * (a2 + 4.0 * b2 + d2)
            y3 += w * (a3 + 4.0 * b3 + d3)
            y4 += w * (a4 + 4.0 * b4 + d4)
            y5 += w * (a5 + 4.0 * b5 + d5)
            for r in range(7):
                z[r] = zf[r]
    x[0, i] = y0
    x[1, i] = y1
    x[2, i] = y2
    x[3, i] = y3
    x[4, i] = y4
    x[12, i] = y5
    for r in range(7):
        x[5 + r, i] = z[r]
    planned[i] = pl
    last_eaten[i] = le
    meal_start_qsto[i] = ms
    meal_eaten[i] = me
    is_eating[i] = eating


_DOC = """Advance every patient ``carbs.shape[0]`` minutes in place (insulin held).

    ``x`` (13, N) and the five bookkeeping arrays (N,) are updated in place; ``carbs``
    (M, N) are grams announced per minute, ``insulin`` (N,) U/min, ``half`` (N, 7, 9)
    the propagator over half a sub-step, ``consts`` (N, len(CONSTANTS)).
    """


@numba.njit(cache=True, fastmath=True)
def advance_period(
    x,
    planned,
    last_eaten,
    meal_start_qsto,
    meal_eaten,
    is_eating,
    carbs,
    insulin,
    half,
    consts,
    substeps,
):  # pragma: no cover - compiled; covered through UVAPadova.advance_unchecked
    z = np.empty(7)
    zh = np.empty(7)
    zf = np.empty(7)
    for i in range(x.shape[1]):
        _advance_patient(
            i, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs[:, i],
            insulin[i], half, consts, substeps, z, zh, zf,
        )  # fmt: skip


@numba.njit(parallel=True, cache=True, fastmath=True)
def advance_period_parallel(
    x,
    planned,
    last_eaten,
    meal_start_qsto,
    meal_eaten,
    is_eating,
    carbs,
    insulin,
    half,
    consts,
    substeps,
):  # pragma: no cover - compiled; covered through UVAPadova.advance_unchecked
    # each patient's insulin scratch is its own row: threads never share one
    scratch = np.empty((x.shape[1], 3, 7))
    for i in numba.prange(x.shape[1]):
        _advance_patient(
            i, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs[:, i],
            insulin[i], half, consts, substeps, scratch[i, 0], scratch[i, 1], scratch[i, 2],
        )  # fmt: skip


advance_period.__doc__ = advance_period_parallel.__doc__ = _DOC


@numba.njit(cache=True, fastmath=True)  # not inlined: numba refuses nested inlining here
def _env_step_rows(
    lo,
    hi,
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, half, consts, substeps,
    rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor, risk, env,
    obs, reward, terminated, truncated, bg_out, upcoming,
    z, zh, zf, no_meals,
):  # fmt: skip
    # rows lo..hi-1 of env_step, one call per block of rows: a call passes ~25 arrays,
    # each reference-counted, which cost as much as half the model per patient when this
    # was called once per patient; z, zh, zf (7,) insulin scratch, no_meals zeros
    st = int(env[0])
    horizon = int(env[1])
    ahead = int(env[2])
    announce = env[3] != 0.0
    on_cgm = env[4] != 0.0
    low, high = env[5], env[6]
    decay = 1.0 / env[7]
    n_hist = cgm_hist.shape[1]
    for i in range(lo, hi):
        act = active[i]
        carbs = no_meals
        t = t_min[i]
        r = 0.0
        if act:
            r = min(max(rate_u_per_h[i], 0.0), env[8]) / 60.0
            carbs = meals_g[i, t : t + st]
        # InsulinPump.deliver(r): basal quantised to the increment (pmol), clipped, plus
        # the delivery of a zero bolus
        u = np.rint(r * pump[4] / pump[0]) * pump[0] / pump[4]
        u = min(max(u, pump[1]), pump[2]) + pump[3]
        _advance_patient(
            i, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs, u,
            half, consts, substeps, z, zh, zf,
        )  # fmt: skip
        i0, i1 = iob[0, i], iob[1, i]
        for _ in range(st):
            f0 = i0 * decay
            f1 = i1 * decay
            i0 = i0 + (u - f0)
            i1 = i1 + (f0 - f1)
        iob[0, i] = i0
        iob[1, i] = i1
        if act:
            t += st
            t_min[i] = t
        bg = x[12, i] / consts[i, 19]
        bg_out[i] = bg
        reading = min(max(bg + noise[i], sensor[0]), sensor[1])
        if act:
            for k in range(n_hist - 1):
                cgm_hist[i, k] = cgm_hist[i, k + 1]
            cgm_hist[i, n_hist - 1] = reading
        f = risk[0] * (np.log(max(bg, risk[5])) ** risk[1] - risk[2])
        rew = -min(risk[3] * f * f, risk[4]) / risk[4]
        if on_cgm:
            out = reading <= low or reading >= high
        else:
            out = bg < low or bg > high
        steps_done = t // st
        term = act and out
        trunc = act and not term and steps_done >= horizon
        if term:
            rew -= max(horizon - steps_done, 0)
        reward[i] = rew if act else 0.0
        terminated[i] = term
        truncated[i] = trunc
        for k in range(n_hist):
            obs[i, k] = cgm_hist[i, k]
        obs[i, n_hist] = i0 + i1
        up = upcoming_carbs(meals_g, i, t + ahead, st)
        upcoming[i] = up
        if announce:
            obs[i, n_hist + 1] = up


@numba.njit(cache=True, fastmath=True)
def env_step(
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, half, consts, substeps,
    rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor, risk, env,
    obs, reward, terminated, truncated, bg_out, upcoming,
):  # fmt: skip  # pragma: no cover - compiled; covered through GlucoseVectorEnv.step
    """One vector-environment step for every patient, in place (see GlucoseVectorEnv.step).

    Per patient: the pump's delivery of the requested rate (``pump`` = basal increment
    in pmol, minimum and maximum basal in U/min, the delivery of a zero bolus, pmol per
    U), the period's meals read from ``meals_g`` (N, T) at the patient's own clock
    ``t_min``, the period advance, the two-compartment insulin on board ``iob`` (2, N),
    the CGM reading from this step's ``noise`` (``sensor`` = minimum, maximum reading;
    the glucose volume ``Vg`` is ``consts``' last column), the shift of ``cgm_hist``
    (N, H), the
    capped Kovatchev risk reward (``risk`` = scale, exponent, offset, gain, cap, floor),
    termination outside the failure range, truncation at the horizon and the
    observation.  ``env`` = sample minutes, horizon steps, announce-ahead minutes, meal
    announcement (0/1), failure on CGM (0/1), failure low, failure high, IOB peak
    minutes, largest rate (U/h).  ``upcoming`` gets the grams of meals starting in
    the coming period (announced or not).  Inactive rows (awaiting their autoreset) get no meal, no insulin and a
    zero reward, and keep their clock, history and insulin on board.
    """
    z = np.empty(7)
    zh = np.empty(7)
    zf = np.empty(7)
    no_meals = np.zeros(int(env[0]))
    _env_step_rows(
        0, x.shape[1],
        x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, half, consts,
        substeps, rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor,
        risk, env, obs, reward, terminated, truncated, bg_out, upcoming,
        z, zh, zf, no_meals,
    )  # fmt: skip


@numba.njit(parallel=True, cache=True, fastmath=True)
def env_step_parallel(
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, half, consts, substeps,
    rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor, risk, env,
    obs, reward, terminated, truncated, bg_out, upcoming, n_blocks,
):  # fmt: skip  # pragma: no cover - compiled; covered through GlucoseVectorEnv.step
    # env_step with the patients spread over numba's threads in n_blocks blocks of rows
    # (thread_blocks; one call each, see _env_step_rows), each with its own scratch
    n = x.shape[1]
    scratch = np.empty((n_blocks, 3, 7))
    no_meals = np.zeros(int(env[0]))
    for b in numba.prange(n_blocks):
        _env_step_rows(
            b * n // n_blocks, (b + 1) * n // n_blocks,
            x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, half, consts,
            substeps, rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor,
            risk, env, obs, reward, terminated, truncated, bg_out, upcoming,
            scratch[b, 0], scratch[b, 1], scratch[b, 2], no_meals,
        )  # fmt: skip


def thread_blocks(n_rows: int) -> int:
    """Blocks of rows for :func:`env_step_parallel`: a few per numba thread, to balance."""
    return max(1, min(n_rows, 4 * numba.get_num_threads()))


@numba.njit(inline="always", cache=True)
def upcoming_carbs(meals_g, i, start, st):  # pragma: no cover - compiled
    """Grams of row ``i`` of ``meals_g`` in the ``st`` minutes from ``start``."""
    total = 0.0
    for j in range(start, start + st):
        total += meals_g[i, j]
    return total
