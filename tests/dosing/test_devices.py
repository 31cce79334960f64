"""CGM sensor noise drawn ahead in batches (simulated patients)."""

from __future__ import annotations

import numpy as np

from metamed.dosing.devices import CGMSensor


def test_noise_drawn_ahead_equals_noise_drawn_one_reading_at_a_time() -> None:
    def sensor() -> CGMSensor:
        return CGMSensor("GuardianRT", 3, rng=[np.random.default_rng(s) for s in (1, 2, 3)])

    one_by_one = sensor()
    singles = np.stack([one_by_one.noise_mg_dl() for _ in range(70)])
    batched = sensor()
    # uneven chunks cross block boundaries (30 readings per 150-min block)
    ahead = np.concatenate([batched.noise_ahead_mg_dl(k) for k in (1, 44, 25)])
    np.testing.assert_allclose(ahead, singles, rtol=0, atol=1e-12)
    assert np.ptp(singles, axis=0).min() > 1.0  # real noise, not a constant
