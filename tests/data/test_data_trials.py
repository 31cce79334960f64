"""The two multi-site trials of r-multisite-trials: OPT and the indomethacin RCT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import indo_rct, opt
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet


def _load(name: str, folder: Path, **options: object):
    spec = get_source(name)
    return spec.loader(folder, **spec.resolve_options(options))


# -- OPT ---------------------------------------------------------------------------------


def _opt_raw() -> pd.DataFrame:
    """Four women at three clinics; the last was lost to follow-up."""
    n = 4
    raw = {col: [20.0] * n for col in opt.OPT_BASELINE_COLUMNS}  # never a 0/1 label copy
    raw.update({col: ["No "] * n for col in opt.OPT_BASELINE_COLUMNS if col in opt._YES_NO_COLUMNS})
    raw.update(
        {
            "Clinic": ["MS", "NY", "MN", "NY"],
            "Group": ["T", "C", "C", "C"],
            "Preg.ended...37.wk": ["Yes", "No ", "Yes", "   "],
            "Hypertension": ["N  ", "N  ", "Y  ", "N  "],
            "Education": ["8-12 yrs ", "LT 8 yrs ", "MT 12 yrs", "   "],
            "BL.Diab.Type": [np.nan, "Type II   ", np.nan, np.nan],
            "Diabetes": ["No ", "Yes", "   ", "No "],
            "Hisp": ["Yes", "   ", "No ", "No "],
            "Prev.preg": ["No ", "Yes", "Yes", "No "],
            "N.prev.preg": [np.nan, 2.0, np.nan, np.nan],
            "Live.PTB": [np.nan, "Yes", "No ", np.nan],
            "Use.Tob": ["No ", "Yes", "   ", "No "],
            "BL.Cig.Day": [np.nan, 10.0, np.nan, np.nan],
            "OCRP1": ["3.2", ".", "1.5", "2.0"],
        }
    )
    return pd.DataFrame(raw)


def test_opt_fixture_cleaning_rules(tmp_path: Path) -> None:
    _opt_raw().to_csv(tmp_path / opt.FILE, index=False)
    cohort = _load("opt", tmp_path)
    frame = cohort.frame
    # Lost to follow-up is dropped; clinics come in the codebook's order (NY, MN, KY, MS).
    assert frame["Clinic"].tolist() == ["NY", "MN", "MS"]
    assert frame["preterm_birth"].tolist() == [0, 1, 1]
    assert frame["treatment"].tolist() == [0.0, 0.0, 1.0]
    assert frame["Hypertension"].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(frame["Hisp"][0]) and frame["Hisp"][2] == 1.0  # a blank is missing
    assert np.isnan(frame["OCRP1"][0]) and frame["OCRP1"][1] == 1.5  # "." is missing
    # Blanks that mean "none" because an earlier answer was No.
    assert frame["N.prev.preg"][2] == 0.0 and frame["Live.PTB"][2] == 0.0  # no earlier pregnancy
    assert np.isnan(frame["N.prev.preg"][1])  # a previous pregnancy, count not given: missing
    assert frame["BL.Cig.Day"].tolist()[0] == 10.0 and frame["BL.Cig.Day"][2] == 0.0
    assert np.isnan(frame["BL.Cig.Day"][1])  # tobacco use unknown
    assert frame["BL.Diab.Type"].tolist()[0] == "Type II" and frame["BL.Diab.Type"][2] == "none"
    assert frame["BL.Diab.Type"].isna()[1]  # diabetes unknown
    assert frame["Education"].tolist() == ["LT 8 yrs", "MT 12 yrs", "8-12 yrs"]
    assert _load("opt", tmp_path, sites=["MS", "MN"]).frame["Clinic"].tolist() == ["MN", "MS"]


def test_opt_fixture_unknown_answer_is_refused(tmp_path: Path) -> None:
    _opt_raw().assign(Diabetes="Maybe").to_csv(tmp_path / opt.FILE, index=False)
    with pytest.raises(
        MetamedValueError, match=r"column 'Diabetes': unexpected code\(s\) \['Maybe'\]"
    ):
        _load("opt", tmp_path)


# -- indomethacin RCT ----------------------------------------------------------------------


def _indo_raw() -> pd.DataFrame:
    n = 4
    raw = {col: ["0_no"] * n for col in indo_rct.INDO_RCT_BINARY_CODES}
    raw.update(
        {
            "site": ["2_IU", "1_UM", "4_Case", "2_IU"],
            "outcome": ["1_yes", "0_no", "0_no", "0_no"],
            "risk": [2.5, 1.0, 3.0, 1.5],
            "age": [40, 50, 60, 70],
            "gender": ["1_female", "2_male", "1_female", "2_male"],
            "rx": ["0_placebo", "1_indomethacin", "0_placebo", "1_indomethacin"],
            "status": ["1_outpatient", "0_inpatient", "1_outpatient", "1_outpatient"],
            "asa": ["0_no", "NA_NA", "1_yes", "0_no"],
            "type": ["2_type 2", "0_no SOD", "3_type 3", "1_type 1"],
            "bleed": [np.nan, 1.0, np.nan, 2.0],
        }
    )
    return pd.DataFrame(raw)


def test_indo_fixture_cleaning_rules(tmp_path: Path) -> None:
    _indo_raw().to_csv(tmp_path / indo_rct.FILE, index=False)
    cohort = _load("indo-rct", tmp_path)
    frame = cohort.frame
    assert frame["site"].tolist() == ["1_UM", "2_IU", "2_IU", "4_Case"]
    assert frame["post_ercp_pancreatitis"].tolist() == [0, 1, 0, 0]
    assert frame["gender"].tolist() == [1.0, 0.0, 1.0, 0.0]  # 1 = male
    assert frame["rx"].tolist() == [1.0, 0.0, 1.0, 0.0]  # 1 = indomethacin
    assert np.isnan(frame["asa"][0]) and frame["asa"][3] == 1.0  # NA_NA is missing
    assert frame["type"].tolist() == ["no_sod", "type_2", "type_1", "type_3"]
    assert cohort.schema.reference == ("risk",) and "risk" not in cohort.schema.features
    assert "bleed" not in frame.columns


def test_options_are_validated() -> None:
    with pytest.raises(MetamedValueError, match="sites='NJ'"):
        load_dataset("opt", "/nonexistent", sites=["NY", "NJ"])
    with pytest.raises(MetamedValueError, match="sites='UM'.*Did you mean '1_UM'"):
        load_dataset("indo-rct", "/nonexistent", sites=["UM"])


# -- the real tables (METAMED_DATA_DIR) ------------------------------------------------


@pytest.fixture(scope="module")
def trials_dir(need_dataset) -> Path:
    return need_dataset("r-multisite-trials")


def test_opt_counts_and_no_leak(trials_dir: Path) -> None:
    cohort = load_dataset("opt", trials_dir)
    # SOURCE.md: 823 women at MN 247, KY 211, MS 192, NY 173; 9 lost to follow-up.
    assert cohort.n_patients == 814
    sizes = TaskSet(cohort).summary().set_index("task")
    assert sizes["n"].to_dict() == {"KY": 208, "MN": 247, "MS": 192, "NY": 167}
    assert int(cohort.frame["preterm_birth"].sum()) == 103
    raw_columns = set(pd.read_csv(trials_dir / opt.FILE, nrows=1).columns)
    for col in opt.OPT_LEAKING_COLUMNS:
        assert col in raw_columns, col  # the list names real columns ...
        assert col not in cohort.schema.features and col not in cohort.frame.columns, col
    # ... and every raw column is either read as a baseline input or dropped on purpose.
    read = {*opt.OPT_BASELINE_COLUMNS, "Group", "Clinic", "Preg.ended...37.wk"}
    assert raw_columns - read - set(opt.OPT_LEAKING_COLUMNS) == {"rownames", "PID"}


def test_indo_counts_and_no_leak(trials_dir: Path) -> None:
    cohort = load_dataset("indo-rct", trials_dir)
    # SOURCE.md: 602 patients at 2_IU 413, 1_UM 164, 3_UK 22, 4_Case 3.
    sizes = TaskSet(cohort).summary().set_index("task")
    assert sizes["n"].to_dict() == {"1_UM": 164, "2_IU": 413, "3_UK": 22, "4_Case": 3}
    assert int(cohort.frame["post_ercp_pancreatitis"].sum()) == 79
    assert sizes.loc["4_Case", "positives"] == 0
    raw_columns = set(pd.read_csv(trials_dir / indo_rct.FILE, nrows=1).columns)
    assert set(indo_rct.INDO_RCT_LEAKING_COLUMNS) <= raw_columns
    assert "bleed" not in cohort.frame.columns and "risk" not in cohort.schema.features
    read = {*indo_rct.INDO_RCT_BINARY_CODES, "site", "outcome", "risk", "age", "type"}
    assert raw_columns - read - set(indo_rct.INDO_RCT_LEAKING_COLUMNS) == {"rownames", "id"}
    assert cohort.frame[["asa81", "asa325", "asa"]].isna().sum().tolist() == [1, 1, 1]
