"""SUPPORT (support2) loader: a self-made fixture (no data needed) and the real file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metamed.data.datasets import support2
from metamed.data.preprocess import Preprocessor
from metamed.data.registry import get_source, load_dataset
from metamed.errors import MetamedValueError
from metamed.tasks import TaskSet


def _load(folder: Path, **options: object):
    spec = get_source("support2")
    return spec.loader(folder, **spec.resolve_options(options))


def _raw() -> pd.DataFrame:
    """Four patients: a hospital death, a death at day 150, one at day 400, a survivor."""
    n = 4
    raw: dict[str, list] = {col: [1.0] * n for col in support2.NUMERIC}
    raw.update({col: [0.5] * n for col in support2.SUPPORT_REFERENCE_COLUMNS})
    raw.update({col: [1.0] * n for col in support2.SUPPORT_LEAKING_COLUMNS})
    raw.update(
        {
            "Unnamed: 0": [1, 2, 3, 4],
            "sex": ["male", "female", "male", "female"],
            "race": ["white", "black", None, "asian"],
            "income": ["under $11k", None, ">$50k", "$11-$25k"],
            "ca": ["no", "metastatic", "yes", "no"],
            "dzgroup": ["Coma", "CHF", "Colon Cancer", "CHF"],
            "dzclass": ["Coma", "COPD/CHF/Cirrhosis", "Cancer", "COPD/CHF/Cirrhosis"],
            "hospdead": [1, 0, 0, 0],
            "death": [1, 1, 1, 0],
            "d.time": [12, 150, 400, 900],
            "glucose": [0.0, 140.0, 99.0, 120.0],
            "alb": [29.0, 3.1, 2.5, 4.0],
            "meanbp": [0.0, 80.0, 70.0, 90.0],
        }
    )
    return pd.DataFrame(raw)


def _fixture(folder: Path, raw: pd.DataFrame | None = None) -> Path:
    (raw if raw is not None else _raw()).to_csv(folder / support2.FILE, index=False)
    return folder


def test_fixture_outcomes_and_cleaning(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    cohort = _load(folder)
    frame = cohort.frame
    assert frame["hospital_death"].tolist() == [1, 0, 0, 0]
    assert np.isnan(frame["glucose"][0]) and frame["glucose"][1] == 140.0  # 0 is impossible
    assert np.isnan(frame["alb"][0]) and frame["alb"][1] == 3.1  # 29 g/dL: an entry error
    assert frame["meanbp"][0] == 0.0  # arrest: a real value
    assert cohort.schema.group == ("dzgroup",) and "dzclass" not in frame.columns
    six = _load(folder, outcome="death_6_months")
    assert six.frame["death_6_months"].tolist() == [1, 1, 0, 0]  # day 400 is after 180
    by_class = _load(folder, task="dzclass")
    assert by_class.schema.group == ("dzclass",) and "dzgroup" in by_class.schema.categorical


def test_fixture_censored_before_six_months_is_dropped(tmp_path: Path) -> None:
    raw = _raw()
    raw.loc[3, "d.time"] = 100  # alive when last seen at day 100: outcome unknown
    six = _load(_fixture(tmp_path, raw), outcome="death_6_months")
    assert six.frame["death_6_months"].tolist() == [1, 1, 0]
    assert len(_load(tmp_path).frame) == 4  # hospital death is known for everyone


def test_fixture_scores_are_references_and_leaks_are_gone(tmp_path: Path) -> None:
    cohort = _load(_fixture(tmp_path))
    assert cohort.schema.reference == support2.SUPPORT_REFERENCE_COLUMNS
    features = set(cohort.schema.features)
    for col in (*support2.SUPPORT_LEAKING_COLUMNS, *support2.SUPPORT_REFERENCE_COLUMNS):
        assert col not in features, col
    for col in support2.SUPPORT_LEAKING_COLUMNS:
        assert col not in cohort.frame.columns, col
    with pytest.raises(MetamedValueError, match="lacks the column"):
        _load(_fixture(tmp_path, _raw().drop(columns="surv6m")))


# -- the real file (METAMED_DATA_DIR) --------------------------------------------------


@pytest.fixture(scope="module")
def support_dir(need_dataset) -> Path:
    return need_dataset("support2")


def test_counts_groups_and_prevalences(support_dir: Path) -> None:
    # SOURCE.md: 9,105 patients in 8 groups; hospital death from 6 % (CHF, colon cancer)
    # to 61 % (coma).
    cohort = load_dataset("support2", support_dir)
    summary = TaskSet(cohort).summary().set_index("task")
    assert len(cohort.frame) == 9_105 and len(summary) == 8
    assert summary["n"].to_dict() == {
        "ARF/MOSF w/Sepsis": 3515,
        "CHF": 1387,
        "COPD": 967,
        "Cirrhosis": 508,
        "Colon Cancer": 512,
        "Coma": 596,
        "Lung Cancer": 908,
        "MOSF w/Malig": 712,
    }
    assert int(cohort.frame["hospital_death"].sum()) == 2_360
    assert summary["prevalence"].round(3).to_dict() == {
        "ARF/MOSF w/Sepsis": 0.337,
        "CHF": 0.063,
        "COPD": 0.107,
        "Cirrhosis": 0.232,
        "Colon Cancer": 0.057,
        "Coma": 0.607,
        "Lung Cancer": 0.112,
        "MOSF w/Malig": 0.527,
    }
    six = load_dataset("support2", support_dir, outcome="death_6_months")
    assert len(six.frame) == 9_105  # nobody was censored before 180 days
    assert int(six.frame["death_6_months"].sum()) == 4_265
    classes = load_dataset("support2", support_dir, task="dzclass")
    assert classes.frame["dzclass"].nunique() == 4


def test_no_leaking_column_or_score_reaches_the_features(support_dir: Path) -> None:
    raw = pd.read_csv(support_dir / support2.FILE)
    for outcome in support2.SUPPORT_OUTCOMES:
        cohort = load_dataset("support2", support_dir, outcome=outcome)
        prep = Preprocessor(cohort.schema).fit(cohort.frame)
        inputs = {name.split("=")[0].removesuffix("__missing") for name in prep.feature_names_}
        assert inputs <= set(raw.columns) - {"Unnamed: 0"}
        assert not inputs & {*support2.SUPPORT_LEAKING_COLUMNS, *support2.SUPPORT_REFERENCE_COLUMNS}
        assert not inputs & {"dzgroup", "dzclass"}
    # What the loader changed in the raw values: one glucose 0 and two albumins over 10.
    cohort = load_dataset("support2", support_dir)
    assert cohort.frame["glucose"].isna().sum() == raw["glucose"].isna().sum() + 1
    assert cohort.frame["alb"].isna().sum() == raw["alb"].isna().sum() + 2
