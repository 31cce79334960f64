"""UCI Heart Disease, four sites: one task per hospital.

Reads the four original ``processed.<site>.data`` files of the UCI "Heart Disease"
dataset (Janosi, Steinbrunn, Pfisterer, Detrano; 1988; DOI 10.24432/C52P4X; CC BY 4.0):
Cleveland Clinic Foundation (303 patients), Hungarian Institute of Cardiology (294),
University Hospitals of Zurich and Basel (123) and the V.A. Medical Center, Long Beach
(200).  The files have no header, 14 comma-separated columns and ``?`` for missing.

What this loader does to the raw values, and why:

* ``chol == 0`` means "not recorded" (all Switzerland and 49 V.A. patients), never a
  real serum cholesterol, so it becomes missing.
* ``trestbps == 0`` (one V.A. patient) is not a survivable resting blood pressure, so it
  becomes missing too.
* ``cp``, ``restecg``, ``slope`` and ``thal`` are codes without an order that a linear
  model could use, so they are categorical, with the labels of the UCI documentation
  (``heart-disease.names``).  ``sex``, ``fbs`` and ``exang`` are 0/1 and stay numeric;
  ``ca`` (number of vessels, 0-3) is a count and stays numeric.
* The outcome is ``disease = num > 0`` (any vessel with > 50 % diameter narrowing); the
  0-4 ``num`` column is dropped so that it can never become an input by accident.
* ``site`` (cleveland / hungarian / switzerland / va) is the group column.

Option: ``sites`` (default all four) chooses the hospitals that form the cohort, e.g.
``load_dataset("uci-heart", sites=["cleveland", "hungarian", "va"])`` leaves out
Switzerland, which has only 8 patients without disease.

Version.  Bump ``SPEC.version`` with any change that alters the cohort built
for an existing set of options (a cleaning rule above, a label, the row order); the
fingerprint test in ``tests/data/test_dataset_versions.py`` fails until you do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from metamed.data.cohort import Cohort, Schema
from metamed.data.registry import DatasetSpec, Option, load_dataset, read_files
from metamed.errors import MetamedValueError
from metamed.outcomes import BINARY

__all__ = [
    "SPEC",
    "UCI_HEART_SITES",
    "UCI_HEART_RAW_COLUMNS",
    "UCI_HEART_SCHEMA",
    "load_uci_heart",
    "read_uci_heart_file",
]

#: Sites in the order of the UCI archive; each is one ``processed.<site>.data`` file.
UCI_HEART_SITES: tuple[str, ...] = ("cleveland", "hungarian", "switzerland", "va")
#: Column order of the processed files (UCI ``heart-disease.names``, attributes 3-58 subset).
UCI_HEART_RAW_COLUMNS: tuple[str, ...] = (
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
    "num",
)

# Code labels from the UCI documentation (heart-disease.names, attributes 9, 19, 41, 51).
CHEST_PAIN_LABELS = {
    1: "typical_angina",
    2: "atypical_angina",
    3: "non_anginal_pain",
    4: "asymptomatic",
}
RESTING_ECG_LABELS = {0: "normal", 1: "st_t_abnormality", 2: "lv_hypertrophy"}
ST_SLOPE_LABELS = {1: "upsloping", 2: "flat", 3: "downsloping"}
THAL_LABELS = {3: "normal", 6: "fixed_defect", 7: "reversible_defect"}
_CODE_LABELS = {
    "cp": CHEST_PAIN_LABELS,
    "restecg": RESTING_ECG_LABELS,
    "slope": ST_SLOPE_LABELS,
    "thal": THAL_LABELS,
}

# Values recorded as 0 that are physiologically impossible and mean "not measured"
# (documented for chol in the dataset's SOURCE.md; trestbps 0 mm Hg is not survivable).
_ZERO_MEANS_MISSING = ("chol", "trestbps")

UCI_HEART_SCHEMA = Schema(
    outcome="disease",
    numeric=("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak", "ca"),
    categorical=("cp", "restecg", "slope", "thal"),
    group=("site",),
    outcome_type=BINARY,
    units={
        "age": "years",
        "trestbps": "mm Hg",
        "chol": "mg/dL",
        "thalach": "bpm",
        "oldpeak": "mm",  # ST depression induced by exercise relative to rest
        "ca": "vessels",
    },
)


def read_uci_heart_file(path: str | Path, site: str) -> pd.DataFrame:
    """Read one ``processed.<site>.data`` file into a cleaned frame with a ``site`` column.

    Parameters
    ----------
    path : path-like
        The file.
    site : str
        Value of the ``site`` column.

    Returns
    -------
    DataFrame
        Columns of :data:`UCI_HEART_SCHEMA` (``disease`` instead of ``num``).
    """
    path = Path(path)
    try:
        raw = pd.read_csv(path, header=None, na_values=["?"], dtype=float)
    except ValueError as exc:  # a non-numeric cell other than "?"
        raise MetamedValueError(
            f"{path.name}: expected 14 numeric comma-separated values per line with '?' for "
            f"missing, could not parse the file ({exc}). Re-fetch it: "
            f"metamed data fetch uci-heart --dest DIR"
        ) from exc
    if raw.shape[1] != len(UCI_HEART_RAW_COLUMNS):
        raise MetamedValueError(
            f"{path.name}: expected {len(UCI_HEART_RAW_COLUMNS)} columns "
            f"({', '.join(UCI_HEART_RAW_COLUMNS)}), found {raw.shape[1]}."
        )
    raw.columns = list(UCI_HEART_RAW_COLUMNS)
    if raw["num"].isna().any():
        raise MetamedValueError(f"{path.name}: the diagnosis column 'num' has missing values.")
    frame = raw.drop(columns="num")
    for col in _ZERO_MEANS_MISSING:
        frame.loc[frame[col] == 0, col] = np.nan
    for col, labels in _CODE_LABELS.items():
        codes = frame[col]
        unknown = sorted(set(codes.dropna().astype(int)) - set(labels))
        if unknown or not (codes.dropna() == codes.dropna().round()).all():
            raise MetamedValueError(
                f"{path.name}: column '{col}' holds codes {unknown or 'with decimals'}; "
                f"expected {sorted(labels)} (UCI heart-disease.names)."
            )
        frame[col] = codes.map(lambda v, labels=labels: np.nan if pd.isna(v) else labels[int(v)])
        frame[col] = frame[col].astype(object)
    frame["site"] = site
    frame["disease"] = (raw["num"] > 0).astype(np.int64)
    return frame


def _load(folder: Path, *, sites: tuple[str, ...]) -> Cohort:
    """The loader of :data:`SPEC`: ``folder`` holds the four verified files."""
    frames = [read_uci_heart_file(folder / f"processed.{site}.data", site) for site in sites]
    frame = pd.concat(frames, ignore_index=True)
    columns = [*UCI_HEART_SCHEMA.features, "site", "disease"]
    return Cohort(
        name="uci-heart",
        frame=frame[columns],
        schema=UCI_HEART_SCHEMA,
        provenance={
            "source": "UCI Machine Learning Repository, Heart Disease (processed 14-attribute files)",
            "cleaning": "'?' -> missing; chol == 0 and trestbps == 0 -> missing; disease = num > 0",
        },
    )


SPEC = DatasetSpec(
    name="uci-heart",
    version=1,
    title="UCI Heart Disease, four sites",
    description=(
        "Coronary angiography cohorts from Cleveland, Budapest (Hungarian), Zurich/Basel "
        "(Switzerland) and Long Beach (VA), 1980s; 13 clinical attributes; outcome: "
        "angiographic disease (num > 0). Tasks: the 4 sites."
    ),
    licence="CC BY 4.0",
    citation=(
        "Janosi A, Steinbrunn W, Pfisterer M, Detrano R. Heart Disease [dataset]. "
        "UCI Machine Learning Repository; 1988. https://doi.org/10.24432/C52P4X"
    ),
    homepage="https://archive.ics.uci.edu/dataset/45/heart+disease",
    folder="uci-heart-disease",
    files=read_files(__package__, "uci_heart.files.json"),
    options=(
        Option(
            "sites",
            UCI_HEART_SITES,
            "hospitals that form the cohort (each one task)",
            choices=UCI_HEART_SITES,
            multiple=True,
        ),
    ),
    loader=_load,
    n_patients=920,
    n_tasks=4,
)


def load_uci_heart(data_dir: str | Path | None = None, **options: object) -> Cohort:
    """Load the four-site UCI Heart Disease cohort (920 patients, 4 tasks).

    Same as ``load_dataset("uci-heart", data_dir, **options)``.

    Parameters
    ----------
    data_dir : path-like, optional
        The data directory holding ``uci-heart-disease/``, or that folder itself.
        Defaults to the ``METAMED_DATA_DIR`` environment variable.
    **options
        ``sites``: the hospitals to include (default all four).

    Returns
    -------
    Cohort
        Named ``"uci-heart"``; provenance lists source, licence, citation, the dataset
        version and options, and the sha256 of every file read, each verified against
        :data:`SPEC`.

    Raises
    ------
    DataNotFoundError
        A file is missing (the message names the fetch command).
    ChecksumError
        A file differs from the published one.
    """
    return load_dataset("uci-heart", data_dir, **options)
