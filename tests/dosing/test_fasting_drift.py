"""The fasting drift in the personaliser's calibration: what it is for, on the simulator."""

from __future__ import annotations

import numpy as np

from metamed.dosing.personalise import TherapyPersonaliser, leave_patients_out


def _basal_rmse_log(fasting_drift: bool, group: str) -> float:
    # device records of a seed the results page's protocol does not use (it uses 1000)
    run = leave_patients_out(
        days_of_data=(3,), seed=2000, personaliser=TherapyPersonaliser(fasting_drift=fasting_drift)
    )
    sel = np.asarray(run.age_groups) == group
    error = np.log(run.parameters["3d"].basal_u_per_h / run.parameters["oracle"].basal_u_per_h)
    return float(np.sqrt(np.mean(error[sel] ** 2)))


def test_fasting_drift_brings_childrens_basal_closer_to_quest() -> None:
    # The children's glucose drifts overnight by how far the recording basal is from their
    # need; without the drift the calibrated basal barely leaves the population value.
    with_drift, without = _basal_rmse_log(True, "child"), _basal_rmse_log(False, "child")
    assert with_drift < 0.85 * without, (with_drift, without)


def test_leave_patients_out_meta_trains_the_personaliser_it_is_given() -> None:
    # it used to rebuild a plain TherapyPersonaliser from the fields, dropping a subclass
    class Recorded(TherapyPersonaliser):
        pass

    run = leave_patients_out(days_of_data=(1,), seed=2000, personaliser=Recorded())
    assert all(type(m) is Recorded for m in run.personalisers)
