"""Compiled UVA/Padova integrator: one sensor period for a whole batch in one call.

The numpy integrator (:meth:`metamed.dosing.patient.UVAPadova.step_unchecked`) is the
readable reference; this numba kernel computes the same scheme, :data:`LANES` patients
at a time, one per SIMD lane.  For each minute of the period:

1. meal bookkeeping in simglucose's order (announce, eat at most 5 g/min, detect meal
   start and reset ``Dbar``'s pieces, accumulate, detect meal end) and the
   gastric-emptying constants from ``Dbar``, lane by lane (branches, once a minute);
2. the seven insulin states advanced exactly over each half sub-step with the
   precomputed matrix-exponential propagator ``half`` (an affine 7 x 9 map of
   ``[z, insulin, 1]``), skipping its structural zeros (:data:`INSULIN_NONZERO`);
3. Kutta's third-order method for the six nonlinear states, with simglucose's freeze of
   a glucose state that has gone negative.  The two ``tanh`` of the gastric emptying
   are one difference computed from two exponentials and one division.

Steps 2 and 3 are one loop over the lanes with no branch and no call, which LLVM turns
into vector instructions.  Three things were needed for that, each found by reading the
compiled assembly: every lane's state, constants and propagator in one scratch array at
fixed offsets (separate arrays might alias, and LLVM then emitted no packed arithmetic);
numpy's error model (numba's own checks every float division for zero, a branch); and an
exponential of arithmetic and a table read (:func:`_exp`) instead of libm's, which is a
call.  The constants and propagator entries are laid out for the lanes once per patient
batch (:func:`lane_table`) and copied into the scratch contiguously each period; gathered
patient by patient each period, they cost a third of the integrator's time.
``benchmarks/kernel_ab.py`` times this kernel against an earlier commit's in one run
(``benchmarks/results/kernel_ab.md``: about 95 against 32 ns per patient-minute for the
scalar kernel this replaced, 1,000 patients, one thread).  Lanes are computed alike, so a patient's trajectory does not depend on its lane or batch (tested bit for
bit); against the scalar kernel this replaced, glucose differs by about 1e-14 relative.

Patients are independent: :func:`advance_period_parallel` spreads blocks of lanes over
numba's threads (``NUMBA_NUM_THREADS``); :func:`advance_period` is the same code on one
thread, for batches too small to pay for a thread launch per call.  The environment's
step calls its per-row function once per block of rows, not once per patient: a call
passes ~25 arrays, each reference-counted, and once per patient that cost 85 ns per
patient-minute.  ``tests/dosing/test_patient.py::test_fused_advance_matches_minute_steps``
holds the kernel to the numpy reference (1e-9) and ``tests/dosing/test_fidelity.py`` to
simglucose.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "CONSTANTS",
    "INSULIN_NONZERO",
    "LANES",
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


#: Patients advanced together, one per SIMD lane: 8 doubles fill an AVX-512 register
#: (two AVX2 ones).  A batch that is not a multiple of 8 pads its last block.
LANES = 8
_NONZERO_ROWS = np.array([r for row in INSULIN_NONZERO for r, _ in row], dtype=np.int64)
_NONZERO_COLS = np.array([c for row in INSULIN_NONZERO for _, c in row], dtype=np.int64)
_POW2 = np.array([2.0**k for k in range(-64, 65)])
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (fdlibm's constants), so that
_LN2_LO = 1.90821492927058770002e-10  # x - k ln 2 is exact for the k used here
_INV_LN2 = 1.44269504088896338700e00

# Rows of a block's scratch (LANES columns each, so a quantity's rows are LANES apart):
# the state, the constants and the propagator's nonzero entries, transposed so that every
# quantity of every lane sits in one array at a fixed offset, which is what lets LLVM
# vectorise the lane loop.
_Y, _Z, _C, _P, _G, _U, _D = 0, 6, 13, 33, 68, 72, 73
_PL, _LE, _MS, _ME, _EAT = 74, 75, 76, 77, 78
#: Rows of a block's scratch array (``SCRATCH_ROWS * LANES`` floats).
SCRATCH_ROWS = 79
_EAT_RATE_G_PER_MIN = 5.0
#: Floats per block of the lane table (:func:`lane_table`): its constants and propagator.
TABLE_WIDTH = (_G - _C) * LANES


def lane_table(half: np.ndarray, consts: np.ndarray) -> np.ndarray:
    """The patients' constants and propagator entries laid out as a block's scratch wants
    them, ``(n_blocks, TABLE_WIDTH)``: built once per batch, copied into the scratch
    contiguously per period (gathering them patient by patient each period cost a third
    of the integrator's time).  Padding lanes repeat their block's first patient."""
    n = consts.shape[0]
    n_blocks = -(-n // LANES)
    rows = np.arange(n_blocks * LANES)
    rows = np.where(rows < n, rows, rows // LANES * LANES)
    per_lane = np.concatenate(
        [consts[rows], half[rows][:, _NONZERO_ROWS, _NONZERO_COLS]], axis=1
    )  # (n_blocks * LANES, 20 + 35)
    lanes = per_lane.reshape(n_blocks, LANES, -1).transpose(0, 2, 1)
    return np.ascontiguousarray(lanes.reshape(n_blocks, -1))


# Every function compiles with error_model="numpy": numba's own model checks each float
# division for zero, a branch that keeps a loop from vectorising (no divisor here is 0).


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _exp(x):  # pragma: no cover - compiled
    # exp for |x| <= 40: 2^k exp(r) with |r| <= ln2 / 2 and exp(r) by its Taylor series
    # to r^13 (truncation < 1e-17 relative).  libm's exp is a call, which no loop around
    # it can vectorise; this is arithmetic and one table read.
    k = np.floor(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _POW2[int(k) + 64]


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _rhs(
    q1, q2, qgut, gp, gt, gs, vm, egp_base, d, ga, gc, gb, gd,
    kmax, half_dk, kabs, ra_coef, kp2, fsnc, ke1, ke2, k1, k2, km0, ksc,
):  # fmt: skip  # pragma: no cover - compiled
    # (ga, gc, gb, gd) = (a, c, b Dbar, d Dbar) of the gastric emptying; before the first
    # meal they are 0 and the tanh difference is 0, so kgut = kmax with no branch.  Every
    # choice is a min, max or select: the lane loop around this stays branch-free.
    qsto = q1 + q2
    # tanh(a) - tanh(b) = 2 (e^2a - e^2b) / ((1 + e^2a) (1 + e^2b)); |a| >= 20 is
    # clipped, where tanh is 1 to double precision
    a = min(max(ga * (qsto - gb), -20.0), 20.0)
    b = min(max(gc * (qsto - gd), -20.0), 20.0)
    ea = _exp(2.0 * a)
    eb = _exp(2.0 * b)
    kgut = kmax + half_dk * (2.0 * (ea - eb) / ((1.0 + ea) * (1.0 + eb)))
    flow = kgut * q2
    dq1 = d - kmax * q1
    dq2 = kmax * q1 - flow
    dqgut = flow - kabs * qgut
    egp = max(egp_base - kp2 * gp, 0.0)
    renal = max(gp - ke2, 0.0)
    dgp = egp - ke1 * renal - fsnc + ra_coef * qgut - k1 * gp + k2 * gt
    dgt = k1 * gp - k2 * gt - vm * gt / (km0 + gt)
    dgs = ksc * (gp - gs)
    # simglucose freezes a glucose state that has gone negative (never in practice)
    dgp = dgp if gp >= 0.0 else 0.0
    dgt = dgt if gt >= 0.0 else 0.0
    dgs = dgs if gs >= 0.0 else 0.0
    return dq1, dq2, dqgut, dgp, dgt, dgs


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _insulin_half_step(w, lane, z0, z1, z2, z3, z4, z5, z6, u):  # pragma: no cover - compiled
    # propagator @ [z, u, 1] on its nonzero entries (INSULIN_NONZERO, in that order)
    p = _P * LANES + lane
    s = LANES  # a quantity's rows are LANES apart
    return (
        w[p] * z0 + w[p + s] * z4 + w[p + 2 * s] * z5 + w[p + 3 * s] * z6 + w[p + 4 * s] * u,
        w[p + 5 * s] * z0 + w[p + 6 * s] * z1 + w[p + 7 * s] * z4 + w[p + 8 * s] * z5
        + w[p + 9 * s] * z6
        + w[p + 10 * s] * u + w[p + 11 * s],
        w[p + 12 * s] * z0 + w[p + 13 * s] * z2 + w[p + 14 * s] * z4 + w[p + 15 * s] * z5
        + w[p + 16 * s] * z6 + w[p + 17 * s] * u,
        w[p + 18 * s] * z0 + w[p + 19 * s] * z2 + w[p + 20 * s] * z3 + w[p + 21 * s] * z4
        + w[p + 22 * s] * z5 + w[p + 23 * s] * z6 + w[p + 24 * s] * u,
        w[p + 25 * s] * z0 + w[p + 26 * s] * z4 + w[p + 27 * s] * z5 + w[p + 28 * s] * z6
        + w[p + 29 * s] * u,
        w[p + 30 * s] * z5 + w[p + 31 * s] * u,
        w[p + 32 * s] * z5 + w[p + 33 * s] * z6 + w[p + 34 * s] * u,
    )  # fmt: skip


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _gut_constants(meal_start_qsto, meal_eaten, b, d):  # pragma: no cover - compiled
    dbar = meal_start_qsto + meal_eaten * 1000.0
    if dbar > 0.0:
        return 2.5 / (dbar * (1.0 - b)), 2.5 / (dbar * d), b * dbar, d * dbar
    return 0.0, 0.0, b * dbar, d * dbar


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _load_block(lo, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating,
                insulin, table, w):  # fmt: skip  # pragma: no cover - compiled
    # patients lo..lo+n-1 into lanes 0..n-1 of w, insulin (LANES,) in U/min, table this
    # block's row of lane_table; lanes n.. repeat lane 0 (computed, never stored back)
    for k in range(table.shape[0]):
        w[_C * LANES + k] = table[k]
    for lane in range(LANES):
        i = lo + (lane if lane < n else 0)
        for r in range(5):
            w[(_Y + r) * LANES + lane] = x[r, i]
        w[(_Y + 5) * LANES + lane] = x[12, i]
        for r in range(7):
            w[(_Z + r) * LANES + lane] = x[5 + r, i]
        w[_U * LANES + lane] = insulin[lane] * w[(_C + 18) * LANES + lane]
        w[_PL * LANES + lane] = planned[i]
        w[_LE * LANES + lane] = last_eaten[i]
        w[_MS * LANES + lane] = meal_start_qsto[i]
        w[_ME * LANES + lane] = meal_eaten[i]
        w[_EAT * LANES + lane] = 1.0 if is_eating[i] else 0.0
        g = _gut_constants(
            meal_start_qsto[i], meal_eaten[i], w[(_C + 16) * LANES + lane],
            w[(_C + 17) * LANES + lane],
        )  # fmt: skip
        for r in range(4):
            w[(_G + r) * LANES + lane] = g[r]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _store_block(lo, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating,
                 w):  # fmt: skip  # pragma: no cover - compiled
    for lane in range(n):
        i = lo + lane
        for r in range(5):
            x[r, i] = w[(_Y + r) * LANES + lane]
        x[12, i] = w[(_Y + 5) * LANES + lane]
        for r in range(7):
            x[5 + r, i] = w[(_Z + r) * LANES + lane]
        planned[i] = w[_PL * LANES + lane]
        last_eaten[i] = w[_LE * LANES + lane]
        meal_start_qsto[i] = w[_MS * LANES + lane]
        meal_eaten[i] = w[_ME * LANES + lane]
        is_eating[i] = w[_EAT * LANES + lane] != 0.0


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _eat(w, lane, announced):  # pragma: no cover - compiled
    # one minute of one lane's meal bookkeeping, in simglucose's order: announce, eat at
    # most 5 g/min, detect a meal's start (reset Dbar's pieces), accumulate, detect its
    # end; then the gastric-emptying constants and the meal's rate of appearance
    pl = w[_PL * LANES + lane]
    le = w[_LE * LANES + lane]
    if announced != 0.0 or pl != 0.0 or le != 0.0:
        ms = w[_MS * LANES + lane]
        me = w[_ME * LANES + lane]
        eating = w[_EAT * LANES + lane] != 0.0
        pl = pl + announced
        to_eat = min(_EAT_RATE_G_PER_MIN, pl) if pl > 0.0 else 0.0
        pl = max(pl - to_eat, 0.0)
        if to_eat > 0.0 and le <= 0.0:  # a meal starts
            ms = w[(_Y + 0) * LANES + lane] + w[(_Y + 1) * LANES + lane]
            me = 0.0
            eating = True
        if eating:
            me = me + to_eat
        if to_eat <= 0.0 and le > 0.0:  # the meal has ended
            eating = False
        le = to_eat
        g = _gut_constants(ms, me, w[(_C + 16) * LANES + lane], w[(_C + 17) * LANES + lane])
        for r in range(4):
            w[(_G + r) * LANES + lane] = g[r]
        w[_PL * LANES + lane] = pl
        w[_LE * LANES + lane] = le
        w[_MS * LANES + lane] = ms
        w[_ME * LANES + lane] = me
        w[_EAT * LANES + lane] = 1.0 if eating else 0.0
    w[_D * LANES + lane] = le * 1000.0


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _advance_block(carbs, substeps, w):  # pragma: no cover - compiled
    # the loaded block's whole period: carbs (M, LANES) grams announced per minute
    h = 1.0 / substeps
    hh = 0.5 * h
    sixth = h / 6.0
    s = LANES  # a quantity's rows are LANES apart
    for j in range(carbs.shape[0]):
        for lane in range(LANES):
            _eat(w, lane, carbs[j, lane])
        for _ in range(substeps):
            for lane in range(LANES):  # the vectorised loop: no call, no branch
                c = _C * LANES + lane
                kmax, half_dk, kabs, ra_coef = w[c], w[c + s], w[c + 2 * s], w[c + 3 * s]
                kp1, kp2, kp3, fsnc = w[c + 4 * s], w[c + 5 * s], w[c + 6 * s], w[c + 7 * s]
                ke1, ke2, k1, k2 = w[c + 8 * s], w[c + 9 * s], w[c + 10 * s], w[c + 11 * s]
                vm0, vmx, km0, ksc = w[c + 12 * s], w[c + 13 * s], w[c + 14 * s], w[c + 15 * s]
                z = _Z * LANES + lane
                z0, z1, z2, z3 = w[z], w[z + s], w[z + 2 * s], w[z + 3 * s]
                z4, z5, z6 = w[z + 4 * s], w[z + 5 * s], w[z + 6 * s]
                u = w[_U * LANES + lane]
                # exact insulin states at t + h/2 and t + h
                m0, m1, m2, m3, m4, m5, m6 = _insulin_half_step(
                    w, lane, z0, z1, z2, z3, z4, z5, z6, u
                )
                f0, f1, f2, f3, f4, f5, f6 = _insulin_half_step(
                    w, lane, m0, m1, m2, m3, m4, m5, m6, u
                )
                y = _Y * LANES + lane
                y0, y1, y2 = w[y], w[y + s], w[y + 2 * s]
                y3, y4, y5 = w[y + 3 * s], w[y + 4 * s], w[y + 5 * s]
                g = _G * LANES + lane
                ga, gc, gb, gd = w[g], w[g + s], w[g + 2 * s], w[g + 3 * s]
                d = w[_D * LANES + lane]
                # Kutta's third-order method for the six nonlinear states
                a0, a1, a2, a3, a4, a5 = _rhs(
                    y0, y1, y2, y3, y4, y5, vm0 + vmx * z1, kp1 - kp3 * z3, d, ga, gc, gb, gd,
                    kmax, half_dk, kabs, ra_coef, kp2, fsnc, ke1, ke2, k1, k2, km0, ksc,
                )  # fmt: skip
                b0, b1, b2, b3, b4, b5 = _rhs(
                    y0 + hh * a0, y1 + hh * a1, y2 + hh * a2, y3 + hh * a3, y4 + hh * a4,
                    y5 + hh * a5, vm0 + vmx * m1, kp1 - kp3 * m3, d, ga, gc, gb, gd,
                    kmax, half_dk, kabs, ra_coef, kp2, fsnc, ke1, ke2, k1, k2, km0, ksc,
                )  # fmt: skip
                e0, e1, e2, e3, e4, e5 = _rhs(
                    y0 + h * (2.0 * b0 - a0), y1 + h * (2.0 * b1 - a1), y2 + h * (2.0 * b2 - a2),
                    y3 + h * (2.0 * b3 - a3), y4 + h * (2.0 * b4 - a4), y5 + h * (2.0 * b5 - a5),
                    vm0 + vmx * f1, kp1 - kp3 * f3, d, ga, gc, gb, gd,
                    kmax, half_dk, kabs, ra_coef, kp2, fsnc, ke1, ke2, k1, k2, km0, ksc,
                )  # fmt: skip
                w[y] = y0 + sixth * (a0 + 4.0 * b0 + e0)
                w[y + s] = y1 + sixth * (a1 + 4.0 * b1 + e1)
                w[y + 2 * s] = y2 + sixth * (a2 + 4.0 * b2 + e2)
                w[y + 3 * s] = y3 + sixth * (a3 + 4.0 * b3 + e3)
                w[y + 4 * s] = y4 + sixth * (a4 + 4.0 * b4 + e4)
                w[y + 5 * s] = y5 + sixth * (a5 + 4.0 * b5 + e5)
                w[z], w[z + s], w[z + 2 * s], w[z + 3 * s] = f0, f1, f2, f3
                w[z + 4 * s], w[z + 5 * s], w[z + 6 * s] = f4, f5, f6


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _period_of_block(
    lo, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs, insulin, table,
    substeps, w, carbs_lanes, insulin_lanes,
):  # fmt: skip  # pragma: no cover - compiled
    # advance_period for the block of patients starting at lo (scratch of its own)
    n = min(LANES, x.shape[1] - lo)
    for lane in range(LANES):
        i = lo + lane
        insulin_lanes[lane] = insulin[i] if lane < n else 0.0
        for j in range(carbs.shape[0]):
            carbs_lanes[j, lane] = carbs[j, i] if lane < n else 0.0
    _load_block(lo, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating,
                insulin_lanes, table[lo // LANES], w)  # fmt: skip
    _advance_block(carbs_lanes, substeps, w)
    _store_block(lo, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, w)


_DOC = """Advance every patient ``carbs.shape[0]`` minutes in place (insulin held).

    ``x`` (13, N) and the five bookkeeping arrays (N,) are updated in place; ``carbs``
    (M, N) are grams announced per minute, ``insulin`` (N,) U/min, ``table`` the
    patients' :func:`lane_table` (their constants and half-sub-step propagator).
    """


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def advance_period(
    x,
    planned,
    last_eaten,
    meal_start_qsto,
    meal_eaten,
    is_eating,
    carbs,
    insulin,
    table,
    substeps,
):  # pragma: no cover - compiled; covered through UVAPadova.advance_unchecked
    w = np.empty(SCRATCH_ROWS * LANES)
    carbs_lanes = np.empty((carbs.shape[0], LANES))
    insulin_lanes = np.empty(LANES)
    for lo in range(0, x.shape[1], LANES):
        _period_of_block(
            lo, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs,
            insulin, table, substeps, w, carbs_lanes, insulin_lanes,
        )  # fmt: skip


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def advance_period_parallel(
    x,
    planned,
    last_eaten,
    meal_start_qsto,
    meal_eaten,
    is_eating,
    carbs,
    insulin,
    table,
    substeps,
):  # pragma: no cover - compiled; covered through UVAPadova.advance_unchecked
    # each block of lanes has its own scratch: threads never share one
    n_blocks = (x.shape[1] + LANES - 1) // LANES
    w = np.empty((n_blocks, SCRATCH_ROWS * LANES))
    carbs_lanes = np.empty((n_blocks, carbs.shape[0], LANES))
    insulin_lanes = np.empty((n_blocks, LANES))
    for b in numba.prange(n_blocks):
        _period_of_block(
            b * LANES, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, carbs,
            insulin, table, substeps, w[b], carbs_lanes[b], insulin_lanes[b],
        )  # fmt: skip


advance_period.__doc__ = advance_period_parallel.__doc__ = _DOC


@numba.njit(inline="always", cache=True, fastmath=True, error_model="numpy")
def _env_outputs(
    i, u, active, meals_g, t_min, iob, cgm_hist, noise, sensor, risk, env, x, consts, obs,
    reward, terminated, truncated, bg_out, upcoming,
):  # fmt: skip  # pragma: no cover - compiled
    # patient i after its period: insulin on board, clock, CGM, reward, end of episode
    st = int(env[0])
    horizon = int(env[1])
    ahead = int(env[2])
    announce = env[3] != 0.0
    on_cgm = env[4] != 0.0
    low, high = env[5], env[6]
    decay = 1.0 / env[7]
    n_hist = cgm_hist.shape[1]
    act = active[i]
    t = t_min[i]
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


# not inlined: numba refuses nested inlining here
@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _env_step_rows(
    lo,
    hi,
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, table, consts, substeps,
    rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor, risk, env,
    obs, reward, terminated, truncated, bg_out, upcoming,
    w, carbs_lanes, insulin_lanes,
):  # fmt: skip
    # rows lo..hi-1 of env_step, one call per block of rows (a call passes ~25 arrays,
    # each reference-counted), advanced LANES patients at a time; w, carbs_lanes
    # (sample minutes, LANES) and insulin_lanes (LANES,) are this call's scratch
    st = int(env[0])
    for first in range(lo, hi, LANES):
        n = min(LANES, hi - first)
        for lane in range(LANES):
            i = first + lane
            u = 0.0
            if lane < n:
                r = 0.0
                if active[i]:
                    r = min(max(rate_u_per_h[i], 0.0), env[8]) / 60.0
                # InsulinPump.deliver(r): basal quantised to the increment (pmol),
                # clipped, plus the delivery of a zero bolus
                u = np.rint(r * pump[4] / pump[0]) * pump[0] / pump[4]
                u = min(max(u, pump[1]), pump[2]) + pump[3]
            insulin_lanes[lane] = u
            for j in range(st):
                carbs_lanes[j, lane] = meals_g[i, t_min[i] + j] if lane < n and active[i] else 0.0
        _load_block(first, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating,
                    insulin_lanes, table[first // LANES], w)  # fmt: skip
        _advance_block(carbs_lanes, substeps, w)
        _store_block(first, n, x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, w)
        for lane in range(n):
            _env_outputs(
                first + lane, insulin_lanes[lane], active, meals_g, t_min, iob, cgm_hist, noise,
                sensor, risk, env, x, consts, obs, reward, terminated, truncated, bg_out,
                upcoming,
            )  # fmt: skip



@numba.njit(cache=True, fastmath=True, error_model="numpy")
def env_step(
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, table, consts, substeps,
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
    the coming period (announced or not).  Inactive rows (awaiting their autoreset) get
    no meal, no insulin and a zero reward, and keep their clock, history and insulin on board.
    """
    _env_step_rows(
        0, x.shape[1],
        x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, table, consts,
        substeps, rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor,
        risk, env, obs, reward, terminated, truncated, bg_out, upcoming,
        np.empty(SCRATCH_ROWS * LANES), np.empty((int(env[0]), LANES)), np.empty(LANES),
    )  # fmt: skip


@numba.njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def env_step_parallel(
    x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, table, consts, substeps,
    rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor, risk, env,
    obs, reward, terminated, truncated, bg_out, upcoming, n_blocks,
):  # fmt: skip  # pragma: no cover - compiled; covered through GlucoseVectorEnv.step
    # env_step with the patients spread over numba's threads in n_blocks blocks of rows
    # (thread_blocks; one call each, see _env_step_rows), each with its own scratch
    n = x.shape[1]
    n_lanes = (n + LANES - 1) // LANES
    w = np.empty((n_blocks, SCRATCH_ROWS * LANES))
    carbs_lanes = np.empty((n_blocks, int(env[0]), LANES))
    insulin_lanes = np.empty((n_blocks, LANES))
    for b in numba.prange(n_blocks):
        # block edges on multiples of LANES, so only the last block pads lanes
        _env_step_rows(
            min(n, b * n_lanes // n_blocks * LANES), min(n, (b + 1) * n_lanes // n_blocks * LANES),
            x, planned, last_eaten, meal_start_qsto, meal_eaten, is_eating, table, consts,
            substeps, rate_u_per_h, active, meals_g, t_min, iob, cgm_hist, noise, pump, sensor,
            risk, env, obs, reward, terminated, truncated, bg_out, upcoming,
            w[b], carbs_lanes[b], insulin_lanes[b],
        )  # fmt: skip


def thread_blocks(n_rows: int) -> int:
    """Blocks of rows for :func:`env_step_parallel`: a few per numba thread, to balance,
    and never more than the batch has blocks of :data:`LANES` patients."""
    return max(1, min(-(-n_rows // LANES), 4 * numba.get_num_threads()))


@numba.njit(inline="always", cache=True)
def upcoming_carbs(meals_g, i, start, st):  # pragma: no cover - compiled
    """Grams of row ``i`` of ``meals_g`` in the ``st`` minutes from ``start``."""
    total = 0.0
    for j in range(start, start + st):
        total += meals_g[i, j]
    return total
